import Core
import Foundation
import Testing
@testable import Drivers
@testable import Sim

@Suite(.serialized) struct EtherCATSegmentTests {
    let axes = [
        AxisSpec(name: "insertion", unit: .millimetre, lower: 0, upper: 100, maxVelocity: 20, countsPerUnit: 1000),
        AxisSpec(name: "roll", unit: .radian, lower: -3, upper: 3, maxVelocity: 1, countsPerUnit: 10000),
        AxisSpec(name: "tendon", unit: .millimetre, lower: -1, upper: 1, maxVelocity: 4, countsPerUnit: 20000),
    ]

    func masterOnUDP(_ server: EtherCATUDPServer) throws -> EtherCATMaster {
        EtherCATMaster(transport: try EtherCATMaster.udpTransport(host: "127.0.0.1", port: server.port))
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
        _ = master.transport.waitReadable(timeout: 50_000_000)
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
        var sent = master.sendProcessData()
        #expect(sent)
        usleep(100_000)
        sent = master.sendProcessData()
        #expect(sent)
        usleep(100_000)
        // This cycle's reply is taken (its working counter is the segment's business here).
        let exchange = master.receiveProcessData()
        #expect(exchange != .malformed && exchange != .noReply && exchange != .late, "\(exchange)")
        #expect(master.stats.late == 1)
        #expect(master.stats.malformed == 0)
        // Only the late one in the socket: this cycle has no reply (missing), not a corrupt one.
        sent = master.sendProcessData()
        usleep(100_000)
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
        let segment = EtherCATSegment(axes: axes)
        segment.watchdog = 20_000_000
        let server = try EtherCATUDPServer(segment: segment)
        server.start()
        defer { server.stop() }
        var master = try masterOnUDP(server)
        try master.configure(expectedSlaves: 3)
        _ = master.sendProcessData()
        _ = master.transport.waitReadable(timeout: 50_000_000)
        let exchange2 = master.receiveProcessData()
        #expect(exchange2 == .ok)
        Thread.sleep(forTimeInterval: 0.05)
        // The next frame finds the slaves in SAFE-OP: outputs no longer taken, working counter short.
        _ = master.sendProcessData()
        _ = master.transport.waitReadable(timeout: 50_000_000)
        let exchange3 = master.receiveProcessData()
        #expect(exchange3 == .workingCounter(3))
        #expect(segment.alStatus(0).code == EtherCATSegment.StatusCode.syncManagerWatchdog)
        let recovered = try master.recover()
        #expect(recovered == [0, 1, 2])
        _ = master.sendProcessData()
        _ = master.transport.waitReadable(timeout: 50_000_000)
        let exchange4 = master.receiveProcessData()
        #expect(exchange4 == .ok)
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
