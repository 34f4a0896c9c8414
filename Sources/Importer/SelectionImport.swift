import LeadCore
import Platform
import Postgres
import Store

extension LeadImporter {
    /// An import of the members a filter selects, or a dry run: the list is read as the whole
    /// import reads it (or, for `leadIds`, only those members), `MemberSelection` decides what
    /// is taken and in what order, and the members taken go through section 1's batches
    /// unchanged. A dry run counts each batch against the campaign and the batches before it
    /// (`DryRunLedger`) instead of writing it.
    public func runSelection(_ target: ImportTarget, choice: ImportChoice,
                             progress: (@Sendable (ImportProgress) -> Void)? = nil) -> ImportOutcome {
        let started = MonotonicInstant.now()
        if choice.dryRun {
            do {
                return try connections.withConnection(waitLimit: stageWaitLimit, priority: .bulk) { connection in
                    let ledger = try DryRunLedger(target: target, on: connection)
                    defer { ledger.close() }
                    // The list is read on the ledger's connection too: a run holding one
                    // connection never waits for another, so dry runs cannot starve each other
                    // of the pool.
                    var outcome = importSelected(target, filter: choice.filter, reading: HeldConnection(connection), started: started,
                                                 progress: progress) { leads in
                        do {
                            switch try ledger.tally(leads.map(\.identity)) {
                            case .wouldImport(let imported): return BatchResult(counts: ImportCounts(imported: imported, duplicates: leads.count - imported))
                            case .stopped(let stop): return BatchResult(stop: stop)
                            }
                        } catch {
                            Log.warning("dry run batch failed", ["campaign": target.campaignID, "error": describe(error)])
                            return BatchResult(stop: .databaseLost)
                        }
                    }
                    outcome.dryRun = true
                    return outcome
                }
            } catch {
                Log.warning("dry run could not start", ["campaign": target.campaignID, "error": describe(error)])
                return ImportOutcome(counts: ImportCounts(), end: .pageFetchFailed(pagesRead: 0), dryRun: true)
            }
        }
        let writer = CampaignWriter(target: target)
        let outcome = importSelected(target, filter: choice.filter, reading: nil, started: started, progress: progress) { leads in
            write(leads, with: writer, on: nil)
        }
        if outcome.counts.imported > 0 && outcome.end != .stopped(.campaignGone) {
            do {
                try connections.withConnection(waitLimit: stageWaitLimit, priority: .bulk) { try writer.recomputeStats(on: $0) }
            } catch {
                Log.warning("stats recompute failed", ["campaign": target.campaignID, "error": describe(error)])
            }
        }
        return outcome
    }

    /// Reads the selection and hands each batch of it to `write`, one after the other.
    private func importSelected(_ target: ImportTarget, filter: ImportFilter, reading held: HeldConnection?, started: MonotonicInstant,
                                progress: (@Sendable (ImportProgress) -> Void)?,
                                write: ([CandidateLead]) -> BatchResult) -> ImportOutcome {
        var planner = BatchPlanner(batchSize: batchSize, channel: target.channel)
        var counts = ImportCounts()
        var selected = 0
        var stop: ImportStop?
        // Every batch of what was selected so far, written before more is read.
        func take(_ members: [ListMember]) {
            selected += members.count
            for batch in planner.plan(members) where stop == nil {
                if stopRequested() {
                    stop = .serviceStopping
                    break
                }
                let result = write(batch.leads)
                counts += batch.settled + result.counts
                stop = result.stop
            }
            progress?(ImportProgress(rowsRead: selected, counts: counts, elapsed: MonotonicInstant.now() - started))
        }
        let read = readSelection(target, filter: filter, held: held, take: { members in
            take(members)
            return stop == nil
        })
        let end: ImportEnd
        if let stop {
            end = .stopped(stop)
        } else if case .failed(let pagesRead) = read {
            end = .pageFetchFailed(pagesRead: pagesRead)
        } else {
            end = .completed
        }
        return ImportOutcome(counts: counts, end: end)
    }

    enum SelectionRead {
        case read
        /// A page could not be read after `pagesRead` were.
        case failed(pagesRead: Int)
    }

    /// Reads the list, or only the members `leadIds` names, and hands what the selection takes to
    /// `take` in import order; `take` answers whether to go on.
    /// `held`: the one connection to read on, page after page on this thread; nil: the pool,
    /// with pages read ahead on threads of their own when the budget has them.
    private func readSelection(_ target: ImportTarget, filter: ImportFilter, held: HeldConnection?,
                               take: ([ListMember]) -> Bool) -> SelectionRead {
        let connections: any ConnectionSource = held ?? self.connections
        var selection = MemberSelection(filter: filter)
        let keys = filter.attributeKeys.sorted()
        let source: any ListSource = target.storage == .rows ? LeadGenRows(attributeKeys: keys) : CanonicalLeads(owner: target.userID)
        if let ids = filter.memberIDs {
            let members: [ListMember]
            do {
                members = try connections.withConnection(waitLimit: stageWaitLimit, priority: .bulk) { connection in
                    switch source {
                    case let rows as LeadGenRows: return try rows.members(ids: ids, list: target.listID, on: connection)
                    case let leads as CanonicalLeads: return try leads.members(ids: ids, list: target.listID, on: connection)
                    default: return []
                    }
                }
            } catch {
                Log.warning("page fetch failed", ["list": target.listID, "page": "1", "error": describe(error)])
                return .failed(pagesRead: 0)
            }
            let taken = selection.take(members)
            if !taken.isEmpty, !take(taken) { return .read }
            let ordered = selection.finish()
            if !ordered.isEmpty { _ = take(ordered) }
            return .read
        }

        let first: ListPage
        do {
            first = try connections.withConnection(waitLimit: stageWaitLimit, priority: .bulk) { connection in
                try source.page(list: target.listID, after: nil, limit: pageSize, on: connection)
            }
        } catch {
            Log.warning("page fetch failed", ["list": target.listID, "page": "1", "error": describe(error)])
            return .failed(pagesRead: 0)
        }
        var feed: (any PageFeed)?
        var threads = 0
        if first.members.count >= pageSize {
            // Read ahead on threads of their own when the budget has them; else page by page here.
            let wanted = pageFeedThreads(for: source, hydrators: Self.hydrators)
            if held == nil, stageThreads.take(wanted) {
                if let started = try? makePageFeed(source: source, after: first, list: target.listID, pageSize: pageSize,
                                                   connections: connections, waitLimit: stageWaitLimit, hydrators: Self.hydrators) {
                    (feed, threads) = (started, wanted)
                } else {
                    stageThreads.giveBack(wanted)
                }
            }
            if feed == nil {
                feed = InlinePageFeed(source: source, after: first, list: target.listID, pageSize: pageSize,
                                      connections: connections, waitLimit: stageWaitLimit)
            }
        }
        defer {
            feed?.stop()
            feed?.wait()
            if threads > 0 { stageThreads.giveBack(threads) }
        }
        var pagesRead = 0
        var next: PageFeedItem? = .page(first)
        while let item = next {
            guard case .page(let page) = item else { return .failed(pagesRead: pagesRead) }
            pagesRead += 1
            let taken = selection.take(page.members)
            if !taken.isEmpty, !take(taken) { return .read }
            if selection.isComplete { return .read }
            next = feed?.next()
        }
        // An ordered selection is imported once the whole list was read, a page at a time.
        let ordered = selection.finish()
        var start = 0
        while start < ordered.count {
            let end = min(start + pageSize, ordered.count)
            if !take(Array(ordered[start..<end])) { break }
            start = end
        }
        return .read
    }
}

/// One connection a run already holds, lent to its reads.
struct HeldConnection: ConnectionSource, @unchecked Sendable {
    let connection: Connection

    init(_ connection: Connection) { self.connection = connection }

    func withConnection<T>(waitLimit: Duration?, priority: LeasePriority, _ body: (Connection) throws -> T) throws -> T {
        try body(connection)
    }
}
