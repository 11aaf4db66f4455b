import ArgumentParser
import CommandSupport
import Control
import Core
import Foundation

struct Robot: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Robot files.", subcommands: [RobotCheck.self])
}

/// `lumen robot check FILE`: validates a robot file and shows what the stack makes of it.
struct RobotCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a robot file and print its joints, limits and the tip pose at the home posture."
    )

    @Argument(help: "Robot file (YAML or JSON).") var file: String
    @Flag(help: "Print JSON on stdout.") var json = false

    struct Report: Encodable {
        var name: String
        var file: String
        var joints: [AxisSpec]
        var home_posture: [Double]
        var home_tip_mm: [Double]
        var reach_straight_mm: Double
    }

    func run() throws {
        let description = try DemoRigFiles.loadRobot(file)
        let model = CatheterModel(description)
        let home = model.clampToLimits(JointVector(count: model.jointCount))
        let tip = model.calcTipPose(home).translation
        let reach = description.sections.map(\.lengthMM).reduce(0, +) + description.tipLengthMM
        let report = Report(name: description.name, file: file, joints: description.axes, home_posture: home.array,
                            home_tip_mm: [tip.x, tip.y, tip.z], reach_straight_mm: reach)
        if json {
            try Output.json(report)
        } else {
            print("\(file): robot '\(description.name)' is valid — \(model.jointCount) joints, \(description.sections.count) bending section(s)")
            for a in description.axes {
                let u = a.unit.rawValue
                let name = a.name.padding(toLength: 20, withPad: " ", startingAt: 0)
                print("  \(name)" + String(format: "%8.3f … %8.3f ", a.lower, a.upper) + u
                      + String(format: ", ≤ %.3f ", a.maxVelocity) + u + "/s, " + String(format: "%.0f counts/", a.countsPerUnit) + u)
            }
            print(String(format: "  home tip: (%.2f, %.2f, %.2f) mm; bending length + tip: %.1f mm", tip.x, tip.y, tip.z, reach))
        }
    }
}
