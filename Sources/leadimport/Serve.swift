import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import FastCGIServer
import Importer
import Metrics
import Platform
import Postgres
import Supervisor
import Service

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the FastCGI server.",
        discussion: """
        Without --listen it serves the listening socket handed over on standard input (systemd \
        StandardInput=socket, spawn-fcgi). A supervisor holds the socket and runs --processes worker \
        processes, each with --workers threads and its own pool of --pool-size database connections; \
        a worker process that dies is replaced within a second.
        SIGTERM stops accepting, finishes the requests in flight and exits 0. SIGHUP replaces the \
        worker processes one by one without failing a request.
        """
    )

    @Option(help: ArgumentHelp("unix:PATH or HOST:PORT (default: the socket on standard input).", valueName: "address"))
    var listen: String?

    @OptionGroup var worker: WorkerOptions

    @Option(help: "Worker processes under the supervisor.")
    var processes: Int = ServiceLimits.defaultProcesses

    @OptionGroup var database: DatabaseOptions

    func validate() throws {
        guard (1...64).contains(processes) else { throw ValidationError("--processes must be between 1 and 64") }
        try worker.check()
    }

    func run() throws {
        let url = try database.resolve()
        var configuration = worker.configuration
        configuration.processes = processes
        Log.minimumLevel = configuration.logLevel
        Log.format = configuration.logFormat
        let listenFD: Int32
        do {
            if let listen {
                listenFD = try ListenSocket.open(ListenAddress(parsing: listen))
            } else {
                listenFD = try ListenSocket.inheritedStandardInput()
            }
        } catch {
            throw CommandFailure("serve: \(error)")
        }
        // The connection string reaches the children through their environment, never their
        // command line, where `ps` would show a password.
        setEnvironment("DATABASE_URL", url)
        // glibc's malloc gives every thread that allocates its own arena (64 MiB of address
        // space, pages kept after free) and raises its trim threshold as it sees large frees: an
        // import's stage threads would leave each worker process holding megabytes it no longer
        // uses. Two arenas and fixed thresholds keep the service's memory flat; an operator's
        // own settings win.
        for (name, value) in [("MALLOC_ARENA_MAX", "2"), ("MALLOC_TRIM_THRESHOLD_", "131072"), ("MALLOC_MMAP_THRESHOLD_", "65536")]
        where environment(name) == nil {
            setEnvironment(name, value)
        }
        let arguments = ["leadimport", "serve-worker"] + worker.arguments + ["--job-runners", String(configuration.jobRunners)]
        // The worker processes count into one region, so any of them answers /metrics for all.
        var metrics: MetricsRegion?
        if !worker.noMetrics {
            do {
                metrics = try MetricsRegion.shared(cells: MetricsLayout.cells(forProcesses: configuration.processes))
            } catch {
                Log.warning("metrics region not created; each worker process reports its own numbers", ["error": "\(error)"])
            }
        }
        let supervisor = Supervisor(listenFD: listenFD, configuration: SupervisorConfiguration(
            childArguments: arguments,
            processes: configuration.processes,
            stopTimeout: configuration.stopTimeout,
            readyTimeout: configuration.readyTimeout,
            metrics: metrics
        ))
        Log.info("serving", [
            "listen": listen ?? "standard input",
            "processes": String(processes),
            "workers": String(worker.workers),
            "pool_size": String(worker.poolSize),
            "job_runners": String(configuration.jobRunners),
        ])
        let status = supervisor.run()
        if status != 0 { throw ExitCode(status) }
    }
}

/// What each worker process runs with; the supervisor passes these on to its children.
struct WorkerOptions: ParsableArguments {
    @Option(help: "Worker threads in each worker process (default: twice the cores, at most 32).")
    var workers: Int = ServiceLimits.defaultWorkers(cores: onlineCores())

    @Option(name: .customLong("pool-size"), help: "Database connections in each worker process (default: one more than the cores, 3 to 17; the last one is kept for requests).")
    var poolSize: Int = ServiceLimits.defaultPoolSize(cores: onlineCores())

    @Option(name: .customLong("job-runners"), help: "Import jobs each worker process runs at once (default: 2; 3 with one process).")
    var jobRunners: Int?

    @Option(name: .customLong("wait-limit"), help: "Seconds a request waits for a database connection before it is answered 503.")
    var waitLimit: Double = 2

    @Option(name: .customLong("log-level"), help: ArgumentHelp("debug, info, warning or error.", valueName: "level"))
    var logLevel: String = Log.Level.info.rawValue

    @Option(name: .customLong("log-format"), help: ArgumentHelp("logfmt (key=value) or json (one object per line, with its time).", valueName: "format"))
    var logFormat: String = Log.Format.logfmt.rawValue

    @Option(name: .customLong("slow-request"), help: ArgumentHelp("Seconds after which a request is counted slow and logged.", valueName: "seconds"))
    var slowRequest: Double = 5

    @Flag(name: .customLong("no-metrics"), help: "Count nothing and answer /metrics 404 (to measure what counting costs).")
    var noMetrics = false

    func check() throws {
        guard (1...1024).contains(workers) else { throw ValidationError("--workers must be between 1 and 1024") }
        guard (1...256).contains(poolSize) else { throw ValidationError("--pool-size must be between 1 and 256") }
        guard waitLimit > 0 && waitLimit <= 60 else { throw ValidationError("--wait-limit must be between 0 and 60 seconds") }
        guard Log.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be debug, info, warning or error") }
        guard Log.Format(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be logfmt or json") }
        guard slowRequest > 0 && slowRequest <= 3600 else { throw ValidationError("--slow-request must be between 0 and 3600 seconds") }
        if let jobRunners, !(0...64).contains(jobRunners) { throw ValidationError("--job-runners must be between 0 and 64") }
    }

    /// The service's configuration with these options set.
    var configuration: ServiceConfiguration {
        var configuration = ServiceConfiguration(cores: onlineCores())
        configuration.workers = workers
        configuration.poolSize = poolSize
        configuration.waitLimit = .milliseconds(Int64(waitLimit * 1000))
        configuration.logLevel = Log.Level(rawValue: logLevel) ?? .info
        configuration.logFormat = Log.Format(rawValue: logFormat) ?? .logfmt
        configuration.slowRequest = .milliseconds(Int64(slowRequest * 1000))
        configuration.jobRunnersSetting = jobRunners
        return configuration
    }

    var arguments: [String] {
        ["--workers", String(workers), "--pool-size", String(poolSize), "--wait-limit", String(waitLimit), "--log-level", logLevel,
         "--log-format", logFormat, "--slow-request", String(slowRequest)] + (noMetrics ? ["--no-metrics"] : [])
    }
}

/// One worker process, as the supervisor starts it: the listening socket is its standard input.
struct ServeWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve-worker",
        abstract: "A worker process of `serve` (started by the supervisor, not by hand).",
        shouldDisplay: false
    )

    @OptionGroup var worker: WorkerOptions
    @OptionGroup var database: DatabaseOptions

    func validate() throws { try worker.check() }

    func run() throws {
        let url = try database.resolve()
        let configuration = worker.configuration
        Log.minimumLevel = configuration.logLevel
        Log.format = configuration.logFormat
        let stop = try StopSignal.install()
        let metrics = ServiceMetrics.ofThisProcess(workers: configuration.workers, slowRequest: configuration.slowRequest,
                                                   recording: !worker.noMetrics)
        let poolSize = configuration.pool.size
        metrics.poolChanged(size: poolSize, open: 0, inUse: 0, waiting: 0)
        let pool = ConnectionPool(conninfo: url, configuration: configuration.pool, observe: { stats in
            metrics.poolChanged(size: poolSize, open: stats.open, inUse: stats.leased, waiting: stats.waiting)
        })
        // Set on SIGTERM (a stop, or a reload replacing this process): imports under way stop at
        // their next batch instead of running into the drain limit.
        let stopping = Locked(false)
        let runners = (0..<configuration.jobRunners).map { _ in
            JobRunner(connections: pool, waitLimit: configuration.pool.waitLimit, stopRequested: { stopping.current },
                      jobFinished: { record in
                          let counts = record.job.counts
                          metrics.jobEnded(.finished, rows: record.job.dryRun == true ? nil
                              : (counts.imported, counts.duplicates, counts.invalid, counts.errors))
                      })
        }
        let application = Application(pool: pool, configuration: configuration, metrics: metrics, listenFD: 0,
                                      stopRequested: { stopping.current }, jobRecorded: { runners.forEach { $0.wake() } })
        let process = WorkerProcess(
            listenFD: 0,
            configuration: WorkerProcessConfiguration(
                workers: configuration.workers, bodyLimit: configuration.bodyLimit, receiveTimeout: configuration.receiveTimeout,
                firstRecordTimeout: configuration.firstRecordTimeout, idleConnectionTimeout: configuration.idleConnectionTimeout,
                drainTimeout: configuration.drainTimeout, drainIdleTimeout: configuration.drainIdleTimeout
            ),
            handler: { request in application.respond(to: request) }
        )
        stop.onStop {
            stopping.withLock { $0 = true }
            process.stop()
        }
        // A worker process whose supervisor died (kill -9) must not serve on unsupervised.
        try startThread(name: "orphan-watch") {
            while !SupervisorChild.supervisorIsGone { sleep(1) }
            Log.warning("supervisor gone; stopping")
            stopping.withLock { $0 = true }
            process.stop()
        }
        // Each runner runs one job at a time; jobs spread over every process sharing the database.
        let runnersDone = CountdownLatch(count: runners.count)
        for runner in runners {
            try startThread(name: "job-runner") {
                defer { runnersDone.countDown() }
                runner.runUntilStopped()
            }
        }
        try process.run(onReady: { SupervisorChild.reportReady() })
        // The job under way is given back at its next batch, so another process resumes it at once.
        stopping.withLock { $0 = true }
        _ = runnersDone.wait()
        pool.close()
    }
}
