import Foundation
import TestSupport

/// A request of the contract and what it must be answered, whichever way it travels: straight
/// into `Application` or through nginx and a service process (`ContractTableTests`).
struct ContractCase: Sendable {
    let name: String
    /// Seeds what the request needs and makes the request.
    let request: @Sendable (ContractWorld) throws -> ContractRequest
    let status: Int
    /// The body's `error` code; nil for an import's counts or the health answer.
    let error: String?
    /// imported, duplicates, invalid, errors, total, for an import.
    var counts: [Int]? = nil
    /// Headers the answer must carry, names in lowercase.
    var headers: [String: String] = [:]
    /// Top-level string members the body must carry (a job's `state`, say).
    var fields: [String: String] = [:]
}

struct ContractRequest: Sendable {
    var method = "POST"
    var path: String
    var headers: [(String, String)] = []
    var body = ""

    /// The import endpoint of `campaign`, with a bearer token and a JSON body.
    static func importing(campaign: String, body: String, token: String?, contentType: String = "application/json",
                          method: String = "POST") -> ContractRequest {
        var headers: [(String, String)] = [("Content-Type", contentType)]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        return ContractRequest(method: method, path: "/api/campaigns/\(campaign)/leads/import-from-list", headers: headers, body: body)
    }

    /// The same POST with `Prefer: respond-async` and `extra` headers: it records a job.
    static func recording(campaign: String, body: String, token: String?, extra: [(String, String)] = []) -> ContractRequest {
        var request = importing(campaign: campaign, body: body, token: token)
        request.headers += [("Prefer", "respond-async")] + extra
        return request
    }

    /// `/api/imports/{job}` or its `suffix` (`/rejections?limit=2`).
    static func job(_ id: String, suffix: String = "", token: String?, method: String = "GET") -> ContractRequest {
        ContractRequest(method: method, path: "/api/imports/\(id)\(suffix)",
                        headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [])
    }
}

/// What a case seeds through: users, tokens, campaigns and lists of its own.
struct ContractWorld: @unchecked Sendable {
    let seed: Seed

    struct Owner {
        let user: String
        let token: String
        func list(_ world: ContractWorld, count: Int = 3) throws -> String { try world.seed.bulkRowsList(user: user, count: count) }
        func campaign(_ world: ContractWorld, status: String = "draft") throws -> String {
            try world.seed.campaign(user: user, channel: "linkedin", status: status)
        }
    }

    func owner() throws -> Owner {
        let user = try seed.user()
        return Owner(user: user, token: try seed.token(user: user))
    }

    /// An owner's draft campaign and list, the body naming the list.
    func ready(listSize: Int = 3) throws -> (owner: Owner, campaign: String, list: String, body: String) {
        let owner = try owner()
        let list = try owner.list(self, count: listSize)
        return (owner, try owner.campaign(self), list, #"{"listId":"\#(list)"}"#)
    }

    /// A job of a new owner's, recorded as a POST would, straight in the table: `queued`, or
    /// `finished` with 3 imported.
    func job(state: String = "queued") throws -> (owner: Owner, job: String) {
        let ready = try ready()
        let list = try seed.value("SELECT id FROM lists WHERE user_id = $1", [ready.owner.user])!
        let finished = state == "finished"
        let job = try seed.value("""
            INSERT INTO import_jobs (user_id, campaign_id, list_id, state, http_status, started_at, finished_at, imported, resume_position)
            VALUES ($1, $2, $3, CASE WHEN $4 THEN 'finished' ELSE 'queued' END, CASE WHEN $4 THEN 200 END,
                    CASE WHEN $4 THEN now() END, CASE WHEN $4 THEN now() END, CASE WHEN $4 THEN 3 ELSE 0 END,
                    CASE WHEN $4 THEN 3 ELSE 0 END)
            RETURNING id
            """, [ready.owner.user, ready.campaign, list, finished ? "true" : "false"])!
        return (ready.owner, job)
    }
}

extension ContractCase {
    static let unknownID = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"

    /// The contract's answers, one case each: health, routing, every check of the import
    /// endpoint in its order, and an import.
    static let all: [ContractCase] = [
        ContractCase(name: "health", request: { _ in ContractRequest(method: "GET", path: "/healthz") },
                     status: 200, error: nil),
        ContractCase(name: "unknown path", request: { _ in ContractRequest(method: "GET", path: "/api/nothing-here") },
                     status: 404, error: "not_found"),
        ContractCase(name: "health takes GET and HEAD only", request: { _ in ContractRequest(method: "POST", path: "/healthz") },
                     status: 405, error: "method_not_allowed", headers: ["allow": "GET, HEAD"]),
        ContractCase(name: "wrong method", request: { world in
            let ready = try world.ready()
            return .importing(campaign: ready.campaign, body: ready.body, token: ready.owner.token, method: "PUT")
        }, status: 405, error: "method_not_allowed", headers: ["allow": "POST"]),
        ContractCase(name: "no token", request: { world in
            let ready = try world.ready()
            return .importing(campaign: ready.campaign, body: ready.body, token: nil)
        }, status: 401, error: "unauthorized", headers: ["www-authenticate": #"Bearer realm="leadimport""#]),
        ContractCase(name: "unknown token", request: { world in
            let ready = try world.ready()
            return .importing(campaign: ready.campaign, body: ready.body, token: "li_not_a_token")
        }, status: 401, error: "unauthorized"),
        ContractCase(name: "the token is checked before the campaign id", request: { _ in
            .importing(campaign: "not-a-uuid", body: "{", token: "li_not_a_token")
        }, status: 401, error: "unauthorized"),
        ContractCase(name: "invalid campaign id", request: { world in
            let ready = try world.ready()
            return .importing(campaign: "not-a-uuid", body: ready.body, token: ready.owner.token)
        }, status: 400, error: "invalid_campaign_id"),
        ContractCase(name: "wrong content type", request: { world in
            let ready = try world.ready()
            return .importing(campaign: ready.campaign, body: ready.body, token: ready.owner.token, contentType: "text/plain")
        }, status: 415, error: "unsupported_media_type"),
        ContractCase(name: "body over 64 KiB", request: { world in
            let ready = try world.ready()
            let padding = String(repeating: " ", count: 64 * 1024)
            return .importing(campaign: ready.campaign, body: ready.body + padding, token: ready.owner.token)
        }, status: 413, error: "payload_too_large"),
        ContractCase(name: "body not JSON", request: { world in
            let ready = try world.ready()
            return .importing(campaign: ready.campaign, body: "{\"listId\":", token: ready.owner.token)
        }, status: 400, error: "invalid_json"),
        ContractCase(name: "invalid list id", request: { world in
            let ready = try world.ready()
            return .importing(campaign: ready.campaign, body: #"{"listId":42}"#, token: ready.owner.token)
        }, status: 400, error: "invalid_list_id"),
        // Section 4: the filter and the dry run are checked with the body, after listId.
        ContractCase(name: "a filter with a key it does not have", request: { world in
            let ready = try world.ready()
            let body = #"{"listId":"\#(ready.list)","filter":{"where":[{"field":"company","value":"Acme"},{"feld":"name","value":"x"}]}}"#
            return .importing(campaign: ready.campaign, body: body, token: ready.owner.token)
        }, status: 400, error: "invalid_filter", fields: ["message": #"filter.where[1].feld is not allowed here: {"field": F, "value": V}"#]),
        ContractCase(name: "a filter is checked before the campaign", request: { world in
            let ready = try world.ready()
            return .importing(campaign: unknownID, body: #"{"listId":"\#(ready.list)","filter":{"limit":0}}"#, token: ready.owner.token)
        }, status: 400, error: "invalid_filter", fields: ["message": "filter.limit must be an integer from 1 to 10000000"]),
        ContractCase(name: "a filter is checked after the list id", request: { world in
            let ready = try world.ready()
            return .importing(campaign: ready.campaign, body: #"{"listId":"nope","filter":{"limit":0}}"#, token: ready.owner.token)
        }, status: 400, error: "invalid_list_id"),
        ContractCase(name: "a dry run that is not a boolean", request: { world in
            let ready = try world.ready()
            return .importing(campaign: ready.campaign, body: #"{"listId":"\#(ready.list)","dryRun":"yes"}"#, token: ready.owner.token)
        }, status: 400, error: "invalid_dry_run"),
        ContractCase(name: "a dry run is checked after the filter", request: { world in
            let ready = try world.ready()
            return .importing(campaign: ready.campaign, body: #"{"listId":"\#(ready.list)","dryRun":1,"filter":[]}"#, token: ready.owner.token)
        }, status: 400, error: "invalid_filter", fields: ["message": "filter must be an object or null"]),
        ContractCase(name: "a filter's limit is what is imported", request: { world in
            let ready = try world.ready(listSize: 3)
            return .importing(campaign: ready.campaign, body: #"{"listId":"\#(ready.list)","filter":{"limit":2}}"#, token: ready.owner.token)
        }, status: 200, error: nil, counts: [2, 0, 0, 0, 2]),
        ContractCase(name: "a dry run answers the import's counts", request: { world in
            let ready = try world.ready(listSize: 3)
            return .importing(campaign: ready.campaign, body: #"{"listId":"\#(ready.list)","dryRun":true}"#, token: ready.owner.token)
        }, status: 200, error: nil, counts: [3, 0, 0, 0, 3]),
        ContractCase(name: "an empty selection is a 422", request: { world in
            let ready = try world.ready(listSize: 3)
            let body = #"{"listId":"\#(ready.list)","filter":{"where":[{"field":"company","value":"nobody"}]}}"#
            return .importing(campaign: ready.campaign, body: body, token: ready.owner.token)
        }, status: 422, error: nil, counts: [0, 0, 0, 0, 0]),
        ContractCase(name: "an order over the whole list", request: { world in
            let ready = try world.ready(listSize: 3)
            return .importing(campaign: ready.campaign, body: #"{"listId":"\#(ready.list)","filter":{"orderBy":[{"field":"name"}]}}"#,
                              token: ready.owner.token)
        }, status: 200, error: nil, counts: [3, 0, 0, 0, 3]),
        ContractCase(name: "a dry-run job with a filter is recorded", request: { world in
            let ready = try world.ready(listSize: 3)
            return .recording(campaign: ready.campaign, body: #"{"listId":"\#(ready.list)","filter":{"limit":2},"dryRun":true}"#,
                              token: ready.owner.token)
        }, status: 202, error: nil, headers: ["preference-applied": "respond-async"], fields: ["state": "queued"]),
        ContractCase(name: "a job with an order over the whole list is recorded", request: { world in
            let ready = try world.ready(listSize: 3)
            return .recording(campaign: ready.campaign, body: #"{"listId":"\#(ready.list)","filter":{"orderBy":[{"field":"name"}]}}"#,
                              token: ready.owner.token)
        }, status: 202, error: nil, headers: ["preference-applied": "respond-async"], fields: ["state": "queued"]),
        ContractCase(name: "an empty filter and dryRun false import the whole list", request: { world in
            let ready = try world.ready(listSize: 3)
            return .importing(campaign: ready.campaign, body: #"{"listId":"\#(ready.list)","filter":{},"dryRun":false}"#, token: ready.owner.token)
        }, status: 200, error: nil, counts: [3, 0, 0, 0, 3]),
        ContractCase(name: "unknown campaign", request: { world in
            let ready = try world.ready()
            return .importing(campaign: unknownID, body: ready.body, token: ready.owner.token)
        }, status: 404, error: "campaign_not_found"),
        ContractCase(name: "another user's campaign", request: { world in
            let ready = try world.ready()
            let other = try world.owner()
            return .importing(campaign: try other.campaign(world), body: ready.body, token: ready.owner.token)
        }, status: 404, error: "campaign_not_found"),
        ContractCase(name: "unknown list", request: { world in
            let ready = try world.ready()
            return .importing(campaign: ready.campaign, body: #"{"listId":"\#(unknownID)"}"#, token: ready.owner.token)
        }, status: 404, error: "list_not_found"),
        ContractCase(name: "campaign not a draft", request: { world in
            let owner = try world.owner()
            let campaign = try owner.campaign(world, status: "active")
            return .importing(campaign: campaign, body: #"{"listId":"\#(try owner.list(world))"}"#, token: owner.token)
        }, status: 400, error: "campaign_not_draft"),
        ContractCase(name: "an import", request: { world in
            let ready = try world.ready(listSize: 5)
            return .importing(campaign: ready.campaign, body: ready.body, token: ready.owner.token)
        }, status: 200, error: nil, counts: [5, 0, 0, 0, 5]),
        ContractCase(name: "nothing new to import", request: { world in
            let ready = try world.ready(listSize: 4)
            let request = ContractRequest.importing(campaign: ready.campaign, body: ready.body, token: ready.owner.token)
            // The first import, straight into the tables as an earlier import would have left them.
            try world.seed.sql("""
                INSERT INTO campaign_leads (campaign_id, user_id, status, linkedin_url, source)
                SELECT $1, $2, 'pending', 'https://www.linkedin.com/in/p' || i, 'list' FROM generate_series(1, 4) AS i
                """, [ready.campaign, ready.owner.user])
            return request
        }, status: 422, error: nil, counts: [0, 4, 0, 0, 4]),
        // Section 5: jobs.
        ContractCase(name: "an asynchronous import", request: { world in
            let ready = try world.ready()
            return .recording(campaign: ready.campaign, body: ready.body, token: ready.owner.token)
        }, status: 202, error: nil, headers: ["preference-applied": "respond-async"], fields: ["state": "queued"]),
        ContractCase(name: "respond-async among other preferences", request: { world in
            let ready = try world.ready()
            var request = ContractRequest.importing(campaign: ready.campaign, body: ready.body, token: ready.owner.token)
            request.headers.append(("Prefer", #"handling=lenient, RESPOND-ASYNC; x="y", wait=5"#))
            return request
        }, status: 202, error: nil, headers: ["preference-applied": "respond-async"], fields: ["state": "queued"]),
        ContractCase(name: "an asynchronous import is checked as a synchronous one", request: { world in
            let owner = try world.owner()
            let campaign = try owner.campaign(world, status: "paused")
            return .recording(campaign: campaign, body: #"{"listId":"\#(try owner.list(world))"}"#, token: owner.token)
        }, status: 400, error: "campaign_not_draft"),
        ContractCase(name: "an asynchronous import's token first", request: { _ in
            .recording(campaign: "not-a-uuid", body: "{", token: "li_not_a_token", extra: [("Idempotency-Key", "")])
        }, status: 401, error: "unauthorized"),
        ContractCase(name: "an Idempotency-Key that is not one", request: { world in
            let ready = try world.ready()
            return .recording(campaign: ready.campaign, body: ready.body, token: ready.owner.token,
                              extra: [("Idempotency-Key", String(repeating: "k", count: 256))])
        }, status: 400, error: "invalid_idempotency_key"),
        ContractCase(name: "an Idempotency-Key is checked after the body", request: { world in
            let ready = try world.ready()
            return .recording(campaign: ready.campaign, body: #"{"listId":1}"#, token: ready.owner.token,
                              extra: [("Idempotency-Key", String(repeating: "k", count: 256))])
        }, status: 400, error: "invalid_list_id"),
        ContractCase(name: "a hundred imports queued", request: { world in
            let ready = try world.ready()
            // Of lists that do not exist: a runner finishes them at once, two at a time, so
            // well over a hundred are still queued when the request comes.
            try world.seed.sql("""
                INSERT INTO import_jobs (user_id, campaign_id, list_id)
                SELECT $1, $2, gen_random_uuid() FROM generate_series(1, 150)
                """, [ready.owner.user, ready.campaign])
            return .recording(campaign: ready.campaign, body: ready.body, token: ready.owner.token)
        }, status: 429, error: "too_many_imports", headers: ["retry-after": "60"]),
        ContractCase(name: "a job", request: { world in
            let made = try world.job(state: "finished")
            return .job(made.job, token: made.owner.token)
        }, status: 200, error: nil, fields: ["state": "finished"]),
        ContractCase(name: "a job without a token", request: { world in
            .job(try world.job().job, token: nil)
        }, status: 401, error: "unauthorized", headers: ["www-authenticate": #"Bearer realm="leadimport""#]),
        ContractCase(name: "a job's token before its id", request: { _ in
            .job("not-a-uuid", token: "li_not_a_token")
        }, status: 401, error: "unauthorized"),
        ContractCase(name: "an invalid import id", request: { world in
            .job("not-a-uuid", token: try world.owner().token)
        }, status: 400, error: "invalid_import_id"),
        ContractCase(name: "an unknown job", request: { world in
            .job(unknownID, token: try world.owner().token)
        }, status: 404, error: "import_not_found"),
        ContractCase(name: "another user's job", request: { world in
            .job(try world.job().job, token: try world.owner().token)
        }, status: 404, error: "import_not_found"),
        ContractCase(name: "a job takes GET and DELETE only", request: { world in
            let made = try world.job()
            return .job(made.job, token: made.owner.token, method: "PUT")
        }, status: 405, error: "method_not_allowed", headers: ["allow": "GET, DELETE"]),
        ContractCase(name: "a cancel", request: { world in
            let made = try world.job()
            return .job(made.job, token: made.owner.token, method: "DELETE")
        }, status: 200, error: nil, fields: ["state": "cancelled"]),
        ContractCase(name: "a cancel of a finished job", request: { world in
            let made = try world.job(state: "finished")
            return .job(made.job, token: made.owner.token, method: "DELETE")
        }, status: 200, error: nil, fields: ["state": "finished"]),
        ContractCase(name: "another user's cancel", request: { world in
            .job(try world.job().job, token: try world.owner().token, method: "DELETE")
        }, status: 404, error: "import_not_found"),
        ContractCase(name: "a job's rejections", request: { world in
            let made = try world.job(state: "finished")
            return .job(made.job, suffix: "/rejections?limit=5", token: made.owner.token)
        }, status: 200, error: nil),
        ContractCase(name: "rejections after a cursor that is not one", request: { world in
            let made = try world.job()
            return .job(made.job, suffix: "/rejections?after=nope", token: made.owner.token)
        }, status: 400, error: "invalid_cursor"),
        ContractCase(name: "rejections with a limit out of range", request: { world in
            let made = try world.job()
            return .job(made.job, suffix: "/rejections?limit=1001", token: made.owner.token)
        }, status: 400, error: "invalid_limit"),
        ContractCase(name: "rejections' id before the query", request: { world in
            .job("not-a-uuid", suffix: "/rejections?limit=0", token: try world.owner().token)
        }, status: 400, error: "invalid_import_id"),
        ContractCase(name: "another user's rejections", request: { world in
            .job(try world.job().job, suffix: "/rejections", token: try world.owner().token)
        }, status: 404, error: "import_not_found"),
        ContractCase(name: "rejections take GET only", request: { world in
            let made = try world.job()
            return .job(made.job, suffix: "/rejections", token: made.owner.token, method: "DELETE")
        }, status: 405, error: "method_not_allowed", headers: ["allow": "GET"]),
    ]
}
