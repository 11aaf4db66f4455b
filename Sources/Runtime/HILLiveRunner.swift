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
/// emulated drives as `HILRunner` injects them. A silent host and the monitor killed or hung
/// have no intent (a crashed host sends none): they go through the runtime's fault hook
/// (`LiveRuntime.inject`). With `setup.limits` the runtime starts and supervises the monitor
/// on that file (serial only: its permits reach the emulated drives' safe-torque-off input).
/// A scenario this runtime cannot run (a cycle rate other than its 1 kHz) is skipped with the
/// reason (`HILRunner`, `--runtime cycle`, runs it).
public enum HILLiveRunner {
    /// Runs `scenario` on a `LiveRuntime` and judges its expectations.
    public static func run(_ scenario: HILScenario, options: HILRunOptions = HILRunOptions()) -> HILScenarioResult {
        HILRunner.judge(scenario, options: options) { try record(scenario, link: $0, options: options) }
    }

    /// Why the live runtime does not run `s` (nil: it does).
    public static func refusal(_ s: HILScenario) -> String? {
        if s.setup.rate_hz != 1000 { return "the live runtime's cycle runs at 1000 Hz, not \(s.setup.rate_hz)" }
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
        // a straight tube, no imaging; the monitor only with the scenario's limits file.
        settings.setup.phantom = "straight"
        settings.setup.vessel = "tube"
        settings.setup.depth = 90
        settings.imaging = .off
        settings.monitor = false
        if let limits = s.resolvedLimitsPath {
            // The monitor's permits reach the emulated DriveLink drives' safe-torque-off input only.
            guard drives == .emulatedDriveLink else {
                throw HILRunSkip(reason: "runs the safety monitor on the emulated DriveLink drives' safe-torque-off input, which \(linkText) does not have (use --link serial)")
            }
            settings.monitor = true
            settings.monitorLimits = limits
            settings.safetyWatchdog = min(1, max(0.005, s.setup.monitor_watchdog_ms / 1000))
        }
        settings.drives = drives
        settings.driveDynamics = s.setup.drives == "emulated" ? .emulated(nil) : .ideal
        // Every signal a scenario judges is the drives' (joints, power, counters) and its force
        // is injected at the emulated drive: the patient's rod physics would only slow the cycle.
        settings.patientFollowsDrives = false
        // The scenarios' posture on either runtime: their moves and the bench limits assume it
        // (from the scene's 60 mm, `limit-position`'s move to 125 mm ran at 14.4 mm/s, not its
        // 5.6, and latched `velocity` on any stall before `position`). A real drive stands where
        // it stands.
        if drives.isEmulated { settings.emulatedDrivesStart = HILRunner.startPosture(CatheterModel(robot)).array }
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
        rec.hasMonitor = runtime.settings.monitor
        let faultsOff = options.faultsSwitchedOff
        var deadman = false
        var lastDeadman: Nanoseconds = 0
        if rec.hasMonitor {
            // The monitor permits power only with the deadman held and an operator's acknowledge
            // (its start-up latch): both, as an operator at the console, until it does. The
            // scenario's time starts then; the deadman stays held.
            let end = MonotonicClock.now() + 10_000_000_000
            var lastAcknowledge: Nanoseconds = 0
            while !runtime.snapshot().safety.powerPermitted, MonotonicClock.now() < end {
                _ = runtime.submit(.deadman(held: true), from: who)
                if MonotonicClock.now() - lastAcknowledge > 100_000_000 {
                    _ = runtime.submit(.acknowledgeFaults, from: who)
                    lastAcknowledge = MonotonicClock.now()
                }
                usleep(20_000)
            }
            if !runtime.snapshot().safety.powerPermitted {
                rec.notes.append("the safety monitor gave no permit within 10 s: \(runtime.monitorLog.suffix(600))")
            }
            deadman = true
            lastDeadman = MonotonicClock.now()
        }
        let origin = MonotonicClock.now()
        func now() -> Double { Double(MonotonicClock.now() - origin) * 1e-9 }
        var next = 0
        var wasActive = false
        // An operator's stop through the port: when it was sent, its category, in words.
        var operatorStop: (time: Double, category: Int, detail: String)?
        // The stop category the runtime's snapshot showed when the host left active.
        var shownCategory: Int?
        // The host's stop followed the monitor's (a stop it sent, or its permits running out).
        var followedMonitor = false
        let poll = Nanoseconds(options.pollInterval * 1e9)
        func monitorEnded(_ snap: RuntimeSnapshot) -> Bool {
            runtime.shared.published.read().stopFollowsMonitor || !snap.safety.powerPermitted || runtime.shared.monitorStopping
        }
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
                case .silence_host:
                    // Beside the port (a crashed host sends no intent): the cycle stops where it stands.
                    if !runtime.inject(.hostSilent) { rec.notes.append("silence_host at \(HILRunner.fmt(t)) s: the runtime was not running") }
                case .monitor_kill, .monitor_hang:
                    if !runtime.inject(step.action == .monitor_kill ? .monitorKilled : .monitorHung) {
                        rec.notes.append("\(step.action.rawValue) at \(HILRunner.fmt(t)) s: no monitor running")
                    }
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
            let stoppedNow = wasActive && !active && rec.stopTime == nil
            if stoppedNow {
                rec.stopTime = t
                shownCategory = snap.safety.stopCategory
            }
            // A stop the monitor sent, or its permits that ran out (the cycle latches that as
            // its own stop: nothing of the monitor's to show), as the cycle read them: the
            // monitor's status in the snapshot can say it still permits power after its
            // permits stopped reaching the cycle (a monitor starved on a loaded machine). Read
            // when the stop shows and, while it is latched, again until published: the cycle
            // raises its stop flag before it publishes why (a loaded machine can hold it back
            // between the two), and nothing acknowledges the latch during a scenario.
            if rec.stopTime != nil, !followedMonitor, stoppedNow || runtime.shared.stopLatched {
                followedMonitor = monitorEnded(snap)
            }
            wasActive = active
            rec.sample(device: device, counters: runtime.liveLinkCounters, at: t)
            if rec.hasMonitor {
                rec.monitorTimes.append(t)
                rec.monitorPermit.append(snap.safety.powerPermitted ? 1 : 0)
            }
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
        if rec.hasMonitor {
            // What it latched, from its log (read after it stopped), on the timeline's clock.
            let o = Double(origin) * 1e-9
            rec.monitorFaults = HILMonitor.faults(inLog: runtime.monitorLog).map {
                HILMonitorFault(time: $0.monotonic - o, check: $0.check, category: $0.category, line: $0.line)
            }
            let atStart = rec.monitorFaults.filter { $0.time < 0 }
            if !atStart.isEmpty { rec.notes.append("the monitor latched \(atStart.map(\.check).joined(separator: ", ")) at start-up, cleared by the first acknowledge") }
            for f in rec.monitorFaults where f.time >= 0 { rec.notes.append(String(format: "the monitor latched at %.3f s: ", f.time) + f.line) }
        }
        if rec.stopReason == nil, followedMonitor, let stop = rec.stopTime {
            // The stop in effect is the monitor's: the most severe it latched up to the host's
            // stop; none latched (killed, hung) is its permits running out, power off at once.
            let latched = rec.monitorFaults.filter { $0.time >= 0 && $0.time <= stop + 0.005 }
            let category = latched.map(\.category).min() ?? 0
            rec.stopReason = .monitor
            rec.stopCategory = category
            rec.stopPowerLost = category < 2
            rec.stopDetail = latched.isEmpty
                ? "the host's stop follows the safety monitor's: its permits ended and the drives' safety input removed power"
                : "the host's stop follows the safety monitor's (\(latched.map(\.check).joined(separator: ", ")), category \(category)"
        }
        let lost = runtime.shared.recorderRecords.lost
        if lost > 0 { rec.notes.append("\(lost) cycles not recorded (the record ring overflowed)") }
        let monitorText = rec.hasMonitor
            ? "the safety monitor (lumen-safety, started and supervised by the runtime) on \(runtime.settings.monitorLimits ?? "")"
            : "no safety monitor"
        rec.runtime = "the live runtime (LiveRuntime: its lifecycle, its operator port, its cycle's records and link counters; "
            + "imaging off, the simulated patient not following the drives, \(monitorText)), "
            + "its link counters published every cycle and sampled every \(Int(options.pollInterval * 1000)) ms"
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
