import LeadCore
import XCTest

final class EmailTests: XCTestCase {
    func testTrimsAndLowercases() {
        XCTAssertEqual(Email.normalized("  Ada.Lovelace@Example.COM \n"), "ada.lovelace@example.com")
        XCTAssertEqual(Email.normalized("a+tag@sub.example.co.uk"), "a+tag@sub.example.co.uk")
    }

    func testRejectsImplausibleAddresses() {
        let bad: [String?] = [nil, "", "   ", "plainaddress", "@example.com", "a@example", "a@@example.com",
                              "a@b@example.com", "a b@example.com", "a@exa mple.com", "a\u{0}@example.com",
                              "a\t@example.com", "a@.com", "a@example.", "a@example..com",
                              String(repeating: "a", count: 250) + "@b.co"]
        for value in bad { XCTAssertNil(Email.normalized(value), String(describing: value)) }
    }

    func testLengthLimitIs254() {
        let local = String(repeating: "a", count: 254 - "@b.co".count)
        XCTAssertNotNil(Email.normalized(local + "@b.co"))
        XCTAssertNil(Email.normalized(local + "a@b.co"))
    }
}

final class LinkedInURLTests: XCTestCase {
    func testNormalizesProfileURLs() {
        let cases: [(String, String)] = [
            ("https://www.linkedin.com/in/ada-lovelace", "https://www.linkedin.com/in/ada-lovelace"),
            ("linkedin.com/in/Ada-Lovelace/", "https://www.linkedin.com/in/ada-lovelace"),
            ("  http://LinkedIn.com/in/ADA?trk=x#frag ", "https://www.linkedin.com/in/ada"),
            ("https://uk.linkedin.com/in/ada/details/experience/", "https://www.linkedin.com/in/ada"),
            ("www.linkedin.com/in/ada///", "https://www.linkedin.com/in/ada"),
            ("HTTPS://WWW.LINKEDIN.COM/IN/Ada", "https://www.linkedin.com/in/ada"),
            ("https://www.linkedin.com/pub/Ada-Lovelace/1/2B/3C", "https://www.linkedin.com/pub/Ada-Lovelace/1/2B/3C"),
            ("https://www.linkedin.com/sales/lead/ACwAAB,NAME_SEARCH?x=1", "https://www.linkedin.com/sales/lead/ACwAAB,NAME_SEARCH"),
            ("https://www.linkedin.com:443/in/ada", "https://www.linkedin.com/in/ada"),
            // A `://` in the query is no scheme: what comes before it holds a `/` and a `?`.
            ("linkedin.com/in/ada?u=https://x", "https://www.linkedin.com/in/ada"),
            ("www.linkedin.com/in/ada#https://x", "https://www.linkedin.com/in/ada"),
        ]
        for (raw, expected) in cases { XCTAssertEqual(LinkedInURL.normalized(raw), expected, raw) }
    }

    func testRejectsWhatIsNotARealProfile() {
        let bad: [String?] = [nil, "", "   ", "https://www.linkedin.com/", "https://www.linkedin.com/in/",
                              "https://www.linkedin.com/company/acme", "https://www.linkedin.com/feed",
                              "https://notlinkedin.com/in/ada", "https://linkedin.com.evil.com/in/ada",
                              "https://evil.com/linkedin.com/in/ada", "ftp://linkedin.com/in/ada",
                              "https://user@linkedin.com/in/ada", "imported-12345", "IMPORTED-ada",
                              "https://www.linkedin.com/in/imported-ada", "https://www.linkedin.com/in/Imported-123",
                              "https://www.linkedin.com/in/a da", "mailto:ada@example.com",
                              "https://evil.com?x=linkedin.com/in/ada",
                              // Schemes other than http(s), including ones with + . - in them.
                              "git+ssh://linkedin.com/in/ada", "web.cal://linkedin.com/in/ada", "x-y://linkedin.com/in/ada",
                              "linkedin.com://in/ada"]
        for value in bad { XCTAssertNil(LinkedInURL.normalized(value), String(describing: value)) }
    }

    /// Identities are defined on code points: a combining mark after `imported-` or after the
    /// query's `?` (one grapheme cluster with it) changes nothing, as in the database.
    func testCombiningMarksNeitherHidePlaceholdersNorKeepQueries() {
        XCTAssertNil(LinkedInURL.normalized("linkedin.com/in/imported-\u{0301}x"))
        XCTAssertNil(LinkedInURL.normalized("https://www.linkedin.com/in/Imported-\u{0301}"))
        XCTAssertEqual(LinkedInURL.normalized("https://www.linkedin.com/in/john?\u{0301}x"), "https://www.linkedin.com/in/john")
        XCTAssertEqual(LinkedInURL.normalized("https://www.linkedin.com/in/john#\u{0301}"), "https://www.linkedin.com/in/john")
        XCTAssertNil(Email.normalized("a@\u{0301}b@example.com"), "two @, whatever follows the first")
        // Lowercasing is code point by code point with a fixed table: no locale, no expansion.
        XCTAssertEqual(Email.normalized("\u{130}X@example.com"), "\u{130}x@example.com")
        XCTAssertEqual(Email.normalized("\u{212A}@EXAMPLE.com"), "k@example.com")
        XCTAssertEqual(LinkedInURL.normalized("linkedin.com/in/JOSÉ"), "https://www.linkedin.com/in/josé")
        // Every format character is refused, not only the ones a locale knows.
        XCTAssertNil(Email.normalized("a\u{0600}@example.com"))
        XCTAssertNil(LinkedInURL.normalized("linkedin.com/in/a\u{E0041}"))
    }
}
