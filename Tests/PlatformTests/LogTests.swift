import Foundation
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

    func line(_ fields: KeyValuePairs<String, String>, context: LogContext.Fields?, format: Log.Format) -> String {
        String(decoding: Log.line(.warning, "slow \"one\"", fields, context: context, format: format,
                                  time: WallClock.Instant(seconds: 1_765_051_267, milliseconds: 7)), as: UTF8.self)
    }

    func testJSONLinesAreOneObjectWithTheTimeFirst() throws {
        let text = line(["ms": "12.5", "path": "/a\tb\u{1}"], context: nil, format: .json)
        XCTAssertEqual(text, #"{"ts":"2025-12-06T20:01:07.007Z","level":"warning","msg":"slow \"one\"","ms":"12.5","path":"/a\tb\u0001"}"#)
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]
        XCTAssertEqual(object?["path"], "/a\tb\u{1}")
    }

    func testTheContextsIdsAreAddedUnlessTheLineNamesThem() {
        let context = LogContext.Fields(requestID: "r1", jobID: "j1")
        XCTAssertEqual(line(["status": "200"], context: context, format: .logfmt),
                       #"level=warning msg="slow \"one\"" status=200 request_id=r1 job_id=j1"#)
        XCTAssertEqual(line(["job_id": "j2"], context: context, format: .logfmt),
                       #"level=warning msg="slow \"one\"" job_id=j2 request_id=r1"#)
        XCTAssertEqual(line([:], context: nil, format: .logfmt), #"level=warning msg="slow \"one\"""#)
    }

    /// A thread started while a request is served logs under its id; the thread that served it
    /// has its context back afterwards.
    func testThreadsStartedForARequestCarryItsId() throws {
        let seen = Locked<[LogContext.Fields?]>([])
        let done = CountdownLatch(count: 1)
        LogContext.with(LogContext.Fields(requestID: "abc")) {
            try? startThread(name: "stage") {
                seen.withLock { $0.append(LogContext.current) }
                done.countDown()
            }
        }
        _ = done.wait()
        XCTAssertEqual(seen.current, [LogContext.Fields(requestID: "abc")])
        XCTAssertNil(LogContext.current?.requestID)
    }
}
