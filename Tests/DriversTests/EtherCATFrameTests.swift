import Testing
@testable import Drivers

@Suite struct EtherCATFrameTests {
    @Test func builtFramesParseBackWithTheirDatagrams() {
        var buffer = [UInt8](repeating: 0xEE, count: 256)
        buffer.withUnsafeMutableBytes { raw in
            var b = EtherCAT.FrameBuilder(buffer: raw)
            let payload: [UInt8] = [1, 2, 3, 4]
            let first = payload.withUnsafeBytes { b.append(.fpwr, index: 7, address: EtherCAT.address(adp: 0x1001, ado: 0x0120), data: $0) }
            let second = b.append(.lrw, index: 8, address: 0x0001_0000, length: 23)
            let n = b.finish()
            #expect(first != nil && second != nil)
            #expect(n == 2 + (12 + 4) + (12 + 23))
            // Header: length 51 (16 + 35), type 1.
            #expect(raw[0] == 51 && raw[1] == 0x10)
            var seen: [EtherCAT.Datagram] = []
            let err = EtherCAT.forEachDatagram(in: UnsafeRawBufferPointer(rebasing: raw[0..<n])) { seen.append($0) }
            #expect(err == nil)
            #expect(seen.map(\.command) == [.fpwr, .lrw])
            #expect(seen[0].adp == 0x1001 && seen[0].ado == 0x0120 && seen[0].index == 7)
            #expect(Array(raw[seen[0].dataOffset..<(seen[0].dataOffset + 4)]) == payload)
            #expect(seen[1].address == 0x0001_0000 && seen[1].dataCount == 23)
            // The first datagram's "more follows" bit is set, the last one's is not.
            #expect(raw[2 + 7] & 0x80 != 0)
            #expect(raw[2 + 16 + 7] & 0x80 == 0)
            #expect(EtherCAT.workingCounter(seen[1], in: UnsafeRawBufferPointer(raw)) == 0)
        }
    }

    @Test func malformedFramesAreNamed() {
        func parse(_ bytes: [UInt8]) -> EtherCAT.FrameError? {
            bytes.withUnsafeBytes { EtherCAT.forEachDatagram(in: $0) { _ in } }
        }
        #expect(parse([0x0C]) == .tooShort(1))
        #expect(parse([0x0C, 0x20] + [UInt8](repeating: 0, count: 12)) == .notDatagrams(type: 2))
        #expect(parse([0x40, 0x10] + [UInt8](repeating: 0, count: 12)) == .lengthMismatch(header: 64, actual: 12))
        // A datagram claiming 100 data bytes in a 12-byte frame.
        #expect(parse([0x0C, 0x10, 0x01, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0]) == .truncatedDatagram(at: 2))
        #expect(parse([0x0C, 0x10, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) == .unknownCommand(0x42))
    }

    @Test func cia402StateMachineReachesOperationEnabledAndBack() {
        var s = CiA402.State.notReadyToSwitchOn
        var previous: UInt16 = 0
        var steps = 0
        // The host's controlword helper drives the device's transition table.
        while s != .operationEnabled, steps < 10 {
            let cw = CiA402.controlword(toward: true, statusword: CiA402.statusword(s), previous: previous, resetFaults: false)
            s = CiA402.transition(s, controlword: cw, previous: previous)
            previous = cw
            steps += 1
        }
        #expect(s == .operationEnabled)
        #expect(steps <= 4)
        #expect(CiA402.state(statusword: CiA402.statusword(.operationEnabled)) == .operationEnabled)
        let off = CiA402.controlword(toward: false, statusword: CiA402.statusword(s), previous: previous, resetFaults: false)
        #expect(off == CiA402.Command.shutdown)
        #expect(CiA402.transition(s, controlword: off, previous: previous) == .readyToSwitchOn)
        #expect(CiA402.transition(.operationEnabled, controlword: CiA402.Command.quickStop, previous: 0x0F) == .quickStopActive)
        #expect(CiA402.transition(.operationEnabled, controlword: CiA402.Command.disableVoltage, previous: 0x0F) == .switchOnDisabled)
    }

    @Test func faultsResetOnlyOnARisingEdgeAndOnlyWhenAsked() {
        #expect(CiA402.transition(.fault, controlword: 0x80, previous: 0x80) == .fault)
        #expect(CiA402.transition(.fault, controlword: 0x80, previous: 0x00) == .switchOnDisabled)
        let sw = CiA402.statusword(.fault)
        #expect(CiA402.controlword(toward: true, statusword: sw, previous: 0, resetFaults: false) == 0)
        #expect(CiA402.controlword(toward: true, statusword: sw, previous: 0, resetFaults: true) == 0x80)
        #expect(CiA402.controlword(toward: true, statusword: sw, previous: 0x80, resetFaults: true) == 0, "bit 7 must drop before the next edge")
    }

    @Test func statuswordsDecodeAsTheProfileDefines() {
        let cases: [(UInt16, CiA402.State)] = [
            (0x0000, .notReadyToSwitchOn), (0x0040, .switchOnDisabled), (0x0021, .readyToSwitchOn), (0x0233, .switchedOn),
            (0x1237, .operationEnabled), (0x0007, .quickStopActive), (0x000F, .faultReactionActive), (0x0008, .fault), (0x0218, .fault),
        ]
        for (sw, s) in cases { #expect(CiA402.state(statusword: sw) == s, "statusword 0x\(String(sw, radix: 16))") }
    }
}
