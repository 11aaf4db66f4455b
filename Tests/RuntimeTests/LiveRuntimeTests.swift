import Control
import Core
import Foundation
import Safety
import Testing
@testable import Runtime

/// The runtime with its real threads and the real monitor process. Outcomes are asserted, never
/// how fast: they must hold with the machine loaded (`stress-ng --cpu 2`).
@Suite(.serialized, .disabled(if: ProcessInfo.processInfo.environment["LUMEN_WALL_CLOCK_SUITES"] == "later", "runs alone after the parallel tests (scripts/test.sh): it judges threads on the wall clock")) struct LiveRuntimeTests {

    /// A runtime on the tube without imaging, with the monitor process, powered: the deadman
    /// held by an automation client (the monitor's deadman check permits nothing without it).
    func startPowered() throws -> (LiveRuntime, AutomationClient) {
        try startPoweredRuntime(try LiveRuntime(tubeSettings(monitor: true, imaging: .off, realtime: true), robot: try loadRobot()))
    }

    @Test func theCycleAllocatesNothingWhileTheImagingThreadRuns() throws {
        let runtime = try LiveRuntime(tubeSettings(monitor: false), robot: try loadRobot())
        try runtime.start()
        // Whatever fails below, the threads and the monitor process end with the test.
        defer { _ = runtime.finish(.completed) }
        let client = AutomationClient(port: runtime)
        client.start()
        client.navigate(to: "tube", seconds: 60)
        // Counted once measurements flow (a debug build instantiates what a path needs the first
        // time it runs; the release figure, `lumen bench live`, counts after 1000 cycles). Every
        // operator path is counted on a simulated clock in LiveCycleTests.
        let flowing = waitFor(seconds: 90) { (runtime.imagingFigures?.measurementsSent ?? 0) >= 4 }
        runtime.countCycleAllocationsFromNow()
        let sentBefore = runtime.imagingFigures?.measurementsSent ?? 0
        // Frames rendered, tracked and fused while the cycle is counted.
        let tracked = waitFor(seconds: 90) { (runtime.imagingFigures?.measurementsSent ?? 0) >= sentBefore + 6 }
        client.stop()
        let ending = runtime.finish(.completed)
        // Values first: a failing #expect reflects what it names, and the runtime holds noncopyable parts.
        let allocations = runtime.cycleAllocations, acquired = runtime.imagingFigures?.acquired.first ?? 0
        #expect(flowing, "no measurements came from the imaging thread")
        #expect(tracked, "the imaging thread measured too little to count with")
        #expect(ending == .completed)
        #expect(allocations == 0)
        #expect(acquired > 0)
    }

    @Test func killingTheMonitorLeavesTheDrivesUnpoweredAndEndsTheRunWithItsReason() throws {
        let (runtime, client) = try startPowered()
        // Whatever fails below, the threads and the monitor process end with the test.
        defer {
            client.stop()
            _ = runtime.finish(.completed)
        }
        let permitted = runtime.snapshot().safety.powerPermitted
        #expect(permitted)
        let pid = runtime.monitorProcessIdentifier
        try #require(pid > 0)
        kill(pid, SIGKILL)
        let ending = runtime.supervise(maxSeconds: 30) { _ in false }
        #expect(ending == .monitorLost)
        #expect(ending.exitCode == 6)
        let final = runtime.finish(ending)
        let permittedAfter = runtime.snapshot().safety.powerPermitted, powered2 = runtime.drivesPowered, lifecycle = runtime.lifecycle
        let lostEvent = runtime.events(after: 0, limit: 1000).contains { $0.kind == .monitor(alive: false) }
        #expect(final == .monitorLost)
        #expect(!permittedAfter)
        #expect(!powered2, "a drive kept power after the monitor died")
        #expect(lifecycle == .finalized)
        #expect(lostEvent)
    }

    @Test func aSignalStopsTheRunWithACategoryOneStopAndItsExitCode() throws {
        let (runtime, client) = try startPowered()
        // Whatever fails below, the threads and the monitor process end with the test.
        defer {
            client.stop()
            _ = runtime.finish(.completed)
        }
        // What the SIGTERM handler does (the process-level path is LumenCLITests' demo check).
        liveSignal.store(SIGTERM, ordering: .relaxed)
        defer { liveSignal.store(0, ordering: .relaxed) }
        let ending = runtime.supervise(maxSeconds: 30) { _ in false }
        #expect(ending == .signalled(SIGTERM))
        #expect(ending.exitCode == 5)
        _ = runtime.finish(ending)
        let mode = runtime.snapshot().mode, powered2 = runtime.drivesPowered, lifecycle = runtime.lifecycle
        let stopped = runtime.events(after: 0, limit: 1000).contains { $0.kind == .intentAccepted(.stop, sequence: $0.sequenceOfStop) }
        #expect(mode == .idle || mode == .hold)
        #expect(!powered2)
        #expect(lifecycle == .finalized)
        #expect(stopped)
    }

    /// Letting go of the deadman is the operator's normal way to stop: the monitor holds the
    /// drives in a category-2 stop (power kept) while it is released, latches nothing, and
    /// holding it again ends the stop with no acknowledge. The release is an event, never a
    /// latched fault. A fault the machine's load latches meanwhile (a late heartbeat) spoils an
    /// attempt: it is acknowledged and the attempt made again.
    @Test func releasingTheDeadmanHoldsWithoutALatchAndHoldingItAgainEndsTheStop() throws {
        let (runtime, client) = try startPowered()
        defer {
            client.stop()
            _ = runtime.finish(.completed)
        }
        // A stop that removes power (category 0 or 1) is a fault's, never the deadman's.
        func spoiled() -> Bool { let c = runtime.snapshot().safety.stopCategory; return c == 0 || c == 1 }
        runtime.readMonitorLog()
        let acknowledgedAt = runtime.events(after: 0, limit: 10_000).last?.sequence ?? 0
        var released = false, resumed = false, spoilers: [String] = []
        for _ in 0..<3 {
            client.hold(false)
            // The runtime counts the deadman released after its timeout (1 s here), then relays it.
            released = waitFor(seconds: 30) {
                runtime.readMonitorLog()
                return runtime.snapshot().safety.stopCategory == 2 || spoiled()
            }
            let whileReleased = runtime.snapshot().safety
            if spoiled() {
                spoilers += whileReleased.latchedFaults
                client.hold(true)
                _ = runtime.waitForPower(seconds: 30)
                continue
            }
            #expect(released, "no category-2 stop while the deadman was released: \(whileReleased)")
            #expect(whileReleased.powerPermitted, "category 2 keeps power")
            client.hold(true)
            resumed = waitFor(seconds: 30) {
                runtime.readMonitorLog()
                let s = runtime.snapshot().safety
                return (s.stopCategory == nil && s.powerPermitted) || spoiled()
            }
            if spoiled() {
                spoilers += runtime.snapshot().safety.latchedFaults
                _ = runtime.waitForPower(seconds: 30)
                continue
            }
            break
        }
        runtime.readMonitorLog()
        let events = runtime.events(after: 0, limit: 10_000)
        let releases = events.filter { if case .fault(let text, 2) = $0.kind { text.contains("deadman") } else { false } }
        let acknowledged = events.contains { $0.kind == .intentAccepted(.acknowledgeFaults, sequence: $0.sequenceOfAcknowledge) && $0.sequence > acknowledgedAt }
        #expect(released && resumed, "every attempt was spoiled by faults the load latched: \(spoilers)")
        #expect(!releases.isEmpty, "the release is an event: \(runtime.monitorLog)")
        #expect(!acknowledged || !spoilers.isEmpty, "the stop ended by an acknowledge, not by holding the deadman")
        #expect(!runtime.snapshot().safety.latchedFaults.contains { $0.contains("deadman") }, "the deadman's stop is not a latched fault")
    }

    @Test func aDeadmanLineOfTheMonitorIsAnEventButNotALatchedFault() {
        let deadman = FaultRecord(time: 12_345_000_000, check: .deadman, index: -1, value: 0, limit: 1, category: .two).describe()
        let force = FaultRecord(time: 12_345_000_000, check: .force, index: -1, value: 6, limit: 5, category: .one).describe()
        #expect(!LiveRuntime.latches("lumen-safety: fault \(deadman)"))
        #expect(LiveRuntime.latches("lumen-safety: fault \(force)"))
    }

    @Test func aShortLiveNavigationRunsEndToEndWithTheMonitor() throws {
        let (result, trace) = try LiveNavigation.run(archSettings(), robot: try loadRobot(), maxSeconds: 40)
        // A loaded machine may starve the automation client's deadman long enough for the monitor
        // to stop the run (category 2): that ends the run as a safety stop, which is the safe outcome.
        #expect(["completed", "safety_stop"].contains(result.ending), "\(result.reason); monitor: \(result.monitor_faults)")
        #expect(result.exit_code == (result.ending == "completed" ? 0 : 7))
        #expect(result.frames_acquired.count == 2 && result.frames_acquired.allSatisfy { $0 > 0 })
        #expect(result.timing.fused_measurements > 0, "acquired \(result.frames_acquired), dropped \(result.frames_dropped), tracked \(result.tracked_pct) %, warnings \(result.warnings), monitor \(result.monitor_faults)")
        #expect(!trace.truth.isEmpty)
        // Arrival is not asked here: a debug build on a machine loaded by stress-ng tracks the
        // arch too slowly to steer it in any bounded time. `lumen eval navigation --live` (release)
        // is where arrival is measured.
        #expect(result.lifecycle_at_end == "finalized")
    }
}

extension RuntimeEvent {
    /// The sequence of a stop this event accepted (or 0), to match any stop's acceptance.
    var sequenceOfStop: UInt64 {
        if case .intentAccepted(.stop, let s) = kind { return s }
        return 0
    }
    /// The sequence of an acknowledge this event accepted (or 0).
    var sequenceOfAcknowledge: UInt64 {
        if case .intentAccepted(.acknowledgeFaults, let s) = kind { return s }
        return 0
    }
}
