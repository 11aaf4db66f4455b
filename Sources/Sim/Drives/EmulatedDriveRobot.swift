import Core
import Drivers

/// A simulated robot whose axes are `EmulatedDriveAxis` drives (motor, gearbox, encoder, the
/// drive's own loop, enable watchdog, injectable faults), behind the same `RobotHardware`
/// protocol and the same cyclic byte images as every other robot: the control cycle runs on it
/// unchanged.
public struct EmulatedDriveRobot: ~Copyable, RobotHardware {
    public let jointCount: Int
    let countsPerUnit: JointVector
    let axes: UnsafeMutablePointer<EmulatedDriveAxis>
    let stateImage: UnsafeMutableRawBufferPointer
    let commandImage: UnsafeMutableRawBufferPointer
    let positions: UnsafeMutablePointer<Int32>
    let velocities: UnsafeMutablePointer<Int32>
    let currents: UnsafeMutablePointer<Int16>
    let status: UnsafeMutablePointer<UInt16>
    let targets: UnsafeMutablePointer<Int32>
    let targetVelocities: UnsafeMutablePointer<Int32>
    var activated = false
    var lastStep: Nanoseconds = 0

    /// Drives for `specs` with `models` (one per axis; default: `DriveAxisModel.catheterAxis`).
    public init(axes specs: [AxisSpec], models: [DriveAxisModel]? = nil, start: JointVector? = nil) {
        let n = specs.count
        jointCount = n
        countsPerUnit = JointVector(specs.map(\.countsPerUnit))
        axes = .allocate(capacity: n)
        for (i, s) in specs.enumerated() {
            let m = models?[i] ?? .catheterAxis(unit: s.unit, maxVelocity: s.maxVelocity)
            let q = start.map { $0[i] } ?? min(max(0, s.lower), s.upper)
            (axes + i).initialize(to: EmulatedDriveAxis(model: m, position: q))
        }
        func buffer<T>(_ v: T) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: n)
            p.initialize(repeating: v, count: n)
            return p
        }
        positions = buffer(0); velocities = buffer(0); currents = buffer(0); status = buffer(0)
        targets = buffer(0); targetVelocities = buffer(0)
        stateImage = .allocate(byteCount: CyclicImage.stateSize(axes: n), alignment: 8)
        commandImage = .allocate(byteCount: CyclicImage.commandSize(axes: n), alignment: 8)
    }

    deinit {
        axes.deinitialize(count: jointCount)
        axes.deallocate()
        positions.deallocate(); velocities.deallocate(); currents.deallocate(); status.deallocate()
        targets.deallocate(); targetVelocities.deallocate()
        stateImage.deallocate(); commandImage.deallocate()
    }

    /// Injects (or clears, with []) faults on axis `i`.
    public mutating func inject(_ faults: DriveFaultInjection, axis i: Int) { axes[i].injected = faults }

    /// Axis `i` as it is (true load position, fault), for tests and reports.
    public func axis(_ i: Int) -> EmulatedDriveAxis { axes[i] }

    public mutating func configure() throws(HardwareError) {}
    public mutating func activate() throws(HardwareError) {
        activated = true
        for i in 0..<jointCount { axes[i].resetFault() }
    }
    public mutating func deactivate() {
        activated = false
        for i in 0..<jointCount { axes[i].setEnable(false) }
    }
    public mutating func shutdown() { deactivate() }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    public mutating func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault? {
        var anyFault = false
        for i in 0..<jointCount {
            let a = axes[i]
            positions[i] = Int32(roundingSaturating: a.measuredPosition * countsPerUnit[i])
            velocities[i] = Int32(roundingSaturating: a.measuredVelocity * countsPerUnit[i])
            currents[i] = Int16(clamping: Int(Int32(roundingSaturating: a.current * 1000)))
            var s: UInt16 = a.enabled ? DriveStatus.enabled.rawValue : 0
            if a.fault != .none {
                s |= DriveStatus.fault.rawValue
                anyFault = true
            }
            if a.fault == .watchdog { s |= DriveStatus.watchdogExpired.rawValue }
            status[i] = s
        }
        _ = CyclicImage.encodeState(sampledAt: now, positions: positions, velocities: velocities, currentsMilliamp: currents,
                                    status: status, axes: jointCount, into: stateImage)
        if case .some = CyclicImage.decodeState(UnsafeRawBufferPointer(stateImage), countsPerUnit: countsPerUnit, into: &state) {
            return .corruptFrame
        }
        return anyFault ? .driveFault : nil
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    public mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        guard command.position.count == jointCount else { return .shapeMismatch }
        let dt = lastStep == 0 ? 0 : Double(now - lastStep) * 1e-9
        lastStep = now
        _ = CyclicImage.encodeCommand(command, countsPerUnit: countsPerUnit, into: commandImage)
        var mode = JointCommand.Mode.hold
        var enable = false
        if case .some = CyclicImage.decodeCommand(UnsafeRawBufferPointer(commandImage), axes: jointCount, positions: targets,
                                                  velocities: targetVelocities, mode: &mode, enable: &enable) {
            enable = false
        }
        for i in 0..<jointCount {
            axes[i].setEnable(activated ? enable : false)
            let measured = axes[i].measuredPosition
            var target = measured
            var feedForward = 0.0
            switch mode {
            case .hold: break
            case .position:
                target = Double(targets[i]) / countsPerUnit[i]
                feedForward = Double(targetVelocities[i]) / countsPerUnit[i]
            case .velocity:
                feedForward = Double(targetVelocities[i]) / countsPerUnit[i]
                target = measured + feedForward * dt
            }
            if dt > 0 { axes[i].step(target: target, velocityFeedForward: feedForward, dt: dt) }
        }
        return nil
    }
}
