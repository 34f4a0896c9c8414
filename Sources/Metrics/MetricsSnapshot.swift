import CSharedMemory

/// The service's numbers at one instant: every cell added up. Pure, so the exposition is tested
/// with made-up numbers.
public struct MetricsSnapshot: Equatable, Sendable {
    typealias Layout = MetricsLayout

    /// Worker processes holding a cell now.
    public var processes = 0
    public var busyWorkers = 0
    public var idleWorkers = 0
    public var busyWorkersMax = 0
    public var poolSize = 0
    public var poolInUse = 0
    public var poolWaiting = 0
    public var poolOpen = 0
    public var restartsAfterExit: UInt64 = 0
    public var restartsByReload: UInt64 = 0
    /// [route][status index]
    public var requests = [UInt64](repeating: 0, count: Layout.Route.allCases.count * Layout.statusSlots)
    /// [route][bucket], not cumulative; the last bucket is past the last bound.
    public var durationBuckets = [UInt64](repeating: 0, count: Layout.Route.allCases.count * Layout.Cell.bucketSlots)
    public var durationMicroseconds = [UInt64](repeating: 0, count: Layout.Route.allCases.count)
    public var rows = [UInt64](repeating: 0, count: Layout.RowOutcome.allCases.count)
    /// [dry run][status index]
    public var imports = [UInt64](repeating: 0, count: 2 * Layout.statusSlots)
    public var jobsEnded = [UInt64](repeating: 0, count: Layout.JobEnd.allCases.count)
    public var slowRequests: UInt64 = 0

    public init() {}

    /// Adds one cell, read through `word` (an index into the cell).
    mutating func add(cell word: (Int) -> UInt64) {
        typealias Cell = Layout.Cell
        if word(Cell.pid) != 0 {
            processes += 1
            let busy = Int(word(Cell.busy)), workers = Int(word(Cell.workers))
            busyWorkers += busy
            idleWorkers += max(0, workers - busy)
            poolSize += Int(word(Cell.poolSize))
            poolInUse += Int(word(Cell.poolInUse))
            poolWaiting += Int(word(Cell.poolWaiting))
            poolOpen += Int(word(Cell.poolOpen))
        }
        for i in requests.indices { requests[i] &+= word(Cell.requests + i) }
        for i in durationBuckets.indices { durationBuckets[i] &+= word(Cell.durationBuckets + i) }
        for i in durationMicroseconds.indices { durationMicroseconds[i] &+= word(Cell.durationMicroseconds + i) }
        for i in rows.indices { rows[i] &+= word(Cell.rows + i) }
        for i in imports.indices { imports[i] &+= word(Cell.imports + i) }
        for i in jobsEnded.indices { jobsEnded[i] &+= word(Cell.jobsEnded + i) }
        slowRequests &+= word(Cell.slowRequests)
    }
}

extension MetricsRegion {
    /// Every cell added up, with the header's service-wide numbers.
    public func snapshot() -> MetricsSnapshot {
        var snapshot = MetricsSnapshot()
        for index in 0..<cellCount {
            let words = cell(index)
            snapshot.add { leadimport_word_load(words + $0) }
        }
        snapshot.busyWorkersMax = Int(load(header: MetricsLayout.Header.busyMax))
        snapshot.restartsAfterExit = load(header: MetricsLayout.Header.restartsAfterExit)
        snapshot.restartsByReload = load(header: MetricsLayout.Header.restartsByReload)
        return snapshot
    }
}
