import Testing
@testable import Drivers

@Suite struct LinkAddressTests {
    @Test func parsesEveryScheme() throws {
        #expect(try LinkAddress(parsing: "sim") == .sim)
        #expect(try LinkAddress(parsing: "serial:/dev/ttyUSB0@115200") == .serial(path: "/dev/ttyUSB0", baud: 115_200))
        #expect(try LinkAddress(parsing: "serial:/dev/ttyACM1") == .serial(path: "/dev/ttyACM1", baud: LinkAddress.defaultBaud))
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
    }

    @Test func aMissingSerialPortIsATypedError() {
        #expect(throws: SerialPortError.self) { try SerialPort(path: "/dev/lumen-no-such-port", baud: 115_200) }
    }
}
