/// Where a list's keyset read stands: a member's `(created_at, id)`, as the database wrote them.
public struct ListCursor: Sendable, Equatable {
    public var createdAt: String
    public var id: String

    public init(createdAt: String, id: String) {
        self.createdAt = createdAt
        self.id = id
    }

    /// The cursor as a job stores it (`resume_cursor`): the id, a space, then `created_at` as the
    /// database wrote it (a UUID holds no space, so the first one separates them).
    public var text: String { id + " " + createdAt }

    public init?(text: String) {
        guard let space = text.firstIndex(of: " ") else { return nil }
        let id = String(text[..<space]), createdAt = String(text[text.index(after: space)...])
        guard UUIDPattern.matches(id[...]), !createdAt.isEmpty else { return nil }
        self.init(createdAt: createdAt, id: id)
    }
}
