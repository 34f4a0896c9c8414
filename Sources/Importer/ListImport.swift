import LeadCore
import Platform
import Postgres
import Store

/// The token lookup an import begins with.
public protocol TokenLookup: Sendable {
    /// The token's user and the verdict on `ids` (when given); nil for a token that is unknown,
    /// revoked or expired.
    func grant(tokenHash: [UInt8], ids: ImportIDs?, on connection: Connection) throws -> TokenGrant?
}

/// The tokens table, in the round trip that also resolves the campaign and the list.
public struct StoredTokens: TokenLookup {
    public init() {}

    public func grant(tokenHash: [UInt8], ids: ImportIDs?, on connection: Connection) throws -> TokenGrant? {
        try Access.authorize(tokenHash: tokenHash, ids: ids, on: connection)
    }
}

/// One import a request asks for, once the request's own checks are done.
public struct ImportOrder: Sendable {
    /// SHA-256 of the bearer token.
    public var tokenHash: [UInt8]
    /// The request's own verdict on its ids: given only after the token's, as the contract
    /// orders them.
    public var ids: Result<ImportIDs, RequestError>
    /// How long the lookup may wait for a connection: what is left of the request's wait limit.
    public var waitLimit: Duration
    /// Called once the list turned out longer than a page, before the long part of the import.
    public var becomesLong: (@Sendable () -> Void)?

    public init(tokenHash: [UInt8], ids: Result<ImportIDs, RequestError>, waitLimit: Duration,
                becomesLong: (@Sendable () -> Void)? = nil) {
        self.tokenHash = tokenHash
        self.ids = ids
        self.waitLimit = waitLimit
        self.becomesLong = becomesLong
    }
}

/// What the endpoint answers with.
public enum ImportAnswer: Sendable {
    /// Refused before anything was written.
    case refused(RequestError)
    case imported(ImportOutcome)
}

/// The import, as the endpoint sees it.
public protocol ListImport: Sendable {
    func importList(_ order: ImportOrder) -> ImportAnswer
}

extension LeadImporter: ListImport {
    /// One lease and one round trip for token, campaign and list; a list that fits in one page is
    /// imported on that same connection, a longer one goes on once it is given back.
    public func importList(_ order: ImportOrder) -> ImportAnswer {
        let begun: Result<Begun, RequestError>
        do {
            begun = try connections.withConnection(waitLimit: order.waitLimit) { connection -> Result<Begun, RequestError> in
                guard let grant = try tokens.grant(tokenHash: order.tokenHash, ids: try? order.ids.get(), on: connection) else {
                    return .failure(.unauthorized)
                }
                if case .failure(let error) = order.ids { return .failure(error) }
                switch grant.target {
                case .failure(let error): return .failure(error)
                case .success(let target):
                    // A selection or a dry run reads the list its own way, after this lease.
                    if case .success(let ids) = order.ids, !ids.choice.isWholeList { return .success(.selected(target, ids.choice)) }
                    return .success(begin(target, on: connection))
                case nil: return .failure(.internalError)
                }
            }
        } catch {
            return .refused(Self.lookupFailure(error))
        }
        switch begun {
        case .failure(let error): return .refused(error)
        case .success(.finished(let outcome)): return .imported(outcome)
        case .success(.longer(let rest)):
            order.becomesLong?()
            return .imported(finish(rest))
        case .success(.selected(let target, let choice)):
            // Only leadIds bounds what is read; anything else may read the whole list.
            if choice.filter.memberIDs == nil { order.becomesLong?() }
            return .imported(runSelection(target, choice: choice))
        }
    }

    /// No pooled connection, a lost one, or a statement stopped by its timeout: 503, a retry
    /// later may succeed. Anything else is logged and answered 500.
    public static func lookupFailure(_ error: any Error) -> RequestError {
        let failure = (error as? PostgresError).map { DatabaseFailure(sqlState: $0.sqlState, connectionProblem: $0.isConnectionProblem) }
            ?? .unreachable
        if failure.requestError == .internalError { Log.error("lookup failed", ["error": describe(error)]) }
        return failure.requestError
    }
}
