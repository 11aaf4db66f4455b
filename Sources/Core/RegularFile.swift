#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Why a file given as input could not be read.
public enum RegularFileError: Error, Sendable, Equatable, CustomStringConvertible {
    case notFound
    case permissionDenied
    /// A directory, FIFO, socket or device: nothing a configuration or data file can be.
    case notARegularFile(kind: String)
    /// Larger than the cap the caller set, in bytes.
    case tooLarge(bytes: Int64, cap: Int)
    /// Any other failure of `open`, `fstat` or `read`, with its errno text.
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
public enum RegularFile {
    /// The bytes of the regular file at `path`, at most `maxBytes` of them.
    ///
    /// The file is opened with `O_NONBLOCK` and checked with `fstat` on the open descriptor, so a
    /// FIFO is refused at once instead of blocking, and a file swapped after a check cannot slip in.
    /// The corresponding C functions are `open`, `fstat` and `read`.
    public static func contents(atPath path: String, maxBytes: Int) throws(RegularFileError) -> Data {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 { throw failure(errno, call: "open") }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) != 0 { throw failure(errno, call: "fstat") }
        let kind = info.st_mode & S_IFMT
        guard kind == S_IFREG else { throw .notARegularFile(kind: describe(fileType: kind)) }
        let size = Int64(info.st_size)
        guard size <= Int64(maxBytes) else { throw .tooLarge(bytes: size, cap: maxBytes) }

        // Read to the end, not to st_size: a file that grows while being read is still capped.
        var data = Data(count: maxBytes + 1)
        var filled = 0
        let failed: Int32? = data.withUnsafeMutableBytes { buffer -> Int32? in
            guard let base = buffer.baseAddress else { return nil }
            while filled < buffer.count {
                let n = read(fd, base + filled, buffer.count - filled)
                if n == 0 { break }
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                filled += n
            }
            return nil
        }
        if let failed { throw failure(failed, call: "read") }
        guard filled <= maxBytes else { throw .tooLarge(bytes: Int64(filled), cap: maxBytes) }
        data.count = filled
        return data
    }

    static func failure(_ code: Int32, call: String) -> RegularFileError {
        switch code {
        case ENOENT, ENOTDIR: .notFound
        case EACCES, EPERM: .permissionDenied
        default: .system(call: call, reason: String(cString: strerror(code)))
        }
    }

    static func describe(fileType: mode_t) -> String {
        switch fileType {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
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
