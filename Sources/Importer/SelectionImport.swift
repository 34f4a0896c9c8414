import LeadCore
import Platform
import Postgres
import Store

extension LeadImporter {
    /// An import of the members a filter selects, or a dry run (docs/selection.md). The list
    /// is read as the whole import reads it (or, for `leadIds`, only those members),
    /// `MemberSelection` decides what is taken and in what order, and what is taken goes through
    /// the whole import's stages unchanged. A dry run counts each batch against the campaign and the
    /// batches before it (`DryRunLedger`) instead of writing it.
    public func runSelection(_ target: ImportTarget, choice: ImportChoice,
                             progress: (@Sendable (ImportProgress) -> Void)? = nil) -> ImportOutcome {
        let started = MonotonicInstant.now()
        guard choice.dryRun else {
            switch selectedPages(target, filter: choice.filter, connections: connections, readAhead: true) {
            case .unreadable: return ImportOutcome(counts: ImportCounts(), end: .pageFetchFailed(pagesRead: 0))
            case .stopped: return ImportOutcome(counts: ImportCounts(), end: .stopped(.serviceStopping))
            case .read(let first, let pages):
                return finish(first: first, pages: pages, writer: CampaignWriter(target: target), started: started, progress: progress)
            }
        }
        // The ledger on a connection of its own, the list read ahead on pooled ones, when few
        // enough dry runs do (`dryRunsReadingAhead`); else the ledger on a pooled connection and
        // the list read on it alone, which never waits for another.
        var own: Connection?
        if dryRunsReadingAhead.take(1) {
            do {
                own = try connections.connectionOfItsOwn()
            } catch {
                Log.warning("dry run connection of its own not opened; reading on one pooled connection", ["error": describe(error)])
            }
            if own == nil { dryRunsReadingAhead.giveBack(1) }
        }
        defer {
            if let own {
                own.close()
                dryRunsReadingAhead.giveBack(1)
            }
        }
        let readsAhead = own != nil
        do {
            let ledgerConnection: any ConnectionSource = own.map(HeldConnection.init) ?? connections
            return try ledgerConnection.withConnection(waitLimit: stageWaitLimit, priority: .bulk) { connection in
                let ledger = try DryRunLedger(target: target, on: connection)
                defer { ledger.close() }
                let reading: any ConnectionSource = readsAhead ? connections : HeldConnection(connection)
                switch selectedPages(target, filter: choice.filter, connections: reading, readAhead: readsAhead) {
                case .unreadable:
                    return ImportOutcome(counts: ImportCounts(), end: .pageFetchFailed(pagesRead: 0), dryRun: true)
                case .stopped:
                    return ImportOutcome(counts: ImportCounts(), end: .stopped(.serviceStopping), dryRun: true)
                case .read(let first, let pages):
                    var feed = pages.inline(first)
                    let threads = pages.threads
                    var threadsTaken = false
                    if threads > 0, stageThreads.take(threads) {
                        if let ahead = try? pages.ahead(first) { (feed, threadsTaken) = (ahead, true) } else { stageThreads.giveBack(threads) }
                    }
                    defer { if threadsTaken { stageThreads.giveBack(threads) } }
                    var outcome = runAlone(first: first, feed: feed, channel: target.channel, started: started,
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
            }
        } catch {
            Log.warning("dry run could not start", ["campaign": target.campaignID, "error": describe(error)])
            return ImportOutcome(counts: ImportCounts(), end: .pageFetchFailed(pagesRead: 0), dryRun: true)
        }
    }

    enum SelectedPages {
        /// The first page could not be read.
        case unreadable
        /// The service is stopping: an ordered selection was not made yet.
        case stopped
        /// The selection's first page, and how the rest of it is read.
        case read(ListPage, PageReading)
    }

    /// The selection of `filter` as pages in import order: the first, and a reading of the rest.
    /// `readAhead`: the rest may be read on threads of their own; otherwise on the importer's.
    func selectedPages(_ target: ImportTarget, filter: ImportFilter, connections: any ConnectionSource, readAhead: Bool) -> SelectedPages {
        let selection = SelectionState(filter: filter)
        let source: any ListSource = target.storage == .rows
            ? LeadGenRows(attributeKeys: filter.attributeKeys.sorted()) : CanonicalLeads(owner: target.userID)
        let nothingMore = PageReading(threads: 0, ahead: { _ in EmptyPageFeed() }, inline: { _ in EmptyPageFeed() })
        if let ids = filter.memberIDs {
            do {
                let members = try connections.withConnection(waitLimit: stageWaitLimit, priority: .bulk) { connection in
                    try source.members(ids: ids, list: target.listID, on: connection)
                }
                return .read(ListPage(members: selection.take(members) + selection.finish(), last: nil), nothingMore)
            } catch {
                Log.warning("page fetch failed", ["list": target.listID, "page": "1", "error": describe(error)])
                return .unreadable
            }
        }
        if !MemberSelectionLimits.fitsInMemory(filter) {
            return rankedPages(target, filter: filter, connections: connections, readAhead: readAhead)
        }
        if !filter.order.isEmpty {
            return orderedPages(target, filter: filter, connections: connections, readAhead: readAhead)
        }
        let first: ListPage
        do {
            first = try connections.withConnection(waitLimit: stageWaitLimit, priority: .bulk) { connection in
                try source.page(list: target.listID, after: nil, limit: pageSize, on: connection)
            }
        } catch {
            Log.warning("page fetch failed", ["list": target.listID, "page": "1", "error": describe(error)])
            return .unreadable
        }
        let taken = selection.take(first.members)
        if first.members.count < pageSize || selection.isComplete {
            return .read(ListPage(members: taken, last: nil), nothingMore)
        }
        let list = PageReading(source: source, list: target.listID, pageSize: pageSize, connections: connections, waitLimit: stageWaitLimit)
        return .read(ListPage(members: taken, last: nil), PageReading(
            threads: readAhead ? list.threads : 0,
            ahead: { (_: ListPage) throws(ThreadStartError) -> any PageFeed in
                SelectedPageFeed(inner: readAhead ? try list.ahead(first) : list.inline(first), selection: selection)
            },
            inline: { _ in SelectedPageFeed(inner: list.inline(first), selection: selection) }))
    }

    /// An order the service holds (`OrderedChoice`), made before the first batch, then handed
    /// out a page at a time.
    private func orderedPages(_ target: ImportTarget, filter: ImportFilter, connections: any ConnectionSource, readAhead: Bool) -> SelectedPages {
        let attributeKeys = filter.attributeKeys.sorted()
        let waitLimit = stageWaitLimit
        let choice = OrderedChoice(filter: filter, pageSize: pageSize, readAhead: readAhead, reading: { [pageSize] fields in
            JobPageReading.of(target, attributeKeys: attributeKeys, pageSize: pageSize, connections: connections, waitLimit: waitLimit,
                              serving: fields)
        }, membersInOrder: { ids in
            try connections.withConnection(waitLimit: waitLimit, priority: .bulk) {
                try JobPages.members(ids: ids, of: target, attributeKeys: attributeKeys, inGivenOrder: true, on: $0)
            }
        })
        let chosen: [JobMember]
        do {
            guard let made = try choice.make(keepGoing: { !stopRequested() }) else { return .stopped }
            chosen = made
        } catch {
            Log.warning("page fetch failed", ["list": target.listID, "error": describe(error)])
            return .unreadable
        }
        let rest = HeldPages(chosen.dropFirst(pageSize).map(\.member)[...], pageSize: pageSize)
        return .read(ListPage(members: chosen.prefix(pageSize).map(\.member), last: nil),
                     PageReading(threads: 0, ahead: { _ in rest }, inline: { _ in rest }))
    }

    /// An order over more members than the service holds, ranked by the database
    /// (`RankedSelectionReading`), then read back a page at a time.
    private func rankedPages(_ target: ImportTarget, filter: ImportFilter, connections: any ConnectionSource, readAhead: Bool) -> SelectedPages {
        let ranking = RankedSelectionReading(ranked: RankedSelection(id: CampaignWriter.newBatchToken(), order: filter.order),
                                             target: target, filter: filter, pageSize: pageSize)
        let reading = JobPageReading.of(target, attributeKeys: filter.attributeKeys.sorted(), pageSize: pageSize,
                                                     connections: connections, waitLimit: stageWaitLimit)
        let feed = RankedPageFeed(ranking, connections: connections, waitLimit: stageWaitLimit)
        do {
            guard try ranking.rank(reading: reading, readAhead: readAhead, connections: connections, waitLimit: stageWaitLimit,
                                   keepGoing: { !stopRequested() }) != nil else {
                feed.stop()
                return .stopped
            }
        } catch {
            Log.warning("page fetch failed", ["list": target.listID, "error": describe(error)])
            feed.stop()
            return .unreadable
        }
        let first: ListPage
        switch feed.next() {
        case .page(let page)?: first = page
        case nil: first = ListPage(members: [], last: nil)
        case .failed?:
            feed.stop()
            return .unreadable
        }
        return .read(first, PageReading(threads: 0, ahead: { _ in feed }, inline: { _ in feed }))
    }

}

/// A selection shared by the first page and the feed of the rest: used by one thread at a time
/// (the importer's), in turn.
final class SelectionState: @unchecked Sendable {
    private var selection: MemberSelection<ListMember>

    init(filter: ImportFilter) { selection = MemberSelection(filter: filter) }

    func take(_ members: [ListMember]) -> [ListMember] { selection.take(members) }
    func finish() -> [ListMember] { selection.finish() }
    var isComplete: Bool { selection.isComplete }
    var streams: Bool { selection.streams }
}

/// The pages of a list as a selection in list order takes them: each page's selected members,
/// until the selection is complete.
final class SelectedPageFeed: PageFeed, @unchecked Sendable {
    private let inner: any PageFeed
    private let selection: SelectionState
    private var ended = false

    init(inner: any PageFeed, selection: SelectionState) {
        precondition(selection.streams, "an ordered selection is made before its first batch (OrderedChoice)")
        (self.inner, self.selection) = (inner, selection)
    }

    func next() -> PageFeedItem? {
        if ended { return nil }
        guard let item = inner.next() else { return nil }
        guard case .page(let page) = item else { return item }
        let taken = selection.take(page.members)
        if selection.isComplete {
            // Nothing more can be selected: the readers stop now.
            ended = true
            inner.stop()
        }
        return .page(ListPage(members: taken, last: nil))
    }

    func stop() { inner.stop() }
    func wait() { inner.wait() }
}

/// Members already read, handed out a page at a time.
final class HeldPages: PageFeed, @unchecked Sendable {
    private let rest: Locked<ArraySlice<ListMember>>
    private let pageSize: Int

    init(_ members: ArraySlice<ListMember>, pageSize: Int) { (rest, self.pageSize) = (Locked(members), pageSize) }

    func next() -> PageFeedItem? {
        let page = rest.withLock { rest -> [ListMember] in
            defer { rest = rest.dropFirst(pageSize) }
            return Array(rest.prefix(pageSize))
        }
        return page.isEmpty ? nil : .page(ListPage(members: page, last: nil))
    }

    func stop() { rest.withLock { $0 = [] } }
    func wait() {}
}

/// No pages after the first.
struct EmptyPageFeed: PageFeed {
    func next() -> PageFeedItem? { nil }
    func stop() {}
    func wait() {}
}

/// One connection a run already holds, lent to its reads.
struct HeldConnection: ConnectionSource, @unchecked Sendable {
    let connection: Connection

    init(_ connection: Connection) { self.connection = connection }

    func withConnection<T>(waitLimit: Duration?, priority: LeasePriority, _ body: (Connection) throws -> T) throws -> T {
        try body(connection)
    }
}
