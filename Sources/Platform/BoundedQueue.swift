/// A first-in first-out hand-off between threads that holds at most `capacity` items: a
/// producer that runs ahead waits, so memory stays bounded by the capacity, not by the input.
public final class BoundedQueue<Element>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var items: [Element] = []
    private var head = 0
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
            while !closed && items.count - head >= capacity { lock.wait() }
            guard !closed else { return false }
            items.append(item)
            lock.broadcast()
            return true
        }
    }

    /// The next item, waiting for one; nil once the queue is closed and drained.
    public func take() -> Element? {
        lock.withLock {
            while head == items.count && !closed { lock.wait() }
            guard head < items.count else { return nil }
            let item = items[head]
            head += 1
            if head == items.count { items.removeAll(keepingCapacity: true); head = 0 }
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
