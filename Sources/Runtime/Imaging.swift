import Control
import Core
import Foundation
import Imaging
import Scenarios
import Sim
import Synchronization

/// One exposure as a frame source delivers it to the imaging thread.
public struct LiveExposure {
    /// One frame per plane exposed (a biplane source may deliver one plane only).
    public var frames: [PlaneFrame]
    /// Monotonic ns (the cycle's clock) when the exposure was taken.
    public var acquiredAt: Nanoseconds
    /// mm — the true tip at acquisition, when the source knows it (a simulator).
    public var truthTip: Vec3?
    public init(frames: [PlaneFrame], acquiredAt: Nanoseconds, truthTip: Vec3? = nil) {
        self.frames = frames; self.acquiredAt = acquiredAt; self.truthTip = truthTip
    }
}

/// Where the imaging thread's frames come from: the simulated C-arm, a replayed recording, or a
/// frame grabber. The frame-grabber protocol (docs/runtime.md):
/// - `planes` gives each plane's geometry (from the C-arm's calibration), fixed for the run;
/// - `framePeriod` nil means the source paces itself: `exposure(at:)` blocks until the grabber
///   has the next frame and returns it stamped with its acquisition time on the cycle's clock
///   (CLOCK_MONOTONIC; a grabber with its own clock converts once at start and corrects drift);
/// - non-nil, the imaging thread calls `exposure(at:)` every period, at `time`;
/// - nil from `exposure(at:)` ends the stream; a thrown error ends it and is reported;
/// - it runs on the imaging thread only and may allocate and block, never the cycle;
/// - `imagesThisCatheter` is true (the default) for a C-arm at this patient: its measurements are
///   fused and steer the robot. A recorded sequence is someone else's catheter: shown, tracked
///   and recorded, never fused.
public protocol LiveFrameSource: AnyObject {
    var planes: [CArmGeometry] { get }
    var framePeriod: Nanoseconds? { get }
    var name: String { get }
    var imagesThisCatheter: Bool { get }
    func exposure(at time: Nanoseconds) throws(RuntimeError) -> LiveExposure?
}

extension LiveFrameSource {
    public var imagesThisCatheter: Bool { true }
    /// The planes whose images can steer this run: the source's, or none for a recording.
    public var steeringPlanes: Int { imagesThisCatheter ? planes.count : 0 }
}

/// The simulated C-arm, mono- or biplane, rendering the live physics catheter as the cycle
/// last published it (its snapshot's time is the acquisition time).
public final class SimulatedCArmSource: LiveFrameSource {
    public let planes: [CArmGeometry]
    public let framePeriod: Nanoseconds?
    public var name: String { planes.count == 2 ? "simulated biplane C-arm" : "simulated C-arm" }
    let carm: SimulatedBiplaneCArm
    let catheter: CatheterSnapshot
    var index = 0

    /// `fps` 7.5, 15 or 30 as a C-arm offers; `planes` one (mono) or two (biplane).
    /// `catheterRadius`: mm, the catheter drawn (the robot's outer diameter over 2).
    public init(planes: [CArmGeometry], tree: VesselTreeDescription, photons: Double, seed: UInt64, fps: Double,
                catheter: CatheterSnapshot, catheterRadius: Double = RobotDescription.defaultOuterDiameterMM / 2) throws(RuntimeError) {
        guard [7.5, 15, 30].contains(fps) else { throw .badSetting(field: "fps", reason: "a C-arm runs at 7.5, 15 or 30 fps, not \(fps)") }
        guard (1...2).contains(planes.count) else { throw .badSetting(field: "planes", reason: "one or two planes, not \(planes.count)") }
        self.planes = planes
        framePeriod = Nanoseconds(1e9 / fps)
        carm = SimulatedBiplaneCArm(planes: planes, tree: tree, photons: photons, seed: seed, catheterRadius: catheterRadius)
        self.catheter = catheter
    }

    public func exposure(at time: Nanoseconds) throws(RuntimeError) -> LiveExposure? {
        guard let shape = catheter.read() else { return LiveExposure(frames: [], acquiredAt: time) }
        index += 1
        let e: NavigationExposure
        do { e = try carm.exposure(index: index, at: shape.time, catheter: shape.centerline) } catch { throw .imaging(error.description) }
        return LiveExposure(frames: e.frames, acquiredAt: shape.time, truthTip: e.truthTip)
    }
}

/// A recorded sequence (PNG folder, DICOM file) replayed at its frame interval through Imaging's
/// `FrameSource`, as plane 0, stamped with the time it is delivered. Its catheter is not this
/// run's: tracked and shown, never fused.
public final class ReplayFrameSource: LiveFrameSource {
    public let planes: [CArmGeometry]
    public let framePeriod: Nanoseconds?
    public var name: String { "replay of \(source.path)" }
    public var imagesThisCatheter: Bool { false }
    let source: FrameSource

    /// `geometry` is used when the recording carries none.
    public init(path: String, geometry: CArmGeometry?) throws(RuntimeError) {
        do { source = try FrameSource.open(path: path) } catch { throw .imaging("\(error)") }
        guard let g = source.geometry ?? geometry else {
            throw .badSetting(field: "geometry", reason: "\(path) carries no C-arm geometry: give one")
        }
        planes = [g]
        framePeriod = source.frameInterval
    }

    public func exposure(at time: Nanoseconds) throws(RuntimeError) -> LiveExposure? {
        let frame: Frame?
        do { frame = try source.next() } catch { throw .imaging("\(error)") }
        guard var f = frame else { return nil }
        f.acquiredAt = time
        return LiveExposure(frames: [PlaneFrame(plane: 0, frame: f)], acquiredAt: time)
    }
}

/// The imaging thread's figures, read when it has stopped or for progress.
public struct ImagingFigures: Sendable {
    public var acquired: [UInt64]
    public var dropped: [UInt64]
    public var tracked: Int = 0
    public var measurementsSent: Int = 0
    public var mailboxRefused: Int = 0
    /// ns per exposure from acquisition to its measurements posted (render excluded for a simulator).
    public var trackingTimes: [Int64] = []
    /// mm — the image-only error where the source knows the truth.
    public var imageErrors: [Double] = []
    public var failure: String?
}

/// The imaging thread: paces the source, measures each exposure with the biplane measurer
/// (prior: the cycle's latest estimate), posts the measurements through the mailbox with their
/// acquisition time, and publishes the frames. When it is busy past an exposure's time, that
/// exposure is dropped and counted; the cycle never waits for it.
final class ImagingThread: @unchecked Sendable {
    let source: LiveFrameSource
    let measurer: BiplaneTipMeasurer
    let sender: MeasurementSender
    let shared: LiveShared
    let frames: FrameStore
    let running = Atomic<Bool>(false)
    let done = DispatchSemaphore(value: 0)
    let figures = Mutex(ImagingFigures(acquired: [], dropped: []))

    init(source: LiveFrameSource, measurer: BiplaneTipMeasurer, sender: consuming MeasurementSender, shared: LiveShared, frames: FrameStore) {
        self.source = source
        self.measurer = measurer
        self.sender = sender
        self.shared = shared
        self.frames = frames
        let n = source.planes.count
        figures.withLock { $0 = ImagingFigures(acquired: Array(repeating: 0, count: n), dropped: Array(repeating: 0, count: n)) }
    }

    /// Starts the thread; its first exposure comes `delay` seconds later (the cycle runs without
    /// imaging meanwhile, for the with/without comparison of one run).
    func start(delay: Double = 0) {
        running.store(true, ordering: .releasing)
        let thread = Thread { [self] in
            let begin = MonotonicClock.now() + Nanoseconds(max(0, delay) * 1e9)
            while running.load(ordering: .acquiring), MonotonicClock.now() < begin { usleep(10_000) }
            shared.imagingOn = true
            loop()
            shared.imagingOn = false
            done.signal()
        }
        thread.name = "lumen-imaging"
        thread.stackSize = 8 << 20
        thread.start()
    }

    func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) { done.wait() }
    }

    private func loop() {
        var next = MonotonicClock.now()
        let planes = source.planes
        let steers = source.imagesThisCatheter
        let projections = planes.map { ProjectionMatrix($0).rowMajor }
        var index: [UInt64] = Array(repeating: 0, count: planes.count)
        while running.load(ordering: .acquiring) {
            if let period = source.framePeriod {
                _ = MonotonicClock.sleep(until: next)
                next += period
            }
            let t0 = MonotonicClock.now()
            let exposure: LiveExposure?
            do { exposure = try source.exposure(at: t0) } catch {
                figures.withLock { $0.failure = error.description }
                break
            }
            guard let exposure else { break }
            if exposure.frames.isEmpty { continue }
            let prior = shared.published.read().estimate
            let measured: BiplaneMeasurement
            do { measured = try measurer.measure(exposure.frames, prior: prior) } catch {
                figures.withLock { $0.failure = "\(error)" }
                break
            }
            var sent = 0, refused = 0
            // A recording's catheter is not this robot's: its fixes would pull the estimate, and
            // through it the servo and the monitor's tip check, to where another catheter was.
            if steers {
                for m in measured.measurements { if sender.send(m) { sent += 1 } else { refused += 1 } }
                // A biplane pair is the monitor's second tip source (relayed by the cycle's heartbeat).
                if measured.outcome.point != nil, let m = measured.measurements.first, let p = m.position { shared.imageTip.publish(p, acquiredAt: m.acquiredAt) }
            }
            let spent = MonotonicClock.now() - t0
            var live: [LiveFrame] = []
            for f in exposure.frames where f.plane < planes.count {
                index[f.plane] += 1
                var frame = LiveFrame(plane: UInt8(f.plane), index: index[f.plane], acquiredAt: exposure.acquiredAt, width: f.frame.width,
                                      height: f.frame.height, pixels: f.frame.pixels, pixelSpacing: planes[f.plane].pixelSpacing,
                                      projection: projections[f.plane], measurement: measured.measurement(onPlane: f.plane))
                frame.prior = prior
                frame.motion = f.motion
                frame.framePitch = f.frame.pixelPitchMM
                frame.exposurePlanes = exposure.frames.count
                live.append(frame)
            }
            frames.publish(live)
            // Busy past the next exposures' times: those exposures are not taken, and counted.
            var missed: UInt64 = 0
            if let period = source.framePeriod {
                let now = MonotonicClock.now()
                if now > next {
                    missed = UInt64((now - next) / period) + 1
                    next += Nanoseconds(missed) * period
                }
            }
            figures.withLock { g in
                for f in exposure.frames where f.plane < g.acquired.count {
                    g.acquired[f.plane] += 1
                    g.dropped[f.plane] += missed
                }
                g.tracked += measured.detections
                g.measurementsSent += sent
                g.mailboxRefused += refused
                g.trackingTimes.append(spent)
                if let p = measured.outcome.point, let truth = exposure.truthTip { g.imageErrors.append((p.position - truth).length) }
            }
        }
    }
}

/// The latest frame per plane for the console, and every frame for the recorder (bounded; the
/// oldest is dropped and counted when the recorder falls behind). Not touched by the cycle.
final class FrameStore: @unchecked Sendable {
    struct State {
        var latest: [UInt8: LiveFrame] = [:]
        var queue: [LiveFrame] = []
        var lost: UInt64 = 0
    }
    let state = Mutex(State())
    let queueLimit: Int
    init(queueLimit: Int = 64) { self.queueLimit = queueLimit }

    func publish(_ frames: [LiveFrame]) {
        state.withLock { s in
            for f in frames {
                s.latest[f.plane] = f
                s.queue.append(f)
            }
            if s.queue.count > queueLimit {
                let extra = s.queue.count - queueLimit
                s.queue.removeFirst(extra)
                s.lost += UInt64(extra)
            }
        }
    }

    func latest(plane: UInt8, after index: UInt64) -> LiveFrame? {
        state.withLock { s in
            guard let f = s.latest[plane], f.index > index else { return nil }
            return f
        }
    }

    func drain(_ body: (LiveFrame) -> Void) -> (drained: Int, lostTotal: UInt64) {
        let (taken, lost) = state.withLock { s in
            let q = s.queue
            s.queue.removeAll(keepingCapacity: true)
            return (q, s.lost)
        }
        for f in taken { body(f) }
        return (taken.count, lost)
    }
}
