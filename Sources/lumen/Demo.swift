import ArgumentParser
import CommandSupport
import Control
import Core
import Foundation
import Runtime
import Scenarios
import Sim

/// `lumen demo`: the live image-guided navigation (the default), the scripted servo
/// (`--scripted`), or the navigation in simulated time (`--navigate`).
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Navigate the simulated catheter live, at wall clock, into a branch of the arch phantom under biplane fluoroscopy, with the safety monitor as its own process.",
        discussion: """
        The live runtime: the 1 kHz cycle thread, the physics catheter on emulated drives, the simulated C-arm on an imaging \
        thread (tracker, biplane measurement, fused by the estimator at acquisition time), the supervised path servo and the \
        lumen-safety monitor process, driven through the operator port by an automation client that holds the deadman and \
        picks the target. With --link serial the cycle drives emulated DriveLink drives over a pty instead (the monitor's \
        permits on their safe-torque-off input) and the physics catheter follows the joints they report; ethercat-udp \
        the same on simulated EtherCAT slaves (no safe-torque-off input: without the monitor). Exit codes: 0 the run \
        ended (see summary.json for success), 3 drive fault, 4 link lost, 5 stopped by SIGINT/SIGTERM, 6 safety monitor \
        lost. --scripted runs the older scripted circle (with --link), --navigate the same navigation in simulated time.
        """
    )

    @Option(help: "Robot file (YAML or JSON); live, the physics catheter needs one bending section (default there: robots/lumen-1s.yaml).") var robot = DemoRigFiles.defaultRobot
    @Option(help: "How long to run (s, 0.1…3600; at least 100 cycles).") var seconds = 6.0
    @Option(help: "Cycle rate (Hz, 10…20000).") var rate = 1000
    @Option(help: "Folder for summary.json and the plots.") var out = "out/demo"
    @Option(help: "Circle radius of the scripted path (mm, 0…30).") var radius = 8.0
    @OptionGroup var drivesLink: LinkFlags
    var link: String { drivesLink.link }
    var drives: String { drivesLink.drives }
    @Flag(help: "Print the summary as JSON on stdout.") var json = false
    @Option(help: "Instead of the scripted servo: navigate the physics catheter into this branch of the arch phantom (left_subclavian, left_common_carotid, brachiocephalic, right_subclavian, right_common_carotid) under biplane fluoroscopy at 15 fps, with the tracker, the estimator and the supervised path servo at 1 kHz, in simulated time.")
    var navigate: String?
    @Option(help: "How far into the branch the target lies (mm, 1…200).") var depth = 25.0
    @Option(help: "Give up after this much time (s, 0.1…3600; wall clock live, simulated with --navigate; default 50 live, 90 with --navigate).") var timeLimit: Double?
    @Flag(help: "Run the scripted circle servo instead of the live navigation (with --seconds, --rate, --radius, --link, --drives).") var scripted = false
    @Option(help: "Live: the branch of the arch phantom to navigate into (left_subclavian, left_common_carotid, brachiocephalic, right_subclavian, right_common_carotid).") var branch = "left_subclavian"
    @Option(help: "Live: fluoroscopy frame rate (7.5, 15 or 30 fps).") var fps = 15.0
    @Option(help: "Live: C-arm planes, 1 (mono) or 2 (biplane); the monitor needs two to let the robot navigate by the images.") var planes = 2
    @Option(help: "Live: seed of the simulated images' noise (0…2⁶⁴ − 1).") var seed: UInt64 = 1
    @Option(help: "Live: replay a PNG folder or DICOM file as plane 0 instead of the simulated C-arm (tracked, not navigated by).") var replay: String?
    @OptionGroup var realtime: RealtimeFlags
    @OptionGroup var attachments: AttachmentFlags

    struct Summary: Encodable {
        struct Tracking: Encodable {
            var rms_mm: Double
            var p95_mm: Double
            var max_mm: Double
            var final_mm: Double
            var max_after_approach_mm: Double
        }
        struct Timing: Encodable {
            var lateness_us_p50: Double
            var lateness_us_p99: Double
            var lateness_us_max: Double
            var compute_us_p50: Double
            var compute_us_p99: Double
            var compute_us_max: Double
            var overruns: Int64
            var missed_deadlines: Int64
        }
        /// A drive fault as the run's end names it.
        struct Fault: Encodable {
            var axis: Int?
            var kind: String
            var code: UInt16
            var detail: Int32
            var stop_category: Int
        }
        var robot: String
        /// How the run ended: completed, drive_fault or link_lost; the exit code says the same.
        var ending: String
        var ending_detail: String
        var exit_code: Int32
        var drive_fault: Fault?
        var link: String
        var link_stats: [String: Int]?
        var rate_hz: Int
        var seconds: Double
        var cycles: Int64
        var path: [String: Double]
        var tracking: Tracking
        var timing: Timing
        var cycle_allocations: Int64
        var read_faults: Int64
        var write_faults: Int64
        var invalid_commands: Int64
        var warnings: [String]
        var plots: [String]
    }

    func validate() throws {
        try Check.count(rate, "--rate", in: 10...20_000, unit: "Hz")
        try Check.number(seconds, "--seconds", in: 0.1...3600, unit: "s")
        guard seconds * Double(rate) >= 100 else {
            throw ValidationError("--seconds × --rate must give at least 100 cycles, got \(Check.text((seconds * Double(rate)).rounded()))")
        }
        try Check.number(radius, "--radius", in: 0...30, unit: "mm")
        try Check.number(depth, "--depth", in: 1...200, unit: "mm")
        try Check.number(timeLimit, "--time-limit", in: 0.1...3600, unit: "s")
        guard [7.5, 15, 30].contains(fps) else { throw ValidationError("--fps must be 7.5, 15 or 30, got \(Check.text(fps))") }
        try Check.count(planes, "--planes", in: 1...2)
        if !scripted, navigate == nil {
            do { _ = try Phantoms.aorticArch().route(toVessel: branch, depth: depth) } catch {
                throw ValidationError("--branch: \(error.description) in the arch phantom")
            }
        }
        if let navigate {
            // The navigation demo runs in the arch phantom.
            do { _ = try Phantoms.aorticArch().route(toVessel: navigate, depth: depth) } catch {
                throw ValidationError("--navigate: \(error.description) in the arch phantom")
            }
        }
        try Check.outputFolder(out, "--out", files: scripted
            ? ["summary.json", "tip_path.png", "tracking_error.png"]
            : navigate == nil ? ["summary.json", "navigation.png", "navigation_lateral.png", "navigation_zoom.png", "navigation_lateral_zoom.png",
                                 "fusion_error.png", "latency.png"]
            : ["summary.json", "navigation.png", "navigation_lateral.png", "navigation_zoom.png", "navigation_lateral_zoom.png"])
    }

    func run() throws {
        if let vessel = navigate { return try runNavigation(to: vessel) }
        if !scripted { return try runLive() }
        let period = Nanoseconds.perSecond / Nanoseconds(rate)
        let path = TipPath(radius: radius)
        let description = try DemoRigFiles.loadRobot(robot)
        let dynamics: DriveDynamics = drives == "emulated" ? .emulated(nil) : .ideal
        let start = DemoRig<KinematicRobot, MonotonicCycleClock>.startPosture(CatheterModel(description))
        let drives: LiveDrives
        do { drives = try drivesLink.liveDrives() } catch { throw ValidationError("\(error)") }
        if drives == .simulated {
            let rig = DemoRig(description: description, hardware: KinematicRobot(axes: description.axes, start: start, dynamics: dynamics),
                              period: period, clock: MonotonicCycleClock(), path: path)
            return try execute(rig, path: path, linkName: "sim, \(self.drives) drives") { _ in nil }
        }
        // The link as the live runtime opens it (the emulated drives too, for serial and
        // ethercat-udp), with the emulated DriveLink drives' own watchdog at its 20 ms default.
        let opened: OpenedLink
        do { opened = try LiveLinks.open(drives, axes: description.axes, start: start, period: period, dynamics: dynamics, watchdog: 20_000) } catch {
            throw CommandFailure(error.description)
        }
        let emulated = opened.emulated
        do { try emulated?.start(priority: nil) } catch { throw CommandFailure(error.description) }
        defer { emulated?.stop() }
        let name = emulated == nil ? opened.name : "\(opened.name), \(self.drives) drives"
        let rig = DemoRig(description: description, hardware: opened.takeDrives(), period: period, clock: MonotonicCycleClock(), path: path)
        try execute(rig, path: path, linkName: name) { runner in runner.withHardware { $0.statistics } }
    }

    private func execute<H: RobotHardware & ~Copyable>(
        _ rig: DemoRig<H, MonotonicCycleClock>, path: TipPath, linkName: String,
        linkReport: (CycleRunner<H, TipServo, MonotonicCycleClock>) -> [String: Int]?
    ) throws {
        let runner = rig.runner
        do { try runner.configure() } catch { throw CommandFailure(error.description) }
        // A drive that comes up with a fault latched is a run that ends stopped, with its summary.
        var refused: DriveFaultReport?
        do { try runner.activate() } catch {
            guard case .driveFaultLatched(let f) = error else { throw CommandFailure(error.description) }
            refused = f
        }

        let total = refused == nil ? Int64((seconds * Double(rate)).rounded()) : 0
        let warmup = min(Int64(200), total)
        let started = Date()
        Output.progress("demo: \(rig.description.name), \(rig.model.jointCount) joints, \(rate) Hz for \(seconds) s, drives: \(linkName)")
        let (outcome, threadWarnings) = CycleThread.run(options: realtime.options, whileWaiting: {
            Output.status(String(format: "demo: %.1f / %.1f s", Date().timeIntervalSince(started), seconds))
        }) {
            CycleThread.countingAllocations(warmUp: { try runner.run(cycles: warmup) },
                                            measured: { try runner.run(cycles: total - warmup) })
        }
        Output.endStatus()
        let allocations = try outcome.get()
        // However the run went — its time up, a drive fault, a lost link — it ends through the
        // lifecycle: deactivated if still active, and the summary says how it ended.
        var ending: RunEnding
        do { ending = try runner.endRun() } catch { throw CommandFailure(error.description) }
        if let refused { ending = .stopped(.driveFault(refused)) }
        let report = runner.report()
        let stats = runner.controller.stats
        let linkFigures = linkReport(runner)
        runner.finalize()

        let samples = rig.log.all
        let errors = samples.map(\.error)
        let afterApproach = samples.filter { $0.time > path.approach }.map(\.error)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        // A run stopped before its first cycle (a drive with a fault latched) has nothing to plot.
        let plots = samples.isEmpty ? [] : try writePlots(samples: samples, model: rig.model)

        var warnings = threadWarnings
        if ending != .completed { warnings.append("run ended: \(ending)") }
        var fault: Summary.Fault?
        if case .stopped(.driveFault(let f)) = ending {
            fault = .init(axis: f.axis, kind: f.name, code: f.code, detail: f.detail, stop_category: f.stopCategory)
        }
        let summary = Summary(
            robot: rig.description.name, ending: ending.key, ending_detail: ending.description, exit_code: ending.exitCode,
            drive_fault: fault, link: linkName, link_stats: linkFigures, rate_hz: rate, seconds: seconds, cycles: report.cycles,
            path: ["radius_mm": path.radius, "circle_period_s": path.circlePeriod, "axial_travel_mm": path.axialTravel,
                   "axial_period_s": path.axialPeriod, "approach_s": path.approach],
            tracking: .init(rms_mm: round3(stats.rms), p95_mm: round3(percentile(errors, 95)), max_mm: round3(stats.max),
                            final_mm: round3(stats.last), max_after_approach_mm: round3(afterApproach.max() ?? 0)),
            timing: .init(lateness_us_p50: us(report.lateness.p50), lateness_us_p99: us(report.lateness.p99), lateness_us_max: us(report.lateness.max),
                          compute_us_p50: us(report.compute.p50), compute_us_p99: us(report.compute.p99), compute_us_max: us(report.compute.max),
                          overruns: report.overruns, missed_deadlines: report.missedDeadlines),
            cycle_allocations: allocations, read_faults: report.counters.readFaults, write_faults: report.counters.writeFaults,
            invalid_commands: report.counters.invalidCommands, warnings: warnings, plots: plots
        )
        try Output.writeJSON(summary, to: out + "/summary.json")
        for w in warnings { Output.progress("warning: \(w)") }
        if json {
            try Output.json(summary)
        } else {
            print("""
            Lumen demo — \(summary.robot), \(report.cycles) cycles at \(rate) Hz
              tip tracking:  rms \(summary.tracking.rms_mm) mm, p95 \(summary.tracking.p95_mm) mm, max \(summary.tracking.max_mm) mm, final \(summary.tracking.final_mm) mm
              path:          circles of \(path.radius) mm every \(path.circlePeriod) s, \(path.axialTravel) mm in and out every \(path.axialPeriod) s
              wake-up late:  p50 \(summary.timing.lateness_us_p50) µs, p99 \(summary.timing.lateness_us_p99) µs, max \(summary.timing.lateness_us_max) µs
              cycle compute: p50 \(summary.timing.compute_us_p50) µs, p99 \(summary.timing.compute_us_p99) µs
              overruns:      \(report.overruns) (\(report.missedDeadlines) deadlines missed)
              drives:        \(linkName)\(linkFigures.map { f in ", " + f.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") } ?? "")
              allocations:   \(allocations) in \(report.cycles - warmup) steady-state cycles
              written:       \(([out + "/summary.json"] + plots).joined(separator: ", "))
              ended:         \(ending) (exit code \(ending.exitCode))
            """)
        }
        if ending.exitCode != 0 { throw ExitCode(ending.exitCode) }
    }

    private func writePlots(samples: [TipSample], model: CatheterModel) throws -> [String] {
        // Tip path seen along the catheter's base axis: the two across-axis coordinates.
        let r = model.basePose.rotation
        func across(_ p: Vec3) -> (Double, Double) {
            let d = p - model.basePose.translation
            return (d.dot(r.c0), d.dot(r.c1))
        }
        var pathPlot = LinePlot(title: "Tip path across the catheter axis", xLabel: "x (mm)", yLabel: "y (mm)")
        pathPlot.equalAspect = true
        pathPlot.series = [
            .init(label: "target", points: samples.map { across($0.target) }.map { (x: $0.0, y: $0.1) }, color: (40, 110, 220), thickness: 4),
            .init(label: "tip (kinematics of encoders)", points: samples.map { across($0.tip) }.map { (x: $0.0, y: $0.1) }, color: (230, 90, 30), thickness: 1),
        ]
        let pathFile = out + "/tip_path.png"
        try pathPlot.write(to: pathFile)

        var errPlot = LinePlot(title: "Tip tracking error", xLabel: "time (s)", yLabel: "error (mm)")
        errPlot.series = [.init(label: "|target - tip|", points: samples.map { (x: $0.time, y: $0.error) }, color: (200, 40, 40))]
        let errFile = out + "/tracking_error.png"
        try errPlot.write(to: errFile)
        return [pathFile, errFile]
    }

    /// The navigation demo: the closed loop of `lumen eval navigation`, one run, with live
    /// progress, `summary.json` and the tip-path plots.
    func runNavigation(to vessel: String) throws {
        var setup = NavigationSetup()
        setup.vessel = vessel
        setup.depth = depth
        setup.maxSeconds = timeLimit ?? 90
        let description = try DemoRigFiles.loadRobot(setup.robot)
        Output.progress("demo: navigating to \(vessel), \(depth) mm in, in the arch phantom (simulated time, up to \(setup.maxSeconds) s)")
        let (result, trace): (NavigationResult, NavigationTrace)
        do { (result, trace) = try NavigationRun.run(setup, robot: description, progress: { Output.status($0) }) } catch {
            throw CommandFailure(error.description)
        }
        Output.endStatus()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try Output.writeJSON(result, to: out + "/summary.json")
        let plot = out + "/navigation.png"
        try NavigationPlot.write(trace, result: result, to: plot)
        if json {
            try Output.json(result)
        } else {
            print(String(format: "navigation to %@: %@ (%@), final tip error %.2f mm, peak contact %.2f N", vessel,
                         result.success ? "reached" : "not reached", result.reason, result.final_err_mm, result.peak_contact_n))
            print(String(format: "  tip error median / p95 (mm): fused %.3f / %.3f, kinematic-only %.3f / %.3f, image-only %.3f / %.3f",
                         result.fused.median, result.fused.p95, result.kinematic_only.median, result.kinematic_only.p95,
                         result.image_only.median, result.image_only.p95))
            print("  overruns \(result.overruns); written: \(out)/summary.json, \(plot) with its lateral view and close-ups of both near the target (_zoom)")
        }
    }
}
