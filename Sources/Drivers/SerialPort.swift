import CLibSerialPort
#if canImport(Glibc)
import Glibc
#endif

/// Why a serial port operation failed.
public enum SerialPortError: Error, Equatable, Sendable, CustomStringConvertible {
    /// libserialport does not know the port (wrong path, unplugged, or a pseudo-terminal,
    /// which libserialport 0.1.1 cannot open — use the pty transport for those).
    case notFound(path: String, reason: String)
    case openFailed(path: String, reason: String)
    case configureFailed(path: String, reason: String)
    case io(path: String, reason: String)
    case closed(path: String)

    public var description: String {
        switch self {
        case .notFound(let p, let r): "serial port \(p) not found: \(r)"
        case .openFailed(let p, let r): "cannot open serial port \(p): \(r)"
        case .configureFailed(let p, let r): "cannot configure serial port \(p): \(r)"
        case .io(let p, let r): "serial port \(p) I/O error: \(r)"
        case .closed(let p): "serial port \(p) is closed"
        }
    }
}

/// A hardware serial port through libserialport: 8 data bits, no parity, 1 stop bit,
/// no flow control, at a set baud rate. Reads and writes never block.
public final class SerialPort {
    public let path: String
    public let baud: Int
    private var port: OpaquePointer?

    /// Opens and configures `path`. The corresponding C functions are `sp_get_port_by_name`,
    /// `sp_open` and `sp_set_*`.
    public init(path: String, baud: Int) throws(SerialPortError) {
        self.path = path
        self.baud = baud
        // libserialport looks a port up in sysfs and reports a missing entry with errno 0
        // ("Success"): find the real cause first, from the calls that name it.
        var st = stat()
        if stat(path, &st) != 0 {
            throw .notFound(path: path, reason: "stat: " + String(cString: strerror(errno)))
        }
        if st.st_mode & S_IFMT != S_IFCHR {
            throw .notFound(path: path, reason: "not a character device (a serial port is one)")
        }
        if Self.isPseudoTerminal(st) {
            throw .notFound(path: path, reason: "a pseudo-terminal, which libserialport cannot open: use the link pty:\(path)")
        }
        var p: OpaquePointer?
        guard sp_get_port_by_name(path, &p) == SP_OK, let found = p else {
            throw .notFound(path: path, reason: Self.lastError(orElse: "libserialport has no port of that name (no sysfs entry: not a serial device)"))
        }
        guard sp_open(found, SP_MODE_READ_WRITE) == SP_OK else {
            let reason = Self.lastError()
            sp_free_port(found)
            throw .openFailed(path: path, reason: reason)
        }
        port = found
        let ok = sp_set_baudrate(found, Int32(baud)) == SP_OK
            && sp_set_bits(found, 8) == SP_OK
            && sp_set_parity(found, SP_PARITY_NONE) == SP_OK
            && sp_set_stopbits(found, 1) == SP_OK
            && sp_set_flowcontrol(found, SP_FLOWCONTROL_NONE) == SP_OK
        if !ok {
            let reason = Self.lastError()
            close()
            throw .configureFailed(path: path, reason: reason)
        }
    }

    deinit { close() }

    /// The operating system's descriptor of the open port, for non-blocking I/O in the cycle
    /// (the port still owns it). The corresponding C function is `sp_get_port_handle`.
    public var descriptor: Int32 {
        guard let port else { return -1 }
        var fd: Int32 = -1
        _ = withUnsafeMutablePointer(to: &fd) { sp_get_port_handle(port, $0) }
        return fd
    }

    /// Reads what is waiting, up to `buffer.count` bytes; returns the count (0 when none).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SerialPortError) -> Int {
        guard let port else { throw .closed(path: path) }
        let n = sp_nonblocking_read(port, buffer.baseAddress, buffer.count)
        guard n.rawValue >= 0 else { throw .io(path: path, reason: Self.lastError()) }
        return Int(n.rawValue)
    }

    /// Queues `bytes` for sending; returns how many were accepted.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(SerialPortError) -> Int {
        guard let port else { throw .closed(path: path) }
        let n = sp_nonblocking_write(port, bytes.baseAddress, bytes.count)
        guard n.rawValue >= 0 else { throw .io(path: path, reason: Self.lastError()) }
        return Int(n.rawValue)
    }

    public func close() {
        if let port {
            sp_close(port)
            sp_free_port(port)
        }
        port = nil
    }

    /// The names of the serial ports libserialport can see (pseudo-terminals are not among them).
    public static func availablePorts() -> [String] {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        guard sp_list_ports(&list) == SP_OK, let list else { return [] }
        defer { sp_free_port_list(list) }
        var names: [String] = []
        var i = 0
        while let p = list[i] {
            if let name = sp_get_port_name(p) { names.append(String(cString: name)) }
            i += 1
        }
        return names
    }

    /// libserialport's last error; `fallback` where it has none worth the name (its sysfs
    /// look-up fails with errno 0, which reads "Success").
    private static func lastError(orElse fallback: String = "unknown error") -> String {
        guard let msg = sp_last_error_message() else { return fallback }
        defer { sp_free_error_message(msg) }
        let text = String(cString: msg)
        return text.isEmpty || text == "Success" ? fallback : text
    }

    /// Linux's Unix98 pty slaves have majors 136…143 (Documentation/admin-guide/devices.txt).
    static func isPseudoTerminal(_ st: stat) -> Bool {
        let major = (st.st_rdev >> 8) & 0xFFF
        return (136...143).contains(major)
    }
}
