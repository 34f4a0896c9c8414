import Foundation
import LeadCore
import Postgres
import Store
import TestSupport
import XCTest

/// The database ranks a selection in exactly the order the service keeps one in
/// (`SelectionOrder.precedesFolded`): byte order of the folded keys, absent last in either
/// direction, ties in list order; non-ASCII text included.
final class RankedSelectionTests: MigratedDatabaseCase {

    func testTheDatabasesRankIsTheServicesOrder() throws {
        var generator = SystemRandomNumberGenerator()
        let words: [String?] = [nil, "a", "b", "z", "aa", "é", "e", "ä", "zz", "10", "9", "ß", "日本", "ab c", "~", "ǅ"]
        for round in 0..<20 {
            let order = (0..<Int.random(in: 1...3, using: &generator)).map { _ in
                FilterOrder(field: .company, descending: Bool.random(using: &generator))
            }
            let count = Int.random(in: 1...200, using: &generator)
            let members = (0..<count).map { _ in UUID().uuidString.lowercased() }
            let keys = (0..<count).map { _ in order.map { _ in SelectionOrder.folded(words.randomElement(using: &generator)!) } }
            let limit = Bool.random(using: &generator) ? nil : Int.random(in: 1...count, using: &generator)
            let ranked = RankedSelection(id: UUID().uuidString.lowercased(), order: order)
            try ranked.start(on: connection)
            try ranked.add(places: Array(0..<count), memberIDs: members, keys: order.indices.map { index in keys.map { $0[index] } },
                           on: connection)
            XCTAssertEqual(try ranked.rank(limit: limit, on: connection), limit ?? count)
            var fromDatabase: [String] = []
            while true {
                let page = try ranked.ids(after: fromDatabase.count, limit: 17, on: connection)
                if page.isEmpty { break }
                fromDatabase += page
            }
            let expected = (0..<count).sorted { SelectionOrder.precedesFolded((keys[$0], $0), (keys[$1], $1), by: order) }.map { members[$0] }
            XCTAssertEqual(fromDatabase, Array(expected.prefix(limit ?? count)), "round \(round), \(order)")
            try ranked.finish(on: connection)
            XCTAssertEqual(try connection.query("SELECT count(*) FROM import_selection_order WHERE selection = $1", [ranked.id]).first?.int(0), 0)
        }
    }
}
