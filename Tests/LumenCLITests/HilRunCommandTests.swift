import Foundation
import Testing

/// `lumen hil run` end to end on one short scenario: the exit code, the JUnit file, the HTML
/// report with its embedded plots and timing notice, the JSON summary; a failing run and a file
/// that does not load. Serialized: each run starts emulated drives on a pty of its own.
@Suite(.serialized, .disabled(if: ProcessInfo.processInfo.environment["LUMEN_WALL_CLOCK_SUITES"] == "later", "runs alone after the parallel tests (scripts/test.sh): it judges threads on the wall clock")) struct HilRunCommandTests {
    static let bringUp = Tool.root.appendingPathComponent("hil/scenarios/bring-up.yaml").path
    static let estop = Tool.root.appendingPathComponent("hil/scenarios/emergency-stop.yaml").path

    static func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hil-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func aPassingScenarioWritesJUnitHTMLAndJSONAndExitsZero() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let junit = dir.appendingPathComponent("junit.xml").path
        let report = dir.appendingPathComponent("report").path
        let r = try Tool.run(["hil", "run", Self.bringUp, "--link", "serial", "--junit", junit, "--report", report, "--json"])
        #expect(r.status == 0, "\(r.stderr)\n\(r.stdout)")
        let json = try #require(r.json)
        #expect(json["passed"] as? Int == 1)
        #expect(json["exit_code"] as? Int == 0)
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("<testsuite name=\"bring-up\""))
        #expect(xml.contains("failures=\"0\""))
        let html = try String(contentsOfFile: report + "/report.html", encoding: .utf8)
        #expect(html.contains("not real-time"))
        // One embedded PNG per expectation (bring-up has five), and one of its counters over the run.
        #expect(html.components(separatedBy: "data:image/png;base64,iVBORw0KGgo").count - 1 == 6)
        #expect(html.contains("Counters over the run"))
        // The live runtime is the default runner.
        #expect(html.contains("Ran on the live runtime"))
        #expect(FileManager.default.fileExists(atPath: report + "/summary.json"))
        let plots = try FileManager.default.contentsOfDirectory(atPath: report + "/plots")
        #expect(plots.filter { $0.hasSuffix(".png") }.count == 6)
    }

    @Test func onTheLiveRuntimeTheSummarySaysSoAndAnUnknownRuntimeIsAUsageError() throws {
        let r = try Tool.run(["hil", "run", Self.bringUp, "--runtime", "live", "--link", "serial", "--json"])
        #expect(r.status == 0, "\(r.stderr)\n\(r.stdout)")
        let json = try #require(r.json)
        let scenarios = json["scenarios"] as? [[String: Any]]
        let runtime = scenarios?.first?["runtime"] as? String
        #expect(runtime?.hasPrefix("the live runtime") == true, "\(runtime ?? "nil")")
        let bad = try Tool.run(["hil", "run", Self.bringUp, "--runtime", "fast"])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("--runtime"))
    }

    @Test func aFaultScenarioWithItsFaultsSwitchedOffFailsWithExitOne() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let junit = dir.appendingPathComponent("junit.xml").path
        let r = try Tool.run(["hil", "run", Self.estop, "--link", "serial", "--faults-off", "--junit", junit])
        #expect(r.status == 1, "\(r.stderr)\n\(r.stdout)")
        #expect(r.stdout.contains("FAIL"))
        #expect(try String(contentsOfFile: junit, encoding: .utf8).contains("<failure"))
    }

    @Test func aScenarioThatDoesNotLoadExitsTwoNamingFileAndField() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.yaml").path
        let text = try String(contentsOfFile: Self.bringUp, encoding: .utf8).replacingOccurrences(of: "rate_hz: 1000", with: "rate_hz: 1000\n  speed: 3")
        try text.write(toFile: bad, atomically: true, encoding: .utf8)
        let r = try Tool.run(["hil", "run", bad, "--link", "serial"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("bad.yaml"))
        #expect(r.stderr.contains("setup.speed"))
    }

    @Test func theMonitorRunsBesideTheCycleAndTheReportSaysWhetherItWasRealTime() throws {
        let killed = Tool.root.appendingPathComponent("hil/scenarios/monitor-killed.yaml").path
        // On the live runtime (the default) the runtime starts and supervises the monitor; on a
        // bare cycle the runner starts it beside the cycle.
        for (runtime, says) in [("live", "the safety monitor (lumen-safety, started and supervised by the runtime)"),
                                ("cycle", "safety monitor beside the cycle")] {
            let r = try Tool.run(["hil", "run", killed, "--link", "serial", "--runtime", runtime, "--json"])
            #expect(r.status == 0, "\(r.stderr)\n\(r.stdout)")
            let scenario = (r.json?["scenarios"] as? [[String: Any]])?.first
            let notes = (scenario?["notes"] as? [String]) ?? []
            let text = notes.joined(separator: "; ") + "; " + ((scenario?["runtime"] as? String) ?? "")
            #expect(text.contains(says), "\(runtime): \(text)")
            #expect(notes.contains { $0.hasPrefix("real-time") || $0.hasPrefix("not real-time") }, "\(runtime): \(notes)")
        }
        // Asked to stay on SCHED_OTHER, the report says so (the verdict on a loaded machine is not the point here).
        let plain = try Tool.run(["hil", "run", Self.bringUp, "--link", "serial", "--no-realtime", "--json"])
        let plainNotes = (((plain.json?["scenarios"] as? [[String: Any]])?.first)?["notes"] as? [String]) ?? []
        #expect(plainNotes.contains { $0.contains("not real-time: every thread on SCHED_OTHER") }, "\(plainNotes)")
    }

    @Test func aBadLinkIsAUsageError() throws {
        let r = try Tool.run(["hil", "run", Self.bringUp, "--link", "can:0"])
        #expect(r.status == 64)
        #expect(r.stderr.contains("--link"))
    }
}
