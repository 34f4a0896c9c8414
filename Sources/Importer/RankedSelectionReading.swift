import LeadCore
import Platform
import Postgres
import Store

/// An `orderBy` over more members than the service holds: the list read once, each member the
/// `where` keeps written with its folded sort keys (`RankedSelection`), ranked by the database;
/// then the members read back in that order, a page at a time.
struct RankedSelectionReading: Sendable {
    let ranked: RankedSelection
    let target: ImportTarget
    let filter: ImportFilter
    let pageSize: Int

    /// Reads the list with `reading` (pages ahead on threads of their own when they can be had)
    /// and ranks what the filter selects, writing on `connections`. nil when `keepGoing` said to stop.
    func rank(reading: JobPageReading, readAhead: Bool, connections: any ConnectionSource, waitLimit: Duration,
              keepGoing: () -> Bool) throws -> Int? {
        // The where alone decides which members are ranked; the order and limit are the database's.
        let kept = MemberSelection<JobMember>(filter: ImportFilter(conditions: filter.conditions)) { $0.member }
        var selection = kept
        let keys = MemberSelection<JobMember>(filter: ImportFilter(order: filter.order, limit: 1)) { $0.member }
        try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { try ranked.start(on: $0) }
        var place = 0
        let read = try reading.readAll(pageSize: pageSize, readAhead: readAhead, keepGoing: keepGoing) { page in
            let members = selection.take(page.members)
            guard !members.isEmpty else { return }
            let folded = members.map(keys.foldedOrderKeys)
            let columns = filter.order.indices.map { index in folded.map { $0[index] } }
            let places = Array(place..<place + members.count)
            place += members.count
            try connections.withConnection(waitLimit: waitLimit, priority: .bulk) {
                try ranked.add(places: places, memberIDs: members.map(\.id), keys: columns, on: $0)
            }
        }
        guard read else { return nil }
        return try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { try ranked.rank(limit: filter.limit, on: $0) }
    }

    /// The members ranked after `position`, up to `pageSize`, in order (a member gone from the
    /// list since is skipped).
    func members(after position: Int, on connection: Connection) throws -> (ids: Int, members: [JobMember]) {
        let ids = try ranked.ids(after: position, limit: pageSize, on: connection)
        guard !ids.isEmpty else { return (0, []) }
        return (ids.count, try JobPages.members(ids: ids, of: target, attributeKeys: [], inGivenOrder: true, on: connection))
    }
}

/// A ranked selection's members, a page at a time in rank order, read when asked for; the
/// selection is forgotten when the import stops reading.
final class RankedPageFeed: PageFeed, @unchecked Sendable {
    private let reading: RankedSelectionReading
    private let connections: any ConnectionSource
    private let waitLimit: Duration
    private let position = Locked(0)
    private let forgotten = Locked(false)

    init(_ reading: RankedSelectionReading, connections: any ConnectionSource, waitLimit: Duration) {
        (self.reading, self.connections, self.waitLimit) = (reading, connections, waitLimit)
    }

    func next() -> PageFeedItem? {
        if forgotten.current { return nil }
        do {
            let (count, members) = try connections.withConnection(waitLimit: waitLimit, priority: .bulk) {
                try reading.members(after: position.current, on: $0)
            }
            if count == 0 { return nil }
            position.withLock { $0 += count }
            return .page(ListPage(members: members.map(\.member), last: nil))
        } catch {
            Log.warning("page fetch failed", ["list": reading.target.listID, "error": describe(error)])
            return .failed
        }
    }

    func stop() {
        guard !forgotten.withLock({ (done: inout Bool) -> Bool in defer { done = true }; return done }) else { return }
        do {
            try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { try reading.ranked.finish(on: $0) }
        } catch {
            // Its rows go with the next selection's start a day later.
            Log.warning("ranked selection not forgotten", ["list": reading.target.listID, "error": describe(error)])
        }
    }

    func wait() {}
}
