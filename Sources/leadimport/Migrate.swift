import ArgumentParser
import Postgres
import Store

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring the database schema to the current version (running it again changes nothing).",
        discussion: "Run it as the role that will own the tables; it needs no superuser."
    )

    @OptionGroup var database: DatabaseOptions

    func run() throws {
        let url = try database.resolve()
        do {
            let connection = try Connection.connect(url, settings: ConnectionSettings())
            defer { connection.close() }
            let applied = try Migrator.migrate(connection)
            if applied.isEmpty {
                printError("migrate: the schema is up to date")
            } else {
                printError("migrate: applied \(applied.map(String.init).joined(separator: ", "))")
            }
        } catch {
            throw CommandFailure("migrate: \(error)")
        }
    }
}
