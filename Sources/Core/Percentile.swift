/// Rounding and percentiles for the figures that runs and commands report.

/// To three decimals.
public func round3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }

/// To one decimal.
public func round1(_ v: Double) -> Double { (v * 10).rounded() / 10 }

/// The `p`-th percentile (0…100) of `values`, nearest rank; 0 for none.
public func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let s = values.sorted()
    return s[min(s.count - 1, Int((p / 100 * Double(s.count - 1)).rounded()))]
}
