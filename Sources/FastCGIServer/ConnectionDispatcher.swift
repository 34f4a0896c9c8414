#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Platform

/// The thread that owns every connection between requests. It polls the listening socket (only
/// while a worker is free, so that a busy process leaves new connections in the backlog for its
/// siblings), the connections waiting for their next request, and the wake pipe; it gives a
/// connection to the workers once a whole, safe request head is waiting on it (RequestHead).
final class ConnectionDispatcher {
    enum Exit: Equatable {
        /// Stopped, and every connection was served and closed by its peer (or timed out).
        case drained
        /// The drain timeout passed; what remained was closed or shut down.
        case drainTimedOut
    }

    private struct Waiting {
        enum Origin { case accepted, kept }
        let origin: Origin
        /// Closed when this passes.
        var deadline: MonotonicInstant
        /// Set while part of a head has arrived: the connection would be readable on every poll, so
        /// it is polled only for the peer closing, and looked at again at this time.
        var nextLook: MonotonicInstant?
    }

    /// How often a connection holding part of a request head is looked at again.
    static let lookInterval: Duration = .milliseconds(50)
    /// Most heads are a few hundred bytes; a larger first peek is only made when needed.
    static let firstPeekBytes = 16 * 1024
    /// Beyond this, a request head is refused. nginx's own header limits (4 × 8 KiB by default)
    /// keep real heads far below it.
    static let headLimitBytes = 128 * 1024
    /// New connections with no head yet, beyond which the listening socket is left alone.
    static let maximumAcceptedWithoutHead = 512
    /// Pause after accept fails for lack of descriptors or memory, instead of spinning on a
    /// listening socket that stays readable.
    static let acceptPauseAfterExhaustion: Duration = .milliseconds(100)
    static let acceptPauseAfterError: Duration = .seconds(1)

    private let listenFD: Int32
    private let coordination: WorkerCoordination
    private let configuration: WorkerProcessConfiguration
    private var waiting: [Int32: Waiting] = [:]
    private var peekBuffer = [UInt8](repeating: 0, count: ConnectionDispatcher.headLimitBytes)
    private var acceptPausedUntil: MonotonicInstant?
    /// Heads found complete in this round, handed to the workers together.
    private var nowReady: [Int32] = []

    init(listenFD: Int32, coordination: WorkerCoordination, configuration: WorkerProcessConfiguration) {
        self.listenFD = listenFD
        self.coordination = coordination
        self.configuration = configuration
    }

    func run(onReady: () -> Void) -> Exit {
        onReady()
        var drainDeadline: MonotonicInstant?

        while true {
            var now = MonotonicInstant.now()
            let (returned, workersFree, stopping) = coordination.lock.withLock {
                defer { coordination.returning.removeAll() }
                return (coordination.returning, coordination.freeWorkers, coordination.stopping)
            }
            var freeWorkers = workersFree
            for fd in returned {
                waiting[fd] = Waiting(origin: .kept, deadline: now + configuration.idleConnectionTimeout)
            }

            if stopping {
                if drainDeadline == nil {
                    drainDeadline = now + configuration.drainTimeout
                    Log.info("draining FastCGI connections", ["waiting": "\(waiting.count)"])
                }
                if waiting.isEmpty && finishIfWorkersIdle() { return .drained }
                if let drainDeadline, now >= drainDeadline {
                    forceStop()
                    return .drainTimedOut
                }
            }

            for (fd, connection) in waiting {
                if now >= connection.deadline {
                    expire(fd, connection)
                } else if let look = connection.nextLook, now >= look {
                    lookForHead(fd, now: now)
                }
            }
            freeWorkers -= handOverReady()

            // The poll set: the wake pipe, the listening socket while a worker is free, every
            // connection that has sent nothing yet, and those holding part of a head for their
            // peer going away (it would otherwise sit out its timeout).
            var descriptors = [pollfd(fd: coordination.wake.readFD, events: Int16(POLLIN), revents: 0)]
            let acceptedWithoutHead = waiting.values.reduce(0) { $0 + ($1.origin == .accepted ? 1 : 0) }
            let pausedUntil = acceptPausedUntil.flatMap { now < $0 ? $0 : nil }
            // New connections are always taken, one a round at least: waiting for a free worker
            // starved them, since under steady load nginx's kept connections refill the queue as
            // fast as workers empty it and a new connection sat in the backlog for seconds. A
            // process takes a burst only while fewer than `workers` requests queue beyond its free
            // workers, which leaves most of one to a sibling process with idle workers.
            let acceptable = max(freeWorkers + configuration.workers, 1)
            let listening = !stopping && pausedUntil == nil
                && acceptedWithoutHead < Self.maximumAcceptedWithoutHead
            if listening {
                descriptors.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0))
            }
            var wakeAt = stopping ? drainDeadline : nil
            func earliest(_ instant: MonotonicInstant?) {
                guard let instant else { return }
                if wakeAt == nil || instant < wakeAt! { wakeAt = instant }
            }
            if !stopping { earliest(pausedUntil) }
            for (fd, connection) in waiting {
                earliest(connection.deadline)
                if let look = connection.nextLook {
                    earliest(look)
                    descriptors.append(pollfd(fd: fd, events: SocketIO.peerClosedEvent, revents: 0))
                } else {
                    descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
                }
            }

            let result = SocketIO.poll(&descriptors, timeoutMilliseconds: Self.milliseconds(until: wakeAt, from: now))
            if result < 0 {
                // Only EINVAL/ENOMEM get here; do not spin on them.
                Log.error("poll failed in the FastCGI dispatcher", ["error": SocketIO.errorText(-result)])
                usleep(10_000)
                continue
            }
            if result == 0 { continue }

            now = .now()
            var index = 0
            if descriptors[index].revents != 0 { coordination.wake.drain() }
            index += 1
            if listening {
                if descriptors[index].revents != 0 { acceptConnections(upTo: acceptable, now: now) }
                index += 1
            }
            while index < descriptors.count {
                let descriptor = descriptors[index]
                if descriptor.revents != 0, waiting[descriptor.fd] != nil {
                    lookForHead(descriptor.fd, now: now, peerGone: descriptor.revents & SocketIO.peerGoneEvents != 0)
                }
                index += 1
            }
            handOverReady()
        }
    }

    static func milliseconds(until instant: MonotonicInstant?, from now: MonotonicInstant) -> Int32 {
        guard let instant else { return -1 }
        if instant <= now { return 0 }
        // Rounded up: waking a little early would only poll again for nothing.
        let nanoseconds = instant.nanoseconds - now.nanoseconds
        return Int32(clamping: (nanoseconds + 999_999) / 1_000_000)
    }

    // MARK: - Connections

    private func acceptConnections(upTo count: Int, now: MonotonicInstant) {
        for _ in 0..<count {
            switch SocketIO.accept(from: listenFD) {
            case .connection(let fd):
                waiting[fd] = Waiting(origin: .accepted, deadline: now + configuration.firstRecordTimeout)
                // nginx usually writes its request before we get to accept: no need for a poll round.
                lookForHead(fd, now: now)
            case .nothingPending:
                return
            case .failed(let code):
                let exhausted = code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM
                let pause = exhausted ? Self.acceptPauseAfterExhaustion : Self.acceptPauseAfterError
                acceptPausedUntil = now + pause
                Log.error("accept failed on the FastCGI listening socket", [
                    "error": SocketIO.errorText(code), "pause_ms": "\(pause.milliseconds)",
                ])
                return
            }
        }
    }

    /// Peeks at the connection and decides: hand it over, wait for more, or close it.
    /// `peerGone`: the peer has shut down its side, so what is there now is all there will be.
    private func lookForHead(_ fd: Int32, now: MonotonicInstant, peerGone: Bool = false) {
        guard var connection = waiting[fd] else { return }
        var verdict: RequestHead.Verdict = .incomplete
        var peekSize = Self.firstPeekBytes
        while true {
            switch SocketIO.peek(fd, into: &peekBuffer, count: peekSize) {
            case .endOfStream:
                // The usual end of a kept connection: nginx closed it.
                close(fd)
                return
            case .failed(let code):
                if code != ECONNRESET {
                    Log.warning("FastCGI connection failed while idle", ["error": SocketIO.errorText(code)])
                }
                close(fd)
                return
            case .nothingYet:
                connection.nextLook = nil
                waiting[fd] = connection
                return
            case .bytes(let count):
                let isFull = count == peekSize
                verdict = RequestHead.inspect(peekBuffer[0..<count], limit: Self.headLimitBytes)
                if verdict == .incomplete && isFull && peekSize < Self.headLimitBytes {
                    peekSize = Self.headLimitBytes
                    continue
                }
            }
            break
        }

        switch verdict {
        case .complete:
            waiting[fd] = nil
            nowReady.append(fd)
        case .incomplete where peerGone:
            Log.write(.debug, "FastCGI connection closed by its peer in the middle of a request head")
            close(fd)
        case .incomplete:
            // From the first bytes of a request on, its head has firstRecordTimeout to arrive.
            let headDeadline = now + configuration.firstRecordTimeout
            if headDeadline < connection.deadline { connection.deadline = headDeadline }
            connection.nextLook = now + Self.lookInterval
            waiting[fd] = connection
        case .invalid(let reason):
            Log.warning("FastCGI connection closed: unacceptable request head", ["reason": reason])
            close(fd)
        }
    }

    private func expire(_ fd: Int32, _ connection: Waiting) {
        switch (connection.origin, connection.nextLook) {
        case (.kept, nil):
            Log.write(.debug, "closing an idle kept FastCGI connection")
        default:
            Log.warning("FastCGI connection closed: no complete request head in time", [
                "timeout_ms": "\(configuration.firstRecordTimeout.milliseconds)",
            ])
        }
        close(fd)
    }

    private func close(_ fd: Int32) {
        waiting[fd] = nil
        SocketIO.close(fd)
    }

    /// Returns how many connections were handed over.
    @discardableResult
    private func handOverReady() -> Int {
        let count = nowReady.count
        guard count > 0 else { return 0 }
        coordination.lock.withLock {
            let now = MonotonicInstant.now()
            coordination.ready += nowReady.map { ($0, now) }
            if count == 1 { coordination.lock.signal() } else { coordination.lock.broadcast() }
        }
        nowReady.removeAll(keepingCapacity: true)
        return count
    }

    // MARK: - Stopping

    /// With nothing waiting here, the process is drained once no worker holds or will get a
    /// connection; the workers are then told to leave.
    private func finishIfWorkersIdle() -> Bool {
        coordination.lock.withLock {
            guard coordination.ready.isEmpty, coordination.returning.isEmpty, coordination.busy.isEmpty else { return false }
            coordination.finished = true
            coordination.lock.broadcast()
            return true
        }
    }

    /// The drain timeout has passed: close every connection we hold, and shut down those the
    /// workers hold so that their next read or write fails instead of waiting.
    private func forceStop() {
        let (busy, unserved) = coordination.lock.withLock {
            coordination.finished = true
            let unserved = coordination.ready.map(\.fd) + coordination.returning
            coordination.ready.removeAll()
            coordination.returning.removeAll()
            // Under the lock: a worker removes its entry before closing, so these are still open.
            for fd in coordination.busy.values { SocketIO.shutdownConnection(fd) }
            coordination.lock.broadcast()
            return (coordination.busy.count, unserved)
        }
        let idle = waiting.count
        for fd in Array(waiting.keys) + unserved { close(fd) }
        Log.warning("FastCGI drain timed out; closing what remains", [
            "idle_connections": "\(idle + unserved.count)", "requests_in_flight": "\(busy)",
        ])
    }
}
