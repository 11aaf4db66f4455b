import CDCMTK
import Core

/// Writes frames as one multi-frame X-ray angiography (or RF) DICOM file, with the C-arm geometry
/// and the frame time in their standard tags, through DCMTK.
public enum DICOMWriter {
    public enum TransferSyntax: Sendable {
        /// 1.2.840.10008.1.2.1, the default.
        case explicitLittleEndian
        /// 1.2.840.10008.1.2.
        case implicitLittleEndian
        /// 1.2.840.10008.1.2.2 (retired; for reader tests).
        case explicitBigEndian
    }

    public struct Options: Sendable {
        /// Significant bits of each value (the high bit is bitsStored − 1): 12 for most detectors.
        public var bitsStored: Int
        /// 16, or 8 when bitsStored ≤ 8.
        public var bitsAllocated: Int
        public var sopClass: DICOMHeader.SOPClass
        public var transferSyntax: TransferSyntax
        /// MONOCHROME1 writes the values as given and labels them so (for reader tests).
        public var photometric: DICOMHeader.Photometric
        /// Two's complement values: each `UInt16` is the bit pattern of an `Int16` in range.
        public var isSigned: Bool
        /// RescaleSlope and RescaleIntercept, when given.
        public var rescale: (slope: Double, intercept: Double)?

        public init(bitsStored: Int = 16, bitsAllocated: Int = 16, sopClass: DICOMHeader.SOPClass = .xa,
                    transferSyntax: TransferSyntax = .explicitLittleEndian, photometric: DICOMHeader.Photometric = .monochrome2,
                    isSigned: Bool = false, rescale: (slope: Double, intercept: Double)? = nil) {
            self.bitsStored = bitsStored
            self.bitsAllocated = bitsAllocated
            self.sopClass = sopClass
            self.transferSyntax = transferSyntax
            self.photometric = photometric
            self.isSigned = isSigned
            self.rescale = rescale
        }
    }

    /// Writes `frames` (all the same size; stored values) to `path`. `geometry` (whose columns and
    /// rows must match the frames) goes into DistanceSourceToDetector, DistanceSourceToPatient,
    /// ImagerPixelSpacing and the positioner angles, its isocentre into a private block;
    /// `frameInterval` into FrameTime and CineRate.
    public static func write(frames: [Frame], geometry: CArmGeometry?, frameInterval: Nanoseconds?, to path: String,
                             options: Options = Options()) throws(DICOMError) {
        guard let first = frames.first else { throw .unwritable(file: path, reason: "no frames") }
        guard frames.allSatisfy({ $0.width == first.width && $0.height == first.height }) else {
            throw .unwritable(file: path, reason: "frames of different sizes")
        }
        guard first.width <= 65535, first.height <= 65535 else {
            throw .unwritable(file: path, reason: "frames larger than 65535 pixels a side")
        }
        guard options.bitsAllocated == 8 || options.bitsAllocated == 16, (1...options.bitsAllocated).contains(options.bitsStored) else {
            throw .unwritable(file: path, reason: "bits allocated \(options.bitsAllocated), stored \(options.bitsStored): need 8 or 16 allocated, 1…allocated stored")
        }
        guard options.sopClass == .xa || options.sopClass == .rf else {
            throw .unwritable(file: path, reason: "writes XA or RF image storage only")
        }
        // Values that do not fit the stored bits would be cut silently: refuse them.
        let bits = options.bitsStored
        let range: ClosedRange<Int> = options.isSigned ? -(1 << (bits - 1))...((1 << (bits - 1)) - 1) : 0...((1 << bits) - 1)
        for (k, f) in frames.enumerated() {
            for p in f.pixels {
                let v = options.isSigned ? Int(Int16(bitPattern: p)) : Int(p)
                if !range.contains(v) {
                    throw .unwritable(file: path, reason: "frame \(k) holds \(v), outside \(range.lowerBound)…\(range.upperBound) for \(bits) bits stored")
                }
            }
        }
        var p = lumen_dcm_write_params()
        p.rows = Int32(first.height)
        p.columns = Int32(first.width)
        p.frames = Int32(frames.count)
        p.bits_allocated = Int32(options.bitsAllocated)
        p.bits_stored = Int32(options.bitsStored)
        p.pixel_representation = options.isSigned ? 1 : 0
        p.monochrome1 = options.photometric == .monochrome1 ? 1 : 0
        p.sop_class = Int32(options.sopClass == .rf ? LUMEN_DCM_SOP_RF : LUMEN_DCM_SOP_XA)
        let syntax = switch options.transferSyntax {
        case .explicitLittleEndian: LUMEN_DCM_EXPLICIT_LITTLE
        case .implicitLittleEndian: LUMEN_DCM_IMPLICIT_LITTLE
        case .explicitBigEndian: LUMEN_DCM_EXPLICIT_BIG
        }
        p.transfer_syntax = Int32(syntax)
        if let r = options.rescale {
            p.has_rescale = 1
            p.rescale_slope = r.slope
            p.rescale_intercept = r.intercept
        }
        if let g = geometry {
            guard g.columns == first.width, g.rows == first.height else {
                throw .unwritable(file: path, reason: "geometry is \(g.columns) × \(g.rows) pixels, frames \(first.width) × \(first.height)")
            }
            p.has_geometry = 1
            p.source_to_detector = g.sourceToDetector
            p.source_to_patient = g.sourceToIsocenter
            p.pixel_spacing = g.pixelSpacing
            p.primary_angle = g.primaryAngle * 180 / .pi
            p.secondary_angle = g.secondaryAngle * 180 / .pi
            if g.isocenter != .zero {
                p.has_isocenter = 1
                p.isocenter = (g.isocenter.x, g.isocenter.y, g.isocenter.z)
            }
        }
        if let dt = frameInterval {
            guard dt > 0 else { throw .unwritable(file: path, reason: "frame interval must be positive, got \(dt) ns") }
            p.has_frame_time = 1
            p.frame_time = Double(dt) * 1e-6
        }
        var pixels = [UInt16]()
        pixels.reserveCapacity(first.width * first.height * frames.count)
        for f in frames { pixels.append(contentsOf: f.pixels) }
        var err = [CChar](repeating: 0, count: 512)
        let rc = lumen_dcm_write(path, &p, pixels, &err, Int32(err.count))
        guard rc == Int32(LUMEN_DCM_OK) else { throw .unwritable(file: path, reason: bridgeMessage(err)) }
    }
}
