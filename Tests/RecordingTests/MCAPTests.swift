import Core
import Foundation
import Testing
@testable import Recording

/// The MCAP writer and reader, on files written here.
struct MCAPTests {
    /// Three chunks of ten messages on two channels, a metadata record, closed properly.
    static func writeSample(_ path: String, finish: Bool = true) throws -> (chunkEnds: [UInt64], messagesPerChunk: Int) {
        var w = try MCAPWriter(path: path, library: "test")
        let schema = try w.addSchema(name: "test.Value", data: Array(#"{"type":"object"}"#.utf8))
        let a = try w.addChannel(topic: "/a", schema: schema)
        let b = try w.addChannel(topic: "/b", schema: schema, metadata: [("k", "v")])
        try w.addMetadata(name: "m", [("x", "1")])
        var ends: [UInt64] = []
        for c in 0..<3 {
            for k in 0..<10 {
                let t = UInt64(1_000 + c * 100 + k)
                w.add(channel: k % 2 == 0 ? a : b, logTime: t, publishTime: t, data: Array(#"{"v":\#(k)}"#.utf8))
            }
            try w.closeChunk(sync: false)
            ends.append(w.offset)
        }
        if finish { try w.finish() } else { w.abandon() }
        return (ends, 10)
    }

    @Test func writerAndReaderAgree() throws {
        let s = try Support.Scratch()
        let path = s.path("a.mcap")
        _ = try Self.writeSample(path)
        var times: [UInt64] = []
        let r = try MCAPRecording.read(path) { times.append($0.logTime) }
        #expect(r.complete)
        #expect(r.damage.isEmpty)
        #expect(r.chunks == 3)
        #expect(times.count == 30)
        #expect(Set(r.channels.values.map(\.topic)) == ["/a", "/b"])
        #expect(r.channels.values.first { $0.topic == "/b" }?.metadata == ["k": "v"])
        #expect(r.metadata.first?.name == "m")
        #expect(r.library == "test")
    }

    @Test func aFileCutAnywhereReadsAsFarAsItsLastWholeChunk() throws {
        let s = try Support.Scratch()
        let path = s.path("a.mcap")
        let (ends, perChunk) = try Self.writeSample(path)
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        var previous = 0
        // Every 7th length, through the chunks and the summary.
        for length in stride(from: 8, to: whole.count, by: 7) {
            let cut = s.path("cut.mcap")
            try whole.prefix(length).write(to: URL(fileURLWithPath: cut))
            var n = 0
            let r = try MCAPRecording.read(cut) { _ in n += 1 }
            #expect(!r.complete, "a file cut at \(length) of \(whole.count) bytes reads as complete")
            let wholeChunks = ends.filter { $0 <= UInt64(length) }.count
            // A chunk whose message indexes were cut off still reads: they follow the chunk.
            #expect(n == wholeChunks * perChunk || n == (wholeChunks + 1) * perChunk,
                    "cut at \(length): \(n) messages, \(wholeChunks) whole chunks with their indexes")
            #expect(n >= previous)
            previous = n
        }
    }

    @Test func aFileCutInsideARecordSaysSoAsATypedError() throws {
        let s = try Support.Scratch()
        let path = s.path("a.mcap")
        let (ends, _) = try Self.writeSample(path)
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = s.path("cut.mcap")
        try whole.prefix(Int(ends[1]) + 20).write(to: URL(fileURLWithPath: cut))
        let r = try MCAPRecording.read(cut)
        #expect(r.damage == [.truncated(offset: ends[1])])
        #expect(r.readableBytes == ends[1])
    }

    @Test func aCorruptChunkFailsItsChecksumAndTheOthersStillRead() throws {
        let s = try Support.Scratch()
        let path = s.path("a.mcap")
        let (ends, perChunk) = try Self.writeSample(path)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        // A byte inside the second chunk's messages (past its 50-odd bytes of chunk header).
        let at = Int(ends[0]) + 120
        bytes[at] ^= 0x5A
        try bytes.write(to: URL(fileURLWithPath: path))
        var n = 0
        let r = try MCAPRecording.read(path) { _ in n += 1 }
        #expect(r.damage.count == 1)
        if case .chunkChecksum = r.damage.first {} else { Issue.record("expected a checksum error, got \(r.damage)") }
        #expect(n == 2 * perChunk)
    }

    @Test func aFileThatIsNotARecordingIsRefusedWithATypedError() throws {
        let s = try Support.Scratch()
        for (name, content) in [("empty", Data()), ("text", Data("not a recording at all\n".utf8)), ("short", Data(MCAP.magic.prefix(5)))] {
            let p = s.path(name)
            try content.write(to: URL(fileURLWithPath: p))
            #expect(throws: MCAPError.notMCAP(path: p)) { try MCAPRecording.read(p) }
        }
        #expect(throws: MCAPError.self) { try MCAPRecording.read(s.path("missing")) }
    }

    /// A record whose length runs past the file end is a cut, not a crash, at any length field.
    @Test func lengthFieldsFromTheFileAreNeverTrusted() throws {
        let s = try Support.Scratch()
        let path = s.path("a.mcap")
        _ = try Self.writeSample(path)
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var b = whole
            for _ in 0..<4 { b[Int.random(in: 8..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            let p = s.path("fuzz.mcap")
            try b.write(to: URL(fileURLWithPath: p))
            _ = try MCAPRecording.read(p)
        }
    }

    @Test func crc32MatchesTheStandardCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    /// Known CRC-32 values (zlib's `crc32`, Python's `zlib.crc32`), of lengths on both sides of
    /// the 8-byte step.
    @Test(arguments: [("", UInt32(0)), ("a", 0xE8B7_BE43), ("abc", 0x3524_41C2), ("12345678", 0x9AE0_DAAF),
                      ("The quick brown fox jumps over the lazy dog", 0x414F_A339),
                      ("The quick brown fox jumps over the lazy dog.", 0x519025E9)])
    func crc32MatchesKnownVectors(text: String, crc: UInt32) {
        #expect(CRC32.checksum(Array(text.utf8)) == crc)
        #expect(Array(text.utf8).withUnsafeBytes { CRC32.updateBytewise(0, $0) } == crc)
    }

    /// The 8-byte steps against the byte-at-a-time reference: every length 0…100 at every
    /// alignment 0…7, and a sum continued across a split equals the sum in one go.
    @Test func slicingBy8AgreesWithTheBytewiseCRCAtEveryLengthAndAlignment() {
        var rng = SplitMix64(seed: 3)
        let bytes = (0..<128).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        bytes.withUnsafeBytes { all in
            for start in 0..<8 {
                for length in 0...100 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                    let expected = CRC32.updateBytewise(0, slice)
                    #expect(CRC32.update(0, slice) == expected, "length \(length) at offset \(start)")
                    let cut = length / 3
                    let first = CRC32.update(0, UnsafeRawBufferPointer(rebasing: slice[0..<cut]))
                    #expect(CRC32.update(first, UnsafeRawBufferPointer(rebasing: slice[cut...])) == expected)
                }
            }
        }
    }

    /// A chunk's stored CRC is that of its records: a reader that checks it (ours, the reference
    /// reader) accepts it.
    @Test func chunksCarryTheCRCOfTheirRecords() throws {
        let s = try Support.Scratch()
        let path = s.path("a.mcap")
        _ = try Self.writeSample(path)
        let r = try MCAPRecording.read(path)
        #expect(r.damage.isEmpty)
        #expect(r.chunks == 3)
    }
}
