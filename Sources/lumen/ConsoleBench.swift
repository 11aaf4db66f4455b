import ArgumentParser
import CommandSupport
import Console
import Foundation
import Recording

struct BenchConsole: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Console latency with a headless browser as the client: intent → the cycle that applies it, frame acquisition → on screen.",
        discussion: """
        Starts the console on a free loopback port over the running system (--system), opens it in \
        headless Chromium (logged in as a one-run operator), which takes the lease, holds the deadman, \
        acknowledges, and jogs the insertion axis back and forth while drawing every frame; every 4 s \
        it lets go of the deadman for half a second. Release → at rest is measured from the first \
        published cycle without the deadman to the first with every axis's command at rest. Intent → cycle is measured from \
        the intent's acceptance to the first published cycle that applied it (polled every 1 ms); \
        frame → screen from acquisition to the page's report that it drew the frame (including the \
        report's way back, so an upper bound).
        """
    )

    @Option(help: "Seconds to measure (5…600).")
    var seconds = 20.0

    @Flag(help: "Print JSON.")
    var json = false

    @Option(help: "The running system: simulated (the light kinematic stand-in, default) or live (the live runtime with its monitor, as `lumen console` runs it).")
    var system = "simulated"

    func validate() throws {
        try Check.number(seconds, "--seconds", in: 5...600, unit: "s")
        try Check.oneOf(system, "--system", ["live", "simulated"])
    }

    func run() throws {
        guard let chromium = ConsoleBrowser.find() else { throw CommandFailure(ConsoleBenchError.noBrowser.description) }
        let bench = ConsoleBench(seconds: seconds, system: system, chromium: chromium)
        let (port, stopPort) = try makeConsolePort(system: system, branch: "left_subclavian", deadmanTimeout: bench.settings.deadmanTimeout,
                                                   attachments: AttachmentSettings())
        defer { stopPort() }
        if !json { Output.progress("bench console: \(Int(seconds)) s with headless \(chromium)") }
        let report = try blockingRun {
            do throws(ConsoleBenchError) { return try await bench.run(port: port) } catch { throw CommandFailure(error.description) }
        }
        if json { try Output.json(report) } else { report.lines.forEach { print($0) } }
    }
}
