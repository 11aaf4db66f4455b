import CAllocCount
import Control
import Core
import Foundation
import Testing
@testable import Safety

/// The compiler's proof: this only compiles if `Monitor.step` and all it reaches are free of
/// allocations, locks and reference counting.
@_noAllocation @_noLocks
func stepProven(_ model: MonitorModel, _ state: inout MonitorState, _ inputs: MonitorInputs) -> Verdict {
    Monitor.step(model, &state, inputs)
}

@Suite struct IndependenceTests {
    @Test func theSafetyModuleNeverImportsTheControlStackOrTheSimulator() throws {
        let dir = Fixture.root.appendingPathComponent("Sources/Safety")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".swift") }
        #expect(files.count >= 5)
        for file in files {
            let text = try String(contentsOfFile: dir.appendingPathComponent(file).path, encoding: .utf8)
            for line in text.split(separator: "\n") {
                let t = line.trimmingCharacters(in: .whitespaces)
                for forbidden in ["Control", "Sim", "Scenarios", "Imaging"] {
                    let imports = t.hasPrefix("import \(forbidden)") || t.hasPrefix("@testable import \(forbidden)")
                        || t.hasPrefix("@_exported import \(forbidden)")
                    #expect(!(imports && (t == "import \(forbidden)" || t.hasSuffix(" \(forbidden)"))), "\(file): \(t)")
                }
            }
        }
        // And the package says so too.
        let manifest = try String(contentsOfFile: Fixture.root.appendingPathComponent("Package.swift").path, encoding: .utf8)
        #expect(manifest.contains(#".target(name: "Safety", dependencies: ["Core", "Drivers"])"#))
    }

    @Test func tenThousandMonitorStepsAllocateNothing() throws {
        try #require(lumen_alloc_count_is_active() == 1, "the allocation counter is not interposed in this process")
        let model = try Fixture.model()
        var state = MonitorState(model: model)
        var inputs = Fixture.healthy(model, now: 10_000_000_000, sequence: 1)
        var log = FaultLog(capacity: 64)
        var permits = 0
        lumen_alloc_count_begin()
        for k in 0..<10_000 {
            inputs.now += 1_000_000
            inputs.sampledAt = inputs.now
            inputs.heartbeatSequence += 1
            inputs.heartbeatSentAt = inputs.now
            inputs.imageAcquiredAt = inputs.now - 100_000_000
            // Now and then a fault, so latching and logging run too.
            inputs.insertionForce = k % 1000 == 500 ? 9 : 0.2
            inputs.acknowledge = k % 1000 == 520 || k == 3
            let v = stepProven(model, &state, inputs)
            log.append(v)
            if v.permit { permits += 1 }
        }
        let allocations = lumen_alloc_count_end()
        #expect(allocations == 0)
        #expect(log.total == 10, "ten force faults latched and were logged")
        #expect(permits > 9000)
    }

    /// The monitor's own tip estimate agrees with the control stack's kinematics (written
    /// differently, from a different file) to 1e-9 mm over the workspace.
    @Test func theMonitorsTipEstimateAgreesWithTheControlKinematics() throws {
        let catheter = CatheterModel(try Fixture.robot())
        let g = try Fixture.model().geometry
        var rng = SplitMix64(seed: 7)
        var worst = 0.0
        for _ in 0..<2000 {
            var q = JointVector(count: 6)
            for j in 0..<6 { q[j] = rng.uniform(catheter.lowerLimit[j], catheter.upperLimit[j]) }
            q = catheter.clampToLimits(q)
            if rng.unit() < 0.1 { q[2] = 1e-7; q[3] = 0 }  // nearly straight: the series branch
            worst = max(worst, (g.tipPosition(q) - catheter.calcTipPose(q).translation).length)
        }
        #expect(worst < 1e-9)
    }

    @Test func wireFormatsRoundTripAndRejectCorruption() throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SafetyWire.maxSize, alignment: 8)
        defer { buffer.deallocate() }
        var inputs = MonitorInputs(jointCount: 6)
        var q = JointVector(count: 6), v = JointVector(count: 6)
        for i in 0..<6 { q[i] = Double(i) + 0.5; v[i] = -Double(i) }
        var n = SafetyWire.encodeHeartbeat(sequence: 42, sentAt: 123_456, following: true, imageGuided: true, imageAcquiredAt: 99,
                                           lostFrames: 1, crcErrors: 2, wkcErrors: 3, position: q, velocity: v,
                                           counter: 77, key: Fixture.key, into: buffer)
        #expect(n == SafetyWire.heartbeatSize(axes: 6))
        var bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
        #expect(SafetyWire.classify(bytes) == .heartbeat)
        #expect(SafetyWire.authenticate(bytes, key: Fixture.key) && SafetyWire.counter(bytes) == 77)
        #expect(SafetyWire.decodeHeartbeat(bytes, into: &inputs))
        #expect(inputs.heartbeatSequence == 42 && inputs.heartbeatSentAt == 123_456 && inputs.commandActive && inputs.imageGuided)
        #expect(inputs.imageAcquiredAt == 99 && inputs.lostFrames == 1 && inputs.crcErrors == 2 && inputs.wkcErrors == 3)
        #expect(inputs.commandedPosition == q && inputs.commandedVelocity == v)
        // Any flipped bit is caught by the CRC.
        for bit in stride(from: 0, to: n * 8, by: 7) {
            buffer[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(SafetyWire.classify(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) == .invalid)
            buffer[bit / 8] ^= 1 << UInt8(bit % 8)
        }
        // A truncated datagram is invalid.
        #expect(SafetyWire.classify(UnsafeRawBufferPointer(rebasing: buffer[0..<(n - 1)])) == .invalid)

        var status: [UInt8] = [1, 1, 1, 1, 1, 3]
        n = status.withUnsafeBufferPointer {
            SafetyWire.encodeDriveSample(sequence: 7, sampledAt: 555, force: 0.75, encoder: q, load: v, velocity: q, current: v,
                                         status: $0.baseAddress!, counter: 78, key: Fixture.key, into: buffer)
        }
        bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
        #expect(SafetyWire.classify(bytes) == .driveSample)
        #expect(SafetyWire.decodeDriveSample(bytes, into: &inputs))
        #expect(inputs.sampledAt == 555 && inputs.insertionForce == 0.75 && inputs.encoderPosition == q && inputs.position == v)
        status[0] = 0
        // A sample for another robot (other axis count) is not taken.
        var four = MonitorInputs(jointCount: 4)
        #expect(!SafetyWire.decodeDriveSample(bytes, into: &four))

        n = SafetyWire.encodePermit(sequence: 9, permit: true, quickStop: false, counter: 79, key: Fixture.key, into: buffer)
        bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
        #expect(SafetyWire.classify(bytes) == .permit)
        let p = try #require(SafetyWire.decodePermit(bytes))
        #expect(p.sequence == 9 && p.permit && !p.quickStop)
        #expect(SafetyWire.authenticate(bytes, key: Fixture.key))
        #expect(!SafetyWire.authenticate(bytes, key: ChannelKey(secret: [UInt8](repeating: 1, count: 32))))
    }
}
