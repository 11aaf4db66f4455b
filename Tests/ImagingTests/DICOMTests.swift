import Core
import Foundation
import Testing
@testable import Imaging

@Suite struct DICOMTests {
    let dir = scratchFolder("dicom")
    let geometry = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 730, columns: 48, rows: 40, pixelSpacing: 0.3,
                                primaryAngle: 0.523_598_775_598_298_8, secondaryAngle: -0.2617993877991494, isocenter: Vec3(3.5, -12.25, 40))

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func frames(_ count: Int, width: Int = 48, height: Int = 40, bits: Int, seed: UInt64 = 1) -> [Frame] {
        var rng = SplitMix64(seed: seed)
        let top = UInt64(1) << UInt64(bits)
        return (0..<count).map { _ in
            var pixels = (0..<(width * height)).map { _ in UInt16(rng.next() % top) }
            pixels[0] = 0
            pixels[1] = UInt16(top - 1)   // both ends of the range
            return Frame(width: width, height: height, pixels: pixels)
        }
    }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let p = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// The typed error `read` throws, or a recorded issue.
    func readError(_ p: String) -> DICOMError? {
        do {
            _ = try DICOMFile.read(p)
            Issue.record("\(p) was read without error")
            return nil
        } catch {
            #expect(error.file == p, "the error names the file")
            #expect(error.description.hasPrefix(p))
            return error
        }
    }

    // MARK: Round trips through the writer

    @Test(arguments: [(8, 8), (8, 16), (12, 16), (16, 16)])
    func framesRoundTripAtEveryBitDepth(bitsStored: Int, bitsAllocated: Int) throws {
        let source = frames(3, bits: bitsStored, seed: UInt64(bitsStored * 100 + bitsAllocated))
        let p = path("rt-\(bitsStored)-\(bitsAllocated).dcm")
        try DICOMWriter.write(frames: source, geometry: geometry, frameInterval: 66_666_667, to: p,
                              options: .init(bitsStored: bitsStored, bitsAllocated: bitsAllocated))
        let series = try DICOMFile.read(p)
        #expect(series.header.bitsStored == bitsStored && series.header.bitsAllocated == bitsAllocated)
        #expect(series.header.sopClass == .xa && series.header.transferSyntaxUID == "1.2.840.10008.1.2.1")
        #expect(series.frames.map(\.pixels) == source.map(\.pixels), "display values are the stored values for unsigned MONOCHROME2")
        #expect(series.pixelMapping.maxDisplay == UInt16((1 << bitsStored) - 1))
        #expect(series.frames.allSatisfy { $0.width == 48 && $0.height == 40 })
    }

    @Test func theWriterRefusesValuesTheStoredBitsCannotHold() {
        var f = frames(1, bits: 12)[0]
        f.pixels[5] = 4096
        #expect(throws: DICOMError.self) {
            try DICOMWriter.write(frames: [f], geometry: nil, frameInterval: nil, to: path("over.dcm"), options: .init(bitsStored: 12))
        }
        #expect(throws: DICOMError.self) {
            try DICOMWriter.write(frames: [f, Frame(width: 2, height: 2, pixels: [1, 2, 3, 4])], geometry: nil, frameInterval: nil, to: path("sizes.dcm"))
        }
        #expect(throws: DICOMError.self) {
            try DICOMWriter.write(frames: [], geometry: nil, frameInterval: nil, to: path("none.dcm"))
        }
        #expect(throws: DICOMError.self) {
            try DICOMWriter.write(frames: frames(1, bits: 8), geometry: nil, frameInterval: nil, to: "/nonexistent-dir/x.dcm")
        }
    }

    @Test func monochrome1IsInvertedToBrighterIsLarger() throws {
        let source = frames(2, bits: 12)
        let p = path("mono1.dcm")
        try DICOMWriter.write(frames: source, geometry: nil, frameInterval: nil, to: p, options: .init(bitsStored: 12, photometric: .monochrome1))
        let series = try DICOMFile.read(p)
        #expect(series.header.photometric == .monochrome1)
        for (a, b) in zip(source, series.frames) {
            #expect(b.pixels == a.pixels.map { 4095 - $0 })
        }
        // The mapping is invertible back to the stored values.
        let m = series.pixelMapping
        #expect(m.stored(display: series.frames[0].pixels[7]) == Int32(source[0].pixels[7]))
    }

    @Test func signedDataAndRescaleKeepTheIntensityOrder() throws {
        var rng = SplitMix64(seed: 9)
        let values: [Int16] = (0..<(48 * 40)).map { _ in Int16(rng.uniform(-2048, 2047.99).rounded(.down)) }
        let source = Frame(width: 48, height: 40, pixels: values.map { UInt16(bitPattern: $0) })
        for slope in [2.0, -0.5] {
            let p = path("signed-\(slope).dcm")
            try DICOMWriter.write(frames: [source], geometry: nil, frameInterval: nil, to: p,
                                  options: .init(bitsStored: 12, isSigned: true, rescale: (slope, -1000)))
            let s = try DICOMFile.read(p)
            #expect(s.header.isSigned && s.header.rescaleSlope == slope && s.header.rescaleIntercept == -1000)
            let display = s.frames[0].pixels
            let stored = try DICOMReader(path: p).storedValues(frame: 0)
            #expect(stored == values.map(Int32.init), "stored values are sign-extended")
            for i in 0..<200 {
                let j = (i * 37 + 11) % values.count
                let mi = slope * Double(values[i]) - 1000, mj = slope * Double(values[j]) - 1000
                // Brighter (larger display) exactly when the modality value is larger.
                if mi < mj { #expect(display[i] < display[j]) }
                if mi > mj { #expect(display[i] > display[j]) }
                #expect(s.pixelMapping.modalityValue(display: display[i]) == mi)
            }
            #expect(display.allSatisfy { $0 <= 4095 })
        }
    }

    @Test func multiFrameTimingStampsEachFrame() throws {
        let p = path("timing.dcm")
        try DICOMWriter.write(frames: frames(5, bits: 12), geometry: nil, frameInterval: 133_333_333, to: p, options: .init(bitsStored: 12))
        let s = try DICOMFile.read(p, start: 1_000_000_000)
        #expect(abs(s.header.frameTime! - 133.333333) < 1e-6)
        #expect(s.header.cineRate == 8)
        #expect(s.frameInterval == 133_333_333)
        #expect(s.frames.map(\.acquiredAt) == (0..<5).map { 1_000_000_000 + Int64($0) * 133_333_333 })
    }

    @Test func geometryTagsGiveBackTheSourceGeometry() throws {
        for syntax in [DICOMWriter.TransferSyntax.explicitLittleEndian, .implicitLittleEndian, .explicitBigEndian] {
            let p = path("geometry-\(syntax).dcm")
            try DICOMWriter.write(frames: frames(1, bits: 12), geometry: geometry, frameInterval: nil, to: p,
                                  options: .init(bitsStored: 12, transferSyntax: syntax))
            let s = try DICOMFile.read(p)
            let g = try #require(s.geometry, "\(syntax): \(s.geometryNotes)")
            #expect(s.geometryNotes.isEmpty)
            #expect(g.columns == 48 && g.rows == 40 && g.isocenter == geometry.isocenter)
            #expect(abs(g.primaryAngle - geometry.primaryAngle) < 1e-12 && abs(g.secondaryAngle - geometry.secondaryAngle) < 1e-12)
            var rng = SplitMix64(seed: 4)
            for _ in 0..<100 {
                let x = geometry.isocenter + Vec3(rng.uniform(-80, 80), rng.uniform(-80, 80), rng.uniform(-80, 80))
                let a = geometry.project(x), b = g.project(x)
                #expect(abs(a.u - b.u) < 1e-6 && abs(a.v - b.v) < 1e-6, "\(syntax)")
            }
            #expect(s.frames[0].pixels == frames(1, bits: 12)[0].pixels, "\(syntax): pixels survive the byte order")
        }
    }

    @Test func missingGeometryTagsAreNamedAndMissingAnglesAssumedZero() throws {
        let p = path("nogeometry.dcm")
        try DICOMWriter.write(frames: frames(1, bits: 8), geometry: nil, frameInterval: nil, to: p, options: .init(bitsStored: 8))
        let s = try DICOMFile.read(p)
        #expect(s.geometry == nil && s.frameInterval == nil)
        #expect(s.geometryNotes.count == 1 && s.geometryNotes[0].contains("DistanceSourceToDetector (0018,1110)"))
        #expect(s.frames[0].acquiredAt == 0)

        var d = DICOMBytes(explicit: false)
        d.image(rows: 16, columns: 16)
        d.string(0x0018, 0x1110, "DS", "1100")
        d.string(0x0018, 0x1111, "DS", "800")
        d.string(0x0018, 0x1164, "DS", "0.2\\0.2")
        d.pixels16([UInt16](repeating: 7, count: 256))
        let s2 = try DICOMFile.read(write(d.bytes, "noangles.dcm"))
        let g = try #require(s2.geometry)
        #expect(g.primaryAngle == 0 && g.secondaryAngle == 0 && g.sourceToDetector == 1100 && g.pixelSpacing == 0.2)
        #expect(s2.geometryNotes.contains { $0.contains("PositionerPrimaryAngle absent") })
    }

    // MARK: Files of other writers

    @Test func aBareImplicitVRDataSetIsRead() throws {
        // No preamble, no meta header: as old or minimal writers produce.
        var d = DICOMBytes(explicit: false)
        d.image(rows: 16, columns: 24, frames: 2, bitsStored: 10)
        d.string(0x0018, 0x0040, "IS", "15")
        d.string(0x0018, 0x1110, "DS", "1020.5")
        d.string(0x0018, 0x1111, "DS", "700")
        d.string(0x0018, 0x1164, "DS", "0.3\\0.3")
        d.string(0x0018, 0x1510, "DS", "-30")
        d.string(0x0018, 0x1511, "DS", "15.5")
        let values = (0..<768).map { UInt16($0) }
        d.pixels16(values)
        let s = try DICOMFile.read(write(d.bytes, "bare.dcm"))
        #expect(s.header.transferSyntaxUID == "1.2.840.10008.1.2")
        #expect(s.frames.count == 2 && s.frames[1].pixels == Array(values[384...]))
        #expect(s.header.cineRate == 15 && s.frameInterval == 66_666_667)
        let g = try #require(s.geometry)
        #expect(abs(g.primaryAngle + .pi / 6) < 1e-12 && abs(g.secondaryAngle - 15.5 * .pi / 180) < 1e-12 && g.sourceToDetector == 1020.5)
    }

    @Test func implicitVRWithMetaHeaderAndAFrameTimeVector() throws {
        var d = DICOMBytes(explicit: false)
        d.image(rows: 2, columns: 2, frames: 3)
        d.string(0x0018, 0x1065, "DS", "0\\100\\50")
        d.pixels16([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        let s = try DICOMFile.read(write(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2", dataset: d.bytes), "vector.dcm"), start: 10)
        #expect(s.frames.map(\.acquiredAt) == [10, 10 + 100_000_000, 10 + 150_000_000])
        #expect(s.frameInterval == 75_000_000)
    }

    @Test func oddButValidEncodingsAreRead() throws {
        // 16-bit pixels declared OB, values in the high bits (high bit 15 with 12 stored),
        // big endian explicit data, and 8-bit pixels in an implicit-VR OW element.
        var a = DICOMBytes()
        a.image(rows: 2, columns: 3, bitsStored: 12, highBit: 15)
        a.pixels16([0x0010, 0xFFF0, 0x1230, 0x8000, 0x0000, 0x7FF0], vr: "OB")
        let sa = try DICOMFile.read(write(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.1", dataset: a.bytes), "highbit.dcm"))
        #expect(sa.frames[0].pixels == [0x001, 0xFFF, 0x123, 0x800, 0x000, 0x7FF])

        var b = DICOMBytes(bigEndian: true)
        b.image(rows: 1, columns: 3, bitsStored: 16)
        b.pixels16([1, 0x1234, 0xFFFF])
        let sb = try DICOMFile.read(write(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.2", dataset: b.bytes), "big.dcm"))
        #expect(sb.frames[0].pixels == [1, 0x1234, 0xFFFF])

        var c = DICOMBytes(explicit: false)
        c.image(rows: 2, columns: 2, bitsAllocated: 8, bitsStored: 8)
        c.element(0x7FE0, 0x0010, "OW", [10, 20, 30, 250])
        let sc = try DICOMFile.read(write(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2", dataset: c.bytes), "ow8.dcm"))
        #expect(sc.frames[0].pixels == [10, 20, 30, 250])
    }

    // MARK: Files that cannot be read

    @Test func aCompressedTransferSyntaxWithoutACodecIsATypedErrorNamingIt() throws {
        // JPEG 2000: DCMTK has no decoder for it (RLE, JPEG and JPEG-LS are read: DICOMCompressedTests).
        var d = DICOMBytes()
        d.image(rows: 8, columns: 8, bitsAllocated: 8, bitsStored: 8)
        d.encapsulatedPixels([0xFF, 0x4F, 0xFF, 0xD9])
        let p = try write(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.4.90", dataset: d.bytes), "j2k.dcm")
        guard case .unsupportedTransferSyntax(_, let uid, let name) = readError(p) else { Issue.record("not a syntax error"); return }
        #expect(uid == "1.2.840.10008.1.2.4.90")
        #expect(name.contains("JPEG 2000"), "named: \(name)")
        #expect(throws: FrameSourceError.dicom(.unsupportedTransferSyntax(file: p, uid: uid, name: name))) { try FrameSource.open(path: p) }
    }

    @Test func unsupportedPhotometricAndBitsAreTypedErrors() throws {
        var rgb = DICOMBytes()
        rgb.image(rows: 2, columns: 2, bitsAllocated: 8, bitsStored: 8, photometric: "RGB", samples: 3)
        rgb.element(0x7FE0, 0x0010, "OB", [UInt8](repeating: 1, count: 12))
        guard case .unsupportedPhotometric(_, let r1) = readError(try write(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.1", dataset: rgb.bytes), "rgb.dcm")) else {
            Issue.record("RGB accepted or misclassified"); return
        }
        #expect(r1.contains("RGB"))
        var wide = DICOMBytes()
        wide.image(rows: 2, columns: 2, bitsAllocated: 32, bitsStored: 32)
        wide.element(0x7FE0, 0x0010, "OW", [UInt8](repeating: 1, count: 16))
        guard case .unsupportedBits = readError(try write(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.1", dataset: wide.bytes), "wide.dcm")) else {
            Issue.record("32 bits accepted or misclassified"); return
        }
        var noPixels = DICOMBytes()
        noPixels.image(rows: 2, columns: 2)
        guard case .missingAttribute = readError(try write(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.1", dataset: noPixels.bytes), "nopixels.dcm")) else {
            Issue.record("no pixel data accepted or misclassified"); return
        }
    }

    @Test func truncatedFilesAreTypedErrorsAtEveryCut() throws {
        let p = path("whole.dcm")
        try DICOMWriter.write(frames: frames(2, width: 8, height: 6, bits: 12), geometry: nil, frameInterval: 50_000_000, to: p, options: .init(bitsStored: 12))
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        var truncations = 0, cuts = 0
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            let q = try write(Array(bytes[..<cut]), "cut.dcm")
            guard let e = readError(q) else { continue }
            cuts += 1
            switch e {
            case .truncated: truncations += 1
            // Before the DICM prefix the file is not DICOM yet.
            case .notDICOM: #expect(cut < 132, "cut at \(cut)")
            // A cut exactly between elements leaves a shorter, complete data set without pixel data.
            case .missingAttribute(_, let reason): #expect(reason.contains("PixelData") || reason.contains("Rows"), "cut at \(cut): \(reason)")
            default: Issue.record("cut at \(cut): \(e)")
            }
        }
        #expect(truncations > cuts * 3 / 4, "\(truncations) of \(cuts) cuts reported as truncations")
        // A cut in the pixel data names the problem.
        guard case .truncated(_, let reason) = readError(try write(Array(bytes.dropLast(20)), "short.dcm")) else { Issue.record("short pixel data"); return }
        #expect(!reason.isEmpty)
    }

    @Test func garbageEmptyAndMissingFilesAreTypedErrors() throws {
        var rng = SplitMix64(seed: 5)
        guard case .notDICOM = readError(try write((0..<5000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, "noise.bin")) else {
            Issue.record("noise"); return
        }
        guard case .notDICOM = readError(try write(Array("patient,frame\n1,2\n".utf8), "text.csv")) else { Issue.record("text"); return }
        guard case .notDICOM = readError(try write([], "empty.dcm")) else { Issue.record("empty"); return }
        guard case .unreadable = readError(path("absent.dcm")) else { Issue.record("absent"); return }
        guard case .notRegularFile(_, "a directory") = readError(dir.path) else { Issue.record("folder"); return }
        // A PNG is not DICOM either.
        let png = path("frame.png")
        try PNGFrameFile.write(Frame(width: 4, height: 4, pixels: [UInt16](repeating: 9, count: 16)), to: png)
        guard case .notDICOM = readError(png) else { Issue.record("png"); return }
    }

    @Test func memoryAndFileReadsAgree() throws {
        let p = path("mem.dcm")
        try DICOMWriter.write(frames: frames(3, bits: 12), geometry: geometry, frameInterval: 40_000_000, to: p, options: .init(bitsStored: 12))
        let a = try DICOMFile.read(p)
        let b = try DICOMFile.read(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: p))), name: "copy")
        // Frames bigger than DCMTK's eager-read limit (4 KB) come from the file lazily in both cases.
        #expect(a.frames == b.frames && a.header == b.header && a.geometry == b.geometry)
        #expect(throws: DICOMError.notDICOM(file: "junk", reason: "not a DICOM file: no data")) { try DICOMFile.read(bytes: [], name: "junk") }
    }
}
