#if canImport(CMalloc)
import CMalloc
#endif

public enum Memory {
    /// Hands the heap's free pages back to the system. A large import passes millions of short-lived
    /// strings and arrays through malloc; without this a worker process keeps the high-water mark
    /// of its arenas resident until the next import happens to reuse it, so an idle service grows
    /// with the largest lists it has served.
    public static func returnFreePages() {
        #if canImport(CMalloc)
        _ = malloc_trim(0)
        #endif
    }
}
