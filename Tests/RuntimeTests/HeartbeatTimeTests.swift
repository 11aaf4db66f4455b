import Control
import Core
import Foundation
import Safety
import Scenarios
import Testing
@testable import Runtime

/// The heartbeat's time against what the monitor makes of it: the speed of consecutive commands.
@Suite struct HeartbeatTimeTests {
    /// A command at 10 mm/s, computed each 1 ms wake-up, written 20 µs or 900 µs after it (a cycle
    /// the scheduler held back between wake-up and write, as on a loaded machine). The monitor
    /// divides consecutive commands' difference by their heartbeats' times: stamped at the write,
    /// every other pair came 120 µs apart and read 83 mm/s, over the 16.5 mm/s limit.
    @Test func consecutiveCommandsOverTheirHeartbeatsTimesMoveAtTheCommandsSpeed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-hb-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let monitor = try DatagramSocket(bindTo: dir + "/m.sock", passCredentials: true)
        var setup = NavigationSetup()
        setup.phantom = "straight"
        setup.vessel = "tube"
        setup.depth = 90
        let scene = try NavigationScene(setup, robot: try loadRobot())
        let n = scene.robot.axes.count
        let shared = LiveShared(joints: n, deadmanTimeout: 250_000_000)
        let link = try SafetyLink(drives: dir + "/d.sock", monitor: dir + "/m.sock", key: ChannelKey(secret: [UInt8](repeating: 3, count: 32)),
                                  axes: n, status: SafetyLinkStatus())
        var patient = LivePatient(physics: scene.makePhysics(), shared: shared, link: link)
        var state = JointState(jointCount: n)
        var command = JointCommand(jointCount: n)
        command.mode = .position
        command.enable = true
        let receiver = CredentialReceiver()
        defer { receiver.deallocate() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SafetyWire.maxSize, alignment: 8)
        defer { buffer.deallocate() }
        var heartbeats: [(at: Nanoseconds, insertion: Double)] = []
        let speed = 10.0
        for k in 0..<40 {
            let wake = Nanoseconds(1_000_000_000 + k * 1_000_000)
            _ = patient.read(into: &state, now: wake)
            shared.flags[LiveShared.wakeFlag] = wake
            command.position[0] = 60 + speed * Double(k) * 1e-3
            command.velocity[0] = speed
            _ = patient.write(command, now: wake + (k % 2 == 1 ? 900_000 : 20_000))
            // Taken after every cycle: the socket queues only a few datagrams (net.unix.max_dgram_qlen).
            while true {
                let got = receiver.receive(monitor.fd, into: buffer)
                if got.count <= 0 { break }
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<got.count])
                guard SafetyWire.classify(bytes) == .heartbeat else { continue }
                var inputs = MonitorInputs(jointCount: n)
                #expect(SafetyWire.decodeHeartbeat(bytes, into: &inputs))
                heartbeats.append((inputs.heartbeatSentAt, inputs.commandedPosition[0]))
            }
        }
        #expect(heartbeats.count == 40)
        for (a, b) in zip(heartbeats, heartbeats.dropFirst()) {
            let implied = (b.insertion - a.insertion) / (Double(b.at - a.at) * 1e-9)
            #expect(abs(implied - speed) < 0.01, "commands 1 ms of motion apart read as \(implied) mm/s")
        }
    }
}
