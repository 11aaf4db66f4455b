import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import Drivers

@Suite struct LinkAddressTests {
    @Test func parsesEveryScheme() throws {
        #expect(try LinkAddress(parsing: "sim") == .sim)
        #expect(try LinkAddress(parsing: "serial:/dev/ttyUSB0@115200") == .serial(path: "/dev/ttyUSB0", baud: 115_200))
        #expect(try LinkAddress(parsing: "serial:/dev/ttyACM1") == .serial(path: "/dev/ttyACM1", baud: LinkAddress.defaultBaud))
        #expect(try LinkAddress(parsing: "pty:/dev/pts/7") == .pty(path: "/dev/pts/7"))
        #expect(try LinkAddress(parsing: "pty:/tmp/drive-sim") == .pty(path: "/tmp/drive-sim"))
        #expect(try LinkAddress(parsing: "ethercat:eth1") == .ethercat(interface: "eth1"))
        #expect(try LinkAddress(parsing: "ethercat-udp:10.0.0.2:34980") == .ethercatUDP(host: "10.0.0.2", port: 34980))
        #expect(try LinkAddress(parsing: "ethercat-udp:drive.local") == .ethercatUDP(host: "drive.local", port: 0x88A4))
    }

    @Test func refusesWhatItCannotUse() {
        #expect(throws: LinkAddress.ParseError.unknownScheme("usb:1")) { try LinkAddress(parsing: "usb:1") }
        #expect(throws: LinkAddress.ParseError.unknownScheme("serial")) { try LinkAddress(parsing: "serial") }
        #expect(throws: LinkAddress.ParseError.badBaud("serial:/dev/x@fast")) { try LinkAddress(parsing: "serial:/dev/x@fast") }
        #expect(throws: LinkAddress.ParseError.badBaud("serial:/dev/x@12")) { try LinkAddress(parsing: "serial:/dev/x@12") }
        #expect(throws: LinkAddress.ParseError.missingTarget("serial:@9600")) { try LinkAddress(parsing: "serial:@9600") }
        #expect(throws: LinkAddress.ParseError.badPort("ethercat-udp:h:0")) { try LinkAddress(parsing: "ethercat-udp:h:0") }
        #expect(throws: LinkAddress.ParseError.missingTarget("ethercat:")) { try LinkAddress(parsing: "ethercat:") }
        #expect(throws: LinkAddress.ParseError.missingTarget("pty:")) { try LinkAddress(parsing: "pty:") }
        #expect(throws: LinkAddress.ParseError.baudOnPty("pty:/dev/pts/3@9600")) { try LinkAddress(parsing: "pty:/dev/pts/3@9600") }
    }

    /// libserialport's sysfs look-up fails with errno 0, which used to read "not found: Success":
    /// the error now names the call and the cause.
    @Test func serialErrorsNameTheRealCause() throws {
        do {
            _ = try SerialPort(path: "/dev/lumen-no-such-port", baud: 115_200)
            Issue.record("opened a missing port")
        } catch {
            #expect(error.description.contains("No such file or directory"), "\(error)")
            #expect(!error.description.contains("Success"))
        }
        do {
            _ = try SerialPort(path: "/proc/self/status", baud: 115_200)
            Issue.record("opened a regular file")
        } catch {
            #expect(error.description.contains("not a character device"), "\(error)")
        }
        let pty = try PseudoTerminal.openPair()
        defer { close(pty.hostFD); close(pty.deviceFD) }
        do {
            _ = try SerialPort(path: pty.path, baud: 115_200)
            Issue.record("libserialport opened a pty")
        } catch {
            #expect(error.description.contains("pty:\(pty.path)"), "the error says what to use instead: \(error)")
        }
    }

    @Test func ptyErrorsNameTheFailingCall() {
        #expect(throws: TransportError.open(what: "/dev/lumen-no-such-pty", errno: ENOENT)) { try PseudoTerminal.open(path: "/dev/lumen-no-such-pty") }
        do {
            _ = try PseudoTerminal.open(path: "/proc/self/status")
            Issue.record("opened a regular file as a terminal")
        } catch {
            #expect(error.description.contains("tcgetattr") && error.description.contains("Inappropriate ioctl"), "\(error)")
        }
    }

    @Test func aMissingSerialPortIsATypedError() {
        #expect(throws: SerialPortError.self) { try SerialPort(path: "/dev/lumen-no-such-port", baud: 115_200) }
    }
}
