import Foundation
import TestSupport
import XCTest

/// The contract's error table, through the real nginx: every status and code, its headers, the
/// order in which the checks apply, what is ignored, the success answer's shape, and the token's
/// `last_used_at`. Every error answer is checked whole: status, `application/json`, and a body
/// with exactly `error` and `message`.
final class ContractAnswerTests: ContractTestCase {
    // MARK: - 400 invalid_campaign_id

    func testInvalidCampaignIDs() throws {
        let target = try target()
        let valid = target.campaign
        let bad: [(String, String)] = [
            ("not-a-uuid", "not a uuid"),
            ("1b4e28ba-2fa1-01d2-883f-0016d3cca427", "version 0"),
            ("1b4e28ba-2fa1-91d2-883f-0016d3cca427", "version 9"),
            ("1b4e28ba-2fa1-f1d2-883f-0016d3cca427", "version f"),
            ("1b4e28ba-2fa1-41d2-783f-0016d3cca427", "variant 7 (NCS)"),
            ("1b4e28ba-2fa1-41d2-c83f-0016d3cca427", "variant c (Microsoft)"),
            ("1b4e28ba-2fa1-41d2-083f-0016d3cca427", "variant 0"),
            ("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "upper-case max UUID"),
            ("ffffffff-ffff-ffff-ffff-fffffffffffe", "almost the max UUID"),
            ("00000000-0000-0000-0000-000000000001", "almost the nil UUID"),
            ("\(valid)%20", "trailing space, percent-encoded"),
            ("%20\(valid)", "leading space, percent-encoded"),
            ("\(valid)%0A", "trailing newline, percent-encoded"),
            ("\(valid)%09", "trailing tab, percent-encoded"),
            ("\(valid)0", "37 characters"),
            (String(valid.dropLast()), "35 characters"),
            (valid.replacingOccurrences(of: "-", with: ""), "no hyphens"),
            ("{\(valid)}", "braces"),
            ("urn:uuid:\(valid)", "urn form"),
            (String(valid.prefix(35)) + "g", "a non-hex digit"),
            (String(valid.prefix(8)) + "_" + String(valid.dropFirst(9)), "underscore for a hyphen"),
            ("%EF%BC%91" + String(valid.dropFirst(1)), "a full-width digit (UTF-8)"),
            ("%00", "a NUL"),
            ("%FF" + String(valid.dropFirst(1)), "a byte that is not UTF-8"),
            (String(repeating: valid, count: 100), "3600 characters"),
        ]
        for (segment, why) in bad {
            let reply = try post(segment, body: Self.listBody(target.list), token: target.owner.token)
            if segment == "%00" && reply.status == 400 && answeredByNginx(reply) {
                continue // nginx refuses a NUL in the path itself, before the service sees it
            }
            assertError(reply, 400, "invalid_campaign_id", "campaign id \(why): \(segment)")
        }
        XCTAssertEqual(try seed.count(valid), 0)

        // What the pattern accepts gets past the id check (and then is simply not found).
        for (segment, why) in [
            ("00000000-0000-0000-0000-000000000000", "nil UUID"),
            ("ffffffff-ffff-ffff-ffff-ffffffffffff", "max UUID"),
            (Self.randomUUID().uppercased(), "upper-case v4"),
            ("1b4e28ba-2fa1-81d2-b83f-0016d3cca427", "version 8, variant b"),
            ("1b4e28ba-2fa1-11d2-A83f-0016d3cca427", "version 1, variant A"),
        ] {
            let reply = try post(segment, body: Self.listBody(target.list), token: target.owner.token)
            assertError(reply, 404, "campaign_not_found", "campaign id \(why): \(segment)")
        }
        // The real campaign's id in upper case is the same campaign.
        assertCounts(try post(valid.uppercased(), body: Self.listBody(target.list), token: target.owner.token), 200, [2, 0, 0, 0, 2])
    }

    /// `%2F` is not `/` (RFC 3986, 2.2): a campaign id with an encoded slash in it does not match
    /// the pattern, whatever nginx makes of the path when it decodes and merges slashes.
    func testEncodedSlashInTheCampaignIDIsInvalid() throws {
        let target = try target()
        let id = target.campaign
        var outcomes: [String] = []
        for segment in [id + "%2F", id + "%2f", "%2F" + id, String(id.prefix(18)) + "%2F" + String(id.dropFirst(18))] {
            // A fresh campaign id each time would hide the import; the same one shows it.
            let reply = try post(segment, body: Self.listBody(target.list), token: target.owner.token)
            let code = (try? reply.json())?["error"] as? String ?? "-"
            outcomes.append("\(segment.replacingOccurrences(of: id, with: "<id>")) → \(reply.status) \(code)")
        }
        XCTAssertEqual(outcomes, ["<id>%2F → 400 invalid_campaign_id", "<id>%2f → 400 invalid_campaign_id",
                                  "%2F<id> → 400 invalid_campaign_id", "\(id.prefix(18))%2F\(id.dropFirst(18)) → 400 invalid_campaign_id"]
                                  .map { $0.replacingOccurrences(of: id, with: "<id>") })
        XCTAssertEqual(try seed.count(target.campaign), 0, "nothing imported through a campaign id that does not match")
    }

    // MARK: - 400 invalid_json

    func testInvalidJSON() throws {
        let target = try target()
        let list = target.list
        let texts: [(String, String)] = [
            ("not json", "plain text"),
            ("", "empty"),
            ("   ", "only whitespace"),
            ("[]", "an empty array"),
            (#"[{"listId":"\#(list)"}]"#, "an array holding the object"),
            (#""\#(list)""#, "a string"),
            ("42", "a number"),
            ("-1.5e3", "a negative number"),
            ("true", "true"),
            ("null", "null"),
            (#"{"listId":"\#(list)""#, "truncated: no closing brace"),
            (#"{"listId":"\#(list)"#, "truncated inside a string"),
            (#"{"listId":"#, "truncated after the colon"),
            ("{", "a lone brace"),
            (#"{"listId":"\#(list)"}}"#, "an extra brace"),
            (#"{"listId":"\#(list)"} x"#, "data after the object"),
            (#"{"listId":"\#(list)"}{}"#, "two objects"),
            (#"{'listId':'\#(list)'}"#, "single quotes"),
            (#"{listId:"\#(list)"}"#, "an unquoted key"),
            (#"{"listId":"\#(list)",}"#, "a trailing comma"),
            (#"{"listId":"\#(list)" "x":1}"#, "a missing comma"),
            (#"{"listId":"\#(list)","x":01}"#, "a leading zero"),
            (#"{"listId":"\#(list)","x":NaN}"#, "NaN"),
            (#"{"listId":"\#(list)","x":"\ud800"}"#, "a lone surrogate escape"),
            (#"{"listId":"\#(list)","x":"\q"}"#, "an invalid escape"),
            ("{\"listId\":\"\(list)\",\"x\":\"a\u{01}b\"}", "a raw control character in a string"),
        ]
        var bodies: [(Data, String)] = texts.map { (Data($0.0.utf8), $0.1) }
        func withBytes(_ prefix: String, _ bytes: [UInt8], _ suffix: String) -> Data {
            Data(prefix.utf8) + Data(bytes) + Data(suffix.utf8)
        }
        bodies += [
            (withBytes(#"{"listId":""#, [0xFF, 0xFE], #""}"#), "invalid UTF-8 (FF FE) as the list id"),
            (withBytes(#"{"listId":"\#(list)","name":""#, [0xC3], #""}"#), "a truncated UTF-8 sequence in an ignored key"),
            (withBytes(#"{"listId":"\#(list)","name":""#, [0xED, 0xA0, 0x80], #""}"#), "an encoded surrogate (CESU)"),
            (withBytes(#"{"listId":"\#(list)","name":""#, [0xC0, 0xAF], #""}"#), "an overlong encoding"),
            (withBytes(#"{""#, [0x80], #"":"\#(list)"}"#), "a continuation byte as a key"),
            (withBytes(#"{"listId":"\#(list)"}"#, [0x00], ""), "a NUL after the object"),
            (Data([0xFF, 0xFE]) + Data(Self.listBody(list).utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }), "UTF-16"),
        ]
        for (body, why) in bodies {
            assertError(try post(target.campaign, bytes: body, token: target.owner.token), 400, "invalid_json", why)
        }
        XCTAssertEqual(try seed.count(target.campaign), 0)
    }

    // MARK: - 400 invalid_list_id

    func testInvalidListIDs() throws {
        let target = try target()
        let list = target.list
        let bodies: [(String, String)] = [
            ("{}", "missing"),
            (#"{"listid":"\#(list)"}"#, "missing (the key in the wrong case)"),
            (#"{"list_id":"\#(list)"}"#, "missing (snake case)"),
            (#"{"data":{"listId":"\#(list)"}}"#, "missing (nested one level down)"),
            (#"{"listId":123}"#, "a number"),
            (#"{"listId":null}"#, "null"),
            (#"{"listId":true}"#, "a boolean"),
            (#"{"listId":{"id":"\#(list)"}}"#, "an object"),
            (#"{"listId":["\#(list)"]}"#, "an array"),
            (#"{"listId":""}"#, "an empty string"),
            (#"{"listId":"not-a-uuid"}"#, "not a uuid"),
            (#"{"listId":"\#(list) "}"#, "a trailing space"),
            (#"{"listId":" \#(list)"}"#, "a leading space"),
            (#"{"listId":"\#(list)\n"}"#, "a trailing newline escape"),
            (#"{"listId":"\#(list.replacingOccurrences(of: "-", with: ""))"}"#, "no hyphens"),
            (#"{"listId":"1b4e28ba-2fa1-01d2-883f-0016d3cca427"}"#, "version 0"),
            (#"{"listId":"1b4e28ba-2fa1-91d2-883f-0016d3cca427"}"#, "version 9"),
            (#"{"listId":"1b4e28ba-2fa1-41d2-783f-0016d3cca427"}"#, "wrong variant"),
            (#"{"listId":"FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"}"#, "upper-case max UUID"),
        ]
        for (body, why) in bodies {
            assertError(try post(target.campaign, body: body, token: target.owner.token), 400, "invalid_list_id", "\(why): \(body)")
        }
        XCTAssertEqual(try seed.count(target.campaign), 0)

        // The pattern's own edge cases are well-formed list ids: they get to the list lookup.
        for id in ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", Self.randomUUID().uppercased()] {
            assertError(try post(target.campaign, body: Self.listBody(id), token: target.owner.token), 404, "list_not_found", id)
        }
        // An escaped list id is the same string once decoded, and an upper-case one the same list.
        let escaped = list.replacingOccurrences(of: "-", with: #"\u002d"#)
        assertCounts(try post(target.campaign, body: #"{"listId":"\#(escaped)"}"#, token: target.owner.token), 200, [2, 0, 0, 0, 2])
        let again = try self.target(owner: target.owner)
        assertCounts(try post(again.campaign, body: Self.listBody(again.list.uppercased()), token: target.owner.token), 200, [2, 0, 0, 0, 2])
    }

    // MARK: - 400 campaign_not_draft

    func testCampaignNotDraftForEveryOtherStatus() throws {
        let owner = try owner()
        for status in ["launching", "active", "paused", "completed"] {
            let target = try target(owner: owner, status: status)
            assertError(try importing(target), 400, "campaign_not_draft", status)
            XCTAssertEqual(try seed.count(target.campaign), 0, "nothing inserted into a \(status) campaign")
            XCTAssertEqual(try seed.value("SELECT stats::text FROM campaigns WHERE id = $1", [target.campaign]), "{}",
                           "stats of a \(status) campaign untouched")
            XCTAssertEqual(try seed.value("SELECT status FROM campaigns WHERE id = $1", [target.campaign]), status)
        }
        // The same list into a draft campaign imports.
        let draft = try target(owner: owner)
        assertCounts(try importing(draft), 200, [2, 0, 0, 0, 2])
    }

    // MARK: - 401 unauthorized

    func testUnauthorized() throws {
        let target = try target()
        let body = Self.listBody(target.list)
        func send(_ authorization: String?, _ why: String) throws {
            let headers = authorization.map { [("Authorization", $0)] } ?? []
            let reply = try http.request("POST", path(target.campaign), headers: headers + [("Content-Type", "application/json")],
                                         body: Data(body.utf8))
            assertError(reply, 401, "unauthorized", why)
            // RFC 6750, 3.1: no bearer credentials at all, so no error code in the challenge.
            XCTAssertFalse(reply.headers["www-authenticate"]?.contains("error=") ?? true, "\(why): \(reply.headers["www-authenticate"] ?? "")")
        }
        try send(nil, "no Authorization header")
        try send("Basic dXNlcjpwYXNzd29yZA==", "Basic credentials")
        try send("Basic \(target.owner.token)", "the right token under the Basic scheme")
        try send("Digest username=\"x\"", "Digest")

        let unknown = unknownToken()
        let unknownReply = try post(target.campaign, body: body, token: unknown)
        assertError(unknownReply, 401, "unauthorized", "an unknown token")
        // RFC 6750, 3.1: a bearer token that is no good is `invalid_token`.
        XCTAssertTrue(unknownReply.headers["www-authenticate"]?.contains(#"error="invalid_token""#) == true,
                      unknownReply.headers["www-authenticate"] ?? "no challenge")

        let revoked = try seed.token(user: target.owner.user, revoked: true)
        Self.tokensSent.insert(revoked)
        assertError(try post(target.campaign, body: body, token: revoked), 401, "unauthorized", "a revoked token")

        let expired = try seed.token(user: target.owner.user)
        Self.tokensSent.insert(expired)
        try tokenSQL("UPDATE tokens SET expires_at = now() - interval '1 second'", expired)
        assertError(try post(target.campaign, body: body, token: expired), 401, "unauthorized", "an expired token")

        // Revoked although not yet expired, and expired long ago.
        let both = try seed.token(user: target.owner.user, revoked: true)
        Self.tokensSent.insert(both)
        try tokenSQL("UPDATE tokens SET expires_at = now() + interval '1 day'", both)
        assertError(try post(target.campaign, body: body, token: both), 401, "unauthorized", "revoked, expiring later")

        // revoked_at set at all means revoked, even a time still to come.
        let revokedLater = try seed.token(user: target.owner.user)
        Self.tokensSent.insert(revokedLater)
        try tokenSQL("UPDATE tokens SET revoked_at = now() + interval '1 day'", revokedLater)
        assertError(try post(target.campaign, body: body, token: revokedLater), 401, "unauthorized", "revoked_at in the future")

        XCTAssertEqual(try seed.count(target.campaign), 0, "nothing imported by a refused token")

        // A token that expires in the future works, and so does the scheme in another case (RFC 7235).
        let future = try seed.token(user: target.owner.user)
        Self.tokensSent.insert(future)
        try tokenSQL("UPDATE tokens SET expires_at = now() + interval '1 hour'", future)
        assertCounts(try post(target.campaign, body: body, token: future), 200, [2, 0, 0, 0, 2], "a token expiring in an hour")
        let other = try self.target(owner: target.owner)
        let lower = try http.request("POST", path(other.campaign), headers: [("Authorization", "bearer \(target.owner.token)")],
                                     body: Data(Self.listBody(other.list).utf8))
        assertCounts(lower, 200, [2, 0, 0, 0, 2], "lower-case scheme")
    }

    func testRevocationAndExpiryTakeEffectAtOnce() throws {
        let owner = try owner()
        let first = try target(owner: owner)
        assertCounts(try importing(first), 200, [2, 0, 0, 0, 2])
        try tokenSQL("UPDATE tokens SET revoked_at = now()", owner.token)
        let second = try target(owner: owner)
        assertError(try importing(second), 401, "unauthorized", "the very next request after the revocation")
        XCTAssertEqual(try seed.count(second.campaign), 0)

        // Several requests in a row, so more than one worker process (each with its own pool and
        // connections) answers: none of them may remember the token as good.
        let live = try self.owner()
        let third = try target(owner: live)
        assertError(try post(third.campaign, body: "{}", token: live.token), 400, "invalid_list_id", "while live")
        try tokenSQL("UPDATE tokens SET expires_at = now()", live.token)
        for attempt in 1...6 {
            assertError(try importing(third), 401, "unauthorized", "after expiry, attempt \(attempt)")
        }
        XCTAssertEqual(try seed.count(third.campaign), 0)

        // Un-revoking is the platform's business too: it takes effect at once as well.
        try tokenSQL("UPDATE tokens SET expires_at = NULL", live.token)
        assertCounts(try importing(third), 200, [2, 0, 0, 0, 2], "after the expiry was lifted")
    }

    // MARK: - 404

    func testNotFoundForMissingAndForeignCampaignsAndLists() throws {
        let mine = try target()
        let theirs = try target()
        let body = Self.listBody(mine.list)

        assertError(try post(Self.randomUUID(), body: body, token: mine.owner.token), 404, "campaign_not_found", "a nonexistent campaign")
        assertError(try post(theirs.campaign, body: body, token: mine.owner.token), 404, "campaign_not_found", "someone else's draft campaign")
        let theirsActive = try seed.campaign(user: theirs.owner.user, channel: "email", status: "active")
        assertError(try post(theirsActive, body: body, token: mine.owner.token), 404, "campaign_not_found", "someone else's active campaign")

        assertError(try post(mine.campaign, body: Self.listBody(Self.randomUUID()), token: mine.owner.token), 404, "list_not_found",
                    "a nonexistent list")
        assertError(try post(mine.campaign, body: Self.listBody(theirs.list), token: mine.owner.token), 404, "list_not_found",
                    "someone else's list")
        // A list id that is a campaign's id, and a campaign id that is a list's: not found either.
        assertError(try post(mine.campaign, body: Self.listBody(mine.campaign), token: mine.owner.token), 404, "list_not_found",
                    "a campaign's id as the list id")
        assertError(try post(mine.list, body: body, token: mine.owner.token), 404, "campaign_not_found", "a list's id as the campaign id")

        // Never 403, nothing moved, and both still work for their owners.
        XCTAssertEqual(try seed.count(mine.campaign), 0)
        XCTAssertEqual(try seed.count(theirs.campaign), 0)
        assertCounts(try importing(theirs), 200, [2, 0, 0, 0, 2])
        assertCounts(try importing(mine), 200, [2, 0, 0, 0, 2])
    }

    // MARK: - 405

    func testMethodNotAllowed() throws {
        let target = try target()
        for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            for token in [target.owner.token, nil] {
                var headers: [(String, String)] = [("Content-Type", "application/json")]
                if let token { headers.append(("Authorization", "Bearer \(token)")) }
                let body: Data? = method == "GET" || method == "OPTIONS" ? nil : Data(Self.listBody(target.list).utf8)
                let reply = try http.request(method, path(target.campaign), headers: headers, body: body)
                assertError(reply, 405, "method_not_allowed", "\(method) with\(token == nil ? "out" : "") a token")
            }
        }
        // HEAD: the same status and Allow, and no body.
        let head = try http.request("HEAD", path(target.campaign), headers: [("Authorization", "Bearer \(target.owner.token)")])
        XCTAssertEqual(head.status, 405)
        XCTAssertEqual(head.headers["allow"], "POST")
        XCTAssertTrue(head.body.isEmpty)
        XCTAssertEqual(try seed.count(target.campaign), 0)
    }

    // MARK: - 413

    /// `{"listId":"<list>","pad":"xxx…"}` of exactly `size` bytes.
    static func paddedBody(list: String, size: Int) -> Data {
        let head = #"{"listId":"\#(list)","pad":""#, tail = #""}"#
        let pad = size - head.utf8.count - tail.utf8.count
        precondition(pad >= 0)
        return Data((head + String(repeating: "x", count: pad) + tail).utf8)
    }

    func testPayloadTooLarge() throws {
        let target = try target()
        for size in [64 * 1024 + 1, 64 * 1024 + 100, 200 * 1024] {
            let reply = try post(target.campaign, bytes: Self.paddedBody(list: target.list, size: size), token: target.owner.token)
            XCTAssertEqual(reply.headers["content-type"], "application/json", "413 answered by nginx is JSON")
            assertError(reply, 413, "payload_too_large", "a body of \(size) bytes")
        }
        // Chunked, so nginx only finds out while reading it.
        var chunked = "POST \(path(target.campaign)) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        chunked += "Authorization: Bearer \(target.owner.token)\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        var raw = Data(chunked.utf8)
        let big = Self.paddedBody(list: target.list, size: 70_000)
        for start in stride(from: 0, to: big.count, by: 8192) {
            let piece = big[start..<min(start + 8192, big.count)]
            raw += Data((String(piece.count, radix: 16) + "\r\n").utf8) + piece + Data("\r\n".utf8)
        }
        raw += Data("0\r\n\r\n".utf8)
        assertError(try http.send(raw), 413, "payload_too_large", "a chunked body of 70000 bytes")
        // Even without a token: nginx answers before anyone looks at it.
        assertError(try post(target.campaign, bytes: Self.paddedBody(list: target.list, size: 65_537), token: nil), 413,
                    "payload_too_large", "no token")
        XCTAssertEqual(try seed.count(target.campaign), 0)

        // At the limit and just under it: not too large, and imported.
        for size in [64 * 1024, 64 * 1024 - 1, 64 * 1024 - 64] {
            let fresh = try self.target(owner: target.owner)
            assertCounts(try post(fresh.campaign, bytes: Self.paddedBody(list: fresh.list, size: size), token: fresh.owner.token),
                         200, [2, 0, 0, 0, 2], "a body of \(size) bytes")
        }
    }

    // MARK: - 415

    func testUnsupportedMediaType() throws {
        let target = try target()
        for type in ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                     "application/xml", "text/json", "application/jsonx", "application/json-patch+json", "application/x-json",
                     "json", "application", "*/*", "application/*", "application/octet-stream"] {
            assertError(try post(target.campaign, body: Self.listBody(target.list), token: target.owner.token, contentType: type),
                        415, "unsupported_media_type", type)
        }
        assertError(try post(target.campaign, body: "listId=\(target.list)", token: target.owner.token,
                             contentType: "application/x-www-form-urlencoded"), 415, "unsupported_media_type", "a form body")
        XCTAssertEqual(try seed.count(target.campaign), 0)

        // JSON with parameters, in any case, and no Content-Type at all: accepted.
        for type in ["application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8", "Application/JSON",
                     "application/json ; charset=\"utf-8\"", nil] as [String?] {
            let fresh = try self.target(owner: target.owner)
            assertCounts(try importing(fresh, contentType: type), 200, [2, 0, 0, 0, 2], "Content-Type \(type ?? "absent")")
        }
    }

    // MARK: - 503

    func testDatabaseDownAnswers503ForImports() throws {
        let target = try target()
        let other = unknownToken()
        try env.postgres("stop")
        var running = false
        defer { if !running { try? env.postgres("start") } }

        let started = Date()
        assertError(try importing(target), 503, "unavailable", "an import while the database is down")
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "the 503 comes within the pool's wait limit")
        // A token cannot be judged without the database: unavailable, not unauthorized.
        assertError(try post(target.campaign, body: Self.listBody(target.list), token: other), 503, "unavailable", "an unknown token")
        assertError(try post("not-a-uuid", body: "x", token: target.owner.token), 503, "unavailable", "bad id, bad body")
        // What needs no database is still answered as always.
        assertError(try post(target.campaign, body: Self.listBody(target.list), token: nil), 401, "unauthorized", "no token")
        assertError(try http.request("GET", path(target.campaign)), 405, "method_not_allowed", "GET")

        try env.postgres("start")
        running = true
        seed = try Seed(env) // the old connection died with the server
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, (try? http.request("GET", "/healthz").status) != 200 { Thread.sleep(forTimeInterval: 0.2) }
        // Every worker process serves imports again (several requests reach both).
        for attempt in 1...4 {
            let fresh = try self.target(owner: target.owner)
            assertCounts(try importing(fresh), 200, [2, 0, 0, 0, 2], "import \(attempt) after the database came back")
        }
        XCTAssertEqual(try seed.count(target.campaign), 0)
        assertCounts(try importing(target), 200, [2, 0, 0, 0, 2], "the import refused during the outage, retried")
    }

    // MARK: - The order of the checks

    func testOrderOfChecks() throws {
        let owner = try owner()
        let good = try target(owner: owner)
        let unknown = unknownToken()
        let missing = Self.randomUUID()
        let nonDraft = try seed.campaign(user: owner.user, channel: "linkedin", status: "active")
        let stranger = try target()

        // method before token
        assertError(try http.request("GET", path(good.campaign)), 405, "method_not_allowed", "GET without a token")
        assertError(try http.request("DELETE", path("not-a-uuid"), headers: [("Authorization", "Bearer \(unknown)"), ("Content-Type", "text/plain")],
                                     body: Data("x".utf8)), 405, "method_not_allowed", "DELETE, unknown token, bad id, bad type, bad body")
        // token before campaign id (and everything after it)
        assertError(try post("not-a-uuid", body: Self.listBody(good.list), token: nil), 401, "unauthorized", "no token, bad campaign id")
        assertError(try post("not-a-uuid", body: "x", token: unknown, contentType: "text/plain"), 401, "unauthorized",
                    "unknown token, bad id, bad type, bad body")
        assertError(try post(stranger.campaign, body: Self.listBody(stranger.list), token: nil), 401, "unauthorized",
                    "no token, someone else's campaign")
        // campaign id before content type
        assertError(try post("not-a-uuid", body: "x", token: owner.token, contentType: "text/plain"), 400, "invalid_campaign_id",
                    "bad id, bad type, bad body")
        // content type before body and campaign
        assertError(try post(good.campaign, body: "x", token: owner.token, contentType: "text/plain"), 415, "unsupported_media_type",
                    "bad type, bad body")
        assertError(try post(missing, body: Self.listBody(good.list), token: owner.token, contentType: "text/plain"), 415,
                    "unsupported_media_type", "bad type, nonexistent campaign")
        // body before campaign
        assertError(try post(missing, body: "x", token: owner.token), 400, "invalid_json", "bad body, nonexistent campaign")
        assertError(try post(stranger.campaign, body: "[]", token: owner.token), 400, "invalid_json", "bad body, someone else's campaign")
        assertError(try post(missing, body: "{}", token: owner.token), 400, "invalid_list_id", "no listId, nonexistent campaign")
        assertError(try post(nonDraft, body: #"{"listId":7}"#, token: owner.token), 400, "invalid_list_id", "bad listId, non-draft campaign")
        // campaign before list
        assertError(try post(missing, body: Self.listBody(Self.randomUUID()), token: owner.token), 404, "campaign_not_found",
                    "nonexistent campaign and list")
        assertError(try post(stranger.campaign, body: Self.listBody(stranger.list), token: owner.token), 404, "campaign_not_found",
                    "someone else's campaign and list")
        let strangerActive = try seed.campaign(user: stranger.owner.user, channel: "linkedin", status: "paused")
        assertError(try post(strangerActive, body: Self.listBody(good.list), token: owner.token), 404, "campaign_not_found",
                    "someone else's non-draft campaign")
        // list before draft
        assertError(try post(nonDraft, body: Self.listBody(Self.randomUUID()), token: owner.token), 404, "list_not_found",
                    "nonexistent list, non-draft campaign")
        assertError(try post(nonDraft, body: Self.listBody(stranger.list), token: owner.token), 404, "list_not_found",
                    "someone else's list, non-draft campaign")
        // draft last
        assertError(try post(nonDraft, body: Self.listBody(good.list), token: owner.token), 400, "campaign_not_draft", "all else fine")

        XCTAssertEqual(try seed.count(good.campaign), 0)
        XCTAssertEqual(try seed.count(nonDraft), 0)
        XCTAssertEqual(try seed.count(stranger.campaign), 0)
    }

    // MARK: - What is ignored

    func testUnknownKeysAndQueryStringAreIgnored() throws {
        let owner = try owner()
        let first = try target(owner: owner)
        let body = #"{"listId":"\#(first.list)","options":{"status":["new"],"tags":[1,2,{"deep":[null,true]}]},"x":1,"y":"\u00e9","z":null}"#
        assertCounts(try post(first.campaign, body: body, token: owner.token), 200, [2, 0, 0, 0, 2], "unknown keys")
        // `filter` is a key of section 4 now: one it does not know is refused, never ignored.
        let mistyped = #"{"listId":"\#(first.list)","filter":{"status":["new"]}}"#
        let refused = try post(first.campaign, body: mistyped, token: owner.token)
        XCTAssertEqual(refused.status, 400)
        XCTAssertTrue(refused.text.contains(#""error":"invalid_filter""#), refused.text)
        let second = try target(owner: owner)
        let keysFirst = #"{"a":[],"listId":"\#(second.list)","b":{}}"#
        assertCounts(try post(second.campaign, body: keysFirst, token: owner.token), 200, [2, 0, 0, 0, 2], "listId among other keys")

        // A query string names nothing: not the list, not the campaign, not the method.
        let third = try target(owner: owner)
        let decoy = try target(owner: owner)
        let query = "?listId=\(decoy.list)&campaignId=\(decoy.campaign)&_method=GET&x=%ZZ&&=&y"
        let reply = try http.request("POST", path(third.campaign) + query,
                                     headers: [("Authorization", "Bearer \(owner.token)"), ("Content-Type", "application/json")],
                                     body: Data(Self.listBody(third.list).utf8))
        assertCounts(reply, 200, [2, 0, 0, 0, 2], "with a query string")
        XCTAssertEqual(try seed.count(third.campaign), 2)
        XCTAssertEqual(try seed.count(decoy.campaign), 0)
        XCTAssertEqual(try seed.value("SELECT DISTINCT source_ref FROM campaign_leads WHERE campaign_id = $1", [third.campaign]), third.list)
        let fifth = try target(owner: owner)
        let onlyInQuery = try http.request("POST", path(fifth.campaign) + "?listId=\(fifth.list)",
                                           headers: [("Authorization", "Bearer \(owner.token)"), ("Content-Type", "application/json")],
                                           body: Data("{}".utf8))
        assertError(onlyInQuery, 400, "invalid_list_id", "the list id in the query only")
        XCTAssertEqual(try seed.count(fifth.campaign), 0)
        // A bare `?` too, and an error answer is unchanged by one.
        let fourth = try target(owner: owner)
        let bare = try http.request("POST", path(fourth.campaign) + "?", headers: [("Authorization", "Bearer \(owner.token)")],
                                    body: Data(Self.listBody(fourth.list).utf8))
        assertCounts(bare, 200, [2, 0, 0, 0, 2], "with a bare ?")
        let bad = try http.request("POST", path("nope") + "?campaignId=\(fourth.campaign)", headers: [("Authorization", "Bearer \(owner.token)")],
                                   body: Data(Self.listBody(fourth.list).utf8))
        assertError(bad, 400, "invalid_campaign_id", "a bad id with a good one in the query")
    }

    // MARK: - The success answer

    func testImportAnswersCarryTheCounts() throws {
        let owner = try owner()
        let campaign = try seed.campaign(user: owner.user, channel: "linkedin")
        let list = try seed.rowsList(user: owner.user, rows: [
            ("https://www.linkedin.com/in/ce-shape-alice", "{}"),
            ("https://linkedin.com/in/CE-Shape-Alice/", "{}"),
            ("https://www.linkedin.com/in/ce-shape-bob", "{}"),
            ("not a profile", "{}"),
        ])
        let first = try post(campaign, body: Self.listBody(list), token: owner.token)
        assertCounts(first, 200, [2, 1, 1, 0, 4], "first import")
        let second = try post(campaign, body: Self.listBody(list), token: owner.token)
        assertCounts(second, 422, [0, 3, 1, 0, 4], "the same list again")
        let empty = try seed.list(user: owner.user, storage: "rows")
        assertCounts(try post(campaign, body: Self.listBody(empty), token: owner.token), 422, [0, 0, 0, 0, 0], "an empty list")
        let emptyLeads = try seed.list(user: owner.user, storage: "leads")
        assertCounts(try post(campaign, body: Self.listBody(emptyLeads), token: owner.token), 422, [0, 0, 0, 0, 0], "an empty leads list")
        XCTAssertEqual(try seed.count(campaign), 2)
    }

    // MARK: - last_used_at

    func testLastUsedAtIsSetAndNotRewrittenEveryRequest() throws {
        let owner = try owner()
        func lastUsed() throws -> (text: String?, age: Double?) {
            let row = try seed.sql("""
                SELECT last_used_at::text, extract(epoch FROM now() - last_used_at)::float8
                FROM tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))
                """, [owner.token]).first!
            return (try row.string(0), try row.double(1))
        }
        XCTAssertNil(try lastUsed().text, "a new token has not been used")

        // Any authenticated request counts, even one refused later on.
        assertError(try post("not-a-uuid", body: "{}", token: owner.token), 400, "invalid_campaign_id")
        let first = try lastUsed()
        XCTAssertNotNil(first.text, "last_used_at set by an authenticated request")
        if let age = first.age { XCTAssertTrue((-2.0...5.0).contains(age), "last_used_at is \(age) s old") }

        // Right after: not written again, by any worker.
        for _ in 1...4 {
            assertError(try post(Self.randomUUID(), body: Self.listBody(Self.randomUUID()), token: owner.token), 404, "campaign_not_found")
        }
        XCTAssertEqual(try lastUsed().text, first.text, "a request right after does not rewrite last_used_at")

        // Half a minute old: still fresh enough. Two minutes old: refreshed.
        try tokenSQL("UPDATE tokens SET last_used_at = now() - interval '30 seconds'", owner.token)
        let thirty = try lastUsed().text
        assertError(try post(Self.randomUUID(), body: Self.listBody(Self.randomUUID()), token: owner.token), 404, "campaign_not_found")
        XCTAssertEqual(try lastUsed().text, thirty, "30 s old is fresh to within a minute")
        try tokenSQL("UPDATE tokens SET last_used_at = now() - interval '2 minutes'", owner.token)
        assertError(try post(Self.randomUUID(), body: Self.listBody(Self.randomUUID()), token: owner.token), 404, "campaign_not_found")
        let refreshed = try lastUsed()
        if let age = refreshed.age { XCTAssertTrue((-2.0...5.0).contains(age), "refreshed last_used_at is \(age) s old") }

        // A refused token is not "used".
        let revoked = try seed.token(user: owner.user, revoked: true)
        Self.tokensSent.insert(revoked)
        assertError(try post(Self.randomUUID(), body: "{}", token: revoked), 401, "unauthorized")
        XCTAssertNil(try seed.value("SELECT last_used_at::text FROM tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))", [revoked]))
    }
}
