/// The first `limit` members of a list in an `orderBy` order, kept while the list is read once:
/// a heap whose top is the member that would be dropped next, so memory holds `limit` members
/// however long the list, and each member costs O(log limit).
///
/// The heap is kept as three arrays of the same indices (keys, places, members): comparing reads
/// only keys and places, and moving an entry never copies its member. As one array of entries,
/// each comparison copied both entries whole (this type is generic, and compiled unspecialized
/// for the importer), every string of both members retained and released again.
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
    /// A max-heap by the selection's order: index 0 comes last of those kept.
    private var keys: [[String?]] = []
    private var places: [Int] = []
    private var members: [Member] = []

    public init(limit: Int, order: [FilterOrder]) {
        precondition(limit >= 1)
        self.limit = limit
        self.order = order
        let room = min(limit, 4096)
        keys.reserveCapacity(room)
        places.reserveCapacity(room)
        members.reserveCapacity(room)
    }

    public var count: Int { places.count }

    /// The folded first key of the member that would be dropped next, once `limit` are kept (nil
    /// before): a member whose first key comes after it cannot be kept, whatever its other keys.
    public var lastKeptFirstKey: String?? { places.count == limit ? keys[0][0] : nil }

    /// Offers a member; it is kept when fewer than `limit` are, or when it comes before the last
    /// one kept. Its keys are folded here, once (`SelectionOrder.folded`).
    public mutating func offer(keys: [String?], place: Int, member: Member) {
        offer(folded: keys.map(SelectionOrder.folded), place: place, member: member)
    }

    /// `offer` with keys already folded (`SelectionOrder.folded`).
    public mutating func offer(folded entryKeys: [String?], place: Int, member: Member) {
        if places.count < limit {
            keys.append(entryKeys)
            places.append(place)
            members.append(member)
            siftUp(places.count - 1)
        } else if SelectionOrder.precedesFolded((entryKeys, place), (keys[0], places[0]), by: order) {
            keys[0] = entryKeys
            places[0] = place
            members[0] = member
            siftDown(0)
        }
    }

    /// The members kept, in the selection's order.
    public func ordered() -> [Entry] {
        places.indices.sorted { precedes($0, $1) }.map { Entry(keys: keys[$0], place: places[$0], member: members[$0]) }
    }

    private func precedes(_ a: Int, _ b: Int) -> Bool {
        SelectionOrder.precedesFolded((keys[a], places[a]), (keys[b], places[b]), by: order)
    }

    private mutating func swapEntries(_ a: Int, _ b: Int) {
        keys.swapAt(a, b)
        places.swapAt(a, b)
        // The buffer's swap moves; Array's copies one of the two members.
        members.withUnsafeMutableBufferPointer { $0.swapAt(a, b) }
    }

    private mutating func siftUp(_ index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            // The heap's top is the entry that comes last.
            guard precedes(parent, child) else { return }
            swapEntries(parent, child)
            child = parent
        }
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1, right = left + 1
            var last = parent
            if left < places.count, precedes(last, left) { last = left }
            if right < places.count, precedes(last, right) { last = right }
            guard last != parent else { return }
            swapEntries(parent, last)
            parent = last
        }
    }
}
