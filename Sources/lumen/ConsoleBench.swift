import ArgumentParser
import CommandSupport
import Console
import Core
import Foundation
import Recording
import Runtime

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

    struct Figure: Encodable {
        var samples: Int
        var p50Ms: Double?
        var p99Ms: Double?
    }
    struct Report: Encodable {
        var system: String
        var seconds: Double
        var browser: String
        var intentToCycle: Figure
        var frameToScreen: Figure
        /// Deadman released → every axis's command at rest (the limiter's controlled stop).
        var releaseToRest: Figure
        var cyclePeriodMs: Double
        var displayRate: Double
        var pollMs: Double
    }

    func run() throws {
        guard let chromium = ConsoleBrowser.find() else {
            throw CommandFailure("no Chromium found (looked for chromium, chromium-browser, google-chrome): apt-get install chromium")
        }
        let token = UUID().uuidString
        var c = ConsoleServerConfiguration()
        c.port = 0
        c.auditLogPath = nil
        c.quiet = true
        c.benchToken = token
        // A user that exists for this run only; its hash is never checked (it logs in by the token).
        c.benchUser = ConsoleUser(name: "bench", role: .operator, passwordHash: "")
        let (port, stopPort) = try makeConsolePort(system: system, branch: "left_subclavian", deadmanTimeout: c.settings.deadmanTimeout,
                                                   attachments: AttachmentSettings())
        defer { stopPort() }
        let stops = ReleaseWatch(port: port)
        stops.start()
        defer { stops.stop() }
        let server: ConsoleServer
        do { server = try ConsoleServer(configuration: c, port: port, users: []) } catch { throw CommandFailure("\(error)") }
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-bench-console-\(getpid())")
        defer { try? FileManager.default.removeItem(at: profile) }
        let seconds = self.seconds, json = self.json
        let browser = ConsoleBrowser.Box()
        let period = port.runtimeDescription.period
        try blockingRun {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await server.run { bound in
                        let url = "http://127.0.0.1:\(bound)/api/bench?token=\(token)"
                        browser.set(ConsoleBrowser.launch(chromium, url: url, profile: profile.path))
                    }
                }
                group.addTask {
                    if !json { Output.progress("bench console: \(Int(seconds)) s with headless \(chromium)") }
                    try await Task.sleep(for: .seconds(seconds))
                }
                try await group.next()
                group.cancelAll()
            }
        }
        browser.stop()
        let (intent, frame) = server.gate.latency.samples()
        func figure(_ s: [Nanoseconds]) -> Figure {
            let ms = s.map { Double($0) / 1e6 }
            return Figure(samples: s.count, p50Ms: s.isEmpty ? nil : round3(percentile(ms, 50)), p99Ms: s.isEmpty ? nil : round3(percentile(ms, 99)))
        }
        let report = Report(system: system, seconds: seconds, browser: ConsoleBrowser.version(chromium), intentToCycle: figure(intent),
                            frameToScreen: figure(frame), releaseToRest: figure(stops.samples()), cyclePeriodMs: Double(period) / 1e6, displayRate: c.settings.displayRate, pollMs: 1)
        if intent.isEmpty || frame.isEmpty {
            throw CommandFailure("the browser sent no intents or drew no frames (intents \(intent.count), frames \(frame.count)): is Chromium able to run headless here?")
        }
        if json { try Output.json(report) } else {
            print("intent → cycle: p50 \(report.intentToCycle.p50Ms ?? 0) ms, p99 \(report.intentToCycle.p99Ms ?? 0) ms (\(intent.count) intents)")
            print("frame → screen: p50 \(report.frameToScreen.p50Ms ?? 0) ms, p99 \(report.frameToScreen.p99Ms ?? 0) ms (\(frame.count) frames)")
            print("release → at rest: p50 \(report.releaseToRest.p50Ms ?? 0) ms, p99 \(report.releaseToRest.p99Ms ?? 0) ms (\(report.releaseToRest.samples) releases)")
        }
    }
}

/// Headless Chromium for the bench.
enum ConsoleBrowser {
    static func find() -> String? {
        if let env = ProcessInfo.processInfo.environment["LUMEN_CHROMIUM"], FileManager.default.isExecutableFile(atPath: env) { return env }
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
                return "\(dir)/\(name)"
            }
        }
        return nil
    }

    static func launch(_ path: String, url: String, profile: String) -> Process? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                       "--user-data-dir=\(profile)", "--remote-debugging-port=0", "--window-size=1280,900", url]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        return p
    }

    static func version(_ path: String) -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = ["--version"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return "unknown" }
        p.waitUntilExit()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    final class Box: @unchecked Sendable {
        private let lock = NSLock()
        private var process: Process?
        func set(_ p: Process?) { lock.lock(); process = p; lock.unlock() }
        func stop() {
            lock.lock(); defer { lock.unlock() }
            guard let p = process, p.isRunning else { return }
            p.terminate()
            p.waitUntilExit()
        }
    }
}
