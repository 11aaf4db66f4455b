import CAllocCount
import Control
import Core
import Foundation
import Imaging
import Safety
import Scenarios
import Sim
import Synchronization

/// Why the live runtime could not start or go on.
public enum RuntimeError: Error, Equatable, Sendable, CustomStringConvertible {
    case badSetting(field: String, reason: String)
    case navigation(NavigationError)
    case lifecycle(LifecycleError)
    /// The safety monitor process could not be set up or started.
    case monitor(String)
    /// The monitor ran but never permitted power (its log says why).
    case monitorNeverPowered(log: String)
    case imaging(String)
    /// `start` was called twice, or after the end.
    case notStartable
    /// Something attached to the run (a recorder, a server) could not be set up.
    case attachment(String)

    public var description: String {
        switch self {
        case .badSetting(let f, let r): "\(f): \(r)"
        case .navigation(let e): e.description
        case .lifecycle(let e): "the control cycle refused: \(e)"
        case .monitor(let m): "safety monitor: \(m)"
        case .monitorNeverPowered(let log): "the safety monitor never permitted power; its log:\n\(log)"
        case .imaging(let m): "imaging: \(m)"
        case .notStartable: "the runtime was already started"
        case .attachment(let m): m
        }
    }
}

/// Where the imaging thread's frames come from.
public enum LiveImaging: Sendable, Equatable {
    /// No imaging thread (the cycle alone: for the imaging-off figures).
    case off
    /// The simulated C-arm rendering the live physics: one plane or two.
    case simulated(planes: Int)
    /// A PNG folder or a DICOM file replayed at its frame interval (plane 0): tracked and shown,
    /// never fused (`LiveFrameSource.imagesThisCatheter`).
    case replay(path: String)

    /// The planes whose images can steer the run (`LiveFrameSource.steeringPlanes`).
    public var steeringPlanes: Int {
        switch self {
        case .off, .replay: 0
        case .simulated(let n): n
        }
    }
}

/// What a live run is built from.
public struct LiveSettings: Sendable {
    /// The scene: phantom, branch, depth, C-arm, photons, fps (7.5, 15 or 30), seed.
    public var setup = NavigationSetup()
    public var imaging = LiveImaging.simulated(planes: 2)
    /// Start the safety monitor process; without it the drives' safety lines are not armed
    /// (for tests of the cycle alone, never for a run that moves a patient).
    public var monitor = true
    /// The `lumen-safety` executable (default: beside the running binary).
    public var monitorExecutable: String?
    /// The vessel whose lumen the monitor guards (nil: the target's). Another vessel is a fault
    /// injection: the catheter, navigating correctly to its target, leaves the lumen the monitor
    /// allows, as a push into the wrong branch would.
    public var monitorVessel: String?
    /// A limits file for the monitor instead of the one written for this run's robot and scene
    /// (a HIL scenario's `setup.limits`): the monitor loads it as it is, and refuses a bad one.
    public var monitorLimits: String?
    /// mm into that vessel the monitor's lumen ends (nil: at the vessel's end). Short of the
    /// goal is a fault injection too: the catheter pushed on where the vessel ends.
    public var monitorDepth: Double?
    public var realtime = RealtimeOptions()
    /// s — a deadman not repeated within this counts as released (0.05…5).
    public var deadmanTimeout = 0.25
    /// s — the drives' safety-line watchdog: without a permit for this long they remove power.
    /// A drive parameter on hardware (5 ms in the fault campaign); 250 ms here because the monitor
    /// runs as an ordinary process on a shared, non-real-time machine, where it is at times held
    /// back that long, and a trip then is the machine's load, not a fault of the patient's run.
    public var safetyWatchdog = 0.25
    /// Count the cycle thread's heap allocations after its first `warmUpCycles` cycles
    /// (`LiveRuntime.cycleAllocations`); the count must be 0.
    public var countCycleAllocations = false
    /// s — the imaging thread's first exposure comes this long after the start (0…3600).
    public var imagingStartsAfter = 0.0
    public var warmUpCycles: Int64 = 1000
    /// Where the drives are: the simulated patient's own (`simulated`), emulated drives on a
    /// link (`serial`, `ethercat-udp`), or a device on a link address. On a link the cycle reads
    /// and writes the link's drives and the simulated patient follows the joints they report.
    public var drives = LiveDrives.simulated
    /// The emulated drives' motion (ideal, or motor, gearbox and the drives' own loops).
    public var driveDynamics = DriveDynamics.ideal
    /// Consecutive cycles without a state from the link's drives after which the link counts as
    /// lost (a stop; 2…1000). Shorter than the emulated drives' own watchdog (100 ms), longer than
    /// a busy non-real-time machine holds the drives' thread back.
    public var linkLossCycles = 50
    /// µs — the emulated DriveLink drives' own watchdog (5 000…1 000 000): a host silent this
    /// long loses their power. A drive parameter; a HIL scenario sets its own.
    public var emulatedDriveWatchdog = LiveLinks.emulatedWatchdog
    /// On a link: the simulated patient's catheter follows the joints the drives report, every
    /// cycle (its rod physics), so the C-arm images it and the emulated drives' force sensor reads
    /// its push. Off for a run that judges the drives alone (a HIL scenario: joints, power,
    /// counters): the rod then costs the cycle nothing, and its rate is the drives'. Off needs
    /// drives on a link and no simulated imaging.
    public var patientFollowsDrives = true
    /// Where emulated drives stand at start-up, joint units (nil: where the simulated patient's
    /// catheter stands). A bench's posture (a HIL scenario's, whose moves and limits assume it):
    /// only for emulated drives the patient does not follow.
    public var emulatedDrivesStart: [Double]?
    public init() {}

    public func validate() throws(RuntimeError) {
        do { try setup.validate() } catch { throw .navigation(error) }
        guard deadmanTimeout.isFinite, (0.05...5).contains(deadmanTimeout) else {
            throw .badSetting(field: "deadman_timeout", reason: "must be 0.05…5 s, got \(deadmanTimeout)")
        }
        guard safetyWatchdog.isFinite, (0.005...1).contains(safetyWatchdog) else {
            throw .badSetting(field: "safety_watchdog", reason: "must be 0.005…1 s, got \(safetyWatchdog)")
        }
        if let d = monitorDepth, !(d.isFinite && (1...2000).contains(d)) {
            throw .badSetting(field: "monitor_depth", reason: "must be 1…2000 mm, got \(d)")
        }
        guard (5_000...1_000_000).contains(emulatedDriveWatchdog) else {
            throw .badSetting(field: "emulated_drive_watchdog", reason: "must be 5000…1000000 µs, got \(emulatedDriveWatchdog)")
        }
        guard (2...1000).contains(linkLossCycles) else {
            throw .badSetting(field: "link_loss_cycles", reason: "must be 2…1000, got \(linkLossCycles)")
        }
        guard imagingStartsAfter.isFinite, (0...3600).contains(imagingStartsAfter) else {
            throw .badSetting(field: "imaging_starts_after", reason: "must be 0…3600 s, got \(imagingStartsAfter)")
        }
        if case .simulated(let n) = imaging, !(1...2).contains(n) { throw .badSetting(field: "planes", reason: "one or two, not \(n)") }
        if case .simulated = imaging, ![7.5, 15, 30].contains(setup.fps) {
            throw .badSetting(field: "fps", reason: "a C-arm runs at 7.5, 15 or 30 fps, not \(setup.fps)")
        }
        // A simulated C-arm images the simulated patient, which only drives this process
        // emulates move: a real device's catheter is not in it.
        if case .device(let a) = drives, case .simulated = imaging {
            throw .badSetting(field: "imaging", reason: "the drives on \(a) are a real device: the simulated C-arm cannot image its catheter; replay a sequence or run without imaging")
        }
        if !patientFollowsDrives {
            guard drives.isLink else {
                throw .badSetting(field: "patient_follows_drives", reason: "the simulated patient's own drives are the rod's: only drives on a link run without it")
            }
            if case .simulated = imaging {
                throw .badSetting(field: "patient_follows_drives", reason: "the simulated C-arm images the simulated patient's catheter, which stands still without it")
            }
        }
        if let q = emulatedDrivesStart {
            guard drives.isEmulated, !patientFollowsDrives else {
                throw .badSetting(field: "emulated_drives_start", reason: "only emulated drives the simulated patient does not follow start elsewhere than its catheter")
            }
            guard q.allSatisfy(\.isFinite) else {
                throw .badSetting(field: "emulated_drives_start", reason: "must be finite, got \(q)")
            }
        }
        if monitor {
            switch drives {
            case .simulated, .emulatedDriveLink: break
            case .emulatedEtherCAT:
                throw .badSetting(field: "monitor", reason: "the emulated EtherCAT slaves have no safe-torque-off input for the monitor's permits: use the serial link, or run without the monitor")
            case .device(let a):
                throw .badSetting(field: "monitor", reason: "the monitor's permits reach \(a) only through the bench's own permit channel (docs/runtime.md, Drive links), which this runtime does not drive: run without the monitor on a bench whose drives' safe-torque-off input that channel powers")
            }
        }
    }
}

/// Set by SIGINT/SIGTERM (the signal's number) once `LiveRuntime.installSignalHandlers` ran.
public let liveSignal = Atomic<Int32>(0)

/// The live system at wall clock: the 1 kHz cycle thread (`lumen-cycle`) running the image-guided
/// controller on the simulated patient, an imaging thread (`lumen-imaging`) per frame source, and
/// the safety monitor as its own process. The thread that calls `supervise` watches them all
/// (monitor alive, signals, the cycle's own stops) and writes the event log. Operators attach
/// through `OperatorPort`, recorders through `RecordingTap`; neither waits on the cycle.
/// See docs/runtime.md for the threads and what crosses between them.
public final class LiveRuntime: OperatorPort, RecordingTap, @unchecked Sendable {
    public let settings: LiveSettings
    public let scene: NavigationScene
    /// The planes the images come from, which the measurer and the estimator are built with: the
    /// frame source's (the simulated C-arm's of the scene, a DICOM file's, a grabber's
    /// calibration); the scene's without imaging.
    public let imagingPlanes: [CArmGeometry]
    /// The planes the imaging thread's measurer projects with (nil without imaging).
    public var measurerPlanes: [CArmGeometry]? { imaging?.measurer.planes }
    public let runtimeDescription: RuntimeDescription
    public let shared: LiveShared
    /// Lifts a pixel clicked on a plane to the route (nil without imaging planes).
    public let targeting: PixelTargetLifter?
    let runner: CycleRunner<LivePatient, LiveController, MonotonicCycleClock>
    let linkStatus = SafetyLinkStatus()
    /// The far end of an emulated link (its threads, its safety input), for figures and fault injection.
    public let emulatedDrives: EmulatedDrives?
    /// The drives' link in words ("sim" in process).
    public let linkName: String
    let monitor: MonitorSupervisor?
    let imaging: ImagingThread?
    let frames = FrameStore()
    let submitLock = Mutex<UInt64>(0)
    let eventLog = Mutex(EventLog())
    let cycleDone = DispatchSemaphore(value: 0)
    /// Set when the cycle thread's loop has returned. `supervise` ends the run on it, not on
    /// the runner's `isRunning`: that is false until the new thread has entered its loop, and on
    /// a loaded machine the supervisor's first look came before that (a console's live run then
    /// ended as it began, after one cycle).
    let cycleReturned = Atomic<Bool>(false)
    let phase = Atomic<UInt8>(0)  // 0 built, 1 running, 2 ending, 3 ended
    public private(set) var warnings: [String] = []
    public private(set) var cycleError: LifecycleError?
    let lastLog = Mutex(0)
    let stopAsked = Atomic<Bool>(false)
    let cycleAllocationCount = Atomic<Int>(-1)
    /// Counts the cycle thread's heap allocations from the next cycle on (`cycleAllocations`
    /// after `finish`): for a count that starts once every path of interest has run once.
    public func countCycleAllocationsFromNow() {
        SharedIndex.store(shared.flags + LiveShared.countFromFlag, Int64(truncatingIfNeeded: shared.published.read().cycle) + 2)
    }

    /// Heap allocations on the cycle thread after its warm-up (with `countCycleAllocations`, after `finish`).
    public var cycleAllocations: Int? { let n = cycleAllocationCount.load(ordering: .acquiring); return n < 0 ? nil : n }

    struct EventLog {
        var events: [RuntimeEvent] = []
        var next: UInt64 = 1
        var latched: [String] = []
        var monitorAlive = false
        let limit = 10_000
        mutating func append(_ time: Nanoseconds, _ who: OperatorIdentity?, _ kind: RuntimeEvent.Kind) {
            events.append(RuntimeEvent(sequence: next, time: time, who: who, kind: kind))
            next += 1
            if events.count > limit { events.removeFirst(events.count - limit) }
        }
    }

    public init(_ settings: LiveSettings, robot: RobotDescription) throws(RuntimeError) {
        try settings.validate()
        self.settings = settings
        do { scene = try NavigationScene(settings.setup, robot: robot) } catch { throw .navigation(error) }
        let period: Nanoseconds = 1_000_000
        shared = LiveShared(joints: scene.robot.axes.count, deadmanTimeout: Nanoseconds(settings.deadmanTimeout * 1e9))
        // The frame source first: it says which planes the images come from (a DICOM file's or a
        // frame grabber's calibrated geometry), and a source that cannot open refuses the run
        // before any link is opened.
        let source: LiveFrameSource?
        switch settings.imaging {
        case .off: source = nil
        case .simulated(let n):
            source = try SimulatedCArmSource(planes: Array(scene.planes.prefix(n)), tree: scene.tree, photons: settings.setup.photons,
                                             seed: settings.setup.seed, fps: settings.setup.fps, catheter: shared.catheter,
                                             catheterRadius: scene.robot.outerDiameterMM / 2)
        case .replay(let path): source = try ReplayFrameSource(path: path, geometry: scene.planes[0])
        }
        imagingPlanes = source?.planes ?? scene.planes
        let link: SafetyLink
        var monitorLimitsPath = ""
        if settings.monitor {
            let corridor = try MonitorSupervisor.vesselCorridor(tree: scene.tree, vessel: settings.monitorVessel ?? settings.setup.vessel,
                                                                depth: settings.monitorDepth)
            let limits: String
            if let path = settings.monitorLimits {
                do { limits = try String(contentsOfFile: path, encoding: .utf8) } catch {
                    throw .badSetting(field: "monitor_limits", reason: "cannot read \(path): \(error.localizedDescription)")
                }
            } else {
                limits = NavigationMonitorLimits.yaml(robot: scene.robot, corridor: corridor)
            }
            let m = try MonitorSupervisor(limits: limits)
            monitor = m
            monitorLimitsPath = m.limitsPath
            if settings.drives.isLink {
                // The drives take the permits on their own safety input: the cycle sends the heartbeat and the operator's messages.
                link = try SafetyLink(controlTo: m.channel.listenPath, statusAt: m.channel.statusPath, key: m.channel.key,
                                      axes: scene.robot.axes.count, status: linkStatus)
            } else {
                link = try SafetyLink(drives: m.channel.drivesPath, monitor: m.channel.listenPath, statusAt: m.channel.statusPath,
                                      key: m.channel.key, axes: scene.robot.axes.count, status: linkStatus)
            }
        } else {
            monitor = nil
            link = SafetyLink(disabledWith: linkStatus)
        }
        let physics = scene.makePhysics()
        var start = physics.measuredPositions
        if let q = settings.emulatedDrivesStart {
            guard q.count == start.count else {
                throw .badSetting(field: "emulated_drives_start", reason: "\(q.count) joints for a robot of \(start.count)")
            }
            start = JointVector(q)
        }
        let opened = try LiveLinks.open(settings.drives, axes: scene.robot.axes, start: start, period: period, dynamics: settings.driveDynamics,
                                        watchdog: settings.emulatedDriveWatchdog)
        emulatedDrives = opened.emulated
        linkName = opened.name
        if let m = monitor, let e = opened.emulated {
            e.attachSafety(drives: m.channel.drivesPath, listen: m.channel.listenPath, key: m.channel.key, watchdog: Nanoseconds(settings.safetyWatchdog * 1e9), status: linkStatus)
        }
        let drives = opened.drives
        let mailbox = MeasurementMailbox(capacity: 64)
        let sender = mailbox.sender
        // 4 s of history: at wall clock a measurement arrives as late as rendering and tracking
        // make it (a loaded machine, a debug build), and later than the history it cannot be fused.
        // The estimator projects with the planes the measurements come from, never the scene's
        // when a source brings its own: pixels of one geometry fused through another put the tip
        // where it is not.
        let controller = LiveController(scene.makeController(start: start, measurements: mailbox.receiver, historyLength: 4096, planes: imagingPlanes),
                                        shared: shared)
        if settings.countCycleAllocations { SharedIndex.store(shared.flags + LiveShared.countFromFlag, max(1, settings.warmUpCycles)) }
        runner = CycleRunner(hardware: LivePatient(physics: physics, shared: shared, link: link, watchdog: settings.safetyWatchdog,
                                                   drives: drives, patientForce: settings.drives.isEmulated && settings.patientFollowsDrives,
                                                   forceSensor: settings.patientFollowsDrives ? opened.emulated?.emulator?.loadCell : nil,
                                                   patientFollows: settings.patientFollowsDrives),
                             controller: controller, period: period,
                             faultPolicy: settings.drives.isLink ? CycleFaultPolicy(maxConsecutiveReadFaults: settings.linkLossCycles) : CycleFaultPolicy())
        if let source {
            let measurer: BiplaneTipMeasurer
            do { measurer = try scene.makeMeasurer(planes: imagingPlanes) } catch { throw .navigation(error) }
            imaging = ImagingThread(source: source, measurer: measurer, sender: sender, shared: shared, frames: frames)
        } else {
            imaging = nil
        }
        let scene = self.scene
        targeting = source.map { PixelTargetLifter(planes: $0.planes, tree: scene.tree, route: scene.route, radii: scene.radii) }
        let axes = scene.robot.axes
        let planes = (source?.planes ?? []).enumerated().map { i, g in
            RuntimeDescription.PlaneDescription(name: i == 0 ? "frontal" : "lateral", width: g.columns, height: g.rows, pixelSpacing: g.pixelSpacing,
                                                projection: ProjectionMatrix(g).rowMajor, framesPerSecond: settings.setup.fps)
        }
        var description = RuntimeDescription(
            robotName: scene.robot.name, axisNames: axes.map(\.name), positionMin: axes.map(\.lower), positionMax: axes.map(\.upper),
            velocityMax: axes.map(\.maxVelocity), planes: planes, roadmap: [(name: settings.setup.vessel, points: scene.route)],
            targets: [(name: settings.setup.vessel, position: scene.goal)], period: period, deadmanTimeout: shared.deadmanTimeout)
        if settings.monitor, let limits = try? SafetyLimits.load(from: monitorLimitsPath).limits {
            description.imageMaxAge = Nanoseconds(limits.imageMaxAgeMS * 1e6)
        }
        description.vessels = scene.tree.vessels.map { v in (v.name, v.points.compactMap { $0.count >= 3 ? Vec3($0[0], $0[1], $0[2]) : nil }) }
        runtimeDescription = description
    }

    deinit {
        emulatedDrives?.stop()
        monitor?.stop(seconds: 0.5)
        monitor?.removeFiles()
    }

    /// SIGINT and SIGTERM set `liveSignal`; `supervise` turns it into a category-1 stop and an end.
    /// Call it before the runtime starts its threads (they inherit the signal mask).
    public static func installSignalHandlers() {
        signal(SIGINT) { liveSignal.store($0, ordering: .relaxed) }
        signal(SIGTERM) { liveSignal.store($0, ordering: .relaxed) }
        // A parent that blocked them (a test runner, some supervisors) passes the mask on to
        // its children: unblocked here, or a stop request would never arrive.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    // MARK: Running

    /// Starts the monitor process, the cycle thread and the imaging thread. The drives get power
    /// only once the monitor permits it (`waitForPower`).
    public func start() throws(RuntimeError) {
        guard phase.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged else { throw .notStartable }
        if let monitor {
            guard let exe = settings.monitorExecutable ?? MonitorSupervisor.defaultExecutable() else {
                throw .monitor("no lumen-safety executable beside this one: build it (swift build --product lumen-safety)")
            }
            try monitor.start(executable: exe)
            // With real-time on, the monitor's loop runs at the cycle's priority: a monitor the
            // scheduler holds back sees old heartbeats and removes power.
            if let p = settings.realtime.fifoPriority, let w = monitor.setFIFO(priority: p) { warnings.append(w) }
        }
        // The emulated drives answer before the host's handshake, torque off until the monitor permits.
        try emulatedDrives?.start(priority: settings.realtime.fifoPriority)
        do {
            try runner.configure()
            try runner.activate()
        } catch { throw .lifecycle(error) }
        let options = settings.realtime
        let runner = self.runner
        let thread = Thread { [self] in
            warnings = options.applyToCurrentThread()
            do throws(LifecycleError) {
                // The controller begins the count in its cycle `warmUpCycles` (lazy set-up before
                // may allocate; the loop's own start is not a cycle); it ends when the loop returns.
                try runner.run()
                let from = SharedIndex.load(shared.flags + LiveShared.countFromFlag)
                if from > 0, shared.published.read().cycle >= UInt64(from) {
                    cycleAllocationCount.store(Int(lumen_alloc_count_end()), ordering: .releasing)
                }
            } catch { cycleError = error }
            cycleReturned.store(true, ordering: .releasing)
            cycleDone.signal()
        }
        thread.stackSize = 1 << 20
        thread.name = "lumen-cycle"
        thread.start()
        imaging?.start(delay: settings.imagingStartsAfter)
        record(.monitor(alive: monitor != nil), who: nil)
    }

    /// Presses acknowledge (as the operator would at power-up) until the monitor permits power,
    /// at most `seconds`. True when it does; without a monitor, at once.
    public func waitForPower(seconds: Double = 20) -> Bool {
        guard let monitor else { return true }
        let end = MonotonicClock.now() + Nanoseconds(seconds * 1e9)
        var lastPress: Nanoseconds = 0
        // A signal during start-up ends the wait: `supervise` then makes the stop.
        while MonotonicClock.now() < end, liveSignal.load(ordering: .relaxed) == 0 {
            if linkStatus.permitBits & 1 == 1, MonotonicClock.now() - linkStatus.permitAt < 250_000_000 {
                return true
            }
            if !monitor.isRunning { return false }
            if MonotonicClock.now() - lastPress > 100_000_000 {
                _ = enqueue(.acknowledgeFaults, CycleIntent(sequence: 0, kind: .acknowledge), who: nil)
                lastPress = MonotonicClock.now()
            }
            usleep(5000)
        }
        return false
    }

    /// A fault a HIL scenario or a test injects into the running system, beside the operator
    /// port (which has no way to do any of these, nor should it).
    public enum InjectedFault: Sendable, Equatable {
        /// The monitor process killed (SIGKILL), as a crash would.
        case monitorKilled
        /// The monitor process hung (SIGSTOP): there, and silent.
        case monitorHung
        /// The host silent, as a crashed or frozen one: the cycle stops where it stands — no
        /// last command, no enable 0, no heartbeat — and the run is over only at `finish`.
        case hostSilent
    }

    /// Injects `fault` (HIL scenarios and tests only; the console has no way to it). False when
    /// it cannot be done here (no monitor to kill or hang, a run that is not running).
    public func inject(_ fault: InjectedFault) -> Bool {
        guard phase.load(ordering: .acquiring) == 1 else { return false }
        switch fault {
        case .monitorKilled, .monitorHung:
            guard let monitor, monitor.isRunning else { return false }
            monitor.injectFault(hang: fault == .monitorHung)
        case .hostSilent:
            runner.requestStop()
        }
        return true
    }

    /// The monitor's log so far (empty without a monitor).
    public var monitorLog: String { monitor?.log ?? "" }
    /// The monitor's process id (0 without one), for tests that kill it.
    public var monitorProcessIdentifier: Int32 { monitor?.processIdentifier ?? 0 }

    /// Watches the run on the calling thread until `until` returns true (checked every 10 ms
    /// with the latest snapshot), a signal, the monitor's loss, the cycle stopping by itself, or
    /// `maxSeconds`. A signal makes a category-1 stop first. Returns how the run ended; the
    /// run is over only once `finish` is called.
    public func supervise(maxSeconds: Double, every interval: Double = 1, progress: ((RuntimeSnapshot) -> Void)? = nil,
                          until: (RuntimeSnapshot) -> Bool) -> RunEnding {
        let end = MonotonicClock.now() + Nanoseconds(maxSeconds * 1e9)
        var nextProgress = MonotonicClock.now()
        var lastMode = ControlMode.idle
        var monitorWasAlive = monitor != nil
        var servoFailed = false
        while true {
            usleep(10_000)
            let snap = snapshot()
            if snap.mode != lastMode {
                record(.modeChanged(from: lastMode, to: snap.mode, reason: snap.holdReason), who: nil)
                lastMode = snap.mode
            }
            let failure = shared.published.read().servoFailure
            if let failure, !servoFailed { record(.servoGaveUp("\(failure)"), who: nil) }
            servoFailed = failure != nil
            readMonitorLog()
            if let progress, MonotonicClock.now() >= nextProgress {
                progress(snap)
                nextProgress += Nanoseconds(interval * 1e9)
            }
            let signalled = liveSignal.load(ordering: .relaxed)
            if signalled != 0 {
                stopAndSettle()
                return .signalled(signalled)
            }
            if let monitor, monitorWasAlive, !monitor.isRunning {
                monitorWasAlive = false
                record(.monitor(alive: false), who: nil)
                // The drives' safety lines remove power by themselves; wait to see it.
                let deadline = MonotonicClock.now() + 2_000_000_000
                while runner.lifecycle == .active, MonotonicClock.now() < deadline { usleep(5000) }
                return .monitorLost
            }
            if runner.lifecycle != .active || cycleReturned.load(ordering: .acquiring) { return .completed }
            if until(snap) { return .completed }
            if MonotonicClock.now() >= end { return .completed }
        }
    }

    /// A category-1 stop from the runtime itself, then waits (at most 2 s) for the rest.
    func stopAndSettle() {
        _ = enqueue(.stop, CycleIntent(sequence: 0, kind: .stop), who: nil)
        let deadline = MonotonicClock.now() + 2_000_000_000
        while shared.published.read().mode != .idle, runner.lifecycle == .active, MonotonicClock.now() < deadline { usleep(5000) }
    }

    /// Ends the run: imaging stopped, the cycle stopped, the drives disabled through the
    /// lifecycle, the monitor stopped. Returns how the cycle itself ended when it stopped first
    /// (a drive fault, a lost link), else `ending`.
    public func finish(_ ending: RunEnding) -> RunEnding {
        guard phase.exchange(2, ordering: .acquiringAndReleasing) == 1 else { return ending }
        imaging?.stop()
        stopAsked.store(true, ordering: .releasing)
        // Asked again until it returns: a run that starts after a stop request clears it.
        repeat { runner.requestStop() } while cycleDone.wait(timeout: .now() + 0.01) == .timedOut
        var result = ending
        if let own = try? runner.endRun(), case .stopped = own, ending == .completed { result = own }
        runner.finalize()
        // Powered or not is read from the drives themselves before they stop (`drivesPowered`):
        // the last command (enable 0) reaches them through their own thread, bounded.
        if let e = emulatedDrives {
            let deadline = MonotonicClock.now() + 2_000_000_000
            while e.powered, MonotonicClock.now() < deadline { usleep(2000) }
            emulatedPowered.store(e.powered, ordering: .releasing)
        }
        emulatedDrives?.stop()
        monitor?.stop()
        readMonitorLog()
        record(.ended(result.description), who: nil)
        phase.store(3, ordering: .releasing)
        return result
    }

    /// After `finish`: the cycle's counters and the true tip.
    public var counters: CycleCounters { runner.counters }
    public var trueTip: Vec3? { shared.catheter.read()?.tip }
    public var peakContactForce: Double { runner.withHardware { $0.peakContactForce } }
    /// N — the largest axial push of the simulated patient's catheter at the sheath.
    public var peakPushForce: Double { runner.withHardware { $0.peakPushForce } }
    /// After `finish`: whether any drive's power stage is on.
    /// On an emulated link, the drives' own power stages (as they stopped, after `finish`); on a
    /// device, whether the host still asks for power (the lifecycle is active).
    public var drivesPowered: Bool {
        guard settings.drives.isLink else { return runner.withHardware { $0.anyPowered } }
        guard let e = emulatedDrives else { return runner.lifecycle == .active }
        return phase.load(ordering: .acquiring) == 3 ? emulatedPowered.load(ordering: .acquiring) : e.powered
    }
    let emulatedPowered = Atomic<Bool>(false)
    /// After `finish`: the link's counters by name (nil on the in-process drives).
    public var linkStatistics: [String: Int]? { runner.withHardware { $0.linkStatistics } }
    /// While the run goes on: the link's counters as the cycle last published them (empty on
    /// the in-process drives, and before the link's first cycle).
    public var liveLinkCounters: [String: Int] { shared.linkCounters.snapshot() }
    public var imagingFigures: ImagingFigures? { imaging?.figures.withLock { $0 } }
    public var deadmanTimeouts: Int { shared.deadmanTimeouts }
    public var lifecycle: LifecycleState { runner.lifecycle }

    // MARK: OperatorPort

    public func submit(_ intent: OperatorIntent, from who: OperatorIdentity) -> Result<IntentReceipt, IntentRejection> {
        let result = check(intent, who: who)
        switch result {
        case .failure(let r):
            record(.intentRefused(intent, r), who: who)
            return .failure(r)
        case .success(let cycleIntent):
            return enqueue(intent, cycleIntent, who: who)
        }
    }

    /// The port's checks, before anything is queued: role, ranges, latched stop, known targets.
    func check(_ intent: OperatorIntent, who: OperatorIdentity) -> Result<CycleIntent, IntentRejection> {
        let published = shared.published.read()
        let tip: Vec3? = published.estimate.health == .lost ? nil : published.estimate.position
        var lift: ((UInt8, SIMD2<Double>) -> Result<(point: Vec3, routeIndex: Int), IntentRejection>)?
        if let t = targeting { lift = { plane, pixel in t.lift(plane: plane, pixel: pixel, tip: tip) } }
        let checked = Self.check(intent, role: who.role, stopLatched: shared.stopLatched, running: phase.load(ordering: .acquiring) == 1,
                                 mode: published.mode, targets: runtimeDescription.targets, axes: shared.joints, lift: lift)
        if case .success(let c) = checked, c.kind == .target, let refusal = Self.imageTipRefusal(monitor: monitor != nil, imagingPlanes: imaging?.source.steeringPlanes ?? 0) {
            return .failure(refusal)
        }
        return checked
    }

    /// Why a target is refused before it moves anything: the monitor stops an image-guided robot
    /// without a fresh image-measured tip, which only two planes of this catheter give it (a
    /// replayed recording gives none). Accepted, the target would end in that stop at once.
    public static func imageTipRefusal(monitor: Bool, imagingPlanes: Int) -> IntentRejection? {
        monitor && imagingPlanes < 2 ? .noImageTipForMonitor(planes: imagingPlanes) : nil
    }

    /// The port's checks as a pure function (tested alone): observers may only stop; every
    /// value finite and in range; motion refused while a stop is latched; targets must be ones
    /// this runtime navigates to (its route's goal, within 2 mm, or its name, or a pixel `lift`
    /// puts on the route); a joint jog has one value per axis (`axes`, when not 0).
    public static func check(_ intent: OperatorIntent, role: OperatorRole, stopLatched: Bool, running: Bool, mode: ControlMode,
                             targets: [(name: String, position: Vec3)], axes: Int = 0,
                             lift: ((UInt8, SIMD2<Double>) -> Result<(point: Vec3, routeIndex: Int), IntentRejection>)? = nil)
        -> Result<CycleIntent, IntentRejection> {
        switch intent {
        case .stop: return .success(CycleIntent(sequence: 0, kind: .stop))
        case .emergencyStop: return .success(CycleIntent(sequence: 0, kind: .emergencyStop))
        default: break
        }
        guard running else { return .failure(.notRunning) }
        if role == .observer { return .failure(.notPermitted(role: role)) }
        switch intent {
        case .stop: return .success(CycleIntent(sequence: 0, kind: .stop))
        case .emergencyStop: return .success(CycleIntent(sequence: 0, kind: .emergencyStop))
        case .acknowledgeFaults: return .success(CycleIntent(sequence: 0, kind: .acknowledge))
        case .deadman(let held): return .success(CycleIntent(sequence: 0, kind: .deadman, held: held))
        case .mode(let m):
            if stopLatched, m != .idle { return .failure(.stopLatched) }
            switch m {
            // Jog: the supervisor in the cycle still wants the deadman held.
            case .hold, .idle, .jog: return .success(CycleIntent(sequence: 0, kind: .mode, mode: m))
            // The tip servo is entered through a target.
            case .tipServo: return .failure(.modeRefused(.notFrom(mode, to: m)))
            }
        case .jointJog(let v):
            if axes > 0, v.count != axes { return .failure(.outOfRange("jointJog.count")) }
            for i in 0..<v.count where !v[i].isFinite || abs(v[i]) > 1 { return .failure(.outOfRange("jointJog[\(i)]")) }
            if stopLatched { return .failure(.stopLatched) }
            return .success(CycleIntent(sequence: 0, kind: .jointJog, joints: v))
        case .tipJog(let hand, let clutch):
            guard hand.x.isFinite, hand.y.isFinite, hand.z.isFinite, hand.length <= 100 else { return .failure(.outOfRange("tipJog.hand")) }
            if stopLatched { return .failure(.stopLatched) }
            return .success(CycleIntent(sequence: 0, kind: .tipJog, held: clutch, point: hand))
        case .target(let p):
            guard p.x.isFinite, p.y.isFinite, p.z.isFinite, abs(p.x) <= 2000, abs(p.y) <= 2000, abs(p.z) <= 2000 else {
                return .failure(.outOfRange("target"))
            }
            if stopLatched { return .failure(.stopLatched) }
            guard let t = targets.first(where: { ($0.position - p).length <= 2 }) else {
                return .failure(.unknownTarget(String(format: "(%.1f, %.1f, %.1f) mm is not on the planned route's goal", p.x, p.y, p.z)))
            }
            return .success(CycleIntent(sequence: 0, kind: .target, point: t.position))
        case .targetPixel(let plane, let px):
            guard px.x.isFinite, px.y.isFinite, (0...8192).contains(px.x), (0...8192).contains(px.y) else { return .failure(.outOfRange("targetPixel.pixel")) }
            if stopLatched { return .failure(.stopLatched) }
            guard let lift else { return .failure(.unknownTarget("this runtime has no imaging planes to lift a pixel from")) }
            return lift(plane, px).map { CycleIntent(sequence: 0, kind: .target, point: $0.point, routeIndex: $0.routeIndex) }
        case .jointMove(let axis, let position, let relative, let duration, let smooth):
            if axes > 0, !(0..<axes).contains(axis) { return .failure(.outOfRange("jointMove.axis")) }
            guard (0..<JointVector.capacity).contains(axis) else { return .failure(.outOfRange("jointMove.axis")) }
            guard position.isFinite, abs(position) <= 10_000 else { return .failure(.outOfRange("jointMove.position")) }
            guard duration.isFinite, (0.001...600).contains(duration) else { return .failure(.outOfRange("jointMove.duration")) }
            if stopLatched { return .failure(.stopLatched) }
            return .success(CycleIntent(sequence: 0, kind: .jointMove, held: relative, point: Vec3(position, duration, smooth ? 1 : 0), routeIndex: axis))
        case .namedTarget(let name):
            if stopLatched { return .failure(.stopLatched) }
            guard let t = targets.first(where: { $0.name == name }) else { return .failure(.unknownTarget(name)) }
            return .success(CycleIntent(sequence: 0, kind: .target, point: t.position))
        }
    }

    func enqueue(_ intent: OperatorIntent, _ cycleIntent: CycleIntent, who: OperatorIdentity?) -> Result<IntentReceipt, IntentRejection> {
        let now = MonotonicClock.now()
        let outcome: Result<IntentReceipt, IntentRejection> = submitLock.withLock { sequence in
            var i = cycleIntent
            i.sequence = sequence + 1
            guard shared.intents.push(i) else { return .failure(.busy) }
            sequence += 1
            return .success(IntentReceipt(sequence: sequence, acceptedAt: now))
        }
        switch outcome {
        case .success(let r):
            // The deadman repeats every few tens of ms: logged when it changes, not each time.
            if case .deadman = intent {} else { record(.intentAccepted(intent, sequence: r.sequence), who: who) }
        case .failure(let e): record(.intentRefused(intent, e), who: who)
        }
        return outcome
    }

    public func snapshot() -> RuntimeSnapshot {
        let p = shared.published.read()
        let now = MonotonicClock.now()
        // The monitor's own status when it is fresh (it says what the monitor decided, whatever
        // drives take the permits); else the permits the drives' side took here.
        let status = monitor == nil ? nil : linkStatus.monitorStatus.flatMap { now - $0.at < 100_000_000 ? $0.status : nil }
        let permitBits = monitor == nil ? 1 : status.map { ($0.permit ? 1 : 0) | ($0.quickStop ? 2 : 0) } ?? linkStatus.permitBits
        let permitAt = linkStatus.permitAt
        let fresh = monitor == nil || status != nil || (permitAt > 0 && now - permitAt < 100_000_000)
        let heartbeatAt = linkStatus.heartbeatAt
        let (latched, alive) = eventLog.withLock { log in
            if let status { log.latched = Self.stillLatched(log.latched, status: status) }
            return (log.latched, log.monitorAlive)
        }
        let powered = fresh && permitBits & 1 == 1
        let safety = SafetyStatus(monitorAlive: monitor == nil ? false : (monitor?.isRunning ?? false) && fresh && alive,
                                  heartbeatAge: heartbeatAt > 0 ? now - heartbeatAt : 0, powerPermitted: powered,
                                  stopCategory: Self.stopCategory(controllerStop: p.stopLatched, followsMonitor: p.stopFollowsMonitor, powered: powered,
                                                                  monitorQuickStop: permitBits & 2 == 2,
                                                                  emergencyStop: p.stopLatched && p.stopIsCategory0),
                                  latchedFaults: latched, deadmanHeld: p.deadmanHeld, imageTipAt: shared.imageTip.latest?.acquiredAt ?? 0)
        let g = imaging?.figures.withLock { ($0.acquired, $0.dropped) }
        return RuntimeSnapshot(time: p.time, cycle: p.cycle, lifecycle: runner.lifecycle, mode: p.mode, holdReason: p.holdReason, joints: p.joints,
                               command: p.command, estimate: p.estimate, target: p.hasTarget ? p.target : nil, appliedIntent: p.appliedIntent,
                               safety: safety, link: LinkHealth(kind: settings.drives.kind, up: !settings.drives.isLink || runner.lifecycle == .active), latenessP99: 0, computeP99: 0, overruns: 0,
                               framesAcquired: g?.0 ?? [], framesDropped: g?.1 ?? [])
    }

    /// The run's timing figures from the cycle's rings (drained: call once, after `finish`), and
    /// the frame-to-command latencies (ns) they came from.
    public func drainTiming(tracking: [Int64]) -> (timing: LiveTiming, latencies: [Int64]) {
        var fuse: [Int64] = [], off: [Int64] = [], on: [Int64] = [], compute: [Int64] = [], heartbeat: [Int64] = []
        shared.fuseLatency.drain(into: &fuse)
        shared.lateness.drain(into: &off)
        shared.latenessImaging.drain(into: &on)
        shared.compute.drain(into: &compute)
        shared.heartbeatGap.drain(into: &heartbeat)
        return (LiveNavigation.timing(fuse: fuse, tracking: tracking, lateOff: off, lateOn: on, compute: compute, heartbeat: heartbeat), fuse)
    }

    /// Whether the path servo holds its target (not in `RuntimeSnapshot`, whose fields are fixed).
    public var servoArrived: Bool { shared.published.read().arrived }

    /// Why the path servo gave up, while it holds after its bounded attempts (nil otherwise).
    public var servoFailure: PathServoFailure? { shared.published.read().servoFailure }

    public func latestFrame(plane: UInt8, after index: UInt64) -> LiveFrame? { frames.latest(plane: plane, after: index) }

    public func events(after sequence: UInt64, limit: Int) -> [RuntimeEvent] {
        eventLog.withLock { log in Array(log.events.lazy.filter { $0.sequence > sequence }.prefix(max(0, limit))) }
    }

    func record(_ kind: RuntimeEvent.Kind, who: OperatorIdentity?) {
        let now = MonotonicClock.now()
        eventLog.withLock { log in
            switch kind {
            case .monitor(let alive): log.monitorAlive = alive
            // Without the monitor's status, an accepted acknowledge is taken to clear them; with
            // it, each stays until the monitor says its check is no longer latched (an
            // acknowledge while the cause is present clears nothing).
            case .intentAccepted(.acknowledgeFaults, _): if linkStatus.monitorStatus == nil { log.latched.removeAll() }
            case .fault(let text, _): if Self.latches(text) { log.latched.append(text) }
            default: break
            }
            log.append(now, who, kind)
        }
    }

    /// Whether a monitor fault line is of a check whose stop latches: the deadman's ends when it
    /// is held again, so it is an event but never a latched fault to acknowledge.
    static func latches(_ line: String) -> Bool { check(of: line)?.latches ?? true }

    /// The check a monitor fault line names: the word after its time ("t=1.234 s  position
    /// joint insertion  value …").
    static func check(of line: String) -> SafetyCheck? {
        guard let r = line.range(of: " s  ") else { return nil }
        let key = line[r.upperBound...].prefix { $0 != " " }
        return SafetyCheck.allCases.first { $0.key == key }
    }

    /// The fault lines whose check the monitor's status still has latched; and for a latched
    /// check whose line the log has not delivered yet (it is read every 50 monitor cycles), its
    /// name alone, so the console never shows a latched stop without its reason.
    static func stillLatched(_ lines: [String], status: MonitorStatus) -> [String] {
        var kept = lines.filter { line in check(of: line).map { status.latched & $0.bit != 0 } ?? true }
        for c in SafetyCheck.allCases where c.latches && status.latched & c.bit != 0 && !kept.contains(where: { check(of: $0) == c }) {
            let category = status.category?.rawValue ?? c.weakestCategory.rawValue
            kept.append("monitor status: fault t=- s  \(c.key)  latched (its record follows in the monitor's log)  → stop category \(category)")
        }
        return kept
    }

    /// The monitor's new fault lines, as events.
    /// The stop in effect as the operator is shown it: no power is category 0; the controller's
    /// own stop (the operator's stop button, its own fault) category 1, and so is a stop it
    /// latched behind the monitor once the monitor no longer stops (power back, no quick stop):
    /// it still waits for an acknowledge, and shown as nothing it refused every intent unseen
    /// (CI: "a stop is latched" on every click, the page showing no stop); the monitor's controlled
    /// stop with power kept category 2. A stop the controller latched only because the monitor
    /// stopped the drives is the monitor's: a category-2 image_stale was shown as category 1.
    /// An emergency stop (`OperatorIntent.emergencyStop`) is category 0 whatever the monitor permits.
    static func stopCategory(controllerStop: Bool, followsMonitor: Bool = false, powered: Bool, monitorQuickStop: Bool,
                             emergencyStop: Bool = false) -> Int? {
        if !powered || emergencyStop { return 0 }
        if controllerStop, !followsMonitor || !monitorQuickStop { return 1 }
        return monitorQuickStop ? 2 : nil
    }

    func readMonitorLog() {
        guard let monitor else { return }
        let text = monitor.log
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        let seen = lastLog.withLock { n in
            let old = n
            n = lines.count
            return old
        }
        guard lines.count > seen else { return }
        for line in lines[seen...] where line.contains(": fault ") {
            let cat = line.contains("category 0") ? 0 : line.contains("category 2") ? 2 : 1
            record(.fault(String(line), stopCategory: cat), who: nil)
        }
    }

    // MARK: RecordingTap

    public func drainCycleRecords(_ body: (borrowing CycleRecord) -> Void) -> (drained: Int, lostTotal: UInt64) {
        let n = shared.recorderRecords.drain(body)
        return (n, shared.recorderRecords.lost)
    }

    public func drainFrames(_ body: (LiveFrame) -> Void) -> (drained: Int, lostTotal: UInt64) { frames.drain(body) }
}
