import LeadCore
import Postgres

/// The lookups an import begins with: what a token grants, and the target a user names.
public enum Access {
    /// The user's campaign and list, in the contract's order: campaign, list, draft.
    public static func target(user: String, campaign: String, list: String, on connection: Connection) throws -> Result<ImportTarget, RequestError> {
        let result = try connection.query("""
            SELECT $1::uuid, c.channel, c.status, l.storage
            FROM (SELECT 1) AS one
            LEFT JOIN campaigns c ON c.id = $2 AND c.user_id = $1
            LEFT JOIN lists l ON l.id = $3 AND l.user_id = $1
            """, [user, campaign, list])
        return try decide(result.first!, campaign: campaign, list: list)
    }

    /// What a bearer token grants for this request, in one round trip: the token's user (nil:
    /// unknown, revoked or expired) and, when the ids passed the request's own checks, the
    /// target. `last_used_at` is written only when it is more than a minute old, by a statement
    /// of its own, so a busy token costs no write per request, and by one request only.
    public static func authorize(tokenHash: [UInt8], ids: ImportIDs?, on connection: Connection) throws -> TokenGrant? {
        let result = try connection.query(authorizeSQL, values: [.bytea(tokenHash), PostgresValue(ids?.campaign), PostgresValue(ids?.list)])
        guard let row = result.first else { return nil }
        try touchWhenStale(row, on: connection)
        let user = try row.requiredString(0)
        guard let ids else { return TokenGrant(user: user, target: nil) }
        return TokenGrant(user: user, target: try decide(row, campaign: ids.campaign, list: ids.list))
    }

    static let authorizeSQL = liveToken + """
        SELECT live.user_id, c.channel, c.status, l.storage, \(tokenColumns)
        FROM live
        LEFT JOIN campaigns c ON c.id = $2::uuid AND c.user_id = live.user_id
        LEFT JOIN lists l ON l.id = $3::uuid AND l.user_id = live.user_id
        """

    /// `live`: the token whose hash is `$1`, when it counts (one row or none), with its id and
    /// whether its `last_used_at` is more than a minute old (`stale`: see `touchWhenStale`). The
    /// start of every statement that authorizes a request. Nothing here writes: an update in
    /// the statement, even one that changes no row, cost a third of the token's statement.
    static let liveToken = """
        WITH live AS (
            SELECT id, user_id, last_used_at IS NULL OR last_used_at < now() - interval '1 minute' AS stale FROM tokens
            WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
        )

        """

    /// What every statement that starts with `liveToken` selects for `touchWhenStale`.
    public static let tokenColumns = "live.id AS token_id, live.stale AS token_stale"

    /// Keeps the token's `last_used_at` fresh when the statement that authorized the request
    /// (with `tokenColumns`) found it more than a minute old: one more statement a minute for a
    /// busy token, none for the others.
    public static func touchWhenStale(_ row: Row, on connection: Connection) throws {
        guard try row.requiredBool("token_stale") else { return }
        _ = try connection.query(touchSQL, [try row.requiredString("token_id")])
    }

    /// At most one writer a minute per token, and nobody waits for it: when the minute turns,
    /// every concurrent request sees a stale `last_used_at`, and queueing them all on the token's
    /// row lock stalled them.
    static let touchSQL = """
        UPDATE tokens SET last_used_at = now()
        WHERE id IN (
            SELECT t.id FROM tokens t
            WHERE t.id = $1 AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute')
            FOR UPDATE SKIP LOCKED
        )
        """

    /// Columns: user, channel, status, storage.
    static func decide(_ row: Row, campaign: String, list: String) throws -> Result<ImportTarget, RequestError> {
        do {
            return try ImportTarget.verdict(user: try row.requiredString(0), campaign: campaign, list: list,
                                            channel: try row.string(1), status: try row.string(2), storage: try row.string(3))
        } catch let unknown as ImportTarget.UnknownKind {
            throw PostgresError(kind: .decoding, message: unknown.message)
        }
    }
}

/// What a live bearer token grants for one request.
public struct TokenGrant: Sendable, Equatable {
    /// The token's user.
    public let user: String
    /// The verdict on the request's campaign and list; nil when no ids were asked about.
    public let target: Result<ImportTarget, RequestError>?

    public init(user: String, target: Result<ImportTarget, RequestError>?) {
        self.user = user
        self.target = target
    }
}
