import Foundation
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif

/// Why a folder or file given for a command's results cannot be used. Each case names the path
/// and says what to do, so that a run refused up front never costs its work.
public enum OutputPathError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No path was given.
    case empty
    /// Something other than a folder sits where the output folder, or a folder on the way to it,
    /// must be: `blocking` is that entry (a file, a device, a broken symbolic link).
    case notAFolder(path: String, blocking: String)
    /// A folder sits where the command writes a file.
    case fileIsAFolder(path: String)
    /// A FIFO, device, socket or broken symbolic link sits where the command writes a file
    /// (writing into a FIFO would wait for a reader forever).
    case notAFile(path: String)
    /// `folder` (the output folder, or the nearest existing folder on the way to it) or the file
    /// `folder` cannot be written by this user or on this file system.
    case notWritable(path: String, folder: String, reason: String)
    /// Creating a folder or writing a file failed (the disk is full, the path vanished meanwhile).
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case .empty:
            "no output folder given: name one"
        case .notAFolder(let path, let blocking) where path == blocking:
            "\(path) is not a folder: give a folder (it is created if missing) or move that file away"
        case .notAFolder(let path, let blocking):
            "\(path) cannot be a folder: \(blocking) is not a folder; give another path or move \(blocking) away"
        case .fileIsAFolder(let path):
            "\(path) is a folder where a result file goes: move it away or give another output folder"
        case .notAFile(let path):
            "\(path) is not a regular file where a result file goes: move it away or give another output folder"
        case .notWritable(let path, let folder, let reason) where path == folder:
            "\(path) cannot be written (\(reason)): give a folder you can write"
        case .notWritable(let path, let folder, let reason):
            "\(path) cannot be created: \(folder) cannot be written (\(reason)); give a folder you can write"
        case .cannotWrite(let path, let reason):
            "cannot write \(path): \(reason)"
        }
    }
}

/// Output folders and files of the commands: checked before any work, created with their missing
/// parents (as `mkdir -p`), and written with errors that name the path.
///
/// An existing output folder is reused: the files a run writes replace those of an earlier run,
/// and anything else in the folder is left alone.
public enum OutputPath {
    /// What a path is, as far as writing results there is concerned.
    enum Entry: Equatable, Sendable {
        case missing
        case folder
        case file
        /// A device, FIFO, socket or broken symbolic link: nothing to write results into.
        case other
        /// The path cannot be examined (`errno`), e.g. a folder on the way cannot be searched.
        case unreadable(Int32)
    }

    /// The two file-system questions the check asks, so that tests can answer them as a read-only
    /// file system or another user would.
    struct Probe: Sendable {
        /// What is at a path (symbolic links followed).
        var entry: @Sendable (String) -> Entry
        /// nil when the path can be written (and, for a folder, entered); else the `errno` why not.
        var writeError: @Sendable (_ path: String, _ isFolder: Bool) -> Int32?

        static let system = Probe(
            entry: { path in
                var s = stat()
                if stat(path, &s) == 0 {
                    switch s.st_mode & S_IFMT {
                    case S_IFDIR: return .folder
                    case S_IFREG: return .file
                    default: return .other
                    }
                }
                let e = errno
                if e == ENOENT {
                    // A symbolic link that points nowhere: `mkdir` would fail on it.
                    return lstat(path, &s) == 0 ? .other : .missing
                }
                // A file on the way: the path cannot exist, but the file that blocks it is found above.
                return e == ENOTDIR ? .missing : .unreadable(e)
            },
            writeError: { path, isFolder in access(path, isFolder ? W_OK | X_OK : W_OK) == 0 ? nil : errno })
    }

    /// Checks, without creating or changing anything, that `path` can be an output folder: it is a
    /// writable folder, or it is missing and the nearest existing folder on the way is writable and
    /// nothing but folders lie on the way. `files` (names inside the folder) must not be folders
    /// and, where present, must be writable; `folders` (names inside) are checked as output folders too
    /// (without `files`).
    public static func checkFolder(_ path: String, files: [String] = [], folders: [String] = []) throws(OutputPathError) {
        try checkFolder(path, files: files, folders: folders, probe: .system)
    }

    static func checkFolder(_ path: String, files: [String], folders: [String], probe: Probe) throws(OutputPathError) {
        let target = trimmed(path)
        guard !target.isEmpty else { throw .empty }
        var p = target
        while true {
            switch probe.entry(p) {
            case .folder:
                if let e = probe.writeError(p, true) { throw .notWritable(path: target, folder: p, reason: reason(e)) }
                if p == target {
                    for name in files {
                        let file = target + "/" + name
                        switch probe.entry(file) {
                        case .folder: throw .fileIsAFolder(path: file)
                        case .file: if let e = probe.writeError(file, false) { throw .notWritable(path: file, folder: file, reason: reason(e)) }
                        case .other: throw .notAFile(path: file)
                        case .missing: break
                        case .unreadable(let e): throw .notWritable(path: file, folder: file, reason: reason(e))
                        }
                    }
                }
                for name in folders { try checkFolder(target + "/" + name, files: [], folders: [], probe: probe) }
                return
            case .file, .other:
                throw .notAFolder(path: target, blocking: p)
            case .unreadable(let e):
                throw .notWritable(path: target, folder: p, reason: reason(e))
            case .missing:
                let up = parent(p)
                guard up != p else { throw .notWritable(path: target, folder: p, reason: "does not exist") }
                p = up
            }
        }
    }

    /// Creates the folder `path` and its missing parents (an existing one is reused).
    public static func createFolder(_ path: String) throws(OutputPathError) {
        try checkFolder(path)
        var missing: [String] = []
        var p = trimmed(path)
        while Probe.system.entry(p) == .missing {
            missing.append(p)
            let up = parent(p)
            if up == p { break }
            p = up
        }
        for folder in missing.reversed() where mkdir(folder, 0o777) != 0 && errno != EEXIST {
            throw .cannotWrite(path: folder, reason: reason(errno))
        }
    }

    /// Writes `data` to the file `path` (replacing it), creating its folder first.
    public static func write(_ data: Data, to path: String) throws(OutputPathError) {
        let folder = parent(trimmed(path))
        try createFolder(folder)
        switch Probe.system.entry(path) {
        case .folder: throw .fileIsAFolder(path: path)
        case .other: throw .notAFile(path: path)
        default: break
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw .cannotWrite(path: path, reason: reason(errno)) }
        defer { close(fd) }
        var written = 0
        let failure: Int32? = data.withUnsafeBytes { raw in
            while written < raw.count {
                let n = systemWrite(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                written += n
            }
            return nil
        }
        if let failure { throw .cannotWrite(path: path, reason: reason(failure)) }
    }

    /// `path` without trailing slashes ("/" stays).
    static func trimmed(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1, p.hasSuffix("/") { p = p.dropLast() }
        return String(p)
    }

    /// The folder holding `path`: "." for a bare name, "/" for a top-level entry and for "/".
    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return trimmed(String(path[..<slash]))
    }

    static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }
}
