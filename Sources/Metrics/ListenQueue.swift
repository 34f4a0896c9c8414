#if canImport(Glibc)
import Glibc
#endif
import CSharedMemory

/// How many connections wait in a listening socket's accept queue, and its backlog: php-fpm's
/// "listen queue" and "listen queue len". Read from the kernel at scrape time.
public enum ListenQueue {
    public static func read(_ fd: Int32) -> (queued: Int, limit: Int)? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        var queued: UInt32 = 0, limit: UInt32 = 0
        let result: Int32
        switch Int32(address.ss_family) {
        case AF_UNIX: result = leadimport_unix_listen_queue(fd, &queued, &limit)
        case AF_INET, AF_INET6: result = leadimport_tcp_listen_queue(fd, &queued, &limit)
        default: return nil
        }
        return result == 0 ? (Int(queued), Int(limit)) : nil
    }
}
