#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import HTTP
import Platform

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
