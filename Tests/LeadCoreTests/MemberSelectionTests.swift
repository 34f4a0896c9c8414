import LeadCore
import XCTest

/// `MemberSelection`: what of a list read page by page an import takes, and in what order.
final class MemberSelectionTests: XCTestCase {
    /// Member i works at `companies[i % 3]`, with an email when i is not a multiple of 5.
    let companies = ["Acme", "Globex", " acme "]

    func member(_ i: Int, attributes: String? = nil, rows: Bool = false) -> ListMember {
        var member = ListMember(linkedinURL: "https://www.linkedin.com/in/m\(i)", emails: i % 5 == 0 ? [] : ["m\(i)@example.com"],
                                firstName: "M\(i)", company: companies[i % 3], position: "level \(i % 4)")
        if rows { member.filterAttributes = attributes } else { member.customFields = attributes }
        return member
    }

    func names(_ members: [ListMember]) -> [String] { members.compactMap(\.firstName) }

    /// Takes `pages` in turn, as a reader would, and what the selection returns, then its end.
    func run(_ filter: ImportFilter, pages: [[ListMember]]) -> (taken: [String], pagesRead: Int) {
        var selection = MemberSelection(filter: filter)
        var taken: [ListMember] = []
        var pagesRead = 0
        for page in pages {
            pagesRead += 1
            taken += selection.take(page)
            if selection.isComplete { break }
        }
        return (names(taken + selection.finish()), pagesRead)
    }

    var pages: [[ListMember]] { stride(from: 0, to: 30, by: 10).map { start in (start..<start + 10).map { member($0) } } }

    func testWhereKeepsListOrderAndIgnoresCaseAndSpaces() {
        let filter = ImportFilter(conditions: [FilterCondition(field: .company, match: .equals("ACME"))])
        let (taken, pagesRead) = run(filter, pages: pages)
        XCTAssertEqual(taken, stride(from: 0, to: 30, by: 3).flatMap { ["M\($0)", "M\($0 + 2)"] })
        XCTAssertEqual(pagesRead, 3)
    }

    func testLimitStopsReadingOnceReached() {
        let (taken, pagesRead) = run(ImportFilter(limit: 12), pages: pages)
        XCTAssertEqual(taken, (0..<12).map { "M\($0)" })
        XCTAssertEqual(pagesRead, 2, "the third page is never asked for")
        let filtered = ImportFilter(conditions: [FilterCondition(field: .company, match: .equals("globex"))], limit: 2)
        let (few, pagesForFew) = run(filtered, pages: pages)
        XCTAssertEqual(few, ["M1", "M4"])
        XCTAssertEqual(pagesForFew, 1)
    }

    func testAbsentMatchesNoEmailAndAnyOfMatchesEither() {
        let noEmail = ImportFilter(conditions: [FilterCondition(field: .email, match: .absent)])
        XCTAssertEqual(run(noEmail, pages: pages).taken, ["M0", "M5", "M10", "M15", "M20", "M25"])
        let either = ImportFilter(conditions: [FilterCondition(field: .position, match: .anyOf(["LEVEL 1", "level 3"])),
                                               FilterCondition(field: .company, match: .equals("globex"))])
        XCTAssertEqual(run(either, pages: pages).taken, ["M1", "M7", "M13", "M19", "M25"])
    }

    func testOrderedSelectionReadsEverythingThenGivesTheFirstLimitInOrder() {
        let order = [FilterOrder(field: .position, descending: true), FilterOrder(field: .firstName)]
        let (taken, pagesRead) = run(ImportFilter(order: order, limit: 4), pages: pages)
        XCTAssertEqual(pagesRead, 3)
        // "level 3" first; among them by first name as text: M11, M15, M19, M23.
        XCTAssertEqual(taken, ["M11", "M15", "M19", "M23"])
    }

    func testOrderTiesKeepListOrderAndAbsentValuesComeLast() {
        let members = [member(0), member(1), member(2), member(3)]
        var withoutCompany = members
        withoutCompany[0].company = nil
        withoutCompany[2].company = "  "
        let filter = ImportFilter(order: [FilterOrder(field: .company, descending: true)], limit: 4)
        // Globex, then Acme, then the absent and the blank in list order.
        XCTAssertEqual(run(filter, pages: [withoutCompany]).taken, ["M1", "M3", "M0", "M2"])
    }

    func testMemberIDsOrderWithoutALimitTakesThemAll() {
        var selection = MemberSelection(filter: ImportFilter(memberIDs: ["a", "b", "c"], order: [FilterOrder(field: .firstName, descending: true)]))
        XCTAssertEqual(selection.take([member(1), member(2), member(3)]), [])
        XCTAssertEqual(names(selection.finish()), ["M3", "M2", "M1"])
    }

    func testAttributesOfBothStorages() {
        let condition = FilterCondition(field: .attribute("tier"), match: .anyOf(["gold", "2"]))
        let filter = ImportFilter(conditions: [condition])
        let page = [member(0, attributes: #"{"tier":"Gold"}"#), member(1, attributes: #"{"tier":2}"#),
                    member(2, attributes: #"{"tier":["gold"]}"#), member(3, attributes: nil), member(4, attributes: #"{"other":"gold"}"#)]
        XCTAssertEqual(run(filter, pages: [page]).taken, ["M0", "M1"])
        let rows = page.enumerated().map { index, leads in
            member(index, attributes: leads.customFields, rows: true)
        }
        XCTAssertEqual(run(filter, pages: [rows]).taken, ["M0", "M1"])
    }

    func testAnInvalidMemberHasNoValues() {
        let filter = ImportFilter(conditions: [FilterCondition(field: .company, match: .absent)])
        XCTAssertEqual(MemberSelection(filter: filter).isComplete, false)
        var selection = MemberSelection(filter: filter)
        XCTAssertEqual(selection.take([ListMember.foreign, member(1)]).count, 1, "a foreign member has no company: it is kept, and is invalid")
    }

    func testWhichOrdersTheServiceHolds() {
        let order = [FilterOrder(field: .company)]
        XCTAssertTrue(MemberSelectionLimits.fitsInMemory(ImportFilter(order: order, limit: MemberSelectionLimits.ordered)))
        XCTAssertFalse(MemberSelectionLimits.fitsInMemory(ImportFilter(order: order, limit: MemberSelectionLimits.ordered + 1)))
        XCTAssertFalse(MemberSelectionLimits.fitsInMemory(ImportFilter(order: order)))
        XCTAssertTrue(MemberSelectionLimits.fitsInMemory(ImportFilter(memberIDs: ["a"], order: order)))
        XCTAssertTrue(MemberSelectionLimits.fitsInMemory(ImportFilter(conditions: [FilterCondition(field: .company, match: .absent)])))
    }

    /// Only an `orderBy` alone, held by the service, is decided on a read of its fields first.
    func testWhichOrdersAreDecidedOnTheirKeysAlone() {
        let order = [FilterOrder(field: .company), FilterOrder(field: .attribute("tier"), descending: true), FilterOrder(field: .company)]
        let absent = [FilterCondition(field: .lastName, match: .absent)]
        XCTAssertEqual(MemberSelectionLimits.decidedOnKeys(ImportFilter(order: order, limit: 2500)), [.company, .attribute("tier")])
        XCTAssertEqual(MemberSelectionLimits.decidedOnKeys(ImportFilter(order: order, limit: MemberSelectionLimits.ordered)), [.company, .attribute("tier")])
        XCTAssertNil(MemberSelectionLimits.decidedOnKeys(ImportFilter(order: order, limit: MemberSelectionLimits.ordered + 1)), "ranked by the database")
        XCTAssertNil(MemberSelectionLimits.decidedOnKeys(ImportFilter(order: order)), "ranked by the database")
        XCTAssertNil(MemberSelectionLimits.decidedOnKeys(ImportFilter(conditions: absent, order: order, limit: 10)), "where")
        XCTAssertNil(MemberSelectionLimits.decidedOnKeys(ImportFilter(memberIDs: ["a"], order: order)), "leadIds")
        XCTAssertNil(MemberSelectionLimits.decidedOnKeys(ImportFilter(limit: 10)), "list order")
    }

    /// An ordered selection gives the first `limit` of a sort of the whole list, whatever the
    /// keys, their directions, absent values and ties: including the members it passes over on
    /// their first key alone.
    func testAnOrderedSelectionIsTheHeadOfTheWholeListSorted() {
        var generator = SystemRandomNumberGenerator()
        let companies: [String?] = [nil, "", " ", "Acme", "acme ", "Globex", "Initech", "Umbrella", "Ünal", " ünal", "Zoë"]
        let fields: [FilterField] = [.company, .firstName, .position]
        for _ in 0..<300 {
            let members = (0..<Int.random(in: 1...60, using: &generator)).map { i in
                ListMember(firstName: ["Ann", "bob", nil, "Cy"].randomElement(using: &generator)!,
                           company: companies.randomElement(using: &generator)!,
                           position: ["a", "b", nil].randomElement(using: &generator)! .map { $0 + String(i % 3) })
            }
            let order = (0..<Int.random(in: 1...3, using: &generator)).map { _ in
                FilterOrder(field: fields.randomElement(using: &generator)!, descending: Bool.random(using: &generator))
            }
            let limit = Int.random(in: 1...70, using: &generator)
            let filter = ImportFilter(order: order, limit: limit)
            var selection = MemberSelection(filter: filter)
            for page in stride(from: 0, to: members.count, by: 7).map({ Array(members[$0..<min($0 + 7, members.count)]) }) {
                XCTAssertEqual(selection.take(page), [])
            }
            let sorted = members.enumerated().sorted {
                SelectionOrder.precedes((filter.orderKeys(of: $0.element, attribute: { _ in nil }), $0.offset),
                                        (filter.orderKeys(of: $1.element, attribute: { _ in nil }), $1.offset), by: order)
            }.map(\.element)
            XCTAssertEqual(selection.finish(), Array(sorted.prefix(limit)), "\(order) limit \(limit)")
        }
    }
}
