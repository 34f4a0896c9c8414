import HTTP
import Importer
import LeadCore
import Metrics
import Platform
import Postgres
import Store

/// Where a request becomes a response: the routes of the service and the one log line each
/// request leaves behind.
public final class Application: Sendable {
    let pool: ConnectionPool
    let imports: ImportEndpoint
    let jobs: JobEndpoints
    let metrics: ServiceMetrics
    /// The listening socket whose accept queue `/metrics` reports (nil: none to report).
    let listenFD: Int32?

    /// `stopRequested` turns true once the process is stopping: imports under way then stop at
    /// their next batch and answer 206 with what they committed.
    /// `jobRecorded` is told of every job a request recorded (the process's runner wakes).
    /// `metrics`: where this process counts (a region of its own unless given the supervisor's).
    public convenience init(pool: ConnectionPool, configuration: ServiceConfiguration = ServiceConfiguration(cores: 1),
                            metrics: ServiceMetrics? = nil, listenFD: Int32? = nil,
                            stopRequested: @escaping @Sendable () -> Bool = { false },
                            jobRecorded: @escaping @Sendable () -> Void = {}) {
        self.init(pool: pool, imports: configuration.importer(connections: pool, stopRequested: stopRequested),
                  metrics: metrics ?? ServiceMetrics(region: .ofThisProcess(), cell: 0, workers: configuration.workers,
                                                     slowRequest: configuration.slowRequest),
                  listenFD: listenFD, jobRecorded: jobRecorded)
    }

    /// With the import the endpoint calls: a test may hand its own.
    public init(pool: ConnectionPool, imports: any ListImport,
                metrics: ServiceMetrics = ServiceMetrics(region: .ofThisProcess(), cell: 0, workers: 1, slowRequest: .seconds(5)),
                listenFD: Int32? = nil, jobRecorded: @escaping @Sendable () -> Void = {}) {
        self.pool = pool
        self.metrics = metrics
        self.listenFD = listenFD
        jobs = JobEndpoints(pool: pool, store: JobStore(), jobRecorded: jobRecorded, jobCancelled: { metrics.jobEnded(.cancelled) })
        self.imports = ImportEndpoint(pool: pool, importer: imports, jobs: jobs, metrics: metrics)
    }

    /// Never throws and never leaves a request unanswered: a failure Swift can catch becomes a
    /// logged 500.
    public func respond(to request: HTTPRequest) -> HTTPResponse {
        // Every line this request causes, on any thread it starts, names it.
        LogContext.with(LogContext.Fields(requestID: request.requestID)) { respondInContext(to: request) }
    }

    private func respondInContext(to request: HTTPRequest) -> HTTPResponse {
        let started = MonotonicInstant.now()
        metrics.requestBegan()
        var summary = ""
        let response: HTTPResponse
        let destination = Destination(path: request.path)
        do {
            (response, summary) = try route(request, to: destination)
        } catch {
            Log.error("handler failed", ["path": request.path, "error": String(describing: type(of: error))])
            response = Self.answer(.internalError)
        }
        let elapsed = MonotonicInstant.now() - started
        // Counted from the request's arrival, as the client waits for it.
        let waited = MonotonicInstant.now() - request.received
        if metrics.requestEnded(route: destination.metricsRoute, status: response.status, elapsed: waited) {
            Log.warning("slow request", ["method": request.method, "path": request.path, "status": String(response.status),
                                         "ms": String(format3(waited.secondsDouble * 1000))])
        }
        // Never the Authorization header, in any form: method, path, status, time and counts only.
        Log.info("request", [
            "method": request.method,
            "path": request.path,
            "status": String(response.status),
            "ms": String(format3(elapsed.secondsDouble * 1000)),
            // Before the handler: in the socket's backlog (when nginx stamps REQUEST_START) and
            // in the worker queue.
            "queued_ms": String(format3((started - request.received).secondsDouble * 1000)),
            "request_id": request.requestID ?? "-",
            "outcome": summary.isEmpty ? "-" : summary,
        ])
        return response
    }

    func route(_ request: HTTPRequest, to destination: Destination) throws -> (HTTPResponse, String) {
        switch destination {
        case .metrics, .openAPI:
            guard request.method == "GET" || request.method == "HEAD" else {
                return (Self.answer(.methodNotAllowed(allow: "GET, HEAD")), "")
            }
            if destination == .metrics { return metrics.recording ? (scrape(), "") : (Self.answer(.notFound), "") }
            return (HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: PackageResources.openapi_json), "")
        case .health:
            guard request.method == "GET" || request.method == "HEAD" else {
                return (Self.answer(.methodNotAllowed(allow: "GET, HEAD")), "")
            }
            return (health(request), "")
        case .importFromList(let segment):
            return imports.respond(to: request, campaignSegment: segment)
        case .job(let segment, let resource):
            return jobs.respond(to: request, segment: segment, resource: resource)
        case .unknown:
            return (Self.answer(.notFound), "")
        }
    }

    /// Where a request's path leads, read once: the handler and the metrics' route both follow it.
    enum Destination: Equatable {
        case metrics, openAPI, health
        case importFromList(campaignSegment: Substring)
        case job(segment: Substring, resource: ImportJobPath.Resource)
        case unknown

        init(path: String) {
            switch path {
            case "/metrics": self = .metrics
            case "/api/openapi.json": self = .openAPI
            case "/healthz": self = .health
            default:
                if let segment = ImportRequest.campaignSegment(inPath: path) {
                    self = .importFromList(campaignSegment: segment)
                } else if let (segment, resource) = ImportJobPath.parse(path) {
                    self = .job(segment: segment, resource: resource)
                } else {
                    self = .unknown
                }
            }
        }

        /// The route a request is counted under: the path's shape, never an id from it.
        var metricsRoute: MetricsLayout.Route {
            switch self {
            case .health: return .health
            case .metrics: return .metrics
            case .openAPI: return .openAPI
            case .importFromList: return .importFromList
            case .job(_, let resource): return resource == .job ? .job : .jobRejections
            case .unknown: return .other
            }
        }
    }

    /// The whole service's numbers: every worker process's cell, the listening socket's queue,
    /// and the jobs queued and running in the database (a short wait: a scrape must not hang on
    /// a busy pool; without them `leadimport_database_up` is 0).
    func scrape() -> HTTPResponse {
        var readings = MetricsExposition.Readings()
        if let listenFD { readings.listenQueue = ListenQueue.read(listenFD) }
        readings.jobs = try? pool.withConnection(waitLimit: .milliseconds(250)) { try JobStore.activeCounts(on: $0) }
        let text = MetricsExposition.render(metrics.snapshot(), readings)
        return HTTPResponse(status: 200, headers: [("Content-Type", MetricsExposition.contentType)], body: Array(text.utf8))
    }

    /// 200 when a pooled connection answers; 503 with Retry-After otherwise, within the pool's
    /// wait limit.
    func health(_ request: HTTPRequest) -> HTTPResponse {
        do {
            try pool.withConnection(waitLimit: remainingWait(since: request.received, pool: pool)) { try Health.check(on: $0) }
            return .json(200, #"{"status":"ok"}"#)
        } catch {
            return Self.answer(.unavailable)
        }
    }

    static func answer(_ error: RequestError) -> HTTPResponse {
        var headers: [(name: String, value: String)] = []
        if let allow = error.allow { headers.append(("Allow", allow)) }
        switch error.status {
        case 401: headers.append(("WWW-Authenticate", #"Bearer realm="leadimport""#))
        case 503: headers.append(("Retry-After", "5"))
        case 429: headers.append(("Retry-After", String(JobAdmission.retryAfterSeconds)))
        default: break
        }
        return .json(error.status, error.body, headers: headers)
    }
}

/// What is left of the pool's wait limit for a request that arrived at `received`: the time it
/// spent queued (in the socket's backlog, for a worker thread) counts, so a saturated service
/// answers within the limit whatever the queue in front of it. A late request may still take a
/// connection that is free or can be opened (a process just started has none yet): a quarter of
/// the limit for that; with every connection busy it is answered at once.
func remainingWait(since received: MonotonicInstant, pool: ConnectionPool) -> Duration {
    let limit = pool.configuration.waitLimit
    let left = limit - (MonotonicInstant.now() - received)
    if left > .zero { return left }
    return pool.stats.leased < pool.configuration.size ? limit / 4 : .zero
}

func format3(_ value: Double) -> String {
    let thousandths = Int((value * 1000).rounded())
    let whole = thousandths / 1000, fraction = thousandths % 1000
    let padded = String(fraction)
    return "\(whole)." + String(repeating: "0", count: 3 - padded.count) + padded
}
