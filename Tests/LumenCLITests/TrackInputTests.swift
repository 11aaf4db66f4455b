import Foundation
import Testing

/// PNG files of any declared format, with zlib "stored" blocks: no decoder in the test's way.
private enum StoredPNG {
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~c
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc32(body))
    }

    /// Every scanline holds `row` (without its filter byte).
    static func make(width: Int, height: Int, bitDepth: UInt8, colourType: UInt8, row: [UInt8]) -> [UInt8] {
        var raw: [UInt8] = []
        for _ in 0..<height { raw += [0] + row }
        var z: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65535, raw.count - i)
            z += [i + n == raw.count ? 1 : 0, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            z += raw[i..<(i + n)]
            i += n
        } while i < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for x in raw { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
        z += be32(b << 16 | a)
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            + chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [bitDepth, colourType, 0, 0, 0])
            + chunk("IDAT", z) + chunk("IEND", [])
    }

    /// A flat 16-bit grey frame: nothing in it to track.
    static func flat16(width: Int = 96, height: Int = 80, value: UInt16 = 2000) -> [UInt8] {
        make(width: width, height: height, bitDepth: 16, colourType: 0,
             row: (0..<width).flatMap { _ in [UInt8(value >> 8), UInt8(value & 0xFF)] })
    }
}

/// `lumen track` and `lumen dicom info` on inputs that must be refused, before any work.
@Suite(.serialized) struct TrackInputTests {
    let scratch: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-track-\(UUID())")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    /// A folder holding `frames` (name → bytes).
    func folder(_ name: String, _ frames: [String: [UInt8]]) throws -> String {
        let d = scratch.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        for (file, bytes) in frames { try Data(bytes).write(to: d.appendingPathComponent(file)) }
        return d.path
    }

    @Test(arguments: [(UInt8(8), UInt8(2), 3, "8-bit RGB"), (8, 0, 1, "8-bit greyscale"), (8, 3, 1, "palette"), (1, 0, 1, "1-bit greyscale")])
    func framesThatAreNotSixteenBitGreyAreRefusedNamingTheFrame(bitDepth: UInt8, colourType: UInt8, channels: Int, kind: String) throws {
        let width = 96
        let rowBytes = max(1, width * channels * Int(bitDepth) / 8)
        let odd = StoredPNG.make(width: width, height: 80, bitDepth: bitDepth, colourType: colourType, row: [UInt8](repeating: 1, count: rowBytes))
        let dir = try folder("format-\(bitDepth)-\(colourType)", ["f1.png": StoredPNG.flat16(), "f2.png": odd])
        let r = try Tool.run(["track", "--input", dir, "--json"])
        #expect(r.status != 0)
        #expect(r.stderr.contains(dir + "/f2.png") && r.stderr.contains(kind) && r.stderr.contains("16-bit greyscale"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(!r.stderr.contains("track: frame"), "refused before the first frame is tracked")
    }

    @Test func eightBitGreyIsTrackedOnlyWithWiden8Bit() throws {
        let grey8 = StoredPNG.make(width: 96, height: 80, bitDepth: 8, colourType: 0, row: [UInt8](repeating: 40, count: 96))
        let dir = try folder("grey8", ["a.png": grey8])
        #expect(try Tool.run(["track", "--input", dir, "--json"]).status != 0)
        let r = try Tool.run(["track", "--input", dir, "--json", "--widen-8bit"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.json?["frames"] as? Int == 1)
    }

    @Test func framesOfDifferentSizesAreRefusedNamingTheFrame() throws {
        let dir = try folder("sizes", ["f1.png": StoredPNG.flat16(), "f2.png": StoredPNG.flat16(), "f3.png": StoredPNG.flat16(width: 64, height: 64)])
        let r = try Tool.run(["track", "--input", dir])
        #expect(r.status != 0)
        #expect(r.stderr.contains(dir + "/f3.png") && r.stderr.contains("64 × 64") && r.stderr.contains("96 × 80"), "\(r.stderr)")
        #expect(!r.stderr.contains("track: frame"))
    }

    @Test func aHugeFrameHeaderIsRefusedBeforeDecoding() throws {
        // 20000² declared over a few bytes of body: refused from the header, naming the budget.
        var bomb = StoredPNG.make(width: 4, height: 4, bitDepth: 16, colourType: 0, row: [UInt8](repeating: 0, count: 8))
        let ihdr = StoredPNG.chunk("IHDR", StoredPNG.be32(20000) + StoredPNG.be32(20000) + [16, 0, 0, 0, 0])
        bomb.replaceSubrange(8..<33, with: ihdr)
        let dir = try folder("bomb", ["f.png": bomb])
        let r = try Tool.run(["track", "--input", dir, "--json"])
        #expect(r.status != 0)
        #expect(r.stderr.contains(dir + "/f.png") && r.stderr.contains("20000 × 20000") && r.stderr.contains("4096 × 4096"), "\(r.stderr)")
    }

    @Test func aFIFOAmongTheFramesIsRefused() throws {
        let dir = try folder("fifo", ["a.png": StoredPNG.flat16()])
        #expect(mkfifo(dir + "/b.png", 0o600) == 0)
        let r = try Tool.run(["track", "--input", dir])
        #expect(r.status != 0)
        #expect(r.stderr.contains(dir + "/b.png") && r.stderr.contains("FIFO"), "\(r.stderr)")
    }

    @Test func lostFramesCarryNullCoordinatesInJSON() throws {
        let dir = try folder("flat", ["a.png": StoredPNG.flat16(), "b.png": StoredPNG.flat16()])
        let r = try Tool.run(["track", "--input", dir, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let records = try #require(r.json?["records"] as? [[String: Any]])
        #expect(records.count == 2)
        for record in records {
            #expect(record["status"] as? String == "lost")
            #expect(record["u"] is NSNull && record["v"] is NSNull, "u and v present as null: \(record)")
        }
    }

    @Test func anOverlayPathThatIsAFileIsRefusedBeforeTracking() throws {
        let dir = try folder("overlay-src", ["a.png": StoredPNG.flat16()])
        let file = scratch.appendingPathComponent("not-a-folder").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let r = try Tool.run(["track", "--input", dir, "--overlay", file])
        #expect(r.status != 0)
        #expect(r.stderr.contains(file) && r.stderr.contains("not a folder"), "\(r.stderr)")
        #expect(!r.stderr.contains("NSCocoaErrorDomain") && !r.stderr.contains("track: frame"), "\(r.stderr)")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "x", "the file is left as it was")
        let ok = try Tool.run(["track", "--input", dir, "--overlay", scratch.appendingPathComponent("new/overlays").path])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("new/overlays/track_0000.png").path))
    }

    @Test func aRenderedFolderIsTrackedAsItIs() throws {
        // The renderer's output folder holds only frames (its 8-bit preview is in a subfolder).
        let out = scratch.appendingPathComponent("render").path
        let render = try Tool.run(["sim", "render", "--frames", "2", "--out", out])
        #expect(render.status == 0, "\(render.stderr)")
        let r = try Tool.run(["track", "--input", out, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.json?["frames"] as? Int == 2)
    }

    @Test func anInputThatIsNeitherAFolderNorARegularFileIsRefusedUnread() throws {
        let pipe = scratch.appendingPathComponent("frames-pipe").path
        #expect(mkfifo(pipe, 0o600) == 0)
        let r = try Tool.run(["track", "--input", pipe])
        #expect(r.status != 0 && r.stderr.contains(pipe) && r.stderr.contains("FIFO"), "\(r.stderr)")
        let missing = scratch.appendingPathComponent("nowhere").path
        let m = try Tool.run(["track", "--input", missing])
        #expect(m.status != 0 && m.stderr.contains(missing) && m.stderr.contains("no such file or folder"), "\(m.stderr)")
    }

    @Test func dicomInfoRefusesAFIFOInsteadOfHanging() throws {
        let pipe = scratch.appendingPathComponent("pipe.dcm").path
        #expect(mkfifo(pipe, 0o600) == 0)
        let r = try Tool.run(["dicom", "info", pipe])
        #expect(r.status != 0)
        #expect(r.stderr.contains(pipe) && r.stderr.contains("FIFO"), "\(r.stderr)")
        let d = try Tool.run(["dicom", "info", scratch.path])
        #expect(d.status != 0 && d.stderr.contains("directory"), "\(d.stderr)")
    }
}
