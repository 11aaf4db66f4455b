import Core

/// Figures commands print (rounding and percentiles are in Core).

/// Nanoseconds as microseconds, to 0.1 µs.
func us(_ ns: UInt64) -> Double { (Double(ns) / 100).rounded() / 10 }

/// a / b to three decimals; NaN when b is not positive.
func ratio(_ a: Double, _ b: Double) -> Double { b > 0 ? round3(a / b) : .nan }
