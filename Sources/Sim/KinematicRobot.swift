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

    /// (nJoints) counts per mm or rad.
    private let countsPerUnit: JointVector
    /// (nJoints) travel limits in counts.
    private let lowerCounts: UnsafeMutablePointer<Int32>
    private let upperCounts: UnsafeMutablePointer<Int32>
    /// (nJoints) largest speed in counts/s.
    private let maxSpeedCounts: UnsafeMutablePointer<Double>

    // The drives' side: raw encoder state and the last decoded command.
    private let positionCounts: UnsafeMutablePointer<Int32>
    private let velocityCounts: UnsafeMutablePointer<Int32>
    private let currentMilliamp: UnsafeMutablePointer<Int16>
    private let statusBits: UnsafeMutablePointer<UInt16>
    private let targetCounts: UnsafeMutablePointer<Int32>
    private let targetVelocityCounts: UnsafeMutablePointer<Int32>
    /// Sub-count remainder of each axis's motion, so slow motion is not lost to rounding.
    private let residual: UnsafeMutablePointer<Double>

    // The wire.
    private let stateImage: UnsafeMutableRawBufferPointer
    private let commandImage: UnsafeMutableRawBufferPointer

    private var enabled = false
    private var activated = false
    private var lastStep: Nanoseconds = 0

    /// Commands the drives refused to decode.
    public private(set) var rejectedCommands = 0

    /// A robot with `axes`, starting at `start` (joint units; clamped into the limits).
    public init(axes: [AxisSpec], start: JointVector? = nil) {
        precondition(!axes.isEmpty && axes.count <= JointVector.capacity, "1…\(JointVector.capacity) axes")
        jointCount = axes.count
        let n = axes.count
        countsPerUnit = JointVector(axes.map(\.countsPerUnit))
        func buffer<T>(_ v: T) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: n)
            p.initialize(repeating: v, count: n)
            return p
        }
        lowerCounts = buffer(0); upperCounts = buffer(0); maxSpeedCounts = buffer(0)
        positionCounts = buffer(0); velocityCounts = buffer(0); currentMilliamp = buffer(0)
        statusBits = buffer(0); targetCounts = buffer(0); targetVelocityCounts = buffer(0); residual = buffer(0)
        stateImage = .allocate(byteCount: CyclicImage.stateSize(axes: n), alignment: 8)
        commandImage = .allocate(byteCount: CyclicImage.commandSize(axes: n), alignment: 8)
        stateImage.initializeMemory(as: UInt8.self, repeating: 0)
        commandImage.initializeMemory(as: UInt8.self, repeating: 0)
        for (i, a) in axes.enumerated() {
            lowerCounts[i] = Int32((a.lower * a.countsPerUnit).rounded(.up))
            upperCounts[i] = Int32((a.upper * a.countsPerUnit).rounded(.down))
            maxSpeedCounts[i] = a.maxVelocity * a.countsPerUnit
            let q = start.map { $0[i] } ?? min(max(0, a.lower), a.upper)
            positionCounts[i] = min(max(Int32((q * a.countsPerUnit).rounded()), lowerCounts[i]), upperCounts[i])
            targetCounts[i] = positionCounts[i]
        }
    }

    deinit {
        for p in [lowerCounts, upperCounts, positionCounts, velocityCounts, targetCounts, targetVelocityCounts] { p.deallocate() }
        maxSpeedCounts.deallocate(); residual.deallocate(); currentMilliamp.deallocate(); statusBits.deallocate()
        stateImage.deallocate(); commandImage.deallocate()
    }

    public mutating func configure() throws(HardwareError) {}
    public mutating func activate() throws(HardwareError) { activated = true }
    public mutating func deactivate() { activated = false; enabled = false }
    public mutating func shutdown() { activated = false; enabled = false }

    /// The joint positions the encoders measure now (joint units), for tests and reports.
    public var measuredPositions: JointVector {
        var q = JointVector(count: jointCount)
        for i in 0..<jointCount { q[i] = Double(positionCounts[i]) / countsPerUnit[i] }
        return q
    }

    /// True while the drives' power stages are on.
    public var isEnabled: Bool { enabled }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault? {
        let n = jointCount
        for i in 0..<n {
            var s: UInt16 = enabled ? DriveStatus.enabled.rawValue : 0
            // No `||`: its right-hand autoclosure would retain self inside the cycle.
            let p = positionCounts[i]
            if p <= lowerCounts[i] { s |= DriveStatus.atLimit.rawValue }
            if p >= upperCounts[i] { s |= DriveStatus.atLimit.rawValue }
            statusBits[i] = s
        }
        _ = CyclicImage.encodeState(sampledAt: now, positions: positionCounts, velocities: velocityCounts,
                                    currentsMilliamp: currentMilliamp, status: statusBits, axes: n, into: stateImage)
        if case .some = CyclicImage.decodeState(UnsafeRawBufferPointer(stateImage), countsPerUnit: countsPerUnit, into: &state) {
            return .corruptFrame
        }
        return nil
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        let n = jointCount
        guard command.position.count == n else { return .shapeMismatch }
        let dt = lastStep == 0 ? 0 : Double(now - lastStep) * 1e-9
        lastStep = now
        _ = CyclicImage.encodeCommand(command, countsPerUnit: countsPerUnit, into: commandImage)

        var mode = JointCommand.Mode.hold
        var enable = false
        if case .some = CyclicImage.decodeCommand(UnsafeRawBufferPointer(commandImage), axes: n, positions: targetCounts,
                                     velocities: targetVelocityCounts, mode: &mode, enable: &enable) {
            rejectedCommands += 1
            enable = false
        }
        // The drives refuse power unless the host activated them first.
        enabled = activated ? enable : false
        for i in 0..<n {
            var moved = 0.0
            if enabled, dt > 0 {
                let maxStep = maxSpeedCounts[i] * dt
                var want = 0.0
                switch mode {
                case .hold: want = 0
                case .position: want = Double(targetCounts[i]) - Double(positionCounts[i])
                case .velocity: want = Double(targetVelocityCounts[i]) * dt
                }
                moved = min(max(want + residual[i], -maxStep), maxStep)
            }
            let whole = Double(Int64(moved))  // toward zero; |moved| is bounded by one cycle of travel
            residual[i] = enabled ? moved - whole : 0
            let before = positionCounts[i]
            let after = min(max(Int64(before) + Int64(whole), Int64(lowerCounts[i])), Int64(upperCounts[i]))
            positionCounts[i] = Int32(after)
            velocityCounts[i] = dt > 0 ? Int32(saturating: Double(after - Int64(before)) / dt) : 0
        }
        return nil
    }
}

