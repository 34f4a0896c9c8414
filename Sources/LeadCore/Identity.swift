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
        let email = trimmed(raw).lowercased()
        guard !email.isEmpty, email.utf8.count <= 254 else { return nil }
        guard !email.unicodeScalars.contains(where: { isSpaceOrControl($0) }) else { return nil }
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let local = parts[0], domain = parts[1]
        guard !local.isEmpty, domain.contains(".") else { return nil }
        guard !domain.split(separator: ".", omittingEmptySubsequences: false).contains(where: { $0.isEmpty }) else { return nil }
        return email
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
        let value = trimmed(raw)
        guard !value.isEmpty, !hasPrefixIgnoringCase(value, "imported-") else { return nil }
        guard !value.unicodeScalars.contains(where: { isSpaceOrControl($0) }) else { return nil }

        var rest = Substring(value)
        if let colon = rest.firstIndex(of: ":"), rest[colon...].hasPrefix("://") {
            let scheme = rest[rest.startIndex..<colon].lowercased()
            guard scheme == "https" || scheme == "http" else { return nil }
            rest = rest[rest.index(colon, offsetBy: 3)...]
        } else if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
        }
        // Query and fragment go first: a `/` inside them belongs to neither host nor path.
        if let cut = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<cut] }

        let authority: Substring
        var path: Substring
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[slash...]
        } else {
            authority = rest
            path = ""
        }
        guard !authority.contains("@") else { return nil }
        var host = authority.lowercased()
        if let colon = host.lastIndex(of: ":") {
            let port = host[host.index(after: colon)...]
            guard port.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            host = String(host[..<colon])
        }
        if host.hasSuffix(".") { host.removeLast() }
        guard host == "linkedin.com" || host.hasSuffix(".linkedin.com") else { return nil }

        while path.hasSuffix("/") { path = path.dropLast() }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard let kind = segments.first?.lowercased(), segments.count >= 2 else { return nil }
        switch kind {
        case "in":
            let name = segments[segments.startIndex + 1]
            guard !name.isEmpty, !hasPrefixIgnoringCase(name, "imported-") else { return nil }
            return "https://www.linkedin.com/in/" + name.lowercased()
        case "pub", "sales":
            let tail = segments.dropFirst()
            guard !tail.contains(where: { $0.isEmpty }) else { return nil }
            guard !hasPrefixIgnoringCase(tail.first!, "imported-") else { return nil }
            return "https://www.linkedin.com/" + kind + "/" + tail.joined(separator: "/")
        default:
            return nil
        }
    }
}

func trimmed<S: StringProtocol>(_ value: S) -> String {
    let scalars = value.unicodeScalars
    guard let first = scalars.firstIndex(where: { !isWhitespace($0) }) else { return "" }
    let last = scalars.lastIndex(where: { !isWhitespace($0) })!
    if first == scalars.startIndex && last == scalars.index(before: scalars.endIndex), let whole = value as? String { return whole }
    return String(String.UnicodeScalarView(scalars[first...last]))
}

// Unicode property lookups are table searches; nearly every value is ASCII, so answer those
// directly (this was a third of an import's CPU time).
@inline(__always)
func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.value < 0x80 { return scalar.value == 0x20 || (scalar.value >= 0x09 && scalar.value <= 0x0D) }
    return scalar.properties.isWhitespace
}

@inline(__always)
func isSpaceOrControl(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.value < 0x80 { return scalar.value <= 0x20 || scalar.value == 0x7F }
    return scalar.properties.isWhitespace || scalar.properties.generalCategory == .control
        || scalar.properties.generalCategory == .format
}

func hasPrefixIgnoringCase<S: StringProtocol>(_ value: S, _ prefix: String) -> Bool {
    value.utf8.count >= prefix.utf8.count && value.prefix(prefix.count).lowercased() == prefix
}
