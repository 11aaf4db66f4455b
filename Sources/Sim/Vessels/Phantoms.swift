import Core
import Foundation

/// Why a built-in phantom could not be had.
public enum PhantomError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknown(String)
    /// The phantom's data file is missing from the installed resources.
    case missingFile(String)
    /// The phantom's data file is there but does not load or validate.
    case invalid(ConfigError)

    public var description: String {
        switch self {
        case .unknown(let name): "unknown phantom '\(name)': use one of \(Phantoms.names.joined(separator: ", "))"
        case .missingFile(let name): "the data file of phantom '\(name)' is missing from the installation: reinstall lumen"
        case .invalid(let e): "phantom file \(e)"
        }
    }
}

/// Built-in vessel phantoms. Coordinates in mm: x to the patient's left, y posterior,
/// z superior; radii are lumen radii. The anatomical phantoms made of measured shapes
/// (cerebral, hepatic) are data files in `PhantomFiles`, loaded and validated as any vessel
/// tree file is; the geometric ones are built here.
public enum Phantoms {
    public static let names = ["straight", "arch", "coronary", "cerebral", "hepatic"]
    /// The phantoms with navigation targets.
    public static let navigable = ["arch", "coronary", "cerebral", "hepatic"]

    public static func named(_ name: String) -> VesselTreeDescription? { try? load(name) }

    /// The phantom called `name`, its file (for a data-file phantom) read and validated.
    public static func load(_ name: String) throws(PhantomError) -> VesselTreeDescription {
        switch name {
        case "straight": return straightTube()
        case "arch": return aorticArch()
        case "coronary": return coronaryTree()
        case "cerebral", "hepatic":
            guard let path = filePath(name) else { throw .missingFile(name) }
            do { return try ConfigLoader.load(VesselTreeDescription.self, from: path) } catch { throw .invalid(error) }
        default: throw .unknown(name)
        }
    }

    /// The installed data file of a data-file phantom.
    public static func filePath(_ name: String) -> String? {
        Bundle.module.path(forResource: name, ofType: "json", inDirectory: "PhantomFiles")
    }

    /// A straight tube along z, 300 mm long, 4 mm radius: for validation against closed forms.
    public static func straightTube(length: Double = 300, radius: Double = 4) -> VesselTreeDescription {
        let n = 31
        let points = (0..<n).map { k in [0, 0, length * Double(k) / Double(n - 1), radius] }
        return VesselTreeDescription(name: "straight", vessels: [VesselDescription(name: "tube", parent: nil, points: points)])
    }

    /// An aortic arch with its three supra-aortic branches: ascending aorta (12 → 11 mm),
    /// the arch (a half turn of 30 mm radius from anterior-right to posterior-left), the descending aorta
    /// (11 → 9 mm), and the brachiocephalic trunk (6 mm, dividing into the right subclavian and
    /// right common carotid), the left common carotid (4 mm) and the left subclavian (5 mm).
    public static func aorticArch() -> VesselTreeDescription {
        func lerp(_ a: Double, _ b: Double, _ t: Double) -> Double { a + (b - a) * t }
        var aorta: [[Double]] = []
        // Ascending: 50 mm up from the root.
        for k in 0..<10 {
            let t = Double(k) / 10
            aorta.append([-15, 0, 50 * t, lerp(12, 11.5, t)])
        }
        // Arch: θ 0…π, a 30 mm half turn from anterior-right to posterior-left (30 mm to the left).
        let arch = (0...24).map { k -> [Double] in
            let th = Double.pi * Double(k) / 24
            return [-15 + 30 * th / .pi, 30 - 30 * cosine(th), 50 + 30 * sine(th), lerp(11.5, 11, Double(k) / 24)]
        }
        aorta += arch
        // Descending: 200 mm down.
        for k in 1...20 {
            let t = Double(k) / 20
            aorta.append([15, 60, 50 - 200 * t, lerp(11, 9, t)])
        }
        func archPoint(_ fraction: Double) -> [Double] {
            let th = Double.pi * fraction
            return [-15 + 30 * fraction, 30 - 30 * cosine(th), 50 + 30 * sine(th)]
        }
        /// A branch from the arch at `fraction` of the half turn, rising with a sideways lean.
        func branch(_ name: String, parent: String, from start: [Double], direction: Vec3, length: Double,
                    radius: (Double, Double), curl: Double = 0) -> VesselDescription {
            let d = direction * (1 / direction.length)
            let n = 16
            let points = (0...n).map { k -> [Double] in
                let t = Double(k) / Double(n)
                let s = length * t
                return [start[0] + d.x * s + curl * sine(t * .pi), start[1] + d.y * s, start[2] + d.z * s,
                        radius.0 + (radius.1 - radius.0) * t]
            }
            return VesselDescription(name: name, parent: parent, points: points)
        }
        let bcStart = archPoint(0.3)
        let brachiocephalic = branch("brachiocephalic", parent: "aorta", from: bcStart, direction: Vec3(-0.45, -0.1, 1), length: 45, radius: (6, 5.5))
        let bcEnd = brachiocephalic.points.last!
        let rightSubclavian = branch("right_subclavian", parent: "brachiocephalic", from: bcEnd, direction: Vec3(-1, 0.1, 0.25), length: 60, radius: (4.5, 4), curl: 3)
        let rightCarotid = branch("right_common_carotid", parent: "brachiocephalic", from: bcEnd, direction: Vec3(-0.05, 0, 1), length: 90, radius: (3.8, 3.5))
        let leftCarotid = branch("left_common_carotid", parent: "aorta", from: archPoint(0.48), direction: Vec3(0.1, 0, 1), length: 100, radius: (4, 3.5), curl: 2)
        let leftSubclavian = branch("left_subclavian", parent: "aorta", from: archPoint(0.64), direction: Vec3(0.5, 0.1, 1), length: 70, radius: (5, 4.5), curl: 4)
        // The targets in the order the first campaigns ran them, so that run indices keep their setups.
        return VesselTreeDescription(name: "arch", vessels: [
            VesselDescription(name: "aorta", parent: nil, points: aorta),
            brachiocephalic, rightSubclavian, rightCarotid, leftCarotid, leftSubclavian,
        ], notes: "A geometric aortic arch with its three supra-aortic branches, from a femoral sheath in the descending aorta.",
        targets: [PhantomTarget(vessel: "left_subclavian", depthMM: 25), PhantomTarget(vessel: "left_common_carotid", depthMM: 25),
                  PhantomTarget(vessel: "brachiocephalic", depthMM: 25), PhantomTarget(vessel: "left_subclavian", depthMM: 40)])
    }

    /// A guiding catheter's way into `coronaryTree()`: in from the aorta (not part of the tree,
    /// and outside a field centred on the artery) to the ostium, then down the main artery.
    /// `ostium` is the arc length (mm) at which the route enters the artery.
    public static func coronaryGuideRoute() -> (route: [Vec3], ostium: Double) {
        let main = coronaryTree().vessels[0].points.map { Vec3($0[0], $0[1], $0[2]) }
        let entry = (0..<8).map { k in main[0] + Vec3(-120 + 15 * Double(k), 0, 60 - 7.5 * Double(k)) }
        return (entry + main, Polyline.length(entry))
    }

    /// A coronary-like tree: a tortuous main artery (2.2 → 1.5 mm over 90 mm) with a proximal
    /// side branch and a mid diagonal, both tortuous.
    public static func coronaryTree() -> VesselTreeDescription {
        func tortuous(from start: [Double], along axis: Vec3, side: Vec3, up: Vec3, length: Double, radius: (Double, Double),
                      waves: Double, amplitude: Double, n: Int = 60) -> [[Double]] {
            (0...n).map { k in
                let t = Double(k) / Double(n)
                let s = length * t
                let w1 = amplitude * sine(2 * .pi * waves * t)
                let w2 = 0.6 * amplitude * sine(2 * .pi * (waves * 0.7) * t + 1)
                let p = Vec3(start[0], start[1], start[2]) + axis * s + side * w1 + up * w2
                return [p.x, p.y, p.z, radius.0 + (radius.1 - radius.0) * t]
            }
        }
        let main = tortuous(from: [0, 0, 0], along: Vec3(1, 0, 0), side: Vec3(0, 1, 0), up: Vec3(0, 0, 1), length: 90, radius: (2.2, 1.5), waves: 3, amplitude: 4)
        let circumflex = tortuous(from: Array(main[4].prefix(3)), along: Vec3(0.2, -0.98, 0), side: Vec3(1, 0, 0), up: Vec3(0, 0, 1),
                                  length: 60, radius: (2.0, 1.5), waves: 2, amplitude: 3, n: 40)
        let diagonal = tortuous(from: Array(main[24].prefix(3)), along: Vec3(0.7, 0.7, 0), side: Vec3(-0.7, 0.7, 0), up: Vec3(0, 0, 1),
                                length: 40, radius: (1.7, 1.5), waves: 2, amplitude: 2.5, n: 30)
        // The catheter comes in through the ostium, the main artery's first point, as a guiding
        // catheter engaged there delivers it; the targets lie past the tortuous turns. It is a
        // microcatheter, its bending section just out of the guide at the start: the 2 mm
        // catheter wedges in the 1.5–2.2 mm lumen radius, and started 60 mm in, its distal part
        // lies past both side branches' take-offs (6 and 36 mm).
        return VesselTreeDescription(name: "coronary", vessels: [
            VesselDescription(name: "main", parent: nil, points: main),
            VesselDescription(name: "circumflex", parent: "main", points: circumflex),
            VesselDescription(name: "diagonal", parent: "main", points: diagonal),
        ], notes: "A geometric coronary-like tree entered at the ostium (the main artery's first point).",
        targets: [PhantomTarget(vessel: "main", depthMM: 50), PhantomTarget(vessel: "circumflex", depthMM: 25),
                  PhantomTarget(vessel: "diagonal", depthMM: 20), PhantomTarget(vessel: "main", depthMM: 80)],
        sheath: .rootStart, robot: "robots/lumen-1s-micro.yaml", startInsertionMM: 0)
    }
}
