import Platform

// The dispatcher's decisions, with no epoll, no sockets, no clock and no lock: which connection
// waits until when, which worker holds which one, when the listening socket is watched, how a stop
// drains. `ConnectionDispatcher` feeds it what happened (with the time it read) and carries out the
// actions it returns, under its lock. Everything here is tested with made-up instants.

/// The state of one worker process's connections between requests, its listening socket and its
/// drain.
///
/// Rules:
/// - A connection waits with a deadline: a new one until its first request head has arrived, a
///   kept one for as long as it may stay idle. Each arming gets a new generation; an event of an
///   earlier arming of the same descriptor number is stale.
/// - A connection holding part of a head is armed only for its peer closing and re-armed for input
///   `lookInterval` later; from the first bytes on its head has `firstRecordTimeout` to arrive.
/// - The listening socket is parked while `maximumAcceptedWithoutHead` new connections wait for
///   their head, or during a pause after accept failed; the time keeper re-arms it.
/// - A stop removes the listening socket and drains: it ends when no connection waits and no worker
///   holds one, or at the drain deadline, when held ones are shut down and waiting ones closed.
struct DispatcherState: Sendable {
    /// The connection's descriptor number: only a key here, never used as a descriptor.
    typealias ConnectionID = Int32
    typealias Generation = UInt32
    /// A worker thread's index.
    typealias WorkerID = Int

    enum Exit: Equatable, Sendable {
        /// Stopped, and every connection was served and closed by its peer (or timed out).
        case drained
        /// The drain timeout passed; what remained was closed or shut down.
        case drainTimedOut
    }

    struct Configuration: Equatable, Sendable {
        var firstRecordTimeout: Duration
        var idleConnectionTimeout: Duration
        var drainTimeout: Duration
        var drainIdleTimeout: Duration
        /// How often a connection holding part of a request head is looked at again.
        var lookInterval: Duration
        /// New connections with no head yet, beyond which the listening socket is left alone.
        var maximumAcceptedWithoutHead: Int
        var acceptPauseAfterExhaustion: Duration
        var acceptPauseAfterError: Duration

        func acceptPause(after failure: AcceptFailure) -> Duration {
            switch failure {
            case .exhausted: return acceptPauseAfterExhaustion
            case .other: return acceptPauseAfterError
            }
        }
    }

    struct Waiting: Equatable, Sendable {
        enum Origin: Equatable, Sendable { case accepted, kept }
        let origin: Origin
        var generation: Generation = 0
        /// Closed when this passes.
        var deadline: MonotonicInstant
        /// Set while part of a head has arrived: the connection would be readable all the time, so
        /// it is armed only for the peer closing, and looked at again at this time.
        var nextLook: MonotonicInstant?
    }

    /// A connection a worker holds, as it was when taken: what a put-back starts from.
    struct Held: Equatable, Sendable {
        let id: ConnectionID
        let taken: Waiting
    }

    enum ListenState: Equatable, Sendable {
        /// Registered and armed (one-shot).
        case armed
        /// Its event fired; a worker is accepting and reports with `acceptEnded`.
        case inHand
        /// Registered, not armed: accepts paused or too many connections without a head.
        case parked
        /// Not in the epoll set (before the start, or stopping).
        case removed
    }

    enum AcceptFailure: Equatable, Sendable {
        /// Out of descriptors or memory: likely to pass soon.
        case exhausted
        case other
    }

    /// What a worker found when it peeked at the connection it took.
    enum HeadLook: Equatable, Sendable {
        case complete
        /// `peerGone`: the peer has shut down its side, so what is there now is all there will be.
        case incomplete(peerGone: Bool)
        case invalid(reason: String)
        /// The peer closed the connection, or it failed.
        case endOfStream
        /// A stale or spurious wake-up.
        case nothingYet
    }

    /// Something worth one log line.
    enum Event: Equatable, Sendable {
        case drainStarted(waiting: Int)
        case idleKeptConnectionClosed
        case noHeadInTime(timeout: Duration)
        case peerLeftMidHead
        case headRefused(reason: String)
        case drainTimedOut(idleConnections: Int, requestsInFlight: Int)
    }

    enum Action: Equatable, Sendable {
        /// Add this new connection to the epoll set, armed (one-shot) for input and the peer
        /// closing, its events tagged with `generation`. A refusal is reported with `armRefused`.
        case register(ConnectionID, generation: Generation)
        /// Re-arm this connection (one-shot) for the peer closing, and for input when
        /// `watchingInput`, its events tagged with `generation`. A refusal is reported with `armRefused`.
        case arm(ConnectionID, generation: Generation, watchingInput: Bool)
        /// Out of the epoll set and closed.
        case close(ConnectionID)
        /// A worker still holds it: make its next read or write fail instead of waiting.
        case shutdown(ConnectionID)
        /// Add the listening socket, armed; a refusal is reported with `listenRegistrationRefused`.
        case registerListen
        /// A refusal is reported with `listenRearmRefused`.
        case rearmListen
        case removeListen
        /// Signal the time-keeping thread: it has something to do sooner than it planned.
        case wakeKeeper
        /// Every worker waiting in the epoll set leaves.
        case wakeWorkersToLeave
        case log(Event)
    }

    enum Take: Equatable, Sendable {
        /// An event of an earlier arming, of a connection no longer waiting, or after the end.
        case stale
        case taken([Action])
    }

    /// What the time keeper does once it has carried out a tick's actions.
    enum KeeperPlan: Equatable, Sendable {
        case leave(Exit)
        /// The drain may have just ended: tick again at once.
        case tickAgain
        case sleep(until: MonotonicInstant)
        case sleepUntilSignalled
    }

    let configuration: Configuration
    private(set) var waiting: [ConnectionID: Waiting] = [:]
    private(set) var acceptedWithoutHead = 0
    private var generation: Generation = 0
    private(set) var listen = ListenState.removed
    private(set) var acceptPausedUntil: MonotonicInstant?
    /// Worker → the connection it holds (looking at its head, or serving it). Left in place by a
    /// timed-out drain: those workers still own their descriptors.
    private(set) var busy: [WorkerID: Held] = [:]
    private(set) var stopping = false
    private(set) var drainDeadline: MonotonicInstant?
    /// Set once drained or when the drain timed out: workers leave, late events are stale.
    private(set) var exit: Exit?
    /// When the time keeper wakes next on its own; nil while it runs or sleeps until signalled.
    private(set) var keeperWakesAt: MonotonicInstant?

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    var finished: Bool { exit != nil }

    // MARK: - The listening socket

    mutating func start() -> [Action] {
        guard !stopping, listen == .removed else { return [] }
        listen = .armed
        return [.registerListen]
    }

    mutating func listenRegistrationRefused() -> [Action] {
        listen = .removed
        return []
    }

    /// The listening socket's event fired: true for the one worker that accepts.
    mutating func listenReady() -> Bool {
        guard listen == .armed else { return false }
        listen = .inHand
        return true
    }

    mutating func accepted(_ id: ConnectionID, now: MonotonicInstant) -> [Action] {
        // Nobody is left to serve it.
        if finished { return [.close(id)] }
        let connection = Waiting(origin: .accepted, generation: nextGeneration(), deadline: now + configuration.firstRecordTimeout)
        add(id, connection)
        // nginx has usually written its request already: armed for input, a worker takes it at once.
        return [.register(id, generation: connection.generation)] + wakeKeeper(by: connection.deadline)
    }

    /// The accepting worker is done with its burst; `failure` when accept failed.
    mutating func acceptEnded(failure: AcceptFailure?, now: MonotonicInstant) -> [Action] {
        guard listen == .inHand else { return [] }
        if let failure { acceptPausedUntil = now + configuration.acceptPause(after: failure) }
        if stopping {
            listen = .removed
            return [.removeListen]
        }
        if canAccept(now: now) {
            listen = .armed
            return [.rearmListen]
        }
        listen = .parked
        return [.wakeKeeper]
    }

    mutating func listenRearmRefused(now: MonotonicInstant) -> [Action] {
        listen = .parked
        let until = now + configuration.acceptPauseAfterError
        acceptPausedUntil = until
        return wakeKeeper(by: until)
    }

    // MARK: - Workers

    /// A worker's epoll event for connection `id`, tagged `generation`.
    mutating func take(_ id: ConnectionID, generation: Generation, worker: WorkerID) -> Take {
        guard !finished, let connection = waiting[id], connection.generation == generation else { return .stale }
        let actions = remove(id)
        busy[worker] = Held(id: id, taken: connection)
        return .taken(actions)
    }

    /// What the worker's peek found on the connection it holds. `.complete` leaves it held: the
    /// worker serves it and reports with `requestDone`.
    mutating func looked(worker: WorkerID, _ look: HeadLook, now: MonotonicInstant) -> [Action] {
        guard let held = busy[worker] else { return [] }
        switch look {
        case .complete:
            return []
        case .nothingYet:
            return putBack(held.id, held.taken, worker: worker, watchingInput: held.taken.nextLook == nil, now: now)
        case .incomplete(peerGone: true):
            return [.log(.peerLeftMidHead)] + closeHeld(held.id, worker: worker)
        case .incomplete(peerGone: false):
            var connection = held.taken
            // From the first bytes of a request on, its head has firstRecordTimeout to arrive.
            connection.deadline = min(connection.deadline, now + configuration.firstRecordTimeout)
            connection.nextLook = now + configuration.lookInterval
            return putBack(held.id, connection, worker: worker, watchingInput: false, now: now)
        case .invalid(let reason):
            return [.log(.headRefused(reason: reason))] + closeHeld(held.id, worker: worker)
        case .endOfStream:
            return closeHeld(held.id, worker: worker)
        }
    }

    /// After a request: a kept connection waits for its next one; any other is closed.
    mutating func requestDone(_ id: ConnectionID, worker: WorkerID, reusable: Bool, now: MonotonicInstant) -> [Action] {
        guard reusable else { return closeHeld(id, worker: worker) }
        let kept = Waiting(origin: .kept, deadline: now + configuration.idleConnectionTimeout)
        return putBack(id, kept, worker: worker, watchingInput: true, now: now)
    }

    /// epoll refused to (re)arm a connection: it could never be served.
    mutating func armRefused(_ id: ConnectionID) -> [Action] {
        guard waiting[id] != nil else { return [] }
        return remove(id) + [.close(id)]
    }

    // MARK: - Stopping

    mutating func stopRequested() -> [Action] {
        if !stopping {
            stopping = true
            // Kept connections idle since before the stop are closed once idle drainIdleTimeout.
            let sooner = configuration.drainIdleTimeout - configuration.idleConnectionTimeout
            if sooner < .zero {
                for (id, connection) in waiting where connection.origin == .kept && connection.nextLook == nil {
                    waiting[id]?.deadline = connection.deadline + sooner
                }
            }
        }
        var actions: [Action] = []
        // In hand, it is removed by the accepting worker when its burst ends.
        if listen == .armed || listen == .parked {
            listen = .removed
            actions.append(.removeListen)
        }
        return actions + [.wakeKeeper]
    }

    // MARK: - The time keeper

    /// The time keeper is awake at `now`: the drain, deadlines, second looks, the listening socket.
    mutating func tick(now: MonotonicInstant) -> [Action] {
        keeperWakesAt = nil
        guard !finished else { return [] }
        var actions: [Action] = []
        if stopping {
            if drainDeadline == nil {
                drainDeadline = now + configuration.drainTimeout
                actions.append(.log(.drainStarted(waiting: waiting.count)))
            }
            if waiting.isEmpty && busy.isEmpty {
                exit = .drained
                return actions + [.wakeWorkersToLeave]
            }
            if let drainDeadline, now >= drainDeadline {
                return actions + forceStop()
            }
        }
        for id in waiting.keys.sorted() {
            guard let connection = waiting[id] else { continue }
            if now >= connection.deadline {
                actions += expire(id, connection)
            } else if let look = connection.nextLook, now >= look {
                // Armed for input again: it is readable (part of a head is there), so a worker
                // takes it at once and looks.
                var again = connection
                again.nextLook = nil
                actions += arm(id, again, watchingInput: true, wakingKeeper: false)
            }
        }
        if listen == .parked && !stopping && canAccept(now: now) {
            listen = .armed
            actions.append(.rearmListen)
        }
        return actions
    }

    /// After a tick's actions were carried out (refusals reported): leave, tick again, or sleep
    /// until the earliest instant something is due.
    mutating func keeperPlan(now: MonotonicInstant) -> KeeperPlan {
        if let exit { return .leave(exit) }
        if stopping && waiting.isEmpty && busy.isEmpty { return .tickAgain }
        var wakeAt = stopping ? drainDeadline : nil
        func consider(_ instant: MonotonicInstant?) {
            guard let instant else { return }
            if wakeAt == nil || instant < wakeAt! { wakeAt = instant }
        }
        for connection in waiting.values {
            consider(connection.nextLook)
            consider(connection.deadline)
        }
        if listen == .parked && !stopping, let paused = acceptPausedUntil, now < paused {
            consider(paused)
        }
        keeperWakesAt = wakeAt
        return wakeAt.map { .sleep(until: $0) } ?? .sleepUntilSignalled
    }

    // MARK: - Steps

    private mutating func nextGeneration() -> Generation {
        generation &+= 1
        return generation
    }

    private mutating func add(_ id: ConnectionID, _ connection: Waiting) {
        if let previous = waiting[id], previous.origin == .accepted { acceptedWithoutHead -= 1 }
        waiting[id] = connection
        if connection.origin == .accepted { acceptedWithoutHead += 1 }
    }

    /// Out of `waiting`; a parked listening socket may be re-armed when a new connection leaves.
    private mutating func remove(_ id: ConnectionID) -> [Action] {
        guard let connection = waiting.removeValue(forKey: id), connection.origin == .accepted else { return [] }
        acceptedWithoutHead -= 1
        return listen == .parked ? [.wakeKeeper] : []
    }

    /// Records the connection in `waiting` under a new generation, then arms it: the event may fire
    /// the moment it is armed, and the worker that takes it must find it.
    private mutating func arm(_ id: ConnectionID, _ connection: Waiting, watchingInput: Bool, wakingKeeper: Bool) -> [Action] {
        var connection = connection
        connection.generation = nextGeneration()
        add(id, connection)
        // Built once: this runs after every request.
        let armed = Action.arm(id, generation: connection.generation, watchingInput: watchingInput)
        guard wakingKeeper, keeperSleepsPast(connection.nextLook ?? connection.deadline) else { return [armed] }
        return [armed, .wakeKeeper]
    }

    /// Back into `waiting`, or closed once the process is done.
    private mutating func putBack(
        _ id: ConnectionID, _ connection: Waiting, worker: WorkerID, watchingInput: Bool, now: MonotonicInstant
    ) -> [Action] {
        busy[worker] = nil
        if finished { return (stopping ? [.wakeKeeper] : []) + [.close(id)] }
        var connection = connection
        if stopping && connection.origin == .kept && connection.nextLook == nil {
            connection.deadline = min(connection.deadline, now + configuration.drainIdleTimeout)
        }
        let armed = arm(id, connection, watchingInput: watchingInput, wakingKeeper: true)
        guard stopping else { return armed }
        return [.wakeKeeper] + armed.filter { $0 != .wakeKeeper }
    }

    /// The worker lets go of it before it is closed, so a drain that times out never shuts down a
    /// descriptor number already closed (and perhaps reused).
    private mutating func closeHeld(_ id: ConnectionID, worker: WorkerID) -> [Action] {
        busy[worker] = nil
        return (stopping ? [.wakeKeeper] : []) + [.close(id)]
    }

    /// The time keeper sleeps until the earliest instant it knew of: wake it for an earlier one.
    private func wakeKeeper(by due: MonotonicInstant) -> [Action] {
        keeperSleepsPast(due) ? [.wakeKeeper] : []
    }

    private func keeperSleepsPast(_ due: MonotonicInstant) -> Bool {
        if let wakes = keeperWakesAt, due >= wakes { return false }
        return true
    }

    private mutating func canAccept(now: MonotonicInstant) -> Bool {
        if let paused = acceptPausedUntil {
            if now < paused { return false }
            acceptPausedUntil = nil
        }
        return acceptedWithoutHead < configuration.maximumAcceptedWithoutHead
    }

    private mutating func expire(_ id: ConnectionID, _ connection: Waiting) -> [Action] {
        let event: Event = connection.origin == .kept && connection.nextLook == nil
            ? .idleKeptConnectionClosed
            : .noHeadInTime(timeout: configuration.firstRecordTimeout)
        // The keeper itself is awake: no wake-up for a parked listening socket.
        _ = remove(id)
        return [.log(event), .close(id)]
    }

    /// The drain timeout has passed: close every connection waiting here, and shut down those the
    /// workers hold so that their next read or write fails instead of waiting.
    private mutating func forceStop() -> [Action] {
        exit = .drainTimedOut
        var actions: [Action] = busy.keys.sorted().map { .shutdown(busy[$0]!.id) }
        let idle = waiting.count
        for id in waiting.keys.sorted() {
            _ = remove(id)
            actions.append(.close(id))
        }
        actions.append(.wakeWorkersToLeave)
        actions.append(.log(.drainTimedOut(idleConnections: idle, requestsInFlight: busy.count)))
        return actions
    }
}
