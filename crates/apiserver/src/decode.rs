//! Request bodies: JSON, YAML and Kubernetes protobuf turned into one JSON object, and
//! server-side field validation (`fieldValidation=Strict|Warn|Ignore`) of unknown and
//! duplicate fields against the schema table.
//!
//! Upstream's default is `Warn`: unknown and duplicate fields are dropped and reported in
//! `Warning` headers; `Strict` refuses the request with 400 `strict decoding error: ...`.

use crate::status::{ApiError, ApiResult};
use rudder_api::schema::{self, Message, Shape, Special};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Media types a request body may have.
pub const BODY_TYPES: &[&str] = &["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"];

/// What to do with unknown and duplicate fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    /// From the (already checked) `fieldValidation` query parameter; `Warn` when absent.
    pub fn from_query(v: Option<&str>) -> FieldValidation {
        match v {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        }
    }
}

/// A decoded body and the duplicate fields seen while decoding it.
pub struct Decoded {
    pub value: Value,
    pub duplicates: Vec<String>,
}

/// Decodes a request body of media type `content_type` into a JSON object.
pub fn decode_body(content_type: &str, bytes: &[u8]) -> ApiResult<Decoded> {
    let decoded = match content_type {
        "application/json" | "*/*" => parse_json(bytes)?,
        "application/yaml" => parse_yaml(bytes)?,
        "application/vnd.kubernetes.protobuf" => {
            let value = rudder_api::protobuf::decode_object(bytes)
                .map_err(|e| ApiError::bad_request(format!("the protobuf request body cannot be decoded: {e}")))?;
            Decoded { value, duplicates: Vec::new() }
        }
        other => return Err(ApiError::unsupported_media_type(other, BODY_TYPES)),
    };
    if !decoded.value.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(decoded)
}

/// JSON, remembering keys that occur twice in one object (the last one wins, as upstream).
pub fn parse_json(bytes: &[u8]) -> ApiResult<Decoded> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty; an object was expected"));
    }
    let mut duplicates = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = ValueSeed { path: Path::Root, duplicates: &mut duplicates }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|_| v))
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    Ok(Decoded { value, duplicates })
}

fn parse_yaml(bytes: &[u8]) -> ApiResult<Decoded> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("the YAML request body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("the request body is empty; an object was expected"));
    }
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("duplicate") {
            ApiError::bad_request(format!("strict decoding error: {msg}"))
        } else {
            ApiError::bad_request(format!("the request body is not valid YAML: {msg}"))
        }
    })?;
    Ok(Decoded { value, duplicates: Vec::new() })
}

/// Where a value sits in the document; rendered only when a duplicate or unknown field is
/// found.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    /// A field (`a.b`).
    Key(&'p Path<'p>, &'p str),
    /// A list element (`a[0]`).
    Index(&'p Path<'p>, usize),
    /// A map entry (`a[key]`).
    Entry(&'p Path<'p>, &'p str),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Key(parent, key) => {
                let p = parent.render();
                if p.is_empty() { (*key).to_string() } else { format!("{p}.{key}") }
            }
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
            Path::Entry(parent, key) => format!("{}[{key}]", parent.render()),
        }
    }
}

/// Builds a `serde_json::Value`, recording duplicate object keys with their path.
struct ValueSeed<'a, 'p> {
    path: Path<'p>,
    duplicates: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let path = Path::Index(&self.path, out.len());
            match seq.next_element_seed(ValueSeed { path, duplicates: &mut *self.duplicates })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = {
                let path = Path::Key(&self.path, &key);
                map.next_value_seed(ValueSeed { path, duplicates: &mut *self.duplicates })?
            };
            if out.contains_key(&key) {
                self.duplicates.push(Path::Key(&self.path, &key).render());
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Paths of the fields of `obj` that `msg` does not define, in the notation upstream uses in
/// its messages (`spec.template.spec.containers[0].foo`). `apiVersion` and `kind` are allowed
/// at the top.
pub fn unknown_fields(obj: &Value, msg: &'static Message) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Object(map) = obj {
        for (k, v) in map {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            walk_field(k, v, None, msg, Path::Key(&Path::Root, k), &mut out);
        }
    }
    out
}

/// [`unknown_fields`] of `obj`, the result of applying the merge or strategic merge patch
/// `patch` to a stored object, looked for only where the patch reached: the rest came from
/// the stored object unchanged, and stored objects hold only fields their type knows. Lists
/// the patch names are looked through whole (merged lists mix stored and patch elements).
pub fn unknown_patched_fields(obj: &Value, patch: &Value, msg: &'static Message) -> Vec<String> {
    let mut out = Vec::new();
    if let (Value::Object(map), Value::Object(patch)) = (obj, patch) {
        for (k, p) in patch {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            if let Some((k, v)) = map.get_key_value(k) {
                walk_field(k, v, Some(p), msg, Path::Key(&Path::Root, k), &mut out);
            }
        }
    } else {
        return unknown_fields(obj, msg);
    }
    out
}

/// Walks the fields of `obj`; with `patch`, only those the patch names.
fn walk_message(obj: &Value, patch: Option<&Value>, msg: &'static Message, path: &Path, out: &mut Vec<String>) {
    if msg.special().is_some() {
        // Scalars in JSON (Time, Quantity, ...) or free-form (RawExtension, FieldsV1).
        return;
    }
    let Value::Object(map) = obj else { return };
    match patch {
        Some(Value::Object(patch)) => {
            for (k, p) in patch {
                if let Some((k, v)) = map.get_key_value(k) {
                    walk_field(k, v, Some(p), msg, Path::Key(path, k), out);
                }
            }
        }
        _ => {
            for (k, v) in map {
                walk_field(k, v, None, msg, Path::Key(path, k), out);
            }
        }
    }
}

fn walk_field(key: &str, v: &Value, patch: Option<&Value>, msg: &'static Message, path: Path, out: &mut Vec<String>) {
    let Some(field) = msg.field(key) else {
        out.push(path.render());
        return;
    };
    let Some(inner) = field.message() else { return };
    if matches!(inner.special(), Some(Special::RawExtension | Special::FieldsV1)) {
        return;
    }
    match (field.shape, v) {
        (Shape::Repeated, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                walk_message(item, None, inner, &Path::Index(&path, i), out);
            }
        }
        (Shape::Map, Value::Object(entries)) => match patch {
            Some(Value::Object(patch)) => {
                for (k, p) in patch {
                    if let Some((k, item)) = entries.get_key_value(k) {
                        walk_message(item, Some(p), inner, &Path::Entry(&path, k), out);
                    }
                }
            }
            _ => {
                for (k, item) in entries {
                    walk_message(item, None, inner, &Path::Entry(&path, k), out);
                }
            }
        },
        (Shape::Single, _) => walk_message(v, patch, inner, &path, out),
        _ => {}
    }
}

/// Applies field validation to a decoded object of kind `api_version`/`kind`: with `Strict`
/// unknown or duplicate fields are a 400; with `Warn` each becomes a warning.
pub fn check_fields(
    validation: FieldValidation,
    decoded: &Decoded,
    api_version: &str,
    kind: &str,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    if validation == FieldValidation::Ignore {
        return Ok(());
    }
    let mut problems: Vec<String> =
        decoded.duplicates.iter().map(|p| format!("duplicate field {}", quote(p))).collect();
    if let Some(msg) = schema::for_kind(api_version, kind) {
        problems.extend(unknown_fields(&decoded.value, msg).iter().map(|p| format!("unknown field {}", quote(p))));
    }
    if problems.is_empty() {
        return Ok(());
    }
    match validation {
        FieldValidation::Strict => {
            Err(ApiError::bad_request(format!("strict decoding error: {}", problems.join(", "))))
        }
        _ => {
            warnings.extend(problems);
            Ok(())
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// A `Warning` header value (RFC 7234 warn-code 299, as upstream sends).
pub fn warning_header(text: &str) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if c.is_control() => vec![' '],
            c => vec![c],
        })
        .collect();
    format!("299 - \"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_msg() -> &'static Message {
        schema::for_kind("apps/v1", "Deployment").unwrap()
    }

    #[test]
    fn duplicates_are_reported_with_their_path() {
        let d = parse_json(br#"{"a":1,"spec":{"replicas":1,"replicas":2},"a":3,"l":[{"x":1,"x":2}]}"#).unwrap();
        assert_eq!(d.value, json!({"a":3,"spec":{"replicas":2},"l":[{"x":2}]}));
        assert_eq!(d.duplicates, vec!["spec.replicas", "a", "l[0].x"]);
    }

    #[test]
    fn malformed_and_empty_bodies_are_bad_requests() {
        for body in [&b"{"[..], b"  ", b"{} {}", b"nul"] {
            assert_eq!(parse_json(body).err().unwrap().code, 400, "{:?}", std::str::from_utf8(body));
        }
        assert_eq!(decode_body("application/json", b"[1]").err().unwrap().code, 400);
        assert_eq!(decode_body("text/plain", b"{}").err().unwrap().code, 415);
    }

    #[test]
    fn unknown_fields_follow_the_schema() {
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "bogus": 1,
            "metadata": {"name": "d", "labels": {"any": "thing"}, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"replicas": 1, "replicaz": 2, "template": {"spec": {"containers": [
                {"name": "c", "image": "i", "resources": {"limits": {"cpu": "1"}}, "imagePullPolcy": "x"}
            ]}}}
        });
        let mut found = unknown_fields(&obj, deployment_msg());
        found.sort();
        assert_eq!(found, vec!["bogus", "spec.replicaz", "spec.template.spec.containers[0].imagePullPolcy"]);
    }

    #[test]
    fn strict_refuses_and_warn_reports() {
        let d = parse_json(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"dta":{}}"#).unwrap();
        let mut warnings = Vec::new();
        let err = check_fields(FieldValidation::Strict, &d, "v1", "ConfigMap", &mut warnings).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.message, r#"strict decoding error: unknown field "dta""#);
        check_fields(FieldValidation::Warn, &d, "v1", "ConfigMap", &mut warnings).unwrap();
        assert_eq!(warnings, vec![r#"unknown field "dta""#]);
        assert_eq!(warning_header(&warnings[0]), r#"299 - "unknown field \"dta\"""#);
        let mut none = Vec::new();
        check_fields(FieldValidation::Ignore, &d, "v1", "ConfigMap", &mut none).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn yaml_bodies_decode() {
        let d = decode_body(
            "application/yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  a: \"1\"\n",
        )
        .unwrap();
        assert_eq!(d.value, json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"y"},"data":{"a":"1"}}));
        assert_eq!(decode_body("application/yaml", b"a: [").err().unwrap().code, 400);
    }
}
