#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import HTTP
import Platform

public struct WorkerProcessConfiguration: Sendable {
    /// Worker threads in this process: how many requests it serves at once.
    public var workers: Int
    /// Request bodies over this many bytes are not read; the request says `bodyExceedsLimit`.
    public var bodyLimit: Int
    /// SO_RCVTIMEO (and SO_SNDTIMEO) on every connection a worker serves: the longest one read or
    /// write may wait before the connection is given up.
    public var receiveTimeout: Duration
    /// A new connection whose whole request head (BEGIN_REQUEST and every PARAMS record) has not
    /// arrived by then is closed without ever having held a worker. On a kept connection the same
    /// bound runs from the first bytes of its next request.
    public var firstRecordTimeout: Duration
    /// A kept connection (nginx `fastcgi_keep_conn`) idle this long is closed by us. nginx's own
    /// upstream keepalive timeout should be shorter, so that nginx is the one that closes.
    public var idleConnectionTimeout: Duration
    /// The longest a graceful stop waits for in-flight requests and kept connections.
    public var drainTimeout: Duration
    /// While stopping, a kept connection idle this long is closed by us, whatever the web server's
    /// keepalive settings, so the process exits soon after its last request. Longer than the
    /// shipped nginx configuration's upstream `keepalive_timeout` (3 s): with it, nginx closes
    /// first, and a POST is never sent on a connection we are closing.
    public var drainIdleTimeout: Duration

    /// No defaults: the service's values are in its `ServiceConfiguration`.
    public init(
        workers: Int,
        bodyLimit: Int,
        receiveTimeout: Duration,
        firstRecordTimeout: Duration,
        idleConnectionTimeout: Duration,
        drainTimeout: Duration,
        drainIdleTimeout: Duration
    ) {
        self.workers = workers
        self.bodyLimit = bodyLimit
        self.receiveTimeout = receiveTimeout
        self.firstRecordTimeout = firstRecordTimeout
        self.idleConnectionTimeout = idleConnectionTimeout
        self.drainTimeout = drainTimeout
        self.drainIdleTimeout = drainIdleTimeout
    }
}

/// One FastCGI worker process: a dispatcher (the thread that calls `run`) and a fixed set of
/// worker threads, serving connections accepted from a listening socket that sibling processes
/// may share.
///
/// libfcgi never accepts and never waits for a request here. Every connection between requests
/// (new ones, and nginx's kept ones) sits in the dispatcher's epoll set; the worker threads wait
/// there, and a worker keeps a connection only once its whole request head has arrived. It serves
/// that one request and puts a kept connection back. So a silent or slow client, or any number of
/// idle kept connections, holds no worker (docs/fastcgi.md, 3 to 5).
public final class WorkerProcess: @unchecked Sendable {
    private let listenFD: Int32
    private let configuration: WorkerProcessConfiguration
    private let handler: RequestHandler
    private let dispatcher: ConnectionDispatcher
    private let hasRun = Locked(false)

    public init(listenFD: Int32, configuration: WorkerProcessConfiguration, handler: @escaping RequestHandler) {
        precondition(configuration.workers >= 1, "a worker process needs at least one worker thread")
        precondition(configuration.bodyLimit >= 0, "the body limit cannot be negative")
        self.listenFD = listenFD
        self.configuration = configuration
        self.handler = handler
        self.dispatcher = ConnectionDispatcher(listenFD: listenFD, configuration: configuration)
    }

    /// Serves until `stop()` is called (from another thread, e.g. a signal-waiting thread), then
    /// drains and returns. Calls `onReady` once the threads are up and the listening socket is
    /// being polled. Runs once per instance.
    public func run(onReady: () -> Void) throws(ThreadStartError) {
        let first = hasRun.withLock { ran in
            defer { ran = true }
            return !ran
        }
        precondition(first, "WorkerProcess.run may be called only once")

        FastCGILibrary.initializeOnce()
        if !SocketIO.setNonBlocking(listenFD) {
            Log.error("cannot make the listening socket non-blocking", ["fd": "\(listenFD)", "error": SystemError.text(errno)])
        }

        let workerCount = configuration.workers
        let started = CountdownLatch(count: workerCount)
        let ended = CountdownLatch(count: workerCount)
        let standIns = StandIns(limit: configuration.workers, firstIndex: workerCount, dispatcher: dispatcher,
                                configuration: configuration, handler: handler, slotsEnded: ended)
        for index in 0..<workerCount {
            let worker = RequestWorker(
                index: index, dispatcher: dispatcher, configuration: configuration, handler: handler, standIns: standIns
            )
            // A process that cannot have its workers throws out of `run` and exits; its
            // supervisor starts another after its back-off.
            try startThread(name: "fcgi-worker-\(index)") {
                if !worker.run(started: started) { ended.countDown() }
            }
        }
        started.wait()

        let exit = dispatcher.run(onReady: onReady)

        // Idle workers leave at once; after a forced stop, busy ones get until their connection's
        // next read or write fails, plus a margin, and then are left behind (the process exits).
        let grace: Duration = exit == .drained ? .seconds(5) : configuration.receiveTimeout + .seconds(2)
        if !ended.wait(until: .now() + grace) {
            let busy = dispatcher.busyCount
            Log.error("worker threads still busy after the stop; returning without them", ["busy": "\(busy)"])
        }
        Log.info("FastCGI worker process stopped", ["drained": exit == .drained ? "true" : "false"])
    }

    /// Stops polling the listening socket (it stays open and untouched for the supervisor and the
    /// siblings), lets requests in flight finish, keeps serving kept connections until nginx closes
    /// them or they have been idle `drainIdleTimeout`, and makes `run` return. Thread-safe, idempotent; not async-signal-safe.
    public func stop() {
        dispatcher.stop()
    }
}
