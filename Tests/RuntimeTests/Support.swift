import CAllocCount
import Control
import Core
import Foundation
import Scenarios
import Testing
@testable import Runtime

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func loadRobot(_ name: String = "lumen-1s.yaml") throws -> RobotDescription {
    try ConfigLoader.load(RobotDescription.self, from: repoRoot.appendingPathComponent("robots/\(name)").path)
}

/// Polls `condition` every 5 ms until it holds or `seconds` pass; whether it held.
func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        usleep(5000)
    }
    return condition()
}

/// Starts `runtime` and waits (bounded) until its monitor permits power, the deadman held by an
/// automation client (the monitor's deadman check permits nothing without it). Not powered, both
/// are ended and the test fails with the monitor's log.
func startPoweredRuntime(_ runtime: LiveRuntime) throws -> (LiveRuntime, AutomationClient) {
    try runtime.start()
    let client = AutomationClient(port: runtime)
    client.start()
    let powered = runtime.waitForPower(seconds: 30), log = runtime.monitorLog
    if !powered {
        client.stop()
        _ = runtime.finish(.completed)
    }
    try #require(powered, "the monitor never permitted power: \(log)")
    return (runtime, client)
}

/// The straight tube phantom with a small detector: fast enough to render in a debug build.
/// (The navigation test runs the demo's arch scene instead: `archSettings`.)
/// With `realtime`, the cycle and the monitor run SCHED_FIFO where permitted (a warning where not):
/// the monitor's heartbeat timeout (100 ms at most) is otherwise at the mercy of a loaded machine.
func tubeSettings(monitor: Bool, imaging: LiveImaging = .simulated(planes: 2), fps: Double = 7.5, realtime: Bool = false) -> LiveSettings {
    var s = LiveSettings()
    s.setup.phantom = "straight"
    s.setup.vessel = "tube"
    s.setup.depth = 90
    s.setup.detectorPixels = 256
    s.setup.pixelSpacingMM = 1.2
    s.setup.fps = fps
    s.imaging = imaging
    s.monitor = monitor
    // Generous on a loaded machine: these tests are about what happens, not how fast.
    s.deadmanTimeout = 1
    s.safetyWatchdog = 0.5
    if realtime { s.realtime = RealtimeOptions(fifoPriority: 20) }
    return s
}

/// The demo's scene (the arch, left subclavian) at half the detector resolution over the same
/// field of view, so that a debug build tracks it in time.
func archSettings() -> LiveSettings {
    var s = LiveSettings()
    s.setup.detectorPixels = 512
    s.setup.pixelSpacingMM = 0.6
    s.deadmanTimeout = 1
    s.safetyWatchdog = 0.5
    s.realtime = RealtimeOptions(fifoPriority: 20)
    return s
}

/// The live cycle (controller, patient) on a simulated clock, with no threads: each `step` is
/// one cycle, so the deadman timeout and the stop can be checked without wall-clock timing.
final class SimulatedCycle {
    let shared: LiveShared
    let scene: NavigationScene
    let runner: CycleRunner<LivePatient, LiveController, ManualCycleClock>
    var sequence: UInt64 = 0
    let images: MeasurementSender

    /// `depth`: how far down the tube the goal lies (mm); the catheter's tip starts about 104 mm in.
    init(deadmanTimeout: Nanoseconds = 250_000_000, depth: Double = 90, tuneServo: (inout PathServo) -> Void = { _ in }) throws {
        var setup = NavigationSetup()
        setup.phantom = "straight"
        setup.vessel = "tube"
        setup.depth = depth
        scene = try NavigationScene(setup, robot: try loadRobot())
        shared = LiveShared(joints: scene.robot.axes.count, deadmanTimeout: deadmanTimeout)
        let physics = scene.makePhysics()
        let start = physics.measuredPositions
        let mailbox = MeasurementMailbox(capacity: 64)
        images = mailbox.sender
        let controller = LiveController(scene.makeController(start: start, measurements: mailbox.receiver, tune: tuneServo), shared: shared)
        runner = CycleRunner(hardware: LivePatient(physics: physics, shared: shared, link: SafetyLink(disabledWith: SafetyLinkStatus())),
                             controller: controller, clock: ManualCycleClock(start: 1_000_000_000), period: 1_000_000)
        try runner.configure()
        try runner.activate()
    }

    func send(_ kind: CycleIntent.Kind, held: Bool = false, mode: ControlMode = .hold, point: Vec3 = .zero) {
        sequence += 1
        _ = shared.intents.push(CycleIntent(sequence: sequence, kind: kind, held: held, mode: mode, point: point))
    }

    /// Runs `cycles` cycles; with `imaging`, a (true) tip measurement reaches the cycle every 50,
    /// as from a C-arm at 20 fps; with `deadman`, the deadman is repeated as often.
    /// Heap allocations of the cycles run by `step` while `countAllocations` is set.
    var allocations: Int64 = 0
    var countAllocations = false

    func step(_ cycles: Int64, imaging: Bool = true, deadman: Bool = false) throws {
        var left = cycles
        while left > 0 {
            if imaging {
                let tip = runner.withHardware { $0.tip }
                _ = images.send(TipMeasurement(acquiredAt: runner.clock.now(), position: tip, positionCovariance: Mat3.identity * 0.01))
            }
            if deadman { send(.deadman, held: true) }
            let n = min(left, 50)
            if countAllocations { lumen_alloc_count_begin() }
            try runner.run(cycles: n)
            if countAllocations { allocations += lumen_alloc_count_end() }
            left -= n
        }
    }
    var published: PublishedCycle { shared.published.read() }
}
