/// A fixed-capacity vector of joint values, stored inline: copying, reading and writing it
/// never touches the heap, so it can live in the control cycle.
///
/// Joint order throughout Lumen: insertion (mm), roll (rad), then two tendon displacements
/// (mm) per bending section.
public struct JointVector: Equatable, Sendable {
    /// The most joints a robot may have.
    @inlinable public static var capacity: Int { 8 }

    @usableFromInline var storage: InlineArray<8, Double>
    @usableFromInline var _count: Int
    /// Joints in use (0…capacity).
    @inlinable public var count: Int { _count }

    /// `count` joints, all `value`. `count` is clamped into 0…capacity.
    @inlinable public init(count: Int, repeating value: Double = 0) {
        storage = InlineArray(repeating: 0)
        _count = min(max(count, 0), Self.capacity)
        for i in 0..<self.count { storage[i] = value }
    }

    /// The joints of `values`; entries past the capacity are dropped (callers validate first).
    public init(_ values: [Double]) {
        self.init(count: values.count)
        for i in 0..<count { storage[i] = values[i] }
    }

    @inlinable public subscript(i: Int) -> Double {
        get { storage[i] }
        set { storage[i] = newValue }
    }

    /// The joints as an array, for reports and tests (allocates).
    public var array: [Double] { (0..<count).map { storage[$0] } }

    /// True when every joint in use is finite.
    @inlinable public var isFinite: Bool {
        for i in 0..<count where !storage[i].isFinite { return false }
        return true
    }

    /// Largest absolute difference over the joints in use.
    @inlinable public func maxAbsDifference(_ o: JointVector) -> Double {
        var m = 0.0
        for i in 0..<min(count, o.count) { m = max(m, abs(storage[i] - o.storage[i])) }
        return m
    }

    public static func == (a: JointVector, b: JointVector) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count where a.storage[i] != b.storage[i] { return false }
        return true
    }
}

public extension Int32 {
    /// `value` rounded half away from zero, saturating at the ends; NaN maps to 0.
    /// (`Double.rounded()` is avoided: its rounding-rule type costs a metadata access that the
    /// cycle's no-allocation check rejects.)
    @inlinable init(roundingSaturating value: Double) {
        self.init(saturating: value >= 0 ? value + 0.5 : value - 0.5)
    }

    /// The nearest Int32 toward zero of `value`, saturating at the ends; NaN maps to 0.
    @inlinable init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= 2_147_483_647 {
            self = .max
        } else if value <= -2_147_483_648 {
            self = .min
        } else {
            self = Int32(value)
        }
    }
}
