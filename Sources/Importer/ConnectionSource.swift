import Postgres

/// Where an import gets its database connections: the process's pool in the service, whatever a
/// test supplies in `ImporterTests` (a pool of its own, one that is closed, one whose connections
/// are taken away mid-import).
public protocol ConnectionSource: Sendable {
    /// Runs `body` on a leased connection, waiting at most `waitLimit` for one (nil: the source's
    /// own limit). Throws what the lease or the body throws. An import's stages and job runners
    /// lease as `.bulk`, behind requests.
    func withConnection<T>(waitLimit: Duration?, priority: LeasePriority, _ body: (Connection) throws -> T) throws -> T

    /// A new connection outside the source's count, for work that must hold one while it waits
    /// for the source (a dry run's ledger); nil when the source has none to give. The caller
    /// closes it.
    func connectionOfItsOwn() throws -> Connection?
}

extension ConnectionSource {
    public func connectionOfItsOwn() throws -> Connection? { nil }
}

extension ConnectionSource {
    /// A lease for a request: the lookup an import begins with.
    public func withConnection<T>(waitLimit: Duration?, _ body: (Connection) throws -> T) throws -> T {
        try withConnection(waitLimit: waitLimit, priority: .request, body)
    }
}

extension ConnectionPool: ConnectionSource {
    public func connectionOfItsOwn() throws -> Connection? { try connectOutside() }
}
