extension PostgresValue {
    /// A `text[]` parameter in PostgreSQL's array literal syntax: every element double-quoted with
    /// `"` and `\` escaped, NULL unquoted. One array per column lets a single statement carry a
    /// whole batch of rows (`unnest($1::text[], ...)`) with a fixed parameter count.
    public static func textArray(_ values: [String?]) -> PostgresValue {
        var literal = "{"
        literal.reserveCapacity(values.count * 24)
        for (index, value) in values.enumerated() {
            if index > 0 { literal += "," }
            guard let value else { literal += "NULL"; continue }
            literal += "\""
            for character in value.unicodeScalars {
                if character == "\"" || character == "\\" { literal += "\\" }
                literal.unicodeScalars.append(character)
            }
            literal += "\""
        }
        literal += "}"
        return .text(literal)
    }
}
