// libFuzzer target for the safety monitor's channel: the gate (credentials, HMAC tag, replay
// counter), the classifier, every decoder and the rule engine on what they let through, as the
// monitor's cycle runs them; the drives' permit gate and the control's status gate. Any input must leave the monitor
// running: no trap, no out-of-bounds read, no allocation growth; a refused datagram changes
// nothing, and nothing the gate refuses reaches the rule engine.
//
// Input: byte 0 picks the role and how the rest is used; the rest is a datagram. With bit 0
// set the harness seals it (counter, tag and CRC over the fuzzed body) as a sender holding the
// key would, so the fuzzer reaches the decoders and the rule engine past the tag; otherwise
// the bytes go in as they are, as from a sender without the key.
#if canImport(Glibc)
import Glibc
#endif

// The rule engine's maths, as Core provides it to the monitor (Core's C shim is not linked here).
@_noAllocation @_noLocks @inlinable @inline(__always) public func cosine(_ x: Double) -> Double { _unsafePerformance { cos(x) } }
@_noAllocation @_noLocks @inlinable @inline(__always) public func sine(_ x: Double) -> Double { _unsafePerformance { sin(x) } }
@_noAllocation @_noLocks @inlinable @inline(__always) public func squareRootOf(_ x: Double) -> Double { _unsafePerformance { x.squareRoot() } }

/// The example limits' model (safety/lumen-2s-limits.yaml), built from plain values.
/// With `alongLumen`, the lumen check on length and image tip (docs/safety/tip-evidence.md).
func exampleModel(alongLumen: Bool = false) -> MonitorModel {
    let n = 6
    func joints(_ v: [Double]) -> JointVector { JointVector(v) }
    var categories = InlineArray<16, UInt8>(repeating: 1)
    categories[Int(SafetyCheck.startup.rawValue)] = 0
    var corridor = InlineArray<32, SIMD4<Double>>(repeating: .zero)
    corridor[0] = SIMD4(0, 0, -10, 20); corridor[1] = SIMD4(0, 0, 200, 20); corridor[2] = SIMD4(0, 0, 450, 20)
    var noGo = InlineArray<8, SIMD4<Double>>(repeating: .zero)
    noGo[0] = SIMD4(-8, -15, 153, 3)
    var arc = InlineArray<32, Double>(repeating: 0)
    arc[1] = 210; arc[2] = 460
    let geometry = TipGeometry(sectionCount: 2, base: Pose(rotation: .identity, translation: Vec3(0, 0, 0)),
                               sectionLength: SIMD2(30, 15), tendonRadius: SIMD2(0.9, 0.8), tipLength: 5, tipMargin: 1, imageTipMargin: 0,
                               corridor: corridor, corridorCount: 3, noGo: noGo, noGoCount: 1,
                               alongLumen: alongLumen, distalLength: 50, corridorLength: 460, corridorSlack: 0,
                               corridorArc: arc, corridorShortcut: InlineArray(repeating: 0))
    return MonitorModel(jointCount: n, period: 1_000_000,
                        lower: joints([5, -3.15, -1.45, -1.45, -1.3, -1.3]), upper: joints([390, 3.15, 1.45, 1.45, 1.3, 1.3]),
                        maxVelocity: joints([22, 1.65, 4.4, 4.4, 4.4, 4.4]), maxCurrent: joints([1.5, 1.5, 1.5, 1.5, 1.5, 1.5]),
                        maxTrackingError: joints([1, 0.3, 0.2, 0.2, 0.2, 0.2]), maxEncoderMismatch: joints([0.02, 0.01, 0.02, 0.02, 0.02, 0.02]),
                        stopDeceleration: joints([90, 6.75, 18, 18, 18, 18]), heartbeatTimeout: 5_000_000, maxInsertionForce: 1.5,
                        imageMaxAge: 200_000_000, maxConsecutiveLost: 3, lostBurst: 5, lostLeak: 0.001, crcBurst: 3, crcLeak: 0.001,
                        wkcBurst: 3, wkcLeak: 0.001, stopMaxTime: 300_000_000, standstillFraction: 0.02, categories: categories,
                        geometry: geometry)
}

let model = exampleModel()
let alongModel = exampleModel(alongLumen: true)
nonisolated(unsafe) var alongState = MonitorState(model: alongModel)
let key = ChannelKey(secret: (0..<32).map { UInt8($0) })
let ownUID: UInt32 = 1000
let policy = try! ChannelPolicy(key: key, drives: [ownUID], control: [ownUID], operatorConsole: [ownUID])
nonisolated(unsafe) var gate = ChannelGate(policy: policy, floor: 1)
nonisolated(unsafe) var permits = PermitGate(key: key, monitorUIDs: UIDSet([ownUID])!)
nonisolated(unsafe) var statuses = StatusGate(key: key, monitorUIDs: UIDSet([ownUID])!)
nonisolated(unsafe) var state = MonitorState(model: model)
nonisolated(unsafe) var inputs = MonitorInputs(jointCount: 6)
nonisolated(unsafe) var now: Nanoseconds = 1_000_000_000
nonisolated(unsafe) var counter: UInt64 = 1
let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    if size < 1 { return 0 }
    let mode = data[0]
    let length = size - 1
    if length > 4000 { return 0 }
    scratch.copyMemory(from: UnsafeRawBufferPointer(start: data + 1, count: length))
    if mode & 1 != 0, length >= SafetyWire.trailerSize {
        // Seal as the key's holder would: a fresh counter (or the fuzzed one, bit 3), the tag, the CRC.
        let at = length - SafetyWire.trailerSize
        counter &+= 1
        if mode & 8 == 0 { scratch.storeBytes(of: counter.littleEndian, toByteOffset: at, as: UInt64.self) }
        let tag = key.mac(UnsafeRawBufferPointer(rebasing: scratch[0..<(at + 8)]))
        for i in 0..<SafetyWire.tagLength { scratch[at + 8 + i] = tag[i] }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: scratch[0..<(length - 4)]))
        scratch.storeBytes(of: crc.littleEndian, toByteOffset: length - 4, as: UInt32.self)
    }
    let datagram = UnsafeRawBufferPointer(rebasing: scratch[0..<length])
    // Who sent it: the configured user, another one, or no credentials at all.
    let uid: UInt32 = mode & 2 != 0 ? ownUID : 65534
    let credentials = mode & 4 == 0

    let before = inputs
    var taken = false
    switch gate.admit(datagram, uid: uid, hasCredentials: credentials) {
    case .driveSample: taken = SafetyWire.decodeDriveSample(datagram, into: &inputs)
    case .heartbeat: taken = SafetyWire.decodeHeartbeat(datagram, into: &inputs)
    case .operatorInput: taken = SafetyWire.decodeOperator(datagram, into: &inputs)
    case .rejectedCredentials, .rejectedTag, .rejectedReplay, .invalid: break
    }
    if !taken { precondition(inputs == before, "a refused datagram changed the monitor's inputs") }
    precondition(uid == ownUID && credentials || !taken, "a datagram from the wrong user was taken")

    // Every decoder on the raw bytes too, into a scratch copy: none may read out of bounds or trap.
    var probe = inputs
    _ = SafetyWire.classify(datagram)
    _ = SafetyWire.decodeDriveSample(datagram, into: &probe)
    _ = SafetyWire.decodeHeartbeat(datagram, into: &probe)
    _ = SafetyWire.decodeOperator(datagram, into: &probe)
    _ = SafetyWire.decodePermit(datagram)
    if let s = SafetyWire.decodeStatus(datagram) {
        precondition(s.status.latched & ~SafetyCheck.definedBits == 0 && s.status.active & ~SafetyCheck.definedBits == 0,
                     "a status with an undefined check bit was decoded")
    }
    _ = SafetyWire.counter(datagram)
    _ = permits.admit(datagram, uid: uid, hasCredentials: credentials)
    if statuses.admit(datagram, uid: uid, hasCredentials: credentials) != nil {
        precondition(uid == ownUID && credentials, "a status from the wrong user was taken")
    }

    now += model.period
    inputs.now = now
    _ = Monitor.step(model, &state, inputs)
    _ = Monitor.step(alongModel, &alongState, inputs)
    return 0
}
