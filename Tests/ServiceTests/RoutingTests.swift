import HTTP
import LeadCore
import Postgres
import Service
import XCTest

/// The application straight through its router: no socket, no nginx. The pool points at a port
/// where nothing listens, so every answer that needs the database is the 503 it must be.
final class RoutingTests: XCTestCase {
    let app = Application(pool: ConnectionPool(
        conninfo: "postgresql://nobody@127.0.0.1:1/none",
        configuration: PoolConfiguration(size: 1, waitLimit: .milliseconds(500))
    ))
    let importPath = "/api/campaigns/0f8fad5b-d9cb-469f-a165-70867728950e/leads/import-from-list"

    func header(_ response: HTTPResponse, _ name: String) -> String? {
        response.headers.first(where: { $0.name.lowercased() == name.lowercased() })?.value
    }

    func body(_ response: HTTPResponse) -> String { String(decoding: response.body, as: UTF8.self) }

    func testUnknownPathIs404JSON() {
        let response = app.respond(to: HTTPRequest(method: "GET", path: "/nope"))
        XCTAssertEqual(response.status, 404)
        XCTAssertEqual(header(response, "Content-Type"), "application/json")
        XCTAssertEqual(body(response), #"{"error":"not_found","message":"no such endpoint"}"#)
    }

    func testWrongMethodOnImportIs405WithAllow() {
        for method in ["GET", "PUT", "DELETE", "PATCH", "HEAD"] {
            let response = app.respond(to: HTTPRequest(method: method, path: importPath))
            XCTAssertEqual(response.status, 405, method)
            XCTAssertEqual(header(response, "Allow"), "POST")
            XCTAssertTrue(body(response).contains(#""error":"method_not_allowed""#))
        }
        // The method comes first, even before the campaign id is looked at.
        XCTAssertEqual(app.respond(to: HTTPRequest(method: "GET", path: "/api/campaigns/bad/leads/import-from-list")).status, 405)
    }

    func testNoTokenIs401WithAChallenge() {
        let response = app.respond(to: HTTPRequest(method: "POST", path: importPath, body: Array(#"{"listId":"x"}"#.utf8)))
        XCTAssertEqual(response.status, 401)
        XCTAssertEqual(header(response, "WWW-Authenticate"), #"Bearer realm="leadimport""#)
        XCTAssertEqual(body(response), RequestError.unauthorized.body)
    }

    func testDatabaseUnreachableIs503WithRetryAfter() {
        let started = ContinuousClock.now
        let health = app.respond(to: HTTPRequest(method: "GET", path: "/healthz"))
        XCTAssertEqual(health.status, 503)
        XCTAssertNotNil(header(health, "Retry-After"))
        let imported = app.respond(to: HTTPRequest(method: "POST", path: importPath, headers: ["authorization": "Bearer abc"]))
        XCTAssertEqual(imported.status, 503)
        XCTAssertEqual(body(imported), RequestError.unavailable.body)
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(3))
    }

    func testHealthzTakesGetAndHeadOnly() {
        let response = app.respond(to: HTTPRequest(method: "POST", path: "/healthz"))
        XCTAssertEqual(response.status, 405)
        XCTAssertEqual(header(response, "Allow"), "GET, HEAD")
    }
}
