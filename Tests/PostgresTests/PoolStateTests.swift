import Platform
@testable import Postgres
import TestSupport
import XCTest

/// The pool's decisions, driven with made-up instants: no database, no clock, no threads.
final class PoolStateTests: XCTestCase {
    typealias Action = PoolState.Action

    func at(_ milliseconds: UInt64) -> MonotonicInstant { MonotonicInstant(nanoseconds: milliseconds * 1_000_000) }

    func makeState(size: Int = 2) -> PoolState {
        PoolState(configuration: PoolConfiguration(
            size: size, waitLimit: .seconds(2), idleCheckAfter: .seconds(30), maxLifetime: .seconds(1800)))
    }

    func testFirstLeaseCreatesAndHandsTheNewConnection() {
        var state = makeState()
        XCTAssertEqual(state.lease(1, now: at(0), deadline: at(2000)), [.create(0)])
        XCTAssertEqual(state.stats.connecting, 1)
        XCTAssertEqual(state.stats.waiting, 1)
        XCTAssertEqual(state.connectionCreated(0, now: at(10)), [.hand(0, to: 1, checkFirst: false)])
        XCTAssertEqual(state.stats, .init(open: 1, idle: 0, leased: 1, connecting: 0, waiting: 0))
    }

    func testReleasedConnectionIsReusedWithoutACheckWhenRecentlyUsed() {
        var state = makeState()
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(10))
        XCTAssertEqual(state.release(0, now: at(20), broken: false), [])
        XCTAssertEqual(state.stats.idle, 1)
        XCTAssertEqual(state.lease(2, now: at(1000), deadline: at(3000)), [.hand(0, to: 2, checkFirst: false)])
    }

    func testIdleLongerThanIdleCheckAfterIsCheckedFirst() {
        var state = makeState()
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(10))
        _ = state.release(0, now: at(20), broken: false)
        XCTAssertEqual(state.lease(2, now: at(20 + 30_000), deadline: at(60_000)), [.hand(0, to: 2, checkFirst: true)])
    }

    func testFailedCheckReplacesTheConnectionWithinTheSameLease() {
        var state = makeState(size: 1)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(10))
        _ = state.release(0, now: at(20), broken: false)
        XCTAssertEqual(state.lease(2, now: at(40_000), deadline: at(42_000)), [.hand(0, to: 2, checkFirst: true)])
        // Another request arrives while the check runs: it waits (the pool is full).
        XCTAssertEqual(state.lease(3, now: at(40_001), deadline: at(42_001)), [])
        // The check failed: the connection is closed, a new one is opened for request 2, which
        // keeps its place ahead of request 3.
        XCTAssertEqual(state.checkFailed(0, request: 2, now: at(40_002), deadline: at(42_000)), [.close(0), .create(1)])
        XCTAssertEqual(state.connectionCreated(1, now: at(40_010)), [.hand(1, to: 2, checkFirst: false)])
        XCTAssertEqual(state.release(1, now: at(40_020), broken: false), [.hand(1, to: 3, checkFirst: false)])
    }

    func testPoolNeverExceedsItsSize() {
        var state = makeState(size: 2)
        XCTAssertEqual(state.lease(1, now: at(0), deadline: at(2000)), [.create(0)])
        XCTAssertEqual(state.lease(2, now: at(0), deadline: at(2000)), [.create(1)])
        XCTAssertEqual(state.lease(3, now: at(0), deadline: at(2000)), [])
        XCTAssertEqual(state.lease(4, now: at(0), deadline: at(2000)), [])
        XCTAssertEqual(state.stats.connecting, 2)
        XCTAssertEqual(state.stats.waiting, 4)
    }

    func testOneConnectAttemptPerWaiterNotPerEvent() {
        var state = makeState(size: 4)
        XCTAssertEqual(state.lease(1, now: at(0), deadline: at(2000)), [.create(0)])
        // Nothing else happens while that attempt is in flight: no second attempt for the same waiter.
        XCTAssertEqual(state.tick(now: at(100)), [])
        XCTAssertEqual(state.stats.connecting, 1)
        XCTAssertEqual(state.lease(2, now: at(200), deadline: at(2200)), [.create(1)])
        XCTAssertEqual(state.stats.connecting, 2)
    }

    func testWaitersAreServedFirstComeFirstServed() {
        var state = makeState(size: 1)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(1))
        XCTAssertEqual(state.lease(2, now: at(2), deadline: at(2002)), [])
        XCTAssertEqual(state.lease(3, now: at(3), deadline: at(2003)), [])
        XCTAssertEqual(state.lease(4, now: at(4), deadline: at(2004)), [])
        XCTAssertEqual(state.release(0, now: at(10), broken: false), [.hand(0, to: 2, checkFirst: false)])
        XCTAssertEqual(state.release(0, now: at(20), broken: false), [.hand(0, to: 3, checkFirst: false)])
        XCTAssertEqual(state.release(0, now: at(30), broken: false), [.hand(0, to: 4, checkFirst: false)])
        XCTAssertEqual(state.release(0, now: at(40), broken: false), [])
        XCTAssertEqual(state.stats.idle, 1)
    }

    func testWaiterFailsWhenTheWaitLimitPasses() {
        var state = makeState(size: 1)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(1))
        XCTAssertEqual(state.lease(2, now: at(100), deadline: at(2100)), [])
        XCTAssertEqual(state.tick(now: at(2099)), [])
        XCTAssertEqual(state.nextDeadline, at(2100))
        XCTAssertEqual(state.tick(now: at(2100)), [.fail(2, .timedOut(lastConnectError: nil))])
        XCTAssertEqual(state.stats.waiting, 0)
        // The connection that comes back later goes idle: nobody waits any more.
        XCTAssertEqual(state.release(0, now: at(3000), broken: false), [])
        XCTAssertEqual(state.stats.idle, 1)
    }

    func testExpiredWaiterIsNotHandedAConnectionThatComesBackLate() {
        var state = makeState(size: 1)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(1))
        _ = state.lease(2, now: at(100), deadline: at(2100))
        // No tick happened in between; the release notices the deadline itself.
        XCTAssertEqual(state.release(0, now: at(2500), broken: false), [.fail(2, .timedOut(lastConnectError: nil))])
    }

    func testBrokenConnectionIsClosedAndReplacedForAWaiter() {
        var state = makeState(size: 1)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(1))
        XCTAssertEqual(state.lease(2, now: at(5), deadline: at(2005)), [])
        XCTAssertEqual(state.release(0, now: at(10), broken: true), [.close(0), .create(1)])
        XCTAssertEqual(state.connectionCreated(1, now: at(20)), [.hand(1, to: 2, checkFirst: false)])
    }

    func testBrokenConnectionWithoutWaitersIsReplacedOnlyOnDemand() {
        var state = makeState(size: 1)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(1))
        XCTAssertEqual(state.release(0, now: at(10), broken: true), [.close(0)])
        XCTAssertEqual(state.stats, .init(open: 0, idle: 0, leased: 0, connecting: 0, waiting: 0))
        XCTAssertEqual(state.lease(2, now: at(20), deadline: at(2020)), [.create(1)])
    }

    func testConnectionPastMaxLifetimeIsClosedWhenReleased() {
        var state = makeState(size: 1)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(0))
        XCTAssertEqual(state.release(0, now: at(1_800_000), broken: false), [.close(0)])
    }

    func testIdleConnectionPastMaxLifetimeIsClosedInsteadOfHandedOut() {
        var state = makeState(size: 2)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(0))
        _ = state.release(0, now: at(1_000_000), broken: false)
        XCTAssertEqual(state.lease(2, now: at(1_800_000), deadline: at(1_802_000)), [.close(0), .create(1)])
    }

    func testTickClosesIdleConnectionsPastMaxLifetime() {
        var state = makeState(size: 2)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(0))
        _ = state.release(0, now: at(10), broken: false)
        XCTAssertEqual(state.tick(now: at(1_799_999)), [])
        XCTAssertEqual(state.tick(now: at(1_800_000)), [.close(0)])
        XCTAssertEqual(state.stats.open, 0)
    }

    func testConnectFailureFailsTheWaitersAtOnceAndDoesNotRetryByItself() {
        var state = makeState(size: 2)
        XCTAssertEqual(state.lease(1, now: at(0), deadline: at(2000)), [.create(0)])
        XCTAssertEqual(state.lease(2, now: at(1), deadline: at(2001)), [.create(1)])
        // The first attempt fails: one attempt is still in flight and could serve one waiter.
        XCTAssertEqual(state.connectionFailed(0, reason: "refused", now: at(5)), [.fail(1, .connectFailed("refused"))])
        XCTAssertEqual(state.connectionFailed(1, reason: "refused", now: at(6)), [.fail(2, .connectFailed("refused"))])
        XCTAssertEqual(state.stats, .init(open: 0, idle: 0, leased: 0, connecting: 0, waiting: 0))
        // Nothing more happens until someone asks again.
        XCTAssertEqual(state.tick(now: at(1000)), [])
        XCTAssertEqual(state.lease(3, now: at(1001), deadline: at(3001)), [.create(2)])
        XCTAssertEqual(state.connectionCreated(2, now: at(1002)), [.hand(2, to: 3, checkFirst: false)])
        XCTAssertNil(state.lastConnectError)
    }

    func testConnectFailureKeepsWaitersThatALeasedConnectionCanStillServe() {
        var state = makeState(size: 2)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(1))
        XCTAssertEqual(state.lease(2, now: at(2), deadline: at(2002)), [.create(1)])
        XCTAssertEqual(state.lease(3, now: at(3), deadline: at(2003)), [])
        // Two waiters, one leased connection coming back: only the first waiter fails.
        XCTAssertEqual(state.connectionFailed(1, reason: "too many clients", now: at(10)), [.fail(2, .connectFailed("too many clients"))])
        XCTAssertEqual(state.release(0, now: at(20), broken: false), [.hand(0, to: 3, checkFirst: false)])
    }

    func testTimeoutMentionsTheLastConnectError() {
        var state = makeState(size: 1)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(1))
        _ = state.lease(2, now: at(2), deadline: at(2002))
        _ = state.release(0, now: at(3), broken: true)  // creates 1 for waiter 2
        _ = state.lease(3, now: at(4), deadline: at(2004))
        XCTAssertEqual(state.connectionFailed(1, reason: "refused", now: at(5)), [
            .fail(2, .connectFailed("refused")), .fail(3, .connectFailed("refused")),
        ])
        _ = state.lease(4, now: at(6), deadline: at(2006))  // creates 2
        XCTAssertEqual(state.tick(now: at(2006)), [.fail(4, .timedOut(lastConnectError: "refused"))])
    }

    func testLateConnectionAfterEveryWaiterGaveUpGoesIdle() {
        var state = makeState(size: 1)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        XCTAssertEqual(state.tick(now: at(2000)), [.fail(1, .timedOut(lastConnectError: nil))])
        XCTAssertEqual(state.connectionCreated(0, now: at(3000)), [])
        XCTAssertEqual(state.stats.idle, 1)
    }

    func testZeroWaitLimitFailsAtOnceWhenNothingIsIdle() {
        var state = makeState(size: 1)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(1))
        XCTAssertEqual(state.lease(2, now: at(10), deadline: at(10)), [.fail(2, .timedOut(lastConnectError: nil))])
    }

    func testCloseFailsWaitersAndClosesEverythingAsItComesBack() {
        var state = makeState(size: 2)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(1))
        _ = state.lease(2, now: at(2), deadline: at(2002))  // creates 1
        _ = state.lease(3, now: at(3), deadline: at(2003))
        XCTAssertEqual(state.close(now: at(4)), [.fail(2, .closed), .fail(3, .closed)])
        XCTAssertEqual(state.connectionCreated(1, now: at(5)), [.close(1)])
        XCTAssertEqual(state.release(0, now: at(6), broken: false), [.close(0)])
        XCTAssertEqual(state.lease(4, now: at(7), deadline: at(2007)), [.fail(4, .closed)])
        XCTAssertEqual(state.stats, .init(open: 0, idle: 0, leased: 0, connecting: 0, waiting: 0))
    }

    func testCloseClosesIdleConnections() {
        var state = makeState(size: 2)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(1))
        _ = state.release(0, now: at(2), broken: false)
        XCTAssertEqual(state.close(now: at(3)), [.close(0)])
    }

    func testMostRecentlyUsedIdleConnectionIsHandedFirst() {
        var state = makeState(size: 2)
        _ = state.lease(1, now: at(0), deadline: at(2000))
        _ = state.lease(2, now: at(0), deadline: at(2000))
        _ = state.connectionCreated(0, now: at(1))
        _ = state.connectionCreated(1, now: at(1))
        _ = state.release(0, now: at(10), broken: false)
        _ = state.release(1, now: at(20), broken: false)
        XCTAssertEqual(state.lease(3, now: at(30), deadline: at(2030)), [.hand(1, to: 3, checkFirst: false)])
    }

    /// A long random run: the invariants hold whatever the order of events.
    func testInvariantsUnderRandomEvents() {
        var generator = SplitMix64(seed: 42)
        var state = makeState(size: 3)
        var now: UInt64 = 0
        var nextRequest = 0
        var waiting: Set<Int> = []
        var connecting: Set<Int> = []
        var leased: [Int: Int] = [:]  // connection -> request
        var closed: Set<Int> = []
        var idleKnown: Set<Int> = []

        func apply(_ actions: [Action]) {
            for action in actions {
                switch action {
                case .create(let id):
                    XCTAssertFalse(connecting.contains(id))
                    connecting.insert(id)
                case .hand(let id, let request, _):
                    XCTAssertTrue(waiting.remove(request) != nil, "handed to a request that was not waiting")
                    XCTAssertNil(leased[id], "connection handed twice")
                    XCTAssertFalse(closed.contains(id))
                    idleKnown.remove(id)
                    leased[id] = request
                case .fail(let request, _):
                    XCTAssertTrue(waiting.remove(request) != nil, "failed a request that was not waiting")
                case .close(let id):
                    XCTAssertFalse(closed.contains(id))
                    XCTAssertNil(leased[id], "closed a leased connection")
                    idleKnown.remove(id)
                    closed.insert(id)
                }
            }
            let stats = state.stats
            XCTAssertLessThanOrEqual(stats.open + stats.connecting, 3)
            XCTAssertEqual(stats.leased, leased.count)
            XCTAssertEqual(stats.connecting, connecting.count)
            XCTAssertEqual(stats.waiting, waiting.count)
        }

        for _ in 0..<5000 {
            now += generator.next() % 300
            let instant = at(now)
            switch generator.next() % 6 {
            case 0, 1:
                nextRequest += 1
                waiting.insert(nextRequest)
                apply(state.lease(nextRequest, now: instant, deadline: at(now + 2000)))
            case 2:
                if let id = connecting.randomElement(using: &generator) {
                    connecting.remove(id)
                    if generator.next() % 4 == 0 {
                        apply(state.connectionFailed(id, reason: "refused", now: instant))
                        closed.insert(id)
                    } else {
                        idleKnown.insert(id)
                        apply(state.connectionCreated(id, now: instant))
                    }
                }
            case 3, 4:
                if let (id, _) = leased.randomElement(using: &generator) {
                    leased.removeValue(forKey: id)
                    idleKnown.insert(id)
                    apply(state.release(id, now: instant, broken: generator.next() % 5 == 0))
                }
            default:
                apply(state.tick(now: instant))
            }
        }
    }

    // MARK: requests before bulk work

    func testBulkWorkNeverTakesTheLastConnection() {
        var state = makeState(size: 3)
        XCTAssertEqual(state.bulkLimit, 2)
        XCTAssertEqual(state.lease(1, now: at(0), deadline: at(30_000), priority: .bulk), [.create(0)])
        XCTAssertEqual(state.lease(2, now: at(0), deadline: at(30_000), priority: .bulk), [.create(1)])
        // A third bulk lease waits although a slot is free: it is the requests'.
        XCTAssertEqual(state.lease(3, now: at(0), deadline: at(30_000), priority: .bulk), [])
        XCTAssertEqual(state.connectionCreated(0, now: at(5)), [.hand(0, to: 1, checkFirst: false)])
        XCTAssertEqual(state.connectionCreated(1, now: at(5)), [.hand(1, to: 2, checkFirst: false)])
        // A request gets the last slot at once, ahead of the waiting bulk lease.
        XCTAssertEqual(state.lease(4, now: at(10), deadline: at(2010)), [.create(2)])
        XCTAssertEqual(state.connectionCreated(2, now: at(12)), [.hand(2, to: 4, checkFirst: false)])
        // The request's connection goes idle, not to bulk work over its limit.
        XCTAssertEqual(state.release(2, now: at(20), broken: false), [])
        XCTAssertEqual(state.stats.idle, 1)
        // A bulk connection coming back goes to the waiting bulk lease.
        XCTAssertEqual(state.release(0, now: at(30), broken: false), [.hand(0, to: 3, checkFirst: false)])
    }

    func testARequestIsServedBeforeBulkWorkThatWaitedLonger() {
        var state = makeState(size: 3)
        _ = state.lease(1, now: at(0), deadline: at(30_000), priority: .bulk)
        _ = state.lease(2, now: at(0), deadline: at(30_000))
        _ = state.connectionCreated(0, now: at(1))
        _ = state.connectionCreated(1, now: at(1))
        XCTAssertEqual(state.lease(3, now: at(2), deadline: at(30_000)), [.create(2)])
        _ = state.connectionCreated(2, now: at(3))
        // Every connection is out: bulk work queues first, then a request.
        XCTAssertEqual(state.lease(4, now: at(10), deadline: at(30_000), priority: .bulk), [])
        XCTAssertEqual(state.lease(5, now: at(11), deadline: at(2011)), [])
        XCTAssertEqual(state.release(2, now: at(20), broken: false), [.hand(2, to: 5, checkFirst: false)])
        XCTAssertEqual(state.release(1, now: at(21), broken: false), [.hand(1, to: 4, checkFirst: false)])
    }

    func testAnIdleConnectionIsNotHandedToBulkWorkAheadOfAWaitingRequest() {
        var state = makeState(size: 2)
        XCTAssertEqual(state.bulkLimit, 1)
        _ = state.lease(1, now: at(0), deadline: at(30_000), priority: .bulk)
        _ = state.connectionCreated(0, now: at(1))
        // The pool's second connection is the requests': bulk waits for the first.
        XCTAssertEqual(state.lease(2, now: at(2), deadline: at(30_000), priority: .bulk), [])
        XCTAssertEqual(state.lease(3, now: at(3), deadline: at(2003)), [.create(1)])
        XCTAssertEqual(state.connectionCreated(1, now: at(4)), [.hand(1, to: 3, checkFirst: false)])
        XCTAssertEqual(state.release(0, now: at(5), broken: false), [.hand(0, to: 2, checkFirst: false)])
    }

    func testAPoolOfOneServesBulkWorkToo() {
        var state = makeState(size: 1)
        XCTAssertEqual(state.bulkLimit, 1)
        XCTAssertEqual(state.lease(1, now: at(0), deadline: at(30_000), priority: .bulk), [.create(0)])
        XCTAssertEqual(state.connectionCreated(0, now: at(1)), [.hand(0, to: 1, checkFirst: false)])
    }

    func testAFailedCheckKeepsABulkLeaseWithinItsLimit() {
        var state = makeState(size: 2)
        _ = state.lease(1, now: at(0), deadline: at(30_000), priority: .bulk)
        _ = state.connectionCreated(0, now: at(1))
        _ = state.release(0, now: at(2), broken: false)
        XCTAssertEqual(state.lease(2, now: at(40_000), deadline: at(70_000), priority: .bulk), [.hand(0, to: 2, checkFirst: true)])
        XCTAssertEqual(state.checkFailed(0, request: 2, now: at(40_001), deadline: at(70_000), priority: .bulk), [.close(0), .create(1)])
        XCTAssertEqual(state.lease(3, now: at(40_002), deadline: at(42_002)), [.create(2)])
        XCTAssertEqual(state.connectionCreated(2, now: at(40_003)), [.hand(2, to: 3, checkFirst: false)])
        XCTAssertEqual(state.connectionCreated(1, now: at(40_004)), [.hand(1, to: 2, checkFirst: false)])
    }
}
