import Core
import Drivers

/// A simulated robot with ideal drives: each enabled axis reaches its position target within
/// the cycle, bounded only by its travel limits and its maximum speed, and measured through a
/// quantising encoder. Host and "drive" exchange the same cyclic byte images as real drives
/// (`CyclicImage`), so the cycle pays the real decode and encode.
///
/// It is the first implementation of `RobotHardware`; the physics simulator slots in behind the
/// same protocol. Noncopyable: it owns its buffers, and the cycle reaches it without reference
/// counting.
public struct KinematicRobot: ~Copyable, RobotHardware {
    public let jointCount: Int

    /// The drives' side, in counts.
    private let drives: SimulatedDriveAxes
    private let currentMilliamp: UnsafeMutablePointer<Int16>
    private let statusBits: UnsafeMutablePointer<UInt16>

    // The wire.
    private let stateImage: UnsafeMutableRawBufferPointer
    private let commandImage: UnsafeMutableRawBufferPointer

    private var enabled = false
    private var activated = false
    private var lastStep: Nanoseconds = 0

    /// Commands the drives refused to decode.
    public private(set) var rejectedCommands = 0

    /// A robot with `axes`, starting at `start` (joint units; clamped into the limits), whose
    /// drives move ideally or as emulated drives.
    public init(axes: [AxisSpec], start: JointVector? = nil, dynamics: DriveDynamics = .ideal) {
        drives = SimulatedDriveAxes(axes: axes, start: start, dynamics: dynamics)
        let n = axes.count
        jointCount = n
        currentMilliamp = .allocate(capacity: n)
        currentMilliamp.initialize(repeating: 0, count: n)
        statusBits = .allocate(capacity: n)
        statusBits.initialize(repeating: 0, count: n)
        stateImage = .allocate(byteCount: CyclicImage.stateSize(axes: n), alignment: 8)
        commandImage = .allocate(byteCount: CyclicImage.commandSize(axes: n), alignment: 8)
        stateImage.initializeMemory(as: UInt8.self, repeating: 0)
        commandImage.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit {
        currentMilliamp.deallocate()
        statusBits.deallocate()
        stateImage.deallocate()
        commandImage.deallocate()
    }

    public mutating func configure() throws(HardwareError) {}
    /// Refuses while a drive fault is latched: as on real drives, only an acknowledge clears it.
    public mutating func activate() throws(HardwareError) {
        if let f = driveFault { throw HardwareError("drive fault latched: \(f)", driveFault: f) }
        activated = true
    }

    /// The first axis whose emulated drive latched a fault, with its kind.
    /// - Important: read by the control cycle; must not allocate, lock or log.
    public var driveFault: DriveFaultReport? {
        @_noAllocation @_noLocks get {
        for i in 0..<jointCount {
            switch drives.fault(i) {
            case .none: continue
            case .watchdog: return DriveFaultReport(axis: i, kind: .watchdog)
            case .overcurrent: return DriveFaultReport(axis: i, kind: .overcurrent)
            case .safetyWatchdog: return DriveFaultReport(axis: i, kind: .powerLost)
            }
        }
        return nil
        }
    }

    /// An operator's acknowledge: the emulated drives clear their faults.
    public mutating func acknowledgeFaults() throws(HardwareError) { drives.resetFaults() }

    /// Injects (or clears, with []) faults on axis `i` (emulated dynamics only).
    public func inject(_ faults: DriveFaultInjection, axis i: Int) { drives.inject(faults, axis: i) }

    /// Wires every emulated drive's safety line: from now on they are powered only while the
    /// safety monitor's permits keep coming (`SimulatedDriveAxes.armSafetyLine`).
    public func armSafetyLine(watchdog: Double) { drives.armSafetyLine(watchdog: watchdog) }

    /// A permit from the safety monitor, onto every drive's safety line.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func refreshSafetyLine(permit: Bool, quickStop: Bool) {
        for i in 0..<jointCount { drives.refreshSafetyLine(axis: i, permit: permit, quickStop: quickStop) }
    }

    /// Axis `i`'s drive's own readings for the safety channel (`SimulatedDriveAxes.safetySample`).
    @_noAllocation @_noLocks
    public func safetySample(axis i: Int) -> (encoder: Double, load: Double, velocity: Double, current: Double, powered: Bool, faulted: Bool) {
        drives.safetySample(axis: i)
    }

    /// Axis `i`'s emulated drive (nil for ideal dynamics), for tests and reports.
    public func emulatedAxis(_ i: Int) -> EmulatedDriveAxis? { drives.emulatedAxis(i) }
    public mutating func deactivate() { activated = false; enabled = false }
    public mutating func shutdown() { activated = false; enabled = false }

    /// The joint positions the encoders measure now (joint units), for tests and reports.
    public var measuredPositions: JointVector { @_noAllocation @_noLocks get { drives.positions } }

    /// True while the drives' power stages are on.
    public var isEnabled: Bool { enabled }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault? {
        let n = jointCount
        var anyFault = false
        for i in 0..<n {
            var s: UInt16 = enabled ? DriveStatus.enabled.rawValue : 0
            if drives.faulted(i) {
                s = DriveStatus.fault.rawValue
                anyFault = true
            }
            if drives.atLimit(i) { s |= DriveStatus.atLimit.rawValue }
            statusBits[i] = s
        }
        _ = CyclicImage.encodeState(sampledAt: now, positions: drives.position, velocities: drives.velocity,
                                    currentsMilliamp: currentMilliamp, status: statusBits, axes: n, into: stateImage)
        if case .some = CyclicImage.decodeState(UnsafeRawBufferPointer(stateImage), countsPerUnit: drives.countsPerUnit, into: &state) {
            return .corruptFrame
        }
        return anyFault ? .driveFault : nil
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        let n = jointCount
        guard command.position.count == n else { return .shapeMismatch }
        let dt = lastStep == 0 ? 0 : Double(now - lastStep) * 1e-9
        lastStep = now
        _ = CyclicImage.encodeCommand(command, countsPerUnit: drives.countsPerUnit, into: commandImage)

        var mode = JointCommand.Mode.hold
        var enable = false
        if case .some = CyclicImage.decodeCommand(UnsafeRawBufferPointer(commandImage), axes: n, positions: drives.targetPosition,
                                     velocities: drives.targetVelocity, mode: &mode, enable: &enable) {
            rejectedCommands += 1
            enable = false
        }
        // The drives refuse power unless the host activated them first.
        enabled = activated ? enable : false
        drives.step(mode: mode, enabled: enabled, dt: dt)
        return nil
    }
}

