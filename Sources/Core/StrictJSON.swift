import Foundation

/// A place in a text file: 1-based line and column (columns count characters, not bytes).
public struct TextLocation: Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) { self.line = line; self.column = column }
    public var description: String { "line \(line), column \(column)" }

    /// The location of byte `offset` in UTF-8 `bytes`.
    static func of(offset: Int, in bytes: UnsafeBufferPointer<UInt8>) -> TextLocation {
        var line = 1, column = 1
        for i in 0..<min(offset, bytes.count) {
            let b = bytes[i]
            if b == 0x0A {
                line += 1
                column = 1
            } else if b & 0xC0 != 0x80 {
                column += 1
            }
        }
        return TextLocation(line: line, column: column)
    }
}

/// Why a JSON text was refused before decoding.
public struct JSONStructureError: Error, Sendable, Equatable, CustomStringConvertible {
    public var location: TextLocation
    /// The dotted path of the value being read (`joints[1].name`), empty at the top level.
    public var field: String
    public var message: String
    /// A duplicate key (the text is valid JSON, but ambiguous), as opposed to a syntax error.
    public var isDuplicateKey: Bool

    public var description: String { "\(location): \(field.isEmpty ? "" : "\(field): ")\(message)" }
}

/// A strict reading of JSON (RFC 8259) that only checks structure: it names the line and column
/// of a syntax error, refuses a key repeated within one object (JSON parsers differ on which
/// value wins, and Foundation's keeps one silently), and bounds the nesting depth.
///
/// Decoding itself stays with `JSONDecoder`; this runs first.
public enum StrictJSON {
    /// Deeper than any configuration needs, shallow enough that recursion is harmless.
    public static let maxDepth = 64

    /// Checks `data` and returns where each value starts, by field path.
    @discardableResult
    public static func check(_ data: Data) throws(JSONStructureError) -> Outline {
        let result = data.withUnsafeBytes { raw -> Result<[String: Int], JSONStructureError> in
            var scanner = Scanner(bytes: raw.bindMemory(to: UInt8.self))
            do throws(JSONStructureError) {
                try scanner.document()
                return .success(scanner.positions)
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let positions): return Outline(data: data, positions: positions)
        case .failure(let error): throw error
        }
    }

    /// Where the values of a checked document are.
    public struct Outline: Sendable {
        let data: Data
        /// Byte offset of each value, by field path (`joints[1].name`).
        let positions: [String: Int]

        /// The line and column of the value at `field`, or of its nearest enclosing value
        /// (a missing field is reported where its object is).
        public func location(of field: String) -> TextLocation? {
            var path = Substring(field)
            while !path.isEmpty {
                if let offset = positions[String(path)] {
                    return data.withUnsafeBytes { TextLocation.of(offset: offset, in: $0.bindMemory(to: UInt8.self)) }
                }
                guard let cut = path.lastIndex(where: { $0 == "." || $0 == "[" }) else { break }
                path = path[..<cut]
            }
            return nil
        }
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0
        var path: [String] = []
        var positions: [String: Int] = [:]

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var field: String {
            var out = ""
            for p in path { out += p.hasPrefix("[") || out.isEmpty ? p : ".\(p)" }
            return out
        }

        func fail(_ message: String, at offset: Int? = nil, duplicate: Bool = false) -> JSONStructureError {
            JSONStructureError(location: .of(offset: offset ?? i, in: bytes), field: field, message: message, isDuplicateKey: duplicate)
        }

        var current: UInt8? { i < bytes.count ? bytes[i] : nil }

        func describeCurrent() -> String {
            guard let c = current else { return "the end of the file" }
            if c >= 0x21, c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
            return String(format: "byte 0x%02X", c)
        }

        mutating func skipWhitespace() {
            while let c = current, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 }
        }

        mutating func document() throws(JSONStructureError) {
            skipWhitespace()
            if current == nil { throw fail("the file is empty") }
            try value(depth: 1)
            skipWhitespace()
            if current != nil { throw fail("unexpected \(describeCurrent()) after the end of the document") }
        }

        mutating func value(depth: Int) throws(JSONStructureError) {
            guard depth <= StrictJSON.maxDepth else { throw fail("nested deeper than \(StrictJSON.maxDepth) levels") }
            guard let c = current else { throw fail("expected a value, found the end of the file") }
            if !path.isEmpty { positions[field] = i }
            switch c {
            case UInt8(ascii: "{"): try object(depth: depth)
            case UInt8(ascii: "["): try array(depth: depth)
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: throw fail("expected a value, found \(describeCurrent())")
            }
        }

        mutating func object(depth: Int) throws(JSONStructureError) {
            i += 1
            skipWhitespace()
            if current == UInt8(ascii: "}") { i += 1; return }
            var seen: [String: Int] = [:]
            while true {
                guard current == UInt8(ascii: "\"") else { throw fail("expected a field name in double quotes, found \(describeCurrent())") }
                let keyStart = i
                let key = try string()
                if let first = seen[key] {
                    path.append(key)
                    let firstAt = TextLocation.of(offset: first, in: bytes)
                    throw fail("duplicate field (first at \(firstAt)); each field may appear once", at: keyStart, duplicate: true)
                }
                seen[key] = keyStart
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw fail("expected ':' after the field name, found \(describeCurrent())") }
                i += 1
                skipWhitespace()
                path.append(key)
                try value(depth: depth + 1)
                path.removeLast()
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","):
                    i += 1
                    skipWhitespace()
                case UInt8(ascii: "}"):
                    i += 1
                    return
                default: throw fail("expected ',' or '}' after a field, found \(describeCurrent())")
                }
            }
        }

        mutating func array(depth: Int) throws(JSONStructureError) {
            i += 1
            skipWhitespace()
            if current == UInt8(ascii: "]") { i += 1; return }
            var index = 0
            while true {
                path.append("[\(index)]")
                try value(depth: depth + 1)
                path.removeLast()
                index += 1
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","):
                    i += 1
                    skipWhitespace()
                case UInt8(ascii: "]"):
                    i += 1
                    return
                default: throw fail("expected ',' or ']' after a list element, found \(describeCurrent())")
                }
            }
        }

        /// Reads a string and returns its value (escapes decoded), so keys compare as JSON means them.
        mutating func string() throws(JSONStructureError) -> String {
            i += 1
            var scalars = String.UnicodeScalarView()
            var runStart = i
            func flush(_ s: inout String.UnicodeScalarView, _ from: Int, _ to: Int) {
                if to > from { s.append(contentsOf: String(decoding: UnsafeBufferPointer(rebasing: bytes[from..<to]), as: UTF8.self).unicodeScalars) }
            }
            while true {
                guard let c = current else { throw fail("unterminated string") }
                switch c {
                case UInt8(ascii: "\""):
                    flush(&scalars, runStart, i)
                    i += 1
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    flush(&scalars, runStart, i)
                    i += 1
                    guard let e = current else { throw fail("unterminated string") }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        let escapeAt = i - 2
                        var code = try hex4()
                        if (0xD800...0xDBFF).contains(code) {
                            guard current == UInt8(ascii: "\\"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "u") else {
                                throw fail("a \\u escape of a high surrogate must be followed by a low one", at: escapeAt)
                            }
                            i += 2
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw fail("invalid surrogate pair", at: escapeAt) }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw fail("a lone surrogate in a \\u escape", at: escapeAt) }
                        scalars.append(scalar)
                    default:
                        i -= 1
                        throw fail("invalid escape '\\\(Character(Unicode.Scalar(e)))' in a string", at: i - 1)
                    }
                    runStart = i
                case 0x00..<0x20:
                    throw fail(String(format: "control character 0x%02X inside a string (write it as an escape, or leave it out)", c))
                default:
                    i += 1
                }
            }
        }

        mutating func hex4() throws(JSONStructureError) -> UInt32 {
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard let c = current else { throw fail("unterminated \\u escape") }
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw fail("expected 4 hex digits after \\u")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        mutating func digits() -> Int {
            let start = i
            while let c = current, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { i += 1 }
            return i - start
        }

        mutating func number() throws(JSONStructureError) {
            let start = i
            if current == UInt8(ascii: "-") { i += 1 }
            if current == UInt8(ascii: "0") {
                i += 1
                if let c = current, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { throw fail("a number must not start with 0", at: start) }
            } else if digits() == 0 {
                throw fail("expected digits in a number, found \(describeCurrent())")
            }
            if current == UInt8(ascii: ".") {
                i += 1
                if digits() == 0 { throw fail("expected digits after the decimal point, found \(describeCurrent())") }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                i += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { i += 1 }
                if digits() == 0 { throw fail("expected digits in the exponent, found \(describeCurrent())") }
            }
        }

        mutating func literal(_ word: StaticString) throws(JSONStructureError) {
            let start = i
            let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
            for b in expected {
                guard current == b else { throw fail("expected a value (true, false, null, a number, a string, a list or an object)", at: start) }
                i += 1
            }
        }
    }
}
