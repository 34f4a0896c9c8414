@testable import LeadCore
import TestSupport
import XCTest

/// The ASCII fast paths must answer exactly what the general implementations answer. These run
/// both over corpora built from the pieces real and hostile values are made of, and over seeded
/// random mutations of them, and insist on byte-for-byte equal results.
final class IdentityFastPathTests: XCTestCase {
    func testEmailFastPathMatchesGeneralOnGeneratedCorpus() {
        let corpus = emailCorpus()
        XCTAssertGreaterThan(corpus.count, 5_000)
        assertFastPathAgrees(corpus, fast: Email.normalizedASCII, general: Email.normalizedGeneral,
                             public: Email.normalized, minimumValid: 500)
    }

    func testLinkedInFastPathMatchesGeneralOnGeneratedCorpus() {
        let corpus = linkedInCorpus()
        XCTAssertGreaterThan(corpus.count, 20_000)
        assertFastPathAgrees(corpus, fast: LinkedInURL.normalizedASCII, general: LinkedInURL.normalizedGeneral,
                             public: LinkedInURL.normalized, minimumValid: 2_000)
    }

    func testEveryShortValueOverTheSignificantCharacters() {
        // Exhaustive up to length 3 over the characters the rules turn on, plus a letter of each case.
        let alphabet: [String] = [" ", "\t", "\u{7F}", "@", ".", ":", "/", "?", "#", "a", "Z", "1"]
        var values = [""]
        var previous = [""]
        for _ in 1...3 {
            previous = previous.flatMap { prefix in alphabet.map { prefix + $0 } }
            values += previous
        }
        assertFastPathAgrees(values, fast: Email.normalizedASCII, general: Email.normalizedGeneral,
                             public: Email.normalized, minimumValid: 0)
        assertFastPathAgrees(values, fast: LinkedInURL.normalizedASCII, general: LinkedInURL.normalizedGeneral,
                             public: LinkedInURL.normalized, minimumValid: 0)
    }

    func testTrimmingAnswersWhatTheCodePointRuleAnswers() {
        // `trimmed` skips its scan when both ends are visible ASCII; the rule is on code points.
        let pieces: [String] = ["", " ", "\t", "\n", "\r", "\u{0B}", "\u{0C}", "\u{A0}", "\u{2003}", "\u{3000}", "\u{85}",
                                "\u{200B}", "\u{7F}", "a", "Z", "1", "@", "é", "İ", "日", "🙂", "a b"]
        func reference(_ value: Substring) -> String {
            let scalars = Array(value.unicodeScalars)
            guard let first = scalars.firstIndex(where: { !IdentityText.isWhitespace($0.value) }),
                  let last = scalars.lastIndex(where: { !IdentityText.isWhitespace($0.value) }) else { return "" }
            return String(String.UnicodeScalarView(scalars[first...last]))
        }
        var random = SplitMix64(seed: 0x7472_696D)
        var checked = 0
        for _ in 0..<20_000 {
            let count = Int.random(in: 0...5, using: &random)
            let value = (0..<count).map { _ in pieces.randomElement(using: &random)! }.joined()
            let cut = Int.random(in: 0...min(2, value.count), using: &random)
            let part = value.dropFirst(cut)
            XCTAssertEqual(Array(trimmed(value).utf8), Array(reference(Substring(value)).utf8), value.debugDescription)
            XCTAssertEqual(Array(trimmed(part).utf8), Array(reference(part).utf8), String(part).debugDescription)
            checked += 1
        }
        XCTAssertEqual(checked, 20_000)
    }

    func testNonASCIIGoesTheGeneralWay() {
        let emails = ["Ádá@example.com", "\u{A0}ada@example.com\u{A0}", "ada@exämple.com", "İ@example.com",
                      "\u{2003}Ada@Example.com", "ada@example.com\u{200B}", "ada\u{0301}@example.com"]
        for value in emails {
            XCTAssertEqual(Email.normalizedASCII(value), .needsGeneral, value.debugDescription)
            XCTAssertEqual(Email.normalized(value), Email.normalizedGeneral(value), value.debugDescription)
        }
        // Unicode whitespace around the value is trimmed, which only the general path knows.
        XCTAssertEqual(Email.normalized("\u{A0}Ada@Example.com\u{3000}"), "ada@example.com")
        XCTAssertEqual(Email.normalized("ÁDA@example.com"), "áda@example.com")

        let urls = [" https://www.linkedin.com/in/José ", "https://www.linkedin.com/in/İstanbul",
                    "\u{A0}https://linkedin.com/in/Ada\u{A0}", "https://www.linkedin.com/pub/Zoë/1/2",
                    "https://www.linkedin.com/in/ada\u{200B}", "https://linkedın.com/in/ada"]
        for value in urls {
            XCTAssertEqual(LinkedInURL.normalizedASCII(value), .needsGeneral, value.debugDescription)
            XCTAssertEqual(LinkedInURL.normalized(value), LinkedInURL.normalizedGeneral(value), value.debugDescription)
        }
        XCTAssertEqual(LinkedInURL.normalized("\u{A0}https://linkedin.com/in/Ada\u{A0}"), "https://www.linkedin.com/in/ada")
        XCTAssertEqual(LinkedInURL.normalized("https://www.linkedin.com/in/José"), "https://www.linkedin.com/in/josé")
    }

    func testUnchangedEmailIsReturnedAsIs() {
        XCTAssertEqual(Email.normalizedASCII("ada@example.com"), .decided("ada@example.com"))
        XCTAssertEqual(Email.normalizedASCII(" Ada@Example.com\t"), .decided("ada@example.com"))
    }

    // MARK: - Corpora

    private func emailCorpus() -> [String] {
        let locals = ["ada", "Ada.Lovelace", "a+tag", "", "a b", "a\u{0}", "a\t", "x@y", "a\u{7F}", ".", "A",
                      "a\u{1F}", "_-.!~"]
        let separators = ["@", "@@", "", "@ ", " @"]
        let domains = ["example.com", "Example.COM", "example", ".com", "example.", "example..com", "", "sub.example.co.uk",
                       "a.b", "exa mple.com", "b.co", "@example.com", ".", "example.com\r\n", "EXAMPLE.COM."]
        let wrappers = [("", ""), (" ", " "), ("\t\n", "\r\n"), ("\u{0B}", "\u{0C}"), ("", "\u{7F}"), ("\u{1}", "")]
        var corpus: [String] = []
        for local in locals {
            for separator in separators {
                for domain in domains {
                    for (before, after) in wrappers { corpus.append(before + local + separator + domain + after) }
                }
            }
        }
        // Around the 254 limit, which counts the trimmed value, with and without padding and capitals.
        for length in 250...257 {
            for (before, after) in wrappers {
                for domain in ["@b.co", "@B.CO", "@b..co"] {
                    let local = String(repeating: "a", count: max(1, length - domain.utf8.count))
                    corpus.append(before + local + domain + after)
                    corpus.append(before + local.uppercased() + domain + after)
                }
            }
        }
        var random = SplitMix64(seed: 0x5EED_E4A1)
        let seeds = corpus
        let inserts = ["@", ".", " ", "\t", "\u{0}", "\u{7F}", "A", "z", "\r\n", "@@", ".."]
        for _ in 0..<10_000 { corpus.append(random.mutate(random.pick(seeds), inserting: inserts)) }
        return corpus
    }

    private func linkedInCorpus() -> [String] {
        let schemes = ["https://", "http://", "HTTP://", "HtTpS://", "//", "ftp://", "", "https:/", "https:",
                       "imported-https://", "://"]
        let hosts = ["linkedin.com", "www.LinkedIn.com", "uk.linkedin.com", "linkedin.com.", "notlinkedin.com",
                     "linkedin.com:443", "linkedin.com:x", "user@linkedin.com", "LINKEDIN.COM", "linkedin.com:",
                     ".linkedin.com", "linkedin.com..", "x:.linkedin.com:1", "", "linkedin.com.evil.com", "linkedin.co",
                     "linkedin.com:4:43", "inkedin.com"]
        let paths = ["/in/Name", "/in/Name/", "/in/", "/in//x", "/IN/Name", "/pub/A/b/C", "/pub//x", "/sales/lead/X",
                     "/company/x", "/in/imported-x", "", "/In/Imported-X", "/pub/imported-x/1", "/sales/Lead/X//", "/in",
                     "/", "//in/x", "/pub/A/", "/SALES/lead/X", "/in/Na:me", "/in/Name/details/experience/", "/pub",
                     "/pub/Imported-", "/in/imported", "/iN/x@y", "/sales//", "/Pub/A//B", "/in/x:1//y"]
        let suffixes = ["", "?trk=1", "#frag", "?a=/b", "?u=https://x", "/#x", "?", "#", "?q=1#f/g"]
        let wrappers = [("", ""), (" ", " "), ("\t", "\n"), ("\r\n ", "\u{0B}\u{0C}"), ("", "\u{7F}"),
                        ("imported-", ""), ("IMPORTED-", " ")]
        var corpus: [String] = []
        var index = 0
        for scheme in schemes {
            for host in hosts {
                for path in paths {
                    for suffix in suffixes {
                        // Wrappers rotate rather than multiply: every one meets every other piece somewhere.
                        let (before, after) = wrappers[index % wrappers.count]
                        index += 1
                        corpus.append(before + scheme + host + path + suffix + after)
                    }
                }
            }
        }
        var random = SplitMix64(seed: 0x11CE_D1)
        let seeds = corpus
        let inserts = ["/", "//", ":", "://", "@", ".", "?", "#", " ", "\t", "\u{1}", "\u{7F}", "A", "in/", "imported-",
                       "\r\n", "443", "linkedin.com"]
        for _ in 0..<20_000 { corpus.append(random.mutate(random.pick(seeds), inserting: inserts)) }
        return corpus
    }

    // MARK: - Checking

    private func assertFastPathAgrees(_ corpus: [String], fast: (String) -> FastPathResult,
                                      general: (String?) -> String?, public normalized: (String?) -> String?,
                                      minimumValid: Int, file: StaticString = #filePath, line: UInt = #line) {
        var mismatches: [String] = []
        var valid = 0
        for value in corpus {
            let expected = general(value)
            let answer = fast(value)
            if answer != .decided(expected) || normalized(value) != expected {
                mismatches.append("\(value.debugDescription): fast \(answer), general \(String(describing: expected))")
            }
            if let expected {
                valid += 1
                // Equal Strings could still differ in normalization; the contract is on bytes.
                if case .decided(let got?) = answer, !got.utf8.elementsEqual(expected.utf8) {
                    mismatches.append("\(value.debugDescription): bytes differ")
                }
            }
        }
        XCTAssertEqual(mismatches.count, 0, "first mismatches:\n" + mismatches.prefix(20).joined(separator: "\n"),
                       file: file, line: line)
        XCTAssertGreaterThanOrEqual(valid, minimumValid, "the corpus should exercise the accepting paths too",
                                    file: file, line: line)
    }
}

/// Seeded corpus building on the shared deterministic generator, so a failing corpus can be reproduced.
extension SplitMix64 {
    mutating func pick(_ values: [String]) -> String { values[below(values.count)] }

    /// One to three edits: insert a piece, delete a byte, or flip the case of a letter.
    mutating func mutate(_ value: String, inserting pieces: [String]) -> String {
        var bytes = Array(value.utf8)
        for _ in 0..<(1 + below(3)) {
            switch below(3) {
            case 0:
                bytes.insert(contentsOf: Array(pick(pieces).utf8), at: below(bytes.count + 1))
            case 1 where !bytes.isEmpty:
                bytes.remove(at: below(bytes.count))
            default:
                guard !bytes.isEmpty else { continue }
                let at = below(bytes.count)
                if (bytes[at] | 0x20) >= UInt8(ascii: "a") && (bytes[at] | 0x20) <= UInt8(ascii: "z") { bytes[at] ^= 0x20 }
            }
        }
        // Every piece is ASCII, so the bytes are always valid UTF-8.
        return String(decoding: bytes, as: UTF8.self)
    }
}
