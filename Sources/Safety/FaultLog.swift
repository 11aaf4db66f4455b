import Core
import Foundation

/// The monitor's fault log: a ring of preallocated records that the monitor cycle appends to
/// without allocating, drained to text or JSON by the process outside the cycle. When the ring
/// is full the oldest records are overwritten and counted, never silently.
public struct FaultLog: ~Copyable {
    public let capacity: Int
    private let storage: UnsafeMutablePointer<FaultRecord>
    private var head = 0
    private var count = 0
    /// Records overwritten before they were drained.
    public private(set) var overwritten = 0
    /// Records ever appended.
    public private(set) var total = 0

    public init(capacity: Int = 1024) {
        precondition(capacity > 0)
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
        storage.initialize(repeating: .empty, count: capacity)
    }

    deinit {
        storage.deinitialize(count: capacity)
        storage.deallocate()
    }

    /// Appends the faults that latched in `verdict`'s step.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func append(_ verdict: Verdict) {
        for i in 0..<verdict.newFaultCount { append(verdict.newFault(i)) }
    }

    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func append(_ record: FaultRecord) {
        storage[(head + count) % capacity] = record
        total += 1
        if count < capacity {
            count += 1
        } else {
            head = (head + 1) % capacity
            overwritten += 1
        }
    }

    /// Removes and returns the records in order (allocates; not in the cycle).
    public mutating func drain() -> [FaultRecord] {
        var out: [FaultRecord] = []
        out.reserveCapacity(count)
        for i in 0..<count { out.append(storage[(head + i) % capacity]) }
        head = 0
        count = 0
        return out
    }
}

public extension FaultRecord {
    /// One line for a human: time, check, joint, value against limit, reaction.
    func describe(jointNames: [String] = []) -> String {
        var s = String(format: "t=%.3f s  %@", Double(time) * 1e-9, check.key)
        if index >= 0 {
            let i = Int(index)
            if check == .noGo {
                s += " zone \(i)"
            } else if check == .lumen || check == .imageStale {
                // The tip evidence that tripped (docs/safety/tip-evidence.md), not a joint.
                s += ["  (length out of the sheath)", "  (image tip)", "  (image tip beyond the catheter's reach)"][min(i, 2)]
            } else {
                s += " joint \(i < jointNames.count ? jointNames[i] : String(i))"
            }
        }
        if check != .deadman, check != .startup, check != .invalidInput {
            s += String(format: "  value %.4g %@ (limit %.4g)", value, check.unit, limit)
        }
        s += "  → stop category \(category.rawValue)"
        if !check.latches { s += " while the condition lasts (not latched)" }
        return s
    }

    /// The record as JSON-ready fields.
    var json: [String: String] {
        ["time_s": String(format: "%.6f", Double(time) * 1e-9), "check": check.key, "index": String(index),
         "value": String(format: "%.6g", value), "limit": String(format: "%.6g", limit), "unit": check.unit,
         "category": String(category.rawValue)]
    }
}
