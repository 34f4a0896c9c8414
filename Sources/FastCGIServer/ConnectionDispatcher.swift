#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFastCGI
import Platform

/// Every connection of one worker process between its requests, and the threads that wait on them.
///
/// Connections that are between requests (new ones, and nginx's kept ones) sit in one epoll set,
/// each registered one-shot. The worker threads themselves wait in `epoll_wait`
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
///
/// What to do is decided by `DispatcherState`; this class carries it out with epoll, sockets, the
/// clock and the lock, and writes the log.
final class ConnectionDispatcher: @unchecked Sendable {
    typealias Exit = DispatcherState.Exit

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
    /// The state's configuration, readable without the lock.
    private let rules: DispatcherState.Configuration
    private let epollFD: Int32
    /// Registered level-triggered and never drained once written: every worker waiting in
    /// `epoll_wait` wakes and leaves.
    private let stopPipe = WakePipe()

    /// Guards `state`; its condition wakes the time-keeping thread (workers never wait on it).
    let lock = ConditionLock()
    private var state: DispatcherState

    init(listenFD: Int32, configuration: WorkerProcessConfiguration) {
        self.listenFD = listenFD
        self.configuration = configuration
        rules = DispatcherState.Configuration(
            firstRecordTimeout: configuration.firstRecordTimeout,
            idleConnectionTimeout: configuration.idleConnectionTimeout,
            drainTimeout: configuration.drainTimeout,
            drainIdleTimeout: configuration.drainIdleTimeout,
            lookInterval: Self.lookInterval,
            maximumAcceptedWithoutHead: Self.maximumAcceptedWithoutHead,
            acceptPauseAfterExhaustion: Self.acceptPauseAfterExhaustion,
            acceptPauseAfterError: Self.acceptPauseAfterError
        )
        state = DispatcherState(configuration: rules)
        epollFD = leadimport_epoll_create()
        precondition(epollFD >= 0, "cannot create the FastCGI epoll set: \(SystemError.text(errno))")
        let added = leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_ADD, stopPipe.readFD, Self.input, Self.stopTag)
        precondition(added == 0, "cannot watch the stop pipe: \(SystemError.text(errno))")
    }

    deinit {
        SocketIO.close(epollFD)
    }

    var busyCount: Int { lock.withLock { state.busy.count } }

    // MARK: - The time-keeping thread

    func run(onReady: () -> Void) -> Exit {
        lock.withLock { closeConnections(apply(state.start())) }
        onReady()

        lock.lock()
        defer { lock.unlock() }
        while true {
            let now = MonotonicInstant.now()
            closeConnections(apply(state.tick(now: now)))
            switch state.keeperPlan(now: now) {
            case .leave(let exit):
                return exit
            case .tickAgain:
                continue
            case .sleep(let until):
                _ = lock.wait(until: until)
            case .sleepUntilSignalled:
                lock.wait()
            }
        }
    }

    /// Stops accepting (the listening socket leaves this process's epoll set; it stays open and
    /// untouched for the supervisor and the siblings) and starts the drain. Thread-safe, idempotent.
    func stop() {
        lock.withLock { closeConnections(apply(state.stopRequested())) }
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
            let taken = lock.withLock { () -> [Int32]? in
                switch state.take(fd, generation: tag, worker: index) {
                case .stale: return nil
                case .taken(let actions): return apply(actions)
                }
            }
            guard let closing = taken else { continue }
            closeConnections(closing)
            let look = lookForHead(fd, peerGone: events & Self.peerGone != 0, peekBuffer: &peekBuffer)
            let now = MonotonicInstant.now()
            closeConnections(lock.withLock { apply(state.looked(worker: index, look, now: now)) })
            if look == .complete { return (fd, now) }
        }
    }

    /// After a request: a kept connection goes back into the epoll set; any other is closed.
    func release(_ fd: Int32, worker index: Int, reusable: Bool) {
        closeConnections(lock.withLock { apply(state.requestDone(fd, worker: index, reusable: reusable, now: .now())) })
    }

    /// Peeks at the connection this worker has taken, as far as needed to judge its head.
    /// `peerGone`: the peer has shut down its side, so what is there now is all there will be.
    private func lookForHead(_ fd: Int32, peerGone: Bool, peekBuffer: inout [UInt8]) -> DispatcherState.HeadLook {
        var large: [UInt8] = []
        var peekSize = Self.firstPeekBytes
        while true {
            let outcome = peekSize <= peekBuffer.count
                ? SocketIO.peek(fd, into: &peekBuffer, count: peekSize)
                : SocketIO.peek(fd, into: &large, count: peekSize)
            switch outcome {
            case .endOfStream:
                // The usual end of a kept connection: nginx closed it.
                return .endOfStream
            case .failed(let code):
                if code != ECONNRESET {
                    Log.warning("FastCGI connection failed while idle", ["error": SystemError.text(code)])
                }
                return .endOfStream
            case .nothingYet:
                return .nothingYet
            case .bytes(let count):
                let isFull = count == peekSize
                let limit = requestLimitBytes
                let bodyLimit = configuration.bodyLimit
                let verdict = peekSize <= peekBuffer.count
                    ? RequestHead.inspect(peekBuffer[0..<count], limit: limit, headLimit: Self.headLimitBytes, bodyLimit: bodyLimit)
                    : RequestHead.inspect(large[0..<count], limit: limit, headLimit: Self.headLimitBytes, bodyLimit: bodyLimit)
                switch verdict {
                case .complete:
                    return .complete
                case .incomplete where isFull && peekSize < limit:
                    peekSize = limit
                    large = [UInt8](repeating: 0, count: peekSize)
                case .incomplete:
                    return .incomplete(peerGone: peerGone)
                case .invalid(let reason):
                    return .invalid(reason: reason)
                }
            }
        }
    }

    private func acceptConnections() {
        guard lock.withLock({ state.listenReady() }) else { return }
        // A burst of at most one per worker: the listening socket then goes to the back of the
        // ready list, behind the kept connections that became readable meanwhile, and a busy
        // process leaves the rest of the backlog to a sibling with free workers.
        var failure: DispatcherState.AcceptFailure?
        accepting: for _ in 0..<max(configuration.workers, 1) {
            switch SocketIO.accept(from: listenFD) {
            case .connection(let fd):
                // Bounds every blocking read and write libfcgi makes on it, for its whole life.
                SocketIO.setTimeouts(fd, receive: configuration.receiveTimeout, send: configuration.receiveTimeout)
                let now = MonotonicInstant.now()
                closeConnections(lock.withLock { apply(state.accepted(fd, now: now)) })
            case .nothingPending:
                break accepting
            case .failed(let code):
                let exhausted = code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
                let kind: DispatcherState.AcceptFailure = exhausted ? .exhausted : .other
                failure = kind
                Log.error("accept failed on the FastCGI listening socket", [
                    "error": SystemError.text(code), "pause_ms": "\(rules.acceptPause(after: kind).milliseconds)",
                ])
                break accepting
            }
        }
        closeConnections(lock.withLock { apply(state.acceptEnded(failure: failure, now: .now())) })
    }

    // MARK: - Carrying out the state's actions

    private static func tag(_ fd: Int32, _ generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    /// Carries out the actions under the lock, reporting epoll's refusals back to the state; returns
    /// the connections to close. Arming happens here, before the lock is released: a worker woken
    /// by the new event waits for the lock and then finds the connection recorded.
    private func apply(_ actions: [DispatcherState.Action]) -> [Int32] {
        var queue = actions
        var index = 0
        var closing: [Int32] = []
        while index < queue.count {
            let action = queue[index]
            index += 1
            switch action {
            case .register(let fd, let generation):
                let events = Self.input | Self.peerClosed | Self.oneShot
                if leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_ADD, fd, events, Self.tag(fd, generation)) != 0 {
                    Log.error("cannot watch a FastCGI connection", ["error": SystemError.text(errno)])
                    queue += state.armRefused(fd)
                }
            case .arm(let fd, let generation, let watchingInput):
                let events = (watchingInput ? Self.input : 0) | Self.peerClosed | Self.oneShot
                if leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_MOD, fd, events, Self.tag(fd, generation)) != 0 {
                    queue += state.armRefused(fd)
                }
            case .close(let fd):
                closing.append(fd)
            case .shutdown(let fd):
                SocketIO.shutdownConnection(fd)
            case .registerListen:
                if leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_ADD, listenFD, Self.input | Self.oneShot, Self.listenTag) != 0 {
                    Log.error("cannot watch the FastCGI listening socket", ["error": SystemError.text(errno)])
                    queue += state.listenRegistrationRefused()
                }
            case .rearmListen:
                if leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_MOD, listenFD, Self.input | Self.oneShot, Self.listenTag) != 0 {
                    Log.error("cannot re-arm the FastCGI listening socket", ["error": SystemError.text(errno)])
                    queue += state.listenRearmRefused(now: .now())
                }
            case .removeListen:
                _ = leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_DEL, listenFD, 0, 0)
            case .wakeKeeper:
                lock.signal()
            case .wakeWorkersToLeave:
                stopPipe.wake()
            case .log(let event):
                Self.log(event)
            }
        }
        return closing
    }

    /// Workers close after releasing the lock; the time keeper, which holds it, closes under it.
    private func closeConnections(_ fds: [Int32]) {
        for fd in fds {
            _ = leadimport_epoll_ctl(epollFD, leadimport_EPOLL_CTL_DEL, fd, 0, 0)
            SocketIO.close(fd)
        }
    }

    private static func log(_ event: DispatcherState.Event) {
        switch event {
        case .drainStarted(let waiting):
            Log.info("draining FastCGI connections", ["waiting": "\(waiting)"])
        case .idleKeptConnectionClosed:
            Log.write(.debug, "closing an idle kept FastCGI connection")
        case .noHeadInTime(let timeout):
            Log.warning("FastCGI connection closed: no complete request head in time", ["timeout_ms": "\(timeout.milliseconds)"])
        case .peerLeftMidHead:
            Log.write(.debug, "FastCGI connection closed by its peer in the middle of a request head")
        case .headRefused(let reason):
            Log.warning("FastCGI connection closed: unacceptable request head", ["reason": reason])
        case .drainTimedOut(let idle, let inFlight):
            Log.warning("FastCGI drain timed out; closing what remains", [
                "idle_connections": "\(idle)", "requests_in_flight": "\(inFlight)",
            ])
        }
    }
}
