/// The import endpoint's input checks that need no database, each a step of the contract's
/// order: method, token, campaign id, content type and size, body (then campaign, list, draft,
/// which the database answers).
public enum ImportRequest {
    public static let bodyLimit = 64 * 1024

    /// `/api/campaigns/{campaignId}/leads/import-from-list`: the raw id segment when the path has
    /// that shape, whatever the segment holds (a bad id is a 400, not an unknown path).
    public static func campaignSegment(inPath path: String) -> Substring? {
        let prefix = "/api/campaigns/", suffix = "/leads/import-from-list"
        guard path.hasPrefix(prefix), path.hasSuffix(suffix), path.utf8.count > prefix.utf8.count + suffix.utf8.count else { return nil }
        let segment = path.dropFirst(prefix.count).dropLast(suffix.count)
        return segment.contains("/") ? nil : segment
    }

    public static func checkMethod(_ method: String) -> RequestError? {
        method == "POST" ? nil : .methodNotAllowed
    }

    /// The token from an `Authorization: Bearer <token>` header (RFC 6750 b64token); nil when
    /// there is none or it is malformed.
    public static func bearerToken(fromAuthorization header: String?) -> String? {
        guard let header else { return nil }
        let value = trimmed(header)
        guard let space = value.firstIndex(of: " ") else { return nil }
        guard value[..<space].lowercased() == "bearer" else { return nil }
        let token = trimmed(value[value.index(after: space)...])
        guard !token.isEmpty, token.utf8.count <= 4096 else { return nil }
        var sawPadding = false
        for byte in token.utf8 {
            if byte == UInt8(ascii: "=") { sawPadding = true; continue }
            if sawPadding { return nil }
            let allowed = (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
                || "-._~+/".utf8.contains(byte)
            if !allowed { return nil }
        }
        return token
    }

    public static func campaignID(_ segment: Substring) -> Result<String, RequestError> {
        UUIDPattern.matches(segment) ? .success(String(segment)) : .failure(.invalidCampaignID)
    }

    /// JSON, with parameters, or absent (nginx sends an empty CONTENT_TYPE for absent).
    public static func checkContentType(_ contentType: String?) -> RequestError? {
        guard let contentType else { return nil }
        let mediaType = trimmed(contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        if mediaType.isEmpty && trimmed(contentType).isEmpty { return nil }
        return mediaType.lowercased() == "application/json" ? nil : .unsupportedMediaType
    }

    public static func checkSize(exceedsLimit: Bool, byteCount: Int) -> RequestError? {
        exceedsLimit || byteCount > bodyLimit ? .payloadTooLarge : nil
    }

    /// The body's checks in the contract's order: a JSON object, `listId`, `filter`, `dryRun`.
    /// Other keys are ignored.
    public static func body(_ bytes: [UInt8]) -> Result<ImportBody, RequestError> {
        guard let value = try? JSONReader.parse(bytes), case .object = value else { return .failure(.invalidJSON) }
        guard case .string(let listID)? = value["listId"], UUIDPattern.matches(listID) else { return .failure(.invalidListID) }
        let filter: ImportFilter
        switch ImportFilter.parse(value["filter"]) {
        case .failure(let error): return .failure(error)
        case .success(let parsed): filter = parsed
        }
        let dryRun: Bool?
        switch value["dryRun"] {
        case nil: dryRun = nil
        case .bool(let flag)?: dryRun = flag
        default: return .failure(.invalidDryRun)
        }
        return .success(ImportBody(listID: listID, filter: filter, filterAsGiven: value["filter"], dryRun: dryRun))
    }
}

/// What a request body asks for, once checked.
public struct ImportBody: Equatable, Sendable {
    public var listID: String
    public var filter: ImportFilter
    /// The `filter` as the body gave it (nil: no such key), echoed by a job.
    public var filterAsGiven: JSONValue?
    /// nil: no such key (false).
    public var dryRun: Bool?

    public init(listID: String, filter: ImportFilter = ImportFilter(), filterAsGiven: JSONValue? = nil, dryRun: Bool? = nil) {
        self.listID = listID
        self.filter = filter
        self.filterAsGiven = filterAsGiven
        self.dryRun = dryRun
    }

    /// What it asks of the list.
    public var choice: ImportChoice { ImportChoice(filter: filter, dryRun: dryRun == true) }
}

/// The campaign and list a request names, once they passed the request's own checks, and what
/// it asks of the list.
public struct ImportIDs: Sendable, Equatable {
    public let campaign: String
    public let list: String
    public var choice: ImportChoice

    public init(campaign: String, list: String, choice: ImportChoice = ImportChoice()) {
        (self.campaign, self.list, self.choice) = (campaign, list, choice)
    }
}

/// What a request asks of its list beyond "all of it, written" (docs/selection.md): the
/// filter's selection, and whether the import is only tried.
public struct ImportChoice: Sendable, Equatable {
    public var filter: ImportFilter
    public var dryRun: Bool

    public init(filter: ImportFilter = ImportFilter(), dryRun: Bool = false) {
        self.filter = filter
        self.dryRun = dryRun
    }

    /// The whole list, written: the import of docs/api.md, "Importing a list", unchanged.
    public var isWholeList: Bool { filter.selectsEverything && !dryRun }
}

