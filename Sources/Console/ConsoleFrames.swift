import COpenCV
import Core
import Foundation
import Runtime
import Synchronization

/// The newest frame of each plane, compressed once for every page that shows it. Frames are
/// taken with `OperatorPort.latestFrame`, which never waits on the imaging thread; pages ask at
/// display rate, so frames the display cannot show are never encoded.
public final class ConsoleFrames: Sendable {
    public struct Encoded: Sendable {
        public var plane: UInt8
        public var index: UInt64
        public var acquiredAt: Nanoseconds
        /// The message a page receives: a 4-byte little-endian header length, the header (JSON),
        /// then the JPEG.
        public var message: [UInt8]
    }

    private let port: any OperatorPort
    private let quality: Int
    private let cache: Mutex<[Encoded?]>

    public init(port: any OperatorPort, quality: Int) {
        self.port = port; self.quality = quality
        cache = Mutex(Array(repeating: nil, count: port.runtimeDescription.planes.count))
    }

    /// The newest frame of `plane` if it is newer than `index`.
    public func newest(plane: UInt8, after index: UInt64) -> Encoded? {
        guard Int(plane) < port.runtimeDescription.planes.count else { return nil }
        return cache.withLock { c -> Encoded? in
            let have = c[Int(plane)]?.index ?? 0
            if let frame = port.latestFrame(plane: plane, after: have), let e = Self.encode(frame, quality: quality) {
                c[Int(plane)] = e
            }
            guard let e = c[Int(plane)], e.index > index else { return nil }
            return e
        }
    }

    struct Header: Encodable {
        var plane: UInt8
        var index: UInt64
        var acquiredAt: Nanoseconds
        var width: Int
        var height: Int
        /// The tracked tip on this frame (px), when the tracker found it.
        var tip: [Double]?
        var confidence: Double?
    }

    static func encode(_ f: LiveFrame, quality: Int) -> Encoded? {
        guard f.width > 0, f.height > 0, f.width <= 4096, f.height <= 4096, f.pixels.count == f.width * f.height else { return nil }
        // Black is no signal, white the frame's brightest: a fixed floor keeps the look steady
        // whether or not something dark (the catheter) is in view.
        var hi = UInt16.min
        for v in f.pixels { hi = max(hi, v) }
        let lo: UInt16 = 0
        if hi == 0 { hi = 1 }
        var out = [UInt8](repeating: 0, count: f.width * f.height + 4096)
        var size: Int64 = 0
        var err = [CChar](repeating: 0, count: 160)
        let rc = f.pixels.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { o in
                lumen_cv_encode_gray16(px.baseAddress, Int32(f.width), Int32(f.height), 1, Int32(quality), Int32(lo), Int32(hi),
                                       o.baseAddress, Int64(o.count), &size, &err, Int32(err.count))
            }
        }
        guard rc == 0, size > 0, size <= Int64(out.count) else { return nil }
        let tip = f.measurement?.pixel.flatMap { p in p.x.isFinite && p.y.isFinite ? [p.x, p.y] : nil }
        let header = Header(plane: f.plane, index: f.index, acquiredAt: f.acquiredAt, width: f.width, height: f.height,
                            tip: tip, confidence: tip == nil ? nil : f.measurement?.confidence)
        guard let json = try? JSONEncoder().encode(header) else { return nil }
        var message = [UInt8]()
        message.reserveCapacity(4 + json.count + Int(size))
        let n = UInt32(json.count)
        message += [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
        message += json
        message += out[0..<Int(size)]
        return Encoded(plane: f.plane, index: f.index, acquiredAt: f.acquiredAt, message: message)
    }
}
