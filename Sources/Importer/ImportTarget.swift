import LeadCore
import Postgres

/// The campaign and list an import reads and writes, checked against their owner: what belongs
/// to someone else is reported exactly as what does not exist.
public struct ImportTarget: Sendable, Equatable {
    public enum Storage: String, Sendable { case rows, leads }

    public let userID: String
    public let campaignID: String
    public let listID: String
    public let channel: Channel
    public let storage: Storage

    public init(userID: String, campaignID: String, listID: String, channel: Channel, storage: Storage) {
        self.userID = userID
        self.campaignID = campaignID
        self.listID = listID
        self.channel = channel
        self.storage = storage
    }

    /// The user's campaign and list, in the contract's order: campaign, list, draft.
    public static func resolve(user: String, campaign: String, list: String, on connection: Connection) throws -> Result<ImportTarget, RequestError> {
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
    /// target. `last_used_at` is written in the same statement only when it is more than a minute
    /// old, so a busy token costs no write per request, and by one request only.
    public static func authorize(tokenHash: [UInt8], campaign: String?, list: String?, on connection: Connection) throws
        -> (user: String, target: Result<ImportTarget, RequestError>?)? {
        let result = try connection.query(authorizeSQL, values: [.bytea(tokenHash), PostgresValue(campaign), PostgresValue(list)])
        guard let row = result.first else { return nil }
        let user = try row.requiredString(0)
        guard let campaign, let list else { return (user, nil) }
        return (user, try decide(row, campaign: campaign, list: list))
    }

    static let authorizeSQL = """
        WITH live AS (
            SELECT id, user_id, last_used_at FROM tokens
            WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
        ), touched AS (
            -- At most one writer a minute per token, and nobody waits for it: when the minute
            -- turns, every concurrent request sees a stale last_used_at, and queueing them all
            -- on the token's row lock stalled requests for hundreds of milliseconds.
            UPDATE tokens SET last_used_at = now()
            WHERE tokens.id IN (
                SELECT t.id FROM tokens t JOIN live ON t.id = live.id
                WHERE t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'
                FOR UPDATE OF t SKIP LOCKED
            )
            RETURNING tokens.id
        )
        SELECT live.user_id, c.channel, c.status, l.storage
        FROM live
        LEFT JOIN campaigns c ON c.id = $2::uuid AND c.user_id = live.user_id
        LEFT JOIN lists l ON l.id = $3::uuid AND l.user_id = live.user_id
        """

    /// Columns: user, channel, status, storage.
    static func decide(_ row: Row, campaign: String, list: String) throws -> Result<ImportTarget, RequestError> {
        guard let channelText = try row.string(1) else { return .failure(.campaignNotFound) }
        guard let storageText = try row.string(3) else { return .failure(.listNotFound) }
        guard try row.string(2) == "draft" else { return .failure(.campaignNotDraft) }
        guard let channel = Channel(rawValue: channelText), let storage = Storage(rawValue: storageText) else {
            throw PostgresError(kind: .decoding, message: "unknown campaign channel or list storage")
        }
        return .success(ImportTarget(userID: try row.requiredString(0), campaignID: campaign, listID: list, channel: channel, storage: storage))
    }
}
