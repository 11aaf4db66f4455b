import Core

/// Carries tip measurements from the imaging side (one thread: tracking and triangulation at the
/// frame rate) to the control cycle (one thread, 1 kHz) without locks or allocation: a
/// single-producer, single-consumer ring with acquire/release indices. A full ring refuses the
/// newest measurement and counts it; nothing is lost silently.
///
/// The mailbox is shared by two threads, so it is a class: it owns the ring and frees it when the
/// last holder lets go. Its two ends hold the mailbox itself, never pointers into it, so the ring
/// lives as long as either end is in use. The ends cannot be copied: take one sender for the
/// imaging thread and one receiver for the cycle.
public final class MeasurementMailbox: @unchecked Sendable {
    public let capacity: Int
    let slots: UnsafeMutablePointer<TipMeasurement>   // (capacity)
    /// [head (next to read), tail (next to write), refused]
    let indices: UnsafeMutablePointer<Int64>           // (3)

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
    public var sender: MeasurementSender { MeasurementSender(mailbox: self) }
    /// The control cycle's end.
    public var receiver: MeasurementReceiver { MeasurementReceiver(mailbox: self) }
    /// Measurements refused because the ring was full.
    public var refused: Int { Int(SharedIndex.load(indices + 2)) }
}

/// The imaging side's end of a `MeasurementMailbox`; it keeps the mailbox alive. Noncopyable, so
/// using it costs no reference counting (and the cycle's checks can prove that).
public struct MeasurementSender: ~Copyable, Sendable {
    let mailbox: MeasurementMailbox

    /// Posts `m`; false (and counted) when the ring is full.
    @_noAllocation @_noLocks
    public func send(_ m: TipMeasurement) -> Bool {
        let indices = mailbox.indices, capacity = Int64(mailbox.capacity)
        let head = SharedIndex.load(indices)
        let tail = indices[1]  // only this side writes it
        if tail - head >= capacity {
            SharedIndex.store(indices + 2, SharedIndex.load(indices + 2) + 1)
            return false
        }
        mailbox.slots[Int(tail % capacity)] = m
        SharedIndex.store(indices + 1, tail + 1)
        return true
    }
}

/// The control cycle's end of a `MeasurementMailbox`; it keeps the mailbox alive.
public struct MeasurementReceiver: ~Copyable, Sendable {
    let mailbox: MeasurementMailbox

    /// The oldest waiting measurement, or nil.
    @_noAllocation @_noLocks
    public func receive() -> TipMeasurement? {
        let indices = mailbox.indices, capacity = Int64(mailbox.capacity)
        let head = indices[0]  // only this side writes it
        let tail = SharedIndex.load(indices + 1)
        if head == tail { return nil }
        let m = mailbox.slots[Int(head % capacity)]
        SharedIndex.store(indices, head + 1)
        return m
    }
}
