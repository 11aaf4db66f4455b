import ArgumentParser
import CommandSupport
import Console
import Control
import Core
import Foundation
import Recording
import Runtime
import Sim

struct ConsoleCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "The teleoperation console: serve the page, or add a user.",
        subcommands: [ConsoleServe.self, ConsoleAddUser.self],
        defaultSubcommand: ConsoleServe.self
    )
}

/// The running system the console attaches to. This is the one place that chooses it: the live
/// runtime (the physics catheter in the arch phantom, biplane fluoroscopy, the tracker, the
/// estimator, the supervised path servo and the monitor process), or the light simulated port
/// (a kinematic catheter in two branches, synthetic frames) for trying the page and its tests.
func makeConsolePort(system: String, branch: String, fps: Double = 15, realtime: RealtimeOptions = RealtimeOptions(), deadmanTimeout: Nanoseconds,
                     attachments: AttachmentSettings, link: LinkFlags? = nil)
    throws -> (port: any OperatorPort, stop: @Sendable () -> Void)
{
    if system == "simulated" {
        let sim = SimulatedPort(deadmanTimeout: deadmanTimeout, framesPerSecond: fps)
        sim.start()
        return (sim, { sim.stop() })
    }
    var settings = LiveSettings()
    settings.setup.vessel = branch
    settings.setup.fps = fps
    settings.realtime = realtime
    settings.deadmanTimeout = min(5, max(0.05, Double(deadmanTimeout) * 1e-9))
    if let link {
        settings.drives = try link.liveDrives()
        settings.driveDynamics = link.dynamics
        if settings.drives == .emulatedEtherCAT {
            // The simulated slaves have no safe-torque-off input the monitor's permits could reach.
            settings.monitor = false
            Output.progress("console: warning: the simulated EtherCAT slaves have no safe-torque-off input: the run goes without the safety monitor (use --link serial for it)")
        }
    }
    let description = try DemoRigFiles.loadRobot(settings.setup.robot)
    LiveRuntime.installSignalHandlers()
    let live: AttachedLiveService
    do { live = try AttachedLiveService(settings, robot: description, attachments: attachments) } catch { throw CommandFailure("\(error)") }
    do {
        try live.start { ending in Output.progress("console: the live run ended: \(ending) (exit code \(ending.exitCode)); the page stays up, read-only") }
    } catch { throw CommandFailure(error.description) }
    for l in live.attachments?.listening ?? [] { Output.progress("console: \(l)") }
    Output.progress("console: live runtime to \(branch) in the arch phantom, drives: \(live.runtime.linkName); hold the deadman and acknowledge to power the drives")
    return (live.runtime, {
        if let r = live.stop() { Output.progress("console: recorded \(r.path): \(r.cycleRecords) cycle records, \(r.frames) frames") }
    })
}

struct ConsoleServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the console (HTTP + WebSocket; HTTPS + WSS with --cert and --key) over the running system.",
        discussion: """
        Binds 127.0.0.1:8080 unless told otherwise. Users come from a users file (NAME ROLE BCRYPT-HASH \
        a line), made with `lumen console add-user`. Every login, lease change, refusal and stop goes to \
        the audit log. See docs/console.md.
        """
    )

    @Option(help: "Console configuration file (JSON or YAML); options below override it.")
    var config: String?

    @Option(help: "Address to listen on, HOST:PORT (default 127.0.0.1:8080; port 0 picks a free one).")
    var bind: String?

    @Option(help: "Users file (default: the config's, else ./console-users).")
    var users: String?

    @Option(help: "TLS certificate chain (PEM); with --key the console serves HTTPS and WSS only.")
    var cert: String?

    @Option(help: "TLS private key (PEM).")
    var key: String?

    @Option(help: "The running system: live (the live runtime, default) or simulated (a light kinematic stand-in for trying the page).")
    var system = "live"

    @Option(help: "Live: the branch of the arch phantom offered as the target (left_subclavian, left_common_carotid, brachiocephalic, right_subclavian, right_common_carotid).")
    var branch = "left_subclavian"

    @Option(help: "Live: the fluoroscopy frame rate (7.5, 15 or 30 fps). Fewer frames mean less dose, and less work for the tracker on a slow machine.")
    var fps = 15.0

    @OptionGroup var attachments: AttachmentFlags
    @OptionGroup var drivesLink: LinkFlags
    /// Live: the cycle, the monitor and the emulated drives on SCHED_FIFO, so a busy machine
    /// (a browser, a build) cannot make the heartbeat late enough for the monitor to stop.
    @OptionGroup var realtime: RealtimeFlags

    func validate() throws {
        try Check.oneOf(system, "--system", ["live", "simulated"])
        try Check.oneOf(fps, "--fps", [7.5, 15, 30])
        if system == "simulated", drivesLink.link != "sim" { throw ValidationError("--link: the simulated stand-in has no drives; use --system live") }
        do { _ = try Phantoms.aorticArch().route(toVessel: branch, depth: 25) } catch {
            throw ValidationError("--branch: \(error.description) in the arch phantom")
        }
    }

    @Option(name: .customLong("audit-log"), help: "Append the audit log to this file (default: the config's, else ./console-audit.log).")
    var auditLog: String?

    func run() throws {
        var c = ConsoleServerConfiguration()
        var usersPath = "console-users"
        c.auditLogPath = "console-audit.log"
        if let config {
            let file: ConsoleConfigFile
            do { file = try ConfigLoader.load(ConsoleConfigFile.self, from: config) } catch { throw CommandFailure("\(error)") }
            do { try file.apply(to: &c) } catch { throw CommandFailure("\(error)") }
            if let u = file.users { usersPath = u }
        }
        do {
            if let bind { (c.host, c.port) = try ConsoleServerConfiguration.parseBind(bind) }
        } catch { throw CommandFailure("--bind: \(error.description)") }
        if let users { usersPath = users }
        if let cert { c.certificatePath = cert }
        if let key { c.keyPath = key }
        if let auditLog { c.auditLogPath = auditLog }

        let userList: [ConsoleUser]
        do { userList = try ConsoleUsers.load(path: usersPath) } catch {
            throw CommandFailure("\(error)\n  make one: lumen console add-user --users \(usersPath) --name NAME --role operator")
        }
        let (port, stopPort) = try makeConsolePort(system: system, branch: branch, fps: fps, realtime: realtime.options, deadmanTimeout: c.settings.deadmanTimeout,
                                                   attachments: attachments.settings(configurationFiles: [config].compactMap { $0 }), link: drivesLink)
        defer { stopPort() }
        let server: ConsoleServer
        do { server = try ConsoleServer(configuration: c, port: port, users: userList) } catch { throw CommandFailure("\(error)") }
        if !c.isLoopback {
            Output.progress("warning: listening on \(c.host), not loopback" + (c.certificatePath == nil ? ", without TLS" : ""))
        }
        let scheme = c.certificatePath == nil ? "http" : "https"
        let host = c.host, audit = c.auditLogPath ?? "none"
        try blockingRun {
            try await server.run { bound in Output.progress("console: \(scheme)://\(host):\(bound)/ (audit log: \(audit))") }
        }
    }
}

struct ConsoleAddUser: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-user",
        abstract: "Add a user to a users file; the password is read from standard input (one line), never from the command line."
    )

    @Option(help: "Users file to append to (created with mode 0600 when missing).")
    var users = "console-users"

    @Option(help: "User name: 1…32 letters, digits, '.', '_' or '-'.")
    var name: String

    @Option(help: "Role: operator, observer or supervisor.")
    var role: String

    func validate() throws {
        try Check.oneOf(role, "--role", ["operator", "observer", "supervisor"])
        guard ConsoleUsers.validName(name) else { throw ValidationError("--name must be 1…32 letters, digits, '.', '_' or '-', got \(name)") }
    }

    func run() throws {
        if isatty(0) != 0 { Output.progress("password (8…72 characters): ") }
        guard let password = readLine(strippingNewline: true) else { throw CommandFailure("no password on standard input") }
        do { try ConsoleUsers.add(name: name, role: role, password: password, to: users) } catch { throw CommandFailure("\(error)") }
        Output.progress("added \(name) (\(role)) to \(users)")
    }
}

/// Runs async work from a synchronous command and waits for its result.
@discardableResult
func blockingRun<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let outcome = BlockingOutcome<T>()
    Task {
        do { outcome.set(.success(try await body())) } catch { outcome.set(.failure(error)) }
        done.signal()
    }
    done.wait()
    guard let result = outcome.get() else { throw CommandFailure("the command's work ended without a result") }
    return try result.get()
}

final class BlockingOutcome<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, any Error>?
    func set(_ r: Result<T, any Error>) { lock.lock(); result = r; lock.unlock() }
    func get() -> Result<T, any Error>? { lock.lock(); defer { lock.unlock() }; return result }
}
