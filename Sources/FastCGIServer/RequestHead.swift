/// Checks, on bytes peeked from a connection, that everything libfcgi will read of one request
/// has arrived and that libfcgi can read it safely, before any worker is given the connection.
///
/// libfcgi reads a request in two steps: `FCGX_Accept_r` reads the BEGIN_REQUEST record and the
/// PARAMS stream up to its empty closing record, and the body is read later through
/// `FCGX_GetStr`. Both parse every record header they meet, and both hand a record with request id
/// 0 to `ProcessManagementRecord`, which can abort the process or leak. So the check covers the
/// request up to the end of its STDIN stream, or up to the first `bodyLimit + 1` bytes of it, which
/// is all a worker ever asks libfcgi for (a longer body is answered 413 and the connection closed;
/// its rest is never parsed by libfcgi). Requiring all of it to be there also means that libfcgi
/// never waits on the network, so a client that stops half-way holds no worker (docs/fastcgi.md).
///
/// What it refuses:
/// - any management record (request id 0): `FCGI_GET_VALUES` answers into a 64-byte stack buffer,
///   17 bytes per known name, so four `FCGI_MAX_CONNS` names overflow it; other types leak an
///   allocation each. Web servers send neither.
/// - a name-value pair whose lengths do not fit in the bytes actually received: libfcgi's
///   `ReadParams` calls `Malloc(nameLen + valueLen + 2)` and aborts the whole process when that
///   fails, and the CVE-2025-23016 fix only bounds each length on its own.
/// - a record of this request other than PARAMS in the head or STDIN in the body.
package enum RequestHead {
    package enum Verdict: Equatable {
        /// Everything libfcgi will read of the request is there and safe to hand to it.
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
        static let stdin: UInt8 = 5
    }

    /// `bytes` are what the connection holds so far, at most `limit` of them; when they fill the
    /// limit, an incomplete request would be one larger than the limit. `headLimit` bounds one
    /// name-value pair; `bodyLimit` is how much of the body a worker reads at most.
    package static func inspect(_ bytes: ArraySlice<UInt8>, limit: Int, headLimit: Int, bodyLimit: Int) -> Verdict {
        let verdict = inspect(bytes, pairLimit: headLimit, bodyLimit: bodyLimit)
        if verdict == .incomplete && bytes.count >= limit {
            return .invalid("request larger than \(limit) bytes")
        }
        return verdict
    }

    private enum Phase { case beforeBegin, params, body }

    private static func inspect(_ bytes: ArraySlice<UInt8>, pairLimit: Int, bodyLimit: Int) -> Verdict {
        var offset = bytes.startIndex
        var requestID: Int?
        var params: [UInt8] = []
        var phase = Phase.beforeBegin
        var bodyBytes = 0

        while true {
            guard bytes.endIndex - offset >= headerLength else { break }
            let version = bytes[offset]
            let type = bytes[offset + 1]
            let recordRequestID = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            let contentLength = Int(bytes[offset + 4]) << 8 | Int(bytes[offset + 5])
            let paddingLength = Int(bytes[offset + 6])
            guard version == 1 else { return .invalid("FastCGI version \(version)") }
            if recordRequestID == 0 && type != RecordType.beginRequest {
                return .invalid("management record type \(type)")
            }
            let contentStart = offset + headerLength
            let recordEnd = contentStart + contentLength + paddingLength
            let ours = requestID != nil && recordRequestID == requestID
            guard recordEnd <= bytes.endIndex else {
                // What has arrived of an unfinished record can already decide.
                let arrived = bytes[contentStart..<min(contentStart + contentLength, bytes.endIndex)]
                if ours && phase == .params && type == RecordType.params { params += arrived }
                if ours && phase == .body && type == RecordType.stdin && bodyBytes + arrived.count > bodyLimit {
                    return .complete
                }
                break
            }
            let content = bytes[contentStart..<(contentStart + contentLength)]
            offset = recordEnd

            if type == RecordType.beginRequest {
                guard recordRequestID != 0, contentLength == 8 else { return .invalid("malformed BEGIN_REQUEST") }
                // A second BEGIN_REQUEST is answered FCGI_CANT_MPX_CONN by libfcgi and skipped.
                if requestID == nil {
                    requestID = recordRequestID
                    phase = .params
                }
                continue
            }
            // libfcgi skips records of other requests, before and after its BEGIN_REQUEST.
            guard ours else { continue }
            switch phase {
            case .beforeBegin:
                continue
            case .params:
                guard type == RecordType.params else { return .invalid("record type \(type) before the end of PARAMS") }
                if contentLength > 0 {
                    params += content
                    continue
                }
                if let problem = pairProblem(params[...], isWhole: true, pairLimit: pairLimit) {
                    return .invalid("PARAMS: \(problem)")
                }
                // A body declared over the limit is not read at all.
                if let declared = declaredContentLength(params[...]), declared > bodyLimit { return .complete }
                phase = .body
            case .body:
                guard type == RecordType.stdin else { return .invalid("record type \(type) in the body") }
                if contentLength == 0 { return .complete }
                bodyBytes += contentLength
                if bodyBytes > bodyLimit { return .complete }
            }
        }
        if phase == .params, let problem = pairProblem(params[...], isWhole: false, pairLimit: pairLimit) {
            return .invalid("PARAMS: \(problem)")
        }
        return .incomplete
    }

    /// The last CONTENT_LENGTH among checked, whole pairs, as the worker reads it
    /// (`RequestParameters`); nil when absent or not a plain number. Only a length both read the
    /// same way may excuse a body from being checked: the worker then reads none of it.
    package static func declaredContentLength(_ pairs: ArraySlice<UInt8>) -> Int? {
        var found: Int?
        forEachPair(pairs) { name, value in
            guard name.elementsEqual("CONTENT_LENGTH".utf8) else { return }
            let isPlain = !value.isEmpty && value.count <= 18
                && value.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            found = isPlain ? value.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) } : nil
        }
        return found
    }

    /// Calls `body` with each name and value of a run of pairs that `pairProblem` accepted as whole.
    package static func forEachPair(_ pairs: ArraySlice<UInt8>, _ body: (ArraySlice<UInt8>, ArraySlice<UInt8>) -> Void) {
        var offset = pairs.startIndex
        while offset < pairs.endIndex {
            guard let name = readLength(pairs, &offset), let value = readLength(pairs, &offset),
                  name + value <= pairs.endIndex - offset else { return }
            body(pairs[offset..<(offset + name)], pairs[(offset + name)..<(offset + name + value)])
            offset += name + value
        }
    }

    /// One FastCGI length (one byte, or four with the high bit set), or nil when cut short.
    private static func readLength(_ pairs: ArraySlice<UInt8>, _ offset: inout Int) -> Int? {
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

    /// Why a run of FastCGI name-value pairs cannot be read, or nil when it can. When the run is
    /// not whole yet, only a pair too long to ever fit within `pairLimit` is a problem: such a
    /// head is refused at once instead of when its timeout passes.
    package static func pairProblem(_ pairs: ArraySlice<UInt8>, isWhole: Bool, pairLimit: Int) -> String? {
        var offset = pairs.startIndex
        while offset < pairs.endIndex {
            guard let nameLength = readLength(pairs, &offset), let valueLength = readLength(pairs, &offset) else {
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
