//! Helpers over objects as JSON: storage keys, metadata access, encoding for the store, and
//! conversion between the served version and the storage version.

use crate::status::{ApiError, ApiResult, GroupResource};
use bytes::Bytes;
use rudder_api::catalog::Resource;
use rudder_store::KeyValue;
use serde_json::{Map, Value};

/// The storage key of an object.
pub fn key(res: &Resource, namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|_| res.namespaced) {
        Some(ns) => format!("/registry/{}/{}/{}", res.storage_resource, ns, name),
        None => format!("/registry/{}/{}", res.storage_resource, name),
    }
}

/// The key prefix of a collection (one namespace, or all).
pub fn prefix(res: &Resource, namespace: Option<&str>) -> String {
    match namespace.filter(|_| res.namespaced) {
        Some(ns) => format!("/registry/{}/{}/", res.storage_resource, ns),
        None => format!("/registry/{}/", res.storage_resource),
    }
}

/// The group and resource for error messages.
pub fn gr(res: &Resource) -> GroupResource<'static> {
    GroupResource { group: res.group, resource: res.plural }
}

/// `metadata` as a map, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"].as_object_mut().expect("metadata was just made an object")
}

/// A string field of `metadata`, or "".
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or("")
}

/// Decodes a stored value, setting `resourceVersion` from the store.
pub fn from_kv(kv: &KeyValue) -> ApiResult<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} cannot be decoded: {e}", kv.key)))?;
    meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(kv.mod_revision.to_string()));
    Ok(obj)
}

/// Encodes an object for the store (without `resourceVersion`, which the store assigns).
pub fn to_bytes(obj: &Value) -> Bytes {
    let server_set = |m: &Map<String, Value>| m.contains_key("resourceVersion") || m.contains_key("selfLink");
    match obj {
        Value::Object(top) if top.get("metadata").and_then(Value::as_object).is_some_and(server_set) => {
            // Encoded as is, with those two metadata fields skipped (no copy of the object).
            let mut buf = serde_json::to_vec(&WithoutServerSet(top)).expect("JSON values always encode");
            buf.shrink_to_fit();
            Bytes::from(buf)
        }
        _ => compact_json(obj),
    }
}

/// An object whose `metadata` is encoded without `resourceVersion` and `selfLink`.
struct WithoutServerSet<'a>(&'a Map<String, Value>);

impl serde::Serialize for WithoutServerSet<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Meta<'a>(&'a Map<String, Value>);
        impl serde::Serialize for Meta<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let kept = |k: &&String| k.as_str() != "resourceVersion" && k.as_str() != "selfLink";
                let mut map = serializer.serialize_map(Some(self.0.keys().filter(kept).count()))?;
                for (k, v) in self.0.iter().filter(|(k, _)| kept(k)) {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            match v {
                Value::Object(meta) if k == "metadata" => map.serialize_entry(k, &Meta(meta))?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

/// Encodes JSON into a buffer of exactly its length: stored and cached objects live long,
/// and the encoder's spare capacity (up to half the buffer) would live with them.
pub fn compact_json(obj: &Value) -> Bytes {
    let mut buf = serde_json::to_vec(obj).expect("JSON values always encode");
    buf.shrink_to_fit();
    Bytes::from(buf)
}

/// Converts an object in the served version of `res` to its storage version.
pub fn to_storage(res: &Resource, obj: Value) -> ApiResult<Value> {
    if res.api_version() == res.storage_version {
        return Ok(obj);
    }
    rudder_api::convert::convert(obj, res.storage_version).map_err(ApiError::bad_request)
}

/// Converts a stored object to the served version of `res`.
pub fn from_storage(res: &Resource, obj: Value) -> ApiResult<Value> {
    if res.api_version() == res.storage_version {
        return Ok(obj);
    }
    rudder_api::convert::convert(obj, &res.api_version())
        .map_err(|e| ApiError::internal(format!("conversion failed: {e}")))
}

/// Parses a `resourceVersion` text.
pub fn parse_rv(rv: &str) -> ApiResult<u64> {
    rv.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}: not a number")))
}

/// Now, as upstream formats `metav1.Time`.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Skips JSON whitespace from `i`.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Returns the index just past the string starting at `i` (which must be a `"`).
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i += b.get(i..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
    }
}

/// Returns the index just past the JSON value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                j += b.get(j..)?.iter().position(|&c| matches!(c, b'"' | b'{' | b'[' | b'}' | b']'))?;
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    _ => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                j += 1;
            }
            Some(j)
        }
    }
}

/// Finds the `{` that opens the top-level `metadata` object of an encoded object, so a
/// `resourceVersion` can be inserted without decoding and encoding the whole object.
pub fn metadata_object_start(b: &[u8]) -> Option<usize> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(b, i)?;
        let key = &b[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if key == b"metadata" {
            return (b.get(i) == Some(&b'{')).then_some(i);
        }
        i = skip_ws(b, skip_value(b, i)?);
        match b.get(i) {
            Some(b',') => i += 1,
            _ => return None,
        }
    }
}

/// An encoded object with `metadata.resourceVersion` inserted at `meta_open` (from
/// [`metadata_object_start`]). The stored encoding never carries a `resourceVersion`.
pub fn with_resource_version(raw: &[u8], meta_open: usize, revision: u64) -> Bytes {
    let empty = raw.get(skip_ws(raw, meta_open + 1)) == Some(&b'}');
    let rv = format!("\"resourceVersion\":\"{revision}\"{}", if empty { "" } else { "," });
    let mut out = Vec::with_capacity(raw.len() + rv.len());
    out.extend_from_slice(&raw[..=meta_open]);
    out.extend_from_slice(rv.as_bytes());
    out.extend_from_slice(&raw[meta_open + 1..]);
    Bytes::from(out)
}

/// One member of an encoded object: where it starts (its key's opening quote), its key as
/// written (without quotes) and its value.
struct Member {
    start: usize,
    key: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
}

/// The members of the object that opens at `open` (a `{`), and the index of its closing `}`.
/// `None` when the text is not such an object, or a key holds an escape (whose written form
/// would not order as the key does).
fn members(b: &[u8], open: usize) -> Option<(Vec<Member>, usize)> {
    if b.get(open) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = skip_ws(b, open + 1);
    if b.get(i) == Some(&b'}') {
        return Some((out, i));
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let start = i;
        let key_end = skip_string(b, i)?;
        let key = i + 1..key_end - 1;
        if b[key.clone()].contains(&b'\\') {
            return None;
        }
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(b, i + 1);
        let value_end = skip_value(b, value_start)?;
        out.push(Member { start, key, value: value_start..value_end });
        i = skip_ws(b, value_end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some((out, i)),
            _ => return None,
        }
    }
}

/// An encoded object (as [`to_bytes`] writes it: keys in order) with its top-level member
/// `key` set to the encoded `value`, or removed when `value` is `None`; what `serde_json`
/// would write for the object so changed. `None` when `raw` cannot be read that way.
pub fn with_member(raw: &[u8], key: &str, value: Option<&[u8]>) -> Option<Bytes> {
    let (members, close) = members(raw, skip_ws(raw, 0))?;
    let found = members.iter().position(|m| &raw[m.key.clone()] == key.as_bytes());
    let mut out = Vec::with_capacity(raw.len() + value.map_or(0, |v| v.len() + key.len() + 4));
    match (found, value) {
        (Some(i), Some(value)) => {
            let at = &members[i].value;
            out.extend_from_slice(&raw[..at.start]);
            out.extend_from_slice(value);
            out.extend_from_slice(&raw[at.end..]);
        }
        (Some(i), None) => {
            // The member goes with the comma after it, or (the last one) the comma before it.
            let (from, to) = match (members.get(i + 1), i.checked_sub(1)) {
                (Some(next), _) => (members[i].start, next.start),
                (None, Some(prev)) => (members[prev].value.end, members[i].value.end),
                (None, None) => (members[i].start, members[i].value.end),
            };
            out.extend_from_slice(&raw[..from]);
            out.extend_from_slice(&raw[to..]);
        }
        (None, Some(value)) => {
            let next = members.iter().find(|m| &raw[m.key.clone()] > key.as_bytes());
            let at = next.map_or(close, |m| m.start);
            out.extend_from_slice(&raw[..at]);
            if next.is_none() && !members.is_empty() {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(value);
            if next.is_some() {
                out.push(b',');
            }
            out.extend_from_slice(&raw[at..]);
        }
        (None, None) => out.extend_from_slice(raw),
    }
    Some(Bytes::from(out))
}

/// An encoded object (as [`to_bytes`] writes it) with `metadata.resourceVersion` put in key
/// order: what `serde_json` writes for the object with that revision. `None` when `raw`
/// cannot be read that way or already has a `resourceVersion`.
pub fn with_resource_version_in_order(raw: &[u8], revision: u64) -> Option<Bytes> {
    let open = metadata_object_start(raw)?;
    let (members, close) = members(raw, open)?;
    if members.iter().any(|m| &raw[m.key.clone()] == b"resourceVersion") {
        return None;
    }
    let next = members.iter().find(|m| &raw[m.key.clone()] > b"resourceVersion".as_slice());
    let at = next.map_or(close, |m| m.start);
    let mut out = Vec::with_capacity(raw.len() + 40);
    out.extend_from_slice(&raw[..at]);
    if next.is_none() && !members.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(revision.to_string().as_bytes());
    out.push(b'"');
    if next.is_some() {
        out.push(b',');
    }
    out.extend_from_slice(&raw[at..]);
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encoded_objects_change_as_their_values_would() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "u"}, "spec": {"a": [1, {"b": "}"}]},
                "status": {"phase": "Running", "s": "\"status\":"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}),
            json!({"metadata": {}, "status": null}),
            json!({"metadata": {"annotations": {"a": "b"}, "selfLink": "/x", "uid": "u"}, "zzz": 1}),
            json!({"status": {}}),
            json!({}),
        ];
        let status = json!({"phase": "Failed", "conditions": [{"type": "Ready", "status": "False"}]});
        for obj in objects {
            let raw = to_bytes(&obj);
            for new in [Some(&status), None] {
                let mut expected = obj.clone();
                match new {
                    Some(s) => expected["status"] = s.clone(),
                    None => drop(expected.as_object_mut().unwrap().remove("status")),
                }
                let encoded = new.map(|s| serde_json::to_vec(s).unwrap());
                let changed = with_member(&raw, "status", encoded.as_deref()).unwrap();
                assert_eq!(std::str::from_utf8(&changed).unwrap(), std::str::from_utf8(&to_bytes(&expected)).unwrap());
            }
            if obj.get("metadata").is_some() {
                let mut expected = obj.clone();
                expected["metadata"]["resourceVersion"] = json!("42");
                if let Some(m) = expected["metadata"].as_object_mut() {
                    m.remove("selfLink");
                }
                let with_rv = with_resource_version_in_order(&raw, 42).unwrap();
                assert_eq!(std::str::from_utf8(&with_rv).unwrap(), serde_json::to_string(&expected).unwrap());
            }
        }
        // Spacing is read too; escaped keys and broken text are left alone.
        let spaced = br#" { "b" : 1 , "status" : { } , "z" : [ ] } "#;
        assert_eq!(&with_member(spaced, "status", None).unwrap()[..], br#" { "b" : 1 , "z" : [ ] } "#);
        assert_eq!(
            &with_member(spaced, "c", Some(b"2")).unwrap()[..],
            br#" { "b" : 1 , "c":2,"status" : { } , "z" : [ ] } "#
        );
        assert!(with_member(br#"{"a\u0041":1}"#, "status", None).is_none());
        assert!(with_member(br#"{"a":1"#, "status", None).is_none());
        assert!(with_member(b"[]", "status", None).is_none());
    }

    #[test]
    fn inserts_the_resource_version_without_decoding() {
        let cases = [
            json!({"apiVersion": "v1", "data": {"metadata": "{\"x\":1}", "a": "}\"{"}, "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"k": "v"}}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}}),
            json!({"items": [{"metadata": {"name": "nested"}}], "kind": "X", "metadata": {"name": "top"}, "spec": {"n": -1.5e3, "b": true, "z": null}}),
        ];
        for obj in cases {
            let raw = to_bytes(&obj);
            let at = metadata_object_start(&raw).expect("metadata found");
            let spliced: Value = serde_json::from_slice(&with_resource_version(&raw, at, 42)).expect("still JSON");
            let mut expected = obj.clone();
            expected["metadata"]["resourceVersion"] = json!("42");
            assert_eq!(spliced, expected);
        }
        let with_server_set = json!({"kind": "X", "metadata": {"name": "a", "resourceVersion": "7", "selfLink": "/x", "uid": "u"}, "spec": {}});
        let stored: Value = serde_json::from_slice(&to_bytes(&with_server_set)).unwrap();
        assert_eq!(stored, json!({"kind": "X", "metadata": {"name": "a", "uid": "u"}, "spec": {}}));
        let only_rv = json!({"metadata": {"resourceVersion": "7"}});
        assert_eq!(&to_bytes(&only_rv)[..], br#"{"metadata":{}}"#);
        assert_eq!(metadata_object_start(br#"{"kind":"X"}"#), None);
        assert_eq!(with_resource_version_in_order(br#"{"kind":"X"}"#, 1), None);
        assert_eq!(with_resource_version_in_order(br#"{"metadata":{"resourceVersion":"1"}}"#, 1), None);
        assert_eq!(metadata_object_start(br#"{"metadata":"text"}"#), None);
        assert_eq!(metadata_object_start(b"not json"), None);
    }
}
