import Control
import Core
import Foundation
@testable import Safety

enum Fixture {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var limitsPath: String { root.appendingPathComponent("safety/lumen-2s-limits.yaml").path }
    static var limitsText: String { try! String(contentsOfFile: limitsPath, encoding: .utf8) }

    /// The channel key the tests' monitors, drives and senders share.
    static let keyBytes: [UInt8] = (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    static var key: ChannelKey { ChannelKey(secret: keyBytes) }

    /// Writes the test key to `dir`/channel.key with mode 0600; returns its path.
    static func writeKey(in dir: String) throws -> String {
        let path = dir + "/channel.key"
        _ = FileManager.default.createFile(atPath: path, contents: Data(keyBytes), attributes: [.posixPermissions: 0o600])
        return path
    }

    static func limits() throws -> SafetyLimits { try SafetyLimits.load(from: limitsPath).limits }
    static func model() throws -> MonitorModel { MonitorModel(try limits()) }

    static func robot() throws -> RobotDescription {
        try ConfigLoader.load(RobotDescription.self, from: root.appendingPathComponent("robots/lumen-2s.yaml").path)
    }

    /// Joints of the demo's start posture: 100 mm in, straight.
    static var start: JointVector {
        var q = JointVector(count: 6)
        q[0] = 100
        return q
    }

    /// Inputs of a healthy robot standing at the start posture at time `now`, following its
    /// command, with every reading fresh.
    static func healthy(_ model: MonitorModel, now: Nanoseconds, sequence: UInt64) -> MonitorInputs {
        var i = MonitorInputs(jointCount: model.jointCount)
        i.now = now
        i.sampledAt = now
        i.position = start
        i.encoderPosition = start
        i.heartbeatSequence = sequence
        i.heartbeatSentAt = now
        i.commandActive = true
        i.commandedPosition = start
        i.imageGuided = true
        i.imageAcquiredAt = now - 100_000_000
        i.insertionForce = 0.2
        i.deadman = true
        return i
    }
}

/// Steps a monitor through cycles of healthy inputs that `modify` may change.
struct Bench {
    let model: MonitorModel
    var state: MonitorState
    var now: Nanoseconds = 10_000_000_000
    var sequence: UInt64 = 1
    var acknowledge = false

    init(_ model: MonitorModel) {
        self.model = model
        state = MonitorState(model: model)
    }

    /// One cycle; returns the verdict.
    @discardableResult
    mutating func step(_ modify: (inout MonitorInputs) -> Void = { _ in }) -> Verdict {
        now += model.period
        sequence += 1
        var inputs = Fixture.healthy(model, now: now, sequence: sequence)
        inputs.acknowledge = acknowledge
        modify(&inputs)
        return Monitor.step(model, &state, inputs)
    }

    /// Runs healthy cycles, then an acknowledge press and release: the monitor permits power.
    mutating func bringUp() -> Verdict {
        for _ in 0..<3 { step() }
        acknowledge = true
        step()
        acknowledge = false
        return step()
    }

    /// Acknowledge press and release with `modify` applied.
    @discardableResult
    mutating func acknowledgeOnce(_ modify: (inout MonitorInputs) -> Void = { _ in }) -> Verdict {
        acknowledge = true
        step(modify)
        acknowledge = false
        return step(modify)
    }
}
