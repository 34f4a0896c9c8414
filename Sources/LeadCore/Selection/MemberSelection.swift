/// Which members of a list an import takes, decided as the list is read page by page in list
/// order (docs/selection.md): `where` keeps a member or not on its own, `limit` counts what was
/// kept, and `orderBy` holds the first `limit` in its order (`TopSelection`) until the list ends.
/// The member ids of `leadIds` are not decided here: the reader reads only those.
public struct MemberSelection<Item> {
    public let filter: ImportFilter
    /// The list member an item read is (a job reads members with their ids and cursors).
    private let member: (Item) -> ListMember
    /// The attribute keys the filter names: a member's attributes are parsed only when there are any.
    private let attributeKeys: Set<String>
    /// `where`, its values folded once.
    private let conditions: [FoldedCondition]
    /// Members still to select, in list order; nil: no limit.
    private var remaining: Int?
    /// The ordered selection being built; nil when the order is the list's.
    private var top: TopSelection<Item>?
    /// Members offered so far, in list order: ties in `orderBy` go to the earlier.
    private var place = 0

    /// `taken`: members of the selection already imported, by an earlier run of a job that
    /// resumes in list order.
    public init(filter: ImportFilter, taken: Int = 0, member: @escaping (Item) -> ListMember) {
        self.filter = filter
        self.member = member
        attributeKeys = filter.attributeKeys
        conditions = filter.conditions.map(FoldedCondition.init)
        if filter.order.isEmpty {
            remaining = filter.limit.map { max(0, $0 - taken) }
        } else {
            top = TopSelection(limit: filter.limit ?? (filter.memberIDs?.count ?? MemberSelectionLimits.ordered), order: filter.order)
        }
    }

    /// Whether members are imported as they are read (list order), or only once the list is read.
    public var streams: Bool { top == nil }

    /// Whether nothing more can be selected: the reader may stop.
    public var isComplete: Bool { remaining == 0 }

    /// Takes the next members read, in list order, and returns those selected to import now (in
    /// list order). An ordered selection returns none until `finish`.
    public mutating func take(_ items: [Item]) -> [Item] {
        var selected: [Item] = []
        for item in items {
            if remaining == 0 { break }
            let member = self.member(item)
            let attribute = attributes(of: member)
            guard ImportFilter.selects(member, conditions, attribute: attribute) else { continue }
            if top != nil {
                defer { place += 1 }
                // The first key alone decides most members of a long list: they come after the last kept.
                let value = FilterValues.value(filter.order[0].field, of: member, attribute: attribute)
                if let last = top!.lastKeptFirstKey, SelectionOrder.comesAfter(unfolded: value, last, descending: filter.order[0].descending) {
                    continue
                }
                // One array of the keys, not the first joined to the rest (two more arrays a member).
                var keys: [String?] = []
                keys.reserveCapacity(filter.order.count)
                keys.append(SelectionOrder.folded(value))
                for key in filter.order.dropFirst() {
                    keys.append(SelectionOrder.folded(FilterValues.value(key.field, of: member, attribute: attribute)))
                }
                top!.offer(folded: keys, place: place, member: item)
            } else {
                selected.append(item)
                if let left = remaining { remaining = left - 1 }
            }
        }
        return selected
    }

    /// The `orderBy` keys of an item, folded as `SelectionOrder` compares them: for a selection
    /// the database orders (`RankedSelection`).
    public func foldedOrderKeys(_ item: Item) -> [String?] {
        let member = self.member(item)
        return filter.orderKeys(of: member, attribute: attributes(of: member)).map(SelectionOrder.folded)
    }

    /// The member's attributes the filter names, parsed once (none parsed when it names none).
    private func attributes(of member: ListMember) -> (String) -> String? {
        guard !attributeKeys.isEmpty else { return { _ in nil } }
        let found = AttributeText.values(ofObject: member.filterAttributes ?? member.customFields ?? "", keys: attributeKeys)
        return { found[$0] }
    }

    /// After the last page: the members of an ordered selection, in its order (none for a
    /// selection in list order, which `take` already returned).
    public mutating func finish() -> [Item] {
        guard let top else { return [] }
        self.top = nil
        return top.ordered().map(\.member)
    }
}

extension MemberSelection where Item == ListMember {
    public init(filter: ImportFilter) {
        self.init(filter: filter, member: { $0 })
    }
}

public enum MemberSelectionLimits {
    /// The most members an `orderBy` selection holds while the list is read, when it is not
    /// bounded by `leadIds`: each is a whole member in memory until the list ends.
    public static let ordered = 10_000

    /// Whether the service orders this filter's selection itself, holding at most `ordered`
    /// members (`TopSelection`); otherwise the database orders it (`RankedSelection`).
    public static func fitsInMemory(_ filter: ImportFilter) -> Bool {
        filter.order.isEmpty || filter.memberIDs != nil || (filter.limit ?? Int.max) <= ordered
    }

    /// The fields an ordered selection the service holds is decided on, when a read of only
    /// those can decide it: an `orderBy` alone, with no `where` (a member with a field too long
    /// has none, and `where` matches absent values) and no `leadIds` (read whole already).
    public static func decidedOnKeys(_ filter: ImportFilter) -> Set<FilterField>? {
        guard !filter.order.isEmpty, filter.conditions.isEmpty, filter.memberIDs == nil, fitsInMemory(filter) else { return nil }
        return Set(filter.order.map(\.field))
    }
}
