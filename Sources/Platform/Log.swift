#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One line per event on standard error (journald keeps standard error): `key=value` pairs
/// (logfmt; values quoted when they hold spaces or quotes), or one JSON object per line with its
/// time for log shippers (`serve --log-format json`). A line written while a request or a job is
/// served carries its `request_id` or `job_id` (`LogContext`), from whatever thread the work
/// started. Nothing secret is ever passed in: callers log identifiers and counts, never a token
/// or a connection string with a password.
public enum Log {
    public enum Format: String, Sendable, CaseIterable { case logfmt, json }

    /// Set once, by the command, before any other thread starts.
    nonisolated(unsafe) public static var format: Format = .logfmt

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
        var line = self.line(level, message, fields, context: LogContext.current, format: format, time: format == .json ? WallClock.now() : nil)
        line.append(UInt8(ascii: "\n"))
        // One write(2) per line keeps lines from different threads whole.
        _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    /// One line, without its line feed. The context's ids are added unless `fields` names them.
    static func line(_ level: Level, _ message: String, _ fields: KeyValuePairs<String, String>, context: LogContext.Fields?,
                     format: Format, time: WallClock.Instant?) -> [UInt8] {
        // Built as bytes in one buffer: this runs once per request.
        var line: [UInt8] = []
        line.reserveCapacity(256)
        var extra: [(String, String)] = []
        if let context {
            if let id = context.requestID, !fields.contains(where: { $0.key == "request_id" }) { extra.append(("request_id", id)) }
            if let id = context.jobID, !fields.contains(where: { $0.key == "job_id" }) { extra.append(("job_id", id)) }
        }
        switch format {
        case .logfmt:
            line.append(contentsOf: "level=".utf8)
            line.append(contentsOf: level.rawValue.utf8)
            line.append(contentsOf: " msg=".utf8)
            appendQuoted(message, to: &line)
            for (key, value) in fields { appendPair(key, value, to: &line) }
            for (key, value) in extra { appendPair(key, value, to: &line) }
        case .json:
            line.append(contentsOf: #"{"ts":""#.utf8)
            if let time { line.append(contentsOf: time.rfc3339Milliseconds.utf8) }
            line.append(contentsOf: #"","level":""#.utf8)
            line.append(contentsOf: level.rawValue.utf8)
            line.append(contentsOf: #"","msg":"#.utf8)
            appendJSONString(message, to: &line)
            for (key, value) in fields { appendJSONMember(key, value, to: &line) }
            for (key, value) in extra { appendJSONMember(key, value, to: &line) }
            line.append(UInt8(ascii: "}"))
        }
        return line
    }

    private static func appendPair(_ key: String, _ value: String, to line: inout [UInt8]) {
        line.append(UInt8(ascii: " "))
        line.append(contentsOf: key.utf8)
        line.append(UInt8(ascii: "="))
        appendQuoted(value, to: &line)
    }

    private static func appendJSONMember(_ key: String, _ value: String, to line: inout [UInt8]) {
        line.append(UInt8(ascii: ","))
        appendJSONString(key, to: &line)
        line.append(UInt8(ascii: ":"))
        appendJSONString(value, to: &line)
    }

    /// A JSON string: quote, backslash and control characters escaped, the rest as UTF-8.
    static func appendJSONString(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
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

/// The request or job a thread works for, so every line it logs names it. Set by the code that
/// takes the work on (`with`); a thread started while it is set starts with it (`startThread`).
public enum LogContext {
    public struct Fields: Sendable, Equatable {
        public var requestID: String?
        public var jobID: String?

        public init(requestID: String? = nil, jobID: String? = nil) {
            self.requestID = requestID
            self.jobID = jobID
        }
    }

    private final class Box {
        var fields: Fields?
        init() {}
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { raw in
            if let raw { Unmanaged<AnyObject>.fromOpaque(raw).release() }
        }
        return key
    }()

    private static var box: Box {
        if let raw = pthread_getspecific(key) { return Unmanaged<Box>.fromOpaque(raw).takeUnretainedValue() }
        let box = Box()
        pthread_setspecific(key, Unmanaged.passRetained(box).toOpaque())
        return box
    }

    /// This thread's context now.
    public static var current: Fields? {
        guard let raw = pthread_getspecific(key) else { return nil }
        return Unmanaged<Box>.fromOpaque(raw).takeUnretainedValue().fields
    }

    /// Runs `body` with `fields` as this thread's context, then puts the one before back.
    public static func with<T>(_ fields: Fields?, _ body: () throws -> T) rethrows -> T {
        let box = self.box
        let before = box.fields
        box.fields = fields
        defer { box.fields = before }
        return try body()
    }

    /// Sets this thread's context for good (a thread just started, taking its starter's).
    public static func adopt(_ fields: Fields?) {
        if fields == nil && pthread_getspecific(key) == nil { return }
        box.fields = fields
    }
}
