#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One line per event on standard error, as `key=value` pairs (journald keeps standard error).
/// Values are quoted when they hold spaces or quotes. Nothing secret is ever passed in: callers
/// log identifiers and counts, never a token or a connection string with a password.
public enum Log {
    public enum Level: String, Sendable, Comparable {
        case debug, info, warning, error

        public static func < (a: Level, b: Level) -> Bool { a.rank < b.rank }
        var rank: Int {
            switch self {
            case .debug: 0
            case .info: 1
            case .warning: 2
            case .error: 3
            }
        }
    }

    /// Lines below it are not written. Set once, by the command, before any other thread starts
    /// (`serve --log-level`).
    nonisolated(unsafe) public static var minimumLevel: Level = .info

    static func isWritten(_ level: Level, minimum: Level) -> Bool { level >= minimum }

    public static func write(_ level: Level, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) {
        if !isWritten(level, minimum: minimumLevel) { return }
        // Built as bytes in one buffer: this runs once per request.
        var line: [UInt8] = []
        line.reserveCapacity(256)
        line.append(contentsOf: "level=".utf8)
        line.append(contentsOf: level.rawValue.utf8)
        line.append(contentsOf: " msg=".utf8)
        appendQuoted(message, to: &line)
        for (key, value) in fields {
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: key.utf8)
            line.append(UInt8(ascii: "="))
            appendQuoted(value, to: &line)
        }
        line.append(UInt8(ascii: "\n"))
        // One write(2) per line keeps lines from different threads whole.
        _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    public static func info(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.info, message, fields) }
    public static func warning(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.warning, message, fields) }
    public static func error(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { write(.error, message, fields) }

    static func quoted(_ value: String) -> String {
        var bytes: [UInt8] = []
        appendQuoted(value, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `value` as is when it holds none of space, `"`, `=`, `\\` or a line break, else in quotes
    /// with `"`, `\\`, CR and LF escaped.
    static func appendQuoted(_ value: String, to out: inout [UInt8]) {
        let utf8 = value.utf8
        var plain = !utf8.isEmpty
        var ascii = true
        for byte in utf8 {
            if byte >= 0x80 { ascii = false; break }
            // Space, `"`, `=`, `\\`, and LF, VT, FF, CR (the ASCII line breaks).
            if byte == 0x20 || byte == 0x22 || byte == 0x3D || byte == 0x5C || (byte >= 0x0A && byte <= 0x0D) { plain = false }
        }
        if ascii {
            if plain {
                out.append(contentsOf: utf8)
                return
            }
            out.append(UInt8(ascii: "\""))
            for byte in utf8 {
                switch byte {
                case 0x22: out.append(contentsOf: [0x5C, 0x22])
                case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
                default: out.append(byte)
                }
            }
            out.append(UInt8(ascii: "\""))
            return
        }
        out.append(contentsOf: quotedByCharacter(value).utf8)
    }

    /// The general case (any Unicode): quoting decided and escapes made per Character.
    private static func quotedByCharacter(_ value: String) -> String {
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
