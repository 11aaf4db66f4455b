import Foundation
import Testing

/// Every option of every command that takes a value, as the tool itself describes them
/// (`lumen --experimental-dump-help`), given values that must be refused before any work: a usage
/// error (exit 64) whose message names the option. Never a trap, a hang, or a run that reports
/// nothing. A new option is walked without being listed here; only text options and values an
/// option legitimately accepts are listed, each with its reason.
@Suite struct OptionWalkTests {
    /// Values no counting or measuring option should take blindly: not a number, infinite, negative,
    /// zero, vanishingly small (a divisor), too large for any product, Int64.max (any sum with it
    /// overflows) and a word.
    static let values = ["nan", "inf", "-inf", "-1", "0", "1e-300", "1e300", "9223372036854775807", "twelve"]

    /// Options whose value is free text: a path or a name the command uses as given. Any word is a
    /// legitimate value, so the walk gives them none (a run would start the work). Text options
    /// that take one of a known set (a phantom, a link, a condition) are walked like numbers.
    static let textOptions: [String: String] = [
        "--robot": "a robot file, loaded and checked when the command starts",
        "--limits": "a limits file, loaded and checked when the command starts",
        "--config": "a limits file, loaded and checked when the command starts",
        "--input": "a folder of frames, read when the command starts",
        "--geometry": "a geometry file",
        "--out": "a folder for results: walked by outputFoldersAreCheckedBeforeAnyWork",
        "eval navigation merge --merge-out": "a folder for the merged summary, checked before any work",
        "demo --branch": "a branch of the arch phantom, checked against it before the run",
        "demo --replay": "a PNG folder or DICOM file, opened when the run starts",
        "bench live --branch": "a branch of the arch phantom, checked when the run starts",
        "track --overlay": "a folder for overlays: walked by outputFoldersAreCheckedBeforeAnyWork",
        "safety --drives": "a socket path",
        "safety --status": "a socket path",
        "safety --key": "a key file, loaded and checked when the monitor starts",
        "--listen": "a socket path",
        "--peer-python": "a program path; empty skips the peer",
        "--peer-script": "a script path",
        "--interface": "a network interface's name",
        "--namespace": "a network namespace's name",
        "hil conformance --junit": "a report file; its folder is checked before any work",
        "hil run --junit": "a report file; its folder is checked before any work",
        "hil run --report": "a folder for the report: checked before any work",
        "console serve --bind": "a HOST:PORT address, checked when the console starts",
        "console serve --users": "a users file, loaded and checked when the console starts",
        "console serve --cert": "a certificate file, loaded when the console starts",
        "console serve --key": "a key file, loaded when the console starts",
        "console serve --audit-log": "a log file, opened when the console starts",
        "console add-user --users": "a users file, appended to",
        "console add-user --name": "a user name, checked in validate()",
        "--record": "an MCAP file to write; its folder is checked before the run",
    ]

    /// Walk values an option legitimately accepts. They are not run: a valid value starts the work.
    static let accepted: [String: [String: String]] = [
        "--seed": ["0": "every 64-bit seed is valid (0 is eval tracking's default noise)",
                   "9223372036854775807": "every 64-bit seed is valid"],
        "--cpu": ["0": "CPU 0 exists on every machine"],
        "safety --drives-uid": ["0": "user 0 (root) is a user a site may name"],
        "safety --control-uid": ["0": "user 0 (root) is a user a site may name"],
        "safety --operator-uid": ["0": "user 0 (root) is a user a site may name"],
        "safety --socket-group": ["0": "group 0 (root) is a group a site may name"],
        "sim ethercat-slaves --udp-port": ["0": "0 picks a free port"],
        "eval navigation --first": ["0": "the first run, the default"],
        "eval safety --nominal-minutes": ["0": "skips the fault-free part of the campaign"],
        "demo --radius": ["0": "a path without circles: the axial travel alone",
                          "1e-300": "a radius, if a tiny one: the path is still the axial travel"],
        "sim render --primary": ["-1": "RAO 1°", "0": "AP", "1e-300": "an angle, if a tiny one"],
        "sim render --secondary": ["-1": "caudal 1°", "0": "no tilt", "1e-300": "an angle, if a tiny one"],
        "record synthetic --planes": ["0": "no imaging: cycle records only"],
        "--frame-quality": ["0": "PNG zlib level 0 (stored), in the range of the default format, PNG"],
        "replay --tolerance": ["0": "exact reproduction", "1e-300": "a tolerance, if a tiny one"],
        "bench record --kills": ["0": "skips the kill -9 figure"],
        "eval tracking --rivals": ["0": "no rival tips: the track as acquired, for comparison"],
    ]

    /// Arguments a command cannot start without, given valid, so that the walked value is the only
    /// thing wrong (the walk checks that the refusal names the walked option, so a missing entry
    /// here shows). Paths are absolute: the walk runs in an empty folder.
    static func baseArguments(scratch: URL) -> [String: [String]] {
        [
            "safety": ["--config", Tool.root.appendingPathComponent("safety/lumen-2s-limits.yaml").path,
                       "--listen", scratch.appendingPathComponent("monitor.sock").path,
                       "--drives", scratch.appendingPathComponent("drives.sock").path],
            "track": ["--input", scratch.appendingPathComponent("frames").path],
            // One of --interface and --udp-port is required; an interface that does not exist.
            "sim ethercat-slaves": ["--interface", "lumen-walk-none"],
            "console add-user": ["--name", "walker"],
            "record synthetic": ["--out", scratch.appendingPathComponent("recording").path],
            "replay": [scratch.appendingPathComponent("none.mcap").path],
        ]
    }

    // MARK: The walk

    @Test func everyValueOptionRefusesValuesOutsideItsRangeBeforeAnyWork() throws {
        let tree = try ToolTree.load()
        let scratch = try Scratch()
        let base = Self.baseArguments(scratch: scratch.url)
        var walked: [(option: ToolTree.Option, value: String)] = []
        var seenTextKeys = Set<String>(), seenAcceptedKeys = Set<String>()
        for command in tree.commands {
            let options = command.options.filter { option in
                if let key = Self.key(in: Self.textOptions, command: command.path, option: option.flag) {
                    seenTextKeys.insert(key)
                    return false
                }
                return true
            }
            if !options.isEmpty, !command.required.isEmpty {
                #expect(base[command.name] != nil, "'\(command.name)' needs \(command.required.joined(separator: ", ")): list valid base arguments for it")
            }
            for option in options {
                let acceptedKey = Self.key(in: Self.accepted, command: command.path, option: option.flag)
                if let acceptedKey { seenAcceptedKeys.insert(acceptedKey) }
                for value in Self.values where acceptedKey.flatMap({ Self.accepted[$0]?[value] }) == nil {
                    walked.append((option, value))
                }
            }
        }
        // A listed option that no longer exists would silently widen the walk's exemptions.
        #expect(Set(Self.textOptions.keys).subtracting(seenTextKeys).isEmpty,
                "text options listed but not found: \(Set(Self.textOptions.keys).subtracting(seenTextKeys).sorted())")
        #expect(Set(Self.accepted.keys).subtracting(seenAcceptedKeys).isEmpty,
                "accepted values listed for options not found: \(Set(Self.accepted.keys).subtracting(seenAcceptedKeys).sorted())")
        for (key, values) in Self.accepted {
            #expect(Set(values.keys).isSubset(of: Self.values), "\(key): accepted values the walk never gives")
        }
        #expect(walked.count > 100, "the walk found only \(walked.count) cases: did the tool's description change?")

        let runs = walked.map { w in w.option.command + (base[w.option.commandName] ?? []) + ["\(w.option.flag)=\(w.value)"] }
        let results = ToolRunner.runAll(runs, in: scratch.walkFolder)
        for ((option, value), r) in zip(walked, results) {
            let label = "\(option.commandName) \(option.flag)=\(value)"
            #expect(!r.timedOut, "\(label) did not finish: it started work instead of refusing the value (if any text is a valid value, list the option in textOptions)")
            #expect(r.signal == nil, "\(label) was killed by signal \(r.signal ?? 0): \(r.stderr.suffix(300))")
            #expect(r.status == 64, "\(label) exited \(r.status), expected 64 (usage): \(r.stderr.suffix(300))")
            #expect(r.errorLine.contains(option.flag), "\(label): the error does not name the option: \(r.errorLine)")
            // A word the parser refuses marks a number option: its help must say what it accepts.
            if value == "twelve", r.errorLine.contains("The value 'twelve' is invalid") {
                #expect(option.help.contains("…") || option.help.contains(" or "),
                        "\(option.commandName) \(option.flag): the help should state the accepted values (\(option.help))")
            }
        }
        // Nothing was written, bound or created: every refusal came before the work.
        let left = try FileManager.default.contentsOfDirectory(atPath: scratch.walkFolder.path)
        #expect(left.isEmpty, "the walk left \(left) behind")
    }

    /// Combinations of values that are each in range: the walk gives one value at a time.
    @Test func combinationsThatOverflowOrRunNothingAreRefused() throws {
        let scratch = try Scratch()
        let cases: [([String], String)] = [
            (["eval", "navigation", "--first", "9223372036854775807", "--runs", "2"], "--first"),
            (["eval", "navigation", "--first", "1000000", "--runs", "10000"], ""),  // the largest allowed: still no overflow
            (["bench", "loop", "--block", "1e-9"], "--block"),
            (["bench", "loop", "--rate", "10", "--block", "0.05"], "--block must be at least one cycle"),
            (["bench", "loop", "--seconds", "1", "--block", "0.6"], "--block must be at most half of --seconds"),
            (["bench", "kinematics", "--batches", "100000", "--batch", "100000"], "--batches × --batch"),
            (["demo", "--seconds", "0.1", "--rate", "100"], "at least 100 cycles"),
            (["eval", "tracking", "--only", ","], "--only names no condition"),
            (["eval", "tracking", "--only", " , "], "--only names no condition"),
            (["eval", "safety", "--kinds", ","], "--kinds names no fault kind"),
        ]
        let allowed = 1  // the second case is valid and must not be run to its end: give it a bad --out
        let file = scratch.url.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        var runs = cases.map(\.0)
        runs[allowed] += ["--out", file.path]
        let results = ToolRunner.runAll(runs, in: scratch.walkFolder)
        for (i, ((args, message), r)) in zip(cases, results).enumerated() {
            let label = args.joined(separator: " ")
            #expect(r.signal == nil && !r.timedOut, "\(label): signal \(r.signal ?? 0), timed out \(r.timedOut)")
            #expect(r.status == 64, "\(label) exited \(r.status): \(r.stderr.suffix(300))")
            #expect(r.errorLine.contains(i == allowed ? "--out" : message), "\(label): \(r.errorLine)")
        }
    }

    // MARK: Folders for results

    @Test func outputFoldersAreCheckedBeforeAnyWork() throws {
        let tree = try ToolTree.load()
        let scratch = try Scratch()
        let base = Self.baseArguments(scratch: scratch.url)
        let file = scratch.url.appendingPathComponent("results-file")
        try Data("keep me".utf8).write(to: file)
        // Every `--out`, and every option whose help says it is a folder for what the command writes.
        let outputs = tree.commands.flatMap { c in c.options.filter { $0.flag == "--out" || $0.help.hasPrefix("Folder") } }
        #expect(outputs.count >= 8, "found only \(outputs.map { "\($0.commandName) \($0.flag)" })")
        var runs: [[String]] = [], expected: [(label: String, text: String)] = []
        for o in outputs {
            let args = o.command + (base[o.commandName] ?? [])
            runs.append(args + [o.flag, file.path])
            expected.append(("\(o.commandName) \(o.flag) FILE", "\(file.path) is not a folder"))
            runs.append(args + [o.flag, file.path + "/run1"])
            expected.append(("\(o.commandName) \(o.flag) FILE/run1", "\(file.path) is not a folder"))
        }
        if geteuid() != 0 {
            // Root writes anywhere; the read-only case is covered with a simulated file system in CoreTests.
            let locked = scratch.url.appendingPathComponent("locked")
            try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o555])
            for o in outputs {
                runs.append(o.command + (base[o.commandName] ?? []) + [o.flag, locked.path + "/run1"])
                expected.append(("\(o.commandName) \(o.flag) LOCKED/run1", "cannot be written"))
            }
        }
        let results = ToolRunner.runAll(runs, in: scratch.walkFolder)
        for (e, r) in zip(expected, results) {
            #expect(r.signal == nil && !r.timedOut, "\(e.label): signal \(r.signal ?? 0), timed out \(r.timedOut)")
            #expect(r.status == 64, "\(e.label) exited \(r.status): \(r.stderr.suffix(300))")
            #expect(r.errorLine.contains(e.text), "\(e.label): \(r.errorLine)")
        }
        #expect(try String(contentsOf: file, encoding: .utf8) == "keep me")
        let left = try FileManager.default.contentsOfDirectory(atPath: scratch.walkFolder.path)
        #expect(left.isEmpty, "refused runs left \(left) behind")
    }

    @Test func anOutputFolderIsReusedAndOnlyItsResultsReplaced() throws {
        let scratch = try Scratch()
        let out = scratch.url.appendingPathComponent("phantom/run")
        let first = try Tool.run(["sim", "phantom", "--name", "straight", "--out", out.path])
        #expect(first.status == 0, "\(first.stderr)")
        let plot = out.appendingPathComponent("straight.png")
        let notes = out.appendingPathComponent("notes.txt")
        try Data("mine".utf8).write(to: notes)
        try Data("old".utf8).write(to: plot)
        let second = try Tool.run(["sim", "phantom", "--name", "straight", "--out", out.path])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try Data(contentsOf: plot).count > 200, "the plot was not replaced")
        #expect(try String(contentsOf: notes, encoding: .utf8) == "mine", "a file the command does not write was touched")
        // A folder where the command writes its file: refused before drawing anything.
        try FileManager.default.removeItem(at: plot)
        try FileManager.default.createDirectory(at: plot, withIntermediateDirectories: false)
        let third = try Tool.run(["sim", "phantom", "--name", "straight", "--out", out.path])
        #expect(third.status == 64)
        #expect(third.stderr.contains("\(plot.path) is a folder where a result file goes"), "\(third.stderr)")
    }

    // MARK: Helpers

    /// The key under which `table` lists `option` of `command`: "sim render --primary" before "--primary".
    static func key<V>(in table: [String: V], command: [String], option: String) -> String? {
        let specific = (command + [option]).joined(separator: " ")
        if table[specific] != nil { return specific }
        return table[option] != nil ? option : nil
    }
}

/// The command tree as `lumen --experimental-dump-help` prints it.
struct ToolTree {
    struct Option {
        var command: [String]
        var flag: String
        var help: String
        var commandName: String { command.joined(separator: " ") }
    }

    struct Command {
        var path: [String]
        var options: [Option]
        /// Options and positional arguments the command cannot run without.
        var required: [String]
        var name: String { path.joined(separator: " ") }
    }

    var commands: [Command]

    private struct Dump: Decodable { var command: CommandInfo }
    private struct CommandInfo: Decodable {
        var commandName: String
        var subcommands: [CommandInfo]?
        var arguments: [ArgumentInfo]?
    }
    private struct ArgumentInfo: Decodable {
        var kind: String
        var isOptional: Bool
        var names: [Name]?
        var valueName: String?
        var abstract: String?
    }
    private struct Name: Decodable {
        var kind: String
        var name: String
    }

    static func load() throws -> ToolTree {
        let r = try Tool.run(["--experimental-dump-help"])
        #expect(r.status == 0, "\(r.stderr)")
        let dump = try JSONDecoder().decode(Dump.self, from: Data(r.stdout.utf8))
        var commands: [Command] = []
        func visit(_ c: CommandInfo, _ path: [String]) {
            let subcommands = c.subcommands ?? []
            // A command that runs and also has subcommands (eval navigation and its merge) is walked too.
            if !path.isEmpty, subcommands.isEmpty || (c.arguments ?? []).contains(where: { $0.kind == "option" }) {
                let arguments = c.arguments ?? []
                let options = arguments.filter { $0.kind == "option" }.compactMap { a -> Option? in
                    guard let long = a.names?.first(where: { $0.kind == "long" }) else {
                        Issue.record("\(path.joined(separator: " ")): an option without a long name (\(a.valueName ?? "?"))")
                        return nil
                    }
                    return Option(command: path, flag: "--" + long.name, help: a.abstract ?? "")
                }
                let required = arguments.filter { $0.kind != "flag" && !$0.isOptional }.map { $0.names?.first.map { "--" + $0.name } ?? $0.valueName ?? "?" }
                commands.append(Command(path: path, options: options, required: required))
            }
            for s in subcommands where !(path.isEmpty && s.commandName == "help") { visit(s, path + [s.commandName]) }
        }
        visit(dump.command, [])
        return ToolTree(commands: commands)
    }
}

/// A folder of the test's own, removed at the end; `walkFolder` inside it is where the tool runs
/// and must stay empty.
final class Scratch {
    let url: URL
    var walkFolder: URL { url.appendingPathComponent("cwd") }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-walk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url.appendingPathComponent("cwd"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: url.appendingPathComponent("frames"), withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Runs the tool many times, a few processes at a time, each with a time limit.
enum ToolRunner {
    struct Result: Sendable {
        var status: Int32
        var signal: Int32?
        var timedOut: Bool
        var stdout: String
        var stderr: String
        /// The first line starting with "Error:": what the tool said was wrong.
        var errorLine: String { stderr.split(separator: "\n").first { $0.hasPrefix("Error:") }.map(String.init) ?? "" }
    }

    /// Generous: a refusal takes a fraction of a second even on a loaded machine.
    static let timeout = 30.0

    /// As many at a time as there are cores (2…4): each run is CPU-bound start-up, and more would
    /// only crowd the timing-sensitive tests that run beside this one.
    static let width = min(4, max(2, ProcessInfo.processInfo.activeProcessorCount))

    static func runAll(_ runs: [[String]], in folder: URL) -> [Result] {
        let state = SharedState(count: runs.count)
        let done = DispatchGroup()
        for _ in 0..<min(width, max(1, runs.count)) {
            done.enter()
            let worker = Thread {
                while let i = state.next() { state.store(i, run(runs[i], in: folder)) }
                done.leave()
            }
            worker.start()
        }
        done.wait()
        return state.results
    }

    static func run(_ args: [String], in folder: URL) -> Result {
        let io = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-walk-io-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: io) }
        do {
            try FileManager.default.createDirectory(at: io, withIntermediateDirectories: true)
            let outURL = io.appendingPathComponent("stdout"), errURL = io.appendingPathComponent("stderr")
            _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
            let p = Process()
            p.executableURL = Tool.binary
            p.arguments = args
            p.currentDirectoryURL = folder
            // Files, not pipes: a run that prints a lot must not block on a full pipe and look hung.
            let outHandle = try FileHandle(forWritingTo: outURL), errHandle = try FileHandle(forWritingTo: errURL)
            defer { try? outHandle.close(); try? errHandle.close() }
            p.standardOutput = outHandle
            p.standardError = errHandle
            let exited = DispatchSemaphore(value: 0)
            p.terminationHandler = { _ in exited.signal() }
            try p.run()
            var timedOut = false
            if exited.wait(timeout: .now() + timeout) == .timedOut {
                timedOut = true
                kill(p.processIdentifier, SIGKILL)
                exited.wait()
            }
            let signalled = p.terminationReason == .uncaughtSignal && !timedOut
            return Result(status: p.terminationStatus, signal: signalled ? p.terminationStatus : nil, timedOut: timedOut,
                          stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                          stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
        } catch {
            return Result(status: -1, signal: nil, timedOut: false, stdout: "", stderr: "Error: could not run the tool: \(error)")
        }
    }

    private final class SharedState: @unchecked Sendable {
        private let lock = NSLock()
        private var cursor = 0
        private var slots: [Result?]

        init(count: Int) { slots = Array(repeating: nil, count: count) }

        func next() -> Int? {
            lock.lock(); defer { lock.unlock() }
            guard cursor < slots.count else { return nil }
            cursor += 1
            return cursor - 1
        }

        func store(_ i: Int, _ r: Result) {
            lock.lock(); defer { lock.unlock() }
            slots[i] = r
        }

        var results: [Result] {
            lock.lock(); defer { lock.unlock() }
            return slots.map { $0 ?? Result(status: -1, signal: nil, timedOut: false, stdout: "", stderr: "Error: not run") }
        }
    }
}
