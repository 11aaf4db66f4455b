import Control
import Core
import Synchronization

// The places where the cycle meets other threads. Each is preallocated at set-up and touched by
// the cycle only through atomics and plain copies: nothing here allocates, locks or waits on the
// cycle's side. They are concrete (not generic) so that the compiler can check the cycle's
// functions that call them for allocations and locks.

/// An intent as the cycle applies it: plain values only, resolved (a named target to its point)
/// on the submitting side, so the cycle never touches a string or a reference.
public struct CycleIntent: Sendable, Equatable {
    public enum Kind: UInt8, Sendable { case deadman, mode, target, stop, acknowledge, jointJog, tipJog, jointMove, emergencyStop }
    public var sequence: UInt64
    public var kind: Kind
    /// The deadman (`deadman`), or the clutch (`tipJog`).
    public var held: Bool
    public var mode: ControlMode
    /// mm, patient frame: a target, or a tip jog's hand displacement. A joint move's (position or
    /// displacement, duration in s, 1 for minimum jerk), its axis in `routeIndex`, relative in `held`.
    public var point: Vec3
    /// (nJoints) a joint jog's demand, fractions of each axis's speed limit, −1…1.
    public var joints: JointVector
    /// The target's index on the servo's route (1 mm spacing); −1: the route's end.
    public var routeIndex: Int
    public init(sequence: UInt64, kind: Kind, held: Bool = false, mode: ControlMode = .hold, point: Vec3 = .zero,
                joints: JointVector = JointVector(count: 0), routeIndex: Int = -1) {
        self.sequence = sequence; self.kind = kind; self.held = held; self.mode = mode; self.point = point
        self.joints = joints; self.routeIndex = routeIndex
    }
}

/// Single producer (the submitters, serialised on their side), single consumer (the cycle).
/// Full means refused, never overwritten: an operator's intent is not silently lost. The cycle
/// reads it through `IntentRing.Consumer`, plain pointers, so it costs no reference counting.
public final class IntentRing: @unchecked Sendable {
    public let capacity: Int
    let slots: UnsafeMutablePointer<CycleIntent>
    /// [head (next to read), tail (next to write)]; both only grow.
    let indices: UnsafeMutablePointer<Int64>

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        slots = .allocate(capacity: self.capacity)
        slots.initialize(repeating: CycleIntent(sequence: 0, kind: .deadman), count: self.capacity)
        indices = .allocate(capacity: 2)
        indices.initialize(repeating: 0, count: 2)
    }
    deinit {
        slots.deallocate()
        indices.deallocate()
    }

    /// Producer side. False when full.
    public func push(_ intent: CycleIntent) -> Bool {
        let t = indices[1]
        if t - SharedIndex.load(indices) >= Int64(capacity) { return false }
        slots[Int(t % Int64(capacity))] = intent
        SharedIndex.store(indices + 1, t + 1)
        return true
    }

    /// The consumer's view; valid while the ring lives (its holder keeps the ring). The views
    /// of these rings are for this package only (the cycle, which holds `LiveShared` beside
    /// them): code outside it cannot take a pointer view without its owner.
    package var consumer: Consumer { Consumer(slots: slots, indices: indices, capacity: Int64(capacity)) }

    public struct Consumer: @unchecked Sendable {
        let slots: UnsafeMutablePointer<CycleIntent>
        let indices: UnsafeMutablePointer<Int64>
        let capacity: Int64

        /// - Important: runs in the control cycle; must not allocate, lock or log.
        @_noAllocation @_noLocks
        public func pop() -> CycleIntent? {
            let h = indices[0]
            if h == SharedIndex.load(indices + 1) { return nil }
            let v = slots[Int(h % capacity)]
            SharedIndex.store(indices, h + 1)
            return v
        }
    }

    /// Pops from the consumer's side (tests; the cycle uses `consumer`).
    public func pop() -> CycleIntent? { consumer.pop() }
}

/// The cycle's records for one reader: the cycle writes every cycle and never waits; a reader
/// that falls more than `capacity` behind loses the oldest and is told how many.
public final class CycleRecordRing: @unchecked Sendable {
    public let capacity: Int
    let slots: UnsafeMutablePointer<CycleRecord>
    /// [written]
    let written: UnsafeMutablePointer<Int64>
    /// Reader's side only.
    var read: Int64 = 0
    public private(set) var lost: UInt64 = 0

    public init(capacity: Int, joints: Int) {
        self.capacity = max(2, capacity)
        slots = .allocate(capacity: self.capacity)
        slots.initialize(repeating: CycleRecord(cycle: 0, time: 0, lateness: 0, compute: 0, joints: JointState(jointCount: joints),
                                                command: JointCommand(jointCount: joints), estimate: TipEstimate(), mode: .idle, appliedIntent: 0),
                         count: self.capacity)
        written = .allocate(capacity: 1)
        written.initialize(to: 0)
    }
    deinit {
        slots.deallocate()
        written.deallocate()
    }

    package var producer: Producer { Producer(slots: slots, written: written, capacity: Int64(capacity)) }

    /// The cycle's end: plain pointers, valid while the ring lives.
    public struct Producer: @unchecked Sendable {
        let slots: UnsafeMutablePointer<CycleRecord>
        let written: UnsafeMutablePointer<Int64>
        let capacity: Int64
        /// - Important: runs in the control cycle; must not allocate, lock or log.
        @_noAllocation @_noLocks
        public func push(_ r: borrowing CycleRecord) {
            let w = written.pointee
            slots[Int(w % capacity)] = copy r
            SharedIndex.store(written, w + 1)
        }
    }

    /// Reader side: hands every record since the last call, oldest first. A record the writer
    /// may be overwriting while it is copied is counted lost, not handed over torn.
    public func drain(_ body: (borrowing CycleRecord) -> Void) -> Int {
        let w = SharedIndex.load(written)
        let keep = Int64(capacity - 1)
        if w - read > keep {
            lost += UInt64(w - read - keep)
            read = w - keep
        }
        var n = 0
        while read < w {
            let r = slots[Int(read % Int64(capacity))]
            if SharedIndex.load(written) - read >= Int64(capacity) { lost += 1; read += 1; continue }
            body(r)
            read += 1
            n += 1
        }
        return n
    }
}

/// Single producer (the cycle), single consumer: durations (ns), dropped (and counted) when full.
public final class DurationRing: @unchecked Sendable {
    public let capacity: Int
    let slots: UnsafeMutablePointer<Int64>
    /// [head, tail, dropped]
    let indices: UnsafeMutablePointer<Int64>

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        slots = .allocate(capacity: self.capacity)
        slots.initialize(repeating: 0, count: self.capacity)
        indices = .allocate(capacity: 3)
        indices.initialize(repeating: 0, count: 3)
    }
    deinit {
        slots.deallocate()
        indices.deallocate()
    }

    public var dropped: Int64 { SharedIndex.load(indices + 2) }
    package var producer: Producer { Producer(slots: slots, indices: indices, capacity: Int64(capacity)) }

    public struct Producer: @unchecked Sendable {
        let slots: UnsafeMutablePointer<Int64>
        let indices: UnsafeMutablePointer<Int64>
        let capacity: Int64
        /// - Important: runs in the control cycle; must not allocate, lock or log.
        @_noAllocation @_noLocks
        public func push(_ v: Int64) {
            let t = indices[1]
            if t - SharedIndex.load(indices) >= capacity {
                SharedIndex.store(indices + 2, indices[2] + 1)
                return
            }
            slots[Int(t % capacity)] = v
            SharedIndex.store(indices + 1, t + 1)
        }
    }

    /// Consumer side: appends what is waiting.
    public func drain(into out: inout [Int64]) {
        let t = SharedIndex.load(indices + 1)
        var h = indices[0]
        while h < t { out.append(slots[Int(h % Int64(capacity))]); h += 1 }
        SharedIndex.store(indices, h)
    }
}

/// What the cycle publishes about itself every cycle (plain values).
public struct PublishedCycle: Sendable {
    public var time: Nanoseconds = 0
    public var cycle: UInt64 = 0
    public var mode: ControlMode = .idle
    public var holdReason: HoldReason = .none
    public var joints: JointState
    public var command: JointCommand
    public var estimate: TipEstimate = TipEstimate()
    public var target: Vec3 = .zero
    public var hasTarget = false
    public var appliedIntent: UInt64 = 0
    public var deadmanHeld = false
    public var stopLatched = false
    /// That stop was latched because the monitor stopped the drives while the robot moved: the
    /// stop in effect is the monitor's (its category), the controller only holds with it.
    public var stopFollowsMonitor = false
    /// That stop is an emergency stop (category 0: power removed at once).
    public var stopIsCategory0 = false
    /// The path servo holds the target.
    public var arrived = false
    /// The path servo gave up (its bounded attempts spent) and holds: why, in its own terms.
    public var servoFailure: PathServoFailure?
    public init(joints: Int) {
        self.joints = JointState(jointCount: joints)
        command = JointCommand(jointCount: joints)
    }
}

/// A sequence lock over one value: the cycle writes without waiting; readers retry until they
/// copied a version that was not being written (a few hundred ns at most).
public final class PublishedCycleLock: @unchecked Sendable {
    let version: UnsafeMutablePointer<Int64>
    let value: UnsafeMutablePointer<PublishedCycle>

    public init(joints: Int) {
        version = .allocate(capacity: 1)
        version.initialize(to: 0)
        value = .allocate(capacity: 1)
        value.initialize(to: PublishedCycle(joints: joints))
    }
    deinit {
        version.deallocate()
        value.deallocate()
    }

    package var writer: Writer { Writer(version: version, value: value) }

    public struct Writer: @unchecked Sendable {
        let version: UnsafeMutablePointer<Int64>
        let value: UnsafeMutablePointer<PublishedCycle>
        /// - Important: runs in the control cycle; must not allocate, lock or log.
        @_noAllocation @_noLocks
        public func write(_ v: borrowing PublishedCycle) {
            let s = version.pointee
            SharedIndex.store(version, s &+ 1)
            atomicMemoryFence(ordering: .releasing)
            value.pointee = copy v
            SharedIndex.store(version, s &+ 2)
        }
    }

    public func read() -> PublishedCycle {
        while true {
            let a = SharedIndex.load(version)
            if a & 1 == 1 { continue }
            let v = value.pointee
            atomicMemoryFence(ordering: .acquiring)
            if SharedIndex.load(version) == a { return v }
        }
    }
}

/// The simulated catheter's shape as the cycle last published it, for the renderer: a sequence
/// lock over a preallocated buffer of centerline nodes (mm), with their time and the tip.
public final class CatheterSnapshot: @unchecked Sendable {
    public struct Meta: Sendable {
        var count = 0
        var time: Nanoseconds = 0
        var tip = Vec3.zero
    }
    public let capacity: Int
    let version: UnsafeMutablePointer<Int64>
    let nodes: UnsafeMutablePointer<Vec3>
    let meta: UnsafeMutablePointer<Meta>

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        version = .allocate(capacity: 1)
        version.initialize(to: 0)
        nodes = .allocate(capacity: self.capacity)
        nodes.initialize(repeating: .zero, count: self.capacity)
        meta = .allocate(capacity: 1)
        meta.initialize(to: Meta())
    }
    deinit {
        version.deallocate()
        nodes.deallocate()
        meta.deallocate()
    }

    package var writer: Writer { Writer(version: version, nodes: nodes, meta: meta, capacity: capacity) }

    public struct Writer: @unchecked Sendable {
        let version: UnsafeMutablePointer<Int64>
        let nodes: UnsafeMutablePointer<Vec3>
        let meta: UnsafeMutablePointer<Meta>
        let capacity: Int
        /// Opens a write: fill `nodes`, then `endWrite`.
        /// - Important: runs in the control cycle; must not allocate, lock or log.
        @_noAllocation @_noLocks
        public func beginWrite() -> UnsafeMutablePointer<Vec3> {
            SharedIndex.store(version, version.pointee &+ 1)
            atomicMemoryFence(ordering: .releasing)
            return nodes
        }
        /// - Important: runs in the control cycle; must not allocate, lock or log.
        @_noAllocation @_noLocks
        public func endWrite(count n: Int, time t: Nanoseconds, tip p: Vec3) {
            meta.pointee = Meta(count: n, time: t, tip: p)
            SharedIndex.store(version, version.pointee &+ 1)
        }
    }

    /// A consistent copy: the centerline (mm), its time and tip; nil before the first write.
    public func read() -> (centerline: [Vec3], time: Nanoseconds, tip: Vec3)? {
        var out = [Vec3](repeating: .zero, count: capacity)
        while true {
            let a = SharedIndex.load(version)
            if a == 0 { return nil }
            if a & 1 == 1 { continue }
            let m = meta.pointee
            let n = min(max(0, m.count), capacity)
            for i in 0..<n { out[i] = nodes[i] }
            atomicMemoryFence(ordering: .acquiring)
            if SharedIndex.load(version) == a { return (Array(out[0..<n]), m.time, m.tip) }
        }
    }
}
