#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Platform

/// The socket calls the dispatcher and the workers make, on plain descriptors.
enum SocketIO {
    enum AcceptOutcome {
        case connection(Int32)
        /// Nothing waiting, or a sibling process took it first.
        case nothingPending
        case failed(Int32)
    }

    /// The listening socket is non-blocking, so several processes can poll it and the losers of
    /// a race get EAGAIN instead of sleeping in accept.
    static func accept(from listenFD: Int32) -> AcceptOutcome {
        while true {
            // Accepted sockets do not inherit O_NONBLOCK: libfcgi reads them blocking, bounded by
            // SO_RCVTIMEO. (accept4 is hidden behind _GNU_SOURCE in Swift's Glibc; a worker process
            // spawns nothing, so the moment before FD_CLOEXEC is set leaks into no child.)
            let fd = Glibc.accept(listenFD, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                // libfcgi's own accept does this for TCP; on a unix socket it fails, harmlessly.
                var one: Int32 = 1
                _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return .connection(fd)
            }
            let code = errno
            switch code {
            case EINTR, ECONNABORTED, EPROTO:
                continue
            case EAGAIN, EWOULDBLOCK:
                return .nothingPending
            default:
                return .failed(code)
            }
        }
    }

    enum PeekOutcome {
        case bytes(Int)
        case endOfStream
        case nothingYet
        case failed(Int32)
    }

    /// Looks at what the peer has sent without taking it off the socket; never blocks.
    static func peek(_ fd: Int32, into buffer: inout [UInt8], count: Int) -> PeekOutcome {
        let wanted = min(count, buffer.count)
        while true {
            let received = buffer.withUnsafeMutableBytes { raw in
                recv(fd, raw.baseAddress, wanted, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
            }
            if received > 0 { return .bytes(received) }
            if received == 0 { return .endOfStream }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .nothingYet
            default: return .failed(code)
            }
        }
    }

    static func setNonBlocking(_ fd: Int32) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0 else { return false }
        return flags & O_NONBLOCK != 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0
    }

    /// Bounds every blocking read and write libfcgi makes on the connection. A receive timeout set
    /// on the listening socket is not inherited (pitfall 2), so it is set on each connection.
    static func setTimeouts(_ fd: Int32, receive: Duration, send: Duration) {
        for (option, duration) in [(SO_RCVTIMEO, receive), (SO_SNDTIMEO, send)] {
            // Zero would mean "no timeout".
            let micros = max(duration.nanoseconds / 1_000, 1_000)
            var value = timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
            _ = setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    /// Wakes a worker blocked on this connection, without freeing the descriptor number (the worker
    /// still owns it). Only ever for accepted connections, never the shared listening socket.
    /// Reads and drops what has already arrived on `fd`, at most `limit` bytes, without waiting.
    static func discardPending(_ fd: Int32, upTo limit: Int) {
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)
        var discarded = 0
        while discarded < limit {
            let received = scratch.withUnsafeMutableBytes { raw in
                recv(fd, raw.baseAddress, min(raw.count, limit - discarded), Int32(MSG_DONTWAIT))
            }
            if received > 0 {
                discarded += received
            } else if received < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }

    static func shutdownConnection(_ fd: Int32) {
        _ = shutdown(fd, Int32(SHUT_RDWR))
    }

    static func close(_ fd: Int32) {
        // Linux releases the descriptor even when close reports EINTR: never retry.
        _ = Glibc.close(fd)
    }

}

/// A self-pipe: written once, it wakes every worker waiting in the dispatcher's epoll set.
final class WakePipe: @unchecked Sendable {
    let readFD: Int32
    private let writeFD: Int32

    init() {
        var ends: [Int32] = [-1, -1]
        let result = pipe(&ends)
        precondition(result == 0, "cannot create the dispatcher's wake pipe: \(SystemError.text(errno))")
        readFD = ends[0]
        writeFD = ends[1]
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = SocketIO.setNonBlocking(end)
        }
    }

    deinit {
        SocketIO.close(readFD)
        SocketIO.close(writeFD)
    }

    /// A full pipe already guarantees a wake-up, so EAGAIN is fine.
    func wake() {
        var byte: UInt8 = 1
        _ = write(writeFD, &byte, 1)
    }
}
