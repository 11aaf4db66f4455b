#if canImport(Glibc)
import Glibc
#endif
import Core

/// A Unix-domain datagram socket: the monitor's channels on one machine (to the simulated
/// drives, from the control process and the console). Datagrams keep message boundaries, so
/// each read is one whole message or nothing. Non-blocking.
public final class DatagramSocket {
    public let fd: Int32
    /// The path this socket is bound to (unlinked on close), if any.
    public let boundPath: String?

    public struct SocketError: Error, CustomStringConvertible {
        public var description: String
    }

    /// A socket bound to `path` (an existing socket file there is replaced), optionally
    /// connected to `peer` so that `send` needs no address.
    public init(bindTo path: String?, connectTo peer: String? = nil) throws(SocketError) {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw SocketError(description: "socket: \(String(cString: strerror(errno)))") }
        boundPath = path
        if let path {
            unlink(path)
            if let e = Self.withAddress(path, { bind(fd, $0, $1) }) {
                close(fd)
                throw SocketError(description: "bind \(path): \(e)")
            }
        }
        if let peer, let e = Self.withAddress(peer, { Glibc.connect(fd, $0, $1) }) {
            close(fd)
            throw SocketError(description: "connect \(peer): \(e)")
        }
    }

    deinit {
        close(fd)
        if let boundPath { unlink(boundPath) }
    }

    /// (Re)connects to `peer`; nil on success, else the reason.
    public func connect(to peer: String) -> String? {
        Self.withAddress(peer) { Glibc.connect(fd, $0, $1) }
    }

    /// Sends to `peer` (unconnected use). Returns false when it could not be sent.
    public func send(_ bytes: UnsafeRawBufferPointer, to peer: String) -> Bool {
        guard let address = Self.address(peer) else { return false }
        return send(bytes, to: address)
    }

    /// The socket address of `path`, built once outside a cycle (nil when the path is too long).
    public static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let utf8 = Array(path.utf8)
        guard utf8.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in utf8.enumerated() { raw[i] = b }
            raw[utf8.count] = 0
        }
        return address
    }

    public func send(_ bytes: UnsafeRawBufferPointer, to address: sockaddr_un) -> Bool {
        DescriptorIO.send(fd, bytes, to: address)
    }

    private static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> String? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let utf8 = Array(path.utf8)
        guard utf8.count < MemoryLayout.size(ofValue: address.sun_path) else { return "path too long" }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in utf8.enumerated() { raw[i] = b }
            raw[utf8.count] = 0
        }
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return r == 0 ? nil : String(cString: strerror(errno))
    }
}

