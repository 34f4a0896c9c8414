/// One row of a result. Every accessor takes a column index or name; an unknown column, a NULL
/// where a value is required, or text that is not of the asked type throws a `.decoding` error that
/// names the column. The optional accessors return nil for SQL NULL.
public struct Row: Sendable {
    let storage: ResultStorage
    let row: Int

    var index: ColumnIndex { storage.index }

    // MARK: by index

    /// How many columns the row has.
    public var columnCount: Int { storage.columnCount }

    public func isNull(_ column: Int) throws -> Bool {
        if case .null = try cell(column) { return true }
        return false
    }

    public func string(_ column: Int) throws -> String? {
        switch try cell(column) {
        case .null: return nil
        case .text(let text): return text
        case .bytes: throw decodingError(column, "is bytea; read it with bytes()")
        }
    }

    public func int(_ column: Int) throws -> Int? {
        guard let text = try string(column) else { return nil }
        guard let value = Int(text) else { throw decodingError(column, "is not an integer") }
        return value
    }

    public func double(_ column: Int) throws -> Double? {
        guard let text = try string(column) else { return nil }
        guard let value = Double(text) else { throw decodingError(column, "is not a number") }
        return value
    }

    public func bool(_ column: Int) throws -> Bool? {
        guard let text = try string(column) else { return nil }
        switch text {
        case "t", "true": return true
        case "f", "false": return false
        default: throw decodingError(column, "is not a boolean")
        }
    }

    public func bytes(_ column: Int) throws -> [UInt8]? {
        switch try cell(column) {
        case .null: return nil
        case .bytes(let bytes): return bytes
        case .text: throw decodingError(column, "is not bytea")
        }
    }

    public func requiredString(_ column: Int) throws -> String { try required(column, string(column)) }
    public func requiredInt(_ column: Int) throws -> Int { try required(column, int(column)) }
    public func requiredBool(_ column: Int) throws -> Bool { try required(column, bool(column)) }
    public func requiredBytes(_ column: Int) throws -> [UInt8] { try required(column, bytes(column)) }

    // MARK: by name

    public func isNull(_ column: String) throws -> Bool { try isNull(position(column)) }
    public func string(_ column: String) throws -> String? { try string(position(column)) }
    public func int(_ column: String) throws -> Int? { try int(position(column)) }
    public func double(_ column: String) throws -> Double? { try double(position(column)) }
    public func bool(_ column: String) throws -> Bool? { try bool(position(column)) }
    public func bytes(_ column: String) throws -> [UInt8]? { try bytes(position(column)) }
    public func requiredString(_ column: String) throws -> String { try requiredString(position(column)) }
    public func requiredInt(_ column: String) throws -> Int { try requiredInt(position(column)) }
    public func requiredBool(_ column: String) throws -> Bool { try requiredBool(position(column)) }
    public func requiredBytes(_ column: String) throws -> [UInt8] { try requiredBytes(position(column)) }

    // MARK: helpers

    private func cell(_ column: Int) throws -> Cell {
        guard column >= 0 && column < storage.columnCount else {
            throw PostgresError(kind: .decoding, message: "no column at index \(column) (the row has \(storage.columnCount))")
        }
        return storage.cell(row: row, column: column)
    }

    private func position(_ name: String) throws -> Int {
        guard let position = index.positions[name] else {
            throw PostgresError(kind: .decoding, message: "no column named \"\(name)\" in the result", column: name)
        }
        return position
    }

    private func required<T>(_ column: Int, _ value: T?) throws -> T {
        guard let value else { throw decodingError(column, "is NULL") }
        return value
    }

    private func decodingError(_ column: Int, _ problem: String) -> PostgresError {
        let name = index.names.indices.contains(column) ? index.names[column] : "#\(column)"
        return PostgresError(kind: .decoding, message: "column \"\(name)\" \(problem)", column: name)
    }
}
