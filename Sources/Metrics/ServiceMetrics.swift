#if canImport(Glibc)
import Glibc
#endif
import CSharedMemory
import Platform

/// One worker process's hand on the shared metrics: it counts into its own cell, and reads every
/// cell when scraped. Each call is a few relaxed atomic adds, no lock.
public final class ServiceMetrics: @unchecked Sendable {
    typealias Cell = MetricsLayout.Cell
    public let region: MetricsRegion
    public let cell: Int
    /// A request that takes longer is counted slow and logged.
    public let slowRequest: Duration
    /// False with `serve --no-metrics`: nothing is counted and /metrics is not served.
    public let recording: Bool
    private let words: UnsafeMutablePointer<UInt64>

    public init(region: MetricsRegion, cell: Int, workers: Int, slowRequest: Duration, recording: Bool = true) {
        self.recording = recording
        self.region = region
        self.cell = min(max(0, cell), region.cellCount - 1)
        self.slowRequest = slowRequest
        words = region.cell(self.cell)
        leadimport_word_store(words + Cell.pid, UInt64(UInt32(bitPattern: getpid())))
        leadimport_word_store(words + Cell.workers, UInt64(max(0, workers)))
    }

    public static let descriptorVariable = "LEADIMPORT_METRICS_FD"
    public static let cellVariable = "LEADIMPORT_METRICS_CELL"

    /// The region and cell the supervisor handed this process, or a region of its own when it
    /// was started without one (by hand, or in a test).
    public static func ofThisProcess(workers: Int, slowRequest: Duration, recording: Bool = true) -> ServiceMetrics {
        if !recording { return ServiceMetrics(region: .ofThisProcess(), cell: 0, workers: workers, slowRequest: slowRequest, recording: false) }
        if let fdText = getenv(descriptorVariable).map({ String(cString: $0) }), let fd = Int32(fdText),
           let cellText = getenv(cellVariable).map({ String(cString: $0) }), let cell = Int(cellText) {
            do {
                let region = try MetricsRegion.attach(fd: fd)
                if cell < region.cellCount { return ServiceMetrics(region: region, cell: cell, workers: workers, slowRequest: slowRequest) }
                Log.warning("metrics cell out of range; counting this process alone", ["cell": cellText])
            } catch {
                Log.warning("metrics region not attached; counting this process alone", ["error": "\(error)"])
            }
        }
        return ServiceMetrics(region: .ofThisProcess(), cell: 0, workers: workers, slowRequest: slowRequest)
    }

    // MARK: requests

    public func requestBegan() {
        guard recording else { return }
        leadimport_word_add(words + Cell.busy, 1)
        let busy = region.addBusy()
        region.raise(busy, header: MetricsLayout.Header.busyMax)
    }

    /// Counts an answered request; true when it was slow.
    @discardableResult
    public func requestEnded(route: MetricsLayout.Route, status: Int, elapsed: Duration) -> Bool {
        guard recording else { return elapsed > slowRequest }
        leadimport_word_sub_floor(words + Cell.busy, 1)
        region.subtractBusy(1)
        let seconds = elapsed.secondsDouble
        leadimport_word_add(words + Cell.request(route, MetricsLayout.statusIndex(status)), 1)
        leadimport_word_add(words + Cell.bucket(route, MetricsLayout.bucketIndex(seconds: seconds)), 1)
        leadimport_word_add(words + Cell.durationMicroseconds + route.rawValue, UInt64(max(0, seconds * 1_000_000)))
        guard elapsed > slowRequest else { return false }
        leadimport_word_add(words + Cell.slowRequests, 1)
        return true
    }

    // MARK: imports and jobs

    /// A synchronous import answered `status`; a real one also counts its members.
    public func importAnswered(status: Int, dryRun: Bool, imported: Int, duplicates: Int, invalid: Int, errors: Int) {
        leadimport_word_add(words + Cell.import_(dryRun: dryRun, MetricsLayout.statusIndex(status)), 1)
        if !dryRun { addRows(imported: imported, duplicates: duplicates, invalid: invalid, errors: errors) }
    }

    /// A job ended here; a finished real one also counts its members (once: only the run whose
    /// finish committed calls this).
    public func jobEnded(_ end: MetricsLayout.JobEnd, rows: (imported: Int, duplicates: Int, invalid: Int, errors: Int)? = nil) {
        leadimport_word_add(words + Cell.jobsEnded + end.rawValue, 1)
        if let rows { addRows(imported: rows.imported, duplicates: rows.duplicates, invalid: rows.invalid, errors: rows.errors) }
    }

    private func addRows(imported: Int, duplicates: Int, invalid: Int, errors: Int) {
        for (outcome, count) in [(MetricsLayout.RowOutcome.imported, imported), (.duplicate, duplicates), (.invalid, invalid), (.error, errors)]
        where count > 0 {
            leadimport_word_add(words + Cell.rows + outcome.rawValue, UInt64(count))
        }
    }

    // MARK: the pool

    /// What this process's pool holds now (called under the pool's lock on every change).
    public func poolChanged(size: Int, open: Int, inUse: Int, waiting: Int) {
        leadimport_word_store(words + Cell.poolSize, UInt64(max(0, size)))
        leadimport_word_store(words + Cell.poolOpen, UInt64(max(0, open)))
        leadimport_word_store(words + Cell.poolInUse, UInt64(max(0, inUse)))
        leadimport_word_store(words + Cell.poolWaiting, UInt64(max(0, waiting)))
    }

    public func snapshot() -> MetricsSnapshot { region.snapshot() }
}
