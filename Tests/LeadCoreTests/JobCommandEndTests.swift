import LeadCore
import XCTest

/// `jobs show --follow` ends on a job as `import` ends on the same outcome.
final class JobCommandEndTests: XCTestCase {
    func job(_ state: JobState, status: Int? = nil) -> ImportJob {
        ImportJob(id: "2d9a5e6c-3f4b-4c7d-ae8f-9a0b1c2d3e4f", campaignID: "0b7e3c4a-1d2f-4a5b-8c6d-7e8f9a0b1c2d",
                  listID: "1c8f4d5b-2e3a-4b6c-9d7e-8f9a0b1c2d3e", state: state, httpStatus: status,
                  createdAt: JobTime(millisecondsSinceEpoch: 0))
    }

    func testAJobThatCanStillChangeHasNoEnd() {
        XCTAssertNil(JobCommandEnd.of(job(.queued)))
        XCTAssertNil(JobCommandEnd.of(job(.running)))
    }

    func testOnlyA200Succeeds() {
        XCTAssertEqual(JobCommandEnd.of(job(.finished, status: 200)), .success)
        for status in [206, 422, 500] {
            XCTAssertEqual(JobCommandEnd.of(job(.finished, status: status)), .failure("finished with status \(status)"))
        }
        XCTAssertEqual(JobCommandEnd.of(job(.finished)), .failure("the import job finished without a status"))
    }

    func testACancelledJobFailsSayingSo() {
        XCTAssertEqual(JobCommandEnd.of(job(.cancelled)), .failure("the import job was cancelled"))
    }
}
