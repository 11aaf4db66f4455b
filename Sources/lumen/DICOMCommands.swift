import ArgumentParser
import CommandSupport
import Core
import Foundation
import Imaging

struct DICOMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dicom", abstract: "DICOM files.", subcommands: [DICOMInfo.self])
}

/// `lumen dicom info PATH`: what the stack reads from a DICOM file — image, timing, C-arm geometry.
struct DICOMInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Print a DICOM file's image header, frame timing and the C-arm geometry its tags give.",
        discussion: """
        Reads every frame (one at a time), so a file that opens but cannot be decoded fails here too. Exits non-zero on any \
        problem. Compressed files (RLE Lossless, JPEG lossless and lossy, JPEG-LS) are decoded by DCMTK's codecs, one frame at \
        a time; a lossy one is flagged. Only regular files are read (a FIFO or device is refused unopened). Frames of more than 4096 × 4096 pixels \
        and pixel data over 4 GiB are refused from the header; a Deflated file is inflated in memory up to 256 MiB, and \
        refused as soon as it would inflate to more.
        """
    )

    @Argument(help: "A DICOM file (XA, RF or other greyscale image; uncompressed, Deflated, RLE, JPEG or JPEG-LS).") var path: String
    @Flag(help: "Print JSON on stdout.") var json = false

    struct Report: Encodable {
        var file: String
        var header: DICOMHeader
        var geometry: CArmGeometry?
        var geometry_notes: [String]
        var frame_interval_ms: Double?
        var display_range: [Int]
        var first_frame_min_max: [Int]
        var acquisition_offsets_ms: [Double]
        var compressed: Bool
        var lossy: Bool
        /// The VOI applied to the frames: "window", "lut" or "none".
        var voi: String
        var pixel_spacing: PixelSpacingInfo?
        /// What the file says that the reader does not honour.
        var not_honoured: [String]
    }

    func run() throws {
        let series: DICOMCheck
        do { series = try DICOMFile.check(path) } catch { throw CommandFailure(error.description) }
        let h = series.header
        let report = Report(file: path, header: h, geometry: series.geometry, geometry_notes: series.geometryNotes,
                            frame_interval_ms: series.frameInterval.map { Double($0) * 1e-6 },
                            display_range: [0, Int(series.pixelMapping.maxDisplay)],
                            first_frame_min_max: [Int(series.firstFrameRange.min), Int(series.firstFrameRange.max)],
                            acquisition_offsets_ms: series.acquisitionOffsets.map { Double($0) * 1e-6 },
                            compressed: h.isCompressed, lossy: h.isLossy, voi: voiName(h.voi), pixel_spacing: h.spacing,
                            not_honoured: h.notHonoured)
        if json {
            try Output.json(report)
            return
        }
        print("\(path): \(h.sopClass.rawValue) image, \(h.columns) × \(h.rows), \(h.frameCount) frame(s), \(h.transferSyntaxName) (\(h.transferSyntaxUID))")
        print("  pixels: \(h.bitsStored) of \(h.bitsAllocated) bits (high bit \(h.highBit)), \(h.isSigned ? "signed" : "unsigned"), \(h.photometric.rawValue)"
              + (h.rescaleSlope.map { ", rescale \($0) · v + \(h.rescaleIntercept ?? 0)" } ?? ""))
        if h.isCompressed { print("  compressed (\(h.isLossy ? "lossy: values are approximate" : "lossless")), decoded by DCMTK") }
        switch h.voi {
        case .window(let c, let w, let f)?: print("  VOI: window centre \(c), width \(w) (\(f.rawValue)), applied: display values span 0…65535")
        case .lut(let l)?: print("  VOI: LUT of \(l.values.count) entries from \(l.firstMapped), \(l.bits) bits, applied: display values span 0…65535")
        case nil: print("  VOI: none")
        }
        if let sp = h.spacing {
            let iso = sp.isocenter.map { String(format: ", %.4f mm at the isocentre", ($0[0] + $0[1]) / 2) } ?? ""
            let det = sp.detector.map { String(format: " %.4f mm at the detector", ($0[0] + $0[1]) / 2) } ?? ""
            print("  pixel spacing from \(sp.tag):\(det)\(iso)" + (sp.magnification.map { String(format: " (magnification %.3f)", $0) } ?? ""))
        } else {
            print("  no pixel spacing (ImagerPixelSpacing and PixelSpacing absent)")
        }
        print("  display values 0…\(series.pixelMapping.maxDisplay); first frame spans \(report.first_frame_min_max[0])…\(report.first_frame_min_max[1])")
        if let dt = series.frameInterval {
            print(String(format: "  frame interval %.3f ms (%.2f fps)", Double(dt) * 1e-6, 1e9 / Double(dt)))
        } else {
            print("  no frame timing (FrameTime, CineRate, FrameTimeVector absent)")
        }
        if let g = series.geometry {
            print(String(format: "  C-arm: SID %.1f mm, SOD %.1f mm, pixel %.4f mm, primary %.2f° (LAO +), secondary %.2f° (cranial +)",
                         g.sourceToDetector, g.sourceToIsocenter, g.pixelSpacing, g.primaryAngle * 180 / .pi, g.secondaryAngle * 180 / .pi))
            print(String(format: "  source at (%.1f, %.1f, %.1f) mm LPS, magnification %.3f at the isocentre", g.source.x, g.source.y, g.source.z, g.magnification))
        }
        for note in series.geometryNotes { print("  note: \(note)") }
        for w in h.notHonoured { print("  not honoured: \(w)") }
    }

    private func voiName(_ v: VOITransform?) -> String {
        switch v {
        case .window?: "window"
        case .lut?: "lut"
        case nil: "none"
        }
    }
}
