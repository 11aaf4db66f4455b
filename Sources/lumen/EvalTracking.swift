import ArgumentParser
import CommandSupport
import Core
import Foundation
import Imaging
import Scenarios
import Sim

/// `lumen eval tracking`: the tip tracker on simulated sequences with ground truth, across
/// phantoms, C-arm angles, dose, frame rate, contrast, catheter motion (advancing along a
/// vessel; a loop whose tip crosses the shaft) and a moving background, single- and biplane.
struct EvalTracking: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracking",
        abstract: "Tip-tracking error against the renderer's ground truth across phantoms, angles, dose, frame rate and motion.",
        discussion: """
            Without --split: the fixed conditions below, on the renderer's default look.
            With --split: randomised sequences (anatomy, ribs across the spine edge, crossing and ending vessels, wires, \
            linear and log encoding, MONOCHROME1, pixel pitch 0.15-0.6 mm, band length, catheter width, dose, scatter, motion). \
            The tuning and heldout splits are drawn from disjoint seed streams, so no sequence or configuration of one \
            occurs in the other. Settings are tuned on --split tuning only; --split heldout is for reporting and is never \
            used while tuning.
            """
    )

    @Flag(help: "Fewer frames per sequence (a smoke run).") var quick = false
    @Option(help: "Frames per sequence (4…2000; 30, or 10 with --quick, when absent).") var frames: Int?
    @Option(help: "Detector size (px, square: 256, 384, 512, 768 or 1024); the field of view stays 307 mm, so the pitch is 307.2 mm / size.") var size = 512
    @Option(help: "Folder for the figure and per-frame results.") var out = "out/eval-tracking"
    @Option(help: "Write overlays of every frame of this condition (by name) into <out>/overlay-<name>.") var overlay: String?
    @Option(help: "Only these conditions or drawn sequences (names, comma-separated); all when absent.") var only: String?
    @Option(help: "Randomised sequences instead of the fixed conditions: tuning (to tune on) or heldout (to report; never used while tuning).")
    var split: String?
    @Option(help: "Randomised sequences per split (1…500; 16 when absent).") var sequences: Int?
    @Option(help: "Noise seed (any whole number 0…2⁶⁴ − 1): another value renders the same sequences with other quantum noise (0: the default noise).") var seed: UInt64 = 0
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        try Check.oneOf(size, "--size", [256, 384, 512, 768, 1024])
        try Check.count(frames, "--frames", in: 4...2000)
        try Check.count(sequences, "--sequences", in: 1...500)
        if let sp = split { try Check.oneOf(sp, "--split", TrackingSplit.allCases.map(\.rawValue)) }
        if sequences != nil, split == nil { throw ValidationError("--sequences needs --split (tuning or heldout)") }
        if selectedNames?.isEmpty == true { throw ValidationError("--only names no condition: give at least one, or leave it out for all") }
        let pool = split == nil ? Self.conditions : drawn
        let known = Set(pool.map(\.name))
        for name in selectedNames ?? [] where !known.contains(name) {
            throw ValidationError("--only: no condition named '\(name)'; the conditions are \(pool.map(\.name).joined(separator: ", "))")
        }
        if let o = overlay, !selected.contains(where: { $0.name == o }) {
            throw ValidationError("--overlay: '\(o)' is not among the conditions run; they are \(selected.map(\.name).joined(separator: ", "))")
        }
        try Check.outputFolder(out, "--out", files: [Self.resultsName, Self.figureName, Self.framesName], folders: overlay.map { ["overlay-" + $0] } ?? [])
    }

    static let resultsName = "tracking.json", figureName = "tracking-error.png", framesName = "frames.csv"

    var selectedNames: [String]? {
        only.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    /// The conditions this run evaluates: those `--only` names, or all.
    var selected: [Condition] {
        let pool = split == nil ? Self.conditions : drawn
        guard let names = selectedNames else { return pool }
        return pool.filter { names.contains($0.name) }
    }

    /// The randomised sequences of `--split` (none without it).
    var drawn: [Condition] {
        guard let sp = split.flatMap(TrackingSplit.init(rawValue:)) else { return [] }
        return (0..<(sequences ?? 16)).map { Condition(RandomisedTrackingSequence.draw(sp, index: $0)) }
    }

    /// The renderer's default dose.
    static let defaultPhotons = FluoroSettings().photonsPerPixel

    enum Motion: String { case advance, loop }

    struct Condition {
        var name: String
        var phantom: String
        var primaryDeg: Double, secondaryDeg: Double
        var photons: Double = EvalTracking.defaultPhotons
        var fps: Double = 15
        var contrast = true
        var motion: Motion = .advance
        /// Second plane at primary + 90° (biplane: 3D error by triangulation).
        var biplane = false
        /// A randomised sequence (detector size, pitch and imaging from it), nil for a fixed condition.
        var randomised: RandomisedTrackingSequence? = nil

        init(name: String, phantom: String, primaryDeg: Double, secondaryDeg: Double, photons: Double = EvalTracking.defaultPhotons, fps: Double = 15,
             contrast: Bool = true, motion: Motion = .advance, biplane: Bool = false) {
            self.name = name; self.phantom = phantom; self.primaryDeg = primaryDeg; self.secondaryDeg = secondaryDeg
            self.photons = photons; self.fps = fps; self.contrast = contrast; self.motion = motion; self.biplane = biplane
        }

        init(_ r: RandomisedTrackingSequence) {
            self.init(name: r.name, phantom: r.phantom, primaryDeg: r.primaryDeg, secondaryDeg: r.secondaryDeg, photons: r.fluoro.photonsPerPixel,
                      fps: r.fps, contrast: r.fluoro.contrast > 0, motion: EvalTracking.sceneMotion(r.motion))
            randomised = r
        }
    }

    static let conditions: [Condition] = fixedConditions

    static func sceneMotion(_ m: String) -> Motion { m == "loop" ? .loop : .advance }

    static let fixedConditions: [Condition] = {
        var c: [Condition] = []
        for phantom in ["arch", "coronary", "straight"] {
            for (a, b, tag) in [(0.0, 0.0, "ap"), (30.0, 0.0, "lao30"), (-30.0, 20.0, "rao30-cra20")] {
                c.append(Condition(name: "\(phantom)-\(tag)", phantom: phantom, primaryDeg: a, secondaryDeg: b))
            }
        }
        for photons in [1000.0, 3000, 10000] {
            c.append(Condition(name: "arch-ap-dose\(Int(photons))", phantom: "arch", primaryDeg: 0, secondaryDeg: 0, photons: photons))
        }
        c.append(Condition(name: "coronary-rao30-cra20-dose1000", phantom: "coronary", primaryDeg: -30, secondaryDeg: 20, photons: 1000))
        for fps in [7.5, 30] {
            c.append(Condition(name: "arch-ap-\(fps == 7.5 ? "7.5" : "30")fps", phantom: "arch", primaryDeg: 0, secondaryDeg: 0, fps: fps))
        }
        c.append(Condition(name: "coronary-lao30-7.5fps", phantom: "coronary", primaryDeg: 30, secondaryDeg: 0, fps: 7.5))
        c.append(Condition(name: "arch-ap-nocontrast", phantom: "arch", primaryDeg: 0, secondaryDeg: 0, contrast: false))
        c.append(Condition(name: "coronary-rao30-cra20-nocontrast", phantom: "coronary", primaryDeg: -30, secondaryDeg: 20, contrast: false))
        c.append(Condition(name: "loop-ap", phantom: "straight", primaryDeg: 0, secondaryDeg: 0, motion: .loop))
        c.append(Condition(name: "loop-lao30-dose1000", phantom: "straight", primaryDeg: 30, secondaryDeg: 0, photons: 1000, motion: .loop))
        c.append(Condition(name: "biplane-arch", phantom: "arch", primaryDeg: 0, secondaryDeg: 0, biplane: true))
        c.append(Condition(name: "biplane-coronary", phantom: "coronary", primaryDeg: -30, secondaryDeg: 20, biplane: true))
        return c
    }()

    struct ConditionResult: Encodable {
        var name: String
        var phantom: String
        var primary_deg: Double
        var secondary_deg: Double
        var photons_per_pixel: Double
        var fps: Double
        var contrast: Bool
        var motion: String
        var frames: Int
        var tracked_pct: Double
        var err_px_median: Double
        var err_px_p95: Double
        var err_px_max: Double
        var err_mm_median: Double
        /// Tracked frames more than 10 px from the truth: a wrong object, not an inaccuracy.
        var wrong_pct: Double
        /// Where the tip is visible (inside the field), and fixes at confidence > 0.5 more than
        /// 10 px off (or with the tip out of sight): the fixes the closed loop trusts wrongly.
        var visible_frames: Int
        var confident_wrong_pct: Double
        var confident_wrong_longest_run: Int
        var confident_right_pct: Double
        var pixel_pitch_mm: Double
        var detector_px: Int
        var ms_per_frame: Double
        var err3d_mm_median: Double?
        var err3d_mm_p95: Double?
        /// Every frame's error in order (null where the tracker reported the tip lost), so a
        /// tail can be traced to its frames.
        var err_px_per_frame: [Double?]
    }

    struct Summary: Encodable {
        var frames: Int
        var tracked_pct: Double
        var err_px_median: Double
        var err_px_p95: Double
        var err_mm_median: Double
        var wrong_pct: Double
    }

    struct Result: Encodable {
        var split: String
        var score: TrackingScore
        var detector_px: Int
        var pixel_pitch_mm: Double
        var noise_seed: UInt64
        var frames_per_sequence: Int
        var default_photons_per_pixel: Double
        var overall: Summary
        var default_dose: Summary
        var biplane: [String: Double]
        var conditions: [ConditionResult]
        var targets: [String: String]
        var figure: String
    }

    func run() throws {
        let n = frames ?? (quick ? 10 : 30)
        let pitch = 307.2 / Double(size)
        try OutputPath.createFolder(out)
        var results: [ConditionResult] = []
        var outcomes: [[TrackOutcome]] = []
        var rowsAll: [String] = []
        var allErr: [Double] = [], defaultErr: [Double] = []
        var allFrames = 0, allTracked = 0, defFrames = 0, defTracked = 0, allWrong = 0, defWrong = 0
        var all3D: [Double] = []
        var series: [LinePlot.Series] = []
        let palette: [(UInt8, UInt8, UInt8)] = [(220, 50, 47), (38, 139, 210), (133, 153, 0), (211, 54, 130), (42, 161, 152), (181, 137, 0),
                                                (108, 113, 196), (203, 75, 22), (88, 110, 117)]
        let selected = self.selected
        for (ci, c) in selected.enumerated() {
            Output.status("eval tracking: \(c.name) (\(ci + 1)/\(selected.count))")
            let seq = try Self.evaluate(c, frames: n, size: size, pitch: pitch, seed: seed, overlayDir: overlay == c.name ? out + "/overlay-" + c.name : nil)
            let errs = seq.errors.compactMap { $0 }
            let tracked = errs.count
            let wrong = errs.filter { $0 > 10 }.count
            let score = TrackingScore(seq.outcomes)
            outcomes.append(seq.outcomes)
            rowsAll += seq.rows
            let rPitch = c.randomised?.pixelPitch ?? pitch
            let r = ConditionResult(
                name: c.name, phantom: c.phantom, primary_deg: c.primaryDeg, secondary_deg: c.secondaryDeg, photons_per_pixel: c.photons, fps: c.fps,
                contrast: c.contrast, motion: c.motion.rawValue, frames: seq.errors.count,
                tracked_pct: round1(100 * Double(tracked) / Double(seq.errors.count)),
                err_px_median: round3(percentile(errs, 50)), err_px_p95: round3(percentile(errs, 95)), err_px_max: round3(errs.max() ?? 0),
                err_mm_median: round3(percentile(errs, 50) * rPitch), wrong_pct: round1(100 * Double(wrong) / Double(seq.errors.count)),
                visible_frames: score.visible_frames, confident_wrong_pct: score.confident_wrong_pct,
                confident_wrong_longest_run: score.confident_wrong_longest_run, confident_right_pct: score.confident_right_pct,
                pixel_pitch_mm: round3(rPitch), detector_px: c.randomised?.size ?? size,
                ms_per_frame: round3(seq.trackMs.reduce(0, +) / Double(max(1, seq.trackMs.count))),
                err3d_mm_median: seq.errors3D.isEmpty ? nil : round3(percentile(seq.errors3D, 50)),
                err3d_mm_p95: seq.errors3D.isEmpty ? nil : round3(percentile(seq.errors3D, 95)),
                err_px_per_frame: seq.errors.map { $0.map(round3) })
            results.append(r)
            allErr += errs; allFrames += seq.errors.count; allTracked += tracked; allWrong += wrong
            all3D += seq.errors3D
            if c.photons == Self.defaultPhotons {
                defaultErr += errs; defFrames += seq.errors.count; defTracked += tracked; defWrong += wrong
            }
            if ci < palette.count * 3 {
                series.append(LinePlot.Series(label: c.name, points: seq.errors.enumerated().compactMap { i, e in e.map { (Double(i), min($0, 10)) } },
                                              color: palette[ci % palette.count], thickness: 1, markers: false))
            }
        }
        Output.endStatus()
        func summary(_ e: [Double], _ frames: Int, _ tracked: Int, _ wrong: Int) -> Summary {
            Summary(frames: frames, tracked_pct: round1(100 * Double(tracked) / Double(max(1, frames))), err_px_median: round3(percentile(e, 50)),
                    err_px_p95: round3(percentile(e, 95)), err_mm_median: round3(percentile(e, 50) * pitch),
                    wrong_pct: round1(100 * Double(wrong) / Double(max(1, frames))))
        }
        let figure = out + "/" + Self.figureName
        // Only the first few conditions' curves fit a legend; the figure shows the error of every frame of all.
        let view = split.map { "\($0) split, \(selected.count) sequences at their own pitch" } ?? "\(size) x \(size) px at \(round3(pitch)) mm"
        var plot = LinePlot(title: "Tip error per frame (px, clipped at 10), \(view)", xLabel: "frame", yLabel: "error (px)")
        plot.series = Array(series.prefix(9))
        let rest = series.dropFirst(9).flatMap(\.points)
        if !rest.isEmpty {
            plot.series.append(LinePlot.Series(label: "other conditions", points: rest, color: (120, 120, 120), thickness: 1, markers: true))
        }
        try plot.write(to: figure)
        let pooled = TrackingScore(sequences: outcomes)
        let result = Result(
            split: split ?? "fixed", score: pooled,
            detector_px: size, pixel_pitch_mm: round3(pitch), noise_seed: seed, frames_per_sequence: n, default_photons_per_pixel: Self.defaultPhotons,
            overall: summary(allErr, allFrames, allTracked, allWrong), default_dose: summary(defaultErr, defFrames, defTracked, defWrong),
            biplane: all3D.isEmpty ? [:] : ["err3d_mm_median": round3(percentile(all3D, 50)), "err3d_mm_p95": round3(percentile(all3D, 95)),
                                            "frames": Double(all3D.count)],
            conditions: results,
            targets: ["err_px_median": "≤ 1", "err_px_p95": "≤ 3", "tracked_pct (where visible)": "≥ 99", "err3d_mm_median": "≤ 0.5",
                      "confident_wrong_pct": "≤ 0.5", "confident_wrong_longest_run": "≤ 3", "confident_right_pct (≤ 3 px at confidence > 0.5)": "≥ 99"],
            figure: figure)
        try Output.writeJSON(result, to: out + "/" + Self.resultsName)
        let header = "sequence,frame,status,error_px,visible,confidence,ridge_snr,end_snr,width_px,innovation_px,search_radius_px,full_frame,shaft_fwhm_px,shaft_snr,continuation,shaft_run_px,pitch_mm,detector_confidence\n"
        do {
            try (header + rowsAll.joined(separator: "\n") + "\n").write(toFile: out + "/" + Self.framesName, atomically: true, encoding: .utf8)
        } catch { throw CommandFailure("cannot write \(out)/\(Self.framesName): \(error.localizedDescription); check the folder is writable") }
        if json {
            try Output.json(result)
        } else {
            print(String(format: "%-34@ %7@ %8@ %8@ %8@ %7@ %7@ %4@", "condition" as NSString, "tracked" as NSString, "med px" as NSString, "p95 px" as NSString,
                         "med mm" as NSString, "3D mm" as NSString, "c-wrong" as NSString, "run" as NSString))
            for r in results {
                print(String(format: "%-34@ %6.1f%% %8.3f %8.3f %8.3f %7@ %6.1f%% %4d", r.name as NSString, r.tracked_pct, r.err_px_median, r.err_px_p95, r.err_mm_median,
                             (r.err3d_mm_median.map { String(format: "%.3f", $0) } ?? "") as NSString, r.confident_wrong_pct, r.confident_wrong_longest_run))
            }
            let sc = result.score
            print(String(format: "%@: %d frames (%d visible), tracked %.1f %% where visible, median %.3f px, p95 %.3f px, confident-wrong %.2f %% (longest run %d), right at confidence > 0.5: %.2f %%",
                         result.split as NSString, sc.frames, sc.visible_frames, sc.tracked_pct, sc.err_px_median, sc.err_px_p95, sc.confident_wrong_pct,
                         sc.confident_wrong_longest_run, sc.confident_right_pct))
            let o = result.overall, d = result.default_dose
            print(String(format: "overall: %d frames, %.1f %% tracked, median %.3f px (%.3f mm), p95 %.3f px; default dose: %.1f %% tracked, median %.3f px, p95 %.3f px",
                         o.frames, o.tracked_pct, o.err_px_median, o.err_mm_median, o.err_px_p95, d.tracked_pct, d.err_px_median, d.err_px_p95))
            if let m = result.biplane["err3d_mm_median"] { print(String(format: "biplane 3D: median %.3f mm, p95 %.3f mm", m, result.biplane["err3d_mm_p95"]!)) }
            print("figure: \(figure)")
        }
    }

    struct SequenceResult {
        /// Per frame of plane A: the tip error (px) when tracked, nil when lost.
        var errors: [Double?]
        var errors3D: [Double]
        var trackMs: [Double]
        var outcomes: [TrackOutcome] = []
        /// One CSV row per frame: what the tracker saw and reported, for calibrating its confidence.
        var rows: [String] = []
    }

    /// Renders and tracks one condition's sequence.
    static func evaluate(_ c: Condition, frames n: Int, size defaultSize: Int, pitch defaultPitch: Double, seed noiseSeed: UInt64, overlayDir: String?) throws -> SequenceResult {
        var tree = Phantoms.named(c.phantom)!
        let scene = Scene(condition: c)
        let size = c.randomised?.size ?? defaultSize, pitch = c.randomised?.pixelPitch ?? defaultPitch
        if let r = c.randomised {
            let path = scene.catheter(at: Double(n - 1) / c.fps)
            tree.vessels += r.distractorVessels(along: Array(path.suffix(160)))
        }
        // Centre the view on the middle of the tip's path.
        let first = scene.catheter(at: 0).last!, last = scene.catheter(at: Double(n - 1) / c.fps).last!
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
        let trackerA = try tracker(), trackerB = try tracker()
        if let dir = overlayDir { try OutputPath.createFolder(dir) }
        var result = SequenceResult(errors: [], errors3D: [], trackMs: [])
        for f in 0..<n {
            let t = Double(f) / c.fps
            let shift = scene.backgroundShift(at: t) * (c.randomised?.motionScale ?? 1)
            let movedTree = VesselTreeDescription(name: tree.name, vessels: tree.vessels.map { v in
                VesselDescription(name: v.name, parent: v.parent, points: v.points.map { [$0[0] + shift.x, $0[1] + shift.y, $0[2] + shift.z, $0[3]] })
            })
            let catheter = scene.catheter(at: t).map { $0 + shift }
            let stamp = Nanoseconds.fromSeconds(t)
            var (frameA, truthA) = try rendererA.render(tree: movedTree, catheter: catheter, frame: f, acquiredAt: stamp)
            // A MONOCHROME1 frame reaches the tracker as a DICOM reader delivers it, inverted back.
            if settings.monochrome1 { frameA = FluoroRenderer.monochrome2(frameA) }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let a: TipTrack
            do { a = try trackerA.track(frameA) } catch { throw CommandFailure("\(c.name) frame \(f): \(error.description)") }
            result.trackMs.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            let error = a.status == .tracked ? hypot(a.u - truthA.tip2D[0], a.v - truthA.tip2D[1]) : nil
            result.errors.append(error)
            let margin = 6.0
            let visible = truthA.tip2D[0] >= margin && truthA.tip2D[1] >= margin && truthA.tip2D[0] <= Double(size) - 1 - margin
                && truthA.tip2D[1] <= Double(size) - 1 - margin
            result.outcomes.append(TrackOutcome(error: error, confidence: a.status == .tracked ? a.confidence : 0, visible: visible))
            result.rows.append(Self.csvRow(c.name, f, a, error: error, visible: visible, pitch: pitch))
            if let dir = overlayDir {
                if f == 0 { try TrackOverlay.writeResponse(frameA, detector: trackerA.detector, to: dir + "/response_0000.png") }
                try PNGFrameFile.write(frameA, to: dir + String(format: "/raw_%04d.png", f))
                try TrackOverlay.write(frameA, track: a, chains: trackerA.detector.lastChains, truth: (truthA.tip2D[0], truthA.tip2D[1]),
                                       to: dir + String(format: "/frame_%04d.png", f))
            }
            if let rendererB {
                let (frameB, _) = try rendererB.render(tree: movedTree, catheter: catheter, frame: f, acquiredAt: stamp)
                let b: TipTrack
                do { b = try trackerB.track(frameB) } catch { throw CommandFailure("\(c.name) plane B frame \(f): \(error.description)") }
                if a.status == .tracked, b.status == .tracked {
                    let views = [PixelObservation(matrix: matrixA, pixel: SIMD2(a.u, a.v)),
                                 PixelObservation(matrix: matrixB, pixel: SIMD2(b.u, b.v))]
                    let truth = Vec3(truthA.tip3D[0], truthA.tip3D[1], truthA.tip3D[2])
                    do {
                        result.errors3D.append((try Triangulation.triangulate(views).position - truth).length)
                    } catch {
                        throw CommandFailure("\(c.name) frame \(f): triangulation failed: \(error)")
                    }
                }
            }
        }
        return result
    }

    /// One frames.csv row (see the header): what the tracker saw and reported.
    static func csvRow(_ name: String, _ f: Int, _ a: TipTrack, error: Double?, visible: Bool, pitch: Double) -> String {
        func num(_ x: Double?, _ format: String = "%.3f") -> String { x.map { String(format: format, $0) } ?? "" }
        let d = a.detection, e = d?.evidence
        var cols: [String] = [name, "\(f)", a.status.rawValue, num(error), visible ? "1" : "0", num(a.confidence, "%.4f")]
        cols += [num(d?.ridgeSNR), num(d?.endSNR), num(d?.widthPx), num(a.innovationPx), num(a.searchRadiusPx), a.fullFrameSearch ? "1" : "0"]
        let snr: Double? = e.map { $0.shaftLevel / max(1e-6, $0.shaftNoise) }
        cols += [num(e?.shaftWidthPx), num(snr), num(e?.continuation), num(e?.shaftRunPx, "%.1f"), num(pitch), num(d?.confidence, "%.4f")]
        return cols.joined(separator: ",")
    }

    static func tracker() throws -> TipTracker {
        do { return try TipTracker() } catch { throw CommandFailure(error.description) }
    }

    /// Where the catheter is at time t, and how the anatomy moves (breathing and heartbeat).
    struct Scene {
        let condition: Condition
        let route: [Vec3]
        let startLength: Double
        /// mm/s
        let speed: Double

        init(condition c: Condition) {
            condition = c
            let tree = Phantoms.named(c.phantom)!
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
                let top = pts.last!
                for k in 1...54 {
                    let phi = 1.5 * .pi * Double(k) / 54
                    pts.append(top + Vec3(r - r * cosine(phi), 0, r * sine(phi)))
                }
                let end = pts.last!  // heading −x at (r, 0, top.z − r)
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
