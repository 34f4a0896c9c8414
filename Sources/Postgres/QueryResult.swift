/// The answer to one statement, copied out of libpq.
public struct QueryResult: Sendable {
    public let columns: [String]
    public let rows: [Row]
    /// Rows inserted, updated, deleted or returned, as the command tag says (0 when it says nothing).
    public let affectedRows: Int
    /// The command tag: `INSERT 0 3`, `SELECT 2`, `COMMIT`...
    public let commandTag: String

    public var rowCount: Int { rows.count }
    public var first: Row? { rows.first }
}
