import COpenCV

/// How recorded frames are compressed.
public enum FrameFormat: String, Sendable, Codable, CaseIterable {
    /// Lossless 16-bit greyscale PNG: replay re-tracks exactly what the tracker saw.
    case png
    /// 8-bit JPEG: a quarter of the size, for viewing only (replay's re-tracking then differs).
    case jpeg
}

/// Why a frame could not be encoded or decoded.
public enum FrameCodecError: Error, Equatable, Sendable, CustomStringConvertible {
    case badSize(width: Int, height: Int, pixels: Int)
    case codec(String)

    public var description: String {
        switch self {
        case .badSize(let w, let h, let n): "a \(w) × \(h) frame with \(n) pixels"
        case .codec(let s): "image codec: \(s)"
        }
    }
}

/// Frames to and from compressed bytes, through the OpenCV bridge.
public enum FrameCodec {
    /// Frames larger than this many pixels a side are refused (a recording is external data).
    public static let maximumSide = 8192

    public static func encode(_ pixels: [UInt16], width: Int, height: Int, format: FrameFormat, quality: Int) throws(FrameCodecError) -> [UInt8] {
        try encode(pixels, width: width, height: height, codec: format == .jpeg ? 1 : 0, quality: quality)
    }

    /// PNG as it was encoded before level 1 took OpenCV's fast path (libpng's adaptive filter
    /// choice per row): for the bench's before/after figure only.
    static func encodePNGAdaptiveFilters(_ pixels: [UInt16], width: Int, height: Int, level: Int) throws(FrameCodecError) -> [UInt8] {
        try encode(pixels, width: width, height: height, codec: 2, quality: level)
    }

    /// `codec`: 0 PNG, 1 JPEG, 2 PNG naming its zlib level (adaptive filters), as the bridge takes it.
    private static func encode(_ pixels: [UInt16], width: Int, height: Int, codec: Int32, quality: Int) throws(FrameCodecError) -> [UInt8] {
        guard width > 0, height > 0, width <= maximumSide, height <= maximumSide, pixels.count == width * height else {
            throw .badSize(width: width, height: height, pixels: pixels.count)
        }
        // A PNG of noise can exceed the raw size slightly; JPEG stays far below it.
        var out = [UInt8](repeating: 0, count: width * height * 2 + 65536)
        var size: Int64 = 0
        var err = [CChar](repeating: 0, count: 256)
        let rc = pixels.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in
                lumen_cv_encode_gray16(p.baseAddress, Int32(width), Int32(height), codec, Int32(quality),
                                       // Frames carry 12-bit values: 0…4080 maps them onto 8 bits without clipping.
                                       0, 4080, o.baseAddress, Int64(o.count), &size, &err, Int32(err.count))
            }
        }
        guard rc == 0, size >= 0, size <= Int64(out.count) else { throw .codec(String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        out.removeSubrange(Int(size)...)
        return out
    }

    /// Decodes a recorded frame of the size its frame record declares. 8-bit (JPEG) frames are
    /// scaled back to the 12-bit range they were reduced from.
    public static func decode(_ bytes: [UInt8], width: Int, height: Int, format: FrameFormat) throws(FrameCodecError) -> [UInt16] {
        guard width > 0, height > 0, width <= maximumSide, height <= maximumSide, !bytes.isEmpty else {
            throw .badSize(width: width, height: height, pixels: 0)
        }
        var pixels = [UInt16](repeating: 0, count: width * height)
        var err = [CChar](repeating: 0, count: 256)
        let rc = bytes.withUnsafeBufferPointer { b in
            pixels.withUnsafeMutableBufferPointer { p in
                lumen_cv_decode_gray16(b.baseAddress, Int64(b.count), p.baseAddress, Int32(width), Int32(height), 1, &err, Int32(err.count))
            }
        }
        guard rc == 0 else { throw .codec(String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        if format == .jpeg { for k in pixels.indices { pixels[k] = pixels[k] &* 16 } }
        return pixels
    }
}
