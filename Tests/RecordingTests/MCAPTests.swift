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
}
