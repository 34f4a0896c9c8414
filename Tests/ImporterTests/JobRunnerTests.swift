import Foundation
@testable import Importer
import LeadCore
import Platform
import Postgres
import Store
import TestSupport
import XCTest

/// The job runner against the real PostgreSQL: a job ends with exactly what the synchronous
/// import of the same list into an equal campaign answers, whatever stops, kills or cancels it
/// on the way.
final class JobRunnerTests: XCTestCase {
    var env: TestEnvironment!
    var seed: Seed!
    var pools: [ConnectionPool] = []
    let store = JobStore()

    override func setUpWithError() throws {
        env = try TestEnvironment.require()
        seed = try Seed(env)
        // Runners claim any job of the database: jobs other tests left behind are ended first.
        try seed.sql("""
            UPDATE import_jobs SET state = 'cancelled', finished_at = now(), lease_token = NULL, lease_expires_at = NULL
            WHERE state IN ('queued', 'running')
            """)
    }

    override func tearDown() {
        for pool in pools { pool.close() }
        pools = []
        super.tearDown()
    }

    func pool(size: Int = 3) -> ConnectionPool {
        let pool = ConnectionPool(conninfo: env.databaseURL, configuration: PoolConfiguration(size: size, waitLimit: .seconds(5)))
        pools.append(pool)
        return pool
    }

    /// A source whose leases are numbered; `onLease` runs before the body with the lease's
    /// number and connection (to terminate its backend, cancel the job, or stall).
    func hooked(losingAnswersOf losing: Set<Int> = [], _ onLease: @escaping @Sendable (Int, Connection) throws -> Void = { _, _ in })
        -> HookedConnections {
        HookedConnections(pool: pool(), losingAnswersOf: losing, onLease: onLease)
    }

    func record(user: String, campaign: String, list: String, filter: JSONValue? = nil, dryRun: Bool? = nil) throws -> String {
        try pool().withConnection(waitLimit: nil) { connection in
            guard case .created(let job) = try store.record(NewImportJob(user: user, campaign: campaign, list: list, filter: filter,
                                                                         dryRun: dryRun, fingerprint: []), on: connection) else {
                throw XCTSkip("the job was not recorded")
            }
            return job.id
        }
    }

    func job(_ id: String, user: String) throws -> JobRecord {
        try XCTUnwrap(try pool().withConnection(waitLimit: nil) { try store.job(id: id, user: user, on: $0) })
    }

    /// Every rejection of the job, through the report's pages.
    func rejections(_ id: String, user: String) throws -> [Rejection] {
        var all: [Rejection] = []
        var request = RejectionsRequest(limit: 7)
        while true {
            let page = try XCTUnwrap(try pool().withConnection(waitLimit: nil) { try store.rejections(id: id, user: user, request: request, on: $0) })
            all += page.items
            guard let next = page.next else { return all }
            request.after = next
        }
    }

    /// The synchronous import of `list` into a fresh campaign of `channel` with the same leads
    /// already in (`present`, emails or LinkedIn URLs).
    func synchronous(user: String, list: String, storage: ImportTarget.Storage, channel: String, present: [String] = []) throws -> ImportOutcome {
        let campaign = try seed.campaign(user: user, channel: channel)
        try addPresent(present, campaign: campaign, user: user, channel: channel)
        let target = ImportTarget(userID: user, campaignID: campaign, listID: list, channel: Channel(rawValue: channel)!, storage: storage)
        return try LeadImporter(connections: pool(), pageSize: 9, batchSize: 4).run(target)
    }

    func addPresent(_ identities: [String], campaign: String, user: String, channel: String) throws {
        let column = channel == "email" ? "email" : "linkedin_url"
        for identity in identities {
            try seed.sql("INSERT INTO campaign_leads (campaign_id, user_id, status, \(column), source) VALUES ($1, $2, 'pending', $3, 'manual')",
                         [campaign, user, identity])
        }
    }

    /// The job's rejections: each position once, each reason numbering its count.
    func assertReportMatches(_ record: JobRecord, file: StaticString = #filePath, line: UInt = #line) throws {
        let items = try rejections(record.job.id, user: record.userID)
        XCTAssertEqual(Set(items.map(\.position)).count, items.count, "a member recorded twice", file: file, line: line)
        XCTAssertEqual(items.filter { $0.reason == .duplicate }.count, record.job.counts.duplicates, file: file, line: line)
        XCTAssertEqual(items.filter { $0.reason == .invalid }.count, record.job.counts.invalid, file: file, line: line)
        XCTAssertEqual(items.filter { $0.reason == .error }.count, record.job.counts.errors, file: file, line: line)
        XCTAssertTrue(items.allSatisfy { !$0.detail.isEmpty }, file: file, line: line)
    }

    /// 60 rows over several pages: repeats of neighbours and of far members, members without an
    /// email, two already in the campaign.
    func repeatingRowsList(user: String) throws -> String {
        var rows: [(linkedin: String?, profile: String)] = []
        for index in 0..<60 {
            let person = index % 7 == 6 ? index - 3 : (index % 13 == 12 ? index - 12 : index)
            let email = index % 11 == 10 ? "" : #","enrichment":{"work_email":"p\#(person)@example.com"}"#
            rows.append((nil, #"{"firstName":"P\#(index)"\#(email)}"#))
        }
        return try seed.rowsList(user: user, rows: rows)
    }

    /// 37 canonical Leads: every fifth repeats the email of the one before it, one has no email.
    func repeatingLeadsList(user: String) throws -> String {
        var leads: [Seed.LeadSpec] = []
        for index in 0..<37 {
            let person = index % 5 == 4 ? index - 1 : index
            leads.append(Seed.LeadSpec(firstName: "F\(index)", workEmails: index == 17 ? [] : [("q\(person)@example.com", 0)]))
        }
        return try seed.leadsList(user: user, leads: leads)
    }

    // MARK: - Whole runs

    func testAJobOfSeveralPagesOfEachStorageEndsWithTheSynchronousImportsCounts() throws {
        for storage in [ImportTarget.Storage.rows, .leads] {
            let user = try seed.user()
            let list = storage == .rows ? try repeatingRowsList(user: user) : try repeatingLeadsList(user: user)
            let present = storage == .rows ? ["p0@example.com", "p1@example.com"] : ["q2@example.com"]
            let campaign = try seed.campaign(user: user, channel: "email")
            try addPresent(present, campaign: campaign, user: user, channel: "email")
            let id = try record(user: user, campaign: campaign, list: list)

            let runner = JobRunner(connections: pool(), batchSize: 5)
            guard case .finished(let ended)? = runner.runNext() else { return XCTFail("\(storage): not finished") }
            let expected = try synchronous(user: user, list: list, storage: storage, channel: "email", present: present)
            XCTAssertEqual(expected.end, .completed)
            XCTAssertEqual(ended.job.state, .finished, "\(storage)")
            XCTAssertEqual(ended.job.counts, expected.counts, "\(storage)")
            XCTAssertEqual(ended.job.httpStatus, expected.status, "\(storage)")
            XCTAssertEqual(ended.job.counts.total, storage == .rows ? 60 : 37)
            XCTAssertGreaterThan(ended.job.counts.duplicates, present.count, "\(storage): repeats within the list")
            XCTAssertEqual(ended.resumePosition, ended.job.counts.total)
            XCTAssertEqual(try seed.count(campaign), ended.job.counts.imported + present.count)
            XCTAssertEqual(try seed.value("SELECT count(DISTINCT email) FROM campaign_leads WHERE campaign_id = $1", [campaign]),
                           String(ended.job.counts.imported + present.count), "every identity once")
            let stats = try seed.value("SELECT stats->>'total' FROM campaigns WHERE id = $1", [campaign])
            XCTAssertEqual(stats, String(ended.job.counts.imported + present.count), "stats recomputed")
            try assertReportMatches(ended)
            XCTAssertEqual(try job(id, user: user).job, ended.job)
        }
    }

    func testAListWithNothingToInsertIsA422AndALeadFailingAloneIsAnErrorAsSynchronously() throws {
        let user = try seed.user()
        let everyone = try seed.bulkRowsList(user: user, count: 12)
        let campaign = try seed.campaign(user: user, channel: "linkedin")
        try addPresent((1...12).map { "https://www.linkedin.com/in/p\($0)" }, campaign: campaign, user: user, channel: "linkedin")
        _ = try record(user: user, campaign: campaign, list: everyone)
        guard case .finished(let none)? = JobRunner(connections: pool(), batchSize: 5).runNext() else { return XCTFail() }
        XCTAssertEqual(none.job.httpStatus, 422)
        XCTAssertEqual(none.job.counts, ImportCounts(duplicates: 12))
        try assertReportMatches(none)

        // Member 17's lead fails alone: split down to it, an error with the database's reason.
        let list = try seed.bulkRowsList(user: user, count: 23)
        let constraint = "job_runner_tests_no_p17_\(UInt32.random(in: 0 ... .max))"
        let admin = try Seeder.adminConnection(env)
        defer { _ = try? admin.query("ALTER TABLE campaign_leads DROP CONSTRAINT IF EXISTS \(constraint)", []); admin.close() }
        _ = try admin.query("ALTER TABLE campaign_leads ADD CONSTRAINT \(constraint) CHECK (last_name IS DISTINCT FROM '17') NOT VALID", [])
        let into = try seed.campaign(user: user, channel: "linkedin")
        let id = try record(user: user, campaign: into, list: list)
        guard case .finished(let ended)? = JobRunner(connections: pool(), batchSize: 8).runNext() else { return XCTFail() }
        let expected = try synchronous(user: user, list: list, storage: .rows, channel: "linkedin")
        XCTAssertEqual(ended.job.counts, ImportCounts(imported: 22, errors: 1))
        XCTAssertEqual(ended.job.counts, expected.counts)
        XCTAssertEqual(ended.job.httpStatus, 200)
        let errors = try rejections(id, user: user).filter { $0.reason == .error }
        XCTAssertEqual(errors.map(\.position), [17])
        XCTAssertTrue(errors.first?.detail.contains(constraint) ?? false, errors.first?.detail ?? "")
    }

    /// A dry run counts what the real import then does, and writes nothing but the job.
    func testADryRunJobCountsWhatTheImportThenDoes() throws {
        let user = try seed.user()
        let list = try repeatingLeadsList(user: user)
        let campaign = try seed.campaign(user: user, channel: "email")
        try addPresent(["q2@example.com"], campaign: campaign, user: user, channel: "email")
        _ = try record(user: user, campaign: campaign, list: list, dryRun: true)
        guard case .finished(let dry)? = JobRunner(connections: pool(), batchSize: 5).runNext() else { return XCTFail() }
        XCTAssertEqual(try seed.count(campaign), 1, "nothing inserted")
        XCTAssertEqual(try seed.value("SELECT stats::text FROM campaigns WHERE id = $1", [campaign]), "{}", "no stats")
        try assertReportMatches(dry)
        _ = try record(user: user, campaign: campaign, list: list)
        guard case .finished(let real)? = JobRunner(connections: pool(), batchSize: 5).runNext() else { return XCTFail() }
        XCTAssertEqual(dry.job.counts, real.job.counts)
        XCTAssertEqual(dry.job.httpStatus, real.job.httpStatus)
        XCTAssertEqual(try seed.count(campaign), real.job.counts.imported + 1)
    }

    /// A dry-run job's repeats lie batches apart (12 members back, batches of 3) and the job is
    /// cut off partway and taken up again: it still counts what the real job then does, since
    /// its would-be inserts were committed with its batches.
    func testADryRunJobCutOffAndResumedCountsRepeatsOfEveryBatchBefore() throws {
        let user = try seed.user()
        let list = try repeatingRowsList(user: user)
        let campaign = try seed.campaign(user: user, channel: "email")
        let id = try record(user: user, campaign: campaign, list: list, dryRun: true)
        let seed = self.seed!
        let stopping = Locked(false)
        let source = hooked { _, _ in
            if let position = try seed.value("SELECT resume_position FROM import_jobs WHERE id = $1", [id]).flatMap(Int.init), position >= 21 {
                stopping.withLock { $0 = true }
            }
        }
        _ = JobRunner(connections: source, batchSize: 3, stopRequested: { stopping.current }).runNext()
        let partway = try job(id, user: user)
        XCTAssertTrue(partway.resumePosition >= 21 && partway.resumePosition < 60, "\(partway.resumePosition)")
        XCTAssertNotEqual(try seed.value("SELECT count(*) FROM import_dry_run_identities WHERE job_id = $1", [id]), "0")
        guard case .finished(let dry)? = JobRunner(connections: pool(), batchSize: 3).runNext() else { return XCTFail() }
        XCTAssertEqual(try seed.count(campaign), 0, "nothing inserted")
        XCTAssertEqual(try seed.value("SELECT count(*) FROM import_dry_run_identities WHERE job_id = $1", [id]), "0", "forgotten at the end")
        try assertReportMatches(dry)
        _ = try record(user: user, campaign: campaign, list: list)
        guard case .finished(let real)? = JobRunner(connections: pool(), batchSize: 3).runNext() else { return XCTFail() }
        XCTAssertEqual(dry.job.counts, real.job.counts)
        XCTAssertEqual(dry.job.httpStatus, real.job.httpStatus)
        XCTAssertEqual(try seed.count(campaign), real.job.counts.imported)
    }

    /// The campaign leaves draft mid-job: the job ends as the synchronous import stops, a 206
    /// with what committed before.
    func testACampaignLeavingDraftEndsTheJobAsTheSynchronousImportStops() throws {
        let user = try seed.user()
        let list = try repeatingRowsList(user: user)
        let campaign = try seed.campaign(user: user, channel: "email")
        let id = try record(user: user, campaign: campaign, list: list)
        let seed = self.seed!
        // Once two batches committed, whichever lease comes next (a page reader's or a batch's)
        // switches the campaign.
        let source = hooked { _, _ in
            if let position = try seed.value("SELECT resume_position FROM import_jobs WHERE id = $1", [id]).flatMap(Int.init), position >= 10 {
                try seed.sql("UPDATE campaigns SET status = 'active' WHERE id = $1 AND status = 'draft'", [campaign])
            }
        }
        guard case .finished(let ended)? = JobRunner(connections: source, batchSize: 5).runNext() else { return XCTFail() }
        XCTAssertEqual(ended.job.httpStatus, 206)
        // The switch waits for the batches in flight that passed the draft check (they hold the
        // campaign's share lock): they commit into the draft, as a synchronous import's do.
        XCTAssertTrue(ended.resumePosition >= 10 && ended.resumePosition <= 20 && ended.resumePosition % 5 == 0,
                      "two batches committed before the switch, up to two more in flight: \(ended.resumePosition)")
        XCTAssertEqual(ended.job.counts.total, ended.resumePosition)
        XCTAssertEqual(try seed.count(campaign), ended.job.counts.imported)
        XCTAssertEqual(try seed.value("SELECT stats->>'total' FROM campaigns WHERE id = $1", [campaign]), String(ended.job.counts.imported))
        try assertReportMatches(ended)
        XCTAssertEqual(try job(id, user: user).job.state, .finished)
    }

    /// A job with a filter imports its selection; one whose filter this version cannot read
    /// (written straight into the table) imports nothing and is left to its lease, so that the
    /// next claim takes another job; an empty filter is the whole list.
    func testAJobRunsItsFilterAndOneItCannotRunIsSetAside() throws {
        let user = try seed.user()
        let list = try seed.bulkRowsList(user: user, count: 6)
        let campaign = try seed.campaign(user: user, channel: "linkedin")
        let limited = try record(user: user, campaign: campaign, list: list, filter: try JSONReader.parse(#"{"limit": 2}"#))
        let unbuilt = try record(user: user, campaign: campaign, list: list, filter: try JSONReader.parse(#"{"orderBy": [{"field": "nme"}]}"#))
        let empty = try record(user: user, campaign: campaign, list: list, filter: try JSONReader.parse("{}"))
        let runner = JobRunner(connections: pool(), batchSize: 5)
        guard case .finished(let first)? = runner.runNext() else { return XCTFail("the limited job was not run") }
        XCTAssertEqual(first.job.id, limited)
        XCTAssertEqual(first.job.counts, ImportCounts(imported: 2))
        XCTAssertEqual(try seed.count(campaign), 2)
        XCTAssertEqual(runner.runNext(), .setAside)
        let aside = try job(unbuilt, user: user)
        XCTAssertEqual(aside.job.state, .running)
        XCTAssertEqual(aside.resumePosition, 0)
        XCTAssertEqual(try seed.count(campaign), 2)
        guard case .finished(let ended)? = runner.runNext() else { return XCTFail("the next job was not run") }
        XCTAssertEqual(ended.job.id, empty)
        XCTAssertEqual(ended.job.counts, ImportCounts(imported: 4, duplicates: 2))
    }

    /// A job whose selection is in list order, cut off after its first batch, resumes after the
    /// last member it imported and ends as an uninterrupted run does; one in another order makes
    /// its selection again and resumes at its position.
    func testAFilteredJobResumesWhereItsSelectionStood() throws {
        let user = try seed.user()
        let list = try seed.bulkRowsList(user: user, count: 30)
        for filter in [#"{"where": [{"field": "lastName", "value": ["3", "7", "11", "12", "13", "20", "29", "30"]}], "limit": 7}"#,
                       #"{"orderBy": [{"field": "lastName", "direction": "desc"}], "limit": 12}"#,
                       #"{"where": [{"field": "firstName", "value": "p"}], "orderBy": [{"field": "lastName", "direction": "desc"}]}"#] {
            let whole = try seed.campaign(user: user, channel: "linkedin")
            _ = try record(user: user, campaign: whole, list: list, filter: try JSONReader.parse(filter))
            guard case .finished(let uninterrupted)? = JobRunner(connections: pool(), batchSize: 3).runNext() else { return XCTFail(filter) }

            let cut = try seed.campaign(user: user, channel: "linkedin")
            let id = try record(user: user, campaign: cut, list: list, filter: try JSONReader.parse(filter))
            // The first runner's lease runs out after its first batch: it stops, and another takes over.
            let seed = self.seed!
            let stopping = Locked(false)
            let source = hooked { _, _ in
                if let position = try seed.value("SELECT resume_position FROM import_jobs WHERE id = $1", [id]).flatMap(Int.init), position >= 3 {
                    stopping.withLock { $0 = true }
                }
            }
            let first = JobRunner(connections: source, batchSize: 3, batchesInFlight: 1, stopRequested: { stopping.current })
            _ = first.runNext()
            let partway = try job(id, user: user)
            XCTAssertEqual(try seed.value("SELECT lease_expires_at <= now() FROM import_jobs WHERE id = $1", [id]), "t",
                           "\(filter): handed back at a batch boundary")
            XCTAssertTrue(partway.resumePosition >= 3 && partway.resumePosition < uninterrupted.resumePosition, "\(filter): \(partway.resumePosition)")
            guard case .finished(let resumed)? = JobRunner(connections: pool(), batchSize: 3).runNext() else { return XCTFail(filter) }
            XCTAssertEqual(resumed.job.counts, uninterrupted.job.counts, filter)
            func profiles(_ campaign: String) throws -> [String] {
                try seed.campaignLeads(campaign).map { (lead: [String: String?]) -> String in (lead["linkedin_url"] ?? nil) ?? "-" }.sorted()
            }
            XCTAssertEqual(try profiles(cut), try profiles(whole), filter)
            try assertReportMatches(resumed)
            let positions = try rejections(id, user: user).map(\.position)
            XCTAssertEqual(positions, Array(Set(positions)).sorted(), "\(filter): no member reported twice")
        }
    }

    // MARK: - Two batches in flight

    /// The same job run with one batch in flight and with two: the same leads, counts, status and
    /// report, member for member, over lists with repeats of the batch before (its first repeat
    /// "already in the campaign", later ones repeats of that first), repeats of older batches,
    /// leads already in the campaign, and a lead that fails alone with repeats of it after.
    func testTwoBatchesInFlightEndAsOneAfterTheOther() throws {
        let tag = String(UInt32.random(in: 0 ... .max), radix: 16)
        let marker = "job-runner-tests-in-flight-\(tag)"
        let constraint = "job_runner_tests_in_flight_\(tag)"
        let admin = try Seeder.adminConnection(env)
        defer { _ = try? admin.query("ALTER TABLE campaign_leads DROP CONSTRAINT IF EXISTS \(constraint)", []); admin.close() }
        _ = try admin.query("ALTER TABLE campaign_leads ADD CONSTRAINT \(constraint) CHECK (company IS DISTINCT FROM '\(marker)') NOT VALID", [])
        let user = try seed.user()
        // Pages of 6: 8 and 9 repeat 4 (the page before), 14 repeats 9's identity again, 20
        // repeats 2 (an older page); 26 fails alone and 31 repeats it (the page after).
        let repeats = [8: 4, 9: 4, 14: 4, 20: 2, 31: 26, 33: 32, 34: 32]
        let rows = try seed.rowsList(user: user, rows: (1...40).map { position in
            let company = position == 26 ? marker : "Company"
            let email = position % 10 == 5 ? "" : #","enrichment":{"work_email":"s\#(repeats[position] ?? position)@example.com"}"#
            return (nil, #"{"firstName":"P\#(position)","currentCompany":"\#(company)"\#(email)}"#)
        })
        for (list, storage) in [(rows, ImportTarget.Storage.rows), (try repeatingLeadsList(user: user), .leads)] {
            var ended: [JobRecord] = []
            for inFlight in [1, 2] {
                let campaign = try seed.campaign(user: user, channel: "email")
                try addPresent(["s3@example.com", "q7@example.com"], campaign: campaign, user: user, channel: "email")
                _ = try record(user: user, campaign: campaign, list: list)
                guard case .finished(let record)? = JobRunner(connections: pool(), batchSize: 6, batchesInFlight: inFlight).runNext() else {
                    return XCTFail("\(storage), \(inFlight) in flight: not finished")
                }
                try assertReportMatches(record)
                ended.append(record)
            }
            let (one, two) = (ended[0], ended[1])
            XCTAssertEqual(two.job.counts, one.job.counts, "\(storage)")
            XCTAssertEqual(two.job.httpStatus, one.job.httpStatus, "\(storage)")
            XCTAssertEqual(two.resumePosition, one.resumePosition, "\(storage)")
            if storage == .rows { XCTAssertEqual(one.job.counts.errors, 1, "the failing lead") }
            let emails = "SELECT string_agg(email, ',' ORDER BY email) FROM campaign_leads WHERE campaign_id = $1"
            XCTAssertEqual(try seed.value(emails, [two.job.campaignID]), try seed.value(emails, [one.job.campaignID]), "\(storage)")
            let report = try rejections(two.job.id, user: user), expected = try rejections(one.job.id, user: user)
            XCTAssertEqual(report.map(\.position), expected.map(\.position), "\(storage)")
            for (got, want) in zip(report, expected) {
                XCTAssertEqual(got.reason, want.reason, "\(storage), position \(want.position)")
                XCTAssertEqual(got.detail, want.detail, "\(storage), position \(want.position)")
            }
        }
    }

    /// Two batches are in the database at once: each batch's first lead sleeps in a trigger and
    /// counts the job's commit statements running meanwhile.
    func testTwoBatchesAreInTheDatabaseAtOnce() throws {
        let tag = String(UInt32.random(in: 0 ... .max), radix: 16)
        let probe = "job_runner_tests_probe_\(tag)"
        let admin = try Seeder.adminConnection(env)
        defer {
            for statement in ["DROP TRIGGER IF EXISTS \(probe) ON campaign_leads", "DROP FUNCTION IF EXISTS \(probe)()",
                              "DROP TABLE IF EXISTS \(probe)"] {
                _ = try? admin.query(statement, [])
            }
            admin.close()
        }
        let user = try seed.user()
        let list = try seed.bulkRowsList(user: user, count: 24)
        let campaign = try seed.campaign(user: user, channel: "linkedin")
        _ = try admin.query("CREATE TABLE \(probe) (running int)", [])
        _ = try admin.query("GRANT INSERT ON \(probe) TO PUBLIC", [])
        _ = try admin.query("""
            CREATE FUNCTION \(probe)() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
            BEGIN
                PERFORM pg_sleep(0.3);
                INSERT INTO \(probe) SELECT count(*) FROM pg_stat_activity
                WHERE state = 'active' AND query LIKE 'WITH job AS%pg_try_advisory_xact_lock%';
                RETURN NEW;
            END $$
            """, [])
        // The first lead of each page of 6 (bulk rows are named after their position).
        _ = try admin.query("""
            CREATE TRIGGER \(probe) BEFORE INSERT ON campaign_leads FOR EACH ROW
            WHEN (NEW.campaign_id = '\(campaign)'::uuid AND NEW.linkedin_url IN
                  ('https://www.linkedin.com/in/p1', 'https://www.linkedin.com/in/p7', 'https://www.linkedin.com/in/p13',
                   'https://www.linkedin.com/in/p19'))
            EXECUTE FUNCTION \(probe)()
            """, [])
        _ = try record(user: user, campaign: campaign, list: list)
        guard case .finished(let ended)? = JobRunner(connections: pool(), batchSize: 6).runNext() else { return XCTFail() }
        XCTAssertEqual(ended.job.counts, ImportCounts(imported: 24))
        let seen = try admin.query("SELECT coalesce(max(running), 0), count(*) FROM \(probe)", []).first
        XCTAssertEqual(try seen?.requiredInt(1), 4, "every page's first lead probed")
        XCTAssertEqual(try seen?.requiredInt(0), 2, "two batches of the job at once, never more")
    }

    // MARK: - Interrupted runs

    /// A stop requested mid-job gives the job back at a batch; a second runner takes it at once
    /// and ends it with exactly the counts of an uninterrupted run, no member recorded twice.
    func testAStoppedRunnerReleasesTheJobAndAnotherFinishesIt() throws {
        for storage in [ImportTarget.Storage.rows, .leads] {
            let user = try seed.user()
            let list = storage == .rows ? try repeatingRowsList(user: user) : try repeatingLeadsList(user: user)
            let campaign = try seed.campaign(user: user, channel: "email")
            let id = try record(user: user, campaign: campaign, list: list)
            let asked = Locked(0)
            let stopping = JobRunner(connections: pool(), batchSize: 5, stopRequested: { asked.withLock { $0 += 1; return $0 > 4 } })
            XCTAssertEqual(stopping.runNext(), .released, "\(storage)")
            let halfway = try job(id, user: user)
            XCTAssertEqual(halfway.job.state, .running)
            XCTAssertGreaterThan(halfway.resumePosition, 0)
            XCTAssertLessThan(halfway.resumePosition, storage == .rows ? 60 : 37)
            XCTAssertEqual(try seed.count(campaign), halfway.job.counts.imported)

            guard case .finished(let ended)? = JobRunner(connections: pool(), batchSize: 5).runNext() else { return XCTFail("\(storage)") }
            XCTAssertEqual(ended.attempts, 2)
            let expected = try synchronous(user: user, list: list, storage: storage, channel: "email")
            XCTAssertEqual(ended.job.counts, expected.counts, "\(storage)")
            XCTAssertEqual(ended.job.httpStatus, expected.status)
            XCTAssertEqual(try seed.count(campaign), ended.job.counts.imported)
            try assertReportMatches(ended)
        }
    }

    /// Backends terminated under the runner, a commit among them: every batch is settled by the
    /// job's position on a new connection, and the job still ends exact.
    func testARunnerWhoseConnectionIsTerminatedMidBatchStillEndsExact() throws {
        let user = try seed.user()
        let list = try repeatingRowsList(user: user)
        let campaign = try seed.campaign(user: user, channel: "email")
        _ = try record(user: user, campaign: campaign, list: list)
        let admin = try Seeder.adminConnection(env)
        defer { admin.close() }
        let terminated = Locked(0)
        // Lease 1 claims and 2 reads the target; then page reads (on the reader's thread) and
        // commits take leases in an order of their own: both kinds are cut.
        let source = hooked { number, connection in
            guard [4, 7, 8, 13].contains(number) else { return }
            try terminateBackend(of: connection, admin: admin)
            terminated.withLock { $0 += 1 }
        }
        guard case .finished(let ended)? = JobRunner(connections: source, batchSize: 5).runNext() else { return XCTFail() }
        XCTAssertEqual(terminated.current, 4)
        let expected = try synchronous(user: user, list: list, storage: .rows, channel: "email")
        XCTAssertEqual(ended.job.counts, expected.counts)
        XCTAssertEqual(try seed.count(campaign), ended.job.counts.imported)
        try assertReportMatches(ended)
    }

    /// Commits that landed but whose answers were lost: the job's position says they are in, so
    /// none is sent again (it would be refused as not held, and the run would stop).
    func testACommitWhoseAnswerIsLostIsFoundCommitted() throws {
        let user = try seed.user()
        let list = try repeatingLeadsList(user: user)
        let campaign = try seed.campaign(user: user, channel: "email")
        _ = try record(user: user, campaign: campaign, list: list)
        // Lease 1 claims and 2 reads the target; then page reads and commits interleave: the
        // answers lost fall on either.
        let source = hooked(losingAnswersOf: [4, 9])
        guard case .finished(let ended)? = JobRunner(connections: source, batchSize: 5).runNext() else { return XCTFail() }
        let expected = try synchronous(user: user, list: list, storage: .leads, channel: "email")
        XCTAssertEqual(ended.job.counts, expected.counts)
        XCTAssertEqual(try seed.count(campaign), ended.job.counts.imported)
        try assertReportMatches(ended)
    }

    /// A runner whose database goes away while a page is cut in parts (one of its leads fails
    /// alone) gives the job back; the run that takes it up must report every member as an
    /// uninterrupted run does, detail for detail: which members commit together decides whether
    /// a repeat reads "a repeat of position N" or "already in the campaign".
    func testARunCutOffWhileAPageIsSplitReportsAsAnUninterruptedRun() throws {
        let user = try seed.user()
        let tag = String(UInt32.random(in: 0 ... .max), radix: 16)
        let marker = "job-runner-tests-fails-\(tag)"
        // 40 members in pages of 10: member 14 fails alone; 17 repeats 12 and 19 repeats 16 in
        // that page, 24 repeats 21 and 37 repeats 33 in later ones.
        let repeats = [17: 12, 19: 16, 24: 21, 37: 33]
        let list = try seed.rowsList(user: user, rows: (1...40).map { position in
            let company = position == 14 ? marker : "Company"
            let email = "r\(repeats[position] ?? position)@example.com"
            return (nil, #"{"firstName":"P\#(position)","currentCompany":"\#(company)","enrichment":{"work_email":"\#(email)"}}"#)
        })
        let campaign = try seed.campaign(user: user, channel: "email")
        let id = try record(user: user, campaign: campaign, list: list)
        let admin = try Seeder.adminConnection(env)
        let constraint = "job_runner_tests_fails_\(tag)", cutOff = "job_runner_tests_cut_off_\(tag)"
        defer {
            for statement in ["ALTER TABLE campaign_leads DROP CONSTRAINT IF EXISTS \(constraint)",
                              "DROP TRIGGER IF EXISTS \(cutOff) ON import_rejections", "DROP FUNCTION IF EXISTS \(cutOff)()",
                              "DROP SEQUENCE IF EXISTS \(cutOff)"] {
                _ = try? admin.query(statement, [])
            }
            admin.close()
        }
        _ = try admin.query("ALTER TABLE campaign_leads ADD CONSTRAINT \(constraint) CHECK (company IS DISTINCT FROM '\(marker)') NOT VALID", [])
        // The runner's backend ends as the failing lead is recorded, once (a sequence is not
        // rolled back): by then parts of its page were sent.
        _ = try admin.query("CREATE SEQUENCE \(cutOff)", [])
        _ = try admin.query("""
            CREATE FUNCTION \(cutOff)() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
            BEGIN
                IF nextval('\(cutOff)') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
                RETURN NULL;
            END $$
            """, [])
        _ = try admin.query("""
            CREATE TRIGGER \(cutOff) AFTER INSERT ON import_rejections FOR EACH ROW
            WHEN (NEW.job_id = '\(id)'::uuid AND NEW.reason = 'error') EXECUTE FUNCTION \(cutOff)()
            """, [])

        // The database went away for good for this runner: it gives the job back (or cannot).
        let gone = Locked(false)
        let vanishing = hooked { _, _ in if gone.current { throw PoolError.unavailable(reason: "the database went away") } }
        let first = JobRunner(connections: VanishingAfterLoss(vanishing, gone: gone), batchSize: 10, waitLimit: .milliseconds(300))
        XCTAssertEqual(first.runNext(), .released)
        XCTAssertEqual(try admin.query("SELECT last_value::int FROM \(cutOff)", []).first?.requiredInt(0), 1, "the backend was not cut off")
        let cut = try job(id, user: user)
        XCTAssertGreaterThanOrEqual(cut.resumePosition, 10, "the first page committed")
        XCTAssertLessThan(cut.resumePosition, 20, "the page that was split")
        // Its lease runs out (here at once) and another runner takes the job up.
        try seed.sql("UPDATE import_jobs SET lease_expires_at = now() WHERE id = $1", [id])
        guard case .finished(let ended)? = JobRunner(connections: pool(), batchSize: 10).runNext() else { return XCTFail("not taken up") }
        XCTAssertEqual(ended.job.id, id)
        XCTAssertEqual(ended.attempts, 2)

        let reference = try seed.campaign(user: user, channel: "email")
        let referenceID = try record(user: user, campaign: reference, list: list)
        guard case .finished(let uninterrupted)? = JobRunner(connections: pool(), batchSize: 10).runNext() else { return XCTFail() }
        XCTAssertEqual(uninterrupted.job.id, referenceID)
        XCTAssertEqual(uninterrupted.job.counts, ImportCounts(imported: 35, duplicates: 4, errors: 1))
        XCTAssertEqual(ended.job.counts, uninterrupted.job.counts)
        try assertReportMatches(ended)
        let report = try rejections(id, user: user), expected = try rejections(referenceID, user: user)
        XCTAssertEqual(report.map(\.position), expected.map(\.position))
        for (got, want) in zip(report, expected) { XCTAssertEqual(got, want, "position \(want.position)") }
    }

    /// A finish that lands but whose answer is lost (as for a process killed right after it):
    /// the job is finished, so nobody runs it again, and the campaign's stats must already count
    /// its leads.
    func testAFinishWhoseAnswerIsLostLeavesTheStatsRecomputed() throws {
        let user = try seed.user()
        let campaign = try seed.campaign(user: user, channel: "linkedin")
        let id = try record(user: user, campaign: campaign, list: try seed.bulkRowsList(user: user, count: 12))
        let seed = self.seed!
        // Once every member is in, the runner's next statement is the finish.
        let source = LosingOneAnswer(pool: pool()) {
            try seed.value("SELECT state || ' ' || resume_position FROM import_jobs WHERE id = $1", [id]) == "running 12"
        }
        _ = JobRunner(connections: source, batchSize: 5).runNext()
        XCTAssertTrue(source.lost.current, "no answer was lost")
        let ended = try job(id, user: user)
        XCTAssertEqual(ended.job.state, .finished)
        XCTAssertEqual(ended.job.counts, ImportCounts(imported: 12))
        XCTAssertEqual(try seed.value("SELECT stats->>'total' FROM campaigns WHERE id = $1", [campaign]), "12",
                       "the job finished and its campaign's stats count none of its leads")
    }

    /// A cancel between two batches: the next commit is refused, nothing more is written, and
    /// the job stays cancelled with the counts of what committed.
    func testACancelledJobStopsAtABatch() throws {
        let user = try seed.user()
        let list = try repeatingRowsList(user: user)
        let campaign = try seed.campaign(user: user, channel: "email")
        let id = try record(user: user, campaign: campaign, list: list)
        let canceller = pool()
        let source = hooked { number, _ in
            if number == 7 { _ = try canceller.withConnection(waitLimit: nil) { try JobStore().cancel(id: id, user: user, on: $0) } }
        }
        XCTAssertEqual(JobRunner(connections: source, batchSize: 5).runNext(), .lost)
        let cancelled = try job(id, user: user)
        XCTAssertEqual(cancelled.job.state, .cancelled)
        XCTAssertNil(cancelled.job.httpStatus)
        XCTAssertGreaterThan(cancelled.resumePosition, 0)
        XCTAssertLessThan(cancelled.resumePosition, 60)
        XCTAssertEqual(try seed.count(campaign), cancelled.job.counts.imported)
        try assertReportMatches(cancelled)
        XCTAssertNil(JobRunner(connections: pool()).runNext(), "a cancelled job is never claimed")
    }

    /// A runner that stalls past its lease: another claimer takes the job, and the stalled runner
    /// commits nothing more.
    func testALostLeaseCommitsNothingMore() throws {
        let user = try seed.user()
        let list = try repeatingRowsList(user: user)
        let campaign = try seed.campaign(user: user, channel: "email")
        let id = try record(user: user, campaign: campaign, list: list)
        let timing = LeaseTiming(duration: .milliseconds(800), renewEvery: .milliseconds(300), stopMargin: .milliseconds(100),
                                 retryPause: .milliseconds(50), pollEvery: .milliseconds(100))
        let rescuer = pool()
        let taken = Locked<JobRecord?>(nil)
        // At lease 6 (a page read or a commit, a batch or two in) the runner stalls past its lease, and
        // another claimer takes the job meanwhile.
        let source = hooked { number, _ in
            guard number == 6 else { return }
            usleep(1_200_000)
            let claimed = try rescuer.withConnection(waitLimit: nil) { try JobStore(timing: .standard).claim(on: $0) }
            taken.withLock { $0 = claimed }
        }
        XCTAssertEqual(JobRunner(connections: source, timing: timing, batchSize: 5).runNext(), .lost)
        let rescued = try XCTUnwrap(taken.current)
        XCTAssertEqual(rescued.job.id, id)
        XCTAssertEqual(rescued.attempts, 2)
        let after = try job(id, user: user)
        XCTAssertEqual(after.resumePosition, rescued.resumePosition, "nothing committed after the takeover")
        XCTAssertEqual(after.job.counts, rescued.job.counts)
        XCTAssertEqual(after.leaseToken, rescued.leaseToken)
        XCTAssertEqual(try seed.count(campaign), after.job.counts.imported)
    }
}

/// A process whose database went away for good once one of its connections was lost: every
/// lease after that fails, as for a runner that cannot reach the database again in time.
final class VanishingAfterLoss: ConnectionSource, @unchecked Sendable {
    let source: any ConnectionSource
    let gone: Locked<Bool>

    init(_ source: any ConnectionSource, gone: Locked<Bool>) {
        self.source = source
        self.gone = gone
    }

    func withConnection<T>(waitLimit: Duration?, priority: LeasePriority, _ body: (Connection) throws -> T) throws -> T {
        do {
            return try source.withConnection(waitLimit: waitLimit, priority: priority, body)
        } catch {
            if error is CampaignWriter.LostAttempt || JobRunner.isUnreachable(error) { gone.withLock { $0 = true } }
            throw error
        }
    }
}

/// Loses the answer of the first statement leased once `due` says so: it runs, then the
/// connection is lost, as for a process killed right after the database committed it. `due`
/// is asked one lease at a time (leases come from a job's page reader and its runner at once).
final class LosingOneAnswer: ConnectionSource, @unchecked Sendable {
    let pool: ConnectionPool
    let due: @Sendable () throws -> Bool
    let lost = Locked(false)
    private let chosen = Locked(false)

    init(pool: ConnectionPool, due: @escaping @Sendable () throws -> Bool) {
        self.pool = pool
        self.due = due
    }

    func withConnection<T>(waitLimit: Duration?, priority: LeasePriority, _ body: (Connection) throws -> T) throws -> T {
        try pool.withConnection(waitLimit: waitLimit, priority: priority) { connection in
            let losing = try chosen.withLock { chosen -> Bool in
                guard !chosen, try due() else { return false }
                chosen = true
                return true
            }
            let result = try body(connection)
            guard losing else { return result }
            connection.close()
            lost.withLock { $0 = true }
            throw PostgresError(kind: .connectionLost, message: "answer lost on purpose")
        }
    }
}
