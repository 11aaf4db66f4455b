import Foundation

/// The verdict on one scenario.
public struct HILScenarioResult: Sendable, Equatable, Encodable {
    public enum Status: String, Sendable, Encodable {
        case passed, failed, skipped
        /// It could not run to its end (the link did not come up).
        case error
    }

    public var scenario: String
    public var file: String
    public var description: String
    public var link: String
    public var faultsSwitchedOff: Bool
    public var status: Status = .error
    /// Why it was skipped or could not run.
    public var message = ""
    public var checks: [HILCheckResult] = []
    public var seconds = 0.0
    public var recording: HILRecording?

    public init(scenario: String, file: String, description: String, link: String, faultsSwitchedOff: Bool) {
        self.scenario = scenario
        self.file = file
        self.description = description
        self.link = link
        self.faultsSwitchedOff = faultsSwitchedOff
    }

    enum CodingKeys: String, CodingKey {
        case scenario, file, description, link, faultsSwitchedOff = "faults_switched_off", status, message, checks, seconds, ending, notes, counters, runtime
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(scenario, forKey: .scenario)
        try c.encode(file, forKey: .file)
        try c.encode(description, forKey: .description)
        try c.encode(link, forKey: .link)
        try c.encode(faultsSwitchedOff, forKey: .faultsSwitchedOff)
        try c.encode(status, forKey: .status)
        try c.encode(message, forKey: .message)
        try c.encode(checks.map(CheckSummary.init), forKey: .checks)
        try c.encode((seconds * 1000).rounded() / 1000, forKey: .seconds)
        try c.encodeIfPresent(recording?.ending, forKey: .ending)
        try c.encodeIfPresent(recording?.notes, forKey: .notes)
        try c.encodeIfPresent(recording?.counters, forKey: .counters)
        try c.encodeIfPresent(recording?.runtime, forKey: .runtime)
    }

    /// A check without its plot data, for the JSON summary.
    struct CheckSummary: Encodable {
        var name: String
        var kind: String
        var passed: Bool
        var message: String
        var moment_s: Double?
        init(_ c: HILCheckResult) {
            name = c.name; kind = c.kind; passed = c.passed; message = c.message
            moment_s = c.moment.map { ($0 * 1000).rounded() / 1000 }
        }
    }
}

/// The verdicts on a run of scenarios, and the files a CI server and an engineer read.
public struct HILSuiteReport: Sendable, Encodable {
    public var results: [HILScenarioResult]
    /// Scenarios that could not be loaded: file and every problem.
    public var loadErrors: [String]

    public init(results: [HILScenarioResult], loadErrors: [String] = []) {
        self.results = results
        self.loadErrors = loadErrors
    }

    public var passed: Int { results.filter { $0.status == .passed }.count }
    public var failed: Int { results.filter { $0.status == .failed || $0.status == .error }.count }
    public var skipped: Int { results.filter { $0.status == .skipped }.count }

    /// 0 every scenario passed (or was skipped), 1 one failed or could not run, 2 one could not be loaded.
    public var exitCode: Int32 { !loadErrors.isEmpty ? 2 : failed > 0 ? 1 : 0 }

    /// The notice every report carries: the machine that ran it is not a real-time target.
    public static let timingNotice = "Timings measured on a machine that is not real-time are indicative: the reaction times and windows here are "
        + "what this run saw on this host's scheduler, not guarantees of the drive or the stack."

    enum CodingKeys: String, CodingKey { case passed, failed, skipped, exit_code, timing_notice, load_errors, scenarios }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(passed, forKey: .passed)
        try c.encode(failed, forKey: .failed)
        try c.encode(skipped, forKey: .skipped)
        try c.encode(exitCode, forKey: .exit_code)
        try c.encode(Self.timingNotice, forKey: .timing_notice)
        try c.encode(loadErrors, forKey: .load_errors)
        try c.encode(results, forKey: .scenarios)
    }

    // MARK: JUnit

    /// JUnit XML as Jenkins and GitLab read it: a test suite per scenario, a test case per
    /// expectation; a scenario that could not load or run is one failed case.
    public var junitXML: String {
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        let tests = results.reduce(0) { $0 + max(1, $1.checks.count) } + loadErrors.count
        let failures = results.reduce(0) { $0 + ($1.status == .error ? 1 : $1.checks.filter { !$0.passed }.count) } + loadErrors.count
        x += "<testsuites name=\"lumen hil\" tests=\"\(tests)\" failures=\(q(String(failures)))>\n"
        for r in results {
            let cases = max(1, r.checks.count)
            let fails = r.status == .error ? 1 : r.checks.filter { !$0.passed }.count
            x += "  <testsuite name=\(q(r.scenario)) tests=\"\(cases)\" failures=\"\(fails)\" skipped=\"\(r.status == .skipped ? cases : 0)\" time=\"\(String(format: "%.3f", r.seconds))\">\n"
            x += "    <properties><property name=\"link\" value=\(q(r.link))/><property name=\"file\" value=\(q(r.file))/></properties>\n"
            switch r.status {
            case .skipped:
                x += "    <testcase classname=\(q("hil." + r.scenario)) name=\"scenario\"><skipped message=\(q(r.message))/></testcase>\n"
            case .error:
                x += "    <testcase classname=\(q("hil." + r.scenario)) name=\"scenario\"><failure message=\(q(r.message)) type=\"error\"/></testcase>\n"
            case .passed, .failed:
                for c in r.checks {
                    x += "    <testcase classname=\(q("hil." + r.scenario)) name=\(q(c.name))>"
                    if !c.passed { x += "<failure message=\(q(c.message)) type=\(q(c.kind))/>" } else { x += "<system-out>\(hilEscaped(c.message))</system-out>" }
                    x += "</testcase>\n"
                }
            }
            x += "  </testsuite>\n"
        }
        for e in loadErrors {
            x += "  <testsuite name=\"load\" tests=\"1\" failures=\"1\">\n"
            x += "    <testcase classname=\"hil.load\" name=\"load\"><failure message=\(q(e)) type=\"load\"/></testcase>\n  </testsuite>\n"
        }
        return x + "</testsuites>\n"
    }

    // MARK: HTML

    /// A self-contained HTML report: each check's plot is a PNG embedded as base64.
    /// `plot` renders a check's plot to PNG bytes (nil: no figure).
    public func html(plot: (HILCheckResult) -> Data?) -> String {
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>Lumen HIL report</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
        .banner{background:#fff4d6;border:1px solid #e0b84c;padding:.8em 1em;margin:1em 0}
        .pass{color:#16733a;font-weight:600}.fail{color:#b3261e;font-weight:600}.skip{color:#666;font-weight:600}
        table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
        img{max-width:100%;border:1px solid #ddd;margin:.4em 0 1.2em}
        .check{margin-left:1em}
        </style></head><body>
        <h1>Lumen hardware-in-the-loop report</h1>
        <p class="banner"><strong>Timing notice.</strong> \(hilEscaped(Self.timingNotice))</p>
        <p>\(passed) passed, \(failed) failed, \(skipped) skipped\(loadErrors.isEmpty ? "" : ", \(loadErrors.count) could not be loaded").</p>
        <table><tr><th>scenario</th><th>verdict</th><th>link</th><th>checks</th><th>time (s)</th></tr>

        """
        for r in results {
            h += "<tr><td><a href=\"#\(anchor(r.scenario))\">\(hilEscaped(r.scenario))</a></td><td>\(verdict(r.status))</td><td>\(hilEscaped(r.link))</td>"
            h += "<td>\(r.checks.filter(\.passed).count) of \(r.checks.count)</td><td>\(String(format: "%.2f", r.seconds))</td></tr>\n"
        }
        h += "</table>\n"
        for e in loadErrors { h += "<h2 class=\"fail\">Could not load</h2><pre>\(hilEscaped(e))</pre>\n" }
        for r in results {
            h += "<h2 id=\"\(anchor(r.scenario))\">\(hilEscaped(r.scenario)) — \(verdict(r.status))</h2>\n"
            if !r.description.isEmpty { h += "<p>\(hilEscaped(r.description))</p>\n" }
            h += "<p>File <code>\(hilEscaped(r.file))</code>, link <code>\(hilEscaped(r.link))</code>\(r.faultsSwitchedOff ? ", <strong>faults switched off</strong>" : "")"
            if let rec = r.recording { h += ", ended: \(hilEscaped(rec.ending))" }
            h += ".</p>\n"
            if !r.message.isEmpty { h += "<p>\(hilEscaped(r.message))</p>\n" }
            if let rec = r.recording, !rec.runtime.isEmpty { h += "<p>Ran on \(hilEscaped(rec.runtime)).</p>\n" }
            if let rec = r.recording, !rec.notes.isEmpty { h += "<ul>" + rec.notes.map { "<li>\(hilEscaped($0))</li>" }.joined() + "</ul>\n" }
            for c in r.checks {
                h += "<div class=\"check\"><h3>\(c.passed ? "<span class=\"pass\">PASS</span>" : "<span class=\"fail\">FAIL</span>") \(hilEscaped(c.name)) <small>(\(hilEscaped(c.kind)))</small></h3>\n"
                h += "<p>\(hilEscaped(c.message))</p>\n"
                if let png = plot(c) {
                    h += "<img alt=\"\(hilEscaped(c.name))\" src=\"data:image/png;base64,\(png.base64EncodedString())\">\n"
                }
                h += "</div>\n"
            }
            if let rec = r.recording, let course = rec.counterCourse,
               let png = plot(HILCheckResult(name: "\(r.scenario) counters", kind: "counters", passed: true, message: "", moment: nil, plot: course)) {
                h += "<div class=\"check\"><h3>Counters over the run</h3><p>Sampled while the run went on; the counters that count trouble.</p>\n"
                h += "<img alt=\"counters over the run\" src=\"data:image/png;base64,\(png.base64EncodedString())\"></div>\n"
            }
            if let counters = r.recording?.counters, !counters.isEmpty {
                h += "<details><summary>counters</summary><table>" + counters.sorted { $0.key < $1.key }.map { "<tr><td>\(hilEscaped($0.key))</td><td>\($0.value)</td></tr>" }.joined() + "</table></details>\n"
            }
        }
        return h + "</body></html>\n"
    }

    private func verdict(_ s: HILScenarioResult.Status) -> String {
        switch s {
        case .passed: "<span class=\"pass\">PASSED</span>"
        case .failed: "<span class=\"fail\">FAILED</span>"
        case .error: "<span class=\"fail\">ERROR</span>"
        case .skipped: "<span class=\"skip\">SKIPPED</span>"
        }
    }

    private func anchor(_ s: String) -> String { "s-" + String(s.map { $0.isLetter || $0.isNumber ? $0 : "-" }) }
}

/// Escapes text for XML and HTML content and attribute values.
func hilEscaped(_ s: String) -> String {
    var o = ""
    for ch in s.unicodeScalars {
        switch ch {
        case "&": o += "&amp;"
        case "<": o += "&lt;"
        case ">": o += "&gt;"
        case "\"": o += "&quot;"
        case "'": o += "&apos;"
        default:
            // XML 1.0 has no place for most control characters, even escaped.
            if ch.value < 0x20, ch != "\n", ch != "\t" { o += "?" } else { o.unicodeScalars.append(ch) }
        }
    }
    return o
}

/// A quoted, escaped attribute value.
private func q(_ s: String) -> String { "\"" + hilEscaped(s) + "\"" }

// MARK: Plots

extension HILPlotData {
    /// The plot as PNG bytes: the signal, the band's limits, the window's edges, and the moment
    /// it passed (green) or failed (red). Rendered through a file in `folder`, kept there too.
    public func png(passed: Bool, file: String) throws -> Data {
        var p = LinePlot(title: title, xLabel: "time (s)", yLabel: yLabel)
        p.width = 900
        p.height = 420
        let xs = series.flatMap(\.t).filter(\.isFinite)
        let ys = series.flatMap(\.v).filter(\.isFinite) + [bandLow, bandHigh].compactMap { $0 }.filter(\.isFinite)
        guard var x0 = xs.min(), var x1 = xs.max(), let y0 = ys.min(), let y1 = ys.max() else { throw LinePlot.PlotError.noData(file) }
        for w in [windowStart, windowEnd, moment].compactMap({ $0 }) { x0 = Swift.min(x0, w); x1 = Swift.max(x1, w) }
        if x1 - x0 < 1e-6 { x0 -= 0.5; x1 += 0.5 }
        let pad = Swift.max(1e-6, (y1 - y0) * 0.05)
        let lo = y0 - pad, hi = y1 + pad
        let palette: [(UInt8, UInt8, UInt8)] = [(40, 110, 220), (200, 60, 160), (20, 160, 160), (120, 80, 200), (160, 120, 20), (90, 90, 90)]
        for (i, s) in series.enumerated() {
            // A single value (a counter) is a marker; a signal is a line.
            p.series.append(.init(label: s.label, points: zip(s.t, s.v).map { (x: $0, y: $1) }, color: palette[i % palette.count], thickness: 2,
                                  markers: s.t.count < 2))
        }
        if let b = bandLow { p.series.append(.init(label: "limit", points: [(x0, b), (x1, b)], color: (230, 140, 20), thickness: 1)) }
        if let b = bandHigh { p.series.append(.init(label: bandLow == nil ? "limit" : "", points: [(x0, b), (x1, b)], color: (230, 140, 20), thickness: 1)) }
        if let w = windowStart { p.series.append(.init(label: "window", points: [(w, lo), (w, hi)], color: (150, 150, 150), thickness: 1)) }
        if let w = windowEnd { p.series.append(.init(label: windowStart == nil ? "window" : "", points: [(w, lo), (w, hi)], color: (150, 150, 150), thickness: 1)) }
        if let m = moment {
            p.series.append(.init(label: passed ? "passed here" : "failed here", points: [(m, lo), (m, hi)], color: passed ? (30, 150, 60) : (210, 30, 30), thickness: 3))
        }
        try p.write(to: file)
        return try Data(contentsOf: URL(fileURLWithPath: file))
    }
}
