import Control
import Core
import Foundation
import Runtime
import Synchronization

/// An `OperatorPort` that stands in for the live runtime: a kinematic steerable catheter in a
/// small vessel tree, two orthographic fluoroscopy planes drawn synthetically, a deadman timeout,
/// and a category-1 stop that latches until acknowledged. It keeps the port's rules (roles,
/// ranges, latched stop, bounded intent queue) so the console is tested against the behaviour it
/// will meet, and `lumen console` runs it until the live runtime is wired in.
///
/// Axes: insertion (mm), roll (rad), then the two tendons of one bending section (mm). The tip
/// follows the catheter's own path (retracting runs it back along the way it came); bending the
/// tendons turns the heading in the plane the roll selects.
public final class SimulatedPort: OperatorPort {
    public let runtimeDescription: RuntimeDescription

    struct Catheter {
        var joints = JointVector([0, 0, 0, 0])
        var velocity = JointVector(count: 4)
        /// Points the tip passed, each with the insertion it was reached at.
        var trail: [(insertion: Double, point: Vec3)] = []
    }
    struct State {
        var now: Nanoseconds
        var cycle: UInt64 = 0
        var mode = ControlMode.hold
        var holdReason = HoldReason.none
        var catheter = Catheter()
        var deadmanHeld = false
        var lastDeadman: Nanoseconds = 0
        var jog = JointVector(count: 4)
        var jogAt: Nanoseconds = 0
        var target: Vec3?
        /// The way to the target: along the roadmap for a navigation target, straight for a tip-jog stroke.
        var route: [Vec3] = []
        var strokeStart: Vec3?
        var stopCategory: Int?
        var faults: [String] = []
        var queue: [(OperatorIntent, OperatorIdentity, UInt64)] = []
        var nextSequence: UInt64 = 1
        var appliedIntent: UInt64 = 0
        var events: [RuntimeEvent] = []
        var nextEvent: UInt64 = 1
        var frames: [LiveFrame?] = [nil, nil]
        var nextFrameAt: [Nanoseconds] = [0, 0]
        var frameIndex: [UInt64] = [0, 0]
        var lastStep: Nanoseconds
        var noise: UInt64 = 0x9E37_79B9_7F4A_7C15
    }

    private let state: Mutex<State>
    private let clock: any ConsoleClock
    private let running = Atomic<Bool>(false)
    /// Where the catheter enters (mm) and its heading there.
    static let entry = Vec3(0, -60, 0)
    static let baseHeading = Vec3(0, 1, 0)
    /// Heading change per mm of tendon difference (rad/mm).
    static let bendPerTendon = 0.16
    /// A jog demand older than the deadman's timeout is dropped: the page repeats it with every
    /// deadman heartbeat while a button is down (as the live cycle does).
    var jogLifetime: Nanoseconds { max(runtimeDescription.deadmanTimeout, 250 * .perMillisecond) }
    static let queueCapacity = 64
    static let eventCapacity = 1000
    /// Tip servo: speed (mm/s) and the distance that counts as arrived (mm).
    static let servoSpeed = 12.0
    static let arrived = 0.5

    public init(clock: any ConsoleClock = SystemConsoleClock(), deadmanTimeout: Nanoseconds = 150 * .perMillisecond,
                imageSize: Int = 256, framesPerSecond: Double = 15) {
        self.clock = clock
        let s = 0.5 // mm per pixel
        let c = Double(imageSize) / 2
        // Orthographic: plane 0 (AP) sees x → right, y → up; plane 1 (lateral) sees z → right, y → up.
        let ap = [1 / s, 0, 0, c, 0, -1 / s, 0, c, 0, 0, 0, 1]
        let lat = [0, 0, 1 / s, c, 0, -1 / s, 0, c, 0, 0, 0, 1]
        let trunk = (0...12).map { Self.entry + Vec3(0, Double($0) * 5, 0) }
        let left = (0...12).map { i -> Vec3 in let t = Double(i) / 12; return Vec3(-38 * t, 45 * t + 4 * sin(t * .pi), 6 * t) }
        let right = (0...12).map { i -> Vec3 in let t = Double(i) / 12; return Vec3(34 * t, 50 * t, -10 * t) }
        runtimeDescription = RuntimeDescription(
            robotName: "simulated catheter robot", axisNames: ["insertion", "roll", "tendon A", "tendon B"],
            positionMin: [0, -.pi, -5, -5], positionMax: [160, .pi, 5, 5], velocityMax: [20, 1.5, 4, 4],
            planes: [
                .init(name: "AP", width: imageSize, height: imageSize, pixelSpacing: s, projection: ap, framesPerSecond: framesPerSecond),
                .init(name: "lateral", width: imageSize, height: imageSize, pixelSpacing: s, projection: lat, framesPerSecond: framesPerSecond),
            ],
            roadmap: [("trunk", trunk), ("left branch", left), ("right branch", right)],
            targets: [("left branch", left[10]), ("right branch", right[10])],
            period: 5 * .perMillisecond, deadmanTimeout: deadmanTimeout)
        let now = clock.now()
        var st = State(now: now, lastStep: now)
        st.catheter.trail = [(0, Self.entry)]
        state = Mutex(st)
    }

    // MARK: OperatorPort

    public func submit(_ intent: OperatorIntent, from who: OperatorIdentity) -> Result<IntentReceipt, IntentRejection> {
        let now = clock.now()
        return state.withLock { s in
            if let rejection = check(intent, who, s) {
                event(&s, who, .intentRefused(intent, rejection))
                return .failure(rejection)
            }
            guard s.queue.count < Self.queueCapacity else { return .failure(.busy) }
            let seq = s.nextSequence
            s.nextSequence += 1
            s.queue.append((intent, who, seq))
            if case .deadman = intent {} else { event(&s, who, .intentAccepted(intent, sequence: seq)) }
            return .success(IntentReceipt(sequence: seq, acceptedAt: now))
        }
    }

    public func snapshot() -> RuntimeSnapshot {
        state.withLock { s in
            var joints = JointState(jointCount: 4)
            joints.position = s.catheter.joints
            joints.velocity = s.catheter.velocity
            for i in 0..<4 { joints.current[i] = 0.05 + 0.08 * abs(s.catheter.velocity[i]) }
            joints.insertionForce = 0.05 + 0.02 * abs(s.catheter.velocity[0])
            joints.sampledAt = s.now
            var command = JointCommand(jointCount: 4)
            command.enable = s.mode != .idle
            command.mode = s.mode == .jog || s.mode == .tipServo ? .velocity : .hold
            command.velocity = s.catheter.velocity
            let tip = s.catheter.trail.last?.point ?? Self.entry
            let lastImage = s.frames.compactMap { $0?.acquiredAt }.max() ?? 0
            return RuntimeSnapshot(
                time: s.now, cycle: s.cycle, lifecycle: .active, mode: s.mode, holdReason: s.holdReason, joints: joints,
                command: command, estimate: TipEstimate(position: tip, covariance: .zero, health: .imageFresh, time: s.now, lastImageAt: lastImage),
                target: s.target, appliedIntent: s.appliedIntent,
                safety: SafetyStatus(monitorAlive: true, heartbeatAge: s.now - s.lastStep, powerPermitted: s.stopCategory == nil,
                                     stopCategory: s.stopCategory, latchedFaults: s.faults, deadmanHeld: s.deadmanHeld),
                link: LinkHealth(kind: "simulated", up: true), latenessP99: 0, computeP99: 0, overruns: 0,
                framesAcquired: s.frameIndex, framesDropped: [0, 0])
        }
    }

    public func latestFrame(plane: UInt8, after index: UInt64) -> LiveFrame? {
        state.withLock { s in
            guard Int(plane) < s.frames.count, let f = s.frames[Int(plane)], f.index > index else { return nil }
            return f
        }
    }

    public func events(after sequence: UInt64, limit: Int) -> [RuntimeEvent] {
        state.withLock { s in Array(s.events.lazy.filter { $0.sequence > sequence }.prefix(max(0, limit))) }
    }

    /// The catheter's body as drawn: the points the tip passed (mm), entry first.
    func body() -> [Vec3] { state.withLock { $0.catheter.trail.map(\.point) } }

    // MARK: Running

    /// Steps on its own thread every period until `stop()`.
    public func start() {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let period = runtimeDescription.period
        let t = Thread { [self] in
            var next = MonotonicClock.now()
            while running.load(ordering: .acquiring) {
                step()
                next += period
                _ = MonotonicClock.sleep(until: next)
                if MonotonicClock.now() - next > 50 * period { next = MonotonicClock.now() }
            }
        }
        t.name = "sim port"
        t.start()
    }

    public func stop() { running.store(false, ordering: .releasing) }

    /// One cycle at the clock's present time: apply queued intents, check the deadman, move, draw due frames.
    public func step() {
        let now = clock.now()
        state.withLock { s in
            let dt = min(0.05, max(0, Double(now - s.lastStep) * 1e-9))
            s.lastStep = now
            s.now = now
            s.cycle += 1
            let queued = s.queue
            s.queue.removeAll(keepingCapacity: true)
            for (intent, who, seq) in queued { apply(intent, who, &s); s.appliedIntent = seq }
            if s.deadmanHeld, now - s.lastDeadman > runtimeDescription.deadmanTimeout {
                s.deadmanHeld = false
            }
            if !s.deadmanHeld, s.mode == .jog || s.mode == .tipServo { enterHold(&s, .deadmanReleased) }
            if s.deadmanHeld, s.mode == .hold, s.target != nil, s.stopCategory == nil { setMode(&s, .tipServo, .none, nil) }
            move(&s, dt: dt, now: now)
            for p in 0..<2 where now >= s.nextFrameAt[p] {
                s.frameIndex[p] += 1
                s.frames[p] = render(plane: p, s: &s, now: now)
                let interval = Nanoseconds.fromSeconds(1 / runtimeDescription.planes[p].framesPerSecond)
                s.nextFrameAt[p] = max(s.nextFrameAt[p] + interval, now)
            }
        }
    }

    // MARK: Rules

    private func check(_ intent: OperatorIntent, _ who: OperatorIdentity, _ s: State) -> IntentRejection? {
        let d = runtimeDescription
        switch intent {
        case .stop, .emergencyStop: return nil
        case .deadman(let held): if !held { return nil }
        default: break
        }
        if who.role == .observer { return .notPermitted(role: who.role) }
        if case .acknowledgeFaults = intent { return nil }
        if case .deadman = intent { return nil }
        if s.stopCategory != nil { return .stopLatched }
        switch intent {
        case .jointJog(let v):
            guard v.count == d.axisNames.count else { return .outOfRange("jointJog.count") }
            for i in 0..<v.count where !(v[i].isFinite && abs(v[i]) <= 1) { return .outOfRange("jointJog[\(i)]") }
        case .tipJog(let hand, _):
            guard hand.x.isFinite, hand.y.isFinite, hand.z.isFinite, (hand * hand).sum() <= 50 * 50 else { return .outOfRange("tipJog.hand") }
        case .target(let p):
            guard p.x.isFinite, p.y.isFinite, p.z.isFinite else { return .outOfRange("target") }
            guard nearestRoadmap(to: p).distance < 5 else { return .unknownTarget("point off the roadmap") }
        case .targetPixel(let plane, let px):
            guard Int(plane) < d.planes.count, px.x.isFinite, px.y.isFinite else { return .outOfRange("targetPixel") }
            if lift(plane: Int(plane), pixel: px) == nil { return .unknownTarget("no vessel near that pixel") }
        case .namedTarget(let n):
            guard d.targets.contains(where: { $0.name == n }) else { return .unknownTarget(n) }
        case .mode(let m):
            // Whether the deadman is held is the cycle's to judge: a heartbeat queued just
            // before this intent is applied before it.
            if m == .tipServo { return .modeRefused(.notFrom(s.mode, to: m)) }
        default: break
        }
        return nil
    }

    private func apply(_ intent: OperatorIntent, _ who: OperatorIdentity, _ s: inout State) {
        switch intent {
        case .deadman(let held):
            s.deadmanHeld = held && s.stopCategory == nil
            if held { s.lastDeadman = s.now }
        case .mode(let m):
            guard s.stopCategory == nil else { return }
            if m == .jog {
                guard s.deadmanHeld else { event(&s, who, .intentRefused(intent, .modeRefused(.deadmanNotHeld))); return }
                s.target = nil; setMode(&s, .jog, .none, who)
            }
            if m == .hold { s.target = nil; enterHold(&s, .requested) }
            if m == .idle { s.target = nil; setMode(&s, .idle, .requested, who) }
        case .jointJog(let v):
            s.jog = v; s.jogAt = s.now
        case .tipJog(let hand, let clutch):
            if !clutch { s.strokeStart = nil; if s.mode == .tipServo { s.target = nil; enterHold(&s, .requested) }; return }
            let start = s.strokeStart ?? s.catheter.trail.last?.point ?? Self.entry
            s.strokeStart = start
            s.target = start + hand
            s.route = [start + hand]
            if s.deadmanHeld { setMode(&s, .tipServo, .none, who) }
        case .target(let p):
            navigate(to: nearestRoadmap(to: p).point, &s)
        case .targetPixel(let plane, let px):
            if let p = lift(plane: Int(plane), pixel: px) { navigate(to: p, &s) }
        case .namedTarget(let n):
            if let p = runtimeDescription.targets.first(where: { $0.name == n })?.position { navigate(to: p, &s) }
        case .stop:
            if s.stopCategory == nil {
                s.stopCategory = 1
                s.faults.append("category-1 stop by \(who.name) (\(who.source))")
                event(&s, who, .fault("stop requested", stopCategory: 1))
            }
            s.target = nil; s.deadmanHeld = false
            enterHold(&s, .stop)
        case .emergencyStop:
            // Category 0: power off at once, no controlled stop.
            if s.stopCategory != 0 {
                s.stopCategory = 0
                s.faults.append("category-0 stop by \(who.name) (\(who.source))")
                event(&s, who, .fault("emergency stop", stopCategory: 0))
            }
            s.target = nil; s.deadmanHeld = false
            setMode(&s, .idle, .stop, who)
        case .acknowledgeFaults:
            if s.stopCategory != nil {
                s.stopCategory = nil; s.faults = []
                event(&s, who, .faultsAcknowledged)
                setMode(&s, .hold, .none, who)
            }
        case .jointMove:
            // The simulated console robot has no joint profiles: the intent is for automation.
            break
        }
    }

    private func setMode(_ s: inout State, _ m: ControlMode, _ reason: HoldReason, _ who: OperatorIdentity?) {
        guard s.mode != m else { return }
        event(&s, who, .modeChanged(from: s.mode, to: m, reason: reason))
        s.mode = m; s.holdReason = reason
    }

    private func enterHold(_ s: inout State, _ reason: HoldReason) {
        setMode(&s, .hold, reason, nil)
        s.holdReason = reason
    }

    private func event(_ s: inout State, _ who: OperatorIdentity?, _ kind: RuntimeEvent.Kind) {
        s.events.append(RuntimeEvent(sequence: s.nextEvent, time: s.now, who: who, kind: kind))
        s.nextEvent += 1
        if s.events.count > Self.eventCapacity { s.events.removeFirst(s.events.count - Self.eventCapacity) }
    }

    // MARK: Kinematics

    private func heading(_ j: JointVector) -> Vec3 {
        let theta = Self.bendPerTendon * (j[2] - j[3])
        let lateral = Vec3(cos(j[1]), 0, sin(j[1]))
        return Self.baseHeading * cos(theta) + lateral * sin(theta)
    }

    private func move(_ s: inout State, dt: Double, now: Nanoseconds) {
        let d = runtimeDescription
        var v = JointVector(count: 4)
        var guided: Vec3?
        switch s.mode {
        case .jog where s.deadmanHeld && now - s.jogAt < jogLifetime:
            for i in 0..<4 { v[i] = s.jog[i] * d.velocityMax[i] }
        case .tipServo where s.deadmanHeld:
            guard let target = s.target, let tip = s.catheter.trail.last?.point else { break }
            let left = target - tip
            let dist = (left * left).sum().squareRoot()
            if dist < Self.arrived {
                s.target = nil
                enterHold(&s, .none)
                break
            }
            // The tip is guided along the route (the vessel holds the catheter to it): it moves
            // toward a point a few mm ahead on the route; roll and tendons follow the direction.
            let to = Self.carrot(on: s.route.isEmpty ? [target] : s.route, from: tip, ahead: 3) - tip
            let want = to / max(1e-9, (to * to).sum().squareRoot())
            let side = Vec3(want.x, 0, want.z)
            let sideLength = (side * side).sum().squareRoot()
            let angle = atan2(sideLength, want.y)
            let wantRoll = sideLength > 0.05 ? atan2(want.z, want.x) : s.catheter.joints[1]
            let wantTendon = min(5, angle / Self.bendPerTendon / 2)
            v[1] = Self.clamp(Self.wrap(wantRoll - s.catheter.joints[1]) * 3, d.velocityMax[1])
            v[2] = Self.clamp((wantTendon - s.catheter.joints[2]) * 3, d.velocityMax[2])
            v[3] = Self.clamp((-wantTendon - s.catheter.joints[3]) * 3, d.velocityMax[3])
            v[0] = min(Self.servoSpeed, dist * 4)
            guided = want
        default: break
        }
        var j = s.catheter.joints
        for i in 0..<4 {
            let next = min(d.positionMax[i], max(d.positionMin[i], j[i] + v[i] * dt))
            v[i] = dt > 0 ? (next - j[i]) / dt : 0
            j[i] = next
        }
        let dIns = j[0] - s.catheter.joints[0]
        if dIns > 0, let last = s.catheter.trail.last {
            s.catheter.trail.append((j[0], last.point + (guided ?? heading(j)) * dIns))
            // One point a ~0.5 mm is enough to draw and to retrace: the one before the newest
            // goes when it is that close to its own predecessor.
            let n = s.catheter.trail.count
            if n > 2, s.catheter.trail[n - 2].insertion - s.catheter.trail[n - 3].insertion < 0.5 {
                s.catheter.trail.remove(at: n - 2)
            }
        } else if dIns < 0 {
            while s.catheter.trail.count > 1, let last = s.catheter.trail.last, last.insertion > j[0] { s.catheter.trail.removeLast() }
            if let last = s.catheter.trail.last, last.insertion < j[0] {
                s.catheter.trail.append((j[0], last.point + heading(j) * (j[0] - last.insertion)))
            }
        }
        s.catheter.joints = j
        s.catheter.velocity = v
    }

    /// Sets a navigation target on the roadmap and the route to it: down the trunk, then along
    /// the branch the target is on, up to the target.
    private func navigate(to p: Vec3, _ s: inout State) {
        s.target = p
        var best = (line: 0, index: 0, distance: Double.infinity)
        for (l, line) in runtimeDescription.roadmap.enumerated() {
            for (i, q) in line.points.enumerated() {
                let d = ((q - p) * (q - p)).sum()
                if d < best.distance { best = (l, i, d) }
            }
        }
        let lines = runtimeDescription.roadmap
        var route = best.line == 0 ? [] : lines[0].points
        route += lines[best.line].points.prefix(best.index + 1)
        route.append(p)
        s.route = route
    }

    /// The point `ahead` mm further along `route` than the route point nearest `tip`.
    static func carrot(on route: [Vec3], from tip: Vec3, ahead: Double) -> Vec3 {
        guard route.count > 1 else { return route.first ?? tip }
        var nearest = (index: 0, t: 0.0, distance: Double.infinity)
        for k in 1..<route.count {
            let a = route[k - 1], ab = route[k] - a
            let t = min(1, max(0, ((tip - a) * ab).sum() / max(1e-9, (ab * ab).sum())))
            let q = a + ab * t
            let d = ((tip - q) * (tip - q)).sum()
            if d < nearest.distance { nearest = (k, t, d) }
        }
        var k = nearest.index
        var point = route[k - 1] + (route[k] - route[k - 1]) * nearest.t
        var remaining = ahead
        while k < route.count {
            let seg = route[k] - point
            let length = (seg * seg).sum().squareRoot()
            if length >= remaining { return point + seg * (remaining / max(1e-9, length)) }
            remaining -= length
            point = route[k]
            k += 1
        }
        return point
    }

    static func clamp(_ v: Double, _ m: Double) -> Double { min(m, max(-m, v)) }
    static func wrap(_ a: Double) -> Double { atan2(sin(a), cos(a)) }

    /// The roadmap point nearest `p`, sampled every ~1 mm along each centreline.
    func nearestRoadmap(to p: Vec3) -> (point: Vec3, distance: Double) {
        var best = (point: Self.entry, distance: Double.infinity)
        for line in runtimeDescription.roadmap {
            for k in 1..<max(1, line.points.count) {
                let a = line.points[k - 1], b = line.points[k]
                let ab = b - a
                let t = min(1, max(0, ((p - a) * ab).sum() / max(1e-9, (ab * ab).sum())))
                let q = a + ab * t
                let dd = ((p - q) * (p - q)).sum().squareRoot()
                if dd < best.distance { best = (q, dd) }
            }
        }
        return best
    }

    /// The roadmap point whose projection on `plane` is nearest `pixel`, within 12 px.
    func lift(plane: Int, pixel: SIMD2<Double>) -> Vec3? {
        var best: (Vec3, Double)?
        for line in runtimeDescription.roadmap {
            for k in 1..<max(1, line.points.count) {
                for i in 0...10 {
                    let q = line.points[k - 1] + (line.points[k] - line.points[k - 1]) * (Double(i) / 10)
                    let u = project(q, plane: plane) - pixel
                    let dd = (u * u).sum().squareRoot()
                    if dd < best?.1 ?? 12 { best = (q, dd) }
                }
            }
        }
        return best?.0
    }

    func project(_ p: Vec3, plane: Int) -> SIMD2<Double> {
        let m = runtimeDescription.planes[plane].projection
        let w = m[8] * p.x + m[9] * p.y + m[10] * p.z + m[11]
        return SIMD2((m[0] * p.x + m[1] * p.y + m[2] * p.z + m[3]) / w, (m[4] * p.x + m[5] * p.y + m[6] * p.z + m[7]) / w)
    }

    // MARK: Frames

    /// A synthetic fluoroscopy frame: bright background, vessels a little darker, the catheter dark.
    private func render(plane: Int, s: inout State, now: Nanoseconds) -> LiveFrame {
        let pd = runtimeDescription.planes[plane]
        let w = pd.width, h = pd.height
        var img = [UInt16](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                s.noise = s.noise &* 6364136223846793005 &+ 1442695040888963407
                img[y * w + x] = UInt16(40000 - 30 * (y / 4) + Int(s.noise >> 58) * 40)
            }
        }
        func stroke(_ pts: [Vec3], radius: Double, value: UInt16) {
            for k in 1..<max(1, pts.count) {
                let a = project(pts[k - 1], plane: plane), b = project(pts[k], plane: plane)
                let length = ((b - a) * (b - a)).sum().squareRoot()
                guard length.isFinite, length < 4 * Double(w + h) else { continue }
                let steps = max(1, Int(length.rounded(.up)))
                for i in 0...steps { disc(a + (b - a) * (Double(i) / Double(steps)), radius, value) }
            }
        }
        func disc(_ c: SIMD2<Double>, _ r: Double, _ value: UInt16) {
            // Only what falls inside the image: a point off-screen draws nothing.
            guard c.x.isFinite, c.y.isFinite, c.x > -r, c.y > -r, c.x < Double(w) + r, c.y < Double(h) + r else { return }
            let r2 = r * r
            let y0 = max(0, Int(c.y - r)), y1 = min(h - 1, Int(c.y + r))
            let x0 = max(0, Int(c.x - r)), x1 = min(w - 1, Int(c.x + r))
            guard y0 <= y1, x0 <= x1 else { return }
            for y in y0...y1 {
                for x in x0...x1 {
                    let dx = Double(x) - c.x, dy = Double(y) - c.y
                    if dx * dx + dy * dy <= r2 { img[y * w + x] = min(img[y * w + x], value) }
                }
            }
        }
        for line in runtimeDescription.roadmap { stroke(line.points, radius: 5, value: 33000) }
        let body = s.catheter.trail.map(\.point)
        stroke([Self.entry - Vec3(0, 40, 0)] + body, radius: 1.2, value: 12000)
        let tip = body.last ?? Self.entry
        let tipPixel = project(tip, plane: plane)
        disc(tipPixel, 2.5, 4000)
        let inside = tipPixel.x >= 0 && tipPixel.y >= 0 && tipPixel.x < Double(w) && tipPixel.y < Double(h)
        let measurement = inside ? TipMeasurement(acquiredAt: now, plane: UInt8(plane), pixel: tipPixel,
                                                  pixelCovariance: SymMat2(xx: 0.5, yy: 0.5), position: tip, confidence: 0.95) : nil
        return LiveFrame(plane: UInt8(plane), index: s.frameIndex[plane], acquiredAt: now, width: w, height: h, pixels: img,
                         pixelSpacing: pd.pixelSpacing, projection: pd.projection, measurement: measurement)
    }
}
