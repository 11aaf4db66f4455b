import Core
import Foundation
import Testing
@testable import Imaging

@Suite struct FrameSourceTests {
    let dir = scratchFolder("frames")

    func folder(_ name: String) throws -> String {
        let p = dir.appendingPathComponent(name).path
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    func frame(_ value: UInt16, width: Int = 20, height: Int = 16) -> Frame {
        Frame(width: width, height: height, pixels: (0..<(width * height)).map { UInt16($0 % 7) &+ value })
    }

    @Test func aPNGFolderIsReadInNaturalNameOrderWithTheGivenInterval() throws {
        let p = try folder("pngs")
        for k in [10, 2, 1, 11, 3] { try PNGFrameFile.write(frame(UInt16(k * 100)), to: "\(p)/frame\(k).png") }
        try Data("not a frame".utf8).write(to: URL(fileURLWithPath: "\(p)/notes.txt"))
        let s = try FrameSource.open(path: p, frameInterval: 40_000_000, start: 5_000)
        #expect(s.kind == .pngFolder && s.frameCount == 5 && s.geometry == nil && !s.frameIntervalAssumed)
        var seen: [Frame] = []
        while let f = try s.next() { seen.append(f) }
        #expect(seen.map { $0.pixels[0] } == [100, 200, 300, 1000, 1100], "frame2 before frame10")
        #expect(seen.map(\.acquiredAt) == (0..<5).map { 5_000 + Int64($0) * 40_000_000 })
        #expect(try s.next() == nil)
        s.rewind()
        #expect(try s.next()?.pixels[0] == 100)
        #expect(try s.frame(at: 3).acquiredAt == 5_000 + 120_000_000)
        #expect(throws: FrameSourceError.self) { try s.frame(at: 5) }
        // Without an interval: 15 fps, flagged.
        let d = try FrameSource.open(path: p)
        #expect(d.frameInterval == FrameSource.defaultFrameInterval && d.frameIntervalAssumed)
    }

    @Test func aDICOMFileBringsItsTimingGeometryAndRange() throws {
        let p = dir.appendingPathComponent("run.dcm").path
        let g = CArmGeometry(columns: 20, rows: 16, primaryAngle: 0.3)
        try DICOMWriter.write(frames: [frame(1), frame(2), frame(3)], geometry: g, frameInterval: 50_000_000, to: p, options: .init(bitsStored: 12))
        let s = try FrameSource.open(path: p, frameInterval: 1_000, start: 7)
        #expect(s.kind == .dicom && s.frameCount == 3 && s.maxValue == 4095)
        #expect(s.frameInterval == 50_000_000 && !s.frameIntervalAssumed, "the file's timing wins over the option")
        // Equal to DS precision (16 characters a decimal string).
        let back = try #require(s.geometry)
        #expect(abs(back.primaryAngle - g.primaryAngle) < 1e-12 && back.sourceToDetector == g.sourceToDetector && back.columns == 20)
        #expect(s.dicomHeader?.sopClass == .xa)
        var times: [Nanoseconds] = []
        while let f = try s.next() { times.append(f.acquiredAt) }
        #expect(times == [7, 50_000_007, 100_000_007])
        // A file without timing takes the option.
        let q = dir.appendingPathComponent("untimed.dcm").path
        try DICOMWriter.write(frames: [frame(1), frame(2)], geometry: nil, frameInterval: nil, to: q, options: .init(bitsStored: 12))
        let u = try FrameSource.open(path: q, frameInterval: 33_000_000)
        #expect(try u.frame(at: 1).acquiredAt == 33_000_000 && !u.frameIntervalAssumed)
        #expect(u.geometryNotes.first?.contains("DistanceSourceToDetector") == true)
    }

    @Test func everyWayToFailIsTyped() throws {
        #expect(throws: FrameSourceError.notFound(path: "/nonexistent/x")) { try FrameSource.open(path: "/nonexistent/x") }
        let empty = try folder("empty")
        #expect(throws: FrameSourceError.noFrames(path: empty)) { try FrameSource.open(path: empty) }
        let mixed = try folder("mixed")
        try PNGFrameFile.write(frame(1), to: "\(mixed)/a.png")
        try PNGFrameFile.write(frame(1, width: 8, height: 8), to: "\(mixed)/b.png")
        // Refused at open, before any frame is decoded.
        #expect(throws: FrameSourceError.sizeMismatch(file: "\(mixed)/b.png", expected: "20 × 16", got: "8 × 8")) { try FrameSource.open(path: mixed) }
        let broken = try folder("broken")
        try Data([0x89, 0x50, 0x4E, 0x47, 1, 2]).write(to: URL(fileURLWithPath: "\(broken)/a.png"))
        #expect { try FrameSource.open(path: broken) } throws: { e in
            guard case FrameSourceError.image(.unreadable) = e else { return false }
            return true
        }
        let junk = dir.appendingPathComponent("junk.dcm").path
        try Data("hello".utf8).write(to: URL(fileURLWithPath: junk))
        #expect { try FrameSource.open(path: junk) } throws: { e in
            guard case FrameSourceError.dicom(.notDICOM(let file, _)) = e else { return false }
            return file == junk && "\(e)".hasPrefix(junk)
        }
        #expect(throws: FrameSourceError.self) { try FrameSource.open(path: empty, frameInterval: 0) }
    }

    @Test func aProducerIsIteratedLikeAFile() throws {
        let s = FrameSource(producer: "renderer", frameCount: 4, frameInterval: 100, geometry: CArmGeometry(), maxValue: 4095, start: 1) { k in
            if k == 3 { throw CancellationError() }
            return self.frame(UInt16(k))
        }
        #expect(try s.next()?.acquiredAt == 1)
        #expect(try s.next()?.pixels[0] == 1)
        #expect(try s.frame(at: 2).acquiredAt == 201)
        #expect { try s.frame(at: 3) } throws: { e in
            guard case FrameSourceError.producer(let name, _) = e else { return false }
            return name == "renderer"
        }
    }
}
