#if canImport(Glibc)
import Glibc
#endif
import CSharedMemory
import Platform

/// The memory the service's worker processes count in: a header and one cell per process, in a
/// memfd the supervisor creates and hands each child (`ProcessLauncher`: fd 4,
/// `LEADIMPORT_METRICS_FD`, `LEADIMPORT_METRICS_CELL`). Every word is changed with atomic
/// operations, so processes and threads add to it without a lock.
public final class MetricsRegion: @unchecked Sendable {
    /// The memfd (-1 for a region of one process's own).
    public let descriptor: Int32
    public let cellCount: Int
    let words: UnsafeMutablePointer<UInt64>

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private init(descriptor: Int32, cellCount: Int, words: UnsafeMutablePointer<UInt64>) {
        self.descriptor = descriptor
        self.cellCount = cellCount
        self.words = words
    }

    /// A region to share with child processes, in a new memfd (close-on-exec: children get it
    /// only through the spawn's file actions).
    public static func shared(cells: Int) throws -> MetricsRegion {
        var fd = leadimport_memfd_create("leadimport-metrics")
        guard fd >= 0 else { throw Failure(description: "memfd_create: \(SystemError.text(errno))") }
        // Above the descriptors a child's spawn puts things on (0 to 4, `ProcessLauncher`).
        if fd <= 4 {
            let moved = fcntl(fd, F_DUPFD_CLOEXEC, 5)
            let code = errno
            close(fd)
            guard moved >= 0 else { throw Failure(description: "fcntl: \(SystemError.text(code))") }
            fd = moved
        }
        let bytes = MetricsLayout.regionWords(cells: cells) * 8
        guard ftruncate(fd, off_t(bytes)) == 0 else {
            let code = errno
            close(fd)
            throw Failure(description: "ftruncate: \(SystemError.text(code))")
        }
        let region = try map(fd: fd, bytes: bytes, cells: cells)
        region.store(MetricsLayout.magicValue, header: MetricsLayout.Header.magic)
        region.store(UInt64(cells), header: MetricsLayout.Header.cellCount)
        return region
    }

    /// The region a supervisor handed this process on `fd`.
    public static func attach(fd: Int32) throws -> MetricsRegion {
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_size >= MetricsLayout.Header.words * 8 else {
            throw Failure(description: "fd \(fd) holds no metrics region")
        }
        let probe = try map(fd: fd, bytes: MetricsLayout.Header.words * 8, cells: 0)
        let magic = probe.load(header: MetricsLayout.Header.magic)
        let cells = Int(probe.load(header: MetricsLayout.Header.cellCount))
        munmap(probe.words, MetricsLayout.Header.words * 8)
        let bytes = MetricsLayout.regionWords(cells: cells) * 8
        guard magic == MetricsLayout.magicValue, cells > 0, Int(status.st_size) >= bytes else {
            throw Failure(description: "fd \(fd) holds no metrics region of this version")
        }
        return try map(fd: fd, bytes: bytes, cells: cells)
    }

    /// A region of this process alone (a worker process started by hand, a test).
    public static func ofThisProcess() -> MetricsRegion {
        let words = MetricsLayout.regionWords(cells: 1)
        let memory = UnsafeMutablePointer<UInt64>.allocate(capacity: words)
        memory.initialize(repeating: 0, count: words)
        let region = MetricsRegion(descriptor: -1, cellCount: 1, words: memory)
        region.store(MetricsLayout.magicValue, header: MetricsLayout.Header.magic)
        region.store(1, header: MetricsLayout.Header.cellCount)
        return region
    }

    private static func map(fd: Int32, bytes: Int, cells: Int) throws -> MetricsRegion {
        guard let memory = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), memory != MAP_FAILED else {
            throw Failure(description: "mmap: \(SystemError.text(errno))")
        }
        return MetricsRegion(descriptor: fd, cellCount: cells, words: memory.bindMemory(to: UInt64.self, capacity: bytes / 8))
    }

    // MARK: words

    func load(header word: Int) -> UInt64 { leadimport_word_load(words + word) }
    func store(_ value: UInt64, header word: Int) { leadimport_word_store(words + word, value) }
    func add(_ value: UInt64, header word: Int) { leadimport_word_add(words + word, value) }
    func raise(_ value: UInt64, header word: Int) { leadimport_word_raise(words + word, value) }

    func cell(_ index: Int) -> UnsafeMutablePointer<UInt64> {
        words + MetricsLayout.Header.words + index * MetricsLayout.Cell.words
    }

    // MARK: the supervisor's side

    /// A child process now holds `cell`.
    public func occupy(cell index: Int, pid: Int32) {
        guard index < cellCount else { return }
        leadimport_word_store(cell(index) + MetricsLayout.Cell.pid, UInt64(UInt32(bitPattern: pid)))
    }

    /// The process that held `cell` has exited: what it held is no longer held. Its counters stay.
    public func vacate(cell index: Int) {
        guard index < cellCount else { return }
        let words = cell(index)
        let busy = leadimport_word_load(words + MetricsLayout.Cell.busy)
        if busy > 0 { subtractBusy(busy) }
        for gauge in 0..<MetricsLayout.Cell.gaugeWords { leadimport_word_store(words + gauge, 0) }
    }

    public enum Restart { case afterExit, byReload }

    public func recordRestart(_ restart: Restart) {
        add(1, header: restart == .afterExit ? MetricsLayout.Header.restartsAfterExit : MetricsLayout.Header.restartsByReload)
    }

    /// The lowest cell no live process holds.
    public func freeCell(held: some Sequence<Int>) -> Int? {
        let taken = Set(held)
        return (0..<cellCount).first { !taken.contains($0) }
    }

    // MARK: busy workers, service-wide

    func addBusy() -> UInt64 { leadimport_word_add_fetch(words + MetricsLayout.Header.busyNow, 1) }

    /// Never below zero: a process killed between its two updates must not wrap the gauge.
    func subtractBusy(_ count: UInt64) { leadimport_word_sub_floor(words + MetricsLayout.Header.busyNow, count) }
}
