import Platform

/// How a pool behaves. Defaults suit the service: a request waits at most two seconds for a
/// connection, then answers 503.
public struct PoolConfiguration: Sendable, Equatable {
    /// The most connections open (or being opened) at once; at least 1.
    public var size: Int
    /// How long `withConnection` waits for a free connection before it gives up.
    public var waitLimit: Duration
    /// A connection idle longer than this is pinged before it is handed out.
    public var idleCheckAfter: Duration
    /// A connection older than this is closed when it comes back (or is found idle), and replaced on demand.
    public var maxLifetime: Duration
    public var connection: ConnectionSettings

    public init(
        size: Int,
        waitLimit: Duration = .seconds(2),
        idleCheckAfter: Duration = .seconds(30),
        maxLifetime: Duration = .seconds(30 * 60),
        connection: ConnectionSettings = ConnectionSettings()
    ) {
        self.size = max(1, size)  // a pool holds at least one connection
        self.waitLimit = waitLimit
        self.idleCheckAfter = idleCheckAfter
        self.maxLifetime = maxLifetime
        self.connection = connection
    }
}

/// Who waits for a connection. A request is answered within its wait limit and holds a connection
/// for a statement or two; bulk work (an import's stages, job runners) holds connections back to
/// back for as long as it runs, and must never make a request wait behind it.
public enum LeasePriority: Sendable, Equatable {
    case request
    case bulk
}

/// The pool's decisions, without I/O and without reading the clock: each input takes `now`, and
/// returns what the shell must do. Connection and request ids are plain integers; the state
/// machine numbers connections itself (`.create(id)` names the connection to open).
///
/// Rules:
/// - At most `size` connections exist, counting those being opened.
/// - Waiters are served first come, first served, requests before bulk work.
/// - Bulk work holds at most `bulkLimit` connections (all but one when the pool has two or more):
///   the last one is kept for requests, so a request never waits for an import's statements.
/// - A connection is opened only for a waiter that no open attempt already covers, and only when
///   a slot is free: at most one attempt in flight per waiting request.
/// - A failed attempt fails at once every waiter that nothing else in flight could still serve
///   (no attempt in progress, no connection out on lease), with the reason, instead of letting
///   them sit out the wait limit; it does not retry by itself, so a dead database is never
///   hammered in a loop. The next demand tries again.
/// - A connection that sat idle longer than `idleCheckAfter` is handed out with `checkFirst`;
///   one older than `maxLifetime` is closed instead of reused; a broken one is closed.
public struct PoolState: Sendable {
    public typealias ConnectionID = Int
    public typealias RequestID = Int

    public enum Failure: Sendable, Equatable {
        /// The wait limit passed. `lastConnectError` is the latest failed attempt's reason, if any.
        case timedOut(lastConnectError: String?)
        /// Opening a connection failed and nothing else could serve the request.
        case connectFailed(String)
        /// The pool was closed.
        case closed
    }

    public enum Action: Sendable, Equatable {
        /// Open a connection and report it with `connectionCreated` or `connectionFailed`.
        case create(ConnectionID)
        /// Give this connection to this request; ping it first when `checkFirst`.
        case hand(ConnectionID, to: RequestID, checkFirst: Bool)
        /// The request gets no connection.
        case fail(RequestID, Failure)
        /// Close this connection; it is no longer part of the pool.
        case close(ConnectionID)
    }

    public struct Stats: Sendable, Equatable {
        /// Connections open: idle plus leased (not counting those being opened).
        public var open: Int
        public var idle: Int
        public var leased: Int
        public var connecting: Int
        public var waiting: Int

        public init(open: Int, idle: Int, leased: Int, connecting: Int, waiting: Int) {
            self.open = open
            self.idle = idle
            self.leased = leased
            self.connecting = connecting
            self.waiting = waiting
        }
    }

    struct IdleConnection: Sendable {
        var id: ConnectionID
        var createdAt: MonotonicInstant
        var lastUsedAt: MonotonicInstant
    }

    struct Waiter: Sendable {
        var id: RequestID
        var deadline: MonotonicInstant
        var priority: LeasePriority = .request
    }

    public let configuration: PoolConfiguration
    /// Most recently used last: the warm connection is reused first.
    private var idle: [IdleConnection] = []
    /// Leased connections and when each was created.
    private var leased: [ConnectionID: MonotonicInstant] = [:]
    /// The leased connections that bulk work holds.
    private var leasedForBulk: Set<ConnectionID> = []
    private var connecting: Set<ConnectionID> = []
    private var waiters: [Waiter] = []
    private var nextConnectionID: ConnectionID = 0
    public private(set) var lastConnectError: String?
    public private(set) var isClosed = false

    public init(configuration: PoolConfiguration) {
        self.configuration = configuration
    }

    public var stats: Stats {
        Stats(open: idle.count + leased.count, idle: idle.count, leased: leased.count, connecting: connecting.count, waiting: waiters.count)
    }

    /// The earliest waiter's deadline: the shell need not tick before then.
    public var nextDeadline: MonotonicInstant? { waiters.map(\.deadline).min() }

    private var total: Int { idle.count + leased.count + connecting.count }

    /// The most connections bulk work may hold at once.
    public var bulkLimit: Int { configuration.size >= 2 ? configuration.size - 1 : 1 }

    private var bulkMayLease: Bool { leasedForBulk.count < bulkLimit }

    // MARK: inputs

    /// A request wants a connection until `deadline`.
    public mutating func lease(_ request: RequestID, now: MonotonicInstant, deadline: MonotonicInstant,
                               priority: LeasePriority = .request) -> [Action] {
        var actions = expireWaiters(now: now)
        if isClosed {
            actions.append(.fail(request, .closed))
            return actions
        }
        let nobodyAhead = priority == .request ? !waiters.contains { $0.priority == .request } : waiters.isEmpty && bulkMayLease
        if nobodyAhead, let handed = handIdle(to: request, priority: priority, now: now, actions: &actions) {
            actions.append(handed)
            return actions
        }
        if deadline <= now {
            actions.append(.fail(request, .timedOut(lastConnectError: lastConnectError)))
            return actions
        }
        waiters.append(Waiter(id: request, deadline: deadline, priority: priority))
        actions += createForWaiters()
        return actions
    }

    /// A connection the shell was asked to open is open.
    public mutating func connectionCreated(_ id: ConnectionID, now: MonotonicInstant) -> [Action] {
        var actions = expireWaiters(now: now)
        guard connecting.remove(id) != nil else { return actions + [.close(id)] }
        lastConnectError = nil
        if isClosed {
            actions.append(.close(id))
        } else if let waiter = takeNextWaiter() {
            lease(id, createdAt: now, to: waiter)
            actions.append(.hand(id, to: waiter.id, checkFirst: false))
        } else {
            idle.append(IdleConnection(id: id, createdAt: now, lastUsedAt: now))
        }
        return actions
    }

    /// Opening a connection failed with `reason` (safe to show: no password, no connection string).
    public mutating func connectionFailed(_ id: ConnectionID, reason: String, now: MonotonicInstant) -> [Action] {
        var actions = expireWaiters(now: now)
        guard connecting.remove(id) != nil else { return actions }
        lastConnectError = reason
        // Waiters that an attempt in flight or a connection coming back could still serve keep
        // waiting; the others learn now why there is no connection.
        let prospects = connecting.count + leased.count
        while waiters.count > prospects {
            let waiter = waiters.removeFirst()
            actions.append(.fail(waiter.id, .connectFailed(reason)))
        }
        return actions
    }

    /// A leased connection comes back; `broken` when it can no longer be used.
    public mutating func release(_ id: ConnectionID, now: MonotonicInstant, broken: Bool) -> [Action] {
        var actions = expireWaiters(now: now)
        guard let createdAt = leased.removeValue(forKey: id) else { return actions }
        leasedForBulk.remove(id)
        if isClosed || broken || now - createdAt >= configuration.maxLifetime {
            actions.append(.close(id))
            actions += createForWaiters()
        } else if let waiter = takeNextWaiter() {
            lease(id, createdAt: createdAt, to: waiter)
            actions.append(.hand(id, to: waiter.id, checkFirst: false))
        } else {
            idle.append(IdleConnection(id: id, createdAt: createdAt, lastUsedAt: now))
        }
        return actions
    }

    /// The check of a handed connection failed: close it and find `request` another one, keeping
    /// its place at the head of the queue and its deadline.
    public mutating func checkFailed(
        _ id: ConnectionID, request: RequestID, now: MonotonicInstant, deadline: MonotonicInstant, priority: LeasePriority = .request
    ) -> [Action] {
        var actions: [Action] = []
        if leased.removeValue(forKey: id) != nil { actions.append(.close(id)) }
        leasedForBulk.remove(id)
        actions += expireWaiters(now: now)
        if isClosed {
            actions.append(.fail(request, .closed))
            return actions
        }
        if priority == .request || bulkMayLease, let handed = handIdle(to: request, priority: priority, now: now, actions: &actions) {
            actions.append(handed)
            return actions
        }
        if deadline <= now {
            actions.append(.fail(request, .timedOut(lastConnectError: lastConnectError)))
            return actions
        }
        waiters.insert(Waiter(id: request, deadline: deadline, priority: priority), at: 0)
        actions += createForWaiters()
        return actions
    }

    /// Time passed: fail waiters whose deadline has come, close idle connections past their lifetime.
    public mutating func tick(now: MonotonicInstant) -> [Action] {
        var actions = expireWaiters(now: now)
        idle.removeAll { connection in
            guard now - connection.createdAt >= configuration.maxLifetime else { return false }
            actions.append(.close(connection.id))
            return true
        }
        return actions
    }

    /// Closes the idle connections and fails every waiter; what is leased or being opened is
    /// closed when it comes back.
    public mutating func close(now: MonotonicInstant) -> [Action] {
        isClosed = true
        var actions = idle.map { Action.close($0.id) }
        idle.removeAll()
        actions += waiters.map { .fail($0.id, .closed) }
        waiters.removeAll()
        return actions
    }

    // MARK: helpers

    /// Takes the most recently used idle connection that is not past its lifetime (closing those
    /// that are) and leases it to `request`.
    private mutating func handIdle(to request: RequestID, priority: LeasePriority, now: MonotonicInstant,
                                   actions: inout [Action]) -> Action? {
        while let connection = idle.popLast() {
            if now - connection.createdAt >= configuration.maxLifetime {
                actions.append(.close(connection.id))
                continue
            }
            lease(connection.id, createdAt: connection.createdAt, to: Waiter(id: request, deadline: now, priority: priority))
            let check = now - connection.lastUsedAt >= configuration.idleCheckAfter
            return .hand(connection.id, to: request, checkFirst: check)
        }
        return nil
    }

    /// The waiter a connection that just became free goes to: the first request, else the first
    /// bulk waiter while bulk work holds fewer than its limit.
    private mutating func takeNextWaiter() -> Waiter? {
        if let first = waiters.firstIndex(where: { $0.priority == .request }) { return waiters.remove(at: first) }
        return bulkMayLease && !waiters.isEmpty ? waiters.removeFirst() : nil
    }

    private mutating func lease(_ id: ConnectionID, createdAt: MonotonicInstant, to waiter: Waiter) {
        leased[id] = createdAt
        if waiter.priority == .bulk { leasedForBulk.insert(id) }
    }

    /// Waiters a new connection would serve: every request, and bulk work up to its limit.
    private var servableWaiters: Int {
        let bulk = waiters.filter { $0.priority == .bulk }.count
        return waiters.count - bulk + min(bulk, max(0, bulkLimit - leasedForBulk.count))
    }

    private mutating func createForWaiters() -> [Action] {
        var actions: [Action] = []
        while servableWaiters > connecting.count && total < configuration.size {
            let id = nextConnectionID
            nextConnectionID += 1
            connecting.insert(id)
            actions.append(.create(id))
        }
        return actions
    }

    private mutating func expireWaiters(now: MonotonicInstant) -> [Action] {
        guard waiters.contains(where: { $0.deadline <= now }) else { return [] }
        var actions: [Action] = []
        waiters.removeAll { waiter in
            guard waiter.deadline <= now else { return false }
            actions.append(.fail(waiter.id, .timedOut(lastConnectError: lastConnectError)))
            return true
        }
        return actions
    }
}
