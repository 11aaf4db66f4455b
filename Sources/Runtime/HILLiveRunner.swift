import Control
import Core
import Drivers
import Foundation
import Scenarios
import Sim

/// Runs HIL scenarios on the live runtime — the one the demo and the console run, with its
/// lifecycle and its operator port — on the scenario's link: the steps become an automation
/// client's intents (enable is hold, a move a joint move, the deadman held by repetition, an
/// emergency stop the port's emergency stop), the signals come from its read side (the cycle's records,
/// its snapshot, the link counters it publishes every cycle), and faults are injected at the
/// emulated drives as `HILRunner` injects them. Scenarios this runtime cannot run yet are
/// skipped with the reason (`HILRunner` runs them).
public enum HILLiveRunner {
    /// Runs `scenario` on a `LiveRuntime` and judges its expectations.
    public static func run(_ scenario: HILScenario, options: HILRunOptions = HILRunOptions()) -> HILScenarioResult {
        HILRunner.judge(scenario, options: options) { try record(scenario, link: $0, options: options) }
    }

    /// Why the live runtime does not run `s` (nil: it does).
    public static func refusal(_ s: HILScenario) -> String? {
        if s.hasMonitor {
            return "runs the safety monitor on its own limits file (setup.limits); the live runtime's monitor guards the scene's vessel"
        }
        let portless: [HILScenario.Action] = [.silence_host, .monitor_kill, .monitor_hang]
        if let step = s.steps.first(where: { portless.contains($0.action) }) {
            return "its step '\(step.action.rawValue)' has no counterpart on the live runtime's operator port"
        }
        if s.setup.rate_hz != 1000 { return "the live runtime's cycle runs at 1000 Hz, not \(s.setup.rate_hz)" }
        // Measured: encoder-freeze passed with its freeze switched off (a following error of
        // 1.2 mm mid-move, its band 0.5 mm), so its verdict here would say nothing.
        if s.setup.drives == "emulated" {
            return "on the live runtime the emulated drive dynamics lag its command by more than the bands these scenarios judge a fault by"
        }
        return nil
    }

    static func record(_ s: HILScenario, link linkText: String, options: HILRunOptions) throws -> (HILRecording, String) {
        if let r = refusal(s) { throw HILRunSkip(reason: r + " (run it with --runtime cycle)") }
        let robot: RobotDescription
        do { robot = try ConfigLoader.load(RobotDescription.self, from: s.resolvedRobotPath) } catch { throw HILRunError.link("robot: \(error.description)") }
        let drives: LiveDrives
        do { drives = try LiveDrives(parsing: linkText) } catch { throw HILRunError.link(error.description) }
        if drives == .simulated {
            throw HILRunSkip(reason: "sim has no link to test: use serial (emulated DriveLink drives) or ethercat-udp (emulated EtherCAT slaves)")
        }
        if !drives.isEmulated {
            if let f = s.injectedFaults.first { throw HILRunSkip(reason: "injects \(f.rawValue), which needs an emulated link; \(linkText) is a real one") }
            if let e = s.expect.first(where: { $0.kind == .drive_unpowered || ($0.signal ?? "").hasPrefix("drive_") }) {
                throw HILRunSkip(reason: "'\(e.name)' judges the drive's own power stage, which only an emulated link reports; \(linkText) is a real one")
            }
        }
        var settings = LiveSettings()
        // The scene only sets up the runtime (nothing is imaged, the patient does not follow):
        // a straight tube, no imaging, and no monitor (scenarios with one run on `HILRunner`).
        settings.setup.phantom = "straight"
        settings.setup.vessel = "tube"
        settings.setup.depth = 90
        settings.imaging = .off
        settings.monitor = false
        settings.drives = drives
        settings.driveDynamics = s.setup.drives == "emulated" ? .emulated(nil) : .ideal
        // Every signal a scenario judges is the drives' (joints, power, counters) and its force
        // is injected at the emulated drive: the patient's rod physics would only slow the cycle.
        settings.patientFollowsDrives = false
        settings.linkLossCycles = min(1000, max(2, s.setup.link_loss_cycles))
        // A timeline thread held back on a loaded machine must not read as a released deadman.
        settings.deadmanTimeout = 1
        settings.emulatedDriveWatchdog = UInt32(min(1_000_000, max(5_000, s.setup.watchdog_ms * 1000)))
        settings.realtime = RealtimeOptions(fifoPriority: options.fifoPriority)
        let runtime: LiveRuntime
        do { runtime = try LiveRuntime(settings, robot: robot) } catch { throw HILRunError.link(error.description) }
        var device: (any HILDeviceSide)?
        if let e = runtime.emulatedDrives {
            if let emulator = e.emulator {
                device = DriveLinkDeviceSide(emulator: emulator, emulatedDynamics: s.setup.drives == "emulated")
            } else if let segment = e.segment, let server = e.server {
                segment.watchdog = Nanoseconds(s.setup.watchdog_ms * 1e6)
                device = EtherCATDeviceSide(segment: segment, server: server, axes: robot.axes.count)
            }
        }
        if let d = device {
            for f in s.injectedFaults { if let r = d.refusal(f) { throw HILRunSkip(reason: r) } }
        }
        do { try runtime.start() } catch {
            _ = runtime.finish(.completed)
            throw HILRunError.link(error.description)
        }
        let rec = timeline(s, runtime: runtime, device: device, options: options)
        return (rec, "\(runtime.linkName) on the live runtime")
    }

    /// The steps at their times as an automation client's intents, and every signal sampled
    /// between them; then the run ended through the runtime's lifecycle.
    static func timeline(_ s: HILScenario, runtime: LiveRuntime, device: (any HILDeviceSide)?, options: HILRunOptions) -> HILRecording {
        let axes = runtime.shared.joints
        let who = OperatorIdentity(name: s.name, role: .automation, source: "hil scenario \(s.name)")
        var rec = HILRecording(axes: axes)
        rec.hasDeviceSide = device != nil
        let faultsOff = options.faultsSwitchedOff
        let origin = MonotonicClock.now()
        func now() -> Double { Double(MonotonicClock.now() - origin) * 1e-9 }
        var deadman = false
        var lastDeadman: Nanoseconds = 0
        var next = 0
        var wasActive = false
        // An operator's stop through the port: when it was sent, its category, in words.
        var operatorStop: (time: Double, category: Int, detail: String)?
        // The stop category the runtime's snapshot showed when the host left active.
        var shownCategory: Int?
        let poll = Nanoseconds(options.pollInterval * 1e9)
        func submit(_ intent: OperatorIntent, _ t: Double) {
            if case .failure(let r) = runtime.submit(intent, from: who) { rec.notes.append("\(intent) at \(HILRunner.fmt(t)) s refused: \(r)") }
        }
        while true {
            let t = now()
            while let step = rec.takeDueStep(s.steps, next: &next, at: t, faultsOff: faultsOff, now: now) {
                switch step.action {
                case .enable:
                    // Power on the drives and hold still, the deadman held from now on.
                    deadman = true
                    submit(.deadman(held: true), t)
                    lastDeadman = MonotonicClock.now()
                    submit(.mode(.hold), t)
                case .disable:
                    submit(.stop, t)
                    if operatorStop == nil { operatorStop = (now(), 1, "an operator's stop through the port (category 1: controlled stop, then power off)") }
                case .estop:
                    submit(.emergencyStop, t)
                    if operatorStop == nil { operatorStop = (now(), 0, "an operator's emergency stop through the port (category 0: power off at once)") }
                case .move:
                    guard let axis = step.axis, let duration = step.duration, let amount = step.by ?? step.to else { continue }
                    submit(.jointMove(axis: axis, position: amount, relative: step.by != nil, duration: duration, smooth: step.profile != .linear), t)
                case .deadman_release:
                    deadman = false
                    submit(.deadman(held: false), t)
                case .deadman_press:
                    deadman = true
                    submit(.deadman(held: true), t)
                    lastDeadman = MonotonicClock.now()
                case .inject: device?.inject(step)
                case .clear: device?.clear(step.fault)
                case .silence_host, .monitor_kill, .monitor_hang: break // refused before the run
                }
            }
            // Held as a console holds it: repeated well within the runtime's deadman timeout.
            if deadman, MonotonicClock.now() - lastDeadman > 50_000_000 {
                _ = runtime.submit(.deadman(held: true), from: who)
                lastDeadman = MonotonicClock.now()
            }
            drainRecords(runtime, origin: origin, into: &rec)
            let snap = runtime.snapshot()
            // Active: the lifecycle active and the supervisor out of idle (the drives asked for power).
            let active = snap.lifecycle == .active && snap.mode != .idle && !runtime.shared.stopLatched
            rec.lifecycleTimes.append(t)
            rec.active.append(active ? 1 : 0)
            // When the runtime shows it stopped (not when the stop was sent): the intent's way
            // through the queue and the cycle is part of the reaction.
            if wasActive, !active, rec.stopTime == nil {
                rec.stopTime = t
                shownCategory = snap.safety.stopCategory
            }
            wasActive = active
            rec.sample(device: device, counters: runtime.liveLinkCounters, at: t)
            if t >= s.setup.duration_s { break }
            _ = MonotonicClock.sleep(until: MonotonicClock.now() + poll)
        }
        let ending = runtime.finish(.completed)
        drainRecords(runtime, origin: origin, into: &rec)
        rec.ending = ending.description
        let cycle = runtime.counters
        // The category of an operator's stop is the one the runtime showed as the host stopped.
        rec.noteStop(cycle.stop, operatorStop: operatorStop.map { op in
            let shown = shownCategory ?? op.category
            return (shown, op.detail + (shown == op.category ? "" : "; the runtime showed category \(shown)"))
        })
        rec.finish(link: runtime.linkStatistics ?? [:], cycle: cycle, device: device, duration: now())
        let lost = runtime.shared.recorderRecords.lost
        if lost > 0 { rec.notes.append("\(lost) cycles not recorded (the record ring overflowed)") }
        rec.runtime = "the live runtime (LiveRuntime: its lifecycle, its operator port, its cycle's records and link counters; "
            + "imaging off, the simulated patient not following the drives, no safety monitor), its link counters published every cycle and sampled every \(Int(options.pollInterval * 1000)) ms"
        let refused = runtime.warnings
        rec.realtime = options.fifoPriority == nil
            ? "not real-time: every thread on SCHED_OTHER (asked for); timings are those of a host that is not real-time"
            : refused.isEmpty ? "real-time: the cycle and the emulated drives on SCHED_FIFO \(options.fifoPriority ?? 0)"
            : "not real-time (the cycle: \(refused.joined(separator: "; "))): timings are those of a host that is not real-time"
        rec.notes.append(rec.realtime)
        return rec
    }

    /// Moves the cycle's records (reference = the command, position = the drives' reading) into
    /// the recording, times from `origin`.
    static func drainRecords(_ runtime: LiveRuntime, origin: Nanoseconds, into rec: inout HILRecording) {
        let axes = rec.axes
        var times: [Double] = []
        var reference: [[Double]] = Array(repeating: [], count: rec.axes)
        var position: [[Double]] = Array(repeating: [], count: rec.axes)
        _ = runtime.drainCycleRecords { r in
            times.append(Double(r.time - origin) * 1e-9)
            for i in 0..<axes {
                reference[i].append(r.command.position[i])
                position[i].append(r.joints.position[i])
            }
        }
        // Before the timeline's origin: the start-up, not the scenario.
        let first = times.firstIndex { $0 >= 0 } ?? times.count
        rec.times += times[first...]
        for i in 0..<rec.axes {
            rec.reference[i] += reference[i][first...]
            rec.position[i] += position[i][first...]
        }
    }
}
