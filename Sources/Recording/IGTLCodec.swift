// OpenIGTLink messages (protocol v2 and v3), encoding and a bounded decoder. Pure Swift without
// imports, so the fuzz target compiles this file alone.

/// Why bytes from a client are not an OpenIGTLink message we take. Each case says what is wrong.
public enum IGTLError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the header or the declared body.
    case truncated(need: Int, have: Int)
    /// A header version other than 1 (v1/v2) or 2 (v3).
    case unsupportedVersion(UInt16)
    /// The body is larger than this server accepts from a client.
    case bodyTooLarge(size: UInt64, limit: Int)
    /// The body's CRC-64 differs from the header's.
    case checksum(expected: UInt64, actual: UInt64)
    /// A field is out of range or the sizes do not add up; names it.
    case badField(String)

    public var description: String {
        switch self {
        case .truncated(let n, let h): "message cut short: \(h) of \(n) bytes"
        case .unsupportedVersion(let v): "header version \(v) (1 or 2 expected)"
        case .bodyTooLarge(let s, let l): "body of \(s) bytes, more than the \(l) accepted"
        case .checksum(let e, let a): "CRC-64 mismatch: header says \(e), body gives \(a)"
        case .badField(let f): "bad field: \(f)"
        }
    }
}

/// The 58-byte header, big-endian.
public struct IGTLHeader: Equatable, Sendable {
    public var version: UInt16
    public var type: String
    public var device: String
    public var timestamp: UInt64
    public var bodySize: UInt64
    public var crc: UInt64
}

/// A point of a POINT message.
public struct IGTLPoint: Equatable, Sendable {
    public var name: String
    public var group: String
    public var rgba: (UInt8, UInt8, UInt8, UInt8)
    public var position: SIMD3<Float>
    public var diameter: Float
    public var owner: String

    public init(name: String, group: String = "", rgba: (UInt8, UInt8, UInt8, UInt8) = (255, 255, 0, 255), position: SIMD3<Float>,
                diameter: Float = 0, owner: String = "") {
        self.name = name; self.group = group; self.rgba = rgba; self.position = position; self.diameter = diameter; self.owner = owner
    }

    public static func == (a: IGTLPoint, b: IGTLPoint) -> Bool {
        a.name == b.name && a.group == b.group && a.rgba == b.rgba && a.position == b.position && a.diameter == b.diameter && a.owner == b.owner
    }
}

/// A decoded message from a client: what the server acts on, and everything else by type.
public enum IGTLMessage: Equatable, Sendable {
    /// 12 floats: rotation column-major, then translation (mm).
    case transform(device: String, [Float])
    case point(device: String, [IGTLPoint])
    /// xyz (mm) and a quaternion.
    case position(device: String, SIMD3<Float>, SIMD4<Float>)
    case status(device: String, code: UInt16, subcode: Int64, name: String, message: String)
    case string(device: String, String)
    /// GET_, STT_, STP_ and RTS_ queries: prefix and data type ("GET_", "STATUS").
    case query(device: String, prefix: String, type: String)
    /// A valid message of a type the server does not act on.
    case other(device: String, type: String)
}

public enum IGTLCodec {
    public static let headerSize = 58
    /// Bodies accepted from a client: targets and queries are small; nothing legitimate is near this.
    public static let maximumClientBody = 1 << 20

    static let crcTable: [UInt64] = (0..<256).map { n -> UInt64 in
        var c = UInt64(n) << 56
        for _ in 0..<8 { c = (c & (1 << 63)) != 0 ? (c << 1) ^ 0x42F0_E1EB_A9EA_3693 : c << 1 }
        return c
    }

    /// CRC-64 ECMA-182 as OpenIGTLink uses it: MSB first, initial 0, no final xor.
    public static func crc64(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var c: UInt64 = 0
        crcTable.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int(((c >> 56) ^ UInt64(b)) & 0xFF)] ^ (c << 8) }
        }
        return c
    }

    public static func crc64(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { crc64($0) } }

    // MARK: Decoding

    static func be<T: FixedWidthInteger>(_ b: UnsafeRawBufferPointer, _ at: Int, _: T.Type) -> T {
        var v: T = 0
        for k in 0..<MemoryLayout<T>.size { v = (v << 8) | T(b[at + k]) }
        return v
    }

    static func text(_ b: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> String {
        var end = at
        while end < at + n, b[end] != 0 { end += 1 }
        return String(decoding: UnsafeRawBufferPointer(rebasing: b[at..<end]), as: UTF8.self)
    }

    static func float(_ b: UnsafeRawBufferPointer, _ at: Int) -> Float { Float(bitPattern: be(b, at, UInt32.self)) }

    public static func decodeHeader(_ b: UnsafeRawBufferPointer) throws(IGTLError) -> IGTLHeader {
        guard b.count >= headerSize else { throw .truncated(need: headerSize, have: b.count) }
        let version = be(b, 0, UInt16.self)
        guard version == 1 || version == 2 else { throw .unsupportedVersion(version) }
        return IGTLHeader(version: version, type: text(b, 2, 12), device: text(b, 14, 20), timestamp: be(b, 34, UInt64.self),
                          bodySize: be(b, 42, UInt64.self), crc: be(b, 50, UInt64.self))
    }

    /// Decodes one whole message (header and body) from a client.
    public static func decode(_ b: UnsafeRawBufferPointer, maximumBody: Int = maximumClientBody) throws(IGTLError) -> IGTLMessage {
        let h = try decodeHeader(b)
        guard h.bodySize <= UInt64(maximumBody) else { throw .bodyTooLarge(size: h.bodySize, limit: maximumBody) }
        let size = Int(h.bodySize)
        guard b.count >= headerSize + size else { throw .truncated(need: headerSize + size, have: b.count) }
        let body = UnsafeRawBufferPointer(rebasing: b[headerSize..<(headerSize + size)])
        let crc = crc64(body)
        guard crc == h.crc else { throw .checksum(expected: h.crc, actual: crc) }
        var content = 0..<size
        if h.version == 2 {
            guard size >= 12 else { throw .badField("extended header") }
            let ext = Int(be(body, 0, UInt16.self)), metaHeader = Int(be(body, 2, UInt16.self)), meta = Int(be(body, 4, UInt32.self))
            guard ext >= 12, ext <= size, metaHeader <= size, meta <= size, ext + metaHeader + meta <= size else {
                throw .badField("extended header sizes")
            }
            content = ext..<(size - metaHeader - meta)
        }
        return try decodeContent(type: h.type, device: h.device, UnsafeRawBufferPointer(rebasing: body[content]))
    }

    static func decodeContent(type: String, device: String, _ c: UnsafeRawBufferPointer) throws(IGTLError) -> IGTLMessage {
        for prefix in ["GET_", "STT_", "STP_", "RTS_"] where type.hasPrefix(prefix) {
            return .query(device: device, prefix: prefix, type: String(type.dropFirst(4)))
        }
        switch type {
        case "TRANSFORM":
            guard c.count == 48 else { throw .badField("TRANSFORM body of \(c.count) bytes (48 expected)") }
            let m = (0..<12).map { float(c, $0 * 4) }
            guard m.allSatisfy(\.isFinite) else { throw .badField("TRANSFORM values not finite") }
            return .transform(device: device, m)
        case "POINT":
            guard c.count % 136 == 0 else { throw .badField("POINT body of \(c.count) bytes (a multiple of 136 expected)") }
            var points: [IGTLPoint] = []
            for k in 0..<(c.count / 136) {
                let o = k * 136
                let p = SIMD3(float(c, o + 100), float(c, o + 104), float(c, o + 108))
                guard p.x.isFinite, p.y.isFinite, p.z.isFinite else { throw .badField("POINT position not finite") }
                points.append(IGTLPoint(name: text(c, o, 64), group: text(c, o + 64, 32), rgba: (c[o + 96], c[o + 97], c[o + 98], c[o + 99]),
                                        position: p, diameter: float(c, o + 112), owner: text(c, o + 116, 20)))
            }
            return .point(device: device, points)
        case "POSITION":
            guard c.count == 28 || c.count == 24 || c.count == 20 || c.count == 16 || c.count == 12 else { throw .badField("POSITION body size") }
            let p = SIMD3(float(c, 0), float(c, 4), float(c, 8))
            guard p.x.isFinite, p.y.isFinite, p.z.isFinite else { throw .badField("POSITION not finite") }
            let q = c.count == 28 ? SIMD4(float(c, 12), float(c, 16), float(c, 20), float(c, 24)) : SIMD4<Float>(0, 0, 0, 1)
            return .position(device: device, p, q)
        case "STATUS":
            guard c.count >= 30 else { throw .badField("STATUS body of \(c.count) bytes (30 or more expected)") }
            return .status(device: device, code: be(c, 0, UInt16.self), subcode: be(c, 2, Int64.self), name: text(c, 10, 20),
                           message: text(c, 30, c.count - 30))
        case "STRING":
            guard c.count >= 4 else { throw .badField("STRING body") }
            let n = Int(be(c, 2, UInt16.self))
            guard 4 + n <= c.count else { throw .badField("STRING length \(n) past its body") }
            return .string(device: device, text(c, 4, n))
        default:
            return .other(device: device, type: type)
        }
    }

    // MARK: Encoding

    static func put<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        var x = v.bigEndian
        withUnsafeBytes(of: &x) { out.append(contentsOf: $0) }
    }
    static func put(_ f: Float, _ out: inout [UInt8]) { put(f.bitPattern, &out) }
    static func put(_ s: String, width: Int, _ out: inout [UInt8]) {
        let u = Array(s.utf8.prefix(width))
        out.append(contentsOf: u)
        out.append(contentsOf: repeatElement(0, count: width - u.count))
    }

    /// OpenIGTLink time: seconds since 1970 in the high 32 bits, the binary fraction in the low.
    public static func timestamp(unixNanoseconds ns: Int64) -> UInt64 {
        let t = max(0, ns)
        let sec = UInt64(t / 1_000_000_000), frac = UInt64(t % 1_000_000_000)
        return (sec << 32) | ((frac << 32) / 1_000_000_000)
    }

    /// A whole message. Version 1 is the v1/v2 header; version 2 (v3) adds the extended header
    /// and the metadata.
    public static func message(type: String, device: String, timestamp: UInt64, content: [UInt8], version: UInt16 = 2,
                               metadata: [(String, String)] = [], messageID: UInt32 = 0) -> [UInt8] {
        var body: [UInt8] = []
        if version == 2 {
            var metaHeader: [UInt8] = [], meta: [UInt8] = []
            put(UInt16(metadata.count), &metaHeader)
            for (k, v) in metadata {
                let key = Array(k.utf8.prefix(Int(UInt16.max))), value = Array(v.utf8)
                put(UInt16(key.count), &metaHeader); put(UInt16(106), &metaHeader); put(UInt32(value.count), &metaHeader)
                meta.append(contentsOf: key); meta.append(contentsOf: value)
            }
            put(UInt16(12), &body); put(UInt16(metaHeader.count), &body); put(UInt32(meta.count), &body); put(messageID, &body)
            body.append(contentsOf: content)
            body.append(contentsOf: metaHeader); body.append(contentsOf: meta)
        } else {
            body = content
        }
        var out: [UInt8] = []
        out.reserveCapacity(headerSize + body.count)
        put(version, &out)
        put(type, width: 12, &out)
        put(device, width: 20, &out)
        put(timestamp, &out)
        put(UInt64(body.count), &out)
        put(crc64(body), &out)
        out.append(contentsOf: body)
        return out
    }

    /// TRANSFORM content: rotation (column-major) and translation (mm).
    public static func transformContent(rotation: [Float] = [1, 0, 0, 0, 1, 0, 0, 0, 1], translation: SIMD3<Float>) -> [UInt8] {
        var out: [UInt8] = []
        for v in rotation.prefix(9) { put(v, &out) }
        put(translation.x, &out); put(translation.y, &out); put(translation.z, &out)
        return out
    }

    /// STATUS content: code (1 OK, 2 error, 5 access denied, 9 checksum, 13 not ready, 15 disabled…),
    /// subcode, error name (20 bytes) and message.
    public static func statusContent(code: UInt16, subcode: Int64 = 0, name: String, message: String) -> [UInt8] {
        var out: [UInt8] = []
        put(code, &out); put(subcode, &out); put(name, width: 20, &out)
        out.append(contentsOf: message.utf8); out.append(0)
        return out
    }

    /// STRING content (UTF-8).
    public static func stringContent(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        let u = Array(s.utf8.prefix(Int(UInt16.max)))
        put(UInt16(106), &out); put(UInt16(u.count), &out); out.append(contentsOf: u)
        return out
    }

    public static func pointContent(_ points: [IGTLPoint]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(points.count * 136)
        for p in points {
            put(p.name, width: 64, &out); put(p.group, width: 32, &out)
            out.append(contentsOf: [p.rgba.0, p.rgba.1, p.rgba.2, p.rgba.3])
            put(p.position.x, &out); put(p.position.y, &out); put(p.position.z, &out); put(p.diameter, &out)
            put(p.owner, width: 20, &out)
        }
        return out
    }

    /// IMAGE content of a 16-bit greyscale 2D image (little-endian pixels, LPS): `axes` are the
    /// i (column) and j (row) directions scaled by the pixel spacing, `normal` the k direction,
    /// `centre` the image centre (mm).
    public static func imageContent(width: Int, height: Int, pixels: UnsafeBufferPointer<UInt16>, axes: (SIMD3<Float>, SIMD3<Float>),
                                    normal: SIMD3<Float>, centre: SIMD3<Float>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(72 + pixels.count * 2)
        put(UInt16(1), &out)
        out.append(contentsOf: [1, 5, 2, 2])   // 1 component, uint16, little-endian pixels, LPS
        put(UInt16(clamping: width), &out); put(UInt16(clamping: height), &out); put(UInt16(1), &out)
        for v in [axes.0, axes.1, normal, centre] { put(v.x, &out); put(v.y, &out); put(v.z, &out) }
        put(UInt16(0), &out); put(UInt16(0), &out); put(UInt16(0), &out)
        put(UInt16(clamping: width), &out); put(UInt16(clamping: height), &out); put(UInt16(1), &out)
        for p in pixels {
            out.append(UInt8(truncatingIfNeeded: p)); out.append(UInt8(truncatingIfNeeded: p >> 8))
        }
        return out
    }
}
