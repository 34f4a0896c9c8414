/// How many list members ended which way. `total` is every member inspected.
public struct ImportCounts: Equatable, Sendable {
    public var imported = 0
    public var duplicates = 0
    public var invalid = 0
    public var errors = 0

    public init(imported: Int = 0, duplicates: Int = 0, invalid: Int = 0, errors: Int = 0) {
        self.imported = imported
        self.duplicates = duplicates
        self.invalid = invalid
        self.errors = errors
    }

    public var total: Int { imported + duplicates + invalid + errors }

    public static func + (a: ImportCounts, b: ImportCounts) -> ImportCounts {
        ImportCounts(imported: a.imported + b.imported, duplicates: a.duplicates + b.duplicates,
                     invalid: a.invalid + b.invalid, errors: a.errors + b.errors)
    }

    public static func += (a: inout ImportCounts, b: ImportCounts) { a = a + b }
}

/// How an import ended: read to its end, or cut short. What was committed before a cut stays,
/// and a retry picks up the rest (what is in already comes back as duplicates).
public enum ImportEnd: Equatable, Sendable {
    case completed
    case pageFetchFailed(pagesRead: Int)
    /// Stopped at a batch boundary; `total` counts only the members whose batch was handled.
    case stopped(ImportStop)
}

/// Why an import stopped before the end of its list.
public enum ImportStop: Equatable, Sendable {
    /// The service is stopping or reloading: the rest is for a retry.
    case serviceStopping
    /// The campaign was no longer a draft when the next batch was to commit.
    case campaignNotDraft
    /// The campaign was deleted during the import.
    case campaignGone
    /// The database was lost while a batch was committing, and whether it committed could not be
    /// learned in time: that batch is not counted, and a retry settles it.
    case databaseLost
    /// A batch kept failing on locks or timeouts (tried five times): nothing of it is in.
    case databaseBusy

    public var code: String {
        switch self {
        case .serviceStopping: return "service_stopping"
        case .campaignNotDraft: return "campaign_not_draft"
        case .campaignGone: return "campaign_not_found"
        case .databaseLost, .databaseBusy: return "unavailable"
        }
    }

    /// Why a batch into a campaign whose status is `status` (nil: no such campaign) would be
    /// refused, as the database's insert would refuse it; nil when the campaign takes leads.
    public init?(campaignStatus status: String?) {
        switch status {
        case "draft"?: return nil
        case nil: self = .campaignGone
        default: self = .campaignNotDraft
        }
    }

    public var message: String {
        switch self {
        case .serviceStopping: return "the service is restarting; the import stopped between two batches, and a retry imports the rest"
        case .campaignNotDraft: return "the campaign stopped being a draft during the import; what was imported before stays"
        case .campaignGone: return "the campaign was deleted during the import"
        case .databaseLost: return "the database was lost during the import; a retry imports the rest"
        case .databaseBusy: return "the database kept timing out on a batch; a retry imports the rest"
        }
    }
}

public struct ImportOutcome: Equatable, Sendable {
    public var counts: ImportCounts
    public var end: ImportEnd
    /// Counted, not written (docs/selection.md): the body says `"dryRun": true`.
    public var dryRun: Bool

    public init(counts: ImportCounts, end: ImportEnd, dryRun: Bool = false) {
        self.counts = counts
        self.end = end
        self.dryRun = dryRun
    }

    /// The contract's status table, in one place.
    public var status: Int {
        switch end {
        case .pageFetchFailed(let pagesRead):
            return pagesRead == 0 ? 500 : 206
        case .stopped:
            return 206
        case .completed:
            if counts.imported > 0 { return 200 }
            return counts.errors > 0 ? 500 : 422
        }
    }

    /// `{"imported":I,"duplicates":D,"invalid":V,"errors":E,"total":T}`, with `"partial":true`
    /// on a 206 (and why, when the import was stopped) and `"error"`/`"message"` on a 500.
    public var body: String {
        var json = JSONObjectWriter()
        json.add("imported", counts.imported)
        json.add("duplicates", counts.duplicates)
        json.add("invalid", counts.invalid)
        json.add("errors", counts.errors)
        json.add("total", counts.total)
        if dryRun { json.add("dryRun", true) }
        switch status {
        case 206:
            json.add("partial", true)
            if case .stopped(let reason) = end {
                json.add("error", reason.code)
                json.add("message", reason.message)
            }
        case 500:
            if case .pageFetchFailed = end {
                json.add("error", "list_unreadable")
                json.add("message", "the list could not be read; nothing was imported")
            } else {
                json.add("error", "insert_failed")
                json.add("message", "no lead could be inserted; every insert that was tried failed")
            }
        default:
            break
        }
        return json.result
    }
}
