import LeadCore
import Platform
import Postgres

/// Progress after each page, for the command line's stderr.
public struct ImportProgress: Sendable {
    public var rowsRead: Int
    public var counts: ImportCounts
    public var elapsed: Duration
}

/// The import loop: read a page, map it, write it in batches, until the list ends or a page
/// cannot be read. No transaction spans the import: every batch stands on its own, so a retry
/// after a failure picks up the rest (what is in already comes back as duplicates).
///
/// A list longer than one page runs as three stages, so that the database never waits on us:
/// a reader thread fetches the next page while this thread maps the current one and a writer
/// thread inserts the batch before. Each stage leases a connection per statement and never
/// holds one while it waits on another stage, so imports cannot deadlock on the pool. Queues
/// between the stages are bounded: memory stays a few pages, whatever the list's length.
public struct LeadImporter: Sendable {
    public let pool: ConnectionPool
    public let pageSize: Int
    public let batchSize: Int
    /// How long a stage of an import under way waits for a pooled connection: longer than a new
    /// request would, since giving up now means a partial import.
    public let stageWaitLimit: Duration

    public init(pool: ConnectionPool, pageSize: Int = 1000, batchSize: Int = 500, stageWaitLimit: Duration = .seconds(30)) {
        self.pool = pool
        self.pageSize = pageSize
        self.batchSize = batchSize
        self.stageWaitLimit = stageWaitLimit
    }

    /// Leases a connection for the first page, then runs the rest. Throws
    /// `PoolError.unavailable` only when no connection could be had for the first page: the
    /// database is unreachable, and nothing was read.
    public func run(_ target: ImportTarget, progress: (@Sendable (ImportProgress) -> Void)? = nil) throws -> ImportOutcome {
        let begun = try pool.withConnection { begin(target, on: $0, progress: progress) }
        switch begun {
        case .finished(let outcome): return outcome
        case .longer(let rest): return finish(rest, progress: progress)
        }
    }

    /// How an import stands after its first page.
    public enum Begun: Sendable {
        /// The list fitted in one page (or its first page could not be read): done.
        case finished(ImportOutcome)
        /// More pages follow: `finish` runs them, after the caller gave its connection back.
        case longer(Rest)
    }

    public struct Rest: Sendable {
        let target: ImportTarget
        let first: ListPage
        let started: MonotonicInstant
    }

    /// Reads the first page on `connection` (a request's own, already leased); a list that fits
    /// in it is imported there and then, with no other lease and no thread.
    public func begin(_ target: ImportTarget, on connection: Connection, progress: (@Sendable (ImportProgress) -> Void)? = nil) -> Begun {
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
        var counts = ImportCounts()
        let (leads, invalid) = map(first.members, channel: target.channel)
        counts.invalid = invalid
        var start = 0
        while start < leads.count {
            let batch = leads[start..<min(start + batchSize, leads.count)]
            do {
                counts += try writer.insert(batch, on: connection)
            } catch {
                Log.warning("batch lost with its connection", ["campaign": target.campaignID, "rows": String(batch.count)])
                counts.errors += batch.count
            }
            start += batchSize
        }
        if counts.imported > 0 { recomputeStats(writer) { try writer.recomputeStats(on: connection) } }
        progress?(ImportProgress(rowsRead: counts.total, counts: counts, elapsed: MonotonicInstant.now() - started))
        return .finished(ImportOutcome(counts: counts, end: .completed))
    }

    /// The pages after the first, in three stages; then the stats.
    public func finish(_ rest: Rest, progress: (@Sendable (ImportProgress) -> Void)? = nil) -> ImportOutcome {
        let source = ListSources.source(for: rest.target)
        let writer = CampaignWriter(target: rest.target)
        let outcome = runStages(first: rest.first, source: source, writer: writer, started: rest.started, progress: progress)
        if outcome.counts.imported > 0 {
            recomputeStats(writer) { try pool.withConnection(waitLimit: stageWaitLimit) { try writer.recomputeStats(on: $0) } }
        }
        Memory.returnFreePages()
        return outcome
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
    /// at most two neighbours overlap (see `BatchOrder`).
    static let writers = 2

    /// Pages filled in at once, for sources that read keys apart (see `HydratedListSource`):
    /// filling in a `leads` page costs the database about what inserting it does.
    static let hydrators = 2

    static let pagesBetweenTrims = 4

    private func runStages(first: ListPage, source: any ListSource, writer: CampaignWriter, started: MonotonicInstant,
                           progress: (@Sendable (ImportProgress) -> Void)?) -> ImportOutcome {
        let batches = BoundedQueue<(number: Int, leads: ArraySlice<CandidateLead>)>(capacity: 3)
        let order = BatchOrder(overlap: Self.writers)
        let written = Locked(ImportCounts())
        let writersDone = CountdownLatch(count: Self.writers)
        let feed = makePageFeed(source: source, after: first, list: writer.target.listID, pageSize: pageSize, pool: pool,
                                waitLimit: stageWaitLimit, hydrators: Self.hydrators)
        for _ in 0..<Self.writers {
            startThread(name: "import-writer") {
                defer { writersDone.countDown() }
                while let batch = batches.take() {
                    order.waitForTurn(batch.number)
                    let counts = insert(batch.leads, with: writer)
                    written.withLock { $0 += counts }
                    order.finished(batch.number)
                }
            }
        }

        var local = ImportCounts()
        var rowsRead = 0
        var pagesRead = 0
        var batchNumber = 0
        var previousBatch: Set<String> = []
        var end = ImportEnd.completed
        var next: PageFeedItem? = .page(first)
        while let current = next {
            guard case .page(let page) = current else {
                end = .pageFetchFailed(pagesRead: pagesRead)
                break
            }
            pagesRead += 1
            rowsRead += page.members.count
            // Every stage allocates and frees on its own thread; over hundreds of pages the
            // arenas fragment and keep pages no one uses. Handing them back now and then keeps a
            // million-member import as small as a ten-thousand-member one.
            if pagesRead % Self.pagesBetweenTrims == 0 { Memory.returnFreePages() }
            let (leads, pageInvalid) = map(page.members, channel: writer.target.channel)
            local.invalid += pageInvalid
            var start = 0
            while start < leads.count {
                // A repeat of an identity in the batch before may race it to the database
                // (both can be in flight): it is a repeat within the list, a duplicate, and is
                // settled here so the first one in list order is the one inserted.
                var batch: [CandidateLead] = []
                batch.reserveCapacity(batchSize)
                var identities = Set<String>(minimumCapacity: batchSize)
                for lead in leads[start..<min(start + batchSize, leads.count)] {
                    if previousBatch.contains(lead.identity) {
                        local.duplicates += 1
                    } else {
                        identities.insert(lead.identity)
                        batch.append(lead)
                    }
                }
                previousBatch = identities
                batches.put((batchNumber, batch[...]))
                batchNumber += 1
                start += batchSize
            }
            if let progress {
                let counts = written.current + local
                progress(ImportProgress(rowsRead: rowsRead, counts: counts, elapsed: MonotonicInstant.now() - started))
            }
            next = feed.next()
        }
        // A failed page ends the import: the readers are told to stop, the writers finish what
        // they were given, and the counts are what was committed.
        feed.stop()
        batches.close()
        feed.wait()
        _ = writersDone.wait()
        let counts = written.current + local
        progress?(ImportProgress(rowsRead: rowsRead, counts: counts, elapsed: MonotonicInstant.now() - started))
        return ImportOutcome(counts: counts, end: end)
    }

    /// Members without the channel's identity are invalid.
    func map(_ members: [ListMember], channel: Channel) -> (leads: [CandidateLead], invalid: Int) {
        var leads: [CandidateLead] = []
        leads.reserveCapacity(members.count)
        for member in members {
            if let lead = LeadMapping.lead(from: member, channel: channel) { leads.append(lead) }
        }
        return (leads, members.count - leads.count)
    }

    /// A batch lost with its connection, or for want of one, counts as errors: nothing of it is
    /// assumed in.
    func insert(_ batch: ArraySlice<CandidateLead>, with writer: CampaignWriter) -> ImportCounts {
        do {
            return try pool.withConnection(waitLimit: stageWaitLimit) { try writer.insert(batch, on: $0) }
        } catch {
            Log.warning("batch not written", ["campaign": writer.target.campaignID, "rows": String(batch.count), "error": describe(error)])
            return ImportCounts(errors: batch.count)
        }
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
