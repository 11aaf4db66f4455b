import Core

/// One vessel of a tree: a centerline polyline with a lumen radius at every point, hanging off
/// a parent vessel (or the root).
public struct VesselDescription: Decodable, Equatable, Sendable {
    public var name: String
    /// The vessel it branches from; nil for the root.
    public var parent: String?
    /// (points) x, y, z (mm) and lumen radius (mm).
    public var points: [[Double]]

    enum CodingKeys: String, CodingKey, CaseIterable { case name, parent, points }

    public init(name: String, parent: String?, points: [[Double]]) {
        self.name = name
        self.parent = parent
        self.points = points
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        parent = try c.decodeIfPresent(String.self, forKey: .parent)
        points = try c.decode([[Double]].self, forKey: .points)
    }
}

/// A place a catheter is navigated to: `depthMM` mm into `vessel` along the phantom's route.
public struct PhantomTarget: Codable, Equatable, Sendable {
    public var vessel: String
    /// mm into the vessel from where the route enters it.
    public var depthMM: Double

    enum CodingKeys: String, CodingKey, CaseIterable { case vessel, depthMM = "depth_mm" }

    public init(vessel: String, depthMM: Double) {
        self.vessel = vessel
        self.depthMM = depthMM
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vessel = try c.decode(String.self, forKey: .vessel)
        depthMM = try c.decode(Double.self, forKey: .depthMM)
    }
}

/// Which end of the root vessel the sheath (the catheter's way in) sits at.
public enum SheathEnd: String, Decodable, Equatable, Sendable {
    /// The root's last point: a femoral sheath below an aorta listed from its root down.
    case rootEnd = "root_end"
    /// The root's first point: a guiding catheter engaged in a coronary ostium.
    case rootStart = "root_start"
}

/// A vessel tree file: branching centerlines with lumen radii, validated at load, with where
/// its numbers come from and the targets a navigation campaign aims at.
public struct VesselTreeDescription: ValidatedConfig, Equatable, Sendable {
    public var name: String
    public var vessels: [VesselDescription]
    /// What the phantom models and how it departs from anatomy (free text).
    public var notes: String
    /// The literature the radii and shapes come from, one reference a line.
    public var sources: [String]
    public var targets: [PhantomTarget]
    public var sheath: SheathEnd
    /// The robot file of the catheter a procedure in this phantom uses (a microcatheter in a
    /// coronary artery, where a 6 F catheter wedges); nil: the project's default catheter.
    public var robot: String?
    /// mm — the insertion a navigation starts at (the robot's bending section and tip are out of
    /// the sheath at 0); nil: the navigation's default.
    public var startInsertionMM: Double?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, vessels, notes, sources, targets, sheath, robot
        case startInsertionMM = "start_insertion_mm"
    }

    public init(name: String, vessels: [VesselDescription], notes: String = "", sources: [String] = [], targets: [PhantomTarget] = [],
                sheath: SheathEnd = .rootEnd, robot: String? = nil, startInsertionMM: Double? = nil) {
        self.name = name
        self.vessels = vessels
        self.notes = notes
        self.sources = sources
        self.targets = targets
        self.sheath = sheath
        self.robot = robot
        self.startInsertionMM = startInsertionMM
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        vessels = try c.decode([VesselDescription].self, forKey: .vessels)
        notes = try c.decodeIfPresent(String.self, forKey: .notes) ?? ""
        sources = try c.decodeIfPresent([String].self, forKey: .sources) ?? []
        targets = try c.decodeIfPresent([PhantomTarget].self, forKey: .targets) ?? []
        sheath = try c.decodeIfPresent(SheathEnd.self, forKey: .sheath) ?? .rootEnd
        robot = try c.decodeIfPresent(String.self, forKey: .robot)
        startInsertionMM = try c.decodeIfPresent(Double.self, forKey: .startInsertionMM)
    }

    public func validate(into v: inout ConfigValidator) {
        v.check(!vessels.isEmpty, "vessels", "must list at least one vessel")
        var seen: [String: Int] = [:]
        for (i, vessel) in vessels.enumerated() {
            let f = "vessels[\(i)]"
            v.checkName(vessel.name, "\(f).name")
            if seen[vessel.name] != nil { v.fail("\(f).name", "'\(vessel.name)' is used twice") }
            v.check(vessel.points.count >= 2, "\(f).points", "needs at least 2 points, got \(vessel.points.count)")
            for (k, p) in vessel.points.enumerated() {
                guard p.count == 4 else {
                    v.fail("\(f).points[\(k)]", "must be [x, y, z, radius], got \(p.count) numbers")
                    continue
                }
                for j in 0..<3 { v.check(p[j], in: -5000...5000, "\(f).points[\(k)][\(j)]") }
                v.check(p[3], in: 0.3...40, "\(f).points[\(k)][3]")
                if k > 0, vessel.points[k - 1].count == 4 {
                    let a = vessel.points[k - 1]
                    let d = ((p[0] - a[0]) * (p[0] - a[0]) + (p[1] - a[1]) * (p[1] - a[1]) + (p[2] - a[2]) * (p[2] - a[2])).squareRoot()
                    v.check(d > 1e-6, "\(f).points[\(k)]", "repeats the previous point")
                }
            }
            switch vessel.parent {
            case nil:
                v.check(i == 0, "\(f).parent", "only the first vessel may be the root; name its parent")
            case let parent?:
                if let pi = seen[parent] {
                    // The branch must start inside its parent's lumen.
                    if let start = vessel.points.first, start.count == 4, vessels[pi].points.allSatisfy({ $0.count == 4 }) {
                        let d = Self.distanceToCenterline(Vec3(start[0], start[1], start[2]), vessels[pi].points)
                        v.check(d.distance <= d.radius + 1e-6, "\(f).points[0]",
                                "starts \(d.distance) mm from '\(parent)''s centerline, outside its \(d.radius) mm lumen")
                    }
                } else {
                    v.fail("\(f).parent", "'\(parent)' is not a vessel listed before this one")
                }
            }
            seen[vessel.name] = i
        }
        v.check(notes.utf8.count <= 8000, "notes", "must be at most 8000 bytes, got \(notes.utf8.count)")
        if let robot { v.check(!robot.isEmpty && robot.utf8.count <= 1000, "robot", "must be the path of a robot file, 1…1000 bytes") }
        if let startInsertionMM { v.check(startInsertionMM, in: 0...2000, "start_insertion_mm") }
        for (i, source) in sources.enumerated() {
            v.check(!source.isEmpty && source.utf8.count <= 2000, "sources[\(i)]", "must be 1…2000 bytes of text")
        }
        for (i, target) in targets.enumerated() {
            let f = "targets[\(i)]"
            guard let vi = seen[target.vessel] else {
                v.fail("\(f).vessel", "'\(target.vessel)' is not a vessel of this tree")
                continue
            }
            // A target past the vessel's end would be clamped there by the route, silently.
            let points = vessels[vi].points
            guard points.allSatisfy({ $0.count == 4 }) else { continue }
            let length = Polyline.length(points.map { Vec3($0[0], $0[1], $0[2]) })
            v.check(target.depthMM.isFinite && target.depthMM > 0 && target.depthMM <= length, "\(f).depth_mm",
                    "must be in (0, \(Int(length))] mm (the vessel's length), got \(target.depthMM)")
        }
    }

    /// Distance from `p` to a polyline and the radius there (set-up use only).
    static func distanceToCenterline(_ p: Vec3, _ points: [[Double]]) -> (distance: Double, radius: Double) {
        var best = (distance: Double.infinity, radius: 0.0)
        for k in 1..<points.count {
            let a = Vec3(points[k - 1][0], points[k - 1][1], points[k - 1][2])
            let b = Vec3(points[k][0], points[k][1], points[k][2])
            let (t, q) = VesselTree.closestOnSegment(p, a, b)
            let d = (p - q).length
            if d < best.distance { best = (d, points[k - 1][3] + t * (points[k][3] - points[k - 1][3])) }
        }
        return best
    }
}

/// The vessel lumen as a set of conical frusta (one per centerline segment), with a bounding
/// volume hierarchy built at load for point queries that never allocate. The lumen is the union
/// of the frusta, so the signed distance to the wall is the smallest (distance to a segment's
/// centerline − its radius there): negative inside, positive outside.
public struct VesselTree: Sendable {
    public let name: String
    public let vesselNames: [String]
    /// (segments) endpoints and radii (mm).
    public let segmentStart: [Vec3]
    public let segmentEnd: [Vec3]
    public let radiusStart: [Double]
    public let radiusEnd: [Double]
    /// (segments) the vessel each segment belongs to.
    public let segmentVessel: [Int32]
    /// (vessels) the first segment of each vessel and its count.
    public let vesselSegments: [Range<Int>]
    let bvh: BVH

    /// The answer to a point query.
    public struct Nearest: Sendable, Equatable {
        public var segment: Int
        public var vessel: Int
        /// Position along the segment, 0…1.
        public var t: Double
        /// The closest centerline point (mm).
        public var centerline: Vec3
        /// The lumen radius there (mm).
        public var radius: Double
        /// Distance to the wall (mm): negative inside the lumen.
        public var signedDistance: Double
    }

    public init(_ d: VesselTreeDescription) {
        name = d.name
        vesselNames = d.vessels.map(\.name)
        var s: [Vec3] = [], e: [Vec3] = [], rs: [Double] = [], re: [Double] = [], owner: [Int32] = [], ranges: [Range<Int>] = []
        for (vi, v) in d.vessels.enumerated() {
            let first = s.count
            for k in 1..<v.points.count {
                let a = v.points[k - 1], b = v.points[k]
                s.append(Vec3(a[0], a[1], a[2])); e.append(Vec3(b[0], b[1], b[2]))
                rs.append(a[3]); re.append(b[3]); owner.append(Int32(vi))
            }
            ranges.append(first..<s.count)
        }
        segmentStart = s; segmentEnd = e; radiusStart = rs; radiusEnd = re; segmentVessel = owner; vesselSegments = ranges
        bvh = BVH(start: s, end: e, radiusStart: rs, radiusEnd: re)
    }

    public var segmentCount: Int { segmentStart.count }

    /// The closest point on segment ab to p, and its parameter t in 0…1.
    @inlinable static func closestOnSegment(_ p: Vec3, _ a: Vec3, _ b: Vec3) -> (Double, Vec3) {
        let ab = b - a
        let len2 = ab.dot(ab)
        let t = len2 > 0 ? min(1, max(0, (p - a).dot(ab) / len2)) : 0
        return (t, a + ab * t)
    }

    /// (distance − radius) of `p` to segment `i`, with the closest point and t.
    @inline(__always) func evaluate(_ p: Vec3, segment i: Int) -> (signed: Double, t: Double, q: Vec3, r: Double) {
        let (t, q) = Self.closestOnSegment(p, segmentStart[i], segmentEnd[i])
        let r = radiusStart[i] + t * (radiusEnd[i] - radiusStart[i])
        return ((p - q).length - r, t, q, r)
    }

    /// The segment whose wall is nearest `p` (smallest signed distance), through the BVH.
    public func nearest(_ p: Vec3) -> Nearest {
        var best = (signed: Double.infinity, index: 0, t: 0.0, q: Vec3.zero, r: 0.0)
        bvh.query(p) { i, bound in
            if bound >= best.signed { return best.signed }
            let e = evaluate(p, segment: i)
            if e.signed < best.signed { best = (e.signed, i, e.t, e.q, e.r) }
            return best.signed
        }
        return Nearest(segment: best.index, vessel: Int(segmentVessel[best.index]), t: best.t, centerline: best.q,
                       radius: best.r, signedDistance: best.signed)
    }

    /// The same by checking every segment (for tests of the index).
    public func nearestBruteForce(_ p: Vec3) -> Nearest {
        var best = Nearest(segment: 0, vessel: 0, t: 0, centerline: .zero, radius: 0, signedDistance: .infinity)
        for i in 0..<segmentCount {
            let e = evaluate(p, segment: i)
            if e.signed < best.signedDistance {
                best = Nearest(segment: i, vessel: Int(segmentVessel[i]), t: e.t, centerline: e.q, radius: e.r, signedDistance: e.signed)
            }
        }
        return best
    }

    /// True when `p` lies inside the lumen, or less than `margin` mm outside its wall (never for
    /// a non-finite point).
    public func contains(_ p: Vec3, within margin: Double = 0) -> Bool { nearest(p).signedDistance < margin }

    /// The index of the vessel called `name`.
    public func vessel(named name: String) -> Int? { vesselNames.firstIndex(of: name) }

    /// Centerline length of vessel `v` (mm).
    public func length(ofVessel v: Int) -> Double {
        vesselSegments[v].reduce(0) { $0 + (segmentEnd[$1] - segmentStart[$1]).length }
    }
}
