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
    /// The drive fault behind the error, when a latched fault is why the transition failed.
    public var driveFault: DriveFaultReport?
    public init(_ what: String, driveFault: DriveFaultReport? = nil) {
        self.what = what
        self.driveFault = driveFault
    }
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

    /// The fault behind the last `.driveFault`, latched until `acknowledgeFaults` cleared it.
    /// - Important: read by the control cycle; must not allocate, lock or log.
    var driveFault: DriveFaultReport? { get }

    /// An operator's acknowledge: asks the drives to clear their latched faults, and throws
    /// when one remains (its cause is still there). Not real-time.
    mutating func acknowledgeFaults() throws(HardwareError)
}

/// A fault a drive latched, as the host learned it: from a fault message (DriveLink FAULT), a
/// status bit (DriveLink STATE, the CiA 402 statusword) or the power stage dropping out while
/// the host asked for it. Small and trivial, so the cycle can carry it without allocating.
@frozen public struct DriveFaultReport: Sendable, Equatable, CustomStringConvertible {
    /// What went wrong. Codes 1…5 are DriveLink's FAULT codes (docs/protocol.md); the rest are
    /// what the host infers when no code came.
    @frozen public enum Kind: UInt16, Sendable, Equatable {
        case watchdog = 1
        case overcurrent = 2
        case followingError = 3
        case encoder = 4
        case hardLimit = 5
        /// A code this host does not know (the drive's own; `code` keeps it).
        case other = 0x7FFF
        /// The status says a fault is latched, and no fault message named it.
        case latched = 0x8001
        /// The power stage went off, or never came on, while the host asked for it.
        case powerLost = 0x8002
    }

    /// The axis at fault, or nil for the whole drive (DriveLink axis 0xFF).
    public var axis: Int?
    public var kind: Kind
    /// The code as the drive sent it (the kind's raw value where the host inferred it).
    public var code: UInt16
    /// The fault's figure (µs, mA, counts, per code); 0 where none came.
    public var detail: Int32

    @inlinable public init(axis: Int?, kind: Kind, code: UInt16? = nil, detail: Int32 = 0) {
        self.axis = axis
        self.kind = kind
        if let code { self.code = code } else { self.code = kind.rawValue }
        self.detail = detail
    }

    /// The fault a DriveLink FAULT message names.
    @inlinable public init(driveLinkAxis axis: UInt8, code: UInt16, detail: Int32) {
        self.axis = axis == 0xFF ? nil : Int(axis)
        self.kind = Self.kind(code: code)
        self.code = code
        self.detail = detail
    }

    /// The kind of a DriveLink fault code (`.other` for a code this host does not know).
    @inlinable public static func kind(code: UInt16) -> Kind {
        switch code {
        case 1: .watchdog
        case 2: .overcurrent
        case 3: .followingError
        case 4: .encoder
        case 5: .hardLimit
        default: .other
        }
    }

    public var name: String {
        switch kind {
        case .watchdog: "watchdog"
        case .overcurrent: "overcurrent"
        case .followingError: "following error"
        case .encoder: "encoder fault"
        case .hardLimit: "hard limit"
        case .other: "drive fault code \(code)"
        case .latched: "latched fault"
        case .powerLost: "power stage off"
        }
    }

    /// The safe reaction the host carries out (see docs/protocol.md, *Host reaction*): the drive
    /// has already removed power from at least the faulted axis, and the enable is drive-wide,
    /// so the host removes it at once — category 0 — and holds. No fault calls for less.
    public var stopCategory: Int { 0 }

    public var description: String {
        let where_ = axis.map { "axis \($0)" } ?? "whole drive"
        return "\(name) (code \(code)) on \(where_), detail \(detail)"
    }
}

extension RobotHardware where Self: ~Copyable {
    /// The fault the drives latched and the host has not yet had acknowledged, if any.
    @inlinable public var driveFault: DriveFaultReport? { nil }

    /// An operator's acknowledge: asks the drives to clear their latched faults. Not real-time;
    /// never called by the cycle. Hardware without latched faults has nothing to clear.
    @inlinable public mutating func acknowledgeFaults() throws(HardwareError) {}
}
