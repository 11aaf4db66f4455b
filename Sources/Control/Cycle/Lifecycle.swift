import Core

/// The lifecycle of the cycle and its hardware (as ros2_control's hardware components):
///
///     unconfigured --configure--> inactive --activate--> active
///          ^                         |  ^                  |
///          +-------cleanup-----------+  +---deactivate-----+
///     any state --finalize--> finalized (terminal)
///
/// Only `active` may command motion: in every other state the cycle writes a hold with the
/// power stage off, whatever the controller asked for.
public enum LifecycleState: UInt8, Sendable, CustomStringConvertible {
    case unconfigured = 0
    case inactive = 1
    case active = 2
    case finalized = 3

    public var description: String {
        switch self {
        case .unconfigured: "unconfigured"
        case .inactive: "inactive"
        case .active: "active"
        case .finalized: "finalized"
        }
    }

    /// True only in the one state that may move the robot.
    @inlinable public var mayCommandMotion: Bool { self == .active }
}

/// A lifecycle transition that was refused, and why.
public enum LifecycleError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The transition does not start from the current state.
    case invalidTransition(from: LifecycleState, transition: String)
    /// The hardware refused the transition; the state is unchanged.
    case hardware(transition: String, HardwareError)
    /// A drive fault is latched: the robot stays inactive until an operator acknowledged it
    /// (`CycleRunner.acknowledgeFaults`) and the drive cleared it.
    case driveFaultLatched(DriveFaultReport)

    public var description: String {
        switch self {
        case .invalidTransition(let from, let t): "cannot \(t) from state \(from)"
        case .hardware(let t, let e): "hardware refused to \(t): \(e)"
        case .driveFaultLatched(let f): "cannot activate: drive fault latched (\(f)); remove its cause, then acknowledge it"
        }
    }
}

