import Importer
import Platform
import Postgres

/// Leases of a pool, numbered from 1, each first handed to `onLease`. The leases in
/// `losingAnswersOf` run their statement and then lose the connection, as if the database had
/// committed and its answer never arrived. Hooks run one at a time: leases come from several
/// threads (a job's page reader and its runner, an import's stages), and a hook's own
/// connection serves one statement at a time.
final class HookedConnections: ConnectionSource, @unchecked Sendable {
    let pool: ConnectionPool
    let losingAnswersOf: Set<Int>
    let onLease: @Sendable (Int, Connection) throws -> Void
    private let leaseCount = Locked(0)
    private let hooksInTurn = Locked(())

    init(pool: ConnectionPool, losingAnswersOf: Set<Int>, onLease: @escaping @Sendable (Int, Connection) throws -> Void) {
        self.pool = pool
        self.losingAnswersOf = losingAnswersOf
        self.onLease = onLease
    }

    /// The leases so far.
    var leases: Int { leaseCount.current }

    func withConnection<T>(waitLimit: Duration?, priority: LeasePriority, _ body: (Connection) throws -> T) throws -> T {
        let number = leaseCount.withLock { $0 += 1; return $0 }
        return try pool.withConnection(waitLimit: waitLimit, priority: priority) { connection in
            try hooksInTurn.withLock { _ in try onLease(number, connection) }
            let result = try body(connection)
            if losingAnswersOf.contains(number) {
                connection.close()
                throw PostgresError(kind: .connectionLost, message: "answer lost on purpose")
            }
            return result
        }
    }
}

/// Ends `connection`'s backend from outside (as the superuser `admin`), as a database restart or
/// an operator would: its next statement fails with the connection lost.
func terminateBackend(of connection: Connection, admin: Connection) throws {
    let pid = try connection.query("SELECT pg_backend_pid()::text", []).first!.requiredString(0)
    _ = try admin.query("SELECT pg_terminate_backend($1::int)", [pid])
}
