//! Name and key checks shared by every kind: DNS-1123 labels and subdomains, DNS-1035
//! labels, qualified names (label keys, annotation keys, finalizers), label values and
//! URL path segments.
//!
//! Each check returns the list of problems as upstream words them (empty when the value is
//! fine), so callers can wrap every message in a [`crate::FieldError`] of their own. The
//! patterns are matched by hand over bytes; a non-ASCII byte never matches.
//!
//! Key items: [`validate_name`] and [`validate_generate_name`] apply a resource's
//! [`NameRule`]; the `is_*` functions are the individual rules.

use crate::catalog::NameRule;

/// Longest DNS-1123 label (and DNS-1035 label, label value, qualified-name name part).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest name part of a qualified name.
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// Longest label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;

const DNS1123_LABEL_PATTERN: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_PROBLEM: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";

const DNS1123_SUBDOMAIN_PATTERN: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_PROBLEM: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

const DNS1035_LABEL_PATTERN: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_PROBLEM: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";

const QUALIFIED_NAME_PATTERN: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_PROBLEM: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

const LABEL_VALUE_PATTERN: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_PROBLEM: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `must be no more than N characters`.
fn too_long_message(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// A pattern mismatch described the way upstream does it: the problem, then examples and
/// the pattern in parentheses. Upstream separates examples with `', ' or '`, which leaves
/// two spaces before each `or`; kept as is so the text matches byte for byte.
fn pattern_message(problem: &str, pattern: &str, examples: &[&str]) -> String {
    let mut text = String::from(problem);
    if examples.is_empty() {
        text.push_str(&format!(" (regex used for validation is '{pattern}')"));
        return text;
    }
    text.push_str(" (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            text.push_str(" or ");
        }
        text.push_str(&format!("'{example}', "));
    }
    text.push_str(&format!("regex used for validation is '{pattern}')"));
    text
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1123_label(s: &[u8]) -> bool {
    match (s.first(), s.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first) && is_lower_alnum(last) && s.iter().all(|&b| is_lower_alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// One or more DNS-1123 labels joined by single dots.
fn matches_dns1123_subdomain(s: &[u8]) -> bool {
    s.split(|&b| b == b'.').all(matches_dns1123_label)
}

/// `[a-z]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1035_label(s: &[u8]) -> bool {
    match (s.first(), s.last()) {
        (Some(&first), Some(&last)) => {
            first.is_ascii_lowercase() && is_lower_alnum(last) && s.iter().all(|&b| is_lower_alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_name_part(s: &[u8]) -> bool {
    match (s.first(), s.last()) {
        (Some(&first), Some(&last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && s.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

fn dns1123_label_bytes(s: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    if s.len() > DNS1123_LABEL_MAX_LENGTH {
        problems.push(too_long_message(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(s) {
        if matches_dns1123_subdomain(s) {
            // Fine as a subdomain and the length was checked above, so the dots are the problem.
            problems.push("must not contain dots".to_string());
        } else {
            problems.push(pattern_message(DNS1123_LABEL_PROBLEM, DNS1123_LABEL_PATTERN, &["my-name", "123-abc"]));
        }
    }
    problems
}

fn dns1123_subdomain_bytes(s: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        problems.push(too_long_message(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(s) {
        problems.push(pattern_message(DNS1123_SUBDOMAIN_PROBLEM, DNS1123_SUBDOMAIN_PATTERN, &["example.com"]));
    }
    problems
}

fn dns1035_label_bytes(s: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    if s.len() > DNS1123_LABEL_MAX_LENGTH {
        problems.push(too_long_message(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1035_label(s) {
        problems.push(pattern_message(DNS1035_LABEL_PROBLEM, DNS1035_LABEL_PATTERN, &["my-name", "abc-123"]));
    }
    problems
}

/// Problems with `value` as a DNS-1123 label (namespace names, for instance): at most 63
/// characters of `[a-z0-9-]`, starting and ending with an alphanumeric character.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    dns1123_label_bytes(value.as_bytes())
}

/// Problems with `value` as a DNS-1123 subdomain (most object names): at most 253
/// characters, dot-separated DNS-1123 labels.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    dns1123_subdomain_bytes(value.as_bytes())
}

/// Problems with `value` as a DNS-1035 label (service names): like a DNS-1123 label, but
/// the first character must be a letter.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    dns1035_label_bytes(value.as_bytes())
}

/// Problems with `value` as a qualified name: an optional DNS-1123 subdomain prefix and
/// `/`, then a name of at most 63 characters of `[A-Za-z0-9-_.]` that starts and ends with
/// an alphanumeric character. Used for label keys, annotation keys and finalizers.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".to_string());
            } else {
                problems.extend(is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            let shape =
                pattern_message(QUALIFIED_NAME_PROBLEM, QUALIFIED_NAME_PATTERN, &["MyName", "my.name", "123-abc"]);
            problems.push(format!(
                "a qualified name {shape} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return problems;
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        problems.push(format!("name part {}", too_long_message(QUALIFIED_NAME_MAX_LENGTH)));
    }
    if !matches_qualified_name_part(name.as_bytes()) {
        let shape = pattern_message(QUALIFIED_NAME_PROBLEM, QUALIFIED_NAME_PATTERN, &["MyName", "my.name", "123-abc"]);
        problems.push(format!("name part {shape}"));
    }
    problems
}

/// Problems with `value` as a label value: empty, or at most 63 characters of
/// `[A-Za-z0-9-_.]` that start and end with an alphanumeric character.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        problems.push(too_long_message(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name_part(value.as_bytes()) {
        problems.push(pattern_message(LABEL_VALUE_PROBLEM, LABEL_VALUE_PATTERN, &["MyValue", "my_value", "12345"]));
    }
    problems
}

/// Problems with `name` as one URL path segment: it may not be `.` or `..` and may not
/// contain `/` or `%`.
pub fn is_valid_path_segment_name(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    is_valid_path_segment_prefix(name)
}

/// Problems with `prefix` as the start of a path segment (for `generateName`): only the
/// forbidden characters matter, since a suffix follows.
pub fn is_valid_path_segment_prefix(prefix: &str) -> Vec<String> {
    ["/", "%"].iter().filter(|bad| prefix.contains(*bad)).map(|bad| format!("may not contain '{bad}'")).collect()
}

/// Problems with `name` under `rule`, as `metadata.name` of a resource is checked.
pub fn validate_name(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => is_dns1123_subdomain(name),
        NameRule::Label => is_dns1123_label(name),
        NameRule::Dns1035Label => is_dns1035_label(name),
        NameRule::PathSegment => is_valid_path_segment_name(name),
    }
}

/// Problems with `prefix` as `metadata.generateName` under `rule`. A random suffix is
/// appended to the prefix, so a trailing `-` is acceptable; upstream masks it before
/// checking (replacing the last two bytes with `a`), and so does this.
pub fn validate_generate_name(rule: NameRule, prefix: &str) -> Vec<String> {
    let masked = mask_trailing_dash(prefix.as_bytes());
    match rule {
        NameRule::Subdomain => dns1123_subdomain_bytes(&masked),
        NameRule::Label => dns1123_label_bytes(&masked),
        NameRule::Dns1035Label => dns1035_label_bytes(&masked),
        NameRule::PathSegment => is_valid_path_segment_prefix(prefix),
    }
}

/// Upstream's treatment of a generateName ending in `-`: when longer than one byte, the
/// final two bytes give way to a single `a`.
fn mask_trailing_dash(s: &[u8]) -> Vec<u8> {
    if s.len() > 1 && s.ends_with(b"-") {
        let mut masked = s[..s.len() - 2].to_vec();
        masked.push(b'a');
        masked
    } else {
        s.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBDOMAIN_SHAPE: &str = r"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_SHAPE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const DNS1035_SHAPE: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    const NAME_PART_SHAPE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_SHAPE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dns1123_subdomains() {
        let long_ok = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
        assert_eq!(long_ok.len(), 253);
        let too_long = format!("{long_ok}e");
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("a", vec![]),
            ("example.com", vec![]),
            ("my-app.v1", vec![]),
            ("0.1.2", vec![]),
            ("a--b", vec![]),
            (long_ok.as_str(), vec![]),
            ("", strs(&[SUBDOMAIN_SHAPE])),
            ("Foo", strs(&[SUBDOMAIN_SHAPE])),
            ("-a", strs(&[SUBDOMAIN_SHAPE])),
            ("a-", strs(&[SUBDOMAIN_SHAPE])),
            ("a..b", strs(&[SUBDOMAIN_SHAPE])),
            (".a", strs(&[SUBDOMAIN_SHAPE])),
            ("a.", strs(&[SUBDOMAIN_SHAPE])),
            ("a_b", strs(&[SUBDOMAIN_SHAPE])),
            ("a.-b", strs(&[SUBDOMAIN_SHAPE])),
            ("caf\u{e9}", strs(&[SUBDOMAIN_SHAPE])),
            (too_long.as_str(), strs(&["must be no more than 253 characters"])),
        ];
        for (input, want) in cases {
            assert_eq!(is_dns1123_subdomain(input), want, "input {input:?}");
        }
        let both = format!("{}-", "a".repeat(260));
        assert_eq!(
            is_dns1123_subdomain(&both),
            vec!["must be no more than 253 characters".to_string(), SUBDOMAIN_SHAPE.to_string()]
        );
    }

    #[test]
    fn dns1123_labels() {
        let max = "a".repeat(63);
        let over = "a".repeat(64);
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("a", vec![]),
            ("kube-system", vec![]),
            ("1abc", vec![]),
            (max.as_str(), vec![]),
            (over.as_str(), strs(&["must be no more than 63 characters"])),
            ("a.b", strs(&["must not contain dots"])),
            ("", strs(&[LABEL_SHAPE])),
            ("A", strs(&[LABEL_SHAPE])),
            ("a_b", strs(&[LABEL_SHAPE])),
            ("-a", strs(&[LABEL_SHAPE])),
            ("a..b", strs(&[LABEL_SHAPE])),
        ];
        for (input, want) in cases {
            assert_eq!(is_dns1123_label(input), want, "input {input:?}");
        }
    }

    #[test]
    fn dns1035_labels() {
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("a", vec![]),
            ("my-svc", vec![]),
            ("abc-123", vec![]),
            ("1abc", strs(&[DNS1035_SHAPE])),
            ("a.b", strs(&[DNS1035_SHAPE])),
            ("a-", strs(&[DNS1035_SHAPE])),
            ("", strs(&[DNS1035_SHAPE])),
        ];
        for (input, want) in cases {
            assert_eq!(is_dns1035_label(input), want, "input {input:?}");
        }
        assert_eq!(is_dns1035_label(&"a".repeat(64)), strs(&["must be no more than 63 characters"]));
    }

    #[test]
    fn qualified_names() {
        let prefix_shape = format!("prefix part {SUBDOMAIN_SHAPE}");
        let many_slashes = "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
        let name63 = "A".repeat(63);
        let name64 = "A".repeat(64);
        let prefixed64 = format!("example.com/{name64}");
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("app", vec![]),
            ("MyName", vec![]),
            ("my.name", vec![]),
            ("123-abc", vec![]),
            ("a_b", vec![]),
            ("example.com/MyName", vec![]),
            ("app.kubernetes.io/name", vec![]),
            ("kubernetes.io/pv-protection", vec![]),
            (name63.as_str(), vec![]),
            ("", vec!["name part must be non-empty".to_string(), NAME_PART_SHAPE.to_string()]),
            ("-a", strs(&[NAME_PART_SHAPE])),
            ("a-", strs(&[NAME_PART_SHAPE])),
            ("a b", strs(&[NAME_PART_SHAPE])),
            ("/a", strs(&["prefix part must be non-empty"])),
            ("a/", vec!["name part must be non-empty".to_string(), NAME_PART_SHAPE.to_string()]),
            ("Example.com/a", vec![prefix_shape.clone()]),
            ("a/b/c", vec![many_slashes.to_string()]),
            (name64.as_str(), strs(&["name part must be no more than 63 characters"])),
            (prefixed64.as_str(), strs(&["name part must be no more than 63 characters"])),
        ];
        for (input, want) in cases {
            assert_eq!(is_qualified_name(input), want, "input {input:?}");
        }
    }

    #[test]
    fn label_values() {
        let max = "v".repeat(63);
        let over = "v".repeat(64);
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("", vec![]),
            ("a", vec![]),
            ("MyValue", vec![]),
            ("my_value", vec![]),
            ("12345", vec![]),
            ("1.2.3", vec![]),
            (max.as_str(), vec![]),
            (over.as_str(), strs(&["must be no more than 63 characters"])),
            ("-a", strs(&[LABEL_VALUE_SHAPE])),
            ("a/b", strs(&[LABEL_VALUE_SHAPE])),
            ("a b", strs(&[LABEL_VALUE_SHAPE])),
        ];
        for (input, want) in cases {
            assert_eq!(is_valid_label_value(input), want, "input {input:?}");
        }
    }

    #[test]
    fn path_segments() {
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("system:admin", vec![]),
            ("Any Name", vec![]),
            ("...", vec![]),
            (".", strs(&["may not be '.'"])),
            ("..", strs(&["may not be '..'"])),
            ("a/b", strs(&["may not contain '/'"])),
            ("a%b", strs(&["may not contain '%'"])),
            ("a/%", strs(&["may not contain '/'", "may not contain '%'"])),
        ];
        for (input, want) in cases {
            assert_eq!(is_valid_path_segment_name(input), want, "input {input:?}");
        }
        assert!(is_valid_path_segment_prefix(".").is_empty());
        assert_eq!(is_valid_path_segment_prefix("a/"), strs(&["may not contain '/'"]));
    }

    #[test]
    fn names_by_rule() {
        let cases: Vec<(NameRule, &str, usize)> = vec![
            (NameRule::Subdomain, "my.app", 0),
            (NameRule::Subdomain, "My.App", 1),
            (NameRule::Label, "my.app", 1),
            (NameRule::Label, "my-app", 0),
            (NameRule::Dns1035Label, "1app", 1),
            (NameRule::Dns1035Label, "app1", 0),
            (NameRule::PathSegment, "system:node:Foo", 0),
            (NameRule::PathSegment, "..", 1),
        ];
        for (rule, name, count) in cases {
            assert_eq!(validate_name(rule, name).len(), count, "{rule:?} {name:?}");
        }
    }

    #[test]
    fn generate_name_prefixes() {
        let cases: Vec<(NameRule, &str, usize)> = vec![
            (NameRule::Subdomain, "web-", 0),
            (NameRule::Subdomain, "a-", 0),
            (NameRule::Subdomain, "web", 0),
            (NameRule::Subdomain, "-", 1),
            (NameRule::Subdomain, "Web-", 1),
            (NameRule::Subdomain, "web.-", 0),
            (NameRule::Label, "ns-", 0),
            (NameRule::Label, "n.s-", 1),
            (NameRule::Dns1035Label, "svc-", 0),
            (NameRule::Dns1035Label, "1-", 0),
            (NameRule::Dns1035Label, "1a-", 1),
            (NameRule::PathSegment, ".", 0),
            (NameRule::PathSegment, "a/", 1),
            (NameRule::Subdomain, "\u{e9}-", 1),
        ];
        for (rule, prefix, count) in cases {
            assert_eq!(validate_generate_name(rule, prefix).len(), count, "{rule:?} {prefix:?}");
        }
    }
}
