import Foundation
import LeadCore
import Postgres
@testable import Store
import TestSupport
import XCTest

/// The statements every import runs once a page or once a request keep one plan per connection.
/// PostgreSQL plans a prepared statement for its values five times, then keeps its generic plan
/// only if that is costed no dearer than those; a statement whose values make a small list or
/// campaign look cheaper than the generic plan is planned again at every execution, which for
/// these costs more than running them. The tables hold a large list and campaign beside small
/// ones, analyzed, as a real database does.
final class StatementPlanTests: MigratedDatabaseCase {
    var user = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        user = try newUser()
    }

    func newList(storage: ImportTarget.Storage, members: Int) throws -> String {
        let list = try XCTUnwrap(connection.query(
            "INSERT INTO lists (user_id, storage) VALUES ($1, $2) RETURNING id", [user, storage.rawValue]).first).requiredString(0)
        switch storage {
        case .rows:
            try connection.query("""
                INSERT INTO list_rows (list_id, profile_data, created_at)
                SELECT $1, jsonb_build_object('enrichment', jsonb_build_object('work_email', 'p' || g || '@example.com')),
                       '2026-01-01'::timestamptz + g * interval '1 second'
                FROM generate_series(1, $2::int) AS g
                """, [list, String(members)])
        case .leads:
            try connection.query("""
                WITH made AS (INSERT INTO leads (user_id, first_name) SELECT $2, 'p' || g FROM generate_series(1, $3::int) AS g RETURNING id)
                INSERT INTO list_memberships (list_id, lead_id) SELECT $1, id FROM made
                """, [list, user, String(members)])
        }
        return list
    }

    func newCampaign(leads: Int) throws -> CampaignWriter {
        let campaign = try XCTUnwrap(connection.query(
            "INSERT INTO campaigns (user_id, channel) VALUES ($1, 'email') RETURNING id", [user]).first).requiredString(0)
        try connection.query("""
            INSERT INTO campaign_leads (campaign_id, user_id, email)
            SELECT $1, $2, 'p' || g || '@example.com' FROM generate_series(1, $3::int) AS g
            """, [campaign, user, String(leads)])
        return CampaignWriter(target: ImportTarget(userID: user, campaignID: campaign, listID: UUID().uuidString.lowercased(),
                                                   channel: .email, storage: .rows))
    }

    func analyze() throws {
        let owner = try database.owner()
        defer { owner.close() }
        _ = try owner.queryUnprepared("ANALYZE campaign_leads, list_rows, list_memberships, leads")
    }

    /// How the statement containing `fragment` was planned on this connection so far.
    func plans(of fragment: String) throws -> (generic: Int, custom: Int) {
        let row = try XCTUnwrap(connection.queryUnprepared(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE strpos(statement, $1) > 0", [.text(fragment)]).first,
            "no prepared statement contains \(fragment)")
        return (try row.requiredInt(0), try row.requiredInt(1))
    }

    func assertPlannedOnce(_ fragment: String, executions: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let (generic, custom) = try plans(of: fragment)
        XCTAssertEqual(generic + custom, executions, file: file, line: line)
        XCTAssertLessThanOrEqual(custom, 5, "planned for its values at every execution", file: file, line: line)
    }

    func testTheHeldProbeKeepsItsGenericPlanForASmallCampaign() throws {
        _ = try newCampaign(leads: 20_000)
        let small = try newCampaign(leads: 9)
        try analyze()
        let asked = (1...9).map { "p\($0)@example.com" }
        for _ in 0..<12 { XCTAssertEqual(try small.held(asked, on: connection), .holds(Set(asked))) }
        try assertPlannedOnce("identity_key = ANY", executions: 12)
    }

    func testTheRowsPagesKeepTheirGenericPlanForASmallList() throws {
        let large = try newList(storage: .rows, members: 20_000)
        let small = try newList(storage: .rows, members: 10)
        try analyze()
        let source = LeadGenRows()
        for _ in 0..<12 { XCTAssertEqual(try source.page(list: small, after: nil, limit: 1000, on: connection).members.count, 10) }
        try assertPlannedOnce(LeadGenRows.firstPage, executions: 12)
        let first = try source.page(list: large, after: nil, limit: 1000, on: connection)
        for _ in 0..<12 { XCTAssertEqual(try source.page(list: large, after: first.last, limit: 1000, on: connection).members.count, 1000) }
        try assertPlannedOnce(LeadGenRows.nextPage, executions: 12)
    }

    func testTheLeadsKeysKeepTheirGenericPlanForASmallList() throws {
        let large = try newList(storage: .leads, members: 20_000)
        let small = try newList(storage: .leads, members: 10)
        try analyze()
        let source = CanonicalLeads(owner: user)
        for _ in 0..<12 { XCTAssertEqual(try source.keys(list: small, after: nil, limit: 1000, on: connection).ids.count, 10) }
        try assertPlannedOnce(CanonicalLeads.firstKeys, executions: 12)
        let first = try source.keys(list: large, after: nil, limit: 1000, on: connection)
        for _ in 0..<12 { XCTAssertEqual(try source.keys(list: large, after: first.last, limit: 1000, on: connection).ids.count, 1000) }
        try assertPlannedOnce(CanonicalLeads.nextKeys, executions: 12)
    }

    /// The dry run's ledger keeps its identities in byte order, the campaign's index in the
    /// database's collation: the probe of the campaign must still be one the index answers.
    func testTheDryRunTallyProbesTheCampaignThroughItsIndex() throws {
        let writer = try newCampaign(leads: 20_000)
        try analyze()
        let ledger = try DryRunLedger(target: writer.target, on: connection)
        defer { ledger.close() }
        let asked = (19_990...20_010).map { "p\($0)@example.com" }
        XCTAssertEqual(try ledger.tally(asked), .wouldImport(10))
        XCTAssertEqual(try ledger.tally(asked), .wouldImport(0), "what an earlier batch would have inserted is a duplicate")
        let plan = try connection.queryUnprepared("EXPLAIN " + DryRunLedger.tallySQL, [.text(writer.target.campaignID), .textArray(asked)])
            .rows.map { try $0.requiredString(0) }.joined(separator: "\n")
        XCTAssertTrue(plan.contains("campaign_leads_campaign_id_identity_key_key"), plan)
        XCTAssertFalse(plan.contains("Seq Scan on campaign_leads"), plan)
    }
}
