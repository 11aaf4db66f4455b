import ArgumentParser
import CommandSupport
import Foundation
import Core
import Recording
import Scenarios

/// `lumen replay FILE`: what a recording holds and, with `--track`, its frames re-tracked and
/// compared with the measurements recorded with them.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay a recording: its contents, with --track the tracker re-run on its frames, with --measure the live run's biplane measurer, against the recorded measurements."
    )

    @Argument(help: "The MCAP file.") var file: String
    @Flag(help: "Re-run the tracker on the recorded frames and compare.") var track = false
    @Option(help: "px: a re-tracked tip within this distance of the recorded one reproduces it (0…100).") var tolerance = 0.5
    @Flag(help: "Measure each recorded exposure again with the live run's biplane measurer (its prior, pairing, roadmap) and compare (live recordings).") var measure = false
    @Flag(help: "Re-run the estimator on the recorded joint states and measurements and compare with the recorded estimates (live recordings).") var estimate = false
    @Option(help: "With --estimate: folder for estimator.png (recorded against replayed tip paths) and estimator.csv (every sample).") var out: String?
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        try Check.number(tolerance, "--tolerance", in: 0...100, unit: "px")
        if let out {
            try Check.outputFolder(out, "--out", files: ["estimator.png", "estimator.csv"])
            guard estimate else { throw ValidationError("--out needs --estimate (it is where the estimator's plot goes)") }
        }
    }

    func run() throws {
        var r: ReplayReport
        var estimator: (report: EstimatorReplayReport, samples: EstimatorReplaySamples)?
        do {
            r = try Replay.run(file, track: track, tolerancePx: tolerance)
            if estimate { estimator = try EstimatorReplay.run(file) }
            r.estimator = estimator?.report
            if measure { r.measurer = try MeasurerReplay.run(file, tolerancePx: tolerance) }
        } catch let e as MCAPError {
            throw CommandFailure(e.description)
        } catch let e as ReplayError { throw CommandFailure(e.description) } catch let e as EstimatorReplayError { throw CommandFailure(e.description) } catch let e as MeasurerReplayError {
            throw CommandFailure(e.description)
        }
        var written: [String] = []
        if let out, let estimator {
            try OutputPath.createFolder(out)
            written = try writeEstimatorFiles(estimator.samples, folder: out)
        }
        if json { try Output.json(r); return }
        print("\(file): \(r.info.messages) messages, " + String(format: "%.3f s", r.info.seconds)
            + ", \(r.tipSamples) tip estimates over " + String(format: "%.1f mm", r.tipPathLengthMm))
        for d in r.info.damage { print("damage: \(d)") }
        if track {
            for p in r.planes {
                let diff = p.differenceP50.map { String(format: "p50 %.3f px, p95 %.3f px, max %.3f px", $0, p.differenceP95 ?? 0, p.differenceMax ?? 0) } ?? "no common fixes"
                print("plane \(p.plane): \(p.frames) frames, recorded fixes \(p.recordedFound), replayed fixes \(p.replayFound), "
                    + "reproduced \(p.reproduced) (\(diff))" + (p.undecodable > 0 ? ", \(p.undecodable) undecodable" : "")
                    + (p.framesMissing > 0 ? "; \(p.framesMissing) frames the tracker saw are not in the recording, \(p.frames - p.framesInStep) re-tracked after the first gap" : ""))
            }
            if let f = r.reproducedFraction { print(String(format: "reproduced: %.1f %% of frames within %.2f px (re-tracked with every earlier frame)", f * 100, r.tolerancePx)) }
            if let f = r.reproducedAfterGapFraction { print(String(format: "after a missing frame: %.1f %% reproduced (the replay's tracker started afresh there)", f * 100)) }
        }
        if let m = r.measurer {
            print("measurer: \(m.exposures) exposures, \(m.measured) measured again (\(m.incomplete) incomplete in the recording"
                + (m.undecodable > 0 ? ", \(m.undecodable) frames undecodable" : "") + (m.lossyFrames > 0 ? ", \(m.lossyFrames) lossy frames" : "") + "); "
                + "outcomes " + m.outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            let diff = [m.pixelDifferenceMax.map { String(format: "max %.3g px", $0) }, m.positionDifferenceMaxMm.map { String(format: "max %.3g mm", $0) }]
                .compactMap { $0 }.joined(separator: ", ")
            print("  \(m.frames) frames: recorded tips \(m.recordedFound), replayed \(m.replayFound), reproduced \(m.reproduced)"
                + (m.reproducedFraction.map { String(format: " (%.1f %%)", $0 * 100) } ?? "") + (diff.isEmpty ? "" : "; " + diff))
        }
        if let e = estimator?.report {
            print(String(format: "estimator: %d cycles from cycle %llu (%llu missing), %d measurements (%d fused; arrival recorded %d, from the estimate %d, inferred %d)",
                         e.samples, e.firstCycle, e.missingCycles, e.measurements, e.fused, e.arrivalsRecorded, e.arrivalsFromEstimate, e.arrivalsInferred))
            print(String(format: "  replayed − recorded tip: median %.3g mm, p95 %.3g mm, max %.3g mm; %@ (tolerance %.0e mm); paths %.1f / %.1f mm",
                         e.differenceMedianMm, e.differenceP95Mm, e.differenceMaxMm, e.reproduced ? "reproduced" : "not reproduced", e.toleranceMm,
                         e.recordedPathMm, e.replayedPathMm))
        }
        if !written.isEmpty { print("written: " + written.joined(separator: ", ")) }
    }

    /// The tip paths, recorded against replayed, seen along the axis they vary least on; and every sample as CSV.
    func writeEstimatorFiles(_ s: EstimatorReplaySamples, folder: String) throws -> [String] {
        let csv = folder + "/estimator.csv"
        try s.csv.write(toFile: csv, atomically: true, encoding: .utf8)
        let all = s.recorded + s.replayed
        let names = ["x", "y", "z"]
        func spread(_ k: Int) -> Double {
            let v = all.map { [$0.x, $0.y, $0.z][k] }
            return (v.max() ?? 0) - (v.min() ?? 0)
        }
        let axes = [0, 1, 2].sorted { spread($0) > spread($1) }.prefix(2).sorted()
        func points(_ p: [Vec3]) -> [(x: Double, y: Double)] {
            // At most 5000 points a line: the plot is read by eye.
            let step = max(1, p.count / 5000)
            return stride(from: 0, to: p.count, by: step).map { k in
                let v = [p[k].x, p[k].y, p[k].z]
                return (x: v[axes[0]], y: v[axes[1]])
            }
        }
        let maxDiff = s.difference.max() ?? 0
        var plot = LinePlot(title: String(format: "Tip estimate: recorded and replayed (max difference %.3g mm)", maxDiff),
                            xLabel: "\(names[axes[0]]) (mm)", yLabel: "\(names[axes[1]]) (mm)")
        plot.equalAspect = true
        plot.series = [.init(label: "recorded estimate", points: points(s.recorded), color: (31, 119, 180), thickness: 5),
                       .init(label: "replayed estimate", points: points(s.replayed), color: (214, 39, 40), thickness: 2)]
        let png = folder + "/estimator.png"
        try plot.write(to: png)
        return [png, csv]
    }
}
