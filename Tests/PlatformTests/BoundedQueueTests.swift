import Platform
import XCTest

final class BoundedQueueTests: XCTestCase {
    final class Payload: Sendable {}

    /// What a taker has taken is no longer held by the queue: an import's pages must not pile up.
    func testTakenItemsAreReleased() {
        let queue = BoundedQueue<Payload>(capacity: 2)
        weak var first: Payload?
        do {
            let payload = Payload()
            first = payload
            queue.put(payload)
            queue.put(Payload())
        }
        _ = queue.take()
        queue.put(Payload())
        XCTAssertNil(first, "the queue still holds an item it handed out")
    }

    func testProducerWaitsForRoomAndCloseDrains() {
        let queue = BoundedQueue<Int>(capacity: 2)
        let produced = Locked(0)
        let done = CountdownLatch(count: 1)
        try! startThread(name: "producer") {
            for value in 0..<100 {
                queue.put(value)
                produced.withLock { $0 = value + 1 }
            }
            queue.close()
            done.countDown()
        }
        usleep(50_000)
        XCTAssertLessThanOrEqual(produced.current, 3, "the producer ran past the capacity")
        var taken: [Int] = []
        while let value = queue.take() { taken.append(value) }
        XCTAssertEqual(taken, Array(0..<100))
        XCTAssertTrue(done.wait(until: .now() + .seconds(5)))
        XCTAssertFalse(queue.put(1), "put after close is refused")
    }
}
