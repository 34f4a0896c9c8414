import Foundation
import Postgres

/// Seeds test data through the contract's tables and columns only, as the rest of the platform
/// would: nothing here knows about the service's own additions to the schema.
public final class Seed: @unchecked Sendable {
    public let connection: Connection

    public init(_ environment: TestEnvironment) throws {
        connection = try Connection.connect(environment.ownerDatabaseURL)
    }

    deinit { connection.close() }

    @discardableResult
    public func sql(_ text: String, _ parameters: [String?] = []) throws -> QueryResult {
        try connection.query(text, parameters)
    }

    public func value(_ text: String, _ parameters: [String?] = []) throws -> String? {
        try sql(text, parameters).first?.string(0)
    }

    public func user() throws -> String {
        try value("INSERT INTO users (email) VALUES ($1) RETURNING id", ["user-\(UUID().uuidString.lowercased())@example.com"])!
    }

    /// A live token for `user`; stored as the contract says: SHA-256 of its UTF-8 bytes.
    public func token(user: String, expiresAt: String? = nil, revoked: Bool = false) throws -> String {
        let token = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        try sql("""
            INSERT INTO tokens (user_id, token_hash, name, expires_at, revoked_at)
            VALUES ($1, sha256(convert_to($2, 'UTF8')), 'test', $3::timestamptz, CASE WHEN $4 THEN now() END)
            """, [user, token, expiresAt, revoked ? "true" : "false"])
        return token
    }

    public func campaign(user: String, channel: String, status: String = "draft") throws -> String {
        try value("INSERT INTO campaigns (user_id, name, channel, status) VALUES ($1, 'test', $2, $3) RETURNING id", [user, channel, status])!
    }

    public func list(user: String, storage: String) throws -> String {
        try value("INSERT INTO lists (user_id, name, storage) VALUES ($1, 'test', $2) RETURNING id", [user, storage])!
    }

    /// A `rows` list: each row a linkedin_url and a profile_data JSON text, inserted in order
    /// (created_at increases with each).
    public func rowsList(user: String, rows: [(linkedin: String?, profile: String)]) throws -> String {
        let list = try list(user: user, storage: "rows")
        for (index, row) in rows.enumerated() {
            try sql("""
                INSERT INTO list_rows (list_id, linkedin_url, profile_data, created_at)
                VALUES ($1, $2, $3::jsonb, now() + make_interval(secs => $4::int / 1000.0))
                """, [list, row.linkedin, row.profile, String(index)])
        }
        return list
    }

    public struct LeadSpec: Sendable {
        public var firstName, lastName, fullName, company, title, headline: String?
        public var linkedin: String?
        /// (value, created_at offset in seconds): oldest first wins.
        public var workEmails: [(String, Int)]
        public var otherContacts: [(kind: String, value: String)]
        /// key → JSON text
        public var attributes: [String: String]

        public init(firstName: String? = nil, lastName: String? = nil, fullName: String? = nil, company: String? = nil,
                    title: String? = nil, headline: String? = nil, linkedin: String? = nil, workEmails: [(String, Int)] = [],
                    otherContacts: [(kind: String, value: String)] = [], attributes: [String: String] = [:]) {
            self.firstName = firstName; self.lastName = lastName; self.fullName = fullName; self.company = company
            self.title = title; self.headline = headline; self.linkedin = linkedin; self.workEmails = workEmails
            self.otherContacts = otherContacts; self.attributes = attributes
        }
    }

    /// A `leads` list of canonical Leads, memberships in the given order.
    public func leadsList(user: String, leads: [LeadSpec]) throws -> String {
        let list = try list(user: user, storage: "leads")
        for (index, spec) in leads.enumerated() {
            let lead = try value("""
                INSERT INTO leads (user_id, first_name, last_name, full_name, company, title, headline)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
                """, [user, spec.firstName, spec.lastName, spec.fullName, spec.company, spec.title, spec.headline])!
            if let linkedin = spec.linkedin {
                try sql("INSERT INTO lead_socials (lead_id, network, url) VALUES ($1, 'linkedin', $2)", [lead, linkedin])
            }
            for (email, offset) in spec.workEmails {
                try sql("INSERT INTO lead_contacts (lead_id, kind, value, created_at) VALUES ($1, 'work_email', $2, now() + make_interval(secs => $3::int))",
                        [lead, email, String(offset)])
            }
            for contact in spec.otherContacts {
                try sql("INSERT INTO lead_contacts (lead_id, kind, value) VALUES ($1, $2, $3)", [lead, contact.kind, contact.value])
            }
            for (key, json) in spec.attributes {
                try sql("INSERT INTO lead_attributes (lead_id, key, value) VALUES ($1, $2, $3::jsonb)", [lead, key, json])
            }
            try sql("""
                INSERT INTO list_memberships (list_id, lead_id, created_at)
                VALUES ($1, $2, now() + make_interval(secs => $3::int / 1000.0))
                """, [list, lead, String(index)])
        }
        return list
    }

    /// A `rows` list of `count` rows made in one statement: row i has email `p<i>@<domain>` and
    /// linkedin `https://www.linkedin.com/in/p<i>`.
    public func bulkRowsList(user: String, count: Int, domain: String = "example.com") throws -> String {
        let list = try list(user: user, storage: "rows")
        try sql("""
            INSERT INTO list_rows (list_id, linkedin_url, profile_data, created_at)
            SELECT $1, 'https://www.linkedin.com/in/p' || i,
                   jsonb_build_object('firstName', 'P', 'lastName', i::text, 'enrichment', jsonb_build_object('work_email', 'p' || i || '@' || $3)),
                   now() + make_interval(secs => i / 1000.0)
            FROM generate_series(1, $2::int) AS i
            """, [list, String(count), domain])
        return list
    }

    /// A `leads` list of `count` canonical Leads, member i (from 1) named `P<i>` with the
    /// profile `https://www.linkedin.com/in/P<i>` and one attribute, memberships in that order.
    public func bulkLeadsList(user: String, count: Int) throws -> String {
        let list = try list(user: user, storage: "leads")
        try sql("""
            WITH made AS (
                INSERT INTO leads (user_id, first_name) SELECT $1, 'P' || i FROM generate_series(1, $3::int) AS i RETURNING id, first_name
            ), social AS (
                INSERT INTO lead_socials (lead_id, network, url) SELECT id, 'linkedin', 'https://www.linkedin.com/in/' || first_name FROM made
            ), attributes AS (
                INSERT INTO lead_attributes (lead_id, key, value) SELECT id, 'source', '"crm"' FROM made
            )
            INSERT INTO list_memberships (list_id, lead_id, created_at)
            SELECT $2, id, now() + substr(first_name, 2)::int * interval '1 microsecond' FROM made
            """, [user, list, String(count)])
        return list
    }

    public func campaignLeads(_ campaign: String) throws -> [[String: String?]] {
        let result = try sql("""
            SELECT email, linkedin_url, first_name, last_name, name, company, position, headline, status, source, source_ref,
                   custom_fields::text AS custom_fields
            FROM campaign_leads WHERE campaign_id = $1 ORDER BY created_at, id
            """, [campaign])
        return try result.rows.map { row in
            var out: [String: String?] = [:]
            for (index, name) in result.columns.enumerated() { out[name] = try row.string(index) }
            return out
        }
    }

    public func count(_ campaign: String) throws -> Int {
        Int(try value("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign])!)!
    }
}
