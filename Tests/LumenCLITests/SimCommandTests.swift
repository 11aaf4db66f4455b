import Foundation
import Testing

/// The simulator's commands as a user runs them.
@Suite("Simulator commands")
struct SimCommandTests {
    @Test("sim render --format dicom --biplane writes two XA files that read back with their geometry and frame rate")
    func renderDicomBiplane() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-render-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Tool.run(["sim", "render", "--phantom", "arch", "--frames", "2", "--format", "dicom", "--biplane",
                              "--motion", "typical", "--fps", "30", "--out", dir, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try #require(r.json)
        #expect(summary["catheter"] as? String == "physics")
        #expect(summary["plane_b"] != nil)
        for (file, primary) in [(dir + "/frames.dcm", "0.00°"), (dir + "/plane-b/frames.dcm", "90.00°")] {
            let info = try Tool.run(["dicom", "info", file])
            #expect(info.status == 0, "\(info.stderr)")
            #expect(info.stdout.contains("2 frame(s)"))
            #expect(info.stdout.contains("30.00 fps"))
            #expect(info.stdout.contains("SID 1020.0 mm"))
            #expect(info.stdout.contains("primary \(primary)"), "\(info.stdout)")
        }
        // Truth for both planes.
        let truthA = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/truth.json"))) as? [[String: Any]]
        let truthB = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/plane-b/truth.json"))) as? [[String: Any]]
        #expect(truthA?.count == 2 && truthB?.count == 2)
        #expect((truthA?[0]["tip3D"] as? [Double]) == (truthB?[0]["tip3D"] as? [Double]), "both planes see the same tip")
    }

    @Test("sim render refuses unknown formats, motions and catheters before doing anything")
    func refusesBadOptions() throws {
        for args in [["--format", "tiff"], ["--motion", "wild"], ["--catheter", "rope"]] {
            let r = try Tool.run(["sim", "render", "--frames", "1", "--out", "/tmp/never"] + args)
            #expect(r.status != 0)
            #expect(r.stderr.contains(args[0]), "\(r.stderr)")
        }
    }
}
