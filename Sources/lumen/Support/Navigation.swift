import CommandSupport
import Control
import Core
import Foundation
import Imaging
import Sim

/// One navigation run: the physics catheter behind emulated drives, biplane fluoroscopy at
/// the frame rate, the tracker on every frame, the estimator and the path servo at 1 kHz —
/// all in simulated time, so a run is deterministic for its seed and runs faster than real time.
struct NavigationSetup: Encodable {
    var phantom = "arch"
    var vessel = "left_subclavian"
    /// mm into the target vessel.
    var depth = 25.0
    var primaryDeg = 0.0
    var secondaryDeg = 0.0
    var seed: UInt64 = 1
    var photons = 5000.0
    var fps = 15.0
    /// From acquisition to the measurement reaching the estimator.
    var latencyMS = 80.0
    var maxSeconds = 90.0
    var startInsertionMM = 60.0
    /// One bending section, as the physics catheter has.
    var robot = "robots/lumen-1s.yaml"
    /// Where the tip measurements come from: `tracker` (the images), or `truth` (the simulated
    /// tip itself, as a 3D point with a 0.1 mm σ, at the same rate and latency) to tell control
    /// failures from tracking failures.
    var measurements = "tracker"
    /// mm outside the roadmap's lumen a triangulated tip may lie (a wall the catheter pushes
    /// out, the roadmap's own error) before the pair is taken for two wrong detections.
    var roadmapMargin = 3.0
}

struct ErrorFigures: Encodable {
    var median: Double
    var p95: Double
    var samples: Int
    init(_ v: [Double]) { median = round3(percentile(v, 50)); p95 = round3(percentile(v, 95)); samples = v.count }
}

struct NavigationResult: Encodable {
    var setup: NavigationSetup
    var success: Bool
    var reason: String
    var time_s: Double
    var time_to_target_s: Double?
    var final_err_mm: Double
    var peak_contact_n: Double
    var fused: ErrorFigures
    var kinematic_only: ErrorFigures
    var image_only: ErrorFigures
    var overruns: Int
    var compute_us_p50: Double
    var compute_us_p99: Double
    var frames: Int
    var tracked_pct: Double
    var fused_measurements: Int
    var rejected_measurements: Int
    var lost_cycles: Int
    var inconsistent_pairs: Int
    /// Frames whose tip came from searching both planes whole, the searched regions having given no pair.
    var whole_frame_pairs: Int
}

struct NavigationTrace {
    var truth: [Vec3] = []
    var kinematic: [Vec3] = []
    var fused: [Vec3] = []
    var route: [Vec3] = []
    var tree: VesselTreeDescription
}

enum Navigation {
    /// Base orientation with its z axis along `a` (roll 0): rpy = (0, acos a.z, atan2(a.y, a.x)).
    static func baseRPY(axis a: Vec3) -> [Double] {
        let n = a * (1 / a.length)
        return [0, acos(max(-1, min(1, n.z))), abs(n.x) + abs(n.y) < 1e-12 ? 0 : atan2(n.y, n.x)]
    }

    static func run(_ setup: NavigationSetup, debugImages: Bool = false, progress: ((String) -> Void)? = nil) throws -> (NavigationResult, NavigationTrace) {
        guard let tree = Phantoms.named(setup.phantom) else { throw CommandFailure("unknown phantom '\(setup.phantom)'") }
        let routeWithRadii: [(point: Vec3, radius: Double)]
        do { routeWithRadii = CenterlineRoute.roundingCorners(try tree.routeWithRadii(toVessel: setup.vessel, depth: setup.depth)) } catch { throw CommandFailure("\(error)") }
        let route = routeWithRadii.map(\.point)
        let sheath = route[0], axis = (route[1] - route[0]) * (1 / (route[1] - route[0]).length)
        var description = try DemoRigFiles.loadRobot(setup.robot)
        description.base.positionMM = [sheath.x, sheath.y, sheath.z]
        description.base.rpyRad = baseRPY(axis: axis)
        let model = CatheterModel(description)
        let baseX = model.basePose.rotation.c0
        let section = description.sections[0]
        let coupling = RodCoupling(tendonRadius: section.tendonRadiusMM, bendLength: section.lengthMM, tipLength: description.tipLengthMM)
        // The physics' walls, and the roadmap biplane pairs are checked against (below).
        let roadmap = VesselTree(tree)
        /// px — the noise a detection claims: 1.5 px when sure, up to 7.5 px when not.
        func pixelSigma(_ d: CatheterDetection) -> Double { 1.5 / max(0.2, d.confidence) }
        /// The triangulated point of two detections that agree (rms within 4 px) and meet inside the roadmap.
        func meetingPoint(_ views: [PixelObservation]) -> PointEstimate? {
            guard let point = try? Triangulation.triangulate(views), point.rms <= 4,
                  roadmap.contains(point.position, within: setup.roadmapMargin) else { return nil }
            return point
        }
        let rodLength = min(0.6, Polyline.length(route) * 1e-3 + 0.08)
        let rodModel: RodModel
        do {
            rodModel = try RodModel(.catheter(elements: 100, length: rodLength, bendLength: section.lengthMM * 1e-3,
                                              tipLength: description.tipLengthMM * 1e-3),
                                    lumen: RodLumen(roadmap), sheathExit: sheath * 1e-3, sheathAxis: axis, sheathNormal: baseX)
        } catch { throw CommandFailure("\(error)") }
        var start = JointVector(count: model.jointCount)
        start[0] = setup.startInsertionMM
        var robot = CatheterPhysicsRobot(axes: description.axes, start: start, dynamics: .emulated(nil), model: rodModel, coupling: coupling)
        robot.settle(seconds: 0.3)
        do { try robot.configure(); try robot.activate() } catch { throw CommandFailure("\(error)") }

        // Biplane C-arms centred between the catheter's start and the target.
        let startTip = robot.tip, goal = route.last!
        let centre = (startTip + goal) * 0.5
        let planes = [setup.primaryDeg, setup.primaryDeg + 90].map {
            CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 1024, rows: 1024, pixelSpacing: 0.3,
                         primaryAngle: $0 * .pi / 180, secondaryAngle: setup.secondaryDeg * .pi / 180, isocenter: centre)
        }
        var settings = FluoroSettings()
        settings.photonsPerPixel = setup.photons
        settings.motion = .typical
        let renderers = planes.enumerated().map { FluoroRenderer(geometry: $0.element, settings: settings, seed: setup.seed &+ UInt64($0.offset) &* 7919) }
        let detectors: [CatheterDetector]
        do { detectors = try [CatheterDetector(), CatheterDetector()] } catch { throw CommandFailure("\(error)") }
        let matrices = planes.map { ProjectionMatrix($0) }

        let storage = TipEstimatorStorage(historyLength: 1024)
        let centerline = CenterlineRoute(route, radii: routeWithRadii.map(\.radius))
        var servo = PathServo(model: model, route: centerline)
        // Two tendon pairs bend the tip any way without roll; a servo free to roll winds it
        // to its limit at branches and is left with no way to turn.
        servo.rollWeight = 0
        // The image-guided cycle: the estimator fuses the late measurements from the mailbox,
        // the path servo steers from the fused estimate, and the supervisor limits every command
        // and holds while the estimate is lost; it resumes the servo when it returns, as the
        // operator would.
        let mailbox = MeasurementMailbox(capacity: 64)
        let sender = mailbox.sender
        var estimatorSettings = TipEstimatorSettings()
        estimatorSettings.resetFromPixels = planes.count < 2
        var guided = ImageGuidedController(estimator: storage.estimator(model: model, planes: planes, settings: estimatorSettings), servo: servo,
                                           limiter: MotionLimiter(model: model, start: robot.measuredPositions), measurements: mailbox.receiver)
        var startState = JointState(jointCount: model.jointCount)
        startState.position = robot.measuredPositions
        guided.reset(to: startState)
        guard guided.supervisor.mode == .tipServo else { throw CommandFailure("the supervisor refused the tip servo") }

        var state = JointState(jointCount: model.jointCount)
        var command = JointCommand(jointCount: model.jointCount)
        var trace = NavigationTrace(route: route, tree: tree)
        var fusedErr: [Double] = [], kinErr: [Double] = [], imageErr: [Double] = []
        var compute: [Double] = []
        var pending: [(arrive: Nanoseconds, m: TipMeasurement)] = []
        var frames = 0, tracked = 0, lostCycles = 0, overruns = 0, inconsistentPairs = 0, wholeFramePairs = 0
        var arrivedAt: Double?
        let period: Nanoseconds = 1_000_000
        let framePeriod = Nanoseconds(1e9 / setup.fps)
        let latency = Nanoseconds(setup.latencyMS * 1e6)
        var nextFrame: Nanoseconds = period
        let cycles = Int(setup.maxSeconds * 1000)
        var now: Nanoseconds = period
        var lastEstimate = TipEstimate()
        var reason = "time limit"
        var peakSeen = 0.0
        var truthNoise = SplitMix64(seed: setup.seed &* 0x9E37_79B9 &+ 17)
        for k in 0..<cycles {
            now = Nanoseconds(k + 1) * period
            let t0 = MonotonicClock.now()
            // The cycle: read → estimate → control → write.
            _ = robot.read(into: &state, now: now)
            // Measurements reach the cycle when their latency has passed.
            while let first = pending.first, first.arrive <= now {
                if !sender.send(first.m) { throw CommandFailure("the measurement mailbox is full") }
                pending.removeFirst()
            }
            guided.update(state: state, tick: CycleTick(index: Int64(k), deadline: now, wake: now, period: period, readFault: nil), command: &command)
            lastEstimate = guided.lastEstimate
            _ = robot.write(command, now: now)
            let spent = Double(MonotonicClock.now() - t0)
            compute.append(spent / 1000)
            if spent > Double(period) { overruns += 1 }
            if lastEstimate.health == .lost { lostCycles += 1 }

            let truth = robot.tip
            if debugImages, robot.peakContactForce > peakSeen + 0.5 { peakSeen = robot.peakContactForce; progress?(String(format: "  peak contact %.2f N at t %.3f, tip %.0f %.0f %.0f, push %.2f N", peakSeen, Double(now) * 1e-9, truth.x, truth.y, truth.z, state.insertionForce)) }
            if k % 10 == 0 {
                fusedErr.append((lastEstimate.position - truth).length)
                kinErr.append((model.calcTipPose(state.position).translation - truth).length)
                if k % 50 == 0 {
                    trace.truth.append(truth); trace.fused.append(lastEstimate.position)
                    trace.kinematic.append(model.calcTipPose(state.position).translation)
                }
            }
            // The imaging side: a biplane exposure every frame period, tracked, delivered late.
            if now >= nextFrame {
                nextFrame += framePeriod
                frames += 1
                var views: [PixelObservation] = []
                var pixels: [TipMeasurement] = []
                // Each plane's frame, the pixel shift of the scene's motion, and whether it was searched in a region.
                var shots: [(frame: Frame, shift: SIMD2<Double>, searched: Bool)] = []
                var truthAtAcquisition = truth
                /// Sends a triangulated tip to the estimator (late, as the images are) and scores it against the truth.
                func fuse(_ point: PointEstimate) {
                    imageErr.append((point.position - (truthAtAcquisition - renderers[0].motionOffset(at: now))).length)
                    if debugImages, imageErr.last! > 2 { progress?(String(format: "  image-only error %.1f mm at t %.2f (rms %.1f px)", imageErr.last!, Double(now) * 1e-9, point.rms)) }
                    pending.append((now + latency, TipMeasurement(acquiredAt: now, position: point.position, positionCovariance: point.covariance)))
                }
                // Truth measurements need no images: the control-only runs then take the physics' time alone.
                let line = setup.measurements == "truth" ? [] : robot.centerline()
                for (p, renderer) in renderers.enumerated() where setup.measurements != "truth" {
                    let (frame, frameTruth) = try renderer.render(tree: tree, catheter: line, frame: frames, acquiredAt: now)
                    truthAtAcquisition = Vec3(frameTruth.tip3D[0], frameTruth.tip3D[1], frameTruth.tip3D[2])
                    // Tracking with the estimate as the prior: the search region is the estimated
                    // tip projected into this plane (moved by the scene's motion at this time),
                    // grown by its uncertainty; the whole frame when the estimate is lost.
                    let shift = renderer.motionOffset(at: now)
                    let predicted = planes[p].project(lastEstimate.position + shift)
                    let still = planes[p].project(lastEstimate.position)
                    let sigmaMM = (lastEstimate.covariance.c0.x + lastEstimate.covariance.c1.y + lastEstimate.covariance.c2.z).squareRoot()
                    let pxPerMM = planes[p].magnification / planes[p].pixelSpacing
                    let radius = min(220, 30 + 3 * sigmaMM * pxPerMM)
                    var region: PixelRegion?
                    var prior: CatheterDetector.Prior?
                    if lastEstimate.health != .lost, predicted.u.isFinite, predicted.v.isFinite {
                        let x0 = max(0, Int(predicted.u - radius - 40)), y0 = max(0, Int(predicted.v - radius - 40))
                        let x1 = min(frame.width, Int(predicted.u + radius + 40)), y1 = min(frame.height, Int(predicted.v + radius + 40))
                        if x1 - x0 >= 64, y1 - y0 >= 64 {
                            region = PixelRegion(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
                            prior = CatheterDetector.Prior(u: predicted.u, v: predicted.v, radius: radius)
                        }
                    }
                    // The estimator works in the static patient frame: pixels are mapped back by the motion.
                    let shiftPx = SIMD2(predicted.u - still.u, predicted.v - still.v)
                    shots.append((frame, shiftPx.x.isFinite && shiftPx.y.isFinite ? shiftPx : .zero, region != nil))
                    let found: CatheterDetection?
                    do { found = try detectors[p].detect(frame, region: region, downsample: region == nil ? 2 : 1, prior: prior) } catch { continue }
                    guard let track = found else { continue }
                    tracked += 1
                    let uv = SIMD2(track.u, track.v) - shots[p].shift
                    let sigma = pixelSigma(track)
                    pixels.append(TipMeasurement(acquiredAt: now, plane: UInt8(p), pixel: uv, pixelCovariance: .isotropic(sigma),
                                                 confidence: track.confidence))
                    views.append(PixelObservation(matrix: matrices[p], pixel: uv, covariance: .isotropic(sigma)))
                }
                if setup.measurements == "truth" {
                    // The σ the measurement claims, drawn from the run's seed: runs differ as they
                    // do with the tracker, and a success rate over seeds means something.
                    let noise = Vec3(truthNoise.gaussian(), truthNoise.gaussian(), truthNoise.gaussian()) * 0.1
                    imageErr.append(noise.length)
                    pending.append((now + latency, TipMeasurement(acquiredAt: now, position: truth + noise, positionCovariance: Mat3.identity * 0.01)))
                } else if views.count == 2, let point = meetingPoint(views) {
                    // Both planes: the two detections must agree (the epipolar check), and meet
                    // inside the roadmap (the vessel tree the route is planned on) within
                    // `roadmapMargin`. At 0°/90° the epipolar lines run level, so two wrong
                    // detections at the same height agree; such pairs met 30 mm outside every
                    // vessel, and resets carried the estimate there. A pair that passes is fused
                    // as one triangulated point.
                    fuse(point)
                } else {
                    // No pair from the searched regions. An estimate that has drifted off the
                    // tip searches where the tip is not (both planes show it plainly beside the
                    // regions), and being confident, it never searches wider. So each plane is
                    // searched again, whole and without the prediction, and a pair from that
                    // which meets inside the roadmap is fused; the estimator's gate and its
                    // reset rule judge it as any other point.
                    var whole: [PixelObservation] = []
                    if shots.count == 2, shots.contains(where: \.searched) {
                        for (p, shot) in shots.enumerated() {
                            guard let d = try? detectors[p].detect(shot.frame, region: nil, downsample: 2, prior: nil) else { break }
                            whole.append(PixelObservation(matrix: matrices[p], pixel: SIMD2(d.u, d.v) - shot.shift, covariance: .isotropic(pixelSigma(d))))
                        }
                    }
                    if whole.count == 2, let point = meetingPoint(whole) {
                        wholeFramePairs += 1
                        fuse(point)
                    } else {
                        // The two planes disagree, or agree on a point no catheter can be at:
                        // one of them (at least) found something else. Each is offered alone
                        // and the estimator's gate, which knows where the tip should be, keeps
                        // the one that fits (dropping both left the estimate coasting for
                        // seconds where a plane sees the catheter over itself).
                        if views.count == 2 { inconsistentPairs += 1 }
                        for m in pixels { pending.append((now + latency, m)) }
                    }
                }
                if frames % 15 == 0 {
                    progress?(String(format: "navigate: t %.1f s, tip %.1f mm from target, fused error %.2f mm, %@, fused %d, rejected %d, resets %d (%@), progress %d (retreats %d), off route %.1f mm, aim %.2f, ins %.2f mm/s, cos %.2f, scale %.3f adv %.2f, q %.1f %.2f %.2f %.2f, truth %.0f %.0f %.0f", Double(now) * 1e-9,
                                     (truth - goal).length, fusedErr.last ?? .nan, "\(lastEstimate.health)", guided.estimator.fused, guided.estimator.rejected, guided.estimator.resets, "\(guided.estimator.lastRejection.map { "\($0)" } ?? "-")", guided.servo.progress, guided.servo.retreats, guided.servo.offRoute, guided.servo.aimCosine, guided.servo.proposedInsertion, guided.servo.headingCosine, guided.servo.stepScale, guided.servo.advanceFactor,
                                     state.position[0], state.position[1], state.position[2], state.position[3], truth.x, truth.y, truth.z))
                }
            }
            // Arrival counts once the servo has held the target for a second on a fresh image
            // estimate: the frames that come in meanwhile may move the estimate, and the servo
            // then follows again (the arrival is re-armed).
            if guided.servo.phase == .arrived, lastEstimate.health == .imageFresh {
                if arrivedAt == nil { arrivedAt = Double(now) * 1e-9 }
            } else if guided.servo.phase != .arrived {
                arrivedAt = nil
            }
            if let a = arrivedAt, Double(now) * 1e-9 > a + 1.0 {
                reason = "arrived"
                break
            }
        }
        let finalError = (robot.tip - goal).length
        let success = arrivedAt != nil && finalError <= 1.0
        if arrivedAt != nil, !success { reason = "arrived by the estimate, but the true tip is \(round3(finalError)) mm off" }
        let result = NavigationResult(
            setup: setup, success: success, reason: reason, time_s: round3(Double(now) * 1e-9), time_to_target_s: arrivedAt.map(round3),
            final_err_mm: round3(finalError), peak_contact_n: round3(robot.peakContactForce), fused: ErrorFigures(fusedErr),
            kinematic_only: ErrorFigures(kinErr), image_only: ErrorFigures(imageErr), overruns: overruns,
            compute_us_p50: round1(percentile(compute, 50)), compute_us_p99: round1(percentile(compute, 99)), frames: frames,
            tracked_pct: frames > 0 ? round1(100 * Double(tracked) / Double(2 * frames)) : 0, fused_measurements: guided.estimator.fused,
            rejected_measurements: guided.estimator.rejected, lost_cycles: lostCycles, inconsistent_pairs: inconsistentPairs,
            whole_frame_pairs: wholeFramePairs)
        return (result, trace)
    }
}
