/// A query parameter. Text goes in PostgreSQL's text format (the server casts it to the column's
/// type: uuid, int, jsonb, timestamptz...); bytea goes in binary format, byte for byte; `binary`
/// is any other type already in PostgreSQL's binary send format (see `textArray`).
public enum PostgresValue: Sendable, Hashable, ExpressibleByStringLiteral, ExpressibleByNilLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral
{
    case null
    case text(String)
    case bytea([UInt8])
    case binary(type: UInt32, [UInt8])

    public init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    public init(stringLiteral value: String) { self = .text(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(integerLiteral value: Int) { self = .text(String(value)) }
    public init(booleanLiteral value: Bool) { self = .text(value ? "true" : "false") }

    public static func int(_ value: Int?) -> PostgresValue { value.map { .text(String($0)) } ?? .null }

    /// The type OID and bytes of a parameter sent in binary format; nil for text and NULL.
    var binaryForm: (type: UInt32, bytes: [UInt8])? {
        switch self {
        case .bytea(let bytes): return (17, bytes)
        case .binary(let type, let bytes): return (type, bytes)
        case .null, .text: return nil
        }
    }
}
