import ArgumentParser
import CommandSupport
import Foundation
import Recording

/// `lumen replay FILE`: what a recording holds and, with `--track`, its frames re-tracked and
/// compared with the measurements recorded with them.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay a recording: its contents, and with --track the tracker re-run on its frames against the recorded measurements."
    )

    @Argument(help: "The MCAP file.") var file: String
    @Flag(help: "Re-run the tracker on the recorded frames and compare.") var track = false
    @Option(help: "px: a re-tracked tip within this distance of the recorded one reproduces it (0…100).") var tolerance = 0.5
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        try Check.number(tolerance, "--tolerance", in: 0...100, unit: "px")
    }

    func run() throws {
        let r: ReplayReport
        do { r = try Replay.run(file, track: track, tolerancePx: tolerance) } catch let e as MCAPError {
            throw CommandFailure(e.description)
        } catch let e as ReplayError { throw CommandFailure(e.description) }
        if json { try Output.json(r); return }
        print("\(file): \(r.info.messages) messages, " + String(format: "%.3f s", r.info.seconds)
            + ", \(r.tipSamples) tip estimates over " + String(format: "%.1f mm", r.tipPathLengthMm))
        for d in r.info.damage { print("damage: \(d)") }
        guard track else { return }
        for p in r.planes {
            let diff = p.differenceP50.map { String(format: "p50 %.3f px, p95 %.3f px, max %.3f px", $0, p.differenceP95 ?? 0, p.differenceMax ?? 0) } ?? "no common fixes"
            print("plane \(p.plane): \(p.frames) frames, recorded fixes \(p.recordedFound), replayed fixes \(p.replayFound), "
                + "reproduced \(p.reproduced) (\(diff))" + (p.undecodable > 0 ? ", \(p.undecodable) undecodable" : ""))
        }
        if let f = r.reproducedFraction { print(String(format: "reproduced: %.1f %% of frames within %.2f px", f * 100, r.tolerancePx)) }
    }
}
