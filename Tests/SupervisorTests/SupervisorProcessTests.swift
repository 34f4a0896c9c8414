#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Platform
import TestSupport
import XCTest
@testable import Supervisor

// The supervisor with real processes. `Supervisor.run` owns the signals of its process and blocks,
// so it runs in a process of its own: this test bundle started again with one test selected,
// `SupervisorHostProcess/testHost`, which becomes the supervisor when the environment says so.
// Its children are small python3 programs (`childScript`) that accept on fd 0 and answer
// "PID LINE" to each line, standing in for the FastCGI worker process.

/// In a normal run this does nothing. Started by `SupervisorHarness`, it is the supervisor.
final class SupervisorHostProcess: XCTestCase {
    func testHost() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["LEADIMPORT_TEST_SUPERVISOR_HOST"] == "1" else { return }
        let listenFD: Int32
        do {
            listenFD = try ListenSocket.inheritedStandardInput()
        } catch {
            let line = "\(error)\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
            exit(2)
        }
        func milliseconds(_ key: String, _ fallback: Int) -> Duration {
            .milliseconds(Int(environment[key] ?? "") ?? fallback)
        }
        let configuration = SupervisorConfiguration(
            childArguments: (environment["LEADIMPORT_TEST_CHILD_ARGS"] ?? "").split(separator: "\u{1F}").map(String.init),
            processes: Int(environment["LEADIMPORT_TEST_PROCESSES"] ?? "") ?? 2,
            executable: environment["LEADIMPORT_TEST_EXECUTABLE"] ?? "python3",
            stopTimeout: milliseconds("LEADIMPORT_TEST_STOP_MS", 5000),
            readyTimeout: milliseconds("LEADIMPORT_TEST_READY_MS", 5000)
        )
        let status = Supervisor(listenFD: listenFD, configuration: configuration).run()
        exit(status)
    }
}

/// The stand-in child. Its notes (`start`, `ready`, `term`, ...) go to CHILD_LOG, one line each,
/// so that a test can tell the order of events across processes. The mode file, read at start,
/// changes what new children do: `exit` (exit 7 at once), `hang` (never ready, never accepts),
/// `slow` (ready after 0.5 s), `ignore-term`.
private let childScript = #"""
import os, select, signal, socket, sys, time

def note(*words):
    with open(os.environ['CHILD_LOG'], 'a') as f:
        f.write(' '.join([words[0], str(os.getpid())] + [str(w) for w in words[1:]]) + '\n')

status = dict(line.split(':', 1) for line in open('/proc/self/status') if ':' in line)
fds = []
for name in os.listdir('/proc/self/fd'):
    try:
        os.fstat(int(name))
        fds.append(int(name))
    except OSError:
        pass
mode_file = os.environ.get('CHILD_MODE_FILE', '')
mode = open(mode_file).read().strip() if mode_file and os.path.exists(mode_file) else ''
note('start', 'mode=' + (mode or 'normal'), 'sigblk=' + status['SigBlk'].strip(),
     'sigign=' + status['SigIgn'].strip(), 'fds=' + ','.join(str(fd) for fd in sorted(fds)),
     'readyfd=' + os.environ.get('LEADIMPORT_READY_FD', ''),
     'supervisor=' + os.environ.get('LEADIMPORT_SUPERVISOR_PID', ''))
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
if mode == 'exit':
    sys.exit(7)
parent = os.getppid()
listener = socket.socket(fileno=0)
listener.setblocking(False)
if mode == 'hang':
    while os.getppid() == parent:
        time.sleep(0.05)
    sys.exit(1)
time.sleep(0.5 if mode == 'slow' else 0)
note('ready')
os.write(3, b'R')
os.close(3)
while True:
    if signal.sigtimedwait({signal.SIGTERM}, 0) is not None and mode != 'ignore-term':
        note('term')
        break
    if os.getppid() != parent:
        note('orphaned')
        sys.exit(1)
    readable, _, _ = select.select([listener], [], [], 0.05)
    if not readable:
        continue
    try:
        connection, _ = listener.accept()
    except (BlockingIOError, InterruptedError):
        continue
    with connection:
        note('accepted')
        connection.setblocking(True)
        data = b''
        while not data.endswith(b'\n'):
            chunk = connection.recv(1024)
            if not chunk:
                break
            data += chunk
        time.sleep(float(os.environ.get('CHILD_SERVE_DELAY', '0')))
        connection.sendall(('%d %s\n' % (os.getpid(), data.decode().strip())).encode())
sys.exit(0)
"""#

/// One supervisor process on a unix socket of its own. (Only `request` is used from other threads.)
final class SupervisorHarness: @unchecked Sendable {
    let directory: String
    let socketPath: String
    let logPath: String
    let childLogPath: String
    let modePath: String
    let listenFD: Int32
    let process = Process()

    init(processes: Int, stopTimeout: Duration = .seconds(5), readyTimeout: Duration = .seconds(5),
         serveDelay: Double = 0, mode: String = "", standardInputIsSocket: Bool = true) throws {
        directory = NSTemporaryDirectory() + "supervisor-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        socketPath = directory + "/s.sock"
        logPath = directory + "/supervisor.log"
        childLogPath = directory + "/children.log"
        modePath = directory + "/mode"
        let scriptPath = directory + "/child.py"
        try childScript.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        try mode.write(toFile: modePath, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        _ = FileManager.default.createFile(atPath: childLogPath, contents: nil)
        listenFD = try ListenSocket.open(.unix(path: socketPath))

        let testBundle = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        process.executableURL = URL(fileURLWithPath: testBundle)
        process.arguments = ["SupervisorTests.SupervisorHostProcess/testHost"]
        var environment = ProcessInfo.processInfo.environment
        environment["LEADIMPORT_TEST_SUPERVISOR_HOST"] = "1"
        environment["LEADIMPORT_TEST_PROCESSES"] = String(processes)
        environment["LEADIMPORT_TEST_EXECUTABLE"] = "python3"
        environment["LEADIMPORT_TEST_CHILD_ARGS"] = ["python3", "-u", scriptPath].joined(separator: "\u{1F}")
        environment["LEADIMPORT_TEST_STOP_MS"] = String(stopTimeout.milliseconds)
        environment["LEADIMPORT_TEST_READY_MS"] = String(readyTimeout.milliseconds)
        environment["CHILD_LOG"] = childLogPath
        environment["CHILD_MODE_FILE"] = modePath
        environment["CHILD_SERVE_DELAY"] = String(serveDelay)
        environment["LEADIMPORT_READY_FD"] = "99" // the supervisor must put its own value in place
        process.environment = environment
        process.standardInput = standardInputIsSocket
            ? FileHandle(fileDescriptor: listenFD, closeOnDealloc: false)
            : FileHandle(forReadingAtPath: "/dev/null")
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        close(listenFD)
        // The children notice that their parent is gone within 50 ms and exit.
        try? FileManager.default.removeItem(atPath: directory)
    }

    var pid: Int32 { process.processIdentifier }

    func setMode(_ mode: String) throws {
        try mode.write(toFile: modePath, atomically: true, encoding: .utf8)
    }

    // MARK: Logs

    /// The supervisor's log lines as key=value maps.
    func events() -> [[String: String]] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { LogLine.fields(String($0)) }
    }

    func events(_ message: String) -> [[String: String]] {
        events().filter { $0["msg"] == message }
    }

    func supervisorLog() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The children's notes: [word, pid, extra...].
    func childNotes() -> [[String]] {
        let text = (try? String(contentsOfFile: childLogPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
    }

    func childPids(_ word: String) -> [Int32] {
        childNotes().filter { $0.first == word }.compactMap { Int32($0[1]) }
    }

    // MARK: Waiting

    @discardableResult
    func wait(for description: String, timeout: Duration = .seconds(10), _ condition: () -> Bool) -> Bool {
        let deadline = MonotonicInstant.now() + timeout
        while MonotonicInstant.now() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        if condition() { return true }
        XCTFail("timed out waiting for \(description)\nsupervisor log:\n\(supervisorLog())\nchildren:\n\(childNotes())")
        return false
    }

    func waitUntilReady(_ count: Int) {
        wait(for: "\(count) ready children") { events("child ready").count >= count }
    }

    /// The exit status of the supervisor process, or nil if it is still running after `timeout`.
    func waitForExit(timeout: Duration) -> Int32? {
        let deadline = MonotonicInstant.now() + timeout
        while process.isRunning && MonotonicInstant.now() < deadline { usleep(10_000) }
        guard !process.isRunning else { return nil }
        return process.terminationStatus
    }

    // MARK: Requests

    /// One request: "PID LINE" back from whichever child accepted it.
    func request(_ line: String, timeoutSeconds: Int = 10) throws -> (pid: Int32, echo: String) {
        let fd = try SupervisorTestSockets.connectUnix(socketPath)
        defer { close(fd) }
        SupervisorTestSockets.setReceiveTimeout(fd, seconds: timeoutSeconds)
        try SupervisorTestSockets.sendAll(fd, line + "\n")
        let answer = try SupervisorTestSockets.receiveLine(fd)
        let parts = answer.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2, let pid = Int32(parts[0]) else { throw SupervisorTestSocketError(description: "bad answer \(answer)") }
        return (pid, parts[1])
    }
}

/// Requests in a loop on background threads until stopped.
final class RequestLoad: @unchecked Sendable {
    private let state = Locked((answers: [(pid: Int32, at: MonotonicInstant)](), failures: [String](), stop: false))
    private let done: CountdownLatch

    init(harness: SupervisorHarness, clients: Int) {
        done = CountdownLatch(count: clients)
        let path = harness.socketPath
        for client in 0..<clients {
            try! startThread(name: "load-\(client)") { [state, done] in
                var sequence = 0
                while !state.current.stop {
                    sequence += 1
                    let line = "c\(client)-\(sequence)"
                    do {
                        let fd = try SupervisorTestSockets.connectUnix(path)
                        defer { close(fd) }
                        SupervisorTestSockets.setReceiveTimeout(fd, seconds: 10)
                        try SupervisorTestSockets.sendAll(fd, line + "\n")
                        let answer = try SupervisorTestSockets.receiveLine(fd)
                        let parts = answer.split(separator: " ")
                        guard parts.count == 2, let pid = Int32(parts[0]), parts[1] == line else {
                            throw SupervisorTestSocketError(description: "bad answer \(answer) to \(line)")
                        }
                        state.withLock { $0.answers.append((pid, .now())) }
                    } catch {
                        state.withLock { $0.failures.append("\(line): \(error)") }
                    }
                }
                done.countDown()
            }
        }
    }

    func stop() -> (answers: [(pid: Int32, at: MonotonicInstant)], failures: [String]) {
        state.withLock { $0.stop = true }
        done.wait()
        let result = state.current
        return (result.answers, result.failures)
    }
}

final class SupervisorProcessTests: XCTestCase {
    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else {
            throw XCTSkip("python3 is needed for the stand-in children")
        }
    }

    func testChildrenGetTheListeningSocketAsStandardInputAndAnswer() throws {
        let harness = try SupervisorHarness(processes: 2)
        harness.waitUntilReady(2)
        let started = Set(harness.events("child started").compactMap { Int32($0["pid"] ?? "") })
        XCTAssertEqual(started.count, 2)
        XCTAssertEqual(harness.events("child started").map { $0["reason"] }, ["initial", "initial"])
        var answered: Set<Int32> = []
        for index in 0..<20 {
            let answer = try harness.request("hello \(index)")
            XCTAssertEqual(answer.echo, "hello \(index)")
            answered.insert(answer.pid)
        }
        XCTAssertTrue(answered.isSubset(of: started), "\(answered) \(started)")

        // What a child starts with: an empty signal mask, no ignored signal of ours, fds 0 to 3
        // only, the readiness protocol's variables.
        let starts = harness.childNotes().filter { $0.first == "start" }
        XCTAssertEqual(starts.count, 2)
        for note in starts {
            let fields = Dictionary(note.dropFirst(2).map { part -> (String, String) in
                let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
                return (pair[0], pair.count > 1 ? pair[1] : "")
            }, uniquingKeysWith: { a, _ in a })
            XCTAssertEqual(fields["sigblk"], "0000000000000000", "\(note)")
            let ignored = UInt64(fields["sigign"] ?? "", radix: 16) ?? .max
            for signal in [SIGTERM, SIGINT, SIGHUP, SIGCHLD] {
                XCTAssertEqual(ignored & (1 << UInt64(signal - 1)), 0, "SIG\(signal) ignored in \(note)")
            }
            XCTAssertEqual(fields["fds"], "0,1,2,3", "\(note)")
            XCTAssertEqual(fields["readyfd"], "3")
            XCTAssertEqual(fields["supervisor"], String(harness.pid))
        }

        kill(harness.pid, SIGTERM)
        XCTAssertEqual(harness.waitForExit(timeout: .seconds(10)), 0)
    }

    func testAKilledChildIsReplacedWithinASecondAndTheSocketKeepsAnswering() throws {
        let harness = try SupervisorHarness(processes: 1)
        harness.waitUntilReady(1)
        let first = try harness.request("before")
        usleep(1_100_000) // a child that served for over a second: no backoff

        let killedAt = MonotonicInstant.now()
        XCTAssertEqual(kill(first.pid, SIGKILL), 0)
        var replacement: Int32?
        harness.wait(for: "the replacement", timeout: .seconds(2)) {
            replacement = harness.events("child started").compactMap { Int32($0["pid"] ?? "") }.first { $0 != first.pid }
            return replacement != nil
        }
        XCTAssertLessThan(MonotonicInstant.now() - killedAt, .seconds(1))
        // A request sent while there may be no child yet waits in the backlog and is answered.
        let after = try harness.request("after")
        XCTAssertEqual(after.pid, replacement)
        XCTAssertEqual(after.echo, "after")

        let exit = try XCTUnwrap(harness.events("child exited unexpectedly").first)
        XCTAssertEqual(exit["pid"], String(first.pid))
        XCTAssertEqual(exit["status"], "signal KILL")
        XCTAssertEqual(harness.events("child started").last?["reason"], "replacement")

        kill(harness.pid, SIGTERM)
        XCTAssertEqual(harness.waitForExit(timeout: .seconds(10)), 0)
    }

    func testReloadReplacesEveryChildWithoutFailingARequest() throws {
        let harness = try SupervisorHarness(processes: 2, serveDelay: 0.01)
        harness.waitUntilReady(2)
        let old = Set(harness.childPids("ready"))
        XCTAssertEqual(old.count, 2)
        try harness.setMode("slow") // new children take 0.5 s to be ready: a gap would show

        let load = RequestLoad(harness: harness, clients: 3)
        usleep(200_000)
        XCTAssertEqual(kill(harness.pid, SIGHUP), 0)
        harness.wait(for: "the reload", timeout: .seconds(15)) { !harness.events("reload complete").isEmpty }
        let completedAt = MonotonicInstant.now()
        usleep(300_000)
        let result = load.stop()

        XCTAssertEqual(result.failures, [])
        XCTAssertGreaterThan(result.answers.count, 20)
        XCTAssertEqual(harness.events("reload complete").first?["replaced"], "2")
        let new = Set(harness.events("child started").filter { $0["reason"] == "reload" }.compactMap { Int32($0["pid"] ?? "") })
        XCTAssertEqual(new.count, 2)
        XCTAssertTrue(new.isDisjoint(with: old))
        XCTAssertEqual(Set(harness.childPids("term")), old, "the old children were told to stop, and drained")
        XCTAssertEqual(harness.events("child replaced").count, 2)
        XCTAssertEqual(harness.events("child exited unexpectedly").count, 0)
        let late = result.answers.filter { $0.at > completedAt }.map(\.pid)
        XCTAssertFalse(late.isEmpty)
        XCTAssertTrue(Set(late).isSubset(of: new), "after the reload only new children answer")

        // At every moment two children were accepting: an old one was told to stop only after its
        // replacement was ready.
        var accepting = 0
        var lowest = Int.max
        var sawBoth = false
        for note in harness.childNotes() {
            switch note.first {
            case "ready": accepting += 1
            case "term": accepting -= 1
            default: continue
            }
            if accepting >= 2 { sawBoth = true }
            if sawBoth { lowest = min(lowest, accepting) }
        }
        XCTAssertEqual(lowest, 2, "\(harness.childNotes())")

        kill(harness.pid, SIGTERM)
        XCTAssertEqual(harness.waitForExit(timeout: .seconds(10)), 0)
    }

    func testReloadKeepsTheOldChildrenWhenTheNewOneIsNotReadyInTime() throws {
        let harness = try SupervisorHarness(processes: 2, readyTimeout: .milliseconds(700))
        harness.waitUntilReady(2)
        let old = Set(harness.childPids("ready"))
        try harness.setMode("hang")
        XCTAssertEqual(kill(harness.pid, SIGHUP), 0)
        harness.wait(for: "the reload to be abandoned") { !harness.events("reload abandoned; the old children keep serving").isEmpty }
        XCTAssertEqual(harness.events("child did not report ready in time; killing it").count, 1)
        let hung = try XCTUnwrap(harness.events("child started").last.flatMap { Int32($0["pid"] ?? "") })
        harness.wait(for: "the hung child to be gone") {
            harness.events("child exited").contains { $0["pid"] == String(hung) && $0["status"] == "signal KILL" }
        }
        XCTAssertEqual(harness.events("child started").count, 3, "one attempt, then the reload stops")
        for index in 0..<10 {
            XCTAssertTrue(old.contains(try harness.request("still \(index)").pid))
        }
        XCTAssertEqual(harness.childPids("term"), [])

        kill(harness.pid, SIGTERM)
        XCTAssertEqual(harness.waitForExit(timeout: .seconds(10)), 0)
        XCTAssertEqual(Set(harness.childPids("term")), old)
    }

    func testACrashDuringAReloadIsReplacedAndTheReloadCompletes() throws {
        let harness = try SupervisorHarness(processes: 2)
        harness.waitUntilReady(2)
        let starts = harness.events("child started")
        let slot1 = try XCTUnwrap(starts.first { $0["slot"] == "1" }.flatMap { Int32($0["pid"] ?? "") })
        try harness.setMode("slow")
        XCTAssertEqual(kill(harness.pid, SIGHUP), 0)
        harness.wait(for: "the reload's first child") { harness.events("child started").contains { $0["reason"] == "reload" } }
        XCTAssertEqual(kill(slot1, SIGKILL), 0) // slot 1 is not being replaced yet
        harness.wait(for: "the reload", timeout: .seconds(15)) { !harness.events("reload complete").isEmpty }
        let reasons = harness.events("child started").map { $0["reason"] ?? "" }
        XCTAssertEqual(reasons, ["initial", "initial", "reload", "replacement"], "the replacement is new: no second reload child")
        XCTAssertEqual(harness.events("reload complete").first?["replaced"], "1")
        XCTAssertEqual(harness.events("child exited unexpectedly").first?["pid"], String(slot1))
        XCTAssertEqual(try harness.request("after").echo, "after")

        kill(harness.pid, SIGTERM)
        XCTAssertEqual(harness.waitForExit(timeout: .seconds(10)), 0)
    }

    func testStopSendsSIGTERMToTheChildrenAndReturnsZeroLeavingTheSocketOpen() throws {
        let harness = try SupervisorHarness(processes: 2, serveDelay: 0.3)
        harness.waitUntilReady(2)
        let children = Set(harness.childPids("ready"))

        // A request in flight when the stop comes is finished.
        let inFlight = Locked<Result<String, Error>?>(nil)
        let latch = CountdownLatch(count: 1)
        try! startThread(name: "in-flight") {
            inFlight.withLock { $0 = Result { try harness.request("slow").echo } }
            latch.countDown()
        }
        harness.wait(for: "the request to be accepted") { !harness.childPids("accepted").isEmpty }
        XCTAssertEqual(kill(harness.pid, SIGTERM), 0)
        XCTAssertEqual(harness.waitForExit(timeout: .seconds(10)), 0)
        latch.wait()
        XCTAssertEqual(try inFlight.current?.get(), "slow")

        XCTAssertEqual(Set(harness.childPids("term")), children)
        XCTAssertEqual(harness.events("stopping").first?["signal"], "SIGTERM")
        XCTAssertEqual(harness.events("child exited").count, 2)
        XCTAssertEqual(harness.events("stopped").count, 1)
        for pid in children { XCTAssertNotEqual(kill(pid, 0), 0, "child \(pid) is gone") }

        // Not shut down: the socket still takes connections into its backlog for the next server.
        let fd = try SupervisorTestSockets.connectUnix(harness.socketPath)
        close(fd)
    }

    func testStopKillsChildrenThatIgnoreSIGTERMAfterTheTimeout() throws {
        let harness = try SupervisorHarness(processes: 2, stopTimeout: .milliseconds(500), mode: "ignore-term")
        harness.waitUntilReady(2)
        let began = MonotonicInstant.now()
        XCTAssertEqual(kill(harness.pid, SIGTERM), 0)
        XCTAssertEqual(harness.waitForExit(timeout: .seconds(10)), 0)
        XCTAssertGreaterThanOrEqual(MonotonicInstant.now() - began, .milliseconds(500))
        XCTAssertFalse(harness.events("killing children").isEmpty)
        XCTAssertEqual(harness.events("child exited").map { $0["status"] }, ["signal KILL", "signal KILL"])
    }

    func testASecondSIGINTKillsTheChildrenAtOnce() throws {
        let harness = try SupervisorHarness(processes: 2, stopTimeout: .seconds(60), mode: "ignore-term")
        harness.waitUntilReady(2)
        XCTAssertEqual(kill(harness.pid, SIGINT), 0)
        harness.wait(for: "the stop") { !harness.events("stopping").isEmpty }
        XCTAssertEqual(harness.waitForExit(timeout: .milliseconds(300)), nil, "waiting for the children")
        XCTAssertEqual(kill(harness.pid, SIGINT), 0)
        XCTAssertEqual(harness.waitForExit(timeout: .seconds(5)), 0)
        XCTAssertEqual(harness.events("killing children").first?["reason"], "second SIGINT")
        XCTAssertEqual(harness.events("child exited").map { $0["status"] }, ["signal KILL", "signal KILL"])
    }

    func testAChildThatKeepsCrashingIsRestartedWithBackoffAndStopStillWorks() throws {
        let harness = try SupervisorHarness(processes: 1, mode: "exit")
        usleep(2_500_000)
        let starts = harness.events("child started").count
        // Delays 0, 0.1, 0.2, 0.4, 0.8, 1, 1 s plus start-up time: a handful, not a spin.
        XCTAssertGreaterThanOrEqual(starts, 4)
        XCTAssertLessThanOrEqual(starts, 9)
        XCTAssertFalse(harness.events("child keeps exiting soon after start; replacement delayed").isEmpty)
        XCTAssertEqual(harness.events("child exited unexpectedly").first?["status"], "exit 7")

        let began = MonotonicInstant.now()
        XCTAssertEqual(kill(harness.pid, SIGTERM), 0)
        XCTAssertEqual(harness.waitForExit(timeout: .seconds(5)), 0)
        XCTAssertLessThan(MonotonicInstant.now() - began, .seconds(2))
    }

    func testStopDuringAReloadStopsEverything() throws {
        let harness = try SupervisorHarness(processes: 2)
        harness.waitUntilReady(2)
        try harness.setMode("slow")
        XCTAssertEqual(kill(harness.pid, SIGHUP), 0)
        harness.wait(for: "the reload's first child") { harness.events("child started").contains { $0["reason"] == "reload" } }
        XCTAssertEqual(kill(harness.pid, SIGTERM), 0)
        XCTAssertEqual(harness.waitForExit(timeout: .seconds(10)), 0)
        XCTAssertEqual(harness.events("stopping").first?["children"], "3")
        XCTAssertEqual(harness.events("child exited").count, 3)
        XCTAssertTrue(harness.events("reload complete").isEmpty)
        for pid in harness.events("child started").compactMap({ Int32($0["pid"] ?? "") }) {
            XCTAssertNotEqual(kill(pid, 0), 0, "child \(pid) is gone")
        }
    }

    func testStandardInputThatIsNotASocketIsRefused() throws {
        let harness = try SupervisorHarness(processes: 1, standardInputIsSocket: false)
        XCTAssertEqual(harness.waitForExit(timeout: .seconds(10)), 2)
        XCTAssertEqual(harness.supervisorLog(),
                       "standard input is not a listening socket: pass --listen or run under systemd socket activation / spawn-fcgi\n")
    }
}
