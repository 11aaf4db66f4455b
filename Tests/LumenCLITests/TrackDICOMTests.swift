import Foundation
import Testing

/// `lumen track --input` on a rendered sequence written as DICOM, as delivered (uncompressed,
/// RLE, JPEG lossless): the same track as from the PNG frames of the same render.
@Suite(.serialized) struct TrackDICOMTests {
    let scratch: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-track-dicom-\(UUID())")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    func compress(_ tool: String, _ options: [String], _ input: String, _ output: String) throws {
        let path = "/usr/bin/" + tool
        try #require(FileManager.default.isExecutableFile(atPath: path), "\(path) is missing: run scripts/setup.sh (Debian package dcmtk)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = options + [input, output]
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "\(tool) failed")
    }

    struct Record: Equatable {
        var u: Double?, v: Double?, confidence: Double?, status: String?
    }

    /// (u, v, confidence, status) of every record of `lumen track --json`.
    func track(_ input: String) throws -> (summary: [String: Any], records: [Record]) {
        let r = try Tool.run(["track", "--input", input, "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        let records = try #require(json["records"] as? [[String: Any]])
        return (json, records.map { r in
            Record(u: r["u"] as? Double, v: r["v"] as? Double, confidence: r["confidence"] as? Double, status: r["status"] as? String)
        })
    }

    @Test func aDICOMRenderTracksAsItsPNGFramesDoCompressedOrNot() throws {
        let png = scratch.appendingPathComponent("png").path, dcm = scratch.appendingPathComponent("dcm").path
        for (out, format) in [(png, "png"), (dcm, "dicom")] {
            let r = try Tool.run(["sim", "render", "--frames", "4", "--out", out, "--format", format])
            try #require(r.status == 0, "\(r.stderr)")
        }
        let reference = try track(png)
        #expect(reference.records.count == 4)
        #expect(reference.records.contains { $0.status == "tracked" }, "the render has a catheter to track")
        let file = dcm + "/frames.dcm"
        let plain = try track(file)
        #expect(plain.records == reference.records)
        #expect(plain.summary["source"] as? String == "dicom")
        #expect(plain.summary["frame_interval_assumed"] as? Bool == false)
        #expect(plain.summary["pixel_spacing_tag"] as? String == "ImagerPixelSpacing (0018,1164)")
        for (tool, options) in [("dcmcrle", [String]()), ("dcmcjpeg", []), ("dcmcjpls", [])] {
            let packed = scratch.appendingPathComponent("frames-\(tool).dcm").path
            try compress(tool, options, file, packed)
            let t = try track(packed)
            #expect(t.records == reference.records, "\(tool)")
            #expect((t.summary["warnings"] as? [String])?.isEmpty == true)
            let info = try Tool.run(["dicom", "info", packed, "--json"])
            #expect(info.status == 0 && info.json?["compressed"] as? Bool == true && info.json?["lossy"] as? Bool == false, "\(info.stderr)")
        }
        // Lossy JPEG is read too, and says so.
        let lossy = scratch.appendingPathComponent("frames-lossy.dcm").path
        try compress("dcmcjpeg", ["+ee"], file, lossy)
        let r = try Tool.run(["track", "--input", lossy, "--json"])
        #expect(r.status == 0 && r.stderr.contains("warning: lossy compression"), "\(r.stderr)")
        let info = try Tool.run(["dicom", "info", lossy])
        #expect(info.status == 0 && info.stdout.contains("lossy"), "\(info.stdout)")
    }

    @Test func aFolderOfOneSeriesIsTrackedInInstanceOrderAndAMixedOneIsRefused() throws {
        let out = scratch.appendingPathComponent("series-render").path
        try #require(try Tool.run(["sim", "render", "--frames", "2", "--out", out, "--format", "dicom"]).status == 0)
        let folder = scratch.appendingPathComponent("series").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // Two copies of the run as instances 2 and 1 of one series, named against their order.
        for (name, instance) in [("a.dcm", 2), ("b.dcm", 1)] {
            let file = folder + "/" + name
            try FileManager.default.copyItem(atPath: out + "/frames.dcm", toPath: file)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/dcmodify")
            p.arguments = ["-nb", "-i", "(0020,000E)=1.2.826.0.1.3680043.9.7777.2", "-i", "(0020,0013)=\(instance)", file]
            try p.run()
            p.waitUntilExit()
            try #require(p.terminationStatus == 0)
        }
        let (summary, records) = try track(folder)
        #expect(summary["source"] as? String == "dicom-folder" && records.count == 4)
        // Mixed: a third file from another series.
        try FileManager.default.copyItem(atPath: out + "/frames.dcm", toPath: folder + "/c.dcm")
        let r = try Tool.run(["track", "--input", folder, "--json"])
        #expect(r.status != 0 && r.stderr.contains("2 series") && r.stderr.contains("1.2.826.0.1.3680043.9.7777.2: 2 file(s)"), "\(r.stderr)")
    }

    @Test func aCorruptCompressedFileFailsWithATypedMessage() throws {
        let out = scratch.appendingPathComponent("corrupt").path
        try #require(try Tool.run(["sim", "render", "--frames", "2", "--out", out, "--format", "dicom"]).status == 0)
        let packed = scratch.appendingPathComponent("corrupt-jpeg.dcm").path
        try compress("dcmcjpeg", [], out + "/frames.dcm", packed)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: packed)))
        // Scramble the last quarter of the file: inside the last frame's JPEG stream.
        for i in (bytes.count * 3 / 4)..<(bytes.count - 16) { bytes[i] ^= 0x5A }
        try Data(bytes).write(to: URL(fileURLWithPath: packed))
        for args in [["track", "--input", packed], ["dicom", "info", packed]] {
            let r = try Tool.run(args)
            #expect(r.status != 0 && r.stderr.contains(packed), "\(args[0]): \(r.stderr)")
            #expect(r.stderr.contains("corrupt"), "\(r.stderr)")
        }
    }
}
