import Platform
import XCTest
@testable import Metrics

final class MetricsLayoutTests: XCTestCase {
    func testCellsDoNotOverlapAndFillWholeCacheLines() {
        typealias Cell = MetricsLayout.Cell
        XCTAssertEqual(Cell.words % 8, 0)
        XCTAssertGreaterThan(Cell.words, Cell.slowRequests)
        XCTAssertLessThan(Cell.poolOpen, Cell.gaugeWords)
        let last = Cell.request(.other, MetricsLayout.statusSlots - 1)
        XCTAssertLessThan(last, Cell.durationBuckets)
        XCTAssertLessThan(Cell.bucket(.other, Cell.bucketSlots - 1), Cell.durationMicroseconds)
    }

    func testDurationsFallInTheFirstBucketWhoseBoundHoldsThem() {
        XCTAssertEqual(MetricsLayout.bucketIndex(seconds: 0), 0)
        XCTAssertEqual(MetricsLayout.bucketIndex(seconds: 0.001), 0, "a bound holds what equals it (le)")
        XCTAssertEqual(MetricsLayout.bucketIndex(seconds: 0.0011), 1)
        XCTAssertEqual(MetricsLayout.bucketIndex(seconds: 299), MetricsLayout.durationBounds.count - 1)
        XCTAssertEqual(MetricsLayout.bucketIndex(seconds: 301), MetricsLayout.durationBounds.count)
    }

    func testStatusesOutsideTheListAreCountedAsOther() {
        XCTAssertEqual(MetricsLayout.statusLabel(MetricsLayout.statusIndex(422)), "422")
        XCTAssertEqual(MetricsLayout.statusLabel(MetricsLayout.statusIndex(418)), "other")
    }
}

final class SharedMetricsTests: XCTestCase {
    /// Two processes' cells in one region, as two mappings of the memfd: each counts in its own
    /// cell, either one's snapshot is the sum, and a vacated cell keeps its counters but not its gauges.
    func testEveryCellCountsInTheSnapshotWhicheverMappingReadsIt() throws {
        let supervisor = try MetricsRegion.shared(cells: 4)
        let first = ServiceMetrics(region: try MetricsRegion.attach(fd: supervisor.descriptor), cell: 0, workers: 4, slowRequest: .seconds(1))
        let second = ServiceMetrics(region: try MetricsRegion.attach(fd: supervisor.descriptor), cell: 1, workers: 4, slowRequest: .seconds(1))
        supervisor.occupy(cell: 0, pid: 100)
        supervisor.occupy(cell: 1, pid: 101)

        first.requestBegan()
        second.requestBegan()
        second.requestBegan()
        XCTAssertEqual(first.snapshot().busyWorkers, 3)
        XCTAssertEqual(first.snapshot().busyWorkersMax, 3)
        XCTAssertFalse(first.requestEnded(route: .health, status: 200, elapsed: .milliseconds(2)))
        XCTAssertTrue(second.requestEnded(route: .importFromList, status: 422, elapsed: .seconds(2)), "over the slow limit")
        first.importAnswered(status: 200, dryRun: false, imported: 3, duplicates: 1, invalid: 1, errors: 0)
        second.importAnswered(status: 200, dryRun: true, imported: 50, duplicates: 0, invalid: 0, errors: 0)
        second.jobEnded(.finished, rows: (imported: 10, duplicates: 0, invalid: 2, errors: 0))
        first.poolChanged(size: 3, open: 2, inUse: 1, waiting: 0)
        second.poolChanged(size: 3, open: 3, inUse: 3, waiting: 2)

        let seen = supervisor.snapshot()
        XCTAssertEqual(seen, second.snapshot(), "any process reads the same numbers")
        XCTAssertEqual(seen.processes, 2)
        XCTAssertEqual(seen.busyWorkers, 1)
        XCTAssertEqual(seen.idleWorkers, 7)
        XCTAssertEqual(seen.busyWorkersMax, 3)
        XCTAssertEqual(seen.poolSize, 6)
        XCTAssertEqual(seen.poolInUse, 4)
        XCTAssertEqual(seen.poolWaiting, 2)
        XCTAssertEqual(seen.rows, [13, 1, 3, 0], "dry runs write nothing and count no rows")
        XCTAssertEqual(seen.slowRequests, 1)
        XCTAssertEqual(seen.requests[MetricsLayout.Cell.request(.importFromList, MetricsLayout.statusIndex(422)) - MetricsLayout.Cell.requests], 1)

        // The second process dies holding a busy worker and its pool: the supervisor vacates its cell.
        supervisor.vacate(cell: 1)
        supervisor.recordRestart(.afterExit)
        let after = first.snapshot()
        XCTAssertEqual(after.processes, 1)
        XCTAssertEqual(after.busyWorkers, 0)
        XCTAssertEqual(after.poolInUse, 1)
        XCTAssertEqual(after.rows, [13, 1, 3, 0], "counters outlive the process that counted them")
        XCTAssertEqual(after.restartsAfterExit, 1)
        XCTAssertEqual(supervisor.freeCell(held: [0]), 1)
    }

    func testARegionOfAnotherKindIsNotAttached() throws {
        let fd = open("/dev/null", O_RDONLY)
        defer { close(fd) }
        XCTAssertThrowsError(try MetricsRegion.attach(fd: fd))
    }

    /// Threads of one process counting at once lose nothing.
    func testConcurrentCountsAddUp() throws {
        let metrics = ServiceMetrics(region: .ofThisProcess(), cell: 0, workers: 8, slowRequest: .seconds(5))
        let threads = 8, each = 20_000
        let done = CountdownLatch(count: threads)
        for _ in 0..<threads {
            try startThread(name: "counter") {
                for _ in 0..<each {
                    metrics.requestBegan()
                    metrics.requestEnded(route: .health, status: 200, elapsed: .microseconds(10))
                }
                done.countDown()
            }
        }
        _ = done.wait()
        let seen = metrics.snapshot()
        XCTAssertEqual(seen.requests[MetricsLayout.statusIndex(200) + MetricsLayout.Route.health.rawValue * MetricsLayout.statusSlots],
                       UInt64(threads * each))
        XCTAssertEqual(seen.busyWorkers, 0)
        XCTAssertLessThanOrEqual(seen.busyWorkersMax, threads)
    }
}

final class MetricsExpositionTests: XCTestCase {
    func testTheTextFollowsTheExpositionFormat() {
        var snapshot = MetricsSnapshot()
        snapshot.processes = 2
        snapshot.requests[MetricsLayout.Route.job.rawValue * MetricsLayout.statusSlots + MetricsLayout.statusIndex(404)] = 7
        let first = MetricsLayout.Route.job.rawValue * MetricsLayout.Cell.bucketSlots
        snapshot.durationBuckets[first + 0] = 5
        snapshot.durationBuckets[first + 3] = 2
        snapshot.durationMicroseconds[MetricsLayout.Route.job.rawValue] = 12_500
        let text = MetricsExposition.render(snapshot, .init(listenQueue: (queued: 3, limit: 128), jobs: (queued: 4, running: 1)))
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains(#"leadimport_http_requests_total{route="/api/imports/{id}",status="404"} 7"#))
        XCTAssertTrue(lines.contains(#"leadimport_http_request_duration_seconds_bucket{route="/api/imports/{id}",le="0.001"} 5"#))
        XCTAssertTrue(lines.contains(#"leadimport_http_request_duration_seconds_bucket{route="/api/imports/{id}",le="0.0025"} 5"#))
        XCTAssertTrue(lines.contains(#"leadimport_http_request_duration_seconds_bucket{route="/api/imports/{id}",le="0.01"} 7"#), "cumulative")
        XCTAssertTrue(lines.contains(#"leadimport_http_request_duration_seconds_bucket{route="/api/imports/{id}",le="+Inf"} 7"#))
        XCTAssertTrue(lines.contains(#"leadimport_http_request_duration_seconds_sum{route="/api/imports/{id}"} 0.0125"#))
        XCTAssertTrue(lines.contains(#"leadimport_http_request_duration_seconds_count{route="/api/imports/{id}"} 7"#))
        XCTAssertTrue(lines.contains(#"leadimport_jobs{state="queued"} 4"#))
        XCTAssertTrue(lines.contains("leadimport_database_up 1"))
        XCTAssertTrue(lines.contains("leadimport_listen_queue_connections 3"))
        XCTAssertTrue(lines.contains("leadimport_worker_processes 2"))
        XCTAssertFalse(text.contains(#"route="/healthz""#), "a route never requested has no series")
        // Every sample belongs to the family declared just before it.
        var family = ""
        for line in lines {
            if line.hasPrefix("# TYPE ") { family = String(line.split(separator: " ")[2]); continue }
            if line.hasPrefix("#") { continue }
            XCTAssertTrue(line.hasPrefix(family), "\(line) outside \(family)")
        }
    }

    func testWithoutTheDatabaseTheJobsAreLeftOutAndSaidSo() {
        let text = MetricsExposition.render(MetricsSnapshot(), .init())
        XCTAssertFalse(text.contains("leadimport_jobs{"))
        XCTAssertTrue(text.contains("\nleadimport_database_up 0\n"))
        XCTAssertFalse(text.contains("listen_queue"))
    }

    func testLabelValuesAreEscaped() {
        XCTAssertEqual(MetricsExposition.Writer.escaped("a\"b\\c\nd"), #"a\"b\\c\nd"#)
    }
}
