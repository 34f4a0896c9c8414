#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Platform

/// An HTTP request as nginx hands it over in FastCGI parameters. Built without a socket in tests.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path as the client sent it: `REQUEST_URI` up to the `?`, still percent-encoded, so
    /// that `%2F` inside an id stays inside it (nginx's `DOCUMENT_URI` is decoded and has its
    /// slashes merged). `DOCUMENT_URI` only when no `REQUEST_URI` came.
    public var path: String
    public var query: String
    /// Lowercased names, `-` for `_`: `HTTP_X_FOO` is `x-foo`. `content-type` and `content-length`
    /// come from `CONTENT_TYPE` and `CONTENT_LENGTH`, and are absent when nginx passed them empty.
    public var headers: [String: String]
    /// At most the configured body limit. Empty when `bodyExceedsLimit`: a truncated body must never
    /// be mistaken for the whole one.
    public var body: [UInt8]
    /// `CONTENT_LENGTH`, or the bytes actually sent, went over the body limit; the body was not read.
    public var bodyExceedsLimit: Bool
    /// nginx's `$request_id` (the `REQUEST_ID` parameter), for log lines.
    public var requestID: String?
    /// When the whole request head had arrived: time spent queued for a worker counts against
    /// the request's own deadlines.
    public var received: MonotonicInstant

    public init(
        method: String,
        path: String,
        query: String = "",
        headers: [String: String] = [:],
        body: [UInt8] = [],
        bodyExceedsLimit: Bool = false,
        requestID: String? = nil,
        received: MonotonicInstant = .now()
    ) {
        self.received = received
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.bodyExceedsLimit = bodyExceedsLimit
        self.requestID = requestID
    }
}

/// What a handler answers. Written back as a CGI-style response (`Status:` header, never a status line).
public struct HTTPResponse: Sendable {
    public var status: Int
    /// In order. `Content-Length` and `Status` are always set by the server and ignored here;
    /// `Content-Type` is added when absent.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json(_ status: Int, _ body: String, headers: [(name: String, value: String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(body.utf8))
    }

    /// The answer when a handler throws: nothing about the failure reaches the client.
    static let internalError = HTTPResponse.json(500, #"{"error":"internal","message":"internal error"}"#)
}

/// Handlers run on worker threads, several at once.
public typealias RequestHandler = @Sendable (HTTPRequest) throws -> HTTPResponse

// MARK: - From FastCGI parameters

/// The parts of a request that its FastCGI parameters carry, before the body is read.
package struct RequestParameters: Equatable {
    var method: String
    var path: String
    var query: String
    var headers: [String: String]
    var requestID: String?
    /// nil when absent, empty or not a non-negative decimal number.
    package var contentLength: Int?
    /// nginx's `$msec` when it began sending us the request (the `REQUEST_START` parameter),
    /// in Unix seconds: the request's wait in the listening socket's backlog counts too.
    var webServerStart: Double?

    init(_ parameters: [(name: String, value: String)]) {
        var builder = Builder()
        for (name, value) in parameters {
            var name = name, value = value
            name.withUTF8 { name in value.withUTF8 { value in builder.add(name: name, value: value) } }
        }
        self = builder.finish()
    }

    init(method: String, path: String, query: String, headers: [String: String], requestID: String?,
         contentLength: Int?, webServerStart: Double?) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.requestID = requestID
        self.contentLength = contentLength
        self.webServerStart = webServerStart
    }

    /// Takes the parameters one name-value pair at a time, as bytes (straight from libfcgi's
    /// buffers), and makes strings only of those it keeps: nginx passes some thirty parameters, and
    /// most of them (DOCUMENT_ROOT, SERVER_SOFTWARE, REMOTE_PORT...) are never looked at.
    package struct Builder {
        private var method = ""
        private var documentURI: String?
        private var requestURI: String?
        private var query = ""
        private var headers: [String: String] = [:]
        private var requestID: String?
        private var webServerStart: Double?
        // The CGI variables, and the HTTP_ copies nginx also passes (it forwards every request
        // header, Content-Type and Content-Length included): one of each, never both joined.
        private var contentType: String?
        private var contentLength: String?
        private var headerContentType: String?
        private var headerContentLength: String?

        package init() {}

        package mutating func add(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
            func text() -> String { String(decoding: value, as: UTF8.self) }
            if Self.hasHTTPPrefix(name) {
                if name.count == 17 && Self.equals(name, "HTTP_CONTENT_TYPE") {
                    headerContentType = text()
                } else if name.count == 19 && Self.equals(name, "HTTP_CONTENT_LENGTH") {
                    headerContentLength = text()
                } else if name.count > 5 {
                    addHeader(Self.headerName(fromParameter: name), text())
                }
                return
            }
            switch name.count {
            case 11 where Self.equals(name, "REQUEST_URI"): requestURI = text()
            case 12 where Self.equals(name, "DOCUMENT_URI"): documentURI = text()
            case 12 where Self.equals(name, "QUERY_STRING"): query = text()
            case 12 where Self.equals(name, "CONTENT_TYPE"): contentType = text()
            case 10 where Self.equals(name, "REQUEST_ID"): requestID = value.isEmpty ? nil : text()
            case 13 where Self.equals(name, "REQUEST_START"): webServerStart = Double(text())
            case 14 where Self.equals(name, "REQUEST_METHOD"): method = text()
            case 14 where Self.equals(name, "CONTENT_LENGTH"): contentLength = text()
            default: break
            }
        }

        private mutating func addHeader(_ name: String, _ value: String) {
            // nginx before 1.23 passes a repeated header as repeated parameters.
            if let earlier = headers[name] {
                headers[name] = earlier + (name == "cookie" ? "; " : ", ") + value
            } else {
                headers[name] = value
            }
        }

        private static func hasHTTPPrefix(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
            name.count >= 5 && name[0] == UInt8(ascii: "H") && name[1] == UInt8(ascii: "T")
                && name[2] == UInt8(ascii: "T") && name[3] == UInt8(ascii: "P") && name[4] == UInt8(ascii: "_")
        }

        private static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: StaticString) -> Bool {
            literal.utf8CodeUnitCount == bytes.count
                && memcmp(bytes.baseAddress!, literal.utf8Start, bytes.count) == 0
        }

        /// `HTTP_X_REQUEST_ID` → `x-request-id`.
        static func headerName(fromParameter name: UnsafeBufferPointer<UInt8>) -> String {
            let rest = UnsafeBufferPointer(rebasing: name[5...])
            guard rest.allSatisfy({ $0 < 0x80 }) else {
                return RequestParameters.headerName(fromParameter: String(decoding: name, as: UTF8.self))
            }
            return String(unsafeUninitializedCapacity: rest.count) { out in
                for (index, byte) in rest.enumerated() {
                    switch byte {
                    case UInt8(ascii: "A")...UInt8(ascii: "Z"): out[index] = byte + 32
                    case UInt8(ascii: "_"): out[index] = UInt8(ascii: "-")
                    default: out[index] = byte
                    }
                }
                return rest.count
            }
        }

        package func finish() -> RequestParameters {
            var headers = headers
            // nginx passes CONTENT_TYPE and CONTENT_LENGTH empty when the request has none.
            if let type = contentType ?? headerContentType, !type.isEmpty { headers["content-type"] = type }
            let length = contentLength ?? headerContentLength
            if let length, !length.isEmpty { headers["content-length"] = length }
            let path: String
            if let requestURI, !requestURI.isEmpty {
                path = RequestParameters.path(ofRequestTarget: requestURI)
            } else if let documentURI {
                path = documentURI
            } else {
                path = ""
            }
            return RequestParameters(
                method: method, path: path, query: query, headers: headers, requestID: requestID,
                contentLength: length.flatMap(RequestParameters.decimal), webServerStart: webServerStart
            )
        }
    }

    /// `/a/b?q` → `/a/b`; the absolute form `http://host/a/b?q` → `/a/b`.
    /// Byte-wise: `/`, `:`, `?` and `#` are ASCII, so a cut there never splits a character.
    static func path(ofRequestTarget target: String) -> String {
        var target = target
        return target.withUTF8 { bytes -> String in
            var start = 0
            if bytes.first != UInt8(ascii: "/"), let colon = bytes.firstIndex(of: UInt8(ascii: ":")),
               colon + 2 < bytes.count, bytes[colon + 1] == UInt8(ascii: "/"), bytes[colon + 2] == UInt8(ascii: "/") {
                let authority = colon + 3
                start = bytes[authority...].firstIndex(of: UInt8(ascii: "/")) ?? bytes.count
            }
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "?") && bytes[end] != UInt8(ascii: "#") { end += 1 }
            return end == start ? "/" : String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        }
    }

    /// `HTTP_X_REQUEST_ID` → `x-request-id`.
    static func headerName(fromParameter name: String) -> String {
        String(name.dropFirst(5).lowercased().map { $0 == "_" ? "-" : $0 })
    }

    static func decimal(_ text: String) -> Int? {
        let digits = text.utf8
        guard !digits.isEmpty, digits.count <= 18,
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return Int(text)
    }

    package func request(body: [UInt8], bodyExceedsLimit: Bool, received: MonotonicInstant = .now()) -> HTTPRequest {
        var received = received
        if let webServerStart, let sent = MonotonicInstant.fromWallClock(seconds: webServerStart, notBefore: .seconds(60)),
           sent < received {
            received = sent
        }
        return HTTPRequest(
            method: method, path: path, query: query, headers: headers,
            body: bodyExceedsLimit ? [] : body, bodyExceedsLimit: bodyExceedsLimit, requestID: requestID,
            received: received
        )
    }
}

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
