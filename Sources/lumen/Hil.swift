import ArgumentParser
import CommandSupport
import Core
import Drivers
import Foundation
import Runtime
import Scenarios
import Sim

struct Hil: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hil",
        abstract: "Hardware in the loop: checks against real or emulated devices.",
        subcommands: [HilRun.self, HilConformance.self]
    )
}

/// `lumen hil conformance`: the checks any DriveLink device must pass (the logic is
/// `DriveLinkConformance` in Drivers; this wires a link to it and prints the verdicts).
struct HilConformance: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Check a DriveLink device against docs/protocol.md, clause by clause.",
        discussion: """
        Run it on a freshly started device: the first check needs one that has had no HELLO yet. \
        Each check names the clause it covers; a failure says what was sent, what came back and what \
        the specification says. Exit codes: 0 every check passed, 5 a check failed or could not \
        judge, 1 the link could not be opened, 64 a usage error.
        """
    )

    /// The exit code of a run with a failed check.
    static let failedExitCode: Int32 = 5

    @Option(help: "The device: pty:/dev/pts/N (a device on a pseudo-terminal: a simulator, a socat bridge) or serial:/dev/ttyUSB0@BAUD (a drive on a serial port).")
    var link: String?

    @Flag(help: "Check the built-in emulated drive (the C reference in hil/firmware) on a pty of its own instead of --link: a self-check of the suite.")
    var emulated = false

    @Option(help: "Axes of the emulated drive (1…8).")
    var axes = 2

    @Option(help: "Run only these checks (comma-separated ids: \(DriveLinkConformance.checks.map(\.id).joined(separator: ", "))).")
    var only: String?

    @Option(help: "Write a JUnit XML report (one test case per check) to this file.")
    var junit: String?

    @Flag(help: "Print JSON on stdout.")
    var json = false

    var selected: Set<String>? {
        only.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }) }
    }

    func validate() throws {
        try Check.count(axes, "--axes", in: 1...8)
        if let selected {
            let known = Set(DriveLinkConformance.checks.map(\.id))
            if selected.isEmpty { throw ValidationError("--only names no check: give at least one, or leave it out for all") }
            let unknown = selected.subtracting(known)
            if !unknown.isEmpty {
                throw ValidationError("--only: no check named \(unknown.sorted().joined(separator: ", ")); the checks are \(DriveLinkConformance.checks.map(\.id).joined(separator: ", "))")
            }
        }
        if let junit {
            let folder = (junit as NSString).deletingLastPathComponent
            var isFolder: ObjCBool = false
            if !folder.isEmpty, !FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) || !isFolder.boolValue {
                throw ValidationError("--junit: \(folder) is not a folder")
            }
        }
        switch (link, emulated) {
        case (nil, false): throw ValidationError("give the device with --link pty:PATH or serial:PATH@BAUD, or --emulated for a self-check")
        case (.some, true): throw ValidationError("--link and --emulated exclude each other: give one")
        case (.some(let text), false):
            let address: LinkAddress
            do { address = try LinkAddress(parsing: text) } catch { throw ValidationError("--link: \(error.description)") }
            switch address {
            case .pty, .serial: break
            default: throw ValidationError("--link: \(text) is not a DriveLink link; give pty:PATH or serial:PATH@BAUD")
            }
        case (nil, true): break
        }
    }

    func run() throws {
        let report: ConformanceReport
        if emulated {
            let pty = try PseudoTerminal.openPair()
            let specs = (0..<axes).map { AxisSpec(name: "axis\($0)", unit: .millimetre, lower: -100, upper: 100, maxVelocity: 50, countsPerUnit: 1000) }
            let drive = DriveLinkDriveEmulator(axes: specs, start: nil, deviceFD: pty.deviceFD)
            drive.start()
            defer { drive.stop() }
            Output.progress("hil conformance: the emulated drive (C reference) on \(pty.path)")
            report = check(DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path), name: "emulated drive on \(pty.path)")
        } else {
            let address = try LinkAddress(parsing: link ?? "")
            switch address {
            case .pty(let path):
                let fd: Int32
                do { fd = try PseudoTerminal.open(path: path) } catch { throw CommandFailure(error.description) }
                report = check(DescriptorTransport(fd: fd, owns: true, name: path), name: address.description)
            case .serial(let path, let baud):
                let port: SerialPort
                do { port = try SerialPort(path: path, baud: baud) } catch { throw CommandFailure(error.description) }
                report = withExtendedLifetime(port) {
                    check(DescriptorTransport(fd: port.descriptor, owns: false, name: path), name: address.description)
                }
            default:
                throw ValidationError("--link: not a DriveLink link")
            }
        }
        if let junit {
            do { try OutputPath.write(Data(report.junitXML.utf8), to: junit) } catch { throw CommandFailure("--junit: \(error)") }
        }
        if json {
            try Output.json(report)
        } else {
            let passed = report.results.filter { $0.verdict == .pass }.count
            print("\(report.link): \(report.firmwareID.map { "firmware '\($0)', " } ?? "")\(report.axisCount.map { "\($0) axes, " } ?? "")\(passed) of \(report.results.count) checks passed")
            for r in report.results {
                print("  \(r.verdict.rawValue.uppercased().padding(toLength: 7, withPad: " ", startingAt: 0)) \(r.id.padding(toLength: 18, withPad: " ", startingAt: 0)) \(r.clause)")
                print("          \(r.message)")
            }
        }
        if !report.passed { throw ExitCode(Self.failedExitCode) }
    }

    private func check(_ transport: consuming DescriptorTransport, name: String) -> ConformanceReport {
        let suite = DriveLinkConformance(transport: transport, linkName: name)
        return suite.run(only: selected) { r in
            Output.progress("  \(r.verdict.rawValue) \(r.id) (\(String(format: "%.1f", r.seconds)) s)")
        }
    }
}

/// `lumen hil run`: runs HIL scenarios (the logic is `HILRunner` in Scenarios; this loads the
/// files, picks the link, and writes the JUnit, HTML and JSON a CI server and an engineer read).
struct HilRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run hardware-in-the-loop scenarios (hil/scenarios/*.yaml) against a drive or the emulators.",
        discussion: """
        Each scenario runs at wall clock on the control cycle with the link it names, or --link. Fault injections need \
        an emulated link (serial, ethercat-udp); on a real drive those scenarios are skipped. Exit codes: 0 every \
        scenario passed or was skipped, 1 a scenario failed or could not run, 2 a scenario could not be loaded, 64 a \
        usage error.
        """
    )

    @Argument(help: "Scenario files (YAML).")
    var scenarios: [String] = []

    @Option(help: "The link for every scenario, instead of each one's own: serial (emulated DriveLink drives through the C reference on a pty), ethercat-udp (emulated CiA 402 slaves over UDP), serial:/dev/ttyUSB0@BAUD, pty:/dev/pts/N, ethercat-udp:HOST:PORT or ethercat:IFACE.")
    var link: String?

    @Option(help: "Write a JUnit XML report (a test suite per scenario, a test case per expectation) to this file.")
    var junit: String?

    @Option(help: "Write the HTML report (report.html, plots embedded) and the plots (plots/*.png) to this folder.")
    var report: String?

    @Flag(help: "Print the JSON summary on stdout.")
    var json = false

    @Flag(help: "Run every fault step as a no-op (injections, a silent host, the emergency stop, a released deadman, the monitor killed or hung, a move past a limit): a fault scenario must then fail.")
    var faultsOff = false
    @Option(help: "What runs the scenarios: live (on the live runtime the demo and the console run, through its operator port, as an automation client; the monitor on serial only) or cycle (each on a bare control cycle of its own, at any rate).")
    var runtime = "live"
    @Flag(help: "Keep the cycle, the emulated drives and the monitor on SCHED_OTHER (by default they ask for SCHED_FIFO 80 and say in the report when refused).")
    var noRealtime = false

    func validate() throws {
        guard ["cycle", "live"].contains(runtime) else { throw ValidationError("--runtime: cycle or live, not '\(runtime)'") }
        if let link, !["serial", "ethercat-udp"].contains(link) {
            do { _ = try LinkAddress(parsing: link) } catch { throw ValidationError("--link: \(error.description)") }
            if link == "sim" { throw ValidationError("--link: sim has no link to test; give serial, ethercat-udp or a device address") }
        }
        if let junit {
            do { try OutputPath.checkFolder((junit as NSString).deletingLastPathComponent.isEmpty ? "." : (junit as NSString).deletingLastPathComponent) } catch {
                throw ValidationError("--junit: \(error.description)")
            }
        }
        if let report { try Check.outputFolder(report, "--report", files: ["report.html", "summary.json"], folders: ["plots"]) }
        if scenarios.isEmpty { throw ValidationError("give at least one scenario file (hil/scenarios/*.yaml)") }
    }

    func run() throws {
        var loaded: [HILScenario] = []
        var loadErrors: [String] = []
        for path in scenarios {
            do { loaded.append(try HILScenario.load(path)) } catch {
                loadErrors.append(error.description)
                Output.progress(error.description)
            }
        }
        var results: [HILScenarioResult] = []
        if loadErrors.isEmpty {
            for s in loaded {
                Output.progress("hil run: \(s.name) (\(s.setup.duration_s) s)\(faultsOff ? ", faults switched off" : "")")
                let options = HILRunOptions(link: link, faultsSwitchedOff: faultsOff, fifoPriority: noRealtime ? nil : 80)
                let r = runtime == "live" ? HILLiveRunner.run(s, options: options) : HILRunner.run(s, options: options)
                Output.progress("  \(r.status.rawValue.uppercased())\(r.message.isEmpty ? "" : ": " + r.message)")
                results.append(r)
            }
        }
        let suite = HILSuiteReport(results: results, loadErrors: loadErrors)
        if let junit {
            do { try OutputPath.write(Data(suite.junitXML.utf8), to: junit) } catch { throw CommandFailure("--junit: \(error)") }
        }
        if let report {
            let plots = report + "/plots"
            try FileManager.default.createDirectory(atPath: plots, withIntermediateDirectories: true)
            var n = 0
            let html = suite.html { check in
                n += 1
                let file = plots + "/\(n)-" + String(check.name.map { $0.isLetter || $0.isNumber ? $0 : "_" }) + ".png"
                return try? check.plot.png(passed: check.passed, file: file)
            }
            do { try OutputPath.write(Data(html.utf8), to: report + "/report.html") } catch { throw CommandFailure("--report: \(error)") }
            try Output.writeJSON(suite, to: report + "/summary.json")
        }
        if json {
            try Output.json(suite)
        } else {
            for r in results {
                print("\(r.status.rawValue.uppercased().padding(toLength: 8, withPad: " ", startingAt: 0)) \(r.scenario) (\(r.link), \(String(format: "%.1f", r.seconds)) s)\(r.message.isEmpty ? "" : ": " + r.message)")
                for c in r.checks { print("    \(c.passed ? "pass" : "FAIL") \(c.name): \(c.message)") }
            }
            print("\(suite.passed) passed, \(suite.failed) failed, \(suite.skipped) skipped\(loadErrors.isEmpty ? "" : ", \(loadErrors.count) not loaded")")
            print("note: \(HILSuiteReport.timingNotice)")
        }
        if suite.exitCode != 0 { throw ExitCode(suite.exitCode) }
    }
}
