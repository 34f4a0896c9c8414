import Foundation
import HTTP
import Postgres
import Service
import TestSupport
import XCTest

/// One table of contract cases (`ContractCase.all`), run twice: straight through `Application`
/// with a real PostgreSQL and no socket, and live, through nginx and a service process. What the
/// application answers is what a client gets.
final class ContractTableTests: XCTestCase {
    var env: TestEnvironment!
    var world: ContractWorld!

    override func setUpWithError() throws {
        env = try TestEnvironment.require()
        world = ContractWorld(seed: try Seed(env))
    }

    func testEveryCaseInProcess() throws {
        let pool = ConnectionPool(conninfo: env.databaseURL, configuration: PoolConfiguration(size: 2, waitLimit: .seconds(2)))
        defer { pool.close() }
        try run(InProcessTransport(application: Application(pool: pool)))
    }

    func testEveryCaseLive() throws {
        let service = try ServiceProcess(environment: env, logName: "contract-table")
        try service.start(arguments: ["--workers", "4", "--pool-size", "2"])
        defer { XCTAssertEqual(service.stop(), 0) }
        try run(LiveTransport(http: HTTPClient(baseURL: env.nginxURL)))
    }

    func run(_ transport: some ContractTransport) throws {
        for item in ContractCase.all {
            let request = try item.request(world)
            let answer = try transport.send(request)
            let context = "\(item.name) (\(type(of: transport)))"
            XCTAssertEqual(answer.status, item.status, "\(context): \(String(decoding: answer.body, as: UTF8.self))")
            XCTAssertEqual(answer.headers["content-type"], "application/json", context)
            let body = try XCTUnwrap(try? JSONSerialization.jsonObject(with: answer.body) as? [String: Any], "\(context): not a JSON object")
            if let error = item.error {
                XCTAssertEqual(body["error"] as? String, error, context)
                XCTAssertNotNil(body["message"] as? String, context)
            } else {
                XCTAssertNil(body["error"], context)
            }
            if let counts = item.counts {
                XCTAssertEqual(["imported", "duplicates", "invalid", "errors", "total"].map { body[$0] as? Int ?? -1 }, counts, context)
            }
            for (name, value) in item.headers {
                XCTAssertEqual(answer.headers[name], value, "\(context): header \(name)")
            }
            for (name, value) in item.fields {
                XCTAssertEqual(body[name] as? String, value, "\(context): \(name)")
            }
            if answer.status == 202 {
                let id = try XCTUnwrap(body["id"] as? String, context)
                XCTAssertEqual(answer.headers["location"], "/api/imports/\(id)", context)
            }
        }
    }
}

struct ContractAnswer {
    var status: Int
    /// Names in lowercase.
    var headers: [String: String]
    var body: Data
}

protocol ContractTransport {
    func send(_ request: ContractRequest) throws -> ContractAnswer
}

/// The request as the FastCGI layer would hand it over, given straight to the application.
struct InProcessTransport: ContractTransport {
    let application: Application
    var bodyLimit = 64 * 1024

    func send(_ request: ContractRequest) throws -> ContractAnswer {
        var headers: [String: String] = [:]
        for (name, value) in request.headers { headers[name.lowercased()] = value }
        let body = Array(request.body.utf8)
        headers["content-length"] = String(body.count)
        let exceeds = body.count > bodyLimit
        let parts = request.path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let response = application.respond(to: HTTPRequest(
            method: request.method, path: String(parts[0]), query: parts.count > 1 ? String(parts[1]) : "", headers: headers,
            body: exceeds ? [] : body, bodyExceedsLimit: exceeds))
        var answerHeaders: [String: String] = [:]
        for (name, value) in response.headers { answerHeaders[name.lowercased()] = value }
        return ContractAnswer(status: response.status, headers: answerHeaders, body: Data(response.body))
    }
}

/// Through nginx, to the service process behind it.
struct LiveTransport: ContractTransport {
    let http: HTTPClient

    func send(_ request: ContractRequest) throws -> ContractAnswer {
        let reply = try http.request(request.method, request.path, headers: request.headers,
                                     body: request.method == "GET" || request.method == "DELETE" ? nil : Data(request.body.utf8))
        return ContractAnswer(status: reply.status, headers: reply.headers, body: reply.body)
    }
}
