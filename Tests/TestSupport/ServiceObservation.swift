import Foundation
import Platform
#if canImport(Glibc)
import Glibc
#endif

extension ServiceProcess {
    /// The last `lines` lines of the service's log (supervisor and worker processes share it).
    public func logTail(_ lines: Int = 40) -> String {
        let all = log().split(separator: "\n", omittingEmptySubsequences: false)
        return all.suffix(lines).joined(separator: "\n")
    }

    /// The log's length now, to read only what comes after with `log(since:)`.
    public var logMark: Int { log().utf8.count }

    public func log(since mark: Int) -> String {
        let bytes = Array(log().utf8)
        guard mark < bytes.count else { return "" }
        return String(decoding: bytes[mark...], as: UTF8.self)
    }

    /// Lines of the log (since `mark`) whose message is `message` (`msg=...` exactly).
    public func logLines(message: String, since mark: Int = 0) -> [String] {
        let quoted = message.contains(" ") ? "msg=\"\(message)\"" : "msg=\(message)"
        let json = "\"msg\":\"\(message)\""
        return log(since: mark).split(separator: "\n").map(String.init).filter {
            $0.contains(quoted + " ") || $0.hasSuffix(quoted) || ($0.hasPrefix("{") && ($0.contains(json + ",") || $0.contains(json + "}")))
        }
    }

    /// Waits until a line with `message` appears in the log after `mark`.
    @discardableResult
    public func waitForLog(message: String, since mark: Int = 0, count: Int = 1, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if logLines(message: message, since: mark).count >= count { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    /// The value of `key=` in a log line.
    public static func field(_ key: String, in line: String) -> String? { LogLine.fields(line)[key] }

    /// Whether the supervisor process is still running (not yet reaped by the test).
    public var isRunning: Bool { process?.isRunning ?? false }
}

/// Watches the supervisor's children every few milliseconds, on a thread of its own, and records
/// when each pid appeared and disappeared (monotonicSeconds()).
public final class ChildWatcher: @unchecked Sendable {
    public struct Event: Sendable, CustomStringConvertible {
        public enum Kind: Sendable { case appeared, disappeared }
        public let kind: Kind
        public let pid: Int32
        public let at: Double
        public var description: String { String(format: "%@ %d at %.3f", kind == .appeared ? "+" : "-", pid, at) }
    }

    private let service: ServiceProcess
    private let stopping = Locked(false)
    private let recorded = Locked<[Event]>([])
    private let finished = CountdownLatch(count: 1)
    public let initial: Set<Int32>

    public init(_ service: ServiceProcess, interval: TimeInterval = 0.005) {
        self.service = service
        let first = Set(service.workerPIDs())
        initial = first
        try! startThread(name: "child-watcher") { [self] in
            var known = first
            while !stopping.current {
                let now = Set(service.workerPIDs())
                let at = monotonicSeconds()
                // A supervisor that has exited shows no children; that is not a change of children.
                if service.isRunning {
                    var events: [Event] = []
                    for pid in now.subtracting(known) { events.append(Event(kind: .appeared, pid: pid, at: at)) }
                    for pid in known.subtracting(now) { events.append(Event(kind: .disappeared, pid: pid, at: at)) }
                    if !events.isEmpty { recorded.withLock { $0 += events } }
                    known = now
                }
                Thread.sleep(forTimeInterval: interval)
            }
            finished.countDown()
        }
    }

    public func stop() {
        stopping.withLock { $0 = true }
        finished.wait()
    }

    public var events: [Event] { recorded.current }

    /// When `pid` was last seen gone, if it was.
    public func disappeared(_ pid: Int32) -> Double? {
        events.last { $0.kind == .disappeared && $0.pid == pid }?.at
    }

    /// The first pid that appeared at or after `time`, and when.
    public func firstAppearance(after time: Double) -> Event? {
        events.first { $0.kind == .appeared && $0.at >= time }
    }
}

/// Connected unix sockets a process holds, its listening socket (fd 0) left out: for a FastCGI
/// worker process, the connections from nginx it owns (kept or in use).
public func unixConnectionCount(pid: Int32) -> Int {
    guard let table = readProcFile("/proc/net/unix") else { return -1 }
    // Columns: Num RefCount Protocol Flags Type St Inode Path; St 03 is SS_CONNECTED.
    var connected = Set<String>()
    for line in table.split(separator: "\n").dropFirst() {
        let columns = line.split(separator: " ", omittingEmptySubsequences: true)
        if columns.count >= 7, columns[5] == "03" { connected.insert(String(columns[6])) }
    }
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { return -1 }
    var count = 0
    for entry in entries where entry != "0" {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(entry)"),
              target.hasPrefix("socket:[") else { continue }
        let inode = String(target.dropFirst("socket:[".count).dropLast())
        if connected.contains(inode) { count += 1 }
    }
    return count
}

/// The process among `pids` holding the TCP connection whose local port is `port` (the client's
/// end of a database connection, as `pg_stat_activity.client_port` names it); nil when none does.
public func process(holdingLocalTCPPort port: Int, among pids: [Int32]) -> Int32? {
    var inodes = Set<String>()
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = readProcFile(table) else { continue }
        // Columns: sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode.
        for line in text.split(separator: "\n").dropFirst() {
            let columns = line.split(separator: " ", omittingEmptySubsequences: true)
            guard columns.count > 9, let colon = columns[1].lastIndex(of: ":"),
                  Int(columns[1][columns[1].index(after: colon)...], radix: 16) == port, columns[9] != "0" else { continue }
            inodes.insert(String(columns[9]))
        }
    }
    guard !inodes.isEmpty else { return nil }
    for pid in pids {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { continue }
        for entry in entries {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(entry)"),
                  target.hasPrefix("socket:[") else { continue }
            if inodes.contains(String(target.dropFirst("socket:[".count).dropLast())) { return pid }
        }
    }
    return nil
}

/// The whole of a /proc file (they report a size of 0, so read until the end).
public func readProcFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}
