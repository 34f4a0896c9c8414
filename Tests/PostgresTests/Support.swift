import Foundation
import Platform
import Postgres
import Store
import TestSupport
import XCTest

/// A suite whose every test gets a scratch database of its own, migrated as the owner and
/// connected as the service, dropped after it.
class MigratedDatabaseCase: XCTestCase {
    var environment: TestEnvironment!
    var database: ScratchDatabase!
    var connection: Connection!

    override func setUpWithError() throws {
        environment = try TestEnvironment.require()
        database = try ScratchDatabase(environment)
        connection = try database.migratedService()
    }

    override func tearDown() {
        connection?.close()
        database?.drop()
    }

    /// A new user: what owns lists, campaigns and jobs.
    func newUser() throws -> String {
        try XCTUnwrap(connection.query("INSERT INTO users (email) VALUES ($1) RETURNING id",
                                       ["\(UUID().uuidString)@example.com"]).first).requiredString(0)
    }
}

/// A database of its own for one test: created by the superuser with the owner role as owner,
/// set up like `scripts/stack pg-init` sets up the real one (the service role gets SELECT, INSERT,
/// UPDATE through default privileges), dropped afterwards.
final class ScratchDatabase {
    let name: String
    let environment: TestEnvironment
    let ownerURL: String
    let serviceURL: String
    let adminURL: String

    init(_ environment: TestEnvironment) throws {
        self.environment = environment
        name = "leadimport_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        ownerURL = try Self.url(environment.ownerDatabaseURL, database: name)
        serviceURL = try Self.url(environment.databaseURL, database: name)
        adminURL = try Self.url(environment.adminDatabaseURL, database: name)
        let admin = try Connection.connect(environment.adminDatabaseURL, settings: testSettings)
        defer { admin.close() }
        // The name is ours (letters and digits), never input.
        try admin.queryUnprepared("CREATE DATABASE \(name) OWNER leadimport_owner")
        let setup = try Connection.connect(adminURL, settings: testSettings)
        defer { setup.close() }
        try setup.execute(script: """
            REVOKE CREATE ON SCHEMA public FROM PUBLIC;
            GRANT USAGE, CREATE ON SCHEMA public TO leadimport_owner;
            GRANT USAGE ON SCHEMA public TO leadimport_service;
            ALTER DEFAULT PRIVILEGES FOR ROLE leadimport_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES TO leadimport_service;
            """)
    }

    func drop() {
        do {
            let admin = try Connection.connect(environment.adminDatabaseURL, settings: testSettings)
            defer { admin.close() }
            try admin.queryUnprepared("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        } catch {
            print("could not drop \(name): \(error)")
        }
    }

    func owner() throws -> Connection { try Connection.connect(ownerURL, settings: testSettings) }
    func service() throws -> Connection { try Connection.connect(serviceURL, settings: testSettings) }
    func admin() throws -> Connection { try Connection.connect(adminURL, settings: testSettings) }

    /// The schema migrated as the owner, then a connection as the service: what most suites start from.
    func migratedService() throws -> Connection {
        let owner = try self.owner()
        defer { owner.close() }
        try Migrator.migrate(owner)
        return try service()
    }

    static func url(_ base: String, database: String) throws -> String {
        guard var components = URLComponents(string: base) else {
            throw SupportError(message: "test database URL is not a URL")
        }
        components.path = "/" + database
        return components.string!
    }
}

let testSettings = ConnectionSettings(applicationName: "leadimport-tests")

/// Runs `scripts/stack pg-ACTION` (`stack(env, "pg-stop")`).
func stack(_ environment: TestEnvironment, _ command: String) throws {
    precondition(command.hasPrefix("pg-"))
    try environment.postgres(String(command.dropFirst(3)))
}

func seconds(_ duration: Duration) -> Double { duration.secondsDouble }

func elapsed(since start: MonotonicInstant) -> Double { seconds(MonotonicInstant.now() - start) }

/// Runs `body` on `count` OS threads at once and waits for them.
func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let done = CountdownLatch(count: count)
    for index in 0..<count {
        try! startThread(name: "test-\(index)") {
            body(index)
            done.countDown()
        }
    }
    done.wait()
}

struct SupportError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
