import Control
import Core
import Foundation
import Scenarios
import Sim
import Synchronization

/// The figures of a live run's timing (µs unless named otherwise).
public struct LiveTiming: Encodable, Sendable {
    /// Acquisition → the first cycle that fused the measurement.
    public var frame_to_command_ms_p50: Double
    public var frame_to_command_ms_p99: Double
    /// Per exposure: measuring it (detection, tracking, pairing), rendering excluded.
    public var tracking_ms_p50: Double
    public var tracking_ms_p99: Double
    public var lateness_us_p99_imaging_on: Double
    public var lateness_us_p99_imaging_off: Double
    /// on / off, in the same run (nil when either phase has too few cycles).
    public var lateness_ratio: Double?
    public var cycles_imaging_on: Int
    public var cycles_imaging_off: Int
    public var compute_us_p50: Double
    public var compute_us_p99: Double
    /// The gap between consecutive heartbeats the cycle sent: the oldest the monitor's view of
    /// the cycle can be, short of the socket's own delay.
    public var heartbeat_age_ms_p99: Double
    public var fused_measurements: Int
}

/// What one live navigation did: `lumen demo` prints it and writes it to summary.json.
public struct LiveNavigationResult: Encodable, Sendable {
    public var setup: NavigationSetup
    public var success: Bool
    public var reason: String
    /// completed, drive_fault, link_lost, signal, monitor_lost; the exit code says the same.
    public var ending: String
    public var exit_code: Int32
    public var wall_s: Double
    public var time_to_target_s: Double?
    public var final_err_mm: Double
    public var peak_contact_n: Double
    /// N — the largest axial push at the sheath (what the monitor's insertion-force check reads).
    public var peak_insertion_n: Double
    public var fused: ErrorFigures
    public var image_only: ErrorFigures
    public var frames_acquired: [UInt64]
    public var frames_dropped: [UInt64]
    public var tracked_pct: Double
    public var timing: LiveTiming
    public var deadman_timeouts: Int
    public var monitor: Bool
    public var monitor_faults: [String]
    public var mode_at_end: String
    public var lifecycle_at_end: String
    public var warnings: [String]
    /// Where the drives were (`sim`, or the link in words), the link's counters, how the run
    /// ended in words (the drive fault, the lost link), and whether any drive's power stage was
    /// still on after the end (on a device: whether the host still asked for power).
    public var link = "sim"
    public var link_stats: [String: Int]?
    public var ending_detail = ""
    public var drives_powered_at_end = false
}

/// The paths of a live run, every 50 ms of wall clock, for plots.
public struct LiveTrace: Sendable {
    public var time: [Double] = []
    public var truth: [Vec3] = []
    public var fused: [Vec3] = []
    public var fusedError: [Double] = []
    public var route: [Vec3] = []
    public var tree: VesselTreeDescription?
    /// ms — frame-to-command latencies, for the histogram.
    public var latencies: [Double] = []
    public init(route: [Vec3], tree: VesselTreeDescription?) { self.route = route; self.tree = tree }
}

/// A live navigation: the runtime at wall clock, driven through its operator port by an
/// automation client, as an operator at the console would drive it: it holds the deadman
/// (repeated every 50 ms), acknowledges the monitor's start-up latch, then picks the route's
/// target. The run ends when the servo has held the target for a second on a fresh image
/// estimate, at the time limit, on a signal, or when the cycle or the monitor stops it.
/// What attaches to a live run from outside the runtime (a recorder, servers): started once the
/// runtime runs, stopped after it ended.
public struct LiveAttachment {
    public var start: () -> Void
    public var stop: () -> Void
    public init(start: @escaping () -> Void, stop: @escaping () -> Void) { self.start = start; self.stop = stop }
}

public enum LiveNavigation {
    /// `attach` is called with the built runtime before it starts; an error there refuses the run.
    public static func run(_ settings: LiveSettings, robot: RobotDescription, maxSeconds: Double,
                           attach: ((LiveRuntime) throws -> LiveAttachment)? = nil,
                           progress: ((String) -> Void)? = nil) throws(RuntimeError) -> (LiveNavigationResult, LiveTrace) {
        let started = MonotonicClock.now()
        // A replay is watched, not navigated by; anything else navigates by its images, which
        // under the monitor takes two planes: refused here, with the reason, rather than ending
        // in the monitor's stale-image stop a moment after the target.
        let replaying: Bool
        if case .replay = settings.imaging { replaying = true } else { replaying = false }
        if !replaying, let refusal = LiveRuntime.imageTipRefusal(monitor: settings.monitor, imagingPlanes: settings.imaging.steeringPlanes) {
            throw .badSetting(field: "planes", reason: refusal.description)
        }
        let runtime = try LiveRuntime(settings, robot: robot)
        var attached: LiveAttachment?
        do { attached = try attach?(runtime) } catch { throw .attachment("\(error)") }
        try runtime.start()
        attached?.start()
        defer { attached?.stop() }
        let client = AutomationClient(port: runtime)
        client.start()
        defer { client.stop() }
        if !runtime.waitForPower(), liveSignal.load(ordering: .relaxed) == 0 {
            _ = runtime.finish(.completed)
            throw .monitorNeverPowered(log: runtime.monitorLog)
        }
        if replaying {
            progress?("live: the replayed sequence is tracked and shown, not navigated by (its catheter is not this robot's): the robot holds")
        } else if liveSignal.load(ordering: .relaxed) == 0 {
            client.navigate(to: settings.setup.vessel)
        }

        var trace = LiveTrace(route: runtime.scene.route, tree: runtime.scene.tree)
        var fusedErr: [Double] = []
        var arrivedAt: Double?
        var nextSample = MonotonicClock.now()
        let goal = runtime.scene.goal
        // A monitor stop that nobody acknowledges ends the run (the automation client does not
        // acknowledge a fault for a person), rather than idling to the time limit.
        var safetyStopSince: Nanoseconds?
        var safetyStop: Int?
        // A servo that spent its bounded attempts holds where it is: the run ends there, with
        // what it says to do, rather than idling to the time limit (as a simulated-time run does).
        var gaveUp: PathServoFailure?
        var ending = runtime.supervise(maxSeconds: maxSeconds, progress: { snap in
            let tip = runtime.trueTip ?? .zero
            let frames = snap.framesAcquired.map(String.init).joined(separator: "+")
            // The insertion measured and commanded, and the age of the image tip the monitor checks: a
            // command running ahead of the catheter, or images the monitor cannot use, show here first.
            let imageTipAge = runtime.shared.imageTip.latest.map { String(format: "%.0f ms", Double(MonotonicClock.now() - $0.acquiredAt) * 1e-6) } ?? "none"
            progress?(String(format: "live: t %.1f s, tip %.1f mm from target, fused error %.2f mm, %@, insertion %.1f mm (commanded %.1f), image tip %@, %@ frames (%llu dropped), monitor %@",
                             Double(MonotonicClock.now() - started) * 1e-9, (tip - goal).length, (snap.estimate.position - tip).length,
                             "\(snap.mode)", snap.joints.position.count > 0 ? snap.joints.position[0] : 0,
                             snap.command.position.count > 0 ? snap.command.position[0] : 0, imageTipAge, frames,
                             snap.framesDropped.reduce(0, +), snap.safety.powerPermitted ? (snap.safety.stopCategory == nil ? "permits power" : "stops (power kept)") : "no power"))
        }) { snap in
            let now = MonotonicClock.now()
            if now >= nextSample, let tip = runtime.trueTip {
                nextSample = now + 50_000_000
                let e = (snap.estimate.position - tip).length
                trace.time.append(Double(now - started) * 1e-9)
                trace.truth.append(tip)
                trace.fused.append(snap.estimate.position)
                trace.fusedError.append(e)
                if snap.estimate.health != .lost { fusedErr.append(e) }
            }
            if runtime.servoArrived, snap.estimate.health == .imageFresh {
                if arrivedAt == nil { arrivedAt = Double(now - started) * 1e-9 }
            } else if !runtime.servoArrived {
                arrivedAt = nil
            }
            if let a = arrivedAt, Double(now - started) * 1e-9 > a + 1 { return true }
            if arrivedAt == nil, let f = runtime.servoFailure {
                gaveUp = f
                return true
            }
            // Power removed (category 0 or 1), or kept for a category-2 stop the cycle then made
            // its own: either way nothing moves until someone acknowledges.
            if settings.monitor, snap.safety.stopCategory != nil, !snap.safety.latchedFaults.isEmpty,
               !snap.safety.powerPermitted || snap.mode == .idle || snap.mode == .hold {
                let since = safetyStopSince ?? now
                safetyStopSince = since
                if now - since > 3_000_000_000 {
                    // The category of the monitor's most severe fault latched since the last
                    // acknowledge (0 is the most severe).
                    safetyStop = snap.safety.latchedFaults.map { $0.contains("category 0") ? 0 : $0.contains("category 2") ? 2 : 1 }.min() ?? 0
                    return true
                }
            } else {
                safetyStopSince = nil
            }
            return false
        }
        if ending == .completed, let c = safetyStop { ending = .safetyStop(category: c) }
        // Arrived or not, the run ends with a category-1 stop before the drives are disabled.
        if ending == .completed { runtime.stopAndSettle() }
        client.stop()
        let finalSnap = runtime.snapshot()
        ending = runtime.finish(ending)
        let finalTip = runtime.trueTip ?? .zero
        let finalError = (finalTip - goal).length
        let success = ending == .completed && arrivedAt != nil && finalError <= 1.0
        let reason: String
        switch ending {
        case .completed:
            reason = success ? "arrived"
                : arrivedAt != nil ? String(format: "arrived by the estimate, but the true tip is %.3f mm off", finalError)
                : gaveUp.map { "the servo gave up: \($0)" } ?? "time limit"
        default: reason = ending.description
        }
        let g = runtime.imagingFigures ?? ImagingFigures(acquired: [], dropped: [])
        let (timing, fuse) = runtime.drainTiming(tracking: g.trackingTimes)
        trace.latencies = fuse.map { Double($0) * 1e-6 }
        let frames = g.acquired.reduce(0, +)
        let faults = runtime.events(after: 0, limit: 10_000).compactMap { e -> String? in
            if case .fault(let t, _) = e.kind { return t }
            return nil
        }
        var result = LiveNavigationResult(
            setup: settings.setup, success: success, reason: reason, ending: ending.key, exit_code: ending.exitCode,
            wall_s: round3(Double(MonotonicClock.now() - started) * 1e-9), time_to_target_s: arrivedAt.map(round3),
            final_err_mm: round3(finalError), peak_contact_n: round3(runtime.peakContactForce),
            peak_insertion_n: round3(runtime.peakPushForce), fused: ErrorFigures(fusedErr),
            image_only: ErrorFigures(g.imageErrors), frames_acquired: g.acquired, frames_dropped: g.dropped,
            tracked_pct: frames > 0 ? round1(100 * Double(g.tracked) / Double(frames)) : 0, timing: timing,
            deadman_timeouts: runtime.deadmanTimeouts, monitor: settings.monitor, monitor_faults: Array(faults.prefix(50)),
            mode_at_end: "\(finalSnap.mode)", lifecycle_at_end: "\(runtime.lifecycle)", warnings: runtime.warnings + (g.failure.map { [$0] } ?? []))
        result.link = runtime.linkName
        result.link_stats = runtime.linkStatistics
        result.ending_detail = ending.description
        result.drives_powered_at_end = runtime.drivesPowered
        return (result, trace)
    }

    static func p(_ v: [Int64], _ q: Double, scale: Double) -> Double { v.isEmpty ? 0 : percentile(v.map { Double($0) * scale }, q) }

    public static func timing(fuse: [Int64], tracking: [Int64], lateOff: [Int64], lateOn: [Int64], compute: [Int64], heartbeat: [Int64]) -> LiveTiming {
        let on = p(lateOn, 99, scale: 1e-3), off = p(lateOff, 99, scale: 1e-3)
        return LiveTiming(
            frame_to_command_ms_p50: round3(p(fuse, 50, scale: 1e-6)), frame_to_command_ms_p99: round3(p(fuse, 99, scale: 1e-6)),
            tracking_ms_p50: round3(p(tracking, 50, scale: 1e-6)), tracking_ms_p99: round3(p(tracking, 99, scale: 1e-6)),
            lateness_us_p99_imaging_on: round1(on), lateness_us_p99_imaging_off: round1(off),
            lateness_ratio: lateOn.count >= 1000 && lateOff.count >= 1000 && off > 0 ? round3(on / off) : nil,
            cycles_imaging_on: lateOn.count, cycles_imaging_off: lateOff.count,
            compute_us_p50: round1(p(compute, 50, scale: 1e-3)), compute_us_p99: round1(p(compute, 99, scale: 1e-3)),
            heartbeat_age_ms_p99: round3(p(heartbeat, 99, scale: 1e-6)), fused_measurements: fuse.count)
    }
}

/// An operator stand-in on the port: holds the deadman (repeated every 50 ms on its own thread)
/// and sends what it is asked to, with the automation role, through `submit` as the console does.
public final class AutomationClient: @unchecked Sendable {
    let port: any OperatorPort
    let who: OperatorIdentity
    let running = Atomic<Bool>(false)
    let holding = Atomic<Bool>(true)
    let done = DispatchSemaphore(value: 0)

    public init(port: any OperatorPort, name: String = "lumen demo") {
        self.port = port
        who = OperatorIdentity(name: name, role: .automation, source: "in-process automation")
    }

    public func start() {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let thread = Thread { [self] in
            while running.load(ordering: .acquiring) {
                _ = port.submit(.deadman(held: holding.load(ordering: .relaxed)), from: who)
                usleep(50_000)
            }
            done.signal()
        }
        thread.name = "lumen-automation"
        thread.start()
    }

    /// Stops repeating the deadman: after the runtime's deadman timeout it counts as released.
    public func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) { done.wait() }
    }

    /// Releases (or presses again) the deadman, as a hand leaving the pedal.
    public func hold(_ held: Bool) { holding.store(held, ordering: .relaxed) }

    /// Acknowledges the monitor's latched faults once the deadman is held, the first image has
    /// been fused (an operator looks at the fluoroscopy before navigating by it) and, with a
    /// monitor and two planes, the monitor has a fresh image-measured tip; then picks the target.
    /// Not ready within `seconds`, it picks none (`modeRefused(.estimateLost)`): the tip servo is
    /// image-guided, and the monitor stops an image-guided robot without an image tip at once
    /// (`image_stale`, docs/safety/tip-evidence.md).
    @discardableResult
    public func navigate(to target: String, seconds: Double = 10) -> Result<IntentReceipt, IntentRejection> {
        let end = MonotonicClock.now() + Nanoseconds(seconds * 1e9)
        var ready = false
        while MonotonicClock.now() < end, liveSignal.load(ordering: .relaxed) == 0 {
            if Self.ready(port.snapshot(), port.runtimeDescription, now: MonotonicClock.now()) {
                ready = true
                break
            }
            usleep(5000)
        }
        if !ready { return .failure(.modeRefused(.estimateLost)) }
        _ = port.submit(.acknowledgeFaults, from: who)
        // The monitor's deadman latch clears on the acknowledge's edge; give it a few cycles (on
        // a loaded machine more: a target the cycle takes while the monitor still stops the
        // drives is a stop of its own).
        let settle = MonotonicClock.now() + 5_000_000_000
        while port.snapshot().safety.stopCategory != nil, MonotonicClock.now() < settle { usleep(5000) }
        return port.submit(.namedTarget(target), from: who)
    }

    public func submit(_ intent: OperatorIntent) -> Result<IntentReceipt, IntentRejection> { port.submit(intent, from: who) }

    /// Whether image-guided navigation may start: the deadman held, an image fused, and (where a
    /// monitor checks a biplane tip) an image tip the monitor counts as fresh, with half its age
    /// limit left for the acknowledge and the target to reach the cycle.
    static func ready(_ s: RuntimeSnapshot, _ d: RuntimeDescription, now: Nanoseconds) -> Bool {
        if !s.safety.deadmanHeld { return false }
        if d.planes.isEmpty { return true }
        if s.estimate.lastImageAt <= 0 { return false }
        // A monitor that judges the images says how old they may be; two planes give it a tip.
        if d.imageMaxAge <= 0 || d.planes.count < 2 { return true }
        let at = s.safety.imageTipAt
        if at <= 0 || at > now { return false }
        return now - at <= d.imageMaxAge / 2
    }
}

/// Live runs beside the simulated-time runs of the same setups (`lumen eval navigation --live`).
public struct LiveNavigationSummary: Encodable, Sendable {
    public struct Pair: Encodable, Sendable {
        public var run: Int
        public var vessel: String
        public var seed: UInt64
        public var simulated_success: Bool
        public var live_success: Bool
        public var simulated_final_err_mm: Double
        public var live_final_err_mm: Double
        public var live_ending: String
    }
    public var runs: Int
    public var live_success_rate: Double
    public var simulated_success_rate: Double
    public var live_final_err_mm_median: Double
    public var simulated_final_err_mm_median: Double
    public var live_time_to_target_s_median: Double?
    public var live_frame_to_command_ms_p99_median: Double
    public var live_lateness_us_p99_max: Double
    public var pairs: [Pair]
    public var live: [LiveNavigationResult]

    public init(first: Int, simulated: [NavigationResult], live: [LiveNavigationResult]) {
        runs = live.count
        live_success_rate = round3(Double(live.filter(\.success).count) / Double(max(1, live.count)))
        simulated_success_rate = round3(Double(simulated.filter(\.success).count) / Double(max(1, simulated.count)))
        live_final_err_mm_median = round3(percentile(live.map(\.final_err_mm), 50))
        simulated_final_err_mm_median = round3(percentile(simulated.map(\.final_err_mm), 50))
        let times = live.compactMap(\.time_to_target_s)
        live_time_to_target_s_median = times.isEmpty ? nil : round3(percentile(times, 50))
        live_frame_to_command_ms_p99_median = round3(percentile(live.map(\.timing.frame_to_command_ms_p99), 50))
        live_lateness_us_p99_max = live.map { max($0.timing.lateness_us_p99_imaging_on, $0.timing.lateness_us_p99_imaging_off) }.max() ?? 0
        pairs = zip(simulated, live).enumerated().map { i, p in
            Pair(run: first + i, vessel: p.1.setup.vessel, seed: p.1.setup.seed, simulated_success: p.0.success, live_success: p.1.success,
                 simulated_final_err_mm: p.0.final_err_mm, live_final_err_mm: p.1.final_err_mm, live_ending: p.1.ending)
        }
        self.live = live
    }
}
