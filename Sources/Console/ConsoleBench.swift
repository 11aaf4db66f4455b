import Core
import Foundation
import Runtime

/// Why the console bench could not measure; each says what to do.
public enum ConsoleBenchError: Error, Sendable, Equatable, CustomStringConvertible {
    case noBrowser
    /// The run's length is not 1…3600 s.
    case badSeconds(Double)
    case browserDidNotStart(String)
    case server(ConsoleServerError)
    /// The server stopped before the run's end (e.g. it could not bind).
    case serverFailed(String)
    /// The page sent no intents or drew no frames: the browser is not running the page.
    case noSamples(intents: Int, frames: Int)

    public var description: String {
        switch self {
        case .noBrowser: "no Chromium found (looked for chromium, chromium-browser, google-chrome; or set LUMEN_CHROMIUM): apt-get install chromium"
        case .badSeconds(let s): "the bench runs 1…3600 s, not \(s)"
        case .browserDidNotStart(let path): "\(path) did not start: run it by hand with --headless=new to see why"
        case .server(let e): e.description
        case .serverFailed(let why): "the console server stopped: \(why)"
        case .noSamples(let i, let f):
            "the browser sent no intents or drew no frames (intents \(i), frames \(f)): is Chromium able to run headless here?"
        }
    }
}

/// What `lumen bench console` reports: intent → cycle, frame → screen and release → at rest,
/// each as p50/p99 in ms over its samples.
public struct ConsoleBenchReport: Encodable, Sendable {
    public struct Figure: Encodable, Sendable {
        public var samples: Int
        public var p50Ms: Double?
        public var p99Ms: Double?
        public init(_ samples: [Nanoseconds]) {
            self.samples = samples.count
            let p = percentilesMs(samples)
            p50Ms = p.p50
            p99Ms = p.p99
        }
    }
    public var system: String
    public var seconds: Double
    public var browser: String
    public var intentToCycle: Figure
    public var frameToScreen: Figure
    /// Frame sent by the console → drawn: frame → screen without the imaging pipeline, which in a
    /// debug build of the live runtime takes seconds per biplane exposure.
    public var sentToScreen: Figure
    /// Deadman released → every axis's command at rest (the limiter's controlled stop).
    public var releaseToRest: Figure
    public var cyclePeriodMs: Double
    public var displayRate: Double
    public var pollMs: Double
    /// Frames the runtime acquired per plane during the run, and of those the page reported drawn.
    public var framesAcquired: [UInt64]
    public var framesShown: Int
    /// s waited for every plane's first frame before the window.
    public var firstFrameWaitS: Double

    /// The report as three lines for a person.
    public var lines: [String] {
        func line(_ what: String, _ f: Figure, _ unit: String) -> String {
            "\(what): p50 \(f.p50Ms ?? 0) ms, p99 \(f.p99Ms ?? 0) ms (\(f.samples) \(unit))"
        }
        return [line("intent → cycle", intentToCycle, "intents"), line("frame → screen", frameToScreen, "frames"),
                line("frame sent → screen", sentToScreen, "frames"),
                line("release → at rest", releaseToRest, "releases")]
    }
}

/// The console's latency bench: the console on a free loopback port over `port`, opened in
/// headless Chromium logged in by a one-time token as a one-run operator. The page (its bench
/// mode) takes the lease, holds the deadman and jogs the insertion axis back and forth while
/// drawing every frame; every 4 s it lets go of the deadman for half a second.
/// - intent → cycle: from the intent's acceptance to the first published cycle that applied it
///   (polled every 1 ms);
/// - frame → screen: from acquisition to the page's report that it drew the frame (including the
///   report's way back, so an upper bound);
/// - release → at rest: `ReleaseWatch`.
public struct ConsoleBench: Sendable {
    public var seconds: Double
    public var system: String
    public var chromium: String
    public var settings = ConsoleSettings()
    /// s — the window starts once every plane has delivered a frame, waited for at most this
    /// long: a debug build of the live runtime takes seconds per biplane exposure, and a window
    /// that began at start-up measured start-up (or, in 20 s, no frame at all).
    public var firstFrameSeconds = 180.0

    public init(seconds: Double, system: String, chromium: String) {
        self.seconds = seconds; self.system = system; self.chromium = chromium
    }

    /// Runs the bench for `seconds` over `port` and reports; the port keeps running.
    public func run(port: any OperatorPort) async throws(ConsoleBenchError) -> ConsoleBenchReport {
        guard seconds.isFinite, (1...3600).contains(seconds) else { throw .badSeconds(seconds) }
        guard FileManager.default.isExecutableFile(atPath: chromium) else { throw .browserDidNotStart(chromium) }
        let token = UUID().uuidString
        var c = ConsoleServerConfiguration()
        c.port = 0
        c.auditLogPath = nil
        c.quiet = true
        c.benchToken = token
        c.settings = settings
        // A user that exists for this run only; its hash is never checked (it logs in by the token).
        c.benchUser = ConsoleUser(name: "bench", role: .operator, passwordHash: "")
        let server: ConsoleServer
        do { server = try ConsoleServer(configuration: c, port: port, users: []) } catch { throw .server(error) }
        let stops = ReleaseWatch(port: port)
        stops.start()
        defer { stops.stop() }
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-bench-console-\(getpid())-\(token.prefix(8))")
        defer { try? FileManager.default.removeItem(at: profile) }
        let started = MonotonicClock.now()
        let planes = port.runtimeDescription.planes.count
        while (0..<planes).contains(where: { port.latestFrame(plane: UInt8($0), after: 0) == nil }),
              MonotonicClock.now() - started < Nanoseconds(firstFrameSeconds * 1e9) {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let waited = Double(MonotonicClock.now() - started) * 1e-9
        let acquiredBefore = port.snapshot().framesAcquired
        let browser = ConsoleBrowser.Box()
        let chromium = self.chromium, seconds = self.seconds
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await server.run { bound in
                        browser.set(ConsoleBrowser.launch(chromium, url: "http://127.0.0.1:\(bound)/api/bench?token=\(token)", profile: profile.path))
                    }
                }
                group.addTask { try await Task.sleep(for: .seconds(seconds)) }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            // Only a failure that ended the run early reaches here (the server's cancellation at
            // the end of the run is not rethrown by the group).
            browser.stop()
            if let e = error as? ConsoleServerError { throw .server(e) }
            if !(error is CancellationError) { throw .serverFailed("\(error)") }
        }
        let launched = browser.launched
        browser.stop()
        guard launched else { throw .browserDidNotStart(chromium) }
        let (intent, frame) = server.gate.latency.samples()
        let acquiredAfter = port.snapshot().framesAcquired
        let acquired = acquiredAfter.indices.map { i in acquiredAfter[i] &- (i < acquiredBefore.count ? acquiredBefore[i] : 0) }
        let report = ConsoleBenchReport(
            system: system, seconds: seconds, browser: ConsoleBrowser.version(chromium), intentToCycle: .init(intent),
            frameToScreen: .init(frame), sentToScreen: .init(server.gate.latency.sentToScreenSamples()), releaseToRest: .init(stops.samples()), cyclePeriodMs: Double(port.runtimeDescription.period) / 1e6,
            displayRate: settings.displayRate, pollMs: 1, framesAcquired: acquired, framesShown: frame.count,
            firstFrameWaitS: round3(waited))
        if intent.isEmpty || frame.isEmpty { throw .noSamples(intents: intent.count, frames: frame.count) }
        return report
    }
}

/// Headless Chromium for the bench.
public enum ConsoleBrowser {
    /// `LUMEN_CHROMIUM`, else the first of chromium, chromium-browser, google-chrome found.
    public static func find() -> String? {
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

    public static func version(_ path: String) -> String {
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

    /// The browser process, set once the server listens, stopped at the end.
    final class Box: @unchecked Sendable {
        private let lock = NSLock()
        private var process: Process?
        private var started = false
        func set(_ p: Process?) { lock.lock(); process = p; started = p != nil; lock.unlock() }
        var launched: Bool { lock.lock(); defer { lock.unlock() }; return started }
        func stop() {
            lock.lock(); defer { lock.unlock() }
            guard let p = process, p.isRunning else { return }
            p.terminate()
            p.waitUntilExit()
        }
    }
}
