#if canImport(Glibc)
import Glibc
#endif
import Platform

func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

func setEnvironment(_ name: String, _ value: String) {
    setenv(name, value, 1)
}

func onlineCores() -> Int {
    max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}

func printError(_ line: String) {
    writeError(line + "\n")
}

/// To stderr as it is, in one write.
func writeError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

/// SIGTERM and SIGINT, taken by one thread with sigwait: every other thread starts with them
/// blocked, so no handler ever runs in the middle of libpq or libfcgi.
final class StopSignal: @unchecked Sendable {
    private let actions = Locked<[@Sendable () -> Void]>([])
    private let stopped = Locked(false)

    static func install() throws(ThreadStartError) -> StopSignal {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let signal = StopSignal()
        let waited = set
        try startThread(name: "signals") {
            while true {
                var received: Int32 = 0
                var waitSet = waited
                guard sigwait(&waitSet, &received) == 0 else { continue }
                // A worker process ignores SIGHUP: reloading is the supervisor's business.
                if received == SIGHUP { continue }
                signal.fire()
            }
        }
        return signal
    }

    func onStop(_ action: @escaping @Sendable () -> Void) {
        let already = stopped.current
        actions.withLock { $0.append(action) }
        if already { action() }
    }

    private func fire() {
        stopped.withLock { $0 = true }
        for action in actions.current { action() }
    }
}
