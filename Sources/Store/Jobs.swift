import LeadCore
import Platform
import Postgres

/// A job as stored: what the API shows of it, and what its runner needs to go on.
public struct JobRecord: Sendable, Equatable {
    public var job: ImportJob
    public var userID: String
    /// The token of the runner holding the job; nil unless it is running.
    public var leaseToken: String?
    /// How many times a runner claimed it.
    public var attempts: Int
    /// The members of the selection settled by committed batches.
    public var resumePosition: Int
    /// Where reading resumes after them, in the page feed's terms.
    public var resumeCursor: String?
    /// Set by `cancel` when this very call ended the job (it was queued or running).
    public var cancelledNow = false

    /// What a runner names in every write, while it holds the job.
    public var hold: JobHold? { leaseToken.map { JobHold(jobID: job.id, token: $0, dryRun: job.dryRun == true) } }
}

/// A runner's hold on a job: the job and the token of its claim. Every write a runner makes is
/// refused once the hold is gone (the lease ran out, another runner took the job, it was
/// cancelled), so a runner that stalled can never write over the one that took over.
public struct JobHold: Sendable, Equatable, Hashable {
    public let jobID: String
    public let token: String
    /// The job is a dry run: its batches commit what they would have inserted, never a lead.
    public let dryRun: Bool

    public init(jobID: String, token: String, dryRun: Bool = false) {
        self.jobID = jobID
        self.token = token
        self.dryRun = dryRun
    }
}

/// What an asynchronous POST asks to record, once every check of sections 1 and 4 passed.
public struct NewImportJob: Sendable, Equatable {
    public var user: String
    public var campaign: String
    public var list: String
    public var filter: JSONValue?
    public var dryRun: Bool?
    public var key: IdempotencyKey?
    /// `RequestFingerprint.of(campaign:body:)`; compared only when there is a key.
    public var fingerprint: [UInt8]

    public init(user: String, campaign: String, list: String, filter: JSONValue? = nil, dryRun: Bool? = nil,
                key: IdempotencyKey? = nil, fingerprint: [UInt8]) {
        self.user = user
        self.campaign = campaign
        self.list = list
        self.filter = filter
        self.dryRun = dryRun
        self.key = key
        self.fingerprint = fingerprint
    }
}

/// What committing one batch of a job came to.
public enum BatchCommit: Sendable {
    /// Committed: the batch's leads, its rejections, and the job's counts and position, which
    /// the record shows. The commit renewed the lease.
    case committed(JobRecord)
    /// Nothing was written: the runner no longer held the job when the statement began (its
    /// lease ran out, another runner took it, it was cancelled or has ended), or the job stood
    /// past where the batch starts (this batch, or one after it, already committed).
    case notHeld
    /// Nothing was written: once its leads were in, the batch found the job not where it starts
    /// (the batch before it failed, or the job was taken or cancelled meanwhile). The job's row
    /// tells which.
    case outOfTurn
    /// The campaign no longer takes leads: nothing was written.
    case refused(ImportStop)
    /// Lock timeout, statement timeout, deadlock: nothing was written; the same batch may
    /// commit later.
    case transient(PostgresError)
    /// The statement failed for one of the leads: nothing was written; smaller batches find
    /// the leads that cannot be inserted, which then commit as errors.
    case failed(PostgresError)
}

/// Every statement of import jobs. Each is one round trip and one transaction; the admission and
/// the claim are functions of the schema (version 6), which decide under a per-user lock.
public struct JobStore: Sendable {
    public let timing: LeaseTiming

    public init(timing: LeaseTiming = .standard) { self.timing = timing }

    /// A batch whose positions do not cover its span exactly once; never sent.
    public struct BatchNotWhole: Error, Sendable {}

    // MARK: the endpoints' statements

    /// Records a job, or answers with the first one for a retried Idempotency-Key, or refuses.
    public func record(_ request: NewImportJob, on connection: Connection) throws -> JobCreation {
        let result = try connection.query(
            "SELECT r.outcome, \(Self.columns("(r.job)")) FROM leadimport_record_import_job("
                + "$1::uuid, $2::uuid, $3::uuid, $4::json, $5::boolean, $6, $7, $8::bigint * interval '1 millisecond', $9) AS r",
            values: [
                .text(request.user), .text(request.campaign), .text(request.list), PostgresValue(request.filter?.serialized),
                request.dryRun.map { .text($0 ? "true" : "false") } ?? .null, PostgresValue(request.key?.text),
                request.key == nil ? .null : .bytea(request.fingerprint),
                .int(Int(JobAdmission.keyWindow.milliseconds)), .int(JobRules.queuedLimitPerUser),
            ])
        guard let row = result.first, let outcome = JobAdmission.Verdict(rawValue: try row.requiredString("outcome")) else {
            throw PostgresError(kind: .decoding, message: "the job admission answered nothing known")
        }
        switch outcome {
        case .record: return .created(try Self.record(row).job)
        case .returnKeyedJob: return .existing(try Self.record(row).job)
        case .keyReused: return .keyReused
        case .tooManyQueued: return .tooManyQueued
        }
    }

    /// What a bearer token finds of a job.
    public enum JobForToken: Sendable, Equatable {
        /// The token is unknown, revoked or expired.
        case unauthorized
        /// The token's user, and the job when it exists and is theirs.
        case authorized(user: String, job: JobRecord?)
    }

    /// The token and the job in one round trip: `GET /api/imports/{id}` is polled, and costs what
    /// a refused import costs.
    public func job(id: String, tokenHash: [UInt8], on connection: Connection) throws -> JobForToken {
        let result = try connection.query(Access.liveToken + """
            SELECT live.user_id AS token_user, \(Access.tokenColumns), \(Self.columns("j"))
            FROM live LEFT JOIN import_jobs j ON j.id = $2::uuid AND j.user_id = live.user_id
            """, values: [.bytea(tokenHash), .text(id)])
        guard let row = result.first else { return .unauthorized }
        try Access.touchWhenStale(row, on: connection)
        let user = try row.requiredString("token_user")
        return .authorized(user: user, job: try row.string("id") == nil ? nil : Self.record(row))
    }

    /// The job, for its owner only: nil when it does not exist or belongs to someone else.
    public func job(id: String, user: String, on connection: Connection) throws -> JobRecord? {
        try job(id: id, owner: user, on: connection)
    }

    /// The job of `owner`, or of anyone when `owner` is nil (the operator's, who has the database).
    func job(id: String, owner: String?, on connection: Connection) throws -> JobRecord? {
        try connection.query(
            "SELECT \(Self.columns("j")) FROM import_jobs j WHERE j.id = $1 AND ($2::uuid IS NULL OR j.user_id = $2)", [id, owner]
        ).first.map(Self.record)
    }

    /// Cancels a queued or running job of `user` at once: its runner's next write is refused, so
    /// no batch starts after this. A job that already ended is answered as it ended. nil when
    /// there is no such job of this user. The campaign's stats are recomputed when the job had
    /// inserted leads.
    /// Jobs queued and running now, across every instance (`/metrics`): both states have a
    /// partial index, so this reads only the live jobs, never the finished history.
    public static func activeCounts(on connection: Connection) throws -> (queued: Int, running: Int) {
        let row = try connection.query("""
            SELECT (SELECT count(*) FROM import_jobs WHERE state = 'queued'), (SELECT count(*) FROM import_jobs WHERE state = 'running')
            """).first
        return (try row?.requiredInt(0) ?? 0, try row?.requiredInt(1) ?? 0)
    }

    public func cancel(id: String, user: String, on connection: Connection) throws -> JobRecord? {
        try cancel(id: id, owner: user, on: connection)
    }

    /// `cancel` for `owner`'s job, or anyone's when `owner` is nil (the operator's).
    func cancel(id: String, owner: String?, on connection: Connection) throws -> JobRecord? {
        // The row is locked first: a batch committing now ends before, and the answer is the
        // job as it stands after that batch, not as the statement's snapshot saw it.
        let result = try connection.query("""
            WITH target AS (
                SELECT j.* FROM import_jobs j WHERE j.id = $1 AND ($2::uuid IS NULL OR j.user_id = $2) FOR UPDATE
            ), cancelled AS (
                UPDATE import_jobs j
                SET state = 'cancelled', finished_at = now(), lease_token = NULL, lease_expires_at = NULL
                FROM target
                WHERE j.id = target.id AND j.state IN ('queued', 'running')
                RETURNING j.*, target.state AS was
            )
            SELECT \(Self.columns("c")), c.was FROM cancelled c
            UNION ALL
            SELECT \(Self.columns("t")), t.state FROM target t WHERE NOT EXISTS (SELECT 1 FROM cancelled)
            """, [id, owner])
        guard let row = result.first else { return nil }
        var record = try Self.record(row)
        let was = try row.requiredString("was")
        if was == JobState.queued.rawValue || was == JobState.running.rawValue {
            record.cancelledNow = true
            Log.info("job cancelled", ["job_id": record.job.id, "was": was])
        }
        if was == JobState.running.rawValue, record.job.counts.imported > 0, record.job.dryRun != true {
            // In a statement of its own, after the cancel: its snapshot sees the last batch.
            do {
                try CampaignWriter.recomputeStats(campaignID: record.job.campaignID, on: connection)
            } catch {
                Log.warning("stats recompute failed after a cancel", ["campaign": record.job.campaignID, "error": "\(error)"])
            }
        }
        return record
    }

    /// A page of the job's rejections, for its owner only: nil when there is no such job of
    /// this user. The job's state and its rejections come from one snapshot, so a final job's
    /// last page is its last.
    public func rejections(id: String, user: String, request: RejectionsRequest, on connection: Connection) throws -> RejectionPage? {
        let result = try connection.query("""
            SELECT j.state, r.position, r.member_id, r.reason, r.detail
            FROM import_jobs j
            LEFT JOIN LATERAL (
                SELECT x.position, x.member_id, x.reason, x.detail FROM import_rejections x
                WHERE x.job_id = j.id AND x.position > $3
                ORDER BY x.position
                LIMIT $4
            ) r ON true
            WHERE j.id = $1 AND j.user_id = $2
            ORDER BY r.position
            """, values: [.text(id), .text(user), .int(request.after?.afterPosition ?? 0), .int(request.limit + 1)])
        guard let first = result.first else { return nil }
        guard let state = JobState(rawValue: try first.requiredString("state")) else { throw Self.unknown("state") }
        var fetched: [Rejection] = []
        for row in result.rows {
            guard let position = try row.int("position") else { continue }
            guard let reason = RejectionReason(rawValue: try row.requiredString("reason")) else { throw Self.unknown("reason") }
            fetched.append(Rejection(position: position, memberID: try row.requiredString("member_id"), reason: reason,
                                     detail: try row.requiredString("detail")))
        }
        return RejectionPage.make(request: request, fetched: fetched, jobIsFinal: state.isFinal)
    }

    // MARK: the runner's statements

    /// Takes the next job for a new runner: first one whose runner's lease ran out, then the
    /// oldest queued job of a user with fewer than two running. nil when there is none.
    public func claim(on connection: Connection) throws -> JobRecord? {
        try claim(token: CampaignWriter.newBatchToken(), on: connection)
    }

    /// `claim` with a token of the caller's (after a connection lost during a claim, the job
    /// holding it is the one that was claimed).
    public func claim(token: String, on connection: Connection) throws -> JobRecord? {
        try connection.query(
            "SELECT \(Self.columns("c")) FROM leadimport_claim_import_job($1::uuid, $2::bigint * interval '1 millisecond', $3) AS c",
            values: [.text(token), .int(Int(timing.duration.milliseconds)), .int(JobRules.runningLimitPerUser)]
        ).first.map(Self.record)
    }

    /// Extends the lease by `timing.duration` from now; false when the runner no longer holds
    /// the job (the lease ran out, another runner took it, it was cancelled or has ended).
    public func renew(_ hold: JobHold, on connection: Connection) throws -> Bool {
        try connection.query("""
            UPDATE import_jobs SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'
            WHERE id = $1 AND lease_token = $2 AND state = 'running' AND lease_expires_at > now()
            """, values: [.text(hold.jobID), .text(hold.token), .int(Int(timing.duration.milliseconds))]).affectedRows == 1
    }

    /// Gives the job back, still running, for any process's next claim to resume at once
    /// (the service stopping, the database unreachable); false when it was no longer held.
    public func release(_ hold: JobHold, on connection: Connection) throws -> Bool {
        try connection.query("""
            UPDATE import_jobs SET lease_expires_at = now()
            WHERE id = $1 AND lease_token = $2 AND state = 'running' AND lease_expires_at > now()
            """, [hold.jobID, hold.token]).affectedRows == 1
    }

    /// Ends the job with the synchronous import's status; nil when the runner no longer holds
    /// it (then whoever holds it, or the cancel, decided). The campaign's stats are recomputed
    /// in the same statement when the job inserted leads (not on a dry run), as the synchronous
    /// import recomputes them after its batches: a finished job is never run again, so stats
    /// left to a statement after it stayed stale for good when the process died in between or
    /// the finish's answer was lost. The statement's snapshot sees every batch of the job, as
    /// they committed before it.
    public func finish(_ hold: JobHold, httpStatus: Int, on connection: Connection) throws -> JobRecord? {
        precondition(JobRules.finishedStatuses.contains(httpStatus), "a job finishes with the synchronous import's status")
        return try connection.query("""
            WITH finished AS (
                UPDATE import_jobs j
                SET state = 'finished', http_status = $3, finished_at = now(), lease_token = NULL, lease_expires_at = NULL
                WHERE j.id = $1 AND j.lease_token = $2 AND j.state = 'running' AND j.lease_expires_at > now()
                RETURNING j.*
            ), stats AS (
                UPDATE campaigns c SET updated_at = now(), stats = \(CampaignWriter.stats(of: "c.id"))
                FROM finished f
                WHERE c.id = f.campaign_id AND f.imported > 0 AND f.dry_run IS NOT TRUE
            )
            SELECT \(Self.columns("f")) FROM finished f
            """, values: [.text(hold.jobID), .text(hold.token), .int(httpStatus)]).first.map(Self.record)
    }

    /// Commits one batch of the job in one statement and one transaction: its leads into the
    /// campaign (only into a draft, `ON CONFLICT DO NOTHING`, as `CampaignWriter` does; nothing
    /// on a dry run, where what is not in the campaign yet counts as imported), its rejections,
    /// and the job's counts and position, which also renews the lease. The lease guards all of
    /// it: a runner that no longer holds the job writes nothing. Throws
    /// `CampaignWriter.LostAttempt` when the connection is lost: the job's position then tells
    /// whether the batch committed.
    public func commit(_ batch: JobBatch, of hold: JobHold, on connection: Connection) throws -> BatchCommit {
        guard batch.isWhole else { throw BatchNotWhole() }
        let leads = batch.leads
        let firstPlaces = batch.firstPlaces
        // Only the first lead of each identity is tried, so only theirs go to the insert (none on
        // a dry run); the keys name every lead.
        // Indices, not copies of the leads: a copy retains and releases every string of a lead.
        let tried = hold.dryRun ? [] : leads.indices.filter { leads[$0].position == firstPlaces[$0] }
        func fields(_ field: (CandidateLead) -> String?) -> PostgresValue { .textArray(tried.map { field(leads[$0].lead) }) }
        // Positions, member ids and the like in binary: the server converts no text, a million
        // times over in a large job (docs/performance.md).
        let values: [PostgresValue] = [
            .text(hold.jobID), .text(hold.token), .int(batch.after), .int(batch.through), PostgresValue(batch.resumeAfter),
            .int(Int(timing.duration.milliseconds)),
            .integers(leads.map(\.position)), .uuids(leads.map(\.memberID)),
            fields { $0.email }, fields { $0.linkedinURL }, fields { $0.firstName }, fields { $0.lastName }, fields { $0.name },
            fields { $0.company }, fields { $0.position }, fields { $0.headline }, fields { $0.customFields },
            .integers(batch.settled.map(\.position)), .uuids(batch.settled.map(\.memberID)),
            .textArray(batch.settled.map(\.reason.rawValue)), .textArray(batch.settled.map(\.detail)),
            .text(RejectionDetail.alreadyInCampaign), .text(RejectionDetail.repeatOfPositionPrefix),
            .textArray(leads.map(\.lead.identity)), .integers(firstPlaces),
        ]
        do {
            guard let row = try connection.query(hold.dryRun ? Self.dryRunCommitSQL : Self.commitSQL, values: values).first else {
                return .notHeld
            }
            return .committed(try Self.record(row))
        } catch let error as PostgresError {
            if error.isConnectionProblem || connection.isBroken { throw CampaignWriter.LostAttempt(error: error) }
            if DatabaseFailure(sqlState: error.sqlState, connectionProblem: false) == .batchOutOfTurn { return .outOfTurn }
            // Its positions recorded by an attempt that committed meanwhile (one whose connection
            // was lost, still running on the server).
            if error.sqlState == "23505", error.constraint == "import_rejections_pkey" { return .outOfTurn }
            switch CampaignWriter.classify(error) {
            case .refused(let stop): return .refused(stop)
            case .transient(let error): return .transient(error)
            case .failed(let error): return .failed(error)
            case .inserted: return .failed(error)
            }
        }
    }

    /// Two batches of a job may be in flight at once (their leads never share an identity:
    /// `PlannedJobBatch.of` settles repeats of the batch before). Each batch takes an advisory
    /// lock named by its end position as it starts, and waits for the one named by its start
    /// (its predecessor's) once its leads and rejections are in; only then does it lock the
    /// job's row and move it, under the guard that the job still stands where the batch starts.
    /// A batch that finds otherwise aborts whole (`leadimport_job_batch_in_turn`, LI004).
    static let commitSQL = commitSQL(dryRun: false)
    /// A dry run's: what is neither in the campaign nor would have been inserted by a batch
    /// before counts as imported, and is kept (`import_dry_run_identities`) for the batches after.
    static let dryRunCommitSQL = commitSQL(dryRun: true)

    /// Two statements, not one with both branches: the one that runs has no part it skips,
    /// whose plan each batch would start and whose join each lead would go through.
    private static func commitSQL(dryRun: Bool) -> String {
        // What the batch puts in (the leads inserted, or those a dry run would insert), by identity.
        let putting = dryRun ? """
            would_insert AS (
                INSERT INTO import_dry_run_identities (job_id, identity)
                SELECT job.id, r.identity FROM keys r CROSS JOIN job
                WHERE r.place = r.first_place AND (SELECT ok FROM accepting)
                  AND NOT EXISTS (SELECT 1 FROM campaign_leads l WHERE l.campaign_id = job.campaign_id AND l.identity_key = r.identity)
                ON CONFLICT DO NOTHING
                RETURNING identity
            )
            """ : """
            inserted AS (
                -- Only the first lead of each identity ($9-$17): the others repeat it.
                INSERT INTO campaign_leads (campaign_id, user_id, status, email, linkedin_url, first_name, last_name, name,
                                            company, position, headline, source, source_ref, custom_fields)
                SELECT job.campaign_id, job.user_id, 'pending', t.email, t.linkedin_url, t.first_name, t.last_name, t.name,
                       t.company, t.title, t.headline, 'list', job.source_ref, t.custom_fields::jsonb
                FROM job
                CROSS JOIN unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                                  $16::text[], $17::text[])
                     AS t(email, linkedin_url, first_name, last_name, name, company, title, headline, custom_fields)
                WHERE (SELECT ok FROM accepting)
                ON CONFLICT (campaign_id, identity_key) DO NOTHING
                RETURNING identity_key
            )
            """
        let (putIn, identity) = dryRun ? ("would_insert", "identity") : ("inserted", "identity_key")
        return """
            WITH job AS (
                -- The runner held the job as the statement began; the progress update checks again.
                -- A job already past the batch's start is left alone: that batch committed.
                -- The list's id as text once, not once for every lead inserted (source_ref).
                SELECT j.id, j.user_id, j.campaign_id, j.list_id::text AS source_ref,
                       pg_try_advisory_xact_lock(\(batchLockClass), hashtext(j.id::text || '/' || $4::int)) AS announced
                FROM import_jobs j
                WHERE j.id = $1 AND j.lease_token = $2 AND j.state = 'running' AND j.lease_expires_at > now()
                  AND j.resume_position <= $3 AND j.dry_run IS \(dryRun ? "TRUE" : "NOT TRUE")
            ), keys AS (
                -- Each lead's place, identity (as the runner normalized it: the identity trigger keys
                -- the campaign's rows the same way, one definition, IdentityDifferentialTests), and
                -- the place of the batch's first lead with that identity (JobBatch.firstPlaces): only
                -- that one is tried, the others repeat it. Narrow, so the wide fields are not copied:
                -- the insert reads them straight from the arrays. Should the two identities ever
                -- differ, an inserted lead would also be counted a duplicate: the counts CHECK refuses
                -- that batch, and splitting it settles that lead as an error.
                -- The arrays in the select list, not in FROM: expanded as they are read (ProjectSet),
                -- not first copied into a tuplestore (a function scan), and all of the same length.
                SELECT unnest($7::int[]) AS place, unnest($8::uuid[]) AS member_id, unnest($24::text[]) AS identity,
                       unnest($25::int[]) AS first_place
                FROM job
            ), accepting AS (
                -- Once, only for a batch with leads, as the synchronous import: refuses unless the
                -- campaign is still a draft, and share-locks it until this commits.
                SELECT leadimport_campaign_accepts_leads(job.campaign_id) AS ok FROM job WHERE cardinality($7::int[]) > 0
            ), \(putting), rejected AS (
                INSERT INTO import_rejections (job_id, position, member_id, reason, detail)
                -- A join, not NOT EXISTS under the OR (a subquery run for each lead, scanning the
                -- batch's inserts): each identity is put in at most once.
                SELECT job.id, r.place, r.member_id, 'duplicate',
                       CASE WHEN r.place <> r.first_place THEN $23 || r.first_place ELSE $22 END
                FROM keys r CROSS JOIN job
                LEFT JOIN \(putIn) p ON p.\(identity) = r.identity
                WHERE r.place <> r.first_place OR p.\(identity) IS NULL
                UNION ALL
                SELECT job.id, unnest($18::int[]), unnest($19::uuid[]), unnest($20::text[]), unnest($21::text[])
                FROM job
                RETURNING reason
            ), tally AS MATERIALIZED (
                -- Counted from what was recorded, so a finished job's rejections of each reason
                -- number exactly its counts; the counts CHECK refuses a batch that lost a member.
                -- Reading every row runs both inserts to their end before the wait below.
                SELECT (SELECT count(*) FROM \(putIn)) AS imported,
                       count(*) FILTER (WHERE reason = 'duplicate') AS duplicates,
                       count(*) FILTER (WHERE reason = 'invalid') AS invalid,
                       count(*) FILTER (WHERE reason = 'error') AS errors
                FROM rejected
            ), in_turn AS MATERIALIZED (
                -- The batch before (the one whose end is this batch's start) commits or fails first.
                SELECT t.*, pg_advisory_xact_lock_shared(\(batchLockClass), hashtext(job.id::text || '/' || $3::int)) AS waited
                FROM tally t CROSS JOIN job
            ), progress AS (
                -- The row lock. The statement's snapshot may show the job before the batch before
                -- committed; READ COMMITTED evaluates the SET again on the newest version of a row
                -- updated meanwhile, so the batch moves the job only from where it starts, and its
                -- counts add to the batch before's.
                UPDATE import_jobs j
                SET imported = \(inTurn("imported")), duplicates = \(inTurn("duplicates")),
                    invalid = \(inTurn("invalid")), errors = \(inTurn("errors")),
                    resume_position = CASE WHEN j.resume_position = $3::int THEN $4::int ELSE j.resume_position END,
                    resume_cursor = CASE WHEN j.resume_position = $3::int THEN $5 ELSE j.resume_cursor END,
                    lease_expires_at = now() + $6::bigint * interval '1 millisecond'
                FROM in_turn t
                WHERE j.id = $1 AND j.lease_token = $2 AND j.state = 'running' AND j.lease_expires_at > now()
                RETURNING j.*
            ), checked AS (
                SELECT leadimport_job_batch_in_turn(EXISTS (SELECT 1 FROM job), EXISTS (SELECT 1 FROM progress WHERE resume_position = $4::int),
                                                    $1, $3) AS ok
            )
            SELECT \(columns("p")) FROM checked CROSS JOIN progress p WHERE checked.ok
            """
    }

    /// A count of the job plus the batch's, only when the job stands where the batch starts.
    private static func inTurn(_ column: String) -> String {
        "CASE WHEN j.resume_position = $3::int THEN j.\(column) + t.\(column) ELSE j.\(column) END"
    }

    /// The first key of a batch's advisory locks ("jobb"); the second hashes the job and a position.
    static let batchLockClass = 1_785_684_578

    // MARK: decoding

    /// The columns `record` reads, from the row `row` (an alias, or a composite such as `(r.job)`).
    static func columns(_ row: String) -> String {
        func milliseconds(_ column: String) -> String { "floor(extract(epoch FROM \(row).\(column)) * 1000)::bigint AS \(column)_ms" }
        return """
            \(row).id, \(row).user_id, \(row).campaign_id, \(row).list_id, \(row).state, \(row).imported, \(row).duplicates, \
            \(row).invalid, \(row).errors, \(row).http_status, \(milliseconds("created_at")), \(milliseconds("started_at")), \
            \(milliseconds("finished_at")), \(row).filter::text AS filter, \(row).dry_run, \(row).lease_token, \(row).attempts, \
            \(row).resume_position, \(row).resume_cursor
            """
    }

    static func record(_ row: Row) throws -> JobRecord {
        guard let state = JobState(rawValue: try row.requiredString("state")) else { throw unknown("state") }
        var filter: JSONValue?
        if let text = try row.string("filter") {
            do { filter = try JSONReader.parse(text) } catch { throw PostgresError(kind: .decoding, message: "a job's filter is not JSON") }
        }
        func time(_ column: String) throws -> JobTime? { try row.int(column).map { JobTime(millisecondsSinceEpoch: Int64($0)) } }
        let job = ImportJob(
            id: try row.requiredString("id"), campaignID: try row.requiredString("campaign_id"), listID: try row.requiredString("list_id"),
            state: state,
            counts: ImportCounts(imported: try row.requiredInt("imported"), duplicates: try row.requiredInt("duplicates"),
                                 invalid: try row.requiredInt("invalid"), errors: try row.requiredInt("errors")),
            httpStatus: try row.int("http_status"), createdAt: JobTime(millisecondsSinceEpoch: Int64(try row.requiredInt("created_at_ms"))),
            startedAt: try time("started_at_ms"), finishedAt: try time("finished_at_ms"), filter: filter, dryRun: try row.bool("dry_run"))
        return JobRecord(job: job, userID: try row.requiredString("user_id"), leaseToken: try row.string("lease_token"),
                         attempts: try row.requiredInt("attempts"), resumePosition: try row.requiredInt("resume_position"),
                         resumeCursor: try row.string("resume_cursor"))
    }

    static func unknown(_ what: String) -> PostgresError {
        PostgresError(kind: .decoding, message: "a job's \(what) is not one this service knows")
    }
}
