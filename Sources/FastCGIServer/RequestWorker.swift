#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFastCGI
import HTTP
import Platform

/// One worker thread: waits (in the dispatcher's epoll set) until it holds a connection whose
/// request head has arrived, serves that one request, and puts the connection back if nginx keeps
/// it, or closes it.
final class RequestWorker: @unchecked Sendable {
    /// Most of an unread body that is dropped, unparsed, before its connection is closed.
    static let discardLimitBytes = 1 << 20

    private let index: Int
    private let dispatcher: ConnectionDispatcher
    private let configuration: WorkerProcessConfiguration
    private let handler: RequestHandler
    private let standIns: StandIns
    /// Set on this thread while it serves a request that went long and another thread took its
    /// place: the thread leaves once that request is answered.
    private var replaced = false

    init(index: Int, dispatcher: ConnectionDispatcher, configuration: WorkerProcessConfiguration, handler: @escaping RequestHandler,
         standIns: StandIns) {
        self.index = index
        self.dispatcher = dispatcher
        self.configuration = configuration
        self.handler = handler
        self.standIns = standIns
    }

    /// Serves requests until the process is done (false), or until a request that went long
    /// is answered and a stand-in has taken this thread's place (true).
    func run(started: CountdownLatch?) -> Bool {
        Self.blockAsynchronousSignals()
        // A stand-in is started while a request is served: it works for no request of its own.
        LogContext.adopt(nil)
        // Created on this thread, used only here.
        let exchange = FastCGIExchange()
        var peekBuffer = [UInt8](repeating: 0, count: ConnectionDispatcher.firstPeekBytes)
        started?.countDown()

        while let (fd, since) = dispatcher.nextRequest(worker: index, peekBuffer: &peekBuffer) {
            let reusable = serve(fd, readySince: since, with: exchange)
            dispatcher.release(fd, worker: index, reusable: reusable)
            if replaced {
                standIns.left()
                return true
            }
        }
        return false
    }

    /// The request this thread serves goes long: a stand-in serves the others meanwhile.
    private func becomeLong() {
        if !replaced { replaced = standIns.place() }
    }

    /// A signal handled on this thread would interrupt libfcgi's reads and writes with EINTR,
    /// which it treats as a failed connection. Process signals belong to the signal-waiting thread.
    static func blockAsynchronousSignals() {
        var set = sigset_t()
        sigfillset(&set)
        for synchronous in [SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS] {
            sigdelset(&set, synchronous)
        }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Serves the one request whose head is waiting on `fd`. Returns whether the connection can
    /// carry another request: the web server asked to keep it, and it is in a clean state.
    private func serve(_ fd: Int32, readySince: MonotonicInstant, with exchange: FastCGIExchange) -> Bool {
        // SO_RCVTIMEO and SO_SNDTIMEO were set when the connection was accepted.
        let fields: RequestParameters
        let keepConnection: Bool
        switch exchange.begin(connection: fd) {
        case .refused:
            // FCGX_Accept_r's code only says that accept(-1) failed after libfcgi dropped the
            // connection (an unknown role, a record out of order).
            Log.warning("FastCGI connection closed: libfcgi refused the request")
            return false
        case .began(let began, let keep):
            fields = began
            keepConnection = keep
        }
        let requestID = fields.requestID ?? "-"

        let limit = configuration.bodyLimit
        var body: [UInt8] = []
        var exceedsLimit = false
        var stdinEnded = false
        if let length = fields.contentLength, length > limit {
            exceedsLimit = true
        } else {
            switch exchange.readStdin(upTo: limit + 1) {
            case .failed(let code):
                Log.warning("FastCGI request abandoned: reading its body failed", [
                    "request_id": requestID, "error": Self.describe(code),
                ])
                _ = exchange.finish()
                return false
            case .bytes(let bytes, let endOfStream):
                stdinEnded = endOfStream
                if bytes.count > limit { exceedsLimit = true } else { body = bytes }
            }
        }

        var request = fields.request(body: body, bodyExceedsLimit: exceedsLimit, received: readySince)
        request.becomesLong = { self.becomeLong() }
        let response: HTTPResponse
        do {
            response = try handler(request)
        } catch {
            // Never the headers: Authorization carries tokens.
            Log.error("request handler failed", [
                "request_id": requestID, "method": fields.method, "path": fields.path,
                "error": String(describing: error),
            ])
            response = .internalError
        }

        // A body libfcgi did not read to its end leaves records on the connection that were never
        // checked (RequestHead): libfcgi must not parse them, so the connection is not kept.
        let reusable = keepConnection && stdinEnded

        let (stdout, dropped) = response.fastCGIStdout()
        if !dropped.isEmpty {
            Log.error("response headers dropped: not valid HTTP", [
                "request_id": requestID, "headers": dropped.joined(separator: ","),
            ])
        }
        let written = exchange.writeStdout(stdout)
        let finished = exchange.finish()
        if !written || !finished {
            Log.warning("FastCGI response not delivered: the connection failed", [
                "request_id": requestID, "status": "\(response.status)",
            ])
        }
        if !stdinEnded {
            // Closing with unread input would reset the connection, and the peer could lose the
            // answer: what has already arrived is read and dropped, without waiting for more.
            SocketIO.discardPending(fd, upTo: Self.discardLimitBytes)
        }
        return reusable && written && finished
    }

    /// A stream error: libfcgi's own codes are small negative numbers, system errors are errno.
    static func describe(_ code: Int32) -> String {
        switch code {
        case FCGX_UNSUPPORTED_VERSION: return "unsupported FastCGI version"
        case FCGX_PROTOCOL_ERROR: return "FastCGI protocol error or end of stream"
        case FCGX_PARAMS_ERROR: return "malformed FastCGI parameters"
        case FCGX_CALL_SEQ_ERROR: return "FastCGI call sequence error"
        case EAGAIN: return "timed out"
        case let errno where errno > 0: return SystemError.text(errno)
        default: return "error \(code)"
        }
    }
}

/// Worker threads standing in for workers whose request went long (a synchronous import of many
/// pages): the process keeps its configured number of threads free for short requests, whatever
/// one user's imports hold. At most `limit` at once; past that a long request holds its worker.
final class StandIns: @unchecked Sendable {
    private let limit: Int
    private let dispatcher: ConnectionDispatcher
    private let configuration: WorkerProcessConfiguration
    private let handler: RequestHandler
    /// Counted down when a worker slot's thread ends; a stand-in takes over its slot.
    private let slotsEnded: CountdownLatch
    private let counts: Locked<(extra: Int, nextIndex: Int)>

    init(limit: Int, firstIndex: Int, dispatcher: ConnectionDispatcher, configuration: WorkerProcessConfiguration,
         handler: @escaping RequestHandler, slotsEnded: CountdownLatch) {
        self.limit = limit
        self.dispatcher = dispatcher
        self.configuration = configuration
        self.handler = handler
        self.slotsEnded = slotsEnded
        counts = Locked((0, firstIndex))
    }

    /// Worker threads beyond the configured ones, now.
    var extra: Int { counts.current.extra }

    /// Starts a stand-in; false when `limit` are running or no thread could be had.
    func place() -> Bool {
        let index = counts.withLock { counts -> Int? in
            guard counts.extra < limit else { return nil }
            counts.extra += 1
            counts.nextIndex += 1
            return counts.nextIndex - 1
        }
        guard let index else { return false }
        let worker = RequestWorker(index: index, dispatcher: dispatcher, configuration: configuration, handler: handler, standIns: self)
        do {
            try startThread(name: "fcgi-worker-\(index)") { [slotsEnded] in
                if !worker.run(started: nil) { slotsEnded.countDown() }
            }
        } catch {
            counts.withLock { $0.extra -= 1 }
            Log.warning("no thread for a stand-in worker; a long request holds its worker", ["error": "\(error)"])
            return false
        }
        return true
    }

    /// A replaced thread has answered its long request and leaves.
    func left() {
        counts.withLock { $0.extra -= 1 }
    }
}
