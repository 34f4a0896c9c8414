import LeadCore
import Postgres

/// What a dry run's batches would come to, counted on one connection without writing anything
/// another session can see: the identities the run would have inserted so far live in a
/// temporary table of the session (never WAL-logged, gone with the session), so a repeat of any
/// earlier member of the selection counts as the duplicate the real import would make it, and
/// the run's memory stays a page's whatever the list's length.
public struct DryRunLedger {
    public let target: ImportTarget
    let connection: Connection

    /// Starts a ledger on `connection`, which the run keeps until `close`.
    public init(target: ImportTarget, on connection: Connection) throws {
        self.target = target
        self.connection = connection
        // A table left by a run whose close failed on this pooled connection is started afresh.
        _ = try connection.queryUnprepared("DROP TABLE IF EXISTS pg_temp.leadimport_dry_run")
        // Byte order ("C"): the table only answers whether an identity is in it, and the
        // database's collation compared every key of its index through strcoll (docs/performance.md).
        _ = try connection.queryUnprepared("CREATE TEMPORARY TABLE leadimport_dry_run (identity text COLLATE \"C\" PRIMARY KEY)")
    }

    /// What a batch would come to: how many of `identities` (the batch's leads as `BatchPlanner`
    /// leaves them: a repeat within the batch is inserted once, as the unique index would have it)
    /// would be inserted, or why the real import would stop here.
    /// The campaign is read, not locked: a dry run holds nothing another writer could wait on.
    public func tally(_ identities: [String]) throws -> Tally {
        let row = try connection.query(Self.tallySQL, values: [.text(target.campaignID), .textArray(identities)]).first
        if let stop = ImportStop(campaignStatus: try row?.string(0)) { return .stopped(stop) }
        return .wouldImport(try row?.requiredInt(1) ?? 0)
    }

    public enum Tally: Equatable, Sendable {
        /// This many of the batch's leads would be inserted; the rest are duplicates.
        case wouldImport(Int)
        /// The real import would stop at this batch.
        case stopped(ImportStop)
    }

    static let tallySQL = """
        WITH campaign AS (
            SELECT status FROM campaigns WHERE id = $1::uuid
        ), fresh AS (
            -- Identities no earlier batch of the run would have inserted.
            INSERT INTO pg_temp.leadimport_dry_run (identity)
            SELECT DISTINCT i FROM unnest($2::text[]) AS i WHERE EXISTS (SELECT 1 FROM campaign WHERE status = 'draft')
            ON CONFLICT DO NOTHING
            RETURNING identity
        )
        SELECT (SELECT status FROM campaign),
               (SELECT count(*) FROM fresh f
                -- In the collation of the campaign's index, so that the index answers (equality is
                -- byte for byte in both).
                WHERE NOT EXISTS (SELECT 1 FROM campaign_leads l WHERE l.campaign_id = $1::uuid
                                  AND l.identity_key = f.identity COLLATE "default"))
        """

    /// Drops the table; a connection that cannot is let go by its pool, the table with it.
    public func close() {
        _ = try? connection.queryUnprepared("DROP TABLE IF EXISTS pg_temp.leadimport_dry_run")
    }
}
