/// The errors of the job endpoints, in the shape of the import's (docs/api.md, "Errors").
extension RequestError {
    public static let invalidImportID = RequestError(status: 400, code: "invalid_import_id", message: "the import id in the path is not a valid UUID")
    public static let importNotFound = RequestError(status: 404, code: "import_not_found", message: "no such import")
    public static let idempotencyKeyReused = RequestError(
        status: 422, code: "idempotency_key_reused",
        message: "this Idempotency-Key was used within 24 hours for another campaign or body")
    /// Answered with `Retry-After: JobAdmission.retryAfterSeconds`.
    public static let tooManyImports = RequestError(
        status: 429, code: "too_many_imports",
        message: "you have \(JobRules.queuedLimitPerUser) imports waiting; retry once some have started")
    public static let invalidCursor = RequestError(status: 400, code: "invalid_cursor", message: "after must be a cursor this API returned as next")
    public static let invalidLimit = RequestError(
        status: 400, code: "invalid_limit",
        message: "limit must be an integer from 1 to \(RejectionsRequest.limits.upperBound)")
}

/// `/api/imports/{jobId}` and `/api/imports/{jobId}/rejections`.
public enum ImportJobPath {
    public enum Resource: Equatable, Sendable {
        case job
        case rejections

        /// The methods each answers; another one is a 405 naming these in `Allow`.
        public var allow: String {
            switch self {
            case .job: return "GET, DELETE"
            case .rejections: return "GET"
            }
        }
    }

    /// The raw id segment and which resource, when the path has one of the two shapes, whatever
    /// the segment holds (a bad id is a 400, not an unknown path).
    public static func parse(_ path: String) -> (segment: Substring, resource: Resource)? {
        let prefix = "/api/imports/"
        guard path.hasPrefix(prefix) else { return nil }
        let rest = path.dropFirst(prefix.count)
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard let segment = parts.first, !segment.isEmpty else { return nil }
        switch parts.count {
        case 1: return (segment, .job)
        case 2 where parts[1] == "rejections": return (segment, .rejections)
        default: return nil
        }
    }

    public static func jobID(_ segment: Substring) -> Result<String, RequestError> {
        UUIDPattern.matches(segment) ? .success(String(segment)) : .failure(.invalidImportID)
    }
}
