#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFastCGI
import Platform

// Every pointer into libfcgi (FCGX_Request, FCGX_Stream, the envp array) stays in this file.
//
// libfcgi is never allowed to accept a connection or to wait for one. The dispatcher accepts, waits
// until a whole request head has arrived, and hands the connection to a worker, which puts it into
// `FCGX_Request.ipcFd`: FCGX_Accept_r only accepts when ipcFd < 0, so it then reads the records
// already waiting on our descriptor (docs/fastcgi.md, 8).

enum FastCGILibrary {
    private static let initialized = Locked(false)

    /// FCGX_Init, once per process. It installs handlers for SIGPIPE, SIGUSR1 and SIGTERM wherever
    /// they are at their default (docs/fastcgi.md, 9); its SIGTERM handler only sets
    /// a flag that its own accept loop reads, which we never run, so a SIGTERM would be swallowed
    /// silently. The process's own dispositions are put back; SIGPIPE is ignored.
    static func initializeOnce() {
        initialized.withLock { done in
            if !done {
                var savedTerminate = sigaction()
                var savedUser1 = sigaction()
                sigaction(SIGTERM, nil, &savedTerminate)
                sigaction(SIGUSR1, nil, &savedUser1)
                let result = FCGX_Init()
                precondition(result == 0, "FCGX_Init failed: \(result)")
                sigaction(SIGTERM, &savedTerminate, nil)
                sigaction(SIGUSR1, &savedUser1, nil)
                done = true
            }
        }
        // A peer that went away must fail a write, not kill the process.
        signal(SIGPIPE, SIG_IGN)
    }
}

/// One worker's libfcgi request record, reused for every request the worker serves.
/// Not thread-safe: it belongs to one worker thread.
final class FastCGIExchange {
    private let request: UnsafeMutablePointer<FCGX_Request>
    private var isOpen = false

    init() {
        request = .allocate(capacity: 1)
        // listen_sock -1: should libfcgi loop back to accept after a protocol error on our
        // descriptor, accept(-1) fails at once instead of blocking.
        FCGX_InitRequest(request, -1, 0)
    }

    deinit {
        if isOpen { _ = finish() }
        request.deallocate()
    }

    enum Beginning {
        case began(parameters: RequestParameters, keepConnection: Bool)
        /// libfcgi refused the request (for instance an unknown role) and closed its copy of the
        /// descriptor; the connection is unusable.
        case refused(code: Int32)
    }

    /// Reads the request head (already waiting on `connection`, see RequestHead) through libfcgi.
    ///
    /// libfcgi gets a duplicate of the descriptor, never the caller's: on a protocol error
    /// FCGX_Accept_r closes the descriptor it was given, and the caller must keep owning its own
    /// number until it closes it itself (another thread may shut the connection down by that
    /// number during a forced stop, which must never hit a reused descriptor).
    func begin(connection: Int32) -> Beginning {
        precondition(!isOpen, "FastCGIExchange.begin while a request is open")
        let libraryFD = fcntl(connection, F_DUPFD_CLOEXEC, 0)
        guard libraryFD >= 0 else { return .refused(code: errno) }

        FCGX_InitRequest(request, -1, 0)
        request.pointee.ipcFd = libraryFD
        // FCGX_Accept_r first calls FCGX_Finish_r on the request, which closes ipcFd unless
        // keepConnection is set; the BEGIN_REQUEST record then sets it to what the web server asked.
        request.pointee.keepConnection = 1
        // When libfcgi does close it (protocol error), a plain close(): "attached" descriptors get
        // shutdown() and then a read until EOF with a 2-second poll per read (OS_Close), which a
        // trickling peer could stretch without bound.
        request.pointee.detached = 1

        let result = FCGX_Accept_r(request)
        guard result == 0 else {
            // After a failure libfcgi has freed its streams and closed its descriptor (ipcFd -1);
            // close it here only if some version did not.
            if request.pointee.ipcFd >= 0 {
                SocketIO.close(request.pointee.ipcFd)
                request.pointee.ipcFd = -1
            }
            return .refused(code: result)
        }
        isOpen = true

        var builder = RequestParameters.Builder()
        if var entry = request.pointee.envp {
            while let pair = entry.pointee {
                // libfcgi keeps each pair as one "NAME=value" C string.
                let length = strlen(pair)
                pair.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
                    if let equals = memchr(bytes, Int32(UInt8(ascii: "=")), length) {
                        let nameLength = bytes.distance(to: equals.assumingMemoryBound(to: UInt8.self))
                        builder.add(name: UnsafeBufferPointer(start: bytes, count: nameLength),
                                    value: UnsafeBufferPointer(start: bytes + nameLength + 1, count: length - nameLength - 1))
                    }
                }
                entry += 1
            }
        }
        let parameters = builder.finish()
        return .began(parameters: parameters, keepConnection: request.pointee.keepConnection != 0)
    }

    enum StdinRead {
        /// `endOfStream`: the empty STDIN record was read, nothing of the body is left unread.
        case bytes([UInt8], endOfStream: Bool)
        /// A read failed or timed out (SO_RCVTIMEO): the connection is unusable.
        case failed(code: Int32)
    }

    /// Reads up to `limit` bytes of FCGI_STDIN.
    func readStdin(upTo limit: Int) -> StdinRead {
        guard isOpen, let input = request.pointee.in, limit > 0 else { return .bytes([], endOfStream: false) }
        // Grown as bytes arrive rather than allocated at the limit: most requests have little or no body.
        var body: [UInt8] = []
        var chunk = [CChar](repeating: 0, count: 16 * 1024)
        while body.count < limit {
            let wanted = Int32(clamping: min(chunk.count, limit - body.count))
            let got = FCGX_GetStr(&chunk, wanted, input)
            if got > 0 {
                chunk.withUnsafeBytes { raw in body.append(contentsOf: raw.prefix(Int(got))) }
            }
            // FCGX_GetStr returns short only at the end of the stream or on an error.
            if got < wanted { break }
        }
        let error = FCGX_GetError(input)
        if error != 0 { return .failed(code: error) }
        return .bytes(body, endOfStream: FCGX_HasSeenEOF(input) != 0)
    }

    /// Buffers `bytes` as FCGI_STDOUT; false when a write to the peer failed or timed out.
    func writeStdout(_ bytes: [UInt8]) -> Bool {
        guard isOpen, let output = request.pointee.out else { return false }
        if bytes.isEmpty { return true }
        let written = bytes.withUnsafeBytes { raw in
            FCGX_PutStr(raw.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(clamping: raw.count), output)
        }
        return Int(written) == bytes.count && FCGX_GetError(output) == 0
    }

    /// Ends the request: flushes stdout, writes the closing records and FCGI_END_REQUEST, frees
    /// libfcgi's buffers and closes libfcgi's duplicate. The caller's descriptor stays open.
    /// Returns true when everything was written and the input never failed, so the connection
    /// is in a state where another request can follow.
    ///
    /// This is FCGX_Finish_r's work with the closing decision left to the caller: FCGX_Finish_r
    /// would close the descriptor itself (lingering, see `begin`) whenever keepConnection is off.
    func finish() -> Bool {
        guard isOpen else { return false }
        isOpen = false
        var clean = true
        // stderr first, so that closing stdout (the last writer) writes FCGI_END_REQUEST.
        if FCGX_FClose(request.pointee.err) != 0 { clean = false }
        if FCGX_FClose(request.pointee.out) != 0 { clean = false }
        if let input = request.pointee.in, FCGX_GetError(input) != 0 { clean = false }
        FCGX_Free(request, 0)
        if request.pointee.ipcFd >= 0 {
            SocketIO.close(request.pointee.ipcFd)
            request.pointee.ipcFd = -1
        }
        return clean
    }
}
