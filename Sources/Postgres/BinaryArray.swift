extension PostgresValue {
    /// A `text[]` parameter. One array per column lets a single statement carry a whole batch of
    /// rows (`unnest($1::text[], ...)`) with a fixed parameter count.
    ///
    /// It goes in PostgreSQL's binary array format (`array_recv`): each element is its length and
    /// its bytes, so neither side scans for quotes and backslashes. The text literal this replaced
    /// was a large share of an import's CPU in the service to write, and the server's `array_in`
    /// parses it character by character.
    public static func textArray(_ values: [String?]) -> PostgresValue {
        var hasNull = false, payload = 0
        for value in values {
            if let value { payload += value.utf8.count } else { hasNull = true }
        }
        var array = BinaryArray(elementType: BinaryArray.text, count: values.count, hasNull: hasNull, payload: payload)
        for value in values {
            guard let value else { array.appendNull(); continue }
            let utf8 = value.utf8
            if utf8.withContiguousStorageIfAvailable({ array.append($0) }) == nil { array.append(Array(utf8)[...]) }
        }
        return .binary(type: BinaryArray.textArray, array.bytes)
    }

    /// An `int[]` (`int4[]`) parameter, 4 bytes an element; nil when a value does not fit. Sent as
    /// `text[]`, each element went through a cast and `int4in` on the server (docs/performance.md).
    public static func int4Array(_ values: [Int]) -> PostgresValue? {
        var array = BinaryArray(elementType: BinaryArray.int4, count: values.count, hasNull: false, payload: 4 * values.count)
        for value in values {
            guard let value = Int32(exactly: value) else { return nil }
            array.append(int4: value)
        }
        return .binary(type: BinaryArray.int4Array, array.bytes)
    }

    /// Ids for a statement that casts the parameter (`$n::uuid[]`): binary `uuid[]`, or, when a
    /// value is not a UUID's text form, the same values as `text[]`, which the cast then refuses
    /// with the server's own error.
    public static func uuids(_ values: [String]) -> PostgresValue {
        uuidArray(values) ?? textArray(values)
    }

    /// Integers for a statement that casts the parameter (`$n::int[]`): binary `int4[]`, or, when a
    /// value does not fit, the same values as `text[]`, which the cast then refuses.
    public static func integers(_ values: [Int]) -> PostgresValue {
        int4Array(values) ?? textArray(values.map { String($0) })
    }

    /// A `uuid[]` parameter, 16 bytes an element; nil when a value is not a UUID's text form.
    public static func uuidArray(_ values: [String]) -> PostgresValue? {
        var array = BinaryArray(elementType: BinaryArray.uuid, count: values.count, hasNull: false, payload: 16 * values.count)
        var bytes = [UInt8](repeating: 0, count: 16)
        for value in values {
            guard BinaryArray.parseUUID(value, into: &bytes) else { return nil }
            array.append(bytes[...])
        }
        return .binary(type: BinaryArray.uuidArray, array.bytes)
    }
}

/// PostgreSQL's binary array format (`array_recv`): ndim, has-nulls flag, element type, then
/// per dimension its size and lower bound (1); then each element: its length (-1 for NULL) and
/// bytes. Every integer is big-endian. An empty array has no dimensions.
struct BinaryArray {
    // Type OIDs, fixed in PostgreSQL's catalog (`pg_type`).
    static let text: UInt32 = 25, textArray: UInt32 = 1009
    static let uuid: UInt32 = 2950, uuidArray: UInt32 = 2951
    static let int4: UInt32 = 23, int4Array: UInt32 = 1007

    private(set) var bytes: [UInt8] = []

    init(elementType: UInt32, count: Int, hasNull: Bool, payload: Int) {
        bytes.reserveCapacity(20 + 4 * count + payload)
        append(Int32(count == 0 ? 0 : 1))
        append(Int32(hasNull ? 1 : 0))
        append(Int32(bitPattern: elementType))
        if count > 0 {
            append(Int32(count))
            append(Int32(1))
        }
    }

    mutating func appendNull() { append(Int32(-1)) }

    mutating func append<C: Collection<UInt8>>(_ element: C) {
        append(Int32(element.count))
        bytes.append(contentsOf: element)
    }

    /// An `int4` element: its length, then its bytes.
    mutating func append(int4 value: Int32) {
        append(Int32(4))
        append(value)
    }

    private mutating func append(_ value: Int32) {
        let big = UInt32(bitPattern: value)
        bytes.append(UInt8(truncatingIfNeeded: big >> 24))
        bytes.append(UInt8(truncatingIfNeeded: big >> 16))
        bytes.append(UInt8(truncatingIfNeeded: big >> 8))
        bytes.append(UInt8(truncatingIfNeeded: big))
    }

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case) into 16 bytes.
    static func parseUUID(_ text: String, into bytes: inout [UInt8]) -> Bool {
        // A job sends every member's id (a million in a large job): read the bytes in place, not
        // one by one through the UTF-8 view's iterator (docs/performance.md).
        if let parsed = text.utf8.withContiguousStorageIfAvailable({ parseUUID($0, into: &bytes) }) { return parsed }
        return Array(text.utf8).withUnsafeBufferPointer { parseUUID($0, into: &bytes) }
    }

    private static func parseUUID(_ utf8: UnsafeBufferPointer<UInt8>, into bytes: inout [UInt8]) -> Bool {
        guard utf8.count == 36 else { return false }
        var index = 0, position = 0
        while position < 36 {
            if position == 8 || position == 13 || position == 18 || position == 23 {
                guard utf8[position] == UInt8(ascii: "-") else { return false }
                position += 1
                continue
            }
            guard let high = hexValue(utf8[position]), let low = hexValue(utf8[position + 1]) else { return false }
            bytes[index] = high << 4 | low
            index += 1
            position += 2
        }
        return true
    }

}

/// One hexadecimal digit's value (UUIDs here, bytea's `\x` text form in Connection).
func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
}
