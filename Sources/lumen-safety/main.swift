import ArgumentParser
import MonitorCommand

/// The safety monitor as its own executable: it links Safety, Core and Drivers, and no code of the
/// control stack, the simulator or the imaging pipeline (`IndependenceTests` checks the binary).
/// `lumen safety` runs the same options and code.
struct LumenSafety: ParsableCommand {
    static let configuration = SafetyOptions.configuration(commandName: "lumen-safety")
    @OptionGroup var options: SafetyOptions
    func run() throws { try options.run(tool: "lumen-safety") }
}

LumenSafety.main()
