import Yams

/// Why a YAML text was refused before decoding.
public struct YAMLStructureError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where, when the parser could tell.
    public var location: TextLocation?
    public var message: String
    public var description: String { location.map { "\($0): \(message)" } ?? message }
}

/// YAML for configuration files: one document, no anchors or aliases, keys unique.
///
/// Aliases are what make a 400-byte "billion laughs" file expand to gigabytes: each alias is a
/// copy of the anchored node, and nested aliases multiply. A limits or robot file never needs
/// them, and a reviewed file whose values come from elsewhere in it is harder to review, so they
/// are refused outright rather than expanded up to a bound. Parsing itself is bounded by the
/// parser (1,000 nesting levels) and by the loader's size cap.
public enum StrictYAML {
    /// Parses `text` into a node tree without constructing any values.
    ///
    /// Composing is cheap even for a billion-laughs file: an alias shares the anchored node
    /// rather than copying it, so the refusal comes before anything expands.
    public static func compose(_ text: String) throws(YAMLStructureError) -> Node {
        if let at = firstAnchorToken(in: text) { throw anchorRefusal(at: at, name: nil) }
        // Nodes hold their anchors weakly; the parser owns them. It must outlive the walk.
        let parser: Parser
        let root: Node?
        do {
            parser = try Parser(yaml: text)
            root = try parser.singleRoot()
        } catch let error as YamlError {
            throw describe(error)
        } catch {
            throw YAMLStructureError(location: nil, message: "\(error)")
        }
        guard let root else { throw YAMLStructureError(location: TextLocation(line: 1, column: 1), message: "the file is empty") }
        let anchored = withExtendedLifetime(parser) { firstAnchor(in: root).map { ($0.mark, $0.anchor?.rawValue ?? "") } }
        if let (mark, name) = anchored { throw anchorRefusal(at: mark.map { TextLocation(line: $0.line, column: $0.column) }, name: name) }
        return root
    }

    static func anchorRefusal(at location: TextLocation?, name: String?) -> YAMLStructureError {
        let forms = name.map { "&\($0) / *\($0)" } ?? "&name / *name"
        return YAMLStructureError(location: location,
                                  message: "YAML anchors and aliases (\(forms)) are not accepted in configuration files; write each value out")
    }

    /// Where the text seems to define an anchor (`&name` where a node may start, outside quotes
    /// and comments), found before parsing. The parser compares mapping keys by hashing them
    /// whole, so an alias used as a key would be expanded by the parser itself; refusing anchors
    /// up front keeps aliases from ever resolving (an alias with no anchor is a parse error).
    /// A plain value with a word starting with `&` after a space is refused too: quote it.
    static func firstAnchorToken(in text: String) -> TextLocation? {
        var line = 1, column = 0
        var quote: Character? = nil
        var inComment = false
        var previous: Character = "\n"
        var iterator = text.makeIterator()
        var current = iterator.next()
        while let c = current {
            let next = iterator.next()
            column += 1
            if c == "\n" || c == "\r\n" {
                line += 1
                column = 0
                inComment = false
            } else if inComment {
                // rest of the line
            } else if let q = quote {
                if c == "\\", q == "\"", next != nil {
                    // The escaped character is skipped whole.
                    column += 1
                    previous = next ?? c
                    current = iterator.next()
                    continue
                }
                if c == q { quote = nil }
            } else {
                let boundary = previous.isWhitespace || "[{,:-?".contains(previous)
                if c == "#", previous.isWhitespace {
                    inComment = true
                } else if (c == "'" || c == "\""), boundary {
                    quote = c
                } else if c == "&", boundary, let n = next, !n.isWhitespace, !",[]{}".contains(n) {
                    return TextLocation(line: line, column: column)
                }
            }
            previous = c
            current = next
        }
        return nil
    }

    /// The first node in document order that carries an anchor. An alias is the anchored node
    /// itself, so the anchor's definition is always met first and the walk ends before any
    /// shared subtree is visited twice.
    static func firstAnchor(in root: Node) -> Node? {
        var stack: [Node] = [root]
        while let node = stack.popLast() {
            if node.anchor != nil { return node }
            switch node {
            case .mapping(let m):
                for (k, v) in m.reversed() { stack.append(v); stack.append(k) }
            case .sequence(let s):
                stack.append(contentsOf: s.reversed())
            case .scalar, .alias:
                break
            }
        }
        return nil
    }

    /// The parser's error without the copy of the whole text some of them carry.
    static func describe(_ error: YamlError) -> YAMLStructureError {
        func at(_ mark: Mark) -> TextLocation { TextLocation(line: mark.line, column: mark.column) }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let while_ = context.map { " (\($0.text) at \(at($0.mark)))" } ?? ""
            return YAMLStructureError(location: at(mark), message: problem + while_)
        case .duplicatedKeysInMapping(let duplicates, let context):
            let names = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            return YAMLStructureError(location: at(context.mark), message: "duplicate field \(names); each field may appear once")
        case .reader(let problem, let offset, _, _):
            return YAMLStructureError(location: nil, message: problem + (offset.map { " at byte \($0)" } ?? ""))
        default:
            return YAMLStructureError(location: nil, message: "\(error)")
        }
    }
}

extension Node {
    /// The line and column of the value at a field path (`joints[1].name`), or of its nearest
    /// enclosing value (a missing field is reported where its mapping is).
    func location(of field: String) -> TextLocation? {
        var node = self
        var found = mark
        var rest = Substring(field)
        while !rest.isEmpty {
            let child: Node?
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]"), let i = Int(rest[rest.index(after: rest.startIndex)..<close]) else { break }
                rest = rest[rest.index(after: close)...]
                if case .sequence(let s) = node, s.indices.contains(i) { child = s[i] } else { child = nil }
            } else {
                if rest.hasPrefix(".") { rest = rest.dropFirst() }
                let end = rest.firstIndex { $0 == "." || $0 == "[" } ?? rest.endIndex
                let key = String(rest[..<end])
                rest = rest[end...]
                if case .mapping(let m) = node { child = m.first { $0.key.string == key }?.value } else { child = nil }
            }
            guard let child else { break }
            node = child
            found = child.mark ?? found
        }
        return found.map { TextLocation(line: $0.line, column: $0.column) }
    }
}
