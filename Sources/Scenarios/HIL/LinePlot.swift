import COpenCV
import Foundation

/// A small line-plot renderer for the PNG figures of the commands and the HIL reports (tip
/// paths, errors over time, timing, a signal against its limits). Draws through the OpenCV
/// bridge into an RGB buffer.
public struct LinePlot {
    /// The plot font is ASCII only (every other character comes out as "?"): the symbols our
    /// labels use are spelt out.
    public static func plotASCII(_ s: String) -> String {
        let map: [Character: String] = ["²": "^2", "³": "^3", "×": "x", "°": " deg", "µ": "u", "μ": "u", "—": "-", "–": "-",
                                        "≤": "<=", "≥": ">=", "→": "->", "…": "...", "±": "+/-", "·": "*", "σ": "sigma", "Δ": "d"]
        var out = ""
        for ch in s {
            if let r = map[ch] { out += r } else if ch.isASCII { out.append(ch) } else { out += "?" }
        }
        return out
    }

    public struct Series {
        public var label: String
        public var points: [(x: Double, y: Double)]
        public var color: (UInt8, UInt8, UInt8)
        public var thickness: Int32 = 2
        /// Draw markers instead of a line.
        public var markers = false

        public init(label: String, points: [(x: Double, y: Double)], color: (UInt8, UInt8, UInt8), thickness: Int32 = 2, markers: Bool = false) {
            self.label = label
            self.points = points
            self.color = color
            self.thickness = thickness
            self.markers = markers
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series] = []
    public var width = 1000
    public var height = 700
    /// Equal scale on both axes (for paths in space).
    public var equalAspect = false

    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
    }

    /// px — the text width the plot font takes (at `scale`, ASCII as drawn).
    static func textWidth(_ s: String, _ scale: Double) -> Double { Double(lumen_cv_text_width(plotASCII(s), scale)) }

    /// The scale at which the title fits `room` px: 0.7, smaller for a long title (not below 0.35).
    static func titleScale(_ title: String, room: Double) -> Double {
        let full = textWidth(title, 0.7)
        return full <= room || full <= 0 ? 0.7 : max(0.35, 0.7 * room / full)
    }

    /// The legend's entries: series without a label share the entry of a labelled one.
    var legend: [Series] { series.filter { !$0.label.isEmpty } }

    /// The legend's text scale: 0.5, smaller (not below 0.3) where the longest label would not
    /// fit a column of 40 % of the plot's width.
    var legendScale: Double {
        let longest = legend.map { Self.textWidth($0.label, 0.5) }.max() ?? 0
        let room = Double(width) * 0.4 - 54
        return longest <= room || longest <= 0 ? 0.5 : max(0.3, 0.5 * room / longest)
    }

    /// px — the plot's margins; the right one holds the legend, beside the data rather than over it.
    var margin: (left: Double, right: Double, top: Double, bottom: Double) {
        let labels = legend.map { Self.textWidth($0.label, legendScale) }.max() ?? 0
        let legendWidth = labels > 0 ? min(Double(width) * 0.4, 38 + labels + 16) : 0
        return (90.0, 30.0 + legendWidth, 66.0, 70.0)
    }

    public func write(to path: String) throws {
        var rgb = [UInt8](repeating: 255, count: width * height * 3)
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        guard !all.isEmpty else { throw PlotError.noData(path) }
        let margin = self.margin
        var xr = Self.niceRange(all.map(\.x))
        var yr = Self.niceRange(all.map(\.y))
        let plotW = Double(width) - margin.left - margin.right
        let plotH = Double(height) - margin.top - margin.bottom
        if equalAspect {
            let sx = (xr.1 - xr.0) / plotW, sy = (yr.1 - yr.0) / plotH
            let s = max(sx, sy)
            let cx = (xr.0 + xr.1) / 2, cy = (yr.0 + yr.1) / 2
            xr = (cx - s * plotW / 2, cx + s * plotW / 2)
            yr = (cy - s * plotH / 2, cy + s * plotH / 2)
        }
        func px(_ x: Double) -> Double { margin.left + (x - xr.0) / (xr.1 - xr.0) * plotW }
        func py(_ y: Double) -> Double { margin.top + (1 - (y - yr.0) / (yr.1 - yr.0)) * plotH }

        rgb.withUnsafeMutableBufferPointer { buf in
            let c = buf.baseAddress!
            let w = Int32(width), h = Int32(height)
            func line(_ pts: [Double], _ col: (UInt8, UInt8, UInt8), _ t: Int32) {
                _ = pts.withUnsafeBufferPointer { lumen_cv_draw_polyline(c, w, h, $0.baseAddress, Int32(pts.count / 2), col.0, col.1, col.2, t, 0) }
            }
            func text(_ s: String, _ x: Double, _ y: Double, _ scale: Double = 0.5, _ col: (UInt8, UInt8, UInt8) = (30, 30, 30)) {
                _ = lumen_cv_draw_text(c, w, h, Self.plotASCII(s), Int32(x), Int32(y), scale, col.0, col.1, col.2)
            }
            // Grid and ticks.
            for t in Self.ticks(xr) {
                line([px(t), margin.top, px(t), margin.top + plotH], (225, 225, 225), 1)
                text(Self.format(t), px(t) - 15, margin.top + plotH + 20)
            }
            for t in Self.ticks(yr) {
                line([margin.left, py(t), margin.left + plotW, py(t)], (225, 225, 225), 1)
                text(Self.format(t), 10, py(t) + 5)
            }
            line([margin.left, margin.top, margin.left, margin.top + plotH, margin.left + plotW, margin.top + plotH,
                  margin.left + plotW, margin.top, margin.left, margin.top], (60, 60, 60), 1)
            let titleX = min(margin.left, 10 + max(0, Double(width) - 20 - Self.textWidth(title, 0.7)))
            text(title, titleX, 28, Self.titleScale(title, room: Double(width) - titleX - 10))
            text(xLabel, margin.left + plotW / 2 - 40, Double(height) - 20, 0.55)
            text(yLabel, 10, margin.top - 12, 0.55)
            // Data.
            for s in series {
                let pts = s.points.filter { $0.x.isFinite && $0.y.isFinite }
                if s.markers {
                    for p in pts { _ = lumen_cv_draw_circle(c, w, h, px(p.x), py(p.y), 4, s.color.0, s.color.1, s.color.2, 0) }
                } else if pts.count >= 2 {
                    line(pts.flatMap { [px($0.x), py($0.y)] }, s.color, s.thickness)
                }
            }
            // Legend, right of the plot frame, as many entries as fit its height.
            let scale = legendScale
            for (i, s) in legend.enumerated() {
                let y = margin.top + 20 + Double(i) * 22
                if y > margin.top + plotH { break }
                let x = margin.left + plotW + 12
                line([x, y - 5, x + 30, y - 5], s.color, 3)
                text(s.label, x + 38, y, scale)
            }
        }
        var err = [CChar](repeating: 0, count: 256)
        let rc = lumen_cv_write_png_rgb8(path, rgb, Int32(width), Int32(height), &err, Int32(err.count))
        if rc != 0 { throw PlotError.write(path, String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
    }

    public enum PlotError: Error, CustomStringConvertible {
        case noData(String)
        case write(String, String)
        public var description: String {
            switch self {
            case .noData(let p): "\(p): nothing to plot"
            case .write(let p, let r): "\(p): \(r)"
            }
        }
    }

    public static func niceRange(_ v: [Double]) -> (Double, Double) {
        var lo = v.min()!, hi = v.max()!
        if hi - lo < 1e-9 { lo -= 1; hi += 1 }
        let pad = (hi - lo) * 0.05
        return (lo - pad, hi + pad)
    }

    public static func ticks(_ r: (Double, Double)) -> [Double] {
        let span = r.1 - r.0
        let raw = span / 6
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
        var t = (r.0 / step).rounded(.up) * step
        var out: [Double] = []
        while t <= r.1 { out.append(t); t += step }
        return out
    }

    public static func format(_ v: Double) -> String {
        if abs(v) < 1e-12 { return "0" }
        return abs(v) >= 100 || v == v.rounded() ? String(format: "%.0f", v) : String(format: "%.3g", v)
    }
}
