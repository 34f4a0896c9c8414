import Platform

/// An HTTP request as nginx hands it over in FastCGI parameters. Built without a socket in tests.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path as the client sent it: `REQUEST_URI` up to the `?`, still percent-encoded, so
    /// that `%2F` inside an id stays inside it (nginx's `DOCUMENT_URI` is decoded and has its
    /// slashes merged). `DOCUMENT_URI` only when no `REQUEST_URI` came.
    public var path: String
    public var query: String
    /// Lowercased names, `-` for `_`: `HTTP_X_FOO` is `x-foo`. `content-type` and `content-length`
    /// come from `CONTENT_TYPE` and `CONTENT_LENGTH`, and are absent when nginx passed them empty.
    public var headers: [String: String]
    /// At most the configured body limit. Empty when `bodyExceedsLimit`: a truncated body must never
    /// be mistaken for the whole one.
    public var body: [UInt8]
    /// `CONTENT_LENGTH`, or the bytes actually sent, went over the body limit; the body was not read.
    public var bodyExceedsLimit: Bool
    /// nginx's `$request_id` (the `REQUEST_ID` parameter), for log lines.
    public var requestID: String?
    /// When the whole request head had arrived: time spent queued for a worker counts against
    /// the request's own deadlines.
    public var received: MonotonicInstant
    /// A handler about to work long on this request (an import of many pages) calls it: the
    /// server puts another worker thread in this one's place, so that the requests behind it
    /// are not held up. nil where nobody waits behind (tests calling the application).
    public var becomesLong: (@Sendable () -> Void)?

    public init(
        method: String,
        path: String,
        query: String = "",
        headers: [String: String] = [:],
        body: [UInt8] = [],
        bodyExceedsLimit: Bool = false,
        requestID: String? = nil,
        received: MonotonicInstant = .now()
    ) {
        self.received = received
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.bodyExceedsLimit = bodyExceedsLimit
        self.requestID = requestID
    }
}

/// What a handler answers. Written back as a CGI-style response (`Status:` header, never a status line).
public struct HTTPResponse: Sendable {
    public var status: Int
    /// In order. `Content-Length` and `Status` are always set by the server and ignored here;
    /// `Content-Type` is added when absent.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json(_ status: Int, _ body: String, headers: [(name: String, value: String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(body.utf8))
    }

    /// The answer when a handler throws: nothing about the failure reaches the client.
    public static let internalError = HTTPResponse.json(500, #"{"error":"internal","message":"internal error"}"#)
}

/// Handlers run on worker threads, several at once.
public typealias RequestHandler = @Sendable (HTTPRequest) throws -> HTTPResponse
