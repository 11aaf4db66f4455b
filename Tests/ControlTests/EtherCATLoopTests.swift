import Core
import Drivers
import Foundation
import Sim
import Synchronization
import Testing
@testable import Control

/// The control cycle driving emulated CiA 402 slaves over EtherCAT frames (UDP on loopback),
/// in lockstep: the slaves' clock moves 1 ms per process-data frame and the host's 1 ms per
/// cycle, each cycle waiting for the reply to the last. Their watchdogs and motion then share one
/// time whatever the scheduler does to either thread on a loaded machine (on the wall clock a
/// stalled thread tripped the 100 ms sync-manager watchdog, and skipped host cycles left the
/// drives behind the path).
@Suite(.serialized) struct EtherCATLoopTests {
    typealias Cycle = CycleRunner<EtherCATRobot, TipServo, LockstepClock>

    func makeRig(faultPolicy: CycleFaultPolicy = CycleFaultPolicy(maxConsecutiveReadFaults: 200)) throws -> (Cycle, EtherCATSegment, EtherCATUDPServer, TipLog) {
        let description = try loadRobot("lumen-2s.yaml")
        let model = CatheterModel(description)
        var start = JointVector(count: model.jointCount)
        start[0] = 100
        let segment = EtherCATSegment(axes: description.axes, start: start, clock: .processDataFrames(period: 1_000_000))
        let server = try EtherCATUDPServer(segment: segment)
        server.start()
        let udp = try EtherCATMaster.udpTransport(host: "127.0.0.1", port: server.port)
        let clock = LockstepClock(fd: udp.fd)
        let robot = EtherCATRobot(axes: description.axes, master: patientMaster(udp))
        let log = TipLog(capacity: 20_000, decimation: 1)
        let runner = Cycle(hardware: robot, controller: TipServo(model: model, path: TipPath(), log: log),
                           clock: clock, period: 1_000_000, faultPolicy: faultPolicy)
        return (runner, segment, server, log)
    }

    @Test func theServoRunsOverEtherCATWithCiA402Drives() throws {
        let (runner, segment, server, log) = try makeRig()
        defer { server.stop() }
        try runner.configure()
        try runner.activate()
        try runner.run(cycles: 3000)
        let stats = runner.withHardware { $0.stats }
        #expect(stats.workingCounterShortfalls == 0 && stats.malformed == 0, "\(stats)")
        #expect(runner.report().counters.faultStops == 0)
        for i in 0..<6 { #expect(segment.drive(i).state == .operationEnabled) }
        #expect(runner.state.status.contains(.enabled))
        // The drives needed a few cycles to step through the CiA 402 states; then the tip follows.
        let errors = log.all.filter { $0.time > 2 }.map(\.error).sorted()
        #expect(!errors.isEmpty)
        #expect(errors[errors.count / 2] < 0.1)
        #expect(errors.last! < 3)
        // Deactivating switches the drives off through the state machine.
        try runner.deactivate()
        try runner.run(cycles: 10)
        for i in 0..<6 { #expect(segment.drive(i).state != .operationEnabled) }
    }

    /// The same reaction as on DriveLink: a CiA 402 fault statusword is a category 0 stop, and
    /// the fault-reset edge goes out only on an operator's acknowledge.
    @Test func aDriveFaultIsAStopUntilAcknowledged() throws {
        let (runner, segment, server, _) = try makeRig()
        defer { server.stop() }
        try runner.configure()
        try runner.activate()
        try runner.run(cycles: 300)
        #expect(segment.drive(2).state == .operationEnabled)
        segment.injectDriveFault(slave: 2)
        try runner.run(cycles: 50)
        #expect(runner.lifecycle == .inactive)
        #expect(runner.command.enable == false)
        guard case .driveFault(let f)? = runner.counters.stop else { Issue.record("\(String(describing: runner.counters.stop))"); return }
        #expect(f.axis == 2)
        #expect(try runner.endRun().exitCode == 3)
        // Not reset by the cycle, nor by a new activation.
        try runner.run(cycles: 50)
        #expect(segment.drive(2).state == .fault)
        #expect(throws: LifecycleError.driveFaultLatched(f)) { try runner.activate() }
        #expect(segment.drive(2).state == .fault)
        try runner.acknowledgeFaults()
        #expect(segment.drive(2).state != .fault)
        try runner.activate()
        try runner.run(cycles: 300)
        #expect(runner.lifecycle == .active)
        for i in 0..<6 { #expect(segment.drive(i).state == .operationEnabled) }
    }

    /// On a loaded machine the slaves' replies can come later than a real segment's. An
    /// acknowledge that took an earlier exchange's late reply for silence sent again, stayed one
    /// reply behind for good and reported a cleared fault as kept (seen in CI under load).
    @Test func anAcknowledgeWaitsForItsOwnReplyFromSlowSlaves() throws {
        let description = try loadRobot("lumen-2s.yaml")
        let rig = try RelayedSegment(description, insertion: 100)
        defer { rig.stop() }
        var robot = try faultedRobot(description, port: rig.relay.port, segment: rig.segment, slave: 2)
        #expect(robot.driveFault?.axis == 2)
        // Every reply now comes 25 ms after its frame: later than a cycle, well within patience.
        rig.relay.delay.store(25_000_000, ordering: .releasing)
        try robot.acknowledgeFaults()
        #expect(robot.driveFault == nil)
        #expect(rig.segment.drive(2).state != .fault)
        #expect(robot.stats.late == 0, "\(robot.stats)")
    }

    /// Silent slaves leave the fault latched, and the error says they were silent.
    @Test func anUnansweredAcknowledgeKeepsTheFault() throws {
        let description = try loadRobot("lumen-2s.yaml")
        let segment = EtherCATSegment(axes: description.axes, start: JointVector(count: description.axes.count), clock: .processDataFrames(period: 1_000_000))
        let server = try EtherCATUDPServer(segment: segment)
        server.start()
        var robot = try faultedRobot(description, port: server.port, segment: segment, slave: 4)
        #expect(robot.driveFault?.axis == 4)
        server.stop()
        robot.setupTimeout = 20_000_000
        expectRefusedAcknowledge(&robot, keeping: 4, saying: "no reply")
    }

    /// Replies that never carry the slaves' processing (a working counter of 0) answer nothing:
    /// the fault stays as it was, and the error says what came back.
    @Test func anAcknowledgeAnsweredOnlyByCorruptRepliesKeepsTheFault() throws {
        let description = try loadRobot("lumen-2s.yaml")
        let rig = try RelayedSegment(description)
        defer { rig.stop() }
        var robot = try faultedRobot(description, port: rig.relay.port, segment: rig.segment, slave: 1)
        #expect(robot.driveFault?.axis == 1)
        rig.relay.zeroWorkingCounter.store(true, ordering: .releasing)
        expectRefusedAcknowledge(&robot, keeping: 1, saying: "working counter")
    }

    @Test func aLostSegmentEndsInASafeStop() throws {
        let (runner, _, server, _) = try makeRig(faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 40))
        try runner.configure()
        try runner.activate()
        try runner.run(cycles: 300)
        #expect(runner.lifecycle == .active)
        server.stop()
        // 40 lost replies stop it; each costs the lockstep clock its 100 ms patience.
        try runner.run(cycles: 60)
        #expect(runner.lifecycle == .inactive)
        #expect(runner.report().counters.faultStops == 1)
        #expect(runner.command.enable == false)
    }

    @Test func velocityModeDrivesTheAxesInCSV() throws {
        let axes = try loadRobot("lumen-2s.yaml").axes
        let segment = EtherCATSegment(axes: axes, start: JointVector([100, 0, 0, 0, 0, 0]), clock: .processDataFrames(period: 1_000_000))
        let server = try EtherCATUDPServer(segment: segment)
        server.start()
        defer { server.stop() }
        var robot = EtherCATRobot(axes: axes, master: patientMaster(try EtherCATMaster.udpTransport(host: "127.0.0.1", port: server.port)))
        try robot.configure()
        try robot.activate()
        var command = JointCommand(jointCount: 6)
        command.mode = .velocity
        command.enable = true
        command.velocity = JointVector([5, 0, 0, 0, 0, 0])  // 5 mm/s of insertion
        var state = JointState(jointCount: 6)
        // Step the drives up to operation enabled, then let them run for 500 frames: half a
        // second of the slaves' frame clock, however long the machine takes over it.
        let frames = 500
        for _ in 0..<frames {
            _ = robot.write(command, now: 0)
            _ = robot.waitReadableForTests(timeout: 1_000_000_000)
            _ = robot.read(into: &state, now: 0)
        }
        #expect(segment.drive(0).state == .operationEnabled)
        let moved = segment.drive(0).position - 100
        // Velocity integrates on the drive's clock, 1 ms per frame; the first few frames step
        // the drive through the CiA 402 states (shutdown, switch on, enable: 3, plus the reply
        // that brings the state back), so 5 mm/s runs for between 490 and 500 of them.
        #expect(moved >= 5 * Double(frames - 10) * 1e-3 && moved <= 5 * Double(frames) * 1e-3 + 1e-3, "moved \(moved) mm in \(frames) frames")
        #expect(abs(segment.drive(1).position) < 1e-9)
    }
}

/// A master on `transport` whose set-up exchanges wait up to 10 s for each reply, not 20 ms: a
/// loaded machine can hold the slaves' thread for seconds, and set-up is not timed on a real line.
func patientMaster(_ transport: consuming DescriptorTransport) -> EtherCATMaster {
    var master = EtherCATMaster(transport: transport)
    master.setupTimeout = 10_000_000_000
    return master
}

/// A robot configured on the slaves at `port`, after a fault on `slave` and five exchanges of
/// a hold with the power off, each waiting for its reply.
func faultedRobot(_ description: RobotDescription, port: UInt16, segment: EtherCATSegment, slave: Int) throws -> EtherCATRobot {
    var master = EtherCATMaster(transport: try EtherCATMaster.udpTransport(host: "127.0.0.1", port: port))
    master.setupTimeout = 2_000_000_000
    var robot = EtherCATRobot(axes: description.axes, master: master)
    try robot.configure()
    segment.injectDriveFault(slave: slave)
    var state = JointState(jointCount: robot.jointCount)
    var hold = JointCommand(jointCount: robot.jointCount)
    hold.setHold(enable: false)
    for _ in 0..<5 {
        _ = robot.write(hold, now: 0)
        _ = robot.waitReadableForTests(timeout: 1_000_000_000)
        _ = robot.read(into: &state, now: 0)
    }
    return robot
}

/// The acknowledge is refused, the fault on `axis` stays latched, and the error says `reason`.
func expectRefusedAcknowledge(_ robot: inout EtherCATRobot, keeping axis: Int, saying reason: String) {
    do {
        try robot.acknowledgeFaults()
        Issue.record("acknowledged, where a refusal saying \"\(reason)\" was expected")
    } catch {
        #expect(error.driveFault?.axis == axis)
        #expect(error.description.contains(reason), "\(error)")
    }
    #expect(robot.driveFault?.axis == axis)
}

/// A simulated segment served over UDP, reached through a `DelayingRelay` so a test can make its
/// replies late or corrupt.
struct RelayedSegment {
    let segment: EtherCATSegment
    let server: EtherCATUDPServer
    let relay: DelayingRelay

    init(_ description: RobotDescription, insertion: Double = 0) throws {
        var start = JointVector(count: description.axes.count)
        start[0] = insertion
        segment = EtherCATSegment(axes: description.axes, start: start, clock: .processDataFrames(period: 1_000_000))
        server = try EtherCATUDPServer(segment: segment)
        server.start()
        do { relay = try DelayingRelay(to: server.port) } catch { server.stop(); throw error }
    }

    func stop() {
        relay.stop()
        server.stop()
    }
}

/// A UDP relay between a master and the emulated slaves that holds each reply for `delay` ns:
/// slaves on a loaded machine, without depending on the load. With `zeroWorkingCounter` it
/// also zeroes each reply's working counter (its last two bytes): slaves that answer but never
/// process the frame.
final class DelayingRelay: @unchecked Sendable {
    let port: UInt16
    let delay = Atomic<Int64>(0)
    let zeroWorkingCounter = Atomic<Bool>(false)
    private let front: Int32
    private let back: Int32
    private let running = Atomic<Bool>(true)
    private let done = DispatchSemaphore(value: 0)

    init(to serverPort: UInt16) throws {
        let f = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        let b = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(f, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(f, $0, &len) } }
        port = UInt16(bigEndian: addr.sin_port)
        addr.sin_port = serverPort.bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(b, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw TransportError.open(what: "the relay's back socket", errno: errno) }
        front = f
        back = b
        Thread { [self] in relay() }.start()
    }

    func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        done.wait()
        close(front)
        close(back)
    }

    private func relay() {
        var master = sockaddr_in()
        var held: [(due: Nanoseconds, bytes: [UInt8])] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while running.load(ordering: .acquiring) {
            var fds = [pollfd(fd: front, events: Int16(POLLIN), revents: 0), pollfd(fd: back, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, 1)
            if fds[0].revents & Int16(POLLIN) != 0 {
                var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                let n = buffer.withUnsafeMutableBytes { b in withUnsafeMutablePointer(to: &master) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(front, b.baseAddress, b.count, 0, $0, &len) } } }
                if n > 0 { _ = buffer.withUnsafeBytes { send(back, $0.baseAddress, n, 0) } }
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                let n = buffer.withUnsafeMutableBytes { recv(back, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    var reply = Array(buffer[0..<n])
                    if zeroWorkingCounter.load(ordering: .acquiring), n >= 2 { reply[n - 2] = 0; reply[n - 1] = 0 }
                    held.append((MonotonicClock.now() + delay.load(ordering: .acquiring), reply))
                }
            }
            let now = MonotonicClock.now()
            while let first = held.first, first.due <= now {
                held.removeFirst()
                _ = first.bytes.withUnsafeBytes { b in withUnsafePointer(to: &master) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(front, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } }
            }
        }
        done.signal()
    }
}
