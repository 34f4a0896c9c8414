#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Platform

/// The child's side of the supervisor protocol (described in ProcessLauncher.swift), for the
/// FastCGI worker process: the listening socket is fd 0, readiness goes to LEADIMPORT_READY_FD.
public enum SupervisorChild {
    private static let reported = Locked(false)

    /// Tells the supervisor that this process accepts connections: writes one byte to the
    /// descriptor LEADIMPORT_READY_FD names, then closes it. Call it once the accept loop runs
    /// (the listening socket accepts into its backlog anyway, so "about to accept" is fine).
    /// Does nothing when the process was not started by a supervisor, and on later calls.
    /// Returns whether a supervisor was told.
    @discardableResult
    public static func reportReady() -> Bool {
        reported.withLock { done in
            if done { return false }
            done = true
            guard let fd = readyDescriptor(getenv(ProcessLauncher.readyVariable).map { String(cString: $0) }) else { return false }
            return report(to: fd)
        }
    }

    /// The supervisor's pid, when this process was started by one.
    public static var supervisorPID: Int32? {
        guard let value = getenv(ProcessLauncher.supervisorVariable), let pid = Int32(String(cString: value)), pid > 1 else { return nil }
        return pid
    }

    /// True when this process was started by a supervisor that is no longer its parent: the
    /// supervisor died (SIGKILL, crash) and this child should stop rather than serve on alone.
    public static var supervisorIsGone: Bool {
        guard let pid = supervisorPID else { return false }
        return getppid() != pid
    }

    static func readyDescriptor(_ value: String?) -> Int32? {
        guard let value, let fd = Int32(value), fd > 2 else { return nil }
        return fd
    }

    /// Writes the byte and closes `fd`, if it is a pipe or a socket (never a file or a terminal
    /// that a stray variable happens to name).
    static func report(to fd: Int32) -> Bool {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return false }
        let kind = info.st_mode & S_IFMT
        guard kind == S_IFSOCK || kind == S_IFIFO else { return false }
        var byte = UInt8(ascii: "R")
        var written = -1
        repeat {
            // On a socket (what the supervisor hands out), MSG_NOSIGNAL: a supervisor that is gone
            // must not take this process down with SIGPIPE.
            written = kind == S_IFSOCK ? send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) : write(fd, &byte, 1)
        } while written < 0 && errno == EINTR
        close(fd)
        return written == 1
    }
}
