import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension TestEnvironment {
    /// Stops or starts the test PostgreSQL through scripts/stack (pg_ctl as the postgres user).
    public func postgres(_ action: String) throws {
        try stack(["pg-\(action)", scratch])
    }

    /// A second nginx in `folder` on 127.0.0.1:`port`, in front of the same service socket (or of
    /// `socket`), running `serverBlock` (a variant of the shipped configuration) instead of the
    /// shipped one.
    public func startNginx(folder: String, port: Int, serverBlock: String, socket: String? = nil) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try stack(["nginx-start", folder, String(port), socket ?? fastCGISocket, serverBlock])
    }

    public func stopNginx(folder: String) throws {
        try stack(["nginx-stop", folder])
    }

    /// Runs scripts/stack with `arguments`. posix_spawn and waitpid, not Foundation's Process:
    /// Process can miss the exit of a child whose own child (the postmaster) lives on, and hang.
    public func stack(_ arguments: [String]) throws {
        let argv: [UnsafeMutablePointer<CChar>?] = (["/bin/bash", stackScript] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/bash", nil, nil, argv, environ)
        guard spawned == 0 else { throw TestEnvironmentError(message: "could not run scripts/stack \(arguments): \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            throw TestEnvironmentError(message: "scripts/stack \(arguments.joined(separator: " ")) failed (wait status \(status))")
        }
    }

    /// Runs the built binary with arguments; returns status, stdout and stderr.
    public func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let (process, out, err) = commandProcess(binary, arguments, environment: extra)
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}

/// A process of `executable` with `arguments`, this process's environment plus `extra`, its
/// standard output and error each to a pipe of their own; not started.
public func commandProcess(_ executable: String, _ arguments: [String], environment extra: [String: String]) -> (Process, out: Pipe, err: Pipe) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in extra { environment[key] = value }
    process.environment = environment
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    return (process, out, err)
}
