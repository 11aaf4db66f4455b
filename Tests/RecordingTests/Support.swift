import Foundation
import Testing
@testable import Recording

/// The repository, the built tool and a Python with the reference peers (PyPI `mcap`, `pyigtl`;
/// scripts/test.sh installs them).
enum Support {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var lumen: URL {
        let bundleDir = Bundle.main.bundleURL.deletingLastPathComponent()
        let candidates = [bundleDir.appendingPathComponent("lumen"), root.appendingPathComponent(".build/debug/lumen")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[1]
    }

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any] }
    }

    /// Runs a program to its end (killed after `timeout` seconds, so a hung peer cannot hang the suite).
    static func run(_ executable: String, _ args: [String], timeout: TimeInterval = 120) throws -> Outcome {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        p.currentDirectoryURL = root
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let killer = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        killer.cancel()
        return Outcome(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    static func python(_ script: String, _ args: [String], timeout: TimeInterval = 120) throws -> Outcome {
        try run("/usr/bin/env", ["python3", root.appendingPathComponent(script).path] + args, timeout: timeout)
    }

    static func tool(_ args: [String], timeout: TimeInterval = 120) throws -> Outcome {
        try run(lumen.path, args, timeout: timeout)
    }

    /// A fresh folder, removed at the end of the test.
    /// Copies a recording message by message through `transform` (topic, log time, bytes → the
    /// bytes to keep, nil to leave the message out): a recording as another run might have left it.
    static func rewrite(_ path: String, to copy: String, _ transform: (String, UInt64, [UInt8]) -> [UInt8]?) throws {
        var topics: [UInt16: String] = [:]
        var messages: [(topic: String, time: UInt64, data: [UInt8])] = []
        _ = try MCAPRecording.read(path, messages: { m in
            if let t = topics[m.channel], let d = transform(t, m.logTime, m.data) { messages.append((t, m.logTime, d)) }
        }, channels: { topics[$0.id] = $0.topic })
        var w = try MCAPWriter(path: copy, library: "test")
        var ids: [String: UInt16] = [:]
        for (topic, time, data) in messages {
            if ids[topic] == nil { ids[topic] = try w.addChannel(topic: topic, schema: 0) }
            w.add(channel: ids[topic] ?? 0, logTime: time, publishTime: time, data: data)
        }
        try w.closeChunk(sync: false)
        try w.finish()
    }

    /// A short synthetic run recorded to `path` (no estimator, no measurer: nothing live to replay).
    static func recordSynthetic(to path: String, planes: Int, seconds: Double) throws {
        var settings = SyntheticSettings()
        settings.planes = planes
        let run = try SyntheticRun(settings: settings)
        let rec = try Recorder(path: path, tap: run, port: run, configuration: [])
        run.start()
        rec.start()
        Thread.sleep(forTimeInterval: seconds)
        run.stop()
        _ = rec.stop()
    }

    final class Scratch {
        let url: URL
        init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-recording-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        func path(_ name: String) -> String { url.appendingPathComponent(name).path }
        deinit { try? FileManager.default.removeItem(at: url) }
    }
}
