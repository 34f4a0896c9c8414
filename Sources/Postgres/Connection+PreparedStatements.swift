import CLibPQ

extension Connection {
    /// How many prepared statements a connection keeps before it deallocates the least recently used.
    public static let preparedStatementLimit = 256

    struct Prepared {
        let name: String
        var lastUse: UInt64
    }

    private func cacheKey(_ sql: String, _ values: [PostgresValue]) -> String {
        guard values.contains(where: { $0.binaryForm != nil }) else { return sql }
        // Binary parameters are declared with their type when prepared, so the types are part of the key.
        let signature = values.map { value in value.binaryForm.map { String($0.type) } ?? "t" }
        return sql + "\u{0}" + signature.joined(separator: ",")
    }

    func runPrepared(_ sql: String, _ values: [PostgresValue]) throws -> QueryResult {
        let handle = try usableHandle()
        let key = cacheKey(sql, values)
        useClock &+= 1
        let name: String
        // One lookup: a key is a statement's whole text, hashed again by every lookup.
        if let index = prepared.index(forKey: key) {
            name = prepared.values[index].name
            prepared.values[index].lastUse = useClock
        } else {
            if prepared.count >= Self.preparedStatementLimit { evictLeastRecentlyUsed() }
            statementCounter += 1
            name = "leadimport_\(statementCounter)"
            let types: [Oid] = values.map { $0.binaryForm?.type ?? 0 }
            _ = try consume(PQprepare(handle, name, sql, Int32(types.count), types))
            prepared[key] = Prepared(name: name, lastUse: useClock)
        }
        return try withParameters(values) { count, _, pointers, lengths, formats in
            try consume(PQexecPrepared(handle, name, count, pointers, lengths, formats, 0))
        }
    }

    private func evictLeastRecentlyUsed() {
        guard let (key, entry) = prepared.min(by: { $0.value.lastUse < $1.value.lastUse }) else { return }
        prepared.removeValue(forKey: key)
        deallocate(entry.name)
    }

    func forget(_ sql: String, _ values: [PostgresValue], deallocate: Bool) {
        guard let entry = prepared.removeValue(forKey: cacheKey(sql, values)) else { return }
        if deallocate { self.deallocate(entry.name) }
    }

    /// Prepared statements are not transactional, so DEALLOCATE works in and out of a transaction,
    /// but not in a failed one: there the statement stays on the server under a name never reused.
    private func deallocate(_ name: String) {
        guard transactionState == .idle || transactionState == .inTransaction else { return }
        _ = try? simple("DEALLOCATE \(name)")
    }

    func isMissingStatement(_ error: PostgresError) -> Bool {
        error.kind == .server && error.sqlState == "26000"
    }

    func isStalePlan(_ error: PostgresError) -> Bool {
        error.kind == .server && error.sqlState == "0A000" && error.message.contains("cached plan must not change result type")
    }
}
