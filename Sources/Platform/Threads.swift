#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A thread could not be started (`pthread_create`'s error: EAGAIN when the process or its
/// cgroup has as many tasks as it may).
public struct ThreadStartError: Error, CustomStringConvertible {
    public let name: String
    public let code: Int32
    public var description: String { "cannot start thread \(name): \(String(cString: strerror(code)))" }
}

/// Starts a detached OS thread. The service runs a bounded set of them; Swift concurrency's
/// cooperative pool is the wrong home for threads that block in libpq and libfcgi. Throws when
/// the thread cannot be started: the caller decides what that means, nothing traps.
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) throws(ThreadStartError) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        let name: String
        let context: LogContext.Fields?
        init(_ body: @escaping @Sendable () -> Void, name: String, context: LogContext.Fields?) {
            self.body = body
            self.name = name
            self.context = context
        }
    }
    // The lines the new thread logs name the request or job it was started for.
    let retained = Unmanaged.passRetained(Box(body, name: name, context: LogContext.current))
    var thread = pthread_t()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    let result = pthread_create(&thread, &attributes, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        LogContext.adopt(box.context)
        box.body()
        return nil
    }, retained.toOpaque())
    pthread_attr_destroy(&attributes)
    if result != 0 {
        retained.release()
        throw ThreadStartError(name: name, code: result)
    }
}

/// How many threads of a kind a process may have running at once: taken before they start,
/// given back when they end. What cannot be had is done without them.
public final class ThreadBudget: Sendable {
    public let total: Int
    private let available: Locked<Int>

    public init(_ total: Int) {
        self.total = total
        available = Locked(total)
    }

    /// Takes `count` threads' worth when that many are free; false (nothing taken) otherwise.
    public func take(_ count: Int) -> Bool {
        available.withLock { free in
            guard free >= count else { return false }
            free -= count
            return true
        }
    }

    public func giveBack(_ count: Int) {
        available.withLock { $0 += count }
    }

    public var free: Int { available.current }
}

/// A latch that lets one thread wait for a number of others to finish.
public final class CountdownLatch: @unchecked Sendable {
    private let lock = ConditionLock()
    private var remaining: Int

    public init(count: Int) { remaining = count }

    public func countDown() {
        lock.withLock {
            remaining -= 1
            if remaining <= 0 { lock.broadcast() }
        }
    }

    /// Returns false when the deadline passed first.
    @discardableResult
    public func wait(until deadline: MonotonicInstant? = nil) -> Bool {
        lock.withLock {
            while remaining > 0 {
                if let deadline {
                    if !lock.wait(until: deadline) && MonotonicInstant.now() >= deadline { return remaining <= 0 }
                } else {
                    lock.wait()
                }
            }
            return true
        }
    }
}
