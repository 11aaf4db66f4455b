import ArgumentParser
import CommandSupport
import Console
import Core
import Foundation
import Runtime

struct ConsoleCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "The teleoperation console: serve the page, or add a user.",
        subcommands: [ConsoleServe.self, ConsoleAddUser.self],
        defaultSubcommand: ConsoleServe.self
    )
}

/// The running system the console attaches to. This is the one place that chooses it: the
/// simulated port now; the live runtime once it is part of the tool.
func makeConsolePort(deadmanTimeout: Nanoseconds) -> (port: any OperatorPort, stop: @Sendable () -> Void) {
    let sim = SimulatedPort(deadmanTimeout: deadmanTimeout)
    sim.start()
    return (sim, { sim.stop() })
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
        let (port, stopPort) = makeConsolePort(deadmanTimeout: c.settings.deadmanTimeout)
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

/// Runs async work from a synchronous command and waits for it.
func blockingRun(_ body: @escaping @Sendable () async throws -> Void) throws {
    let done = DispatchSemaphore(value: 0)
    let failure = FailureBox()
    Task {
        do { try await body() } catch { failure.set(error) }
        done.signal()
    }
    done.wait()
    if let e = failure.get() { throw e }
}

final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private var error: (any Error)?
    func set(_ e: any Error) { lock.lock(); error = e; lock.unlock() }
    func get() -> (any Error)? { lock.lock(); defer { lock.unlock() }; return error }
}
