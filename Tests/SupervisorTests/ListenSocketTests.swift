#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
@testable import Supervisor

final class ListenSocketTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "listen-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: - ListenAddress

    func testParsesUnixAndTCPAddresses() throws {
        XCTAssertEqual(try ListenAddress(parsing: "unix:/run/x.sock"), .unix(path: "/run/x.sock"))
        XCTAssertEqual(try ListenAddress(parsing: "unix:relative/fcgi.sock"), .unix(path: "relative/fcgi.sock"))
        XCTAssertEqual(try ListenAddress(parsing: "127.0.0.1:9000"), .tcp(host: "127.0.0.1", port: 9000))
        XCTAssertEqual(try ListenAddress(parsing: "[::1]:9000"), .tcp(host: "::1", port: 9000))
        XCTAssertEqual(try ListenAddress(parsing: "[::]:1"), .tcp(host: "::", port: 1))
        XCTAssertEqual(try ListenAddress(parsing: "localhost:9000"), .tcp(host: "localhost", port: 9000))
        XCTAssertEqual(try ListenAddress(parsing: "0.0.0.0:65535"), .tcp(host: "0.0.0.0", port: 65535))
        XCTAssertEqual(try ListenAddress(parsing: "fcgi.internal:09000"), .tcp(host: "fcgi.internal", port: 9000))
    }

    func testDescriptionRoundTrips() throws {
        for text in ["unix:/run/x.sock", "127.0.0.1:9000", "[::1]:9000", "localhost:9000"] {
            XCTAssertEqual(try ListenAddress(parsing: text).description, text)
        }
    }

    func testRejectsMalformedAddressesWithAMessage() {
        let longPath = "unix:/" + String(repeating: "a", count: 110)
        let cases: [(String, String)] = [
            ("", "expected unix:PATH or HOST:PORT"),
            ("9000", "expected unix:PATH or HOST:PORT"),
            ("/run/x.sock", "expected unix:PATH or HOST:PORT"),
            ("unix:", "the socket path is empty"),
            (longPath, "longer than 107 bytes"),
            (":9000", "the host is empty"),
            ("localhost:", "the port must be a number from 1 to 65535"),
            ("localhost:0", "the port must be a number from 1 to 65535"),
            ("localhost:65536", "the port must be a number from 1 to 65535"),
            ("localhost:123456", "the port must be a number from 1 to 65535"),
            ("localhost:http", "the port must be a number from 1 to 65535"),
            ("localhost:+80", "the port must be a number from 1 to 65535"),
            ("localhost:-1", "the port must be a number from 1 to 65535"),
            ("localhost: 80", "the port must be a number from 1 to 65535"),
            ("::1:9000", "an IPv6 address needs brackets"),
            ("[::1]", "expected :PORT after ']'"),
            ("[::1]9000", "expected :PORT after ']'"),
            ("[::1:9000", "missing ']'"),
            ("[]:9000", "is empty"),
            ("[127.0.0.1]:9000", "brackets are for IPv6 addresses only"),
            ("local host:9000", "is not a name or an address"),
            ("http://localhost:9000", "not a URL"),
            ("localhost/x:9000", "is not a name or an address"),
        ]
        for (text, fragment) in cases {
            XCTAssertThrowsError(try ListenAddress(parsing: text), text) { error in
                let message = (error as? ListenSocketError)?.message ?? ""
                XCTAssertTrue(message.hasPrefix("invalid listen address \"\(text)\": "), message)
                XCTAssertTrue(message.contains(fragment), "\(text): \(message)")
                XCTAssertFalse(message.contains("\n"), message)
            }
        }
    }

    // MARK: - open

    func testOpensAUnixSocketWithGroupPermissionsCloseOnExec() throws {
        let path = directory + "/fcgi.sock"
        let fd = try ListenSocket.open(.unix(path: path))
        defer { close(fd) }
        var info = stat()
        XCTAssertEqual(lstat(path, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(info.st_mode & 0o777, 0o660)
        XCTAssertEqual(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC)
        XCTAssertNoThrow(try ListenSocket.validateListening(fd: fd, name: "it"))
        XCTAssertEqual(try echoThroughAccept(listenFD: fd, connect: { try SupervisorTestSockets.connectUnix(path) }), "hello")
    }

    func testReplacesAStaleSocketFile() throws {
        let path = directory + "/stale.sock"
        let first = try ListenSocket.open(.unix(path: path))
        close(first) // the file stays behind, with nobody listening: as after a crash
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        let second = try ListenSocket.open(.unix(path: path))
        defer { close(second) }
        XCTAssertEqual(try echoThroughAccept(listenFD: second, connect: { try SupervisorTestSockets.connectUnix(path) }), "hello")
    }

    func testRefusesToReplaceALiveSocket() throws {
        let path = directory + "/live.sock"
        let first = try ListenSocket.open(.unix(path: path))
        defer { close(first) }
        XCTAssertThrowsError(try ListenSocket.open(.unix(path: path))) { error in
            XCTAssertEqual("\(error)", "another process is already listening on unix:\(path)")
        }
        // The first one is untouched. (It saw the probe: one connection, closed at once.)
        let probe = accept(first, nil, nil)
        XCTAssertGreaterThanOrEqual(probe, 0)
        var byte: UInt8 = 0
        XCTAssertEqual(read(probe, &byte, 1), 0)
        close(probe)
        XCTAssertEqual(try echoThroughAccept(listenFD: first, connect: { try SupervisorTestSockets.connectUnix(path) }), "hello")
    }

    func testRefusesToRemoveSomethingThatIsNotASocket() throws {
        let path = directory + "/precious.txt"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("keep me".utf8)))
        XCTAssertThrowsError(try ListenSocket.open(.unix(path: path))) { error in
            XCTAssertEqual("\(error)", "\(path) exists and is not a socket; refusing to replace it")
        }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "keep me")
    }

    func testReportsAMissingDirectory() {
        let path = directory + "/missing/fcgi.sock"
        XCTAssertThrowsError(try ListenSocket.open(.unix(path: path))) { error in
            XCTAssertEqual("\(error)", "cannot bind unix:\(path): No such file or directory")
        }
    }

    func testOpensTCPOnIPv4AndIPv6Loopback() throws {
        let ipv4 = try ListenSocket.open(.tcp(host: "127.0.0.1", port: 0))
        defer { close(ipv4) }
        XCTAssertEqual(fcntl(ipv4, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC)
        XCTAssertEqual(ListenSocket.intOption(ipv4, SOL_SOCKET, SO_REUSEADDR), 1)
        let port4 = try XCTUnwrap(ListenSocket.localPort(ipv4))
        XCTAssertNotEqual(port4, 0)
        XCTAssertEqual(try echoThroughAccept(listenFD: ipv4, connect: { try SupervisorTestSockets.connectTCP("127.0.0.1", port4) }), "hello")

        let ipv6 = try ListenSocket.open(.tcp(host: "::1", port: 0))
        defer { close(ipv6) }
        let port6 = try XCTUnwrap(ListenSocket.localPort(ipv6))
        XCTAssertEqual(try echoThroughAccept(listenFD: ipv6, connect: { try SupervisorTestSockets.connectTCP("::1", port6) }), "hello")
    }

    func testOpensTCPByNameAndReportsAPortInUse() throws {
        let first = try ListenSocket.open(.tcp(host: "localhost", port: 0))
        defer { close(first) }
        let port = try XCTUnwrap(ListenSocket.localPort(first))
        XCTAssertNoThrow(try ListenSocket.validateListening(fd: first, name: "it"))
        let host = ListenSocket.intOption(first, SOL_SOCKET, SO_DOMAIN) == AF_INET6 ? "::1" : "127.0.0.1"
        XCTAssertThrowsError(try ListenSocket.open(.tcp(host: host, port: port))) { error in
            XCTAssertEqual("\(error)", "cannot listen on \(ListenAddress.tcp(host: host, port: port)): Address already in use")
        }
    }

    func testReportsAnUnresolvableHost() {
        XCTAssertThrowsError(try ListenSocket.open(.tcp(host: "no-such-host.invalid", port: 9000))) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot resolve no-such-host.invalid:9000: "), "\(error)")
        }
    }

    // MARK: - inherited socket

    func testAcceptsOnlyAListeningStreamSocket() throws {
        let hint = "pass --listen or run under systemd socket activation / spawn-fcgi"

        var ends: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&ends), 0)
        defer { close(ends[0]); close(ends[1]) }
        XCTAssertThrowsError(try ListenSocket.validateListening(fd: ends[0], name: "standard input")) { error in
            XCTAssertEqual("\(error)", "standard input is not a listening socket: \(hint)")
        }

        let file = open("/dev/null", O_RDONLY)
        defer { close(file) }
        XCTAssertThrowsError(try ListenSocket.validateListening(fd: file, name: "standard input")) { error in
            XCTAssertEqual("\(error)", "standard input is not a listening socket: \(hint)")
        }

        XCTAssertThrowsError(try ListenSocket.validateListening(fd: 9999, name: "standard input")) { error in
            XCTAssertEqual("\(error)", "standard input is closed, not a listening socket: \(hint)")
        }

        var pair: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        defer { close(pair[0]); close(pair[1]) }
        XCTAssertThrowsError(try ListenSocket.validateListening(fd: pair[0], name: "standard input")) { error in
            XCTAssertEqual("\(error)", "standard input is not a listening socket (it is a socket that does not listen): \(hint)")
        }

        let datagram = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(datagram) }
        XCTAssertThrowsError(try ListenSocket.validateListening(fd: datagram, name: "standard input")) { error in
            XCTAssertEqual("\(error)", "standard input is not a listening socket (it is not a stream socket): \(hint)")
        }

        let listening = try ListenSocket.open(.unix(path: directory + "/ok.sock"))
        defer { close(listening) }
        XCTAssertNoThrow(try ListenSocket.validateListening(fd: listening, name: "standard input"))
    }

    func testInheritedStandardInputChecksDescriptorZero() throws {
        // fd 0 of the test runner is whatever it was given; whatever it is, the answer matches the check.
        let expected = Result { try ListenSocket.validateListening(fd: 0, name: "standard input") }
        switch (Result { try ListenSocket.inheritedStandardInput() }, expected) {
        case (.success(let fd), .success): XCTAssertEqual(fd, 0)
        case (.failure(let error), .failure(let other)): XCTAssertEqual("\(error)", "\(other)")
        default: XCTFail("inheritedStandardInput disagrees with the check of fd 0")
        }
        // The real thing, a process whose standard input is not a socket, is in SupervisorProcessTests.
    }
}

// MARK: - Small socket clients for the supervisor's tests

struct SupervisorTestSocketError: Error, CustomStringConvertible {
    let description: String
}

enum SupervisorTestSockets {
    static func connectUnix(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SupervisorTestSocketError(description: "socket: \(errno)") }
        guard var address = ListenSocket.unixAddress(path) else { close(fd); throw SupervisorTestSocketError(description: "path") }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if result != 0 {
            let code = errno
            close(fd)
            throw SupervisorTestSocketError(description: "connect \(path): \(String(cString: strerror(code)))")
        }
        return fd
    }

    static func connectTCP(_ host: String, _ port: UInt16) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let info = list?.pointee else {
            throw SupervisorTestSocketError(description: "getaddrinfo \(host)")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(info.ai_family, info.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.ai_protocol)
        guard fd >= 0 else { throw SupervisorTestSocketError(description: "socket: \(errno)") }
        if connect(fd, info.ai_addr, info.ai_addrlen) != 0 {
            let code = errno
            close(fd)
            throw SupervisorTestSocketError(description: "connect \(host):\(port): \(String(cString: strerror(code)))")
        }
        return fd
    }

    static func setReceiveTimeout(_ fd: Int32, seconds: Int) {
        var time = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    static func sendAll(_ fd: Int32, _ text: String) throws {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { throw SupervisorTestSocketError(description: "send: \(String(cString: strerror(errno)))") }
            bytes = bytes.dropFirst(sent)
        }
    }

    /// Reads up to the first newline (excluded) or the end of the stream.
    static func receiveLine(_ fd: Int32) throws -> String {
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while !collected.contains(UInt8(ascii: "\n")) {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count < 0 { throw SupervisorTestSocketError(description: "recv: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            collected += buffer[0..<count]
        }
        guard let end = collected.firstIndex(of: UInt8(ascii: "\n")) else {
            throw SupervisorTestSocketError(description: "the connection ended without an answer (\(collected.count) bytes)")
        }
        return String(decoding: collected[..<end], as: UTF8.self)
    }
}

/// Connects, accepts on `listenFD` in this thread, and echoes one line back through the pair.
private func echoThroughAccept(listenFD: Int32, connect: () throws -> Int32) throws -> String {
    let client = try connect()
    defer { close(client) }
    let server = accept(listenFD, nil, nil)
    guard server >= 0 else { throw SupervisorTestSocketError(description: "accept: \(errno)") }
    defer { close(server) }
    try SupervisorTestSockets.sendAll(client, "hello\n")
    SupervisorTestSockets.setReceiveTimeout(server, seconds: 5)
    SupervisorTestSockets.setReceiveTimeout(client, seconds: 5)
    let line = try SupervisorTestSockets.receiveLine(server)
    try SupervisorTestSockets.sendAll(server, line + "\n")
    return try SupervisorTestSockets.receiveLine(client)
}
