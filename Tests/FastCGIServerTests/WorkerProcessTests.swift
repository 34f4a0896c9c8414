#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import HTTP
import XCTest
import Platform
import TestSupport
@testable import FastCGIServer

/// The worker process on a real unix socket, spoken to in raw FastCGI.
final class WorkerProcessTests: XCTestCase {
    private var servers: [RunningServer] = []

    override func tearDown() {
        for server in servers { server.shutDown() }
        servers.removeAll()
        super.tearDown()
    }

    private func start(
        workers: Int = 2,
        bodyLimit: Int = 65536,
        receiveTimeout: Duration = .seconds(3),
        firstRecordTimeout: Duration = .seconds(5),
        drainTimeout: Duration = .seconds(2),
        drainIdleTimeout: Duration = .seconds(4),
        handler: @escaping RequestHandler = WorkerProcessTests.echo
    ) throws -> RunningServer {
        let configuration = WorkerProcessConfiguration(
            workers: workers, bodyLimit: bodyLimit, receiveTimeout: receiveTimeout,
            firstRecordTimeout: firstRecordTimeout, idleConnectionTimeout: .seconds(120), drainTimeout: drainTimeout,
            drainIdleTimeout: drainIdleTimeout
        )
        let server = try RunningServer(configuration: configuration, handler: handler)
        servers.append(server)
        return server
    }

    /// Describes the request in headers and echoes its body.
    static let echo: RequestHandler = { request in
        var headers: [(name: String, value: String)] = [
            ("X-Method", request.method), ("X-Path", request.path), ("X-Query", request.query),
            ("X-Exceeds", "\(request.bodyExceedsLimit)"), ("X-Request-Id", request.requestID ?? "-"),
        ]
        for (name, value) in request.headers.sorted(by: { $0.key < $1.key }) {
            headers.append(("X-Echo-" + name, value))
        }
        if request.bodyExceedsLimit {
            return .json(413, #"{"error":"payload_too_large"}"#, headers: headers)
        }
        return HTTPResponse(status: 200, headers: headers + [("Content-Type", "application/octet-stream")], body: request.body)
    }

    private func timed<T>(_ body: () throws -> T) rethrows -> (T, Duration) {
        let start = MonotonicInstant.now()
        let value = try body()
        return (value, MonotonicInstant.now() - start)
    }

    private func pause(_ duration: Duration) {
        usleep(UInt32(duration.nanoseconds / 1000))
    }

    // MARK: - Requests and responses

    func testGetIsAnsweredWithStatusHeadersAndBody() throws {
        let server = try start()
        let connection = try server.connect()
        let answer = try connection.exchange(FastCGIRecord.request(
            uri: "/api/items?a=1&b=2",
            extra: [("HTTP_AUTHORIZATION", "Bearer secret"), ("HTTP_X_FORWARDED_FOR", "10.0.0.1"), ("REQUEST_ID", "req-42")]
        ))
        XCTAssertEqual(answer.statusLine, "Status: 200 OK")
        XCTAssertEqual(answer.header("X-Method"), "GET")
        XCTAssertEqual(answer.header("X-Path"), "/api/items")
        XCTAssertEqual(answer.header("X-Query"), "a=1&b=2")
        XCTAssertEqual(answer.header("X-Request-Id"), "req-42")
        XCTAssertEqual(answer.header("X-Echo-authorization"), "Bearer secret")
        XCTAssertEqual(answer.header("X-Echo-x-forwarded-for"), "10.0.0.1")
        XCTAssertNil(answer.header("X-Echo-content-type"), "an empty CONTENT_TYPE is no header")
        XCTAssertEqual(answer.header("Content-Type"), "application/octet-stream")
        XCTAssertEqual(answer.header("Content-Length"), "0")
        XCTAssertEqual(answer.protocolStatus, 0)
        XCTAssertTrue(connection.waitForClose(timeout: .seconds(2)), "without FCGI_KEEP_CONN the server closes")
    }

    func testPathFallsBackToRequestURIWithoutQuery() throws {
        let server = try start()
        let connection = try server.connect()
        let parameters = FastCGIRecord.pairs([("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/x/y%20z?q=1"), ("QUERY_STRING", "q=1")])
        let answer = try connection.exchange(
            FastCGIRecord.begin() + FastCGIRecord.stream(FastCGIRecord.params, parameters)
                + FastCGIRecord.stream(FastCGIRecord.stdin, [])
        )
        XCTAssertEqual(answer.header("X-Path"), "/x/y%20z")
        XCTAssertEqual(answer.header("X-Query"), "q=1")
        XCTAssertEqual(answer.header("X-Method"), "POST")
    }

    func testPostBodyArrivesIntact() throws {
        let server = try start()
        var generator = SystemRandomNumberGenerator()
        let body = (0..<10_240).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let connection = try server.connect()
        let answer = try connection.exchange(FastCGIRecord.request(method: "POST", uri: "/upload", body: body, stdinChunk: 3001))
        XCTAssertEqual(answer.status, 200)
        XCTAssertEqual(answer.header("X-Exceeds"), "false")
        XCTAssertEqual(answer.header("X-Echo-content-length"), "10240")
        XCTAssertEqual(answer.header("Content-Length"), "10240")
        XCTAssertEqual(answer.body, body)
    }

    /// A body over the limit is read only as far as was checked before the request was served
    /// (RequestHead): its rest is never parsed by libfcgi, so the connection is answered and closed.
    func testBodyOverTheLimitIsFlaggedAnsweredAndTheConnectionClosed() throws {
        let server = try start(bodyLimit: 1000)
        let declared = try server.connect()
        let answer = try declared.exchange(FastCGIRecord.request(
            keepConnection: true, method: "POST", body: Array(repeating: 7, count: 30_000), stdinChunk: 2047
        ))
        XCTAssertEqual(answer.status, 413)
        XCTAssertEqual(answer.statusLine, "Status: 413 Content Too Large")
        XCTAssertEqual(answer.header("X-Exceeds"), "true")
        XCTAssertTrue(declared.waitForClose(timeout: .seconds(2)), "the unread rest of the body is never taken for a request")

        let undeclared = try server.connect()
        let sent = try undeclared.exchange(FastCGIRecord.request(
            keepConnection: true, method: "POST", body: Array(repeating: 8, count: 1500), sendsContentLength: false
        ))
        XCTAssertEqual(sent.status, 413, "bytes actually sent over the limit count too")
        XCTAssertTrue(undeclared.waitForClose(timeout: .seconds(2)))

        let kept = try server.connect()
        let exact = Array(repeating: UInt8(9), count: 1000)
        for _ in 0..<2 {
            let atLimit = try kept.exchange(FastCGIRecord.request(keepConnection: true, method: "POST", body: exact))
            XCTAssertEqual(atLimit.status, 200)
            XCTAssertEqual(atLimit.body, exact, "a body at the limit is read whole and the connection kept")
        }
    }

    /// FCGI_GET_VALUES with four FCGI_MAX_CONNS overflows libfcgi's 64-byte answer buffer and
    /// aborts the process (this test process, here). In the head or in the body, it is refused.
    func testManagementRecordsAreRefusedAndNeverAnswered() throws {
        let server = try start(workers: 1)
        let getValues = FastCGIRecord.record(9, id: 0, FastCGIRecord.pairs(Array(repeating: ("FCGI_MAX_CONNS", ""), count: 4)))
        let head = FastCGIRecord.begin() + FastCGIRecord.stream(FastCGIRecord.params, FastCGIRecord.pairs([("REQUEST_METHOD", "POST")]))
        for bytes in [getValues + FastCGIRecord.request(uri: "/x"),
                      head + FastCGIRecord.record(FastCGIRecord.stdin, [1, 2]) + getValues + FastCGIRecord.record(FastCGIRecord.stdin)] {
            let attack = try server.connect()
            try attack.send(bytes)
            XCTAssertTrue(attack.waitForClose(timeout: .seconds(2)))
        }
        let connection = try server.connect()
        XCTAssertEqual(try connection.exchange(FastCGIRecord.request(uri: "/alive")).header("X-Path"), "/alive")
    }

    func testBodyFarOverTheLimitIsAnsweredAndTheConnectionClosed() throws {
        let server = try start(bodyLimit: 1000)
        let connection = try server.connect()
        // Declares 4 MiB, sends only the start of it: the server must answer without reading it all.
        let head = FastCGIRecord.begin(keepConnection: true)
            + FastCGIRecord.stream(FastCGIRecord.params, FastCGIRecord.pairs([("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "\(4 << 20)")]))
            + FastCGIRecord.record(FastCGIRecord.stdin, Array(repeating: 1, count: 60_000))
        let answer = try connection.exchange(head)
        XCTAssertEqual(answer.status, 413)
        XCTAssertTrue(connection.waitForClose(timeout: .seconds(2)), "a connection with an undrainable body is not kept")
    }

    func testHandlerThatThrowsGetsA500() throws {
        struct Failure: Error {}
        let server = try start(handler: { _ in throw Failure() })
        let connection = try server.connect()
        let answer = try connection.exchange(FastCGIRecord.request(extra: [("HTTP_AUTHORIZATION", "Bearer secret")]))
        XCTAssertEqual(answer.statusLine, "Status: 500 Internal Server Error")
        XCTAssertEqual(answer.header("Content-Type"), "application/json")
        XCTAssertEqual(answer.bodyText, #"{"error":"internal","message":"internal error"}"#)
        XCTAssertEqual(answer.header("Content-Length"), "\(answer.body.count)")
    }

    // MARK: - Kept connections

    func testKeptConnectionCarriesSeveralRequests() throws {
        let server = try start(workers: 1)
        let first = try server.connect()
        let second = try server.connect()
        // One worker, two kept connections used in turn: neither pins the worker while idle.
        for round in 1...5 {
            for (connection, name) in [(first, "a"), (second, "b")] {
                let id = UInt16(round)
                let answer = try connection.exchange(
                    FastCGIRecord.request(id: id, keepConnection: true, method: "POST", uri: "/\(name)/\(round)", body: Array("\(name)\(round)".utf8)),
                    id: id
                )
                XCTAssertEqual(answer.header("X-Path"), "/\(name)/\(round)")
                XCTAssertEqual(answer.bodyText, "\(name)\(round)")
            }
        }
        XCTAssertFalse(first.waitForClose(timeout: .milliseconds(100)), "a kept connection stays open")
    }

    func testIdleSilentAndOneByteConnectionsDoNotStarveNewRequests() throws {
        let server = try start(workers: 2)
        var kept: [TestConnection] = []
        for index in 0..<6 {
            let connection = try server.connect()
            let answer = try connection.exchange(FastCGIRecord.request(keepConnection: true, uri: "/kept/\(index)"))
            XCTAssertEqual(answer.status, 200)
            kept.append(connection)
        }
        let silent = try (0..<4).map { _ in try server.connect() }
        let oneByte = try (0..<4).map { _ in try server.connect() }
        for connection in oneByte { try connection.send([1]) }
        pause(.milliseconds(100))

        for index in 0..<4 {
            let connection = try server.connect()
            let (answer, elapsed) = try timed { try connection.exchange(FastCGIRecord.request(uri: "/new/\(index)")) }
            XCTAssertEqual(answer.header("X-Path"), "/new/\(index)")
            XCTAssertLessThan(elapsed, .milliseconds(500), "a new request waited behind idle connections")
        }
        for (index, connection) in kept.enumerated() {
            let (answer, elapsed) = try timed { try connection.exchange(FastCGIRecord.request(keepConnection: true, uri: "/again/\(index)")) }
            XCTAssertEqual(answer.header("X-Path"), "/again/\(index)")
            XCTAssertLessThan(elapsed, .milliseconds(500))
        }
        withExtendedLifetime((silent, oneByte)) {}
    }

    // MARK: - Misbehaving clients

    /// A body is awaited with the head: a client stalled in its body never holds a worker, and
    /// is closed when the first record timeout passes.
    func testClientStalledInItsBodyHoldsNoWorker() throws {
        let server = try start(workers: 1, receiveTimeout: .milliseconds(300), firstRecordTimeout: .milliseconds(600))
        let stalled = try server.connect()
        let head = FastCGIRecord.begin()
            + FastCGIRecord.stream(FastCGIRecord.params, FastCGIRecord.pairs([("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "100")]))
        // A STDIN record header announcing 100 bytes, then only 10 of them.
        try stalled.send(head + [1, FastCGIRecord.stdin, 0, 1, 0, 100, 0, 0] + Array(repeating: 0x41, count: 10))
        pause(.milliseconds(50))

        let other = try server.connect()
        let (answer, elapsed) = try timed { try other.exchange(FastCGIRecord.request(uri: "/after")) }
        XCTAssertEqual(answer.header("X-Path"), "/after")
        XCTAssertLessThan(elapsed, .milliseconds(300), "the only worker was held by the stalled client")
        XCTAssertTrue(stalled.waitForClose(timeout: .seconds(2)))
    }

    /// A new connection's deadline reaches the time keeper even while it sleeps until a later one
    /// (a kept connection's idle deadline): a silent client is closed at its first record timeout.
    func testASilentConnectionIsClosedInTimeWhileTheKeeperSleepsOnALaterDeadline() throws {
        let server = try start(workers: 1, firstRecordTimeout: .milliseconds(400))
        let kept = try server.connect()
        XCTAssertEqual(try kept.exchange(FastCGIRecord.request(keepConnection: true)).status, 200)
        pause(.milliseconds(100))
        let opened = MonotonicInstant.now()
        let silent = try server.connect()
        XCTAssertTrue(silent.waitForClose(timeout: .seconds(3)), "the silent connection outlived its first record timeout")
        XCTAssertLessThan(MonotonicInstant.now() - opened, .milliseconds(1500))
        withExtendedLifetime(kept) {}
    }

    func testConnectionsWithoutAWholeHeadAreClosedAfterTheFirstRecordTimeout() throws {
        let server = try start(workers: 1, firstRecordTimeout: .milliseconds(400))
        let opened = MonotonicInstant.now()
        let silent = try server.connect()
        let oneByte = try server.connect()
        try oneByte.send([1])
        let halfParams = try server.connect()
        // A PARAMS record announcing 200 bytes, of which 50 arrive.
        try halfParams.send(FastCGIRecord.begin() + [1, FastCGIRecord.params, 0, 1, 0, 200, 0, 0] + Array(repeating: 0x41, count: 50))

        let other = try server.connect()
        let (answer, elapsed) = try timed { try other.exchange(FastCGIRecord.request(uri: "/meanwhile")) }
        XCTAssertEqual(answer.header("X-Path"), "/meanwhile")
        XCTAssertLessThan(elapsed, .milliseconds(300), "an incomplete head must not hold the only worker")

        for connection in [silent, oneByte, halfParams] {
            XCTAssertTrue(connection.waitForClose(timeout: .seconds(2)))
        }
        XCTAssertGreaterThan(MonotonicInstant.now() - opened, .milliseconds(350), "closed before the timeout")
    }

    /// docs/fastcgi.md, 1: 32 bytes that make libfcgi 2.4.2 abort the whole process.
    func testParameterLengthsThatWouldAbortLibfcgiAreRefused() throws {
        let server = try start(workers: 1)
        let attack = try server.connect()
        try attack.send([
            0x01, 0x01, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x01, 0x04, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00,
        ])
        XCTAssertTrue(attack.waitForClose(timeout: .seconds(2)))

        let connection = try server.connect()
        XCTAssertEqual(try connection.exchange(FastCGIRecord.request(uri: "/alive")).header("X-Path"), "/alive")
    }

    /// Seeded random record sequences, management records of every type and shape among them
    /// (GET_VALUES with names libfcgi answers, lengths past the data, every request id), sent raw
    /// to a worker process running in this test process: whatever reaches libfcgi and crashes
    /// would take the test process with it. Each connection ends, and the process still answers.
    func testRandomRecordSequencesNeverCrashTheProcess() throws {
        var random = SplitMix64(seed: 0xFC61_0002)
        let server = try start(workers: 2, firstRecordTimeout: .milliseconds(300))
        func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
        func content() -> [UInt8] {
            switch random.next() % 5 {
            case 0: return FastCGIRecord.pairs(Array(repeating: (pick(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS", "X"]), ""),
                                                     count: Int(random.next() % 6)))
            case 1: return [0xC0, 0, 0, 0, 0xC0, 0, 0, 0]
            case 2: return [0x7F, 0x7F] + (0..<Int(random.next() % 20)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 3: return FastCGIRecord.pairs([("REQUEST_METHOD", "GET"), ("CONTENT_LENGTH", pick(["", "5", "70000", "x"]))])
            default: return (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            }
        }
        for round in 0..<300 {
            var bytes: [UInt8] = []
            for _ in 0..<(1 + Int(random.next() % 6)) {
                let type = pick([UInt8(1), 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 255])
                let id = pick([UInt16(0), 1, 1, 2, 65535])
                bytes += type == 1 ? FastCGIRecord.begin(id: id, role: pick([1, 1, 2, 9]), keepConnection: random.next() % 2 == 0)
                    : FastCGIRecord.record(type, id: id, content(), padding: UInt8(random.next() % 9))
            }
            if random.next() % 3 == 0 { bytes += FastCGIRecord.request(uri: "/after-\(round)") }
            let connection = try server.connect(readTimeout: .seconds(3))
            try? connection.send(bytes)
            connection.shutdownWrite()
            XCTAssertTrue(connection.waitForClose(timeout: .seconds(3)), "round \(round): the connection stayed open")
        }
        let connection = try server.connect()
        XCTAssertEqual(try connection.exchange(FastCGIRecord.request(uri: "/alive")).header("X-Path"), "/alive")
    }

    /// An unknown role makes FCGX_Accept_r drop the connection and loop back to accept; with
    /// listen_sock -1 that accept fails at once instead of blocking the worker.
    func testRequestLibfcgiRefusesDoesNotBlockTheWorker() throws {
        let server = try start(workers: 1)
        let refused = try server.connect()
        try refused.send(FastCGIRecord.begin(role: 7) + FastCGIRecord.stream(FastCGIRecord.params, []) + FastCGIRecord.stream(FastCGIRecord.stdin, []))
        XCTAssertTrue(refused.waitForClose(timeout: .seconds(2)))

        let connection = try server.connect()
        let (answer, elapsed) = try timed { try connection.exchange(FastCGIRecord.request(uri: "/next")) }
        XCTAssertEqual(answer.header("X-Path"), "/next")
        XCTAssertLessThan(elapsed, .milliseconds(500))
    }

    // MARK: - Stopping

    func testStopLetsTheRequestInFlightFinish() throws {
        let entered = CountdownLatch(count: 1)
        let server = try start(handler: { request in
            entered.countDown()
            usleep(400_000)
            return .json(200, #"{"done":true}"#)
        })
        let connection = try server.connect()
        try connection.send(FastCGIRecord.request(uri: "/slow"))
        XCTAssertTrue(entered.wait(until: .now() + .seconds(2)))

        server.process.stop()
        server.process.stop()
        XCTAssertFalse(server.hasReturned)
        let answer = try connection.readAnswer()
        XCTAssertEqual(answer.status, 200)
        XCTAssertEqual(answer.bodyText, #"{"done":true}"#)
        XCTAssertTrue(server.waitForReturn(timeout: .seconds(2)), "run did not return after the last request")
    }

    func testStopKeepsServingKeptConnectionsUntilThePeerClosesThem() throws {
        let server = try start(drainTimeout: .seconds(10))
        let kept = try server.connect()
        XCTAssertEqual(try kept.exchange(FastCGIRecord.request(keepConnection: true, uri: "/before")).status, 200)

        server.process.stop()
        pause(.milliseconds(150))
        XCTAssertFalse(server.hasReturned, "returned with a kept connection still open")
        let during = try kept.exchange(FastCGIRecord.request(keepConnection: true, method: "POST", uri: "/during", body: Array("late".utf8)))
        XCTAssertEqual(during.header("X-Path"), "/during")
        XCTAssertEqual(during.bodyText, "late")

        let (returned, elapsed) = timed { () -> Bool in
            kept.close()
            return server.waitForReturn(timeout: .seconds(2))
        }
        XCTAssertTrue(returned)
        XCTAssertLessThan(elapsed, .milliseconds(500))
    }

    /// A web server that keeps idle connections long (nginx's default upstream keepalive_timeout
    /// is 60 s) does not hold a stop: kept connections idle drainIdleTimeout are closed, those idle
    /// since before the stop and those whose last request ended during the drain alike.
    func testStopClosesKeptConnectionsOnceIdleForTheDrainIdleTimeout() throws {
        let entered = CountdownLatch(count: 1)
        let server = try start(drainTimeout: .seconds(20), drainIdleTimeout: .milliseconds(500), handler: { request in
            if request.path == "/slow" {
                entered.countDown()
                usleep(300_000)
            }
            return .json(200, "{}")
        })
        let idle = try server.connect()
        XCTAssertEqual(try idle.exchange(FastCGIRecord.request(keepConnection: true)).status, 200)
        let busy = try server.connect()
        try busy.send(FastCGIRecord.request(keepConnection: true, uri: "/slow"))
        XCTAssertTrue(entered.wait(until: .now() + .seconds(2)))

        let (returned, elapsed) = try timed { () -> Bool in
            server.process.stop()
            XCTAssertEqual(try busy.readAnswer().status, 200, "the request in flight is answered")
            return server.waitForReturn(timeout: .seconds(5))
        }
        XCTAssertTrue(returned, "the stop waited on idle kept connections")
        XCTAssertGreaterThan(elapsed, .milliseconds(700), "closed before idling drainIdleTimeout after its request")
        XCTAssertLessThan(elapsed, .milliseconds(2000))
        XCTAssertTrue(idle.waitForClose(timeout: .seconds(1)))
        XCTAssertTrue(busy.waitForClose(timeout: .seconds(1)))
    }

    func testDrainTimeoutClosesWhatRemains() throws {
        let server = try start(drainTimeout: .milliseconds(400))
        let kept = try server.connect()
        XCTAssertEqual(try kept.exchange(FastCGIRecord.request(keepConnection: true)).status, 200)

        let (returned, elapsed) = timed { () -> Bool in
            server.process.stop()
            return server.waitForReturn(timeout: .seconds(3))
        }
        XCTAssertTrue(returned)
        XCTAssertGreaterThan(elapsed, .milliseconds(350))
        XCTAssertTrue(kept.waitForClose(timeout: .seconds(1)))
    }
}
