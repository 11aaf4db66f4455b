import ArgumentParser
import Core

/// Checks of command-line values, for `validate()`: each command states an option's accepted
/// values in one line, and a refusal names the option, what it accepts and the value given.
/// They run before any work and any side effect, and a refusal is a usage error (exit 64): a
/// value out of range would otherwise trap in arithmetic, hang, or run and report nothing.
package enum Check {
    /// A real number: finite and within `range`.
    package static func number(_ value: Double, _ option: String, in range: ClosedRange<Double>, unit: String = "") throws {
        guard value.isFinite, range.contains(value) else {
            throw ValidationError("\(option) must be a number in \(text(range))\(unit.isEmpty ? "" : " " + unit), got \(text(value))")
        }
    }

    /// A real number when given.
    package static func number(_ value: Double?, _ option: String, in range: ClosedRange<Double>, unit: String = "") throws {
        if let value { try number(value, option, in: range, unit: unit) }
    }

    /// A whole number within `range`.
    package static func count<T: BinaryInteger>(_ value: T, _ option: String, in range: ClosedRange<T>, unit: String = "") throws {
        guard range.contains(value) else {
            throw ValidationError("\(option) must be a whole number in \(range.lowerBound)…\(range.upperBound)\(unit.isEmpty ? "" : " " + unit), got \(value)")
        }
    }

    /// A whole number when given.
    package static func count<T: BinaryInteger>(_ value: T?, _ option: String, in range: ClosedRange<T>, unit: String = "") throws {
        if let value { try count(value, option, in: range, unit: unit) }
    }

    /// One of the listed values.
    package static func oneOf<T: Equatable & CustomStringConvertible>(_ value: T, _ option: String, _ allowed: [T]) throws {
        guard allowed.contains(value) else {
            throw ValidationError("\(option) must be \(list(allowed.map(\.description))), got \(value)")
        }
    }

    /// One of the listed numbers.
    package static func oneOf(_ value: Double, _ option: String, _ allowed: [Double], unit: String = "") throws {
        guard allowed.contains(value) else {
            throw ValidationError("\(option) must be \(list(allowed.map(text)))\(unit.isEmpty ? "" : " " + unit), got \(text(value))")
        }
    }

    /// A folder for results, usable before the work starts (see `OutputPath.checkFolder`); `files`
    /// and `folders` are what the command writes inside it.
    package static func outputFolder(_ path: String, _ option: String, files: [String] = [], folders: [String] = []) throws {
        do { try OutputPath.checkFolder(path, files: files, folders: folders) } catch {
            throw ValidationError("\(option): \(error.description)")
        }
    }

    /// "a, b or c".
    package static func list(_ items: [String]) -> String {
        items.count < 2 ? items.joined() : items.dropLast().joined(separator: ", ") + " or " + items[items.count - 1]
    }

    /// A bound or value as a person writes it: 3600, 0.1, 1e+300, nan.
    package static func text(_ x: Double) -> String {
        x.isFinite && x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : "\(x)"
    }

    package static func text(_ r: ClosedRange<Double>) -> String { "\(text(r.lowerBound))…\(text(r.upperBound))" }
}
