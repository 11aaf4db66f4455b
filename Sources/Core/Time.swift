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
