#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Platform

/// The thread that takes the supervisor's signals; read by `forwardSignalToSupervisor`.
/// Written once before the handlers are installed, so a handler only ever reads it.
nonisolated(unsafe) private var supervisorSignalThread = pthread_t()

/// Installed for the supervisor's signals. The supervisor's thread blocks them and takes them with
/// `sigtimedwait`, so this only runs on some other thread of the process (a host that started
/// threads before `Supervisor.run`, such as a test runner): it hands the signal on to the
/// supervisor's thread, where it stays pending until `sigtimedwait` takes it. `pthread_kill` is
/// async-signal-safe and leaves `errno` alone.
private func forwardSignalToSupervisor(_ signal: Int32) {
    _ = pthread_kill(supervisorSignalThread, signal)
}

/// Synchronous signal handling for the single-threaded supervisor: no code runs inside a signal
/// handler except the forwarding above.
enum ProcessSignals {
    /// The signals the supervisor acts on.
    static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGCHLD]

    static func name(of signal: Int32) -> String {
        switch signal {
        case SIGHUP: return "HUP"
        case SIGINT: return "INT"
        case SIGQUIT: return "QUIT"
        case SIGILL: return "ILL"
        case SIGTRAP: return "TRAP"
        case SIGABRT: return "ABRT"
        case SIGBUS: return "BUS"
        case SIGFPE: return "FPE"
        case SIGKILL: return "KILL"
        case SIGUSR1: return "USR1"
        case SIGSEGV: return "SEGV"
        case SIGUSR2: return "USR2"
        case SIGPIPE: return "PIPE"
        case SIGALRM: return "ALRM"
        case SIGTERM: return "TERM"
        case SIGCHLD: return "CHLD"
        case SIGXCPU: return "XCPU"
        case SIGXFSZ: return "XFSZ"
        case SIGSYS: return "SYS"
        default: return String(signal)
        }
    }

    /// "45s", "250ms": for log lines.
    static func describe(_ duration: Duration) -> String {
        let ms = duration.milliseconds
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }

    static func timeSpec(_ duration: Duration) -> timespec {
        let ns = max(0, duration.nanoseconds)
        return Glibc.timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    }

    /// While it lives, the handled signals are blocked in the calling thread and delivered only
    /// through `wait(timeout:)`, and SIGPIPE is ignored. `restore()` puts back the mask and the
    /// dispositions found.
    final class Capture {
        private var set = sigset_t()
        private var previousMask = sigset_t()
        private var previousActions: [Int32: sigaction] = [:]
        private var restored = false

        init() throws {
            sigemptyset(&set)
            for signal in ProcessSignals.handled { sigaddset(&set, signal) }
            let blocked = pthread_sigmask(SIG_BLOCK, &set, &previousMask)
            if blocked != 0 {
                throw SupervisorError("cannot block signals: \(SystemError.text(blocked))")
            }
            supervisorSignalThread = pthread_self()
            var action = sigaction()
            action.__sigaction_handler.sa_handler = forwardSignalToSupervisor
            sigemptyset(&action.sa_mask)
            // SA_NOCLDSTOP: a stopped or continued child is no news.
            action.sa_flags = SA_RESTART | SA_NOCLDSTOP
            for signal in ProcessSignals.handled {
                var previous = sigaction()
                if sigaction(signal, &action, &previous) != 0 {
                    let code = errno
                    restore()
                    throw SupervisorError("cannot install the handler of SIG\(ProcessSignals.name(of: signal)): \(SystemError.text(code))")
                }
                previousActions[signal] = previous
            }
            // A log line written to a standard error whose reader went away must not kill the
            // supervisor. (Children start with SIGPIPE at its default, like every signal.)
            var ignore = sigaction()
            ignore.__sigaction_handler.sa_handler = SIG_IGN
            sigemptyset(&ignore.sa_mask)
            var previous = sigaction()
            if sigaction(SIGPIPE, &ignore, &previous) == 0 { previousActions[SIGPIPE] = previous }
        }

        /// The next handled signal, or nil when `timeout` passed first.
        func wait(timeout: Duration) -> Int32? {
            var spec = ProcessSignals.timeSpec(timeout)
            var info = siginfo_t()
            let signal = sigtimedwait(&set, &info, &spec)
            return signal > 0 ? signal : nil
        }

        /// Discards what is pending, then puts back the dispositions and the mask.
        func restore() {
            guard !restored else { return }
            restored = true
            while wait(timeout: .zero) != nil {}
            for (signal, var previous) in previousActions { sigaction(signal, &previous, nil) }
            previousActions = [:]
            pthread_sigmask(SIG_SETMASK, &previousMask, nil)
        }

        deinit { restore() }
    }
}

/// A failure of the supervisor's own machinery (signals, pipes, spawning), one line.
public struct SupervisorError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
