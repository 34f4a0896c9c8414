/// The first `limit` members of a list in an `orderBy` order, kept while the list is read once:
/// a heap whose top is the member that would be dropped next, so memory holds `limit` members
/// however long the list, and each member costs O(log limit).
public struct TopSelection<Member> {
    public struct Entry {
        /// Folded (`SelectionOrder.folded`).
        public var keys: [String?]
        /// The member's place in list order: ties go to the earlier.
        public var place: Int
        public var member: Member
    }

    public let limit: Int
    public let order: [FilterOrder]
    /// A max-heap by the selection's order: `entries[0]` comes last of those kept.
    private var entries: [Entry] = []

    public init(limit: Int, order: [FilterOrder]) {
        precondition(limit >= 1)
        self.limit = limit
        self.order = order
        entries.reserveCapacity(min(limit, 4096))
    }

    public var count: Int { entries.count }

    /// The entry that would be dropped next, once `limit` are kept: a member whose first key comes
    /// after its first key cannot be kept, whatever its other keys.
    public var lastKept: Entry? { entries.count == limit ? entries[0] : nil }

    /// Offers a member; it is kept when fewer than `limit` are, or when it comes before the last
    /// one kept. Its keys are folded here, once (`SelectionOrder.folded`).
    public mutating func offer(keys: [String?], place: Int, member: Member) {
        offer(folded: keys.map(SelectionOrder.folded), place: place, member: member)
    }

    /// `offer` with keys already folded (`SelectionOrder.folded`).
    public mutating func offer(folded keys: [String?], place: Int, member: Member) {
        let entry = Entry(keys: keys, place: place, member: member)
        if entries.count < limit {
            entries.append(entry)
            siftUp(entries.count - 1)
        } else if precedes(entry, entries[0]) {
            entries[0] = entry
            siftDown(0)
        }
    }

    /// The members kept, in the selection's order.
    public func ordered() -> [Entry] {
        entries.sorted { precedes($0, $1) }
    }

    private func precedes(_ a: Entry, _ b: Entry) -> Bool {
        SelectionOrder.precedesFolded((a.keys, a.place), (b.keys, b.place), by: order)
    }

    private mutating func siftUp(_ index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            // The heap's top is the entry that comes last.
            guard precedes(entries[parent], entries[child]) else { return }
            entries.swapAt(parent, child)
            child = parent
        }
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1, right = left + 1
            var last = parent
            if left < entries.count, precedes(entries[last], entries[left]) { last = left }
            if right < entries.count, precedes(entries[last], entries[right]) { last = right }
            guard last != parent else { return }
            entries.swapAt(parent, last)
            parent = last
        }
    }
}
