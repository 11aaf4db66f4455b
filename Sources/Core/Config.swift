import Foundation
import Yams

/// One thing wrong with a configuration file, at a dotted field path (`sections[1].length_mm`).
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String
    /// Where in the file the field is (or its enclosing object, for a missing field), when known.
    public var location: TextLocation?
    public init(field: String, message: String, location: TextLocation? = nil) {
        self.field = field
        self.message = message
        self.location = location
    }
    public var description: String { "\(field)\(location.map { " (\($0))" } ?? ""): \(message)" }

    /// The same problem is the same field and message; where the file puts it is for the reader.
    public static func == (a: ConfigProblem, b: ConfigProblem) -> Bool { a.field == b.field && a.message == b.message }
}

/// Why a configuration file was refused. Every case names the file; field errors name the field.
public enum ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be read at all.
    case unreadable(file: String, reason: String)
    /// The file is not valid JSON or YAML, or uses YAML that configuration files may not
    /// (anchors, aliases); the reason names the line and column where the parser could tell.
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

    /// What went wrong, fit for a terminal: characters that a terminal would act on rather
    /// than show (escape sequences in a key or a path) are written as `\u{1B}`.
    public var description: String { Self.printable(rawDescription) }

    private var rawDescription: String {
        switch self {
        case .unreadable(let f, let r): "\(f): cannot read: \(r)"
        case .malformed(let f, let r): "\(f): \(r)"
        case .unsupportedFormat(let f): "\(f): unsupported format (use .json, .yaml or .yml)"
        case .invalid(let f, let problems):
            "\(f): invalid configuration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
        }
    }
}

extension ConfigError {
    /// `text` with control and formatting characters other than newline escaped.
    static func printable(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar != "\n", ConfigValidator.isUnprintable(scalar) {
                out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16, uppercase: true))}".unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
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

    /// A finite number within `range`, in `unit` when given (named in the message).
    public mutating func check(_ value: Double, in range: ClosedRange<Double>, _ field: String, _ unit: String = "") {
        let u = unit.isEmpty ? "" : " \(unit)"
        if !value.isFinite {
            fail(field, "must be a finite number within \(range.lowerBound)…\(range.upperBound)\(u), got \(value)")
        } else if !range.contains(value) {
            fail(field, "must be within \(range.lowerBound)…\(range.upperBound)\(u), got \(value)")
        }
    }

    /// The longest name accepted: names are labels for people and logs, not documents.
    public static let maxNameLength = 80

    /// A name that is safe to print: not empty, at most `maxNameLength` characters, and free of
    /// control and bidirectional-formatting characters, which would otherwise reach a terminal
    /// or log raw (an escape sequence can rewrite what an operator sees).
    public mutating func checkName(_ name: String, _ field: String) {
        if name.isEmpty { return fail(field, "must not be empty") }
        if name.count > Self.maxNameLength { return fail(field, "must be at most \(Self.maxNameLength) characters, got \(name.count)") }
        for (offset, scalar) in name.unicodeScalars.enumerated() where Self.isUnprintable(scalar) {
            return fail(field, "must not contain control characters, found U+\(String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 4)) at character \(offset + 1)")
        }
    }

    static func isUnprintable(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned: true
        default: false
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

/// Loads JSON or YAML configuration files into validated types. Every configuration file the
/// stack reads (robot files, safety limits, C-arm geometry, vessel trees) comes through here, so
/// each gets the same defences:
/// - only a regular file is opened (a directory, FIFO or device is refused at once, never read);
/// - at most `maxFileBytes` (1 MiB) is read: real files are a few KiB;
/// - JSON is checked strictly first: syntax errors name line and column, a field repeated in one
///   object is refused (parsers disagree on which copy wins), nesting is bounded;
/// - YAML anchors and aliases are refused (a 400-byte "billion laughs" file would otherwise
///   expand to gigabytes), as are repeated fields;
/// - fields the format does not know are refused (each type's `rejectUnknownKeys`), then every
///   value is range-checked by the type's `validate`.
public enum ConfigLoader {
    /// The largest configuration file read, in bytes.
    public static let maxFileBytes = 1 << 20

    /// Reads, decodes and validates `path`. JSON for `.json`, YAML for `.yaml`/`.yml`.
    public static func load<T: ValidatedConfig>(_ type: T.Type, from path: String) throws(ConfigError) -> T {
        try loadWithBytes(type, from: path).value
    }

    /// As `load`, also returning the exact bytes that were validated (for a hash of the file).
    public static func loadWithBytes<T: ValidatedConfig>(_ type: T.Type, from path: String) throws(ConfigError) -> (value: T, bytes: Data) {
        let ext = (path as NSString).pathExtension.lowercased()
        guard ["json", "yaml", "yml"].contains(ext) else { throw .unsupportedFormat(file: path) }
        let data: Data
        do {
            data = try RegularFile.contents(atPath: path, maxBytes: maxFileBytes)
        } catch {
            throw .unreadable(file: path, reason: error.description)
        }
        if ext == "json" { return (try decode(type, json: data, file: path), data) }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw .malformed(file: path, reason: "not UTF-8 text")
        }
        return (try decode(type, yaml: text, file: path), data)
    }

    /// Decodes and validates JSON; `file` names the source in errors.
    public static func decode<T: ValidatedConfig>(_ type: T.Type, json: Data, file: String) throws(ConfigError) -> T {
        guard json.count <= maxFileBytes else { throw .unreadable(file: file, reason: RegularFileError.tooLarge(bytes: Int64(json.count), cap: maxFileBytes).description) }
        guard String(validating: json, as: UTF8.self) != nil else { throw .malformed(file: file, reason: "not UTF-8 text") }
        let outline: StrictJSON.Outline
        do {
            outline = try StrictJSON.check(json)
        } catch {
            if error.isDuplicateKey {
                throw .invalid(file: file, problems: [ConfigProblem(field: error.field, message: error.message, location: error.location)])
            }
            throw .malformed(file: file, reason: error.description)
        }
        return try finish(file: file, locate: outline.location(of:)) { try JSONDecoder().decode(T.self, from: json) }
    }

    /// Decodes and validates YAML; `file` names the source in errors.
    public static func decode<T: ValidatedConfig>(_ type: T.Type, yaml: String, file: String) throws(ConfigError) -> T {
        guard yaml.utf8.count <= maxFileBytes else { throw .unreadable(file: file, reason: RegularFileError.tooLarge(bytes: Int64(yaml.utf8.count), cap: maxFileBytes).description) }
        let node: Node
        do {
            node = try StrictYAML.compose(yaml)
        } catch {
            throw .malformed(file: file, reason: error.description)
        }
        return try finish(file: file, locate: node.location(of:)) { try YAMLDecoder().decode(T.self, from: node) }
    }

    private static func finish<T: ValidatedConfig>(file: String, locate: (String) -> TextLocation?,
                                                   _ decode: () throws -> T) throws(ConfigError) -> T {
        func located(_ problems: [ConfigProblem]) -> [ConfigProblem] {
            problems.map { p in
                var p = p
                if p.location == nil { p.location = locate(p.field) }
                return p
            }
        }
        let value: T
        do {
            value = try decode()
        } catch let error as DecodingError {
            throw .invalid(file: file, problems: located([problem(from: error)]))
        } catch {
            throw .malformed(file: file, reason: "\(error)")
        }
        var validator = ConfigValidator()
        value.validate(into: &validator)
        if !validator.problems.isEmpty { throw .invalid(file: file, problems: located(validator.problems)) }
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

private extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
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
