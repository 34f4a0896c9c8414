import Postgres

/// The operator's statements (`leadimport jobs`): whoever runs the command line has the database,
/// so a job is named by its id alone, whoever owns it. The statements are the endpoints' own,
/// without the owner filter.
extension JobStore {
    /// The job; nil when there is none with this id.
    public func job(id: String, on connection: Connection) throws -> JobRecord? {
        try job(id: id, owner: nil, on: connection)
    }

    /// Cancels the job as `DELETE` does: a queued or running one at once, one that ended is
    /// answered as it ended. nil when there is none with this id.
    public func cancel(id: String, on connection: Connection) throws -> JobRecord? {
        try cancel(id: id, owner: nil, on: connection)
    }
}
