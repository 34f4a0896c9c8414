import Foundation
@testable import LeadCore
import Postgres
import Store
import TestSupport
import XCTest

/// One definition of identity: LeadCore's normalizers (the general path and the ASCII fast path)
/// and the database's `leadimport_normalize_email` / `leadimport_normalize_linkedin`, which key the
/// unique index, must give the same answer for every value. Driven with one generated corpus of
/// the spellings where code points and grapheme clusters, locales and Unicode versions part ways.
/// Asked as the service, which is who the identity trigger runs as when it inserts.
final class IdentityDifferentialTests: MigratedDatabaseCase {
    /// Values that stress the rules: every code point class the rules name, in every place.
    static func corpus(count: Int, seed: UInt64) -> [String] {
        var random = SplitMix64(seed: seed)
        func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
        let refused = IdentityText.spaceControlOrFormat.flatMap { [$0.lowerBound, $0.upperBound] }.filter { $0 != 0 }
            .map { String(Unicode.Scalar($0)!) }
        let spaces = IdentityText.whitespace.flatMap { [$0.lowerBound, $0.upperBound] }.map { String(Unicode.Scalar($0)!) }
        let tricky = [
            "\u{0301}", "e\u{0301}", "é", "İ", "ı", "\u{212A}", "\u{212B}", "Å", "ß", "ẞ", "Σ", "ς", "Ǆ", "ǅ", "ǆ",
            "Ｌ", "ｉ", "Ｎ", "Ａ", "\u{10400}", "\u{1E900}", "Ⱥ", "ⱥ", "?", "#", "/", "@", ":", ".", "%", "%2F", "%3F", "%C3%A9",
            "%c3%a9", "?\u{0301}", "/\u{0301}", "@\u{0301}", ".\u{0301}", "-\u{0301}", "😀", "👍🏽", "🇫🇷", "\u{FE0F}", "\r\n", "~", "+",
        ]
        let words = ["john", "JOHN", "Ada", "imported-", "IMPORTED-", "imported", "in", "IN", "pub", "Sales", "x", "", "Jo-Ann", "o'neil"]
        let hosts = ["linkedin.com", "www.linkedin.com", "LinkedIn.COM", "de.linkedin.com.", "linkedin.com:443", "linkedin.com:",
                     "linkedin.com:8x", "evil.com", "linkedin.com.evil.com", "user@linkedin.com", ".linkedin.com", "LİNKEDIN.COM",
                     "lin\u{212A}edin.com", "ｌinkedin.com", "xn--linkedin.com", "linkedin.com\u{0301}"]
        let schemes = ["https://", "http://", "HTTPS://", "", "//", "ftp://", "git+ssh://", "h\u{0301}ttps://", "https:/", "https:\u{0301}//"]
        let kinds = ["in", "IN", "In", "pub", "PUB", "sales", "company", "ın", "i\u{0301}n", ""]
        let domains = ["example.com", "EXAMPLE.COM", "ex.co.uk", "localhost", "a..b", ".com", "com.", "éxample.com", "x.y"]

        func piece() -> String {
            switch random.next() % 6 {
            case 0: return pick(tricky)
            case 1: return pick(refused)
            case 2: return pick(words)
            case 3: return String(Unicode.Scalar(UInt8(0x21 + random.next() % 94)))
            case 4: return pick(tricky) + pick(words)
            default: return String(repeating: pick(["a", "é", "Ω", "\u{10400}"]), count: Int(random.next() % 4))
            }
        }
        func name() -> String { (0..<Int(random.next() % 4)).map { _ in piece() }.joined() + pick(words) }
        func pad(_ value: String) -> String {
            switch random.next() % 4 {
            case 0: return pick(spaces) + value + pick(spaces)
            case 1: return value + pick(refused)
            default: return value
            }
        }

        var values: [String] = []
        for _ in 0..<count {
            switch random.next() % 5 {
            case 0, 1:
                let path = "/" + pick(kinds) + "/" + name() + (random.next() % 3 == 0 ? "/" + name() : "") + pick(["", "/", "//", "?x=1", "#f", "?\u{0301}x"])
                values.append(pad(pick(schemes) + pick(hosts) + path))
            case 2:
                values.append(pad(name() + "@" + pick(domains)))
            case 3:
                values.append(pad(name() + pick(["@", "@@", "", "@\u{0301}"]) + name() + pick([".", "", "\u{0301}."]) + pick(domains)))
            default:
                values.append((0..<Int(random.next() % 8)).map { _ in piece() }.joined())
            }
        }
        // Lengths at the email limit, counted in UTF-8 bytes, and a long profile name.
        for local in [240, 241, 242, 243, 244] {
            values.append(String(repeating: "a", count: local) + "@example.com")
            values.append(String(repeating: "é", count: local / 2) + "@example.com")
            values.append(String(repeating: "Ⱥ", count: local / 3) + "@example.com")
        }
        values.append("https://www.linkedin.com/in/" + String(repeating: "Ab", count: 500))
        return values
    }

    private func database(_ function: String, _ values: [String]) throws -> [String?] {
        let result = try connection.query("SELECT \(function)(v) FROM unnest($1::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n",
                                     values: [.textArray(values)])
        return try result.rows.map { try $0.string(0) }
    }

    /// What the identity fuzzer kept (Fuzz/corpus/identity): inputs that reached new coverage in
    /// LeadCore are checked against the database too. PostgreSQL's text holds no NUL.
    static func fuzzCorpus() throws -> [String] {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus/identity")
        return try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().compactMap { name in
            let text = String(decoding: try Data(contentsOf: folder.appendingPathComponent(name)), as: UTF8.self)
            return text.utf8.contains(0) ? nil : text
        }
    }

    func testSwiftAndTheDatabaseKeyEveryValueAlike() throws {
        let kept = try Self.fuzzCorpus()
        XCTAssertGreaterThan(kept.count, 5, "the identity fuzz corpus is missing")
        let values = Self.corpus(count: 20_000, seed: 0x1de7_1717) + kept
        let emails = try database("leadimport_normalize_email", values)
        let profiles = try database("leadimport_normalize_linkedin", values)
        var mismatches: [String] = []
        for (index, value) in values.enumerated() {
            let swiftEmail = Email.normalized(value), generalEmail = Email.normalizedGeneral(value)
            let swiftProfile = LinkedInURL.normalized(value), generalProfile = LinkedInURL.normalizedGeneral(value)
            // Byte for byte: Swift's == would take canonically equivalent spellings as equal.
            func same(_ a: String?, _ b: String?) -> Bool { a.map { Array($0.utf8) } == b.map { Array($0.utf8) } }
            if !same(swiftEmail, emails[index]) || !same(generalEmail, emails[index]) {
                mismatches.append("email \(value.unicodeScalars.map { String($0.value, radix: 16) }): swift \(String(describing: swiftEmail)) general \(String(describing: generalEmail)) database \(String(describing: emails[index]))")
            }
            if !same(swiftProfile, profiles[index]) || !same(generalProfile, profiles[index]) {
                mismatches.append("linkedin \(value.unicodeScalars.map { String($0.value, radix: 16) }): swift \(String(describing: swiftProfile)) general \(String(describing: generalProfile)) database \(String(describing: profiles[index]))")
            }
        }
        XCTAssertEqual(mismatches.count, 0, mismatches.prefix(20).joined(separator: "\n"))
        // The corpus reaches both verdicts on both sides.
        XCTAssertGreaterThan(emails.compactMap { $0 }.count, 300)
        XCTAssertGreaterThan(profiles.compactMap { $0 }.count, 300)
        XCTAssertGreaterThan(values.count - profiles.compactMap { $0 }.count, 1000)
    }

    /// The issue's two cases: a combining mark after `imported-` and after the query's `?`.
    func testCombiningMarksDoNotHidePlaceholdersOrQueries() throws {
        for value in ["linkedin.com/in/imported-\u{0301}x", "https://www.linkedin.com/in/john?\u{0301}x"] {
            let database = try self.database("leadimport_normalize_linkedin", [value])[0]
            XCTAssertEqual(LinkedInURL.normalized(value), database, value.debugDescription)
        }
        XCTAssertNil(LinkedInURL.normalized("linkedin.com/in/imported-\u{0301}x"), "a placeholder, whatever follows its dash")
        XCTAssertEqual(LinkedInURL.normalized("https://www.linkedin.com/in/john?\u{0301}x"), "https://www.linkedin.com/in/john")
    }

    /// Lowercasing, code point by code point, over the Basic Multilingual Plane and plane 1: the
    /// database's `leadimport_identity_lower` and LeadCore's table agree everywhere, and both are
    /// idempotent.
    func testLowercaseAgreesOnEveryCodePoint() throws {
        let scalars = (UInt32(1)...UInt32(0x1FFFF)).compactMap { Unicode.Scalar($0) }
        for chunk in stride(from: 0, to: scalars.count, by: 8192) {
            let part = scalars[chunk..<min(chunk + 8192, scalars.count)]
            var text = String.UnicodeScalarView()
            text.append(contentsOf: part)
            let lowered = try XCTUnwrap(connection.query("SELECT leadimport_identity_lower($1)", [String(text)]).first?.string(0))
            let expected = part.map { IdentityText.lowercased($0.value) }
            XCTAssertEqual(lowered.unicodeScalars.map(\.value), expected, "code points from \(String(part.first!.value, radix: 16))")
            XCTAssertEqual(expected.map(IdentityText.lowercased), expected, "idempotent")
        }
    }
}
