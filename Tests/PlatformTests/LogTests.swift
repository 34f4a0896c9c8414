import XCTest
@testable import Platform

final class LogTests: XCTestCase {
    func testValuesAreQuotedOnlyWhenNeeded() {
        XCTAssertEqual(Log.quoted("plain/value-1.5"), "plain/value-1.5")
        XCTAssertEqual(Log.quoted(""), #""""#)
        XCTAssertEqual(Log.quoted("two words"), #""two words""#)
        XCTAssertEqual(Log.quoted("a=b"), #""a=b""#)
        XCTAssertEqual(Log.quoted(#"say "hi""#), #""say \"hi\"""#)
        XCTAssertEqual(Log.quoted(#"back\slash"#), #""back\\slash""#)
        XCTAssertEqual(Log.quoted("line\nbreak"), #""line\nbreak""#)
        // A CR LF pair is escaped too: the line stays one line.
        XCTAssertEqual(Log.quoted("a\r\nb"), #""a\r\nb""#)
        XCTAssertEqual(Log.quoted("tab\there"), "tab\there")
    }

    func testTheLevelLeavesOutWhatIsBelowIt() {
        let levels: [Log.Level] = [.debug, .info, .warning, .error]
        for (rank, minimum) in levels.enumerated() {
            XCTAssertEqual(levels.map { Log.isWritten($0, minimum: minimum) }, levels.indices.map { $0 >= rank }, "\(minimum)")
        }
    }

    func testNonASCIIValues() {
        XCTAssertEqual(Log.quoted("café"), "café")
        XCTAssertEqual(Log.quoted("café au lait"), "\"café au lait\"")
        XCTAssertEqual(Log.quoted("é\u{2028}"), "\"é\u{2028}\"")
    }
}
