import Core

/// What the robot is doing, as the supervisor decides it.
public enum ControlMode: UInt8, Sendable, Equatable, CustomStringConvertible {
    /// Power off; nothing moves.
    case idle = 0
    /// Power on, holding still (after a controlled stop if it was moving).
    case hold = 1
    /// The operator drives each joint's velocity.
    case jog = 2
    /// The tip is servoed to a target point or along a path from the fused estimate.
    case tipServo = 3

    public var description: String {
        switch self {
        case .idle: "idle"
        case .hold: "hold"
        case .jog: "jog"
        case .tipServo: "tip servo"
        }
    }

    var moves: Bool { self == .jog || self == .tipServo }
}

/// Why the supervisor left a motion mode by itself.
public enum HoldReason: UInt8, Sendable, Equatable {
    case none = 0
    /// The operator asked for it.
    case requested = 1
    /// The deadman was released.
    case deadmanReleased = 2
    /// The tip estimate was lost in tip servo.
    case estimateLost = 3
    /// A stop came from outside (the safety monitor, a stop button, a link fault).
    case stop = 4
    /// The demand was not finite.
    case invalidDemand = 5
}

/// A mode change the supervisor refused, and why.
public enum ModeRequestError: Error, Equatable, Sendable, CustomStringConvertible {
    case notFrom(ControlMode, to: ControlMode)
    case deadmanNotHeld
    case estimateLost
    case stopActive

    public var description: String {
        switch self {
        case .notFrom(let a, let b): "cannot go from \(a) to \(b) (motion modes are entered from hold)"
        case .deadmanNotHeld: "the deadman is not held"
        case .estimateLost: "the tip estimate is lost"
        case .stopActive: "a stop is active"
        }
    }
}

/// What the supervisor needs to know each cycle.
public struct SupervisorInputs: Sendable {
    public var deadman: Bool
    public var estimate: EstimateHealth
    /// A stop from outside the control stack (safety monitor, stop button): hold, then idle.
    public var stop: Bool
    @_noAllocation @_noLocks
    public init(deadman: Bool, estimate: EstimateHealth = .imageFresh, stop: Bool = false) {
        self.deadman = deadman; self.estimate = estimate; self.stop = stop
    }
}

/// The mode supervisor: explicit transitions between idle, hold, jog and tip servo, automatic
/// drops to hold (deadman released, estimate lost, a stop, a non-finite demand), and the motion
/// limiter under every mode, so that whatever the controllers ask, the command is rate- and
/// acceleration-limited and a stop is always a controlled one.
///
/// Transitions: idle → hold (power on); hold → jog or tip servo (deadman held; for tip servo an
/// estimate that is not lost); jog ↔ tip servo directly (the limiter blends them); any → hold;
/// any → idle (power comes off once the joints are at rest). Runs in the cycle: no allocation.
public struct Supervisor: Sendable {
    public private(set) var mode = ControlMode.idle
    public private(set) var reason = HoldReason.none
    public private(set) var limiter: MotionLimiter
    /// Idle was asked for while moving: hold until at rest, then power off.
    public private(set) var idlePending = false

    public init(limiter: MotionLimiter) {
        self.limiter = limiter
    }

    /// Asks for `next`. Throws, and changes nothing, when the transition is not allowed now.
    /// Outside the cycle; inside it, `attempt` says the same without throwing.
    public mutating func request(_ next: ControlMode, _ inputs: SupervisorInputs, measured: JointVector) throws(ModeRequestError) {
        if case .failure(let refusal) = attempt(next, inputs, measured: measured) { throw refusal }
    }

    /// Asks for `next`; a refusal changes nothing and is returned, not thrown. For the cycle: a
    /// thrown error passes through the runtime's throw hook, which may box it on the heap (a
    /// test runner that records where errors were thrown installs one), so a refusal in the
    /// cycle would allocate.
    @_noAllocation @_noLocks
    public mutating func attempt(_ next: ControlMode, _ inputs: SupervisorInputs, measured: JointVector) -> Result<Void, ModeRequestError> {
        if next == mode { return .success(()) }
        switch next {
        case .idle:
            if limiter.isAtRest { mode = .idle } else { mode = .hold; idlePending = true }
            reason = .requested
            return .success(())
        case .hold:
            if mode == .idle { limiter.reset(to: measured) }
            mode = .hold
            reason = .requested
            idlePending = false
            return .success(())
        case .jog, .tipServo:
            if inputs.stop { return .failure(.stopActive) }
            guard mode != .idle else { return .failure(.notFrom(mode, to: next)) }
            guard inputs.deadman else { return .failure(.deadmanNotHeld) }
            if next == .tipServo, inputs.estimate == .lost { return .failure(.estimateLost) }
            mode = next
            reason = .none
            idlePending = false
            return .success(())
        }
    }

    /// A category-0 stop (IEC 60204-1): power off at once, without the controlled stop: idle now,
    /// the reference where the joints stand (`measured`), so the next command has enable 0 and
    /// asks for no motion when power returns. Leaving it is the way out of idle: hold, once the
    /// stop's cause is acknowledged.
    @_noAllocation @_noLocks
    public mutating func cutPower(measured: JointVector) {
        limiter.reset(to: measured)
        mode = .idle
        reason = .stop
        idlePending = false
    }

    /// One cycle: applies the automatic transitions, then writes the limited command for the
    /// mode: jog follows `jogVelocity`, tip servo `servoTarget` (joint positions), hold brakes.
    @_noAllocation @_noLocks
    public mutating func update(_ inputs: SupervisorInputs, jogVelocity: JointVector, servoTarget: JointVector, dt: Double,
                                command: inout JointCommand) {
        if inputs.stop, mode != .idle {
            if mode != .hold || reason != .stop { reason = .stop }
            mode = .hold
            idlePending = true
        }
        if mode.moves, !inputs.deadman { drop(.deadmanReleased) }
        if mode == .tipServo, inputs.estimate == .lost { drop(.estimateLost) }
        if mode == .jog, !Self.finite(jogVelocity) { drop(.invalidDemand) }
        if mode == .tipServo, !Self.finite(servoTarget) { drop(.invalidDemand) }
        switch mode {
        case .idle:
            command.setHold(enable: false)
            command.position = limiter.position
            return
        case .hold:
            limiter.stop(dt: dt)
            if idlePending, limiter.isAtRest {
                mode = .idle
                idlePending = false
                command.setHold(enable: false)
                command.position = limiter.position
                return
            }
        case .jog:
            limiter.step(velocity: jogVelocity, dt: dt)
        case .tipServo:
            limiter.step(toward: servoTarget, dt: dt)
        }
        command.mode = .position
        command.enable = true
        command.position = limiter.position
        command.velocity = limiter.velocity
    }

    @_noAllocation @_noLocks
    mutating func drop(_ why: HoldReason) {
        mode = .hold
        reason = why
    }

    @_noAllocation @_noLocks
    static func finite(_ v: JointVector) -> Bool {
        for j in 0..<v.count where !v[j].isFinite { return false }
        return true
    }
}
