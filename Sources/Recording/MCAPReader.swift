import Foundation

/// Why a recording could not be read, or where it is damaged. Each case says what to do.
public enum MCAPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be opened or read.
    case unreadable(path: String, reason: String)
    /// The file does not start with the MCAP magic: not a recording.
    case notMCAP(path: String)
    /// The file ends inside a record at `offset` (a recording cut short, e.g. by a crash).
    case truncated(offset: UInt64)
    /// A record's fields do not fit its length, or a value is impossible.
    case malformed(offset: UInt64, reason: String)
    /// A chunk's checksum does not match its content.
    case chunkChecksum(offset: UInt64, expected: UInt32, actual: UInt32)
    /// A chunk compressed with something this reader does not decode.
    case unsupportedCompression(offset: UInt64, String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): "\(p): cannot read: \(r)"
        case .notMCAP(let p): "\(p): not an MCAP recording (no MCAP magic at the start)"
        case .truncated(let o): "the file ends inside a record at byte \(o): the recording was cut short; the data before it is readable"
        case .malformed(let o, let r): "damaged record at byte \(o): \(r); the data before it is readable"
        case .chunkChecksum(let o, let e, let a):
            "chunk at byte \(o) fails its checksum (expected \(String(e, radix: 16)), got \(String(a, radix: 16))); it was skipped"
        case .unsupportedCompression(let o, let c): "chunk at byte \(o) is compressed with \(c), which this reader does not decode; it was skipped"
        }
    }
}

/// A little-endian cursor over bytes that throws instead of reading past its end.
struct MCAPCursor {
    let bytes: UnsafeRawBufferPointer
    var at: Int
    let end: Int
    let base: UInt64

    init(_ bytes: UnsafeRawBufferPointer, from: Int, to: Int, base: UInt64 = 0) {
        self.bytes = bytes; at = from; end = to; self.base = base
    }

    var remaining: Int { end - at }

    mutating func take(_ n: Int) throws(MCAPError) -> Range<Int> {
        guard n >= 0, n <= end - at else { throw .malformed(offset: base + UInt64(at), reason: "a field runs past its record") }
        defer { at += n }
        return at..<(at + n)
    }
    mutating func u8() throws(MCAPError) -> UInt8 { bytes[try take(1).lowerBound] }
    mutating func uint<T: FixedWidthInteger>(_: T.Type) throws(MCAPError) -> T {
        let r = try take(MemoryLayout<T>.size)
        var v: T = 0
        for k in r.reversed() { v = (v << 8) | T(bytes[k]) }
        return v
    }
    mutating func u16() throws(MCAPError) -> UInt16 { try uint(UInt16.self) }
    mutating func u32() throws(MCAPError) -> UInt32 { try uint(UInt32.self) }
    mutating func u64() throws(MCAPError) -> UInt64 { try uint(UInt64.self) }
    mutating func data32() throws(MCAPError) -> [UInt8] {
        let n = try u32()
        return Array(bytes[try take(Int(n))])
    }
    mutating func string() throws(MCAPError) -> String { String(decoding: try data32(), as: UTF8.self) }
    mutating func stringMap() throws(MCAPError) -> [(String, String)] {
        let n = Int(try u32())
        var inner = MCAPCursor(bytes, from: at, to: at + min(n, remaining), base: base)
        _ = try take(n)
        var out: [(String, String)] = []
        while inner.remaining > 0 { out.append((try inner.string(), try inner.string())) }
        return out
    }
}

/// What a recording holds, read record by record from the start: it does not need the summary,
/// so it reads a file cut short by a crash as far as its last whole chunk.
public struct MCAPRecording: Sendable {
    public struct Schema: Sendable { public var id: UInt16; public var name: String; public var encoding: String; public var data: [UInt8] }
    public struct Channel: Sendable {
        public var id: UInt16; public var schema: UInt16; public var topic: String; public var encoding: String
        public var metadata: [String: String]
    }
    public struct Message: Sendable {
        public var channel: UInt16; public var sequence: UInt32; public var logTime: UInt64; public var publishTime: UInt64
        public var data: [UInt8]
    }

    public var path: String
    public var library = ""
    public var schemas: [UInt16: Schema] = [:]
    public var channels: [UInt16: Channel] = [:]
    public var metadata: [(name: String, pairs: [String: String])] = []
    public var chunks = 0
    /// The data end and the footer were found: the recorder closed the file.
    public var complete = false
    /// What was found wrong: a truncated end, a damaged record, a chunk failing its checksum.
    public var damage: [MCAPError] = []
    /// Bytes of the file that were read as whole records.
    public var readableBytes: UInt64 = 0
    public var fileBytes: UInt64 = 0

    /// Reads `path`, handing each message to `body` in file order. Throws only when the file is
    /// not a recording at all; damage further in is listed in `damage`.
    public static func read(_ path: String, messages body: (Message) throws -> Void = { _ in },
                            channels onChannel: (Channel) -> Void = { _ in }) throws -> MCAPRecording {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw MCAPError.unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        var rec = MCAPRecording(path: path)
        rec.fileBytes = UInt64(data.count)
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
            guard raw.count >= 8, Array(raw[0..<8]) == MCAP.magic else { throw MCAPError.notMCAP(path: path) }
            var c = MCAPCursor(raw, from: 8, to: raw.count)
            try rec.walk(&c, inChunk: false, body, onChannel)
        }
        return rec
    }

    private mutating func walk(_ c: inout MCAPCursor, inChunk: Bool, _ body: (Message) throws -> Void, _ onChannel: (Channel) -> Void) throws {
        while c.remaining > 0 {
            let start = c.base + UInt64(c.at)
            guard c.remaining >= 9 else {
                damage.append(inChunk ? .malformed(offset: start, reason: "a chunk ends inside a record header") : .truncated(offset: start))
                return
            }
            let op = try c.u8()
            let length = try c.u64()
            guard length <= UInt64(c.remaining) else {
                damage.append(inChunk ? .malformed(offset: start, reason: "a record runs past its chunk") : .truncated(offset: start))
                return
            }
            var r = MCAPCursor(c.bytes, from: c.at, to: c.at + Int(length), base: c.base)
            c.at += Int(length)
            do {
                if op == MCAPOpcode.footer.rawValue, !inChunk {
                    // The footer is followed by the closing magic and nothing else.
                    complete = c.remaining == 8 && Array(c.bytes[c.at..<(c.at + 8)]) == MCAP.magic
                    if !complete { damage.append(.malformed(offset: start, reason: "the footer is not followed by the closing magic")) }
                    if !inChunk { readableBytes = UInt64(c.end) }
                    return
                }
                try record(op, &r, at: start, body, onChannel)
            } catch let e as MCAPError {
                damage.append(e)
                // A chunk that fails its checksum or cannot be decoded is skipped; past a damaged
                // record the lengths cannot be trusted, so reading stops there.
                if case .malformed = e, !inChunk { return }
            }
            if !inChunk { readableBytes = c.base + UInt64(c.at) }
        }
    }

    private mutating func record(_ op: UInt8, _ r: inout MCAPCursor, at start: UInt64, _ body: (Message) throws -> Void,
                                 _ onChannel: (Channel) -> Void) throws {
        switch MCAPOpcode(rawValue: op) {
        case .header:
            _ = try r.string(); library = try r.string()
        case .schema:
            let s = Schema(id: try r.u16(), name: try r.string(), encoding: try r.string(), data: try r.data32())
            schemas[s.id] = s
        case .channel:
            let id = try r.u16(), schema = try r.u16(), topic = try r.string(), enc = try r.string()
            let meta = try r.stringMap()
            let channel = Channel(id: id, schema: schema, topic: topic, encoding: enc, metadata: Dictionary(meta, uniquingKeysWith: { a, _ in a }))
            if channels[id] == nil { onChannel(channel) }
            channels[id] = channel
        case .message:
            let channel = try r.u16(), seq = try r.u32(), log = try r.u64(), pub = try r.u64()
            guard channels[channel] != nil else { throw MCAPError.malformed(offset: start, reason: "a message on channel \(channel), which was never declared") }
            try body(Message(channel: channel, sequence: seq, logTime: log, publishTime: pub, data: Array(r.bytes[r.at..<r.end])))
        case .chunk:
            _ = try r.u64(); _ = try r.u64()
            let size = try r.u64(), crc = try r.u32(), compression = try r.string()
            let n = try r.u64()
            guard compression.isEmpty else { throw MCAPError.unsupportedCompression(offset: start, compression) }
            guard n == size, n <= UInt64(r.remaining) else { throw MCAPError.malformed(offset: start, reason: "chunk sizes disagree with its length") }
            let range = try r.take(Int(n))
            if crc != 0 {
                let actual = CRC32.update(0, UnsafeRawBufferPointer(rebasing: r.bytes[range]))
                guard actual == crc else { throw MCAPError.chunkChecksum(offset: start, expected: crc, actual: actual) }
            }
            var inner = MCAPCursor(r.bytes, from: range.lowerBound, to: range.upperBound, base: r.base)
            try walk(&inner, inChunk: true, body, onChannel)
            chunks += 1
        case .metadata:
            let name = try r.string()
            metadata.append((name, Dictionary(try r.stringMap(), uniquingKeysWith: { a, _ in a })))
        default:
            // Indexes, statistics, attachments, the data end: nothing a reader from the start needs.
            break
        }
    }
}
