import LeadCore
import Platform
import Postgres
import Store

/// The pages of a list after the first, in list order, read ahead on threads of their own while
/// the importer maps the page before. Reading stops at the list's end, at the first page that
/// cannot be read (`.failed`, then nothing), or when the importer calls `stop`.
protocol PageFeed: Sendable {
    /// The next page, waiting for it; nil after the last (or after a failure was handed out).
    func next() -> PageFeedItem?
    /// The importer wants no more pages: readers finish what they are doing and end.
    func stop()
    /// Waits until every reading thread has ended.
    func wait()
}

enum PageFeedItem: Sendable {
    case page(ListPage)
    case failed
}

/// How the feed reads: one statement per page on one thread, or, for a source whose pages are
/// dear to fill in, keys on one thread and the filling in on `hydrators` threads at once.
func makePageFeed(source: any ListSource, after first: ListPage, list: String, pageSize: Int, connections: any ConnectionSource,
                  waitLimit: Duration, hydrators: Int) throws(ThreadStartError) -> any PageFeed {
    if let hydrated = source as? any HydratedListSource {
        // Pages of half the size are filled in: libpq's result and its copy for a page being
        // filled in are the largest things an import holds (about 2 MB for 1000 members, with two
        // hydrators at once), and a smaller statement costs the database no more per member.
        return try HydratedPageFeed(source: hydrated, after: first.last, list: list, pageSize: max(1, pageSize / 2), connections: connections,
                                    waitLimit: waitLimit, hydrators: hydrators)
    }
    return try SequentialPageFeed(source: source, after: first.last, list: list, pageSize: pageSize, connections: connections, waitLimit: waitLimit)
}

/// Threads a feed runs on.
func pageFeedThreads(for source: any ListSource, hydrators: Int) -> Int {
    source is any HydratedListSource ? 1 + hydrators : 1
}

/// One reader thread, one statement per page, two pages ahead at most.
final class SequentialPageFeed: PageFeed, @unchecked Sendable {
    private let pages = BoundedQueue<PageFeedItem>(capacity: 2)
    private let done = CountdownLatch(count: 1)

    init(source: any ListSource, after cursor: ListCursor?, list: String, pageSize: Int, connections: any ConnectionSource,
         waitLimit: Duration) throws(ThreadStartError) {
        try startThread(name: "import-reader") { [pages, done] in
            defer { done.countDown() }
            var cursor = cursor
            var number = 1
            while let after = cursor {
                number += 1
                do {
                    let page = try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { connection in
                        try source.page(list: list, after: after, limit: pageSize, on: connection)
                    }
                    guard pages.put(.page(page)) else { return }
                    if page.members.count < pageSize { break }
                    cursor = page.last
                } catch {
                    Log.warning("page fetch failed", ["list": list, "page": String(number), "error": describe(error)])
                    pages.put(.failed)
                    break
                }
            }
            pages.close()
        }
    }

    func next() -> PageFeedItem? { pages.take() }
    func stop() { pages.close() }
    func wait() { _ = done.wait() }
}

/// A key reader runs ahead through the list's keys; `hydrators` threads each take the next page
/// of keys and fill it in on a connection of their own; the importer takes the filled pages in
/// list order. A page that cannot be read (keys or members) ends the feed there: the pages before
/// it are still handed out, none after it.
final class HydratedPageFeed: PageFeed, @unchecked Sendable {
    private let keyPages: BoundedQueue<(number: Int, keys: ListKeys)>
    private let pages: InOrderQueue<PageFeedItem>
    private let done: CountdownLatch

    init(source: any HydratedListSource, after cursor: ListCursor?, list: String, pageSize: Int, connections: any ConnectionSource,
         waitLimit: Duration, hydrators: Int) throws(ThreadStartError) {
        let keyPages = BoundedQueue<(number: Int, keys: ListKeys)>(capacity: hydrators)
        // As many filled pages as there are hydrators: the one the importer waits for is always
        // being filled by a hydrator that is not waiting for room, so no more are needed.
        let pages = InOrderQueue<PageFeedItem>(window: hydrators)
        let done = CountdownLatch(count: 1 + hydrators)
        (self.keyPages, self.pages, self.done) = (keyPages, pages, done)

        try startThread(name: "import-keys") {
            defer { done.countDown() }
            var cursor = cursor
            var number = 0
            while let after = cursor {
                do {
                    let keys = try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { connection in
                        try source.keys(list: list, after: after, limit: pageSize, on: connection)
                    }
                    if keys.ids.isEmpty { break }
                    guard keyPages.put((number, keys)) else { break }
                    number += 1
                    if keys.ids.count < pageSize { break }
                    cursor = keys.last
                } catch {
                    Log.warning("page fetch failed", ["list": list, "page": String(number + 2), "error": describe(error)])
                    pages.put(number, .failed)
                    number += 1
                    break
                }
            }
            // Pages numbered from here on will never come; the hydrators drain what was queued.
            pages.end(at: number)
            keyPages.close()
        }
        for started in 0..<hydrators {
            do {
                try startHydrator(source: source, keyPages: keyPages, pages: pages, done: done, list: list, connections: connections, waitLimit: waitLimit)
            } catch {
                // The threads already running are told to end and waited for; the rest never ran.
                keyPages.close()
                pages.close()
                for _ in started..<hydrators { done.countDown() }
                _ = done.wait()
                throw error
            }
        }
    }

    private func startHydrator(source: any HydratedListSource, keyPages: BoundedQueue<(number: Int, keys: ListKeys)>,
                               pages: InOrderQueue<PageFeedItem>, done: CountdownLatch, list: String, connections: any ConnectionSource,
                               waitLimit: Duration) throws(ThreadStartError) {
        try startThread(name: "import-hydrator") {
            defer { done.countDown() }
            while let (number, keys) = keyPages.take() {
                do {
                    let members = try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { connection in
                        try source.members(of: keys, on: connection)
                    }
                    guard pages.put(number, .page(ListPage(members: members, last: keys.last))) else { return }
                } catch {
                    Log.warning("page fetch failed", ["list": list, "page": String(number + 2), "error": describe(error)])
                    pages.put(number, .failed)
                }
            }
        }
    }

    func next() -> PageFeedItem? { pages.take() }

    func stop() {
        pages.close()
        keyPages.close()
    }

    func wait() { _ = done.wait() }
}

/// No thread: each page is read when it is asked for, on the asking thread. For when no reader
/// thread could be had.
final class InlinePageFeed: PageFeed, @unchecked Sendable {
    private let source: any ListSource
    private let list: String
    private let pageSize: Int
    private let connections: any ConnectionSource
    private let waitLimit: Duration
    private let state: Locked<(cursor: ListCursor?, number: Int)>

    init(source: any ListSource, after first: ListPage, list: String, pageSize: Int, connections: any ConnectionSource, waitLimit: Duration) {
        (self.source, self.list, self.pageSize, self.connections, self.waitLimit) = (source, list, pageSize, connections, waitLimit)
        state = Locked((first.members.count < pageSize ? nil : first.last, 1))
    }

    func next() -> PageFeedItem? {
        guard let after = state.current.cursor else { return nil }
        let number = state.current.number + 1
        do {
            let page = try connections.withConnection(waitLimit: waitLimit, priority: .bulk) { connection in
                try source.page(list: list, after: after, limit: pageSize, on: connection)
            }
            state.withLock { $0 = (page.members.count < pageSize ? nil : page.last, number) }
            return .page(page)
        } catch {
            Log.warning("page fetch failed", ["list": list, "page": String(number), "error": describe(error)])
            state.withLock { $0.cursor = nil }
            return .failed
        }
    }

    func stop() { state.withLock { $0.cursor = nil } }
    func wait() {}
}
