import Foundation
import LeadCore
import Postgres
import Store
import TestSupport
import XCTest

/// Section 5 through nginx and a running service: a job answers what the synchronous import
/// answers, its rejections report is whole, it can be cancelled in each state, a key makes a
/// retried POST safe, and one user's queue waits for that user alone.
final class JobEndpointTests: LiveServiceTestCase {
    var seeder: Seeder!

    override func setUpWithError() throws {
        try super.setUpWithError()
        seeder = try Seeder(env)
        // The service's runners take any job of the database: jobs other tests left are ended.
        _ = try seeder.connection.query("""
            UPDATE import_jobs SET state = 'cancelled', finished_at = now(), lease_token = NULL, lease_expires_at = NULL
            WHERE state IN ('queued', 'running')
            """, [])
    }

    // MARK: helpers

    func post(campaign: String, list: String, token: String, key: String? = nil, body: String? = nil) throws -> HTTPReply {
        var headers = [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json"), ("Prefer", "respond-async")]
        if let key { headers.append(("Idempotency-Key", key)) }
        return try client().request("POST", "/api/campaigns/\(campaign)/leads/import-from-list", headers: headers,
                                    body: Data((body ?? #"{"listId":"\#(list)"}"#).utf8))
    }

    func get(_ path: String, token: String, method: String = "GET") throws -> HTTPReply {
        try client().request(method, path, headers: [("Authorization", "Bearer \(token)")])
    }

    func job(_ id: String, token: String) throws -> [String: Any] {
        let reply = try get("/api/imports/\(id)", token: token)
        XCTAssertEqual(reply.status, 200, reply.text)
        return try reply.json()
    }

    func waitForEnd(_ id: String, token: String, timeout: TimeInterval = 60, server: ServiceProcess) throws -> [String: Any] {
        var last: [String: Any] = [:]
        let ended = waitUntil(timeout: timeout, interval: 0.1) {
            last = (try? job(id, token: token)) ?? last
            return last["state"] as? String == "finished" || last["state"] as? String == "cancelled"
        }
        XCTAssertTrue(ended, "job \(id) did not end within \(Int(timeout)) s: \(last)" + context(server))
        return last
    }

    static func counts(_ body: [String: Any]) -> [Int] {
        let counts = body["counts"] as? [String: Any] ?? body
        return ["imported", "duplicates", "invalid", "errors", "total"].map { counts[$0] as? Int ?? -1 }
    }

    /// A `rows` list of `count` rows for a LinkedIn campaign where every reason appears: every
    /// tenth row from the third has no profile URL (invalid), every tenth from the seventh
    /// repeats the row before it, and the identities of every fiftieth are put in `campaigns`
    /// first (already in).
    func mixedList(user: String, count: Int, alreadyIn campaigns: [String]) throws -> String {
        let list = try seeder.rowsList(user: user, count: count)
        _ = try seeder.connection.query("""
            WITH numbered AS (
                SELECT id, linkedin_url, row_number() OVER (ORDER BY created_at, id) AS n FROM list_rows WHERE list_id = $1
            )
            UPDATE list_rows r SET linkedin_url = CASE
                WHEN numbered.n % 10 = 3 THEN NULL
                ELSE (SELECT p.linkedin_url FROM numbered p WHERE p.n = numbered.n - 1) END
            FROM numbered WHERE r.id = numbered.id AND numbered.n % 10 IN (3, 7)
            """, [list])
        for campaign in campaigns {
            _ = try seeder.connection.query("""
                INSERT INTO campaign_leads (campaign_id, user_id, status, linkedin_url, source)
                SELECT $1, $2, 'pending', r.linkedin_url, 'crm' FROM (
                    SELECT linkedin_url, row_number() OVER (ORDER BY created_at, id) AS n FROM list_rows WHERE list_id = $3
                ) r WHERE r.n % 50 = 0
                """, [campaign, user, list])
        }
        return list
    }

    /// Every page of the job's rejections, `limit` at a time.
    func rejections(_ id: String, token: String, limit: Int) throws -> [[String: Any]] {
        var items: [[String: Any]] = []
        var after: String?
        repeat {
            let query = "limit=\(limit)" + (after.map { "&after=" + $0 } ?? "")
            let reply = try get("/api/imports/\(id)/rejections?\(query)", token: token)
            XCTAssertEqual(reply.status, 200, reply.text)
            let page = try reply.json()
            let pageItems = page["items"] as? [[String: Any]] ?? []
            XCTAssertLessThanOrEqual(pageItems.count, limit)
            items += pageItems
            after = page["next"] as? String
            if after != nil { XCTAssertEqual(pageItems.count, limit, "a page before the last is full") }
        } while after != nil
        return items
    }

    // MARK: tests

    /// The job's counts, status and rows are the synchronous import's, and its report names
    /// every member that was not inserted, once, in order, with its reason.
    func testAJobAnswersWhatTheSynchronousImportAnswersWithAWholeReport() throws {
        let server = try startService("jobs-outcome", processes: 2, workers: 4)
        defer { server.stop() }
        let user = try seeder.user()
        let token = try seeder.token(user: user)
        let sync = try seeder.campaign(user: user), async = try seeder.campaign(user: user)
        let list = try mixedList(user: user, count: 2_345, alreadyIn: [sync, async])

        let direct = try client(timeout: 60).post("/api/campaigns/\(sync)/leads/import-from-list", json: #"{"listId":"\#(list)"}"#, token: token)
        XCTAssertEqual(direct.status, 200, direct.text)
        let expected = Self.counts(try direct.json())

        let accepted = try post(campaign: async, list: list, token: token)
        XCTAssertEqual(accepted.status, 202, accepted.text)
        let first = try accepted.json()
        let id = try XCTUnwrap(first["id"] as? String)
        XCTAssertEqual(accepted.headers["location"], "/api/imports/\(id)")
        XCTAssertEqual(accepted.headers["preference-applied"], "respond-async")
        XCTAssertEqual(first["state"] as? String, "queued")
        XCTAssertEqual(first["campaignId"] as? String, async)
        XCTAssertEqual(first["listId"] as? String, list)
        XCTAssertTrue(first["startedAt"] is NSNull && first["finishedAt"] is NSNull && first["httpStatus"] is NSNull)
        XCTAssertNil(first["filter"]); XCTAssertNil(first["dryRun"])

        let ended = try waitForEnd(id, token: token, server: server)
        XCTAssertEqual(ended["state"] as? String, "finished")
        XCTAssertEqual(ended["httpStatus"] as? Int, 200)
        XCTAssertEqual(ended["partial"] as? Bool, false)
        XCTAssertEqual(Self.counts(ended), expected)
        for key in ["createdAt", "startedAt", "finishedAt"] {
            let text = try XCTUnwrap(ended[key] as? String, key)
            XCTAssertNotNil(ISO8601DateFormatter().date(from: text.replacingOccurrences(of: #"\.\d+"#, with: "", options: .regularExpression)),
                            "\(key) \(text) is RFC 3339")
        }
        let identities = "SELECT linkedin_url FROM campaign_leads WHERE campaign_id = $1 AND source = 'list' ORDER BY 1"
        XCTAssertEqual(try seeder.connection.query(identities, [async]).rows.map { try $0.string(0) },
                       try seeder.connection.query(identities, [sync]).rows.map { try $0.string(0) })
        XCTAssertEqual(try seeder.count("SELECT (stats->>'total')::int FROM campaigns WHERE id = $1", [async]),
                       try seeder.count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [async]))

        let items = try rejections(id, token: token, limit: 37)
        let positions = items.compactMap { $0["position"] as? Int }
        XCTAssertEqual(positions, positions.sorted(), "in the order they were handled")
        XCTAssertEqual(Set(positions).count, positions.count, "no member twice")
        let byReason = Dictionary(grouping: items, by: { $0["reason"] as? String ?? "?" }).mapValues(\.count)
        XCTAssertEqual([byReason["duplicate"] ?? 0, byReason["invalid"] ?? 0, byReason["error"] ?? 0], [expected[1], expected[2], expected[3]])
        let memberIDs = Set(try seeder.connection.query("SELECT id::text FROM list_rows WHERE list_id = $1", [list]).rows.map { try $0.requiredString(0) })
        for item in items {
            XCTAssertTrue(memberIDs.contains(item["memberId"] as? String ?? ""), "\(item)")
            let position = item["position"] as? Int ?? 0, detail = item["detail"] as? String ?? ""
            switch position % 10 {
            case 3: XCTAssertEqual(item["reason"] as? String, "invalid", "\(item)")
            case 7: XCTAssertEqual(detail, "a repeat of position \(position - 1)", "\(item)")
            default: XCTAssertEqual(detail, "already in the campaign", "\(item)")
            }
        }
    }

    /// A cancel while queued, while running and once finished: answered at once with the job as
    /// it stopped; nothing runs after it, what was committed stays and the stats count it.
    func testACancelStopsAJobInEachState() throws {
        let server = try startService("jobs-cancel", processes: 2, workers: 4)
        defer { server.stop() }
        let user = try seeder.user()
        let token = try seeder.token(user: user)
        // Two long jobs take the user's two running slots; the third waits queued.
        var running: [(job: String, campaign: String)] = []
        for _ in 0..<2 {
            let campaign = try seeder.campaign(user: user)
            let reply = try post(campaign: campaign, list: try seeder.rowsList(user: user, count: 150_000), token: token)
            running.append((try XCTUnwrap(try reply.json()["id"] as? String), campaign))
        }
        let queuedCampaign = try seeder.campaign(user: user)
        let queued = try XCTUnwrap(try post(campaign: queuedCampaign, list: try seeder.rowsList(user: user, count: 10), token: token).json()["id"] as? String)
        let bothRunning = waitUntil(timeout: 20, interval: 0.05) {
            running.allSatisfy { ((try? job($0.job, token: token))?["counts"] as? [String: Any])?["total"] as? Int ?? 0 > 0 }
        }
        XCTAssertTrue(bothRunning, "the two jobs did not start" + context(server))
        XCTAssertEqual(try job(queued, token: token)["state"] as? String, "queued", "a third job of the user waits")

        let cancelledQueued = try get("/api/imports/\(queued)", token: token, method: "DELETE")
        XCTAssertEqual(cancelledQueued.status, 200, cancelledQueued.text)
        let queuedBody = try cancelledQueued.json()
        XCTAssertEqual(queuedBody["state"] as? String, "cancelled")
        XCTAssertTrue(queuedBody["httpStatus"] is NSNull && queuedBody["startedAt"] is NSNull)
        XCTAssertEqual(Self.counts(queuedBody), [0, 0, 0, 0, 0])

        let target = running[0]
        let sent = Date()
        let cancelled = try get("/api/imports/\(target.job)", token: token, method: "DELETE")
        XCTAssertLessThan(Date().timeIntervalSince(sent), 5, "answered within 5 s")
        XCTAssertEqual(cancelled.status, 200, cancelled.text)
        let body = try cancelled.json()
        XCTAssertEqual(body["state"] as? String, "cancelled")
        XCTAssertTrue(body["httpStatus"] is NSNull)
        XCTAssertEqual(body["partial"] as? Bool, false)
        XCTAssertNotNil(body["finishedAt"] as? String)
        let stopped = Self.counts(body)
        XCTAssertGreaterThan(stopped[4], 0)
        XCTAssertLessThan(stopped[4], 150_000, "cancelled mid-way")
        // Nothing is written after the answer: give a runner that missed it time to try.
        Thread.sleep(forTimeInterval: 1.5)
        XCTAssertEqual(Self.counts(try job(target.job, token: token)), stopped)
        let inserted = try seeder.count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [target.campaign])
        XCTAssertEqual(inserted, stopped[0], "what was committed stays, and nothing after")
        XCTAssertEqual(try seeder.count("SELECT (stats->>'total')::int FROM campaigns WHERE id = $1", [target.campaign]), inserted,
                       "the stats are recomputed")
        XCTAssertEqual(try seeder.count("SELECT count(*) FROM import_jobs WHERE id = $1 AND lease_token IS NULL", [target.job]), 1)

        // The other runs to its end; a cancel then answers it as it ended.
        let other = try waitForEnd(running[1].job, token: token, timeout: 120, server: server)
        XCTAssertEqual(other["state"] as? String, "finished")
        let late = try get("/api/imports/\(running[1].job)", token: token, method: "DELETE")
        XCTAssertEqual(late.status, 200)
        XCTAssertEqual(try late.json()["state"] as? String, "finished")
        XCTAssertEqual(Self.counts(try late.json()), [150_000, 0, 0, 0, 150_000])
    }

    /// A retried POST with its key gets the first job; the key with another body is refused;
    /// another user's same key is theirs alone.
    func testAnIdempotencyKeyMakesARetrySafe() throws {
        let server = try startService("jobs-keys", processes: 1, workers: 2)
        defer { server.stop() }
        let user = try seeder.user(), other = try seeder.user()
        let token = try seeder.token(user: user), otherToken = try seeder.token(user: other)
        let campaign = try seeder.campaign(user: user)
        let list = try seeder.rowsList(user: user, count: 20), secondList = try seeder.rowsList(user: user, count: 5)
        let key = "retry-\(UUID().uuidString) with spaces~"

        let first = try post(campaign: campaign, list: list, token: token, key: key)
        XCTAssertEqual(first.status, 202, first.text)
        let id = try XCTUnwrap(try first.json()["id"] as? String)
        _ = try waitForEnd(id, token: token, server: server)
        let again = try post(campaign: campaign, list: list, token: token, key: key)
        XCTAssertEqual(again.status, 202, again.text)
        XCTAssertEqual(try again.json()["id"] as? String, id, "the first job, not a new one")
        XCTAssertEqual(try again.json()["state"] as? String, "finished", "as it stands now")
        XCTAssertEqual(again.headers["location"], "/api/imports/\(id)")

        let otherBody = try post(campaign: campaign, list: secondList, token: token, key: key)
        XCTAssertEqual(otherBody.status, 422, otherBody.text)
        XCTAssertEqual(try otherBody.json()["error"] as? String, "idempotency_key_reused")
        let sameBytesOtherCampaign = try post(campaign: try seeder.campaign(user: user), list: list, token: token, key: key)
        XCTAssertEqual(try sameBytesOtherCampaign.json()["error"] as? String, "idempotency_key_reused")

        let otherCampaign = try seeder.campaign(user: other)
        let theirs = try post(campaign: otherCampaign, list: try seeder.rowsList(user: other, count: 3), token: otherToken, key: key)
        XCTAssertEqual(theirs.status, 202, theirs.text)
        XCTAssertNotEqual(try theirs.json()["id"] as? String, id)
        XCTAssertEqual(try seeder.count("SELECT count(*) FROM import_jobs WHERE idempotency_key = $1", [key]), 2)
        XCTAssertEqual(try seeder.count("SELECT count(*) FROM campaign_leads WHERE campaign_id = $1", [campaign]), 20, "imported once")
    }

    /// A user's jobs run two at a time in the order they were recorded, and another user's job
    /// recorded last starts without waiting for them.
    func testAUsersQueueWaitsForThatUserAlone() throws {
        let server = try startService("jobs-fair", processes: 2, workers: 4)
        defer { server.stop() }
        let busy = try seeder.user(), other = try seeder.user()
        let busyToken = try seeder.token(user: busy), otherToken = try seeder.token(user: other)
        var ids: [String] = []
        for _ in 0..<4 {
            let reply = try post(campaign: try seeder.campaign(user: busy), list: try seeder.rowsList(user: busy, count: 40_000), token: busyToken)
            ids.append(try XCTUnwrap(try reply.json()["id"] as? String, reply.text))
        }
        let theirs = try XCTUnwrap(try post(campaign: try seeder.campaign(user: other), list: try seeder.rowsList(user: other, count: 10),
                                            token: otherToken).json()["id"] as? String)
        let theirsEnded = try waitForEnd(theirs, token: otherToken, timeout: 20, server: server)
        XCTAssertEqual(theirsEnded["httpStatus"] as? Int, 200)
        let busyStates = try ids.map { try job($0, token: busyToken)["state"] as? String ?? "?" }
        XCTAssertFalse(busyStates.allSatisfy { $0 == "finished" }, "the other user's job waited for the busy user's: \(busyStates)")

        var mostRunning = 0
        let allEnded = waitUntil(timeout: 120, interval: 0.05) {
            let states = ids.map { (try? job($0, token: busyToken))?["state"] as? String ?? "?" }
            mostRunning = max(mostRunning, states.filter { $0 == "running" }.count)
            return states.allSatisfy { $0 == "finished" }
        }
        XCTAssertTrue(allEnded, context(server))
        XCTAssertLessThanOrEqual(mostRunning, JobRules.runningLimitPerUser)
        let started = try ids.map { try XCTUnwrap(try job($0, token: busyToken)["startedAt"] as? String) }
        XCTAssertEqual(started, started.sorted(), "first in, first started")
    }
}
