import Core
import Safety
import Testing
@testable import Runtime

/// What the operator is shown of the monitor's latched faults, given its status: a fault stays
/// until the monitor says its check cleared (not until an acknowledge was merely sent), and a
/// latched check whose log line has not arrived yet is shown by name.
@Suite struct MonitorStatusViewTests {
    static func line(_ check: SafetyCheck, index: Int8 = -1, category: StopCategory = .one) -> String {
        "lumen-safety: fault " + FaultRecord(time: 2_500_000_000, check: check, index: index, value: 6, limit: 5, category: category).describe()
    }

    @Test func theCheckOfALineIsReadWithOrWithoutAJoint() {
        #expect(LiveRuntime.check(of: Self.line(.force)) == .force)
        #expect(LiveRuntime.check(of: Self.line(.position, index: 0)) == .position)
        #expect(LiveRuntime.check(of: Self.line(.noGo, index: 1)) == .noGo)
        #expect(LiveRuntime.check(of: Self.line(.imageStale, index: 1, category: .two)) == .imageStale)
        #expect(LiveRuntime.check(of: "lumen-safety: limits ok") == nil)
        #expect(!LiveRuntime.latches(Self.line(.deadman, category: .two)))
        #expect(LiveRuntime.latches(Self.line(.position, index: 2)))
    }

    @Test func aFaultIsShownWhileTheMonitorHoldsItAndDropsWhenItClears() {
        let lines = [Self.line(.force), Self.line(.position, index: 0)]
        let both = MonitorStatus(permit: false, quickStop: false, category: .one, latched: SafetyCheck.force.bit | SafetyCheck.position.bit, active: 0)
        #expect(LiveRuntime.stillLatched(lines, status: both) == lines)
        // An acknowledge cleared the position fault; the force is still present, so still latched.
        let forceOnly = MonitorStatus(permit: false, quickStop: false, category: .one, latched: SafetyCheck.force.bit, active: SafetyCheck.force.bit)
        #expect(LiveRuntime.stillLatched(lines, status: forceOnly) == [lines[0]])
        let clear = MonitorStatus(permit: true, quickStop: false, category: nil, latched: 0, active: 0)
        #expect(LiveRuntime.stillLatched(lines, status: clear).isEmpty)
    }

    @Test func aLatchedCheckWhoseLineHasNotArrivedIsShownByNameWithTheMonitorsCategory() {
        let status = MonitorStatus(permit: false, quickStop: false, category: .zero, latched: SafetyCheck.velocity.bit | SafetyCheck.deadman.bit, active: 0)
        let shown = LiveRuntime.stillLatched([], status: status)
        #expect(shown.count == 1, "the deadman's stop is not a latched fault: \(shown)")
        let only = shown.first ?? ""
        #expect(LiveRuntime.check(of: only) == .velocity)
        #expect(only.contains("category 0"))
        // Once the log's own line is there, the placeholder is not added beside it.
        #expect(LiveRuntime.stillLatched([Self.line(.velocity, index: 1, category: .zero)], status: status).count == 1)
    }
}
