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
/// Memory is bounded by one page, whatever the list's length.
public struct LeadImporter: Sendable {
    public let pool: ConnectionPool
    public let pageSize: Int
    public let batchSize: Int

    public init(pool: ConnectionPool, pageSize: Int = 1000, batchSize: Int = 500) {
        self.pool = pool
        self.pageSize = pageSize
        self.batchSize = batchSize
    }

    /// Throws `PoolError.unavailable` only when no connection could be had before the first
    /// page: the database is unreachable, and nothing was read.
    public func run(_ target: ImportTarget, progress: (@Sendable (ImportProgress) -> Void)? = nil) throws -> ImportOutcome {
        let started = MonotonicInstant.now()
        let source = ListSources.source(for: target.storage)
        let writer = CampaignWriter(target: target)
        var counts = ImportCounts()
        var pagesRead = 0
        var cursor: ListCursor?
        var end = ImportEnd.completed

        pages: while true {
            let step: (page: Bool, more: Bool)
            do {
                step = try pool.withConnection { connection -> (page: Bool, more: Bool) in
                    let page: ListPage
                    do {
                        page = try source.page(list: target.listID, after: cursor, limit: pageSize, on: connection)
                    } catch {
                        Log.warning("page fetch failed", ["list": target.listID, "page": String(pagesRead + 1), "error": describe(error)])
                        return (false, false)
                    }
                    pagesRead += 1
                    cursor = page.last
                    counts += write(page.members, with: writer, on: connection)
                    return (true, page.members.count == pageSize)
                }
            } catch let error as PoolError {
                if pagesRead == 0 { throw error }
                Log.warning("page fetch failed", ["list": target.listID, "page": String(pagesRead + 1), "error": error.description])
                step = (false, false)
            }
            if !step.page {
                end = .pageFetchFailed(pagesRead: pagesRead)
                break pages
            }
            progress?(ImportProgress(rowsRead: counts.total, counts: counts, elapsed: MonotonicInstant.now() - started))
            if !step.more { break pages }
        }

        if counts.imported > 0 {
            do {
                try pool.withConnection { try writer.recomputeStats(on: $0) }
            } catch {
                // The leads are in; stats are derived and the next import recomputes them.
                Log.warning("stats recompute failed", ["campaign": target.campaignID, "error": describe(error)])
            }
        }
        return ImportOutcome(counts: counts, end: end)
    }

    /// Maps one page and writes its leads in batches. Members without the channel's identity are
    /// invalid; a batch lost with its connection counts as errors (nothing of it is assumed in).
    func write(_ members: [ListMember], with writer: CampaignWriter, on connection: Connection) -> ImportCounts {
        var counts = ImportCounts()
        var leads: [CandidateLead] = []
        leads.reserveCapacity(members.count)
        for member in members {
            if let lead = LeadMapping.lead(from: member, channel: writer.target.channel) {
                leads.append(lead)
            } else {
                counts.invalid += 1
            }
        }
        var start = 0
        while start < leads.count {
            let batch = leads[start..<min(start + batchSize, leads.count)]
            do {
                counts += try writer.insert(batch, on: connection)
            } catch {
                Log.warning("batch lost with its connection", ["campaign": writer.target.campaignID, "rows": String(batch.count)])
                counts.errors += batch.count
            }
            start += batchSize
        }
        return counts
    }
}

func describe(_ error: any Error) -> String {
    if let error = error as? PostgresError { return error.description }
    return String(describing: type(of: error))
}
