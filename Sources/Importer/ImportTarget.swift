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

    /// One round trip for both lookups; the contract's order (campaign, list, draft) is applied
    /// to the answer.
    public static func resolve(user: String, campaign: String, list: String, on connection: Connection) throws -> Result<ImportTarget, RequestError> {
        let result = try connection.query("""
            SELECT c.channel, c.status, l.storage
            FROM (SELECT 1) AS one
            LEFT JOIN campaigns c ON c.id = $2 AND c.user_id = $1
            LEFT JOIN lists l ON l.id = $3 AND l.user_id = $1
            """, [user, campaign, list])
        let row = result.first!
        guard let channelText = try row.string(0) else { return .failure(.campaignNotFound) }
        guard let storageText = try row.string(2) else { return .failure(.listNotFound) }
        guard try row.string(1) == "draft" else { return .failure(.campaignNotDraft) }
        guard let channel = Channel(rawValue: channelText), let storage = Storage(rawValue: storageText) else {
            throw PostgresError(kind: .decoding, message: "unknown campaign channel or list storage")
        }
        return .success(ImportTarget(userID: user, campaignID: campaign, listID: list, channel: channel, storage: storage))
    }
}
