import CDCMTK
import Core

/// An open DICOM file: the header at once, frames one at a time (large pixel data stay on disk
/// until read). Not shared between threads: open one per reading thread.
public final class DICOMReader {
    public let path: String
    public let header: DICOMHeader
    private let handle: OpaquePointer
    private var stored: [Int32]
    /// How stored values become a frame's: the header's mapping, with or without its VOI.
    public let pixelMapping: DICOMPixelMapping
    private let voiTable: [UInt16]?

    /// Opens `path` (a DICOM file, with or without preamble) and checks that its frames can be
    /// read: a regular file, uncompressed (or Deflated), MONOCHROME1/2, 8 or 16 bits allocated,
    /// within `limits` (checked from the header before any pixel is decoded; a Deflated data set
    /// is inflated, in memory, only up to `limits.maxInflatedBytes`), pixel data long enough.
    /// With `applyingVOI` (the default) frames are what the file's window or VOI LUT shows (see
    /// `DICOMPixelMapping`); without, the rescaled values in display order.
    public convenience init(path: String, limits: ImageLimits = .standard, applyingVOI: Bool = true) throws(DICOMError) {
        var info = lumen_dcm_info()
        var err = [CChar](repeating: 0, count: 512)
        var h: OpaquePointer?
        var l = limits.bridge
        let rc = lumen_dcm_open_file(path, &l, &h, &info, &err, Int32(err.count))
        guard rc == Int32(LUMEN_DCM_OK), let h else {
            throw DICOMError.from(code: rc, message: bridgeMessage(err), file: path, info: info)
        }
        try self.init(path: path, handle: h, info: info, applyingVOI: applyingVOI)
    }

    /// Opens a DICOM file held in memory; `name` stands for the file in errors.
    public convenience init(bytes: [UInt8], name: String = "<memory>", limits: ImageLimits = .standard, applyingVOI: Bool = true) throws(DICOMError) {
        var info = lumen_dcm_info()
        var err = [CChar](repeating: 0, count: 512)
        var h: OpaquePointer?
        var l = limits.bridge
        let rc = bytes.withUnsafeBufferPointer { lumen_dcm_open_memory($0.baseAddress, $0.count, &l, &h, &info, &err, Int32(err.count)) }
        guard rc == Int32(LUMEN_DCM_OK), let h else {
            throw DICOMError.from(code: rc, message: bridgeMessage(err), file: name, info: info)
        }
        try self.init(path: name, handle: h, info: info, applyingVOI: applyingVOI)
    }

    private init(path: String, handle: OpaquePointer, info: lumen_dcm_info, applyingVOI: Bool) throws(DICOMError) {
        self.path = path
        self.handle = handle
        var times: [Double]?
        if info.has_frame_time_vector != 0 {
            var ms = [Double](repeating: 0, count: Int(info.frames))
            var err = [CChar](repeating: 0, count: 256)
            if lumen_dcm_frame_times(handle, &ms, info.frames, &err, Int32(err.count)) == Int32(LUMEN_DCM_OK) { times = ms }
        }
        var xyz = [0.0, 0.0, 0.0]
        let iso: Vec3? = lumen_dcm_private_isocenter(handle, &xyz) == 1 ? Vec3(xyz[0], xyz[1], xyz[2]) : nil
        var lut: [UInt16]?
        if info.has_voi_lut != 0, info.voi_lut_entries > 0 {
            var values = [UInt16](repeating: 0, count: Int(info.voi_lut_entries))
            var err = [CChar](repeating: 0, count: 256)
            if lumen_dcm_voi_lut(handle, &values, info.voi_lut_entries, &err, Int32(err.count)) == Int32(LUMEN_DCM_OK) { lut = values }
        }
        header = DICOMHeader(info, frameTimes: times, isocenter: iso, voiLUTValues: lut)
        stored = [Int32](repeating: 0, count: header.rows * header.columns)
        pixelMapping = header.pixelMapping(applyingVOI: applyingVOI)
        voiTable = pixelMapping.voiTable()
    }

    deinit { lumen_dcm_close(handle) }

    public var frameCount: Int { header.frameCount }

    /// The stored values of frame `index` (bits at the high bit, sign-extended; not rescaled).
    public func storedValues(frame index: Int) throws(DICOMError) -> [Int32] {
        try load(index)
        return stored
    }

    /// Frame `index` in display values (`pixelMapping`), stamped `acquiredAt`.
    public func frame(_ index: Int, acquiredAt: Nanoseconds = 0) throws(DICOMError) -> Frame {
        try load(index)
        let pixels = stored.withUnsafeBufferPointer { pixelMapping.display($0, table: voiTable) }
        return Frame(width: header.columns, height: header.rows, pixels: pixels, acquiredAt: acquiredAt, pixelPitchMM: header.pixelPitchMM)
    }

    private func load(_ index: Int) throws(DICOMError) {
        guard (0..<header.frameCount).contains(index) else {
            throw .corrupt(file: path, reason: "no frame \(index): the file has \(header.frameCount)")
        }
        var err = [CChar](repeating: 0, count: 512)
        let rc = stored.withUnsafeMutableBufferPointer {
            lumen_dcm_frame(handle, Int32(index), $0.baseAddress, Int64($0.count), &err, Int32(err.count))
        }
        guard rc == Int32(LUMEN_DCM_OK) else {
            throw DICOMError.from(code: rc, message: bridgeMessage(err), file: path, info: lumen_dcm_info())
        }
    }
}

/// All frames of a DICOM file with their acquisition times and the C-arm geometry of its tags.
public struct DICOMSeries: Sendable {
    public var path: String
    public var header: DICOMHeader
    /// Display values (`DICOMPixelMapping`: 0…2^bitsStored − 1, brighter is larger).
    public var frames: [Frame]
    /// The geometry from the tags (`DICOMHeader.geometry`), nil when they do not give one.
    public var geometry: CArmGeometry?
    /// Why `geometry` is nil, or what it assumed.
    public var geometryNotes: [String]
    /// Time between frames from FrameTime, CineRate or FrameTimeVector; nil without any.
    public var frameInterval: Nanoseconds?

    public var pixelMapping: DICOMPixelMapping { header.pixelMapping }
}

/// A DICOM file checked frame by frame (`DICOMFile.check`): the header and what it implies,
/// without holding the frames.
public struct DICOMCheck: Sendable {
    public var path: String
    public var header: DICOMHeader
    public var geometry: CArmGeometry?
    public var geometryNotes: [String]
    public var frameInterval: Nanoseconds?
    /// Display values of the first frame: its smallest and largest.
    public var firstFrameRange: (min: UInt16, max: UInt16)
    /// Each frame's acquisition time from the first (all 0 when the file has no timing).
    public var acquisitionOffsets: [Nanoseconds]

    public var pixelMapping: DICOMPixelMapping { header.pixelMapping }
}

public enum DICOMFile {
    /// Reads every frame of `path`. Frame k is stamped `start` + its offset from the timing tags
    /// (0 for all frames when the file has none).
    public static func read(_ path: String, start: Nanoseconds = 0, limits: ImageLimits = .standard) throws(DICOMError) -> DICOMSeries {
        let reader = try DICOMReader(path: path, limits: limits)
        return try series(reader, start: start)
    }

    /// As `read`, from bytes in memory.
    public static func read(bytes: [UInt8], name: String = "<memory>", start: Nanoseconds = 0,
                            limits: ImageLimits = .standard) throws(DICOMError) -> DICOMSeries {
        try series(DICOMReader(bytes: bytes, name: name, limits: limits), start: start)
    }

    /// What `read` gives but the frames: every frame is decoded, one at a time, and only the
    /// first one's value range is kept, so memory stays at one frame however long the file is.
    public static func check(_ path: String, limits: ImageLimits = .standard) throws(DICOMError) -> DICOMCheck {
        let reader = try DICOMReader(path: path, limits: limits)
        let h = reader.header
        var range = (min: UInt16.max, max: UInt16.min)
        for k in 0..<h.frameCount {
            let f = try reader.frame(k)
            if k == 0 { range = (f.pixels.min() ?? 0, f.pixels.max() ?? 0) }
        }
        let (geometry, notes) = geometryOf(h)
        let offsets = h.frameOffsets ?? [Nanoseconds](repeating: 0, count: h.frameCount)
        return DICOMCheck(path: path, header: h, geometry: geometry, geometryNotes: notes, frameInterval: h.frameInterval,
                          firstFrameRange: range, acquisitionOffsets: offsets)
    }

    static func series(_ reader: DICOMReader, start: Nanoseconds) throws(DICOMError) -> DICOMSeries {
        let h = reader.header
        let offsets = h.frameOffsets
        var frames: [Frame] = []
        frames.reserveCapacity(h.frameCount)
        for k in 0..<h.frameCount {
            frames.append(try reader.frame(k, acquiredAt: start + (offsets?[k] ?? 0)))
        }
        let (geometry, notes) = geometryOf(h)
        return DICOMSeries(path: reader.path, header: h, frames: frames, geometry: geometry, geometryNotes: notes,
                           frameInterval: h.frameInterval)
    }

    static func geometryOf(_ h: DICOMHeader) -> (CArmGeometry?, [String]) {
        switch h.geometry {
        case .success(let g): (g.geometry, g.assumptions)
        case .failure(let p): (nil, [p.reason])
        }
    }
}

extension ImageLimits {
    /// The bridge's form; limits of 0 or below are the bridge's defaults, so clamp them to 1.
    var bridge: lumen_dcm_limits {
        lumen_dcm_limits(max_frame_pixels: Int64(max(1, maxFramePixels)), max_pixel_data_bytes: max(1, maxPixelDataBytes),
                         max_inflated_bytes: max(1, maxInflatedBytes))
    }
}
