/// One member of a list as its storage holds it, before any decision is made about it.
/// Both storages read into this shape; `LeadMapping` is where a member becomes a lead.
public struct ListMember: Sendable, Equatable {
    public var linkedinURL: String?
    /// Email candidates in order of preference: for canonical leads every `work_email` contact,
    /// oldest first, then the `email` attribute; for lead-gen rows the enrichment's work email.
    public var emails: [String]
    public var firstName: String?
    public var lastName: String?
    public var fullName: String?
    public var company: String?
    public var position: String?
    public var headline: String?
    /// Already-encoded JSON object, passed through untouched.
    public var customFields: String?
    /// Set for a member that is invalid whatever its fields say; it carries none of them.
    public var rejection: MemberRejection?
    /// The attributes a filter names, as a JSON object, for a source whose attributes are not
    /// `customFields` (a `rows` list's `profile_data`); read only when a filter asks for them.
    public var filterAttributes: String?

    /// The most characters one field of a member may have. The database sends at most one more
    /// (`left(value, fieldLimit + 1)`), so a member never brings in more than this per field, and
    /// one with a longer field is invalid.
    public static let fieldLimit = 8 * 1024 * 1024

    /// A member that is invalid for `reason`, with nothing of its record.
    public static func rejected(_ reason: MemberRejection) -> ListMember {
        var member = ListMember()
        member.rejection = reason
        return member
    }

    /// A member whose record belongs to someone other than the list's owner.
    public static let foreign = rejected(.foreign)

    /// Whether `value`, as the database sent it, is longer than `fieldLimit` characters.
    public static func exceedsFieldLimit(_ value: String?) -> Bool {
        guard let value, value.utf8.count > fieldLimit else { return false }
        return value.unicodeScalars.count > fieldLimit
    }

    public init(linkedinURL: String? = nil, emails: [String] = [], firstName: String? = nil, lastName: String? = nil,
                fullName: String? = nil, company: String? = nil, position: String? = nil, headline: String? = nil,
                customFields: String? = nil) {
        self.linkedinURL = linkedinURL
        self.emails = emails
        self.firstName = firstName
        self.lastName = lastName
        self.fullName = fullName
        self.company = company
        self.position = position
        self.headline = headline
        self.customFields = customFields
    }
}

/// Why a member is invalid before any of its fields is looked at.
public enum MemberRejection: Sendable, Equatable {
    /// Its record belongs to someone other than the list's owner.
    case foreign
    /// One of its fields is longer than `ListMember.fieldLimit` characters.
    case fieldTooLong
}

/// A lead ready to insert into a campaign: identities normalized, the channel's identity present.
public struct CandidateLead: Sendable, Equatable {
    public var email: String?
    public var linkedinURL: String?
    public var firstName: String?
    public var lastName: String?
    public var name: String?
    public var company: String?
    public var position: String?
    public var headline: String?
    public var customFields: String?
    /// The identity the campaign's channel deduplicates on.
    public var identity: String

    public init(email: String? = nil, linkedinURL: String? = nil, firstName: String? = nil, lastName: String? = nil,
                name: String? = nil, company: String? = nil, position: String? = nil, headline: String? = nil,
                customFields: String? = nil, identity: String) {
        self.email = email
        self.linkedinURL = linkedinURL
        self.firstName = firstName
        self.lastName = lastName
        self.name = name
        self.company = company
        self.position = position
        self.headline = headline
        self.customFields = customFields
        self.identity = identity
    }
}

public enum LeadMapping {
    /// A member becomes a lead when it carries the identity its campaign's channel needs;
    /// otherwise it is invalid (nil). The other identity is kept only when it is valid.
    public static func lead(from member: ListMember, channel: Channel) -> CandidateLead? {
        guard member.rejection == nil else { return nil }
        let email = member.emails.lazy.compactMap { Email.normalized($0) }.first
        let linkedin = LinkedInURL.normalized(member.linkedinURL)
        let identity: String
        switch channel {
        case .email:
            guard let email else { return nil }
            identity = email
        case .linkedin:
            guard let linkedin else { return nil }
            identity = linkedin
        }
        let first = present(member.firstName)
        let last = present(member.lastName)
        return CandidateLead(
            email: email,
            linkedinURL: linkedin,
            firstName: first,
            lastName: last,
            name: present(member.fullName) ?? joinedName(first, last),
            company: present(member.company),
            position: present(member.position),
            headline: present(member.headline),
            customFields: member.customFields,
            identity: identity
        )
    }

    /// First and last name with one space between and none dangling.
    static func joinedName(_ first: String?, _ last: String?) -> String? {
        switch (first, last) {
        case let (first?, last?): return first + " " + last
        case let (first?, nil): return first
        case let (nil, last?): return last
        case (nil, nil): return nil
        }
    }

    /// Blank means absent: a whitespace-only name is no name.
    static func present(_ value: String?) -> String? {
        guard let value else { return nil }
        let text = trimmed(value)
        return text.isEmpty ? nil : text
    }
}

/// A `list_rows` row of a lead-gen list, with the fields of its `profile_data` it is read for.
public struct LeadGenRow: Sendable, Equatable {
    public var linkedinURL: String?
    public var firstName: String?, lastName: String?, fullName: String?
    public var currentCompany: String?, currentRole: String?, headline: String?
    /// `profile_data.enrichment.work_email`
    public var workEmail: String?

    public init(linkedinURL: String? = nil, firstName: String? = nil, lastName: String? = nil, fullName: String? = nil,
                currentCompany: String? = nil, currentRole: String? = nil, headline: String? = nil, workEmail: String? = nil) {
        self.linkedinURL = linkedinURL
        self.firstName = firstName
        self.lastName = lastName
        self.fullName = fullName
        self.currentCompany = currentCompany
        self.currentRole = currentRole
        self.headline = headline
        self.workEmail = workEmail
    }

    public var member: ListMember {
        // Field by field: an array of the fields was allocated (and every string retained) for each row.
        let tooLong = ListMember.exceedsFieldLimit(linkedinURL) || ListMember.exceedsFieldLimit(firstName)
            || ListMember.exceedsFieldLimit(lastName) || ListMember.exceedsFieldLimit(fullName)
            || ListMember.exceedsFieldLimit(currentCompany) || ListMember.exceedsFieldLimit(currentRole)
            || ListMember.exceedsFieldLimit(headline) || ListMember.exceedsFieldLimit(workEmail)
        if tooLong { return .rejected(.fieldTooLong) }
        return ListMember(linkedinURL: linkedinURL, emails: workEmail.map { [$0] } ?? [], firstName: firstName, lastName: lastName,
                          fullName: fullName, company: currentCompany, position: currentRole, headline: headline)
    }
}

/// A canonical Lead of a `leads` list, hydrated: its own columns, its linkedin social, its
/// work_email contacts (oldest first) and its attributes.
public struct CanonicalLead: Sendable, Equatable {
    public var firstName: String?, lastName: String?, fullName: String?
    public var company: String?, title: String?, headline: String?
    public var linkedinSocial: String?
    public var workEmails: [String]
    /// The attributes the contract falls back to, read out of `lead_attributes`.
    public var attributeFirstName: String?, attributeLastName: String?, attributeFullName: String?
    public var attributeCurrentCompany: String?, attributeCurrentRole: String?, attributeHeadline: String?
    public var attributeEmail: String?
    /// Every attribute as one JSON object.
    public var attributesJSON: String { Self.closed(openAttributes) }
    /// That object's UTF-8 without its closing brace, empty while there is no attribute:
    /// attributes are appended as they are read (appending to a byte array costs a fraction of
    /// appending to a String), and `intoMember` closes it and makes it a String once.
    private var openAttributes: [UInt8] = []
    /// The Lead belongs to someone other than the list's owner (nothing of it was read), or one
    /// of its values is longer than `ListMember.fieldLimit`.
    public var rejection: MemberRejection?

    public init(firstName: String? = nil, lastName: String? = nil, fullName: String? = nil, company: String? = nil,
                title: String? = nil, headline: String? = nil, linkedinSocial: String? = nil, workEmails: [String] = [],
                attributeFirstName: String? = nil, attributeLastName: String? = nil, attributeFullName: String? = nil,
                attributeCurrentCompany: String? = nil, attributeCurrentRole: String? = nil, attributeHeadline: String? = nil,
                attributeEmail: String? = nil) {
        self.firstName = firstName
        self.lastName = lastName
        self.fullName = fullName
        self.company = company
        self.title = title
        self.headline = headline
        self.linkedinSocial = linkedinSocial
        self.workEmails = workEmails
        self.attributeFirstName = attributeFirstName
        self.attributeLastName = attributeLastName
        self.attributeFullName = attributeFullName
        self.attributeCurrentCompany = attributeCurrentCompany
        self.attributeCurrentRole = attributeCurrentRole
        self.attributeHeadline = attributeHeadline
        self.attributeEmail = attributeEmail
    }

    /// Takes one of the Lead's attributes as the database holds it: its key, and its value as JSON
    /// text (`value::text`). It joins `attributesJSON`; the contract's fallback attributes are read
    /// as `->>` reads them: a string's text, JSON null as absent, any other value as its JSON.
    public mutating func addAttribute(key: String, json: String) {
        // Appended to the open members: closing the object after each one and opening it again
        // for the next cost more than the rest of the attribute (docs/performance.md).
        if openAttributes.isEmpty {
            // Room for a few attributes at once, not a reallocation every few bytes.
            openAttributes.reserveCapacity(key.utf8.count + json.utf8.count + 64)
            openAttributes.append(UInt8(ascii: "{"))
        } else {
            openAttributes.append(UInt8(ascii: ","))
        }
        JSONObjectWriter.appendQuoted(key, to: &openAttributes)
        openAttributes.append(UInt8(ascii: ":"))
        openAttributes.append(contentsOf: json.utf8)
        switch key {
        case "firstName": attributeFirstName = Self.text(ofJSON: json)
        case "lastName": attributeLastName = Self.text(ofJSON: json)
        case "fullName": attributeFullName = Self.text(ofJSON: json)
        case "currentCompany": attributeCurrentCompany = Self.text(ofJSON: json)
        case "currentRole": attributeCurrentRole = Self.text(ofJSON: json)
        case "headline": attributeHeadline = Self.text(ofJSON: json)
        case "email": attributeEmail = Self.text(ofJSON: json)
        default: break
        }
    }

    static func text(ofJSON json: String) -> String? {
        guard let first = json.utf8.first else { return nil }
        if first == UInt8(ascii: "\"") {
            // A string with no escapes is what lies between its quotes: read from the string's
            // own bytes (by Characters, dropping the quotes measured the string twice).
            let plain = json.utf8.withContiguousStorageIfAvailable { bytes -> String? in
                guard bytes.count >= 2, bytes[bytes.count - 1] == UInt8(ascii: "\"") else { return nil }
                let inside = UnsafeBufferPointer(rebasing: bytes[1..<(bytes.count - 1)])
                guard !inside.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") || $0 < 0x20 }) else { return nil }
                return String(decoding: inside, as: UTF8.self)
            }
            if let text = plain ?? nil { return text }
            guard case .string(let text)? = try? JSONReader.parse(json) else { return nil }
            return text
        }
        return json == "null" ? nil : json
    }

    /// The Lead's own columns first, the attributes where a column is blank; every usable
    /// work_email before the `email` attribute.
    public var member: ListMember {
        let lead = self
        return lead.intoMember()
    }

    /// The object whose open bytes are `open` (`openAttributes`), closed.
    private static func closed(_ open: consuming [UInt8]) -> String {
        if open.isEmpty { return "{}" }
        var json = open
        json.append(UInt8(ascii: "}"))
        return String(decoding: json, as: UTF8.self)
    }

    /// `member`, made of this record's own strings: decoding a page read each hydrated Lead
    /// through a copy of it, every string retained and released once more.
    public consuming func intoMember() -> ListMember {
        if let rejection { return .rejected(rejection) }
        func column(_ own: String?, _ attribute: String?) -> String? {
            LeadMapping.present(own) ?? LeadMapping.present(attribute)
        }
        return ListMember(
            linkedinURL: linkedinSocial,
            emails: attributeEmail.map { workEmails + [$0] } ?? workEmails,
            firstName: column(firstName, attributeFirstName),
            lastName: column(lastName, attributeLastName),
            fullName: column(fullName, attributeFullName),
            company: column(company, attributeCurrentCompany),
            position: column(title, attributeCurrentRole),
            headline: column(headline, attributeHeadline),
            // Moved out, so closing it appends in place instead of copying it.
            customFields: Self.closed(moveOut(of: &openAttributes, leaving: []))
        )
    }
}
