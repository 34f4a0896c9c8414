/// Every way a `filter` is refused, with the start of the message that names its place: checked
/// against the parser (`ImportFilterTests`) and through nginx (`SelectionTests`).
public enum FilterRefusals {
    /// (the filter's JSON, the start of its `400 invalid_filter` message); `id` is any valid UUID.
    public static func cases(id: String) -> [(filter: String, message: String)] {
        let tooManyIDs = (0...1000).map { _ in #""\#(id)""# }.joined(separator: ",")
        let tooManyConditions = (0...20).map { _ in #"{"field": "name", "value": "a"}"# }.joined(separator: ",")
        let tooManyValues = (0...100).map { #""v\#($0)""# }.joined(separator: ",")
        let longKey = String(repeating: "k", count: 201)
        return [
            (#"{"leadIds": [\#(tooManyIDs)]}"#, "filter.leadIds must be an array of 1 to 1000 ids"),
            (#"{"where": [\#(tooManyConditions)]}"#, "filter.where must be an array of 1 to 20 conditions"),
            (#"{"where": [{"field": "name", "value": [\#(tooManyValues)]}]}"#, "filter.where[0].value must be an array of 1 to 100 strings"),
            (#"{"where": [{"field": "attributes.\#(longKey)", "value": "a"}]}"#, "filter.where[0].field must be one of"),
            (#""all""#, "filter must be an object or null"),
            (#"[]"#, "filter must be an object or null"),
            (#"{"limt": 5}"#, "filter.limt is not a filter key"),
            (#"{"leadIds": "\#(id)"}"#, "filter.leadIds must be an array of 1 to 1000 ids"),
            (#"{"leadIds": []}"#, "filter.leadIds must be an array of 1 to 1000 ids"),
            (#"{"leadIds": ["\#(id)", "nope"]}"#, "filter.leadIds[1] must be a string holding a valid UUID"),
            (#"{"leadIds": ["\#(id)", 7]}"#, "filter.leadIds[1] must be a string holding a valid UUID"),
            (#"{"where": {}}"#, "filter.where must be an array of 1 to 20 conditions"),
            (#"{"where": []}"#, "filter.where must be an array of 1 to 20 conditions"),
            (#"{"where": ["company"]}"#, "filter.where[0] must be an object"),
            (#"{"where": [{"field": "company", "value": "a"}, {"field": "company", "value": "b", "op": "="}]}"#,
             "filter.where[1].op is not allowed here"),
            (#"{"where": [{"value": "a"}]}"#, "filter.where[0].field is missing"),
            (#"{"where": [{"field": "a"}, {"field": "Company", "value": "a"}]}"#, "filter.where[0].field must be one of email, linkedinUrl"),
            (#"{"where": [{"field": "company", "value": "a"}, {"field": "attributes.", "value": "a"}]}"#, "filter.where[1].field must be one of"),
            (#"{"where": [{"field": "company"}]}"#, "filter.where[0].value is missing"),
            (#"{"where": [{"field": "company", "value": 3}]}"#, "filter.where[0].value must be a string, null, or an array of 1 to 100 strings"),
            (#"{"where": [{"field": "company", "value": []}]}"#, "filter.where[0].value must be an array of 1 to 100 strings"),
            (#"{"where": [{"field": "company", "value": ["a", true]}]}"#, "filter.where[0].value[1] must be a string"),
            (#"{"orderBy": [{"field": "name"}, {"field": "name"}, {"field": "name"}, {"field": "name"}]}"#,
             "filter.orderBy must be an array of 1 to 3 keys"),
            (#"{"orderBy": [{"field": "name", "direction": "up"}]}"#, #"filter.orderBy[0].direction must be "asc" or "desc""#),
            (#"{"orderBy": [{"field": "name", "direction": null}]}"#, #"filter.orderBy[0].direction must be "asc" or "desc""#),
            (#"{"orderBy": [{"direction": "asc"}]}"#, "filter.orderBy[0].field is missing"),
            (#"{"limit": 0}"#, "filter.limit must be an integer from 1 to 10000000"),
            (#"{"limit": 10000001}"#, "filter.limit must be an integer from 1 to 10000000"),
            (#"{"limit": 2.5}"#, "filter.limit must be an integer"),
            (#"{"limit": 1e3}"#, "filter.limit must be an integer"),
            (#"{"limit": "10"}"#, "filter.limit must be an integer"),
            (#"{"limit": -1}"#, "filter.limit must be an integer"),
            (#"{"limit": 99999999999999999999999}"#, "filter.limit must be an integer"),
            (#"{"limit": 5, "limit": 6}"#, "filter.limit is given twice"),
            // The first wrong place in the body's order.
            (#"{"limit": 0, "where": []}"#, "filter.limit"),
            (#"{"where": [], "limit": 0}"#, "filter.where"),
        ]
    }
}
