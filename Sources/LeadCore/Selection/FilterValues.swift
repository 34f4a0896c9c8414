/// What a filter sees of a member: each field as the lead would be imported (docs/api.md's mapping
/// and normalization, whichever the campaign's channel), and its attributes as text.
public enum FilterValues {
    /// `field` of `member`; nil when absent. `attribute` gives the member's attribute KEY as
    /// text (`AttributeText`). A member invalid before its fields are looked at (another user's
    /// Lead, a field too long) has none.
    public static func value(_ field: FilterField, of member: ListMember, attribute: (String) -> String?) -> String? {
        guard member.rejection == nil else { return nil }
        switch field {
        case .email: return member.emails.lazy.compactMap { Email.normalized($0) }.first
        case .linkedinURL: return LinkedInURL.normalized(member.linkedinURL)
        case .firstName: return LeadMapping.present(member.firstName)
        case .lastName: return LeadMapping.present(member.lastName)
        case .name:
            return LeadMapping.present(member.fullName)
                ?? LeadMapping.joinedName(LeadMapping.present(member.firstName), LeadMapping.present(member.lastName))
        case .company: return LeadMapping.present(member.company)
        case .position: return LeadMapping.present(member.position)
        case .headline: return LeadMapping.present(member.headline)
        case .attribute(let key): return attribute(key)
        }
    }
}

extension ImportFilter {
    /// Whether `member` meets every condition of `where`.
    public func selects(_ member: ListMember, attribute: (String) -> String?) -> Bool {
        Self.selects(member, conditions.map(FoldedCondition.init), attribute: attribute)
    }

    /// `selects`, with the conditions folded beforehand (`FoldedCondition`).
    public static func selects(_ member: ListMember, _ conditions: [FoldedCondition], attribute: (String) -> String?) -> Bool {
        conditions.allSatisfy { $0.holds(for: FilterValues.value($0.field, of: member, attribute: attribute)) }
    }

    /// The member's values of the `orderBy` fields, in order (nil: absent), for `SelectionOrder`.
    public func orderKeys(of member: ListMember, attribute: (String) -> String?) -> [String?] {
        order.map { FilterValues.value($0.field, of: member, attribute: attribute) }
    }

    /// The attribute keys the filter looks at: what a page read must bring in besides the fields.
    public var attributeKeys: Set<String> {
        var keys: Set<String> = []
        for field in conditions.map(\.field) + order.map(\.field) {
            if case .attribute(let key) = field { keys.insert(key) }
        }
        return keys
    }
}

/// Attributes as filters compare them: a JSON object's top-level members whose value is a string,
/// a number (as written) or a boolean; any other value is absent.
public enum AttributeText {
    /// The members of the JSON object `json` named in `keys`; empty when it is not an object.
    public static func values(ofObject json: String, keys: Set<String>) -> [String: String] {
        guard !keys.isEmpty, let value = try? JSONReader.parse(json), case .object(let members) = value else { return [:] }
        var found: [String: String] = [:]
        for (key, value) in members where keys.contains(key) {
            // A key given twice: the last one counts (nil removes an earlier one), as PostgreSQL's
            // jsonb takes it.
            found[key] = text(value)
        }
        return found
    }

    static func text(_ value: JSONValue) -> String? {
        switch value {
        case .string(let text): return text
        case .number(let text): return text
        case .bool(let flag): return flag ? "true" : "false"
        case .null, .array, .object: return nil
        }
    }
}
