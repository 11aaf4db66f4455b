import Foundation
import Testing
@testable import Core

/// The classic "billion laughs": nine levels of ten aliases each, 10⁹ strings once expanded.
let billionLaughsYAML = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]

"""

@Suite struct ConfigHardeningTests {
    func json(_ text: String) throws(ConfigError) -> Limits {
        try ConfigLoader.decode(Limits.self, json: Data(text.utf8), file: "n.json")
    }

    func yaml(_ text: String) throws(ConfigError) -> Limits {
        try ConfigLoader.decode(Limits.self, yaml: text, file: "n.yaml")
    }

    func error(_ body: () throws(ConfigError) -> Limits) -> ConfigError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error
        }
    }

    @Test func aRepeatedJSONFieldIsRefusedNamingItsPathAndBothPlaces() throws {
        let e = error { () throws(ConfigError) in try json("{\"name\": \"a\",\n \"name\": \"b\", \"max_force_n\": 1, \"axes\": []}") }
        guard case .invalid(let file, let problems)? = e else { Issue.record("expected .invalid, got \(String(describing: e))"); return }
        #expect(file == "n.json")
        #expect(problems.map(\.field) == ["name"])
        #expect(problems.first?.location == TextLocation(line: 2, column: 2))
        #expect(problems.first?.message.contains("first at line 1, column 2") == true)
        #expect(e?.description.contains("name (line 2, column 2): duplicate field") == true)

        let nested = error { () throws(ConfigError) in try json(#"{"name": "a", "max_force_n": 1, "axes": [{"lower": 0, "upper": 1}, {"upper": 50, "lower": 0, "upper": 1.5}]}"#) }
        guard case .invalid(_, let p)? = nested else { Issue.record("expected .invalid, got \(String(describing: nested))"); return }
        #expect(p.map(\.field) == ["axes[1].upper"])
    }

    @Test func theSameKeyInDifferentObjectsIsNotARepeat() throws {
        let n = try json(#"{"name": "a", "max_force_n": 1, "axes": [{"lower": 0, "upper": 1}, {"lower": 0, "upper": 2}]}"#)
        #expect(n.axes.map(\.upper) == [1, 2])
    }

    @Test func keysAreComparedAsJSONMeansThem() {
        // "na\u006De" is "name": the same field written twice.
        let e = error { () throws(ConfigError) in try json(#"{"name": "a", "na\u006De": "b", "max_force_n": 1, "axes": []}"#) }
        guard case .invalid(_, let p)? = e else { Issue.record("expected .invalid, got \(String(describing: e))"); return }
        #expect(p.map(\.field) == ["name"])
    }

    @Test func aJSONSyntaxErrorNamesLineAndColumn() {
        let e = error { () throws(ConfigError) in try json("{\n  \"name\": \"a\"\n  \"axes\": []\n}") }
        guard case .malformed(let file, let reason)? = e else { Issue.record("expected .malformed, got \(String(describing: e))"); return }
        #expect(file == "n.json")
        #expect(reason.hasPrefix("line 3, column 3:"), "\(reason)")
        #expect(reason.contains("expected ',' or '}'"))

        for (text, at) in [("{\"name\": tru}", "line 1, column 10"), ("{\"name\": \"a\", \"axes\": [1,]}", "line 1, column 26"),
                           ("", "line 1, column 1"), ("{} {}", "line 1, column 4"), ("{\"name\": 01}", "line 1, column 10"),
                           ("{\"name\": \"\u{1B}\"}", "line 1, column 11"), ("{\"n\u{E9}\": x}", "line 1, column 8")] {
            let e = error { () throws(ConfigError) in try json(text) }
            guard case .malformed(_, let reason)? = e else { Issue.record("\(text): expected .malformed, got \(String(describing: e))"); continue }
            #expect(reason.hasPrefix(at), "\(text): \(reason)")
        }
    }

    @Test func deepJSONNestingIsRefusedNotRecursedInto() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let e = error { () throws(ConfigError) in try json(deep) }
        guard case .malformed(_, let reason)? = e else { Issue.record("expected .malformed, got \(String(describing: e))"); return }
        #expect(reason.contains("nested deeper than \(StrictJSON.maxDepth)"))
    }

    @Test func unknownFieldsAreRefusedInJSONAtEveryDepth() {
        let top = error { () throws(ConfigError) in try json(#"{"name": "a", "max_force_n": 1, "axes": [], "extra": 1}"#) }
        #expect(top == .invalid(file: "n.json", problems: [ConfigProblem(field: "extra", message: "unknown field")]))
        let nested = error { () throws(ConfigError) in try json(#"{"name": "a", "max_force_n": 1, "axes": [{"lower": 0, "upper": 1, "colour": 2}]}"#) }
        #expect(nested == .invalid(file: "n.json", problems: [ConfigProblem(field: "axes[0].colour", message: "unknown field")]))
    }

    @Test func problemsAfterParsingNameTheirLineToo() {
        let yamlError = error { () throws(ConfigError) in try yaml("name: arm\nmax_force_n: 1\naxes:\n  - {lower: 0, upper: 1}\n  - {lower: 5, upper: 1, uper: 2}\n") }
        guard case .invalid(_, let p)? = yamlError else { Issue.record("expected .invalid, got \(String(describing: yamlError))"); return }
        #expect(p.map(\.field) == ["axes[1].uper"])
        #expect(p.first?.location == TextLocation(line: 5, column: 32))

        let range = error { () throws(ConfigError) in try json("{\"name\": \"arm\",\n \"max_force_n\": -1, \"axes\": []}") }
        guard case .invalid(_, let q)? = range else { Issue.record("expected .invalid, got \(String(describing: range))"); return }
        #expect(q.first?.location == TextLocation(line: 2, column: 17))
        #expect(range?.description.contains("max_force_n (line 2, column 17): must be") == true)

        // A missing field is placed at the object that lacks it.
        let missing = error { () throws(ConfigError) in try json("{\"name\": \"arm\", \"max_force_n\": 1,\n \"axes\": [{\"lower\": 0}]}") }
        guard case .invalid(_, let m)? = missing else { Issue.record("expected .invalid, got \(String(describing: missing))"); return }
        #expect(m.map(\.field) == ["axes[0].upper"])
        #expect(m.first?.location == TextLocation(line: 2, column: 11))
    }

    @Test func aRepeatedYAMLFieldIsRefusedWithItsLine() {
        let e = error { () throws(ConfigError) in try yaml("name: a\nmax_force_n: 1\naxes: []\nname: b\n") }
        guard case .malformed(_, let reason)? = e else { Issue.record("expected .malformed, got \(String(describing: e))"); return }
        #expect(reason.contains("duplicate field 'name'"))
        #expect(reason.hasPrefix("line 1, column 1"), "\(reason)")
        #expect(!reason.contains("axes: []"), "the error does not repeat the file")
    }

    @Test func theBillionLaughsIsRefusedAtItsFirstAnchorWithoutExpanding() {
        #expect(billionLaughsYAML.utf8.count < 400)
        let e = error { () throws(ConfigError) in try yaml(billionLaughsYAML) }
        guard case .malformed(let file, let reason)? = e else { Issue.record("expected .malformed, got \(String(describing: e))"); return }
        #expect(file == "n.yaml")
        #expect(reason.hasPrefix("line 1, column 4"), "\(reason)")
        #expect(reason.contains("anchors and aliases"))
    }

    /// The parser hashes mapping keys whole: an alias used as a key would be expanded while
    /// parsing, before any check of the parsed tree could run.
    @Test func anAliasUsedAsAKeyIsRefusedBeforeParsing() {
        let e = error { () throws(ConfigError) in try yaml(billionLaughsYAML + "? *i\n: x\n") }
        guard case .malformed(_, let reason)? = e else { Issue.record("expected .malformed, got \(String(describing: e))"); return }
        #expect(reason.hasPrefix("line 1, column 4"), "\(reason)")
        #expect(StrictYAML.firstAnchorToken(in: "a: \"x &y\" # &z\nb: 'p &q'\nc: [&r 1]\n") == TextLocation(line: 3, column: 5))
        #expect(StrictYAML.firstAnchorToken(in: "name: R&D & co\nnote: \"\\\" &x\"\n") == nil)
    }

    @Test func anyAnchorOrAliasIsRefused() {
        let e = error { () throws(ConfigError) in try yaml("name: a\nmax_force_n: 1\naxes:\n  - &p {lower: 0, upper: 1}\n  - *p\n") }
        guard case .malformed(_, let reason)? = e else { Issue.record("expected .malformed, got \(String(describing: e))"); return }
        #expect(reason.hasPrefix("line 4, column 5"), "\(reason)")
        // Asterisks and ampersands inside values are just text.
        #expect((try? yaml("name: x*y & *z\nmax_force_n: 1\naxes: []\n"))?.name == "x*y & *z")
    }

    @Test func aYAMLSyntaxErrorNamesLineAndColumn() {
        let e = error { () throws(ConfigError) in try yaml("name: a\naxes: [unclosed\n") }
        guard case .malformed(_, let reason)? = e else { Issue.record("expected .malformed, got \(String(describing: e))"); return }
        #expect(reason.hasPrefix("line "), "\(reason)")
        #expect(reason.contains("column"))
    }

    @Test(arguments: ["robot\u{1B}[2J", "a\u{7}b", "tab\there", "new\nline", "rtl\u{202E}txt", "nul\u{0}"])
    func controlCharactersInNamesAreRefused(_ name: String) throws {
        let quoted = String(decoding: try JSONEncoder().encode(name), as: UTF8.self)
        let e = error { () throws(ConfigError) in try json("{\"name\": \(quoted), \"max_force_n\": 1, \"axes\": []}") }
        guard case .invalid(_, let problems)? = e else { Issue.record("expected .invalid, got \(String(describing: e))"); return }
        #expect(problems.map(\.field) == ["name"])
        #expect(problems.first?.message.contains("control characters") == true)
        #expect(e?.description.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" } == false)
    }

    @Test func ordinaryNamesPass() throws {
        for name in ["lumen-2s, straight vessel", "Gefäß № 3 (links)", "aneurysm neck"] {
            var v = ConfigValidator()
            v.checkName(name, "name")
            #expect(v.problems.isEmpty, "\(name)")
        }
        var v = ConfigValidator()
        v.checkName(String(repeating: "x", count: ConfigValidator.maxNameLength + 1), "name")
        v.checkName("", "other")
        #expect(v.problems.map(\.field) == ["name", "other"])
    }

    @Test func errorDescriptionsEscapeWhatATerminalWouldActOn() {
        let e = ConfigError.invalid(file: "x.json", problems: [ConfigProblem(field: "a\u{1B}[31m", message: "unknown field")])
        #expect(e.description.contains("a\\u{1B}[31m"))
        #expect(!e.description.unicodeScalars.contains("\u{1B}"))
    }
}

@Suite struct ConfigFileInputTests {
    let dir: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-config-input-\(UUID())")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    func unreadableReason(_ path: String) -> String? {
        do {
            _ = try ConfigLoader.load(Limits.self, from: path)
            return nil
        } catch {
            guard case .unreadable(let file, let reason) = error, file == path else { return "unexpected: \(error)" }
            return reason
        }
    }

    @Test func aDirectoryIsNotARegularFile() throws {
        let d = dir.appendingPathComponent("robot.yaml")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        #expect(unreadableReason(d.path) == "not a regular file (a directory)")
    }

    @Test func aFIFOIsRefusedWithoutWaitingForAWriter() throws {
        let fifo = dir.appendingPathComponent("limits.yaml").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // Without O_NONBLOCK this open would block forever: no writer ever comes.
        #expect(unreadableReason(fifo) == "not a regular file (a FIFO (named pipe))")
    }

    @Test func aDeviceIsNotARegularFile() throws {
        let link = dir.appendingPathComponent("zero.json")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: "/dev/zero")
        #expect(unreadableReason(link.path) == "not a regular file (a character device)")
    }

    @Test func aFileOverTheCapIsRefusedBeforeParsing() throws {
        let big = dir.appendingPathComponent("big.yaml")
        try Data(repeating: UInt8(ascii: "#"), count: ConfigLoader.maxFileBytes + 1).write(to: big)
        #expect(unreadableReason(big.path)?.hasPrefix("too large: \(ConfigLoader.maxFileBytes + 1) bytes, the cap is \(ConfigLoader.maxFileBytes) bytes (1 MiB)") == true)
        let fits = dir.appendingPathComponent("fits.yaml")
        var text = Data("name: a\nmax_force_n: 1\naxes: []\n".utf8)
        text.append(Data(repeating: UInt8(ascii: "#"), count: ConfigLoader.maxFileBytes - text.count))
        try text.write(to: fits)
        #expect(try ConfigLoader.load(Limits.self, from: fits.path).name == "a")
    }

    @Test func missingFilesAreNamed() throws {
        #expect(unreadableReason(dir.appendingPathComponent("nope.yaml").path) == "no such file")
        #expect(unreadableReason(dir.appendingPathComponent("nope/inside.yaml").path) == "no such file")
    }

    @Test func loadWithBytesReturnsExactlyWhatWasValidated() throws {
        let f = dir.appendingPathComponent("a.json")
        let bytes = Data(#"{"name": "a", "max_force_n": 1, "axes": []}"#.utf8)
        try bytes.write(to: f)
        let (value, read) = try ConfigLoader.loadWithBytes(Limits.self, from: f.path)
        #expect(value.name == "a")
        #expect(read == bytes)
    }
}

/// No text crashes the loader: truncations and seeded byte mutations of valid files either load
/// or are refused with a `ConfigError` (any trap would end the test process).
@Suite struct ConfigLoaderRobustnessTests {
    static let yaml = "# a comment\nname: arm\nmax_force_n: 2.5\naxes:\n  - {lower: 0, upper: 300}\n  - lower: -1\n    upper: 1\n"
    static let json = #"{"name": "arm \u00e9\ud83d\ude00", "max_force_n": 2.5e0, "axes": [{"lower": -0.5, "upper": 300}, {"lower": 0, "upper": 1}]}"#

    func outcome(_ bytes: [UInt8], json: Bool) -> Bool {
        if json {
            // The strict pass accepts no syntax that Foundation's parser refuses, so a syntax
            // error is always reported by the pass that names line and column.
            let strict = (try? StrictJSON.check(Data(bytes))) != nil
            let foundation = (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
            if strict { #expect(foundation, "\(String(decoding: bytes, as: UTF8.self))") }
        }
        do {
            if json {
                _ = try ConfigLoader.decode(Limits.self, json: Data(bytes), file: "f.json")
            } else {
                guard let text = String(validating: bytes, as: UTF8.self) else { return false }
                _ = try ConfigLoader.decode(Limits.self, yaml: text, file: "f.yaml")
            }
            return true
        } catch {
            #expect(error.file.hasPrefix("f."))
            return false
        }
    }

    @Test(arguments: [true, false])
    func truncationsAndMutationsAreRefusedNotCrashedOn(_ isJSON: Bool) {
        let valid = Array((isJSON ? Self.json : Self.yaml).utf8)
        #expect(outcome(valid, json: isJSON))
        for n in 0..<valid.count { _ = outcome(Array(valid[..<n]), json: isJSON) }
        var rng = SplitMix64(seed: isJSON ? 11 : 12)
        let alphabet = Array("{}[]:,\"'&*!|>-?#\\u0 \n\t\u{1B}e.9".utf8)
        for _ in 0..<3000 {
            var m = valid
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let at = Int(rng.next() % UInt64(m.count))
                switch rng.next() % 3 {
                case 0: m[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                case 1: m.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                default: if m.count > 1 { m.remove(at: at) }
                }
            }
            _ = outcome(m, json: isJSON)
        }
    }
}
