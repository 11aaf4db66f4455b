import ArgumentParser
import CommandSupport
import Control
import Core
import Foundation
import Safety
import Scenarios

/// `lumen eval safety`: the fault campaign of the independent monitor, in simulated time.
struct EvalSafety: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "safety",
        abstract: "Fault campaign: inject random faults of every kind into the simulated closed loop and measure the monitor's detection and reaction, then count false trips over fault-free navigation."
    )

    @Option(help: "Faults to inject (1…100000).") var faults = 1000
    @Option(help: "Random seed (any whole number 0…2⁶⁴ − 1).") var seed: UInt64 = 1
    @Option(name: .customLong("nominal-minutes"), help: "Minutes of fault-free navigation for the false-trip count (simulated; 0.01…600, or 0 to skip).")
    var nominalMinutes = 30.0
    @Option(help: "The monitor's limits file.") var limits = "safety/lumen-2s-limits.yaml"
    @Option(help: "Robot file.") var robot = DemoRigFiles.defaultRobot
    @Option(help: "Only these fault kinds (comma-separated); all by default.") var kinds: String?
    @Option(name: .customLong("drive-watchdog-ms"), help: "The drives' safety-line watchdog (ms, 1…300).") var driveWatchdogMS = 5.0
    @Option(help: "Folder for results.json and the plot.") var out = "out/eval-safety"
    @Flag(help: "Print the results as JSON on stdout.") var json = false

    struct KindFigures: Encodable {
        var injected: Int
        var detected: Int
        var detected_pct: Double
        var missed: Int
        var reaction_ms_p50: Double?
        var reaction_ms_p99: Double?
        var reaction_ms_max: Double?
        var target_ms: Double?
        var reaction_measured_from: String
        var within_target: Int
        var max_penetration_mm: Double?
        var detected_by: [String: Int]
    }

    struct Results: Encodable {
        var seed: UInt64
        var faults: Int
        var limits: String
        var limits_sha256: String
        var drive_watchdog_ms: Double
        var detected_pct: Double
        var missed: Int
        var within_target_pct: Double
        var reaction_ms_p50: Double
        var reaction_ms_p99: Double
        var reaction_ms_max: Double
        var per_kind: [String: KindFigures]
        var warm_up_trips: Int
        var nominal_minutes: Double
        var false_trips: Int
        var false_trip_log: [String]
        var nominal_margins: [String: NominalResult.Margin]
        var simulated_s: Double
        var wall_s: Double
        var plots: [String]
    }

    func validate() throws {
        try Check.count(faults, "--faults", in: 1...100_000)
        if nominalMinutes != 0 { try Check.number(nominalMinutes, "--nominal-minutes", in: 0.01...600, unit: "min (or 0 to skip)") }
        try Check.number(driveWatchdogMS, "--drive-watchdog-ms", in: 1...300, unit: "ms")
        if let kinds {
            guard kinds.contains(where: { $0 != "," }) else { throw ValidationError("--kinds names no fault kind: give at least one, or leave it out for all") }
            for k in kinds.split(separator: ",") where FaultKind(rawValue: String(k)) == nil {
                throw ValidationError("--kinds: unknown fault kind '\(k)'; known: \(FaultKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        try Check.outputFolder(out, "--out", files: Self.outputFiles)
    }

    static let outputFiles = ["results.json", "episodes.json", "reaction_cdf.png"]

    func run() throws {
        let description = try DemoRigFiles.loadRobot(robot)
        let loaded: (limits: SafetyLimits, sha256: String)
        do { loaded = try SafetyLimits.load(from: DemoRigFiles.locate(limits)) } catch { throw CommandFailure(error.description) }
        let selected = kinds.map { $0.split(separator: ",").compactMap { FaultKind(rawValue: String($0)) } } ?? FaultKind.allCases
        let campaign = SafetyCampaign(description: description, limits: loaded.limits,
                                      options: CampaignOptions(faults: faults, seed: seed, kinds: selected, safetyWatchdog: driveWatchdogMS * 1e-3))
        Output.progress("eval safety: limits \(limits) sha256 \(loaded.sha256)")
        Output.progress("eval safety: \(faults) faults of \(selected.count) kinds, seed \(seed), then \(nominalMinutes) min of fault-free navigation")
        let started = Date()
        let episodes = campaign.runFaults { done in
            if done % 10 == 0 || done == faults { Output.status("eval safety: fault \(done) / \(faults)") }
        }
        Output.endStatus()
        let nominal = campaign.runNominal(minutes: nominalMinutes) { minute in
            Output.status(String(format: "eval safety: nominal %.1f / %.1f min", minute, nominalMinutes))
        }
        Output.endStatus()
        let wall = Date().timeIntervalSince(started)

        var perKind: [String: KindFigures] = [:]
        for kind in selected {
            let e = episodes.filter { $0.kind == kind }
            guard !e.isEmpty else { continue }
            let reactions = e.compactMap(\.reactionMS)
            var by: [String: Int] = [:]
            for x in e { by[x.detectedBy ?? "none", default: 0] += 1 }
            let detected = e.filter(\.detected).count
            perKind[kind.rawValue] = KindFigures(
                injected: e.count, detected: detected, detected_pct: round1(100 * Double(detected) / Double(e.count)),
                missed: e.count - detected,
                reaction_ms_p50: reactions.isEmpty ? nil : round3(percentile(reactions, 50)),
                reaction_ms_p99: reactions.isEmpty ? nil : round3(percentile(reactions, 99)),
                reaction_ms_max: reactions.max().map(round3), target_ms: kind.targetMS,
                reaction_measured_from: kind.onset, within_target: e.filter(\.withinTarget).count,
                max_penetration_mm: e.compactMap(\.penetrationMM).max().map(round3), detected_by: by)
        }
        let reactions = episodes.compactMap(\.reactionMS)
        let detected = episodes.filter(\.detected).count
        try OutputPath.createFolder(out)
        let plot = try writePlot(episodes)
        let results = Results(
            seed: seed, faults: faults, limits: limits, limits_sha256: loaded.sha256, drive_watchdog_ms: driveWatchdogMS,
            detected_pct: round1(100 * Double(detected) / Double(max(1, episodes.count))), missed: episodes.count - detected,
            within_target_pct: round1(100 * Double(episodes.filter(\.withinTarget).count) / Double(max(1, episodes.count))),
            reaction_ms_p50: round3(percentile(reactions, 50)), reaction_ms_p99: round3(percentile(reactions, 99)),
            reaction_ms_max: round3(reactions.max() ?? 0), per_kind: perKind,
            warm_up_trips: episodes.map(\.warmUpTrips.count).reduce(0, +),
            nominal_minutes: nominalMinutes, false_trips: nominal.falseTrips, false_trip_log: Array(nominal.trips.prefix(50)),
            nominal_margins: nominal.margins.mapValues { .init(peak: round3($0.peak), limit: round3($0.limit)) },
            simulated_s: round1(campaign.simulatedSeconds), wall_s: round1(wall), plots: [plot])
        try Output.writeJSON(results, to: out + "/results.json")
        try Output.writeJSON(episodes, to: out + "/episodes.json")
        if json {
            try Output.json(results)
        } else {
            print("Lumen safety campaign — \(faults) faults, seed \(seed), limits sha256 \(loaded.sha256.prefix(16))…")
            print(String(format: "  detected %.1f %% (%d missed), within target %.1f %%; reaction p50 %.3f ms, p99 %.3f ms, max %.3f ms",
                         results.detected_pct, results.missed, results.within_target_pct, results.reaction_ms_p50, results.reaction_ms_p99, results.reaction_ms_max))
            for key in perKind.keys.sorted() {
                let k = perKind[key]!
                let target = k.target_ms.map { "≤ \($0) ms" } ?? "no penetration (max \(k.max_penetration_mm ?? .nan) mm)"
                let name = key.padding(toLength: 16, withPad: " ", startingAt: 0)
                print(String(format: "  %@ %3d/%3d detected, reaction p50 %7.3f  max %8.3f ms  target %@: %d ok", name as NSString,
                             k.detected, k.injected, k.reaction_ms_p50 ?? .nan, k.reaction_ms_max ?? .nan, target as NSString, k.within_target))
            }
            print("  false trips: \(nominal.falseTrips) in \(nominalMinutes) min of fault-free navigation; warm-up trips \(results.warm_up_trips)")
            print("  written: \(out)/results.json, \(out)/episodes.json, \(plot)")
        }
    }

    /// The reaction times of each group of checks as empirical distributions, with their targets.
    private func writePlot(_ episodes: [EpisodeResult]) throws -> String {
        func cdf(_ values: [Double]) -> [(x: Double, y: Double)] {
            let s = values.sorted()
            var pts: [(x: Double, y: Double)] = []
            for (i, v) in s.enumerated() {
                pts.append((v, 100 * Double(i) / Double(s.count)))
                pts.append((v, 100 * Double(i + 1) / Double(s.count)))
            }
            return pts
        }
        let limitKinds = episodes.filter { $0.kind.targetMS == 2 }.compactMap(\.reactionMS)
        let lossKinds = episodes.filter { $0.kind.targetMS == 10 }.compactMap(\.reactionMS)
        var plot = LinePlot(title: "Monitor reaction: injection (or onset) to enable removed / controlled stop begun",
                            xLabel: "reaction (ms, simulated)", yLabel: "faults reacted to (%)")
        plot.series = [
            .init(label: "limit checks (target 2 ms)", points: cdf(limitKinds), color: (40, 110, 220)),
            .init(label: "heartbeat, link, monitor killed (target 10 ms)", points: cdf(lossKinds), color: (230, 90, 30)),
            .init(label: "2 ms", points: [(2, 0), (2, 100)], color: (40, 110, 220), thickness: 1),
            .init(label: "10 ms", points: [(10, 0), (10, 100)], color: (230, 90, 30), thickness: 1),
        ]
        let file = out + "/reaction_cdf.png"
        try plot.write(to: file)
        return file
    }
}
