import Importer
import LeadCore
import Platform
import Postgres

/// Every setting `leadimport serve` runs with, in one place: the supervisor's, each worker
/// process's (FastCGI, the pool, imports) and the log's. The command line sets some of them; the
/// rest are the service's choices. The commands turn it into the configurations of the pieces
/// (`WorkerProcessConfiguration`, `SupervisorConfiguration`, `PoolConfiguration`, `LeadImporter`).
public struct ServiceConfiguration: Sendable, Equatable {
    // MARK: processes (command line)

    /// Worker processes under the supervisor.
    public var processes = ServiceLimits.defaultProcesses
    /// Worker threads in each worker process: how many requests it serves at once.
    public var workers: Int
    /// Database connections in each worker process.
    public var poolSize: Int
    /// Import jobs each worker process runs at once (nil: `ServiceLimits.defaultJobRunners`).
    public var jobRunnersSetting: Int?
    public var jobRunners: Int { jobRunnersSetting ?? ServiceLimits.defaultJobRunners(processes: processes) }
    /// How long a request waits for a database connection before it is answered 503.
    public var waitLimit: Duration = .seconds(2)
    public var logLevel: Log.Level = .info
    public var logFormat: Log.Format = .logfmt
    /// A request that takes longer is counted in `leadimport_slow_requests_total` and logged.
    public var slowRequest: Duration = .seconds(5)

    // MARK: FastCGI

    /// Larger request bodies are not read (the contract's limit).
    public var bodyLimit = ImportRequest.bodyLimit
    /// The longest one read or write on a connection may wait before the connection is given up.
    public var receiveTimeout: Duration = .seconds(3)
    /// A connection whose request head has not arrived by then is closed, having held no worker.
    public var firstRecordTimeout: Duration = .seconds(5)
    /// A kept connection idle this long is closed by us; nginx's upstream keepalive is shorter.
    public var idleConnectionTimeout: Duration = .seconds(120)
    /// The longest a graceful stop waits for in-flight requests and kept connections.
    public var drainTimeout: Duration = .seconds(30)
    /// While stopping, kept connections idle this long are closed: longer than the shipped nginx
    /// configuration's upstream `keepalive_timeout` (3 s), so that nginx closes first.
    public var drainIdleTimeout: Duration = .seconds(4)

    // MARK: supervisor

    /// After SIGTERM, how long a worker process may take to finish before SIGKILL: longer than
    /// its drain.
    public var stopTimeout: Duration = .seconds(45)
    /// How long a new worker process may take to report ready before it is killed.
    public var readyTimeout: Duration = .seconds(15)

    // MARK: database

    /// A pooled connection idle longer than this is pinged before it is handed out.
    public var idleCheckAfter: Duration = .seconds(30)
    /// A pooled connection older than this is replaced.
    public var maxConnectionLifetime: Duration = .seconds(30 * 60)
    public var connectTimeout: Duration = .seconds(3)
    public var statementTimeout: Duration = .seconds(60)

    // MARK: imports

    /// Members read per page of a list.
    public var pageSize = 1000
    /// Leads per insert statement.
    public var batchSize = 500
    /// How long a stage of an import under way waits for a connection, and how long a batch keeps
    /// trying while the database is unreachable.
    public var stageWaitLimit: Duration = .seconds(30)
    /// Import stage threads in each worker process.
    public var stageThreads = LeadImporter.defaultStageThreads

    /// The defaults for a host with `cores` cores.
    public init(cores: Int) {
        workers = ServiceLimits.defaultWorkers(cores: cores)
        poolSize = ServiceLimits.defaultPoolSize(cores: cores)
    }

    /// A request that got its connection just before the wait limit must still be answered soon
    /// after it: a lock held elsewhere (DDL on campaigns, say) may hold it a quarter of the limit
    /// at most, and then it is answered 503 like a request that got no connection.
    public var lockTimeout: Duration { max(.milliseconds(100), min(.seconds(1), waitLimit / 4)) }

    public var pool: PoolConfiguration {
        PoolConfiguration(
            size: poolSize, waitLimit: waitLimit, idleCheckAfter: idleCheckAfter, maxLifetime: maxConnectionLifetime,
            connection: ConnectionSettings(connectTimeout: connectTimeout, statementTimeout: statementTimeout, lockTimeout: lockTimeout)
        )
    }

    /// The importer of one worker process, on its pool.
    public func importer(connections: any ConnectionSource, stopRequested: @escaping @Sendable () -> Bool) -> LeadImporter {
        LeadImporter(connections: connections, pageSize: pageSize, batchSize: batchSize, stageWaitLimit: stageWaitLimit,
                     stopRequested: stopRequested, stageThreads: ThreadBudget(stageThreads),
                     dryRunsReadingAhead: ThreadBudget(LeadImporter.dryRunsWithOwnConnection))
    }
}
