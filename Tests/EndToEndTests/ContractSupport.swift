import Foundation
import LeadCore
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// What the ContractError test classes share: one service per class (started in the class's
/// setUp, stopped in its tearDown), helpers that check the contract's answers exactly, and a
/// record of every token a test sent, so that each test's tearDown can check that none of them
/// (nor its SHA-256) ever reached the service's log.
class ContractTestCase: XCTestCase {
    nonisolated(unsafe) static var service: ServiceProcess?
    nonisolated(unsafe) static var startFailure: String?
    /// Every token (valid or not) any ContractError test put in an Authorization header.
    nonisolated(unsafe) static var tokensSent: Set<String> = []

    var env: TestEnvironment!
    var seed: Seed!
    var http: HTTPClient!

    static let importSuffix = "/leads/import-from-list"
    static let jsonErrorKeys: Set<String> = ["error", "message"]
    static let countKeys: Set<String> = ["imported", "duplicates", "invalid", "errors", "total"]

    override class func setUp() {
        super.setUp()
        startFailure = nil
        do {
            let service = try ServiceProcess(environment: try TestEnvironment.require(), logName: "contract-error")
            try service.start()
            self.service = service
        } catch {
            startFailure = "could not start the service: \(error)"
        }
    }

    override class func tearDown() {
        service?.stop()
        service = nil
        super.tearDown()
    }

    override func setUpWithError() throws {
        env = try TestEnvironment.require()
        if let failure = Self.startFailure { throw TestEnvironmentError(message: failure) }
        XCTAssertNotNil(Self.service, "the service is not running")
        seed = try Seed(env)
        http = HTTPClient(baseURL: env.nginxURL)
        http.timeout = 30
    }

    override func tearDownWithError() throws {
        // After every test (so after the last one, after all of them): no token in any form.
        assertNoTokenInServiceLog()
        seed = nil
    }

    // MARK: - Data

    struct Owner {
        let user: String
        let token: String
    }

    /// A draft LinkedIn campaign and a `rows` list of `rows` distinct, valid profiles, both owned
    /// by `owner`: importing it answers 200 with every row imported.
    struct Target {
        let owner: Owner
        let campaign: String
        let list: String
        let rows: Int
    }

    func owner(expiresAt: String? = nil) throws -> Owner {
        let user = try seed.user()
        let token = try seed.token(user: user, expiresAt: expiresAt)
        Self.tokensSent.insert(token)
        return Owner(user: user, token: token)
    }

    func target(owner given: Owner? = nil, rows: Int = 2, status: String = "draft") throws -> Target {
        let owner = try given ?? self.owner()
        let campaign = try seed.campaign(user: owner.user, channel: "linkedin", status: status)
        let tag = UUID().uuidString.prefix(8).lowercased()
        let list = try seed.rowsList(user: owner.user, rows: (0..<rows).map { i in
            ("https://www.linkedin.com/in/ce-\(tag)-\(i)", #"{"firstName":"Row","lastName":"\#(i)"}"#)
        })
        return Target(owner: owner, campaign: campaign, list: list, rows: rows)
    }

    /// A token that no row of `tokens` hashes to, shaped like the real ones.
    func unknownToken() -> String {
        let token = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        Self.tokensSent.insert(token)
        return token
    }

    static func randomUUID() -> String { UUID().uuidString.lowercased() }

    func tokenSQL(_ statement: String, _ token: String) throws {
        try seed.sql(statement + " WHERE token_hash = sha256(convert_to($1, 'UTF8'))", [token])
    }

    // MARK: - Requests

    func path(_ campaign: String) -> String { "/api/campaigns/\(campaign)\(Self.importSuffix)" }

    static func listBody(_ list: String) -> String { #"{"listId":"\#(list)"}"# }

    /// POST to the import endpoint of `campaign` (a raw path segment, sent as given).
    func post(_ campaign: String, body: String, token: String?, contentType: String? = "application/json",
              headers extra: [(String, String)] = []) throws -> HTTPReply {
        try post(campaign, bytes: Data(body.utf8), token: token, contentType: contentType, headers: extra)
    }

    func post(_ campaign: String, bytes: Data, token: String?, contentType: String? = "application/json",
              headers extra: [(String, String)] = []) throws -> HTTPReply {
        var headers: [(String, String)] = []
        if let token {
            Self.tokensSent.insert(token)
            headers.append(("Authorization", "Bearer \(token)"))
        }
        if let contentType { headers.append(("Content-Type", contentType)) }
        return try http.request("POST", path(campaign), headers: headers + extra, body: bytes)
    }

    func importing(_ target: Target, token: String? = nil, contentType: String? = "application/json") throws -> HTTPReply {
        try post(target.campaign, body: Self.listBody(target.list), token: token ?? target.owner.token, contentType: contentType)
    }

    // MARK: - Assertions

    /// Codes of the answers nginx gives itself (nginx/leadimport.conf), which the service never uses.
    static let nginxErrorCodes: Set<String> = ["bad_request", "request_timeout", "length_required", "uri_too_long", "not_implemented",
                                               "http_version_not_supported"]

    /// Whether nginx refused the request itself, in the contract's JSON shape, before the service saw it.
    func answeredByNginx(_ reply: HTTPReply) -> Bool {
        guard let code = (try? reply.json())?["error"] as? String else { return false }
        return Self.nginxErrorCodes.contains(code)
    }

    /// The contract's error shape, whatever the status and code: `application/json`, and a JSON
    /// object with exactly `error` and `message`.
    func assertErrorShape(_ reply: HTTPReply, _ context: @autoclosure () -> String = "",
                          file: StaticString = #filePath, line: UInt = #line) {
        let what = "\(context()) → \(reply.status) \(reply.text)"
        XCTAssertTrue(reply.headers["content-type"]?.lowercased().hasPrefix("application/json") == true,
                      "content type \(reply.headers["content-type"] ?? "none"): \(what)", file: file, line: line)
        let object = try? reply.json()
        XCTAssertEqual(object.map { Set($0.keys) }, Self.jsonErrorKeys, "keys: \(what)", file: file, line: line)
    }

    /// Exactly the contract's error answer: the status, `application/json`, and a body that is a
    /// JSON object with exactly the keys `error` (the code) and `message` (non-empty text).
    func assertError(_ reply: HTTPReply, _ status: Int, _ code: String, _ context: @autoclosure () -> String = "",
                     file: StaticString = #filePath, line: UInt = #line) {
        let what = "\(context()) → \(reply.status) \(reply.text)"
        XCTAssertEqual(reply.status, status, "status: \(what)", file: file, line: line)
        XCTAssertTrue(reply.headers["content-type"]?.lowercased().hasPrefix("application/json") == true,
                      "content type \(reply.headers["content-type"] ?? "none"): \(what)", file: file, line: line)
        guard let object = try? reply.json() else {
            XCTFail("body is not a JSON object: \(what)", file: file, line: line)
            return
        }
        XCTAssertEqual(Set(object.keys), Self.jsonErrorKeys, "keys: \(what)", file: file, line: line)
        XCTAssertEqual(object["error"] as? String, code, "code: \(what)", file: file, line: line)
        let message = object["message"] as? String
        XCTAssertNotNil(message, "message is not a string: \(what)", file: file, line: line)
        XCTAssertFalse(message?.trimmingCharacters(in: .whitespaces).isEmpty ?? true, "message is empty: \(what)", file: file, line: line)
        if status == 401 {
            XCTAssertTrue(reply.headers["www-authenticate"]?.hasPrefix("Bearer") == true,
                          "WWW-Authenticate \(reply.headers["www-authenticate"] ?? "missing"): \(what)", file: file, line: line)
        }
        if status == 405 {
            XCTAssertEqual(reply.headers["allow"], "POST", "Allow: \(what)", file: file, line: line)
        }
        if status == 503 {
            let retry = reply.headers["retry-after"]
            XCTAssertNotNil(retry.flatMap { Int($0) }, "Retry-After \(retry ?? "missing"): \(what)", file: file, line: line)
        }
    }

    /// An import outcome: the status, `application/json`, the five counts (and only the extra
    /// keys named), with I + D + V + E = T. Returns the counts in that order.
    @discardableResult
    func assertCounts(_ reply: HTTPReply, _ status: Int, _ expected: [Int]? = nil, extraKeys: Set<String> = [],
                      _ context: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) -> [Int] {
        let what = "\(context()) → \(reply.status) \(reply.text)"
        XCTAssertEqual(reply.status, status, "status: \(what)", file: file, line: line)
        XCTAssertEqual(reply.headers["content-type"], "application/json", "content type: \(what)", file: file, line: line)
        guard let object = try? reply.json() else {
            XCTFail("body is not a JSON object: \(what)", file: file, line: line)
            return []
        }
        XCTAssertEqual(Set(object.keys), Self.countKeys.union(extraKeys), "keys: \(what)", file: file, line: line)
        let counts = ["imported", "duplicates", "invalid", "errors", "total"].map { key -> Int in
            // Written as a whole number, not merely one JSONSerialization would round to.
            let pattern = "\"\(key)\"\\s*:\\s*[0-9]+\\s*[,}]"
            guard let number = object[key] as? Int, reply.text.range(of: pattern, options: .regularExpression) != nil else {
                XCTFail("\(key) is not a whole number: \(what)", file: file, line: line)
                return -1
            }
            return number
        }
        XCTAssertEqual(counts[0] + counts[1] + counts[2] + counts[3], counts[4], "I + D + V + E = T: \(what)", file: file, line: line)
        if let expected { XCTAssertEqual(counts, expected, "counts: \(what)", file: file, line: line) }
        return counts
    }

    /// A fresh import still gets exactly the right answer, /healthz is 200, and no worker process
    /// died on the way.
    func assertStillServing(_ context: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let fresh = try target(rows: 3)
        assertCounts(try importing(fresh), 200, [3, 0, 0, 0, 3], "valid import after \(context)", file: file, line: line)
        XCTAssertEqual(try seed.count(fresh.campaign), 3, "after \(context)", file: file, line: line)
        let health = try http.request("GET", "/healthz")
        XCTAssertEqual(health.status, 200, "/healthz after \(context): \(health.text)", file: file, line: line)
        let log = Self.service?.log() ?? ""
        XCTAssertFalse(log.contains("child exited unexpectedly"), "a worker process died during \(context)", file: file, line: line)
        XCTAssertFalse(log.contains("request handler failed"), "a handler failed during \(context)", file: file, line: line)
    }

    func assertNoTokenInServiceLog(file: StaticString = #filePath, line: UInt = #line) {
        guard let service = Self.service else { return }
        let log = service.log()
        for token in Self.tokensSent where token.count >= 8 {
            var forms = [token, SHA256.hex(SHA256.hash(token))]
            // A long token cut short is still a leak.
            if token.count > 24 { forms.append(String(token.prefix(24))) }
            for form in forms where log.contains(form) {
                XCTFail("the service log holds a token (in the form \(form.prefix(12))…)", file: file, line: line)
            }
        }
    }
}

typealias ContractErrorRawReply = HTTPReply

/// Raw HTTP over TCP for what HTTPClient cannot send: a request whose client stops writing
/// (half-close) before its declared body is complete. Returns nil when nginx closes without a reply.
func contractErrorRawExchange(host: String, port: UInt16, _ raw: Data, halfClose: Bool, timeout: Int = 10,
                              skipInterim: Bool = false) throws -> ContractErrorRawReply? {
    let fd = try HTTPClient.connect(host: host, port: port, timeout: timeout)
    defer { close(fd) }
    raw.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = Glibc.send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
            if n <= 0 { break }
            offset += n
        }
    }
    if halfClose { shutdown(fd, Int32(SHUT_WR)) }
    var received = Data()
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &chunk, chunk.count, 0)
        if n == 0 { break }
        if n < 0 {
            if errno == EINTR { continue }
            if errno == ECONNRESET { break }
            throw TestEnvironmentError(message: "no reply within \(timeout) s (errno \(errno)); got \(received.count) bytes")
        }
        received.append(contentsOf: chunk[0..<n])
    }
    guard !received.isEmpty else { return nil }
    // Interim 1xx answers (100 Continue) come before the real one.
    while skipInterim, received.starts(with: Data("HTTP/1.1 1".utf8)), let end = received.range(of: Data("\r\n\r\n".utf8)) {
        received = Data(received[end.upperBound...])
    }
    return try HTTPClient.parse(received)
}

/// Problems found on several threads at once, reported after they join.
final class ContractProblems: @unchecked Sendable {
    private let lock = NSLock()
    private var problems: [String] = []
    func add(_ problem: String) { lock.lock(); problems.append(problem); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return problems }
}
