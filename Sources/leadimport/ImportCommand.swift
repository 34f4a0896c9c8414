import ArgumentParser
import Importer
import LeadCore
import Platform
import Postgres
import Store

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a list into a campaign from the shell: the endpoint's import, without HTTP.",
        discussion: """
        Progress goes to stderr after every page; the same JSON body the endpoint answers goes to \
        stdout. Exits 0 when the endpoint would answer 200, non-zero otherwise.
        """
    )

    @Option(help: ArgumentHelp("The user who owns the campaign and the list.", valueName: "uuid")) var user: String
    @Option(help: ArgumentHelp("The campaign to import into.", valueName: "uuid")) var campaign: String
    @Option(help: ArgumentHelp("The list to import.", valueName: "uuid")) var list: String
    @OptionGroup var database: DatabaseOptions

    func validate() throws {
        for (name, value) in [("--user", user), ("--campaign", campaign), ("--list", list)] where !UUIDPattern.matches(value) {
            throw ValidationError("\(name) must be a UUID")
        }
    }

    func run() throws {
        let url = try database.resolve()
        let pool = ConnectionPool(conninfo: url, configuration: PoolConfiguration(size: 2, waitLimit: .seconds(10)))
        defer { pool.close() }
        let target: ImportTarget
        do {
            switch try pool.withConnection({ try Access.target(user: user, campaign: campaign, list: list, on: $0) }) {
            case .failure(let error):
                print(error.body)
                throw CommandFailure("import: \(error.message)")
            case .success(let resolved):
                target = resolved
            }
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            print(RequestError.unavailable.body)
            throw CommandFailure("import: \(error)")
        }
        let outcome: ImportOutcome
        do {
            outcome = try LeadImporter(connections: pool).run(target) { progress in
                let seconds = max(progress.elapsed.secondsDouble, 0.001)
                let c = progress.counts
                printError("import: read \(progress.rowsRead) rows, imported \(c.imported), duplicates \(c.duplicates), invalid \(c.invalid), errors \(c.errors), \(Int(Double(progress.rowsRead) / seconds)) rows/s")
            }
        } catch {
            print(RequestError.unavailable.body)
            throw CommandFailure("import: \(error)")
        }
        print(outcome.body)
        guard outcome.status == 200 else {
            throw CommandFailure("import: finished with status \(outcome.status)")
        }
    }
}
