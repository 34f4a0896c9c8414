import Platform

/// Threads that each run one piece of work at a time, in the order it was handed over: how a
/// job keeps its next batch committing while the one before is still in the database.
final class BatchLanes: @unchecked Sendable {
    private let work: BoundedQueue<@Sendable () -> Void>
    private let done: CountdownLatch
    private let count: Int

    /// Starts `count` lanes; throws when a thread cannot be had (the caller then works alone).
    init(count: Int, name: String) throws(ThreadStartError) {
        work = BoundedQueue(capacity: count)
        done = CountdownLatch(count: count)
        self.count = count
        for started in 0..<count {
            do {
                try startThread(name: name) { [work, done] in
                    defer { done.countDown() }
                    while let item = work.take() { item() }
                }
            } catch {
                // The lanes that started end once told there is no more work.
                for _ in started..<count { done.countDown() }
                stop()
                throw error
            }
        }
    }

    /// Hands `body` to the next free lane; its answer comes when it has run.
    func run<Answer: Sendable>(_ body: @escaping @Sendable () -> Answer) -> LaneAnswer<Answer> {
        let answer = LaneAnswer<Answer>()
        if !work.put({ answer.set(body()) }) { answer.set(body()) }
        return answer
    }

    /// No more work: returns once the work handed over has run.
    func stop() {
        work.close()
        done.wait()
    }
}

/// The answer of work handed to a lane, once it has run.
final class LaneAnswer<Value: Sendable>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var value: Value?

    init() {}

    /// An answer already known: the work ran on the caller's thread.
    init(_ value: Value) { self.value = value }

    fileprivate func set(_ value: Value) {
        lock.withLock {
            self.value = value
            lock.broadcast()
        }
    }

    func wait() -> Value {
        lock.withLock {
            while value == nil { lock.wait() }
            return value!
        }
    }
}
