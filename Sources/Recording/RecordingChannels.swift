import Control
import Core
import Foundation
import Runtime

/// The schemas and topics a Lumen recording uses (docs/recording.md describes each). Foxglove's own
/// schemas where one fits, so Foxglove shows images, the tip and the log without set-up; Lumen's for
/// the rest. Every message is JSON; every schema is a JSON Schema.
public enum RecordingChannels {
    public static let cycle = "/lumen/cycle"
    public static let tip = "/lumen/tip"
    public static let events = "/lumen/events"
    public static let log = "/lumen/log"
    public static let safety = "/lumen/safety"
    public static let recorder = "/lumen/recorder"
    public static let configuration = "/lumen/configuration"
    public static func image(plane: Int) -> String { "/lumen/plane\(plane)/image" }
    public static func frame(plane: Int) -> String { "/lumen/plane\(plane)/frame" }
    public static func measurement(plane: Int) -> String { "/lumen/plane\(plane)/measurement" }
    /// `n` numbers from a decoded JSON array, nil unless it holds exactly `n` numbers.
    static func doubles(_ v: Any?, _ n: Int) -> [Double]? {
        guard let a = v as? [Any], a.count == n else { return nil }
        let d = a.compactMap { ($0 as? NSNumber)?.doubleValue }
        return d.count == n ? d : nil
    }

    /// The plane of a per-plane topic (`/lumen/planeN/…`), nil for any other.
    public static func plane(ofTopic topic: String) -> Int? {
        guard topic.hasPrefix("/lumen/plane"), let slash = topic.dropFirst(12).firstIndex(of: "/") else { return nil }
        return Int(topic[topic.index(topic.startIndex, offsetBy: 12)..<slash])
    }

    /// The metadata record holding the configuration hashes.
    public static let configurationMetadata = "lumen.configuration"
    /// The metadata record the recorder writes when it closes the file: what it could not record.
    public static let reportMetadata = "lumen.recorder.report"

    static let schemas: [(name: String, text: String)] = [
        ("lumen.CycleRecord", #"""
        {"title":"lumen.CycleRecord","type":"object","properties":{"cycle":{"type":"integer"},"time_ns":{"type":"integer"},
        "lateness_ns":{"type":"integer"},"compute_ns":{"type":"integer"},"mode":{"type":"string"},"applied_intent":{"type":"integer"},
        "measurements_arrived":{"type":"integer"},"arrived_acquired_ns":{"type":"integer"},
        "joints":{"type":"object","properties":{"position":{"type":"array"},"velocity":{"type":"array"},"current":{"type":"array"},
        "insertion_force":{"type":"number"},"status":{"type":"integer"},"sampled_at_ns":{"type":"integer"}}},
        "command":{"type":"object","properties":{"mode":{"type":"integer"},"enable":{"type":"boolean"},"position":{"type":"array"},"velocity":{"type":"array"}}},
        "estimate":{"type":"object","properties":{"position":{"type":"array"},"covariance":{"type":"array"},"health":{"type":"string"},
        "time_ns":{"type":"integer"},"last_image_ns":{"type":"integer"}}}}}
        """#),
        ("foxglove.PoseInFrame", #"""
        {"title":"foxglove.PoseInFrame","type":"object","properties":{"timestamp":{"type":"object","properties":{"sec":{"type":"integer"},"nsec":{"type":"integer"}}},
        "frame_id":{"type":"string"},"pose":{"type":"object","properties":{"position":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"},"z":{"type":"number"}}},
        "orientation":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"},"z":{"type":"number"},"w":{"type":"number"}}}}}}}
        """#),
        ("foxglove.CompressedImage", #"""
        {"title":"foxglove.CompressedImage","type":"object","properties":{"timestamp":{"type":"object","properties":{"sec":{"type":"integer"},"nsec":{"type":"integer"}}},
        "frame_id":{"type":"string"},"data":{"type":"string","contentEncoding":"base64"},"format":{"type":"string"}}}
        """#),
        ("lumen.FrameInfo", #"""
        {"title":"lumen.FrameInfo","type":"object","properties":{"plane":{"type":"integer"},"index":{"type":"integer"},"acquired_ns":{"type":"integer"},
        "width":{"type":"integer"},"height":{"type":"integer"},"pixel_spacing_mm":{"type":"number"},"projection":{"type":"array"},"format":{"type":"string"},
        "encoded_bytes":{"type":"integer"},"prior":{"type":"object","properties":{"position":{"type":"array"},"covariance":{"type":"array"},
        "health":{"type":"integer"},"time_ns":{"type":"integer"},"last_image_ns":{"type":"integer"}}},"motion_mm":{"type":"array"},
        "frame_pitch_mm":{"type":["number","null"]},"exposure_planes":{"type":"integer"}}}
        """#),
        ("lumen.TipMeasurement", #"""
        {"title":"lumen.TipMeasurement","type":"object","properties":{"plane":{"type":"integer"},"frame":{"type":"integer"},"acquired_ns":{"type":"integer"},
        "found":{"type":"boolean"},"pixel":{"type":["array","null"]},"pixel_covariance":{"type":"array"},"position":{"type":["array","null"]},
        "position_covariance":{"type":"array"},"confidence":{"type":"number"},"measurement_plane":{"type":["integer","null"]}}}
        """#),
        ("lumen.Event", #"""
        {"title":"lumen.Event","type":"object","properties":{"sequence":{"type":"integer"},"time_ns":{"type":"integer"},"kind":{"type":"string"},
        "detail":{"type":"string"},"who":{"type":["object","null"],"properties":{"name":{"type":"string"},"role":{"type":"string"},"source":{"type":"string"}}}}}
        """#),
        ("foxglove.Log", #"""
        {"title":"foxglove.Log","type":"object","properties":{"timestamp":{"type":"object","properties":{"sec":{"type":"integer"},"nsec":{"type":"integer"}}},
        "level":{"type":"integer"},"message":{"type":"string"},"name":{"type":"string"},"file":{"type":"string"},"line":{"type":"integer"}}}
        """#),
        ("lumen.SafetyStatus", #"""
        {"title":"lumen.SafetyStatus","type":"object","properties":{"time_ns":{"type":"integer"},"mode":{"type":"string"},"monitor_alive":{"type":"boolean"},
        "power_permitted":{"type":"boolean"},"stop_category":{"type":["integer","null"]},"heartbeat_age_ns":{"type":"integer"},"deadman_held":{"type":"boolean"},
        "latched_faults":{"type":"array"},"link_kind":{"type":"string"},"link_up":{"type":"boolean"},"link_errors":{"type":"object"}}}
        """#),
        ("lumen.RecorderStatus", #"""
        {"title":"lumen.RecorderStatus","type":"object","properties":{"time_ns":{"type":"integer"},"cycle_records":{"type":"integer"},
        "cycle_records_lost":{"type":"integer"},"frames":{"type":"integer"},"frames_received":{"type":"integer"},"frames_lost":{"type":"integer"},
        "frames_lost_at_start":{"type":"integer"},"frames_skipped":{"type":"integer"},"frames_encoder_busy":{"type":"integer"},"frames_not_encoded":{"type":"integer"},
        "events_lost":{"type":"integer"},"bytes":{"type":"integer"},"chunks":{"type":"integer"}}}
        """#),
        ("lumen.Configuration", #"""
        {"title":"lumen.Configuration","type":"object","properties":{"name":{"type":"string"},"sha256":{"type":"string"},"text":{"type":"string"}}}
        """#),
    ]

    static func mode(_ m: ControlMode) -> String {
        switch m {
        case .idle: "idle"
        case .hold: "hold"
        case .jog: "jog"
        case .tipServo: "tip_servo"
        }
    }

    static func health(_ h: EstimateHealth) -> String {
        switch h {
        case .imageFresh: "image_fresh"
        case .coasting: "coasting"
        case .lost: "lost"
        }
    }

    static func encodeCycle(_ r: borrowing CycleRecord, into j: inout JSONOut) {
        let joints = r.joints, command = r.command, e = r.estimate
        let (cycle, time, lateness, compute, m, applied) = (r.cycle, r.time, r.lateness, r.compute, r.mode, r.appliedIntent)
        let (arrived, arrivedAt) = (r.measurementsArrived, r.arrivedAcquiredAt)
        j.object { j in
            j.field("cycle", cycle); j.field("time_ns", time); j.field("lateness_ns", lateness); j.field("compute_ns", compute)
            j.field("mode", mode(m)); j.field("applied_intent", applied)
            j.field("measurements_arrived", Int(arrived)); j.field("arrived_acquired_ns", arrivedAt)
            j.object("joints") { j in
                j.field("position", joints.position.array); j.field("velocity", joints.velocity.array); j.field("current", joints.current.array)
                j.field("insertion_force", joints.insertionForce); j.field("status", Int(joints.status.rawValue)); j.field("sampled_at_ns", joints.sampledAt)
            }
            j.object("command") { j in
                j.field("mode", Int(command.mode.rawValue)); j.field("enable", command.enable)
                j.field("position", command.position.array); j.field("velocity", command.velocity.array)
            }
            j.object("estimate") { j in
                j.field("position", [e.position.x, e.position.y, e.position.z]); j.field("covariance", e.covariance.rowMajor)
                j.field("health", health(e.health)); j.field("time_ns", e.time); j.field("last_image_ns", e.lastImageAt)
            }
        }
    }

    /// A frame's image as `foxglove.CompressedImage`, its bytes in base64.
    static func encodeImage(_ f: LiveFrame, _ encoded: [UInt8], format: FrameFormat) -> [UInt8] {
        var j = JSONOut(capacity: encoded.count * 4 / 3 + 256)
        j.object { j in
            j.time("timestamp", f.acquiredAt); j.field("frame_id", "plane\(f.plane)"); j.field("data", base64: encoded)
            j.field("format", format.rawValue)
        }
        return j.bytes
    }

    static func encodePose(_ e: TipEstimate, time: Nanoseconds, into j: inout JSONOut) {
        j.object { j in
            j.time("timestamp", time)
            j.field("frame_id", "patient")
            j.object("pose") { j in
                j.object("position") { j in j.field("x", e.position.x); j.field("y", e.position.y); j.field("z", e.position.z) }
                j.object("orientation") { j in j.field("x", 0.0); j.field("y", 0.0); j.field("z", 0.0); j.field("w", 1.0) }
            }
        }
    }

    /// The frame record's measurer input (what `MeasurerReplay` needs besides the image): the
    /// estimate searched around, the scene's motion, the pitch handed over, the exposure's planes.
    static func encodeMeasurerInput(of f: LiveFrame, into j: inout JSONOut) {
        guard let prior = f.prior else { return }
        j.object("prior") { j in
            j.field("position", [prior.position.x, prior.position.y, prior.position.z])
            j.field("covariance", prior.covariance.rowMajor)
            j.field("health", Int(prior.health.rawValue))
            j.field("time_ns", prior.time); j.field("last_image_ns", prior.lastImageAt)
        }
        j.field("motion_mm", [f.motion.x, f.motion.y, f.motion.z])
        if let p = f.framePitch { j.field("frame_pitch_mm", p) } else { j.null("frame_pitch_mm") }
        j.field("exposure_planes", f.exposurePlanes)
    }

    static func encodeMeasurement(_ m: TipMeasurement?, frame: LiveFrame, into j: inout JSONOut) {
        j.object { j in
            j.field("plane", Int(frame.plane)); j.field("frame", frame.index); j.field("acquired_ns", frame.acquiredAt)
            j.field("found", m?.pixel != nil)
            if let p = m?.pixel { j.field("pixel", [p.x, p.y]) } else { j.null("pixel") }
            let c = m?.pixelCovariance ?? .zero
            j.field("pixel_covariance", [c.xx, c.xy, c.yy])
            if let p = m?.position { j.field("position", [p.x, p.y, p.z]) } else { j.null("position") }
            j.field("position_covariance", (m?.positionCovariance ?? .zero).rowMajor)
            j.field("confidence", m?.confidence ?? 0)
            // The plane the estimator was told (a biplane point is the same measurement on both frames).
            if let m { j.field("measurement_plane", Int(m.plane)) } else { j.null("measurement_plane") }
        }
    }

    static func describe(_ kind: RuntimeEvent.Kind) -> (kind: String, detail: String, level: Int) {
        switch kind {
        case .intentAccepted(let i, let seq): ("intent_accepted", "\(i) (sequence \(seq))", 2)
        case .intentRefused(let i, let why): ("intent_refused", "\(i): \(why)", 3)
        case .modeChanged(let a, let b, let r): ("mode_changed", "\(a) → \(b) (\(r))", 2)
        case .fault(let text, let cat): ("fault", "\(text) (stop category \(cat))", 4)
        case .faultsAcknowledged: ("faults_acknowledged", "", 2)
        case .monitor(let alive): ("monitor", alive ? "alive" : "lost", alive ? 2 : 4)
        case .servoGaveUp(let why): ("servo_gave_up", why, 3)
        case .ended(let why): ("ended", why, 2)
        }
    }

    static func encodeEvent(_ e: RuntimeEvent, into j: inout JSONOut) {
        let d = describe(e.kind)
        j.object { j in
            j.field("sequence", e.sequence); j.field("time_ns", e.time); j.field("kind", d.kind); j.field("detail", d.detail)
            if let w = e.who {
                j.object("who") { j in j.field("name", w.name); j.field("role", w.role.rawValue); j.field("source", w.source) }
            } else { j.null("who") }
        }
    }

    static func encodeLog(_ e: RuntimeEvent, into j: inout JSONOut) {
        let d = describe(e.kind)
        let who = e.who.map { " by \($0.name) (\($0.role.rawValue), \($0.source))" } ?? ""
        j.object { j in
            j.time("timestamp", e.time); j.field("level", d.level); j.field("message", "\(d.kind): \(d.detail)\(who)")
            j.field("name", "lumen.runtime"); j.field("file", ""); j.field("line", 0)
        }
    }

    static func encodeSafety(_ s: RuntimeSnapshot, into j: inout JSONOut) {
        j.object { j in
            j.field("time_ns", s.time); j.field("mode", mode(s.mode)); j.field("monitor_alive", s.safety.monitorAlive)
            j.field("power_permitted", s.safety.powerPermitted)
            if let c = s.safety.stopCategory { j.field("stop_category", c) } else { j.null("stop_category") }
            j.field("heartbeat_age_ns", s.safety.heartbeatAge); j.field("deadman_held", s.safety.deadmanHeld)
            j.field("latched_faults", strings: s.safety.latchedFaults)
            j.field("link_kind", s.link.kind); j.field("link_up", s.link.up)
            j.object("link_errors") { j in for (k, v) in s.link.errors.sorted(by: { $0.key < $1.key }) { j.field(k, v) } }
        }
    }
}

extension Mat3 {
    var rowMajor: [Double] { (0..<3).flatMap { r in (0..<3).map { c in self[r, c] } } }
}
