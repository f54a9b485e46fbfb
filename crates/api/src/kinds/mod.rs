//! Per-kind defaulting and validation over the `k8s-openapi` types.
//!
//! Key types: [`ApiKind`] (the hooks a kind may override), [`KindOps`] (the same hooks with the
//! type erased, stored in the catalog) and [`prepare`] (decode → default → validate → encode).
//!
//! Generic metadata checks (names, labels, annotations) live in [`crate::validation`]; the
//! hooks here look at everything else. Kinds with no special rules have an empty impl in
//! `plain.rs`.

mod apps;
mod batch;
mod coordination;
mod core;
mod plain;
mod pod;

use crate::validation::FieldErrors;
use serde_json::Value;

/// Defaulting and validation for one kind, in the order upstream's REST strategies run them:
/// defaults first, then validation of the whole object, then (on update) the rules that
/// compare the new object with the old one.
pub trait ApiKind:
    serde::de::DeserializeOwned + serde::Serialize + k8s_openapi::Resource + Send + Sync + 'static
{
    /// Fills the fields upstream defaults (`SetDefaults_<Kind>`). Runs on every write but the
    /// `status` writes of kinds with [`ApiKind::PREPARE_STATUS`].
    fn set_defaults(&mut self) {}

    /// Returns every problem with the object, each tied to a field path. Metadata names,
    /// labels and annotations are checked elsewhere; this looks at the rest.
    fn validate(&self) -> FieldErrors {
        Vec::new()
    }

    /// Returns problems that only show against the previous object, e.g. immutable fields.
    /// [`ApiKind::validate`] runs as well; this adds to it.
    fn validate_update(&self, _old: &Self) -> FieldErrors {
        Vec::new()
    }

    /// For kinds whose status strategy keeps the stored object apart from its status and
    /// checks neither spec nor status (upstream's pod status strategy): normalizes the status
    /// a `status` write brings. `None` runs the whole of [`prepare`] on such writes instead.
    const PREPARE_STATUS: Option<PrepareStatus> = None;
}

/// Decodes a `status` value (`null` when absent), fills its defaults and encodes it back;
/// `Ok(None)` when there is no status. A decode failure is `Err(message)`, as in [`prepare`].
pub type PrepareStatus = fn(Value) -> Result<Option<Value>, String>;

/// How much of [`prepare`] to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Decode, default, validate (and validate against the old object when one is given).
    Full,
    /// Decode and encode only: keeps the fields the type knows and drops the rest.
    DecodeOnly,
}

/// The result of [`prepare`]: the normalized object and every validation problem found.
#[derive(Debug)]
pub struct Prepared {
    /// The object as the type knows it, with defaults filled.
    pub object: Value,
    /// Problems found; empty when the object is valid.
    pub errors: FieldErrors,
}

/// Decodes `obj` as `T`, fills defaults, validates, and encodes it back to JSON.
///
/// A decode failure is returned as `Err(message)`, to be reported as a 400 `BadRequest`.
pub fn prepare<T: ApiKind>(obj: Value, old: Option<&Value>, mode: Mode) -> Result<Prepared, String> {
    let mut typed: T = serde_json::from_value(obj).map_err(|e| e.to_string())?;
    let mut errors = Vec::new();
    if mode == Mode::Full {
        typed.set_defaults();
        errors = typed.validate();
        if let Some(old) = old {
            let old_typed = <T as serde::Deserialize>::deserialize(old).map_err(|e| e.to_string())?;
            errors.extend(typed.validate_update(&old_typed));
        }
    }
    let mut object = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    drop_empty_collections(&mut object);
    Ok(Prepared { object, errors })
}

/// Removes empty maps and lists that upstream's encoding omits (`omitempty`): metadata's
/// labels, annotations, finalizers and owner references, and a ConfigMap's or Secret's data.
/// Empty structs that carry meaning (`emptyDir: {}`, `securityContext: {}`) are left alone.
fn drop_empty_collections(obj: &mut Value) {
    let is_empty = |v: &Value| match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    };
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["labels", "annotations", "finalizers", "ownerReferences", "managedFields"] {
            if meta.get(field).is_some_and(is_empty) {
                meta.remove(field);
            }
        }
    }
    if let Some(map) = obj.as_object_mut() {
        for field in ["data", "binaryData", "stringData"] {
            if map.get(field).is_some_and(is_empty) {
                map.remove(field);
            }
        }
    }
}

/// The hooks of one kind with its type erased, as stored in the catalog.
#[derive(Clone, Copy)]
pub struct KindOps {
    /// [`prepare`] for the kind's type.
    pub prepare: fn(Value, Option<&Value>, Mode) -> Result<Prepared, String>,
    /// [`ApiKind::PREPARE_STATUS`] of the kind.
    pub prepare_status: Option<PrepareStatus>,
}

impl std::fmt::Debug for KindOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KindOps")
    }
}

/// The operations of `T`, for use in `static` catalog tables.
pub const fn ops<T: ApiKind>() -> KindOps {
    KindOps { prepare: prepare::<T>, prepare_status: T::PREPARE_STATUS }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};

    #[test]
    fn empty_metadata_maps_are_omitted_but_meaningful_empty_structs_stay() {
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {}, "annotations": {}}, "data": {}});
        let p = prepare::<ConfigMap>(cm, None, Mode::Full).unwrap();
        assert_eq!(p.object, serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}));
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "v", "emptyDir": {}}]}});
        let p = prepare::<Pod>(pod, None, Mode::Full).unwrap();
        assert_eq!(p.object["spec"]["volumes"][0]["emptyDir"], serde_json::json!({}));
        assert_eq!(p.object["spec"]["securityContext"], serde_json::json!({}));
    }
}
