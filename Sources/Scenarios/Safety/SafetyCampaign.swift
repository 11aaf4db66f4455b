import Control
import Core
import Foundation
import Safety
import Sim

/// The kinds of fault the campaign injects, one per hazard cause in docs/safety/hazards.md.
public enum FaultKind: String, CaseIterable, Sendable, Codable {
    case controlKilled = "control_killed"
    case controlHung = "control_hung"
    case monitorKilled = "monitor_killed"
    case position
    case velocity
    case overcurrent = "current"
    case runaway
    case jam
    case stuckEncoder = "stuck_encoder"
    case force
    case noGo = "no_go"
    case lumen
    case imageStale = "image_stale"
    case linkLoss = "link_loss"
    case crc
    case workingCounter = "working_counter"
    case deadman
    case sensorNaN = "sensor_nan"

    /// The checks that count as detecting this fault (the monitor-killed case is detected by
    /// the drives' own watchdog instead).
    public var expected: Set<SafetyCheck> {
        switch self {
        case .controlKilled, .controlHung: [.heartbeat]
        case .monitorKilled: []
        case .position: [.position]
        case .velocity: [.velocity]
        case .overcurrent: [.current]
        case .runaway: [.current, .velocity, .tracking, .encoder]
        case .jam: [.current, .tracking]
        case .stuckEncoder: [.encoder, .tracking, .velocity, .current]
        case .force: [.force]
        case .noGo: [.noGo]
        case .lumen: [.lumen]
        case .imageStale: [.imageStale]
        case .linkLoss: [.link]
        case .crc: [.crc]
        case .workingCounter: [.workingCounter]
        case .deadman: [.deadman]
        case .sensorNaN: [.invalidInput]
        }
    }

    /// The reaction-time target (ms), measured from `onset`; nil where the criterion is that the
    /// tip never crosses the boundary (no_go, lumen).
    public var targetMS: Double? {
        switch self {
        case .controlKilled, .controlHung, .monitorKilled, .linkLoss, .crc, .workingCounter: 10
        case .noGo, .lumen: nil
        default: 2
        }
    }

    /// What the reaction time is measured from.
    public var onset: String {
        switch self {
        case .imageStale: "the newest image passing its age limit"
        case .stuckEncoder: "the frozen encoder and the load disagreeing by more than the limit"
        case .jam: "the jammed drive's current or its tracking error crossing its limit"
        default: "injection"
        }
    }

    /// How long to watch after injection (simulated).
    var window: Nanoseconds {
        switch self {
        case .imageStale: 600_000_000
        case .noGo, .lumen: 3_000_000_000
        default: 400_000_000
        }
    }
}

public struct CampaignOptions: Sendable {
    public var faults: Int
    public var seed: UInt64
    public var kinds: [FaultKind]
    /// The drives' safety-line watchdog (s).
    public var safetyWatchdog: Double
    /// Warm-up of normal navigation before each injection (s, uniform).
    public var warmUp: ClosedRange<Double>

    public init(faults: Int, seed: UInt64, kinds: [FaultKind] = FaultKind.allCases, safetyWatchdog: Double = 0.005,
                warmUp: ClosedRange<Double> = 0.3...2.5) {
        self.faults = faults
        self.seed = seed
        self.kinds = kinds
        self.safetyWatchdog = safetyWatchdog
        self.warmUp = warmUp
    }
}

/// One injected fault and what came of it.
public struct EpisodeResult: Sendable, Codable {
    public var kind: FaultKind
    /// Joint or zone concerned (−1: none).
    public var index: Int
    public var injectedAtS: Double
    public var detected: Bool
    /// The check that latched first after injection ("drive_watchdog" for a killed monitor).
    public var detectedBy: String?
    /// From onset to the drives' enable dropping or their controlled stop beginning (ms).
    public var reactionMS: Double?
    /// From onset to the monitor's detection (ms).
    public var detectionMS: Double?
    /// For no_go / lumen: how far the true tip got past the true boundary (mm; < 0: it never reached it).
    public var penetrationMM: Double?
    public var withinTarget: Bool
    /// The robot was up (drives enabled, nothing latched) when the fault was injected.
    public var ready: Bool
    /// Faults the monitor latched during the warm-up before this injection (false trips).
    public var warmUpTrips: [String]
}

/// Fault-free operation: trips, and the largest value each check saw against its limit.
public struct NominalResult: Sendable, Codable {
    public struct Margin: Sendable, Codable {
        public var peak: Double
        public var limit: Double
        public init(peak: Double, limit: Double) {
            self.peak = peak
            self.limit = limit
        }
    }
    public var minutes: Double
    public var falseTrips: Int
    public var trips: [String]
    public var margins: [String: Margin]
}

/// The closed loop in simulated time with the monitor beside it: the demo's tip servo on emulated
/// drives (CycleRunner with the campaign's clock), the monitor stepping at 1 kHz on its own
/// readings half a period out of phase, heartbeats delivered with jitter, drives that honour the
/// monitor's safety line through their own watchdog. Faults of every kind are injected one at a
/// time, each after a random stretch of normal navigation.
public final class SafetyCampaign {
    public let description: RobotDescription
    public let limits: SafetyLimits
    public let model: MonitorModel
    public let catheter: CatheterModel
    public let options: CampaignOptions
    public let plant: CampaignPlant
    public private(set) var monitorState: MonitorState
    public private(set) var faultLog = FaultLog(capacity: 4096)
    /// Simulated time run so far (s).
    public var simulatedSeconds: Double { Double(plant.time - startTime) * 1e-9 }

    let startTime: Nanoseconds
    let commandFaults = CommandFaultSwitch()
    var rng: SplitMix64
    let period: Nanoseconds = 1_000_000
    var runner: CycleRunner<CampaignRobot, CampaignController, CampaignClock>
    var tipLog: TipLog
    var sequence: UInt64 = 0
    var pending: [(deliverAt: Nanoseconds, heartbeat: Heartbeat)] = []
    var latest: Heartbeat?
    var lastDelivery: Nanoseconds = 0
    /// Heartbeat delivery delay: uniform 0…this (ns).
    public var heartbeatJitter: Nanoseconds = 1_000_000

    // Nominal peaks, tracked while `trackMargins` is on.
    var trackMargins = false
    var margins: [String: NominalResult.Margin] = [:]

    public init(description: RobotDescription, limits: SafetyLimits, options: CampaignOptions) {
        self.description = description
        self.limits = limits
        self.options = options
        model = MonitorModel(limits)
        catheter = CatheterModel(description)
        var start = JointVector(count: catheter.jointCount)
        start[0] = catheter.lowerLimit[0] + 0.25 * (catheter.upperLimit[0] - catheter.lowerLimit[0])
        start = catheter.clampToLimits(start)
        plant = CampaignPlant(axes: description.axes, start: start, safetyWatchdog: options.safetyWatchdog, seed: options.seed ^ 0x5EED)
        startTime = plant.time
        rng = SplitMix64(seed: options.seed)
        monitorState = MonitorState(model: model)
        tipLog = TipLog(capacity: 16, decimation: 1_000_000)
        runner = Self.makeRunner(plant: plant, catheter: catheter, faults: commandFaults, log: tipLog)
    }

    static func makeRunner(plant: CampaignPlant, catheter: CatheterModel, faults: CommandFaultSwitch, log: TipLog)
        -> CycleRunner<CampaignRobot, CampaignController, CampaignClock> {
        let servo = TipServo(model: catheter, path: TipPath(), log: log)
        let runner = CycleRunner(hardware: CampaignRobot(plant: plant), controller: CampaignController(servo: servo, faults: faults),
                                 clock: CampaignClock(plant: plant), period: 1_000_000)
        try! runner.configure()
        try! runner.activate()
        return runner
    }

    enum ControlState { case running, hung, killed }

    /// One millisecond of the world: control cycle, half a period of motion, a monitor cycle,
    /// the other half. Returns the monitor's verdict (nil when the monitor is dead).
    @discardableResult
    func tick(control: ControlState, monitorAlive: Bool) -> Verdict? {
        plant.hostPresent = false
        switch control {
        case .running:
            runner.runOneCycle()
            sequence += 1
            let command = runner.command
            let state = runner.state
            let following = command.enable && command.mode == .position && state.status.contains(.enabled)
            let hb = Heartbeat(sequence: sequence, sentAt: plant.time, active: following, position: command.position,
                               velocity: command.velocity, imageGuided: plant.imageGuided,
                               imageAcquiredAt: plant.newestImageAcquired + plant.imageTimestampOffset)
            let delay = Nanoseconds(rng.uniform(0, Double(heartbeatJitter)))
            let at = max(plant.time + delay, lastDelivery)
            lastDelivery = at
            pending.append((at, hb))
        case .hung:
            // The cycle is stuck; the link layer keeps sending its last command and heartbeat.
            plant.hostPresent = true
            if let last = pending.last?.heartbeat ?? latest { pending.append((plant.time, last)) }
        case .killed:
            break
        }
        plant.advance(period / 2)
        while let first = pending.first, first.deliverAt <= plant.time {
            latest = first.heartbeat
            pending.removeFirst()
        }
        var verdict: Verdict?
        if monitorAlive {
            let inputs = plant.monitorInputs(heartbeat: latest)
            let v = Monitor.step(model, &monitorState, inputs)
            plant.applyVerdict(v)
            faultLog.append(v)
            if trackMargins { recordMargins(inputs) }
            verdict = v
        }
        return verdict
    }

    func secondHalf() { plant.advance(period / 2) }

    /// Fresh robot at the start posture, fresh control cycle, nothing injected.
    func restartWorld(restartMonitor: Bool) {
        commandFaults.fault = .none
        plant.resetRobot()
        runner.finalize()
        runner = Self.makeRunner(plant: plant, catheter: catheter, faults: commandFaults, log: tipLog)
        pending.removeAll()
        latest = nil
        if restartMonitor { monitorState = MonitorState(model: model) }
    }

    /// Runs the control and the monitor until the drives are enabled: the operator presses
    /// acknowledge every 20 ms until every latch has released (a link's error bucket may take
    /// seconds to drain) and the link's error buckets have drained to where one more nominal
    /// error cannot trip them: an episode after a CRC storm otherwise began with the bucket just
    /// under its burst, tripped on the next nominal CRC error in its warm-up, and its own fault
    /// went into a monitor already stopping. Returns false when they did not come up within 10 s.
    func bringUp() -> Bool {
        for k in 0..<10_000 {
            // The operator waits for the image stream to be back before acknowledging.
            let imagesBack = plant.newestImageAcquired >= plant.imagingRestartedAt
            plant.acknowledge = (k % 20) == 5 && imagesBack
            tick(control: .running, monitorAlive: true)
            secondHalf()
            if k > 6, allEnabled, monitorState.latched == 0, linkSettled {
                plant.acknowledge = false
                return true
            }
        }
        plant.acknowledge = false
        return false
    }

    /// Each link error bucket at least one error below its burst.
    var linkSettled: Bool {
        monitorState.crcBucket <= max(0, model.crcBurst - 1) && monitorState.lostBucket <= max(0, model.lostBurst - 1)
            && monitorState.wkcBucket <= max(0, model.wkcBurst - 1)
    }

    var allEnabled: Bool {
        for i in 0..<plant.axes.count where !plant.axis(i).enabled { return false }
        return true
    }

    var anyQuickStop: Bool {
        for i in 0..<plant.axes.count where plant.axis(i).quickStop { return true }
        return false
    }

    // MARK: Faults

    /// Runs `options.faults` injections.
    public func runFaults(progress: (Int) -> Void = { _ in }) -> [EpisodeResult] {
        var results: [EpisodeResult] = []
        var order: [FaultKind] = []
        for i in 0..<options.faults {
            if order.isEmpty { order = options.kinds.shuffled(using: &rng) }
            let kind = order.removeFirst()
            results.append(runEpisode(kind))
            progress(i + 1)
        }
        return results
    }

    func runEpisode(_ kind: FaultKind) -> EpisodeResult {
        var ready = bringUp()
        var warmUpTrips: [String] = []
        let latchedBefore = faultLog.total
        let warm = Int(rng.uniform(options.warmUp.lowerBound, options.warmUp.upperBound) * 1000)
        for _ in 0..<warm {
            tick(control: .running, monitorAlive: true)
            secondHalf()
        }
        if faultLog.total > latchedBefore {
            warmUpTrips = faultLog.drain().suffix(faultLog.total - latchedBefore).map { $0.describe(jointNames: limits.joints.map(\.name)) }
        }
        _ = faultLog.drain()

        // Inject.
        ready = ready && allEnabled && monitorState.latched == 0
        let injectedAt = plant.time
        var onset = injectedAt
        var index = -1
        var control = ControlState.running
        var monitorAlive = true
        let n = plant.axes.count
        let randomAxis = Int(rng.next() % UInt64(n))
        switch kind {
        case .controlKilled: control = .killed
        case .controlHung: control = .hung
        case .monitorKilled: monitorAlive = false
        case .position:
            index = randomAxis
            let range = model.upper[index] - model.lower[index]
            let beyond = rng.uniform(0.01, 0.1) * range
            let value = rng.unit() < 0.5 ? model.upper[index] + beyond : model.lower[index] - beyond
            commandFaults.fault = .beyond(axis: index, value: value)
        case .velocity:
            index = randomAxis
            let rate = rng.uniform(1.5, 3) * model.maxVelocity[index] * (rng.unit() < 0.5 ? 1 : -1)
            commandFaults.fault = .ramp(axis: index, rate: rate)
        case .overcurrent:
            index = randomAxis
            plant.drives.inject(.overcurrent, axis: index)
        case .runaway:
            index = randomAxis
            plant.drives.inject(.runaway, axis: index)
        case .jam:
            index = fastestAxis()
            plant.drives.inject(.jam, axis: index)
            onset = -1  // set when the current or the tracking error crosses its limit
        case .stuckEncoder:
            index = fastestAxis()
            plant.drives.inject(.encoderFreeze, axis: index)
            onset = -1  // set when the axis has moved measurably
        case .force:
            plant.forceOverride = model.maxInsertionForce * rng.uniform(1.05, 3)
        case .noGo:
            index = Int(rng.next() % UInt64(max(1, model.geometry.noGoCount)))
            let z = limits.noGo[index].centerMM
            commandFaults.fault = .steer(target: Vec3(z[0], z[1], z[2]))
        case .lumen:
            commandFaults.fault = .steer(target: lumenExitTarget())
        case .imageStale:
            if rng.unit() < 0.75 {
                plant.imagingFrozen = true
                onset = plant.newestImageAcquired + model.imageMaxAge
            } else {
                // Frames stamped by a wrong clock, a second in the future.
                plant.imageTimestampOffset = 1_000_000_000
            }
        case .linkLoss: plant.monitorChannelDown = true
        case .crc: plant.injectCRCPerStep = 1
        case .workingCounter: plant.injectWKCPerStep = 1
        case .deadman: plant.deadman = false
        case .sensorNaN:
            index = randomAxis
            plant.nanReading = index
        }

        let frozenEncoder = kind == .stuckEncoder ? plant.axis(index).measuredPosition : 0
        let frozenLoad = kind == .stuckEncoder ? plant.axis(index).load : 0
        var detectedAt: Nanoseconds?
        var detectedBy: String?
        var reactedAt: Nanoseconds?
        var penetration = -Double.infinity
        var wasEnabled = (0..<n).map { plant.axis($0).enabled }
        var wasStopping = anyQuickStop
        let end = injectedAt + kind.window
        var stopAfter: Nanoseconds = .max

        func observe() {
            if reactedAt == nil {
                for i in 0..<n where wasEnabled[i] && !plant.axis(i).enabled { reactedAt = plant.time }
                if !wasStopping, anyQuickStop { reactedAt = plant.time }
            }
            for i in 0..<n { wasEnabled[i] = plant.axis(i).enabled }
            wasStopping = anyQuickStop
            if kind == .noGo || kind == .lumen { penetration = max(penetration, truePenetration(kind, zone: index)) }
            if kind == .jam, onset < 0 {
                let a = plant.axis(index)
                let commanded = runner.command.position[index]
                if abs(a.current) > model.maxCurrent[index] || abs(commanded - a.load) > model.maxTrackingError[index] { onset = plant.time }
            }
            if kind == .stuckEncoder, onset < 0 {
                // The true disagreement between the frozen encoder and the load crossed the limit.
                if abs(frozenEncoder - plant.axis(index).load) > model.maxEncoderMismatch[index] { onset = plant.time }
            }
        }

        while plant.time < min(end, stopAfter) {
            if let v = tick(control: control, monitorAlive: monitorAlive), detectedAt == nil {
                for r in 0..<v.newFaultCount {
                    let f = v.newFault(r)
                    if detectedBy == nil { detectedBy = f.check.key }
                    if kind.expected.contains(f.check) {
                        detectedAt = plant.time
                        detectedBy = f.check.key
                        break
                    }
                }
            }
            observe()
            secondHalf()
            observe()
            if kind == .monitorKilled, detectedAt == nil {
                var all = true
                for i in 0..<n where plant.axis(i).enabled || plant.axis(i).fault != .safetyWatchdog { all = false }
                if all {
                    detectedAt = plant.time
                    detectedBy = "drive_watchdog"
                }
            }
            if stopAfter == .max, detectedAt != nil, reactedAt != nil {
                stopAfter = plant.time + (kind == .noGo || kind == .lumen ? 300_000_000 : 20_000_000)
            }
        }
        _ = frozenLoad
        if onset < 0 { onset = injectedAt }

        let detected = detectedAt != nil
        let reaction = reactedAt.map { Double($0 - onset) * 1e-6 }
        var within = detected
        if let target = kind.targetMS {
            within = within && (reaction.map { $0 <= target } ?? false)
        } else {
            within = within && penetration < 0
        }
        _ = faultLog.drain()
        restartWorld(restartMonitor: !monitorAlive)
        return EpisodeResult(kind: kind, index: index, injectedAtS: Double(injectedAt - startTime) * 1e-9, detected: detected,
                             detectedBy: detectedBy, reactionMS: reaction, detectionMS: detectedAt.map { Double($0 - onset) * 1e-6 },
                             penetrationMM: (kind == .noGo || kind == .lumen) ? penetration : nil,
                             withinTarget: within, ready: ready, warmUpTrips: warmUpTrips)
    }

    /// The joint the control is moving fastest now, relative to its speed limit.
    func fastestAxis() -> Int {
        var best = 0
        var bestRatio = -1.0
        let v = runner.command.velocity
        for i in 0..<plant.axes.count {
            let r = abs(v[i]) / model.maxVelocity[i]
            if r > bestRatio {
                bestRatio = r
                best = i
            }
        }
        return best
    }

    /// A point 10 mm outside the corridor wall, beside where the tip is now.
    func lumenExitTarget() -> Vec3 {
        let tip = catheter.calcTipPose(plant.truePositions).translation
        let (closest, radius, axis) = corridorNearest(tip)
        var out = tip - closest
        out = out - axis * out.dot(axis)
        if out.length < 1e-6 {
            // On the centreline: any direction across it.
            out = abs(axis.x) < 0.9 ? axis.cross(Vec3(1, 0, 0)) : axis.cross(Vec3(0, 1, 0))
        }
        let u = out * (1 / out.length)
        let w = axis.cross(u)
        // A random direction across the vessel whose straight way out stays clear of the no-go
        // zones (those have their own fault kind).
        var target = closest + u * (radius + 10)
        for _ in 0..<32 {
            let angle = rng.uniform(0, 2 * .pi)
            let candidate = closest + (u * cos(angle) + w * sin(angle)) * (radius + 10)
            if clearOfNoGo(from: tip, to: candidate) {
                target = candidate
                break
            }
        }
        return target
    }

    /// True when the segment a→b keeps 3 mm beyond every no-go zone and the monitor's margin.
    func clearOfNoGo(from a: Vec3, to b: Vec3) -> Bool {
        for z in limits.noGo {
            let c = Vec3(z.centerMM[0], z.centerMM[1], z.centerMM[2])
            let ab = b - a
            let t = min(max((c - a).dot(ab) / ab.dot(ab), 0), 1)
            if (a + ab * t - c).length < z.radiusMM + limits.catheter.tipMarginMM + 3 { return false }
        }
        return true
    }

    /// The nearest corridor point to `p`, the interpolated radius there and the segment axis.
    func corridorNearest(_ p: Vec3) -> (Vec3, Double, Vec3) {
        var best = (Vec3.zero, 0.0, Vec3(0, 0, 1))
        var bestDistance = Double.infinity
        let pts = limits.lumen.centerlineMM
        for i in 0..<(pts.count - 1) {
            let a = Vec3(pts[i][0], pts[i][1], pts[i][2]), b = Vec3(pts[i + 1][0], pts[i + 1][1], pts[i + 1][2])
            let ab = b - a
            let t = min(max((p - a).dot(ab) / ab.dot(ab), 0), 1)
            let c = a + ab * t
            let d = (p - c).length
            if d < bestDistance {
                bestDistance = d
                let r = limits.lumen.radiusMM[i] + (limits.lumen.radiusMM[i + 1] - limits.lumen.radiusMM[i]) * t
                best = (c, r, ab * (1 / ab.length))
            }
        }
        return best
    }

    /// Ground truth, by the control stack's kinematics on the true load positions: how far the
    /// tip is past the true boundary (no margin), mm.
    func truePenetration(_ kind: FaultKind, zone: Int) -> Double {
        let tip = catheter.calcTipPose(plant.truePositions).translation
        if kind == .noGo {
            let z = limits.noGo[zone]
            return z.radiusMM - (tip - Vec3(z.centerMM[0], z.centerMM[1], z.centerMM[2])).length
        }
        let (c, r, _) = corridorNearest(tip)
        return (tip - c).length - r
    }

    // MARK: Nominal

    /// Fault-free navigation for `minutes` of simulated time: every latch is a false trip.
    public func runNominal(minutes: Double, progress: (Double) -> Void = { _ in }) -> NominalResult {
        restartWorld(restartMonitor: true)
        let up = bringUp()
        _ = faultLog.drain()
        margins = [:]
        trackMargins = true
        defer { trackMargins = false }
        let cycles = Int(minutes * 60_000)
        var trips: [String] = up ? [] : ["bring_up_failed"]
        for k in 0..<cycles {
            tick(control: .running, monitorAlive: true)
            secondHalf()
            if monitorState.latched != 0 {
                for r in faultLog.drain() { trips.append(r.describe(jointNames: limits.joints.map(\.name))) }
                // Acknowledge and go on, so one false trip does not hide the next.
                plant.acknowledge = true
                tick(control: .running, monitorAlive: true)
                secondHalf()
                plant.acknowledge = false
                restartWorld(restartMonitor: false)
                _ = bringUp()
            }
            if k % 6000 == 0 { progress(Double(k) / 60_000) }
        }
        return NominalResult(minutes: minutes, falseTrips: trips.count, trips: trips, margins: margins)
    }

    func peak(_ key: String, _ value: Double, _ limit: Double) {
        if let m = margins[key], m.peak >= value { return }
        margins[key] = .init(peak: value, limit: limit)
    }

    func recordMargins(_ inputs: MonitorInputs) {
        let names = limits.joints.map(\.name)
        for i in 0..<model.jointCount {
            peak("velocity.\(names[i])", abs(inputs.velocity[i]), model.maxVelocity[i])
            peak("current.\(names[i])", abs(inputs.current[i]), model.maxCurrent[i])
            peak("encoder.\(names[i])", abs(inputs.encoderPosition[i] - inputs.position[i]), model.maxEncoderMismatch[i])
            if inputs.commandActive {
                peak("tracking.\(names[i])", abs(inputs.commandedPosition[i] - inputs.position[i]), model.maxTrackingError[i])
                peak("commanded_velocity.\(names[i])", abs(inputs.commandedVelocity[i]), model.maxVelocity[i])
            }
        }
        peak("force", abs(inputs.insertionForce), model.maxInsertionForce)
        peak("heartbeat_age_ms", Double(inputs.now - monitorState.sequenceAdvancedAt) * 1e-6, Double(model.heartbeatTimeout) * 1e-6)
        if inputs.imageGuided { peak("image_age_ms", Double(inputs.now - inputs.imageAcquiredAt) * 1e-6, Double(model.imageMaxAge) * 1e-6) }
        let tip = model.geometry.tipPosition(inputs.position)
        peak("lumen_excess_mm (≤ 0 inside)", model.geometry.outsideLumen(tip), 0)
        if model.geometry.noGoCount > 0 { peak("no_go_depth_mm (≤ 0 outside)", model.geometry.insideNoGo(tip).depth, 0) }
        peak("crc_bucket", monitorState.crcBucket, model.crcBurst)
        peak("lost_bucket", monitorState.lostBucket, model.lostBurst)
        peak("monitor_consecutive_lost", Double(monitorState.consecutiveLost), Double(model.maxConsecutiveLost))
    }
}
