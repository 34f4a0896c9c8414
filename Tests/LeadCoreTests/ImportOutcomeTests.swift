import LeadCore
import XCTest

final class ImportOutcomeTests: XCTestCase {
    /// Every row of the contract's status table, and the edges between them.
    func testStatusTable() {
        let rows: [(ImportCounts, ImportEnd, Int)] = [
            (ImportCounts(imported: 1), .completed, 200),
            (ImportCounts(imported: 5, duplicates: 2, invalid: 1, errors: 1), .completed, 200),
            (ImportCounts(imported: 3), .pageFetchFailed(pagesRead: 1), 206),
            (ImportCounts(duplicates: 1000), .pageFetchFailed(pagesRead: 1), 206),
            (ImportCounts(), .pageFetchFailed(pagesRead: 2), 206),
            (ImportCounts(), .completed, 422),
            (ImportCounts(duplicates: 4, invalid: 3), .completed, 422),
            (ImportCounts(), .pageFetchFailed(pagesRead: 0), 500),
            (ImportCounts(duplicates: 2, errors: 1), .completed, 500),
            (ImportCounts(errors: 7), .completed, 500),
            (ImportCounts(), .stopped(.serviceStopping), 206),
            (ImportCounts(imported: 500, invalid: 3), .stopped(.campaignNotDraft), 206),
            (ImportCounts(duplicates: 2), .stopped(.campaignGone), 206),
            (ImportCounts(imported: 1000), .stopped(.databaseLost), 206),
            (ImportCounts(), .stopped(.databaseBusy), 206),
        ]
        for (counts, end, status) in rows {
            XCTAssertEqual(ImportOutcome(counts: counts, end: end).status, status, "\(counts) \(end)")
        }
    }

    /// A campaign's status read without the insert refuses a batch as the insert would.
    func testACampaignsStatusStopsABatchAsTheInsertWould() {
        XCTAssertNil(ImportStop(campaignStatus: "draft"))
        XCTAssertEqual(ImportStop(campaignStatus: nil), .campaignGone)
        for status in ["active", "paused", "completed", "Draft", ""] {
            XCTAssertEqual(ImportStop(campaignStatus: status), .campaignNotDraft, status)
        }
    }

    func testBodies() {
        XCTAssertEqual(ImportOutcome(counts: ImportCounts(imported: 2, duplicates: 1, invalid: 1), end: .completed).body,
                       #"{"imported":2,"duplicates":1,"invalid":1,"errors":0,"total":4}"#)
        XCTAssertEqual(ImportOutcome(counts: ImportCounts(imported: 2), end: .pageFetchFailed(pagesRead: 1)).body,
                       #"{"imported":2,"duplicates":0,"invalid":0,"errors":0,"total":2,"partial":true}"#)
        let failed = ImportOutcome(counts: ImportCounts(errors: 3), end: .completed).body
        XCTAssertTrue(failed.hasPrefix(#"{"imported":0,"duplicates":0,"invalid":0,"errors":3,"total":3,"error":"#), failed)
        XCTAssertTrue(ImportOutcome(counts: ImportCounts(), end: .pageFetchFailed(pagesRead: 0)).body.contains(#""error":"#))
        let stopped = ImportOutcome(counts: ImportCounts(imported: 500), end: .stopped(.campaignNotDraft)).body
        XCTAssertTrue(stopped.hasPrefix(#"{"imported":500,"duplicates":0,"invalid":0,"errors":0,"total":500,"partial":true,"error":"campaign_not_draft","message":"#), stopped)
    }
}
