#if canImport(Glibc)
import Glibc
#endif
import Core

/// A Unix-domain datagram socket: the monitor's channels on one machine (to the simulated
/// drives, from the control process and the console). Datagrams keep message boundaries, so
/// each read is one whole message or nothing. Non-blocking.
///
/// It removes only the socket file it created itself: at close it unlinks its path when that
/// is still a socket with the device and inode its bind made, and nothing else.
public final class DatagramSocket {
    public let fd: Int32
    /// The path this socket is bound to, if any.
    public let boundPath: String?
    /// Device and inode of the socket file this bind created.
    let boundIdentity: (device: UInt64, inode: UInt64)?

    public struct SocketError: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// A socket bound to `path`, optionally connected to `peer` so that `send` needs no
    /// address. Nothing already at `path` is replaced: binding there fails instead. The socket
    /// file gets `mode` (the umask does not decide who may write to it). With
    /// `passCredentials`, every datagram received carries its sender's user id (SO_PASSCRED).
    public init(bindTo path: String?, connectTo peer: String? = nil, passCredentials: Bool = false, mode: UInt32 = 0o600) throws(SocketError) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        self.fd = fd
        if fd < 0 { throw SocketError(description: "socket: \(String(cString: strerror(errno)))") }
        if passCredentials {
            var on: Int32 = 1
            if setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                let e = String(cString: strerror(errno))
                close(fd)
                throw SocketError(description: "SO_PASSCRED: \(e)")
            }
        }
        boundPath = path
        if let path {
            if let e = Self.withAddress(path, { bind(fd, $0, $1) }) {
                close(fd)
                throw SocketError(description: "bind \(path): \(e)")
            }
            var st = stat()
            guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK, chmod(path, mode_t(mode)) == 0 else {
                let e = String(cString: strerror(errno))
                close(fd)
                throw SocketError(description: "socket \(path) could not be given mode \(String(mode, radix: 8)): \(e)")
            }
            boundIdentity = (UInt64(st.st_dev), UInt64(st.st_ino))
        } else {
            boundIdentity = nil
        }
        if let peer, let e = Self.withAddress(peer, { Glibc.connect(fd, $0, $1) }) {
            close(fd)
            if let path, let id = boundIdentity { Self.unlinkIfSame(path, id) }
            throw SocketError(description: "connect \(peer): \(e)")
        }
    }

    deinit {
        close(fd)
        if let boundPath, let boundIdentity { Self.unlinkIfSame(boundPath, boundIdentity) }
    }

    /// Unlinks `path` only if it is still the socket with `identity`: a file put there since
    /// (by anyone) stays.
    static func unlinkIfSame(_ path: String, _ identity: (device: UInt64, inode: UInt64)) {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK,
              UInt64(st.st_dev) == identity.device, UInt64(st.st_ino) == identity.inode else { return }
        unlink(path)
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
        guard var address = address(path) else { return "path too long" }
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return r == 0 ? nil : String(cString: strerror(errno))
    }
}

/// One datagram taken with its sender's credentials.
public struct ReceivedDatagram: Sendable {
    /// Bytes received; 0 when nothing was waiting, negative on an error.
    public var count: Int
    /// The sender's user id, when the kernel attached credentials (SO_PASSCRED).
    public var uid: UInt32
    public var hasCredentials: Bool
    /// The datagram was longer than the buffer (its tail is lost): never valid.
    public var truncated: Bool
}

/// `recvmsg` with SCM_CREDENTIALS, on storage allocated once: the monitor's cycle learns who
/// sent each datagram without allocating. Plain pointers, so copying it is free; the owner
/// calls `deallocate` once.
public struct CredentialReceiver {
    // Linux's values (bits/socket.h, glibc exports them only under _GNU_SOURCE).
    @usableFromInline static var scmCredentials: Int32 { 2 }
    /// struct ucred: pid i32, uid u32, gid u32.
    @usableFromInline static var ucredSize: Int { 12 }
    @usableFromInline static var controlSize: Int { 64 }

    @usableFromInline let message: UnsafeMutablePointer<msghdr>
    @usableFromInline let vector: UnsafeMutablePointer<iovec>
    @usableFromInline let control: UnsafeMutableRawPointer

    public init() {
        message = .allocate(capacity: 1)
        message.initialize(to: msghdr())
        vector = .allocate(capacity: 1)
        vector.initialize(to: iovec())
        control = .allocate(byteCount: Self.controlSize, alignment: 16)
    }

    public func deallocate() {
        message.deallocate()
        vector.deallocate()
        control.deallocate()
    }

    /// Takes one waiting datagram from `fd` into `buffer`.
    /// The corresponding C function is `recvmsg` (MSG_DONTWAIT).
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> ReceivedDatagram {
        vector.pointee.iov_base = buffer.baseAddress
        vector.pointee.iov_len = buffer.count
        message.pointee.msg_name = nil
        message.pointee.msg_namelen = 0
        message.pointee.msg_iov = vector
        message.pointee.msg_iovlen = 1
        message.pointee.msg_control = control
        message.pointee.msg_controllen = Self.controlSize
        message.pointee.msg_flags = 0
        let n = _unsafePerformance { recvmsg(fd, message, Int32(MSG_DONTWAIT)) }
        var out = ReceivedDatagram(count: n, uid: 0, hasCredentials: false, truncated: false)
        if n <= 0 { return out }
        let flags = message.pointee.msg_flags
        out.truncated = flags & Int32(MSG_TRUNC) != 0 || flags & Int32(MSG_CTRUNC) != 0
        // The one control message SO_PASSCRED adds: cmsghdr (len, level, type) then ucred.
        let header = MemoryLayout<cmsghdr>.size
        if message.pointee.msg_controllen >= header + Self.ucredSize {
            let length = control.loadUnaligned(as: Int.self)
            let level = control.loadUnaligned(fromByteOffset: MemoryLayout<Int>.size, as: Int32.self)
            let type = control.loadUnaligned(fromByteOffset: MemoryLayout<Int>.size + 4, as: Int32.self)
            if length >= header + Self.ucredSize, level == SOL_SOCKET, type == Self.scmCredentials {
                out.uid = control.loadUnaligned(fromByteOffset: header + 4, as: UInt32.self)
                out.hasCredentials = true
            }
        }
        return out
    }
}
