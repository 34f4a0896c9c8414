import CLibPQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Connection {
    /// Hands libpq C copies of the parameters for the duration of `body`.
    func withParameters<T>(
        _ values: [PostgresValue],
        _ body: (
            Int32, UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?,
            UnsafePointer<Int32>?
        ) throws -> T
    ) throws -> T {
        var buffers: [UnsafeMutablePointer<CChar>?] = []
        buffers.reserveCapacity(values.count)
        defer { for buffer in buffers { free(buffer) } }
        var types: [Oid] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        for (position, value) in values.enumerated() {
            switch value {
            case .null:
                buffers.append(nil)
                types.append(0)
                lengths.append(0)
                formats.append(0)
            case .text(let text):
                // Text parameters travel NUL-terminated; PostgreSQL text cannot hold NUL either.
                if text.utf8.contains(0) {
                    throw PostgresError(
                        kind: .server, sqlState: "22021",
                        message: "invalid byte sequence for encoding \"UTF8\": 0x00 (parameter $\(position + 1))")
                }
                buffers.append(strdup(text))
                types.append(0)
                lengths.append(0)
                formats.append(0)
            case .bytea, .binary:
                let (type, bytes) = value.binaryForm!
                // libpq takes lengths as int; PostgreSQL itself takes no value over 1 GB.
                guard bytes.count <= Int(Int32.max) else {
                    throw PostgresError(kind: .server, sqlState: "54000",
                                        message: "parameter $\(position + 1) is \(bytes.count) bytes, more than a statement can carry")
                }
                let buffer = malloc(max(1, bytes.count))!.assumingMemoryBound(to: CChar.self)
                bytes.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { memcpy(buffer, base, raw.count) }
                }
                buffers.append(buffer)
                types.append(type)
                lengths.append(Int32(bytes.count))
                formats.append(1)
            }
        }
        let pointers = buffers.map { UnsafePointer($0) }
        return try types.withUnsafeBufferPointer { types in
            try pointers.withUnsafeBufferPointer { pointers in
                try lengths.withUnsafeBufferPointer { lengths in
                    try formats.withUnsafeBufferPointer { formats in
                        try body(Int32(values.count), types.baseAddress, pointers.baseAddress, lengths.baseAddress, formats.baseAddress)
                    }
                }
            }
        }
    }
}
