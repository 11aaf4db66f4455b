import Core
import Foundation
import Testing
@testable import Imaging

/// What a DICOM file says about its presentation (VOI, spacing, what is not honoured) and folders
/// of single-frame files.
@Suite struct DICOMPresentationTests {
    let dir = scratchFolder("dicom-presentation")

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func ramp(_ values: [UInt16], width: Int = 4) -> Frame { Frame(width: width, height: values.count / width, pixels: values) }

    /// Sets tags with DCMTK's dcmodify ("(gggg,eeee)=value"), in place.
    func modify(_ file: String, _ tags: [String]) throws {
        let r = try dcmtk("dcmodify", ["-nb"] + tags.flatMap { ["-i", $0] } + [file])
        try #require(r.status == 0, "dcmodify: \(r.stderr)")
    }

    // MARK: VOI

    @Test func aWindowIsAppliedAsPS33SaysAndCanBeLeftOut() throws {
        let stored: [UInt16] = [0, 1536, 1537, 2047, 2048, 2559, 2560, 4095]
        for mono1 in [false, true] {
            let p = path("window-\(mono1).dcm")
            try DICOMWriter.write(frames: [ramp(stored)], geometry: nil, frameInterval: nil, to: p,
                                  options: .init(bitsStored: 12, photometric: mono1 ? .monochrome1 : .monochrome2))
            try modify(p, ["(0028,1050)=2048", "(0028,1051)=1024"])
            let s = try FrameSource.open(path: p)
            #expect(s.maxValue == 65535)
            // LINEAR: 0 up to c − 0.5 − (w − 1)/2 = 1536, full above c − 0.5 + (w − 1)/2 = 2559.
            let y = stored.map { x -> UInt16 in
                let v = Double(x)
                let t = v <= 1536 ? 0 : (v > 2559 ? 1 : (v - 2047.5) / 1023 + 0.5)
                let scaled = UInt16((t * 65535).rounded())
                return mono1 ? 65535 - scaled : scaled
            }
            #expect(try s.frame(at: 0).pixels == y)
            #expect(s.dicomHeader?.voi == .window(center: 2048, width: 1024, function: .linear))
            let raw = try FrameSource.open(path: p, applyingVOI: false)
            #expect(raw.maxValue == 4095)
            #expect(try raw.frame(at: 0).pixels == (mono1 ? stored.map { 4095 - $0 } : stored))
        }
    }

    @Test func linearExactAndSigmoidWindows() {
        let exact = VOITransform.window(center: 100, width: 50, function: .linearExact)
        #expect(exact.apply(75) == 0 && exact.apply(100) == 0.5 && exact.apply(125) == 1 && exact.apply(112.5) == 0.75)
        let sigmoid = VOITransform.window(center: 100, width: 50, function: .sigmoid)
        #expect(sigmoid.apply(100) == 0.5 && sigmoid.apply(150) > 0.98 && sigmoid.apply(50) < 0.02)
    }

    /// An explicit little endian data set with a VOI LUT sequence of one item (and optionally a
    /// modality LUT sequence), 2 × 2 8-bit pixels 0, 1, 2, 3.
    func lutFile(_ name: String, lut: [UInt16], first: UInt16, bits: UInt16, modalityLUT: Bool = false, window: Bool = false,
                 sopClass: String = "1.2.840.10008.5.1.4.1.1.12.1") throws -> String {
        var d = DICOMBytes()
        d.image(rows: 2, columns: 2, bitsAllocated: 8, bitsStored: 8, sopClass: sopClass)
        if window {
            d.string(0x0028, 0x1050, "DS", "2")
            d.string(0x0028, 0x1051, "DS", "2")
        }
        func sequence(_ element: UInt16, _ item: DICOMBytes) {
            d.u16(0x0028); d.u16(element); d.bytes += Array("SQ".utf8) + [0, 0]; d.u32(0xFFFF_FFFF)
            d.u16(0xFFFE); d.u16(0xE000); d.u32(0xFFFF_FFFF)
            d.bytes += item.bytes
            d.u16(0xFFFE); d.u16(0xE00D); d.u32(0)
            d.u16(0xFFFE); d.u16(0xE0DD); d.u32(0)
        }
        var item = DICOMBytes()
        var descriptor = DICOMBytes()
        for v in [UInt16(lut.count), first, bits] { descriptor.u16(v) }
        item.element(0x0028, 0x3002, "US", descriptor.bytes)
        var data = DICOMBytes()
        for v in lut { data.u16(v) }
        item.element(0x0028, 0x3006, "OW", data.bytes)
        if modalityLUT { sequence(0x3000, item) }
        sequence(0x3010, item)
        d.element(0x7FE0, 0x0010, "OB", [0, 1, 2, 3])
        let p = path(name)
        try Data(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.1", dataset: d.bytes)).write(to: URL(fileURLWithPath: p))
        return p
    }

    @Test func aVOILUTSequenceIsAppliedClampedAtBothEnds() throws {
        let p = try lutFile("lut.dcm", lut: [10, 200, 255], first: 1, bits: 8)
        let reader = try DICOMReader(path: p)
        #expect(reader.header.voiLUT?.values == [10, 200, 255] && reader.header.voiLUT?.firstMapped == 1)
        // 0 is below the first mapped value (→ first entry), 3 above the last (→ last entry).
        let scale = { (v: Double) in UInt16((v / 255 * 65535).rounded()) }
        #expect(try reader.frame(0).pixels == [scale(10), scale(10), scale(200), scale(255)])
        #expect(reader.header.notHonoured.isEmpty)
    }

    @Test func whatIsNotHonouredIsNamed() throws {
        // Secondary capture: its Modality LUT Sequence is meant for display, and is not applied.
        let p = try lutFile("modality-lut.dcm", lut: [10, 200, 255], first: 1, bits: 8, modalityLUT: true, window: true,
                            sopClass: "1.2.840.10008.5.1.4.1.1.7")
        let s = try FrameSource.open(path: p)
        #expect(s.warnings.contains { $0.contains("ModalityLUTSequence (0028,3000) is not applied") }, "\(s.warnings)")
        // XA: its Modality LUT Sequence linearises for measurement only; leaving it out is honouring it.
        let xa = try FrameSource.open(path: try lutFile("modality-lut-xa.dcm", lut: [10, 200, 255], first: 1, bits: 8, modalityLUT: true))
        #expect(xa.warnings.isEmpty, "\(xa.warnings)")
        #expect(s.warnings.contains { $0.contains("VOILUTSequence (0028,3010) is not applied") }, "\(s.warnings)")
        #expect(s.dicomHeader?.voi == .window(center: 2, width: 2, function: .linear), "the window wins over the LUT")
    }

    // MARK: Spacing

    @Test func imagerPixelSpacingIsScaledToTheIsocentreAndPixelSpacingIsTheNamedFallback() throws {
        let g = CArmGeometry(sourceToDetector: 1200, sourceToIsocenter: 800, columns: 4, rows: 2, pixelSpacing: 0.3)
        let p = path("spacing.dcm")
        try DICOMWriter.write(frames: [ramp([1, 2, 3, 4, 5, 6, 7, 8])], geometry: g, frameInterval: nil, to: p, options: .init(bitsStored: 12))
        let s = try #require(try FrameSource.open(path: p).pixelSpacing)
        #expect(s.tag == "ImagerPixelSpacing (0018,1164)" && s.detector == [0.3, 0.3] && s.magnification == 1.5)
        #expect(s.magnificationSource == "DistanceSourceToDetector / DistanceSourceToPatient")
        #expect(s.isocenter.map { $0.map { abs($0 - 0.2) < 1e-12 } } == [true, true])

        var d = DICOMBytes()
        d.image(rows: 2, columns: 2, bitsAllocated: 8, bitsStored: 8)
        d.string(0x0028, 0x0030, "DS", "0.25\\0.5")
        d.element(0x7FE0, 0x0010, "OB", [0, 1, 2, 3])
        let q = path("pixel-spacing.dcm")
        try Data(DICOMBytes.file(transferSyntax: "1.2.840.10008.1.2.1", dataset: d.bytes)).write(to: URL(fileURLWithPath: q))
        let f = try #require(try FrameSource.open(path: q).pixelSpacing)
        #expect(f.tag == "PixelSpacing (0028,0030)" && f.isocenter == [0.25, 0.5] && f.detector == nil && f.magnification == nil)
    }

    // MARK: Folders

    /// A folder of single-frame files of one series: file k holds value 100·(k + 1) everywhere.
    func series(_ name: String, count: Int, instance: (Int) -> Int, time: (Int) -> String?, seriesUID: (Int) -> String = { _ in "1.2.826.0.1.3680043.9.7777.1" }) throws -> String {
        let folder = path(name)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for k in 0..<count {
            let p = folder + "/IMG\(count - k)"   // names in reverse of the frames' order
            try DICOMWriter.write(frames: [ramp([UInt16](repeating: UInt16(100 * (k + 1)), count: 8))], geometry: nil, frameInterval: nil, to: p,
                                  options: .init(bitsStored: 12))
            var tags = ["(0020,000E)=\(seriesUID(k))", "(0020,0013)=\(instance(k))"]
            if let t = time(k) { tags.append("(0008,0032)=\(t)") }
            try modify(p, tags)
        }
        return folder
    }

    @Test func aFolderOfSingleFrameFilesIsReadInInstanceOrderWithItsAcquisitionTimes() throws {
        // Instance numbers 1…5 in reverse name order; acquisition times 40 ms apart.
        let folder = try series("ordered", count: 5, instance: { $0 + 1 }, time: { String(format: "101010.%06d", $0 * 40_000) })
        try Data("DICOMDIR stand-in".utf8).write(to: URL(fileURLWithPath: folder + "/DICOMDIR"))
        let s = try FrameSource.open(path: folder, start: 1_000)
        #expect(s.kind == .dicomFolder && s.frameCount == 5 && !s.frameIntervalAssumed)
        var values: [UInt16] = [], times: [Nanoseconds] = []
        while let f = try s.next() { values.append(f.pixels[0]); times.append(f.acquiredAt) }
        #expect(values == [100, 200, 300, 400, 500])
        #expect(times == [0, 40, 80, 120, 160].map { 1_000 + Nanoseconds($0) * 1_000_000 })
        #expect(s.frameInterval == 40_000_000)
    }

    @Test func withoutTimesAFolderIsSpacedByTheGivenInterval() throws {
        let folder = try series("untimed", count: 3, instance: { 10 - $0 }, time: { _ in nil })
        let s = try FrameSource.open(path: folder, frameInterval: 50_000_000)
        var values: [UInt16] = []
        while let f = try s.next() { values.append(f.pixels[0]) }
        #expect(values == [300, 200, 100], "instance 8, 9, 10")
        #expect(try s.frame(at: 2).acquiredAt == 100_000_000)
    }

    @Test func aFolderMixingSeriesIsRefusedNamingThem() throws {
        let folder = try series("mixed", count: 3, instance: { $0 }, time: { _ in nil }, seriesUID: { $0 == 2 ? "1.2.3.999" : "1.2.3.1" })
        #expect {
            try FrameSource.open(path: folder)
        } throws: { e in
            guard case .mixedSeries(let p, let list) = e as? FrameSourceError else { return false }
            let text = (e as? FrameSourceError)?.description ?? ""
            return p == folder && list.count == 2 && text.contains("1.2.3.999: 1 file(s)") && text.contains("1.2.3.1: 2 file(s)")
        }
    }

    @Test func aStrayFileInADICOMFolderIsRefusedNamingIt() throws {
        let folder = try series("stray", count: 2, instance: { $0 }, time: { _ in nil })
        try Data("notes".utf8).write(to: URL(fileURLWithPath: folder + "/notes.txt"))
        #expect {
            try FrameSource.open(path: folder)
        } throws: { e in
            guard case .dicom(let d) = e as? FrameSourceError else { return false }
            return d.file == folder + "/notes.txt"
        }
    }

    @Test func anEmptyFolderHoldsNoFrames() throws {
        let folder = path("empty")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        #expect(throws: FrameSourceError.noFrames(path: folder)) { try FrameSource.open(path: folder) }
    }
}
