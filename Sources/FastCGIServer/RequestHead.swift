/// Checks, on bytes peeked from a connection, that a whole request head is there and that libfcgi
/// can read it safely, before any worker is given the connection.
///
/// The head is everything libfcgi's `FCGX_Accept_r` reads before it returns: the BEGIN_REQUEST
/// record and the PARAMS stream up to its empty closing record (plus any management or foreign
/// records in between). Requiring all of it means that `FCGX_Accept_r` never waits on the network,
/// so a client that stops half-way through its head holds no worker (fastcgi-pitfalls.md, 2 and 3).
///
/// Checking it means that libfcgi 2.4.2 never sees a name-value pair whose lengths it cannot
/// allocate: its `ReadParams` calls `Malloc(nameLen + valueLen + 2)` and aborts the whole process
/// when that fails, and the CVE-2025-23016 fix only bounds each length on its own (pitfall 1).
/// Here every pair must fit in the bytes actually received, so no allocation exceeds the head.
enum RequestHead {
    enum Verdict: Equatable {
        /// The head is all there and safe to hand to libfcgi.
        case complete
        /// More bytes are needed.
        case incomplete
        /// libfcgi must not read this; close the connection.
        case invalid(String)
    }

    static let headerLength = 8

    /// FastCGI record types (FastCGI specification, section 8).
    enum RecordType {
        static let beginRequest: UInt8 = 1
        static let params: UInt8 = 4
        static let getValues: UInt8 = 9
    }

    /// `bytes` are what the connection holds so far, at most `limit` of them; when they fill the
    /// limit, an incomplete head would be one larger than the limit.
    static func inspect(_ bytes: ArraySlice<UInt8>, limit: Int) -> Verdict {
        let verdict = inspect(bytes, pairLimit: limit)
        if verdict == .incomplete && bytes.count >= limit {
            return .invalid("request head larger than \(limit) bytes")
        }
        return verdict
    }

    private static func inspect(_ bytes: ArraySlice<UInt8>, pairLimit: Int) -> Verdict {
        var offset = bytes.startIndex
        var requestID: Int?
        var params: [UInt8] = []

        while true {
            guard bytes.endIndex - offset >= headerLength else { break }
            let version = bytes[offset]
            let type = bytes[offset + 1]
            let recordRequestID = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            let contentLength = Int(bytes[offset + 4]) << 8 | Int(bytes[offset + 5])
            let paddingLength = Int(bytes[offset + 6])
            guard version == 1 else { return .invalid("FastCGI version \(version)") }
            let contentStart = offset + headerLength
            let recordEnd = contentStart + contentLength + paddingLength
            guard recordEnd <= bytes.endIndex else {
                // What has arrived of a PARAMS record can already betray an impossible pair.
                if let requestID, recordRequestID == requestID, type == RecordType.params {
                    params += bytes[contentStart..<min(contentStart + contentLength, bytes.endIndex)]
                }
                break
            }
            let content = bytes[contentStart..<(contentStart + contentLength)]
            offset = recordEnd

            if type == RecordType.beginRequest {
                guard recordRequestID != 0, contentLength == 8 else { return .invalid("malformed BEGIN_REQUEST") }
                // A second BEGIN_REQUEST is answered FCGI_CANT_MPX_CONN by libfcgi and skipped.
                if requestID == nil { requestID = recordRequestID }
                continue
            }
            if recordRequestID == 0 {
                // libfcgi parses FCGI_GET_VALUES with the same ReadParams; for any other management
                // type, 2.4.2 leaks an allocation per record. Web servers send neither.
                guard type == RecordType.getValues else { return .invalid("management record type \(type)") }
                if let problem = pairProblem(content, isWhole: true, pairLimit: pairLimit) {
                    return .invalid("GET_VALUES: \(problem)")
                }
                continue
            }
            // libfcgi skips records of other requests, before and after its BEGIN_REQUEST.
            guard let requestID, recordRequestID == requestID else { continue }
            guard type == RecordType.params else { return .invalid("record type \(type) before the end of PARAMS") }
            if contentLength == 0 {
                if let problem = pairProblem(params[...], isWhole: true, pairLimit: pairLimit) {
                    return .invalid("PARAMS: \(problem)")
                }
                return .complete
            }
            params += content
        }
        if let problem = pairProblem(params[...], isWhole: false, pairLimit: pairLimit) {
            return .invalid("PARAMS: \(problem)")
        }
        return .incomplete
    }

    /// Why a run of FastCGI name-value pairs cannot be read, or nil when it can. When the run is
    /// not whole yet, only a pair too long to ever fit within `pairLimit` is a problem: such a
    /// head is refused at once instead of when its timeout passes.
    static func pairProblem(_ pairs: ArraySlice<UInt8>, isWhole: Bool, pairLimit: Int) -> String? {
        var offset = pairs.startIndex
        func length() -> Int? {
            guard offset < pairs.endIndex else { return nil }
            let first = pairs[offset]
            if first & 0x80 == 0 {
                offset += 1
                return Int(first)
            }
            guard pairs.endIndex - offset >= 4 else { return nil }
            let value = Int(first & 0x7F) << 24 | Int(pairs[offset + 1]) << 16
                | Int(pairs[offset + 2]) << 8 | Int(pairs[offset + 3])
            offset += 4
            return value
        }
        while offset < pairs.endIndex {
            guard let nameLength = length(), let valueLength = length() else {
                return isWhole ? "truncated length" : nil
            }
            if nameLength + valueLength > pairLimit {
                return "pair of \(nameLength)+\(valueLength) bytes"
            }
            guard nameLength + valueLength <= pairs.endIndex - offset else {
                return isWhole ? "pair of \(nameLength)+\(valueLength) bytes longer than the data sent" : nil
            }
            offset += nameLength + valueLength
        }
        return nil
    }
}
