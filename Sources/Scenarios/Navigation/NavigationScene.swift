import Control
import Core
import Imaging
import Sim

/// What a navigation needs before its first cycle, built once from its setup and robot: the
/// phantom, the route into the target vessel, the catheter placed at the sheath, the physics
/// model of its rod, and the biplane C-arm. Shared by the simulated-time run and the live
/// runtime, so that both navigate the same scene for the same setup.
public struct NavigationScene: Sendable {
    public let setup: NavigationSetup
    public let tree: VesselTreeDescription
    /// The route (mm) from the sheath to the goal, corners rounded, with the lumen radius at each point.
    public let route: [Vec3]
    public let radii: [Double]
    public let goal: Vec3
    /// The robot with its base at the sheath, along the route's first segment.
    public let robot: RobotDescription
    public let model: CatheterModel
    public let coupling: RodCoupling
    public let rodModel: RodModel
    public let start: JointVector
    /// The two C-arm planes, centred between the settled catheter's tip and the goal.
    public let planes: [CArmGeometry]
    /// The tip (mm) after the start posture settled.
    public let startTip: Vec3
    /// The route's take-off too sharp for a forward push, which the servo engages with a
    /// reverse curve (`PathServo.planHairpin`); nil when there is none or it is off (the default:
    /// measured, it did no better than pushing; docs/navigation-corners.md).
    public let hairpin: HairpinCorner?
    /// rad — take-offs sharper than this (as `HairpinCorner.find` measures them) are engaged
    /// with a reverse curve. In the arch the left subclavian (82°) and the left common carotid
    /// (92°) are taken by pushing in every campaign run; the brachiocephalic (104°) is not: the
    /// 40 mm bending section at its largest bend turns the tip about as far as the trunk
    /// leaves, with nothing to spare. The line between is drawn from those three, so it is a
    /// measured boundary, not a derived one. (The angles are those of the route joining each
    /// branch where it leaves the aorta; an earlier route joined at the nearest listed aortic
    /// point and measured 107°, 91° and 115°.)
    public static let hairpinAngle = 100 * Double.pi / 180

    /// Builds the scene; the physics catheter is made and settled once to place the C-arm.
    public init(_ setup: NavigationSetup, robot: RobotDescription) throws(NavigationError) {
        try setup.validate()
        guard let tree = Phantoms.named(setup.phantom) else { throw .unknownPhantom(setup.phantom) }
        guard !robot.sections.isEmpty, robot.axes.count >= 4 else {
            throw .badSetup(field: "robot", reason: "the physics catheter needs a bending section and four axes (insertion, roll, two tendons)")
        }
        let routeWithRadii: [(point: Vec3, radius: Double)]
        let rawRoute: [(point: Vec3, radius: Double)]
        do { rawRoute = try tree.routeWithRadii(toVessel: setup.vessel, depth: setup.depth) } catch {
            throw .route("\(error)")
        }
        routeWithRadii = CenterlineRoute.roundingCorners(rawRoute)
        // Found on the route as the tree gives it, where a take-off is one vertex.
        hairpin = setup.reverseCurve != true ? nil : HairpinCorner.find(in: rawRoute, sharperThan: Self.hairpinAngle)
        guard routeWithRadii.count >= 2, let goal = routeWithRadii.last?.point else { throw .route("the route has fewer than two points") }
        let route = routeWithRadii.map(\.point)
        let sheath = route[0], axis = (route[1] - route[0]) * (1 / (route[1] - route[0]).length)
        var description = robot
        description.base.positionMM = [sheath.x, sheath.y, sheath.z]
        description.base.rpyRad = NavigationRun.baseRPY(axis: axis)
        let model = CatheterModel(description)
        let section = description.sections[0]
        let coupling = RodCoupling(tendonRadius: section.tendonRadiusMM, bendLength: section.lengthMM, tipLength: description.tipLengthMM)
        let roadmap = VesselTree(tree)
        let rodLength = min(0.6, Polyline.length(route) * 1e-3 + 0.08)
        let rodModel: RodModel
        do {
            rodModel = try RodModel(.catheter(elements: 100, length: rodLength, bendLength: section.lengthMM * 1e-3,
                                              tipLength: description.tipLengthMM * 1e-3,
                                              outerRadius: description.outerDiameterMM * 0.5e-3),
                                    lumen: RodLumen(roadmap), sheathExit: sheath * 1e-3, sheathAxis: axis, sheathNormal: model.basePose.rotation.c0)
        } catch { throw .rod("\(error)") }
        var start = JointVector(count: model.jointCount)
        start[0] = setup.startInsertionMM
        self.setup = setup
        self.tree = tree
        self.route = route
        radii = routeWithRadii.map(\.radius)
        self.goal = goal
        self.robot = description
        self.model = model
        self.coupling = coupling
        self.rodModel = rodModel
        self.start = start
        let settled = Self.physics(robot: description, start: start, model: rodModel, coupling: coupling)
        startTip = settled.tip
        // Biplane C-arms centred between the catheter's start and the target.
        let centre = (startTip + goal) * 0.5
        planes = [setup.primaryDeg, setup.primaryDeg + 90].map {
            CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: setup.detectorPixels, rows: setup.detectorPixels, pixelSpacing: setup.pixelSpacingMM,
                         primaryAngle: $0 * .pi / 180, secondaryAngle: setup.secondaryDeg * .pi / 180, isocenter: centre)
        }
    }

    /// The physics catheter on emulated drives at the start posture, settled.
    public func makePhysics() -> CatheterPhysicsRobot {
        Self.physics(robot: robot, start: start, model: rodModel, coupling: coupling)
    }

    static func physics(robot: RobotDescription, start: JointVector, model: RodModel, coupling: RodCoupling) -> CatheterPhysicsRobot {
        var physics = CatheterPhysicsRobot(axes: robot.axes, start: start, dynamics: .emulated(nil), model: model, coupling: coupling)
        physics.settle(seconds: 0.3)
        return physics
    }

    /// The roadmap's lumen test the measurer checks biplane pairs against.
    /// `planes`: the planes the frames come from, when not the scene's (a DICOM file's geometry).
    public func makeMeasurer(planes: [CArmGeometry]? = nil) throws(NavigationError) -> BiplaneTipMeasurer {
        let roadmap = VesselTree(tree)
        do {
            return try BiplaneTipMeasurer(planes: planes ?? self.planes, settings: setup.measurerSettings) { roadmap.contains($0, within: $1) }
        } catch { throw .guidance(error) }
    }

    /// The image-guided controller for this scene (estimator, path servo, supervisor), reading
    /// its measurements from `measurements`; its estimator keeps `historyLength` cycles, the
    /// oldest acquisition time a measurement may have and still be fused. `tune` adjusts the
    /// servo beyond what the setup says (a test that needs it to give up soon).
    public func makeController(start: JointVector, measurements: consuming MeasurementReceiver, historyLength: Int = 1024,
                               planes: [CArmGeometry]? = nil, tune: (inout PathServo) -> Void = { _ in }) -> ImageGuidedController {
        let planes = planes ?? self.planes
        var servo = PathServo(model: model, route: CenterlineRoute(route, radii: radii))
        // Two tendon pairs bend the tip any way without roll; a servo free to roll winds it
        // to its limit at branches and is left with no way to turn.
        servo.rollWeight = 0
        // The monitor stops the robot above this push at the sheath; the servo stays under it.
        servo.pushLimit = NavigationMonitorLimits.maxInsertionForce
        // Opt-in: measured on the brachiocephalic they did worse than without (docs/navigation-corners.md).
        if setup.cornerManoeuvres == true { servo.withCornerManoeuvres() }
        if let hairpin { servo.planHairpin(hairpin) }
        tune(&servo)
        var estimatorSettings = TipEstimatorSettings()
        estimatorSettings.resetFromPixels = planes.count < 2
        return ImageGuidedController(estimator: TipEstimator(model: model, planes: planes, settings: estimatorSettings, historyLength: historyLength), servo: servo,
                                     limiter: MotionLimiter(model: model, start: start), measurements: measurements)
    }
}
