import Foundation
import Platform
import Postgres
import Store
import TestSupport
import XCTest

/// Migrations into fresh databases, run as the non-superuser owner.
final class MigrationTests: XCTestCase {
    var environment: TestEnvironment!
    var database: ScratchDatabase!

    override func setUpWithError() throws {
        environment = try TestEnvironment.require()
        database = try ScratchDatabase(environment)
    }

    override func tearDown() {
        database?.drop()
    }

    func testMigrateTwiceChangesNothingTheSecondTime() throws {
        let owner = try database.owner()
        defer { owner.close() }
        XCTAssertEqual(try owner.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").first?.bool(0), false)
        XCTAssertEqual(try Migrator.appliedVersions(owner), [])
        XCTAssertEqual(try Migrator.migrate(owner), Migrator.migrations.map(\.version))
        XCTAssertEqual(try Migrator.appliedVersions(owner), Migrator.migrations.map(\.version))
        let first = try schemaDump(owner)
        XCTAssertGreaterThan(first.count, 100)

        let again = try database.owner()
        defer { again.close() }
        XCTAssertEqual(try Migrator.migrate(again), [])
        XCTAssertEqual(try schemaDump(again), first)
        XCTAssertEqual(try Migrator.migrate(owner), [])
        XCTAssertEqual(try schemaDump(owner), first)
        // The advisory lock is not left behind.
        XCTAssertEqual(try owner.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").first?.int(0), 0)
    }

    func testTwoConcurrentMigratorsApplyEachVersionOnce() throws {
        // Hold the migrators' lock so both are surely waiting on it at once, then let go.
        let holder = try database.owner()
        defer { holder.close() }
        try holder.query("SELECT pg_advisory_lock($1::bigint)", [String(Migrator.advisoryLockKey)])
        let results = Locked<[Result<[Int], PostgresError>]>([])
        let url = database.ownerURL
        let done = CountdownLatch(count: 2)
        for index in 0..<2 {
            try! startThread(name: "migrator-\(index)") {
                do {
                    let connection = try Connection.connect(url, settings: testSettings)
                    defer { connection.close() }
                    let applied = try Migrator.migrate(connection)
                    results.withLock { $0.append(.success(applied)) }
                } catch {
                    results.withLock { $0.append(.failure(error as! PostgresError)) }
                }
                done.countDown()
            }
        }
        // Both wait on the advisory lock.
        let start = MonotonicInstant.now()
        while elapsed(since: start) < 10 {
            let waiting = try holder.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").first?.int(0)
            if waiting == 2 { break }
            usleep(10_000)
        }
        try holder.query("SELECT pg_advisory_unlock($1::bigint)", [String(Migrator.advisoryLockKey)])
        XCTAssertTrue(done.wait(until: .now() + .seconds(30)))
        let outcomes = results.current
        XCTAssertEqual(outcomes.count, 2)
        var applied: [[Int]] = []
        for outcome in outcomes {
            switch outcome {
            case .success(let versions): applied.append(versions)
            case .failure(let error): XCTFail("a migrator failed: \(error)")
            }
        }
        XCTAssertEqual(applied.sorted { $0.count < $1.count }, [[], Migrator.migrations.map(\.version)])
        XCTAssertEqual(try holder.query("SELECT version, count(*) FROM schema_migrations GROUP BY version").rows.count, Migrator.migrations.count)
    }

    func testTheServiceRoleCannotMigrateButCanSelectInsertUpdate() throws {
        let service = try database.service()
        defer { service.close() }
        XCTAssertThrowsError(try Migrator.migrate(service)) { error in
            XCTAssertTrue((error as! PostgresError).isInsufficientPrivilege, "\(error)")
        }
        let owner = try database.owner()
        defer { owner.close() }
        try Migrator.migrate(owner)

        let user = try XCTUnwrap(service.query("INSERT INTO users (email) VALUES ($1) RETURNING id", ["u@example.com"]).first).requiredString("id")
        let campaign = try XCTUnwrap(service.query(
            "INSERT INTO campaigns (user_id, channel) VALUES ($1, 'email') RETURNING id, status, stats::text AS stats",
            [user]).first)
        XCTAssertEqual(try campaign.string("status"), "draft")
        XCTAssertEqual(try campaign.string("stats"), "{}")
        let campaignID = try campaign.requiredString("id")
        try service.query(
            "INSERT INTO campaign_leads (campaign_id, user_id, email) VALUES ($1, $2, $3)", [campaignID, user, "a@example.com"])
        let update = try service.query(
            "UPDATE campaigns SET stats = (SELECT jsonb_build_object('total', count(*)) FROM campaign_leads WHERE campaign_id = $1) WHERE id = $1",
            [campaignID])
        XCTAssertEqual(update.affectedRows, 1)
        XCTAssertEqual(try service.query("SELECT stats->>'total' FROM campaigns WHERE id = $1", [campaignID]).first?.int(0), 1)
        try service.query("INSERT INTO tokens (user_id, token_hash) VALUES ($1, $2)", values: [.text(user), .bytea(Array(repeating: 7, count: 32))])
        try service.query("UPDATE tokens SET last_used_at = now() WHERE token_hash = $1", values: [.bytea(Array(repeating: 7, count: 32))])
        XCTAssertThrowsError(try service.query("DELETE FROM campaign_leads")) { error in
            XCTAssertTrue((error as! PostgresError).isInsufficientPrivilege)
        }
    }

    func testTheSchemaHasTheContractsColumns() throws {
        let owner = try database.owner()
        defer { owner.close() }
        try Migrator.migrate(owner)
        let id = "uuid|gen_random_uuid()"
        let created = "timestamp with time zone|now()"
        let expected: [String: [String: String]] = [
            "users": ["id": id, "email": "text|", "created_at": created],
            "tokens": [
                "id": id, "user_id": "uuid|", "token_hash": "bytea|", "name": "text|", "created_at": created,
                "expires_at": "timestamp with time zone|", "revoked_at": "timestamp with time zone|",
                "last_used_at": "timestamp with time zone|",
            ],
            "lists": ["id": id, "user_id": "uuid|", "name": "text|''::text", "storage": "text|'leads'::text", "created_at": created],
            "list_rows": ["id": id, "list_id": "uuid|", "linkedin_url": "text|", "profile_data": "jsonb|'{}'::jsonb", "created_at": created],
            "leads": [
                "id": id, "user_id": "uuid|", "first_name": "text|", "last_name": "text|", "full_name": "text|",
                "company": "text|", "title": "text|", "headline": "text|", "created_at": created, "updated_at": created,
            ],
            "lead_socials": ["lead_id": "uuid|", "network": "text|", "url": "text|"],
            "lead_contacts": ["id": id, "lead_id": "uuid|", "kind": "text|", "value": "text|", "created_at": created],
            "lead_attributes": ["lead_id": "uuid|", "key": "text|", "value": "jsonb|"],
            "list_memberships": ["list_id": "uuid|", "lead_id": "uuid|", "created_at": created],
            "campaigns": [
                "id": id, "user_id": "uuid|", "name": "text|''::text", "channel": "text|", "status": "text|'draft'::text",
                "stats": "jsonb|'{}'::jsonb", "created_at": created, "updated_at": created,
            ],
            "campaign_leads": [
                "id": id, "campaign_id": "uuid|", "user_id": "uuid|", "status": "text|'pending'::text", "email": "text|",
                "linkedin_url": "text|", "first_name": "text|", "last_name": "text|", "name": "text|", "company": "text|",
                "position": "text|", "headline": "text|", "source": "text|", "source_ref": "text|",
                "custom_fields": "jsonb|", "created_at": created, "updated_at": created, "identity_key": "text|",
                "import_batch": "uuid|",
            ],
            // The service's own tables (version 6).
            "import_jobs": [
                "id": id, "user_id": "uuid|", "campaign_id": "uuid|", "list_id": "uuid|", "filter": "json|", "dry_run": "boolean|",
                "state": "text|'queued'::text", "idempotency_key": "text|", "request_fingerprint": "bytea|",
                "imported": "integer|0", "duplicates": "integer|0", "invalid": "integer|0", "errors": "integer|0",
                "http_status": "smallint|", "created_at": created, "started_at": "timestamp with time zone|",
                "finished_at": "timestamp with time zone|", "lease_token": "uuid|", "lease_expires_at": "timestamp with time zone|",
                "attempts": "integer|0", "resume_position": "integer|0", "resume_cursor": "text|",
            ],
            "import_rejections": ["job_id": "uuid|", "position": "integer|", "member_id": "uuid|", "reason": "text|", "detail": "text|"],
            // A dry-run job's would-be inserts (version 9).
            "import_dry_run_identities": ["job_id": "uuid|", "identity": "text|"],
            // An order the database ranks (version 10).
            "import_selection_keys": ["selection": "uuid|", "place": "integer|", "member_id": "uuid|", "k1": "text|", "k2": "text|",
                                      "k3": "text|", "created_at": created],
            "import_selection_order": ["selection": "uuid|", "rank": "integer|", "member_id": "uuid|", "created_at": created],
        ]
        let rows = try owner.query("""
            SELECT table_name, column_name, data_type, coalesce(column_default, '') AS def, is_nullable
            FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
            """).rows
        var actual: [String: [String: String]] = [:]
        var nullable: [String: Bool] = [:]
        for row in rows {
            let table = try row.requiredString("table_name"), column = try row.requiredString("column_name")
            actual[table, default: [:]][column] = try row.requiredString("data_type") + "|" + row.requiredString("def")
            nullable["\(table).\(column)"] = try row.requiredString("is_nullable") == "YES"
        }
        XCTAssertEqual(actual, expected)
        for notNull in [
            "users.email", "tokens.token_hash", "lists.name", "lists.storage", "list_rows.profile_data",
            "lead_socials.network", "lead_socials.url", "lead_contacts.kind", "lead_contacts.value",
            "lead_attributes.key", "lead_attributes.value", "campaigns.name", "campaigns.channel",
            "campaigns.status", "campaigns.stats", "campaign_leads.status",
        ] {
            XCTAssertEqual(nullable[notNull], false, notNull)
        }
        // The columns other writers may leave out stay nullable.
        for column in ["campaign_leads.user_id", "campaign_leads.email", "tokens.expires_at", "tokens.revoked_at", "campaign_leads.custom_fields"] {
            XCTAssertEqual(nullable[column], true, column)
        }

        // Every reference deletes in cascade.
        let foreignKeys = try owner.query("""
            SELECT conrelid::regclass::text AS tab, confrelid::regclass::text AS ref, confdeltype::text AS del
            FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace ORDER BY 1, 2
            """).rows.map { try "\($0.requiredString("tab"))->\($0.requiredString("ref")):\($0.requiredString("del"))" }
        XCTAssertEqual(Set(foreignKeys), [
            "tokens->users:c", "lists->users:c", "list_rows->lists:c", "leads->users:c", "lead_socials->leads:c",
            "lead_contacts->leads:c", "lead_attributes->leads:c", "list_memberships->lists:c", "list_memberships->leads:c",
            "campaigns->users:c", "campaign_leads->campaigns:c", "campaign_leads->users:c",
            "import_jobs->users:c",
        ])
        XCTAssertEqual(foreignKeys.count, 13)

        // Primary keys and uniques.
        let keys = try owner.query("""
            SELECT conrelid::regclass::text || ' ' || contype::text || ' ' || pg_get_constraintdef(oid) AS k
            FROM pg_constraint WHERE contype IN ('p', 'u') AND connamespace = 'public'::regnamespace
            """).rows.map { try $0.requiredString("k") }
        for key in [
            "lead_socials p PRIMARY KEY (lead_id, network)", "lead_attributes p PRIMARY KEY (lead_id, key)",
            "list_memberships p PRIMARY KEY (list_id, lead_id)", "users u UNIQUE (email)", "tokens u UNIQUE (token_hash)",
            "campaign_leads u UNIQUE (campaign_id, identity_key)", "campaigns p PRIMARY KEY (id)",
        ] {
            XCTAssertTrue(keys.contains(key), "missing \(key) in \(keys)")
        }
        // Keyset paging indexes.
        let indexes = try owner.query("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'").rows.map { try $0.requiredString(0) }
        for fragment in [
            "list_rows USING btree (list_id, created_at, id)",
            "list_memberships USING btree (list_id, created_at, lead_id)",
            "lead_contacts USING btree (lead_id, kind, created_at, id)",
            "campaign_leads USING btree (campaign_id, status)",
        ] {
            XCTAssertTrue(indexes.contains { $0.contains(fragment) }, "missing index \(fragment)")
        }
    }

    func testCheckConstraintsOnEnumeratedValues() throws {
        let owner = try database.owner()
        defer { owner.close() }
        try Migrator.migrate(owner)
        let user = try XCTUnwrap(owner.query("INSERT INTO users (email) VALUES ('c@example.com') RETURNING id").first).requiredString(0)
        for (sql, parameters) in [
            ("INSERT INTO lists (user_id, storage) VALUES ($1, 'files')", [user]),
            ("INSERT INTO campaigns (user_id, channel) VALUES ($1, 'sms')", [user]),
            ("INSERT INTO campaigns (user_id, channel, status) VALUES ($1, 'email', 'archived')", [user]),
        ] {
            XCTAssertThrowsError(try owner.query(sql, parameters)) { error in
                XCTAssertTrue((error as! PostgresError).isCheckViolation, "\(sql): \(error)")
            }
        }
        let lead = try XCTUnwrap(owner.query("INSERT INTO leads (user_id) VALUES ($1) RETURNING id", [user]).first).requiredString(0)
        XCTAssertThrowsError(try owner.query("INSERT INTO lead_contacts (lead_id, kind, value) VALUES ($1, 'fax', '1')", [lead])) { error in
            XCTAssertTrue((error as! PostgresError).isCheckViolation)
        }
        for kind in ["work_email", "personal_email", "phone"] {
            try owner.query("INSERT INTO lead_contacts (lead_id, kind, value) VALUES ($1, $2, 'v')", [lead, kind])
        }
        // The network is open.
        try owner.query("INSERT INTO lead_socials (lead_id, network, url) VALUES ($1, 'mastodon', 'x')", [lead])
        XCTAssertEqual(try owner.query("SELECT storage FROM lists WHERE false").rowCount, 0)
        XCTAssertEqual(try owner.query("INSERT INTO lists (user_id) VALUES ($1) RETURNING storage", [user]).first?.string(0), "leads")
    }

    func testEmailCampaignDedupIgnoresCaseAndSpaces() throws {
        let (connection, user, campaign) = try campaignFixture(channel: "email")
        defer { connection.close() }
        try insertLead(connection, campaign, user, email: "Anna@Example.com")
        for variant in ["anna@example.com", "  ANNA@example.COM ", "\tanna@EXAMPLE.com\n"] {
            XCTAssertThrowsError(try insertLead(connection, campaign, user, email: variant)) { error in
                XCTAssertTrue((error as! PostgresError).isUniqueViolation)
                XCTAssertEqual((error as! PostgresError).constraint, "campaign_leads_campaign_id_identity_key_key")
            }
        }
        // ON CONFLICT on the constraint's columns skips the duplicate and reports nothing inserted.
        let skipped = try connection.query("""
            INSERT INTO campaign_leads (campaign_id, user_id, email) VALUES ($1, $2, $3)
            ON CONFLICT (campaign_id, identity_key) DO NOTHING RETURNING id
            """, [campaign, user, " ANNA@example.com"])
        XCTAssertEqual(skipped.rowCount, 0)
        let inserted = try connection.query("""
            INSERT INTO campaign_leads (campaign_id, user_id, email) VALUES ($1, $2, $3), ($1, $2, $4)
            ON CONFLICT (campaign_id, identity_key) DO NOTHING RETURNING email
            """, [campaign, user, "bob@example.com", "BOB@example.com "])
        XCTAssertEqual(inserted.rowCount, 1, "a repeat within one statement is skipped too")
        // The same LinkedIn URL twice is fine in an email campaign.
        try insertLead(connection, campaign, user, email: "c1@example.com", linkedin: "https://www.linkedin.com/in/same")
        try insertLead(connection, campaign, user, email: "c2@example.com", linkedin: "https://www.linkedin.com/in/same")
        // Rows without an email do not collide either.
        try insertLead(connection, campaign, user, email: nil)
        try insertLead(connection, campaign, user, email: nil)
        // A key written by someone else is recomputed, not trusted.
        XCTAssertThrowsError(try connection.query(
            "INSERT INTO campaign_leads (campaign_id, user_id, email, identity_key) VALUES ($1, $2, 'anna@example.com', 'other')",
            [campaign, user]))
        let key = try connection.query("SELECT identity_key FROM campaign_leads WHERE email = $1", ["Anna@Example.com"]).first?.string(0)
        XCTAssertEqual(key, "anna@example.com")
        // An update that would make a duplicate is refused too.
        XCTAssertThrowsError(try connection.query("UPDATE campaign_leads SET email = 'ANNA@example.com' WHERE email = 'c1@example.com'")) { error in
            XCTAssertTrue((error as! PostgresError).isUniqueViolation)
        }
        // Another campaign has its own identities.
        let other = try XCTUnwrap(connection.query(
            "INSERT INTO campaigns (user_id, channel) VALUES ($1, 'email') RETURNING id", [user]).first).requiredString(0)
        try insertLead(connection, other, user, email: "anna@example.com")
    }

    func testLinkedInCampaignDedupComparesNormalizedProfileURLs() throws {
        let (connection, user, campaign) = try campaignFixture(channel: "linkedin")
        defer { connection.close() }
        try insertLead(connection, campaign, user, email: "x@example.com", linkedin: "https://www.linkedin.com/in/john-doe")
        for variant in [
            "http://linkedin.com/in/John-Doe/",
            "linkedin.com/in/JOHN-DOE?trk=abc",
            "  https://uk.linkedin.com/in/john-doe/details/experience#top ",
            "www.linkedin.com/in/john-doe/",
            "HTTPS://WWW.LINKEDIN.COM/in/john-doe",
        ] {
            XCTAssertThrowsError(try insertLead(connection, campaign, user, email: nil, linkedin: variant), variant) { error in
                XCTAssertTrue((error as! PostgresError).isUniqueViolation, "\(variant): \(error)")
            }
        }
        // The same email twice is fine in a LinkedIn campaign.
        try insertLead(connection, campaign, user, email: "x@example.com", linkedin: "https://www.linkedin.com/in/jane")
        // /sales/ paths keep their case: different case, different identity.
        try insertLead(connection, campaign, user, email: nil, linkedin: "https://www.linkedin.com/sales/lead/ACwAAB")
        try insertLead(connection, campaign, user, email: nil, linkedin: "https://www.linkedin.com/sales/lead/acwaab")
        XCTAssertThrowsError(try insertLead(connection, campaign, user, email: nil, linkedin: "linkedin.com/sales/lead/ACwAAB/"))
        // Not profiles: no identity, no collision.
        try insertLead(connection, campaign, user, email: nil, linkedin: "https://www.linkedin.com/company/acme")
        try insertLead(connection, campaign, user, email: nil, linkedin: "https://www.linkedin.com/company/acme")
    }

    func testLinkedInNormalization() throws {
        let owner = try database.owner()
        defer { owner.close() }
        try Migrator.migrate(owner)
        let cases: [(String, String?)] = [
            ("https://www.linkedin.com/in/john-doe", "https://www.linkedin.com/in/john-doe"),
            ("  linkedin.com/in/John-Doe/  ", "https://www.linkedin.com/in/john-doe"),
            ("http://de.linkedin.com/in/JOHN?x=1#y", "https://www.linkedin.com/in/john"),
            ("//www.linkedin.com/in/john", "https://www.linkedin.com/in/john"),
            ("https://www.linkedin.com:443/in/john", "https://www.linkedin.com/in/john"),
            ("https://www.linkedin.com./in/john", "https://www.linkedin.com/in/john"),
            ("https://www.linkedin.com/IN/John", "https://www.linkedin.com/in/john"),
            ("https://www.linkedin.com/in/john/details/skills/", "https://www.linkedin.com/in/john"),
            ("https://www.linkedin.com/in/j%C3%B6rg", "https://www.linkedin.com/in/j%c3%b6rg"),
            ("https://www.linkedin.com/pub/John-Doe/1/23/456/", "https://www.linkedin.com/pub/John-Doe/1/23/456"),
            ("https://linkedin.com/sales/people/ACwAAA,NAME_SEARCH", "https://www.linkedin.com/sales/people/ACwAAA,NAME_SEARCH"),
            ("https://www.linkedin.com/in/john?path=/x/y", "https://www.linkedin.com/in/john"),
            ("https://www.linkedin.com/in/", nil),
            ("https://www.linkedin.com/in//john", nil),
            ("https://www.linkedin.com/", nil),
            ("https://www.linkedin.com", nil),
            ("https://www.linkedin.com/company/acme", nil),
            ("https://www.linkedin.com/pub/a//b", nil),
            ("https://evil-linkedin.com/in/john", nil),
            ("https://linkedin.com.evil.com/in/john", nil),
            ("https://user@linkedin.com/in/john", nil),
            ("https://linkedin.com:80x/in/john", nil),
            ("ftp://linkedin.com/in/john", nil),
            ("git+ssh://linkedin.com/in/john", nil),
            ("linkedin.com://in/john", nil),
            ("linkedin.com/in/john?u=https://x", "https://www.linkedin.com/in/john"),
            ("www.linkedin.com/in/John#https://x", "https://www.linkedin.com/in/john"),
            ("https://www.linkedin.com/in/jo hn", nil),
            ("https://www.linkedin.com/in/jo\u{200B}hn", nil),
            ("imported-12345", nil),
            ("IMPORTED-https://www.linkedin.com/in/john", nil),
            ("https://www.linkedin.com/in/Imported-42", nil),
            ("https://www.linkedin.com/pub/imported-42/1", nil),
            ("https://www.linkedin.com/in/importedjohn", "https://www.linkedin.com/in/importedjohn"),
            ("", nil),
            ("   ", nil),
        ]
        for (input, expected) in cases {
            let output = try owner.query("SELECT leadimport_normalize_linkedin($1) AS n", [input]).first?.string("n")
            XCTAssertEqual(output, expected, "normalize(\(input.debugDescription))")
        }
        XCTAssertNil(try owner.query("SELECT leadimport_normalize_linkedin(NULL) AS n").first?.string("n"))
        // Normalization is idempotent.
        for (_, expected) in cases {
            guard let expected else { continue }
            XCTAssertEqual(try owner.query("SELECT leadimport_normalize_linkedin($1)", [expected]).first?.string(0), expected)
        }
    }

    /// Version 2 over a database that version 1 already holds leads in: identities already
    /// computed stay, new rows get the new rule, and dedup goes on across the upgrade.
    func testVersion2UpgradesADatabaseInUse() throws {
        let owner = try database.owner()
        defer { owner.close() }
        XCTAssertEqual(try Migrator.migrate(owner, upTo: 1), [1])
        let user = try XCTUnwrap(owner.query("INSERT INTO users (email) VALUES ('up@example.com') RETURNING id").first).requiredString(0)
        let email = try XCTUnwrap(owner.query(
            "INSERT INTO campaigns (user_id, channel) VALUES ($1, 'email') RETURNING id", [user]).first).requiredString(0)
        let linkedin = try XCTUnwrap(owner.query(
            "INSERT INTO campaigns (user_id, channel) VALUES ($1, 'linkedin') RETURNING id", [user]).first).requiredString(0)
        try insertLead(owner, email, user, email: " Ada@Example.com ")
        try insertLead(owner, linkedin, user, email: nil, linkedin: "linkedin.com/in/ada?u=https://x")
        let keysBefore = try owner.query("SELECT identity_key FROM campaign_leads ORDER BY campaign_id = $1 DESC", [email]).rows
            .map { try $0.string(0) }
        XCTAssertEqual(keysBefore, ["ada@example.com", nil], "version 1 took the query's https for a scheme")

        XCTAssertEqual(try Migrator.migrate(owner, upTo: 2), [2])
        XCTAssertEqual(try Migrator.appliedVersions(owner), [1, 2])
        XCTAssertThrowsError(try insertLead(owner, email, user, email: "ADA@example.com"), "dedup across the upgrade")
        try insertLead(owner, linkedin, user, email: nil, linkedin: "https://www.linkedin.com/in/ADA")
        XCTAssertThrowsError(try insertLead(owner, linkedin, user, email: nil, linkedin: "linkedin.com/in/ada?u=https://y"))
        XCTAssertEqual(try owner.query("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1 AND identity_key IS NULL", [linkedin])
            .first?.int(0), 1, "the row version 1 gave no identity keeps none")
        XCTAssertNil(try owner.query("SELECT leadimport_normalize_email(NULL)").first?.string(0))
        XCTAssertNil(try owner.query("SELECT leadimport_normalize_email('  ')").first?.string(0))
    }

    func testChangingACampaignsChannelRecomputesIdentities() throws {
        let (connection, user, campaign) = try campaignFixture(channel: "email")
        defer { connection.close() }
        try insertLead(connection, campaign, user, email: "a@example.com", linkedin: "linkedin.com/in/A")
        try connection.query("UPDATE campaigns SET channel = 'linkedin' WHERE id = $1", [campaign])
        XCTAssertEqual(
            try connection.query("SELECT identity_key FROM campaign_leads WHERE campaign_id = $1", [campaign]).first?.string(0),
            "https://www.linkedin.com/in/a")
    }

    func testUpdatedAtFollowsUpdates() throws {
        let (connection, _, campaign) = try campaignFixture(channel: "email")
        defer { connection.close() }
        try connection.query("UPDATE campaigns SET updated_at = now() - interval '1 day' WHERE id = $1", [campaign])
        let old = try connection.query("SELECT updated_at < now() - interval '1 hour' FROM campaigns WHERE id = $1", [campaign])
        XCTAssertEqual(try old.first?.bool(0), true, "a writer's own updated_at is kept")
        try connection.query("UPDATE campaigns SET stats = '{\"total\": 0}' WHERE id = $1", [campaign])
        let fresh = try connection.query("SELECT updated_at > now() - interval '1 hour' FROM campaigns WHERE id = $1", [campaign])
        XCTAssertEqual(try fresh.first?.bool(0), true)
    }

    func testDeletesCascade() throws {
        let (connection, user, campaign) = try campaignFixture(channel: "email")
        defer { connection.close() }
        try insertLead(connection, campaign, user, email: "a@example.com")
        let list = try XCTUnwrap(connection.query("INSERT INTO lists (user_id, storage) VALUES ($1, 'rows') RETURNING id", [user]).first).requiredString(0)
        try connection.query("INSERT INTO list_rows (list_id) VALUES ($1)", [list])
        // Two jobs with rejections: one deleted alone, the other with its user.
        func jobWithRejections() throws -> String {
            let job = try XCTUnwrap(connection.query(
                "INSERT INTO import_jobs (user_id, campaign_id, list_id) VALUES ($1, $2, $3) RETURNING id", [user, campaign, list]).first).requiredString(0)
            try connection.query("""
                INSERT INTO import_rejections (job_id, position, member_id, reason, detail)
                SELECT $1, g, gen_random_uuid(), 'invalid', 'x' FROM generate_series(1, 3) g
                """, [job])
            return job
        }
        let deletedAlone = try jobWithRejections()
        let deletedWithUser = try jobWithRejections()
        let owner = try database.owner()  // the service role may not delete
        defer { owner.close() }
        try owner.query("DELETE FROM import_jobs WHERE id = $1", [deletedAlone])
        XCTAssertEqual(try connection.query("SELECT count(*) FROM import_rejections WHERE job_id = $1", [deletedAlone]).first?.int(0), 0)
        XCTAssertEqual(try connection.query("SELECT count(*) FROM import_rejections WHERE job_id = $1", [deletedWithUser]).first?.int(0), 3)
        try owner.query("DELETE FROM users WHERE id = $1", [user])
        for table in ["campaigns", "campaign_leads", "lists", "list_rows", "import_jobs", "import_rejections"] {
            XCTAssertEqual(try connection.queryUnprepared("SELECT count(*) FROM \(table)").first?.int(0), 0, table)
        }
    }

    // MARK: helpers

    func campaignFixture(channel: String) throws -> (Connection, String, String) {
        let owner = try database.owner()
        defer { owner.close() }
        try Migrator.migrate(owner)
        let connection = try database.service()
        let user = try XCTUnwrap(connection.query(
            "INSERT INTO users (email) VALUES ($1) RETURNING id", ["\(UUID().uuidString)@example.com"]).first).requiredString(0)
        let campaign = try XCTUnwrap(connection.query(
            "INSERT INTO campaigns (user_id, channel) VALUES ($1, $2) RETURNING id", [user, channel]).first).requiredString(0)
        return (connection, user, campaign)
    }

    func insertLead(_ connection: Connection, _ campaign: String, _ user: String, email: String?, linkedin: String? = nil) throws {
        try connection.query(
            "INSERT INTO campaign_leads (campaign_id, user_id, email, linkedin_url) VALUES ($1, $2, $3, $4)",
            [campaign, user, email, linkedin])
    }

    /// Everything a migration defines, as sorted lines: columns, indexes, constraints, triggers,
    /// functions, privileges and the migration records.
    func schemaDump(_ connection: Connection) throws -> [String] {
        try connection.queryUnprepared("""
            SELECT line FROM (
                SELECT format('column %s.%s %s %s %s', table_name, column_name, data_type, column_default, is_nullable) AS line
                FROM information_schema.columns WHERE table_schema = 'public'
                UNION ALL
                SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
                UNION ALL
                SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
                FROM pg_constraint WHERE connamespace = 'public'::regnamespace
                UNION ALL
                SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
                UNION ALL
                SELECT 'function ' || p.proname || ' ' || md5(pg_get_functiondef(p.oid))
                FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
                UNION ALL
                SELECT format('grant %s %s %s', table_name, grantee, privilege_type)
                FROM information_schema.role_table_grants WHERE table_schema = 'public'
                UNION ALL
                SELECT format('migration %s %s %s', version, name, applied_at) FROM schema_migrations
            ) dump ORDER BY line
            """).rows.map { try $0.requiredString("line") }
    }
}
