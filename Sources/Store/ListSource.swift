import LeadCore
import Postgres

/// Reads a list's members in list order (oldest first, so the first of two repeats is the one
/// imported), in keyset pages: never OFFSET, page N costs what page 1 costs.
public protocol ListSource: Sendable {
    /// Up to `limit` members after `cursor` (nil: from the start), and the cursor of the last one.
    func page(list: String, after cursor: ListCursor?, limit: Int, on connection: Connection) throws -> ListPage
    /// The list's members among `ids` (`leadIds`), in list order.
    func members(ids: [String], list: String, on connection: Connection) throws -> [ListMember]
}

public struct ListPage: Sendable {
    public var members: [ListMember]
    /// The position of the last member read; nil when the page is empty.
    public var last: ListCursor?

    public init(members: [ListMember], last: ListCursor?) {
        self.members = members
        self.last = last
    }
}

/// One keyset range: the first page's statement or the next one's, each row decoded. Both
/// statements select `created_at::text` and the id first, for the cursor.
func readKeyset<T>(first: String, next: String, list: String, after cursor: ListCursor?, limit: Int, on connection: Connection,
                   extra: [PostgresValue] = [], decode: (Row) throws -> T) throws -> (items: [T], last: ListCursor?) {
    let rows: QueryResult
    if extra.isEmpty {
        rows = try cursor.map { try connection.query(next, [list, String(limit), $0.createdAt, $0.id]) }
            ?? connection.query(first, [list, String(limit)])
    } else {
        // Parameters after the keyset's: $5 on of the next page's statement, $3 on of the first's.
        rows = try cursor.map { try connection.query(next, values: [.text(list), .int(limit), .text($0.createdAt), .text($0.id)] + extra) }
            ?? connection.query(first, values: [.text(list), .int(limit)] + extra)
    }
    var items: [T] = []
    items.reserveCapacity(rows.rowCount)
    for row in rows.rows { items.append(try decode(row)) }
    let last = try rows.rows.last.map { ListCursor(createdAt: try $0.requiredString(0), id: try $0.requiredString(1)) }
    return (items, last)
}

/// A source whose members are cheap to find and dear to fill in: their keys come in keyset pages
/// of their own, and filling in a page of keys is a separate statement, which can run on another
/// connection while the next page is filled in.
public protocol HydratedListSource: ListSource {
    /// Up to `limit` member keys after `cursor` (nil: from the start), in list order.
    func keys(list: String, after cursor: ListCursor?, limit: Int, on connection: Connection) throws -> ListKeys
    /// The members those keys name, in the keys' order.
    func members(of keys: ListKeys, on connection: Connection) throws -> [ListMember]
}

public struct ListKeys: Sendable {
    public var ids: [String]
    /// The position of the last key; nil when there are none.
    public var last: ListCursor?
}

/// The keyset page statements' list (`$1`), page size (`$2`) and cursor (`$3`, `$4`), read through
/// sub-selects so that no plan can see them. Seeing them, the planner costed a page of a small
/// list (or the last of a long one) below the generic plan and planned the statement again at
/// every page (docs/performance.md); hidden, every page shares the one plan: the list's index in
/// order from the cursor, up to the limit.
let listParameter = "(SELECT $1::uuid)"
let limitParameter = "(SELECT $2::int)"
let cursorParameters = "((SELECT $3::timestamptz), (SELECT $4::uuid))"

/// What the page statements cut each field to: one character past the limit, so a longer field
/// is seen to be too long without being brought in whole.
let bound = ListMember.fieldLimit + 1

/// A text column cut to `bound` characters. `left` counts the characters of every value it is
/// given; a value of fewer bytes than `bound` has fewer characters too, and its length in bytes is
/// in its header: only a longer one is counted (docs/performance.md: 7-9% of a `leads` page).
func capped(_ column: String) -> String {
    "CASE WHEN octet_length(\(column)) < \(bound) THEN \(column) ELSE left(\(column), \(bound)) END"
}

public enum ListSources {
    /// How many members the target's list has: the progress line's "of N".
    public static func size(of target: ImportTarget, on connection: Connection) throws -> Int {
        try size(list: target.listID, storage: target.storage, on: connection)
    }

    /// How many members a job's list has, read as the list's storage says; nil when the list is
    /// gone (a job outlives it) or its storage is not one this service knows.
    public static func size(ofList list: String, on connection: Connection) throws -> Int? {
        let storage = try connection.query("SELECT storage FROM lists WHERE id = $1", [list]).first?.string(0)
        guard let storage = storage.flatMap(ImportTarget.Storage.init(rawValue:)) else { return nil }
        return try size(list: list, storage: storage, on: connection)
    }

    static func size(list: String, storage: ImportTarget.Storage, on connection: Connection) throws -> Int {
        let sql = storage == .rows
            ? "SELECT count(*) FROM list_rows WHERE list_id = $1"
            : "SELECT count(*) FROM list_memberships WHERE list_id = $1"
        return try connection.query(sql, [list]).first?.requiredInt(0) ?? 0
    }

    /// The source of the target's list; a `leads` list reads only Leads of the list's owner.
    public static func source(for target: ImportTarget) -> any ListSource {
        switch target.storage {
        case .rows: return LeadGenRows()
        case .leads: return CanonicalLeads(owner: target.userID)
        }
    }
}

/// `rows` lists: rows of `list_rows`, with the fields the contract names pulled out of
/// `profile_data` by the database (only those travel, not the whole document).
public struct LeadGenRows: ListSource {
    /// The top-level keys of `profile_data` a filter names (`attributes.KEY`): read into each
    /// member's `filterAttributes`, and only when there are any.
    public let attributeKeys: [String]

    public init(attributeKeys: [String] = []) { self.attributeKeys = attributeKeys }

    /// The member's columns after the cursor's two, in the order `member` reads them, each with
    /// the filter fields it gives a value to. Each field is cut one character past the limit: a
    /// member never brings in more, and one with a longer field is invalid (`ListMember.fieldLimit`).
    static let memberColumns: [(sql: String, serves: [FilterField])] = [
        (capped("linkedin_url"), [.linkedinURL]),
        ("left(profile_data->>'firstName', \(bound))", [.firstName, .name]),
        ("left(profile_data->>'lastName', \(bound))", [.lastName, .name]),
        ("left(profile_data->>'fullName', \(bound))", [.name]),
        ("left(profile_data->>'currentCompany', \(bound))", [.company]),
        ("left(profile_data->>'currentRole', \(bound))", [.position]),
        ("left(profile_data->>'headline', \(bound))", [.headline]),
        ("left(profile_data->'enrichment'->>'work_email', \(bound))", [.email]),
    ]

    /// The cursor, the id and the member's columns; with `fields`, only the columns those need
    /// (NULL in place of the others: `member` reads the same positions).
    static func selectList(serving fields: Set<FilterField>? = nil) -> String {
        let columns = memberColumns.map { column in
            fields.map { fields in column.serves.contains(where: fields.contains) } ?? true ? column.sql : "NULL"
        }
        return "SELECT created_at::text AS cursor_created_at, id, " + columns.joined(separator: ", ")
    }
    static let selectList = selectList()

    /// The same columns and a last one: the named keys of `profile_data` as one JSON object
    /// (`$N`, a text array: the keys travel as a parameter, never in the text).
    static func columnsWithAttributes(keysParameter: Int) -> String {
        selectListWithAttributes(keysParameter: keysParameter) + "\nFROM list_rows"
    }
    static func selectListWithAttributes(keysParameter: Int, serving fields: Set<FilterField>? = nil) -> String {
        selectList(serving: fields) + """
            ,
                   left((SELECT jsonb_object_agg(k, profile_data->k) FROM unnest($\(keysParameter)::text[]) AS k
                         WHERE profile_data ? k)::text, \(bound))
            """
    }

    /// The keyset page statements, the first page's and the next one's: every column, or only
    /// those `fields` need; and the named keys of `profile_data` last when `withAttributes` (`$3`
    /// of the first page, `$5` of the next).
    static func pages(serving fields: Set<FilterField>?, withAttributes: Bool) -> (first: String, next: String) {
        if fields == nil { return withAttributes ? wholePagesWithAttributes : wholePages }
        return keysetPages(serving: fields, withAttributes: withAttributes)
    }
    private static let wholePages = keysetPages(serving: nil, withAttributes: false)
    private static let wholePagesWithAttributes = keysetPages(serving: nil, withAttributes: true)
    static let firstPage = wholePages.first
    static let nextPage = wholePages.next

    private static func keysetPages(serving fields: Set<FilterField>?, withAttributes: Bool) -> (first: String, next: String) {
        func select(_ keysParameter: Int) -> String {
            (withAttributes ? selectListWithAttributes(keysParameter: keysParameter, serving: fields) : selectList(serving: fields))
                + "\nFROM list_rows"
        }
        return (select(3) + " WHERE list_id = \(listParameter) ORDER BY list_rows.created_at, list_rows.id LIMIT \(limitParameter)",
                select(5) + " WHERE list_id = \(listParameter) AND (list_rows.created_at, list_rows.id) > \(cursorParameters)"
                    + " ORDER BY list_rows.created_at, list_rows.id LIMIT \(limitParameter)")
    }

    /// The rows of `$2` that are in the list `$1`, in the order `$2` gives them (a ranked selection).
    static let rowsInGivenOrder = selectListWithAttributes(keysParameter: 3) + """

        FROM unnest($2::uuid[]) WITH ORDINALITY AS given(wanted, n)
        JOIN list_rows ON list_rows.id = given.wanted AND list_rows.list_id = $1
        ORDER BY given.n
        """
    /// The rows of `$2` that are in the list `$1`, in list order (`leadIds`).
    static let rowsOfIDs = columnsWithAttributes(keysParameter: 3)
        + " WHERE list_id = $1 AND id = ANY($2::uuid[]) ORDER BY list_rows.created_at, list_rows.id"

    public func page(list: String, after cursor: ListCursor?, limit: Int, on connection: Connection) throws -> ListPage {
        let statements = Self.pages(serving: nil, withAttributes: !attributeKeys.isEmpty)
        let (members, last) = try readKeyset(first: statements.first, next: statements.next, list: list, after: cursor, limit: limit,
                                             on: connection, extra: attributeKeys.isEmpty ? [] : [.textArray(attributeKeys)], decode: Self.member)
        return ListPage(members: members, last: last)
    }

    /// The members of the list among `ids`, in list order.
    public func members(ids: [String], list: String, on connection: Connection) throws -> [ListMember] {
        let result = try connection.query(Self.rowsOfIDs, values: [.text(list), .uuids(ids), .textArray(attributeKeys)])
        return try result.rows.map(Self.member)
    }

    /// A row of the page statements: the columns after the cursor, and the attributes when read.
    static func member(_ row: Row) throws -> ListMember {
        var member = LeadGenRow(
            linkedinURL: try row.string(2), firstName: try row.string(3), lastName: try row.string(4),
            fullName: try row.string(5), currentCompany: try row.string(6), currentRole: try row.string(7),
            headline: try row.string(8), workEmail: try row.string(9)
        ).member
        if row.columnCount > 10, member.rejection == nil { member.filterAttributes = try row.string(10) }
        return member
    }
}

/// `leads` lists: `list_memberships`, each hydrated from its Lead: its columns and linkedin
/// social, its work_email contacts (oldest first) and its attributes. Only Leads of the list's
/// owner are read: a member whose Lead belongs to someone else (another writer of the platform
/// put it there) comes back as a foreign member, which is invalid, with nothing of that Lead.
///
/// A page after the first is two statements: its keys (a keyset range of the membership index,
/// cheap), then its members filled in for those keys. The second is one statement
/// in parts told apart by the first column, each row carrying the member's position in the
/// page: `l`, one row per member (the Lead's columns), or `f` for a member whose Lead is not the
/// owner's; `c`, one per work_email contact with its rank among the Lead's contacts; `a`, one per
/// attribute (key, value as JSON). The parts and
/// their rows may arrive in any order: position and rank say where each belongs. This costs the
/// database less than a lateral aggregate per member did (docs/performance.md), nothing is built as
/// JSON on the server only to be taken apart again here, and neither statement's plan depends on
/// the list, so both keep one plan per connection instead of being planned again at every
/// execution. The first page is both in one statement (`firstPageSQL`).
///
/// Filling in is what costs; after the first page, keys run ahead and pages are filled in on
/// several connections at once (`HydratedPageFeed`).
public struct CanonicalLeads: HydratedListSource {
    /// The list's owner: the only user whose Leads are read.
    public let owner: String

    public init(owner: String) { self.owner = owner }

    // The cursor column needs a name of its own: as `created_at` it would shadow the column in
    // ORDER BY, and the page would be sorted by the text (a scan and sort of the whole list).
    static let firstKeys = """
        SELECT m.created_at::text AS cursor_created_at, m.lead_id FROM list_memberships m
        WHERE m.list_id = \(listParameter) ORDER BY m.created_at, m.lead_id LIMIT \(limitParameter)
        """
    static let nextKeys = """
        SELECT m.created_at::text AS cursor_created_at, m.lead_id FROM list_memberships m
        WHERE m.list_id = \(listParameter) AND (m.created_at, m.lead_id) > \(cursorParameters)
        ORDER BY m.created_at, m.lead_id LIMIT \(limitParameter)
        """
    /// Each member's Lead, with whether the owner (`$2`) owns it, from the keys `k(lead_id, position)`.
    static let ownedLeads = """
            SELECT k.lead_id, k.position, coalesce(l.user_id = $2::uuid, false) AS owned,
                   \(capped("l.first_name")) AS first_name, \(capped("l.last_name")) AS last_name,
                   \(capped("l.full_name")) AS full_name, \(capped("l.company")) AS company,
                   \(capped("l.title")) AS title, \(capped("l.headline")) AS headline
        """
    /// The parts for the members in `page(lead_id, position, owned, Lead columns)`.
    static let parts = parts(serving: nil)

    /// The parts a read needs for the filter fields `fields` (nil: every part). The Lead's row
    /// always (whether it is the owner's decides whether the member is foreign); its linkedin
    /// social for `linkedinUrl`; its work emails for `email`; and of its attributes only those
    /// `attributeKeys(serving:)` names (`$3`), the ones each field falls back to (`CanonicalLead`).
    static func parts(serving fields: Set<FilterField>?) -> String {
        let social = fields?.contains(.linkedinURL) ?? true
        let contacts = fields?.contains(.email) ?? true
        let attributes = fields.map { !attributeKeys(serving: $0).isEmpty } ?? true
        var parts = ["""
            SELECT 'l' AS part, p.position, NULL::bigint AS rank,
                   p.first_name, p.last_name, p.full_name, p.company, p.title, p.headline, \(social ? capped("s.url") : "NULL")
            FROM page p\(social ? "\nLEFT JOIN lead_socials s ON s.lead_id = p.lead_id AND s.network = 'linkedin'" : "")
            WHERE p.owned
            """, """
            SELECT 'f', p.position, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
            FROM page p
            WHERE NOT p.owned
            """]
        if contacts {
            parts.append("""
                SELECT 'c', p.position, row_number() OVER (PARTITION BY p.position ORDER BY c.created_at, c.id), \(capped("c.value")),
                       NULL, NULL, NULL, NULL, NULL, NULL
                FROM page p
                JOIN lead_contacts c ON c.lead_id = p.lead_id AND c.kind = 'work_email'
                WHERE p.owned
                """)
        }
        if attributes {
            parts.append("""
                SELECT 'a', p.position, NULL, \(capped("a.key")), left(a.value::text, \(bound)), NULL, NULL, NULL, NULL, NULL
                FROM page p
                JOIN lead_attributes a ON a.lead_id = p.lead_id\(fields == nil ? "" : " AND a.key = ANY($3::text[])")
                WHERE p.owned
                """)
        }
        return parts.joined(separator: "\nUNION ALL\n")
    }

    /// The attributes a read for the filter fields `fields` needs: the ones the mapped fields
    /// fall back to (`CanonicalLead.addAttribute`) and those named as `attributes.KEY`.
    static func attributeKeys(serving fields: Set<FilterField>) -> [String] {
        var keys: Set<String> = []
        for field in fields {
            switch field {
            case .email: keys.insert("email")
            case .linkedinURL: break
            case .firstName: keys.insert("firstName")
            case .lastName: keys.insert("lastName")
            case .name: keys.formUnion(["fullName", "firstName", "lastName"])
            case .company: keys.insert("currentCompany")
            case .position: keys.insert("currentRole")
            case .headline: keys.insert("headline")
            case .attribute(let key): keys.insert(key)
            }
        }
        return keys.sorted()
    }

    static let membersOfKeys = membersOfKeys(serving: nil)

    /// The members of the keys `$1` (Lead ids, in page order) with the parts `fields` need (the
    /// attributes those name in `$3`).
    static func membersOfKeys(serving fields: Set<FilterField>?) -> String {
        """
        WITH page AS MATERIALIZED (
        """ + ownedLeads + """
            FROM unnest($1::uuid[]) WITH ORDINALITY AS k(lead_id, position)
            JOIN leads l ON l.id = k.lead_id
        )
        """ + parts(serving: fields)
    }

    /// The first page in one statement: its keys and their members, plus a fourth part `k`, one
    /// row: the number of keys and the last one's cursor. Every import starts here, and most
    /// lists fit in one page: a round trip and a statement fewer than keys, then members.
    ///
    /// Written so that its plan cannot depend on the list. The list id is read through a
    /// sub-select, so the planner estimates every list alike (given the value, it planned a
    /// 10-member list apart from a large one and planned the statement again at every
    /// execution); the page size is in the text; and the members are filled in from an array of
    /// the keys, which the planner takes for a few rows whatever the list, so it always probes the
    /// indexes per member (estimating a full page on a small database, it chose to scan whole
    /// tables). docs/performance.md has what each cost.
    static func firstPageSQL(limit: Int) -> String {
        """
        WITH keys AS MATERIALIZED (
            SELECT m.created_at, m.lead_id FROM list_memberships m
            WHERE m.list_id = \(listParameter)
            ORDER BY m.created_at, m.lead_id LIMIT \(limit)
        ), page AS MATERIALIZED (
        """ + ownedLeads + """
            FROM unnest(ARRAY(SELECT lead_id FROM keys ORDER BY created_at, lead_id)) WITH ORDINALITY AS k(lead_id, position)
            JOIN leads l ON l.id = k.lead_id
        )
        """ + parts + """

        UNION ALL
        (SELECT 'k', count(*) OVER (), NULL, k.created_at::text AS cursor_created_at, k.lead_id::text AS cursor_id,
                NULL, NULL, NULL, NULL, NULL
         FROM keys k ORDER BY k.created_at DESC, k.lead_id DESC LIMIT 1)
        """
    }

    public func page(list: String, after cursor: ListCursor?, limit: Int, on connection: Connection) throws -> ListPage {
        guard cursor == nil else {
            let keys = try keys(list: list, after: cursor, limit: limit, on: connection)
            return ListPage(members: try members(of: keys, on: connection), last: keys.last)
        }
        let result = try connection.query(Self.firstPageSQL(limit: limit), [list, owner])
        var last: ListCursor?
        let members = try Self.decode(result, count: limit) { row in
            last = ListCursor(createdAt: try row.requiredString(3), id: try row.requiredString(4))
        }
        return ListPage(members: members, last: last)
    }

    /// The keys of the list's members among the Lead ids `$2`, in the order `$2` gives them.
    static let keysInGivenOrder = """
        SELECT m.created_at::text AS cursor_created_at, m.lead_id
        FROM unnest($2::uuid[]) WITH ORDINALITY AS given(wanted, n)
        JOIN list_memberships m ON m.lead_id = given.wanted AND m.list_id = $1
        ORDER BY given.n
        """

    /// The keys of the list's members among the Lead ids `$2`, in list order.
    static let keysOfIDs = """
        SELECT m.created_at::text AS cursor_created_at, m.lead_id FROM list_memberships m
        WHERE m.list_id = $1 AND m.lead_id = ANY($2::uuid[]) ORDER BY m.created_at, m.lead_id
        """

    /// The list's members among the Lead ids `ids`, in list order (`leadIds`).
    public func members(ids: [String], list: String, on connection: Connection) throws -> [ListMember] {
        let rows = try connection.query(Self.keysOfIDs, values: [.text(list), .uuids(ids)])
        let keys = try rows.rows.map { try $0.requiredString(1) }
        let last = try rows.rows.last.map { ListCursor(createdAt: try $0.requiredString(0), id: try $0.requiredString(1)) }
        return try members(of: ListKeys(ids: keys, last: last), on: connection)
    }

    public func keys(list: String, after cursor: ListCursor?, limit: Int, on connection: Connection) throws -> ListKeys {
        let (ids, last) = try readKeyset(first: Self.firstKeys, next: Self.nextKeys, list: list, after: cursor, limit: limit,
                                         on: connection) { try $0.requiredString(1) }
        return ListKeys(ids: ids, last: last)
    }

    public func members(of keys: ListKeys, on connection: Connection) throws -> [ListMember] {
        guard !keys.ids.isEmpty else { return [] }
        // Binary uuid[]: the server neither parses 1000 UUIDs nor casts a text array per use.
        let ids = PostgresValue.uuids(keys.ids)
        let result = try connection.query(Self.membersOfKeys, values: [ids, .text(owner)])
        return try Self.decode(result, count: keys.ids.count)
    }

    /// The parts back into members, in page order; a `k` row goes to `cursor`. A member
    /// whose Lead has gone since its key was read leaves an empty slot, dropped here: it is no
    /// longer in the list. `count` is how many positions there can be.
    static func decode(_ result: QueryResult, count: Int, cursor: ((Row) throws -> Void)? = nil,
                       kept: ((Int) -> Void)? = nil) throws -> [ListMember] {
        // Filled in place (an optional element would be copied out and back for every change),
        // and only as far as the positions seen go: the first page of a 10-member list must not
        // make room for a full page (200 kB, mapped and unmapped at every request).
        var leads: [CanonicalLead] = []
        var found: [Bool] = []
        leads.reserveCapacity(min(count, result.rowCount))
        found.reserveCapacity(min(count, result.rowCount))
        var contacts: [Int: [(rank: Int, value: String)]] = [:]
        for row in result.rows {
            let part = try row.requiredString(0)
            let position = try row.requiredInt(1) - 1
            guard position >= 0, position < count else {
                throw PostgresError(kind: .decoding, message: "list page: member position \(position + 1) out of range")
            }
            if part != "k", position >= leads.count {
                leads.append(contentsOf: repeatElement(CanonicalLead(), count: position + 1 - leads.count))
                found.append(contentsOf: repeatElement(false, count: position + 1 - found.count))
            }
            switch part {
            case "l":
                found[position] = true
                // Each field checked as it is read: a copy of the lead, or an array of its
                // fields, retained and released every string of every member once more.
                var tooLong = false
                func field(_ column: Int) throws -> String? {
                    let value = try row.string(column)
                    if ListMember.exceedsFieldLimit(value) { tooLong = true }
                    return value
                }
                leads[position].firstName = try field(3)
                leads[position].lastName = try field(4)
                leads[position].fullName = try field(5)
                leads[position].company = try field(6)
                leads[position].title = try field(7)
                leads[position].headline = try field(8)
                leads[position].linkedinSocial = try field(9)
                if tooLong { leads[position].rejection = leads[position].rejection ?? .fieldTooLong }
            case "f":
                found[position] = true
                leads[position].rejection = .foreign
            case "c":
                let value = try row.requiredString(3)
                if ListMember.exceedsFieldLimit(value) { leads[position].rejection = leads[position].rejection ?? .fieldTooLong }
                contacts[position, default: []].append((try row.requiredInt(2), value))
            case "a":
                let key = try row.requiredString(3), json = try row.requiredString(4)
                if ListMember.exceedsFieldLimit(key) || ListMember.exceedsFieldLimit(json) {
                    leads[position].rejection = leads[position].rejection ?? .fieldTooLong
                } else if leads[position].rejection == nil {
                    leads[position].addAttribute(key: key, json: json)
                }
            case "k" where cursor != nil:
                try cursor?(row)
            default:
                throw PostgresError(kind: .decoding, message: "list page: unknown part \(part)")
            }
        }
        for (position, ranked) in contacts {
            leads[position].workEmails = ranked.count == 1 ? [ranked[0].value] : ranked.sorted { $0.rank < $1.rank }.map(\.value)
        }
        var members: [ListMember] = []
        members.reserveCapacity(leads.count)
        for position in leads.indices where found[position] {
            members.append(moveOut(of: &leads[position], leaving: CanonicalLead()).intoMember())
            kept?(position)
        }
        return members
    }
}
