import Foundation
import TestSupport
import XCTest

/// The import itself, through nginx against PostgreSQL: both storages' mappings, the identity
/// rules, list sizes around the page size, error isolation, a real 206 and concurrent imports.
final class ImportTests: XCTestCase {
    nonisolated(unsafe) static var service: ServiceProcess?
    var env: TestEnvironment!
    var seed: Seed!
    var http: HTTPClient!

    override class func setUp() {
        super.setUp()
        do {
            let service = try ServiceProcess(environment: try TestEnvironment.require(), logName: "import-tests")
            try service.start(arguments: ["--processes", "2", "--workers", "4", "--pool-size", "3"])
            self.service = service
        } catch {
            XCTFail("could not start the service: \(error)")
        }
    }

    override class func tearDown() {
        XCTAssertEqual(service?.stop(), 0)
        service = nil
        super.tearDown()
    }

    override func setUpWithError() throws {
        env = try TestEnvironment.require()
        seed = try Seed(env)
        http = HTTPClient(baseURL: env.nginxURL)
        http.timeout = 300
        XCTAssertNotNil(Self.service, "the service is not running")
    }

    struct Owner {
        let user: String
        let token: String
    }

    func owner() throws -> Owner {
        let user = try seed.user()
        return Owner(user: user, token: try seed.token(user: user))
    }

    func importList(_ list: String, into campaign: String, as owner: Owner) throws -> (status: Int, body: [String: Any]) {
        try Self.importList(http: http, list, into: campaign, token: owner.token)
    }

    static func importList(http: HTTPClient, _ list: String, into campaign: String, token: String) throws -> (status: Int, body: [String: Any]) {
        let reply = try http.post("/api/campaigns/\(campaign)/leads/import-from-list", json: #"{"listId":"\#(list)"}"#, token: token)
        XCTAssertEqual(reply.headers["content-type"], "application/json", reply.text)
        return (reply.status, try reply.json())
    }

    func counts(_ body: [String: Any]) -> [Int] {
        ["imported", "duplicates", "invalid", "errors", "total"].map { body[$0] as? Int ?? -1 }
    }

    // MARK: - rows storage

    func testRowsListMapping() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let list = try seed.rowsList(user: owner.user, rows: [
            ("https://www.linkedin.com/in/Ada-Lovelace/?trk=x",
             #"{"firstName":"Ada","lastName":"Lovelace","currentCompany":"Analytical Engines","currentRole":"Programmer","headline":"First programmer","enrichment":{"work_email":"  Ada@Example.COM "}}"#),
            (nil, #"{"fullName":"Alan Turing","firstName":"Alan","lastName":"T","enrichment":{"work_email":"alan@example.org"}}"#),
            ("imported-123", #"{"lastName":"Hopper","enrichment":{"work_email":"grace@example.net"}}"#),
            (nil, #"{"firstName":"Edsger","enrichment":{"work_email":"ada@example.com"}}"#),
            (nil, #"{"firstName":"No","lastName":"Email"}"#),
            (nil, #"{"firstName":"Bad","enrichment":{"work_email":"bad@nodot"}}"#),
        ])
        let (status, body) = try importList(list, into: campaign, as: owner)
        XCTAssertEqual(status, 200)
        XCTAssertEqual(counts(body), [3, 1, 2, 0, 6])
        XCTAssertEqual(body.count, 5, "no keys beyond the counts on a 200: \(body)")

        let leads = try seed.campaignLeads(campaign)
        XCTAssertEqual(leads.count, 3)
        let ada = try XCTUnwrap(leads.first { $0["email"] == "ada@example.com" })
        XCTAssertEqual(ada["linkedin_url"], "https://www.linkedin.com/in/ada-lovelace")
        XCTAssertEqual(ada["first_name"], "Ada")
        XCTAssertEqual(ada["last_name"], "Lovelace")
        XCTAssertEqual(ada["name"], "Ada Lovelace")
        XCTAssertEqual(ada["company"], "Analytical Engines")
        XCTAssertEqual(ada["position"], "Programmer")
        XCTAssertEqual(ada["headline"], "First programmer")
        XCTAssertEqual(ada["status"], "pending")
        XCTAssertEqual(ada["source"], "list")
        XCTAssertEqual(ada["source_ref"], list)
        let alan = try XCTUnwrap(leads.first { $0["email"] == "alan@example.org" })
        XCTAssertEqual(alan["name"], "Alan Turing", "fullName wins over first and last")
        let grace = try XCTUnwrap(leads.first { $0["email"] == "grace@example.net" })
        XCTAssertEqual(grace["name"], "Hopper", "no dangling space")
        XCTAssertEqual(grace["linkedin_url"], .some(nil), "a placeholder linkedin is left null")

        XCTAssertEqual(try seed.value("SELECT stats::text FROM campaigns WHERE id = $1", [campaign]), #"{"total": 3, "pending": 3}"#)
    }

    func testLinkedInCampaignIdentity() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "linkedin")
        let list = try seed.rowsList(user: owner.user, rows: [
            ("https://www.linkedin.com/in/grace-hopper", #"{"enrichment":{"work_email":"not an email"}}"#),
            ("http://uk.linkedin.com/in/GRACE-HOPPER/details/", #"{}"#),
            ("linkedin.com/in/grace-hopper#x", #"{}"#),
            ("https://www.linkedin.com/pub/Alan-Turing/1/2B/3C", #"{"enrichment":{"work_email":"Alan@Example.org"}}"#),
            ("https://www.linkedin.com/in/imported-77", #"{}"#),
            ("IMPORTED-abc", #"{}"#),
            ("https://www.linkedin.com/company/acme", #"{}"#),
            ("https://example.com/in/ada", #"{}"#),
            (nil, #"{"enrichment":{"work_email":"ada@example.com"}}"#),
        ])
        let (status, body) = try importList(list, into: campaign, as: owner)
        XCTAssertEqual(status, 200)
        XCTAssertEqual(counts(body), [2, 2, 5, 0, 9])
        let leads = try seed.campaignLeads(campaign)
        XCTAssertEqual(Set(leads.compactMap { $0["linkedin_url"] ?? nil }),
                       ["https://www.linkedin.com/in/grace-hopper", "https://www.linkedin.com/pub/Alan-Turing/1/2B/3C"])
        let grace = try XCTUnwrap(leads.first { $0["linkedin_url"] == "https://www.linkedin.com/in/grace-hopper" })
        XCTAssertEqual(grace["email"], .some(nil), "an unusable email is left null")
        let alan = try XCTUnwrap(leads.first { $0["linkedin_url"] == "https://www.linkedin.com/pub/Alan-Turing/1/2B/3C" })
        XCTAssertEqual(alan["email"], "alan@example.org", "the other identity is kept, normalized")
    }

    // MARK: - leads storage

    func testLeadsListMapping() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let list = try seed.leadsList(user: owner.user, leads: [
            // Columns win; the oldest usable work_email wins.
            Seed.LeadSpec(firstName: "Ada", lastName: "Lovelace", company: "Engines", title: "Programmer", headline: "Hi",
                          linkedin: "linkedin.com/in/ADA", workEmails: [("broken", -30), ("Ada@Work.com", -20), ("later@work.com", -10)],
                          otherContacts: [("personal_email", "ada@home.com")],
                          attributes: ["firstName": #""Attr""#, "email": #""attr@example.com""#, "score": "42", "tags": #"["a","b"]"#]),
            // Attributes fill blank columns; no work_email, so the email attribute.
            Seed.LeadSpec(linkedin: "https://www.linkedin.com/in/alan", attributes: [
                "firstName": #""Alan""#, "lastName": #""Turing""#, "currentCompany": #""Bletchley""#,
                "currentRole": #""Cryptanalyst""#, "headline": #""Codes""#, "email": #""Alan@Example.org""#]),
            // full_name column; no usable email anywhere: invalid.
            Seed.LeadSpec(fullName: "Nobody", workEmails: [("nope", 0)], otherContacts: [("personal_email", "p@example.com")]),
            // No attributes at all: custom_fields is an empty object.
            Seed.LeadSpec(fullName: "Grace Hopper", workEmails: [("grace@example.net", 0)]),
        ])
        let (status, body) = try importList(list, into: campaign, as: owner)
        XCTAssertEqual(status, 200)
        XCTAssertEqual(counts(body), [3, 0, 1, 0, 4])
        let leads = try seed.campaignLeads(campaign)

        let ada = try XCTUnwrap(leads.first { $0["email"] == "ada@work.com" })
        XCTAssertEqual(ada["first_name"], "Ada")
        XCTAssertEqual(ada["name"], "Ada Lovelace")
        XCTAssertEqual(ada["company"], "Engines")
        XCTAssertEqual(ada["position"], "Programmer")
        XCTAssertEqual(ada["headline"], "Hi")
        XCTAssertEqual(ada["linkedin_url"], "https://www.linkedin.com/in/ada")
        let custom = try JSONSerialization.jsonObject(with: Data(XCTUnwrap(ada["custom_fields"] ?? nil).utf8)) as? [String: Any]
        XCTAssertEqual(custom?["firstName"] as? String, "Attr")
        XCTAssertEqual(custom?["score"] as? Int, 42)
        XCTAssertEqual(custom?["tags"] as? [String], ["a", "b"])
        XCTAssertEqual(custom?.count, 4)

        let alan = try XCTUnwrap(leads.first { $0["email"] == "alan@example.org" })
        XCTAssertEqual(alan["first_name"], "Alan")
        XCTAssertEqual(alan["last_name"], "Turing")
        XCTAssertEqual(alan["name"], "Alan Turing")
        XCTAssertEqual(alan["company"], "Bletchley")
        XCTAssertEqual(alan["position"], "Cryptanalyst")
        XCTAssertEqual(alan["headline"], "Codes")

        let grace = try XCTUnwrap(leads.first { $0["email"] == "grace@example.net" })
        XCTAssertEqual(grace["custom_fields"], "{}")
        XCTAssertEqual(grace["source_ref"], list)
    }

    /// Another writer of the platform puts someone else's Lead into the caller's list: that member
    /// is invalid, and nothing of that Lead (email, profile, attributes) reaches the campaign, on
    /// the first page and on the pages after it, for both channels.
    func testLeadsOfAnotherUserInTheListAreInvalidAndNothingOfThemIsCopied() throws {
        let owner = try owner()
        let stranger = try seed.user()
        let list = try seed.bulkLeadsList(user: owner.user, count: 1200)
        let foreign = try seed.leadsList(user: stranger, leads: [
            Seed.LeadSpec(firstName: "Secret", linkedin: "https://www.linkedin.com/in/secret-first",
                          workEmails: [("secret-first@stranger.example", 0)], attributes: ["salary": #""private""#]),
            Seed.LeadSpec(firstName: "Secret", linkedin: "https://www.linkedin.com/in/secret-last",
                          workEmails: [("secret-last@stranger.example", 0)], attributes: ["salary": #""private""#]),
        ])
        // One foreign member first in the list (first page), one last (a later page).
        try seed.sql("""
            INSERT INTO list_memberships (list_id, lead_id, created_at)
            SELECT $1, m.lead_id, CASE WHEN s.url LIKE '%first' THEN now() - interval '1 day' ELSE now() + interval '1 day' END
            FROM list_memberships m JOIN lead_socials s ON s.lead_id = m.lead_id
            WHERE m.list_id = $2
            """, [list, foreign])
        for channel in ["linkedin", "email"] {
            let campaign = try seed.campaign(user: owner.user, channel: channel)
            let (status, body) = try importList(list, into: campaign, as: owner)
            if channel == "linkedin" {
                XCTAssertEqual(status, 200, "\(body)")
                XCTAssertEqual(counts(body), [1200, 0, 2, 0, 1202], channel)
            } else {
                XCTAssertEqual(status, 422, "\(body)")
                XCTAssertEqual(counts(body), [0, 0, 1202, 0, 1202], channel)
            }
            let leaked = try seed.value("""
                SELECT count(*) FROM campaign_leads WHERE campaign_id = $1
                AND (first_name = 'Secret' OR email LIKE '%stranger%' OR linkedin_url LIKE '%secret%' OR custom_fields ? 'salary')
                """, [campaign])
            XCTAssertEqual(leaked, "0", channel)
        }
    }

    /// Should the database's identity rule ever drift from LeadCore's, a lead it cannot key is
    /// refused by the insert (the unique index could not keep it once) and counts invalid; the
    /// database is made to drift here for one address.
    func testALeadTheDatabaseCannotKeyIsNeverInserted() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let list = try seed.rowsList(user: owner.user, rows: [
            (nil, #"{"enrichment":{"work_email":"drift@example.com"}}"#),
            (nil, #"{"enrichment":{"work_email":"kept@example.com"}}"#),
        ])
        let original = try XCTUnwrap(seed.value("SELECT pg_get_functiondef('leadimport_normalize_email(text)'::regprocedure)"))
        try seed.sql(original.replacingOccurrences(of: "leadimport_normalize_email(", with: "leadimport_test_real_email("))
        try seed.sql("""
            CREATE OR REPLACE FUNCTION leadimport_normalize_email(raw text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $fn$
            BEGIN
                IF raw LIKE 'drift@%' THEN RETURN NULL; END IF;
                RETURN leadimport_test_real_email(raw);
            END $fn$
            """)
        defer {
            XCTAssertNoThrow(try seed.sql(original))
            XCTAssertNoThrow(try seed.sql("DROP FUNCTION leadimport_test_real_email(text)"))
        }
        let (status, body) = try importList(list, into: campaign, as: owner)
        XCTAssertEqual(status, 200, "\(body)")
        XCTAssertEqual(counts(body), [1, 0, 1, 0, 2])
        XCTAssertEqual(try seed.campaignLeads(campaign).map { $0["email"] ?? nil }, ["kept@example.com"])
    }

    /// A field past `ListMember.fieldLimit` characters makes its member invalid, and no more of it
    /// than one character past the limit is read; fields of a few MB import as before. Both storages.
    func testAFieldPastTheLimitMakesItsMemberInvalidWhileMegabyteFieldsImport() throws {
        let owner = try owner()
        let limit = 8 * 1024 * 1024
        let rows = try seed.list(user: owner.user, storage: "rows")
        try seed.sql("""
            INSERT INTO list_rows (list_id, profile_data, created_at)
            SELECT $1, jsonb_build_object('headline', h, 'enrichment', jsonb_build_object('work_email', e)), now() + n * interval '1 ms'
            FROM (VALUES (1, repeat('h', 5000000), 'five@x.io'), (2, repeat('é', $2::int + 1), 'long@x.io'),
                         (3, repeat('é', $2::int), 'edge@x.io'), (4, 'short', 'ok@x.io')) AS v(n, h, e)
            """, [rows, String(limit)])
        let rowsCampaign = try seed.campaign(user: owner.user, channel: "email")
        let (rowsStatus, rowsBody) = try importList(rows, into: rowsCampaign, as: owner)
        XCTAssertEqual(rowsStatus, 200, "\(rowsBody)")
        XCTAssertEqual(counts(rowsBody), [3, 0, 1, 0, 4])
        XCTAssertEqual(Set(try seed.campaignLeads(rowsCampaign).map { $0["email"] ?? nil }), ["five@x.io", "edge@x.io", "ok@x.io"])

        let leads = try seed.leadsList(user: owner.user, leads: [
            Seed.LeadSpec(title: String(repeating: "t", count: 5_000_000), workEmails: [("five@x.io", 0)]),
            Seed.LeadSpec(workEmails: [("attribute@x.io", 0)], attributes: ["notes": "\"" + String(repeating: "n", count: limit + 1) + "\""]),
            Seed.LeadSpec(workEmails: [("ok@x.io", 0)]),
            // A column is counted in characters only past `limit` bytes: at the limit in either
            // measure it is whole, one character past it in either it is too long.
            Seed.LeadSpec(company: String(repeating: "c", count: limit), workEmails: [("bytes@x.io", 0)]),
            Seed.LeadSpec(company: String(repeating: "é", count: limit), workEmails: [("characters@x.io", 0)]),
            Seed.LeadSpec(headline: String(repeating: "h", count: limit + 1), workEmails: [("byte-over@x.io", 0)]),
            Seed.LeadSpec(linkedin: "https://www.linkedin.com/in/" + String(repeating: "é", count: limit), workEmails: [("url-over@x.io", 0)]),
        ])
        let leadsCampaign = try seed.campaign(user: owner.user, channel: "email")
        let (leadsStatus, leadsBody) = try importList(leads, into: leadsCampaign, as: owner)
        XCTAssertEqual(leadsStatus, 200, "\(leadsBody)")
        XCTAssertEqual(counts(leadsBody), [4, 0, 3, 0, 7])
        XCTAssertEqual(Set(try seed.campaignLeads(leadsCampaign).map { $0["email"] ?? nil }),
                       ["five@x.io", "ok@x.io", "bytes@x.io", "characters@x.io"])
        XCTAssertEqual(try seed.value("SELECT length(company) FROM campaign_leads WHERE campaign_id = $1 AND email = 'characters@x.io'",
                                      [leadsCampaign]), String(limit))
    }

    // MARK: - outcomes

    func testReimportIs422WithEveryValidRowADuplicate() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let list = try seed.bulkRowsList(user: owner.user, count: 1_200)
        try seed.sql("UPDATE list_rows SET profile_data = '{}' WHERE list_id = $1 AND profile_data->>'lastName' IN ('7', '8')", [list])
        XCTAssertEqual(counts(try importList(list, into: campaign, as: owner).body), [1_198, 0, 2, 0, 1_200])
        let again = try importList(list, into: campaign, as: owner)
        XCTAssertEqual(again.status, 422)
        XCTAssertEqual(counts(again.body), [0, 1_198, 2, 0, 1_200])
        XCTAssertEqual(try seed.count(campaign), 1_198)
    }

    func testListsAroundThePageSizeImportCompletely() throws {
        let owner = try owner()
        for size in [999, 1_000, 1_001, 2_500] {
            let campaign = try seed.campaign(user: owner.user, channel: "email")
            let list = try seed.bulkRowsList(user: owner.user, count: size, domain: "size\(size).example.com")
            let (status, body) = try importList(list, into: campaign, as: owner)
            XCTAssertEqual(status, 200, "\(size)")
            XCTAssertEqual(counts(body), [size, 0, 0, 0, size], "\(size)")
            XCTAssertEqual(try seed.count(campaign), size)
            XCTAssertEqual(try seed.value("SELECT stats->>'total' FROM campaigns WHERE id = $1", [campaign]), String(size))
        }
    }

    /// The first page of a leads list is one statement that also gives the cursor: a list that
    /// fills it exactly goes on to an empty second page, one that overflows it by one goes on.
    func testLeadsListsAroundThePageSize() throws {
        let owner = try owner()
        for size in [999, 1_000, 1_001] {
            let campaign = try seed.campaign(user: owner.user, channel: "linkedin")
            let list = try seed.bulkLeadsList(user: owner.user, count: size)
            let (status, body) = try importList(list, into: campaign, as: owner)
            XCTAssertEqual(status, 200, "\(size)")
            XCTAssertEqual(counts(body), [size, 0, 0, 0, size], "\(size)")
            XCTAssertEqual(try seed.count(campaign), size)
        }
    }

    /// A leads list of several pages, each member with contacts and attributes of its own shape:
    /// pages are filled in on several connections at once, and every member must still come out
    /// as its own Lead, in list order (the first of two repeats, pages apart, is the one kept).
    func testMultiPageLeadsListHydratesEveryMemberExactly() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let list = try seed.list(user: owner.user, storage: "leads")
        let size = 2_600
        // Member i: i % 3 == 0 has an older unusable work_email first; i % 3 == 1 a newer second
        // one; i % 3 == 2 no contact, an email attribute instead. Every 100th (i % 100 == 99)
        // repeats member i - 99's email in capitals. first_name is blank for i % 4 == 0 and
        // comes from the attribute. Every member has a score attribute: i.
        try seed.sql("""
            WITH people AS (
                SELECT i, md5($2 || i)::uuid AS id,
                       CASE WHEN i % 100 = 99 THEN 'W' || (i - 99) || '@EXAMPLE.COM' ELSE 'w' || i || '@example.com' END AS email
                FROM generate_series(0, \(size - 1)) AS i
            ), made AS (
                INSERT INTO leads (id, user_id, first_name, last_name)
                SELECT id, $1, CASE WHEN i % 4 = 0 THEN ' ' ELSE 'F' || i END, 'L' || i FROM people RETURNING id
            ), contacts AS (
                INSERT INTO lead_contacts (lead_id, kind, value, created_at)
                SELECT id, 'work_email', 'broken-' || i, now() - interval '1 hour' FROM people WHERE i % 3 = 0
                UNION ALL
                SELECT id, 'work_email', email, now() - interval '30 minutes' FROM people WHERE i % 3 <> 2
                UNION ALL
                SELECT id, 'work_email', 'later' || i || '@example.com', now() FROM people WHERE i % 3 = 1
            ), attributes AS (
                INSERT INTO lead_attributes (lead_id, key, value)
                SELECT id, 'score', to_jsonb(i) FROM people
                UNION ALL
                SELECT id, 'email', to_jsonb(email) FROM people WHERE i % 3 = 2
                UNION ALL
                SELECT id, 'firstName', to_jsonb('A' || i) FROM people WHERE i % 4 = 0
            )
            INSERT INTO list_memberships (list_id, lead_id, created_at)
            SELECT $2::uuid, id, now() + i * interval '1 millisecond' FROM people
            """, [owner.user, list])
        let (status, body) = try importList(list, into: campaign, as: owner)
        XCTAssertEqual(status, 200, "\(body)")
        let repeats = size / 100
        XCTAssertEqual(counts(body), [size - repeats, repeats, 0, 0, size])

        let leads = try seed.campaignLeads(campaign)
        XCTAssertEqual(leads.count, size - repeats)
        var seen = Set<Int>()
        for lead in leads {
            let custom = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(XCTUnwrap(lead["custom_fields"] ?? nil).utf8)) as? [String: Any])
            let i = try XCTUnwrap(custom["score"] as? Int)
            XCTAssertNotEqual(i % 100, 99, "a repeat was inserted instead of the member before it")
            seen.insert(i)
            XCTAssertEqual(lead["email"], "w\(i)@example.com", "member \(i)")
            XCTAssertEqual(lead["first_name"], i % 4 == 0 ? "A\(i)" : "F\(i)", "member \(i)")
            XCTAssertEqual(lead["last_name"], "L\(i)", "member \(i)")
            XCTAssertEqual(custom.count, 1 + (i % 3 == 2 ? 1 : 0) + (i % 4 == 0 ? 1 : 0), "member \(i): \(custom)")
        }
        XCTAssertEqual(seen.count, size - repeats, "every member is its own lead")
    }

    /// A 206 from a leads list: the pages after the first cannot be filled in (SELECT on
    /// lead_attributes is revoked mid-import); what was committed is what the counts say.
    func testLeadsHydrationFailureMidImportIs206AndARetryFinishes() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "linkedin")
        let size = 40_000
        let list = try seed.bulkLeadsList(user: owner.user, count: size)
        try importLosingRead(of: "lead_attributes", list: list, into: campaign, as: owner, size: size) { partial in
            // After the first page (1000), a leads list is filled in 500 members at a time.
            XCTAssertEqual(partial[4] % 500, 0, "only whole pages, in list order, were read")
            // What is in is a prefix of the list: every member up to the last one read, none after.
            XCTAssertEqual(try seed.value("""
                SELECT count(*) FROM (
                    SELECT m.lead_id FROM list_memberships m WHERE m.list_id = $1 ORDER BY m.created_at, m.lead_id LIMIT $2
                ) AS prefix
                JOIN lead_socials s ON s.lead_id = prefix.lead_id
                JOIN campaign_leads c ON c.campaign_id = $3 AND c.linkedin_url = lower(s.url)
                """, [list, String(partial[4]), campaign]), String(partial[0]))
        }
    }

    /// Imports `list` while the service role loses SELECT on `table` as soon as the first rows
    /// are in: a real 206 whose counts equal what the campaign holds and whose stats were
    /// recomputed; `partial` checks more before the read comes back and a retry finishes the list.
    func importLosingRead(of table: String, list: String, into campaign: String, as owner: Owner, size: Int,
                          partial check: ([Int]) throws -> Void = { _ in }) throws {
        let admin = try AdminSQL(env)
        let role = env.serviceRole
        defer { try? admin.run("GRANT SELECT ON \(table) TO \(role)") }

        let reply = Locked206()
        let http = self.http!, token = owner.token
        let importer = Thread { reply.set(Result { try Self.importList(http: http, list, into: campaign, token: token) }) }
        importer.start()
        let deadline = Date().addingTimeInterval(60)
        while try seed.count(campaign) == 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        try admin.run("REVOKE SELECT ON \(table) FROM \(role)")
        let result = try XCTUnwrap(reply.wait(timeout: 120)).get()
        XCTAssertEqual(result.status, 206, "\(result.body)")
        XCTAssertEqual(result.body["partial"] as? Bool, true)
        let partial = counts(result.body)
        XCTAssertGreaterThan(partial[0], 0)
        XCTAssertLessThan(partial[4], size)
        XCTAssertEqual(partial[0] + partial[1] + partial[2] + partial[3], partial[4])
        XCTAssertEqual(try seed.count(campaign), partial[0], "the counts equal what is in the table")
        XCTAssertEqual(try seed.value("SELECT stats->>'total' FROM campaigns WHERE id = $1", [campaign]), String(partial[0]),
                       "stats are recomputed after a 206 too")
        try check(partial)

        try admin.run("GRANT SELECT ON \(table) TO \(role)")
        let retry = try importList(list, into: campaign, as: owner)
        XCTAssertEqual(retry.status, 200)
        XCTAssertEqual(counts(retry.body), [size - partial[0], partial[0], 0, 0, size])
        XCTAssertEqual(try seed.count(campaign), size)
    }

    func testEmptyListIs422WithZeroCounts() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        for storage in ["rows", "leads"] {
            let list = try seed.list(user: owner.user, storage: storage)
            let (status, body) = try importList(list, into: campaign, as: owner)
            XCTAssertEqual(status, 422)
            XCTAssertEqual(counts(body), [0, 0, 0, 0, 0])
            XCTAssertEqual(body.count, 5)
        }
    }

    func testEveryRowInvalidIs422() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let list = try seed.rowsList(user: owner.user, rows: [(nil, "{}"), ("https://www.linkedin.com/in/x", #"{"enrichment":{"work_email":"x"}}"#)])
        let (status, body) = try importList(list, into: campaign, as: owner)
        XCTAssertEqual(status, 422)
        XCTAssertEqual(counts(body), [0, 0, 2, 0, 2])
        XCTAssertEqual(try seed.value("SELECT stats::text FROM campaigns WHERE id = $1", [campaign]), "{}", "no insert, no recompute")
    }

    func testNotDraftCampaignGets400AndNothingIsInserted() throws {
        let owner = try owner()
        let list = try seed.bulkRowsList(user: owner.user, count: 10)
        for status in ["launching", "active", "paused", "completed"] {
            let campaign = try seed.campaign(user: owner.user, channel: "email", status: status)
            let reply = try importList(list, into: campaign, as: owner)
            XCTAssertEqual(reply.status, 400)
            XCTAssertEqual(reply.body["error"] as? String, "campaign_not_draft")
            XCTAssertEqual(try seed.count(campaign), 0)
        }
    }

    /// A CHECK constraint the test adds rejects one member of 700: that member alone is the error.
    func testOneFailingRowDoesNotTakeItsBatchDown() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let list = try seed.bulkRowsList(user: owner.user, count: 700, domain: "isolation.example.com")
        let admin = try AdminSQL(env)
        try admin.run("ALTER TABLE campaign_leads ADD CONSTRAINT test_reject_one CHECK (email IS DISTINCT FROM 'p350@isolation.example.com') NOT VALID")
        defer { try? admin.run("ALTER TABLE campaign_leads DROP CONSTRAINT IF EXISTS test_reject_one") }
        let (status, body) = try importList(list, into: campaign, as: owner)
        XCTAssertEqual(status, 200)
        XCTAssertEqual(counts(body), [699, 0, 0, 1, 700])
        XCTAssertEqual(try seed.count(campaign), 699)
        XCTAssertEqual(try seed.value("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1 AND email = 'p350@isolation.example.com'", [campaign]), "0")
    }

    /// Every insert failing and nothing inserted is a 500 with the counts.
    func testAllInsertsFailingIs500() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let list = try seed.bulkRowsList(user: owner.user, count: 3, domain: "fail.example.com")
        let admin = try AdminSQL(env)
        try admin.run("ALTER TABLE campaign_leads ADD CONSTRAINT test_reject_all CHECK (email NOT LIKE '%@fail.example.com') NOT VALID")
        defer { try? admin.run("ALTER TABLE campaign_leads DROP CONSTRAINT IF EXISTS test_reject_all") }
        let (status, body) = try importList(list, into: campaign, as: owner)
        XCTAssertEqual(status, 500)
        XCTAssertEqual(counts(body), [0, 0, 0, 3, 3])
        XCTAssertNotNil(body["error"] as? String)
    }

    /// A real 206: the service role loses SELECT on list_rows while a large import runs.
    func testPageFetchFailureMidImportIs206AndARetryFinishes() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let size = 60_000
        let list = try seed.bulkRowsList(user: owner.user, count: size, domain: "partial.example.com")
        try importLosingRead(of: "list_rows", list: list, into: campaign, as: owner, size: size)
    }

    func testSixConcurrentImportsInsertEachIdentityOnce() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let size = 3_000
        let list = try seed.bulkRowsList(user: owner.user, count: size, domain: "concurrent.example.com")
        // Variant spellings of the same identities within the list.
        try seed.sql("""
            INSERT INTO list_rows (list_id, profile_data)
            SELECT $1, jsonb_build_object('enrichment', jsonb_build_object('work_email', ' P' || i || '@CONCURRENT.example.com'))
            FROM generate_series(1, 500) AS i
            """, [list])
        let results = Locked206.Many()
        let http = self.http!, token = owner.token
        let threads = (0..<6).map { _ in Thread { results.append(Result { try Self.importList(http: http, list, into: campaign, token: token) }) } }
        threads.forEach { $0.start() }
        let all = try results.wait(count: 6, timeout: 180).map { try $0.get() }
        XCTAssertEqual(try seed.count(campaign), size)
        XCTAssertEqual(try seed.value("SELECT count(DISTINCT email) FROM campaign_leads WHERE campaign_id = $1", [campaign]), String(size))
        XCTAssertEqual(all.map { counts($0.body)[0] }.reduce(0, +), size, "each identity inserted once across all six")
        for reply in all {
            XCTAssertTrue([200, 422].contains(reply.status))
            XCTAssertEqual(counts(reply.body)[4], size + 500)
            XCTAssertEqual(counts(reply.body)[0] + counts(reply.body)[1], size + 500)
        }
    }

    func testCommandLineImportMatchesTheEndpoint() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let list = try seed.bulkRowsList(user: owner.user, count: 1_500, domain: "cli.example.com")
        let arguments = ["import", "--user", owner.user, "--campaign", campaign, "--list", list]
        let first = try env.run(arguments, environment: ["DATABASE_URL": env.databaseURL])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(first.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       #"{"imported":1500,"duplicates":0,"invalid":0,"errors":0,"total":1500}"#)
        XCTAssertTrue(first.stderr.contains("rows/s"), first.stderr)
        XCTAssertTrue(first.stderr.contains("imported 1500"), first.stderr)
        // Not a terminal: no line per page (the list has two), the last line only, with the list's size.
        XCTAssertEqual(first.stderr.split(separator: "\n").filter { $0.contains("rows/s") }.count, 1, first.stderr)
        XCTAssertTrue(first.stderr.contains("1500 of 1500 members (100%)"), first.stderr)
        let second = try env.run(arguments, environment: ["DATABASE_URL": env.databaseURL])
        XCTAssertNotEqual(second.status, 0)
        XCTAssertEqual(second.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       #"{"imported":0,"duplicates":1500,"invalid":0,"errors":0,"total":1500}"#)
        XCTAssertEqual(second.stderr.split(separator: "\n").last.map { $0.contains("422") }, true, second.stderr)
        // Another user's campaign: not found, never forbidden.
        let stranger = try seed.user()
        let denied = try env.run(["import", "--user", stranger, "--campaign", campaign, "--list", list], environment: ["DATABASE_URL": env.databaseURL])
        XCTAssertNotEqual(denied.status, 0)
        XCTAssertTrue(denied.stdout.contains("campaign_not_found"), denied.stdout)
    }

    /// `--filter` and `--dry-run`: the endpoint's checks and answers, from the shell.
    func testCommandLineFilterAndDryRun() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let list = try seed.bulkRowsList(user: owner.user, count: 1_500, domain: "cli-filter.example.com")
        let database = ["DATABASE_URL": env.databaseURL]
        let base = ["import", "--user", owner.user, "--campaign", campaign, "--list", list]
        let filter = #"{"orderBy":[{"field":"lastName","direction":"desc"}],"limit":1200}"#
        let dry = try env.run(base + ["--filter", filter, "--dry-run"], environment: database)
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertEqual(dry.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       #"{"imported":1200,"duplicates":0,"invalid":0,"errors":0,"total":1200,"dryRun":true}"#)
        XCTAssertEqual(try seed.count(campaign), 0, "a dry run writes nothing")
        let real = try env.run(base + ["--filter", filter], environment: database)
        XCTAssertEqual(real.status, 0, real.stderr)
        XCTAssertEqual(real.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       #"{"imported":1200,"duplicates":0,"invalid":0,"errors":0,"total":1200}"#)
        // Descending as text: 999, 998, ... come first; 1000-1500 sort among the 1s.
        XCTAssertEqual(try seed.value("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1 AND last_name = '999'", [campaign]), "1")
        let mistyped = try env.run(base + ["--filter", #"{"limit":"7"}"#], environment: database)
        XCTAssertNotEqual(mistyped.status, 0)
        XCTAssertTrue(mistyped.stderr.contains("invalid_filter: filter.limit"), mistyped.stderr)
        XCTAssertEqual(try seed.count(campaign), 1_200, "a mistyped filter imports nothing")
    }

    /// On a terminal the progress line is redrawn in place and ends with a newline. The import
    /// runs under script(1), which gives it a pseudo-terminal for stdout and stderr alike.
    func testCommandLineProgressOnATerminalIsOneLineRedrawnInPlace() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "email")
        let list = try seed.bulkRowsList(user: owner.user, count: 2_500, domain: "tty.example.com")
        let command = [env.binary, "import", "--user", owner.user, "--campaign", campaign, "--list", list].joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qec", command, "/dev/null"]
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = env.databaseURL
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("\r\u{1B}[2Kimport: 2500 of 2500 members (100%), imported 2500"), text)
        XCTAssertTrue(text.contains(#"{"imported":2500,"duplicates":0,"invalid":0,"errors":0,"total":2500}"#), text)
    }

    func testTokenCommands() throws {
        let user = try seed.user()
        let created = try env.run(["token", "create", "--user", user, "--name", "ci", "--expires-in", "12h"],
                                  environment: ["DATABASE_URL": env.databaseURL])
        XCTAssertEqual(created.status, 0, created.stderr)
        let token = created.stdout.trimmingCharacters(in: .newlines)
        XCTAssertEqual(created.stdout.split(separator: "\n").count, 1, "the token alone on stdout")
        XCTAssertEqual(try seed.value("SELECT count(*) FROM tokens WHERE token_hash = sha256(convert_to($1, 'UTF8')) AND name = 'ci' AND expires_at BETWEEN now() + interval '11 hours' AND now() + interval '13 hours'", [token]), "1")
        XCTAssertEqual(try seed.value("SELECT count(*) FROM tokens WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'", [token]), "0")
        let id = try XCTUnwrap(seed.value("SELECT id FROM tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))", [token]))
        let campaign = try seed.campaign(user: user, channel: "email")
        let list = try seed.list(user: user, storage: "rows")
        XCTAssertEqual(try importList(list, into: campaign, as: Owner(user: user, token: token)).status, 422)
        let revoked = try env.run(["token", "revoke", id], environment: ["DATABASE_URL": env.databaseURL])
        XCTAssertEqual(revoked.status, 0, revoked.stderr)
        let reply = try http.post("/api/campaigns/\(campaign)/leads/import-from-list", json: #"{"listId":"\#(list)"}"#, token: token)
        XCTAssertEqual(reply.status, 401)
        let again = try env.run(["token", "revoke", id], environment: ["DATABASE_URL": env.databaseURL])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertEqual(again.stderr.split(separator: "\n").count, 1, again.stderr)
        let bad = try env.run(["token", "create", "--user", user, "--expires-in", "soon"], environment: ["DATABASE_URL": env.databaseURL])
        XCTAssertNotEqual(bad.status, 0)
    }
}

/// The superuser, for what a test does to the database from outside.
final class AdminSQL {
    let environment: TestEnvironment
    init(_ environment: TestEnvironment) throws { self.environment = environment }

    func run(_ sql: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        process.arguments = ["-X", "-q", "-v", "ON_ERROR_STOP=1", environment.adminDatabaseURL, "-c", sql]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestEnvironmentError(message: "psql failed: \(sql)") }
    }
}

extension TestEnvironment {
    /// The role in DATABASE_URL: the service's own, with only SELECT, INSERT, UPDATE.
    var serviceRole: String {
        let afterScheme = databaseURL.components(separatedBy: "://").last ?? ""
        return String(afterScheme.prefix(while: { $0 != "@" && $0 != ":" }))
    }
}

/// Results handed from request threads back to the test.
final class Locked206: @unchecked Sendable {
    typealias Reply = Result<(status: Int, body: [String: Any]), Error>
    private let condition = NSCondition()
    private var value: Reply?

    func set(_ reply: Reply) {
        condition.lock(); value = reply; condition.broadcast(); condition.unlock()
    }

    func wait(timeout: TimeInterval) -> Reply? {
        condition.lock(); defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while value == nil && condition.wait(until: deadline) {}
        return value
    }

    final class Many: @unchecked Sendable {
        private let condition = NSCondition()
        private var values: [Reply] = []

        func append(_ reply: Reply) {
            condition.lock(); values.append(reply); condition.broadcast(); condition.unlock()
        }

        func wait(count: Int, timeout: TimeInterval) throws -> [Reply] {
            condition.lock(); defer { condition.unlock() }
            let deadline = Date().addingTimeInterval(timeout)
            while values.count < count && condition.wait(until: deadline) {}
            guard values.count == count else { throw TestEnvironmentError(message: "only \(values.count) of \(count) replies") }
            return values
        }
    }
}
