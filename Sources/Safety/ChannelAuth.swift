#if canImport(Glibc)
import Glibc
#endif
import Core

/// The shared secret of the safety channel, as HMAC-SHA256 (RFC 2104) ready to run: the key's
/// inner and outer pads are absorbed once at load, so a tag costs the message's blocks plus
/// one, with no allocation. The monitor, the drives, the control process and the console load
/// the same key file. Spec and threat model: docs/safety/channel.md.
public struct ChannelKey: Sendable {
    /// Fewer secret bytes than the hash's output would make the key, not the tag, the weak part.
    public static let minimumLength = 32
    public static let maximumLength = 4096

    @usableFromInline let inner: SHA256.Context
    @usableFromInline let outer: SHA256.Context

    /// The key `secret` (RFC 2104: hashed first when longer than a block).
    public init(secret: [UInt8]) {
        var k = secret.count > 64 ? SHA256.digest(secret) : secret
        k += [UInt8](repeating: 0, count: 64 - k.count)
        var i = SHA256.Context(), o = SHA256.Context()
        for b in k {
            i.update(byte: b ^ 0x36)
            o.update(byte: b ^ 0x5c)
        }
        inner = i
        outer = o
    }

    /// HMAC-SHA256 of `message`.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func mac(_ message: UnsafeRawBufferPointer) -> SHA256.Digest {
        var i = inner
        i.update(message)
        let innerDigest = i.finish()
        var o = outer
        var j = 0
        while j < 32 {
            o.update(byte: innerDigest[j])
            j += 1
        }
        return o.finish()
    }

    /// Why a key file is refused; each says what to do.
    public enum LoadError: Error, Equatable, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case notARegularFile(path: String)
        case notOwned(path: String, owner: UInt32, expected: UInt32)
        case readableByOthers(path: String, mode: UInt32)
        case wrongLength(path: String, bytes: Int)

        public var description: String {
            switch self {
            case let .unreadable(path, reason): "channel key \(path): \(reason)"
            case let .notARegularFile(path): "channel key \(path) is not a regular file; create one with `head -c 32 /dev/urandom > \(path); chmod 600 \(path)`"
            case let .notOwned(path, owner, expected): "channel key \(path) belongs to uid \(owner), not to this process (uid \(expected)); chown it"
            case let .readableByOthers(path, mode): "channel key \(path) has mode \(String(mode, radix: 8)): group or others may read it; chmod 600 it and replace the key"
            case let .wrongLength(path, bytes): "channel key \(path) holds \(bytes) bytes; it needs \(ChannelKey.minimumLength)…\(ChannelKey.maximumLength) random bytes (`head -c 32 /dev/urandom`)"
            }
        }
    }

    /// Loads the key file at `path`: a regular file (not a link) of 32…4096 bytes, owned by
    /// this process's user, which neither group nor others may read or write.
    public static func load(from path: String) throws(LoadError) -> ChannelKey {
        let file: RegularFile.Opened
        do { file = try RegularFile.open(path, followLinks: false) } catch { throw loadError(error, path) }
        defer { close(file.descriptor) }
        let st = file.status
        if st.st_uid != geteuid() { throw .notOwned(path: path, owner: st.st_uid, expected: geteuid()) }
        if st.st_mode & 0o077 != 0 { throw .readableByOthers(path: path, mode: st.st_mode & 0o7777) }
        let size = Int(st.st_size)
        if size < minimumLength || size > maximumLength { throw .wrongLength(path: path, bytes: size) }
        let bytes: [UInt8]
        do { bytes = try RegularFile.read(file, maxBytes: maximumLength) } catch { throw loadError(error, path) }
        // A size that changed since fstat is a key being rewritten: refused, never used in part.
        if bytes.count != size { throw .wrongLength(path: path, bytes: bytes.count) }
        return ChannelKey(secret: bytes)
    }

    static func loadError(_ error: RegularFileError, _ path: String) -> LoadError {
        switch error {
        case .notARegularFile: .notARegularFile(path: path)
        case .tooLarge(let bytes, _): .wrongLength(path: path, bytes: Int(clamping: bytes))
        case .notFound, .permissionDenied, .system: .unreadable(path: path, reason: error.description)
        }
    }
}

/// A small fixed set of user ids (a role's allowed senders), stored inline for the cycle.
public struct UIDSet: Sendable {
    public static let capacity = 8
    @usableFromInline var ids: InlineArray<8, UInt32>
    public let count: Int

    /// At most `capacity` ids; more are an error of the caller's configuration.
    public init?(_ list: [UInt32]) {
        if list.isEmpty || list.count > Self.capacity { return nil }
        var ids = InlineArray<8, UInt32>(repeating: 0)
        for (i, id) in list.enumerated() { ids[i] = id }
        self.ids = ids
        count = list.count
    }

    @_noAllocation @_noLocks
    public func contains(_ uid: UInt32) -> Bool {
        for i in 0..<count where ids[i] == uid { return true }
        return false
    }

    public var list: [UInt32] { (0..<count).map { ids[$0] } }
}

/// Who may speak on the monitor's channel and how it is authenticated: the key, the user ids
/// each role's datagrams are accepted from (default: the monitor's own user only), and the
/// group that may reach the socket directory (nil: the owner alone).
public struct ChannelPolicy: Sendable {
    public var key: ChannelKey
    public var drives: UIDSet
    public var control: UIDSet
    public var operatorConsole: UIDSet
    public var group: UInt32?

    /// Only this process's user, for every role.
    public init(key: ChannelKey, drives: [UInt32] = [], control: [UInt32] = [], operatorConsole: [UInt32] = [], group: UInt32? = nil) throws(PolicyError) {
        let own = [geteuid()]
        func set(_ role: String, _ l: [UInt32]) throws(PolicyError) -> UIDSet {
            guard let s = UIDSet(l.isEmpty ? own : l) else { throw PolicyError(description: "at most \(UIDSet.capacity) user ids for the \(role) role, \(l.count) given") }
            return s
        }
        self.key = key
        self.drives = try set("drives", drives)
        self.control = try set("control", control)
        self.operatorConsole = try set("operator", operatorConsole)
        self.group = group
    }

    public struct PolicyError: Error, CustomStringConvertible {
        public var description: String
    }
}
