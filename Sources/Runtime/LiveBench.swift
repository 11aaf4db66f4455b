import Control
import Core
import Foundation
import Scenarios

/// `lumen bench live`'s figures: one live run, the cycle first without imaging and then with it,
/// navigating as the demo does, with the cycle's allocations counted after its warm-up.
public struct LiveBenchResult: Encodable, Sendable {
    public var seconds_imaging_off: Double
    public var seconds_imaging_on: Double
    public var fps: Double
    public var planes: Int
    public var timing: LiveTiming
    /// Heap allocations on the cycle thread after its warm-up (must be 0).
    public var cycle_allocations: Int?
    public var frames_acquired: [UInt64]
    public var frames_dropped: [UInt64]
    public var ending: String
    public var realtime: [String: String]
    public var warnings: [String]
    /// The targets, each true when met in this run.
    public var targets: [String: Bool]
    public var note: String
}

public enum LiveBench {
    public static func run(_ base: LiveSettings, robot: RobotDescription, imagingOffSeconds: Double, imagingOnSeconds: Double,
                           progress: ((String) -> Void)? = nil) throws(RuntimeError) -> LiveBenchResult {
        var settings = base
        settings.countCycleAllocations = true
        settings.imagingStartsAfter = imagingOffSeconds
        let runtime = try LiveRuntime(settings, robot: robot)
        try runtime.start()
        let client = AutomationClient(port: runtime, name: "lumen bench live")
        client.start()
        defer { client.stop() }
        if !runtime.waitForPower() {
            _ = runtime.finish(.completed)
            throw .monitorNeverPowered(log: runtime.monitorLog)
        }
        // The servo moves once images come: the same work as the demo's, from the second phase on.
        let vessel = settings.setup.vessel
        let navigator = Thread { client.navigate(to: vessel, seconds: imagingOffSeconds + 30) }
        navigator.start()
        let ending = runtime.supervise(maxSeconds: imagingOffSeconds + imagingOnSeconds, progress: { snap in
            progress?("bench live: \(snap.framesAcquired.reduce(0, +)) frames, mode \(snap.mode)")
        }) { _ in false }
        client.stop()
        let final = runtime.finish(ending)
        let g = runtime.imagingFigures ?? ImagingFigures(acquired: [], dropped: [])
        let timing = runtime.drainTiming(tracking: g.trackingTimes).timing
        let r = settings.realtime
        return LiveBenchResult(
            seconds_imaging_off: imagingOffSeconds, seconds_imaging_on: imagingOnSeconds, fps: settings.setup.fps,
            planes: runtime.runtimeDescription.planes.count, timing: timing, cycle_allocations: runtime.cycleAllocations,
            frames_acquired: g.acquired, frames_dropped: g.dropped, ending: final.key,
            realtime: ["fifo": r.fifoPriority.map { "\($0)" } ?? "off", "mlock": "\(r.lockMemory)", "cpu": r.cpu.map { "\($0)" } ?? "any"],
            warnings: runtime.warnings + (g.failure.map { [$0] } ?? []),
            targets: ["frame_to_command_p99_le_tracking_p99_plus_2ms": timing.frame_to_command_ms_p99 <= timing.tracking_ms_p99 + 2,
                      "lateness_ratio_le_1_2": (timing.lateness_ratio ?? .infinity) <= 1.2,
                      "zero_cycle_allocations": runtime.cycleAllocations == 0],
            note: "frame-to-command runs from the exposure (the catheter's shape the renderer drew) to the first cycle that fused its measurement: it includes rendering the simulated frames as well as tracking; tracking time excludes rendering. Heartbeat age is the gap between the cycle's consecutive heartbeats.")
    }
}
