#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Starts a detached OS thread. The service runs a fixed set of them; Swift concurrency's
/// cooperative pool is the wrong home for threads that block in libpq and libfcgi.
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        let name: String
        init(_ body: @escaping @Sendable () -> Void, name: String) { self.body = body; self.name = name }
    }
    let box = Unmanaged.passRetained(Box(body, name: name)).toOpaque()
    var thread = pthread_t()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    let result = pthread_create(&thread, &attributes, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    pthread_attr_destroy(&attributes)
    precondition(result == 0, "pthread_create failed: \(result)")
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
