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
    if obj.get("metadata").and_then(Value::as_object).is_some_and(server_set) {
        let mut obj = obj.clone();
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("selfLink");
        }
        return Bytes::from(serde_json::to_vec(&obj).expect("JSON values always encode"));
    }
    Bytes::from(serde_json::to_vec(obj).expect("JSON values always encode"))
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
