import Core
import Histogram

/// What one cycle's stages are told about time.
public struct CycleTick: Sendable, Equatable {
    @inlinable public init(index: Int64, deadline: Nanoseconds, wake: Nanoseconds, period: Nanoseconds, readFault: HardwareFault?) {
        self.index = index; self.deadline = deadline; self.wake = wake; self.period = period; self.readFault = readFault
    }

    /// Cycles run so far, from 0.
    public var index: Int64
    /// The absolute deadline this cycle woke for (ns).
    public var deadline: Nanoseconds
    /// When the thread actually woke (ns).
    public var wake: Nanoseconds
    /// Measured period: time since the previous wake-up (ns); the nominal period on the first cycle.
    public var period: Nanoseconds
    /// The fault of this cycle's read, if it failed (the state is then the previous one).
    public var readFault: HardwareFault?
}

/// The cycle's time bookkeeping, sized once: deadlines on an absolute grid, wake-up lateness and
/// compute time into preallocated histograms, overruns and missed deadlines counted.
///
/// Overrun: a cycle whose work ended at or after the following deadline. The grid then skips
/// to the first deadline still in the future, and the skipped ones are counted as missed.
public struct CycleTiming: ~Copyable {
    /// Nominal period (ns).
    public let period: Nanoseconds
    /// Next deadline (ns, absolute).
    @usableFromInline var _nextDeadline: Nanoseconds = 0
    @inlinable public var nextDeadline: Nanoseconds { _nextDeadline }
    /// Previous wake-up (ns), 0 before the first.
    @usableFromInline var _lastWake: Nanoseconds = 0
    @inlinable public var lastWake: Nanoseconds { _lastWake }
    /// Cycles accounted.
    @usableFromInline var _cycles: Int64 = 0
    @inlinable public var cycles: Int64 { _cycles }
    /// Cycles that ended at or after the following deadline.
    @usableFromInline var _overruns: Int64 = 0
    @inlinable public var overruns: Int64 { _overruns }
    /// Deadlines skipped after overruns.
    @usableFromInline var _missedDeadlines: Int64 = 0
    @inlinable public var missedDeadlines: Int64 { _missedDeadlines }
    /// Largest measured period (ns).
    @usableFromInline var _maxPeriod: Nanoseconds = 0
    @inlinable public var maxPeriod: Nanoseconds { _maxPeriod }
    /// The histograms live behind pointers, allocated once at init and freed with the timing
    /// (it is noncopyable): the cycle records into them without touching a reference count,
    /// which a histogram held in a field would cost through its array's copy-on-write checks.
    @usableFromInline let latenessSlot: UnsafeMutablePointer<Histogram<UInt64>>
    @usableFromInline let computeSlot: UnsafeMutablePointer<Histogram<UInt64>>
    /// Wake-up lateness (ns past the deadline).
    public var lateness: Histogram<UInt64> { latenessSlot.pointee }
    /// Compute time from wake-up to the end of write (ns).
    public var compute: Histogram<UInt64> { computeSlot.pointee }

    /// Values above this are recorded as this (and still counted as overruns); 10 s.
    public static let histogramCeiling: UInt64 = 10_000_000_000

    public init(period: Nanoseconds) {
        precondition(period > 0, "the cycle period must be positive")
        self.period = period
        latenessSlot = .allocate(capacity: 1)
        computeSlot = .allocate(capacity: 1)
        for slot in [latenessSlot, computeSlot] {
            slot.initialize(to: Histogram(lowestDiscernibleValue: 1, highestTrackableValue: Self.histogramCeiling, numberOfSignificantValueDigits: .three))
        }
    }

    deinit {
        for slot in [latenessSlot, computeSlot] {
            slot.deinitialize(count: 1)
            slot.deallocate()
        }
    }

    /// Starts the deadline grid one period after `now`.
    @inlinable public mutating func start(at now: Nanoseconds) {
        _nextDeadline = now + period
        _lastWake = 0
    }

    /// Accounts a wake-up; returns the tick the stages get.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public mutating func wake(at wake: Nanoseconds) -> CycleTick {
        let measured = _lastWake == 0 ? period : wake - _lastWake
        _maxPeriod = max(_maxPeriod, measured)
        _lastWake = wake
        Self.record(latenessSlot, wake - _nextDeadline)
        return CycleTick(index: _cycles, deadline: _nextDeadline, wake: wake, period: measured, readFault: nil)
    }

    /// Accounts the end of the cycle's work and moves the deadline on.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public mutating func finish(_ tick: CycleTick, at end: Nanoseconds) {
        Self.record(computeSlot, end - tick.wake)
        _cycles += 1
        _nextDeadline = tick.deadline + period
        if end >= _nextDeadline {
            let skipped = (end - _nextDeadline) / period + 1
            _overruns += 1
            _missedDeadlines += skipped
            _nextDeadline += skipped * period
        }
    }

    /// Clears the statistics (not the grid), e.g. after a warm-up.
    public mutating func resetStatistics() {
        _cycles = 0; _overruns = 0; _missedDeadlines = 0; _maxPeriod = 0
        latenessSlot.pointee.reset()
        computeSlot.pointee.reset()
    }

    @_noAllocation @_noLocks
    @inlinable static func record(_ h: UnsafeMutablePointer<Histogram<UInt64>>, _ value: Nanoseconds) {
        // Clamped, never dropped: a value past the ceiling still counts, at the ceiling.
        let v = min(UInt64(clamping: value), 10_000_000_000)  // histogramCeiling
        // Audited: the counts array is uniquely owned by the store and sized at init (no
        // auto-resize), so recording never reallocates; the compiler cannot prove that through
        // Array's copy-on-write path. The allocation tests check it at run time.
        _ = _unsafePerformance { h.pointee.record(v) }
    }
}
