import Core

/// What drives the rod in one step.
public struct RodInput: Sendable, Equatable {
    /// Length of catheter out of the sheath (m) at the end of the step.
    public var insertion: Double
    /// Roll of the proximal end about the sheath axis (rad) at the end of the step.
    public var roll: Double
    /// Tendon-commanded curvature of the bendable section (1/m), towards the material
    /// directors d1 and d2.
    public var curvature: SIMD2<Double> = .zero
    /// External force on the distal node (N) and torque about the distal tangent (N·m): for
    /// validation against closed forms.
    public var tipForce: Vec3 = .zero
    public var tipTorque: Double = 0

    @_noAllocation @_noLocks
    public init(insertion: Double, roll: Double = 0, curvature: SIMD2<Double> = .zero) {
        self.insertion = insertion; self.roll = roll; self.curvature = curvature
    }
}

/// The mutable part of the rod, sized once from its model: positions, velocities, twist and
/// the solver's scratch. `ElasticRod.step` updates it without allocating.
///
/// The model is a discrete elastic rod: nodes carry positions, edges carry a twist angle of
/// their material frame relative to a reference frame that is parallel-transported in time.
/// Stretch is a non-linear spring per edge; bending is the quadratic energy of the discrete
/// second difference (exact for an inextensible rod up to O(θ²) per element, with a constant
/// Hessian), with the tendon curvature as a rest shape expressed in the material frame;
/// twist is the discrete twist with its reference twist. Each step is backward Euler,
/// linearised once (one Newton step) and solved as a banded system for the nodes and a
/// tridiagonal one for the twist, so a 1 ms step is stable however stiff the shaft is.
/// Contact with the lumen is a stiff implicit penalty along the wall normal with
/// regularised Coulomb friction, followed by a projection that keeps every node's surface
/// inside the lumen.
public struct RodState: ~Copyable {
    public let nodes: Int
    public let edges: Int
    public internal(set) var time: Double = 0
    public internal(set) var insertion: Double
    public internal(set) var roll: Double
    /// Number of proximal nodes held by the sheath this step.
    public internal(set) var heldNodes: Int = 2
    public internal(set) var diverged = false
    /// Axial force the sheath drive pushes with (N, compression positive): the stretch force in
    /// the first free element.
    public internal(set) var pushForce = 0.0

    let x: UnsafeMutablePointer<Vec3>
    let v: UnsafeMutablePointer<Vec3>
    let force: UnsafeMutablePointer<Vec3>
    let contact: UnsafeMutablePointer<Vec3>      // nodes: contact force on the catheter (N)
    let gap: UnsafeMutablePointer<Double>        // nodes: penetration of the catheter surface (m), > 0 in contact
    let normal: UnsafeMutablePointer<Vec3>       // nodes: outward wall normal
    let segment: UnsafeMutablePointer<Int>       // nodes: nearest lumen segment (search hint)
    var tangent: EdgeVectors                     // edges: unit tangent of the current positions
    var newTangent: EdgeVectors                  // edges: the twist step's next tangents; swapped with `tangent`
    let length: UnsafeMutablePointer<Double>     // edges: length of the current positions
    let refFrame: EdgeVectors                    // edges: reference director a1
    let phi: UnsafeMutablePointer<Double>        // edges: material angle from a1
    let omega: UnsafeMutablePointer<Double>      // edges: twist rate
    let refTwist: UnsafeMutablePointer<Double>   // nodes: reference twist
    let moment: UnsafeMutablePointer<Double>     // nodes: twisting moment (scratch of the twist step)
    let twistSin: UnsafeMutablePointer<Double>   // nodes: reference twist as the y and x of its atan2 (scratch)
    let twistCos: UnsafeMutablePointer<Double>
    let stepPerMass: UnsafeMutablePointer<Double> // nodes: dt / mass for the step `stepPerMassDt` (explicit step)
    var stepPerMassDt = Double.nan
    let rhs: UnsafeMutablePointer<Vec3>
    let tri: UnsafeMutablePointer<Double>        // 4 × edges: lower, diagonal, upper, rhs
    let matrix: BlockPentadiagonal

    public init(model: RodModel, insertion: Double, roll: Double = 0) {
        nodes = model.nodes
        edges = model.edges
        self.insertion = insertion
        self.roll = roll
        x = .allocate(capacity: nodes); v = .allocate(capacity: nodes); force = .allocate(capacity: nodes)
        contact = .allocate(capacity: nodes); gap = .allocate(capacity: nodes); normal = .allocate(capacity: nodes)
        segment = .allocate(capacity: nodes); refTwist = .allocate(capacity: nodes)
        tangent = EdgeVectors(count: edges); newTangent = EdgeVectors(count: edges); refFrame = EdgeVectors(count: edges)
        length = .allocate(capacity: edges)
        moment = .allocate(capacity: nodes); moment.initialize(repeating: 0, count: nodes)
        twistSin = .allocate(capacity: 2 * nodes); twistCos = twistSin + nodes
        twistSin.initialize(repeating: 0, count: 2 * nodes)
        stepPerMass = .allocate(capacity: nodes); stepPerMass.initialize(repeating: 0, count: nodes)
        phi = .allocate(capacity: edges); omega = .allocate(capacity: edges)
        rhs = .allocate(capacity: nodes); tri = .allocate(capacity: 4 * edges)
        matrix = BlockPentadiagonal(count: nodes)
        // Straight along the sheath axis, the tip `insertion` beyond the exit.
        let a1 = model.sheathNormal
        for i in 0..<nodes {
            let s = insertion - model.totalLength + Double(i) * model.restLength
            x[i] = model.sheathExit + model.sheathAxis * s
            v[i] = .zero; force[i] = .zero; contact[i] = .zero; gap[i] = -1; normal[i] = a1; refTwist[i] = 0
            segment[i] = model.lumen.map { $0.nearestSegment(x[i]) } ?? 0
        }
        for e in 0..<edges {
            tangent[e] = model.sheathAxis; refFrame[e] = a1; phi[e] = roll; omega[e] = 0
            length[e] = (x[e + 1] - x[e]).length
        }
        rhs.initialize(repeating: .zero, count: nodes)
        tri.initialize(repeating: 0, count: 4 * edges)
        heldNodes = ElasticRod.heldNodes(model.parameters, insertion)
    }

    deinit {
        x.deallocate(); v.deallocate(); force.deallocate(); contact.deallocate(); gap.deallocate(); normal.deallocate()
        segment.deallocate(); refTwist.deallocate(); tangent.deallocate(); length.deallocate(); refFrame.deallocate()
        moment.deallocate(); newTangent.deallocate(); twistSin.deallocate(); stepPerMass.deallocate()
        phi.deallocate(); omega.deallocate(); rhs.deallocate(); tri.deallocate()
    }

    public func position(_ i: Int) -> Vec3 { x[i] }
    public func velocity(_ i: Int) -> Vec3 { v[i] }
    /// Contact force of the wall on node `i` (N): normal reaction plus friction.
    public func contactForce(_ i: Int) -> Vec3 { contact[i] }
    public func twist(_ e: Int) -> Double { phi[e] }
    /// The distal end point of the centerline (m).
    public var tip: Vec3 { x[nodes - 1] }
    /// The material director d1 of edge `e`.
    public func director(_ e: Int) -> Vec3 {
        let t = tangent[e], a1 = refFrame[e]
        return a1 * cosine(phi[e]) + t.cross(a1) * sine(phi[e])
    }
    /// The centerline in millimetres (set-up / rendering; allocates).
    public func centerlineMillimetres() -> [Vec3] { (0..<nodes).map { x[$0] * 1e3 } }
    public var peakContactForce: Double {
        @_noAllocation @_noLocks get {
            var peak = 0.0
            for i in 0..<nodes { let f = contact[i].length; if f > peak { peak = f } }
            return peak
        }
    }
}

/// How the rod's translation is integrated. Twist is always solved implicitly (a cheap
/// tridiagonal system).
public enum RodIntegrator: Sendable, Equatable {
    /// Backward Euler, linearised once per step: stable at any step (the simulator's default).
    case implicit
    /// Symplectic Euler: no solve, but only stable below the stretch wave's Courant limit
    /// (about l / √(E/ρ)); for small steps and comparisons with explicit codes.
    case explicit
}

public enum ElasticRod {
    /// Proximal nodes inside the sheath for an insertion (at least two: the clamp).
    @_noAllocation @_noLocks
    static func heldNodes(_ model: borrowing RodParameters, _ insertion: Double) -> Int {
        let outside = insertion / model.restLength
        var free = outside.isFinite ? Int(outside + 1e-9) : 0
        if free < 0 { free = 0 }
        if free > model.nodes - 2 { free = model.nodes - 2 }
        return model.nodes - free
    }

    /// atan2(y, x) for the small angles between neighbouring reference frames: an odd series
    /// in y/x, as short as the angle allows (error below 1e-15 for |y/x| ≤ 0.01 with three
    /// terms, below 1e-10 for |y/x| ≤ 0.1 with five), the library call otherwise. Reference
    /// twists of a smooth rod are almost always in the first range, and this sits in the
    /// innermost loop of every step.
    @_noAllocation @_noLocks @inline(__always)
    static func smallAngle(_ y: Double, _ x: Double) -> Double {
        if x > 0, abs(y) <= 0.1 * x {
            let z = y / x, z2 = z * z
            if z2 <= 1e-4 { return z * (1 - z2 * (1.0 / 3 - z2 * (1.0 / 5))) }
            return z * (1 - z2 * (1.0 / 3 - z2 * (1.0 / 5 - z2 * (1.0 / 7 - z2 * (1.0 / 9)))))
        }
        return arcTangent2(y, x)
    }

    /// Parallel transport of `a` from tangent `t0` to `t1` (unit vectors): the rotation about
    /// t0 × t1 that takes t0 to t1, written as R = I + 2 t1 t0ᵀ − s sᵀ / (1 + t0·t1) with
    /// s = t0 + t1, which needs three dot products and no cross product.
    /// Works on lanes of edges side by side; lanes whose tangents are antiparallel keep `a`.
    @_noAllocation @_noLocks @inline(__always)
    static func transport(_ a: Vec3Lanes, _ t0: Vec3Lanes, _ t1: Vec3Lanes) -> Vec3Lanes {
        let c = t0.dot(t1)
        let sum = t0 + t1
        let moved = a + t1 * (2 * t0.dot(a)) - sum * (sum.dot(a) / (1 + c))
        // A branch rather than a blend: antiparallel neighbours essentially never occur.
        let antiparallel = c .<= -0.999999
        return any(antiparallel) ? moved.replacing(with: a, where: antiparallel) : moved
    }

    /// One backward-Euler step of `dt` seconds (see the `RodParameters` form).
    public static func step(_ model: RodModel, _ s: inout RodState, _ input: RodInput, dt h: Double) -> Bool {
        step(model.parameters, &s, input, dt: h)
    }

    /// Total mechanical energy (see the `RodParameters` form).
    public static func energy(_ model: RodModel, _ s: borrowing RodState, curvature: SIMD2<Double> = .zero) -> Double {
        energy(model.parameters, s, curvature: curvature)
    }

    /// One backward-Euler step of `dt` seconds. Returns false (and marks the state diverged,
    /// keeping the last good configuration) when the step fails numerically.
    @_noAllocation @_noLocks
    public static func step(_ model: borrowing RodParameters, _ s: inout RodState, _ input: RodInput, dt h: Double,
                            integrator: RodIntegrator = .implicit) -> Bool {
        if s.diverged { return false }
        let assemble = integrator == .implicit
        // A non-finite command keeps the last one: a NaN must never become a jump.
        var insertion = input.insertion.isFinite ? input.insertion : s.insertion
        let maxInsertion = model.totalLength - 2 * model.restLength
        if insertion < 0 { insertion = 0 }
        if insertion > maxInsertion { insertion = maxInsertion }
        let roll = input.roll.isFinite ? input.roll : s.roll
        let n = s.nodes, l0 = model.restLength
        let x = s.x, v = s.v, f = s.force, b = s.rhs
        let axis = model.sheathAxis
        let pushSpeed = (insertion - s.insertion) / h
        let held = heldNodes(model, insertion)
        // Nodes that left the sheath keep their state; nodes pulled back in are held again. A
        // node leaving takes its free neighbour's wall (its own was found where it lay at the
        // set-up, on the sheath's axis behind the exit: in a tree entered at its root's start,
        // such as a coronary ostium, the nearest vessel there can be a branch centimetres away,
        // and the wall search, local to that hint, would throw the node onto it). No contact is
        // carried over from before it was held.
        if held < s.heldNodes, s.heldNodes < n {
            for i in held..<s.heldNodes {
                s.segment[i] = s.segment[s.heldNodes]
                s.gap[i] = -1
            }
        }
        s.heldNodes = held
        let kc = model.contactStiffness
        let g = model.gravity
        let curvature = input.curvature.x.isFinite && input.curvature.y.isFinite ? input.curvature : .zero

        let h2 = h * h
        let exitScale = clampScale(model, insertion, held)
        let vHeld = axis * pushSpeed
        if assemble {
            // Forces at x_n and the matrix A = M(1 + hν) + hC + h²K, by 3×3 blocks.
            s.matrix.clear()
            let D = s.matrix.diagonal, S1 = s.matrix.sub1, S2 = s.matrix.sub2
            for i in 0..<n {
                f[i] = g * model.mass[i]
                D[i].addIdentity(model.mass[i] * (1 + h * model.dampingRate))
            }
            f[n - 1] += input.tipForce
            // Stretch: H = k (t tᵀ + geo (I − t tᵀ)), geo = max(0, 1 − l0/|e|).
            // The tangents and lengths of x_n are those the last twist update stored.
            for e in 0..<s.edges {
                let len = s.length[e]
                let t = s.tangent[e]
                let k = model.stretchStiffness[e]
                let fe = t * (k * (len - l0))
                f[e] += fe; f[e + 1] -= fe
                var geo = 1 - l0 / len
                if geo < 0 { geo = 0 }
                var hk = Mat3.outer(t, k * (1 - geo) * h2)
                hk.addIdentity(k * geo * h2)
                D[e] = D[e] + hk
                D[e + 1] = D[e + 1] + hk
                S1[e + 1] = S1[e + 1] - hk
            }
            // Bending: E = kb/2 |x[i-1] − 2x[i] + x[i+1] − c|², c the tendon rest shape; its
            // Hessian is kb (1, −2, 1)ᵀ(1, −2, 1) ⊗ I.
            for i in 1..<(n - 1) {
                var kb = model.bendStiffness[i]
                if i == held - 1 { kb *= exitScale.0 } else if i == held { kb *= exitScale.1 }
                let target = bendTarget(model, s, i, curvature)
                let r = x[i - 1] - x[i] * 2 + x[i + 1] - target
                f[i - 1] -= r * kb; f[i] += r * (2 * kb); f[i + 1] -= r * kb
                let k = kb * h2
                D[i - 1].addIdentity(k); D[i].addIdentity(4 * k); D[i + 1].addIdentity(k)
                S1[i].addIdentity(-2 * k); S1[i + 1].addIdentity(-2 * k); S2[i + 1].addIdentity(k)
            }
            // Wall contact from the configuration at the start of the step (found by last step's projection).
            if model.hasLumen {
                for i in held..<n {
                    if let c = wallContact(model, &s, i) {
                        f[i] -= c.normal * c.normalForce
                        // K += kc n nᵀ ; C += cf (I − n nᵀ)
                        var kcn = Mat3.outer(c.normal, kc * h2 - h * c.friction)
                        kcn.addIdentity(h * c.friction)
                        D[i] = D[i] + kcn
                    }
                }
            }
            // Right-hand side M v + h f; the held nodes' known velocities move to it.
            for i in 0..<n { b[i] = v[i] * model.mass[i] + f[i] * h }
            if held < n { b[held] -= S1[held] * vHeld }
            if held >= 2, held < n { b[held] -= S2[held] * vHeld }
            if held + 1 < n { b[held + 1] -= S2[held + 1] * vHeld }
            if !s.matrix.factorize(from: held) { s.diverged = true; return false }
            s.matrix.solve(b, from: held)
            for i in held..<n where !b[i].isFinite { s.diverged = true; return false }
        } else if !explicitVelocities(model, &s, input.tipForce, curvature, held: held, exitScale: exitScale, dt: h) {
            s.diverged = true; return false
        }
        // Advance; the held nodes sit exactly on the sheath axis.
        for i in 0..<min(held, n) {
            v[i] = vHeld
            x[i] = model.sheathExit + axis * (insertion - model.totalLength + Double(i) * l0)
        }
        for i in held..<n {
            let vn = b[i]
            v[i] = vn
            x[i] += vn * h
        }
        // Keep every free node's surface inside the lumen; remember the wall for the next step.
        switch model.lumenGeometry {
        case .none: break
        case .some(let lumen):
            for i in held..<n {
                let w = lumen.nearestWall(x[i], hint: s.segment[i])
                s.segment[i] = w.segment
                let pen = w.signed + model.radius[i]
                s.normal[i] = w.normal
                // The penalty carries the load; the projection only removes what exceeds a
                // small tolerance, so contact forces stay those of the implicit solve.
                let tolerance = 0.2 * model.radius[i]
                if pen > tolerance {
                    let excess = pen - tolerance
                    x[i] -= w.normal * excess
                    let vn = v[i].dot(w.normal)
                    if vn > 0 { v[i] -= w.normal * vn }
                    s.contact[i] -= w.normal * (model.mass[i] * excess / h2)
                    s.gap[i] = tolerance
                } else {
                    s.gap[i] = pen
                }
            }
        }
        if held < n {
            let e = held - 1
            let len = (x[e + 1] - x[e]).length
            s.pushForce = -model.stretchStiffness[e] * (len - l0)
        }
        twistStep(model, &s, roll: roll, held: held, torque: input.tipTorque.isFinite ? input.tipTorque : 0, dt: h, explicit: !assemble)
        s.insertion = insertion
        s.roll = roll
        s.time += h
        return true
    }

    /// Symplectic Euler: the free nodes' new velocities, into `rhs`, from the forces at x_n.
    /// These are the forces the implicit branch of `step` assembles, summed per node in the
    /// same order, but in one pass over the nodes: each element's stretch force and each
    /// node's bending force is computed once and carried to its neighbours, instead of being
    /// scattered into a force array with three read-modify-writes, and the held nodes (whose
    /// forces the explicit step never reads) are skipped. Returns false on a non-finite velocity.
    @_noAllocation @_noLocks @inline(__always)
    static func explicitVelocities(_ model: borrowing RodParameters, _ s: inout RodState, _ tipForce: Vec3, _ curvature: SIMD2<Double>,
                                   held: Int, exitScale: (Double, Double), dt h: Double) -> Bool {
        let n = s.nodes, m = s.edges, x = s.x, v = s.v, b = s.rhs, mass = model.mass
        let l0 = model.restLength, g = model.gravity
        let damp = 1 / (1 + h * model.dampingRate)
        // Zero curvature asks for no rest shape: skip the tendon frames entirely.
        let tendons = curvature != .zero
        // The stretch force of element e on node e (node e + 1 feels its opposite).
        @_noAllocation @_noLocks @inline(__always) func stretch(_ e: Int) -> Vec3 {
            e < m ? s.tangent[e] * (model.stretchStiffness[e] * (s.length[e] - l0)) : .zero
        }
        // kb r at node j, r the second difference less the rest shape; node j pushes on j ± 1
        // with −kb r and on itself with 2 kb r. Zero at the two end nodes.
        @_noAllocation @_noLocks @inline(__always) func bend(_ j: Int, _ scale: Double) -> Vec3 {
            if j >= n - 1 { return .zero }
            var r = x[j - 1] - x[j] * 2 + x[j + 1]
            if tendons { r -= bendTarget(model, s, j, curvature) }
            return r * (model.bendStiffness[j] * scale)
        }
        if held >= n { return true }
        // dt / m per node, divided once per step size rather than every step (the same quotient).
        let hPerMass = s.stepPerMass
        if s.stepPerMassDt != h {
            for i in 0..<n { hPerMass[i] = h / mass[i] }
            s.stepPerMassDt = h
        }
        var fePrev = stretch(held - 1)
        var qPrev = bend(held - 1, exitScale.0), q = bend(held, exitScale.1)
        var nonFinite = Vec3.zero  // collects v − v: stays zero unless some v is inf or NaN
        for i in held..<n {
            let fe = stretch(i), qNext = bend(i + 1, 1)
            var f = g * mass[i]
            if i == n - 1 { f += tipForce }
            f -= fePrev; f += fe
            f -= qPrev; f += q * 2; f -= qNext
            if model.hasLumen {
                // Wall contact from the configuration at the start of the step, friction explicitly.
                if let c = wallContact(model, &s, i) { f -= c.normal * c.normalForce; f -= c.slip * c.friction }
            }
            let vn = (v[i] + f * hPerMass[i]) * damp
            b[i] = vn
            nonFinite += vn - vn
            fePrev = fe; qPrev = q; q = qNext
        }
        return nonFinite == .zero
    }

    /// The wall's penalty and regularised Coulomb friction on node `i` from the configuration at
    /// the start of the step (the penetration and normal last step's projection found), recorded
    /// as the node's contact force; nil, with the contact force cleared, when the node is free.
    /// Both integrators apply it: the implicit one adds its stiffness and damping to the matrix,
    /// the explicit one the friction as a force.
    @_noAllocation @_noLocks @inline(__always)
    static func wallContact(_ model: borrowing RodParameters, _ s: inout RodState, _ i: Int)
        -> (normal: Vec3, normalForce: Double, slip: Vec3, friction: Double)? {
        let pen = s.gap[i]
        guard pen > 0 else {
            s.contact[i] = .zero
            return nil
        }
        let nrm = s.normal[i], v = s.v[i]
        let fn = model.contactStiffness * pen
        let vt = v - nrm * v.dot(nrm)
        let speed = vt.length
        let cf = model.friction * fn / (speed > model.stickSpeed ? speed : model.stickSpeed)
        s.contact[i] = nrm * (-fn) - vt * cf
        return (nrm, fn, vt, cf)
    }

    /// The rest second difference the tendons ask for at node `i`: the curvature in the
    /// material frame (d1, d2) at the node, times l².
    @_noAllocation @_noLocks @inline(__always)
    static func bendTarget(_ model: borrowing RodParameters, _ s: borrowing RodState, _ i: Int, _ curvature: SIMD2<Double>) -> Vec3 {
        let w = model.bendable[i]
        if w == 0 { return .zero }
        let tn0 = s.tangent[i - 1] + s.tangent[i]
        let tn = tn0 * (1 / tn0.length)
        let d1raw = directorOf(s, i - 1) + directorOf(s, i)
        let d1p = d1raw - tn * d1raw.dot(tn)
        let d1 = d1p * (1 / d1p.length)
        let d2 = tn.cross(d1)
        let l0 = model.restLength
        return (d1 * curvature.x + d2 * curvature.y) * (w * l0 * l0)
    }

    /// Bending-stiffness factors of the last held node and the first free one. Each node's
    /// rotational spring stands for its Voronoi half-lengths; the part of that region inside
    /// the sheath is rigid, so the spring of the node nearest the exit represents a shorter
    /// free length and is stiffer. Without this the clamp sits half an element too far out
    /// and a cantilever comes out 1/n too soft.
    @_noAllocation @_noLocks
    static func clampScale(_ model: borrowing RodParameters, _ insertion: Double, _ held: Int) -> (Double, Double) {
        let l = model.restLength
        let sHeld = insertion - model.totalLength + Double(held - 1) * l  // in (−l, 0]
        let cap = 4.0
        if sHeld >= -0.5 * l {
            let free = sHeld + 0.5 * l
            let k = free > l / cap ? l / free : cap
            return (k, 1)
        }
        return (cap, l / (sHeld + 1.5 * l))
    }

    @_noAllocation @_noLocks @inline(__always)
    static func directorOf(_ s: borrowing RodState, _ e: Int) -> Vec3 {
        let t = s.tangent[e], a1 = s.refFrame[e]
        return a1 * cosine(s.phi[e]) + t.cross(a1) * sine(s.phi[e])
    }

    /// `smallAngle` on lanes. The series is taken when every lane is in its range (a smooth rod:
    /// nearly always), the long form only when some lane needs it; otherwise lane by lane.
    @_noAllocation @_noLocks @inline(__always)
    static func smallAngle(_ y: Lanes, _ x: Lanes) -> Lanes {
        let bound = 0.1 * x
        if all((x .> 0) .& (y .<= bound) .& (-y .<= bound)) {  // x > 0, |y| ≤ 0.1 x
            let z = y / x, z2 = z * z
            let c3: Double = 1.0 / 3, c5: Double = 1.0 / 5, c7: Double = 1.0 / 7, c9: Double = 1.0 / 9
            let short: Lanes = z * (1 - z2 * (c3 - z2 * c5))
            let long = z2 .> 1e-4
            if !any(long) { return short }
            let inner: Lanes = c5 - z2 * (c7 - z2 * c9)
            return short.replacing(with: z * (1 - z2 * (c3 - z2 * inner)), where: long)
        }
        var r = Lanes()
        for k in 0..<Lanes.scalarCount { r[k] = smallAngle(y[k], x[k]) }
        return r
    }

    /// The unit tangents and lengths of edges with edge vectors `ed`.
    @_noAllocation @_noLocks @inline(__always)
    static func tangents(_ ed: Vec3Lanes) -> (t: Vec3Lanes, length: Lanes) {
        let q = ed.dot(ed)
        var len = Lanes()
        for k in 0..<Lanes.scalarCount { len[k] = squareRootOf(q[k]) }  // packed into one sqrtpd
        return (ed * (1 / len), len)
    }

    /// The reference director `a` of edges with tangents `t`, made orthogonal to the tangent
    /// and of unit length again after its transport.
    @_noAllocation @_noLocks @inline(__always)
    static func orthonormalised(_ a: Vec3Lanes, _ t: Vec3Lanes) -> Vec3Lanes {
        let p = a - t * a.dot(t)
        // Transport keeps |a| = 1 up to rounding: one Newton step of 1/√ restores it.
        return p * (1.5 - 0.5 * p.dot(p))
    }

    /// Reference twist at the nodes between edges with frames (`tPrev`, `aPrev`) and (`t`, `a`):
    /// the angle from aPrev, transported onto the next edge, to a, about t, as the y and x of
    /// its atan2.
    @_noAllocation @_noLocks @inline(__always)
    static func referenceTwist(_ tPrev: Vec3Lanes, _ aPrev: Vec3Lanes, _ t: Vec3Lanes, _ a: Vec3Lanes) -> (y: Lanes, x: Lanes) {
        let p = transport(aPrev, tPrev, t)
        return (p.cross(a).dot(t), p.dot(a))
    }

    /// Transports the reference frames to the new tangents, then advances the twist angles by
    /// backward Euler (a tridiagonal solve) or, with `explicit`, symplectic Euler, with the held
    /// edges at the commanded roll.
    ///
    /// Tangents and directors are stored by component, so each pass works on `Lanes.scalarCount`
    /// neighbouring edges at once with the scalar code's operations in the scalar order (the
    /// results are bit for bit those of an edge-at-a-time loop). The work is split into several
    /// short passes rather than one loop because each edge's work is a long chain of dependent
    /// operations (a sqrt, then divides, then dot products): the processor can only overlap
    /// as many edges as fit in its instruction window, and short chains let more of them fit.
    @_noAllocation @_noLocks
    static func twistStep(_ model: borrowing RodParameters, _ s: inout RodState, roll: Double, held: Int, torque: Double, dt h: Double,
                          explicit: Bool = false) {
        let x = s.x, m = s.edges, w = Lanes.scalarCount
        let refFrame = s.refFrame, refTwist = s.refTwist, length = s.length
        let oldTangent = s.tangent, newTangent = s.newTangent
        // New tangents and lengths, into `newTangent`.
        var e = 0
        while e + w <= m {
            // The edge vectors of edges e and e + 1 (positions are stored by node), transposed into lanes.
            let d0 = x[e + 1] - x[e], d1 = x[e + 2] - x[e + 1]
            let new = tangents(Vec3Lanes(Lanes(d0.x, d1.x), Lanes(d0.y, d1.y), Lanes(d0.z, d1.z)))
            newTangent.store(new.t, e); storeLanes(new.length, length + e)
            e += w
        }
        while e < m {  // the last edges: the same code with one edge in every lane
            let new = tangents(Vec3Lanes(repeating: x[e + 1] - x[e]))
            newTangent[e] = new.t[0]; length[e] = new.length[0]
            e += 1
        }
        // Reference directors transported in time from the old tangents to the new ones...
        e = 0
        while e + w <= m {
            refFrame.store(transport(refFrame.lanes(e), oldTangent.lanes(e), newTangent.lanes(e)), e)
            e += w
        }
        while e < m {
            refFrame[e] = transport(Vec3Lanes(repeating: refFrame[e]), Vec3Lanes(repeating: oldTangent[e]),
                                    Vec3Lanes(repeating: newTangent[e]))[0]
            e += 1
        }
        // ... then made orthonormal to them again.
        e = 0
        while e + w <= m {
            refFrame.store(orthonormalised(refFrame.lanes(e), newTangent.lanes(e)), e)
            e += w
        }
        while e < m {
            refFrame[e] = orthonormalised(Vec3Lanes(repeating: refFrame[e]), Vec3Lanes(repeating: newTangent[e]))[0]
            e += 1
        }
        // The new tangents become the current ones; the old buffer takes the next step's.
        s.newTangent = oldTangent
        s.tangent = newTangent
        let tangent = newTangent
        // Reference twist at the interior nodes 1 ..< m, once both neighbouring edges have
        // their new frames: its atan2 arguments first (the spatial transport's divide)...
        let ys = s.twistSin, xs = s.twistCos
        e = 1
        while e + w <= m {
            let (y, x) = referenceTwist(tangent.lanes(e - 1), refFrame.lanes(e - 1), tangent.lanes(e), refFrame.lanes(e))
            storeLanes(y, ys + e); storeLanes(x, xs + e)
            e += w
        }
        while e < m {
            let (y, x) = referenceTwist(Vec3Lanes(repeating: tangent[e - 1]), Vec3Lanes(repeating: refFrame[e - 1]),
                                        Vec3Lanes(repeating: tangent[e]), Vec3Lanes(repeating: refFrame[e]))
            ys[e] = y[0]; xs[e] = x[0]
            e += 1
        }
        let heldEdges = held - 1
        let rollRate = (roll - s.roll) / h
        let phi = s.phi, omega = s.omega
        for e in 0..<heldEdges { phi[e] = roll; omega[e] = rollRate }
        // ... then the angle (its own divide) and with it the twisting moment at each node,
        // k (φ[i] − φ[i−1] + reference twist), from the angles at the start of the step. The
        // free end carries the external torque. Edge e feels moment[e + 1] − moment[e]:
        // computed once per node instead of twice per edge.
        let moment = s.moment, kTwist = model.twistStiffness
        @_noAllocation @_noLocks @inline(__always) func twist(_ i: Int, _ angle: Lanes) -> Lanes {
            loadLanes(kTwist + i) * (loadLanes(phi + i) - loadLanes(phi + i - 1) + angle)
        }
        moment[0] = 0
        e = 1
        while e + w <= m {
            let angle = smallAngle(loadLanes(ys + e), loadLanes(xs + e))
            storeLanes(angle, refTwist + e)
            storeLanes(twist(e, angle), moment + e)
            e += w
        }
        while e < m {
            refTwist[e] = smallAngle(ys[e], xs[e])
            moment[e] = kTwist[e] * (phi[e] - phi[e - 1] + refTwist[e])
            e += 1
        }
        moment[m] = torque
        if heldEdges >= m { return }
        let h2 = h * h, damp = 1 + h * model.dampingRate, invDamp = 1 / damp
        let J = model.twistInertia
        if explicit {
            // Symplectic Euler for the twist too (stable below (l/2)·√(ρ/G)); friction explicit.
            // Every torque reads the angles at the start of the step, which `moment` holds, so
            // the update can follow in the same pass.
            if model.hasLumen {
                for e in heldEdges..<m {
                    let tau = moment[e + 1] - moment[e] - rollFriction(model, s, e) * omega[e]
                    let rate = (omega[e] + h * tau / J[e]) * invDamp
                    omega[e] = rate
                    phi[e] += h * rate
                }
                return
            }
            // Free of the wall, `w` edges at a time (the divides pack).
            e = heldEdges
            while e + w <= m {
                let tau = loadLanes(moment + e + 1) - loadLanes(moment + e)
                let rate = (loadLanes(omega + e) + h * tau / loadLanes(J + e)) * invDamp
                storeLanes(rate, omega + e)
                storeLanes(loadLanes(phi + e) + h * rate, phi + e)
                e += w
            }
            while e < m {
                let rate = (omega[e] + h * (moment[e + 1] - moment[e]) / J[e]) * invDamp
                omega[e] = rate
                phi[e] += h * rate
                e += 1
            }
            return
        }
        let lo = s.tri, di = s.tri + m, up = s.tri + 2 * m, r = s.tri + 3 * m
        for e in heldEdges..<m {
            let kL = kTwist[e], kR = e + 1 < m ? kTwist[e + 1] : 0
            let tau = moment[e + 1] - moment[e]
            let cf = model.hasLumen ? rollFriction(model, s, e) : 0
            di[e] = J[e] * damp + h * cf + h2 * (kL * (e > 0 ? 1 : 0) + kR)
            lo[e] = e > 0 ? -h2 * kL : 0
            up[e] = e + 1 < m ? -h2 * kR : 0
            r[e] = J[e] * omega[e] + h * tau
        }
        // The held edge next to the first free one enters as a known rate.
        if heldEdges > 0 { r[heldEdges] -= lo[heldEdges] * rollRate; lo[heldEdges] = 0 }
        // Thomas algorithm.
        e = heldEdges + 1
        while e < m {
            let w = lo[e] / di[e - 1]
            di[e] -= w * up[e - 1]
            r[e] -= w * r[e - 1]
            e += 1
        }
        omega[m - 1] = r[m - 1] / di[m - 1]
        e = m - 2
        while e >= heldEdges {
            omega[e] = (r[e] - up[e] * omega[e + 1]) / di[e]
            e -= 1
        }
        for k in heldEdges..<m { phi[k] += h * omega[k] }
    }

    /// Damping coefficient of edge e's spin from wall friction (N·m·s): contact friction resists
    /// rolling against the wall, μ |F_n| r per contacting end node, regularised below the stick speed.
    @_noAllocation @_noLocks @inline(__always)
    static func rollFriction(_ model: borrowing RodParameters, _ s: borrowing RodState, _ e: Int) -> Double {
        var fn = 0.0
        if s.gap[e] > 0 { fn += 0.5 * s.contact[e].length }
        if s.gap[e + 1] > 0 { fn += 0.5 * s.contact[e + 1].length }
        let rad = model.radius[e]
        let spin = abs(s.omega[e]) * rad
        return model.friction * fn * rad * rad / (spin > model.stickSpeed ? spin : model.stickSpeed)
    }

    /// Total mechanical energy (J): kinetic (translation and twist), stretch, bending, twist,
    /// gravity (relative to the sheath exit) and wall penalty. For tests and reports.
    public static func energy(_ model: borrowing RodParameters, _ s: borrowing RodState, curvature: SIMD2<Double> = .zero) -> Double {
        let scale = clampScale(model, s.insertion, s.heldNodes)
        var e = 0.0
        let l0 = model.restLength
        for i in 0..<s.nodes {
            e += 0.5 * model.mass[i] * s.v[i].dot(s.v[i])
            e -= model.mass[i] * model.gravity.dot(s.x[i] - model.sheathExit)
            if s.gap[i] > 0, model.hasLumen { e += 0.5 * model.contactStiffness * s.gap[i] * s.gap[i] }
        }
        for k in 0..<s.edges {
            let len = (s.x[k + 1] - s.x[k]).length
            e += 0.5 * model.stretchStiffness[k] * (len - l0) * (len - l0)
            e += 0.5 * model.twistInertia[k] * s.omega[k] * s.omega[k]
        }
        for i in 1..<(s.nodes - 1) {
            let r = s.x[i - 1] - s.x[i] * 2 + s.x[i + 1] - bendTarget(model, s, i, curvature)
            let kb = model.bendStiffness[i] * (i == s.heldNodes - 1 ? scale.0 : (i == s.heldNodes ? scale.1 : 1))
            e += 0.5 * kb * r.dot(r)
            let tw = s.phi[i] - s.phi[i - 1] + s.refTwist[i]
            e += 0.5 * model.twistStiffness[i] * tw * tw
        }
        return e
    }
}
