import LeadCore
import XCTest

final class BatchPlanTests: XCTestCase {
    private func member(_ email: String?) -> ListMember {
        ListMember(emails: email.map { [$0] } ?? [])
    }

    func testEveryMemberLandsInExactlyOneBatch() {
        var planner = BatchPlanner(batchSize: 3, channel: .email)
        let members = [member("a@x.io"), member(nil), member("b@x.io"), member("c@x.io"), member("bad"), member("d@x.io"), member(nil)]
        let batches = planner.plan(members)
        XCTAssertEqual(batches.map { $0.leads.map(\.identity) }, [["a@x.io", "b@x.io", "c@x.io"], ["d@x.io"]])
        XCTAssertEqual(batches.map(\.settled), [ImportCounts(invalid: 2), ImportCounts(invalid: 1)])
        XCTAssertEqual(batches.map(\.memberCount).reduce(0, +), members.count)
    }

    func testARepeatOfTheBatchBeforeIsSettledAsADuplicateEvenAcrossPages() {
        var planner = BatchPlanner(batchSize: 2, channel: .email)
        let first = planner.plan([member("a@x.io"), member("b@x.io"), member("A@X.io"), member("c@x.io")])
        XCTAssertEqual(first.map { $0.leads.map(\.identity) }, [["a@x.io", "b@x.io"], ["c@x.io"]])
        XCTAssertEqual(first[1].settled, ImportCounts(duplicates: 1), "a repeat of the batch before")
        // The next page's first batch follows the last batch of this one.
        let second = planner.plan([member("c@x.io"), member("a@x.io")])
        XCTAssertEqual(second.map { $0.leads.map(\.identity) }, [["a@x.io"]], "an older repeat is left to the database")
        XCTAssertEqual(second[0].settled, ImportCounts(duplicates: 1))
    }

    func testAPageWithoutLeadsIsOneBatchOfSettledMembersAndAnEmptyPageNone() {
        var planner = BatchPlanner(batchSize: 500, channel: .linkedin)
        XCTAssertEqual(planner.plan([member("a@x.io"), member(nil)]), [PlannedBatch(settled: ImportCounts(invalid: 2))])
        XCTAssertEqual(planner.plan([]), [])
        XCTAssertEqual(planner.plan([.foreign]), [PlannedBatch(settled: ImportCounts(invalid: 1))])
    }

    /// Repeats are judged byte for byte, as the database's unique index judges them: an NFD
    /// spelling is not a repeat of the NFC one (Swift's String equality would say it is).
    func testRepeatsAreJudgedByteForByte() {
        var planner = BatchPlanner(batchSize: 1, channel: .email)
        let batches = planner.plan([member("jos\u{E9}@x.io"), member("jose\u{301}@x.io"), member("jos\u{E9}@x.io")])
        XCTAssertEqual(batches.map(\.leads.count), [1, 1, 1])
        XCTAssertEqual(batches.map(\.settled), [ImportCounts(), ImportCounts(), ImportCounts()])
    }
}
