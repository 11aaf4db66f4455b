/// The independent safety monitor lives here (its own process, its own channel to the drives).
/// It depends on Core and Drivers only, never on Control.

/// Stop categories of IEC 60204-1 §9.2.2: how a detected fault stops the robot.
public enum StopCategory: Int, Sendable, Codable, Comparable {
    /// Immediate removal of power to the actuators (safe torque off).
    case zero = 0
    /// A controlled stop with power available, then removal of power once stopped.
    case one = 1
    /// A controlled stop with power left available.
    case two = 2

    /// True when the reaction ends with the drives' enable removed.
    public var removesPower: Bool { @_noAllocation @_noLocks get { self != .two } }

    @_noAllocation @_noLocks
    public static func < (a: StopCategory, b: StopCategory) -> Bool { a.rawValue < b.rawValue }

    /// The category of `raw` (0, 1, 2); anything else is the safest, category 0.
    @_noAllocation @_noLocks
    public static func of(_ raw: UInt8) -> StopCategory {
        switch raw {
        case 1: .one
        case 2: .two
        default: .zero
        }
    }
}
