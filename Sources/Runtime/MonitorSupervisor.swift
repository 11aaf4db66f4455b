import Control
import Core
import Foundation
import Safety
import Sim
import Synchronization

/// The safety monitor as its own process (`lumen-safety`, the executable that links Safety,
/// Core and Drivers only), started and watched by the runtime. It gets a private directory for
/// its socket, a fresh channel key (mode 0600) and a limits file written for this run's robot and
/// route; its log goes to a file in that directory. The runtime never tells it anything but
/// what the channel carries; if it exits, the drives' permits stop and their safety lines remove
/// power by themselves.
public final class MonitorSupervisor: @unchecked Sendable {
    public let channel: MonitorLaunch
    public let limitsPath: String
    let process = Process()

    /// The `lumen-safety` beside the running executable (or beside a test bundle's runner).
    public static func defaultExecutable() -> String? { MonitorLaunch.executableBesideThisOne() }

    /// Prepares the directory, key and limits; `start` launches the process.
    public init(limits: String) throws(RuntimeError) {
        Self.removeStaleDirectories()
        do { channel = try MonitorLaunch(prefix: "lumen-live") } catch { throw .monitor(error.description) }
        limitsPath = channel.directory + "/limits.yaml"
        do { try limits.write(toFile: limitsPath, atomically: true, encoding: .utf8) } catch {
            throw .monitor("cannot write the monitor's limits \(limitsPath): \(error)")
        }
    }

    /// Launches `executable` on the channel.
    public func start(executable: String) throws(RuntimeError) {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw .monitor("no monitor executable at \(executable): build it (swift build --product lumen-safety)")
        }
        _ = FileManager.default.createFile(atPath: channel.logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = channel.arguments(config: limitsPath)
        process.standardOutput = FileHandle.nullDevice
        do {
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: channel.logPath))
            try process.run()
        } catch { throw .monitor("cannot start \(executable): \(error)") }
    }

    /// Puts the monitor's main thread (its loop) on SCHED_FIFO at `priority`; a warning when not permitted.
    public func setFIFO(priority: Int32) -> String? { MonitorLaunch.setFIFO(pid: process.processIdentifier, priority: priority) }

    public var isRunning: Bool { process.isRunning }
    public var processIdentifier: Int32 { process.processIdentifier }
    public var terminationStatus: Int32? { process.isRunning ? nil : process.terminationStatus }
    public var log: String { (try? String(contentsOfFile: channel.logPath, encoding: .utf8)) ?? "" }

    /// Stopped by the scheduler (SIGSTOP, `hang`): resumed before it is asked to stop.
    let hung = Atomic<Bool>(false)

    /// Fault injection (HIL, tests): the monitor killed, as a crash would (SIGKILL: no last
    /// permit), or hung (SIGSTOP: its process and socket still there, nothing answered).
    public func injectFault(hang: Bool) {
        guard process.isRunning else { return }
        if hang { hung.store(true, ordering: .releasing) }
        kill(process.processIdentifier, hang ? SIGSTOP : SIGKILL)
    }

    /// Asks the monitor to stop (SIGTERM), waits up to `seconds`, then kills it.
    public func stop(seconds: Double = 2) {
        guard process.processIdentifier > 0 else { return }
        if hung.exchange(false, ordering: .acquiringAndReleasing), process.isRunning { kill(process.processIdentifier, SIGCONT) }
        if process.isRunning { process.terminate() }
        let end = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < end { usleep(5000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Removes the directories of earlier runs whose process is gone (a runtime killed with
    /// SIGKILL cannot remove its own): only ours, only those named for a process id that no
    /// longer exists.
    static func removeStaleDirectories() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        for name in names where name.hasPrefix("lumen-live-") {
            let parts = name.dropFirst("lumen-live-".count).split(separator: "-")
            guard parts.count == 2, let pid = Int32(parts[0]), pid > 0, pid != getpid() else { continue }
            var st = stat()
            guard lstat("/tmp/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid() else { continue }
            if kill(pid, 0) != 0, errno == ESRCH { try? FileManager.default.removeItem(atPath: "/tmp/" + name) }
        }
    }

    /// Removes the directory (key, limits, log, sockets).
    public func removeFiles() { try? FileManager.default.removeItem(atPath: channel.directory) }

    /// The monitor's limits for `robot` (its base at the sheath) in the vessel `corridor` (mm:
    /// centreline points from the sheath to the end of the target vessel, with the lumen
    /// radius at each): joint limits just outside the robot's travel, speeds 10 % above, the
    /// catheter's own geometry, and the lumen check on `along_lumen` tip evidence
    /// (docs/safety/tip-evidence.md): the catheter's length out of the sheath against the
    /// corridor's length, and the image-measured tip the heartbeat relays against the corridor.
    /// The corridor is the vessels' own centreline, not the servo's route with its corners
    /// rounded: what the monitor guards does not come from what the controller steers by.
    public static func limitsYAML(robot: RobotDescription, corridor full: [(point: Vec3, radius: Double)], heartbeatTimeoutMS: Int = 100) -> String {
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
        let points = Self.corridor(full, to: MonitorModel.maxCorridorPoints)
        lines.append("lumen:")
        lines.append("  tip_evidence: along_lumen")
        lines.append("  centerline_mm: [\(points.map { "[\(f($0.point.x)), \(f($0.point.y)), \(f($0.point.z))]" }.joined(separator: ", "))]")
        lines.append("  radius_mm: [\(points.map { f($0.radius) }.joined(separator: ", "))]")
        lines.append("no_go: []")
        lines.append("heartbeat_timeout_ms: \(heartbeatTimeoutMS)")
        lines.append("max_insertion_force_n: 5")
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
    public static func vesselCorridor(tree: VesselTreeDescription, vessel: String, depth: Double? = nil) throws(RuntimeError) -> [(point: Vec3, radius: Double)] {
        do { return try tree.routeWithRadii(toVessel: vessel, depth: depth ?? .greatestFiniteMagnitude) } catch {
            throw .monitor("no corridor for the monitor into '\(vessel)': \(error)")
        }
    }

    /// `full` in at most `n` points (the limits file's bound), each radius widened by how far
    /// the dropped points lie from the chord that replaces them, so that the corridor still
    /// holds the lumen it stands for; at most 20 mm (the limits' bound).
    static func corridor(_ full: [(point: Vec3, radius: Double)], to n: Int) -> [(point: Vec3, radius: Double)] {
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
}
