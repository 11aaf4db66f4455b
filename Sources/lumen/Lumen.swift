import ArgumentParser

@main
struct Lumen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lumen",
        abstract: "Lumen: an open control stack for image-guided catheter robots.",
        subcommands: []
    )
}
