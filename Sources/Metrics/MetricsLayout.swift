/// Where each number lives in a worker process's cell of the shared metrics region, and the
/// labels each stands for. Pure: the region (`MetricsRegion`) holds words, this says which.
///
/// Why not swift-metrics and swift-prometheus: their counters live in one process's memory, and a
/// scrape reaches whichever worker process nginx picks. The service's numbers are the sum over
/// every worker process (and over those that were replaced), so they live in memory every process
/// maps, one cell per process, and any process adds the cells up when scraped.
public enum MetricsLayout {
    /// The routes a request is counted under: the path's shape, never its ids.
    public enum Route: Int, CaseIterable, Sendable {
        case importFromList, job, jobRejections, health, metrics, openAPI, other

        public var label: String {
            switch self {
            case .importFromList: "/api/campaigns/{campaignId}/leads/import-from-list"
            case .job: "/api/imports/{id}"
            case .jobRejections: "/api/imports/{id}/rejections"
            case .health: "/healthz"
            case .metrics: "/metrics"
            case .openAPI: "/api/openapi.json"
            case .other: "other"
            }
        }
    }

    /// The statuses the service answers, each counted apart; any other under `other`.
    public static let statuses = [200, 202, 204, 206, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503]
    static let statusSlots = statuses.count + 1

    public static func statusIndex(_ status: Int) -> Int {
        statuses.firstIndex(of: status) ?? statuses.count
    }

    public static func statusLabel(_ index: Int) -> String {
        index < statuses.count ? String(statuses[index]) : "other"
    }

    /// Upper bounds of the request-duration buckets, in seconds: from a 401 (well under a
    /// millisecond) to a synchronous import of a million members (minutes).
    public static let durationBounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

    /// The bucket a duration falls in (`durationBounds.count` past the last bound).
    public static func bucketIndex(seconds: Double) -> Int {
        var index = 0
        while index < durationBounds.count && seconds > durationBounds[index] { index += 1 }
        return index
    }

    /// A member's outcome in an import that wrote (dry runs are not counted).
    public enum RowOutcome: Int, CaseIterable, Sendable {
        case imported, duplicate, invalid, error
        public var label: String { ["imported", "duplicate", "invalid", "error"][rawValue] }
    }

    /// How a job ended.
    public enum JobEnd: Int, CaseIterable, Sendable {
        case finished, cancelled
        public var label: String { ["finished", "cancelled"][rawValue] }
    }

    // MARK: words of the region's header (shared by the whole service)

    public enum Header {
        static let magic = 0
        static let cellCount = 1
        /// The most worker threads busy at once across the service since the supervisor started.
        static let busyMax = 2
        /// Worker processes started again after one exited unexpectedly, and replaced by a reload.
        static let restartsAfterExit = 3
        static let restartsByReload = 4
        /// Worker threads busy now across the service.
        static let busyNow = 5
        static let words = 8
    }

    static let magicValue: UInt64 = 0x6c65_6164_6d65_7401

    // MARK: words of a cell (one worker process)

    public enum Cell {
        // Gauges: what the process holds now. The supervisor zeroes them when the process exits.
        static let pid = 0
        static let busy = 1
        static let workers = 2
        static let poolSize = 3
        static let poolInUse = 4
        static let poolWaiting = 5
        static let poolOpen = 6
        static let gaugeWords = 8

        // Counters: only ever added to, by whichever processes held the cell.
        static let requests = gaugeWords                                           // [route][status]
        static let durationBuckets = requests + Route.allCases.count * statusSlots // [route][bucket], +Inf last
        static let bucketSlots = durationBounds.count + 1
        static let durationMicroseconds = durationBuckets + Route.allCases.count * bucketSlots // [route]
        static let rows = durationMicroseconds + Route.allCases.count              // [outcome]
        static let imports = rows + RowOutcome.allCases.count                      // [dryRun][status]
        static let jobsEnded = imports + 2 * statusSlots                           // [end]
        static let slowRequests = jobsEnded + JobEnd.allCases.count
        /// Whole cache lines, so no two processes write one line.
        static let words = (slowRequests + 1 + 7) / 8 * 8

        static func request(_ route: Route, _ statusIndex: Int) -> Int { requests + route.rawValue * statusSlots + statusIndex }
        static func bucket(_ route: Route, _ index: Int) -> Int { durationBuckets + route.rawValue * bucketSlots + index }
        static func import_(dryRun: Bool, _ statusIndex: Int) -> Int { imports + (dryRun ? statusSlots : 0) + statusIndex }
    }

    /// Cells for `processes` worker processes: a reload runs one more while it replaces each, and
    /// a replaced process's cell is kept until it has exited.
    public static func cells(forProcesses processes: Int) -> Int { 2 * processes + 2 }

    public static func regionWords(cells: Int) -> Int { Header.words + cells * Cell.words }
}
