import Core

/// What the monitor sees in one cycle: its own readings of the drives (through its own
/// channel, never through the control stack), the newest control heartbeat, the imaging
/// timestamps, the link counters and the operator's inputs. Plain values: copying it is free.
public struct MonitorInputs: Sendable, Equatable {
    /// Monitor time (ns).
    public var now: Nanoseconds
    /// When the drives sampled the readings below (ns); a sample that does not advance is lost.
    public var sampledAt: Nanoseconds
    /// (nJoints) the monitor's own load-side position sensors (mm or rad).
    public var position: JointVector
    /// (nJoints) the drives' motor encoders as the drives report them (joint units).
    public var encoderPosition: JointVector
    /// (nJoints) joint velocities (units/s).
    public var velocity: JointVector
    /// (nJoints) motor currents (A).
    public var current: JointVector
    /// Insertion force (N).
    public var insertionForce: Double

    /// The newest control heartbeat: its sequence (advances every control cycle) and the
    /// command it carried. `commandActive` is true when the drives were asked to follow
    /// `commandedPosition` with power on.
    public var heartbeatSequence: UInt64
    /// When the control cycle sent that heartbeat (its own clock, ns).
    public var heartbeatSentAt: Nanoseconds
    public var commandActive: Bool
    public var commandedPosition: JointVector
    public var commandedVelocity: JointVector

    /// Image-guided mode, and the acquisition time of the newest image the control acts on (ns).
    public var imageGuided: Bool
    public var imageAcquiredAt: Nanoseconds
    /// The newest tip the images measured in 3D (mm, world; both planes of a biplane C-arm), a
    /// second sensor path to the tip beside the joints, and when its frames were acquired
    /// (ns; 0: none). Only `along_lumen` tip evidence uses it.
    public var imageTip: Vec3
    public var imageTipAcquiredAt: Nanoseconds

    /// Cumulative link counters (frames lost, CRC errors, working-counter errors) over the
    /// control link and the monitor's own channel.
    public var lostFrames: UInt64
    public var crcErrors: UInt64
    public var wkcErrors: UInt64

    /// The operator's enabling device is held; the acknowledge (reset) button is pressed.
    public var deadman: Bool
    public var acknowledge: Bool

    public init(jointCount: Int) {
        now = 0
        sampledAt = 0
        position = JointVector(count: jointCount)
        encoderPosition = JointVector(count: jointCount)
        velocity = JointVector(count: jointCount)
        current = JointVector(count: jointCount)
        insertionForce = 0
        heartbeatSequence = 0
        heartbeatSentAt = 0
        commandActive = false
        commandedPosition = JointVector(count: jointCount)
        commandedVelocity = JointVector(count: jointCount)
        imageGuided = false
        imageAcquiredAt = 0
        imageTip = .zero
        imageTipAcquiredAt = 0
        lostFrames = 0
        crcErrors = 0
        wkcErrors = 0
        deadman = false
        acknowledge = false
    }
}

/// One detected fault: when, which check, on which joint, the value against the limit, and the
/// reaction.
public struct FaultRecord: Sendable, Equatable {
    public var time: Nanoseconds
    public var check: SafetyCheck
    /// The joint (or no-go zone) concerned; −1 when the check is not per joint.
    public var index: Int8
    public var value: Double
    public var limit: Double
    public var category: StopCategory

    @inlinable public init(time: Nanoseconds, check: SafetyCheck, index: Int8, value: Double, limit: Double, category: StopCategory) {
        self.time = time
        self.check = check
        self.index = index
        self.value = value
        self.limit = limit
        self.category = category
    }

    @inlinable static var empty: FaultRecord { FaultRecord(time: 0, check: .startup, index: -1, value: 0, limit: 0, category: .zero) }
}

/// The monitor's decision for one cycle.
public struct Verdict: Sendable {
    /// The safe-torque-off line: true lets the drives have power.
    public var permit: Bool
    /// The drives must make a controlled stop (decelerate to zero and hold), ignoring the host.
    public var controlledStop: Bool
    /// The most severe stop category in effect; nil when nothing is latched.
    public var category: StopCategory?
    /// Checks latched now (bits of `SafetyCheck.bit`).
    public var latched: UInt32
    /// Checks whose condition is present now.
    public var active: UInt32
    /// Faults that latched in this step.
    @usableFromInline var newFaultStorage: InlineArray<16, FaultRecord>
    @usableFromInline var _newFaultCount: Int
    /// How many faults latched in this step.
    public var newFaultCount: Int { @_noAllocation @_noLocks get { _newFaultCount } }

    @inlinable init() {
        permit = false
        controlledStop = false
        category = nil
        latched = 0
        active = 0
        newFaultStorage = InlineArray(repeating: .empty)
        _newFaultCount = 0
    }

    /// The `i`-th fault that latched in this step.
    @_noAllocation @_noLocks
    public func newFault(_ i: Int) -> FaultRecord { newFaultStorage[i] }
    /// The faults that latched in this step (allocates; for logs and tests).
    public var newFaults: [FaultRecord] { (0..<newFaultCount).map { newFaultStorage[$0] } }

    /// Whether joint `axis` may have power. Every check stops the whole robot: the catheter's
    /// joints move the tip together, and stopping one of them alone bends its path unpredictably.
    @inlinable public func enableAllowed(axis: Int) -> Bool { permit }

    @usableFromInline mutating func add(_ r: FaultRecord) {
        if _newFaultCount < 16 {
            newFaultStorage[_newFaultCount] = r
            _newFaultCount += 1
        }
    }
}

/// The monitor's mutable data, sized once: latches, timers, the previous command and the link
/// error buckets. Start-up latches `startup`: nothing gets power until an operator acknowledges.
public struct MonitorState: Sendable {
    public internal(set) var latched: UInt32 = SafetyCheck.startup.bit
    public internal(set) var active: UInt32 = 0
    /// The first fault record of each latched check.
    @usableFromInline var records: InlineArray<16, FaultRecord> = InlineArray(repeating: .empty)
    var acknowledgeWasPressed = false
    /// The heartbeat sequence last seen and when it last advanced (monitor time; 0: never).
    var lastSequence: UInt64 = 0
    public internal(set) var sequenceAdvancedAt: Nanoseconds = 0
    /// The previous fresh command and when the control sent it (for the velocity it implies).
    var previousCommand: JointVector
    var previousCommandAt: Nanoseconds = 0
    var hasPreviousCommand = false
    /// Monitor's own channel: the last sample time and missing samples in a row.
    var lastSampledAt: Nanoseconds = 0
    public internal(set) var consecutiveLost = 0
    /// Link counters last seen and the leaky buckets.
    var lastLost: UInt64 = 0, lastCRC: UInt64 = 0, lastWKC: UInt64 = 0
    var countersSeen = false
    /// Monitor time of the last step that leaked the buckets for new heartbeats (0: never).
    var leakedAt: Nanoseconds = 0
    public internal(set) var lostBucket = 0.0, crcBucket = 0.0, wkcBucket = 0.0
    /// Controlled stop: when it began (0: not stopping) and whether power has been removed.
    public internal(set) var stopStartedAt: Nanoseconds = 0
    public internal(set) var powerRemoved = true
    public internal(set) var cycles: Int64 = 0

    public init(model: MonitorModel) {
        previousCommand = JointVector(count: model.jointCount)
        records[SafetyCheck.startup.index] = FaultRecord(time: 0, check: .startup, index: -1, value: 0, limit: 0, category: .zero)
    }

    /// True when `check` is latched.
    public func isLatched(_ check: SafetyCheck) -> Bool { latched & check.bit != 0 }

    /// The record that latched `check`, if it is latched.
    public func record(_ check: SafetyCheck) -> FaultRecord? { isLatched(check) ? records[check.index] : nil }
}

/// The rule engine: a pure function of the model, the state and this cycle's inputs. No I/O, no
/// allocation, no locks; the process around it reads the channel, writes the enable line and
/// drains the new faults into its log.
public enum Monitor {
    /// One monitor cycle.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public static func step(_ model: MonitorModel, _ state: inout MonitorState, _ inputs: MonitorInputs) -> Verdict {
        var verdict = Verdict()
        var conditions = Conditions()
        let now = inputs.now
        let n = model.jointCount
        state.cycles &+= 1

        // Readings that are not numbers: nothing below can be trusted to compare them.
        let finite = inputs.position.isFinite && inputs.encoderPosition.isFinite && inputs.velocity.isFinite
            && inputs.current.isFinite && inputs.insertionForce.isFinite
            && inputs.commandedPosition.isFinite && inputs.commandedVelocity.isFinite
        if !finite { conditions.set(.invalidInput, index: -1, value: .nan, limit: 0) }

        // Control heartbeat: its sequence must keep advancing.
        let previousSequence = state.lastSequence
        let newHeartbeat = inputs.heartbeatSequence != previousSequence
        if newHeartbeat {
            state.lastSequence = inputs.heartbeatSequence
            state.sequenceAdvancedAt = now
        }
        let heartbeatAge = state.sequenceAdvancedAt == 0 ? Nanoseconds.max : elapsed(now, since: state.sequenceAdvancedAt)
        let heartbeatFresh = heartbeatAge <= model.heartbeatTimeout
        if !heartbeatFresh {
            let ageMS = state.sequenceAdvancedAt == 0 ? Double.infinity : Double(heartbeatAge) * 1e-6
            conditions.set(.heartbeat, index: -1, value: ageMS, limit: Double(model.heartbeatTimeout) * 1e-6)
        }

        // The monitor's own channel: a sample that does not advance is a lost one.
        if inputs.sampledAt > state.lastSampledAt {
            state.lastSampledAt = inputs.sampledAt
            state.consecutiveLost = 0
        } else if state.consecutiveLost < Int.max {
            state.consecutiveLost += 1
        }
        // No reading of the drives yet: the position, velocity and force the checks below see
        // are the zeros the inputs start with, not the robot's. Start-up stays present until a
        // first drive sample arrives, so no acknowledge can permit power on them (a loaded
        // machine can start the monitor, and see the operator's acknowledge, long before the
        // drives' first sample: the link check below allows `maxConsecutiveLost` cycles).
        if state.lastSampledAt == 0 { conditions.set(.startup, index: -1, value: 0, limit: 1) }
        if state.consecutiveLost >= model.maxConsecutiveLost {
            conditions.set(.link, index: -1, value: Double(state.consecutiveLost), limit: Double(model.maxConsecutiveLost))
        }

        // Link error counters, through leaky buckets. They leak per control cycle run (the
        // heartbeat's sequence counts them), never faster than the nominal rate: a link that
        // slows with its cycle is held to the same fraction of corrupt exchanges, not to a
        // count per second that a slow link with a third of its replies corrupt stays under.
        let cyclesRun = linkCycles(model, leakedAt: state.leakedAt, previousSequence: previousSequence, sequence: inputs.heartbeatSequence, now: now)
        if state.countersSeen {
            state.lostBucket = leak(state.lostBucket, delta(inputs.lostFrames, state.lastLost), model.lostLeak * cyclesRun)
            state.crcBucket = leak(state.crcBucket, delta(inputs.crcErrors, state.lastCRC), model.crcLeak * cyclesRun)
            state.wkcBucket = leak(state.wkcBucket, delta(inputs.wkcErrors, state.lastWKC), model.wkcLeak * cyclesRun)
        }
        state.countersSeen = true
        if cyclesRun > 0 { state.leakedAt = now }
        state.lastLost = inputs.lostFrames
        state.lastCRC = inputs.crcErrors
        state.lastWKC = inputs.wkcErrors
        if state.lostBucket > model.lostBurst { conditions.set(.link, index: -1, value: state.lostBucket, limit: model.lostBurst) }
        if state.crcBucket > model.crcBurst { conditions.set(.crc, index: -1, value: state.crcBucket, limit: model.crcBurst) }
        if state.wkcBucket > model.wkcBurst { conditions.set(.workingCounter, index: -1, value: state.wkcBucket, limit: model.wkcBurst) }

        // Joint limits on the monitor's own readings; travel also where a stop begun now would end.
        let resting = model.stoppingPosture(inputs.position, inputs.velocity)
        for i in 0..<n {
            let q = inputs.position[i]
            checkTravel(model, i, q, &conditions)
            checkTravel(model, i, resting[i], &conditions)
            let v = abs(inputs.velocity[i])
            if v > model.maxVelocity[i] { conditions.set(.velocity, index: i, value: inputs.velocity[i], limit: model.maxVelocity[i]) }
            let a = abs(inputs.current[i])
            if a > model.maxCurrent[i] { conditions.set(.current, index: i, value: inputs.current[i], limit: model.maxCurrent[i]) }
            let mismatch = abs(inputs.encoderPosition[i] - q)
            if mismatch > model.maxEncoderMismatch[i] {
                conditions.set(.encoder, index: i, value: mismatch, limit: model.maxEncoderMismatch[i])
            }
        }
        if model.insertionForceExceeded(inputs.insertionForce) {
            conditions.set(.force, index: -1, value: inputs.insertionForce, limit: model.maxInsertionForce)
        }

        // The tip, where the joints are and where it would come to rest.
        let geometry = model.geometry
        if geometry.alongLumen {
            checkLength(geometry, inputs.position, &conditions)
            checkLength(geometry, resting, &conditions)
            checkImageTip(model, inputs, &conditions)
        } else {
            checkTip(geometry, geometry.tipPosition(inputs.position), &conditions)
            checkTip(geometry, geometry.tipPosition(resting), &conditions)
        }

        // The command, while the control is alive and asks the drives to follow it: it must be
        // inside the limits, no faster than allowed (also as implied by consecutive commands),
        // keep the tip in the lumen, and be followed.
        let following = heartbeatFresh ? inputs.commandActive : false
        if following {
            let commandedRest = model.stoppingPosture(inputs.commandedPosition, inputs.commandedVelocity)
            for i in 0..<n {
                checkTravel(model, i, inputs.commandedPosition[i], &conditions)
                checkTravel(model, i, commandedRest[i], &conditions)
                let v = inputs.commandedVelocity[i]
                if abs(v) > model.maxVelocity[i] { conditions.set(.velocity, index: i, value: v, limit: model.maxVelocity[i]) }
            }
            if newHeartbeat, state.hasPreviousCommand, inputs.heartbeatSentAt > state.previousCommandAt {
                // Consecutive commands: their difference over the time between their sending
                // (the control's own timestamps, so arrival jitter cannot fake a speed).
                let dt = Double(elapsed(inputs.heartbeatSentAt, since: state.previousCommandAt)) * 1e-9
                for i in 0..<n {
                    let implied = (inputs.commandedPosition[i] - state.previousCommand[i]) / dt
                    if abs(implied) > model.maxVelocity[i] { conditions.set(.velocity, index: i, value: implied, limit: model.maxVelocity[i]) }
                }
            }
            if geometry.alongLumen {
                checkLength(geometry, inputs.commandedPosition, &conditions)
                checkLength(geometry, commandedRest, &conditions)
            } else {
                checkTip(geometry, geometry.tipPosition(inputs.commandedPosition), &conditions)
                checkTip(geometry, geometry.tipPosition(commandedRest), &conditions)
            }
            if !state.isStopping {
                for i in 0..<n {
                    let e = abs(inputs.commandedPosition[i] - inputs.position[i])
                    if e > model.maxTrackingError[i] { conditions.set(.tracking, index: i, value: e, limit: model.maxTrackingError[i]) }
                }
            }
            if newHeartbeat {
                state.previousCommand = inputs.commandedPosition
                state.previousCommandAt = inputs.heartbeatSentAt
                state.hasPreviousCommand = true
            }
        } else {
            state.hasPreviousCommand = false
        }

        // Images: in image-guided mode the newest one must be recent, and not from the future.
        if inputs.imageGuided {
            let age = elapsed(now, since: inputs.imageAcquiredAt)
            var stale = age > model.imageMaxAge
            if elapsed(inputs.imageAcquiredAt, since: now) > model.period { stale = true }
            if stale { conditions.set(.imageStale, index: -1, value: Double(age) * 1e-6, limit: Double(model.imageMaxAge) * 1e-6) }
        }

        if !inputs.deadman { conditions.set(.deadman, index: -1, value: 0, limit: 1) }

        // Latch what is present; log what latched now.
        state.active = conditions.mask
        for raw in 0..<16 {
            let bit = UInt32(1) << UInt32(raw)
            if conditions.mask & bit != 0, state.latched & bit == 0 {
                state.latched |= bit
                var record = conditions.records[raw]
                record.time = now
                record.category = model.category(record.check)
                state.records[raw] = record
                verdict.add(record)
            }
        }

        // An acknowledge (its rising edge) releases every latch whose condition has cleared.
        let pressed = inputs.acknowledge
        if pressed, !state.acknowledgeWasPressed {
            state.latched &= conditions.mask
        }
        state.acknowledgeWasPressed = pressed
        // A stop that does not latch (the deadman's) ends with its condition: nothing to acknowledge.
        state.latched &= ~(SafetyCheck.selfClearing & ~conditions.mask)

        decideReaction(model, &state, inputs, &verdict)
        verdict.latched = state.latched
        verdict.active = state.active
        return verdict
    }

    /// Category 0: power off now. Category 1: controlled stop, power off at standstill or after
    /// the maximum stop time. Category 2: controlled stop, power kept. Nothing latched: run.
    @_noAllocation @_noLocks
    static func decideReaction(_ model: MonitorModel, _ state: inout MonitorState, _ inputs: MonitorInputs, _ verdict: inout Verdict) {
        var worst: StopCategory? = nil
        for raw in 0..<16 {
            let bit = UInt32(1) << UInt32(raw)
            if state.latched & bit != 0 {
                let c = model.category(state.records[raw].check)
                if let w = worst {
                    if c < w { worst = c }
                } else {
                    worst = c
                }
            }
        }
        verdict.category = worst
        guard let category = worst else {
            state.stopStartedAt = 0
            state.powerRemoved = false
            verdict.permit = true
            verdict.controlledStop = false
            return
        }
        if state.stopStartedAt == 0 { state.stopStartedAt = inputs.now }
        verdict.controlledStop = true
        switch category {
        case .zero:
            state.powerRemoved = true
        case .one:
            var still = true
            for i in 0..<model.jointCount {
                if abs(inputs.velocity[i]) > model.standstillFraction * model.maxVelocity[i] { still = false }
            }
            if !inputs.velocity.isFinite { still = false }
            // Not at the first stopping cycle: the readings are from before the stop began.
            if inputs.now == state.stopStartedAt { still = false }
            if still { state.powerRemoved = true }
            if elapsed(inputs.now, since: state.stopStartedAt) >= model.stopMaxTime { state.powerRemoved = true }
        case .two:
            break
        }
        verdict.permit = !state.powerRemoved
    }

    @_noAllocation @_noLocks
    static func checkTravel(_ model: MonitorModel, _ i: Int, _ q: Double, _ conditions: inout Conditions) {
        if q < model.lower[i] { conditions.set(.position, index: i, value: q, limit: model.lower[i]) }
        if q > model.upper[i] { conditions.set(.position, index: i, value: q, limit: model.upper[i]) }
    }

    @_noAllocation @_noLocks
    static func checkTip(_ geometry: TipGeometry, _ tip: Vec3, _ conditions: inout Conditions) {
        let outside = geometry.outsideLumen(tip)
        if !(outside <= 0) { conditions.set(.lumen, index: -1, value: outside, limit: 0) }
        let inside = geometry.insideNoGo(tip)
        if inside.depth > 0 { conditions.set(.noGo, index: inside.zone, value: inside.depth, limit: 0) }
    }

    /// Along the lumen, from the joints: more catheter out of the sheath than the longest way
    /// through the corridor (its centreline, plus the outer walls' detour round its bends) cannot
    /// lie inside it unfolded, however the walls bend it (index 0).
    @_noAllocation @_noLocks
    static func checkLength(_ geometry: TipGeometry, _ q: JointVector, _ conditions: inout Conditions) {
        let out = geometry.lengthOut(q)
        let longest = geometry.corridorLength + geometry.corridorSlack
        if !(out <= longest) { conditions.set(.lumen, index: 0, value: out, limit: longest) }
    }

    /// Along the lumen, from the images: the newest image-measured tip must lie in the corridor
    /// and out of the no-go zones (index 1), and no further along the corridor than the
    /// catheter's length reaches (index 2): a tip the catheter cannot reach means one of the two
    /// sensor paths is wrong, and the monitor then trusts neither. While image-guided, a
    /// missing or old image tip is a stale image (index 1): the monitor moves nothing in that
    /// mode on a tip it cannot check.
    @_noAllocation @_noLocks
    static func checkImageTip(_ model: MonitorModel, _ inputs: MonitorInputs, _ conditions: inout Conditions) {
        let at = inputs.imageTipAcquiredAt
        let age = elapsed(inputs.now, since: at)
        let fresh = at > 0 ? (age <= model.imageMaxAge ? elapsed(at, since: inputs.now) <= model.period : false) : false
        if !fresh {
            if inputs.imageGuided {
                let ageMS = at > 0 ? Double(age) * 1e-6 : Double.infinity
                conditions.set(.imageStale, index: 1, value: ageMS, limit: Double(model.imageMaxAge) * 1e-6)
            }
            return
        }
        let geometry = model.geometry
        let tip = inputs.imageTip
        let outside = geometry.measuredTipOutsideLumen(tip)
        if !(outside <= 0) { conditions.set(.lumen, index: 1, value: outside, limit: 0) }
        let inside = geometry.insideNoGo(tip)
        if inside.depth > 0 { conditions.set(.noGo, index: inside.zone, value: inside.depth, limit: 0) }
        // How far the catheter could reach: its length out now, plus the inner-wall shortcut
        // of the bends before the tip, plus the lumen's width at the tip (the measured point
        // may lie off the centreline), plus what the catheter may have withdrawn since the
        // frames were taken, at the insertion's speed limit.
        let along = geometry.alongCorridor(tip)
        let withdrawn = model.maxVelocity[0] * Double(age) * 1e-9
        let reach = geometry.lengthOut(inputs.position) + along.shortcut + along.radius + geometry.tipMargin + withdrawn
        if !(along.arc <= reach) { conditions.set(.lumen, index: 2, value: along.arc, limit: reach) }
    }

    /// `later − earlier`, saturated at the ends of the range instead of trapping: inputs come
    /// from other processes, and no time they carry may stop the monitor.
    @_noAllocation @_noLocks
    @inline(__always) static func elapsed(_ later: Nanoseconds, since earlier: Nanoseconds) -> Nanoseconds {
        let (d, overflow) = later.subtractingReportingOverflow(earlier)
        if !overflow { return d }
        return later > earlier ? .max : .min
    }

    @_noAllocation @_noLocks
    @inline(__always) static func delta(_ now: UInt64, _ before: UInt64) -> Double {
        // A counter that went backwards was reset: count nothing for this step.
        now >= before ? Double(now - before) : 0
    }

    /// Control cycles since the previous step for the link's buckets: the heartbeat sequence's
    /// advance (a sequence that went back, a restarted control, counts one), and none while no
    /// new heartbeat arrives. At most one more than the nominal cycles in the monitor's own
    /// time since the last heartbeat it leaked for: a sequence that jumps cannot empty the
    /// buckets, while heartbeats that arrive together after a delay, or a step a little early
    /// (scheduling jitter), still leak the cycles that ran.
    @_noAllocation @_noLocks
    @inline(__always) static func linkCycles(_ model: MonitorModel, leakedAt: Nanoseconds, previousSequence: UInt64,
                                             sequence: UInt64, now: Nanoseconds) -> Double {
        if sequence == previousSequence { return 0 }
        let advanced = sequence > previousSequence ? Double(sequence - previousSequence) : 1
        let since = leakedAt == 0 ? model.period : elapsed(now, since: leakedAt)
        let nominal = Double(max(0, since)) / Double(model.period)
        return min(advanced, nominal + 1)
    }

    @_noAllocation @_noLocks
    @inline(__always) static func leak(_ bucket: Double, _ added: Double, _ leakPerCycle: Double) -> Double {
        max(0, bucket + added - leakPerCycle)
    }
}

extension MonitorState {
    var isStopping: Bool { stopStartedAt != 0 }
}

/// The conditions found in one step, with the first record per check.
struct Conditions {
    var mask: UInt32 = 0
    var records: InlineArray<16, FaultRecord> = InlineArray(repeating: .empty)

    @_noAllocation @_noLocks
    mutating func set(_ check: SafetyCheck, index: Int, value: Double, limit: Double) {
        let bit = check.bit
        if mask & bit == 0 {
            mask |= bit
            records[check.index] = FaultRecord(time: 0, check: check, index: Int8(truncatingIfNeeded: index), value: value, limit: limit, category: .zero)
        }
    }
}
