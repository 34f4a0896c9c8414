/// One batch of a job as it commits, with the job's progress: the members of the selection
/// after position `after` through position `through`, each either a lead to insert or a member
/// already settled without the database (invalid, a repeat settled before writing, an insert
/// that failed on its own). The database settles the leads (inserted, or duplicate) in the same
/// transaction that records them and moves the job to `through`, so a job resumed after a crash
/// starts exactly after the last batch that committed.
public struct JobBatch: Equatable, Sendable {
    public struct Lead: Equatable, Sendable {
        public var position: Int
        /// The Lead id (`leads` lists) or row id (`rows` lists) the lead comes from.
        public var memberID: String
        public var lead: CandidateLead

        public init(position: Int, memberID: String, lead: CandidateLead) {
            self.position = position
            self.memberID = memberID
            self.lead = lead
        }
    }

    /// The job's position before this batch (0 before the first).
    public var after: Int
    /// The job's position once this batch commits.
    public var through: Int
    public var leads: [Lead] {
        didSet { firstPlaces = Self.firstPlaces(of: leads) }
    }
    public var settled: [Rejection]
    /// Where reading resumes after `through`, in the page feed's own terms; opaque here.
    public var resumeAfter: String?
    /// For each lead, the position of the batch's first lead with its identity (its own when it
    /// is the first): the commit tries only those, and records the others as repeats of it.
    public private(set) var firstPlaces: [Int]

    public init(after: Int, through: Int, leads: [Lead], settled: [Rejection], resumeAfter: String?) {
        self.init(after: after, through: through, leads: leads, settled: settled, resumeAfter: resumeAfter,
                  firstPlaces: Self.firstPlaces(of: leads))
    }

    /// `firstPlaces` as planning the batch found them (`PlannedJobBatch.of`).
    init(after: Int, through: Int, leads: [Lead], settled: [Rejection], resumeAfter: String?, firstPlaces: [Int]) {
        self.after = after
        self.through = through
        self.leads = leads
        self.settled = settled
        self.resumeAfter = resumeAfter
        self.firstPlaces = firstPlaces
    }

    /// Every position from `after + 1` through `through` exactly once, as a lead or as a settled
    /// member, leads in position order: a batch that is not whole would lose a member or count
    /// one twice, so the store refuses it.
    public var isWhole: Bool {
        guard after >= 0, through >= after, leads.count + settled.count == through - after else { return false }
        var seen = [Bool](repeating: false, count: through - after)
        // By index: iterating the leads themselves copied each one, every string of it retained
        // and released again, for every batch a job commits (docs/performance.md).
        func mark(_ position: Int) -> Bool {
            guard position > after, position <= through, !seen[position - after - 1] else { return false }
            seen[position - after - 1] = true
            return true
        }
        for index in leads.indices {
            guard mark(leads[index].position), index == 0 || leads[index - 1].position < leads[index].position else { return false }
        }
        for index in settled.indices {
            guard mark(settled[index].position) else { return false }
        }
        return true
    }

    /// What the settled members count for, before the database settles the leads.
    public var settledCounts: ImportCounts {
        var counts = ImportCounts()
        for rejection in settled {
            switch rejection.reason {
            case .invalid: counts.invalid += 1
            case .duplicate: counts.duplicates += 1
            case .error: counts.errors += 1
            }
        }
        return counts
    }

    /// `firstPlaces` worked out from the leads alone. Identities compare byte for byte, as the
    /// database's unique index compares them.
    static func firstPlaces(of leads: [Lead]) -> [Int] {
        var first: [IdentityKey: Int] = [:]
        first.reserveCapacity(leads.count)
        return leads.indices.map { index in
            let key = IdentityKey(leads[index].lead.identity), position = leads[index].position
            if let place = first[key] { return place }
            first[key] = position
            return position
        }
    }
}
