import LeadCore
import Platform
import Postgres

/// Writes candidate leads into a campaign, one batch per statement, each committed on its own.
///
/// The statement first takes a share lock on the campaign and refuses to insert unless it is
/// still a draft (`leadimport_campaign_accepts_leads`), so no batch commits into a campaign that
/// stopped being a draft or was deleted, and the status cannot change until the batch has
/// committed. The database decides inserted versus duplicate (`ON CONFLICT DO NOTHING`). Every
/// row of a batch carries the batch's token (`campaign_leads.import_batch`): should the connection
/// be lost before the answer, `committedRows` counts from any connection what the batch put in,
/// so a batch is neither inserted twice nor counted wrong, for one round trip a batch.
public struct CampaignWriter: Sendable {
    public let target: ImportTarget

    public init(target: ImportTarget) { self.target = target }

    static let insertSQL = """
        INSERT INTO campaign_leads (campaign_id, user_id, status, email, linkedin_url, first_name, last_name, name,
                                    company, position, headline, source, source_ref, custom_fields, import_batch)
        SELECT $1, $2, 'pending', t.email, t.linkedin_url, t.first_name, t.last_name, t.name,
               t.company, t.position, t.headline, 'list', $3, t.custom_fields::jsonb, $13::uuid
        FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
             AS t(email, linkedin_url, first_name, last_name, name, company, position, headline, custom_fields)
        -- Evaluated once, before any row: a sub-select without outer references is an init plan.
        WHERE (SELECT leadimport_campaign_accepts_leads($1::uuid))
        ON CONFLICT (campaign_id, identity_key) DO NOTHING
        """

    /// What one attempt at a batch came to.
    public enum Attempt: Sendable {
        /// Committed: this many of the batch were inserted, the rest were duplicates.
        case inserted(Int)
        /// The campaign no longer takes leads: nothing was inserted.
        case refused(ImportStop)
        /// Lock timeout, statement timeout, deadlock, serialization failure: nothing was
        /// inserted, and the same attempt may succeed later.
        case transient(PostgresError)
        /// The statement failed for one of the rows (a constraint, bad data): nothing was
        /// inserted; smaller batches find the rows that cannot be inserted.
        case failed(PostgresError)
    }

    /// The connection broke during an attempt: it may or may not have committed (`committedRows`
    /// tells, by the batch's token).
    public struct LostAttempt: Error, Sendable {
        public var error: any Error
    }

    /// One attempt at `leads`, tagged `batch`, on `connection`. Throws `LostAttempt` when the
    /// connection is lost.
    public func attempt(_ leads: ArraySlice<CandidateLead>, batch: String, on connection: Connection) throws -> Attempt {
        guard !leads.isEmpty else { return .inserted(0) }
        do {
            // The command tag counts only the rows inserted; a conflict inserts nothing.
            return .inserted(try connection.query(Self.insertSQL, values: parameters(leads) + [.text(batch)]).affectedRows)
        } catch let error as PostgresError {
            if error.isConnectionProblem || connection.isBroken { throw LostAttempt(error: error) }
            return Self.classify(error)
        }
    }

    /// What a failed batch statement means for the import (not a lost connection).
    static func classify(_ error: PostgresError) -> Attempt {
        let failure = DatabaseFailure(sqlState: error.sqlState, connectionProblem: false)
        switch failure {
        case .campaignNotDraft: return .refused(.campaignNotDraft)
        case .campaignGone: return .refused(.campaignGone)
        default: return failure.isTransient ? .transient(error) : .failed(error)
        }
    }

    /// What the campaign holds of a batch, read before writing it (see `held`).
    public enum Holding: Equatable, Sendable {
        /// The campaign takes leads, and holds these of the identities asked about.
        case holds(Set<String>)
        /// The insert would refuse the batch.
        case refused(ImportStop)
    }

    /// Which of `identities` the campaign holds already, read in one snapshot with its status
    /// and channel. Nothing is locked or written: a batch the campaign holds whole needs no
    /// insert, and so no row lock on the campaign and no commit to wait for. Identities are
    /// compared only while the campaign's channel is the one they were made for.
    public func held(_ identities: [String], on connection: Connection) throws -> Holding {
        let result = try connection.query(Self.heldSQL, values: [.text(target.campaignID), .textArray(identities)])
        var held = Set<String>()
        var sameChannel = false
        for row in result.rows {
            if try row.requiredString(0) == "c" {
                if let stop = ImportStop(campaignStatus: try row.string(1)) { return .refused(stop) }
                sameChannel = try row.string(2) == target.channel.rawValue
            } else if let identity = try row.string(1) {
                held.insert(identity)
            }
        }
        return .holds(sameChannel ? held : [])
    }

    /// The campaign and the identities are read through sub-selects so that no plan can see them:
    /// seeing them, the planner costed a small campaign below the generic plan and planned the
    /// statement again at every execution, which cost five times its running (docs/performance.md).
    static let heldSQL = """
        SELECT 'c', c.status, c.channel FROM (VALUES (1)) AS one(x) LEFT JOIN campaigns c ON c.id = $1::uuid
        UNION ALL
        SELECT 'l', l.identity_key, NULL FROM campaign_leads l
        WHERE l.campaign_id = (SELECT $1::uuid) AND l.identity_key = ANY((SELECT $2::text[])::text[])
        """

    /// How many rows the batch tagged `batch` has in the campaign: what its attempts committed.
    /// Only asked after a lost connection (it reads the campaign's rows).
    public func committedRows(batch: String, on connection: Connection) throws -> Int {
        try connection.query("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1 AND import_batch = $2::uuid",
                             [target.campaignID, batch]).rows.first?.requiredInt(0) ?? 0
    }

    /// A new batch token: a random UUID (version 4).
    public static func newBatchToken() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        var text = SHA256.hex(bytes)
        for offset in [20, 16, 12, 8] { text.insert("-", at: text.index(text.startIndex, offsetBy: offset)) }
        return text
    }

    func parameters(_ leads: ArraySlice<CandidateLead>) -> [PostgresValue] {
        [
            .text(target.campaignID), .text(target.userID), .text(target.listID),
            .textArray(leads.map(\.email)), .textArray(leads.map(\.linkedinURL)),
            .textArray(leads.map(\.firstName)), .textArray(leads.map(\.lastName)), .textArray(leads.map(\.name)),
            .textArray(leads.map(\.company)), .textArray(leads.map(\.position)), .textArray(leads.map(\.headline)),
            .textArray(leads.map(\.customFields)),
        ]
    }

    /// `{"total": N, "<status>": N, ...}` over the campaign's leads, in one statement.
    public func recomputeStats(on connection: Connection) throws {
        try Self.recomputeStats(campaignID: target.campaignID, on: connection)
    }

    public static func recomputeStats(campaignID: String, on connection: Connection) throws {
        _ = try connection.query("UPDATE campaigns SET updated_at = now(), stats = \(stats(of: "$1")) WHERE id = $1", [campaignID])
    }

    /// The stats of the campaign whose id `campaign` (an SQL expression) is, as a subquery.
    static func stats(of campaign: String) -> String {
        """
        (
            SELECT jsonb_build_object('total', COALESCE(sum(n), 0)) || COALESCE(jsonb_object_agg(status, n), '{}'::jsonb)
            FROM (SELECT status, count(*) AS n FROM campaign_leads WHERE campaign_id = \(campaign) GROUP BY status) AS by_status
        )
        """
    }
}
