/// A first-in first-out hand-off between threads that holds at most `capacity` items: a
/// producer that runs ahead waits, so memory stays bounded by the capacity, not by the input.
public final class BoundedQueue<Element>: @unchecked Sendable {
    private let lock = ConditionLock()
    // A handful of items at most: removing from the front costs nothing worth a ring buffer.
    private var items: [Element] = []
    private var closed = false
    public let capacity: Int

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Waits for room; returns false (dropping the item) once the queue is closed.
    @discardableResult
    public func put(_ item: Element) -> Bool {
        lock.withLock {
            while !closed && items.count >= capacity { lock.wait() }
            guard !closed else { return false }
            items.append(item)
            lock.broadcast()
            return true
        }
    }

    /// The next item, waiting for one; nil once the queue is closed and drained.
    public func take() -> Element? {
        lock.withLock {
            while items.isEmpty && !closed { lock.wait() }
            guard !items.isEmpty else { return nil }
            let item = items.removeFirst()
            lock.broadcast()
            return item
        }
    }

    /// No more puts; takers get what is left, then nil.
    public func close() {
        lock.withLock {
            closed = true
            lock.broadcast()
        }
    }
}
