import Core
import Foundation
import Scenarios
import Testing

/// The HIL scenario loader: a valid file loads; every kind of mistake is refused, naming the
/// file and the field path.
struct HILScenarioLoaderTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let robot = root.appendingPathComponent("robots/lumen-2s.yaml").path

    static let valid = """
    name: t
    setup: {robot: \(robot), link: serial, drives: ideal, rate_hz: 1000, duration_s: 2}
    steps:
      - {at: 0.1, do: enable, label: on}
      - {at: 0.2, do: move, axis: 0, by: 2, duration: 0.5}
      - {at: 0.5, do: inject, fault: drop, rate: 1, label: loss}
    expect:
      - {name: a, kind: range, signal: following_error, axis: 0, min: -1, max: 1}
      - {name: b, kind: stop, after: loss, reason: link_lost, category: 0, within: 0.5}
      - {name: c, kind: counter, counter: rejected, max: 0}
      - {name: d, kind: settle, signal: travel, axis: 0, value: 2, tolerance: 0.1, by: 1.5}
      - {name: e, kind: drive_unpowered, after: loss, cause: watchdog, within: 0.5}
    """

    /// Writes `text` to a scenario file and loads it; returns the scenario or the refusal's problems.
    static func load(_ text: String, name: String = "s.yaml") -> Result<HILScenario, HILLoadError> {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hil-loader-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent(name).path
        FileManager.default.createFile(atPath: file, contents: Data(text.utf8))
        do { return .success(try HILScenario.load(file)) } catch { return .failure(error) }
    }

    static func problems(_ text: String) -> [ConfigProblem] {
        guard case .failure(let e) = load(text) else { return [] }
        if case .invalid(_, let p) = e.underlying { return p }
        return [ConfigProblem(field: "(file)", message: e.description)]
    }

    /// The valid text with `old` replaced by `new`.
    static func mutated(_ old: String, _ new: String) -> String {
        precondition(valid.contains(old), "test text lacks \(old)")
        return valid.replacingOccurrences(of: old, with: new)
    }

    static func expectRefused(_ text: String, field: String, saying words: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let p = problems(text)
        #expect(p.contains { $0.field == field && $0.message.contains(words) },
                "expected \(field): …\(words)…, got \(p.map(\.description))", sourceLocation: sourceLocation)
    }

    @Test func aValidScenarioLoads() throws {
        let s = try Self.load(Self.valid).get()
        #expect(s.steps.count == 3)
        #expect(s.expect.count == 5)
        #expect(s.injectedFaults == [.drop])
        #expect(s.hasFaultSteps)
    }

    @Test func everyShippedScenarioLoads() throws {
        let folder = Self.root.appendingPathComponent("hil/scenarios")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }
        #expect(files.count >= 8)
        for f in files {
            #expect(throws: Never.self, "\(f)") { _ = try HILScenario.load(folder.appendingPathComponent(f).path) }
        }
    }

    @Test func unknownFieldsAreRefusedAtEveryLevel() {
        Self.expectRefused(Self.mutated("name: t", "name: t\ncolour: red"), field: "colour", saying: "unknown field")
        Self.expectRefused(Self.mutated("rate_hz: 1000", "rate_hz: 1000, speed: 2"), field: "setup.speed", saying: "unknown field")
        Self.expectRefused(Self.mutated("{at: 0.1, do: enable, label: on}", "{at: 0.1, do: enable, label: on, axes: 2}"), field: "steps[0].axes", saying: "unknown field")
        Self.expectRefused(Self.mutated("{name: c, kind: counter, counter: rejected, max: 0}", "{name: c, kind: counter, counter: rejected, max: 0, maximum: 1}"),
                           field: "expect[2].maximum", saying: "unknown field")
    }

    @Test func missingFieldsAreNamed() {
        Self.expectRefused(Self.mutated("name: t\n", ""), field: "name", saying: "missing")
        Self.expectRefused(Self.mutated(", duration_s: 2", ""), field: "setup.duration_s", saying: "missing")
        Self.expectRefused(Self.mutated("{at: 0.2, do: move, axis: 0, by: 2, duration: 0.5}", "{at: 0.2, do: move, axis: 0, by: 2}"),
                           field: "steps[1].duration", saying: "missing")
        Self.expectRefused(Self.mutated("{at: 0.5, do: inject, fault: drop, rate: 1, label: loss}", "{at: 0.5, do: inject, fault: drop, label: loss}"),
                           field: "steps[2].rate", saying: "missing")
        Self.expectRefused(Self.mutated("reason: link_lost, category: 0, within: 0.5}", "reason: link_lost, category: 0}"), field: "expect[1].within", saying: "missing")
    }

    @Test func unknownNamesAreRefused() {
        Self.expectRefused(Self.mutated("do: enable", "do: enabel"), field: "steps[0].do", saying: "one of: enable, disable, move")
        Self.expectRefused(Self.mutated("fault: drop", "fault: flood"), field: "steps[2].fault", saying: "one of: drop, corrupt")
        Self.expectRefused(Self.mutated("kind: range", "kind: ranges"), field: "expect[0].kind", saying: "one of: range, settle")
        Self.expectRefused(Self.mutated("signal: following_error, axis: 0", "signal: speed, axis: 0"), field: "expect[0].signal", saying: "unknown signal")
        Self.expectRefused(Self.mutated("signal: following_error, axis: 0", "signal: following_error"), field: "expect[0].axis", saying: "per-axis signal")
        Self.expectRefused(Self.mutated("signal: following_error, axis: 0", "signal: active, axis: 0"), field: "expect[0].axis", saying: "not a per-axis signal")
        Self.expectRefused(Self.mutated("counter: rejected", "counter: crc"), field: "expect[2].counter", saying: "unknown counter")
        Self.expectRefused(Self.mutated("after: loss, reason", "after: lost, reason"), field: "expect[1].after", saying: "no step is labelled 'lost'")
        Self.expectRefused(Self.mutated("link: serial", "link: can:0"), field: "setup.link", saying: "unknown link")
        Self.expectRefused(Self.mutated("drives: ideal", "drives: perfect"), field: "setup.drives", saying: "ideal or emulated")
    }

    @Test func countersAreJudgedOverAWindowAndAsSignals() throws {
        let windowed = Self.mutated("{name: c, kind: counter, counter: rejected, max: 0}", "{name: c, kind: counter, counter: rejected, max: 0, from: 0.1, to: 0.5}")
        let w = try Self.load(windowed).get()
        #expect(w.expect[2].from == 0.1)
        #expect(w.expect[2].to == 0.5)
        Self.expectRefused(Self.mutated("{name: c, kind: counter, counter: rejected, max: 0}", "{name: c, kind: counter, counter: rejected, max: 0, from: 1.5, to: 0.5}"),
                           field: "expect[2].to", saying: "must not come before from")
        Self.expectRefused(Self.mutated("{name: c, kind: counter, counter: rejected, max: 0}", "{name: c, kind: counter, counter: rejected, max: 0, to: 9}"),
                           field: "expect[2].to", saying: "within the run")
        let signal = try Self.load(Self.mutated("signal: following_error, axis: 0", "signal: counter.rejected")).get()
        #expect(signal.expect[0].signalName == "counter.rejected")
        Self.expectRefused(Self.mutated("signal: following_error, axis: 0", "signal: counter.crc"), field: "expect[0].signal", saying: "counter.COUNTER")
        Self.expectRefused(Self.mutated("signal: following_error, axis: 0", "signal: counter.rejected, axis: 0"), field: "expect[0].axis", saying: "not a per-axis signal")
    }

    @Test func fieldsThatDoNotBelongToTheActionOrKindAreRefused() {
        Self.expectRefused(Self.mutated("{at: 0.1, do: enable, label: on}", "{at: 0.1, do: enable, label: on, axis: 1}"), field: "steps[0].axis", saying: "not a field of a 'enable' step")
        Self.expectRefused(Self.mutated("{name: c, kind: counter, counter: rejected, max: 0}", "{name: c, kind: counter, counter: rejected, max: 0, within: 1}"),
                           field: "expect[2].within", saying: "not a field of a 'counter' expectation")
        Self.expectRefused(Self.mutated("axis: 0, by: 2", "axis: 0, by: 2, to: 3"), field: "steps[1]", saying: "exactly one of to")
        Self.expectRefused(Self.mutated("fault: drop, rate: 1", "fault: drop, rate: 1, axis: 0"), field: "steps[2]", saying: "takes rate only")
    }

    @Test func valuesOutOfRangeAreRefused() {
        Self.expectRefused(Self.mutated("duration_s: 2", "duration_s: 0"), field: "setup.duration_s", saying: "within")
        Self.expectRefused(Self.mutated("rate_hz: 1000", "rate_hz: 50"), field: "setup.rate_hz", saying: "within")
        Self.expectRefused(Self.mutated("{at: 0.5, do: inject", "{at: 3, do: inject"), field: "steps[2].at", saying: "within")
        Self.expectRefused(Self.mutated("fault: drop, rate: 1", "fault: drop, rate: 1.5"), field: "steps[2].rate", saying: "within")
        Self.expectRefused(Self.mutated("category: 0", "category: 3"), field: "expect[1].category", saying: "0, 1 or 2")
        Self.expectRefused(Self.mutated("min: -1, max: 1", "min: 1, max: -1"), field: "expect[0].min", saying: "must not exceed max")
        Self.expectRefused(Self.mutated("tolerance: 0.1", "tolerance: 0"), field: "expect[3].tolerance", saying: "> 0")
        Self.expectRefused(Self.mutated("axis: 0, by: 2", "axis: 7, by: 2"), field: "steps[1].axis", saying: "6 axes")
        Self.expectRefused(Self.mutated("signal: following_error, axis: 0", "signal: following_error, axis: 6"), field: "expect[0].axis", saying: "6 axes")
    }

    @Test func stepsOutOfOrderLabelsTwiceAndNamesTwiceAreRefused() {
        Self.expectRefused(Self.mutated("{at: 0.2, do: move", "{at: 0.05, do: move"), field: "steps[1].at", saying: "time order")
        Self.expectRefused(Self.mutated("label: loss}", "label: on}"), field: "steps[2].label", saying: "labels another step")
        Self.expectRefused(Self.mutated("{name: c,", "{name: a,"), field: "expect[2].name", saying: "names another expectation")
    }

    @Test func aScenarioThatChecksNothingIsRefused() {
        let text = Self.valid.components(separatedBy: "expect:")[0] + "expect: []\n"
        Self.expectRefused(text, field: "expect", saying: "cannot fail")
    }

    @Test func injectionsThatNeedEmulatedDynamicsSayHow() {
        Self.expectRefused(Self.mutated("fault: drop, rate: 1", "fault: encoder_freeze, axis: 0"), field: "steps[2].fault", saying: "setup.drives: emulated")
    }

    @Test func monitorStepsAndChecksNeedTheLimitsFileAndAKnownCheck() {
        Self.expectRefused(Self.mutated("{at: 0.1, do: enable, label: on}", "{at: 0.1, do: monitor_kill, label: on}"), field: "steps[0].do", saying: "setup.limits")
        Self.expectRefused(Self.mutated("{name: c, kind: counter, counter: rejected, max: 0}", "{name: c, kind: monitor_stop, after: loss, within: 1}"),
                           field: "expect[2].kind", saying: "setup.limits")
        let withLimits = Self.mutated("duration_s: 2}", "duration_s: 2, limits: \(Self.root.appendingPathComponent("hil/scenarios/limits/lumen-2s-bench.yaml").path)}")
        Self.expectRefused(withLimits.replacingOccurrences(of: "{name: c, kind: counter, counter: rejected, max: 0}", with: "{name: c, kind: monitor_stop, check: speed, after: loss, within: 1}"),
                           field: "expect[2].check", saying: "unknown check 'speed'")
        Self.expectRefused(Self.mutated("duration_s: 2}", "duration_s: 2, limits: /nonexistent/limits.yaml}"), field: "setup.limits", saying: "cannot load")
        Self.expectRefused(Self.mutated("fault: drop, rate: 1", "fault: force"), field: "steps[2].force_n", saying: "missing")
        Self.expectRefused(Self.mutated("{name: c, kind: counter, counter: rejected, max: 0}", "{name: c, kind: leaves, signal: active, after: loss, within: 1}"),
                           field: "expect[2]", saying: "leaves gives min, max or both")
        if case .failure(let e) = Self.load(withLimits) { Issue.record("a scenario with the bench limits must load: \(e)") }
    }

    @Test func aMissingRobotFileIsNamed() {
        Self.expectRefused(Self.mutated("robot: \(Self.robot)", "robot: /nonexistent/robot.yaml"), field: "setup.robot", saying: "cannot load")
    }

    @Test func malformedYAMLAndTheWrongExtensionAreRefusedWithTheFile() {
        guard case .failure(let e) = Self.load("name: [unclosed") else { Issue.record("loaded"); return }
        #expect(e.description.contains("s.yaml"))
        guard case .failure(let e2) = Self.load(Self.valid, name: "s.txt") else { Issue.record("loaded"); return }
        #expect(e2.description.contains("unsupported format"))
        guard case .failure(let e3) = Self.load("a: &x 1\nb: *x\n") else { Issue.record("loaded"); return }
        #expect(e3.description.contains("s.yaml"))
    }
}
