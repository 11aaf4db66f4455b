import Foundation
import Testing
@testable import Core

/// A small configuration to exercise the loader's error paths.
struct Limits: ValidatedConfig, Equatable {
    var name: String
    var maxForceN: Double
    var axes: [Axis]

    struct Axis: Decodable, Equatable {
        var lower: Double
        var upper: Double
        enum CodingKeys: String, CodingKey, CaseIterable { case lower, upper }
        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            lower = try c.decode(Double.self, forKey: .lower)
            upper = try c.decode(Double.self, forKey: .upper)
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name
        case maxForceN = "max_force_n"
        case axes
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        maxForceN = try c.decode(Double.self, forKey: .maxForceN)
        axes = try c.decode([Axis].self, forKey: .axes)
    }

    func validate(into v: inout ConfigValidator) {
        v.checkName(name, "name")
        v.checkPositive(maxForceN, "max_force_n")
        for (i, a) in axes.enumerated() {
            v.check(a.lower < a.upper, "axes[\(i)]", "lower (\(a.lower)) must be below upper (\(a.upper))")
        }
    }
}

@Suite struct ConfigLoaderTests {
    func decodeYAML(_ text: String) throws(ConfigError) -> Limits {
        try ConfigLoader.decode(Limits.self, yaml: text, file: "limits.yaml")
    }

    func problems(_ text: String) -> [ConfigProblem] {
        do {
            _ = try decodeYAML(text)
            return []
        } catch {
            if case .invalid(let file, let p) = error, file == "limits.yaml" { return p }
            return [ConfigProblem(field: "?", message: "\(error)")]
        }
    }

    @Test func validYAMLAndJSONDecodeToTheSameValue() throws {
        let yaml = try decodeYAML("name: arm\nmax_force_n: 2.5\naxes:\n  - {lower: 0, upper: 300}\n")
        let json = try ConfigLoader.decode(Limits.self, json: Data(#"{"name":"arm","max_force_n":2.5,"axes":[{"lower":0,"upper":300}]}"#.utf8), file: "l.json")
        #expect(yaml == json)
        #expect(yaml.axes[0].upper == 300)
    }

    @Test func missingFieldIsNamed() {
        #expect(problems("name: arm\naxes: []\n") == [ConfigProblem(field: "max_force_n", message: "missing")])
        #expect(problems("name: arm\nmax_force_n: 1\naxes:\n  - {lower: 0}\n").map(\.field) == ["axes[0].upper"])
    }

    @Test func wrongTypeIsNamed() {
        let p = problems("name: arm\nmax_force_n: strong\naxes: []\n")
        #expect(p.map(\.field) == ["max_force_n"])
        #expect(p.first?.message == "expected a number")
    }

    @Test func unknownFieldIsRefusedNotIgnored() {
        #expect(problems("name: arm\nmax_force_n: 1\nmax_forse_n: 2\naxes: []\n") == [ConfigProblem(field: "max_forse_n", message: "unknown field")])
        #expect(problems("name: arm\nmax_force_n: 1\naxes:\n  - {lower: 0, upper: 1, uper: 2}\n").map(\.field) == ["axes[0].uper"])
    }

    @Test func everyOutOfRangeValueIsReported() {
        let p = problems("name: arm\nmax_force_n: -1\naxes:\n  - {lower: 5, upper: 1}\n  - {lower: 0, upper: 1}\n  - {lower: 2, upper: 2}\n")
        #expect(p.map(\.field) == ["max_force_n", "axes[0]", "axes[2]"])
    }

    @Test func nanAndInfinityAreOutOfRange() {
        #expect(problems("name: arm\nmax_force_n: .nan\naxes: []\n").map(\.field) == ["max_force_n"])
        #expect(problems("name: arm\nmax_force_n: .inf\naxes: []\n").map(\.field) == ["max_force_n"])
    }

    @Test func malformedTextIsMalformedNotInvalid() {
        #expect(throws: ConfigError.self) { try decodeYAML("name: [unclosed\n") }
        do {
            _ = try decodeYAML("name: [unclosed\n")
        } catch {
            guard case .malformed(let file, _) = error else { Issue.record("expected .malformed, got \(error)"); return }
            #expect(file == "limits.yaml")
        }
    }

    @Test func filesAreReadByExtensionAndMissingFilesAreNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-config-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let yml = dir.appendingPathComponent("a.yml").path
        try "name: arm\nmax_force_n: 3\naxes: []\n".write(toFile: yml, atomically: true, encoding: .utf8)
        #expect(try ConfigLoader.load(Limits.self, from: yml).maxForceN == 3)

        let txt = dir.appendingPathComponent("a.txt").path
        try "x".write(toFile: txt, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.unsupportedFormat(file: txt)) { try ConfigLoader.load(Limits.self, from: txt) }

        let missing = dir.appendingPathComponent("nope.yaml").path
        do {
            _ = try ConfigLoader.load(Limits.self, from: missing)
            Issue.record("a missing file loaded")
        } catch {
            guard case .unreadable(let file, _) = error else { Issue.record("expected .unreadable, got \(error)"); return }
            #expect(file == missing)
            #expect(error.description.hasPrefix(missing))
        }
    }
}
