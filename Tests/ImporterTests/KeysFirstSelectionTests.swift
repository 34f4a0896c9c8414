import Foundation
@testable import Importer
import LeadCore
import Platform
import Postgres
import Store
import TestSupport
import XCTest

/// An `orderBy` the service holds is decided on a read of only the fields it orders by, then
/// only the members kept are read whole (`LeadImporter.keysFirstPages`). Against the real
/// PostgreSQL: such a read must give every member the keys a whole read gives it, and a member
/// kept that turns out invalid when read whole must not change the selection.
final class KeysFirstSelectionTests: XCTestCase {
    var env: TestEnvironment!
    var seed: Seed!
    var pool: ConnectionPool!

    override func setUpWithError() throws {
        env = try TestEnvironment.require()
        seed = try Seed(env)
        pool = ConnectionPool(conninfo: env.databaseURL, configuration: PoolConfiguration(size: 3, waitLimit: .seconds(5)))
    }

    override func tearDown() {
        pool?.close()
        super.tearDown()
    }

    func target(_ user: String, _ list: String, _ storage: ImportTarget.Storage) throws -> ImportTarget {
        ImportTarget(userID: user, campaignID: try seed.campaign(user: user, channel: "email"), listID: list, channel: .email, storage: storage)
    }

    /// Every field, alone and with others, read alone gives each member the folded key a whole
    /// read gives it: the columns and parts each field needs, the Lead's attributes standing in
    /// for its absent or blank columns, blank values, repeated and missing emails, numbers and
    /// booleans as attributes.
    func testEveryFieldReadAloneGivesTheKeysOfAWholeRead() throws {
        let user = try seed.user()
        let profiles = [
            #"{"firstName": "Ana", "lastName": "Ruiz", "currentCompany": "Acme", "currentRole": "CTO", "headline": "h", "tier": "gold", "enrichment": {"work_email": "ana@x.io"}}"#,
            #"{"firstName": "Bo", "fullName": "Bo Li", "currentCompany": "Beta", "currentRole": "CEO", "headline": "hl", "tier": 3, "enrichment": {"work_email": " BO@X.IO "}}"#,
            #"{"firstName": "  ", "lastName": "Ng", "tier": true, "enrichment": {}}"#,
            #"{"lastName": "Émile", "currentCompany": "", "tier": {"nested": 1}}"#,
            #"{}"#,
        ]
        let rowsList = try seed.rowsList(user: user, rows: profiles.enumerated().map { index, profile in
            (index % 2 == 0 ? "https://www.linkedin.com/in/p\(index)" : nil, profile)
        })
        let leadsList = try seed.leadsList(user: user, leads: [
            Seed.LeadSpec(firstName: "Ana", lastName: "Ruiz", company: "Acme", title: "CTO", headline: "h",
                          linkedin: "https://linkedin.com/in/Ana/", workEmails: [("late@x.io", 10), ("ana@x.io", 0)],
                          attributes: ["tier": #""gold""#]),
            Seed.LeadSpec(firstName: "", attributes: ["firstName": #""Bo""#, "lastName": #""Li""#, "fullName": #""Dr Bo Li""#,
                                                      "currentCompany": #""Beta""#, "currentRole": #""CEO""#, "headline": #""hl""#,
                                                      "email": #""bo@x.io""#, "tier": "3"]),
            Seed.LeadSpec(lastName: "Ng", linkedin: "https://www.linkedin.com/pub/ng/1/2", workEmails: [("not an email", 0), ("ng@x.io", 5)], attributes: ["tier": "true", "email": #""other@x.io""#]),
            Seed.LeadSpec(company: "Émile & Co", attributes: ["tier": #"{"nested": 1}"#]),
            Seed.LeadSpec(),
        ])
        let fieldSets: [[FilterField]] = FilterField.mapped.map { [$0] } + [[.attribute("tier")], [.lastName, .company], [.linkedinURL, .email, .attribute("tier")]]
        for (list, storage) in [(rowsList, ImportTarget.Storage.rows), (leadsList, .leads)] {
            let target = try target(user, list, storage)
            for fields in fieldSets {
                let filter = ImportFilter(order: fields.map { FilterOrder(field: $0) }, limit: 10)
                let keys = MemberSelection<JobMember>(filter: filter) { $0.member }
                let attributeKeys = filter.attributeKeys.sorted()
                let (whole, alone) = try pool.withConnection(waitLimit: nil) { connection in
                    (try JobPages.page(of: target, after: nil, limit: 100, attributeKeys: attributeKeys, on: connection),
                     try JobPages.page(of: target, after: nil, limit: 100, attributeKeys: attributeKeys, serving: Set(fields), on: connection))
                }
                XCTAssertEqual(whole.members.count, 5)
                XCTAssertEqual(alone.members.map(\.id), whole.members.map(\.id), "\(storage) \(fields)")
                XCTAssertEqual(alone.members.map(keys.foldedOrderKeys), whole.members.map(keys.foldedOrderKeys), "\(storage) \(fields)")
                XCTAssertGreaterThan(whole.members.map(keys.foldedOrderKeys).filter { $0.contains { $0 != nil } }.count, 1,
                                     "\(storage) \(fields): the list gives most members a key")
            }
        }
    }

    /// A member kept on its keys whose field the read of those keys does not bring in is too
    /// long is invalid, and an invalid member has no keys: it sorts last, and the selection is
    /// the one a whole read makes. Both storages; the selection read once more, whole.
    func testAMemberKeptOnItsKeysButInvalidWholeLeavesTheSelectionAsAWholeReadMakesIt() throws {
        let user = try seed.user()
        let token = try seed.token(user: user)
        let limit = ListMember.fieldLimit
        let rows = try seed.list(user: user, storage: "rows")
        try seed.sql("""
            INSERT INTO list_rows (list_id, profile_data, created_at)
            SELECT $1, jsonb_build_object('lastName', last, 'headline', h, 'enrichment', jsonb_build_object('work_email', e)),
                   now() + n * interval '1 ms'
            FROM (VALUES (1, 'Zed', 'h', 'zed@x.io'), (2, 'Aaron', repeat('h', $2::int + 1), 'aaron@x.io'),
                         (3, 'Bob', 'h', 'bob@x.io'), (4, 'Carl', 'h', 'carl@x.io')) AS v(n, last, h, e)
            """, [rows, String(limit)])
        let leads = try seed.leadsList(user: user, leads: [
            Seed.LeadSpec(lastName: "Zed", workEmails: [("zed@x.io", 0)]),
            Seed.LeadSpec(lastName: "Aaron", linkedin: "https://www.linkedin.com/in/" + String(repeating: "é", count: limit),
                          workEmails: [("aaron@x.io", 0)]),
            Seed.LeadSpec(lastName: "Bob", workEmails: [("bob@x.io", 0)]),
            Seed.LeadSpec(lastName: "Carl", workEmails: [("carl@x.io", 0)]),
        ])
        for list in [rows, leads] {
            let campaign = try seed.campaign(user: user, channel: "email")
            let choice = ImportChoice(filter: ImportFilter(order: [FilterOrder(field: .lastName)], limit: 2))
            let ids = ImportOrder(tokenHash: SHA256.hash(token), ids: .success(ImportIDs(campaign: campaign, list: list, choice: choice)),
                                  waitLimit: .seconds(5))
            let answer = LeadImporter(connections: pool, pageSize: 2, batchSize: 5).importList(ids)
            guard case .imported(let outcome) = answer else { return XCTFail("not imported: \(answer)") }
            XCTAssertEqual(outcome.counts, ImportCounts(imported: 2), "\(list)")
            XCTAssertEqual(Set(try seed.campaignLeads(campaign).map { $0["email"] ?? nil }), ["bob@x.io", "carl@x.io"])
        }
    }
}
