/// Where an import job stands: queued, then running, then finished or cancelled.
public enum JobState: String, Sendable, CaseIterable {
    case queued
    case running
    case finished
    case cancelled

    /// A final job never changes again.
    public var isFinal: Bool { self == .finished || self == .cancelled }
}

/// An import recorded to run without the request waiting for it: what `GET /api/imports/{id}`
/// answers (docs/jobs.md).
public struct ImportJob: Equatable, Sendable {
    public var id: String
    public var campaignID: String
    public var listID: String
    public var state: JobState
    /// The members handled so far while running; final once the job is.
    public var counts: ImportCounts
    /// What the synchronous import would have answered: set once finished, never when cancelled.
    public var httpStatus: Int?
    public var createdAt: JobTime
    public var startedAt: JobTime?
    public var finishedAt: JobTime?
    /// The request's `filter` as given; nil when the request had none (a JSON null given is `.null`).
    public var filter: JSONValue?
    /// The request's `dryRun` as given; nil when the request had none.
    public var dryRun: Bool?

    public init(id: String, campaignID: String, listID: String, state: JobState, counts: ImportCounts = ImportCounts(),
                httpStatus: Int? = nil, createdAt: JobTime, startedAt: JobTime? = nil, finishedAt: JobTime? = nil,
                filter: JSONValue? = nil, dryRun: Bool? = nil) {
        self.id = id
        self.campaignID = campaignID
        self.listID = listID
        self.state = state
        self.counts = counts
        self.httpStatus = httpStatus
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.filter = filter
        self.dryRun = dryRun
    }

    /// True exactly when the outcome is a 206.
    public var partial: Bool { httpStatus == 206 }

    /// The job as JSON, in the contract's order of keys; `filter` and `dryRun` only when given.
    public var body: String {
        var json = JSONObjectWriter()
        json.add("id", id)
        json.add("campaignId", campaignID)
        json.add("listId", listID)
        json.add("state", state.rawValue)
        json.add("counts", .object([
            ("imported", .number(String(counts.imported))),
            ("duplicates", .number(String(counts.duplicates))),
            ("invalid", .number(String(counts.invalid))),
            ("errors", .number(String(counts.errors))),
            ("total", .number(String(counts.total))),
        ]))
        json.add("partial", partial)
        json.add("httpStatus", httpStatus.map { .number(String($0)) } ?? .null)
        json.add("createdAt", createdAt.rfc3339)
        json.add("startedAt", startedAt.map { .string($0.rfc3339) } ?? .null)
        json.add("finishedAt", finishedAt.map { .string($0.rfc3339) } ?? .null)
        if let filter { json.add("filter", filter) }
        if let dryRun { json.add("dryRun", dryRun) }
        return json.result
    }
}

/// The rules every job follows, whoever moves it: the request's endpoint, a runner, or the
/// runner that takes over from one that died.
public enum JobRules {
    /// Jobs of one user running at once; the rest of that user's jobs wait, first in first out.
    public static let runningLimitPerUser = 2
    /// Jobs of one user waiting at once; one more is a `429 too_many_imports`.
    public static let queuedLimitPerUser = 100
    /// The statuses a finished job can carry: those of the synchronous import.
    public static let finishedStatuses: Set<Int> = [200, 206, 422, 500]

    public enum Event: Equatable, Sendable {
        /// A runner takes the job: a queued one, or a running one whose runner's lease ran out.
        case claim
        case finish(httpStatus: Int)
        case cancel
    }

    /// The state after `event`, nil when the event does not apply and the job stays as it is
    /// (a cancel of a finished job, say, which is then answered with the job as it ended).
    public static func next(_ state: JobState, on event: Event) -> JobState? {
        switch (state, event) {
        case (.queued, .claim), (.running, .claim): return .running
        case (.running, .finish(let status)): return finishedStatuses.contains(status) ? .finished : nil
        case (.queued, .cancel), (.running, .cancel): return .cancelled
        case (.queued, .finish), (.finished, _), (.cancelled, _): return nil
        }
    }

    /// Whether a state and a status go together: only a finished job has one, and it is one the
    /// synchronous import answers; a cancelled job's is null.
    public static func isConsistent(state: JobState, httpStatus: Int?) -> Bool {
        switch state {
        case .finished: return httpStatus.map { finishedStatuses.contains($0) } ?? false
        case .queued, .running, .cancelled: return httpStatus == nil
        }
    }

    /// What a runner does when its import loop returns.
    public enum RunEnd: Equatable, Sendable {
        /// The job ends with what the synchronous import would have answered.
        case finish(httpStatus: Int)
        /// The job is not over: the service is stopping or the database went away. The runner
        /// gives its lease back and another run resumes where the last batch committed.
        case release
    }

    /// A job ends as the synchronous import would, except where the synchronous import ends only
    /// because this process or its database connection did: a job outlives both. `outcome`
    /// counts every run of the job, so a first page that fails in a resumed run is a 206.
    public static func afterRun(_ outcome: ImportOutcome, databaseUnreachable: Bool) -> RunEnd {
        switch outcome.end {
        case .completed:
            return .finish(httpStatus: outcome.status)
        case .pageFetchFailed:
            return databaseUnreachable ? .release : .finish(httpStatus: outcome.status)
        case .stopped(.campaignNotDraft), .stopped(.campaignGone):
            return .finish(httpStatus: outcome.status)
        case .stopped(.serviceStopping), .stopped(.databaseLost), .stopped(.databaseBusy):
            return .release
        }
    }
}
