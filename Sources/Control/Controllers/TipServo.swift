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

/// Servoes the catheter tip along a `TipPath`: every cycle one damped-least-squares step from
/// the joint reference toward the path's next target, bounded by the joints' speed limits and
/// kept inside their travel limits, sent as position targets with velocity feed-forward.
///
/// The step starts from the reference it commanded last, not from the measured joints: the
/// drives close their own position loops (CSP), and feeding measurements that are a cycle or
/// two old (a link's round trip) plus the drives' lag back into a full step per cycle turns the
/// loop into an oscillator. The measured tip is what the figures and the log report. The command is a position target with the step's velocity as
/// feed-forward.
public struct TipServo: CycleController {
    public let model: CatheterModel
    public let path: TipPath
    public var dls: DLSOptions
    /// Where the cycle writes tip samples for plots.
    let log: TipLogWriter
    /// Keeps `log`'s memory alive as long as the servo (and any copy of it) is.
    public let logOwner: TipLog

    /// Tip position where the path started (mm).
    public private(set) var start: Vec3 = .zero
    /// Time the path started (ns), at the first cycle after `reset`.
    public private(set) var startTime: Nanoseconds = 0
    public private(set) var stats = TrackingStats()
    /// (nJoints) the joint reference commanded last.
    public private(set) var reference = JointVector(count: 0)
    @usableFromInline var needsStart = true

    public init(model: CatheterModel, path: TipPath, dls: DLSOptions = DLSOptions(), log: TipLog) {
        self.model = model
        self.path = path
        self.dls = dls
        self.log = log.writer
        logOwner = log
    }

    public mutating func reset(to state: JointState) {
        needsStart = true
        stats = TrackingStats()
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func update(state: JointState, tick: CycleTick, command: inout JointCommand) {
        let q = state.position
        if !q.isFinite {
            // A NaN measurement must never become a target (the limit clamp would turn it into
            // a joint limit): hold where the drives are, and start afresh once it is finite.
            command.setHold(enable: true)
            needsStart = true
            return
        }
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
            reference = q
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
        let base = reference
        var next = model.dlsStep(base, target: target, options: options)
        for i in 0..<q.count {
            let step = min(max(next[i] - base[i], -options.maxStep[i]), options.maxStep[i])
            next[i] = base[i] + step
            command.velocity[i] = dt > 0 ? step / dt : 0
        }
        reference = model.clampToLimits(next)
        command.position = reference
        command.mode = .position
        command.enable = true
    }
}
