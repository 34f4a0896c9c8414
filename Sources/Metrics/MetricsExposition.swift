/// The service's numbers as Prometheus' text exposition format (version 0.0.4). Pure: what is
/// read from the database and the listening socket at scrape time is passed in.
public enum MetricsExposition {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// What the scrape read besides the cells.
    public struct Readings: Equatable, Sendable {
        /// Connections waiting in the listening socket's accept queue, and its backlog; nil when
        /// the socket cannot say.
        public var listenQueue: (queued: Int, limit: Int)?
        /// Jobs queued and running in the whole database (every instance); nil when it did not answer.
        public var jobs: (queued: Int, running: Int)?

        public init(listenQueue: (queued: Int, limit: Int)? = nil, jobs: (queued: Int, running: Int)? = nil) {
            self.listenQueue = listenQueue
            self.jobs = jobs
        }

        public static func == (a: Readings, b: Readings) -> Bool {
            a.listenQueue?.queued == b.listenQueue?.queued && a.listenQueue?.limit == b.listenQueue?.limit
                && a.jobs?.queued == b.jobs?.queued && a.jobs?.running == b.jobs?.running
        }
    }

    public static func render(_ s: MetricsSnapshot, _ readings: Readings) -> String {
        typealias Layout = MetricsLayout
        var out = Writer()

        out.family("leadimport_http_requests_total", "counter", "Requests answered, by route and status.")
        for route in Layout.Route.allCases {
            for status in 0..<Layout.statusSlots {
                let count = s.requests[route.rawValue * Layout.statusSlots + status]
                if count > 0 { out.sample("leadimport_http_requests_total", [("route", route.label), ("status", Layout.statusLabel(status))], count) }
            }
        }

        out.family("leadimport_http_request_duration_seconds", "histogram", "Time from the request's arrival at the service to its answer, by route.")
        for route in Layout.Route.allCases {
            let first = route.rawValue * Layout.Cell.bucketSlots
            let buckets = s.durationBuckets[first..<(first + Layout.Cell.bucketSlots)]
            let count = buckets.reduce(0, &+)
            if count == 0 { continue }
            var cumulative: UInt64 = 0
            for (offset, bound) in Layout.durationBounds.enumerated() {
                cumulative &+= buckets[first + offset]
                out.sample("leadimport_http_request_duration_seconds_bucket", [("route", route.label), ("le", Writer.number(bound))], cumulative)
            }
            out.sample("leadimport_http_request_duration_seconds_bucket", [("route", route.label), ("le", "+Inf")], count)
            out.sample("leadimport_http_request_duration_seconds_sum", [("route", route.label)],
                       text: Writer.number(Double(s.durationMicroseconds[route.rawValue]) / 1_000_000))
            out.sample("leadimport_http_request_duration_seconds_count", [("route", route.label)], count)
        }

        out.family("leadimport_slow_requests_total", "counter", "Requests that took longer than serve --slow-request.")
        out.sample("leadimport_slow_requests_total", [], s.slowRequests)

        out.family("leadimport_import_rows_total", "counter", "List members handled by imports that wrote (synchronous and jobs; not dry runs), by outcome.")
        for outcome in Layout.RowOutcome.allCases {
            out.sample("leadimport_import_rows_total", [("outcome", outcome.label)], s.rows[outcome.rawValue])
        }

        out.family("leadimport_imports_total", "counter", "Synchronous imports answered, by status, dry runs apart.")
        for dryRun in [false, true] {
            for status in 0..<Layout.statusSlots {
                let count = s.imports[(dryRun ? Layout.statusSlots : 0) + status]
                if count > 0 { out.sample("leadimport_imports_total", [("status", Layout.statusLabel(status)), ("dry_run", dryRun ? "true" : "false")], count) }
            }
        }

        if let jobs = readings.jobs {
            out.family("leadimport_jobs", "gauge", "Import jobs queued and running now, in the whole database (every instance).")
            out.sample("leadimport_jobs", [("state", "queued")], UInt64(jobs.queued))
            out.sample("leadimport_jobs", [("state", "running")], UInt64(jobs.running))
        }
        out.family("leadimport_jobs_ended_total", "counter", "Import jobs this instance saw end, by how.")
        for end in Layout.JobEnd.allCases {
            out.sample("leadimport_jobs_ended_total", [("state", end.label)], s.jobsEnded[end.rawValue])
        }

        out.family("leadimport_database_up", "gauge", "1 when the scrape's database query answered, else 0.")
        out.sample("leadimport_database_up", [], readings.jobs == nil ? 0 : 1)

        out.family("leadimport_db_pool_size", "gauge", "Database connections the worker processes' pools may open, together.")
        out.sample("leadimport_db_pool_size", [], UInt64(s.poolSize))
        out.family("leadimport_db_pool_open", "gauge", "Database connections open in the pools.")
        out.sample("leadimport_db_pool_open", [], UInt64(s.poolOpen))
        out.family("leadimport_db_pool_in_use", "gauge", "Pooled database connections leased now.")
        out.sample("leadimport_db_pool_in_use", [], UInt64(s.poolInUse))
        out.family("leadimport_db_pool_waiting", "gauge", "Requests and imports waiting for a pooled connection now.")
        out.sample("leadimport_db_pool_waiting", [], UInt64(s.poolWaiting))

        out.family("leadimport_worker_processes", "gauge", "Worker processes running.")
        out.sample("leadimport_worker_processes", [], UInt64(s.processes))
        out.family("leadimport_worker_process_restarts_total", "counter", "Worker processes started again: after one exited unexpectedly, or replaced by a reload.")
        out.sample("leadimport_worker_process_restarts_total", [("reason", "exited")], s.restartsAfterExit)
        out.sample("leadimport_worker_process_restarts_total", [("reason", "reload")], s.restartsByReload)

        out.family("leadimport_workers", "gauge", "Worker threads serving a request (busy) and waiting for one (idle).")
        out.sample("leadimport_workers", [("state", "busy")], UInt64(s.busyWorkers))
        out.sample("leadimport_workers", [("state", "idle")], UInt64(s.idleWorkers))
        out.family("leadimport_workers_busy_max", "gauge", "The most worker threads busy at once since the service started.")
        out.sample("leadimport_workers_busy_max", [], UInt64(s.busyWorkersMax))

        if let queue = readings.listenQueue {
            out.family("leadimport_listen_queue_connections", "gauge", "Connections from nginx waiting in the listening socket's accept queue.")
            out.sample("leadimport_listen_queue_connections", [], UInt64(queue.queued))
            out.family("leadimport_listen_queue_limit_connections", "gauge", "The listening socket's backlog: how many connections its accept queue holds.")
            out.sample("leadimport_listen_queue_limit_connections", [], UInt64(queue.limit))
        }
        return out.text
    }

    struct Writer {
        var text = ""

        init() { text.reserveCapacity(8192) }

        mutating func family(_ name: String, _ type: String, _ help: String) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }

        mutating func sample(_ name: String, _ labels: [(String, String)], _ value: UInt64) {
            sample(name, labels, text: String(value))
        }

        mutating func sample(_ name: String, _ labels: [(String, String)], text value: String) {
            text += name
            if !labels.isEmpty {
                text += "{"
                for (index, (key, label)) in labels.enumerated() {
                    if index > 0 { text += "," }
                    text += key + "=\"" + Self.escaped(label) + "\""
                }
                text += "}"
            }
            text += " " + value + "\n"
        }

        /// Label values escape backslash, double quote and line feed.
        static func escaped(_ value: String) -> String {
            var out = ""
            for ch in value {
                switch ch {
                case "\\": out += "\\\\"
                case "\"": out += "\\\""
                case "\n": out += "\\n"
                default: out.append(ch)
                }
            }
            return out
        }

        /// A bound or a sum as Prometheus reads it: shortest form, no exponent for these ranges.
        static func number(_ value: Double) -> String {
            if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
            var text = String(value)
            if text.contains("e") { text = String(format6: value) }
            return text
        }
    }
}

extension String {
    /// Six decimals without Foundation, trailing zeros dropped.
    init(format6 value: Double) {
        let scaled = Int64((value * 1_000_000).rounded())
        let whole = scaled / 1_000_000, fraction = abs(scaled % 1_000_000)
        var digits = String(fraction)
        digits = String(repeating: "0", count: 6 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        self = digits.isEmpty ? String(whole) : "\(whole).\(digits)"
    }
}
