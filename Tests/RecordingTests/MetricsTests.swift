import Core
import Foundation
import Testing
@testable import Recording

/// The Prometheus endpoint, scraped by a real HTTP client (Python's urllib) while a run records.
struct MetricsTests {
    static func get(_ url: String) throws -> (status: Int, body: String) {
        let script = """
        import sys, urllib.request, urllib.error
        try:
            r = urllib.request.urlopen(sys.argv[1], timeout=10)
            print(r.status); print(r.headers.get("Content-Type")); sys.stdout.write(r.read().decode())
        except urllib.error.HTTPError as e:
            print(e.code); print(e.headers.get("Content-Type"))
        """
        let out = try Support.run("/usr/bin/env", ["python3", "-c", script, url], timeout: 30)
        let lines = out.stdout.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false)
        return (Int(lines.first ?? "") ?? -1, lines.count > 2 ? String(lines[2]) : "")
    }

    @Test func theEndpointIsScrapedWhileARunRecords() throws {
        let s = try Support.Scratch()
        let run = try RecorderTests.synthetic(planes: 1, size: 256, pool: 4)
        let endpoint = try MetricsEndpoint(port: run)
        endpoint.start()
        defer { endpoint.stop() }
        let rec = try Recorder(path: s.path("m.mcap"), tap: run, port: run, configuration: [], metrics: endpoint.metrics)
        run.start()
        rec.start()
        Thread.sleep(forTimeInterval: 1.0)
        let (status, body) = try Self.get("http://127.0.0.1:\(endpoint.boundPort)/metrics")
        run.stop()
        _ = rec.stop()
        #expect(status == 200)
        for name in ["lumen_cycle_lateness_seconds_bucket", "lumen_cycle_compute_seconds_count", "lumen_cycle_overruns",
                     "lumen_safety_monitor_alive 1", "lumen_safety_stop_category -1", "lumen_frames_acquired{plane=\"0\"}",
                     "lumen_frames_tracked_total{plane=\"0\"}", "lumen_fused_measurements_total", "lumen_link_up 1"] {
            #expect(body.contains(name), "no \(name) in the scrape")
        }
        let count = body.split(separator: "\n").first { $0.hasPrefix("lumen_cycle_lateness_seconds_count") }
            .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(count > 0)
        // A measurement is fused once, however many cycles carry it.
        let fused = body.split(separator: "\n").first { $0.hasPrefix("lumen_fused_measurements_total") }
            .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(fused > 0 && fused < count, "fused \(fused) of \(count) cycles")
        #expect(endpoint.scrapeCount == 1)
        #expect(try Self.get("http://127.0.0.1:\(endpoint.boundPort)/other").status == 404)
    }
}
