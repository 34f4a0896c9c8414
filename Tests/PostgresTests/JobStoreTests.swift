import Foundation
import LeadCore
import Platform
import Postgres
import Store
import TestSupport
import XCTest

/// Import jobs' statements against the real PostgreSQL, as the service role: admission under
/// concurrency, claims, leases and their rescue, batch commits, cancel and the rejections.
final class JobStoreTests: MigratedDatabaseCase {
    let store = JobStore()

    // MARK: recording

    func testARecordedJobReadsBackForItsOwnerOnly() throws {
        let user = try newUser(), other = try newUser()
        let campaign = try newCampaign(user)
        let list = UUID().uuidString.lowercased()
        let filter = try JSONReader.parse(#"{"where": [{"field": "company", "value": ["Acme", "Initech"]}], "limit": 5}"#)
        let created = try store.record(NewImportJob(user: user, campaign: campaign, list: list, filter: filter, dryRun: true,
                                                    fingerprint: []), on: connection)
        guard case .created(let job) = created else { return XCTFail("\(created)") }
        XCTAssertEqual(job.state, .queued)
        XCTAssertEqual(job.campaignID, campaign)
        XCTAssertEqual(job.listID, list)
        XCTAssertEqual(job.counts, ImportCounts())
        XCTAssertNil(job.httpStatus)
        XCTAssertNil(job.startedAt)
        XCTAssertNil(job.finishedAt)
        XCTAssertEqual(job.dryRun, true)
        XCTAssertEqual(job.filter, filter, "echoed as given: members in their order, numbers as written")
        XCTAssertTrue(job.body.hasSuffix(#""filter":{"where":[{"field":"company","value":["Acme","Initech"]}],"limit":5},"dryRun":true}"#),
                      job.body)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        XCTAssertLessThan(abs(job.createdAt.millisecondsSinceEpoch - now), 60_000)

        let read = try XCTUnwrap(store.job(id: job.id, user: user, on: connection))
        XCTAssertEqual(read.job, job)
        XCTAssertEqual(read.userID, user)
        XCTAssertNil(read.hold)
        XCTAssertNil(try store.job(id: job.id, user: other, on: connection), "someone else's job is not found")
        XCTAssertNil(try store.job(id: UUID().uuidString, user: user, on: connection))

        // Without filter or dryRun in the request, the job has neither; a filter given as null is kept.
        guard case .created(let plain) = try store.record(NewImportJob(user: user, campaign: campaign, list: list, fingerprint: []),
                                                          on: connection) else { return XCTFail() }
        XCTAssertNil(plain.filter)
        XCTAssertNil(plain.dryRun)
        XCTAssertNil(try JSONReader.parse(plain.body)["filter"])
        guard case .created(let null) = try store.record(NewImportJob(user: user, campaign: campaign, list: list, filter: .null,
                                                                      fingerprint: []), on: connection) else { return XCTFail() }
        XCTAssertEqual(null.filter, .null)
    }

    func testConcurrentPostsWithOneKeyRecordOneJob() throws {
        let user = try newUser()
        let campaign = try newCampaign(user)
        let list = UUID().uuidString.lowercased()
        let body = Array(#"{"listId":"\#(list)"}"#.utf8)
        let request = NewImportJob(user: user, campaign: campaign, list: list, key: IdempotencyKey("retry-me"),
                                   fingerprint: RequestFingerprint.of(campaign: campaign, body: body))
        let outcomes = Locked<[JobCreation]>([])
        let url = database.serviceURL
        concurrently(12) { _ in
            do {
                let connection = try Connection.connect(url, settings: testSettings)
                defer { connection.close() }
                let outcome = try JobStore().record(request, on: connection)
                outcomes.withLock { $0.append(outcome) }
            } catch {
                XCTFail("\(error)")
            }
        }
        let all = outcomes.current
        XCTAssertEqual(all.count, 12)
        XCTAssertEqual(all.filter { if case .created = $0 { return true } else { return false } }.count, 1)
        XCTAssertEqual(Set(all.compactMap(\.job?.id)).count, 1, "every POST answers with the one job")
        XCTAssertEqual(all.map(\.status), Array(repeating: 202, count: 12))
        XCTAssertEqual(try count("SELECT count(*) FROM import_jobs WHERE user_id = $1", [user]), 1)

        // The same key with another body, or another campaign: 422; another user may use the key.
        var changed = request
        changed.fingerprint = RequestFingerprint.of(campaign: campaign, body: body + Array(" ".utf8))
        XCTAssertEqual(try store.record(changed, on: connection), .keyReused)
        changed.fingerprint = RequestFingerprint.of(campaign: try newCampaign(user), body: body)
        XCTAssertEqual(try store.record(changed, on: connection), .keyReused)
        var someoneElse = request
        someoneElse.user = try newUser()
        guard case .created = try store.record(someoneElse, on: connection) else { return XCTFail("keys are per user") }
        // Without a key every POST records a job.
        var unkeyed = request
        unkeyed.key = nil
        guard case .created(let second) = try store.record(unkeyed, on: connection) else { return XCTFail() }
        XCTAssertNotEqual(second.id, all.first?.job?.id)
    }

    func testAKeyOlderThan24HoursStartsANewJob() throws {
        let user = try newUser()
        let campaign = try newCampaign(user)
        let request = NewImportJob(user: user, campaign: campaign, list: UUID().uuidString, key: IdempotencyKey("daily"),
                                   fingerprint: [1, 2, 3])
        guard case .created(let first) = try store.record(request, on: connection) else { return XCTFail() }
        try owner("UPDATE import_jobs SET created_at = now() - interval '23 hours 59 minutes' WHERE id = $1", [first.id])
        guard case .existing(let again) = try store.record(request, on: connection) else { return XCTFail() }
        XCTAssertEqual(again.id, first.id)
        try owner("UPDATE import_jobs SET created_at = now() - interval '24 hours 1 minute' WHERE id = $1", [first.id])
        guard case .created(let fresh) = try store.record(request, on: connection) else { return XCTFail("the key expired") }
        XCTAssertNotEqual(fresh.id, first.id)
        // The new job holds the key now; a different request with it is refused.
        var other = request
        other.fingerprint = [4]
        XCTAssertEqual(try store.record(other, on: connection), .keyReused)
    }

    func testTheHundredQueuedLimitHoldsUnderConcurrency() throws {
        let user = try newUser()
        let campaign = try newCampaign(user)
        try queue(95, user: user, campaign: campaign)
        let outcomes = Locked<[JobCreation]>([])
        let url = database.serviceURL
        concurrently(12) { _ in
            do {
                let connection = try Connection.connect(url, settings: testSettings)
                defer { connection.close() }
                let outcome = try JobStore().record(NewImportJob(user: user, campaign: campaign, list: UUID().uuidString, fingerprint: []),
                                                    on: connection)
                outcomes.withLock { $0.append(outcome) }
            } catch {
                XCTFail("\(error)")
            }
        }
        XCTAssertEqual(outcomes.current.filter { $0.status == 202 }.count, 5)
        XCTAssertEqual(outcomes.current.filter { $0 == .tooManyQueued }.count, 7)
        XCTAssertEqual(try count("SELECT count(*) FROM import_jobs WHERE user_id = $1 AND state = 'queued'", [user]), 100)

        // A reused key is answered before the queue (422 before 429), and a retry gets its job.
        let keyed = NewImportJob(user: user, campaign: campaign, list: UUID().uuidString, key: IdempotencyKey("k"), fingerprint: [7])
        try owner("UPDATE import_jobs SET idempotency_key = 'k', request_fingerprint = '\\x07' WHERE id = (SELECT min(id::text)::uuid FROM import_jobs WHERE user_id = $1)", [user])
        guard case .existing = try store.record(keyed, on: connection) else { return XCTFail("a retry is answered with its job") }
        var reused = keyed
        reused.fingerprint = [8]
        XCTAssertEqual(try store.record(reused, on: connection), .keyReused)
        // Another user's queue is their own.
        guard case .created = try store.record(NewImportJob(user: try newUser(), campaign: campaign, list: UUID().uuidString,
                                                            fingerprint: []), on: connection) else { return XCTFail() }
        // A place frees up once a job starts.
        XCTAssertNotNil(try store.claim(on: connection))
        guard case .created = try store.record(NewImportJob(user: user, campaign: campaign, list: UUID().uuidString, fingerprint: []),
                                               on: connection) else { return XCTFail() }
    }

    // MARK: claiming

    func testTwoClaimersNeverGetTheSameJob() throws {
        var expected = Set<String>()
        for _ in 0..<20 {
            let user = try newUser()
            expected.formUnion(try queue(2, user: user, campaign: try newCampaign(user)))
        }
        let claimed = Locked<[String]>([])
        let url = database.serviceURL
        concurrently(6) { _ in
            do {
                let connection = try Connection.connect(url, settings: testSettings)
                defer { connection.close() }
                while let record = try JobStore().claim(on: connection) {
                    claimed.withLock { $0.append(record.job.id) }
                }
            } catch {
                XCTFail("\(error)")
            }
        }
        // A claimer that found every remaining job locked by the others stopped early; whatever
        // is left is claimed now.
        while let record = try store.claim(on: connection) { claimed.withLock { $0.append(record.job.id) } }
        XCTAssertEqual(claimed.current.count, 40)
        XCTAssertEqual(Set(claimed.current), expected, "every job claimed, none twice")
        XCTAssertEqual(try count("SELECT count(*) FROM import_jobs WHERE attempts = 1 AND state = 'running'"), 40)
        XCTAssertEqual(try count("SELECT count(DISTINCT lease_token) FROM import_jobs"), 40)
    }

    /// Claimers started together, round after round, while running jobs finish and free places:
    /// no user ever has more than two running.
    func testAUserRunsAtMostTwoJobsEvenWithManyClaimers() throws {
        let users = try (0..<3).map { _ in try newUser() }
        for user in users { try queue(30, user: user, campaign: try newCampaign(user)) }
        let url = database.serviceURL
        let threads = 8
        let connections = try (0..<threads).map { _ in try Connection.connect(url, settings: testSettings) }
        defer { connections.forEach { $0.close() } }
        for _ in 0..<20 {
            let claimed = Locked<[JobRecord]>([])
            let start = CountdownLatch(count: 1)
            let ready = CountdownLatch(count: threads)
            let done = CountdownLatch(count: threads)
            for index in 0..<threads {
                try startThread(name: "claimer-\(index)") {
                    defer { done.countDown() }
                    ready.countDown()
                    start.wait()
                    do {
                        while let record = try JobStore().claim(on: connections[index]) { claimed.withLock { $0.append(record) } }
                    } catch {
                        XCTFail("\(error)")
                    }
                }
            }
            ready.wait()
            start.countDown()
            done.wait()
            let running = try connection.query("""
                SELECT max(n) FROM (SELECT count(*) AS n FROM import_jobs WHERE state = 'running' GROUP BY user_id) per_user
                """).first?.int(0) ?? 0
            XCTAssertLessThanOrEqual(running, 2)
            if running > 2 { return }
            // One running job of each user ends; the next round's claimers race for the places.
            for user in users {
                if let hold = try connection.query(
                    "SELECT id, lease_token FROM import_jobs WHERE user_id = $1 AND state = 'running' LIMIT 1", [user]
                ).first.map({ JobHold(jobID: try $0.requiredString(0), token: try $0.requiredString(1)) }) {
                    XCTAssertNotNil(try store.finish(hold, httpStatus: 200, on: connection))
                }
            }
        }
        // After twenty rounds each user ran twenty jobs to their end and has one running.
        XCTAssertEqual(try count("SELECT count(*) FROM import_jobs WHERE state = 'finished'"), 60)
        XCTAssertEqual(try count("SELECT count(*) FROM import_jobs WHERE state = 'running'"), 3)
    }

    func testClaimsAreFirstInFirstOutAndABusyUserNeverDelaysAnother() throws {
        let heavy = try newUser(), light = try newUser()
        let heavyJobs = try queue(5, user: heavy, campaign: try newCampaign(heavy))
        let lightJobs = try queue(1, user: light, campaign: try newCampaign(light))
        let first = try XCTUnwrap(store.claim(on: connection))
        let second = try XCTUnwrap(store.claim(on: connection))
        XCTAssertEqual([first.job.id, second.job.id], Array(heavyJobs.prefix(2)), "oldest first")
        XCTAssertEqual(try store.claim(on: connection)?.job.id, lightJobs[0], "the busy user's three older jobs wait; this one does not")
        XCTAssertNil(try store.claim(on: connection), "two running each")

        // A place frees: the busy user's next job, in order.
        XCTAssertNotNil(try store.finish(try XCTUnwrap(first.hold), httpStatus: 200, on: connection))
        XCTAssertEqual(try store.claim(on: connection)?.job.id, heavyJobs[2])
        XCTAssertNotNil(try store.cancel(id: second.job.id, user: heavy, on: connection))
        XCTAssertEqual(try store.claim(on: connection)?.job.id, heavyJobs[3])
        XCTAssertNil(try store.claim(on: connection))
        let claimedAt = try XCTUnwrap(store.job(id: heavyJobs[2], user: heavy, on: connection)?.job.startedAt)
        XCTAssertLessThanOrEqual(first.job.startedAt!, claimedAt)
    }

    // MARK: leases

    func testAnExpiredLeaseIsRescuedBeforeTheQueue() throws {
        let short = JobStore(timing: LeaseTiming(duration: .milliseconds(300), renewEvery: .milliseconds(100),
                                                 stopMargin: .milliseconds(50), retryPause: .milliseconds(50), pollEvery: .milliseconds(100)))
        let user = try newUser(), other = try newUser()
        let job = try queue(1, user: user, campaign: try newCampaign(user))[0]
        let dead = try XCTUnwrap(short.claim(on: connection))
        XCTAssertEqual(dead.job.id, job)
        let queued = try queue(1, user: other, campaign: try newCampaign(other))[0]
        XCTAssertEqual(try short.claim(on: connection)?.job.id, queued, "the lease is still live")
        try queue(1, user: other, campaign: try newCampaign(other))
        usleep(400_000)

        // The runner died: its lease ran out, and the next claim takes the job over first.
        let rescued = try XCTUnwrap(store.claim(on: connection))
        XCTAssertEqual(rescued.job.id, job)
        XCTAssertEqual(rescued.job.state, .running)
        XCTAssertEqual(rescued.attempts, 2)
        XCTAssertEqual(rescued.job.startedAt, dead.job.startedAt, "started once")
        XCTAssertNotEqual(rescued.leaseToken, dead.leaseToken)

        // The old runner comes back: every write of its is refused.
        let stale = try XCTUnwrap(dead.hold)
        XCTAssertFalse(try store.renew(stale, on: connection))
        XCTAssertFalse(try store.release(stale, on: connection))
        XCTAssertNil(try store.finish(stale, httpStatus: 200, on: connection))
        XCTAssertTrue(try store.renew(try XCTUnwrap(rescued.hold), on: connection))
    }

    func testARunnerWhoseLeaseRanOutButWasNotTakenOverCanNoLongerWrite() throws {
        let user = try newUser()
        try queue(1, user: user, campaign: try newCampaign(user))
        let claim = try XCTUnwrap(store.claim(on: connection))
        let hold = try XCTUnwrap(claim.hold)
        try owner("UPDATE import_jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [hold.jobID])
        XCTAssertFalse(try store.renew(hold, on: connection))
        guard case .notHeld = try store.commit(batch(after: 0, settled: [1]), of: hold, on: connection) else { return XCTFail() }
        XCTAssertNil(try store.finish(hold, httpStatus: 200, on: connection))
        XCTAssertEqual(try store.claim(on: connection)?.job.id, hold.jobID)
    }

    func testRenewExtendsTheLeaseAndReleaseHandsTheJobOnAtOnce() throws {
        let user = try newUser()
        try queue(1, user: user, campaign: try newCampaign(user))
        let claim = try XCTUnwrap(store.claim(on: connection))
        let hold = try XCTUnwrap(claim.hold)
        let before = try count("SELECT (extract(epoch FROM lease_expires_at) * 1000)::bigint FROM import_jobs WHERE id = $1", [hold.jobID])
        usleep(20_000)
        XCTAssertTrue(try store.renew(hold, on: connection))
        let after = try count("SELECT (extract(epoch FROM lease_expires_at) * 1000)::bigint FROM import_jobs WHERE id = $1", [hold.jobID])
        XCTAssertGreaterThan(after, before)
        XCTAssertEqual(try count("SELECT round(extract(epoch FROM lease_expires_at - now()))::int FROM import_jobs WHERE id = $1",
                                 [hold.jobID]), 15)
        XCTAssertNil(try store.claim(on: connection), "held")
        XCTAssertTrue(try store.release(hold, on: connection))
        let next = try XCTUnwrap(store.claim(on: connection))
        XCTAssertEqual(next.job.id, hold.jobID)
        XCTAssertEqual(next.attempts, 2)
        XCTAssertFalse(try store.renew(hold, on: connection))
    }

    // MARK: batches

    func testABatchCommitsLeadsRejectionsAndProgressTogether() throws {
        let user = try newUser()
        let campaign = try newCampaign(user, channel: "email")
        try connection.query("INSERT INTO campaign_leads (campaign_id, user_id, email) VALUES ($1, $2, 'old@example.com')", [campaign, user])
        let job = try queue(1, user: user, campaign: campaign)[0]
        let hold = try XCTUnwrap(store.claim(on: connection)?.hold)
        let members = (1...7).map { _ in UUID().uuidString.lowercased() }
        let first = JobBatch(after: 0, through: 7, leads: [
            lead(1, members[0], "a@example.com"), lead(3, members[2], "OLD@example.com"), lead(4, members[3], "b@example.com"),
            lead(6, members[5], " A@example.com "), lead(7, members[6], "c@example.com"),
        ], settled: [
            Rejection(position: 2, memberID: members[1], reason: .invalid, detail: "no usable work email"),
            Rejection(position: 5, memberID: members[4], reason: .duplicate, detail: RejectionDetail.repeatOf(position: 4)),
        ], resumeAfter: "cursor-7")
        guard case .committed(let record) = try store.commit(first, of: hold, on: connection) else { return XCTFail() }
        XCTAssertEqual(record.job.counts, ImportCounts(imported: 3, duplicates: 3, invalid: 1))
        XCTAssertEqual(record.resumePosition, 7)
        XCTAssertEqual(record.resumeCursor, "cursor-7")
        XCTAssertEqual(try count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign]), 4)
        XCTAssertEqual(try connection.query("SELECT source, source_ref, status FROM campaign_leads WHERE email = 'b@example.com'").first
            .map { try [$0.string(0), $0.string(1), $0.string(2)] }, ["list", record.job.listID, "pending"])

        let page = try XCTUnwrap(store.rejections(id: job, user: user, request: RejectionsRequest(), on: connection))
        XCTAssertEqual(page.items, [
            Rejection(position: 2, memberID: members[1], reason: .invalid, detail: "no usable work email"),
            Rejection(position: 3, memberID: members[2], reason: .duplicate, detail: RejectionDetail.alreadyInCampaign),
            Rejection(position: 5, memberID: members[4], reason: .duplicate, detail: RejectionDetail.repeatOf(position: 4)),
            Rejection(position: 6, memberID: members[5], reason: .duplicate, detail: RejectionDetail.repeatOf(position: 1)),
        ])
        XCTAssertEqual(page.next, RejectionCursor(afterPosition: 6), "the job still runs: more may come")

        // The same batch again (a retry after a lost answer) writes nothing and counts nothing twice.
        guard case .notHeld = try store.commit(first, of: hold, on: connection) else { return XCTFail() }
        XCTAssertEqual(try store.job(id: job, user: user, on: connection)?.job.counts.total, 7)
        XCTAssertEqual(try count("SELECT count(*) FROM import_rejections WHERE job_id = $1", [job]), 4)

        // A batch of settled members only never asks the campaign.
        try owner("UPDATE campaigns SET status = 'active' WHERE id = $1", [campaign])
        guard case .committed(let second) = try store.commit(batch(after: 7, settled: [8, 9]), of: hold, on: connection)
        else { return XCTFail() }
        XCTAssertEqual(second.job.counts, ImportCounts(imported: 3, duplicates: 3, invalid: 3))
        guard case .refused(.campaignNotDraft) = try store.commit(
            JobBatch(after: 9, through: 11, leads: [lead(10, UUID().uuidString, "d@example.com")],
                     settled: [Rejection(position: 11, memberID: UUID().uuidString, reason: .invalid, detail: "x")], resumeAfter: nil),
            of: hold, on: connection) else { return XCTFail() }
        XCTAssertEqual(try store.job(id: job, user: user, on: connection)?.resumePosition, 9, "nothing of the refused batch")
        XCTAssertEqual(try count("SELECT count(*) FROM import_rejections WHERE job_id = $1", [job]), 6)

        let finished = try XCTUnwrap(store.finish(hold, httpStatus: 206, on: connection))
        XCTAssertEqual(finished.job.state, .finished)
        XCTAssertTrue(finished.job.partial)
        XCTAssertNotNil(finished.job.finishedAt)
        XCTAssertNil(finished.hold)
        // A finished job's rejections number exactly its counts, by reason.
        let all = try XCTUnwrap(store.rejections(id: job, user: user, request: RejectionsRequest(limit: 1000), on: connection))
        XCTAssertNil(all.next)
        XCTAssertEqual(all.items.filter { $0.reason == .duplicate }.count, finished.job.counts.duplicates)
        XCTAssertEqual(all.items.filter { $0.reason == .invalid }.count, finished.job.counts.invalid)
        XCTAssertEqual(all.items.filter { $0.reason == .error }.count, finished.job.counts.errors)
    }

    func testABatchCommitIsAllOrNothing() throws {
        let user = try newUser()
        let campaign = try newCampaign(user, channel: "email")
        let job = try queue(1, user: user, campaign: campaign)[0]
        let hold = try XCTUnwrap(store.claim(on: connection)?.hold)
        var broken = lead(2, UUID().uuidString, "bad@example.com")
        broken.lead.customFields = "{not json"
        let failing = JobBatch(after: 0, through: 3, leads: [lead(1, UUID().uuidString, "a@example.com"), broken],
                               settled: [Rejection(position: 3, memberID: UUID().uuidString, reason: .invalid, detail: "x")],
                               resumeAfter: "c")
        guard case .failed(let error) = try store.commit(failing, of: hold, on: connection) else { return XCTFail() }
        XCTAssertTrue(error.isDataException, "\(error)")
        XCTAssertEqual(try count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign]), 0)
        XCTAssertEqual(try count("SELECT count(*) FROM import_rejections WHERE job_id = $1", [job]), 0)
        let unchanged = try XCTUnwrap(store.job(id: job, user: user, on: connection))
        XCTAssertEqual(unchanged.resumePosition, 0)
        XCTAssertEqual(unchanged.job.counts.total, 0)
        XCTAssertNil(unchanged.resumeCursor)

        // Split as a runner would: the good lead commits, the bad one is an error of its own.
        guard case .committed = try store.commit(JobBatch(after: 0, through: 1, leads: [lead(1, UUID().uuidString, "a@example.com")],
                                                          settled: [], resumeAfter: nil), of: hold, on: connection) else { return XCTFail() }
        guard case .committed(let done) = try store.commit(JobBatch(after: 1, through: 3, leads: [], settled: [
            Rejection(position: 2, memberID: broken.memberID, reason: .error, detail: error.message),
            Rejection(position: 3, memberID: UUID().uuidString, reason: .invalid, detail: "x"),
        ], resumeAfter: "c"), of: hold, on: connection) else { return XCTFail() }
        XCTAssertEqual(done.job.counts, ImportCounts(imported: 1, invalid: 1, errors: 1))

        // A batch that would lose or double a member is never sent.
        XCTAssertThrowsError(try store.commit(JobBatch(after: 3, through: 5, leads: [], settled: [
            Rejection(position: 4, memberID: UUID().uuidString, reason: .invalid, detail: "x")], resumeAfter: nil), of: hold, on: connection)) {
            XCTAssertTrue($0 is JobStore.BatchNotWhole)
        }
        // And the database refuses counts that do not add up to the position, whoever writes them.
        XCTAssertThrowsError(try connection.query("UPDATE import_jobs SET resume_position = resume_position + 1 WHERE id = $1", [job])) {
            XCTAssertTrue(($0 as! PostgresError).isCheckViolation)
        }
        // And a member recorded twice.
        XCTAssertThrowsError(try connection.query("""
            INSERT INTO import_rejections (job_id, position, member_id, reason, detail) VALUES ($1, 3, gen_random_uuid(), 'invalid', 'x')
            """, [job])) { XCTAssertTrue(($0 as! PostgresError).isUniqueViolation) }
    }

    func testALostLeaseCommitsNothing() throws {
        let user = try newUser()
        let campaign = try newCampaign(user, channel: "email")
        let job = try queue(1, user: user, campaign: campaign)[0]
        let stalled = try XCTUnwrap(store.claim(on: connection)?.hold)
        guard case .committed = try store.commit(batch(after: 0, leads: [(1, "a@example.com")]), of: stalled, on: connection)
        else { return XCTFail() }
        // The runner stalls past its lease; another process takes the job over and goes on.
        try owner("UPDATE import_jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [job])
        let takeover = try XCTUnwrap(store.claim(on: connection))
        XCTAssertEqual(takeover.resumePosition, 1, "it resumes after the last batch that committed")
        let current = try XCTUnwrap(takeover.hold)

        // The stalled runner wakes up and commits its next batch: nothing of it lands.
        guard case .notHeld = try store.commit(batch(after: 1, leads: [(2, "b@example.com")], settled: [3]), of: stalled, on: connection)
        else { return XCTFail("a runner that lost its lease must commit nothing") }
        XCTAssertEqual(try count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign]), 1)
        XCTAssertEqual(try count("SELECT count(*) FROM import_rejections WHERE job_id = $1", [job]), 0)
        XCTAssertEqual(try store.job(id: job, user: user, on: connection)?.resumePosition, 1)

        guard case .committed(let record) = try store.commit(batch(after: 1, leads: [(2, "b@example.com")], settled: [3]),
                                                             of: current, on: connection) else { return XCTFail() }
        XCTAssertEqual(record.job.counts, ImportCounts(imported: 2, invalid: 1))
    }

    func testADryRunCountsWithoutInserting() throws {
        let user = try newUser()
        let campaign = try newCampaign(user, channel: "email")
        try connection.query("INSERT INTO campaign_leads (campaign_id, user_id, email) VALUES ($1, $2, 'old@example.com')", [campaign, user])
        guard case .created = try store.record(NewImportJob(user: user, campaign: campaign, list: UUID().uuidString, dryRun: true,
                                                            fingerprint: []), on: connection) else { return XCTFail() }
        let hold = try XCTUnwrap(store.claim(on: connection)?.hold)
        guard case .committed(let record) = try store.commit(
            batch(after: 0, leads: [(1, "new@example.com"), (2, "Old@example.com"), (3, "NEW@example.com")]), of: hold, on: connection)
        else { return XCTFail() }
        XCTAssertEqual(record.job.counts, ImportCounts(imported: 1, duplicates: 2))
        XCTAssertEqual(try count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign]), 1, "nothing written")
    }

    // MARK: cancel

    func testCancel() throws {
        let user = try newUser(), other = try newUser()
        let campaign = try newCampaign(user, channel: "email")
        let jobs = try queue(2, user: user, campaign: campaign)
        let running = try XCTUnwrap(store.claim(on: connection))
        XCTAssertEqual(running.job.id, jobs[0])
        let hold = try XCTUnwrap(running.hold)
        guard case .committed = try store.commit(batch(after: 0, leads: [(1, "a@example.com"), (2, "b@example.com")]), of: hold,
                                                 on: connection) else { return XCTFail() }

        XCTAssertNil(try store.cancel(id: jobs[0], user: other, on: connection), "someone else's job is not found")
        let cancelled = try XCTUnwrap(store.cancel(id: jobs[0], user: user, on: connection))
        XCTAssertEqual(cancelled.job.state, .cancelled)
        XCTAssertNil(cancelled.job.httpStatus)
        XCTAssertNotNil(cancelled.job.finishedAt)
        XCTAssertNotNil(cancelled.job.startedAt)
        XCTAssertEqual(cancelled.job.counts.imported, 2, "what was committed stays")
        XCTAssertEqual(try count("SELECT (stats->>'total')::int FROM campaigns WHERE id = $1", [campaign]), 2, "stats recomputed")
        // The runner's next batch, renewal and finish are refused: no batch starts after the cancel.
        guard case .notHeld = try store.commit(batch(after: 2, leads: [(3, "c@example.com")]), of: hold, on: connection)
        else { return XCTFail() }
        XCTAssertFalse(try store.renew(hold, on: connection))
        XCTAssertNil(try store.finish(hold, httpStatus: 200, on: connection))
        XCTAssertEqual(try count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign]), 2)

        // A queued job is cancelled without ever starting; a second cancel answers the same.
        let queued = try XCTUnwrap(store.cancel(id: jobs[1], user: user, on: connection))
        XCTAssertEqual(queued.job.state, .cancelled)
        XCTAssertNil(queued.job.startedAt)
        XCTAssertEqual(try store.cancel(id: jobs[1], user: user, on: connection)?.job, queued.job)
        XCTAssertNil(try store.claim(on: connection), "cancelled jobs are never claimed")

        // A job that ended first is answered as it ended.
        let last = try queue(1, user: user, campaign: campaign)[0]
        let finisher = try XCTUnwrap(store.claim(on: connection)?.hold)
        _ = try XCTUnwrap(store.finish(finisher, httpStatus: 422, on: connection))
        let ended = try XCTUnwrap(store.cancel(id: last, user: user, on: connection))
        XCTAssertEqual(ended.job.state, .finished)
        XCTAssertEqual(ended.job.httpStatus, 422)
    }

    /// The operator's statements name a job by its id alone, whoever owns it, and cancel as the
    /// user's cancel does.
    func testTheOperatorReadsAndCancelsAnyUsersJob() throws {
        let user = try newUser()
        let campaign = try newCampaign(user, channel: "email")
        let jobs = try queue(3, user: user, campaign: campaign)
        XCTAssertEqual(try store.job(id: jobs[0], on: connection)?.job, try store.job(id: jobs[0], user: user, on: connection)?.job)
        XCTAssertEqual(try store.job(id: jobs[0], on: connection)?.userID, user)
        XCTAssertNil(try store.job(id: UUID().uuidString, on: connection))
        XCTAssertNil(try store.cancel(id: UUID().uuidString, on: connection))

        let hold = try XCTUnwrap(store.claim(on: connection)?.hold)
        guard case .committed = try store.commit(batch(after: 0, leads: [(1, "a@example.com")]), of: hold, on: connection)
        else { return XCTFail() }
        let running = try XCTUnwrap(store.cancel(id: jobs[0], on: connection))
        XCTAssertEqual(running.job.state, .cancelled)
        XCTAssertNil(running.job.httpStatus)
        XCTAssertEqual(running.job.counts.imported, 1)
        XCTAssertEqual(try count("SELECT (stats->>'total')::int FROM campaigns WHERE id = $1", [campaign]), 1, "stats recomputed")
        XCTAssertFalse(try store.renew(hold, on: connection), "the runner's hold is gone")

        let queued = try XCTUnwrap(store.cancel(id: jobs[1], on: connection))
        XCTAssertEqual(queued.job.state, .cancelled)
        XCTAssertNil(queued.job.startedAt)

        let finisher = try XCTUnwrap(store.claim(on: connection)?.hold)
        XCTAssertEqual(finisher.jobID, jobs[2])
        _ = try XCTUnwrap(store.finish(finisher, httpStatus: 206, on: connection))
        let ended = try XCTUnwrap(store.cancel(id: jobs[2], on: connection))
        XCTAssertEqual(ended.job.state, .finished, "a job that ended is answered as it ended")
        XCTAssertEqual(ended.job.httpStatus, 206)
    }

    /// The cancel waits for a batch committing at that moment and answers with the job as that
    /// batch left it, not as its own statement's snapshot saw it.
    func testACancelDuringABatchAnswersWithThatBatchCounted() throws {
        let user = try newUser()
        let campaign = try newCampaign(user, channel: "email")
        let job = try queue(1, user: user, campaign: campaign)[0]
        let hold = try XCTUnwrap(store.claim(on: connection)?.hold)
        let batchConnection = try database.service()
        defer { batchConnection.close() }
        try batchConnection.queryUnprepared("BEGIN")
        guard case .committed = try store.commit(batch(after: 0, leads: [(1, "a@example.com")], settled: [2]), of: hold,
                                                 on: batchConnection) else { return XCTFail() }
        let (answer, done) = try cancelOnAnotherThread(job, user: user)
        usleep(300_000)
        XCTAssertNil(answer.current, "the cancel waits for the batch's transaction")
        try batchConnection.queryUnprepared("COMMIT")
        XCTAssertTrue(done.wait(until: .now() + .seconds(10)))
        let record = try XCTUnwrap(XCTUnwrap(answer.current).get())
        XCTAssertEqual(record.job.state, .cancelled)
        XCTAssertEqual(record.job.counts, ImportCounts(imported: 1, invalid: 1))
        XCTAssertEqual(record.resumePosition, 2)
    }

    /// A cancel that meets a finish committing at that moment answers with the finished job and
    /// leaves it finished.
    func testACancelDuringAFinishLeavesTheJobFinished() throws {
        let user = try newUser()
        let job = try queue(1, user: user, campaign: try newCampaign(user))[0]
        let hold = try XCTUnwrap(store.claim(on: connection)?.hold)
        let finisher = try database.service()
        defer { finisher.close() }
        try finisher.queryUnprepared("BEGIN")
        XCTAssertNotNil(try store.finish(hold, httpStatus: 200, on: finisher))
        let (answer, done) = try cancelOnAnotherThread(job, user: user)
        usleep(300_000)
        try finisher.queryUnprepared("COMMIT")
        XCTAssertTrue(done.wait(until: .now() + .seconds(10)))
        let record = try XCTUnwrap(XCTUnwrap(answer.current).get())
        XCTAssertEqual(record.job.state, .finished)
        XCTAssertEqual(record.job.httpStatus, 200)
        XCTAssertEqual(try store.job(id: job, user: user, on: connection)?.job.state, .finished)
    }

    /// A DELETE of `job` by `user` on a connection and thread of its own, so that the test can
    /// hold a transaction the cancel must wait for. `done` counts down once it has answered.
    func cancelOnAnotherThread(_ job: String, user: String) throws
        -> (answer: Locked<Result<JobRecord?, PostgresError>?>, done: CountdownLatch) {
        let answer = Locked<Result<JobRecord?, PostgresError>?>(nil)
        let url = database.serviceURL
        let done = CountdownLatch(count: 1)
        try startThread(name: "cancel") {
            defer { done.countDown() }
            do {
                let connection = try Connection.connect(url, settings: testSettings)
                defer { connection.close() }
                let record = try JobStore().cancel(id: job, user: user, on: connection)
                answer.withLock { $0 = .success(record) }
            } catch {
                answer.withLock { $0 = .failure(error as! PostgresError) }
            }
        }
        return (answer, done)
    }

    // MARK: rejections

    func testRejectionPagesWalkInPositionOrder() throws {
        let user = try newUser()
        let campaign = try newCampaign(user, channel: "email")
        let job = try queue(1, user: user, campaign: campaign)[0]
        let hold = try XCTUnwrap(store.claim(on: connection)?.hold)
        guard case .committed = try store.commit(batch(after: 0, settled: Array(1...250)), of: hold, on: connection) else { return XCTFail() }
        var positions: [Int] = []
        var request = RejectionsRequest(limit: 100)
        var pages = 0
        while true {
            let page = try XCTUnwrap(store.rejections(id: job, user: user, request: request, on: connection))
            pages += 1
            positions += page.items.map(\.position)
            guard let next = page.next, !page.items.isEmpty else { break }
            request.after = next
        }
        XCTAssertEqual(positions, Array(1...250))
        XCTAssertEqual(pages, 4, "three full pages, then an empty one while the job runs")

        _ = try XCTUnwrap(store.finish(hold, httpStatus: 422, on: connection))
        let last = try XCTUnwrap(store.rejections(id: job, user: user, request: RejectionsRequest(after: RejectionCursor(afterPosition: 200)),
                                                  on: connection))
        XCTAssertEqual(last.items.map(\.position), Array(201...250))
        XCTAssertNil(last.next, "a finished job's last page is its last")
        let exact = try XCTUnwrap(store.rejections(id: job, user: user, request: RejectionsRequest(after: RejectionCursor(afterPosition: 150),
                                                                                                   limit: 100), on: connection))
        XCTAssertNil(exact.next, "exactly a page left: no empty page after it")
        XCTAssertNil(try store.rejections(id: job, user: try newUser(), request: RejectionsRequest(), on: connection))
    }

    // MARK: helpers

    func newCampaign(_ user: String, channel: String = "email") throws -> String {
        try connection.query("INSERT INTO campaigns (user_id, channel) VALUES ($1, $2) RETURNING id", [user, channel]).first!.requiredString(0)
    }

    /// `count` jobs of `user`, queued in this order (created a millisecond apart).
    @discardableResult
    func queue(_ count: Int, user: String, campaign: String) throws -> [String] {
        try (0..<count).map { _ in
            guard case .created(let job) = try store.record(NewImportJob(user: user, campaign: campaign, list: UUID().uuidString,
                                                                         fingerprint: []), on: connection) else {
                throw SupportError(message: "job not recorded")
            }
            usleep(1000)
            return job.id
        }
    }

    /// A lead as the runner maps it: its identity normalized (the commit keys leads by it).
    func lead(_ position: Int, _ member: String, _ email: String) -> JobBatch.Lead {
        let identity = Email.normalized(email) ?? email
        return JobBatch.Lead(position: position, memberID: member, lead: CandidateLead(email: email, name: "Person \(position)", identity: identity))
    }

    /// A batch after `after` of `leads` (position, email) and invalid members at `settled`.
    func batch(after: Int, leads: [(Int, String)] = [], settled: [Int] = []) -> JobBatch {
        JobBatch(after: after, through: after + leads.count + settled.count,
                 leads: leads.map { lead($0.0, UUID().uuidString, $0.1) },
                 settled: settled.map { Rejection(position: $0, memberID: UUID().uuidString, reason: .invalid, detail: "no usable work email") },
                 resumeAfter: nil)
    }

    func count(_ sql: String, _ parameters: [String?] = []) throws -> Int {
        try connection.query(sql, parameters).first!.requiredInt(0)
    }

    /// A statement the service role may not run (setting times back), as the owner.
    func owner(_ sql: String, _ parameters: [String?]) throws {
        let owner = try database.owner()
        defer { owner.close() }
        try owner.query(sql, parameters)
    }
}
