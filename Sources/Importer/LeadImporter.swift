#if canImport(Glibc)
import Glibc
#endif
import LeadCore
import Platform
import Postgres
import Store

/// The import loop: read a page, plan it into batches, write them, until the list ends, a page
/// cannot be read, or the import is stopped. No transaction spans the import: every batch stands on
/// its own, so a retry after a stop picks up the rest (what is in already comes back as
/// duplicates).
///
/// A list longer than one page runs as three stages, so that the database never waits on us:
/// a reader thread fetches the next page while this thread plans the current one and writer
/// threads insert the batches before. Each stage leases a connection per statement and never
/// holds one while it waits on another stage, so imports cannot deadlock on the pool. Queues
/// between the stages are bounded: memory stays a few pages, whatever the list's length.
///
/// Stops happen between batches: before each batch of a list longer than a page the writer asks
/// whether the service is stopping, and a batch that finds the campaign no longer a draft (or gone) stops the rest. A
/// stopped import counts only the members of the batches it handled.
public struct LeadImporter: Sendable {
    /// Where every stage leases its connections (the process's pool in the service).
    public let connections: any ConnectionSource
    /// Who a bearer token belongs to, and what it may import (`Access.authorize` in the service).
    public let tokens: any TokenLookup
    public let pageSize: Int
    public let batchSize: Int
    /// How long a stage of an import under way waits for a pooled connection, and how long a
    /// batch keeps trying while the database is unreachable: longer than a new request would,
    /// since giving up now means a partial import.
    public let stageWaitLimit: Duration
    /// True once the service is stopping: imports under way stop at their next batch.
    public let stopRequested: @Sendable () -> Bool
    /// The stage threads (readers, hydrators, writers) this process's imports may run at once. An
    /// import that finds too few free runs on its own thread alone: slower, never more threads.
    public let stageThreads: ThreadBudget
    /// Dry runs that may keep their ledger on a connection of their own, outside the pool, and
    /// read their list ahead on pooled connections as an import does. The others keep it on a
    /// pooled connection and read on that one alone: a run that holds a pooled connection never
    /// waits for another. Each adds a database connection while it runs.
    public let dryRunsReadingAhead: ThreadBudget

    public init(connections: any ConnectionSource, tokens: any TokenLookup = StoredTokens(), pageSize: Int = 1000,
                batchSize: Int = 500, stageWaitLimit: Duration = .seconds(30),
                stopRequested: @escaping @Sendable () -> Bool = { false },
                stageThreads: ThreadBudget = ThreadBudget(LeadImporter.defaultStageThreads),
                dryRunsReadingAhead: ThreadBudget = ThreadBudget(0)) {
        self.connections = connections
        self.tokens = tokens
        self.pageSize = pageSize
        self.batchSize = batchSize
        self.stageWaitLimit = stageWaitLimit
        self.stopRequested = stopRequested
        self.stageThreads = stageThreads
        self.dryRunsReadingAhead = dryRunsReadingAhead
    }

    /// Dry runs of a process that may read ahead, each on a connection of its own.
    public static let dryRunsWithOwnConnection = 2

    /// Two imports in stages at once, of either storage (a `leads` import runs five threads).
    public static let defaultStageThreads = 2 * (writers + 1 + hydrators)

    /// Leases a connection for the first page, then runs the rest. Throws
    /// `PoolError.unavailable` only when no connection could be had for the first page: the
    /// database is unreachable, and nothing was read.
    public func run(_ target: ImportTarget, progress: (@Sendable (ImportProgress) -> Void)? = nil) throws -> ImportOutcome {
        let begun = try connections.withConnection(waitLimit: nil, priority: .bulk) { begin(target, on: $0, progress: progress) }
        switch begun {
        case .finished(let outcome): return outcome
        case .longer(let rest): return finish(rest, progress: progress)
        case .selected(let target, let choice): return runSelection(target, choice: choice, progress: progress)
        }
    }

    /// How an import stands after its first page.
    enum Begun: Sendable {
        /// The list fitted in one page (or its first page could not be read): done.
        case finished(ImportOutcome)
        /// More pages follow: `finish` runs them, after the caller gave its connection back.
        case longer(Rest)
        /// Part of the list, or a dry run: `runSelection` runs it, after the caller gave its
        /// connection back.
        case selected(ImportTarget, ImportChoice)
    }

    struct Rest: Sendable {
        let target: ImportTarget
        let first: ListPage
        let started: MonotonicInstant
    }

    /// Reads the first page on `connection` (a request's own, already leased); a list that fits
    /// in it is imported there and then, with no other lease and no thread.
    func begin(_ target: ImportTarget, on connection: Connection, progress: (@Sendable (ImportProgress) -> Void)? = nil) -> Begun {
        let started = MonotonicInstant.now()
        let source = ListSources.source(for: target)
        let first: ListPage
        do {
            first = try source.page(list: target.listID, after: nil, limit: pageSize, on: connection)
        } catch {
            Log.warning("page fetch failed", ["list": target.listID, "page": "1", "error": describe(error)])
            return .finished(ImportOutcome(counts: ImportCounts(), end: .pageFetchFailed(pagesRead: 0)))
        }
        guard first.members.count < pageSize else { return .longer(Rest(target: target, first: first, started: started)) }

        let writer = CampaignWriter(target: target)
        var planner = BatchPlanner(batchSize: batchSize, channel: target.channel)
        var counts = ImportCounts()
        var stop: ImportStop?
        // Not cut when the service stops: a list of one page is done in milliseconds, and a
        // draining process still answers what nginx sends on its kept connections.
        for batch in planner.plan(first.members) {
            if stop != nil { break }
            let written = writeWhatIsNotHeld(batch.leads, with: writer, on: connection)
            counts += batch.settled + written.counts
            stop = written.stop
        }
        if counts.imported > 0 && stop != .campaignGone {
            recomputeStats(writer) { try onConnection(connection) { try writer.recomputeStats(on: $0) } }
        }
        progress?(ImportProgress(rowsRead: counts.total, counts: counts, elapsed: MonotonicInstant.now() - started))
        return .finished(ImportOutcome(counts: counts, end: stop.map { .stopped($0) } ?? .completed))
    }

    /// The pages after the first, in three stages; then the stats.
    func finish(_ rest: Rest, progress: (@Sendable (ImportProgress) -> Void)? = nil) -> ImportOutcome {
        let writer = CampaignWriter(target: rest.target)
        let pages = PageReading(source: ListSources.source(for: rest.target), list: rest.target.listID, pageSize: pageSize,
                                connections: connections, waitLimit: stageWaitLimit)
        return finish(first: rest.first, pages: pages, writer: writer, started: rest.started, progress: progress)
    }

    /// The pages after `first` as `pages` reads them, in three stages; then the stats.
    func finish(first: ListPage, pages: PageReading, writer: CampaignWriter, started: MonotonicInstant,
                progress: (@Sendable (ImportProgress) -> Void)?) -> ImportOutcome {
        let outcome = runStages(first: first, pages: pages, writer: writer, started: started, progress: progress)
        if outcome.counts.imported > 0 && outcome.end != .stopped(.campaignGone) {
            recomputeStats(writer) { try onConnection(nil) { try writer.recomputeStats(on: $0) } }
        }
        Memory.returnFreePages()
        return outcome
    }

    /// How the pages after the first are read: ahead, on threads of their own (`threads` of
    /// them), or on the importer's thread when none can be had.
    struct PageReading {
        let threads: Int
        let ahead: (ListPage) throws(ThreadStartError) -> any PageFeed
        let inline: (ListPage) -> any PageFeed

        /// A list's pages as its source reads them, on `connections`.
        init(source: any ListSource, list: String, pageSize: Int, connections: any ConnectionSource, waitLimit: Duration) {
            threads = pageFeedThreads(for: source, hydrators: LeadImporter.hydrators)
            ahead = { (first: ListPage) throws(ThreadStartError) -> any PageFeed in
                try makePageFeed(source: source, after: first, list: list, pageSize: pageSize, connections: connections,
                                 waitLimit: waitLimit, hydrators: LeadImporter.hydrators)
            }
            inline = { first in
                InlinePageFeed(source: source, after: first, list: list, pageSize: pageSize, connections: connections, waitLimit: waitLimit)
            }
        }

        init(threads: Int, ahead: @escaping (ListPage) throws(ThreadStartError) -> any PageFeed, inline: @escaping (ListPage) -> any PageFeed) {
            (self.threads, self.ahead, self.inline) = (threads, ahead, inline)
        }
    }

    private func recomputeStats(_ writer: CampaignWriter, _ body: () throws -> Void) {
        do {
            try body()
        } catch {
            // The leads are in; stats are derived and the next import recomputes them.
            Log.warning("stats recompute failed", ["campaign": writer.target.campaignID, "error": describe(error)])
        }
    }

    /// Batches in flight at once. Two writers keep both of the database's cores busy with
    /// inserts while this process maps; batch n starts only once batch n-2 has committed, so
    /// at most two neighbours overlap (see `BatchOrder` and `BatchPlanner`).
    static let writers = 2

    /// Pages filled in at once, for sources that read keys apart (see `HydratedListSource`):
    /// filling in a `leads` page costs the database about what inserting it does.
    static let hydrators = 2

    static let pagesBetweenTrims = 4

    /// Hands free heap pages back every `pagesBetweenTrims` pages read (the import's and a job's).
    static func trimNowAndThen(_ pagesRead: Int) {
        if pagesRead % pagesBetweenTrims == 0 { Memory.returnFreePages() }
    }

    /// Hands back what the last pages and batches left free, once every stage has ended: what an
    /// idle service keeps does not grow with the lists it imported. Not after a page or two, whose
    /// request would pay for it and gain nothing.
    static func trimAtEnd(_ pagesRead: Int) {
        if pagesRead >= pagesBetweenTrims { Memory.returnFreePages() }
    }

    private func runStages(first: ListPage, pages: PageReading, writer: CampaignWriter, started: MonotonicInstant,
                           progress: (@Sendable (ImportProgress) -> Void)?) -> ImportOutcome {
        let threads = Self.writers + pages.threads
        guard stageThreads.take(threads) else {
            return runAlone(first: first, feed: pages.inline(first), writer: writer, started: started, progress: progress)
        }
        defer { stageThreads.giveBack(threads) }
        let batches = BoundedQueue<(number: Int, batch: PlannedBatch)>(capacity: 3)
        let order = BatchOrder(overlap: Self.writers)
        let written = Locked(ImportCounts())
        let stop = Locked<ImportStop?>(nil)
        let writersDone = CountdownLatch(count: Self.writers)
        let feed: any PageFeed
        do {
            for index in 0..<Self.writers {
                do {
                    try startThread(name: "import-writer") {
                        defer { writersDone.countDown() }
                        while let item = batches.take() {
                            order.waitForTurn(item.number)
                            defer { order.finished(item.number) }
                            if stopRequested() { stop.withLock { $0 = $0 ?? .serviceStopping } }
                            if stop.current != nil { continue }
                            let result = write(item.batch.leads, with: writer, on: nil)
                            written.withLock { $0 += item.batch.settled + result.counts }
                            if let reason = result.stop { stop.withLock { $0 = $0 ?? reason } }
                        }
                    }
                } catch {
                    for _ in index..<Self.writers { writersDone.countDown() }
                    throw error
                }
            }
            feed = try pages.ahead(first)
        } catch {
            // The system would not give the threads (tasks or memory at their limit): the
            // writers that started are let go, and the import runs on this thread alone.
            Log.warning("import stage threads not started; importing on the request's thread", ["error": "\(error)"])
            batches.close()
            _ = writersDone.wait()
            return runAlone(first: first, feed: pages.inline(first), writer: writer, started: started, progress: progress)
        }

        var planner = BatchPlanner(batchSize: batchSize, channel: writer.target.channel)
        var rowsRead = 0
        var pagesRead = 0
        var batchNumber = 0
        var pageFailed = false
        var next: PageFeedItem? = .page(first)
        while let current = next {
            guard case .page(let page) = current else {
                pageFailed = true
                break
            }
            pagesRead += 1
            rowsRead += page.members.count
            // Every stage allocates and frees on its own thread; over hundreds of pages the
            // arenas fragment and keep pages no one uses. Handing them back now and then keeps a
            // million-member import as small as a ten-thousand-member one.
            Self.trimNowAndThen(pagesRead)
            for batch in planner.plan(page.members) {
                batches.put((batchNumber, batch))
                batchNumber += 1
            }
            if let progress {
                progress(ImportProgress(rowsRead: rowsRead, counts: written.current, elapsed: MonotonicInstant.now() - started))
            }
            // A stopped import reads no further.
            if stopRequested() { stop.withLock { $0 = $0 ?? .serviceStopping } }
            if stop.current != nil { break }
            next = feed.next()
        }
        // The readers are told to stop, the writers finish (or skip, once stopped) what they were
        // given, and the counts are what was handled.
        feed.stop()
        batches.close()
        feed.wait()
        _ = writersDone.wait()
        Self.trimAtEnd(pagesRead)
        let counts = written.current
        progress?(ImportProgress(rowsRead: rowsRead, counts: counts, elapsed: MonotonicInstant.now() - started))
        if let reason = stop.current { return ImportOutcome(counts: counts, end: .stopped(reason)) }
        return ImportOutcome(counts: counts, end: pageFailed ? .pageFetchFailed(pagesRead: pagesRead) : .completed)
    }

    /// The pages after the first, on this thread alone: read a page, write its batches, read the
    /// next. What `runStages` does, without its threads, for when none can be had.
    private func runAlone(first: ListPage, feed: any PageFeed, writer: CampaignWriter, started: MonotonicInstant,
                          progress: (@Sendable (ImportProgress) -> Void)?) -> ImportOutcome {
        runAlone(first: first, feed: feed, channel: writer.target.channel, started: started, progress: progress) { leads in
            write(leads, with: writer, on: nil)
        }
    }

    /// `runAlone` with each batch's leads handed to `write` (a dry run counts them instead).
    func runAlone(first: ListPage, feed: any PageFeed, channel: Channel, started: MonotonicInstant,
                  progress: (@Sendable (ImportProgress) -> Void)?, write: ([CandidateLead]) -> BatchResult) -> ImportOutcome {
        var pagesRead = 0
        defer {
            feed.stop()
            feed.wait()
            Self.trimAtEnd(pagesRead)
        }
        var planner = BatchPlanner(batchSize: batchSize, channel: channel)
        var counts = ImportCounts()
        var rowsRead = 0
        var next: PageFeedItem? = .page(first)
        while let item = next {
            guard case .page(let page) = item else { return ImportOutcome(counts: counts, end: .pageFetchFailed(pagesRead: pagesRead)) }
            pagesRead += 1
            rowsRead += page.members.count
            Self.trimNowAndThen(pagesRead)
            for batch in planner.plan(page.members) {
                if stopRequested() { return ImportOutcome(counts: counts, end: .stopped(.serviceStopping)) }
                let result = write(batch.leads)
                counts += batch.settled + result.counts
                if let reason = result.stop { return ImportOutcome(counts: counts, end: .stopped(reason)) }
            }
            progress?(ImportProgress(rowsRead: rowsRead, counts: counts, elapsed: MonotonicInstant.now() - started))
            next = feed.next()
        }
        return ImportOutcome(counts: counts, end: .completed)
    }

    /// What writing one batch came to: the counts of its leads that were handled, and why the
    /// import must stop, if it must.
    struct BatchResult {
        var counts = ImportCounts()
        var stop: ImportStop?
    }

    /// Writes a batch: transient failures are tried again; a batch that fails for one of its rows
    /// is split until only the rows that really cannot be inserted are left, and those are the
    /// errors; a campaign that no longer takes leads stops it. `connection` is tried first when
    /// given (a request's own); otherwise, and once it is lost, pooled connections are used.
    func write(_ leads: [CandidateLead], with writer: CampaignWriter, on connection: Connection?) -> BatchResult {
        var result = BatchResult()
        var pending: [ArraySlice<CandidateLead>] = leads.isEmpty ? [] : [leads[...]]
        while !pending.isEmpty {
            let slice = pending.removeFirst()
            switch settle(slice, with: writer, on: connection) {
            case .inserted(let inserted):
                result.counts += ImportCounts(imported: inserted, duplicates: slice.count - inserted)
            case .refused(let reason):
                result.stop = reason
                return result
            case .transient:
                // Locks or timeouts that outlasted the retries: splitting would only wait on them
                // again, row by row. Nothing of the slice is in; a retry imports it.
                result.stop = .databaseBusy
                return result
            case .failed(let error):
                if slice.count == 1 && DatabaseFailure(sqlState: error.sqlState, connectionProblem: false) == .identityUnkeyable {
                    // The database cannot key this identity, so its unique index could not keep
                    // the lead once: refused, and as invalid as a lead without an identity.
                    Log.warning("lead without a database identity", ["campaign": writer.target.campaignID])
                    result.counts.invalid += 1
                } else if slice.count == 1 {
                    Log.warning("lead not inserted", [
                        "campaign": writer.target.campaignID, "sqlstate": error.sqlState ?? "-", "constraint": error.constraint ?? "-",
                    ])
                    result.counts.errors += 1
                } else {
                    let middle = slice.startIndex + slice.count / 2
                    pending.insert(contentsOf: [slice[..<middle], slice[middle...]], at: 0)
                }
            case nil:
                result.stop = .databaseLost
                return result
            }
        }
        return result
    }

    /// A batch of a one-page list, asked first which of its leads the campaign holds already:
    /// those are duplicates, and only the rest is written. A small list imported again (a
    /// client's retry, a second click) is then answered from reads alone. Longer lists skip
    /// the question: for them it would be one more index probe per member.
    func writeWhatIsNotHeld(_ leads: [CandidateLead], with writer: CampaignWriter, on connection: Connection) -> BatchResult {
        guard !leads.isEmpty, !connection.isBroken else { return write(leads, with: writer, on: connection) }
        let holding: CampaignWriter.Holding
        do {
            holding = try writer.held(leads.map(\.identity), on: connection)
        } catch {
            // The insert decides as it always does, on another connection if this one was lost.
            return write(leads, with: writer, on: connection)
        }
        switch holding {
        case .refused(let stop):
            return BatchResult(stop: stop)
        case .holds(let held):
            let fresh = held.isEmpty ? leads : leads.filter { !held.contains($0.identity) }
            var result = fresh.isEmpty ? BatchResult() : write(fresh, with: writer, on: connection)
            result.counts.duplicates += leads.count - fresh.count
            return result
        }
    }

    static let transientAttempts = 5

    /// One slice's attempts until it settles: committed, refused, or failed for one of its rows
    /// (after `transientAttempts` tries when the failure is transient). A lost connection is
    /// followed by a new one, and what the lost attempt may have committed is counted by the
    /// slice's token before anything is tried again, so nothing is inserted twice and no row in
    /// the table is counted an error. nil when the database could not be reached for
    /// `stageWaitLimit`.
    private func settle(_ slice: ArraySlice<CandidateLead>, with writer: CampaignWriter, on preferred: Connection?) -> CampaignWriter.Attempt? {
        let deadline = MonotonicInstant.now() + stageWaitLimit
        let batch = CampaignWriter.newBatchToken()
        var lost = false
        var transientFailures = 0
        var pause: Duration = .milliseconds(10)
        while true {
            do {
                let attempt = try onConnection(preferred) { connection -> CampaignWriter.Attempt in
                    if lost {
                        // A statement is all or nothing: rows of the batch mean it committed.
                        let committed = try writer.committedRows(batch: batch, on: connection)
                        if committed > 0 { return .inserted(committed) }
                    }
                    let attempt = try writer.attempt(slice, batch: batch, on: connection)
                    // A lost attempt whose commit lands late (its backend had not yet noticed)
                    // leaves this one only duplicates: the token counts what is in.
                    if lost, case .inserted = attempt { return .inserted(try writer.committedRows(batch: batch, on: connection)) }
                    return attempt
                }
                switch attempt {
                case .transient(let error):
                    transientFailures += 1
                    if transientFailures >= Self.transientAttempts { return .transient(error) }
                default:
                    return attempt
                }
            } catch let failure as CampaignWriter.LostAttempt {
                lost = true
                Log.warning("batch connection lost; trying again", ["campaign": writer.target.campaignID, "error": describe(failure.error)])
            } catch {
                // No connection could be had, or the count failed: the database is away.
            }
            if MonotonicInstant.now() + pause > deadline {
                Log.warning("batch abandoned: the database stayed unreachable", ["campaign": writer.target.campaignID])
                return nil
            }
            usleep(UInt32(pause.nanoseconds / 1000))
            pause = min(pause * 2, .seconds(1))
        }
    }

    /// Runs `body` on `preferred` while it is usable, else on a pooled connection.
    private func onConnection<T>(_ preferred: Connection?, _ body: (Connection) throws -> T) throws -> T {
        if let preferred, !preferred.isBroken { return try body(preferred) }
        return try connections.withConnection(waitLimit: stageWaitLimit, priority: .bulk) { try body($0) }
    }
}

func describe(_ error: any Error) -> String {
    if let error = error as? PostgresError { return error.description }
    if let error = error as? PoolError { return error.description }
    return String(describing: type(of: error))
}

/// Lets batch n start only once every batch up to n - overlap has finished, so that no more than
/// `overlap` neighbouring batches are ever in flight together: a repeat can then only race the
/// batch right before it, which the mapping stage settles.
final class BatchOrder: @unchecked Sendable {
    private let lock = ConditionLock()
    private let overlap: Int
    /// Every batch below this has finished.
    private var finishedBelow = 0
    private var finishedAhead: Set<Int> = []

    init(overlap: Int) { self.overlap = overlap }

    func waitForTurn(_ number: Int) {
        lock.withLock {
            while number - overlap >= finishedBelow { lock.wait() }
        }
    }

    func finished(_ number: Int) {
        lock.withLock {
            finishedAhead.insert(number)
            while finishedAhead.remove(finishedBelow) != nil { finishedBelow += 1 }
            lock.broadcast()
        }
    }
}
