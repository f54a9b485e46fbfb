//! The Swagger 2.0 document in gnostic's protobuf form (`openapi_v2.Document`), which
//! client-go's `OpenAPISchema` asks for (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`)
//! and parses without a JSON fallback. kubectl uses it for client-side validation (`kind: List`
//! manifests, kinds without a PATCH operation) and older kubectl versions for `explain`.
//!
//! The encoder walks the JSON document and writes the message fields of gnostic's
//! `OpenAPIv2.proto` directly; it knows the parts of Swagger this server emits (schemas,
//! operations, query/path/body parameters, responses, API-key security). Vendor extensions,
//! defaults, examples and enum values travel as `Any { yaml }`, with the value written as
//! JSON, which is YAML.

use serde_json::{Map, Value};

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

/// A protobuf message being written.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    fn bytes(&mut self, field: u32, data: &[u8]) {
        self.key(field, LEN);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
    }

    /// A string field; proto3 leaves empty ones out.
    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn bool(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, VARINT);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v as u64);
        }
    }

    fn double(&mut self, field: u32, v: f64) {
        if v != 0.0 {
            self.key(field, FIXED64);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// An embedded message; written even when empty, so the reader sees it present.
    fn message(&mut self, field: u32, build: impl FnOnce(&mut Message)) {
        let mut inner = Message::default();
        build(&mut inner);
        self.bytes(field, &inner.0);
    }

    fn str_of(&mut self, field: u32, v: Option<&Value>) {
        if let Some(s) = v.and_then(Value::as_str) {
            self.string(field, s);
        }
    }

    fn bool_of(&mut self, field: u32, v: Option<&Value>) {
        self.bool(field, v.and_then(Value::as_bool).unwrap_or(false));
    }

    fn strings_of(&mut self, field: u32, v: Option<&Value>) {
        for s in v.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            self.bytes(field, s.as_bytes());
        }
    }

    /// `Any { yaml }` holding `v`.
    fn any(&mut self, field: u32, v: &Value) {
        self.message(field, |m| m.string(2, &v.to_string()));
    }

    /// Every `x-` key of `obj` as `NamedAny` entries.
    fn extensions(&mut self, field: u32, obj: &Map<String, Value>) {
        for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
            self.message(field, |m| {
                m.string(1, k);
                m.any(2, v);
            });
        }
    }
}

/// Encodes a Swagger 2.0 JSON document as gnostic's `openapi_v2.Document`.
pub fn encode_document(doc: &Value) -> Vec<u8> {
    let empty = Map::new();
    let d = doc.as_object().unwrap_or(&empty);
    let mut m = Message::default();
    m.str_of(1, d.get("swagger"));
    if let Some(Value::Object(info)) = d.get("info") {
        m.message(2, |i| {
            i.str_of(1, info.get("title"));
            i.str_of(2, info.get("version"));
            i.str_of(3, info.get("description"));
            i.extensions(7, info);
        });
    }
    m.str_of(3, d.get("host"));
    m.str_of(4, d.get("basePath"));
    m.strings_of(5, d.get("schemes"));
    m.strings_of(6, d.get("consumes"));
    m.strings_of(7, d.get("produces"));
    if let Some(Value::Object(paths)) = d.get("paths") {
        m.message(8, |p| {
            p.extensions(1, paths);
            for (path, item) in paths.iter().filter(|(k, _)| !k.starts_with("x-")) {
                p.message(2, |named| {
                    named.string(1, path);
                    named.message(2, |pi| path_item(pi, item));
                });
            }
        });
    }
    if let Some(Value::Object(defs)) = d.get("definitions") {
        m.message(9, |ds| named_schemas(ds, 1, defs));
    }
    for requirement in d.get("security").and_then(Value::as_array).into_iter().flatten() {
        m.message(12, |r| security_requirement(r, requirement));
    }
    if let Some(Value::Object(defs)) = d.get("securityDefinitions") {
        m.message(13, |sd| {
            for (name, def) in defs {
                sd.message(1, |named| {
                    named.string(1, name);
                    named.message(2, |item| security_definition(item, def));
                });
            }
        });
    }
    m.extensions(16, d);
    m.0
}

fn security_requirement(m: &mut Message, requirement: &Value) {
    for (name, scopes) in requirement.as_object().into_iter().flatten() {
        m.message(1, |named| {
            named.string(1, name);
            named.message(2, |array| array.strings_of(1, Some(scopes)));
        });
    }
}

fn security_definition(m: &mut Message, def: &Value) {
    let empty = Map::new();
    let d = def.as_object().unwrap_or(&empty);
    match d.get("type").and_then(Value::as_str) {
        Some("basic") => m.message(1, |b| {
            b.str_of(1, d.get("type"));
            b.str_of(2, d.get("description"));
            b.extensions(3, d);
        }),
        _ => m.message(2, |k| {
            k.str_of(1, d.get("type"));
            k.str_of(2, d.get("name"));
            k.str_of(3, d.get("in"));
            k.str_of(4, d.get("description"));
            k.extensions(5, d);
        }),
    }
}

fn path_item(m: &mut Message, item: &Value) {
    let empty = Map::new();
    let item = item.as_object().unwrap_or(&empty);
    m.str_of(1, item.get("$ref"));
    for (field, method) in
        [(2, "get"), (3, "put"), (4, "post"), (5, "delete"), (6, "options"), (7, "head"), (8, "patch")]
    {
        if let Some(op) = item.get(method) {
            m.message(field, |o| operation(o, op));
        }
    }
    for p in item.get("parameters").and_then(Value::as_array).into_iter().flatten() {
        m.message(9, |pi| parameters_item(pi, p));
    }
    m.extensions(10, item);
}

fn operation(m: &mut Message, op: &Value) {
    let empty = Map::new();
    let op = op.as_object().unwrap_or(&empty);
    m.strings_of(1, op.get("tags"));
    m.str_of(2, op.get("summary"));
    m.str_of(3, op.get("description"));
    m.str_of(5, op.get("operationId"));
    m.strings_of(6, op.get("produces"));
    m.strings_of(7, op.get("consumes"));
    for p in op.get("parameters").and_then(Value::as_array).into_iter().flatten() {
        m.message(8, |pi| parameters_item(pi, p));
    }
    if let Some(Value::Object(responses)) = op.get("responses") {
        m.message(9, |rs| {
            for (code, response) in responses.iter().filter(|(k, _)| !k.starts_with("x-")) {
                rs.message(1, |named| {
                    named.string(1, code);
                    named.message(2, |value| {
                        if let Some(reference) = response.get("$ref") {
                            value.message(2, |j| j.str_of(1, Some(reference)));
                        } else {
                            value.message(1, |r| {
                                r.str_of(1, response.get("description"));
                                if let Some(schema) = response.get("schema") {
                                    r.message(2, |item| item.message(1, |s| encode_schema(s, schema)));
                                }
                                if let Some(obj) = response.as_object() {
                                    r.extensions(5, obj);
                                }
                            });
                        }
                    });
                });
            }
            rs.extensions(2, responses);
        });
    }
    m.strings_of(10, op.get("schemes"));
    m.bool_of(11, op.get("deprecated"));
    m.extensions(13, op);
}

fn parameters_item(m: &mut Message, p: &Value) {
    if let Some(reference) = p.get("$ref") {
        m.message(2, |j| {
            j.str_of(1, Some(reference));
            j.str_of(2, p.get("description"));
        });
        return;
    }
    let empty = Map::new();
    let p = p.as_object().unwrap_or(&empty);
    m.message(1, |param| match p.get("in").and_then(Value::as_str) {
        Some("body") => param.message(1, |b| {
            b.str_of(1, p.get("description"));
            b.str_of(2, p.get("name"));
            b.str_of(3, p.get("in"));
            b.bool_of(4, p.get("required"));
            if let Some(schema) = p.get("schema") {
                b.message(5, |s| encode_schema(s, schema));
            }
            b.extensions(6, p);
        }),
        location => param.message(2, |non_body| {
            // Header and path parameters share one field layout, query and form data
            // another (with `allowEmptyValue` as field 5).
            let (field, with_allow_empty) = match location {
                Some("header") => (1, false),
                Some("formData") => (2, true),
                Some("path") => (4, false),
                _ => (3, true),
            };
            non_body.message(field, |s| simple_parameter(s, p, with_allow_empty));
        }),
    });
}

/// The fields of a non-body parameter; `shift` is 1 for the layouts with `allowEmptyValue`.
fn simple_parameter(m: &mut Message, p: &Map<String, Value>, with_allow_empty: bool) {
    let shift = u32::from(with_allow_empty);
    m.bool_of(1, p.get("required"));
    m.str_of(2, p.get("in"));
    m.str_of(3, p.get("description"));
    m.str_of(4, p.get("name"));
    if with_allow_empty {
        m.bool_of(5, p.get("allowEmptyValue"));
    }
    m.str_of(5 + shift, p.get("type"));
    m.str_of(6 + shift, p.get("format"));
    m.str_of(8 + shift, p.get("collectionFormat"));
    if let Some(default) = p.get("default") {
        m.any(9 + shift, default);
    }
    m.bool_of(19 + shift, p.get("uniqueItems"));
    for value in p.get("enum").and_then(Value::as_array).into_iter().flatten() {
        m.any(20 + shift, value);
    }
    m.extensions(22 + shift, p);
}

fn named_schemas(m: &mut Message, field: u32, schemas: &Map<String, Value>) {
    for (name, schema) in schemas {
        m.message(field, |named| {
            named.string(1, name);
            named.message(2, |s| encode_schema(s, schema));
        });
    }
}

/// gnostic's `Schema`.
fn encode_schema(m: &mut Message, schema: &Value) {
    let empty = Map::new();
    let s = schema.as_object().unwrap_or(&empty);
    let number = |k: &str| s.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let integer = |k: &str| s.get(k).and_then(Value::as_i64).unwrap_or(0);
    m.str_of(1, s.get("$ref"));
    m.str_of(2, s.get("format"));
    m.str_of(3, s.get("title"));
    m.str_of(4, s.get("description"));
    if let Some(default) = s.get("default") {
        m.any(5, default);
    }
    m.double(6, number("multipleOf"));
    m.double(7, number("maximum"));
    m.bool_of(8, s.get("exclusiveMaximum"));
    m.double(9, number("minimum"));
    m.bool_of(10, s.get("exclusiveMinimum"));
    m.int64(11, integer("maxLength"));
    m.int64(12, integer("minLength"));
    m.str_of(13, s.get("pattern"));
    m.int64(14, integer("maxItems"));
    m.int64(15, integer("minItems"));
    m.bool_of(16, s.get("uniqueItems"));
    m.int64(17, integer("maxProperties"));
    m.int64(18, integer("minProperties"));
    m.strings_of(19, s.get("required"));
    for value in s.get("enum").and_then(Value::as_array).into_iter().flatten() {
        m.any(20, value);
    }
    match s.get("additionalProperties") {
        Some(Value::Bool(b)) => m.message(21, |a| {
            a.key(2, VARINT);
            a.varint(u64::from(*b));
        }),
        Some(sub @ Value::Object(_)) => m.message(21, |a| a.message(1, |x| encode_schema(x, sub))),
        _ => {}
    }
    match s.get("type") {
        Some(Value::String(t)) => m.message(22, |ti| ti.string(1, t)),
        Some(types @ Value::Array(_)) => m.message(22, |ti| ti.strings_of(1, Some(types))),
        _ => {}
    }
    match s.get("items") {
        Some(sub @ Value::Object(_)) => m.message(23, |items| items.message(1, |x| encode_schema(x, sub))),
        Some(Value::Array(subs)) => m.message(23, |items| {
            for sub in subs {
                items.message(1, |x| encode_schema(x, sub));
            }
        }),
        _ => {}
    }
    for sub in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        m.message(24, |x| encode_schema(x, sub));
    }
    if let Some(Value::Object(properties)) = s.get("properties") {
        m.message(25, |p| named_schemas(p, 1, properties));
    }
    m.str_of(26, s.get("discriminator"));
    m.bool_of(27, s.get("readOnly"));
    if let Some(example) = s.get("example") {
        m.any(30, example);
    }
    m.extensions(31, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal protobuf reader for the tests: the fields of one message.
    fn fields(mut data: &[u8]) -> Vec<(u32, Vec<u8>)> {
        fn varint(data: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            let mut shift = 0;
            loop {
                let b = data[0];
                *data = &data[1..];
                v |= u64::from(b & 0x7f) << shift;
                if b < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !data.is_empty() {
            let key = varint(&mut data);
            let (field, wire) = ((key >> 3) as u32, (key & 7) as u32);
            let value = match wire {
                VARINT => varint(&mut data).to_le_bytes().to_vec(),
                FIXED64 => {
                    let v = data[..8].to_vec();
                    data = &data[8..];
                    v
                }
                LEN => {
                    let n = varint(&mut data) as usize;
                    let v = data[..n].to_vec();
                    data = &data[n..];
                    v
                }
                other => panic!("wire type {other}"),
            };
            out.push((field, value));
        }
        out
    }

    fn field(data: &[u8], n: u32) -> Vec<u8> {
        fields(data).into_iter().find(|(f, _)| *f == n).unwrap_or_else(|| panic!("field {n}")).1
    }

    #[test]
    fn encodes_documents_as_gnostic_reads_them() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": {"/api/v1/pods": {
                "get": {
                    "operationId": "listCoreV1PodForAllNamespaces",
                    "parameters": [{"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true}],
                    "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/io.k8s.api.core.v1.Pod"}}},
                    "x-kubernetes-group-version-kind": {"group": "", "kind": "Pod", "version": "v1"},
                },
            }},
            "definitions": {"io.k8s.api.core.v1.Pod": {
                "type": "object",
                "properties": {"spec": {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec", "description": "d"}},
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}],
            }},
        });
        let bytes = encode_document(&doc);
        assert_eq!(field(&bytes, 1), b"2.0");
        assert_eq!(field(&field(&bytes, 2), 1), b"Kubernetes");
        let named_path = field(&field(&bytes, 8), 2);
        assert_eq!(field(&named_path, 1), b"/api/v1/pods");
        let get = field(&field(&named_path, 2), 2);
        assert_eq!(field(&get, 5), b"listCoreV1PodForAllNamespaces");
        // parameters → Parameter → NonBodyParameter → QueryParameterSubSchema.
        let query = field(&field(&field(&field(&get, 8), 1), 2), 3);
        assert_eq!(field(&query, 4), b"fieldValidation");
        assert_eq!(field(&query, 2), b"query");
        let extension = field(&get, 13);
        assert_eq!(field(&extension, 1), b"x-kubernetes-group-version-kind");
        let yaml = field(&field(&extension, 2), 2);
        assert_eq!(serde_json::from_slice::<Value>(&yaml).unwrap()["kind"], "Pod");
        let response = field(&field(&field(&field(&get, 9), 1), 2), 1);
        assert_eq!(field(&response, 1), b"OK");
        let named_schema = field(&field(&bytes, 9), 1);
        assert_eq!(field(&named_schema, 1), b"io.k8s.api.core.v1.Pod");
        let pod = field(&named_schema, 2);
        assert_eq!(field(&field(&pod, 22), 1), b"object");
        let spec = field(&field(&field(&pod, 25), 1), 2);
        assert_eq!(field(&spec, 1), b"#/definitions/io.k8s.api.core.v1.PodSpec");
        assert_eq!(field(&spec, 4), b"d");
    }

    #[test]
    fn empty_properties_stay_present() {
        let mut m = Message::default();
        encode_schema(&mut m, &json!({"type": "object", "properties": {}}));
        assert_eq!(field(&m.0, 25), Vec::<u8>::new());
    }
}
