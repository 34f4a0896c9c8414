import LeadCore
import Platform

/// How far an import has come, after each page: for the command line's progress line.
public struct ImportProgress: Sendable, Equatable {
    public var rowsRead: Int
    /// The members handled so far are `counts.total`: read members whose batch is still being
    /// written are not in it yet.
    public var counts: ImportCounts
    public var elapsed: Duration
    /// Members already handled when `elapsed` began, left out of the rate: a job followed from
    /// halfway did not handle them in that time.
    public var handledBefore: Int

    public init(rowsRead: Int, counts: ImportCounts, elapsed: Duration, handledBefore: Int = 0) {
        self.rowsRead = rowsRead
        self.counts = counts
        self.elapsed = elapsed
        self.handledBefore = handledBefore
    }

    /// `1500 of 100000 members (1%), imported 1200, duplicates 100, invalid 200, errors 0,
    /// 5000 rows/s, 20 s left`, one line; `of`, the percentage and the time left only when the
    /// list's size is known.
    public func line(listSize size: Int?) -> String {
        let handled = counts.total
        let seconds = elapsed.secondsDouble
        let rate = seconds > 0 ? Int((Double(max(0, handled - handledBefore)) / seconds).rounded()) : 0
        var text = "\(handled)"
        if let size {
            let percent = size > 0 ? min(100, handled * 100 / size) : 100
            text += " of \(size) members (\(percent)%)"
        } else {
            text += " members"
        }
        text += ", imported \(counts.imported), duplicates \(counts.duplicates), invalid \(counts.invalid), errors \(counts.errors)"
        text += ", \(rate) rows/s"
        if let size, rate > 0, handled < size {
            text += ", \(Self.spoken(seconds: (size - handled + rate - 1) / rate)) left"
        }
        return text
    }

    /// `45 s`, `3 min 20 s`, `1 h 5 min`.
    static func spoken(seconds: Int) -> String {
        if seconds < 60 { return "\(seconds) s" }
        if seconds < 3600 { return "\(seconds / 60) min \(seconds % 60) s" }
        return "\(seconds / 3600) h \((seconds % 3600) / 60) min"
    }
}

/// The progress of a job being followed, from one poll of it to the next. The rate is the
/// counts' growth since the first poll that found the job running: a job that waited in the
/// queue, or that was joined halfway, would look slow measured from its creation.
public struct FollowedProgress: Sendable {
    private var start: (handled: Int, at: MonotonicInstant)?

    public init() {}

    /// The progress to draw for `job` as a poll at `now` found it.
    public mutating func progress(of job: ImportJob, at now: MonotonicInstant) -> ImportProgress {
        let counts = job.counts
        if start == nil && job.state == .running { start = (counts.total, now) }
        if let start {
            return ImportProgress(rowsRead: counts.total, counts: counts, elapsed: now - start.at, handledBefore: start.handled)
        }
        // Never seen running: a queued job has no rate yet; one that ended meanwhile has the
        // rate of its whole run, by the database's clock.
        var elapsed = Duration.zero
        if job.state.isFinal, let started = job.startedAt, let finished = job.finishedAt {
            elapsed = .milliseconds(finished.millisecondsSinceEpoch - started.millisecondsSinceEpoch)
        }
        return ImportProgress(rowsRead: counts.total, counts: counts, elapsed: elapsed)
    }
}

/// When the progress line is drawn. On a terminal it is redrawn in place at most
/// `terminalInterval` apart; anywhere else (a log, a pipe) a plain line is written at most
/// `plainInterval` apart, never one per page. The import's last report is always drawn.
public struct ProgressPacing: Sendable {
    public enum Output: Sendable { case terminal, plain }

    public static let terminalInterval: Duration = .milliseconds(200)
    public static let plainInterval: Duration = .seconds(5)

    public let output: Output
    /// When the last line was drawn, or (plain) when reports began.
    private var since: MonotonicInstant?

    public init(output: Output) { self.output = output }

    /// What to write to stderr for `report` at `now`; nil when nothing is due. `final`: the import
    /// has ended and this is its last report.
    public mutating func text(for line: String, at now: MonotonicInstant, final: Bool) -> String? {
        let interval = output == .terminal ? Self.terminalInterval : Self.plainInterval
        guard let since else {
            self.since = now
            // A plain line waits a whole interval from the start: a short import writes its last only.
            if output == .plain && !final { return nil }
            return render(line, final: final)
        }
        guard final || now >= since + interval else { return nil }
        self.since = now
        return render(line, final: final)
    }

    private func render(_ line: String, final: Bool) -> String {
        switch output {
        case .terminal:
            // Back to the start of the line and erase it: one line, redrawn; a newline once done.
            return "\r\u{1B}[2K" + line + (final ? "\n" : "")
        case .plain:
            return line + "\n"
        }
    }
}
