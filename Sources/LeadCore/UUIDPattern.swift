import Platform

/// The public API's UUID pattern, matched by hand (it runs on every request):
/// `^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$`
/// Versions 1 to 8, the RFC 4122 variant, plus the nil and the max UUID. Note the max UUID is
/// accepted only in lower case, exactly as the pattern says.
public enum UUIDPattern {
    public static func matches<S: StringProtocol>(_ text: S) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        if bytes == nilUUID || bytes == maxUUID { return true }
        for (index, byte) in bytes.enumerated() {
            switch index {
            case 8, 13, 18, 23:
                if byte != UInt8(ascii: "-") { return false }
            case 14:
                guard byte >= UInt8(ascii: "1") && byte <= UInt8(ascii: "8") else { return false }
            case 19:
                guard "89abAB".utf8.contains(byte) else { return false }
            default:
                guard hexDigitValue(byte) != nil else { return false }
            }
        }
        return true
    }

    private static let nilUUID = Array("00000000-0000-0000-0000-000000000000".utf8)
    private static let maxUUID = Array("ffffffff-ffff-ffff-ffff-ffffffffffff".utf8)
}
