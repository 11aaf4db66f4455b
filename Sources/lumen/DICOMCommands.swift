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
        problem. Only regular files are read (a FIFO or device is refused unopened). Frames of more than 4096 × 4096 pixels \
        and pixel data over 4 GiB are refused from the header; a Deflated file is inflated in memory up to 256 MiB, and \
        refused as soon as it would inflate to more.
        """
    )

    @Argument(help: "A DICOM file (XA, RF or other greyscale image; uncompressed).") var path: String
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
    }

    func run() throws {
        let series: DICOMCheck
        do { series = try DICOMFile.check(path) } catch { throw CommandFailure(error.description) }
        let h = series.header
        let report = Report(file: path, header: h, geometry: series.geometry, geometry_notes: series.geometryNotes,
                            frame_interval_ms: series.frameInterval.map { Double($0) * 1e-6 },
                            display_range: [0, Int(series.pixelMapping.maxDisplay)],
                            first_frame_min_max: [Int(series.firstFrameRange.min), Int(series.firstFrameRange.max)],
                            acquisition_offsets_ms: series.acquisitionOffsets.map { Double($0) * 1e-6 })
        if json {
            try Output.json(report)
            return
        }
        print("\(path): \(h.sopClass.rawValue) image, \(h.columns) × \(h.rows), \(h.frameCount) frame(s), \(h.transferSyntaxName) (\(h.transferSyntaxUID))")
        print("  pixels: \(h.bitsStored) of \(h.bitsAllocated) bits (high bit \(h.highBit)), \(h.isSigned ? "signed" : "unsigned"), \(h.photometric.rawValue)"
              + (h.rescaleSlope.map { ", rescale \($0) · v + \(h.rescaleIntercept ?? 0)" } ?? ""))
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
    }
}
