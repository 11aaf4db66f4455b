/// A small JSON writer into bytes, for the recorder's messages: fields in a fixed order, numbers
/// written exactly (no locale, no rounding beyond Swift's shortest round-trip form), non-finite
/// numbers as null so every message stays valid JSON.
struct JSONOut {
    var bytes: [UInt8] = []
    private var needsComma = false

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// Empties the buffer for the next message, keeping its capacity.
    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        needsComma = false
    }

    private mutating func comma() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = false
    }
    private mutating func key(_ k: String) {
        comma()
        quoted(k)
        bytes.append(UInt8(ascii: ":"))
    }
    private mutating func quoted(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [92, 92])
            case 0x0A: bytes.append(contentsOf: [92, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [92, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
    private mutating func number(_ v: Double) {
        if v.isFinite { bytes.append(contentsOf: "\(v)".utf8) } else { bytes.append(contentsOf: "null".utf8) }
    }

    mutating func object(_ body: (inout JSONOut) -> Void) {
        comma()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
        body(&self)
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }
    mutating func object(_ k: String, _ body: (inout JSONOut) -> Void) {
        key(k)
        object(body)
    }
    mutating func field(_ k: String, _ v: Double) { key(k); number(v); needsComma = true }
    mutating func field(_ k: String, _ v: Int64) { key(k); bytes.append(contentsOf: "\(v)".utf8); needsComma = true }
    mutating func field(_ k: String, _ v: UInt64) { key(k); bytes.append(contentsOf: "\(v)".utf8); needsComma = true }
    mutating func field(_ k: String, _ v: Int) { field(k, Int64(v)) }
    mutating func field(_ k: String, _ v: Bool) { key(k); bytes.append(contentsOf: (v ? "true" : "false").utf8); needsComma = true }
    mutating func field(_ k: String, _ v: String) { key(k); quoted(v); needsComma = true }
    mutating func null(_ k: String) { key(k); bytes.append(contentsOf: "null".utf8); needsComma = true }
    mutating func field(_ k: String, _ v: [Double]) { array(k, v) { $0.number($1) } }
    mutating func field(_ k: String, strings v: [String]) { array(k, v) { $0.quoted($1) } }
    /// An array under `k`, each element written by `element`.
    private mutating func array<T>(_ k: String, _ v: [T], _ element: (inout JSONOut, T) -> Void) {
        key(k)
        bytes.append(UInt8(ascii: "["))
        for (i, x) in v.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            element(&self, x)
        }
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }
    /// Bytes as base64 in a string (how JSON-encoded Foxglove schemas carry `bytes` fields).
    mutating func field(_ k: String, base64 v: [UInt8]) {
        key(k)
        bytes.append(UInt8(ascii: "\""))
        Base64.append(v, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }
    /// A Foxglove time: seconds and nanoseconds.
    mutating func time(_ k: String, _ ns: Int64) {
        let t = max(0, ns)
        object(k) { $0.field("sec", t / 1_000_000_000); $0.field("nsec", t % 1_000_000_000) }
    }
}

enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func append(_ input: [UInt8], to out: inout [UInt8]) {
        // Through raw buffers: an image is a megabyte or more, and appending byte by byte checks
        // the array's capacity for every one.
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: (input.count + 2) / 3 * 4))
        alphabet.withUnsafeBufferPointer { a in
            input.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { whole in
                    guard let o = whole.baseAddress.map({ $0 + start }) else { return }
                    var i = 0, w = 0
                    while i + 3 <= b.count {
                        let n = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2])
                        o[w] = a[Int(n >> 18)]; o[w + 1] = a[Int((n >> 12) & 63)]
                        o[w + 2] = a[Int((n >> 6) & 63)]; o[w + 3] = a[Int(n & 63)]
                        i += 3; w += 4
                    }
                    let rest = b.count - i
                    if rest == 1 {
                        let n = UInt32(b[i]) << 16
                        o[w] = a[Int(n >> 18)]; o[w + 1] = a[Int((n >> 12) & 63)]; o[w + 2] = 61; o[w + 3] = 61
                    } else if rest == 2 {
                        let n = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8
                        o[w] = a[Int(n >> 18)]; o[w + 1] = a[Int((n >> 12) & 63)]; o[w + 2] = a[Int((n >> 6) & 63)]; o[w + 3] = 61
                    }
                }
            }
        }
    }
}
