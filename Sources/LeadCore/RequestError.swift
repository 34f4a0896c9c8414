/// An answer for a request that never reaches an import: `{"error": code, "message": text}`.
public struct RequestError: Error, Equatable, Sendable {
    public let status: Int
    public let code: String
    public let message: String
    /// The methods a 405 names in its `Allow` header.
    public let allow: String?

    public init(status: Int, code: String, message: String, allow: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.allow = allow
    }

    public var body: String {
        var json = JSONObjectWriter()
        json.add("error", code)
        json.add("message", message)
        return json.result
    }

    public static let methodNotAllowed = methodNotAllowed(allow: "POST")
    public static func methodNotAllowed(allow: String) -> RequestError {
        RequestError(status: 405, code: "method_not_allowed", message: "this endpoint accepts \(allow) only", allow: allow)
    }
    public static let unauthorized = RequestError(status: 401, code: "unauthorized", message: "a valid bearer token is required")
    public static let invalidCampaignID = RequestError(status: 400, code: "invalid_campaign_id", message: "the campaign id in the path is not a valid UUID")
    public static let unsupportedMediaType = RequestError(status: 415, code: "unsupported_media_type", message: "send the body as application/json")
    public static let payloadTooLarge = RequestError(status: 413, code: "payload_too_large",
                                                     message: "the request body is larger than \(ImportRequest.bodyLimit / 1024) KiB")
    public static let invalidJSON = RequestError(status: 400, code: "invalid_json", message: "the body must be a JSON object")
    public static let invalidListID = RequestError(status: 400, code: "invalid_list_id", message: "listId must be a string holding a valid UUID")
    /// The message names the offending part of the filter (`filter.where[2].field`).
    public static func invalidFilter(_ message: String) -> RequestError {
        RequestError(status: 400, code: "invalid_filter", message: message)
    }
    public static let invalidDryRun = RequestError(status: 400, code: "invalid_dry_run", message: "dryRun must be true or false")
    public static let campaignNotFound = RequestError(status: 404, code: "campaign_not_found", message: "no such campaign")
    public static let listNotFound = RequestError(status: 404, code: "list_not_found", message: "no such list")
    public static let campaignNotDraft = RequestError(status: 400, code: "campaign_not_draft", message: "only a campaign in draft status accepts leads")
    public static let notFound = RequestError(status: 404, code: "not_found", message: "no such endpoint")
    public static let unavailable = RequestError(status: 503, code: "unavailable", message: "the database cannot be reached; retry shortly")
    public static let internalError = RequestError(status: 500, code: "internal", message: "internal error")
}
