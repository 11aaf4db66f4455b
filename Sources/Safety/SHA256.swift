/// SHA-256 (FIPS 180-4), small and self-contained: the monitor prints the hash of the limits
/// file it runs with, so an operator and a log can tell exactly which limits were in force, and
/// the channel's HMAC (`ChannelKey`) is built on it. No crypto package is available to the
/// project; this is checked against the FIPS vectors and, through the HMAC, RFC 4231's.
public enum SHA256 {
    /// A 32-byte digest, stored inline.
    public typealias Digest = InlineArray<32, UInt8>

    /// A digest in progress, of fixed size: updating and finishing it never allocate, so the
    /// monitor can authenticate datagrams inside its cycle. State and block are plain words, not
    /// arrays: unoptimised (debug) builds call generic code for every array or pointer
    /// subscript, which made one tag cost hundreds of microseconds there, too slow for a 1 kHz
    /// channel; integer operations on words stay inline.
    public struct Context: Sendable {
        /// The chaining value.
        @usableFromInline var h0: UInt32 = 0x6a09_e667, h1: UInt32 = 0xbb67_ae85, h2: UInt32 = 0x3c6e_f372, h3: UInt32 = 0xa54f_f53a
        @usableFromInline var h4: UInt32 = 0x510e_527f, h5: UInt32 = 0x9b05_688c, h6: UInt32 = 0x1f83_d9ab, h7: UInt32 = 0x5be0_cd19
        /// The block being filled, as big-endian words, and the bytes of the word in progress.
        @usableFromInline var m0: UInt32 = 0, m1: UInt32 = 0, m2: UInt32 = 0, m3: UInt32 = 0, m4: UInt32 = 0, m5: UInt32 = 0, m6: UInt32 = 0, m7: UInt32 = 0
        @usableFromInline var m8: UInt32 = 0, m9: UInt32 = 0, m10: UInt32 = 0, m11: UInt32 = 0, m12: UInt32 = 0, m13: UInt32 = 0, m14: UInt32 = 0, m15: UInt32 = 0
        @usableFromInline var partial: UInt32 = 0
        /// Bytes of the block filled (0…63).
        @usableFromInline var used = 0
        /// Bytes absorbed so far.
        @usableFromInline var length: UInt64 = 0

        @_noAllocation @_noLocks
        public init() {}

        @_noAllocation @_noLocks
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            var i = 0
            let n = bytes.count
            while i < n {
                update(byte: bytes[i])
                i += 1
            }
        }

        @_noAllocation @_noLocks
        public mutating func update(byte: UInt8) {
            partial = partial << 8 | UInt32(byte)
            used += 1
            length &+= 1
            if used & 3 == 0 {
                setWord(used >> 2 - 1, partial)
                partial = 0
                if used == 64 {
                    compress()
                    used = 0
                }
            }
        }

        /// Pads, compresses the last block(s) and returns the digest.
        @_noAllocation @_noLocks
        public mutating func finish() -> Digest {
            let bitLength = length &* 8
            update(byte: 0x80)
            while used != 56 { update(byte: 0) }
            setWord(14, UInt32(truncatingIfNeeded: bitLength >> 32))
            setWord(15, UInt32(truncatingIfNeeded: bitLength))
            compress()
            var out = Digest(repeating: 0)
            let words = (h0, h1, h2, h3, h4, h5, h6, h7)
            for i in 0..<8 {
                let word: UInt32
                switch i {
                case 0: word = words.0
                case 1: word = words.1
                case 2: word = words.2
                case 3: word = words.3
                case 4: word = words.4
                case 5: word = words.5
                case 6: word = words.6
                default: word = words.7
                }
                out[4 * i] = UInt8(truncatingIfNeeded: word >> 24)
                out[4 * i + 1] = UInt8(truncatingIfNeeded: word >> 16)
                out[4 * i + 2] = UInt8(truncatingIfNeeded: word >> 8)
                out[4 * i + 3] = UInt8(truncatingIfNeeded: word)
            }
            return out
        }

        @_transparent
        mutating func setWord(_ index: Int, _ word: UInt32) {
            switch index {
            case 0: m0 = word
            case 1: m1 = word
            case 2: m2 = word
            case 3: m3 = word
            case 4: m4 = word
            case 5: m5 = word
            case 6: m6 = word
            case 7: m7 = word
            case 8: m8 = word
            case 9: m9 = word
            case 10: m10 = word
            case 11: m11 = word
            case 12: m12 = word
            case 13: m13 = word
            case 14: m14 = word
            case 15: m15 = word
            default: break
            }
        }

        /// The block into the chaining value (FIPS 180-4 §6.2.2), the schedule as a window of
        /// 16 words sliding one word per round.
        @_noAllocation @_noLocks
        mutating func compress() {
            var w0 = m0, w1 = m1, w2 = m2, w3 = m3, w4 = m4, w5 = m5, w6 = m6, w7 = m7
            var w8 = m8, w9 = m9, w10 = m10, w11 = m11, w12 = m12, w13 = m13, w14 = m14, w15 = m15
            var a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, hh = h7
            // A while loop: a range's iterator is generic code, called per round in debug builds.
            var t = 0
            while t < 64 {
                let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let ch = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ ch &+ SHA256.roundConstant(t) &+ w0
                let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let maj = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ maj
                hh = g; g = f; f = e; e = d &+ t1
                d = c; c = b; b = a; a = t1 &+ t2
                // W[t + 16] = σ1(W[t + 14]) + W[t + 9] + σ0(W[t + 1]) + W[t]
                let sigma0 = rotr(w1, 7) ^ rotr(w1, 18) ^ (w1 >> 3)
                let sigma1 = rotr(w14, 17) ^ rotr(w14, 19) ^ (w14 >> 10)
                let next = sigma1 &+ w9 &+ sigma0 &+ w0
                w0 = w1; w1 = w2; w2 = w3; w3 = w4; w4 = w5; w5 = w6; w6 = w7; w7 = w8
                w8 = w9; w9 = w10; w10 = w11; w11 = w12; w12 = w13; w13 = w14; w14 = w15; w15 = next
                t += 1
            }
            h0 = h0 &+ a; h1 = h1 &+ b; h2 = h2 &+ c; h3 = h3 &+ d
            h4 = h4 &+ e; h5 = h5 &+ f; h6 = h6 &+ g; h7 = h7 &+ hh
        }

        // Transparent: inlined in debug builds too, where a call per rotation dominated.
        @_transparent
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
    }

    /// The 32-byte digest of `bytes`.
    public static func digest(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var context = Context()
        let message = Array(bytes)
        message.withUnsafeBytes { context.update($0) }
        let d = context.finish()
        return (0..<32).map { d[$0] }
    }

    /// The digest as 64 lowercase hex digits.
    public static func hex(_ bytes: some Collection<UInt8>) -> String {
        let digits = Array("0123456789abcdef")
        var s = ""
        for b in digest(bytes) {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 0xF)])
        }
        return s
    }

    /// K_t of FIPS 180-4 §4.2.2, as a switch: a global table would need lazy initialisation,
    /// which takes a lock the monitor's cycle may not take.
    @_noAllocation @_noLocks @inline(__always)
    static func roundConstant(_ t: Int) -> UInt32 {
        switch t {
        case 0: 0x428a_2f98
        case 1: 0x7137_4491
        case 2: 0xb5c0_fbcf
        case 3: 0xe9b5_dba5
        case 4: 0x3956_c25b
        case 5: 0x59f1_11f1
        case 6: 0x923f_82a4
        case 7: 0xab1c_5ed5
        case 8: 0xd807_aa98
        case 9: 0x1283_5b01
        case 10: 0x2431_85be
        case 11: 0x550c_7dc3
        case 12: 0x72be_5d74
        case 13: 0x80de_b1fe
        case 14: 0x9bdc_06a7
        case 15: 0xc19b_f174
        case 16: 0xe49b_69c1
        case 17: 0xefbe_4786
        case 18: 0x0fc1_9dc6
        case 19: 0x240c_a1cc
        case 20: 0x2de9_2c6f
        case 21: 0x4a74_84aa
        case 22: 0x5cb0_a9dc
        case 23: 0x76f9_88da
        case 24: 0x983e_5152
        case 25: 0xa831_c66d
        case 26: 0xb003_27c8
        case 27: 0xbf59_7fc7
        case 28: 0xc6e0_0bf3
        case 29: 0xd5a7_9147
        case 30: 0x06ca_6351
        case 31: 0x1429_2967
        case 32: 0x27b7_0a85
        case 33: 0x2e1b_2138
        case 34: 0x4d2c_6dfc
        case 35: 0x5338_0d13
        case 36: 0x650a_7354
        case 37: 0x766a_0abb
        case 38: 0x81c2_c92e
        case 39: 0x9272_2c85
        case 40: 0xa2bf_e8a1
        case 41: 0xa81a_664b
        case 42: 0xc24b_8b70
        case 43: 0xc76c_51a3
        case 44: 0xd192_e819
        case 45: 0xd699_0624
        case 46: 0xf40e_3585
        case 47: 0x106a_a070
        case 48: 0x19a4_c116
        case 49: 0x1e37_6c08
        case 50: 0x2748_774c
        case 51: 0x34b0_bcb5
        case 52: 0x391c_0cb3
        case 53: 0x4ed8_aa4a
        case 54: 0x5b9c_ca4f
        case 55: 0x682e_6ff3
        case 56: 0x748f_82ee
        case 57: 0x78a5_636f
        case 58: 0x84c8_7814
        case 59: 0x8cc7_0208
        case 60: 0x90be_fffa
        case 61: 0xa450_6ceb
        case 62: 0xbef9_a3f7
        case 63: 0xc671_78f2
        default: 0
        }
    }

}
