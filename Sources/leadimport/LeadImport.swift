import ArgumentParser

@main
struct LeadImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leadimport",
        abstract: "Imports a user's saved list of people into an outreach campaign as leads.",
        discussion: """
        Runs as a FastCGI application behind nginx (`serve`), and from the shell.
        Every command reads DATABASE_URL (a libpq connection string or URI) unless --database-url is given.
        """,
        subcommands: [Migrate.self, Serve.self, Token.self, Import.self, Jobs.self, ServeWorker.self]
    )
}

/// Options every database command shares.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: ArgumentHelp(
        "libpq connection string or URI (default: $DATABASE_URL).", valueName: "url"))
    var databaseURL: String?

    func resolve() throws -> String {
        if let databaseURL, !databaseURL.isEmpty { return databaseURL }
        if let fromEnvironment = environment("DATABASE_URL"), !fromEnvironment.isEmpty { return fromEnvironment }
        throw CommandFailure("no database: set DATABASE_URL or pass --database-url")
    }
}

/// A failure that the command reports as one line on standard error, exiting non-zero.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
