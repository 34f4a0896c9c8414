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
    let tokens = TokenStore()

    public init(pool: ConnectionPool, settings: Settings) {
        self.pool = pool
        self.importer = LeadImporter(pool: pool, pageSize: settings.pageSize, batchSize: settings.batchSize)
    }

    /// The response and a short summary of the outcome for the request's log line.
    func respond(to request: HTTPRequest, campaignSegment: Substring) throws -> (HTTPResponse, String) {
        switch prepare(request, campaignSegment: campaignSegment) {
        case .failure(let error):
            return (answer(error, hadToken: Self.attemptsBearer(request.headers["authorization"])), error.code)
        case .success(let target):
            let outcome: ImportOutcome
            do {
                outcome = try importer.run(target)
            } catch is PoolError {
                return (Application.answer(.unavailable), RequestError.unavailable.code)
            }
            let counts = outcome.counts
            let summary = "imported=\(counts.imported) duplicates=\(counts.duplicates) invalid=\(counts.invalid) errors=\(counts.errors) total=\(counts.total)"
            return (.json(outcome.status, outcome.body), summary)
        }
    }

    func prepare(_ request: HTTPRequest, campaignSegment: Substring) -> Result<ImportTarget, RequestError> {
        if let error = ImportRequest.checkMethod(request.method) { return .failure(error) }
        guard let token = ImportRequest.bearerToken(fromAuthorization: request.headers["authorization"]) else {
            return .failure(.unauthorized)
        }
        // The token is checked before anything about the request is revealed, so its check
        // needs the database first.
        let user: String?
        do {
            user = try pool.withConnection { try tokens.authenticate(token, on: $0) }
        } catch {
            return .failure(Self.databaseFailure(error))
        }
        guard let user else { return .failure(.unauthorized) }

        let campaign: String
        switch ImportRequest.campaignID(campaignSegment) {
        case .failure(let error): return .failure(error)
        case .success(let id): campaign = id
        }
        if let error = ImportRequest.checkContentType(request.headers["content-type"]) { return .failure(error) }
        if let error = ImportRequest.checkSize(exceedsLimit: request.bodyExceedsLimit, byteCount: request.body.count) { return .failure(error) }
        let list: String
        switch ImportRequest.listID(fromBody: request.body) {
        case .failure(let error): return .failure(error)
        case .success(let id): list = id
        }
        do {
            return try pool.withConnection { try ImportTarget.resolve(user: user, campaign: campaign, list: list, on: $0) }
        } catch {
            return .failure(Self.databaseFailure(error))
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
        let challenge = hadToken
            ? #"Bearer realm="leadimport", error="invalid_token", error_description="the token is unknown, revoked or expired""#
            : #"Bearer realm="leadimport""#
        return .json(401, error.body, headers: [("WWW-Authenticate", challenge)])
    }
}
