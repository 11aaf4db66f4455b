import Core

/// One sample of the tip log.
public struct TipSample: Sendable, Equatable {
    @_noAllocation @_noLocks
    @inlinable public init(time: Double, target: Vec3, tip: Vec3) {
        self.time = time; self.target = target; self.tip = tip
    }

    /// Seconds since the servo started.
    public var time: Double
    /// Where the tip should be (mm).
    public var target: Vec3
    /// Where the kinematics put the measured tip (mm).
    public var tip: Vec3
    /// |target − tip| (mm).
    public var error: Double { (target - tip).length }
}

/// A preallocated log of tip samples for plots and reports after a run. It owns the memory;
/// the cycle writes through a `TipLogWriter`, a plain view of pointers, so writing costs no
/// reference counting. Only a holder that also keeps the log (as `TipServo` does) gets a
/// writer, so none can write into memory freed under it.
public final class TipLog: @unchecked Sendable {
    public let capacity: Int
    public let decimation: Int
    private let samples: UnsafeMutablePointer<TipSample>
    /// [kept, dropped, phase]
    private let counters: UnsafeMutablePointer<Int>

    public init(capacity: Int, decimation: Int) {
        precondition(capacity > 0 && decimation > 0)
        self.capacity = capacity
        self.decimation = decimation
        samples = .allocate(capacity: capacity)
        samples.initialize(repeating: TipSample(time: 0, target: .zero, tip: .zero), count: capacity)
        counters = .allocate(capacity: 3)
        counters.initialize(repeating: 0, count: 3)
    }

    deinit {
        samples.deallocate()
        counters.deallocate()
    }

    /// The view the cycle writes through; whoever takes it keeps the log too.
    var writer: TipLogWriter {
        TipLogWriter(samples: samples, counters: counters, capacity: capacity, decimation: decimation)
    }

    public var count: Int { counters[0] }
    /// Samples not kept because the log was full.
    public var dropped: Int { counters[1] }
    /// The kept samples (allocates; not for the cycle).
    public var all: [TipSample] { Array(UnsafeBufferPointer(start: samples, count: counters[0])) }
    public func clear() { counters.update(repeating: 0, count: 3) }
}

/// Writes into a `TipLog`, keeping every `decimation`-th sample; when full it counts the
/// samples it could not keep instead of dropping them silently.
public struct TipLogWriter: @unchecked Sendable {
    @usableFromInline let samples: UnsafeMutablePointer<TipSample>
    @usableFromInline let counters: UnsafeMutablePointer<Int>
    @usableFromInline let capacity: Int
    @usableFromInline let decimation: Int

    @usableFromInline init(samples: UnsafeMutablePointer<TipSample>, counters: UnsafeMutablePointer<Int>, capacity: Int, decimation: Int) {
        self.samples = samples
        self.counters = counters
        self.capacity = capacity
        self.decimation = decimation
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public func offer(_ s: TipSample) {
        counters[2] += 1
        if counters[2] < decimation { return }
        counters[2] = 0
        let kept = counters[0]
        if kept < capacity {
            samples[kept] = s
            counters[0] = kept + 1
        } else {
            counters[1] += 1
        }
    }
}
