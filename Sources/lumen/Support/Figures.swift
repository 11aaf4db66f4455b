/// Rounding and percentiles for the figures commands print.

/// Nanoseconds as microseconds, to 0.1 µs.
func us(_ ns: UInt64) -> Double { (Double(ns) / 100).rounded() / 10 }

/// To three decimals.
func round3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }

/// To one decimal.
func round1(_ v: Double) -> Double { (v * 10).rounded() / 10 }

/// The `p`-th percentile (0…100) of `values`, nearest rank; 0 for none.
func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let s = values.sorted()
    return s[min(s.count - 1, Int((p / 100 * Double(s.count - 1)).rounded()))]
}

/// a / b to three decimals; NaN when b is not positive.
func ratio(_ a: Double, _ b: Double) -> Double { b > 0 ? round3(a / b) : .nan }
