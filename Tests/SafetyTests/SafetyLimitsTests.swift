import Core
import Foundation
import Testing
@testable import Safety

@Suite struct SafetyLimitsTests {
    func write(_ text: String, name: String = "limits.yaml") throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-limits-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The fields named in the refusal of `text` (the example file with edits).
    func refusal(_ text: String) throws -> ConfigError {
        let path = try write(text)
        do {
            _ = try SafetyLimits.load(from: path)
        } catch {
            #expect(error.file == path, "the error names the file")
            return error
        }
        Issue.record("limits were accepted")
        return .unsupportedFormat(file: "")
    }

    func fields(_ e: ConfigError) -> [String] {
        if case .invalid(_, let problems) = e { return problems.map(\.field) }
        return []
    }

    @Test func theExampleLoadsWithTheHashOfItsBytes() throws {
        let (limits, hash) = try SafetyLimits.load(from: Fixture.limitsPath)
        #expect(limits.joints.count == 6)
        #expect(limits.category(.velocity) == .zero)
        #expect(limits.category(.deadman) == .two)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Fixture.limitsPath))
        #expect(hash == SHA256.hex(bytes))
        // One changed byte, a different hash.
        let path = try write(Fixture.limitsText.replacingOccurrences(of: "heartbeat_timeout_ms: 5", with: "heartbeat_timeout_ms: 6"))
        #expect(try SafetyLimits.load(from: path).sha256 != hash)
    }

    @Test func aMissingFileIsRefusedNamingIt() {
        let path = "/nonexistent/limits.yaml"
        #expect(throws: ConfigError.unreadable(file: path, reason: "no such file")) { try SafetyLimits.load(from: path) }
    }

    @Test func malformedTextIsRefused() throws {
        let e = try refusal("name: [unclosed\n")
        guard case .malformed = e else { Issue.record("expected malformed, got \(e)"); return }
    }

    @Test func outOfRangeValuesAreEachNamed() throws {
        var text = Fixture.limitsText
        text = text.replacingOccurrences(of: "heartbeat_timeout_ms: 5", with: "heartbeat_timeout_ms: 500")
        text = text.replacingOccurrences(of: "max_insertion_force_n: 1.5", with: "max_insertion_force_n: -1")
        text = text.replacingOccurrences(of: "lower: 5,     upper: 390", with: "lower: 395,   upper: 390")
        text = text.replacingOccurrences(of: "tip_margin_mm: 1.0", with: "tip_margin_mm: .nan")
        let f = fields(try refusal(text))
        #expect(f.contains("heartbeat_timeout_ms"))
        #expect(f.contains("max_insertion_force_n"))
        #expect(f.contains("joints[0]"))
        #expect(f.contains("catheter.tip_margin_mm"))
    }

    @Test func anUnknownKeyIsRefusedNotIgnored() throws {
        let text = Fixture.limitsText.replacingOccurrences(of: "heartbeat_timeout_ms: 5", with: "heartbeat_timeout_ms: 5\nheartbeat_timout_ms: 50")
        #expect(fields(try refusal(text)) == ["heartbeat_timout_ms"])
        let nested = Fixture.limitsText.replacingOccurrences(of: "  crc_burst: 3", with: "  crc_burst: 3\n  crc_bursts: 3")
        #expect(fields(try refusal(nested)) == ["link.crc_bursts"])
    }

    @Test func categoriesMustBeCompleteKnownAndSafe() throws {
        let missing = Fixture.limitsText.replacingOccurrences(of: "  force: 1\n", with: "")
        #expect(fields(try refusal(missing)) == ["categories.force"])
        let unknown = Fixture.limitsText.replacingOccurrences(of: "  force: 1\n", with: "  force: 1\n  forse: 1\n")
        #expect(fields(try refusal(unknown)) == ["categories.forse"])
        let weak = Fixture.limitsText.replacingOccurrences(of: "  heartbeat: 1\n", with: "  heartbeat: 2\n")
        let e = try refusal(weak)
        #expect(fields(e) == ["categories.heartbeat"])
        #expect(e.description.contains("without the control cycle"))
        let bad = Fixture.limitsText.replacingOccurrences(of: "  deadman: 2\n", with: "  deadman: 3\n")
        #expect(fields(try refusal(bad)) == ["categories.deadman"])
    }

    @Test func jointsMustMatchTheCatheterSections() throws {
        let text = Fixture.limitsText.replacingOccurrences(of: "    - {length_mm: 15, tendon_radius_mm: 0.8}\n", with: "")
        #expect(fields(try refusal(text)).contains("joints"))
    }

    @Test func theLumenNeedsOneRadiusPerPoint() throws {
        let text = Fixture.limitsText.replacingOccurrences(of: "radius_mm: [20, 20, 20]", with: "radius_mm: [20, 20]")
        #expect(fields(try refusal(text)) == ["lumen.radius_mm"])
    }
}
