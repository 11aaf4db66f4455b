import Core

/// Seeded navigation runs over the arch phantom's targets and C-arm angles, and their summary.
public enum NavigationCampaign {
    /// Targets in the arch phantom: the three supra-aortic branches and the brachiocephalic's two.
    public static let targets: [(vessel: String, depth: Double)] = [
        ("left_subclavian", 25), ("left_common_carotid", 25), ("brachiocephalic", 25), ("left_subclavian", 40),
    ]
    /// C-arm angles (primary, secondary) in degrees.
    public static let angles: [(Double, Double)] = [(0, 0), (30, 0), (-30, 15), (20, -10)]

    /// The setup of run `index` (from 0): runs cycle through the targets, then the angles; the
    /// seed is `seed + index`, so a run can be repeated alone.
    public static func setup(run index: Int, seed: UInt64, base: NavigationSetup = NavigationSetup()) -> NavigationSetup {
        var setup = base
        let i = max(0, index)
        let target = targets[i % targets.count]
        let angle = angles[(i / targets.count) % angles.count]
        setup.vessel = target.vessel; setup.depth = target.depth
        setup.primaryDeg = angle.0; setup.secondaryDeg = angle.1
        setup.seed = seed &+ UInt64(i)
        return setup
    }
}

/// The figures of a set of navigation runs.
public struct NavigationSummary: Encodable, Sendable {
    public var runs: Int
    public var success_rate: Double
    public var final_err_mm_median: Double
    public var time_to_target_s_median: Double?
    /// Medians over the runs of each run's median error.
    public var fused: ErrorFigures
    public var kinematic_only: ErrorFigures
    public var image_only: ErrorFigures
    public var overruns: Int
    public var per_run: [NavigationResult]

    public init(_ results: [NavigationResult]) {
        let successes = results.filter(\.success)
        let times = successes.compactMap(\.time_to_target_s)
        runs = results.count
        success_rate = round3(Double(successes.count) / Double(max(results.count, 1)))
        final_err_mm_median = round3(percentile(results.map(\.final_err_mm), 50))
        time_to_target_s_median = times.isEmpty ? nil : round3(percentile(times, 50))
        fused = ErrorFigures(results.map(\.fused.median))
        kinematic_only = ErrorFigures(results.map(\.kinematic_only.median))
        image_only = ErrorFigures(results.map(\.image_only.median))
        overruns = results.reduce(0) { $0 + $1.overruns }
        per_run = results
    }

    /// Runs that reached the target within 1 mm.
    public var successes: Int { per_run.filter(\.success).count }
}
