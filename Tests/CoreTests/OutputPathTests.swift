import Foundation
import Testing
@testable import Core

/// Output folders: what is refused before a command's work, and what a reused folder keeps.
@Suite struct OutputPathTests {
    let root: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-output-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    private func file(_ name: String, _ text: String = "x") throws -> String {
        let p = root.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    @Test func aMissingFolderUnderAWritableOneIsAcceptedAndNothingIsCreated() throws {
        let target = root.appendingPathComponent("a/b/c").path
        try OutputPath.checkFolder(target, files: ["summary.json"], folders: ["plane-b"])
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("a").path))
    }

    @Test func anExistingFileIsNotAFolder() throws {
        let f = try file("results")
        #expect(throws: OutputPathError.notAFolder(path: f, blocking: f)) { try OutputPath.checkFolder(f) }
        #expect(throws: OutputPathError.notAFolder(path: f, blocking: f)) { try OutputPath.checkFolder(f + "/") }
    }

    @Test func aFileOnTheWayIsNamed() throws {
        let f = try file("blocker")
        #expect(throws: OutputPathError.notAFolder(path: f + "/x/y", blocking: f)) { try OutputPath.checkFolder(f + "/x/y") }
    }

    @Test func aFolderWhereAResultFileGoesIsRefused() throws {
        let out = root.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: out + "/summary.json", withIntermediateDirectories: true)
        #expect(throws: OutputPathError.fileIsAFolder(path: out + "/summary.json")) {
            try OutputPath.checkFolder(out, files: ["plot.png", "summary.json"])
        }
    }

    @Test func aFIFOWhereAResultFileGoesIsRefusedRatherThanWaitedOn() throws {
        let out = root.appendingPathComponent("fifo-out").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        #expect(mkfifo(out + "/summary.json", 0o600) == 0)
        #expect(throws: OutputPathError.notAFile(path: out + "/summary.json")) { try OutputPath.checkFolder(out, files: ["summary.json"]) }
        #expect(throws: OutputPathError.notAFile(path: out + "/summary.json")) { try OutputPath.write(Data("{}".utf8), to: out + "/summary.json") }
    }

    @Test func aFileWhereASubfolderGoesIsRefused() throws {
        let out = root.appendingPathComponent("render").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: out + "/plane-b"))
        #expect(throws: OutputPathError.notAFolder(path: out + "/plane-b", blocking: out + "/plane-b")) {
            try OutputPath.checkFolder(out, folders: ["plane-b"])
        }
    }

    @Test func aBrokenSymbolicLinkIsNotAFolder() throws {
        let link = root.appendingPathComponent("dangling").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: root.appendingPathComponent("nowhere").path)
        #expect(throws: OutputPathError.notAFolder(path: link, blocking: link)) { try OutputPath.checkFolder(link) }
    }

    @Test func theNearestExistingFolderMustBeWritable() throws {
        // As a read-only file system answers, whoever runs the test (root writes anywhere else).
        let readOnly = OutputPath.Probe(entry: OutputPath.Probe.system.entry, writeError: { _, _ in EROFS })
        let target = root.appendingPathComponent("new/run").path
        #expect(throws: OutputPathError.notWritable(path: target, folder: root.path, reason: String(cString: strerror(EROFS)))) {
            try OutputPath.checkFolder(target, files: [], folders: [], probe: readOnly)
        }
        let refused = OutputPathError.notWritable(path: target, folder: root.path, reason: "Read-only file system")
        #expect(refused.description.contains("\(root.path) cannot be written"))
        // An existing result file that cannot be replaced.
        let out = root.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: out + "/summary.json"))
        let lockedFile = OutputPath.Probe(entry: OutputPath.Probe.system.entry, writeError: { path, isFolder in isFolder ? nil : EACCES })
        #expect(throws: OutputPathError.notWritable(path: out + "/summary.json", folder: out + "/summary.json", reason: String(cString: strerror(EACCES)))) {
            try OutputPath.checkFolder(out, files: ["summary.json"], folders: [], probe: lockedFile)
        }
    }

    @Test(.enabled(if: geteuid() != 0, "root writes into a read-only folder; theNearestExistingFolderMustBeWritable simulates one"))
    func aReadOnlyFolderIsRefusedForAnOrdinaryUser() throws {
        let locked = root.appendingPathComponent("locked").path
        try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o555])
        #expect(throws: OutputPathError.self) { try OutputPath.checkFolder(locked + "/run") }
    }

    @Test func createFolderMakesTheMissingParentsAndReusesAnExistingFolder() throws {
        let target = root.appendingPathComponent("x/y/z").path
        try OutputPath.createFolder(target)
        var isDir: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: target, isDirectory: &isDir) && isDir.boolValue)
        try OutputPath.createFolder(target + "/")
        let f = try file("plain")
        #expect(throws: OutputPathError.notAFolder(path: f + "/sub", blocking: f)) { try OutputPath.createFolder(f + "/sub") }
    }

    @Test func writeReplacesAFileAndNamesThePathWhenItCannot() throws {
        let target = root.appendingPathComponent("w/result.json").path
        try OutputPath.write(Data("first, and longer".utf8), to: target)
        try OutputPath.write(Data("second".utf8), to: target)
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "second")
        try FileManager.default.createDirectory(atPath: root.appendingPathComponent("w/dir.json").path, withIntermediateDirectories: false)
        #expect(throws: OutputPathError.fileIsAFolder(path: root.appendingPathComponent("w/dir.json").path)) {
            try OutputPath.write(Data(), to: root.appendingPathComponent("w/dir.json").path)
        }
    }

    @Test func relativePathsClimbToTheWorkingFolder() {
        #expect(OutputPath.parent("out/demo") == "out")
        #expect(OutputPath.parent("out") == ".")
        #expect(OutputPath.parent("/out") == "/")
        #expect(OutputPath.parent("/") == "/")
        #expect(OutputPath.parent("a//b") == "a")
        #expect(OutputPath.trimmed("a/b//") == "a/b")
        #expect(OutputPath.trimmed("/") == "/")
        #expect(throws: OutputPathError.empty) { try OutputPath.checkFolder("") }
    }
}
