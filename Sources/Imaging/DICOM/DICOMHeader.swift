import CDCMTK
import Core
import Foundation

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
    /// Encapsulated pixel data (RLE, JPEG, JPEG-LS), decoded frame by frame by DCMTK's codecs.
    public var isCompressed: Bool = false
    /// A lossy transfer syntax, or LossyImageCompression (0028,2110) "01": the values are approximate.
    public var isLossy: Bool = false
    /// The first WindowCenter / WindowWidth (0028,1050 / 0028,1051), in modality (rescaled) values.
    public var windowCenter: Double?
    public var windowWidth: Double?
    /// VOILUTFunction (0028,1056): LINEAR (also when absent), LINEAR_EXACT or SIGMOID.
    public var voiLUTFunction: String = "LINEAR"
    /// The first LUT of VOILUTSequence (0028,3010).
    public var voiLUT: VOILUT?
    /// ModalityLUTSequence (0028,3000) is present. It is not applied: XA and XRF files ask for that
    /// (their LUT linearises for measurement, not display); for other classes `notHonoured` names it.
    public var hasModalityLUTSequence: Bool = false
    /// PixelSpacing (0028,0030) mm: row spacing, column spacing.
    public var pixelSpacing: [Double]?
    /// EstimatedRadiographicMagnificationFactor (0018,1114).
    public var estimatedMagnification: Double?
    /// PixelIntensityRelationship (0028,1040): LIN, LOG or DISP.
    public var pixelIntensityRelationship: String?
    /// PixelIntensityRelationshipSign (0028,1041): +1 larger values are more X-ray intensity, −1 less.
    public var pixelIntensityRelationshipSign: Int?
    /// SeriesInstanceUID (0020,000E).
    public var seriesInstanceUID: String?
    /// InstanceNumber (0020,0013).
    public var instanceNumber: Int?
    /// Seconds since 1970-01-01 from AcquisitionDateTime, else AcquisitionDate/Time, else
    /// ContentDate/Time (a time without a date counts from day 0). For ordering files of a series.
    public var acquisitionTime: Double?

    init(_ i: lumen_dcm_info, frameTimes: [Double]?, isocenter: Vec3?, voiLUTValues: [UInt16]? = nil) {
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
        isCompressed = i.compressed != 0
        isLossy = i.lossy != 0
        windowCenter = i.has_window != 0 ? i.window_center : nil
        windowWidth = i.has_window != 0 ? i.window_width : nil
        voiLUTFunction = cString(i.voi_lut_function)
        voiLUT = voiLUTValues.map { VOILUT(firstMapped: Int(i.voi_lut_first), bits: Int(i.voi_lut_bits), values: $0) }
        hasModalityLUTSequence = i.has_modality_lut_sequence != 0
        pixelSpacing = i.has_pixel_spacing != 0 ? [i.pixel_spacing.0, i.pixel_spacing.1] : nil
        estimatedMagnification = i.has_magnification != 0 ? i.magnification : nil
        let relationship = cString(i.pixel_intensity_relationship)
        pixelIntensityRelationship = relationship.isEmpty ? nil : relationship
        pixelIntensityRelationshipSign = i.has_intensity_sign != 0 ? Int(i.intensity_sign) : nil
        let series = cString(i.series_uid)
        seriesInstanceUID = series.isEmpty ? nil : series
        instanceNumber = i.has_instance_number != 0 ? Int(i.instance_number) : nil
        acquisitionTime = i.has_acquisition_time != 0 ? i.acquisition_time : nil
    }

    /// The VOI transform the file asks for: the first window where it has one, else the first LUT
    /// of its VOI LUT sequence; nil when it has neither (or only an unusable one).
    public var voi: VOITransform? {
        if let c = windowCenter, let w = windowWidth, let f = VOITransform.Function(rawValue: voiLUTFunction) {
            let usable = f == .linear ? w >= 1 : w > 0
            if usable, c.isFinite, w.isFinite { return .window(center: c, width: w, function: f) }
        }
        return voiLUT.map { .lut($0) }
    }

    /// Pixel spacing for measuring in the image: ImagerPixelSpacing (at the detector) with the
    /// magnification from SID / SOD (else EstimatedRadiographicMagnificationFactor) giving the
    /// spacing at the isocentre; PixelSpacing when the imager's is absent, taken as at the isocentre.
    public var spacing: PixelSpacingInfo? {
        let (magnification, source): (Double?, String?) =
            if let sid = distanceSourceToDetector, let sod = distanceSourceToPatient, sid > 0, sod > 0, sid >= sod {
                (sid / sod, "DistanceSourceToDetector / DistanceSourceToPatient")
            } else if let m = estimatedMagnification, m >= 1, m < 10 {
                (m, "EstimatedRadiographicMagnificationFactor (0018,1114)")
            } else { (nil, nil) }
        if let s = imagerPixelSpacing, s.count == 2, s.allSatisfy({ $0 > 0 && $0.isFinite }) {
            return PixelSpacingInfo(tag: "ImagerPixelSpacing (0018,1164)", detector: s, isocenter: magnification.map { m in s.map { $0 / m } },
                                    magnification: magnification, magnificationSource: source)
        }
        if let s = pixelSpacing, s.count == 2, s.allSatisfy({ $0 > 0 && $0.isFinite }) {
            return PixelSpacingInfo(tag: "PixelSpacing (0028,0030)", detector: nil, isocenter: s, magnification: nil, magnificationSource: nil)
        }
        return nil
    }

    /// mm per pixel for the detector's physical scales: the mean of ImagerPixelSpacing's row and
    /// column spacing, else of PixelSpacing's; nil when neither is given (or usable).
    public var pixelPitchMM: Double? {
        guard let s = spacing, let pair = s.detector ?? s.isocenter, pair.count == 2 else { return nil }
        let mean = 0.5 * (pair[0] + pair[1])
        return mean.isFinite && mean > 0 ? mean : nil
    }

    /// What the file says that the reader does not honour, one sentence each (empty for most files).
    public var notHonoured: [String] {
        var out: [String] = []
        // XA and XRF carry a Modality LUT Sequence to make values proportional to X-ray intensity
        // for measurement, not for display (their VOI applies to the stored values): leaving it out
        // is what those files ask for, so only other classes are told.
        if hasModalityLUTSequence, sopClass != .xa, sopClass != .rf {
            out.append("ModalityLUTSequence (0028,3000) is not applied: values are the stored values"
                       + (rescaleSlope != nil ? " with RescaleSlope/RescaleIntercept" : "") + ", so a window or VOI LUT meant for the LUT's output may not fit them")
        }
        if let w = windowWidth {
            if VOITransform.Function(rawValue: voiLUTFunction) == nil {
                out.append("VOILUTFunction '\(voiLUTFunction)' is not one of LINEAR, LINEAR_EXACT, SIGMOID: the window is not applied")
            } else if voi.map({ if case .window = $0 { false } else { true } }) ?? true {
                out.append("WindowWidth \(w) is not usable (LINEAR needs ≥ 1, the others > 0): the window is not applied")
            }
        }
        if voiLUT != nil, windowWidth != nil, case .window = voi {
            out.append("VOILUTSequence (0028,3010) is not applied: the window (0028,1050/1051) is, as both are present")
        }
        if isLossy { out.append("lossy compression (\(transferSyntaxName)): pixel values are approximate") }
        if let sign = pixelIntensityRelationshipSign {
            // Display order (after MONOCHROME1/2) is what the tracker receives: brighter = more transmitted.
            let largerIsBrighter = (rescaleSlope ?? 1) >= 0 ? photometric == .monochrome2 : photometric == .monochrome1
            if (sign == 1) != largerIsBrighter {
                out.append("PixelIntensityRelationshipSign \(sign) with \(photometric.rawValue): the display shows less X-ray intensity as brighter; frames follow the display")
            }
        }
        return out
    }

    /// How display values relate to the stored ones (see `DICOMPixelMapping`), with the file's
    /// VOI transform applied where it has one.
    public var pixelMapping: DICOMPixelMapping { pixelMapping(applyingVOI: true) }

    /// As `pixelMapping`; `applyingVOI: false` leaves the VOI out (display values are then the
    /// rescaled values' order over 0…2^bitsStored − 1).
    public func pixelMapping(applyingVOI: Bool) -> DICOMPixelMapping {
        DICOMPixelMapping(bitsStored: bitsStored, isSigned: isSigned, slope: rescaleSlope ?? 1,
                          intercept: rescaleIntercept ?? 0, inverted: photometric == .monochrome1, voi: applyingVOI ? voi : nil)
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
/// With a VOI transform (a window or a VOI LUT, PS3.3 C.11.2) the display value is the VOI's
/// output of the modality value scaled to 0…65535, inverted for MONOCHROME1: what a viewer shows,
/// brighter is larger, at full 16-bit resolution. That mapping clips outside the window and is not
/// invertible; without a VOI the rest of this comment holds.
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
    /// The VOI transform applied after the rescale, or nil.
    public var voi: VOITransform?

    public init(bitsStored: Int, isSigned: Bool, slope: Double = 1, intercept: Double = 0, inverted: Bool = false,
                voi: VOITransform? = nil) {
        self.bitsStored = bitsStored
        self.isSigned = isSigned
        self.slope = slope
        self.intercept = intercept
        self.inverted = inverted
        self.voi = voi
    }

    /// The largest display value: 65535 with a VOI, else 2^bitsStored − 1.
    public var maxDisplay: UInt16 { voi != nil ? .max : UInt16(truncatingIfNeeded: (1 << bitsStored) - 1) }

    /// The display value of every stored value from the smallest up (2^bitsStored entries), for a
    /// mapping with a VOI; nil without one (the mapping is then plain arithmetic).
    public func voiTable() -> [UInt16]? {
        guard let voi else { return nil }
        let count = 1 << bitsStored, first = Int(minStored)
        return (0..<count).map { k in
            let y = voi.apply(slope * Double(first + k) + intercept)
            let scaled = (min(max(y, 0), 1) * 65535).rounded()
            return UInt16(inverted ? 65535 - scaled : scaled)
        }
    }
    var minStored: Int32 { isSigned ? -Int32(1 << (bitsStored - 1)) : 0 }
    /// Whether display order is the reverse of stored order.
    var flips: Bool { (slope < 0) != inverted }

    @inlinable func display(stored: Int32, minStored: Int32, max: Int32, flips: Bool) -> UInt16 {
        let offset = stored &- minStored
        return UInt16(truncatingIfNeeded: flips ? max &- offset : offset)
    }

    /// Display values of a frame's stored values, through `table` (from `voiTable()`) when given.
    public func display(_ stored: UnsafeBufferPointer<Int32>, table: [UInt16]? = nil) -> [UInt16] {
        let minStored = minStored, flips = flips
        if let table, table.count == 1 << bitsStored {
            return [UInt16](unsafeUninitializedCapacity: stored.count) { out, n in
                table.withUnsafeBufferPointer { t in
                    for i in 0..<stored.count {
                        // Stored values are within bitsStored (the bridge masks them): the index is in range.
                        let k = Int(stored[i] &- minStored)
                        out[i] = k >= 0 && k < t.count ? t[k] : 0
                    }
                }
                n = stored.count
            }
        }
        let max = Int32((1 << bitsStored) - 1)
        return [UInt16](unsafeUninitializedCapacity: stored.count) { out, n in
            for i in 0..<stored.count {
                out[i] = display(stored: stored[i], minStored: minStored, max: max, flips: flips)
            }
            n = stored.count
        }
    }

    public func display(stored: Int32) -> UInt16 {
        if let table = voiTable() {
            let k = Int(stored) - Int(minStored)
            return k >= 0 && k < table.count ? table[k] : 0
        }
        return display(stored: stored, minStored: minStored, max: Int32(maxDisplay), flips: flips)
    }

    /// The stored value behind a display value (without a VOI: a window or LUT is not invertible).
    public func stored(display: UInt16) -> Int32 {
        let d = Int32(display)
        return (flips ? Int32(maxDisplay) - d : d) + minStored
    }

    /// The rescaled (modality) value behind a display value: slope · stored + intercept (without a VOI).
    public func modalityValue(display: UInt16) -> Double {
        slope * Double(stored(display: display)) + intercept
    }
}

/// A VOI LUT from VOILUTSequence: input values from `firstMapped` on index `values` (clamped at
/// both ends); outputs have `bits` bits.
public struct VOILUT: Equatable, Sendable, Codable {
    public var firstMapped: Int
    public var bits: Int
    public var values: [UInt16]

    public init(firstMapped: Int, bits: Int, values: [UInt16]) {
        self.firstMapped = firstMapped
        self.bits = bits
        self.values = values
    }

    enum CodingKeys: String, CodingKey { case firstMapped, bits, entries, values }

    // The entries are data, not header: reports give the descriptor only.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(firstMapped, forKey: .firstMapped)
        try c.encode(bits, forKey: .bits)
        try c.encode(values.count, forKey: .entries)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        firstMapped = try c.decode(Int.self, forKey: .firstMapped)
        bits = try c.decode(Int.self, forKey: .bits)
        values = try c.decodeIfPresent([UInt16].self, forKey: .values) ?? []
    }
}

/// The VOI transform of PS3.3 C.11.2.1: modality values to presentation values in 0…1.
public enum VOITransform: Equatable, Sendable {
    public enum Function: String, Sendable, Codable {
        case linear = "LINEAR", linearExact = "LINEAR_EXACT", sigmoid = "SIGMOID"
    }

    case window(center: Double, width: Double, function: Function)
    case lut(VOILUT)

    /// The presentation value of modality value `x`, 0 (darkest before MONOCHROME1) … 1.
    public func apply(_ x: Double) -> Double {
        switch self {
        case .window(let c, let w, let f):
            switch f {
            case .linear:
                // PS3.3 C.11.2.1.2.1: the window's bounds are c − 0.5 ± (w − 1)/2.
                if x <= c - 0.5 - (w - 1) / 2 { return 0 }
                if x > c - 0.5 + (w - 1) / 2 { return 1 }
                return ((x - (c - 0.5)) / (w - 1) + 0.5)
            case .linearExact:
                if x <= c - w / 2 { return 0 }
                if x > c + w / 2 { return 1 }
                return (x - c) / w + 0.5
            case .sigmoid:
                return 1 / (1 + exp(-4 * (x - c) / w))
            }
        case .lut(let l):
            guard !l.values.isEmpty else { return 0 }
            let i = Int((x - Double(l.firstMapped)).rounded(.down))
            let v = l.values[min(max(i, 0), l.values.count - 1)]
            return Double(v) / Double((1 << l.bits) - 1)
        }
    }
}

/// Where a file's pixel spacing comes from and what it is at the detector and at the isocentre.
public struct PixelSpacingInfo: Equatable, Sendable, Codable {
    /// The tag it was read from: "ImagerPixelSpacing (0018,1164)" or "PixelSpacing (0028,0030)".
    public var tag: String
    /// mm at the detector (row, column spacing): ImagerPixelSpacing as stored.
    public var detector: [Double]?
    /// mm at the isocentre: the imager's divided by the magnification, or PixelSpacing as stored.
    public var isocenter: [Double]?
    /// Source-to-detector over source-to-isocentre distance, or the estimated factor.
    public var magnification: Double?
    /// Which tags gave the magnification.
    public var magnificationSource: String?
}
