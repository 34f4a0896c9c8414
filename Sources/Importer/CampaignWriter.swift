import LeadCore
import Platform
import Postgres

/// Writes candidate leads into a campaign, one batch per transaction.
///
/// Each attempt is `BEGIN`, one statement, `COMMIT`. The statement first takes a share lock on the
/// campaign and refuses to insert unless it is still a draft (`leadimport_campaign_accepts_leads`),
/// so no batch commits into a campaign that stopped being a draft or was deleted, and the status
/// cannot change until the batch has committed. The database decides inserted versus duplicate
/// (`ON CONFLICT DO NOTHING`), and the statement hands back its transaction id before `COMMIT` is
/// sent: should the connection be lost while committing, `commitStatus` learns from any connection
/// whether the batch is in.
public struct CampaignWriter: Sendable {
    public let target: ImportTarget

    public init(target: ImportTarget) { self.target = target }

    static let insertSQL = """
        WITH inserted AS (
            INSERT INTO campaign_leads (campaign_id, user_id, status, email, linkedin_url, first_name, last_name, name,
                                        company, position, headline, source, source_ref, custom_fields)
            SELECT $1, $2, 'pending', t.email, t.linkedin_url, t.first_name, t.last_name, t.name,
                   t.company, t.position, t.headline, 'list', $3, t.custom_fields::jsonb
            FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
                 AS t(email, linkedin_url, first_name, last_name, name, company, position, headline, custom_fields)
            -- Evaluated once, before any row: a sub-select without outer references is an init plan.
            WHERE (SELECT leadimport_campaign_accepts_leads($1::uuid))
            ON CONFLICT (campaign_id, identity_key) DO NOTHING
            RETURNING 1
        )
        SELECT count(*), pg_current_xact_id()::text FROM inserted
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

    /// The connection broke during an attempt. `commit` is set when the attempt got as far as
    /// `COMMIT`: it may have committed, and `commitStatus` tells.
    public struct LostAttempt: Error, Sendable {
        public var commit: (transaction: String, inserted: Int)?
        public var error: any Error
    }

    /// One attempt at `leads` on `connection`. Throws `LostAttempt` when the connection is lost.
    public func attempt(_ leads: ArraySlice<CandidateLead>, on connection: Connection) throws -> Attempt {
        guard !leads.isEmpty else { return .inserted(0) }
        var commit: (transaction: String, inserted: Int)?
        do {
            try connection.transaction { connection in
                let row = try connection.query(Self.insertSQL, values: parameters(leads)).rows.first
                guard let row else { throw PostgresError(kind: .decoding, message: "the batch insert returned no row") }
                commit = (try row.requiredString(1), try row.requiredInt(0))
            }
            return .inserted(commit?.inserted ?? 0)
        } catch let error as PostgresError {
            if error.isConnectionProblem || connection.isBroken { throw LostAttempt(commit: commit, error: error) }
            return Self.classify(error)
        }
    }

    /// What a failed batch statement means for the import (not a lost connection).
    static func classify(_ error: PostgresError) -> Attempt {
        switch error.sqlState {
        case "LI001": return .refused(.campaignNotDraft)
        // The campaign, or its owner with it, was deleted: every row would fail its foreign key.
        case "LI002", "23503": return .refused(.campaignGone)
        default: break
        }
        if error.isDeadlockDetected || error.isSerializationFailure || error.isLockNotAvailable || error.isQueryCanceled {
            return .transient(error)
        }
        return .failed(error)
    }

    public enum CommitStatus: Sendable, Equatable { case committed, aborted, unknown }

    /// Whether the transaction of a lost attempt committed; `unknown` while it is still in
    /// progress (its backend has not noticed the lost connection yet).
    public func commitStatus(_ transaction: String, on connection: Connection) throws -> CommitStatus {
        let status = try connection.query("SELECT pg_xact_status($1::xid8)", [transaction]).rows.first?.string(0)
        switch status {
        case "committed": return .committed
        case "aborted": return .aborted
        default: return .unknown
        }
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
        _ = try connection.query("""
            UPDATE campaigns SET updated_at = now(), stats = (
                SELECT jsonb_build_object('total', COALESCE(sum(n), 0)) || COALESCE(jsonb_object_agg(status, n), '{}'::jsonb)
                FROM (SELECT status, count(*) AS n FROM campaign_leads WHERE campaign_id = $1 GROUP BY status) AS by_status
            )
            WHERE id = $1
            """, [target.campaignID])
    }
}
