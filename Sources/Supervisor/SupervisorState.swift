import Platform

// The supervisor's decisions, with no I/O: what to start, whom to signal, when. `Supervisor` feeds
// it what happened (a child started, reported ready, exited; a signal; time passing) and carries
// out the actions it returns. Everything here is tested without processes.

/// How a child process ended, decoded from a `waitpid` status.
struct ChildExitStatus: Equatable, Sendable, CustomStringConvertible {
    enum Kind: Equatable, Sendable {
        case exited(code: Int32)
        case signaled(signal: Int32, coreDumped: Bool)
    }

    let kind: Kind

    init(_ kind: Kind) { self.kind = kind }

    /// Decodes a status from `waitpid` (the WIFEXITED / WTERMSIG macros, which Swift does not import).
    init(waitStatus status: Int32) {
        let low = status & 0x7f
        if low == 0 {
            kind = .exited(code: (status >> 8) & 0xff)
        } else {
            kind = .signaled(signal: low, coreDumped: status & 0x80 != 0)
        }
    }

    var description: String {
        switch kind {
        case .exited(let code): return "exit \(code)"
        case .signaled(let signal, let core): return "signal \(ProcessSignals.name(of: signal))" + (core ? " (core dumped)" : "")
        }
    }
}

/// The restart delay of one slot. A child that dies soon after it started (before it was ready or
/// within `healthyLifetime`) counts as a failure: the first one is replaced at once, the next ones
/// after 100 ms, 200 ms, 400 ms ..., never more than `cap`. A child that was ready and lived longer
/// resets the count, so a crash of a long-lived child is always replaced at once.
struct RestartBackoff: Equatable, Sendable {
    var base: Duration = .milliseconds(100)
    var cap: Duration = .seconds(1)
    var healthyLifetime: Duration = .seconds(1)
    private(set) var consecutiveFailures = 0

    /// Records an exit and returns how long to wait before starting the replacement.
    mutating func delayAfterExit(lifetime: Duration, wasReady: Bool) -> Duration {
        if wasReady && lifetime >= healthyLifetime {
            consecutiveFailures = 0
            return .zero
        }
        return delayAfterFailure()
    }

    /// Records a failure to start (spawn error, no ready report) and returns the delay.
    mutating func delayAfterFailure() -> Duration {
        consecutiveFailures += 1
        if consecutiveFailures == 1 { return .zero }
        var delay = base
        var step = 2
        while step < consecutiveFailures && delay < cap {
            delay = delay * 2
            step += 1
        }
        return min(delay, cap)
    }
}

/// What a child is for.
enum ChildRole: Equatable, Sendable {
    /// The slot's child: started at start-up or as a replacement. It may still be starting.
    case serving
    /// The replacement a reload started for a slot; it becomes `serving` when it reports ready.
    case candidate
    /// Told to stop (replaced by a reload, or failed to start): its exit is expected.
    case retiring
}

struct SupervisedChild: Equatable, Sendable {
    let pid: Int32
    let slot: Int
    var role: ChildRole
    let startedAt: MonotonicInstant
    var readyAt: MonotonicInstant?
    /// Until when it may take to report ready; nil once ready or once it is being stopped.
    var readyDeadline: MonotonicInstant?
    var terminateSent = false
    /// When SIGKILL follows the SIGTERM; nil while it was not asked to stop.
    var killDeadline: MonotonicInstant?
    var killSent = false
}

/// Something worth one log line.
enum SupervisorEvent: Equatable, Sendable {
    enum StartReason: String, Sendable { case initial, replacement, reload }

    case childStarted(pid: Int32, slot: Int, reason: StartReason)
    case childReady(pid: Int32, slot: Int, after: Duration)
    case childExited(pid: Int32, slot: Int, status: ChildExitStatus, expected: Bool, lifetime: Duration)
    case replacementScheduled(slot: Int, delay: Duration)
    case spawnFailed(slot: Int, message: String)
    case childNotReady(pid: Int32, slot: Int, timeout: Duration)
    case childClosedReadiness(pid: Int32, slot: Int)
    case childReplaced(old: Int32, new: Int32, slot: Int)
    case reloadStarted(children: Int)
    case reloadQueued
    case reloadIgnored
    case reloadComplete(replaced: Int)
    case reloadAbandoned(slot: Int, reason: String)
    case stopping(signal: String, children: Int)
    case killingStragglers(pids: [Int32], reason: String)
    case stopped
}

enum SupervisorAction: Equatable, Sendable {
    /// Start a child for `slot`; report the outcome with `spawned` or `spawnFailed`.
    case spawn(slot: Int, role: ChildRole)
    case terminate(pid: Int32)
    case kill(pid: Int32)
    case log(SupervisorEvent)
    /// Every child is gone after a stop: close the socket and return.
    case finished
}

/// The supervisor's state machine.
struct SupervisorState: Sendable {
    let processes: Int
    let stopTimeout: Duration
    let readyTimeout: Duration

    private(set) var children: [Int32: SupervisedChild] = [:]
    private(set) var stopping = false
    private(set) var finished = false

    struct Slot: Equatable, Sendable {
        var backoff = RestartBackoff()
        /// When a replacement is due; nil when none is waiting.
        var respawnAt: MonotonicInstant?
        var everStarted = false
    }
    private(set) var slots: [Slot]

    struct Reload: Equatable, Sendable {
        var requestedAt: MonotonicInstant
        var pending: [Int]
        var slot: Int?
        var candidate: Int32?
        var retiring: Int32?
        var replaced = 0
    }
    private(set) var reload: Reload?
    private(set) var reloadAgain = false

    init(processes: Int, stopTimeout: Duration, readyTimeout: Duration, backoff: RestartBackoff = RestartBackoff()) {
        precondition(processes >= 1, "the supervisor needs at least one child process")
        self.processes = processes
        self.stopTimeout = stopTimeout
        self.readyTimeout = readyTimeout
        self.slots = Array(repeating: Slot(backoff: backoff), count: processes)
    }

    var isReloading: Bool { reload != nil }

    /// The child that serves `slot`, if any.
    func serving(_ slot: Int) -> SupervisedChild? {
        children.values.first { $0.slot == slot && $0.role == .serving }
    }

    func candidate(_ slot: Int) -> SupervisedChild? {
        children.values.first { $0.slot == slot && $0.role == .candidate }
    }

    /// The earliest moment at which `tick` has something to do.
    func nextDeadline() -> MonotonicInstant? {
        var next: MonotonicInstant?
        func consider(_ instant: MonotonicInstant?) {
            guard let instant else { return }
            if next == nil || instant < next! { next = instant }
        }
        if !stopping { for slot in slots { consider(slot.respawnAt) } }
        for child in children.values where !child.killSent {
            consider(child.readyDeadline)
            consider(child.killDeadline)
        }
        return next
    }

    // MARK: - Events

    mutating func start(now: MonotonicInstant) -> [SupervisorAction] {
        (0..<processes).map { .spawn(slot: $0, role: .serving) }
    }

    mutating func spawned(slot: Int, role: ChildRole, pid: Int32, now: MonotonicInstant) -> [SupervisorAction] {
        let reason: SupervisorEvent.StartReason
        if role == .candidate {
            reason = .reload
            reload?.candidate = pid
        } else {
            reason = slots[slot].everStarted ? .replacement : .initial
        }
        slots[slot].everStarted = true
        slots[slot].respawnAt = nil
        children[pid] = SupervisedChild(pid: pid, slot: slot, role: role, startedAt: now, readyDeadline: now + readyTimeout)
        var actions: [SupervisorAction] = [.log(.childStarted(pid: pid, slot: slot, reason: reason))]
        if stopping {
            // A stop arrived while this one was being started (cannot happen with a single thread,
            // but cheap to get right): it goes the way of the others.
            actions += stopChild(pid, now: now)
        }
        return actions
    }

    mutating func spawnFailed(slot: Int, role: ChildRole, message: String, now: MonotonicInstant) -> [SupervisorAction] {
        var actions: [SupervisorAction] = [.log(.spawnFailed(slot: slot, message: message))]
        if role == .candidate, reload?.slot == slot {
            actions += abandonReload(slot: slot, reason: "the new child could not be started")
        }
        if !stopping && serving(slot) == nil && candidate(slot) == nil {
            actions += scheduleRespawn(slot: slot, delay: slots[slot].backoff.delayAfterFailure(), now: now)
        }
        return actions
    }

    mutating func ready(pid: Int32, now: MonotonicInstant) -> [SupervisorAction] {
        guard var child = children[pid], child.readyAt == nil, !child.terminateSent, !child.killSent else { return [] }
        child.readyAt = now
        child.readyDeadline = nil
        var actions: [SupervisorAction] = [.log(.childReady(pid: pid, slot: child.slot, after: now - child.startedAt))]
        guard child.role == .candidate else {
            children[pid] = child
            return actions
        }
        // The reload's new child is accepting: the old one can go.
        let old = serving(child.slot)
        child.role = .serving
        children[pid] = child
        if let old {
            actions.append(.log(.childReplaced(old: old.pid, new: pid, slot: child.slot)))
            actions += retire(old.pid, now: now)
            reload?.candidate = nil
            reload?.retiring = old.pid
        } else {
            reload?.candidate = nil
            reload?.replaced += 1
            actions += advanceReload(now: now)
        }
        return actions
    }

    /// The child closed its readiness pipe without writing the byte.
    mutating func readinessClosed(pid: Int32, now: MonotonicInstant) -> [SupervisorAction] {
        guard let child = children[pid], child.readyAt == nil, !child.killSent, !child.terminateSent else { return [] }
        return [.log(.childClosedReadiness(pid: pid, slot: child.slot))] + failStarting(pid, now: now)
    }

    mutating func exited(pid: Int32, status: ChildExitStatus, now: MonotonicInstant) -> [SupervisorAction] {
        guard let child = children.removeValue(forKey: pid) else { return [] }
        let lifetime = now - child.startedAt
        let expected = stopping || child.role == .retiring
        var actions: [SupervisorAction] = [
            .log(.childExited(pid: pid, slot: child.slot, status: status, expected: expected, lifetime: lifetime)),
        ]
        if stopping {
            if children.isEmpty && !finished {
                finished = true
                actions += [.log(.stopped), .finished]
            }
            return actions
        }
        switch child.role {
        case .retiring:
            if reload?.retiring == pid {
                reload?.retiring = nil
                reload?.replaced += 1
                actions += advanceReload(now: now)
            }
        case .candidate:
            // Died before it reported ready: the reload stops here, the old child stays.
            let delay = slots[child.slot].backoff.delayAfterFailure()
            if reload?.slot == child.slot {
                actions += abandonReload(slot: child.slot, reason: "the new child exited before it was ready (\(status))")
            }
            if serving(child.slot) == nil {
                actions += scheduleRespawn(slot: child.slot, delay: delay, now: now)
            }
        case .serving:
            let delay = slots[child.slot].backoff.delayAfterExit(lifetime: lifetime, wasReady: child.readyAt != nil)
            // While a reload's new child is starting for this slot, it takes the place.
            if candidate(child.slot) == nil {
                actions += scheduleRespawn(slot: child.slot, delay: delay, now: now)
            }
        }
        return actions
    }

    mutating func stopRequested(signal: String, now: MonotonicInstant) -> [SupervisorAction] {
        if stopping {
            // A second stop signal: no more waiting.
            let pids = children.values.filter { !$0.killSent }.map(\.pid).sorted()
            guard !pids.isEmpty else { return [] }
            var actions: [SupervisorAction] = [.log(.killingStragglers(pids: pids, reason: "second \(signal)"))]
            for pid in pids {
                children[pid]?.killSent = true
                actions.append(.kill(pid: pid))
            }
            return actions
        }
        stopping = true
        reload = nil
        reloadAgain = false
        for index in slots.indices { slots[index].respawnAt = nil }
        var actions: [SupervisorAction] = [.log(.stopping(signal: signal, children: children.count))]
        for pid in children.keys.sorted() { actions += stopChild(pid, now: now) }
        if children.isEmpty {
            finished = true
            actions += [.log(.stopped), .finished]
        }
        return actions
    }

    mutating func reloadRequested(now: MonotonicInstant) -> [SupervisorAction] {
        if stopping { return [.log(.reloadIgnored)] }
        if reload != nil {
            reloadAgain = true
            return [.log(.reloadQueued)]
        }
        reload = Reload(requestedAt: now, pending: Array(0..<processes))
        return [.log(.reloadStarted(children: processes))] + advanceReload(now: now)
    }

    /// Timers: replacements that are due, children that did not report ready in time, children
    /// that did not stop in time.
    mutating func tick(now: MonotonicInstant) -> [SupervisorAction] {
        var actions: [SupervisorAction] = []
        if !stopping {
            for index in slots.indices {
                if let due = slots[index].respawnAt, due <= now {
                    slots[index].respawnAt = nil
                    actions.append(.spawn(slot: index, role: .serving))
                }
            }
        }
        for pid in children.keys.sorted() {
            guard let child = children[pid], !child.killSent else { continue }
            if let deadline = child.readyDeadline, deadline <= now, !child.terminateSent {
                actions.append(.log(.childNotReady(pid: pid, slot: child.slot, timeout: readyTimeout)))
                actions += failStarting(pid, now: now)
            } else if let deadline = child.killDeadline, deadline <= now {
                children[pid]?.killSent = true
                actions.append(.log(.killingStragglers(pids: [pid], reason: "still running \(ProcessSignals.describe(stopTimeout)) after SIGTERM")))
                actions.append(.kill(pid: pid))
            }
        }
        return actions
    }

    // MARK: - Steps

    private mutating func scheduleRespawn(slot: Int, delay: Duration, now: MonotonicInstant) -> [SupervisorAction] {
        if delay <= .zero { return [.spawn(slot: slot, role: .serving)] }
        slots[slot].respawnAt = now + delay
        return [.log(.replacementScheduled(slot: slot, delay: delay))]
    }

    /// A child that will not become ready: kill it. Its exit then starts the slot's replacement
    /// (a serving child), or, for a reload's new child, the old one simply stays.
    private mutating func failStarting(_ pid: Int32, now: MonotonicInstant) -> [SupervisorAction] {
        guard var child = children[pid] else { return [] }
        child.readyDeadline = nil
        child.killSent = true
        var actions: [SupervisorAction] = [.kill(pid: pid)]
        if child.role == .candidate {
            child.role = .retiring
            children[pid] = child
            let delay = slots[child.slot].backoff.delayAfterFailure()
            if reload?.slot == child.slot {
                actions += abandonReload(slot: child.slot, reason: "the new child did not report ready")
            }
            if serving(child.slot) == nil {
                actions += scheduleRespawn(slot: child.slot, delay: delay, now: now)
            }
        } else {
            children[pid] = child
        }
        return actions
    }

    /// SIGTERM, with SIGKILL after `stopTimeout`; its exit is expected.
    private mutating func retire(_ pid: Int32, now: MonotonicInstant) -> [SupervisorAction] {
        children[pid]?.role = .retiring
        return stopChild(pid, now: now)
    }

    private mutating func stopChild(_ pid: Int32, now: MonotonicInstant) -> [SupervisorAction] {
        guard var child = children[pid] else { return [] }
        child.readyDeadline = nil
        var actions: [SupervisorAction] = []
        if !child.terminateSent && !child.killSent {
            child.terminateSent = true
            child.killDeadline = now + stopTimeout
            actions.append(.terminate(pid: pid))
        }
        children[pid] = child
        return actions
    }

    private mutating func advanceReload(now: MonotonicInstant) -> [SupervisorAction] {
        guard var progress = reload else { return [] }
        while !progress.pending.isEmpty {
            let slot = progress.pending.removeFirst()
            // A vacant slot's replacement, and a child started after the request, are new already.
            guard let current = serving(slot), current.startedAt < progress.requestedAt,
                  candidate(slot) == nil else { continue }
            progress.slot = slot
            reload = progress
            return [.spawn(slot: slot, role: .candidate)]
        }
        reload = nil
        var actions: [SupervisorAction] = [.log(.reloadComplete(replaced: progress.replaced))]
        if reloadAgain {
            reloadAgain = false
            actions += reloadRequested(now: now)
        }
        return actions
    }

    private mutating func abandonReload(slot: Int, reason: String) -> [SupervisorAction] {
        guard reload != nil else { return [] }
        reload = nil
        reloadAgain = false
        return [.log(.reloadAbandoned(slot: slot, reason: reason))]
    }
}
