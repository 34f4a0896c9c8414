import FastCGIServer
import Importer
import LeadCore
import Platform
import Postgres

/// `POST /api/campaigns/{campaignId}/leads/import-from-list`: the contract's checks in its
/// order (method, token, campaign id, content type and size, body, campaign, list, draft), then
/// the import.
public struct ImportEndpoint: Sendable {
    public struct Settings: Sendable {
        public var pageSize = 1000
        public var batchSize = 500
        public init() {}
    }

    let pool: ConnectionPool
    let importer: LeadImporter

    public init(pool: ConnectionPool, settings: Settings, stopRequested: @escaping @Sendable () -> Bool = { false }) {
        self.pool = pool
        self.importer = LeadImporter(pool: pool, pageSize: settings.pageSize, batchSize: settings.batchSize,
                                     stopRequested: stopRequested)
    }

    /// The response and a short summary of the outcome for the request's log line.
    func respond(to request: HTTPRequest, campaignSegment: Substring) throws -> (HTTPResponse, String) {
        // nginx passes HTTP_AUTHORIZATION (empty) even when the header is absent.
        let hadToken = Self.attemptsBearer(request.headers["authorization"])
        if let error = ImportRequest.checkMethod(request.method) { return (answer(error, hadToken: hadToken), error.code) }
        guard let token = ImportRequest.bearerToken(fromAuthorization: request.headers["authorization"]) else {
            return (answer(.unauthorized, hadToken: hadToken), RequestError.unauthorized.code)
        }
        // The request's own checks need no database, so they run first; their verdict is given
        // only after the token's, as the contract orders them.
        let checked = Self.check(request, campaignSegment: campaignSegment)
        let ids = try? checked.get()
        let begun: Result<LeadImporter.Begun, RequestError>
        do {
            // One lease and one round trip for token, campaign and list; a list that fits in one
            // page is imported on the same connection.
            begun = try pool.withConnection(waitLimit: remainingWait(since: request.received, pool: pool)) { connection -> Result<LeadImporter.Begun, RequestError> in
                guard let access = try ImportTarget.authorize(tokenHash: SHA256.hash(token), campaign: ids?.campaign,
                                                              list: ids?.list, on: connection) else {
                    return .failure(.unauthorized)
                }
                if case .failure(let error) = checked { return .failure(error) }
                switch access.target! {
                case .failure(let error): return .failure(error)
                case .success(let target): return .success(importer.begin(target, on: connection))
                }
            }
        } catch {
            let failure = Self.databaseFailure(error)
            return (answer(failure, hadToken: true), failure.code)
        }
        let outcome: ImportOutcome
        switch begun {
        case .failure(let error):
            return (answer(error, hadToken: true), error.code)
        case .success(.finished(let finished)):
            outcome = finished
        case .success(.longer(let rest)):
            outcome = importer.finish(rest)
        }
        let counts = outcome.counts
        let summary = "imported=\(counts.imported) duplicates=\(counts.duplicates) invalid=\(counts.invalid) errors=\(counts.errors) total=\(counts.total)"
        // Cut by a stop or reload: the rest is for a retry, which another process takes.
        let headers: [(String, String)] = outcome.end == .stopped(.serviceStopping) ? [("Retry-After", "1")] : []
        return (.json(outcome.status, outcome.body, headers: headers), summary)
    }

    /// Campaign id, content type and size, body: the checks that need nothing but the request.
    static func check(_ request: HTTPRequest, campaignSegment: Substring) -> Result<(campaign: String, list: String), RequestError> {
        let campaign: String
        switch ImportRequest.campaignID(campaignSegment) {
        case .failure(let error): return .failure(error)
        case .success(let id): campaign = id
        }
        if let error = ImportRequest.checkContentType(request.headers["content-type"]) { return .failure(error) }
        if let error = ImportRequest.checkSize(exceedsLimit: request.bodyExceedsLimit, byteCount: request.body.count) { return .failure(error) }
        switch ImportRequest.listID(fromBody: request.body) {
        case .failure(let error): return .failure(error)
        case .success(let list): return .success((campaign, list))
        }
    }

    /// No pooled connection, a lost one, or a statement stopped by its timeout: the database
    /// cannot serve us now, and a retry later may succeed.
    static func databaseFailure(_ error: any Error) -> RequestError {
        if let error = error as? PostgresError, !error.isConnectionProblem, !error.isQueryCanceled, !error.isLockNotAvailable {
            Log.error("lookup failed", ["error": error.description])
            return .internalError
        }
        return .unavailable
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
    func answer(_ error: RequestError, hadToken: Bool) -> HTTPResponse {
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
