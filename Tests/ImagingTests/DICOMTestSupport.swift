import Core
import Foundation

/// DICOM files assembled byte by byte, independent of DCMTK: the files "other writers" produce
/// (no preamble, implicit VR, odd VRs, compressed syntaxes, frame time vectors).
struct DICOMBytes {
    var bytes: [UInt8] = []
    var explicit = true
    var bigEndian = false

    init(explicit: Bool = true, bigEndian: Bool = false) {
        self.explicit = explicit
        self.bigEndian = bigEndian
    }

    mutating func u16(_ v: UInt16) { bytes += bigEndian ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)] }
    mutating func u32(_ v: UInt32) {
        let le = [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)]
        bytes += bigEndian ? le.reversed() : le
    }

    /// One element; the value is padded to even length (space for strings, 0 otherwise).
    mutating func element(_ group: UInt16, _ element: UInt16, _ vr: String, _ value: [UInt8], length: UInt32? = nil) {
        var v = value
        if v.count % 2 == 1 { v.append(["OB", "OW", "UN", "US", "UL", "FD", "UI"].contains(vr) ? 0 : 0x20) }
        u16(group)
        u16(element)
        let len = length ?? UInt32(v.count)
        if explicit {
            bytes += Array(vr.utf8)
            if ["OB", "OW", "OF", "SQ", "UT", "UN"].contains(vr) {
                bytes += [0, 0]
                u32(len)
            } else {
                u16(UInt16(len))
            }
        } else {
            u32(len)
        }
        bytes += v
    }

    mutating func string(_ g: UInt16, _ e: UInt16, _ vr: String, _ s: String) { element(g, e, vr, Array(s.utf8)) }
    mutating func us(_ g: UInt16, _ e: UInt16, _ v: UInt16) {
        var tmp = DICOMBytes(explicit: explicit, bigEndian: bigEndian)
        tmp.u16(v)
        element(g, e, "US", tmp.bytes)
    }

    /// A typical image pixel module plus XA geometry; pixel data added separately.
    mutating func image(rows: Int, columns: Int, frames: Int = 1, bitsAllocated: Int = 16, bitsStored: Int = 12, highBit: Int? = nil,
                        photometric: String = "MONOCHROME2", signed: Bool = false, samples: Int = 1,
                        sopClass: String = "1.2.840.10008.5.1.4.1.1.12.1") {
        string(0x0008, 0x0016, "UI", sopClass)
        string(0x0008, 0x0018, "UI", "1.2.3.4.5.6.7")
        string(0x0008, 0x0060, "CS", "XA")
        us(0x0028, 0x0002, UInt16(samples))
        string(0x0028, 0x0004, "CS", photometric)
        if frames > 1 { string(0x0028, 0x0008, "IS", "\(frames)") }
        us(0x0028, 0x0010, UInt16(rows))
        us(0x0028, 0x0011, UInt16(columns))
        us(0x0028, 0x0100, UInt16(bitsAllocated))
        us(0x0028, 0x0101, UInt16(bitsStored))
        us(0x0028, 0x0102, UInt16(highBit ?? bitsStored - 1))
        us(0x0028, 0x0103, signed ? 1 : 0)
    }

    /// 16-bit pixel words in this encoding's byte order.
    mutating func pixels16(_ values: [UInt16], vr: String = "OW") {
        var tmp = DICOMBytes(explicit: explicit, bigEndian: bigEndian)
        for v in values { tmp.u16(v) }
        element(0x7FE0, 0x0010, vr, tmp.bytes)
    }

    /// Encapsulated pixel data: undefined length, an empty offset table, one fragment whose length
    /// field says `declared` (its true length by default), the sequence delimiter.
    mutating func encapsulatedPixels(_ fragment: [UInt8], declared: UInt32? = nil) {
        u16(0x7FE0); u16(0x0010); bytes += Array("OB".utf8) + [0, 0]; u32(0xFFFF_FFFF)
        u16(0xFFFE); u16(0xE000); u32(0)
        u16(0xFFFE); u16(0xE000); u32(declared ?? UInt32(fragment.count)); bytes += fragment
        u16(0xFFFE); u16(0xE0DD); u32(0)
    }

    /// Preamble, DICM and a file meta group (always explicit little endian) before `dataset`.
    static func file(transferSyntax: String, dataset: [UInt8]) -> [UInt8] {
        var meta = DICOMBytes()
        meta.element(0x0002, 0x0001, "OB", [0, 1])
        meta.string(0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.12.1")
        meta.string(0x0002, 0x0003, "UI", "1.2.3.4.5.6.7")
        meta.string(0x0002, 0x0010, "UI", transferSyntax)
        meta.string(0x0002, 0x0012, "UI", "1.2.3.4")
        var group = DICOMBytes()
        group.u16(0x0002); group.u16(0x0000); group.bytes += Array("UL".utf8); group.u16(4); group.u32(UInt32(meta.bytes.count))
        return [UInt8](repeating: 0, count: 128) + Array("DICM".utf8) + group.bytes + meta.bytes + dataset
    }
}

/// A scratch folder per test suite instance.
func scratchFolder(_ name: String) -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-\(name)-\(UUID())")
    try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}

