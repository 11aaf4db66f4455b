import CommandSupport
import Control
import Core
import Foundation
import Sim

/// The demo's parts, built from a robot file: the catheter model, a robot (the in-process
/// simulated robot, simulated drives over DriveLink, or real drives), the tip servo on a
/// scripted path, and the cycle runner around them. `demo`, `bench loop` and `bench cycle` all
/// run this same cycle.
struct DemoRig<Hardware: RobotHardware & ~Copyable, Clock: CycleClock> {
    let description: RobotDescription
    let model: CatheterModel
    let log: TipLog
    let runner: CycleRunner<Hardware, TipServo, Clock>

    init(description: RobotDescription, hardware: consuming Hardware, period: Nanoseconds, clock: Clock,
         path: TipPath = TipPath(), logCapacity: Int = 50_000) {
        self.description = description
        model = CatheterModel(description)
        // One sample every 10 ms.
        log = TipLog(capacity: logCapacity, decimation: max(1, Int(10_000_000 / period)))
        runner = CycleRunner(hardware: hardware, controller: TipServo(model: model, path: path, log: log), clock: clock, period: period)
    }

    /// A quarter of the insertion travel, no roll, sections straight.
    static func startPosture(_ model: CatheterModel) -> JointVector {
        var q = JointVector(count: model.jointCount)
        q[0] = model.lowerLimit[0] + 0.25 * (model.upperLimit[0] - model.lowerLimit[0])
        return model.clampToLimits(q)
    }
}

extension DemoRig where Hardware == KinematicRobot {
    /// The in-process simulated robot with ideal drives.
    init(robotPath: String, period: Nanoseconds, clock: Clock, path: TipPath = TipPath()) throws {
        let description = try DemoRigFiles.loadRobot(robotPath)
        let start = Self.startPosture(CatheterModel(description))
        self.init(description: description, hardware: KinematicRobot(axes: description.axes, start: start), period: period, clock: clock, path: path)
    }
}

extension DemoRig where Hardware == KinematicRobot, Clock == MonotonicCycleClock {
    init(robotPath: String, period: Nanoseconds, path: TipPath = TipPath()) throws {
        try self.init(robotPath: robotPath, period: period, clock: MonotonicCycleClock(), path: path)
    }
}

enum DemoRigFiles {
    static let defaultRobot = "robots/lumen-2s.yaml"

    /// Loads and validates a robot file; a bad file is a command failure naming file and field.
    static func loadRobot(_ path: String) throws -> RobotDescription {
        do {
            return try ConfigLoader.load(RobotDescription.self, from: locate(path))
        } catch {
            throw CommandFailure(error.description)
        }
    }

    /// `path` as given when it exists; otherwise, for a relative path, the same path under the
    /// package root the executable was built in (so the tool works from any directory).
    static func locate(_ path: String) -> String {
        if FileManager.default.fileExists(atPath: path) || path.hasPrefix("/") { return path }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                let candidate = dir.appendingPathComponent(path).path
                return FileManager.default.fileExists(atPath: candidate) ? candidate : path
            }
            dir.deleteLastPathComponent()
        }
        return path
    }
}
