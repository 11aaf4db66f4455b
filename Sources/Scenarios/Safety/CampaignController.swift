import Control
import Core

/// A fault in what the control cycle commands (a control-stack bug, a wrong target).
public enum CommandFault: Sendable, Equatable {
    case none
    /// Joint `axis` commanded to `value` (outside its safe travel).
    case beyond(axis: Int, value: Double)
    /// Joint `axis` driven off at `rate` (units/s) on top of the servo's command.
    case ramp(axis: Int, rate: Double)
    /// The tip steered toward `target` (mm) at the joints' full speed.
    case steer(target: Vec3)
}

/// Shared between the campaign and the controller: which command fault is in force.
public final class CommandFaultSwitch {
    public var fault: CommandFault = .none
    public init() {}
}

/// The tip servo of the demo, with a switch for command faults.
public struct CampaignController: CycleController {
    public var servo: TipServo
    public let faults: CommandFaultSwitch
    var rampOffset = 0.0
    var steerReference: JointVector?
    var steerVelocity = JointVector(count: 0)

    public init(servo: TipServo, faults: CommandFaultSwitch) {
        self.servo = servo
        self.faults = faults
    }

    public mutating func reset(to state: JointState) {
        servo.reset(to: state)
        rampOffset = 0
        steerReference = nil
    }

    /// The acceleration the steering keeps to (units/s²): 80 % of what the drives can do, as a
    /// sane controller with a wrong target would.
    static func steerAcceleration(_ model: CatheterModel, _ i: Int) -> Double { 0.8 * 5 * model.maxVelocity[i] }

    public mutating func update(state: JointState, tick: CycleTick, command: inout JointCommand) {
        if !state.status.contains(.enabled) {
            // No power (the monitor's stop, or not yet acknowledged): ask for it and hold; the
            // path starts afresh from wherever the robot is once the drives are on.
            servo.reset(to: state)
            command.setHold(enable: true)
            return
        }
        servo.update(state: state, tick: tick, command: &command)
        let dt = Double(tick.period) * 1e-9
        switch faults.fault {
        case .none:
            break
        case .beyond(let axis, let value):
            command.position[axis] = value
        case .ramp(let axis, let rate):
            rampOffset += rate * dt
            command.position[axis] += rampOffset
            command.velocity[axis] += rate
        case .steer(let target):
            let model = servo.model
            if steerReference == nil {
                steerReference = servo.reference
                steerVelocity = JointVector(count: model.jointCount)
                for i in 0..<model.jointCount { steerVelocity[i] = command.velocity[i] }
            }
            var q = steerReference!
            var options = servo.dls
            options.maxStep = model.maxVelocity
            for i in 0..<q.count { options.maxStep[i] *= dt }
            let next = model.dlsStep(q, target: target, options: options)
            for i in 0..<q.count {
                let want = dt > 0 ? min(max(next[i] - q[i], -options.maxStep[i]), options.maxStep[i]) / dt : 0
                let dv = Self.steerAcceleration(model, i) * dt
                steerVelocity[i] = min(max(want, steerVelocity[i] - dv), steerVelocity[i] + dv)
                q[i] += steerVelocity[i] * dt
                command.velocity[i] = steerVelocity[i]
            }
            q = model.clampToLimits(q)
            steerReference = q
            command.position = q
            command.mode = .position
            command.enable = true
        }
    }
}
