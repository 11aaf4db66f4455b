import COpenCV
import Core

/// One fluoroscopy frame: 16-bit grey values (12 bits used by most detectors), row-major,
/// pixel (u, v) = (column, row) with (0, 0) at the centre of the top-left pixel. Larger is
/// brighter on the display, which in fluoroscopy is more transmitted X-ray (the catheter and the
/// contrast are dark): every source maps its encoding to that (DICOM: docs/dicom.md).
public struct Frame: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// (height × width) grey values, row-major.
    public var pixels: [UInt16]
    /// When the detector acquired the frame (monotonic ns), not when it arrived.
    public var acquiredAt: Nanoseconds
    /// mm — the pixel pitch at the detector (DICOM's ImagerPixelSpacing, else PixelSpacing; the
    /// renderer's detector pitch); nil where the source does not say (a PNG folder). The detector
    /// turns its physical scales (catheter width, link gaps, shaft length) into pixels with it.
    public var pixelPitchMM: Double?

    public init(width: Int, height: Int, pixels: [UInt16], acquiredAt: Nanoseconds = 0, pixelPitchMM: Double? = nil) {
        precondition(width > 0 && height > 0 && pixels.count == width * height, "frame size and pixel count disagree")
        self.width = width
        self.height = height
        self.pixels = pixels
        self.acquiredAt = acquiredAt
        self.pixelPitchMM = pixelPitchMM.flatMap { $0.isFinite && $0 > 0 ? $0 : nil }
    }

    @inlinable public subscript(u: Int, v: Int) -> UInt16 { pixels[v * width + u] }
}

/// Why an image file could not be read or written. Every case names the file.
public enum ImageFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    /// Decodable, but not a frame: `reason` says what it is (e.g. "an 8-bit RGB PNG").
    case notGrey(file: String, reason: String)
    case unwritable(file: String, reason: String)
    /// The header declares a frame over `ImageLimits.maxFramePixels`; nothing was decoded.
    case tooLarge(file: String, width: Int, height: Int, limitPixels: Int)
    /// A directory, FIFO, device or socket where a file was expected; it was not read.
    case notRegularFile(file: String, kind: String)

    public var file: String {
        switch self {
        case .unreadable(let f, _), .notGrey(let f, _), .unwritable(let f, _), .tooLarge(let f, _, _, _), .notRegularFile(let f, _): f
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let f, let r): "\(f): cannot read image: \(r)"
        case .notGrey(let f, let r): "\(f): \(r); frames must be 16-bit greyscale PNGs (convert them first)"
        case .unwritable(let f, let r): "\(f): cannot write image: \(r)"
        case .tooLarge(let f, let w, let h, let limit):
            "\(f): " + (ImageLimits(maxFramePixels: limit).frameSizeProblem(width: w, height: h) ?? "\(w) × \(h) pixels is too large")
        case .notRegularFile(let f, let kind): "\(f): is \(kind), not a regular file; give an image file"
        }
    }
}

/// What a PNG's IHDR chunk declares, read before any pixel is decoded.
public struct PNGHeader: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var bitDepth: Int
    /// 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA.
    public var colourType: Int

    /// The signature and the IHDR chunk: the first 33 bytes of every PNG.
    static let length = 33

    /// nil when `bytes` do not start as a PNG does.
    public init?(_ bytes: some Collection<UInt8>) {
        let b = Array(bytes.prefix(Self.length))
        guard b.count == Self.length, b[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]),
              b[8..<12].elementsEqual([0, 0, 0, 13]), b[12..<16].elementsEqual(Array("IHDR".utf8)) else { return nil }
        func u32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        width = u32(16)
        height = u32(20)
        bitDepth = Int(b[24])
        colourType = Int(b[25])
    }

    public var isGrey16: Bool { colourType == 0 && bitDepth == 16 }
    public var isGrey8: Bool { colourType == 0 && bitDepth == 8 }

    /// "an 8-bit RGB PNG", "a 1-bit greyscale PNG", "a palette PNG".
    public var kind: String {
        let colour = switch colourType {
        case 0: "greyscale"
        case 2: "RGB"
        case 3: "palette (indexed colour)"
        case 4: "greyscale + alpha"
        case 6: "RGBA"
        default: "colour type \(colourType)"
        }
        let depth = "\(bitDepth)-bit"
        return (depth.first == "8" ? "an " : "a ") + "\(depth) \(colour) PNG"
    }
}

/// 16-bit greyscale PNG frames on disk, through the OpenCV bridge.
///
/// Reading refuses, before decoding: anything but a regular file; a header declaring more pixels
/// than `ImageLimits.maxFramePixels`; and any format but 16-bit greyscale (8-bit greyscale is
/// widened, values kept, only with `widening8Bit`). The decoded image must match its header.
public enum PNGFrameFile {
    public static func read(_ path: String, acquiredAt: Nanoseconds = 0, limits: ImageLimits = .standard,
                            widening8Bit: Bool = false) throws(ImageFileError) -> Frame {
        let bytes: [UInt8]
        do { bytes = try RegularFile.read(atPath: path, maxBytes: limits.maxPNGFileBytes) } catch { throw self.error(error, path) }
        let header = try check(PNGHeader(bytes), path, limits: limits, widening8Bit: widening8Bit)
        var pixels = [UInt16](repeating: 0, count: header.width * header.height)
        var err = [CChar](repeating: 0, count: 256)
        let rc = bytes.withUnsafeBufferPointer { data in
            pixels.withUnsafeMutableBufferPointer {
                lumen_cv_decode_gray16(data.baseAddress, Int64(data.count), $0.baseAddress, Int32(header.width), Int32(header.height),
                                       widening8Bit ? 1 : 0, &err, Int32(err.count))
            }
        }
        guard rc == Int32(LUMEN_CV_OK) else { throw mapReadError(rc, path, err) }
        return Frame(width: header.width, height: header.height, pixels: pixels, acquiredAt: acquiredAt)
    }

    /// The header of `path` (33 bytes read), checked as `read` checks it: for a folder of frames,
    /// refused before any of them is decoded.
    public static func header(_ path: String, limits: ImageLimits = .standard, widening8Bit: Bool = false) throws(ImageFileError) -> PNGHeader {
        let bytes: [UInt8]
        do { bytes = try RegularFile.head(atPath: path, count: PNGHeader.length) } catch { throw self.error(error, path) }
        return try check(PNGHeader(bytes), path, limits: limits, widening8Bit: widening8Bit)
    }

    static func check(_ header: PNGHeader?, _ path: String, limits: ImageLimits, widening8Bit: Bool) throws(ImageFileError) -> PNGHeader {
        guard let header else { throw .unreadable(file: path, reason: "not a PNG file (no PNG signature and IHDR chunk)") }
        guard header.width > 0, header.height > 0 else {
            throw .unreadable(file: path, reason: "the header declares \(header.width) × \(header.height) pixels")
        }
        guard limits.frameSizeProblem(width: header.width, height: header.height) == nil else {
            throw .tooLarge(file: path, width: header.width, height: header.height, limitPixels: limits.maxFramePixels)
        }
        guard header.isGrey16 || (widening8Bit && header.isGrey8) else {
            throw .notGrey(file: path, reason: "\(header.kind)" + (header.isGrey8 ? " (8-bit greyscale is read only when asked to widen it)" : ""))
        }
        return header
    }

    static func error(_ f: RegularFileError, _ path: String) -> ImageFileError {
        switch f {
        case .notARegularFile(let kind): .notRegularFile(file: path, kind: kind)
        case .tooLarge(let size, let limit): .unreadable(file: path, reason: "the file holds \(size) bytes, over the \(limit)-byte limit for a frame")
        case .notFound, .permissionDenied, .system: .unreadable(file: path, reason: f.description)
        }
    }

    public static func write(_ frame: Frame, to path: String) throws(ImageFileError) {
        var err = [CChar](repeating: 0, count: 256)
        let rc = frame.pixels.withUnsafeBufferPointer {
            lumen_cv_write_png16(path, $0.baseAddress, Int32(frame.width), Int32(frame.height), &err, Int32(err.count))
        }
        guard rc == Int32(LUMEN_CV_OK) else { throw .unwritable(file: path, reason: message(err)) }
    }

    private static func mapReadError(_ rc: Int32, _ path: String, _ err: [CChar]) -> ImageFileError {
        rc == Int32(LUMEN_CV_FORMAT) ? .notGrey(file: path, reason: message(err)) : .unreadable(file: path, reason: message(err))
    }

    private static func message(_ err: [CChar]) -> String {
        String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
