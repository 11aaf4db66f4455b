import Control
import Core
import Foundation
import Sim
import Synchronization

/// Seeded navigation runs over a phantom's targets and C-arm angles, split into shards, run on
/// several threads, and their summary.
public enum NavigationCampaign {
    /// Targets in the arch phantom: the three supra-aortic branches and the brachiocephalic's two.
    public static var targets: [(vessel: String, depth: Double)] { Phantoms.aorticArch().targets.map { ($0.vessel, $0.depthMM) } }
    /// C-arm angles (primary, secondary) in degrees.
    public static let angles: [(Double, Double)] = [(0, 0), (30, 0), (-30, 15), (20, -10)]

    /// The navigation targets of `phantom`.
    public static func targets(of phantom: String) throws(NavigationError) -> [PhantomTarget] {
        try navigable(phantom).targets
    }

    /// The phantom's tree, refused unless it has navigation targets.
    static func navigable(_ phantom: String) throws(NavigationError) -> VesselTreeDescription {
        let tree: VesselTreeDescription
        do { tree = try Phantoms.load(phantom) } catch {
            if case .unknown = error { throw .unknownPhantom(phantom) }
            throw .route("\(error)")
        }
        guard !tree.targets.isEmpty else { throw .route("phantom '\(phantom)' has no navigation targets") }
        return tree
    }

    /// The setup of run `index` (from 0) in the arch phantom (or `base.phantom` when its targets
    /// are given): runs cycle through the targets, then the angles; the seed is `seed + index`,
    /// so a run can be repeated alone.
    public static func setup(run index: Int, seed: UInt64, base: NavigationSetup = NavigationSetup(), targets: [PhantomTarget]? = nil) -> NavigationSetup {
        var setup = base
        let i = max(0, index)
        let list = targets ?? Phantoms.aorticArch().targets
        let target = list[i % list.count]
        let angle = angles[(i / list.count) % angles.count]
        setup.vessel = target.vessel; setup.depth = target.depthMM
        setup.primaryDeg = angle.0; setup.secondaryDeg = angle.1
        setup.seed = seed &+ UInt64(i)
        return setup
    }

    /// The runs of a campaign, in order: for each phantom, runs `first ..< first + runs`. A
    /// shard K of N takes every N-th of them from the (K−1)-th, so shards are the same size
    /// within one run and every phantom and target is spread over all of them.
    public static func plan(_ settings: NavigationCampaignSettings, shard: CampaignShard = .whole) throws(NavigationError) -> [PlannedRun] {
        try settings.validate()
        var all: [PlannedRun] = []
        for phantom in settings.phantoms {
            let tree = try navigable(phantom)
            var base = settings.base
            base.phantom = phantom
            // The phantom's own catheter and start, unless the campaign names one robot for all.
            if let start = tree.startInsertionMM { base.startInsertionMM = start }
            base.robot = settings.robotForAll ?? tree.robot ?? NavigationSetup().robot
            for r in settings.first..<(settings.first + settings.runs) {
                all.append(PlannedRun(campaignIndex: all.count, run: r, setup: setup(run: r, seed: settings.seed, base: base, targets: tree.targets)))
            }
        }
        return all.filter { $0.campaignIndex % shard.count == shard.index - 1 }
    }

    /// The robot description a planned run names, or `badSetup` naming the run and its phantom.
    public static func robot(for p: PlannedRun, in robots: [String: RobotDescription]) throws(NavigationError) -> RobotDescription {
        guard let r = robots[p.setup.robot] else {
            throw .badSetup(field: "robot", reason: "no robot description was given for '\(p.setup.robot)' (run \(p.run) in \(p.setup.phantom))")
        }
        return r
    }

    /// Runs `plan` on `jobs` threads. Each run is seeded and owns all its state, so the results
    /// are those of `jobs: 1`, in plan order, whatever the threads' timing. `done` is called (from
    /// the worker threads, one at a time) as each run ends; the first error stops the rest.
    public static func run(
        _ plan: [PlannedRun], robots: [String: RobotDescription], jobs: Int, keepTraceOf traced: Int? = nil,
        done: (@Sendable (PlannedRun, NavigationResult) -> Void)? = nil
    ) throws(NavigationError) -> (results: [NavigationResult], trace: NavigationTrace?) {
        for p in plan { _ = try robot(for: p, in: robots) }
        let shared = CampaignState(count: plan.count)
        let work: @Sendable () -> Void = {
            while let i = shared.take(limit: plan.count) {
                let t0 = MonotonicClock.now(), cpu0 = ThreadCPUTime.seconds()
                do throws(NavigationError) {
                    let robot = try robot(for: plan[i], in: robots)
                    var (result, trace) = try NavigationRun.run(plan[i].setup, robot: robot)
                    result.run = plan[i].run
                    result.wall_s = round3(Double(MonotonicClock.now() - t0) * 1e-9)
                    result.cpu_s = round3(ThreadCPUTime.seconds() - cpu0)
                    shared.store(i, result, trace: plan[i].campaignIndex == traced ? trace : nil) { done?(plan[i], result) }
                } catch {
                    shared.fail(i, error)
                }
            }
        }
        let workers = max(1, min(jobs, plan.count))
        if workers == 1 {
            work()
        } else {
            let finished = DispatchGroup()
            for _ in 0..<workers {
                finished.enter()
                let thread = Thread { work(); finished.leave() }
                // The physics and the renderer recurse little, but a worker gets the main thread's room.
                thread.stackSize = 8 << 20
                thread.start()
            }
            finished.wait()
        }
        return try shared.finish()
    }
}

/// The campaign's shared state: the next run to take, the results in plan order, the first error.
private final class CampaignState: Sendable {
    struct State {
        var results: [NavigationResult?]
        var trace: NavigationTrace?
        var error: (index: Int, error: NavigationError)?
        var next = 0
    }
    let state: Mutex<State>

    init(count: Int) { state = Mutex(State(results: Array(repeating: nil, count: count))) }

    /// The next run's index, or nil when all are taken or one has failed.
    func take(limit: Int) -> Int? {
        state.withLock { s in
            guard s.error == nil, s.next < limit else { return nil }
            defer { s.next += 1 }
            return s.next
        }
    }

    func store(_ i: Int, _ result: NavigationResult, trace: NavigationTrace?, then report: () -> Void) {
        state.withLock { s in
            s.results[i] = result
            if let trace { s.trace = trace }
            report()
        }
    }

    /// Keeps the error of the earliest run, so the error reported does not depend on timing.
    func fail(_ i: Int, _ error: NavigationError) {
        state.withLock { s in if s.error.map({ i < $0.index }) ?? true { s.error = (i, error) } }
    }

    func finish() throws(NavigationError) -> (results: [NavigationResult], trace: NavigationTrace?) {
        let (results, trace, error) = state.withLock { s in (s.results, s.trace, s.error) }
        if let error { throw error.error }
        return (results.compactMap { $0 }, trace)
    }
}

/// One run of a campaign: its place in the whole campaign, its run index within its phantom
/// (which fixes target, angle and seed) and its setup.
public struct PlannedRun: Sendable, Equatable {
    public var campaignIndex: Int
    public var run: Int
    public var setup: NavigationSetup
}

/// Shard K of N (1 ≤ K ≤ N) of a campaign; `.whole` is 1 of 1.
public struct CampaignShard: Codable, Equatable, Sendable, CustomStringConvertible {
    public var index: Int
    public var count: Int
    public static let whole = CampaignShard(index: 1, count: 1)

    public init(index: Int, count: Int) { self.index = index; self.count = count }

    /// Parses "K/N", 1 ≤ K ≤ N ≤ 100000.
    public init(parsing text: String) throws(NavigationError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]), (1...100_000).contains(n), (1...n).contains(k) else {
            throw .badSetup(field: "shard", reason: "must be K/N with 1 ≤ K ≤ N ≤ 100000 (e.g. 3/8), got '\(text)'")
        }
        index = k; count = n
    }

    public var description: String { "\(index)/\(count)" }
}

/// What a campaign runs: the same for every shard of it, so that shards can be merged.
public struct NavigationCampaignSettings: Codable, Equatable, Sendable {
    public var phantoms: [String]
    public var seed: UInt64
    public var first: Int
    /// Runs per phantom.
    public var runs: Int
    /// The setup every run starts from (time limit, measurements); target, angle and seed vary,
    /// and each phantom's runs use its own catheter (`VesselTreeDescription.robot`) and start.
    public var base: NavigationSetup
    /// The robot file every phantom's runs use instead of their own; nil: each phantom's own.
    public var robotForAll: String?

    public init(phantoms: [String], seed: UInt64 = 1, first: Int = 0, runs: Int, base: NavigationSetup = NavigationSetup(), robotForAll: String? = nil) {
        self.phantoms = phantoms; self.seed = seed; self.first = first; self.runs = runs; self.base = base; self.robotForAll = robotForAll
    }

    public func validate() throws(NavigationError) {
        guard !phantoms.isEmpty, Set(phantoms).count == phantoms.count else {
            throw .badSetup(field: "phantoms", reason: "must name each phantom once, got \(phantoms)")
        }
        for p in phantoms where !Phantoms.navigable.contains(p) { throw .unknownPhantom(p) }
        // Both bounded, so first + runs cannot overflow.
        guard (1...100_000).contains(runs) else { throw .badSetup(field: "runs", reason: "must be 1…100000, got \(runs)") }
        guard (0...1_000_000).contains(first) else { throw .badSetup(field: "first", reason: "must be 0…1000000, got \(first)") }
        try base.validate()
    }
}
