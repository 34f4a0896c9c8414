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
    func ready(listSize: Int = 3) throws -> (owner: Owner, campaign: String, body: String) {
        let owner = try owner()
        return (owner, try owner.campaign(self), #"{"listId":"\#(try owner.list(self, count: listSize))"}"#)
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
    ]
}
