import Importer
import LeadCore
import Platform
import XCTest

/// The command line's progress line and when it is drawn, with made-up instants.
final class ImportProgressTests: XCTestCase {
    func at(_ milliseconds: UInt64) -> MonotonicInstant { MonotonicInstant(nanoseconds: milliseconds * 1_000_000) }

    func progress(_ counts: ImportCounts, seconds: Int) -> ImportProgress {
        ImportProgress(rowsRead: counts.total, counts: counts, elapsed: .seconds(seconds))
    }

    func testTheLineSaysHowFarHowFastAndHowLong() {
        let halfway = progress(ImportCounts(imported: 40_000, duplicates: 5_000, invalid: 4_000, errors: 1_000), seconds: 10)
        XCTAssertEqual(halfway.line(listSize: 100_000),
                       "50000 of 100000 members (50%), imported 40000, duplicates 5000, invalid 4000, errors 1000, 5000 rows/s, 10 s left")
        XCTAssertEqual(halfway.line(listSize: nil),
                       "50000 members, imported 40000, duplicates 5000, invalid 4000, errors 1000, 5000 rows/s")
        let done = progress(ImportCounts(imported: 10), seconds: 2)
        XCTAssertEqual(done.line(listSize: 10), "10 of 10 members (100%), imported 10, duplicates 0, invalid 0, errors 0, 5 rows/s")
        let slow = progress(ImportCounts(imported: 1_000), seconds: 10)
        XCTAssertTrue(slow.line(listSize: 1_000_000).hasSuffix("100 rows/s, 2 h 46 min left"), slow.line(listSize: 1_000_000))
        let minutes = progress(ImportCounts(imported: 1_000), seconds: 1)
        XCTAssertTrue(minutes.line(listSize: 201_000).hasSuffix("3 min 20 s left"), minutes.line(listSize: 201_000))
        // A list that grew while it was read never shows more than 100%.
        XCTAssertTrue(progress(ImportCounts(imported: 12), seconds: 1).line(listSize: 10).contains("(100%)"))
        XCTAssertTrue(progress(ImportCounts(), seconds: 0).line(listSize: 0).contains("0 of 0 members (100%)"))
    }

    func testOffATerminalAPlainLineAtMostEveryFiveSecondsAndTheLast() {
        var pacing = ProgressPacing(output: .plain)
        // One report per page, every 100 ms, for 12 s: two lines, not 120.
        var written: [String] = []
        for tick in 0...120 {
            if let text = pacing.text(for: "p\(tick)", at: at(UInt64(tick) * 100), final: false) { written.append(text) }
        }
        XCTAssertEqual(written, ["p50\n", "p100\n"])
        XCTAssertEqual(pacing.text(for: "last", at: at(12_050), final: true), "last\n")
    }

    func testAShortImportOffATerminalWritesItsLastLineOnly() {
        var pacing = ProgressPacing(output: .plain)
        XCTAssertNil(pacing.text(for: "page 1", at: at(0), final: false))
        XCTAssertNil(pacing.text(for: "page 2", at: at(300), final: false))
        XCTAssertEqual(pacing.text(for: "done", at: at(400), final: true), "done\n")
    }

    func testOnATerminalOneLineRedrawnInPlace() {
        var pacing = ProgressPacing(output: .terminal)
        XCTAssertEqual(pacing.text(for: "a", at: at(0), final: false), "\r\u{1B}[2Ka")
        XCTAssertNil(pacing.text(for: "b", at: at(100), final: false))
        XCTAssertEqual(pacing.text(for: "c", at: at(200), final: false), "\r\u{1B}[2Kc")
        XCTAssertEqual(pacing.text(for: "d", at: at(250), final: true), "\r\u{1B}[2Kd\n")
    }

    func testMembersHandledBeforeTheClockStartedAreLeftOutOfTheRate() {
        let joined = ImportProgress(rowsRead: 60_000, counts: ImportCounts(imported: 60_000), elapsed: .seconds(10), handledBefore: 50_000)
        XCTAssertEqual(joined.line(listSize: 100_000),
                       "60000 of 100000 members (60%), imported 60000, duplicates 0, invalid 0, errors 0, 1000 rows/s, 40 s left")
    }

    func job(_ state: JobState, imported: Int, started: Int64? = nil, finished: Int64? = nil) -> ImportJob {
        ImportJob(id: "2d9a5e6c-3f4b-4c7d-ae8f-9a0b1c2d3e4f", campaignID: "0b7e3c4a-1d2f-4a5b-8c6d-7e8f9a0b1c2d",
                  listID: "1c8f4d5b-2e3a-4b6c-9d7e-8f9a0b1c2d3e", state: state, counts: ImportCounts(imported: imported),
                  httpStatus: state == .finished ? 200 : nil, createdAt: JobTime(millisecondsSinceEpoch: 0),
                  startedAt: started.map(JobTime.init(millisecondsSinceEpoch:)), finishedAt: finished.map(JobTime.init(millisecondsSinceEpoch:)))
    }

    /// A job that waited in the queue, then ran: its rate counts from the first poll that found it
    /// running, from the members handled by then, whatever its createdAt.
    func testAFollowedJobsRateIsItsCountsGrowthSinceItWasFirstSeenRunning() {
        var followed = FollowedProgress()
        XCTAssertTrue(followed.progress(of: job(.queued, imported: 0), at: at(0)).line(listSize: 10_000).contains(", 0 rows/s"))
        XCTAssertTrue(followed.progress(of: job(.queued, imported: 0), at: at(30_000)).line(listSize: 10_000).contains(", 0 rows/s"))
        let first = followed.progress(of: job(.running, imported: 1_000, started: 29_000), at: at(31_000))
        XCTAssertEqual(first.elapsed, .zero)
        XCTAssertTrue(first.line(listSize: 10_000).hasSuffix(", 0 rows/s"), first.line(listSize: 10_000))
        let later = followed.progress(of: job(.running, imported: 3_000, started: 29_000), at: at(33_000))
        XCTAssertEqual(later.line(listSize: 10_000),
                       "3000 of 10000 members (30%), imported 3000, duplicates 0, invalid 0, errors 0, 1000 rows/s, 7 s left")
        let done = followed.progress(of: job(.finished, imported: 10_000, started: 29_000, finished: 40_000), at: at(41_000))
        XCTAssertTrue(done.line(listSize: 10_000).hasSuffix("imported 10000, duplicates 0, invalid 0, errors 0, 900 rows/s"),
                      done.line(listSize: 10_000))
    }

    /// A job that ended before any poll found it running has the rate of its whole run.
    func testAJobFoundEndedHasTheRateOfItsRun() {
        var followed = FollowedProgress()
        let done = followed.progress(of: job(.finished, imported: 5_000, started: 10_000, finished: 12_000), at: at(99_000))
        XCTAssertTrue(done.line(listSize: 5_000).hasSuffix(", 2500 rows/s"), done.line(listSize: 5_000))
        var cancelledQueued = FollowedProgress()
        XCTAssertTrue(cancelledQueued.progress(of: job(.cancelled, imported: 0, finished: 5_000), at: at(1)).line(listSize: 5).hasSuffix(", 0 rows/s"))
    }
}
