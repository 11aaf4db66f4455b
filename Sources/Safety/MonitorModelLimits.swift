import Core
import Foundation

// Built from a limits file here, apart from the types: the rule engine and its model compile
// without the limits loader (and its YAML parser), as the channel's fuzz target does.

extension MonitorModel {
    public init(_ limits: SafetyLimits) {
        jointCount = limits.joints.count
        period = Nanoseconds.perSecond / Nanoseconds(limits.cycleHz)
        lower = JointVector(limits.joints.map(\.lower))
        upper = JointVector(limits.joints.map(\.upper))
        maxVelocity = JointVector(limits.joints.map(\.maxVelocity))
        maxCurrent = JointVector(limits.joints.map(\.maxCurrentA))
        maxTrackingError = JointVector(limits.joints.map(\.maxTrackingError))
        maxEncoderMismatch = JointVector(limits.joints.map(\.maxEncoderMismatch))
        stopDeceleration = JointVector(limits.joints.map(\.stopDeceleration))
        heartbeatTimeout = Nanoseconds.fromSeconds(limits.heartbeatTimeoutMS * 1e-3)
        maxInsertionForce = limits.maxInsertionForceN
        imageMaxAge = Nanoseconds.fromSeconds(limits.imageMaxAgeMS * 1e-3)
        maxConsecutiveLost = limits.link.maxConsecutiveLost
        let dt = 1.0 / Double(limits.cycleHz)
        lostBurst = limits.link.lostBurst; lostLeak = limits.link.lostPerS * dt
        crcBurst = limits.link.crcBurst; crcLeak = limits.link.crcPerS * dt
        wkcBurst = limits.link.wkcBurst; wkcLeak = limits.link.wkcPerS * dt
        stopMaxTime = Nanoseconds.fromSeconds(limits.controlledStop.maxTimeMS * 1e-3)
        standstillFraction = limits.controlledStop.standstillFraction
        var c = InlineArray<16, UInt8>(repeating: 0)
        for check in SafetyCheck.allCases { c[Int(check.rawValue)] = UInt8(limits.category(check).rawValue) }
        c[Int(SafetyCheck.startup.rawValue)] = 0
        categories = c
        geometry = TipGeometry(limits)
    }
}

extension TipGeometry {
    public init(_ limits: SafetyLimits) {
        let c = limits.catheter
        sectionCount = c.sections.count
        base = Pose(rotation: .rpy(c.baseRPYRad[0], c.baseRPYRad[1], c.baseRPYRad[2]),
                    translation: Vec3(c.basePositionMM[0], c.basePositionMM[1], c.basePositionMM[2]))
        var len = SIMD2<Double>(0, 0), rad = SIMD2<Double>(1, 1)
        for (i, s) in c.sections.enumerated() {
            len[i] = s.lengthMM
            rad[i] = s.tendonRadiusMM
        }
        sectionLength = len
        tendonRadius = rad
        tipLength = c.tipLengthMM
        tipMargin = c.tipMarginMM
        imageTipMargin = c.imageTipMarginMM
        var points = InlineArray<32, SIMD4<Double>>(repeating: .zero)
        for (i, p) in limits.lumen.centerlineMM.enumerated() { points[i] = SIMD4(p[0], p[1], p[2], limits.lumen.radiusMM[i]) }
        corridor = points
        corridorCount = limits.lumen.centerlineMM.count
        alongLumen = limits.lumen.tipEvidence == .alongLumen
        distalLength = c.sections.reduce(0) { $0 + $1.lengthMM } + c.tipLengthMM
        var arc = InlineArray<32, Double>(repeating: 0), shortcut = InlineArray<32, Double>(repeating: 0)
        let n = corridorCount
        for i in 1..<max(1, n) {
            let a = points[i - 1], b = points[i]
            arc[i] = arc[i - 1] + Vec3(b.x - a.x, b.y - a.y, b.z - a.z).length
            // The turn at this point, between the segments meeting there, counted from here on.
            var turn = 0.0
            if i + 1 < n {
                let c = points[i + 1]
                let u = Vec3(b.x - a.x, b.y - a.y, b.z - a.z), v = Vec3(c.x - b.x, c.y - b.y, c.z - b.z)
                let lu = u.length, lv = v.length
                if lu > 0, lv > 0 { turn = acos(max(-1, min(1, u.dot(v) / (lu * lv)))) }
            }
            shortcut[i] = shortcut[i - 1] + turn * b.w
        }
        corridorArc = arc
        corridorShortcut = shortcut
        corridorLength = n > 0 ? arc[n - 1] : 0
        corridorSlack = n > 0 ? shortcut[n - 1] : 0
        var zones = InlineArray<8, SIMD4<Double>>(repeating: .zero)
        for (i, z) in limits.noGo.enumerated() { zones[i] = SIMD4(z.centerMM[0], z.centerMM[1], z.centerMM[2], z.radiusMM) }
        noGo = zones
        noGoCount = limits.noGo.count
    }
}
