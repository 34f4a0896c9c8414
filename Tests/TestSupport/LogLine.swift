import Foundation

/// Reads the service's log lines back: `key=value` pairs, a value quoted when it holds a space,
/// `"`, `=`, `\` or a line break, with `\"`, `\\`, `\n` and `\r` escaped (Platform's `Log`);
/// or, with `--log-format json`, one JSON object of strings per line.
public enum LogLine {
    public static func fields(_ line: String) -> [String: String] {
        if line.hasPrefix("{") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return [:] }
            return object.compactMapValues { $0 as? String }
        }
        var result: [String: String] = [:]
        var rest = Substring(line)
        while !rest.isEmpty {
            rest = rest.drop(while: { $0 == " " })
            guard let equals = rest.firstIndex(of: "=") else { break }
            let key = String(rest[..<equals])
            rest = rest[rest.index(after: equals)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let ch = rest.first {
                    rest = rest.dropFirst()
                    if ch == "\\", let next = rest.first {
                        value.append(next == "n" ? "\n" : next == "r" ? "\r" : next)
                        rest = rest.dropFirst()
                        continue
                    }
                    if ch == "\"" { break }
                    value.append(ch)
                }
            } else {
                let end = rest.firstIndex(of: " ") ?? rest.endIndex
                value = String(rest[..<end])
                rest = rest[end...]
            }
            if result[key] == nil { result[key] = value }
        }
        return result
    }
}
