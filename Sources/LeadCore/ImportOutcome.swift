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

/// How an import ended: read to its end, or cut short by a page that could not be read.
public enum ImportEnd: Equatable, Sendable {
    case completed
    case pageFetchFailed(pagesRead: Int)
}

public struct ImportOutcome: Equatable, Sendable {
    public var counts: ImportCounts
    public var end: ImportEnd

    public init(counts: ImportCounts, end: ImportEnd) {
        self.counts = counts
        self.end = end
    }

    /// The contract's status table, in one place.
    public var status: Int {
        switch end {
        case .pageFetchFailed(let pagesRead):
            return pagesRead == 0 ? 500 : 206
        case .completed:
            if counts.imported > 0 { return 200 }
            return counts.errors > 0 ? 500 : 422
        }
    }

    /// `{"imported":I,"duplicates":D,"invalid":V,"errors":E,"total":T}`, with `"partial":true`
    /// on a 206 and `"error"`/`"message"` on a 500.
    public var body: String {
        var json = JSONObjectWriter()
        json.add("imported", counts.imported)
        json.add("duplicates", counts.duplicates)
        json.add("invalid", counts.invalid)
        json.add("errors", counts.errors)
        json.add("total", counts.total)
        switch status {
        case 206:
            json.add("partial", true)
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
