//! Response content negotiation, as upstream's `negotiation` package and
//! `transformResponseObject` do it.
//!
//! The `Accept` header is a list of media ranges; they are tried by `q` (highest first), then
//! specific before wildcard, then in the client's order, and the first one the server can
//! produce wins. The server produces `application/json` and `application/yaml`;
//! `application/vnd.kubernetes.protobuf` is produced only when the client accepts nothing else
//! (clients that list it first, such as kubectl's typed ones, also accept JSON), and not for
//! watches. Parameters
//! `as`/`g`/`v` ask for a conversion to a `meta.k8s.io` kind: `Table` (reads of resources only),
//! `PartialObjectMetadata` or `PartialObjectMetadataList`. Nothing acceptable is a 406.
//!
//! Key items: [`negotiate`] / [`for_request`] → [`Negotiated`]; [`respond_object`] for write
//! handlers; [`partial_object_metadata`] and [`encode`] for the read handlers.

use crate::printers::{self, IncludeObject, TableOptions};
use crate::server::Ctx;
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use rudder_api::catalog::Resource;
use serde_json::{Map, Value, json};

/// `application/json`.
pub const JSON: &str = "application/json";
/// `application/yaml`.
pub const YAML: &str = "application/yaml";
/// `application/vnd.kubernetes.protobuf`.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The media types upstream lists in a 406, in its order.
const SERVED: &[&str] = &[JSON, YAML, PROTOBUF];
/// The streaming media types upstream lists in a 406 for a watch.
const STREAMED: &[&str] = &["application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch"];

/// How the response body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// `application/vnd.kubernetes.protobuf`, only for clients that accept neither JSON nor
    /// YAML (not for watches).
    Protobuf,
}

impl Encoding {
    /// The `Content-Type` of the response.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => JSON,
            Encoding::Yaml => YAML,
            Encoding::Protobuf => PROTOBUF,
        }
    }
}

/// A `meta.k8s.io` version a conversion targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaVersion {
    /// `meta.k8s.io/v1`.
    V1,
    /// `meta.k8s.io/v1beta1`.
    V1beta1,
}

impl MetaVersion {
    /// The `apiVersion` of converted objects.
    pub fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// What the response object is turned into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// The object itself.
    None,
    /// A `Table`.
    Table(MetaVersion),
    /// A `PartialObjectMetadata` (single objects only).
    PartialObjectMetadata(MetaVersion),
    /// A `PartialObjectMetadataList` (lists only).
    PartialObjectMetadataList(MetaVersion),
}

/// The outcome of negotiation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Body encoding.
    pub encoding: Encoding,
    /// Conversion of the object.
    pub conversion: Conversion,
}

impl Negotiated {
    /// Plain JSON of the object itself (what the fast paths serve).
    pub const JSON: Negotiated = Negotiated { encoding: Encoding::Json, conversion: Conversion::None };

    /// Whether the response is the object as JSON, unconverted.
    pub fn is_plain_json(&self) -> bool {
        *self == Negotiated::JSON
    }
}

/// What an endpoint can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Whether it can answer with a `Table` (reads of resources).
    pub table: bool,
    /// Whether it streams (a watch): only media types with a stream encoding qualify.
    pub stream: bool,
}

impl Endpoint {
    /// GET and LIST of a resource.
    pub const READ: Endpoint = Endpoint { table: true, stream: false };
    /// WATCH of a resource.
    pub const WATCH: Endpoint = Endpoint { table: true, stream: true };
    /// Writes (create, update, patch, delete): no tables.
    pub const WRITE: Endpoint = Endpoint { table: false, stream: false };
}

/// One media range of an `Accept` header.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaRange {
    /// Type, lower-cased (`application`, `*`).
    pub kind: String,
    /// Subtype, lower-cased (`json`, `*`).
    pub subtype: String,
    /// Parameters other than `q`, names lower-cased, values as sent (unquoted).
    pub params: Vec<(String, String)>,
    /// Quality, 0 to 1.
    pub q: f32,
}

impl MediaRange {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Splits `s` at `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    match v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_string(),
    }
}

/// Parses an `Accept` header into media ranges, in the order they are to be tried: by `q`
/// (highest first), then concrete types before wildcards, then as the client listed them.
/// Malformed ranges and ranges with `q=0` are left out.
pub fn parse_accept(header: &str) -> Vec<MediaRange> {
    let mut ranges = Vec::new();
    for part in split_unquoted(header, ',') {
        let mut pieces = split_unquoted(part, ';').into_iter();
        let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let (kind, subtype) = match media.split_once('/') {
            Some((k, s)) if !k.is_empty() && !s.is_empty() && !s.contains('/') => (k.to_string(), s.to_string()),
            None if media == "*" => ("*".to_string(), "*".to_string()),
            _ => continue,
        };
        let mut q = 1.0f32;
        let mut params = Vec::new();
        for p in pieces {
            let Some((k, v)) = p.split_once('=') else { continue };
            let k = k.trim().to_ascii_lowercase();
            if k == "q" {
                q = unquote(v).parse::<f32>().ok().filter(|q| q.is_finite()).unwrap_or(0.0).clamp(0.0, 1.0);
            } else {
                params.push((k, unquote(v)));
            }
        }
        if q > 0.0 {
            ranges.push(MediaRange { kind, subtype, params, q });
        }
    }
    ranges.sort_by(|a, b| {
        b.q.partial_cmp(&a.q)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then((a.kind == "*").cmp(&(b.kind == "*")))
            .then((a.subtype == "*").cmp(&(b.subtype == "*")))
    });
    ranges
}

/// The serializers in upstream's order; protobuf is recognised so that its ranges are passed
/// over rather than matched by a later serializer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serializer {
    Json,
    Yaml,
    Protobuf,
}

impl Serializer {
    const ALL: [Serializer; 3] = [Serializer::Json, Serializer::Yaml, Serializer::Protobuf];

    fn subtype(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::Yaml => "yaml",
            Serializer::Protobuf => "vnd.kubernetes.protobuf",
        }
    }

    fn streams(self) -> bool {
        self != Serializer::Yaml
    }
}

/// The conversion the `as`/`g`/`v` parameters of a range ask for, if this endpoint and
/// serializer allow it (upstream's `AllowsMediaTypeTransform`).
fn conversion(range: &MediaRange, serializer: Serializer, endpoint: Endpoint) -> Option<Conversion> {
    let (kind, group, version) = (range.param("as"), range.param("g"), range.param("v"));
    if kind.is_none() && group.is_none() && version.is_none() {
        return Some(Conversion::None);
    }
    let v = match (group, version) {
        (Some("meta.k8s.io"), Some("v1")) => MetaVersion::V1,
        (Some("meta.k8s.io"), Some("v1beta1")) => MetaVersion::V1beta1,
        _ => return None,
    };
    match kind? {
        "Table" if endpoint.table && serializer != Serializer::Protobuf => Some(Conversion::Table(v)),
        "PartialObjectMetadata" => Some(Conversion::PartialObjectMetadata(v)),
        "PartialObjectMetadataList" => Some(Conversion::PartialObjectMetadataList(v)),
        _ => None,
    }
}

/// Picks the response representation for an `Accept` header (absent or empty: JSON).
pub fn negotiate(accept: Option<&str>, endpoint: Endpoint) -> ApiResult<Negotiated> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(Negotiated::JSON);
    };
    if accept == JSON || accept == "*/*" {
        // The common cases, without parsing.
        return Ok(Negotiated::JSON);
    }
    // Protobuf is produced only when nothing else is acceptable: clients that list it first
    // (kubectl's typed clients) also take JSON, which every path serves well.
    let mut protobuf = None;
    for range in parse_accept(accept) {
        for serializer in Serializer::ALL {
            let matches = range.kind == "*" && range.subtype == "*"
                || range.kind == "application" && (range.subtype == "*" || range.subtype == serializer.subtype());
            if !matches {
                continue;
            }
            if range.param("stream").is_some_and(|s| !s.is_empty() && (s != "watch" || !serializer.streams())) {
                continue;
            }
            let Some(conversion) = conversion(&range, serializer, endpoint) else { continue };
            let encoding = match serializer {
                Serializer::Json => Encoding::Json,
                Serializer::Yaml if endpoint.stream => {
                    // Upstream settles on YAML, then finds it has no stream encoding.
                    return Err(ApiError::not_acceptable_types(STREAMED));
                }
                Serializer::Yaml => Encoding::Yaml,
                Serializer::Protobuf => {
                    if !endpoint.stream && protobuf.is_none() {
                        protobuf = Some(Negotiated { encoding: Encoding::Protobuf, conversion });
                    }
                    continue;
                }
            };
            return Ok(Negotiated { encoding, conversion });
        }
    }
    protobuf.ok_or_else(|| ApiError::not_acceptable_types(SERVED))
}

/// Negotiates the response of a request from its `Accept` header.
pub fn for_request(ctx: &Ctx, endpoint: Endpoint) -> ApiResult<Negotiated> {
    let accept = ctx.headers.get(header::ACCEPT).map(|v| v.to_str().unwrap_or("\u{0}"));
    negotiate(accept, endpoint)
}

/// The Table options of a request (`includeObject`), when `n` asks for a Table.
pub fn table_options(ctx: &Ctx, n: &Negotiated, headers: bool) -> ApiResult<Option<TableOptions>> {
    let Conversion::Table(version) = n.conversion else { return Ok(None) };
    let include = IncludeObject::parse(ctx.query.include_object.as_deref())?;
    Ok(Some(TableOptions { version, include, headers }))
}

/// An object's metadata as a `PartialObjectMetadata`.
pub fn partial_object_metadata(obj: &Value, version: MetaVersion) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": version.api_version(),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A `PartialObjectMetadataList` of objects, with the list's metadata.
pub fn partial_object_metadata_list(list_meta: Map<String, Value>, items: &[Value], version: MetaVersion) -> Value {
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": version.api_version(),
        "metadata": list_meta,
        "items": items.iter().map(|i| partial_object_metadata(i, version)).collect::<Vec<_>>(),
    })
}

/// The Go type upstream names in conversion errors, e.g. `*core.ConfigMapList`.
fn go_type(kind: &str, group: &str) -> String {
    let package = if group.is_empty() { "core" } else { group.split('.').next().unwrap_or(group) };
    format!("*{package}.{kind}")
}

/// The 406 for a single-object conversion asked of a list.
pub fn not_a_single_object(res: &Resource) -> ApiError {
    ApiError::not_acceptable_because(format!(
        "you requested PartialObjectMetadata, but the requested object is a list ({})",
        go_type(&format!("{}List", res.kind), res.group)
    ))
}

/// The 406 for a list conversion asked of a single object.
pub fn not_a_list(kind: &str, group: &str) -> ApiError {
    ApiError::not_acceptable_because(format!(
        "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
        go_type(kind, group)
    ))
}

/// Converts one object of `res` (served version) as negotiated. `table` carries the options
/// when a Table is asked for.
pub fn convert_object(n: &Negotiated, res: &Resource, obj: Value, table: Option<TableOptions>) -> ApiResult<Value> {
    match n.conversion {
        Conversion::None => Ok(obj),
        Conversion::PartialObjectMetadata(v) => Ok(partial_object_metadata(&obj, v)),
        Conversion::PartialObjectMetadataList(_) => Err(not_a_list(res.kind, res.group)),
        Conversion::Table(version) => {
            let opts = table.unwrap_or(TableOptions { version, include: IncludeObject::Metadata, headers: true });
            Ok(object_table(res, &obj, opts))
        }
    }
}

/// A one-row `Table` of a single object; its `resourceVersion` is the object's.
pub fn object_table(res: &Resource, obj: &Value, opts: TableOptions) -> Value {
    let mut meta = Map::new();
    if let Some(rv) = obj.pointer("/metadata/resourceVersion").filter(|v| v.as_str() != Some("")) {
        meta.insert("resourceVersion".into(), rv.clone());
    }
    printers::table(res, std::slice::from_ref(obj), meta, opts, chrono::Utc::now())
}

/// Converts a list page of `res` as negotiated; `list_meta` is the list's `metadata`.
pub fn convert_list(
    n: &Negotiated,
    res: &Resource,
    list_meta: Map<String, Value>,
    items: Vec<Value>,
    table: Option<TableOptions>,
) -> ApiResult<Value> {
    match n.conversion {
        Conversion::None => Ok(json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": list_meta,
            "items": items,
        })),
        Conversion::PartialObjectMetadata(_) => Err(not_a_single_object(res)),
        Conversion::PartialObjectMetadataList(v) => Ok(partial_object_metadata_list(list_meta, &items, v)),
        Conversion::Table(version) => {
            let opts = table.unwrap_or(TableOptions { version, include: IncludeObject::Metadata, headers: true });
            Ok(printers::table(res, &items, list_meta, opts, chrono::Utc::now()))
        }
    }
}

/// Encodes a body in the negotiated encoding.
pub fn encode_body(encoding: Encoding, body: &Value) -> ApiResult<Bytes> {
    match encoding {
        Encoding::Json => Ok(Bytes::from(serde_json::to_vec(body).expect("JSON values encode"))),
        Encoding::Yaml => serde_yaml_ng::to_string(body)
            .map(Bytes::from)
            .map_err(|e| ApiError::internal(format!("cannot encode the response as YAML: {e}"))),
        Encoding::Protobuf => rudder_api::protobuf::encode_object(body)
            .map(Bytes::from)
            .map_err(|e| ApiError::not_acceptable_because(format!("cannot encode the response as protobuf: {e}"))),
    }
}

/// A response with an encoded body and its content type.
pub fn response(encoding: Encoding, code: u16, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(encoding.content_type()));
    resp
}

/// Encodes `body` as negotiated and wraps it in a response.
pub fn encode(encoding: Encoding, code: u16, body: &Value) -> ApiResult<Response<Body>> {
    Ok(response(encoding, code, encode_body(encoding, body)?))
}

/// Answers a write (create, update, patch, delete) with `obj`, in JSON or YAML as the client
/// accepts. `PartialObjectMetadata` (and `PartialObjectMetadataList` for lists) are served as
/// upstream does; Tables are not offered for writes, so a client asking only for a Table gets
/// a 406. `Status` objects are never converted.
pub fn respond_object(ctx: &Ctx, code: u16, obj: &Value) -> ApiResult<Response<Body>> {
    respond_negotiated(&for_request(ctx, Endpoint::WRITE)?, code, obj)
}

/// [`respond_object`] once negotiated.
pub fn respond_negotiated(n: &Negotiated, code: u16, obj: &Value) -> ApiResult<Response<Body>> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let group = obj.get("apiVersion").and_then(Value::as_str).and_then(|v| v.rsplit_once('/')).map_or("", |(g, _)| g);
    let is_list = kind.ends_with("List") && obj.get("items").is_some_and(Value::is_array);
    let converted = match n.conversion {
        _ if kind == "Status" => None,
        Conversion::None | Conversion::Table(_) => None,
        Conversion::PartialObjectMetadata(_) if is_list => {
            return Err(ApiError::not_acceptable_because(format!(
                "you requested PartialObjectMetadata, but the requested object is a list ({})",
                go_type(kind, group)
            )));
        }
        Conversion::PartialObjectMetadata(v) => Some(partial_object_metadata(obj, v)),
        Conversion::PartialObjectMetadataList(v) if is_list => {
            let meta = obj.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
            let items = obj.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
            Some(partial_object_metadata_list(meta, items, v))
        }
        Conversion::PartialObjectMetadataList(_) => return Err(not_a_list(kind, group)),
    };
    encode(n.encoding, code, converted.as_ref().unwrap_or(obj))
}

/// [`respond_negotiated`] for an object whose JSON is at hand: `json`, as `serde_json`
/// writes `obj`, is sent as it is when the client takes the object as JSON.
pub fn respond_encoded(n: &Negotiated, code: u16, obj: &Value, json: Option<Bytes>) -> ApiResult<Response<Body>> {
    match json {
        Some(json) if n.is_plain_json() => Ok(response(Encoding::Json, code, json)),
        _ => respond_negotiated(n, code, obj),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_GET: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    fn read(accept: &str) -> ApiResult<Negotiated> {
        negotiate(Some(accept), Endpoint::READ)
    }

    fn plain(encoding: Encoding) -> Negotiated {
        Negotiated { encoding, conversion: Conversion::None }
    }

    fn table(v: MetaVersion) -> Negotiated {
        Negotiated { encoding: Encoding::Json, conversion: Conversion::Table(v) }
    }

    #[test]
    fn parses_media_ranges() {
        let r = parse_accept(
            " Application/JSON ; as=Table ; g=\"meta.k8s.io\";V=v1 ;q=0.5, text/plain, */*;q=0.1,bad, x/;q=1",
        );
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].kind.as_str(), r[0].subtype.as_str()), ("text", "plain"));
        assert_eq!(r[1].subtype, "json");
        assert_eq!(r[1].q, 0.5);
        assert_eq!(
            r[1].params,
            [("as".into(), "Table".into()), ("g".into(), "meta.k8s.io".into()), ("v".into(), "v1".into())]
        );
        assert_eq!(r[2].kind, "*");
        assert!(parse_accept("application/json;q=0").is_empty());
        let r = parse_accept("*/*, application/yaml, application/*");
        let order: Vec<String> = r.iter().map(|m| format!("{}/{}", m.kind, m.subtype)).collect();
        assert_eq!(order, ["application/yaml", "application/*", "*/*"]);
    }

    #[test]
    fn kubectl_headers() {
        assert_eq!(read(KUBECTL_GET).unwrap(), table(MetaVersion::V1));
        // Parameter order does not matter.
        assert_eq!(read("application/json;g=meta.k8s.io;v=v1beta1;as=Table").unwrap(), table(MetaVersion::V1beta1));
        // Typed clients ask for protobuf first; JSON is served.
        assert_eq!(read("application/vnd.kubernetes.protobuf,application/json").unwrap(), Negotiated::JSON);
        assert_eq!(read("application/vnd.kubernetes.protobuf, */*").unwrap(), Negotiated::JSON);
        // Writes never produce tables: kubectl's header falls back to JSON.
        assert_eq!(negotiate(Some(KUBECTL_GET), Endpoint::WRITE).unwrap(), Negotiated::JSON);
        assert_eq!(negotiate(Some(KUBECTL_GET), Endpoint::WATCH).unwrap(), table(MetaVersion::V1));
    }

    #[test]
    fn plain_types_and_wildcards() {
        assert_eq!(negotiate(None, Endpoint::READ).unwrap(), Negotiated::JSON);
        assert_eq!(negotiate(Some(" "), Endpoint::READ).unwrap(), Negotiated::JSON);
        assert_eq!(read("*/*").unwrap(), Negotiated::JSON);
        assert_eq!(read("application/*").unwrap(), Negotiated::JSON);
        assert_eq!(read("application/yaml").unwrap(), plain(Encoding::Yaml));
        assert_eq!(read("application/json;q=0.4, application/yaml;q=0.9").unwrap(), plain(Encoding::Yaml));
        assert_eq!(read("application/json;charset=utf-8").unwrap(), Negotiated::JSON);
        assert_eq!(read("application/json;stream=watch").unwrap(), Negotiated::JSON);
        assert_eq!(read("text/html, application/yaml").unwrap(), plain(Encoding::Yaml));
    }

    #[test]
    fn conversions() {
        let pom = read("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").unwrap();
        assert_eq!(pom.conversion, Conversion::PartialObjectMetadataList(MetaVersion::V1));
        let pom = read("application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1").unwrap();
        assert_eq!(pom.conversion, Conversion::PartialObjectMetadata(MetaVersion::V1beta1));
        let yaml_table = read("application/yaml;as=Table;g=meta.k8s.io;v=v1").unwrap();
        assert_eq!(yaml_table, Negotiated { encoding: Encoding::Yaml, conversion: Conversion::Table(MetaVersion::V1) });
        // Incomplete or unknown conversions are not acceptable; the next range is tried.
        assert_eq!(read("application/json;as=Table, application/yaml").unwrap(), plain(Encoding::Yaml));
        assert_eq!(read("application/json;as=Table;g=meta.k8s.io;v=v2").unwrap_err().code, 406);
        assert_eq!(read("application/json;as=Pod;g=meta.k8s.io;v=v1").unwrap_err().code, 406);
        assert_eq!(read("application/vnd.kubernetes.protobuf;as=Table;g=meta.k8s.io;v=v1").unwrap_err().code, 406);
        let err = negotiate(Some("application/json;as=Table;v=v1;g=meta.k8s.io"), Endpoint::WRITE).unwrap_err();
        assert_eq!((err.code, err.reason), (406, "NotAcceptable"));
    }

    #[test]
    fn not_acceptable() {
        let err = read("application/xml").unwrap_err();
        assert_eq!((err.code, err.reason), (406, "NotAcceptable"));
        assert_eq!(
            err.message,
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
        // Protobuf alone is produced.
        assert_eq!(read("application/vnd.kubernetes.protobuf").unwrap(), plain(Encoding::Protobuf));
        assert_eq!(read("text/*").unwrap_err().code, 406);
        let err = negotiate(Some("application/yaml"), Endpoint::WATCH).unwrap_err();
        assert_eq!(
            err.message,
            "only the following media types are accepted: application/json;stream=watch, application/vnd.kubernetes.protobuf;stream=watch"
        );
        assert_eq!(read("application/yaml;stream=watch").unwrap_err().code, 406);
    }

    #[test]
    fn conversion_shapes() {
        let cm = rudder_api::catalog::lookup("", "v1", "configmaps").unwrap();
        let obj = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "a", "resourceVersion": "5"}, "data": {}});
        let pom =
            Negotiated { encoding: Encoding::Json, conversion: Conversion::PartialObjectMetadata(MetaVersion::V1) };
        assert_eq!(
            convert_object(&pom, cm, obj.clone(), None).unwrap(),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a", "resourceVersion": "5"}})
        );
        let err = convert_list(&pom, cm, Map::new(), vec![], None).unwrap_err();
        assert_eq!(
            err.message,
            "you requested PartialObjectMetadata, but the requested object is a list (*core.ConfigMapList)"
        );
        let poml =
            Negotiated { encoding: Encoding::Json, conversion: Conversion::PartialObjectMetadataList(MetaVersion::V1) };
        assert_eq!(convert_object(&poml, cm, obj.clone(), None).unwrap_err().code, 406);
        let mut meta = Map::new();
        meta.insert("resourceVersion".into(), json!("9"));
        let list = convert_list(&poml, cm, meta, vec![obj.clone()], None).unwrap();
        assert_eq!(list["kind"], "PartialObjectMetadataList");
        assert_eq!(list["metadata"]["resourceVersion"], "9");
        assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
        let t = convert_object(&table(MetaVersion::V1), cm, obj, None).unwrap();
        assert_eq!(t["metadata"], json!({"resourceVersion": "5"}));
        assert_eq!(t["rows"].as_array().unwrap().len(), 1);
        let yaml = encode_body(Encoding::Yaml, &json!({"kind": "X", "a": [1]})).unwrap();
        assert!(std::str::from_utf8(&yaml).unwrap().contains("kind: X"));
    }

    async fn body_of(resp: Response<Body>) -> (u16, String, Value) {
        use http_body_util::BodyExt;
        let code = resp.status().as_u16();
        let ct = resp.headers()[header::CONTENT_TYPE].to_str().unwrap().to_string();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if ct == YAML {
            serde_yaml_ng::from_slice(&bytes).unwrap()
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (code, ct, v)
    }

    #[tokio::test]
    async fn write_responses() {
        let obj = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let (code, ct, v) = body_of(respond_negotiated(&Negotiated::JSON, 201, &obj).unwrap()).await;
        assert_eq!((code, ct.as_str(), &v), (201, JSON, &obj));
        let yaml = negotiate(Some("application/yaml"), Endpoint::WRITE).unwrap();
        let (_, ct, v) = body_of(respond_negotiated(&yaml, 200, &obj).unwrap()).await;
        assert_eq!((ct.as_str(), &v), (YAML, &obj));
        let pom =
            negotiate(Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"), Endpoint::WRITE).unwrap();
        let (_, _, v) = body_of(respond_negotiated(&pom, 200, &obj).unwrap()).await;
        assert_eq!(
            v,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a"}})
        );
        // Status objects pass through any conversion.
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}});
        let (_, _, v) = body_of(respond_negotiated(&pom, 200, &status).unwrap()).await;
        assert_eq!(v, status);
        // Lists (deletecollection) convert to PartialObjectMetadataList only.
        let list =
            json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "3"}, "items": [obj]});
        assert_eq!(respond_negotiated(&pom, 200, &list).unwrap_err().code, 406);
        let poml =
            Negotiated { encoding: Encoding::Json, conversion: Conversion::PartialObjectMetadataList(MetaVersion::V1) };
        let (_, _, v) = body_of(respond_negotiated(&poml, 200, &list).unwrap()).await;
        assert_eq!(
            (v["kind"].as_str(), v["items"][0]["metadata"]["name"].as_str()),
            (Some("PartialObjectMetadataList"), Some("a"))
        );
        assert_eq!(respond_negotiated(&poml, 200, &obj).unwrap_err().code, 406);
    }
}
