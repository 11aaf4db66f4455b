import ArgumentParser
import CommandSupport
import Core
import Foundation
import Safety
import Synchronization

/// Set by SIGINT/SIGTERM: the monitor loop returns and the process reports.
let safetyStop = Atomic<Bool>(false)

/// `lumen safety`: the independent safety monitor as its own process. The same options and run
/// are the standalone `lumen-safety` executable, which links Safety, Core and Drivers and none of
/// the control stack (DESIGN.md, safety concept).
public struct SafetyCommand: ParsableCommand {
    public static let configuration = SafetyOptions.configuration(commandName: "safety")
    @OptionGroup var options: SafetyOptions
    public init() {}
    public func run() throws { try options.run(tool: "lumen safety") }
}

/// What the monitor is told on its command line, and the monitor's run.
public struct SafetyOptions: ParsableArguments {
    public static func configuration(commandName: String) -> CommandConfiguration {
        CommandConfiguration(
        commandName: commandName,
        abstract: "Run the independent safety monitor: its own channel to the drives (samples in, safe-torque-off permits out), the control heartbeat and the operator's deadman in, 1 kHz checks against a limits file.",
        discussion: """
        The drives get power only while this process keeps permitting it: if it dies, hangs or refuses its limits \
        file, their safety-line watchdogs remove power by themselves. The channel is authenticated: the socket lives \
        in a directory only this user (and --socket-group) can reach, locked against a second monitor; each datagram \
        must come from the user configured for its role and carry the key file's HMAC tag and a fresh counter. \
        Exit codes: 1 socket directory or path refused, 2 limits or key refused, 3 another monitor runs on this \
        socket, 64 usage. \
        Wire formats and threat model: docs/safety/channel.md.
        """
        )
    }

    public init() {}

    @Option(help: "Limits file (YAML or JSON); refused, with the reason, if missing, malformed or out of range.")
    var config: String
    @Option(help: "Unix datagram socket this monitor listens on (drive samples, heartbeats, operator input). Its directory is created with mode 0700 if missing, else must be ours and writable by no one else; a lock beside the socket keeps a second monitor off it.")
    var listen: String?
    @Option(help: "Unix datagram socket of the drives' safety channel (permits are sent there).")
    var drives: String?
    @Option(help: "Unix datagram socket of the control process: the monitor's status (permit, stop category, latched checks) is sent there every cycle (default: none).")
    var status: String?
    @Option(help: "Stop after this many seconds (0.01…10000000; default: until SIGINT/SIGTERM).") var seconds: Double?
    @Option(help: "Channel key file (32…4096 random bytes, mode 0600, ours), shared with the drives, the control and the console; refused (exit 2) if missing, short or readable by others.")
    var key: String?
    @Option(help: "User id (0…4294967295) whose drive samples are taken (repeatable; default: this process's user).") var drivesUid: [UInt32] = []
    @Option(help: "User id (0…4294967295) whose heartbeats are taken (repeatable; default: this process's user).") var controlUid: [UInt32] = []
    @Option(help: "User id (0…4294967295) whose deadman and acknowledge are taken (repeatable; default: this process's user).") var operatorUid: [UInt32] = []
    @Option(help: "Group id (0…4294967295) that may reach the socket directory (mode 0770; default: none, mode 0700).") var socketGroup: UInt32?
    @Option(help: "Process id (1…2147483647) of the runtime that started this monitor: when that process is gone (even killed with SIGKILL) the monitor stops as on SIGTERM, so its permits end and the drives remove power, instead of living on as an orphan.")
    var exitWithParent: Int32?
    @Flag(help: "Only load and validate the limits file, print its hash, and exit.") var check = false
    @Flag(help: "Print the summary as JSON on stdout.") var json = false

    public func validate() throws {
        try Check.number(seconds, "--seconds", in: 0.01...MonitorProcess.maxRunSeconds, unit: "s")
        try Check.count(exitWithParent, "--exit-with-parent", in: 1...Int32.max)
    }

    struct Summary: Encodable {
        var limits: String
        var limits_sha256: String
        var cycles: Int64
        var overruns: Int64
        var drive_samples: Int64
        var heartbeats: Int64
        var operator_inputs: Int64
        var invalid_datagrams: Int64
        var rejected_credentials: Int64
        var rejected_tag: Int64
        var rejected_replay: Int64
        var permits_sent: Int64
        var permits_with_power: Int64
        var statuses_sent: Int64
        var status_send_failures: Int64
        var faults: [[String: String]]
        var latched_at_exit: [String]
    }

    public func run(tool: String) throws {
        let loaded: (limits: SafetyLimits, sha256: String)
        do {
            loaded = try SafetyLimits.load(from: config)
        } catch {
            Output.progress("\(tool): refusing to enable anything: \(error.description)")
            throw ExitCode(2)
        }
        let limits = loaded.limits
        Output.progress("\(tool): limits \(config) sha256 \(loaded.sha256) (\(limits.name), \(limits.joints.count) joints, \(limits.cycleHz) Hz)")
        if check {
            if json { try Output.json(["limits": config, "limits_sha256": loaded.sha256, "name": limits.name]) } else { print(loaded.sha256) }
            return
        }
        guard let listen, let drives, let key else { throw ValidationError("--listen, --drives and --key are required to run the monitor") }
        let policy: ChannelPolicy
        do {
            policy = try ChannelPolicy(key: ChannelKey.load(from: key), drives: drivesUid, control: controlUid, operatorConsole: operatorUid,
                                       group: socketGroup)
        } catch let e as ChannelKey.LoadError {
            Output.progress("\(tool): refusing to enable anything: \(e.description)")
            throw ExitCode(2)
        } catch {
            throw ValidationError("\(error)")
        }
        let model = MonitorModel(limits)
        let process: MonitorProcess
        do {
            process = try MonitorProcess(model: model, listen: listen, drives: drives, status: status, policy: policy)
        } catch {
            Output.progress("\(tool): \(error.description)")
            throw error.isAlreadyRunning ? ExitCode(3) : ExitCode.failure
        }
        signal(SIGINT) { _ in safetyStop.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in safetyStop.store(true, ordering: .relaxed) }
        if let parent = exitWithParent { watchParent(parent) }
        Output.progress("\(tool): monitoring on \(listen), permits to \(drives); nothing moves until an operator acknowledges")
        let names = limits.joints.map(\.name)
        var all: [FaultRecord] = []
        let limit = seconds.map { Int64($0 * Double(limits.cycleHz)) }
        process.run(stop: safetyStop, limit: limit) { records in
            for r in records {
                Output.progress("\(tool): fault \(r.describe(jointNames: names))")
                if all.count < 1000 { all.append(r) }
            }
        }
        let latched = SafetyCheck.allCases.filter { process.state.isLatched($0) }.map(\.key)
        let summary = Summary(limits: config, limits_sha256: loaded.sha256, cycles: process.cycles, overruns: process.overruns,
                              drive_samples: process.driveSamples, heartbeats: process.heartbeats, operator_inputs: process.operatorInputs,
                              invalid_datagrams: process.invalidDatagrams, rejected_credentials: process.rejectedCredentials,
                              rejected_tag: process.rejectedTag, rejected_replay: process.rejectedReplay,
                              permits_sent: process.permitsSent, permits_with_power: process.permitsWithPower,
                              statuses_sent: process.statusesSent, status_send_failures: process.statusSendFailures,
                              faults: all.map(\.json), latched_at_exit: latched)
        if json {
            try Output.json(summary)
        } else {
            print("""
            \(tool) — \(process.cycles) cycles, \(process.overruns) overruns
              limits:     \(config) sha256 \(loaded.sha256)
              received:   \(process.driveSamples) drive samples, \(process.heartbeats) heartbeats, \(process.operatorInputs) operator, \(process.invalidDatagrams) invalid
              rejected:   \(process.rejectedCredentials) by credentials, \(process.rejectedTag) by tag, \(process.rejectedReplay) as replays
              permits:    \(process.permitsSent) sent, \(process.permitsWithPower) with power
              faults:     \(all.count); latched at exit: \(latched.isEmpty ? "none" : latched.joined(separator: ", "))
            """)
        }
    }
}

/// Stops the monitor once `parent` is no longer its parent: the runtime that started it has
/// exited or was killed, and nobody is left to send its heartbeat or to stop it. Checked on its
/// own thread every 100 ms (the loop itself is left alone); the kernel reparents an orphan, so
/// `getppid` changes the moment the parent is gone.
func watchParent(_ parent: Int32) {
    Thread.detachNewThread {
        while !safetyStop.load(ordering: .relaxed) {
            if getppid() != parent {
                Output.progress("lumen-safety: the process that started this monitor (\(parent)) is gone: stopping, permits withdrawn")
                safetyStop.store(true, ordering: .relaxed)
                return
            }
            usleep(100_000)
        }
    }
}
