/// `Prefer: respond-async` (RFC 7240): whether a request asks to be answered before its work is
/// done. Other preferences, their values and parameters are ignored, as the RFC allows.
public enum AsyncPreference {
    /// True when one of the header's preferences is named `respond-async` (any case). Commas and
    /// semicolons inside a quoted value separate nothing, so `foo="x,respond-async"` is no request
    /// for it.
    public static func requested(_ prefer: String?) -> Bool {
        guard let prefer else { return false }
        var name: [UInt8] = []
        var inName = true, quoted = false, escaped = false
        func matches() -> Bool { trimmedLowercased(name) == Array("respond-async".utf8) }
        for byte in prefer.utf8 {
            if quoted {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { quoted = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                quoted = true
            case UInt8(ascii: ","):
                if inName && matches() { return true }
                name.removeAll(keepingCapacity: true)
                inName = true
            case UInt8(ascii: "="), UInt8(ascii: ";"):
                if inName && matches() { return true }
                inName = false
            default:
                if inName { name.append(byte) }
            }
        }
        return inName && matches()
    }

    /// The preference a 202 names in `Preference-Applied`.
    public static let applied = "respond-async"

    private static func trimmedLowercased(_ bytes: [UInt8]) -> [UInt8] {
        let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else { return [] }
        return bytes[first...last].map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
    }
}
