/// EtherCAT frames and datagrams (IEC 61158-4-12): the bytes on the wire, built and parsed in
/// caller-owned buffers so the cycle can exchange process data without allocating.
///
/// Frame (after the Ethernet header, EtherType 0x88A4, or as a UDP payload on port 0x88A4):
///
///     EtherCAT header  u16 LE: length (11 bits) | reserved (1) | type (4 bits, 1 = datagrams)
///     datagram …       cmd u8, idx u8, address u32, len u16 (11 bits + circulating bit 14 +
///                      more-follows bit 15), irq u16, data[len], wkc u16
public enum EtherCAT {
    public static let etherType: UInt16 = 0x88A4
    public static let udpPort: UInt16 = 0x88A4
    public static let headerSize = 2
    public static let datagramOverhead = 12  // 10-byte header + 2-byte working counter
    /// The largest EtherCAT payload in one Ethernet frame (1500 − 2).
    public static let maxFrame = 1498

    /// Datagram commands.
    public enum Command: UInt8, Sendable, CaseIterable {
        case nop = 0
        case aprd = 1, apwr = 2, aprw = 3
        case fprd = 4, fpwr = 5, fprw = 6
        case brd = 7, bwr = 8, brw = 9
        case lrd = 10, lwr = 11, lrw = 12
        case armw = 13, frmw = 14

        public var reads: Bool { [.aprd, .aprw, .fprd, .fprw, .brd, .brw, .lrd, .lrw, .armw, .frmw].contains(self) }
        public var writes: Bool { [.apwr, .aprw, .fpwr, .fprw, .bwr, .brw, .lwr, .lrw, .armw, .frmw].contains(self) }
    }

    /// Why bytes are not a well-formed EtherCAT frame.
    public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
        case tooShort(Int)
        case notDatagrams(type: UInt8)
        case lengthMismatch(header: Int, actual: Int)
        case truncatedDatagram(at: Int)
        case unknownCommand(UInt8)

        public var description: String {
            switch self {
            case .tooShort(let n): "EtherCAT frame of \(n) bytes is too short"
            case .notDatagrams(let t): "EtherCAT frame type \(t) is not 1 (datagrams)"
            case .lengthMismatch(let h, let a): "EtherCAT header says \(h) bytes, datagrams take \(a)"
            case .truncatedDatagram(let o): "datagram at offset \(o) runs past the frame"
            case .unknownCommand(let c): "unknown datagram command \(c)"
            }
        }
    }

    /// One datagram inside a frame buffer.
    public struct Datagram: Sendable, Equatable {
        public var command: Command
        public var index: UInt8
        /// ADP (position or station address) in the low 16 bits and ADO (register) in the high
        /// 16, or a 32-bit logical address for LRD/LWR/LRW.
        public var address: UInt32
        /// Offset of the data in the frame buffer.
        public var dataOffset: Int
        public var dataCount: Int
        /// Offset of the working counter in the frame buffer.
        public var wkcOffset: Int

        public var adp: UInt16 { UInt16(truncatingIfNeeded: address) }
        public var ado: UInt16 { UInt16(truncatingIfNeeded: address >> 16) }

        public init(command: Command, index: UInt8, address: UInt32, dataOffset: Int, dataCount: Int, wkcOffset: Int) {
            self.command = command; self.index = index; self.address = address
            self.dataOffset = dataOffset; self.dataCount = dataCount; self.wkcOffset = wkcOffset
        }
    }

    /// The address word of a positional or configured-address datagram.
    public static func address(adp: UInt16, ado: UInt16) -> UInt32 { UInt32(adp) | UInt32(ado) << 16 }

    /// Builds a frame of datagrams in a buffer: `append` each, then `finish`.
    public struct FrameBuilder: ~Copyable {
        public let buffer: UnsafeMutableRawBufferPointer
        public private(set) var count = 2
        var lastLengthOffset = -1

        @_noAllocation @_noLocks
        public init(buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

        /// Appends a datagram with `data` (or `length` zero bytes when `data` is nil), wkc 0.
        /// Returns the datagram's position, or nil when the frame would not fit.
        public mutating func append(_ command: Command, index: UInt8, address: UInt32,
                                    data: UnsafeRawBufferPointer? = nil, length: Int = 0) -> Datagram? {
            guard let d = append(raw: command.rawValue, index: index, address: address, data: data, length: data?.count ?? length) else { return nil }
            return Datagram(command: command, index: index, address: address, dataOffset: d.dataOffset, dataCount: d.dataCount, wkcOffset: d.wkcOffset)
        }

        /// `append` by raw command byte (for the cycle: no enum conversions on the way).
        /// - Important: runs in the control cycle; must not allocate, lock or log.
        @_noAllocation @_noLocks
        public mutating func append(raw command: UInt8, index: UInt8, address: UInt32,
                                    data: UnsafeRawBufferPointer?, length n: Int) -> (dataOffset: Int, dataCount: Int, wkcOffset: Int)? {
            if n > 0x7FF { return nil }
            if count + 12 + n > min(buffer.count, 1500) { return nil }
            if lastLengthOffset >= 0 {
                let prev = buffer.loadUnaligned(fromByteOffset: lastLengthOffset, as: UInt16.self)
                buffer.storeBytes(of: (UInt16(littleEndian: prev) | 0x8000).littleEndian, toByteOffset: lastLengthOffset, as: UInt16.self)
            }
            let o = count
            buffer[o] = command
            buffer[o + 1] = index
            buffer.storeBytes(of: address.littleEndian, toByteOffset: o + 2, as: UInt32.self)
            buffer.storeBytes(of: UInt16(n).littleEndian, toByteOffset: o + 6, as: UInt16.self)
            buffer.storeBytes(of: UInt16(0), toByteOffset: o + 8, as: UInt16.self)
            if let data {
                for i in 0..<n { buffer[o + 10 + i] = data[i] }
            } else {
                for i in 0..<n { buffer[o + 10 + i] = 0 }
            }
            buffer.storeBytes(of: UInt16(0), toByteOffset: o + 10 + n, as: UInt16.self)
            lastLengthOffset = o + 6
            count = o + 12 + n
            return (o + 10, n, o + 10 + n)
        }

        /// Writes the EtherCAT header; returns the frame's length in bytes.
        @_noAllocation @_noLocks
        public mutating func finish() -> Int {
            let length = UInt16(count - 2) & 0x7FF
            buffer.storeBytes(of: (length | 0x1000).littleEndian, toByteOffset: 0, as: UInt16.self)
            return count
        }
    }

    /// Walks the datagrams of a frame, calling `body` with each; stops at the first error.
    public static func forEachDatagram(in frame: UnsafeRawBufferPointer, _ body: (Datagram) -> Void) -> FrameError? {
        guard frame.count >= 2 else { return .tooShort(frame.count) }
        let header = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: 0, as: UInt16.self))
        let type = UInt8(header >> 12)
        guard type == 1 else { return .notDatagrams(type: type) }
        let declared = Int(header & 0x7FF)
        guard declared + 2 <= frame.count else { return .lengthMismatch(header: declared, actual: frame.count - 2) }
        var o = 2
        while true {
            guard o + 12 <= declared + 2 else { return .truncatedDatagram(at: o) }
            guard let command = Command(rawValue: frame[o]) else { return .unknownCommand(frame[o]) }
            let lengthWord = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: o + 6, as: UInt16.self))
            let n = Int(lengthWord & 0x7FF)
            guard o + 12 + n <= declared + 2 else { return .truncatedDatagram(at: o) }
            let address = UInt32(littleEndian: frame.loadUnaligned(fromByteOffset: o + 2, as: UInt32.self))
            body(Datagram(command: command, index: frame[o + 1], address: address, dataOffset: o + 10, dataCount: n, wkcOffset: o + 10 + n))
            o += 12 + n
            if lengthWord & 0x8000 == 0 { break }
        }
        if o != declared + 2 { return .lengthMismatch(header: declared, actual: o - 2) }
        return nil
    }

    /// The working counter of a datagram in a frame buffer.
    public static func workingCounter(_ d: Datagram, in frame: UnsafeRawBufferPointer) -> UInt16 {
        UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: d.wkcOffset, as: UInt16.self))
    }
}

/// ESC registers the master and the emulated slaves use.
public enum ESCRegister {
    public static let type: UInt16 = 0x0000
    public static let stationAddress: UInt16 = 0x0010
    public static let alControl: UInt16 = 0x0120
    public static let alStatus: UInt16 = 0x0130
    public static let alStatusCode: UInt16 = 0x0134
    public static let eepromControl: UInt16 = 0x0502
    public static let eepromAddress: UInt16 = 0x0504
    public static let eepromData: UInt16 = 0x0508
    public static let fmmu0: UInt16 = 0x0600
    public static let fmmuSize: UInt16 = 16
    public static let processData: UInt16 = 0x1000
}

/// EtherCAT state machine states (AL status low nibble; 0x10 is the error flag).
public enum ALState: UInt8, Sendable, CustomStringConvertible {
    case initial = 1, preOp = 2, boot = 3, safeOp = 4, op = 8

    public var description: String {
        switch self {
        case .initial: "INIT"
        case .preOp: "PRE-OP"
        case .boot: "BOOT"
        case .safeOp: "SAFE-OP"
        case .op: "OP"
        }
    }
}
