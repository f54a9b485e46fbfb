//! Small readers over JSON objects and the text formats table cells use: ages as upstream's
//! `duration.HumanDuration`, label sets, label selectors, container lists.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

static NULL: Value = Value::Null;

/// The value at a JSON pointer, or `null`.
pub fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&NULL)
}

/// The string at a JSON pointer, or "".
pub fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer).as_str().unwrap_or("")
}

/// The string at a JSON pointer, or `fallback` when it is missing or empty.
pub fn text_or<'a>(v: &'a Value, pointer: &str, fallback: &'a str) -> &'a str {
    match text(v, pointer) {
        "" => fallback,
        s => s,
    }
}

/// The integer at a JSON pointer, if there is one.
pub fn int_opt(v: &Value, pointer: &str) -> Option<i64> {
    let v = at(v, pointer);
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// The integer at a JSON pointer, or 0.
pub fn int(v: &Value, pointer: &str) -> i64 {
    int_opt(v, pointer).unwrap_or(0)
}

/// The boolean at a JSON pointer, if there is one.
pub fn boolean(v: &Value, pointer: &str) -> Option<bool> {
    at(v, pointer).as_bool()
}

/// The array at a JSON pointer, or an empty slice.
pub fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    at(v, pointer).as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The object at a JSON pointer, if there is one.
pub fn map<'a>(v: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    at(v, pointer).as_object()
}

/// How many entries the array or object at a JSON pointer has.
pub fn count(v: &Value, pointer: &str) -> usize {
    match at(v, pointer) {
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        _ => 0,
    }
}

/// A quantity or int-or-string as text (numbers as their decimal form).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses a `metav1.Time` / `metav1.MicroTime`; `None` for a missing or zero time.
pub fn time(v: &Value) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(v.as_str()?).ok()?.with_timezone(&Utc);
    // Go's zero time (year 1) counts as unset, as `IsZero` does upstream.
    (t.timestamp() > -62_135_596_800).then_some(t)
}

/// Time elapsed since `t`, as upstream's `translateTimestampSince`: `<unknown>` when unset.
pub fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) => human_duration((now - t).num_milliseconds()),
        None => "<unknown>".to_string(),
    }
}

/// The AGE cell: time since `metadata.creationTimestamp`.
pub fn age(obj: &Value, now: DateTime<Utc>) -> String {
    since(time(at(obj, "/metadata/creationTimestamp")), now)
}

/// A duration in milliseconds with two or three significant figures, as upstream's
/// `duration.HumanDuration`: `45s`, `3m12s`, `15m`, `4h`, `5h30m`, `2d3h`, `45d`, `3y45d`, `9y`.
pub fn human_duration(ms: i64) -> String {
    // Go truncates toward zero throughout; Rust's integer division does the same.
    let seconds = ms / 1000;
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = ms / 60_000;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = ms / 3_600_000;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// A label set as `k=v,k2=v2` (sorted by key), or `<none>` when empty.
pub fn labels(set: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<(&str, &str)> =
        set.into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).collect();
    pairs.sort();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A `metav1.LabelSelector` as upstream's selector text (`app=web,tier in (a,b),!legacy`),
/// requirements sorted by key. An absent or empty selector is "". `None` for an unknown
/// operator.
pub fn selector(sel: &Value) -> Option<String> {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for expr in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        let mut values: Vec<&str> =
            expr.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        values.sort_unstable();
        let text = match expr.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(reqs.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(","))
}

/// A label selector as upstream's `metav1.FormatLabelSelector`: `<none>` when it selects by
/// nothing, `<error>` when it cannot be read.
pub fn format_selector(sel: &Value) -> String {
    match selector(sel) {
        Some(s) if s.is_empty() => "<none>".to_string(),
        Some(s) => s,
        None => "<error>".to_string(),
    }
}

/// The CONTAINERS and IMAGES cells of a container list: names and images, comma-separated.
pub fn containers(list: &[Value]) -> (String, String) {
    let names: Vec<&str> = list.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = list.iter().map(|c| text(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// Up to `max` entries, then ` + N more...`; `<unset>` when there are none (upstream's
/// `listWithMoreString`).
pub fn with_more(shown: &[String], total: usize, max: usize) -> String {
    let joined = shown.join(",");
    if total > max {
        return format!("{joined} + {} more...", total - max);
    }
    if joined.is_empty() { "<unset>".to_string() } else { joined }
}

/// `True`, `False`, or `<unset>`.
pub fn bool_text(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

/// Persistent volume access modes as upstream abbreviates them, in its fixed order.
pub fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(mode, _)| has(mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// The name cell of a row.
pub fn name(obj: &Value) -> Value {
    Value::String(text(obj, "/metadata/name").to_string())
}

/// Load balancer ingress points (IPs, else hostnames), sorted, de-duplicated and comma-joined.
/// The server always prints wide, so nothing is shortened.
pub fn load_balancer_points(ingress: &[Value]) -> String {
    let mut points: Vec<&str> = ingress
        .iter()
        .filter_map(|i| match (text(i, "/ip"), text(i, "/hostname")) {
            ("", "") => None,
            ("", host) => Some(host),
            (ip, _) => Some(ip),
        })
        .collect();
    points.sort_unstable();
    points.dedup();
    points.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn human_durations_as_upstream() {
        let s = 1000;
        let m = 60 * s;
        let h = 60 * m;
        let d = 24 * h;
        let y = 365 * d;
        let cases = [
            (-3 * s, "<invalid>"),
            (-1500, "0s"),
            (0, "0s"),
            (5 * s, "5s"),
            (119 * s, "119s"),
            (2 * m, "2m"),
            (3 * m + 12 * s, "3m12s"),
            (9 * m + 59 * s, "9m59s"),
            (10 * m + 30 * s, "10m"),
            (179 * m, "179m"),
            (3 * h, "3h"),
            (4 * h, "4h"),
            (5 * h + 30 * m, "5h30m"),
            (7 * h + 59 * m, "7h59m"),
            (8 * h + 30 * m, "8h"),
            (47 * h, "47h"),
            (2 * d, "2d"),
            (2 * d + 3 * h, "2d3h"),
            (7 * d + 23 * h, "7d23h"),
            (8 * d + 5 * h, "8d"),
            (45 * d, "45d"),
            (729 * d, "729d"),
            (2 * y, "2y"),
            (3 * y + 45 * d, "3y45d"),
            (8 * y, "8y"),
            (20 * y + 100 * d, "20y"),
        ];
        for (ms, want) in cases {
            assert_eq!(human_duration(ms), want, "{ms} ms");
        }
    }

    #[test]
    fn ages_and_zero_times() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(age(&json!({"metadata": {"creationTimestamp": "2024-05-01T11:56:48Z"}}), now), "3m12s");
        assert_eq!(age(&json!({"metadata": {}}), now), "<unknown>");
        assert_eq!(since(time(&json!("0001-01-01T00:00:00Z")), now), "<unknown>");
        assert_eq!(since(time(&json!("2024-05-01T11:59:59.123456Z")), now), "0s");
    }

    #[test]
    fn selectors_and_labels() {
        let sel = json!({
            "matchLabels": {"tier": "web", "app": "shop"},
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["b", "a"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "gpu", "operator": "Exists"},
            ]
        });
        assert_eq!(selector(&sel).unwrap(), "app=shop,env notin (dev),gpu,!legacy,tier=web,zone in (a,b)");
        assert_eq!(format_selector(&json!({})), "<none>");
        assert_eq!(format_selector(&Value::Null), "<none>");
        assert_eq!(format_selector(&json!({"matchExpressions": [{"key": "k", "operator": "Near"}]})), "<error>");
        let set = json!({"b": "2", "a": "1"});
        assert_eq!(labels(set.as_object()), "a=1,b=2");
        assert_eq!(labels(None), "<none>");
        assert_eq!(access_modes(&[json!("ReadWriteMany"), json!("ReadWriteOnce")]), "RWO,RWX");
    }
}
