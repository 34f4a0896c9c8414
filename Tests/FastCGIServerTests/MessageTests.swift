import Foundation
import HTTP
import Platform
import XCTest
@testable import FastCGIServer

/// The pure parts: parameters to request, response to stdout, request-head inspection.
final class MessageTests: XCTestCase {
    func testParametersBecomeARequest() {
        let fields = RequestParameters([
            ("REQUEST_METHOD", "POST"), ("DOCUMENT_URI", "/api/campaigns/1/leads/import-from-list"),
            ("REQUEST_URI", "/api/campaigns/1/leads/import-from-list?x=1"), ("QUERY_STRING", "x=1"),
            ("CONTENT_TYPE", "application/json; charset=utf-8"), ("CONTENT_LENGTH", "17"),
            ("HTTP_AUTHORIZATION", "Bearer t"), ("HTTP_X_FORWARDED_FOR", "1.2.3.4"),
            ("HTTP_ACCEPT", "a"), ("HTTP_ACCEPT", "b"), ("REQUEST_ID", "abc"), ("SERVER_NAME", "x"),
            // nginx forwards these request headers as well as the CGI variables.
            ("HTTP_CONTENT_TYPE", "application/json; charset=utf-8"), ("HTTP_CONTENT_LENGTH", "17"),
        ])
        XCTAssertEqual(fields.method, "POST")
        XCTAssertEqual(fields.path, "/api/campaigns/1/leads/import-from-list")
        XCTAssertEqual(fields.query, "x=1")
        XCTAssertEqual(fields.contentLength, 17)
        XCTAssertEqual(fields.requestID, "abc")
        XCTAssertEqual(fields.headers, [
            "content-type": "application/json; charset=utf-8", "content-length": "17",
            "authorization": "Bearer t", "x-forwarded-for": "1.2.3.4", "accept": "a, b",
        ])
    }

    /// The raw path, not nginx's decoded `$uri`: an encoded slash stays inside its segment.
    func testPathIsTheRawRequestTarget() {
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e"
        let fields = RequestParameters([
            ("DOCUMENT_URI", "/api/campaigns/\(id)/leads/import-from-list"),
            ("REQUEST_URI", "/api/campaigns/\(id)%2F/leads/import-from-list?a=b"),
        ])
        XCTAssertEqual(fields.path, "/api/campaigns/\(id)%2F/leads/import-from-list")
        XCTAssertEqual(RequestParameters([("REQUEST_URI", "http://example.com/healthz?x")]).path, "/healthz")
        XCTAssertEqual(RequestParameters([("DOCUMENT_URI", "/only")]).path, "/only")
        XCTAssertEqual(RequestParameters.path(ofRequestTarget: "http://example.com"), "/")
        XCTAssertEqual(RequestParameters.path(ofRequestTarget: "https://example.com/a#b?c"), "/a")
        XCTAssertEqual(RequestParameters.path(ofRequestTarget: "/a:b//c?d"), "/a:b//c")
        XCTAssertEqual(RequestParameters.path(ofRequestTarget: "?q"), "/")
        XCTAssertEqual(RequestParameters.path(ofRequestTarget: "/caf\u{E9}/x?y"), "/caf\u{E9}/x")
    }

    /// Parameters as libfcgi hands them over, byte buffers, and as strings give the same fields.
    func testHeaderNamesAndRepeatedHeaders() {
        let fields = RequestParameters([
            ("HTTP_X_REQUEST_ID", "a"), ("HTTP_COOKIE", "x=1"), ("HTTP_COOKIE", "y=2"),
            ("HTTP_ACCEPT", "a/b"), ("HTTP_ACCEPT", "c/d"), ("HTTP_", "ignored"), ("SERVER_SOFTWARE", "nginx"),
            ("CONTENT_TYPE", "application/json"), ("HTTP_CONTENT_TYPE", "text/plain"),
        ])
        XCTAssertEqual(fields.headers, [
            "x-request-id": "a", "cookie": "x=1; y=2", "accept": "a/b, c/d", "content-type": "application/json",
        ])
    }

    /// nginx's `$msec` moves the request's arrival back by its time in the backlog, but a stamp
    /// from the future or long ago is ignored.
    func testWebServerStartCountsTheBacklog() throws {
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        let nowSeconds = Double(wall.tv_sec) + Double(wall.tv_nsec) / 1e9
        func age(_ stamp: String) -> Double {
            let request = RequestParameters([("REQUEST_START", stamp)]).request(body: [], bodyExceedsLimit: false)
            return (MonotonicInstant.now() - request.received).secondsDouble
        }
        XCTAssertEqual(age(String(format: "%.3f", nowSeconds - 1.5)), 1.5, accuracy: 0.1)
        XCTAssertLessThan(age(String(format: "%.3f", nowSeconds + 5)), 0.1)
        XCTAssertLessThan(age(String(format: "%.3f", nowSeconds - 3600)), 0.1)
        XCTAssertLessThan(age("garbage"), 0.1)
    }

    func testMissingOrOddParameters() {
        let fields = RequestParameters([("REQUEST_URI", "/a/b?c"), ("CONTENT_LENGTH", "-3"), ("CONTENT_TYPE", ""), ("REQUEST_ID", "")])
        XCTAssertEqual(fields.path, "/a/b")
        XCTAssertEqual(fields.method, "")
        XCTAssertNil(fields.contentLength)
        XCTAssertNil(fields.requestID)
        XCTAssertNil(fields.headers["content-type"])
        XCTAssertNil(RequestParameters([]).contentLength)
        XCTAssertEqual(RequestParameters([("CONTENT_LENGTH", "99999999999999999999")]).contentLength, nil)
        let onlyHeaders = RequestParameters([("HTTP_CONTENT_TYPE", "text/plain"), ("HTTP_CONTENT_LENGTH", "5")])
        XCTAssertEqual(onlyHeaders.headers, ["content-type": "text/plain", "content-length": "5"])
        XCTAssertEqual(onlyHeaders.contentLength, 5)
    }

    func testBodyIsDroppedWhenOverTheLimit() {
        let fields = RequestParameters([("REQUEST_METHOD", "POST")])
        XCTAssertEqual(fields.request(body: [1, 2], bodyExceedsLimit: true).body, [])
        XCTAssertEqual(fields.request(body: [1, 2], bodyExceedsLimit: false).body, [1, 2])
    }

    func testResponseIsWrittenWithAStatusHeader() {
        let response = HTTPResponse.json(401, #"{"error":"unauthorized"}"#, headers: [("WWW-Authenticate", "Bearer")])
        let (bytes, dropped) = response.fastCGIStdout()
        XCTAssertEqual(dropped, [])
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self),
            "Status: 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 24\r\n"
            + "WWW-Authenticate: Bearer\r\n\r\n{\"error\":\"unauthorized\"}")
    }

    func testResponseHeadersThatCouldSplitTheResponseAreDropped() {
        let response = HTTPResponse(status: 299, headers: [
            ("X-Bad", "a\r\nSet-Cookie: x=1"), ("Bad Name", "v"), ("Content-Length", "999"), ("Status", "200"),
            ("X-Good", "ok\tfine"),
        ])
        let (bytes, dropped) = response.fastCGIStdout()
        XCTAssertEqual(dropped, ["X-Bad", "(invalid name)"])
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self),
            "Status: 299\r\nContent-Type: application/octet-stream\r\nContent-Length: 0\r\nX-Good: ok\tfine\r\n\r\n")
        XCTAssertTrue(String(decoding: HTTPResponse(status: 42).fastCGIStdout().bytes, as: UTF8.self).hasPrefix("Status: 500 "))
    }

    // MARK: - Request heads

    private func head(_ parameters: [(String, String)] = [("REQUEST_METHOD", "GET")]) -> [UInt8] {
        FastCGIRecord.begin() + FastCGIRecord.stream(FastCGIRecord.params, FastCGIRecord.pairs(parameters))
    }

    private func inspect(_ bytes: ArraySlice<UInt8>, limit: Int, bodyLimit: Int = 65536) -> RequestHead.Verdict {
        RequestHead.inspect(bytes, limit: limit, headLimit: limit, bodyLimit: bodyLimit)
    }

    func testCompleteHead() {
        let bytes = head() + FastCGIRecord.stream(FastCGIRecord.stdin, [1, 2, 3])
        XCTAssertEqual(inspect(bytes[...], limit: 1 << 20), .complete)
        let long = head([("HTTP_COOKIE", String(repeating: "c", count: 70_000))]) + FastCGIRecord.record(FastCGIRecord.stdin)
        XCTAssertEqual(inspect(long[...], limit: 1 << 20), .complete, "params over several records")
        XCTAssertEqual(inspect(head()[...], limit: 1 << 20), .incomplete, "the body's end has not arrived")
    }

    func testIncompleteHead() {
        let bytes = head()
        for cut in [0, 1, 7, 8, 15, bytes.count - 1] {
            XCTAssertEqual(inspect(bytes[0..<cut], limit: 1 << 20), .incomplete, "cut at \(cut)")
        }
        XCTAssertEqual(inspect(bytes[0..<(bytes.count - 1)], limit: bytes.count - 1), .invalid("request larger than \(bytes.count - 1) bytes"))
    }

    func testHeadsLibfcgiMustNotSee() {
        let pitfall: [UInt8] = [
            0x01, 0x01, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x01, 0x04, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00,
        ]
        // Refused at once: such a pair could never fit, whatever follows.
        XCTAssertEqual(inspect(pitfall[...], limit: 1 << 20), .invalid("PARAMS: pair of 1073741824+1073741824 bytes"))
        // A pair longer than what was sent, in a head that is otherwise complete.
        let short = FastCGIRecord.begin() + FastCGIRecord.record(FastCGIRecord.params, [0x80, 0, 1, 0, 1, 65])
            + FastCGIRecord.record(FastCGIRecord.params)
        XCTAssertEqual(inspect(short[...], limit: 1 << 20), .invalid("PARAMS: pair of 256+1 bytes longer than the data sent"))
        // Still arriving: not judged yet.
        XCTAssertEqual(inspect(short[0..<20], limit: 1 << 20), .incomplete)
        let wrongVersion = [2] + head().dropFirst()
        XCTAssertEqual(inspect(wrongVersion[...], limit: 1 << 20), .invalid("FastCGI version 2"))
        let management = FastCGIRecord.record(11, id: 0, [1, 2, 3]) + head()
        XCTAssertEqual(inspect(management[...], limit: 1 << 20), .invalid("management record type 11"))
        let stdinFirst = FastCGIRecord.begin() + FastCGIRecord.record(FastCGIRecord.stdin, [1])
        XCTAssertEqual(inspect(stdinFirst[...], limit: 1 << 20), .invalid("record type 5 before the end of PARAMS"))
    }

    /// FCGI_GET_VALUES makes libfcgi answer into a 64-byte stack buffer, 17 bytes per known name:
    /// four FCGI_MAX_CONNS overflow it and abort the process. No management record reaches it,
    /// before the request, between its records or in its body.
    func testManagementRecordsAreRefusedWhereverTheyStand() {
        let maxConns = FastCGIRecord.pairs(Array(repeating: ("FCGI_MAX_CONNS", ""), count: 4))
        let getValues = FastCGIRecord.record(9, id: 0, maxConns)
        let body = FastCGIRecord.stream(FastCGIRecord.stdin, [1, 2, 3])
        let placements: [[UInt8]] = [
            getValues + head() + body,
            FastCGIRecord.begin() + getValues + FastCGIRecord.stream(FastCGIRecord.params, FastCGIRecord.pairs([("A", "b")])) + body,
            head() + getValues + body,
            head() + FastCGIRecord.record(FastCGIRecord.stdin, [1]) + getValues + FastCGIRecord.record(FastCGIRecord.stdin),
            head() + FastCGIRecord.record(FastCGIRecord.stdin, [1]) + FastCGIRecord.record(11, id: 0, [0, 0, 0, 0, 0, 0, 0, 0]),
        ]
        for (index, bytes) in placements.enumerated() {
            guard case .invalid(let reason) = inspect(bytes[...], limit: 1 << 20) else {
                return XCTFail("placement \(index) was not refused")
            }
            XCTAssertTrue(reason.hasPrefix("management record type"), "placement \(index): \(reason)")
        }
        // Refused as soon as its header has arrived, before its content.
        let early = head() + Array(getValues.prefix(8))
        XCTAssertEqual(inspect(early[...], limit: 1 << 20), .invalid("management record type 9"))
    }

    func testTheBodyIsCheckedAsFarAsAWorkerReadsIt() {
        let limit = 1000
        // Complete only once the empty STDIN record is there.
        let small = head([("REQUEST_METHOD", "POST")]) + FastCGIRecord.stream(FastCGIRecord.stdin, Array(repeating: 7, count: 900), chunk: 100)
        XCTAssertEqual(inspect(small[...], limit: 1 << 20, bodyLimit: limit), .complete)
        XCTAssertEqual(inspect(small.dropLast(8), limit: 1 << 20, bodyLimit: limit), .incomplete)
        // Over the limit: complete as soon as limit + 1 bytes are there; the rest is never read.
        let large = head([("REQUEST_METHOD", "POST")]) + FastCGIRecord.record(FastCGIRecord.stdin, Array(repeating: 7, count: 1001))
        XCTAssertEqual(inspect(large[...], limit: 1 << 20, bodyLimit: limit), .complete)
        XCTAssertEqual(inspect(large.dropLast(1), limit: 1 << 20, bodyLimit: limit), .incomplete)
        // Declared over the limit: nothing of the body is read, so nothing of it is awaited.
        let declared = head([("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "5000")])
        XCTAssertEqual(inspect(declared[...], limit: 1 << 20, bodyLimit: limit), .complete)
        // A later, unreadable CONTENT_LENGTH is what the worker sees: the body must then be checked.
        let redeclared = head([("CONTENT_LENGTH", "5000"), ("CONTENT_LENGTH", "")])
        XCTAssertEqual(inspect(redeclared[...], limit: 1 << 20, bodyLimit: limit), .incomplete)
        XCTAssertEqual(RequestHead.declaredContentLength(FastCGIRecord.pairs([("CONTENT_LENGTH", "+5000")])[...]), nil)
        // Another type of this request in the body is refused; other requests' records are skipped.
        let params = head() + FastCGIRecord.record(FastCGIRecord.params, [1, 1, 65, 66])
        XCTAssertEqual(inspect(params[...], limit: 1 << 20), .invalid("record type 4 in the body"))
        let foreign = head() + FastCGIRecord.record(FastCGIRecord.stdin, id: 3, [1, 2]) + FastCGIRecord.record(FastCGIRecord.stdin)
        XCTAssertEqual(inspect(foreign[...], limit: 1 << 20), .complete)
        // A body still arriving that could never fit: refused at the limit.
        let padded = head() + (0..<20).flatMap { _ in FastCGIRecord.record(FastCGIRecord.stdin, [1], padding: 255) }
        XCTAssertEqual(inspect(padded[...], limit: padded.count, bodyLimit: limit), .invalid("request larger than \(padded.count) bytes"))
    }

    func testRecordsOfOtherRequestsAreSkipped() {
        let bytes = FastCGIRecord.record(FastCGIRecord.stdin, id: 9, [1, 2]) + FastCGIRecord.begin()
            + FastCGIRecord.record(FastCGIRecord.params, id: 9, [0xC0, 0, 0, 0]) + FastCGIRecord.stream(FastCGIRecord.params, [])
            + FastCGIRecord.record(FastCGIRecord.stdin)
        XCTAssertEqual(inspect(bytes[...], limit: 1 << 20), .complete)
    }

    func testPairProblems() {
        let good = FastCGIRecord.pairs([("A", "b"), ("LONG", String(repeating: "x", count: 300))])
        XCTAssertNil(RequestHead.pairProblem(good[...], isWhole: true, pairLimit: 1000))
        XCTAssertNotNil(RequestHead.pairProblem(good[...], isWhole: true, pairLimit: 100))
        XCTAssertNotNil(RequestHead.pairProblem([3, 1, 65, 66][...], isWhole: true, pairLimit: 1000))
        XCTAssertNil(RequestHead.pairProblem([3, 1, 65, 66][...], isWhole: false, pairLimit: 1000))
        XCTAssertNotNil(RequestHead.pairProblem([0x80, 0, 0][...], isWhole: true, pairLimit: 1000))
        XCTAssertNil(RequestHead.pairProblem([0x80, 0, 0][...], isWhole: false, pairLimit: 1000))
        XCTAssertNotNil(RequestHead.pairProblem([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF][...], isWhole: false, pairLimit: 1000))
    }
}
