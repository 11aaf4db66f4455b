import Control
import Core
import Foundation
import Imaging
import Runtime
import Sim
import Synchronization

/// What a synthetic run produces.
public struct SyntheticSettings: Sendable, Equatable {
    /// Cycle rate (Hz), 10…2000.
    public var cycleRate = 1000.0
    /// Imaging planes, 0…2.
    public var planes = 2
    /// Frame side (px), 64…2048; the field of view stays that of a 1024² detector at 0.3 mm.
    public var frameSize = 512
    /// Frames per second per plane, 1…60.
    public var framesPerSecond = 15.0
    /// Distinct frames rendered per plane before the run starts; the run then cycles through
    /// them, so rendering does not compete with what is being measured. 1…600.
    public var framePool = 16
    /// Run the tracker on each published frame, as the runtime's imaging thread does, so that each
    /// frame carries the measurement made on it.
    public var track = true
    public var seed: UInt64 = 1

    public init() {}

    public func validate() throws(RecorderError) {
        guard cycleRate.isFinite, (10...2000).contains(cycleRate) else { throw .invalidSetting("cycle rate \(cycleRate) Hz (10…2000)") }
        guard (0...2).contains(planes) else { throw .invalidSetting("planes \(planes) (0…2)") }
        guard (64...2048).contains(frameSize) else { throw .invalidSetting("frame size \(frameSize) px (64…2048)") }
        guard framesPerSecond.isFinite, (1...60).contains(framesPerSecond) else { throw .invalidSetting("frame rate \(framesPerSecond) fps (1…60)") }
        guard (1...600).contains(framePool) else { throw .invalidSetting("frame pool \(framePool) (1…600)") }
    }
}

/// A stand-in for the live runtime, for trying the recorder, replay, the OpenIGTLink server and
/// the metrics without it: a cycle thread that writes `CycleRecord`s into a preallocated ring
/// (never allocating, dropping and counting what the reader has not taken), and an imaging thread
/// that publishes frames rendered by Sim's fluoroscopy renderer (with the tracker's measurements)
/// at the set frame rate. It is also an `OperatorPort`: it answers snapshots, frames and events,
/// and records the intents it is sent.
public final class SyntheticRun: RecordingTap, OperatorPort, @unchecked Sendable {
    public let settings: SyntheticSettings
    public let runtimeDescription: RuntimeDescription

    // The cycle ring: single producer (the cycle thread), single consumer (the recorder).
    private let ringCapacity = 8192
    private let ring: UnsafeMutablePointer<CycleRecord>
    private let head = Atomic<Int>(0)   // next slot the producer writes
    private let tail = Atomic<Int>(0)   // next slot the consumer reads
    private let cycleLost = Atomic<UInt64>(0)
    /// Acquisition time of the newest published frame (0 before the first).
    private let lastFrameAt = Atomic<Int64>(0)

    private let frameQueue = Mutex<(frames: [LiveFrame], lost: UInt64)>(([], 0))
    private let latest = Mutex<[LiveFrame?]>([])
    private let state: Mutex<RuntimeSnapshot>
    private let eventLog = Mutex<[RuntimeEvent]>([])
    private let running = Atomic<Bool>(false)
    private let intentSequence = Atomic<UInt64>(0)
    private var threads: [Thread] = []
    private let stopped = DispatchGroup()

    /// Per plane: the rendered pool (pixels and the tracker's measurement) and the geometry.
    private let pool: [[(pixels: [UInt16], tip: Vec3)]]
    private let geometries: [CArmGeometry]
    private let route: [Vec3]
    /// Per plane, used by the imaging thread only.
    private let trackers: [TipTracker?]

    /// Renders the frame pool (the slow part) and prepares the threads; `start()` runs them.
    public init(settings: SyntheticSettings = SyntheticSettings()) throws {
        try settings.validate()
        self.settings = settings
        let tree = Phantoms.aorticArch()
        let all = tree.vessels.flatMap { $0.points }
        func mid(_ k: Int) -> Double { ((all.map { $0[k] }.min() ?? 0) + (all.map { $0[k] }.max() ?? 0)) / 2 }
        let centre = Vec3(mid(0), mid(1), mid(2))
        let spacing = 0.3 * 1024 / Double(settings.frameSize)
        geometries = (0..<settings.planes).map { p in
            CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: settings.frameSize, rows: settings.frameSize,
                         pixelSpacing: spacing, primaryAngle: Double(p) * .pi / 2, secondaryAngle: 0, isocenter: centre)
        }
        route = (tree.vessels.first?.points ?? []).reversed().map { Vec3($0[0], $0[1], $0[2]) }
        let length = Polyline.length(route)
        var pool: [[(pixels: [UInt16], tip: Vec3)]] = []
        let interval = 1 / settings.framesPerSecond
        for (p, g) in geometries.enumerated() {
            let renderer = FluoroRenderer(geometry: g, seed: settings.seed &+ UInt64(p) &* 0x9E37)
            var frames: [(pixels: [UInt16], tip: Vec3)] = []
            for f in 0..<settings.framePool {
                let line = Polyline.prefix(route, length: min(length, 0.4 * length + 3 * Double(f)), step: 1)
                let at = Nanoseconds.fromSeconds(Double(f) * interval)
                let (frame, _) = try renderer.render(tree: tree, catheter: line, frame: f, acquiredAt: at)
                frames.append((frame.pixels, line.last ?? .zero))
            }
            pool.append(frames)
        }
        self.pool = pool
        trackers = try geometries.map { _ in settings.track ? try TipTracker() : nil }
        let axes = ["insertion", "roll"]
        runtimeDescription = RuntimeDescription(
            robotName: "synthetic", axisNames: axes, positionMin: [0, -.pi], positionMax: [600, .pi], velocityMax: [20, 1],
            planes: geometries.enumerated().map { p, g in
                .init(name: "plane\(p)", width: g.columns, height: g.rows, pixelSpacing: g.pixelSpacing, projection: g.projectionMatrix,
                      framesPerSecond: settings.framesPerSecond)
            },
            roadmap: [(name: tree.vessels.first?.name ?? "route", points: route)], targets: route.last.map { [(name: "end", position: $0)] } ?? [],
            period: Nanoseconds.fromSeconds(1 / settings.cycleRate), deadmanTimeout: 200 * .perMillisecond)
        ring = .allocate(capacity: ringCapacity)
        ring.initialize(repeating: Self.record(cycle: 0, time: 0, tip: .zero), count: ringCapacity)
        latest.withLock { $0 = Array(repeating: nil, count: settings.planes) }
        state = Mutex(RuntimeSnapshot(
            time: MonotonicClock.now(), cycle: 0, lifecycle: .active, mode: .hold, holdReason: .none, joints: JointState(jointCount: 2),
            command: JointCommand(jointCount: 2), estimate: TipEstimate(), target: nil, appliedIntent: 0,
            safety: SafetyStatus(monitorAlive: true, powerPermitted: true), link: LinkHealth(kind: "simulated", up: true),
            latenessP99: 0, computeP99: 0, overruns: 0,
            framesAcquired: Array(repeating: 0, count: settings.planes), framesDropped: Array(repeating: 0, count: settings.planes)))
    }

    deinit {
        ring.deinitialize(count: ringCapacity)
        ring.deallocate()
    }

    static func record(cycle: UInt64, time: Nanoseconds, tip: Vec3, lastImageAt: Nanoseconds? = nil) -> CycleRecord {
        var joints = JointState(jointCount: 2)
        joints.position[0] = Double(cycle) * 0.001
        joints.sampledAt = time
        var command = JointCommand(jointCount: 2)
        command.mode = .velocity
        command.enable = true
        command.velocity[0] = 1
        return CycleRecord(cycle: cycle, time: time, lateness: 20_000, compute: 30_000, joints: joints, command: command,
                           estimate: TipEstimate(position: tip, covariance: Mat3(rows: Vec3(1, 0, 0), Vec3(0, 1, 0), Vec3(0, 0, 1)),
                                                 health: .imageFresh, time: time, lastImageAt: lastImageAt ?? time),
                           mode: .jog, appliedIntent: 0)
    }

    /// The tip (mm) at time `t` from the start: it follows the pool's frames.
    func tip(at t: Nanoseconds) -> Vec3 {
        guard let first = pool.first, !first.isEmpty else { return route.last ?? .zero }
        let f = Int((Double(t) * 1e-9 * settings.framesPerSecond).rounded(.down)) % first.count
        return first[max(0, f)].tip
    }

    public func start() {
        running.store(true, ordering: .releasing)
        let t0 = MonotonicClock.now()
        let cycle = Thread { [self] in cycleLoop(start: t0) }
        cycle.name = "synthetic-cycle"
        let imaging = Thread { [self] in imagingLoop(start: t0) }
        imaging.name = "synthetic-imaging"
        threads = [cycle, imaging]
        for t in threads {
            stopped.enter()
            t.start()
        }
    }

    public func stop() {
        running.store(false, ordering: .releasing)
        stopped.wait()
        appendEvent(who: nil, .ended("stopped"))
    }

    /// Cycles produced so far.
    public var cycles: UInt64 { state.withLock { $0.cycle } }

    private func cycleLoop(start: Nanoseconds) {
        defer { stopped.leave() }
        let period = Nanoseconds.fromSeconds(1 / settings.cycleRate)
        var next = start
        var cycle: UInt64 = 0
        while running.load(ordering: .acquiring) {
            let now = MonotonicClock.now()
            cycle += 1
            // The estimate fuses the newest frame once, as the runtime's estimator does.
            let r = Self.record(cycle: cycle, time: now, tip: tip(at: now - start), lastImageAt: lastFrameAt.load(ordering: .relaxed))
            state.withLock { s in
                s.time = now; s.cycle = cycle; s.joints = r.joints; s.command = r.command; s.estimate = r.estimate; s.mode = r.mode
            }
            produce(r)
            next += period
            if next < now { next = now }
            _ = MonotonicClock.sleep(until: next)
        }
    }

    /// The producer side: no allocation, no lock, never waits; a full ring drops and counts.
    private func produce(_ r: CycleRecord) {
        let h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .acquiring)
        if h - t >= ringCapacity {
            cycleLost.add(1, ordering: .relaxed)
            return
        }
        ring[h % ringCapacity] = r
        head.store(h + 1, ordering: .releasing)
    }

    private func imagingLoop(start: Nanoseconds) {
        defer { stopped.leave() }
        guard !geometries.isEmpty else { return }
        let period = Nanoseconds.fromSeconds(1 / settings.framesPerSecond)
        var next = start
        // `index` counts frame periods (it picks the pool's frame, as time passes for a detector);
        // `published` counts the frames taken, as the runtime numbers them: a recording whose
        // frame numbers jump lacks frames the tracker saw.
        var index: UInt64 = 0, published: UInt64 = 0
        while running.load(ordering: .acquiring) {
            _ = MonotonicClock.sleep(until: next)
            guard running.load(ordering: .acquiring) else { break }
            let now = MonotonicClock.now()
            index += 1; published += 1
            for (p, g) in geometries.enumerated() {
                let item = pool[p][Int((index - 1) % UInt64(pool[p].count))]
                var m: TipMeasurement?
                if let tracker = trackers[p],
                   let t = try? tracker.track(Frame(width: g.columns, height: g.rows, pixels: item.pixels, acquiredAt: now, pixelPitchMM: g.pixelSpacing)) {
                    m = TipMeasurement(acquiredAt: now, plane: UInt8(p), pixel: t.status == .tracked ? SIMD2(t.u, t.v) : nil,
                                       pixelCovariance: SymMat2(xx: 1, yy: 1), confidence: t.confidence)
                }
                let frame = LiveFrame(plane: UInt8(p), index: published, acquiredAt: now, width: g.columns, height: g.rows, pixels: item.pixels,
                                      pixelSpacing: g.pixelSpacing, projection: g.projectionMatrix, measurement: m)
                frameQueue.withLock { q in
                    // Bounded: a recorder that stopped draining does not grow memory.
                    if q.frames.count >= 64 { q.frames.removeFirst(); q.lost += 1 }
                    q.frames.append(frame)
                }
                latest.withLock { $0[p] = frame }
            }
            lastFrameAt.store(now, ordering: .relaxed)
            state.withLock { s in for p in 0..<s.framesAcquired.count { s.framesAcquired[p] = published } }
            next += period
            // Behind by more than a frame (tracking took too long): skip, as a detector would, and count.
            let late = (MonotonicClock.now() - next) / period
            if late > 0 {
                next += late * period
                index += UInt64(late)
                state.withLock { s in for p in 0..<s.framesDropped.count { s.framesDropped[p] += UInt64(late) } }
            }
        }
    }

    // MARK: RecordingTap

    public func drainCycleRecords(_ body: (borrowing CycleRecord) -> Void) -> (drained: Int, lostTotal: UInt64) {
        let h = head.load(ordering: .acquiring)
        var t = tail.load(ordering: .relaxed)
        var n = 0
        while t < h {
            body(ring[t % ringCapacity])
            t += 1; n += 1
            tail.store(t, ordering: .releasing)
        }
        return (n, cycleLost.load(ordering: .relaxed))
    }

    public func drainFrames(_ body: (LiveFrame) -> Void) -> (drained: Int, lostTotal: UInt64) {
        let (frames, lost) = frameQueue.withLock { q -> ([LiveFrame], UInt64) in
            defer { q.frames.removeAll(keepingCapacity: true) }
            return (q.frames, q.lost)
        }
        for f in frames { body(f) }
        return (frames.count, lost)
    }

    // MARK: OperatorPort

    public func submit(_ intent: OperatorIntent, from who: OperatorIdentity) -> Result<IntentReceipt, IntentRejection> {
        if case .target(let p) = intent, !(p.x.isFinite && p.y.isFinite && p.z.isFinite) {
            appendEvent(who: who, .intentRefused(intent, .outOfRange("target")))
            return .failure(.outOfRange("target"))
        }
        if who.role == .observer, intent != .stop {
            appendEvent(who: who, .intentRefused(intent, .notPermitted(role: who.role)))
            return .failure(.notPermitted(role: who.role))
        }
        let seq = intentSequence.add(1, ordering: .relaxed).newValue
        let now = MonotonicClock.now()
        state.withLock { s in
            s.appliedIntent = seq
            if case .target(let p) = intent { s.target = p }
        }
        appendEvent(who: who, .intentAccepted(intent, sequence: seq))
        return .success(IntentReceipt(sequence: seq, acceptedAt: now))
    }

    /// Intents accepted so far, with who sent them (for tests).
    public var acceptedIntents: [(OperatorIntent, OperatorIdentity?)] {
        eventLog.withLock { log in
            log.compactMap { e in if case .intentAccepted(let i, _) = e.kind { (i, e.who) } else { nil } }
        }
    }

    public func snapshot() -> RuntimeSnapshot { state.withLock { $0 } }

    public func latestFrame(plane: UInt8, after index: UInt64) -> LiveFrame? {
        latest.withLock { l in
            guard Int(plane) < l.count, let f = l[Int(plane)], f.index > index else { return nil }
            return f
        }
    }

    public func events(after sequence: UInt64, limit: Int) -> [RuntimeEvent] {
        eventLog.withLock { log in Array(log.lazy.filter { $0.sequence > sequence }.prefix(max(0, limit))) }
    }

    /// Records an event (a fault, a mode change) as the runtime would.
    public func appendEvent(who: OperatorIdentity?, _ kind: RuntimeEvent.Kind) {
        let now = MonotonicClock.now()
        eventLog.withLock { log in
            log.append(RuntimeEvent(sequence: UInt64(log.count + 1), time: now, who: who, kind: kind))
        }
    }
}
