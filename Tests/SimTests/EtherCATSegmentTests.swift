import Core
import Foundation
import Synchronization
import Testing
@testable import Drivers
@testable import Sim

@Suite(.serialized) struct EtherCATSegmentTests {
    let axes = [
        AxisSpec(name: "insertion", unit: .millimetre, lower: 0, upper: 100, maxVelocity: 20, countsPerUnit: 1000),
        AxisSpec(name: "roll", unit: .radian, lower: -3, upper: 3, maxVelocity: 1, countsPerUnit: 10000),
        AxisSpec(name: "tendon", unit: .millimetre, lower: -1, upper: 1, maxVelocity: 4, countsPerUnit: 20000),
    ]

    /// Its set-up exchanges wait up to 10 s for each reply, not 20 ms: a loaded machine can hold
    /// the slaves' thread for seconds, and set-up is not timed on a real line either. Each
    /// cyclic exchange below likewise waits up to 10 s for its reply (it returns as it comes).
    func masterOnUDP(_ server: EtherCATUDPServer) throws -> EtherCATMaster {
        var master = EtherCATMaster(transport: try EtherCATMaster.udpTransport(host: "127.0.0.1", port: server.port))
        master.setupTimeout = 10_000_000_000
        return master
    }

    @Test func masterScansAddressesAndBringsEverySlaveToOP() throws {
        let segment = EtherCATSegment(axes: axes)
        let server = try EtherCATUDPServer(segment: segment)
        server.start()
        defer { server.stop() }
        var master = try masterOnUDP(server)
        let found = try master.scan()
        #expect(found == 3)
        try master.configure(expectedSlaves: 3)
        for i in 0..<3 {
            #expect(segment.alStatus(i).state == ALState.op.rawValue)
            #expect(!segment.alStatus(i).error)
            let status = try master.alStatus(slave: i).status
            #expect(status == UInt16(ALState.op.rawValue))
        }
        // Cyclic exchange: the working counter is 3 per slave.
        let sent = master.sendProcessData()
        #expect(sent)
        _ = master.transport.waitReadable(timeout: 10_000_000_000)
        let exchange1 = master.receiveProcessData()
        #expect(exchange1 == .ok)
        let wkc = master.stats.lastWorkingCounter
        #expect(wkc == 9)
    }

    @Test("A reply that comes after its cycle gave up is counted late, never malformed, never applied")
    func aLateReplyIsLateNotMalformed() throws {
        let segment = EtherCATSegment(axes: axes)
        let server = try EtherCATUDPServer(segment: segment)
        server.start()
        defer { server.stop() }
        var master = try masterOnUDP(server)
        try master.configure(expectedSlaves: 3)
        // Cycle 1 sends and gives up before its reply comes; cycle 2's reply follows it in.
        // Each wait is for the server to have answered, not a fixed pause: a loaded machine may
        // hold its thread longer than any pause.
        func waitAnswered(_ n: Int) {
            let until = MonotonicClock.now() + 10_000_000_000
            while server.framesAnswered < n, MonotonicClock.now() < until { usleep(1000) }
        }
        // Every set-up frame was processed (the master had each reply); the server may not have
        // counted the last reply yet, so count from the frames processed.
        let before = segment.framesProcessed
        var sent = master.sendProcessData()
        #expect(sent)
        waitAnswered(before + 1)
        sent = master.sendProcessData()
        #expect(sent)
        waitAnswered(before + 2)
        // This cycle's reply is taken (its working counter is the segment's business here).
        let exchange = master.receiveProcessData()
        #expect(exchange != .malformed && exchange != .noReply && exchange != .late, "\(exchange)")
        #expect(master.stats.late == 1)
        #expect(master.stats.malformed == 0)
        // Only the late one in the socket: this cycle has no reply (missing), not a corrupt one.
        sent = master.sendProcessData()
        waitAnswered(before + 3)
        sent = master.sendProcessData() && sent
        #expect(sent)
        _ = master.receiveProcessData()  // may or may not already hold this cycle's reply
        #expect(master.stats.malformed == 0)
        #expect(master.stats.late == 2)
    }

    @Test func aWrongSlaveCountIsRefused() throws {
        let server = try EtherCATUDPServer(segment: EtherCATSegment(axes: Array(axes.prefix(2))))
        server.start()
        defer { server.stop() }
        var master = try masterOnUDP(server)
        do {
            try master.configure(expectedSlaves: 3)
            Issue.record("configure accepted 2 slaves for 3 axes")
        } catch {
            #expect(error == .slaveCount(expected: 3, found: 2))
        }
    }

    @Test func noSlavesIsAClearError() throws {
        // A port with nobody behind it: the scan times out.
        let server = try EtherCATUDPServer(segment: EtherCATSegment(axes: axes))
        let port = server.port
        var master = EtherCATMaster(transport: try EtherCATMaster.udpTransport(host: "127.0.0.1", port: port))
        do {
            _ = try master.scan()
            Issue.record("a scan with no slaves succeeded")
        } catch {
            guard case .timeout = error else { Issue.record("expected a timeout, got \(error)"); return }
        }
    }

    @Test func safeOpWithoutProcessDataMappingIsRefusedWithTheStatusCode() throws {
        let segment = EtherCATSegment(axes: axes)
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { frame.deallocate() }
        // APWR station address to slave 0, then ask it for PRE-OP and SAFE-OP with no FMMUs.
        func send(_ cmd: EtherCAT.Command, adp: UInt16, ado: UInt16, _ data: [UInt8]) {
            var b = EtherCAT.FrameBuilder(buffer: frame)
            _ = data.withUnsafeBytes { b.append(cmd, index: 1, address: EtherCAT.address(adp: adp, ado: ado), data: $0) }
            _ = b.finish()
            segment.process(frame, now: MonotonicClock.now())
        }
        send(.apwr, adp: 0, ado: ESCRegister.stationAddress, [0x01, 0x10])
        send(.fpwr, adp: 0x1001, ado: ESCRegister.alControl, [ALState.preOp.rawValue, 0])
        #expect(segment.alStatus(0).state == ALState.preOp.rawValue)
        send(.fpwr, adp: 0x1001, ado: ESCRegister.alControl, [ALState.safeOp.rawValue, 0])
        #expect(segment.alStatus(0).state == ALState.preOp.rawValue)
        #expect(segment.alStatus(0).error)
        #expect(segment.alStatus(0).code == EtherCATSegment.StatusCode.invalidOutputConfiguration)
        // Untouched slaves stay in INIT.
        #expect(segment.alStatus(1).state == ALState.initial.rawValue)
    }

    @Test func workingCountersCountWhatEachSlaveServed() throws {
        let segment = EtherCATSegment(axes: axes)
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { frame.deallocate() }
        var b = EtherCAT.FrameBuilder(buffer: frame)
        let brd = b.append(.brd, index: 1, address: 0, length: 2)!
        let aprd = b.append(.aprd, index: 2, address: EtherCAT.address(adp: UInt16(bitPattern: -1), ado: 0), length: 2)!
        let fprd = b.append(.fprd, index: 3, address: EtherCAT.address(adp: 0x4242, ado: 0), length: 2)!
        _ = b.finish()
        segment.process(frame, now: 1)
        let r = UnsafeRawBufferPointer(frame)
        #expect(EtherCAT.workingCounter(brd, in: r) == 3, "a broadcast read is served by every slave")
        #expect(EtherCAT.workingCounter(aprd, in: r) == 1, "positional addressing reaches exactly one slave")
        #expect(EtherCAT.workingCounter(fprd, in: r) == 0, "no slave has station address 0x4242")
        // Each slave incremented the positional address on the way through.
        #expect(UInt16(littleEndian: r.loadUnaligned(fromByteOffset: aprd.dataOffset - 8, as: UInt16.self)) == 2)
    }

    @Test func silentMasterTripsTheSyncManagerWatchdogAndRecoverBringsThemBack() throws {
        // The machine's clock as the test sets it: the silence is exactly what the test says,
        // however the scheduler treats the server's thread.
        let wall = TestWallClock()
        let segment = EtherCATSegment(axes: axes)
        segment.watchdog = 20_000_000
        let server = try EtherCATUDPServer(segment: segment, now: { wall.now })
        server.start()
        defer { server.stop() }
        var master = try masterOnUDP(server)
        try master.configure(expectedSlaves: 3)
        _ = master.sendProcessData()
        _ = master.transport.waitReadable(timeout: 10_000_000_000)
        let exchange2 = master.receiveProcessData()
        #expect(exchange2 == .ok)
        // Silent for 19 ms: within the watchdog.
        wall.advance(19_000_000)
        _ = master.sendProcessData()
        _ = master.transport.waitReadable(timeout: 10_000_000_000)
        #expect(master.receiveProcessData() == .ok)
        // Then for 21 ms: the next frame finds the slaves in SAFE-OP, outputs no longer taken,
        // working counter short.
        wall.advance(21_000_000)
        _ = master.sendProcessData()
        _ = master.transport.waitReadable(timeout: 10_000_000_000)
        let exchange3 = master.receiveProcessData()
        #expect(exchange3 == .workingCounter(3))
        #expect(segment.alStatus(0).code == EtherCATSegment.StatusCode.syncManagerWatchdog)
        let recovered = try master.recover()
        #expect(recovered == [0, 1, 2])
        _ = master.sendProcessData()
        _ = master.transport.waitReadable(timeout: 10_000_000_000)
        let exchange4 = master.receiveProcessData()
        #expect(exchange4 == .ok)
    }

    /// Brings every slave's drive to *operation enabled* in CSP, one exchange at a time, with
    /// `between` run before each exchange.
    func enableDrives(_ master: inout EtherCATMaster, slaves: Int, between: () -> Void = {}) -> Bool {
        var previous = [UInt16](repeating: 0, count: slaves), status = [UInt16](repeating: 0, count: slaves)
        for _ in 0..<20 {
            for i in 0..<slaves {
                let cw = CiA402.controlword(toward: true, statusword: status[i], previous: previous[i], resetFaults: false)
                previous[i] = cw
                let o = i * CiA402PDO.outputSize
                master.outputs.storeBytes(of: cw.littleEndian, toByteOffset: o, as: UInt16.self)
                master.outputs.storeBytes(of: CiA402.Mode.cyclicSynchronousPosition.rawValue, toByteOffset: o + 2, as: Int8.self)
                let p = master.inputs.loadUnaligned(fromByteOffset: i * CiA402PDO.inputSize + 4, as: Int32.self)
                master.outputs.storeBytes(of: p, toByteOffset: o + 3, as: Int32.self)
            }
            between()
            _ = master.sendProcessData()
            _ = master.transport.waitReadable(timeout: 10_000_000_000)
            guard master.receiveProcessData() == .ok else { return false }
            for i in 0..<slaves { status[i] = UInt16(littleEndian: master.inputs.loadUnaligned(fromByteOffset: i * CiA402PDO.inputSize, as: UInt16.self)) }
            if status.allSatisfy({ CiA402.state(statusword: $0) == .operationEnabled }) { return true }
        }
        return false
    }

    /// Emulated drives on `clock`, served over UDP with the machine's clock set by the test, a
    /// master that brought them to OP and enabled them (1 ms of that clock per exchange), for `body`.
    func withEnabledDrives(clock: EtherCATSegmentClock, _ body: (TestWallClock, EtherCATSegment, inout EtherCATMaster) throws -> Void) throws {
        let wall = TestWallClock()
        let segment = EtherCATSegment(axes: axes, dynamics: .emulated(nil), clock: clock)
        let server = try EtherCATUDPServer(segment: segment, now: { wall.now })
        server.start()
        defer { server.stop() }
        var master = try masterOnUDP(server)
        try master.configure(expectedSlaves: 3)
        let enabled = enableDrives(&master, slaves: 3, between: { wall.advance(1_000_000) })
        #expect(enabled)
        try body(wall, segment, &master)
    }

    /// The emulated drives' own enable watchdog (20 ms) on either clock: on the wall clock a
    /// master 50 ms late trips it, as a drive on a cable would; on the frame clock the same
    /// lateness is invisible to the drives, whose time moves only with the master's frames.
    @Test(arguments: [EtherCATSegmentClock.wall, .processDataFrames(period: 1_000_000)])
    func aLateMasterTripsTheDrivesOwnWatchdogOnlyOnTheWallClock(clock: EtherCATSegmentClock) throws {
        try withEnabledDrives(clock: clock) { wall, segment, master in
            for _ in 0..<10 {
                wall.advance(1_000_000)
                _ = master.sendProcessData()
                _ = master.transport.waitReadable(timeout: 10_000_000_000)
                _ = master.receiveProcessData()
            }
            for i in 0..<3 { #expect(segment.drive(i).state == .operationEnabled) }
            let before = segment.frameClockTime
            wall.advance(50_000_000)
            _ = master.sendProcessData()
            _ = master.transport.waitReadable(timeout: 10_000_000_000)
            _ = master.receiveProcessData()
            switch clock {
            case .wall:
                for i in 0..<3 { #expect(segment.drive(i).state == .fault, "slave \(i)") }
            case .processDataFrames(let period):
                for i in 0..<3 { #expect(segment.drive(i).state == .operationEnabled, "slave \(i)") }
                #expect(segment.frameClockTime == before + period)
            }
        }
    }

    /// A master that falls silent for good: on the wall clock the idle server runs the
    /// watchdogs, so the slaves leave OP and the drives lose power with no frame to notice it;
    /// on the frame clock the slaves' time stands still, and so does everything else.
    @Test(arguments: [EtherCATSegmentClock.wall, .processDataFrames(period: 1_000_000)])
    func aMasterThatFallsSilentTripsTheWatchdogOnlyOnTheWallClock(clock: EtherCATSegmentClock) throws {
        try withEnabledDrives(clock: clock) { wall, segment, master in
            // Silent for longer than the sync-manager watchdog (100 ms), by the machine's clock.
            wall.advance(150_000_000)
            switch clock {
            case .wall:
                // The server notices while idle (every 5 ms of its wait); bounded for a loaded machine.
                let until = MonotonicClock.now() + 10_000_000_000
                while segment.alStatus(2).code != EtherCATSegment.StatusCode.syncManagerWatchdog, MonotonicClock.now() < until { usleep(1000) }
                for i in 0..<3 {
                    #expect(segment.alStatus(i).state == ALState.safeOp.rawValue && segment.alStatus(i).error, "slave \(i)")
                    #expect(segment.alStatus(i).code == EtherCATSegment.StatusCode.syncManagerWatchdog)
                    #expect(segment.drive(i).state != .operationEnabled, "slave \(i)")
                }
            case .processDataFrames:
                segment.idle(now: wall.now)
                for i in 0..<3 {
                    #expect(segment.alStatus(i).state == ALState.op.rawValue && !segment.alStatus(i).error, "slave \(i)")
                    #expect(segment.drive(i).state == .operationEnabled, "slave \(i)")
                }
            }
        }
    }

    @Test func theFrameClockMovesOnePeriodPerProcessDataFrameOnly() throws {
        let segment = EtherCATSegment(axes: axes, clock: .processDataFrames(period: 2_000_000))
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { frame.deallocate() }
        func send(_ cmd: EtherCAT.Command, now: Nanoseconds) {
            var b = EtherCAT.FrameBuilder(buffer: frame)
            _ = b.append(cmd, index: 1, address: 0, length: 4)
            _ = b.finish()
            segment.process(frame, now: now)
        }
        let start = segment.frameClockTime
        // Register traffic (a scan, a status poll) is not the cyclic exchange: time stands still,
        // whatever the machine's clock says.
        send(.brd, now: 5_000_000_000)
        send(.aprd, now: 9_000_000_000)
        #expect(segment.frameClockTime == start)
        for (k, cmd) in [EtherCAT.Command.lrw, .lrd, .lwr].enumerated() {
            send(cmd, now: 0)
            #expect(segment.frameClockTime == start + Nanoseconds(k + 1) * 2_000_000)
        }
    }

    /// A master that keeps exchanging frames whose outputs reach no slave (its logical window
    /// misses every FMMU) trips the watchdog on the frame clock too: the frames move the time,
    /// and no outputs refresh it.
    @Test func outputsThatStopArrivingTripTheWatchdogOnTheFrameClock() throws {
        let segment = EtherCATSegment(axes: axes, clock: .processDataFrames(period: 1_000_000))
        segment.watchdog = 20_000_000
        let server = try EtherCATUDPServer(segment: segment)
        server.start()
        defer { server.stop() }
        var master = try masterOnUDP(server)
        try master.configure(expectedSlaves: 3)
        for _ in 0..<5 {
            _ = master.sendProcessData()
            _ = master.transport.waitReadable(timeout: 10_000_000_000)
            #expect(master.receiveProcessData() == .ok)
        }
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { frame.deallocate() }
        for k in 0..<21 {
            var b = EtherCAT.FrameBuilder(buffer: frame)
            _ = b.append(.lrw, index: 1, address: 0x00F0_0000, length: 4)
            _ = b.finish()
            segment.process(frame, now: 0)
            if k < 20 { #expect(segment.alStatus(0).state == ALState.op.rawValue, "frame \(k)") }
        }
        for i in 0..<3 {
            #expect(segment.alStatus(i).state == ALState.safeOp.rawValue)
            #expect(segment.alStatus(i).code == EtherCATSegment.StatusCode.syncManagerWatchdog)
        }
    }

    @Test func theSIIEEPROMReadsBackIdentityAndProcessDataCategories() throws {
        let segment = EtherCATSegment(axes: axes)
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { frame.deallocate() }
        func transact(_ cmd: EtherCAT.Command, ado: UInt16, _ data: [UInt8]) -> [UInt8] {
            var b = EtherCAT.FrameBuilder(buffer: frame)
            let d = data.withUnsafeBytes { b.append(cmd, index: 1, address: EtherCAT.address(adp: 0, ado: ado), data: $0) }!
            _ = b.finish()
            segment.process(frame, now: 1)
            return Array(frame[d.dataOffset..<(d.dataOffset + d.dataCount)])
        }
        // Read command (0x0100) at word 0x0008, as a master reads the vendor ID.
        func readWords(_ word: UInt16) -> [UInt8] {
            _ = transact(.aprw, ado: ESCRegister.eepromControl, [0x00, 0x01, UInt8(word & 0xFF), UInt8(word >> 8), 0, 0])
            return transact(.aprd, ado: ESCRegister.eepromData, [UInt8](repeating: 0, count: 8))
        }
        let identity = readWords(0x0008)
        #expect(identity[0..<4] == [0x55, 0x4C, 0, 0], "vendor ID")
        #expect(identity[4..<8] == [0x02, 0x04, 0, 0], "product code")
        // Not busy, reads 8 bytes at a time.
        let status = transact(.aprd, ado: ESCRegister.eepromControl, [0, 0])
        #expect(status == [0x40, 0x00])
        // The first category after the header is the strings category (10).
        #expect(readWords(0x0040)[0..<2] == [10, 0])
    }
}

/// A stand-in for the machine's clock that moves only when the test moves it.
final class TestWallClock: Sendable {
    private let time = Atomic<Nanoseconds>(1_000_000_000)
    var now: Nanoseconds { time.load(ordering: .acquiring) }
    func advance(_ ns: Nanoseconds) { time.add(ns, ordering: .acquiringAndReleasing) }
}
