import COpenCV
import Core

/// One fluoroscopy frame: 16-bit grey values (12 bits used by most detectors), row-major,
/// pixel (u, v) = (column, row) with (0, 0) at the centre of the top-left pixel.
public struct Frame: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// (height × width) grey values, row-major.
    public var pixels: [UInt16]
    /// When the detector acquired the frame (monotonic ns), not when it arrived.
    public var acquiredAt: Nanoseconds

    public init(width: Int, height: Int, pixels: [UInt16], acquiredAt: Nanoseconds = 0) {
        precondition(width > 0 && height > 0 && pixels.count == width * height, "frame size and pixel count disagree")
        self.width = width
        self.height = height
        self.pixels = pixels
        self.acquiredAt = acquiredAt
    }

    @inlinable public subscript(u: Int, v: Int) -> UInt16 { pixels[v * width + u] }
}

/// Why an image file could not be read or written.
public enum ImageFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case notGrey(file: String, reason: String)
    case unwritable(file: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let f, let r): "\(f): cannot read image: \(r)"
        case .notGrey(let f, let r): "\(f): not a single-channel 8/16-bit image: \(r)"
        case .unwritable(let f, let r): "\(f): cannot write image: \(r)"
        }
    }
}

/// 16-bit PNG frames on disk, through the OpenCV bridge.
public enum PNGFrameFile {
    public static func read(_ path: String, acquiredAt: Nanoseconds = 0) throws(ImageFileError) -> Frame {
        var w: Int32 = 0, h: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        var rc = lumen_cv_read_gray16(path, nil, 0, &w, &h, &err, Int32(err.count))
        guard rc == Int32(LUMEN_CV_OK) else { throw mapReadError(rc, path, err) }
        var pixels = [UInt16](repeating: 0, count: Int(w) * Int(h))
        rc = pixels.withUnsafeMutableBufferPointer {
            lumen_cv_read_gray16(path, $0.baseAddress, Int64($0.count), &w, &h, &err, Int32(err.count))
        }
        guard rc == Int32(LUMEN_CV_OK) else { throw mapReadError(rc, path, err) }
        return Frame(width: Int(w), height: Int(h), pixels: pixels, acquiredAt: acquiredAt)
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
