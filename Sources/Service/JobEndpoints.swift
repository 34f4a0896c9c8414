import HTTP
import Importer
import LeadCore
import Platform
import Postgres
import Store

/// Import jobs over HTTP (docs/jobs.md): recording one for `POST ... import-from-list`
/// with `Prefer: respond-async`, and `/api/imports/{jobId}` (GET, DELETE) with its
/// `/rejections` (GET). Checked in the import's order (docs/api.md): method, token, then the request's own
/// checks, then what the database answers.
struct JobEndpoints: Sendable {
    let pool: ConnectionPool
    let store: JobStore
    /// Told of every job recorded here: this process's runner, if idle, takes it up at once.
    let jobRecorded: @Sendable () -> Void
    /// Told of every job a DELETE here ended.
    let jobCancelled: @Sendable () -> Void

    // MARK: POST with Prefer: respond-async

    /// Every check of sections 1 and 4, then the job: 202 with it, or the key's or the queue's
    /// refusal. `ids` is the request's own verdict, given only after the token's.
    func record(_ request: HTTPRequest, tokenHash: [UInt8], ids: Result<ImportIDs, RequestError>) -> (HTTPResponse, String) {
        let answer: Result<JobCreation, RequestError>
        do {
            answer = try pool.withConnection(waitLimit: remainingWait(since: request.received, pool: pool)) { connection in
                guard let grant = try Access.authorize(tokenHash: tokenHash, ids: try? ids.get(), on: connection) else {
                    return .failure(.unauthorized)
                }
                let target: ImportTarget
                switch (ids, grant.target) {
                case (.failure(let error), _), (_, .failure(let error)?): return .failure(error)
                case (.success, nil): return .failure(.internalError)
                case (.success, .success(let granted)?): target = granted
                }
                var key: IdempotencyKey?
                if let header = request.headers["idempotency-key"] {
                    guard let valid = IdempotencyKey(header) else { return .failure(IdempotencyKey.invalid) }
                    key = valid
                }
                // The body passed its checks; the job keeps its filter and dryRun as given, to echo them.
                let body = try? ImportRequest.body(request.body).get()
                return .success(try store.record(NewImportJob(
                    user: target.userID, campaign: target.campaignID, list: target.listID,
                    filter: body?.filterAsGiven, dryRun: body?.dryRun, key: key,
                    fingerprint: RequestFingerprint.of(campaign: target.campaignID, body: request.body)
                ), on: connection))
            }
        } catch {
            let failure = LeadImporter.lookupFailure(error)
            return (Application.answer(failure), failure.code)
        }
        switch answer {
        case .failure(let error):
            return (ImportEndpoint.answer(error, hadToken: true), error.code)
        case .success(let creation):
            guard let job = creation.job else {
                let error = creation.error ?? .internalError
                return (Application.answer(error), error.code)
            }
            if case .created = creation {
                Log.info("job queued", ["job_id": job.id, "campaign": job.campaignID, "list": job.listID])
                jobRecorded()
            }
            return (.json(202, job.body, headers: [
                ("Location", Self.location(of: job.id)),
                ("Preference-Applied", AsyncPreference.applied),
            ]), "job=\(job.id) \(creation.summary)")
        }
    }

    static func location(of jobID: String) -> String { "/api/imports/" + jobID }

    // MARK: /api/imports/{jobId}[/rejections]

    func respond(to request: HTTPRequest, segment: Substring, resource: ImportJobPath.Resource) -> (HTTPResponse, String) {
        let hadToken = ImportEndpoint.attemptsBearer(request.headers["authorization"])
        let methods: Set<String> = resource == .job ? ["GET", "DELETE"] : ["GET"]
        guard methods.contains(request.method) else {
            let error = RequestError.methodNotAllowed(allow: resource.allow)
            return (Application.answer(error), error.code)
        }
        guard let token = ImportRequest.bearerToken(fromAuthorization: request.headers["authorization"]) else {
            return (ImportEndpoint.answer(.unauthorized, hadToken: hadToken), RequestError.unauthorized.code)
        }
        let tokenHash = SHA256.hash(token)
        // The request's own checks, answered after the token's.
        let own: Result<(id: String, page: RejectionsRequest), RequestError> = ImportJobPath.jobID(segment).flatMap { id in
            resource == .rejections ? RejectionsRequest.parse(query: request.query).map { (id, $0) } : .success((id, RejectionsRequest()))
        }
        let answer: Result<(body: String, summary: String), RequestError>
        do {
            answer = try pool.withConnection(waitLimit: remainingWait(since: request.received, pool: pool)) { connection in
                if resource == .job, request.method == "GET", case .success(let checked) = own {
                    // The endpoint clients poll: token and job in one round trip.
                    switch try store.job(id: checked.id, tokenHash: tokenHash, on: connection) {
                    case .unauthorized: return .failure(.unauthorized)
                    case .authorized(_, nil): return .failure(.importNotFound)
                    case .authorized(_, let record?): return .success((record.job.body, Self.summary(record.job)))
                    }
                }
                guard let user = try Access.authorize(tokenHash: tokenHash, ids: nil, on: connection)?.user else {
                    return .failure(.unauthorized)
                }
                let checked: (id: String, page: RejectionsRequest)
                switch own {
                case .failure(let error): return .failure(error)
                case .success(let passed): checked = passed
                }
                switch resource {
                case .job:
                    guard let record = try store.cancel(id: checked.id, user: user, on: connection) else { return .failure(.importNotFound) }
                    if record.cancelledNow { jobCancelled() }
                    return .success((record.job.body, Self.summary(record.job)))
                case .rejections:
                    guard let page = try store.rejections(id: checked.id, user: user, request: checked.page, on: connection) else {
                        return .failure(.importNotFound)
                    }
                    return .success((page.body, "job=\(checked.id) items=\(page.items.count)"))
                }
            }
        } catch {
            let failure = LeadImporter.lookupFailure(error)
            return (Application.answer(failure), failure.code)
        }
        switch answer {
        case .failure(let error): return (ImportEndpoint.answer(error, hadToken: true), error.code)
        case .success(let found): return (.json(200, found.body), found.summary)
        }
    }

    static func summary(_ job: ImportJob) -> String {
        let counts = job.counts
        return "job=\(job.id) state=\(job.state.rawValue) imported=\(counts.imported) duplicates=\(counts.duplicates) "
            + "invalid=\(counts.invalid) errors=\(counts.errors) total=\(counts.total)"
    }
}

extension JobCreation {
    /// For the request's log line.
    var summary: String {
        switch self {
        case .created: return "recorded"
        case .existing: return "existing"
        case .keyReused: return "key_reused"
        case .tooManyQueued: return "too_many"
        }
    }
}
