import Core

/// Arc length and prefixes of polylines (mm): catheter shapes laid along routes.
public enum Polyline {
    /// The arc length of a polyline.
    public static func length(_ p: [Vec3]) -> Double { zip(p, p.dropFirst()).reduce(0) { $0 + ($1.1 - $1.0).length } }

    /// The first `length` mm of a polyline, sampled every `step` mm (the end point exact).
    public static func prefix(_ route: [Vec3], length: Double, step: Double) -> [Vec3] {
        var out = [route[0]]
        var travelled = 0.0, next = step
        for k in 1..<route.count {
            let a = route[k - 1], b = route[k]
            let seg = (b - a).length
            while next <= min(length, travelled + seg) {
                out.append(a + (b - a) * ((next - travelled) / seg))
                next += step
            }
            travelled += seg
            if travelled >= length {
                let end = a + (b - a) * ((length - (travelled - seg)) / seg)
                if (end - out.last!).length > 1e-9 { out.append(end) }
                break
            }
        }
        return out
    }
}
