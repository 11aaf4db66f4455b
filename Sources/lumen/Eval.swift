import ArgumentParser

/// `lumen eval …`: evaluations against ground truth. Each prints JSON with --json.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluations against ground truth. Each prints JSON with --json and writes its figures.",
        subcommands: [EvalTracking.self, EvalNavigation.self, EvalSafety.self]
    )
}
