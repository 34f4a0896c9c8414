#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point on the monotonic clock, in nanoseconds. Pure code takes instants as arguments;
/// only the shell reads the clock.
public struct MonotonicInstant: Comparable, Hashable, Sendable {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func now() -> MonotonicInstant {
        var spec = Glibc.timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return MonotonicInstant(nanoseconds: UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec))
    }

    /// The monotonic instant of a wall-clock time (Unix seconds) another process on this host
    /// stamped, nil when it is in the future or more than `notBefore` ago: a clock that jumped,
    /// or a stamp from a host whose clock differs, must not make a request look late.
    public static func fromWallClock(seconds: Double, notBefore: Duration) -> MonotonicInstant? {
        var wall = Glibc.timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        let ago = Double(wall.tv_sec) + Double(wall.tv_nsec) / 1e9 - seconds
        guard ago >= 0, ago <= notBefore.secondsDouble else { return nil }
        return now() + .nanoseconds(-Int64(ago * 1e9))
    }

    public static func < (a: MonotonicInstant, b: MonotonicInstant) -> Bool { a.nanoseconds < b.nanoseconds }

    public static func + (a: MonotonicInstant, d: Duration) -> MonotonicInstant {
        let delta = d.nanoseconds
        if delta < 0 {
            let magnitude = UInt64(-delta)
            return MonotonicInstant(nanoseconds: a.nanoseconds > magnitude ? a.nanoseconds - magnitude : 0)
        }
        return MonotonicInstant(nanoseconds: a.nanoseconds &+ UInt64(delta))
    }

    public static func - (a: MonotonicInstant, b: MonotonicInstant) -> Duration {
        if a >= b { return .nanoseconds(Int64(a.nanoseconds - b.nanoseconds)) }
        return .nanoseconds(-Int64(b.nanoseconds - a.nanoseconds))
    }

    var timespec: Glibc.timespec {
        Glibc.timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }
}

extension Duration {
    /// Whole nanoseconds, saturating; enough for every timeout this service uses.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? Int64.min : Int64.max }
        return product &+ attoseconds / 1_000_000_000
    }

    public var milliseconds: Int64 { nanoseconds / 1_000_000 }

    public var secondsDouble: Double { Double(nanoseconds) / 1e9 }
}

/// The time of day, for log lines only: every decision about time uses `MonotonicInstant`.
public enum WallClock {
    public struct Instant: Sendable, Equatable {
        public var seconds: Int
        public var milliseconds: Int

        public init(seconds: Int, milliseconds: Int) {
            self.seconds = seconds
            self.milliseconds = milliseconds
        }

        /// `2026-12-06T20:41:07.123Z`.
        public var rfc3339Milliseconds: String {
            var time = time_t(seconds)
            var parts = tm()
            gmtime_r(&time, &parts)
            func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : String(value) }
            let millis = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : String(milliseconds)
            return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
                + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millis)Z"
        }
    }

    public static func now() -> Instant {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Instant(seconds: Int(spec.tv_sec), milliseconds: Int(spec.tv_nsec / 1_000_000))
    }
}
