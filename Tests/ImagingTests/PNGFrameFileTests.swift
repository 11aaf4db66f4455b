import Foundation
import Testing
@testable import Imaging

@Suite struct PNGFrameFileTests {
    let dir: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-png-\(UUID())")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    @Test func sixteenBitFramesRoundTripExactly() throws {
        let w = 37, h = 23
        let pixels = (0..<(w * h)).map { UInt16(truncatingIfNeeded: $0 &* 2654435761 >> 7) }
        let frame = Frame(width: w, height: h, pixels: pixels)
        let path = dir.appendingPathComponent("f.png").path
        try PNGFrameFile.write(frame, to: path)
        let back = try PNGFrameFile.read(path)
        #expect(back == frame)
        #expect(back[5, 3] == pixels[3 * w + 5], "pixel (u, v) is (column, row)")
    }

    @Test func corruptAndMissingFilesAreTypedErrorsNamingTheFile() throws {
        let bad = dir.appendingPathComponent("bad.png").path
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3]).write(to: URL(fileURLWithPath: bad))
        #expect(throws: ImageFileError.self) { try PNGFrameFile.read(bad) }
        do {
            _ = try PNGFrameFile.read(bad)
        } catch {
            guard case .unreadable(let file, _) = error else { Issue.record("expected .unreadable, got \(error)"); return }
            #expect(file == bad)
        }
        #expect(throws: ImageFileError.self) { try PNGFrameFile.read(dir.appendingPathComponent("none.png").path) }
    }

    @Test func unwritablePathIsATypedError() {
        let frame = Frame(width: 2, height: 2, pixels: [1, 2, 3, 4])
        #expect(throws: ImageFileError.self) { try PNGFrameFile.write(frame, to: "/nonexistent-dir/x.png") }
    }
}
