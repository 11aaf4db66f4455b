import Control
import Core

/// The motion of a scenario, built once from its steps: per-axis moves and deadman changes at
/// their times. Immutable while the cycle runs; the cycle reads it through `HILPlanView`.
public final class HILPlan: @unchecked Sendable {
    /// Segment kinds.
    @usableFromInline typealias Layout = HILPlanView
    public let count: Int
    @usableFromInline let storage: UnsafeMutablePointer<Double>

    public init(steps: [HILScenario.Step]) {
        var rows: [[Double]] = []
        for s in steps {
            switch s.action {
            case .move:
                guard let axis = s.axis, let duration = s.duration else { continue }
                if let to = s.to { rows.append([s.at, Layout.moveTo, Double(axis), to, duration, s.profile == .linear ? 0 : 1]) }
                if let by = s.by { rows.append([s.at, Layout.moveBy, Double(axis), by, duration, s.profile == .linear ? 0 : 1]) }
            case .deadman_release: rows.append([s.at, Layout.deadmanRelease, 0, 0, 0, 0])
            case .deadman_press: rows.append([s.at, Layout.deadmanPress, 0, 0, 0, 0])
            default: continue
            }
        }
        count = rows.count
        storage = .allocate(capacity: max(1, rows.count * Layout.stride))
        storage.initialize(repeating: 0, count: max(1, rows.count * Layout.stride))
        for (i, r) in rows.enumerated() { for j in 0..<Layout.stride { storage[i * Layout.stride + j] = r[j] } }
    }

    deinit { storage.deallocate() }

    /// The cycle's view; whoever takes it keeps the plan too.
    var view: HILPlanView { HILPlanView(storage: storage, count: count) }
}

/// The cycle's read-only view of a plan (plain pointers: reading costs no reference counting).
public struct HILPlanView: @unchecked Sendable {
    @usableFromInline let storage: UnsafeMutablePointer<Double>
    @usableFromInline let count: Int
    @usableFromInline init(storage: UnsafeMutablePointer<Double>, count: Int) { self.storage = storage; self.count = count }
    @inlinable func field(_ i: Int, _ j: Int) -> Double { storage[i * Self.stride + j] }

    /// Segment kinds. (Computed, not stored: a static stored property is initialised lazily,
    /// behind a lock; and on the view, not the class, whose metadata the cycle must not touch.)
    @inlinable static var moveTo: Double { 0 }
    @inlinable static var moveBy: Double { 1 }
    @inlinable static var deadmanRelease: Double { 2 }
    @inlinable static var deadmanPress: Double { 3 }
    /// Fields per segment: start (s), kind, axis, amount, duration (s), smooth (0/1).
    @inlinable static var stride: Int { 6 }
}

/// What the run records each cycle, in columns: time (s), then per axis the reference and the
/// measured position. Preallocated; the cycle writes through `HILLogWriter`.
public final class HILLog: @unchecked Sendable {
    public let capacity: Int
    public let axes: Int
    public var width: Int { 1 + 2 * axes }
    @usableFromInline let rows: UnsafeMutablePointer<Double>
    /// [kept, dropped]
    @usableFromInline let counters: UnsafeMutablePointer<Int>

    public init(capacity: Int, axes: Int) {
        self.capacity = max(1, capacity)
        self.axes = axes
        rows = .allocate(capacity: self.capacity * (1 + 2 * axes))
        rows.initialize(repeating: 0, count: self.capacity * (1 + 2 * axes))
        counters = .allocate(capacity: 2)
        counters.initialize(repeating: 0, count: 2)
    }

    deinit {
        rows.deallocate()
        counters.deallocate()
    }

    /// The cycle's view; whoever takes it keeps the log too.
    var writer: HILLogWriter { HILLogWriter(rows: rows, counters: counters, capacity: capacity, axes: axes) }

    /// The newest row and how many the cycle kept: for the safety channel's heartbeat, read on
    /// another thread (a row is complete before the count that includes it is stored).
    public var latest: (count: Int, time: Double, reference: JointVector)? {
        let n = SharedIndex.load(UnsafeMutableRawPointer(counters).assumingMemoryBound(to: Int64.self))
        guard n > 0, n <= Int64(capacity) else { return nil }
        let row = rows + Int(n - 1) * width
        var reference = JointVector(count: axes)
        for i in 0..<axes { reference[i] = row[1 + 2 * i] }
        return (Int(n), row[0], reference)
    }
    public var count: Int { counters[0] }
    public var dropped: Int { counters[1] }

    /// Column `c` of every kept row (allocates; not for the cycle).
    public func column(_ c: Int) -> [Double] { (0..<count).map { rows[$0 * width + c] } }
    public var times: [Double] { column(0) }
    public func reference(axis i: Int) -> [Double] { column(1 + 2 * i) }
    public func position(axis i: Int) -> [Double] { column(2 + 2 * i) }
}

public struct HILLogWriter: @unchecked Sendable {
    @usableFromInline let rows: UnsafeMutablePointer<Double>
    @usableFromInline let counters: UnsafeMutablePointer<Int>
    @usableFromInline let capacity: Int
    @usableFromInline let axes: Int
    @usableFromInline init(rows: UnsafeMutablePointer<Double>, counters: UnsafeMutablePointer<Int>, capacity: Int, axes: Int) {
        self.rows = rows; self.counters = counters; self.capacity = capacity; self.axes = axes
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable func append(time: Double, reference: JointVector, position: JointVector) {
        let kept = counters[0]
        guard kept < capacity else { counters[1] += 1; return }
        let width = 1 + 2 * axes
        let row = rows + kept * width
        row[0] = time
        for i in 0..<axes {
            row[1 + 2 * i] = reference[i]
            row[2 + 2 * i] = position[i]
        }
        // Published after the row: the safety channel's thread reads the newest row by it.
        SharedIndex.store(UnsafeMutableRawPointer(counters).assumingMemoryBound(to: Int64.self), Int64(kept + 1))
    }
}

/// The scenario's controller: follows the plan's per-axis moves from where each axis is, holds
/// while the deadman is released, and records reference and measured position every cycle.
/// Time counts from its first cycle, which the runner starts together with the step timeline.
public struct HILController: CycleController {
    let plan: HILPlanView
    let log: HILLogWriter
    /// Keep the views' memory alive as long as the controller (and any copy of it) is.
    public let planOwner: HILPlan
    public let logOwner: HILLog
    /// (nJoints) the reference commanded last.
    public private(set) var reference: JointVector
    @usableFromInline var from: JointVector
    @usableFromInline var goal: JointVector
    @usableFromInline var segmentStart: JointVector
    @usableFromInline var segmentDuration: JointVector
    @usableFromInline var smooth: JointVector
    @usableFromInline var cursor = 0
    @usableFromInline var origin: Nanoseconds = -1
    @usableFromInline var deadmanReleased = false
    @usableFromInline var seeded = false

    public init(jointCount: Int, plan: HILPlan, log: HILLog) {
        self.plan = plan.view
        self.log = log.writer
        planOwner = plan
        logOwner = log
        reference = JointVector(count: jointCount)
        from = reference
        goal = reference
        segmentStart = reference
        segmentDuration = JointVector(count: jointCount, repeating: 0)
        smooth = reference
    }

    public mutating func reset(to state: JointState) {
        // Enabling holds where the axes are; a move in progress continues from there.
        reference = state.position
        from = state.position
        for i in 0..<reference.count where segmentDuration[i] <= 0 { goal[i] = state.position[i] }
        seeded = true
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func update(state: JointState, tick: CycleTick, command: inout JointCommand) {
        if origin < 0 { origin = tick.wake }
        if !seeded {
            // Before the first enable the reference follows the measurement, so that the first
            // enabled cycle holds rather than jumps.
            reference = state.position
            from = state.position
            goal = state.position
        }
        let t = Double(tick.wake - origin) * 1e-9
        while cursor < plan.count, plan.field(cursor, 0) <= t {
            let kind = plan.field(cursor, 1)
            if kind == HILPlanView.deadmanRelease {
                deadmanReleased = true
                // The motion in progress is abandoned where it stands.
                for i in 0..<reference.count { segmentDuration[i] = 0; goal[i] = reference[i] }
            } else if kind == HILPlanView.deadmanPress {
                deadmanReleased = false
            } else if !deadmanReleased {
                let axis = Int(plan.field(cursor, 2))
                if axis >= 0, axis < reference.count {
                    from[axis] = reference[axis]
                    goal[axis] = kind == HILPlanView.moveBy ? reference[axis] + plan.field(cursor, 3) : plan.field(cursor, 3)
                    segmentStart[axis] = plan.field(cursor, 0)
                    segmentDuration[axis] = plan.field(cursor, 4)
                    smooth[axis] = plan.field(cursor, 5)
                }
            }
            cursor += 1
        }
        if !deadmanReleased {
            for i in 0..<reference.count where segmentDuration[i] > 0 {
                var s = (t - segmentStart[i]) / segmentDuration[i]
                s = s < 0 ? 0 : (s > 1 ? 1 : s)
                // Minimum jerk: zero velocity and acceleration at both ends.
                let p = smooth[i] > 0 ? s * s * s * (10 - 15 * s + 6 * s * s) : s
                reference[i] = from[i] + (goal[i] - from[i]) * p
                if s >= 1 { segmentDuration[i] = 0 }
            }
        }
        command.mode = .position
        command.enable = true
        for i in 0..<reference.count {
            command.position[i] = reference[i]
            command.velocity[i] = 0
        }
        log.append(time: t, reference: reference, position: state.position)
    }
}
