import Foundation
import TestSupport
import XCTest

/// Section 4 through nginx against PostgreSQL: every filter key alone and combined, on both
/// storages and both channels, checked against an oracle written here; and every dry run
/// against the real import that follows it.
///
/// The oracle: importing the members a filter selects must do exactly what importing a list of
/// only those members, in that order, does. The test picks them from the members' specs, builds
/// that list, imports it whole into a twin campaign, and compares counts and leads.
final class SelectionTests: XCTestCase {
    nonisolated(unsafe) static var service: ServiceProcess?
    var env: TestEnvironment!
    var seed: Seed!
    var http: HTTPClient!

    override class func setUp() {
        super.setUp()
        do {
            let service = try ServiceProcess(environment: try TestEnvironment.require(), logName: "selection-tests")
            try service.start(arguments: ["--workers", "4", "--pool-size", "3"])
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
        http.timeout = 120
        XCTAssertNotNil(Self.service, "the service is not running")
    }

    /// One member of the test lists, whichever the storage.
    struct Person: Sendable {
        var index: Int
        var first: String
        var last: String
        var company: String?
        var role: String
        var email: String?
        var linkedin: String?
        var tier: String  // JSON
        var seniority: Int

        /// What a filter sees: the mapped fields (the specs are already normalized) and the attributes as text.
        func value(_ field: String) -> String? {
            switch field {
            case "firstName": return first
            case "lastName": return last
            case "name": return "\(first) \(last)"
            case "company": return company
            case "position": return role
            case "email": return email
            case "attributes.tier":
                return tier.hasPrefix("\"") ? String(tier.dropFirst().dropLast()) : tier
            case "attributes.seniority": return String(seniority)
            default: return nil
            }
        }
    }

    /// 30 members: repeats of emails (24-29 repeat 0-5) and profiles (26-29 repeat 0-3), one
    /// member with neither (7), one without a company in four.
    static let people: [Person] = (0..<30).map { i in
        Person(index: i, first: "F\(i)", last: "L\(i % 10)", company: ["Acme", "Globex", "Initech", nil][i % 4],
               role: ["Engineer", "Manager", "Director"][i % 3],
               email: i == 7 ? nil : "p\(i % 24)@example.com", linkedin: i == 7 ? nil : "https://www.linkedin.com/in/p\(i % 26)",
               tier: [#""gold""#, #""silver""#, "2", "true"][i % 4], seniority: i)
    }

    func list(of people: [Person], storage: String, user: String) throws -> String {
        if storage == "rows" {
            return try seed.rowsList(user: user, rows: people.map { p in
                var profile: [String: Any] = ["firstName": p.first, "lastName": p.last, "currentRole": p.role,
                                              "seniority": p.seniority]
                profile["tier"] = try JSONSerialization.jsonObject(with: Data(p.tier.utf8), options: .fragmentsAllowed)
                if let company = p.company { profile["currentCompany"] = company }
                if let email = p.email { profile["enrichment"] = ["work_email": email] }
                let json = String(decoding: try JSONSerialization.data(withJSONObject: profile, options: [.sortedKeys]), as: UTF8.self)
                return (p.linkedin, json)
            })
        }
        return try seed.leadsList(user: user, leads: people.map { p in
            Seed.LeadSpec(firstName: p.first, lastName: p.last, company: p.company, title: p.role, linkedin: p.linkedin,
                          workEmails: p.email.map { [($0, 0)] } ?? [], attributes: ["tier": p.tier, "seniority": String(p.seniority)])
        })
    }

    func memberIDs(of list: String, storage: String) throws -> [String] {
        let sql = storage == "rows"
            ? "SELECT id::text FROM list_rows WHERE list_id = $1 ORDER BY created_at, id"
            : "SELECT lead_id::text FROM list_memberships WHERE list_id = $1 ORDER BY created_at, lead_id"
        return try seed.sql(sql, [list]).rows.map { try $0.requiredString(0) }
    }

    /// A draft campaign already holding member 3's lead, so that member 3 and its repeat 27 collide.
    func campaign(user: String, channel: String) throws -> String {
        let campaign = try seed.campaign(user: user, channel: channel)
        try seed.sql("INSERT INTO campaign_leads (campaign_id, user_id, email, linkedin_url) VALUES ($1, $2, 'p3@example.com', 'https://www.linkedin.com/in/p3')",
                     [campaign, user])
        return campaign
    }

    func post(_ campaign: String, _ body: String, token: String) throws -> (status: Int, body: [String: Any]) {
        let reply = try http.post("/api/campaigns/\(campaign)/leads/import-from-list", json: body, token: token)
        XCTAssertEqual(reply.headers["content-type"], "application/json", reply.text)
        return (reply.status, try reply.json())
    }

    /// Records `body` as a job, waits for it to finish, and returns it as `GET` answers it.
    func runJob(_ campaign: String, _ body: String, token: String, context: String) throws -> [String: Any] {
        let reply = try http.request("POST", "/api/campaigns/\(campaign)/leads/import-from-list",
                                     headers: [("Content-Type", "application/json"), ("Authorization", "Bearer \(token)"),
                                               ("Prefer", "respond-async")], body: Data(body.utf8))
        XCTAssertEqual(reply.status, 202, "\(context): \(reply.text)")
        let id = try XCTUnwrap(try reply.json()["id"] as? String, context)
        var job: [String: Any] = [:]
        let deadline = Date().addingTimeInterval(60)
        while job["state"] as? String != "finished" && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            job = (try? http.request("GET", "/api/imports/\(id)", headers: [("Authorization", "Bearer \(token)")]).json()) ?? job
        }
        XCTAssertEqual(job["state"] as? String, "finished", "\(context): \(job)")
        let counted = counts(job["counts"] as? [String: Any] ?? [:])
        let rejected = try seed.value("SELECT count(*) FROM import_rejections WHERE job_id = $1", [id])
        XCTAssertEqual(rejected, String(counted[1] + counted[2] + counted[3]), "\(context): the report")
        XCTAssertEqual(try seed.value("SELECT count(*) FROM import_dry_run_identities WHERE job_id = $1", [id]), "0",
                       "\(context): a finished job keeps no identities")
        return job
    }

    func counts(_ body: [String: Any]) -> [Int] {
        ["imported", "duplicates", "invalid", "errors", "total"].map { body[$0] as? Int ?? -1 }
    }

    /// The campaign's leads, each as one line, without what names the list they came from.
    func leads(_ campaign: String) throws -> [String] {
        try seed.campaignLeads(campaign).map { lead in
            lead.filter { $0.key != "source_ref" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value ?? "-")" }.joined(separator: " ")
        }.sorted()
    }

    struct Case: Sendable {
        let name: String
        /// The filter's JSON, given the list's member ids in list order.
        let filter: @Sendable ([String]) -> String
        /// The members selected, in import order, given the people in list order.
        let expected: @Sendable ([Person]) -> [Person]
    }

    static func text(_ value: String?) -> String? {
        let folded = value.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        return folded?.isEmpty == false ? folded : nil
    }

    /// The ordering rule, written again for the oracle: absent last, ties in list order.
    static func ordered(_ people: [Person], by keys: [(String, Bool)]) -> [Person] {
        people.enumerated().sorted { a, b in
            for (field, descending) in keys {
                let x = text(a.element.value(field)), y = text(b.element.value(field))
                if x == y { continue }
                guard let x else { return false }
                guard let y else { return true }
                return descending ? y < x : x < y
            }
            return a.offset < b.offset
        }.map(\.element)
    }

    static let cases: [Case] = [
        Case(name: "where equals, any case and spaces", filter: { _ in #"{"where":[{"field":"company","value":" ACME "}]}"# },
             expected: { $0.filter { $0.company == "Acme" } }),
        Case(name: "where null", filter: { _ in #"{"where":[{"field":"company","value":null}]}"# },
             expected: { $0.filter { $0.company == nil } }),
        Case(name: "where any of, and an attribute", filter: { _ in
            #"{"where":[{"field":"position","value":["engineer","DIRECTOR"]},{"field":"attributes.tier","value":"gold"}]}"#
        }, expected: { $0.filter { ["Engineer", "Director"].contains($0.role) && $0.tier == #""gold""# } }),
        Case(name: "where on a number attribute and the mapped email", filter: { _ in
            #"{"where":[{"field":"attributes.tier","value":"2"},{"field":"email","value":["P2@example.com","p6@example.com","p26@example.com"]}]}"#
        }, expected: { $0.filter { $0.tier == "2" && ["p2@example.com", "p6@example.com"].contains($0.email ?? "") } }),
        Case(name: "where on the built name", filter: { _ in #"{"where":[{"field":"name","value":"f13 l3"}]}"# },
             expected: { $0.filter { $0.index == 13 } }),
        Case(name: "limit", filter: { _ in #"{"limit":7}"# }, expected: { Array($0.prefix(7)) }),
        Case(name: "where and limit", filter: { _ in #"{"where":[{"field":"company","value":"globex"}],"limit":3}"# },
             expected: { Array($0.filter { $0.company == "Globex" }.prefix(3)) }),
        Case(name: "orderBy on an attribute, descending, with limit", filter: { _ in
            #"{"orderBy":[{"field":"attributes.seniority","direction":"desc"}],"limit":5}"#
        }, expected: { Array(ordered($0, by: [("attributes.seniority", true)]).prefix(5)) }),
        Case(name: "orderBy two keys, absent last, with limit", filter: { _ in
            #"{"orderBy":[{"field":"company"},{"field":"lastName","direction":"desc"}],"limit":12}"#
        }, expected: { Array(ordered($0, by: [("company", false), ("lastName", true)]).prefix(12)) }),
        Case(name: "orderBy two keys without a limit (the database orders)", filter: { _ in
            #"{"orderBy":[{"field":"company"},{"field":"lastName","direction":"desc"}]}"#
        }, expected: { ordered($0, by: [("company", false), ("lastName", true)]) }),
        Case(name: "orderBy on an attribute, where, and a limit above what the service holds", filter: { _ in
            #"{"where":[{"field":"position","value":["manager","engineer"]}],"orderBy":[{"field":"attributes.seniority","direction":"desc"}],"limit":20000}"#
        }, expected: { ordered($0.filter { ["Manager", "Engineer"].contains($0.role) }, by: [("attributes.seniority", true)]) }),
        Case(name: "orderBy on the email, where, limit", filter: { _ in
            #"{"where":[{"field":"position","value":"manager"}],"orderBy":[{"field":"email","direction":"desc"}],"limit":4}"#
        }, expected: { Array(ordered($0.filter { $0.role == "Manager" }, by: [("email", true)]).prefix(4)) }),
        Case(name: "leadIds, in list order, repeats and strangers ignored", filter: { ids in
            #"{"leadIds":["\#(ids[24])","\#(ids[5])","\#(ids[2])","\#(ids[7])","\#(ids[5])","00000000-0000-4000-8000-000000000000"]}"#
        }, expected: { people in [2, 5, 7, 24].map { people[$0] } }),
        Case(name: "leadIds with orderBy and no limit", filter: { ids in
            #"{"leadIds":["\#(ids[1])","\#(ids[12])","\#(ids[25])","\#(ids[3])"],"orderBy":[{"field":"company","direction":"desc"}]}"#
        }, expected: { people in ordered([1, 3, 12, 25].map { people[$0] }, by: [("company", true)]) }),
        Case(name: "leadIds, where and limit", filter: { ids in
            #"{"leadIds":["\#(ids[0])","\#(ids[4])","\#(ids[8])","\#(ids[9])","\#(ids[24])"],"where":[{"field":"company","value":"acme"}],"limit":2}"#
        }, expected: { people in [0, 4].map { people[$0] } }),
        Case(name: "a selection of nobody", filter: { _ in #"{"where":[{"field":"company","value":"nobody"}]}"# }, expected: { _ in [] }),
        Case(name: "no filter", filter: { _ in "null" }, expected: { $0 }),
    ]

    func testEveryKeyOnBothStoragesAndChannelsMatchesTheOracleAndItsDryRun() throws {
        let user = try seed.user()
        let token = try seed.token(user: user)
        for storage in ["rows", "leads"] {
            let list = try list(of: Self.people, storage: storage, user: user)
            let ids = try memberIDs(of: list, storage: storage)
            XCTAssertEqual(ids.count, Self.people.count)
            for channel in ["email", "linkedin"] {
                for item in Self.cases {
                    let context = "\(item.name), \(storage) list, \(channel) campaign"
                    let body = #"{"listId":"\#(list)","filter":\#(item.filter(ids))"#
                    let campaign = try campaign(user: user, channel: channel)
                    let before = try leads(campaign)

                    let dry = try post(campaign, body + #","dryRun":true}"#, token: token)
                    XCTAssertEqual(dry.body["dryRun"] as? Bool, true, context)
                    XCTAssertEqual(dry.body["errors"] as? Int, 0, context)
                    XCTAssertEqual(try leads(campaign), before, "\(context): a dry run wrote")
                    XCTAssertEqual(try seed.value("SELECT stats::text FROM campaigns WHERE id = $1", [campaign]), "{}", "\(context): a dry run wrote stats")

                    let real = try post(campaign, body + "}", token: token)
                    XCTAssertNil(real.body["dryRun"], context)
                    XCTAssertEqual(dry.status, real.status, "\(context): \(dry.body) then \(real.body)")
                    XCTAssertEqual(counts(dry.body), counts(real.body), "\(context): the dry run and the import")

                    // The oracle: the selection as a list of its own, imported whole into a twin.
                    let selected = item.expected(Self.people)
                    let twin = try self.campaign(user: user, channel: channel)
                    if selected.isEmpty {
                        XCTAssertEqual(real.status, 422, context)
                        XCTAssertEqual(counts(real.body), [0, 0, 0, 0, 0], context)
                        XCTAssertEqual(try leads(campaign), before, context)
                        continue
                    }
                    let expectedList = try self.list(of: selected, storage: storage, user: user)
                    let expected = try post(twin, #"{"listId":"\#(expectedList)"}"#, token: token)
                    XCTAssertEqual(real.status, expected.status, context)
                    XCTAssertEqual(counts(real.body), counts(expected.body), "\(context): \(selected.map(\.index))")
                    XCTAssertEqual(try leads(campaign), try leads(twin), context)
                }
            }
        }
    }

    func testJobsWithAFilterAndTheirDryRunsEndAsTheSynchronousImport() throws {
        let user = try seed.user()
        let token = try seed.token(user: user)
        let chosen = Self.cases.filter { ["where any of, and an attribute", "where and limit", "orderBy two keys, absent last, with limit",
                                          "leadIds with orderBy and no limit", "leadIds, in list order, repeats and strangers ignored",
                                          "a selection of nobody"].contains($0.name) }
        XCTAssertEqual(chosen.count, 6)
        for (storageIndex, storage) in ["rows", "leads"].enumerated() {
            let list = try list(of: Self.people, storage: storage, user: user)
            let ids = try memberIDs(of: list, storage: storage)
            for (index, item) in chosen.enumerated() {
                // Both channels on both storages, each case on one of them.
                let channel = (index + storageIndex) % 2 == 0 ? "email" : "linkedin"
                let context = "\(item.name), \(storage) list, \(channel) job"
                let body = #"{"listId":"\#(list)","filter":\#(item.filter(ids))"#
                let campaign = try campaign(user: user, channel: channel)
                let before = try leads(campaign)
                let dry = try runJob(campaign, body + #","dryRun":true}"#, token: token, context: context + " (dry run)")
                XCTAssertEqual(try leads(campaign), before, "\(context): a dry-run job wrote")
                XCTAssertEqual(dry["dryRun"] as? Bool, true, context)
                let job = try runJob(campaign, body + "}", token: token, context: context)
                XCTAssertEqual(dry["httpStatus"] as? Int, job["httpStatus"] as? Int, context)
                XCTAssertEqual(counts(dry["counts"] as? [String: Any] ?? [:]), counts(job["counts"] as? [String: Any] ?? [:]),
                               "\(context): the dry-run job and the job")
                let twin = try self.campaign(user: user, channel: channel)
                let sync = try post(twin, body + "}", token: token)
                XCTAssertEqual(job["httpStatus"] as? Int, sync.status, context)
                XCTAssertEqual(counts(job["counts"] as? [String: Any] ?? [:]), counts(sync.body), context)
                XCTAssertEqual(try leads(campaign), try leads(twin), context)
            }
        }
    }

    /// Selections that span pages (of 1,000): an order whose members are imported in pages of
    /// their own, a where with a limit reached on the third page, both as jobs too.
    func testSelectionsOfAListOfSeveralPages() throws {
        let user = try seed.user()
        let token = try seed.token(user: user)
        let list = try seed.bulkRowsList(user: user, count: 2_500)  // row i: lastName "i", profile .../in/p<i>
        let byText = (1...2_500).map(String.init)
        let cases: [(filter: String, expected: Set<String>)] = [
            (#"{"orderBy":[{"field":"lastName","direction":"desc"}],"limit":1500}"#, Set(byText.sorted(by: >).prefix(1_500))),
            (#"{"where":[{"field":"firstName","value":"p"}],"limit":1100}"#, Set((1...1_100).map(String.init))),
            (#"{"where":[{"field":"attributes.lastName","value":[\#((1...100).map { "\"\($0 * 25)\"" }.joined(separator: ","))]}],"limit":90}"#,
             Set((1...90).map { String($0 * 25) })),
        ]
        for (filter, expected) in cases {
            for asJob in [false, true] {
                let campaign = try seed.campaign(user: user, channel: "linkedin")
                let body = #"{"listId":"\#(list)","filter":\#(filter)}"#
                let counted: [Int]
                if asJob {
                    counted = counts(try runJob(campaign, body, token: token, context: filter)["counts"] as? [String: Any] ?? [:])
                } else {
                    let reply = try post(campaign, body, token: token)
                    XCTAssertEqual(reply.status, 200, "\(filter): \(reply.body)")
                    counted = counts(reply.body)
                }
                XCTAssertEqual(counted, [expected.count, 0, 0, 0, expected.count], filter)
                let imported = try seed.campaignLeads(campaign).compactMap { $0["last_name"] ?? nil }
                XCTAssertEqual(Set(imported), expected, "\(filter)\(asJob ? " (job)" : "")")
            }
        }
    }

    func testADryRunOfAListLongerThanAPageCountsRepeatsOfEarlierPages() throws {
        // 2,500 rows whose emails repeat every 1,100: repeats lie pages and batches apart, and
        // the campaign already holds 10 of them.
        let user = try seed.user()
        let token = try seed.token(user: user)
        let list = try seed.bulkRowsList(user: user, count: 1_100)
        try seed.sql("""
            INSERT INTO list_rows (list_id, linkedin_url, profile_data, created_at)
            SELECT $1, NULL, jsonb_build_object('enrichment', jsonb_build_object('work_email', 'p' || (i % 1100 + 1) || '@example.com')),
                   now() + interval '1 hour' + make_interval(secs => i / 1000.0)
            FROM generate_series(0, 1399) AS i
            """, [list])
        for (body, expected) in [(#"{"listId":"\#(list)","filter":{"limit":2000},"dryRun":true}"#, [1090, 910, 0, 0, 2000]),
                                 (#"{"listId":"\#(list)","dryRun":true}"#, [1090, 1410, 0, 0, 2500])] {
            let campaign = try seed.campaign(user: user, channel: "email")
            try seed.sql("""
                INSERT INTO campaign_leads (campaign_id, user_id, email) SELECT $1, $2, 'p' || i || '@example.com' FROM generate_series(1, 10) AS i
                """, [campaign, user])
            let dry = try post(campaign, body, token: token)
            XCTAssertEqual(try seed.count(campaign), 10, "\(body): the dry run wrote")
            // The same as a job: its batches of 500 repeat batches two and more before them.
            let dryJob = try runJob(campaign, body, token: token, context: body + " (job)")
            XCTAssertEqual(try seed.count(campaign), 10, "\(body): the dry-run job wrote")
            let real = try post(campaign, body.replacingOccurrences(of: #","dryRun":true"#, with: ""), token: token)
            XCTAssertEqual(counts(real.body), expected, body)
            XCTAssertEqual(counts(dry.body), counts(real.body), body)
            XCTAssertEqual(dry.status, real.status, body)
            XCTAssertEqual(counts(dryJob["counts"] as? [String: Any] ?? [:]), counts(real.body), "\(body) (job)")
        }
    }

    /// Every refusal of a filter through nginx: `400 invalid_filter` naming the place, checked
    /// after `listId` and before the campaign and `dryRun`, and nothing imported.
    func testEveryInvalidFilterIsRefusedWithItsPlaceInTheChecksOrder() throws {
        let user = try seed.user()
        let token = try seed.token(user: user)
        let list = try seed.bulkRowsList(user: user, count: 3)
        let campaign = try seed.campaign(user: user, channel: "email")
        let unknownCampaign = "00000000-0000-4000-8000-000000000000"
        for (filter, message) in FilterRefusals.cases(id: list) {
            for (into, dryRun) in [(campaign, ""), (unknownCampaign, #","dryRun":"yes""#)] {
                let reply = try post(into, #"{"listId":"\#(list)","filter":\#(filter)\#(dryRun)}"#, token: token)
                XCTAssertEqual(reply.status, 400, filter)
                XCTAssertEqual(reply.body["error"] as? String, "invalid_filter", filter)
                let said = reply.body["message"] as? String ?? ""
                XCTAssertTrue(said.hasPrefix(message), "\(filter): \(said)")
            }
            // After listId: a bad list id is told first.
            let first = try post(campaign, #"{"listId":"nope","filter":\#(filter)}"#, token: token)
            XCTAssertEqual(first.body["error"] as? String, "invalid_list_id", filter)
        }
        XCTAssertEqual(try seed.count(campaign), 0, "a mistyped filter never imports")
    }

    /// Four dry runs of a list of several pages at once, on a process whose pool has three
    /// connections: one may read ahead while its ledger holds a connection, the others read on
    /// their ledger's alone; none waits for a connection another holds.
    func testConcurrentDryRunsShareThePool() throws {
        let user = try seed.user()
        let token = try seed.token(user: user)
        let list = try seed.bulkRowsList(user: user, count: 3_500)
        let campaigns = try (0..<4).map { _ in try seed.campaign(user: user, channel: "email") }
        let lock = NSLock()
        nonisolated(unsafe) var answers: [Int: (Int, [Int])] = [:]
        let http = self.http!
        DispatchQueue.concurrentPerform(iterations: campaigns.count) { index in
            let reply = try? http.post("/api/campaigns/\(campaigns[index])/leads/import-from-list",
                                       json: #"{"listId":"\#(list)","dryRun":true}"#, token: token)
            let body = (try? reply?.json()) ?? [:]
            let counted = ["imported", "duplicates", "invalid", "errors", "total"].map { body[$0] as? Int ?? -1 }
            lock.withLock { answers[index] = (reply?.status ?? -1, counted) }
        }
        for index in campaigns.indices {
            XCTAssertEqual(answers[index]?.0, 200, "\(index)")
            XCTAssertEqual(answers[index]?.1, [3_500, 0, 0, 0, 3_500], "\(index)")
            XCTAssertEqual(try seed.count(campaigns[index]), 0)
        }
    }

    /// An order over more members than the service holds (no limit, or one above 10,000) is
    /// ordered by the database. 2,500 rows in three repeats of 1,000 emails: which of the repeats
    /// is imported shows the order. Synchronous, as a job and as a dry run, with nothing left in
    /// the scratch tables after.
    func testAnOrderOverMoreMembersThanTheServiceHoldsIsOrderedByTheDatabase() throws {
        let user = try seed.user()
        let token = try seed.token(user: user)
        let list = try seed.list(user: user, storage: "rows")
        try seed.sql("""
            INSERT INTO list_rows (list_id, profile_data, created_at)
            SELECT $1, jsonb_build_object('lastName', i::text, 'enrichment', jsonb_build_object('work_email', 'p' || (i % 1000) || '@example.com')),
                   now() + make_interval(secs => i / 1000.0)
            FROM generate_series(0, 2499) AS i
            """, [list])
        // The first of each email's repeats in the order (last names descending, as text) is the one imported.
        var winners: [Int: String] = [:]
        for i in 0..<2_500 {
            let name = String(i)
            if let best = winners[i % 1_000], best > name { continue }
            winners[i % 1_000] = name
        }
        let expected = Set(winners.values)
        for filter in [#"{"orderBy":[{"field":"lastName","direction":"desc"}]}"#,
                       #"{"orderBy":[{"field":"lastName","direction":"desc"}],"limit":20000}"#] {
            let body = #"{"listId":"\#(list)","filter":\#(filter)"#
            let sync = try seed.campaign(user: user, channel: "email")
            let dry = try post(sync, body + #","dryRun":true}"#, token: token)
            let real = try post(sync, body + "}", token: token)
            XCTAssertEqual(real.status, 200, "\(filter): \(real.body)")
            XCTAssertEqual(counts(real.body), [1_000, 1_500, 0, 0, 2_500], filter)
            XCTAssertEqual(counts(dry.body), counts(real.body), filter)
            XCTAssertEqual(Set(try seed.campaignLeads(sync).compactMap { $0["last_name"] ?? nil }), expected, filter)

            let asJob = try seed.campaign(user: user, channel: "email")
            let job = try runJob(asJob, body + "}", token: token, context: filter)
            XCTAssertEqual(counts(job["counts"] as? [String: Any] ?? [:]), [1_000, 1_500, 0, 0, 2_500], filter)
            XCTAssertEqual(Set(try seed.campaignLeads(asJob).compactMap { $0["last_name"] ?? nil }), expected, "\(filter) (job)")
            // The job's runner forgets its ranking just after the finish.
            let deadline = Date().addingTimeInterval(5)
            var left = ""
            repeat {
                left = try seed.value("SELECT (SELECT count(*) FROM import_selection_keys) + (SELECT count(*) FROM import_selection_order)") ?? ""
                if left != "0" { Thread.sleep(forTimeInterval: 0.05) }
            } while left != "0" && Date() < deadline
            XCTAssertEqual(left, "0", "\(filter): scratch rows left behind")
        }
    }
}
