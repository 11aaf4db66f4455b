import ArgumentParser
import CommandSupport
import Foundation
import Recording

/// `lumen bench record`: the recorder's figures.
struct RecordBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "record", abstract: "Recorder figures.")
    func run() throws {}
}
