import LeadCore
import XCTest

final class LeadMappingTests: XCTestCase {
    func testEmailCampaignNeedsAnEmailAndKeepsAValidLinkedIn() {
        let member = ListMember(linkedinURL: "linkedin.com/in/Ada/", emails: [" Ada@Example.com "], firstName: "Ada", lastName: "Lovelace")
        let lead = LeadMapping.lead(from: member, channel: .email)
        XCTAssertEqual(lead?.email, "ada@example.com")
        XCTAssertEqual(lead?.linkedinURL, "https://www.linkedin.com/in/ada")
        XCTAssertEqual(lead?.identity, "ada@example.com")
        XCTAssertEqual(lead?.name, "Ada Lovelace")

        XCTAssertNil(LeadMapping.lead(from: ListMember(linkedinURL: "linkedin.com/in/ada"), channel: .email))
        XCTAssertNil(LeadMapping.lead(from: ListMember(emails: ["not-an-email"]), channel: .email))
    }

    func testLinkedInCampaignNeedsARealProfileAndDropsAnUnusableEmail() {
        let lead = LeadMapping.lead(from: ListMember(linkedinURL: "https://www.linkedin.com/in/ada", emails: ["broken@"]), channel: .linkedin)
        XCTAssertEqual(lead?.identity, "https://www.linkedin.com/in/ada")
        XCTAssertNil(lead?.email)
        XCTAssertNil(LeadMapping.lead(from: ListMember(linkedinURL: "imported-42", emails: ["a@b.co"]), channel: .linkedin))
        XCTAssertNil(LeadMapping.lead(from: ListMember(emails: ["a@b.co"]), channel: .linkedin))
    }

    func testFirstUsableEmailWins() {
        let lead = LeadMapping.lead(from: ListMember(emails: ["", "nope", "second@example.com", "third@example.com"]), channel: .email)
        XCTAssertEqual(lead?.email, "second@example.com")
    }

    func testNameIsBuiltOnlyWhenAbsent() {
        func name(_ first: String?, _ last: String?, full: String? = nil) -> String? {
            LeadMapping.lead(from: ListMember(emails: ["a@b.co"], firstName: first, lastName: last, fullName: full), channel: .email)?.name
        }
        XCTAssertEqual(name("Ada", "Lovelace"), "Ada Lovelace")
        XCTAssertEqual(name("Ada", nil), "Ada")
        XCTAssertEqual(name(nil, "Lovelace"), "Lovelace")
        XCTAssertEqual(name(" Ada ", "  "), "Ada")
        XCTAssertNil(name(nil, nil))
        XCTAssertEqual(name("Ada", "Lovelace", full: "Countess of Lovelace"), "Countess of Lovelace")
        XCTAssertEqual(name("Ada", "Lovelace", full: "   "), "Ada Lovelace")
    }

    func testProfileFieldsAndCustomFieldsPassThrough() {
        let member = ListMember(emails: ["a@b.co"], company: "Analytical Engines", position: "Programmer", headline: "First",
                                customFields: #"{"k":1}"#)
        let lead = LeadMapping.lead(from: member, channel: .email)
        XCTAssertEqual(lead?.company, "Analytical Engines")
        XCTAssertEqual(lead?.position, "Programmer")
        XCTAssertEqual(lead?.headline, "First")
        XCTAssertEqual(lead?.customFields, #"{"k":1}"#)
    }

    func testAttributesBecomeCustomFieldsAndFallbacksReadLikeTheArrowOperator() throws {
        var lead = CanonicalLead(firstName: " ", title: "CTO")
        XCTAssertEqual(lead.attributesJSON, "{}")
        lead.addAttribute(key: "firstName", json: #""Ad\u0061 \"Countess\"""#)
        lead.addAttribute(key: "currentRole", json: #""Analyst""#)
        lead.addAttribute(key: "score", json: "42")
        lead.addAttribute(key: "headline", json: "null")
        lead.addAttribute(key: "currentCompany", json: #"{"name": "Engines"}"#)
        lead.addAttribute(key: "say \"hi\"", json: "true")
        XCTAssertEqual(lead.attributeFirstName, #"Ada "Countess""#)
        XCTAssertNil(lead.attributeHeadline, "JSON null is no value")
        XCTAssertEqual(lead.attributeCurrentCompany, #"{"name": "Engines"}"#, "a non-string value reads as its JSON")
        let custom = try JSONReader.parse(lead.attributesJSON)
        XCTAssertEqual(custom, try JSONReader.parse(#"""
            {"firstName": "Ada \"Countess\"", "currentRole": "Analyst", "score": 42, "headline": null,
             "currentCompany": {"name": "Engines"}, "say \"hi\"": true}
            """#))
        let member = lead.member
        XCTAssertEqual(member.firstName, #"Ada "Countess""#, "a blank column falls back to the attribute")
        XCTAssertEqual(member.position, "CTO", "the column wins over the attribute")
        XCTAssertEqual(member.company, #"{"name": "Engines"}"#)
        XCTAssertEqual(member.customFields, lead.attributesJSON)
    }

    func testAttributesJoinAsWrittenWhateverTheirLastCharacter() {
        // Values ending in a combining mark: the object is closed and reopened by its last byte.
        var lead = CanonicalLead()
        lead.addAttribute(key: "lastName", json: "\"Zoe\u{301}\"")
        lead.addAttribute(key: "note\u{301}", json: "\"日本\"")
        lead.addAttribute(key: "n", json: "1")
        XCTAssertEqual(Array(lead.attributesJSON.utf8), Array("{\"lastName\":\"Zoe\u{301}\",\"note\u{301}\":\"日本\",\"n\":1}".utf8))
        XCTAssertEqual(lead.attributeLastName.map { Array($0.utf8) }, Array("Zoe\u{301}".utf8))
        lead.addAttribute(key: "firstName", json: "\"\"")
        lead.addAttribute(key: "headline", json: "\"é\"")
        XCTAssertEqual(lead.attributeFirstName, "")
        XCTAssertEqual(lead.attributeHeadline, "é")
    }

    func testAForeignMemberIsInvalidOnEveryChannelAndCarriesNothing() {
        var lead = CanonicalLead(firstName: "Secret", linkedinSocial: "https://www.linkedin.com/in/secret", workEmails: ["s@x.example"])
        lead.rejection = .foreign
        XCTAssertEqual(lead.member, .foreign)
        XCTAssertNil(lead.member.firstName)
        for channel in Channel.allCases {
            XCTAssertNil(LeadMapping.lead(from: .foreign, channel: channel))
        }
    }

    func testAFieldPastTheLimitRejectsItsMember() {
        let limit = ListMember.fieldLimit
        XCTAssertFalse(ListMember.exceedsFieldLimit(String(repeating: "é", count: limit)), "counted in characters, not bytes")
        XCTAssertTrue(ListMember.exceedsFieldLimit(String(repeating: "a", count: limit + 1)))
        XCTAssertFalse(ListMember.exceedsFieldLimit(nil))
        let row = LeadGenRow(linkedinURL: "linkedin.com/in/ok", headline: String(repeating: "h", count: limit + 1), workEmail: "ok@x.io")
        XCTAssertEqual(row.member, .rejected(.fieldTooLong))
        XCTAssertNil(LeadMapping.lead(from: row.member, channel: .email))
    }
}
