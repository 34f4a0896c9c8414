import CLibPQ
import Platform

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// libpq's pointers stay in the connection's own code (Connection and its extensions, the result
// copying, the parameter encoding, the connection string's parsing). Everything that leaves it
// (results, rows, errors) is a copied Swift value; no PGconn or PGresult escapes.

/// One libpq connection. Not for concurrent use: one thread at a time (the pool hands it from
/// thread to thread, which is why it is `@unchecked Sendable`).
///
/// Every statement is parameterized. `query` prepares a statement once per connection (keyed by
/// its SQL text) and executes the prepared statement afterwards.
public final class Connection: @unchecked Sendable {
    private(set) var handle: OpaquePointer?
    /// Set when libpq is left in a state we do not drive (a COPY we never asked for): the pool discards it.
    private var poisoned = false
    /// Safe to show: database and host, never the password or the whole connection string.
    public let endpoint: String

    // The extensions' state (stored properties cannot live in an extension): the cache of
    // prepared statements and the counter that names savepoints.
    var prepared: [String: Prepared] = [:]
    var useClock: UInt64 = 0
    var statementCounter = 0
    var savepointCounter = 0

    private init(handle: OpaquePointer, endpoint: String) {
        self.handle = handle
        self.endpoint = endpoint
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    // MARK: connecting

    /// Opens a connection. `conninfo` is a libpq connection string or URI, kept whole (libpq expands
    /// it); the settings add `connect_timeout`, `application_name` and `client_encoding`, then set
    /// `statement_timeout` and `lock_timeout` for the session. A user's `options` are left alone.
    /// Errors never quote `conninfo`.
    public static func connect(_ conninfo: String, settings: ConnectionSettings = ConnectionSettings()) throws -> Connection {
        let parsed = try ParsedConninfo(conninfo)
        let endpoint = parsed.endpoint

        // Earlier entries can be overridden by the connection string, later ones override it.
        var pairs: [(String, String)] = [
            ("keepalives_idle", "30"),
            ("keepalives_interval", "10"),
            ("keepalives_count", "3"),
            ("dbname", conninfo),
            ("connect_timeout", String(max(1, (settings.connectTimeout.nanoseconds + 999_999_999) / 1_000_000_000))),
            ("client_encoding", "UTF8"),
        ]
        if !settings.applicationName.isEmpty { pairs.append(("application_name", settings.applicationName)) }

        let keywords: [UnsafeMutablePointer<CChar>?] = pairs.map { strdup($0.0) } + [nil]
        let values: [UnsafeMutablePointer<CChar>?] = pairs.map { strdup($0.1) } + [nil]
        defer {
            for pointer in keywords { free(pointer) }
            for pointer in values { free(pointer) }
        }
        let keywordPointers = keywords.map { UnsafePointer($0) }
        let valuePointers = values.map { UnsafePointer($0) }

        guard let handle = PQconnectdbParams(keywordPointers, valuePointers, 1) else {
            throw PostgresError(kind: .connectionFailed, message: "could not connect to \(endpoint): out of memory")
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            let reason = parsed.redact(cleanMessage(PQerrorMessage(handle)))
            PQfinish(handle)
            throw PostgresError(kind: .connectionFailed, message: "could not connect to \(endpoint): \(reason)")
        }
        PQsetNoticeReceiver(handle, noticeReceiver, nil)

        let connection = Connection(handle: handle, endpoint: endpoint)
        do {
            _ = try connection.queryUnprepared(
                "SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false)",
                [.text(milliseconds(settings.statementTimeout)), .text(milliseconds(settings.lockTimeout))]
            )
        } catch var error as PostgresError {
            connection.close()
            if error.kind == .connectionLost { error.kind = .connectionFailed }
            error.message = "could not set up the session on \(endpoint): \(error.message)"
            throw error
        }
        return connection
    }

    private static func milliseconds(_ duration: Duration) -> String {
        let nanoseconds = max(0, duration.nanoseconds)
        return String((nanoseconds + 999_999) / 1_000_000)
    }

    // MARK: state

    /// True once the connection is unusable: closed, broken (`PQstatus` is not `CONNECTION_OK`), or
    /// left by libpq in a state this class does not drive.
    public var isBroken: Bool {
        guard let handle, !poisoned else { return true }
        return PQstatus(handle) != CONNECTION_OK
    }

    /// A check that costs no round trip: the connection is not broken and the server has sent
    /// nothing since the last answer. An idle session never hears from the server unless it is
    /// being shut down (backend terminated, server restarting), so readable data means "ping it".
    public var looksHealthy: Bool {
        guard let handle, !isBroken else { return false }
        let socket = PQsocket(handle)
        guard socket >= 0 else { return false }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, 0)
        return ready == 0
    }

    /// The backend's process id (for `pg_terminate_backend` in tests and for logs).
    public var backendPID: Int32 {
        guard let handle else { return 0 }
        return PQbackendPID(handle)
    }

    /// A cheap round trip (`SELECT 1`); throws when the connection does not answer.
    public func ping() throws {
        _ = try simple("SELECT 1")
    }

    /// Closes the connection (PQfinish). Safe to call twice.
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
        prepared.removeAll()
    }

    // MARK: queries

    /// Runs a parameterized statement with text parameters (nil is SQL NULL), through this
    /// connection's cache of prepared statements.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws -> QueryResult {
        try query(sql, values: parameters.map { PostgresValue($0) })
    }

    /// Runs a parameterized statement through this connection's cache of prepared statements.
    @discardableResult
    public func query(_ sql: String, values: [PostgresValue]) throws -> QueryResult {
        do {
            return try runPrepared(sql, values)
        } catch let error as PostgresError where isStalePlan(error) || isMissingStatement(error) {
            // A schema change altered the statement's result columns, or someone ran DEALLOCATE
            // or DISCARD ALL. Safe to run again only outside a transaction block: the statement
            // itself never started.
            forget(sql, values, deallocate: isStalePlan(error))
            guard transactionState == .idle else { throw error }
            return try runPrepared(sql, values)
        }
    }

    /// Runs a statement once, without preparing it for reuse (one-off statements, DDL).
    @discardableResult
    public func queryUnprepared(_ sql: String, _ values: [PostgresValue] = []) throws -> QueryResult {
        let handle = try usableHandle()
        return try withParameters(values) { count, types, pointers, lengths, formats in
            try consume(PQexecParams(handle, sql, count, types, pointers, lengths, formats, 0))
        }
    }

    /// Runs a script of several statements in the simple protocol. Only a string literal can be
    /// passed, so no input can ever become SQL.
    @discardableResult
    public func execute(script: StaticString) throws -> QueryResult {
        try simple(script.description)
    }

    // MARK: internals

    func usableHandle() throws -> OpaquePointer {
        guard let handle, !isBroken else { throw lostError(nil) }
        return handle
    }

    /// The simple-query protocol: our own fixed statements (BEGIN, COMMIT, SELECT 1, scripts).
    @discardableResult
    func simple(_ sql: String) throws -> QueryResult {
        let handle = try usableHandle()
        return try consume(PQexec(handle, sql))
    }

    /// Copies a result into Swift values and clears it, or turns it into an error.
    func consume(_ result: OpaquePointer?) throws -> QueryResult {
        guard let result else { throw lostError(nil) }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        switch status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            return copy(result)
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR, PGRES_BAD_RESPONSE:
            throw error(from: result)
        default:
            // COPY and the like: this class does not drive them, so the session is unusable.
            poisoned = true
            if let handle {
                if status == PGRES_COPY_IN { _ = PQputCopyEnd(handle, "not supported") }
                while let next = PQgetResult(handle) { PQclear(next) }
            }
            throw PostgresError(kind: .server, message: "unsupported result status \(String(cString: PQresStatus(status)))")
        }
    }

    func lostError(_ detail: String?) -> PostgresError {
        var message = "the connection to \(endpoint) was lost"
        if let handle, let text = PQerrorMessage(handle) {
            let reason = Self.cleanMessage(text)
            if !reason.isEmpty { message += ": \(reason)" }
        } else if handle == nil {
            message = "the connection to \(endpoint) is closed"
        }
        return PostgresError(kind: .connectionLost, message: message, detail: detail)
    }

    /// libpq's messages end with a newline and sometimes hold tabs and several lines.
    static func cleanMessage(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "" }
        var words: [Substring] = []
        for word in String(cString: text).split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }) {
            words.append(word)
        }
        return words.joined(separator: " ")
    }
}

/// Notices and warnings from the server go to the log, not to libpq's default (raw stderr).
/// NOTICE and below at debug; WARNING and the FATAL a backend sends when it is terminated, at warning.
private let noticeReceiver: PQnoticeReceiver = { _, result in
    guard let result else { return }
    let severity = PQresultErrorField(result, Int32(UInt8(ascii: "V"))).map { String(cString: $0) } ?? "NOTICE"
    let message = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) } ?? ""
    let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
    switch severity {
    case "WARNING", "ERROR", "FATAL", "PANIC":
        Log.warning("postgres notice", ["severity": severity, "sqlstate": sqlState, "message": message])
    default:
        Log.write(.debug, "postgres notice", ["severity": severity, "sqlstate": sqlState, "message": message])
    }
}
