import Platform
import XCTest
@testable import FastCGIServer

/// The dispatcher's decisions, driven with made-up instants: no sockets, no epoll, no threads.
final class DispatcherStateTests: XCTestCase {
    typealias Action = DispatcherState.Action

    private let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)
    private func at(_ ms: Int) -> MonotonicInstant { t0 + .milliseconds(ms) }

    private func makeState(maximumAcceptedWithoutHead: Int = 512) -> DispatcherState {
        DispatcherState(configuration: .init(
            firstRecordTimeout: .seconds(5), idleConnectionTimeout: .seconds(120),
            drainTimeout: .seconds(30), drainIdleTimeout: .seconds(4),
            lookInterval: .milliseconds(50), maximumAcceptedWithoutHead: maximumAcceptedWithoutHead,
            acceptPauseAfterExhaustion: .milliseconds(100), acceptPauseAfterError: .seconds(1)))
    }

    /// Accepts `id` at `ms` in a burst of its own; returns the registration's generation.
    @discardableResult
    private func accept(_ id: Int32, at ms: Int, into state: inout DispatcherState) -> UInt32 {
        XCTAssertTrue(state.listenReady(), "the listening socket is not armed")
        let actions = state.accepted(id, now: at(ms))
        _ = state.acceptEnded(failure: nil, now: at(ms))
        guard case .register(id, let generation)? = actions.first else {
            XCTFail("not registered: \(actions)")
            return 0
        }
        return generation
    }

    /// Connection `id` accepted at `ms`, its head complete at once, held by `worker`.
    private func serve(_ id: Int32, at ms: Int, worker: Int, in state: inout DispatcherState) {
        let generation = accept(id, at: ms, into: &state)
        guard case .taken = state.take(id, generation: generation, worker: worker) else { return XCTFail("not taken") }
        XCTAssertEqual(state.looked(worker: worker, .complete, now: at(ms)), [])
    }

    /// Connection `id` served by `worker` and kept at `ms`; returns its generation.
    @discardableResult
    private func keep(_ id: Int32, at ms: Int, worker: Int = 0, in state: inout DispatcherState) -> UInt32 {
        serve(id, at: ms, worker: worker, in: &state)
        let actions = state.requestDone(id, worker: worker, reusable: true, now: at(ms))
        guard let generation = actions.lazy.compactMap({ action -> UInt32? in
            if case .arm(id, let generation, watchingInput: true) = action { return generation }
            return nil
        }).first else {
            XCTFail("not re-armed: \(actions)")
            return 0
        }
        return generation
    }

    private func started() -> DispatcherState {
        var state = makeState()
        XCTAssertEqual(state.start(), [.registerListen])
        return state
    }

    // MARK: - Accepting

    func testAcceptedConnectionWaitsForItsHeadUntilFirstRecordTimeout() {
        var state = started()
        XCTAssertTrue(state.listenReady())
        XCTAssertFalse(state.listenReady(), "a second worker accepts from the same event")
        XCTAssertEqual(state.accepted(7, now: at(0)), [.register(7, generation: 1), .wakeKeeper])
        XCTAssertEqual(state.waiting[7], .init(origin: .accepted, generation: 1, deadline: at(5000)))
        XCTAssertEqual(state.acceptedWithoutHead, 1)
        XCTAssertEqual(state.acceptEnded(failure: nil, now: at(1)), [.rearmListen])
        XCTAssertEqual(state.listen, .armed)
        XCTAssertEqual(state.keeperPlan(now: at(1)), .sleep(until: at(5000)))
        XCTAssertEqual(state.tick(now: at(4999)), [])
        XCTAssertEqual(state.tick(now: at(5000)), [.log(.noHeadInTime(timeout: .seconds(5))), .close(7)])
        XCTAssertNil(state.waiting[7])
        XCTAssertEqual(state.acceptedWithoutHead, 0)
    }

    func testEventOfAnEarlierArmingIsStale() {
        var state = started()
        let generation = accept(7, at: 0, into: &state)
        XCTAssertEqual(state.take(7, generation: generation &- 1, worker: 0), .stale)
        XCTAssertEqual(state.take(8, generation: generation, worker: 0), .stale, "another connection")
        XCTAssertEqual(state.take(7, generation: generation, worker: 0), .taken([]))
        XCTAssertEqual(state.busy[0]?.id, 7)
        XCTAssertEqual(state.take(7, generation: generation, worker: 1), .stale, "taken twice")

        // Put back after a spurious wake-up: the old tag no longer takes it, the new one does.
        let actions = state.looked(worker: 0, .nothingYet, now: at(10))
        XCTAssertEqual(actions.first, .arm(7, generation: generation + 1, watchingInput: true))
        XCTAssertEqual(state.take(7, generation: generation, worker: 1), .stale)
        XCTAssertEqual(state.take(7, generation: generation + 1, worker: 1), .taken([]))
    }

    // MARK: - Heads arriving in parts

    func testIncompleteHeadIsLookedAtAgainAndGetsAHeadDeadline() {
        var state = started()
        keep(7, at: 0, in: &state)
        XCTAssertEqual(state.waiting[7]?.deadline, at(120_000))
        guard case .taken = state.take(7, generation: state.waiting[7]!.generation, worker: 1) else { return XCTFail() }

        // Part of a head at 10 s: armed for the peer closing only, looked at again 50 ms later.
        let partial = state.looked(worker: 1, .incomplete(peerGone: false), now: at(10_000))
        guard case .arm(7, let generation, watchingInput: false)? = partial.first else { return XCTFail("\(partial)") }
        XCTAssertNil(state.busy[1])
        XCTAssertEqual(state.waiting[7]?.deadline, at(15_000), "the head has firstRecordTimeout from its first bytes")
        XCTAssertEqual(state.waiting[7]?.nextLook, at(10_050))
        XCTAssertEqual(state.keeperPlan(now: at(10_000)), .sleep(until: at(10_050)))

        XCTAssertEqual(state.tick(now: at(10_049)), [])
        XCTAssertEqual(state.tick(now: at(10_050)), [.arm(7, generation: generation + 1, watchingInput: true)])
        XCTAssertNil(state.waiting[7]?.nextLook)
        XCTAssertEqual(state.keeperPlan(now: at(10_050)), .sleep(until: at(15_000)))

        // Still not whole: the deadline stays where the first bytes put it.
        guard case .taken = state.take(7, generation: generation + 1, worker: 0) else { return XCTFail() }
        _ = state.looked(worker: 0, .incomplete(peerGone: false), now: at(12_000))
        XCTAssertEqual(state.waiting[7]?.deadline, at(15_000))
        XCTAssertEqual(state.tick(now: at(15_000)), [.log(.noHeadInTime(timeout: .seconds(5))), .close(7)])
    }

    func testSpuriousWakeUpKeepsWatchingWhatItWatched() {
        var state = started()
        let generation = accept(7, at: 0, into: &state)
        _ = state.take(7, generation: generation, worker: 0)
        _ = state.looked(worker: 0, .incomplete(peerGone: false), now: at(100))
        // The peer-closed event of a connection waiting for its second look, with nothing new.
        XCTAssertEqual(state.keeperPlan(now: at(100)), .sleep(until: at(150)))
        let again = state.waiting[7]!.generation
        _ = state.take(7, generation: again, worker: 0)
        // Armed as before, due no sooner than the keeper already wakes: no signal.
        XCTAssertEqual(state.looked(worker: 0, .nothingYet, now: at(120)), [.arm(7, generation: again + 1, watchingInput: false)])
        XCTAssertEqual(state.waiting[7]?.nextLook, at(150))
        XCTAssertEqual(state.waiting[7]?.deadline, at(5000))
    }

    func testHeadsThatEndTheConnection() {
        var state = started()
        let first = accept(7, at: 0, into: &state)
        _ = state.take(7, generation: first, worker: 0)
        XCTAssertEqual(state.looked(worker: 0, .incomplete(peerGone: true), now: at(1)), [.log(.peerLeftMidHead), .close(7)])
        XCTAssertNil(state.busy[0])

        let second = accept(8, at: 2, into: &state)
        _ = state.take(8, generation: second, worker: 0)
        XCTAssertEqual(state.looked(worker: 0, .invalid(reason: "role"), now: at(3)), [.log(.headRefused(reason: "role")), .close(8)])

        let third = accept(9, at: 4, into: &state)
        _ = state.take(9, generation: third, worker: 0)
        XCTAssertEqual(state.looked(worker: 0, .endOfStream, now: at(5)), [.close(9)])
        XCTAssertEqual(state.busy.count, 0)
        XCTAssertEqual(state.waiting.count, 0)
        XCTAssertEqual(state.acceptedWithoutHead, 0)
    }

    // MARK: - Kept connections

    func testIdleKeptConnectionIsClosedAfterIdleConnectionTimeout() {
        var state = started()
        serve(7, at: 0, worker: 0, in: &state)
        XCTAssertEqual(state.acceptedWithoutHead, 0, "a connection with a head no longer counts")
        let actions = state.requestDone(7, worker: 0, reusable: true, now: at(1000))
        XCTAssertEqual(actions, [.arm(7, generation: 2, watchingInput: true), .wakeKeeper])
        XCTAssertEqual(state.waiting[7], .init(origin: .kept, generation: 2, deadline: at(121_000)))
        XCTAssertEqual(state.keeperPlan(now: at(1000)), .sleep(until: at(121_000)))
        XCTAssertEqual(state.tick(now: at(120_999)), [])
        XCTAssertEqual(state.tick(now: at(121_000)), [.log(.idleKeptConnectionClosed), .close(7)])
        XCTAssertEqual(state.keeperPlan(now: at(121_000)), .sleepUntilSignalled)
    }

    func testConnectionNotReusableIsClosed() {
        var state = started()
        serve(7, at: 0, worker: 2, in: &state)
        XCTAssertEqual(state.requestDone(7, worker: 2, reusable: false, now: at(10)), [.close(7)])
        XCTAssertNil(state.busy[2])
        XCTAssertNil(state.waiting[7])
    }

    // MARK: - The listening socket

    func testListeningSocketIsParkedAtTheBoundAndReArmedWhenOneLeaves() {
        var state = makeState(maximumAcceptedWithoutHead: 2)
        _ = state.start()
        XCTAssertTrue(state.listenReady())
        _ = state.accepted(7, now: at(0))
        _ = state.accepted(8, now: at(0))
        XCTAssertEqual(state.acceptEnded(failure: nil, now: at(1)), [.wakeKeeper])
        XCTAssertEqual(state.listen, .parked)
        XCTAssertFalse(state.listenReady())
        XCTAssertEqual(state.tick(now: at(2)), [], "still two without a head")
        XCTAssertEqual(state.keeperPlan(now: at(2)), .sleep(until: at(5000)), "no pause to wake for")

        // One gets its head: the keeper is woken and re-arms the listening socket.
        XCTAssertEqual(state.take(7, generation: state.waiting[7]!.generation, worker: 0), .taken([.wakeKeeper]))
        XCTAssertEqual(state.acceptedWithoutHead, 1)
        XCTAssertEqual(state.tick(now: at(3)), [.rearmListen])
        XCTAssertEqual(state.listen, .armed)
    }

    func testKeptConnectionsDoNotCountTowardsTheBound() {
        var state = makeState(maximumAcceptedWithoutHead: 1)
        _ = state.start()
        keep(7, at: 0, in: &state)
        XCTAssertEqual(state.tick(now: at(0)), [.rearmListen], "parked while 7 had no head")
        XCTAssertTrue(state.listenReady())
        _ = state.accepted(8, now: at(1))
        XCTAssertEqual(state.acceptEnded(failure: nil, now: at(1)), [.wakeKeeper], "one without a head reaches the bound")
        // The kept connection leaving does not free the listening socket.
        XCTAssertEqual(state.take(7, generation: state.waiting[7]!.generation, worker: 0), .taken([]))
        XCTAssertEqual(state.tick(now: at(2)), [])
        XCTAssertEqual(state.listen, .parked)
    }

    func testAcceptPauseAfterExhaustionIsShorterThanAfterAnotherError() {
        var state = started()
        XCTAssertTrue(state.listenReady())
        XCTAssertEqual(state.acceptEnded(failure: .exhausted, now: at(0)), [.wakeKeeper])
        XCTAssertEqual(state.listen, .parked)
        XCTAssertEqual(state.keeperPlan(now: at(0)), .sleep(until: at(100)))
        XCTAssertEqual(state.tick(now: at(99)), [])
        XCTAssertEqual(state.tick(now: at(100)), [.rearmListen])
        XCTAssertNil(state.acceptPausedUntil)

        XCTAssertTrue(state.listenReady())
        XCTAssertEqual(state.acceptEnded(failure: .other, now: at(200)), [.wakeKeeper])
        XCTAssertEqual(state.keeperPlan(now: at(200)), .sleep(until: at(1200)))
        XCTAssertEqual(state.tick(now: at(1199)), [])
        XCTAssertEqual(state.tick(now: at(1200)), [.rearmListen])
    }

    func testRefusedReArmOfTheListeningSocketPausesAccepts() {
        var state = started()
        XCTAssertTrue(state.listenReady())
        XCTAssertEqual(state.acceptEnded(failure: nil, now: at(0)), [.rearmListen])
        XCTAssertEqual(state.listenRearmRefused(now: at(0)), [.wakeKeeper])
        XCTAssertEqual(state.listen, .parked)
        XCTAssertEqual(state.keeperPlan(now: at(0)), .sleep(until: at(1000)))
        XCTAssertEqual(state.tick(now: at(1000)), [.rearmListen])
    }

    func testRefusedRegistrationOfTheListeningSocketLeavesItOut() {
        var state = started()
        XCTAssertEqual(state.listenRegistrationRefused(), [])
        XCTAssertEqual(state.listen, .removed)
        XCTAssertFalse(state.listenReady())
        XCTAssertEqual(state.tick(now: at(10)), [])
    }

    // MARK: - epoll refusing

    func testRefusedArmClosesTheConnection() {
        var state = started()
        XCTAssertTrue(state.listenReady())
        _ = state.accepted(7, now: at(0))
        XCTAssertEqual(state.armRefused(7), [.close(7)])
        XCTAssertNil(state.waiting[7])
        XCTAssertEqual(state.acceptedWithoutHead, 0)
        XCTAssertEqual(state.armRefused(7), [], "reported twice")
        _ = state.acceptEnded(failure: nil, now: at(0))

        // Refused when the keeper re-arms a connection for its second look.
        keep(8, at: 0, in: &state)
        _ = state.take(8, generation: state.waiting[8]!.generation, worker: 0)
        _ = state.looked(worker: 0, .incomplete(peerGone: false), now: at(10))
        XCTAssertEqual(state.tick(now: at(60)).count, 1)
        XCTAssertEqual(state.armRefused(8), [.close(8)])
        XCTAssertTrue(state.waiting.isEmpty)
    }

    // MARK: - When the keeper wakes

    func testKeeperSleepsUntilTheEarliestDueInstant() {
        var state = started()
        XCTAssertEqual(state.keeperPlan(now: at(0)), .sleepUntilSignalled)
        keep(7, at: 0, in: &state)                  // idle until 120 s
        accept(8, at: 1000, into: &state)           // head due at 6 s
        XCTAssertEqual(state.keeperPlan(now: at(1000)), .sleep(until: at(6000)))
        XCTAssertEqual(state.keeperWakesAt, at(6000))

        // Something due later than the planned wake does not wake the keeper; something sooner does.
        XCTAssertTrue(state.listenReady())
        XCTAssertEqual(state.accepted(9, now: at(1500)), [.register(9, generation: 4)])
        _ = state.acceptEnded(failure: nil, now: at(1500))
        _ = state.take(7, generation: state.waiting[7]!.generation, worker: 0)
        let partial = state.looked(worker: 0, .incomplete(peerGone: false), now: at(2000))
        XCTAssertEqual(partial.last, .wakeKeeper, "a second look at 2.05 s is due before 6 s")
        XCTAssertEqual(state.tick(now: at(2001)), [])
        XCTAssertNil(state.keeperWakesAt, "awake: every due instant signals")
        XCTAssertEqual(state.keeperPlan(now: at(2001)), .sleep(until: at(2050)))
    }

    // MARK: - Stopping

    func testStopRemovesTheListeningSocketAndShortensIdleKeptDeadlines() {
        var state = started()
        keep(7, at: 0, in: &state)                  // idle since 0: until 120 s
        keep(8, at: 0, worker: 1, in: &state)
        _ = state.take(8, generation: state.waiting[8]!.generation, worker: 1)
        _ = state.looked(worker: 1, .incomplete(peerGone: false), now: at(1000))   // part of a head
        accept(9, at: 1000, into: &state)

        XCTAssertEqual(state.stopRequested(), [.removeListen, .wakeKeeper])
        XCTAssertEqual(state.listen, .removed)
        XCTAssertEqual(state.waiting[7]?.deadline, at(4000), "idle kept: drainIdleTimeout after its last request")
        XCTAssertEqual(state.waiting[8]?.deadline, at(6000), "a head under way keeps its deadline")
        XCTAssertEqual(state.waiting[9]?.deadline, at(6000), "a new connection keeps its deadline")
        XCTAssertEqual(state.stopRequested(), [.wakeKeeper], "a second stop changes nothing")
        XCTAssertEqual(state.waiting[7]?.deadline, at(4000))
        XCTAssertFalse(state.listenReady())

        XCTAssertEqual(state.tick(now: at(1000)), [.log(.drainStarted(waiting: 3))])
        XCTAssertEqual(state.drainDeadline, at(31_000))
        XCTAssertEqual(state.tick(now: at(4000)), [
            .log(.idleKeptConnectionClosed), .close(7), .arm(8, generation: 7, watchingInput: true),
        ])
    }

    func testKeptConnectionPutBackWhileStoppingGetsTheDrainIdleDeadline() {
        var state = started()
        serve(7, at: 0, worker: 0, in: &state)
        _ = state.stopRequested()
        _ = state.tick(now: at(100))
        let actions = state.requestDone(7, worker: 0, reusable: true, now: at(1000))
        XCTAssertEqual(actions.first, .wakeKeeper)
        XCTAssertTrue(actions.contains(.arm(7, generation: 2, watchingInput: true)))
        XCTAssertEqual(state.waiting[7]?.deadline, at(5000))
        XCTAssertEqual(state.keeperPlan(now: at(1000)), .sleep(until: at(5000)))
    }

    func testStopRemovesAParkedListeningSocketForGood() {
        var state = started()
        serve(7, at: 0, worker: 0, in: &state)
        XCTAssertTrue(state.listenReady())
        _ = state.acceptEnded(failure: .other, now: at(0))
        XCTAssertEqual(state.listen, .parked)
        XCTAssertEqual(state.stopRequested(), [.removeListen, .wakeKeeper])
        XCTAssertEqual(state.listen, .removed)
        XCTAssertEqual(state.tick(now: at(2000)), [.log(.drainStarted(waiting: 0))], "re-armed after the pause")
        XCTAssertEqual(state.keeperPlan(now: at(2000)), .sleep(until: at(32_000)))
    }

    func testStopWhileAcceptingRemovesTheListeningSocketAfterTheBurst() {
        var state = started()
        XCTAssertTrue(state.listenReady())
        XCTAssertEqual(state.stopRequested(), [.wakeKeeper])
        XCTAssertEqual(state.listen, .inHand)
        XCTAssertEqual(state.acceptEnded(failure: nil, now: at(0)), [.removeListen])
        XCTAssertEqual(state.listen, .removed)
    }

    func testStopBeforeTheStartNeverWatchesTheListeningSocket() {
        var state = makeState()
        _ = state.stopRequested()
        XCTAssertEqual(state.start(), [])
        XCTAssertEqual(state.tick(now: at(0)), [.log(.drainStarted(waiting: 0)), .wakeWorkersToLeave])
        XCTAssertEqual(state.keeperPlan(now: at(0)), .leave(.drained))
    }

    func testDrainEndsWhenNothingWaitsAndNoWorkerHoldsAConnection() {
        var state = started()
        serve(7, at: 0, worker: 0, in: &state)
        _ = state.stopRequested()
        XCTAssertEqual(state.tick(now: at(100)), [.log(.drainStarted(waiting: 0))])
        XCTAssertEqual(state.keeperPlan(now: at(100)), .sleep(until: at(30_100)))

        // The worker lets go before it closes, and wakes the keeper.
        XCTAssertEqual(state.requestDone(7, worker: 0, reusable: false, now: at(500)), [.wakeKeeper, .close(7)])
        XCTAssertEqual(state.tick(now: at(501)), [.wakeWorkersToLeave])
        XCTAssertEqual(state.exit, .drained)
        XCTAssertEqual(state.keeperPlan(now: at(501)), .leave(.drained))
        XCTAssertEqual(state.take(7, generation: 1, worker: 0), .stale)
    }

    func testDrainEndsAtOnceWhenTheLastConnectionExpires() {
        var state = started()
        keep(7, at: 0, in: &state)
        _ = state.stopRequested()
        _ = state.tick(now: at(100))
        XCTAssertEqual(state.keeperPlan(now: at(100)), .sleep(until: at(4000)))
        XCTAssertEqual(state.tick(now: at(4000)), [.log(.idleKeptConnectionClosed), .close(7)])
        XCTAssertEqual(state.keeperPlan(now: at(4000)), .tickAgain)
        XCTAssertEqual(state.tick(now: at(4000)), [.wakeWorkersToLeave])
        XCTAssertEqual(state.keeperPlan(now: at(4000)), .leave(.drained))
    }

    func testDrainTimeoutShutsDownHeldConnectionsAndClosesWaitingOnes() {
        var state = started()
        serve(7, at: 0, worker: 0, in: &state)
        serve(9, at: 0, worker: 1, in: &state)
        keep(10, at: 0, worker: 2, in: &state)
        accept(8, at: 0, into: &state)
        _ = state.stopRequested()
        _ = state.tick(now: at(1000))
        XCTAssertEqual(state.drainDeadline, at(31_000))

        // Connection 10 carries another request, still running at the drain deadline.
        _ = state.take(10, generation: state.waiting[10]!.generation, worker: 2)
        XCTAssertEqual(state.looked(worker: 2, .complete, now: at(2000)), [])
        XCTAssertEqual(state.tick(now: at(5000)), [.log(.noHeadInTime(timeout: .seconds(5))), .close(8)])
        // Connection 9 is kept late in the drain: its idle deadline lies past the drain's.
        _ = state.requestDone(9, worker: 1, reusable: true, now: at(28_000))
        XCTAssertEqual(state.waiting[9]?.deadline, at(32_000))
        XCTAssertEqual(state.keeperPlan(now: at(28_000)), .sleep(until: at(31_000)))

        XCTAssertEqual(state.tick(now: at(30_999)), [])
        XCTAssertEqual(state.tick(now: at(31_000)), [
            .shutdown(7), .shutdown(10), .close(9), .wakeWorkersToLeave,
            .log(.drainTimedOut(idleConnections: 1, requestsInFlight: 2)),
        ])
        XCTAssertEqual(state.keeperPlan(now: at(31_000)), .leave(.drainTimedOut))
        XCTAssertEqual(state.busy.count, 2, "their workers still own the descriptors")

        // A worker finishing after the end closes its connection instead of keeping it.
        XCTAssertEqual(state.requestDone(7, worker: 0, reusable: true, now: at(31_500)), [.wakeKeeper, .close(7)])
        XCTAssertNil(state.waiting[7])
        // Nobody is left to serve a connection accepted after the end.
        XCTAssertEqual(state.accepted(12, now: at(31_600)), [.close(12)])
    }
}
