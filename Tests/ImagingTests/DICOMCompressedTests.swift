import Core
import Foundation
import Testing
@testable import Imaging

/// Runs one of DCMTK's command-line tools (Debian `dcmtk`, installed by scripts/setup.sh).
func dcmtk(_ tool: String, _ arguments: [String]) throws -> (status: Int32, stderr: String) {
    let path = "/usr/bin/" + tool
    guard FileManager.default.isExecutableFile(atPath: path) else {
        Issue.record("\(path) is missing: run scripts/setup.sh (Debian package dcmtk)")
        return (127, "missing")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    let data = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The encapsulated fragments of a file DCMTK wrote (explicit VR little endian data set):
/// (offset of the fragment's value, its length), the basic offset table first.
func fragments(of bytes: [UInt8]) -> [(offset: Int, length: Int)] {
    let tag: [UInt8] = [0xE0, 0x7F, 0x10, 0x00]
    var at = -1
    var i = bytes.count - 4
    while i >= 0 { if Array(bytes[i..<(i + 4)]) == tag { at = i; break }; i -= 1 }
    guard at >= 0 else { return [] }
    var pos = at + 12
    var out: [(Int, Int)] = []
    while pos + 8 <= bytes.count, bytes[pos] == 0xFE, bytes[pos + 1] == 0xFF, bytes[pos + 2] == 0x00, bytes[pos + 3] == 0xE0 {
        let length = Int(bytes[pos + 4]) | Int(bytes[pos + 5]) << 8 | Int(bytes[pos + 6]) << 16 | Int(bytes[pos + 7]) << 24
        out.append((pos + 8, length))
        pos += 8 + length
    }
    return out
}

@Suite struct DICOMCompressedTests {
    let dir = scratchFolder("dicom-compressed")

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// Frames with a gradient, noise and both ends of the stored range (bit patterns for signed).
    func frames(_ count: Int, width: Int = 40, height: Int = 32, bits: Int, signed: Bool) -> [Frame] {
        var rng = SplitMix64(seed: UInt64(bits) * 7 + (signed ? 1 : 0))
        let lo = signed ? -(1 << (bits - 1)) : 0, hi = signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1
        return (0..<count).map { k in
            var values = (0..<(width * height)).map { i in
                let smooth = lo + (hi - lo) * ((i % width) + (i / width) + k) / (width + height + count)
                return min(hi, max(lo, smooth + Int(rng.next() % 9) - 4))
            }
            values[0] = lo
            values[1] = hi
            return Frame(width: width, height: height, pixels: values.map { UInt16(truncatingIfNeeded: $0) })
        }
    }

    struct Case: Sendable, CustomStringConvertible {
        var bits: Int, signed: Bool, mono1: Bool, rescale: Bool
        var description: String { "\(bits) bits\(signed ? " signed" : "")\(mono1 ? " MONOCHROME1" : "")\(rescale ? " rescaled" : "")" }
    }

    static let cases = [
        Case(bits: 8, signed: false, mono1: false, rescale: false), Case(bits: 10, signed: false, mono1: false, rescale: true),
        Case(bits: 12, signed: false, mono1: true, rescale: false), Case(bits: 12, signed: true, mono1: false, rescale: true),
        Case(bits: 16, signed: false, mono1: false, rescale: false),
    ]

    /// (tool, its options, the transfer syntax it writes).
    static let codecs: [(String, [String], String)] = [
        ("dcmcrle", [], "1.2.840.10008.1.2.5"),
        ("dcmcjpeg", [], "1.2.840.10008.1.2.4.70"),        // JPEG Lossless, Process 14, SV1
        ("dcmcjpeg", ["+el"], "1.2.840.10008.1.2.4.57"),   // JPEG Lossless, Process 14
        ("dcmcjpls", [], "1.2.840.10008.1.2.4.80"),        // JPEG-LS Lossless
    ]

    func original(_ c: Case, name: String) throws -> (path: String, frames: [Frame]) {
        let source = frames(3, bits: c.bits, signed: c.signed)
        let p = path(name)
        try DICOMWriter.write(frames: source, geometry: nil, frameInterval: 40_000_000, to: p,
                              options: .init(bitsStored: c.bits, bitsAllocated: c.bits <= 8 ? 8 : 16,
                                             photometric: c.mono1 ? .monochrome1 : .monochrome2, isSigned: c.signed,
                                             rescale: c.rescale ? (slope: -2, intercept: 100) : nil))
        return (p, source)
    }

    @Test(arguments: cases)
    func losslessCompressedFilesDecodeToTheUncompressedOriginal(_ c: Case) throws {
        let (plain, _) = try original(c, name: "plain-\(c.bits)-\(c.signed)-\(c.mono1).dcm")
        let reference = try DICOMReader(path: plain)
        for (tool, options, syntax) in Self.codecs {
            let packed = path("packed-\(tool)\(options.joined())-\(c.bits)-\(c.signed)-\(c.mono1).dcm")
            let run = try dcmtk(tool, options + [plain, packed])
            try #require(run.status == 0, "\(tool) \(c): \(run.stderr)")
            let reader = try DICOMReader(path: packed)
            let h = reader.header
            #expect(h.transferSyntaxUID == syntax && h.isCompressed && !h.isLossy, "\(tool) \(c): \(h.transferSyntaxName)")
            #expect(h.notHonoured.isEmpty, "\(h.notHonoured)")
            #expect(reader.pixelMapping == reference.pixelMapping, "\(tool) \(c): the header reads as the original's")
            #expect(h.frameInterval == 40_000_000)
            for k in 0..<reference.frameCount {
                #expect(try reader.storedValues(frame: k) == reference.storedValues(frame: k), "\(tool) \(c) frame \(k)")
                #expect(try reader.frame(k) == reference.frame(k))
            }
            // Frames out of order too: the decoder finds each frame's fragment itself.
            let again = try DICOMReader(path: packed)
            #expect(try again.frame(2) == reference.frame(2))
            #expect(try again.frame(0) == reference.frame(0))
        }
    }

    @Test func aFrameTimeVectorSurvivesCompressionAndStampsEachFrame() throws {
        let source = frames(3, bits: 12, signed: false)
        let plain = path("vector-plain.dcm")
        try DICOMWriter.write(frames: source, geometry: nil, frameInterval: nil, to: plain, options: .init(bitsStored: 12))
        let set = try dcmtk("dcmodify", ["-nb", "-i", "(0018,1065)=0\\40\\60", plain])
        try #require(set.status == 0, "\(set.stderr)")
        let packed = path("vector.dcm")
        try #require(try dcmtk("dcmcjpls", [plain, packed]).status == 0)
        let s = try FrameSource.open(path: packed, start: 5)
        #expect(s.dicomHeader?.frameTimeVector == [0, 40, 60] && !s.frameIntervalAssumed)
        var times: [Nanoseconds] = []
        while let f = try s.next() { times.append(f.acquiredAt) }
        #expect(times == [5, 40_000_005, 100_000_005])
    }

    @Test func oddSizedEightBitFramesDecodeWhole() throws {
        // 5 × 3 bytes a frame: an odd frame, which DCMTK's even-sized frame buffer must not shift.
        let source = frames(3, width: 5, height: 3, bits: 8, signed: false)
        let plain = path("odd-plain.dcm")
        try DICOMWriter.write(frames: source, geometry: nil, frameInterval: nil, to: plain, options: .init(bitsStored: 8, bitsAllocated: 8))
        let reference = try DICOMReader(path: plain)
        for (tool, options, _) in Self.codecs {
            let packed = path("odd-\(tool)\(options.joined()).dcm")
            try #require(try dcmtk(tool, options + [plain, packed]).status == 0)
            let reader = try DICOMReader(path: packed)
            for k in [2, 0, 1] { #expect(try reader.frame(k) == reference.frame(k), "\(tool) frame \(k)") }
        }
    }

    @Test func lossyJPEGIsDecodedAndFlagged() throws {
        let (plain, _) = try original(Case(bits: 8, signed: false, mono1: false, rescale: false), name: "lossy-plain.dcm")
        let packed = path("lossy.dcm")
        let run = try dcmtk("dcmcjpeg", ["+eb", plain, packed])
        try #require(run.status == 0, "\(run.stderr)")
        let s = try FrameSource.open(path: packed)
        let h = try #require(s.dicomHeader)
        #expect(h.isCompressed && h.isLossy && h.transferSyntaxUID == "1.2.840.10008.1.2.4.50")
        #expect(s.warnings.contains { $0.contains("lossy") }, "\(s.warnings)")
        let reference = try DICOMReader(path: plain)
        let a = try s.frame(at: 1).pixels, b = try reference.frame(1).pixels
        let meanError = zip(a, b).map { abs(Double($0) - Double($1)) }.reduce(0, +) / Double(a.count)
        #expect(meanError < 4, "baseline JPEG at its default quality stays close: \(meanError)")
    }

    @Test func aCorruptCompressedStreamIsATypedErrorNotACrash() throws {
        let (plain, _) = try original(Case(bits: 12, signed: false, mono1: false, rescale: false), name: "corrupt-plain.dcm")
        for (tool, options, _) in Self.codecs {
            let packed = path("corrupt-\(tool)\(options.joined()).dcm")
            try #require(try dcmtk(tool, options + [plain, packed]).status == 0)
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: packed)))
            let list = fragments(of: bytes)
            try #require(list.count == 4, "offset table and three frames: \(list.count)")
            let frame = list[2]
            if tool == "dcmcrle" {
                // RLE carries no check of its runs: what it can tell is a header that does not fit
                // the frame (15 segments for a 2-byte sample), so that is the corruption here.
                bytes.replaceSubrange(frame.offset..<(frame.offset + 4), with: [15, 0, 0, 0])
            } else {
                // Keep JPEG's start-of-image marker; scramble what follows.
                for i in (frame.offset + 2)..<(frame.offset + frame.length) { bytes[i] ^= 0xA5 }
            }
            let broken = path("broken-\(tool)\(options.joined()).dcm")
            try Data(bytes).write(to: URL(fileURLWithPath: broken))
            let reader = try DICOMReader(path: broken)
            #expect(try reader.frame(0).width == 40, "the frames before are read")
            do {
                let f = try reader.frame(1)
                // A scrambled stream may still decode to something: then it is a whole frame.
                #expect(f.pixels.count == 40 * 32, "\(tool)")
                Issue.record("\(tool): scrambled frame decoded without error")
            } catch {
                guard case .undecodable(let file, let reason) = error else { Issue.record("\(tool): \(error)"); continue }
                #expect(file == broken && !reason.isEmpty)
                #expect(error.description.contains("corrupt compressed pixel data"))
            }
            let s = try FrameSource.open(path: broken)
            #expect(throws: FrameSourceError.self) { try s.frame(at: 1) }
        }
    }

    @Test func decompressionBombsAreRefusedFromTheHeader() throws {
        // 4096² × 16 bits × 200 frames (6.7 GB decoded) in a file of a few kilobytes.
        var d = DICOMBytes()
        d.image(rows: 4096, columns: 4096, frames: 200, bitsAllocated: 16, bitsStored: 16)
        d.u16(0x7FE0); d.u16(0x0010); d.bytes += Array("OB".utf8) + [0, 0]; d.u32(0xFFFF_FFFF)
        d.u16(0xFFFE); d.u16(0xE000); d.u32(0)
        for _ in 0..<200 { d.u16(0xFFFE); d.u16(0xE000); d.u32(2); d.bytes += [0x80, 0x00] }
        d.u16(0xFFFE); d.u16(0xE0DD); d.u32(0)
        let bomb = path("bomb.dcm")
        try Data(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.5", dataset: d.bytes)).write(to: URL(fileURLWithPath: bomb))
        #expect {
            try DICOMReader(path: bomb)
        } throws: { e in
            guard case .overBudget(_, let what, let size, let limit, _) = e as? DICOMError else { return false }
            return what == "pixel data bytes" && size == 4096 * 4096 * 2 * 200 && limit == ImageLimits.standard.maxPixelDataBytes
        }
        // A real RLE file over a caller's tighter budget.
        let (plain, _) = try original(Case(bits: 12, signed: false, mono1: false, rescale: false), name: "budget-plain.dcm")
        let packed = path("budget.dcm")
        try #require(try dcmtk("dcmcrle", [plain, packed]).status == 0)
        #expect(throws: DICOMError.self) { try DICOMReader(path: packed, limits: ImageLimits(maxPixelDataBytes: 40 * 32 * 2 * 2)) }
        #expect(try DICOMReader(path: packed, limits: ImageLimits(maxPixelDataBytes: 40 * 32 * 2 * 3)).frameCount == 3)
    }

    @Test func aJPEGTemporaryMarkerBeforeTheFrameHeaderIsRefusedAtOpenNotLeftToHang() throws {
        // The system's DCMTK loops for ever on a TEM marker (0xFF01) met before the SOF while it
        // scans for the bit depth; such a stream is refused at open, so no frame read can hang.
        func file(_ fragment: [UInt8], _ name: String) throws -> String {
            var d = DICOMBytes()
            d.image(rows: 8, columns: 8, frames: 1, bitsAllocated: 8, bitsStored: 8)
            d.encapsulatedPixels(fragment + [UInt8](repeating: 0, count: 64 - fragment.count))
            let p = path(name)
            try Data(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.4.50", dataset: d.bytes)).write(to: URL(fileURLWithPath: p))
            return p
        }
        let hanging = try file([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0x01, 0xFF, 0xC0, 0x00, 0x0B, 0x08], "tem.dcm")
        do {
            _ = try DICOMReader(path: hanging)
            Issue.record("a TEM marker before the frame header was accepted; reading its frame would hang")
        } catch {
            #expect("\(error)".contains("TEM marker"), "\(error)")
        }
        #expect(throws: FrameSourceError.self) { try FrameSource.open(path: hanging) }
        // After the frame header the scan has stopped: the marker is the decoder's business, not a hang.
        let late = try file([0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00, 0xFF, 0x01], "tem-late.dcm")
        #expect(try DICOMReader(path: late).frameCount == 1)
    }

    @Test func moreFramesThanFragmentsIsCorrupt() throws {
        var d = DICOMBytes()
        d.image(rows: 8, columns: 8, frames: 1000, bitsAllocated: 8, bitsStored: 8)
        d.encapsulatedPixels([UInt8](repeating: 0, count: 64))
        let p = path("few-fragments.dcm")
        try Data(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.5", dataset: d.bytes)).write(to: URL(fileURLWithPath: p))
        #expect {
            try DICOMReader(path: p)
        } throws: { e in
            guard case .corrupt(_, let reason) = e as? DICOMError else { return false }
            return reason.contains("1000 frame(s)") && reason.contains("1 compressed fragment")
        }
    }

    @Test func rleSegmentOffsetsOutsideTheirFragmentAreRefusedBeforeDecoding() throws {
        let (plain, _) = try original(Case(bits: 12, signed: false, mono1: false, rescale: false), name: "rle-offsets-plain.dcm")
        let packed = path("rle-offsets.dcm")
        try #require(try dcmtk("dcmcrle", [plain, packed]).status == 0)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: packed)))
        let frame = fragments(of: bytes)[1]
        // The second segment starts far past the fragment's end.
        bytes.replaceSubrange((frame.offset + 8)..<(frame.offset + 12), with: [0, 0, 1, 0])
        let broken = path("rle-offsets-broken.dcm")
        try Data(bytes).write(to: URL(fileURLWithPath: broken))
        #expect {
            try DICOMReader(path: broken).frame(0)
        } throws: { e in
            guard case .undecodable(_, let reason) = e as? DICOMError else { return false }
            return reason.contains("segment 1 at 65536")
        }
    }

    /// 96 × 96 frames of noise: large enough to be split into 1 KiB fragments.
    func noisy(_ name: String, bits: Int) throws -> String {
        var rng = SplitMix64(seed: 9)
        let frames = (0..<4).map { _ in Frame(width: 96, height: 96, pixels: (0..<(96 * 96)).map { _ in UInt16(rng.next() % (1 << UInt64(bits))) }) }
        let p = path(name)
        try DICOMWriter.write(frames: frames, geometry: nil, frameInterval: nil, to: p, options: .init(bitsStored: bits))
        return p
    }

    @Test func rleFramesSplitOverFragmentsAreRefused() throws {
        let plain = try noisy("rle-split-plain.dcm", bits: 12)
        let packed = path("rle-split.dcm")
        try #require(try dcmtk("dcmcrle", ["+fs", "1", "-ot", plain, packed]).status == 0)
        #expect {
            try DICOMReader(path: packed)
        } throws: { e in
            guard case .corrupt(_, let reason) = e as? DICOMError else { return false }
            return reason.contains("each frame must be one fragment")
        }
    }

    @Test func jpegFramesOverSeveralFragmentsWithoutAnOffsetTableReadInAnyOrder() throws {
        let plain = try noisy("jpeg-split-plain.dcm", bits: 12)
        let packed = path("jpeg-split.dcm")
        try #require(try dcmtk("dcmcjpeg", ["+fs", "1", "-ot", plain, packed]).status == 0)
        let reader = try DICOMReader(path: packed), reference = try DICOMReader(path: plain)
        #expect(fragments(of: [UInt8](try Data(contentsOf: URL(fileURLWithPath: packed)))).count > 5, "several fragments a frame")
        for k in [3, 1, 2, 0, 3] { #expect(try reader.frame(k) == reference.frame(k), "frame \(k)") }
    }

    @Test func anRLESegmentThatRunsPastItsFrameStaysInTheFrame() throws {
        // One 8-bit segment of 200 runs of 128 bytes: 25 600 bytes for a 64-byte frame.
        var rle = [UInt8](repeating: 0, count: 64)
        rle[0] = 1
        rle[4] = 64
        for _ in 0..<200 { rle += [0x81, 0x7F] }
        var d = DICOMBytes()
        d.image(rows: 8, columns: 8, bitsAllocated: 8, bitsStored: 8)
        d.encapsulatedPixels(rle)
        let p = path("rle-overrun.dcm")
        try Data(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.5", dataset: d.bytes)).write(to: URL(fileURLWithPath: p))
        let reader = try DICOMReader(path: p)
        do {
            let f = try reader.frame(0)
            #expect(f.pixels == [UInt16](repeating: 0x7F, count: 64))
        } catch {
            guard case .undecodable = error else { Issue.record("\(error)"); return }
        }
    }
}
