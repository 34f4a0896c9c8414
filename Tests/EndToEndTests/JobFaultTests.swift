import Foundation
import LeadCore
import Postgres
import Store
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Import jobs under faults, against the real PostgreSQL and real service processes: a job's
/// worker process killed, the whole service restarted, PostgreSQL restarted, the service's
/// backends terminated, and a whole instance of two behind one front end killed. Each faulted job
/// must be taken up again and end exactly as an uninterrupted run of the same list into an equal
/// campaign: counts and status, the campaign's leads (each identity once), its stats, and the
/// rejections report item for item.
///
/// Where and how often the faults strike comes from a seed: `JOB_FAULT_SEED` (decimal or 0x-hex)
/// replays a schedule; every failure message names the seed it ran with.
final class JobFaultTests: LiveServiceTestCase {

    // MARK: - The seed

    static let defaultSeed: UInt64 = 0x10B_FA17

    /// The seed, or nil when JOB_FAULT_SEED is set but unreadable (the test then fails rather
    /// than run another schedule than the one asked for).
    static let seed: UInt64? = {
        guard let text = ProcessInfo.processInfo.environment["JOB_FAULT_SEED"]?.trimmingCharacters(in: .whitespaces),
              !text.isEmpty else { return defaultSeed }
        if text.lowercased().hasPrefix("0x") { return UInt64(text.dropFirst(2), radix: 16) }
        return UInt64(text)
    }()

    static var seedText: String {
        seed.map { "seed 0x\(String($0, radix: 16)) (JOB_FAULT_SEED=0x\(String($0, radix: 16)) replays it)" } ?? "no seed"
    }

    /// A generator of its own for each test, so that a test run alone follows the schedule it
    /// follows in the whole class.
    func generator(_ salt: UInt64) -> SplitMix64 {
        var mixer = SplitMix64(seed: (Self.seed ?? 0) ^ salt)
        return SplitMix64(seed: mixer.next())
    }

    // MARK: - Set-up

    var db: Database!
    /// A CHECK this class adds to campaign_leads: a lead whose company is `errorCompany` fails
    /// its insert alone, so that reports hold errors too.
    var errorConstraint = ""
    var errorCompany = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard Self.seed != nil else {
            throw TestEnvironmentError(message: "JOB_FAULT_SEED is not a decimal or 0x-hex 64-bit number")
        }
        print("JobFaultTests: \(Self.seedText)")
        db = Database(url: env.adminDatabaseURL)
        // The service's runners claim any job of the database: jobs other tests left are ended.
        _ = try db.query("""
            UPDATE import_jobs SET state = 'cancelled', finished_at = now(), lease_token = NULL, lease_expires_at = NULL
            WHERE state IN ('queued', 'running')
            """)
        let tag = String(UInt32.random(in: 0 ... .max), radix: 16)
        errorConstraint = "job_fault_tests_error_\(tag)"
        errorCompany = "job-fault-error-\(tag)"
        _ = try db.query("ALTER TABLE campaign_leads ADD CONSTRAINT \(errorConstraint) CHECK (company IS DISTINCT FROM '\(errorCompany)') NOT VALID")
    }

    override func tearDown() {
        if let db {
            _ = try? db.query("ALTER TABLE campaign_leads DROP CONSTRAINT IF EXISTS \(errorConstraint)")
            db.close()
        }
        super.tearDown()
    }

    /// A superuser connection for the test's own reads and writes, opened again when a restart
    /// of PostgreSQL (or a terminated backend) took the last one down.
    final class Database {
        let url: String
        private var connection: Connection?

        init(url: String) { self.url = url }

        func with<T>(_ body: (Connection) throws -> T) throws -> T {
            var attempt = 0
            while true {
                attempt += 1
                do {
                    if connection == nil || connection!.isBroken {
                        connection?.close()
                        connection = try Connection.connect(url, settings: Seeder.settings)
                    }
                    return try body(connection!)
                } catch let error as PostgresError where error.isConnectionProblem && attempt < 3 {
                    connection?.close()
                    connection = nil
                    Thread.sleep(forTimeInterval: 0.2)
                }
            }
        }

        @discardableResult
        func query(_ sql: String, _ values: [PostgresValue] = []) throws -> QueryResult {
            try with { try $0.query(sql, values: values) }
        }

        func close() {
            connection?.close()
            connection = nil
        }
    }

    // MARK: - Lists

    /// A list built so that every reason and detail of the report appears: members that are
    /// invalid (no identity, a placeholder, for `leads` also a Lead of another user), repeats
    /// of a member just before (usually in the same batch) and of one pages before (written
    /// differently, the same once normalized), identities already in the campaign, and a few
    /// members whose insert fails alone. What an import of it counts is computed here, member
    /// by member, from the same rules the list is written with.
    struct Fixture {
        let user: String
        let list: String
        let storage: String
        let channel: String
        let size: Int
        /// Identities already in each campaign of the test, as the campaign keeps them.
        let present: [String]
        let expected: ImportCounts
        /// The reason each rejected position is reported with.
        let reasons: [Int: RejectionReason]
        let errorPositions: [Int]

        var description: String { "\(storage) list of \(size) into a \(channel) campaign (\(expected))" }
    }

    /// Member i's identity: its own, or that of the member it repeats.
    static func person(_ i: Int) -> Int {
        if i % 53 == 0 { return person(i - 2) }
        if i > 701 && i % 97 == 0 { return person(i - 701) }
        return i
    }

    static func isPresent(person: Int) -> Bool { person % 89 == 0 }

    enum Invalid { case noIdentity, unusable, foreign }

    static func invalid(_ i: Int, storage: String) -> Invalid? {
        if i % 41 == 0 { return i % 82 == 0 ? .noIdentity : .unusable }
        if storage == "leads" && i % 211 == 0 { return .foreign }
        return nil
    }

    func email(_ person: Int, tag: String, repeated: Bool) -> String {
        repeated ? "  F\(person)@\(tag.uppercased()).Example.COM " : "f\(person)@\(tag).example.com"
    }

    func linkedin(_ person: Int, tag: String, repeated: Bool) -> String {
        repeated ? "linkedin.com/in/F\(person)-\(tag.uppercased())/" : "https://www.linkedin.com/in/f\(person)-\(tag)"
    }

    func makeFixture(storage: String, channel: String, size: Int, errors: Int, random: inout SplitMix64) throws -> Fixture {
        let seeder = try Seeder(env)
        let user = try seeder.user()
        let tag = "j" + String(UInt32.random(in: 0 ... .max), radix: 16)
        var members = [Int: Int]()
        for i in 1...size where Self.invalid(i, storage: storage) == nil { members[Self.person(i), default: 0] += 1 }
        // Members that fail alone: a person of their own (no repeat of them, none repeated),
        // not in the campaign already.
        let candidates = (1...size).filter {
            Self.invalid($0, storage: storage) == nil && Self.person($0) == $0 && members[$0] == 1 && !Self.isPresent(person: $0)
        }
        var errorPositions = Set<Int>()
        while errorPositions.count < errors { errorPositions.insert(candidates[random.below(candidates.count)]) }

        var urls: [String?] = [], emails: [String?] = [], companies: [String?] = []
        for i in 1...size {
            let person = Self.person(i), repeated = person != i
            var url: String? = linkedin(person, tag: tag, repeated: repeated)
            var mail: String? = email(person, tag: tag, repeated: repeated)
            switch Self.invalid(i, storage: storage) {
            case .noIdentity?:
                if channel == "linkedin" { url = nil } else { mail = nil }
            case .unusable?:
                if channel == "linkedin" { url = "https://www.linkedin.com/in/imported-\(tag)-\(i)" } else { mail = "not an email \(i)" }
            case .foreign?, nil:
                break
            }
            urls.append(url)
            emails.append(mail)
            companies.append(errorPositions.contains(i) ? errorCompany : "Company \(i % 17)")
        }

        let list: String
        if storage == "rows" {
            list = try seeder.connection.query("INSERT INTO lists (user_id, name, storage) VALUES ($1, 'faults', 'rows') RETURNING id",
                                               [user]).first!.requiredString(0)
            let profiles: [String?] = (1...size).map { i in
                var profile = #"{"firstName":"F\#(i)","lastName":"L\#(i)","currentCompany":"\#(companies[i - 1]!)","currentRole":"Role \#(i % 5)""#
                if let mail = emails[i - 1] { profile += #","enrichment":{"work_email":"\#(mail)"}"# }
                return profile + "}"
            }
            try seeder.connection.query("""
                INSERT INTO list_rows (list_id, linkedin_url, profile_data, created_at)
                SELECT $1::uuid, t.url, t.profile::jsonb, now() + t.n * interval '1 millisecond'
                FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(url, profile, n)
                """, values: [.text(list), .textArray(urls), .textArray(profiles)])
        } else {
            list = try seeder.connection.query("INSERT INTO lists (user_id, name, storage) VALUES ($1, 'faults', 'leads') RETURNING id",
                                               [user]).first!.requiredString(0)
            let stranger = try seeder.user()
            let owners: [String?] = (1...size).map { Self.invalid($0, storage: storage) == .foreign ? stranger : user }
            try seeder.connection.query("""
                WITH member AS (
                    SELECT gen_random_uuid() AS id, t.owner::uuid AS owner, t.url, t.mail, t.company, t.n
                    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS t(owner, url, mail, company, n)
                ), lead AS (
                    INSERT INTO leads (id, user_id, first_name, last_name, company, title)
                    SELECT id, owner, 'F' || n, 'L' || n, company, 'Role ' || (n % 5) FROM member
                ), social AS (
                    INSERT INTO lead_socials (lead_id, network, url) SELECT id, 'linkedin', url FROM member WHERE url IS NOT NULL
                ), contact AS (
                    INSERT INTO lead_contacts (lead_id, kind, value) SELECT id, 'work_email', mail FROM member WHERE mail IS NOT NULL
                ), attribute AS (
                    INSERT INTO lead_attributes (lead_id, key, value) SELECT id, 'n', to_jsonb(n) FROM member
                )
                INSERT INTO list_memberships (list_id, lead_id, created_at)
                SELECT $1::uuid, id, now() + n * interval '1 millisecond' FROM member
                """, values: [.text(list), .textArray(owners), .textArray(urls), .textArray(emails), .textArray(companies)])
        }

        var present: [String] = []
        for person in 1...size where Self.isPresent(person: person) {
            present.append(channel == "email" ? email(person, tag: tag, repeated: false) : linkedin(person, tag: tag, repeated: false))
        }
        var seen = Set((1...size).filter { Self.isPresent(person: $0) })
        var expected = ImportCounts()
        var reasons: [Int: RejectionReason] = [:]
        for i in 1...size {
            if Self.invalid(i, storage: storage) != nil {
                expected.invalid += 1
                reasons[i] = .invalid
            } else if errorPositions.contains(i) {
                expected.errors += 1
                reasons[i] = .error
            } else if seen.contains(Self.person(i)) {
                expected.duplicates += 1
                reasons[i] = .duplicate
            } else {
                seen.insert(Self.person(i))
                expected.imported += 1
            }
        }
        return Fixture(user: user, list: list, storage: storage, channel: channel, size: size, present: present, expected: expected,
                       reasons: reasons, errorPositions: errorPositions.sorted())
    }

    /// A draft campaign of the fixture's user and channel, with the fixture's identities in.
    func campaign(for fixture: Fixture) throws -> String {
        let campaign = try db.query("INSERT INTO campaigns (user_id, name, channel) VALUES ($1, 'faults', $2) RETURNING id",
                                    [.text(fixture.user), .text(fixture.channel)]).first!.requiredString(0)
        let column = fixture.channel == "email" ? "email" : "linkedin_url"
        try db.query("""
            INSERT INTO campaign_leads (campaign_id, user_id, status, \(column), first_name, source)
            SELECT $1::uuid, $2::uuid, 'pending', t.identity, 'Present', 'manual' FROM unnest($3::text[]) AS t(identity)
            """, [.text(campaign), .text(fixture.user), .textArray(fixture.present)])
        return campaign
    }

    // MARK: - Jobs

    func record(user: String, campaign: String, list: String, filter: JSONValue? = nil) throws -> String {
        let creation = try db.with {
            try JobStore().record(NewImportJob(user: user, campaign: campaign, list: list, filter: filter, fingerprint: []), on: $0)
        }
        guard case .created(let job) = creation else { throw TestEnvironmentError(message: "the job was not recorded: \(creation)") }
        return job.id
    }

    func job(_ id: String, user: String) throws -> JobRecord {
        guard let record = try db.with({ try JobStore().job(id: id, user: user, on: $0) }) else {
            throw TestEnvironmentError(message: "job \(id) is gone")
        }
        return record
    }

    /// Polls the job until `condition` holds or `timeout` passes; the last record read (reads
    /// that fail while the database is down are skipped).
    func watch(_ id: String, user: String, timeout: TimeInterval, interval: TimeInterval = 0.005,
               until condition: (JobRecord) -> Bool) -> (met: Bool, last: JobRecord?) {
        let deadline = Date().addingTimeInterval(timeout)
        var last: JobRecord?
        while true {
            if let record = try? job(id, user: user) {
                last = record
                if condition(record) { return (true, record) }
            }
            if Date() >= deadline { return (false, last) }
            Thread.sleep(forTimeInterval: interval)
        }
    }

    /// Every rejection of the job, through the report's pages.
    func rejections(_ id: String, user: String) throws -> [Rejection] {
        var all: [Rejection] = []
        var request = RejectionsRequest(limit: 1000)
        while true {
            guard let page = try db.with({ try JobStore().rejections(id: id, user: user, request: request, on: $0) }) else {
                throw TestEnvironmentError(message: "no report for job \(id)")
            }
            all += page.items
            guard let next = page.next else { return all }
            request.after = next
        }
    }

    func seconds(_ record: JobRecord) -> Double {
        guard let started = record.job.startedAt, let finished = record.job.finishedAt else { return .nan }
        return Double(finished.millisecondsSinceEpoch - started.millisecondsSinceEpoch) / 1000
    }

    /// The worker process among `pids` whose connection ran a job's statement last (a batch's
    /// commit, a page read, a ranked selection's ids): the runner holding the job, as only one job runs at a time in
    /// these tests and a runner's connections serve nothing else while it runs.
    func jobHolder(among pids: [Int32]) throws -> Int32? {
        let result = try db.query("""
            SELECT client_port FROM pg_stat_activity
            WHERE usename = 'leadimport_service' AND client_port IS NOT NULL
              AND (query LIKE 'WITH job AS%pg_try_advisory_xact_lock%' OR query LIKE '%cursor_created_at%'
                   OR query LIKE '%WITH page AS MATERIALIZED%' OR query LIKE '%FROM import_selection_order%')
            ORDER BY query_start DESC
            """)
        for row in result.rows {
            if let port = try row.int(0), let pid = process(holdingLocalTCPPort: port, among: pids) { return pid }
        }
        return nil
    }

    // MARK: - Comparing with an uninterrupted run

    /// The faulted job against the reference job (same list, an equal campaign, no fault) and
    /// against what the fixture says an import counts.
    /// `listPositions`: the job's positions are the list's (no filter reorders it), so the report
    /// is checked against the fixture's reasons too.
    func assertSameOutcome(_ faulted: JobRecord, campaign: String, reference: JobRecord, referenceCampaign: String,
                           _ fixture: Fixture, _ what: String, listPositions: Bool = true,
                           file: StaticString = #filePath, line: UInt = #line) throws {
        let say = "\(what), \(fixture.description), \(Self.seedText)"
        XCTAssertEqual(reference.job.counts, fixture.expected, "the uninterrupted run: \(say)", file: file, line: line)
        XCTAssertEqual(reference.job.httpStatus, 200, "the uninterrupted run: \(say)", file: file, line: line)
        XCTAssertEqual(faulted.job.state, .finished, say, file: file, line: line)
        XCTAssertEqual(faulted.job.counts, reference.job.counts, say, file: file, line: line)
        XCTAssertEqual(faulted.job.httpStatus, reference.job.httpStatus, say, file: file, line: line)
        XCTAssertEqual(faulted.job.partial, reference.job.partial, say, file: file, line: line)
        XCTAssertEqual(faulted.resumePosition, fixture.size, say, file: file, line: line)
        try assertCampaign(campaign, equals: referenceCampaign, fixture, say, file: file, line: line)
        let report = try rejections(faulted.job.id, user: fixture.user)
        let expectedReport = try rejections(reference.job.id, user: fixture.user)
        try assertReport(report, of: faulted, fixture, say, listPositions: listPositions, file: file, line: line)
        XCTAssertEqual(report.count, expectedReport.count, "rejections: \(say)", file: file, line: line)
        let differences = zip(report, expectedReport).filter { $0 != $1 }
        XCTAssertTrue(differences.isEmpty, "\(differences.count) rejections differ from the uninterrupted run's, the first ones "
                      + "(faulted, uninterrupted): \(differences.prefix(5)): \(say)", file: file, line: line)
    }

    /// The campaign's leads are the reference campaign's, row for row (each identity once), and
    /// its stats are what its leads count.
    func assertCampaign(_ campaign: String, equals reference: String, _ fixture: Fixture, _ say: String,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let columns = "email, linkedin_url, first_name, last_name, name, company, position, headline, status, source, source_ref, custom_fields::text"
        let differing = try db.query("""
            SELECT count(*)::int FROM (
                (SELECT \(columns) FROM campaign_leads WHERE campaign_id = $1 EXCEPT ALL SELECT \(columns) FROM campaign_leads WHERE campaign_id = $2)
                UNION ALL
                (SELECT \(columns) FROM campaign_leads WHERE campaign_id = $2 EXCEPT ALL SELECT \(columns) FROM campaign_leads WHERE campaign_id = $1)
            ) AS d
            """, [.text(campaign), .text(reference)]).first!.requiredInt(0)
        XCTAssertEqual(differing, 0, "campaign leads differing from the uninterrupted run's: \(say)", file: file, line: line)
        let row = try db.query("""
            SELECT count(*)::int, count(DISTINCT identity_key)::int,
                   (SELECT stats->>'total' FROM campaigns WHERE id = $1), (SELECT stats->>'pending' FROM campaigns WHERE id = $1),
                   (SELECT stats = (SELECT stats FROM campaigns WHERE id = $2) FROM campaigns WHERE id = $1)
            FROM campaign_leads WHERE campaign_id = $1
            """, [.text(campaign), .text(reference)]).first!
        let leads = try row.requiredInt(0)
        XCTAssertEqual(leads, fixture.expected.imported + fixture.present.count, "leads in the campaign: \(say)", file: file, line: line)
        XCTAssertEqual(try row.requiredInt(1), leads, "an identity inserted twice: \(say)", file: file, line: line)
        XCTAssertEqual(try row.string(2), String(leads), "stats total: \(say)", file: file, line: line)
        XCTAssertEqual(try row.string(3), String(leads), "stats pending: \(say)", file: file, line: line)
        XCTAssertEqual(try row.bool(4), true, "stats differ from the uninterrupted run's: \(say)", file: file, line: line)
    }

    /// The report of a finished job: each position once, in order, the reason the fixture says,
    /// each reason numbering exactly its count, every kind of detail present.
    func assertReport(_ report: [Rejection], of record: JobRecord, _ fixture: Fixture, _ say: String, listPositions: Bool = true,
                      file: StaticString = #filePath, line: UInt = #line) throws {
        let positions = report.map(\.position)
        XCTAssertEqual(positions, positions.sorted(), "report out of order: \(say)", file: file, line: line)
        XCTAssertEqual(Set(positions).count, positions.count, "a position reported twice: \(say)", file: file, line: line)
        XCTAssertEqual(report.filter { $0.reason == .invalid }.count, record.job.counts.invalid, say, file: file, line: line)
        XCTAssertEqual(report.filter { $0.reason == .duplicate }.count, record.job.counts.duplicates, say, file: file, line: line)
        XCTAssertEqual(report.filter { $0.reason == .error }.count, record.job.counts.errors, say, file: file, line: line)
        let wrong = listPositions ? report.filter { fixture.reasons[$0.position] != $0.reason } : []
        if listPositions { XCTAssertEqual(Set(positions), Set(fixture.reasons.keys), "positions reported: \(say)", file: file, line: line) }
        XCTAssertTrue(wrong.isEmpty, "reported with another reason than the list's: \(wrong.prefix(5)): \(say)", file: file, line: line)
        let details = Set(report.map(\.detail))
        XCTAssertTrue(details.contains(RejectionDetail.alreadyInCampaign), "\(details): \(say)", file: file, line: line)
        XCTAssertTrue(details.contains { $0.hasPrefix(RejectionDetail.repeatOfPositionPrefix) }, "\(details): \(say)", file: file, line: line)
        XCTAssertTrue(report.filter { $0.reason == .error }.allSatisfy { $0.detail.contains(errorConstraint) },
                      "error details: \(report.filter { $0.reason == .error }): \(say)", file: file, line: line)
        if fixture.storage == "leads" {
            XCTAssertTrue(details.contains("the Lead belongs to another user"), "\(details): \(say)", file: file, line: line)
        }
    }

    // MARK: - 1. Faults at random points of a job

    enum Fault: String, CaseIterable {
        case killWorker = "kill -9 of the job's worker process"
        case restartService = "the service restarted (SIGTERM, then a new service)"
        case restartPostgres = "PostgreSQL restarted"
        case terminateBackends = "the service's backends terminated"
    }

    func testAJobKilledWithItsWorkerProcessEndsExact() throws {
        try runFaultCase(.killWorker, storage: "rows", channel: "linkedin", salt: 1)
    }

    func testAJobThroughServiceRestartsEndsExact() throws {
        try runFaultCase(.restartService, storage: "leads", channel: "email", salt: 2)
    }

    func testAJobThroughPostgresRestartsEndsExact() throws {
        try runFaultCase(.restartPostgres, storage: "leads", channel: "linkedin", salt: 3)
    }

    func testAJobWhoseBackendsAreTerminatedEndsExact() throws {
        try runFaultCase(.terminateBackends, storage: "rows", channel: "email", salt: 4)
    }

    /// A filter that orders the whole list: ranked by the database (more members than the service
    /// holds in memory), ranked again by every run that takes the job up, resumed at its place.
    static let wholeListReordered = #"{"orderBy": [{"field": "linkedinUrl", "direction": "desc"}, {"field": "email"}]}"#

    func testAFilteredJobKilledWithItsWorkerProcessEndsExact() throws {
        try runFaultCase(.killWorker, storage: "leads", channel: "email", salt: 5, filter: Self.wholeListReordered)
    }

    func testAFilteredJobThroughPostgresRestartsEndsExact() throws {
        try runFaultCase(.restartPostgres, storage: "rows", channel: "linkedin", salt: 6, filter: Self.wholeListReordered)
    }

    /// The contract's bound on taking a job up again after its process stopped or died.
    static let takeover: TimeInterval = 30

    /// Records the fixture's job twice: once into a campaign the service imports without a
    /// fault (the reference), then into an equal campaign while `fault` strikes once or twice,
    /// each time after a number of members committed chosen by the seed; then compares.
    /// `filter`: the job's, the same for both runs. A filter here selects every member, so the
    /// counts are the fixture's; only the positions (the selection's, not the list's) differ.
    func runFaultCase(_ fault: Fault, storage: String, channel: String, salt: UInt64, filter: String? = nil) throws {
        let filterValue = try filter.map { try JSONReader.parse($0) }
        var random = generator(salt)
        let size = 20_000 + random.below(10_001)
        let strikes = 1 + random.below(2)
        let fixture = try makeFixture(storage: storage, channel: channel, size: size, errors: 3, random: &random)
        let referenceCampaign = try campaign(for: fixture)
        let faultedCampaign = try campaign(for: fixture)
        let processes = 2
        let service = try startService("job-fault-\(salt)", processes: processes, workers: 2)
        defer { service.stop() }
        let user = fixture.user
        let caseStarted = monotonicSeconds()

        let referenceID = try record(user: user, campaign: referenceCampaign, list: fixture.list, filter: filterValue)
        let (referenceEnded, reference) = watch(referenceID, user: user, timeout: 120, interval: 0.05) { $0.job.state.isFinal }
        guard referenceEnded, let reference else {
            return XCTFail("the uninterrupted run did not end within 120 s: \(String(describing: reference)), \(Self.seedText)" + context(service))
        }
        let importTime = seconds(reference)

        let id = try record(user: user, campaign: faultedCampaign, list: fixture.list, filter: filterValue)
        var journal: [String] = []
        var lastPosition = 0
        var lastOver = monotonicSeconds()
        for number in 1...strikes {
            // Between 10% and 60% of the list for the first strike, and up to 85% for a second.
            let low = number == 1 ? size / 10 : max(lastPosition + size / 10, size * 4 / 10)
            let high = number == 1 ? size * 6 / 10 : size * 85 / 100
            var target = low + random.below(max(1, high - low))
            // A kill's first strike hits a page being cut in parts (one of its leads fails alone):
            // where a resumed run is most likely to read, cut or report otherwise.
            let split = fault == .killWorker && number == 1 && filter == nil
                ? fixture.errorPositions.first { ($0 - 1) / Self.pageSize * Self.pageSize >= size / 10 } : nil
            if let split { target = (split - 1) / Self.pageSize * Self.pageSize }
            let say = "\(fault.rawValue), strike \(number) of \(strikes) after \(target) members"
                + (split.map { " while the page of member \($0) is cut in parts" } ?? "") + ", \(fixture.description), \(Self.seedText)"
            let (reached, before) = watch(id, user: user, timeout: Self.takeover + 3 * importTime) {
                $0.resumePosition >= target || $0.job.state.isFinal
            }
            guard reached, var before, before.job.state == .running else {
                return XCTFail("the job did not reach \(target) members while running: \(String(describing: before)): \(say)" + context(service))
            }
            var holder: Int32?
            if let split {
                let cut = waitForSplit(of: split, job: id, user: user, workers: service.workerPIDs(), timeout: Self.takeover)
                guard cut.caught, let record = cut.record else {
                    return XCTFail("the page of member \(split) was not seen cut in parts: \(String(describing: cut.record)): \(say)"
                                   + context(service))
                }
                before = record
                holder = cut.holder
            }
            XCTAssertGreaterThan(before.resumePosition, 0, say)
            XCTAssertLessThan(before.resumePosition, size, "the job ended before the fault: \(say)")

            let struck = monotonicSeconds()
            let over = try strike(fault, service: service, processes: processes, holder: holder, random: &random, say: say)
            let after = try job(id, user: user)
            // Taken up again: another claim, or (the same runner went on) a batch committed since.
            // A batch the killed process sent may still land after it died, so after a kill only
            // a claim counts.
            let (takenUp, resumed) = watch(id, user: user, timeout: Self.takeover) {
                $0.attempts > before.attempts || $0.job.state.isFinal
                    || (!over.mustClaimAgain && $0.resumePosition > after.resumePosition)
            }
            let takeoverSeconds = monotonicSeconds() - over.at
            XCTAssertTrue(takenUp, "the job was not taken up again within \(Self.takeover) s of the fault: "
                          + "\(String(describing: resumed)): \(say)" + context(service))
            if over.mustClaimAgain {
                XCTAssertGreaterThan(resumed?.attempts ?? 0, before.attempts, "no new claim after the fault: \(say)" + context(service))
            }
            journal.append(String(format: "strike %d at %d/%d (attempt %d): %@; fault over after %.1f s, taken up %.1f s later (attempt %d)",
                                  number, before.resumePosition, size, before.attempts, over.what, over.at - struck, takeoverSeconds,
                                  resumed?.attempts ?? -1))
            lastPosition = max(before.resumePosition, target)
            lastOver = over.at
        }
        // Taken up within the contract's 30 s, then no longer than the import takes (with some
        // slack for a machine that others share).
        let endBy = Self.takeover + importTime + max(5, importTime / 2)
        let (ended, last) = watch(id, user: user, timeout: max(0, lastOver + endBy - monotonicSeconds()), interval: 0.05) {
            $0.job.state.isFinal
        }
        let say = "\(fault.rawValue) x\(strikes): \(journal.joined(separator: "; "))" + (filter.map { ", filter \($0)" } ?? "")
            + ", \(Self.seedText)"
        guard ended, let last else {
            return XCTFail(String(format: "the job did not end within %.0f s of the last fault: ", endBy) + "\(String(describing: last)): \(say)"
                           + context(service))
        }
        try assertSameOutcome(last, campaign: faultedCampaign, reference: reference, referenceCampaign: referenceCampaign, fixture, say,
                              listPositions: filter == nil)
        print(String(format: "JobFaultTests %@: %@ in %.1f s (uninterrupted %.1f s, faulted %.1f s, %d attempts); %@",
                     fault.rawValue, fixture.description, monotonicSeconds() - caseStarted, importTime, seconds(last), last.attempts, say))
    }

    struct FaultOver {
        /// monotonicSeconds() when the fault was over: the processes replaced, the database up.
        let at: Double
        let what: String
        /// Whether the job can only go on through a new claim (its runner is gone).
        let mustClaimAgain: Bool
    }

    /// The runner's page size, which is its batch size.
    static let pageSize = 500

    /// Waits until the runner cuts the page holding position `member` in parts: the transaction
    /// of its parts is open (its connection is between statements of a transaction, or at a
    /// savepoint; a statement on its own is a transaction too, so its start tells nothing), or,
    /// were parts committed one by one, the job stands inside that page. `holder` is the worker
    /// process of that connection, when it was seen.
    func waitForSplit(of member: Int, job id: String, user: String, workers: [Int32], timeout: TimeInterval)
        -> (caught: Bool, record: JobRecord?, holder: Int32?) {
        let start = (member - 1) / Self.pageSize * Self.pageSize
        let deadline = Date().addingTimeInterval(timeout)
        var last: JobRecord?
        while Date() < deadline {
            guard let record = try? job(id, user: user) else { continue }
            last = record
            if record.resumePosition >= start + Self.pageSize || record.job.state.isFinal { return (false, record, nil) }
            if record.resumePosition > start { return (true, record, nil) }
            let ports = (try? db.query("""
                SELECT client_port FROM pg_stat_activity
                WHERE usename = 'leadimport_service' AND client_port IS NOT NULL
                  AND (state = 'idle in transaction' OR state = 'active' AND query LIKE '%SAVEPOINT%')
                """).rows.compactMap { try $0.int(0) }) ?? []
            if let port = ports.first { return (true, record, process(holdingLocalTCPPort: port, among: workers)) }
        }
        return (false, last, nil)
    }

    func strike(_ fault: Fault, service: ServiceProcess, processes: Int, holder: Int32? = nil, random: inout SplitMix64,
                say: String) throws -> FaultOver {
        switch fault {
        case .killWorker:
            let workers = service.workerPIDs()
            guard let victim = try holder ?? jobHolder(among: workers) else {
                let backends = try db.query("""
                    SELECT client_port::text || ' ' || state || ' ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 200) FROM pg_stat_activity
                    WHERE usename = 'leadimport_service'
                    """).rows.map { try $0.string(0) ?? "?" }
                throw TestEnvironmentError(message: "no worker process of \(workers) holds the job: \(say)\n\(backends.joined(separator: "\n"))" + context(service))
            }
            XCTAssertEqual(kill(victim, SIGKILL), 0, say)
            let replaced = waitUntil(timeout: 10) {
                let now = service.workerPIDs()
                return !now.contains(victim) && now.count == processes
            }
            XCTAssertTrue(replaced, "the killed worker process \(victim) was not replaced: \(say)" + context(service))
            return FaultOver(at: monotonicSeconds(), what: "killed worker process \(victim) of \(workers)", mustClaimAgain: true)

        case .restartService:
            XCTAssertEqual(service.stop(timeout: 30), 0, say + context(service))
            try start(service, arguments: arguments(processes: processes, workers: 2))
            return FaultOver(at: monotonicSeconds(), what: "service restarted", mustClaimAgain: true)

        case .restartPostgres:
            let before = try db.query("SELECT pg_postmaster_start_time()::text").first!.requiredString(0)
            let outage = 0.2 + Double(random.below(3500)) / 1000
            let stopped = monotonicSeconds()
            try env.postgres("stop")
            Thread.sleep(forTimeInterval: outage)
            try env.postgres("start")
            let down = monotonicSeconds() - stopped
            let after = try db.query("SELECT pg_postmaster_start_time()::text").first!.requiredString(0)
            XCTAssertNotEqual(before, after, "PostgreSQL was not restarted: \(say)")
            return FaultOver(at: monotonicSeconds(), what: String(format: "PostgreSQL down %.1f s", down), mustClaimAgain: false)

        case .terminateBackends:
            let rounds = 1 + random.below(3)
            var terminated: [Int] = []
            for round in 0..<rounds {
                if round > 0 { Thread.sleep(forTimeInterval: 0.02 + Double(random.below(300)) / 1000) }
                terminated.append(try db.query("""
                    SELECT count(pg_terminate_backend(pid))::int FROM pg_stat_activity
                    WHERE usename = 'leadimport_service' AND pid <> pg_backend_pid()
                    """).first!.requiredInt(0))
            }
            XCTAssertGreaterThan(terminated.first ?? 0, 0, "no backend of the service to terminate: \(say)")
            return FaultOver(at: monotonicSeconds(), what: "backends terminated \(terminated)", mustClaimAgain: false)
        }
    }

    // MARK: - 2. Two instances on one database behind one front end

    /// Two `serve` instances (one worker process each), each on a socket of its own, and a second
    /// nginx whose upstream holds both: the shipped server block with the second server added.
    /// Its `fastcgi_next_upstream` turns to the other server when one refuses the connection,
    /// which nginx does only for a request not yet sent or an idempotent one, never for a POST
    /// already sent (so no import is sent twice).
    func startTwoInstances(_ name: String) throws -> (instances: [ServiceProcess], frontEnd: String, stop: () -> Void) {
        let directory = (env.fastCGISocket as NSString).deletingLastPathComponent
        let sockets = ["\(directory)/job-\(name)-a.sock", "\(directory)/job-\(name)-b.sock"]
        let shipped = try String(contentsOfFile: URL(fileURLWithPath: env.stackScript).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("nginx/leadimport.conf").path, encoding: .utf8)
        let server = "    server unix:/run/leadimport/leadimport.sock;"
        let noRetry = "fastcgi_next_upstream off;"
        guard shipped.contains(server), shipped.contains(noRetry) else {
            throw TestEnvironmentError(message: "the shipped configuration changed: no '\(server)' or '\(noRetry)'")
        }
        let block = shipped.replacingOccurrences(of: server, with: server + "\n    server unix:\(sockets[1]);")
            .replacingOccurrences(of: noRetry, with: "fastcgi_next_upstream error timeout;")
        let folder = env.scratch + "/nginx-two-\(name)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let blockPath = folder + "/leadimport-two.conf"
        try block.write(toFile: blockPath, atomically: true, encoding: .utf8)
        let port = Int.random(in: 20_000..<30_000)
        try env.startNginx(folder: folder, port: port, serverBlock: blockPath, socket: sockets[0])
        let frontEnd = "http://127.0.0.1:\(port)"
        let env = self.env!
        let instances = sockets.enumerated().map { index, socket in
            ServiceProcess(environment: env, logName: "job-two-\(name)-\(index == 0 ? "a" : "b")", listenPath: socket, frontEndURL: frontEnd)
        }
        let stop = {
            for instance in instances { instance.stop() }
            try? env.stopNginx(folder: folder)
        }
        do {
            for instance in instances { try start(instance, arguments: arguments(processes: 1, workers: 2)) }
        } catch {
            stop()
            throw error
        }
        return (instances, frontEnd, stop)
    }

    func contexts(_ instances: [ServiceProcess]) -> String { instances.map { context($0, lines: 25) }.joined() }

    /// The instance whose runner takes the job is killed whole, its supervisor and worker process
    /// with SIGKILL (a machine lost, not a stop: nothing is given back). The other instance takes
    /// the job up once the lease runs out and ends it exactly as an uninterrupted run, while
    /// requests through the shared front end go on being answered.
    func testAJobOfAnInstanceKilledWholeIsFinishedByTheOther() throws {
        var random = generator(5)
        let fixture = try makeFixture(storage: "rows", channel: "email", size: 20_000 + random.below(10_001), errors: 3, random: &random)
        let referenceCampaign = try campaign(for: fixture)
        let faultedCampaign = try campaign(for: fixture)
        let (instances, frontEnd, stop) = try startTwoInstances("kill")
        defer { stop() }
        let user = fixture.user

        let referenceID = try record(user: user, campaign: referenceCampaign, list: fixture.list)
        let (referenceEnded, reference) = watch(referenceID, user: user, timeout: 120, interval: 0.05) { $0.job.state.isFinal }
        guard referenceEnded, let reference else {
            return XCTFail("the uninterrupted run did not end within 120 s: \(String(describing: reference)), \(Self.seedText)" + contexts(instances))
        }
        let importTime = seconds(reference)

        let load = SteadyLoad(nginxURL: frontEnd, threads: 2, pause: 0.02)
        load.start()
        defer { load.stop() }
        let id = try record(user: user, campaign: faultedCampaign, list: fixture.list)
        let target = fixture.size / 5 + random.below(fixture.size * 2 / 5)
        let say = "instance killed after \(target) members, \(fixture.description), \(Self.seedText)"
        let (reached, before) = watch(id, user: user, timeout: 30 + 3 * importTime) { $0.resumePosition >= target || $0.job.state.isFinal }
        guard reached, let before, before.job.state == .running else {
            return XCTFail("the job did not reach \(target) members while running: \(String(describing: before)): \(say)" + contexts(instances))
        }
        guard let holder = try jobHolder(among: instances.flatMap { $0.workerPIDs() }),
              let victim = instances.firstIndex(where: { $0.workerPIDs().contains(holder) }) else {
            return XCTFail("no instance's worker process holds the job: \(say)" + contexts(instances))
        }
        let survivor = instances[1 - victim]
        let killed = instances[victim]
        let workers = killed.workerPIDs()
        // Stopped first, so that it neither replaces its worker process nor sees it go.
        kill(killed.pid, SIGSTOP)
        for worker in workers { kill(worker, SIGKILL) }
        kill(killed.pid, SIGKILL)
        let killedAt = monotonicSeconds()
        XCTAssertTrue(waitUntil(timeout: 5) { !killed.isRunning && workers.allSatisfy { kill($0, 0) != 0 } },
                      "the killed instance's processes live on: \(say)" + contexts(instances))
        XCTAssertGreaterThan(before.resumePosition, 0, say)
        XCTAssertLessThan(before.resumePosition, fixture.size, say)

        let (takenUp, resumed) = watch(id, user: user, timeout: Self.takeover) { $0.attempts > before.attempts || $0.job.state.isFinal }
        let takeover = monotonicSeconds() - killedAt
        XCTAssertTrue(takenUp, "the job was not taken up within \(Self.takeover) s of the kill: \(String(describing: resumed)): \(say)"
                      + contexts(instances))
        XCTAssertEqual(resumed?.job.state, .running, say)
        Thread.sleep(forTimeInterval: 0.3)
        let newHolder = try jobHolder(among: survivor.workerPIDs())
        XCTAssertNotNil(newHolder, "the surviving instance does not run the job: \(say)" + contexts(instances))

        let endBy = Self.takeover + importTime + max(5, importTime / 2)
        let (ended, last) = watch(id, user: user, timeout: max(0, killedAt + endBy - monotonicSeconds()), interval: 0.05) {
            $0.job.state.isFinal
        }
        guard ended, let last else {
            return XCTFail(String(format: "the job did not end within %.0f s of the kill: ", endBy) + "\(String(describing: last)): \(say)"
                           + contexts(instances))
        }
        let results = load.stop()
        let failed = load.failures(in: results)
        XCTAssertGreaterThan(results.count, 50, "the load hardly ran: \(say)")
        XCTAssertEqual(failed.count, 0, "requests through the front end failed:\n\(describe(failed)): \(say)" + contexts(instances))
        XCTAssertGreaterThanOrEqual(last.attempts, 2, say)
        try assertSameOutcome(last, campaign: faultedCampaign, reference: reference, referenceCampaign: referenceCampaign, fixture, say)
        print(String(format: "JobFaultTests two instances: %@ at %d/%d, taken up by the other %.1f s after the kill, ended in %.1f s "
                     + "(uninterrupted %.1f s); %d requests through the front end meanwhile, %d failed", say, before.resumePosition,
                     fixture.size, takeover, seconds(last), importTime, results.count, failed.count))
    }

    /// Jobs of several users recorded at once are spread over both instances and all end exact.
    func testTwoInstancesShareTheQueue() throws {
        let seeder = try Seeder(env)
        let (instances, _, stop) = try startTwoInstances("share")
        defer { stop() }
        let size = 12_000
        var jobs: [(id: String, user: String, campaign: String)] = []
        for _ in 0..<4 {
            let user = try seeder.user()
            let list = try seeder.rowsList(user: user, count: size)
            let campaign = try seeder.campaign(user: user, channel: "linkedin")
            jobs.append((try record(user: user, campaign: campaign, list: list), user, campaign))
        }
        var ranBy: [String: [Int]] = [:]
        for job in jobs {
            let (ended, last) = watch(job.id, user: job.user, timeout: 90, interval: 0.05) { $0.job.state.isFinal }
            XCTAssertTrue(ended, "job \(job.id) did not end: \(String(describing: last))" + contexts(instances))
            XCTAssertEqual(last?.job.state, .finished)
            XCTAssertEqual(last?.job.counts, ImportCounts(imported: size))
            XCTAssertEqual(last?.job.httpStatus, 200)
            XCTAssertEqual(last?.attempts, 1, "a job taken up twice with nothing wrong")
            XCTAssertEqual(try seeder.count("SELECT count(DISTINCT identity_key)::int FROM campaign_leads WHERE campaign_id = $1", [job.campaign]), size)
            XCTAssertEqual(try seeder.count("SELECT (stats->>'total')::int FROM campaigns WHERE id = $1", [job.campaign]), size)
            ranBy[job.id] = instances.indices.filter { index in
                instances[index].logLines(message: "job finished").contains { ServiceProcess.field("job_id", in: $0) == job.id }
            }
        }
        XCTAssertTrue(ranBy.values.allSatisfy { $0.count == 1 }, "each job ended by one instance: \(ranBy)" + contexts(instances))
        XCTAssertEqual(Set(ranBy.values.flatMap { $0 }), [0, 1], "the jobs were not spread over both instances: \(ranBy)" + contexts(instances))
    }
}
