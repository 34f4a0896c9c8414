import LeadCore
import Postgres

/// Reads a list's members in list order (oldest first, so the first of two repeats is the one
/// imported), in keyset pages: never OFFSET, page N costs what page 1 costs.
public protocol ListSource: Sendable {
    /// Up to `limit` members after `cursor` (nil: from the start), and the cursor of the last one.
    func page(list: String, after cursor: ListCursor?, limit: Int, on connection: Connection) throws -> ListPage
}

/// Where a page ended: the last member's `(created_at, id)`, as the database wrote them.
public struct ListCursor: Sendable, Equatable {
    public var createdAt: String
    public var id: String
}

public struct ListPage: Sendable {
    public var members: [ListMember]
    /// The position of the last member read; nil when the page is empty.
    public var last: ListCursor?
}

/// One keyset page: the first page's statement or the next one's, each row decoded into a
/// member. Both statements select `created_at::text` and the id first, for the cursor.
func readPage(first: String, next: String, list: String, after cursor: ListCursor?, limit: Int, on connection: Connection,
              member: (Row) throws -> ListMember) throws -> ListPage {
    let rows = try cursor.map { try connection.query(next, [list, String(limit), $0.createdAt, $0.id]) }
        ?? connection.query(first, [list, String(limit)])
    var members: [ListMember] = []
    members.reserveCapacity(rows.rowCount)
    for row in rows.rows { members.append(try member(row)) }
    let last = try rows.rows.last.map { ListCursor(createdAt: try $0.requiredString(0), id: try $0.requiredString(1)) }
    return ListPage(members: members, last: last)
}

public enum ListSources {
    public static func source(for storage: ImportTarget.Storage) -> any ListSource {
        switch storage {
        case .rows: return LeadGenRows()
        case .leads: return CanonicalLeads()
        }
    }
}

/// `rows` lists: rows of `list_rows`, with the fields the contract names pulled out of
/// `profile_data` by the database (only those travel, not the whole document).
public struct LeadGenRows: ListSource {
    public init() {}

    static let columns = """
        SELECT created_at::text AS cursor_created_at, id, linkedin_url,
               profile_data->>'firstName', profile_data->>'lastName', profile_data->>'fullName',
               profile_data->>'currentCompany', profile_data->>'currentRole', profile_data->>'headline',
               profile_data->'enrichment'->>'work_email'
        FROM list_rows
        """
    static let firstPage = columns + " WHERE list_id = $1 ORDER BY list_rows.created_at, list_rows.id LIMIT $2"
    static let nextPage = columns
        + " WHERE list_id = $1 AND (list_rows.created_at, list_rows.id) > ($3::timestamptz, $4::uuid) ORDER BY list_rows.created_at, list_rows.id LIMIT $2"

    public func page(list: String, after cursor: ListCursor?, limit: Int, on connection: Connection) throws -> ListPage {
        try readPage(first: Self.firstPage, next: Self.nextPage, list: list, after: cursor, limit: limit, on: connection) { row in
            LeadGenRow(
                linkedinURL: try row.string(2), firstName: try row.string(3), lastName: try row.string(4),
                fullName: try row.string(5), currentCompany: try row.string(6), currentRole: try row.string(7),
                headline: try row.string(8), workEmail: try row.string(9)
            ).member
        }
    }
}

/// `leads` lists: `list_memberships`, each hydrated from its Lead: its columns and linkedin
/// social, its work_email contacts (oldest first) and its attributes.
///
/// One statement per page, in three parts told apart by the first column: `l`, one row per
/// member (the Lead's columns, its position in the page and its cursor); `c`, one per work_email
/// contact with its rank among the Lead's contacts; `a`, one per attribute (key, value as JSON).
/// Contacts and attributes are fetched for the page's lead ids at once (`= ANY`), which costs
/// the database about two thirds of what a lateral aggregate per member did, and nothing is
/// built as JSON on the server only to be taken apart again here. The parts and their rows may
/// arrive in any order: position and rank say where each belongs.
public struct CanonicalLeads: ListSource {
    public init() {}

    static func statement(after cursor: Bool) -> String {
        let keyset = cursor ? " AND (created_at, lead_id) > ($3::timestamptz, $4::uuid)" : ""
        return """
            WITH page AS MATERIALIZED (
                SELECT m.created_at, m.lead_id, row_number() OVER (ORDER BY m.created_at, m.lead_id) AS position
                FROM (SELECT created_at, lead_id FROM list_memberships WHERE list_id = $1\(keyset)
                      ORDER BY created_at, lead_id LIMIT $2) AS m
            ), ids AS (SELECT array_agg(lead_id) AS all_ids FROM page)
            SELECT 'l' AS part, p.lead_id, p.position, p.created_at::text,
                   l.first_name, l.last_name, l.full_name, l.company, l.title, l.headline, s.url
            FROM page p
            JOIN leads l ON l.id = p.lead_id
            LEFT JOIN lead_socials s ON s.lead_id = p.lead_id AND s.network = 'linkedin'
            UNION ALL
            SELECT 'c', c.lead_id, row_number() OVER (PARTITION BY c.lead_id ORDER BY c.created_at, c.id), c.value,
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL
            FROM lead_contacts c
            WHERE c.lead_id = ANY((SELECT all_ids FROM ids)::uuid[]) AND c.kind = 'work_email'
            UNION ALL
            SELECT 'a', a.lead_id, NULL, a.key, a.value::text, NULL, NULL, NULL, NULL, NULL, NULL
            FROM lead_attributes a
            WHERE a.lead_id = ANY((SELECT all_ids FROM ids)::uuid[])
            """
    }
    static let firstPage = statement(after: false)
    static let nextPage = statement(after: true)

    public func page(list: String, after cursor: ListCursor?, limit: Int, on connection: Connection) throws -> ListPage {
        let result = try cursor.map { try connection.query(Self.nextPage, [list, String(limit), $0.createdAt, $0.id]) }
            ?? connection.query(Self.firstPage, [list, String(limit)])
        var members = 0
        for row in result.rows where try row.requiredString(0) == "l" { members += 1 }
        var leads = Array(repeating: CanonicalLead(), count: members)
        var ids = Array(repeating: "", count: members)
        var cursors = Array(repeating: "", count: members)
        var slot: [String: Int] = [:]
        slot.reserveCapacity(members)
        for row in result.rows where try row.requiredString(0) == "l" {
            let id = try row.requiredString(1)
            let position = try row.requiredInt(2) - 1
            guard position >= 0, position < members, ids[position].isEmpty else {
                throw PostgresError(kind: .decoding, message: "list page: member position \(position + 1) out of order")
            }
            ids[position] = id
            cursors[position] = try row.requiredString(3)
            slot[id] = position
            leads[position] = CanonicalLead(
                firstName: try row.string(4), lastName: try row.string(5), fullName: try row.string(6),
                company: try row.string(7), title: try row.string(8), headline: try row.string(9),
                linkedinSocial: try row.string(10))
        }
        var contacts: [Int: [(rank: Int, value: String)]] = [:]
        for row in result.rows {
            switch try row.requiredString(0) {
            case "l":
                continue
            case "c":
                guard let position = slot[try row.requiredString(1)] else { continue }
                contacts[position, default: []].append((try row.requiredInt(2), try row.requiredString(3)))
            case "a":
                guard let position = slot[try row.requiredString(1)] else { continue }
                leads[position].addAttribute(key: try row.requiredString(3), json: try row.requiredString(4))
            case let part:
                throw PostgresError(kind: .decoding, message: "list page: unknown part \(part)")
            }
        }
        for (position, found) in contacts {
            leads[position].workEmails = found.count == 1 ? [found[0].value] : found.sorted { $0.rank < $1.rank }.map(\.value)
        }
        let last = members == 0 ? nil : ListCursor(createdAt: cursors[members - 1], id: ids[members - 1])
        return ListPage(members: leads.map(\.member), last: last)
    }
}
