//! The write pipeline shared by every resource, as upstream's generic registry with its
//! per-kind strategies: type check → server-owned metadata → status/spec split → kind hooks →
//! typed decode with defaults → validation with field paths.
//!
//! Everything here is synchronous and pure over JSON values; the handlers do the I/O.

use crate::object::{meta_mut, meta_str, now};
use crate::status::{ApiError, ApiResult};
use rudder_api::FieldErrors;
use rudder_api::catalog::Resource;
use rudder_api::kinds::Mode;
use rudder_api::validation;
use serde_json::{Map, Value, json};

/// Resources whose objects carry `metadata.generation`, bumped on spec changes.
fn tracks_generation(res: &Resource) -> bool {
    matches!(
        res.plural,
        "deployments"
            | "replicasets"
            | "statefulsets"
            | "daemonsets"
            | "jobs"
            | "cronjobs"
            | "replicationcontrollers"
            | "horizontalpodautoscalers"
            | "poddisruptionbudgets"
            | "ingresses"
            | "networkpolicies"
            | "mutatingwebhookconfigurations"
            | "validatingwebhookconfigurations"
            | "validatingadmissionpolicies"
            | "validatingadmissionpolicybindings"
    )
}

fn has_status(res: &Resource) -> bool {
    res.subresource("status").is_some()
}

/// Checks the body's `apiVersion` and `kind` against what the URL serves, filling them in when
/// the body leaves them out (as the Python client does).
pub fn check_type(kind: &str, api_version: &str, obj: &mut Value) -> ApiResult<()> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {kind}): expected a JSON object"
        )));
    };
    let body_kind = map.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
    let body_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string();
    if (!body_kind.is_empty() && body_kind != kind) || (!body_version.is_empty() && body_version != api_version) {
        let shown_version = if body_version.is_empty() { api_version } else { &body_version };
        let shown_kind = if body_kind.is_empty() { kind } else { &body_kind };
        return Err(ApiError::bad_request(format!(
            "{shown_kind} in version {:?} cannot be handled as a {kind}: the object's apiVersion/kind {shown_version}/{shown_kind} does not match the request's {api_version}/{kind}",
            shown_version.rsplit('/').next().unwrap_or(shown_version)
        )));
    }
    map.insert("kind".into(), Value::String(kind.to_string()));
    map.insert("apiVersion".into(), Value::String(api_version.to_string()));
    Ok(())
}

fn invalid(res: &Resource, kind: &str, name: &str, errors: &FieldErrors) -> ApiError {
    ApiError::invalid(res.group, kind, name, errors)
}

fn typed(res: &Resource, kind: &str, obj: Value, old: Option<&Value>) -> ApiResult<(Value, FieldErrors)> {
    let prepared = (res.ops.prepare)(obj, old, Mode::Full).map_err(|e| {
        ApiError::bad_request(format!("{kind} in version {:?} cannot be handled as a {kind}: {e}", res.version))
    })?;
    Ok((prepared.object, prepared.errors))
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random (version 4) UUID from the thread's generator, without a system call per object.
pub fn new_uid() -> String {
    use rand::Rng;
    uuid::Builder::from_random_bytes(rand::rng().random()).into_uuid().to_string()
}

/// Upstream's name generator: the prefix plus five random characters.
pub fn generate_name(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let base: String = if prefix.len() > 58 { prefix[..58].to_string() } else { prefix.to_string() };
    let suffix: String = (0..5).map(|_| NAME_CHARS[rng.random_range(0..NAME_CHARS.len())] as char).collect();
    format!("{base}{suffix}")
}

/// Sets the namespace from the URL, refusing a body that names another one.
pub fn set_namespace(res: &Resource, url_namespace: Option<&str>, obj: &mut Value) -> ApiResult<()> {
    let meta = meta_mut(obj);
    if res.namespaced {
        let ns = url_namespace.unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body) if !body.is_empty() && body != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), Value::String(ns.to_string()));
            }
        }
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

fn pod_qos_class(pod: &Value) -> &'static str {
    let mut containers: Vec<&Value> = Vec::new();
    for field in ["containers", "initContainers"] {
        if let Some(list) = pod.pointer(&format!("/spec/{field}")).and_then(Value::as_array) {
            containers.extend(list.iter());
        }
    }
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let interesting = |m: Option<&Map<String, Value>>| {
            m.map(|m| m.keys().filter(|k| *k == "cpu" || *k == "memory").count()).unwrap_or(0)
        };
        if interesting(requests) > 0 || interesting(limits) > 0 {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(r));
            let request = requests.and_then(|q| q.get(r)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Kind-specific touches upstream's strategies and admission make on every write.
fn kind_hooks(res: &Resource, obj: &mut Value, creating: bool) {
    match (res.group, res.plural) {
        ("", "namespaces") => {
            let name = meta_str(obj, "name").to_string();
            let meta = meta_mut(obj);
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), Value::String(name));
            }
            if creating {
                if obj.pointer("/spec/finalizers").is_none() {
                    obj["spec"] = json!({"finalizers": ["kubernetes"]});
                }
                obj["status"] = json!({"phase": "Active"});
            }
        }
        ("", "pods") if creating => {
            let qos = pod_qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        ("", "persistentvolumes") | ("", "persistentvolumeclaims") if creating => {
            obj["status"] = json!({"phase": "Pending"});
        }
        _ => {}
    }
}

/// Prepares a new object for storage: server-owned metadata, defaults and validation.
/// `obj` has passed [`check_type`]; the result is in the served version.
pub fn prepare_create(res: &Resource, kind: &str, url_namespace: Option<&str>, mut obj: Value) -> ApiResult<Value> {
    set_namespace(res, url_namespace, &mut obj)?;
    {
        let meta = meta_mut(&mut obj);
        if meta.get("resourceVersion").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
        }
        let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
        let generate = meta.get("generateName").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() && !generate.is_empty() {
            let generated = generate_name(generate);
            meta.insert("name".into(), Value::String(generated));
        }
        meta.insert("uid".into(), Value::String(new_uid()));
        meta.insert("creationTimestamp".into(), Value::String(now()));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("selfLink");
        if tracks_generation(res) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    if has_status(res)
        && res.plural != "nodes"
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    kind_hooks(res, &mut obj, true);
    let name = meta_str(&obj, "name").to_string();
    let (obj, mut errors) = typed(res, kind, obj, None)?;
    // Upstream validates core/v1 Event metadata with the event's own rules only.
    let mut all = if res.group.is_empty() && res.plural == "events" {
        Vec::new()
    } else {
        validation::validate_object_meta(&obj["metadata"], res.namespaced, res.name_rule)
    };
    all.append(&mut errors);
    if !all.is_empty() {
        return Err(invalid(res, kind, &name, &all));
    }
    Ok(obj)
}

fn without_meta_and_status(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// An update ready to store.
#[derive(Debug)]
pub struct PreparedUpdate {
    /// The object to store (served version).
    pub object: Value,
    /// Whether it equals the current object.
    pub unchanged: bool,
    /// Whether it differs from the current object in its `status` only (and in metadata
    /// fields storage does not keep).
    pub status_only: bool,
}

/// Prepares an update: `old` is the current object (served version, with its
/// `resourceVersion`), `new` what the client sent (type-checked, namespace set). Returns the
/// object to store.
pub fn prepare_update(
    res: &Resource,
    kind: &str,
    subresource: Option<&str>,
    old: Value,
    mut new: Value,
) -> ApiResult<PreparedUpdate> {
    let name = meta_str(&old, "name").to_string();
    let body_uid = meta_str(&new, "uid");
    let old_uid = meta_str(&old, "uid");
    if !body_uid.is_empty() && body_uid != old_uid {
        return Err(ApiError::conflict(
            crate::object::gr(res),
            &name,
            &format!("Precondition failed: UID in precondition: {body_uid}, UID in object meta: {old_uid}"),
        ));
    }
    if subresource == Some("status")
        && let Some(prepare_status) = res.ops.prepare_status
    {
        return prepare_status_update(res, kind, &name, prepare_status, old, new);
    }
    let old = &old;
    let mut obj = match subresource {
        Some("status") => {
            // A status write changes the status only.
            let mut o = old.clone();
            o["status"] = new.as_object_mut().and_then(|m| m.remove("status")).unwrap_or(Value::Null);
            if o["status"].is_null() {
                o.as_object_mut().expect("objects are maps").remove("status");
            }
            o
        }
        Some("approval") => {
            // An approval write changes the conditions only (Approved, Denied), as upstream.
            let mut o = old.clone();
            if !o.get("status").is_some_and(Value::is_object) {
                o["status"] = json!({});
            }
            o["status"]["conditions"] = new.pointer("/status/conditions").cloned().unwrap_or_else(|| json!([]));
            o
        }
        Some("finalize") => {
            let mut o = old.clone();
            let fins = new.pointer("/spec/finalizers").cloned().unwrap_or_else(|| json!([]));
            if !o.get("spec").is_some_and(Value::is_object) {
                o["spec"] = json!({});
            }
            o["spec"]["finalizers"] = fins;
            o
        }
        _ => {
            let mut o = new;
            if has_status(res) {
                match old.get("status") {
                    Some(s) => o["status"] = s.clone(),
                    None => {
                        if let Some(m) = o.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            o
        }
    };
    {
        let no_meta = Map::new();
        let old_meta = old.get("metadata").and_then(Value::as_object).unwrap_or(&no_meta);
        let meta = meta_mut(&mut obj);
        for field in ["uid", "creationTimestamp", "generation"] {
            match old_meta.get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        // As upstream's BeforeUpdate: a deletionTimestamp on both sides keeps the old value and
        // a missing deletionGracePeriodSeconds keeps the old one; adding, removing or changing
        // either is left for validation to refuse.
        let present = |m: &Map<String, Value>, f: &str| m.get(f).is_some_and(|v| !v.is_null());
        if present(old_meta, "deletionTimestamp") && present(meta, "deletionTimestamp") {
            meta.insert("deletionTimestamp".into(), old_meta["deletionTimestamp"].clone());
        }
        if present(old_meta, "deletionGracePeriodSeconds") && !present(meta, "deletionGracePeriodSeconds") {
            meta.insert("deletionGracePeriodSeconds".into(), old_meta["deletionGracePeriodSeconds"].clone());
        }
        meta.insert("resourceVersion".into(), old_meta.get("resourceVersion").cloned().unwrap_or(Value::Null));
        meta.remove("selfLink");
    }
    kind_hooks(res, &mut obj, false);
    let (mut obj, mut errors) = typed(res, kind, obj, Some(old))?;
    let mut all = validation::validate_object_meta_update(&obj["metadata"], &old["metadata"]);
    all.append(&mut errors);
    if !all.is_empty() {
        return Err(invalid(res, kind, &name, &all));
    }
    if tracks_generation(res) && without_meta_and_status(&obj) != without_meta_and_status(old) {
        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        meta_mut(&mut obj).insert("generation".into(), json!(generation));
    }
    let unchanged = obj == *old;
    Ok(PreparedUpdate { object: obj, unchanged, status_only: false })
}

/// A `status` write of a kind whose status strategy keeps the stored object apart from its
/// status ([`rudder_api::ApiKind::PREPARE_STATUS`]): the stored metadata and spec stay as they
/// are, already defaulted and valid, so neither is decoded, defaulted or validated again; the
/// new status is normalized and the metadata checked as [`prepare_update`] does.
fn prepare_status_update(
    res: &Resource,
    kind: &str,
    name: &str,
    prepare_status: rudder_api::kinds::PrepareStatus,
    mut obj: Value,
    mut new: Value,
) -> ApiResult<PreparedUpdate> {
    let status = new.as_object_mut().and_then(|m| m.remove("status")).unwrap_or(Value::Null);
    let status = prepare_status(status).map_err(|e| {
        ApiError::bad_request(format!("{kind} in version {:?} cannot be handled as a {kind}: {e}", res.version))
    })?;
    // Everything but the status is the stored object's: the metadata update checks compare it
    // with itself, and only see whether it is still valid.
    let meta = meta_mut(&mut obj);
    let mut unchanged = meta.remove("selfLink").is_none();
    let errors = validation::validate_object_meta_update(&obj["metadata"], &obj["metadata"]);
    if !errors.is_empty() {
        return Err(invalid(res, kind, name, &errors));
    }
    let map = obj.as_object_mut().expect("objects are maps");
    unchanged &= map.get("status") == status.as_ref();
    match status {
        Some(status) => map.insert("status".into(), status),
        None => map.remove("status"),
    };
    Ok(PreparedUpdate { object: obj, unchanged, status_only: true })
}

/// Whether an object being deleted has nothing left holding it.
pub fn ready_to_remove(obj: &Value) -> bool {
    let deleting = obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
    let no_finalizers = obj.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(|a| a.is_empty());
    let ns_finalizers_done = obj.get("kind").and_then(Value::as_str) != Some("Namespace")
        || obj.pointer("/spec/finalizers").and_then(Value::as_array).is_none_or(|a| a.is_empty());
    deleting && no_finalizers && ns_finalizers_done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        assert_eq!(pod_qos_class(&json!({"spec": {"containers": [{"name": "a"}]}})), "BestEffort");
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(pod_qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(pod_qos_class(&b), "Burstable");
    }

    #[test]
    fn generated_names_keep_the_prefix() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9);
    }

    #[test]
    fn type_check_defaults_and_refuses() {
        let mut o = json!({"metadata": {"name": "a"}});
        check_type("ConfigMap", "v1", &mut o).unwrap();
        assert_eq!(o["kind"], "ConfigMap");
        let mut o = json!({"kind": "Deployment", "apiVersion": "apps/v1"});
        let e = check_type("ConfigMap", "v1", &mut o).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("cannot be handled as a ConfigMap"), "{}", e.message);
    }
}
