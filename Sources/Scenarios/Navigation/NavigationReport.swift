import Core
import Foundation
import Sim

/// The figures of a set of navigation runs: pooled, per phantom, per target, the failures by
/// seed and run, and the wall time the runs took against the simulated time they covered.
public struct NavigationSummary: Codable, Sendable {
    /// What was run; nil for runs not planned as a campaign.
    public var campaign: NavigationCampaignSettings?
    /// The shards of the campaign these runs are (one, or all of them after a merge).
    public var shards: [CampaignShard]
    public var runs: Int
    public var success_rate: Double
    public var final_err_mm_median: Double
    public var time_to_target_s_median: Double?
    /// The largest contact force between catheter and wall in any run (N).
    public var peak_contact_n_max: Double
    /// The largest axial push at the sheath in any run (N): what the monitor limits.
    public var peak_insertion_n_max: Double
    /// Medians over the runs of each run's median error.
    public var fused: ErrorFigures
    public var kinematic_only: ErrorFigures
    public var image_only: ErrorFigures
    public var overruns: Int
    public var per_phantom: [NavigationRow]
    public var per_target: [NavigationRow]
    public var failures: [NavigationFailure]
    /// Runs (their index within their phantom's campaign, by phantom) with an image tip outside
    /// the safety monitor's corridor: live, the monitor would have stopped them (category 1),
    /// successful here or not. Runs written before it was counted are not listed.
    public var monitor_lumen_runs: [NavigationRunRef]
    public var timing: NavigationTiming
    public var per_run: [NavigationResult]

    enum CodingKeys: String, CodingKey {
        case campaign, shards, runs, success_rate, final_err_mm_median, time_to_target_s_median, peak_contact_n_max, peak_insertion_n_max, fused, kinematic_only,
             image_only, overruns, per_phantom, per_target, failures, monitor_lumen_runs, timing, per_run
    }

    public init(_ results: [NavigationResult], campaign: NavigationCampaignSettings? = nil, shards: [CampaignShard] = [.whole], jobs: Int = 1,
                campaignWallSeconds: Double? = nil) {
        let pooled = NavigationRow(phantom: "all", vessel: nil, depthMM: nil, results)
        self.campaign = campaign
        self.shards = shards
        runs = results.count
        success_rate = pooled.success_rate
        final_err_mm_median = pooled.final_err_mm_median
        time_to_target_s_median = pooled.time_to_target_s_median
        peak_contact_n_max = pooled.peak_contact_n_max
        peak_insertion_n_max = pooled.peak_insertion_n_max
        fused = ErrorFigures(results.map(\.fused.median))
        kinematic_only = ErrorFigures(results.map(\.kinematic_only.median))
        image_only = ErrorFigures(results.map(\.image_only.median))
        overruns = results.reduce(0) { $0 + $1.overruns }
        var phantoms: [String] = [], targets: [TargetKey] = []
        for r in results {
            if !phantoms.contains(r.setup.phantom) { phantoms.append(r.setup.phantom) }
            let key = TargetKey(r.setup)
            if !targets.contains(key) { targets.append(key) }
        }
        per_phantom = phantoms.map { p in NavigationRow(phantom: p, vessel: nil, depthMM: nil, results.filter { $0.setup.phantom == p }) }
        per_target = targets.map { t in NavigationRow(phantom: t.phantom, vessel: t.vessel, depthMM: t.depth, results.filter { TargetKey($0.setup) == t }) }
        failures = results.filter { !$0.success }.map(NavigationFailure.init)
        monitor_lumen_runs = results.filter { ($0.image_tip_corridor?.outside ?? 0) > 0 }
            .map { NavigationRunRef(phantom: $0.setup.phantom, run: $0.run, vessel: $0.setup.vessel, success: $0.success) }
        timing = NavigationTiming(results, jobs: jobs, campaignWallSeconds: campaignWallSeconds)
        per_run = results
    }

    /// Reads what a summary file says was run and how each run went; every figure is computed
    /// again from the runs, so a merged summary cannot carry a stale figure of a shard.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let campaign = try c.decodeIfPresent(NavigationCampaignSettings.self, forKey: .campaign)
        let shards = try c.decode([CampaignShard].self, forKey: .shards)
        let runs = try c.decode([NavigationResult].self, forKey: .per_run)
        let timing = try c.decode(NavigationTiming.self, forKey: .timing)
        self.init(runs, campaign: campaign, shards: shards, jobs: timing.jobs, campaignWallSeconds: timing.campaign_wall_s)
    }

    /// The largest summary file read (bytes): a 10,000-run shard is about 20 MB.
    public static let maxFileBytes = 256 << 20

    /// A shard's summary file, as `lumen eval navigation` wrote it.
    public static func load(file: String) throws(CampaignMergeError) -> NavigationSummary {
        let url = URL(fileURLWithPath: file)
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: file)
            guard attributes[.type] as? FileAttributeType == .typeRegular else { throw CampaignMergeError.unreadable(file: file, reason: "not a regular file") }
            let size = attributes[.size] as? Int ?? 0
            guard size <= maxFileBytes else { throw CampaignMergeError.unreadable(file: file, reason: "\(size) bytes, more than the \(maxFileBytes) a summary may have") }
            return try JSONDecoder().decode(NavigationSummary.self, from: Data(contentsOf: url))
        } catch let e as CampaignMergeError {
            throw e
        } catch let e as DecodingError {
            throw .unreadable(file: file, reason: "not a navigation summary: \(Self.describe(e))")
        } catch {
            throw .unreadable(file: file, reason: "\(error.localizedDescription)")
        }
    }

    static func describe(_ e: DecodingError) -> String {
        switch e {
        case .keyNotFound(let key, let c): "\(ConfigLoader.fieldPath(c.codingPath + [key])) is missing"
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            "\(ConfigLoader.fieldPath(c.codingPath)): \(c.debugDescription)"
        @unknown default: "\(e)"
        }
    }

    /// Runs that reached the target within 1 mm.
    public var successes: Int { per_run.filter(\.success).count }

    /// One summary from the shards of a campaign run apart: the same campaign settings in all,
    /// every shard of it exactly once, no run twice and none missing; runs in campaign order.
    public static func merge(_ parts: [(file: String, summary: NavigationSummary)]) throws(CampaignMergeError) -> NavigationSummary {
        guard let first = parts.first else { throw .nothingToMerge }
        guard let campaign = first.summary.campaign else { throw .notACampaign(file: first.file) }
        let count = first.summary.shards.first?.count ?? 1
        var seenShards: [Int: String] = [:]
        for (file, s) in parts {
            guard let other = s.campaign else { throw .notACampaign(file: file) }
            guard other == campaign else { throw .settingsDiffer(file: file, first: first.file) }
            for shard in s.shards {
                guard shard.count == count else { throw .shardCountDiffers(file: file, count: shard.count, expected: count) }
                if let earlier = seenShards[shard.index] { throw .overlapping(shard: shard, files: [earlier, file]) }
                seenShards[shard.index] = file
            }
        }
        let missing = (1...count).filter { seenShards[$0] == nil }
        guard missing.isEmpty else { throw .missingShards(missing.map { CampaignShard(index: $0, count: count) }) }
        // The plan says which run each shard must hold; a file that holds other runs was edited or
        // comes from another build.
        let plan: [PlannedRun]
        do { plan = try NavigationCampaign.plan(campaign) } catch { throw .plan(error.description) }
        var byKey: [RunKey: NavigationResult] = [:]
        for (file, s) in parts {
            for r in s.per_run {
                let key = RunKey(phantom: r.setup.phantom, run: r.run)
                if byKey[key] != nil { throw .duplicateRun(phantom: key.phantom, run: key.run, file: file) }
                byKey[key] = r
            }
        }
        var merged: [NavigationResult] = []
        var absent: [String] = []
        for p in plan {
            if let r = byKey.removeValue(forKey: RunKey(phantom: p.setup.phantom, run: p.run)), r.setup == p.setup {
                merged.append(r)
            } else {
                absent.append("\(p.setup.phantom) run \(p.run)")
            }
        }
        guard absent.isEmpty else { throw .runsMissing(absent) }
        guard byKey.isEmpty else { throw .runsOutsidePlan(byKey.keys.map { "\($0.phantom) run \($0.run)" }.sorted()) }
        let wall = parts.compactMap(\.summary.timing.campaign_wall_s)
        return NavigationSummary(merged, campaign: campaign, shards: (1...count).map { CampaignShard(index: $0, count: count) },
                                 jobs: parts.map(\.summary.timing.jobs).max() ?? 1, campaignWallSeconds: wall.count == parts.count ? wall.reduce(0, +) : nil)
    }

    struct RunKey: Hashable { var phantom: String; var run: Int }

    struct TargetKey: Equatable {
        var phantom: String, vessel: String, depth: Double
        init(_ s: NavigationSetup) { phantom = s.phantom; vessel = s.vessel; depth = s.depth }
    }
}

/// The figures of the runs of one phantom, or of one target in it.
public struct NavigationRow: Codable, Sendable, Equatable {
    public var phantom: String
    public var vessel: String?
    public var depth_mm: Double?
    public var runs: Int
    public var successes: Int
    public var success_rate: Double
    public var final_err_mm_median: Double
    public var time_to_target_s_median: Double?
    public var peak_contact_n_max: Double
    public var peak_insertion_n_max: Double
    public var fused_err_mm_median: Double
    /// Runs (their index within the phantom's campaign) that did not reach the target.
    public var failed_runs: [Int]

    init(phantom: String, vessel: String?, depthMM: Double?, _ results: [NavigationResult]) {
        let successes = results.filter(\.success)
        let times = successes.compactMap(\.time_to_target_s)
        self.phantom = phantom
        self.vessel = vessel
        depth_mm = depthMM
        runs = results.count
        self.successes = successes.count
        success_rate = round3(Double(successes.count) / Double(max(results.count, 1)))
        final_err_mm_median = round3(percentile(results.map(\.final_err_mm), 50))
        time_to_target_s_median = times.isEmpty ? nil : round3(percentile(times, 50))
        peak_contact_n_max = round3(results.map(\.peak_contact_n).max() ?? 0)
        peak_insertion_n_max = round3(results.map(\.peak_insertion_n).max() ?? 0)
        fused_err_mm_median = round3(percentile(results.map(\.fused.median), 50))
        failed_runs = results.filter { !$0.success }.map(\.run)
    }
}

/// A run that did not reach its target: enough to repeat it alone (`--phantom P --first RUN --runs 1 --seed`).
public struct NavigationFailure: Codable, Sendable, Equatable {
    public var phantom: String
    public var vessel: String
    public var depth_mm: Double
    public var run: Int
    public var seed: UInt64
    public var reason: String
    public var final_err_mm: Double
    public var peak_contact_n: Double
    public var peak_insertion_n: Double

    init(_ r: NavigationResult) {
        phantom = r.setup.phantom; vessel = r.setup.vessel; depth_mm = r.setup.depth; run = r.run; seed = r.setup.seed
        reason = r.reason; final_err_mm = r.final_err_mm; peak_contact_n = r.peak_contact_n; peak_insertion_n = r.peak_insertion_n
    }
}

/// Wall-clock time against simulated time.
public struct NavigationTiming: Codable, Sendable, Equatable {
    public var jobs: Int
    /// Wall seconds from the first run's start to the last one's end (nil when not measured).
    public var campaign_wall_s: Double?
    public var wall_s_per_run_median: Double
    public var simulated_s_per_run_median: Double
    /// Simulated seconds per wall second, summed over the runs (each on one core): how much
    /// faster than real time one run goes.
    public var simulated_per_wall: Double
    /// The same against the runs' CPU time on their threads: the speed of one run on one core
    /// even where other work (or the campaign's other jobs) shared the cores. Nil when a run's
    /// CPU time was not measured (results written before it was).
    public var cpu_s_per_run_median: Double?
    public var simulated_per_cpu: Double?

    init(_ results: [NavigationResult], jobs: Int, campaignWallSeconds: Double?) {
        self.jobs = jobs
        campaign_wall_s = campaignWallSeconds.map(round3)
        wall_s_per_run_median = round3(percentile(results.map(\.wall_s), 50))
        simulated_s_per_run_median = round3(percentile(results.map(\.time_s), 50))
        let wall = results.reduce(0) { $0 + $1.wall_s }
        simulated_per_wall = wall > 0 ? round3(results.reduce(0) { $0 + $1.time_s } / wall) : 0
        let cpu = results.compactMap(\.cpu_s)
        if !cpu.isEmpty, cpu.count == results.count {
            cpu_s_per_run_median = round3(percentile(cpu, 50))
            let total = cpu.reduce(0, +)
            simulated_per_cpu = total > 0 ? round3(results.reduce(0) { $0 + $1.time_s } / total) : nil
        }
    }
}

/// Why shards could not be merged into one campaign.
public enum CampaignMergeError: Error, Equatable, Sendable, CustomStringConvertible {
    case nothingToMerge
    case unreadable(file: String, reason: String)
    case notACampaign(file: String)
    case settingsDiffer(file: String, first: String)
    case shardCountDiffers(file: String, count: Int, expected: Int)
    case overlapping(shard: CampaignShard, files: [String])
    case missingShards([CampaignShard])
    case duplicateRun(phantom: String, run: Int, file: String)
    case runsMissing([String])
    case runsOutsidePlan([String])
    case plan(String)

    public var description: String {
        switch self {
        case .nothingToMerge: "no summary files to merge: name each shard's summary.json"
        case .unreadable(let f, let r): "\(f): cannot read: \(r)"
        case .notACampaign(let f): "\(f): not a campaign summary (no campaign settings): run it with `lumen eval navigation --shard K/N`"
        case .settingsDiffer(let f, let first): "\(f): its campaign settings differ from those of \(first): merge only shards of one campaign"
        case .shardCountDiffers(let f, let n, let e): "\(f): a shard of \(n), the others of \(e): merge only shards of one split"
        case .overlapping(let s, let files): "shard \(s) is in both \(files.joined(separator: " and ")): give each shard once"
        case .missingShards(let s): "shards missing: \(s.map(\.description).joined(separator: ", ")): run them and merge again"
        case .duplicateRun(let p, let r, let f): "\(f): \(p) run \(r) is in more than one file"
        case .runsMissing(let runs): "runs missing or with other settings than the campaign plans: \(runs.prefix(10).joined(separator: ", "))\(runs.count > 10 ? " and \(runs.count - 10) more" : "")"
        case .runsOutsidePlan(let runs): "runs the campaign does not plan: \(runs.prefix(10).joined(separator: ", "))"
        case .plan(let m): "the campaign cannot be planned: \(m)"
        }
    }
}

/// One run of a campaign, named.
public struct NavigationRunRef: Codable, Sendable, Equatable {
    public var phantom: String
    public var run: Int
    public var vessel: String
    public var success: Bool
}
