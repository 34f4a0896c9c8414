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

/// `leads` lists: `list_memberships`, each hydrated from its Lead: columns, the linkedin social,
/// work_email contacts oldest first (as a JSON array), the attributes the contract falls back to,
/// and all attributes as one JSON object.
public struct CanonicalLeads: ListSource {
    public init() {}

    static let columns = """
        SELECT m.created_at::text AS cursor_created_at, m.lead_id, l.first_name, l.last_name, l.full_name, l.company, l.title, l.headline,
               s.url, e.emails,
               a.attrs->>'firstName', a.attrs->>'lastName', a.attrs->>'fullName',
               a.attrs->>'currentCompany', a.attrs->>'currentRole', a.attrs->>'headline', a.attrs->>'email',
               COALESCE(a.attrs, '{}'::jsonb)
        FROM list_memberships m
        JOIN leads l ON l.id = m.lead_id
        LEFT JOIN lead_socials s ON s.lead_id = m.lead_id AND s.network = 'linkedin'
        LEFT JOIN LATERAL (
            SELECT json_agg(c.value ORDER BY c.created_at, c.id) AS emails
            FROM lead_contacts c WHERE c.lead_id = m.lead_id AND c.kind = 'work_email'
        ) e ON true
        LEFT JOIN LATERAL (
            SELECT jsonb_object_agg(la.key, la.value) AS attrs FROM lead_attributes la WHERE la.lead_id = m.lead_id
        ) a ON true
        """
    static let firstPage = columns + " WHERE m.list_id = $1 ORDER BY m.created_at, m.lead_id LIMIT $2"
    static let nextPage = columns
        + " WHERE m.list_id = $1 AND (m.created_at, m.lead_id) > ($3::timestamptz, $4::uuid) ORDER BY m.created_at, m.lead_id LIMIT $2"

    public func page(list: String, after cursor: ListCursor?, limit: Int, on connection: Connection) throws -> ListPage {
        try readPage(first: Self.firstPage, next: Self.nextPage, list: list, after: cursor, limit: limit, on: connection) { row in
            CanonicalLead(
                firstName: try row.string(2), lastName: try row.string(3), fullName: try row.string(4),
                company: try row.string(5), title: try row.string(6), headline: try row.string(7),
                linkedinSocial: try row.string(8), workEmails: try Self.strings(inJSONArray: row.string(9)),
                attributeFirstName: try row.string(10), attributeLastName: try row.string(11),
                attributeFullName: try row.string(12), attributeCurrentCompany: try row.string(13),
                attributeCurrentRole: try row.string(14), attributeHeadline: try row.string(15),
                attributeEmail: try row.string(16), attributesJSON: try row.requiredString(17)
            ).member
        }
    }

    static func strings(inJSONArray text: String?) throws -> [String] {
        guard let text else { return [] }
        guard case .array(let values) = try JSONReader.parse(text) else { return [] }
        return values.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
    }
}
