import HTTP
import Importer
import LeadCore
import Metrics
import Platform
import Postgres

/// `POST /api/campaigns/{campaignId}/leads/import-from-list`: the contract's checks in its
/// order (method, token, campaign id, content type and size, body, campaign, list, draft), then
/// the import.
public struct ImportEndpoint: Sendable {
    let pool: ConnectionPool
    let importer: any ListImport
    /// Where a request with `Prefer: respond-async` goes once its own checks are done.
    let jobs: JobEndpoints
    let metrics: ServiceMetrics

    init(pool: ConnectionPool, importer: any ListImport, jobs: JobEndpoints, metrics: ServiceMetrics) {
        self.pool = pool
        self.importer = importer
        self.jobs = jobs
        self.metrics = metrics
    }

    /// The response and a short summary of the outcome for the request's log line.
    func respond(to request: HTTPRequest, campaignSegment: Substring) -> (HTTPResponse, String) {
        // nginx passes HTTP_AUTHORIZATION (empty) even when the header is absent.
        let hadToken = Self.attemptsBearer(request.headers["authorization"])
        if let error = ImportRequest.checkMethod(request.method) { return (Self.answer(error, hadToken: hadToken), error.code) }
        guard let token = ImportRequest.bearerToken(fromAuthorization: request.headers["authorization"]) else {
            return (Self.answer(.unauthorized, hadToken: hadToken), RequestError.unauthorized.code)
        }
        // The request's own checks need no database, so they run first; their verdict is given
        // only after the token's, as the contract orders them.
        let ids = Self.check(request, campaignSegment: campaignSegment)
        if AsyncPreference.requested(request.headers["prefer"]) {
            return jobs.record(request, tokenHash: SHA256.hash(token), ids: ids)
        }
        let order = ImportOrder(tokenHash: SHA256.hash(token), ids: ids, waitLimit: remainingWait(since: request.received, pool: pool),
                                becomesLong: request.becomesLong)
        let outcome: ImportOutcome
        switch importer.importList(order) {
        case .refused(let error):
            return (Self.answer(error, hadToken: true), error.code)
        case .imported(let imported):
            outcome = imported
        }
        let counts = outcome.counts
        metrics.importAnswered(status: outcome.status, dryRun: outcome.dryRun, imported: counts.imported, duplicates: counts.duplicates,
                               invalid: counts.invalid, errors: counts.errors)
        let summary = "imported=\(counts.imported) duplicates=\(counts.duplicates) invalid=\(counts.invalid) errors=\(counts.errors) total=\(counts.total)"
        // Cut by a stop or reload: the rest is for a retry, which another process takes.
        let headers: [(String, String)] = outcome.end == .stopped(.serviceStopping) ? [("Retry-After", "1")] : []
        return (.json(outcome.status, outcome.body, headers: headers), summary)
    }

    /// Campaign id, content type and size, body: the checks that need nothing but the request.
    static func check(_ request: HTTPRequest, campaignSegment: Substring) -> Result<ImportIDs, RequestError> {
        let campaign: String
        switch ImportRequest.campaignID(campaignSegment) {
        case .failure(let error): return .failure(error)
        case .success(let id): campaign = id
        }
        if let error = ImportRequest.checkContentType(request.headers["content-type"]) { return .failure(error) }
        if let error = ImportRequest.checkSize(exceedsLimit: request.bodyExceedsLimit, byteCount: request.body.count) { return .failure(error) }
        switch ImportRequest.body(request.body) {
        case .failure(let error): return .failure(error)
        case .success(let body):
            return .success(ImportIDs(campaign: campaign, list: body.listID, choice: body.choice))
        }
    }

    /// Whether the request tried the Bearer scheme at all. RFC 6750, 3.1: a request without any
    /// bearer credentials (no header, or another scheme such as Basic) gets a challenge without an
    /// error code.
    static func attemptsBearer(_ authorization: String?) -> Bool {
        guard let authorization else { return false }
        let value = authorization.drop(while: { $0 == " " || $0 == "\t" })
        return value.prefix(while: { $0 != " " && $0 != "\t" }).lowercased() == "bearer"
    }

    /// RFC 6750: a request with no bearer token gets a bare challenge; one with a bad token is told
    /// `invalid_token`.
    static func answer(_ error: RequestError, hadToken: Bool) -> HTTPResponse {
        guard error.status == 401 else { return Application.answer(error) }
        return hadToken ? Self.invalidToken : Self.noToken
    }

    /// Made once: the 401 is the answer most often given, to anyone.
    static let noToken = HTTPResponse.json(401, RequestError.unauthorized.body,
                                           headers: [("WWW-Authenticate", #"Bearer realm="leadimport""#)])
    static let invalidToken = HTTPResponse.json(401, RequestError.unauthorized.body, headers: [(
        "WWW-Authenticate",
        #"Bearer realm="leadimport", error="invalid_token", error_description="the token is unknown, revoked or expired""#
    )])
}
