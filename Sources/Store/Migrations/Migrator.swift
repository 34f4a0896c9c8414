import Platform
import Postgres

/// One schema version, shipped in the binary. Its SQL is a string literal: nothing built at run time.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    let sql: StaticString

    init(version: Int, name: String, sql: StaticString) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// Brings a database's schema to the current version.
///
/// Runs as the role that will own the tables (no superuser: no extension is created;
/// `gen_random_uuid()` is built in since PostgreSQL 13). A session advisory lock keeps two
/// migrators from racing: the second waits, then finds nothing left to do. Each missing version
/// is applied in its own transaction together with its row in `schema_migrations`, so a version
/// is either wholly applied and recorded, or not at all.
public enum Migrator {
    /// Every version, in order. Append new ones; never edit one that has shipped.
    public static let migrations: [Migration] = [
        Schema.version1,
        Schema.version2,
        Schema.version3,
        Schema.version4,
        Schema.version5,
        Schema.version6,
        Schema.version7,
        Schema.version8,
        Schema.version9,
        Schema.version10,
    ]

    /// The key of the advisory lock held while migrating ("leadimp" in ASCII).
    public static let advisoryLockKey: Int64 = 0x6C65_6164_696D_70

    public static var currentVersion: Int { migrations.last?.version ?? 0 }

    /// Applies the missing versions (up to `lastVersion`: the tests upgrade an older schema) and
    /// returns those it applied now (empty when the schema was already current).
    @discardableResult
    public static func migrate(_ connection: Connection, upTo lastVersion: Int = .max) throws -> [Int] {
        // The lock wait is bounded by statement_timeout, not lock_timeout: another migrator may
        // legitimately hold it for a while.
        let saved = try connection.queryUnprepared("SELECT current_setting('lock_timeout') AS lock_timeout")
            .first?.requiredString("lock_timeout") ?? "0"
        try connection.queryUnprepared("SELECT set_config('lock_timeout', '0', false)")
        do {
            try connection.queryUnprepared("SELECT pg_advisory_lock($1)", [.text(String(advisoryLockKey))])
        } catch {
            _ = try? connection.queryUnprepared("SELECT set_config('lock_timeout', $1, false)", [.text(saved)])
            throw error
        }
        defer {
            if !connection.isBroken {
                _ = try? connection.queryUnprepared("SELECT pg_advisory_unlock($1)", [.text(String(advisoryLockKey))])
            }
        }
        try connection.queryUnprepared("SELECT set_config('lock_timeout', $1, false)", [.text(saved)])

        try connection.execute(script: """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version int PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        let done = Set(try appliedVersions(connection))
        var applied: [Int] = []
        for migration in migrations where !done.contains(migration.version) && migration.version <= lastVersion {
            do {
                try connection.transaction { connection in
                    try connection.execute(script: migration.sql)
                    try connection.queryUnprepared(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        [.int(migration.version), .text(migration.name)])
                }
            } catch var error as PostgresError {
                error.message = "migration \(migration.version) (\(migration.name)) failed: \(error.message)"
                throw error
            }
            Log.info("schema migration applied", ["version": String(migration.version), "name": migration.name])
            applied.append(migration.version)
        }
        return applied
    }

    /// The versions recorded in `schema_migrations`, ascending (empty when the table does not exist).
    public static func appliedVersions(_ connection: Connection) throws -> [Int] {
        let exists = try connection.queryUnprepared("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
        guard try exists.first?.requiredBool("present") == true else { return [] }
        return try connection.queryUnprepared("SELECT version FROM schema_migrations ORDER BY version")
            .rows.map { try $0.requiredInt("version") }
    }
}
