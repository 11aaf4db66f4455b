import Control
import Core
import Foundation
import Sim

/// The demo's parts, built from a robot file: the catheter model, the simulated robot with
/// ideal drives, the tip servo on a scripted path, and the cycle runner around them.
/// `demo`, `bench loop` and `bench cycle` all run this same cycle.
struct DemoRig<Clock: CycleClock> {
    let description: RobotDescription
    let model: CatheterModel
    let log: TipLog
    let runner: CycleRunner<KinematicRobot, TipServo, Clock>

    init(robotPath: String, period: Nanoseconds, clock: Clock, path: TipPath = TipPath(), logCapacity: Int = 50_000) throws {
        description = try DemoRigFiles.loadRobot(robotPath)
        model = CatheterModel(description)
        let robot = KinematicRobot(axes: description.axes, start: Self.startPosture(model))
        // One sample every 10 ms.
        log = TipLog(capacity: logCapacity, decimation: max(1, Int(10_000_000 / period)))
        runner = CycleRunner(hardware: robot, controller: TipServo(model: model, path: path, log: log.writer), clock: clock, period: period)
    }

    /// A quarter of the insertion travel, no roll, sections straight.
    static func startPosture(_ model: CatheterModel) -> JointVector {
        var q = JointVector(count: model.jointCount)
        q[0] = model.lowerLimit[0] + 0.25 * (model.upperLimit[0] - model.lowerLimit[0])
        return model.clampToLimits(q)
    }
}

extension DemoRig where Clock == MonotonicCycleClock {
    static var defaultRobot: String { DemoRigFiles.defaultRobot }

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
