import Foundation
import Platform
import Postgres
import TestSupport
import XCTest

/// One connection against the real PostgreSQL (the service role; temp tables only).
final class ConnectionTests: XCTestCase {
    var environment: TestEnvironment!
    var connection: Connection!

    override func setUpWithError() throws {
        environment = try TestEnvironment.require()
        connection = try Connection.connect(environment.databaseURL, settings: testSettings)
    }

    override func tearDown() {
        connection?.close()
    }

    func testTextParametersAndTypedDecoding() throws {
        let result = try connection.query(
            "SELECT $1::text AS name, $2::int AS count, $3::bool AS flag, $4::float8 AS ratio, $5::text AS missing, $6::uuid AS id",
            ["Zoë", "42", "true", "0.5", nil, "00000000-0000-0000-0000-000000000000"])
        XCTAssertEqual(result.rowCount, 1)
        XCTAssertEqual(result.columns, ["name", "count", "flag", "ratio", "missing", "id"])
        let row = try XCTUnwrap(result.first)
        XCTAssertEqual(try row.string("name"), "Zoë")
        XCTAssertEqual(try row.string(0), "Zoë")
        XCTAssertEqual(try row.int("count"), 42)
        XCTAssertEqual(try row.requiredInt(1), 42)
        XCTAssertEqual(try row.bool("flag"), true)
        XCTAssertEqual(try row.double("ratio"), 0.5)
        XCTAssertNil(try row.string("missing"))
        XCTAssertTrue(try row.isNull("missing"))
        XCTAssertFalse(try row.isNull("name"))
        XCTAssertEqual(try row.string("id"), "00000000-0000-0000-0000-000000000000")
    }

    func testValuesAndLiterals() throws {
        let row = try XCTUnwrap(connection.query(
            "SELECT $1::text AS a, $2::int8 AS b, $3::bool AS c, $4::text AS d",
            values: ["x", 9_000_000_000, false, nil]).first)
        XCTAssertEqual(try row.string("a"), "x")
        XCTAssertEqual(try row.int("b"), 9_000_000_000)
        XCTAssertEqual(try row.bool("c"), false)
        XCTAssertNil(try row.string("d"))
    }

    func testParametersAreNeverSQL() throws {
        let hostile = "'); DROP TABLE users; --"
        let row = try XCTUnwrap(connection.query("SELECT $1::text AS v", [hostile]).first)
        XCTAssertEqual(try row.string("v"), hostile)
    }

    func testDecodingErrorsNameTheColumn() throws {
        let row = try XCTUnwrap(connection.query("SELECT 'abc'::text AS word, NULL::int AS nothing").first)
        XCTAssertThrowsError(try row.int("word")) { error in
            let error = error as! PostgresError
            XCTAssertEqual(error.kind, .decoding)
            XCTAssertEqual(error.column, "word")
            XCTAssertTrue(error.message.contains("\"word\""), error.message)
        }
        XCTAssertThrowsError(try row.requiredInt("nothing")) { error in
            XCTAssertEqual((error as! PostgresError).column, "nothing")
            XCTAssertEqual((error as! PostgresError).kind, .decoding)
        }
        XCTAssertThrowsError(try row.string("no_such_column")) { error in
            XCTAssertEqual((error as! PostgresError).kind, .decoding)
            XCTAssertTrue((error as! PostgresError).message.contains("no_such_column"))
        }
        XCTAssertThrowsError(try row.string(7)) { error in
            XCTAssertEqual((error as! PostgresError).kind, .decoding)
        }
        XCTAssertThrowsError(try row.bytes("word")) { error in
            XCTAssertEqual((error as! PostgresError).kind, .decoding)
        }
    }

    func testByteaRoundTrip() throws {
        let every = (0...255).map { UInt8($0) }
        for bytes in [every, [], [0], Array(repeating: 0xFF, count: 10_000)] {
            let prepared = try connection.query("SELECT $1::bytea AS b, octet_length($1::bytea) AS n", values: [.bytea(bytes)])
            XCTAssertEqual(try prepared.first?.bytes("b"), bytes)
            XCTAssertEqual(try prepared.first?.int("n"), bytes.count)
            let once = try connection.queryUnprepared("SELECT $1::bytea AS b", [.bytea(bytes)])
            XCTAssertEqual(try once.first?.requiredBytes("b"), bytes)
        }
        let null = try connection.query("SELECT NULL::bytea AS b")
        XCTAssertNil(try null.first?.bytes("b"))
        // The old escape output format decodes too.
        try connection.query("SET bytea_output = 'escape'")
        let escaped = try connection.query("SELECT $1::bytea AS b", values: [.bytea(every)])
        XCTAssertEqual(try escaped.first?.bytes("b"), every)
    }

    func testTextArrayRoundTripsEveryElementExactly() throws {
        let tricky: [String?] = [
            "plain", "", nil, "NULL", "with \"quotes\"", "back\\slash", "comma,brace{}", " padded ", "Zoë 🚀",
            "multi\nline\ttab", String(repeating: "x", count: 70_000),
        ]
        for values in [tricky, [], [nil], ["only"], Array(repeating: "same", count: 500)] {
            let result = try connection.query(
                "SELECT t.v, t.v IS NULL AS missing FROM unnest($1::text[]) WITH ORDINALITY AS t(v, n) ORDER BY t.n",
                values: [.textArray(values)])
            XCTAssertEqual(result.rowCount, values.count)
            XCTAssertEqual(try result.rows.map { try $0.string(0) }, values)
            let dimensions = try connection.query("SELECT cardinality($1::text[]) AS n, array_ndims($1::text[]) AS d",
                                                  values: [.textArray(values)])
            XCTAssertEqual(try dimensions.first?.int("n"), values.count)
            XCTAssertEqual(try dimensions.first?.int("d"), values.isEmpty ? nil : 1)
        }
        // Text cannot hold NUL: the server refuses the element, and says which encoding rule it broke.
        XCTAssertThrowsError(try connection.query("SELECT $1::text[]", values: [.textArray(["a\u{0}b"])])) { error in
            XCTAssertEqual((error as? PostgresError)?.sqlState, "22021")
        }
        XCTAssertEqual(connection.transactionState, .idle)
    }

    func testUUIDArrayRoundTripsInOrder() throws {
        let ids = ["00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
                   "0b1c2d3e-4f50-4a6b-8c7d-9e0fa1b2c3d4", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]
        let value = try XCTUnwrap(PostgresValue.uuidArray(ids))
        let result = try connection.query(
            "SELECT u::text FROM unnest($1::uuid[]) WITH ORDINALITY AS t(u, n) ORDER BY n", values: [value])
        XCTAssertEqual(try result.rows.map { try $0.requiredString(0) }, ids.map { $0.lowercased() })
        let empty = try connection.query("SELECT cardinality($1::uuid[]) AS n", values: [XCTUnwrap(PostgresValue.uuidArray([]))])
        XCTAssertEqual(try empty.first?.int("n"), 0)
        for bad in ["", "0b1c2d3e4f504a6b8c7d9e0fa1b2c3d4", "0b1c2d3e-4f50-4a6b-8c7d-9e0fa1b2c3d", "0b1c2d3e-4f50-4a6b-8c7d-9e0fa1b2c3d44",
                    "0b1c2d3e-4f50-4a6b-8c7d_9e0fa1b2c3d4", "gb1c2d3e-4f50-4a6b-8c7d-9e0fa1b2c3d4",
                    // Each dash a digit in turn (still 36 bytes), and a dash one place early.
                    "0b1c2d3e04f50-4a6b-8c7d-9e0fa1b2c3d4", "0b1c2d3e-4f5004a6b-8c7d-9e0fa1b2c3d4",
                    "0b1c2d3e-4f50-4a6b08c7d-9e0fa1b2c3d4", "0b1c2d3e-4f50-4a6b-8c7d09e0fa1b2c3d4",
                    "0b1c2d3-e4f50-4a6b-8c7d-9e0fa1b2c3d4"] {
            XCTAssertNil(PostgresValue.uuidArray([bad]), bad)
            // Refused whole, wherever the bad one is: no array of the good ones before it.
            XCTAssertNil(PostgresValue.uuidArray(ids + [bad] + ids), bad)
        }
        let many = (0..<1_000).map { _ in UUID().uuidString }
        let sent = try connection.query("SELECT array_agg(u::text ORDER BY n) FROM unnest($1::uuid[]) WITH ORDINALITY AS t(u, n)",
                                        values: [XCTUnwrap(PostgresValue.uuidArray(many))])
        XCTAssertEqual(try sent.first?.requiredString(0), "{" + many.map { $0.lowercased() }.joined(separator: ",") + "}")
    }

    func testInt4ArrayRoundTripsInOrder() throws {
        let values = [1, 0, -1, 500, 1_000_000, Int(Int32.max), Int(Int32.min), 7]
        let value = try XCTUnwrap(PostgresValue.int4Array(values))
        let result = try connection.query(
            "SELECT v, pg_typeof(v)::text AS type FROM unnest($1::int[]) WITH ORDINALITY AS t(v, n) ORDER BY n", values: [value])
        XCTAssertEqual(try result.rows.map { try $0.requiredInt(0) }, values)
        XCTAssertEqual(try result.first?.requiredString("type"), "integer")
        let empty = try connection.query("SELECT cardinality($1::int[]) AS n", values: [XCTUnwrap(PostgresValue.int4Array([]))])
        XCTAssertEqual(try empty.first?.int("n"), 0)
        // What an int4 cannot hold is refused here, never wrapped around on the way.
        XCTAssertNil(PostgresValue.int4Array([Int(Int32.max) + 1]))
        XCTAssertNil(PostgresValue.int4Array([1, Int(Int32.min) - 1]))
        // `integers` and `uuids` fall back to text, which the statement's cast refuses itself.
        XCTAssertEqual(try connection.query("SELECT sum(v)::int AS s FROM unnest($1::int[]) AS t(v)", values: [.integers([1, 2, 3])]).first?.int("s"), 6)
        XCTAssertThrowsError(try connection.query("SELECT $1::int[]", values: [.integers([Int(Int32.max) + 1])])) { error in
            XCTAssertEqual((error as? PostgresError)?.sqlState, "22003")
        }
        XCTAssertThrowsError(try connection.query("SELECT $1::uuid[]", values: [.uuids(["not a uuid"])])) { error in
            XCTAssertEqual((error as? PostgresError)?.sqlState, "22P02")
        }
        XCTAssertEqual(connection.transactionState, .idle)
    }

    func testByteaInATable() throws {
        try connection.queryUnprepared("CREATE TEMP TABLE hashes (h bytea UNIQUE NOT NULL)")
        let hash: [UInt8] = (0..<32).map { UInt8($0 * 7 % 256) }
        try connection.query("INSERT INTO hashes (h) VALUES ($1)", values: [.bytea(hash)])
        let found = try connection.query("SELECT count(*) AS n FROM hashes WHERE h = $1", values: [.bytea(hash)])
        XCTAssertEqual(try found.first?.int("n"), 1)
    }

    func testUniqueViolationKeepsSQLStateAndConstraint() throws {
        try connection.queryUnprepared("CREATE TEMP TABLE people (email text CONSTRAINT people_email_key UNIQUE)")
        try connection.query("INSERT INTO people (email) VALUES ($1)", ["a@example.com"])
        XCTAssertThrowsError(try connection.query("INSERT INTO people (email) VALUES ($1)", ["a@example.com"])) { error in
            guard let error = error as? PostgresError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.kind, .server)
            XCTAssertEqual(error.sqlState, "23505")
            XCTAssertTrue(error.isUniqueViolation)
            XCTAssertEqual(error.constraint, "people_email_key")
            XCTAssertEqual(error.table, "people")
            XCTAssertNotNil(error.detail)
            XCTAssertFalse(error.description.contains("a@example.com"), "description must not quote row values")
        }
        // The connection is still usable after a server error.
        XCTAssertFalse(connection.isBroken)
        XCTAssertEqual(try connection.query("SELECT count(*) AS n FROM people").first?.int("n"), 1)
    }

    func testOtherSQLStates() throws {
        try connection.queryUnprepared("CREATE TEMP TABLE checked (n int CHECK (n > 0))")
        XCTAssertThrowsError(try connection.query("INSERT INTO checked VALUES ($1)", ["-1"])) { error in
            XCTAssertTrue((error as! PostgresError).isCheckViolation)
        }
        XCTAssertThrowsError(try connection.query("SELECT $1::uuid", ["not-a-uuid"])) { error in
            XCTAssertEqual((error as! PostgresError).sqlState, "22P02")
            XCTAssertTrue((error as! PostgresError).isDataException)
        }
        XCTAssertThrowsError(try connection.query("SELECT * FROM no_such_table")) { error in
            XCTAssertEqual((error as! PostgresError).sqlState, "42P01")
        }
    }

    func testStatementTimeoutAndLockTimeoutAreSet() throws {
        XCTAssertEqual(try connection.query("SHOW statement_timeout").first?.string(0), "1min")
        XCTAssertEqual(try connection.query("SHOW lock_timeout").first?.string(0), "2s")
        XCTAssertEqual(try connection.query("SHOW application_name").first?.string(0), "leadimport-tests")
        let quick = try Connection.connect(
            environment.databaseURL, settings: ConnectionSettings(statementTimeout: .milliseconds(100)))
        defer { quick.close() }
        XCTAssertThrowsError(try quick.query("SELECT pg_sleep(2)")) { error in
            XCTAssertTrue((error as! PostgresError).isQueryCanceled)
        }
        XCTAssertFalse(quick.isBroken)
    }

    func testLockTimeout() throws {
        let other = try Connection.connect(environment.ownerDatabaseURL, settings: ConnectionSettings(lockTimeout: .milliseconds(200)))
        defer { other.close() }
        let holder = try Connection.connect(environment.ownerDatabaseURL, settings: testSettings)
        defer { holder.close() }
        try holder.query("SELECT pg_advisory_lock(4242)")
        let start = MonotonicInstant.now()
        XCTAssertThrowsError(try other.query("SELECT pg_advisory_lock(4242)")) { error in
            XCTAssertTrue((error as! PostgresError).isLockNotAvailable, "\(error)")
        }
        XCTAssertLessThan(elapsed(since: start), 1.5)
        try holder.query("SELECT pg_advisory_unlock(4242)")
    }

    func testUserOptionsInTheConnectionStringAreKept() throws {
        let separator = environment.databaseURL.contains("?") ? "&" : "?"
        let url = environment.databaseURL + separator + "options=-c%20search_path%3Dpg_catalog%2Cpublic"
        let custom = try Connection.connect(url, settings: testSettings)
        defer { custom.close() }
        XCTAssertEqual(try custom.query("SHOW search_path").first?.string(0), "pg_catalog,public")
        XCTAssertEqual(try custom.query("SHOW lock_timeout").first?.string(0), "2s")
    }

    func testPreparedStatementsAreReused() throws {
        for index in 0..<50 {
            _ = try connection.query("SELECT $1::int + 1 AS n", [String(index)])
        }
        _ = try connection.query("SELECT $1::text AS t", ["x"])
        let prepared = try connection.queryUnprepared("SELECT statement FROM pg_prepared_statements")
        let statements = try prepared.rows.map { try $0.requiredString("statement") }
        XCTAssertEqual(statements.filter { $0 == "SELECT $1::int + 1 AS n" }.count, 1)
        XCTAssertEqual(statements.filter { $0 == "SELECT $1::text AS t" }.count, 1)
    }

    func testThePreparedStatementCacheIsBounded() throws {
        let limit = Connection.preparedStatementLimit
        for index in 0..<(limit + 20) {
            XCTAssertEqual(try connection.query("SELECT $1::int + \(index) AS n", ["1"]).first?.int(0), 1 + index)
        }
        let count = try connection.queryUnprepared("SELECT count(*) FROM pg_prepared_statements").first?.int(0)
        XCTAssertEqual(count, limit)
        // Evicted statements are prepared again when they come back.
        XCTAssertEqual(try connection.query("SELECT $1::int + 0 AS n", ["1"]).first?.int(0), 1)
    }

    func testTheCacheEvictsTheStatementUsedLeastRecently() throws {
        let limit = Connection.preparedStatementLimit
        for index in 0..<limit {
            _ = try connection.query("SELECT $1::int + \(index) AS n", ["1"])
        }
        // Used again: the first is now the most recent, the second the least.
        _ = try connection.query("SELECT $1::int + 0 AS n", ["1"])
        _ = try connection.query("SELECT $1::int + \(limit) AS n", ["1"])
        let statements = Set(try connection.queryUnprepared("SELECT statement FROM pg_prepared_statements").rows
            .map { try $0.requiredString("statement") })
        XCTAssertEqual(statements.count, limit)
        XCTAssertTrue(statements.contains("SELECT $1::int + 0 AS n"))
        XCTAssertFalse(statements.contains("SELECT $1::int + 1 AS n"))
        XCTAssertTrue(statements.contains("SELECT $1::int + \(limit) AS n"))
    }

    func testDiscardAllDoesNotBreakTheCache() throws {
        XCTAssertEqual(try connection.query("SELECT $1::int AS n", ["1"]).first?.int(0), 1)
        try connection.queryUnprepared("DEALLOCATE ALL")
        XCTAssertEqual(try connection.query("SELECT $1::int AS n", ["2"]).first?.int(0), 2)
    }

    func testAStatementWhoseResultChangesShapeIsPreparedAgain() throws {
        try connection.queryUnprepared("CREATE TEMP TABLE shape (a int)")
        try connection.query("INSERT INTO shape VALUES (1)")
        XCTAssertEqual(try connection.query("SELECT * FROM shape").columns, ["a"])
        try connection.queryUnprepared("ALTER TABLE shape ADD COLUMN b int")
        XCTAssertEqual(try connection.query("SELECT * FROM shape").columns, ["a", "b"])
    }

    func testNulInATextParameterIsRefusedAndTheConnectionSurvives() throws {
        XCTAssertThrowsError(try connection.query("SELECT $1::text", ["a\u{0}b"])) { error in
            XCTAssertEqual((error as! PostgresError).sqlState, "22021")
        }
        try connection.ping()
    }

    func testTransactionCommitsAndRollsBack() throws {
        try connection.queryUnprepared("CREATE TEMP TABLE t (n int)")
        try connection.transaction { c in try c.query("INSERT INTO t VALUES (1)") }
        struct Boom: Error {}
        XCTAssertThrowsError(try connection.transaction { c in
            try c.query("INSERT INTO t VALUES (2)")
            throw Boom()
        })
        XCTAssertEqual(connection.transactionState, .idle)
        XCTAssertEqual(try connection.query("SELECT count(*) FROM t").first?.int(0), 1)
    }

    func testNestedTransactionUsesASavepoint() throws {
        try connection.queryUnprepared("CREATE TEMP TABLE u (n int PRIMARY KEY)")
        try connection.transaction { c in
            try c.query("INSERT INTO u VALUES (1)")
            XCTAssertThrowsError(try c.transaction { c in
                try c.query("INSERT INTO u VALUES (2)")
                try c.query("INSERT INTO u VALUES (1)")  // unique violation
            })
            XCTAssertEqual(c.transactionState, .inTransaction)
            try c.query("INSERT INTO u VALUES (3)")
        }
        let values = try connection.query("SELECT n FROM u ORDER BY n").rows.map { try $0.requiredInt(0) }
        XCTAssertEqual(values, [1, 3])
    }

    func testCommitOfAFailedTransactionThrows() throws {
        try connection.queryUnprepared("CREATE TEMP TABLE w (n int PRIMARY KEY)")
        XCTAssertThrowsError(try connection.transaction { c in
            try c.query("INSERT INTO w VALUES (1)")
            _ = try? c.query("INSERT INTO w VALUES (1)")  // swallowed
        }) { error in
            XCTAssertEqual((error as! PostgresError).sqlState, "25P02")
        }
        XCTAssertEqual(connection.transactionState, .idle)
        XCTAssertEqual(try connection.query("SELECT count(*) FROM w").first?.int(0), 0)
    }

    func testAffectedRowsAndCommandTag() throws {
        try connection.queryUnprepared("CREATE TEMP TABLE v (n int)")
        let insert = try connection.query("INSERT INTO v SELECT generate_series(1, $1::int)", ["5"])
        XCTAssertEqual(insert.affectedRows, 5)
        XCTAssertEqual(insert.commandTag, "INSERT 0 5")
        let update = try connection.query("UPDATE v SET n = n + 1 WHERE n > $1::int RETURNING n", ["3"])
        XCTAssertEqual(update.affectedRows, 2)
        XCTAssertEqual(update.rowCount, 2)
    }

    func testTerminatedBackendIsReportedAsConnectionLost() throws {
        let admin = try Connection.connect(environment.adminDatabaseURL, settings: testSettings)
        defer { admin.close() }
        let pid = connection.backendPID
        XCTAssertTrue(connection.looksHealthy)
        try admin.query("SELECT pg_terminate_backend($1::int)", [String(pid)])
        try waitUntilGone(pid, admin)
        XCTAssertFalse(connection.looksHealthy, "the server closed the socket: the cheap check must notice")
        XCTAssertThrowsError(try connection.query("SELECT 1")) { error in
            XCTAssertEqual((error as! PostgresError).kind, .connectionLost, "\(error)")
        }
        XCTAssertTrue(connection.isBroken)
        XCTAssertThrowsError(try connection.ping())
    }

    func testConnectFailureNeverShowsTheConnectionString() throws {
        let secret = "s3cr3t-pass-phrase"
        // Nothing listens on port 1.
        for conninfo in [
            "postgresql://someone:\(secret)@127.0.0.1:1/somedb",
            "host=127.0.0.1 port=1 dbname=somedb user=someone password=\(secret)",
            "host=127.0.0.1 port=1 password=\(secret) bogus",  // not parseable
            "postgresql://someone:\(secret)@127.0.0.1:1/somedb?nonsense=\(secret)",
        ] {
            let start = MonotonicInstant.now()
            XCTAssertThrowsError(try Connection.connect(conninfo, settings: testSettings)) { error in
                guard let error = error as? PostgresError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.kind, .connectionFailed)
                XCTAssertFalse(error.description.contains(secret), error.description)
                XCTAssertFalse(error.message.contains(secret), error.message)
            }
            XCTAssertLessThan(elapsed(since: start), 2)
        }
        let wrongUser = try ScratchDatabase.url(environment.databaseURL, database: "leadimport")
            .replacingOccurrences(of: "leadimport_service@", with: "nobody_here:\(secret)@")
        XCTAssertThrowsError(try Connection.connect(wrongUser, settings: testSettings)) { error in
            let error = error as! PostgresError
            XCTAssertEqual(error.kind, .connectionFailed)
            XCTAssertFalse(error.description.contains(secret), error.description)
            XCTAssertTrue(error.message.contains("leadimport"), error.message)
        }
    }

    func testClosedConnectionThrowsInsteadOfCrashing() throws {
        connection.close()
        XCTAssertTrue(connection.isBroken)
        XCTAssertThrowsError(try connection.query("SELECT 1")) { error in
            XCTAssertEqual((error as! PostgresError).kind, .connectionLost)
        }
        connection.close()
    }
}

func waitUntilGone(_ pid: Int32, _ admin: Connection, timeout: Double = 5) throws {
    let start = MonotonicInstant.now()
    while elapsed(since: start) < timeout {
        let rows = try admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1::int", [String(pid)])
        if rows.rowCount == 0 {
            usleep(20_000)  // let the socket close reach us
            return
        }
        usleep(10_000)
    }
    XCTFail("backend \(pid) did not exit")
}
