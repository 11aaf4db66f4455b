import Core

/// How the robot's joints drive the physics catheter: which joint is which, and the tendon
/// geometry that turns a tendon displacement into a bend (θ = Δ / r over the bending section).
public struct RodCoupling: Sendable, Equatable {
    public var insertionJoint = 0
    public var rollJoint = 1
    /// The antagonistic tendon pairs bending towards d1 and d2; nil for a robot without them.
    public var tendonJoints: (Int, Int)? = (2, 3)
    /// Tendon offset from the neutral axis (mm) and the bending section's length (mm).
    public var tendonRadius: Double
    public var bendLength: Double
    /// Straight distal tip beyond the bending section (mm).
    public var tipLength: Double

    public init(tendonRadius: Double, bendLength: Double, tipLength: Double) {
        self.tendonRadius = tendonRadius; self.bendLength = bendLength; self.tipLength = tipLength
    }

    public static func == (a: RodCoupling, b: RodCoupling) -> Bool {
        a.insertionJoint == b.insertionJoint && a.rollJoint == b.rollJoint && a.tendonJoints?.0 == b.tendonJoints?.0
            && a.tendonJoints?.1 == b.tendonJoints?.1 && a.tendonRadius == b.tendonRadius && a.bendLength == b.bendLength
            && a.tipLength == b.tipLength
    }

    /// The rod's input for measured joint positions: insertion counts from the base, where the
    /// bending section starts, so the length out of the sheath adds the section and the tip.
    @_noAllocation @_noLocks
    public func input(_ q: JointVector) -> RodInput {
        var input = RodInput(insertion: (q[insertionJoint] + bendLength + tipLength) * 1e-3, roll: q[rollJoint])
        if case .some(let t) = tendonJoints {
            let k = 1 / (tendonRadius * bendLength * 1e-3)  // 1/m per mm of tendon
            input.curvature = SIMD2(q[t.0] * k, q[t.1] * k)
        }
        return input
    }
}

/// A robot whose catheter is the elastic rod in a vessel tree: the drive emulators (the same
/// hardware protocol as `KinematicRobot`) move the proximal end, and every `write` advances
/// the rod with what the drives actually did. The control cycle sees only encoders and the
/// insertion force, as on the real robot; the rod's tip is the ground truth the renderer and
/// the figures use.
public struct CatheterPhysicsRobot: ~Copyable, RobotHardware {
    public var jointCount: Int { drives.jointCount }
    public let model: RodModel
    public let coupling: RodCoupling
    private var drives: KinematicRobot
    private var rod: RodState
    private var lastStep: Nanoseconds = 0
    public private(set) var peakContactForce = 0.0
    /// N — the largest axial force the drive pushed (or pulled) the catheter with at the sheath:
    /// what the insertion-force sensor reads and the safety monitor limits (`max_insertion_force_n`).
    public private(set) var peakPushForce = 0.0
    public private(set) var physicsFaults = 0
    /// s — the time constant of the insertion-force sensor (a load cell behind the insertion
    /// drive, first-order low-pass: about 16 Hz). The rod's axial force at the sheath is the
    /// stretch of its first free element, which jumps for a step whenever a node enters or
    /// leaves the sheath (a node pulled back in is put on the sheath's axis at once): up to
    /// 15 N for 1–2 ms while withdrawing through a bend, with no load on the vessel behind it.
    /// A real load cell and drive train do not pass such a step; a push that lasts does reach
    /// the reading within a few time constants.
    public static let forceSensorTimeConstant = 0.01
    /// N — the insertion-force sensor's reading (compression positive).
    private var sensedPush = 0.0
    /// A fault of the insertion-force sensor: from `from` on it reads `bias` N more (a load
    /// cell's offset drift, or a catheter caught in the drive's rollers); nil: none.
    public var forceSensorBias: (from: Nanoseconds, bias: Double)?

    public init(axes: [AxisSpec], start: JointVector, dynamics: DriveDynamics, model: RodModel, coupling: RodCoupling) {
        drives = KinematicRobot(axes: axes, start: start, dynamics: dynamics)
        self.model = model
        self.coupling = coupling
        let input = coupling.input(start)
        rod = RodState(model: model, insertion: input.insertion, roll: input.roll)
    }

    public mutating func configure() throws(HardwareError) { try drives.configure() }
    public mutating func activate() throws(HardwareError) { try drives.activate() }
    public mutating func deactivate() { drives.deactivate() }
    public mutating func shutdown() { drives.shutdown() }
    public func inject(_ faults: DriveFaultInjection, axis i: Int) { drives.inject(faults, axis: i) }
    /// The drives' latched fault (a safety line that lost its permits names the axis).
    public var driveFault: DriveFaultReport? { @_noAllocation @_noLocks get { drives.driveFault } }
    public mutating func acknowledgeFaults() throws(HardwareError) { try drives.acknowledgeFaults() }

    /// Lets the rod settle at the start posture (set-up, before the cycle runs).
    public mutating func settle(seconds: Double) {
        let input = coupling.input(drives.measuredPositions)
        for _ in 0..<Int(seconds * 1000) where !ElasticRod.step(model, &rod, input, dt: 0.001) { physicsFaults += 1; return }
        // The sensor was zeroed before the catheter was placed: it reads the settled load.
        if rod.pushForce.isFinite { sensedPush = rod.pushForce }
    }

    @_noAllocation @_noLocks
    public mutating func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault? {
        let fault = drives.read(into: &state, now: now)
        state.insertionForce = sensedPush
        if case .some(let fault) = forceSensorBias, now >= fault.from { state.insertionForce += fault.bias }
        if rod.diverged { return .driveFault }
        return fault
    }

    @_noAllocation @_noLocks
    public mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        let fault = drives.write(command, now: now)
        // The rod follows what the drives did.
        advanceRod(following: drives.measuredPositions, now: now)
        return fault
    }

    /// Advances the rod to `now` with its proximal end where `joints` put it: for drives that
    /// are not this robot's own (a link's drives, real or emulated), whose reported positions
    /// then move the simulated patient's catheter as they would the real one.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func follow(_ joints: JointVector, now: Nanoseconds) {
        guard joints.count == jointCount, joints.isFinite else { return }
        advanceRod(following: joints, now: now)
    }

    /// Steps the rod to `now` in steps of at most 1 ms (a gap over 50 ms counts as 50 ms).
    @_noAllocation @_noLocks
    mutating func advanceRod(following joints: JointVector, now: Nanoseconds) {
        var dt = lastStep == 0 ? 0.001 : Double(now - lastStep) * 1e-9
        lastStep = now
        if dt > 0.05 { dt = 0.05 }
        if dt < 0 { dt = 0 }
        let input = coupling.input(joints)
        var remaining = dt
        var failed = false
        while remaining > 1e-9 {
            let h = remaining > 0.001 ? 0.001 : remaining
            // The parameters are borrowed from the model this robot holds: no reference counting.
            if !ElasticRod.step(model.parameters, &rod, input, dt: h) { failed = true; break }
            // Not a number stays one in the reading: the monitor must see a diverged rod.
            sensedPush += (rod.pushForce - sensedPush) * (h / (CatheterPhysicsRobot.forceSensorTimeConstant + h))
            let push = sensedPush < 0 ? -sensedPush : sensedPush
            if push > peakPushForce { peakPushForce = push }
            remaining -= h
        }
        if failed { physicsFaults += 1 }
        let c = rod.peakContactForce
        if c > peakContactForce { peakContactForce = c }
    }

    /// The drives' safety lines and their own readings, for a safety channel (see `KinematicRobot`).
    public func armSafetyLine(watchdog: Double) { drives.armSafetyLine(watchdog: watchdog) }
    @_noAllocation @_noLocks
    public func refreshSafetyLine(permit: Bool, quickStop: Bool) { drives.refreshSafetyLine(permit: permit, quickStop: quickStop) }
    @_noAllocation @_noLocks
    public func safetySample(axis i: Int) -> (encoder: Double, load: Double, velocity: Double, current: Double, powered: Bool, faulted: Bool) {
        drives.safetySample(axis: i)
    }

    /// Nodes of the rod's centerline (mm).
    public var centerlineNodes: Int { rod.nodes }

    /// Copies the centerline (mm) into `buffer`, at most its count; returns the nodes copied.
    /// For a renderer's snapshot taken in the cycle, where `centerline()` would allocate.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func copyCenterline(into buffer: UnsafeMutablePointer<Vec3>, capacity: Int) -> Int {
        let n = rod.nodes < capacity ? rod.nodes : capacity
        for i in 0..<n { buffer[i] = rod.x[i] * 1e3 }
        return n
    }

    /// The catheter tip (mm, patient frame): the distal end of the rod's centerline.
    public var tip: Vec3 { rod.tip * 1e3 }
    public var measuredPositions: JointVector { drives.measuredPositions }
    /// N — the insertion-force sensor's reading (see `forceSensorTimeConstant`).
    public var pushForce: Double { @_noAllocation @_noLocks get { sensedPush } }
    /// The centerline (mm) for the renderer (allocates; outside the cycle).
    public func centerline() -> [Vec3] { rod.centerlineMillimetres() }
}
