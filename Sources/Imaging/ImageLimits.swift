import Foundation

/// How much an image input may make the reader allocate, checked from headers before anything is
/// decoded: a few hundred bytes must never buy gigabytes. Every reader (PNG frames, DICOM files,
/// `FrameSource`) takes one; the defaults suit every C-arm detector in use (up to 4096 × 4096).
/// A caller with a larger detector passes its own; the command-line tools use `standard`.
public struct ImageLimits: Sendable, Equatable {
    /// Width × height of one frame, pixels. Default 4096 × 4096 (16 Mi): a 16-bit frame of 32 MiB.
    public var maxFramePixels: Int
    /// Rows × columns × frames × bytes per sample of a DICOM file's pixel data. Default 4 GiB, the
    /// most a native (uncompressed) PixelData element can hold.
    public var maxPixelDataBytes: UInt64
    /// The inflated data set of a Deflated Explicit VR Little Endian DICOM file, which is held in
    /// memory while the file is open. Default 256 MiB; inflation stops as soon as it is passed.
    public var maxInflatedBytes: UInt64

    public init(maxFramePixels: Int = 4096 * 4096, maxPixelDataBytes: UInt64 = 0xFFFF_FFFE, maxInflatedBytes: UInt64 = 256 << 20) {
        self.maxFramePixels = maxFramePixels
        self.maxPixelDataBytes = maxPixelDataBytes
        self.maxInflatedBytes = maxInflatedBytes
    }

    public static let standard = ImageLimits()

    /// The largest encoded PNG frame read: a 16-bit frame at the pixel budget stored without
    /// compression (filter bytes, zlib and chunk overhead are well under 1 MiB on top).
    var maxPNGFileBytes: Int { maxFramePixels.multipliedReportingOverflow(by: 2).partialValue.addingReportingOverflow(1 << 20).partialValue }

    /// "20000 × 20000 pixels (800 MB at 16 bits)" against "the 16777216-pixel budget (4096 × 4096)".
    func frameSizeProblem(width: Int, height: Int) -> String? {
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard overflow || pixels > maxFramePixels else { return nil }
        let side = Int(Double(maxFramePixels).squareRoot())
        let mib = Double(maxFramePixels) * 2 / 1_048_576
        return "\(width) × \(height) pixels is over the frame budget of \(maxFramePixels) pixels (\(side) × \(side), "
            + String(format: "%.0f MiB at 16 bits); refused before decoding", mib)
    }
}
