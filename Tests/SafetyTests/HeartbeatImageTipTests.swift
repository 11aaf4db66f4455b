import Core
import Foundation
import Testing
@testable import Safety

/// The image tip the heartbeat carries (`LHB3`, docs/safety/channel.md): decoded as sent, one
/// meaning per byte, and the format before it refused rather than misread.
@Suite struct HeartbeatImageTipTests {
    static func heartbeat(tip: Vec3, at: Nanoseconds, counter: UInt64 = 20) -> [UInt8] {
        let zeros = JointVector(count: Forge.axes)
        return Forge.bytes {
            SafetyWire.encodeHeartbeat(sequence: 3, sentAt: 2_000_000, following: true, imageGuided: true, imageAcquiredAt: 1_900_000,
                                       lostFrames: 0, crcErrors: 0, wkcErrors: 0, position: Fixture.start, velocity: zeros,
                                       imageTip: tip, imageTipAcquiredAt: at, counter: counter, key: Fixture.key, into: $0)
        }
    }

    static func decode(_ d: [UInt8]) -> MonitorInputs? {
        var inputs = MonitorInputs(jointCount: Forge.axes)
        guard SafetyWire.classify(d.withUnsafeBytes { $0 }) == .heartbeat else { return nil }
        return d.withUnsafeBytes { SafetyWire.decodeHeartbeat($0, into: &inputs) } ? inputs : nil
    }

    /// Offsets: magic 4, sequence 8, sent at 8, flags 1, image at 8, then the tip's time and x, y, z.
    static let flagsAt = 20, tipAtOffset = 29, tipOffset = 37

    @Test func theImageTipArrivesAsSent() throws {
        let d = Self.heartbeat(tip: Vec3(12.5, -3, 140), at: 1_850_000)
        #expect(d.count == SafetyWire.heartbeatSize(axes: Forge.axes))
        let inputs = try #require(Self.decode(d))
        #expect(inputs.imageTip == Vec3(12.5, -3, 140))
        #expect(inputs.imageTipAcquiredAt == 1_850_000)
        #expect(inputs.imageAcquiredAt == 1_900_000)
        #expect(inputs.imageGuided && inputs.commandActive)
        // Without a tip: none, and the fields are zeros.
        let none = try #require(Self.decode(Self.heartbeat(tip: Vec3(9, 9, 9), at: 0)))
        #expect(none.imageTipAcquiredAt == 0)
        #expect(none.imageTip == .zero)
    }

    @Test func aTipThatContradictsItsFlagIsRefused() {
        // Flag set, time zero.
        var a = Self.heartbeat(tip: Vec3(1, 2, 3), at: 1_850_000)
        Forge.patch(&a, at: Self.tipAtOffset, Int64(0))
        Forge.reseal(&a)
        #expect(Self.decode(a) == nil)
        // Flag clear, a position left in the bytes.
        var b = Self.heartbeat(tip: .zero, at: 0)
        Forge.patch(&b, at: Self.tipOffset + 8, 5.0)
        Forge.reseal(&b)
        #expect(Self.decode(b) == nil)
        // Flag clear, a time left in the bytes.
        var c = Self.heartbeat(tip: .zero, at: 0)
        Forge.patch(&c, at: Self.tipAtOffset, Int64(7))
        Forge.reseal(&c)
        #expect(Self.decode(c) == nil)
        // A flag bit beyond those defined.
        var d = Self.heartbeat(tip: Vec3(1, 2, 3), at: 1_850_000)
        d[Self.flagsAt] |= 8
        Forge.reseal(&d)
        #expect(Self.decode(d) == nil)
    }

    @Test(arguments: [Double.nan, .infinity, -.infinity, 2e9, -1e308])
    func aTipOutOfRangeIsRefused(_ x: Double) {
        var d = Self.heartbeat(tip: Vec3(1, 2, 3), at: 1_850_000)
        Forge.patch(&d, at: Self.tipOffset, x)
        Forge.reseal(&d)
        #expect(Self.decode(d) == nil)
        var t = Self.heartbeat(tip: Vec3(1, 2, 3), at: 1_850_000)
        Forge.patch(&t, at: Self.tipAtOffset, Int64.min)
        Forge.reseal(&t)
        #expect(Self.decode(t) == nil)
    }

    /// A heartbeat of the format before (`LHB2`, no image tip) is not read as this one.
    @Test func theFormatBeforeIsRefused() {
        var d = Self.heartbeat(tip: .zero, at: 0)
        d[3] = UInt8(ascii: "2")
        Forge.reseal(&d)
        #expect(d.withUnsafeBytes { SafetyWire.classify($0) } == .invalid)
    }
}
