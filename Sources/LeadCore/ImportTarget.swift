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

    /// A campaign channel or list storage the schema's CHECKs should have kept out.
    public struct UnknownKind: Error, Sendable, Equatable {
        public let message: String
    }

    /// The verdict on a request's campaign and list, in the contract's order: campaign, list,
    /// draft. The values are the user's campaign's channel and status and the user's list's
    /// storage, nil where the user has no such campaign or list.
    public static func verdict(user: String, campaign: String, list: String, channel: String?, status: String?,
                               storage: String?) throws(UnknownKind) -> Result<ImportTarget, RequestError> {
        guard let channel else { return .failure(.campaignNotFound) }
        guard let storage else { return .failure(.listNotFound) }
        guard status == "draft" else { return .failure(.campaignNotDraft) }
        guard let known = Channel(rawValue: channel), let kind = Storage(rawValue: storage) else {
            throw UnknownKind(message: "unknown campaign channel or list storage")
        }
        return .success(ImportTarget(userID: user, campaignID: campaign, listID: list, channel: known, storage: kind))
    }
}
