/// A batch of leads ready to write, with what its share of the list already came to without the
/// database: the invalid members among them and the repeats settled before writing. The batch's
/// members count in the import's totals only once the batch is handled, so an import stopped
/// between two batches counts exactly the members it handled.
public struct PlannedBatch: Sendable, Equatable {
    public var leads: [CandidateLead]
    public var settled: ImportCounts

    public init(leads: [CandidateLead] = [], settled: ImportCounts = ImportCounts()) {
        self.leads = leads
        self.settled = settled
    }

    /// How many list members this batch stands for.
    public var memberCount: Int { leads.count + settled.total }
}

/// Cuts the members of a list, page after page in list order, into batches of at most
/// `batchSize` leads.
///
/// The in-list repeat rule: two neighbouring batches can be in flight at once, so a repeat of an
/// identity of the batch before could race it to the database. Such a repeat is settled here as a
/// duplicate, so that the first of the two in list order is the one inserted. Repeats within one
/// batch, and of older batches, are left to the database's unique index, which counts them as
/// duplicates when their batch commits.
public struct BatchPlanner: Sendable {
    public let batchSize: Int
    public let channel: Channel
    private var previousIdentities: Set<IdentityKey> = []

    public init(batchSize: Int, channel: Channel) {
        precondition(batchSize >= 1, "a batch holds at least one lead")
        self.batchSize = batchSize
        self.channel = channel
    }

    /// The batches of one page. Every member lands in exactly one of them; a page with no lead
    /// still gives one batch (of settled members only) when it has members.
    public mutating func plan(_ members: [ListMember]) -> [PlannedBatch] {
        var batches: [PlannedBatch] = []
        var current = PlannedBatch()
        var slots = 0
        var identities = Set<IdentityKey>(minimumCapacity: min(batchSize, members.count))
        current.leads.reserveCapacity(min(batchSize, members.count))
        for member in members {
            guard let lead = LeadMapping.lead(from: member, channel: channel) else {
                current.settled.invalid += 1
                continue
            }
            if slots == batchSize {
                batches.append(current)
                previousIdentities = identities
                identities.removeAll(keepingCapacity: true)
                current = PlannedBatch()
                slots = 0
            }
            slots += 1
            let identity = IdentityKey(lead.identity)
            if previousIdentities.contains(identity) {
                current.settled.duplicates += 1
            } else {
                identities.insert(identity)
                current.leads.append(lead)
            }
        }
        if current.memberCount > 0 {
            batches.append(current)
            if slots > 0 { previousIdentities = identities }
        }
        return batches
    }
}

/// An identity as the database's unique index compares it: byte for byte. Swift's `String`
/// equality would take canonically equivalent spellings (NFC and NFD) for one identity, which the
/// database keeps apart.
struct IdentityKey: Hashable {
    let text: String

    init(_ text: String) { self.text = text }

    static func == (a: IdentityKey, b: IdentityKey) -> Bool { a.text.utf8.elementsEqual(b.text.utf8) }

    func hash(into hasher: inout Hasher) {
        var text = text
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
