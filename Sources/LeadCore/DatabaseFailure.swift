/// What a failed statement means to the service, decided from what PostgreSQL said (its
/// SQLSTATE) and whether the connection itself failed.
public enum DatabaseFailure: Equatable, Sendable {
    /// No connection could be had, or the one in use was lost.
    case unreachable
    /// Stopped by the lock timeout (55P03) or the statement timeout (57014).
    case timedOut
    /// A deadlock (40P01) or serialization failure (40001): the same statement may pass later.
    case conflict
    /// The campaign is no longer a draft (LI001, `leadimport_campaign_accepts_leads`).
    case campaignNotDraft
    /// The campaign, or its owner with it, was deleted (LI002; 23503 once rows were on their way).
    case campaignGone
    /// The identity trigger could not key a lead (LI003).
    case identityUnkeyable
    /// A job's batch found the job no longer where the batch starts (LI004): the batch before
    /// it did not commit, or its runner no longer holds the job. Nothing of it was written.
    case batchOutOfTurn
    /// Anything else: the statement, or one of its rows, was refused.
    case rejected

    public init(sqlState: String?, connectionProblem: Bool) {
        if connectionProblem { self = .unreachable; return }
        switch sqlState {
        case "55P03", "57014": self = .timedOut
        case "40P01", "40001": self = .conflict
        case "LI001": self = .campaignNotDraft
        case "LI002", "23503": self = .campaignGone
        case "LI003": self = .identityUnkeyable
        case "LI004": self = .batchOutOfTurn
        default: self = .rejected
        }
    }

    /// For a request that failed before its import began: 503 when the database cannot serve us
    /// now and a retry later may succeed, 500 when something is wrong that a retry will not mend.
    public var requestError: RequestError {
        switch self {
        case .unreachable, .timedOut: return .unavailable
        case .conflict, .campaignNotDraft, .campaignGone, .identityUnkeyable, .batchOutOfTurn, .rejected: return .internalError
        }
    }

    /// For a batch: nothing of it went in, and the same batch tried again may.
    public var isTransient: Bool { self == .timedOut || self == .conflict }
}
