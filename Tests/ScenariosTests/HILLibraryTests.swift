import Foundation
import Scenarios
import Testing

/// The shipped scenario library against the emulated DriveLink drives (the C reference on a
/// pty), at wall clock: every scenario passes, and every fault scenario fails with its faults
/// switched off — so none of its checks is one that cannot fail. Serialized: each run starts a
/// drive thread and a cycle thread of its own, and judging them one at a time keeps the
/// timings those of the run, not of a neighbour.
@Suite(.serialized, .disabled(if: ProcessInfo.processInfo.environment["LUMEN_WALL_CLOCK_SUITES"] == "later", "runs alone after the parallel tests (scripts/test.sh): it judges threads on the wall clock")) struct HILLibraryTests {
    static let folder = HILScenarioLoaderTests.root.appendingPathComponent("hil/scenarios")

    static func scenarios() throws -> [HILScenario] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }.sorted()
            .map { try HILScenario.load(folder.appendingPathComponent($0).path) }
    }

    static func describe(_ r: HILScenarioResult) -> String {
        "\(r.scenario): \(r.status) \(r.message) " + r.checks.map { "[\($0.passed ? "pass" : "FAIL") \($0.name): \($0.message)]" }.joined(separator: " ")
            + " notes: \(r.recording?.notes ?? [])"
    }

    @Test func everyScenarioPassesOnTheEmulatedDriveLinkDrives() throws {
        let all = try Self.scenarios()
        #expect(all.count >= 8)
        for s in all {
            let r = HILRunner.run(s, options: HILRunOptions(link: "serial"))
            #expect(r.status == .passed, "\(Self.describe(r))")
        }
    }

    @Test func everyFaultScenarioFailsWithItsFaultsSwitchedOff() throws {
        let faulty = try Self.scenarios().filter(\.hasFaultSteps)
        #expect(faulty.count >= 7)
        for s in faulty {
            let r = HILRunner.run(s, options: HILRunOptions(link: "serial", faultsSwitchedOff: true))
            #expect(r.status == .failed, "\(Self.describe(r))")
            #expect(r.recording?.notes.contains { $0.contains("switched off") } == true)
        }
    }

    /// The counters are sampled while the run goes on, EtherCAT's as DriveLink's: a storm shows
    /// in them when it begins, not only in the end's figure.
    @Test func theCountersAreSampledDuringTheRunOnBothLinks() throws {
        let all = try Self.scenarios()
        let storm = try #require(all.first { $0.name == "crc-storm" })
        let r = HILRunner.run(storm, options: HILRunOptions(link: "serial"))
        let rec = try #require(r.recording, "\(Self.describe(r))")
        let rejected = try #require(rec.counterSeries["rejected"], "sampled: \(rec.counterSeries.keys.sorted())")
        #expect(rec.counterTimes.count > 100)
        #expect(rejected.count == rec.counterTimes.count)
        let at = try #require(rec.stepTimes["storm"])
        let before = rec.counterTimes.indices.filter { rec.counterTimes[$0] < at - 0.05 }.map { rejected[$0] }.max() ?? -1
        let after = rejected.last ?? 0
        #expect(before == 0 && after >= 10, "rejected \(before) before the storm, \(after) at the end")
        #expect(rec.runtime.contains("sampled every"))
        #expect(rec.counterCourse?.series.contains { $0.label == "rejected" } == true)

        let bringUp = try #require(all.first { $0.name == "bring-up" })
        let e = HILRunner.run(bringUp, options: HILRunOptions(link: "ethercat-udp"))
        let erec = try #require(e.recording, "\(Self.describe(e))")
        #expect(e.status == .passed, "\(Self.describe(e))")
        for name in ["frames_sent", "frames_received", "wkc_shortfalls", "missing", "read_faults"] {
            #expect(erec.counterSeries[name] != nil, "\(name) not sampled: \(erec.counterSeries.keys.sorted())")
        }
        // frames_sent grows over the run: sampled while it went on, not once at the end.
        let sent = erec.counterSeries["frames_sent"] ?? []
        let middle = sent.count / 2
        #expect(sent.count > 100 && sent[middle] > 0 && sent[middle] < (sent.last ?? 0), "frames_sent \(sent.first ?? -1) … \(sent.count > middle ? sent[middle] : -1) … \(sent.last ?? -1)")
    }

    @Test func theLibraryCoversTheMonitorEachLimitAndTheRemainingFaults() throws {
        let all = try Self.scenarios()
        let actions = Set(all.flatMap { $0.steps.map(\.action) })
        #expect(actions.isSuperset(of: [.monitor_kill, .monitor_hang, .silence_host, .estop, .deadman_release]))
        let faults = Set(all.flatMap(\.injectedFaults))
        #expect(faults == Set(HILScenario.Fault.allCases), "not injected by any scenario: \(Set(HILScenario.Fault.allCases).subtracting(faults))")
        let checks = Set(all.flatMap { $0.expect.compactMap { $0.kind == .monitor_stop ? $0.check : nil } })
        #expect(checks.isSuperset(of: ["position", "velocity", "force", "heartbeat"]))
    }

    @Test func monitorScenariosNeedTheEmulatedDriveLinkDrives() throws {
        let s = try Self.scenarios().first { $0.name == "monitor-killed" }
        let r = HILRunner.run(try #require(s), options: HILRunOptions(link: "ethercat-udp"))
        #expect(r.status == .skipped, "\(Self.describe(r))")
        #expect(r.message.contains("safe-torque-off"))
    }

    @Test func faultScenariosOnARealLinkAreSkippedWithTheReason() throws {
        let s = try Self.scenarios().first { $0.name == "link-loss" }
        let r = HILRunner.run(try #require(s), options: HILRunOptions(link: "pty:/dev/pts/lumen-none"))
        #expect(r.status == .skipped)
        #expect(r.message.contains("needs an emulated link"))
    }

    @Test func aLinkThatDoesNotOpenIsAnErrorThatSaysSo() throws {
        let s = try Self.scenarios().first { $0.name == "bring-up" }
        let r = HILRunner.run(try #require(s), options: HILRunOptions(link: "pty:/nonexistent/pty"))
        #expect(r.status == .error)
        #expect(r.message.contains("did not come up"))
    }
}
