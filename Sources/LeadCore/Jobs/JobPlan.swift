/// A member of a job's selection at its place, as the runner plans it.
public struct PlannedMember: Sendable, Equatable {
    public var position: Int
    public var memberID: String
    public var member: ListMember
    /// Where reading resumes after this member. Kept as read, not as the text a job stores: only
    /// a batch's last member's is ever stored (docs/performance.md).
    public var resumeAfter: ListCursor

    public init(position: Int, memberID: String, member: ListMember, resumeAfter: ListCursor) {
        self.position = position
        self.memberID = memberID
        self.member = member
        self.resumeAfter = resumeAfter
    }
}

/// A batch of a job with each position's resume cursor, so that it can be cut into parts that
/// each commit on their own and still store where reading resumes after them.
public struct PlannedJobBatch: Sendable, Equatable {
    public var batch: JobBatch
    /// The cursor after each position of the batch, `after + 1` first.
    public var cursors: [ListCursor]
    /// The identities of the batch's leads: what the batch after it settles its repeats against
    /// while both are in flight.
    public let identities: BatchIdentities

    public init(batch: JobBatch, cursors: [ListCursor]) {
        self.init(batch: batch, cursors: cursors, identities: BatchIdentities(batch.leads))
    }

    private init(batch: JobBatch, cursors: [ListCursor], identities: BatchIdentities) {
        self.batch = batch
        self.cursors = cursors
        self.identities = identities
    }

    /// The batch of `members` (consecutive positions, the first right after `after`): invalid
    /// members settled with why, every other one a lead, except repeats of `previous`'s leads.
    ///
    /// Two batches of a job are in flight at once, so a lead repeating one of the batch before
    /// would wait on that batch's uncommitted insert (and could deadlock with it). Such repeats
    /// are settled here as duplicates, with the words the database would give them once the
    /// batch before committed: the first "already in the campaign", any later one in this batch
    /// a repeat of that first. Other repeats (within the batch, of older batches) are left to the
    /// commit, which settles them against the campaign and the batch in one statement.
    public static func of(_ members: [PlannedMember], after: Int, channel: Channel,
                          repeating previous: BatchIdentities = .none) -> PlannedJobBatch {
        var leads: [JobBatch.Lead] = []
        var settled: [Rejection] = []
        var firstRepeat: [IdentityKey: Int] = [:]
        // Each lead's identity is hashed once, for both: the batch's identities and each lead's
        // first place (JobBatch.firstPlaces).
        var firstPlace = [IdentityKey: Int](minimumCapacity: members.count)
        var firstPlaces: [Int] = []
        firstPlaces.reserveCapacity(members.count)
        // By index: `for planned in members` copied every member, each of its strings retained and
        // released again (docs/performance.md).
        for index in members.indices {
            let position = members[index].position
            guard let lead = LeadMapping.lead(from: members[index].member, channel: channel) else {
                settled.append(Rejection(position: position, memberID: members[index].memberID, reason: .invalid,
                                         detail: JobPlan.invalidDetail(members[index].member, channel: channel)))
                continue
            }
            let identity = IdentityKey(lead.identity)
            guard previous.contains(identity) else {
                leads.append(JobBatch.Lead(position: position, memberID: members[index].memberID, lead: lead))
                // One lookup: a new identity's place is stored as it is read.
                firstPlaces.append(storedOrNew(&firstPlace[identity, default: position]))
                continue
            }
            let detail = firstRepeat[identity].map(RejectionDetail.repeatOf(position:)) ?? RejectionDetail.alreadyInCampaign
            if firstRepeat[identity] == nil { firstRepeat[identity] = position }
            settled.append(Rejection(position: position, memberID: members[index].memberID, reason: .duplicate, detail: detail))
        }
        let through = after + members.count
        return PlannedJobBatch(batch: JobBatch(after: after, through: through, leads: leads, settled: settled,
                                               resumeAfter: members.last?.resumeAfter.text, firstPlaces: firstPlaces),
                               cursors: members.map(\.resumeAfter), identities: BatchIdentities(firstPlaces: firstPlace))
    }

    /// What `firstPlace[identity, default: position]` holds once accessed in place: the place
    /// stored for the identity, or `position`, stored now as its first.
    private static func storedOrNew(_ place: inout Int) -> Int { place }

    /// Two parts, each whole, with half the leads each: the first ends just before the second
    /// half's first lead. nil for a batch of fewer than two leads, which cannot be cut.
    public func split() -> (PlannedJobBatch, PlannedJobBatch)? {
        guard batch.leads.count >= 2 else { return nil }
        let middle = batch.leads.count / 2
        let boundary = batch.leads[middle].position - 1
        return (part(after: batch.after, through: boundary), part(after: boundary, through: batch.through))
    }

    /// The batch with its only lead settled as `rejection` instead: the commit that records a
    /// lead that cannot be inserted.
    public func settlingOnlyLead(as reason: RejectionReason, detail: String) -> PlannedJobBatch? {
        guard batch.leads.count == 1, let lead = batch.leads.first else { return nil }
        var settled = batch.settled
        settled.append(Rejection(position: lead.position, memberID: lead.memberID, reason: reason, detail: detail))
        settled.sort { $0.position < $1.position }
        var copy = self
        copy.batch.leads = []
        copy.batch.settled = settled
        return copy
    }

    private func part(after: Int, through: Int) -> PlannedJobBatch {
        // Both parts of a split hold a lead, so neither range is empty.
        let within = { (position: Int) in position > after && position <= through }
        let cursors = Array(self.cursors[(after - batch.after)..<(through - batch.after)])
        return PlannedJobBatch(
            batch: JobBatch(after: after, through: through, leads: batch.leads.filter { within($0.position) },
                            settled: batch.settled.filter { within($0.position) },
                            resumeAfter: through == batch.through ? batch.resumeAfter : cursors.last?.text ?? batch.resumeAfter),
            cursors: cursors)
    }
}

/// The identities of a batch's leads, as the database's unique index compares them.
public struct BatchIdentities: Sendable, Equatable {
    /// Each identity with the place of its first lead: what planning the batch made anyway.
    fileprivate var firstPlaces: [IdentityKey: Int]

    public static let none = BatchIdentities([])

    public init(_ leads: [JobBatch.Lead]) {
        firstPlaces = Dictionary(leads.map { (IdentityKey($0.lead.identity), $0.position) }, uniquingKeysWith: { first, _ in first })
    }

    fileprivate init(firstPlaces: [IdentityKey: Int]) {
        self.firstPlaces = firstPlaces
    }

    public var isEmpty: Bool { firstPlaces.isEmpty }

    func contains(_ identity: IdentityKey) -> Bool { firstPlaces[identity] != nil }

    /// The same identities, wherever their leads stood.
    public static func == (a: BatchIdentities, b: BatchIdentities) -> Bool { a.firstPlaces.keys == b.firstPlaces.keys }
}

public enum JobPlan {
    /// Why a member is invalid for `channel`, in words for the rejections report.
    public static func invalidDetail(_ member: ListMember, channel: Channel) -> String {
        switch member.rejection {
        case .foreign?: return "the Lead belongs to another user"
        case .fieldTooLong?: return "a field longer than \(ListMember.fieldLimit) characters"
        case nil: break
        }
        switch channel {
        case .email:
            return member.emails.isEmpty ? "no work email" : "no usable work email"
        case .linkedin:
            guard let url = member.linkedinURL, LeadMapping.present(url) != nil else { return "no LinkedIn URL" }
            return isPlaceholder(url) ? "a placeholder LinkedIn URL" : "not a LinkedIn profile URL"
        }
    }

    /// `imported-…` as the value or as the profile name: what another system writes for a
    /// profile it does not know.
    static func isPlaceholder(_ url: String) -> Bool {
        let text = url.trimmingWhitespace().lowercased()
        if text.hasPrefix("imported-") { return true }
        return text.split(separator: "/").contains { $0.hasPrefix("imported-") }
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
