import LeadCore
import XCTest

final class UUIDPatternTests: XCTestCase {
    /// The contract's expression, checked with Swift's own regex engine against the hand matcher.
    private let contractPattern = try! Regex(
        "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$")

    func testAcceptsVersionsOneToEightWithTheRFCVariant() {
        for version in 1...8 {
            for variant in ["8", "9", "a", "b", "A", "B"] {
                let id = "0f8fad5b-d9cb-\(version)69f-\(variant)0e0-cd4c8e6e1a2b"
                XCTAssertTrue(UUIDPattern.matches(id), id)
            }
        }
        XCTAssertTrue(UUIDPattern.matches("0F8FAD5B-D9CB-469F-A165-70867728950E"))
    }

    func testNilAndMaxUUID() {
        XCTAssertTrue(UUIDPattern.matches("00000000-0000-0000-0000-000000000000"))
        XCTAssertTrue(UUIDPattern.matches("ffffffff-ffff-ffff-ffff-ffffffffffff"))
        // The pattern spells the max UUID in lower case only, and its version digit f is outside 1-8.
        XCTAssertFalse(UUIDPattern.matches("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"))
    }

    func testRejects() {
        let bad = [
            "", "0f8fad5b-d9cb-069f-a165-70867728950e", "0f8fad5b-d9cb-969f-a165-70867728950e",
            "0f8fad5b-d9cb-469f-c165-70867728950e", "0f8fad5b-d9cb-469f-7165-70867728950e",
            "0f8fad5bd9cb469fa16570867728950e", "{0f8fad5b-d9cb-469f-a165-70867728950e}",
            "0f8fad5b-d9cb-469f-a165-70867728950e ", " 0f8fad5b-d9cb-469f-a165-70867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950g", "0f8fad5b_d9cb-469f-a165-70867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950e\n", "00000000-0000-0000-0000-000000000001",
            "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b-d9cb-469f-a165-70867728950ee",
            "0f8fad5b-d9cb-469f-a165-7086772895é",
        ]
        for id in bad { XCTAssertFalse(UUIDPattern.matches(id), id) }
    }

    func testAgreesWithTheContractExpressionOnRandomInputs() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789abcdefABCDEF-gG ")
        for _ in 0..<20_000 {
            var chars = Array("0f8fad5b-d9cb-469f-a165-70867728950e")
            for _ in 0..<Int.random(in: 0...3, using: &generator) {
                chars[Int.random(in: 0..<chars.count, using: &generator)] = alphabet.randomElement(using: &generator)!
            }
            let id = String(chars)
            XCTAssertEqual(UUIDPattern.matches(id), id.wholeMatch(of: contractPattern) != nil, id)
        }
    }
}
