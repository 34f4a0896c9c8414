import LeadCore
import Platform
import Postgres
import Store

/// An `orderBy` the service holds (`MemberSelectionLimits.fitsInMemory`), made before the first
/// batch, by the synchronous import and by a job alike: the list read to its end, the first
/// `limit` kept (`MemberSelection`), and those members read whole, in order.
///
/// An order alone (`MemberSelectionLimits.decidedOnKeys`) is decided on a read of only the
/// fields it orders by, and only the members kept are read whole: for a `leads` list that is
/// the Lead and its attributes instead of four tables a member (docs/performance.md). Each
/// member read whole must give the keys it was kept by, and then the selection is the one a
/// whole read makes: every other member's keys are the same in both reads, or absent in the
/// whole one (a field too long anywhere makes a member invalid, with no keys), which only sorts
/// it later. When one does not (that field too long, or the list changed in between), the list
/// is read again, whole.
struct OrderedChoice {
    let filter: ImportFilter
    let pageSize: Int
    /// Read pages ahead on threads of their own, when they can be had.
    let readAhead: Bool
    /// The list's pages: with only what the fields given need of each member, or whole (nil).
    let reading: (Set<FilterField>?) -> JobPageReading
    /// The list's members among these ids, whole, in the order given.
    let membersInOrder: ([String]) throws -> [JobMember]

    /// The selection in its order; nil when `keepGoing` answered false (asked before each page).
    func make(keepGoing: () -> Bool) throws -> [JobMember]? {
        if let fields = MemberSelectionLimits.decidedOnKeys(filter) {
            var selection = MemberSelection<JobMember>(filter: filter) { $0.member }
            guard try read(reading(fields), into: &selection, keepGoing: keepGoing) else { return nil }
            if let whole = try readWhole(selection.finish(), keyedBy: selection) { return whole }
            Log.info("ordered selection read again whole: a member kept on its keys has others read whole")
        }
        var selection = MemberSelection<JobMember>(filter: filter) { $0.member }
        guard try read(reading(nil), into: &selection, keepGoing: keepGoing) else { return nil }
        return selection.finish()
    }

    /// Offers every member of the list to `selection`; false when `keepGoing` answered false.
    private func read(_ reading: JobPageReading, into selection: inout MemberSelection<JobMember>, keepGoing: () -> Bool) throws -> Bool {
        try reading.readAll(pageSize: pageSize, readAhead: readAhead, keepGoing: keepGoing) { page in _ = selection.take(page.members) }
    }

    /// The members `kept` read whole, a page at a time; nil when one is gone or gives other keys.
    private func readWhole(_ kept: [JobMember], keyedBy selection: MemberSelection<JobMember>) throws -> [JobMember]? {
        var whole: [JobMember] = []
        whole.reserveCapacity(kept.count)
        for start in stride(from: 0, to: kept.count, by: pageSize) {
            let part = kept[start..<min(start + pageSize, kept.count)]
            let read = try membersInOrder(part.map(\.id))
            guard read.count == part.count, zip(read, part).allSatisfy({ member, keptAs in
                member.id == keptAs.id && selection.foldedOrderKeys(member) == selection.foldedOrderKeys(keptAs)
            }) else { return nil }
            whole += read
        }
        return whole
    }
}
