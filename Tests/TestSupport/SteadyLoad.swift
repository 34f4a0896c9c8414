import Foundation
import Platform

/// Seconds on the monotonic clock, for timestamps that tests compare with each other.
public func monotonicSeconds() -> Double { Double(MonotonicInstant.now().nanoseconds) / 1e9 }

/// One request's fate, as a client saw it.
public struct LoadResult: Sendable, CustomStringConvertible {
    public let thread: Int
    /// monotonicSeconds() when the request was sent and when its answer (or failure) came.
    public let started: Double
    public let finished: Double
    /// The HTTP status, or nil when the transport failed.
    public let status: Int?
    /// The transport error, or for an unexpected status the start of the body.
    public let detail: String?

    public var duration: Double { finished - started }

    public init(thread: Int, started: Double, finished: Double, status: Int?, detail: String?) {
        self.thread = thread
        self.started = started
        self.finished = finished
        self.status = status
        self.detail = detail
    }

    public var description: String {
        let what = status.map { "status \($0)" } ?? "transport error"
        return String(format: "[t%d %.3f..%.3f (%.0f ms)] %@%@", thread, started, finished, duration * 1000, what,
                      detail.map { ": \($0)" } ?? "")
    }
}

/// `threads` OS threads that send requests through nginx one after another until `stop()`, and
/// record every result. The default request is `GET /healthz`; a request counts as a success when
/// its status is `expectedStatus`.
public final class SteadyLoad: @unchecked Sendable {
    public typealias Send = @Sendable (HTTPClient) throws -> HTTPReply

    private let client: HTTPClient
    private let threads: Int
    private let pause: TimeInterval
    private let send: Send
    public let expectedStatus: Int
    private let stopping = Locked(false)
    private let collected = Locked<[LoadResult]>([])
    private var done: CountdownLatch?

    public init(nginxURL: String, threads: Int, pause: TimeInterval = 0, timeout: TimeInterval = 20, expectedStatus: Int = 200,
                send: @escaping Send = { try $0.request("GET", "/healthz") }) {
        var client = HTTPClient(baseURL: nginxURL)
        client.timeout = timeout
        self.client = client
        self.threads = threads
        self.pause = pause
        self.send = send
        self.expectedStatus = expectedStatus
    }

    public func start() {
        precondition(done == nil, "SteadyLoad.start runs once")
        let latch = CountdownLatch(count: threads)
        done = latch
        for index in 0..<threads {
            try! startThread(name: "steady-load-\(index)") { [self] in
                while !stopping.current {
                    let started = monotonicSeconds()
                    let result: LoadResult
                    do {
                        let reply = try send(client)
                        let detail = reply.status == expectedStatus ? nil : String(reply.text.prefix(200))
                        result = LoadResult(thread: index, started: started, finished: monotonicSeconds(), status: reply.status, detail: detail)
                    } catch {
                        result = LoadResult(thread: index, started: started, finished: monotonicSeconds(), status: nil, detail: "\(error)")
                    }
                    collected.withLock { $0.append(result) }
                    if pause > 0 { Thread.sleep(forTimeInterval: pause) }
                }
                latch.countDown()
            }
        }
    }

    /// Stops the threads, waits for the requests in flight (each bounded by the client timeout),
    /// and returns every result, oldest first.
    @discardableResult
    public func stop() -> [LoadResult] {
        stopping.withLock { $0 = true }
        done?.wait()
        return results
    }

    public var results: [LoadResult] { collected.current.sorted { $0.started < $1.started } }

    public func failures(in results: [LoadResult]) -> [LoadResult] {
        results.filter { $0.status != expectedStatus }
    }

    /// Waits until at least `count` more results have come in, or `timeout` passes.
    @discardableResult
    public func waitForResults(atLeast count: Int, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if collected.current.count >= count { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return false
    }

    public var resultCount: Int { collected.current.count }
}

/// Runs `body` on `count` OS threads at once and waits for them all.
public func runConcurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let done = CountdownLatch(count: count)
    for index in 0..<count {
        try! startThread(name: "concurrent-\(index)") {
            body(index)
            done.countDown()
        }
    }
    done.wait()
}
