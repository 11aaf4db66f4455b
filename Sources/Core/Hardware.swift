/// Why a hardware call failed. Small and payload-light so the cycle can return it
/// without allocating; the hardware's own report says more, outside the cycle.
public enum HardwareFault: UInt8, Error, Sendable, Equatable {
    /// A read found no fresh state (a lost frame, a link timeout).
    case noData
    /// The link to the drives is down.
    case linkLost
    /// A frame failed its integrity check (CRC, working counter).
    case corruptFrame
    /// A drive reported a fault.
    case driveFault
    /// The command held a NaN or infinity; it was replaced by a hold.
    case invalidCommand
    /// The command had the wrong number of joints.
    case shapeMismatch
}

/// Errors of the non-real-time hardware transitions (configure, activate).
public struct HardwareError: Error, Sendable, Equatable, CustomStringConvertible {
    public var what: String
    public init(_ what: String) { self.what = what }
    public var description: String { what }
}

/// The protocol between the control cycle and a robot: a simulated one, or real drives
/// behind a serial or EtherCAT link. The cycle cannot tell them apart.
///
/// Lifecycle (driven by the cycle's lifecycle): `configure` (may allocate, open links) →
/// `activate` (power may come on) → the cycle's `read`/`write` → `deactivate` → `shutdown`.
///
/// Hardware may be noncopyable: a robot that owns buffers and links is a single thing with one
/// owner (the cycle runner), and a noncopyable struct lets the cycle reach it without any
/// reference counting.
public protocol RobotHardware: ~Copyable {
    /// The number of joints this robot reads and writes.
    var jointCount: Int { get }

    /// Opens links and sizes buffers. Not real-time.
    mutating func configure() throws(HardwareError)
    /// Prepares to move: the drives may be enabled from the next write on. Not real-time.
    mutating func activate() throws(HardwareError)
    /// Stops motion and removes power. Not real-time; never fails.
    mutating func deactivate()
    /// Closes links. Not real-time; never fails.
    mutating func shutdown()

    /// Reads the latest joint state into `state`.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    mutating func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault?

    /// Sends `command` to the drives.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault?
}
