import Control
import Core
import Foundation
import Safety
import Sim

/// The safety monitor's limits for a navigation run: what the live runtime hands the monitor
/// process, and what a simulated-time run judges its image tips against, so that both guard
/// the same corridor.
public enum NavigationMonitorLimits {
    /// N — the monitor's insertion-force limit (a category-1 stop above it): the path servo
    /// keeps its push at the sheath under it (`PathServo.pushLimit`), and a simulated-time run
    /// that exceeds it ends as the live monitor would end it.
    public static let maxInsertionForce = 5.0

    /// The monitor's limits for `robot` (its base at the sheath) in the vessel `corridor` (mm:
    /// centreline points from the sheath to the end of the target vessel, with the lumen
    /// radius at each): joint limits just outside the robot's travel, speeds 10 % above, the
    /// catheter's own geometry, and the lumen check on `along_lumen` tip evidence
    /// (docs/safety/tip-evidence.md): the catheter's length out of the sheath against the
    /// corridor's length, and the image-measured tip the heartbeat relays against the corridor.
    /// The corridor is the vessels' own centreline, not the servo's route with its corners
    /// rounded: what the monitor guards does not come from what the controller steers by.
    public static func yaml(robot: RobotDescription, corridor full: [(point: Vec3, radius: Double)], heartbeatTimeoutMS: Int = 100) -> String {
        func f(_ x: Double) -> String { String(format: "%.6g", x) }
        var lines = ["# Written by the live runtime for this run; see safety/lumen-2s-limits.yaml for the meaning of each value.",
                     "name: live run, \(robot.name)", "cycle_hz: 1000", "joints:"]
        for (i, a) in robot.axes.enumerated() {
            let span = a.upper - a.lower
            let kind = i == 0 ? 0 : i == 1 ? 1 : 2
            let lower = kind == 1 ? max(-6.5, a.lower - 0.01) : a.lower - max(0.05, 0.02 * span)
            let upper = kind == 1 ? min(6.5, a.upper + 0.01) : a.upper + max(0.05, 0.02 * span)
            let v = a.maxVelocity * 1.1
            let tracking = [5.0, 0.5, 1.0][kind], encoder = [1.0, 0.1, 0.2][kind]
            lines.append("  - {name: \(a.name.isEmpty ? "axis\(i)" : a.name), lower: \(f(lower)), upper: \(f(upper)), max_velocity: \(f(v)), max_current_a: 1.5, max_tracking_error: \(f(tracking)), max_encoder_mismatch: \(f(encoder)), stop_deceleration: \(f(a.maxVelocity * 4.5))}")
        }
        let base = robot.base.positionMM, rpy = robot.base.rpyRad
        lines.append("catheter:")
        lines.append("  base_position_mm: [\(base.map(f).joined(separator: ", "))]")
        lines.append("  base_rpy_rad: [\(rpy.map(f).joined(separator: ", "))]")
        lines.append("  sections:")
        for s in robot.sections.prefix(2) { lines.append("    - {length_mm: \(f(s.lengthMM)), tendon_radius_mm: \(f(s.tendonRadiusMM))}") }
        lines.append("  tip_length_mm: \(f(robot.tipLengthMM))")
        lines.append("  tip_margin_mm: 0.5")
        // The measured tip is judged at the wall: the catheter's own radius (1–1.15 mm for the
        // robots shipped) is what keeps a correct centre inside, and it exceeds the tracker's 3D
        // error (docs/safety/tip-evidence.md, "The image tip's margin").
        lines.append("  image_tip_margin_mm: 0")
        let points = corridor(full, to: MonitorModel.maxCorridorPoints)
        lines.append("lumen:")
        lines.append("  tip_evidence: along_lumen")
        lines.append("  centerline_mm: [\(points.map { "[\(f($0.point.x)), \(f($0.point.y)), \(f($0.point.z))]" }.joined(separator: ", "))]")
        lines.append("  radius_mm: [\(points.map { f($0.radius) }.joined(separator: ", "))]")
        lines.append("no_go: []")
        lines.append("heartbeat_timeout_ms: \(heartbeatTimeoutMS)")
        lines.append("max_insertion_force_n: \(f(maxInsertionForce))")
        lines.append("image_max_age_ms: 1000")
        lines += ["link:", "  max_consecutive_lost: 100", "  lost_burst: 50", "  lost_per_s: 100", "  crc_burst: 50", "  crc_per_s: 100",
                  "  wkc_burst: 50", "  wkc_per_s: 100"]
        lines += ["controlled_stop:", "  max_time_ms: 400", "  standstill_fraction: 0.02"]
        lines += ["categories:", "  heartbeat: 1", "  position: 1", "  velocity: 0", "  current: 0", "  force: 1", "  lumen: 1", "  no_go: 1",
                  "  tracking: 0", "  encoder: 0", "  image_stale: 2", "  link: 0", "  crc: 1", "  working_counter: 1", "  deadman: 2",
                  "  invalid_input: 0"]
        return lines.joined(separator: "\n") + "\n"
    }

    /// The lumen the monitor guards for a run into `vessel`: the vessels' centreline from the
    /// sheath (the root's far end) to the end of the target vessel (the catheter may go past
    /// the goal as far as the vessel goes; `depth` mm into it when given), with their radii.
    public static func vesselCorridor(tree: VesselTreeDescription, vessel: String, depth: Double? = nil) throws(VesselRouteError) -> [(point: Vec3, radius: Double)] {
        try tree.routeWithRadii(toVessel: vessel, depth: depth ?? .greatestFiniteMagnitude)
    }

    /// `full` in at most `n` points (the limits file's bound), each radius widened by how far
    /// the dropped points lie from the chord that replaces them, so that the corridor still
    /// holds the lumen it stands for; at most 20 mm (the limits' bound).
    public static func corridor(_ full: [(point: Vec3, radius: Double)], to n: Int) -> [(point: Vec3, radius: Double)] {
        var p: [(point: Vec3, radius: Double)] = []
        for q in full where p.last.map({ ($0.point - q.point).length > 1e-6 }) ?? true { p.append(q) }
        guard p.count > n, n >= 2 else { return p.map { ($0.point, min(20, $0.radius)) } }
        let keep = (0..<n).map { Int((Double($0) * Double(p.count - 1) / Double(n - 1)).rounded()) }
        var out = keep.map { p[$0] }
        for k in 0..<(n - 1) {
            let a = p[keep[k]].point, b = p[keep[k + 1]].point
            var deviation = 0.0
            for j in keep[k]...keep[k + 1] {
                let ab = b - a, d = ab.dot(ab)
                let t = d > 0 ? min(1, max(0, (p[j].point - a).dot(ab) / d)) : 0
                deviation = max(deviation, (p[j].point - (a + ab * t)).length + p[j].radius - min(p[keep[k]].radius, p[keep[k + 1]].radius))
            }
            out[k].radius = max(out[k].radius, min(p[keep[k]].radius, p[keep[k + 1]].radius) + deviation)
            out[k + 1].radius = max(out[k + 1].radius, min(p[keep[k]].radius, p[keep[k + 1]].radius) + deviation)
        }
        return out.map { ($0.point, min(20, $0.radius)) }
    }

    /// The limits `yaml` writes, decoded and validated as the monitor process reads them.
    public static func model(robot: RobotDescription, corridor full: [(point: Vec3, radius: Double)]) throws(ConfigError) -> MonitorModel {
        MonitorModel(try ConfigLoader.decode(SafetyLimits.self, yaml: yaml(robot: robot, corridor: full), file: "navigation monitor limits"))
    }
}
