import Core
import Foundation
import Testing
@testable import Safety

/// The monitor's status to the control process (`LMS1`): its wire format, who may send it, and
/// the monitor process sending it every cycle on a real socket.
@Suite(.serialized) struct MonitorStatusTests {
    static func status(_ s: MonitorStatus, counter: UInt64, key: ChannelKey = Fixture.key) -> [UInt8] {
        Forge.bytes { SafetyWire.encodeStatus(sequence: 7, s, counter: counter, key: key, into: $0) }
    }

    static let stopped = MonitorStatus(permit: false, quickStop: true, category: .one,
                                       latched: SafetyCheck.force.bit | SafetyCheck.deadman.bit, active: SafetyCheck.force.bit)

    @Test func aStatusRoundTripsAndEveryFieldOutOfRangeIsRefused() throws {
        let d = Self.status(Self.stopped, counter: 5)
        #expect(d.count == SafetyWire.statusSize)
        let kind = d.withUnsafeBytes { SafetyWire.classify($0) }
        #expect(kind == .status)
        let decoded = d.withUnsafeBytes { SafetyWire.decodeStatus($0) }
        #expect(decoded?.sequence == 7)
        #expect(decoded?.status == Self.stopped)
        let none = MonitorStatus(permit: true, quickStop: false, category: nil, latched: 0, active: 0)
        let running = Self.status(none, counter: 6).withUnsafeBytes { SafetyWire.decodeStatus($0)?.status }
        #expect(running == none)
        // permit, quick stop, category, latched, present: each out of range in turn.
        for (offset, value) in [(8, UInt32(2)), (9, UInt32(2)), (10, UInt32(3)), (11, UInt32(1) << 20), (15, UInt32(1) << 31)] {
            var bad = d
            if offset <= 10 { bad[offset] = UInt8(value) } else { Forge.patch(&bad, at: offset, value.littleEndian) }
            Forge.reseal(&bad)
            let refused = bad.withUnsafeBytes { SafetyWire.decodeStatus($0) }
            #expect(refused == nil, "field at \(offset) = \(value) was taken")
        }
        #expect(SafetyWire.decodeStatus(UnsafeRawBufferPointer(start: nil, count: 0)) == nil)
    }

    @Test func aStatusIsTheSameOnlyWhenEveryFieldIs() {
        let s = Self.stopped
        #expect(s.same(as: s))
        var other = s
        other.category = .zero
        #expect(!s.same(as: other))
        other = s
        other.latched |= SafetyCheck.heartbeat.bit
        #expect(!s.same(as: other))
        other = s
        other.permit = true
        #expect(!s.same(as: other))
        other = s
        other.category = nil
        #expect(!s.same(as: other))
    }

    @Test func everyCheckHasABitInTheDefinedMask() {
        let all = SafetyCheck.allCases.reduce(UInt32(0)) { $0 | $1.bit }
        #expect(SafetyCheck.definedBits == all)
        #expect(Self.stopped.stopLatches)
        #expect(!MonitorStatus(permit: false, quickStop: true, category: .two, latched: SafetyCheck.deadman.bit, active: 0).stopLatches,
                "the deadman's stop is not one to acknowledge")
    }

    @Test func theMonitorTakesNoStatusAndTheControlTakesItOnlyFromTheMonitorWithTheKeyAndOnce() throws {
        // The monitor's own gate: a status is not for it, whoever sends it.
        var monitorGate = ChannelGate(policy: try ChannelPolicy(key: Fixture.key), floor: 1)
        let d = Self.status(Self.stopped, counter: 10)
        let atMonitor = d.withUnsafeBytes { monitorGate.admit($0, uid: geteuid(), hasCredentials: true) }
        #expect(atMonitor == .invalid)
        var gate = StatusGate(key: Fixture.key, monitorUIDs: UIDSet([geteuid()])!)
        func take(_ d: [UInt8], uid: UInt32 = geteuid(), credentials: Bool = true) -> MonitorStatus? {
            d.withUnsafeBytes { gate.admit($0, uid: uid, hasCredentials: credentials) }
        }
        #expect(take(d, uid: geteuid() &+ 1) == nil, "another user's status")
        #expect(take(d, credentials: false) == nil, "a status without credentials")
        #expect(take(Self.status(Self.stopped, counter: 11, key: ChannelKey(secret: [UInt8](repeating: 9, count: 32)))) == nil, "a forged tag")
        #expect(take(Forge.permit(true, counter: 12)) == nil, "a permit is not a status")
        #expect(take(d) == Self.stopped)
        #expect(take(d) == nil, "a replayed status")
        var corrupt = Self.status(Self.stopped, counter: 13)
        corrupt[12] ^= 0x40
        #expect(take(corrupt) == nil, "a corrupt status")
    }

    @Test func theMonitorProcessSendsItsStatusEveryCycleToTheControlSocket() throws {
        let dir = "/tmp/lumen-status-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let monitor = try MonitorProcess(model: try Fixture.model(), listen: dir + "/m.sock", drives: dir + "/d.sock",
                                         status: dir + "/s.sock", policy: try ChannelPolicy(key: Fixture.key))
        let control = try DatagramSocket(bindTo: dir + "/s.sock", passCredentials: true)
        // Sent when it changes and at least every 20 cycles: 45 cycles send 3 or more (the
        // first, then at least at cycles 21 and 41), never one per cycle.
        for k in 0..<45 { _ = monitor.cycle(now: Nanoseconds(1_000_000_000 + k * 1_000_000)) }
        let sent = monitor.statusesSent
        #expect(sent >= 3 && sent < 45, "\(sent) statuses in 45 cycles")
        var gate = StatusGate(key: Fixture.key, monitorUIDs: UIDSet([geteuid()])!)
        let receiver = CredentialReceiver()
        defer { receiver.deallocate() }
        let rx = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { rx.deallocate() }
        var statuses: [MonitorStatus] = []
        while true {
            let got = receiver.receive(control.fd, into: rx)
            if got.count <= 0 { break }
            if let s = gate.admit(UnsafeRawBufferPointer(rebasing: rx[0..<got.count]), uid: got.uid, hasCredentials: got.hasCredentials) {
                statuses.append(s)
            }
        }
        #expect(Int64(statuses.count) == sent)
        // Fresh from start-up: nothing permitted, the start-up latch held until an acknowledge.
        let last = try #require(statuses.last)
        #expect(!last.permit)
        #expect(last.latched & SafetyCheck.startup.bit != 0)
        #expect(last.category != nil)
        // Without a control socket the monitor runs on and counts what it could not send.
        let lonely = try MonitorProcess(model: try Fixture.model(), listen: dir + "/m2.sock", drives: dir + "/d.sock",
                                        status: dir + "/nobody.sock", policy: try ChannelPolicy(key: Fixture.key))
        _ = lonely.cycle(now: 1_000_000_000)
        #expect(lonely.statusSendFailures == 1)
    }
}
