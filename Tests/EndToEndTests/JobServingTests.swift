import Foundation
import LeadCore
import Postgres
import Store
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The job runner inside `serve`: each worker process takes up recorded jobs, and a stop gives
/// the job under way back for the next process to finish.
final class JobServingTests: LiveServiceTestCase {
    var service: Connection!

    override func setUpWithError() throws {
        try super.setUpWithError()
        service = try Connection.connect(env.databaseURL)
        // The service's runners claim any job of the database: jobs other tests left are ended.
        let owner = try Connection.connect(env.ownerDatabaseURL)
        defer { owner.close() }
        _ = try owner.query("""
            UPDATE import_jobs SET state = 'cancelled', finished_at = now(), lease_token = NULL, lease_expires_at = NULL
            WHERE state IN ('queued', 'running')
            """, [])
    }

    override func tearDown() {
        service?.close()
        super.tearDown()
    }

    func record(user: String, campaign: String, list: String) throws -> String {
        guard case .created(let job) = try JobStore().record(NewImportJob(user: user, campaign: campaign, list: list, fingerprint: []),
                                                             on: service) else {
            throw TestEnvironmentError(message: "the job was not recorded")
        }
        return job.id
    }

    /// A 100,000-row (`rows`) job of a new user's, recorded on a service of one worker process
    /// started for it, once its first batch committed.
    func jobUnderWay(_ name: String, rows: Int) throws -> (Seeder, user: String, campaign: String, ServiceProcess, id: String) {
        let seeder = try Seeder(env)
        let user = try seeder.user()
        let campaign = try seeder.campaign(user: user, channel: "linkedin")
        let list = try seeder.rowsList(user: user, count: rows)
        let server = try startService(name, processes: 1, workers: 2)
        let id: String
        do {
            id = try record(user: user, campaign: campaign, list: list)
        } catch {
            server.stop()
            throw error
        }
        let underWay = waitUntil(timeout: 20, interval: 0.01) { ((try? job(id, user: user))?.resumePosition ?? 0) > 0 }
        XCTAssertTrue(underWay, "the job did not start within 20 s" + context(server))
        return (seeder, user, campaign, server, id)
    }

    /// The job once finished, failing the test if it does not finish within 60 s.
    func finished(_ id: String, user: String, server: ServiceProcess) -> JobRecord? {
        var ended: JobRecord?
        let finished = waitUntil(timeout: 60, interval: 0.1) {
            ended = try? job(id, user: user)
            return ended?.job.state == .finished
        }
        XCTAssertTrue(finished, "the job did not finish within 60 s: \(String(describing: ended))" + context(server))
        return ended
    }

    func job(_ id: String, user: String) throws -> JobRecord? {
        try JobStore().job(id: id, user: user, on: service)
    }

    func testAWorkerProcessRunsARecordedJob() throws {
        let seeder = try Seeder(env)
        let user = try seeder.user()
        let campaign = try seeder.campaign(user: user, channel: "linkedin")
        let list = try seeder.rowsList(user: user, count: 1200)
        let server = try startService("job-run", processes: 1, workers: 2)
        defer { server.stop() }
        let id = try record(user: user, campaign: campaign, list: list)
        var ended: JobRecord?
        let finished = waitUntil(timeout: 20, interval: 0.1) {
            ended = try? job(id, user: user)
            return ended?.job.state == .finished
        }
        XCTAssertTrue(finished, "the job did not finish within 20 s: \(String(describing: ended))" + context(server))
        XCTAssertEqual(ended?.job.counts, ImportCounts(imported: 1200))
        XCTAssertEqual(ended?.job.httpStatus, 200)
        XCTAssertEqual(try seeder.count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign]), 1200)
        XCTAssertEqual(try seeder.count("SELECT coalesce((stats->>'total')::int, -1) FROM campaigns WHERE id = $1", [campaign]), 1200)
    }

    /// SIGTERM with a job under way: the process gives it back at a batch and exits; the process
    /// started next takes it up at once and finishes it with exact counts.
    func testAStoppedWorkerGivesItsJobBackAndTheNextProcessFinishesIt() throws {
        let rows = 100_000
        let (seeder, user, campaign, server, id) = try jobUnderWay("job-stop", rows: rows)
        defer { server.stop() }
        let stopSent = Date()
        XCTAssertEqual(server.stop(timeout: 30), 0, context(server))
        // The job stops at its next batch: the stop does not wait for the 30 s drain limit.
        XCTAssertLessThan(Date().timeIntervalSince(stopSent), 10, context(server))
        let released = try XCTUnwrap(try job(id, user: user))
        XCTAssertEqual(released.job.state, .running, "given back, not ended")
        XCTAssertLessThan(released.resumePosition, rows, "the job finished before the stop: the list is too short to test anything")
        let expired = try service.query("SELECT lease_expires_at <= now() FROM import_jobs WHERE id = $1", [id]).first?.bool(0)
        XCTAssertEqual(expired, true, "released at once, not left to run out")
        XCTAssertEqual(try seeder.count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign]),
                       released.job.counts.imported)

        try start(server, arguments: arguments(processes: 1, workers: 2))
        let ended = finished(id, user: user, server: server)
        XCTAssertEqual(ended?.job.counts, ImportCounts(imported: rows))
        XCTAssertEqual(ended?.attempts, 2)
        XCTAssertEqual(try seeder.count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign]), rows)
        // The job's life in the log, each line naming it: started, given back, resumed where it
        // stood, finished.
        for message in ["job started", "job given back for another run to resume", "job resumed", "job finished"] {
            XCTAssertEqual(server.logLines(message: message).filter { ServiceProcess.field("job_id", in: $0) == id }.count, 1,
                           message + context(server))
        }
        let resumed = server.logLines(message: "job resumed").first { ServiceProcess.field("job_id", in: $0) == id }
        XCTAssertEqual(resumed.flatMap { ServiceProcess.field("position", in: $0) }, String(released.resumePosition))
        XCTAssertEqual(resumed.flatMap { ServiceProcess.field("attempt", in: $0) }, "2")
    }

    /// SIGHUP with a job under way: the replaced worker process gives it back at a batch, and a
    /// process of the service (the replacement or another) takes it up at once and finishes it
    /// with exact counts, the leads inserted once.
    func testAReloadHandsTheJobOver() throws {
        let rows = 100_000
        let (seeder, user, campaign, server, id) = try jobUnderWay("job-reload", rows: rows)
        defer { server.stop() }
        let before = server.workerPIDs()
        server.signal(SIGHUP)
        // The old process leaves well within the drain limit (30 s): its job does not hold it.
        let replaced = waitUntil(timeout: 15, interval: 0.05) { Set(server.workerPIDs()).isDisjoint(with: before) && !server.workerPIDs().isEmpty }
        XCTAssertTrue(replaced, "the worker process was not replaced within 15 s" + context(server))
        let ended = finished(id, user: user, server: server)
        XCTAssertEqual(ended?.job.counts, ImportCounts(imported: rows))
        XCTAssertGreaterThanOrEqual(ended?.attempts ?? 0, 2, "taken up again after the reload")
        XCTAssertEqual(try seeder.count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign]), rows)
    }
}
