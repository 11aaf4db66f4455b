import Foundation
import Testing

/// Runs the built `lumen` tool as a user would and checks what it prints and how it exits.
struct Tool {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `lumen` binary next to this test bundle (same build configuration).
    static var binary: URL {
        let bundleDir = Bundle.main.bundleURL.deletingLastPathComponent()
        let candidates = [bundleDir.appendingPathComponent("lumen"),
                          root.appendingPathComponent(".build/debug/lumen")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[1]
    }

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
        var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any]
        }
    }

    static func run(_ args: [String]) throws -> Outcome {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.currentDirectoryURL = root
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Outcome(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }
}

@Suite(.serialized) struct CommandTests {
    let scratch: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-cli-\(UUID())")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    @Test func robotCheckAcceptsTheExampleRobotsAsJSON() throws {
        let r = try Tool.run(["robot", "check", "robots/lumen-2s.yaml", "--json"])
        #expect(r.status == 0)
        let json = try #require(r.json)
        #expect(json["name"] as? String == "lumen-2s")
        #expect((json["joints"] as? [Any])?.count == 6)
        #expect((json["home_tip_mm"] as? [Double])?.last == 50)
    }

    @Test func aBadRobotFileExitsNonZeroNamingFileAndField() throws {
        let text = try String(contentsOf: Tool.root.appendingPathComponent("robots/lumen-2s.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "length_mm: 15", with: "length_mm: -15")
        let file = scratch.appendingPathComponent("bad.yaml").path
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let r = try Tool.run(["robot", "check", file])
        #expect(r.status != 0)
        #expect(r.stderr.contains(file))
        #expect(r.stderr.contains("sections[1].length_mm"))
        #expect(r.stdout.isEmpty)
    }

    @Test func aMissingRobotFileIsAClearError() throws {
        let r = try Tool.run(["demo", "--robot", "/nonexistent/robot.yaml", "--seconds", "0.1"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("/nonexistent/robot.yaml"))
    }

    @Test func benchCycleReportsZeroAllocationsAsJSON() throws {
        let r = try Tool.run(["bench", "cycle", "--cycles", "5000", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        #expect(json["allocs_per_cycle"] as? Double == 0)
        #expect((json["p50_ns"] as? Int ?? 0) > 0)
        #expect((json["p99_ns"] as? Int ?? 0) >= (json["p50_ns"] as? Int ?? 0))
        #expect(json["cycles"] as? Int == 5000)
    }

    @Test func demoWritesItsSummaryAndPlots() throws {
        let out = scratch.appendingPathComponent("demo").path
        let r = try Tool.run(["demo", "--scripted", "--seconds", "1", "--json", "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        #expect(json["cycles"] as? Int == 1000)
        #expect(json["cycle_allocations"] as? Int == 0)
        let tracking = try #require(json["tracking"] as? [String: Any])
        // The demo runs at wall clock: a cycle that wakes milliseconds late on a loaded machine
        // moves the path's reference on by as much, so the worst error is only asked of a run
        // that kept time; the bulk of the path is asked of every run.
        #expect((tracking["p95_mm"] as? Double ?? 99) < 0.5)
        let timing = try #require(json["timing"] as? [String: Any])
        if timing["overruns"] as? Int == 0 { #expect((tracking["max_mm"] as? Double ?? 99) < 0.5) }
        for file in ["summary.json", "tip_path.png", "tracking_error.png"] {
            let attrs = try FileManager.default.attributesOfItem(atPath: out + "/" + file)
            #expect((attrs[.size] as? Int ?? 0) > 200, "\(file) is missing or empty")
        }
        // Progress goes to stderr, never into the JSON on stdout.
        #expect(r.stderr.contains("demo:"))
    }

    /// The live demo, cut short: it ends at its time limit (exit 0: the run ended as asked),
    /// having started the monitor process, and writes its summary and plots.
    @Test func theLiveDemoEndsAtItsTimeLimitAndWritesItsSummary() throws {
        let out = scratch.appendingPathComponent("demo-live").path
        let r = try Tool.run(["demo", "--time-limit", "2", "--json", "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        #expect(json["ending"] as? String == "completed")
        #expect(json["exit_code"] as? Int == 0)
        #expect(json["monitor"] as? Bool == true)
        for key in ["success", "final_err_mm", "timing", "frames_acquired", "frames_dropped", "fused", "image_only"] {
            #expect(json[key] != nil, "summary lacks \(key)")
        }
        for file in ["summary.json", "navigation.png", "fusion_error.png", "latency.png"] {
            let attrs = try FileManager.default.attributesOfItem(atPath: out + "/" + file)
            #expect((attrs[.size] as? Int ?? 0) > 200, "\(file) is missing or empty")
        }
        #expect(r.stderr.contains("live navigation"))
    }

    /// One plane gives the safety monitor no image-measured tip, and it stops image-guided motion
    /// without one: the demo refuses to navigate so, with the reason, before it starts anything
    /// (it used to start, and end in the monitor's stale-image stop 3 s in).
    @Test func theLiveDemoRefusesMonoNavigationUnderTheMonitor() throws {
        let out = scratch.appendingPathComponent("demo-mono").path
        let r = try Tool.run(["demo", "--time-limit", "5", "--planes", "1", "--out", out])
        #expect(r.status != 0)
        #expect(r.stderr.contains("biplane image tip"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out + "/summary.json"))
    }

    /// A replayed sequence is shown, never fused: the summary says the robot held, and figures
    /// with no samples are said as none, not printed as a perfect 0.00 mm.
    @Test func theLiveDemoOnAReplaySaysNothingWasFused() throws {
        let frames = scratch.appendingPathComponent("demo-replay-frames").path
        let rendered = try Tool.run(["sim", "render", "--frames", "12", "--format", "dicom", "--out", frames])
        #expect(rendered.status == 0, "\(rendered.stderr)")
        let out = scratch.appendingPathComponent("demo-replay").path
        let r = try Tool.run(["demo", "--replay", frames + "/frames.dcm", "--time-limit", "3", "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("never fused, so the robot held"), "\(r.stdout)")
        #expect(r.stdout.contains("fused error median / p95 none"), "\(r.stdout)")
        #expect(r.stdout.contains("frame to command none fused"), "\(r.stdout)")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as? [String: Any]
        #expect((summary?["fused"] as? [String: Any])?["samples"] as? Int == 0)
    }

    /// SIGTERM during the live demo: a category-1 stop, the summary still written, exit code 5.
    @Test func theLiveDemoStopsCleanlyOnSIGTERM() throws {
        let out = scratch.appendingPathComponent("demo-sigterm").path
        let p = Process()
        p.executableURL = Tool.binary
        p.arguments = ["demo", "--time-limit", "120", "--out", out]
        p.currentDirectoryURL = Tool.root
        p.standardOutput = FileHandle.nullDevice
        let log = scratch.appendingPathComponent("demo-sigterm.log").path
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try p.run()
        // Once it is going (the monitor started, the cycle supervised: its first progress line),
        // ask it to stop. Waited for, not slept for: a loaded machine may take long to get there.
        let going = Date().addingTimeInterval(90)
        while p.isRunning, Date() < going, !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("live: t ") {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(p.isRunning, "the demo ended before it was signalled: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        p.terminate()
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        #expect(p.terminationReason == .exit)
        #expect(p.terminationStatus == 5)
        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["ending"] as? String == "signal")
        #expect(json["lifecycle_at_end"] as? String == "finalized")
    }

    @Test func theNavigationDemoWritesItsSummaryAndPlots() throws {
        let out = scratch.appendingPathComponent("demo-navigate").path
        let r = try Tool.run(["demo", "--navigate", "left_subclavian", "--time-limit", "1", "--json", "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        for key in ["success", "time_s", "final_err_mm", "peak_contact_n", "peak_insertion_n", "fused", "kinematic_only", "image_only", "overruns"] {
            #expect(json[key] != nil, "summary lacks \(key)")
        }
        #expect(json["success"] as? Bool == false)  // one simulated second cannot reach the branch
        #expect((json["frames"] as? Int ?? 0) >= 14)  // biplane at 15 fps
        for file in ["summary.json", "navigation.png", "navigation_lateral.png", "navigation_zoom.png", "navigation_lateral_zoom.png"] {
            let attrs = try FileManager.default.attributesOfItem(atPath: out + "/" + file)
            #expect((attrs[.size] as? Int ?? 0) > 200, "\(file) is missing or empty")
        }
        let bad = try Tool.run(["demo", "--navigate", "nowhere", "--time-limit", "1", "--out", out])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("no vessel named 'nowhere'"))
    }

    @Test func truthMeasurementsCarryTheirNoiseAndDifferBySeed() throws {
        func run(seed: Int) throws -> [String: Any] {
            let out = scratch.appendingPathComponent("truth-\(seed)").path
            let r = try Tool.run(["eval", "navigation", "--measurements", "truth", "--runs", "1", "--seed", "\(seed)",
                                  "--max-seconds", "1", "--json", "--out", out])
            #expect(r.status == 0, "\(r.stderr)")
            return try #require(r.json)
        }
        let a = try run(seed: 1), b = try run(seed: 2)
        // |n| of a 3D normal with σ 0.1 mm has a median of 0.154 mm; 15 frames in 1 s.
        let runs = try #require(a["per_run"] as? [[String: Any]])
        let image = try #require(runs.first?["image_only"] as? [String: Any])
        let median = try #require(image["median"] as? Double)
        #expect(median > 0.08 && median < 0.25, "image-only median \(median) mm")
        #expect((image["samples"] as? Int ?? 0) >= 14)
        // The same setup (run 0) with another seed: other noise, so another fused path.
        let fa = (a["fused"] as? [String: Any])?["median"] as? Double, fb = (b["fused"] as? [String: Any])?["median"] as? Double
        #expect(fa != nil && fa != fb, "fused medians \(String(describing: fa)) and \(String(describing: fb))")
    }

    @Test func theTrackingEvalRendersOtherNoiseForAnotherSeed() throws {
        let names = ["arch-ap", "coronary-lao30", "loop-ap"]
        func errors(_ extra: [String]) throws -> [String: [Double?]] {
            let out = scratch.appendingPathComponent("tracking-\(extra.joined())").path
            let r = try Tool.run(["eval", "tracking", "--frames", "6", "--only", names.joined(separator: ","), "--json", "--out", out] + extra)
            #expect(r.status == 0, "\(r.stderr)")
            let json = try #require(r.json)
            #expect(json["noise_seed"] as? Int == Int(extra.last ?? "0"))
            let conditions = try #require(json["conditions"] as? [[String: Any]])
            return Dictionary(uniqueKeysWithValues: conditions.map { ($0["name"] as? String ?? "", ($0["err_px_per_frame"] as? [Any] ?? []).map { $0 as? Double }) })
        }
        let plain = try errors([]), zero = try errors(["--seed", "0"]), other = try errors(["--seed", "7"])
        #expect(Set(plain.keys) == Set(names) && plain == zero, "seed 0 must be the default noise")
        // Other quantum noise moves a sub-pixel tip estimate in every sequence.
        for name in names { #expect(plain[name] != other[name], "\(name) did not change with the seed") }
        let bad = try Tool.run(["eval", "tracking", "--only", "arch-ap,nowhere"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("no condition named 'nowhere'"))
        // An overlay of a sequence that does not run would silently write nothing.
        let badOverlay = try Tool.run(["eval", "tracking", "--only", "arch-ap", "--overlay", "loop-ap"])
        #expect(badOverlay.status != 0)
        #expect(badOverlay.stderr.contains("--overlay: 'loop-ap' is not among the conditions run"))
    }

    @Test func invalidOptionsAreRefusedBeforeRunning() throws {
        let r = try Tool.run(["bench", "loop", "--rate", "0"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("--rate"))
    }
}
