/// Where the drives are: the `--link` argument of the commands.
///
/// - `sim` — the in-process simulated robot;
/// - `serial:/dev/ttyUSB0@1000000` — DriveLink over a serial port at a baud rate (libserialport);
/// - `pty:/dev/pts/7` — DriveLink over a pseudo-terminal whose other end a device simulator or
///   a socat bridge holds (termios; no baud rate, which a pty does not have);
/// - `ethercat:eth1` — EtherCAT on a network interface (raw Ethernet, needs root);
/// - `ethercat-udp:192.0.2.10:34980` — EtherCAT frames over UDP.
public enum LinkAddress: Equatable, Sendable, CustomStringConvertible {
    case sim
    case serial(path: String, baud: Int)
    case pty(path: String)
    case ethercat(interface: String)
    case ethercatUDP(host: String, port: UInt16)

    /// The default baud rate when a serial address gives none.
    public static let defaultBaud = 1_000_000
    /// The UDP port EtherCAT frames travel on (0x88A4).
    public static let ethercatUDPPort: UInt16 = 0x88A4

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case unknownScheme(String)
        case missingTarget(String)
        case badBaud(String)
        case badPort(String)
        case baudOnPty(String)

        public var description: String {
            switch self {
            case .unknownScheme(let s):
                "unknown link '\(s)': use sim, serial:PATH[@BAUD], pty:PATH, ethercat:IFACE or ethercat-udp:HOST[:PORT]"
            case .missingTarget(let s): "link '\(s)' names no device, interface or host"
            case .badBaud(let s): "link '\(s)': the baud rate must be a whole number from 1200 to 12000000"
            case .badPort(let s): "link '\(s)': the port must be a whole number from 1 to 65535"
            case .baudOnPty(let s): "link '\(s)': a pseudo-terminal has no baud rate; give pty:PATH alone"
            }
        }
    }

    public init(parsing text: String) throws(ParseError) {
        if text == "sim" { self = .sim; return }
        guard let colon = text.firstIndex(of: ":") else { throw .unknownScheme(text) }
        let scheme = String(text[..<colon])
        let rest = String(text[text.index(after: colon)...])
        switch scheme {
        case "serial":
            var path = rest
            var baud = Self.defaultBaud
            if let at = rest.lastIndex(of: "@") {
                path = String(rest[..<at])
                guard let b = Int(rest[rest.index(after: at)...]), (1200...12_000_000).contains(b) else {
                    throw .badBaud(text)
                }
                baud = b
            }
            guard !path.isEmpty else { throw .missingTarget(text) }
            self = .serial(path: path, baud: baud)
        case "pty":
            guard !rest.isEmpty else { throw .missingTarget(text) }
            if rest.contains("@") { throw .baudOnPty(text) }
            self = .pty(path: rest)
        case "ethercat":
            guard !rest.isEmpty else { throw .missingTarget(text) }
            self = .ethercat(interface: rest)
        case "ethercat-udp":
            var host = rest
            var port = Self.ethercatUDPPort
            if let c = rest.lastIndex(of: ":") {
                host = String(rest[..<c])
                guard let p = UInt16(rest[rest.index(after: c)...]), p > 0 else { throw .badPort(text) }
                port = p
            }
            guard !host.isEmpty else { throw .missingTarget(text) }
            self = .ethercatUDP(host: host, port: port)
        default:
            throw .unknownScheme(text)
        }
    }

    public var description: String {
        switch self {
        case .sim: "sim"
        case .serial(let p, let b): "serial:\(p)@\(b)"
        case .pty(let p): "pty:\(p)"
        case .ethercat(let i): "ethercat:\(i)"
        case .ethercatUDP(let h, let p): "ethercat-udp:\(h):\(p)"
        }
    }
}
