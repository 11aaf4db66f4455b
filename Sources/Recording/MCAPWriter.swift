import Core
import Foundation

/// MCAP record opcodes (https://mcap.dev/spec), the subset Lumen writes and reads.
enum MCAPOpcode: UInt8 {
    case header = 0x01, footer = 0x02, schema = 0x03, channel = 0x04, message = 0x05, chunk = 0x06
    case messageIndex = 0x07, chunkIndex = 0x08, attachment = 0x09, attachmentIndex = 0x0A
    case statistics = 0x0B, metadata = 0x0C, metadataIndex = 0x0D, summaryOffset = 0x0E, dataEnd = 0x0F
}

enum MCAP {
    /// The 8 bytes at both ends of every MCAP file.
    static let magic: [UInt8] = [0x89, 0x4D, 0x43, 0x41, 0x50, 0x30, 0x0D, 0x0A]
}

/// Why a recording could not be written. Each case says what to do.
public enum RecorderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call on the output file failed (`errno`).
    case io(operation: String, path: String, errno: Int32)
    /// The settings are outside their ranges; names the field.
    case invalidSetting(String)

    public var description: String {
        switch self {
        case .io(let op, let path, let e):
            "cannot \(op) \(path): \(String(cString: strerror(e))) (check the folder exists, is writable and has space)"
        case .invalidSetting(let s): "recorder setting out of range: \(s)"
        }
    }
}

/// Little-endian MCAP field encoding into a growing byte buffer.
struct MCAPBytes {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u32(UInt32(clamping: utf8.count)); bytes.append(contentsOf: utf8)
    }
    mutating func prefixed32(_ b: [UInt8]) { u32(UInt32(clamping: b.count)); bytes.append(contentsOf: b) }
    mutating func stringMap(_ m: [(String, String)]) {
        var inner = MCAPBytes()
        for (k, v) in m { inner.string(k); inner.string(v) }
        prefixed32(inner.bytes)
    }
    /// One record: opcode, u64 content length, content.
    mutating func record(_ op: MCAPOpcode, _ content: (inout MCAPBytes) -> Void) {
        u8(op.rawValue)
        let lengthAt = bytes.count
        u64(0)
        let start = bytes.count
        content(&self)
        let length = UInt64(bytes.count - start)
        withUnsafeBytes(of: length.littleEndian) { for k in 0..<8 { bytes[lengthAt + k] = $0[k] } }
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib): MCAP's chunk and data-section checksum.
///
/// Slicing-by-8: eight 256-entry tables let one step fold 8 bytes with eight independent
/// lookups instead of eight dependent ones. Every byte of every chunk (frames included, tens of
/// MB/s) passes through it on the draining thread, which the crash-loss bound depends on.
enum CRC32 {
    /// `tables[k * 256 + n]`: the CRC of byte n followed by k zero bytes.
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for n in 0..<256 {
            var c = UInt32(n)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[n] = c
        }
        for k in 1..<8 {
            for n in 0..<256 {
                let prev = t[(k - 1) * 256 + n]
                t[k * 256 + n] = t[Int(prev & 0xFF)] ^ (prev >> 8)
            }
        }
        return t
    }()

    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        guard let base = bytes.baseAddress else { return crc }
        let count = bytes.count
        tables.withUnsafeBufferPointer { tp in
            guard let t = tp.baseAddress else { return }
            var i = 0
            while i + 8 <= count {
                let lo = c ^ UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt32.self))
                let hi = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < count {
                c = t[Int((c ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        return ~c
    }

    /// One table lookup per byte: the former implementation, kept as the reference the fast one
    /// is tested against and the bench's "before".
    static func updateBytewise(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        tables.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        return ~c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { update(0, $0) } }

    /// MB/s of `update` and of `updateBytewise` over `megabytes` of pseudo-random bytes, on this
    /// thread's CPU time (a loaded machine does not slow the figure down), best of 3.
    static func throughput(megabytes: Int = 8) -> (slicingBy8: Double, bytewise: Double) {
        var rng = SplitMix64(seed: 7)
        let bytes = (0..<(megabytes << 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        func rate(_ f: (UInt32, UnsafeRawBufferPointer) -> UInt32) -> Double {
            var best = Double.infinity
            var sink: UInt32 = 0
            for _ in 0..<3 {
                let t0 = ThreadCPUTime.seconds()
                sink ^= bytes.withUnsafeBytes { f(0, $0) }
                best = min(best, ThreadCPUTime.seconds() - t0)
            }
            // Keeps the result alive so the loop cannot be dropped.
            if sink == 0x5EED_5EED { best += 0 }
            return best > 0 ? Double(megabytes << 20) / best / 1e6 : .infinity
        }
        return (rate(update), rate(updateBytewise))
    }
}

/// An MCAP file being written: uncompressed chunks, each followed by its message indexes, closed
/// (written and synced) whenever the caller says; a summary section (schemas, channels, statistics,
/// chunk and metadata indexes) and the footer at `finish`. A file cut anywhere after the first
/// closed chunk still reads as far as its last whole chunk.
///
/// Not thread-safe: one owner (the recorder's thread).
struct MCAPWriter {
    let path: String
    private let fd: Int32
    private(set) var offset: UInt64 = 0
    private var schemas: [(id: UInt16, name: String, encoding: String, data: [UInt8])] = []
    private var channels: [(id: UInt16, schema: UInt16, topic: String, encoding: String, metadata: [(String, String)])] = []
    private var chunk = MCAPBytes()
    private var chunkStart: UInt64 = .max
    private var chunkEnd: UInt64 = 0
    private var chunkMessages = 0
    /// Per channel in the open chunk: (log time, offset in the chunk's records).
    private var chunkIndex: [UInt16: [(UInt64, UInt64)]] = [:]
    private var chunkIndexes: [[UInt8]] = []
    private var metadataIndexes: [[UInt8]] = []
    private var sequences: [UInt16: UInt32] = [:]
    private(set) var messageCount: UInt64 = 0
    private var channelCounts: [UInt16: UInt64] = [:]
    private var firstTime: UInt64 = .max
    private var lastTime: UInt64 = 0
    private(set) var chunkCount = 0
    private var metadataCount = 0
    private var finished = false
    /// Seconds spent on the chunks' CRC-32.
    private(set) var crcSeconds = 0.0

    /// The file, for the thread that syncs it (`ChunkSyncer`).
    var fileDescriptor: Int32 { fd }
    /// Bytes in the open chunk.
    var pendingBytes: Int { chunk.bytes.count }
    var pendingMessages: Int { chunkMessages }

    init(path: String, library: String) throws(RecorderError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(operation: "create", path: path, errno: errno) }
        var b = MCAPBytes()
        b.bytes = MCAP.magic
        b.record(.header) { $0.string(""); $0.string(library) }
        try write(b.bytes)
        try sync()
    }

    private mutating func write(_ bytes: [UInt8]) throws(RecorderError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "write", path: path, errno: errno)
            }
            done += n
        }
        offset += UInt64(bytes.count)
    }

    private func sync() throws(RecorderError) {
        if fdatasync(fd) != 0 { throw .io(operation: "sync", path: path, errno: errno) }
    }

    /// Registers a schema (JSON Schema text); written at once, outside any chunk.
    mutating func addSchema(name: String, encoding: String = "jsonschema", data: [UInt8]) throws(RecorderError) -> UInt16 {
        let id = UInt16(schemas.count + 1)
        schemas.append((id, name, encoding, data))
        var b = MCAPBytes()
        Self.schemaRecord(&b, id: id, name: name, encoding: encoding, data: data)
        try write(b.bytes)
        return id
    }

    /// Registers a channel; written at once, outside any chunk, so it precedes every message on it.
    mutating func addChannel(topic: String, schema: UInt16, encoding: String = "json", metadata: [(String, String)] = []) throws(RecorderError) -> UInt16 {
        let id = UInt16(channels.count + 1)
        channels.append((id, schema, topic, encoding, metadata))
        var b = MCAPBytes()
        Self.channelRecord(&b, id: id, schema: schema, topic: topic, encoding: encoding, metadata: metadata)
        try write(b.bytes)
        return id
    }

    private static func schemaRecord(_ b: inout MCAPBytes, id: UInt16, name: String, encoding: String, data: [UInt8]) {
        b.record(.schema) { $0.u16(id); $0.string(name); $0.string(encoding); $0.prefixed32(data) }
    }

    private static func channelRecord(_ b: inout MCAPBytes, id: UInt16, schema: UInt16, topic: String, encoding: String,
                                      metadata: [(String, String)]) {
        b.record(.channel) { $0.u16(id); $0.u16(schema); $0.string(topic); $0.string(encoding); $0.stringMap(metadata) }
    }

    /// Adds a message to the open chunk (nothing reaches the file until `closeChunk`).
    mutating func add(channel: UInt16, logTime: UInt64, publishTime: UInt64, data: [UInt8]) {
        let seq = sequences[channel, default: 0]
        sequences[channel] = seq &+ 1
        chunkIndex[channel, default: []].append((logTime, UInt64(chunk.bytes.count)))
        chunk.record(.message) { $0.u16(channel); $0.u32(seq); $0.u64(logTime); $0.u64(publishTime); $0.bytes.append(contentsOf: data) }
        chunkStart = min(chunkStart, logTime); chunkEnd = max(chunkEnd, logTime)
        firstTime = min(firstTime, logTime); lastTime = max(lastTime, logTime)
        chunkMessages += 1
        messageCount += 1
        channelCounts[channel, default: 0] += 1
    }

    /// Writes the open chunk and its message indexes, then syncs when asked: after this returns,
    /// a `kill -9` of the process loses nothing written so far.
    mutating func closeChunk(sync: Bool) throws(RecorderError) {
        guard chunkMessages > 0 else { return }
        let records = chunk.bytes
        let chunkOffset = offset
        var b = MCAPBytes()
        b.bytes.reserveCapacity(records.count + 256)
        let crcStart = MonotonicClock.now()
        let crc = CRC32.checksum(records)
        crcSeconds += Double(MonotonicClock.now() - crcStart) * 1e-9
        b.record(.chunk) {
            $0.u64(chunkStart); $0.u64(chunkEnd); $0.u64(UInt64(records.count)); $0.u32(crc); $0.string("")
            $0.u64(UInt64(records.count)); $0.bytes.append(contentsOf: records)
        }
        let chunkLength = UInt64(b.bytes.count)
        var indexOffsets: [(UInt16, UInt64)] = []
        let indexStart = chunkOffset + chunkLength
        for channel in chunkIndex.keys.sorted() {
            indexOffsets.append((channel, chunkOffset + UInt64(b.bytes.count)))
            let entries = chunkIndex[channel] ?? []
            b.record(.messageIndex) {
                $0.u16(channel)
                $0.u32(UInt32(clamping: entries.count * 16))
                for (t, o) in entries { $0.u64(t); $0.u64(o) }
            }
        }
        let indexLength = chunkOffset + UInt64(b.bytes.count) - indexStart
        try write(b.bytes)
        var ci = MCAPBytes()
        let (start, end) = (chunkStart, chunkEnd)
        ci.record(.chunkIndex) {
            $0.u64(start); $0.u64(end); $0.u64(chunkOffset); $0.u64(chunkLength)
            var m = MCAPBytes()
            for (c, o) in indexOffsets { m.u16(c); m.u64(o) }
            $0.prefixed32(m.bytes)
            $0.u64(indexLength); $0.string(""); $0.u64(UInt64(records.count)); $0.u64(UInt64(records.count))
        }
        chunkIndexes.append(ci.bytes)
        chunk = MCAPBytes()
        chunk.bytes.reserveCapacity(records.count)
        chunkIndex.removeAll(keepingCapacity: true)
        chunkStart = .max; chunkEnd = 0; chunkMessages = 0
        chunkCount += 1
        if sync { try self.sync() }
    }

    /// A metadata record (name and string pairs), written at once outside chunks.
    mutating func addMetadata(name: String, _ pairs: [(String, String)]) throws(RecorderError) {
        let at = offset
        var b = MCAPBytes()
        b.record(.metadata) { $0.string(name); $0.stringMap(pairs) }
        try write(b.bytes)
        var idx = MCAPBytes()
        let length = UInt64(b.bytes.count)
        idx.record(.metadataIndex) { $0.u64(at); $0.u64(length); $0.string(name) }
        metadataIndexes.append(idx.bytes)
        metadataCount += 1
    }

    /// Closes the last chunk, writes the data end, the summary section and the footer, syncs and
    /// closes the file.
    mutating func finish() throws(RecorderError) {
        guard !finished else { return }
        try closeChunk(sync: false)
        var b = MCAPBytes()
        b.record(.dataEnd) { $0.u32(0) }
        let summaryStart = offset + UInt64(b.bytes.count)
        var groups: [(MCAPOpcode, UInt64, UInt64)] = []
        func group(_ op: MCAPOpcode, _ body: (inout MCAPBytes) -> Void) {
            let start = b.bytes.count
            body(&b)
            if b.bytes.count > start { groups.append((op, offset + UInt64(start), UInt64(b.bytes.count - start))) }
        }
        group(.schema) { b in for s in schemas { Self.schemaRecord(&b, id: s.id, name: s.name, encoding: s.encoding, data: s.data) } }
        group(.channel) { b in
            for c in channels { Self.channelRecord(&b, id: c.id, schema: c.schema, topic: c.topic, encoding: c.encoding, metadata: c.metadata) }
        }
        let counts = channelCounts.sorted { $0.key < $1.key }
        let (messages, first, last) = (messageCount, firstTime == .max ? 0 : firstTime, lastTime)
        let (nSchemas, nChannels, nChunks, nMeta) = (schemas.count, channels.count, chunkCount, metadataCount)
        group(.statistics) { b in
            b.record(.statistics) {
                $0.u64(messages); $0.u16(UInt16(clamping: nSchemas)); $0.u32(UInt32(clamping: nChannels)); $0.u32(0)
                $0.u32(UInt32(clamping: nMeta)); $0.u32(UInt32(clamping: nChunks)); $0.u64(first); $0.u64(last)
                var m = MCAPBytes()
                for (c, n) in counts { m.u16(c); m.u64(n) }
                $0.prefixed32(m.bytes)
            }
        }
        group(.chunkIndex) { b in for ci in chunkIndexes { b.bytes.append(contentsOf: ci) } }
        group(.metadataIndex) { b in for mi in metadataIndexes { b.bytes.append(contentsOf: mi) } }
        let summaryOffsetStart = offset + UInt64(b.bytes.count)
        for (op, start, length) in groups {
            b.record(.summaryOffset) { $0.u8(op.rawValue); $0.u64(start); $0.u64(length) }
        }
        b.record(.footer) { $0.u64(summaryStart); $0.u64(summaryOffsetStart); $0.u32(0) }
        b.bytes.append(contentsOf: MCAP.magic)
        try write(b.bytes)
        try sync()
        close(fd)
        finished = true
    }

    /// Closes the file without a summary (after a write error: what is on disk stays readable).
    mutating func abandon() {
        guard !finished else { return }
        close(fd)
        finished = true
    }
}
