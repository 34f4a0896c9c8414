import Platform
import XCTest
@testable import Supervisor

/// The supervisor's decisions, without processes.
final class SupervisorStateTests: XCTestCase {
    private let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)
    private func at(_ ms: Int) -> MonotonicInstant { t0 + .milliseconds(ms) }
    private let killed = ChildExitStatus(.signaled(signal: 9, coreDumped: false))
    private let clean = ChildExitStatus(.exited(code: 0))

    private func makeState(processes: Int = 2) -> SupervisorState {
        SupervisorState(processes: processes, stopTimeout: .seconds(5), readyTimeout: .seconds(2))
    }

    private func spawns(_ actions: [SupervisorAction]) -> [SupervisorAction] {
        actions.filter { if case .spawn = $0 { return true } else { return false } }
    }

    private func signals(_ actions: [SupervisorAction]) -> [SupervisorAction] {
        actions.filter {
            switch $0 {
            case .terminate, .kill: return true
            default: return false
            }
        }
    }

    private func events(_ actions: [SupervisorAction]) -> [SupervisorEvent] {
        actions.compactMap { if case .log(let event) = $0 { return event } else { return nil } }
    }

    /// Two children, 100 and 101, started and ready.
    private func running() -> SupervisorState {
        var state = makeState()
        XCTAssertEqual(state.start(now: t0), [.spawn(slot: 0, role: .serving), .spawn(slot: 1, role: .serving)])
        XCTAssertEqual(events(state.spawned(slot: 0, role: .serving, pid: 100, now: t0)),
                       [.childStarted(pid: 100, slot: 0, reason: .initial)])
        _ = state.spawned(slot: 1, role: .serving, pid: 101, now: t0)
        _ = state.ready(pid: 100, now: at(50))
        _ = state.ready(pid: 101, now: at(60))
        return state
    }

    // MARK: - Exit status and backoff

    func testDecodesWaitStatuses() {
        XCTAssertEqual(ChildExitStatus(waitStatus: 0).kind, .exited(code: 0))
        XCTAssertEqual(ChildExitStatus(waitStatus: 3 << 8).kind, .exited(code: 3))
        XCTAssertEqual(ChildExitStatus(waitStatus: 9).kind, .signaled(signal: 9, coreDumped: false))
        XCTAssertEqual(ChildExitStatus(waitStatus: 6 | 0x80).kind, .signaled(signal: 6, coreDumped: true))
        XCTAssertEqual(ChildExitStatus(waitStatus: 3 << 8).description, "exit 3")
        XCTAssertEqual(ChildExitStatus(waitStatus: 6 | 0x80).description, "signal ABRT (core dumped)")
        XCTAssertEqual(ChildExitStatus(waitStatus: 11).description, "signal SEGV")
    }

    func testBackoffGrowsForQuickDeathsAndIsCappedAtOneSecond() {
        var backoff = RestartBackoff()
        let delays = (0..<8).map { _ in backoff.delayAfterExit(lifetime: .milliseconds(50), wasReady: false) }
        XCTAssertEqual(delays, [.zero, .milliseconds(100), .milliseconds(200), .milliseconds(400),
                                .milliseconds(800), .seconds(1), .seconds(1), .seconds(1)])
        // Ready but dead within the first second: still a failure.
        XCTAssertEqual(backoff.delayAfterExit(lifetime: .milliseconds(900), wasReady: true), .seconds(1))
        // A child that served for a while is replaced at once, and the count starts over.
        XCTAssertEqual(backoff.delayAfterExit(lifetime: .seconds(30), wasReady: true), .zero)
        XCTAssertEqual(backoff.consecutiveFailures, 0)
        XCTAssertEqual(backoff.delayAfterExit(lifetime: .milliseconds(10), wasReady: false), .zero)
        XCTAssertEqual(backoff.delayAfterExit(lifetime: .milliseconds(10), wasReady: false), .milliseconds(100))
        // Long-lived but never ready (killed for it): a failure.
        var other = RestartBackoff()
        _ = other.delayAfterExit(lifetime: .seconds(20), wasReady: false)
        XCTAssertEqual(other.delayAfterExit(lifetime: .seconds(20), wasReady: false), .milliseconds(100))
    }

    // MARK: - Crashes

    func testACrashedChildIsReplacedAtOnce() {
        var state = running()
        let actions = state.exited(pid: 100, status: killed, now: at(5000))
        XCTAssertEqual(events(actions), [.childExited(pid: 100, slot: 0, status: killed, expected: false, lifetime: .seconds(5))])
        XCTAssertEqual(spawns(actions), [.spawn(slot: 0, role: .serving)])
        XCTAssertEqual(events(state.spawned(slot: 0, role: .serving, pid: 102, now: at(5001))),
                       [.childStarted(pid: 102, slot: 0, reason: .replacement)])
        XCTAssertEqual(state.serving(0)?.pid, 102)
        XCTAssertEqual(state.serving(1)?.pid, 101)
    }

    func testAChildThatKeepsDyingIsReplacedWithGrowingDelays() {
        var state = makeState(processes: 1)
        _ = state.start(now: t0)
        var now = 0
        var pid: Int32 = 100
        var observed: [Duration] = []
        _ = state.spawned(slot: 0, role: .serving, pid: pid, now: at(now))
        for _ in 0..<7 {
            now += 20
            var actions = state.exited(pid: pid, status: ChildExitStatus(.exited(code: 1)), now: at(now))
            if spawns(actions).isEmpty {
                let due = try! XCTUnwrap(state.nextDeadline())
                observed.append(due - at(now))
                XCTAssertTrue(spawns(state.tick(now: due + .nanoseconds(-1))).isEmpty, "not before it is due")
                now = Int((due - t0).milliseconds)
                actions = state.tick(now: due)
            } else {
                observed.append(.zero)
            }
            XCTAssertEqual(spawns(actions), [.spawn(slot: 0, role: .serving)])
            pid += 1
            _ = state.spawned(slot: 0, role: .serving, pid: pid, now: at(now))
        }
        XCTAssertEqual(observed, [.zero, .milliseconds(100), .milliseconds(200), .milliseconds(400),
                                  .milliseconds(800), .seconds(1), .seconds(1)])
    }

    func testAFailedSpawnIsRetriedWithBackoff() {
        var state = makeState(processes: 1)
        _ = state.start(now: t0)
        XCTAssertEqual(spawns(state.spawnFailed(slot: 0, role: .serving, message: "ENOENT", now: t0)), [.spawn(slot: 0, role: .serving)])
        let second = state.spawnFailed(slot: 0, role: .serving, message: "ENOENT", now: t0)
        XCTAssertEqual(events(second), [.spawnFailed(slot: 0, message: "ENOENT"), .replacementScheduled(slot: 0, delay: .milliseconds(100))])
        XCTAssertEqual(state.nextDeadline(), at(100))
        XCTAssertEqual(state.tick(now: at(100)), [.spawn(slot: 0, role: .serving)])
    }

    func testAChildThatIsNotReadyInTimeIsKilledAndReplaced() {
        var state = makeState(processes: 1)
        _ = state.start(now: t0)
        _ = state.spawned(slot: 0, role: .serving, pid: 100, now: t0)
        XCTAssertEqual(state.nextDeadline(), at(2000))
        XCTAssertEqual(state.tick(now: at(1999)), [])
        let actions = state.tick(now: at(2000))
        XCTAssertEqual(signals(actions), [.kill(pid: 100)])
        XCTAssertEqual(events(actions), [.childNotReady(pid: 100, slot: 0, timeout: .seconds(2))])
        XCTAssertEqual(state.tick(now: at(3000)), [], "killed once")
        XCTAssertEqual(spawns(state.exited(pid: 100, status: killed, now: at(2001))), [.spawn(slot: 0, role: .serving)])
    }

    func testClosingTheReadinessPipeWithoutTheByteIsAFailedStart() {
        var state = makeState(processes: 1)
        _ = state.start(now: t0)
        _ = state.spawned(slot: 0, role: .serving, pid: 100, now: t0)
        let actions = state.readinessClosed(pid: 100, now: at(10))
        XCTAssertEqual(signals(actions), [.kill(pid: 100)])
        XCTAssertEqual(events(actions), [.childClosedReadiness(pid: 100, slot: 0)])
        XCTAssertEqual(state.ready(pid: 100, now: at(11)), [], "too late")
    }

    // MARK: - Stop

    func testStopTerminatesEveryChildAndFinishesWhenAllAreGone() {
        var state = running()
        let actions = state.stopRequested(signal: "SIGTERM", now: at(1000))
        XCTAssertEqual(signals(actions), [.terminate(pid: 100), .terminate(pid: 101)])
        XCTAssertEqual(events(actions), [.stopping(signal: "SIGTERM", children: 2)])
        XCTAssertEqual(state.nextDeadline(), at(6000))
        let first = state.exited(pid: 100, status: clean, now: at(1500))
        XCTAssertEqual(spawns(first), [], "no replacement while stopping")
        XCTAssertFalse(first.contains(.finished))
        XCTAssertEqual(state.reloadRequested(now: at(1600)), [.log(.reloadIgnored)])
        let last = state.exited(pid: 101, status: clean, now: at(1700))
        XCTAssertEqual(Array(last.suffix(2)), [.log(.stopped), .finished])
        XCTAssertTrue(state.finished)
    }

    func testStopKillsStragglersAfterTheTimeoutAndAtASecondSignal() {
        var state = running()
        _ = state.stopRequested(signal: "SIGTERM", now: at(1000))
        XCTAssertEqual(signals(state.tick(now: at(5999))), [])
        XCTAssertEqual(signals(state.tick(now: at(6000))), [.kill(pid: 100), .kill(pid: 101)])
        XCTAssertEqual(signals(state.tick(now: at(7000))), [])

        var other = running()
        _ = other.stopRequested(signal: "SIGINT", now: at(1000))
        let second = other.stopRequested(signal: "SIGINT", now: at(1200))
        XCTAssertEqual(signals(second), [.kill(pid: 100), .kill(pid: 101)])
        XCTAssertEqual(other.stopRequested(signal: "SIGINT", now: at(1300)), [])
    }

    func testStopWithoutChildrenFinishesAtOnce() {
        var state = makeState(processes: 1)
        _ = state.start(now: t0)
        _ = state.spawnFailed(slot: 0, role: .serving, message: "x", now: t0)
        _ = state.spawnFailed(slot: 0, role: .serving, message: "x", now: t0) // waiting 100 ms
        let actions = state.stopRequested(signal: "SIGTERM", now: at(10))
        XCTAssertEqual(actions.last, .finished)
        XCTAssertEqual(state.tick(now: at(500)), [], "the pending replacement is dropped")
    }

    // MARK: - Reload

    func testReloadReplacesChildrenOneAtATime() {
        var state = running()
        var actions = state.reloadRequested(now: at(1000))
        XCTAssertEqual(actions, [.log(.reloadStarted(children: 2)), .spawn(slot: 0, role: .candidate)])
        XCTAssertEqual(events(state.spawned(slot: 0, role: .candidate, pid: 200, now: at(1001))),
                       [.childStarted(pid: 200, slot: 0, reason: .reload)])
        XCTAssertEqual(state.serving(0)?.pid, 100, "the old child serves until the new one is ready")

        actions = state.ready(pid: 200, now: at(1300))
        XCTAssertEqual(signals(actions), [.terminate(pid: 100)])
        XCTAssertTrue(events(actions).contains(.childReplaced(old: 100, new: 200, slot: 0)))
        XCTAssertEqual(spawns(actions), [], "the next slot waits for the old child to exit")
        XCTAssertEqual(state.serving(0)?.pid, 200)

        actions = state.exited(pid: 100, status: clean, now: at(1400))
        XCTAssertEqual(events(actions).first, .childExited(pid: 100, slot: 0, status: clean, expected: true, lifetime: .milliseconds(1400)))
        XCTAssertEqual(spawns(actions), [.spawn(slot: 1, role: .candidate)])
        _ = state.spawned(slot: 1, role: .candidate, pid: 201, now: at(1401))
        XCTAssertEqual(signals(state.ready(pid: 201, now: at(1600))), [.terminate(pid: 101)])
        actions = state.exited(pid: 101, status: clean, now: at(1700))
        XCTAssertEqual(events(actions).last, .reloadComplete(replaced: 2))
        XCTAssertFalse(state.isReloading)
        XCTAssertEqual(Set(state.children.keys), [200, 201])
    }

    func testAnOldChildThatDoesNotStopIsKilledAfterTheStopTimeout() {
        var state = running()
        _ = state.reloadRequested(now: at(1000))
        _ = state.spawned(slot: 0, role: .candidate, pid: 200, now: at(1000))
        _ = state.ready(pid: 200, now: at(1100))
        XCTAssertEqual(signals(state.tick(now: at(6099))), [])
        XCTAssertEqual(signals(state.tick(now: at(6100))), [.kill(pid: 100)])
        XCTAssertEqual(spawns(state.exited(pid: 100, status: killed, now: at(6101))), [.spawn(slot: 1, role: .candidate)])
    }

    func testANewChildThatIsNotReadyIsKilledAndTheOldOnesStay() {
        var state = running()
        _ = state.reloadRequested(now: at(1000))
        _ = state.spawned(slot: 0, role: .candidate, pid: 200, now: at(1000))
        let actions = state.tick(now: at(3000))
        XCTAssertEqual(signals(actions), [.kill(pid: 200)])
        XCTAssertTrue(events(actions).contains(.reloadAbandoned(slot: 0, reason: "the new child did not report ready")))
        XCTAssertFalse(state.isReloading)
        let exit = state.exited(pid: 200, status: killed, now: at(3010))
        XCTAssertEqual(events(exit), [.childExited(pid: 200, slot: 0, status: killed, expected: true, lifetime: .milliseconds(2010))])
        XCTAssertEqual(spawns(exit), [])
        XCTAssertEqual(state.serving(0)?.pid, 100)
        XCTAssertEqual(state.serving(1)?.pid, 101)
    }

    func testANewChildThatDiesBeforeReadyAbandonsTheReload() {
        var state = running()
        _ = state.reloadRequested(now: at(1000))
        _ = state.spawned(slot: 0, role: .candidate, pid: 200, now: at(1000))
        let actions = state.exited(pid: 200, status: ChildExitStatus(.exited(code: 2)), now: at(1100))
        XCTAssertEqual(events(actions).last, .reloadAbandoned(slot: 0, reason: "the new child exited before it was ready (exit 2)"))
        XCTAssertEqual(spawns(actions), [])
        XCTAssertEqual(signals(actions), [])
        XCTAssertEqual(state.serving(0)?.pid, 100)
    }

    func testACrashDuringAReloadIsReplacedAndTheReloadGoesOn() {
        var state = running()
        _ = state.reloadRequested(now: at(1000))
        _ = state.spawned(slot: 0, role: .candidate, pid: 200, now: at(1000))
        // Slot 1's child crashes while slot 0 is being replaced: replaced at once, by a child that
        // is new already, so the reload leaves it alone.
        XCTAssertEqual(spawns(state.exited(pid: 101, status: killed, now: at(1050))), [.spawn(slot: 1, role: .serving)])
        _ = state.spawned(slot: 1, role: .serving, pid: 300, now: at(1051))
        _ = state.ready(pid: 200, now: at(1100))
        let actions = state.exited(pid: 100, status: clean, now: at(1200))
        XCTAssertEqual(spawns(actions), [])
        XCTAssertEqual(events(actions).last, .reloadComplete(replaced: 1))
        XCTAssertEqual(Set(state.children.keys), [200, 300])
    }

    func testTheOldChildCrashingWhileItsReplacementStartsLeavesTheSlotToTheReplacement() {
        var state = running()
        _ = state.reloadRequested(now: at(1000))
        _ = state.spawned(slot: 0, role: .candidate, pid: 200, now: at(1000))
        XCTAssertEqual(spawns(state.exited(pid: 100, status: killed, now: at(1050))), [], "the new child takes the place")
        let actions = state.ready(pid: 200, now: at(1100))
        XCTAssertEqual(signals(actions), [])
        XCTAssertEqual(spawns(actions), [.spawn(slot: 1, role: .candidate)])
        XCTAssertEqual(state.serving(0)?.pid, 200)
    }

    func testStopDuringAReloadStopsEverything() {
        var state = running()
        _ = state.reloadRequested(now: at(1000))
        _ = state.spawned(slot: 0, role: .candidate, pid: 200, now: at(1000))
        let actions = state.stopRequested(signal: "SIGTERM", now: at(1100))
        XCTAssertEqual(signals(actions), [.terminate(pid: 100), .terminate(pid: 101), .terminate(pid: 200)])
        XCTAssertFalse(state.isReloading)
        XCTAssertEqual(state.ready(pid: 200, now: at(1200)), [], "a new child's ready is moot now")
        _ = state.exited(pid: 100, status: clean, now: at(1300))
        _ = state.exited(pid: 200, status: clean, now: at(1300))
        XCTAssertEqual(state.exited(pid: 101, status: clean, now: at(1300)).last, .finished)
    }

    func testASecondReloadRequestRunsAnotherReloadAfterwards() {
        var state = makeState(processes: 1)
        _ = state.start(now: t0)
        _ = state.spawned(slot: 0, role: .serving, pid: 100, now: t0)
        _ = state.ready(pid: 100, now: at(10))
        _ = state.reloadRequested(now: at(1000))
        _ = state.spawned(slot: 0, role: .candidate, pid: 200, now: at(1000))
        XCTAssertEqual(state.reloadRequested(now: at(1050)), [.log(.reloadQueued)])
        _ = state.ready(pid: 200, now: at(1100))
        let actions = state.exited(pid: 100, status: clean, now: at(1200))
        XCTAssertEqual(events(actions).suffix(2), [.reloadComplete(replaced: 1), .reloadStarted(children: 1)])
        XCTAssertEqual(spawns(actions), [.spawn(slot: 0, role: .candidate)], "200 predates the second request")
    }

    func testReloadSkipsAVacantSlot() {
        var state = running()
        _ = state.exited(pid: 100, status: killed, now: at(100)) // quick death: replaced at once
        _ = state.spawnFailed(slot: 0, role: .serving, message: "x", now: at(100)) // now waiting
        XCTAssertNil(state.serving(0))
        let actions = state.reloadRequested(now: at(110))
        XCTAssertEqual(spawns(actions), [.spawn(slot: 1, role: .candidate)])
    }
}
