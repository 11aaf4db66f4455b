// The one audited place where code that runs in the control cycle calls C.
//
// The compiler's performance checks (`@_noAllocation`, `@_noLocks`) cannot see into C, so
// every C call the cycle needs is listed here and waived with `_unsafePerformance`. Each
// entry below has been checked by hand to neither allocate, lock nor log:
//   - libm `cos`, `sin`, `atan2`, `acos`: pure functions of their arguments;
//   - `Double.squareRoot()`: one `sqrtsd` instruction (the checker cannot see through it);
//   - `clock_gettime(CLOCK_MONOTONIC)`: a vDSO read;
//   - `clock_nanosleep(TIMER_ABSTIME)`: a system call that blocks the thread, nothing else.
// Anything added here needs the same audit, and a line in this list.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CRealtime

/// `cos` from the C library, callable from code that runs in the control cycle.
@_noAllocation @_noLocks @inlinable @inline(__always) public func cosine(_ x: Double) -> Double { _unsafePerformance { cos(x) } }
/// `sin` from the C library, callable from code that runs in the control cycle.
@_noAllocation @_noLocks @inlinable @inline(__always) public func sine(_ x: Double) -> Double { _unsafePerformance { sin(x) } }
/// `atan2` from the C library, callable from code that runs in the control cycle.
@_noAllocation @_noLocks @inlinable @inline(__always) public func arcTangent2(_ y: Double, _ x: Double) -> Double {
    _unsafePerformance { atan2(y, x) }
}
/// `acos` from the C library with its argument clamped to [-1, 1], callable from the cycle.
@_noAllocation @_noLocks @inlinable @inline(__always) public func arcCosine(_ x: Double) -> Double {
    _unsafePerformance { acos(min(1, max(-1, x))) }
}

/// The square root, callable from code that runs in the control cycle.
@_noAllocation @_noLocks @inlinable @inline(__always) public func squareRootOf(_ x: Double) -> Double { _unsafePerformance { x.squareRoot() } }

/// The monotonic clock the cycle runs on.
public enum MonotonicClock {
    /// Now, in nanoseconds of `CLOCK_MONOTONIC`. The corresponding C function is `clock_gettime`.
    @_noAllocation @_noLocks @inlinable @inline(__always) public static func now() -> Nanoseconds {
        _unsafePerformance { lumen_rt_now_ns() }
    }

    /// Sleeps until the absolute time `deadline`; returns 0 or an errno.
    /// The corresponding C function is `clock_nanosleep` with `TIMER_ABSTIME`.
    @_noAllocation @_noLocks @inlinable @inline(__always) public static func sleep(until deadline: Nanoseconds) -> Int32 {
        _unsafePerformance { lumen_rt_sleep_until_ns(deadline) }
    }
}
