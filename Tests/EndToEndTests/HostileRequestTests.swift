import Foundation
import TestSupport
import XCTest

/// Garbage through the real nginx: random bodies, odd and oversized headers, broken framing.
/// After each batch a valid import still gets exactly the right answer, /healthz is 200 and no
/// worker process died; and no token ever reaches the service's log.
final class HostileRequestTests: ContractTestCase {
    /// The same "random" bytes on every run, so a failure can be replayed.
    typealias Bytes = SplitMix64

    // MARK: - Bodies

    func testRandomAndHostileBodies() throws {
        let target = try target()
        var random = Bytes(seed: 0x1EAD_1A50)
        for size in [0, 1, 2, 3, 5, 8, 13, 64, 255, 1000, 4096, 16_384, 65_535, 65_536] {
            let body = random.bytes(size)
            assertError(try post(target.campaign, bytes: body, token: target.owner.token), 400, "invalid_json", "\(size) random bytes")
            assertError(try post(target.campaign, bytes: body, token: target.owner.token, contentType: nil), 400, "invalid_json",
                        "\(size) random bytes, no Content-Type")
            assertError(try post(target.campaign, bytes: body, token: target.owner.token, contentType: "application/octet-stream"),
                        415, "unsupported_media_type", "\(size) random bytes as octet-stream")
        }
        // Random bytes that start like the real thing.
        for size in [10, 100, 10_000] {
            let body = Data(#"{"listId":""#.utf8) + random.bytes(size)
            assertError(try post(target.campaign, bytes: body, token: target.owner.token), 400, "invalid_json", "a body, then \(size) random bytes")
        }
        try assertStillServing("random bodies")

        let limit = 64 * 1024
        let hostile: [(Data, String, String)] = [
            (Data(String(repeating: "[", count: limit).utf8), "invalid_json", "64 KiB of ["),
            (Data(String(repeating: "{\"a\":", count: limit / 5).utf8), "invalid_json", "objects nested 13000 deep"),
            (Data((#"{"listId":"#+String(repeating: "[", count: limit - 20)).utf8), "invalid_json", "listId nested 65000 deep"),
            (Data((#"{"listId":"\#(target.list)","f":"# + String(repeating: "[", count: 60) + String(repeating: "]", count: 60) + "}").utf8),
             "ok", "an ignored key nested 60 deep"),
            (Data((#"{"listId":""# + String(repeating: #"\u0000"#, count: (limit - 20) / 6) + #""}"#).utf8), "invalid_list_id",
             "a list id of escaped NULs"),
            (Data((#"{"listId":""# + String(repeating: #"\ud83d\ude00"#, count: (limit - 20) / 12) + #""}"#).utf8), "invalid_list_id",
             "a list id of escaped emoji"),
            (Data((#"{"listId":1e999999999,"x":-0.0e-99999}"#).utf8), "invalid_list_id", "huge numbers"),
            (Data((#"{"listId":"# + String(repeating: "9", count: limit - 20) + "}").utf8), "invalid_list_id", "a 65000-digit number"),
            (Data(("{" + [String](repeating: #""k":1"#, count: 10_000).joined(separator: ",") + "}").utf8),
             "invalid_list_id", "10000 members, no listId"),
            (Data(repeating: 0, count: 1000), "invalid_json", "1000 NULs"),
            (Data(String(repeating: " ", count: limit).utf8), "invalid_json", "64 KiB of spaces"),
            (Data((String(repeating: "\n", count: 1000) + Self.listBody(target.list) + String(repeating: "\t", count: 1000)).utf8), "ok",
             "a valid body in whitespace"),
        ]
        for (body, code, why) in hostile {
            // A valid body goes to a fresh campaign, so that each imports the list's two rows.
            let campaign = code == "ok" ? try seed.campaign(user: target.owner.user, channel: "linkedin") : target.campaign
            let reply = try post(campaign, bytes: body, token: target.owner.token)
            if code == "ok" {
                assertCounts(reply, 200, [2, 0, 0, 0, 2], why)
            } else {
                assertError(reply, 400, code, why)
            }
        }
        try assertStillServing("hostile bodies")
    }

    // MARK: - Headers

    func testOddHeaders() throws {
        let owner = try owner()
        let target = try target(owner: owner)
        let body = Data(Self.listBody(target.list).utf8)
        func send(_ headers: [(String, String)], to campaign: String? = nil) throws -> HTTPReply {
            for (name, value) in headers where name.lowercased() == "authorization" { Self.tokensSent.insert(value) }
            return try http.request("POST", path(campaign ?? target.campaign), headers: headers, body: body)
        }
        var random = Bytes(seed: 42)
        let printable = String((0..<6000).map { _ in Character(Unicode.Scalar(UInt8.random(in: 0x21...0x7E, using: &random))) })
        let tokenish = String((0..<6000).map { _ in Character(Unicode.Scalar(UInt8(ascii: "a") + UInt8.random(in: 0...25, using: &random))) })

        // Authorization values that are not a live token: 401, whatever they hold.
        let refused: [(String, String)] = [
            ("Bearer " + tokenish, "a 6000-character token"),
            ("Bearer " + String(tokenish.prefix(4000)), "a 4000-character token"),
            ("Bearer " + printable, "6000 printable characters"),
            (printable, "6000 printable characters, no scheme"),
            ("Bearer", "Bearer alone"),
            ("Bearer ", "Bearer and a space"),
            ("Bearer      ", "Bearer and spaces"),
            ("Bearer \(owner.token) \(owner.token)", "two tokens"),
            ("Bearer \(owner.token),Bearer \(owner.token)", "two tokens, comma-joined"),
            ("Bearer \(owner.token)=", "the token with padding"),
            ("Bearer \(owner.token)x", "the token and one more character"),
            ("Bearer \(owner.token.dropLast())", "the token short of one character"),
            ("Bearer \(owner.token.uppercased())", "the token in upper case"),
            ("Bearer \"\(owner.token)\"", "the token quoted"),
            ("Bearer=\(owner.token)", "an = for the space"),
            ("Bearer:\(owner.token)", "a : for the space"),
            (owner.token, "the token without a scheme"),
            ("Token \(owner.token)", "the Token scheme"),
            ("Bearerx \(owner.token)", "a longer scheme"),
            ("Bearer tökén-✓", "a token with non-ASCII characters"),
            ("Bearer \u{0}", "a NUL"),
            ("Bearer ..;;--__\\//", "punctuation"),
        ]
        for (value, why) in refused {
            let reply = try send([("Authorization", value), ("Content-Type", "application/json")])
            if reply.status == 400, answeredByNginx(reply) {
                continue // nginx itself refuses some header bytes (NUL); the service never sees them
            }
            assertError(reply, 401, "unauthorized", why)
        }
        XCTAssertEqual(try seed.count(target.campaign), 0)

        // Repeated Authorization headers: never taken as the good one hidden behind a bad one.
        let unknown = unknownToken()
        for (headers, why) in [
            ([("Authorization", "Bearer \(unknown)"), ("Authorization", "Bearer \(owner.token)")], "unknown, then the good token"),
            ([("Authorization", "Basic eDp5"), ("Authorization", "Bearer \(owner.token)")], "Basic, then the good token"),
            ([("Authorization", ""), ("Authorization", "Bearer \(owner.token)")], "empty, then the good token"),
        ] {
            let reply = try send(headers)
            XCTAssertTrue([400, 401].contains(reply.status), "\(why): \(reply.status) \(reply.text)")
            if reply.status == 401 { assertError(reply, 401, "unauthorized", why) }
        }
        XCTAssertEqual(try seed.count(target.campaign), 0)
        try assertStillServing("odd Authorization headers")

        // Headers the import does not read, however odd: ignored. Content types with odd
        // parameters: still JSON. Each on a fresh campaign, each must import.
        let big = String(repeating: "v", count: 7000)
        let accepted: [([(String, String)], String)] = [
            ([("X-Unicode", "héllo ✓ 日本語 \u{1F600}")], "a header with UTF-8"),
            ([("X-Émoji-\u{1F600}", "v")], "a header name with UTF-8"),
            ([("X-Big-1", big), ("X-Big-2", big), ("X-Big-3", big)], "three 7000-byte headers"),
            ((0..<150).map { ("X-Many-\($0)", "value \($0)") }, "150 headers"),
            ([("X-Empty", ""), ("X-Spaces", "   "), ("X-Tab", "a\tb")], "empty, blank and tabbed values"),
            ([("Content-Type", "application/json; charset=ütf-8")], "a Content-Type parameter with UTF-8"),
            ([("Content-Type", "application/json; charset=\"a;b=c\"")], "a quoted parameter with ; and ="),
            ([("Content-Type", "application/json;;;")], "empty parameters"),
            ([("Content-Type", "application/json; " + String(repeating: "p=q; ", count: 500))], "500 parameters"),
            ([("Content-Type", "application/json\t;\tcharset=utf-8")], "tabs around the ;"),
            ([("Cookie", String(repeating: "c=1; ", count: 1000))], "a 5000-byte cookie"),
            ([("X-Authorization", "Bearer garbage"), ("Proxy-Authorization", "Bearer garbage")], "look-alike headers"),
        ]
        for (headers, why) in accepted {
            let fresh = try self.target(owner: owner)
            var all: [(String, String)] = [("Authorization", "Bearer \(owner.token)")]
            if !headers.contains(where: { $0.0 == "Content-Type" }) { all.append(("Content-Type", "application/json")) }
            let reply = try http.request("POST", path(fresh.campaign), headers: all + headers, body: Data(Self.listBody(fresh.list).utf8))
            assertCounts(reply, 200, [2, 0, 0, 0, 2], why)
        }
        // Content types that are not JSON, however odd: 415.
        for type in [";", ";application/json", "application/json, text/plain", "application/ json", "application /json",
                     "application/jsön", "ａｐｐｌｉｃａｔｉｏｎ/json", "application/json\u{7F}", String(repeating: "x/", count: 3000)] {
            let reply = try send([("Authorization", "Bearer \(owner.token)"), ("Content-Type", type)])
            if reply.status == 400, answeredByNginx(reply) { continue }
            assertError(reply, 415, "unsupported_media_type", "Content-Type \(type.prefix(40))")
        }
        XCTAssertEqual(try seed.count(target.campaign), 0)
        try assertStillServing("odd headers")
    }

    // MARK: - Framing

    func testBrokenFramingIsHandledByNginx() throws {
        let owner = try owner()
        let target = try target(owner: owner)
        let body = Self.listBody(target.list)
        let url = URLComponents(string: env.nginxURL)!
        let host = url.host!, port = UInt16(url.port!)
        func head(_ extra: String) -> String {
            "POST \(path(target.campaign)) HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: Bearer \(owner.token)\r\n"
                + "Content-Type: application/json\r\n" + extra + "\r\n"
        }

        // A Content-Length shorter than the body: nginx passes that many bytes, and no more.
        let short = try http.send(Data((head("Content-Length: 5\r\n") + body).utf8))
        assertError(short, 400, "invalid_json", "Content-Length 5 with a longer body")

        // A Content-Length longer than what arrives, then the client stops: nothing is imported.
        let promised = head("Content-Length: \(body.utf8.count + 50)\r\n") + body
        let cut = try contractErrorRawExchange(host: host, port: port, Data(promised.utf8), halfClose: true)
        if let cut { XCTAssertTrue([400, 408].contains(cut.status), "a body cut short: \(cut.status) \(cut.text)") }

        // Framing nginx refuses itself (400), before the service sees anything.
        let refusedFraming: [(String, String)] = [
            (head("Content-Length: abc\r\n") + body, "a non-numeric Content-Length"),
            (head("Content-Length: -5\r\n") + body, "a negative Content-Length"),
            (head("Content-Length: 5\r\nContent-Length: 40\r\n") + body, "two Content-Lengths"),
            (head("Content-Length: \(body.utf8.count)\r\nTransfer-Encoding: chunked\r\n") + body, "Content-Length and chunked"),
            (head("Transfer-Encoding: chunked\r\n") + "zz\r\n" + body + "\r\n0\r\n\r\n", "a bad chunk size"),
            (head("Transfer-Encoding: gzip, chunked\r\n") + "0\r\n\r\n", "an unknown transfer coding"),
            ("GARBAGE\r\n\r\n", "not a request line"),
            ("POST \(path(target.campaign)) HTTP/9.9\r\nHost: test\r\n\r\n", "HTTP/9.9"),
            ("POST /api/campaigns/\(target.campaign)\u{1}/leads/import-from-list HTTP/1.1\r\nHost: t\r\n\r\n", "a control character in the path"),
            (head("X Bad Name: v\r\nContent-Length: 2\r\n") + "{}", "a header name with spaces"),
        ]
        let refusedByNginx: [(String, String)] = [
            ("GET /\(String(repeating: "u", count: 20_000)) HTTP/1.1\r\nHost: t\r\n\r\n", "a URI longer than nginx's buffers"),
            ("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "h", count: 40_000))\r\n\r\n", "a header longer than nginx's buffers"),
            ("GET /_errors/400.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", "nginx's own error pages asked for directly"),
        ]
        for (raw, why) in refusedFraming + refusedByNginx {
            if let reply = try contractErrorRawExchange(host: host, port: port, Data(raw.utf8), halfClose: false) {
                XCTAssertTrue((400...499).contains(reply.status) || [501, 505].contains(reply.status), "\(why): \(reply.status) \(reply.text)")
                assertErrorShape(reply, why)
            }
        }
        // A body that stops arriving: nginx gives up after client_body_timeout (10 s), closing
        // the connection or answering 408 in JSON; the service never sees it.
        let stalled = head("Content-Length: \(body.utf8.count + 50)\r\n") + body
        let stalledAt = Date()
        if let timedOut = try contractErrorRawExchange(host: host, port: port, Data(stalled.utf8), halfClose: false, timeout: 20) {
            XCTAssertEqual(timedOut.status, 408, timedOut.text)
            assertErrorShape(timedOut, "a stalled body")
        }
        XCTAssertLessThan(Date().timeIntervalSince(stalledAt), 15, "a stalled body held its connection past client_body_timeout")
        XCTAssertEqual(try seed.count(target.campaign), 0, "no framing trick imported anything")
        try assertStillServing("broken framing")

        // Framing that is merely unusual works: chunked, HTTP/1.0, a body split across writes.
        var chunked = Data(head("Transfer-Encoding: chunked\r\n").utf8)
        for piece in pieces(Array(body.utf8), 7) {
            let size = String(piece.count, radix: 16) + "\r\n"
            chunked.append(Data(size.utf8))
            chunked.append(contentsOf: piece)
            chunked.append(Data("\r\n".utf8))
        }
        chunked += Data("0\r\n\r\n".utf8)
        assertCounts(try http.send(chunked), 200, [2, 0, 0, 0, 2], "a chunked body in 7-byte chunks")

        let old = try self.target(owner: owner)
        let http10 = "POST \(path(old.campaign)) HTTP/1.0\r\nAuthorization: Bearer \(owner.token)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(Self.listBody(old.list).utf8.count)\r\n\r\n" + Self.listBody(old.list)
        let reply10 = try contractErrorRawExchange(host: host, port: port, Data(http10.utf8), halfClose: false)
        XCTAssertEqual(reply10?.status, 200, "HTTP/1.0: \(reply10?.text ?? "no reply")")

        // Expect: 100-continue: nginx says continue, then the import answers.
        let expecting = try self.target(owner: owner)
        let expect = "POST \(path(expecting.campaign)) HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: Bearer \(owner.token)\r\n"
            + "Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: \(Self.listBody(expecting.list).utf8.count)\r\n\r\n"
            + Self.listBody(expecting.list)
        let final = try contractErrorRawExchange(host: host, port: port, Data(expect.utf8), halfClose: false, skipInterim: true)
        XCTAssertEqual(final?.status, 200, "Expect: 100-continue: \(final?.text ?? "no reply")")
        XCTAssertEqual(try seed.count(expecting.campaign), 2)

        // No body and no length at all: an empty body, which is not a JSON object.
        let none = try contractErrorRawExchange(host: host, port: port, Data(head("").utf8), halfClose: false)
        if let none, none.status == 400, none.headers["content-type"] == "application/json" {
            XCTAssertEqual(try? (JSONSerialization.jsonObject(with: none.body) as? [String: Any])?["error"] as? String, "invalid_json")
        } else {
            XCTAssertTrue([400, 411].contains(none?.status ?? 0), "no body, no length: \(none?.status ?? 0)")
        }
        try assertStillServing("unusual framing")
    }

    // MARK: - Concurrent garbage

    /// Garbage from several clients at once, interleaved with valid imports: every answer is
    /// still the right one, and no worker process dies.
    func testConcurrentGarbageAmongValidImports() throws {
        let owner = try owner()
        let targets = try (0..<8).map { _ in try target(owner: owner) }
        let unknown = unknownToken()
        let http = self.http!
        let paths = targets.map { path($0.campaign) }
        let lists = targets.map(\.list)
        let problems = ContractProblems()
        DispatchQueue.concurrentPerform(iterations: 8) { client in
            var random = Bytes(seed: UInt64(client) &* 7919 &+ 1)
            let auth = ("Authorization", "Bearer \(owner.token)")
            for round in 0..<12 {
                let kind = (client + round) % 6
                do {
                    let reply: HTTPReply
                    let expected: (Int, String)
                    switch kind {
                    case 0:
                        reply = try http.request("POST", paths[client], headers: [auth, ("Content-Type", "application/json")],
                                                 body: random.bytes(Int.random(in: 1...20_000, using: &random)))
                        expected = (400, "invalid_json")
                    case 1:
                        reply = try http.request("POST", paths[client], headers: [("Authorization", "Bearer \(unknown)")],
                                                 body: random.bytes(100))
                        expected = (401, "unauthorized")
                    case 2:
                        reply = try http.request("POST", paths[client], headers: [auth, ("Content-Type", "text/plain")],
                                                 body: Data(Self.listBody(lists[client]).utf8))
                        expected = (415, "unsupported_media_type")
                    case 3:
                        reply = try http.request("PATCH", paths[client], headers: [auth], body: random.bytes(10))
                        expected = (405, "method_not_allowed")
                    case 4:
                        reply = try http.request("POST", paths[client], headers: [auth], body: Data(Self.paddedBody(list: lists[client], size: 70_000).utf8))
                        expected = (413, "payload_too_large")
                    default:
                        reply = try http.request("POST", paths[client], headers: [auth], body: Data(Self.listBody(lists[client]).utf8))
                        // The first valid import of this client's list imports; later ones find duplicates.
                        let code = (try? reply.json())?["imported"] as? Int
                        if !(reply.status == 200 && code == 2) && !(reply.status == 422 && code == 0) {
                            problems.add("client \(client) round \(round): valid import → \(reply.status) \(reply.text)")
                        }
                        continue
                    }
                    let code = (try? reply.json())?["error"] as? String
                    if reply.status != expected.0 || code != expected.1 {
                        problems.add("client \(client) round \(round): expected \(expected) → \(reply.status) \(reply.text.prefix(200))")
                    }
                } catch {
                    problems.add("client \(client) round \(round): \(error)")
                }
            }
        }
        XCTAssertEqual(problems.all, [])
        for target in targets { XCTAssertEqual(try seed.count(target.campaign), 2) }
        try assertStillServing("concurrent garbage")
    }

    static func paddedBody(list: String, size: Int) -> String {
        let head = #"{"listId":"\#(list)","pad":""#, tail = #""}"#
        return head + String(repeating: "x", count: size - head.utf8.count - tail.utf8.count) + tail
    }

    // MARK: - Unusual methods and paths

    func testUnusualMethodsAndPaths() throws {
        let owner = try owner()
        let target = try target(owner: owner)
        let body = Data(Self.listBody(target.list).utf8)
        let auth = [("Authorization", "Bearer \(owner.token)"), ("Content-Type", "application/json")]
        for method in ["FOO", "PROPFIND", "MKCOL", "TRACE", "CONNECT", "POSTX", "P0ST"] {
            let reply = try http.request(method, path(target.campaign), headers: auth, body: body)
            assertErrorShape(reply, method)
            if !answeredByNginx(reply) {
                assertError(reply, 405, "method_not_allowed", method)
            } else {
                // nginx refuses some methods itself (TRACE, CONNECT): never an import.
                XCTAssertTrue((400...499).contains(reply.status) || reply.status == 501, "\(method): \(reply.status)")
            }
        }
        XCTAssertEqual(try seed.count(target.campaign), 0)
        try assertStillServing("unusual methods")
    }

    // MARK: - The log

    func testNoTokenEverReachesTheServiceLog() throws {
        // Tokens through every kind of answer: success, each error, the database's failures.
        let owner = try owner()
        let target = try target(owner: owner)
        assertCounts(try importing(target), 200, [2, 0, 0, 0, 2])
        assertCounts(try importing(target), 422, [0, 2, 0, 0, 2])
        let revoked = try seed.token(user: owner.user, revoked: true)
        Self.tokensSent.insert(revoked)
        assertError(try post(target.campaign, body: "{}", token: revoked), 401, "unauthorized")
        assertError(try post(target.campaign, body: "{}", token: unknownToken()), 401, "unauthorized")
        assertError(try post("x", body: "{}", token: owner.token), 400, "invalid_campaign_id")
        assertError(try post(target.campaign, body: "{}", token: owner.token, contentType: "text/plain"), 415, "unsupported_media_type")
        assertError(try post(target.campaign, body: "[", token: owner.token), 400, "invalid_json")
        assertError(try post(target.campaign, body: "{}", token: owner.token), 400, "invalid_list_id")
        assertError(try post(Self.randomUUID(), body: Self.listBody(target.list), token: owner.token), 404, "campaign_not_found")
        assertError(try http.request("GET", path(target.campaign), headers: [("Authorization", "Bearer \(owner.token)")]), 405,
                    "method_not_allowed")
        // The token in places it has no business being: the path, the query, another header.
        _ = try http.request("POST", "/api/campaigns/\(target.campaign)/leads/import-from-list?token=\(owner.token)",
                             headers: [("Authorization", "Bearer \(owner.token)"), ("X-Api-Key", owner.token)], body: Data("{}".utf8))
        _ = try http.request("POST", "/nowhere", headers: [("Authorization", "Bearer \(owner.token)")], body: Data("{}".utf8))

        let log = Self.service?.log() ?? ""
        XCTAssertTrue(log.contains("msg=request"), "the service logs its requests (so the check below is not vacuous)")
        // The token in the query string is the client's own doing; nginx's DOCUMENT_URI never has
        // the query, so the service's log must not have it either.
        XCTAssertFalse(Self.tokensSent.isEmpty)
        assertNoTokenInServiceLog()
    }
}

/// Consecutive pieces of at most `length` bytes.
private func pieces(_ bytes: [UInt8], _ length: Int) -> [[UInt8]] {
    stride(from: 0, to: bytes.count, by: length).map { Array(bytes[$0..<min($0 + length, bytes.count)]) }
}

extension SplitMix64 {
    mutating func bytes(_ count: Int) -> Data { Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }) }
}
