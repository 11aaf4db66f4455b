import Core

/// The update stage of the cycle: from the measured joint state to a joint command.
/// A controller that owns buffers (an estimator's history, a route) is noncopyable: the runner
/// holds the one value and lends it out.
public protocol CycleController: ~Copyable {
    /// Called outside the cycle when the lifecycle becomes active, with the latest state, so
    /// the controller starts from where the robot is (a hold, not a jump).
    mutating func reset(to state: JointState)

    /// Computes this cycle's command from `state`. `tick.period` is the measured period.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    mutating func update(state: JointState, tick: CycleTick, command: inout JointCommand)
}
