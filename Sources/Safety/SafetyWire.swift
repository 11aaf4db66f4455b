import Core
import Drivers

/// The safety channel's datagrams (little-endian). Each ends in a counter u64 and a 16-byte
/// HMAC-SHA256 tag over every byte before the tag, then a CRC-32C of every byte before the CRC.
/// Spec, byte tables and threat model: docs/safety/channel.md.
///
/// - `LSD2` drive sample, drives → monitor, every drive cycle: sequence u32, sampled-at i64 ns,
///   axes u8, force f64 N, then per axis encoder f64, load sensor f64, velocity f64, current f64,
///   status u8 (bit 0 power on, bit 1 fault).
/// - `LSP2` permit, monitor → drives, every monitor cycle: sequence u32, permit u8, quick stop u8.
/// - `LHB3` heartbeat, control → monitor, every control cycle: sequence u64, sent-at i64 ns,
///   flags u8 (bit 0 following a position command with power, bit 1 image-guided, bit 2 an
///   image tip follows), image acquired-at i64 ns, image tip acquired-at i64 ns, image tip
///   x, y, z f64 mm (zeros without bit 2), lost frames u64, CRC errors u64, WKC errors u64,
///   axes u8, then per axis commanded position f64 and velocity f64.
/// - `LOP2` operator, console → monitor: deadman u8, acknowledge u8.
/// - `LMS1` status, monitor → control, when it changes and at least every 20 monitor cycles:
///   sequence u32, permit u8, quick stop
///   u8, stop category u8 (0, 1, 2; 255 none), latched checks u32, checks present u32 (bits of
///   `SafetyCheck.bit`, no undefined bit).
///
/// The decoders check every field's range before anything reads it: times in 0…`maxTime`,
/// readings finite and within ±`maxMagnitude`, booleans 0 or 1, no undefined flag bits, the
/// monitor's axis count. A datagram with any field out of range changes nothing.
public enum SafetyWire {
    public static let driveSampleMagic: UInt32 = 0x3244_534C  // "LSD2"
    public static let permitMagic: UInt32 = 0x3250_534C  // "LSP2"
    /// "LHB3": the image tip joined the heartbeat; an `LHB2` heartbeat is refused as invalid.
    public static let heartbeatMagic: UInt32 = 0x3342_484C  // "LHB3"
    public static let operatorMagic: UInt32 = 0x3250_4F4C  // "LOP2"
    public static let statusMagic: UInt32 = 0x3153_4D4C  // "LMS1"

    /// Bytes of the authentication tag: a truncated HMAC-SHA256 (see docs/safety/channel.md).
    public static var tagLength: Int { 16 }
    /// Counter, tag and CRC at the end of every datagram.
    public static var trailerSize: Int { 8 + tagLength + 4 }
    /// Latest time a datagram may carry (ns, about 146 years of CLOCK_MONOTONIC): far beyond
    /// any uptime, and small enough that the difference of two such times cannot overflow.
    public static var maxTime: Nanoseconds { 1 << 62 }
    /// Largest magnitude of a reading or command (mm, rad, mm/s, A, N): beyond any catheter
    /// robot by orders of magnitude, and small enough that squares and sums stay finite.
    public static var maxMagnitude: Double { 1e9 }

    public static func driveSampleSize(axes: Int) -> Int { 4 + 4 + 8 + 1 + 8 + axes * 33 + trailerSize }
    public static var permitSize: Int { 4 + 4 + 1 + 1 + trailerSize }
    public static func heartbeatSize(axes: Int) -> Int { 4 + 8 + 8 + 1 + 8 + 32 + 24 + 1 + axes * 16 + trailerSize }
    public static var operatorSize: Int { 4 + 1 + 1 + trailerSize }
    public static var statusSize: Int { 4 + 4 + 1 + 1 + 1 + 4 + 4 + trailerSize }
    /// Large enough for any datagram of up to `JointVector.capacity` axes.
    public static var maxSize: Int { max(driveSampleSize(axes: JointVector.capacity), heartbeatSize(axes: JointVector.capacity)) }

    public enum Kind: Sendable, Equatable { case driveSample, permit, heartbeat, operatorInput, status, invalid }

    /// What `bytes` is, after checking its length and CRC.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public static func classify(_ bytes: UnsafeRawBufferPointer) -> Kind {
        if bytes.count < operatorSize { return .invalid }
        let body = UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 4)])
        if CRC32C.checksum(body) != UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self)) { return .invalid }
        let magic = UInt32(littleEndian: bytes.loadUnaligned(as: UInt32.self))
        if magic == driveSampleMagic {
            if bytes.count < 17 { return .invalid }
            let axes = Int(bytes[16])
            return axes <= JointVector.capacity && bytes.count == driveSampleSize(axes: axes) ? .driveSample : .invalid
        }
        if magic == heartbeatMagic {
            if bytes.count < 86 { return .invalid }
            let axes = Int(bytes[85])
            return axes <= JointVector.capacity && bytes.count == heartbeatSize(axes: axes) ? .heartbeat : .invalid
        }
        if magic == permitMagic { return bytes.count == permitSize ? .permit : .invalid }
        if magic == operatorMagic { return bytes.count == operatorSize ? .operatorInput : .invalid }
        if magic == statusMagic { return bytes.count == statusSize ? .status : .invalid }
        return .invalid
    }

    /// Whether the tag of a classified datagram is the key's HMAC of the bytes before it. The
    /// comparison takes the same time wherever the tags differ.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public static func authenticate(_ bytes: UnsafeRawBufferPointer, key: ChannelKey) -> Bool {
        if bytes.count < trailerSize + 4 { return false }
        let tagAt = bytes.count - 4 - tagLength
        let mac = key.mac(UnsafeRawBufferPointer(rebasing: bytes[0..<tagAt]))
        var difference: UInt8 = 0
        for i in 0..<tagLength { difference |= mac[i] ^ bytes[tagAt + i] }
        return difference == 0
    }

    /// The sender's counter of a classified datagram.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public static func counter(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        if bytes.count < trailerSize { return 0 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - trailerSize, as: UInt64.self))
    }

    /// A time field within 0…`maxTime`.
    @_noAllocation @_noLocks @inline(__always)
    static func validTime(_ t: Nanoseconds) -> Bool { t >= 0 && t <= maxTime }

    /// A reading within ±`maxMagnitude` (NaN fails the comparison).
    @_noAllocation @_noLocks @inline(__always)
    static func validReading(_ x: Double) -> Bool { abs(x) <= maxMagnitude }

    // MARK: Writer / reader

    /// Appends little-endian fields to a preallocated buffer.
    public struct Writer {
        public let buffer: UnsafeMutableRawBufferPointer
        public private(set) var count = 0
        @_noAllocation @_noLocks
        public init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }
        @_noAllocation @_noLocks
        public mutating func put(_ v: UInt8) {
            buffer.storeBytes(of: v, toByteOffset: count, as: UInt8.self)
            count += 1
        }
        @_noAllocation @_noLocks
        public mutating func put(_ v: UInt32) {
            buffer.storeBytes(of: v.littleEndian, toByteOffset: count, as: UInt32.self)
            count += 4
        }
        @_noAllocation @_noLocks
        public mutating func put(_ v: UInt64) {
            buffer.storeBytes(of: v.littleEndian, toByteOffset: count, as: UInt64.self)
            count += 8
        }
        @_noAllocation @_noLocks
        public mutating func put(_ v: Int64) { put(UInt64(bitPattern: v)) }
        @_noAllocation @_noLocks
        public mutating func put(_ v: Double) { put(v.bitPattern) }
        /// Appends the counter, the tag over everything so far and the CRC; returns the
        /// datagram's length.
        @_noAllocation @_noLocks
        public mutating func seal(counter: UInt64, key: ChannelKey) -> Int {
            put(counter)
            let mac = key.mac(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            for i in 0..<SafetyWire.tagLength { put(mac[i]) }
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            put(crc)
            return count
        }
    }

    /// Reads little-endian fields in order.
    public struct Reader {
        public let bytes: UnsafeRawBufferPointer
        public private(set) var offset: Int
        @_noAllocation @_noLocks
        public init(_ bytes: UnsafeRawBufferPointer, skippingMagic: Bool = true) {
            self.bytes = bytes
            offset = skippingMagic ? 4 : 0
        }
        /// A reader at `offset`, to read fields again after checking them.
        @_noAllocation @_noLocks
        public init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
            self.bytes = bytes
            self.offset = offset
        }
        @_noAllocation @_noLocks
        public mutating func u8() -> UInt8 {
            let v = bytes[offset]
            offset += 1
            return v
        }
        @_noAllocation @_noLocks
        public mutating func u32() -> UInt32 {
            let v = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            offset += 4
            return v
        }
        @_noAllocation @_noLocks
        public mutating func u64() -> UInt64 {
            let v = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset += 8
            return v
        }
        @_noAllocation @_noLocks
        public mutating func i64() -> Int64 { Int64(bitPattern: u64()) }
        @_noAllocation @_noLocks
        public mutating func double() -> Double { Double(bitPattern: u64()) }
    }

    // MARK: Messages

    /// Encodes a drive sample into `buffer`; returns its length.
    @_noAllocation @_noLocks
    public static func encodeDriveSample(sequence: UInt32, sampledAt: Nanoseconds, force: Double, encoder: JointVector, load: JointVector,
                                         velocity: JointVector, current: JointVector, status: UnsafePointer<UInt8>,
                                         counter: UInt64, key: ChannelKey, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var w = Writer(buffer)
        w.put(driveSampleMagic)
        w.put(sequence)
        w.put(sampledAt)
        w.put(UInt8(encoder.count))
        w.put(force)
        for i in 0..<encoder.count {
            w.put(encoder[i]); w.put(load[i]); w.put(velocity[i]); w.put(current[i])
            w.put(status[i])
        }
        return w.seal(counter: counter, key: key)
    }

    /// Copies a drive sample into the monitor's inputs (its length is checked here too). Returns false, changing
    /// nothing, when its axis count is not the monitor's or a field is out of range.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public static func decodeDriveSample(_ bytes: UnsafeRawBufferPointer, into inputs: inout MonitorInputs) -> Bool {
        if bytes.count < driveSampleSize(axes: 0) { return false }
        var r = Reader(bytes)
        _ = r.u32()
        let sampledAt = r.i64()
        let axes = Int(r.u8())
        if axes != inputs.position.count || bytes.count != driveSampleSize(axes: axes) || !validTime(sampledAt) { return false }
        let force = r.double()
        if !validReading(force) { return false }
        let first = r.offset
        for _ in 0..<axes {
            for _ in 0..<4 where !validReading(r.double()) { return false }
            if r.u8() & ~3 != 0 { return false }
        }
        r = Reader(bytes, at: first)
        inputs.sampledAt = sampledAt
        inputs.insertionForce = force
        for i in 0..<axes {
            inputs.encoderPosition[i] = r.double()
            inputs.position[i] = r.double()
            inputs.velocity[i] = r.double()
            inputs.current[i] = r.double()
            _ = r.u8()
        }
        return true
    }

    @_noAllocation @_noLocks
    public static func encodePermit(sequence: UInt32, permit: Bool, quickStop: Bool, counter: UInt64, key: ChannelKey,
                                    into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var w = Writer(buffer)
        w.put(permitMagic)
        w.put(sequence)
        w.put(UInt8(permit ? 1 : 0))
        w.put(UInt8(quickStop ? 1 : 0))
        return w.seal(counter: counter, key: key)
    }

    /// (sequence, permit, quick stop) of a permit datagram; nil when a flag is
    /// neither 0 nor 1.
    @_noAllocation @_noLocks
    public static func decodePermit(_ bytes: UnsafeRawBufferPointer) -> (sequence: UInt32, permit: Bool, quickStop: Bool)? {
        if bytes.count != permitSize { return nil }
        var r = Reader(bytes)
        let s = r.u32()
        let p = r.u8()
        let q = r.u8()
        if p > 1 || q > 1 { return nil }
        return (s, p == 1, q == 1)
    }

    @_noAllocation @_noLocks
    public static func encodeHeartbeat(sequence: UInt64, sentAt: Nanoseconds, following: Bool, imageGuided: Bool, imageAcquiredAt: Nanoseconds,
                                       lostFrames: UInt64, crcErrors: UInt64, wkcErrors: UInt64,
                                       position: JointVector, velocity: JointVector, imageTip: Vec3 = .zero, imageTipAcquiredAt: Nanoseconds = 0,
                                       counter: UInt64, key: ChannelKey, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var w = Writer(buffer)
        w.put(heartbeatMagic)
        w.put(sequence)
        w.put(sentAt)
        let hasTip = imageTipAcquiredAt > 0
        w.put(UInt8((following ? 1 : 0) | (imageGuided ? 2 : 0) | (hasTip ? 4 : 0)))
        w.put(imageAcquiredAt)
        w.put(hasTip ? imageTipAcquiredAt : 0)
        w.put(hasTip ? imageTip.x : 0); w.put(hasTip ? imageTip.y : 0); w.put(hasTip ? imageTip.z : 0)
        w.put(lostFrames); w.put(crcErrors); w.put(wkcErrors)
        w.put(UInt8(position.count))
        for i in 0..<position.count {
            w.put(position[i]); w.put(velocity[i])
        }
        return w.seal(counter: counter, key: key)
    }

    /// Copies a heartbeat into the monitor's inputs (its length is checked here too). Returns false, changing
    /// nothing, when its axis count is not the monitor's or a field is out of range. The link
    /// counters may take any value: the monitor only compares them.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public static func decodeHeartbeat(_ bytes: UnsafeRawBufferPointer, into inputs: inout MonitorInputs) -> Bool {
        if bytes.count < heartbeatSize(axes: 0) { return false }
        var r = Reader(bytes)
        let sequence = r.u64()
        let sentAt = r.i64()
        let flags = r.u8()
        let image = r.i64()
        let tipAt = r.i64()
        let tx = r.double(), ty = r.double(), tz = r.double()
        let lost = r.u64(), crc = r.u64(), wkc = r.u64()
        let axes = Int(r.u8())
        if axes != inputs.commandedPosition.count || bytes.count != heartbeatSize(axes: axes) { return false }
        if !validTime(sentAt) || !validTime(image) || !validTime(tipAt) || flags & ~7 != 0 { return false }
        if !validReading(tx) || !validReading(ty) || !validReading(tz) { return false }
        // Without its flag the tip must be all zeros, and with it its time must be set: one meaning per byte.
        let hasTip = flags & 4 != 0
        if hasTip ? tipAt == 0 : (tipAt != 0 || tx != 0 || ty != 0 || tz != 0) { return false }
        let first = r.offset
        for _ in 0..<(2 * axes) where !validReading(r.double()) { return false }
        r = Reader(bytes, at: first)
        inputs.heartbeatSequence = sequence
        inputs.heartbeatSentAt = sentAt
        inputs.commandActive = flags & 1 != 0
        inputs.imageGuided = flags & 2 != 0
        inputs.imageAcquiredAt = image
        inputs.imageTipAcquiredAt = hasTip ? tipAt : 0
        inputs.imageTip = hasTip ? Vec3(tx, ty, tz) : .zero
        inputs.lostFrames = lost
        inputs.crcErrors = crc
        inputs.wkcErrors = wkc
        for i in 0..<axes {
            inputs.commandedPosition[i] = r.double()
            inputs.commandedVelocity[i] = r.double()
        }
        return true
    }

    @_noAllocation @_noLocks
    public static func encodeOperator(deadman: Bool, acknowledge: Bool, counter: UInt64, key: ChannelKey,
                                      into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var w = Writer(buffer)
        w.put(operatorMagic)
        w.put(UInt8(deadman ? 1 : 0))
        w.put(UInt8(acknowledge ? 1 : 0))
        return w.seal(counter: counter, key: key)
    }

    /// Copies an operator datagram into the monitor's inputs. Returns false,
    /// changing nothing, when a button is neither 0 nor 1.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public static func decodeOperator(_ bytes: UnsafeRawBufferPointer, into inputs: inout MonitorInputs) -> Bool {
        if bytes.count != operatorSize { return false }
        var r = Reader(bytes)
        let deadman = r.u8(), acknowledge = r.u8()
        if deadman > 1 || acknowledge > 1 { return false }
        inputs.deadman = deadman == 1
        inputs.acknowledge = acknowledge == 1
        return true
    }

    /// Encodes the monitor's status for the control process; returns its length.
    @_noAllocation @_noLocks
    public static func encodeStatus(sequence: UInt32, _ status: MonitorStatus, counter: UInt64, key: ChannelKey,
                                    into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var w = Writer(buffer)
        w.put(statusMagic)
        w.put(sequence)
        w.put(UInt8(status.permit ? 1 : 0))
        w.put(UInt8(status.quickStop ? 1 : 0))
        var category: UInt8 = 255
        switch status.category {
        case .zero?: category = 0
        case .one?: category = 1
        case .two?: category = 2
        case nil: break
        }
        w.put(category)
        w.put(status.latched)
        w.put(status.active)
        return w.seal(counter: counter, key: key)
    }

    /// The status in a status datagram (its length checked here too); nil when a flag is not 0
    /// or 1, the category not 0, 1, 2 or 255, or a check bit undefined.
    @_noAllocation @_noLocks
    public static func decodeStatus(_ bytes: UnsafeRawBufferPointer) -> (sequence: UInt32, status: MonitorStatus)? {
        if bytes.count != statusSize { return nil }
        var r = Reader(bytes)
        let sequence = r.u32()
        let p = r.u8(), q = r.u8(), c = r.u8()
        let latched = r.u32(), active = r.u32()
        if p > 1 || q > 1 { return nil }
        let category: StopCategory?
        switch c {
        case 0: category = .zero
        case 1: category = .one
        case 2: category = .two
        case 255: category = nil
        default: return nil
        }
        let defined = SafetyCheck.definedBits
        if latched & ~defined != 0 || active & ~defined != 0 { return nil }
        return (sequence, MonitorStatus(permit: p == 1, quickStop: q == 1, category: category, latched: latched, active: active))
    }
}

/// What the monitor tells the control process when it changes and at least every 20 cycles (`LMS1`): whether it permits power,
/// whether the drives must make a controlled stop, the stop category in effect and which checks
/// are latched and present. The control's console and stop reporting take it from here, not from
/// the monitor's log; it grants nothing (the drives' permits do).
public struct MonitorStatus: Sendable, Equatable {
    public var permit: Bool
    public var quickStop: Bool
    public var category: StopCategory?
    /// Bits of `SafetyCheck.bit`.
    public var latched: UInt32
    public var active: UInt32

    @_noAllocation @_noLocks
    public init(permit: Bool, quickStop: Bool, category: StopCategory?, latched: UInt32, active: UInt32) {
        self.permit = permit
        self.quickStop = quickStop
        self.category = category
        self.latched = latched
        self.active = active
    }

    /// The status a verdict gives.
    @_noAllocation @_noLocks
    public init(_ verdict: Verdict) {
        self.init(permit: verdict.permit, quickStop: verdict.controlledStop, category: verdict.category,
                  latched: verdict.latched, active: verdict.active)
    }

    /// Field by field (the synthesized `==` is not usable in the monitor's cycle).
    @_noAllocation @_noLocks
    public func same(as other: MonitorStatus) -> Bool {
        var sameCategory: Bool
        switch (category, other.category) {
        case (nil, nil), (.zero?, .zero?), (.one?, .one?), (.two?, .two?): sameCategory = true
        default: sameCategory = false
        }
        if permit != other.permit || quickStop != other.quickStop { sameCategory = false }
        return sameCategory && latched == other.latched && active == other.active
    }

    /// Whether a stop the operator must acknowledge is latched: a check whose stop latches
    /// (every one but the deadman's).
    public var stopLatches: Bool { @_noAllocation @_noLocks get { latched & ~SafetyCheck.selfClearing != 0 } }
}
