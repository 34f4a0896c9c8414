import Foundation
import Platform
import XCTest

final class InOrderQueueTests: XCTestCase {
    func testItemsFinishedOutOfOrderAreTakenInOrder() {
        let queue = InOrderQueue<String>(window: 8)
        for number in [3, 0, 2, 1] { XCTAssertTrue(queue.put(number, "item \(number)")) }
        queue.end(at: 4)
        var taken: [String] = []
        while let item = queue.take() { taken.append(item) }
        XCTAssertEqual(taken, ["item 0", "item 1", "item 2", "item 3"])
    }

    /// Several producers, each finishing its share at its own pace: the consumer still sees every
    /// item once, in order, and no producer runs more than the window ahead of it.
    func testProducersStayWithinTheWindow() {
        let queue = InOrderQueue<Int>(window: 3)
        let count = 200
        let claimed = Locked(0)
        let aheadSeen = Locked(0)
        let consumed = Locked(0)
        let producers = CountdownLatch(count: 3)
        for producer in 0..<3 {
            try! startThread(name: "producer \(producer)") {
                defer { producers.countDown() }
                while true {
                    let number = claimed.withLock { value -> Int in defer { value += 1 }; return value }
                    guard number < count else { return }
                    if number % 7 == producer { usleep(200) }
                    guard queue.put(number, number) else { return }
                    let ahead = number - consumed.current
                    aheadSeen.withLock { $0 = max($0, ahead) }
                }
            }
        }
        try! startThread(name: "ender") {
            _ = producers.wait()
            queue.end(at: count)
        }
        var taken: [Int] = []
        while let item = queue.take() {
            taken.append(item)
            consumed.withLock { $0 = taken.count }
        }
        XCTAssertEqual(taken, Array(0..<count))
        XCTAssertLessThan(aheadSeen.current, 3 + 1, "a producer put an item beyond the window")
    }

    /// A gap that will never be filled (its producer failed and said where the items end) ends the
    /// stream there rather than waiting forever.
    func testEndBeforeAGapStopsTheConsumer() {
        let queue = InOrderQueue<Int>(window: 4)
        queue.put(0, 0)
        queue.put(2, 2)
        queue.end(at: 1)
        XCTAssertEqual(queue.take(), 0)
        XCTAssertNil(queue.take())
    }

    func testCloseReleasesAWaitingProducer() {
        let queue = InOrderQueue<Int>(window: 1)
        queue.put(0, 0)
        let refused = Locked<Bool?>(nil)
        let done = CountdownLatch(count: 1)
        try! startThread(name: "blocked producer") {
            let accepted = queue.put(5, 5)
            refused.withLock { $0 = !accepted }
            done.countDown()
        }
        usleep(20_000)
        XCTAssertNil(refused.current, "the producer should be waiting for room")
        queue.close()
        XCTAssertTrue(done.wait(until: .now() + .seconds(5)))
        XCTAssertEqual(refused.current, true)
        XCTAssertNil(queue.take(), "a closed queue hands out nothing")
    }
}
