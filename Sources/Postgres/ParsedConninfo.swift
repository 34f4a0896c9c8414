import CLibPQ

/// The parts of a connection string that may be shown (database, host, port) and the password,
/// which must never be shown.
struct ParsedConninfo {
    var endpoint: String
    var password: String?

    init(_ conninfo: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>? = nil
        guard let options = PQconninfoParse(conninfo, &errorMessage) else {
            // libpq's parse error quotes the offending part of the string, which may be the password.
            if let errorMessage { PQfreemem(errorMessage) }
            throw PostgresError(kind: .connectionFailed, message: "the database connection string is not valid (not shown)")
        }
        defer { PQconninfoFree(options) }
        var values: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { values[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        password = values["password"].flatMap { $0.isEmpty ? nil : $0 }
        let database = values["dbname"] ?? values["user"] ?? "default"
        var host = values["host"] ?? values["hostaddr"] ?? "local socket"
        if host.isEmpty { host = "local socket" }
        if let port = values["port"], !port.isEmpty { host += ":\(port)" }
        endpoint = "database \"\(database)\" at \(host)"
    }

    func redact(_ message: String) -> String {
        guard let password, message.contains(password) else { return message }
        return message.replacingAll(password, with: "***")
    }
}

extension String {
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.range(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

extension Substring {
    fileprivate func range(of target: String) -> Range<Substring.Index>? {
        let needle = Array(target.utf8)
        let haystack = self.utf8
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        var start = haystack.startIndex
        while start != haystack.endIndex {
            var match = true
            var position = start
            for byte in needle {
                guard position != haystack.endIndex, haystack[position] == byte else { match = false; break }
                position = haystack.index(after: position)
            }
            if match { return start..<position }
            start = haystack.index(after: start)
        }
        return nil
    }
}
