import LeadCore
import Platform
import Postgres

/// Bearer tokens: only their SHA-256 is stored; the token itself exists once, in what
/// `create` returns.
public struct TokenStore: Sendable {
    public init() {}

    public struct Created: Sendable {
        public let id: String
        public let token: String
    }

    public func create(user: String, name: String?, expiresIn: Duration?, on connection: Connection) throws -> Created {
        let token = "li_" + Self.randomToken()
        let expires: PostgresValue = expiresIn.map { .text("\($0.components.seconds) seconds") } ?? .null
        let result = try connection.query("""
            INSERT INTO tokens (user_id, token_hash, name, expires_at)
            VALUES ($1, $2, $3, CASE WHEN $4::interval IS NULL THEN NULL ELSE now() + $4::interval END)
            RETURNING id
            """, values: [.text(user), .bytea(SHA256.hash(token)), PostgresValue(name), expires])
        return Created(id: try result.first!.requiredString(0), token: token)
    }

    public func userExists(_ user: String, on connection: Connection) throws -> Bool {
        try connection.query("SELECT 1 FROM users WHERE id = $1", [user]).rowCount == 1
    }

    /// True when a live token was revoked now; false when there is no such token or it was
    /// already revoked.
    public func revoke(id: String, on connection: Connection) throws -> Bool {
        let result = try connection.query(
            "UPDATE tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id", [id])
        return result.rowCount == 1
    }

    /// 32 bytes from the system's CSPRNG (the standard library's generator reads the kernel's),
    /// base64url without padding (43 characters).
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return base64URL((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out = [UInt8]()
        var index = 0
        while index + 3 <= bytes.count {
            let n = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            let n = UInt32(bytes[index]) << 16 | (rest == 2 ? UInt32(bytes[index + 1]) << 8 : 0)
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)]]
            if rest == 2 { out.append(alphabet[Int(n >> 6 & 63)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
