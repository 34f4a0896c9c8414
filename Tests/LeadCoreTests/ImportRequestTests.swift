import LeadCore
import XCTest

final class ImportRequestTests: XCTestCase {
    let id = "0f8fad5b-d9cb-469f-a165-70867728950e"

    func testCampaignSegment() {
        XCTAssertEqual(ImportRequest.campaignSegment(inPath: "/api/campaigns/\(id)/leads/import-from-list"), Substring(id))
        XCTAssertEqual(ImportRequest.campaignSegment(inPath: "/api/campaigns/nope/leads/import-from-list"), "nope")
        XCTAssertNil(ImportRequest.campaignSegment(inPath: "/api/campaigns//leads/import-from-list"))
        XCTAssertNil(ImportRequest.campaignSegment(inPath: "/api/campaigns/a/b/leads/import-from-list"))
        XCTAssertNil(ImportRequest.campaignSegment(inPath: "/api/campaigns/\(id)/leads"))
    }

    func testBearerToken() {
        XCTAssertEqual(ImportRequest.bearerToken(fromAuthorization: "Bearer abc.DEF-123_~+/=="), "abc.DEF-123_~+/==")
        XCTAssertEqual(ImportRequest.bearerToken(fromAuthorization: "bearer  tok "), "tok")
        for bad: String? in [nil, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b", "Bearer a=b", "Bearer tök", "Token abc"] {
            XCTAssertNil(ImportRequest.bearerToken(fromAuthorization: bad), String(describing: bad))
        }
    }

    func testContentType() {
        XCTAssertNil(ImportRequest.checkContentType(nil))
        XCTAssertNil(ImportRequest.checkContentType(""))
        XCTAssertNil(ImportRequest.checkContentType("application/json"))
        XCTAssertNil(ImportRequest.checkContentType("Application/JSON; charset=utf-8"))
        XCTAssertEqual(ImportRequest.checkContentType("text/plain"), .unsupportedMediaType)
        XCTAssertEqual(ImportRequest.checkContentType("application/json-patch+json"), .unsupportedMediaType)
        XCTAssertEqual(ImportRequest.checkContentType("; charset=utf-8"), .unsupportedMediaType)
    }

    func testBody() {
        XCTAssertEqual(ImportRequest.body(Array(#"{"listId":"\#(id)","other":{"x":[1,2]}}"#.utf8)).map(\.listID), .success(id),
                       "keys the contract does not know are ignored")
        XCTAssertEqual(ImportRequest.body(Array(#"{"listId":"\#(id)","filter":{"x":[1,2]}}"#.utf8)).map(\.listID),
                       .failure(.invalidFilter("filter.x is not a filter key (leadIds, where, orderBy, limit)")))
        XCTAssertEqual(ImportRequest.body(Array(#"{"listId":"\#(id)"}"#.utf8)).map(\.listID), .success(id))
        for bad in ["", "null", "[]", "\"x\"", "{", "{\"listId\":}", "{'listId':'x'}", String(repeating: "[", count: 10_000)] {
            XCTAssertEqual(ImportRequest.body(Array(bad.utf8)).map(\.listID), .failure(.invalidJSON), bad)
        }
        for bad in ["{}", #"{"listId":42}"#, #"{"listId":null}"#, #"{"listId":"nope"}"#, #"{"listid":"\#(id)"}"#] {
            XCTAssertEqual(ImportRequest.body(Array(bad.utf8)).map(\.listID), .failure(.invalidListID), bad)
        }
        XCTAssertEqual(ImportRequest.body([0x7B, 0xFF, 0x7D]).map(\.listID), .failure(.invalidJSON))
    }
}

final class JSONTests: XCTestCase {
    func testParsesAndEscapes() throws {
        let value = try JSONReader.parse(#"{"a":[1,-2.5e3,true,false,null],"b":"x\"\\\/\n\u00e9\ud83d\ude00"}"#)
        XCTAssertEqual(value["b"], .string("x\"\\/\né😀"))
        XCTAssertEqual(value["a"], .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null]))
        var writer = JSONObjectWriter()
        writer.add("s", "q\"\u{1}\n")
        writer.add("n", 3)
        XCTAssertEqual(writer.result, #"{"s":"q\"\u0001\n","n":3}"#)
    }

    func testRejectsMalformed() {
        for bad in ["01", "1.", "-", "\"\\ud800\"", "\"\u{01}\"", "tru", "{\"a\" 1}", "[1,]", "1 2"] {
            XCTAssertThrowsError(try JSONReader.parse(bad), bad)
        }
    }
}
