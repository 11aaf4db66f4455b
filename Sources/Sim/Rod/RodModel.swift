import Core

/// A tube material of the catheter: SI units throughout the rod (m, kg, s, N, Pa).
public struct RodMaterial: Sendable, Equatable {
    public var name: String
    public var youngsModulus: Double
    public var shearModulus: Double
    public var density: Double
    public var outerRadius: Double
    public var innerRadius: Double

    public init(name: String, youngsModulus: Double, poissonRatio: Double = 0.4, density: Double, outerRadius: Double, innerRadius: Double) {
        self.name = name
        self.youngsModulus = youngsModulus
        self.shearModulus = youngsModulus / (2 * (1 + poissonRatio))
        self.density = density
        self.outerRadius = outerRadius
        self.innerRadius = innerRadius
    }

    public var area: Double { Double.pi * (outerRadius * outerRadius - innerRadius * innerRadius) }
    /// Second moment of area of the annulus (m⁴).
    public var secondMoment: Double { Double.pi / 4 * (pow4(outerRadius) - pow4(innerRadius)) }
    /// Polar moment (m⁴): twice the second moment for a round tube.
    public var polarMoment: Double { 2 * secondMoment }
    public var bendingStiffness: Double { youngsModulus * secondMoment }
    public var torsionalStiffness: Double { shearModulus * polarMoment }
    private func pow4(_ x: Double) -> Double { x * x * x * x }

    // A 6 F (2.0 mm) diagnostic catheter, 1.4 mm lumen: a braid-reinforced polyether block amide
    // shaft, a soft unbraided distal section that the tendons bend, and a radiopaque tip
    // (tungsten-loaded polymer with a platinum-iridium marker band).
    public static let shaft = RodMaterial(name: "shaft", youngsModulus: 600e6, density: 1300, outerRadius: 1.0e-3, innerRadius: 0.7e-3)
    public static let distal = RodMaterial(name: "distal", youngsModulus: 40e6, density: 1150, outerRadius: 1.0e-3, innerRadius: 0.7e-3)
    public static let tip = RodMaterial(name: "tip", youngsModulus: 200e6, density: 3500, outerRadius: 1.0e-3, innerRadius: 0.7e-3)

    /// The same tube at another outer radius (m), its wall the same fraction of it.
    public func scaled(outerRadius r: Double) -> RodMaterial {
        guard r != outerRadius else { return self }
        var m = self
        m.innerRadius = innerRadius / outerRadius * r
        m.outerRadius = r
        return m
    }
}

/// What the rod is made of and how it meets its surroundings.
public struct CatheterRodDescription: Sendable {
    public struct Section: Sendable {
        public var length: Double
        public var material: RodMaterial
        /// The tendons bend this section (the curvature input acts on it).
        public var bendable: Bool
        public init(length: Double, material: RodMaterial, bendable: Bool = false) {
            self.length = length; self.material = material; self.bendable = bendable
        }
    }

    /// Proximal to distal.
    public var sections: [Section]
    public var elements: Int
    /// Mass-proportional viscous damping (1/s): blood drag and internal losses together.
    public var dampingRate: Double = 4
    /// Coulomb friction coefficient between catheter and vessel wall (hydrophilic coating on endothelium).
    public var friction: Double = 0.08
    /// Gravity (m/s²) in the patient frame (LPS): +y is posterior, so a supine patient sees +9.81 y.
    public var gravity: Vec3 = Vec3(0, 9.81, 0)
    /// Wall contact stiffness (N/m per node): the wall is stiff compared with the catheter.
    public var contactStiffness: Double = 2e4
    /// Below this sliding speed (m/s) Coulomb friction is regularised into a viscous stick.
    public var stickSpeed: Double = 1e-3

    public init(sections: [Section], elements: Int) {
        self.sections = sections; self.elements = elements
    }

    public var length: Double { sections.reduce(0) { $0 + $1.length } }

    /// A 6 F steerable catheter's simulated working length (default 0.5 m): the braided shaft,
    /// a 50 mm tendon-bent distal section and a 5 mm radiopaque tip.
    public static func catheter(elements: Int = 100, length: Double = 0.5, bendLength: Double = 0.05, tipLength: Double = 0.005,
                                outerRadius: Double = RodMaterial.shaft.outerRadius) -> CatheterRodDescription {
        CatheterRodDescription(sections: [
            Section(length: length - bendLength - tipLength, material: RodMaterial.shaft.scaled(outerRadius: outerRadius)),
            Section(length: bendLength, material: RodMaterial.distal.scaled(outerRadius: outerRadius), bendable: true),
            Section(length: tipLength, material: RodMaterial.tip.scaled(outerRadius: outerRadius)),
        ], elements: elements)
    }

    /// A rod of one material (validation cases).
    public static func uniform(length: Double, material: RodMaterial, elements: Int) -> CatheterRodDescription {
        CatheterRodDescription(sections: [Section(length: length, material: material)], elements: elements)
    }
}

public enum RodError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalid(String)
    /// The implicit system lost positive definiteness or a value went non-finite: the state is
    /// kept at its last good value.
    case diverged(time: Double)

    public var description: String {
        switch self {
        case .invalid(let why): "catheter rod: \(why)"
        case .diverged(let t): "catheter rod: the step diverged at t = \(t) s (non-finite or indefinite system); state kept at its last good value"
        }
    }
}

/// The immutable part of the rod: per-node and per-edge constants computed once, plus the
/// lumen and the introducer sheath it is pushed through. Buffers are allocated here and
/// never written after `init`.
public final class RodModel: @unchecked Sendable {
    public let description: CatheterRodDescription
    public let nodes: Int
    public let edges: Int
    /// Rest length of every element (m).
    public let restLength: Double
    public let totalLength: Double
    /// The sheath: its exit point (m) and the unit direction the catheter leaves it in.
    public let sheathExit: Vec3
    public let sheathAxis: Vec3
    /// The material director d1 of the catheter at roll 0 (perpendicular to the axis).
    public let sheathNormal: Vec3
    public let lumen: RodLumen?

    let edgeMaterial: [Int]                           // edges → section index (set-up, reports)
    /// Everything the step reads, without reference counting. It owns its buffers and cannot be
    /// copied out of the model: the step borrows it (`ElasticRod.step(model.parameters, …)`).
    public let parameters: RodParameters

    public init(_ d: CatheterRodDescription, lumen: RodLumen? = nil, sheathExit: Vec3 = .zero, sheathAxis: Vec3 = Vec3(0, 0, 1),
                sheathNormal: Vec3? = nil) throws(RodError) {
        guard d.elements >= 4 else { throw .invalid("elements must be at least 4, got \(d.elements)") }
        guard !d.sections.isEmpty else { throw .invalid("no sections") }
        for (i, s) in d.sections.enumerated() {
            let m = s.material
            guard s.length > 0, s.length.isFinite else { throw .invalid("sections[\(i)].length must be positive, got \(s.length)") }
            guard m.youngsModulus > 0, m.shearModulus > 0, m.density > 0, m.outerRadius > m.innerRadius, m.innerRadius >= 0 else {
                throw .invalid("sections[\(i)] (\(m.name)): moduli and density must be positive and outer radius > inner radius ≥ 0")
            }
        }
        guard d.dampingRate >= 0, d.friction >= 0, d.contactStiffness > 0, d.stickSpeed > 0, d.gravity.isFinite else {
            throw .invalid("damping and friction must be ≥ 0, contact stiffness and stick speed > 0, gravity finite")
        }
        let axisLength = sheathAxis.length
        guard axisLength > 0, sheathExit.isFinite else { throw .invalid("the sheath axis must be a non-zero direction") }
        description = d
        edges = d.elements
        nodes = d.elements + 1
        totalLength = d.length
        restLength = totalLength / Double(edges)
        self.sheathExit = sheathExit
        self.sheathAxis = sheathAxis * (1 / axisLength)
        let axis = sheathAxis * (1 / axisLength)
        if let n = sheathNormal {
            let p = n - axis * n.dot(axis)
            guard p.length > 1e-9, p.isFinite else { throw .invalid("the sheath normal must not be parallel to the axis") }
            self.sheathNormal = p * (1 / p.length)
        } else {
            self.sheathNormal = perpendicular(axis)
        }
        self.lumen = lumen

        // Section of each element, by its midpoint.
        var owner: [Int] = []
        for e in 0..<edges {
            let s = (Double(e) + 0.5) * restLength
            var acc = 0.0, k = 0
            for (i, sec) in d.sections.enumerated() { k = i; acc += sec.length; if s < acc { break } }
            owner.append(k)
        }
        edgeMaterial = owner
        let l = restLength
        let mass = UnsafeMutablePointer<Double>.allocate(capacity: nodes), radius = UnsafeMutablePointer<Double>.allocate(capacity: nodes)
        let bendStiffness = UnsafeMutablePointer<Double>.allocate(capacity: nodes), twistStiffness = UnsafeMutablePointer<Double>.allocate(capacity: nodes)
        let bendable = UnsafeMutablePointer<Double>.allocate(capacity: nodes)
        let stretchStiffness = UnsafeMutablePointer<Double>.allocate(capacity: edges), twistInertia = UnsafeMutablePointer<Double>.allocate(capacity: edges)
        mass.initialize(repeating: 0, count: nodes)
        for e in 0..<edges {
            let m = d.sections[owner[e]].material
            stretchStiffness[e] = m.youngsModulus * m.area / l
            twistInertia[e] = m.density * m.polarMoment * l
            mass[e] += 0.5 * m.density * m.area * l
            mass[e + 1] += 0.5 * m.density * m.area * l
        }
        for i in 0..<nodes {
            let a = d.sections[owner[max(0, i - 1)]], b = d.sections[owner[min(edges - 1, i)]]
            radius[i] = max(a.material.outerRadius, b.material.outerRadius)
            // Compliances of the two half-elements add: harmonic means at material joints.
            let ei = 2 / (1 / a.material.bendingStiffness + 1 / b.material.bendingStiffness)
            let gj = 2 / (1 / a.material.torsionalStiffness + 1 / b.material.torsionalStiffness)
            let interior = i > 0 && i < nodes - 1
            bendStiffness[i] = interior ? ei / (l * l * l) : 0
            twistStiffness[i] = interior ? gj / l : 0
            // A node whose Voronoi half-lengths straddle the bendable section's end carries half its curvature.
            bendable[i] = interior ? ((a.bendable ? 0.5 : 0) + (b.bendable ? 0.5 : 0)) : 0
        }
        parameters = RodParameters(
            nodes: nodes, edges: edges, restLength: restLength, totalLength: totalLength, sheathExit: self.sheathExit,
            sheathAxis: self.sheathAxis, sheathNormal: self.sheathNormal, dampingRate: d.dampingRate, friction: d.friction,
            contactStiffness: d.contactStiffness, stickSpeed: d.stickSpeed, gravity: d.gravity, hasLumen: lumen != nil,
            lumenGeometry: lumen.map { LumenGeometry($0) }, mass: mass, radius: radius, bendStiffness: bendStiffness,
            twistStiffness: twistStiffness, bendable: bendable, stretchStiffness: stretchStiffness, twistInertia: twistInertia)
    }

    /// Mass of node `i` (kg).
    public func nodeMass(_ i: Int) -> Double { parameters.mass[i] }
    public func bendingStiffness(atNode i: Int) -> Double { parameters.bendStiffness[i] * restLength * restLength * restLength }
}

/// The rod model as the step reads it: scalars, and buffers it owns (allocated by `RodModel`,
/// freed when these parameters end). Noncopyable, so the step borrows it without reference
/// counting and no copy of its pointers can outlive it.
public struct RodParameters: ~Copyable, @unchecked Sendable {
    public let nodes: Int
    public let edges: Int
    public let restLength: Double
    public let totalLength: Double
    public let sheathExit: Vec3
    public let sheathAxis: Vec3
    public let sheathNormal: Vec3
    let dampingRate: Double, friction: Double, contactStiffness: Double, stickSpeed: Double
    let gravity: Vec3
    let hasLumen: Bool
    let lumenGeometry: LumenGeometry?
    let mass: UnsafeMutablePointer<Double>              // (nodes) kg
    let radius: UnsafeMutablePointer<Double>            // (nodes) m
    let bendStiffness: UnsafeMutablePointer<Double>     // (nodes) N/m: EI / l³
    let twistStiffness: UnsafeMutablePointer<Double>    // (nodes) N·m: GJ / l
    let bendable: UnsafeMutablePointer<Double>          // (nodes) share of the tendon curvature
    let stretchStiffness: UnsafeMutablePointer<Double>  // (edges) N/m: EA / l
    let twistInertia: UnsafeMutablePointer<Double>      // (edges) kg·m²

    deinit {
        mass.deallocate(); radius.deallocate(); bendStiffness.deallocate(); twistStiffness.deallocate()
        bendable.deallocate(); stretchStiffness.deallocate(); twistInertia.deallocate()
    }
}
