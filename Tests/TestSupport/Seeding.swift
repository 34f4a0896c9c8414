import Foundation
import Postgres

/// Test data written straight into the database, as the rest of the platform would write it.
/// Uses the superuser connection (env.adminDatabaseURL): it bypasses grants, and nothing here is
/// what the service itself may do.
public final class Seeder {
    public let environment: TestEnvironment
    public let connection: Connection

    /// Session limits for test connections: no lock timeout (a test that takes a lock must be able
    /// to wait for it), a generous statement timeout for bulk inserts.
    public static let settings = ConnectionSettings(
        connectTimeout: .seconds(5), statementTimeout: .seconds(300), lockTimeout: .zero, applicationName: "leadimport-e2e")

    public init(_ environment: TestEnvironment) throws {
        self.environment = environment
        connection = try Connection.connect(environment.adminDatabaseURL, settings: Self.settings)
    }

    deinit { connection.close() }

    /// Another superuser connection (one per lock holder).
    public static func adminConnection(_ environment: TestEnvironment) throws -> Connection {
        try Connection.connect(environment.adminDatabaseURL, settings: settings)
    }

    public func user() throws -> String {
        let email = "e2e-\(UUID().uuidString.lowercased())@example.com"
        return try connection.query("INSERT INTO users (email) VALUES ($1) RETURNING id", [email]).first!.requiredString(0)
    }

    public func campaign(user: String, channel: String = "linkedin", status: String = "draft") throws -> String {
        try connection.query(
            "INSERT INTO campaigns (user_id, name, channel, status) VALUES ($1, 'e2e', $2, $3) RETURNING id",
            [user, channel, status]).first!.requiredString(0)
    }

    /// A `rows` list of `count` rows, each with a distinct, valid LinkedIn profile URL and a name,
    /// inserted with one set-based statement.
    public func rowsList(user: String, count: Int) throws -> String {
        let list = try connection.query(
            "INSERT INTO lists (user_id, name, storage) VALUES ($1, 'e2e', 'rows') RETURNING id", [user]).first!.requiredString(0)
        if count > 0 {
            try connection.query("""
                INSERT INTO list_rows (list_id, linkedin_url, profile_data)
                SELECT $1, 'https://www.linkedin.com/in/e2e-' || $3 || '-' || n,
                       jsonb_build_object('firstName', 'Person', 'lastName', n::text, 'currentCompany', 'Example')
                FROM generate_series(1, $2::int) AS n
                """, [list, String(count), String(list.prefix(8))])
        }
        return list
    }

    /// A token for `user`, made by `leadimport token create` as the service role.
    public func token(user: String) throws -> String {
        let result = try environment.run(["token", "create", "--user", user, "--name", "e2e"],
                                         environment: ["DATABASE_URL": environment.databaseURL])
        let token = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, !token.isEmpty, !token.contains("\n") else {
            throw TestEnvironmentError(message: "token create exited \(result.status): \(result.stderr)")
        }
        return token
    }

    public func count(_ sql: String, _ parameters: [String?] = []) throws -> Int {
        try connection.query(sql, parameters).first!.requiredInt(0)
    }
}
