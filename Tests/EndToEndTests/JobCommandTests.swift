import Foundation
import LeadCore
import Postgres
import Store
import TestSupport
import XCTest

/// The command line's side of import jobs against PostgreSQL: `import --async` records one,
/// `jobs show` prints and follows one (run by a real service), `jobs cancel` cancels one.
final class JobCommandTests: LiveServiceTestCase {
    var service: Connection!
    var seeder: Seeder!

    override func setUpWithError() throws {
        try super.setUpWithError()
        service = try Connection.connect(env.databaseURL)
        seeder = try Seeder(env)
        try endUnfinishedJobs()
    }

    override func tearDown() {
        // A later test's service would otherwise run the jobs left queued here.
        XCTAssertNoThrow(try endUnfinishedJobs())
        service?.close()
        super.tearDown()
    }

    /// Jobs other tests left queued or running: a service started here would claim them first.
    func endUnfinishedJobs() throws {
        let owner = try Connection.connect(env.ownerDatabaseURL)
        defer { owner.close() }
        _ = try owner.query("""
            UPDATE import_jobs SET state = 'cancelled', finished_at = now(), lease_token = NULL, lease_expires_at = NULL
            WHERE state IN ('queued', 'running')
            """, [])
    }

    var database: [String: String] { ["DATABASE_URL": env.databaseURL] }

    func record(user: String, campaign: String, list: String) throws -> ImportJob {
        guard case .created(let job) = try JobStore().record(NewImportJob(user: user, campaign: campaign, list: list, fingerprint: []),
                                                             on: service) else {
            throw TestEnvironmentError(message: "the job was not recorded")
        }
        return job
    }

    func json(_ text: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try XCTUnwrap(object as? [String: Any], text)
    }

    func lines(_ text: String) -> [Substring] { text.split(separator: "\n") }

    // MARK: import --async

    func testAsyncRecordsAQueuedJobAndPrintsIt() throws {
        let user = try seeder.user()
        let campaign = try seeder.campaign(user: user, channel: "linkedin")
        let list = try seeder.rowsList(user: user, count: 10)
        let result = try env.run(["import", "--user", user, "--campaign", campaign, "--list", list, "--async"], environment: database)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(lines(result.stdout).count, 1, "the job alone on stdout: \(result.stdout)")
        let job = try json(result.stdout)
        let id = try XCTUnwrap(job["id"] as? String)
        XCTAssertEqual(job["state"] as? String, "queued")
        XCTAssertEqual(job["campaignId"] as? String, campaign)
        XCTAssertEqual(job["listId"] as? String, list)
        XCTAssertEqual((job["counts"] as? [String: Int])?["total"], 0)
        XCTAssertTrue(job["httpStatus"] is NSNull, result.stdout)
        XCTAssertFalse(result.stderr.contains("rows/s"), "no progress line for a job: \(result.stderr)")

        XCTAssertEqual(try seeder.count("""
            SELECT count(*) FROM import_jobs
            WHERE id = $1 AND user_id = $2 AND campaign_id = $3 AND list_id = $4 AND state = 'queued'
              AND filter IS NULL AND dry_run IS NULL
            """, [id, user, campaign, list]), 1)
        XCTAssertEqual(try seeder.count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign]), 0,
                       "recorded, not run")
        let stored = try XCTUnwrap(JobStore().job(id: id, user: user, on: service))
        XCTAssertEqual(result.stdout, stored.job.body + "\n", "the job as the API shows it")
    }

    /// The synchronous import's checks come first, with its error bodies; a full queue is the
    /// endpoint's 429. Nothing is recorded by a refusal.
    func testAsyncRefusesAsTheImportDoes() throws {
        let user = try seeder.user(), stranger = try seeder.user()
        let campaign = try seeder.campaign(user: user, channel: "linkedin")
        let active = try seeder.campaign(user: user, channel: "linkedin", status: "active")
        let list = try seeder.rowsList(user: user, count: 3)
        let cases: [(campaign: String, list: String, as: String, error: RequestError)] = [
            (campaign, list, stranger, .campaignNotFound),
            (campaign, UUID().uuidString.lowercased(), user, .listNotFound),
            (active, list, user, .campaignNotDraft),
        ]
        for refusal in cases {
            let result = try env.run(["import", "--user", refusal.as, "--campaign", refusal.campaign, "--list", refusal.list, "--async"],
                                     environment: database)
            XCTAssertNotEqual(result.status, 0, refusal.error.code)
            XCTAssertEqual(result.stdout, refusal.error.body + "\n")
            XCTAssertEqual(lines(result.stderr).count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(refusal.error.message), result.stderr)
        }
        XCTAssertEqual(try seeder.count("SELECT count(*) FROM import_jobs WHERE user_id IN ($1, $2)", [user, stranger]), 0)

        for _ in 0..<JobRules.queuedLimitPerUser { _ = try record(user: user, campaign: campaign, list: list) }
        let full = try env.run(["import", "--user", user, "--campaign", campaign, "--list", list, "--async"], environment: database)
        XCTAssertNotEqual(full.status, 0)
        XCTAssertEqual(full.stdout, RequestError.tooManyImports.body + "\n")
        XCTAssertEqual(lines(full.stderr).count, 1, full.stderr)
        XCTAssertEqual(try seeder.count("SELECT count(*) FROM import_jobs WHERE user_id = $1", [user]), JobRules.queuedLimitPerUser)
    }

    // MARK: jobs show, jobs cancel

    func testShowPrintsTheJobAndFailsInOneLine() throws {
        let user = try seeder.user()
        let campaign = try seeder.campaign(user: user)
        let job = try record(user: user, campaign: campaign, list: try seeder.rowsList(user: user, count: 1))
        let shown = try env.run(["jobs", "show", job.id], environment: database)
        XCTAssertEqual(shown.status, 0, shown.stderr)
        XCTAssertEqual(shown.stdout, job.body + "\n")

        for (id, says) in [("not-a-job", "must be a UUID"), (UUID().uuidString.lowercased(), "no such import job")] {
            for command in ["show", "cancel"] {
                let failed = try env.run(["jobs", command, id], environment: database)
                XCTAssertNotEqual(failed.status, 0, "\(command) \(id)")
                XCTAssertEqual(failed.stdout, "", "\(command) \(id)")
                XCTAssertEqual(lines(failed.stderr).count, 1, failed.stderr)
                XCTAssertTrue(failed.stderr.contains(says), failed.stderr)
            }
        }
    }

    func testCancelCancelsAQueuedJobAndPrintsAFinishedOneAsItEnded() throws {
        let user = try seeder.user()
        let campaign = try seeder.campaign(user: user)
        let list = try seeder.rowsList(user: user, count: 1)
        let queued = try record(user: user, campaign: campaign, list: list)
        let cancelled = try env.run(["jobs", "cancel", queued.id], environment: database)
        XCTAssertEqual(cancelled.status, 0, cancelled.stderr)
        let body = try json(cancelled.stdout)
        XCTAssertEqual(body["state"] as? String, "cancelled")
        XCTAssertTrue(body["httpStatus"] is NSNull, cancelled.stdout)
        XCTAssertTrue(body["finishedAt"] is String, cancelled.stdout)
        let stored = try XCTUnwrap(JobStore().job(id: queued.id, on: service))
        XCTAssertEqual(stored.job.state, .cancelled)
        XCTAssertEqual(cancelled.stdout, stored.job.body + "\n")

        let finished = try record(user: user, campaign: campaign, list: list)
        let hold = try XCTUnwrap(JobStore().claim(on: service)?.hold)
        XCTAssertEqual(hold.jobID, finished.id)
        let ended = try XCTUnwrap(JobStore().finish(hold, httpStatus: 422, on: service))
        let again = try env.run(["jobs", "cancel", finished.id], environment: database)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(again.stdout, ended.job.body + "\n", "printed as it ended")
        XCTAssertEqual(try JobStore().job(id: finished.id, on: service)?.job, ended.job, "left as it ended")
    }

    // MARK: jobs show --follow

    /// The job is queued before any service runs; the service started meanwhile runs it. Off a
    /// terminal, the progress is a plain line every 5 s and the last one, never one per batch.
    func testFollowDrawsProgressUntilTheServiceFinishesTheJobAndExitsZero() throws {
        let rows = 20_000
        let user = try seeder.user()
        let campaign = try seeder.campaign(user: user, channel: "linkedin")
        let list = try seeder.rowsList(user: user, count: rows)
        let recorded = try env.run(["import", "--user", user, "--campaign", campaign, "--list", list, "--async"], environment: database)
        XCTAssertEqual(recorded.status, 0, recorded.stderr)
        let id = try XCTUnwrap(try json(recorded.stdout)["id"] as? String)

        let started = Date()
        let follower = try BackgroundCommand(env.binary, ["jobs", "show", id, "--follow"], environment: database)
        let server = try startService("job-follow", processes: 1, workers: 2)
        defer { server.stop() }
        let result = try XCTUnwrap(follower.wait(timeout: 120), "the follower did not end within 120 s" + context(server))
        let elapsed = Date().timeIntervalSince(started)

        XCTAssertEqual(result.status, 0, result.stderr + context(server))
        let job = try json(result.stdout)
        XCTAssertEqual(job["state"] as? String, "finished")
        XCTAssertEqual(job["httpStatus"] as? Int, 200)
        XCTAssertEqual(job["counts"] as? [String: Int], ["imported": rows, "duplicates": 0, "invalid": 0, "errors": 0, "total": rows])
        XCTAssertEqual(result.stdout, try XCTUnwrap(JobStore().job(id: id, on: service)).job.body + "\n")

        let progress = lines(result.stderr).filter { $0.contains("rows/s") }
        XCTAssertFalse(result.stderr.contains("\r"), "no redrawing off a terminal")
        XCTAssertTrue(progress.last?.hasPrefix("jobs show: \(rows) of \(rows) members (100%), imported \(rows), duplicates 0") == true,
                      result.stderr)
        // The job commits 40 batches; a line is due every 5 s only, plus the last one.
        XCTAssertLessThanOrEqual(progress.count, Int(elapsed / 5) + 1, result.stderr)
    }

    /// `jobs show --follow` of a new user's job of 5 members, queued (no service runs it).
    func followingAQueuedJob() throws -> (user: String, job: ImportJob, follower: BackgroundCommand) {
        let user = try seeder.user()
        let campaign = try seeder.campaign(user: user)
        let job = try record(user: user, campaign: campaign, list: try seeder.rowsList(user: user, count: 5))
        return (user, job, try BackgroundCommand(env.binary, ["jobs", "show", job.id, "--follow"], environment: database))
    }

    func testFollowOfAJobCancelledMeanwhileExitsNonZero() throws {
        let (user, job, follower) = try followingAQueuedJob()
        Thread.sleep(forTimeInterval: 1.5)
        XCTAssertTrue(follower.isRunning, "a queued job is waited for")
        let cancelled = try XCTUnwrap(JobStore().cancel(id: job.id, user: user, on: service))
        let result = try XCTUnwrap(follower.wait(timeout: 15), "the follower did not see the cancel")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(result.stdout, cancelled.job.body + "\n")
        XCTAssertTrue(lines(result.stderr).last?.contains("cancelled") == true, result.stderr)
        XCTAssertTrue(lines(result.stderr).contains { $0.hasPrefix("jobs show: 0 of 5 members (0%)") }, "the last progress line: \(result.stderr)")
    }

    /// PostgreSQL stops and starts again under the follower: its polls fail meanwhile, and it
    /// carries on with a new connection to see the job end.
    func testFollowCarriesOnThroughADatabaseRestart() throws {
        let (user, job, follower) = try followingAQueuedJob()
        Thread.sleep(forTimeInterval: 1)
        try env.postgres("stop")
        var stopped = true
        defer { if stopped { XCTAssertNoThrow(try env.postgres("start"), "PostgreSQL did not start again") } }
        Thread.sleep(forTimeInterval: 3)
        XCTAssertTrue(follower.isRunning, "polls that fail while the database is down do not end the follow")
        try env.postgres("start")
        stopped = false
        service = try Connection.connect(env.databaseURL) // the old one died with the server
        let cancelled = try XCTUnwrap(JobStore().cancel(id: job.id, user: user, on: service))
        let result = try XCTUnwrap(follower.wait(timeout: 30), "the follower did not see the cancel")
        XCTAssertEqual(result.stdout, cancelled.job.body + "\n", result.stderr)
        XCTAssertTrue(lines(result.stderr).last?.contains("cancelled") == true, result.stderr)
    }

    /// On a terminal the line is redrawn in place at each poll and ends with a newline. script(1)
    /// gives the command a pseudo-terminal for stdout and stderr alike.
    func testFollowOnATerminalRedrawsOneLineInPlace() throws {
        let user = try seeder.user()
        let campaign = try seeder.campaign(user: user)
        let job = try record(user: user, campaign: campaign, list: try seeder.rowsList(user: user, count: 5))
        let command = [env.binary, "jobs", "show", job.id, "--follow"].joined(separator: " ")
        let follower = try BackgroundCommand("/usr/bin/script", ["-qec", command, "/dev/null"], environment: database)
        Thread.sleep(forTimeInterval: 1.5)
        let cancelled = try XCTUnwrap(JobStore().cancel(id: job.id, user: user, on: service))
        let result = try XCTUnwrap(follower.wait(timeout: 15), "the follower did not see the cancel")
        XCTAssertNotEqual(result.status, 0, result.stdout)
        let redraw = "\r\u{1B}[2K"
        XCTAssertTrue(result.stdout.contains(redraw + "jobs show: queued, 0 of 5 members (0%), imported 0"), result.stdout)
        XCTAssertGreaterThanOrEqual(result.stdout.components(separatedBy: redraw + "jobs show: queued,").count - 1, 2,
                                    "a redraw at each 250 ms poll: \(result.stdout)")
        XCTAssertTrue(result.stdout.contains(redraw + "jobs show: 0 of 5 members (0%), imported 0, duplicates 0, invalid 0, errors 0, 0 rows/s\r\n"),
                      result.stdout)
        XCTAssertTrue(result.stdout.contains(cancelled.job.body), result.stdout)
    }
}

/// A command run in the background, its output read as it comes (a full pipe would stall it).
final class BackgroundCommand: @unchecked Sendable {
    private let process: Process
    private let reading = DispatchGroup()
    private var stdout = Data()
    private var stderr = Data()

    init(_ executable: String, _ arguments: [String], environment extra: [String: String]) throws {
        let (process, out, err) = commandProcess(executable, arguments, environment: extra)
        self.process = process
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outHandle = out.fileHandleForReading, errHandle = err.fileHandleForReading
        reading.enter()
        DispatchQueue.global().async {
            self.stdout = outHandle.readDataToEndOfFile()
            self.reading.leave()
        }
        reading.enter()
        DispatchQueue.global().async {
            self.stderr = errHandle.readDataToEndOfFile()
            self.reading.leave()
        }
    }

    var isRunning: Bool { process.isRunning }

    /// Its exit status and output; nil (and the command stopped) when it has not ended in time.
    func wait(timeout: TimeInterval) -> (status: Int32, stdout: String, stderr: String)? {
        guard reading.wait(timeout: .now() + timeout) == .success else {
            process.terminate()
            return nil
        }
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}
