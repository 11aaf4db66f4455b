/// CRC-32C (Castagnoli), the DriveLink frame check: polynomial 0x1EDC6F41 (reflected
/// 0x82F63B78), initial value 0xFFFFFFFF, input and output reflected, final XOR 0xFFFFFFFF.
/// Check value: CRC-32C("123456789") = 0xE3069283.
///
/// Chosen over CRC-32 (IEEE) for its larger Hamming distance on the short frames DriveLink
/// sends (HD 6 up to 655 bits of data), and over CRC-16 because a 1 kHz link sees ~10⁶ frames
/// in a procedure. Computed four bits at a time from a 16-entry table that lives on the stack,
/// so the cycle can call it.
public enum CRC32C {
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        let table: InlineArray<16, UInt32> = [
            0x0000_0000, 0x105E_C76F, 0x20BD_8EDE, 0x30E3_49B1, 0x417B_1DBC, 0x5125_DAD3, 0x61C6_9362, 0x7198_540D,
            0x82F6_3B78, 0x92A8_FC17, 0xA24B_B5A6, 0xB215_72C9, 0xC38D_26C4, 0xD3D3_E1AB, 0xE330_A81A, 0xF36E_6F75,
        ]
        var crc: UInt32 = 0xFFFF_FFFF
        for i in 0..<bytes.count {
            crc ^= UInt32(bytes[i])
            crc = (crc >> 4) ^ table[Int(crc & 0xF)]
            crc = (crc >> 4) ^ table[Int(crc & 0xF)]
        }
        return crc ^ 0xFFFF_FFFF
    }
}
