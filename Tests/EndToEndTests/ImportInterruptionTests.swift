import Foundation
import Postgres
import Service
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A synchronous import interrupted half-way, through nginx: the service stopping or reloading,
/// the campaign leaving draft or deleted, the database's backends cancelled and terminated. Each
/// ends with honest counts (only members whose batch was handled, every row in the table counted
/// as what it is), nothing half-written, and a retry that finishes the list.
final class ImportInterruptionTests: LiveServiceTestCase {

    /// An import running on its own thread.
    final class RunningImport: @unchecked Sendable {
        let reply = SharedValue<Result<HTTPReply, Error>?>(nil)
        let answeredAt = SharedValue<Double?>(nil)
        let thread: Thread

        init(http: HTTPClient, campaign: String, list: String, token: String) {
            let reply = self.reply, answeredAt = self.answeredAt
            thread = Thread {
                let result = Result { try http.post("/api/campaigns/\(campaign)/leads/import-from-list", json: #"{"listId":"\#(list)"}"#, token: token) }
                answeredAt.withLock { $0 = monotonicSeconds() }
                reply.withLock { $0 = result }
            }
            thread.start()
        }

        func wait(timeout: TimeInterval) -> HTTPReply? {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline, reply.current == nil { Thread.sleep(forTimeInterval: 0.01) }
            guard case .success(let answer)? = reply.current else { return nil }
            return answer
        }
    }

    struct Setup {
        let seeder: Seeder
        let user: String
        let campaign: String
        let list: String
        let token: String
    }

    func setUpImport(rows: Int, channel: String = "linkedin") throws -> Setup {
        let seeder = try Seeder(env)
        let user = try seeder.user()
        return Setup(seeder: seeder, user: user, campaign: try seeder.campaign(user: user, channel: channel),
                     list: try seeder.rowsList(user: user, count: rows), token: try seeder.token(user: user))
    }

    /// The setup's import, through nginx, waited for.
    func importList(_ setup: Setup, timeout: TimeInterval = 120) throws -> HTTPReply {
        try client(timeout: timeout).post("/api/campaigns/\(setup.campaign)/leads/import-from-list",
                                          json: #"{"listId":"\#(setup.list)"}"#, token: setup.token)
    }

    /// The setup's import on a thread of its own.
    func startImport(_ setup: Setup, timeout: TimeInterval = 120) -> RunningImport {
        RunningImport(http: client(timeout: timeout), campaign: setup.campaign, list: setup.list, token: setup.token)
    }

    func inCampaign(_ setup: Setup) throws -> Int {
        try setup.seeder.count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [setup.campaign])
    }

    /// Waits until the import has committed its first batch; the count then.
    func waitUntilUnderWay(_ setup: Setup, rows: Int, _ service: ServiceProcess) throws -> Int {
        var now = 0
        let underWay = waitUntil(timeout: 30, interval: 0.01) {
            now = (try? inCampaign(setup)) ?? 0
            return now > 0
        }
        XCTAssertTrue(underWay, "the import did not start within 30 s" + context(service))
        XCTAssertLessThan(now, rows, "the import finished before the interruption: the list is too short to test anything" + context(service))
        return now
    }

    func counts(_ reply: HTTPReply) -> [Int] {
        let body = (try? reply.json()) ?? [:]
        return ["imported", "duplicates", "invalid", "errors", "total"].map { body[$0] as? Int ?? -1 }
    }

    func stats(_ setup: Setup) throws -> Int {
        try setup.seeder.count("SELECT coalesce((stats->>'total')::int, -1) FROM campaigns WHERE id = $1", [setup.campaign])
    }

    // MARK: - The service stops or reloads

    /// SIGTERM (a stop) and SIGHUP (a reload, which stops the old worker process) with a long
    /// import in flight: it is cut at the next batch and answered 206 within 5 s, with the counts
    /// of what was committed and the stats recomputed; a retry imports the rest.
    func testStopAndReloadCutALongImportAtABatchAndARetryFinishes() throws {
        for signal in [SIGTERM, SIGHUP] {
            let name = signal == SIGTERM ? "SIGTERM" : "SIGHUP"
            let rows = 50_000
            let setup = try setUpImport(rows: rows)
            let service = try startService("cut-\(name)", processes: 1, workers: 2)
            defer { service.stop() }
            let mark = service.logMark
            let running = startImport(setup)
            _ = try waitUntilUnderWay(setup, rows: rows, service)
            let signalled = monotonicSeconds()
            service.signal(signal)
            let reply = running.wait(timeout: 10)
            let answeredAfter = (running.answeredAt.current ?? .nan) - signalled
            let answer = try XCTUnwrap(reply, "\(name): no answer within 10 s" + context(service))
            XCTAssertLessThan(answeredAfter, 5, "\(name): answered \(answeredAfter) s after the signal" + context(service))
            XCTAssertEqual(answer.status, 206, "\(name): \(answer.text)" + context(service))
            let body = try answer.json()
            XCTAssertEqual(body["partial"] as? Bool, true, answer.text)
            XCTAssertEqual(body["error"] as? String, "service_stopping", answer.text)
            let committed = try inCampaign(setup)
            XCTAssertEqual(counts(answer), [committed, 0, 0, 0, committed], "\(name): the counts are what was committed")
            XCTAssertEqual(try stats(setup), committed, "\(name): the stats were recomputed")
            XCTAssertEqual(service.logLines(message: "child exited unexpectedly", since: mark), [], context(service))

            if signal == SIGTERM {
                XCTAssertEqual(service.stop(timeout: 30), 0, context(service))
                try start(service, arguments: arguments(processes: 1, workers: 2))
            }
            XCTAssertEqual(answer.headers["retry-after"], "1", answer.text)
            // A retry on a kept connection to the draining process is cut before its first batch
            // and told to retry; one reaching the new process imports the rest.
            var retry = try importList(setup, timeout: 120)
            for _ in 0..<20 where retry.status == 206 {
                XCTAssertEqual(counts(retry), [0, 0, 0, 0, 0], retry.text)
                Thread.sleep(forTimeInterval: 0.5)
                retry = try importList(setup, timeout: 120)
            }
            XCTAssertEqual(retry.status, 200, "\(name) retry: \(retry.text)" + context(service))
            XCTAssertEqual(counts(retry), [rows - committed, committed, 0, 0, rows], "\(name) retry")
            XCTAssertEqual(try inCampaign(setup), rows)
            XCTAssertEqual(try stats(setup), rows)
        }
    }

    // MARK: - The campaign changes under the import

    /// The campaign is switched to `active` during the import: no batch commits after the switch,
    /// the import stops there and says why, and what was committed before stays.
    func testCampaignLeavingDraftStopsTheImportAtTheNextBatch() throws {
        let rows = 50_000
        let setup = try setUpImport(rows: rows)
        let service = try startService("not-draft", processes: 1, workers: 2)
        defer { service.stop() }
        let running = startImport(setup)
        _ = try waitUntilUnderWay(setup, rows: rows, service)
        // Waits for the batches holding the campaign's share lock; none commits after it.
        try setup.seeder.connection.query("UPDATE campaigns SET status = 'active' WHERE id = $1", [setup.campaign])
        let atSwitch = try inCampaign(setup)
        let answer = try XCTUnwrap(running.wait(timeout: 30), "no answer" + context(service))
        XCTAssertEqual(answer.status, 206, answer.text + context(service))
        let body = try answer.json()
        XCTAssertEqual(body["error"] as? String, "campaign_not_draft", answer.text)
        XCTAssertEqual(body["partial"] as? Bool, true, answer.text)
        XCTAssertNotNil(body["message"] as? String, answer.text)
        XCTAssertEqual(try inCampaign(setup), atSwitch, "a batch committed into a campaign that was no longer a draft")
        XCTAssertEqual(counts(answer), [atSwitch, 0, 0, 0, atSwitch], answer.text)
        XCTAssertEqual(try stats(setup), atSwitch, "the stats cover what was committed")
    }

    /// The campaign is deleted during the import: the import stops at the next batch instead of
    /// failing every batch down to single rows, and logs no row errors.
    func testCampaignDeletedDuringTheImportStopsItAtOnce() throws {
        let rows = 50_000
        let setup = try setUpImport(rows: rows)
        let service = try startService("deleted", processes: 1, workers: 2)
        defer { service.stop() }
        let mark = service.logMark
        let running = startImport(setup)
        _ = try waitUntilUnderWay(setup, rows: rows, service)
        let deleted = monotonicSeconds()
        try setup.seeder.connection.query("DELETE FROM campaigns WHERE id = $1", [setup.campaign])
        let answer = try XCTUnwrap(running.wait(timeout: 30), "no answer" + context(service))
        XCTAssertLessThan((running.answeredAt.current ?? .nan) - deleted, 5, context(service))
        XCTAssertEqual(answer.status, 206, answer.text + context(service))
        XCTAssertEqual(try answer.json()["error"] as? String, "campaign_not_found", answer.text)
        let c = counts(answer)
        XCTAssertEqual(c[3], 0, "no row counts as an error: \(answer.text)")
        XCTAssertEqual(c[0], c[4], answer.text)
        XCTAssertEqual(service.logLines(message: "lead not inserted", since: mark), [], "the batches were split into single rows")
    }

    // MARK: - The database interrupts statements

    /// While an import runs, its backends are cancelled (as a statement timeout would) and
    /// terminated (as a restart or an operator would) at random moments. No row in the table is
    /// ever counted as an error or inserted twice; an import ends 200, or 206 when a page read
    /// was lost, and retries finish the list with every identity once.
    func testCancelledAndTerminatedBackendsNeverTurnRowsIntoErrors() throws {
        var generator = SplitMix64(seed: 0x1eadb0a7)
        let rows = 30_000
        let setup = try setUpImport(rows: rows)
        let service = try startService("interrupted", processes: 1, workers: 2, poolSize: 3)
        defer { service.stop() }
        let killer = try Seeder(env)
        var attempts = 0
        var answers: [String] = []
        var interruptions = 0
        while attempts < 8 {
            attempts += 1
            let running = startImport(setup, timeout: 180)
            while running.reply.current == nil {
                Thread.sleep(forTimeInterval: Double(generator.next() % 150) / 1000 + 0.02)
                let terminate = generator.next() % 3 == 0
                let function = terminate ? "pg_terminate_backend" : "pg_cancel_backend"
                let hit = try killer.count("""
                    SELECT count(\(function)(pid)) FROM pg_stat_activity
                    WHERE usename = 'leadimport_service' AND state = 'active' AND pid <> pg_backend_pid()
                      AND query LIKE '%campaign_leads%'
                    """)
                interruptions += hit
            }
            let answer = try XCTUnwrap(running.wait(timeout: 1))
            answers.append("\(answer.status) \(answer.text)")
            let c = counts(answer)
            XCTAssertEqual(c[3], 0, "a row counted as an error: \(answer.text)" + context(service))
            XCTAssertEqual(c[0] + c[1] + c[2] + c[3], c[4], answer.text)
            XCTAssertTrue([200, 206, 422].contains(answer.status), answer.text + context(service))
            if answer.status == 200 && c[4] == rows { break }
            if answer.status == 422 { break }
        }
        XCTAssertGreaterThan(interruptions, 0, "nothing was interrupted: \(answers)")
        // Whatever happened, one more import (uninterrupted) completes the list exactly.
        let final = try importList(setup, timeout: 180)
        XCTAssertEqual(counts(final)[4], rows, final.text)
        XCTAssertEqual(counts(final)[3], 0, final.text)
        XCTAssertEqual(try inCampaign(setup), rows, "answers: \(answers)")
        XCTAssertEqual(try setup.seeder.count(
            "SELECT count(DISTINCT identity_key) FROM campaign_leads WHERE campaign_id = $1", [setup.campaign]), rows)
        print("interrupted imports: \(interruptions) statements interrupted; answers:\n" + answers.joined(separator: "\n"))
    }

    // MARK: - Stopping behind a front end that keeps idle connections long

    /// nginx's default upstream settings (`keepalive 16;` and nothing else: idle kept connections
    /// live 60 s): after SIGTERM the service exits within 5 s of its last request's answer.
    func testStopDoesNotWaitForAFrontEndsIdleKeptConnections() throws {
        let shipped = try String(contentsOfFile: URL(fileURLWithPath: env.stackScript).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("nginx/leadimport.conf").path, encoding: .utf8)
        let defaults = shipped.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.contains("keepalive_timeout") && !$0.contains("keepalive_time ") && !$0.contains("keepalive_requests") }
            .joined(separator: "\n")
        XCTAssertTrue(defaults.contains("keepalive 16;"), "the shipped configuration changed: \(defaults)")
        let folder = env.scratch + "/nginx-defaults"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let serverBlock = folder + "/leadimport-defaults.conf"
        try defaults.write(toFile: serverBlock, atomically: true, encoding: .utf8)
        let port = Int.random(in: 20_000..<30_000)
        try env.startNginx(folder: folder, port: port, serverBlock: serverBlock)
        defer { try? env.stopNginx(folder: folder) }

        let rows = 50_000
        let setup = try setUpImport(rows: rows)
        let service = try startService("idle-kept", processes: 1, workers: 2)
        defer { service.stop() }
        var http = HTTPClient(baseURL: "http://127.0.0.1:\(port)")
        http.timeout = 120
        // A few requests leave kept connections idle in nginx's cache.
        for _ in 0..<4 { XCTAssertEqual(try http.request("GET", "/healthz").status, 200) }
        let running = RunningImport(http: http, campaign: setup.campaign, list: setup.list, token: setup.token)
        _ = try waitUntilUnderWay(setup, rows: rows, service)
        service.signal(SIGTERM)
        let answer = try XCTUnwrap(running.wait(timeout: 10), "no answer" + context(service))
        let answered = try XCTUnwrap(running.answeredAt.current)
        XCTAssertEqual(answer.status, 206, answer.text + context(service))
        let exited = waitUntil(timeout: 40, interval: 0.02) { !service.isRunning }
        let after = monotonicSeconds() - answered
        XCTAssertTrue(exited, "the service had not exited 40 s after its last answer" + context(service))
        XCTAssertLessThan(after, 5, "exited \(after) s after its last answer" + context(service))
        XCTAssertEqual(service.stop(timeout: 5), 0, context(service))
    }

    // MARK: - Threads the system will not give

    /// A worker process at its task limit (a cgroup's pids.max, as systemd's TasksMax sets it):
    /// imports that cannot start their stage threads run on their request's thread instead, and
    /// no process dies.
    func testImportsAtTheTaskLimitRunWithoutTheirThreadsAndNothingDies() throws {
        let controller = "/sys/fs/cgroup/pids"
        guard FileManager.default.isWritableFile(atPath: controller) else {
            throw XCTSkip("no writable pids cgroup controller at \(controller)")
        }
        let group = controller + "/leadimport-test-\(getpid())"
        try FileManager.default.createDirectory(atPath: group, withIntermediateDirectories: false)
        defer {
            // Back to the root group, then the group goes.
            if let pids = try? String(contentsOfFile: group + "/cgroup.procs", encoding: .utf8) {
                for pid in pids.split(separator: "\n") { try? String(pid).write(toFile: controller + "/cgroup.procs", atomically: false, encoding: .utf8) }
            }
            rmdir(group)
        }
        let service = try startService("task-limit", processes: 1, workers: 4, poolSize: 2)
        defer { service.stop() }
        let mark = service.logMark
        let seeder = try Seeder(env)
        let user = try seeder.user()
        let token = try seeder.token(user: user)
        let jobs = try (0..<3).map { _ in (campaign: try seeder.campaign(user: user), list: try seeder.rowsList(user: user, count: 3000)) }
        // Both pooled connections open before the limit.
        let http = client(timeout: 120)
        runConcurrently(4) { _ in _ = try? http.request("GET", "/healthz") }
        let worker = try XCTUnwrap(service.workerPIDs().first)
        // What ServiceLimits counts: once its connect threads have ended, an idle worker process
        // runs its fixed threads and its workers.
        let idle = ServiceLimits.idleThreadsPerWorkerProcess(workers: 4, jobRunners: ServiceLimits.defaultJobRunners(processes: 1))
        var threads = 0
        _ = waitUntil(timeout: 5) {
            threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(worker)/task").count) ?? 0
            return threads == idle
        }
        XCTAssertEqual(threads, idle, context(service))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(service.pid)/task").count,
                       ServiceLimits.supervisorThreads, "the supervisor's threads")
        try "\(threads + 1)".write(toFile: group + "/pids.max", atomically: false, encoding: .utf8)
        try "\(worker)".write(toFile: group + "/cgroup.procs", atomically: false, encoding: .utf8)

        let replies = SharedValue<[Int: HTTPReply]>([:])
        runConcurrently(jobs.count) { index in
            let job = jobs[index]
            if let reply = try? http.post("/api/campaigns/\(job.campaign)/leads/import-from-list",
                                                              json: #"{"listId":"\#(job.list)"}"#, token: token) {
                replies.withLock { $0[index] = reply }
            }
        }
        for index in jobs.indices {
            let reply = try XCTUnwrap(replies.current[index], "import \(index) got no answer" + context(service))
            XCTAssertEqual(reply.status, 200, reply.text + context(service))
            XCTAssertEqual((try? reply.json())?["imported"] as? Int, 3000, reply.text)
        }
        XCTAssertEqual(service.logLines(message: "child exited unexpectedly", since: mark), [], context(service))
        XCTAssertEqual(service.workerPIDs(), [worker], "the worker process was replaced" + context(service))
        let placed = (try? String(contentsOfFile: "/proc/\(worker)/cgroup", encoding: .utf8)) ?? "?"
        let peak = (try? String(contentsOfFile: group + "/pids.peak", encoding: .utf8)) ?? "?"
        let events = (try? String(contentsOfFile: group + "/pids.events", encoding: .utf8)) ?? "?"
        XCTAssertGreaterThan(service.logLines(message: "import stage threads not started; importing on the request's thread", since: mark).count, 0,
                             "the limit was never reached: the test tested nothing (\(threads) threads; cgroups \(placed); peak \(peak); events \(events))"
                             + context(service))
    }
}
