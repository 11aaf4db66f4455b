import Core
/// Why a DriveLink frame was rejected. Trivial payloads only, so the cycle can return one.
public enum DriveLinkError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not valid COBS (a zero inside, a block running past the end).
    case badEncoding
    /// Shorter than a header and a CRC.
    case tooShort(got: Int)
    /// Longer than the largest frame this side accepts.
    case tooLong(got: Int)
    /// The CRC-32C over header and payload does not match.
    case crcMismatch(expected: UInt32, got: UInt32)
    /// A protocol version this side does not speak.
    case unsupportedVersion(UInt8)
    /// A message type this side does not know.
    case unknownType(UInt8)
    /// The header's payload length disagrees with the frame's size.
    case lengthMismatch(declared: Int, actual: Int)
    /// The payload has the wrong size for its message type.
    case payloadSize(type: UInt8, expected: Int, got: Int)
    /// Not newer than the last accepted frame (a duplicate or a reordered frame).
    case staleSequence(seq: UInt16, last: UInt16)

    public var description: String {
        switch self {
        case .badEncoding: "frame is not valid COBS"
        case .tooShort(let n): "frame of \(n) bytes is shorter than header + CRC (10)"
        case .tooLong(let n): "frame of \(n) bytes exceeds the maximum"
        case .crcMismatch(let e, let g): String(format: "CRC-32C mismatch: frame says 0x%08X, computed 0x%08X", e, g)
        case .unsupportedVersion(let v): "unsupported protocol version \(v)"
        case .unknownType(let t): String(format: "unknown message type 0x%02X", t)
        case .lengthMismatch(let d, let a): "header declares \(d) payload bytes, frame carries \(a)"
        case .payloadSize(let t, let e, let g): String(format: "message 0x%02X needs %d payload bytes, got %d", t, e, g)
        case .staleSequence(let s, let l): "sequence \(s) is not newer than \(l) (duplicate or reordered)"
        }
    }
}

import Foundation

/// DriveLink framing (see docs/protocol.md): a 6-byte header — version, type, sequence (u16 LE),
/// payload length (u16 LE) — the payload, and a CRC-32C (u32 LE) over header and payload; the
/// whole COBS-encoded and ended by 0x00.
public enum DriveLink {
    /// The protocol version this implementation speaks.
    public static let version: UInt8 = 1
    public static let headerSize = 6
    public static let crcSize = 4
    /// The largest payload: 8 axes of state plus its header fit with room to spare.
    public static let maxPayload = 240
    /// The largest unencoded frame.
    public static let maxFrame = headerSize + maxPayload + crcSize
    /// The largest frame on the wire, delimiter included.
    public static let maxWireFrame = COBS.maxEncodedSize(maxFrame) + 1
    /// How long the host waits for the reply to a set-up message (HELLO, PARAM_*, the first
    /// COMMAND, FAULT_RESET), and how often it tries HELLO (docs/protocol.md, *Timing rules*).
    public static let replyDeadline: Nanoseconds = 200_000_000
    public static let helloTries = 3
    /// COMMANDs a slow line may still owe a STATE for before the host counts them lost (the
    /// answers of the last two cycles): a STATE a cycle late is the host's or the drive's
    /// scheduling, not the link losing frames.
    @inlinable public static var lateAnswers: Int { 2 }
    /// How long a drive may take to confirm its power stage on (STATE status bit 0) after the
    /// host asked for it; longer is a fault (docs/protocol.md, *Host reaction*).
    public static let powerUpTime: Nanoseconds = 100_000_000

    public enum MessageType: UInt8, Sendable, CaseIterable {
        case hello = 0x01, helloAck = 0x81
        case command = 0x02, state = 0x82
        case heartbeat = 0x03, heartbeatAck = 0x83
        case enable = 0x04, enableAck = 0x84
        case fault = 0x85
        case paramRead = 0x06, paramWrite = 0x07, paramValue = 0x86
        case faultReset = 0x08, faultResetAck = 0x88
    }

    /// A decoded frame: its header, and where its payload sits in the caller's scratch buffer.
    public struct Frame: Equatable, Sendable {
        public var type: MessageType
        public var seq: UInt16
        public var payloadOffset: Int
        public var payloadCount: Int
        @inlinable public init(type: MessageType, seq: UInt16, payloadOffset: Int, payloadCount: Int) {
            self.type = type; self.seq = seq; self.payloadOffset = payloadOffset; self.payloadCount = payloadCount
        }
    }

    /// Builds a frame — header, payload, CRC — in `scratch`, COBS-encodes it into `out` and
    /// appends the 0x00 delimiter. Returns the bytes written, or nil when a buffer is too small
    /// or the payload exceeds `maxPayload`.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public static func encode(type: MessageType, seq: UInt16, payload: UnsafeRawBufferPointer,
                                         scratch: UnsafeMutableRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int? {
        let n = payload.count
        if n > 240 { return nil }
        let total = 6 + n + 4
        if scratch.count < total { return nil }
        scratch[0] = 1
        scratch[1] = type.rawValue
        scratch.storeBytes(of: seq.littleEndian, toByteOffset: 2, as: UInt16.self)
        scratch.storeBytes(of: UInt16(n).littleEndian, toByteOffset: 4, as: UInt16.self)
        for i in 0..<n { scratch[6 + i] = payload[i] }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: scratch[0..<(6 + n)]))
        scratch.storeBytes(of: crc.littleEndian, toByteOffset: 6 + n, as: UInt32.self)
        if out.count < 1 { return nil }
        guard let encoded = COBS.encode(UnsafeRawBufferPointer(rebasing: scratch[0..<total]),
                                        into: UnsafeMutableRawBufferPointer(rebasing: out[0..<(out.count - 1)])) else { return nil }
        out[encoded] = 0
        return encoded + 1
    }

    /// Decodes one COBS frame (without its delimiter) into `scratch` and checks it.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public static func decode(_ encoded: UnsafeRawBufferPointer,
                                         scratch: UnsafeMutableRawBufferPointer) -> Result<Frame, DriveLinkError> {
        if encoded.count > COBS.maxEncodedSize(6 + 240 + 4) { return .failure(.tooLong(got: encoded.count)) }
        guard let n = COBS.decode(encoded, into: scratch) else { return .failure(.badEncoding) }
        if n < 10 { return .failure(.tooShort(got: n)) }
        let expected = UInt32(littleEndian: scratch.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self))
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: scratch[0..<(n - 4)]))
        if expected != computed { return .failure(.crcMismatch(expected: expected, got: computed)) }
        if scratch[0] != 1 { return .failure(.unsupportedVersion(scratch[0])) }
        guard let type = MessageType(rawValue: scratch[1]) else { return .failure(.unknownType(scratch[1])) }
        let seq = UInt16(littleEndian: scratch.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        let declared = Int(UInt16(littleEndian: scratch.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        if declared != n - 10 { return .failure(.lengthMismatch(declared: declared, actual: n - 10)) }
        return .success(Frame(type: type, seq: seq, payloadOffset: 6, payloadCount: declared))
    }

    /// True when `seq` is newer than `last` in 16-bit serial-number arithmetic (RFC 1982):
    /// within half the sequence space ahead.
    @_noAllocation @_noLocks
    @inlinable public static func isNewer(_ seq: UInt16, than last: UInt16) -> Bool {
        let d = seq &- last
        return d != 0 && d < 0x8000
    }
}

/// Splits a byte stream into frames at 0x00 delimiters, into a buffer sized once. A frame that
/// would overflow the buffer is dropped up to its delimiter and counted, never truncated.
public struct FrameAssembler: ~Copyable {
    @usableFromInline let buffer: UnsafeMutableRawBufferPointer
    @usableFromInline var count = 0
    @usableFromInline var discarding = false
    @usableFromInline var _oversized = 0
    /// Frames dropped for being longer than the buffer.
    public var oversized: Int { _oversized }

    public init(capacity: Int = DriveLink.maxWireFrame) {
        buffer = .allocate(byteCount: capacity, alignment: 8)
    }

    deinit { buffer.deallocate() }

    /// Takes one byte; returns the completed frame (without its delimiter) when `byte` ends one.
    /// The frame is valid until the next call.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public mutating func push(_ byte: UInt8) -> UnsafeRawBufferPointer? {
        if byte == 0 {
            let complete = !discarding ? count : 0
            count = 0
            discarding = false
            if complete > 0 { return UnsafeRawBufferPointer(rebasing: buffer[0..<complete]) }
            return nil
        }
        if discarding { return nil }
        if count == buffer.count {
            discarding = true
            _oversized += 1
            count = 0
            return nil
        }
        buffer[count] = byte
        count += 1
        return nil
    }
}
