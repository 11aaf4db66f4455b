import Core
import Foundation
import Safety
import Sim
import Testing
@testable import Scenarios

/// A simulated-time run judges its image tips against the corridor the live runtime gives the
/// safety monitor, so that a campaign shows which runs the monitor would have stopped.
@Suite struct NavigationMonitorCorridorTests {
    @Test func theCorridorIsTheOneTheLiveMonitorIsGivenAndJudgesAtTheWall() throws {
        let robot = try loadRobot()
        let corridor = [(point: Vec3(0, 0, 0), radius: 4.0), (point: Vec3(0, 0, 100), radius: 4.0)]
        let model = try NavigationMonitorLimits.model(robot: robot, corridor: corridor)
        // The measured centre is judged at the wall itself (image_tip_margin_mm 0).
        let inside = model.geometry.measuredTipOutsideLumen(Vec3(3.5, 0, 50))
        let beyond = model.geometry.measuredTipOutsideLumen(Vec3(0, 4.5, 50))
        #expect(abs(inside + 0.5) < 1e-9)
        #expect(abs(beyond - 0.5) < 1e-9)
        // The text the live runtime writes for the monitor process is the one decoded here.
        let yaml = NavigationMonitorLimits.yaml(robot: robot, corridor: corridor)
        #expect(yaml.contains("image_tip_margin_mm: 0"))
        #expect(yaml.contains("tip_evidence: along_lumen"))
    }

    @Test func tipsOutsideAreCountedWithTheirLongestRunAndNotANumberIsOutside() {
        var f = ImageTipCorridorFigures()
        for (k, o) in [-1.0, 0.3, 0.8, -0.2, 0.1, .nan, 2.0, -3.0].enumerated() { f.add(outsideMM: o, at: Double(k) * 0.1) }
        let tips = f.tips, outside = f.outside, longest = f.longest_run, worst = f.max_outside_mm, first = f.first_outside_s
        #expect(tips == 8)
        #expect(outside == 5)
        #expect(longest == 3)
        // A tip that is not a number has no distance: it is outside without a figure.
        #expect(worst == .greatestFiniteMagnitude)
        #expect(first == 0.1)
        var clean = ImageTipCorridorFigures()
        clean.add(outsideMM: 0, at: 1)
        let none = clean.outside, noFirst = clean.first_outside_s
        #expect(none == 0)
        #expect(noFirst == nil)
    }

    @Test func aRunInItsVesselKeepsItsTipsInsideAndTheSummaryNamesRunsThatLeft() throws {
        let (result, _) = try NavigationRun.run(tubeSetup(seconds: 6), robot: try loadRobot())
        let figures = try #require(result.image_tip_corridor)
        let tips = figures.tips, outside = figures.outside, frames = result.frames
        #expect(tips == frames && tips > 0)
        #expect(outside == 0, "\(figures)")
        var left = result
        left.run = 7
        left.image_tip_corridor?.add(outsideMM: 1.2, at: 3)
        let summary = NavigationSummary([result, left])
        let named = summary.monitor_lumen_runs
        #expect(named == [NavigationRunRef(phantom: "straight", run: 7, vessel: "tube", success: result.success)])
        // A summary written and read again (shards are merged from files) names the same runs,
        // and one written before the figures existed names none.
        let data = try JSONEncoder().encode(summary)
        let again = try JSONDecoder().decode(NavigationSummary.self, from: data).monitor_lumen_runs
        #expect(again == named)
        var old = result
        old.image_tip_corridor = nil
        let oldData = try JSONEncoder().encode(NavigationSummary([old]))
        let oldNamed = try JSONDecoder().decode(NavigationSummary.self, from: oldData).monitor_lumen_runs
        #expect(oldNamed.isEmpty)
    }
}
