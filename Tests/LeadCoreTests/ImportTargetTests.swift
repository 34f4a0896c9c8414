import LeadCore
import XCTest

/// The verdict on a request's campaign and list, and what a database failure means: decisions
/// the store and the importer only feed.
final class ImportTargetTests: XCTestCase {
    func verdict(channel: String?, status: String?, storage: String?) throws -> Result<ImportTarget, RequestError> {
        try ImportTarget.verdict(user: "u", campaign: "c", list: "l", channel: channel, status: status, storage: storage)
    }

    func testTheContractsOrderCampaignListDraft() throws {
        XCTAssertEqual(try verdict(channel: nil, status: nil, storage: nil), .failure(.campaignNotFound))
        XCTAssertEqual(try verdict(channel: nil, status: nil, storage: "rows"), .failure(.campaignNotFound))
        XCTAssertEqual(try verdict(channel: "email", status: "active", storage: nil), .failure(.listNotFound))
        for status in ["active", "paused", "completed", "archived", "anything"] {
            XCTAssertEqual(try verdict(channel: "email", status: status, storage: "leads"), .failure(.campaignNotDraft), status)
        }
        XCTAssertEqual(try verdict(channel: "linkedin", status: "draft", storage: "leads"),
                       .success(ImportTarget(userID: "u", campaignID: "c", listID: "l", channel: .linkedin, storage: .leads)))
        XCTAssertEqual(try verdict(channel: "email", status: "draft", storage: "rows"),
                       .success(ImportTarget(userID: "u", campaignID: "c", listID: "l", channel: .email, storage: .rows)))
    }

    func testAKindTheSchemaShouldHaveKeptOutIsAnError() {
        XCTAssertThrowsError(try verdict(channel: "sms", status: "draft", storage: "rows"))
        XCTAssertThrowsError(try verdict(channel: "email", status: "draft", storage: "csv"))
    }

    func testWhatADatabaseFailureMeans() {
        func failure(_ state: String?, lost: Bool = false) -> DatabaseFailure { DatabaseFailure(sqlState: state, connectionProblem: lost) }
        XCTAssertEqual(failure("23505", lost: true), .unreachable)
        XCTAssertEqual(failure(nil, lost: true), .unreachable)
        XCTAssertEqual(failure("55P03"), .timedOut)
        XCTAssertEqual(failure("57014"), .timedOut)
        XCTAssertEqual(failure("40P01"), .conflict)
        XCTAssertEqual(failure("40001"), .conflict)
        XCTAssertEqual(failure("LI001"), .campaignNotDraft)
        XCTAssertEqual(failure("LI002"), .campaignGone)
        XCTAssertEqual(failure("23503"), .campaignGone)
        XCTAssertEqual(failure("LI003"), .identityUnkeyable)
        XCTAssertEqual(failure("23514"), .rejected)
        XCTAssertEqual(failure(nil), .rejected)

        // A request: 503 only when a retry later may succeed.
        XCTAssertEqual(DatabaseFailure.unreachable.requestError, .unavailable)
        XCTAssertEqual(DatabaseFailure.timedOut.requestError, .unavailable)
        for other: DatabaseFailure in [.conflict, .campaignNotDraft, .campaignGone, .identityUnkeyable, .rejected] {
            XCTAssertEqual(other.requestError, .internalError, "\(other)")
        }
        // A batch: tried again as it is only when nothing of it went in for a passing reason.
        XCTAssertEqual([DatabaseFailure.unreachable, .timedOut, .conflict, .campaignNotDraft, .campaignGone, .identityUnkeyable, .rejected]
            .map(\.isTransient), [false, true, true, false, false, false, false])
    }

    func testTokenLifetimes() {
        XCTAssertEqual(parseTokenLifetime("90d"), .seconds(90 * 86_400))
        XCTAssertEqual(parseTokenLifetime("12h"), .seconds(12 * 3_600))
        XCTAssertEqual(parseTokenLifetime("30m"), .seconds(1_800))
        XCTAssertEqual(parseTokenLifetime("45s"), .seconds(45))
        for bad in ["", "d", "0d", "-1d", "1w", "1.5h", "100000s", " 1d"] {
            XCTAssertNil(parseTokenLifetime(bad), bad)
        }
    }
}
