import Platform

/// How long a runner's hold on a job lasts, and how it keeps it.
///
/// The database stamps every grant with its own clock (`now() + duration`), so that processes on
/// hosts whose clocks differ agree on when a lease runs out. The runner measures on its own
/// monotonic clock from when it *sent* the statement, which is before the database stamped it:
/// its deadline is never later than the database's.
public struct LeaseTiming: Sendable, Equatable {
    /// A grant lasts this long from the moment the database made it.
    public var duration: Duration
    /// A runner renews once its grant is this old.
    public var renewEvery: Duration
    /// A runner stops this long before its grant could run out, renewed or not.
    public var stopMargin: Duration
    /// After a renewal that failed (the database away), the next try waits this long.
    public var retryPause: Duration
    /// Processes with nothing to run look for a job this often: a queued one, or one whose
    /// runner's lease ran out.
    public var pollEvery: Duration

    public init(duration: Duration, renewEvery: Duration, stopMargin: Duration, retryPause: Duration, pollEvery: Duration) {
        self.duration = duration
        self.renewEvery = renewEvery
        self.stopMargin = stopMargin
        self.retryPause = retryPause
        self.pollEvery = pollEvery
    }

    /// A runner gets two more tries after a failed renewal before it must stop; a job whose
    /// runner died is taken up within `longestTakeover` (20 s), under the contract's 30 s.
    public static let standard = LeaseTiming(duration: .seconds(15), renewEvery: .seconds(5), stopMargin: .seconds(3),
                                             retryPause: .seconds(1), pollEvery: .seconds(5))

    /// The longest a job waits after its runner died: the last grant runs out, then some
    /// process's next poll finds it.
    public var longestTakeover: Duration { duration + pollEvery }

    /// Renewals come before the stop, the stop before the lease runs out, and a dead runner's
    /// job is taken up within the contract's 30 s.
    public var isSound: Bool {
        stopMargin > .zero && renewEvery > .zero && retryPause > .zero && pollEvery > .zero
            && renewEvery < duration - stopMargin && longestTakeover < .seconds(30)
    }
}

/// A runner's hold on one job, on its monotonic clock: when to renew, and when it must stop
/// because the lease could run out before a renewal lands. Stopping in time keeps a runner from
/// working on after another process took the job over; the database refuses such a runner's
/// commits anyway (every write names the lease), so this is about not wasting the work.
public struct JobLease: Sendable, Equatable {
    public let timing: LeaseTiming
    /// When the statement behind the grant in hand was sent: the database stamped it later.
    public private(set) var grantedFrom: MonotonicInstant
    public private(set) var renewalSentAt: MonotonicInstant?
    public private(set) var lastFailureAt: MonotonicInstant?
    /// The database said the lease is gone: another runner holds it, or the job was cancelled
    /// or has ended.
    public private(set) var isLost = false

    /// A lease from a claim that was sent at `claimSentAt`.
    public init(claimSentAt: MonotonicInstant, timing: LeaseTiming = .standard) {
        self.timing = timing
        grantedFrom = claimSentAt
    }

    public enum Action: Equatable, Sendable {
        /// Nothing to do for the lease before `until`.
        case carryOn(until: MonotonicInstant)
        /// Send a renewal now (`renewalSent`, then `granted`, `renewalFailed` or `lost`).
        case renew
        /// Stop: start no batch, commit nothing more, let the job go.
        case stop
    }

    /// When the runner must stop unless a later grant comes first.
    public var stopAt: MonotonicInstant { grantedFrom + timing.duration + .nanoseconds(-timing.stopMargin.nanoseconds) }

    public func action(now: MonotonicInstant) -> Action {
        if isLost || now >= stopAt { return .stop }
        if renewalSentAt != nil { return .carryOn(until: stopAt) }
        var renewAt = grantedFrom + timing.renewEvery
        if let lastFailureAt { renewAt = max(renewAt, lastFailureAt + timing.retryPause) }
        if now >= renewAt { return .renew }
        return .carryOn(until: min(renewAt, stopAt))
    }

    /// Whether a batch may start committing now. A commit that starts in time is safe even if
    /// it ends late: it holds the job's row lock, so no claimer can take the job meanwhile.
    public func mayCommit(now: MonotonicInstant) -> Bool { action(now: now) != .stop }

    public mutating func renewalSent(at now: MonotonicInstant) {
        renewalSentAt = now
    }

    /// The database extended the lease, by a renewal or by a batch commit (each commit renews),
    /// for a statement sent at `sentAt`.
    public mutating func granted(sentAt: MonotonicInstant) {
        guard !isLost else { return }
        grantedFrom = max(grantedFrom, sentAt)
        if let pending = renewalSentAt, pending <= sentAt { renewalSentAt = nil }
        lastFailureAt = nil
    }

    /// A renewal failed without an answer from the database about the lease (connection lost,
    /// timeout): try again after a pause, until `stopAt`.
    public mutating func renewalFailed(at now: MonotonicInstant) {
        renewalSentAt = nil
        lastFailureAt = now
    }

    /// The database answered that this runner no longer holds the lease.
    public mutating func lost() {
        isLost = true
        renewalSentAt = nil
    }
}
