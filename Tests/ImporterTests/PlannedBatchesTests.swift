@testable import Importer
import LeadCore
@testable import Store
import XCTest

/// How the job runner cuts the members it read into batches at their places (no database).
final class PlannedBatchesTests: XCTestCase {
    func member(_ number: Int) -> JobMember {
        let id = String(format: "00000000-0000-4000-8000-%012d", number)
        return JobMember(id: id, member: ListMember(emails: ["person\(number)@example.com"], company: "Company \(number)"),
                         cursor: ListCursor(createdAt: "2026-01-01 00:00:00.\(number)+00", id: id))
    }

    func testMembersBecomeBatchesInListOrderAtTheirPlaces() {
        var listed = (1...7).map(member)
        let expected = listed
        let batches = JobRunner.plannedBatches(moving: &listed, after: 40, batchSize: 3)
        XCTAssertTrue(listed.isEmpty, "the members are moved out")
        XCTAssertEqual(batches.map(\.count), [3, 3, 1])
        let planned = batches.flatMap { $0 }
        XCTAssertEqual(planned.map(\.position), Array(41...47))
        XCTAssertEqual(planned.map(\.memberID), expected.map(\.id))
        XCTAssertEqual(planned.map(\.member), expected.map(\.member))
        XCTAssertEqual(planned.map(\.resumeAfter), expected.map(\.cursor))
    }

    func testAPageOfExactlyABatchOrNoneMakesOneBatchOrNone() {
        var exact = (1...4).map(member)
        XCTAssertEqual(JobRunner.plannedBatches(moving: &exact, after: 0, batchSize: 4).map { $0.map(\.position) }, [[1, 2, 3, 4]])
        var none: [JobMember] = []
        XCTAssertTrue(JobRunner.plannedBatches(moving: &none, after: 9, batchSize: 4).isEmpty)
    }
}
