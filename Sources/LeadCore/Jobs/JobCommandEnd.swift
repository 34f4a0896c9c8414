/// How a command that waited for a job ends on it (`leadimport jobs show --follow`): as
/// `leadimport import` would on the same outcome, so that a script can wait for a job as it
/// waits for the import itself.
public enum JobCommandEnd: Equatable, Sendable {
    /// Exit 0: the import answered 200.
    case success
    /// Exit non-zero, saying why in one line.
    case failure(String)

    /// nil while the job can still change.
    public static func of(_ job: ImportJob) -> JobCommandEnd? {
        switch job.state {
        case .queued, .running:
            return nil
        case .cancelled:
            return .failure("the import job was cancelled")
        case .finished:
            // The table's CHECK gives every finished job a status; a job without one did not succeed.
            guard let status = job.httpStatus else { return .failure("the import job finished without a status") }
            return status == 200 ? .success : .failure("finished with status \(status)")
        }
    }
}
