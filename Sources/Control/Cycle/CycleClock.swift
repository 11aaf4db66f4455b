import Core

/// The time source of the cycle. The monotonic clock on a real run; a manual clock in tests,
/// so that deadlines, lateness and overruns can be checked deterministically.
public protocol CycleClock {
    /// Now (ns).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    mutating func now() -> Nanoseconds
    /// Blocks until `deadline` (ns, absolute).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    mutating func sleep(until deadline: Nanoseconds)
}

/// `CLOCK_MONOTONIC`, sleeping with `clock_nanosleep(TIMER_ABSTIME)`.
public struct MonotonicCycleClock: CycleClock {
    public init() {}
    @inlinable public func now() -> Nanoseconds { MonotonicClock.now() }
    @inlinable public func sleep(until deadline: Nanoseconds) { _ = MonotonicClock.sleep(until: deadline) }
}

/// A clock that only moves when told to: `sleep(until:)` jumps to the deadline (never back),
/// and `advance` stands in for work done inside a cycle.
public struct ManualCycleClock: CycleClock {
    public var time: Nanoseconds
    /// Added to every wake-up, to model a late scheduler.
    public var wakeDelay: Nanoseconds

    public init(start: Nanoseconds = 1_000_000_000, wakeDelay: Nanoseconds = 0) {
        time = start
        self.wakeDelay = wakeDelay
    }

    @inlinable public func now() -> Nanoseconds { time }
    @inlinable public mutating func sleep(until deadline: Nanoseconds) {
        time = max(time, deadline) + wakeDelay
    }
    public mutating func advance(by ns: Nanoseconds) { time += ns }
}

/// The monotonic clock without the sleep: cycles run back to back. For measuring what one
/// cycle costs (`bench cycle`), where waiting would only add noise.
public struct FreeRunningCycleClock: CycleClock {
    public init() {}
    @inlinable public func now() -> Nanoseconds { MonotonicClock.now() }
    @inlinable public func sleep(until deadline: Nanoseconds) {}
}
