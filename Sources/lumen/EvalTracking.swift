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
    @Flag(help: "Also write candidates.csv: every tip candidate the detector ranked in each frame, its evidence and its distance to the true tip.")
    var candidates = false
    @Flag(help: "Ignore the frames' pixel pitch: the detector's and tracker's lengths in pixels as given at every pitch (as before the pitch reached the detector), for comparison.")
    var pixelLengths = false
    @Option(help: "Rival tips a contested track follows until time tells which is the catheter's end (0…4; 2 when absent; 0: none, the track as acquired).")
    var rivals: Int?

    func validate() throws {
        try Check.oneOf(size, "--size", [256, 384, 512, 768, 1024])
        try Check.count(frames, "--frames", in: 4...2000)
        try Check.count(sequences, "--sequences", in: 1...500)
        try Check.count(rivals, "--rivals", in: 0...4)
        if let sp = split { try Check.oneOf(sp, "--split", TrackingSplit.allCases.map(\.rawValue)) }
        if sequences != nil, split == nil { throw ValidationError("--sequences needs --split (tuning or heldout)") }
        if selectedNames?.isEmpty == true { throw ValidationError("--only names no condition: give at least one, or leave it out for all") }
        let pool = split == nil ? TrackingEvaluation.fixedConditions : drawn
        let known = Set(pool.map(\.name))
        for name in selectedNames ?? [] where !known.contains(name) {
            throw ValidationError("--only: no condition named '\(name)'; the conditions are \(pool.map(\.name).joined(separator: ", "))")
        }
        if let o = overlay, !selected.contains(where: { $0.name == o }) {
            throw ValidationError("--overlay: '\(o)' is not among the conditions run; they are \(selected.map(\.name).joined(separator: ", "))")
        }
        try Check.outputFolder(out, "--out", files: [Self.resultsName, Self.figureName, Self.framesName] + (candidates ? [Self.candidatesName] : []), folders: overlay.map { ["overlay-" + $0] } ?? [])
    }

    static let resultsName = "tracking.json", figureName = "tracking-error.png", framesName = "frames.csv"
    static let candidatesName = "candidates.csv"

    var selectedNames: [String]? {
        only.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    /// The conditions this run evaluates: those `--only` names, or all.
    var selected: [TrackingCondition] {
        let pool = split == nil ? TrackingEvaluation.fixedConditions : drawn
        guard let names = selectedNames else { return pool }
        return pool.filter { names.contains($0.name) }
    }

    /// The tracker's settings, with `--rivals` where given.
    var trackerSettings: TrackerSettings {
        var s = pixelLengths ? TrackerSettings().pixelLengthsOnly : TrackerSettings()
        if let r = rivals {
            s.maximumRivals = r
            if r == 0 { s.rivalShare = 0 }
        }
        return s
    }

    /// The randomised sequences of `--split` (none without it).
    var drawn: [TrackingCondition] {
        guard let sp = split.flatMap(TrackingSplit.init(rawValue:)) else { return [] }
        return TrackingEvaluation.drawn(sp, count: sequences ?? 16)
    }

    func run() throws {
        let n = frames ?? (quick ? 10 : 30)
        let pitch = 307.2 / Double(size)
        try OutputPath.createFolder(out)
        let selected = self.selected
        let figure = out + "/" + Self.figureName
        let (result, rows, candidateRows): (TrackingEvaluation.Report, [String], [String])
        do {
            (result, rows, candidateRows) = try TrackingEvaluation.run(
                selected, frames: n, size: size, seed: seed, split: split, overlay: overlay.map { ($0, out + "/overlay-" + $0) }, figure: figure,
                candidates: candidates, tracker: trackerSettings,
                progress: { i, c in Output.status("eval tracking: \(c.name) (\(i + 1)/\(selected.count))") })
        } catch { throw CommandFailure(error.description) }
        Output.endStatus()
        try plot(result, to: figure, pitch: pitch, count: selected.count)
        try Output.writeJSON(result, to: out + "/" + Self.resultsName)
        do {
            try (TrackingEvaluation.csvHeader + "\n" + rows.joined(separator: "\n") + "\n").write(toFile: out + "/" + Self.framesName, atomically: true, encoding: .utf8)
        } catch { throw CommandFailure("cannot write \(out)/\(Self.framesName): \(error.localizedDescription); check the folder is writable") }
        if candidates {
            do {
                try (TrackingEvaluation.candidateHeader + "\n" + candidateRows.joined(separator: "\n") + "\n")
                    .write(toFile: out + "/" + Self.candidatesName, atomically: true, encoding: .utf8)
            } catch { throw CommandFailure("cannot write \(out)/\(Self.candidatesName): \(error.localizedDescription); check the folder is writable") }
        }
        if json {
            try Output.json(result)
        } else {
            print(String(format: "%-34@ %7@ %8@ %8@ %8@ %7@ %7@ %4@", "condition" as NSString, "tracked" as NSString, "med px" as NSString, "p95 px" as NSString,
                         "med mm" as NSString, "3D mm" as NSString, "c-wrong" as NSString, "run" as NSString))
            for r in result.conditions {
                print(String(format: "%-34@ %6.1f%% %8.3f %8.3f %8.3f %7@ %6.1f%% %4d", r.name as NSString, r.tracked_pct, r.err_px_median, r.err_px_p95, r.err_mm_median,
                             (r.err3d_mm_median.map { String(format: "%.3f", $0) } ?? "") as NSString, r.confident_wrong_pct, r.confident_wrong_longest_run))
            }
            let sc = result.score
            print(String(format: "%@: %d frames (%d visible), tracked %.1f %% where visible, median %.3f px, p95 %.3f px, confident-wrong %.2f %% (longest run %d), right at confidence > 0.5: %.2f %%",
                         result.split as NSString, sc.frames, sc.visible_frames, sc.tracked_pct, sc.err_px_median, sc.err_px_p95, sc.confident_wrong_pct,
                         sc.confident_wrong_longest_run, sc.confident_right_pct))
            print("reliability (confidence bin: fixes, mean confidence, right ≤ 3 px): "
                + sc.reliability.map { String(format: "%.2f–%.2f: %d, %.3f, %.1f %%", $0.from, $0.to, $0.fixes, $0.mean_confidence, $0.right_pct) }.joined(separator: "; "))
            let o = result.overall, d = result.default_dose
            print(String(format: "overall: %d frames, %.1f %% tracked, median %.3f px (%.3f mm), p95 %.3f px; default dose: %.1f %% tracked, median %.3f px, p95 %.3f px",
                         o.frames, o.tracked_pct, o.err_px_median, o.err_mm_median, o.err_px_p95, d.tracked_pct, d.err_px_median, d.err_px_p95))
            if let m = result.biplane["err3d_mm_median"], let p = result.biplane["err3d_mm_p95"] { print(String(format: "biplane 3D: median %.3f mm, p95 %.3f mm", m, p)) }
            print("figure: \(figure)")
        }
    }

    /// Every frame's error of every sequence (clipped at 10 px); only the first few fit a legend.
    func plot(_ result: TrackingEvaluation.Report, to figure: String, pitch: Double, count: Int) throws {
        let palette: [(UInt8, UInt8, UInt8)] = [(220, 50, 47), (38, 139, 210), (133, 153, 0), (211, 54, 130), (42, 161, 152), (181, 137, 0),
                                                (108, 113, 196), (203, 75, 22), (88, 110, 117)]
        let series = result.conditions.enumerated().map { ci, c in
            // A drawn sequence's name carries its tags; the legend keys it by split and index.
            let label = split == nil ? c.name : c.name.split(separator: "-").prefix(2).joined(separator: "-")
            return LinePlot.Series(label: label, points: c.err_px_per_frame.enumerated().compactMap { i, e in e.map { (Double(i), min($0, 10)) } },
                            color: palette[ci % palette.count], thickness: 1, markers: false)
        }
        let view = split.map { "\($0) split, \(count) sequences at their own pitch" } ?? "\(size) x \(size) px at \(round3(pitch)) mm"
        var plot = LinePlot(title: "Tip error per frame (px, clipped at 10), \(view)", xLabel: "frame", yLabel: "error (px)")
        plot.series = Array(series.prefix(9))
        let rest = series.dropFirst(9).flatMap(\.points)
        if !rest.isEmpty {
            plot.series.append(LinePlot.Series(label: "other conditions", points: rest, color: (120, 120, 120), thickness: 1, markers: true))
        }
        try plot.write(to: figure)
    }

}
