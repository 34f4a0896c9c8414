import LeadCore
import XCTest

/// What the job endpoints decide without the database: keys, fingerprints, the admission order,
/// paths, the rejections' cursor and limit, and the batch a runner commits.
final class JobRequestTests: XCTestCase {
    func testIdempotencyKeys() {
        XCTAssertEqual(IdempotencyKey("a")?.text, "a")
        XCTAssertNotNil(IdempotencyKey(String(repeating: "k", count: 255)))
        XCTAssertNotNil(IdempotencyKey("order 42 / retry ~ #1"), "space and punctuation are printable")
        XCTAssertNotNil(IdempotencyKey(" !~"))
        for bad in ["", String(repeating: "k", count: 256), "tab\there", "del\u{7F}", "caf\u{E9}", "nul\u{0}", "line\n", "\u{1F600}"] {
            XCTAssertNil(IdempotencyKey(bad), bad.debugDescription)
        }
        XCTAssertEqual(IdempotencyKey.invalid.status, 400)
        XCTAssertEqual(IdempotencyKey.invalid.code, "invalid_idempotency_key")
    }

    func testFingerprintsCompareTheCampaignAsAUUIDAndTheBodyByteForByte() {
        let campaign = "0b7e3c4a-1d2f-4a5b-8c6d-7e8f9a0b1c2d"
        let body = Array(#"{"listId":"1c8f4d5b-2e3a-4b6c-9d7e-8f9a0b1c2d3e"}"#.utf8)
        let print = RequestFingerprint.of(campaign: campaign, body: body)
        XCTAssertEqual(print.count, 32)
        XCTAssertEqual(RequestFingerprint.of(campaign: campaign.uppercased(), body: body), print)
        XCTAssertNotEqual(RequestFingerprint.of(campaign: "1b7e3c4a-1d2f-4a5b-8c6d-7e8f9a0b1c2d", body: body), print)
        XCTAssertNotEqual(RequestFingerprint.of(campaign: campaign, body: body + [0x20]), print)
        // The separator keeps campaign and body apart.
        XCTAssertNotEqual(RequestFingerprint.of(campaign: "ab", body: Array("c".utf8)),
                          RequestFingerprint.of(campaign: "a", body: Array("bc".utf8)))
    }

    /// A key seen within 24 hours is decided first (422 before 429), then the queue.
    func testAdmissionOrder() {
        let mine: [UInt8] = [1, 2, 3], other: [UInt8] = [9]
        XCTAssertEqual(JobAdmission.decide(keyedFingerprint: nil, fingerprint: nil, queued: 0), .record)
        XCTAssertEqual(JobAdmission.decide(keyedFingerprint: nil, fingerprint: mine, queued: 99), .record)
        XCTAssertEqual(JobAdmission.decide(keyedFingerprint: nil, fingerprint: mine, queued: 100), .tooManyQueued)
        XCTAssertEqual(JobAdmission.decide(keyedFingerprint: nil, fingerprint: nil, queued: 150), .tooManyQueued)
        XCTAssertEqual(JobAdmission.decide(keyedFingerprint: mine, fingerprint: mine, queued: 100), .returnKeyedJob,
                       "a retry of a recorded job is answered with it, even with the queue full")
        XCTAssertEqual(JobAdmission.decide(keyedFingerprint: other, fingerprint: mine, queued: 100), .keyReused)
        XCTAssertEqual(JobAdmission.keyWindow, .seconds(86_400))
        XCTAssertEqual(JobCreation.keyReused.status, 422)
        XCTAssertEqual(JobCreation.keyReused.error?.code, "idempotency_key_reused")
        XCTAssertEqual(JobCreation.tooManyQueued.status, 429)
        XCTAssertEqual(JobCreation.tooManyQueued.error?.code, "too_many_imports")
        XCTAssertNil(JobCreation.tooManyQueued.job)
    }

    func testJobErrorsHaveTheErrorShape() throws {
        for error in [RequestError.invalidImportID, .importNotFound, .idempotencyKeyReused, .tooManyImports, .invalidCursor, .invalidLimit] {
            let body = try JSONReader.parse(error.body)
            XCTAssertEqual(body["error"], .string(error.code))
            guard case .string(let message)? = body["message"] else { return XCTFail("no message in \(error.body)") }
            XCTAssertFalse(message.isEmpty)
        }
        XCTAssertEqual(RequestError.invalidImportID.status, 400)
        XCTAssertEqual(RequestError.importNotFound.status, 404)
        XCTAssertEqual(RequestError.importNotFound.code, "import_not_found")
    }

    func testPaths() {
        let id = "2d9a5e6c-3f4b-4c7d-ae8f-9a0b1c2d3e4f"
        XCTAssertEqual(ImportJobPath.parse("/api/imports/\(id)")?.resource, .job)
        XCTAssertEqual(ImportJobPath.parse("/api/imports/\(id)")?.segment, Substring(id))
        XCTAssertEqual(ImportJobPath.parse("/api/imports/\(id)/rejections")?.resource, .rejections)
        XCTAssertEqual(ImportJobPath.parse("/api/imports/not-a-uuid")?.segment, "not-a-uuid")
        for other in ["/api/imports", "/api/imports/", "/api/imports//rejections", "/api/imports/\(id)/", "/api/imports/\(id)/other",
                      "/api/imports/\(id)/rejections/x", "/api/import/\(id)"] {
            XCTAssertNil(ImportJobPath.parse(other), other)
        }
        XCTAssertEqual(try ImportJobPath.jobID(Substring(id)).get(), id)
        XCTAssertEqual(ImportJobPath.jobID("2d9a5e6c-3f4b-9c7d-ae8f-9a0b1c2d3e4f"), .failure(.invalidImportID))
        XCTAssertEqual(ImportJobPath.Resource.job.allow, "GET, DELETE")
        XCTAssertEqual(ImportJobPath.Resource.rejections.allow, "GET")
    }

    func testCursorsRoundTripAndNothingElseIsOne() {
        for position in [0, 1, 2, 499, 500, 1_000_000, 10_000_000, RejectionCursor.lastPosition] {
            let cursor = RejectionCursor(afterPosition: position)
            XCTAssertEqual(cursor.text.count, 12)
            XCTAssertTrue(cursor.text.utf8.allSatisfy { "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8.contains($0) })
            XCTAssertEqual(RejectionCursor(text: cursor.text), cursor)
        }
        let valid = RejectionCursor(afterPosition: 1234).text
        var lastChanged = Array(valid.utf8)
        lastChanged[11] = lastChanged[11] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        for bad in ["", "1234", "AQAAAAAAAATS=", valid + "A", String(valid.dropLast()), valid.replacingOccurrences(of: "A", with: "+"),
                    "AgAAAAAAAATS", "AYAAAAAAAAAA", "!!!!!!!!!!!!"] {
            XCTAssertNil(RejectionCursor(text: bad), bad)
        }
        XCTAssertNil(RejectionCursor(text: "AYAAAAAAAAAA"), "a position past Int.max")
        XCTAssertNil(RejectionCursor(text: RejectionCursor(afterPosition: RejectionCursor.lastPosition + 1).text),
                     "a position past what the database holds (it answered 500)")
        XCTAssertNil(RejectionCursor(text: "AQ0000000000"), "schemathesis' find")
        XCTAssertNotEqual(RejectionCursor(text: String(decoding: lastChanged, as: UTF8.self)), RejectionCursor(afterPosition: 1234))
    }

    func testRejectionsQuery() {
        let cursor = RejectionCursor(afterPosition: 77)
        XCTAssertEqual(RejectionsRequest.parse(query: nil), .success(RejectionsRequest(after: nil, limit: 100)))
        XCTAssertEqual(RejectionsRequest.parse(query: ""), .success(RejectionsRequest()))
        XCTAssertEqual(RejectionsRequest.parse(query: "limit=1"), .success(RejectionsRequest(limit: 1)))
        XCTAssertEqual(RejectionsRequest.parse(query: "limit=1000"), .success(RejectionsRequest(limit: 1000)))
        XCTAssertEqual(RejectionsRequest.parse(query: "after=\(cursor.text)&limit=5&x=y"), .success(RejectionsRequest(after: cursor, limit: 5)))
        XCTAssertEqual(RejectionsRequest.parse(query: "limit=5&after=\(cursor.text)"), .success(RejectionsRequest(after: cursor, limit: 5)))
        XCTAssertEqual(RejectionsRequest.parse(query: "%61fter=\(cursor.text)"), .success(RejectionsRequest(after: cursor)), "percent-decoded")
        XCTAssertEqual(RejectionsRequest.parse(query: "other&&limit=3"), .success(RejectionsRequest(limit: 3)))
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=+5", "limit=1e3", "limit=", "limit", "limit=5&limit=5", "limit=%35x",
                    "limit=99999999999999999999", "limit= 5"] {
            XCTAssertEqual(RejectionsRequest.parse(query: bad), .failure(.invalidLimit), bad)
        }
        for bad in ["after=", "after", "after=xyz", "after=\(cursor.text)&after=\(cursor.text)", "after=%ZZ"] {
            XCTAssertEqual(RejectionsRequest.parse(query: bad), .failure(.invalidCursor), bad)
        }
    }

    func testPagesAndTheirNextCursor() {
        func rejection(_ position: Int) -> Rejection {
            Rejection(position: position, memberID: "m\(position)", reason: .duplicate, detail: RejectionDetail.repeatOf(position: 1))
        }
        let request = RejectionsRequest(after: RejectionCursor(afterPosition: 10), limit: 2)
        // One more than the limit came back: there is a next page, from the last item shown.
        let full = RejectionPage.make(request: request, fetched: [rejection(11), rejection(14), rejection(20)], jobIsFinal: true)
        XCTAssertEqual(full.items.map(\.position), [11, 14])
        XCTAssertEqual(full.next, RejectionCursor(afterPosition: 14))
        // The end of a final job's rejections.
        let end = RejectionPage.make(request: request, fetched: [rejection(11), rejection(14)], jobIsFinal: true)
        XCTAssertNil(end.next)
        // A running job may add more: the cursor goes on from the last item, or stays put.
        XCTAssertEqual(RejectionPage.make(request: request, fetched: [rejection(11)], jobIsFinal: false).next, RejectionCursor(afterPosition: 11))
        XCTAssertEqual(RejectionPage.make(request: request, fetched: [], jobIsFinal: false).next, RejectionCursor(afterPosition: 10))
        XCTAssertEqual(RejectionPage.make(request: RejectionsRequest(), fetched: [], jobIsFinal: false).next, RejectionCursor(afterPosition: 0))
        XCTAssertNil(RejectionPage.make(request: RejectionsRequest(), fetched: [], jobIsFinal: true).next)

        let page = RejectionPage(items: [Rejection(position: 3, memberID: "2d9a5e6c-3f4b-4c7d-ae8f-9a0b1c2d3e4f", reason: .invalid,
                                                   detail: "no usable \"work\" email")], next: nil)
        XCTAssertEqual(page.body, #"{"items":[{"position":3,"memberId":"2d9a5e6c-3f4b-4c7d-ae8f-9a0b1c2d3e4f","reason":"invalid","detail":"no usable \"work\" email"}],"next":null}"#)
        let next = RejectionPage(items: [], next: RejectionCursor(afterPosition: 3))
        XCTAssertEqual(next.body, #"{"items":[],"next":"\#(RejectionCursor(afterPosition: 3).text)"}"#)
    }

    func testABatchSettlesEveryPositionOfItsSpanOnce() {
        let lead = CandidateLead(email: "a@example.com", identity: "a@example.com")
        func leads(_ positions: [Int]) -> [JobBatch.Lead] { positions.map { JobBatch.Lead(position: $0, memberID: "m\($0)", lead: lead) } }
        func settled(_ positions: [Int], _ reason: RejectionReason = .invalid) -> [Rejection] {
            positions.map { Rejection(position: $0, memberID: "m\($0)", reason: reason, detail: "d") }
        }
        let whole = JobBatch(after: 500, through: 505, leads: leads([501, 503, 505]), settled: settled([502]) + settled([504], .duplicate),
                             resumeAfter: "cursor")
        XCTAssertTrue(whole.isWhole)
        XCTAssertEqual(whole.settledCounts, ImportCounts(duplicates: 1, invalid: 1))
        XCTAssertTrue(JobBatch(after: 0, through: 0, leads: [], settled: [], resumeAfter: nil).isWhole)
        XCTAssertTrue(JobBatch(after: 0, through: 2, leads: [], settled: settled([2, 1], .error), resumeAfter: nil).isWhole)
        let broken: [JobBatch] = [
            JobBatch(after: 500, through: 505, leads: leads([501, 503]), settled: settled([502, 504]), resumeAfter: nil),         // 505 lost
            JobBatch(after: 500, through: 504, leads: leads([501, 503]), settled: settled([502, 503]), resumeAfter: nil),         // 503 twice
            JobBatch(after: 500, through: 502, leads: leads([500, 501]), settled: settled([502]), resumeAfter: nil),              // 500 was before
            JobBatch(after: 500, through: 502, leads: leads([501, 503]), settled: settled([502]), resumeAfter: nil),              // 503 is after
            JobBatch(after: 500, through: 502, leads: leads([502, 501]), settled: settled([]) + settled([]), resumeAfter: nil),  // out of order
            JobBatch(after: 5, through: 4, leads: [], settled: [], resumeAfter: nil),
            JobBatch(after: -1, through: 0, leads: leads([0]), settled: [], resumeAfter: nil),
        ]
        for batch in broken { XCTAssertFalse(batch.isWhole, "\(batch.after)...\(batch.through)") }
    }
}

final class AsyncPreferenceTests: XCTestCase {
    func testRespondAsyncIsFoundAmongPreferencesInAnyCase() {
        for header in ["respond-async", "Respond-Async", " respond-async ", "wait=10, respond-async", "respond-async; foo=bar",
                       "handling=lenient,respond-async", #"x="a,b", RESPOND-ASYNC"#, "respond-async=whatever"] {
            XCTAssertTrue(AsyncPreference.requested(header), header)
        }
    }

    func testOtherPreferencesAndQuotedTextAreNoRequest() {
        for header in [nil, "", "wait=10", "respond-asynchronously", "x-respond-async", #"foo="respond-async""#,
                       #"foo="a, respond-async""#, "handling=respond-async", "foo; respond-async", #"x="\", respond-async""#] {
            XCTAssertFalse(AsyncPreference.requested(header), header ?? "nil")
        }
    }
}
