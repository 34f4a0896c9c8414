import Platform

/// Why a member of a job's selection was not inserted.
public enum RejectionReason: String, Sendable, CaseIterable {
    case invalid
    case duplicate
    case error
}

/// One member that was not inserted, at its place in the selection (from 1).
public struct Rejection: Equatable, Sendable {
    public var position: Int
    public var memberID: String
    public var reason: RejectionReason
    public var detail: String

    public init(position: Int, memberID: String, reason: RejectionReason, detail: String) {
        self.position = position
        self.memberID = memberID
        self.reason = reason
        self.detail = detail
    }

    var json: JSONValue {
        .object([
            ("position", .number(String(position))),
            ("memberId", .string(memberID)),
            ("reason", .string(reason.rawValue)),
            ("detail", .string(detail)),
        ])
    }
}

/// The words a rejection's `detail` uses for what the database decides.
public enum RejectionDetail {
    public static let alreadyInCampaign = "already in the campaign"
    /// Followed by the position of the first member with the same identity.
    public static let repeatOfPositionPrefix = "a repeat of position "

    public static func repeatOf(position: Int) -> String { repeatOfPositionPrefix + String(position) }
}

/// Where a page of rejections starts: after a position. Opaque to clients: base64url of a
/// format byte and the position, so that a later format can tell its cursors apart.
public struct RejectionCursor: Equatable, Sendable {
    public let afterPosition: Int

    static let format: UInt8 = 1
    /// The largest position `import_rejections.position` (integer) holds.
    public static let lastPosition = Int(Int32.max)

    public init(afterPosition: Int) {
        precondition(afterPosition >= 0, "positions start at 1; 0 is before the first")
        self.afterPosition = afterPosition
    }

    public var text: String {
        var bytes: [UInt8] = [Self.format]
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: UInt64(afterPosition) >> UInt64(shift))) }
        return Base64URL.encode(bytes)
    }

    /// nil for anything `text` never gives.
    public init?(text: String) {
        guard let bytes = Base64URL.decode(text), bytes.count == 9, bytes[0] == Self.format else { return nil }
        let value = bytes[1...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        // A position is a PostgreSQL integer: past its largest no rejection can lie, and the
        // database would refuse the value (a 500 instead of this 400).
        guard value <= UInt64(Self.lastPosition) else { return nil }
        afterPosition = Int(value)
    }
}

/// The query of `GET /api/imports/{jobId}/rejections?after=CURSOR&limit=N`.
public struct RejectionsRequest: Equatable, Sendable {
    public var after: RejectionCursor?
    public var limit: Int

    public static let limits = 1...1000
    public static let defaultLimit = 100

    public init(after: RejectionCursor? = nil, limit: Int = RejectionsRequest.defaultLimit) {
        self.after = after
        self.limit = limit
    }

    /// Reads `after` and `limit` from a query string (percent-decoded; other parameters are
    /// ignored). A parameter given twice is refused: which one the client meant is unknowable.
    public static func parse(query: String?) -> Result<RejectionsRequest, RequestError> {
        var request = RejectionsRequest()
        var seenAfter = false, seenLimit = false
        for pair in (query ?? "").split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = percentDecoded(parts[0])
            let value = parts.count == 2 ? percentDecoded(parts[1]) : nil
            switch name ?? "" {
            case "after":
                guard !seenAfter, let value, let cursor = RejectionCursor(text: value) else { return .failure(.invalidCursor) }
                seenAfter = true
                request.after = cursor
            case "limit":
                guard !seenLimit, let value, let limit = decimal(value), limits.contains(limit) else { return .failure(.invalidLimit) }
                seenLimit = true
                request.limit = limit
            default:
                continue
            }
        }
        return .success(request)
    }

    /// Plain decimal digits only: no sign, no spaces, no exponent.
    static func decimal(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 9, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }

    /// `%XX` decoded and `+` as space, as forms send it; nil (refused) for a malformed escape
    /// or bytes that are not UTF-8.
    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexDigitValue), let low = iterator.next().flatMap(hexDigitValue) else { return nil }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+"):
                bytes.append(0x20)
            default:
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// One page of a job's rejections, as `GET .../rejections` answers it.
public struct RejectionPage: Equatable, Sendable {
    public var items: [Rejection]
    public var next: RejectionCursor?

    public init(items: [Rejection], next: RejectionCursor?) {
        self.items = items
        self.next = next
    }

    /// The page of `request` from `fetched`: the rejections after the cursor in position order,
    /// up to one more than the limit (the extra one says a next page exists). While the job is
    /// not final more may come, so there is always a next cursor: from the last item, or the
    /// same place when nothing new was there. Once final, `next` is null at the end.
    public static func make(request: RejectionsRequest, fetched: [Rejection], jobIsFinal: Bool) -> RejectionPage {
        let items = Array(fetched.prefix(request.limit))
        let more = fetched.count > request.limit
        guard more || !jobIsFinal else { return RejectionPage(items: items, next: nil) }
        let after = items.last?.position ?? request.after?.afterPosition ?? 0
        return RejectionPage(items: items, next: RejectionCursor(afterPosition: after))
    }

    public var body: String {
        var json = JSONObjectWriter()
        json.add("items", .array(items.map(\.json)))
        json.add("next", next.map { .string($0.text) } ?? .null)
        return json.result
    }
}

/// base64url without padding (RFC 4648, section 5).
enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var n: UInt32 = 0
            for (offset, byte) in chunk.enumerated() { n |= UInt32(byte) << UInt32(16 - 8 * offset) }
            for sextet in 0...chunk.count { out.append(alphabet[Int(n >> UInt32(18 - 6 * sextet) & 63)]) }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// nil for anything `encode` never writes: other characters, an impossible length, or
    /// stray bits in the last character (so every cursor has exactly one spelling).
    static func decode(_ text: String) -> [UInt8]? {
        let characters = Array(text.utf8)
        guard characters.count % 4 != 1 else { return nil }
        var values: [UInt32] = []
        values.reserveCapacity(characters.count)
        for character in characters {
            guard let value = alphabet.firstIndex(of: character) else { return nil }
            values.append(UInt32(value))
        }
        var bytes: [UInt8] = []
        var index = 0
        while index < values.count {
            let group = values[index..<min(index + 4, values.count)]
            var n: UInt32 = 0
            for (offset, value) in group.enumerated() { n |= value << UInt32(18 - 6 * offset) }
            let byteCount = group.count - 1
            for offset in 0..<byteCount { bytes.append(UInt8(truncatingIfNeeded: n >> UInt32(16 - 8 * offset))) }
            let usedBits = UInt32(8 * byteCount)
            if n & ((1 << (24 - usedBits)) - 1) != 0 { return nil }
            index += 4
        }
        return bytes
    }
}
