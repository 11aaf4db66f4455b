import Foundation
import Testing

/// The console in a real browser: Tests/browser/console_test.py drives headless Chromium through
/// selenium against `lumen console`. CI installs Chromium (Tests/browser/setup.sh); where it is
/// missing the test says so and does not run.
@Suite(.disabled(if: ProcessInfo.processInfo.environment["LUMEN_WALL_CLOCK_SUITES"] == "later", "runs alone after the parallel tests (scripts/test.sh): it judges threads on the wall clock"))
struct ConsoleBrowserTests {
    static let missing: String? = {
        let fm = FileManager.default
        let chromium = ProcessInfo.processInfo.environment["LUMEN_CHROMIUM"] ?? "/usr/bin/chromium"
        let driver = ProcessInfo.processInfo.environment["LUMEN_CHROMEDRIVER"] ?? "/usr/bin/chromedriver"
        var why: String?
        if !fm.isExecutableFile(atPath: chromium) { why = "no Chromium at \(chromium)" }
        else if !fm.isExecutableFile(atPath: driver) { why = "no chromedriver at \(driver)" }
        else {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", "-c", "import selenium"]
            p.standardError = FileHandle.nullDevice
            if (try? p.run()) == nil { why = "no python3" } else {
                p.waitUntilExit()
                if p.terminationStatus != 0 { why = "python3 has no selenium" }
            }
        }
        if let why { print("skipped: console browser tests: \(why) (install with Tests/browser/setup.sh)") }
        return why
    }()

    @Test(.enabled(if: missing == nil, "Chromium, chromedriver or selenium is missing"))
    func consoleInARealBrowser() throws {
        let out = Tool.root.appendingPathComponent(".build/browser-tests")
        try? FileManager.default.removeItem(at: out)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Tool.root.appendingPathComponent("Tests/browser/console_test.py").path,
                       "--lumen", Tool.binary.path, "--out", out.path]
        p.currentDirectoryURL = Tool.root
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        print(text.suffix(4000))
        #expect(p.terminationStatus == 0, "browser tests failed (screenshots in \(out.path)):\n\(text.suffix(3000))")
    }
}
