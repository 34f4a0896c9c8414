#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Importer
import LeadCore
import Platform
import Postgres
import Store

struct Jobs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show, follow and cancel import jobs.",
        discussion: """
        Jobs are recorded by `import --async` (or the endpoint's asynchronous POST) and run by the \
        service's worker processes (`serve`); a job stays queued while no service runs. These are \
        operator commands: a job is named by its id alone, whoever owns it. A job is printed on \
        stdout as JSON, as GET /api/imports/{id} answers it.
        """,
        subcommands: [Show.self, Cancel.self]
    )

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print an import job; with --follow, show its progress until it ends.",
            discussion: """
            Without --follow, prints the job as it stands and exits 0. With --follow, the progress \
            goes to stderr as `import` draws it (members handled of the list's size, the counts, \
            rows per second while following, time left): on a terminal one line redrawn in place, \
            otherwise a plain line every 5 seconds and the last one. Once the job has ended it is \
            printed, and the command exits as `import` would on the same outcome: 0 when the \
            import answered 200, non-zero otherwise, and non-zero when the job was cancelled.
            """
        )

        @Argument(help: ArgumentHelp("The job's id (printed by `import --async`).", valueName: "id")) var id: String
        @Flag(help: "Show the job's progress on stderr until it ends, then print it and exit as `import` would.")
        var follow = false
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            let id = try jobID(self.id, command: "jobs show")
            let pool = ConnectionPool(conninfo: try database.resolve(), configuration: PoolConfiguration(size: 1, waitLimit: .seconds(10)))
            defer { pool.close() }
            let found: JobRecord?
            do {
                found = try pool.withConnection { try JobStore().job(id: id, on: $0) }
            } catch {
                throw CommandFailure("jobs show: \(error)")
            }
            guard let found else { throw CommandFailure("jobs show: no such import job \(id)") }
            guard follow else {
                print(found.job.body)
                return
            }
            let ended = try JobFollower(pool: pool, terminal: isatty(2) == 1).follow(found.job)
            print(ended.body)
            if case .failure(let why)? = JobCommandEnd.of(ended) {
                throw CommandFailure("jobs show: \(why)")
            }
        }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel an import job, as DELETE /api/imports/{id} does, and print it.",
            discussion: """
            A queued or running job is cancelled at once: no batch starts after it, what was \
            committed stays, and the campaign's stats are recomputed. A job that has already \
            ended is printed as it ended. Exits 0 either way, non-zero when there is no such job.
            """
        )

        @Argument(help: ArgumentHelp("The job's id (printed by `import --async`).", valueName: "id")) var id: String
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            let id = try jobID(self.id, command: "jobs cancel")
            let url = try database.resolve()
            let record: JobRecord?
            do {
                let connection = try Connection.connect(url)
                defer { connection.close() }
                record = try JobStore().cancel(id: id, on: connection)
            } catch {
                throw CommandFailure("jobs cancel: \(error)")
            }
            guard let job = record?.job else { throw CommandFailure("jobs cancel: no such import job \(id)") }
            print(job.body)
            if job.state == .finished {
                printError("jobs cancel: job \(id) had already finished (status \(job.httpStatus.map(String.init) ?? "none")); nothing changed")
            }
        }
    }
}

/// A job id as the endpoints take it; anything else is refused in one line, before the
/// database is asked (ArgumentParser's validation would add the usage).
private func jobID(_ text: String, command: String) throws -> String {
    guard UUIDPattern.matches(text) else { throw CommandFailure("\(command): the job id must be a UUID, not \(text)") }
    return text
}

/// Polls a job until it is final, drawing its progress on stderr as the synchronous import does.
struct JobFollower {
    let pool: ConnectionPool
    let terminal: Bool

    /// Often enough for the terminal's redraw to look live; off a terminal a line is written
    /// every 5 s only, so one poll a second is plenty.
    var pollEvery: Duration { terminal ? .milliseconds(250) : .seconds(1) }
    /// The database may be down for a while (a restart, a failover) and the job goes on; a follower
    /// that has not reached it for this long gives up rather than hang.
    static let unreachableLimit: Duration = .seconds(60)

    func follow(_ first: ImportJob) throws -> ImportJob {
        // The size only feeds the line: without it the line has no "of N" and no time left.
        let size = try? pool.withConnection { try ListSources.size(ofList: first.listID, on: $0) }
        var pacing = ProgressPacing(output: terminal ? .terminal : .plain)
        var progress = FollowedProgress()
        var job = first
        var unreachableSince: MonotonicInstant?
        while true {
            let now = MonotonicInstant.now()
            let line = "jobs show: " + (job.state == .queued ? "queued, " : "") + progress.progress(of: job, at: now).line(listSize: size)
            if let text = pacing.text(for: line, at: now, final: job.state.isFinal) { writeError(text) }
            if job.state.isFinal { return job }
            usleep(UInt32(pollEvery.nanoseconds / 1000))
            do {
                guard let next = try pool.withConnection({ try JobStore().job(id: job.id, on: $0) }) else {
                    throw CommandFailure("jobs show: import job \(job.id) is gone")
                }
                job = next.job
                unreachableSince = nil
            } catch {
                let since = unreachableSince ?? now
                unreachableSince = since
                // The pool replaces a lost connection at the next poll; anything else will not heal.
                if JobRunner.isUnreachable(error) && MonotonicInstant.now() - since < Self.unreachableLimit { continue }
                if terminal { writeError("\n") }
                throw error is CommandFailure ? error : CommandFailure("jobs show: \(error)")
            }
        }
    }
}
