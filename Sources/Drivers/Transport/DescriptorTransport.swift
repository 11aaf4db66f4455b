import Core
import CRealtime
#if canImport(Glibc)
import Glibc
#endif

/// Why a byte transport could not be opened or configured.
public enum TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    case open(what: String, errno: Int32)
    case configure(what: String, errno: Int32)

    public var description: String {
        switch self {
        case .open(let w, let e): "cannot open \(w): \(String(cString: strerror(e)))"
        case .configure(let w, let e): "cannot configure \(w): \(String(cString: strerror(e)))"
        }
    }
}

/// A non-blocking byte stream on a file descriptor: a pseudo-terminal, a serial port's
/// descriptor, a socket. Noncopyable: it closes the descriptor it owns exactly once.
public struct DescriptorTransport: ~Copyable {
    public let fd: Int32
    /// Whether `deinit` closes `fd` (false when another object owns it, e.g. a `SerialPort`).
    public let owns: Bool
    public let name: String

    public init(fd: Int32, owns: Bool, name: String) {
        self.fd = fd
        self.owns = owns
        self.name = name
    }

    deinit {
        if owns { _ = Glibc.close(fd) }
    }

    /// Sends `bytes`; returns how many went out, or −errno.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public func send(_ bytes: UnsafeRawBufferPointer) -> Int {
        var sent = 0
        // A pty or UART buffer takes a whole frame; a short write is retried at once, a few times.
        for _ in 0..<8 {
            let n = DescriptorIO.write(fd, UnsafeRawBufferPointer(rebasing: bytes[sent...]))
            if n < 0 { return n }
            sent += n
            if sent == bytes.count { break }
        }
        return sent
    }

    /// Reads what is waiting: the count, 0 when nothing is, or −errno.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        DescriptorIO.read(fd, into: buffer)
    }

    /// Waits up to `timeout` (ns) for bytes to read.
    @_noAllocation @_noLocks
    @inlinable public func waitReadable(timeout: Nanoseconds) -> Bool {
        DescriptorIO.waitReadable(fd, timeout: timeout)
    }
}

/// POSIX pseudo-terminals: a serial line inside one machine, for tests and the simulated
/// drives. (libserialport 0.1.1 cannot open them, so this uses termios directly.)
public enum PseudoTerminal {
    /// The two ends of a pty. Each end's descriptor belongs to whoever wraps it in a
    /// `DescriptorTransport` (which closes it).
    public struct Pair: Sendable {
        /// The master side.
        public var hostFD: Int32
        /// The slave side, also reachable by `path`.
        public var deviceFD: Int32
        public var path: String
    }

    /// Opens the terminal at `path` — the far end of a pty that an integrator's simulator or a
    /// socat bridge holds open — raw and non-blocking, through termios alone: no modem-line
    /// ioctls (TIOCMGET), which a pty does not support. The descriptor belongs to the caller.
    /// The corresponding C functions are `open`, `tcgetattr`, `cfmakeraw` and `tcsetattr`.
    public static func open(path: String) throws(TransportError) -> Int32 {
        let fd = Glibc.open(path, O_RDWR | O_NOCTTY | O_NONBLOCK)
        if fd < 0 { throw .open(what: path, errno: errno) }
        var t = termios()
        if tcgetattr(fd, &t) != 0 {
            // ENOTTY: a file, a pipe, a socket — not a terminal.
            let e = errno
            _ = Glibc.close(fd)
            throw .configure(what: "\(path) (tcgetattr)", errno: e)
        }
        cfmakeraw(&t)
        t.c_cc.6 = 0  // VMIN: reads never wait
        t.c_cc.5 = 0  // VTIME
        if tcsetattr(fd, TCSANOW, &t) != 0 {
            let e = errno
            _ = Glibc.close(fd)
            throw .configure(what: "\(path) (tcsetattr)", errno: e)
        }
        return fd
    }

    /// Opens a pty pair in raw mode, both ends non-blocking.
    public static func openPair() throws(TransportError) -> Pair {
        var master: Int32 = -1, slave: Int32 = -1
        var name = [CChar](repeating: 0, count: 128)
        let rc = lumen_pty_open(&master, &slave, &name, Int32(name.count))
        if rc != 0 { throw .open(what: "a pseudo-terminal", errno: rc) }
        let path = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Pair(hostFD: master, deviceFD: slave, path: path)
    }
}
