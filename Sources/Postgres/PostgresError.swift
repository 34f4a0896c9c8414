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
    /// `PG_DIAG_CONSTRAINT_NAME`: the constraint a statement violated.
    public var constraint: String?
    public var table: String?
    public var column: String?

    public init(
        kind: Kind, sqlState: String? = nil, message: String, detail: String? = nil,
        constraint: String? = nil, table: String? = nil, column: String? = nil
    ) {
        self.kind = kind
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.constraint = constraint
        self.table = table
        self.column = column
    }

    public var isUniqueViolation: Bool { sqlState == "23505" }
    public var isCheckViolation: Bool { sqlState == "23514" }
    public var isQueryCanceled: Bool { sqlState == "57014" }
    public var isLockNotAvailable: Bool { sqlState == "55P03" }
    public var isInsufficientPrivilege: Bool { sqlState == "42501" }
    public var isSerializationFailure: Bool { sqlState == "40001" }
    public var isDeadlockDetected: Bool { sqlState == "40P01" }
    /// Class 22: the value itself is bad (invalid text for a uuid, a jsonb that does not parse...).
    public var isDataException: Bool { sqlState?.hasPrefix("22") ?? false }
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
