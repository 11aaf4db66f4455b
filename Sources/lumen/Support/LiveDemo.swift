import ArgumentParser
import CommandSupport
import Core
import Foundation
import Recording
import Runtime
import Scenarios

extension Demo {
    /// The live navigation: parse → load → `LiveNavigation.run` → print and plot.
    func runLive() throws {
        var settings = LiveSettings()
        settings.setup.vessel = branch
        settings.setup.depth = depth
        settings.setup.fps = fps
        settings.setup.seed = seed
        settings.imaging = replay.map { .replay(path: $0) } ?? .simulated(planes: planes)
        settings.realtime = realtime.options
        settings.drives = try drivesLink.liveDrives()
        settings.driveDynamics = drivesLink.dynamics
        if settings.drives == .emulatedEtherCAT {
            // The simulated slaves have no safe-torque-off input the monitor's permits could reach.
            settings.monitor = false
            Output.progress("demo: warning: the simulated EtherCAT slaves have no safe-torque-off input: the run goes without the safety monitor (use --link serial for it)")
        }
        let limit = timeLimit ?? 50
        // The physics catheter bends one section: the scripted demo's default robot is not it.
        if robot != DemoRigFiles.defaultRobot { settings.setup.robot = robot }
        let description = try DemoRigFiles.loadRobot(settings.setup.robot)
        LiveRuntime.installSignalHandlers()
        Output.progress("demo: live navigation to \(branch), \(depth) mm in, in the arch phantom: \(planes == 2 ? "biplane" : "mono") fluoroscopy at \(Check.text(fps)) fps, \(settings.monitor ? "the monitor as its own process" : "no monitor"), drives: \(link) (up to \(Check.text(limit)) s)")
        let (result, trace): (LiveNavigationResult, LiveTrace)
        let attach = try attachments.settings(configurationFiles: [DemoRigFiles.locate(settings.setup.robot)])
        let report = RecorderReportBox()
        let attacher: ((LiveRuntime) throws -> LiveAttachment)? = attach.isEmpty ? nil : { runtime in
            let a = try RuntimeAttachments(attach, port: runtime, tap: runtime)
            for l in a.listening { Output.progress("demo: \(l)") }
            return LiveAttachment(start: { a.start() }, stop: { report.value = a.stop() })
        }
        do { (result, trace) = try LiveNavigation.run(settings, robot: description, maxSeconds: limit, attach: attacher, progress: { Output.status($0) }) } catch {
            Output.endStatus()
            throw CommandFailure(error.description)
        }
        Output.endStatus()
        if let r = report.value {
            Output.progress("demo: recorded \(r.path): \(r.cycleRecords) cycle records, \(r.frames) frames; not recorded: \(r.cycleRecordsLost) cycle records, \(r.framesLost) frames")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try Output.writeJSON(result, to: out + "/summary.json")
        let plots = try writeLivePlots(trace, result: result)
        if json {
            try Output.json(result)
        } else {
            print(String(format: "live navigation to %@: %@ (%@), final tip error %.2f mm, %.1f s wall", branch, result.success ? "reached" : "not reached",
                         result.reason, result.final_err_mm, result.wall_s))
            // No samples is said as such, not printed as a perfect 0.00.
            func figures(_ f: ErrorFigures) -> String { f.samples == 0 ? "none" : String(format: "%.2f / %.2f mm", f.median, f.p95) }
            if let replay {
                print("  replayed \(replay): its frames are measured and shown, never fused, so the robot held where it was")
            }
            print("  fused error median / p95 \(figures(result.fused)); image-only \(figures(result.image_only)); frames \(result.frames_acquired.map(String.init).joined(separator: "+")) (dropped \(result.frames_dropped.map(String.init).joined(separator: "+")))")
            let t = result.timing
            let toCommand = t.fused_measurements == 0 ? "none fused" : String(format: "p50 / p99 %.1f / %.1f ms", t.frame_to_command_ms_p50, t.frame_to_command_ms_p99)
            print(String(format: "  frame to command %@; tracking p99 %.1f ms; cycle lateness p99 %.0f µs with imaging, %.0f µs without; heartbeat age p99 %.2f ms",
                         toCommand, t.tracking_ms_p99, t.lateness_us_p99_imaging_on, t.lateness_us_p99_imaging_off, t.heartbeat_age_ms_p99))
            print("  drives: \(result.link)\(result.link_stats.map { f in ", " + f.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") } ?? ""); powered at the end: \(result.drives_powered_at_end ? "yes" : "no")")
            print("  ended: \(result.ending_detail) (exit code \(result.exit_code)); written: \(out)/summary.json, \(plots.joined(separator: ", "))")
            for f in result.monitor_faults.prefix(5) { print("  monitor: \(f)") }
        }
        if result.exit_code != 0 { throw ExitCode(result.exit_code) }
    }

    func writeLivePlots(_ trace: LiveTrace, result: LiveNavigationResult) throws -> [String] {
        var written: [String] = []
        if let tree = trace.tree {
            let path = out + "/navigation.png"
            try NavigationPlot.write(tree: tree, route: trace.route,
                                     title: "Live navigation to \(result.setup.vessel) (\(result.success ? "reached" : "not reached")): tip paths",
                                     paths: [("ground truth", trace.truth, (44, 160, 44)), ("fused estimate", trace.fused, (31, 119, 180))], to: path)
            written.append(path)
        }
        var err = LinePlot(title: "Fusion error over time (|fused - true tip|)", xLabel: "time (s)", yLabel: "error (mm)")
        let errorPoints = zip(trace.time, trace.fusedError).map { (x: $0, y: $1) }
        // A run stopped before its first sample still gets its plot, saying so.
        err.series = [.init(label: errorPoints.isEmpty ? "no samples: the run ended first" : "fused estimate",
                            points: errorPoints.isEmpty ? [(x: 0, y: 0)] : errorPoints, color: (31, 119, 180))]
        let errPath = out + "/fusion_error.png"
        try err.write(to: errPath)
        written.append(errPath)
        // Frame-to-command latency as a histogram of 2 ms bins, drawn as a step line.
        var hist = LinePlot(title: "Frame-to-command latency (acquisition → the cycle that fused it)", xLabel: "latency (ms)", yLabel: "measurements")
        let bin = 2.0
        let top = max(bin, ((trace.latencies.max() ?? bin) / bin).rounded(.up) * bin)
        let bins = Int(top / bin)
        var counts = [Double](repeating: 0, count: bins)
        for l in trace.latencies { counts[min(bins - 1, max(0, Int(l / bin)))] += 1 }
        var steps: [(x: Double, y: Double)] = [(x: 0, y: 0)]
        for (i, c) in counts.enumerated() {
            steps.append((x: Double(i) * bin, y: c))
            steps.append((x: Double(i + 1) * bin, y: c))
        }
        steps.append((x: top, y: 0))
        hist.series = [.init(label: "\(trace.latencies.count) fused measurements", points: steps, color: (214, 39, 40))]
        let histPath = out + "/latency.png"
        try hist.write(to: histPath)
        written.append(histPath)
        return written
    }
}

/// The recorder's report, handed out of the run's stop closure.
final class RecorderReportBox: @unchecked Sendable {
    var value: RecorderReport?
}
