import Foundation
import Platform
import Postgres
import TestSupport
import XCTest

/// The pool against the real PostgreSQL: waits, broken connections, a restart, a dead database.
final class ConnectionPoolTests: XCTestCase {
    var environment: TestEnvironment!

    override func setUpWithError() throws {
        environment = try TestEnvironment.require()
    }

    func makePool(
        size: Int = 2, waitLimit: Duration = .seconds(2), idleCheckAfter: Duration = .seconds(30),
        url: String? = nil, connect: ConnectionPool.Connect? = nil
    ) -> (ConnectionPool, String) {
        let name = "pool-test-" + UUID().uuidString.prefix(8)
        let configuration = PoolConfiguration(
            size: size, waitLimit: waitLimit, idleCheckAfter: idleCheckAfter,
            connection: ConnectionSettings(applicationName: name))
        let pool: ConnectionPool
        if let connect {
            pool = ConnectionPool(conninfo: url ?? environment.databaseURL, configuration: configuration, connect: connect)
        } else {
            pool = ConnectionPool(conninfo: url ?? environment.databaseURL, configuration: configuration)
        }
        return (pool, name)
    }

    func admin() throws -> Connection { try Connection.connect(environment.adminDatabaseURL, settings: testSettings) }

    func pid(_ pool: ConnectionPool) throws -> Int32 {
        try pool.withConnection { connection in
            Int32(try connection.query("SELECT pg_backend_pid()").first!.requiredInt(0))
        }
    }

    func testLeaseRunsAndReturns() throws {
        let (pool, name) = makePool()
        defer { pool.close() }
        let value = try pool.withConnection { connection in
            try connection.query("SELECT current_setting('application_name') AS a").first!.requiredString("a")
        }
        XCTAssertEqual(value, name)
        XCTAssertEqual(pool.stats.open, 1)
        XCTAssertEqual(pool.stats.idle, 1)
        XCTAssertEqual(pool.stats.waiting, 0)
        // The same connection is reused.
        XCTAssertEqual(try pid(pool), try pid(pool))
        XCTAssertEqual(pool.stats.open, 1)
    }

    func testManyThreadsShareABoundedPool() throws {
        let (pool, name) = makePool(size: 3, waitLimit: .seconds(10))
        defer { pool.close() }
        let failures = Locked(0)
        let peak = Locked(0)
        concurrently(8) { _ in
            for _ in 0..<40 {
                do {
                    try pool.withConnection { connection in
                        _ = try connection.query("SELECT pg_sleep(0.001)")
                    }
                    peak.withLock { $0 = max($0, pool.stats.open) }
                } catch {
                    failures.withLock { $0 += 1 }
                }
            }
        }
        XCTAssertEqual(failures.current, 0)
        XCTAssertLessThanOrEqual(peak.current, 3)
        let admin = try admin()
        defer { admin.close() }
        let backends = try admin.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", [name]).first?.int(0)
        XCTAssertLessThanOrEqual(backends ?? 99, 3)
    }

    func testExhaustedPoolFailsWithinTheWaitLimit() throws {
        let (pool, _) = makePool(size: 1, waitLimit: .milliseconds(500))
        defer { pool.close() }
        let holding = CountdownLatch(count: 1)
        let release = CountdownLatch(count: 1)
        let finished = CountdownLatch(count: 1)
        try! startThread(name: "holder") {
            _ = try? pool.withConnection { _ in
                holding.countDown()
                release.wait(until: .now() + .seconds(10))
            }
            finished.countDown()
        }
        XCTAssertTrue(holding.wait(until: .now() + .seconds(5)))
        let start = MonotonicInstant.now()
        XCTAssertThrowsError(try pool.withConnection { _ in }) { error in
            guard case PoolError.unavailable(let reason)? = error as? PoolError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("no database connection free"), reason)
        }
        let waited = elapsed(since: start)
        XCTAssertGreaterThanOrEqual(waited, 0.45)
        XCTAssertLessThan(waited, 1.0)
        XCTAssertEqual(pool.stats.waiting, 0)
        release.countDown()
        finished.wait()
        try pool.withConnection { connection in try connection.ping() }
    }

    func testWaiterGetsTheConnectionWhenItComesBack() throws {
        let (pool, _) = makePool(size: 1, waitLimit: .seconds(5))
        defer { pool.close() }
        let holding = CountdownLatch(count: 1)
        try! startThread(name: "holder") {
            _ = try? pool.withConnection { _ in
                holding.countDown()
                usleep(200_000)
            }
        }
        holding.wait()
        let start = MonotonicInstant.now()
        try pool.withConnection { connection in try connection.ping() }
        XCTAssertGreaterThan(elapsed(since: start), 0.1)
        XCTAssertEqual(pool.stats.open, 1)
    }

    func testTerminatedIdleBackendIsReplacedWithoutFailingTheNextLease() throws {
        let (pool, name) = makePool(size: 1)
        defer { pool.close() }
        let first = try pid(pool)
        let admin = try admin()
        defer { admin.close() }
        let terminated = try admin.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [name])
        XCTAssertEqual(terminated.rowCount, 1)
        try waitUntilGone(first, admin)
        let second = try pid(pool)
        XCTAssertNotEqual(first, second)
        XCTAssertEqual(pool.stats.open, 1)
    }

    func testBackendTerminatedDuringALeaseIsDiscardedAndReplaced() throws {
        let (pool, _) = makePool(size: 1)
        defer { pool.close() }
        let admin = try admin()
        defer { admin.close() }
        XCTAssertThrowsError(try pool.withConnection { connection in
            try admin.query("SELECT pg_terminate_backend($1::int)", [String(connection.backendPID)])
            try waitUntilGone(connection.backendPID, admin)
            _ = try connection.query("SELECT 1")
        }) { error in
            XCTAssertEqual((error as? PostgresError)?.kind, .connectionLost, "\(error)")
        }
        XCTAssertEqual(pool.stats.open, 0)
        try pool.withConnection { connection in try connection.ping() }
        XCTAssertEqual(pool.stats.open, 1)
    }

    func testIdleConnectionIsPingedAndReplacedWhenDead() throws {
        let connects = Locked(0)
        let (pool, _) = makePool(size: 1, idleCheckAfter: .zero) { conninfo, settings in
            connects.withLock { $0 += 1 }
            return try Connection.connect(conninfo, settings: settings)
        }
        defer { pool.close() }
        for _ in 0..<5 { try pool.withConnection { connection in try connection.ping() } }
        XCTAssertEqual(connects.current, 1)
    }

    func testConnectionLeftInATransactionIsRolledBack() throws {
        let (pool, _) = makePool(size: 1)
        defer { pool.close() }
        try pool.withConnection { connection in
            try connection.query("BEGIN")
            try connection.query("CREATE TEMP TABLE leftover (n int)")
        }
        try pool.withConnection { connection in
            XCTAssertEqual(connection.transactionState, .idle)
            XCTAssertEqual(try connection.query("SELECT to_regclass('pg_temp.leftover') IS NULL").first?.bool(0), true)
        }
    }

    func testUnreachableDatabaseFailsFast() throws {
        let (pool, _) = makePool(size: 2, waitLimit: .seconds(5), url: "postgresql://leadimport_service@127.0.0.1:1/leadimport")
        defer { pool.close() }
        for _ in 0..<3 {
            let start = MonotonicInstant.now()
            XCTAssertThrowsError(try pool.withConnection { _ in }) { error in
                guard case PoolError.unavailable(let reason)? = error as? PoolError else { return XCTFail("\(error)") }
                XCTAssertTrue(reason.contains("cannot be reached"), reason)
            }
            XCTAssertLessThan(elapsed(since: start), 1.0)
        }
        XCTAssertEqual(pool.stats, .init(open: 0, idle: 0, leased: 0, connecting: 0, waiting: 0))
    }

    func testConnectFailureFromTheFactoryFailsAllWaitersPromptly() throws {
        let (pool, _) = makePool(size: 2, waitLimit: .seconds(5)) { _, _ in
            usleep(100_000)
            throw PostgresError(kind: .connectionFailed, message: "could not connect to database \"x\": refused")
        }
        defer { pool.close() }
        let start = MonotonicInstant.now()
        let outcomes = Locked<[String]>([])
        concurrently(4) { _ in
            do {
                try pool.withConnection { _ in }
                outcomes.withLock { $0.append("ok") }
            } catch {
                outcomes.withLock { $0.append("\(error)") }
            }
        }
        XCTAssertLessThan(elapsed(since: start), 2.0)
        XCTAssertEqual(outcomes.current.count, 4)
        for outcome in outcomes.current { XCTAssertTrue(outcome.contains("refused"), outcome) }
    }

    func testClosedPoolRefusesLeases() throws {
        let (pool, _) = makePool()
        try pool.withConnection { connection in try connection.ping() }
        pool.close()
        XCTAssertEqual(pool.stats.open, 0)
        XCTAssertThrowsError(try pool.withConnection { _ in }) { error in
            XCTAssertEqual(error as? PoolError, .unavailable(reason: "the connection pool is closed"))
        }
    }

    /// Stops and starts the test PostgreSQL: the same pool object notices and recovers.
    func testPoolSurvivesARestartOfPostgreSQL() throws {
        let (pool, _) = makePool(size: 2, waitLimit: .seconds(3))
        defer { pool.close() }
        try pool.withConnection { connection in try connection.ping() }
        // Hold one connection across the restart as well.
        XCTAssertEqual(pool.stats.idle, 1)

        var restarted = false
        defer { if !restarted { try? stack(environment, "pg-start") } }
        try stack(environment, "pg-stop")

        // Down: fails fast, well under the wait limit.
        for _ in 0..<3 {
            let start = MonotonicInstant.now()
            XCTAssertThrowsError(try pool.withConnection { connection in _ = try connection.query("SELECT 1") }) { error in
                XCTAssertTrue(error is PoolError || (error as? PostgresError)?.isConnectionProblem == true, "\(error)")
            }
            XCTAssertLessThan(elapsed(since: start), 1.0)
        }

        try stack(environment, "pg-start")
        restarted = true

        var attempts = 0
        var worked = false
        let start = MonotonicInstant.now()
        while !worked && elapsed(since: start) < 15 {
            attempts += 1
            do {
                try pool.withConnection { connection in _ = try connection.query("SELECT 1") }
                worked = true
            } catch {
                XCTAssertTrue(error is PoolError || (error as? PostgresError)?.isConnectionProblem == true, "\(error)")
                usleep(100_000)
            }
        }
        XCTAssertTrue(worked, "the pool never recovered")
        XCTAssertLessThanOrEqual(attempts, 2, "the first or second call after the restart should work")
        // And keeps working.
        for _ in 0..<5 { try pool.withConnection { connection in _ = try connection.query("SELECT 1") } }
    }

    /// A pool whose connections all died in a restart while nobody used it recovers on first use.
    func testIdleConnectionsKilledByARestartAreReplacedOnFirstUse() throws {
        let (pool, _) = makePool(size: 2)
        defer { pool.close() }
        concurrently(2) { _ in _ = try? pool.withConnection { _ in usleep(50_000) } }
        XCTAssertEqual(pool.stats.idle, 2)
        var restarted = false
        defer { if !restarted { try? stack(environment, "pg-stop"); try? stack(environment, "pg-start") } }
        try stack(environment, "pg-stop")
        try stack(environment, "pg-start")
        restarted = true
        try pool.withConnection { connection in _ = try connection.query("SELECT 1") }
        XCTAssertLessThanOrEqual(pool.stats.open, 2)
    }
}
