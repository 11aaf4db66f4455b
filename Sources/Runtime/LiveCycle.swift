import CAllocCount
import Control
import Core
import Glibc
import Scenarios
import Sim
import Synchronization

/// What the cycle shares with the other threads, all preallocated: the intents in, the published
/// state, the records and durations out, the catheter's shape for the renderer, and the few
/// flags the cycle reads (atomics). The cycle never waits on any of it.
public final class LiveShared: @unchecked Sendable {
    public let joints: Int
    public let intents: IntentRing
    public let published: PublishedCycleLock
    /// For the recorder (`RecordingTap`).
    public let recorderRecords: CycleRecordRing
    /// ns: wake − deadline (imaging off / on), read → write compute, acquisition → the cycle that
    /// fused it, heartbeat gaps.
    public let lateness: DurationRing
    public let latenessImaging: DurationRing
    public let compute: DurationRing
    public let fuseLatency: DurationRing
    public let heartbeatGap: DurationRing
    public let catheter: CatheterSnapshot
    /// The newest image-measured 3D tip, which the cycle relays to the safety monitor.
    public let imageTip = ImageTipCell()
    /// The drive link's counters, published by the cycle after each read (DriveLink and EtherCAT).
    public let linkCounters = LinkCounterCells()
    /// The cycle's record under construction: the controller fills its part, the patient
    /// completes it after the write. Touched by the cycle thread only.
    let record: UnsafeMutablePointer<CycleRecord>
    /// Flags and counters the cycle and the other threads share (acquire/release cells).
    let flags: UnsafeMutablePointer<Int64>
    static let wakeFlag = 0, deadmanFlag = 1, acknowledgeFlag = 2, imageGuidedFlag = 3, imageAtFlag = 4, stopFlag = 5,
               imagingOnFlag = 6, deadmanTimeoutsFlag = 7, countFromFlag = 8, monitorStopFlag = 9
    /// `monitorStopFlag`: the monitor's permit stops the drives (its deadman stop, say); it does
    /// so for a fault it latched; its permits ran out (killed, hung, starved).
    static let monitorStops: Int64 = 1, monitorStopsLatched: Int64 = 3, monitorPermitsLapsed: Int64 = 2
    /// ns — a deadman not repeated within this is released.
    public let deadmanTimeout: Nanoseconds

    public init(joints: Int, deadmanTimeout: Nanoseconds, intentCapacity: Int = 64, recordCapacity: Int = 8192, catheterNodes: Int = 256) {
        self.joints = joints
        self.deadmanTimeout = deadmanTimeout
        intents = IntentRing(capacity: intentCapacity)
        published = PublishedCycleLock(joints: joints)
        recorderRecords = CycleRecordRing(capacity: recordCapacity, joints: joints)
        lateness = DurationRing(capacity: 1 << 16)
        latenessImaging = DurationRing(capacity: 1 << 16)
        compute = DurationRing(capacity: 1 << 16)
        fuseLatency = DurationRing(capacity: 4096)
        heartbeatGap = DurationRing(capacity: 1 << 16)
        catheter = CatheterSnapshot(capacity: catheterNodes)
        record = .allocate(capacity: 1)
        record.initialize(to: CycleRecord(cycle: 0, time: 0, lateness: 0, compute: 0, joints: JointState(jointCount: joints),
                                          command: JointCommand(jointCount: joints), estimate: TipEstimate(), mode: .idle, appliedIntent: 0))
        flags = .allocate(capacity: 10)
        flags.initialize(repeating: 0, count: 10)
    }
    deinit {
        record.deallocate()
        flags.deallocate()
    }

    public var stopLatched: Bool { SharedIndex.load(flags + Self.stopFlag) != 0 }
    /// The cycle last read the monitor stopping the drives, or its permits run out.
    public var monitorStopping: Bool { SharedIndex.load(flags + Self.monitorStopFlag) != 0 }
    public var deadmanTimeouts: Int { Int(SharedIndex.load(flags + Self.deadmanTimeoutsFlag)) }
    public var imagingOn: Bool {
        get { SharedIndex.load(flags + Self.imagingOnFlag) != 0 }
        set { SharedIndex.store(flags + Self.imagingOnFlag, newValue ? 1 : 0) }
    }
}

/// The image-guided controller with the operator's intents in front of it: each cycle it takes
/// the queued intents (deadman, mode, target, stop, acknowledge), applies the deadman timeout,
/// runs the estimator, servo and supervisor, and publishes what it did.
public struct LiveController: ~Copyable, CycleController {
    public private(set) var inner: ImageGuidedController
    let shared: LiveShared
    let rings: CycleRings
    var deadmanHeld = false
    var deadmanSeenAt: Nanoseconds = 0
    var navigating = false
    var target = Vec3.zero
    var stopLatched = false
    var stopFollowsMonitor = false
    /// The latched stop is an emergency stop (category 0).
    var stopIsCategory0 = false
    /// The monitor was stopping the drives last cycle: its stop is judged where it begins.
    var monitorWasStopping = false
    /// When the operator last acknowledged: the monitor's latch clears a few cycles later (the
    /// acknowledge goes out with the next heartbeat, its status comes back), and a jog held
    /// through the acknowledge must not read that moment as the monitor still stopping.
    var acknowledgedAt: Nanoseconds = 0
    static let acknowledgeGrace: Nanoseconds = 100_000_000
    var appliedIntent: UInt64 = 0
    var cycle: UInt64 = 0
    var published: PublishedCycle
    let deadmanTimeout: Nanoseconds
    // Jog: the operator's last joint demand or tip-jog hand displacement, mapped each cycle
    // through the teleop settings (deadband, tremor filter, scaling, per-joint speed limits) into
    // the joint velocities the supervisor's limiter follows in jog.
    var teleop: TeleopMapping
    /// The teleop input, made once: the cycle only sets its fields.
    var sample: TeleopSample
    let model: CatheterModel
    var jogging = false
    var tipJogging = false
    var strokeStarts = false
    var jogDemand: JointVector
    var jogAt: Nanoseconds = 0
    var tipHand = Vec3.zero
    /// mm — the fused tip where the current tip-jog stroke began.
    var tipAnchor = Vec3.zero
    /// Jogged since the path servo last started: its reference is not where the joints are.
    var servoStale = false
    /// The target's index on the servo's route (−1: the route's end, where the servo stops by itself).
    var targetIndex = -1
    var reachedTarget = false
    let zeroJoints: JointVector
    /// Joint moves along a profile (`OperatorIntent.jointMove`), per axis: where each began and
    /// ends, when it began (ns), how long it takes (ns; 0: none on that axis), minimum jerk (1).
    var moving = false
    var moveFrom: JointVector
    var moveGoal: JointVector
    var moveStart: JointVector
    var moveDuration: JointVector
    var moveSmooth: JointVector
    /// 1/s — how fast a joint move's reference pulls the limiter's back onto its profile.
    static let moveGain = 20.0
    /// A jog demand not repeated within this is dropped. The console repeats it with every
    /// deadman heartbeat, so it lives as long as the deadman does without news (its timeout): a
    /// shorter life let a late browser timer restart the jog's filters from zero again and again,
    /// and a held jog crawled while the deadman, rightly, stayed held.
    let jogLifetime: Nanoseconds
    /// 1/s — a tip jog asks for this share of the remaining tip error per second.
    static let tipGain = 2.0
    /// mm — a target on the route counts as reached this near.
    static let arrival = 1.0
    /// The console scales the hand's motion with its own slider: the mapping passes it on 1:1.
    public static var defaultTeleop: TeleopSettings {
        var t = TeleopSettings()
        t.motionScale = 1
        return t
    }

    public init(_ inner: consuming ImageGuidedController, shared: LiveShared, teleop settings: TeleopSettings = LiveController.defaultTeleop,
                period: Nanoseconds = 1_000_000) {
        deadmanTimeout = shared.deadmanTimeout
        jogLifetime = shared.deadmanTimeout
        model = inner.servo.model
        zeroJoints = JointVector(count: inner.servo.model.jointCount)
        jogDemand = zeroJoints
        moveFrom = zeroJoints
        moveGoal = zeroJoints
        moveStart = zeroJoints
        moveDuration = zeroJoints
        moveSmooth = zeroJoints
        sample = TeleopSample(deadman: false, axes: JointVector(count: inner.servo.model.jointCount))
        teleop = TeleopMapping(settings: settings, maxVelocity: inner.servo.model.maxVelocity, dt: Double(period) * 1e-9)
        self.inner = inner
        self.shared = shared
        rings = CycleRings(shared)
        published = PublishedCycle(joints: shared.joints)
        self.inner.deadman = false
        self.inner.autoResume = false
    }

    public mutating func reset(to state: JointState) {
        inner.deadman = deadmanHeld ? navigating || jogging : false
        inner.stop = stopLatched
        inner.reset(to: state)
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func update(state: JointState, tick: CycleTick, command: inout JointCommand) {
        let now = tick.wake
        rings.flags[LiveShared.wakeFlag] = now
        while let intent = rings.intents.pop() { apply(intent, state: state, now: now) }
        if deadmanHeld, now - deadmanSeenAt > deadmanTimeout {
            deadmanHeld = false
            SharedIndex.store(rings.flags + LiveShared.deadmanTimeoutsFlag, rings.flags[LiveShared.deadmanTimeoutsFlag] + 1)
        }
        SharedIndex.store(rings.flags + LiveShared.deadmanFlag, deadmanHeld ? 1 : 0)
        // A joint move ends where it stands when the deadman is let go: it does not resume.
        if moving, !deadmanHeld { endMoves() }
        // The monitor stopping the drives while the robot moves (any category) is this
        // controller's stop too: the drives no longer follow the command, and a servo that went
        // on commanding would run its reference ahead of the catheter, pushing on where it is
        // stuck. Latched like an operator's stop; the acknowledge that clears the monitor's
        // latch clears it. Only a stop that begins while the deadman is held: the monitor's own
        // deadman stop begins after a release (which already holds this controller) and ends,
        // unlatched, when the deadman is held again — latching it here would make the operator
        // acknowledge the normal way to stop.
        // Permits that ran out (a monitor killed, hung or starved) latch it too, but as this
        // controller's own stop: the monitor has latched nothing to show or clear, and a stop
        // that follows the monitor is shown with the monitor's category, so it would not show
        // at all once the permits came back.
        // A monitor that stops the drives for a fault it latched stops any motion asked for
        // meanwhile too, not only motion under way when its stop began: a jog or a target after
        // the monitor latched (a move a scenario starts, an operator who did not acknowledge)
        // would command drives that have no power. A stop the runtime's supervision thread used
        // to send, 10 ms later and only where one ran; here it is the cycle's, wherever it runs.
        let monitorFlag = rings.flags[LiveShared.monitorStopFlag]
        let monitorStopping = monitorFlag != 0
        let monitorFaulted = monitorFlag == LiveShared.monitorStopsLatched && now - acknowledgedAt > Self.acknowledgeGrace
        if !stopLatched, inner.supervisor.mode == .tipServo || inner.supervisor.mode == .jog,
           monitorFaulted || (monitorStopping && !monitorWasStopping && deadmanHeld) {
            latchStop()
            stopFollowsMonitor = monitorFlag != LiveShared.monitorPermitsLapsed
        }
        monitorWasStopping = monitorStopping
        inner.deadman = deadmanHeld ? navigating || jogging : false
        inner.stop = stopLatched
        inner.autoResume = navigating ? !stopLatched : false
        inner.jogVelocity = jogging ? jogVelocity(state: state, now: now) : zeroJoints
        let fusedBefore = inner.fusedThisRun
        let receivedBefore = inner.receivedThisRun
        inner.update(state: state, tick: tick, command: &command)
        let estimate = inner.lastEstimate
        // A target short of the route's end: the servo would go on along the route, so the
        // controller holds once the tip is there (or past it).
        if navigating, targetIndex >= 0, inner.supervisor.mode == .tipServo,
           inner.servo.progress >= targetIndex || (estimate.position - target).length <= Self.arrival {
            navigating = false
            reachedTarget = true
            inner.autoResume = false
            ask(.hold, state.position)
        }
        if inner.fusedThisRun != fusedBefore, estimate.lastImageAt > 0 {
            rings.fuseLatency.push(now - estimate.lastImageAt)
        }
        let mode = inner.supervisor.mode
        SharedIndex.store(rings.flags + LiveShared.imageGuidedFlag, mode == .tipServo ? 1 : 0)
        SharedIndex.store(rings.flags + LiveShared.imageAtFlag, estimate.lastImageAt)
        cycle &+= 1
        // The cycle from which this thread's heap allocations are counted (0: none; `LiveRuntime`).
        if Int64(truncatingIfNeeded: cycle) == rings.flags[LiveShared.countFromFlag] { _unsafePerformance { lumen_alloc_count_begin() } }
        if SharedIndex.load(rings.flags + LiveShared.imagingOnFlag) != 0 {
            rings.latenessImaging.push(tick.wake - tick.deadline)
        } else {
            rings.lateness.push(tick.wake - tick.deadline)
        }

        published.time = now
        published.cycle = cycle
        published.mode = mode
        published.holdReason = inner.supervisor.reason
        published.joints = state
        published.command = command
        published.estimate = estimate
        published.target = target
        published.hasTarget = navigating
        published.appliedIntent = appliedIntent
        published.deadmanHeld = deadmanHeld
        published.stopLatched = stopLatched
        published.stopFollowsMonitor = stopFollowsMonitor
        published.stopIsCategory0 = stopIsCategory0
        published.arrived = inner.servo.phase == .arrived || reachedTarget
        published.servoFailure = inner.servo.failure
        rings.published.write(published)

        rings.record.pointee.cycle = cycle
        rings.record.pointee.time = now
        rings.record.pointee.lateness = tick.wake - tick.deadline
        rings.record.pointee.joints = state
        rings.record.pointee.estimate = estimate
        rings.record.pointee.mode = mode
        rings.record.pointee.appliedIntent = appliedIntent
        rings.record.pointee.measurementsArrived = UInt32(clamping: inner.receivedThisRun - receivedBefore)
        rings.record.pointee.arrivedAcquiredAt = inner.receivedThisRun != receivedBefore ? inner.lastReceivedAcquiredAt : 0
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    mutating func apply(_ intent: CycleIntent, state: JointState, now: Nanoseconds) {
        appliedIntent = intent.sequence
        switch intent.kind {
        case .deadman:
            deadmanHeld = intent.held
            if intent.held { deadmanSeenAt = now }
        case .stop:
            latchStop()
        case .emergencyStop:
            // Category 0: no controlled stop first; this cycle's command already has enable 0.
            latchStop()
            stopIsCategory0 = true
            inner.cutPower(measured: state.position)
        case .acknowledge:
            acknowledgedAt = now
            SharedIndex.store(rings.flags + LiveShared.acknowledgeFlag, SharedIndex.load(rings.flags + LiveShared.acknowledgeFlag) + 1)
            if stopLatched {
                stopLatched = false
                stopIsCategory0 = false
                SharedIndex.store(rings.flags + LiveShared.stopFlag, 0)
                inner.stop = false
                ask(.hold, state.position)
            }
        case .mode:
            if stopLatched { return }
            endMoves()
            if intent.mode == .jog {
                enterJog(state: state)
                return
            }
            navigating = false
            jogging = false
            tipJogging = false
            inner.autoResume = false
            ask(intent.mode, state.position)
        case .jointJog:
            if stopLatched { return }
            endMoves()
            jogDemand = intent.joints
            jogAt = now
            tipJogging = false
            enterJog(state: state)
        case .tipJog:
            if stopLatched { return }
            guard intent.held else {
                // The clutch let go: the stroke is over and the tip holds where it is.
                if tipJogging {
                    tipJogging = false
                    jogging = false
                    ask(.hold, state.position)
                }
                return
            }
            if !tipJogging {
                tipJogging = true
                strokeStarts = true
                tipAnchor = inner.lastEstimate.position
                teleop.resetOffset()
            }
            tipHand = intent.point
            jogAt = now
            endMoves()
            enterJog(state: state)
        case .jointMove:
            if stopLatched { return }
            startMove(intent, state: state, now: now)
        case .target:
            if stopLatched { return }
            endMoves()
            target = intent.point
            targetIndex = intent.routeIndex
            reachedTarget = false
            navigating = true
            jogging = false
            tipJogging = false
            // A servo that gave up starts afresh on the operator's new target: that is the retry.
            if servoStale || inner.servo.phase == .gaveUp {
                inner.restartServo(from: state.position)
                servoStale = false
            }
            inner.deadman = deadmanHeld
            if inner.supervisor.mode == .idle { ask(.hold, state.position) }
            ask(.tipServo, state.position)
        }
    }
}

extension LiveController {
    /// Category 1: the supervisor brakes to rest under the limiter, then powers off; nothing
    /// moves again until an acknowledge.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    mutating func latchStop() {
        endMoves()
        // A stop on top of an emergency stop leaves it category 0.
        if !stopLatched { stopIsCategory0 = false }
        stopLatched = true
        stopFollowsMonitor = false
        navigating = false
        jogging = false
        tipJogging = false
        SharedIndex.store(rings.flags + LiveShared.stopFlag, 1)
    }

    /// Asks the supervisor for `mode`; a refusal leaves everything as it was (and, returned
    /// rather than thrown, costs no allocation).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    mutating func ask(_ mode: ControlMode, _ measured: JointVector) {
        _ = inner.attemptMode(mode, measured: measured)
    }

    /// A joint move begins on its axis from where that axis's reference is (the last command,
    /// or the profile it was on): the other axes keep theirs. Into jog, as any jog.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    mutating func startMove(_ intent: CycleIntent, state: JointState, now: Nanoseconds) {
        let axis = intent.routeIndex
        guard axis >= 0, axis < moveGoal.count, axis < published.command.position.count else { return }
        if !moving {
            // Axes without a move of their own hold where the command stands.
            for i in 0..<moveGoal.count {
                let here = i < published.command.position.count ? published.command.position[i] : state.position[i]
                moveFrom[i] = here
                moveGoal[i] = here
                moveDuration[i] = 0
            }
        }
        let here = moveDuration[axis] > 0 ? profile(axis, now: now).position : moveGoal[axis]
        moveFrom[axis] = here
        moveGoal[axis] = intent.held ? here + intent.point.x : intent.point.x
        moveStart[axis] = Double(now)
        moveDuration[axis] = intent.point.y * 1e9
        moveSmooth[axis] = intent.point.z
        if !moving {
            enterJog(state: state)
            moving = true
        }
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    mutating func endMoves() {
        moving = false
        for i in 0..<moveDuration.count { moveDuration[i] = 0 }
    }

    /// Where axis `i`'s profile is at `now`, and how fast it goes there (per s).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    func profile(_ i: Int, now: Nanoseconds) -> (position: Double, velocity: Double) {
        let duration = moveDuration[i]
        guard duration > 0 else { return (moveGoal[i], 0) }
        var s = (Double(now) - moveStart[i]) / duration
        s = s < 0 ? 0 : (s > 1 ? 1 : s)
        let span = moveGoal[i] - moveFrom[i]
        if moveSmooth[i] > 0 {
            // Minimum jerk: zero velocity and acceleration at both ends.
            let p = s * s * s * (10 - 15 * s + 6 * s * s)
            let dp = 30 * s * s * (1 - s) * (1 - s)
            return (moveFrom[i] + span * p, span * dp / (duration * 1e-9))
        }
        return (moveFrom[i] + span * s, s < 1 ? span / (duration * 1e-9) : 0)
    }

    /// The jog velocities that carry the limiter's reference along the joint moves: each
    /// profile's own speed, plus a pull back onto it of what the limiter held back (its
    /// acceleration and speed limits stay in force: it may still hold it back).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    mutating func moveVelocity(now: Nanoseconds) -> JointVector {
        var v = zeroJoints
        for i in 0..<v.count {
            let p = profile(i, now: now)
            let commanded = i < published.command.position.count ? published.command.position[i] : p.position
            var want = p.velocity + Self.moveGain * (p.position - commanded)
            var limit = i < model.maxVelocity.count ? model.maxVelocity[i] : 0
            // Never faster than the profile's own peak speed: catching up what the limiter held
            // back at the start of a linear profile (a step in speed) would otherwise run the
            // move faster than asked, and past a velocity limit the profile itself keeps.
            let duration = moveDuration[i] * 1e-9
            if duration > 0 {
                let span = moveGoal[i] - moveFrom[i]
                let peak = (span < 0 ? -span : span) / duration * (moveSmooth[i] > 0 ? 1.875 : 1)
                if peak < limit { limit = peak }
            }
            want = want < -limit ? -limit : (want > limit ? limit : want)
            v[i] = want.isFinite ? want : 0
        }
        return v
    }

    /// Into jog through the supervisor (which refuses it without the deadman, from idle, or
    /// under a stop); navigation ends.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    mutating func enterJog(state: JointState) {
        navigating = false
        jogging = true
        servoStale = true
        inner.autoResume = false
        inner.deadman = deadmanHeld
        if inner.supervisor.mode != .jog { ask(.jog, state.position) }
    }

    /// This cycle's jog velocities (mm/s, rad/s): a joint jog's demand through the teleop mapping,
    /// or for a tip jog one damped-least-squares step towards the stroke's tip target, as a
    /// velocity. Zero once the demand is older than `jogLifetime` or the deadman is up; never
    /// above each joint's share of its speed limit (the limiter then bounds acceleration and travel).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    mutating func jogVelocity(state: JointState, now: Nanoseconds) -> JointVector {
        if moving { return moveVelocity(now: now) }
        let fresh = now - jogAt <= jogLifetime
        if !tipJogging {
            // A stale demand stops at once (the mapping's filters restart), not along the tremor
            // filter's tail: the limiter then brakes at its acceleration limit.
            sample.deadman = deadmanHeld && fresh
            sample.clutch = false
            sample.hand = .zero
            sample.axes = fresh ? jogDemand : zeroJoints
            return teleop.update(sample).jointVelocity
        }
        sample.deadman = deadmanHeld && fresh
        sample.clutch = true
        sample.axes = zeroJoints
        if strokeStarts {
            // The hand is a displacement from the stroke's start: the stroke engages at zero.
            strokeStarts = false
            sample.hand = .zero
            _ = teleop.update(sample)
        }
        sample.hand = tipHand
        let demand = teleop.update(sample)
        guard demand.active, state.position.count == model.jointCount, state.position.isFinite else { return zeroJoints }
        // The error is the fused estimate's; the step is the model's, from where the model puts the tip.
        let error = tipAnchor + demand.tipOffset - inner.lastEstimate.position
        guard error.isFinite, error.length > 0.2 else { return zeroJoints }
        let q = state.position
        let next = model.dlsStep(q, target: model.calcTipPose(q).translation + error, options: DLSOptions(maxError: 5))
        var v = zeroJoints
        for j in 0..<v.count {
            let limit = model.maxVelocity[j] * teleop.settings.velocityFraction
            v[j] = min(max((next[j] - q[j]) * Self.tipGain, -limit), limit)
        }
        return v
    }
}

/// The simulated patient behind the cycle: the physics catheter on emulated drives (whose safety
/// lines only the monitor's permits power), with the cycle's side of the safety channel, the
/// catheter's shape published for the renderer, and each cycle's record completed after its write.
/// On a drive link (`drives`), the cycle reads and writes the link's drives instead, and the
/// physics catheter follows the joints they report: the rendered catheter is where they put it.
public struct LivePatient: ~Copyable, RobotHardware {
    var physics: CatheterPhysicsRobot
    /// The link's drives (`linked` false: the physics catheter's own drives).
    var drives: LinkDrives
    /// Drives this process emulates have no patient of their own: the insertion force the cycle
    /// reads is the simulated patient's. A real device's force sensor reads the real one.
    let patientForce: Bool
    /// The emulated drives' insertion force sensor (mN; nil: none), on which the simulated
    /// patient's catheter presses: written every cycle with its contact force.
    let forceSensor: UnsafeMutablePointer<Int64>?
    /// On a link: the physics catheter follows the drives' joints each cycle (false: it stands
    /// where it started, and costs the cycle nothing; `LiveSettings.patientFollowsDrives`).
    let patientFollows: Bool
    /// The link delivered a state at least once (before that the physics holds its start).
    var haveState = false
    /// Set-up fetched the drives' state; the next read passes it on if the link has none newer.
    var primed = false
    let shared: LiveShared
    let rings: CycleRings
    var link: SafetyLink
    var lastState: JointState
    var cycles = 0
    /// The simulated patient's own time (ns): it follows the cycle's clock, but by at most
    /// `maxStep` per cycle, so a cycle thread the scheduler held back (a loaded machine) slows
    /// the patient down instead of making the drives and the rod integrate the stall in one step
    /// (which the drives' own processors, on hardware, would never see).
    var patientTime: Nanoseconds = 0
    var lastWallTime: Nanoseconds = 0
    public var maxStep: Nanoseconds = 2_000_000
    /// Publish the catheter's shape every this many cycles (the renderer needs it at most at 30 fps).
    let snapshotEvery: Int
    /// ns — a permit older than this no longer powers the drives (their safety input's watchdog).
    let permitWatchdog: Nanoseconds

    public init(physics: consuming CatheterPhysicsRobot, shared: LiveShared, link: consuming SafetyLink, watchdog: Double = 0.1, snapshotEvery: Int = 5,
                drives: consuming LinkDrives? = nil, patientForce: Bool = true, forceSensor: UnsafeMutablePointer<Int64>? = nil,
                patientFollows: Bool = true) {
        // On a link the drives' own safety input takes the permits (their side of the channel).
        if link.enabled, link.servesDrives { physics.armSafetyLine(watchdog: watchdog) }
        lastState = JointState(jointCount: physics.jointCount)
        self.drives = drives.take() ?? LinkDrives(none: physics.jointCount)
        self.patientForce = patientForce
        self.forceSensor = forceSensor
        self.patientFollows = patientFollows
        self.physics = physics
        self.shared = shared
        self.link = link
        rings = CycleRings(shared)
        self.snapshotEvery = max(1, snapshotEvery)
        permitWatchdog = Nanoseconds(watchdog * 1e9)
        self.drives.counters = shared.linkCounters.writer
        if self.drives.linked { shared.linkCounters.writer.report(.readFaults) }
    }

    public var jointCount: Int { physics.jointCount }
    public mutating func configure() throws(HardwareError) {
        guard drives.linked else { return try physics.configure() }
        try drives.configure()
        // The runner reads the state once after this, and the controller starts from it: drives
        // answer only a command, so one hold with enable 0 (bring-up steps 3 and 4 of
        // docs/protocol.md) fetches where they stand, handed to that first read. Not real-time.
        var hold = JointCommand(jointCount: jointCount)
        hold.setHold(enable: false)
        var state = JointState(jointCount: jointCount)
        let deadline = MonotonicClock.now() + 2_000_000_000
        while MonotonicClock.now() < deadline {
            _ = drives.write(hold, now: MonotonicClock.now())
            usleep(5000)
            if drives.read(into: &state, now: MonotonicClock.now()) == nil {
                lastState = state
                haveState = true
                primed = true
                return
            }
        }
        throw HardwareError("no state from the drives on the link within 2 s of the handshake")
    }
    public mutating func activate() throws(HardwareError) { if drives.linked { try drives.activate() } else { try physics.activate() } }
    public mutating func deactivate() { if drives.linked { drives.deactivate() } else { physics.deactivate() } }
    public mutating func shutdown() { if drives.linked { drives.shutdown() } else { physics.shutdown() } }
    public var driveFault: DriveFaultReport? { drives.linked ? drives.driveFault : physics.driveFault }
    public mutating func acknowledgeFaults() throws(HardwareError) {
        if drives.linked { try drives.acknowledgeFaults() } else { try physics.acknowledgeFaults() }
    }
    /// The link's counters by name (nil without a link), as of the last cycle.
    public var linkStatistics: [String: Int]? { drives.statistics }
    /// The true tip (mm), for figures.
    public var tip: Vec3 { physics.tip }
    public var peakContactForce: Double { physics.peakContactForce }
    public var peakPushForce: Double { physics.peakPushForce }
    /// Whether any drive's power stage is on.
    public var anyPowered: Bool { (0..<physics.jointCount).contains { physics.safetySample(axis: $0).powered } }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault? {
        link.takePermits(into: physics, now: now)
        link.takeStatus(now: now)
        if lastWallTime == 0 { patientTime = now } else {
            let step = now - lastWallTime
            patientTime += step < 0 ? 0 : step > maxStep ? maxStep : step
        }
        lastWallTime = now
        if drives.linked {
            var fault = drives.read(into: &state, now: now)
            // The permits after the drives' state: a link's drives take them on their own safety
            // input, which records each before it acts on it, so a state that shows the power
            // taken comes after the permit that took it. Read before, a permit withdrawn between
            // the two made the power stage found off a drive fault (category 0) instead of the
            // monitor's stop (its own category).
            let permitted = noteMonitor(now: now)
            if fault == .driveFault, !permitted {
                let r = drives.powerRemovedBySafetyInput()
                if r.cleared { fault = r.outcome }
            }
            // Counted as the cycle runner counts them (a drive fault is the drive's, not the
            // link's), and published at once for readers while the run goes on.
            if let f = fault, f != .driveFault, let w = drives.counters { w.increment(.readFaults) }
            if fault == nil {
                haveState = true
            } else if primed {
                // The first read after set-up: where the drives stood at the handshake.
                state.position = lastState.position
                state.velocity = lastState.velocity
            }
            primed = false
            if patientForce { state.insertionForce = physics.pushForce }
            lastState = state
            return fault
        }
        _ = noteMonitor(now: now)
        let fault = physics.read(into: &state, now: patientTime)
        lastState = state
        return fault
    }

    /// Publishes whether the monitor stops the drives for the controller (`monitorStopFlag`):
    /// stopping too when its permits ran out (a monitor killed or hung), as the drives' safety
    /// input removes power then as it does on a stop the monitor sends. Returns whether it
    /// permits power.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    func noteMonitor(now: Nanoseconds) -> Bool {
        let permitted = link.powerPermitted(now: now, watchdog: permitWatchdog)
        let stopping = link.monitorStops ? (link.monitorLatched ? LiveShared.monitorStopsLatched : LiveShared.monitorStops)
            : !permitted ? LiveShared.monitorPermitsLapsed : 0
        SharedIndex.store(rings.flags + LiveShared.monitorStopFlag, stopping)
        return permitted
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        let wake = rings.flags[LiveShared.wakeFlag]
        let compute = now - wake
        // The write comes `compute` after the read: the patient's time moves on by as much.
        let patientNow = patientTime + (compute < maxStep ? compute : maxStep)
        let fault: HardwareFault?
        if drives.linked {
            // The monitor's permit decides whether link drives may have power. Asking for power
            // it has not permitted (before the operator's first acknowledge, or once it withdrew
            // it) reads on the link as the power stage failing: a drive fault that ended a
            // console's run before anyone had logged in.
            var sent = command
            if !link.powerPermitted(now: now, watchdog: permitWatchdog) { sent.enable = false }
            fault = drives.write(sent, now: now)
            if haveState, patientFollows { physics.follow(lastState.position, now: patientNow) }
            if let sensor = forceSensor {
                let f = physics.pushForce
                let mN = f.isFinite ? (f > 1e6 ? 1e6 : f < -1e6 ? -1e6 : f) * 1000 : 0
                SharedIndex.store(sensor, Int64(mN))
            }
        } else {
            fault = physics.write(command, now: patientNow)
        }
        if link.enabled {
            let f = rings.flags
            let gap = link.send(physics: physics, command: command, now: now, commandAt: wake, imageGuided: f[LiveShared.imageGuidedFlag] != 0,
                                imageAcquiredAt: f[LiveShared.imageAtFlag], imageTip: rings.imageTip, linkErrors: drives.errorCounts,
                                deadman: SharedIndex.load(f + LiveShared.deadmanFlag) != 0,
                                acknowledge: Self.takeOne(f + LiveShared.acknowledgeFlag))
            if gap > 0 { rings.heartbeatGap.push(gap) }
        }
        cycles &+= 1
        if cycles % snapshotEvery == 0, patientFollows || !drives.linked {
            let buffer = rings.catheter.beginWrite()
            let n = physics.copyCenterline(into: buffer, capacity: rings.catheter.capacity)
            rings.catheter.endWrite(count: n, time: now, tip: n > 0 ? buffer[n - 1] : .zero)
        }
        rings.compute.push(compute)
        rings.record.pointee.compute = compute
        rings.record.pointee.command = command
        rings.records.push(rings.record.pointee)
        return fault
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    static func takeOne(_ counter: UnsafeMutablePointer<Int64>) -> Bool {
        // Only the cycle thread changes this cell (acknowledge intents reach it through the queue).
        let n = SharedIndex.load(counter)
        if n <= 0 { return false }
        SharedIndex.store(counter, n - 1)
        return true
    }
}

/// The cycle's ends of the shared rings and locks: plain pointers into storage the `LiveShared`
/// (which every holder also keeps) owns, so the cycle touches no reference.
struct CycleRings: @unchecked Sendable {
    let intents: IntentRing.Consumer
    let published: PublishedCycleLock.Writer
    let lateness: DurationRing.Producer
    let latenessImaging: DurationRing.Producer
    let fuseLatency: DurationRing.Producer
    let heartbeatGap: DurationRing.Producer
    let compute: DurationRing.Producer
    let catheter: CatheterSnapshot.Writer
    let records: CycleRecordRing.Producer
    let record: UnsafeMutablePointer<CycleRecord>
    let imageTip: UnsafeMutablePointer<Int64>
    /// [wake, deadman held, acknowledge requests, image guided, image acquired at, stop latched, imaging on, deadman timeouts,
    /// count allocations from, the monitor stops the drives]
    let flags: UnsafeMutablePointer<Int64>

    init(_ shared: LiveShared) {
        intents = shared.intents.consumer
        published = shared.published.writer
        lateness = shared.lateness.producer
        latenessImaging = shared.latenessImaging.producer
        fuseLatency = shared.fuseLatency.producer
        heartbeatGap = shared.heartbeatGap.producer
        compute = shared.compute.producer
        catheter = shared.catheter.writer
        records = shared.recorderRecords.producer
        record = shared.record
        imageTip = shared.imageTip.cells
        flags = shared.flags
    }
}
