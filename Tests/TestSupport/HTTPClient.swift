import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A response as it came over the wire from nginx.
public struct HTTPReply: Sendable {
    public let status: Int
    /// Lowercased names; repeated headers joined with ", ".
    public let headers: [String: String]
    public let body: Data

    public var text: String { String(decoding: body, as: UTF8.self) }

    public func json() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw TestEnvironmentError(message: "body is not a JSON object: \(text)")
        }
        return object
    }
}

/// A deliberately small HTTP/1.1 client over a plain TCP socket: one request per connection
/// (`Connection: close`), so every test request is independent and nothing is pooled behind
/// the test's back. It sends bytes exactly as given, so tests can send odd headers too.
public struct HTTPClient: Sendable {
    public let host: String
    public let port: UInt16
    public var timeout: TimeInterval = 30

    public init(baseURL: String) {
        let stripped = baseURL.replacingOccurrences(of: "http://", with: "")
        let parts = stripped.split(separator: ":")
        host = String(parts[0])
        port = UInt16(parts[1].prefix(while: { $0.isNumber }))!
    }

    public func request(_ method: String, _ path: String, headers: [(String, String)] = [], body: Data? = nil) throws -> HTTPReply {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        var raw = Data(head.utf8)
        if let body { raw.append(body) }
        return try send(raw)
    }

    public func post(_ path: String, json: String, token: String?, contentType: String? = "application/json") throws -> HTTPReply {
        var headers: [(String, String)] = []
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if let contentType { headers.append(("Content-Type", contentType)) }
        return try request("POST", path, headers: headers, body: Data(json.utf8))
    }

    /// Sends raw bytes and reads the whole reply.
    public func send(_ raw: Data) throws -> HTTPReply {
        let fd = try Self.connect(host: host, port: port, timeout: Int(timeout))
        defer { close(fd) }
        try raw.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                if n <= 0 { throw TestEnvironmentError(message: "send failed: errno \(errno)") }
                offset += n
            }
        }
        return try Self.parse(Self.readAll(fd, timeout: timeout))
    }

    /// A TCP connection with a receive timeout; the caller closes it.
    public static func connect(host: String, port: UInt16, timeout: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestEnvironmentError(message: "socket: \(errno)") }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw TestEnvironmentError(message: "connect to \(host):\(port) failed: errno \(errno)")
        }
        return fd
    }

    /// Everything the peer sends until it closes (or the receive timeout passes: an error).
    static func readAll(_ fd: Int32, timeout: TimeInterval) throws -> Data {
        var received = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n == 0 { return received }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestEnvironmentError(message: "no complete reply within \(timeout) s (errno \(errno)); got \(received.count) bytes")
            }
            received.append(contentsOf: chunk[0..<n])
        }
    }

    /// The status, headers and body of a whole reply (chunked bodies are joined).
    public static func parse(_ data: Data) throws -> HTTPReply {
        guard let split = data.range(of: Data("\r\n\r\n".utf8)) else {
            throw TestEnvironmentError(message: "no HTTP header in reply (\(data.count) bytes)")
        }
        let head = String(decoding: data[data.startIndex..<split.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw TestEnvironmentError(message: "bad status line: \(head)")
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name] = headers[name].map { $0 + ", " + value } ?? value
        }
        var body = Data(data[split.upperBound...])
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            body = try dechunk(body)
        }
        return HTTPReply(status: status, headers: headers, body: body)
    }

    static func dechunk(_ data: Data) throws -> Data {
        var out = Data()
        var index = data.startIndex
        while true {
            guard let lineEnd = data[index...].range(of: Data("\r\n".utf8)) else { throw TestEnvironmentError(message: "bad chunk") }
            let sizeText = String(decoding: data[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";")[0]
            guard let size = Int(sizeText, radix: 16) else { throw TestEnvironmentError(message: "bad chunk size") }
            index = lineEnd.upperBound
            if size == 0 { return out }
            out.append(data[index..<index + size])
            index += size + 2
        }
    }
}
