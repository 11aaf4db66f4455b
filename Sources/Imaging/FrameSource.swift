import Core
import Foundation

/// Why a frame source could not be opened or gave no frame.
public enum FrameSourceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The path does not exist.
    case notFound(path: String)
    /// A folder without any `.png` file.
    case noFrames(path: String)
    /// A PNG of the folder differs in size from the first one.
    case sizeMismatch(file: String, expected: String, got: String)
    case dicom(DICOMError)
    case image(ImageFileError)
    /// A frame index outside the source, or a bad option.
    case invalid(path: String, reason: String)
    /// An in-process producer (the simulator's renderer) failed.
    case producer(name: String, reason: String)

    public var description: String {
        switch self {
        case .notFound(let p): "\(p): no such file or folder"
        case .noFrames(let p): "\(p): the folder holds no .png frames"
        case .sizeMismatch(let f, let e, let g): "\(f): frame is \(g), the first frame of the folder is \(e)"
        case .dicom(let e): e.description
        case .image(let e): e.description
        case .invalid(let p, let r): "\(p): \(r)"
        case .producer(let n, let r): "\(n): \(r)"
        }
    }
}

/// A sequence of fluoroscopy frames with acquisition times: a DICOM file, a folder of 16-bit
/// PNGs, or an in-process producer such as the simulator's renderer.
///
/// Open files and folders with `FrameSource.open(path:)`, then call `next()` until it returns
/// nil (or `frame(at:)` for random access). Frames are read lazily, one at a time. Frame k is
/// stamped `start + offset(k)`: DICOM files give the offsets from FrameTime, CineRate or
/// FrameTimeVector; PNG folders (sorted by name, numbers compared as numbers: `f2` before `f10`)
/// and DICOM files without timing use `frameInterval` (the option, else 15 fps, flagged by
/// `frameIntervalAssumed`). Pixel values: 0…`maxValue`, brighter is larger (MONOCHROME1 and
/// signed DICOM data are mapped as `DICOMPixelMapping` documents).
///
/// Not thread-safe: use a source from one thread (open it in the thread that reads it).
public final class FrameSource {
    public enum Kind: String, Sendable {
        case dicom, pngFolder = "png-folder", producer
    }

    /// 15 fps, the standard fluoroscopy rate, when neither the file nor the caller gives one.
    public static let defaultFrameInterval: Nanoseconds = 66_666_667

    public let kind: Kind
    /// The file or folder (or the producer's name).
    public let path: String
    /// Number of frames; nil for a producer without an end.
    public let frameCount: Int?
    /// Time between frames (the mean, for a FrameTimeVector).
    public let frameInterval: Nanoseconds
    /// True when `frameInterval` is the 15 fps default rather than from the file or the caller.
    public let frameIntervalAssumed: Bool
    /// The C-arm geometry, where the source knows it (DICOM tags, the simulator).
    public let geometry: CArmGeometry?
    /// Why `geometry` is nil, or what it assumed (DICOM).
    public let geometryNotes: [String]
    /// The brightest possible value: 2^bitsStored − 1 for DICOM, 65535 for PNGs.
    public let maxValue: UInt16
    /// The DICOM header, for DICOM sources.
    public let dicomHeader: DICOMHeader?
    /// When the first frame was acquired (monotonic ns).
    public let start: Nanoseconds

    private let offsets: [Nanoseconds]?
    private let read: (Int) throws(FrameSourceError) -> Frame
    private var cursor = 0

    /// The index `next()` returns next.
    public var position: Int { cursor }

    /// Opens a DICOM file or a folder of 16-bit PNGs.
    /// - Parameters:
    ///   - path: a DICOM file (any name; checked by content) or a folder of `.png` frames.
    ///   - frameInterval: the time between frames for PNG folders, and for DICOM files that carry
    ///     no timing tag; ignored when the file has its own.
    ///   - start: the acquisition time of the first frame (monotonic ns).
    ///   - limits: what a frame and a file may cost (see `ImageLimits`), checked from the headers.
    ///   - widening8Bit: read 8-bit greyscale PNGs too (values kept, not rescaled); otherwise a
    ///     folder must hold only 16-bit greyscale frames.
    ///
    /// A PNG folder is checked whole before it opens: every frame a regular file, 16-bit greyscale
    /// (by its header) and of one size, so a bad frame is refused before any work is done on the others.
    public static func open(path: String, frameInterval: Nanoseconds? = nil, start: Nanoseconds = 0, limits: ImageLimits = .standard,
                            widening8Bit: Bool = false) throws(FrameSourceError) -> FrameSource {
        if let dt = frameInterval, dt <= 0 { throw .invalid(path: path, reason: "frame interval must be positive, got \(dt) ns") }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { throw .notFound(path: path) }
        return isFolder.boolValue ? try pngFolder(path, frameInterval: frameInterval, start: start, limits: limits, widening8Bit: widening8Bit)
                                  : try dicom(path, frameInterval: frameInterval, start: start, limits: limits)
    }

    /// A source over an in-process producer, e.g. the simulator's renderer: `render(k)` returns
    /// frame k (its `acquiredAt` is overwritten with `start + k · frameInterval`).
    public init(producer name: String, frameCount: Int?, frameInterval: Nanoseconds, geometry: CArmGeometry?,
                maxValue: UInt16 = .max, start: Nanoseconds = 0, render: @escaping (Int) throws -> Frame) {
        kind = .producer
        path = name
        self.frameCount = frameCount
        self.frameInterval = frameInterval
        frameIntervalAssumed = false
        self.geometry = geometry
        geometryNotes = []
        self.maxValue = maxValue
        dicomHeader = nil
        self.start = start
        offsets = nil
        read = { (k: Int) throws(FrameSourceError) -> Frame in
            do { return try render(k) } catch { throw .producer(name: name, reason: "\(error)") }
        }
    }

    private init(kind: Kind, path: String, frameCount: Int, frameInterval: Nanoseconds, assumed: Bool, offsets: [Nanoseconds]?,
                 geometry: CArmGeometry?, notes: [String], maxValue: UInt16, header: DICOMHeader?, start: Nanoseconds,
                 read: @escaping (Int) throws(FrameSourceError) -> Frame) {
        self.kind = kind
        self.path = path
        self.frameCount = frameCount
        self.frameInterval = frameInterval
        frameIntervalAssumed = assumed
        self.offsets = offsets
        self.geometry = geometry
        geometryNotes = notes
        self.maxValue = maxValue
        dicomHeader = header
        self.start = start
        self.read = read
    }

    /// When frame `index` was acquired.
    public func acquisitionTime(of index: Int) -> Nanoseconds {
        if let offsets, index < offsets.count { return start + offsets[index] }
        return start + Nanoseconds(index) * frameInterval
    }

    /// Frame `index`, stamped with its acquisition time.
    public func frame(at index: Int) throws(FrameSourceError) -> Frame {
        guard index >= 0, frameCount.map({ index < $0 }) ?? true else {
            throw .invalid(path: path, reason: "no frame \(index) (the source has \(frameCount ?? 0))")
        }
        var f = try read(index)
        f.acquiredAt = acquisitionTime(of: index)
        return f
    }

    /// The next frame, or nil after the last.
    public func next() throws(FrameSourceError) -> Frame? {
        if let n = frameCount, cursor >= n { return nil }
        let f = try frame(at: cursor)
        cursor += 1
        return f
    }

    /// Starts `next()` over from the first frame.
    public func rewind() { cursor = 0 }

    // MARK: Back ends

    private static func dicom(_ path: String, frameInterval: Nanoseconds?, start: Nanoseconds, limits: ImageLimits) throws(FrameSourceError) -> FrameSource {
        let reader: DICOMReader
        do { reader = try DICOMReader(path: path, limits: limits) } catch { throw .dicom(error) }
        let h = reader.header
        let (geometry, notes) = DICOMFile.geometryOf(h)
        let fileInterval = h.frameInterval
        let interval = fileInterval ?? frameInterval ?? defaultFrameInterval
        return FrameSource(kind: .dicom, path: path, frameCount: h.frameCount, frameInterval: interval,
                           assumed: fileInterval == nil && frameInterval == nil, offsets: fileInterval == nil ? nil : h.frameOffsets,
                           geometry: geometry, notes: notes, maxValue: h.pixelMapping.maxDisplay, header: h, start: start) {
            (k: Int) throws(FrameSourceError) -> Frame in
            do throws(DICOMError) { return try reader.frame(k) } catch { throw .dicom(error) }
        }
    }

    private static func pngFolder(_ path: String, frameInterval: Nanoseconds?, start: Nanoseconds, limits: ImageLimits,
                                  widening8Bit: Bool) throws(FrameSourceError) -> FrameSource {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
            throw .image(.unreadable(file: path, reason: "cannot list the folder: \(error.localizedDescription)"))
        }
        let files = names.filter { $0.lowercased().hasSuffix(".png") && !$0.hasPrefix(".") }
            .sorted { $0.compare($1, options: [.numeric]) == .orderedAscending }
            .map { (path as NSString).appendingPathComponent($0) }
        guard !files.isEmpty else { throw .noFrames(path: path) }
        var size: (Int, Int)?
        for file in files {
            let h: PNGHeader
            do { h = try PNGFrameFile.header(file, limits: limits, widening8Bit: widening8Bit) } catch { throw .image(error) }
            guard let expected = size else { size = (h.width, h.height); continue }
            guard h.width == expected.0, h.height == expected.1 else {
                throw .sizeMismatch(file: file, expected: "\(expected.0) × \(expected.1)", got: "\(h.width) × \(h.height)")
            }
        }
        guard let size else { throw .noFrames(path: path) }
        return FrameSource(kind: .pngFolder, path: path, frameCount: files.count, frameInterval: frameInterval ?? defaultFrameInterval,
                           assumed: frameInterval == nil, offsets: nil, geometry: nil, notes: ["PNG frames carry no geometry"],
                           maxValue: .max, header: nil, start: start) { (k: Int) throws(FrameSourceError) -> Frame in
            let f: Frame
            do throws(ImageFileError) { f = try PNGFrameFile.read(files[k], limits: limits, widening8Bit: widening8Bit) } catch { throw .image(error) }
            // The folder was checked at open; a frame replaced since is still caught here.
            guard f.width == size.0, f.height == size.1 else {
                throw .sizeMismatch(file: files[k], expected: "\(size.0) × \(size.1)", got: "\(f.width) × \(f.height)")
            }
            return f
        }
    }
}
