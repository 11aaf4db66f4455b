import CDriveLinkReference
import Core
import Foundation
import Testing
@testable import Drivers

private let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex {
        let j = s.index(i, offsetBy: 2)
        out.append(UInt8(s[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// Swift-side helpers over the unsafe-buffer API.
enum Wire {
    static func encode(_ type: DriveLink.MessageType, seq: UInt16, _ payload: [UInt8]) -> [UInt8]? {
        var scratch = [UInt8](repeating: 0, count: DriveLink.maxFrame)
        var out = [UInt8](repeating: 0, count: DriveLink.maxWireFrame)
        let n = payload.withUnsafeBytes { p in
            scratch.withUnsafeMutableBytes { s in out.withUnsafeMutableBytes { o in DriveLink.encode(type: type, seq: seq, payload: p, scratch: s, into: o) } }
        }
        return n.map { Array(out.prefix($0)) }
    }

    /// Decodes a wire frame (delimiter included or not).
    static func decode(_ wire: [UInt8]) -> Result<(DriveLink.Frame, [UInt8]), DriveLinkError> {
        let body = wire.last == 0 ? Array(wire.dropLast()) : wire
        var scratch = [UInt8](repeating: 0, count: DriveLink.maxFrame + 8)
        let r = body.withUnsafeBytes { b in scratch.withUnsafeMutableBytes { DriveLink.decode(b, scratch: $0) } }
        return r.map { f in (f, Array(scratch[f.payloadOffset..<(f.payloadOffset + f.payloadCount)])) }
    }

    static func cobs(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: COBS.maxEncodedSize(data.count))
        let n = data.withUnsafeBytes { d in out.withUnsafeMutableBytes { COBS.encode(d, into: $0) } }!
        return Array(out.prefix(n))
    }

    static func uncobs(_ data: [UInt8]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: data.count + 1)
        let n = data.withUnsafeBytes { d in out.withUnsafeMutableBytes { COBS.decode(d, into: $0) } }
        return n.map { Array(out.prefix($0)) }
    }
}

/// The C reference's decoder, for cross-checks.
func referenceDecode(_ wire: [UInt8]) -> (dl_status, UInt8, UInt16, [UInt8]) {
    let body = wire.last == 0 ? Array(wire.dropLast()) : wire
    var scratch = [UInt8](repeating: 0, count: DriveLink.maxFrame)
    var frame = dl_frame()
    let status = scratch.withUnsafeMutableBufferPointer { s in dl_decode(body, body.count, s.baseAddress, s.count, &frame) }
    var payload: [UInt8] = []
    if status == DL_OK { payload = Array(UnsafeBufferPointer(start: frame.payload, count: Int(frame.length))) }
    return (status, frame.type, frame.seq, payload)
}

struct Vector: Decodable {
    var meaning: String
    var type: UInt8
    var seq: UInt16
    var payload: String
    var wire: String
}

@Suite struct DriveLinkTests {
    @Test func crc32cHasItsCheckValue() {
        let bytes = Array("123456789".utf8)
        #expect(bytes.withUnsafeBytes { CRC32C.checksum($0) } == 0xE306_9283)
        #expect(dl_crc32c(bytes, 9) == 0xE306_9283)
    }

    @Test func cobsMatchesTheCanonicalExamples() {
        let cases: [([UInt8], [UInt8])] = [
            ([0x00], [0x01, 0x01]),
            ([0x00, 0x00], [0x01, 0x01, 0x01]),
            ([0x11, 0x22, 0x00, 0x33], [0x03, 0x11, 0x22, 0x02, 0x33]),
            ([0x11, 0x22, 0x33, 0x44], [0x05, 0x11, 0x22, 0x33, 0x44]),
            ([0x11, 0x00, 0x00, 0x00], [0x02, 0x11, 0x01, 0x01, 0x01]),
            (Array(1...254), [0xFF] + Array(1...254)),
            (Array(1...255), [0xFF] + Array(1...254) + [0x02, 0xFF]),
        ]
        for (raw, encoded) in cases {
            #expect(Wire.cobs(raw) == encoded)
            #expect(Wire.uncobs(encoded) == raw)
        }
        #expect(Wire.uncobs([0x03, 0x11, 0x00]) == nil)
        #expect(Wire.uncobs([0x05, 0x11]) == nil)
    }

    @Test func specVectorsMatchSwiftAndTheCReference() throws {
        let data = try Data(contentsOf: repoRoot.appendingPathComponent("docs/drivelink-vectors.json"))
        let vectors = try JSONDecoder().decode([Vector].self, from: data)
        #expect(vectors.count >= 18)
        for v in vectors {
            let type = try #require(DriveLink.MessageType(rawValue: v.type))
            let payload = hex(v.payload), wire = hex(v.wire)
            #expect(Wire.encode(type, seq: v.seq, payload) == wire, "Swift encoding of: \(v.meaning)")
            let decoded = try Wire.decode(wire).get()
            #expect(decoded.0.type == type && decoded.0.seq == v.seq && decoded.1 == payload)

            var scratch = [UInt8](repeating: 0, count: DriveLink.maxFrame), out = [UInt8](repeating: 0, count: DriveLink.maxWireFrame)
            let n = dl_encode(v.type, v.seq, payload, UInt16(payload.count), &scratch, scratch.count, &out, out.count)
            #expect(Array(out.prefix(n)) == wire, "C encoding of: \(v.meaning)")
            let c = referenceDecode(wire)
            #expect(c.0 == DL_OK && c.1 == v.type && c.2 == v.seq && c.3 == payload)
        }
    }

    @Test func everySingleBitErrorIsRejected() throws {
        var cmd = [UInt8](repeating: 0, count: 4 + 8 * 6)
        for i in cmd.indices { cmd[i] = UInt8(truncatingIfNeeded: i &* 37) }
        cmd[0] = 1; cmd[1] = 1
        let wire = Array(try #require(Wire.encode(.command, seq: 500, cmd)).dropLast())
        for bit in 0..<(wire.count * 8) {
            var copy = wire
            copy[bit / 8] ^= 1 << UInt8(bit % 8)
            if case .success = Wire.decode(copy) { Issue.record("bit \(bit) flipped and the frame still decoded") }
            #expect(referenceDecode(copy).0 != DL_OK)
        }
    }

    @Test func malformedFramesGetNamedErrors() throws {
        #expect(throws: DriveLinkError.badEncoding) { try Wire.decode([0x05, 0x11]).get() }
        #expect(throws: DriveLinkError.tooShort(got: 3)) { try Wire.decode(Wire.cobs([1, 2, 3])).get() }
        #expect(throws: DriveLinkError.tooLong(got: 600)) { try Wire.decode([UInt8](repeating: 1, count: 600)).get() }
        func framed(_ body: [UInt8]) -> [UInt8] {
            let crc = body.withUnsafeBytes { CRC32C.checksum($0) }
            return Wire.cobs(body + withUnsafeBytes(of: crc.littleEndian, Array.init))
        }
        #expect(throws: DriveLinkError.unsupportedVersion(2)) { try Wire.decode(framed([2, 0x03, 0, 0, 0, 0])).get() }
        #expect(throws: DriveLinkError.unknownType(0x42)) { try Wire.decode(framed([1, 0x42, 0, 0, 0, 0])).get() }
        #expect(throws: DriveLinkError.lengthMismatch(declared: 5, actual: 0)) { try Wire.decode(framed([1, 0x03, 0, 0, 5, 0])).get() }
        var good = try #require(Wire.encode(.heartbeat, seq: 1, []))
        good[3] ^= 0x10
        guard case .failure(.crcMismatch) = Wire.decode(good) else { Issue.record("expected a CRC mismatch"); return }
        #expect(Wire.encode(.state, seq: 0, [UInt8](repeating: 0, count: 241)) == nil)
    }

    @Test func randomBitErrorsNeverYieldAWrongFrame() {
        // 20,000 frames at a bit-error rate of 1e-3: every frame either decodes to exactly what
        // was sent or is rejected.
        var rng = SplitMix64(seed: 2024)
        var rejected = 0, intact = 0
        for k in 0..<20_000 {
            let n = Int(rng.next() % 64)
            let payload = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var wire = Wire.encode(.command, seq: UInt16(truncatingIfNeeded: k), payload)!.dropLast().map { $0 }
            var flipped = false
            for bit in 0..<(wire.count * 8) where rng.unit() < 1e-3 {
                wire[bit / 8] ^= 1 << UInt8(bit % 8)
                flipped = true
            }
            switch Wire.decode(wire) {
            case .success(let (f, p)):
                #expect(f.seq == UInt16(truncatingIfNeeded: k) && p == payload, "a corrupted frame decoded to something else")
                if !flipped { intact += 1 }
            case .failure:
                rejected += 1
                #expect(flipped)
            }
        }
        #expect(rejected > 1000)
        #expect(intact + rejected == 20_000)
    }

    @Test func sequenceNumbersCompareAcrossTheWrap() {
        #expect(DriveLink.isNewer(1, than: 0))
        #expect(DriveLink.isNewer(0, than: 0xFFFF))
        #expect(!DriveLink.isNewer(5, than: 5))
        #expect(!DriveLink.isNewer(4, than: 5))
        #expect(!DriveLink.isNewer(0x8005, than: 5))
        for (a, b) in [(UInt16(3), UInt16(2)), (0, 65535), (100, 200), (7, 7)] {
            #expect(DriveLink.isNewer(a, than: b) == (dl_seq_newer(a, b) == 1))
        }
    }

    @Test func assemblerSplitsStreamsAtDelimitersWhateverTheChunking() throws {
        let frames = try (0..<20).map { i in try #require(Wire.encode(.heartbeat, seq: UInt16(i), [])) }
        let stream = frames.flatMap { $0 }
        for chunk in [1, 2, 3, 7, 64, stream.count] {
            var assembler = FrameAssembler()
            var seen: [UInt16] = []
            var i = 0
            while i < stream.count {
                let part = Array(stream[i..<min(stream.count, i + chunk)])
                for b in part {
                    if let frame = assembler.push(b), case .success(let (f, _)) = Wire.decode(Array(frame)) { seen.append(f.seq) }
                }
                i += chunk
            }
            #expect(seen == (0..<20).map(UInt16.init))
        }
        // A run longer than the buffer is dropped whole and counted; the next frame still comes through.
        var assembler = FrameAssembler(capacity: 32)
        var got = 0
        let junk = [UInt8](repeating: 0x11, count: 100) + [0] + frames[0]
        for b in junk where assembler.push(b) != nil { got += 1 }
        #expect(got == 1)
        #expect(assembler.oversized == 1)
    }
}

@Suite struct DriveLinkReferenceSessionTests {
    /// A host (Swift codec) talking to the C reference device in memory.
    final class Session {
        var device = dl_device()
        var seq: UInt16 = 0
        init(axes: UInt8) { dl_device_init(&device, axes, 20_000, "ref-test") }

        func send(_ type: DriveLink.MessageType, _ payload: [UInt8], at now: UInt32) -> [(DriveLink.Frame, [UInt8])] {
            let wire = Wire.encode(type, seq: seq, payload)!
            seq &+= 1
            var out = [UInt8](repeating: 0, count: 4 * DriveLink.maxWireFrame)
            let n = dl_device_receive(&device, wire, wire.count, now, &out, out.count)
            return Self.split(Array(out.prefix(n)))
        }

        func poll(at now: UInt32) -> [(DriveLink.Frame, [UInt8])] {
            var out = [UInt8](repeating: 0, count: DriveLink.maxWireFrame)
            let n = dl_device_poll(&device, now, &out, out.count)
            return Self.split(Array(out.prefix(n)))
        }

        static func split(_ bytes: [UInt8]) -> [(DriveLink.Frame, [UInt8])] {
            bytes.split(separator: 0).compactMap { try? Wire.decode(Array($0)).get() }
        }
    }

    @Test func handshakeCommandAndStateRoundTripThroughTheReference() throws {
        let s = Session(axes: 2)
        let hello = [1, 1, 0, 0] + withUnsafeBytes(of: UInt32(1000).littleEndian, Array.init) + [0, 0, 0, 0]
        let ack = try #require(s.send(.hello, hello, at: 0).first)
        #expect(ack.0.type == .helloAck && ack.1[0] == 1 && ack.1[1] == 2)

        s.device.position.0 = 12_345
        s.device.position.1 = -777
        var command = JointCommand(jointCount: 2)
        command.mode = .position
        command.enable = true
        command.position = JointVector([10.0, -0.5])
        var image = [UInt8](repeating: 0, count: CyclicImage.commandSize(axes: 2))
        _ = image.withUnsafeMutableBytes { CyclicImage.encodeCommand(command, countsPerUnit: JointVector([1000, 10000]), into: $0) }
        let reply = try #require(s.send(.command, image, at: 1000).first)
        #expect(s.device.enabled == 1 && s.device.target_position.0 == 10_000 && s.device.target_position.1 == -5000)
        #expect(reply.0.type == .state)
        #expect(reply.1.count == 16 + 12 * 2)
        #expect(UInt16(reply.1[0]) | UInt16(reply.1[1]) << 8 == s.seq &- 1)
        var state = JointState(jointCount: 2)
        let err = Array(reply.1[4...]).withUnsafeBytes { CyclicImage.decodeState($0, countsPerUnit: JointVector([1000, 10000]), into: &state) }
        #expect(err == nil)
        #expect(state.position.array == [12.345, -0.0777])
        #expect(state.status.contains(.enabled))
    }

    @Test func theReferenceWatchdogDisablesWhenCommandsStop() throws {
        let s = Session(axes: 1)
        _ = s.send(.hello, [1, 1, 0, 0, 0xE8, 3, 0, 0, 0, 0, 0, 0], at: 0)
        _ = s.send(.command, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], at: 1000)
        #expect(s.device.enabled == 1)
        #expect(s.poll(at: 20_000).isEmpty)
        let fault = try #require(s.poll(at: 21_001).first)
        #expect(fault.0.type == .fault && fault.1[2] == 1)
        #expect(s.device.enabled == 0)
        // Duplicates are dropped: replaying the last command's seq changes nothing.
        s.seq &-= 1
        #expect(s.send(.command, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], at: 21_100).isEmpty)
        #expect(s.device.rx_stale == 1)
    }
}

/// The host reading the spec's fault vectors off a line: each one it must act on latches the
/// fault it names, and the cycle's read says `.driveFault` from then on.
@Suite struct DriveLinkHostFaultVectorTests {
    static func vectors() throws -> [String: [UInt8]] {
        let data = try Data(contentsOf: repoRoot.appendingPathComponent("docs/drivelink-vectors.json"))
        var byMeaning: [String: [UInt8]] = [:]
        for v in try JSONDecoder().decode([Vector].self, from: data) { byMeaning[v.meaning] = hex(v.wire) }
        return byMeaning
    }

    /// A 1- or 2-axis host on a pty whose device end the test writes into.
    func read(axes: Int, wires: [[UInt8]]) throws -> (HardwareFault?, DriveFaultReport?, DriveLinkStats) {
        let pty = try PseudoTerminal.openPair()
        defer { close(pty.deviceFD) }
        let spec = AxisSpec(name: "a", unit: .millimetre, lower: -1000, upper: 1000, maxVelocity: 100, countsPerUnit: 1000)
        var host = DriveLinkRobot(axes: Array(repeating: spec, count: axes), transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path))
        for w in wires { _ = w.withUnsafeBytes { write(pty.deviceFD, $0.baseAddress, $0.count) } }
        _ = host.waitReadable(timeout: 10_000_000_000)
        var state = JointState(jointCount: axes)
        let fault = host.read(into: &state, now: 0)
        return (fault, host.latchedFault, host.stats)
    }

    @Test func aFaultMessageLatchesItsAxisCodeAndDetail() throws {
        let v = try Self.vectors()
        let (fault, latched, stats) = try read(axes: 2, wires: [try #require(v["fault: axis 0, overcurrent, 4100 mA"])])
        #expect(fault == .driveFault)
        #expect(latched == DriveFaultReport(axis: 0, kind: .overcurrent, code: 2, detail: 4100))
        #expect(stats.faultsReported == 1)
    }

    @Test func theFirstFaultStaysLatched() throws {
        let v = try Self.vectors()
        let (_, latched, stats) = try read(axes: 2, wires: [try #require(v["fault: axis 0, overcurrent, 4100 mA"]),
                                                          try #require(v["fault: whole drive, hard limit, 123456 counts"])])
        #expect(latched?.kind == .overcurrent && stats.faultsReported == 2)
    }

    @Test func aFaultStatusBitOnOneAxisLatchesThatAxis() throws {
        let v = try Self.vectors()
        let (fault, latched, _) = try read(axes: 2, wires: [try #require(v["state, 2 axes, ack of seq 43: power off, axis 0 fault latched (bit 1), axis 1 clear"])])
        #expect(fault == .driveFault)
        #expect(latched?.axis == 0 && latched?.kind == .latched)
    }

    @Test func theWatchdogBitLatchesAWatchdogFault() throws {
        let v = try Self.vectors()
        let (fault, latched, _) = try read(axes: 1, wires: [try #require(v["state, 1 axis, ack of seq 44: power off, watchdog fault latched (bits 1 and 3)"])])
        #expect(fault == .driveFault)
        #expect(latched?.axis == nil && latched?.kind == .watchdog)
    }

    @Test func aCleanStateLatchesNothing() throws {
        let v = try Self.vectors()
        let (fault, latched, stats) = try read(axes: 1, wires: [try #require(v["state, 1 axis, ack of seq 42, t = 1 s, 1234 counts, 10 counts/s, 250 mA, enabled, force 150 mN"])])
        #expect(fault == nil && latched == nil && stats.statesReceived == 1)
    }
}
