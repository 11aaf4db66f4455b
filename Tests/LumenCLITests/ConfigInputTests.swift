import Foundation
import Testing

/// Hostile and careless configuration files given to the real `lumen` tool: every command that
/// reads a robot or limits file refuses them with an error naming the file, quickly, and never
/// crashes, hangs or exhausts memory.
@Suite(.serialized) struct ConfigInputTests {
    let scratch: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-config-input-\(UUID())")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    /// Runs `lumen` under an address-space cap, so a regression that expands a file without bound
    /// fails this test instead of taking the machine's memory, and kills it after `timeout`
    /// seconds, so one that blocks on a FIFO fails instead of hanging the suite.
    func run(_ args: [String], timeout: TimeInterval = 120) throws -> (outcome: Tool.Outcome, timedOut: Bool) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "ulimit -v 4194304; exec \"$0\" \"$@\"", Tool.binary.path] + args
        p.currentDirectoryURL = Tool.root
        let outFile = scratch.appendingPathComponent("out-\(UUID())"), errFile = scratch.appendingPathComponent("err-\(UUID())")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        FileManager.default.createFile(atPath: errFile.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: outFile)
        p.standardError = try FileHandle(forWritingTo: errFile)
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning, Date() < deadline { usleep(20_000) }
        let timedOut = p.isRunning
        if timedOut { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        let outcome = Tool.Outcome(status: p.terminationStatus,
                                   stdout: (try? String(contentsOf: outFile, encoding: .utf8)) ?? "",
                                   stderr: (try? String(contentsOf: errFile, encoding: .utf8)) ?? "")
        return (outcome, timedOut)
    }

    func write(_ text: String, _ name: String) throws -> String {
        let path = scratch.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let billionLaughs: String = {
        var text = "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        for level in 1...8 { text += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ",") + "]\n" }
        return text
    }()

    /// Each command that loads a configuration file, with `file` as that file, and the exit
    /// status it documents for a refused file.
    static func commands(robot file: String) -> [([String], Int32)] {
        [(["robot", "check", file], 1),
         (["demo", "--robot", file, "--seconds", "0.1"], 1),
         (["eval", "safety", "--robot", file, "--faults", "1", "--nominal-minutes", "0"], 1)]
    }

    static func commands(limits file: String) -> [([String], Int32)] {
        [(["safety", "--config", file, "--check"], 2),
         (["eval", "safety", "--limits", file, "--faults", "1", "--nominal-minutes", "0"], 1)]
    }

    func expectRefused(_ args: [String], status: Int32, naming file: String, saying words: [String]) throws {
        let (r, timedOut) = try run(args)
        #expect(!timedOut, "\(args) did not finish")
        #expect(r.status == status, "\(args): exit \(r.status)\n\(r.stderr)")
        #expect(r.stderr.contains(file), "\(args): \(r.stderr)")
        for w in words { #expect(r.stderr.contains(w), "\(args): expected '\(w)' in \(r.stderr)") }
    }

    @Test func aBillionLaughsFileIsRefusedByEveryCommandThatLoadsConfiguration() throws {
        #expect(Self.billionLaughs.utf8.count < 500)
        let robot = try write(Self.billionLaughs, "robot.yaml")
        let limits = try write(Self.billionLaughs, "limits.yaml")
        for (args, status) in Self.commands(robot: robot) + Self.commands(limits: limits) {
            try expectRefused(args, status: status, naming: args.contains(robot) ? robot : limits, saying: ["line 1, column 5", "anchors and aliases"])
        }
    }

    /// The first copy of a repeated field used to win silently (a limits file's repeated
    /// force limit too: `PermissiveLimitsTests` covers that through the same loader).
    @Test func aRepeatedJSONFieldIsRefusedByEveryCommand() throws {
        let robotJSON = try String(contentsOf: Tool.root.appendingPathComponent("robots/lumen-2s.json"), encoding: .utf8)
        let robot = try write(robotJSON.replacingOccurrences(of: "\"max_mm\": 400,", with: "\"max_mm\": 4000,\n    \"max_mm\": 400,"), "robot.json")
        for (args, status) in Self.commands(robot: robot) {
            try expectRefused(args, status: status, naming: robot, saying: ["insertion.max_mm", "duplicate field", "line 18, column 5"])
        }
    }

    @Test func aJSONSyntaxErrorNamesLineAndColumn() throws {
        let robotJSON = try String(contentsOf: Tool.root.appendingPathComponent("robots/lumen-2s.json"), encoding: .utf8)
        let broken = robotJSON.replacingOccurrences(of: "\"max_mm\": 400,", with: "\"max_mm\": 400")
        #expect(broken != robotJSON)
        let robot = try write(broken, "robot.json")
        try expectRefused(["robot", "check", robot], status: 1, naming: robot, saying: ["line 18, column 5", "expected ',' or '}'"])
    }

    @Test func aDirectoryOrFIFOOrDeviceIsNotARegularFile() throws {
        let dir = scratch.appendingPathComponent("robot-dir.yaml")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let fifo = scratch.appendingPathComponent("robot-fifo.yaml").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let device = scratch.appendingPathComponent("limits-device.yaml").path
        try FileManager.default.createSymbolicLink(atPath: device, withDestinationPath: "/dev/zero")
        for (path, kind) in [(dir.path, "a directory"), (fifo, "a FIFO (named pipe)")] {
            for (args, status) in Self.commands(robot: path) {
                try expectRefused(args, status: status, naming: path, saying: ["not a regular file (\(kind))"])
            }
        }
        for (args, status) in Self.commands(limits: device) + Self.commands(limits: fifo) {
            try expectRefused(args, status: status, naming: args.contains(fifo) ? fifo : device, saying: ["not a regular file"])
        }
        let (r, _) = try run(["robot", "check", dir.path])
        #expect(!r.stderr.contains("NSCocoaErrorDomain"))
    }

    @Test func controlCharactersInARobotNameNeverReachTheTerminal() throws {
        let yaml = try String(contentsOf: Tool.root.appendingPathComponent("robots/lumen-2s.yaml"), encoding: .utf8)
        let robot = try write(yaml.replacingOccurrences(of: "name: lumen-2s", with: "name: \"lumen\\e[2J\\e]0;pwned\\a\""), "robot.yaml")
        let (r, _) = try run(["robot", "check", robot])
        #expect(r.status == 1)
        #expect(r.stderr.contains("name (line 4, column 7): must not contain control characters"), "\(r.stderr)")
        #expect(!(r.stdout + r.stderr).unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" })
    }

    @Test(arguments: [
        ("max_insertion_force_n: 1.5", "max_insertion_force_n: 50", "max_insertion_force_n"),
        ("radius_mm: [20, 20, 20]", "radius_mm: [100, 100, 100]", "lumen.radius_mm[0]"),
        ("  force: 1\n", "  force: 2\n", "categories.force"),
    ])
    func limitsThatWouldSwitchAChecksOffStopTheMonitor(_ old: String, _ new: String, _ field: String) throws {
        let yaml = try String(contentsOf: Tool.root.appendingPathComponent("safety/lumen-2s-limits.yaml"), encoding: .utf8)
        #expect(yaml.contains(old))
        let limits = try write(yaml.replacingOccurrences(of: old, with: new), "limits.yaml")
        try expectRefused(["safety", "--config", limits, "--check"], status: 2, naming: limits, saying: [field])
    }

    @Test func theShippedFilesStillLoad() throws {
        for file in ["robots/lumen-2s.yaml", "robots/lumen-2s.json", "robots/lumen-1s.yaml"] {
            let (r, _) = try run(["robot", "check", file])
            #expect(r.status == 0, "\(file): \(r.stderr)")
        }
        let (r, _) = try run(["safety", "--config", "safety/lumen-2s-limits.yaml", "--check"])
        #expect(r.status == 0, "\(r.stderr)")
    }
}

extension ConfigInputTests {
    /// Every object of the shipped robot file, found by walking it, refuses a field it does not know.
    @Test func anUnknownFieldInAnyObjectOfARobotFileIsRefused() throws {
        let data = try Data(contentsOf: Tool.root.appendingPathComponent("robots/lumen-2s.json"))
        let robot = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var edits: [(String, [String: Any])] = [("zz_unknown", robot.merging(["zz_unknown": 1]) { a, _ in a })]
        for (key, value) in robot {
            if let object = value as? [String: Any] {
                var copy = robot
                copy[key] = object.merging(["zz_unknown": 1]) { a, _ in a }
                edits.append(("\(key).zz_unknown", copy))
            } else if let list = value as? [[String: Any]] {
                for i in list.indices {
                    var items = list
                    items[i] = items[i].merging(["zz_unknown": 1]) { a, _ in a }
                    var copy = robot
                    copy[key] = items
                    edits.append(("\(key)[\(i)].zz_unknown", copy))
                }
            }
        }
        #expect(edits.count == 6, "\(edits.map(\.0))")
        for (field, object) in edits {
            let path = try write(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted]), as: UTF8.self), "robot.json")
            try expectRefused(["robot", "check", path], status: 1, naming: path, saying: ["\(field) (line ", "unknown field"])
        }
    }
}
