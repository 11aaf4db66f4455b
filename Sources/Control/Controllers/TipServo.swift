import Core

/// Running figures of how well the tip followed its target (scalars only: cycle-safe).
public struct TrackingStats: Sendable, Equatable {
    public var samples: Int64 = 0
    public var sumSquared: Double = 0
    public var max: Double = 0
    public var last: Double = 0
    public var rms: Double { samples > 0 ? (sumSquared / Double(samples)).squareRoot() : 0 }

    @inlinable mutating func add(_ e: Double) {
        samples += 1
        sumSquared += e * e
        if e > max { max = e }
        last = e
    }
}

/// Servoes the catheter tip along a `TipPath`: every cycle, forward kinematics of the measured
/// joints, the error to the path's target, and one damped-least-squares step bounded by the
/// joints' speed limits and kept inside their travel limits. The command is a position target with the step's velocity as
/// feed-forward.
public struct TipServo: CycleController {
    public let model: CatheterModel
    public let path: TipPath
    public var dls: DLSOptions
    /// Where the cycle writes tip samples for plots (the log's owner keeps it alive).
    public let log: TipLogWriter

    /// Tip position where the path started (mm).
    public private(set) var start: Vec3 = .zero
    /// Time the path started (ns), at the first cycle after `reset`.
    public private(set) var startTime: Nanoseconds = 0
    public private(set) var stats = TrackingStats()
    @usableFromInline var needsStart = true

    public init(model: CatheterModel, path: TipPath, dls: DLSOptions = DLSOptions(), log: TipLogWriter) {
        self.model = model
        self.path = path
        self.dls = dls
        self.log = log
    }

    public mutating func reset(to state: JointState) {
        needsStart = true
        stats = TrackingStats()
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func update(state: JointState, tick: CycleTick, command: inout JointCommand) {
        let q = state.position
        if needsStart, tick.readFault != nil {
            // No measured state yet (a link's first cycle): hold until there is one to start from.
            command.setHold(enable: true)
            return
        }
        let tip = model.calcTipPose(q).translation
        if needsStart {
            needsStart = false
            start = tip
            startTime = tick.wake
        }
        let t = Double(tick.wake - startTime) * 1e-9
        // Aim at where the path will be at the end of this cycle, not where it was at its start.
        let dt = Double(tick.period) * 1e-9
        let axes = model.basePose.rotation
        let target = path.target(at: t + dt, start: start, axes: axes)
        let now = path.target(at: t, start: start, axes: axes)
        stats.add((now - tip).length)
        log.offer(TipSample(time: t, target: now, tip: tip))

        // Speed limits as the step's trust region: the whole step shrinks together, so the tip
        // still heads for the target when one joint is at its speed limit.
        var options = dls
        options.maxStep = model.maxVelocity
        for i in 0..<q.count { options.maxStep[i] *= dt }
        var next = model.dlsStep(q, target: target, options: options)
        for i in 0..<q.count {
            let step = min(max(next[i] - q[i], -options.maxStep[i]), options.maxStep[i])
            next[i] = q[i] + step
            command.velocity[i] = dt > 0 ? step / dt : 0
        }
        command.position = model.clampToLimits(next)
        command.mode = .position
        command.enable = true
    }
}
