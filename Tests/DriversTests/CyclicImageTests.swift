import Core
import Testing
@testable import Drivers

@Suite struct CyclicImageTests {
    @Test func commandRoundTripsThroughCounts() {
        var cmd = JointCommand(jointCount: 3)
        cmd.mode = .position
        cmd.enable = true
        cmd.position = JointVector([12.3456, -0.5, 1.0])
        cmd.velocity = JointVector([2.0, 0, -0.25])
        let cpu = JointVector([1000, 10000, 2000])
        var bytes = [UInt8](repeating: 0xAA, count: CyclicImage.commandSize(axes: 3))
        let ok = bytes.withUnsafeMutableBytes { CyclicImage.encodeCommand(cmd, countsPerUnit: cpu, into: $0) }
        #expect(ok)
        #expect(bytes[0] == 1 && bytes[1] == 1 && bytes[2] == 0 && bytes[3] == 0)
        // 12.3456 mm × 1000 counts/mm → 12346 = 0x303A, little-endian.
        #expect(Array(bytes[4..<8]) == [0x3A, 0x30, 0, 0])
        var pos = [Int32](repeating: 0, count: 3), vel = [Int32](repeating: 0, count: 3)
        var mode = JointCommand.Mode.hold, enable = false
        let err = bytes.withUnsafeBytes { b in
            pos.withUnsafeMutableBufferPointer { p in
                vel.withUnsafeMutableBufferPointer { v in
                    CyclicImage.decodeCommand(b, axes: 3, positions: p.baseAddress!, velocities: v.baseAddress!, mode: &mode, enable: &enable)
                }
            }
        }
        #expect(err == nil)
        #expect(pos == [12346, -5000, 2000])
        #expect(vel == [2000, 0, -500])
        #expect(mode == .position && enable)
    }

    @Test func malformedCommandsAreRejectedWithAReason() {
        var pos = [Int32](repeating: 0, count: 2), vel = [Int32](repeating: 0, count: 2)
        var mode = JointCommand.Mode.hold, enable = false
        func decode(_ bytes: [UInt8]) -> CyclicImage.DecodeError? {
            bytes.withUnsafeBytes { b in
                pos.withUnsafeMutableBufferPointer { p in
                    vel.withUnsafeMutableBufferPointer { v in
                        CyclicImage.decodeCommand(b, axes: 2, positions: p.baseAddress!, velocities: v.baseAddress!, mode: &mode, enable: &enable)
                    }
                }
            }
        }
        #expect(decode([1, 1, 0]) == .tooShort(needed: 20, got: 3))
        #expect(decode([9, 1] + [UInt8](repeating: 0, count: 18)) == .badMode(9))
        #expect(decode([1, 7] + [UInt8](repeating: 0, count: 18)) == .badEnable(7))
        #expect(mode == .hold && !enable, "a rejected frame must not change the decoded command")
    }

    @Test func stateDecodesToJointUnitsAndOrsTheStatus() {
        let pos: [Int32] = [150_000, -31416], vel: [Int32] = [-2000, 100]
        let cur: [Int16] = [250, -10], st: [UInt16] = [DriveStatus.enabled.rawValue, DriveStatus.atLimit.rawValue]
        var bytes = [UInt8](repeating: 0, count: CyclicImage.stateSize(axes: 2))
        _ = bytes.withUnsafeMutableBytes { CyclicImage.encodeState(sampledAt: 42, positions: pos, velocities: vel, currentsMilliamp: cur, status: st, axes: 2, into: $0) }
        var state = JointState(jointCount: 2)
        let err = bytes.withUnsafeBytes { CyclicImage.decodeState($0, countsPerUnit: JointVector([1000, 10000]), into: &state) }
        #expect(err == nil)
        #expect(state.sampledAt == 42)
        #expect(state.position.array == [150, -3.1416])
        #expect(state.velocity.array == [-2, 0.01])
        #expect(state.current.array == [0.25, -0.01])
        #expect(state.status == [.enabled, .atLimit])
        let short = bytes.prefix(10).withUnsafeBytes { CyclicImage.decodeState($0, countsPerUnit: JointVector([1, 1]), into: &state) }
        #expect(short == .tooShort(needed: 32, got: 10))
    }

    @Test func encodingIntoATooSmallBufferFails() {
        var bytes = [UInt8](repeating: 0, count: 5)
        let ok = bytes.withUnsafeMutableBytes { CyclicImage.encodeCommand(JointCommand(jointCount: 2), countsPerUnit: JointVector([1, 1]), into: $0) }
        #expect(!ok)
    }
}
