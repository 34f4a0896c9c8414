/// An `Idempotency-Key` header's value: 1 to 255 printable ASCII characters (space to tilde).
public struct IdempotencyKey: Equatable, Hashable, Sendable {
    public let text: String

    public static let maximumLength = 255

    /// nil when the value is empty, longer than 255 characters, or holds anything but printable
    /// ASCII: a key that is not what the client meant must never match another request.
    public init?(_ header: String) {
        let bytes = header.utf8
        guard (1...Self.maximumLength).contains(bytes.count), bytes.allSatisfy({ (0x20...0x7E).contains($0) }) else { return nil }
        text = header
    }

    /// The error for a key that is not one; decided after every check of sections 1 and 4.
    public static let invalid = RequestError(status: 400, code: "invalid_idempotency_key",
                                             message: "Idempotency-Key must be 1 to 255 printable ASCII characters")
}

/// What makes two asynchronous POSTs with one key the same request: the campaign (compared as a
/// UUID, whatever the case of its hex digits) and the body, byte for byte.
public enum RequestFingerprint {
    public static func of(campaign: String, body: [UInt8]) -> [UInt8] {
        SHA256.hash(Array(campaign.lowercased().utf8) + [0x0A] + body)
    }
}

/// How recording a job came out. The database decides it under a per-user lock, in the
/// contract's order: a key seen within 24 hours first, then the user's queue.
public enum JobCreation: Equatable, Sendable {
    /// A new job was recorded.
    case created(ImportJob)
    /// The same user sent the same key, campaign and body within 24 hours: that first job.
    case existing(ImportJob)
    /// The same user sent the same key within 24 hours with another campaign or body.
    case keyReused
    /// The user already has `JobRules.queuedLimitPerUser` jobs waiting.
    case tooManyQueued

    /// The status of the answer: 202 with a job, else the error's.
    public var status: Int {
        switch self {
        case .created, .existing: return 202
        case .keyReused: return RequestError.idempotencyKeyReused.status
        case .tooManyQueued: return RequestError.tooManyImports.status
        }
    }

    public var job: ImportJob? {
        switch self {
        case .created(let job), .existing(let job): return job
        case .keyReused, .tooManyQueued: return nil
        }
    }

    public var error: RequestError? {
        switch self {
        case .created, .existing: return nil
        case .keyReused: return .idempotencyKeyReused
        case .tooManyQueued: return .tooManyImports
        }
    }
}

/// The rules the job-recording statement applies, stated once: the database receives the limits
/// as parameters and decides under a per-user lock, so concurrent POSTs cannot both pass.
public enum JobAdmission {
    /// How long a key holds: a key older than this starts a new job.
    public static let keyWindow: Duration = .seconds(24 * 60 * 60)

    /// The seconds a `429 too_many_imports` asks the client to wait: about the time a few of
    /// the queue's jobs take.
    public static let retryAfterSeconds = 60

    public enum Verdict: String, Equatable, Sendable {
        case record = "created"
        case returnKeyedJob = "existing"
        case keyReused = "key_reused"
        case tooManyQueued = "too_many"
    }

    /// The decision on one POST. `keyedFingerprint`: the fingerprint of the user's job with the
    /// same key created within `keyWindow`, if any; `fingerprint`: this request's, nil without a key.
    public static func decide(keyedFingerprint: [UInt8]?, fingerprint: [UInt8]?, queued: Int) -> Verdict {
        if let keyedFingerprint, let fingerprint {
            return keyedFingerprint == fingerprint ? .returnKeyedJob : .keyReused
        }
        return queued >= JobRules.queuedLimitPerUser ? .tooManyQueued : .record
    }
}
