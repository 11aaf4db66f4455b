import Foundation
import Testing

/// The safety monitor ships as its own executable, `lumen-safety`, which must not carry any code
/// of the control stack, the simulator or the imaging pipeline: an independent risk control is
/// independent in what it links, not only in what its sources import.
@Suite struct MonitorExecutableTests {
    static var monitorBinary: URL { Tool.binary.deletingLastPathComponent().appendingPathComponent("lumen-safety") }

    /// Defined symbols of `binary` (Swift mangled names), as `nm` lists them.
    func definedSymbols(_ binary: URL) throws -> [Substring] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/nm")
        p.arguments = ["--defined-only", "--format=just-symbols", binary.path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "nm failed on \(binary.path)")
        return String(decoding: data, as: UTF8.self).split(separator: "\n")
    }

    /// Symbols whose mangled name says they belong to one of `modules`.
    func symbols(_ all: [Substring], ofModules modules: [String]) -> [Substring] {
        let prefixes = modules.map { "$s\($0.utf8.count)\($0)" }
        return all.filter { s in prefixes.contains { s.hasPrefix($0) && s.dropFirst($0.count).first?.isNumber == true } }
    }

    static let forbidden = ["Control", "Imaging", "Sim", "SafetySim", "Scenarios", "Guidance", "Console", "Recording"]

    @Test func theMonitorExecutableLinksNoCodeOfTheControlStackSimulatorOrImaging() throws {
        let monitor = try definedSymbols(Self.monitorBinary)
        #expect(!symbols(monitor, ofModules: ["Safety"]).isEmpty, "the monitor binary carries the Safety module")
        let leaked = symbols(monitor, ofModules: Self.forbidden)
        #expect(leaked.isEmpty, "lumen-safety links \(leaked.count) symbols of other modules, e.g. \(leaked.prefix(3))")
        // The check can see such code: the full tool carries the control stack.
        let full = try definedSymbols(Tool.binary)
        #expect(!symbols(full, ofModules: ["Control"]).isEmpty)
        // No C++ library of the imaging or kinematics bridges either.
        let cxx = monitor.filter { $0.hasPrefix("_ZN2cv") || $0.hasPrefix("_ZN5Eigen") || $0.contains("lumen_cv_") || $0.contains("lumen_dcm_") }
        #expect(cxx.isEmpty, "\(cxx.prefix(3))")
    }

    @Test func theStandaloneMonitorChecksLimitsAsLumenSafetyDoes() throws {
        let limits = "safety/lumen-2s-limits.yaml"
        let p = Process()
        p.executableURL = Self.monitorBinary
        p.arguments = ["--config", limits, "--check"]
        p.currentDirectoryURL = Tool.root
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let standalone = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let viaTool = try Tool.run(["safety", "--config", limits, "--check"])
        #expect(viaTool.status == 0)
        #expect(standalone.count == 65 && standalone == viaTool.stdout, "\(standalone) vs \(viaTool.stdout)")
        // And it refuses a bad file the same way: exit 2.
        let q = Process()
        q.executableURL = Self.monitorBinary
        q.arguments = ["--config", "/nonexistent/limits.yaml", "--check"]
        q.standardError = FileHandle.nullDevice
        try q.run()
        q.waitUntilExit()
        #expect(q.terminationStatus == 2)
    }
}
