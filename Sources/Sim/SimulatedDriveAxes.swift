import Core

/// How simulated drives move.
public enum DriveDynamics: Sendable {
    /// Each enabled axis reaches its target within the step, bounded only by its travel limits
    /// and maximum speed.
    case ideal
    /// `EmulatedDriveAxis` per axis: motor, gearbox with backlash, encoder, the drive's own loop,
    /// enable watchdog, fault injection. nil models: `DriveAxisModel.catheterAxis` for each.
    case emulated([DriveAxisModel]?)
}

/// The drives' side of a simulated robot, in encoder counts. Noncopyable: it owns its buffers.
///
/// Buffers are (nAxes) each; targets are written by whoever decodes the host's command (the
/// in-process image, a DriveLink device, an EtherCAT slave), feedback is read by whoever encodes
/// the state. The same axes serve every simulated robot, so all of them can run either dynamics.
public struct SimulatedDriveAxes: ~Copyable {
    public let count: Int
    /// (nAxes) counts per mm or rad.
    public let countsPerUnit: JointVector
    /// (nAxes) travel limits, counts.
    public let lowerCounts: UnsafeMutablePointer<Int32>
    public let upperCounts: UnsafeMutablePointer<Int32>
    /// (nAxes) largest speed, counts/s.
    public let maxSpeedCounts: UnsafeMutablePointer<Double>
    /// (nAxes) encoder position, counts.
    public let position: UnsafeMutablePointer<Int32>
    /// (nAxes) measured velocity over the last step, counts/s.
    public let velocity: UnsafeMutablePointer<Int32>
    /// (nAxes) position targets, counts.
    public let targetPosition: UnsafeMutablePointer<Int32>
    /// (nAxes) velocity targets, counts/s.
    public let targetVelocity: UnsafeMutablePointer<Int32>
    /// (nAxes) sub-count remainder of each axis's motion, so slow motion is not lost to rounding.
    let residual: UnsafeMutablePointer<Double>
    /// (nAxes) the emulated drives, when the dynamics are emulated.
    let emulated: UnsafeMutablePointer<EmulatedDriveAxis>?

    /// Axes at `start` (joint units; clamped into the limits; nil starts at 0 or the nearest limit).
    public init(axes: [AxisSpec], start: JointVector?, dynamics: DriveDynamics = .ideal) {
        precondition(!axes.isEmpty && axes.count <= JointVector.capacity, "1…\(JointVector.capacity) axes")
        let n = axes.count
        count = n
        countsPerUnit = JointVector(axes.map(\.countsPerUnit))
        func buffer<T>(_ v: T) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: n)
            p.initialize(repeating: v, count: n)
            return p
        }
        lowerCounts = buffer(0); upperCounts = buffer(0); maxSpeedCounts = buffer(0)
        position = buffer(0); velocity = buffer(0); targetPosition = buffer(0); targetVelocity = buffer(0); residual = buffer(0)
        for (i, a) in axes.enumerated() {
            lowerCounts[i] = Int32((a.lower * a.countsPerUnit).rounded(.up))
            upperCounts[i] = Int32((a.upper * a.countsPerUnit).rounded(.down))
            maxSpeedCounts[i] = a.maxVelocity * a.countsPerUnit
            let q = start.map { $0[i] } ?? min(max(0, a.lower), a.upper)
            position[i] = min(max(Int32((q * a.countsPerUnit).rounded()), lowerCounts[i]), upperCounts[i])
            targetPosition[i] = position[i]
        }
        if case .emulated(let models) = dynamics {
            let e = UnsafeMutablePointer<EmulatedDriveAxis>.allocate(capacity: n)
            for (i, a) in axes.enumerated() {
                let m = models.map { $0[min(i, $0.count - 1)] } ?? .catheterAxis(unit: a.unit, maxVelocity: a.maxVelocity)
                (e + i).initialize(to: EmulatedDriveAxis(model: m, position: Double(position[i]) / a.countsPerUnit))
            }
            emulated = e
        } else {
            emulated = nil
        }
    }

    deinit {
        for p in [lowerCounts, upperCounts, position, velocity, targetPosition, targetVelocity] { p.deallocate() }
        maxSpeedCounts.deallocate()
        residual.deallocate()
        if let emulated {
            emulated.deinitialize(count: count)
            emulated.deallocate()
        }
    }

    /// Axis `i`'s emulated drive (nil for ideal dynamics), for tests and reports.
    public func emulatedAxis(_ i: Int) -> EmulatedDriveAxis? { emulated.map { $0[i] } }

    /// Injects (or clears, with []) faults on axis `i`'s emulated drive.
    public func inject(_ faults: DriveFaultInjection, axis i: Int) { emulated?[i].injected = faults }

    /// Wires every emulated drive's safety line (safe torque off with its own `watchdog`, s).
    public func armSafetyLine(watchdog: Double) {
        guard let emulated else { return }
        for i in 0..<count { emulated[i].armSafetyLine(watchdog: watchdog) }
    }

    /// The monitor's refresh of axis `i`'s safety line (see `EmulatedDriveAxis.refreshSafetyLine`).
    @_noAllocation @_noLocks
    public func refreshSafetyLine(axis i: Int, permit: Bool, quickStop: Bool) {
        emulated?[i].refreshSafetyLine(permit: permit, quickStop: quickStop)
    }

    /// What axis `i`'s drive itself reads, for its own channel to the safety monitor (a second
    /// encoder path): motor-side and load-side position, speed, current (joint units, A), and
    /// whether its power stage is on and a fault is latched. Ideal axes report their encoder.
    @_noAllocation @_noLocks
    public func safetySample(axis i: Int) -> (encoder: Double, load: Double, velocity: Double, current: Double, powered: Bool, faulted: Bool) {
        guard let emulated else {
            let p = Double(position[i]) / countsPerUnit[i]
            return (p, p, Double(velocity[i]) / countsPerUnit[i], 0, true, false)
        }
        let a = emulated[i]
        return (a.measuredPosition, a.load, a.measuredVelocity, a.measuredCurrent, a.enabled, a.faulted)
    }

    /// Clears latched drive faults (on an operator's acknowledge).
    public func resetFaults() {
        guard let emulated else { return }
        for i in 0..<count { emulated[i].resetFault() }
    }

    /// The fault axis `i`'s drive latched (`.none` when it has none, or without dynamics).
    @_noAllocation @_noLocks
    public func fault(_ i: Int) -> DriveFault {
        guard let emulated else { return .none }
        return emulated[i].fault
    }

    /// True when axis `i`'s drive has latched a fault.
    @_noAllocation @_noLocks
    public func faulted(_ i: Int) -> Bool {
        guard let emulated else { return false }
        return emulated[i].faulted
    }

    /// True when axis `i` sits at a travel limit.
    @_noAllocation @_noLocks
    @inlinable public func atLimit(_ i: Int) -> Bool {
        let p = position[i]
        if p <= lowerCounts[i] { return true }
        return p >= upperCounts[i]
    }

    /// The encoder positions in joint units (allocates nothing; for reports and tests).
    public var positions: JointVector {
        @_noAllocation @_noLocks get {
            var q = JointVector(count: count)
            for i in 0..<count { q[i] = Double(position[i]) / countsPerUnit[i] }
            return q
        }
    }

    /// Moves every axis for `dt` seconds toward its target.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    /// `hostPresent` false moves the emulated drives without the host's enable refresh (the host
    /// sent nothing this step), so their own enable watchdog runs.
    @_noAllocation @_noLocks
    public func step(mode: JointCommand.Mode, enabled: Bool, dt: Double, hostPresent: Bool = true) {
        if let emulated {
            stepEmulated(emulated, mode: mode, enabled: enabled, dt: dt, hostPresent: hostPresent)
            return
        }
        for i in 0..<count {
            var moved = 0.0
            if enabled, dt > 0 {
                let maxStep = maxSpeedCounts[i] * dt
                var want = 0.0
                switch mode {
                case .hold: want = 0
                case .position: want = Double(targetPosition[i]) - Double(position[i])
                case .velocity: want = Double(targetVelocity[i]) * dt
                }
                moved = min(max(want + residual[i], -maxStep), maxStep)
            }
            let whole = Double(Int64(moved))  // toward zero; |moved| is bounded by one step of travel
            residual[i] = enabled ? moved - whole : 0
            let before = position[i]
            let after = min(max(Int64(before) + Int64(whole), Int64(lowerCounts[i])), Int64(upperCounts[i]))
            position[i] = Int32(after)
            velocity[i] = dt > 0 ? Int32(saturating: Double(after - Int64(before)) / dt) : 0
        }
    }
}

extension SimulatedDriveAxes {
    /// The emulated drives follow the decoded targets with their own loops.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    func stepEmulated(_ axes: UnsafeMutablePointer<EmulatedDriveAxis>, mode: JointCommand.Mode, enabled: Bool, dt: Double,
                      hostPresent: Bool = true) {
        for i in 0..<count {
            if hostPresent { axes[i].setEnable(enabled) }
            let scale = countsPerUnit[i]
            let measured = axes[i].measuredPosition
            var target = measured
            var feedForward = 0.0
            switch mode {
            case .hold: break
            case .position:
                target = Double(targetPosition[i]) / scale
                feedForward = Double(targetVelocity[i]) / scale
            case .velocity:
                feedForward = Double(targetVelocity[i]) / scale
                target = measured + feedForward * dt
            }
            if dt > 0 { axes[i].step(target: target, velocityFeedForward: feedForward, dt: dt) }
            position[i] = Int32(roundingSaturating: axes[i].measuredPosition * scale)
            velocity[i] = Int32(roundingSaturating: axes[i].measuredVelocity * scale)
        }
    }
}
