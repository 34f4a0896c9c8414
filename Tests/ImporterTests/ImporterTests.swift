import Foundation
@testable import Importer
import LeadCore
import Platform
import Postgres
import Store
import TestSupport
import XCTest

/// The importer straight through its seam, against the real PostgreSQL and nothing else: no
/// service process, no nginx. The connections it gets are the test's (`HookedConnections`), so a
/// test can count the leases, keep the pool to one connection, or take a connection away.
final class ImporterTests: XCTestCase {
    var env: TestEnvironment!
    var seed: Seed!
    var pools: [ConnectionPool] = []
    var admins: [Connection] = []
    /// Backends terminated by `connections(terminatingLeases:)`.
    let terminated = Locked(0)

    override func setUpWithError() throws {
        env = try TestEnvironment.require()
        seed = try Seed(env)
    }

    override func tearDown() {
        for pool in pools { pool.close() }
        for admin in admins { admin.close() }
        pools = []
        admins = []
        super.tearDown()
    }

    /// The leases are counted; the ones named have their backend terminated just before the
    /// importer uses them.
    func connections(size: Int = 3, terminatingLeases: Set<Int> = []) throws -> HookedConnections {
        let pool = ConnectionPool(conninfo: env.databaseURL, configuration: PoolConfiguration(size: size, waitLimit: .seconds(5)))
        pools.append(pool)
        guard !terminatingLeases.isEmpty else { return HookedConnections(pool: pool, losingAnswersOf: [], onLease: { _, _ in }) }
        let admin = try Seeder.adminConnection(env)
        admins.append(admin)
        let terminated = terminated
        return HookedConnections(pool: pool, losingAnswersOf: []) { number, connection in
            guard terminatingLeases.contains(number) else { return }
            try terminateBackend(of: connection, admin: admin)
            terminated.withLock { $0 += 1 }
        }
    }

    /// A user with a token and a draft campaign of `channel`.
    func owner(channel: String = "linkedin") throws -> (user: String, token: String, campaign: String) {
        let user = try seed.user()
        return (user, try seed.token(user: user), try seed.campaign(user: user, channel: channel))
    }

    func order(token: String, campaign: String, list: String) -> ImportOrder {
        ImportOrder(tokenHash: SHA256.hash(token), ids: .success(ImportIDs(campaign: campaign, list: list)), waitLimit: .seconds(5))
    }

    func imported(_ answer: ImportAnswer, file: StaticString = #filePath, line: UInt = #line) -> ImportOutcome? {
        guard case .imported(let outcome) = answer else {
            XCTFail("not imported: \(answer)", file: file, line: line)
            return nil
        }
        return outcome
    }

    func refusal(_ answer: ImportAnswer) -> RequestError? {
        if case .refused(let error) = answer { return error }
        return nil
    }

    // MARK: - The first-page decision

    func testAListOfOnePageIsImportedOnTheConnectionOfTheLookup() throws {
        let (user, token, campaign) = try owner()
        let list = try seed.bulkRowsList(user: user, count: 8)
        let source = try connections()
        let importer = LeadImporter(connections: source, pageSize: 10, batchSize: 3)
        let outcome = try XCTUnwrap(imported(importer.importList(order(token: token, campaign: campaign, list: list))))
        XCTAssertEqual(outcome.counts, ImportCounts(imported: 8))
        XCTAssertEqual(outcome.end, .completed)
        XCTAssertEqual(source.leases, 1, "token, campaign, list, the page, its batches and the stats on one lease")
        XCTAssertEqual(try seed.count(campaign), 8)
    }

    /// With a pool of one connection, a longer list can only finish if the lookup's lease was
    /// given back before the stages lease theirs.
    func testALongerListGivesTheLookupConnectionBackBeforeTheRest() throws {
        for storage in ["rows", "leads"] {
            let (user, token, campaign) = try owner()
            let list = storage == "rows" ? try seed.bulkRowsList(user: user, count: 95) : try seed.bulkLeadsList(user: user, count: 95)
            let source = try connections(size: 1)
            let importer = LeadImporter(connections: source, pageSize: 10, batchSize: 4, stageWaitLimit: .seconds(5))
            let outcome = try XCTUnwrap(imported(importer.importList(order(token: token, campaign: campaign, list: list))))
            XCTAssertEqual(outcome.counts, ImportCounts(imported: 95), storage)
            XCTAssertEqual(outcome.end, .completed, storage)
            XCTAssertEqual(try seed.count(campaign), 95, storage)
            XCTAssertGreaterThan(source.leases, 1, storage)
        }
    }

    /// A one-page list imported again is answered from reads: with the campaign's row locked by
    /// another session (as a status change in progress would lock it), the import waits on
    /// nothing and answers what the insert would. A member the campaign no longer holds is
    /// still inserted.
    func testAOnePageListTheCampaignHoldsIsAnsweredWithoutWaitingOnTheCampaign() throws {
        for storage in ["rows", "leads"] {
            let (user, token, campaign) = try owner()
            let list = storage == "rows" ? try seed.bulkRowsList(user: user, count: 8) : try seed.bulkLeadsList(user: user, count: 8)
            // A short lock timeout: an insert would give up on the lock in a second, not in ten.
            let pool = ConnectionPool(conninfo: env.databaseURL, configuration: PoolConfiguration(
                size: 3, waitLimit: .seconds(5), connection: ConnectionSettings(lockTimeout: .milliseconds(200))))
            pools.append(pool)
            let importer = LeadImporter(connections: pool, pageSize: 10, batchSize: 3)
            let first = try XCTUnwrap(imported(importer.importList(order(token: token, campaign: campaign, list: list))))
            XCTAssertEqual(first.counts, ImportCounts(imported: 8), storage)

            let locker = try Seeder.adminConnection(env)
            admins.append(locker)
            _ = try locker.query("BEGIN", [])
            _ = try locker.query("SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE", [campaign])
            let again = try XCTUnwrap(imported(importer.importList(order(token: token, campaign: campaign, list: list))))
            XCTAssertEqual(again, ImportOutcome(counts: ImportCounts(duplicates: 8), end: .completed), storage)
            XCTAssertEqual(again.status, 422, storage)
            _ = try locker.query("ROLLBACK", [])

            _ = try seed.sql("""
                DELETE FROM campaign_leads WHERE id = (SELECT id FROM campaign_leads WHERE campaign_id = $1 ORDER BY created_at LIMIT 1)
                """, [campaign])
            let third = try XCTUnwrap(imported(importer.importList(order(token: token, campaign: campaign, list: list))))
            XCTAssertEqual(third, ImportOutcome(counts: ImportCounts(imported: 1, duplicates: 7), end: .completed), storage)
            XCTAssertEqual(try seed.count(campaign), 8, storage)
        }
    }

    // MARK: - The lookup

    func testTheTokensVerdictComesBeforeTheRequestsOwn() throws {
        let (_, token, campaign) = try owner()
        let importer = LeadImporter(connections: try connections())
        let badIDs = ImportOrder(tokenHash: SHA256.hash("li_unknown"), ids: .failure(.invalidListID), waitLimit: .seconds(5))
        XCTAssertEqual(refusal(importer.importList(badIDs)), .unauthorized)
        let known = ImportOrder(tokenHash: SHA256.hash(token), ids: .failure(.invalidListID), waitLimit: .seconds(5))
        XCTAssertEqual(refusal(importer.importList(known)), .invalidListID)
        let unknownList = order(token: token, campaign: campaign, list: UUID().uuidString.lowercased())
        XCTAssertEqual(refusal(importer.importList(unknownList)), .listNotFound)
    }

    func testTheTargetVerdicts() throws {
        let (user, token, campaign) = try owner()
        let list = try seed.bulkRowsList(user: user, count: 1)
        let other = try owner()
        let importer = LeadImporter(connections: try connections())
        XCTAssertEqual(refusal(importer.importList(order(token: token, campaign: other.campaign, list: list))), .campaignNotFound)
        XCTAssertEqual(refusal(importer.importList(order(token: other.token, campaign: other.campaign, list: list))), .listNotFound)
        try seed.sql("UPDATE campaigns SET status = 'paused' WHERE id = $1", [campaign])
        XCTAssertEqual(refusal(importer.importList(order(token: token, campaign: campaign, list: list))), .campaignNotDraft)
        XCTAssertEqual(try seed.count(campaign), 0)
    }

    func testNoConnectionIsA503AndALookupThatFailsIsA500() throws {
        let (user, token, campaign) = try owner()
        let list = try seed.bulkRowsList(user: user, count: 1)
        let closed = ConnectionPool(conninfo: "postgresql://127.0.0.1:1/none?connect_timeout=1",
                                    configuration: PoolConfiguration(size: 1, waitLimit: .milliseconds(300)))
        pools.append(closed)
        XCTAssertEqual(refusal(LeadImporter(connections: closed).importList(order(token: token, campaign: campaign, list: list))),
                       .unavailable)
        let failing = LeadImporter(connections: try connections(), tokens: FailingTokens(sqlState: "42P01"))
        XCTAssertEqual(refusal(failing.importList(order(token: token, campaign: campaign, list: list))), .internalError)
        let timedOut = LeadImporter(connections: try connections(), tokens: FailingTokens(sqlState: "55P03"))
        XCTAssertEqual(refusal(timedOut.importList(order(token: token, campaign: campaign, list: list))), .unavailable)
    }

    // MARK: - The loop

    /// Repeats across pages and across neighbouring batches, invalid members, and members already
    /// in the campaign: the counts are exact and every identity is in once, with stage threads and
    /// without (the same list, imported again on the request's thread alone).
    func testRepeatsAcrossPagesAndBatchesAreCountedExactlyWithAndWithoutStageThreads() throws {
        for budget in [LeadImporter.defaultStageThreads, 0] {
            let (user, token, campaign) = try owner(channel: "email")
            var rows: [(linkedin: String?, profile: String)] = []
            for index in 0..<60 {
                // Every seventh member repeats the one three places before it; every eleventh has no email.
                let person = index % 7 == 6 ? index - 3 : index
                let email = index % 11 == 10 ? "" : #","enrichment":{"work_email":"p\#(person)@example.com"}"#
                rows.append((nil, #"{"firstName":"P\#(index)"\#(email)}"#))
            }
            let list = try seed.rowsList(user: user, rows: rows)
            // Already in the campaign: p0 and p1.
            try seed.sql("""
                INSERT INTO campaign_leads (campaign_id, user_id, status, email, source) VALUES
                ($1, $2, 'pending', 'p0@example.com', 'manual'), ($1, $2, 'pending', 'p1@example.com', 'manual')
                """, [campaign, user])
            let importer = LeadImporter(connections: try connections(), pageSize: 8, batchSize: 3, stageThreads: ThreadBudget(budget))
            let outcome = try XCTUnwrap(imported(importer.importList(order(token: token, campaign: campaign, list: list))))
            // What the contract says, member by member in list order.
            var expected = ImportCounts()
            var seen: Set<String> = ["p0@example.com", "p1@example.com"]
            for index in 0..<60 {
                guard index % 11 != 10 else { expected.invalid += 1; continue }
                let email = "p\(index % 7 == 6 ? index - 3 : index)@example.com"
                if seen.insert(email).inserted { expected.imported += 1 } else { expected.duplicates += 1 }
            }
            XCTAssertEqual(outcome.counts, expected, "stage threads \(budget)")
            XCTAssertEqual(outcome.counts.total, 60)
            XCTAssertEqual(try seed.count(campaign), expected.imported + 2, "stage threads \(budget)")
        }
    }

    /// A batch refused for one of its rows is split until only that row is left: it alone is an
    /// error, everything else goes in.
    func testABatchFailingForOneRowIsSplitDownToThatRow() throws {
        let (user, token, campaign) = try owner()
        let list = try seed.bulkRowsList(user: user, count: 40)
        let constraint = "importer_tests_no_p17_\(UInt32.random(in: 0 ... .max))"
        let admin = try Seeder.adminConnection(env)
        defer { _ = try? admin.query("ALTER TABLE campaign_leads DROP CONSTRAINT IF EXISTS \(constraint)", []); admin.close() }
        _ = try admin.query("ALTER TABLE campaign_leads ADD CONSTRAINT \(constraint) CHECK (last_name IS DISTINCT FROM '17') NOT VALID", [])
        let importer = LeadImporter(connections: try connections(), pageSize: 16, batchSize: 8)
        let outcome = try XCTUnwrap(imported(importer.importList(order(token: token, campaign: campaign, list: list))))
        XCTAssertEqual(outcome.counts, ImportCounts(imported: 39, errors: 1))
        XCTAssertEqual(outcome.status, 200)
        XCTAssertEqual(try seed.count(campaign), 39)
    }

    /// A connection taken away in the middle of a batch: the batch is settled by its token on a
    /// new connection, nothing is inserted twice and the counts are what is in the table.
    func testABatchWhoseConnectionIsLostIsSettledOnAnother() throws {
        let (user, token, campaign) = try owner()
        let list = try seed.bulkRowsList(user: user, count: 30)
        // On the request's thread alone the leases come in a fixed order: 1 is the lookup and the
        // first page; 2 writes its first batch and is lost, 3 settles that batch, 4 writes the
        // second; 5 reads the next page; 6 writes and is lost, 7 settles.
        let source = try connections(terminatingLeases: [2, 6])
        let importer = LeadImporter(connections: source, pageSize: 10, batchSize: 5, stageThreads: ThreadBudget(0))
        let outcome = try XCTUnwrap(imported(importer.importList(order(token: token, campaign: campaign, list: list))))
        XCTAssertEqual(outcome.counts, ImportCounts(imported: 30))
        XCTAssertEqual(outcome.end, .completed)
        XCTAssertEqual(terminated.current, 2)
        XCTAssertEqual(try seed.count(campaign), 30)
    }

    /// A stop cuts an import of several pages at a batch: what it answers is what is in.
    func testAStopCutsAnImportAtABatchAndARetryFinishesIt() throws {
        let (user, token, campaign) = try owner()
        let list = try seed.bulkLeadsList(user: user, count: 50)
        let asked = Locked(0)
        let stopping = LeadImporter(connections: try connections(), pageSize: 10, batchSize: 5,
                                    stopRequested: { asked.withLock { $0 += 1; return $0 > 3 } })
        let cut = try XCTUnwrap(imported(stopping.importList(order(token: token, campaign: campaign, list: list))))
        XCTAssertEqual(cut.end, .stopped(.serviceStopping))
        XCTAssertEqual(cut.status, 206)
        XCTAssertLessThan(cut.counts.total, 50)
        XCTAssertEqual(try seed.count(campaign), cut.counts.imported)
        let retry = try XCTUnwrap(imported(LeadImporter(connections: try connections(), pageSize: 10, batchSize: 5)
            .importList(order(token: token, campaign: campaign, list: list))))
        XCTAssertEqual(retry.end, .completed)
        XCTAssertEqual(retry.counts.imported + cut.counts.imported, 50)
        XCTAssertEqual(try seed.count(campaign), 50)
    }

    /// A selection keeps section 1's 206 and retry: a stop cuts it at a batch, and the same
    /// request again imports the rest of the selection, never more of the list.
    func testAStopCutsASelectionAtABatchAndARetryFinishesIt() throws {
        let (user, token, campaign) = try owner()
        let list = try seed.bulkLeadsList(user: user, count: 60)
        for filter in [ImportFilter(limit: 37), ImportFilter(order: [FilterOrder(field: .firstName, descending: true)], limit: 37),
                       ImportFilter(order: [FilterOrder(field: .firstName, descending: true)])] {
            let into = try seed.campaign(user: user, channel: "linkedin")
            var ids = order(token: token, campaign: into, list: list)
            ids.ids = .success(ImportIDs(campaign: into, list: list, choice: ImportChoice(filter: filter)))
            let asked = Locked(0)
            let stopping = LeadImporter(connections: try connections(), pageSize: 10, batchSize: 5,
                                        stopRequested: { asked.withLock { $0 += 1; return $0 > 3 } })
            let cut = try XCTUnwrap(imported(stopping.importList(ids)))
            XCTAssertEqual(cut.end, .stopped(.serviceStopping), "\(filter)")
            XCTAssertEqual(cut.status, 206)
            XCTAssertLessThan(cut.counts.total, filter.limit ?? 60)
            XCTAssertEqual(try seed.count(into), cut.counts.imported)
            let retry = try XCTUnwrap(imported(LeadImporter(connections: try connections(), pageSize: 10, batchSize: 5).importList(ids)))
            XCTAssertEqual(retry.end, .completed)
            XCTAssertEqual(retry.counts.total, filter.limit ?? 60, "the whole selection, again")
            XCTAssertEqual(retry.counts.imported + cut.counts.imported, filter.limit ?? 60, "\(filter)")
            XCTAssertEqual(try seed.count(into), filter.limit ?? 60)
        }
    }

    /// The `leads` storage's decoding: fields, the oldest work email, attributes; a member with
    /// neither identity is invalid.
    func testCanonicalLeadsAreDecodedAcrossPages() throws {
        let (user, token, campaign) = try owner(channel: "email")
        var leads: [Seed.LeadSpec] = []
        for index in 0..<23 {
            leads.append(Seed.LeadSpec(firstName: "F\(index)", company: "C\(index)",
                                       workEmails: index == 5 ? [] : [("late\(index)@example.com", 10), ("first\(index)@example.com", 0)],
                                       attributes: ["tier": "\(index)"]))
        }
        let list = try seed.leadsList(user: user, leads: leads)
        let importer = LeadImporter(connections: try connections(), pageSize: 4, batchSize: 3)
        let outcome = try XCTUnwrap(imported(importer.importList(order(token: token, campaign: campaign, list: list))))
        XCTAssertEqual(outcome.counts, ImportCounts(imported: 22, invalid: 1))
        let rows = try seed.campaignLeads(campaign)
        XCTAssertEqual(rows.count, 22)
        let twelve = try XCTUnwrap(rows.first { $0["email"] == "first12@example.com" })
        XCTAssertEqual(twelve["first_name"], "F12")
        XCTAssertEqual(twelve["company"], "C12")
        XCTAssertEqual(twelve["custom_fields"], #"{"tier": 12}"#)
    }
}

/// A token lookup whose statement fails with `sqlState`.
struct FailingTokens: TokenLookup {
    let sqlState: String

    func grant(tokenHash: [UInt8], ids: ImportIDs?, on connection: Connection) throws -> TokenGrant? {
        _ = try connection.query("DO $$ BEGIN RAISE EXCEPTION 'failing on purpose' USING ERRCODE = '\(sqlState)'; END $$", [])
        return nil
    }
}
