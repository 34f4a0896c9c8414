import Foundation
import Postgres
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Faults under a steady load through nginx: malformed records on the FastCGI socket, a worker
/// process killed, the service restarted and reloaded, a stop with a slow request in flight.
/// What a fault may cost is counted: only requests in flight on a worker process that died.
final class CrashAndRestartTests: LiveServiceTestCase {

    /// The pitfall's 32 bytes: BEGIN_REQUEST, then a PARAMS record with two 0xC0000000 lengths.
    static let overflowingParams = FastCGIBytes.hex("0101000100080000 0001000000000000 0104000100080000 c0000000c0000000")

    struct Malformed {
        let name: String
        let bytes: [UInt8]
        /// Half-close after sending: what was sent is all there will be.
        let shutdownAfter: Bool
    }

    static let malformed: [Malformed] = [
        Malformed(name: "overflowing params", bytes: overflowingParams, shutdownAfter: false),
        Malformed(name: "garbage", bytes: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8) + (0..<40).map { UInt8(($0 * 73 + 11) % 256) },
                  shutdownAfter: false),
        Malformed(name: "unknown management record", bytes: FastCGIBytes.record(200, id: 0, [1, 2, 3, 4, 5, 6, 7, 8]), shutdownAfter: false),
        Malformed(name: "truncated header", bytes: Array(FastCGIBytes.begin().prefix(5)), shutdownAfter: true),
        Malformed(name: "unknown role", bytes: FastCGIBytes.getRequest(path: "/healthz", role: 9), shutdownAfter: false),
        Malformed(name: "short BEGIN_REQUEST", bytes: FastCGIBytes.record(FastCGIBytes.beginRequest, id: 1, [0, 1, 0, 0])
                    + FastCGIBytes.record(FastCGIBytes.params, id: 1), shutdownAfter: false),
    ] + managementRecords

    /// FCGI_GET_VALUES with four FCGI_MAX_CONNS: libfcgi's answer (17 bytes a name) overflows its
    /// 64-byte stack buffer and the process aborts.
    static let overflowingGetValues = FastCGIBytes.record(9, id: 0, FastCGIBytes.pairs(Array(repeating: ("FCGI_MAX_CONNS", ""), count: 4)))

    /// Management records (request id 0) of every shape, before a request, inside its head and
    /// inside its body: none may reach libfcgi.
    static let managementRecords: [Malformed] = {
        let request = FastCGIBytes.getRequest(path: "/healthz")
        let head = Array(request.dropLast(8))  // without the empty STDIN record
        let getValuesPairs: [(String, [UInt8])] = [
            ("four FCGI_MAX_CONNS", FastCGIBytes.pairs(Array(repeating: ("FCGI_MAX_CONNS", ""), count: 4))),
            ("every known name twice", FastCGIBytes.pairs(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"].flatMap { [($0, ""), ($0, "")] })),
            ("overflowing lengths", FastCGIBytes.hex("c0000000c0000000")),
            ("a length past the record", [0x7F, 0x7F, 65]),
            ("empty", []),
        ]
        var shapes: [Malformed] = []
        for (name, pairs) in getValuesPairs {
            let record = FastCGIBytes.record(9, id: 0, pairs)
            shapes.append(Malformed(name: "GET_VALUES, \(name), before the request", bytes: record + request, shutdownAfter: false))
            shapes.append(Malformed(name: "GET_VALUES, \(name), in the body", bytes: head + FastCGIBytes.record(FastCGIBytes.stdin, [1])
                                    + record + FastCGIBytes.record(FastCGIBytes.stdin), shutdownAfter: false))
        }
        let paramsOpen = FastCGIBytes.begin() + FastCGIBytes.record(FastCGIBytes.params, FastCGIBytes.pairs([("REQUEST_METHOD", "GET")]))
        shapes.append(Malformed(name: "GET_VALUES inside PARAMS", bytes: paramsOpen + overflowingGetValues + FastCGIBytes.record(FastCGIBytes.params)
                                + FastCGIBytes.record(FastCGIBytes.stdin), shutdownAfter: false))
        for type: UInt8 in [0, 2, 3, 6, 10, 11, 255] {
            shapes.append(Malformed(name: "management type \(type) in the body", bytes: head + FastCGIBytes.record(type, id: 0, [0, 0, 0, 0, 0, 0, 0, 0])
                                    + FastCGIBytes.record(FastCGIBytes.stdin), shutdownAfter: false))
        }
        return shapes
    }()

    /// Crashes of worker processes logged after `mark`, and the requests that failed.
    func crashAccounting(_ service: ServiceProcess, since mark: Int, load: SteadyLoad, results: [LoadResult], workersPerProcess: Int) -> String {
        let crashes = service.logLines(message: "child exited unexpectedly", since: mark)
        let failed = load.failures(in: results)
        return "\(results.count) requests, \(failed.count) failed, \(crashes.count) worker processes died (\(workersPerProcess) workers each)\n"
            + "crashes:\n" + crashes.joined(separator: "\n") + "\nfailures:\n" + describe(failed)
    }

    // MARK: 6. Malformed records straight to the socket

    func testMalformedRecordsUnderLoad() throws {
        let processes = 2, workers = 3
        let service = try startService("malformed", processes: processes, workers: workers)
        defer { service.stop() }
        let mark = service.logMark
        let watcher = ChildWatcher(service)
        let load = SteadyLoad(nginxURL: env.nginxURL, threads: 3)
        load.start()
        defer { load.stop(); watcher.stop() }

        var verdicts: [String] = []
        let started = monotonicSeconds()
        var round = 0
        // About six seconds: every kind once, spread out.
        while round < Self.malformed.count {
            let kind = Self.malformed[round % Self.malformed.count]
            let socket = try RawUnixSocket(path: env.fastCGISocket)
            try socket.send(kind.bytes)
            if kind.shutdownAfter { socket.shutdownWrite() }
            let (bytes, closed) = socket.readUntilClosed(timeout: 3)
            socket.close()
            let records = FastCGIBytes.records(in: bytes).map { "type \($0.type) \($0.content)" }
            verdicts.append("\(kind.name): \(closed ? "closed by the service" : "STILL OPEN after 3 s"), replies \(records)")
            XCTAssertTrue(closed, "\(kind.name): the service kept the connection open" + context(service))
            round += 1
            let next = started + Double(round) * 0.25
            let wait = next - monotonicSeconds()
            if wait > 0 { Thread.sleep(forTimeInterval: wait) }
        }
        Thread.sleep(forTimeInterval: 0.5)
        let results = load.stop()
        watcher.stop()

        let crashes = service.logLines(message: "child exited unexpectedly", since: mark)
        let failed = load.failures(in: results)
        let account = crashAccounting(service, since: mark, load: load, results: results, workersPerProcess: workers)
            + "\nmalformed connections:\n" + verdicts.joined(separator: "\n")
        XCTAssertGreaterThan(results.count, 20, "the load hardly ran\n" + account + context(service))
        XCTAssertEqual(crashes.count, 0, "a malformed connection killed a worker process\n" + account + context(service))
        XCTAssertLessThanOrEqual(failed.count, workers * crashes.count, account + context(service))
        // Replacements: every child that went away was followed by a new one within a second.
        for event in watcher.events where event.kind == .disappeared {
            let replacement = watcher.firstAppearance(after: event.at)
            XCTAssertNotNil(replacement, "no replacement for \(event.pid)\n\(watcher.events)" + context(service))
            if let replacement { XCTAssertLessThanOrEqual(replacement.at - event.at, 1.0, "\(watcher.events)" + context(service)) }
        }
        // And healthy again.
        XCTAssertTrue(waitUntil(timeout: 2) { service.workerPIDs().count == processes }, "worker processes: \(service.workerPIDs())" + context(service))
        for index in 0..<6 {
            let reply = try client().request("GET", "/healthz")
            XCTAssertEqual(reply.status, 200, "healthz \(index) afterwards: \(reply.text)" + context(service))
        }
        print("malformed records under load: " + account)
    }

    /// Every management record shape, one after another on fresh connections to one worker
    /// process: each connection is closed, the process never dies, and it answers afterwards.
    func testManagementRecordsNeverReachLibfcgi() throws {
        let service = try startService("management", processes: 1, workers: 2)
        defer { service.stop() }
        let mark = service.logMark
        let before = service.workerPIDs()
        for shape in Self.managementRecords {
            let socket = try RawUnixSocket(path: env.fastCGISocket)
            try socket.send(shape.bytes)
            let (bytes, closed) = socket.readUntilClosed(timeout: 3)
            socket.close()
            XCTAssertTrue(closed, "\(shape.name): the connection stayed open" + context(service))
            XCTAssertFalse(FastCGIBytes.records(in: bytes).contains { $0.type == 10 }, "\(shape.name): libfcgi answered it" + context(service))
            let crashes = service.logLines(message: "child exited unexpectedly", since: mark)
            XCTAssertEqual(crashes, [], "\(shape.name) killed the worker process" + context(service))
            if !crashes.isEmpty { break }
        }
        XCTAssertEqual(service.workerPIDs(), before, "the worker process was replaced" + context(service))
        let reply = try client().request("GET", "/healthz")
        XCTAssertEqual(reply.status, 200, reply.text + context(service))
    }

    // MARK: 7. A worker process killed with SIGKILL

    func testKilledWorkerIsReplacedUnderLoad() throws {
        let processes = 2, workers = 2, threads = 4
        let service = try startService("sigkill", processes: processes, workers: workers)
        defer { service.stop() }
        let mark = service.logMark
        let watcher = ChildWatcher(service)
        let load = SteadyLoad(nginxURL: env.nginxURL, threads: threads)
        load.start()
        defer { load.stop(); watcher.stop() }

        Thread.sleep(forTimeInterval: 1)
        XCTAssertGreaterThan(load.resultCount, 20, "the load hardly gets answers" + context(service))
        let victim = service.workerPIDs().sorted().first!
        let killedAt = monotonicSeconds()
        XCTAssertEqual(kill(victim, SIGKILL), 0)
        let replaced = waitUntil(timeout: 3, interval: 0.005) { watcher.firstAppearance(after: killedAt) != nil }
        let replacement = watcher.firstAppearance(after: killedAt)
        let ready = replacement.map { pid in
            waitUntil(timeout: 3) {
                service.logLines(message: "child ready", since: mark).contains { ServiceProcess.field("pid", in: $0) == String(pid.pid) }
            }
        } ?? false
        let keepGoing = killedAt + 1.5 - monotonicSeconds()
        if keepGoing > 0 { Thread.sleep(forTimeInterval: keepGoing) }
        let results = load.stop()
        watcher.stop()

        let failed = load.failures(in: results)
        // The process died between the kill and its disappearance from the supervisor's children
        // (polled every 5 ms): a request sent before that may have been in it.
        let diedBy = watcher.disappeared(victim) ?? killedAt
        let inFlight = results.filter { $0.started <= diedBy && $0.finished >= killedAt }
        let relative = failed.map { String(format: "started %+.1f ms, ended %+.1f ms after the kill: %@", ($0.started - killedAt) * 1000,
                                           ($0.finished - killedAt) * 1000, $0.status.map(String.init) ?? ($0.detail ?? "")) }
        let account = crashAccounting(service, since: mark, load: load, results: results, workersPerProcess: workers)
            + String(format: "\nthe victim was gone %.1f ms after the kill; ", (diedBy - killedAt) * 1000)
            + "\(inFlight.count) requests were in flight then; failures relative to the kill:\n" + relative.joined(separator: "\n")
            + "\nchildren: \(watcher.events)"
        print("kill -9 under load: " + account)
        XCTAssertTrue(replaced, "no new worker process within 3 s of the kill\n" + account + context(service))
        if let replacement {
            XCTAssertLessThanOrEqual(replacement.at - killedAt, 1.0, "the replacement took too long\n" + account + context(service))
            XCTAssertNotEqual(replacement.pid, victim)
            XCTAssertTrue(ready, "the replacement \(replacement.pid) did not report ready" + context(service))
        }
        let exits = service.logLines(message: "child exited unexpectedly", since: mark)
        XCTAssertEqual(exits.count, 1, account + context(service))
        XCTAssertEqual(exits.first.flatMap { ServiceProcess.field("pid", in: $0) }, String(victim), account + context(service))
        XCTAssertEqual(exits.first.flatMap { ServiceProcess.field("status", in: $0) }, "signal KILL", account + context(service))
        XCTAssertGreaterThan(results.count, 100, "the load hardly ran\n" + account + context(service))
        // Only requests in flight on the dead process may fail. (Not "at most one per worker
        // thread": nginx also writes requests onto the idle kept connections a busy process owns,
        // where they wait for a worker, and they die with the process too. Each load thread has
        // one request in flight at a time.)
        let notInFlight = failed.filter { !($0.started <= diedBy && $0.finished >= killedAt) }
        XCTAssertEqual(notInFlight.count, 0, "requests sent after the process was gone failed\n" + account + context(service))
        // A thread whose request died with the process may send its next one before nginx has
        // read the EOF on another kept connection of that process, and lose it too (nginx never
        // retries): that one was also sent to the dead process, inside the death window above.
        // Nothing beyond two a thread, and none after the window.
        XCTAssertLessThanOrEqual(failed.count, 2 * threads, account + context(service))
        XCTAssertEqual(service.workerPIDs().count, processes, context(service))
        XCTAssertFalse(service.workerPIDs().contains(victim), context(service))
        XCTAssertEqual(try client().request("GET", "/healthz").status, 200, context(service))
    }

    // MARK: 8. Restart on the held socket, and SIGHUP, under load

    /// How long a stop (or one child's replacement in a reload) may take while requests keep
    /// coming: the requests here take milliseconds, and nginx closes an idle kept connection
    /// after 4 s (keepalive_timeout), so 10 s is generous.
    static let drainPatience: TimeInterval = 10

    func testRestartOnTheHeldSocketLosesNoRequest() throws {
        let arguments = arguments(processes: 2, workers: 2)
        let service = try ServiceProcess(environment: env, logName: "foundation-restart")
        try start(service, arguments: arguments)
        defer { service.stop() }
        let load = SteadyLoad(nginxURL: env.nginxURL, threads: 4, timeout: 90)
        load.start()
        defer { load.stop() }
        Thread.sleep(forTimeInterval: 1)
        XCTAssertGreaterThan(load.resultCount, 20, "the load hardly gets answers" + context(service))

        // systemd's restart: SIGTERM, wait for the exit, start the next process on the same socket.
        let stopStarted = monotonicSeconds()
        service.signal(SIGTERM)
        let exitedUnderLoad = waitUntil(timeout: Self.drainPatience) { !service.isRunning }
        var loadStoppedEarly: [LoadResult]?
        if !exitedUnderLoad {
            // Let nginx's kept connections go idle so that the old service can finish (and the
            // test with it); what was lost so far still counts.
            loadStoppedEarly = load.stop()
            _ = waitUntil(timeout: 60) { !service.isRunning }
        }
        let stopped = monotonicSeconds()
        let exited = !service.isRunning
        let reason = exited ? service.process?.terminationReason : nil
        let status = exited ? service.process?.terminationStatus : nil
        if !exited { service.signal(SIGKILL) }
        try start(service, arguments: arguments)
        let restarted = monotonicSeconds()
        Thread.sleep(forTimeInterval: 1)
        let results = loadStoppedEarly ?? load.stop()

        let failed = load.failures(in: results)
        let slowest = results.max { $0.duration < $1.duration }
        let timing = String(format: "the old service exited %.2f s after SIGTERM%@, the new one was healthy %.2f s later; "
                                + "%d requests, %d failed; slowest %@",
                            stopped - stopStarted, exitedUnderLoad ? "" : " (once the load had stopped)", restarted - stopped,
                            results.count, failed.count, slowest?.description ?? "-")
        print("restart under load: " + timing)
        XCTAssertTrue(exitedUnderLoad, "the old service did not exit within \(Self.drainPatience) s of SIGTERM while requests kept coming: "
                      + timing + context(service, lines: 30))
        XCTAssertEqual(reason, .exit, "the old service did not exit by itself: \(timing)" + context(service))
        XCTAssertEqual(status, 0, timing + context(service))
        XCTAssertEqual(failed.count, 0, timing + "\n" + describe(failed) + context(service, lines: 80))
        XCTAssertGreaterThan(overlapping(results, from: stopStarted, to: restarted).count, 0, "no request overlapped the restart: " + timing + context(service))
    }

    func testReloadReplacesEveryWorkerWithoutFailingARequest() throws {
        let processes = 2, workers = 2
        let service = try startService("sighup", processes: processes, workers: workers)
        defer { service.stop() }
        let load = SteadyLoad(nginxURL: env.nginxURL, threads: 4, timeout: 90)
        load.start()
        defer { load.stop() }
        Thread.sleep(forTimeInterval: 1)
        XCTAssertGreaterThan(load.resultCount, 20, "the load hardly gets answers" + context(service))

        let before = Set(service.workerPIDs())
        let supervisor = service.pid
        let mark = service.logMark
        let reloadStarted = monotonicSeconds()
        service.signal(SIGHUP)
        let patience = Self.drainPatience * Double(processes)
        let completedUnderLoad = service.waitForLog(message: "reload complete", since: mark, timeout: patience)
        var results: [LoadResult]
        if completedUnderLoad {
            Thread.sleep(forTimeInterval: 1)
            results = load.stop()
        } else {
            results = load.stop()
            _ = service.waitForLog(message: "reload complete", since: mark, timeout: 70)
        }
        let reloadTook = monotonicSeconds() - reloadStarted
        let after = Set(service.workerPIDs())

        let failed = load.failures(in: results)
        let timing = String(format: "reload %@ after %.2f s; %d requests, %d failed; slowest %@",
                            completedUnderLoad ? "completed under load" : "completed only once the load had stopped",
                            reloadTook, results.count, failed.count, results.max { $0.duration < $1.duration }?.description ?? "-")
        print("reload under load: " + timing)
        XCTAssertTrue(completedUnderLoad, "no \"reload complete\" within \(patience) s while requests kept coming: " + timing
                      + context(service, lines: 30))
        XCTAssertEqual(service.pid, supervisor, "the supervisor changed" + context(service))
        XCTAssertEqual(after.count, processes, "children now: \(after)" + context(service))
        XCTAssertTrue(after.isDisjoint(with: before), "not every worker process was replaced: before \(before), after \(after)" + context(service))
        XCTAssertEqual(failed.count, 0, timing + "\n" + describe(failed) + context(service, lines: 80))
        XCTAssertEqual(service.logLines(message: "child exited unexpectedly", since: mark), [], context(service))
    }

    // MARK: 9. SIGTERM with a slow import in flight: ImportInterruptionTests
}
