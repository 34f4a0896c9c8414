import CLibPQ
import Platform

/// Where the session stands between statements.
public enum TransactionState: Sendable, Equatable {
    case idle
    case inTransaction
    /// Inside a transaction block in which a statement failed: only ROLLBACK helps.
    case failed
    /// Busy or broken.
    case unknown
}

extension Connection {
    public var transactionState: TransactionState {
        guard let handle, !isBroken else { return .unknown }
        switch PQtransactionStatus(handle) {
        case PQTRANS_IDLE: return .idle
        case PQTRANS_INTRANS: return .inTransaction
        case PQTRANS_INERROR: return .failed
        default: return .unknown
        }
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
}
