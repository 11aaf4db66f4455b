import Core
import Histogram

/// Percentiles of one timing histogram, in nanoseconds.
public struct TimingSummary: Sendable, Equatable, Codable {
    public var count: UInt64
    public var p50: UInt64
    public var p99: UInt64
    public var p999: UInt64
    public var max: UInt64

    public init(_ h: Histogram<UInt64>) {
        count = h.totalCount
        p50 = h.valueAtPercentile(50)
        p99 = h.valueAtPercentile(99)
        p999 = h.valueAtPercentile(99.9)
        max = h.max
    }
}

/// What a run of the cycle did: timing figures and fault counters.
public struct CycleReport: Sendable, Equatable {
    public var period: Nanoseconds
    public var cycles: Int64
    public var overruns: Int64
    public var missedDeadlines: Int64
    public var maxPeriod: Nanoseconds
    /// Wake-up lateness (ns past each deadline).
    public var lateness: TimingSummary
    /// Compute time from wake-up to the end of write (ns).
    public var compute: TimingSummary
    public var counters: CycleCounters

    public init(timing: borrowing CycleTiming, counters: CycleCounters) {
        period = timing.period
        cycles = timing.cycles
        overruns = timing.overruns
        missedDeadlines = timing.missedDeadlines
        maxPeriod = timing.maxPeriod
        lateness = TimingSummary(timing.lateness)
        compute = TimingSummary(timing.compute)
        self.counters = counters
    }
}
