import Platform

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
        let bytes = BinaryArray.bytes(elementType: BinaryArray.text, count: values.count, hasNull: hasNull,
                                      elements: 4 * values.count + payload) { writer in
            for value in values {
                guard var value else {
                    writer.null()
                    continue
                }
                value.withUTF8 { writer.element($0) }
            }
            return true
        }
        // Every text fits: `bytes` fails only when a writer says so.
        return .binary(type: BinaryArray.textArray, bytes ?? [])
    }

    /// An `int[]` (`int4[]`) parameter, 4 bytes an element; nil when a value does not fit. Sent as
    /// `text[]`, each element went through a cast and `int4in` on the server (docs/performance.md).
    public static func int4Array(_ values: [Int]) -> PostgresValue? {
        let bytes = BinaryArray.bytes(elementType: BinaryArray.int4, count: values.count, hasNull: false,
                                      elements: 8 * values.count) { writer in
            for value in values {
                guard let value = Int32(exactly: value) else { return false }
                writer.int32(4)
                writer.int32(value)
            }
            return true
        }
        return bytes.map { .binary(type: BinaryArray.int4Array, $0) }
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
        let bytes = BinaryArray.hexDigits.withUnsafeBufferPointer { digits in
            BinaryArray.bytes(elementType: BinaryArray.uuid, count: values.count, hasNull: false,
                              elements: 20 * values.count) { writer in
                for var value in values {
                    guard value.withUTF8({ writer.uuid($0, digits: digits) }) else { return false }
                }
                return true
            }
        }
        return bytes.map { .binary(type: BinaryArray.uuidArray, $0) }
    }
}

/// PostgreSQL's binary array format (`array_recv`): ndim, has-nulls flag, element type, then
/// per dimension its size and lower bound (1); then each element: its length (-1 for NULL) and
/// bytes. Every integer is big-endian. An empty array has no dimensions.
///
/// Written in place into an array of its exact size: appended a byte at a time, each append
/// checked the array's capacity and uniqueness, and a job's commits send a million member ids
/// and ten million fields (docs/performance.md).
enum BinaryArray {
    // Type OIDs, fixed in PostgreSQL's catalog (`pg_type`).
    static let text: UInt32 = 25, textArray: UInt32 = 1009
    static let uuid: UInt32 = 2950, uuidArray: UInt32 = 2951
    static let int4: UInt32 = 23, int4Array: UInt32 = 1007

    /// Each byte's value as a hexadecimal digit (either case); 0xFF for any other byte.
    static let hexDigits: [UInt8] = (0...255).map { hexDigitValue(UInt8($0)) ?? 0xFF }

    /// The array of `count` elements of `elementType`, its elements (each with its length) coming
    /// to `elements` bytes, as `write` writes them; nil when `write` gives up.
    static func bytes(elementType: UInt32, count: Int, hasNull: Bool, elements: Int,
                      write: (inout Writer) -> Bool) -> [UInt8]? {
        let size = (count == 0 ? 12 : 20) + elements
        var written = true
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var writer = Writer(buffer)
            writer.int32(count == 0 ? 0 : 1)
            writer.int32(hasNull ? 1 : 0)
            writer.int32(Int32(bitPattern: elementType))
            if count > 0 {
                writer.int32(Int32(count))
                writer.int32(1)
            }
            written = write(&writer)
            initialized = written ? writer.end : 0
        }
        return written ? bytes : nil
    }

    /// Writes into a buffer sized in advance; a write past its end stops the process rather than
    /// corrupt memory.
    struct Writer {
        private let buffer: UnsafeMutableBufferPointer<UInt8>
        private(set) var end = 0

        init(_ buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

        private mutating func reserve(_ count: Int) -> UnsafeMutablePointer<UInt8> {
            precondition(count <= buffer.count - end, "binary array written past the size it was given")
            defer { end += count }
            return buffer.baseAddress! + end
        }

        mutating func int32(_ value: Int32) {
            let bits = UInt32(bitPattern: value), out = reserve(4)
            out[0] = UInt8(truncatingIfNeeded: bits >> 24)
            out[1] = UInt8(truncatingIfNeeded: bits >> 16)
            out[2] = UInt8(truncatingIfNeeded: bits >> 8)
            out[3] = UInt8(truncatingIfNeeded: bits)
        }

        mutating func null() { int32(-1) }

        /// An element: its length, then its bytes.
        mutating func element(_ bytes: UnsafeBufferPointer<UInt8>) {
            int32(Int32(bytes.count))
            guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
            reserve(bytes.count).initialize(from: source, count: bytes.count)
        }

        /// A `uuid` element from `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case); false,
        /// with nothing written, when `text` is not one. `digits` is `hexDigits`.
        mutating func uuid(_ text: UnsafeBufferPointer<UInt8>, digits: UnsafeBufferPointer<UInt8>) -> Bool {
            guard text.count == 36 else { return false }
            // Every digit's value ORed together: above 15 when any byte was not a digit, or a
            // dash is missing.
            var seen: UInt8 = 0
            int32(16)
            let out = reserve(16)
            var position = 0
            for index in 0..<16 {
                // 8-4-4-4-12 digits: a dash before the 5th, 7th, 9th and 11th byte.
                if index == 4 || index == 6 || index == 8 || index == 10 {
                    seen |= text[position] == UInt8(ascii: "-") ? 0 : 0xFF
                    position += 1
                }
                let high = digits[Int(text[position])], low = digits[Int(text[position + 1])]
                seen |= high | low
                out[index] = high << 4 | low
                position += 2
            }
            if seen > 15 {
                end -= 20
                return false
            }
            return true
        }
    }
}
