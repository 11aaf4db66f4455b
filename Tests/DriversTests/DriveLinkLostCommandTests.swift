import Core
import Drivers
import Foundation
import Testing

/// Which COMMANDs the host counts as lost (what the safety monitor's lost-frame check is given):
/// a STATE a cycle late answers its COMMAND and is not a loss; a COMMAND no STATE ever answered
/// is, whether a later answer skipped it or the drive went silent.
@Suite struct DriveLinkLostCommandTests {
    /// The drive's end of a pty: reads the host's COMMANDs, writes STATEs answering chosen ones.
    final class Device {
        let fd: Int32
        var pending: [UInt8] = []
        var seq: UInt16 = 1
        init(fd: Int32) { self.fd = fd }

        /// The seqs of the COMMANDs the host sent since the last call (waits up to 1 s for one).
        func commands() -> [UInt16] {
            var seqs: [UInt16] = []
            var waited = 0
            while seqs.isEmpty, waited < 200 {
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = read(fd, &chunk, chunk.count)
                if n > 0 { pending += chunk.prefix(n) } else { usleep(5000); waited += 1 }
                while let end = pending.firstIndex(of: 0) {
                    let frame = Array(pending[...end])
                    pending.removeSubrange(...end)
                    if case .success(let (f, _)) = Wire.decode(frame), f.type == .command { seqs.append(f.seq) }
                }
            }
            return seqs
        }

        /// A STATE of a 1-axis drive (power off, nothing latched) answering `ack`.
        func answer(_ ack: UInt16) {
            var image = [UInt8](repeating: 0, count: CyclicImage.stateSize(axes: 1))
            var pos: Int32 = 0, vel: Int32 = 0, cur: Int16 = 0, st: UInt16 = 0
            _ = image.withUnsafeMutableBytes { CyclicImage.encodeState(sampledAt: 1, positions: &pos, velocities: &vel, currentsMilliamp: &cur, status: &st, axes: 1, into: $0) }
            let payload = [UInt8(ack & 0xFF), UInt8(ack >> 8), 0, 0] + image + [0, 0, 0, 0]
            let wire = Wire.encode(.state, seq: seq, payload)!
            seq &+= 1
            _ = wire.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        }
    }

    @Test func aLateStateIsNoLossButAnUnansweredCommandIs() throws {
        let pty = try PseudoTerminal.openPair()
        defer { close(pty.deviceFD) }
        let spec = AxisSpec(name: "a", unit: .millimetre, lower: -1000, upper: 1000, maxVelocity: 100, countsPerUnit: 1000)
        var host = DriveLinkRobot(axes: [spec], transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path))
        let device = Device(fd: pty.deviceFD)
        var hold = JointCommand(jointCount: 1)
        hold.setHold(enable: false)
        var state = JointState(jointCount: 1)
        var owed: [UInt16] = []
        /// One cycle: the host writes, the drive answers what `answer` picks of what it owes, the host reads.
        func cycle(_ answer: ([UInt16]) -> [UInt16]) {
            _ = host.write(hold, now: 0)
            owed += device.commands()
            let sent = answer(owed)
            for s in sent { device.answer(s) }
            owed.removeAll { sent.contains($0) }
            if !sent.isEmpty { _ = host.waitReadable(timeout: 1_000_000_000) }
            _ = host.read(into: &state, now: 0)
        }
        for _ in 0..<10 { cycle { $0 } }
        // One STATE a cycle late: answered with the next cycle's, in order.
        cycle { _ in [] }
        cycle { $0 }
        let afterLate = host.stats
        #expect(afterLate.lateStates == 1)
        #expect(afterLate.cyclesWithoutState == 1)
        #expect(afterLate.commandsLost == 0, "a late STATE counted as a lost frame")
        // Five COMMANDs never answered, then answers again: the later answers skip them.
        for _ in 0..<5 { cycle { _ in [] } }
        owed.removeAll()
        for _ in 0..<10 { cycle { $0 } }
        let afterGap = host.stats
        #expect(afterGap.commandsLost == 5)
        #expect(afterGap.commandsAnswered == 22)
        // A drive gone silent: each cycle beyond the two a slow line may owe is a loss.
        for _ in 0..<10 { cycle { _ in [] } }
        let silent = host.stats
        #expect(silent.commandsLost == 5 + 10 - DriveLink.lateAnswers)
    }
}
