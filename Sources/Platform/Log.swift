#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One line per event on standard error, as `key=value` pairs (journald keeps standard error).
/// Values are quoted when they hold spaces or quotes. Nothing secret is ever passed in: callers
/// log identifiers and counts, never a token or a connection string with a password.
public enum Log {
    public enum Level: String, Sendable { case debug, info, warning, error }

    nonisolated(unsafe) public static var minimumLevel: Level = .info

    public static func write(_ level: Level, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) {
        if level == .debug && minimumLevel != .debug { return }
        var line = "level=\(level.rawValue) msg=\(quoted(message))"
        for (key, value) in fields { line += " \(key)=\(quoted(value))" }
        line += "\n"
        // One write(2) per line keeps lines from different threads whole.
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    public static func info(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.info, message, fields) }
    public static func warning(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.warning, message, fields) }
    public static func error(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.error, message, fields) }

    static func quoted(_ value: String) -> String {
        if !value.isEmpty && !value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline || $0 == "\\" }) {
            return value
        }
        var out = "\""
        for ch in value {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default: out.append(ch)
            }
        }
        return out + "\""
    }
}
