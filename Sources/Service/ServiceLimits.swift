import Importer
import LeadCore

/// What `leadimport serve` runs at most, worked out from its options, so that the limits the
/// systemd unit sets (systemd/leadimport.service: TasksMax, MemoryMax) hold whatever the load.
/// docs/operations.md walks through the figures.
public enum ServiceLimits {
    /// The defaults, capped so that a host with many cores still fits the unit's TasksMax.
    public static let defaultProcesses = 2
    public static func defaultWorkers(cores: Int) -> Int { min(2 * max(1, cores), 32) }
    /// One more than the import stages may hold: the pool keeps its last connection for
    /// requests (`LeasePriority`).
    public static func defaultPoolSize(cores: Int) -> Int { min(max(2, cores), 16) + 1 }
    /// Job runners in each worker process. One user runs at most two jobs at once, so the whole
    /// service keeps more runners than that: another user's job never waits for theirs.
    public static func defaultJobRunners(processes: Int) -> Int {
        let perUser = JobRules.runningLimitPerUser
        return max(perUser, (perUser + 1 + processes - 1) / processes)
    }

    /// The supervisor: one thread (it takes its signals with sigtimedwait).
    public static let supervisorThreads = 1

    /// One worker process: the thread that keeps time for the dispatcher (its main thread), the
    /// signal thread and the orphan watch; the job runners, each with three page readers (a key
    /// reader and two filling pages in, for `leads` lists) and two batch writers while it runs a
    /// job; the worker threads and as many
    /// stand-ins at most (for workers whose import went long); a connect thread per pooled
    /// connection at most (while it connects); the import stage threads, a fixed budget
    /// (`LeadImporter.stageThreads`): an import that finds none free runs on its request's thread.
    public static func threadsPerWorkerProcess(workers: Int, poolSize: Int, jobRunners: Int,
                                               stageThreads: Int = LeadImporter.defaultStageThreads) -> Int {
        3 + 6 * jobRunners + 2 * workers + poolSize + stageThreads
    }

    /// An idle worker process: no stand-in, no connect thread, no stage thread.
    public static func idleThreadsPerWorkerProcess(workers: Int, jobRunners: Int) -> Int {
        3 + jobRunners + workers
    }

    /// The whole service: during a reload one replacement worker process runs beside the others.
    public static func maximumThreads(processes: Int, workers: Int, poolSize: Int, jobRunners: Int? = nil,
                                      stageThreads: Int = LeadImporter.defaultStageThreads) -> Int {
        let perProcess = threadsPerWorkerProcess(workers: workers, poolSize: poolSize,
                                                 jobRunners: jobRunners ?? defaultJobRunners(processes: processes), stageThreads: stageThreads)
        return supervisorThreads + (processes + 1) * perProcess
    }
}
