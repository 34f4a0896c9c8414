/// The two identities a lead can be reached by, normalized so that two spellings of the same
/// person compare equal (the database's unique index compares these normalized forms).
public enum Channel: String, Sendable, CaseIterable {
    case email
    case linkedin
}

public enum Email {
    /// Trimmed and lowercased; nil unless it is a plausible address: one `@`, a non-empty local
    /// part, a domain with a dot (and no empty label), no spaces or control characters, at most
    /// 254 characters.
    public static func normalized(_ raw: String?) -> String? {
        guard let raw else { return nil }
        switch normalizedASCII(raw) {
        case .decided(let email): return email
        case .needsGeneral: return normalizedGeneral(raw)
        }
    }

    /// The reference implementation, on code points (IdentityText): any input. `normalized` only
    /// comes here for values the ASCII fast path cannot decide.
    package static func normalizedGeneral(_ raw: String?) -> String? {
        guard let raw else { return nil }
        let email = IdentityText.lowercased(IdentityText.trimmedScalars(raw))
        guard !email.isEmpty, utf8Length(email) <= 254 else { return nil }
        guard !email.contains(where: IdentityText.isSpaceControlOrFormat) else { return nil }
        let parts = email.split(separator: ascii("@"), omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty else { return nil }
        let labels = parts[1].split(separator: ascii("."), omittingEmptySubsequences: false)
        guard labels.count >= 2, !labels.contains(where: { $0.isEmpty }) else { return nil }
        return IdentityText.string(email)
    }
}

public enum LinkedInURL {
    /// The canonical form of a real LinkedIn profile URL, or nil when the value is not one.
    ///
    /// `https` (a missing scheme is added), host `www.linkedin.com` for linkedin.com and any
    /// subdomain, no query, no fragment, no trailing slash; `/in/NAME` is cut to that and NAME
    /// lowercased; `/pub/...` and `/sales/...` keep their case. Values and profile names that
    /// begin with `imported-` are placeholders another system wrote, never real profiles.
    public static func normalized(_ raw: String?) -> String? {
        guard let raw else { return nil }
        switch normalizedASCII(raw) {
        case .decided(let url): return url
        case .needsGeneral: return normalizedGeneral(raw)
        }
    }

    /// The reference implementation, on code points (IdentityText): any input. `normalized` only
    /// comes here for values the ASCII fast path cannot decide.
    package static func normalizedGeneral(_ raw: String?) -> String? {
        guard let raw else { return nil }
        let value = IdentityText.trimmedScalars(raw)
        guard !value.isEmpty, !IdentityText.hasPrefixIgnoringCase(value, "imported-") else { return nil }
        guard !value.contains(where: IdentityText.isSpaceControlOrFormat) else { return nil }

        var rest = value
        if let colon = rest.firstIndex(of: ascii(":")), rest[colon...].starts(with: codePoints("://")), isScheme(rest[..<colon]) {
            let scheme = IdentityText.lowercased(rest[..<colon])
            guard scheme == codePoints("https") || scheme == codePoints("http") else { return nil }
            rest = rest[(colon + 3)...]
        } else if rest.starts(with: codePoints("//")) {
            rest = rest.dropFirst(2)
        }
        // Query and fragment go first: a `/` inside them belongs to neither host nor path.
        rest = rest.prefix { $0 != ascii("?") && $0 != ascii("#") }

        let authority: ArraySlice<UInt32>
        var path: ArraySlice<UInt32>
        if let slash = rest.firstIndex(of: ascii("/")) {
            authority = rest[..<slash]
            path = rest[slash...]
        } else {
            authority = rest
            path = []
        }
        guard !authority.contains(ascii("@")) else { return nil }
        var host = IdentityText.lowercased(authority)[...]
        if let colon = host.lastIndex(of: ascii(":")) {
            guard host[(colon + 1)...].allSatisfy({ $0 >= ascii("0") && $0 <= ascii("9") }) else { return nil }
            host = host[..<colon]
        }
        if host.last == ascii(".") { host = host.dropLast() }
        let linkedin = codePoints("linkedin.com")
        guard host.elementsEqual(linkedin) || host.reversed().starts(with: codePoints(".linkedin.com").reversed()) else { return nil }

        while path.last == ascii("/") { path = path.dropLast() }
        let segments = path.split(separator: ascii("/"), omittingEmptySubsequences: false).dropFirst()
        guard let kind = segments.first.map(IdentityText.lowercased), segments.count >= 2 else { return nil }
        if kind == codePoints("in") {
            let name = segments[segments.startIndex + 1]
            guard !name.isEmpty, !IdentityText.hasPrefixIgnoringCase(name, "imported-") else { return nil }
            return "https://www.linkedin.com/in/" + IdentityText.string(IdentityText.lowercased(name))
        }
        guard kind == codePoints("pub") || kind == codePoints("sales") else { return nil }
        let tail = segments.dropFirst()
        guard !tail.contains(where: { $0.isEmpty }), !IdentityText.hasPrefixIgnoringCase(tail.first!, "imported-") else { return nil }
        return "https://www.linkedin.com/" + IdentityText.string(kind) + "/" + tail.map { IdentityText.string($0) }.joined(separator: "/")
    }
}

@inline(__always)
private func ascii(_ character: Unicode.Scalar) -> UInt32 { character.value }

private func codePoints(_ text: String) -> [UInt32] { text.unicodeScalars.map(\.value) }

/// How many bytes `scalars` take in UTF-8.
private func utf8Length(_ scalars: [UInt32]) -> Int {
    scalars.reduce(0) { $0 + ($1 < 0x80 ? 1 : $1 < 0x800 ? 2 : $1 < 0x10000 ? 3 : 4) }
}

/// RFC 3986's scheme on code points: an ASCII letter, then ASCII letters, digits, `+`, `.` or `-`.
private func isScheme(_ scalars: ArraySlice<UInt32>) -> Bool {
    scalars.allSatisfy { $0 < 0x80 } && isScheme(scalars.lazy.map { UInt8($0) })
}

/// `value` without whitespace (IdentityText) at either end.
func trimmed<S: StringProtocol>(_ value: S) -> String where S.UTF8View: BidirectionalCollection {
    // Most values begin and end with a visible ASCII character (an ASCII byte is always a whole
    // code point in UTF-8): nothing to trim, and no scan of the code points.
    let utf8 = value.utf8
    if let first = utf8.first, let last = utf8.last, first < 0x80, last < 0x80,
       !IdentityText.isWhitespace(UInt32(first)), !IdentityText.isWhitespace(UInt32(last)) {
        return String(value)
    }
    let scalars = value.unicodeScalars
    guard let first = scalars.firstIndex(where: { !isWhitespace($0) }) else { return "" }
    let last = scalars.lastIndex(where: { !isWhitespace($0) })!
    if first == scalars.startIndex && last == scalars.index(before: scalars.endIndex), let whole = value as? String { return whole }
    return String(String.UnicodeScalarView(scalars[first...last]))
}

// The ASCII fast paths' byte tests are the code point rules of IdentityText, below 0x80.
@inline(__always)
func isWhitespace(_ scalar: Unicode.Scalar) -> Bool { IdentityText.isWhitespace(scalar.value) }

@inline(__always)
func isSpaceOrControl(_ scalar: Unicode.Scalar) -> Bool { IdentityText.isSpaceControlOrFormat(scalar.value) }

// MARK: - ASCII fast paths
//
// The general `normalized` functions walk indexes, split, lowercase and rebuild strings, and
// showed up high in profiles of imports (docs/performance.md); nearly every real value is ASCII. For ASCII the Unicode rules they apply come down to byte tests:
// whitespace and space-or-control are the `< 0x80` branches of `isWhitespace` and
// `isSpaceOrControl`, lowercasing maps only A-Z, every Character is one byte once control
// characters are ruled out (CR LF, the one multi-scalar ASCII Character, is rejected before any
// Character-based step can see it), and UTF-8 length is character count. So these walk the bytes
// once or twice and build the answer with a single allocation. Anything with a byte >= 0x80 goes
// the general way untouched: Unicode lowercasing can change lengths and trimming then needs the
// property tables, and duplicating that would be a second copy of the rules to keep in step.
// The two paths must agree on every ASCII input; IdentityFastPathTests compares them over a
// generated corpus.

/// What a fast path made of a value: its answer (nil when the value is not usable), or that the
/// value is not ASCII and only the general implementation may answer.
enum FastPathResult: Equatable {
    case decided(String?)
    case needsGeneral
}

extension Email {
    static func normalizedASCII(_ raw: String) -> FastPathResult {
        let result: FastPathResult? = raw.utf8.withContiguousStorageIfAvailable { bytes in
            guard isASCII(bytes) else { return .needsGeneral }
            return .decided(address(bytes, raw))
        }
        // No contiguous UTF-8 (a bridged string) is rare enough to leave to the general path.
        return result ?? .needsGeneral
    }

    private static func address(_ bytes: UnsafeBufferPointer<UInt8>, _ raw: String) -> String? {
        let (lo, hi) = asciiTrimmedBounds(bytes)
        guard lo < hi, hi - lo <= 254 else { return nil }
        var at = -1
        var hasUppercase = false
        for i in lo..<hi {
            let byte = bytes[i]
            if isSpaceOrControl(Unicode.Scalar(byte)) { return nil }
            if byte == UInt8(ascii: "@") {
                guard at < 0 else { return nil }
                at = i
            }
            hasUppercase = hasUppercase || isASCIIUppercase(byte)
        }
        // `at > lo` also rules out a missing `@` (at == -1).
        guard at > lo else { return nil }
        var hasDot = false
        var labelIsEmpty = true
        for i in (at + 1)..<hi {
            if bytes[i] == UInt8(ascii: ".") {
                guard !labelIsEmpty else { return nil }
                hasDot = true
                labelIsEmpty = true
            } else {
                labelIsEmpty = false
            }
        }
        // A trailing dot or an empty domain leaves the last label empty.
        guard hasDot, !labelIsEmpty else { return nil }
        // Most addresses arrive already in their normal form: hand back the caller's string.
        if !hasUppercase && lo == 0 && hi == bytes.count { return raw }
        return asciiString("", bytes, lo..<hi, lowercasing: true)
    }
}

extension LinkedInURL {
    static func normalizedASCII(_ raw: String) -> FastPathResult {
        let result: FastPathResult? = raw.utf8.withContiguousStorageIfAvailable { bytes in
            guard isASCII(bytes) else { return .needsGeneral }
            return .decided(profileURL(bytes))
        }
        // No contiguous UTF-8 (a bridged string) is rare enough to leave to the general path.
        return result ?? .needsGeneral
    }

    // Offsets into `bytes` stand for the general path's substrings; the steps keep its order.
    private static func profileURL(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let (lo, hi) = asciiTrimmedBounds(bytes)
        guard lo < hi, !asciiHasPrefixIgnoringCase(bytes, lo..<hi, "imported-") else { return nil }
        var firstColon = -1
        for i in lo..<hi {
            let byte = bytes[i]
            if isSpaceOrControl(Unicode.Scalar(byte)) { return nil }
            if firstColon < 0 && byte == UInt8(ascii: ":") { firstColon = i }
        }

        // A scheme ends at the first `:`, as in the general path; `linkedin.com/in/x?u=https://y`
        // has none, since a scheme holds no `/` or `?`.
        var start = lo
        if firstColon >= 0, firstColon + 3 <= hi,
           bytes[firstColon + 1] == UInt8(ascii: "/"), bytes[firstColon + 2] == UInt8(ascii: "/"),
           isScheme(UnsafeBufferPointer(rebasing: bytes[lo..<firstColon])) {
            guard asciiEqualsIgnoringCase(bytes, lo..<firstColon, "https")
                || asciiEqualsIgnoringCase(bytes, lo..<firstColon, "http") else { return nil }
            start = firstColon + 3
        } else if hi - lo >= 2, bytes[lo] == UInt8(ascii: "/"), bytes[lo + 1] == UInt8(ascii: "/") {
            start = lo + 2
        }
        // Query and fragment go first: a `/` inside them belongs to neither host nor path.
        var end = start
        while end < hi, bytes[end] != UInt8(ascii: "?"), bytes[end] != UInt8(ascii: "#") { end += 1 }
        var slash = start
        while slash < end, bytes[slash] != UInt8(ascii: "/") { slash += 1 }

        // Authority is start..<slash.
        var lastColon = -1
        for i in start..<slash {
            if bytes[i] == UInt8(ascii: "@") { return nil }
            if bytes[i] == UInt8(ascii: ":") { lastColon = i }
        }
        var hostEnd = slash
        if lastColon >= 0 {
            for i in (lastColon + 1)..<slash where !isASCIIDigit(bytes[i]) { return nil }
            hostEnd = lastColon
        }
        if hostEnd > start, bytes[hostEnd - 1] == UInt8(ascii: ".") { hostEnd -= 1 }
        let hostLength = hostEnd - start
        guard hostLength >= 12, asciiEqualsIgnoringCase(bytes, (hostEnd - 12)..<hostEnd, "linkedin.com"),
              hostLength == 12 || bytes[hostEnd - 13] == UInt8(ascii: ".") else { return nil }

        // Path is slash..<pathEnd; an empty path has no segments at all.
        var pathEnd = end
        while pathEnd > slash, bytes[pathEnd - 1] == UInt8(ascii: "/") { pathEnd -= 1 }
        guard pathEnd > slash else { return nil }
        let kindStart = slash + 1
        var kindEnd = kindStart
        while kindEnd < pathEnd, bytes[kindEnd] != UInt8(ascii: "/") { kindEnd += 1 }
        guard kindEnd < pathEnd else { return nil }
        let nameStart = kindEnd + 1
        var nameEnd = nameStart
        while nameEnd < pathEnd, bytes[nameEnd] != UInt8(ascii: "/") { nameEnd += 1 }
        let kind = kindStart..<kindEnd, name = nameStart..<nameEnd

        if asciiEqualsIgnoringCase(bytes, kind, "in") {
            guard !name.isEmpty, !asciiHasPrefixIgnoringCase(bytes, name, "imported-") else { return nil }
            return asciiString("https://www.linkedin.com/in/", bytes, name, lowercasing: true)
        }
        let prefix: StaticString
        if asciiEqualsIgnoringCase(bytes, kind, "pub") {
            prefix = "https://www.linkedin.com/pub/"
        } else if asciiEqualsIgnoringCase(bytes, kind, "sales") {
            prefix = "https://www.linkedin.com/sales/"
        } else {
            return nil
        }
        // Every segment after the kind must be non-empty; they are kept as written, so the answer
        // is the prefix and the rest of the path's bytes.
        var segmentIsEmpty = true
        for i in nameStart..<pathEnd {
            if bytes[i] == UInt8(ascii: "/") {
                guard !segmentIsEmpty else { return nil }
                segmentIsEmpty = true
            } else {
                segmentIsEmpty = false
            }
        }
        guard !segmentIsEmpty, !asciiHasPrefixIgnoringCase(bytes, name, "imported-") else { return nil }
        return asciiString(prefix, bytes, nameStart..<pathEnd, lowercasing: false)
    }
}

private func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    // OR-ing everything (no early exit) lets the compiler vectorize; values are short.
    var any: UInt8 = 0
    for byte in bytes { any |= byte }
    return any < 0x80
}

/// The bounds `trimmed` would keep, for an ASCII value.
private func asciiTrimmedBounds(_ bytes: UnsafeBufferPointer<UInt8>) -> (Int, Int) {
    var lo = 0, hi = bytes.count
    while lo < hi, isWhitespace(Unicode.Scalar(bytes[lo])) { lo += 1 }
    while hi > lo, isWhitespace(Unicode.Scalar(bytes[hi - 1])) { hi -= 1 }
    return (lo, hi)
}

@inline(__always)
private func isASCIIUppercase(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") }

@inline(__always)
private func isASCIIDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

@inline(__always)
private func asciiLowercased(_ byte: UInt8) -> UInt8 { isASCIIUppercase(byte) ? byte | 0x20 : byte }

@inline(__always)
private func isASCIILetter(_ byte: UInt8) -> Bool { asciiLowercased(byte) >= UInt8(ascii: "a") && asciiLowercased(byte) <= UInt8(ascii: "z") }

/// RFC 3986's scheme: a letter, then letters, digits, `+`, `.` or `-`. Only such a prefix before
/// `://` is a scheme; the database's `leadimport_normalize_linkedin` uses the same rule.
private func isScheme<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
    guard let first = bytes.first, isASCIILetter(first) else { return false }
    return bytes.allSatisfy { isASCIILetter($0) || isASCIIDigit($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
}

/// `bytes[range]`, lowercased, equals `lowercase` (which must be lowercase already).
private func asciiEqualsIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
                                     _ lowercase: StaticString) -> Bool {
    guard range.count == lowercase.utf8CodeUnitCount else { return false }
    return lowercase.withUTF8Buffer { expected in
        for i in 0..<expected.count where asciiLowercased(bytes[range.lowerBound + i]) != expected[i] { return false }
        return true
    }
}

private func asciiHasPrefixIgnoringCase(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
                                        _ lowercase: StaticString) -> Bool {
    let count = lowercase.utf8CodeUnitCount
    return range.count >= count
        && asciiEqualsIgnoringCase(bytes, range.lowerBound..<(range.lowerBound + count), lowercase)
}

/// `prefix` followed by `bytes[range]`, built in place so the result costs one allocation.
private func asciiString(_ prefix: StaticString, _ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>,
                         lowercasing: Bool) -> String {
    prefix.withUTF8Buffer { head in
        String(unsafeUninitializedCapacity: head.count + range.count) { out in
            var o = 0
            for byte in head { out[o] = byte; o += 1 }
            for i in range { out[o] = lowercasing ? asciiLowercased(bytes[i]) : bytes[i]; o += 1 }
            return o
        }
    }
}
