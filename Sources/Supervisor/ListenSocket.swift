#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Platform

/// Why the listening socket could not be had: one line, for the command to print before it exits
/// non-zero.
public struct ListenSocketError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Where `serve --listen` listens: `unix:PATH`, or `HOST:PORT` with HOST a name, an IPv4 address or
/// a bracketed IPv6 address (`[::1]:9000`).
public enum ListenAddress: Equatable, Sendable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: UInt16)

    /// `sockaddr_un.sun_path` holds 108 bytes on Linux, the terminating NUL included.
    static let maximumUnixPathBytes = 107

    public init(parsing text: String) throws {
        func invalid(_ why: String) -> ListenSocketError {
            ListenSocketError("invalid listen address \"\(text)\": \(why)")
        }
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst("unix:".count))
            if path.isEmpty { throw invalid("the socket path is empty (expected unix:/run/leadimport/fcgi.sock)") }
            if path.utf8.contains(0) { throw invalid("the socket path contains a NUL byte") }
            if path.utf8.count > Self.maximumUnixPathBytes {
                throw invalid("the socket path is longer than \(Self.maximumUnixPathBytes) bytes")
            }
            self = .unix(path: path)
            return
        }

        if text.contains("://") { throw invalid("expected unix:PATH or HOST:PORT, not a URL") }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw invalid("missing ']' after the IPv6 address")
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw invalid("expected :PORT after ']'") }
            portText = rest.dropFirst()
            if host.isEmpty { throw invalid("the address between '[' and ']' is empty") }
            if !host.contains(":") { throw invalid("brackets are for IPv6 addresses only") }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw invalid("expected unix:PATH or HOST:PORT")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.isEmpty { throw invalid("the host is empty (use 0.0.0.0:PORT or [::]:PORT for every interface)") }
            if host.contains(":") { throw invalid("an IPv6 address needs brackets, as in [::1]:9000") }
        }
        if host.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "[" || $0 == "]" }) || host.utf8.contains(0) {
            throw invalid("the host \"\(host)\" is not a name or an address")
        }
        guard !portText.isEmpty, portText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              portText.count <= 5, let port = Int(portText), (1...65535).contains(port) else {
            throw invalid("the port must be a number from 1 to 65535")
        }
        self = .tcp(host: String(host), port: UInt16(port))
    }

    public var description: String {
        switch self {
        case .unix(let path): return "unix:\(path)"
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// The listening socket that every FastCGI worker process accepts on. It is opened once, by the
/// supervisor (or handed to it by systemd or spawn-fcgi), and shared by the children as their
/// standard input. Nobody ever calls `shutdown()` on it (docs/fastcgi.md, 7).
public enum ListenSocket {
    /// Opens a listening stream socket, close-on-exec.
    ///
    /// - `unix`: a stale socket file (one that nobody listens on any more) is removed first; a file
    ///   that is not a socket, or a socket that someone still accepts on, is an error. The socket
    ///   file is made `0660` (the group is nginx's way in) before `listen`, so there is no moment at
    ///   which it accepts connections with wider permissions.
    /// - `tcp`: the host is resolved with `getaddrinfo`; the first address that binds wins.
    ///   `SO_REUSEADDR` is set so that a restart does not wait out TIME_WAIT.
    ///   (Port 0, which `ListenAddress(parsing:)` refuses, gives an ephemeral port.)
    public static func open(_ address: ListenAddress, backlog: Int32 = 1024) throws -> Int32 {
        switch address {
        case .unix(let path): return try openUnix(path: path, backlog: backlog)
        case .tcp(let host, let port): return try openTCP(host: host, port: port, backlog: backlog)
        }
    }

    /// The listening socket that systemd (`StandardInput=socket`) or spawn-fcgi handed over as
    /// standard input. Checks that fd 0 is a listening stream socket and returns 0.
    public static func inheritedStandardInput() throws -> Int32 {
        try validateListening(fd: 0, name: "standard input")
        return 0
    }

    // MARK: - Checks

    static let inheritHint = "pass --listen or run under systemd socket activation / spawn-fcgi"

    static func validateListening(fd: Int32, name: String) throws {
        var info = stat()
        if fstat(fd, &info) != 0 {
            let code = errno
            if code == EBADF { throw ListenSocketError("\(name) is closed, not a listening socket: \(inheritHint)") }
            throw ListenSocketError("\(name) cannot be examined (\(SystemError.text(code))): \(inheritHint)")
        }
        if info.st_mode & S_IFMT != S_IFSOCK {
            throw ListenSocketError("\(name) is not a listening socket: \(inheritHint)")
        }
        guard let type = intOption(fd, SOL_SOCKET, SO_TYPE), type == Int32(SOCK_STREAM.rawValue) else {
            throw ListenSocketError("\(name) is not a listening socket (it is not a stream socket): \(inheritHint)")
        }
        guard let accepting = intOption(fd, SOL_SOCKET, SO_ACCEPTCONN), accepting != 0 else {
            throw ListenSocketError("\(name) is not a listening socket (it is a socket that does not listen): \(inheritHint)")
        }
    }

    static func intOption(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, level, name, &value, &length) == 0 ? value : nil
    }

    // MARK: - unix

    private static func openUnix(path: String, backlog: Int32) throws -> Int32 {
        guard var address = unixAddress(path) else {
            throw ListenSocketError("cannot listen on unix:\(path): the path is longer than \(ListenAddress.maximumUnixPathBytes) bytes")
        }
        try removeStaleSocket(path: path)

        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw ListenSocketError("cannot create a unix socket: \(SystemError.text(errno))") }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if bound != 0 {
            let code = errno
            close(fd)
            throw ListenSocketError("cannot bind unix:\(path): \(SystemError.text(code))")
        }
        if chmod(path, 0o660) != 0 {
            let code = errno
            close(fd)
            unlink(path)
            throw ListenSocketError("cannot set the permissions of \(path): \(SystemError.text(code))")
        }
        if listen(fd, backlog) != 0 {
            let code = errno
            close(fd)
            unlink(path)
            throw ListenSocketError("cannot listen on unix:\(path): \(SystemError.text(code))")
        }
        return fd
    }

    static func unixAddress(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    /// Removes `path` if it is a socket file that nobody accepts on any more (a crashed
    /// predecessor's). Refuses to touch anything else.
    static func removeStaleSocket(path: String) throws {
        var info = stat()
        if lstat(path, &info) != 0 {
            let code = errno
            if code == ENOENT { return }
            throw ListenSocketError("cannot examine \(path): \(SystemError.text(code))")
        }
        if info.st_mode & S_IFMT != S_IFSOCK {
            throw ListenSocketError("\(path) exists and is not a socket; refusing to replace it")
        }
        // Is someone still listening? A non-blocking probe: a full backlog answers EAGAIN
        // instead of making us wait. (A live server sees one connection that closes at once.)
        guard var address = unixAddress(path) else { return }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if probe < 0 { throw ListenSocketError("cannot create a unix socket: \(SystemError.text(errno))") }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        let code = errno
        close(probe)
        if connected == 0 || code == EAGAIN || code == EINPROGRESS {
            throw ListenSocketError("another process is already listening on unix:\(path)")
        }
        guard code == ECONNREFUSED || code == ENOENT else {
            throw ListenSocketError("cannot tell whether unix:\(path) is still in use: \(SystemError.text(code))")
        }
        if unlink(path) != 0 && errno != ENOENT {
            throw ListenSocketError("cannot remove the stale socket \(path): \(SystemError.text(errno))")
        }
    }

    // MARK: - tcp

    private static func openTCP(host: String, port: UInt16, backlog: Int32) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        if resolved != 0 {
            let why = resolved == EAI_SYSTEM ? SystemError.text(errno) : String(cString: gai_strerror(resolved))
            throw ListenSocketError("cannot resolve \(ListenAddress.tcp(host: host, port: port)): \(why)")
        }
        defer { freeaddrinfo(list) }

        var lastError: Int32 = EADDRNOTAVAIL
        var entry = list
        while let current = entry {
            entry = current.pointee.ai_next
            let info = current.pointee
            let fd = socket(info.ai_family, info.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.ai_protocol)
            if fd < 0 { lastError = errno; continue }
            var one: Int32 = 1
            if setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) != 0
                || bind(fd, info.ai_addr, info.ai_addrlen) != 0
                || listen(fd, backlog) != 0 {
                lastError = errno
                close(fd)
                continue
            }
            return fd
        }
        throw ListenSocketError("cannot listen on \(ListenAddress.tcp(host: host, port: port)): \(SystemError.text(lastError))")
    }

    /// The port a TCP listening socket is bound to (for logs, and for tests that bind port 0).
    static func localPort(_ fd: Int32) -> UInt16? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard ok == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
        default:
            return nil
        }
    }
}
