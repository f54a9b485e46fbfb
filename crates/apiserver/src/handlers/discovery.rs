//! Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<group>[/<version>]`) and
//! `/version`, built from the catalog.

use crate::status::{ApiError, ApiResult};
use base64::Engine;
use rudder_api::catalog::{self, Resource};
use serde_json::{Value, json};

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

/// An opaque hash of the storage version of a resource, as discovery reports it.
pub fn storage_version_hash(r: &Resource) -> String {
    // FNV-1a over "group/version/kind" of the storage version; 8 bytes, base64.
    let text = format!("{}/{}", r.storage_version, r.kind);
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    base64::engine::general_purpose::STANDARD.encode(h.to_be_bytes())
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
            "storageVersionHash": storage_version_hash(r),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
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
            if s.group != r.group || s.version != r.version {
                sub["group"] = json!(s.group);
                sub["version"] = json!(s.version);
            }
            list.push(sub);
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Ok(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}))
}
