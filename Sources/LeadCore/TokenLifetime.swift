/// `90d`, `12h`, `30m`, `45s` (a whole number and one unit).
public func parseTokenLifetime(_ text: String) -> Duration? {
    guard let unit = text.last, let amount = Int(text.dropLast()), amount > 0, amount < 100_000 else { return nil }
    switch unit {
    case "d": return .seconds(amount * 86_400)
    case "h": return .seconds(amount * 3_600)
    case "m": return .seconds(amount * 60)
    case "s": return .seconds(amount)
    default: return nil
    }
}
