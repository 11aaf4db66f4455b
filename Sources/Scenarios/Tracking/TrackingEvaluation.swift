import Core
import Foundation
import Imaging
import Sim

/// How the catheter moves in an evaluated sequence.
public enum TrackingMotion: String, Sendable {
    /// Advancing along a vessel of the phantom.
    case advance
    /// A curl whose straight end crosses the shaft as it advances.
    case loop
}

/// One evaluated sequence: a fixed condition, or one drawn from a randomised split.
public struct TrackingCondition: Sendable {
    public var name: String
    public var phantom: String
    public var primaryDeg: Double, secondaryDeg: Double
    public var photons: Double
    public var fps: Double
    public var contrast: Bool
    public var motion: TrackingMotion
    /// Second plane at primary + 90° (biplane: 3D error by triangulation).
    public var biplane: Bool
    /// A randomised sequence (detector size, pitch and imaging from it), nil for a fixed condition.
    public var randomised: RandomisedTrackingSequence?

    public init(name: String, phantom: String, primaryDeg: Double, secondaryDeg: Double, photons: Double = TrackingEvaluation.defaultPhotons,
                fps: Double = 15, contrast: Bool = true, motion: TrackingMotion = .advance, biplane: Bool = false) {
        self.name = name; self.phantom = phantom; self.primaryDeg = primaryDeg; self.secondaryDeg = secondaryDeg
        self.photons = photons; self.fps = fps; self.contrast = contrast; self.motion = motion; self.biplane = biplane
        randomised = nil
    }

    public init(_ r: RandomisedTrackingSequence) {
        self.init(name: r.name, phantom: r.phantom, primaryDeg: r.primaryDeg, secondaryDeg: r.secondaryDeg, photons: r.fluoro.photonsPerPixel,
                  fps: r.fps, contrast: r.fluoro.contrast > 0, motion: r.motion == "loop" ? .loop : .advance)
        randomised = r
    }
}

/// Why an evaluation could not finish.
public enum TrackingEvaluationError: Error, CustomStringConvertible {
    case unknownPhantom(String)
    case tracker(TrackingError)
    case render(sequence: String, frame: Int, reason: String)
    case track(sequence: String, plane: String, frame: Int, TrackingError)
    case triangulation(sequence: String, frame: Int, reason: String)
    case output(String)

    public var description: String {
        switch self {
        case .unknownPhantom(let p): "no phantom named '\(p)'"
        case .tracker(let e): "cannot build the tracker: \(e.description)"
        case .render(let s, let f, let r): "\(s) frame \(f): cannot render: \(r)"
        case .track(let s, let p, let f, let e): "\(s)\(p.isEmpty ? "" : " plane \(p)") frame \(f): \(e.description)"
        case .triangulation(let s, let f, let r): "\(s) frame \(f): triangulation failed: \(r)"
        case .output(let r): r
        }
    }
}

/// The tip tracker on simulated sequences with ground truth: the fixed conditions (phantoms,
/// C-arm angles, dose, frame rate, contrast, motion, biplane) and the randomised tuning and
/// held-out splits, scored per sequence and pooled.
public enum TrackingEvaluation {
    /// The renderer's default dose.
    public static let defaultPhotons = FluoroSettings().photonsPerPixel

    public static let fixedConditions: [TrackingCondition] = {
        var c: [TrackingCondition] = []
        for phantom in ["arch", "coronary", "straight"] {
            for (a, b, tag) in [(0.0, 0.0, "ap"), (30.0, 0.0, "lao30"), (-30.0, 20.0, "rao30-cra20")] {
                c.append(TrackingCondition(name: "\(phantom)-\(tag)", phantom: phantom, primaryDeg: a, secondaryDeg: b))
            }
        }
        for photons in [1000.0, 3000, 10000] {
            c.append(TrackingCondition(name: "arch-ap-dose\(Int(photons))", phantom: "arch", primaryDeg: 0, secondaryDeg: 0, photons: photons))
        }
        c.append(TrackingCondition(name: "coronary-rao30-cra20-dose1000", phantom: "coronary", primaryDeg: -30, secondaryDeg: 20, photons: 1000))
        for fps in [7.5, 30] {
            c.append(TrackingCondition(name: "arch-ap-\(fps == 7.5 ? "7.5" : "30")fps", phantom: "arch", primaryDeg: 0, secondaryDeg: 0, fps: fps))
        }
        c.append(TrackingCondition(name: "coronary-lao30-7.5fps", phantom: "coronary", primaryDeg: 30, secondaryDeg: 0, fps: 7.5))
        c.append(TrackingCondition(name: "arch-ap-nocontrast", phantom: "arch", primaryDeg: 0, secondaryDeg: 0, contrast: false))
        c.append(TrackingCondition(name: "coronary-rao30-cra20-nocontrast", phantom: "coronary", primaryDeg: -30, secondaryDeg: 20, contrast: false))
        c.append(TrackingCondition(name: "loop-ap", phantom: "straight", primaryDeg: 0, secondaryDeg: 0, motion: .loop))
        c.append(TrackingCondition(name: "loop-lao30-dose1000", phantom: "straight", primaryDeg: 30, secondaryDeg: 0, photons: 1000, motion: .loop))
        c.append(TrackingCondition(name: "biplane-arch", phantom: "arch", primaryDeg: 0, secondaryDeg: 0, biplane: true))
        c.append(TrackingCondition(name: "biplane-coronary", phantom: "coronary", primaryDeg: -30, secondaryDeg: 20, biplane: true))
        return c
    }()

    /// The randomised sequences of a split, in order: the same `count` gives the same sequences.
    public static func drawn(_ split: TrackingSplit, count: Int) -> [TrackingCondition] {
        (0..<max(0, count)).map { TrackingCondition(RandomisedTrackingSequence.draw(split, index: $0)) }
    }

    /// One sequence's result.
    public struct SequenceResult: Sendable {
        /// Per frame of plane A: the tip error (px) when tracked, nil when lost.
        public var errors: [Double?] = []
        public var errors3D: [Double] = []
        public var trackMs: [Double] = []
        public var outcomes: [TrackOutcome] = []
        /// One CSV row per frame (see `csvHeader`): what the tracker saw and reported, for
        /// calibrating its confidence.
        public var rows: [String] = []
        /// One CSV row per candidate the detector ranked in each frame (see `candidateHeader`),
        /// when asked for: which evidence tells the true tip from the wrong ones.
        public var candidateRows: [String] = []
    }

    public static let candidateHeader = "sequence,frame,full_frame,rank,chosen,dist_px,score,u,v,detector_confidence,ridge_snr,end_snr,width_px,"
        + "shaft_fwhm_px,shaft_snr,continuation,shaft_run_px,symmetry,rank_factor,pitch_mm"

    /// The candidate rows of one frame: every candidate a whole-frame acquisition ranked (none
    /// in a frame tracked from a prediction), its distance to the true tip, and whether the
    /// tracker reported it.
    static func candidateRows(_ name: String, _ f: Int, _ a: TipTrack, candidates: [CatheterDetection], truth: (Double, Double), pitch: Double) -> [String] {
        func num(_ x: Double?, _ format: String = "%.3f") -> String { x.map { String(format: format, $0) } ?? "" }
        return candidates.enumerated().map { k, d in
            let e = d.evidence
            let chosen = a.status == .tracked && abs(a.u - d.u) < 1e-9 && abs(a.v - d.v) < 1e-9
            let snr: Double? = e.map { $0.shaftLevel / max(1e-6, $0.shaftNoise) }
            let cols = [name, "\(f)", a.fullFrameSearch ? "1" : "0", "\(k)", chosen ? "1" : "0", num(hypot(d.u - truth.0, d.v - truth.1)),
                        num(d.score, "%.4f"), num(d.u), num(d.v), num(d.confidence, "%.4f"), num(d.ridgeSNR), num(d.endSNR), num(d.widthPx),
                        num(e?.shaftWidthPx), num(snr), num(e?.continuation), num(e?.shaftRunPx, "%.1f"), num(e?.symmetry),
                        num(e?.rankFactor(widthPx: d.widthPx), "%.4f"), num(pitch)]
            return cols.joined(separator: ",")
        }
    }

    public static let csvHeader = "sequence,frame,status,error_px,visible,confidence,ridge_snr,end_snr,width_px,innovation_px,search_radius_px,full_frame,shaft_fwhm_px,shaft_snr,continuation,shaft_run_px,pitch_mm,detector_confidence,symmetry,"
        + ConfidenceModel.featureNames.map { "f_" + $0 }.joined(separator: ",") + ",truth_u,truth_v,along_px,across_px"

    /// Renders and tracks one sequence of `n` frames; overlays of every frame go to `overlayDir`.
    public static func evaluate(_ c: TrackingCondition, frames n: Int, size defaultSize: Int, pitch defaultPitch: Double, seed noiseSeed: UInt64,
                                overlayDir: String? = nil, candidates: Bool = false, tracker: TrackerSettings = TrackerSettings())
        throws(TrackingEvaluationError) -> SequenceResult {
        guard var tree = Phantoms.named(c.phantom) else { throw .unknownPhantom(c.phantom) }
        let scene = try Scene(condition: c)
        let size = c.randomised?.size ?? defaultSize, pitch = c.randomised?.pixelPitch ?? defaultPitch
        if let r = c.randomised {
            let path = scene.catheter(at: Double(n - 1) / c.fps)
            tree.vessels += r.distractorVessels(along: Array(path.suffix(160)))
        }
        // Centre the view on the middle of the tip's path.
        let first = scene.catheter(at: 0).last ?? .zero, last = scene.catheter(at: Double(n - 1) / c.fps).last ?? .zero
        let centre = (first + last) * 0.5
        let geoA = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: size, rows: size, pixelSpacing: pitch,
                                primaryAngle: c.primaryDeg * .pi / 180, secondaryAngle: c.secondaryDeg * .pi / 180, isocenter: centre)
        var geoB = geoA
        geoB.primaryAngle = (c.primaryDeg + 90) * .pi / 180
        var settings = c.randomised?.fluoro ?? FluoroSettings()
        settings.photonsPerPixel = c.photons
        if !c.contrast { settings.contrast = 0 }
        let base = c.randomised?.noiseSeed ?? UInt64(truncatingIfNeeded: c.name.utf8.reduce(5381) { ($0 &* 33) &+ Int($1) })
        // Mixed, not added: the generator steps by a fixed increment, so an added multiple of it would only shift the stream.
        let seed = noiseSeed == 0 ? base : base ^ { var g = SplitMix64(seed: noiseSeed); return g.next() }()
        let rendererA = FluoroRenderer(geometry: geoA, settings: settings, seed: seed)
        let rendererB = c.biplane ? FluoroRenderer(geometry: geoB, settings: settings, seed: seed &+ 1) : nil
        let matrixA = ProjectionMatrix(geoA), matrixB = ProjectionMatrix(geoB)
        let trackerA: TipTracker, trackerB: TipTracker
        do { trackerA = try TipTracker(settings: tracker); trackerB = try TipTracker(settings: tracker) } catch { throw .tracker(error) }
        trackerA.detector.recordsCandidates = candidates
        if let dir = overlayDir {
            do { try OutputPath.createFolder(dir) } catch { throw .output("\(error)") }
        }
        var result = SequenceResult()
        for f in 0..<n {
            let t = Double(f) / c.fps
            let shift = scene.backgroundShift(at: t) * (c.randomised?.motionScale ?? 1)
            let movedTree = VesselTreeDescription(name: tree.name, vessels: tree.vessels.map { v in
                VesselDescription(name: v.name, parent: v.parent, points: v.points.map { [$0[0] + shift.x, $0[1] + shift.y, $0[2] + shift.z, $0[3]] })
            })
            let catheter = scene.catheter(at: t).map { $0 + shift }
            let stamp = Nanoseconds.fromSeconds(t)
            var frameA: Frame, truthA: FluoroTruth
            do { (frameA, truthA) = try rendererA.render(tree: movedTree, catheter: catheter, frame: f, acquiredAt: stamp) } catch {
                throw .render(sequence: c.name, frame: f, reason: "\(error)")
            }
            // A MONOCHROME1 frame reaches the tracker as a DICOM reader delivers it, inverted back.
            if settings.monochrome1 { frameA = FluoroRenderer.monochrome2(frameA) }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let a: TipTrack
            do { a = try trackerA.track(frameA) } catch { throw .track(sequence: c.name, plane: "", frame: f, error) }
            result.trackMs.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            let error = a.status == .tracked ? hypot(a.u - truthA.tip2D[0], a.v - truthA.tip2D[1]) : nil
            result.errors.append(error)
            let margin = 6.0
            let visible = truthA.tip2D[0] >= margin && truthA.tip2D[1] >= margin && truthA.tip2D[0] <= Double(size) - 1 - margin
                && truthA.tip2D[1] <= Double(size) - 1 - margin
            result.outcomes.append(TrackOutcome(error: error, confidence: a.status == .tracked ? a.confidence : 0, visible: visible))
            result.rows.append(csvRow(c.name, f, a, error: error, visible: visible, pitch: pitch, truth: (truthA.tip2D[0], truthA.tip2D[1])))
            if candidates {
                result.candidateRows += candidateRows(c.name, f, a, candidates: trackerA.acquisitionCandidates,
                                                      truth: (truthA.tip2D[0], truthA.tip2D[1]), pitch: pitch)
            }
            if let dir = overlayDir {
                do {
                    if f == 0 { try TrackOverlay.writeResponse(frameA, detector: trackerA.detector, to: dir + "/response_0000.png") }
                    try PNGFrameFile.write(frameA, to: dir + String(format: "/raw_%04d.png", f))
                    try TrackOverlay.write(frameA, track: a, chains: trackerA.activeDetector.lastChains, truth: (truthA.tip2D[0], truthA.tip2D[1]),
                                           to: dir + String(format: "/frame_%04d.png", f))
                } catch { throw .output("\(error)") }
            }
            if let rendererB {
                let frameB: Frame
                do { (frameB, _) = try rendererB.render(tree: movedTree, catheter: catheter, frame: f, acquiredAt: stamp) } catch {
                    throw .render(sequence: c.name, frame: f, reason: "\(error)")
                }
                let b: TipTrack
                do { b = try trackerB.track(frameB) } catch { throw .track(sequence: c.name, plane: "B", frame: f, error) }
                if a.status == .tracked, b.status == .tracked {
                    let views = [PixelObservation(matrix: matrixA, pixel: SIMD2(a.u, a.v)),
                                 PixelObservation(matrix: matrixB, pixel: SIMD2(b.u, b.v))]
                    let truth = Vec3(truthA.tip3D[0], truthA.tip3D[1], truthA.tip3D[2])
                    do {
                        result.errors3D.append((try Triangulation.triangulate(views).position - truth).length)
                    } catch {
                        throw .triangulation(sequence: c.name, frame: f, reason: "\(error)")
                    }
                }
            }
        }
        return result
    }

    /// One frames.csv row (see `csvHeader`): what the tracker saw and reported.
    static func csvRow(_ name: String, _ f: Int, _ a: TipTrack, error: Double?, visible: Bool, pitch: Double, truth: (u: Double, v: Double)) -> String {
        func num(_ x: Double?, _ format: String = "%.3f") -> String { x.map { String(format: format, $0) } ?? "" }
        let d = a.detection, e = d?.evidence
        var cols: [String] = [name, "\(f)", a.status.rawValue, num(error), visible ? "1" : "0", num(a.confidence, "%.4f")]
        cols += [num(d?.ridgeSNR), num(d?.endSNR), num(d?.widthPx), num(a.innovationPx), num(a.searchRadiusPx), a.fullFrameSearch ? "1" : "0"]
        let snr: Double? = e.map { $0.shaftLevel / max(1e-6, $0.shaftNoise) }
        cols += [num(e?.shaftWidthPx), num(snr), num(e?.continuation), num(e?.shaftRunPx, "%.1f"), num(pitch), num(d?.confidence, "%.4f"), num(e?.symmetry)]
        // The confidence model's features, as it saw them: what a refit is fitted on.
        let features = d.map { ConfidenceModel.features($0, innovation: a.innovationPx, radius: a.searchRadiusPx) }
        cols += ConfidenceModel.featureNames.indices.map { i in num(features?[i], "%.5f") }
        // The error split along the reported tip's heading (> 0: past the true tip) and across it:
        // a placement error at the end shows as a steady along-offset.
        let h = a.status == .tracked ? d?.heading() : nil
        let du = a.u - truth.u, dv = a.v - truth.v
        cols += [num(truth.u), num(truth.v), num(h.map { du * $0.u + dv * $0.v }), num(h.map { dv * $0.u - du * $0.v })]
        return cols.joined(separator: ",")
    }

    /// Where the catheter is at time t, and how the anatomy moves (breathing and heartbeat).
    struct Scene {
        let route: [Vec3]
        let startLength: Double
        /// mm/s
        let speed: Double

        init(condition c: TrackingCondition) throws(TrackingEvaluationError) {
            guard let tree = Phantoms.named(c.phantom) else { throw .unknownPhantom(c.phantom) }
            switch c.motion {
            case .advance:
                switch c.phantom {
                case "coronary":
                    let guide = Phantoms.coronaryGuideRoute()
                    route = guide.route
                    startLength = guide.ostium + 15
                    speed = 12
                case "arch":
                    // Femoral access: up the descending aorta, over the arch, down the ascending aorta.
                    route = tree.vessels[0].points.reversed().map { Vec3($0[0], $0[1], $0[2]) }
                    startLength = 0.45 * Polyline.length(route)
                    speed = 20
                default:
                    route = tree.vessels[0].points.map { Vec3($0[0], $0[1], $0[2]) }
                    startLength = 110
                    speed = 15
                }
            case .loop:
                // A straight shaft up the tube, then a curl of radius 10 mm: 270° of arc and a
                // straight end that crosses the shaft as the catheter advances.
                let r = 10.0
                var pts = (0...20).map { k in Vec3(0, 0, 60 + 5 * Double(k)) }  // to z = 160
                let top = Vec3(0, 0, 160)
                for k in 1...54 {
                    let phi = 1.5 * .pi * Double(k) / 54
                    pts.append(top + Vec3(r - r * cosine(phi), 0, r * sine(phi)))
                }
                let end = pts[pts.count - 1]  // heading −x at (r, 0, top.z − r)
                for k in 1...16 { pts.append(end + Vec3(-2.5 * Double(k), 0, 0)) }
                route = pts
                startLength = 100 + .pi * r * 1.1
                speed = 10
            }
        }

        func catheter(at t: Double) -> [Vec3] {
            let total = Polyline.length(route)
            let inserted = min(total - 0.5, startLength + speed * t)
            return Polyline.prefix(route, length: inserted, step: 1)
        }

        /// mm — breathing (0.25 Hz, 8 mm cranio-caudal, 2 mm antero-posterior) and heartbeat
        /// (1.2 Hz, 2 mm sideways) displacement of vessels and catheter together.
        func backgroundShift(at t: Double) -> Vec3 {
            let breathing = sine(2 * .pi * 0.25 * t)
            let beat = sine(2 * .pi * 1.2 * t)
            return Vec3(2 * beat, 2 * breathing, 8 * breathing)
        }
    }
}

extension TrackingEvaluation {
    /// One sequence's row in the report.
    public struct ConditionResult: Encodable, Sendable {
        public var name: String
        public var phantom: String
        public var primary_deg: Double
        public var secondary_deg: Double
        public var photons_per_pixel: Double
        public var fps: Double
        public var contrast: Bool
        public var motion: String
        public var frames: Int
        public var tracked_pct: Double
        public var err_px_median: Double
        public var err_px_p95: Double
        public var err_px_max: Double
        public var err_mm_median: Double
        /// Tracked frames more than 10 px from the truth: a wrong object, not an inaccuracy.
        public var wrong_pct: Double
        /// Where the tip is visible (inside the field), and fixes at confidence > 0.5 more than
        /// 10 px off (or with the tip out of sight): the fixes the closed loop trusts wrongly.
        public var visible_frames: Int
        public var confident_wrong_pct: Double
        public var confident_wrong_longest_run: Int
        public var confident_right_pct: Double
        public var pixel_pitch_mm: Double
        public var detector_px: Int
        public var ms_per_frame: Double
        public var err3d_mm_median: Double?
        public var err3d_mm_p95: Double?
        /// Every frame's error in order (null where the tracker reported the tip lost), so a
        /// tail can be traced to its frames.
        public var err_px_per_frame: [Double?]
    }

    public struct Summary: Encodable, Sendable {
        public var frames: Int
        public var tracked_pct: Double
        public var err_px_median: Double
        public var err_px_p95: Double
        public var err_mm_median: Double
        public var wrong_pct: Double
    }

    public struct Report: Encodable, Sendable {
        public var split: String
        public var score: TrackingScore
        public var detector_px: Int
        public var pixel_pitch_mm: Double
        public var noise_seed: UInt64
        public var frames_per_sequence: Int
        public var default_photons_per_pixel: Double
        public var overall: Summary
        public var default_dose: Summary
        public var biplane: [String: Double]
        public var conditions: [ConditionResult]
        public var targets: [String: String]
        public var figure: String
    }

    /// Evaluates `conditions` in order and pools them. `overlay` names the condition whose frames
    /// are drawn into `overlayDir`; `progress` hears of each sequence before it starts.
    public static func run(_ conditions: [TrackingCondition], frames n: Int, size: Int, seed: UInt64, split: String?,
                           overlay: (name: String, dir: String)? = nil, figure: String, candidates: Bool = false,
                           tracker: TrackerSettings = TrackerSettings(),
                           progress: (Int, TrackingCondition) -> Void = { _, _ in }) throws(TrackingEvaluationError)
        -> (report: Report, csvRows: [String], candidateRows: [String]) {
        let pitch = 307.2 / Double(size)
        var results: [ConditionResult] = []
        var outcomes: [[TrackOutcome]] = []
        var rows: [String] = [], candidateRows: [String] = []
        var allErr: [Double] = [], defaultErr: [Double] = []
        var allFrames = 0, allTracked = 0, defFrames = 0, defTracked = 0, allWrong = 0, defWrong = 0
        var all3D: [Double] = []
        for (ci, c) in conditions.enumerated() {
            progress(ci, c)
            let seq = try evaluate(c, frames: n, size: size, pitch: pitch, seed: seed, overlayDir: overlay?.name == c.name ? overlay?.dir : nil,
                                   candidates: candidates, tracker: tracker)
            candidateRows += seq.candidateRows
            let errs = seq.errors.compactMap { $0 }
            let tracked = errs.count
            let wrong = errs.filter { $0 > TrackingScore.wrongBeyondPx }.count
            let score = TrackingScore(seq.outcomes)
            outcomes.append(seq.outcomes)
            rows += seq.rows
            let rPitch = c.randomised?.pixelPitch ?? pitch
            let frames = max(1, seq.errors.count)
            results.append(ConditionResult(
                name: c.name, phantom: c.phantom, primary_deg: c.primaryDeg, secondary_deg: c.secondaryDeg, photons_per_pixel: c.photons, fps: c.fps,
                contrast: c.contrast, motion: c.motion.rawValue, frames: seq.errors.count,
                tracked_pct: round1(100 * Double(tracked) / Double(frames)),
                err_px_median: round3(percentile(errs, 50)), err_px_p95: round3(percentile(errs, 95)), err_px_max: round3(errs.max() ?? 0),
                err_mm_median: round3(percentile(errs, 50) * rPitch), wrong_pct: round1(100 * Double(wrong) / Double(frames)),
                visible_frames: score.visible_frames, confident_wrong_pct: score.confident_wrong_pct,
                confident_wrong_longest_run: score.confident_wrong_longest_run, confident_right_pct: score.confident_right_pct,
                pixel_pitch_mm: round3(rPitch), detector_px: c.randomised?.size ?? size,
                ms_per_frame: round3(seq.trackMs.reduce(0, +) / Double(max(1, seq.trackMs.count))),
                err3d_mm_median: seq.errors3D.isEmpty ? nil : round3(percentile(seq.errors3D, 50)),
                err3d_mm_p95: seq.errors3D.isEmpty ? nil : round3(percentile(seq.errors3D, 95)),
                err_px_per_frame: seq.errors.map { $0.map(round3) }))
            allErr += errs; allFrames += seq.errors.count; allTracked += tracked; allWrong += wrong
            all3D += seq.errors3D
            if c.photons == defaultPhotons {
                defaultErr += errs; defFrames += seq.errors.count; defTracked += tracked; defWrong += wrong
            }
        }
        func summary(_ e: [Double], _ frames: Int, _ tracked: Int, _ wrong: Int) -> Summary {
            Summary(frames: frames, tracked_pct: round1(100 * Double(tracked) / Double(max(1, frames))), err_px_median: round3(percentile(e, 50)),
                    err_px_p95: round3(percentile(e, 95)), err_mm_median: round3(percentile(e, 50) * pitch),
                    wrong_pct: round1(100 * Double(wrong) / Double(max(1, frames))))
        }
        let report = Report(
            split: split ?? "fixed", score: TrackingScore(sequences: outcomes),
            detector_px: size, pixel_pitch_mm: round3(pitch), noise_seed: seed, frames_per_sequence: n, default_photons_per_pixel: defaultPhotons,
            overall: summary(allErr, allFrames, allTracked, allWrong), default_dose: summary(defaultErr, defFrames, defTracked, defWrong),
            biplane: all3D.isEmpty ? [:] : ["err3d_mm_median": round3(percentile(all3D, 50)), "err3d_mm_p95": round3(percentile(all3D, 95)),
                                            "frames": Double(all3D.count)],
            conditions: results,
            targets: ["err_px_median": "≤ 1", "err_px_p95": "≤ 3", "tracked_pct (where visible)": "≥ 99", "err3d_mm_median": "≤ 0.5",
                      "confident_wrong_pct": "≤ 0.5", "confident_wrong_longest_run": "≤ 3", "confident_right_pct (≤ 3 px at confidence > 0.5)": "≥ 99"],
            figure: figure)
        return (report, rows, candidateRows)
    }
}
