import LeadCore
import XCTest

final class ImportJobTests: XCTestCase {
    let campaign = "0b7e3c4a-1d2f-4a5b-8c6d-7e8f9a0b1c2d"
    let list = "1c8f4d5b-2e3a-4b6c-9d7e-8f9a0b1c2d3e"
    let id = "2d9a5e6c-3f4b-4c7d-ae8f-9a0b1c2d3e4f"

    func testAQueuedJobHasNullsWhereNothingHappenedYet() {
        let job = ImportJob(id: id, campaignID: campaign, listID: list, state: .queued,
                            createdAt: JobTime(millisecondsSinceEpoch: 1_700_000_000_123))
        XCTAssertEqual(job.body, """
            {"id":"\(id)","campaignId":"\(campaign)","listId":"\(list)","state":"queued",\
            "counts":{"imported":0,"duplicates":0,"invalid":0,"errors":0,"total":0},"partial":false,"httpStatus":null,\
            "createdAt":"2023-11-14T22:13:20.123Z","startedAt":null,"finishedAt":null}
            """)
    }

    func testAFinishedPartialJobEchoesFilterAndDryRun() throws {
        let filter = try JSONReader.parse(#"{"leadIds": ["a"], "limit": 10}"#)
        let job = ImportJob(id: id, campaignID: campaign, listID: list, state: .finished,
                            counts: ImportCounts(imported: 5, duplicates: 2, invalid: 1, errors: 1), httpStatus: 206,
                            createdAt: JobTime(millisecondsSinceEpoch: 0), startedAt: JobTime(millisecondsSinceEpoch: 1000),
                            finishedAt: JobTime(millisecondsSinceEpoch: 61_000), filter: filter, dryRun: false)
        XCTAssertTrue(job.partial)
        XCTAssertEqual(job.body, """
            {"id":"\(id)","campaignId":"\(campaign)","listId":"\(list)","state":"finished",\
            "counts":{"imported":5,"duplicates":2,"invalid":1,"errors":1,"total":9},"partial":true,"httpStatus":206,\
            "createdAt":"1970-01-01T00:00:00.000Z","startedAt":"1970-01-01T00:00:01.000Z","finishedAt":"1970-01-01T00:01:01.000Z",\
            "filter":{"leadIds":["a"],"limit":10},"dryRun":false}
            """)
    }

    func testAFilterGivenAsNullIsEchoedAsNull() throws {
        let job = ImportJob(id: id, campaignID: campaign, listID: list, state: .cancelled,
                            createdAt: JobTime(millisecondsSinceEpoch: 0), filter: .null)
        XCTAssertFalse(job.partial)
        XCTAssertTrue(job.body.hasSuffix(#""finishedAt":null,"filter":null}"#), job.body)
        let parsed = try JSONReader.parse(job.body)
        XCTAssertEqual(parsed["httpStatus"], .null)
        XCTAssertEqual(parsed["state"], .string("cancelled"))
        XCTAssertNil(parsed["dryRun"])
    }

    func testPartialExactlyWhen206() {
        for status in [200, 206, 422, 500] {
            var job = ImportJob(id: id, campaignID: campaign, listID: list, state: .finished, createdAt: JobTime(millisecondsSinceEpoch: 0))
            job.httpStatus = status
            XCTAssertEqual(job.partial, status == 206)
            XCTAssertEqual(try JSONReader.parse(job.body)["partial"], .bool(status == 206))
        }
    }

    func testStateRules() {
        XCTAssertEqual(JobRules.next(.queued, on: .claim), .running)
        XCTAssertEqual(JobRules.next(.running, on: .claim), .running, "a running job whose lease ran out is claimed again")
        XCTAssertEqual(JobRules.next(.queued, on: .cancel), .cancelled)
        XCTAssertEqual(JobRules.next(.running, on: .cancel), .cancelled)
        XCTAssertNil(JobRules.next(.queued, on: .finish(httpStatus: 200)), "only a running job finishes")
        for status in [200, 206, 422, 500] {
            XCTAssertEqual(JobRules.next(.running, on: .finish(httpStatus: status)), .finished)
        }
        for status in [201, 202, 400, 404, 503] {
            XCTAssertNil(JobRules.next(.running, on: .finish(httpStatus: status)), "\(status)")
        }
        for final in [JobState.finished, .cancelled] {
            XCTAssertTrue(final.isFinal)
            for event in [JobRules.Event.claim, .cancel, .finish(httpStatus: 200)] {
                XCTAssertNil(JobRules.next(final, on: event), "\(final) \(event)")
            }
        }
        XCTAssertFalse(JobState.queued.isFinal)
        XCTAssertFalse(JobState.running.isFinal)
    }

    func testOnlyAFinishedJobHasAStatus() {
        XCTAssertTrue(JobRules.isConsistent(state: .finished, httpStatus: 422))
        XCTAssertFalse(JobRules.isConsistent(state: .finished, httpStatus: nil))
        XCTAssertFalse(JobRules.isConsistent(state: .finished, httpStatus: 202))
        XCTAssertTrue(JobRules.isConsistent(state: .cancelled, httpStatus: nil))
        XCTAssertFalse(JobRules.isConsistent(state: .cancelled, httpStatus: 200), "a cancelled job's httpStatus is null")
        XCTAssertTrue(JobRules.isConsistent(state: .queued, httpStatus: nil))
        XCTAssertFalse(JobRules.isConsistent(state: .running, httpStatus: 200))
    }

    /// A job ends as the synchronous import would, except where only this process or its
    /// connection ended: then another run resumes it.
    func testWhatARunnerDoesWhenItsLoopReturns() {
        let some = ImportCounts(imported: 3, duplicates: 1)
        let rows: [(ImportOutcome, Bool, JobRules.RunEnd)] = [
            (ImportOutcome(counts: some, end: .completed), false, .finish(httpStatus: 200)),
            (ImportOutcome(counts: ImportCounts(invalid: 2), end: .completed), false, .finish(httpStatus: 422)),
            (ImportOutcome(counts: ImportCounts(errors: 2), end: .completed), false, .finish(httpStatus: 500)),
            (ImportOutcome(counts: some, end: .pageFetchFailed(pagesRead: 2)), false, .finish(httpStatus: 206)),
            (ImportOutcome(counts: ImportCounts(), end: .pageFetchFailed(pagesRead: 0)), false, .finish(httpStatus: 500)),
            (ImportOutcome(counts: some, end: .pageFetchFailed(pagesRead: 2)), true, .release),
            (ImportOutcome(counts: ImportCounts(), end: .pageFetchFailed(pagesRead: 0)), true, .release),
            (ImportOutcome(counts: some, end: .stopped(.campaignNotDraft)), false, .finish(httpStatus: 206)),
            (ImportOutcome(counts: some, end: .stopped(.campaignGone)), false, .finish(httpStatus: 206)),
            (ImportOutcome(counts: some, end: .stopped(.serviceStopping)), false, .release),
            (ImportOutcome(counts: some, end: .stopped(.databaseLost)), false, .release),
            (ImportOutcome(counts: some, end: .stopped(.databaseBusy)), false, .release),
        ]
        for (outcome, unreachable, expected) in rows {
            XCTAssertEqual(JobRules.afterRun(outcome, databaseUnreachable: unreachable), expected, "\(outcome.end) \(unreachable)")
            if case .finish(let status) = expected { XCTAssertEqual(status, outcome.status) }
        }
    }

    func testRFC3339() {
        let cases: [(Int64, String)] = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ]
        for (milliseconds, text) in cases {
            XCTAssertEqual(JobTime(millisecondsSinceEpoch: milliseconds).rfc3339, text)
        }
        XCTAssertLessThan(JobTime(millisecondsSinceEpoch: 1), JobTime(millisecondsSinceEpoch: 2))
    }

    /// Every day of four centuries against a day-by-day count.
    func testEveryDayOfFourCenturies() {
        var (year, month, day) = (1970, 1, 1)
        func daysIn(_ month: Int, _ year: Int) -> Int {
            if month == 2 { return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28 }
            return [4, 6, 9, 11].contains(month) ? 30 : 31
        }
        for days in 0..<146_097 {
            let text = JobTime(millisecondsSinceEpoch: Int64(days) * 86_400_000 + 86_399_999).rfc3339
            let expected = String(format: "%04d-%02d-%02dT23:59:59.999Z", year, month, day)
            if text != expected { return XCTFail("day \(days): \(text), expected \(expected)") }
            day += 1
            if day > daysIn(month, year) { (day, month) = (1, month + 1) }
            if month > 12 { (month, year) = (1, year + 1) }
        }
    }

    func testJSONValuesAreWrittenAsRead() throws {
        let text = #"{"a":[1,2.50,-3e4,true,false,null],"b":{"c":"q\"uote\\ \n\u0001"},"e":{}}"#
        let value = try JSONReader.parse(text)
        XCTAssertEqual(value.serialized, text)
        XCTAssertEqual(try JSONReader.parse(value.serialized), value)
        var writer = JSONObjectWriter()
        writer.add("n", .null)
        writer.add("o", .object([("k", .array([]))]))
        XCTAssertEqual(writer.result, #"{"n":null,"o":{"k":[]}}"#)
    }
}
