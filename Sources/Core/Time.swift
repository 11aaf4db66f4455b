#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time and durations in integer nanoseconds (`CLOCK_MONOTONIC`).
///
/// Integers, not `Duration`, because the control cycle does arithmetic on them every
/// millisecond and must stay allocation- and conversion-free.
public typealias Nanoseconds = Int64

public extension Nanoseconds {
    @inlinable static var perSecond: Nanoseconds { 1_000_000_000 }
    @inlinable static var perMillisecond: Nanoseconds { 1_000_000 }
    @inlinable static var perMicrosecond: Nanoseconds { 1_000 }

    /// The duration in seconds.
    @inlinable var seconds: Double { Double(self) * 1e-9 }

    /// The duration of `seconds` seconds, rounded to the nearest nanosecond.
    @inlinable static func fromSeconds(_ seconds: Double) -> Nanoseconds {
        Nanoseconds((seconds * 1e9).rounded())
    }
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`): what a piece of work cost
/// on its core, unlike wall time, whatever else the machine runs beside it. Not for the
/// control cycle (it is a system call where the monotonic clock is a vDSO read).
public enum ThreadCPUTime {
    /// Seconds, or 0 where the clock cannot be read.
    public static func seconds() -> Double {
        var ts = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0 else { return 0 }
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
