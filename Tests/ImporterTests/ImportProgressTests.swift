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
}
