import LeadCore
import Postgres

/// A member of a list as a job reads it: with its id (the rejections report names it) and its own
/// cursor, so that a batch ending anywhere in a page can store where reading resumes after it.
public struct JobMember: Sendable {
    /// The Lead id (`leads` lists) or row id (`rows` lists).
    public var id: String
    public var member: ListMember
    public var cursor: ListCursor
}

/// A list's members in list order, each with its id and cursor: the pages a job reads. The same
/// statements as the synchronous import's (`LeadGenRows`, `CanonicalLeads`), so a job selects and
/// maps exactly what the synchronous import would.
public enum JobPages {
    public struct Page: Sendable {
        public var members: [JobMember]
        /// Keys read: fewer than the limit means the list ended here.
        public var read: Int
        /// Where the next page starts, also past members skipped at the page's end.
        public var last: ListCursor?
    }

    /// `attributeKeys`: the top-level keys of a `rows` list's `profile_data` a filter names, read
    /// into `filterAttributes` (a `leads` list's attributes always come with its members).
    /// `serving`: bring in only what those filter fields need (`LeadGenRows.pages(serving:)`,
    /// `CanonicalLeads.parts(serving:)`); the other fields of each member read as absent.
    public static func page(of target: ImportTarget, after cursor: ListCursor?, limit: Int, attributeKeys: [String] = [],
                            serving fields: Set<FilterField>? = nil, on connection: Connection) throws -> Page {
        switch target.storage {
        case .rows:
            let extra: [PostgresValue] = attributeKeys.isEmpty ? [] : [.textArray(attributeKeys)]
            let statements = LeadGenRows.pages(serving: fields, withAttributes: !attributeKeys.isEmpty)
            let (items, last) = try readKeyset(first: statements.first, next: statements.next, list: target.listID, after: cursor,
                                               limit: limit, on: connection, extra: extra, decode: rowMember)
            return Page(members: items, read: items.count, last: last)
        case .leads:
            return try members(of: keys(of: target, after: cursor, limit: limit, on: connection), of: target, serving: fields, on: connection)
        }
    }

    static func rowMember(_ row: Row) throws -> JobMember {
        let cursor = ListCursor(createdAt: try row.requiredString(0), id: try row.requiredString(1))
        return JobMember(id: cursor.id, member: try LeadGenRows.member(row), cursor: cursor)
    }

    /// The list's members among `ids` (`leadIds`), in list order; or, `inGivenOrder`, in the
    /// order `ids` gives them (a ranked selection's).
    public static func members(ids: [String], of target: ImportTarget, attributeKeys: [String] = [], inGivenOrder: Bool = false,
                               on connection: Connection) throws -> [JobMember] {
        switch target.storage {
        case .rows:
            let result = try connection.query(inGivenOrder ? LeadGenRows.rowsInGivenOrder : LeadGenRows.rowsOfIDs,
                                              values: [.text(target.listID), .uuids(ids),
                                                       .textArray(attributeKeys)])
            return try result.rows.map(rowMember)
        case .leads:
            let rows = try connection.query(inGivenOrder ? CanonicalLeads.keysInGivenOrder : CanonicalLeads.keysOfIDs,
                                            values: [.text(target.listID), .uuids(ids)])
            let keys = try rows.rows.map { ListCursor(createdAt: try $0.requiredString(0), id: try $0.requiredString(1)) }
            return try members(of: Keys(keys: keys, last: keys.last), of: target, on: connection).members
        }
    }

    /// A page of a `leads` list's keys: the cheap half of its page, read in order, while its
    /// members are filled in (`members(of:)`) on other connections.
    public struct Keys: Sendable {
        public var keys: [ListCursor]
        public var last: ListCursor?
    }

    public static func keys(of target: ImportTarget, after cursor: ListCursor?, limit: Int, on connection: Connection) throws -> Keys {
        precondition(target.storage == .leads, "only a leads list's pages are read in two halves")
        let (keys, last) = try readKeyset(first: CanonicalLeads.firstKeys, next: CanonicalLeads.nextKeys, list: target.listID,
                                          after: cursor, limit: limit, on: connection) { row in
            ListCursor(createdAt: try row.requiredString(0), id: try row.requiredString(1))
        }
        return Keys(keys: keys, last: last)
    }

    /// The page those keys make: each member filled in from its Lead (with only what the filter
    /// fields `serving` need, when given).
    public static func members(of page: Keys, of target: ImportTarget, serving fields: Set<FilterField>? = nil,
                               on connection: Connection) throws -> Page {
        let keys = page.keys
        guard !keys.isEmpty else { return Page(members: [], read: 0, last: nil) }
        let ids = keys.map(\.id)
        let result = try fields.map {
            try connection.query(CanonicalLeads.membersOfKeys(serving: $0),
                                 values: [.uuids(ids), .text(target.userID), .textArray(CanonicalLeads.attributeKeys(serving: $0))])
        } ?? connection.query(CanonicalLeads.membersOfKeys, values: [.uuids(ids), .text(target.userID)])
        var kept: [Int] = []
        var members = try CanonicalLeads.decode(result, count: keys.count, kept: { kept.append($0) })
        // A member whose Lead went since its key was read is no longer in the list: skipped,
        // as the synchronous import skips it. Each record is moved into its JobMember: a copy
        // (zip and map) retained and released every string of every member once more.
        var hydrated = [JobMember]()
        hydrated.reserveCapacity(members.count)
        for index in members.indices {
            hydrated.append(JobMember(id: keys[kept[index]].id, member: moveOut(of: &members[index], leaving: ListMember()),
                                      cursor: keys[kept[index]]))
        }
        return Page(members: hydrated, read: keys.count, last: page.last)
    }
}
