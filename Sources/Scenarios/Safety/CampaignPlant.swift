import Control
import Core
import Safety
import Sim

/// The simulated world of the fault campaign, in simulated time: emulated drives with their
/// safety lines wired, an insertion-force sensor, the fluoroscopy frame stream's timestamps,
/// the links' error counters, and the operator's deadman. The control cycle reaches it through
/// `CampaignRobot` (its own path: the drives' encoders); the monitor through `monitorInputs`
/// (its own path: load-side sensors, current, force, the enable line).
public final class CampaignPlant {
    public let axes: [AxisSpec]
    public let start: JointVector
    /// The drives' safety-line watchdog (s).
    public let safetyWatchdog: Double
    public private(set) var drives: SimulatedDriveAxes
    public var time: Nanoseconds = 1_000_000_000
    var rng: SplitMix64

    // The host's last command as the drives decoded it.
    var mode: JointCommand.Mode = .hold
    var hostEnable = false
    /// The host's link delivered a command for this step (its enable refresh reached the drives).
    var hostPresent = false

    // Force sensor.
    public var forceOverride: Double?
    public private(set) var force = 0.0

    // Imaging: frames acquired every `framePeriod`, arriving after a random latency.
    public var imageGuided = true
    public let framePeriod: Nanoseconds = 66_666_667
    public var imagingFrozen = false
    public var imageTimestampOffset: Nanoseconds = 0
    /// When the image stream last restarted (after a freeze): frames acquired before it are gone.
    public private(set) var imagingRestartedAt: Nanoseconds = 0
    var nextFrameAcquired: Nanoseconds = 0
    var inFlight: [(acquired: Nanoseconds, arrives: Nanoseconds)] = []
    public private(set) var newestImageAcquired: Nanoseconds = 0

    // Links: cumulative counters; nominal rates (per s) and injected per-step errors.
    public private(set) var lostFrames: UInt64 = 0
    public private(set) var crcErrors: UInt64 = 0
    public private(set) var wkcErrors: UInt64 = 0
    public var nominalLostPerS = 0.5, nominalCRCPerS = 0.2, nominalWKCPerS = 0.1
    public var injectCRCPerStep = 0, injectWKCPerStep = 0
    /// The monitor's own channel drops everything (link loss) or a sample now and then (nominal).
    public var monitorChannelDown = false
    public var nominalMonitorDropRate = 0.001
    /// A NaN in one monitor reading (sensor fault): joint index, or nil.
    public var nanReading: Int?

    public var deadman = true
    public var acknowledge = false

    /// The monitor's last inputs (kept when its channel delivers nothing).
    var lastInputs: MonitorInputs

    public init(axes: [AxisSpec], start: JointVector, safetyWatchdog: Double, seed: UInt64) {
        self.axes = axes
        self.start = start
        self.safetyWatchdog = safetyWatchdog
        rng = SplitMix64(seed: seed)
        drives = Self.makeDrives(axes: axes, start: start, watchdog: safetyWatchdog)
        lastInputs = MonitorInputs(jointCount: axes.count)
        nextFrameAcquired = time
    }

    static func makeDrives(axes: [AxisSpec], start: JointVector, watchdog: Double) -> SimulatedDriveAxes {
        let d = SimulatedDriveAxes(axes: axes, start: start, dynamics: .emulated(nil))
        d.armSafetyLine(watchdog: watchdog)
        return d
    }

    /// Fresh drives at the start posture with nothing injected; time, counters and the image
    /// stream go on.
    public func resetRobot() {
        drives = Self.makeDrives(axes: axes, start: start, watchdog: safetyWatchdog)
        mode = .hold
        hostEnable = false
        forceOverride = nil
        if imagingFrozen {
            // The stream restarts: what was in flight when it froze is lost.
            inFlight.removeAll()
            imagingRestartedAt = time
        }
        imagingFrozen = false
        imageTimestampOffset = 0
        injectCRCPerStep = 0
        injectWKCPerStep = 0
        monitorChannelDown = false
        nanReading = nil
        deadman = true
        acknowledge = false
    }

    public func axis(_ i: Int) -> EmulatedDriveAxis { drives.emulatedAxis(i)! }

    /// True positions of the loads (joint units): ground truth for the figures.
    public var truePositions: JointVector {
        var q = JointVector(count: axes.count)
        for i in 0..<axes.count { q[i] = axis(i).load }
        return q
    }

    /// Moves the world on by `dt` ns.
    public func advance(_ dt: Nanoseconds) {
        drives.step(mode: mode, enabled: hostEnable, dt: Double(dt) * 1e-9, hostPresent: hostPresent)
        time += dt
        // Insertion force: friction growing with speed, and sensor noise.
        let v = abs(axis(0).measuredVelocity)
        force = forceOverride ?? (0.15 + 0.04 * v + 0.01 * (rng.unit() + rng.unit() + rng.unit() - 1.5))
        // Frames: acquire on schedule, deliver after 40…150 ms.
        while nextFrameAcquired <= time {
            if !imagingFrozen {
                let latency = Nanoseconds(rng.uniform(40e6, 150e6))
                inFlight.append((nextFrameAcquired, nextFrameAcquired + latency))
            }
            nextFrameAcquired += framePeriod
        }
        if !imagingFrozen {
            var kept: [(acquired: Nanoseconds, arrives: Nanoseconds)] = []
            for f in inFlight {
                if f.arrives <= time { newestImageAcquired = max(newestImageAcquired, f.acquired) } else { kept.append(f) }
            }
            inFlight = kept
        }
        // Link errors.
        let seconds = Double(dt) * 1e-9
        if rng.unit() < nominalLostPerS * seconds { lostFrames += 1 }
        if rng.unit() < nominalCRCPerS * seconds { crcErrors += 1 }
        if rng.unit() < nominalWKCPerS * seconds { wkcErrors += 1 }
    }

    /// Errors injected on the links this monitor step.
    func injectLinkErrors() {
        crcErrors += UInt64(injectCRCPerStep)
        wkcErrors += UInt64(injectWKCPerStep)
    }

    /// What the monitor's own channel delivers now, with the heartbeat it last received.
    public func monitorInputs(heartbeat: Heartbeat?) -> MonitorInputs {
        var inputs = lastInputs
        inputs.now = time
        let dropped = monitorChannelDown || rng.unit() < nominalMonitorDropRate
        if !dropped {
            inputs.sampledAt = time
            for i in 0..<axes.count {
                let a = axis(i)
                // The load-side sensor: 1 µm or 10 µrad resolution.
                let resolution = axes[i].unit == .millimetre ? 1e-3 : 1e-5
                inputs.position[i] = (a.load / resolution).rounded() * resolution
                inputs.encoderPosition[i] = a.measuredPosition
                inputs.velocity[i] = a.measuredVelocity
                inputs.current[i] = a.measuredCurrent
            }
            inputs.insertionForce = force
            if let j = nanReading { inputs.current[j] = .nan }
        }
        injectLinkErrors()
        inputs.lostFrames = lostFrames
        inputs.crcErrors = crcErrors
        inputs.wkcErrors = wkcErrors
        if let hb = heartbeat {
            inputs.heartbeatSequence = hb.sequence
            inputs.heartbeatSentAt = hb.sentAt
            inputs.commandActive = hb.active
            inputs.commandedPosition = hb.position
            inputs.commandedVelocity = hb.velocity
            inputs.imageGuided = hb.imageGuided
            inputs.imageAcquiredAt = hb.imageAcquiredAt
        }
        inputs.deadman = deadman
        inputs.acknowledge = acknowledge
        lastInputs = inputs
        return inputs
    }

    /// The monitor's verdict on the drives' safety lines.
    public func applyVerdict(_ verdict: Verdict) {
        for i in 0..<axes.count { drives.refreshSafetyLine(axis: i, permit: verdict.enableAllowed(axis: i), quickStop: verdict.controlledStop) }
    }
}

/// What the control cycle sends the monitor every cycle.
public struct Heartbeat: Sendable {
    public var sequence: UInt64
    public var sentAt: Nanoseconds
    public var active: Bool
    public var position: JointVector
    public var velocity: JointVector
    public var imageGuided: Bool
    public var imageAcquiredAt: Nanoseconds
}

/// The control cycle's view of the campaign's drives: their encoders, the host side of the link.
public struct CampaignRobot: RobotHardware {
    public let plant: CampaignPlant
    public var jointCount: Int { plant.axes.count }

    public init(plant: CampaignPlant) { self.plant = plant }

    public mutating func configure() throws(HardwareError) {}
    public mutating func activate() throws(HardwareError) {}
    public mutating func deactivate() { plant.hostEnable = false }
    public mutating func shutdown() { plant.hostEnable = false }

    public mutating func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault? {
        var status: DriveStatus = []
        var fault = false
        for i in 0..<jointCount {
            let a = plant.axis(i)
            state.position[i] = a.measuredPosition
            state.velocity[i] = a.measuredVelocity
            state.current[i] = a.measuredCurrent
            if a.enabled { status.insert(.enabled) }
            if a.faulted { fault = true }
        }
        if fault { status.insert(.fault) }
        state.status = status
        state.insertionForce = plant.force
        state.sampledAt = now
        return fault ? .driveFault : nil
    }

    public mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        guard command.position.count == jointCount else { return .shapeMismatch }
        for i in 0..<jointCount {
            let scale = plant.drives.countsPerUnit[i]
            plant.drives.targetPosition[i] = Int32(roundingSaturating: command.position[i] * scale)
            plant.drives.targetVelocity[i] = Int32(roundingSaturating: command.velocity[i] * scale)
        }
        plant.mode = command.mode
        plant.hostEnable = command.enable
        plant.hostPresent = true
        return nil
    }
}

/// The campaign's time, shared by the control cycle and the world.
public struct CampaignClock: CycleClock {
    let plant: CampaignPlant
    public func now() -> Nanoseconds { plant.time }
    public func sleep(until deadline: Nanoseconds) {}
}
