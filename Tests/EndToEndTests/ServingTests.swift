import Foundation
import Postgres
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The service as nginx and a client see it: health, routing, and the limits that keep it
/// answering (kept connections, a saturated database, clients that say nothing).
final class ServingTests: LiveServiceTestCase {

    // MARK: 1. /healthz follows the database, without a restart

    func testHealthzFollowsPostgresWithoutRestart() throws {
        let service = try startService("healthz", processes: 2, workers: 2)
        defer { service.stop() }
        let http = client()
        let waitLimit = 2.0 // the default --wait-limit

        let ok = try http.request("GET", "/healthz")
        XCTAssertEqual(ok.status, 200, context(service))
        XCTAssertEqual(ok.text.trimmingCharacters(in: .whitespacesAndNewlines), #"{"status":"ok"}"#, context(service))
        XCTAssertTrue(ok.headers["content-type"]?.hasPrefix("application/json") ?? false, "content-type: \(ok.headers)" + context(service))

        let supervisor = service.pid
        let workers = Set(service.workerPIDs())
        XCTAssertEqual(workers.count, 2, context(service))
        let mark = service.logMark

        var postgresStopped = false
        defer { if postgresStopped { XCTAssertNoThrow(try env.postgres("start"), "PostgreSQL did not start again") } }
        try env.postgres("stop")
        postgresStopped = true

        // Several requests, so that both worker processes (and their pools) are asked.
        for attempt in 0..<4 {
            let started = monotonicSeconds()
            let reply = try http.request("GET", "/healthz")
            let took = monotonicSeconds() - started
            let fields = errorFields(reply)
            let what = "attempt \(attempt) with PostgreSQL stopped: \(reply.status) \(reply.headers) \(reply.text) after \(took) s"
            XCTAssertEqual(reply.status, 503, context(service, what))
            XCTAssertNotNil(reply.headers["retry-after"], context(service, what))
            XCTAssertEqual(fields.error, "unavailable", context(service, what))
            XCTAssertEqual(fields.message, Self.serviceUnavailableMessage, "answered by nginx, not by the service: " + context(service, what))
            XCTAssertLessThanOrEqual(took, waitLimit + 1, context(service, what))
        }

        try env.postgres("start")
        postgresStopped = false

        var lastReply = ""
        let recovered = waitUntil(timeout: 10, interval: 0.2) {
            guard let reply = try? http.request("GET", "/healthz") else { return false }
            lastReply = "\(reply.status) \(reply.text)"
            return reply.status == 200
        }
        XCTAssertTrue(recovered, "/healthz not 200 within 10 s of PostgreSQL starting again; last: \(lastReply)" + context(service))
        // Every later request, whichever process takes it, finds the database again.
        for attempt in 0..<10 {
            let reply = try http.request("GET", "/healthz")
            XCTAssertEqual(reply.status, 200, context(service, "request \(attempt) after recovery: \(reply.text)"))
        }

        XCTAssertEqual(service.pid, supervisor, "the supervisor was restarted" + context(service))
        XCTAssertTrue(service.isRunning, "the supervisor exited" + context(service))
        XCTAssertEqual(Set(service.workerPIDs()), workers, "the worker processes were replaced" + context(service))
        XCTAssertEqual(service.logLines(message: "child exited unexpectedly", since: mark), [], context(service))
    }

    // MARK: 2. Routing errors are JSON

    func testUnknownPathAndWrongMethodAreJSONErrors() throws {
        let service = try startService("routing", processes: 1, workers: 2)
        defer { service.stop() }
        let http = client()

        let missing = try http.request("GET", "/no/such/endpoint")
        XCTAssertEqual(missing.status, 404, context(service, missing.text))
        XCTAssertTrue(missing.headers["content-type"]?.hasPrefix("application/json") ?? false, "content-type: \(missing.headers)" + context(service))
        let missingFields = errorFields(missing)
        XCTAssertEqual(missingFields.error, "not_found", missing.text + context(service))
        XCTAssertNotNil(missingFields.message, missing.text + context(service))

        let campaign = UUID().uuidString.lowercased()
        let wrongMethod = try http.request("GET", "/api/campaigns/\(campaign)/leads/import-from-list")
        XCTAssertEqual(wrongMethod.status, 405, context(service, wrongMethod.text))
        XCTAssertEqual(wrongMethod.headers["allow"], "POST", "headers: \(wrongMethod.headers)" + context(service))
        XCTAssertTrue(wrongMethod.headers["content-type"]?.hasPrefix("application/json") ?? false, "content-type: \(wrongMethod.headers)" + context(service))
        let wrongFields = errorFields(wrongMethod)
        XCTAssertEqual(wrongFields.error, "method_not_allowed", wrongMethod.text + context(service))
        XCTAssertNotNil(wrongFields.message, wrongMethod.text + context(service))
    }

    /// With no service behind the socket, nginx answers for it: the contract's 503 `unavailable`,
    /// JSON, with Retry-After.
    func testServiceDownIsAnsweredByNginxAs503() throws {
        // Nothing listens: a previous test's socket file is gone too, so nginx's connect fails at once.
        unlink(env.fastCGISocket)
        let http = client()
        let campaign = UUID().uuidString.lowercased()
        for (method, path) in [("GET", "/healthz"), ("POST", "/api/campaigns/\(campaign)/leads/import-from-list")] {
            let reply = method == "GET"
                ? try http.request(method, path)
                : try http.post(path, json: #"{"listId":"\#(campaign)"}"#, token: "li_whatever")
            let fields = errorFields(reply)
            let what = "\(method) \(path) with the service down: \(reply.status) \(reply.headers) \(reply.text)"
            XCTAssertEqual(reply.status, 503, what)
            XCTAssertNotNil(reply.headers["retry-after"], what)
            XCTAssertTrue(reply.headers["content-type"]?.hasPrefix("application/json") ?? false, what)
            XCTAssertEqual(fields.error, "unavailable", what)
            XCTAssertNotNil(fields.message, what)
        }
    }

    // MARK: 3. nginx's kept connections cannot pin the worker threads

    func testKeptConnectionsCannotPinWorkers() throws {
        let processes = 2, workers = 2
        let service = try startService("keepalive", processes: processes, workers: workers)
        defer { service.stop() }
        let http = client(timeout: 10)
        let concurrent = 4 * processes * workers * 3 / 2 // 24: six times the worker threads
        let rounds = 4

        for round in 0..<rounds {
            let replies = RequestResults()
            let started = monotonicSeconds()
            runConcurrently(concurrent) { index in
                let begun = monotonicSeconds()
                do {
                    let reply = try http.request("GET", "/healthz")
                    replies.append(LoadResult(thread: index, started: begun, finished: monotonicSeconds(), status: reply.status,
                                              detail: reply.status == 200 ? nil : reply.text))
                } catch {
                    replies.append(LoadResult(thread: index, started: begun, finished: monotonicSeconds(), status: nil, detail: "\(error)"))
                }
            }
            let took = monotonicSeconds() - started
            let results = replies.all
            let failed = results.filter { $0.status != 200 }
            XCTAssertEqual(results.count, concurrent, context(service))
            XCTAssertEqual(failed.count, 0, "round \(round) (\(String(format: "%.2f", took)) s):\n" + describe(failed) + context(service))

            // The scenario holds: after a round, nginx keeps more connections to the service than
            // there are worker threads, and they sit idle.
            Thread.sleep(forTimeInterval: 0.3)
            let kept = service.workerPIDs().map { unixConnectionCount(pid: $0) }
            if round == 0 {
                XCTAssertGreaterThan(kept.reduce(0, +), processes * workers,
                                     "nginx should keep more connections than there are workers (per process: \(kept))" + context(service))
            }
        }
    }

    // MARK: 4. A saturated database: answers within the wait limit

    func testSaturatedDatabaseAnswersWithinTheWaitLimit() throws {
        let seeder = try Seeder(env)
        let user = try seeder.user()
        let campaign = try seeder.campaign(user: user)
        let list = try seeder.rowsList(user: user, count: 3)
        let token = try seeder.token(user: user)
        let waitLimit = 1.0
        let service = try startService("saturated", processes: 1, workers: 4, poolSize: 2, waitLimit: waitLimit)
        defer { service.stop() }
        let http = client(timeout: 30)
        let path = "/api/campaigns/\(campaign)/leads/import-from-list"
        let body = #"{"listId":"\#(list)"}"#

        let locker = try Seeder.adminConnection(env)
        defer { locker.close() }
        try locker.queryUnprepared("BEGIN")
        try locker.queryUnprepared("LOCK TABLE campaigns IN ACCESS EXCLUSIVE MODE")
        var locked = true
        defer { if locked { _ = try? locker.queryUnprepared("ROLLBACK") } }
        let mark = service.logMark

        struct Answer: Sendable {
            let kind: String
            let index: Int
            let status: Int?
            let retryAfter: String?
            let error: String?
            let message: String?
            let seconds: Double
            var line: String {
                String(format: "%@ %2d: %@ after %.3f s retry-after=%@ %@", kind, index, status.map(String.init) ?? "no answer",
                       seconds, retryAfter ?? "-", error ?? message ?? "")
            }
        }
        let answers = SharedValue<[Answer]>([])
        let imports = 16
        let probes = 4
        // The imports, and at the same time a thread that asks /healthz now and then.
        runConcurrently(imports + 1) { index in
            let count = index < imports ? 1 : probes
            for probe in 0..<count {
                let started = monotonicSeconds()
                let kind = index < imports ? "import" : "healthz"
                do {
                    let reply = index < imports
                        ? try http.post(path, json: body, token: token)
                        : try http.request("GET", "/healthz")
                    let object = try? reply.json()
                    answers.withLock {
                        $0.append(Answer(kind: kind, index: index < imports ? index : probe, status: reply.status,
                                         retryAfter: reply.headers["retry-after"], error: object?["error"] as? String,
                                         message: object?["message"] as? String, seconds: monotonicSeconds() - started))
                    }
                } catch {
                    answers.withLock {
                        $0.append(Answer(kind: kind, index: index < imports ? index : probe, status: nil, retryAfter: nil,
                                         error: nil, message: "\(error)", seconds: monotonicSeconds() - started))
                    }
                }
                if index >= imports { Thread.sleep(forTimeInterval: 0.25) }
            }
        }
        // Still locked: once the burst is answered, /healthz needs no table and gets a connection.
        let calmStarted = monotonicSeconds()
        let calm = try http.request("GET", "/healthz")
        let calmSeconds = monotonicSeconds() - calmStarted

        _ = try locker.queryUnprepared("ROLLBACK")
        locked = false

        let all = answers.current.sorted { $0.seconds < $1.seconds }
        let serviceTimes = service.logLines(message: "request", since: mark).compactMap { line -> String? in
            guard let ms = ServiceProcess.field("ms", in: line), let status = ServiceProcess.field("status", in: line),
                  let path = ServiceProcess.field("path", in: line) else { return nil }
            return "\(path == "/healthz" ? "healthz" : "import") \(status) \(ms) ms"
        }
        let report = "answers (client side, slowest last):\n" + all.map(\.line).joined(separator: "\n")
            + "\nservice side (log, in order of completion):\n" + serviceTimes.joined(separator: "\n")

        let importAnswers = all.filter { $0.kind == "import" }
        XCTAssertEqual(importAnswers.count, imports, context(service, report))
        for answer in importAnswers {
            XCTAssertEqual(answer.status, 503, "import \(answer.index) not answered 503\n" + context(service, report))
            XCTAssertNotNil(answer.retryAfter, "import \(answer.index) has no Retry-After\n" + context(service, report))
            XCTAssertEqual(answer.error, "unavailable", "import \(answer.index)\n" + context(service, report))
            XCTAssertEqual(answer.message, Self.serviceUnavailableMessage, "import \(answer.index) answered by nginx?\n" + context(service, report))
        }
        let slowImports = importAnswers.filter { $0.seconds > waitLimit + 1 }
        XCTAssertEqual(slowImports.count, 0, "\(slowImports.count) of \(imports) imports answered later than the wait limit + 1 s\n" + context(service, report))

        let healthAnswers = all.filter { $0.kind == "healthz" }
        XCTAssertEqual(healthAnswers.count, probes, context(service, report))
        for answer in healthAnswers {
            XCTAssertTrue(answer.status == 200 || (answer.status == 503 && answer.retryAfter != nil),
                          "healthz probe \(answer.index) during the lock\n" + context(service, report))
            XCTAssertLessThanOrEqual(answer.seconds, waitLimit + 1, "healthz probe \(answer.index) during the lock was slow\n" + context(service, report))
        }
        XCTAssertEqual(calm.status, 200, "healthz after the burst, lock still held: \(calm.text)" + context(service))
        XCTAssertLessThanOrEqual(calmSeconds, waitLimit + 1, "healthz after the burst took \(calmSeconds) s" + context(service))

        // The lock released, the same request imports: the 503s were the lock's doing.
        let after = try http.post(path, json: body, token: token)
        XCTAssertEqual(after.status, 200, "import after the lock was released: \(after.text)" + context(service))
        XCTAssertEqual((try? after.json())?["imported"] as? Int, 3, after.text + context(service))
    }

    // MARK: 5. Clients that connect and say nothing hold no worker

    func testSilentClientsHoldNoWorker() throws {
        let processes = 2, workers = 2
        let service = try startService("silent", processes: processes, workers: workers)
        defer { service.stop() }
        let http = client(timeout: 10)

        let opened = monotonicSeconds()
        var silent: [RawUnixSocket] = []
        var oneByte: [RawUnixSocket] = []
        for _ in 0..<8 { silent.append(try RawUnixSocket(path: env.fastCGISocket)) }
        for _ in 0..<8 {
            let socket = try RawUnixSocket(path: env.fastCGISocket)
            try socket.send([1]) // the first byte of a FastCGI record header, and nothing more
            oneByte.append(socket)
        }
        defer { for socket in silent + oneByte { socket.close() } }
        // Let the worker processes accept them all.
        Thread.sleep(forTimeInterval: 0.3)
        let held = service.workerPIDs().map { unixConnectionCount(pid: $0) }
        XCTAssertGreaterThanOrEqual(held.reduce(0, +), 16, "the worker processes should hold the 16 connections: \(held)" + context(service))

        for index in 0..<20 {
            let started = monotonicSeconds()
            let reply = try http.request("GET", "/healthz")
            let took = monotonicSeconds() - started
            XCTAssertEqual(reply.status, 200, "sequential request \(index): \(reply.text)" + context(service))
            XCTAssertLessThan(took, 1.0, "sequential request \(index) took \(took) s" + context(service))
        }
        let concurrent = RequestResults()
        runConcurrently(12) { index in
            let started = monotonicSeconds()
            let result: LoadResult
            do {
                let reply = try http.request("GET", "/healthz")
                result = LoadResult(thread: index, started: started, finished: monotonicSeconds(), status: reply.status, detail: nil)
            } catch {
                result = LoadResult(thread: index, started: started, finished: monotonicSeconds(), status: nil, detail: "\(error)")
            }
            concurrent.append(result)
        }
        let results = concurrent.all
        XCTAssertEqual(results.count, 12, context(service))
        let bad = results.filter { $0.status != 200 || $0.duration >= 1.0 }
        XCTAssertEqual(bad.count, 0, "concurrent requests failed or took 1 s or more:\n" + describe(bad) + context(service))

        // They are not held for ever either: the service closes a connection with no complete
        // request head after its first-record timeout (5 s).
        for (index, socket) in (silent + oneByte).enumerated() {
            let left = max(0.1, opened + 5 + 2 - monotonicSeconds())
            let (bytes, closed) = socket.readUntilClosed(timeout: left)
            XCTAssertTrue(closed, "connection \(index) (\(index < 8 ? "silent" : "one byte")) still open 7 s after it was opened" + context(service))
            XCTAssertEqual(bytes, [], "connection \(index) got bytes" + context(service))
        }
        XCTAssertEqual(service.logLines(message: "child exited unexpectedly").count, 0, context(service))
    }
}

/// Results collected from several threads.
final class RequestResults: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [LoadResult] = []
    func append(_ result: LoadResult) { lock.lock(); results.append(result); lock.unlock() }
    var all: [LoadResult] { lock.lock(); defer { lock.unlock() }; return results }
}

/// A value behind a lock, for the test threads (Platform's `Locked` is not this target's import).
final class SharedValue<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
    var current: Value { withLock { $0 } }
}
