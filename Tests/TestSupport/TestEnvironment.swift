import Foundation

/// What the test command (`scripts/test`) hands to the tests: a real PostgreSQL and a real nginx,
/// started on loopback in a scratch folder. A test that needs one and does not find it fails;
/// it never skips silently.
public struct TestEnvironment: Sendable {
    /// The service role: only SELECT, INSERT, UPDATE on the tables.
    public let databaseURL: String
    /// The role that owns the tables and runs migrations.
    public let ownerDatabaseURL: String
    /// A superuser, for what a test does to the server from outside (terminate backends, revoke grants).
    public let adminDatabaseURL: String
    /// Folder of this test run's scratch files.
    public let scratch: String
    /// `scripts/stack` in the checkout, for stopping and starting PostgreSQL from a test.
    public let stackScript: String
    /// The built `leadimport` executable.
    public let binary: String
    /// nginx's base URL (`http://127.0.0.1:PORT`) and the FastCGI socket its upstream points at.
    public let nginxURL: String
    public let fastCGISocket: String

    public static func require() throws -> TestEnvironment {
        let env = ProcessInfo.processInfo.environment
        func need(_ key: String) throws -> String {
            guard let value = env[key], !value.isEmpty else {
                throw TestEnvironmentError(message: "\(key) is not set: run the tests with scripts/test, which starts PostgreSQL and nginx")
            }
            return value
        }
        return TestEnvironment(
            databaseURL: try need("LEADIMPORT_TEST_DATABASE_URL"),
            ownerDatabaseURL: try need("LEADIMPORT_TEST_OWNER_DATABASE_URL"),
            adminDatabaseURL: try need("LEADIMPORT_TEST_ADMIN_DATABASE_URL"),
            scratch: try need("LEADIMPORT_TEST_SCRATCH"),
            stackScript: try need("LEADIMPORT_TEST_STACK"),
            binary: try need("LEADIMPORT_TEST_BINARY"),
            nginxURL: try need("LEADIMPORT_TEST_NGINX_URL"),
            fastCGISocket: try need("LEADIMPORT_TEST_FCGI_SOCKET")
        )
    }
}

public struct TestEnvironmentError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
