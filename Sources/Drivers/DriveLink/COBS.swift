/// Consistent Overhead Byte Stuffing: removes every 0x00 from a frame so that 0x00 can mark
/// frame boundaries on the wire. Overhead: one byte per 254 bytes of data, plus one.
public enum COBS {
    /// The largest encoded size of `n` bytes (without the trailing 0x00 delimiter).
    @_noAllocation @_noLocks
    @inlinable public static func maxEncodedSize(_ n: Int) -> Int { n + n / 254 + 1 }

    /// Encodes `src` into `dst`; returns the encoded length, or nil if `dst` is too small.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public static func encode(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) -> Int? {
        if dst.count < maxEncodedSize(src.count) { return nil }
        var codeIndex = 0
        var out = 1
        var code: UInt8 = 1
        for i in 0..<src.count {
            let b = src[i]
            if b == 0 {
                dst[codeIndex] = code
                codeIndex = out
                out += 1
                code = 1
            } else {
                dst[out] = b
                out += 1
                code += 1
                // A full block opens a new one only if data follows (canonical COBS).
                if code == 0xFF, i + 1 < src.count {
                    dst[codeIndex] = code
                    codeIndex = out
                    out += 1
                    code = 1
                }
            }
        }
        dst[codeIndex] = code
        return out
    }

    /// Decodes one frame (without its 0x00 delimiter) into `dst`; returns the decoded length,
    /// or nil when the input is not valid COBS (a zero byte, a code running past the end) or
    /// `dst` is too small.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public static func decode(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) -> Int? {
        var i = 0
        var out = 0
        while i < src.count {
            let code = Int(src[i])
            if code == 0 { return nil }
            if i + code > src.count { return nil }
            i += 1
            for _ in 1..<code {
                if out >= dst.count { return nil }
                let b = src[i]
                if b == 0 { return nil }
                dst[out] = b
                out += 1
                i += 1
            }
            if code != 0xFF, i < src.count {
                if out >= dst.count { return nil }
                dst[out] = 0
                out += 1
            }
        }
        return out
    }
}
