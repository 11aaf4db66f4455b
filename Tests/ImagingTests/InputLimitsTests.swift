import Core
import Foundation
import Testing
@testable import Imaging

/// Raw deflate (RFC 1951) written by hand, so the tests can build files that inflate to any size
/// from a few bytes: fixed-Huffman literals, and runs of zeros as length-258 copies at distance 1.
struct RawDeflate {
    private(set) var bytes: [UInt8] = []
    private var acc: UInt32 = 0
    private var count = 0

    init() { bits(1, 1); bits(1, 2) }   // BFINAL, BTYPE = fixed Huffman

    private mutating func bits(_ v: UInt32, _ n: Int) {
        for i in 0..<n {
            acc |= ((v >> UInt32(i)) & 1) << UInt32(count)
            count += 1
            if count == 8 { bytes.append(UInt8(acc)); acc = 0; count = 0 }
        }
    }

    /// Huffman codes go most significant bit first.
    private mutating func code(_ c: UInt32, _ n: Int) {
        for i in (0..<n).reversed() { bits((c >> UInt32(i)) & 1, 1) }
    }

    mutating func literals(_ data: [UInt8]) {
        for b in data { b < 144 ? code(0x30 + UInt32(b), 8) : code(0x190 + UInt32(b) - 144, 9) }
    }

    /// `n` zero bytes: one literal, then copies of the byte before (13 bits for 258 bytes).
    mutating func zeros(_ n: Int) {
        guard n > 0 else { return }
        literals([0])
        var copies = (n - 1) / 258
        func copy(_ w: inout RawDeflate) { w.code(0xC5, 8); w.code(0, 5) }   // length 258, distance 1
        while copies > 0 && count != 0 { copy(&self); copies -= 1 }
        // Eight copies are 104 bits: whole bytes, repeated as such.
        var block = RawDeflate(empty: ())
        for _ in 0..<8 { copy(&block) }
        for _ in 0..<(copies / 8) { bytes += block.bytes }
        for _ in 0..<(copies % 8) { copy(&self) }
        literals([UInt8](repeating: 0, count: (n - 1) % 258))
    }

    private init(empty: Void) {}

    mutating func finish() -> [UInt8] {
        code(0, 7)   // end of block
        if count > 0 { bytes.append(UInt8(acc)); acc = 0; count = 0 }
        return bytes
    }
}

/// PNG files from their parts: a header that may declare anything, and a body given or empty.
enum PNGBytes {
    static func crc32(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~c
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc32(body))
    }

    /// `rows` are raw scanlines (without filter bytes); an empty body for a header-only file.
    static func file(width: UInt32, height: UInt32, bitDepth: UInt8, colourType: UInt8, rows: [[UInt8]] = []) -> [UInt8] {
        var deflate = RawDeflate()
        for r in rows { deflate.literals([0] + r) }
        var adler = (a: UInt32(1), b: UInt32(0))
        for b in rows.flatMap({ [UInt8(0)] + $0 }) { adler.a = (adler.a + UInt32(b)) % 65521; adler.b = (adler.b + adler.a) % 65521 }
        let zlib: [UInt8] = [0x78, 0x01] + deflate.finish() + be32(adler.b << 16 | adler.a)
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            + chunk("IHDR", be32(width) + be32(height) + [bitDepth, colourType, 0, 0, 0])
            + chunk("IDAT", zlib) + chunk("IEND", [])
    }
}

@Suite struct InputLimitsTests {
    let dir = scratchFolder("limits")

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let p = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    func folder(_ name: String) throws -> String {
        let p = path(name)
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    func fifo(_ name: String) throws -> String {
        let p = path(name)
        #expect(mkfifo(p, 0o600) == 0)
        return p
    }

    // MARK: PNG frames

    @Test func aPNGHeaderDeclaringAHugeFrameIsRefusedBeforeDecoding() throws {
        // 20000² at 16 bits would be 800 MB: the few bytes of body never get that far.
        let p = try write(PNGBytes.file(width: 20000, height: 20000, bitDepth: 16, colourType: 0, rows: [[1, 2, 3]]), "huge.png")
        #expect(throws: ImageFileError.tooLarge(file: p, width: 20000, height: 20000, limitPixels: 4096 * 4096)) {
            try PNGFrameFile.read(p)
        }
        let message = "\(ImageFileError.tooLarge(file: p, width: 20000, height: 20000, limitPixels: 4096 * 4096))"
        #expect(message.hasPrefix(p) && message.contains("20000 × 20000") && message.contains("4096 × 4096"), "\(message)")
        // A header too wide to multiply without overflow is refused the same way.
        let q = try write(PNGBytes.file(width: 0x7FFF_FFFF, height: 0x7FFF_FFFF, bitDepth: 16, colourType: 0), "overflow.png")
        #expect { try PNGFrameFile.read(q) } throws: { e in
            guard case ImageFileError.tooLarge(q, 0x7FFF_FFFF, 0x7FFF_FFFF, _) = e else { return false }
            return true
        }
        // In a folder it stops the source opening, whichever frame it is.
        let f = try folder("huge-folder")
        try PNGFrameFile.write(Frame(width: 4, height: 4, pixels: [UInt16](repeating: 1, count: 16)), to: f + "/a.png")
        try Data(PNGBytes.file(width: 20000, height: 20000, bitDepth: 16, colourType: 0)).write(to: URL(fileURLWithPath: f + "/b.png"))
        #expect(throws: FrameSourceError.image(.tooLarge(file: f + "/b.png", width: 20000, height: 20000, limitPixels: 4096 * 4096))) {
            try FrameSource.open(path: f)
        }
    }

    @Test func theFrameBudgetIsTheCallersToSet() throws {
        let frame = Frame(width: 64, height: 48, pixels: (0..<(64 * 48)).map { UInt16($0) })
        let p = path("budget.png")
        try PNGFrameFile.write(frame, to: p)
        #expect(try PNGFrameFile.read(p) == frame, "well inside the standard budget")
        let small = ImageLimits(maxFramePixels: 64 * 48 - 1)
        #expect(throws: ImageFileError.tooLarge(file: p, width: 64, height: 48, limitPixels: 64 * 48 - 1)) {
            try PNGFrameFile.read(p, limits: small)
        }
        #expect(try PNGFrameFile.read(p, limits: ImageLimits(maxFramePixels: 64 * 48)) == frame, "the budget is inclusive")
    }

    @Test(arguments: [(UInt8(8), UInt8(2), "8-bit RGB"), (8, 0, "8-bit greyscale"), (8, 3, "palette"), (1, 0, "1-bit greyscale"),
                      (16, 4, "greyscale + alpha"), (16, 2, "16-bit RGB"), (8, 6, "RGBA")])
    func onlySixteenBitGreyFramesAreRead(bitDepth: UInt8, colourType: UInt8, named: String) throws {
        let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(colourType)] ?? 1
        let rowBytes = max(1, 4 * channels * Int(bitDepth) / 8)
        let p = try write(PNGBytes.file(width: 4, height: 2, bitDepth: bitDepth, colourType: colourType,
                                        rows: [[UInt8]](repeating: [UInt8](repeating: 7, count: rowBytes), count: 2)), "format.png")
        #expect { try PNGFrameFile.read(p) } throws: { e in
            guard case ImageFileError.notGrey(p, let reason) = e else { return false }
            return reason.contains(named) && "\(e)".contains("16-bit greyscale")
        }
        // Refused from the header alone, as a folder is checked.
        #expect(throws: ImageFileError.self) { try PNGFrameFile.header(p) }
    }

    @Test func eightBitGreyIsWidenedOnlyWhenAsked() throws {
        let rows: [[UInt8]] = [[0, 1, 200, 255], [9, 8, 7, 6]]
        let p = try write(PNGBytes.file(width: 4, height: 2, bitDepth: 8, colourType: 0, rows: rows), "grey8.png")
        #expect(throws: ImageFileError.self) { try PNGFrameFile.read(p) }
        let f = try PNGFrameFile.read(p, widening8Bit: true)
        #expect(f.width == 4 && f.height == 2 && f.pixels == rows.flatMap { $0.map(UInt16.init) }, "values kept, not rescaled")
        // A 16-bit file written by hand decodes to the same values as through the writer.
        let words: [[UInt8]] = [[0x12, 0x34, 0xFF, 0xFF], [0, 1, 0x80, 0]]
        let q = try write(PNGBytes.file(width: 2, height: 2, bitDepth: 16, colourType: 0, rows: words), "grey16.png")
        #expect(try PNGFrameFile.read(q).pixels == [0x1234, 0xFFFF, 0x0001, 0x8000])
    }

    @Test func aHeaderThatLiesAboutItsBodyIsNotDecodedAsSomethingElse() throws {
        // Declares 8 × 8 but holds 2 rows: libpng fails, and nothing of another size comes back.
        let p = try write(PNGBytes.file(width: 8, height: 8, bitDepth: 16, colourType: 0, rows: [[UInt8]](repeating: [1, 2], count: 2)), "short.png")
        #expect { try PNGFrameFile.read(p) } throws: { e in
            guard case ImageFileError.unreadable(p, _) = e else { return false }
            return true
        }
    }

    @Test func aFolderOfMixedSizesIsRefusedAtOpenNamingTheFrame() throws {
        let f = try folder("mixed")
        try PNGFrameFile.write(Frame(width: 20, height: 16, pixels: [UInt16](repeating: 1, count: 320)), to: f + "/f1.png")
        try PNGFrameFile.write(Frame(width: 20, height: 16, pixels: [UInt16](repeating: 1, count: 320)), to: f + "/f2.png")
        try PNGFrameFile.write(Frame(width: 8, height: 8, pixels: [UInt16](repeating: 1, count: 64)), to: f + "/f10.png")
        #expect(throws: FrameSourceError.sizeMismatch(file: f + "/f10.png", expected: "20 × 16", got: "8 × 8")) { try FrameSource.open(path: f) }
        let rgb = try folder("rgb")
        try PNGFrameFile.write(Frame(width: 4, height: 2, pixels: [UInt16](repeating: 1, count: 8)), to: rgb + "/a.png")
        try Data(PNGBytes.file(width: 4, height: 2, bitDepth: 8, colourType: 2, rows: [[UInt8]](repeating: [UInt8](repeating: 9, count: 12), count: 2)))
            .write(to: URL(fileURLWithPath: rgb + "/b.png"))
        #expect { try FrameSource.open(path: rgb) } throws: { e in
            guard case FrameSourceError.image(.notGrey(let file, let reason)) = e else { return false }
            return file == rgb + "/b.png" && reason.contains("RGB")
        }
        #expect(throws: FrameSourceError.self, "RGB is never read, widening or not") { try FrameSource.open(path: rgb, widening8Bit: true) }
    }

    // MARK: Only regular files

    @Test func fifosDevicesAndFoldersAreRefusedUnopened() throws {
        // Each of these would block (FIFO) or stream without end (device) if it were read.
        let pipe = try fifo("pipe.dcm")
        #expect(throws: DICOMError.notRegularFile(file: pipe, kind: "a FIFO (named pipe)")) { try DICOMFile.read(pipe) }
        #expect(throws: FrameSourceError.dicom(.notRegularFile(file: pipe, kind: "a FIFO (named pipe)"))) { try FrameSource.open(path: pipe) }
        #expect(throws: ImageFileError.notRegularFile(file: pipe, kind: "a FIFO (named pipe)")) { try PNGFrameFile.read(pipe) }
        #expect(throws: DICOMError.notRegularFile(file: "/dev/zero", kind: "a character device")) { try DICOMFile.read("/dev/zero") }
        #expect(throws: ImageFileError.notRegularFile(file: "/dev/zero", kind: "a character device")) { try PNGFrameFile.read("/dev/zero") }
        #expect(throws: DICOMError.notRegularFile(file: dir.path, kind: "a directory")) { try DICOMFile.read(dir.path) }
        #expect("\(DICOMError.notRegularFile(file: pipe, kind: "a FIFO (named pipe)"))".hasPrefix(pipe))

        // A folder of frames with a FIFO or a folder among them is refused at open, naming the entry.
        let f = try folder("with-fifo")
        try PNGFrameFile.write(Frame(width: 4, height: 4, pixels: [UInt16](repeating: 1, count: 16)), to: f + "/a.png")
        #expect(mkfifo(f + "/b.png", 0o600) == 0)
        #expect(throws: FrameSourceError.image(.notRegularFile(file: f + "/b.png", kind: "a FIFO (named pipe)"))) { try FrameSource.open(path: f) }
        let g = try folder("with-folder")
        try PNGFrameFile.write(Frame(width: 4, height: 4, pixels: [UInt16](repeating: 1, count: 16)), to: g + "/a.png")
        try FileManager.default.createDirectory(atPath: g + "/b.png", withIntermediateDirectories: true)
        #expect(throws: FrameSourceError.image(.notRegularFile(file: g + "/b.png", kind: "a directory"))) { try FrameSource.open(path: g) }
    }

    @Test func aPNGFileLargerThanItsFrameCouldBeIsRefusedUnreadNamingTheSizes() throws {
        // One pixel of budget: 2 bytes plus 1 MiB of PNG overhead.
        let limits = ImageLimits(maxFramePixels: 1)
        let p = try write(PNGBytes.file(width: 1, height: 1, bitDepth: 16, colourType: 0) + [UInt8](repeating: 0, count: 1 << 20), "padded.png")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: p)[.size] as? Int)
        #expect(throws: ImageFileError.unreadable(file: p, reason: "the file holds \(size) bytes, over the \((1 << 20) + 2)-byte limit for a frame")) {
            try PNGFrameFile.read(p, limits: limits)
        }
        #expect(throws: ImageFileError.unreadable(file: path("absent.png"), reason: "no such file")) { try PNGFrameFile.read(path("absent.png")) }
        #expect(throws: ImageFileError.unreadable(file: path("absent.png"), reason: "no such file")) { try PNGFrameFile.header(path("absent.png")) }
    }

    // MARK: DICOM

    static let deflated = "1.2.840.10008.1.2.1.99"

    /// An explicit little endian image data set whose pixel data are `pixelBytes` zeros (or `values`).
    func dataSet(rows: Int, columns: Int, frames: Int, values: [UInt16]? = nil) -> (head: [UInt8], pixelBytes: Int) {
        var d = DICOMBytes()
        d.image(rows: rows, columns: columns, frames: frames)
        let n = rows * columns * frames * 2
        d.u16(0x7FE0); d.u16(0x0010); d.bytes += Array("OW".utf8) + [0, 0]; d.u32(UInt32(n))
        if let values { for v in values { d.u16(v) } }
        return (d.bytes, values == nil ? n : 0)
    }

    func deflatedFile(_ set: (head: [UInt8], pixelBytes: Int)) -> [UInt8] {
        var z = RawDeflate()
        z.literals(set.head)
        z.zeros(set.pixelBytes)
        return DICOMBytes.file(transferSyntax: Self.deflated, dataset: z.finish())
    }

    @Test func aDeflatedFileIsReadThroughTheBoundedInflater() throws {
        let values = (0..<(6 * 5 * 2)).map { UInt16($0 * 60) }
        let p = try write(deflatedFile(dataSet(rows: 5, columns: 6, frames: 2, values: values)), "deflated.dcm")
        let s = try DICOMFile.read(p)
        #expect(s.header.transferSyntaxUID == Self.deflated && s.header.transferSyntaxName.contains("Deflated"))
        #expect(s.frames.map(\.pixels) == [Array(values[..<30]), Array(values[30...])])
        #expect(s.header.sopClass == .xa)
        let m = try DICOMFile.read(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: p))), name: "mem")
        #expect(m.frames == s.frames && m.header == s.header)
    }

    @Test func inflationStopsAtTheBudgetWhileInflating() throws {
        // 4 MiB of zeros from ~25 KB, against a 1 MiB budget.
        let bytes = deflatedFile(dataSet(rows: 1024, columns: 1024, frames: 2))
        #expect(bytes.count < 40_000)
        let p = try write(bytes, "bomb-small.dcm")
        let limits = ImageLimits(maxInflatedBytes: 1 << 20)
        let reads: [() throws -> DICOMSeries] = [{ try DICOMFile.read(p, limits: limits) }, { try DICOMFile.read(bytes: bytes, name: p, limits: limits) }]
        for read in reads {
            #expect { _ = try read() } throws: { e in
                guard case DICOMError.overBudget(p, "inflated data set", let size, 1 << 20, let reason) = e else { return false }
                // Stopped within one output chunk of the limit, not after inflating everything.
                return size > 1 << 20 && size <= (1 << 20) + (256 << 10) && reason.contains("\(1 << 20)") && "\(e)".hasPrefix(p)
            }
        }
        #expect(try DICOMFile.read(p, limits: ImageLimits(maxInflatedBytes: 8 << 20)).frames.count == 2, "under a larger budget it reads")
    }

    @Test func aDeflateBombIsRefusedUnderTheDefaultBudget() throws {
        // A valid file, 150 frames of 1024², that inflates to 300 MiB from under 2 MB: over 256 MiB.
        let bytes = deflatedFile(dataSet(rows: 1024, columns: 1024, frames: 150))
        #expect(bytes.count < 2_000_000)
        let p = try write(bytes, "bomb.dcm")
        #expect { try DICOMFile.read(p) } throws: { e in
            guard case DICOMError.overBudget(p, "inflated data set", _, let limit, _) = e else { return false }
            return limit == ImageLimits.standard.maxInflatedBytes
        }
    }

    @Test func aMetaGroupNamingDeflateInAFormNotWalkedIsRefusedNotInflated() throws {
        // A big endian meta group: the bounded path does not read it, so DCMTK must not see it either.
        var meta = DICOMBytes(bigEndian: true)
        meta.string(0x0002, 0x0010, "UI", Self.deflated)
        var z = RawDeflate()
        z.literals(dataSet(rows: 2, columns: 2, frames: 1, values: [1, 2, 3, 4]).head)
        let p = try write([UInt8](repeating: 0, count: 128) + Array("DICM".utf8) + meta.bytes + z.finish(), "bigendian-meta.dcm")
        #expect { try DICOMFile.read(p) } throws: { e in
            guard case DICOMError.corrupt(p, let reason) = e else { return false }
            return reason.contains("Deflated")
        }
    }

    @Test func aMetaGroupNamingTheTransferSyntaxTwiceIsRefusedNotReadTwoWays() throws {
        // Deflated first, something else second: DCMTK would keep the first and inflate the data
        // set itself, with none of the bounds above.
        var z = RawDeflate()
        z.literals(dataSet(rows: 2, columns: 2, frames: 1, values: [1, 2, 3, 4]).head)
        var file = DICOMBytes.file(transferSyntax: Self.deflated, dataset: z.finish())
        var second = DICOMBytes()
        second.string(0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1")
        let metaEnd = DICOMBytes.file(transferSyntax: Self.deflated, dataset: []).count
        file.insert(contentsOf: second.bytes, at: metaEnd)
        let p = try write(file, "syntax-twice.dcm")
        #expect { try DICOMFile.read(p) } throws: { e in
            guard case DICOMError.corrupt(p, let reason) = e else { return false }
            return reason.contains("(0002,0010) twice")
        }
    }

    @Test func brokenDeflateStreamsAreTypedErrors() throws {
        let whole = deflatedFile(dataSet(rows: 4, columns: 4, frames: 1, values: [UInt16](repeating: 3, count: 16)))
        let meta = DICOMBytes.file(transferSyntax: Self.deflated, dataset: []).count
        #expect { try DICOMFile.read(try write(Array(whole[..<(meta + 20)]), "cut.dcm")) } throws: { e in
            guard case DICOMError.truncated = e else { return false }
            return true
        }
        // BTYPE 11 is reserved: not deflate at all.
        #expect { try DICOMFile.read(try write(DICOMBytes.file(transferSyntax: Self.deflated, dataset: [0x07, 1, 2, 3]), "junk.dcm")) } throws: { e in
            guard case DICOMError.corrupt = e else { return false }
            return true
        }
    }

    @Test func theFrameSizeIsCheckedFromTheHeaderBeforeThePixelData() throws {
        // 5000 × 5000 declared, with four bytes of pixel data: refused as over budget, not as truncated.
        var d = DICOMBytes()
        d.image(rows: 5000, columns: 5000)
        d.pixels16([1, 2])
        let p = try write(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.1", dataset: d.bytes), "wide.dcm")
        #expect { try DICOMFile.read(p) } throws: { e in
            guard case DICOMError.overBudget(p, "frame pixels", 25_000_000, 16_777_216, _) = e else { return false }
            return true
        }
        // The pixel data budget: frames × rows × columns × bytes a sample.
        let q = path("frames.dcm")
        try DICOMWriter.write(frames: (0..<3).map { _ in Frame(width: 8, height: 8, pixels: [UInt16](repeating: 5, count: 64)) },
                              geometry: nil, frameInterval: nil, to: q)
        #expect(try DICOMFile.read(q, limits: ImageLimits(maxPixelDataBytes: 3 * 128)).frames.count == 3)
        #expect { try DICOMFile.read(q, limits: ImageLimits(maxPixelDataBytes: 3 * 128 - 1)) } throws: { e in
            guard case DICOMError.overBudget(q, "pixel data bytes", 384, 383, _) = e else { return false }
            return true
        }
    }

    @Test func encapsulatedFragmentsLongerThanTheFileAreRefused() throws {
        var d = DICOMBytes()
        d.image(rows: 8, columns: 8, bitsAllocated: 8, bitsStored: 8)
        d.encapsulatedPixels([0xFF, 0xD8, 0xFF, 0xD9], declared: 0x7FFF_FFF0)
        let p = try write(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.4.50", dataset: d.bytes), "fragment.dcm")
        #expect { try DICOMFile.read(p) } throws: { e in
            switch e as? DICOMError {
            case .corrupt(p, _), .truncated(p, _): true
            default: false
            }
        }
    }

    @Test func checkReadsEveryFrameButHoldsOne() throws {
        let p = path("check.dcm")
        let frames = (0..<4).map { k in Frame(width: 6, height: 4, pixels: (0..<24).map { UInt16($0 + k * 100) }) }
        try DICOMWriter.write(frames: frames, geometry: nil, frameInterval: 40_000_000, to: p, options: .init(bitsStored: 12))
        let c = try DICOMFile.check(p)
        #expect(c.header.frameCount == 4 && c.firstFrameRange == (0, 23) && c.acquisitionOffsets == [0, 40_000_000, 80_000_000, 120_000_000])
        #expect(throws: DICOMError.notRegularFile(file: "/dev/null", kind: "a character device")) { try DICOMFile.check("/dev/null") }
    }
}
