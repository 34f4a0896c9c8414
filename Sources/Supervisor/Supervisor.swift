#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Metrics
import Platform

public struct SupervisorConfiguration: Sendable {
    /// How many child processes serve at once.
    public var processes: Int
    /// What to start. The default is the running binary itself. (It names the file this process
    /// was started from: a binary replaced on disk since is not picked up by a reload.)
    public var executable: String
    /// The child's argv, argv[0] included, e.g. `["leadimport", "serve-worker", "--workers", "4"]`.
    public var childArguments: [String]
    /// After SIGTERM, how long a child may take to finish before SIGKILL.
    public var stopTimeout: Duration
    /// How long a new child may take to report ready before it is killed.
    public var readyTimeout: Duration
    /// Shared with the children, one cell each: the supervisor assigns the cells, empties a dead
    /// child's gauges, and counts restarts. Nil: no metrics.
    public var metrics: MetricsRegion?

    /// The service's values are in its `ServiceConfiguration`.
    public init(
        childArguments: [String],
        processes: Int,
        executable: String = "/proc/self/exe",
        stopTimeout: Duration,
        readyTimeout: Duration,
        metrics: MetricsRegion? = nil
    ) {
        self.metrics = metrics
        self.processes = processes
        self.executable = executable
        self.childArguments = childArguments
        self.stopTimeout = stopTimeout
        self.readyTimeout = readyTimeout
    }
}

/// Holds the listening socket and keeps `processes` FastCGI child processes running on it, in the
/// way of php-fpm's master: a child that dies (libfcgi aborts on some malformed records; a Swift
/// trap cannot be caught) costs only the requests it was serving and is replaced at once.
///
/// - A child that exits unexpectedly is replaced at once; one that keeps dying soon after it
///   started is replaced after a delay that grows to at most one second.
/// - SIGTERM or SIGINT: every child gets SIGTERM and drains; SIGKILL after `stopTimeout`; then
///   `run` returns 0. A second SIGTERM or SIGINT kills the children at once.
/// - SIGHUP: the children are replaced one at a time: a new child starts, and only when it reports
///   ready does the old one get SIGTERM; when it has exited, the next. A new child that does not
///   report ready within `readyTimeout` is killed and the reload stops there, the old children
///   staying. A SIGHUP during a reload makes another follow it.
/// - The listening socket is never shut down (systemd may hold it across restarts, with requests
///   waiting in its backlog for the next process): the supervisor only closes its descriptor.
///
/// Every descriptor above 2 is made close-on-exec when `run` starts: a child gets the listening
/// socket, standard output and error, and the readiness pipe, nothing else.
///
/// Single-threaded: the signals are blocked and taken with `sigtimedwait`. Call `run` on the main
/// thread, before the process starts other threads if it can; signals that reach other threads
/// are handed on to it anyway. One supervisor per process. See `ProcessLauncher` for what a child
/// is given and what it must do.
public final class Supervisor {
    private let listenFD: Int32
    private let configuration: SupervisorConfiguration
    private var state: SupervisorState
    private var readiness: [Int32: Int32] = [:]
    private var finished = false
    private var launcher: ProcessLauncher?
    /// The metrics cell each live child counts in.
    private var cells: [Int32: Int] = [:]

    /// Takes over `listenFD`: `run` closes it at the end.
    public init(listenFD: Int32, configuration: SupervisorConfiguration) {
        self.listenFD = listenFD
        self.configuration = configuration
        self.state = SupervisorState(
            processes: max(1, configuration.processes),
            stopTimeout: configuration.stopTimeout,
            readyTimeout: configuration.readyTimeout
        )
    }

    /// Runs until a stop signal has been handled and every child is gone; returns the process's
    /// exit status.
    public func run() -> Int32 {
        guard launcher == nil else {
            Log.error("supervisor already ran")
            return 1
        }
        let signals: ProcessSignals.Capture
        do {
            signals = try ProcessSignals.Capture()
        } catch {
            Log.error("supervisor cannot start", ["error": "\(error)"])
            return 1
        }
        defer { signals.restore() }
        ProcessLauncher.closeDescriptorsOnExec()
        launcher = ProcessLauncher(executable: configuration.executable, arguments: configuration.childArguments, listenFD: listenFD)

        Log.info("supervisor started", [
            "pid": String(getpid()), "processes": String(state.processes),
            "executable": configuration.executable,
        ])
        perform(state.start(now: .now()))
        while !finished {
            reap()
            if finished { break }
            readReadiness()
            perform(state.tick(now: .now()))
            if finished { break }

            let signal = signals.wait(timeout: waitTimeout())
            switch signal {
            case SIGTERM, SIGINT:
                perform(state.stopRequested(signal: "SIG" + ProcessSignals.name(of: signal!), now: .now()))
            case SIGHUP:
                perform(state.reloadRequested(now: .now()))
            default:
                break // SIGCHLD or a timeout: the loop reaps and checks timers.
            }
        }
        for fd in readiness.values { close(fd) }
        readiness = [:]
        close(listenFD)
        return 0
    }

    /// Sleep until the next timer; while a child has yet to report ready, look at its pipe often.
    private func waitTimeout() -> Duration {
        var timeout: Duration = readiness.isEmpty ? .seconds(1) : .milliseconds(10)
        if let next = state.nextDeadline() {
            timeout = min(timeout, max(.zero, next - .now()))
        }
        return timeout
    }

    private func reap() {
        for pid in state.children.keys.sorted() {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                dropReadiness(pid)
                vacateCell(pid)
                perform(state.exited(pid: pid, status: ChildExitStatus(waitStatus: status), now: .now()))
            } else if result < 0 && errno == ECHILD {
                // Reaped by someone else (the host set SIGCHLD to SIG_IGN before us?): gone anyway.
                dropReadiness(pid)
                vacateCell(pid)
                perform(state.exited(pid: pid, status: ChildExitStatus(.exited(code: -1)), now: .now()))
            }
        }
    }

    private func readReadiness() {
        for (pid, fd) in readiness.sorted(by: { $0.key < $1.key }) {
            var byte: UInt8 = 0
            let count = read(fd, &byte, 1)
            if count == 1 {
                dropReadiness(pid)
                perform(state.ready(pid: pid, now: .now()))
            } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                dropReadiness(pid)
                perform(state.readinessClosed(pid: pid, now: .now()))
            }
        }
    }

    /// The child's gauges no longer hold; its cell is free for the next child.
    private func vacateCell(_ pid: Int32) {
        if let cell = cells.removeValue(forKey: pid) { configuration.metrics?.vacate(cell: cell) }
    }

    private func dropReadiness(_ pid: Int32) {
        if let fd = readiness.removeValue(forKey: pid) { close(fd) }
    }

    private func perform(_ initial: [SupervisorAction]) {
        var queue = initial
        var index = 0
        while index < queue.count {
            let action = queue[index]
            index += 1
            switch action {
            case .spawn(let slot, let role):
                do {
                    let metrics = configuration.metrics
                    let cell = metrics?.freeCell(held: cells.values)
                    let started = try launcher!.spawn(metrics: metrics.flatMap { region in cell.map { (region.descriptor, $0) } })
                    readiness[started.pid] = started.readyFD
                    if let metrics, let cell {
                        cells[started.pid] = cell
                        metrics.occupy(cell: cell, pid: started.pid)
                    }
                    queue += state.spawned(slot: slot, role: role, pid: started.pid, now: .now())
                } catch {
                    queue += state.spawnFailed(slot: slot, role: role, message: "\(error)", now: .now())
                }
            case .terminate(let pid):
                kill(pid, SIGTERM)
            case .kill(let pid):
                kill(pid, SIGKILL)
            case .log(let event):
                Self.log(event)
                if case .childStarted(_, _, let reason) = event {
                    switch reason {
                    case .replacement: configuration.metrics?.recordRestart(.afterExit)
                    case .reload: configuration.metrics?.recordRestart(.byReload)
                    case .initial: break
                    }
                }
            case .finished:
                finished = true
            }
        }
    }

    static func log(_ event: SupervisorEvent) {
        switch event {
        case .childStarted(let pid, let slot, let reason):
            Log.info("child started", ["pid": String(pid), "slot": String(slot), "reason": reason.rawValue])
        case .childReady(let pid, let slot, let after):
            Log.info("child ready", ["pid": String(pid), "slot": String(slot), "after_ms": String(after.milliseconds)])
        case .childExited(let pid, let slot, let status, let expected, let lifetime):
            let fields: KeyValuePairs<String, String> = [
                "pid": String(pid), "slot": String(slot), "status": status.description,
                "lifetime_ms": String(lifetime.milliseconds),
            ]
            if expected { Log.info("child exited", fields) } else { Log.error("child exited unexpectedly", fields) }
        case .replacementScheduled(let slot, let delay):
            Log.warning("child keeps exiting soon after start; replacement delayed", ["slot": String(slot), "delay_ms": String(delay.milliseconds)])
        case .spawnFailed(let slot, let message):
            Log.error("cannot start child", ["slot": String(slot), "error": message])
        case .childNotReady(let pid, let slot, let timeout):
            Log.error("child did not report ready in time; killing it", ["pid": String(pid), "slot": String(slot), "timeout": ProcessSignals.describe(timeout)])
        case .childClosedReadiness(let pid, let slot):
            Log.error("child closed its readiness pipe without reporting ready; killing it", ["pid": String(pid), "slot": String(slot)])
        case .childReplaced(let old, let new, let slot):
            Log.info("child replaced", ["slot": String(slot), "old_pid": String(old), "new_pid": String(new)])
        case .reloadStarted(let children):
            Log.info("reload started", ["children": String(children)])
        case .reloadQueued:
            Log.info("reload requested during a reload; another one follows it")
        case .reloadIgnored:
            Log.info("reload ignored while stopping")
        case .reloadComplete(let replaced):
            Log.info("reload complete", ["replaced": String(replaced)])
        case .reloadAbandoned(let slot, let reason):
            Log.error("reload abandoned; the old children keep serving", ["slot": String(slot), "reason": reason])
        case .stopping(let signal, let children):
            Log.info("stopping", ["signal": signal, "children": String(children)])
        case .killingStragglers(let pids, let reason):
            Log.warning("killing children", ["pids": pids.map(String.init).joined(separator: ","), "reason": reason])
        case .stopped:
            Log.info("stopped")
        }
    }
}
