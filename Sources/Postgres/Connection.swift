import CLibPQ
import Platform

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// This is the only file that touches libpq's pointers. Everything that leaves it (results, rows,
// errors) is a copied Swift value; no PGconn or PGresult escapes.

/// How one connection is opened and what session limits it runs under.
public struct ConnectionSettings: Sendable, Equatable {
    /// libpq's `connect_timeout`, rounded up to whole seconds (libpq treats anything under 2 s as 2 s).
    public var connectTimeout: Duration
    /// `statement_timeout` for the session; `.zero` disables it.
    public var statementTimeout: Duration
    /// `lock_timeout` for the session; `.zero` disables it.
    public var lockTimeout: Duration
    /// `application_name`, visible in `pg_stat_activity`; empty leaves whatever the connection string says.
    public var applicationName: String

    public init(
        connectTimeout: Duration = .seconds(3),
        statementTimeout: Duration = .seconds(60),
        lockTimeout: Duration = .seconds(2),
        applicationName: String = "leadimport"
    ) {
        self.connectTimeout = connectTimeout
        self.statementTimeout = statementTimeout
        self.lockTimeout = lockTimeout
        self.applicationName = applicationName
    }
}

/// A query parameter. Text goes in PostgreSQL's text format (the server casts it to the column's
/// type: uuid, int, jsonb, timestamptz...); bytea goes in binary format, byte for byte; `binary`
/// is any other type already in PostgreSQL's binary send format (see `textArray`).
public enum PostgresValue: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByNilLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral
{
    case null
    case text(String)
    case bytea([UInt8])
    case binary(type: UInt32, [UInt8])

    public init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    public init(stringLiteral value: String) { self = .text(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(integerLiteral value: Int) { self = .text(String(value)) }
    public init(booleanLiteral value: Bool) { self = .text(value ? "true" : "false") }

    public static func int(_ value: Int?) -> PostgresValue { value.map { .text(String($0)) } ?? .null }
    public static func bool(_ value: Bool?) -> PostgresValue { value.map { .text($0 ? "true" : "false") } ?? .null }

    /// The type OID and bytes of a parameter sent in binary format; nil for text and NULL.
    var binaryForm: (type: UInt32, bytes: [UInt8])? {
        switch self {
        case .bytea(let bytes): return (17, bytes)
        case .binary(let type, let bytes): return (type, bytes)
        case .null, .text: return nil
        }
    }
}

/// An error from the database or from reading its answer.
///
/// `description` names the kind, the SQLSTATE, the server's message and the constraint; it leaves
/// out `detail`, which can quote row values (an email in a unique violation), so logging an error
/// never logs a lead's data. It never holds the connection string.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// The connection could not be opened (server down, refused, bad credentials, bad conninfo).
        case connectionFailed
        /// The connection broke while in use (backend terminated, server restarted, network gone).
        case connectionLost
        /// The server refused a statement; `sqlState` says why.
        case server
        /// A value in a result could not be read as the type asked for.
        case decoding
    }

    public var kind: Kind
    /// The five-character SQLSTATE (`PG_DIAG_SQLSTATE`), when the server sent one.
    public var sqlState: String?
    /// The server's primary message, or ours for connection and decoding errors.
    public var message: String
    public var detail: String?
    public var hint: String?
    /// `PG_DIAG_CONSTRAINT_NAME`: the constraint a statement violated.
    public var constraint: String?
    public var table: String?
    public var column: String?

    public init(
        kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil, hint: String? = nil,
        constraint: String? = nil, table: String? = nil, column: String? = nil
    ) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.table = table
        self.column = column
    }

    public var isUniqueViolation: Bool { sqlState == "23505" }
    public var isCheckViolation: Bool { sqlState == "23514" }
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
    public var isNotNullViolation: Bool { sqlState == "23502" }
    public var isQueryCanceled: Bool { sqlState == "57014" }
    public var isLockNotAvailable: Bool { sqlState == "55P03" }
    public var isInsufficientPrivilege: Bool { sqlState == "42501" }
    public var isSerializationFailure: Bool { sqlState == "40001" }
    public var isDeadlockDetected: Bool { sqlState == "40P01" }
    /// Class 22: the value itself is bad (invalid text for a uuid, a jsonb that does not parse...).
    public var isDataException: Bool { sqlState?.hasPrefix("22") ?? false }
    /// Class 23: an integrity constraint refused the row.
    public var isIntegrityConstraintViolation: Bool { sqlState?.hasPrefix("23") ?? false }
    /// The database could not be reached or the connection broke: a caller answers 503, not 500.
    public var isConnectionProblem: Bool { kind == .connectionFailed || kind == .connectionLost }

    public var description: String {
        var text = "postgres \(kind.rawValue)"
        if let sqlState { text += " [\(sqlState)]" }
        text += ": \(message)"
        if let constraint { text += " (constraint \(constraint))" }
        return text
    }
}

/// Where the session stands between statements.
public enum TransactionState: Sendable, Equatable {
    case idle
    case inTransaction
    /// Inside a transaction block in which a statement failed: only ROLLBACK helps.
    case failed
    /// Busy or broken.
    case unknown
}

/// The answer to one statement, copied out of libpq.
public struct QueryResult: Sendable {
    public let columns: [String]
    /// The type OID of each column (25 text, 17 bytea, 2950 uuid, 23 int4, 20 int8, 16 bool, 3802 jsonb...).
    public let columnTypes: [UInt32]
    public let rows: [Row]
    /// Rows inserted, updated, deleted or returned, as the command tag says (0 when it says nothing).
    public let affectedRows: Int
    /// The command tag: `INSERT 0 3`, `SELECT 2`, `COMMIT`...
    public let commandTag: String

    public var rowCount: Int { rows.count }
    public var first: Row? { rows.first }
}

/// The column names of a result, shared by its rows.
final class ColumnIndex: Sendable {
    let names: [String]
    let positions: [String: Int]

    init(_ names: [String]) {
        self.names = names
        var positions: [String: Int] = [:]
        for (index, name) in names.enumerated() where positions[name] == nil { positions[name] = index }
        self.positions = positions
    }
}

enum Cell: Sendable {
    case null
    case text(String)
    case bytes([UInt8])
}

/// Every value of a result in one byte buffer, with where each cell starts and how long it is
/// (-1: NULL). A String is made only for a cell that is read: a page of a list is thousands of
/// cells, and a String and an array per row were a fifth of an import's CPU in the service.
final class ResultStorage: Sendable {
    let index: ColumnIndex
    let columnCount: Int
    let isBytea: [Bool]
    let bytes: [UInt8]
    /// Offsets into `bytes`: a result may pass 2 GiB (a thousand fields of a few MB each).
    let starts: [Int]
    /// One value is at most 1 GB in PostgreSQL.
    let lengths: [Int32]

    init(index: ColumnIndex, isBytea: [Bool], bytes: [UInt8], starts: [Int], lengths: [Int32]) {
        self.index = index
        self.columnCount = isBytea.count
        self.isBytea = isBytea
        self.bytes = bytes
        self.starts = starts
        self.lengths = lengths
    }

    func cell(row: Int, column: Int) -> Cell {
        let at = row * columnCount + column
        let length = Int(lengths[at])
        guard length >= 0 else { return .null }
        let start = Int(starts[at])
        if isBytea[column] { return .bytes(Array(bytes[start..<start + length])) }
        return .text(bytes.withUnsafeBufferPointer { String(decoding: $0[start..<start + length], as: UTF8.self) })
    }
}

/// One row of a result. Every accessor takes a column index or name; an unknown column, a NULL
/// where a value is required, or text that is not of the asked type throws a `.decoding` error that
/// names the column. The optional accessors return nil for SQL NULL.
public struct Row: Sendable {
    let storage: ResultStorage
    let row: Int

    var index: ColumnIndex { storage.index }
    public var columns: [String] { storage.index.names }
    public var count: Int { storage.columnCount }

    // MARK: by index

    public func isNull(_ column: Int) throws -> Bool {
        if case .null = try cell(column) { return true }
        return false
    }

    public func string(_ column: Int) throws -> String? {
        switch try cell(column) {
        case .null: return nil
        case .text(let text): return text
        case .bytes: throw decodingError(column, "is bytea; read it with bytes()")
        }
    }

    public func int(_ column: Int) throws -> Int? {
        guard let text = try string(column) else { return nil }
        guard let value = Int(text) else { throw decodingError(column, "is not an integer") }
        return value
    }

    public func double(_ column: Int) throws -> Double? {
        guard let text = try string(column) else { return nil }
        guard let value = Double(text) else { throw decodingError(column, "is not a number") }
        return value
    }

    public func bool(_ column: Int) throws -> Bool? {
        guard let text = try string(column) else { return nil }
        switch text {
        case "t", "true": return true
        case "f", "false": return false
        default: throw decodingError(column, "is not a boolean")
        }
    }

    public func bytes(_ column: Int) throws -> [UInt8]? {
        switch try cell(column) {
        case .null: return nil
        case .bytes(let bytes): return bytes
        case .text: throw decodingError(column, "is not bytea")
        }
    }

    public func requiredString(_ column: Int) throws -> String { try required(column, string(column)) }
    public func requiredInt(_ column: Int) throws -> Int { try required(column, int(column)) }
    public func requiredDouble(_ column: Int) throws -> Double { try required(column, double(column)) }
    public func requiredBool(_ column: Int) throws -> Bool { try required(column, bool(column)) }
    public func requiredBytes(_ column: Int) throws -> [UInt8] { try required(column, bytes(column)) }

    // MARK: by name

    public func isNull(_ column: String) throws -> Bool { try isNull(position(column)) }
    public func string(_ column: String) throws -> String? { try string(position(column)) }
    public func int(_ column: String) throws -> Int? { try int(position(column)) }
    public func double(_ column: String) throws -> Double? { try double(position(column)) }
    public func bool(_ column: String) throws -> Bool? { try bool(position(column)) }
    public func bytes(_ column: String) throws -> [UInt8]? { try bytes(position(column)) }
    public func requiredString(_ column: String) throws -> String { try requiredString(position(column)) }
    public func requiredInt(_ column: String) throws -> Int { try requiredInt(position(column)) }
    public func requiredDouble(_ column: String) throws -> Double { try requiredDouble(position(column)) }
    public func requiredBool(_ column: String) throws -> Bool { try requiredBool(position(column)) }
    public func requiredBytes(_ column: String) throws -> [UInt8] { try requiredBytes(position(column)) }

    // MARK: helpers

    private func cell(_ column: Int) throws -> Cell {
        guard column >= 0 && column < storage.columnCount else {
            throw PostgresError(kind: .decoding, message: "no column at index \(column) (the row has \(storage.columnCount))")
        }
        return storage.cell(row: row, column: column)
    }

    private func position(_ name: String) throws -> Int {
        guard let position = index.positions[name] else {
            throw PostgresError(kind: .decoding, message: "no column named \"\(name)\" in the result", column: name)
        }
        return position
    }

    private func required<T>(_ column: Int, _ value: T?) throws -> T {
        guard let value else { throw decodingError(column, "is NULL") }
        return value
    }

    private func decodingError(_ column: Int, _ problem: String) -> PostgresError {
        let name = index.names.indices.contains(column) ? index.names[column] : "#\(column)"
        return PostgresError(kind: .decoding, message: "column \"\(name)\" \(problem)", column: name)
    }
}

/// One libpq connection. Not for concurrent use: one thread at a time (the pool hands it from
/// thread to thread, which is why it is `@unchecked Sendable`).
///
/// Every statement is parameterized. `query` prepares a statement once per connection (keyed by
/// its SQL text) and executes the prepared statement afterwards.
public final class Connection: @unchecked Sendable {
    private var handle: OpaquePointer?
    /// Set when libpq is left in a state we do not drive (a COPY we never asked for): the pool discards it.
    private var poisoned = false
    /// Safe to show: database and host, never the password or the whole connection string.
    public let endpoint: String

    private struct Prepared {
        let name: String
        var lastUse: UInt64
    }
    private var prepared: [String: Prepared] = [:]
    private var useClock: UInt64 = 0
    private var statementCounter = 0
    private var savepointCounter = 0

    /// How many prepared statements a connection keeps before it deallocates the least recently used.
    public static let preparedStatementLimit = 256

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

    public var transactionState: TransactionState {
        guard let handle, !isBroken else { return .unknown }
        switch PQtransactionStatus(handle) {
        case PQTRANS_IDLE: return .idle
        case PQTRANS_INTRANS: return .inTransaction
        case PQTRANS_INERROR: return .failed
        default: return .unknown
        }
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

    /// Runs `body` in a transaction: BEGIN, then COMMIT if it returns, ROLLBACK if it throws.
    /// Inside another transaction it runs in a savepoint instead, so a failure rolls back only
    /// what `body` did. A COMMIT that the server turns into a ROLLBACK (because a statement in the
    /// transaction failed and `body` swallowed the error) throws.
    @discardableResult
    public func transaction<T>(_ body: (Connection) throws -> T) throws -> T {
        switch transactionState {
        case .idle:
            try simple("BEGIN")
            do {
                let value = try body(self)
                let commit = try simple("COMMIT")
                if commit.commandTag == "ROLLBACK" {
                    throw PostgresError(
                        kind: .server, sqlState: "25P02",
                        message: "the transaction was rolled back because a statement in it failed")
                }
                return value
            } catch {
                if !isBroken && transactionState != .idle { _ = try? simple("ROLLBACK") }
                throw error
            }
        case .inTransaction:
            savepointCounter += 1
            let name = "leadimport_savepoint_\(savepointCounter)"
            try simple("SAVEPOINT \(name)")
            do {
                let value = try body(self)
                try simple("RELEASE SAVEPOINT \(name)")
                return value
            } catch {
                if !isBroken {
                    _ = try? simple("ROLLBACK TO SAVEPOINT \(name)")
                    _ = try? simple("RELEASE SAVEPOINT \(name)")
                }
                throw error
            }
        case .failed:
            throw PostgresError(
                kind: .server, sqlState: "25P02",
                message: "current transaction is aborted, commands ignored until end of transaction block")
        case .unknown:
            throw lostError(nil)
        }
    }

    /// Brings a connection back to a clean session before it is reused: rolls back a transaction
    /// that `body` left open. Returns false when the connection cannot be reused.
    func resetForReuse() -> Bool {
        switch transactionState {
        case .idle: return true
        case .inTransaction, .failed:
            Log.warning("database connection returned inside a transaction; rolling back")
            return (try? simple("ROLLBACK")) != nil && transactionState == .idle
        case .unknown: return false
        }
    }

    // MARK: internals

    private func usableHandle() throws -> OpaquePointer {
        guard let handle, !isBroken else { throw lostError(nil) }
        return handle
    }

    /// The simple-query protocol: our own fixed statements (BEGIN, COMMIT, SELECT 1, scripts).
    @discardableResult
    private func simple(_ sql: String) throws -> QueryResult {
        let handle = try usableHandle()
        return try consume(PQexec(handle, sql))
    }

    private func cacheKey(_ sql: String, _ values: [PostgresValue]) -> String {
        guard values.contains(where: { $0.binaryForm != nil }) else { return sql }
        // Binary parameters are declared with their type when prepared, so the types are part of the key.
        let signature = values.map { value in value.binaryForm.map { String($0.type) } ?? "t" }
        return sql + "\u{0}" + signature.joined(separator: ",")
    }

    private func runPrepared(_ sql: String, _ values: [PostgresValue]) throws -> QueryResult {
        let handle = try usableHandle()
        let key = cacheKey(sql, values)
        useClock &+= 1
        let name: String
        if let existing = prepared[key] {
            name = existing.name
            prepared[key]?.lastUse = useClock
        } else {
            if prepared.count >= Self.preparedStatementLimit { evictLeastRecentlyUsed() }
            statementCounter += 1
            name = "leadimport_\(statementCounter)"
            let types: [Oid] = values.map { $0.binaryForm?.type ?? 0 }
            _ = try consume(PQprepare(handle, name, sql, Int32(types.count), types))
            prepared[key] = Prepared(name: name, lastUse: useClock)
        }
        return try withParameters(values) { count, _, pointers, lengths, formats in
            try consume(PQexecPrepared(handle, name, count, pointers, lengths, formats, 0))
        }
    }

    private func evictLeastRecentlyUsed() {
        guard let (key, entry) = prepared.min(by: { $0.value.lastUse < $1.value.lastUse }) else { return }
        prepared.removeValue(forKey: key)
        deallocate(entry.name)
    }

    private func forget(_ sql: String, _ values: [PostgresValue], deallocate: Bool) {
        guard let entry = prepared.removeValue(forKey: cacheKey(sql, values)) else { return }
        if deallocate { self.deallocate(entry.name) }
    }

    /// Prepared statements are not transactional, so DEALLOCATE works in and out of a transaction,
    /// but not in a failed one: there the statement stays on the server under a name never reused.
    private func deallocate(_ name: String) {
        guard transactionState == .idle || transactionState == .inTransaction else { return }
        _ = try? simple("DEALLOCATE \(name)")
    }

    private func isMissingStatement(_ error: PostgresError) -> Bool {
        error.kind == .server && error.sqlState == "26000"
    }

    private func isStalePlan(_ error: PostgresError) -> Bool {
        error.kind == .server && error.sqlState == "0A000" && error.message.contains("cached plan must not change result type")
    }

    /// Hands libpq C copies of the parameters for the duration of `body`.
    private func withParameters<T>(
        _ values: [PostgresValue],
        _ body: (
            Int32, UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?,
            UnsafePointer<Int32>?
        ) throws -> T
    ) throws -> T {
        var buffers: [UnsafeMutablePointer<CChar>?] = []
        buffers.reserveCapacity(values.count)
        defer { for buffer in buffers { free(buffer) } }
        var types: [Oid] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        for (position, value) in values.enumerated() {
            switch value {
            case .null:
                buffers.append(nil)
                types.append(0)
                lengths.append(0)
                formats.append(0)
            case .text(let text):
                // Text parameters travel NUL-terminated; PostgreSQL text cannot hold NUL either.
                if text.utf8.contains(0) {
                    throw PostgresError(
                        kind: .server, sqlState: "22021",
                        message: "invalid byte sequence for encoding \"UTF8\": 0x00 (parameter $\(position + 1))")
                }
                buffers.append(strdup(text))
                types.append(0)
                lengths.append(0)
                formats.append(0)
            case .bytea, .binary:
                let (type, bytes) = value.binaryForm!
                // libpq takes lengths as int; PostgreSQL itself takes no value over 1 GB.
                guard bytes.count <= Int(Int32.max) else {
                    throw PostgresError(kind: .server, sqlState: "54000",
                                        message: "parameter $\(position + 1) is \(bytes.count) bytes, more than a statement can carry")
                }
                let buffer = malloc(max(1, bytes.count))!.assumingMemoryBound(to: CChar.self)
                bytes.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { memcpy(buffer, base, raw.count) }
                }
                buffers.append(buffer)
                types.append(type)
                lengths.append(Int32(bytes.count))
                formats.append(1)
            }
        }
        let pointers = buffers.map { UnsafePointer($0) }
        return try types.withUnsafeBufferPointer { types in
            try pointers.withUnsafeBufferPointer { pointers in
                try lengths.withUnsafeBufferPointer { lengths in
                    try formats.withUnsafeBufferPointer { formats in
                        try body(Int32(values.count), types.baseAddress, pointers.baseAddress, lengths.baseAddress, formats.baseAddress)
                    }
                }
            }
        }
    }

    /// Copies a result into Swift values and clears it, or turns it into an error.
    private func consume(_ result: OpaquePointer?) throws -> QueryResult {
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

    private func copy(_ result: OpaquePointer) -> QueryResult {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var names: [String] = []
        var types: [UInt32] = []
        names.reserveCapacity(columnCount)
        for column in 0..<columnCount {
            names.append(PQfname(result, Int32(column)).map { String(cString: $0) } ?? "?column?")
            types.append(PQftype(result, Int32(column)))
        }
        let index = ColumnIndex(names)
        let cellCount = rowCount * columnCount
        // The exact size up front (bytea shrinks when decoded, so this is an upper bound): a page
        // of a list is half a megabyte of text, and growing by doubling kept the old and the new
        // buffer alive together at every step.
        var total = 0
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) { total += Int(PQgetlength(result, row, column)) }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total)
        var starts: [Int] = []
        var lengths: [Int32] = []
        starts.reserveCapacity(cellCount)
        lengths.reserveCapacity(cellCount)
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) {
                if PQgetisnull(result, row, column) != 0 {
                    starts.append(bytes.count)
                    lengths.append(-1)
                    continue
                }
                let length = Int(PQgetlength(result, row, column))
                let value = PQgetvalue(result, row, column)!
                let raw = UnsafeRawBufferPointer(start: value, count: length)
                starts.append(bytes.count)
                if types[Int(column)] == 17 {
                    let decoded = Self.decodeBytea(raw, cString: value)
                    lengths.append(Int32(decoded.count))
                    bytes.append(contentsOf: decoded)
                } else {
                    lengths.append(Int32(length))
                    bytes.append(contentsOf: raw)
                }
            }
        }
        let storage = ResultStorage(index: index, isBytea: types.map { $0 == 17 }, bytes: bytes, starts: starts, lengths: lengths)
        let rows = (0..<rowCount).map { Row(storage: storage, row: $0) }
        let tag = PQcmdStatus(result).map { String(cString: $0) } ?? ""
        let affected = PQcmdTuples(result).flatMap { Int(String(cString: $0)) } ?? 0
        return QueryResult(columns: names, columnTypes: types, rows: rows, affectedRows: affected, commandTag: tag)
    }

    /// bytea in text format: `\x` and hex digits (the default), else the old escape format.
    private static func decodeBytea(_ raw: UnsafeRawBufferPointer, cString: UnsafePointer<CChar>) -> [UInt8] {
        if raw.count >= 2 && raw[0] == UInt8(ascii: "\\") && raw[1] == UInt8(ascii: "x") {
            var bytes: [UInt8] = []
            bytes.reserveCapacity((raw.count - 2) / 2)
            var position = 2
            while position + 1 < raw.count {
                guard let high = hexValue(raw[position]), let low = hexValue(raw[position + 1]) else { break }
                bytes.append(high << 4 | low)
                position += 2
            }
            return bytes
        }
        var length = 0
        guard let unescaped = cString.withMemoryRebound(to: UInt8.self, capacity: raw.count + 1, { PQunescapeBytea($0, &length) }) else {
            return []
        }
        defer { PQfreemem(unescaped) }
        return Array(UnsafeBufferPointer(start: unescaped, count: length))
    }

    private func error(from result: OpaquePointer) -> PostgresError {
        func field(_ code: Int32) -> String? {
            PQresultErrorField(result, code).map { String(cString: $0) }
        }
        let message = field(Int32(UInt8(ascii: "M")))
            ?? PQresultErrorMessage(result).map { Self.cleanMessage($0) }
            ?? "unknown error"
        let lost = isBroken
        return PostgresError(
            kind: lost ? .connectionLost : .server,
            sqlState: field(Int32(UInt8(ascii: "C"))),
            message: message.isEmpty && lost ? "the connection to \(endpoint) was lost" : message,
            detail: field(Int32(UInt8(ascii: "D"))),
            hint: field(Int32(UInt8(ascii: "H"))),
            constraint: field(Int32(UInt8(ascii: "n"))),
            table: field(Int32(UInt8(ascii: "t"))),
            column: field(Int32(UInt8(ascii: "c")))
        )
    }

    private func lostError(_ detail: String?) -> PostgresError {
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

/// The parts of a connection string that may be shown (database, host, port) and the password,
/// which must never be shown.
private struct ParsedConninfo {
    var endpoint: String
    var password: String?

    init(_ conninfo: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>? = nil
        guard let options = PQconninfoParse(conninfo, &errorMessage) else {
            // libpq's parse error quotes the offending part of the string, which may be the password.
            if let errorMessage { PQfreemem(errorMessage) }
            throw PostgresError(kind: .connectionFailed, message: "the database connection string is not valid (not shown)")
        }
        defer { PQconninfoFree(options) }
        var values: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { values[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        password = values["password"].flatMap { $0.isEmpty ? nil : $0 }
        let database = values["dbname"] ?? values["user"] ?? "default"
        var host = values["host"] ?? values["hostaddr"] ?? "local socket"
        if host.isEmpty { host = "local socket" }
        if let port = values["port"], !port.isEmpty { host += ":\(port)" }
        endpoint = "database \"\(database)\" at \(host)"
    }

    func redact(_ message: String) -> String {
        guard let password, message.contains(password) else { return message }
        return message.replacingAll(password, with: "***")
    }
}

extension String {
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.range(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

extension Substring {
    fileprivate func range(of target: String) -> Range<Substring.Index>? {
        let needle = Array(target.utf8)
        let haystack = self.utf8
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        var start = haystack.startIndex
        while start != haystack.endIndex {
            var match = true
            var position = start
            for byte in needle {
                guard position != haystack.endIndex, haystack[position] == byte else { match = false; break }
                position = haystack.index(after: position)
            }
            if match { return start..<position }
            start = haystack.index(after: start)
        }
        return nil
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
