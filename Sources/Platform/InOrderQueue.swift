/// A hand-off from several producers that finish numbered items out of order to one consumer that
/// takes them in order: 0, 1, 2, ... A producer more than `window` items ahead of the consumer
/// waits, so memory stays bounded however slow the consumer is.
public final class InOrderQueue<Element>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var ready: [Int: Element] = [:]
    private var next = 0
    /// Items numbered from here on will never come.
    private var end = Int.max
    private var closed = false
    public let window: Int

    public init(window: Int) {
        precondition(window > 0)
        self.window = window
    }

    /// Waits until `number` is within the window; returns false (dropping the item) once the
    /// consumer has closed the queue.
    @discardableResult
    public func put(_ number: Int, _ item: Element) -> Bool {
        lock.withLock {
            while !closed && number >= next + window { lock.wait() }
            guard !closed else { return false }
            ready[number] = item
            lock.broadcast()
            return true
        }
    }

    /// Producers say no item numbered `count` or above will come.
    public func end(at count: Int) {
        lock.withLock {
            end = min(end, count)
            lock.broadcast()
        }
    }

    /// The next item in order, waiting for it; nil once the items have ended before it, or the
    /// queue was closed.
    public func take() -> Element? {
        lock.withLock {
            while !closed && next < end && ready[next] == nil { lock.wait() }
            guard !closed, let item = ready.removeValue(forKey: next) else { return nil }
            next += 1
            lock.broadcast()
            return item
        }
    }

    /// The consumer stops: producers waiting for room, and any later put, return false.
    public func close() {
        lock.withLock {
            closed = true
            ready.removeAll()
            lock.broadcast()
        }
    }
}
