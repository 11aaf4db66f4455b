import Foundation

/// One series of a check's plot: the signal as recorded.
public struct HILPlotSeries: Sendable, Equatable, Encodable {
    public var label: String
    public var t: [Double]
    public var v: [Double]
}

/// What a check's plot shows: the signal, its limit band, the window it was judged in, and the
/// moment it passed or failed.
public struct HILPlotData: Sendable, Equatable, Encodable {
    public var title: String
    public var yLabel: String
    public var series: [HILPlotSeries] = []
    public var bandLow: Double?
    public var bandHigh: Double?
    public var windowStart: Double?
    public var windowEnd: Double?
    public var moment: Double?
}

/// The verdict on one expectation.
public struct HILCheckResult: Sendable, Equatable, Encodable {
    public var name: String
    public var kind: String
    public var passed: Bool
    /// What was measured against what was allowed, in words an engineer can act on.
    public var message: String
    /// When it passed or failed (s from the start), where a moment applies.
    public var moment: Double?
    public var plot: HILPlotData
}

/// Judges expectations on a recording. Pure: the same recording gives the same verdicts.
public enum HILEvaluator {
    public static func judge(_ e: HILScenario.Expectation, in r: HILRecording) -> HILCheckResult {
        var out = HILCheckResult(name: e.name, kind: e.kind.rawValue, passed: false, message: "", moment: nil,
                                 plot: HILPlotData(title: e.name, yLabel: e.signalName ?? e.counter ?? e.kind.rawValue))
        func fail(_ m: String, at t: Double? = nil) -> HILCheckResult {
            out.passed = false; out.message = m; out.moment = t; out.plot.moment = t
            return out
        }
        func pass(_ m: String, at t: Double? = nil) -> HILCheckResult {
            out.passed = true; out.message = m; out.moment = t; out.plot.moment = t
            return out
        }
        switch e.kind {
        case .range:
            guard let sig = e.signalName, let recorded = r.series(sig) else { return fail("this run has no signal \(e.signalName ?? "?") (a device-side signal needs an emulated link)") }
            let (t, v) = recorded
            let from = e.from ?? 0, to = e.to ?? r.duration
            out.plot.series = [HILPlotSeries(label: sig, t: t, v: v)]
            out.plot.bandLow = e.min; out.plot.bandHigh = e.max
            out.plot.windowStart = from; out.plot.windowEnd = to
            let idx = t.indices.filter { t[$0] >= from && t[$0] <= to }
            guard !idx.isEmpty else { return fail("no samples of \(sig) between \(f(from)) and \(f(to)) s") }
            let lo = e.min ?? -.infinity, hi = e.max ?? .infinity
            for i in idx where !(v[i] >= lo && v[i] <= hi) {
                return fail("\(sig) = \(f(v[i])) at \(f(t[i])) s, outside \(band(e.min, e.max))", at: t[i])
            }
            let seen = idx.map { v[$0] }
            return pass("\(sig) stayed within \(band(e.min, e.max)) from \(f(from)) to \(f(to)) s (min \(f(seen.min() ?? 0)), max \(f(seen.max() ?? 0)))", at: t[idx.last ?? 0])
        case .settle:
            guard let sig = e.signalName, let recorded = r.series(sig), let value = e.value, let tol = e.tolerance, let by = e.by else {
                return fail("this run has no signal \(e.signalName ?? "?")")
            }
            let (t, v) = recorded
            let to = e.to ?? r.duration
            out.plot.series = [HILPlotSeries(label: sig, t: t, v: v)]
            out.plot.bandLow = value - tol; out.plot.bandHigh = value + tol
            out.plot.windowStart = by; out.plot.windowEnd = to
            let idx = t.indices.filter { t[$0] <= to }
            guard let lastIndex = idx.last, t[lastIndex] >= by else { return fail("no samples of \(sig) up to \(f(to)) s") }
            // Settled from the sample after the last one outside the band.
            var settledAt = t[idx.first ?? 0]
            for i in idx where abs(v[i] - value) > tol { settledAt = i + 1 < t.count ? t[i + 1] : t[i] }
            if let outside = idx.last(where: { abs(v[$0] - value) > tol }), t[outside] >= by {
                return fail("\(sig) = \(f(v[outside])) at \(f(t[outside])) s, not within \(f(value)) ± \(f(tol)) (required from \(f(by)) s)", at: t[outside])
            }
            return pass("\(sig) settled within \(f(value)) ± \(f(tol)) at \(f(settledAt)) s (required by \(f(by)) s) and stayed until \(f(to)) s", at: settledAt)
        case .stop:
            out.plot.series = [HILPlotSeries(label: "host active (1) / stopped (0)", t: r.lifecycleTimes, v: r.active)]
            out.plot.yLabel = "active"
            guard let label = e.after, let within = e.within else { return fail("incomplete expectation") }
            guard let ref = r.stepTimes[label] else { return fail("step '\(label)' did not run") }
            out.plot.windowStart = ref; out.plot.windowEnd = ref + within
            guard let stop = r.stopTime, let reason = r.stopReason else {
                // The signal never crossed: the failure is marked at the deadline it missed.
                return fail("the host did not stop within \(f(within)) s of '\(label)' (at \(f(ref)) s); it stayed \(r.active.last == 1 ? "active" : "inactive") to the end (\(r.ending))", at: ref + within)
            }
            let delay = stop - ref
            if delay < -0.001 { return fail("the host stopped at \(f(stop)) s, before '\(label)' (at \(f(ref)) s): \(r.stopDetail)", at: stop) }
            if delay > within { return fail("the host stopped \(ms(delay)) after '\(label)', later than the \(ms(within)) allowed: \(r.stopDetail)", at: stop) }
            if let want = e.reason, want != .any, want == .power_lost ? !r.stopPowerLost : want != reason {
                return fail("the host stopped \(ms(delay)) after '\(label)' but for \(reason.rawValue), not \(want.rawValue): \(r.stopDetail)", at: stop)
            }
            if let c = e.category, c != r.stopCategory {
                return fail("the host stopped with category \(r.stopCategory.map(String.init) ?? "?"), not \(c): \(r.stopDetail)", at: stop)
            }
            return pass("the host stopped \(ms(delay)) after '\(label)' (allowed \(ms(within))), \(reason.rawValue), category \(r.stopCategory.map(String.init) ?? "?"): \(r.stopDetail)", at: stop)
        case .drive_unpowered:
            out.plot.yLabel = "drive powered"
            guard r.hasDeviceSide else { return fail("this link has no device side to observe the drive's power stage: run it on an emulated link") }
            out.plot.series = [HILPlotSeries(label: "drive power stage on (1) / off (0)", t: r.deviceTimes, v: r.drivePowered)]
            guard let label = e.after, let within = e.within else { return fail("incomplete expectation") }
            guard let ref = r.stepTimes[label] else { return fail("step '\(label)' did not run") }
            out.plot.windowStart = ref; out.plot.windowEnd = ref + within
            // A drive already off before the step says nothing about what the step does: the
            // check would pass whatever removed power earlier (or if power never came on). The
            // device side stamps its samples on its own thread, so a step and its effect can
            // fall in the same few milliseconds either way round: judged 10 ms before the step.
            let before = ref - 0.01
            let atStep = r.deviceTimes.indices.last(where: { r.deviceTimes[$0] < before }) ?? r.deviceTimes.indices.first
            guard let atStep, r.drivePowered[atStep] == 1 else {
                let since = r.deviceTimes.indices.filter { r.deviceTimes[$0] < before }.last(where: { r.drivePowered[$0] == 1 })
                    .map { r.deviceTimes[$0 + 1 < r.deviceTimes.count ? $0 + 1 : $0] }
                return fail("the drive was already unpowered before '\(label)' ran (at \(f(ref)) s\(since.map { "; off since \(f($0)) s" } ?? "; it never had power")): this check cannot tell what the step did", at: ref)
            }
            guard let i = r.deviceTimes.indices.first(where: { r.deviceTimes[$0] >= before && r.drivePowered[$0] == 0 }) else {
                return fail("the drive kept its power after '\(label)' (at \(f(ref)) s) to the end of the run", at: ref + within)
            }
            let off = r.deviceTimes[i], delay = max(0, off - ref)
            if delay > within { return fail("the drive's power went off \(ms(delay)) after '\(label)', later than the \(ms(within)) allowed", at: off) }
            if e.cause == .watchdog {
                let trips = r.driveWatchdogTrips
                guard trips.count == r.deviceTimes.count, let before = r.deviceTimes.indices.last(where: { r.deviceTimes[$0] < ref }).map({ trips[$0] }) ?? trips.first,
                      let end = r.deviceTimes.indices.last(where: { r.deviceTimes[$0] <= ref + within + 0.05 }).map({ trips[$0] }) else {
                    return fail("this link does not report the drive's watchdog trips", at: off)
                }
                if end <= before { return fail("the drive's power went off \(ms(delay)) after '\(label)', but not by its watchdog (trips stayed at \(Int(before)))", at: off) }
                return pass("the drive's own watchdog removed power \(ms(delay)) after '\(label)' (allowed \(ms(within)); trips \(Int(before)) → \(Int(end)))", at: off)
            }
            return pass("the drive's power went off \(ms(delay)) after '\(label)' (allowed \(ms(within)))", at: off)
        case .leaves:
            guard let sig = e.signalName, let recorded = r.series(sig) else { return fail("this run has no signal \(e.signalName ?? "?") (a device-side signal needs an emulated link)") }
            guard let label = e.after, let within = e.within else { return fail("incomplete expectation") }
            let (t, v) = recorded
            out.plot.series = [HILPlotSeries(label: sig, t: t, v: v)]
            out.plot.bandLow = e.min; out.plot.bandHigh = e.max
            guard let ref = r.stepTimes[label] else { return fail("step '\(label)' did not run") }
            out.plot.windowStart = ref; out.plot.windowEnd = ref + within
            let lo = e.min ?? -.infinity, hi = e.max ?? .infinity
            guard let i = t.indices.first(where: { t[$0] >= ref - 0.001 && !(v[$0] >= lo && v[$0] <= hi) }) else {
                let seen = t.indices.filter { t[$0] >= ref }.map { v[$0] }
                return fail("\(sig) stayed within \(band(e.min, e.max)) after '\(label)' (at \(f(ref)) s) to the end (min \(f(seen.min() ?? .nan)), max \(f(seen.max() ?? .nan)))", at: ref + within)
            }
            let delay = t[i] - ref
            if delay > within { return fail("\(sig) left \(band(e.min, e.max)) \(ms(delay)) after '\(label)', later than the \(ms(within)) allowed (\(f(v[i])))", at: t[i]) }
            return pass("\(sig) left \(band(e.min, e.max)) \(ms(delay)) after '\(label)' (allowed \(ms(within))): \(f(v[i])) at \(f(t[i])) s", at: t[i])
        case .monitor_stop:
            out.plot.yLabel = "monitor permits power"
            guard r.hasMonitor else { return fail("the safety monitor did not run beside this scenario (setup.limits, on an emulated DriveLink link)") }
            out.plot.series = [HILPlotSeries(label: "permit: power (1), none (0)", t: r.monitorTimes, v: r.monitorPermit)]
            guard let label = e.after, let within = e.within else { return fail("incomplete expectation") }
            guard let ref = r.stepTimes[label] else { return fail("step '\(label)' did not run") }
            out.plot.windowStart = ref; out.plot.windowEnd = ref + within
            let after = r.monitorFaults.filter { $0.time >= ref - 0.001 }
            let wanted = e.check ?? "any"
            guard let hit = after.first(where: { e.check == nil || $0.check == e.check }) else {
                let others = after.isEmpty ? "nothing" : after.map { "\($0.check) (category \($0.category)) at \(f($0.time)) s" }.joined(separator: ", ")
                return fail("the monitor latched no \(wanted) fault after '\(label)' (at \(f(ref)) s); it latched \(others)", at: ref + within)
            }
            let delay = hit.time - ref
            if delay > within { return fail("the monitor latched \(hit.check) \(ms(delay)) after '\(label)', later than the \(ms(within)) allowed: \(hit.line)", at: hit.time) }
            if let c = e.category, c != hit.category {
                return fail("the monitor latched \(hit.check) with stop category \(hit.category), not \(c): \(hit.line)", at: hit.time)
            }
            return pass("the monitor latched \(hit.check) \(ms(max(0, delay))) after '\(label)' (allowed \(ms(within))), stop category \(hit.category): \(hit.line)", at: hit.time)
        case .counter:
            guard let name = e.counter else { return fail("incomplete expectation") }
            out.plot.yLabel = name
            out.plot.bandLow = e.min; out.plot.bandHigh = e.max
            let sampled = r.counterSeries[name].map { (t: r.counterTimes, v: $0) }
            if e.from != nil || e.to != nil {
                return judgeCounterWindow(e, name: name, sampled, duration: r.duration, out: &out)
            }
            guard let value = r.counters[name] else {
                return fail("this link does not report \(name) (it reports \(r.counters.keys.sorted().joined(separator: ", ")))")
            }
            // Sampled while the run went on: the whole course, not only the end.
            out.plot.series = [sampled.map { HILPlotSeries(label: name, t: $0.t, v: $0.v) }
                ?? HILPlotSeries(label: "\(name) at the end of the run", t: [r.duration], v: [Double(value)])]
            let lo = e.min ?? -.infinity, hi = e.max ?? .infinity
            if Double(value) < lo || Double(value) > hi { return fail("\(name) = \(value), outside \(band(e.min, e.max))", at: r.duration) }
            return pass("\(name) = \(value), within \(band(e.min, e.max))", at: r.duration)
        }
    }

    /// What a counter counted between `from` and `to` (its value at `to` less its value at
    /// `from`, from the samples), judged against [min, max]. The plot shows the count since `from`.
    static func judgeCounterWindow(_ e: HILScenario.Expectation, name: String, _ sampled: (t: [Double], v: [Double])?, duration: Double,
                                   out: inout HILCheckResult) -> HILCheckResult {
        func verdict(_ passed: Bool, _ m: String, at t: Double?) -> HILCheckResult {
            out.passed = passed; out.message = m; out.moment = t; out.plot.moment = t
            return out
        }
        guard let (t, v) = sampled, !t.isEmpty, t.count == v.count else {
            return verdict(false, "\(name) was not sampled during this run (the link does not report it, or it is known only at the run's end): a window cannot be judged", at: nil)
        }
        let from = e.from ?? 0, to = e.to ?? duration
        out.plot.windowStart = from; out.plot.windowEnd = to
        out.plot.bandLow = e.min; out.plot.bandHigh = e.max
        out.plot.yLabel = "\(name) counted since \(f(from)) s"
        // The count at `from` is the last sample at or before it (none yet: the first sample's).
        let base = t.indices.last(where: { t[$0] <= from }).map { v[$0] } ?? v[0]
        let inside = t.indices.filter { t[$0] >= from && t[$0] <= to }
        guard let last = inside.last else { return verdict(false, "no samples of \(name) between \(f(from)) and \(f(to)) s", at: nil) }
        out.plot.series = [HILPlotSeries(label: "\(name) since \(f(from)) s", t: inside.map { t[$0] }, v: inside.map { v[$0] - base })]
        let counted = v[last] - base
        let lo = e.min ?? -.infinity, hi = e.max ?? .infinity
        let span = "between \(f(from)) and \(f(to)) s"
        if let over = inside.first(where: { v[$0] - base > hi }) {
            return verdict(false, "\(name) counted \(f(v[over] - base)) \(span) by \(f(t[over])) s, more than the \(f(hi)) allowed", at: t[over])
        }
        if counted < lo { return verdict(false, "\(name) counted \(f(counted)) \(span), fewer than the \(f(lo)) required", at: t[last]) }
        let reached = inside.first(where: { v[$0] - base >= lo && lo > -.infinity }).map { t[$0] } ?? t[last]
        return verdict(true, "\(name) counted \(f(counted)) \(span), within \(band(e.min, e.max))", at: reached)
    }

    static func f(_ x: Double) -> String {
        if !x.isFinite { return "\(x)" }
        return abs(x) >= 1000 || x == x.rounded() ? String(format: "%.0f", x) : String(format: "%.3g", x)
    }

    static func ms(_ s: Double) -> String { String(format: "%.0f ms", s * 1000) }

    static func band(_ lo: Double?, _ hi: Double?) -> String {
        switch (lo, hi) {
        case let (l?, h?): "[\(f(l)), \(f(h))]"
        case let (l?, nil): "≥ \(f(l))"
        case let (nil, h?): "≤ \(f(h))"
        case (nil, nil): "any"
        }
    }
}
