import ArgumentParser
import CommandSupport
import Core
import Foundation
import Runtime

/// `lumen bench live`: the live runtime's figures, from one run with imaging off, then on.
struct BenchLive: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live",
        abstract: "Live runtime figures: frame-to-command latency, tracking time, cycle lateness with imaging against without (same run), compute, cycle allocations, dropped frames, heartbeat age."
    )

    @Option(help: "Seconds with the imaging thread off first (1…600).") var offSeconds = 5.0
    @Option(help: "Seconds with the imaging thread on after that (1…600).") var onSeconds = 20.0
    @Option(help: "Fluoroscopy frame rate (7.5, 15 or 30 fps).") var fps = 15.0
    @Option(help: "C-arm planes, 1 (mono) or 2 (biplane).") var planes = 2
    @Option(help: "Branch of the arch phantom navigated meanwhile.") var branch = "left_subclavian"
    @Flag(help: "Print JSON on stdout.") var json = false
    @OptionGroup var realtime: RealtimeFlags

    func validate() throws {
        try Check.number(offSeconds, "--off-seconds", in: 1...600, unit: "s")
        try Check.number(onSeconds, "--on-seconds", in: 1...600, unit: "s")
        guard [7.5, 15, 30].contains(fps) else { throw ValidationError("--fps must be 7.5, 15 or 30, got \(Check.text(fps))") }
        try Check.count(planes, "--planes", in: 1...2)
    }

    func run() throws {
        var settings = LiveSettings()
        settings.setup.vessel = branch
        settings.setup.fps = fps
        settings.imaging = .simulated(planes: planes)
        settings.realtime = realtime.options
        let description = try DemoRigFiles.loadRobot(settings.setup.robot)
        LiveRuntime.installSignalHandlers()
        let result: LiveBenchResult
        do {
            result = try LiveBench.run(settings, robot: description, imagingOffSeconds: offSeconds, imagingOnSeconds: onSeconds,
                                       progress: { Output.status($0) })
        } catch { throw CommandFailure(error.description) }
        Output.endStatus()
        if json {
            try Output.json(result)
        } else {
            let t = result.timing
            print(String(format: "frame to command p50 / p99: %.1f / %.1f ms (tracking p50 / p99 %.1f / %.1f ms)", t.frame_to_command_ms_p50,
                         t.frame_to_command_ms_p99, t.tracking_ms_p50, t.tracking_ms_p99))
            print(String(format: "cycle lateness p99: %.1f µs with imaging, %.1f µs without (ratio %@); compute p99 %.1f µs", t.lateness_us_p99_imaging_on,
                         t.lateness_us_p99_imaging_off, t.lateness_ratio.map { String(format: "%.2f", $0) } ?? "n/a", t.compute_us_p99))
            print("cycle allocations: \(result.cycle_allocations.map(String.init) ?? "not counted"); frames \(result.frames_acquired) dropped \(result.frames_dropped); heartbeat age p99 \(t.heartbeat_age_ms_p99) ms")
        }
    }
}
