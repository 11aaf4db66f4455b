import Foundation

/// The geometry of one C-arm plane: where the X-ray source and the detector are, and how a
/// point in the patient maps to a detector pixel.
///
/// Patient coordinates are DICOM's LPS, in mm: x to the patient's left, y posterior, z superior.
/// At zero angles the beam runs posterior → anterior (source under the table), and the image is
/// seen from the front: columns grow to the patient's left, rows grow toward the feet. The
/// primary angle is LAO-positive (the detector swings toward the patient's left), the secondary
/// cranial-positive (the detector tilts toward the head), as DICOM's PositionerPrimaryAngle and
/// PositionerSecondaryAngle. Pixels are (u, v) = (column, row) with (0, 0) at the centre of the
/// top-left pixel.
public struct CArmGeometry: ValidatedConfig, Equatable, Sendable, Codable {
    /// mm — source to detector (DistanceSourceToDetector).
    public var sourceToDetector: Double
    /// mm — source to isocentre (DistanceSourceToPatient).
    public var sourceToIsocenter: Double
    public var columns: Int
    public var rows: Int
    /// mm — detector pixel pitch (ImagerPixelSpacing), square pixels.
    public var pixelSpacing: Double
    /// rad — LAO positive, RAO negative.
    public var primaryAngle: Double
    /// rad — cranial positive, caudal negative.
    public var secondaryAngle: Double
    /// mm — the isocentre in patient coordinates.
    public var isocenter: Vec3

    enum CodingKeys: String, CodingKey, CaseIterable {
        case sourceToDetector = "source_to_detector_mm", sourceToIsocenter = "source_to_isocenter_mm"
        case columns, rows, pixelSpacing = "pixel_spacing_mm"
        case primaryAngle = "primary_angle_deg", secondaryAngle = "secondary_angle_deg", isocenter = "isocenter_mm"
    }

    public init(sourceToDetector: Double = 1020, sourceToIsocenter: Double = 700, columns: Int = 1024, rows: Int = 1024,
                pixelSpacing: Double = 0.3, primaryAngle: Double = 0, secondaryAngle: Double = 0, isocenter: Vec3 = .zero) {
        self.sourceToDetector = sourceToDetector
        self.sourceToIsocenter = sourceToIsocenter
        self.columns = columns
        self.rows = rows
        self.pixelSpacing = pixelSpacing
        self.primaryAngle = primaryAngle
        self.secondaryAngle = secondaryAngle
        self.isocenter = isocenter
    }

    /// Angles are degrees in files (as in DICOM), radians in code.
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sourceToDetector = try c.decode(Double.self, forKey: .sourceToDetector)
        sourceToIsocenter = try c.decode(Double.self, forKey: .sourceToIsocenter)
        columns = try c.decode(Int.self, forKey: .columns)
        rows = try c.decode(Int.self, forKey: .rows)
        pixelSpacing = try c.decode(Double.self, forKey: .pixelSpacing)
        primaryAngle = try c.decode(Double.self, forKey: .primaryAngle) * .pi / 180
        secondaryAngle = try c.decode(Double.self, forKey: .secondaryAngle) * .pi / 180
        let iso = try c.decodeIfPresent([Double].self, forKey: .isocenter) ?? [0, 0, 0]
        guard iso.count == 3 else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.isocenter], debugDescription: "must hold 3 numbers"))
        }
        isocenter = Vec3(iso[0], iso[1], iso[2])
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sourceToDetector, forKey: .sourceToDetector)
        try c.encode(sourceToIsocenter, forKey: .sourceToIsocenter)
        try c.encode(columns, forKey: .columns)
        try c.encode(rows, forKey: .rows)
        try c.encode(pixelSpacing, forKey: .pixelSpacing)
        try c.encode(primaryAngle * 180 / .pi, forKey: .primaryAngle)
        try c.encode(secondaryAngle * 180 / .pi, forKey: .secondaryAngle)
        try c.encode([isocenter.x, isocenter.y, isocenter.z], forKey: .isocenter)
    }

    public func validate(into v: inout ConfigValidator) {
        v.check(sourceToDetector, in: 300...2000, "source_to_detector_mm")
        v.check(sourceToIsocenter, in: 100...1900, "source_to_isocenter_mm")
        v.check(sourceToIsocenter < sourceToDetector, "source_to_isocenter_mm",
                "must be less than source_to_detector_mm (\(sourceToDetector)), got \(sourceToIsocenter)")
        v.check((16...8192).contains(columns), "columns", "must be 16…8192, got \(columns)")
        v.check((16...8192).contains(rows), "rows", "must be 16…8192, got \(rows)")
        v.check(pixelSpacing, in: 0.01...5, "pixel_spacing_mm")
        v.check(primaryAngle, in: -.pi...(.pi), "primary_angle_deg")
        v.check(secondaryAngle, in: -.pi / 2...(.pi / 2), "secondary_angle_deg")
        v.check(isocenter.isFinite, "isocenter_mm", "must be finite")
    }

    // MARK: The frame

    /// The rotation from the zero-angle C-arm to this one: LAO about the patient's z axis, after
    /// cranial about x.
    public var rotation: Mat3 { Mat3.rotationZ(primaryAngle) * Mat3.rotationX(-secondaryAngle) }
    /// Beam direction, source → detector (unit).
    public var beam: Vec3 { rotation * Vec3(0, -1, 0) }
    /// Detector column (u) and row (v) directions in the patient (unit).
    public var columnAxis: Vec3 { rotation * Vec3(1, 0, 0) }
    public var rowAxis: Vec3 { rotation * Vec3(0, 0, -1) }
    public var source: Vec3 { isocenter - beam * sourceToIsocenter }
    public var detectorCentre: Vec3 { source + beam * sourceToDetector }
    /// Magnification of an object at the isocentre.
    public var magnification: Double { sourceToDetector / sourceToIsocenter }
    /// The pixel at the detector's centre.
    public var principalPoint: (u: Double, v: Double) { (Double(columns - 1) / 2, Double(rows - 1) / 2) }

    /// Where `p` lands on the detector: pixel (u, v), and its distance from the source along the
    /// beam (mm). Points behind the source have a negative depth.
    public func project(_ p: Vec3) -> (u: Double, v: Double, depth: Double) {
        let d = p - source
        let depth = d.dot(beam)
        let scale = sourceToDetector / depth
        let c = principalPoint
        return (d.dot(columnAxis) * scale / pixelSpacing + c.u, d.dot(rowAxis) * scale / pixelSpacing + c.v, depth)
    }

    /// The ray from the source through pixel (u, v): origin and unit direction.
    public func ray(u: Double, v: Double) -> (origin: Vec3, direction: Vec3) {
        let c = principalPoint
        let onDetector = detectorCentre + columnAxis * ((u - c.u) * pixelSpacing) + rowAxis * ((v - c.v) * pixelSpacing)
        let d = onDetector - source
        return (source, d * (1 / d.length))
    }

    /// The 3 × 4 projection matrix P (row-major, 12 numbers): (u·w, v·w, w) = P · (x, y, z, 1).
    public var projectionMatrix: [Double] {
        let f = sourceToDetector / pixelSpacing
        let c = principalPoint
        let s = source
        // Rows: f·u_axis + c_u·beam, f·v_axis + c_v·beam, beam; translation −row·source.
        let r0 = columnAxis * f + beam * c.u, r1 = rowAxis * f + beam * c.v, r2 = beam
        return [r0.x, r0.y, r0.z, -r0.dot(s), r1.x, r1.y, r1.z, -r1.dot(s), r2.x, r2.y, r2.z, -r2.dot(s)]
    }
}
