import Testing
@testable import Console

struct ConsoleMessageTests {
    func decode(_ s: String) -> Result<ConsoleCommand, ConsoleMessageError> { ConsoleMessage.decode(Array(s.utf8)) }

    @Test func wellFormedMessagesDecode() throws {
        #expect(try decode("hb 42").get() == .heartbeat(sequence: 42))
        #expect(try decode("jj 0.5 -1 0 1").get() == .jointJog([0.5, -1, 0, 1]))
        #expect(try decode("tj 1 -2.5 0 1").get() == .tipJog(x: 1, y: -2.5, z: 0, clutch: true))
        #expect(try decode("tp 1 12.5 200").get() == .targetPixel(plane: 1, x: 12.5, y: 200))
        #expect(try decode("tn left").get() == .namedTarget("left"))
        #expect(try decode("lease override").get() == .overrideLease)
        #expect(try decode("mode jog").get() == .mode(.jog))
        #expect(try decode("scale 0.25").get() == .scale(0.25))
        #expect(try decode("shown 0 17").get() == .shown(plane: 0, index: 17))
        #expect(try decode("visible 0").get() == .visibility(visible: false))
        #expect(try decode("stop").get() == .stop)
        #expect(try decode("stop now please").get() == .stop)
    }

    @Test func malformedMessagesAreRefusedWithAReason() {
        #expect(decode("") == .failure(.empty))
        #expect(decode("   ") == .failure(.empty))
        #expect(decode("jump 1") == .failure(.unknownCommand("jump")))
        #expect(decode("jj 2 0") == .failure(.outOfRange(command: "jj", field: "axis 0")))
        #expect(decode("jj nan 0") == .failure(.badNumber(command: "jj", field: "axis 0")))
        #expect(decode("jj inf") == .failure(.badNumber(command: "jj", field: "axis 0")))
        #expect(decode("jj") == .failure(.wrongArgumentCount(command: "jj", expected: "1…8", got: 0)))
        #expect(decode("jj 0 0 0 0 0 0 0 0 0") == .failure(.wrongArgumentCount(command: "jj", expected: "1…8", got: 9)))
        #expect(decode("tj 21 0 0 1") == .failure(.outOfRange(command: "tj", field: "x")))
        #expect(decode("tj 0 0 0 2") == .failure(.badNumber(command: "tj", field: "clutch")))
        #expect(decode("tp 9 1 1") == .failure(.outOfRange(command: "tp", field: "plane")))
        #expect(decode("tp 0 -1 1") == .failure(.outOfRange(command: "tp", field: "x")))
        #expect(decode("hb -1") == .failure(.badNumber(command: "hb", field: "sequence")))
        #expect(decode("hb 99999999999999999999") == .failure(.badNumber(command: "hb", field: "sequence")))
        #expect(decode("scale 2") == .failure(.outOfRange(command: "scale", field: "scale")))
        #expect(decode("mode tipServo") == .failure(.outOfRange(command: "mode", field: "mode")))
        #expect(decode("hb\u{0}1") == .failure(.notText))
        #expect(decode("hb é") == .failure(.notText))
        #expect(decode(String(repeating: "a", count: 201)) == .failure(.tooLong(201)))
        #expect(ConsoleMessage.decode([0xFF, 0xFE]) == .failure(.notText))
    }

    @Test func randomBytesNeverTrap() {
        var g = SystemRandomNumberGenerator()
        let alphabet = Array("hbjtpnmodesclvirwk0123456789.-+e ".utf8) + [0, 0xFF]
        for _ in 0..<20_000 {
            let n = Int.random(in: 0...40, using: &g)
            let bytes = (0..<n).map { _ in alphabet.randomElement(using: &g)! }
            _ = ConsoleMessage.decode(bytes)
        }
    }
}
