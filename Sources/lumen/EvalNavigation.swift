import ArgumentParser
import CommandSupport
import Control
import Core
import Foundation
import Runtime
import Scenarios
import Sim

/// `lumen eval navigation`: seeded navigation runs over target branches and C-arm angles.
struct EvalNavigation: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "navigation",
        abstract: "Seeded closed-loop navigation runs (physics, drives, biplane fluoroscopy, tracker, estimator, servo) over targets and C-arm angles.",
        discussion: "A campaign splits with --shard K/N into parts run apart (a Slurm array, a Kubernetes indexed Job: see docs/campaigns.md); `lumen eval navigation merge` joins their summaries.",
        subcommands: [EvalNavigationMerge.self]
    )

    @Option(help: "Phantoms, comma-separated, each run --runs times over its targets: \(Phantoms.navigable.joined(separator: ", ")).") var phantom = "arch"
    @Option(help: "Runs per phantom (1…10000).") var runs = 20
    @Option(help: "First seed (any whole number 0…2⁶⁴ − 1).") var seed: UInt64 = 1
    @Option(help: "Robot file of the steerable catheter for every phantom (one bending section: the physics catheter has one); when absent, each phantom's own (\(NavigationSetup().robot); the coronary's robots/lumen-1s-micro.yaml, the hepatic's robots/lumen-1s-visceral.yaml).") var robot: String?
    @Option(help: "Index of the first run (0…1000000; runs cycle through targets and angles; to repeat one run alone).") var first = 0
    @Option(help: "Time limit per run (simulated s, 0.1…3600).") var maxSeconds = 90.0
    @Option(help: "Runs at once, each on its own thread (1…64); the results are those of --jobs 1.") var jobs = 1
    @Option(help: "Run only shard K of N of the campaign (K/N, 1 ≤ K ≤ N ≤ 100000): every N-th run from the K-th; merge the shards' summaries with `lumen eval navigation merge`.") var shard = "1/1"
    @Option(help: "Folder for the per-run JSON and the plot of the first run.") var out = "out/eval-navigation"
    @Option(help: "Tip measurements: tracker (from the images) or truth (the simulated tip with a 0.1 mm σ of noise drawn from the seed, at the same rate and latency, and no images rendered: separates control failures from tracking failures).") var measurements = "tracker"
    @Flag(help: "Print JSON on stdout.") var json = false
    @Flag(help: "The path servo with its corner manoeuvres (re-aim after a retreat, deeper retreats, the search round an opening, bounded attempts, the final approach; off by default, docs/navigation-corners.md): for comparisons on the same seeds.") var cornerManoeuvres = false
    @Flag(help: "The simulated C-arm renders every frame whole, not only the regions the tracker searches (the whole frames only when a search needs them): for comparisons on the same seeds.") var wholeFrames = false
    @Flag(help: "The path servo engages take-offs sharper than a forward push turns with a reverse curve (past the opening, bend back, withdraw until the tip drops in; off by default, docs/navigation-corners.md): for comparisons on the same seeds.") var reverseCurve = false
    @Flag(help: "Progress of each run on stderr, once a second of simulated time (with --jobs 1; live, once a second of wall clock).") var verbose = false
    @Flag(help: "Also run each setup live, at wall clock (the runtime of `lumen demo`, with the monitor process), beside its simulated-time run; --max-seconds is then also each live run's wall-clock limit.") var live = false
    @OptionGroup var realtime: RealtimeFlags

    var phantoms: [String] { phantom.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }

    func validate() throws {
        for p in phantoms { try Check.oneOf(p, "--phantom", Phantoms.navigable) }
        guard Set(phantoms).count == phantoms.count else { throw ValidationError("--phantom names a phantom twice: \(phantom)") }
        try Check.oneOf(measurements, "--measurements", MeasurementSource.allCases.map(\.rawValue))
        try Check.count(runs, "--runs", in: 1...10_000)
        // Both bounded, so first + runs cannot overflow.
        try Check.count(first, "--first", in: 0...1_000_000)
        try Check.number(maxSeconds, "--max-seconds", in: 0.1...3600, unit: "s")
        try Check.count(jobs, "--jobs", in: 1...64)
        do { _ = try CampaignShard(parsing: shard) } catch { throw ValidationError("--shard \(error.description)") }
        if live, phantoms.count > 1 { throw ValidationError("--live runs one phantom: give --phantom one name") }
        try Check.outputFolder(out, "--out", files: ["summary.json", "run_0000.png", "run_0000_lateral.png", "run_0000_zoom.png", "run_0000_lateral_zoom.png"])
    }

    func run() throws {
        guard let source = MeasurementSource(rawValue: measurements) else { throw ValidationError("--measurements must be tracker or truth") }
        var base = NavigationSetup()
        base.maxSeconds = maxSeconds
        base.measurements = source
        if cornerManoeuvres { base.cornerManoeuvres = true }
        if reverseCurve { base.reverseCurve = true }
        if wholeFrames { base.wholeFrames = true }
        let settings = NavigationCampaignSettings(phantoms: phantoms, seed: seed, first: first, runs: runs, base: base, robotForAll: robot)
        let plan: [PlannedRun], part: CampaignShard
        do {
            part = try CampaignShard(parsing: shard)
            plan = try NavigationCampaign.plan(settings, shard: part)
        } catch { throw CommandFailure(error.description) }
        var robots: [String: RobotDescription] = [:]
        for path in Set(plan.map(\.setup.robot)) { robots[path] = try DemoRigFiles.loadRobot(path) }
        if live { return try runLive(plan, robots: robots) }
        let total = plan.count
        let started = MonotonicClock.now()
        let (results, trace): ([NavigationResult], NavigationTrace?)
        do throws(NavigationError) {
            if verbose, jobs == 1 {
                // One run at a time, with its progress lines.
                var all: [NavigationResult] = [], firstTrace: NavigationTrace?
                for (n, p) in plan.enumerated() {
                    Output.status("eval navigation: run \(n + 1)/\(total): \(p.setup.phantom) \(p.setup.vessel) at \(p.setup.depth) mm")
                    let t0 = MonotonicClock.now()
                    let robot = try NavigationCampaign.robot(for: p, in: robots)
                    var (r, t) = try NavigationRun.run(p.setup, robot: robot, verbose: true, progress: { Output.progress($0) })
                    r.run = p.run
                    r.wall_s = round3(Double(MonotonicClock.now() - t0) * 1e-9)
                    if n == 0 { firstTrace = t }
                    all.append(r)
                }
                (results, trace) = (all, firstTrace)
            } else {
                let finished = Counter()
                (results, trace) = try NavigationCampaign.run(plan, robots: robots, jobs: jobs, keepTraceOf: plan.first?.campaignIndex) { p, r in
                    Output.status("eval navigation: \(finished.next())/\(total) done: \(p.setup.phantom) run \(p.run), \(p.setup.vessel) at \(p.setup.depth) mm: \(r.success ? "reached" : r.reason)")
                }
            }
        } catch { throw CommandFailure(error.description) }
        let wall = Double(MonotonicClock.now() - started) * 1e-9
        Output.endStatus()
        if let trace, let r = results.first { try NavigationPlot.write(trace, result: r, to: out + "/run_0000.png") }
        let summary = NavigationSummary(results, campaign: settings, shards: [part], jobs: jobs, campaignWallSeconds: wall)
        try Output.writeJSON(summary, to: out + "/summary.json")
        if json {
            try Output.json(summary)
        } else {
            print("navigation: \(summary.successes)/\(summary.runs) reached the target within 1 mm; final error median \(summary.final_err_mm_median) mm; peak contact \(summary.peak_contact_n_max) N; peak push at the sheath \(summary.peak_insertion_n_max) N")
            for row in summary.per_target {
                print("  \(row.phantom) \(row.vessel ?? "") at \(row.depth_mm.map { "\($0)" } ?? "") mm: \(row.successes)/\(row.runs)\(row.failed_runs.isEmpty ? "" : ", failed runs \(row.failed_runs.map(String.init).joined(separator: " "))")")
            }
            print("tip error median (mm): fused \(summary.fused.median), kinematic-only \(summary.kinematic_only.median), image-only \(summary.image_only.median)")
            if !summary.monitor_lumen_runs.isEmpty {
                print("safety monitor: an image tip left its corridor in runs \(summary.monitor_lumen_runs.map { "\($0.phantom) \($0.run)" }.joined(separator: ", ")) (live, a category-1 stop)")
            }
            print("time: \(summary.timing.wall_s_per_run_median) s wall for \(summary.timing.simulated_s_per_run_median) s simulated per run (median), \(summary.timing.simulated_per_wall)× real time per core"
                + (summary.timing.simulated_per_cpu.map { " (\($0)× against the runs' own CPU time)" } ?? ""))
        }
    }
}

/// Counts finished runs for the status line (called under the campaign's lock, one at a time).
private final class Counter: @unchecked Sendable {
    private var n = 0
    func next() -> Int { n += 1; return n }
}

/// `lumen eval navigation merge`: the shards of a campaign joined into one summary.
struct EvalNavigationMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Join the summary.json files of a campaign's shards (--shard K/N) into one summary; refuses overlapping or missing shards and mismatched settings."
    )

    @Argument(help: "The shards' summary.json files.") var files: [String] = []
    // Not --out: `eval navigation` has its own, which would take the value.
    @Option(help: "Folder for the merged summary.json.") var mergeOut = "out/eval-navigation-merged"
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        try Check.outputFolder(mergeOut, "--merge-out", files: ["summary.json"])
        guard !files.isEmpty else { throw ValidationError("name the summary.json of each shard") }
    }

    func run() throws {
        let out = mergeOut
        var parts: [(file: String, summary: NavigationSummary)] = []
        for file in files {
            do { parts.append((file, try NavigationSummary.load(file: file))) } catch { throw CommandFailure(error.description) }
        }
        let merged: NavigationSummary
        do { merged = try NavigationSummary.merge(parts) } catch { throw CommandFailure(error.description) }
        try Output.writeJSON(merged, to: out + "/summary.json")
        if json {
            try Output.json(merged)
        } else {
            print("merged \(files.count) shards: \(merged.successes)/\(merged.runs) reached the target within 1 mm; written to \(out)/summary.json")
        }
    }
}

extension EvalNavigation {
    /// Each setup in simulated time, then live; the two side by side.
    func runLive(_ plan: [PlannedRun], robots: [String: RobotDescription]) throws {
        LiveRuntime.installSignalHandlers()
        var simulated: [NavigationResult] = [], lives: [LiveNavigationResult] = []
        for planned in plan {
            let setup = planned.setup, r = planned.run
            let description: RobotDescription
            do { description = try NavigationCampaign.robot(for: planned, in: robots) } catch { throw CommandFailure(error.description) }
            Output.status("eval navigation --live: run \(r + 1)/\(runs): \(setup.vessel) in simulated time")
            do { simulated.append(try NavigationRun.run(setup, robot: description).0) } catch { throw CommandFailure(error.description) }
            Output.status("eval navigation --live: run \(r + 1)/\(runs): \(setup.vessel) live")
            var settings = LiveSettings()
            settings.setup = setup
            settings.realtime = realtime.options
            do { lives.append(try LiveNavigation.run(settings, robot: description, maxSeconds: maxSeconds,
                                                     progress: verbose ? { Output.progress($0) } : nil).0) } catch {
                throw CommandFailure(error.description)
            }
            if liveSignal.load(ordering: .relaxed) != 0 { break }
        }
        Output.endStatus()
        let summary = LiveNavigationSummary(first: first, simulated: simulated, live: lives)
        try Output.writeJSON(summary, to: out + "/summary.json")
        if json {
            try Output.json(summary)
        } else {
            print("live: \(lives.filter(\.success).count)/\(lives.count) reached within 1 mm (final error median \(summary.live_final_err_mm_median) mm); simulated time: \(simulated.filter(\.success).count)/\(simulated.count) (\(summary.simulated_final_err_mm_median) mm)")
        }
    }
}

/// The navigation picture: the vessel tree's centerlines and the route, with the true,
/// kinematic-only and fused tip paths, in a frontal and a lateral view side by side.
enum NavigationPlot {
    static func write(_ trace: NavigationTrace, result: NavigationResult, to path: String) throws {
        try write(tree: trace.tree, route: trace.route,
                  title: "Navigation to \(result.setup.vessel) (\(result.success ? "reached" : "not reached")): tip paths",
                  paths: [("ground truth", trace.truth, (44, 160, 44)), ("kinematic only", trace.kinematic, (214, 39, 40)),
                          ("fused estimate", trace.fused, (31, 119, 180))], to: path)
    }

    /// The phantom's centerlines, the route and `paths` (label, points, colour), in four views.
    /// Paths are drawn in order, each thinner than the one before: one lying on another (a good
    /// estimate on the truth) shows inside it instead of hiding it.
    static func write(tree: VesselTreeDescription, route: [Vec3], title: String, paths: [(String, [Vec3], (UInt8, UInt8, UInt8))],
                      to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        // The whole way, and a close-up of the last 40 mm around the target (the branch entry).
        let goal = route.last ?? .zero
        let views: [(String, (Int, Int), String, Double?)] = [
            ("", (0, 2), "frontal: x, patient left (mm)", nil), ("_lateral", (1, 2), "lateral: y, posterior (mm)", nil),
            ("_zoom", (0, 2), "frontal: x, patient left (mm)", 40), ("_lateral_zoom", (1, 2), "lateral: y, posterior (mm)", 40),
        ]
        for (suffix, axes, label, zoom) in views {
            var plot = LinePlot(title: title + (zoom == nil ? "" : ", near the target"), xLabel: label, yLabel: "z, superior (mm)")
            plot.equalAspect = true
            func near(_ x: Double, _ y: Double) -> Bool {
                guard let z = zoom else { return true }
                return abs(x - goal[axes.0]) <= z && abs(y - goal[axes.1]) <= z
            }
            func pts(_ v: [Vec3]) -> [(x: Double, y: Double)] { v.map { (x: $0[axes.0], y: $0[axes.1]) }.filter { near($0.x, $0.y) } }
            for vessel in tree.vessels {
                // Vessels are sampled sparsely: a close-up interpolates them so that they still reach its edges.
                var line: [(x: Double, y: Double)] = []
                for (a, b) in zip(vessel.points, vessel.points.dropFirst()) {
                    for k in 0..<8 {
                        let f = Double(k) / 8
                        line.append((x: a[axes.0] + (b[axes.0] - a[axes.0]) * f, y: a[axes.1] + (b[axes.1] - a[axes.1]) * f))
                    }
                }
                if let l = vessel.points.last { line.append((x: l[axes.0], y: l[axes.1])) }
                plot.series.append(.init(label: vessel.name == tree.vessels[0].name ? "vessel centerlines" : "",
                                         points: line.filter { near($0.x, $0.y) }, color: (200, 200, 200), thickness: zoom == nil ? 6 : 14))
            }
            plot.series.append(.init(label: "route", points: pts(route), color: (120, 120, 120), thickness: 1))
            for (k, (name, points, colour)) in paths.enumerated() {
                plot.series.append(.init(label: name, points: pts(points), color: colour, thickness: Int32(2 + 2 * (paths.count - 1 - k))))
            }
            let file = suffix.isEmpty ? path : (path as NSString).deletingPathExtension + suffix + ".png"
            try plot.write(to: file)
        }
    }
}
