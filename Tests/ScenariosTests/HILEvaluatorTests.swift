import Core
import Foundation
import Scenarios
import Testing

/// Each expectation kind judged on a made-up recording: once where it holds, once where it does
/// not, with the moment and the words of the verdict.
struct HILEvaluatorTests {
    /// 2 s at 1 kHz on one axis: the reference ramps 0 → 10 over 1 s, the position lags by 0.2;
    /// the host stops at 1.5 s (after the step 'fault' at 1.4 s), the drive's power goes off at
    /// 1.45 s with one watchdog trip.
    static func recording(positionOffset: Double = 0.2, spikeAt: Double? = nil) -> HILRecording {
        var r = HILRecording(axes: 1)
        for i in 0..<2000 {
            let t = Double(i) / 1000
            let ref = min(t, 1) * 10
            r.times.append(t)
            r.reference[0].append(ref)
            var p = ref - positionOffset
            if let s = spikeAt, abs(t - s) < 0.0005 { p -= 5 }
            r.position[0].append(p)
        }
        for i in 0..<1000 {
            let t = Double(i) * 0.002
            r.lifecycleTimes.append(t)
            r.active.append(t >= 0.1 && t < 1.5 ? 1 : 0)
            r.deviceTimes.append(t)
            r.drivePowered.append(t >= 0.1 && t < 1.45 ? 1 : 0)
            r.driveWatchdogTrips.append(t >= 1.45 ? 1 : 0)
        }
        r.hasDeviceSide = true
        r.stepTimes = ["fault": 1.4, "late": 0.2]
        r.stopTime = 1.5
        r.stopReason = .link_lost
        r.stopCategory = 0
        r.stopDetail = "link lost"
        r.counters = ["rejected": 12, "stale": 0]
        r.duration = 2.0
        return r
    }

    static func expectation(_ yaml: String) throws -> HILScenario.Expectation {
        let text = """
        name: e
        setup: {robot: r.yaml, duration_s: 2, limits: l.yaml}
        steps: [{at: 0.2, do: enable, label: late}, {at: 1.4, do: estop, label: fault}]
        expect: [\(yaml)]
        """
        return try ConfigLoader.decode(HILScenario.self, yaml: text, file: "e.yaml").expect[0]
    }

    static func judge(_ yaml: String, _ r: HILRecording = recording()) throws -> HILCheckResult {
        HILEvaluator.judge(try expectation(yaml), in: r)
    }

    @Test func rangePassesWithinItsBandAndFailsAtTheFirstSampleOutside() throws {
        let ok = try Self.judge("{name: a, kind: range, signal: following_error, axis: 0, min: 0.1, max: 0.3}")
        #expect(ok.passed, "\(ok.message)")
        let spike = try Self.judge("{name: a, kind: range, signal: following_error, axis: 0, min: 0.1, max: 0.3}", Self.recording(spikeAt: 0.7))
        #expect(!spike.passed)
        #expect(abs((spike.moment ?? 0) - 0.7) < 0.002)
        #expect(spike.message.contains("outside"))
        // The window confines it: the spike at 0.7 s lies before it.
        let windowed = try Self.judge("{name: a, kind: range, signal: following_error, axis: 0, max: 0.3, from: 0.8}", Self.recording(spikeAt: 0.7))
        #expect(windowed.passed)
        #expect(windowed.plot.bandHigh == 0.3 && windowed.plot.windowStart == 0.8)
    }

    @Test func settlePassesWhenTheSignalIsInItsBandByTheTimeAndFailsWhenItIsNot() throws {
        let ok = try Self.judge("{name: s, kind: settle, signal: target, axis: 0, value: 10, tolerance: 0.01, by: 1.2}")
        #expect(ok.passed, "\(ok.message)")
        #expect(abs((ok.moment ?? 0) - 1.0) < 0.002)
        let late = try Self.judge("{name: s, kind: settle, signal: target, axis: 0, value: 10, tolerance: 0.01, by: 0.8}")
        #expect(!late.passed)
        let off = try Self.judge("{name: s, kind: settle, signal: position, axis: 0, value: 10, tolerance: 0.1, by: 1.5}")
        #expect(!off.passed, "the position settles 0.2 off the value")
    }

    @Test func stopPassesOnTheRightReasonAndCategoryInTimeAndFailsOtherwise() throws {
        let ok = try Self.judge("{name: x, kind: stop, after: fault, reason: link_lost, category: 0, within: 0.2}")
        #expect(ok.passed, "\(ok.message)")
        #expect(ok.moment == 1.5)
        let slow = try Self.judge("{name: x, kind: stop, after: fault, reason: any, within: 0.05}")
        #expect(!slow.passed)
        #expect(slow.message.contains("later than"))
        let reason = try Self.judge("{name: x, kind: stop, after: fault, reason: drive_fault, within: 0.2}")
        #expect(!reason.passed)
        #expect(reason.message.contains("not drive_fault"))
        let category = try Self.judge("{name: x, kind: stop, after: fault, reason: any, category: 1, within: 0.2}")
        #expect(!category.passed)
        var never = Self.recording()
        never.stopTime = nil
        never.stopReason = nil
        let none = try Self.judge("{name: x, kind: stop, after: fault, reason: any, within: 0.2}", never)
        #expect(!none.passed)
        #expect(none.message.contains("did not stop"))
    }

    /// `power_lost`: power the host did not remove, whichever way the host saw it go.
    @Test func powerLostIsAPowerStageOffOrAStopFollowingTheMonitorAndNothingElse() throws {
        let expectation = "{name: x, kind: stop, after: fault, reason: power_lost, within: 0.2}"
        var stageOff = Self.recording()
        stageOff.stopReason = .drive_fault
        stageOff.stopPowerLost = true
        let a = try Self.judge(expectation, stageOff)
        #expect(a.passed, "\(a.message)")
        var monitor = Self.recording()
        monitor.stopReason = .monitor
        monitor.stopPowerLost = true
        let b = try Self.judge(expectation, monitor)
        #expect(b.passed, "\(b.message)")
        // An overcurrent is a drive fault, not lost power; nor is a link lost.
        var overcurrent = Self.recording()
        overcurrent.stopReason = .drive_fault
        overcurrent.stopPowerLost = false
        let c = try Self.judge(expectation, overcurrent)
        #expect(!c.passed)
        let d = try Self.judge(expectation)
        #expect(!d.passed, "a lost link passed as lost power")
    }

    @Test func driveUnpoweredPassesByTheWatchdogInTimeAndFailsOtherwise() throws {
        let ok = try Self.judge("{name: d, kind: drive_unpowered, after: fault, cause: watchdog, within: 0.1}")
        #expect(ok.passed, "\(ok.message)")
        let slow = try Self.judge("{name: d, kind: drive_unpowered, after: fault, within: 0.01}")
        #expect(!slow.passed)
        var noTrip = Self.recording()
        noTrip.driveWatchdogTrips = noTrip.driveWatchdogTrips.map { _ in 0 }
        let notWatchdog = try Self.judge("{name: d, kind: drive_unpowered, after: fault, cause: watchdog, within: 0.1}", noTrip)
        #expect(!notWatchdog.passed)
        #expect(notWatchdog.message.contains("not by its watchdog"))
        var powered = Self.recording()
        powered.drivePowered = powered.drivePowered.map { _ in 1 }
        let kept = try Self.judge("{name: d, kind: drive_unpowered, after: fault, within: 0.1}", powered)
        #expect(!kept.passed)
        // Power already off when the step ran (here since 1.3 s; or never on): nothing to judge.
        var offBefore = Self.recording()
        offBefore.drivePowered = offBefore.deviceTimes.map { $0 >= 0.1 && $0 < 1.3 ? 1 : 0 }
        let early = try Self.judge("{name: d, kind: drive_unpowered, after: fault, within: 0.1}", offBefore)
        #expect(!early.passed)
        #expect(early.message.contains("already unpowered before") && early.message.contains("off since 1.3"), "\(early.message)")
        // Off in the same few milliseconds as the step (the device side's own clock): its effect.
        var sameMoment = Self.recording()
        sameMoment.drivePowered = sameMoment.deviceTimes.map { $0 >= 0.1 && $0 < 1.398 ? 1 : 0 }
        let together = try Self.judge("{name: d, kind: drive_unpowered, after: fault, within: 0.1}", sameMoment)
        #expect(together.passed, "\(together.message)")
        var neverOn = Self.recording()
        neverOn.drivePowered = neverOn.drivePowered.map { _ in 0 }
        let never = try Self.judge("{name: d, kind: drive_unpowered, after: fault, within: 0.1}", neverOn)
        #expect(!never.passed)
        #expect(never.message.contains("never had power"), "\(never.message)")
        var real = Self.recording()
        real.hasDeviceSide = false
        let noDevice = try Self.judge("{name: d, kind: drive_unpowered, after: fault, within: 0.1}", real)
        #expect(!noDevice.passed)
        #expect(noDevice.message.contains("emulated link"))
    }

    @Test func aFailureWhoseSignalNeverCrossedIsMarkedAtTheDeadline() throws {
        var never = Self.recording()
        never.stopTime = nil
        never.stopReason = nil
        let stop = try Self.judge("{name: x, kind: stop, after: fault, reason: any, within: 0.2}", never)
        #expect(!stop.passed)
        #expect(stop.moment == 1.4 + 0.2)
        #expect(stop.plot.moment == stop.moment)
        var powered = Self.recording()
        powered.drivePowered = powered.drivePowered.map { _ in 1 }
        let kept = try Self.judge("{name: d, kind: drive_unpowered, after: fault, within: 0.3}", powered)
        #expect(!kept.passed)
        #expect(kept.moment == 1.4 + 0.3)
        let stayed = try Self.judge("{name: l, kind: leaves, signal: following_error, axis: 0, min: -1, max: 1, after: fault, within: 0.25}")
        #expect(!stayed.passed)
        #expect(stayed.moment == 1.4 + 0.25)
    }

    @Test func leavesPassesWhenTheSignalLeavesItsBandInTimeAndFailsOtherwise() throws {
        // Position 5 below the reference at 1.5 s: the following error leaves ±1 0.1 s after 'fault'.
        let spike = Self.recording(spikeAt: 1.5)
        let ok = try Self.judge("{name: l, kind: leaves, signal: following_error, axis: 0, min: -1, max: 1, after: fault, within: 0.2}", spike)
        #expect(ok.passed, "\(ok.message)")
        #expect(abs((ok.moment ?? 0) - 1.5) < 0.002)
        let late = try Self.judge("{name: l, kind: leaves, signal: following_error, axis: 0, min: -1, max: 1, after: fault, within: 0.05}", spike)
        #expect(!late.passed)
        #expect(late.message.contains("later than"))
        let never = try Self.judge("{name: l, kind: leaves, signal: following_error, axis: 0, min: -1, max: 1, after: fault, within: 0.2}")
        #expect(!never.passed)
        #expect(never.message.contains("stayed within"))
    }

    @Test func monitorStopPassesOnTheRightCheckAndCategoryInTimeAndFailsOtherwise() throws {
        var r = Self.recording()
        r.hasMonitor = true
        r.monitorTimes = r.lifecycleTimes
        r.monitorPermit = r.lifecycleTimes.map { $0 < 1.45 ? 1 : 0 }
        r.monitorFaults = [HILMonitorFault(time: 1.45, check: "velocity", category: 0, line: "fault t=1.450 s  velocity joint insertion → stop category 0")]
        let ok = try Self.judge("{name: m, kind: monitor_stop, check: velocity, category: 0, after: fault, within: 0.1}", r)
        #expect(ok.passed, "\(ok.message)")
        #expect(ok.moment == 1.45)
        let wrongCategory = try Self.judge("{name: m, kind: monitor_stop, check: velocity, category: 1, after: fault, within: 0.1}", r)
        #expect(!wrongCategory.passed)
        #expect(wrongCategory.message.contains("not 1"))
        let late = try Self.judge("{name: m, kind: monitor_stop, check: velocity, after: fault, within: 0.01}", r)
        #expect(!late.passed)
        let other = try Self.judge("{name: m, kind: monitor_stop, check: force, after: fault, within: 0.1}", r)
        #expect(!other.passed)
        #expect(other.message.contains("latched no force fault"))
        #expect(other.moment == 1.5)
        let noMonitor = try Self.judge("{name: m, kind: monitor_stop, after: fault, within: 0.1}")
        #expect(!noMonitor.passed)
        #expect(noMonitor.message.contains("did not run"))
    }

    @Test func theMonitorsLogLinesGiveTheFaults() {
        let log = """
        lumen-safety: monitoring on /tmp/x/m.sock, permits to /tmp/x/d.sock; nothing moves until an operator acknowledges
        lumen-safety: fault t=1234.567 s  velocity joint insertion  value 37.5 mm/s (limit 15 mm/s)  → stop category 0
        lumen-safety: fault t=1234.900 s  heartbeat  value 120 ms (limit 100 ms)  → stop category 1
        lumen-safety: fault t=oops
        """
        let faults = HILMonitor.faults(inLog: log)
        #expect(faults.count == 2)
        #expect(faults.first?.check == "velocity")
        #expect(faults.first?.category == 0)
        #expect(faults.first?.monotonic == 1234.567)
        #expect(faults.last?.check == "heartbeat")
        #expect(faults.last?.category == 1)
    }

    @Test func counterPassesWithinItsBoundsAndFailsOutsideOrWhenNotReported() throws {
        #expect(try Self.judge("{name: c, kind: counter, counter: rejected, min: 10}").passed)
        let over = try Self.judge("{name: c, kind: counter, counter: rejected, max: 0}")
        #expect(!over.passed)
        #expect(over.message.contains("rejected = 12"))
        let missing = try Self.judge("{name: c, kind: counter, counter: wkc_shortfalls, max: 0}")
        #expect(!missing.passed)
        #expect(missing.message.contains("does not report"))
    }

    /// `rejected` sampled every 10 ms: 0 until the storm at 1.4 s, then one more per sample up to 12.
    static func countedRecording() -> HILRecording {
        var r = recording()
        for i in 0..<200 {
            let t = Double(i) * 0.01
            r.sampleCounters(["rejected": t < 1.4 ? 0 : min(12, Int(((t - 1.4) * 100).rounded())), "frames_sent": i * 10], at: t)
        }
        return r
    }

    @Test func aCounterIsJudgedOverAWindowFromItsSamples() throws {
        let r = Self.countedRecording()
        // Nothing rejected before the storm, and at least 10 during it.
        let before = try Self.judge("{name: c, kind: counter, counter: rejected, max: 0, to: 1.35}", r)
        #expect(before.passed, "\(before.message)")
        let during = try Self.judge("{name: c, kind: counter, counter: rejected, min: 10, from: 1.4}", r)
        #expect(during.passed, "\(during.message)")
        #expect(during.message.contains("rejected counted 12 between 1.4 and 2 s"))
        // The plot shows the count since `from`, over the window only.
        let plotted = during.plot.series.first
        #expect(plotted?.v.first == 0)
        #expect(plotted?.t.allSatisfy { $0 >= 1.4 } == true)
        // A window over the storm fails at the first sample over the limit, not at the end.
        let quiet = try Self.judge("{name: c, kind: counter, counter: rejected, max: 0, from: 1.0}", r)
        #expect(!quiet.passed)
        #expect(quiet.moment.map { abs($0 - 1.41) < 0.005 } == true, "\(String(describing: quiet.moment))")
        #expect(quiet.message.contains("more than the 0 allowed"))
        let few = try Self.judge("{name: c, kind: counter, counter: rejected, min: 100, from: 1.4}", r)
        #expect(!few.passed)
        #expect(few.message.contains("fewer than the 100 required"))
    }

    @Test func aCounterKnownOnlyAtTheEndCannotBeJudgedOverAWindow() throws {
        var r = Self.countedRecording()
        r.counters["fault_stops"] = 1
        let end = try Self.judge("{name: c, kind: counter, counter: fault_stops, min: 1}", r)
        #expect(end.passed, "\(end.message)")
        let window = try Self.judge("{name: c, kind: counter, counter: fault_stops, min: 1, from: 1}", r)
        #expect(!window.passed)
        #expect(window.message.contains("was not sampled"))
        // Without samples at all (a recording from before counters were sampled), the same.
        let none = try Self.judge("{name: c, kind: counter, counter: rejected, min: 1, from: 1}")
        #expect(!none.passed)
    }

    @Test func aSampledCounterIsASignalAndItsEndCheckPlotsItsCourse() throws {
        let r = Self.countedRecording()
        let leaves = try Self.judge("{name: l, kind: leaves, signal: counter.rejected, max: 0, after: fault, within: 0.1}", r)
        #expect(leaves.passed, "\(leaves.message)")
        let range = try Self.judge("{name: l, kind: range, signal: counter.rejected, max: 0}", r)
        #expect(!range.passed)
        #expect(r.series("counter.wkc_shortfalls") == nil)
        #expect(r.series("counter.no_such") == nil)
        let end = try Self.judge("{name: c, kind: counter, counter: rejected, min: 10}", r)
        #expect(end.plot.series.first?.t.count == 200)
        // The course plot leaves the traffic out and shows what counted trouble.
        let course = r.counterCourse
        #expect(course?.series.map(\.label) == ["rejected"])
        #expect(HILRecording(axes: 1).counterCourse == nil)
    }

    @Test func aCounterFirstSeenLateCountedNothingBefore() {
        var r = HILRecording(axes: 1)
        r.sampleCounters(["a": 1], at: 0)
        r.sampleCounters(["a": 2, "b": 5], at: 1)
        r.sampleCounters(["b": 6], at: 2)
        #expect(r.counterSeries["a"] == [1, 2, 2])
        #expect(r.counterSeries["b"] == [0, 5, 6])
        #expect(r.counterTimes == [0, 1, 2])
    }

    @Test func reportsCarryTheVerdictsTheNoticeAndTheExitCode() throws {
        let pass = try Self.judge("{name: c, kind: counter, counter: rejected, min: 10}")
        let fail = try Self.judge("{name: d, kind: counter, counter: rejected, max: 0}")
        var a = HILScenarioResult(scenario: "a&b", file: "a.yaml", description: "", link: "serial", faultsSwitchedOff: false)
        a.status = .passed
        a.checks = [pass]
        var b = a
        b.scenario = "second"
        b.status = .failed
        b.checks = [pass, fail]
        let suite = HILSuiteReport(results: [a, b])
        #expect(suite.exitCode == 1)
        #expect(HILSuiteReport(results: [a]).exitCode == 0)
        #expect(HILSuiteReport(results: [a], loadErrors: ["x.yaml: bad"]).exitCode == 2)
        let xml = suite.junitXML
        #expect(xml.contains("name=\"a&amp;b\""))
        #expect(xml.contains("<failure message=\"rejected = 12"))
        #expect(xml.contains("failures=\"1\""))
        let html = suite.html { _ in Data([1, 2, 3]) }
        #expect(html.contains("not real-time"))
        #expect(html.contains("data:image/png;base64,AQID"))
        #expect(html.contains("a&amp;b"))
    }
}
