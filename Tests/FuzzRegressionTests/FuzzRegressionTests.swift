import Foundation
import FuzzOracles
import XCTest

/// Every input the fuzzers keep (Fuzz/corpus: the seeds, what coverage found, and every crash ever
/// found), replayed through the same properties on every test run.
final class FuzzRegressionTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus")

    func replay(_ folder: String, _ oracle: ([UInt8]) -> String?, minimum: Int) throws {
        let directory = Self.corpus.appendingPathComponent(folder)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        XCTAssertGreaterThanOrEqual(names.count, minimum, "the \(folder) corpus is missing")
        for name in names {
            let bytes = try [UInt8](Data(contentsOf: directory.appendingPathComponent(name)))
            if let problem = oracle(bytes) { XCTFail("\(folder)/\(name): \(problem)") }
        }
    }

    func testRequestHeads() throws { try replay("request-head", FuzzOracle.requestHead, minimum: 5) }
    func testParameters() throws { try replay("parameters", FuzzOracle.parameters, minimum: 3) }
    func testJSON() throws { try replay("json", FuzzOracle.json, minimum: 5) }
    func testIdentities() throws { try replay("identity", FuzzOracle.identity, minimum: 5) }
}
