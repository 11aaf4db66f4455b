/// Status bits a drive reports with every state.
public struct DriveStatus: OptionSet, Sendable, Equatable {
    public let rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Power stage on: the axis holds or follows its command.
    @inlinable public static var enabled: DriveStatus { DriveStatus(rawValue: 1 << 0) }
    /// The drive latched a fault and will not move until it is reset.
    @inlinable public static var fault: DriveStatus { DriveStatus(rawValue: 1 << 1) }
    /// The axis sits at a limit switch or software limit.
    @inlinable public static var atLimit: DriveStatus { DriveStatus(rawValue: 1 << 2) }
    /// The drive's enable watchdog expired: it disabled itself.
    @inlinable public static var watchdogExpired: DriveStatus { DriveStatus(rawValue: 1 << 3) }
}

/// What the robot's axes measured in one cycle.
public struct JointState: Equatable, Sendable {
    /// (nJoints) mm or rad — measured joint positions.
    public var position: JointVector
    /// (nJoints) mm/s or rad/s — measured joint velocities.
    public var velocity: JointVector
    /// (nJoints) A — motor currents.
    public var current: JointVector
    /// N — the insertion force sensor, where the robot has one (0 otherwise).
    public var insertionForce: Double
    /// Drive status, or-ed over all axes.
    public var status: DriveStatus
    /// When the drives sampled this state (monotonic ns).
    public var sampledAt: Nanoseconds

    @inlinable public init(jointCount: Int) {
        position = JointVector(count: jointCount)
        velocity = JointVector(count: jointCount)
        current = JointVector(count: jointCount)
        insertionForce = 0
        status = []
        sampledAt = 0
    }
}

/// What the control cycle asks the axes to do.
public struct JointCommand: Equatable, Sendable {
    public enum Mode: UInt8, Sendable {
        /// Hold position with the power stage on; the targets are ignored.
        case hold = 0
        /// Follow `position` (cyclic synchronous position).
        case position = 1
        /// Follow `velocity` (cyclic synchronous velocity).
        case velocity = 2
    }

    public var mode: Mode
    /// Request the power stage on. Off means the axes coast to a stop or brake.
    public var enable: Bool
    /// (nJoints) mm or rad — position targets, used in `.position` mode.
    public var position: JointVector
    /// (nJoints) mm/s or rad/s — velocity targets (feed-forward in `.position` mode).
    public var velocity: JointVector

    @inlinable public init(jointCount: Int) {
        mode = .hold
        enable = false
        position = JointVector(count: jointCount)
        velocity = JointVector(count: jointCount)
    }

    /// A command that moves nothing: hold with zero velocity, power as requested.
    @inlinable public mutating func setHold(enable: Bool) {
        mode = .hold
        self.enable = enable
        for i in 0..<velocity.count { velocity[i] = 0 }
    }
}
