import HTTP

// MARK: - To FastCGI stdout

extension HTTPResponse {
    /// `Status: 200 OK`, the headers, a blank line, the body: what nginx expects on FCGI_STDOUT.
    /// Headers that could split the response (CR, LF or NUL in a value, a name that is not an HTTP
    /// token) are dropped rather than written, and reported in `dropped` by name.
    func fastCGIStdout() -> (bytes: [UInt8], dropped: [String]) {
        var dropped: [String] = []
        let status = (100...599).contains(self.status) ? self.status : 500
        // Built as bytes in one buffer: this runs once per request.
        var head: [UInt8] = []
        head.reserveCapacity(160 + body.count)
        head.append(contentsOf: "Status: ".utf8)
        head.append(contentsOf: String(status).utf8)
        if let reason = Self.reasonPhrase(status) {
            head.append(UInt8(ascii: " "))
            head.append(contentsOf: reason.utf8)
        }
        head.append(contentsOf: "\r\n".utf8)

        var contentType: String?
        var others: [(name: String, value: String)] = []
        for (name, value) in headers {
            guard Self.isToken(name) else {
                dropped.append(Self.isPrintable(name) ? name : "(invalid name)")
                continue
            }
            guard Self.isSafeValue(value) else {
                dropped.append(name)
                continue
            }
            if Self.equalsIgnoringASCIICase(name, "status") || Self.equalsIgnoringASCIICase(name, "content-length") {
                continue
            } else if Self.equalsIgnoringASCIICase(name, "content-type") {
                if contentType == nil { contentType = value }
            } else {
                others.append((name, value))
            }
        }
        head.append(contentsOf: "Content-Type: ".utf8)
        head.append(contentsOf: (contentType ?? "application/octet-stream").utf8)
        head.append(contentsOf: "\r\nContent-Length: ".utf8)
        head.append(contentsOf: String(body.count).utf8)
        head.append(contentsOf: "\r\n".utf8)
        for (name, value) in others {
            head.append(contentsOf: name.utf8)
            head.append(contentsOf: ": ".utf8)
            head.append(contentsOf: value.utf8)
            head.append(contentsOf: "\r\n".utf8)
        }
        head.append(contentsOf: "\r\n".utf8)
        head.append(contentsOf: body)
        return (head, dropped)
    }

    /// `name` (an HTTP token: ASCII) against a lowercase ASCII literal.
    static func equalsIgnoringASCIICase(_ name: String, _ lowercase: StaticString) -> Bool {
        guard name.utf8.count == lowercase.utf8CodeUnitCount else { return false }
        var index = 0
        for byte in name.utf8 {
            let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
            if folded != lowercase.utf8Start[index] { return false }
            index += 1
        }
        return true
    }

    static func isToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
        }
    }

    static func isSafeValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }

    static func isPrintable(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// Without a phrase nginx writes its own, so unknown codes simply get none.
    static func reasonPhrase(_ status: Int) -> String? {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return nil
        }
    }
}
