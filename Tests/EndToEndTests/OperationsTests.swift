import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// What an operator watches (section 6): `/metrics` through the shipped nginx, the API's
/// document, and the logs.
final class OperationsTests: LiveServiceTestCase {
    /// The repository's root, found from this file.
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func scrape(_ client: HTTPClient) throws -> (text: String, samples: [String: Double]) {
        let reply = try client.request("GET", "/metrics")
        XCTAssertEqual(reply.status, 200)
        XCTAssertEqual(reply.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        let text = String(decoding: reply.body, as: UTF8.self)
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return (text, samples)
    }

    func run(_ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Every family the service exposes, from a scrape of a fresh process's exposition.
    enum MetricsNames {
        static let all = ["leadimport_http_requests_total", "leadimport_http_request_duration_seconds", "leadimport_slow_requests_total",
                          "leadimport_import_rows_total", "leadimport_imports_total", "leadimport_jobs", "leadimport_jobs_ended_total",
                          "leadimport_database_up", "leadimport_db_pool_size", "leadimport_db_pool_open", "leadimport_db_pool_in_use",
                          "leadimport_db_pool_waiting", "leadimport_worker_processes", "leadimport_worker_process_restarts_total",
                          "leadimport_workers", "leadimport_workers_busy_max", "leadimport_listen_queue_connections",
                          "leadimport_listen_queue_limit_connections"]
    }

    /// A new user with a token, a `linkedin` campaign and `rows` lists of these sizes.
    func seeded(lists sizes: [Int]) throws -> (token: String, campaign: String, lists: [String]) {
        let seeder = try Seeder(env)
        let user = try seeder.user()
        let token = try seeder.token(user: user)
        let campaign = try seeder.campaign(user: user, channel: "linkedin")
        return (token, campaign, try sizes.map { try seeder.rowsList(user: user, count: $0) })
    }

    static let notFoundRoute = #"leadimport_http_requests_total{route="/healthz",status="200"}"#
    static let unauthorized = #"leadimport_http_requests_total{route="/api/campaigns/{campaignId}/leads/import-from-list",status="401"}"#

    /// Requests served by two worker processes, then both processes killed and replaced: every
    /// scrape, whichever process answers it, counts every request, those of the dead included.
    func testMetricsAreTheWholeServicesWhicheverProcessAnswers() throws {
        let service = try startService("metrics", processes: 2, workers: 2)
        defer { service.stop() }
        let client = client()
        let before = try scrape(client).samples
        let importPath = "/api/campaigns/\(UUID().uuidString.lowercased())/leads/import-from-list"
        for _ in 0..<20 { XCTAssertEqual(try client.post(importPath, json: "{}", token: nil).status, 401) }
        for _ in 0..<30 { XCTAssertEqual(try client.request("GET", "/healthz").status, 200) }

        for worker in service.workerPIDs() {
            let mark = service.logMark
            kill(worker, SIGKILL)
            XCTAssertTrue(service.waitForLog(message: "child ready", since: mark, timeout: 20), "no replacement" + context(service))
        }
        try service.waitForWorkers(expected: 2, timeout: 20)
        var healthzSince = 0.0
        for round in 0..<8 {
            let (text, samples) = try scrape(client)
            XCTAssertEqual(samples[Self.unauthorized, default: 0] - before[Self.unauthorized, default: 0], 20, "scrape \(round):\n\(text)")
            // waitForWorkers asks /healthz too: at least the 30, and never fewer than a scrape before.
            let healthz = samples[Self.notFoundRoute, default: 0] - before[Self.notFoundRoute, default: 0]
            XCTAssertGreaterThanOrEqual(healthz, max(30, healthzSince), "scrape \(round)")
            healthzSince = healthz
            XCTAssertEqual(samples["leadimport_worker_processes"], 2)
            XCTAssertEqual(samples[#"leadimport_worker_process_restarts_total{reason="exited"}"#], 2)
            XCTAssertEqual(samples["leadimport_database_up"], 1)
            XCTAssertEqual(samples["leadimport_db_pool_size"], 4, "two processes with pools of 2")
            XCTAssertEqual(samples[#"leadimport_workers{state="busy"}"#], 1, "the scrape itself; the dead processes' busy workers are let go")
            XCTAssertNotNil(samples["leadimport_listen_queue_limit_connections"], "the accept queue of the held socket")
        }

        // The exposition is one Prometheus reads without a complaint, with every family documented.
        let text = try scrape(client).text
        let families = Set(text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) })
        XCTAssertEqual(families, Set(MetricsNames.all))
        let documented = try String(contentsOf: Self.repository.appendingPathComponent("docs/metrics.md"), encoding: .utf8)
        for family in families { XCTAssertTrue(documented.contains("`\(family)`"), "docs/metrics.md does not describe \(family)") }
        let checked = try run(["promtool", "check", "metrics"], input: text)
        XCTAssertEqual(checked.status, 0, checked.output)
        XCTAssertEqual(checked.output.trimmingCharacters(in: .whitespacesAndNewlines), "", "promtool's findings")
    }

    /// The shipped nginx serves /metrics to the host's own loopback clients only: a request from
    /// another address (the machine's own non-loopback one, which nginx sees as a remote peer) is
    /// refused with the contract's JSON.
    func testMetricsAreRefusedToOtherAddresses() throws {
        let service = try startService("metrics-refused", processes: 1, workers: 2)
        defer { service.stop() }
        let addresses = try run(["hostname", "-I"]).output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard let elsewhere = addresses.first(where: { !$0.isEmpty && !$0.hasPrefix("127.") && !$0.contains(":") }) else {
            throw XCTSkip("this machine has no IPv4 address besides loopback to send from")
        }
        let port = env.nginxURL.split(separator: ":").last.map(String.init) ?? ""
        let mark = service.logMark
        let refused = try run(["curl", "-s", "--interface", elsewhere, "-w", "\n%{http_code} %{content_type}", "http://127.0.0.1:\(port)/metrics"])
        let lines = refused.output.split(separator: "\n")
        XCTAssertEqual(lines.last, "403 application/json", refused.output)
        let body = try JSONSerialization.jsonObject(with: Data(lines.first.map(String.init)?.utf8 ?? "".utf8)) as? [String: Any]
        XCTAssertEqual(body?["error"] as? String, "forbidden")
        XCTAssertNotNil(body?["message"] as? String)
        XCTAssertTrue(service.logLines(message: "request", since: mark).isEmpty, "the refused request never reached the service")
        XCTAssertEqual(try client().request("GET", "/metrics").status, 200, "from loopback it is served")
    }

    /// The shipped alerting rules are ones Prometheus loads, and name only metrics the service
    /// exposes.
    func testTheShippedAlertsAreValidAndNameRealMetrics() throws {
        let rules = Self.repository.appendingPathComponent("prometheus/leadimport-alerts.yml")
        let checked = try run(["promtool", "check", "rules", rules.path])
        XCTAssertEqual(checked.status, 0, checked.output)
        let text = try String(contentsOf: rules, encoding: .utf8)
        let exposed = Set(MetricsNames.all)
        let named = Set(text.matches(of: /leadimport_[a-z_]+/).map { String($0.output) }
            .map { $0.replacingOccurrences(of: "_bucket", with: "") })
        XCTAssertFalse(named.isEmpty)
        XCTAssertEqual(named.subtracting(exposed), [], "rules name metrics the service does not expose")
    }

    /// `/api/openapi.json` is the repository's document, byte for byte, without a token, and a
    /// valid OpenAPI 3.1 document.
    func testTheServedDocumentIsTheRepositorysFile() throws {
        let service = try startService("openapi", processes: 1, workers: 2)
        defer { service.stop() }
        let file = Self.repository.appendingPathComponent("Sources/Service/openapi.json")
        let reply = try client().request("GET", "/api/openapi.json")
        XCTAssertEqual(reply.status, 200)
        XCTAssertEqual(reply.headers["content-type"], "application/json")
        XCTAssertEqual(reply.body, try Data(contentsOf: file))
        let document = try JSONSerialization.jsonObject(with: reply.body) as? [String: Any]
        XCTAssertEqual(document?["openapi"] as? String, "3.1.0")
        let validated = try run(["python3", "-m", "openapi_spec_validator", file.path])
        XCTAssertEqual(validated.status, 0, validated.output)
    }

    /// schemathesis (seeded) sends the document's every operation what the document allows and
    /// what it does not, through nginx with a token, into a real campaign and list (its hooks,
    /// Tests/Schemathesis, make half the bodies name the list and a third of the imports jobs, so
    /// the stateful phase follows their links): every answer must match the document.
    func testEveryAnswerMatchesTheDocument() throws {
        let (token, campaign, lists) = try seeded(lists: [40])
        let list = lists[0]
        let service = try startService("schemathesis", processes: 2, workers: 4)
        defer { service.stop() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("schemathesis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // The import's campaign is the seeded one; its other parameters and bodies are generated.
        let config = folder.appendingPathComponent("schemathesis.toml")
        try """
            [[operations]]
            include-name = "POST /api/campaigns/{campaignId}/leads/import-from-list"
            parameters = { campaignId = "\(campaign)" }
            """.write(to: config, atomically: true, encoding: .utf8)
        let hooks = Self.repository.appendingPathComponent("Tests/Schemathesis")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "schemathesis.cli", "--config-file", config.path, "run",
                             Self.repository.appendingPathComponent("Sources/Service/openapi.json").path,
                             "--url", env.nginxURL, "--header", "Authorization: Bearer \(token)",
                             // Every check but two. positive_data_acceptance: a 422 ("nothing new to
                             // import") or a 404 for a generated id answers a valid request as the API
                             // means it to. use_after_free: DELETE cancels a job, which stays readable
                             // (its state and its report), as docs/api.md says.
                             "--checks", "all", "--exclude-checks", "positive_data_acceptance,use_after_free",
                             "--max-examples", "40", "--seed", "20261206", "--no-color", "--workers", "2"]
        process.currentDirectoryURL = folder
        var environment = ProcessInfo.processInfo.environment
        environment["SCHEMATHESIS_HOOKS"] = "leadimport_hooks"
        environment["PYTHONPATH"] = hooks.path
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        environment["LEADIMPORT_LIST_ID"] = list
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, String(text.suffix(6000)))
        // The run reached real work: jobs recorded and read back, not only refusals.
        let answers = service.logLines(message: "request").compactMap { line -> String? in
            let fields = LogLine.fields(line)
            guard let path = fields["path"], let status = fields["status"] else { return nil }
            return (path.hasSuffix("/import-from-list") ? "import" : path.hasSuffix("/rejections") ? "rejections" : path) + " " + status
        }
        XCTAssertTrue(answers.contains("import 202"), "no job was recorded: \(Set(answers).sorted())")
        XCTAssertTrue(answers.contains("rejections 200"), "no job's rejections were read: \(Set(answers).sorted())")
    }

    /// With `--log-format json` every line is a JSON object with its time; every line a request
    /// causes names the request id nginx returned, and every line of a job names the job.
    func testJSONLogsNameTheRequestAndTheJob() throws {
        let (token, campaign, lists) = try seeded(lists: [300, 60_000])
        let (small, large) = (lists[0], lists[1])
        let service = try ServiceProcess(environment: env, logName: "operations-json")
        // Every request is slow past a millisecond's limit: each leaves a warning that names it.
        try start(service, arguments: arguments(processes: 1, workers: 2) + ["--log-format", "json", "--slow-request", "0.001"])
        defer { service.stop() }
        let client = client()
        let path = "/api/campaigns/\(campaign)/leads/import-from-list"
        let async: [(String, String)] = [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json"), ("Prefer", "respond-async")]

        let posted = try client.request("POST", path, headers: async, body: Data(#"{"listId":"\#(small)"}"#.utf8))
        XCTAssertEqual(posted.status, 202)
        let postID = try XCTUnwrap(posted.headers["x-request-id"])
        let job = try XCTUnwrap(try posted.json()["id"] as? String)
        XCTAssertTrue(waitUntil(timeout: 30, interval: 0.1) {
            (try? client.request("GET", "/api/imports/\(job)", headers: [("Authorization", "Bearer \(token)")]).json()["state"] as? String) == "finished"
        }, "the job did not finish" + context(service))

        let long = try client.request("POST", path, headers: async, body: Data(#"{"listId":"\#(large)"}"#.utf8))
        let longJob = try XCTUnwrap(try long.json()["id"] as? String)
        let cancel = try client.request("DELETE", "/api/imports/\(longJob)", headers: [("Authorization", "Bearer \(token)")])
        XCTAssertEqual(cancel.status, 200)
        let cancelID = try XCTUnwrap(cancel.headers["x-request-id"])
        XCTAssertTrue(service.waitForLog(message: "job cancelled", timeout: 10))

        var parsed: [[String: String]] = []
        for line in service.log().split(separator: "\n").map(String.init) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                XCTFail("not a JSON line: \(line)")
                continue
            }
            XCTAssertNotNil((object["ts"] as? String)?.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), line)
            XCTAssertNotNil(object["level"] as? String, line)
            XCTAssertNotNil(object["msg"] as? String, line)
            parsed.append(object.compactMapValues { $0 as? String })
        }
        func with(_ message: String) -> [[String: String]] { parsed.filter { $0["msg"] == message } }
        XCTAssertEqual(with("job queued").first { $0["job_id"] == job }?["request_id"], postID, "the POST's id on the line it caused")
        XCTAssertEqual(with("request").first { $0["request_id"] == postID }?["status"], "202")
        XCTAssertEqual(with("job started").filter { $0["job_id"] == job }.count, 1)
        let finished = with("job finished").first { $0["job_id"] == job }
        XCTAssertEqual(finished?["imported"], "300")
        XCTAssertNil(finished?["request_id"], "a job runs for no request")
        let cancelled = with("job cancelled").first { $0["job_id"] == longJob }
        XCTAssertEqual(cancelled?["request_id"], cancelID, "the DELETE's id on the line it caused")

        let slow = with("slow request")
        XCTAssertFalse(slow.isEmpty, "no slow request logged")
        XCTAssertTrue(slow.allSatisfy { line in with("request").contains { $0["request_id"] == line["request_id"] } },
                      "a slow request's warning without its request's id")
        XCTAssertTrue(slow.allSatisfy { $0["level"] == "warning" })

        // The job's numbers reach /metrics, and the slow requests.
        let samples = try scrape(client).samples
        XCTAssertGreaterThanOrEqual(samples["leadimport_slow_requests_total"] ?? 0, Double(slow.count))
        XCTAssertGreaterThanOrEqual(samples[#"leadimport_jobs_ended_total{state="finished"}"#] ?? 0, 1)
        XCTAssertGreaterThanOrEqual(samples[#"leadimport_jobs_ended_total{state="cancelled"}"#] ?? 0, 1)
        XCTAssertGreaterThanOrEqual(samples[#"leadimport_import_rows_total{outcome="imported"}"#] ?? 0, 300)
    }

    /// A run with tokens sent every way a client might (valid, revoked-looking, malformed, in a
    /// query string, as Basic credentials, in a JSON body) leaves no trace of them in the service's
    /// log: not the token, nor its secret part, its hash, its base64 or its percent-encoding.
    func testNoTokenReachesTheLogsInAnyForm() throws {
        let (token, campaign, lists) = try seeded(lists: [50])
        let list = lists[0]
        let service = try startService("tokens", processes: 2, workers: 2)
        defer { service.stop() }
        let client = client()
        let wrong = token + "x"
        let path = "/api/campaigns/\(campaign)/leads/import-from-list"
        let body = Data(#"{"listId":"\#(list)"}"#.utf8)
        let attempts: [(String, String, [(String, String)], Data?)] = [
            ("POST", path, [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")], body),
            ("POST", path, [("Authorization", "Bearer \(wrong)"), ("Content-Type", "application/json")], body),
            ("POST", path, [("Authorization", "bearer  \(token)"), ("Content-Type", "application/json")], body),
            ("POST", path, [("Authorization", "Basic " + Data("user:\(token)".utf8).base64EncodedString())], body),
            ("POST", path + "?access_token=\(token)", [("Content-Type", "application/json")], body),
            ("POST", path, [("Authorization", "Bearer \(token)"), ("Content-Type", "text/plain")], Data(token.utf8)),
            ("POST", path, [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")], Data(#"{"listId":"\#(token)"}"#.utf8)),
            ("GET", "/api/imports/\(UUID().uuidString.lowercased())", [("Authorization", "Bearer \(wrong)")], nil),
            ("GET", "/api/imports/\(UUID().uuidString.lowercased())/rejections?cursor=\(token)", [("Authorization", "Bearer \(token)")], nil),
            ("DELETE", "/api/imports/\(UUID().uuidString.lowercased())", [("Authorization", "Bearer \(token)")], nil),
            ("GET", "/metrics", [("Authorization", "Bearer \(token)")], nil),
        ]
        for (method, target, headers, body) in attempts {
            let reply = try client.request(method, target, headers: headers, body: body)
            XCTAssertLessThan(reply.status, 500, "\(method) \(target)")
        }
        let log = service.log()
        XCTAssertTrue(log.contains("msg=request"), "the run logged its requests")
        let secret = token.hasPrefix("li_") ? String(token.dropFirst(3)) : token
        let hashed = try run(["sh", "-c", "printf %s \"$0\" | sha256sum", token]).output.prefix(64)
        let forms = [token, secret, String(hashed), Data(token.utf8).base64EncodedString(),
                     Data("user:\(token)".utf8).base64EncodedString(), token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? token,
                     token.uppercased(), String(secret.prefix(16))]
        for form in forms {
            XCTAssertFalse(log.contains(form), "the log holds the token as \(form)")
            XCTAssertFalse(log.lowercased().contains(form.lowercased()), "the log holds the token as \(form), in another case")
        }
    }
}
