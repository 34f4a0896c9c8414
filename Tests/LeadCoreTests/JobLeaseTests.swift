import LeadCore
import Platform
import XCTest

/// The lease with made-up instants: when a runner renews, and when it must stop.
final class JobLeaseTests: XCTestCase {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)
    func at(_ seconds: Double) -> MonotonicInstant { t0 + .nanoseconds(Int64(seconds * 1e9)) }

    func testTheStandardTimingTakesADeadRunnersJobUpWithin30Seconds() {
        let timing = LeaseTiming.standard
        XCTAssertTrue(timing.isSound)
        XCTAssertLessThan(timing.longestTakeover, .seconds(30))
        XCTAssertLessThan(timing.renewEvery, timing.duration - timing.stopMargin)
        // Two renewals can fail before the third must land.
        XCTAssertGreaterThanOrEqual((timing.duration - timing.stopMargin) / timing.renewEvery, 2)
    }

    func testUnsoundTimings() {
        var timing = LeaseTiming.standard
        timing.duration = .seconds(30)
        XCTAssertFalse(timing.isSound, "a dead runner's job would wait past 30 s")
        timing = .standard
        timing.renewEvery = .seconds(12)
        XCTAssertFalse(timing.isSound, "no renewal before the stop")
        timing = .standard
        timing.stopMargin = .zero
        XCTAssertFalse(timing.isSound, "a runner would work up to the last instant of its lease")
    }

    func testRenewsOnScheduleAndEachGrantMovesTheStop() {
        var lease = JobLease(claimSentAt: t0)
        XCTAssertEqual(lease.action(now: t0), .carryOn(until: at(5)))
        XCTAssertEqual(lease.action(now: at(4.999)), .carryOn(until: at(5)))
        XCTAssertEqual(lease.action(now: at(5)), .renew)
        lease.renewalSent(at: at(5))
        XCTAssertEqual(lease.action(now: at(5.1)), .carryOn(until: at(12)), "no second renewal while one is in flight")
        lease.granted(sentAt: at(5))
        XCTAssertEqual(lease.stopAt, at(17))
        XCTAssertEqual(lease.action(now: at(6)), .carryOn(until: at(10)))
        XCTAssertEqual(lease.action(now: at(10)), .renew)
        XCTAssertTrue(lease.mayCommit(now: at(16.9)))
        XCTAssertFalse(lease.mayCommit(now: at(17)))
    }

    func testABatchCommitRenewsTheLease() {
        var lease = JobLease(claimSentAt: t0)
        lease.granted(sentAt: at(3))
        XCTAssertEqual(lease.action(now: at(5)), .carryOn(until: at(8)), "the commit at 3 s counts as a renewal")
        XCTAssertEqual(lease.stopAt, at(15))
        // A late answer for an older statement never moves the lease back.
        lease.granted(sentAt: at(1))
        XCTAssertEqual(lease.stopAt, at(15))
    }

    func testARenewalInFlightWhenACommitIsGrantedStaysInFlight() {
        var lease = JobLease(claimSentAt: t0)
        lease.renewalSent(at: at(5))
        lease.granted(sentAt: at(4))
        XCTAssertEqual(lease.renewalSentAt, at(5))
        XCTAssertEqual(lease.action(now: at(6)), .carryOn(until: at(16)))
    }

    func testARunnerThatCannotRenewStopsBeforeItsLeaseRunsOut() {
        var lease = JobLease(claimSentAt: t0)
        var now = at(5)
        var renewals = 0
        // The database is unreachable: every renewal fails after 0.5 s.
        while case .renew = lease.action(now: now) {
            renewals += 1
            lease.renewalSent(at: now)
            now = now + .milliseconds(500)
            lease.renewalFailed(at: now)
            XCTAssertEqual(lease.action(now: now), .carryOn(until: min(now + .seconds(1), at(12))), "a pause before the next try")
            now = now + .seconds(1)
        }
        XCTAssertEqual(lease.action(now: now), .stop)
        XCTAssertGreaterThanOrEqual(now, lease.stopAt)
        XCTAssertLessThan(now, at(13.5), "stopped within a try of the stop, well before the 15 s lease")
        XCTAssertGreaterThanOrEqual(renewals, 4)
        XCTAssertEqual(lease.stopAt, at(12))
    }

    func testARenewalThatNeverAnswersStopsTheRunnerInTime() {
        var lease = JobLease(claimSentAt: t0)
        lease.renewalSent(at: at(5))
        XCTAssertEqual(lease.action(now: at(11.99)), .carryOn(until: at(12)))
        XCTAssertEqual(lease.action(now: at(12)), .stop)
        // The answer comes after the stop: the grant is real, and the runner may go on, renewing.
        lease.granted(sentAt: at(5))
        XCTAssertEqual(lease.stopAt, at(17))
        XCTAssertEqual(lease.action(now: at(12)), .renew)
    }

    func testALostLeaseStopsForGood() {
        var lease = JobLease(claimSentAt: t0)
        lease.renewalSent(at: at(5))
        lease.lost()
        XCTAssertEqual(lease.action(now: at(5.1)), .stop)
        lease.granted(sentAt: at(6))
        XCTAssertEqual(lease.action(now: at(6)), .stop, "nothing brings a lost lease back")
        XCTAssertFalse(lease.mayCommit(now: at(6)))
    }

    func testAFailureClearsOnTheNextGrant() {
        var lease = JobLease(claimSentAt: t0)
        lease.renewalSent(at: at(5))
        lease.renewalFailed(at: at(5.2))
        XCTAssertEqual(lease.action(now: at(5.5)), .carryOn(until: at(6.2)))
        lease.renewalSent(at: at(6.2))
        lease.granted(sentAt: at(6.2))
        XCTAssertNil(lease.lastFailureAt)
        XCTAssertEqual(lease.action(now: at(7)), .carryOn(until: at(11.2)))
    }
}
