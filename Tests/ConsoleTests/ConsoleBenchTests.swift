import Core
import Foundation
import Runtime
import Testing
@testable import Console

/// The bench's report and the views that say why image-guided motion stops, without a browser.
struct ConsoleBenchTests {
    static let alice = ConsoleUser(name: "alice", role: .operator, passwordHash: "")

    @Test func aFigureIsThePercentilesOfItsSamplesInMilliseconds() {
        let f = ConsoleBenchReport.Figure((1...100).map { Nanoseconds($0) * .perMillisecond })
        #expect(f.samples == 100)
        #expect(abs((f.p50Ms ?? 0) - 50.5) <= 0.5)
        #expect((f.p99Ms ?? 0) >= 99 && (f.p99Ms ?? 0) <= 100)
        let none = ConsoleBenchReport.Figure([])
        #expect(none.samples == 0 && none.p50Ms == nil && none.p99Ms == nil)
    }

    @Test func theReportPrintsEachFigureOnItsLine() {
        let ms = Nanoseconds.perMillisecond
        let r = ConsoleBenchReport(system: "simulated", seconds: 5, browser: "Chromium", intentToCycle: .init([2 * ms]),
                                   frameToScreen: .init([40 * ms]), sentToScreen: .init([5 * ms]), releaseToRest: .init([]), cyclePeriodMs: 1,
                                   displayRate: 15, pollMs: 1, framesAcquired: [75, 75], framesShown: 1, firstFrameWaitS: 0.2)
        #expect(r.lines == ["intent → cycle: p50 2.0 ms, p99 2.0 ms (1 intents)", "frame → screen: p50 40.0 ms, p99 40.0 ms (1 frames)",
                            "frame sent → screen: p50 5.0 ms, p99 5.0 ms (1 frames)", "release → at rest: p50 0.0 ms, p99 0.0 ms (0 releases)"])
    }

    @Test func benchErrorsSayWhatToDo() {
        #expect(ConsoleBenchError.noBrowser.description.contains("apt-get install chromium"))
        #expect(ConsoleBenchError.noSamples(intents: 3, frames: 0).description.contains("frames 0"))
        #expect(ConsoleBenchError.server(.setting(name: "displayRate", range: "1…60")).description.contains("displayRate"))
    }

    /// A bench given no browser it can run, or a length it cannot measure, says so before it starts.
    @Test func aBenchThatCannotRunSaysWhyBeforeItStarts() async throws {
        let port = SimulatedPort(clock: ManualConsoleClock())
        let noBrowser = ConsoleBench(seconds: 5, system: "simulated", chromium: "/nonexistent/chromium")
        await #expect(throws: ConsoleBenchError.browserDidNotStart("/nonexistent/chromium")) { try await noBrowser.run(port: port) }
        let tooShort = ConsoleBench(seconds: 0, system: "simulated", chromium: "/bin/true")
        await #expect(throws: ConsoleBenchError.badSeconds(0)) { try await tooShort.run(port: port) }
    }

    /// The state carries how old the newest fused image is, and the hello the age above which
    /// the monitor stops image-guided motion: the page says so before the monitor stops it.
    @Test func theImageAgeAndTheMonitorsLimitReachThePage() throws {
        let clock = ManualConsoleClock()
        let port = SimulatedPort(clock: clock)
        var d = port.runtimeDescription
        d.imageMaxAge = 250 * .perMillisecond
        let hello = HelloMessage(d, user: Self.alice, settings: ConsoleSettings())
        #expect(hello.imageMaxAgeMs == 250)
        #expect(hello.build == "debug" || hello.build == "release")
        d.imageMaxAge = 0
        #expect(HelloMessage(d, user: Self.alice, settings: ConsoleSettings()).imageMaxAgeMs == nil)

        let view = ConsoleClientView(user: "alice", role: .operator, holdsLease: true, leaseHolder: "alice", deadmanHeld: false, scale: 1)
        var s = port.snapshot()
        s.time = 2_000 * .perMillisecond
        s.estimate.lastImageAt = 1_700 * .perMillisecond
        #expect(StateMessage(s, d, view: view, latency: .init()).imageAgeMs == 300)
        s.estimate.lastImageAt = 0
        #expect(StateMessage(s, d, view: view, latency: .init()).imageAgeMs == nil)
    }
}
