import Foundation
import LeadCore
import Postgres
import Store
import TestSupport
import XCTest

/// The token's statements as the service runs them: what a token grants, and its `last_used_at`,
/// written at most once a minute by whichever request finds it stale first, never waited for.
final class AccessTests: MigratedDatabaseCase {
    var user = ""
    var token = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        user = try newUser()
        token = try TokenStore().create(user: user, name: "access", expiresIn: nil, on: connection).token
    }

    func lastUsed() throws -> (text: String?, age: Double?) {
        let row = try XCTUnwrap(connection.query("""
            SELECT last_used_at::text, extract(epoch FROM now() - last_used_at)::float8 FROM tokens WHERE token_hash = $1
            """, values: [.bytea(SHA256.hash(token))]).first)
        return (try row.string(0), try row.double(1))
    }

    func setLastUsed(_ interval: String) throws {
        try connection.query("UPDATE tokens SET last_used_at = now() - $2::interval WHERE token_hash = $1",
                             values: [.bytea(SHA256.hash(token)), .text(interval)])
    }

    func testLastUsedAtIsWrittenWhenAMinuteOldAndNotBefore() throws {
        XCTAssertNil(try lastUsed().text)
        XCTAssertEqual(try Access.authorize(tokenHash: SHA256.hash(token), ids: nil, on: connection)?.user, user)
        let first = try lastUsed()
        XCTAssertNotNil(first.text, "the first use is recorded")

        XCTAssertNotNil(try Access.authorize(tokenHash: SHA256.hash(token), ids: nil, on: connection))
        XCTAssertEqual(try lastUsed().text, first.text, "not written again within the minute")

        try setLastUsed("30 seconds")
        let thirty = try lastUsed().text
        XCTAssertNotNil(try Access.authorize(tokenHash: SHA256.hash(token), ids: nil, on: connection))
        XCTAssertEqual(try lastUsed().text, thirty)

        try setLastUsed("2 minutes")
        XCTAssertNotNil(try Access.authorize(tokenHash: SHA256.hash(token), ids: nil, on: connection))
        let age = try XCTUnwrap(lastUsed().age)
        XCTAssertLessThan(age, 5, "refreshed")

        XCTAssertNil(try Access.authorize(tokenHash: SHA256.hash("li_not-a-token"), ids: nil, on: connection))
    }

    /// `GET /api/imports/{id}` authorizes in its own statement: it records the use as imports do.
    func testTheJobLookupRecordsTheUseToo() throws {
        try setLastUsed("2 minutes")
        XCTAssertEqual(try JobStore().job(id: UUID().uuidString.lowercased(), tokenHash: SHA256.hash(token), on: connection),
                       .authorized(user: user, job: nil))
        let age = try XCTUnwrap(lastUsed().age)
        XCTAssertLessThan(age, 5, "refreshed")
    }

    /// When the minute turns, every request of a busy token finds it stale at once: none of them
    /// may wait on the token's row for the one writing it.
    func testAStaleTokenLockedByAnotherSessionIsNotWaitedFor() throws {
        try setLastUsed("2 minutes")
        let other = try database.service()
        defer { other.close() }
        _ = try other.queryUnprepared("BEGIN")
        _ = try other.queryUnprepared("SELECT 1 FROM tokens WHERE token_hash = $1 FOR UPDATE", [.bytea(SHA256.hash(token))])
        // Waiting would fail the statement here instead of hanging the test.
        _ = try connection.queryUnprepared("SET lock_timeout = '500ms'")
        XCTAssertEqual(try Access.authorize(tokenHash: SHA256.hash(token), ids: nil, on: connection)?.user, user)
        XCTAssertGreaterThan(try XCTUnwrap(lastUsed().age), 60, "left to the session that holds the row")
        _ = try other.queryUnprepared("ROLLBACK")
    }
}
