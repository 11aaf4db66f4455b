import Control
import Core
import Foundation
import Runtime

/// What the page receives, as JSON. Field names are the page's (console.js reads them).
struct HelloMessage: Encodable {
    var type = "hello"
    var user: String
    var role: String
    var robot: String
    var axes: [String]
    var positionMin: [Double]
    var positionMax: [Double]
    var velocityMax: [Double]
    var planes: [Plane]
    /// The vessels as the roadmap shows them, and the planned route through them (nil when the
    /// runtime plans a route per target).
    var roadmap: [Line]
    var route: [[Double]]?
    var targets: [Target]
    var deadmanTimeoutMs: Double
    var heartbeatMs: Double
    /// The image age above which the monitor stops image-guided motion (nil: not checked).
    var imageMaxAgeMs: Double?
    /// "debug" or "release": a debug build's imaging is several times slower.
    var build: String

    struct Plane: Encodable { var name: String; var width: Int; var height: Int; var projection: [Double] }
    struct Line: Encodable { var name: String; var points: [[Double]] }
    struct Target: Encodable { var name: String; var position: [Double] }

    init(_ d: RuntimeDescription, user: ConsoleUser, settings: ConsoleSettings) {
        self.user = user.name; role = user.role.rawValue; robot = d.robotName; axes = d.axisNames
        positionMin = d.positionMin; positionMax = d.positionMax; velocityMax = d.velocityMax
        planes = d.planes.map { Plane(name: $0.name, width: $0.width, height: $0.height, projection: $0.projection) }
        // A runtime that knows the whole tree describes it apart; its `roadmap` is then the route.
        let vessels = d.vessels.isEmpty ? d.roadmap : d.vessels
        roadmap = vessels.map { Line(name: $0.name, points: $0.points.map { [$0.x, $0.y, $0.z] }) }
        route = d.vessels.isEmpty ? nil : d.roadmap.flatMap(\.points).map { [$0.x, $0.y, $0.z] }
        targets = d.targets.map { Target(name: $0.name, position: [$0.position.x, $0.position.y, $0.position.z]) }
        deadmanTimeoutMs = settings.deadmanTimeoutMs
        // A third of the timeout: two heartbeats may be lost or late before the deadman drops.
        heartbeatMs = (settings.deadmanTimeoutMs / 3).rounded()
        imageMaxAgeMs = d.imageMaxAge > 0 ? Double(d.imageMaxAge) / 1e6 : nil
        build = Self.build
    }

    #if DEBUG
    static let build = "debug"
    #else
    static let build = "release"
    #endif
}

struct StateMessage: Encodable {
    var type = "state"
    var time: Nanoseconds
    var cycle: UInt64
    var lifecycle: String
    var mode: String
    var holdReason: String
    var axes: [Axis]
    var force: Double
    var estimate: [Double]
    var health: String
    /// ms from the acquisition of the newest image the estimate fused to this state (nil: none yet).
    var imageAgeMs: Double?
    var target: [Double]?
    var safety: Safety
    var link: Link
    var timing: Timing
    var framesAcquired: [UInt64]
    var framesDropped: [UInt64]
    var console: Console
    var latency: Latency

    struct Axis: Encodable { var name: String; var position: Double; var velocity: Double; var current: Double; var min: Double; var max: Double }
    struct Safety: Encodable {
        var monitorAlive: Bool; var heartbeatAgeMs: Double; var powerPermitted: Bool; var stopCategory: Int?
        var faults: [String]; var deadmanHeld: Bool
    }
    struct Link: Encodable { var kind: String; var up: Bool; var errors: [String: Int] }
    struct Timing: Encodable { var latenessP99Us: Double; var computeP99Us: Double; var overruns: Int64 }
    struct Console: Encodable {
        var user: String; var role: String; var holdsLease: Bool; var leaseHolder: String?; var deadmanHeld: Bool; var scale: Double
    }
    struct Latency: Encodable { var intentP50Ms: Double?; var intentP99Ms: Double?; var frameP50Ms: Double?; var frameP99Ms: Double? }

    init(_ s: RuntimeSnapshot, _ d: RuntimeDescription, view: ConsoleClientView, latency: Latency) {
        time = s.time; cycle = s.cycle; lifecycle = s.lifecycle.description; mode = s.mode.description
        holdReason = "\(s.holdReason)"
        axes = d.axisNames.indices.map { i in
            Axis(name: d.axisNames[i], position: i < s.joints.position.count ? s.joints.position[i] : .nan,
                 velocity: i < s.joints.velocity.count ? s.joints.velocity[i] : .nan,
                 current: i < s.joints.current.count ? s.joints.current[i] : .nan,
                 min: i < d.positionMin.count ? d.positionMin[i] : .nan, max: i < d.positionMax.count ? d.positionMax[i] : .nan)
        }.map { a in
            // JSON has no NaN: a missing reading is sent as 0 with the axis's name still shown.
            Axis(name: a.name, position: a.position.isFinite ? a.position : 0, velocity: a.velocity.isFinite ? a.velocity : 0,
                 current: a.current.isFinite ? a.current : 0, min: a.min.isFinite ? a.min : 0, max: a.max.isFinite ? a.max : 0)
        }
        force = s.joints.insertionForce.isFinite ? s.joints.insertionForce : 0
        let p = s.estimate.position
        estimate = p.x.isFinite && p.y.isFinite && p.z.isFinite ? [p.x, p.y, p.z] : [0, 0, 0]
        health = "\(s.estimate.health)"
        imageAgeMs = s.estimate.lastImageAt > 0 && s.time >= s.estimate.lastImageAt ? Double(s.time - s.estimate.lastImageAt) / 1e6 : nil
        target = s.target.flatMap { t in t.x.isFinite && t.y.isFinite && t.z.isFinite ? [t.x, t.y, t.z] : nil }
        safety = Safety(monitorAlive: s.safety.monitorAlive, heartbeatAgeMs: Double(s.safety.heartbeatAge) / 1e6,
                        powerPermitted: s.safety.powerPermitted, stopCategory: s.safety.stopCategory,
                        faults: s.safety.latchedFaults, deadmanHeld: s.safety.deadmanHeld)
        link = Link(kind: s.link.kind, up: s.link.up, errors: s.link.errors)
        timing = Timing(latenessP99Us: Double(s.latenessP99) / 1e3, computeP99Us: Double(s.computeP99) / 1e3, overruns: s.overruns)
        framesAcquired = s.framesAcquired; framesDropped = s.framesDropped
        console = Console(user: view.user, role: view.role.rawValue, holdsLease: view.holdsLease, leaseHolder: view.leaseHolder,
                          deadmanHeld: view.deadmanHeld, scale: view.scale)
        self.latency = latency
    }
}

struct ReplyMessage: Encodable {
    var type = "reply"
    var command: String
    var ok: Bool
    var text: String?
}

/// p50 and p99 of samples (ns) in ms; nil without samples.
func percentilesMs(_ samples: [Nanoseconds]) -> (p50: Double?, p99: Double?) {
    guard !samples.isEmpty else { return (nil, nil) }
    let ms = samples.map { Double($0) / 1e6 }
    return (round3(percentile(ms, 50)), round3(percentile(ms, 99)))
}
