import Platform

/// Why a connection could not be had.
public enum PoolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No connection within the wait limit, the database cannot be reached, or the pool is closed.
    /// The reason is safe to log: it never holds the connection string.
    case unavailable(reason: String)

    public var description: String {
        switch self {
        case .unavailable(let reason): return "database unavailable: \(reason)"
        }
    }
}

/// A bounded pool of connections for threads that block: the thread-safe shell around `PoolState`.
///
/// `withConnection` leases a connection (waiting at most `waitLimit`), runs the body on the calling
/// thread and gives the connection back. A connection that comes back broken (the backend was
/// terminated, the server restarted) is closed and replaced on the next demand; one that sat idle
/// is pinged before it is handed out (always when the server has sent it something since its last
/// use, which is what a terminated backend does), and replaced within the same lease if the ping
/// fails. Connections are opened on a short-lived thread of their own, never under the lock, so a
/// slow connect cannot stretch anybody's wait limit.
public final class ConnectionPool: @unchecked Sendable {
    public typealias Connect = @Sendable (_ conninfo: String, _ settings: ConnectionSettings) throws -> Connection

    public let configuration: PoolConfiguration
    private let conninfo: String
    private let connect: Connect

    private let lock = ConditionLock()
    private var state: PoolState
    private var connections: [PoolState.ConnectionID: Connection] = [:]
    private var outcomes: [PoolState.RequestID: Outcome] = [:]
    private var nextRequestID: PoolState.RequestID = 0
    /// Told what the pool holds after every change, under the lock (the process's metrics).
    private let observe: (@Sendable (PoolState.Stats) -> Void)?

    private enum Outcome {
        case handed(PoolState.ConnectionID, checkFirst: Bool)
        case failed(PoolState.Failure)
    }

    /// `conninfo` is a libpq connection string or URI; it is never logged. `connect` opens one
    /// connection (tests inject failures or count attempts through it).
    public init(
        conninfo: String,
        configuration: PoolConfiguration,
        connect: @escaping Connect = { conninfo, settings in try Connection.connect(conninfo, settings: settings) },
        observe: (@Sendable (PoolState.Stats) -> Void)? = nil
    ) {
        self.observe = observe
        self.conninfo = conninfo
        self.configuration = configuration
        self.connect = connect
        self.state = PoolState(configuration: configuration)
    }

    deinit {
        for connection in connections.values { connection.close() }
    }

    /// A connection to the pool's database with the pool's settings, outside its count; the
    /// caller closes it.
    public func connectOutside() throws -> Connection {
        try connect(conninfo, configuration.connection)
    }

    public var stats: PoolState.Stats { lock.withLock { state.stats } }

    /// Leases a connection, runs `body` with it, gives it back. Throws `PoolError.unavailable`
    /// when no connection can be had within the wait limit (the configured one unless `waitLimit`
    /// is given: an import already under way waits longer than a request that has not started)
    /// or the database cannot be reached; rethrows what `body` throws.
    /// `priority`: bulk work never holds the pool's last connection and waits behind requests.
    public func withConnection<T>(waitLimit: Duration? = nil, priority: LeasePriority = .request,
                                  _ body: (Connection) throws -> T) throws -> T {
        let (id, connection) = try lease(waitLimit: waitLimit ?? configuration.waitLimit, priority: priority)
        let value: T
        do {
            value = try body(connection)
        } catch {
            let lost = (error as? PostgresError)?.kind == .connectionLost
            giveBack(id, connection, broken: lost)
            throw error
        }
        giveBack(id, connection, broken: false)
        return value
    }

    /// Closes the idle connections and fails the waiters; connections out on lease are closed
    /// when they come back. Later leases fail with `unavailable`.
    public func close() {
        let toClose = lock.withLock { apply(state.close(now: .now())) }
        for connection in toClose { connection.close() }
    }

    // MARK: leasing

    private func lease(waitLimit: Duration, priority: LeasePriority) throws -> (PoolState.ConnectionID, Connection) {
        let start = MonotonicInstant.now()
        let deadline = start + waitLimit
        lock.lock()
        let request = nextRequestID
        nextRequestID += 1
        // The tick first closes idle connections past their lifetime that no lease would reach.
        var toClose = apply(state.tick(now: start))
        toClose += apply(state.lease(request, now: start, deadline: deadline, priority: priority))
        while true {
            switch outcomes.removeValue(forKey: request) {
            case .handed(let id, let checkFirst)?:
                let connection = connections[id]!
                lock.unlock()
                closeAll(&toClose)
                if !checkFirst && connection.looksHealthy { return (id, connection) }
                if (try? connection.ping()) != nil && !connection.isBroken { return (id, connection) }
                Log.info("database connection failed its check; replacing it", ["idle_check": checkFirst ? "due" : "server spoke"])
                lock.lock()
                toClose += apply(state.checkFailed(id, request: request, now: .now(), deadline: deadline, priority: priority))
            case .failed(let failure)?:
                lock.unlock()
                closeAll(&toClose)
                throw PoolError.unavailable(reason: describe(failure, since: start))
            case nil:
                if !toClose.isEmpty {
                    lock.unlock()
                    closeAll(&toClose)
                    lock.lock()
                    continue
                }
                if !lock.wait(until: deadline) {
                    let now = MonotonicInstant.now()
                    if now >= deadline { toClose += apply(state.tick(now: now)) }
                }
            }
        }
    }

    private func giveBack(_ id: PoolState.ConnectionID, _ connection: Connection, broken: Bool) {
        var broken = broken || connection.isBroken
        if !broken && !connection.resetForReuse() { broken = true }
        if broken { Log.info("database connection broken; it will be replaced", ["endpoint": connection.endpoint]) }
        let toClose = lock.withLock { apply(state.release(id, now: .now(), broken: broken)) }
        for connection in toClose { connection.close() }
    }

    // MARK: the shell's side of the actions

    /// Carries out the state machine's actions; the lock is held. Returns the connections to
    /// close once the lock is released.
    private func apply(_ actions: [PoolState.Action]) -> [Connection] {
        var toClose: [Connection] = []
        var wake = false
        for action in actions {
            switch action {
            case .create(let id):
                toClose += startConnecting(id)
            case .hand(let id, let request, let checkFirst):
                outcomes[request] = .handed(id, checkFirst: checkFirst)
                wake = true
            case .fail(let request, let failure):
                outcomes[request] = .failed(failure)
                wake = true
            case .close(let id):
                if let connection = connections.removeValue(forKey: id) { toClose.append(connection) }
            }
        }
        if wake { lock.broadcast() }
        observe?(state.stats)
        return toClose
    }

    /// Connects on a thread of its own. A thread that cannot be started is a failed connect
    /// (the lock is held: its actions are carried out here).
    private func startConnecting(_ id: PoolState.ConnectionID) -> [Connection] {
        let conninfo = self.conninfo
        let settings = configuration.connection
        do {
            try startConnectThread(id, conninfo, settings)
            return []
        } catch {
            Log.warning("database connect failed", ["reason": error.description])
            return apply(state.connectionFailed(id, reason: error.description, now: .now()))
        }
    }

    private func startConnectThread(_ id: PoolState.ConnectionID, _ conninfo: String, _ settings: ConnectionSettings) throws(ThreadStartError) {
        try startThread(name: "pg-connect") { [self] in
            let result: Result<Connection, Error>
            do {
                result = .success(try connect(conninfo, settings))
            } catch {
                result = .failure(error)
            }
            let toClose: [Connection] = lock.withLock {
                switch result {
                case .success(let connection):
                    connections[id] = connection
                    return apply(state.connectionCreated(id, now: .now()))
                case .failure(let error):
                    let reason = (error as? PostgresError).map { $0.message } ?? "\(error)"
                    Log.warning("database connect failed", ["reason": reason])
                    return apply(state.connectionFailed(id, reason: reason, now: .now()))
                }
            }
            for connection in toClose { connection.close() }
        }
    }

    private func closeAll(_ connections: inout [Connection]) {
        for connection in connections { connection.close() }
        connections.removeAll()
    }

    private func describe(_ failure: PoolState.Failure, since start: MonotonicInstant) -> String {
        switch failure {
        case .timedOut(let lastConnectError):
            let waited = MonotonicInstant.now() - start
            var reason = "no database connection free after \(format(waited)) (pool size \(configuration.size))"
            if let lastConnectError { reason += "; last connect error: \(lastConnectError)" }
            return reason
        case .connectFailed(let message):
            return "the database cannot be reached: \(message)"
        case .closed:
            return "the connection pool is closed"
        }
    }

    private func format(_ duration: Duration) -> String {
        let milliseconds = duration.milliseconds
        return "\(milliseconds / 1000).\(String(milliseconds % 1000 / 100)) s"
    }
}
