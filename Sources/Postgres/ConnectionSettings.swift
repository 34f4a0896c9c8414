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
