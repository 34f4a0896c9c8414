import LeadCore
import XCTest

/// A job's batches as the runner plans them: positions, member ids, invalid members settled with
/// why, and the parts a failing batch is cut into.
final class JobPlanTests: XCTestCase {
    /// Members at positions after+1..., `nil` email an invalid one.
    func members(_ emails: [String?], after: Int) -> [PlannedMember] {
        emails.enumerated().map { offset, email in
            PlannedMember(position: after + offset + 1, memberID: "m\(after + offset + 1)",
                          member: ListMember(emails: email.map { [$0] } ?? []), resumeAfter: cursor(after + offset + 1))
        }
    }

    func cursor(_ position: Int) -> ListCursor { ListCursor(createdAt: "2026-01-01 00:00:\(position)+00", id: "m\(position)") }

    func testABatchIsWholeWithInvalidMembersSettled() {
        let planned = PlannedJobBatch.of(members(["a@example.com", nil, "b@example.com", "a@example.com"], after: 10), after: 10,
                                         channel: .email)
        XCTAssertTrue(planned.batch.isWhole)
        XCTAssertEqual(planned.batch.after, 10)
        XCTAssertEqual(planned.batch.through, 14)
        XCTAssertEqual(planned.batch.leads.map(\.position), [11, 13, 14], "repeats are the commit's to settle")
        XCTAssertEqual(planned.batch.leads.map(\.memberID), ["m11", "m13", "m14"])
        XCTAssertEqual(planned.batch.settled, [Rejection(position: 12, memberID: "m12", reason: .invalid, detail: "no work email")])
        XCTAssertEqual(planned.batch.resumeAfter, "m14 2026-01-01 00:00:14+00", "the text a job stores")
        XCTAssertEqual(planned.cursors, (11...14).map(cursor))
    }

    /// Two batches are in flight at once: a repeat of the batch before is settled in the plan,
    /// worded as the database words it once that batch committed; other repeats are the commit's.
    func testRepeatsOfTheBatchBeforeAreSettledAsTheDatabaseWouldSettleThem() {
        let before = PlannedJobBatch.of(members(["a@example.com", "b@example.com", nil], after: 0), after: 0, channel: .email)
        let planned = PlannedJobBatch.of(members(["c@example.com", "B@Example.com", "a@example.com", "b@example.com", "c@example.com"],
                                                 after: 3),
                                         after: 3, channel: .email, repeating: before.identities)
        XCTAssertTrue(planned.batch.isWhole)
        XCTAssertEqual(planned.batch.leads.map(\.position), [4, 8], "a repeat within the batch is the commit's to settle")
        XCTAssertEqual(planned.batch.settled, [
            Rejection(position: 5, memberID: "m5", reason: .duplicate, detail: "already in the campaign"),
            Rejection(position: 6, memberID: "m6", reason: .duplicate, detail: "already in the campaign"),
            Rejection(position: 7, memberID: "m7", reason: .duplicate, detail: "a repeat of position 5"),
        ])
        XCTAssertEqual(planned.identities, BatchIdentities(planned.batch.leads))
        XCTAssertEqual(planned.batch.firstPlaces, [4, 4], "8 repeats 4 within the batch")
        XCTAssertEqual(PlannedJobBatch.of(members(["a@example.com"], after: 3), after: 3, channel: .email).batch.leads.count, 1,
                       "with no batch before (a resumed run's first), the commit settles it")
    }

    /// The commit tries the first lead of each identity; the others record a repeat of its place,
    /// within the batch (or the part) being committed.
    func testEachLeadKnowsTheFirstPlaceOfItsIdentity() {
        let planned = PlannedJobBatch.of(members(["a@x.com", "b@x.com", nil, "A@X.com", "c@x.com", "b@x.com", "a@x.com"], after: 20),
                                         after: 20, channel: .email)
        XCTAssertEqual(planned.batch.leads.map(\.position), [21, 22, 24, 25, 26, 27])
        XCTAssertEqual(planned.batch.firstPlaces, [21, 22, 21, 25, 22, 21])
        let (first, second) = try! XCTUnwrap(planned.split())
        XCTAssertEqual(first.batch.firstPlaces, [21, 22, 21])
        XCTAssertEqual(second.batch.firstPlaces, [25, 26, 27], "a part is committed on its own: its own firsts")
    }

    func testSplittingGivesTwoWholePartsThatCoverTheBatch() {
        let planned = PlannedJobBatch.of(members([nil, "a@x.com", nil, "b@x.com", "c@x.com", nil, "d@x.com", nil], after: 0), after: 0,
                                         channel: .email)
        let (first, second) = try! XCTUnwrap(planned.split())
        XCTAssertTrue(first.batch.isWhole)
        XCTAssertTrue(second.batch.isWhole)
        XCTAssertEqual(first.batch.after, 0)
        XCTAssertEqual(first.batch.through, second.batch.after)
        XCTAssertEqual(second.batch.through, 8)
        XCTAssertEqual(first.batch.leads.map(\.position), [2, 4])
        XCTAssertEqual(second.batch.leads.map(\.position), [5, 7])
        XCTAssertEqual(first.batch.resumeAfter, cursor(4).text, "where reading resumes after the first part's last position")
        XCTAssertEqual(second.batch.resumeAfter, cursor(8).text)
        XCTAssertEqual(first.cursors + second.cursors, planned.cursors)

        // Down to one lead, which cannot be cut; it is settled as an error in its place.
        var part = planned
        while let halves = part.split() { part = halves.0 }
        XCTAssertEqual(part.batch.leads.map(\.position), [2])
        XCTAssertNil(part.split())
        let settled = try! XCTUnwrap(part.settlingOnlyLead(as: .error, detail: "refused"))
        XCTAssertTrue(settled.batch.isWhole)
        XCTAssertEqual(settled.batch.leads, [])
        XCTAssertEqual(settled.batch.firstPlaces, [], "no lead left to try")
        XCTAssertEqual(settled.batch.settled.map(\.position), [1, 2, 3])
        XCTAssertEqual(settled.batch.settled[1], Rejection(position: 2, memberID: "m2", reason: .error, detail: "refused"))
        XCTAssertNil(planned.settlingOnlyLead(as: .error, detail: "refused"), "only a batch of one lead")
    }

    func testWhyAMemberIsInvalid() {
        XCTAssertEqual(JobPlan.invalidDetail(ListMember(emails: ["not an email"]), channel: .email), "no usable work email")
        XCTAssertEqual(JobPlan.invalidDetail(ListMember(), channel: .linkedin), "no LinkedIn URL")
        XCTAssertEqual(JobPlan.invalidDetail(ListMember(linkedinURL: " https://linkedin.com/in/Imported-123 "), channel: .linkedin),
                       "a placeholder LinkedIn URL")
        XCTAssertEqual(JobPlan.invalidDetail(ListMember(linkedinURL: "https://example.com/x"), channel: .linkedin),
                       "not a LinkedIn profile URL")
        XCTAssertEqual(JobPlan.invalidDetail(.foreign, channel: .email), "the Lead belongs to another user")
    }
}
