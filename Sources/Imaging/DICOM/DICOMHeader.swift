import CDCMTK
import Core

/// What a DICOM file's header says about its image, geometry and timing, as stored.
/// Absent tags are nil; lengths in mm, angles in degrees, times in ms (as in DICOM).
public struct DICOMHeader: Equatable, Sendable, Codable {
    public enum SOPClass: String, Sendable, Codable {
        case xa = "XA", rf = "RF", enhancedXA = "enhanced XA", enhancedRF = "enhanced XRF", other
    }

    public enum Photometric: String, Sendable, Codable {
        /// The minimum value is white (inverted).
        case monochrome1 = "MONOCHROME1"
        /// The minimum value is black.
        case monochrome2 = "MONOCHROME2"
    }

    public var rows: Int
    public var columns: Int
    public var frameCount: Int
    public var bitsAllocated: Int
    public var bitsStored: Int
    public var highBit: Int
    /// PixelRepresentation 1: two's complement stored values.
    public var isSigned: Bool
    public var photometric: Photometric
    public var sopClass: SOPClass
    public var sopClassUID: String
    public var transferSyntaxUID: String
    public var transferSyntaxName: String
    /// (0018,5100), e.g. "HFS"; nil when absent.
    public var patientPosition: String?
    /// RescaleSlope / RescaleIntercept (0028,1053 / 0028,1052); nil when absent.
    public var rescaleSlope: Double?
    public var rescaleIntercept: Double?
    /// (0018,1110) mm.
    public var distanceSourceToDetector: Double?
    /// (0018,1111) mm — source to isocentre.
    public var distanceSourceToPatient: Double?
    /// (0018,1164) mm: row spacing (between rows), column spacing (between columns).
    public var imagerPixelSpacing: [Double]?
    /// (0018,1510) degrees, LAO positive.
    public var positionerPrimaryAngle: Double?
    /// (0018,1511) degrees, cranial positive.
    public var positionerSecondaryAngle: Double?
    /// (0018,1063) ms.
    public var frameTime: Double?
    /// (0018,0040) frames per second.
    public var cineRate: Double?
    /// (0018,1065) ms, one entry per frame (the first normally 0).
    public var frameTimeVector: [Double]?
    /// mm LPS — the isocentre from Lumen's private block (0029,1010); files of other writers have none.
    public var isocenter: [Double]?

    init(_ i: lumen_dcm_info, frameTimes: [Double]?, isocenter: Vec3?) {
        rows = Int(i.rows)
        columns = Int(i.columns)
        frameCount = Int(i.frames)
        bitsAllocated = Int(i.bits_allocated)
        bitsStored = Int(i.bits_stored)
        highBit = Int(i.high_bit)
        isSigned = i.pixel_representation == 1
        photometric = i.monochrome1 != 0 ? .monochrome1 : .monochrome2
        sopClass = switch Int(i.sop_class) {
        case Int(LUMEN_DCM_SOP_XA): .xa
        case Int(LUMEN_DCM_SOP_RF): .rf
        case Int(LUMEN_DCM_SOP_ENHANCED_XA): .enhancedXA
        case Int(LUMEN_DCM_SOP_ENHANCED_RF): .enhancedRF
        default: .other
        }
        sopClassUID = cString(i.sop_class_uid)
        transferSyntaxUID = cString(i.transfer_syntax)
        transferSyntaxName = cString(i.transfer_syntax_name)
        let position = cString(i.patient_position)
        patientPosition = position.isEmpty ? nil : position
        rescaleSlope = i.has_rescale != 0 ? i.rescale_slope : nil
        rescaleIntercept = i.has_rescale != 0 ? i.rescale_intercept : nil
        distanceSourceToDetector = i.has_source_to_detector != 0 ? i.source_to_detector : nil
        distanceSourceToPatient = i.has_source_to_patient != 0 ? i.source_to_patient : nil
        imagerPixelSpacing = i.has_imager_pixel_spacing != 0 ? [i.imager_pixel_spacing.0, i.imager_pixel_spacing.1] : nil
        positionerPrimaryAngle = i.has_primary_angle != 0 ? i.primary_angle : nil
        positionerSecondaryAngle = i.has_secondary_angle != 0 ? i.secondary_angle : nil
        frameTime = i.has_frame_time != 0 ? i.frame_time : nil
        cineRate = i.has_cine_rate != 0 ? i.cine_rate : nil
        frameTimeVector = frameTimes
        self.isocenter = isocenter.map { [$0.x, $0.y, $0.z] }
    }

    /// How display values relate to the stored ones (see `DICOMPixelMapping`).
    public var pixelMapping: DICOMPixelMapping {
        DICOMPixelMapping(bitsStored: bitsStored, isSigned: isSigned, slope: rescaleSlope ?? 1,
                          intercept: rescaleIntercept ?? 0, inverted: photometric == .monochrome1)
    }

    /// The time between frames: FrameTime, else CineRate, else the mean of the FrameTimeVector.
    public var frameInterval: Nanoseconds? {
        if let t = frameTime, t > 0, t < 1e6 { return .fromSeconds(t * 1e-3) }
        if let r = cineRate, r > 0, r < 1e6 { return .fromSeconds(1 / r) }
        if let v = frameTimeVector, v.count > 1 {
            let mean = v.dropFirst().reduce(0, +) / Double(v.count - 1)
            if mean > 0, mean < 1e6 { return .fromSeconds(mean * 1e-3) }
        }
        return nil
    }

    /// Acquisition time of each frame relative to the first (ns): the FrameTimeVector's running
    /// sum where the file has one, else k × `frameInterval`; nil without any timing tag.
    public var frameOffsets: [Nanoseconds]? {
        if let v = frameTimeVector, v.count == frameCount {
            var t = 0.0
            return v.enumerated().map { k, dt in
                if k > 0 { t += dt }
                return .fromSeconds(t * 1e-3)
            }
        }
        guard let dt = frameInterval else { return nil }
        return (0..<frameCount).map { Nanoseconds($0) * dt }
    }

    /// The C-arm geometry the tags describe, or why there is none.
    ///
    /// Needs DistanceSourceToDetector, DistanceSourceToPatient and square ImagerPixelSpacing;
    /// positioner angles absent from the file are taken as 0 (noted in `assumptions`). The
    /// principal point is the image centre, the isocentre Lumen's private one or the origin.
    /// DICOM's primary (LAO +) and secondary (cranial +) angles are `CArmGeometry`'s.
    public var geometry: Result<(geometry: CArmGeometry, assumptions: [String]), GeometryProblem> {
        var missing: [String] = []
        if distanceSourceToDetector == nil { missing.append("DistanceSourceToDetector (0018,1110)") }
        if distanceSourceToPatient == nil { missing.append("DistanceSourceToPatient (0018,1111)") }
        if imagerPixelSpacing == nil { missing.append("ImagerPixelSpacing (0018,1164)") }
        guard missing.isEmpty, let sid = distanceSourceToDetector, let sod = distanceSourceToPatient,
              let spacing = imagerPixelSpacing else {
            return .failure(GeometryProblem(reason: "no geometry: missing " + missing.joined(separator: ", ")))
        }
        let (rowSpacing, columnSpacing) = (spacing[0], spacing[1])
        guard abs(rowSpacing - columnSpacing) <= 1e-6 * max(abs(rowSpacing), abs(columnSpacing)) else {
            return .failure(GeometryProblem(reason: "no geometry: non-square imager pixels \(rowSpacing) × \(columnSpacing) mm"))
        }
        var assumptions: [String] = []
        if positionerPrimaryAngle == nil { assumptions.append("PositionerPrimaryAngle absent: taken as 0°") }
        if positionerSecondaryAngle == nil { assumptions.append("PositionerSecondaryAngle absent: taken as 0°") }
        if let p = patientPosition, p != "HFS" {
            assumptions.append("PatientPosition \(p): angles are read in patient terms as for HFS")
        }
        let iso = isocenter.map { Vec3($0[0], $0[1], $0[2]) } ?? .zero
        let g = CArmGeometry(sourceToDetector: sid, sourceToIsocenter: sod, columns: columns, rows: rows,
                             pixelSpacing: (rowSpacing + columnSpacing) / 2,
                             primaryAngle: (positionerPrimaryAngle ?? 0) * .pi / 180,
                             secondaryAngle: (positionerSecondaryAngle ?? 0) * .pi / 180, isocenter: iso)
        var v = ConfigValidator()
        g.validate(into: &v)
        guard v.problems.isEmpty else {
            let list = v.problems.map { "\($0.field) \($0.message)" }.joined(separator: "; ")
            return .failure(GeometryProblem(reason: "no geometry: the tags give an implausible C-arm: \(list)"))
        }
        return .success((g, assumptions))
    }
}

/// Why a file's tags give no C-arm geometry.
public struct GeometryProblem: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// How stored pixel values become the `UInt16` display values of a `Frame`, and back.
///
/// Display values run over 0…2^bitsStored − 1 and grow with brightness, whatever the file's
/// encoding: signed values are offset by 2^(bitsStored−1); a negative rescale slope flips the
/// order (brightness follows the modality value slope · stored + intercept); MONOCHROME1 flips it
/// again (its minimum is white). With unsigned MONOCHROME2 data and no (or a positive) rescale the
/// display value is the stored value, so 12-bit detector counts stay 12-bit counts. The mapping is
/// exact and invertible: `modalityValue(display:)` recovers the rescaled value.
public struct DICOMPixelMapping: Equatable, Sendable {
    public var bitsStored: Int
    public var isSigned: Bool
    public var slope: Double
    public var intercept: Double
    public var inverted: Bool

    public init(bitsStored: Int, isSigned: Bool, slope: Double = 1, intercept: Double = 0, inverted: Bool = false) {
        self.bitsStored = bitsStored
        self.isSigned = isSigned
        self.slope = slope
        self.intercept = intercept
        self.inverted = inverted
    }

    /// The largest display value, 2^bitsStored − 1.
    public var maxDisplay: UInt16 { UInt16(truncatingIfNeeded: (1 << bitsStored) - 1) }
    var minStored: Int32 { isSigned ? -Int32(1 << (bitsStored - 1)) : 0 }
    /// Whether display order is the reverse of stored order.
    var flips: Bool { (slope < 0) != inverted }

    @inlinable func display(stored: Int32, minStored: Int32, max: Int32, flips: Bool) -> UInt16 {
        let offset = stored &- minStored
        return UInt16(truncatingIfNeeded: flips ? max &- offset : offset)
    }

    /// Display values of a frame's stored values.
    public func display(_ stored: UnsafeBufferPointer<Int32>) -> [UInt16] {
        let minStored = minStored, max = Int32(maxDisplay), flips = flips
        return [UInt16](unsafeUninitializedCapacity: stored.count) { out, n in
            for i in 0..<stored.count {
                out[i] = display(stored: stored[i], minStored: minStored, max: max, flips: flips)
            }
            n = stored.count
        }
    }

    public func display(stored: Int32) -> UInt16 {
        display(stored: stored, minStored: minStored, max: Int32(maxDisplay), flips: flips)
    }

    /// The stored value behind a display value.
    public func stored(display: UInt16) -> Int32 {
        let d = Int32(display)
        return (flips ? Int32(maxDisplay) - d : d) + minStored
    }

    /// The rescaled (modality) value behind a display value: slope · stored + intercept.
    public func modalityValue(display: UInt16) -> Double {
        slope * Double(stored(display: display)) + intercept
    }
}
