import Importer

/// What `leadimport serve` runs at most, worked out from its options, so that the limits the
/// systemd unit sets (systemd/leadimport.service: TasksMax, MemoryMax) hold whatever the load.
/// docs/operations.md walks through the figures.
public enum ServiceLimits {
    /// The defaults, capped so that a host with many cores still fits the unit's TasksMax.
    public static let defaultProcesses = 2
    public static func defaultWorkers(cores: Int) -> Int { min(2 * max(1, cores), 32) }
    public static func defaultPoolSize(cores: Int) -> Int { min(max(2, cores), 16) }

    /// The supervisor: one thread (it takes its signals with sigtimedwait).
    public static let supervisorThreads = 1

    /// One worker process: the thread that keeps time for the dispatcher (its main thread), the
    /// signal thread, the orphan watch and the job runner; the worker threads; a connect thread per pooled
    /// connection at most (while it connects); the import stage threads, a fixed budget
    /// (`LeadImporter.stageThreads`): an import that finds none free runs on its request's thread.
    public static func threadsPerWorkerProcess(workers: Int, poolSize: Int,
                                               stageThreads: Int = LeadImporter.defaultStageThreads) -> Int {
        4 + workers + poolSize + stageThreads
    }

    /// The whole service: during a reload one replacement worker process runs beside the others.
    public static func maximumThreads(processes: Int, workers: Int, poolSize: Int,
                                      stageThreads: Int = LeadImporter.defaultStageThreads) -> Int {
        supervisorThreads + (processes + 1) * threadsPerWorkerProcess(workers: workers, poolSize: poolSize, stageThreads: stageThreads)
    }
}
