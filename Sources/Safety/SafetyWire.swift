import Core
import Drivers

/// The safety channel's datagrams (little-endian, each ending in a CRC-32C of all bytes before
/// it). Spec: docs/safety/channel.md.
///
/// - `LSD1` drive sample, drives → monitor, every drive cycle: sequence u32, sampled-at i64 ns,
///   axes u8, force f64 N, then per axis encoder f64, load sensor f64, velocity f64, current f64,
///   status u8 (bit 0 power on, bit 1 fault).
/// - `LSP1` permit, monitor → drives, every monitor cycle: sequence u32, permit u8, quick stop u8.
/// - `LHB1` heartbeat, control → monitor, every control cycle: sequence u64, sent-at i64 ns,
///   flags u8 (bit 0 following a position command with power, bit 1 image-guided), image
///   acquired-at i64 ns, lost frames u64, CRC errors u64, WKC errors u64, axes u8, then per
///   axis commanded position f64 and velocity f64.
/// - `LOP1` operator, console → monitor: deadman u8, acknowledge u8.
public enum SafetyWire {
    public static let driveSampleMagic: UInt32 = 0x3144_534C  // "LSD1"
    public static let permitMagic: UInt32 = 0x3150_534C  // "LSP1"
    public static let heartbeatMagic: UInt32 = 0x3142_484C  // "LHB1"
    public static let operatorMagic: UInt32 = 0x3150_4F4C  // "LOP1"

    public static func driveSampleSize(axes: Int) -> Int { 4 + 4 + 8 + 1 + 8 + axes * 33 + 4 }
    public static let permitSize = 4 + 4 + 1 + 1 + 4
    public static func heartbeatSize(axes: Int) -> Int { 4 + 8 + 8 + 1 + 8 + 24 + 1 + axes * 16 + 4 }
    public static let operatorSize = 4 + 1 + 1 + 4
    /// Large enough for any datagram of up to `JointVector.capacity` axes.
    public static var maxSize: Int { max(driveSampleSize(axes: JointVector.capacity), heartbeatSize(axes: JointVector.capacity)) }

    public enum Kind: Sendable, Equatable { case driveSample, permit, heartbeat, operatorInput, invalid }

    /// What `bytes` is, after checking its length and CRC.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public static func classify(_ bytes: UnsafeRawBufferPointer) -> Kind {
        if bytes.count < 8 { return .invalid }
        let body = UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 4)])
        if CRC32C.checksum(body) != UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self)) { return .invalid }
        let magic = UInt32(littleEndian: bytes.loadUnaligned(as: UInt32.self))
        if magic == driveSampleMagic {
            if bytes.count < 17 { return .invalid }
            let axes = Int(bytes[16])
            return axes <= JointVector.capacity && bytes.count == driveSampleSize(axes: axes) ? .driveSample : .invalid
        }
        if magic == heartbeatMagic {
            if bytes.count < 58 { return .invalid }
            let axes = Int(bytes[53])
            return axes <= JointVector.capacity && bytes.count == heartbeatSize(axes: axes) ? .heartbeat : .invalid
        }
        if magic == permitMagic { return bytes.count == permitSize ? .permit : .invalid }
        if magic == operatorMagic { return bytes.count == operatorSize ? .operatorInput : .invalid }
        return .invalid
    }

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
        /// Appends the CRC of everything so far; returns the datagram's length.
        @_noAllocation @_noLocks
        public mutating func finish() -> Int {
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
                                         into buffer: UnsafeMutableRawBufferPointer) -> Int {
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
        return w.finish()
    }

    /// Copies a checked drive sample into the monitor's inputs. Returns false when its axis
    /// count does not match the monitor's.
    @_noAllocation @_noLocks
    public static func decodeDriveSample(_ bytes: UnsafeRawBufferPointer, into inputs: inout MonitorInputs) -> Bool {
        var r = Reader(bytes)
        _ = r.u32()
        let sampledAt = r.i64()
        let axes = Int(r.u8())
        if axes != inputs.position.count { return false }
        inputs.sampledAt = sampledAt
        inputs.insertionForce = r.double()
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
    public static func encodePermit(sequence: UInt32, permit: Bool, quickStop: Bool, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var w = Writer(buffer)
        w.put(permitMagic)
        w.put(sequence)
        w.put(UInt8(permit ? 1 : 0))
        w.put(UInt8(quickStop ? 1 : 0))
        return w.finish()
    }

    /// (sequence, permit, quick stop) of a checked permit datagram.
    @_noAllocation @_noLocks
    public static func decodePermit(_ bytes: UnsafeRawBufferPointer) -> (sequence: UInt32, permit: Bool, quickStop: Bool) {
        var r = Reader(bytes)
        let s = r.u32()
        let p = r.u8()
        let q = r.u8()
        return (s, p == 1, q != 0)
    }

    @_noAllocation @_noLocks
    public static func encodeHeartbeat(sequence: UInt64, sentAt: Nanoseconds, following: Bool, imageGuided: Bool, imageAcquiredAt: Nanoseconds,
                                       lostFrames: UInt64, crcErrors: UInt64, wkcErrors: UInt64,
                                       position: JointVector, velocity: JointVector, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var w = Writer(buffer)
        w.put(heartbeatMagic)
        w.put(sequence)
        w.put(sentAt)
        w.put(UInt8((following ? 1 : 0) | (imageGuided ? 2 : 0)))
        w.put(imageAcquiredAt)
        w.put(lostFrames); w.put(crcErrors); w.put(wkcErrors)
        w.put(UInt8(position.count))
        for i in 0..<position.count {
            w.put(position[i]); w.put(velocity[i])
        }
        return w.finish()
    }

    @_noAllocation @_noLocks
    public static func decodeHeartbeat(_ bytes: UnsafeRawBufferPointer, into inputs: inout MonitorInputs) -> Bool {
        var r = Reader(bytes)
        let sequence = r.u64()
        let sentAt = r.i64()
        let flags = r.u8()
        let image = r.i64()
        let lost = r.u64(), crc = r.u64(), wkc = r.u64()
        let axes = Int(r.u8())
        if axes != inputs.commandedPosition.count { return false }
        inputs.heartbeatSequence = sequence
        inputs.heartbeatSentAt = sentAt
        inputs.commandActive = flags & 1 != 0
        inputs.imageGuided = flags & 2 != 0
        inputs.imageAcquiredAt = image
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
    public static func encodeOperator(deadman: Bool, acknowledge: Bool, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var w = Writer(buffer)
        w.put(operatorMagic)
        w.put(UInt8(deadman ? 1 : 0))
        w.put(UInt8(acknowledge ? 1 : 0))
        return w.finish()
    }

    @_noAllocation @_noLocks
    public static func decodeOperator(_ bytes: UnsafeRawBufferPointer, into inputs: inout MonitorInputs) {
        var r = Reader(bytes)
        inputs.deadman = r.u8() == 1
        inputs.acknowledge = r.u8() == 1
    }
}
