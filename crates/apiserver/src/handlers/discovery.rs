//! Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<group>[/<version>]`) and
//! `/version`, built from the catalog.
//!
//! `/api` and `/apis` come in two forms, chosen by the `Accept` header as upstream's
//! `discovery/aggregated` wrapper does:
//! - legacy: `APIVersions` / `APIGroupList`, after which clients fetch every group version's
//!   `APIResourceList`;
//! - aggregated: one `APIGroupDiscoveryList` (`apidiscovery.k8s.io/v2` or `v2beta1`) with every
//!   resource and subresource, when the client asks for
//!   `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`. These documents
//!   never change while the server runs, so each is built once and served with an `ETag`
//!   (a matching `If-None-Match` gets a 304).

use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use rudder_api::catalog::{self, Resource, Subresource};
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

/// The Kubernetes version Rudder serves.
pub const KUBE_VERSION: (&str, &str, &str) = ("1", "32", "4");

/// `/version`. `gitVersion` is semver, so `kubectl version` accepts it.
pub fn version() -> Value {
    let (major, minor, patch) = KUBE_VERSION;
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{major}.{minor}.{patch}+rudder.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": option_env!("RUDDER_GIT_COMMIT").unwrap_or(""),
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

fn server_addresses(advertise: &str) -> Value {
    json!([{"clientCIDR": "0.0.0.0/0", "serverAddress": advertise}])
}

/// `/api`.
pub fn legacy_root(advertise: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": server_addresses(advertise)})
}

fn group_json(g: &catalog::GroupInfo, advertise: &str) -> Value {
    let versions: Vec<Value> =
        g.versions.iter().map(|v| json!({"groupVersion": format!("{}/{}", g.name, v), "version": v})).collect();
    json!({
        "name": g.name,
        "versions": versions,
        "preferredVersion": {"groupVersion": format!("{}/{}", g.name, g.preferred), "version": g.preferred},
        "serverAddressByClientCIDRs": server_addresses(advertise),
    })
}

/// `/apis`.
pub fn groups_root(advertise: &str) -> Value {
    let groups: Vec<Value> = catalog::groups().iter().map(|g| group_json(g, advertise)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(name: &str, advertise: &str) -> ApiResult<Value> {
    let g = catalog::groups().into_iter().find(|g| g.name == name).ok_or_else(ApiError::no_route)?;
    let mut v = group_json(&g, advertise);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Ok(v)
}

/// Splits `group/version` (or a bare core `version`) into its parts.
fn split_group_version(gv: &str) -> (&str, &str) {
    gv.split_once('/').unwrap_or(("", gv))
}

/// The storage version hash upstream reports for a resource: the first 8 bytes of the SHA-256
/// of `group/version/kind` of its storage version, base64. Clients only compare it for
/// equality (e.g. to notice a storage migration).
pub fn storage_version_hash(r: &Resource) -> String {
    let (group, version) = split_group_version(r.storage_version);
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{group}/{version}/{}", r.kind).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

/// Whether a resource is backed by stored objects. Upstream reports a storage version hash
/// only for those (not for `bindings` or `componentstatuses`, whose storage is custom).
fn is_stored(r: &Resource) -> bool {
    r.has_verb("create") && r.has_verb("get")
}

/// Whether a subresource's object has a group/version other than its parent's, in which case
/// discovery names it (`deployments/scale` is `autoscaling/v1` `Scale`).
fn foreign_group_version(r: &Resource, s: &Subresource) -> bool {
    s.group != r.group || s.version != r.version
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn group_version(group: &str, version: &str) -> ApiResult<Value> {
    let resources: Vec<&Resource> = catalog::in_group_version(group, version).collect();
    if resources.is_empty() {
        return Err(ApiError::no_route());
    }
    let mut list = Vec::new();
    for r in resources {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        if is_stored(r) {
            entry["storageVersionHash"] = json!(storage_version_hash(r));
        }
        list.push(entry);
        for s in r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if foreign_group_version(r, s) {
                sub["group"] = json!(s.group);
                sub["version"] = json!(s.version);
            }
            list.push(sub);
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Ok(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}))
}

// ---------------------------------------------------------------------------------------
// Content negotiation
// ---------------------------------------------------------------------------------------

/// One media range of an `Accept` header.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaRange {
    /// `type/subtype`, lowercase (`application/json`, `*/*`).
    pub essence: String,
    /// Parameters other than `q`, names lowercase, in header order.
    pub params: Vec<(String, String)>,
    /// The quality, 0 to 1.
    pub q: f32,
}

impl MediaRange {
    /// The value of a parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether the range covers `type/subtype` (wildcards included).
    pub fn matches(&self, essence: &str) -> bool {
        let (want_type, _) = essence.split_once('/').unwrap_or((essence, ""));
        self.essence == "*/*" || self.essence == essence || self.essence == format!("{want_type}/*")
    }
}

/// The media ranges of an `Accept` header, best first (by `q`, then header order); ranges
/// with `q=0` are dropped. A missing or empty header accepts anything.
pub fn media_ranges(headers: &HeaderMap) -> Vec<MediaRange> {
    let mut ranges = Vec::new();
    for value in headers.get_all(header::ACCEPT) {
        let Ok(text) = value.to_str() else { continue };
        for clause in text.split(',') {
            let mut parts = clause.split(';');
            let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if essence.is_empty() {
                continue;
            }
            let mut q = 1.0f32;
            let mut params = Vec::new();
            for p in parts {
                let Some((k, v)) = p.split_once('=') else { continue };
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().trim_matches('"').to_string();
                if k == "q" {
                    q = v.parse::<f32>().unwrap_or(1.0).clamp(0.0, 1.0);
                } else {
                    params.push((k, v));
                }
            }
            if q > 0.0 {
                ranges.push(MediaRange { essence, params, q });
            }
        }
    }
    if ranges.is_empty() {
        ranges.push(MediaRange { essence: "*/*".into(), params: Vec::new(), q: 1.0 });
    }
    // A stable sort keeps header order among equal qualities.
    ranges.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
    ranges
}

/// The form a root discovery document is served in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryFormat {
    /// `APIVersions` / `APIGroupList`.
    Legacy,
    /// `APIGroupDiscoveryList` in this version of `apidiscovery.k8s.io` (`v2` or `v2beta1`).
    Aggregated(&'static str),
}

/// Picks the form of `/api` and `/apis` from the `Accept` header: the first acceptable range
/// wins. JSON ranges that ask for a conversion other than aggregated discovery (a `Table`, say),
/// and protobuf, are skipped; when nothing fits, the legacy JSON document is served.
pub fn negotiate_discovery(headers: &HeaderMap) -> DiscoveryFormat {
    for range in media_ranges(headers) {
        if !range.matches("application/json") {
            continue;
        }
        match (range.param("as"), range.param("g"), range.param("v")) {
            (None, _, _) => return DiscoveryFormat::Legacy,
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2")) => {
                return DiscoveryFormat::Aggregated("v2");
            }
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2beta1")) => {
                return DiscoveryFormat::Aggregated("v2beta1");
            }
            _ => continue,
        }
    }
    DiscoveryFormat::Legacy
}

// ---------------------------------------------------------------------------------------
// Aggregated discovery
// ---------------------------------------------------------------------------------------

/// A `GroupVersionKind` as aggregated discovery writes it. As upstream, a kind in the
/// resource's own group version carries empty `group` and `version`; only subresources of
/// another group version (`scale`, `eviction`, `token`) name theirs.
fn response_kind(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn aggregated_resource(r: &Resource) -> Value {
    let mut entry = Map::new();
    entry.insert("resource".into(), json!(r.plural));
    entry.insert("responseKind".into(), response_kind("", "", r.kind));
    entry.insert("scope".into(), json!(if r.namespaced { "Namespaced" } else { "Cluster" }));
    entry.insert("singularResource".into(), json!(r.singular));
    entry.insert("verbs".into(), json!(r.verbs));
    if !r.short_names.is_empty() {
        entry.insert("shortNames".into(), json!(r.short_names));
    }
    if !r.categories.is_empty() {
        entry.insert("categories".into(), json!(r.categories));
    }
    if !r.subresources.is_empty() {
        let subs: Vec<Value> = r
            .subresources
            .iter()
            .map(|s| {
                let kind = if foreign_group_version(r, s) {
                    response_kind(s.group, s.version, s.kind)
                } else {
                    response_kind("", "", s.kind)
                };
                json!({"subresource": s.name, "responseKind": kind, "verbs": s.verbs})
            })
            .collect();
        entry.insert("subresources".into(), Value::Array(subs));
    }
    Value::Object(entry)
}

/// One `APIGroupDiscovery`: the group's versions, preferred first, each with its resources.
fn aggregated_group(name: &str, versions: &[&str]) -> Value {
    let mut metadata = Map::new();
    if !name.is_empty() {
        metadata.insert("name".into(), json!(name));
    }
    metadata.insert("creationTimestamp".into(), Value::Null);
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = catalog::in_group_version(name, v).map(aggregated_resource).collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": metadata, "versions": versions})
}

/// The `APIGroupDiscoveryList` of `/api` (core only) or `/apis` (every other group, in
/// upstream's order) in the given `apidiscovery.k8s.io` version.
pub fn aggregated(core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("", &["v1"])]
    } else {
        catalog::groups().iter().map(|g| aggregated_group(g.name, &g.versions)).collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// An encoded document and its entity tag (uppercase hex SHA-512 of the bytes, as upstream).
pub struct Cached {
    /// The JSON body.
    pub body: Bytes,
    /// The tag, unquoted.
    pub etag: String,
}

impl Cached {
    /// Encodes `value` and tags it.
    pub fn new(value: &Value) -> Cached {
        Cached::from_bytes(Bytes::from(serde_json::to_vec(value).expect("JSON values always encode")))
    }

    /// Tags already encoded bytes.
    pub fn from_bytes(body: Bytes) -> Cached {
        let etag = sha512_hex(&body);
        Cached { body, etag }
    }

    /// Whether the request's `If-None-Match` names this document.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t.trim_matches('"') == self.etag)
        })
    }
}

/// Uppercase hex SHA-512, upstream's document hash.
pub fn sha512_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA512, data);
    let mut out = String::with_capacity(128);
    for b in digest.as_ref() {
        out.push_str(&format!("{b:02X}"));
    }
    out
}

fn aggregated_cached(core: bool, version: &'static str) -> &'static Cached {
    static CACHE: [OnceLock<Cached>; 4] = [OnceLock::new(), OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = usize::from(core) * 2 + usize::from(version == "v2beta1");
    CACHE[slot].get_or_init(|| Cached::new(&aggregated(core, version)))
}

/// Answers `/api` (`core`) or `/apis` in the form the `Accept` header asks for.
pub fn root(core: bool, headers: &HeaderMap, advertise: &str) -> Response<Body> {
    match negotiate_discovery(headers) {
        DiscoveryFormat::Legacy => {
            let doc = if core { legacy_root(advertise) } else { groups_root(advertise) };
            crate::server::json_response(200, &doc)
        }
        DiscoveryFormat::Aggregated(version) => {
            let doc = aggregated_cached(core, version);
            let content_type = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
            let not_modified = doc.matches(headers);
            let mut resp = Response::new(if not_modified { Body::empty() } else { Body::from(doc.body.clone()) });
            *resp.status_mut() = if not_modified { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
            let h = resp.headers_mut();
            if !not_modified {
                h.insert(header::CONTENT_TYPE, HeaderValue::from_str(&content_type).expect("a valid header value"));
            }
            h.insert(header::ETAG, HeaderValue::from_str(&format!("\"{}\"", doc.etag)).expect("hex is a valid header"));
            h.insert(header::VARY, HeaderValue::from_static("Accept"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public"));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        h
    }

    const CLIENT_GO: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn negotiation_follows_the_accept_header() {
        assert_eq!(negotiate_discovery(&HeaderMap::new()), DiscoveryFormat::Legacy);
        assert_eq!(negotiate_discovery(&accept("application/json")), DiscoveryFormat::Legacy);
        assert_eq!(negotiate_discovery(&accept("*/*")), DiscoveryFormat::Legacy);
        assert_eq!(negotiate_discovery(&accept(CLIENT_GO)), DiscoveryFormat::Aggregated("v2"));
        // Parameter order does not matter.
        assert_eq!(
            negotiate_discovery(&accept("application/json;as=APIGroupDiscoveryList;v=v2beta1;g=apidiscovery.k8s.io")),
            DiscoveryFormat::Aggregated("v2beta1")
        );
        // Protobuf is skipped for the JSON form that follows it.
        assert_eq!(
            negotiate_discovery(&accept(
                "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            )),
            DiscoveryFormat::Aggregated("v2")
        );
        // Plain JSON first wins; so does a higher quality.
        assert_eq!(
            negotiate_discovery(&accept(
                "application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            )),
            DiscoveryFormat::Legacy
        );
        assert_eq!(
            negotiate_discovery(&accept(
                "application/json;q=0.5,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            )),
            DiscoveryFormat::Aggregated("v2")
        );
        // Unknown versions and other conversions fall through.
        assert_eq!(
            negotiate_discovery(&accept("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList")),
            DiscoveryFormat::Legacy
        );
        assert_eq!(
            negotiate_discovery(&accept("application/json;as=Table;v=v1;g=meta.k8s.io")),
            DiscoveryFormat::Legacy
        );
    }

    #[test]
    fn storage_version_hashes_match_upstream() {
        // Values a real 1.32 cluster reports.
        let pods = catalog::lookup("", "v1", "pods").unwrap();
        assert_eq!(storage_version_hash(pods), "xPOwRZ+Yhw8=");
        let deployments = catalog::lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(storage_version_hash(deployments), "8aSe+NMegvE=");
    }

    #[test]
    fn legacy_resource_lists() {
        let core = group_version("", "v1").unwrap();
        let resources = core["resources"].as_array().unwrap();
        let find = |name: &str| resources.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("{name}"));
        let pods = find("pods");
        assert_eq!(pods["singularName"], "pod");
        assert_eq!(pods["namespaced"], true);
        assert_eq!(pods["kind"], "Pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["storageVersionHash"], "xPOwRZ+Yhw8=");
        let eviction = find("pods/eviction");
        assert_eq!(
            (&eviction["group"], &eviction["version"], &eviction["kind"]),
            (&json!("policy"), &json!("v1"), &json!("Eviction"))
        );
        assert_eq!(eviction["verbs"], json!(["create"]));
        let log = find("pods/log");
        assert_eq!((&log["kind"], &log["verbs"]), (&json!("Pod"), &json!(["get"])));
        assert!(log.get("group").is_none() && log.get("storageVersionHash").is_none());
        assert_eq!(find("pods/exec")["kind"], "PodExecOptions");
        assert_eq!(find("pods/binding")["kind"], "Binding");
        assert_eq!(find("pods/status")["verbs"], json!(["get", "patch", "update"]));
        let token = find("serviceaccounts/token");
        assert_eq!((&token["group"], &token["kind"]), (&json!("authentication.k8s.io"), &json!("TokenRequest")));
        assert!(find("bindings").get("storageVersionHash").is_none());
        assert!(find("componentstatuses").get("storageVersionHash").is_none());

        let apps = group_version("apps", "v1").unwrap();
        let scale = apps["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments/scale").unwrap();
        assert_eq!(
            (&scale["group"], &scale["version"], &scale["kind"]),
            (&json!("autoscaling"), &json!("v1"), &json!("Scale"))
        );
        assert!(group_version("apps", "v2").is_err());
    }

    #[test]
    fn aggregated_documents() {
        let core = aggregated(true, "v2");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let v1 = &items[0]["versions"][0];
        assert_eq!((&v1["version"], &v1["freshness"]), (&json!("v1"), &json!("Current")));
        let pods = v1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "pods").unwrap();
        assert_eq!(pods["responseKind"], json!({"group": "", "version": "", "kind": "Pod"}));
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["singularResource"], "pod");
        let eviction =
            pods["subresources"].as_array().unwrap().iter().find(|s| s["subresource"] == "eviction").unwrap();
        assert_eq!(eviction["responseKind"], json!({"group": "policy", "version": "v1", "kind": "Eviction"}));
        let nodes = v1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "nodes").unwrap();
        assert_eq!(nodes["scope"], "Cluster");

        let groups = aggregated(false, "v2beta1");
        assert_eq!(groups["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let items = groups["items"].as_array().unwrap();
        let names: Vec<&str> = items.iter().map(|g| g["metadata"]["name"].as_str().unwrap()).collect();
        let expected: Vec<&str> = catalog::groups().iter().map(|g| g.name).collect();
        assert_eq!(names, expected);
        let autoscaling = items.iter().find(|g| g["metadata"]["name"] == "autoscaling").unwrap();
        let versions: Vec<&str> =
            autoscaling["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
        assert_eq!(versions, ["v2", "v1"]);
        let apps = items.iter().find(|g| g["metadata"]["name"] == "apps").unwrap();
        let deployments = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        let scale =
            deployments["subresources"].as_array().unwrap().iter().find(|s| s["subresource"] == "scale").unwrap();
        assert_eq!(scale["responseKind"], json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}));
        assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
        assert_eq!(deployments["shortNames"], json!(["deploy"]));
    }

    #[test]
    fn aggregated_root_is_tagged_and_revalidated() {
        let resp = root(false, &accept(CLIENT_GO), "127.0.0.1:6443");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        let etag = resp.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && etag.len() == 130, "{etag}");
        let mut again = accept(CLIENT_GO);
        again.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        assert_eq!(root(false, &again, "127.0.0.1:6443").status(), StatusCode::NOT_MODIFIED);
        again.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(root(false, &again, "127.0.0.1:6443").status(), StatusCode::OK);
        let legacy = root(true, &accept("application/json"), "127.0.0.1:6443");
        assert_eq!(legacy.headers()[header::CONTENT_TYPE], "application/json");
        assert!(legacy.headers().get(header::ETAG).is_none());
    }
}
