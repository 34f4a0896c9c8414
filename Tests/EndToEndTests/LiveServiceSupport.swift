import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// What the foundation and fault tests share: starting the service the way the tests need it,
/// and failure messages that carry the service's log.
class LiveServiceTestCase: XCTestCase {
    var env: TestEnvironment!

    /// The service's own 503 body (nginx's own 503 page says "the import service is not reachable").
    static let serviceUnavailableMessage = "the database cannot be reached; retry shortly"

    override func setUpWithError() throws {
        env = try TestEnvironment.require()
    }

    func client(timeout: TimeInterval = 15) -> HTTPClient {
        var client = HTTPClient(baseURL: env.nginxURL)
        client.timeout = timeout
        return client
    }

    /// Starts `leadimport serve` on the held socket and waits until every worker process has
    /// reported ready and /healthz answers 200 through nginx.
    func startService(_ name: String, processes: Int, workers: Int, poolSize: Int = 2, waitLimit: Double? = nil) throws -> ServiceProcess {
        let service = try ServiceProcess(environment: env, logName: "foundation-\(name)")
        try start(service, arguments: arguments(processes: processes, workers: workers, poolSize: poolSize, waitLimit: waitLimit))
        return service
    }

    func arguments(processes: Int, workers: Int, poolSize: Int = 2, waitLimit: Double? = nil) -> [String] {
        var arguments = ["--processes", "\(processes)", "--workers", "\(workers)", "--pool-size", "\(poolSize)"]
        if let waitLimit { arguments += ["--wait-limit", "\(waitLimit)"] }
        return arguments
    }

    /// Starts (or starts again) `service` and waits for `processes` "child ready" lines logged
    /// after now and for /healthz to answer 200.
    func start(_ service: ServiceProcess, arguments: [String]) throws {
        let processes = arguments.firstIndex(of: "--processes").flatMap { Int(arguments[$0 + 1]) } ?? 2
        let mark = service.logMark
        try service.start(arguments: arguments, waitUntilHealthy: false)
        guard service.waitForLog(message: "child ready", since: mark, count: processes, timeout: 20) else {
            throw TestEnvironmentError(message: "the service's \(processes) worker processes did not report ready within 20 s" + context(service))
        }
        do {
            try service.waitForWorkers(expected: processes, timeout: 20)
        } catch {
            throw TestEnvironmentError(message: "\(error)" + context(service))
        }
    }

    /// The tail of the service's log, for failure messages.
    func context(_ service: ServiceProcess, _ extra: @autoclosure () -> String = "", lines: Int = 40) -> String {
        let more = extra()
        return (more.isEmpty ? "" : "\n" + more) + "\n--- tail of \(service.logPath):\n" + service.logTail(lines)
    }

    /// `{"error": ..., "message": ...}` fields of a reply, or nil.
    func errorFields(_ reply: HTTPReply) -> (error: String?, message: String?) {
        guard let object = try? reply.json() else { return (nil, nil) }
        return (object["error"] as? String, object["message"] as? String)
    }

    func describe(_ results: [LoadResult], limit: Int = 30) -> String {
        results.prefix(limit).map(\.description).joined(separator: "\n")
            + (results.count > limit ? "\n... and \(results.count - limit) more" : "")
    }

    /// Requests of the load that overlapped [from, to].
    func overlapping(_ results: [LoadResult], from: Double, to: Double) -> [LoadResult] {
        results.filter { $0.finished >= from && $0.started <= to }
    }

    func waitUntil(timeout: TimeInterval, interval: TimeInterval = 0.02, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: interval)
        }
        return condition()
    }
}
