import CLibPQ
import Platform

/// The column names of a result, shared by its rows.
final class ColumnIndex: Sendable {
    let names: [String]
    let positions: [String: Int]

    init(_ names: [String]) {
        self.names = names
        var positions: [String: Int] = [:]
        for (index, name) in names.enumerated() where positions[name] == nil { positions[name] = index }
        self.positions = positions
    }
}

enum Cell: Sendable {
    case null
    case text(String)
    case bytes([UInt8])
}

/// Every value of a result in one byte buffer, with where each cell starts and how long it is
/// (-1: NULL). A String is made only for a cell that is read: a page of a list is thousands of
/// cells, and a String and an array per row were a large share of an import's CPU in the service.
final class ResultStorage: Sendable {
    let index: ColumnIndex
    let columnCount: Int
    let isBytea: [Bool]
    let bytes: [UInt8]
    /// Offsets into `bytes`: a result may pass 2 GiB (a thousand fields of a few MB each).
    let starts: [Int]
    /// One value is at most 1 GB in PostgreSQL.
    let lengths: [Int32]

    init(index: ColumnIndex, isBytea: [Bool], bytes: [UInt8], starts: [Int], lengths: [Int32]) {
        self.index = index
        self.columnCount = isBytea.count
        self.isBytea = isBytea
        self.bytes = bytes
        self.starts = starts
        self.lengths = lengths
    }

    func cell(row: Int, column: Int) -> Cell {
        let at = row * columnCount + column
        let length = Int(lengths[at])
        guard length >= 0 else { return .null }
        let start = Int(starts[at])
        if isBytea[column] { return .bytes(Array(bytes[start..<start + length])) }
        return .text(bytes.withUnsafeBufferPointer { String(decoding: $0[start..<start + length], as: UTF8.self) })
    }
}

extension Connection {
    func copy(_ result: OpaquePointer) -> QueryResult {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var names: [String] = []
        var types: [UInt32] = []
        names.reserveCapacity(columnCount)
        for column in 0..<columnCount {
            names.append(PQfname(result, Int32(column)).map { String(cString: $0) } ?? "?column?")
            types.append(PQftype(result, Int32(column)))
        }
        let index = ColumnIndex(names)
        let cellCount = rowCount * columnCount
        // The exact size up front (bytea shrinks when decoded, so this is an upper bound): a page
        // of a list is a large buffer, and growing by doubling kept the old and the new buffer
        // alive together at every step.
        var total = 0
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) { total += Int(PQgetlength(result, row, column)) }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total)
        var starts: [Int] = []
        var lengths: [Int32] = []
        starts.reserveCapacity(cellCount)
        lengths.reserveCapacity(cellCount)
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) {
                if PQgetisnull(result, row, column) != 0 {
                    starts.append(bytes.count)
                    lengths.append(-1)
                    continue
                }
                let length = Int(PQgetlength(result, row, column))
                let value = PQgetvalue(result, row, column)!
                let raw = UnsafeRawBufferPointer(start: value, count: length)
                starts.append(bytes.count)
                if types[Int(column)] == 17 {
                    let decoded = Self.decodeBytea(raw, cString: value)
                    lengths.append(Int32(decoded.count))
                    bytes.append(contentsOf: decoded)
                } else {
                    lengths.append(Int32(length))
                    bytes.append(contentsOf: raw)
                }
            }
        }
        let storage = ResultStorage(index: index, isBytea: types.map { $0 == 17 }, bytes: bytes, starts: starts, lengths: lengths)
        let rows = (0..<rowCount).map { Row(storage: storage, row: $0) }
        let tag = PQcmdStatus(result).map { String(cString: $0) } ?? ""
        let affected = PQcmdTuples(result).flatMap { Int(String(cString: $0)) } ?? 0
        return QueryResult(columns: names, rows: rows, affectedRows: affected, commandTag: tag)
    }

    /// bytea in text format: `\x` and hex digits (the default), else the old escape format.
    private static func decodeBytea(_ raw: UnsafeRawBufferPointer, cString: UnsafePointer<CChar>) -> [UInt8] {
        if raw.count >= 2 && raw[0] == UInt8(ascii: "\\") && raw[1] == UInt8(ascii: "x") {
            var bytes: [UInt8] = []
            bytes.reserveCapacity((raw.count - 2) / 2)
            var position = 2
            while position + 1 < raw.count {
                guard let high = hexDigitValue(raw[position]), let low = hexDigitValue(raw[position + 1]) else { break }
                bytes.append(high << 4 | low)
                position += 2
            }
            return bytes
        }
        var length = 0
        guard let unescaped = cString.withMemoryRebound(to: UInt8.self, capacity: raw.count + 1, { PQunescapeBytea($0, &length) }) else {
            return []
        }
        defer { PQfreemem(unescaped) }
        return Array(UnsafeBufferPointer(start: unescaped, count: length))
    }

    func error(from result: OpaquePointer) -> PostgresError {
        func field(_ code: Int32) -> String? {
            PQresultErrorField(result, code).map { String(cString: $0) }
        }
        let message = field(Int32(UInt8(ascii: "M")))
            ?? PQresultErrorMessage(result).map { Self.cleanMessage($0) }
            ?? "unknown error"
        let lost = isBroken
        return PostgresError(
            kind: lost ? .connectionLost : .server,
            sqlState: field(Int32(UInt8(ascii: "C"))),
            message: message.isEmpty && lost ? "the connection to \(endpoint) was lost" : message,
            detail: field(Int32(UInt8(ascii: "D"))),
            constraint: field(Int32(UInt8(ascii: "n"))),
            table: field(Int32(UInt8(ascii: "t"))),
            column: field(Int32(UInt8(ascii: "c")))
        )
    }
}
