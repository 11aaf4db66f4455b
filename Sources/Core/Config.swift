import Foundation
import Yams

/// One thing wrong with a configuration file, at a dotted field path (`sections[1].length_mm`).
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String
    public init(field: String, message: String) { self.field = field; self.message = message }
    public var description: String { "\(field): \(message)" }
}

/// Why a configuration file was refused. Every case names the file; field errors name the field.
public enum ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be read at all.
    case unreadable(file: String, reason: String)
    /// The file is not valid JSON or YAML.
    case malformed(file: String, reason: String)
    /// The file's extension is neither .json, .yaml nor .yml.
    case unsupportedFormat(file: String)
    /// The file parsed but its fields are missing, of the wrong type, unknown or out of range.
    case invalid(file: String, problems: [ConfigProblem])

    public var file: String {
        switch self {
        case .unreadable(let f, _), .malformed(let f, _), .unsupportedFormat(let f), .invalid(let f, _): f
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let f, let r): "\(f): cannot read: \(r)"
        case .malformed(let f, let r): "\(f): not valid JSON/YAML: \(r)"
        case .unsupportedFormat(let f): "\(f): unsupported format (use .json, .yaml or .yml)"
        case .invalid(let f, let problems):
            "\(f): invalid configuration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
        }
    }
}

/// Collects range and consistency problems while a configuration validates itself.
public struct ConfigValidator {
    public private(set) var problems: [ConfigProblem] = []
    public init() {}

    public mutating func fail(_ field: String, _ message: String) {
        problems.append(ConfigProblem(field: field, message: message))
    }

    /// Records a problem at `field` unless `condition` holds.
    public mutating func check(_ condition: Bool, _ field: String, _ message: @autoclosure () -> String) {
        if !condition { fail(field, message()) }
    }

    /// A finite number within `range`.
    public mutating func check(_ value: Double, in range: ClosedRange<Double>, _ field: String) {
        if !value.isFinite {
            fail(field, "must be a finite number, got \(value)")
        } else if !range.contains(value) {
            fail(field, "must be within \(range.lowerBound)…\(range.upperBound), got \(value)")
        }
    }

    /// A finite number greater than zero.
    public mutating func checkPositive(_ value: Double, _ field: String) {
        if !(value.isFinite && value > 0) { fail(field, "must be a finite number > 0, got \(value)") }
    }
}

/// A configuration that can check its own values after decoding.
public protocol ValidatedConfig: Decodable {
    /// Records every out-of-range or inconsistent value; field paths as in the file.
    func validate(into v: inout ConfigValidator)
}

/// Loads JSON or YAML configuration files into validated types.
public enum ConfigLoader {
    /// Reads, decodes and validates `path`. JSON for `.json`, YAML for `.yaml`/`.yml`.
    public static func load<T: ValidatedConfig>(_ type: T.Type, from path: String) throws(ConfigError) -> T {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(file: path, reason: (error as NSError).localizedDescription)
        }
        let ext = (path as NSString).pathExtension.lowercased()
        switch ext {
        case "json": return try decode(type, json: data, file: path)
        case "yaml", "yml":
            guard let text = String(data: data, encoding: .utf8) else {
                throw .malformed(file: path, reason: "not UTF-8 text")
            }
            return try decode(type, yaml: text, file: path)
        default: throw .unsupportedFormat(file: path)
        }
    }

    /// Decodes and validates JSON; `file` names the source in errors.
    public static func decode<T: ValidatedConfig>(_ type: T.Type, json: Data, file: String) throws(ConfigError) -> T {
        do {
            _ = try JSONSerialization.jsonObject(with: json)
        } catch {
            throw .malformed(file: file, reason: (error as NSError).localizedDescription)
        }
        return try finish(file: file) { try JSONDecoder().decode(T.self, from: json) }
    }

    /// Decodes and validates YAML; `file` names the source in errors.
    public static func decode<T: ValidatedConfig>(_ type: T.Type, yaml: String, file: String) throws(ConfigError) -> T {
        do {
            _ = try Yams.load(yaml: yaml)
        } catch {
            throw .malformed(file: file, reason: "\(error)")
        }
        return try finish(file: file) { try YAMLDecoder().decode(T.self, from: yaml) }
    }

    private static func finish<T: ValidatedConfig>(file: String, _ decode: () throws -> T) throws(ConfigError) -> T {
        let value: T
        do {
            value = try decode()
        } catch let error as DecodingError {
            throw .invalid(file: file, problems: [problem(from: error)])
        } catch {
            throw .malformed(file: file, reason: "\(error)")
        }
        var validator = ConfigValidator()
        value.validate(into: &validator)
        if !validator.problems.isEmpty { throw .invalid(file: file, problems: validator.problems) }
        return value
    }

    static func problem(from error: DecodingError) -> ConfigProblem {
        switch error {
        case .keyNotFound(let key, let ctx):
            return ConfigProblem(field: fieldPath(ctx.codingPath + [key]), message: "missing")
        case .typeMismatch(let type, let ctx):
            return ConfigProblem(field: fieldPath(ctx.codingPath), message: "expected \(describe(type))")
        case .valueNotFound(let type, let ctx):
            return ConfigProblem(field: fieldPath(ctx.codingPath), message: "expected \(describe(type)), got null")
        case .dataCorrupted(let ctx):
            return ConfigProblem(field: fieldPath(ctx.codingPath), message: ctx.debugDescription)
        @unknown default:
            return ConfigProblem(field: "?", message: "\(error)")
        }
    }

    /// `sections[1].length_mm` from a coding path.
    public static func fieldPath(_ path: [any CodingKey]) -> String {
        var out = ""
        for key in path {
            if let i = key.intValue, key.stringValue.hasPrefix("Index") || key.stringValue == "\(i)" {
                out += "[\(i)]"
            } else {
                out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return out.isEmpty ? "(top level)" : out
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Double.Type, is Float.Type: "a number"
        case is Int.Type: "an integer"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        default: "\(type)".contains("Array") ? "a list" : "\(type)"
        }
    }
}

private struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { self.stringValue = "\(intValue)"; self.intValue = intValue }
}

public extension Decoder {
    /// Fails when the object being decoded has a field that `Keys` does not name, so a typo in
    /// a file is an error rather than a silently ignored field. Thrown as a `DecodingError`,
    /// which every decoder passes through unchanged.
    func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let known = Set(Keys.allCases.map(\.stringValue))
        let container = try container(keyedBy: AnyCodingKey.self)
        for key in container.allKeys where !known.contains(key.stringValue) {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath + [key], debugDescription: "unknown field"))
        }
    }
}
