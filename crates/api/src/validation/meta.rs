//! Checks of `metadata` that apply to every kind, on create and on update, with the field
//! paths and messages upstream reports (`metadata.name`, `metadata.labels`, ...).
//!
//! The input is the JSON `metadata` object, so these run the same way for every kind.
//! Key items: [`validate_object_meta`] (create), [`validate_object_meta_update`] (update),
//! and [`validate_labels`] / [`validate_annotations`] for label and annotation maps found
//! elsewhere (pod templates, for instance).

use super::names::{is_dns1123_label, is_qualified_name, is_valid_label_value, validate_generate_name, validate_name};
use super::{FieldError, FieldErrors, FieldPath};
use crate::catalog::NameRule;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Upper bound on the summed length of all annotation keys and values, in bytes.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Finalizer names that need no domain prefix.
pub const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// Longest `managedFields[].manager`.
const FIELD_MANAGER_MAX_LENGTH: usize = 128;
/// Longest `managedFields[].subresource`.
const SUBRESOURCE_NAME_MAX_LENGTH: usize = 256;

fn metadata_path() -> FieldPath {
    FieldPath::root("metadata")
}

/// The string at `key`, or `""` when absent or not a string.
fn text<'a>(meta: &'a Value, key: &str) -> &'a str {
    meta.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The value at `key` unless absent or null.
fn present<'a>(meta: &'a Value, key: &str) -> Option<&'a Value> {
    meta.get(key).filter(|v| !v.is_null())
}

/// A JSON object of strings as a map; values of any other type are kept in JSON text.
fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    if let Some(Value::Object(obj)) = value {
        for (k, v) in obj {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            map.insert(k.clone(), v);
        }
    }
    map
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect()
        }
        _ => Vec::new(),
    }
}

/// Label keys must be qualified names and values valid label values. Every error is
/// reported at `path` itself (upstream does not name the key in the path).
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &FieldPath) -> FieldErrors {
    let mut errors = Vec::new();
    for (key, value) in labels {
        for msg in is_qualified_name(key) {
            errors.push(FieldError::invalid(path, key.as_str(), &msg));
        }
        for msg in is_valid_label_value(value) {
            errors.push(FieldError::invalid(path, value.as_str(), &msg));
        }
    }
    errors
}

/// Annotation keys must be qualified names (compared in lower case), and keys plus values
/// may not exceed [`TOTAL_ANNOTATION_SIZE_LIMIT`] bytes in total.
pub fn validate_annotations(annotations: &BTreeMap<String, String>, path: &FieldPath) -> FieldErrors {
    let mut errors = Vec::new();
    let mut total = 0usize;
    for (key, value) in annotations {
        for msg in is_qualified_name(&key.to_lowercase()) {
            errors.push(FieldError::invalid(path, key.as_str(), &msg));
        }
        total += key.len() + value.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errors.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errors
}

/// Splits an `apiVersion` the way upstream does for owner references: `v1` → core group,
/// `group/version`, and `None` when there is more than one slash.
fn split_api_version(api_version: &str) -> Option<(&str, &str)> {
    if api_version.is_empty() || api_version == "/" {
        return Some(("", ""));
    }
    match api_version.matches('/').count() {
        0 => Some(("", api_version)),
        1 => api_version.split_once('/'),
        _ => None,
    }
}

/// Every owner reference needs apiVersion (with a version), kind, name and uid; core v1
/// Events may not own anything; at most one reference may be the controller.
fn validate_owner_references(refs: Option<&Value>, path: &FieldPath) -> FieldErrors {
    let mut errors = Vec::new();
    let Some(Value::Array(list)) = refs else { return errors };
    let mut first_controller: Option<String> = None;
    for reference in list {
        let api_version = text(reference, "apiVersion");
        let kind = text(reference, "kind");
        let name = text(reference, "name");
        let uid = text(reference, "uid");
        let (group, version) = split_api_version(api_version).unwrap_or(("", ""));
        if version.is_empty() {
            errors.push(FieldError::invalid(&path.child("apiVersion"), api_version, "version must not be empty"));
        }
        if kind.is_empty() {
            errors.push(FieldError::invalid(&path.child("kind"), kind, "kind must not be empty"));
        }
        if name.is_empty() {
            errors.push(FieldError::invalid(&path.child("name"), name, "name must not be empty"));
        }
        if uid.is_empty() {
            errors.push(FieldError::invalid(&path.child("uid"), uid, "uid must not be empty"));
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            errors.push(FieldError::invalid(
                path,
                reference.clone(),
                &format!("{group}/{version}, Kind={kind} is disallowed from being an owner"),
            ));
        }
        if reference.get("controller").and_then(Value::as_bool) == Some(true) {
            let this = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => errors.push(FieldError::invalid(
                    path,
                    Value::Array(list.clone()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => first_controller = Some(this),
            }
        }
    }
    errors
}

/// Finalizers must be qualified names, and `orphan` and `foregroundDeletion` exclude each
/// other. Errors are reported at `metadata.finalizers` itself, as upstream does.
fn validate_finalizers(finalizers: &[String], path: &FieldPath) -> FieldErrors {
    let mut errors = Vec::new();
    for finalizer in finalizers {
        for msg in is_qualified_name(finalizer) {
            errors.push(FieldError::invalid(path, finalizer.as_str(), &msg));
        }
    }
    let has = |name: &str| finalizers.iter().any(|f| f == name);
    if has("orphan") && has("foregroundDeletion") {
        errors.push(FieldError::invalid(
            path,
            finalizers.to_vec(),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errors
}

/// The rule the built-in kinds add on top: a finalizer without a domain prefix must be one
/// of [`STANDARD_FINALIZERS`]. Reported per index.
fn validate_standard_finalizers(finalizers: &[String], path: &FieldPath) -> FieldErrors {
    finalizers
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.contains('/') && !STANDARD_FINALIZERS.contains(&f.as_str()))
        .map(|(i, f)| {
            FieldError::invalid(
                &path.index(i),
                f.as_str(),
                "name is neither a standard finalizer name nor is it fully qualified",
            )
        })
        .collect()
}

/// `managedFields` entries: operation `Apply` or `Update`, fieldsType `FieldsV1` when set,
/// a printable manager of at most 128 bytes and a subresource of at most 256 bytes.
fn validate_managed_fields(entries: Option<&Value>, path: &FieldPath) -> FieldErrors {
    let mut errors = Vec::new();
    let Some(Value::Array(list)) = entries else { return errors };
    for (i, entry) in list.iter().enumerate() {
        let at = path.index(i);
        let operation = text(entry, "operation");
        if operation != "Apply" && operation != "Update" {
            errors.push(FieldError::invalid(&at.child("operation"), operation, "must be `Apply` or `Update`"));
        }
        let fields_type = text(entry, "fieldsType");
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            errors.push(FieldError::invalid(&at.child("fieldsType"), fields_type, "must be `FieldsV1`"));
        }
        let manager = text(entry, "manager");
        if manager.len() > FIELD_MANAGER_MAX_LENGTH {
            errors.push(FieldError::too_long(&at.child("manager"), FIELD_MANAGER_MAX_LENGTH));
        }
        for (pos, c) in manager.char_indices() {
            if c.is_control() {
                errors.push(FieldError::invalid(
                    &at.child("manager"),
                    manager,
                    &format!("invalid character U+{:04X} (at position {pos})", c as u32),
                ));
            }
        }
        if text(entry, "subresource").len() > SUBRESOURCE_NAME_MAX_LENGTH {
            errors.push(FieldError::too_long(&at.child("subresource"), SUBRESOURCE_NAME_MAX_LENGTH));
        }
    }
    errors
}

/// The checks shared by create and update that look only at the new metadata.
fn validate_maps_and_references(meta: &Value, path: &FieldPath) -> FieldErrors {
    let mut errors = validate_labels(&string_map(meta.get("labels")), &path.child("labels"));
    errors.extend(validate_annotations(&string_map(meta.get("annotations")), &path.child("annotations")));
    errors.extend(validate_owner_references(meta.get("ownerReferences"), &path.child("ownerReferences")));
    errors
}

/// Validates `metadata` of an object being created, as upstream's `ValidateObjectMeta`
/// does for the built-in kinds.
///
/// Expects name generation to have run already, so `metadata.name` is required. Checks, in
/// upstream's order: generateName and name under `rule`; namespace required and a DNS-1123
/// label when `namespaced`, forbidden otherwise; generation not negative; labels;
/// annotations; owner references; finalizers; managed fields; and finally the
/// standard-finalizer rule.
pub fn validate_object_meta(meta: &Value, namespaced: bool, rule: NameRule) -> FieldErrors {
    let path = metadata_path();
    let mut errors = Vec::new();

    let generate_name = text(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in validate_generate_name(rule, generate_name) {
            errors.push(FieldError::invalid(&path.child("generateName"), generate_name, &msg));
        }
    }

    let name = text(meta, "name");
    if name.is_empty() {
        errors.push(FieldError::required(&path.child("name"), "name or generateName is required"));
    } else {
        for msg in validate_name(rule, name) {
            errors.push(FieldError::invalid(&path.child("name"), name, &msg));
        }
    }

    let namespace = text(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errors.push(FieldError::required(&path.child("namespace"), ""));
        } else {
            for msg in is_dns1123_label(namespace) {
                errors.push(FieldError::invalid(&path.child("namespace"), namespace, &msg));
            }
        }
    } else if !namespace.is_empty() {
        errors.push(FieldError::forbidden(&path.child("namespace"), "not allowed on this type"));
    }

    if let Some(generation) = meta.get("generation").and_then(Value::as_i64)
        && generation < 0
    {
        errors.push(FieldError::invalid(&path.child("generation"), generation, "must be greater than or equal to 0"));
    }

    errors.extend(validate_maps_and_references(meta, &path));
    let finalizers = string_list(meta.get("finalizers"));
    errors.extend(validate_finalizers(&finalizers, &path.child("finalizers")));
    errors.extend(validate_managed_fields(meta.get("managedFields"), &path.child("managedFields")));
    errors.extend(validate_standard_finalizers(&finalizers, &path.child("finalizers")));
    errors
}

/// Validates `metadata` of an object being updated against the stored one, as upstream's
/// `ValidateObjectMetaUpdate` does once its update preparation has run.
///
/// Reported: new finalizers on an object that is being deleted; a changed name, namespace
/// or uid (an empty new uid is taken to mean "keep the old one"); a deletionTimestamp
/// added or removed; a deletionGracePeriodSeconds added or changed; then the label,
/// annotation, owner reference and managed field checks on the new metadata, and the
/// standard-finalizer rule.
///
/// Left to the caller, which upstream settles before validating: creationTimestamp and
/// generation are carried over from the old object, a deletionTimestamp present on both
/// sides keeps the old value, a missing deletionGracePeriodSeconds keeps the old value,
/// and resourceVersion preconditions are checked by storage.
pub fn validate_object_meta_update(new_meta: &Value, old_meta: &Value) -> FieldErrors {
    let path = metadata_path();
    let mut errors = Vec::new();
    let new_finalizers = string_list(new_meta.get("finalizers"));

    if present(old_meta, "deletionTimestamp").is_some() {
        let old_finalizers: BTreeSet<String> = string_list(old_meta.get("finalizers")).into_iter().collect();
        let added: BTreeSet<&String> = new_finalizers.iter().filter(|f| !old_finalizers.contains(*f)).collect();
        if !added.is_empty() {
            let listed: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            errors.push(FieldError::forbidden(
                &path.child("finalizers"),
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    listed.join(", ")
                ),
            ));
        }
    }

    for key in ["name", "namespace"] {
        let new_value = text(new_meta, key);
        if new_value != text(old_meta, key) {
            errors.push(FieldError::immutable(&path.child(key), new_value));
        }
    }
    let new_uid = text(new_meta, "uid");
    if !new_uid.is_empty() && new_uid != text(old_meta, "uid") {
        errors.push(FieldError::immutable(&path.child("uid"), new_uid));
    }

    let new_deletion = present(new_meta, "deletionTimestamp");
    let old_deletion = present(old_meta, "deletionTimestamp");
    if new_deletion.is_some() != old_deletion.is_some() {
        errors.push(FieldError::immutable(
            &path.child("deletionTimestamp"),
            new_deletion.cloned().unwrap_or(Value::Null),
        ));
    }
    if let Some(new_grace) = present(new_meta, "deletionGracePeriodSeconds")
        && present(old_meta, "deletionGracePeriodSeconds") != Some(new_grace)
    {
        errors.push(FieldError::immutable(&path.child("deletionGracePeriodSeconds"), new_grace.clone()));
    }

    errors.extend(validate_maps_and_references(new_meta, &path));
    errors.extend(validate_managed_fields(new_meta.get("managedFields"), &path.child("managedFields")));
    errors.extend(validate_standard_finalizers(&new_finalizers, &path.child("finalizers")));
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(errors: &FieldErrors) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    const SUBDOMAIN_SHAPE: &str = r"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    #[test]
    fn create_checks() {
        let name_part = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        let label_value = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
        let cases: Vec<(Value, bool, NameRule, Vec<String>)> = vec![
            (json!({"name": "web", "namespace": "default"}), true, NameRule::Subdomain, vec![]),
            (json!({"name": "node-1"}), false, NameRule::Subdomain, vec![]),
            (json!({"name": "system:admin"}), false, NameRule::PathSegment, vec![]),
            (
                json!({"namespace": "default"}),
                true,
                NameRule::Subdomain,
                vec!["metadata.name: Required value: name or generateName is required".into()],
            ),
            (
                json!({"name": "Web", "namespace": "default"}),
                true,
                NameRule::Subdomain,
                vec![format!("metadata.name: Invalid value: \"Web\": {SUBDOMAIN_SHAPE}")],
            ),
            (json!({"name": "web"}), true, NameRule::Subdomain, vec!["metadata.namespace: Required value".into()]),
            (
                json!({"name": "web", "namespace": "team.a"}),
                true,
                NameRule::Subdomain,
                vec!["metadata.namespace: Invalid value: \"team.a\": must not contain dots".into()],
            ),
            (
                json!({"name": "n1", "namespace": "default"}),
                false,
                NameRule::Subdomain,
                vec!["metadata.namespace: Forbidden: not allowed on this type".into()],
            ),
            (
                json!({"name": "a.b"}),
                false,
                NameRule::Label,
                vec!["metadata.name: Invalid value: \"a.b\": must not contain dots".into()],
            ),
            (
                json!({"name": "x-1", "generateName": "Web-", "namespace": "d"}),
                true,
                NameRule::Subdomain,
                vec![format!("metadata.generateName: Invalid value: \"Web-\": {SUBDOMAIN_SHAPE}")],
            ),
            (
                json!({"name": "x", "namespace": "d", "generation": -1}),
                true,
                NameRule::Subdomain,
                vec!["metadata.generation: Invalid value: -1: must be greater than or equal to 0".into()],
            ),
            (
                json!({"name": "x", "namespace": "d", "labels": {"app": "web", "-bad": "ok", "good": "bad value"}}),
                true,
                NameRule::Subdomain,
                vec![
                    format!("metadata.labels: Invalid value: \"-bad\": {name_part}"),
                    format!("metadata.labels: Invalid value: \"bad value\": {label_value}"),
                ],
            ),
            (
                json!({"name": "x", "namespace": "d", "annotations": {"Example.com/Note": "fine", "a/b/c": "x"}}),
                true,
                NameRule::Subdomain,
                vec!["metadata.annotations: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into()],
            ),
            (
                json!({"name": "x", "namespace": "d", "finalizers": ["kubernetes", "example.com/cleanup", "custom"]}),
                true,
                NameRule::Subdomain,
                vec!["metadata.finalizers[2]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified".into()],
            ),
            (
                json!({"name": "x", "finalizers": ["orphan", "foregroundDeletion"]}),
                false,
                NameRule::Subdomain,
                vec!["metadata.finalizers: Invalid value: [\"orphan\",\"foregroundDeletion\"]: finalizer orphan and foregroundDeletion cannot be both set".into()],
            ),
            (
                json!({"name": "x", "finalizers": ["a/b/c"]}),
                false,
                NameRule::Subdomain,
                vec!["metadata.finalizers: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into()],
            ),
            (
                json!({"name": "x", "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1"}, {"manager": "m", "operation": "Replace", "fieldsType": "FieldsV2"}]}),
                false,
                NameRule::Subdomain,
                vec![
                    "metadata.managedFields[1].operation: Invalid value: \"Replace\": must be `Apply` or `Update`".into(),
                    "metadata.managedFields[1].fieldsType: Invalid value: \"FieldsV2\": must be `FieldsV1`".into(),
                ],
            ),
        ];
        for (meta, namespaced, rule, want) in cases {
            assert_eq!(rendered(&validate_object_meta(&meta, namespaced, rule)), want, "metadata {meta}");
        }
    }

    #[test]
    fn annotation_size_limit() {
        let half = "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT / 2);
        let at_limit = json!({"name": "x", "annotations": {"a": half[2..], "b": half}});
        assert!(validate_object_meta(&at_limit, false, NameRule::Subdomain).is_empty());
        let over = json!({"name": "x", "annotations": {"a": half, "b": half}});
        assert_eq!(
            rendered(&validate_object_meta(&over, false, NameRule::Subdomain)),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes".to_string()]
        );
    }

    #[test]
    fn owner_references() {
        let good =
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true});
        let cases: Vec<(Value, Vec<String>)> = vec![
            (json!([good]), vec![]),
            (
                json!([{"apiVersion": "", "kind": "", "name": "", "uid": ""}]),
                vec![
                    "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty".into(),
                    "metadata.ownerReferences.kind: Invalid value: \"\": kind must not be empty".into(),
                    "metadata.ownerReferences.name: Invalid value: \"\": name must not be empty".into(),
                    "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty".into(),
                ],
            ),
            (
                json!([{"apiVersion": "a/b/c", "kind": "K", "name": "n", "uid": "u"}]),
                vec!["metadata.ownerReferences.apiVersion: Invalid value: \"a/b/c\": version must not be empty".into()],
            ),
            (
                json!([{"apiVersion": "apps/", "kind": "K", "name": "n", "uid": "u"}]),
                vec!["metadata.ownerReferences.apiVersion: Invalid value: \"apps/\": version must not be empty".into()],
            ),
            (
                json!([good, {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u2", "controller": true}]),
                vec!["Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/rs and Node/n1".into()],
            ),
        ];
        for (refs, want) in cases {
            let meta = json!({"name": "x", "namespace": "d", "ownerReferences": refs});
            let got = validate_object_meta(&meta, true, NameRule::Subdomain);
            if want.len() == 1 && want[0].starts_with("Only one") {
                assert_eq!(got.len(), 1);
                assert_eq!(got[0].field, "metadata.ownerReferences");
                assert_eq!(got[0].detail, want[0]);
            } else {
                assert_eq!(rendered(&got), want, "refs {refs}");
            }
        }
        let event_owner = json!({"name": "x", "namespace": "d", "ownerReferences": [{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"}]});
        let got = validate_object_meta(&event_owner, true, NameRule::Subdomain);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].detail, "/v1, Kind=Event is disallowed from being an owner");
    }

    #[test]
    fn update_checks() {
        let old = json!({"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "5",
            "creationTimestamp": "2024-01-01T00:00:00Z", "labels": {"app": "web"}});
        let cases: Vec<(Value, Value, Vec<String>)> = vec![
            (old.clone(), old.clone(), vec![]),
            (json!({"name": "web", "namespace": "default", "labels": {"app": "v2"}}), old.clone(), vec![]),
            (
                json!({"name": "web2", "namespace": "default", "uid": "u1"}),
                old.clone(),
                vec!["metadata.name: Invalid value: \"web2\": field is immutable".into()],
            ),
            (
                json!({"name": "web", "namespace": "other", "uid": "u2"}),
                old.clone(),
                vec![
                    "metadata.namespace: Invalid value: \"other\": field is immutable".into(),
                    "metadata.uid: Invalid value: \"u2\": field is immutable".into(),
                ],
            ),
            (
                json!({"name": "web", "namespace": "default", "labels": {"app": "-x"}}),
                old.clone(),
                vec!["metadata.labels: Invalid value: \"-x\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into()],
            ),
            (
                json!({"name": "web", "namespace": "default", "deletionTimestamp": "2024-02-01T00:00:00Z"}),
                old.clone(),
                vec!["metadata.deletionTimestamp: Invalid value: \"2024-02-01T00:00:00Z\": field is immutable".into()],
            ),
            (
                json!({"name": "web", "namespace": "default", "deletionGracePeriodSeconds": 30}),
                old.clone(),
                vec!["metadata.deletionGracePeriodSeconds: Invalid value: 30: field is immutable".into()],
            ),
            (
                json!({"name": "web", "namespace": "default", "finalizers": ["custom"]}),
                old.clone(),
                vec!["metadata.finalizers[0]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified".into()],
            ),
            (
                json!({"name": "web", "namespace": "default", "deletionTimestamp": "2024-02-01T00:00:00Z",
                    "finalizers": ["example.com/a", "example.com/c", "example.com/b"]}),
                json!({"name": "web", "namespace": "default", "deletionTimestamp": "2024-02-01T00:00:00Z",
                    "finalizers": ["example.com/a"]}),
                vec!["metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/b\", \"example.com/c\"}".into()],
            ),
            (
                json!({"name": "web", "namespace": "default"}),
                json!({"name": "web", "namespace": "default", "deletionTimestamp": "2024-02-01T00:00:00Z"}),
                vec!["metadata.deletionTimestamp: Invalid value: null: field is immutable".into()],
            ),
        ];
        for (new, old, want) in cases {
            assert_eq!(rendered(&validate_object_meta_update(&new, &old)), want, "new {new} old {old}");
        }
    }

    #[test]
    fn label_map_helper() {
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), "web".to_string());
        assert!(
            validate_labels(&labels, &FieldPath::root("spec").child("template").child("metadata").child("labels"))
                .is_empty()
        );
        labels.insert("bad key".to_string(), String::new());
        let errors = validate_labels(&labels, &FieldPath::root("spec").child("selector").child("matchLabels"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.selector.matchLabels");
    }
}
