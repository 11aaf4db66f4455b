import Control
import Core

// The contract between the live runtime and everything that attaches to it: the console, the
// recorder, the OpenIGTLink server and the HIL runner. None of them touches the cycle: intents go
// in through a bounded queue the cycle drains without waiting; state, frames and events come out as
// copies the runtime publishes. Keep this file free of implementation so each side can be built and
// tested against it alone (the console's tests use a fake port).

/// Who may do what. Every intent carries the identity that sent it; the runtime records it.
public enum OperatorRole: String, Sendable, Codable, CaseIterable {
    /// Holds the control lease: may move the robot.
    case `operator`
    /// Views only; may still stop.
    case observer
    /// May override a lease; otherwise as an operator.
    case supervisor
    /// A program acting for a person: a HIL scenario, an OpenIGTLink client with targets enabled.
    case automation
}

/// Who sent an intent, as the attaching side authenticated it.
public struct OperatorIdentity: Sendable, Hashable, Codable {
    /// The user name or client name.
    public var name: String
    public var role: OperatorRole
    /// Where it came from ("console 127.0.0.1:53122", "hil scenario arch-01", "igtl 10.0.0.4").
    public var source: String

    public init(name: String, role: OperatorRole, source: String) {
        self.name = name; self.role = role; self.source = source
    }
}

/// What an operator can ask of the running system. Every intent goes through the mode supervisor
/// and the motion limiter; there is no other way to command motion.
public enum OperatorIntent: Sendable, Equatable {
    /// The deadman is held (`true`) or released. While held, the attaching side repeats it (e.g.
    /// every 50 ms); the runtime treats a gap longer than its deadman timeout as a release.
    case deadman(held: Bool)
    /// Ask the supervisor for a mode (`hold`, `jog`, `idle`; `tipServo` only through `target`).
    case mode(ControlMode)
    /// Joint jog: per-axis demand as a fraction of each axis's velocity limit, −1…1.
    case jointJog(JointVector)
    /// Tip jog in the patient frame: hand displacement (mm) with the clutch state, mapped through
    /// the teleop settings (scaling, deadband, tremor filter).
    case tipJog(hand: Vec3, clutch: Bool)
    /// Navigate to a point (mm, patient frame): supervised, moves only while the deadman is held.
    case target(Vec3)
    /// Navigate to a point clicked on one plane's image (px); the runtime lifts it to 3D on the
    /// roadmap (ray through the pixel, nearest route point).
    case targetPixel(plane: UInt8, pixel: SIMD2<Double>)
    /// Navigate to one of the runtime's named targets (`RuntimeDescription.targets`).
    case namedTarget(String)
    /// Joint move along a profile: `axis` to `position` (or by it, `relative`) over `duration` s
    /// (0.001…600), minimum-jerk (`smooth`) or at constant speed. A jog: it moves only while the
    /// deadman is held (a release abandons it where it stands), through the supervisor's limiter
    /// and under the monitor like any jog. For automation that moves joints (a HIL scenario).
    case jointMove(axis: Int, position: Double, relative: Bool, duration: Double, smooth: Bool)
    /// Category-1 stop: controlled stop, then power off. Always accepted, from any role.
    case stop
    /// Category-0 stop (the emergency stop): the drives' power removed at once, from the next
    /// cycle's command (enable 0, the reference where the joints stand), with no controlled stop
    /// before it; latched like `stop` until acknowledged. Always accepted, from any role.
    case emergencyStop
    /// Acknowledge latched faults (after their cause has gone).
    case acknowledgeFaults
}

/// Why an intent was refused. The runtime never half-applies a refused intent.
public enum IntentRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// The identity's role may not send this intent.
    case notPermitted(role: OperatorRole)
    /// A value is not finite or out of its range; names the field.
    case outOfRange(String)
    /// The supervisor refused the mode change.
    case modeRefused(ModeRequestError)
    /// A stop is latched; acknowledge first.
    case stopLatched
    /// A target that is not on the roadmap, or a name the runtime does not know.
    case unknownTarget(String)
    /// The runtime is not running (starting, stopping or ended).
    case notRunning
    /// The intent queue is full (an attaching side sends faster than the cycle drains).
    case busy
    /// A target with the safety monitor on and imaging that gives it no image-measured tip (one
    /// plane, or none): the monitor stops image-guided motion without one (`image_stale`).
    case noImageTipForMonitor(planes: Int)

    public var description: String {
        switch self {
        case .notPermitted(let r): "a \(r.rawValue) may not do that"
        case .outOfRange(let f): "\(f) is out of range"
        case .modeRefused(let e): "mode refused: \(e)"
        case .stopLatched: "a stop is latched: acknowledge it first"
        case .unknownTarget(let t): "unknown target: \(t)"
        case .notRunning: "the runtime is not running"
        case .busy: "too many intents: try again"
        case .noImageTipForMonitor(let n):
            "the safety monitor stops image-guided motion without a biplane image tip, and this run has \(n == 0 ? "no image of its own catheter (imaging off, or a replayed recording)" : "one plane"): navigate with two planes, or jog"
        }
    }
}

/// An accepted intent: its sequence number, which `RuntimeSnapshot.appliedIntent` reaches when
/// the cycle has applied it (intent → cycle latency is measured from these two).
public struct IntentReceipt: Sendable, Equatable {
    public var sequence: UInt64
    public var acceptedAt: Nanoseconds
    public init(sequence: UInt64, acceptedAt: Nanoseconds) { self.sequence = sequence; self.acceptedAt = acceptedAt }
}

/// The safety monitor as the runtime sees it.
public struct SafetyStatus: Sendable, Equatable {
    /// The monitor process runs and its verdicts arrive.
    public var monitorAlive: Bool
    /// Age of the cycle's last heartbeat as the monitor reported it (ns).
    public var heartbeatAge: Nanoseconds
    /// The drives' power is permitted by the monitor right now.
    public var powerPermitted: Bool
    /// The active stop's category (0, 1, 2), nil when none.
    public var stopCategory: Int?
    /// Latched faults, each with its text, oldest first.
    public var latchedFaults: [String]
    public var deadmanHeld: Bool
    /// Acquisition time (monotonic ns) of the newest image-measured 3D tip the cycle relays to the
    /// monitor; 0 while there is none. In image-guided mode the monitor stops a robot without a
    /// fresh one (`image_stale`), so guidance must not start before it is there.
    public var imageTipAt: Nanoseconds = 0

    public init(monitorAlive: Bool = false, heartbeatAge: Nanoseconds = 0, powerPermitted: Bool = false, stopCategory: Int? = nil,
                latchedFaults: [String] = [], deadmanHeld: Bool = false, imageTipAt: Nanoseconds = 0) {
        self.monitorAlive = monitorAlive; self.heartbeatAge = heartbeatAge; self.powerPermitted = powerPermitted
        self.stopCategory = stopCategory; self.latchedFaults = latchedFaults; self.deadmanHeld = deadmanHeld
        self.imageTipAt = imageTipAt
    }
}

/// The link to the drives.
public struct LinkHealth: Sendable, Equatable {
    /// "simulated", "serial", "ethercat-udp", …
    public var kind: String
    public var up: Bool
    /// Counters by name (bad CRC, stale, working-counter errors, …).
    public var errors: [String: Int]
    public init(kind: String, up: Bool, errors: [String: Int] = [:]) { self.kind = kind; self.up = up; self.errors = errors }
}

/// The latest published state of the running system: a copy, safe to keep.
public struct RuntimeSnapshot: Sendable {
    /// Monotonic ns of the cycle this snapshot is from.
    public var time: Nanoseconds
    public var cycle: UInt64
    public var lifecycle: LifecycleState
    public var mode: ControlMode
    public var holdReason: HoldReason
    public var joints: JointState
    public var command: JointCommand
    public var estimate: TipEstimate
    /// The active navigation target (mm), if any.
    public var target: Vec3?
    /// Sequence of the last intent the cycle applied.
    public var appliedIntent: UInt64
    public var safety: SafetyStatus
    public var link: LinkHealth
    /// Cycle timing so far (ns): lateness and compute p99, overruns.
    public var latenessP99: Nanoseconds
    public var computeP99: Nanoseconds
    public var overruns: Int64
    /// Imaging: frames acquired, tracked, dropped (the imaging thread was busy), per plane.
    public var framesAcquired: [UInt64]
    public var framesDropped: [UInt64]

    public init(time: Nanoseconds, cycle: UInt64, lifecycle: LifecycleState, mode: ControlMode, holdReason: HoldReason,
                joints: JointState, command: JointCommand, estimate: TipEstimate, target: Vec3?, appliedIntent: UInt64,
                safety: SafetyStatus, link: LinkHealth, latenessP99: Nanoseconds, computeP99: Nanoseconds, overruns: Int64,
                framesAcquired: [UInt64], framesDropped: [UInt64]) {
        self.time = time; self.cycle = cycle; self.lifecycle = lifecycle; self.mode = mode; self.holdReason = holdReason
        self.joints = joints; self.command = command; self.estimate = estimate; self.target = target
        self.appliedIntent = appliedIntent; self.safety = safety; self.link = link
        self.latenessP99 = latenessP99; self.computeP99 = computeP99; self.overruns = overruns
        self.framesAcquired = framesAcquired; self.framesDropped = framesDropped
    }
}

/// One fluoroscopy frame as it was acquired, with what the tracker made of it. Pixels are shared
/// (immutable once published), so handing a frame to several readers copies nothing.
public struct LiveFrame: Sendable {
    public var plane: UInt8
    /// Per-plane frame counter, from 1.
    public var index: UInt64
    public var acquiredAt: Nanoseconds
    public var width: Int
    public var height: Int
    /// Row-major, width × height, 16-bit; larger is brighter (more transmitted X-ray).
    public var pixels: [UInt16]
    /// mm per pixel at the detector.
    public var pixelSpacing: Double
    /// The plane's 3 × 4 projection (row-major), patient mm → pixels.
    public var projection: [Double]
    /// The tracker's measurement on this frame, nil when it found no tip.
    public var measurement: TipMeasurement?
    /// What the measurer was given besides the pixels, so that a replay can measure the exposure
    /// again exactly: the estimate it searched around, the scene's motion on this plane, the
    /// pitch the frame was handed over with (nil: none), and how many planes the exposure had.
    /// nil prior: the frame was not measured by the biplane measurer (a synthetic run).
    public var prior: TipEstimate?
    public var motion: Vec3 = .zero
    public var framePitch: Double?
    public var exposurePlanes = 1

    public init(plane: UInt8, index: UInt64, acquiredAt: Nanoseconds, width: Int, height: Int, pixels: [UInt16],
                pixelSpacing: Double, projection: [Double], measurement: TipMeasurement?) {
        self.plane = plane; self.index = index; self.acquiredAt = acquiredAt; self.width = width; self.height = height
        self.pixels = pixels; self.pixelSpacing = pixelSpacing; self.projection = projection; self.measurement = measurement
    }
}

/// Something that happened, for audit logs, the console's event list and the recorder.
public struct RuntimeEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case intentAccepted(OperatorIntent, sequence: UInt64)
        case intentRefused(OperatorIntent, IntentRejection)
        case modeChanged(from: ControlMode, to: ControlMode, reason: HoldReason)
        case fault(String, stopCategory: Int)
        case faultsAcknowledged
        case monitor(alive: Bool)
        /// The path servo spent its bounded attempts and holds; what it says to do next.
        case servoGaveUp(String)
        case ended(String)
    }
    /// Increasing, from 1, without gaps; a reader that fell behind sees the gap in `events(after:)`.
    public var sequence: UInt64
    public var time: Nanoseconds
    public var who: OperatorIdentity?
    public var kind: Kind

    public init(sequence: UInt64, time: Nanoseconds, who: OperatorIdentity?, kind: Kind) {
        self.sequence = sequence; self.time = time; self.who = who; self.kind = kind
    }
}

/// What does not change while the runtime runs: for views to draw and clients to describe.
public struct RuntimeDescription: Sendable {
    public var robotName: String
    public var axisNames: [String]
    /// Per axis (units of the axis): position limits and velocity limit.
    public var positionMin: [Double]
    public var positionMax: [Double]
    public var velocityMax: [Double]
    /// Imaging planes (index = plane): size, spacing, projection (3 × 4, row-major).
    public var planes: [PlaneDescription]
    /// The roadmap: vessel centrelines (mm, patient frame), one polyline each, with names.
    public var roadmap: [(name: String, points: [Vec3])]
    /// Named targets the operator may pick.
    public var targets: [(name: String, position: Vec3)]
    /// Every vessel's centreline (mm, patient frame) when the runtime knows the whole tree; then
    /// `roadmap` is the planned route through it, which views draw apart from the vessels.
    public var vessels: [(name: String, points: [Vec3])] = []
    /// Cycle period (ns) and the deadman timeout (ns) the runtime applies.
    public var period: Nanoseconds
    public var deadmanTimeout: Nanoseconds
    /// ns — the age of the newest fused image above which the safety monitor stops image-guided
    /// motion (its `image_stale` check); 0 when no monitor checks it.
    public var imageMaxAge: Nanoseconds = 0

    public struct PlaneDescription: Sendable {
        public var name: String
        public var width: Int
        public var height: Int
        public var pixelSpacing: Double
        public var projection: [Double]
        public var framesPerSecond: Double
        public init(name: String, width: Int, height: Int, pixelSpacing: Double, projection: [Double], framesPerSecond: Double) {
            self.name = name; self.width = width; self.height = height; self.pixelSpacing = pixelSpacing
            self.projection = projection; self.framesPerSecond = framesPerSecond
        }
    }

    public init(robotName: String, axisNames: [String], positionMin: [Double], positionMax: [Double], velocityMax: [Double],
                planes: [PlaneDescription], roadmap: [(name: String, points: [Vec3])], targets: [(name: String, position: Vec3)],
                period: Nanoseconds, deadmanTimeout: Nanoseconds) {
        self.robotName = robotName; self.axisNames = axisNames; self.positionMin = positionMin; self.positionMax = positionMax
        self.velocityMax = velocityMax; self.planes = planes; self.roadmap = roadmap; self.targets = targets
        self.period = period; self.deadmanTimeout = deadmanTimeout
    }
}

/// The running system as an attaching side sees it. Thread-safe; no call waits on the cycle.
public protocol OperatorPort: AnyObject, Sendable {
    var runtimeDescription: RuntimeDescription { get }
    /// Queue an intent from `who`. Checked here (role, ranges, latched stop) and again by the
    /// supervisor in the cycle; a refusal is also an event.
    func submit(_ intent: OperatorIntent, from who: OperatorIdentity) -> Result<IntentReceipt, IntentRejection>
    /// The latest published state.
    func snapshot() -> RuntimeSnapshot
    /// The newest frame of `plane` with an index above `index`, or nil when there is none yet.
    func latestFrame(plane: UInt8, after index: UInt64) -> LiveFrame?
    /// Events with a sequence above `sequence`, oldest first, at most `limit`.
    func events(after sequence: UInt64, limit: Int) -> [RuntimeEvent]
}

/// One control cycle as the recorder stores it: fixed size, no heap, so the cycle can write it into
/// a preallocated ring without allocating.
public struct CycleRecord: Sendable, Equatable {
    public var cycle: UInt64
    /// When the cycle woke (monotonic ns), and how late past its deadline / how long it computed.
    public var time: Nanoseconds
    public var lateness: Nanoseconds
    public var compute: Nanoseconds
    public var joints: JointState
    public var command: JointCommand
    public var estimate: TipEstimate
    public var mode: ControlMode
    public var appliedIntent: UInt64
    /// Image measurements the estimator took in this cycle (fused or refused), and the newest one's
    /// acquisition time (0 when none): the cycle each measurement arrived in, which a replay
    /// needs to fuse it where the run did.
    public var measurementsArrived: UInt32
    public var arrivedAcquiredAt: Nanoseconds

    public init(cycle: UInt64, time: Nanoseconds, lateness: Nanoseconds, compute: Nanoseconds, joints: JointState,
                command: JointCommand, estimate: TipEstimate, mode: ControlMode, appliedIntent: UInt64,
                measurementsArrived: UInt32 = 0, arrivedAcquiredAt: Nanoseconds = 0) {
        self.cycle = cycle; self.time = time; self.lateness = lateness; self.compute = compute; self.joints = joints
        self.command = command; self.estimate = estimate; self.mode = mode; self.appliedIntent = appliedIntent
        self.measurementsArrived = measurementsArrived; self.arrivedAcquiredAt = arrivedAcquiredAt
    }
}

/// What a recorder drains from the running system. One consumer only (the recorder's thread);
/// records the consumer did not drain in time are overwritten and counted, never waited for.
public protocol RecordingTap: AnyObject, Sendable {
    /// Hands every cycle record produced since the last call to `body`, oldest first; returns how
    /// many were handed over and how many were lost (overwritten) since the start.
    func drainCycleRecords(_ body: (borrowing CycleRecord) -> Void) -> (drained: Int, lostTotal: UInt64)
    /// Every frame acquired (all planes) since the last call, oldest first, and the frames lost.
    func drainFrames(_ body: (LiveFrame) -> Void) -> (drained: Int, lostTotal: UInt64)
}
