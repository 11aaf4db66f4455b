import CAllocCount
import Core
import Drivers
import Foundation
import Testing
@testable import Safety

/// Builds channel datagrams for the tests, sealed with a key and a counter of their choosing.
enum Forge {
    static let axes = 6

    static func bytes(_ body: (UnsafeMutableRawBufferPointer) -> Int) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: SafetyWire.maxSize + 64)
        let n = b.withUnsafeMutableBytes(body)
        return Array(b[0..<n])
    }

    static func sample(sampledAt: Nanoseconds, counter: UInt64, key: ChannelKey = Fixture.key, position: JointVector = Fixture.start) -> [UInt8] {
        let zeros = JointVector(count: axes)
        let status = [UInt8](repeating: 1, count: axes)
        return bytes { b in
            status.withUnsafeBufferPointer {
                SafetyWire.encodeDriveSample(sequence: 1, sampledAt: sampledAt, force: 0.2, encoder: position, load: position, velocity: zeros,
                                             current: zeros, status: $0.baseAddress!, counter: counter, key: key, into: b)
            }
        }
    }

    static func heartbeat(sequence: UInt64, sentAt: Nanoseconds, imageAt: Nanoseconds = 0, imageGuided: Bool = false, counter: UInt64,
                          key: ChannelKey = Fixture.key) -> [UInt8] {
        let zeros = JointVector(count: axes)
        return bytes {
            SafetyWire.encodeHeartbeat(sequence: sequence, sentAt: sentAt, following: false, imageGuided: imageGuided, imageAcquiredAt: imageAt,
                                       lostFrames: 0, crcErrors: 0, wkcErrors: 0, position: Fixture.start, velocity: zeros,
                                       counter: counter, key: key, into: $0)
        }
    }

    static func operatorInput(deadman: Bool, acknowledge: Bool, counter: UInt64, key: ChannelKey = Fixture.key) -> [UInt8] {
        bytes { SafetyWire.encodeOperator(deadman: deadman, acknowledge: acknowledge, counter: counter, key: key, into: $0) }
    }

    static func permit(_ permit: Bool, counter: UInt64, key: ChannelKey = Fixture.key) -> [UInt8] {
        bytes { SafetyWire.encodePermit(sequence: 1, permit: permit, quickStop: false, counter: counter, key: key, into: $0) }
    }

    /// Recomputes tag and CRC after a field was patched, as a sender holding the key would.
    static func reseal(_ d: inout [UInt8], key: ChannelKey = Fixture.key) {
        let tagAt = d.count - 4 - SafetyWire.tagLength
        let mac = d.withUnsafeBytes { key.mac(UnsafeRawBufferPointer(rebasing: $0[0..<tagAt])) }
        for i in 0..<SafetyWire.tagLength { d[tagAt + i] = mac[i] }
        let crc = d.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<(d.count - 4)])) }
        withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { d[d.count - 4 + i] = $0[i] } }
    }

    static func patch<T>(_ d: inout [UInt8], at offset: Int, _ value: T) {
        withUnsafeBytes(of: value) { raw in for i in 0..<raw.count { d[offset + i] = raw[i] } }
    }
}

/// HMAC-SHA256 of the channel against RFC 4231's test vectors (cases 1-4, 6, 7; case 5 is a
/// truncated tag of case-style input and adds nothing here).
@Suite struct ChannelKeyTests {
    func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    func mac(_ key: [UInt8], _ data: [UInt8]) -> String {
        let d = data.withUnsafeBytes { ChannelKey(secret: key).mac($0) }
        return (0..<32).map { String(format: "%02x", d[$0]) }.joined()
    }

    @Test func hmacMatchesRFC4231() {
        #expect(mac([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8))
            == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(mac(Array("Jefe".utf8), Array("what do ya want for nothing?".utf8))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(mac([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50))
            == "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe")
        #expect(mac(hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), [UInt8](repeating: 0xcd, count: 50))
            == "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b")
        #expect(mac([UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
            == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        #expect(mac([UInt8](repeating: 0xaa, count: 131),
                    Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8))
            == "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2")
    }

    @Test func keyFilesThatOthersCouldReadOrThatAreShortAreRefused() throws {
        let dir = NSTemporaryDirectory() + "lumen-key-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = try Fixture.writeKey(in: dir)
        #expect(throws: Never.self) { _ = try ChannelKey.load(from: good) }
        let open = dir + "/open.key"
        _ = FileManager.default.createFile(atPath: open, contents: Data(Fixture.keyBytes), attributes: [.posixPermissions: 0o640])
        #expect { _ = try ChannelKey.load(from: open) } throws: { ($0 as? ChannelKey.LoadError).map { if case .readableByOthers = $0 { true } else { false } } ?? false }
        let short = dir + "/short.key"
        _ = FileManager.default.createFile(atPath: short, contents: Data(Fixture.keyBytes.prefix(31)), attributes: [.posixPermissions: 0o600])
        #expect(throws: ChannelKey.LoadError.wrongLength(path: short, bytes: 31)) { _ = try ChannelKey.load(from: short) }
        #expect { _ = try ChannelKey.load(from: dir + "/missing.key") } throws: { ($0 as? ChannelKey.LoadError).map { if case .unreadable = $0 { true } else { false } } ?? false }
        #expect(throws: ChannelKey.LoadError.notARegularFile(path: dir)) { _ = try ChannelKey.load(from: dir) }
        let link = dir + "/link.key"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: good)
        // A link is refused even to a good key: whoever can replace the link chooses the key.
        #expect(throws: ChannelKey.LoadError.notARegularFile(path: link)) { _ = try ChannelKey.load(from: link) }
        let long = dir + "/long.key"
        _ = FileManager.default.createFile(atPath: long, contents: Data(repeating: 1, count: ChannelKey.maximumLength + 1),
                                           attributes: [.posixPermissions: 0o600])
        #expect(throws: ChannelKey.LoadError.wrongLength(path: long, bytes: ChannelKey.maximumLength + 1)) { _ = try ChannelKey.load(from: long) }
        #expect(throws: ChannelKey.LoadError.unreadable(path: dir + "/missing.key", reason: "no such file")) {
            _ = try ChannelKey.load(from: dir + "/missing.key")
        }
    }
}

/// The compiler's proof that the channel's checks run allocation- and lock-free.
@_noAllocation @_noLocks
func admitProven(_ gate: inout ChannelGate, _ d: UnsafeRawBufferPointer, _ inputs: inout MonitorInputs) -> Bool {
    switch gate.admit(d, uid: 0, hasCredentials: true) {
    case .driveSample: SafetyWire.decodeDriveSample(d, into: &inputs)
    case .heartbeat: SafetyWire.decodeHeartbeat(d, into: &inputs)
    case .operatorInput: SafetyWire.decodeOperator(d, into: &inputs)
    default: false
    }
}

@Suite struct ChannelGateTests {
    func policy(drives: [UInt32] = [], control: [UInt32] = [], console: [UInt32] = []) throws -> ChannelPolicy {
        try ChannelPolicy(key: Fixture.key, drives: drives, control: control, operatorConsole: console)
    }

    func admit(_ gate: inout ChannelGate, _ d: [UInt8], uid: UInt32 = geteuid(), credentials: Bool = true) -> ChannelGate.Outcome {
        d.withUnsafeBytes { gate.admit($0, uid: uid, hasCredentials: credentials) }
    }

    @Test func eachKindIsTakenOnlyFromTheUsersOfItsRole() throws {
        var gate = ChannelGate(policy: try policy(drives: [1001], control: [1002], console: [1003, 1004]), floor: 1)
        let s = Forge.sample(sampledAt: 5, counter: 10), h = Forge.heartbeat(sequence: 1, sentAt: 5, counter: 10)
        let o = Forge.operatorInput(deadman: true, acknowledge: true, counter: 10)
        #expect(admit(&gate, s, uid: 1002) == .rejectedCredentials)
        #expect(admit(&gate, h, uid: 1001) == .rejectedCredentials)
        #expect(admit(&gate, o, uid: 1001) == .rejectedCredentials)
        #expect(admit(&gate, o, uid: 1003, credentials: false) == .rejectedCredentials)
        #expect(admit(&gate, s, uid: 1001) == .driveSample)
        #expect(admit(&gate, h, uid: 1002) == .heartbeat)
        #expect(admit(&gate, o, uid: 1004) == .operatorInput)
        // By default only the monitor's own user.
        var own = ChannelGate(policy: try policy(), floor: 1)
        #expect(admit(&own, o, uid: geteuid() &+ 1) == .rejectedCredentials)
        #expect(admit(&own, o) == .operatorInput)
    }

    @Test func aForgedTagIsRefused() throws {
        var gate = ChannelGate(policy: try policy(), floor: 1)
        let other = ChannelKey(secret: [UInt8](repeating: 0x42, count: 32))
        #expect(admit(&gate, Forge.operatorInput(deadman: true, acknowledge: true, counter: 5, key: other)) == .rejectedTag)
        // One flipped bit of the tag, CRC recomputed.
        var d = Forge.operatorInput(deadman: true, acknowledge: true, counter: 6)
        d[d.count - 5] ^= 0x01
        let crc = d.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<(d.count - 4)])) }
        Forge.patch(&d, at: d.count - 4, crc.littleEndian)
        #expect(admit(&gate, d) == .rejectedTag)
        // A changed field under the old tag (CRC recomputed).
        var e = Forge.operatorInput(deadman: true, acknowledge: false, counter: 7)
        e[5] = 1
        let crc2 = e.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<(e.count - 4)])) }
        Forge.patch(&e, at: e.count - 4, crc2.littleEndian)
        #expect(admit(&gate, e) == .rejectedTag)
        #expect(admit(&gate, Forge.operatorInput(deadman: true, acknowledge: true, counter: 8)) == .operatorInput)
    }

    @Test func aReplayedDeadmanOrAcknowledgeIsRefused() throws {
        var gate = ChannelGate(policy: try policy(), floor: 1000)
        let press = Forge.operatorInput(deadman: true, acknowledge: true, counter: 2000)
        let release = Forge.operatorInput(deadman: true, acknowledge: false, counter: 2001)
        #expect(admit(&gate, press) == .operatorInput)
        #expect(admit(&gate, release) == .operatorInput)
        #expect(admit(&gate, press) == .rejectedReplay)
        #expect(admit(&gate, release) == .rejectedReplay)
        // Recorded before the monitor started.
        #expect(admit(&gate, Forge.heartbeat(sequence: 1, sentAt: 5, counter: 999)) == .rejectedReplay)
        // Counters are per role: a heartbeat's does not consume the console's.
        #expect(admit(&gate, Forge.heartbeat(sequence: 1, sentAt: 5, counter: 1500)) == .heartbeat)
        #expect(admit(&gate, Forge.operatorInput(deadman: true, acknowledge: true, counter: 2002)) == .operatorInput)
    }

    @Test func permitsAreTakenOnlyFromTheMonitorWithTheKeyAndOnce() throws {
        var gate = PermitGate(key: Fixture.key, monitorUIDs: UIDSet([geteuid()])!)
        func take(_ d: [UInt8], uid: UInt32 = geteuid()) -> Bool? {
            d.withUnsafeBytes { gate.admit($0, uid: uid, hasCredentials: true) }?.permit
        }
        let p = Forge.permit(true, counter: 10)
        #expect(take(p, uid: geteuid() &+ 1) == nil)
        #expect(take(Forge.permit(true, counter: 11, key: ChannelKey(secret: [UInt8](repeating: 9, count: 32)))) == nil)
        #expect(take(p) == true)
        #expect(take(p) == nil, "a replayed permit refreshes nothing")
        var bad = Forge.permit(true, counter: 12)
        bad[8] = 2
        Forge.reseal(&bad)
        #expect(take(bad) == nil)
        #expect(take(Forge.permit(false, counter: 13)) == false)
    }

    @Test func checkingAndDecodingAllocateNothing() throws {
        try #require(lumen_alloc_count_is_active() == 1, "the allocation counter is not interposed in this process")
        var gate = ChannelGate(policy: try policy(), floor: 1)
        var inputs = MonitorInputs(jointCount: 6)
        let datagrams = (0..<300).map { k -> [UInt8] in
            let c = UInt64(10 + k)
            switch k % 4 {
            case 0: return Forge.sample(sampledAt: Int64(k + 1), counter: c)
            case 1: return Forge.heartbeat(sequence: UInt64(k), sentAt: Int64(k + 1), counter: c)
            case 2: return Forge.operatorInput(deadman: true, acknowledge: false, counter: c)
            default: return Forge.operatorInput(deadman: true, acknowledge: false, counter: 1)  // a replay
            }
        }
        // One flat buffer, so the measured loop itself touches no array.
        let flat = datagrams.flatMap { $0 }
        let ends = datagrams.reduce(into: [Int]()) { $0.append(($0.last ?? 0) + $1.count) }
        let all = UnsafeMutableRawBufferPointer.allocate(byteCount: flat.count, alignment: 8)
        defer { all.deallocate() }
        all.copyBytes(from: flat)
        var accepted = 0
        var start = 0
        lumen_alloc_count_begin()
        for k in 0..<ends.count {
            if admitProven(&gate, UnsafeRawBufferPointer(rebasing: all[start..<ends[k]]), &inputs) { accepted += 1 }
            start = ends[k]
        }
        let allocations = lumen_alloc_count_end()
        #expect(allocations == 0)
        #expect(accepted == 225)
    }
}

/// Every field of every datagram at the ends of its type's range, sealed with the right key as
/// a sender holding it would: nothing traps, a value out of the field's range is refused and
/// changes nothing, and a monitor fed such datagrams never permits power.
@Suite struct ChannelExtremeValueTests {
    enum FieldType { case u8, u32, u64, i64, f64 }

    struct Field {
        var name: String
        var offset: Int
        var type: FieldType
        /// Whether the decoder must take this value (nil: any value of the type).
        var valid: (@Sendable (UInt64) -> Bool)?
    }

    static let time: @Sendable (UInt64) -> Bool = { let t = Int64(bitPattern: $0); return t >= 0 && t <= SafetyWire.maxTime }
    static let reading: @Sendable (UInt64) -> Bool = { abs(Double(bitPattern: $0)) <= SafetyWire.maxMagnitude }
    static let twoBits: @Sendable (UInt64) -> Bool = { $0 & ~3 == 0 }
    static let boolean: @Sendable (UInt64) -> Bool = { $0 <= 1 }

    static func values(_ type: FieldType) -> [UInt64] {
        switch type {
        case .u8: return Array(0...255)
        case .u32: return [0, 1, 0x7fff_ffff, 0x8000_0000, UInt64(UInt32.max)]
        case .u64, .i64:
            let signed: [Int64] = [.min, .min + 1, -1, 0, 1, SafetyWire.maxTime, SafetyWire.maxTime + 1, .max]
            return signed.map { UInt64(bitPattern: $0) } + [UInt64.max]
        case .f64:
            let d: [Double] = [.nan, .signalingNaN, -.nan, .infinity, -.infinity, 1e308, -1e308, .greatestFiniteMagnitude,
                               -.greatestFiniteMagnitude, .leastNonzeroMagnitude, 0, -0.0, 1e9, 1e9.nextUp, -1e9.nextUp]
            return d.map(\.bitPattern)
        }
    }

    static var sampleFields: [Field] {
        var f = [Field(name: "sequence", offset: 4, type: .u32), Field(name: "sampled_at", offset: 8, type: .i64, valid: time),
                 Field(name: "axes", offset: 16, type: .u8, valid: { $0 == 6 }), Field(name: "force", offset: 17, type: .f64, valid: reading)]
        for k in [0, 5] {
            for (j, n) in ["encoder", "load", "velocity", "current"].enumerated() {
                f.append(Field(name: "\(n)[\(k)]", offset: 25 + 33 * k + 8 * j, type: .f64, valid: reading))
            }
            f.append(Field(name: "status[\(k)]", offset: 57 + 33 * k, type: .u8, valid: twoBits))
        }
        return f
    }

    static var heartbeatFields: [Field] {
        var f = [Field(name: "sequence", offset: 4, type: .u64), Field(name: "sent_at", offset: 12, type: .i64, valid: time),
                 // No image tip in these heartbeats: its flag (bit 2) without a time is refused, and its fields must stay zero.
                 Field(name: "flags", offset: 20, type: .u8, valid: twoBits), Field(name: "image_at", offset: 21, type: .i64, valid: time),
                 Field(name: "image_tip_at", offset: 29, type: .i64, valid: { $0 == 0 }),
                 Field(name: "image_tip_x", offset: 37, type: .f64, valid: { Double(bitPattern: $0) == 0 }),
                 Field(name: "image_tip_z", offset: 53, type: .f64, valid: { Double(bitPattern: $0) == 0 }),
                 Field(name: "lost", offset: 61, type: .u64), Field(name: "crc", offset: 69, type: .u64), Field(name: "wkc", offset: 77, type: .u64),
                 Field(name: "axes", offset: 85, type: .u8, valid: { $0 == 6 })]
        for k in [0, 5] {
            f.append(Field(name: "position[\(k)]", offset: 86 + 16 * k, type: .f64, valid: reading))
            f.append(Field(name: "velocity[\(k)]", offset: 94 + 16 * k, type: .f64, valid: reading))
        }
        return f
    }

    static var operatorFields: [Field] {
        [Field(name: "deadman", offset: 4, type: .u8, valid: boolean), Field(name: "acknowledge", offset: 5, type: .u8, valid: boolean)]
    }

    static func patched(_ base: [UInt8], _ field: Field, _ value: UInt64) -> [UInt8] {
        var d = base
        switch field.type {
        case .u8: d[field.offset] = UInt8(truncatingIfNeeded: value)
        case .u32: Forge.patch(&d, at: field.offset, UInt32(truncatingIfNeeded: value).littleEndian)
        case .u64, .i64, .f64: Forge.patch(&d, at: field.offset, value.littleEndian)
        }
        Forge.reseal(&d)
        return d
    }

    @Test func everyFieldAtItsExtremesNeverTrapsAndOutOfRangeChangesNothing() throws {
        let model = try Fixture.model()
        var bench = Bench(model)
        _ = bench.bringUp()
        let bases: [(String, [UInt8], [Field])] = [
            ("sample", Forge.sample(sampledAt: 1_000, counter: 1), Self.sampleFields),
            ("heartbeat", Forge.heartbeat(sequence: 1, sentAt: 1_000, imageAt: 900, imageGuided: true, counter: 1), Self.heartbeatFields),
            ("operator", Forge.operatorInput(deadman: true, acknowledge: false, counter: 1), Self.operatorFields),
        ]
        var counter: UInt64 = 10
        var gate = ChannelGate(policy: try ChannelPolicy(key: Fixture.key), floor: 1)
        var cases = 0, refused = 0
        for (kind, base, fields) in bases {
            for field in fields {
                for value in Self.values(field.type) {
                    var d = Self.patched(base, field, value)
                    counter += 1
                    Forge.patch(&d, at: d.count - SafetyWire.trailerSize, counter.littleEndian)
                    Forge.reseal(&d)
                    var inputs = Fixture.healthy(model, now: bench.now + model.period, sequence: bench.sequence + 1)
                    let before = inputs
                    let accepted = d.withUnsafeBytes { admitProven(&gate, $0, &inputs) }
                    let mustAccept = field.valid?(value) ?? true
                    #expect(accepted == mustAccept, "\(kind).\(field.name) = \(String(value, radix: 16))")
                    if !accepted {
                        refused += 1
                        #expect(inputs == before, "\(kind).\(field.name) = \(String(value, radix: 16)) changed the inputs")
                    }
                    // Whatever was taken goes through the rule engine.
                    inputs.now = bench.now + model.period
                    _ = Monitor.step(model, &bench.state, inputs)
                    bench.now += model.period
                    bench.sequence += 1
                    cases += 1
                }
            }
        }
        #expect(cases > 1000)
        #expect(refused > 500)
    }

    @Test func datagramsWithAFieldOutOfRangeNeverPowerAMonitor() throws {
        let model = try Fixture.model()
        var state = MonitorState(model: model)
        var inputs = MonitorInputs(jointCount: model.jointCount)
        var gate = ChannelGate(policy: try ChannelPolicy(key: Fixture.key), floor: 1)
        var counter: UInt64 = 10
        var now: Nanoseconds = 1_000_000_000
        var permits = 0
        let bases: [([UInt8], [Field])] = [
            (Forge.sample(sampledAt: 1_000, counter: 1), Self.sampleFields),
            (Forge.heartbeat(sequence: 1, sentAt: 1_000, counter: 1), Self.heartbeatFields),
            (Forge.operatorInput(deadman: true, acknowledge: true, counter: 1), Self.operatorFields),
        ]
        for (base, fields) in bases {
            for field in fields {
                guard let valid = field.valid else { continue }
                for value in Self.values(field.type) where !valid(value) {
                    var d = Self.patched(base, field, value)
                    counter += 1
                    Forge.patch(&d, at: d.count - SafetyWire.trailerSize, counter.littleEndian)
                    Forge.reseal(&d)
                    _ = d.withUnsafeBytes { admitProven(&gate, $0, &inputs) }
                    // The console presses acknowledge every other cycle, with a real edge.
                    inputs.deadman = true
                    inputs.acknowledge = counter % 2 == 0
                    now += model.period
                    inputs.now = now
                    if Monitor.step(model, &state, inputs).permit { permits += 1 }
                }
            }
        }
        #expect(permits == 0)
    }

    /// The rule engine itself, given raw times at the ends of Int64 (as the campaign or a
    /// future caller might), saturates instead of trapping; the reproductions of the crash.
    @Test func theRuleEngineNeverTrapsOnExtremeTimes() throws {
        let model = try Fixture.model()
        let extremes: [Nanoseconds] = [.min, .min + 1, -1, 0, 1, .max - 1, .max]
        // A heartbeat whose image time is Int64.min (it trapped in `now - imageAcquiredAt`).
        var bench = Bench(model)
        #expect(bench.bringUp().permit)
        bench.step { $0.imageAcquiredAt = .min }
        #expect(bench.state.isLatched(.imageStale))
        // Two heartbeats sent at Int64.min then Int64.max (it trapped in their difference).
        var b2 = Bench(model)
        _ = b2.bringUp()
        b2.step { $0.heartbeatSentAt = .min }
        b2.step { $0.heartbeatSentAt = .max }
        // Every time field, every extreme, in every order, from a powered and a stopping monitor.
        for a in extremes {
            for b in extremes {
                var bench = Bench(model)
                _ = bench.bringUp()
                bench.step { $0.heartbeatSentAt = a; $0.imageAcquiredAt = a; $0.sampledAt = a }
                bench.step { $0.heartbeatSentAt = b; $0.imageAcquiredAt = b; $0.sampledAt = b; $0.insertionForce = 99 }
                var inputs = Fixture.healthy(model, now: 0, sequence: 7)
                inputs.now = a
                inputs.imageAcquiredAt = b
                inputs.heartbeatSentAt = b
                _ = Monitor.step(model, &bench.state, inputs)
                inputs.now = b
                inputs.heartbeatSequence = 8
                _ = Monitor.step(model, &bench.state, inputs)
            }
        }
    }
}

@Suite struct ChannelCostTests {
    @Test func macCostIsPrinted() {
        let d = Forge.sample(sampledAt: 5, counter: 5)
        let key = Fixture.key
        let n = 2000
        func cpu() -> Int64 {
            var ts = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
            return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
        }
        let t0 = cpu()
        var x: UInt8 = 0
        d.withUnsafeBytes { b in for _ in 0..<n { x ^= key.mac(b)[0] } }
        let t1 = cpu()
        print(String(format: "mac of a %d-byte drive sample: %.1f µs (%d)", d.count, Double(t1 - t0) / Double(n) / 1e3, x))
    }
}

@Suite struct ChannelFuzzSeedTests {
    /// The fuzz target's seeds sent as a key holder would (`*-keyed`, key bytes 0…31) pass the
    /// gate and decode, so the fuzzer starts from datagrams that reach the rule engine; they
    /// go stale when the wire changes, and this says so.
    @Test func theKeyedSeedsAreValidDatagrams() throws {
        let dir = Fixture.root.appendingPathComponent("fuzz/corpus/safetychannel")
        let key = ChannelKey(secret: (0..<32).map { UInt8($0) })
        let policy = try ChannelPolicy(key: key)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix("-keyed") }.sorted()
        #expect(names.count == 6)
        for name in names {
            let seed = try Data(contentsOf: dir.appendingPathComponent(name))
            let datagram = [UInt8](seed.dropFirst())
            var gate = ChannelGate(policy: policy, floor: 1)
            var permits = PermitGate(key: key, monitorUIDs: UIDSet([geteuid()])!)
            var inputs = MonitorInputs(jointCount: 6)
            let outcome = datagram.withUnsafeBytes { gate.admit($0, uid: geteuid(), hasCredentials: true) }
            gate = ChannelGate(policy: policy, floor: 1)
            let taken = datagram.withUnsafeBytes { d -> Bool in
                switch gate.admit(d, uid: geteuid(), hasCredentials: true) {
                case .driveSample: return SafetyWire.decodeDriveSample(d, into: &inputs)
                case .heartbeat: return SafetyWire.decodeHeartbeat(d, into: &inputs)
                case .operatorInput: return SafetyWire.decodeOperator(d, into: &inputs)
                case .invalid: return permits.admit(d, uid: geteuid(), hasCredentials: true) != nil
                default: return false
                }
            }
            #expect(taken, "\(name): \(outcome)")
        }
    }
}
