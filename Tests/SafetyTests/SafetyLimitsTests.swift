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

/// Limits that used to pass validation while switching a check off (issue: hardening, item 4).
@Suite struct PermissiveLimitsTests {
    func refusedFields(_ text: String, name: String = "limits.yaml") throws -> [String] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-limits-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try SafetyLimits.load(from: path)
            return []
        } catch {
            #expect(error.file == path)
            if case .invalid(_, let problems) = error {
                for p in problems where p.message.contains("must be within") {
                    #expect(p.message.contains("…"), "the message gives the allowed range: \(p)")
                }
                return problems.map(\.field)
            }
            return ["(\(error))"]
        }
    }

    static let insertionRow = "  - {name: insertion, lower: 5,     upper: 390,  max_velocity: 22,   max_current_a: 1.5, max_tracking_error: 1.0,  max_encoder_mismatch: 0.02, stop_deceleration: 90}"

    /// Each edit of the shipped file from the issue's reproductions, and the field it must name.
    static let permissive: [(String, String, String)] = [
        ("max_velocity: 22,", "max_velocity: 1e9,", "joints[0].max_velocity"),
        ("max_tracking_error: 1.0,", "max_tracking_error: 1e9,", "joints[0].max_tracking_error"),
        ("max_encoder_mismatch: 0.02, stop_deceleration: 90", "max_encoder_mismatch: 1e9, stop_deceleration: 90", "joints[0].max_encoder_mismatch"),
        ("stop_deceleration: 90", "stop_deceleration: 1e300", "joints[0].stop_deceleration"),
        ("max_current_a: 1.5, max_tracking_error: 1.0", "max_current_a: 100, max_tracking_error: 1.0", "joints[0].max_current_a"),
        ("max_insertion_force_n: 1.5", "max_insertion_force_n: 50", "max_insertion_force_n"),
        ("lower: 5,     upper: 390", "lower: -10000, upper: 10000", "joints[0].lower"),
        ("radius_mm: [20, 20, 20]", "radius_mm: [20, 100, 20]", "lumen.radius_mm[1]"),
        ("  lost_per_s: 20", "  lost_per_s: 1e6", "link.lost_per_s"),
        ("  crc_burst: 3", "  crc_burst: 1e6", "link.crc_burst"),
        ("image_max_age_ms: 250", "image_max_age_ms: 5000", "image_max_age_ms"),
    ]

    @Test(arguments: permissive.indices)
    func aLimitThatWouldSwitchACheckOffIsRefused(_ index: Int) throws {
        let (old, new, field) = Self.permissive[index]
        let text = Fixture.limitsText.replacingOccurrences(of: old, with: new)
        #expect(text != Fixture.limitsText, "the edit applies")
        #expect(try refusedFields(text).contains(field), "\(new)")
    }

    @Test func everyJointKindHasItsOwnRanges() throws {
        // 3 rad/s is a fair roll speed but 3 mm/s is no limit for a tendon: the kinds differ.
        let roll = Fixture.limitsText.replacingOccurrences(of: "lower: -3.15, upper: 3.15", with: "lower: -20, upper: 20")
        #expect(try refusedFields(roll) == ["joints[1].lower", "joints[1].upper"])
        let tendon = Fixture.limitsText.replacingOccurrences(of: "  - {name: s1_x,      lower: -1.45, upper: 1.45, max_velocity: 4.4,",
                                                             with: "  - {name: s1_x,      lower: -1.45, upper: 1.45, max_velocity: 44,")
        #expect(try refusedFields(tendon).contains("joints[2].max_velocity"))
    }

    /// The categories hazards.md gives force, lumen, no-go and position faults are 1: 2 (power
    /// kept) was accepted, and is now refused; a stricter 0 is accepted.
    @Test(arguments: ["force", "lumen", "no_go", "position", "crc", "working_counter", "heartbeat"])
    func aCategoryCannotBeWeakerThanTheHazardFileGivesIt(_ key: String) throws {
        let weaker = Fixture.limitsText.replacingOccurrences(of: "  \(key): 1\n", with: "  \(key): 2\n")
        #expect(weaker != Fixture.limitsText)
        #expect(try refusedFields(weaker) == ["categories.\(key)"])
        let stricter = Fixture.limitsText.replacingOccurrences(of: "  \(key): 1\n", with: "  \(key): 0\n")
        #expect(try refusedFields(stricter) == [])
    }

    @Test func aControlledStopMustOutlastTheSlowestStopFromFullSpeed() throws {
        // Insertion: 22 mm/s at 90 mm/s² is 245 ms; 200 ms would cut power mid-stop.
        let short = Fixture.limitsText.replacingOccurrences(of: "max_time_ms: 300", with: "max_time_ms: 200")
        #expect(try refusedFields(short) == ["controlled_stop.max_time_ms"])
        let slow = Fixture.limitsText.replacingOccurrences(of: "max_velocity: 22,   max_current_a: 1.5, max_tracking_error: 1.0,  max_encoder_mismatch: 0.02, stop_deceleration: 90",
                                                           with: "max_velocity: 22,   max_current_a: 1.5, max_tracking_error: 1.0,  max_encoder_mismatch: 0.02, stop_deceleration: 20")
        #expect(slow != Fixture.limitsText)
        #expect(try refusedFields(slow) == ["controlled_stop.max_time_ms"])
    }

    @Test func categoriesMayBeMadeStricter() throws {
        let text = Fixture.limitsText.replacingOccurrences(of: "  deadman: 2\n", with: "  deadman: 0\n")
            .replacingOccurrences(of: "  image_stale: 2\n", with: "  image_stale: 1\n")
        #expect(try refusedFields(text) == [])
        let weaker = Fixture.limitsText.replacingOccurrences(of: "  velocity: 0\n", with: "  velocity: 1\n")
        #expect(try refusedFields(weaker) == ["categories.velocity"])
    }

    /// The shipped limits as JSON, with `edit` applied to the object before writing.
    func limitsJSON(_ edit: (inout String) -> Void = { _ in }) throws -> String {
        let object = Self.jsonObject(try Fixture.limits())
        var text = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self)
        edit(&text)
        return text
    }

    /// The limits as the JSON object of the same file format.
    static func jsonObject(_ l: SafetyLimits) -> [String: Any] {
        [
            "name": l.name, "cycle_hz": l.cycleHz,
            "joints": l.joints.map {
                ["name": $0.name, "lower": $0.lower, "upper": $0.upper, "max_velocity": $0.maxVelocity, "max_current_a": $0.maxCurrentA,
                 "max_tracking_error": $0.maxTrackingError, "max_encoder_mismatch": $0.maxEncoderMismatch, "stop_deceleration": $0.stopDeceleration]
            },
            "catheter": ["base_position_mm": l.catheter.basePositionMM, "base_rpy_rad": l.catheter.baseRPYRad,
                         "sections": l.catheter.sections.map { ["length_mm": $0.lengthMM, "tendon_radius_mm": $0.tendonRadiusMM] },
                         "tip_length_mm": l.catheter.tipLengthMM, "tip_margin_mm": l.catheter.tipMarginMM,
                         "image_tip_margin_mm": l.catheter.imageTipMarginMM] as [String: Any],
            "lumen": ["centerline_mm": l.lumen.centerlineMM, "radius_mm": l.lumen.radiusMM] as [String: Any],
            "no_go": l.noGo.map { ["name": $0.name, "center_mm": $0.centerMM, "radius_mm": $0.radiusMM] as [String: Any] },
            "heartbeat_timeout_ms": l.heartbeatTimeoutMS, "max_insertion_force_n": l.maxInsertionForceN, "image_max_age_ms": l.imageMaxAgeMS,
            "link": ["max_consecutive_lost": l.link.maxConsecutiveLost, "lost_burst": l.link.lostBurst, "lost_per_s": l.link.lostPerS,
                     "crc_burst": l.link.crcBurst, "crc_per_s": l.link.crcPerS, "wkc_burst": l.link.wkcBurst, "wkc_per_s": l.link.wkcPerS],
            "controlled_stop": ["max_time_ms": l.controlledStop.maxTimeMS, "standstill_fraction": l.controlledStop.standstillFraction],
            "categories": l.categories,
        ]
    }

    @Test func theShippedLimitsLoadAsJSONToo() throws {
        #expect(try refusedFields(try limitsJSON(), name: "limits.json") == [])
    }

    @Test func aRepeatedJSONLimitIsRefusedNotResolvedSilently() throws {
        // The issue's reproduction: the first value (50 N) used to win and pass --check.
        let text = try limitsJSON { $0 = $0.replacingOccurrences(of: "\"max_insertion_force_n\" : 1.5", with: "\"max_insertion_force_n\" : 50, \"max_insertion_force_n\" : 1.5") }
        #expect(text.contains("\"max_insertion_force_n\" : 50, \"max_insertion_force_n\" : 1.5"))
        #expect(try refusedFields(text, name: "limits.json") == ["max_insertion_force_n"])
        let nested = try limitsJSON { $0 = $0.replacingOccurrences(of: "\"crc_burst\" : 3", with: "\"crc_burst\" : 3, \"crc_burst\" : 1") }
        #expect(try refusedFields(nested, name: "limits.json") == ["link.crc_burst"])
    }

    @Test func unknownJSONFieldsAreRefusedAtEveryDepth() throws {
        for (old, new, field) in [("\"cycle_hz\" : 1000", "\"cycle_hz\" : 1000, \"cycle_hx\" : 1", "cycle_hx"),
                                  ("\"crc_burst\" : 3", "\"crc_burst\" : 3, \"crc_bursts\" : 3", "link.crc_bursts"),
                                  ("\"tip_margin_mm\" : 1", "\"tip_margin_mm\" : 1, \"tip_margins\" : 1", "catheter.tip_margins"),
                                  ("\"length_mm\" : 15", "\"length_mm\" : 15, \"lenght_mm\" : 1", "catheter.sections[1].lenght_mm"),
                                  ("\"max_time_ms\" : 300", "\"max_time_ms\" : 300, \"min_time_ms\" : 1", "controlled_stop.min_time_ms"),
                                  ("\"radius_mm\" : 3", "\"radius_mm\" : 3, \"radius\" : 3", "no_go[0].radius")] {
            let text = try limitsJSON { $0 = $0.replacingOccurrences(of: old, with: new) }
            #expect(text.contains(new), "\(new)")
            #expect(try refusedFields(text, name: "limits.json") == [field])
        }
        let joint = try limitsJSON { $0 = $0.replacingOccurrences(of: "\"name\" : \"insertion\"", with: "\"name\" : \"insertion\", \"gain\" : 1") }
        #expect(try refusedFields(joint, name: "limits.json") == ["joints[0].gain"])
    }

    /// Every object of the file, found by walking it, refuses a field it does not know.
    @Test func anUnknownFieldInAnyObjectIsRefused() throws {
        func paths(_ value: Any, _ path: String) -> [String] {
            if let d = value as? [String: Any] {
                return [path] + d.keys.sorted().flatMap { paths(d[$0] as Any, path.isEmpty ? $0 : "\(path).\($0)") }
            }
            if let a = value as? [Any] { return a.enumerated().flatMap { paths($0.element, "\(path)[\($0.offset)]") } }
            return []
        }
        func inserting(_ value: Any, at path: [String]) -> Any {
            guard var d = value as? [String: Any] else {
                guard var a = value as? [Any], let first = path.first, let i = Int(first) else { return value }
                a[i] = inserting(a[i], at: Array(path.dropFirst()))
                return a
            }
            guard let first = path.first else {
                d["zz_unknown"] = 1
                return d
            }
            d[first] = inserting(d[first] as Any, at: Array(path.dropFirst()))
            return d
        }
        let object = Self.jsonObject(try Fixture.limits())
        let objects = paths(object, "")
        #expect(objects.count == 15, "\(objects)")
        for path in objects {
            let components = path.split(whereSeparator: { ".[]".contains($0) }).map(String.init)
            let edited = inserting(object, at: components)
            let text = String(decoding: try JSONSerialization.data(withJSONObject: edited, options: [.sortedKeys]), as: UTF8.self)
            let field = path.isEmpty ? "zz_unknown" : "\(path).zz_unknown"
            #expect(try refusedFields(text, name: "limits.json") == [field], "\(field)")
        }
    }

    @Test func controlCharactersInNamesAreRefused() throws {
        let text = Fixture.limitsText.replacingOccurrences(of: "name: lumen-2s, straight vessel", with: "name: \"lumen\\e[2J\"")
            .replacingOccurrences(of: "{name: roll,", with: "{name: \"ro\\bll\",")
            .replacingOccurrences(of: "{name: aneurysm neck,", with: "{name: \"neck\\u202E\",")
        #expect(try refusedFields(text) == ["name", "joints[1].name", "no_go[0].name"])
    }

    @Test func aYAMLBillionLaughsIsRefusedAsMalformed() throws {
        // Nine levels of nine aliases to the level before: 9⁹ strings once expanded.
        var text = "l0: &l0 [" + Array(repeating: "\"lol\"", count: 9).joined(separator: ",") + "]\n"
        for level in 1...8 {
            text += "l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 9).joined(separator: ",") + "]\n"
        }
        let fields = try refusedFields(text)
        #expect(fields.count == 1 && fields[0].contains("anchors and aliases"), "\(fields)")
    }
}

/// The limits' ranges and the stop categories are written in docs/safety/hazards.md and in code;
/// these tests read the document so the two cannot drift apart.
@Suite struct HazardTraceabilityTests {
    static var hazards: String {
        (try? String(contentsOf: Fixture.root.appendingPathComponent("docs/safety/hazards.md"), encoding: .utf8)) ?? ""
    }

    /// The rows of the first markdown table after the heading `heading`, as cells.
    static func table(after heading: String) -> [[String]] {
        guard let start = hazards.range(of: "\n## \(heading)\n") else { return [] }
        var rows: [[String]] = []
        var inTable = false
        for line in hazards[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("## ") { break }
            guard line.hasPrefix("|") else {
                if inTable { break }
                continue
            }
            inTable = true
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                .map { $0.trimmingCharacters(in: .whitespaces) }
            if cells.allSatisfy({ $0.allSatisfy { $0 == "-" } }) { continue }
            rows.append(cells)
        }
        return Array(rows.dropFirst())
    }

    static func quoted(_ cell: String) -> [String] {
        cell.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }

    /// The weakest category of each check, as the traceability table gives it: the checks named
    /// (in backticks) in a row's Check column take that row's Stop cat., one for all or one each
    /// (`0 / 1 / 1`).
    static func documentedCategories() -> [String: (Int, String)] {
        var out: [String: (Int, String)] = [:]
        let keys = Set(SafetyCheck.allCases.map(\.key))
        for row in table(after: "Traceability table") where row.count >= 5 {
            let checks = quoted(row[3]).filter { keys.contains($0) }
            let numbers = row[4].split(separator: "/").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !checks.isEmpty else { continue }
            #expect(numbers.count == 1 || numbers.count == checks.count, "row \(row[0]): \(checks) against \(row[4])")
            for (i, key) in checks.enumerated() {
                #expect(out[key] == nil, "\(key) is traced in two rows")
                out[key] = (numbers.count == 1 ? numbers[0] : numbers[i], row[0])
            }
        }
        return out
    }

    @Test func everyConfigurableCheckHasTheCategoryAndHazardTheTableGivesIt() {
        let documented = Self.documentedCategories()
        #expect(documented.count == SafetyCheck.configurable.count, "\(documented.keys.sorted())")
        for check in SafetyCheck.configurable {
            guard let (category, hazard) = documented[check.key] else {
                Issue.record("\(check.key) is not in the traceability table of docs/safety/hazards.md")
                continue
            }
            #expect(check.weakestCategory.rawValue == category, "\(check.key): code \(check.weakestCategory.rawValue), hazards.md \(category)")
            #expect(check.hazard == hazard, "\(check.key): code \(check.hazard), hazards.md \(hazard)")
        }
    }

    @Test func theShippedLimitsUseTheWeakestAllowedCategories() throws {
        let limits = try Fixture.limits()
        for check in SafetyCheck.configurable {
            #expect(limits.category(check) == check.weakestCategory, "\(check.key)")
        }
    }

    /// `-50…1000` as a range.
    static func range(_ cell: String) -> ClosedRange<Double>? {
        let parts = cell.split(separator: "…").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let lo = parts[0], let hi = parts[1], lo <= hi else { return nil }
        return lo...hi
    }

    @Test func theDocumentedRangesAreTheCodesRanges() throws {
        typealias B = SafetyLimits.Bounds
        func joints(_ f: (B.Joint) -> ClosedRange<Double>) -> [String: ClosedRange<Double>] {
            ["joints[0]": f(B.insertion), "joints[1]": f(B.roll), "joints[2…]": f(B.tendon)]
        }
        var expected: [String: ClosedRange<Double>] = [
            "catheter.sections[*].length_mm": B.sectionLengthMM, "catheter.sections[*].tendon_radius_mm": B.tendonRadiusMM,
            "catheter.tip_length_mm": B.tipLengthMM, "catheter.tip_margin_mm": B.tipMarginMM,
            "catheter.image_tip_margin_mm": B.tipMarginMM,
            "catheter.base_position_mm": B.coordinateMM, "lumen.centerline_mm": B.coordinateMM, "no_go[*].center_mm": B.coordinateMM,
            "catheter.base_rpy_rad": B.baseAngleRad, "lumen.radius_mm": B.lumenRadiusMM, "no_go[*].radius_mm": B.noGoRadiusMM,
            "cycle_hz": Double(B.cycleHz.lowerBound)...Double(B.cycleHz.upperBound),
            "heartbeat_timeout_ms": B.heartbeatTimeoutMS, "max_insertion_force_n": B.maxInsertionForceN,
            "image_max_age_ms": B.imageMaxAgeMS,
            "link.max_consecutive_lost": Double(B.maxConsecutiveLost.lowerBound)...Double(B.maxConsecutiveLost.upperBound),
            "link.*_burst": B.linkBurst, "link.*_per_s": B.linkPerS,
            "controlled_stop.max_time_ms": B.controlledStopMaxTimeMS, "controlled_stop.standstill_fraction": B.standstillFraction,
            "joints[*].max_current_a": B.insertion.maxCurrentA,
        ]
        #expect(B.roll.maxCurrentA == B.insertion.maxCurrentA && B.tendon.maxCurrentA == B.insertion.maxCurrentA)
        for (prefix, r) in joints(\.travel) { expected["\(prefix).lower"] = r; expected["\(prefix).upper"] = r }
        for (field, f) in [("max_velocity", \B.Joint.maxVelocity), ("max_tracking_error", \.maxTrackingError),
                           ("max_encoder_mismatch", \.maxEncoderMismatch), ("stop_deceleration", \.stopDeceleration)] {
            for (prefix, r) in joints({ $0[keyPath: f] }) { expected["\(prefix).\(field)"] = r }
        }

        var documented: [String: ClosedRange<Double>] = [:]
        for row in Self.table(after: "Allowed ranges of the limits") where row.count >= 3 {
            guard let r = Self.range(row[2]) else { Issue.record("unreadable range \(row[2])"); continue }
            var fields = Self.quoted(row[0])
            // `joints[0].lower`, `.upper`: the second names a sibling of the first.
            if fields.count == 2, fields[1].hasPrefix("."), let dot = fields[0].lastIndex(of: ".") {
                fields[1] = String(fields[0][..<dot]) + fields[1]
            }
            for f in fields { documented[f] = r }
        }
        #expect(Set(documented.keys) == Set(expected.keys), "documented only: \(Set(documented.keys).subtracting(expected.keys).sorted()); code only: \(Set(expected.keys).subtracting(documented.keys).sorted())")
        for (field, r) in expected {
            #expect(documented[field] == r, "\(field): code \(r), hazards.md \(String(describing: documented[field]))")
        }
    }
}
