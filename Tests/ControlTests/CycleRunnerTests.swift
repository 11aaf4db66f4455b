import CAllocCount
import Core
import Synchronization
import Testing
@testable import Control

/// Hardware that records what the cycle wrote and can be told to fail its reads.
final class ScriptedHardware: RobotHardware {
    let jointCount = 2
    var position = JointVector(count: 2)
    var writes = 0
    var lastCommand = JointCommand(jointCount: 2)
    var movingWrites = 0
    /// `movingWrites` for another thread to read while the loop runs.
    let movingWritesSeen = Atomic<Int>(0)
    var failReads = false
    var refuseActivate = false
    var calls: [String] = []
    /// A drive fault the reads report from when it is set; an acknowledge clears it unless
    /// `faultPersists`.
    var fault: DriveFaultReport?
    var faultPersists = false
    var acknowledges = 0

    var driveFault: DriveFaultReport? { fault }
    func acknowledgeFaults() throws(HardwareError) {
        acknowledges += 1
        if faultPersists, let fault { throw HardwareError("still there", driveFault: fault) }
        fault = nil
    }

    func configure() throws(HardwareError) { calls.append("configure") }
    func activate() throws(HardwareError) {
        calls.append("activate")
        if refuseActivate { throw HardwareError("drive 1 reports a fault") }
    }
    func deactivate() { calls.append("deactivate") }
    func shutdown() { calls.append("shutdown") }

    func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault? {
        if failReads { return .linkLost }
        state.position = position
        state.sampledAt = now
        return fault == nil ? nil : .driveFault
    }

    func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        writes += 1
        lastCommand = command
        if command.enable && command.mode == .position {
            movingWrites += 1
            movingWritesSeen.add(1, ordering: .relaxed)
            position = command.position
        }
        return nil
    }
}

/// Asks for +1 on every joint each cycle; optionally burns time or emits NaN.
struct RampController: CycleController {
    var workPerCycle: Nanoseconds = 0
    var emitNaN = false
    var resets = 0
    var lastPeriod: Nanoseconds = 0
    var advance: ((Nanoseconds) -> Void)?

    mutating func reset(to state: JointState) { resets += 1 }

    mutating func update(state: JointState, tick: CycleTick, command: inout JointCommand) {
        lastPeriod = tick.period
        command.mode = .position
        command.enable = true
        for i in 0..<state.position.count {
            command.position[i] = emitNaN ? .nan : state.position[i] + 1
        }
        if workPerCycle > 0 { advance?(workPerCycle) }
    }
}

final class ClockBox {
    var clock = ManualCycleClock()
}

@Suite struct CycleRunnerTests {
    let period: Nanoseconds = 1_000_000

    func makeRunner(controller: RampController = RampController()) -> CycleRunner<ScriptedHardware, RampController, ManualCycleClock> {
        CycleRunner(hardware: ScriptedHardware(), controller: controller, clock: ManualCycleClock(), period: period)
    }

    @Test func lifecycleFollowsUnconfiguredInactiveActiveFinalized() throws {
        let r = makeRunner()
        #expect(r.lifecycle == .unconfigured)
        try r.configure()
        #expect(r.lifecycle == .inactive)
        try r.activate()
        #expect(r.lifecycle == .active)
        #expect(r.controller.resets == 1)
        try r.deactivate()
        #expect(r.lifecycle == .inactive)
        r.finalize()
        #expect(r.lifecycle == .finalized)
        #expect(r.hardware.calls == ["configure", "activate", "deactivate", "shutdown"])
    }

    @Test func invalidTransitionsAreRefusedAndLeaveTheStateAlone() throws {
        let r = makeRunner()
        #expect(throws: LifecycleError.invalidTransition(from: .unconfigured, transition: "activate")) { try r.activate() }
        #expect(throws: LifecycleError.self) { try r.run(cycles: 1) }
        try r.configure()
        #expect(throws: LifecycleError.invalidTransition(from: .inactive, transition: "configure")) { try r.configure() }
        #expect(throws: LifecycleError.invalidTransition(from: .inactive, transition: "deactivate")) { try r.deactivate() }
        r.finalize()
        #expect(throws: LifecycleError.self) { try r.activate() }
        #expect(r.lifecycle == .finalized)
    }

    @Test func aDriveFaultIsAStopAtTheVeryNextWrite() throws {
        let r = makeRunner()
        try r.configure()
        try r.activate()
        try r.run(cycles: 5)
        let moving = r.hardware.movingWrites
        #expect(moving == 5)
        let f = DriveFaultReport(axis: 1, kind: .overcurrent, code: 2, detail: 4100)
        r.hardware.fault = f
        try r.run(cycles: 1)
        // No count to wait for, unlike a lost link: the write of the same cycle is the stop.
        #expect(r.hardware.lastCommand.enable == false && r.hardware.lastCommand.mode == .hold)
        #expect(r.lifecycle == .inactive)
        #expect(r.counters.stop == .driveFault(f))
        #expect(r.counters.driveFaultStops == 1 && r.counters.faultStops == 0 && r.counters.readFaults == 0)
        try r.run(cycles: 20)
        #expect(r.hardware.movingWrites == moving)
        #expect(r.counters.driveFaultStops == 1)
        // Ending the run is clean and says how it ended; the fault stays until acknowledged.
        let ending = try r.endRun()
        #expect(ending == .stopped(.driveFault(f)) && ending.exitCode == 3 && ending.key == "drive_fault")
        #expect(throws: LifecycleError.driveFaultLatched(f)) { try r.activate() }
        #expect(r.hardware.acknowledges == 0, "nothing but an operator resets a fault")
        try r.acknowledgeFaults()
        #expect(r.hardware.acknowledges == 1)
        try r.activate()
        try r.run(cycles: 3)
        #expect(r.hardware.movingWrites == moving + 3)
    }

    @Test func anAcknowledgeThatLeavesTheFaultKeepsActivationRefused() throws {
        let r = makeRunner()
        try r.configure()
        let f = DriveFaultReport(axis: nil, kind: .hardLimit, code: 5)
        r.hardware.fault = f
        r.hardware.faultPersists = true
        #expect(throws: LifecycleError.driveFaultLatched(f)) { try r.activate() }
        #expect(throws: LifecycleError.driveFaultLatched(f)) { try r.acknowledgeFaults() }
        #expect(r.lifecycle == .inactive)
        #expect(throws: LifecycleError.self) { try r.activate() }
    }

    @Test func acknowledgingIsRefusedWhileActive() throws {
        let r = makeRunner()
        try r.configure()
        try r.activate()
        #expect(throws: LifecycleError.invalidTransition(from: .active, transition: "acknowledge faults")) { try r.acknowledgeFaults() }
    }

    @Test func everyRunEndsThroughTheLifecycle() throws {
        let done = makeRunner()
        try done.configure()
        try done.activate()
        try done.run(cycles: 5)
        #expect(try done.endRun() == .completed)
        #expect(done.lifecycle == .inactive && done.hardware.calls.last == "deactivate")

        // A lost link: the cycle already left active; ending the run must not fail on that.
        let lost = makeRunner()
        try lost.configure()
        try lost.activate()
        lost.hardware.failReads = true
        try lost.run(cycles: 15)
        #expect(lost.lifecycle == .inactive)
        let ending = try lost.endRun()
        #expect(ending == .stopped(.linkLost(.linkLost)) && ending.exitCode == 4)
        lost.finalize()
        #expect(lost.lifecycle == .finalized)
    }

    /// Every way a run ends has its own exit code and summary key, so a script can tell them apart.
    @Test func everyEndingHasItsOwnExitCodeAndKey() {
        let endings: [RunEnding] = [.completed, .stopped(.driveFault(DriveFaultReport(axis: 0, kind: .overcurrent))), .stopped(.linkLost(.linkLost)),
                                    .signalled(15), .monitorLost, .safetyStop(category: 2)]
        #expect(endings.map(\.exitCode) == [0, 3, 4, 5, 6, 7])
        #expect(Set(endings.map(\.key)).count == endings.count)
        #expect(RunEnding.safetyStop(category: 2).description.contains("category 2"))
    }

    @Test func hardwareRefusingActivationKeepsTheCycleInactive() throws {
        let r = makeRunner()
        try r.configure()
        r.hardware.refuseActivate = true
        #expect(throws: LifecycleError.hardware(transition: "activate", HardwareError("drive 1 reports a fault"))) { try r.activate() }
        #expect(r.lifecycle == .inactive)
    }

    @Test func onlyActiveCommandsMotion() throws {
        let r = makeRunner()
        try r.configure()
        try r.run(cycles: 20)
        #expect(r.hardware.writes == 20)
        #expect(r.hardware.movingWrites == 0, "inactive must write holds with the power off")
        #expect(r.hardware.lastCommand.enable == false)
        #expect(r.hardware.lastCommand.mode == .hold)
        try r.activate()
        try r.run(cycles: 20)
        #expect(r.hardware.movingWrites == 20)
        #expect(r.hardware.position[0] == 20)
        try r.deactivate()
        try r.run(cycles: 5)
        #expect(r.hardware.movingWrites == 20)
        #expect(r.hardware.position[0] == 20)
    }

    @Test func stagesGetTheMeasuredPeriod() throws {
        var clock = ManualCycleClock(wakeDelay: 0)
        clock.wakeDelay = 0
        let r = CycleRunner(hardware: ScriptedHardware(), controller: RampController(), clock: clock, period: period)
        try r.configure()
        try r.run(cycles: 3)
        #expect(r.controller.lastPeriod == period)
        #expect(r.report().lateness.max == 0)
    }

    @Test func overrunsAreCountedAndTheGridSkipsMissedDeadlines() throws {
        // The controller's work moves the manual clock: 2.5 periods of work per cycle.
        let box = ClockBox()
        var c = RampController()
        c.workPerCycle = 2_500_000
        c.advance = { box.clock.advance(by: $0) }
        let r = CycleRunner(hardware: ScriptedHardware(), controller: c, clock: ProxyClock(box: box), period: period)
        try r.configure()
        try r.run(cycles: 10)
        let report = r.report()
        #expect(report.cycles == 10)
        #expect(report.overruns == 10)
        // Each cycle ends 2.5 periods after waking: the next deadline and one more are missed.
        #expect(report.missedDeadlines == 20)
        #expect(report.compute.p50 >= 2_490_000 && report.compute.p50 <= 2_510_000)
    }

    @Test func noOverrunsWhenWorkFitsThePeriod() throws {
        let box = ClockBox()
        var c = RampController()
        c.workPerCycle = 400_000
        c.advance = { box.clock.advance(by: $0) }
        let r = CycleRunner(hardware: ScriptedHardware(), controller: c, clock: ProxyClock(box: box), period: period)
        try r.configure()
        try r.run(cycles: 100)
        #expect(r.report().overruns == 0)
        #expect(r.report().missedDeadlines == 0)
    }

    @Test func nanCommandsBecomeAHoldAndAreCounted() throws {
        var c = RampController()
        c.emitNaN = true
        let r = makeRunner(controller: c)
        try r.configure()
        try r.activate()
        try r.run(cycles: 5)
        #expect(r.counters.invalidCommands == 5)
        #expect(r.hardware.movingWrites == 0)
        #expect(r.hardware.lastCommand.mode == .hold)
        #expect(r.hardware.position[0] == 0)
    }

    @Test func lostLinkStopsMotionAndLeavesActive() throws {
        let r = makeRunner()
        try r.configure()
        try r.activate()
        try r.run(cycles: 3)
        r.hardware.failReads = true
        try r.run(cycles: 20)
        #expect(r.lifecycle == .inactive)
        #expect(r.counters.faultStops == 1)
        #expect(r.counters.readFaults == 20)
        #expect(r.counters.lastFault == .linkLost)
        #expect(r.hardware.lastCommand.enable == false)
        // Motion stopped at the fault threshold: 3 good cycles, then 9 with the stale state.
        #expect(r.hardware.movingWrites == 3 + r.faultPolicy.maxConsecutiveReadFaults - 1)
    }

    @Test func transitionsRequestedWhileRunningAreCarriedOutByTheLoop() async throws {
        let r = CycleRunner(hardware: ScriptedHardware(), controller: RampController(), period: 200_000)
        try r.configure()
        let loop = Task.detached { try r.run() }
        while !r.isRunning { await Task.yield() }
        try r.activate()
        #expect(r.lifecycle == .active)
        // Until the loop has written motion, bounded: a loaded machine may not run the loop's
        // thread within any fixed pause (20 ms was one).
        let until = MonotonicClock.now() + 10_000_000_000
        while r.hardware.movingWritesSeen.load(ordering: .relaxed) == 0, MonotonicClock.now() < until {
            try await Task.sleep(nanoseconds: 1_000_000)
        }
        try r.deactivate()
        #expect(r.lifecycle == .inactive)
        r.requestStop()
        _ = try await loop.value
        #expect(r.hardware.movingWrites > 0)
        #expect(r.hardware.lastCommand.enable == false)
    }

    @Test func allocationCounterSeesAllocationsOnThisThread() throws {
        try #require(lumen_alloc_count_is_active() == 1, "the allocation counter is not interposed in this process")
        lumen_alloc_count_begin()
        let boxes = (0..<10).map { [Double](repeating: Double($0), count: 100 + $0) }
        let allocations = lumen_alloc_count_end()
        #expect(boxes.count == 10)
        #expect(allocations >= 10)
    }

    @Test func steadyStateCyclesDoNotAllocate() throws {
        try #require(lumen_alloc_count_is_active() == 1, "the allocation counter is not interposed in this process")
        let r = CycleRunner(hardware: ScriptedHardware(), controller: RampController(), clock: ManualCycleClock(), period: period)
        try r.configure()
        try r.activate()
        try r.run(cycles: 100)  // warm-up: lazy runtime metadata
        lumen_alloc_count_begin()
        try r.run(cycles: 10_000)
        let allocations = lumen_alloc_count_end()
        #expect(allocations == 0)
    }
}

/// A clock shared with the controller, so that "work" in the update stage moves time.
struct ProxyClock: CycleClock {
    let box: ClockBox
    func now() -> Nanoseconds { box.clock.now() }
    func sleep(until deadline: Nanoseconds) { box.clock.sleep(until: deadline) }
}

@Suite struct RealtimeOptionsTests {
    @Test func impossibleSettingsWarnInsteadOfFailing() {
        let warnings = RealtimeOptions(fifoPriority: 150, lockMemory: false, cpu: 100_000).applyToCurrentThread()
        #expect(warnings.count == 2)
        #expect(warnings.contains { $0.contains("outside 1…99") })
        #expect(warnings.contains { $0.contains("CPU 100000") })
    }

    @Test func noOptionsMeanNoWarnings() {
        #expect(RealtimeOptions().applyToCurrentThread().isEmpty)
    }
}
