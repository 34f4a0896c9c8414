import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A raw connection to the FastCGI listening socket, bypassing nginx: for clients that misbehave
/// on purpose (send nothing, send one byte, send malformed records).
public final class RawUnixSocket: @unchecked Sendable {
    public private(set) var fd: Int32

    public enum Received: Equatable, Sendable {
        case bytes([UInt8])
        /// The peer closed its side (read returned 0), or reset the connection.
        case closed
        /// Nothing arrived within the timeout.
        case timedOut
    }

    /// Connects to a unix stream socket (blocking connect: the kernel queues it in the backlog).
    public init(path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestEnvironmentError(message: "socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw TestEnvironmentError(message: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            Glibc.close(fd)
            throw TestEnvironmentError(message: "connect to \(path) failed: errno \(code)")
        }
        self.fd = fd
    }

    deinit { close() }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw TestEnvironmentError(message: "send on the FastCGI socket failed: errno \(errno)") }
            offset += n
        }
    }

    /// Half-closes: the peer reads end-of-stream after what was sent.
    public func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// One read, waiting at most `timeout` seconds for something to arrive.
    public func receive(timeout: TimeInterval) -> Received {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(max(0, timeout * 1000)))
        if ready == 0 { return .timedOut }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        if n > 0 { return .bytes(Array(buffer[0..<n])) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return .timedOut }
        return .closed
    }

    /// Everything the peer sends until it closes, or until `timeout` seconds have passed.
    /// `closed` says whether the peer closed within the time.
    public func readUntilClosed(timeout: TimeInterval) -> (bytes: [UInt8], closed: Bool) {
        let deadline = Date().addingTimeInterval(timeout)
        var all: [UInt8] = []
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return (all, false) }
            switch receive(timeout: left) {
            case .bytes(let bytes): all += bytes
            case .closed: return (all, true)
            case .timedOut: if deadline.timeIntervalSinceNow <= 0 { return (all, false) }
            }
        }
    }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}

/// FastCGI records written from the specification (section 8), for raw clients.
public enum FastCGIBytes {
    public static let beginRequest: UInt8 = 1
    public static let endRequest: UInt8 = 3
    public static let params: UInt8 = 4
    public static let stdin: UInt8 = 5
    public static let stdout: UInt8 = 6

    public static func record(_ type: UInt8, id: UInt16 = 1, _ content: [UInt8] = [], padding: UInt8 = 0) -> [UInt8] {
        precondition(content.count <= 65535)
        var bytes: [UInt8] = [1, type, UInt8(id >> 8), UInt8(id & 0xFF),
                              UInt8(content.count >> 8), UInt8(content.count & 0xFF), padding, 0]
        bytes += content
        bytes += [UInt8](repeating: 0, count: Int(padding))
        return bytes
    }

    public static func begin(id: UInt16 = 1, role: UInt16 = 1, keepConnection: Bool = false) -> [UInt8] {
        record(beginRequest, id: id, [UInt8(role >> 8), UInt8(role & 0xFF), keepConnection ? 1 : 0, 0, 0, 0, 0, 0])
    }

    public static func pairs(_ parameters: [(String, String)]) -> [UInt8] {
        func length(_ n: Int) -> [UInt8] {
            n < 128 ? [UInt8(n)] : [UInt8((n >> 24) & 0x7F) | 0x80, UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
        }
        var bytes: [UInt8] = []
        for (name, value) in parameters {
            bytes += length(name.utf8.count) + length(value.utf8.count) + Array(name.utf8) + Array(value.utf8)
        }
        return bytes
    }

    /// A whole GET request as nginx would send it (PARAMS stream, empty STDIN).
    public static func getRequest(path: String, id: UInt16 = 1, role: UInt16 = 1) -> [UInt8] {
        let parameters = pairs([
            ("REQUEST_METHOD", "GET"), ("REQUEST_URI", path), ("DOCUMENT_URI", path), ("QUERY_STRING", ""),
            ("CONTENT_TYPE", ""), ("CONTENT_LENGTH", ""), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ])
        return begin(id: id, role: role) + record(params, id: id, parameters) + record(params, id: id) + record(stdin, id: id)
    }

    /// "0101 0001" → bytes; spaces ignored.
    public static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.filter { !$0.isWhitespace })
        precondition(digits.count % 2 == 0, "odd number of hex digits")
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// The record types found in a reply (for messages): (type, content) of each whole record.
    public static func records(in bytes: [UInt8]) -> [(type: UInt8, content: [UInt8])] {
        var out: [(UInt8, [UInt8])] = []
        var offset = 0
        while bytes.count - offset >= 8 {
            let length = Int(bytes[offset + 4]) << 8 | Int(bytes[offset + 5])
            let padding = Int(bytes[offset + 6])
            guard offset + 8 + length + padding <= bytes.count else { break }
            out.append((bytes[offset + 1], Array(bytes[(offset + 8)..<(offset + 8 + length)])))
            offset += 8 + length + padding
        }
        return out
    }
}
