import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `leadimport serve` run the way systemd runs it: the test holds the listening socket (as the
/// .socket unit does) and hands it over on standard input, so it stays open across a restart.
/// Or, for several instances behind one front end, each binding a socket of its own.
public final class ServiceProcess: @unchecked Sendable {
    public let environment: TestEnvironment
    /// The socket the test holds and hands over; -1 when the service binds its own.
    public let listenFD: Int32
    /// The socket the service binds itself (`serve --listen unix:PATH`), if it does.
    public let listenPath: String?
    /// The front end `waitForWorkers` asks /healthz through.
    public let frontEndURL: String
    public private(set) var process: Process?
    public let logPath: String
    private var logHandle: FileHandle?

    /// Binds the socket nginx's upstream points at.
    public init(environment: TestEnvironment, logName: String = "service") throws {
        self.environment = environment
        self.logPath = "\(environment.scratch)/\(logName).log"
        listenFD = try Self.bindUnixSocket(environment.fastCGISocket)
        listenPath = nil
        frontEndURL = environment.nginxURL
    }

    /// A service that binds `listenPath` itself: the socket dies with its processes, so a front
    /// end is refused there (and turns to another instance) instead of queueing requests on a
    /// socket nobody serves any more.
    public init(environment: TestEnvironment, logName: String, listenPath: String, frontEndURL: String) {
        self.environment = environment
        self.logPath = "\(environment.scratch)/\(logName).log"
        listenFD = -1
        self.listenPath = listenPath
        self.frontEndURL = frontEndURL
    }

    deinit {
        stop()
        if listenFD >= 0 { close(listenFD) }
    }

    public func start(arguments: [String] = ["--workers", "4", "--pool-size", "2"], databaseURL: String? = nil,
                      waitUntilHealthy: Bool = true) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: environment.binary)
        process.arguments = ["serve"] + (listenPath.map { ["--listen", "unix:\($0)"] } ?? []) + arguments
        var env = ProcessInfo.processInfo.environment
        env["DATABASE_URL"] = databaseURL ?? environment.databaseURL
        process.environment = env
        if listenFD >= 0 { process.standardInput = FileHandle(fileDescriptor: listenFD, closeOnDealloc: false) }
        if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        logHandle = log
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        if waitUntilHealthy { try waitForWorkers() }
    }

    /// Until every worker process has reported ready (the supervisor logs it) or 20 s pass.
    public func waitForWorkers(expected: Int = 2, timeout: TimeInterval = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if workerPIDs().count >= expected, (try? HTTPClient(baseURL: frontEndURL).request("GET", "/healthz").status) == 200 {
                return
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw TestEnvironmentError(message: "the service did not become healthy within \(timeout) s; see \(logPath)")
    }

    public var pid: Int32 { process?.processIdentifier ?? 0 }

    /// The supervisor's children.
    public func workerPIDs() -> [Int32] {
        guard pid > 0, let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8) else { return [] }
        return text.split(separator: " ").compactMap { Int32($0) }
    }

    public func signal(_ signal: Int32) { if pid > 0 { kill(pid, signal) } }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    public func stop(timeout: TimeInterval = 60) -> Int32? {
        guard let process, process.isRunning else { return self.process?.terminationStatus }
        process.terminate()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        return process.terminationStatus
    }

    public func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    static func bindUnixSocket(_ path: String) throws -> Int32 {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestEnvironmentError(message: "socket failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw TestEnvironmentError(message: "socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 1024) == 0 else { throw TestEnvironmentError(message: "bind/listen \(path): errno \(errno)") }
        chmod(path, 0o666)
        // The test process must not hand this socket to every child it spawns; Process dup2s it
        // onto the service's standard input explicitly.
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }
}
