import Postgres

/// The database's side of `/healthz`.
public enum Health {
    /// One round trip on a pooled connection: it answers, or this throws.
    public static func check(on connection: Connection) throws {
        _ = try connection.query("SELECT 1", [])
    }
}
