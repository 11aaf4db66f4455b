import Foundation
import Testing
@testable import Recording

struct FrameCodecTests {
    static let frame: [UInt16] = (0..<(64 * 48)).map { UInt16(($0 * 37) % 4096) }

    @Test func pngIsLossless() throws {
        let png = try FrameCodec.encode(Self.frame, width: 64, height: 48, format: .png, quality: 1)
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        #expect(try FrameCodec.decode(png, width: 64, height: 48, format: .png) == Self.frame)
    }

    @Test func base64IsFoundationsForEveryRemainder() {
        for n in [0, 1, 2, 3, 4, 5, 100, 1001] {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            var out: [UInt8] = Array("x".utf8)
            Base64.append(bytes, to: &out)
            #expect(out == Array(("x" + Data(bytes).base64EncodedString()).utf8), "\(n) bytes")
        }
    }

    /// Level 1 (OpenCV's fast path: the Sub filter on every row) and the adaptive filters the
    /// bench compares it with are both lossless.
    @Test func pngIsLosslessOnBothFilterChoices() throws {
        let fast = try FrameCodec.encode(Self.frame, width: 64, height: 48, format: .png, quality: 1)
        let adaptive = try FrameCodec.encodePNGAdaptiveFilters(Self.frame, width: 64, height: 48, level: 1)
        #expect(fast != adaptive)
        #expect(try FrameCodec.decode(fast, width: 64, height: 48, format: .png) == Self.frame)
        #expect(try FrameCodec.decode(adaptive, width: 64, height: 48, format: .png) == Self.frame)
    }

    @Test func jpegKeepsTheRangeApproximately() throws {
        let smooth: [UInt16] = (0..<(64 * 48)).map { UInt16(($0 % 64) * 60) }
        let jpeg = try FrameCodec.encode(smooth, width: 64, height: 48, format: .jpeg, quality: 95)
        #expect(jpeg.starts(with: [0xFF, 0xD8]))
        let back = try FrameCodec.decode(jpeg, width: 64, height: 48, format: .jpeg)
        let worst = zip(back, smooth).map { abs(Int($0) - Int($1)) }.max() ?? .max
        #expect(worst < 160, "worst difference \(worst)")
    }

    @Test func badSizesAndBadBytesAreTypedErrors() {
        #expect(throws: FrameCodecError.self) { try FrameCodec.encode([1, 2, 3], width: 64, height: 48, format: .png, quality: 1) }
        #expect(throws: FrameCodecError.self) { try FrameCodec.encode([], width: 0, height: 0, format: .png, quality: 1) }
        #expect(throws: FrameCodecError.self) { try FrameCodec.decode([1, 2, 3], width: 64, height: 48, format: .png) }
        #expect(throws: FrameCodecError.self) { try FrameCodec.decode([1, 2, 3], width: 100_000, height: 48, format: .png) }
    }

    @Test func aRecorderThatWasNeverStartedStillClosesItsFile() throws {
        let s = try Support.Scratch()
        let rec = try Recorder(path: s.path("n.mcap"), tap: FakeTap(), port: nil, configuration: [])
        _ = rec.stop()
        _ = rec.stop()
        #expect(try RecordingInfo.read(s.path("n.mcap")).complete)
    }
}
