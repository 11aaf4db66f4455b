import Foundation
import Testing
@testable import Core

@Suite struct RegularFileTests {
    let dir: String

    init() throws {
        dir = NSTemporaryDirectory() + "lumen-regular-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let path = dir + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func error(_ body: () throws(RegularFileError) -> [UInt8]) -> RegularFileError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error
        }
    }

    @Test func aFileAtTheCapIsReadWholeAndOneByteMoreIsRefused() throws {
        let bytes = (0..<5000).map { UInt8(truncatingIfNeeded: $0) }
        let path = write("five-thousand", bytes)
        #expect(try RegularFile.read(atPath: path, maxBytes: 5000) == bytes)
        #expect(error { () throws(RegularFileError) in try RegularFile.read(atPath: path, maxBytes: 4999) } == .tooLarge(bytes: 5000, cap: 4999))
        #expect(try RegularFile.read(atPath: write("empty", []), maxBytes: 0) == [])
    }

    @Test func aFileThatGrowsAfterFstatIsStillCapped() throws {
        let path = write("growing", [1, 2, 3])
        let file = try RegularFile.open(path)
        defer { close(file.descriptor) }
        #expect(file.status.st_size == 3)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(repeating: 7, count: 10_000))
        try handle.close()
        // fstat said 3 bytes; the read goes to the end of file and finds more than the cap.
        #expect(error { () throws(RegularFileError) in try RegularFile.read(file, maxBytes: 9000) } == .tooLarge(bytes: 9001, cap: 9000))
    }

    @Test func aFileThatGrowsWithinTheCapIsReadToItsEnd() throws {
        let path = write("growing-within", [1, 2, 3])
        let file = try RegularFile.open(path)
        defer { close(file.descriptor) }
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(repeating: 7, count: 10_000))
        try handle.close()
        #expect(try RegularFile.read(file, maxBytes: 1 << 20).count == 10_003)
    }

    @Test func theHeadIsTheFirstBytesOrTheWholeOfAShorterFile() throws {
        let path = write("head", [9, 8, 7, 6, 5])
        #expect(try RegularFile.head(atPath: path, count: 3) == [9, 8, 7])
        #expect(try RegularFile.head(atPath: path, count: 33) == [9, 8, 7, 6, 5])
        #expect(try RegularFile.head(atPath: path, count: 0) == [])
    }

    @Test func aSymbolicLinkIsFollowedOnlyWhenAllowed() throws {
        let target = write("target", [1, 2])
        let link = dir + "/link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect(try RegularFile.read(atPath: link, maxBytes: 10) == [1, 2])
        #expect(error { () throws(RegularFileError) in try RegularFile.read(atPath: link, maxBytes: 10, followLinks: false) }
            == .notARegularFile(kind: "a symbolic link"))
        #expect(try RegularFile.read(atPath: target, maxBytes: 10, followLinks: false) == [1, 2])
    }

    @Test func theOpenDescriptorsStatusIsTheFiles() throws {
        let path = write("status", [1, 2, 3, 4])
        #expect(chmod(path, 0o640) == 0)
        let file = try RegularFile.open(path, followLinks: false)
        defer { close(file.descriptor) }
        #expect(file.status.st_size == 4)
        #expect(file.status.st_mode & 0o777 == 0o640)
        #expect(file.status.st_uid == geteuid())
    }

    @Test func whatIsNotARegularFileIsRefusedBeforeItIsRead() throws {
        let fifo = dir + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(error { () throws(RegularFileError) in try RegularFile.head(atPath: fifo, count: 4) } == .notARegularFile(kind: "a FIFO (named pipe)"))
        #expect(error { () throws(RegularFileError) in try RegularFile.read(atPath: dir, maxBytes: 4) } == .notARegularFile(kind: "a directory"))
        #expect(error { () throws(RegularFileError) in try RegularFile.read(atPath: "/dev/zero", maxBytes: 4) } == .notARegularFile(kind: "a character device"))
        #expect(error { () throws(RegularFileError) in try RegularFile.read(atPath: dir + "/absent", maxBytes: 4) } == .notFound)
        #expect(error { () throws(RegularFileError) in try RegularFile.read(atPath: dir + "/fifo/inside", maxBytes: 4) } == .notFound)
    }

    @Test func everyFileTypeHasAName() {
        #expect(RegularFile.describe(fileType: S_IFSOCK) == "a socket")
        #expect(RegularFile.describe(fileType: S_IFBLK) == "a block device")
        #expect(RegularFile.describe(fileType: S_IFREG | 0o644) == "a regular file")
        #expect(RegularFile.describe(fileType: 0) == "an unknown file type")
    }
}
