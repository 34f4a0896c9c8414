#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Platform

// The protocol between the supervisor and a child process (the child's side is the FastCGI worker,
// `leadimport serve-worker` or whatever `SupervisorConfiguration.childArguments` names):
//
// - fd 0 is the shared listening socket. The child accepts on it and never calls shutdown() on it.
//   Its file status flags belong to one open file description shared by every sibling (and by
//   systemd's copy): a child that sets O_NONBLOCK sets it for all, so every child must poll and
//   then accept, taking EAGAIN when a sibling was faster.
// - fd 3 is the write end of the readiness pipe (a unix socket pair used as a pipe), and
//   LEADIMPORT_READY_FD=3 says so. When the child accepts connections, it writes one byte to it
//   and closes it: `SupervisorChild.reportReady()` does that. Until then, the supervisor keeps the
//   child it replaces (reload), and it kills a child that has not written the byte after
//   `readyTimeout`, or that closes fd 3 without writing it. A child started without the variable
//   (by hand, or by spawn-fcgi directly) has no one to tell.
// - fds 1 and 2 are the supervisor's: log lines go to standard error as usual.
// - LEADIMPORT_SUPERVISOR_PID is the supervisor's pid. A child should stop when its parent is no
//   longer that process (`SupervisorChild.supervisorIsGone`, checked now and then), so that it does
//   not serve on alone after the supervisor was killed with SIGKILL.
// - The child starts with an empty signal mask and every signal at its default disposition.
//   SIGTERM asks it to stop: stop accepting, finish the requests in flight, drain kept
//   connections, exit 0. SIGKILL follows after `stopTimeout`. The child shares the supervisor's
//   process group, so a Ctrl-C in a terminal sends it SIGINT directly, and the supervisor then
//   sends SIGTERM: both mean stop, and a second one must do no harm. SIGHUP is for the supervisor
//   only; a child may ignore it.
// - fd 4, when the supervisor keeps metrics, is the shared metrics region (a memfd):
//   LEADIMPORT_METRICS_FD=4 and LEADIMPORT_METRICS_CELL=N name it and the child's cell in it
//   (`MetricsRegion`). The cell is the child's alone while it lives.
// - Nothing else is inherited: every other descriptor the supervisor holds is close-on-exec.

/// Starts one child: `posix_spawn` (never `fork`: the Swift runtime may have started threads).
struct ProcessLauncher {
    static let readyFD: Int32 = 3
    static let metricsFD: Int32 = 4
    static let readyVariable = "LEADIMPORT_READY_FD"
    static let supervisorVariable = "LEADIMPORT_SUPERVISOR_PID"

    let executable: String
    let arguments: [String]
    let environment: [String]
    let listenFD: Int32

    init(executable: String, arguments: [String], listenFD: Int32, environment: [String] = ProcessLauncher.currentEnvironment()) {
        self.executable = executable
        self.arguments = arguments.isEmpty ? [executable] : arguments
        self.listenFD = listenFD
        let ours = [Self.readyVariable + "=", Self.supervisorVariable + "=", "LEADIMPORT_METRICS_FD=", "LEADIMPORT_METRICS_CELL="]
        self.environment = environment.filter { entry in !ours.contains { entry.hasPrefix($0) } }
            + ["\(Self.readyVariable)=\(Self.readyFD)", "\(Self.supervisorVariable)=\(getpid())"]
    }

    static func currentEnvironment() -> [String] {
        var result: [String] = []
        var entry = environ
        while let value = entry.pointee {
            result.append(String(cString: value))
            entry += 1
        }
        return result
    }

    /// Marks every descriptor above 2 close-on-exec, so that children inherit only 0 to 3 and not
    /// whatever the supervisor's own parent left open.
    static func closeDescriptorsOnExec() {
        guard let directory = opendir("/proc/self/fd") else { return }
        let own = dirfd(directory)
        var descriptors: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let fd = Int32(name), fd > 2, fd != own { descriptors.append(fd) }
        }
        closedir(directory)
        for fd in descriptors {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    struct Started {
        let pid: Int32
        /// The read end of the readiness pipe: non-blocking, close-on-exec.
        let readyFD: Int32
    }

    /// `metrics`: the shared region's descriptor and the cell the child counts in.
    func spawn(metrics: (descriptor: Int32, cell: Int)? = nil) throws -> Started {
        // A socket pair serves as the pipe: it is created close-on-exec in one step (pipe2 is not
        // imported), so no other thread's spawn can inherit the write end and hide the EOF.
        var ends: [Int32] = [-1, -1]
        if socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) != 0 {
            throw SupervisorError("cannot create the readiness pipe: \(SystemError.text(errno))")
        }
        let readEnd = ends[0]
        var writeEnd = ends[1]
        // The write end must not sit on 0..4, where the file actions put other things first.
        if writeEnd <= Self.metricsFD {
            let moved = fcntl(writeEnd, F_DUPFD_CLOEXEC, Self.metricsFD + 1)
            let code = errno
            close(writeEnd)
            if moved < 0 {
                close(readEnd)
                throw SupervisorError("cannot move the readiness pipe: \(SystemError.text(code))")
            }
            writeEnd = moved
        }
        defer { close(writeEnd) }
        _ = fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears close-on-exec on the copy (and glibc clears it too when listenFD is already 0).
        posix_spawn_file_actions_adddup2(&actions, listenFD, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, Self.readyFD)
        var environment = self.environment
        if let metrics {
            // The memfd sits above 4 (made by the supervisor after its own descriptors 0-2 and
            // the listening socket), so no earlier action has put something else there.
            posix_spawn_file_actions_adddup2(&actions, metrics.descriptor, Self.metricsFD)
            environment += ["LEADIMPORT_METRICS_FD=\(Self.metricsFD)", "LEADIMPORT_METRICS_CELL=\(metrics.cell)"]
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result: Int32
        if executable.contains("/") {
            result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        } else {
            result = posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
        }
        if result != 0 {
            close(readEnd)
            throw SupervisorError("cannot start \(executable): \(SystemError.text(result))")
        }
        return Started(pid: pid, readyFD: readEnd)
    }
}
