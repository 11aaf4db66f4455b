import Core

/// Carries tip measurements from the imaging side (one thread: tracking and triangulation at the
/// frame rate) to the control cycle (one thread, 1 kHz) without locks or allocation: a
/// single-producer, single-consumer ring with acquire/release indices. A full ring refuses the
/// newest measurement and counts it; nothing is lost silently. Keep the mailbox alive as long as
/// its sender and receiver are in use.
public final class MeasurementMailbox: @unchecked Sendable {
    public let capacity: Int
    let slots: UnsafeMutablePointer<TipMeasurement>
    /// [head (next to read), tail (next to write), refused]
    let indices: UnsafeMutablePointer<Int64>

    public init(capacity: Int = 64) {
        precondition(capacity > 0)
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: TipMeasurement(acquiredAt: 0), count: capacity)
        indices = .allocate(capacity: 3)
        indices.initialize(repeating: 0, count: 3)
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
        indices.deallocate()
    }

    /// The imaging side's end.
    public var sender: MeasurementSender { MeasurementSender(slots: slots, indices: indices, capacity: Int64(capacity)) }
    /// The control cycle's end.
    public var receiver: MeasurementReceiver { MeasurementReceiver(slots: slots, indices: indices, capacity: Int64(capacity)) }
    /// Measurements refused because the ring was full.
    public var refused: Int { Int(SharedIndex.load(indices + 2)) }
}

public struct MeasurementSender: @unchecked Sendable {
    let slots: UnsafeMutablePointer<TipMeasurement>
    let indices: UnsafeMutablePointer<Int64>
    let capacity: Int64

    /// Posts `m`; false (and counted) when the ring is full.
    @_noAllocation @_noLocks
    public func send(_ m: TipMeasurement) -> Bool {
        let head = SharedIndex.load(indices)
        let tail = indices[1]  // only this side writes it
        if tail - head >= capacity {
            SharedIndex.store(indices + 2, SharedIndex.load(indices + 2) + 1)
            return false
        }
        slots[Int(tail % capacity)] = m
        SharedIndex.store(indices + 1, tail + 1)
        return true
    }
}

public struct MeasurementReceiver: @unchecked Sendable {
    let slots: UnsafeMutablePointer<TipMeasurement>
    let indices: UnsafeMutablePointer<Int64>
    let capacity: Int64

    /// The oldest waiting measurement, or nil.
    @_noAllocation @_noLocks
    public func receive() -> TipMeasurement? {
        let head = indices[0]  // only this side writes it
        let tail = SharedIndex.load(indices + 1)
        if head == tail { return nil }
        let m = slots[Int(head % capacity)]
        SharedIndex.store(indices, head + 1)
        return m
    }
}
