#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
// No Foundation here: the safety channel's fuzz target compiles this file into the monitor's
// sources (fuzz/run.sh). `contents(atPath:maxBytes:)`, returning `Data`, is in RegularFile+Data.swift.

/// Why a file given as input could not be read.
public enum RegularFileError: Error, Sendable, Equatable, CustomStringConvertible {
    case notFound
    case permissionDenied
    /// A directory, FIFO, socket, device or (when links are not followed) a symbolic link: nothing
    /// a configuration, data or key file can be. `kind` is `RegularFile.describe(fileType:)`.
    case notARegularFile(kind: String)
    /// Larger than the cap the caller set, in bytes.
    case tooLarge(bytes: Int64, cap: Int)
    /// Any other failure of `stat`, `open`, `fstat` or `read`, with its errno text.
    case system(call: String, reason: String)

    public var description: String {
        switch self {
        case .notFound: "no such file"
        case .permissionDenied: "permission denied"
        case .notARegularFile(let kind): "not a regular file (\(kind))"
        case .tooLarge(let bytes, let cap): "too large: \(bytes) bytes, the cap is \(cap) bytes (\(RegularFile.describe(bytes: cap)))"
        case .system(let call, let reason): "\(call) failed: \(reason)"
        }
    }
}

/// Reads files that a user names, defensively: only regular files (never a FIFO that would hang
/// the reader, a device that never ends, or a directory), and never more than a cap.
///
/// Every input file of the project (configuration, frames, the channel key) is opened here, so
/// that each is refused for the same reasons; callers map `RegularFileError` into their own errors.
public enum RegularFile {
    /// A descriptor that `open` checked, with what `fstat` said of it. The caller closes it.
    public struct Opened {
        public let descriptor: Int32
        /// Of the open descriptor, not of the path: owner, mode and size of the file actually read.
        public let status: stat
    }

    /// Opens the regular file at `path` read-only.
    ///
    /// What the path names is looked at first (`stat`, or `lstat` when `followLinks` is false), so
    /// that a device or FIFO is not even opened; then it is opened with `O_NONBLOCK` (a FIFO swapped
    /// in meanwhile cannot make the open wait for a writer) and checked again with `fstat` on the
    /// descriptor, so a file swapped after the first look cannot slip in. With `followLinks` false
    /// a symbolic link is refused (`O_NOFOLLOW`) as `notARegularFile(kind: "a symbolic link")`.
    /// The corresponding C functions are `stat`, `open` and `fstat`.
    public static func open(_ path: String, followLinks: Bool = true) throws(RegularFileError) -> Opened {
        var info = stat()
        if (followLinks ? stat(path, &info) : lstat(path, &info)) != 0 { throw failure(errno, call: followLinks ? "stat" : "lstat") }
        try requireRegular(info)
        let fd = systemOpen(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (followLinks ? 0 : O_NOFOLLOW))
        if fd < 0 {
            let code = errno
            // A link put in place of the file after the lstat.
            if code == ELOOP, !followLinks { throw .notARegularFile(kind: describe(fileType: S_IFLNK)) }
            throw failure(code, call: "open")
        }
        if fstat(fd, &info) != 0 {
            let code = errno
            close(fd)
            throw failure(code, call: "fstat")
        }
        do { try requireRegular(info) } catch {
            close(fd)
            throw error
        }
        return Opened(descriptor: fd, status: info)
    }

    /// The whole of `file`, read to its end, refused when it holds more than `maxBytes`.
    ///
    /// The size `fstat` gave is checked first (nothing is read of a file that is too large), and
    /// the read goes to the end of file, not to that size: a file that grows meanwhile is still capped.
    /// The corresponding C function is `read`.
    public static func read(_ file: Opened, maxBytes: Int) throws(RegularFileError) -> [UInt8] {
        let cap = max(maxBytes, 0)
        let size = Int64(file.status.st_size)
        guard size <= Int64(cap) else { throw .tooLarge(bytes: size, cap: cap) }
        // One byte past the cap tells "exactly the cap" from "more"; one past the size lets the
        // end of file be seen without growing the buffer.
        let bytes = try readUpTo(file.descriptor, cap < Int.max ? cap + 1 : cap, expected: Int(clamping: size) &+ 1)
        guard bytes.count <= cap else { throw .tooLarge(bytes: Int64(bytes.count), cap: cap) }
        return bytes
    }

    /// The first `count` bytes of `file` (fewer when it is shorter).
    /// The corresponding C function is `read`.
    public static func head(_ file: Opened, count: Int) throws(RegularFileError) -> [UInt8] {
        try readUpTo(file.descriptor, max(count, 0), expected: max(count, 0))
    }

    /// `open`, `read` and `close`: the whole regular file at `path`, at most `maxBytes` of it.
    public static func read(atPath path: String, maxBytes: Int, followLinks: Bool = true) throws(RegularFileError) -> [UInt8] {
        let file = try open(path, followLinks: followLinks)
        defer { close(file.descriptor) }
        return try read(file, maxBytes: maxBytes)
    }

    /// `open`, `head` and `close`: the first `count` bytes of the regular file at `path`.
    public static func head(atPath path: String, count: Int, followLinks: Bool = true) throws(RegularFileError) -> [UInt8] {
        let file = try open(path, followLinks: followLinks)
        defer { close(file.descriptor) }
        return try head(file, count: count)
    }

    /// Reads `fd` until end of file or `limit` bytes, retrying reads interrupted by a signal. The
    /// buffer starts at `expected` bytes and grows only for a file longer than it said it was.
    static func readUpTo(_ fd: Int32, _ limit: Int, expected: Int) throws(RegularFileError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: min(max(expected, 0), limit))
        var filled = 0
        while filled < limit {
            if filled == bytes.count {
                let grown = bytes.count > limit / 2 ? limit : max(bytes.count * 2, 4096)
                bytes.append(contentsOf: repeatElement(0, count: min(grown, limit) - bytes.count))
            }
            let n = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return systemRead(fd, base + filled, buffer.count - filled)
            }
            if n == 0 { break }
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                throw failure(code, call: "read")
            }
            filled += n
        }
        bytes.removeLast(bytes.count - filled)
        return bytes
    }

    static func requireRegular(_ info: stat) throws(RegularFileError) {
        let kind = info.st_mode & S_IFMT
        guard kind == S_IFREG else { throw .notARegularFile(kind: describe(fileType: kind)) }
    }

    static func failure(_ code: Int32, call: String) -> RegularFileError {
        switch code {
        case ENOENT, ENOTDIR: .notFound
        case EACCES, EPERM: .permissionDenied
        default: .system(call: call, reason: String(cString: strerror(code)))
        }
    }

    /// What a file type (`st_mode & S_IFMT`) is, for messages: "a directory", "a FIFO (named pipe)", ….
    public static func describe(fileType: mode_t) -> String {
        switch fileType & S_IFMT {
        case S_IFREG: "a regular file"
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        case S_IFLNK: "a symbolic link"
        default: "an unknown file type"
        }
    }

    static func describe(bytes: Int) -> String {
        bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : bytes % 1024 == 0 ? "\(bytes >> 10) KiB" : "\(bytes) B"
    }
}

// The C calls under names that `RegularFile.open` and `RegularFile.read` do not shadow.
private func systemOpen(_ path: String, _ flags: Int32) -> Int32 { open(path, flags) }
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int { read(fd, buffer, count) }
