import FastCGIServer
import LeadCore

/// The properties the fuzz targets check, one function a target: each takes the fuzzer's bytes and
/// returns nil, or what is wrong. The fuzz targets (Fuzz/Targets) crash on an answer; the normal
/// test run (FuzzRegressionTests) runs the same functions over the kept corpus and every crash
/// input ever found (Fuzz/corpus), so a finding, once kept, is a test.
public enum FuzzOracle {
    static let headLimit = 128 * 1024
    static let bodyLimit = 65536

    /// The request check the dispatcher runs before libfcgi may read a connection: it never traps,
    /// decides a request and its prefixes consistently, and calls nothing `complete` that a model
    /// of libfcgi's reading finds unsafe (a management record, a pair that does not fit, a record
    /// of another type).
    public static func requestHead(_ bytes: [UInt8]) -> String? {
        let limit = headLimit + bodyLimit + 1 + 65536
        let whole = RequestHead.inspect(bytes[...], limit: limit, headLimit: headLimit, bodyLimit: bodyLimit)
        if whole == .complete, let problem = LibfcgiModel.problem(bytes, bodyLimit: bodyLimit) {
            return "called complete, but libfcgi would read \(problem)"
        }
        // A prefix decided complete or invalid stays so with more bytes after it.
        for cut in Set([bytes.count / 2, bytes.count * 3 / 4, max(0, bytes.count - 1)]) where cut < bytes.count {
            let prefix = RequestHead.inspect(bytes[..<cut], limit: limit, headLimit: headLimit, bodyLimit: bodyLimit)
            switch (prefix, whole) {
            case (.complete, .complete), (.incomplete, _), (.invalid, .invalid): continue
            default: return "the first \(cut) bytes were \(prefix), all \(bytes.count) are \(whole)"
            }
        }
        return nil
    }

    /// FastCGI name-value pairs into a request: never traps, and the body length the request check
    /// reads (which decides whether the body is checked at all) is the worker's.
    public static func parameters(_ bytes: [UInt8]) -> String? {
        guard RequestHead.pairProblem(bytes[...], isWhole: true, pairLimit: headLimit) == nil else { return nil }
        var builder = RequestParameters.Builder()
        var sawHeaderLength = false
        RequestHead.forEachPair(bytes[...]) { name, value in
            if name.elementsEqual("HTTP_CONTENT_LENGTH".utf8) { sawHeaderLength = true }
            Array(name).withUnsafeBufferPointer { name in
                Array(value).withUnsafeBufferPointer { value in builder.add(name: name, value: value) }
            }
        }
        let parameters = builder.finish()
        _ = parameters.request(body: [], bodyExceedsLimit: false)
        if let declared = RequestHead.declaredContentLength(bytes[...]), parameters.contentLength != declared, !sawHeaderLength {
            return "the request check reads CONTENT_LENGTH \(declared), the worker \(String(describing: parameters.contentLength))"
        }
        return nil
    }

    /// The JSON reader: never traps, and the body check agrees with it; a body whose filter
    /// names anything never passes as the whole list (a mistyped filter must never import it).
    public static func json(_ bytes: [UInt8]) -> String? {
        let parsed = try? JSONReader.parse(bytes)
        let checked = ImportRequest.body(bytes)
        switch (parsed, checked) {
        case (nil, .success(let body)): return "a body the reader refuses gave list id \(body.listID)"
        case (.some(let value), .failure(.invalidJSON)):
            if case .object = value { return "an object was called invalid JSON" }
        case (.some(let value), .success(let body)):
            if case .object(let members)? = value["filter"], !members.isEmpty, body.filter.selectsEverything {
                return "a filter with keys passed as the whole list"
            }
        default: break
        }
        return nil
    }

    /// The identity normalizers: the ASCII fast path and the general path agree byte for byte,
    /// normalizing twice changes nothing, and no identity holds a refused code point or (emails)
    /// more than 254 bytes. Whether PostgreSQL agrees too is IdentityDifferentialTests', over the
    /// same corpus.
    public static func identity(_ bytes: [UInt8]) -> String? {
        let value = String(decoding: bytes, as: UTF8.self)
        func same(_ a: String?, _ b: String?) -> Bool { a.map { Array($0.utf8) } == b.map { Array($0.utf8) } }
        let email = Email.normalized(value)
        if !same(email, Email.normalizedGeneral(value)) { return "email: fast path \(String(describing: email)), general \(String(describing: Email.normalizedGeneral(value)))" }
        if let email {
            if !same(Email.normalized(email), email) { return "email not idempotent: \(email)" }
            if email.utf8.count > 254 { return "email of \(email.utf8.count) bytes" }
            if email.unicodeScalars.contains(where: { IdentityText.isSpaceControlOrFormat($0.value) }) { return "email holds a refused code point" }
        }
        let profile = LinkedInURL.normalized(value)
        if !same(profile, LinkedInURL.normalizedGeneral(value)) {
            return "linkedin: fast path \(String(describing: profile)), general \(String(describing: LinkedInURL.normalizedGeneral(value)))"
        }
        if let profile {
            if !same(LinkedInURL.normalized(profile), profile) { return "linkedin not idempotent: \(profile)" }
            if !profile.hasPrefix("https://www.linkedin.com/") { return "linkedin identity \(profile)" }
            if profile.unicodeScalars.contains(where: { IdentityText.isSpaceControlOrFormat($0.value) }) { return "linkedin holds a refused code point" }
        }
        return nil
    }
}

/// How libfcgi 2.4.2 reads one request on a connection (docs/fastcgi.md, 10: FCGX_Accept_r, then
/// FCGX_GetStr on STDIN up to bodyLimit + 1 bytes), written apart from RequestHead: what would it
/// meet that is unsafe, if it read these bytes.
enum LibfcgiModel {
    static func problem(_ bytes: [UInt8], bodyLimit: Int) -> String? {
        var offset = 0
        var requestID: Int?
        var params: [UInt8] = []
        var inBody = false
        var body = 0
        while bytes.count - offset >= 8 {
            let type = bytes[offset + 1]
            let id = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            let length = Int(bytes[offset + 4]) << 8 | Int(bytes[offset + 5])
            let padding = Int(bytes[offset + 6])
            if bytes[offset] != 1 { return "a record of version \(bytes[offset])" }
            if id == 0 && type != 1 { return "a management record (type \(type))" }
            let end = min(bytes.count, offset + 8 + length + padding)
            let content = Array(bytes[min(bytes.count, offset + 8)..<min(bytes.count, offset + 8 + length)])
            offset = end
            if type == 1 {
                if requestID == nil { requestID = id }
                continue
            }
            guard let requestID, id == requestID else { continue }
            if !inBody {
                if type != 4 { return "a record of type \(type) in the head" }
                if length > 0 { params += content; continue }
                var at = 0
                while at < params.count {
                    func next() -> Int? {
                        guard at < params.count else { return nil }
                        if params[at] < 0x80 { at += 1; return Int(params[at - 1]) }
                        guard params.count - at >= 4 else { return nil }
                        let v = Int(params[at] & 0x7F) << 24 | Int(params[at + 1]) << 16 | Int(params[at + 2]) << 8 | Int(params[at + 3])
                        at += 4
                        return v
                    }
                    guard let name = next(), let value = next() else { return "a cut pair length" }
                    if name + value > params.count - at { return "a pair of \(name)+\(value) bytes past its data" }
                    at += name + value
                }
                if let declared = RequestHead.declaredContentLength(params[...]), declared > bodyLimit { return nil }
                inBody = true
                continue
            }
            if type != 5 { return "a record of type \(type) in the body" }
            if length == 0 { return nil }
            body += content.count
            if body > bodyLimit { return nil }
        }
        return nil
    }
}
