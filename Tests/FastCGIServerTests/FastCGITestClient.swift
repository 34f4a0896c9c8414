#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import HTTP
import XCTest
import Platform
@testable import FastCGIServer

/// A raw FastCGI client, written from the specification, so that the tests speak to the worker
/// process the way nginx does and can also misbehave on purpose.
enum FastCGIRecord {
    static let beginRequest: UInt8 = 1
    static let endRequest: UInt8 = 3
    static let params: UInt8 = 4
    static let stdin: UInt8 = 5
    static let stdout: UInt8 = 6
    static let stderr: UInt8 = 7

    static let responder: UInt16 = 1

    static func record(_ type: UInt8, id: UInt16 = 1, _ content: [UInt8] = [], padding: UInt8 = 0) -> [UInt8] {
        precondition(content.count <= 65535)
        var bytes: [UInt8] = [1, type, UInt8(id >> 8), UInt8(id & 0xFF),
                              UInt8(content.count >> 8), UInt8(content.count & 0xFF), padding, 0]
        bytes += content
        bytes += [UInt8](repeating: 0, count: Int(padding))
        return bytes
    }

    static func begin(id: UInt16 = 1, role: UInt16 = responder, keepConnection: Bool = false) -> [UInt8] {
        record(beginRequest, id: id, [UInt8(role >> 8), UInt8(role & 0xFF), keepConnection ? 1 : 0, 0, 0, 0, 0, 0])
    }

    static func encodeLength(_ length: Int) -> [UInt8] {
        if length < 128 { return [UInt8(length)] }
        return [UInt8((length >> 24) & 0x7F) | 0x80, UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
    }

    static func pairs(_ parameters: [(String, String)]) -> [UInt8] {
        var bytes: [UInt8] = []
        for (name, value) in parameters {
            bytes += encodeLength(name.utf8.count) + encodeLength(value.utf8.count)
            bytes += Array(name.utf8) + Array(value.utf8)
        }
        return bytes
    }

    /// A stream's content in records of at most `chunk` bytes (odd sizes get padding, as nginx
    /// pads), then its empty closing record.
    static func stream(_ type: UInt8, id: UInt16 = 1, _ content: [UInt8], chunk: Int = 65535) -> [UInt8] {
        var bytes: [UInt8] = []
        var offset = 0
        while offset < content.count {
            let end = min(offset + chunk, content.count)
            let piece = Array(content[offset..<end])
            bytes += record(type, id: id, piece, padding: UInt8((8 - piece.count % 8) % 8))
            offset = end
        }
        bytes += record(type, id: id)
        return bytes
    }

    /// A whole request as nginx sends it.
    static func request(
        id: UInt16 = 1, keepConnection: Bool = false, method: String = "GET", uri: String = "/",
        extra: [(String, String)] = [], body: [UInt8] = [], contentLength: Int? = nil, sendsContentLength: Bool = true,
        stdinChunk: Int = 65535
    ) -> [UInt8] {
        let path = String(uri.prefix(while: { $0 != "?" }))
        let query = uri.contains("?") ? String(uri[uri.index(after: uri.firstIndex(of: "?")!)...]) : ""
        var parameters: [(String, String)] = [
            ("REQUEST_METHOD", method), ("REQUEST_URI", uri), ("DOCUMENT_URI", path), ("QUERY_STRING", query),
            ("CONTENT_TYPE", ""),
        ]
        if sendsContentLength {
            parameters.append(("CONTENT_LENGTH", body.isEmpty && contentLength == nil ? "" : "\(contentLength ?? body.count)"))
        }
        parameters += extra
        return begin(id: id, keepConnection: keepConnection)
            + stream(params, id: id, pairs(parameters))
            + stream(stdin, id: id, body, chunk: stdinChunk)
    }
}

struct FastCGIAnswer {
    var status: Int
    var statusLine: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    var protocolStatus: UInt8

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
    var bodyText: String { String(decoding: body, as: UTF8.self) }
}

struct TestClientError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One client connection to the server's unix socket. Reads give up after `readTimeout`, so a test
/// that would hang fails instead.
final class TestConnection {
    private(set) var fd: Int32
    private var buffered: [UInt8] = []

    init(path: String, readTimeout: Duration = .seconds(5)) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestClientError("socket: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close()
            throw TestClientError("connect: \(code)")
        }
        setReadTimeout(readTimeout)
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// No more bytes from this side: what was sent is all there will be.
    func shutdownWrite() { _ = shutdown(fd, Int32(SHUT_WR)) }

    func setReadTimeout(_ timeout: Duration) {
        let micros = timeout.nanoseconds / 1000
        var value = timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EINTR { continue }
                throw TestClientError("send: \(errno)")
            }
            offset += sent
        }
    }

    /// Some more bytes; nil at the end of the stream. Throws when the read timed out.
    private func receiveSome() throws -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = recv(fd, &chunk, chunk.count, 0)
            if got > 0 { return Array(chunk[0..<got]) }
            if got == 0 { return nil }
            if errno == EINTR { continue }
            if errno == ECONNRESET { return nil }
            throw TestClientError(errno == EAGAIN ? "read timed out" : "recv: \(errno)")
        }
    }

    private func receive(exactly count: Int) throws -> [UInt8] {
        while buffered.count < count {
            guard let more = try receiveSome() else { throw TestClientError("connection closed by the server") }
            buffered += more
        }
        defer { buffered.removeFirst(count) }
        return Array(buffered[0..<count])
    }

    /// Reads records until FCGI_END_REQUEST for `id`, and parses the CGI response on stdout.
    func readAnswer(id: UInt16 = 1) throws -> FastCGIAnswer {
        var stdout: [UInt8] = []
        while true {
            let header = try receive(exactly: 8)
            guard header[0] == 1 else { throw TestClientError("record version \(header[0])") }
            let type = header[1]
            let recordID = UInt16(header[2]) << 8 | UInt16(header[3])
            let length = Int(header[4]) << 8 | Int(header[5])
            let content = try receive(exactly: length)
            _ = try receive(exactly: Int(header[6]))
            guard recordID == id else { throw TestClientError("record for request \(recordID), expected \(id)") }
            switch type {
            case FastCGIRecord.stdout: stdout += content
            case FastCGIRecord.stderr: continue
            case FastCGIRecord.endRequest: return try Self.parse(stdout, protocolStatus: content.count > 4 ? content[4] : 255)
            default: throw TestClientError("unexpected record type \(type)")
            }
        }
    }

    /// Sends a whole request and reads its answer.
    func exchange(_ request: [UInt8], id: UInt16 = 1) throws -> FastCGIAnswer {
        try send(request)
        return try readAnswer(id: id)
    }

    /// True when the server closed the connection (EOF or reset) before `timeout`; false when the
    /// connection was still open then. Data that arrives is ignored.
    func waitForClose(timeout: Duration) -> Bool {
        let deadline = MonotonicInstant.now() + timeout
        while MonotonicInstant.now() < deadline {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let remaining = max((deadline - MonotonicInstant.now()).milliseconds, 1)
            if poll(&descriptor, 1, Int32(remaining)) > 0 {
                var scratch = [UInt8](repeating: 0, count: 4096)
                let got = recv(fd, &scratch, scratch.count, Int32(MSG_DONTWAIT))
                if got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR) { return true }
            }
        }
        return false
    }

    static func parse(_ stdout: [UInt8], protocolStatus: UInt8) throws -> FastCGIAnswer {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let split = (0...max(stdout.count - 4, 0)).first(where: { Array(stdout[$0..<min($0 + 4, stdout.count)]) == separator }) else {
            throw TestClientError("no blank line in the response: \(String(decoding: stdout, as: UTF8.self))")
        }
        let head = String(decoding: stdout[0..<split], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard let first = lines.first, first.hasPrefix("Status: "), let status = Int(first.dropFirst(8).prefix(3)) else {
            throw TestClientError("response does not start with a Status header: \(head)")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw TestClientError("bad header line \(line)") }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...].drop(while: { $0 == " " }))))
        }
        return FastCGIAnswer(status: status, statusLine: String(first), headers: headers, body: Array(stdout[(split + 4)...]), protocolStatus: protocolStatus)
    }
}

/// A WorkerProcess running in this test process, on a unix socket in a fresh temporary folder.
final class RunningServer: @unchecked Sendable {
    let directory: String
    let socketPath: String
    let listenFD: Int32
    let process: WorkerProcess
    private let returned = CountdownLatch(count: 1)
    private let returnedFlag = Locked(false)

    init(configuration: WorkerProcessConfiguration, handler: @escaping RequestHandler) throws {
        var template = Array("/tmp/fcgi-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestClientError("mkdtemp: \(errno)") }
        directory = String(cString: made)
        socketPath = directory + "/s"

        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestClientError("socket: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = socketPath
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else { throw TestClientError("bind/listen: \(errno)") }
        listenFD = fd

        process = WorkerProcess(listenFD: fd, configuration: configuration, handler: handler)
        let ready = CountdownLatch(count: 1)
        let process = self.process
        let returned = self.returned
        let returnedFlag = self.returnedFlag
        try! startThread(name: "test-dispatch") {
            try! process.run(onReady: { ready.countDown() })
            returnedFlag.withLock { $0 = true }
            returned.countDown()
        }
        guard ready.wait(until: .now() + .seconds(5)) else { throw TestClientError("the worker process did not become ready") }
    }

    var hasReturned: Bool { returnedFlag.current }

    func connect(readTimeout: Duration = .seconds(5)) throws -> TestConnection {
        try TestConnection(path: socketPath, readTimeout: readTimeout)
    }

    /// Waits for `run` to return.
    @discardableResult
    func waitForReturn(timeout: Duration) -> Bool {
        returned.wait(until: .now() + timeout)
    }

    /// Stops the process and cleans up; for tearDown.
    func shutDown() {
        process.stop()
        _ = waitForReturn(timeout: .seconds(10))
        Glibc.close(listenFD)
        unlink(socketPath)
        rmdir(directory)
    }
}
