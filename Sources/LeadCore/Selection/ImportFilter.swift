/// What part of a list an import takes, and in what order (docs/selection.md): the `filter`
/// of a request body, validated strictly, since a mistyped filter must never import the whole list.
public struct ImportFilter: Equatable, Sendable {
    /// Only these members (Lead ids of `leads` lists, row ids of `rows` lists), each once, in
    /// the order first given; nil: every member.
    public var memberIDs: [String]?
    /// All must hold.
    public var conditions: [FilterCondition]
    /// The order members are imported in, before list order; empty: list order.
    public var order: [FilterOrder]
    /// At most this many members, the first ones in order.
    public var limit: Int?

    public init(memberIDs: [String]? = nil, conditions: [FilterCondition] = [], order: [FilterOrder] = [], limit: Int? = nil) {
        self.memberIDs = memberIDs
        self.conditions = conditions
        self.order = order
        self.limit = limit
    }

    /// No key set: the whole list, in list order (`{}`, `null`, or no `filter`).
    public var selectsEverything: Bool { memberIDs == nil && conditions.isEmpty && order.isEmpty && limit == nil }

    public static let memberIDLimit = 1_000
    public static let conditionLimit = 20
    public static let valueLimit = 100
    public static let orderLimit = 3
    public static let limitRange = 1...10_000_000
    public static let attributeKeyLength = 1...200

    /// The filter a body's `filter` holds (nil when the key is absent), or the first thing wrong
    /// with it, named by its place (`filter.where[2].field`), in the order the body gives it.
    public static func parse(_ value: JSONValue?) -> Result<ImportFilter, RequestError> {
        do {
            return .success(try FilterParser.filter(value))
        } catch {
            return .failure(.invalidFilter(error.message))
        }
    }
}

/// A field of the lead as it would be imported (the mapping and normalization of docs/api.md), or one
/// of the member's attributes.
public enum FilterField: Hashable, Sendable {
    case email, linkedinURL, firstName, lastName, name, company, position, headline
    /// `attributes.KEY`: the Lead's attribute KEY (`leads` lists), the top-level key KEY of
    /// `profile_data` (`rows` lists).
    case attribute(String)

    public static let mapped: [FilterField] = [.email, .linkedinURL, .firstName, .lastName, .name, .company, .position, .headline]

    public init?(name: String) {
        if let field = Self.mapped.first(where: { $0.name == name }) {
            self = field
        } else if name.utf8.starts(with: "attributes.".utf8) {
            // By bytes: a key starting with a combining mark joins the dot into one Character.
            let key = String(decoding: name.utf8.dropFirst("attributes.".utf8.count), as: UTF8.self)
            // No stored key holds NUL (PostgreSQL's text and jsonb cannot), and it cannot be sent.
            guard ImportFilter.attributeKeyLength.contains(key.unicodeScalars.count), !key.utf8.contains(0) else { return nil }
            self = .attribute(key)
        } else {
            return nil
        }
    }

    /// As a request names it.
    public var name: String {
        switch self {
        case .email: return "email"
        case .linkedinURL: return "linkedinUrl"
        case .firstName: return "firstName"
        case .lastName: return "lastName"
        case .name: return "name"
        case .company: return "company"
        case .position: return "position"
        case .headline: return "headline"
        case .attribute(let key): return "attributes." + key
        }
    }
}

/// `{"field": F, "value": V}` of `where`.
public struct FilterCondition: Equatable, Sendable {
    public enum Match: Equatable, Sendable {
        /// The field equals it, ignoring case and surrounding whitespace.
        case equals(String)
        /// The field is absent or empty.
        case absent
        /// The field equals any of them (as `equals`).
        case anyOf([String])
    }

    public var field: FilterField
    public var match: Match

    public init(field: FilterField, match: Match) {
        self.field = field
        self.match = match
    }

    /// Whether a member whose field is `value` (nil: absent) meets the condition.
    public func holds(for value: String?) -> Bool {
        FoldedCondition(self).holds(for: value)
    }
}

/// A condition with its values folded once, for a selection that tests every member of a list.
public struct FoldedCondition: Sendable {
    public let field: FilterField
    /// nil: the field must be absent or empty; else the folded values it may equal.
    let wanted: Set<String>?

    public init(_ condition: FilterCondition) {
        field = condition.field
        switch condition.match {
        case .absent: wanted = nil
        case .equals(let value): wanted = [FilterText.comparable(value)]
        case .anyOf(let values): wanted = Set(values.map(FilterText.comparable))
        }
    }

    public func holds(for value: String?) -> Bool {
        let present = SelectionOrder.folded(value)
        guard let wanted else { return present == nil }
        return present.map(wanted.contains) ?? false
    }
}

/// `{"field": F, "direction": "asc" | "desc"}` of `orderBy`.
public struct FilterOrder: Equatable, Sendable {
    public var field: FilterField
    public var descending: Bool

    public init(field: FilterField, descending: Bool = false) {
        self.field = field
        self.descending = descending
    }
}

/// How filter values compare: trimmed of surrounding whitespace, case folded.
public enum FilterText {
    public static func comparable(_ text: String) -> String {
        let bytes = text.utf8
        // ASCII, the usual case, on bytes: the same result without walking characters.
        if bytes.allSatisfy({ $0 < 0x80 }) {
            guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
            let inner = bytes[first...last]
            if !inner.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) {
                return first == bytes.startIndex && last == bytes.index(before: bytes.endIndex) ? text : String(decoding: inner, as: UTF8.self)
            }
            return String(decoding: inner.map(foldedByte), as: UTF8.self)
        }
        return String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed()).lowercased()
    }

    /// The whitespace `comparable` trims, of ASCII.
    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) }

    /// An ASCII byte as `comparable` folds it: capitals lowercased.
    private static func foldedByte(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }

    /// `comparable(text)` against `folded` (already comparable), byte by byte, without making the
    /// folded copy: negative, zero or positive; nil when `text` is not ASCII or folds to nothing.
    static func compare(foldingASCII text: String, with folded: String) -> Int? {
        var (text, folded) = (text, folded)
        // On the strings' contiguous bytes: through the UTF-8 views' indices the comparison cost
        // two to three times as much (docs/performance.md).
        return text.withUTF8 { bytes in
            folded.withUTF8 { theirs -> Int? in
                var start = 0, end = bytes.count
                if bytes.contains(where: { $0 >= 0x80 }) { return nil }
                while start < end, isSpace(bytes[start]) { start += 1 }
                while end > start, isSpace(bytes[end - 1]) { end -= 1 }
                guard start < end else { return nil }
                var index = 0
                while start + index < end {
                    guard index < theirs.count else { return 1 }
                    let ours = foldedByte(bytes[start + index])
                    if ours != theirs[index] { return ours < theirs[index] ? -1 : 1 }
                    index += 1
                }
                return index == theirs.count ? 0 : -1
            }
        }
    }
}

/// The ordering rule of `orderBy`: by each key in turn (absent values last whichever the
/// direction), ties in list order.
public enum SelectionOrder {
    /// Whether the member with `keys` at list place `place` comes before the other. `keys` are
    /// the member's values of the order's fields, nil when absent or empty.
    public static func precedes(_ a: (keys: [String?], place: Int), _ b: (keys: [String?], place: Int), by order: [FilterOrder]) -> Bool {
        precedesFolded((a.keys.map(folded), a.place), (b.keys.map(folded), b.place), by: order)
    }

    /// A key as `precedesFolded` compares it: trimmed and folded, nil when absent or empty.
    public static func folded(_ value: String?) -> String? {
        guard let value else { return nil }
        let text = FilterText.comparable(value)
        return text.isEmpty ? nil : text
    }

    /// Whether the folded key `x` comes strictly after `y` by one key of an order: a member whose
    /// first key comes after the last kept one's cannot be kept, whatever its other keys.
    public static func comesAfter(_ x: String?, _ y: String?, descending: Bool) -> Bool {
        switch (x, y) {
        case (nil, nil), (_?, nil): return false
        case (nil, _?): return true
        case let (x?, y?): return descending ? x.utf8.lexicographicallyPrecedes(y.utf8) : y.utf8.lexicographicallyPrecedes(x.utf8)
        }
    }

    /// `comesAfter` for a key not yet folded: an ASCII key is decided on its own bytes, without
    /// the folded copy that a member coming after the last kept one would only throw away.
    public static func comesAfter(unfolded x: String?, _ y: String?, descending: Bool) -> Bool {
        if let x, let y, let order = FilterText.compare(foldingASCII: x, with: y) {
            return descending ? order < 0 : order > 0
        }
        return comesAfter(folded(x), y, descending: descending)
    }

    /// `precedes` for keys already `folded`: a selection folds each member's keys once, not at
    /// every comparison.
    public static func precedesFolded(_ a: (keys: [String?], place: Int), _ b: (keys: [String?], place: Int),
                                      by order: [FilterOrder]) -> Bool {
        for (index, key) in order.enumerated() {
            switch (a.keys[index], b.keys[index]) {
            case (nil, nil): continue
            case (nil, _): return false
            case (_, nil): return true
            case let (x?, y?):
                if x == y { continue }
                return key.descending ? y.utf8.lexicographicallyPrecedes(x.utf8) : x.utf8.lexicographicallyPrecedes(y.utf8)
            }
        }
        return a.place < b.place
    }
}

/// A place in the filter and what is wrong there.
struct FilterProblem: Error {
    let message: String
}

/// The checks of `ImportFilter.parse`, one place at a time.
enum FilterParser {
    static func filter(_ value: JSONValue?) throws(FilterProblem) -> ImportFilter {
        var filter = ImportFilter()
        switch value {
        case nil, .null?: return filter
        case .object(let members)?:
            var seen: Set<String> = []
            for (key, value) in members {
                let place = "filter." + key
                guard seen.insert(key).inserted else { throw FilterProblem(message: "\(place) is given twice") }
                switch key {
                case "leadIds": filter.memberIDs = try memberIDs(value, at: place)
                case "where": filter.conditions = try conditions(value, at: place)
                case "orderBy": filter.order = try order(value, at: place)
                case "limit": filter.limit = try limit(value, at: place)
                default:
                    throw FilterProblem(message: "\(place) is not a filter key (leadIds, where, orderBy, limit)")
                }
            }
            return filter
        default:
            throw FilterProblem(message: "filter must be an object or null")
        }
    }

    static func memberIDs(_ value: JSONValue, at place: String) throws(FilterProblem) -> [String] {
        let items = try array(value, at: place, count: 1...ImportFilter.memberIDLimit, of: "ids")
        var ids: [String] = [], seen: Set<String> = []
        for (index, item) in items.enumerated() {
            guard case .string(let id) = item, UUIDPattern.matches(id[...]) else {
                throw FilterProblem(message: "\(place)[\(index)] must be a string holding a valid UUID")
            }
            // The same id in another case is the same member.
            if seen.insert(id.lowercased()).inserted { ids.append(id) }
        }
        return ids
    }

    static func conditions(_ value: JSONValue, at place: String) throws(FilterProblem) -> [FilterCondition] {
        var conditions: [FilterCondition] = []
        try eachObject(value, at: place, count: 1...ImportFilter.conditionLimit, of: "conditions", keys: ["field", "value"],
                       shape: #"{"field": F, "value": V}"#) { at, members throws(FilterProblem) in
            let field = try self.field(members["field"], at: at + ".field")
            guard let value = members["value"] else { throw FilterProblem(message: "\(at).value is missing") }
            let match: FilterCondition.Match
            switch value {
            case .string(let text): match = .equals(text)
            case .null: match = .absent
            case .array:
                let values = try array(value, at: at + ".value", count: 1...ImportFilter.valueLimit, of: "strings")
                var texts: [String] = []
                for (offset, value) in values.enumerated() {
                    guard case .string(let text) = value else { throw FilterProblem(message: "\(at).value[\(offset)] must be a string") }
                    texts.append(text)
                }
                match = .anyOf(texts)
            default:
                throw FilterProblem(message: "\(at).value must be a string, null, or an array of 1 to \(ImportFilter.valueLimit) strings")
            }
            conditions.append(FilterCondition(field: field, match: match))
        }
        return conditions
    }

    static func order(_ value: JSONValue, at place: String) throws(FilterProblem) -> [FilterOrder] {
        var order: [FilterOrder] = []
        try eachObject(value, at: place, count: 1...ImportFilter.orderLimit, of: "keys", keys: ["field", "direction"],
                       shape: #"{"field": F, "direction": "asc" | "desc"}"#) { at, members throws(FilterProblem) in
            let field = try self.field(members["field"], at: at + ".field")
            let descending: Bool
            switch members["direction"] {
            case nil, .string("asc")?: descending = false
            case .string("desc")?: descending = true
            default: throw FilterProblem(message: #"\#(at).direction must be "asc" or "desc""#)
            }
            order.append(FilterOrder(field: field, descending: descending))
        }
        return order
    }

    static func limit(_ value: JSONValue, at place: String) throws(FilterProblem) -> Int {
        let range = ImportFilter.limitRange
        let problem = FilterProblem(message: "\(place) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        guard case .number(let text) = value, let number = integer(text), range.contains(number) else { throw problem }
        return number
    }

    /// The integer a JSON number holds, written plainly (`2500`, not `2.5e3`), or nil.
    static func integer(_ text: String) -> Int? {
        guard text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 || $0 == UInt8(ascii: "-") }) else { return nil }
        return Int(text)
    }

    static func field(_ value: JSONValue?, at place: String) throws(FilterProblem) -> FilterField {
        guard let value else { throw FilterProblem(message: "\(place) is missing") }
        guard case .string(let name) = value, let field = FilterField(name: name) else {
            let names = FilterField.mapped.map(\.name).joined(separator: ", ")
            throw FilterProblem(message: "\(place) must be one of \(names), or attributes.KEY (KEY of 1 to 200 characters, without NUL)")
        }
        return field
    }

    static func array(_ value: JSONValue, at place: String, count: ClosedRange<Int>, of what: String) throws(FilterProblem) -> [JSONValue] {
        guard case .array(let items) = value, count.contains(items.count) else {
            throw FilterProblem(message: "\(place) must be an array of \(count.lowerBound) to \(count.upperBound) \(what)")
        }
        return items
    }

    /// An array of `count` objects of `keys`, each handed to `body` with its place
    /// (`filter.where[2]`) in turn, so that the first wrong place in the body's order is named.
    static func eachObject(_ value: JSONValue, at place: String, count: ClosedRange<Int>, of what: String, keys: Set<String>,
                           shape: String, _ body: (String, [String: JSONValue]) throws(FilterProblem) -> Void) throws(FilterProblem) {
        for (index, item) in try array(value, at: place, count: count, of: what).enumerated() {
            let at = "\(place)[\(index)]"
            try body(at, try object(item, at: at, keys: keys, shape: shape))
        }
    }

    static func object(_ value: JSONValue, at place: String, keys: Set<String>, shape: String) throws(FilterProblem) -> [String: JSONValue] {
        guard case .object(let members) = value else { throw FilterProblem(message: "\(place) must be an object \(shape)") }
        var found: [String: JSONValue] = [:]
        for (key, value) in members {
            guard keys.contains(key) else { throw FilterProblem(message: "\(place).\(key) is not allowed here: \(shape)") }
            guard found.updateValue(value, forKey: key) == nil else { throw FilterProblem(message: "\(place).\(key) is given twice") }
        }
        return found
    }
}
