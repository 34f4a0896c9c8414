#if canImport(Glibc)
import Glibc
#endif
import LeadCore
import Platform
import Postgres

/// Writes candidate leads into a campaign, a batch per statement, each committed on its own.
/// The database decides inserted versus duplicate (`ON CONFLICT DO NOTHING ... RETURNING`); a
/// batch that fails for another reason is split until only the rows that really cannot be
/// inserted are left, and those are the errors.
public struct CampaignWriter: Sendable {
    public let target: ImportTarget

    public init(target: ImportTarget) { self.target = target }

    static let insertSQL = """
        INSERT INTO campaign_leads (campaign_id, user_id, status, email, linkedin_url, first_name, last_name, name,
                                    company, position, headline, source, source_ref, custom_fields)
        SELECT $1, $2, 'pending', t.email, t.linkedin_url, t.first_name, t.last_name, t.name,
               t.company, t.position, t.headline, 'list', $3, t.custom_fields::jsonb
        FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
             AS t(email, linkedin_url, first_name, last_name, name, company, position, headline, custom_fields)
        ON CONFLICT (campaign_id, identity_key) DO NOTHING
        """

    /// Counts for `leads`: imported, duplicates and errors add up to `leads.count`. Throws only
    /// when the connection itself is lost: the caller decides what the rest of the import does.
    public func insert(_ leads: ArraySlice<CandidateLead>, on connection: Connection) throws -> ImportCounts {
        guard !leads.isEmpty else { return ImportCounts() }
        var attempts = 0
        while true {
            do {
                // The command tag counts only the rows inserted; a conflict inserts nothing.
                let inserted = try connection.query(Self.insertSQL, values: parameters(leads)).affectedRows
                return ImportCounts(imported: inserted, duplicates: leads.count - inserted)
            } catch let error as PostgresError {
                if error.isConnectionProblem { throw error }
                // Concurrent imports of overlapping lists can deadlock on the unique index, or
                // wait on each other past the lock timeout; the batch did nothing, so doing it
                // again is safe.
                if error.isDeadlockDetected || error.isSerializationFailure || error.isLockNotAvailable, attempts < 5 {
                    attempts += 1
                    usleep(UInt32(10_000 * attempts))
                    continue
                }
                if leads.count == 1 {
                    Log.warning("lead not inserted", [
                        "campaign": target.campaignID, "sqlstate": error.sqlState ?? "-",
                        "constraint": error.constraint ?? "-",
                    ])
                    return ImportCounts(errors: 1)
                }
                let middle = leads.startIndex + leads.count / 2
                return try insert(leads[..<middle], on: connection) + insert(leads[middle...], on: connection)
            }
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
