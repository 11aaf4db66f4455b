import Core

/// The image-guided cycle as a `CycleController`: each cycle it predicts the tip from the
/// encoders, fuses every image measurement that arrived since (at its acquisition time, through
/// the estimator's history), lets the path servo compute its demand from the fused estimate, and
/// commands through the supervisor (rate and acceleration limits, hold on a lost estimate or a
/// released deadman). Measurements come in through a `MeasurementMailbox` from the imaging
/// thread; nothing here allocates or locks. It owns the estimator and the servo (and with them
/// their buffers), so it cannot be copied: the cycle runner holds the one value.
public struct ImageGuidedController: ~Copyable, CycleController {
    public private(set) var estimator: TipEstimator
    public private(set) var servo: PathServo
    public private(set) var supervisor: Supervisor
    let measurements: MeasurementReceiver
    /// The operator's deadman and an external stop, as the console and the monitor report them.
    public var deadman = true
    public var stop = false
    /// Resume the tip servo by itself when the estimate comes back (a demo's operator); off, the
    /// supervisor stays in hold until asked.
    public var autoResume = true
    public private(set) var lastEstimate = TipEstimate()
    public private(set) var fusedThisRun = 0
    /// Measurements taken from the mailbox (fused or refused), and the acquisition time of the
    /// newest: which cycle each arrived in, for the recorder (a replay reproduces the timing).
    public private(set) var receivedThisRun = 0
    public private(set) var lastReceivedAcquiredAt: Nanoseconds = 0
    /// (nJoints) joint velocities the supervisor follows in jog (an operator's jog, already
    /// mapped and clamped); ignored in every other mode.
    public var jogVelocity: JointVector
    let idle: JointVector

    public init(estimator: consuming TipEstimator, servo: consuming PathServo, limiter: MotionLimiter,
                measurements: consuming MeasurementReceiver) {
        self.estimator = estimator
        self.servo = servo
        supervisor = Supervisor(limiter: limiter)
        self.measurements = measurements
        idle = JointVector(count: limiter.position.count)
        jogVelocity = idle
    }

    public mutating func reset(to state: JointState) {
        servo.reset(to: state.position)
        let inputs = SupervisorInputs(deadman: deadman, estimate: .imageFresh, stop: stop)
        _ = supervisor.attempt(.hold, inputs, measured: state.position)
        _ = supervisor.attempt(.tipServo, inputs, measured: state.position)
    }

    @_noAllocation @_noLocks
    public mutating func update(state: JointState, tick: CycleTick, command: inout JointCommand) {
        let now = tick.wake
        lastEstimate = estimator.predict(joints: state.position, time: now)
        var fused = false
        while let m = measurements.receive() {
            receivedThisRun += 1
            lastReceivedAcquiredAt = m.acquiredAt
            if case .none = estimator.fuse(m) { fusedThisRun += 1 }
            fused = true
        }
        if fused { lastEstimate = estimator.estimate(now: now) }
        let dt = Double(tick.period) * 1e-9
        servo.update(estimate: lastEstimate, correction: estimator.currentCorrection(), pushForce: state.insertionForce,
                     measuredInsertion: state.position.count > 0 ? state.position[0] : nil, dt: dt, command: &command)
        let inputs = SupervisorInputs(deadman: deadman, estimate: lastEstimate.health, stop: stop)
        if autoResume, deadman, case .hold = supervisor.mode, ImageGuidedController.resumable(supervisor.reason, lastEstimate.health) {
            // Refused under a stop that began this cycle (the supervisor then holds for it).
            _ = supervisor.attempt(.tipServo, inputs, measured: state.position)
        }
        supervisor.update(inputs, jogVelocity: jogVelocity, servoTarget: command.position, dt: dt, command: &command)
        // Out of tip servo the servo's reference stays where the command is: integrated on
        // meanwhile (a hold, a stop the drives make, a jog), it would lie ahead of the catheter,
        // and the servo would resume from there.
        if case .tipServo = supervisor.mode {} else { servo.anchor(at: command.position) }
    }

    /// An operator's mode request (hold, idle, tip servo), checked by the supervisor against the
    /// controller's own deadman, stop and estimate. Outside the cycle; inside it, `attemptMode`.
    public mutating func requestMode(_ mode: ControlMode, measured: JointVector) throws(ModeRequestError) {
        if case .failure(let refusal) = attemptMode(mode, measured: measured) { throw refusal }
    }

    /// `requestMode` with the refusal returned instead of thrown (`Supervisor.attempt`): the live
    /// runtime applies intents from inside the cycle, where a refusal must not allocate.
    @_noAllocation @_noLocks
    public mutating func attemptMode(_ mode: ControlMode, measured: JointVector) -> Result<Void, ModeRequestError> {
        let inputs = SupervisorInputs(deadman: deadman, estimate: lastEstimate.health, stop: stop)
        return supervisor.attempt(mode, inputs, measured: measured)
    }

    /// A category-0 stop: the supervisor idle at once, power off from this cycle's command on
    /// (`Supervisor.cutPower`). Cycle-safe.
    @_noAllocation @_noLocks
    public mutating func cutPower(measured: JointVector) {
        supervisor.cutPower(measured: measured)
    }

    /// Starts the path servo again from `q` (its joint reference, its progress along the route):
    /// after the operator jogged, the servo's own reference is where it left off, and the limiter
    /// would carry the joints back there. Cycle-safe.
    @_noAllocation @_noLocks
    public mutating func restartServo(from q: JointVector) {
        servo.reset(to: q)
    }

    /// A hold the controller may leave by itself: not one a stop caused, and with an estimate.
    @_noAllocation @_noLocks
    static func resumable(_ reason: HoldReason, _ health: EstimateHealth) -> Bool {
        if case .stop = reason { return false }
        if case .lost = health { return false }
        return true
    }
}
