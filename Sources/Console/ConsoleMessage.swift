// The page → server message format and its decoder. Standard library only, so the fuzz harness
// (fuzz/ConsoleMessageFuzz.swift) compiles this file alone.
//
// A message is one short line of ASCII words separated by single spaces, for example
// `hb 42`, `jj 0.5 0 0 0`, `tp 0 128.5 90`, `stop`. Text rather than JSON: the grammar is small
// enough to check completely, every number is range-checked here, and nothing is allocated in
// proportion to the input beyond its bounded length.

/// What the page asked for, decoded and range-checked (field ranges that depend on the running
/// robot, such as the number of axes or a plane's size, are checked by the gate).
public enum ConsoleCommand: Sendable, Equatable {
    /// Deadman heartbeat while held; `sequence` counts up on the page.
    case heartbeat(sequence: UInt64)
    /// The deadman was let go (button up, key up, pointer left).
    case release
    /// The page became hidden (`visible == false`) or visible again.
    case visibility(visible: Bool)
    case takeLease
    case releaseLease
    /// A supervisor takes the lease from whoever holds it (logged).
    case overrideLease
    /// Joint jog demand, fractions of each axis's velocity limit, each −1…1.
    case jointJog([Double])
    /// Tip jog: hand displacement (mm), each component within ±`ConsoleMessage.maxHandMillimetres`.
    case tipJog(x: Double, y: Double, z: Double, clutch: Bool)
    /// A target clicked on plane `plane` at pixel (`x`, `y`).
    case targetPixel(plane: UInt8, x: Double, y: Double)
    /// A target from the runtime's list, by name.
    case namedTarget(String)
    /// Ask for hold or jog.
    case mode(ConsoleModeRequest)
    /// Motion scaling for jog demands, `ConsoleMessage.scaleRange`.
    case scale(Double)
    case stop
    case acknowledge
    /// The page drew frame `index` of `plane` (for frame → screen latency).
    case shown(plane: UInt8, index: UInt64)
}

public enum ConsoleModeRequest: String, Sendable, Equatable {
    case hold
    case jog
}

/// Why a message was refused; the text is sent back to the page as is.
public enum ConsoleMessageError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case tooLong(Int)
    case notText
    case unknownCommand(String)
    case wrongArgumentCount(command: String, expected: String, got: Int)
    case badNumber(command: String, field: String)
    case outOfRange(command: String, field: String)

    public var description: String {
        switch self {
        case .empty: "empty message"
        case .tooLong(let n): "message of \(n) bytes is longer than \(ConsoleMessage.maxLength)"
        case .notText: "message is not printable ASCII"
        case .unknownCommand(let c): "unknown command '\(c)'"
        case .wrongArgumentCount(let c, let e, let g): "\(c) takes \(e) arguments, got \(g)"
        case .badNumber(let c, let f): "\(c): \(f) is not a number"
        case .outOfRange(let c, let f): "\(c): \(f) is out of range"
        }
    }
}

public enum ConsoleMessage {
    /// Longest message accepted, in bytes.
    public static let maxLength = 200
    /// Most joint jog values (JointVector's capacity).
    public static let maxJoints = 8
    /// Largest hand displacement in one tip jog message (mm).
    public static let maxHandMillimetres = 20.0
    /// Largest pixel coordinate accepted before the gate checks the plane's size.
    public static let maxPixel = 16384.0
    public static let scaleRange = 0.05...1.0
    /// Longest target name.
    public static let maxNameLength = 64

    /// Decodes one message. Never traps: every failure is a `ConsoleMessageError`.
    public static func decode<Bytes: Collection>(_ bytes: Bytes) -> Result<ConsoleCommand, ConsoleMessageError> where Bytes.Element == UInt8 {
        let n = bytes.count
        if n == 0 { return .failure(.empty) }
        if n > maxLength { return .failure(.tooLong(n)) }
        if bytes.contains(where: { $0 < 0x20 || $0 > 0x7E }) { return .failure(.notText) }
        let text = String(decoding: bytes, as: UTF8.self)
        let words = text.split(separator: " ", omittingEmptySubsequences: true)
        guard let head = words.first else { return .failure(.empty) }
        let args = words.dropFirst()
        let name = String(head.prefix(16))

        func count(_ expected: Int) -> ConsoleMessageError? {
            args.count == expected ? nil : .wrongArgumentCount(command: name, expected: String(expected), got: args.count)
        }
        func number(_ s: Substring, _ field: String, in range: ClosedRange<Double>) -> Result<Double, ConsoleMessageError> {
            guard s.count <= 32, let v = Double(s), v.isFinite else { return .failure(.badNumber(command: name, field: field)) }
            guard range.contains(v) else { return .failure(.outOfRange(command: name, field: field)) }
            return .success(v)
        }
        func whole(_ s: Substring, _ field: String) -> Result<UInt64, ConsoleMessageError> {
            guard s.count <= 20, let v = UInt64(s) else { return .failure(.badNumber(command: name, field: field)) }
            return .success(v)
        }
        func flag(_ s: Substring, _ field: String) -> Result<Bool, ConsoleMessageError> {
            switch s {
            case "0": .success(false)
            case "1": .success(true)
            default: .failure(.badNumber(command: name, field: field))
            }
        }
        func plane(_ s: Substring) -> Result<UInt8, ConsoleMessageError> {
            guard s.count <= 3, let v = UInt8(s) else { return .failure(.badNumber(command: name, field: "plane")) }
            guard v < 8 else { return .failure(.outOfRange(command: name, field: "plane")) }
            return .success(v)
        }

        do throws(ConsoleMessageError) {
            switch head {
            case "hb":
                if let e = count(1) { return .failure(e) }
                return .success(.heartbeat(sequence: try whole(args[args.startIndex], "sequence").get()))
            case "release":
                if let e = count(0) { return .failure(e) }
                return .success(.release)
            case "visible":
                if let e = count(1) { return .failure(e) }
                return .success(.visibility(visible: try flag(args[args.startIndex], "visible").get()))
            case "lease":
                if let e = count(1) { return .failure(e) }
                switch args[args.startIndex] {
                case "take": return .success(.takeLease)
                case "release": return .success(.releaseLease)
                case "override": return .success(.overrideLease)
                default: return .failure(.outOfRange(command: name, field: "action"))
                }
            case "jj":
                guard (1...maxJoints).contains(args.count) else {
                    return .failure(.wrongArgumentCount(command: name, expected: "1…\(maxJoints)", got: args.count))
                }
                var values: [Double] = []
                values.reserveCapacity(args.count)
                for (i, a) in args.enumerated() { values.append(try number(a, "axis \(i)", in: -1...1).get()) }
                return .success(.jointJog(values))
            case "tj":
                if let e = count(4) { return .failure(e) }
                let r = -maxHandMillimetres...maxHandMillimetres
                let i = args.startIndex
                return .success(.tipJog(x: try number(args[i], "x", in: r).get(), y: try number(args[i + 1], "y", in: r).get(),
                                        z: try number(args[i + 2], "z", in: r).get(), clutch: try flag(args[i + 3], "clutch").get()))
            case "tp":
                if let e = count(3) { return .failure(e) }
                let i = args.startIndex
                return .success(.targetPixel(plane: try plane(args[i]).get(), x: try number(args[i + 1], "x", in: 0...maxPixel).get(),
                                             y: try number(args[i + 2], "y", in: 0...maxPixel).get()))
            case "tn":
                if let e = count(1) { return .failure(e) }
                let t = args[args.startIndex]
                guard t.count <= maxNameLength else { return .failure(.outOfRange(command: name, field: "name")) }
                return .success(.namedTarget(String(t)))
            case "mode":
                if let e = count(1) { return .failure(e) }
                guard let m = ConsoleModeRequest(rawValue: String(args[args.startIndex])) else {
                    return .failure(.outOfRange(command: name, field: "mode"))
                }
                return .success(.mode(m))
            case "scale":
                if let e = count(1) { return .failure(e) }
                return .success(.scale(try number(args[args.startIndex], "scale", in: scaleRange).get()))
            case "stop":
                // A stop is never refused for its form: extra words are ignored.
                return .success(.stop)
            case "ack":
                if let e = count(0) { return .failure(e) }
                return .success(.acknowledge)
            case "shown":
                if let e = count(2) { return .failure(e) }
                let i = args.startIndex
                return .success(.shown(plane: try plane(args[i]).get(), index: try whole(args[i + 1], "index").get()))
            default:
                return .failure(.unknownCommand(name))
            }
        } catch {
            return .failure(error)
        }
    }
}
