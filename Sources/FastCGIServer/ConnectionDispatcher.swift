#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFastCGI
import Platform

/// Every connection of one worker process between its requests, and the threads that wait on them.
///
/// Connections that are between requests (new ones, and nginx's kept ones) sit in `waiting` and in
/// one epoll set, each registered one-shot. The worker threads themselves wait in `epoll_wait`
/// (leader/followers): the kernel wakes one free worker when a connection becomes readable, that
/// worker peeks at it and serves the request itself once its whole head has arrived and checked out
/// (RequestHead), then re-arms the connection and waits again. No thread hands a connection to
/// another, so a request costs one wake-up, as in a thread blocked in `read` on its connection,
/// while a connection that isn't sending a whole request still holds no worker: a worker only
/// keeps a connection whose request head is complete.
///
/// The thread that calls `run` keeps time: it closes connections whose deadline passed, looks again
/// at those holding part of a head, re-arms the listening socket after a pause, and ends the drain.
/// It sleeps on `lock`'s condition until the earliest of those times; nothing on the path of a
/// request wakes it.
final class ConnectionDispatcher: @unchecked Sendable {
    enum Exit: Equatable {
        /// Stopped, and every connection was served and closed by its peer (or timed out).
        case drained
        /// The drain timeout passed; what remained was closed or shut down.
        case drainTimedOut
    }

    private struct Waiting {
        enum Origin { case accepted, kept }
        let origin: Origin
        /// Tags this registration's events: an event of an earlier registration of the same
        /// descriptor number is recognised as stale and ignored.
        var generation: UInt32 = 0
        /// Closed when this passes.
        var deadline: MonotonicInstant
        /// Set while part of a head has arrived: the connection would be readable all the time, so
        /// it is armed only for the peer closing, and looked at again at this time.
        var nextLook: MonotonicInstant?
    }

    private enum ListenState {
        /// Registered and armed (one-shot).
        case armed
        /// Its event fired; a worker is accepting and re-arms it after.
        case inHand
        /// Registered, not armed: accepts paused or too many connections without a head.
        case parked
        /// Not in the epoll set (stopping).
        case removed
    }

    /// How often a connection holding part of a request head is looked at again.
    static let lookInterval: Duration = .milliseconds(50)
    /// Most heads are a few hundred bytes; a larger peek is only made when needed.
    static let firstPeekBytes = 16 * 1024
    /// Beyond this, a request head is refused. nginx's own header limits (4 × 8 KiB by default)
    /// keep real heads far below it.
    static let headLimitBytes = 128 * 1024
    /// Room for the record headers and padding of a body up to the limit, sent in records of any size.
    static let bodyFramingBytes = 64 * 1024

    /// The most of one request that is looked at before it is served: its head and as much of its
    /// body as a worker reads (RequestHead).
    var requestLimitBytes: Int { Self.headLimitBytes + configuration.bodyLimit + 1 + Self.bodyFramingBytes }
    /// New connections with no head yet, beyond which the listening socket is left alone.
    static let maximumAcceptedWithoutHead = 512
    /// Pause after accept fails for lack of descriptors or memory, instead of spinning on a
    /// listening socket that stays readable.
    static let acceptPauseAfterExhaustion: Duration = .milliseconds(100)
    static let acceptPauseAfterError: Duration = .seconds(1)

    private static let listenTag: UInt64 = .max - 1
    private static let stopTag: UInt64 = .max
    private static let input = leadimport_EPOLLIN
    private static let peerClosed = leadimport_EPOLLRDHUP
    private static let oneShot = leadimport_EPOLLONESHOT
    private static let peerGone = leadimport_EPOLLRDHUP | leadimport_EPOLLHUP | leadimport_EPOLLERR

    private let listenFD: Int32
    private let configuration: WorkerProcessConfiguration
    private let epollFD: Int32
    /// Registered level-triggered and never drained once written: every worker waiting in
    /// `epoll_wait` wakes and leaves.
    private let stopPipe = WakePipe()

    /// Guards everything below; its condition wakes the time-keeping thread (workers never wait on it).
    let lock = ConditionLock()
    private var waiting: [Int32: Waiting] = [:]
    private var acceptedWithoutHead = 0
    private var generation: UInt32 = 0
    private var listenState = ListenState.removed
    private var acceptPausedUntil: MonotonicInstant?
    /// Worker index → the connection it holds (looking at its head, or serving it). A worker
    /// removes its entry before it closes the descriptor, so whoever reads it under the lock holds
    /// a descriptor that is still open.
    private var busy: [Int: Int32] = [:]
    private var stopping = false
    /// Workers leave: set once drained or when the drain timed out.
    private var finished = false
    /// When the time-keeping thread wakes next on its own (nil: only when signalled).
    private var keeperWakesAt: MonotonicInstant?

    init(listenFD: Int32, configuration: WorkerProcessConfiguration) {
        self.listenFD = listenFD
        self.configuration = configuration
        epollFD = leadimport_epoll_create()
        precondition(epollFD >= 0, "cannot create the FastCGI epoll set: \(SystemError.text(errno))")
        let added = leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_ADD, stopPipe.readFD, Self.input, Self.stopTag)
        precondition(added == 0, "cannot watch the stop pipe: \(SystemError.text(errno))")
    }

    deinit {
        SocketIO.close(epollFD)
    }

    var busyCount: Int { lock.withLock { busy.count } }

    // MARK: - The time-keeping thread

    func run(onReady: () -> Void) -> Exit {
        lock.withLock {
            if !stopping {
                if leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_ADD, listenFD, Self.input | Self.oneShot, Self.listenTag) == 0 {
                    listenState = .armed
                } else {
                    Log.error("cannot watch the FastCGI listening socket", ["error": SystemError.text(errno)])
                }
            }
        }
        onReady()
        var drainDeadline: MonotonicInstant?

        lock.lock()
        defer { lock.unlock() }
        while true {
            let now = MonotonicInstant.now()
            if stopping {
                if drainDeadline == nil {
                    drainDeadline = now + configuration.drainTimeout
                    Log.info("draining FastCGI connections", ["waiting": "\(waiting.count)"])
                }
                if waiting.isEmpty && busy.isEmpty {
                    finishLocked()
                    return .drained
                }
                if let drainDeadline, now >= drainDeadline {
                    forceStopLocked()
                    return .drainTimedOut
                }
            }

            var wakeAt = stopping ? drainDeadline : nil
            func earliest(_ instant: MonotonicInstant?) {
                guard let instant else { return }
                if wakeAt == nil || instant < wakeAt! { wakeAt = instant }
            }
            var expired = false
            for (fd, connection) in waiting {
                if now >= connection.deadline {
                    expireLocked(fd, connection)
                    expired = true
                    continue
                }
                if let look = connection.nextLook {
                    if now >= look {
                        // Armed for input again: it is readable (part of a head is there), so a
                        // worker takes it at once and looks.
                        var again = connection
                        again.nextLook = nil
                        armLocked(fd, &again, watchingInput: true)
                        earliest(again.deadline)
                        continue
                    }
                    earliest(look)
                }
                earliest(connection.deadline)
            }
            if listenState == .parked && !stopping {
                if canAcceptLocked(now) {
                    rearmListenLocked()
                } else if let paused = acceptPausedUntil, now < paused {
                    earliest(paused)
                }
            }

            // The drain may have just ended with the last connection expired.
            if stopping && expired { continue }
            keeperWakesAt = wakeAt
            if let wakeAt { lock.wait(until: wakeAt) } else { lock.wait() }
            keeperWakesAt = nil
        }
    }

    /// Stops accepting (the listening socket leaves this process's epoll set; it stays open and
    /// untouched for the supervisor and the siblings) and starts the drain. Thread-safe, idempotent.
    func stop() {
        lock.withLock {
            stopping = true
            // Kept connections idle since before the stop are closed once idle drainIdleTimeout.
            for (fd, connection) in waiting where connection.origin == .kept && connection.nextLook == nil {
                let sooner = configuration.drainIdleTimeout - configuration.idleConnectionTimeout
                if sooner < .zero { waiting[fd]?.deadline = connection.deadline + sooner }
            }
            if listenState == .armed || listenState == .parked {
                _ = leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_DEL, listenFD, 0, 0)
                listenState = .removed
            }
            lock.signal()
        }
    }

    // MARK: - Worker threads

    /// Blocks until this worker holds a connection whose whole request head has arrived, and
    /// returns it with the time it was found complete; nil once the process is done.
    func nextRequest(worker index: Int, peekBuffer: inout [UInt8]) -> (fd: Int32, since: MonotonicInstant)? {
        var events: UInt32 = 0
        var data: UInt64 = 0
        while true {
            let result = leadimport_epoll_wait_one(epollFD, -1, &events, &data)
            if result < 0 {
                let code = errno
                if code == EINTR { continue }
                Log.error("epoll_wait failed in a FastCGI worker", ["error": SystemError.text(code)])
                usleep(10_000)
                continue
            }
            if result == 0 { continue }
            if data == Self.stopTag { return nil }
            if data == Self.listenTag {
                acceptConnections()
                continue
            }
            let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: data))
            let tag = UInt32(truncatingIfNeeded: data >> 32)
            let taken: Waiting? = lock.withLock {
                guard !finished, let connection = waiting[fd], connection.generation == tag else { return nil }
                removeWaitingLocked(fd, connection)
                busy[index] = fd
                return connection
            }
            guard let connection = taken else { continue }
            if let since = lookForHead(fd, connection, worker: index, peerGone: events & Self.peerGone != 0, peekBuffer: &peekBuffer) {
                return (fd, since)
            }
        }
    }

    /// After a request: a kept connection goes back into the epoll set; any other is closed.
    func release(_ fd: Int32, worker index: Int, reusable: Bool) {
        if reusable {
            putBack(fd, Waiting(origin: .kept, deadline: .now() + configuration.idleConnectionTimeout),
                    worker: index, watchingInput: true)
        } else {
            closeHeld(fd, worker: index)
        }
    }

    /// Peeks at the connection this worker has taken and decides: serve it (returns when its head
    /// became complete), wait for more (put back), or close it.
    /// `peerGone`: the peer has shut down its side, so what is there now is all there will be.
    private func lookForHead(
        _ fd: Int32, _ taken: Waiting, worker index: Int, peerGone: Bool, peekBuffer: inout [UInt8]
    ) -> MonotonicInstant? {
        var connection = taken
        var verdict: RequestHead.Verdict = .incomplete
        var large: [UInt8] = []
        var peekSize = Self.firstPeekBytes
        while true {
            let outcome = peekSize <= peekBuffer.count
                ? SocketIO.peek(fd, into: &peekBuffer, count: peekSize)
                : SocketIO.peek(fd, into: &large, count: peekSize)
            switch outcome {
            case .endOfStream:
                // The usual end of a kept connection: nginx closed it.
                closeHeld(fd, worker: index)
                return nil
            case .failed(let code):
                if code != ECONNRESET {
                    Log.warning("FastCGI connection failed while idle", ["error": SystemError.text(code)])
                }
                closeHeld(fd, worker: index)
                return nil
            case .nothingYet:
                // A stale or spurious wake-up.
                putBack(fd, connection, worker: index, watchingInput: connection.nextLook == nil)
                return nil
            case .bytes(let count):
                let isFull = count == peekSize
                let limit = requestLimitBytes
                let bodyLimit = configuration.bodyLimit
                verdict = peekSize <= peekBuffer.count
                    ? RequestHead.inspect(peekBuffer[0..<count], limit: limit, headLimit: Self.headLimitBytes, bodyLimit: bodyLimit)
                    : RequestHead.inspect(large[0..<count], limit: limit, headLimit: Self.headLimitBytes, bodyLimit: bodyLimit)
                if verdict == .incomplete && isFull && peekSize < limit {
                    peekSize = limit
                    large = [UInt8](repeating: 0, count: peekSize)
                    continue
                }
            }
            break
        }

        let now = MonotonicInstant.now()
        switch verdict {
        case .complete:
            return now
        case .incomplete where peerGone:
            Log.write(.debug, "FastCGI connection closed by its peer in the middle of a request head")
            closeHeld(fd, worker: index)
        case .incomplete:
            // From the first bytes of a request on, its head has firstRecordTimeout to arrive.
            let headDeadline = now + configuration.firstRecordTimeout
            if headDeadline < connection.deadline { connection.deadline = headDeadline }
            connection.nextLook = now + Self.lookInterval
            putBack(fd, connection, worker: index, watchingInput: false)
        case .invalid(let reason):
            Log.warning("FastCGI connection closed: unacceptable request head", ["reason": reason])
            closeHeld(fd, worker: index)
        }
        return nil
    }

    private func acceptConnections() {
        let mine = lock.withLock { () -> Bool in
            guard listenState == .armed else { return false }
            listenState = .inHand
            return true
        }
        guard mine else { return }
        // A burst of at most one per worker: the listening socket then goes to the back of the
        // ready list, behind the kept connections that became readable meanwhile, and a busy
        // process leaves the rest of the backlog to a sibling with free workers.
        var pause: Duration?
        accepting: for _ in 0..<max(configuration.workers, 1) {
            switch SocketIO.accept(from: listenFD) {
            case .connection(let fd):
                // Bounds every blocking read and write libfcgi makes on it, for its whole life.
                SocketIO.setTimeouts(fd, receive: configuration.receiveTimeout, send: configuration.receiveTimeout)
                let now = MonotonicInstant.now()
                let added = lock.withLock { () -> Bool in
                    var connection = Waiting(origin: .accepted, deadline: now + configuration.firstRecordTimeout)
                    generation &+= 1
                    connection.generation = generation
                    // nginx has usually written its request already: armed for input, a worker
                    // takes it at once.
                    guard leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_ADD, fd, Self.input | Self.peerClosed | Self.oneShot,
                                               Self.tag(fd, connection.generation)) == 0 else { return false }
                    addWaitingLocked(fd, connection)
                    wakeKeeperLocked(by: connection.deadline)
                    return true
                }
                if !added {
                    Log.error("cannot watch a FastCGI connection", ["error": SystemError.text(errno)])
                    SocketIO.close(fd)
                }
            case .nothingPending:
                break accepting
            case .failed(let code):
                let exhausted = code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
                let chosen = exhausted ? Self.acceptPauseAfterExhaustion : Self.acceptPauseAfterError
                pause = chosen
                Log.error("accept failed on the FastCGI listening socket", [
                    "error": SystemError.text(code), "pause_ms": "\(chosen.milliseconds)",
                ])
                break accepting
            }
        }
        lock.withLock {
            let now = MonotonicInstant.now()
            if let pause { acceptPausedUntil = now + pause }
            if stopping {
                _ = leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_DEL, listenFD, 0, 0)
                listenState = .removed
            } else if canAcceptLocked(now) {
                rearmListenLocked()
            } else {
                listenState = .parked
                lock.signal()
            }
        }
    }

    /// Back into `waiting` and the epoll set, or closed if the process is done.
    private func putBack(_ fd: Int32, _ connection: Waiting, worker index: Int, watchingInput: Bool) {
        let closeInstead = lock.withLock { () -> Bool in
            busy[index] = nil
            if stopping { lock.signal() }
            if finished { return true }
            var connection = connection
            if stopping && connection.origin == .kept && connection.nextLook == nil {
                connection.deadline = min(connection.deadline, .now() + configuration.drainIdleTimeout)
            }
            return !armLocked(fd, &connection, watchingInput: watchingInput)
        }
        if closeInstead { closeConnection(fd) }
    }

    /// Closes a connection this worker holds.
    private func closeHeld(_ fd: Int32, worker index: Int) {
        lock.withLock {
            busy[index] = nil
            if stopping { lock.signal() }
        }
        closeConnection(fd)
    }

    // MARK: - Under the lock

    private static func tag(_ fd: Int32, _ generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    /// (Re)arms a connection with a new generation and records it in `waiting`; false (and not
    /// recorded) when epoll refuses it.
    @discardableResult
    private func armLocked(_ fd: Int32, _ connection: inout Waiting, watchingInput: Bool) -> Bool {
        generation &+= 1
        connection.generation = generation
        let events = (watchingInput ? Self.input : 0) | Self.peerClosed | Self.oneShot
        // Recorded first: the event may fire the moment it is armed, and the worker that takes it
        // must find it (it waits for this lock).
        if waiting[fd] != nil { removeWaitingLocked(fd, waiting[fd]!) }
        addWaitingLocked(fd, connection)
        guard leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_MOD, fd, events, Self.tag(fd, connection.generation)) == 0 else {
            removeWaitingLocked(fd, connection)
            return false
        }
        wakeKeeperLocked(by: connection.nextLook ?? connection.deadline)
        return true
    }

    /// The time keeper sleeps until the earliest time it knew of: wake it for an earlier one.
    private func wakeKeeperLocked(by due: MonotonicInstant) {
        if let wakes = keeperWakesAt, due >= wakes { return }
        lock.signal()
    }

    private func addWaitingLocked(_ fd: Int32, _ connection: Waiting) {
        waiting[fd] = connection
        if connection.origin == .accepted { acceptedWithoutHead += 1 }
    }

    private func removeWaitingLocked(_ fd: Int32, _ connection: Waiting) {
        waiting[fd] = nil
        if connection.origin == .accepted {
            acceptedWithoutHead -= 1
            if listenState == .parked { lock.signal() }
        }
    }

    private func canAcceptLocked(_ now: MonotonicInstant) -> Bool {
        if let paused = acceptPausedUntil {
            if now < paused { return false }
            acceptPausedUntil = nil
        }
        return acceptedWithoutHead < Self.maximumAcceptedWithoutHead
    }

    private func rearmListenLocked() {
        if leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_MOD, listenFD, Self.input | Self.oneShot, Self.listenTag) == 0 {
            listenState = .armed
        } else {
            Log.error("cannot re-arm the FastCGI listening socket", ["error": SystemError.text(errno)])
            listenState = .parked
            acceptPausedUntil = .now() + Self.acceptPauseAfterError
        }
    }

    private func expireLocked(_ fd: Int32, _ connection: Waiting) {
        switch (connection.origin, connection.nextLook) {
        case (.kept, nil):
            Log.write(.debug, "closing an idle kept FastCGI connection")
        default:
            Log.warning("FastCGI connection closed: no complete request head in time", [
                "timeout_ms": "\(configuration.firstRecordTimeout.milliseconds)",
            ])
        }
        removeWaitingLocked(fd, connection)
        closeConnection(fd)
    }

    private func closeConnection(_ fd: Int32) {
        _ = leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_DEL, fd, 0, 0)
        SocketIO.close(fd)
    }

    // MARK: - Stopping

    /// Drained: the workers are told to leave.
    private func finishLocked() {
        finished = true
        stopPipe.wake()
    }

    /// The drain timeout has passed: close every connection waiting here, and shut down those the
    /// workers hold so that their next read or write fails instead of waiting.
    private func forceStopLocked() {
        finished = true
        // A worker removes its entry before closing, so these are still open.
        for fd in busy.values { SocketIO.shutdownConnection(fd) }
        let idle = waiting.count
        for (fd, connection) in waiting {
            removeWaitingLocked(fd, connection)
            closeConnection(fd)
        }
        stopPipe.wake()
        Log.warning("FastCGI drain timed out; closing what remains", [
            "idle_connections": "\(idle)", "requests_in_flight": "\(busy.count)",
        ])
    }
}
