import Foundation

/// How much an image input may make the reader allocate, checked from headers before anything is
/// decoded: a few hundred bytes must never buy gigabytes. Every reader (PNG frames, DICOM files,
/// `FrameSource`) takes one; the defaults suit every C-arm detector in use (up to 4096 × 4096).
/// A caller with a larger detector passes its own; the command-line tools use `standard`.
public struct ImageLimits: Sendable, Equatable {
    /// Width × height of one frame, pixels. Default 4096 × 4096 (16 Mi): a 16-bit frame of 32 MiB.
    public var maxFramePixels: Int
    /// Rows × columns × frames × bytes per sample of a DICOM file's pixel data. Default 4 GiB, the
    /// most a native (uncompressed) PixelData element can hold.
    public var maxPixelDataBytes: UInt64
    /// The inflated data set of a Deflated Explicit VR Little Endian DICOM file, which is held in
    /// memory while the file is open. Default 256 MiB; inflation stops as soon as it is passed.
    public var maxInflatedBytes: UInt64

    public init(maxFramePixels: Int = 4096 * 4096, maxPixelDataBytes: UInt64 = 0xFFFF_FFFE, maxInflatedBytes: UInt64 = 256 << 20) {
        self.maxFramePixels = maxFramePixels
        self.maxPixelDataBytes = maxPixelDataBytes
        self.maxInflatedBytes = maxInflatedBytes
    }

    public static let standard = ImageLimits()

    /// The largest encoded PNG frame read: a 16-bit frame at the pixel budget stored without
    /// compression (filter bytes, zlib and chunk overhead are well under 1 MiB on top).
    var maxPNGFileBytes: Int { maxFramePixels.multipliedReportingOverflow(by: 2).partialValue.addingReportingOverflow(1 << 20).partialValue }

    /// "20000 × 20000 pixels (800 MB at 16 bits)" against "the 16777216-pixel budget (4096 × 4096)".
    func frameSizeProblem(width: Int, height: Int) -> String? {
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard overflow || pixels > maxFramePixels else { return nil }
        let side = Int(Double(maxFramePixels).squareRoot())
        let mib = Double(maxFramePixels) * 2 / 1_048_576
        return "\(width) × \(height) pixels is over the frame budget of \(maxFramePixels) pixels (\(side) × \(side), "
            + String(format: "%.0f MiB at 16 bits); refused before decoding", mib)
    }
}

/// Opening input files: only regular files. A FIFO would block the reader forever, a device could
/// stream without end, and a directory is not an image: all are refused by what `fstat` says of
/// the descriptor actually opened, so a path swapped between the check and the open cannot slip by.
enum RegularFile {
    enum Failure: Error, Equatable {
        /// Absent, no permission, …: the system's reason.
        case cannotOpen(String)
        /// "a directory", "a FIFO", "a character device", …
        case notRegular(kind: String)
        /// The file holds more bytes than the reader accepts.
        case tooLarge(size: Int, limit: Int)
    }

    /// What `mode` says the file is, for messages.
    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: "a file"
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        case S_IFLNK: "a symbolic link"
        default: "not a regular file"
        }
    }

    /// Opens `path` read-only. `O_NONBLOCK` keeps the open of a FIFO from waiting for a writer;
    /// it has no effect on the regular file that is the only thing returned.
    static func open(_ path: String) -> Result<Int32, Failure> {
        var st = stat()
        // A cheap refusal first, so that nothing else is even opened.
        if stat(path, &st) != 0 { return .failure(.cannotOpen(String(cString: strerror(errno)))) }
        if st.st_mode & S_IFMT != S_IFREG { return .failure(.notRegular(kind: kind(st.st_mode))) }
        let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 { return .failure(.cannotOpen(String(cString: strerror(errno)))) }
        if fstat(fd, &st) != 0 || st.st_mode & S_IFMT != S_IFREG {
            close(fd)
            return .failure(.notRegular(kind: kind(st.st_mode)))
        }
        return .success(fd)
    }

    /// The whole file, refused unread when it is larger than `limit` bytes.
    static func read(_ path: String, limit: Int) -> Result<[UInt8], Failure> {
        let fd: Int32
        switch open(path) {
        case .success(let d): fd = d
        case .failure(let f): return .failure(f)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(.cannotOpen(String(cString: strerror(errno)))) }
        let size = Int(st.st_size)
        guard size <= limit else { return .failure(.tooLarge(size: size, limit: limit)) }
        return readAll(fd, count: size)
    }

    /// The first `count` bytes (fewer when the file is shorter).
    static func head(_ path: String, count: Int) -> Result<[UInt8], Failure> {
        switch open(path) {
        case .success(let fd):
            defer { close(fd) }
            return readAll(fd, count: count)
        case .failure(let f): return .failure(f)
        }
    }

    private static func readAll(_ fd: Int32, count: Int) -> Result<[UInt8], Failure> {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.cannotOpen(String(cString: strerror(errno))))
            }
            if n == 0 { break }
            done += n
        }
        bytes.removeLast(count - done)
        return .success(bytes)
    }
}

/// A folder that frames will be written into, made ready before any work so that a bad path is
/// reported at once, not after a long run has been done for nothing.
public enum OutputFolder {
    /// Creates `path` (and its parents) unless it is a folder already, and checks that it can be
    /// written. A file, FIFO or device at `path`, or a folder without write permission, is refused.
    public static func prepare(_ path: String) throws(ImageFileError) {
        var st = stat()
        if stat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else {
                throw .unwritable(file: path, reason: "is \(RegularFile.kind(st.st_mode)), not a folder; give a folder (it is created if absent)")
            }
        } else {
            do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                // The POSIX reason ("Not a directory", "Permission denied"), not Foundation's wrapper.
                let cause = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.localizedDescription ?? "\(error)"
                throw .unwritable(file: path, reason: "cannot create the folder: \(cause)")
            }
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw .unwritable(file: path, reason: "the folder cannot be written (\(String(cString: strerror(errno))))")
        }
    }
}
