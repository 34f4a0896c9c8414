#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Importer
import LeadCore
import Platform
import Postgres
import Store

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a list into a campaign from the shell: the endpoint's import, without HTTP.",
        discussion: """
        Progress goes to stderr: on a terminal one line redrawn in place (members handled of the \
        list's size, the counts, rows per second, time left), otherwise a plain line every 5 \
        seconds and the last one. The same JSON body the endpoint answers goes to stdout. Exits 0 \
        when the endpoint would answer 200, non-zero otherwise.

        With --async the import is recorded as a job after the same checks, for the service's \
        worker processes (`serve`) to run: the job goes to stdout as JSON and the command exits 0 \
        at once. `jobs show ID --follow` waits for it.
        """
    )

    @Option(help: ArgumentHelp("The user who owns the campaign and the list.", valueName: "uuid")) var user: String
    @Option(help: ArgumentHelp("The campaign to import into.", valueName: "uuid")) var campaign: String
    @Option(help: ArgumentHelp("The list to import.", valueName: "uuid")) var list: String
    @Option(help: ArgumentHelp("What part of the list to import, and in what order: the body's `filter` as JSON.", valueName: "json"))
    var filter: String?
    @Flag(name: .customLong("dry-run"), help: "Answer what the import would answer, and write nothing.")
    var dryRun = false
    @Flag(name: .customLong("async"), help: "Record the import as a job, print the job and exit, without waiting for it.")
    var recordJob = false
    @OptionGroup var database: DatabaseOptions

    func validate() throws {
        for (name, value) in [("--user", user), ("--campaign", campaign), ("--list", list)] where !UUIDPattern.matches(value) {
            throw ValidationError("\(name) must be a UUID")
        }
    }

    /// The endpoint's checks of `filter` and `dryRun`, before anything is read: a mistyped
    /// filter must never import the whole list.
    func checkSelection() throws -> ImportChoice {
        var selection = ImportFilter()
        if let filter {
            guard let value = try? JSONReader.parse(filter) else {
                throw CommandFailure("import: invalid_filter: --filter is not JSON")
            }
            switch ImportFilter.parse(value) {
            case .failure(let error): throw CommandFailure("import: \(error.code): \(error.message)")
            case .success(let parsed): selection = parsed
            }
        }
        return ImportChoice(filter: selection, dryRun: dryRun)
    }

    func run() throws {
        let choice = try checkSelection()
        let url = try database.resolve()
        // The import's stages lease as bulk work, which leaves the pool's last connection to
        // requests: three give them the two the service's imports have.
        let pool = ConnectionPool(conninfo: url, configuration: PoolConfiguration(size: 3, waitLimit: .seconds(10)))
        defer { pool.close() }
        let target: ImportTarget
        do {
            switch try pool.withConnection({ try Access.target(user: user, campaign: campaign, list: list, on: $0) }) {
            case .failure(let error):
                print(error.body)
                throw CommandFailure("import: \(error.message)")
            case .success(let resolved):
                target = resolved
            }
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            print(RequestError.unavailable.body)
            throw CommandFailure("import: \(error)")
        }
        if recordJob { return try record(target, on: pool) }
        // The size only feeds the progress line: an import goes on without it.
        // A filter's selection has no size until it is read.
        let size = choice.filter.selectsEverything ? try? pool.withConnection { try ListSources.size(of: target, on: $0) } : nil
        let pacing = Locked(ProgressPacing(output: isatty(2) == 1 ? .terminal : .plain))
        let started = MonotonicInstant.now()
        @Sendable func report(_ progress: ImportProgress, final: Bool) {
            let line = "import: " + progress.line(listSize: size)
            if let text = pacing.withLock({ $0.text(for: line, at: .now(), final: final) }) { writeError(text) }
        }
        let outcome: ImportOutcome
        do {
            let importer = LeadImporter(connections: pool, dryRunsReadingAhead: ThreadBudget(1))
            outcome = choice.isWholeList
                ? try importer.run(target) { report($0, final: false) }
                : importer.runSelection(target, choice: choice) { report($0, final: false) }
        } catch {
            print(RequestError.unavailable.body)
            throw CommandFailure("import: \(error)")
        }
        report(ImportProgress(rowsRead: outcome.counts.total, counts: outcome.counts, elapsed: MonotonicInstant.now() - started), final: true)
        print(outcome.body)
        guard outcome.status == 200 else {
            throw CommandFailure("import: finished with status \(outcome.status)")
        }
    }

    /// Records the import as a job, as an asynchronous POST of the same request would, and prints it.
    private func record(_ target: ImportTarget, on pool: ConnectionPool) throws {
        // The body this command stands for: a later asynchronous POST of it is the same request.
        var body = JSONObjectWriter()
        body.add("listId", target.listID)
        let given = filter.flatMap { try? JSONReader.parse($0) }
        if let given { body.add("filter", given) }
        if dryRun { body.add("dryRun", true) }
        let request = NewImportJob(user: target.userID, campaign: target.campaignID, list: target.listID, filter: given,
                                   dryRun: dryRun ? true : nil,
                                   fingerprint: RequestFingerprint.of(campaign: target.campaignID, body: Array(body.result.utf8)))
        let creation: JobCreation
        do {
            creation = try pool.withConnection { try JobStore().record(request, on: $0) }
        } catch {
            print(RequestError.unavailable.body)
            throw CommandFailure("import: \(error)")
        }
        guard let job = creation.job else {
            let error = creation.error ?? .internalError
            print(error.body)
            throw CommandFailure("import: \(error.message)")
        }
        print(job.body)
        printError("import: job \(job.id) is \(job.state.rawValue); `leadimport jobs show \(job.id) --follow` waits for it")
    }
}
