import Testing
@testable import Core

@Suite struct GeometryTests {
    @Test func rotationsAreOrthonormal() {
        for (r, p, y) in [(0.1, -0.7, 2.0), (3.0, 1.2, -0.4), (0.0, 0.0, 0.0)] {
            let m = Mat3.rpy(r, p, y)
            #expect((m.transposed * m).maxAbsDifference(.identity) < 1e-12)
        }
    }

    @Test func skewIsTheCrossProductAndVeeItsInverse() {
        let w = Vec3(0.3, -1.2, 2.5), v = Vec3(-4, 0.5, 1)
        #expect((Mat3.skew(w) * v - w.cross(v)).length < 1e-12)
        #expect((Mat3.skew(w).vee - w).length < 1e-12)
    }

    @Test func rotationZTurnsXIntoY() {
        #expect((Mat3.rotationZ(.pi / 2) * Vec3(1, 0, 0) - Vec3(0, 1, 0)).length < 1e-12)
        #expect((Mat3.rotationY(.pi / 2) * Vec3(0, 0, 1) - Vec3(1, 0, 0)).length < 1e-12)
        #expect((Mat3.rotationX(.pi / 2) * Vec3(0, 1, 0) - Vec3(0, 0, 1)).length < 1e-12)
    }

    @Test func poseCompositionAppliesRightThenLeft() {
        let a = Pose(rotation: .rotationZ(0.5), translation: Vec3(1, 2, 3))
        let b = Pose(rotation: .rotationX(-0.2), translation: Vec3(-1, 0, 4))
        let p = Vec3(0.3, 0.4, 0.5)
        #expect(((a * b).transform(p) - a.transform(b.transform(p))).length < 1e-12)
    }

    @Test func jointVectorHoldsUpToItsCapacityInline() {
        var v = JointVector(count: 20, repeating: 1)
        #expect(v.count == JointVector.capacity)
        v[3] = .nan
        #expect(!v.isFinite)
        #expect(JointVector([1, 2, 3]).array == [1, 2, 3])
        #expect(JointVector([1, 2]) != JointVector([1, 2, 0]))
    }

    @Test func roundingToCountsSaturatesAndMapsNaNToZero() {
        #expect(Int32(roundingSaturating: 2.5) == 3)
        #expect(Int32(roundingSaturating: -2.5) == -3)
        #expect(Int32(roundingSaturating: 1e12) == .max)
        #expect(Int32(roundingSaturating: -1e12) == .min)
        #expect(Int32(roundingSaturating: .nan) == 0)
    }
}
