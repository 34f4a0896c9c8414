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
