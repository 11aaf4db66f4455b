import Core
import Foundation

/// Why a frame source could not be opened or gave no frame.
public enum FrameSourceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The path does not exist.
    case notFound(path: String)
    /// A folder without any `.png` or DICOM file.
    case noFrames(path: String)
    /// A folder of DICOM files from more than one series (SeriesInstanceUID): which, with how many files each.
    case mixedSeries(path: String, series: [String])
    /// A folder of DICOM files that disagree on what a frame is (size, display range).
    case inconsistentSeries(file: String, reason: String)
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
        case .noFrames(let p): "\(p): the folder holds no .png frames and no DICOM files"
        case .mixedSeries(let p, let series):
            "\(p): the DICOM files belong to \(series.count) series (\(series.joined(separator: "; "))); give a folder holding one series"
        case .inconsistentSeries(let f, let r): "\(f): \(r); the files of a series must agree"
        case .sizeMismatch(let f, let e, let g): "\(f): frame is \(g), the first frame of the folder is \(e)"
        case .dicom(let e): e.description
        case .image(let e): e.description
        case .invalid(let p, let r): "\(p): \(r)"
        case .producer(let n, let r): "\(n): \(r)"
        }
    }
}

/// A sequence of fluoroscopy frames with acquisition times: a DICOM file, a folder of DICOM files
/// of one series, a folder of 16-bit PNGs, or an in-process producer such as the simulator's renderer.
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
        case dicom, dicomFolder = "dicom-folder", pngFolder = "png-folder", producer
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
    /// The DICOM header, for DICOM sources (the first file's, for a folder).
    public let dicomHeader: DICOMHeader?
    /// The pixel spacing the source gives, and which tag it came from (DICOM).
    public let pixelSpacing: PixelSpacingInfo?
    /// What the source says that is not honoured, or was assumed (one sentence each): a
    /// ModalityLUTSequence, lossy compression, acquisition times that do not increase…
    public let warnings: [String]
    /// When the first frame was acquired (monotonic ns).
    public let start: Nanoseconds

    private let offsets: [Nanoseconds]?
    private let read: (Int) throws(FrameSourceError) -> Frame
    private var cursor = 0

    /// The index `next()` returns next.
    public var position: Int { cursor }

    /// Opens a DICOM file, a folder of DICOM files (one series) or a folder of 16-bit PNGs: the
    /// one entry point for recorded frames (`lumen track`, the live runtime's replay).
    /// - Parameters:
    ///   - path: a DICOM file (any name; checked by content), or a folder: with any `.png` file, a
    ///     PNG folder; otherwise every regular file in it (but hidden ones and DICOMDIR) must be a
    ///     DICOM file of one series, ordered by InstanceNumber, then acquisition time, then name.
    ///   - frameInterval: the time between frames for PNG folders, and for DICOM sources that carry
    ///     no timing; ignored when the files have their own.
    ///   - start: the acquisition time of the first frame (monotonic ns).
    ///   - limits: what a frame and a file may cost (see `ImageLimits`), checked from the headers.
    ///   - widening8Bit: read 8-bit greyscale PNGs too (values kept, not rescaled); otherwise a
    ///     folder must hold only 16-bit greyscale frames.
    ///   - applyingVOI: DICOM frames through the file's window or VOI LUT (the default: what a viewer
    ///     shows); false gives the rescaled values in display order (see `DICOMPixelMapping`).
    ///
    /// A folder is checked whole before it opens: every PNG frame a regular file, 16-bit greyscale
    /// (by its header) and of one size; every DICOM file's header readable, of one series and one
    /// frame size — so a bad frame is refused before any work is done on the others.
    public static func open(path: String, frameInterval: Nanoseconds? = nil, start: Nanoseconds = 0, limits: ImageLimits = .standard,
                            widening8Bit: Bool = false, applyingVOI: Bool = true) throws(FrameSourceError) -> FrameSource {
        if let dt = frameInterval, dt <= 0 { throw .invalid(path: path, reason: "frame interval must be positive, got \(dt) ns") }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { throw .notFound(path: path) }
        guard isFolder.boolValue else { return try dicom(path, frameInterval: frameInterval, start: start, limits: limits, applyingVOI: applyingVOI) }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
            throw .image(.unreadable(file: path, reason: "cannot list the folder: \(error.localizedDescription)"))
        }
        if names.contains(where: { $0.lowercased().hasSuffix(".png") && !$0.hasPrefix(".") }) {
            return try pngFolder(path, names: names, frameInterval: frameInterval, start: start, limits: limits, widening8Bit: widening8Bit)
        }
        return try dicomFolder(path, names: names, frameInterval: frameInterval, start: start, limits: limits, applyingVOI: applyingVOI)
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
        pixelSpacing = nil
        warnings = []
        self.start = start
        offsets = nil
        read = { (k: Int) throws(FrameSourceError) -> Frame in
            do { return try render(k) } catch { throw .producer(name: name, reason: "\(error)") }
        }
    }

    private init(kind: Kind, path: String, frameCount: Int, frameInterval: Nanoseconds, assumed: Bool, offsets: [Nanoseconds]?,
                 geometry: CArmGeometry?, notes: [String], maxValue: UInt16, header: DICOMHeader?, warnings: [String] = [],
                 start: Nanoseconds, read: @escaping (Int) throws(FrameSourceError) -> Frame) {
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
        pixelSpacing = header?.spacing
        self.warnings = warnings
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

    private static func dicom(_ path: String, frameInterval: Nanoseconds?, start: Nanoseconds, limits: ImageLimits,
                              applyingVOI: Bool) throws(FrameSourceError) -> FrameSource {
        let reader: DICOMReader
        do { reader = try DICOMReader(path: path, limits: limits, applyingVOI: applyingVOI) } catch { throw .dicom(error) }
        let h = reader.header
        let (geometry, notes) = DICOMFile.geometryOf(h)
        let fileInterval = h.frameInterval
        let interval = fileInterval ?? frameInterval ?? defaultFrameInterval
        return FrameSource(kind: .dicom, path: path, frameCount: h.frameCount, frameInterval: interval,
                           assumed: fileInterval == nil && frameInterval == nil, offsets: fileInterval == nil ? nil : h.frameOffsets,
                           geometry: geometry, notes: notes, maxValue: reader.pixelMapping.maxDisplay, header: h,
                           warnings: h.notHonoured, start: start) {
            (k: Int) throws(FrameSourceError) -> Frame in
            do throws(DICOMError) { return try reader.frame(k) } catch { throw .dicom(error) }
        }
    }

    private static func dicomFolder(_ path: String, names: [String], frameInterval: Nanoseconds?, start: Nanoseconds, limits: ImageLimits,
                                    applyingVOI: Bool) throws(FrameSourceError) -> FrameSource {
        struct Entry {
            var file: String
            var header: DICOMHeader
            var maxValue: UInt16
        }
        var entries: [Entry] = []
        for name in names where !name.hasPrefix(".") && name.uppercased() != "DICOMDIR" {
            let file = (path as NSString).appendingPathComponent(name)
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isFolder), !isFolder.boolValue else { continue }
            // Opening reads the header only; the pixel data stay on disk until a frame is asked for.
            let reader: DICOMReader
            do { reader = try DICOMReader(path: file, limits: limits, applyingVOI: applyingVOI) } catch { throw .dicom(error) }
            entries.append(Entry(file: file, header: reader.header, maxValue: reader.pixelMapping.maxDisplay))
        }
        guard let first = entries.first else { throw .noFrames(path: path) }
        let series = Dictionary(grouping: entries, by: { $0.header.seriesInstanceUID ?? "" })
        if series.count > 1 {
            throw .mixedSeries(path: path, series: series.map { "\($0.key.isEmpty ? "no SeriesInstanceUID" : $0.key): \($0.value.count) file(s)" }.sorted())
        }
        for e in entries {
            if e.header.rows != first.header.rows || e.header.columns != first.header.columns {
                throw .sizeMismatch(file: e.file, expected: "\(first.header.columns) × \(first.header.rows)", got: "\(e.header.columns) × \(e.header.rows)")
            }
            if e.maxValue != first.maxValue {
                throw .inconsistentSeries(file: e.file, reason: "display values 0…\(e.maxValue), \(first.file) has 0…\(first.maxValue)")
            }
        }
        entries.sort { a, b in
            let ka = (a.header.instanceNumber == nil ? 1 : 0, a.header.instanceNumber ?? 0, a.header.acquisitionTime == nil ? 1 : 0, a.header.acquisitionTime ?? 0)
            let kb = (b.header.instanceNumber == nil ? 1 : 0, b.header.instanceNumber ?? 0, b.header.acquisitionTime == nil ? 1 : 0, b.header.acquisitionTime ?? 0)
            if ka != kb { return ka < kb }
            return a.file.compare(b.file, options: [.numeric]) == .orderedAscending
        }
        let files = entries.map(\.file)
        var frames: [(file: Int, frame: Int)] = []
        for (i, e) in entries.enumerated() { for j in 0..<e.header.frameCount { frames.append((i, j)) } }

        // Timing: the files' own acquisition times where every file has one and they increase;
        // else the first file's frame time, else the caller's interval or the default.
        var warnings = Array(Set(entries.flatMap(\.header.notHonoured))).sorted()
        let head = entries[0].header
        var offsets: [Nanoseconds]?
        var interval = head.frameInterval ?? frameInterval ?? defaultFrameInterval
        var assumed = head.frameInterval == nil && frameInterval == nil
        let times = entries.compactMap(\.header.acquisitionTime)
        if times.count == entries.count, entries.count > 1 {
            if zip(times, times.dropFirst()).allSatisfy({ $0 < $1 }), let t0 = times.first, let tn = times.last, tn - t0 < 86_400 {
                var list: [Nanoseconds] = []
                for (i, e) in entries.enumerated() {
                    let base = Nanoseconds.fromSeconds(times[i] - t0)
                    for j in 0..<e.header.frameCount { list.append(base + (e.header.frameOffsets?[j] ?? Nanoseconds(j) * interval)) }
                }
                offsets = list
                if list.count > 1, let last = list.last { interval = max(1, last / Nanoseconds(list.count - 1)) }
                assumed = false
            } else {
                warnings.append("acquisition times of the files do not increase in InstanceNumber order: frames are spaced by the frame interval instead")
            }
        }
        let (geometry, notes) = DICOMFile.geometryOf(head)
        var current: (index: Int, reader: DICOMReader)?
        return FrameSource(kind: .dicomFolder, path: path, frameCount: frames.count, frameInterval: interval, assumed: assumed, offsets: offsets,
                           geometry: geometry, notes: notes, maxValue: first.maxValue, header: head, warnings: warnings, start: start) {
            (k: Int) throws(FrameSourceError) -> Frame in
            let (i, j) = frames[k]
            let reader: DICOMReader
            if let current, current.index == i { reader = current.reader } else {
                do throws(DICOMError) { reader = try DICOMReader(path: files[i], limits: limits, applyingVOI: applyingVOI) } catch { throw .dicom(error) }
                current = (i, reader)
            }
            // The folder was checked at open; a file replaced since is still caught here.
            guard reader.header.rows == head.rows, reader.header.columns == head.columns else {
                throw .sizeMismatch(file: files[i], expected: "\(head.columns) × \(head.rows)", got: "\(reader.header.columns) × \(reader.header.rows)")
            }
            do throws(DICOMError) { return try reader.frame(j) } catch { throw .dicom(error) }
        }
    }

    private static func pngFolder(_ path: String, names: [String], frameInterval: Nanoseconds?, start: Nanoseconds, limits: ImageLimits,
                                  widening8Bit: Bool) throws(FrameSourceError) -> FrameSource {
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
