import LeadCore
import Postgres

/// An `orderBy` over more members than the service holds (`MemberSelectionLimits.ordered`): the
/// database orders them. While the list is read, each selected member's sort keys, folded by the
/// service as `SelectionOrder` folds them, go into a scratch table; once it is read, the database
/// ranks them and keeps the first `limit`, which the import then reads back a page at a time.
/// `COLLATE "C"` compares text byte by byte, as `SelectionOrder.precedesFolded` compares UTF-8,
/// and absent keys sort last in either direction: the order is the one `TopSelection` keeps.
/// No value reaches the SQL text: the keys travel as parameters, the directions pick fixed words.
public struct RankedSelection: Sendable {
    /// The selection's id: a job's own, or a new one for a synchronous import.
    public let id: String
    public let order: [FilterOrder]

    public init(id: String, order: [FilterOrder]) {
        precondition((1...3).contains(order.count), "orderBy has 1 to 3 keys")
        self.id = id
        self.order = order
    }

    /// Forgets what an earlier run of this selection left, and scratch rows a process that died
    /// left (a day old, of no job still queued or running).
    public func start(on connection: Connection) throws {
        _ = try connection.query("SELECT leadimport_forget_selection($1::uuid, false)", [id])
    }

    /// The next selected members: their places in list order, ids, and folded keys (one array
    /// per order key, nil where absent).
    public func add(places: [Int], memberIDs: [String], keys: [[String?]], on connection: Connection) throws {
        guard !places.isEmpty else { return }
        let columns = (0..<3).map { $0 < keys.count ? keys[$0] : Array(repeating: nil, count: places.count) }
        _ = try connection.query("""
            INSERT INTO import_selection_keys (selection, place, member_id, k1, k2, k3)
            SELECT $1, p, m, a, b, c FROM unnest($2::int[], $3::uuid[], $4::text[], $5::text[], $6::text[]) AS u(p, m, a, b, c)
            """, values: [.text(id), .integers(places), .uuids(memberIDs),
                          .textArray(columns[0]), .textArray(columns[1]), .textArray(columns[2])])
    }

    /// Ranks what was added, keeps the first `limit` (nil: all), forgets the keys, and answers
    /// how many there are.
    public func rank(limit: Int?, on connection: Connection) throws -> Int {
        let result = try connection.query("""
            WITH ranked AS (
                INSERT INTO import_selection_order (selection, rank, member_id)
                SELECT $1, row_number() OVER (ORDER BY \(orderSQL)), member_id
                FROM import_selection_keys WHERE selection = $1
                ORDER BY \(orderSQL)
                LIMIT $2
                RETURNING 1
            )
            SELECT count(*) FROM ranked
            """, values: [.text(id), limit.map { .int($0) } ?? .null])
        _ = try connection.query("SELECT leadimport_forget_selection($1::uuid, true)", [id])
        return try result.first?.requiredInt(0) ?? 0
    }

    /// `ORDER BY`: a fixed fragment per key and direction, then list order.
    var orderSQL: String {
        order.enumerated().map { index, key in
            "k\(index + 1) COLLATE \"C\" \(key.descending ? "DESC" : "ASC") NULLS LAST"
        }.joined(separator: ", ") + ", place"
    }

    /// The ids ranked after `rank`, up to `limit`, in order.
    public func ids(after rank: Int, limit: Int, on connection: Connection) throws -> [String] {
        try connection.query("""
            SELECT member_id::text FROM import_selection_order WHERE selection = $1 AND rank > $2 ORDER BY rank LIMIT $3
            """, values: [.text(id), .int(rank), .int(limit)]).rows.map { try $0.requiredString(0) }
    }

    /// Forgets the selection.
    public func finish(on connection: Connection) throws {
        _ = try connection.query("SELECT leadimport_forget_selection($1::uuid, false)", [id])
    }
}
