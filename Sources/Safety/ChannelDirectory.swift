#if canImport(Glibc)
import Glibc
#endif
import Core

/// The directory the monitor's socket lives in, and the lock that makes the monitor the only
/// one on it. The directory is the channel's first line: only its owner (and, if configured,
/// one group) can reach the socket inside, so no other user can even address the monitor.
///
/// - The monitor creates the directory itself with mode 0700 (0770 and the group, with a
///   group); an existing one is used only if it is a real directory (not a link) owned by this
///   user and writable by nobody else (by the configured group alone, with a group).
/// - `<socket>.lock` in it is held with `flock(LOCK_EX | LOCK_NB)` for the monitor's life: a
///   second monitor on the same socket is refused and the first keeps running. The kernel
///   drops the lock when the process dies, however it dies. The lock file is never deleted
///   (deleting it would let two monitors hold locks on two different files).
/// - Under the lock, a socket left at the path by a monitor that died is removed; anything else
///   there (a regular file, a directory, a link) is refused and left alone.
public final class ChannelDirectory {
    public let directory: String
    public let socketPath: String
    public let lockPath: String
    let lockFD: Int32

    public enum SetupError: Error, Equatable, CustomStringConvertible {
        case alreadyRunning(socket: String, lock: String)
        case unsafeDirectory(path: String, reason: String)
        case occupied(path: String, what: String)
        case system(path: String, call: String, reason: String)

        public var description: String {
            switch self {
            case let .alreadyRunning(socket, lock):
                "another safety monitor is running on \(socket) (it holds \(lock)); stop it first, or give this one another --listen directory"
            case let .unsafeDirectory(path, reason):
                "refusing the socket directory \(path): \(reason); give --listen a path in a directory of your own (the monitor creates a missing one with mode 0700)"
            case let .occupied(path, what):
                "refusing to replace \(path): it is \(what), not a socket a previous monitor left; move it or choose another --listen path"
            case let .system(path, call, reason):
                "\(call) \(path): \(reason)"
            }
        }
    }

    /// Prepares the directory of `socketPath` and takes its lock. `group`: the group that may
    /// reach the socket (nil: the owner only).
    public init(socketPath: String, group: UInt32? = nil) throws(SetupError) {
        self.socketPath = socketPath
        let directory = Self.parent(of: socketPath)
        self.directory = directory
        lockPath = socketPath + ".lock"
        socketMode = group == nil ? 0o600 : 0o660
        let mode: mode_t = group == nil ? 0o700 : 0o770
        if mkdir(directory, mode) == 0 {
            // mkdir's mode passes through the umask; set it exactly, and the group.
            if let group, chown(directory, uid_t.max, gid_t(group)) != 0 {
                throw .system(path: directory, call: "chown", reason: String(cString: strerror(errno)))
            }
            if chmod(directory, mode) != 0 { throw .system(path: directory, call: "chmod", reason: String(cString: strerror(errno))) }
        } else if errno != EEXIST {
            throw .system(path: directory, call: "mkdir", reason: String(cString: strerror(errno)))
        }
        var st = stat()
        if lstat(directory, &st) != 0 { throw .system(path: directory, call: "lstat", reason: String(cString: strerror(errno))) }
        if st.st_mode & S_IFMT != S_IFDIR { throw .unsafeDirectory(path: directory, reason: "it is not a directory (or is a symbolic link)") }
        if st.st_uid != geteuid() { throw .unsafeDirectory(path: directory, reason: "it belongs to uid \(st.st_uid), not to this user (uid \(geteuid()))") }
        if st.st_mode & 0o002 != 0 { throw .unsafeDirectory(path: directory, reason: "anyone may write to it (mode \(String(st.st_mode & 0o7777, radix: 8)))") }
        if st.st_mode & 0o020 != 0, group.map({ gid_t($0) }) != st.st_gid {
            throw .unsafeDirectory(path: directory, reason: "group \(st.st_gid) may write to it (mode \(String(st.st_mode & 0o7777, radix: 8))) and it is not the configured group")
        }

        lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if lockFD < 0 { throw .system(path: lockPath, call: "open", reason: String(cString: strerror(errno))) }
        if flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            close(lockFD)
            if e == EWOULDBLOCK { throw .alreadyRunning(socket: socketPath, lock: lockPath) }
            throw .system(path: lockPath, call: "flock", reason: String(cString: strerror(e)))
        }

        var existing = stat()
        if lstat(socketPath, &existing) == 0 {
            let type = existing.st_mode & S_IFMT
            if type != S_IFSOCK {
                close(lockFD)
                throw .occupied(path: socketPath, what: RegularFile.describe(fileType: type))
            }
            if existing.st_uid != geteuid() {
                close(lockFD)
                throw .occupied(path: socketPath, what: "a socket of uid \(existing.st_uid)")
            }
            // Ours and nobody holds the lock: the monitor that bound it is gone.
            unlink(socketPath)
        }
    }

    deinit { close(lockFD) }

    /// The mode the socket file gets: the owner's, and the group's with a group.
    public let socketMode: UInt32

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let p = String(path[..<slash])
        return p.isEmpty ? "/" : p
    }
}
