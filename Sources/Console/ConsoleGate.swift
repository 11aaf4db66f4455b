import Control
import Core
import Runtime
import Synchronization

/// Settings of the console's checks; loaded from the config file, validated at load.
public struct ConsoleSettings: Sendable, Equatable, Codable {
    /// A held deadman whose heartbeats stop for longer than this is released (ms, 50…1000).
    public var deadmanTimeoutMs: Double = 150
    /// Session lifetime (minutes, 0.1…1440).
    public var sessionMinutes: Double = 480
    /// Commands a connection may send per second, sustained (1…1000), and in a burst (1…1000).
    /// Stop, release and visibility are never limited.
    public var messagesPerSecond: Double = 100
    public var messageBurst: Double = 50
    /// Frames sent to a page per second per plane at most (1…60).
    public var displayRate: Double = 15
    /// JPEG quality of frames (10…100).
    public var jpegQuality: Int = 80

    public init() {}

    public func validate() throws(ConsoleServerError) {
        func check(_ v: Double, _ name: String, _ r: ClosedRange<Double>) throws(ConsoleServerError) {
            guard v.isFinite, r.contains(v) else { throw .setting(name: name, range: "\(r.lowerBound)…\(r.upperBound)") }
        }
        try check(deadmanTimeoutMs, "deadmanTimeoutMs", 50...1000)
        try check(sessionMinutes, "sessionMinutes", 0.1...1440)
        try check(messagesPerSecond, "messagesPerSecond", 1...1000)
        try check(messageBurst, "messageBurst", 1...1000)
        try check(displayRate, "displayRate", 1...60)
        guard (10...100).contains(jpegQuality) else { throw .setting(name: "jpegQuality", range: "10…100") }
    }

    public var deadmanTimeout: Nanoseconds { Nanoseconds.fromSeconds(deadmanTimeoutMs / 1000) }
}

/// One connected page.
public struct ConsoleClientID: Hashable, Sendable, CustomStringConvertible {
    public let raw: UInt64
    public var description: String { "client \(raw)" }
}

/// What the page is told about a command: done (with an optional note) or refused (the reason).
public enum GateReply: Sendable, Equatable {
    case ok(String?)
    case refused(String)

    public var isRefused: Bool { if case .refused = self { true } else { false } }
}

/// What one connection sees of the console's own state (the runtime's comes from the snapshot).
public struct ConsoleClientView: Sendable, Equatable {
    public var user: String
    public var role: OperatorRole
    public var holdsLease: Bool
    public var leaseHolder: String?
    public var deadmanHeld: Bool
    public var scale: Double
}

/// Every console command passes here before it can reach the runtime: the control lease, the
/// role, the rate limit and the ranges that depend on the robot are checked, and the network
/// deadman is kept. Nothing else in the console calls `OperatorPort.submit`.
///
/// The lease: at most one connection holds it; it is taken only when free, handed back by its
/// holder (or by the holder's page closing), or taken over by a supervisor's logged override.
/// The deadman: while held, the page sends a heartbeat every ~50 ms; a gap longer than the
/// timeout, a release, a hidden page or a closed connection releases it, and the runtime holds.
public final class ConsoleGate: Sendable {
    struct Client {
        var identity: OperatorIdentity
        var tokens: Double
        var refilledAt: Nanoseconds
        var scale = 1.0
    }
    struct Lease {
        var holder: ConsoleClientID
        var deadmanHeld = false
        var lastHeartbeat: Nanoseconds = 0
    }
    struct State {
        var clients: [ConsoleClientID: Client] = [:]
        var lease: Lease?
        var nextID: UInt64 = 1
    }

    public let port: any OperatorPort
    public let settings: ConsoleSettings
    public let audit: AuditLog
    public let latency: ConsoleLatency
    private let clock: any ConsoleClock
    private let state = Mutex(State())
    /// Most connections at once.
    public static let maxClients = 32

    public init(port: any OperatorPort, settings: ConsoleSettings, clock: any ConsoleClock, audit: AuditLog) {
        self.port = port; self.settings = settings; self.clock = clock; self.audit = audit
        latency = ConsoleLatency()
    }

    /// Registers a page of `user` from `source`; nil when too many pages are connected.
    public func connect(user: ConsoleUser, source: String) -> ConsoleClientID? {
        let identity = OperatorIdentity(name: user.name, role: user.role, source: "console \(source)")
        let now = clock.now()
        let id: ConsoleClientID? = state.withLock { s in
            guard s.clients.count < Self.maxClients else { return nil }
            let id = ConsoleClientID(raw: s.nextID)
            s.nextID += 1
            s.clients[id] = Client(identity: identity, tokens: settings.messageBurst, refilledAt: now)
            return id
        }
        audit.record(identity, "connect", id == nil ? "refused: too many connections" : "ok")
        return id
    }

    /// The page closed or the socket was lost: its deadman is released and its lease returned.
    public func disconnect(_ id: ConsoleClientID) {
        state.withLock { s in
            guard let client = s.clients.removeValue(forKey: id) else { return }
            if let lease = s.lease, lease.holder == id {
                if lease.deadmanHeld { releaseDeadman(client.identity, why: "connection closed") }
                s.lease = nil
                audit.record(client.identity, "lease release", "connection closed")
            }
            audit.record(client.identity, "disconnect", "ok")
        }
    }

    /// Releases a held deadman whose heartbeat is late. Call often (every ~10 ms); the timing
    /// only depends on the clock given at init.
    public func tick() {
        let now = clock.now()
        state.withLock { s in
            guard var lease = s.lease, lease.deadmanHeld, now - lease.lastHeartbeat > settings.deadmanTimeout,
                  let client = s.clients[lease.holder] else { return }
            lease.deadmanHeld = false
            s.lease = lease
            let gapMs = Double(now - lease.lastHeartbeat) / 1e6
            releaseDeadman(client.identity, why: "heartbeat gap \(Int(gapMs)) ms > \(Int(settings.deadmanTimeoutMs)) ms")
        }
    }

    public func view(_ id: ConsoleClientID) -> ConsoleClientView? {
        state.withLock { s in
            guard let c = s.clients[id] else { return nil }
            let holder = s.lease.flatMap { s.clients[$0.holder]?.identity.name }
            return ConsoleClientView(user: c.identity.name, role: c.identity.role, holdsLease: s.lease?.holder == id,
                                     leaseHolder: holder, deadmanHeld: s.lease?.holder == id && s.lease?.deadmanHeld == true,
                                     scale: c.scale)
        }
    }

    /// A stop from outside any connection (the page's HTTP fallback): any logged-in role.
    public func stop(from who: OperatorIdentity) -> GateReply {
        state.withLock { s in stop(&s, who, "stop (http)") }
    }

    private func stop(_ s: inout State, _ who: OperatorIdentity, _ action: String) -> GateReply {
        let r = port.submit(.stop, from: who)
        if let lease = s.lease, lease.deadmanHeld, let holder = s.clients[lease.holder] {
            s.lease?.deadmanHeld = false
            releaseDeadman(holder.identity, why: "stop")
        }
        audit.record(who, action, describe(r))
        return reply(r)
    }

    /// Checks and applies one command from `id`.
    public func handle(_ id: ConsoleClientID, _ command: ConsoleCommand) -> GateReply {
        let now = clock.now()
        return state.withLock { s -> GateReply in
            guard var client = s.clients[id] else { return .refused("not connected") }
            let who = client.identity

            // A stop always goes through: any role, no lease, no rate limit.
            if case .stop = command { return stop(&s, who, "stop") }
            if case .shown(let plane, let index) = command {
                latency.frameShown(plane: plane, index: index, at: now)
                return .ok(nil)
            }
            let holds = s.lease?.holder == id
            // Letting go is never limited either: it only ever makes the robot safer.
            switch command {
            case .release, .visibility(visible: false):
                if holds, s.lease?.deadmanHeld == true {
                    s.lease?.deadmanHeld = false
                    releaseDeadman(who, why: command == .release ? "released" : "page hidden")
                }
                return .ok(nil)
            case .visibility(visible: true):
                return .ok(nil)
            default: break
            }

            // Token bucket: refill by elapsed time, one token a command.
            let elapsed = Double(max(0, now - client.refilledAt)) * 1e-9
            client.tokens = min(settings.messageBurst, client.tokens + elapsed * settings.messagesPerSecond)
            client.refilledAt = now
            guard client.tokens >= 1 else {
                s.clients[id] = client
                return .refused("rate limit: at most \(Int(settings.messagesPerSecond)) commands a second")
            }
            client.tokens -= 1
            s.clients[id] = client

            switch command {
            case .takeLease:
                guard who.role != .observer else { return refuse(who, "lease take", "an observer may not take the lease") }
                if holds { return .ok("you hold the lease") }
                if let lease = s.lease, let holder = s.clients[lease.holder] {
                    return refuse(who, "lease take", "\(holder.identity.name) holds the lease: ask them to release it"
                                  + (who.role == .supervisor ? ", or override" : ", or a supervisor to override"))
                }
                s.lease = Lease(holder: id)
                audit.record(who, "lease take", "ok")
                return .ok("you hold the lease")
            case .releaseLease:
                guard holds, let lease = s.lease else { return .ok("you did not hold the lease") }
                if lease.deadmanHeld { releaseDeadman(who, why: "lease released") }
                s.lease = nil
                audit.record(who, "lease release", "ok")
                return .ok("lease released")
            case .overrideLease:
                guard who.role == .supervisor else { return refuse(who, "lease override", "only a supervisor may override") }
                let previous = s.lease.flatMap { s.clients[$0.holder]?.identity }
                if let lease = s.lease, lease.deadmanHeld, let previous { releaseDeadman(previous, why: "lease overridden") }
                s.lease = Lease(holder: id)
                audit.record(who, "lease override", "ok, taken from \(previous?.name ?? "nobody")")
                return .ok("you hold the lease (override)")
            default: break
            }

            guard who.role != .observer else { return refuse(who, name(command), "an observer may only view and stop") }
            if case .scale(let v) = command {
                // The page's own scaling of its jog demands: no lease needed to set it.
                client.scale = v
                s.clients[id] = client
                return .ok(nil)
            }
            guard holds, var lease = s.lease else { return refuse(who, name(command), "take the control lease first") }

            switch command {
            case .heartbeat:
                let pressed = !lease.deadmanHeld
                lease.deadmanHeld = true
                lease.lastHeartbeat = now
                s.lease = lease
                let r = port.submit(.deadman(held: true), from: who)
                if pressed { audit.record(who, "deadman press", describe(r)) }
                if case .failure = r { s.lease?.deadmanHeld = false }
                return reply(r)
            case .acknowledge:
                let r = port.submit(.acknowledgeFaults, from: who)
                audit.record(who, "acknowledge faults", describe(r))
                return reply(r)
            case .mode(let m):
                if m == .jog, !lease.deadmanHeld { return refuse(who, "mode jog", "hold the deadman first") }
                let r = port.submit(.mode(m == .jog ? .jog : .hold), from: who)
                audit.record(who, "mode \(m.rawValue)", describe(r))
                return reply(r)
            default: break
            }

            // Jogging needs the deadman held now; a target may be set before, and the runtime
            // drives to it only while the deadman is held.
            switch command {
            case .jointJog, .tipJog:
                guard lease.deadmanHeld else { return refuse(who, name(command), "hold the deadman to move") }
            default: break
            }
            let d = port.runtimeDescription
            let intent: OperatorIntent
            switch command {
            case .jointJog(let v):
                guard v.count == d.axisNames.count else {
                    return refuse(who, "joint jog", "\(v.count) values for \(d.axisNames.count) axes")
                }
                intent = .jointJog(JointVector(v.map { $0 * client.scale }))
            case .tipJog(let x, let y, let z, let clutch):
                intent = .tipJog(hand: Vec3(x, y, z) * client.scale, clutch: clutch)
            case .targetPixel(let plane, let x, let y):
                guard Int(plane) < d.planes.count else { return refuse(who, "target", "no plane \(plane)") }
                let p = d.planes[Int(plane)]
                guard x < Double(p.width), y < Double(p.height) else { return refuse(who, "target", "pixel outside plane \(plane)") }
                intent = .targetPixel(plane: plane, pixel: SIMD2(x, y))
            case .namedTarget(let n):
                guard d.targets.contains(where: { $0.name == n }) else { return refuse(who, "target", "unknown target \(n)") }
                intent = .namedTarget(n)
            default:
                return .refused("unexpected command")
            }
            let r = port.submit(intent, from: who)
            switch r {
            case .success(let receipt): latency.intentAccepted(receipt)
            case .failure(let e): audit.record(who, name(command), "refused by the runtime: \(e)")
            }
            if case .targetPixel = command { audit.record(who, "target", describe(r)) }
            if case .namedTarget = command { audit.record(who, "target", describe(r)) }
            return reply(r)
        }
    }

    /// Called with the lock held: tells the runtime the deadman is up and logs why.
    private func releaseDeadman(_ who: OperatorIdentity, why: String) {
        let r = port.submit(.deadman(held: false), from: who)
        audit.record(who, "deadman release", "\(why); \(describe(r))")
    }

    private func refuse(_ who: OperatorIdentity, _ action: String, _ why: String) -> GateReply {
        audit.record(who, action, "refused: \(why)")
        return .refused(why)
    }

    private func describe(_ r: Result<IntentReceipt, IntentRejection>) -> String {
        switch r {
        case .success(let receipt): "ok (intent \(receipt.sequence))"
        case .failure(let e): "refused: \(e)"
        }
    }

    private func reply(_ r: Result<IntentReceipt, IntentRejection>) -> GateReply {
        switch r {
        case .success: .ok(nil)
        case .failure(let e): .refused(e.description)
        }
    }

    private func name(_ c: ConsoleCommand) -> String {
        switch c {
        case .heartbeat: "deadman"
        case .jointJog: "joint jog"
        case .tipJog: "tip jog"
        case .targetPixel, .namedTarget: "target"
        case .mode(let m): "mode \(m.rawValue)"
        case .scale: "scale"
        case .acknowledge: "acknowledge"
        default: "command"
        }
    }
}

/// Intent → cycle and frame → screen latencies, in ns, for the page and `lumen bench console`.
public final class ConsoleLatency: Sendable {
    struct State {
        var pending: [IntentReceipt] = []
        var intentToCycle: [Nanoseconds] = []
        /// Frames sent, by plane and index: when acquired and when sent.
        var frames: [UInt64: (acquired: Nanoseconds, sent: Nanoseconds)] = [:]
        var frameToScreen: [Nanoseconds] = []
        var sentToScreen: [Nanoseconds] = []
    }
    private let state = Mutex(State())
    /// Samples kept per measure (the newest).
    public static let maxSamples = 20_000

    func intentAccepted(_ receipt: IntentReceipt) {
        state.withLock { s in
            s.pending.append(receipt)
            if s.pending.count > 256 { s.pending.removeFirst(s.pending.count - 256) }
        }
    }

    /// A published snapshot: intents up to `appliedIntent` were applied by the cycle at `time`.
    public func observe(_ snapshot: RuntimeSnapshot) {
        state.withLock { s in
            guard !s.pending.isEmpty else { return }
            var keep: [IntentReceipt] = []
            for p in s.pending {
                if p.sequence <= snapshot.appliedIntent { Self.add(&s.intentToCycle, max(0, snapshot.time - p.acceptedAt)) } else { keep.append(p) }
            }
            s.pending = keep
        }
    }

    /// A frame went out to a page at `sentAt` (monotonic ns).
    public func frameSent(plane: UInt8, index: UInt64, acquiredAt: Nanoseconds, sentAt: Nanoseconds = MonotonicClock.now()) {
        state.withLock { s in
            s.frames[UInt64(plane) << 56 | (index & 0x00FF_FFFF_FFFF_FFFF)] = (acquiredAt, sentAt)
            if s.frames.count > 512 { s.frames.removeAll(keepingCapacity: true) }
        }
    }

    /// The page reported it drew the frame: measured up to the report's arrival, so it includes
    /// the way back (an upper bound of acquisition → on screen).
    func frameShown(plane: UInt8, index: UInt64, at now: Nanoseconds) {
        state.withLock { s in
            let key = UInt64(plane) << 56 | (index & 0x00FF_FFFF_FFFF_FFFF)
            guard let frame = s.frames.removeValue(forKey: key) else { return }
            Self.add(&s.frameToScreen, max(0, now - frame.acquired))
            Self.add(&s.sentToScreen, max(0, now - frame.sent))
        }
    }

    /// Frame sent → the page's report that it drew it (ns): the console's and the browser's own
    /// share of frame → screen, without the imaging pipeline before it.
    public func sentToScreenSamples() -> [Nanoseconds] { state.withLock { $0.sentToScreen } }

    private static func add(_ a: inout [Nanoseconds], _ v: Nanoseconds) {
        a.append(v)
        if a.count > maxSamples { a.removeFirst(a.count - maxSamples) }
    }

    public func samples() -> (intentToCycle: [Nanoseconds], frameToScreen: [Nanoseconds]) {
        state.withLock { ($0.intentToCycle, $0.frameToScreen) }
    }
}
