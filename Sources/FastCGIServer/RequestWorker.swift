#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFastCGI
import Platform

/// One worker thread: takes a connection whose request head has arrived, serves that one request,
/// and gives the connection back to the dispatcher if nginx keeps it, or closes it.
final class RequestWorker: @unchecked Sendable {
    /// Most of a body beyond the limit that is read and dropped so that the connection can be kept
    /// (or closed without resetting it); a longer rest means closing instead.
    static let discardLimitBytes = 1 << 20

    private let index: Int
    private let coordination: WorkerCoordination
    private let configuration: WorkerProcessConfiguration
    private let handler: RequestHandler

    init(index: Int, coordination: WorkerCoordination, configuration: WorkerProcessConfiguration, handler: @escaping RequestHandler) {
        self.index = index
        self.coordination = coordination
        self.configuration = configuration
        self.handler = handler
    }

    func run(started: CountdownLatch) {
        Self.blockAsynchronousSignals()
        // Created on this thread, used only here.
        let exchange = FastCGIExchange()
        coordination.lock.withLock { coordination.availableWorkers += 1 }
        started.countDown()

        while let (fd, since) = nextConnection() {
            let reusable = serve(fd, readySince: since, with: exchange)
            release(fd, reusable: reusable)
        }
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

    private func nextConnection() -> (fd: Int32, since: MonotonicInstant)? {
        coordination.lock.withLock {
            while coordination.ready.isEmpty && !coordination.finished {
                coordination.lock.wait()
            }
            guard !coordination.ready.isEmpty else { return nil }
            let next = coordination.ready.removeFirst()
            coordination.availableWorkers -= 1
            coordination.busy[index] = next.fd
            return next
        }
    }

    /// Back to the dispatcher, or closed. Becoming available and handing back happen in one step
    /// under the lock, so the dispatcher can never see this worker as busy after it woke up.
    private func release(_ fd: Int32, reusable: Bool) {
        let (handedBack, wakeDispatcher) = coordination.lock.withLock {
            coordination.busy[index] = nil
            let wasFull = coordination.freeWorkers <= 0
            coordination.availableWorkers += 1
            let handBack = reusable && !coordination.finished
            if handBack { coordination.returning.append(fd) }
            // The dispatcher stops polling the listening socket while no worker is free, and
            // checks for the end of a drain only when woken.
            return (handBack, handBack || wasFull || coordination.stopping)
        }
        if !handedBack { SocketIO.close(fd) }
        if wakeDispatcher { coordination.wake.wake() }
    }

    /// Serves the one request whose head is waiting on `fd`. Returns whether the connection can
    /// carry another request: the web server asked to keep it, and it is in a clean state.
    private func serve(_ fd: Int32, readySince: MonotonicInstant, with exchange: FastCGIExchange) -> Bool {
        SocketIO.setTimeouts(fd, receive: configuration.receiveTimeout, send: configuration.receiveTimeout)

        let parameters: [(name: String, value: String)]
        let keepConnection: Bool
        switch exchange.begin(connection: fd) {
        case .refused:
            // FCGX_Accept_r's code only says that accept(-1) failed after libfcgi dropped the
            // connection (an unknown role, a record out of order).
            Log.warning("FastCGI connection closed: libfcgi refused the request")
            return false
        case .began(let began, let keep):
            parameters = began
            keepConnection = keep
        }
        let fields = RequestParameters(parameters)
        let requestID = fields.requestID ?? "-"

        let limit = configuration.bodyLimit
        var body: [UInt8] = []
        var bytesRead = 0
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
                bytesRead = bytes.count
                if bytes.count > limit { exceedsLimit = true } else { body = bytes }
            }
        }

        let request = fields.request(body: body, bodyExceedsLimit: exceedsLimit, received: readySince)
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

        var reusable = keepConnection
        if !stdinEnded {
            // Before the response, so that a peer that sends its whole body before it reads cannot
            // deadlock against us.
            let unread = fields.contentLength.map { $0 - bytesRead }
            if let unread, unread > Self.discardLimitBytes {
                reusable = false
            } else if case .reachedEnd = exchange.discardStdin(upTo: Self.discardLimitBytes) {
                // Clean: the next record on the connection is the next request's.
            } else {
                reusable = false
            }
        }

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
        case let errno where errno > 0: return SocketIO.errorText(errno)
        default: return "error \(code)"
        }
    }
}
