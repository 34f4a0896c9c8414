#if canImport(Glibc)
import Glibc
#endif
import LeadCore
import Platform
import Postgres
import Store

/// Runs import jobs: while idle it polls for one (`JobStore.claim`), then imports it batch by
/// batch, each batch committing its leads, rejections, counts and position in one statement, so
/// that whoever resumes the job after a stop or a crash starts exactly after the last batch that
/// committed. One job at a time, planned on the caller's thread, its pages read on a thread of
/// their own and two batches committing at once on two more.
public final class JobRunner: @unchecked Sendable {
    public let connections: any ConnectionSource
    public let store: JobStore
    /// Members per page read, and per batch: a batch never straddles two pages.
    public let batchSize: Int
    /// How long a statement waits for a connection, and how long a batch or a page keeps trying
    /// while the database is unreachable before the job is given back.
    public let waitLimit: Duration
    /// True once the service is stopping: the job under way is given back at its next batch.
    public let stopRequested: @Sendable () -> Bool

    /// Set when this process recorded a job: the idle runner polls at once instead of at its next
    /// period, so a job recorded on an idle service starts within a fraction of a second.
    private let woken = Locked(false)

    /// Batches in flight at once: two keep both of the database's cores busy, as the
    /// synchronous import's two writers do, while the commit statement keeps the outcome exactly
    /// that of one batch after the other (`JobStore.commitSQL`).
    public let batchesInFlight: Int
    /// Told of every job a run of this runner finished (the process's metrics).
    let jobFinished: @Sendable (JobRecord) -> Void

    public init(connections: any ConnectionSource, timing: LeaseTiming = .standard, batchSize: Int = 500, batchesInFlight: Int = 2,
                waitLimit: Duration = .seconds(10), stopRequested: @escaping @Sendable () -> Bool = { false },
                jobFinished: @escaping @Sendable (JobRecord) -> Void = { _ in }) {
        precondition(batchesInFlight >= 1)
        self.jobFinished = jobFinished
        self.connections = connections
        self.store = JobStore(timing: timing)
        self.batchSize = batchSize
        self.batchesInFlight = batchesInFlight
        self.waitLimit = waitLimit
        self.stopRequested = stopRequested
    }

    /// How a run of one job ended, for the caller's log and for tests.
    public enum RunEnd: Equatable, Sendable {
        /// Finished with the synchronous import's status; the record as it ended.
        case finished(JobRecord)
        /// Given back for another run to resume: the service is stopping or the database went.
        case released
        /// The runner no longer holds the job (its lease ran out, another runner took it, it
        /// was cancelled): it wrote nothing more.
        case lost
        /// A job this runner cannot run yet, left to its lease: until it runs out, claims take
        /// other jobs (a job given back would be the first they take).
        case setAside
    }

    /// Polls for jobs and runs them until a stop is requested. The first poll waits one period:
    /// a process that just started owes its pool to the requests that queued while it was
    /// starting (a restart's), and the period is what `longestTakeover` allows any poll anyway.
    public func runUntilStopped() {
        pause(store.timing.pollEvery)
        while !stopRequested() {
            let end = runNext()
            // A job given back is the first any claim takes again: claiming it at once would
            // only meet what made this run give it back.
            if end == nil || end == .released { pause(store.timing.pollEvery) }
        }
    }

    /// Claims one job and runs it; nil when there was none to claim (or the claim failed).
    public func runNext() -> RunEnd? {
        let sent = MonotonicInstant.now()
        let claimed: JobRecord?
        do {
            claimed = try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { try store.claim(on: $0) }
        } catch {
            Log.warning("job claim failed", ["error": describe(error)])
            return nil
        }
        guard let claimed else { return nil }
        // Every line of the run, on every thread it starts, names the job.
        return LogContext.with(LogContext.Fields(jobID: claimed.job.id)) {
            if claimed.resumePosition == 0 && claimed.attempts <= 1 {
                Log.info("job started", ["campaign": claimed.job.campaignID, "list": claimed.job.listID])
            } else {
                Log.info("job resumed", ["position": String(claimed.resumePosition), "attempt": String(claimed.attempts)])
            }
            let end = run(claimed, claimSentAt: sent)
            Memory.returnFreePages()
            switch end {
            case .finished(let record):
                let counts = record.job.counts
                Log.info("job finished", [
                    "status": record.job.httpStatus.map(String.init) ?? "-", "imported": String(counts.imported),
                    "duplicates": String(counts.duplicates), "invalid": String(counts.invalid), "errors": String(counts.errors),
                ])
                jobFinished(record)
            case .released: Log.info("job given back for another run to resume")
            case .lost: Log.info("job no longer held by this runner (cancelled, or its lease taken over)")
            case .setAside: break
            }
            return end
        }
    }

    /// Ends the idle pause early: a job was recorded. A runner busy with a job polls when it is done.
    public func wake() {
        woken.withLock { $0 = true }
    }

    /// Sleeps `duration` in short steps, waking early for a stop or a `wake`.
    private func pause(_ duration: Duration) {
        let until = MonotonicInstant.now() + duration
        while !stopRequested(), MonotonicInstant.now() < until {
            if woken.withLock({ flag in defer { flag = false }; return flag }) { return }
            usleep(UInt32(min(until - MonotonicInstant.now(), .milliseconds(100)).nanoseconds / 1000))
        }
    }

    // MARK: one job

    /// What one run of a job holds.
    private struct Run {
        let hold: JobHold
        let target: ImportTarget
        /// What of the list the job imports (`selectsEverything`: all of it).
        let filter: ImportFilter
        var lease: JobLease
        var record: JobRecord
    }

    /// Why the import loop of a run ended.
    private enum LoopEnd {
        case outcome(ImportOutcome, databaseUnreachable: Bool)
        case lost
    }

    func run(_ claimed: JobRecord, claimSentAt: MonotonicInstant) -> RunEnd {
        guard let hold = claimed.hold else { return .lost }
        let lease = JobLease(claimSentAt: claimSentAt, timing: store.timing)
        let target: ImportTarget?
        do {
            target = try withRetries { try Self.target(of: claimed, on: $0) }
        } catch {
            Log.warning("job target not read", ["error": describe(error)])
            return release(hold)
        }
        guard let target else {
            return end(hold: hold, record: claimed,
                       .outcome(ImportOutcome(counts: claimed.job.counts, end: .stopped(.campaignGone)), databaseUnreachable: false))
        }
        // Checked when the job was recorded; a filter this version cannot read (written by
        // another) must never import the whole list, so the job waits for a runner that can.
        guard case .success(let filter) = ImportFilter.parse(claimed.job.filter) else {
            Log.warning("job set aside: its filter is not one this version runs")
            return .setAside
        }
        var run = Run(hold: hold, target: target, filter: filter, lease: lease, record: claimed)
        let loopEnd = importLoop(&run)
        let ended = end(hold: hold, record: run.record, loopEnd)
        if case .finished = ended, !MemberSelectionLimits.fitsInMemory(filter) {
            // The database's ranking of a finished job is of no more use; a job given back
            // ranks again on its next run.
            try? withRetries { try RankedSelection(id: hold.jobID, order: filter.order).finish(on: $0) }
        }
        return ended
    }

    /// A batch handed to a lane, with the page it was planned from (planned again after a batch
    /// before it failed).
    private struct InFlight {
        let members: [PlannedMember]
        let planned: PlannedJobBatch
        let sent: MonotonicInstant
        let answer: LaneAnswer<Result<BatchCommit, any Error>>
    }

    private func importLoop(_ run: inout Run) -> LoopEnd {
        // The outcome counts every run of the job: a resumed job read pages before.
        var pagesRead = run.record.resumePosition > 0 ? 1 : 0
        // Declared first, so run last: after the readers and the lanes have ended.
        defer { LeadImporter.trimAtEnd(pagesRead) }
        func outcome(_ end: ImportEnd) -> ImportOutcome { ImportOutcome(counts: run.record.job.counts, end: end) }
        let reading = pageReading(run.target, attributeKeys: run.filter.attributeKeys.sorted())
        // A selection in list order is made as pages are read, and resumes from the cursor of
        // the last member it imported; one in another order (leadIds, orderBy) is made before
        // the first batch, every run alike, and resumes from its position.
        var selection: MemberSelection<JobMember>?
        var chosen: ArraySlice<JobMember>?
        // An order over more members than this process holds: ranked by the database, read
        // back from `rankRead` (ranks, which run ahead of positions if members left the list).
        var ranked: RankedSelectionReading?
        var rankRead = run.record.resumePosition
        if !MemberSelectionLimits.fitsInMemory(run.filter) {
            let ranking = RankedSelectionReading(ranked: RankedSelection(id: run.hold.jobID, order: run.filter.order), target: run.target,
                                                 filter: run.filter, pageSize: readSize(run.target))
            do {
                guard try ranking.rank(reading: reading, readAhead: true, connections: connections, waitLimit: waitLimit,
                                       keepGoing: { keepLease(&run) && !stopRequested() }) != nil else {
                    if stopRequested() { return .outcome(outcome(.stopped(.serviceStopping)), databaseUnreachable: false) }
                    return .lost
                }
            } catch {
                Log.warning("job page fetch failed", ["error": describe(error)])
                return .outcome(outcome(.pageFetchFailed(pagesRead: pagesRead)), databaseUnreachable: Self.isUnreachable(error))
            }
            ranked = ranking
        } else if run.filter.memberIDs != nil || !run.filter.order.isEmpty {
            switch choose(run.filter, &run) {
            case .success(let members): chosen = members.dropFirst(run.record.resumePosition)
            case .failure(.lost): return .lost
            case .failure(.stopping): return .outcome(outcome(.stopped(.serviceStopping)), databaseUnreachable: false)
            case .failure(.unreadable(let unreachable)):
                return .outcome(outcome(.pageFetchFailed(pagesRead: pagesRead)), databaseUnreachable: unreachable)
            }
        } else if !run.filter.selectsEverything {
            selection = MemberSelection(filter: run.filter, taken: run.record.resumePosition) { $0.member }
        }
        var cursor = run.record.resumeCursor.flatMap(ListCursor.init(text:))
        // Reading from the start again would count the members before the position twice.
        guard cursor != nil || run.record.resumePosition == 0 || chosen != nil || ranked != nil else {
            Log.error("job resume cursor unreadable", ["position": String(run.record.resumePosition)])
            return .lost
        }
        // The next pages are read while the batches before commit: the database and this process
        // each wait for the other less. Without threads, pages are read in turn.
        let readAhead = chosen != nil || ranked != nil || selection?.isComplete == true
            ? nil : try? JobReadAhead(reading, from: cursor, pageSize: readSize(run.target))
        defer { readAhead?.stop() }
        // Without lanes, each batch commits on this thread before the next is planned.
        let lanes = batchesInFlight > 1 ? try? BatchLanes(count: batchesInFlight, name: "job-writer") : nil
        defer { lanes?.stop() }

        var inFlight: [InFlight] = []
        // Pages read whose batch is to be sent again (it was in flight behind one that failed).
        var again: [[PlannedMember]] = []
        var plannedThrough = run.record.resumePosition
        // The leads of the batch planned last, whose repeats the next batch settles; of the batch
        // committed last once nothing is in flight. A resumed run knows none: the commit settles
        // repeats of the batch before it against the campaign.
        var previous = BatchIdentities.none
        var readEnd: (end: ImportEnd, unreachable: Bool)?
        var stopping = false
        // The next batch, planned while the ones in flight commit, sent as soon as one has.
        var ready: (members: [PlannedMember], planned: PlannedJobBatch)?

        enum Prepared { case batch([PlannedMember], PlannedJobBatch), none, lost }
        func prepare() -> Prepared {
            while true {
                var members: [PlannedMember]
                if !again.isEmpty {
                    members = again.removeFirst()
                } else {
                    guard readEnd == nil else { return .none }
                    guard keepLease(&run) else { return .lost }
                    var listed: [JobMember]
                    if let ranking = ranked {
                        do {
                            let (count, members) = try withRetries { try ranking.members(after: rankRead, on: $0) }
                            rankRead += count
                            listed = members
                            if count < readSize(run.target) { readEnd = (.completed, false) }
                        } catch {
                            Log.warning("job page fetch failed", ["error": describe(error)])
                            readEnd = (.pageFetchFailed(pagesRead: pagesRead), Self.isUnreachable(error))
                            return .none
                        }
                        pagesRead += 1
                        // As the synchronous import: a job's stages fragment the arenas too.
                        LeadImporter.trimNowAndThen(pagesRead)
                    } else if let rest = chosen {
                        listed = Array(rest.prefix(batchSize))
                        chosen = rest.dropFirst(batchSize)
                        if chosen?.isEmpty != false { readEnd = (.completed, false) }
                    } else if selection?.isComplete == true {
                        // A limit reached by the runs before: nothing is left to read.
                        readEnd = (.completed, false)
                        return .none
                    } else {
                        var page: JobPages.Page
                        do {
                            page = try readAhead?.next() ?? reading.page(after: cursor)
                        } catch {
                            Log.warning("job page fetch failed", ["error": describe(error)])
                            readEnd = (.pageFetchFailed(pagesRead: pagesRead), Self.isUnreachable(error))
                            return .none
                        }
                        pagesRead += 1
                        LeadImporter.trimNowAndThen(pagesRead)
                        // Taken, not shared: `plannedBatches` moves the members out of it.
                        (listed, page.members) = (page.members, [])
                        if selection != nil { listed = selection!.take(listed) }
                        if page.read >= readSize(run.target), let last = page.last, selection?.isComplete != true {
                            cursor = last
                        } else {
                            readEnd = (.completed, false)
                        }
                    }
                    let after = plannedThrough
                    plannedThrough += listed.count
                    var batches = Self.plannedBatches(moving: &listed, after: after, batchSize: batchSize)
                    guard !batches.isEmpty else { continue }
                    members = batches.removeFirst()
                    // A page of more than a batch: its other batches are planned next, in order.
                    again.insert(contentsOf: batches, at: 0)
                }
                let planned = PlannedJobBatch.of(members, after: members[0].position - 1, channel: run.target.channel, repeating: previous)
                previous = planned.identities
                return .batch(members, planned)
            }
        }

        while true {
            while !stopping {
                if stopRequested() {
                    stopping = true
                    break
                }
                if ready == nil {
                    switch prepare() {
                    case .batch(let members, let planned): ready = (members, planned)
                    case .none: break
                    case .lost: return .lost
                    }
                }
                guard let next = ready, inFlight.count < batchesInFlight else { break }
                guard run.lease.mayCommit(now: .now()) else { return .lost }
                inFlight.append(send(next.planned, members: next.members, hold: run.hold, lanes: lanes))
                ready = nil
            }
            guard !inFlight.isEmpty else { break }
            let first = inFlight.removeFirst()
            let answer = first.answer.wait()
            if case .success(.committed(let record)) = answer {
                run.record = record
                run.lease.granted(sentAt: first.sent)
                continue
            }
            // The batches behind it commit only once it did: they end soon after it (committed
            // only if it did, its answer lost with its connection).
            let behind = inFlight
            inFlight = []
            for batch in behind { _ = batch.answer.wait() }
            if stopping { break }
            switch recover(from: answer, of: [first] + behind, &run) {
            case .goOn(let pages, let committed):
                // The batch planned ahead is planned again too, after them.
                again = pages + (ready.map { [$0.members] } ?? []) + again
                ready = nil
                previous = committed
            case .lost:
                return .lost
            case .stopped(let stop):
                return .outcome(outcome(.stopped(stop)), databaseUnreachable: false)
            }
        }
        if let readEnd, again.isEmpty, ready == nil { return .outcome(outcome(readEnd.end), databaseUnreachable: readEnd.unreachable) }
        return .outcome(outcome(.stopped(.serviceStopping)), databaseUnreachable: false)
    }

    /// `listed` (emptied) as batches of at most `batchSize` members at their places, the first
    /// right after `after`. Each member is moved, not copied: a copy retains every string of the
    /// member and the page's end releases them all again, a large share of a job's own CPU
    /// (docs/performance.md).
    static func plannedBatches(moving listed: inout [JobMember], after: Int, batchSize: Int) -> [[PlannedMember]] {
        var batches: [[PlannedMember]] = []
        var batch: [PlannedMember] = []
        batch.reserveCapacity(min(batchSize, listed.count))
        var position = after
        for index in listed.indices {
            // The page keeps only ids and cursors.
            position += 1
            batch.append(PlannedMember(position: position, memberID: listed[index].id,
                                       member: moveOut(of: &listed[index].member, leaving: ListMember()),
                                       resumeAfter: listed[index].cursor))
            if batch.count == batchSize {
                batches.append(batch)
                batch = []
                batch.reserveCapacity(min(batchSize, listed.count - index - 1))
            }
        }
        listed = []
        if !batch.isEmpty { batches.append(batch) }
        return batches
    }

    /// How the pages of `target` are read, each statement tried again on a new connection while
    /// the database is unreachable.
    /// Members read per page: a `rows` page is one cheap statement, read two batches at a time
    /// (half the statements); a `leads` page is filled in on threads, a batch at a time.
    private func readSize(_ target: ImportTarget) -> Int {
        target.storage == .rows ? 2 * batchSize : batchSize
    }

    private func pageReading(_ target: ImportTarget, attributeKeys: [String], serving fields: Set<FilterField>? = nil) -> JobPageReading {
        .of(target, attributeKeys: attributeKeys, pageSize: readSize(target), connections: RetryingConnections(connections, waitLimit: waitLimit),
            waitLimit: waitLimit, serving: fields)
    }

    private enum ChoiceFailure: Error {
        case lost
        case stopping
        case unreadable(unreachable: Bool)
    }

    /// The members of a selection in an order other than the list's, in that order: those of
    /// `leadIds` (read by their ids), or the first `limit` in `orderBy`'s order (`OrderedChoice`).
    /// Deterministic, so every run of the job makes the same one of the same list.
    private func choose(_ filter: ImportFilter, _ run: inout Run) -> Result<[JobMember], ChoiceFailure> {
        let keys = filter.attributeKeys.sorted()
        if let ids = filter.memberIDs {
            var selection = MemberSelection<JobMember>(filter: filter) { $0.member }
            do {
                let members = try withRetries { [target = run.target] in try JobPages.members(ids: ids, of: target, attributeKeys: keys, on: $0) }
                return .success(selection.take(members) + selection.finish())
            } catch {
                Log.warning("job page fetch failed", ["error": describe(error)])
                return .failure(.unreadable(unreachable: Self.isUnreachable(error)))
            }
        }
        let choice = OrderedChoice(filter: filter, pageSize: readSize(run.target), readAhead: true, reading: { [self, target = run.target] fields in
            pageReading(target, attributeKeys: keys, serving: fields)
        }, membersInOrder: { [self, target = run.target] ids in
            try withRetries { try JobPages.members(ids: ids, of: target, attributeKeys: keys, inGivenOrder: true, on: $0) }
        })
        var stop: ChoiceFailure?
        do {
            let chosen = try choice.make {
                if !keepLease(&run) { stop = .lost } else if stopRequested() { stop = .stopping }
                return stop == nil
            }
            guard let chosen else { return .failure(stop ?? .stopping) }
            return .success(chosen)
        } catch {
            Log.warning("job page fetch failed", ["error": describe(error)])
            return .failure(.unreadable(unreachable: Self.isUnreachable(error)))
        }
    }

    /// Sends `planned` on a lane (on this thread without lanes).
    private func send(_ planned: PlannedJobBatch, members: [PlannedMember], hold: JobHold, lanes: BatchLanes?) -> InFlight {
        let commit: @Sendable () -> Result<BatchCommit, any Error> = { [connections, store, waitLimit] in
            Result {
                try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { try store.commit(planned.batch, of: hold, on: $0) }
            }
        }
        return InFlight(members: members, planned: planned, sent: .now(), answer: lanes?.run(commit) ?? LaneAnswer(commit()))
    }

    private enum Recovery {
        /// Go on with these pages' batches (the ones that did not commit), after a batch whose
        /// leads have these identities.
        case goOn([[PlannedMember]], committed: BatchIdentities)
        case lost
        case stopped(ImportStop)
    }

    /// After `batches` (in flight together, in order) ended with the first not committed
    /// (`answer`): reads where the job stands, drops what committed, and commits the first
    /// batch that did not on its own, planned again, cut in parts if one of its leads fails.
    private func recover(from answer: Result<BatchCommit, any Error>, of batches: [InFlight], _ run: inout Run) -> Recovery {
        if case .success(.refused(let stop)) = answer { return .stopped(stop) }
        let found: JobRecord?
        do {
            found = try withRetries { [store, hold = run.hold, user = run.record.userID] in try store.job(id: hold.jobID, user: user, on: $0) }
        } catch {
            Log.warning("job position not read after a batch failed", ["error": describe(error)])
            return .stopped(.databaseLost)
        }
        guard let found, found.hold == run.hold, found.job.state == .running else {
            run.lease.lost()
            return .lost
        }
        var remaining = batches[...]
        var committed = BatchIdentities.none
        while let batch = remaining.first, batch.planned.batch.through <= found.resumePosition {
            committed = batch.planned.identities
            remaining = remaining.dropFirst()
        }
        if remaining.count < batches.count { run.record = found }
        guard let next = remaining.first else { return .goOn([], committed: committed) }
        guard next.planned.batch.after == found.resumePosition else {
            Log.error("job found where none of its batches starts", ["position": String(found.resumePosition)])
            return .lost
        }
        let planned = PlannedJobBatch.of(next.members, after: next.planned.batch.after, channel: run.target.channel, repeating: committed)
        var failure: PostgresError?
        if next.planned == planned, remaining.count == batches.count, case .success(.failed(let error)) = answer { failure = error }
        switch commitSplitting(planned, failed: failure, &run) {
        case .committed(let landed):
            return .goOn(remaining.dropFirst().map(\.members), committed: landed)
        case .lost:
            return .lost
        case .stopped(let stop):
            return .stopped(stop)
        }
    }

    private enum SplitEnd {
        /// With the identities of the leads that went in (not those settled as failing).
        case committed(BatchIdentities)
        case lost
        case stopped(ImportStop)
    }

    /// Commits a page's batch on its own. When it fails for one of its leads (`failed`, when an
    /// attempt already did), it is cut in halves down to the leads that fail alone, which commit
    /// as `error` rejections (as `LeadImporter.write` does), and all its parts commit in one
    /// transaction: a job then only ever stands at the end of a page, so a run that takes it up
    /// reads, plans and cuts the very pages an uninterrupted run does, and reports every member
    /// alike (which members commit together decides whether a repeat reads "a repeat of
    /// position N" or "already in the campaign").
    private func commitSplitting(_ batch: PlannedJobBatch, failed: PostgresError?, _ run: inout Run) -> SplitEnd {
        guard run.lease.mayCommit(now: .now()) else { return .lost }
        let hold = run.hold
        var landed = batch.batch.leads
        var settled = failed.map(Settled.failed) ?? commitSettled(batch, &run) { [store] in try store.commit(batch.batch, of: hold, on: $0) }
        if case .failed(let error) = settled {
            guard run.lease.mayCommit(now: .now()) else { return .lost }
            let lease = run.lease
            let parts = Locked<[JobBatch.Lead]>([])
            settled = commitSettled(batch, &run) { try commitParts(of: batch, failing: error, hold: hold, lease: lease, landed: parts, on: $0) }
            landed = parts.withLock { $0 }
        }
        switch settled {
        case .committed(let record):
            run.record = record
            return .committed(BatchIdentities(landed))
        case .notHeld:
            run.lease.lost()
            return .lost
        case .refused(let stop):
            return .stopped(stop)
        case .transient:
            return .stopped(.databaseBusy)
        case .unreachable:
            return .stopped(.databaseLost)
        case .failed(let error):
            // Only settled members, and still refused: nothing a retry of this run mends.
            Log.warning("job batch refused", ["error": error.description])
            return .stopped(.databaseBusy)
        }
    }

    /// A part's answer other than committed, carried out of its savepoint (or the transaction)
    /// so that what it did is rolled back.
    private struct PartNotCommitted: Error {
        let answer: BatchCommit
    }

    /// The parts of `batch`, which failed with `error`, in one transaction, each in a savepoint
    /// that a part failing for a lead rolls back before it is cut again. Anything else a part
    /// meets (not held, refused, transient) rolls back the whole page.
    private func commitParts(of batch: PlannedJobBatch, failing error: PostgresError, hold: JobHold, lease: JobLease,
                             landed: Locked<[JobBatch.Lead]>, on connection: Connection) throws -> BatchCommit {
        guard var pending = partsAfter(batch, failed: error) else { return .failed(error) }
        landed.withLock { $0 = [] }
        do {
            return try connection.transaction { connection -> BatchCommit in
                var last: JobRecord?
                var leads: [JobBatch.Lead] = []
                while !pending.isEmpty {
                    let part = pending.removeFirst()
                    guard lease.mayCommit(now: .now()) else { throw PartNotCommitted(answer: .notHeld) }
                    let answer: BatchCommit
                    do {
                        answer = try connection.transaction { connection -> BatchCommit in
                            let answer = try store.commit(part.batch, of: hold, on: connection)
                            guard case .committed = answer else { throw PartNotCommitted(answer: answer) }
                            return answer
                        }
                    } catch let refused as PartNotCommitted {
                        answer = refused.answer
                    }
                    switch answer {
                    case .committed(let record):
                        last = record
                        leads += part.batch.leads
                    case .failed(let error):
                        guard let parts = partsAfter(part, failed: error) else { throw PartNotCommitted(answer: answer) }
                        pending.insert(contentsOf: parts, at: 0)
                    case .notHeld, .outOfTurn, .refused, .transient:
                        throw PartNotCommitted(answer: answer)
                    }
                }
                // A split leaves no part empty, so at least one committed.
                guard let last else { throw PartNotCommitted(answer: .notHeld) }
                landed.withLock { $0 = leads }
                return .committed(last)
            }
        } catch let refused as PartNotCommitted {
            return refused.answer
        }
    }

    /// What replaces a part that failed for one of its leads: its halves, or its only lead
    /// settled as why it fails alone; nil for a part of settled members only.
    private func partsAfter(_ part: PlannedJobBatch, failed error: PostgresError) -> [PlannedJobBatch]? {
        if let (first, second) = part.split() { return [first, second] }
        if DatabaseFailure(sqlState: error.sqlState, connectionProblem: false) == .identityUnkeyable,
           let settled = part.settlingOnlyLead(as: .invalid, detail: "an identity the database cannot key") {
            return [settled]
        }
        if let settled = part.settlingOnlyLead(as: .error, detail: error.message) {
            Log.warning("job lead not inserted", ["sqlstate": error.sqlState ?? "-"])
            return [settled]
        }
        return nil
    }

    private enum Settled {
        case committed(JobRecord)
        case notHeld
        case refused(ImportStop)
        case transient
        case unreachable
        case failed(PostgresError)
    }

    static let transientAttempts = 5

    /// Attempts at `part` (sent by `send`) until it settles. After a lost connection the job's
    /// row tells whether the part landed: its position moved to the part's end (committed),
    /// stayed (send it again), or the runner no longer holds it.
    private func commitSettled(_ part: PlannedJobBatch, _ run: inout Run, send: (Connection) throws -> BatchCommit) -> Settled {
        let deadline = MonotonicInstant.now() + waitLimit
        var transientFailures = 0
        var lost = false
        var pause: Duration = .milliseconds(10)
        while true {
            let sent = MonotonicInstant.now()
            do {
                let answer = try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { connection -> BatchCommit in
                    if lost, let found = try store.job(id: run.hold.jobID, user: run.record.userID, on: connection) {
                        if found.hold == run.hold, found.resumePosition == part.batch.through { return .committed(found) }
                        if found.hold != run.hold || found.job.state != .running { return .notHeld }
                    }
                    return try send(connection)
                }
                switch answer {
                case .committed(let record):
                    run.lease.granted(sentAt: sent)
                    return .committed(record)
                case .notHeld: return .notHeld
                case .refused(let stop): return .refused(stop)
                case .failed(let error): return .failed(error)
                case .transient:
                    transientFailures += 1
                    if transientFailures >= Self.transientAttempts { return .transient }
                case .outOfTurn:
                    // The job moved under it (an attempt whose answer was lost committed meanwhile)
                    // or was taken: its row tells which.
                    lost = true
                }
            } catch let failure as CampaignWriter.LostAttempt {
                lost = true
                Log.warning("job batch connection lost; trying again", ["error": describe(failure.error)])
            } catch {
                // No connection could be had, or the read after a lost one failed.
                lost = true
            }
            guard run.lease.mayCommit(now: .now()) else { return .notHeld }
            if MonotonicInstant.now() + pause > deadline { return .unreachable }
            usleep(UInt32(pause.nanoseconds / 1000))
            pause = min(pause * 2, .seconds(1))
        }
    }

    /// Renews the lease when it is due; false once the runner must stop.
    private func keepLease(_ run: inout Run) -> Bool {
        let now = MonotonicInstant.now()
        switch run.lease.action(now: now) {
        case .stop: return false
        case .carryOn: return true
        case .renew:
            run.lease.renewalSent(at: now)
            do {
                let held = try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { try store.renew(run.hold, on: $0) }
                if held { run.lease.granted(sentAt: now) } else { run.lease.lost() }
            } catch {
                run.lease.renewalFailed(at: MonotonicInstant.now())
            }
            return run.lease.action(now: MonotonicInstant.now()) != .stop
        }
    }

    /// Ends the run as `JobRules.afterRun` says: finish with the synchronous import's status (the
    /// finish recomputes the stats), or give the job back.
    private func end(hold: JobHold, record: JobRecord, _ loopEnd: LoopEnd) -> RunEnd {
        guard case .outcome(let outcome, let unreachable) = loopEnd else { return .lost }
        switch JobRules.afterRun(outcome, databaseUnreachable: unreachable) {
        case .release:
            return release(hold)
        case .finish(let status):
            let finished: JobRecord?
            do {
                finished = try withRetries { try store.finish(hold, httpStatus: status, on: $0) }
            } catch {
                Log.warning("job finish failed; its lease runs out and another run finishes it", ["error": describe(error)])
                return .released
            }
            // The finish recomputed the campaign's stats with it.
            guard let finished else { return .lost }
            return .finished(finished)
        }
    }

    private func release(_ hold: JobHold) -> RunEnd {
        do {
            _ = try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { try store.release(hold, on: $0) }
        } catch {
            // Its lease runs out instead: another run resumes it a little later.
            Log.warning("job release failed", ["error": describe(error)])
        }
        return .released
    }

    /// A read tried again on a new connection while the database is unreachable (a backend
    /// terminated, a failover), for up to `waitLimit`; other failures are thrown at once.
    private func withRetries<T>(_ body: (Connection) throws -> T) throws -> T {
        try RetryingConnections(connections, waitLimit: waitLimit).withConnection(waitLimit: waitLimit, priority: .bulk, body)
    }

    /// Whether a statement failed for want of the database (worth trying again on a new
    /// connection), not for what it asked.
    public static func isUnreachable(_ error: any Error) -> Bool {
        if error is PoolError { return true }
        if let error = error as? PostgresError { return error.isConnectionProblem }
        return false
    }

    /// The job's campaign channel and list storage; nil when the campaign is gone. A list that is
    /// gone reads as empty, as its members went with it.
    static func target(of record: JobRecord, on connection: Connection) throws -> ImportTarget? {
        let result = try connection.query("""
            SELECT c.channel, (SELECT l.storage FROM lists l WHERE l.id = $2) AS storage
            FROM campaigns c WHERE c.id = $1
            """, [record.job.campaignID, record.job.listID])
        guard let row = result.first else { return nil }
        guard let channel = Channel(rawValue: try row.requiredString("channel")) else {
            throw PostgresError(kind: .decoding, message: "a campaign's channel is not one this service knows")
        }
        let storage = try row.string("storage").flatMap(ImportTarget.Storage.init(rawValue:)) ?? .rows
        return ImportTarget(userID: record.userID, campaignID: record.job.campaignID, listID: record.job.listID, channel: channel,
                            storage: storage)
    }
}

/// How a job's pages are read: whole, one statement each (`rows` lists), or in two halves, the
/// keys in order and the members filled in on other connections (`leads` lists, whose filling in
/// costs the most), as the synchronous import's `HydratedPageFeed` does.
enum JobPageReading: Sendable {
    case whole(@Sendable (ListCursor?) throws -> JobPages.Page)
    case halves(keys: @Sendable (ListCursor?) throws -> JobPages.Keys, fill: @Sendable (JobPages.Keys) throws -> JobPages.Page)

    /// One page, read on the caller's thread.
    func page(after cursor: ListCursor?) throws -> JobPages.Page {
        switch self {
        case .whole(let read): return try read(cursor)
        case .halves(let keys, let fill): return try fill(keys(cursor))
        }
    }

    /// Every page of the list from its start, each handed to `body` in order; read ahead on
    /// threads of their own when `readAhead` and they can be had. False when `keepGoing`
    /// (asked before each page) answered false.
    func readAll(pageSize: Int, readAhead: Bool, keepGoing: () -> Bool, _ body: (JobPages.Page) throws -> Void) throws -> Bool {
        let ahead = readAhead ? try? JobReadAhead(self, from: nil, pageSize: pageSize) : nil
        defer { ahead?.stop() }
        var cursor: ListCursor?
        while true {
            guard keepGoing() else { return false }
            let page = try ahead?.next() ?? page(after: cursor)
            try body(page)
            guard page.read >= pageSize, let last = page.last else { return true }
            cursor = last
        }
    }
}

/// A job's pages, read ahead of the runner on threads of their own: one reader for whole pages;
/// for pages in halves a key reader and `fillers` threads filling pages in at once. At most
/// two pages wait for the runner. Reading ends at the list's end or at the first page that
/// cannot be read.
final class JobReadAhead: @unchecked Sendable {
    private let pages = InOrderQueue<Result<JobPages.Page, any Error>>(window: 2)
    private let keyPages = BoundedQueue<(number: Int, keys: JobPages.Keys)>(capacity: 2)
    private let done: CountdownLatch

    init(_ reading: JobPageReading, from cursor: ListCursor?, pageSize: Int, fillers: Int = 2) throws(ThreadStartError) {
        let (pages, keyPages) = (self.pages, self.keyPages)
        switch reading {
        case .whole(let read):
            done = CountdownLatch(count: 1)
            try startThread(name: "job-reader") { [done] in
                defer { done.countDown() }
                let count = Self.walk(from: cursor, pageSize: pageSize, read: read, size: \.read, last: \.last,
                                      hand: { pages.put($0, .success($1)) }, failed: { pages.put($0, .failure($1)) })
                pages.end(at: count)
            }
        case .halves(let readKeys, let fill):
            let done = CountdownLatch(count: 1 + fillers)
            self.done = done
            try startThread(name: "job-keys") {
                defer { done.countDown() }
                let count = Self.walk(from: cursor, pageSize: pageSize, read: readKeys, size: \.keys.count, last: \.last,
                                      hand: { keyPages.put(($0, $1)) }, failed: { pages.put($0, .failure($1)) })
                pages.end(at: count)
                keyPages.close()
            }
            for started in 0..<fillers {
                do {
                    try startThread(name: "job-filler") {
                        defer { done.countDown() }
                        while let (number, keys) = keyPages.take() {
                            let page = Result { try fill(keys) }
                            guard pages.put(number, page) else { return }
                        }
                    }
                } catch {
                    // The threads already running are told to end and waited for.
                    keyPages.close()
                    pages.close()
                    for _ in started..<fillers { done.countDown() }
                    _ = done.wait()
                    throw error
                }
            }
        }
    }

    /// Reads pages (or keys) in list order, numbered from 0, handing each over until one is
    /// shorter than `pageSize` (the list's end), one cannot be read (handed over as failed), or
    /// the hand-over is refused (reading stopped). Returns how many were numbered.
    private static func walk<Item>(from cursor: ListCursor?, pageSize: Int, read: (ListCursor?) throws -> Item, size: (Item) -> Int,
                                   last: (Item) -> ListCursor?, hand: (Int, Item) -> Bool, failed: (Int, any Error) -> Void) -> Int {
        var cursor = cursor
        var number = 0
        while true {
            do {
                let item = try read(cursor)
                guard hand(number, item) else { return number }
                number += 1
                guard size(item) >= pageSize, let next = last(item) else { return number }
                cursor = next
            } catch {
                failed(number, error)
                return number + 1
            }
        }
    }

    /// The next page, waiting for it; throws what reading it threw.
    func next() throws -> JobPages.Page {
        guard let item = pages.take() else { throw PoolError.unavailable(reason: "the job's page reader ended early") }
        return try item.get()
    }

    /// No more pages: the readers end after the statements under way.
    func stop() {
        pages.close()
        keyPages.close()
        done.wait()
    }
}

extension JobPageReading {
    /// A list's pages as a job reads them (ids and cursors), `pageSize` members a page, each
    /// statement on a connection of `connections`; with `serving`, only what those filter fields
    /// need of each member (`JobPages.page(serving:)`).
    static func of(_ target: ImportTarget, attributeKeys: [String], pageSize: Int, connections: any ConnectionSource,
                   waitLimit: Duration, serving fields: Set<FilterField>? = nil) -> JobPageReading {
        switch target.storage {
        case .rows:
            return .whole { after in
                try connections.withConnection(waitLimit: waitLimit, priority: .bulk) {
                    try JobPages.page(of: target, after: after, limit: pageSize, attributeKeys: attributeKeys, serving: fields, on: $0)
                }
            }
        case .leads:
            return .halves(keys: { after in
                try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { try JobPages.keys(of: target, after: after, limit: pageSize, on: $0) }
            }, fill: { keys in
                try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { try JobPages.members(of: keys, of: target, serving: fields, on: $0) }
            })
        }
    }
}

/// Connections whose statements are tried again on a new connection while the database is
/// unreachable (a backend terminated, a failover), for up to `waitLimit`, with a doubling pause;
/// other failures are thrown at once. A job's reads lease through it.
struct RetryingConnections: ConnectionSource {
    let base: any ConnectionSource
    let waitLimit: Duration

    init(_ base: any ConnectionSource, waitLimit: Duration) { (self.base, self.waitLimit) = (base, waitLimit) }

    func withConnection<T>(waitLimit: Duration?, priority: LeasePriority, _ body: (Connection) throws -> T) throws -> T {
        let deadline = MonotonicInstant.now() + self.waitLimit
        var pause: Duration = .milliseconds(10)
        while true {
            do {
                return try base.withConnection(waitLimit: waitLimit, priority: priority, body)
            } catch {
                guard JobRunner.isUnreachable(error), MonotonicInstant.now() + pause <= deadline else { throw error }
            }
            usleep(UInt32(pause.nanoseconds / 1000))
            pause = min(pause * 2, .seconds(1))
        }
    }
}
