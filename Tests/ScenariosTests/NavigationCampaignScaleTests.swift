import Control
import Core
import Foundation
import Sim
import Testing
@testable import Scenarios

/// Campaigns at scale: shards that split a campaign deterministically and merge back, runs on
/// several threads with the results of one, and targets in every navigable phantom.
@Suite struct NavigationCampaignScaleTests {
    /// The figures that depend on the seed alone (not the clocks: compute times, overruns, wall and CPU seconds).
    static func seeded(_ r: NavigationResult) -> NavigationResult {
        var r = r
        r.wall_s = 0; r.cpu_s = nil; r.overruns = 0; r.compute_us_p50 = 0; r.compute_us_p99 = 0
        return r
    }

    static func settings(phantoms: [String] = ["arch", "cerebral"], runs: Int = 2, seconds: Double = 0.6,
                         measurements: MeasurementSource = .truth, seed: UInt64 = 5) -> NavigationCampaignSettings {
        var base = NavigationSetup()
        base.maxSeconds = seconds
        base.measurements = measurements
        base.detectorPixels = 512
        base.pixelSpacingMM = 0.6
        return NavigationCampaignSettings(phantoms: phantoms, seed: seed, first: 0, runs: runs, base: base)
    }

    @Test func shardsSplitTheCampaignIntoDisjointPartsThatCoverIt() throws {
        let s = Self.settings(phantoms: ["arch", "coronary", "cerebral", "hepatic"], runs: 25)
        let whole = try NavigationCampaign.plan(s)
        #expect(whole.count == 100)
        #expect(whole.map(\.campaignIndex) == Array(0..<100))
        for n in [1, 3, 7] {
            let shards = try (1...n).map { try NavigationCampaign.plan(s, shard: CampaignShard(index: $0, count: n)) }
            let indices = shards.flatMap { $0.map(\.campaignIndex) }
            #expect(indices.sorted() == Array(0..<100), "shards of \(n) overlap or miss runs")
            #expect(Set(shards.map(\.count)).isSubset(of: [100 / n, 100 / n + 1]))
            // Planned again, a shard is the same runs with the same setups.
            #expect(try NavigationCampaign.plan(s, shard: CampaignShard(index: n, count: n)) == shards[n - 1])
        }
        // Each phantom's runs cycle through its own targets, seeded seed + run.
        let cerebral = whole.filter { $0.setup.phantom == "cerebral" }
        let targets = try Phantoms.load("cerebral").targets
        #expect(cerebral.map(\.setup.vessel).prefix(targets.count) == ArraySlice(targets.map(\.vessel)))
        #expect(cerebral.map(\.setup.seed) == (0..<25).map { 5 + UInt64($0) })
    }

    /// The coronary phantom's runs use its microcatheter from its own start; the others the
    /// default catheter at the default start; a robot named for the campaign is used everywhere;
    /// a run whose robot was not given is refused before any runs.
    @Test func eachPhantomRunsItsOwnCatheterUnlessOneIsNamed() throws {
        let s = Self.settings(phantoms: ["arch", "coronary"], runs: 2)
        let plan = try NavigationCampaign.plan(s)
        let coronary = try Phantoms.load("coronary")
        let robots = Dictionary(grouping: plan, by: \.setup.phantom).mapValues { Set($0.map(\.setup.robot)) }
        let starts = Dictionary(grouping: plan, by: \.setup.phantom).mapValues { Set($0.map(\.setup.startInsertionMM)) }
        #expect(robots["coronary"] == [coronary.robot ?? ""] && robots["arch"] == [NavigationSetup().robot])
        #expect(starts["coronary"] == [coronary.startInsertionMM ?? -1] && starts["arch"] == [NavigationSetup().startInsertionMM])
        let micro = try loadRobot("lumen-1s-micro.yaml")
        let standard = try loadRobot()
        #expect(micro.outerDiameterMM < 1 && standard.outerDiameterMM == RobotDescription.defaultOuterDiameterMM)
        // The hepatic phantom's catheter: the standard one with a bending section short enough
        // for the second turn into the common hepatic.
        let hepatic = try NavigationCampaign.plan(Self.settings(phantoms: ["hepatic"], runs: 1))
        #expect(hepatic.map(\.setup.robot) == ["robots/lumen-1s-visceral.yaml"])
        let visceral = try loadRobot("lumen-1s-visceral.yaml")
        #expect(visceral.sections.map(\.lengthMM) == [20] && standard.sections.map(\.lengthMM) == [40])
        #expect(visceral.outerDiameterMM == standard.outerDiameterMM && visceral.axes.count == standard.axes.count)
        var one = s
        one.robotForAll = "robots/other.yaml"
        let named = try NavigationCampaign.plan(one)
        #expect(named.allSatisfy { $0.setup.robot == "robots/other.yaml" })
        #expect { try NavigationCampaign.run(plan, robots: [NavigationSetup().robot: micro], jobs: 1) } throws: {
            ($0 as? NavigationError).map { if case .badSetup(field: "robot", _) = $0 { true } else { false } } ?? false
        }
        // The refusal names the run and its phantom, so a user can find the line of the plan.
        let arch = try #require(plan.first { $0.setup.phantom == "arch" })
        #expect(throws: NavigationError.badSetup(field: "robot", reason: "no robot description was given for '\(arch.setup.robot)' (run \(arch.run) in arch)")) {
            try NavigationCampaign.robot(for: arch, in: [:])
        }
        #expect(try NavigationCampaign.robot(for: arch, in: [arch.setup.robot: standard]).outerDiameterMM == standard.outerDiameterMM)
    }

    @Test(arguments: ["0/3", "4/3", "3", "a/b", "1/0", "-1/2", "1/100001", "2/2/2", ""])
    func aBadShardIsRefused(text: String) {
        #expect { try CampaignShard(parsing: text) } throws: { ($0 as? NavigationError).map { if case .badSetup(field: "shard", _) = $0 { true } else { false } } ?? false }
    }

    @Test func anUnknownOrRepeatedPhantomIsRefused() {
        #expect(throws: NavigationError.unknownPhantom("straight")) { try NavigationCampaign.plan(Self.settings(phantoms: ["straight"])) }
        #expect { try NavigationCampaign.plan(Self.settings(phantoms: ["arch", "arch"])) } throws: {
            ($0 as? NavigationError).map { if case .badSetup(field: "phantoms", _) = $0 { true } else { false } } ?? false
        }
    }

    /// Rendered frames, the tracker and the estimator on two threads give each run exactly the
    /// figures it has alone.
    @Test func twoJobsGiveTheResultsOfOne() throws {
        let robot = try loadRobot()
        let plan = try NavigationCampaign.plan(Self.settings(runs: 2, seconds: 1.0, measurements: .tracker))
        let one = try NavigationCampaign.run(plan, robots: [NavigationSetup().robot: robot], jobs: 1, keepTraceOf: 0)
        let two = try NavigationCampaign.run(plan, robots: [NavigationSetup().robot: robot], jobs: 2, keepTraceOf: 0)
        #expect(one.results.count == 4 && two.results.count == 4)
        #expect(one.results.map(Self.seeded) == two.results.map(Self.seeded))
        #expect(one.results.map(\.run) == plan.map(\.run))
        #expect(one.results.allSatisfy { $0.frames > 0 && $0.wall_s > 0 })
        #expect(one.trace?.truth == two.trace?.truth)
    }

    /// Each run's CPU time on its thread is measured beside its wall time, and the summary's
    /// speed against it; a summary written before CPU time was measured still reads, without it.
    @Test func runsReportTheirCPUTimeAndOlderSummariesReadWithout() throws {
        let robot = try loadRobot()
        let settings = Self.settings(runs: 2, seconds: 0.3)
        let results = try NavigationCampaign.run(try NavigationCampaign.plan(settings), robots: [NavigationSetup().robot: robot], jobs: 2).results
        for r in results {
            let cpu = try #require(r.cpu_s, "run \(r.run)")
            // One thread's CPU time cannot exceed the wall time it ran in (both rounded to 1 ms).
            #expect(cpu > 0 && cpu <= r.wall_s + 0.002, "run \(r.run): cpu \(cpu) s, wall \(r.wall_s) s")
        }
        let summary = NavigationSummary(results, campaign: settings)
        let perCPU = try #require(summary.timing.simulated_per_cpu)
        #expect(perCPU >= summary.timing.simulated_per_wall * 0.99)
        #expect(summary.timing.cpu_s_per_run_median != nil)

        // The same summary as written before: no `cpu_s` in any run, no CPU figures in timing.
        var json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(summary)) as? [String: Any])
        json["per_run"] = (json["per_run"] as? [[String: Any]])?.map { var r = $0; r["cpu_s"] = nil; return r }
        var timing = try #require(json["timing"] as? [String: Any])
        timing["cpu_s_per_run_median"] = nil; timing["simulated_per_cpu"] = nil
        json["timing"] = timing
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-cpu-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("old.json").path
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: file))
        let old = try NavigationSummary.load(file: file)
        #expect(old.per_run.allSatisfy { $0.cpu_s == nil })
        #expect(old.per_run.map(Self.seeded) == results.map(Self.seeded))
        let merged = try NavigationSummary.merge([(file, old)])
        #expect(merged.timing.simulated_per_cpu == nil && merged.timing.cpu_s_per_run_median == nil)
    }

    /// Shards run apart, written and read back as files, merge into the whole campaign; a
    /// missing shard, a shard twice, other settings and a plain run list are refused.
    @Test func shardsMergeIntoTheWholeCampaignAndBadSetsAreRefused() throws {
        let robot = try loadRobot()
        let settings = Self.settings(runs: 2, seconds: 0.3)
        let whole = try NavigationCampaign.run(try NavigationCampaign.plan(settings), robots: [NavigationSetup().robot: robot], jobs: 2).results
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-merge-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var files: [String] = []
        for k in 1...3 {
            let shard = CampaignShard(index: k, count: 3)
            let results = try NavigationCampaign.run(try NavigationCampaign.plan(settings, shard: shard), robots: [NavigationSetup().robot: robot], jobs: 1).results
            let file = dir.appendingPathComponent("shard\(k).json").path
            try JSONEncoder().encode(NavigationSummary(results, campaign: settings, shards: [shard])).write(to: URL(fileURLWithPath: file))
            files.append(file)
        }
        let parts = try files.map { ($0, try NavigationSummary.load(file: $0)) }
        let merged = try NavigationSummary.merge(parts.reversed())
        #expect(merged.per_run.map(Self.seeded) == whole.map(Self.seeded))
        #expect(merged.shards.count == 3 && merged.runs == 4)
        #expect(merged.per_phantom.map(\.phantom) == ["arch", "cerebral"])
        #expect(merged.per_target.count == 4)
        #expect(merged.failures.count == merged.per_run.filter { !$0.success }.count)
        #expect(merged.failures.allSatisfy { f in whole.contains { $0.run == f.run && $0.setup.seed == f.seed } })

        #expect(throws: CampaignMergeError.missingShards([CampaignShard(index: 2, count: 3)])) { try NavigationSummary.merge([parts[0], parts[2]]) }
        #expect(throws: CampaignMergeError.overlapping(shard: CampaignShard(index: 1, count: 3), files: [files[0], files[0]])) {
            try NavigationSummary.merge([parts[0], parts[0], parts[1], parts[2]])
        }
        var other = parts[1].1
        other.campaign?.seed = 6
        #expect(throws: CampaignMergeError.settingsDiffer(file: files[1], first: files[0])) { try NavigationSummary.merge([parts[0], (files[1], other), parts[2]]) }
        var plain = parts[1].1
        plain.campaign = nil
        #expect(throws: CampaignMergeError.notACampaign(file: files[1])) { try NavigationSummary.merge([parts[0], (files[1], plain), parts[2]]) }
        // A shard file whose runs were edited (here: one run's setup) does not pass for the plan.
        var edited = parts[2].1
        edited.per_run[0].setup.depth += 1
        #expect { try NavigationSummary.merge([parts[0], parts[1], (files[2], edited)]) } throws: {
            if case .runsMissing? = $0 as? CampaignMergeError { true } else { false }
        }
        let garbage = dir.appendingPathComponent("garbage.json").path
        try Data("{\"runs\": 3}".utf8).write(to: URL(fileURLWithPath: garbage))
        #expect { try NavigationSummary.load(file: garbage) } throws: { if case .unreadable(garbage, _)? = $0 as? CampaignMergeError { true } else { false } }
    }

    /// Every target of every navigable phantom makes a scene: a route, the catheter placed and
    /// settled at the sheath, the goal at the route's end inside the target vessel.
    @Test(arguments: Phantoms.navigable)
    func everyTargetMakesANavigationScene(phantom: String) throws {
        let robot = try loadRobot()
        let targets = try NavigationCampaign.targets(of: phantom)
        for (i, target) in targets.enumerated() {
            var base = NavigationSetup()
            base.phantom = phantom
            let setup = NavigationCampaign.setup(run: i, seed: 1, base: base, targets: targets)
            #expect(setup.vessel == target.vessel && setup.depth == target.depthMM)
            let scene = try NavigationScene(setup, robot: robot)
            let tree = VesselTree(scene.tree)
            #expect(tree.contains(scene.goal))
            #expect(tree.contains(scene.startTip, within: 0.5), "\(phantom) \(target.vessel): the settled tip is outside the lumen")
            #expect((scene.route.last.map { ($0 - scene.goal).length } ?? 1) < 1e-9)
        }
    }
}
