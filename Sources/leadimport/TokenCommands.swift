import ArgumentParser
import Importer
import LeadCore
import Postgres
import Store

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create and revoke API tokens.",
        subcommands: [Create.self, Revoke.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new token for a user, alone on standard output, once.",
            discussion: "Only the token's SHA-256 is stored: it cannot be shown again."
        )

        @Option(help: ArgumentHelp("The user's id.", valueName: "uuid")) var user: String
        @Option(help: "A name to recognise the token by.") var name: String?
        @Option(name: .customLong("expires-in"), help: ArgumentHelp("Lifetime, like 90d, 12h or 30m (default: never expires).", valueName: "duration"))
        var expiresIn: String?
        @OptionGroup var database: DatabaseOptions

        func validate() throws {
            guard UUIDPattern.matches(user) else { throw ValidationError("--user must be a UUID") }
            if let expiresIn, parseTokenLifetime(expiresIn) == nil {
                throw ValidationError("--expires-in takes a whole number and a unit: 90d, 12h, 30m or 45s")
            }
        }

        func run() throws {
            let url = try database.resolve()
            do {
                let connection = try Connection.connect(url)
                defer { connection.close() }
                guard try TokenStore().userExists(user, on: connection) else { throw CommandFailure("token create: no user \(user)") }
                let created = try TokenStore().create(user: user, name: name, expiresIn: expiresIn.flatMap(parseTokenLifetime), on: connection)
                print(created.token)
                printError("token create: token \(created.id) for user \(user)")
            } catch let failure as CommandFailure {
                throw failure
            } catch {
                throw CommandFailure("token create: \(error)")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by its id; it stops working at once.")

        @Argument(help: ArgumentHelp("The token's id (printed on stderr by `token create`).", valueName: "id")) var id: String
        @OptionGroup var database: DatabaseOptions

        func validate() throws {
            guard UUIDPattern.matches(id) else { throw ValidationError("the token id must be a UUID") }
        }

        func run() throws {
            let url = try database.resolve()
            do {
                let connection = try Connection.connect(url)
                defer { connection.close() }
                guard try TokenStore().revoke(id: id, on: connection) else {
                    throw CommandFailure("token revoke: no live token \(id)")
                }
                printError("token revoke: revoked \(id)")
            } catch let failure as CommandFailure {
                throw failure
            } catch {
                throw CommandFailure("token revoke: \(error)")
            }
        }
    }
}
