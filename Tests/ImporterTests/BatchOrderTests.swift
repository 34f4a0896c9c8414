import Foundation
@testable import Importer
import XCTest

/// Batch n starts only once every batch up to n - overlap has finished, whatever order they
/// finish in.
final class BatchOrderTests: XCTestCase {
    /// Whether `waitForTurn(number)` returns within `seconds` on a thread of its own.
    func startsSoon(_ order: BatchOrder, _ number: Int, within seconds: Double = 0.2) -> Bool {
        let started = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            order.waitForTurn(number)
            started.signal()
        }
        return started.wait(timeout: .now() + seconds) == .success
    }

    func testAtMostOverlapNeighboursInFlight() {
        let order = BatchOrder(overlap: 2)
        XCTAssertTrue(startsSoon(order, 0))
        XCTAssertTrue(startsSoon(order, 1))
        let third = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            order.waitForTurn(2)
            third.signal()
        }
        XCTAssertEqual(third.wait(timeout: .now() + 0.2), .timedOut, "batch 2 started while 0 was in flight")
        // 1 finishing first does not let 2 start: 0 is still in flight.
        order.finished(1)
        XCTAssertEqual(third.wait(timeout: .now() + 0.2), .timedOut, "batch 2 started while 0 was in flight")
        order.finished(0)
        XCTAssertEqual(third.wait(timeout: .now() + 5), .success, "batch 2 never started")
        // 0 and 1 are done: 3 may start at once, 4 waits for 2.
        XCTAssertTrue(startsSoon(order, 3))
        XCTAssertFalse(startsSoon(order, 4))
        order.finished(2)
    }
}
