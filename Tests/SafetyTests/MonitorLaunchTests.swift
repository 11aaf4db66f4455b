import Foundation
import Testing
@testable import Safety

/// How the live runtime and the HIL runner prepare the monitor's channel: one private
/// directory, one fresh key readable by its owner only, a new one each time.
@Suite struct MonitorLaunchTests {
    static func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o777 : 0o7777
    }

    @Test func eachLaunchGetsAPrivateDirectoryAndAFreshOwnerOnlyKey() throws {
        let a = try MonitorLaunch(prefix: "lumen-test"), b = try MonitorLaunch(prefix: "lumen-test")
        defer {
            try? FileManager.default.removeItem(atPath: a.directory)
            try? FileManager.default.removeItem(atPath: b.directory)
        }
        #expect(a.directory != b.directory)
        #expect(Self.mode(a.directory) == 0o700)
        #expect(Self.mode(a.keyPath) == 0o600)
        let secret = try #require(FileManager.default.contents(atPath: a.keyPath))
        #expect(secret.count == ChannelKey.minimumLength)
        #expect(secret != FileManager.default.contents(atPath: b.keyPath))
        // The key file is the one the monitor loads, and it is the key the launcher holds.
        let loaded = try ChannelKey.load(from: a.keyPath)
        let message: [UInt8] = Array("LHB3".utf8)
        let tags = message.withUnsafeBytes { (loaded.mac($0), a.key.mac($0)) }
        #expect((0..<32).allSatisfy { tags.0[$0] == tags.1[$0] })
        // Socket paths fit sun_path (107 bytes) with room for the monitor's own.
        #expect(a.listenPath.utf8.count < 100 && a.drivesPath.utf8.count < 100 && a.statusPath.utf8.count < 100)
        #expect(a.statusPath.hasPrefix(a.directory + "/"), "the status socket is in the private directory")
        let args = a.arguments(config: "/x/limits.yaml", parent: 42)
        #expect(args == ["--config", "/x/limits.yaml", "--listen", a.listenPath, "--drives", a.drivesPath, "--status", a.statusPath,
                         "--key", a.keyPath, "--exit-with-parent", "42"])
    }

    @Test func aDirectoryThatCannotBeMadeIsATypedError() {
        #expect(throws: MonitorLaunch.SetupError.self) { try MonitorLaunch(prefix: "no-such-folder/lumen") }
    }
}
