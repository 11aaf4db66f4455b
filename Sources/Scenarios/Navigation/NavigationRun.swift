import Control
import Core
import Foundation
import Imaging
import Safety
import Sim

/// How a navigation run ended.
public enum NavigationEnd: Codable, Sendable, Equatable, CustomStringConvertible {
    /// The servo held the target for a second on a fresh image estimate, and the true tip is within 1 mm.
    case arrived
    /// The servo held the target by the estimate, but the true tip is further off than 1 mm.
    case arrivedOffTarget(errorMM: Double)
    /// The time limit passed first.
    case timeLimit
    /// The cycle left `active` by itself (too many failed reads): a safe stop.
    case faultStop
    /// The path servo gave up (`PathServoFailure`) and held: its reason.
    case servoGaveUp(reason: String)
    /// The push at the sheath exceeded the monitor's insertion-force limit (N): live, the
    /// monitor would have stopped the robot there (category 1), so the run ends.
    case forceStop(pushN: Double, limitN: Double)

    public var description: String {
        switch self {
        case .arrived: "arrived"
        case .arrivedOffTarget(let e): "arrived by the estimate, but the true tip is \(e) mm off"
        case .timeLimit: "time limit"
        case .faultStop: "the cycle stopped motion after failed reads"
        case .servoGaveUp(let reason): "the servo gave up: \(reason)"
        case .forceStop(let push, let limit): "the monitor's force check: \(push) N at the sheath, limit \(limit) N"
        }
    }
}

/// Median and 95th percentile of a run's tip errors (mm).
public struct ErrorFigures: Codable, Sendable, Equatable {
    public var median: Double
    public var p95: Double
    public var samples: Int
    public init(_ v: [Double]) { median = round3(percentile(v, 50)); p95 = round3(percentile(v, 95)); samples = v.count }
}

/// What one navigation run did. The encoded keys are the figures `lumen eval navigation` prints;
/// they decode again, so that shards of a campaign run apart can be merged.
public struct NavigationResult: Codable, Sendable, Equatable {
    public var setup: NavigationSetup
    public var end: NavigationEnd
    public var success: Bool
    public var reason: String
    public var time_s: Double
    public var time_to_target_s: Double?
    public var final_err_mm: Double
    public var peak_contact_n: Double
    /// N — the largest axial push at the sheath (what the monitor's insertion-force check reads).
    /// The wall contact force above is capped by the simulator's wall model; this is not.
    public var peak_insertion_n: Double
    public var fused: ErrorFigures
    public var kinematic_only: ErrorFigures
    public var image_only: ErrorFigures
    /// Cycles whose read → update → write took longer than the period (wall clock).
    public var overruns: Int
    public var compute_us_p50: Double
    public var compute_us_p99: Double
    public var frames: Int
    public var tracked_pct: Double
    public var fused_measurements: Int
    public var rejected_measurements: Int
    public var lost_cycles: Int
    public var inconsistent_pairs: Int
    /// Frames whose tip came from searching both planes whole, the searched regions having given no pair.
    public var whole_frame_pairs: Int
    /// Exposures per measurer outcome: pair, whole-frame pair, single-plane pixels, none.
    public var outcomes: OutcomeCounts
    /// Commands with a NaN or infinity the cycle replaced by a hold.
    public var invalid_commands: Int
    /// The image tips against the safety monitor's corridor (nil in results written before it was counted).
    public var image_tip_corridor: ImageTipCorridorFigures?
    /// The supervisor's mode and the cycle's lifecycle once the run ended (the drives are then
    /// disabled: the lifecycle is left inactive).
    public var mode_at_end: String
    public var lifecycle_at_end: String
    /// The run's index within its phantom's campaign (it fixes target, angle and seed).
    public var run = 0
    /// Wall-clock seconds the run took (set by the campaign; 0 for a run alone).
    public var wall_s = 0.0
    /// CPU seconds the run took on its thread (set by the campaign; nil for a run alone, and in
    /// results written before it was measured): its cost on one core, which wall time
    /// overstates when other work shares the machine.
    public var cpu_s: Double?

    enum CodingKeys: String, CodingKey {
        case run, wall_s, cpu_s, end
        case setup, success, reason, time_s, time_to_target_s, final_err_mm, peak_contact_n, peak_insertion_n, fused, kinematic_only, image_only,
             overruns, compute_us_p50, compute_us_p99, frames, tracked_pct, fused_measurements, rejected_measurements,
             lost_cycles, inconsistent_pairs, whole_frame_pairs, outcomes, invalid_commands, image_tip_corridor, mode_at_end, lifecycle_at_end
    }
}

/// The run's image tips (the triangulated pairs the live runtime relays to the safety monitor)
/// judged against the monitor's corridor as the monitor judges them: how many lay outside, the
/// longest run of them in a row, how far out and when first. The live monitor latches a
/// category-1 `lumen` stop on the first; a simulated-time run has no monitor and goes on, so
/// this is what says which of its runs the monitor would have stopped.
public struct ImageTipCorridorFigures: Codable, Sendable, Equatable {
    public var tips = 0
    public var outside = 0
    public var longest_run = 0
    public var max_outside_mm = 0.0
    public var first_outside_s: Double?
    var run = 0

    enum CodingKeys: String, CodingKey { case tips, outside, longest_run, max_outside_mm, first_outside_s }

    public init() {}

    mutating func add(outsideMM: Double, at seconds: Double) {
        tips += 1
        // Not a number is outside, as the monitor's `!(outside <= 0)` has it.
        guard !(outsideMM <= 0) else { run = 0; return }
        outside += 1
        run += 1
        longest_run = max(longest_run, run)
        if outsideMM.isFinite { max_outside_mm = max(max_outside_mm, round3(outsideMM)) } else { max_outside_mm = .greatestFiniteMagnitude }
        if first_outside_s == nil { first_outside_s = round3(seconds) }
    }
}

/// Counts of `BiplaneOutcome` over a run.
public struct OutcomeCounts: Codable, Sendable, Equatable {
    public var pair = 0
    public var whole_frame_pair = 0
    public var single_plane_pixels = 0
    public var none = 0

    mutating func count(_ o: BiplaneOutcome) {
        switch o {
        case .pair: pair += 1
        case .wholeFramePair: whole_frame_pair += 1
        case .singlePlanePixels: single_plane_pixels += 1
        case .none: none += 1
        }
    }
}

/// The paths of a run, for plots: every 50 ms.
public struct NavigationTrace: Sendable {
    public var truth: [Vec3] = []
    public var kinematic: [Vec3] = []
    public var fused: [Vec3] = []
    public var route: [Vec3] = []
    public var tree: VesselTreeDescription
}

/// One exposure from a frame source.
public struct NavigationExposure {
    public var frames: [PlaneFrame]
    /// mm — where the tip truly was at acquisition in the static patient frame, when the source
    /// knows (a simulator); it scores the image-only error.
    public var truthTip: Vec3?
    public init(frames: [PlaneFrame], truthTip: Vec3? = nil) { self.frames = frames; self.truthTip = truthTip }
}

/// Where a run's frames come from.
public protocol NavigationFrameSource: AnyObject {
    /// The frames of exposure `index`, acquired at `time`, of the catheter whose centerline (mm,
    /// patient frame) is given. May give fewer frames than planes, or none (dropped frames).
    func exposure(index: Int, at time: Nanoseconds, catheter: [Vec3]) throws(NavigationError) -> NavigationExposure
    /// The same exposure where only `regions(plane, motion)` of each plane need be rendered
    /// (nil: the whole frame); the frames say which part they hold (`PlaneFrame.rendered`).
    /// A source that cannot render a part gives whole frames.
    func exposure(index: Int, at time: Nanoseconds, catheter: [Vec3],
                  regions: (_ plane: Int, _ motion: Vec3) -> PixelRegion?) throws(NavigationError) -> NavigationExposure
}

extension NavigationFrameSource {
    public func exposure(index: Int, at time: Nanoseconds, catheter: [Vec3],
                         regions: (_ plane: Int, _ motion: Vec3) -> PixelRegion?) throws(NavigationError) -> NavigationExposure {
        try exposure(index: index, at: time, catheter: catheter)
    }
}

/// The simulated biplane C-arm: the phantom and the catheter rendered as fluoroscopy, with the
/// scene's breathing and heartbeat motion.
public final class SimulatedBiplaneCArm: NavigationFrameSource {
    let tree: VesselTreeDescription
    let renderers: [FluoroRenderer]

    /// `catheterRadius`: mm, the catheter drawn (the robot's outer diameter over 2).
    public init(planes: [CArmGeometry], tree: VesselTreeDescription, photons: Double, seed: UInt64,
                catheterRadius: Double = RobotDescription.defaultOuterDiameterMM / 2) {
        var settings = FluoroSettings()
        settings.photonsPerPixel = photons
        settings.catheterRadius = catheterRadius
        settings.motion = .typical
        renderers = planes.enumerated().map { FluoroRenderer(geometry: $0.element, settings: settings, seed: seed &+ UInt64($0.offset) &* 7919) }
        self.tree = tree
    }

    public func exposure(index: Int, at time: Nanoseconds, catheter: [Vec3]) throws(NavigationError) -> NavigationExposure {
        try exposure(index: index, at: time, catheter: catheter) { _, _ in nil }
    }

    /// Renders only the regions asked for: the noise, blur and tubes of a whole 1024² frame
    /// cost more than the tracking of the region around the tip that is all a tracked frame
    /// is read for.
    public func exposure(index: Int, at time: Nanoseconds, catheter: [Vec3],
                         regions: (_ plane: Int, _ motion: Vec3) -> PixelRegion?) throws(NavigationError) -> NavigationExposure {
        var frames: [PlaneFrame] = []
        var tip: Vec3?
        for (p, renderer) in renderers.enumerated() {
            let motion = renderer.motionOffset(at: time)
            let rendered: (frame: Frame, truth: FluoroTruth, rendered: PixelRegion?)
            do { rendered = try renderer.render(tree: tree, catheter: catheter, frame: index, acquiredAt: time, region: regions(p, motion)) } catch {
                throw .imaging("\(error)")
            }
            let t = rendered.truth.tip3D
            if t.count == 3 { tip = Vec3(t[0], t[1], t[2]) }
            frames.append(PlaneFrame(plane: p, frame: rendered.frame, motion: motion, rendered: rendered.rendered))
        }
        let motion = renderers.first?.motionOffset(at: time) ?? .zero
        return NavigationExposure(frames: frames, truthTip: tip.map { $0 - motion })
    }
}

/// Navigation in simulated time: the physics catheter behind emulated drives, fluoroscopy at the
/// frame rate, the measurer on every exposure, and the image-guided controller (estimator, path
/// servo, supervisor) run by `CycleRunner` at 1 kHz on a simulated clock — so navigation goes
/// through the lifecycle gate and the NaN guard as a live run does, and a run is deterministic
/// for its seed and faster than real time.
public enum NavigationRun {
    /// ms — the cycle period.
    static let period: Nanoseconds = 1_000_000

    /// Base orientation with its z axis along `a` (roll 0): rpy = (0, acos a.z, atan2(a.y, a.x)).
    public static func baseRPY(axis a: Vec3) -> [Double] {
        let n = a * (1 / a.length)
        return [0, acos(max(-1, min(1, n.z))), abs(n.x) + abs(n.y) < 1e-12 ? 0 : atan2(n.y, n.x)]
    }

    /// Runs one navigation.
    /// - Parameters:
    ///   - robot: the steerable catheter (its first section bends); its base is placed at the sheath.
    ///   - frameSource: makes the frame source for the run's planes (the simulated C-arm when nil).
    ///   - verbose: also report contact-force peaks and large image-only errors through `progress`.
    ///   - progress: a line of figures about once a second of simulated time.
    public static func run(
        _ setup: NavigationSetup, robot: RobotDescription, faults: NavigationFaults = NavigationFaults(),
        frameSource: ((_ planes: [CArmGeometry], _ tree: VesselTreeDescription) -> any NavigationFrameSource)? = nil,
        verbose: Bool = false, progress: ((String) -> Void)? = nil
    ) throws(NavigationError) -> (NavigationResult, NavigationTrace) {
        let scene = try NavigationScene(setup, robot: robot)
        let tree = scene.tree, route = scene.route, goal = scene.goal, planes = scene.planes, model = scene.model
        var physics = scene.makePhysics()
        if let fault = faults.forceSensorBias { physics.forceSensorBias = (Nanoseconds(fault.after * 1e9), fault.biasN) }
        let measurer = try scene.makeMeasurer()
        let source = setup.measurements == .tracker
            ? frameSource?(planes, tree) ?? SimulatedBiplaneCArm(planes: planes, tree: tree, photons: setup.photons, seed: setup.seed,
                                                                  catheterRadius: scene.robot.outerDiameterMM / 2)
            : nil

        // The image-guided cycle: the estimator fuses the late measurements from the mailbox,
        // the path servo steers from the fused estimate, and the supervisor limits every command
        // and holds while the estimate is lost; it resumes the servo when it returns, as the
        // operator would.
        let mailbox = MeasurementMailbox(capacity: 64)
        let sender = mailbox.sender
        let imageGuided = scene.makeController(start: physics.measuredPositions, measurements: mailbox.receiver)
        let runner = CycleRunner(hardware: physics, controller: imageGuided, clock: ManualCycleClock(start: 0), period: period)
        // The estimator, the servo's route and the mailbox are owned by the controller and the
        // mailbox's ends, so nothing here has to be kept alive by hand.
        defer { runner.finalize() }
        do {
            try runner.configure()
            try runner.activate()
        } catch { throw .lifecycle(error) }
        guard runner.controller.supervisor.mode == .tipServo else { throw .tipServoRefused }

        // The corridor the live runtime gives the monitor for this target: the vessels from the
        // tree's root (the sheath) to the end of the target vessel.
        let monitorModel: MonitorModel
        do {
            let corridor = try NavigationMonitorLimits.vesselCorridor(tree: tree, vessel: setup.vessel)
            monitorModel = try NavigationMonitorLimits.model(robot: scene.robot, corridor: corridor)
        } catch { throw .route("the safety monitor's corridor into \(setup.vessel): \(error)") }
        var corridorFigures = ImageTipCorridorFigures()
        var trace = NavigationTrace(route: route, tree: tree)
        var fusedErr: [Double] = [], kinErr: [Double] = [], imageErr: [Double] = []
        var compute: [Double] = []
        var pending: [(arrive: Nanoseconds, m: TipMeasurement)] = []
        var outcomes = OutcomeCounts()
        var frames = 0, tracked = 0, lostCycles = 0, overruns = 0, inconsistentPairs = 0
        var arrivedAt: Double?
        let framePeriod = Nanoseconds(1e9 / setup.fps)
        let latency = Nanoseconds(setup.latencyMS * 1e6)
        let corruptFrom = faults.corruptMeasurementsAfter.map { Nanoseconds($0 * 1e9) }
        var nextFrame: Nanoseconds = period
        let cycles = Int(setup.maxSeconds * 1000)
        var now: Nanoseconds = 0
        var end = NavigationEnd.timeLimit
        var peakSeen = 0.0
        var truthNoise = SplitMix64(seed: setup.seed &* 0x9E37_79B9 &+ 17)
        for k in 0..<cycles {
            // Measurements reach the cycle when their latency has passed.
            let wake = runner.clock.now() + period
            while let first = pending.first, first.arrive <= wake {
                var m = first.m
                if let from = corruptFrom, wake >= from {
                    if m.position != nil { m.position = Vec3(.nan, .nan, .nan) }
                    if m.pixel != nil { m.pixel = SIMD2(.nan, .nan) }
                }
                if !sender.send(m) { throw .mailboxFull }
                pending.removeFirst()
            }
            // The cycle: read → estimate → control → write, on the simulated clock.
            let t0 = MonotonicClock.now()
            do { try runner.run(cycles: 1) } catch { throw .lifecycle(error) }
            let spent = Double(MonotonicClock.now() - t0)
            now = runner.clock.now()
            compute.append(spent / 1000)
            if spent > Double(period) { overruns += 1 }
            let lastEstimate = runner.controller.lastEstimate
            if lastEstimate.health == .lost { lostCycles += 1 }
            let state = runner.state

            let truth = runner.withHardware { $0.tip }
            if verbose {
                let peak = runner.withHardware { $0.peakContactForce }
                if peak > peakSeen + 0.5 {
                    peakSeen = peak
                    progress?(String(format: "  peak contact %.2f N at t %.3f, tip %.0f %.0f %.0f, push %.2f N", peakSeen, Double(now) * 1e-9,
                                     truth.x, truth.y, truth.z, state.insertionForce))
                }
            }
            if k % 10 == 0 {
                fusedErr.append((lastEstimate.position - truth).length)
                kinErr.append((model.calcTipPose(state.position).translation - truth).length)
                if k % 50 == 0 {
                    trace.truth.append(truth); trace.fused.append(lastEstimate.position)
                    trace.kinematic.append(model.calcTipPose(state.position).translation)
                }
            }
            // The imaging side: an exposure every frame period, measured, delivered late.
            if now >= nextFrame {
                nextFrame += framePeriod
                frames += 1
                switch setup.measurements {
                case .truth:
                    // The σ the measurement claims, drawn from the run's seed: runs differ as they
                    // do with the tracker, and a success rate over seeds means something.
                    let noise = Vec3(truthNoise.gaussian(), truthNoise.gaussian(), truthNoise.gaussian()) * 0.1
                    imageErr.append(noise.length)
                    corridorFigures.add(outsideMM: monitorModel.geometry.measuredTipOutsideLumen(truth + noise), at: Double(now) * 1e-9)
                    pending.append((now + latency, TipMeasurement(acquiredAt: now, position: truth + noise, positionCovariance: Mat3.identity * 0.01)))
                case .tracker:
                    guard let source else { break }
                    let catheter = runner.withHardware { $0.centerline() }
                    let prior = lastEstimate, index = frames, at = now
                    // Only what the measurer will search is rendered; the whole frames when it
                    // needs them (lost, or a failed pair searched whole).
                    let exposure = setup.wholeFrames == true
                        ? try source.exposure(index: index, at: at, catheter: catheter)
                        : try source.exposure(index: index, at: at, catheter: catheter) { p, motion in measurer.renderRegion(plane: p, motion: motion, prior: prior) }
                    let measured: BiplaneMeasurement
                    do {
                        measured = try measurer.measure(exposure.frames, prior: prior) { () throws(GuidanceError) -> [PlaneFrame] in
                            do { return try source.exposure(index: index, at: at, catheter: catheter).frames } catch { throw .wholeFrames("\(error)") }
                        }
                    } catch { throw .guidance(error) }
                    tracked += measured.detections
                    outcomes.count(measured.outcome)
                    if case .singlePlanePixels(_, true) = measured.outcome { inconsistentPairs += 1 }
                    if let point = measured.outcome.point {
                        corridorFigures.add(outsideMM: monitorModel.geometry.measuredTipOutsideLumen(point.position), at: Double(now) * 1e-9)
                        let err = (point.position - (exposure.truthTip ?? truth)).length
                        imageErr.append(err)
                        if verbose, err > 2 {
                            progress?(String(format: "  image-only error %.1f mm at t %.2f (rms %.1f px)", err, Double(now) * 1e-9, point.rms))
                        }
                    }
                    for m in measured.measurements { pending.append((now + latency, m)) }
                }
                if frames % 15 == 0, let progress {
                    progress(String(format: "navigate: t %.1f s, tip %.1f mm from target, fused error %.2f mm, %@, fused %d, rejected %d, resets %d (%@), progress %d (retreats %d, %@), off route %.1f mm, aim %.2f, ins %.2f mm/s, cos %.2f, scale %.3f adv %.2f, q %.1f %.2f %.2f %.2f, truth %.0f %.0f %.0f", Double(now) * 1e-9,
                                    (truth - goal).length, fusedErr.last ?? .nan, "\(lastEstimate.health)", runner.controller.estimator.fused, runner.controller.estimator.rejected, runner.controller.estimator.resets, "\(runner.controller.estimator.lastRejection.map { "\($0)" } ?? "-")", runner.controller.servo.progress, runner.controller.servo.retreats, "\(runner.controller.servo.phase)", runner.controller.servo.offRoute, runner.controller.servo.aimCosine, runner.controller.servo.proposedInsertion, runner.controller.servo.headingCosine, runner.controller.servo.stepScale, runner.controller.servo.advanceFactor,
                                    state.position[0], state.position[1], state.position[2], state.position[3], truth.x, truth.y, truth.z))
                }
            }
            if runner.lifecycle != .active {
                end = .faultStop
                break
            }
            // The monitor's force and invalid-input checks, as the live monitor reads the drives' push.
            if !state.insertionForce.isFinite || monitorModel.insertionForceExceeded(state.insertionForce) {
                end = .forceStop(pushN: round3(state.insertionForce), limitN: monitorModel.maxInsertionForce)
                break
            }
            if runner.controller.servo.phase == .gaveUp {
                end = .servoGaveUp(reason: runner.controller.servo.failure.map { "\($0)" } ?? "no reason given")
                break
            }
            // Arrival counts once the servo has held the target for a second on a fresh image
            // estimate: the frames that come in meanwhile may move the estimate, and the servo
            // then follows again (the arrival is re-armed).
            if runner.controller.servo.phase == .arrived, lastEstimate.health == .imageFresh {
                if arrivedAt == nil { arrivedAt = Double(now) * 1e-9 }
            } else if runner.controller.servo.phase != .arrived {
                arrivedAt = nil
            }
            if let a = arrivedAt, Double(now) * 1e-9 > a + 1.0 {
                end = .arrived
                break
            }
        }
        let finalError = (runner.withHardware { $0.tip } - goal).length
        // Arrived less than a second before the time limit still counts, as it did when the
        // figures were first taken.
        let success = arrivedAt != nil && finalError <= 1.0
        if arrivedAt != nil, !success { end = .arrivedOffTarget(errorMM: round3(finalError)) }
        // The run is over: the drives are disabled (a hold with the power off) before the figures are read.
        if runner.lifecycle == .active { try? runner.deactivate() }
        let counters = runner.counters
        let result = NavigationResult(
            setup: setup, end: end, success: success, reason: end.description, time_s: round3(Double(now) * 1e-9), time_to_target_s: arrivedAt.map(round3),
            final_err_mm: round3(finalError), peak_contact_n: round3(runner.withHardware { $0.peakContactForce }),
            peak_insertion_n: round3(runner.withHardware { $0.peakPushForce }), fused: ErrorFigures(fusedErr),
            kinematic_only: ErrorFigures(kinErr), image_only: ErrorFigures(imageErr), overruns: overruns,
            compute_us_p50: round1(percentile(compute, 50)), compute_us_p99: round1(percentile(compute, 99)), frames: frames,
            tracked_pct: frames > 0 ? round1(100 * Double(tracked) / Double(2 * frames)) : 0, fused_measurements: runner.controller.estimator.fused,
            rejected_measurements: runner.controller.estimator.rejected, lost_cycles: lostCycles, inconsistent_pairs: inconsistentPairs,
            whole_frame_pairs: outcomes.whole_frame_pair, outcomes: outcomes, invalid_commands: Int(counters.invalidCommands),
            image_tip_corridor: corridorFigures, mode_at_end: "\(runner.controller.supervisor.mode)", lifecycle_at_end: "\(runner.lifecycle)")
        return (result, trace)
    }
}
