//! The schema definitions of the OpenAPI documents.
//!
//! Every `k8s-openapi` type implements `schemars::JsonSchema` under its upstream definition
//! name (`io.k8s.api.apps.v1.Deployment`) with upstream's descriptions. A generator walks the
//! types of every served kind; the definitions it collects are then given what clients rely
//! on and the types do not carry:
//! - `x-kubernetes-group-version-kind` on every kind, list kind and subresource kind
//!   (`DeleteOptions` and `WatchEvent` name every served group version);
//! - the patch and list markers of each field (`x-kubernetes-patch-strategy`,
//!   `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//!   `x-kubernetes-map-type`) from `rudder_api::schema`, and `x-kubernetes-map-type: atomic`
//!   on the structs upstream marks atomic;
//! - `<Kind>List` definitions, which `k8s-openapi` models as one generic type;
//! - upstream's shapes for `IntOrString` and `Quantity`, and, in OpenAPI 3, `allOf` around a
//!   `$ref` that has siblings (a description), since 3.0 ignores a `$ref`'s siblings.

use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration, apps::v1 as apps, authentication::v1 as authentication,
    authorization::v1 as authorization, autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2,
    batch::v1 as batch, certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, networking::v1 as networking, node::v1 as node,
    policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use rudder_api::catalog;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Which OpenAPI version a document is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Swagger 2.0 (`/openapi/v2`): definitions under `#/definitions/`.
    V2,
    /// OpenAPI 3.0 (`/openapi/v3/...`): definitions under `#/components/schemas/`.
    V3,
}

impl Flavor {
    /// The prefix of a `$ref` to a definition.
    pub fn ref_prefix(self) -> &'static str {
        match self {
            Flavor::V2 => "#/definitions/",
            Flavor::V3 => "#/components/schemas/",
        }
    }

    /// A `$ref` schema naming a definition.
    pub fn reference(self, name: &str) -> Value {
        json!({"$ref": format!("{}{name}", self.ref_prefix())})
    }
}

/// Definition names of the meta types operations use.
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// Structs upstream marks `+structType=atomic`: apply replaces them whole.
const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.api.admissionregistration.v1.MatchResources",
    "io.k8s.api.admissionregistration.v1.NamedRuleWithOperations",
    "io.k8s.api.admissionregistration.v1.ParamKind",
    "io.k8s.api.admissionregistration.v1.ParamRef",
    "io.k8s.api.admissionregistration.v1.Variable",
    "io.k8s.api.autoscaling.v1.CrossVersionObjectReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.EndpointAddress",
    "io.k8s.api.core.v1.EndpointPort",
    "io.k8s.api.core.v1.FileKeySelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ScopeSelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.discovery.v1.EndpointPort",
    "io.k8s.api.networking.v1.ServiceBackendPort",
    "io.k8s.api.rbac.v1.RoleRef",
    "io.k8s.api.rbac.v1.Subject",
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
];

/// A top-level kind with a schema: its `apiVersion`, `kind` and definition name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Root {
    api_version: &'static str,
    kind: &'static str,
    name: String,
}

fn root<T: JsonSchema + k8s_openapi::Resource>(generator: &mut SchemaGenerator) -> Root {
    generator.subschema_for::<T>();
    Root { api_version: T::API_VERSION, kind: T::KIND, name: T::schema_name().into_owned() }
}

macro_rules! roots {
    ($($ty:ty),* $(,)?) => {
        /// Adds the schema of every served kind, and of the kinds subresources take and
        /// return, to the generator.
        fn add_roots(generator: &mut SchemaGenerator) -> Vec<Root> {
            vec![$(root::<$ty>(generator)),*]
        }
    };
}

// Every kind in the catalog, plus the kinds of subresources from other group versions.
// `every_served_kind_has_a_schema` keeps this list and the catalog in step.
roots![
    core::Binding,
    core::ComponentStatus,
    core::ConfigMap,
    core::Endpoints,
    core::Event,
    core::LimitRange,
    core::Namespace,
    core::Node,
    core::PersistentVolumeClaim,
    core::PersistentVolume,
    core::Pod,
    core::PodTemplate,
    core::ReplicationController,
    core::ResourceQuota,
    core::Secret,
    core::ServiceAccount,
    core::Service,
    apps::ControllerRevision,
    apps::DaemonSet,
    apps::Deployment,
    apps::ReplicaSet,
    apps::StatefulSet,
    events::Event,
    autoscaling_v2::HorizontalPodAutoscaler,
    autoscaling_v1::HorizontalPodAutoscaler,
    autoscaling_v1::Scale,
    batch::CronJob,
    batch::Job,
    certificates::CertificateSigningRequest,
    networking::IngressClass,
    networking::Ingress,
    networking::NetworkPolicy,
    policy::PodDisruptionBudget,
    policy::Eviction,
    rbac::ClusterRoleBinding,
    rbac::ClusterRole,
    rbac::RoleBinding,
    rbac::Role,
    storage::CSIDriver,
    storage::CSINode,
    storage::CSIStorageCapacity,
    storage::StorageClass,
    storage::VolumeAttachment,
    admissionregistration::MutatingWebhookConfiguration,
    admissionregistration::ValidatingAdmissionPolicy,
    admissionregistration::ValidatingAdmissionPolicyBinding,
    admissionregistration::ValidatingWebhookConfiguration,
    scheduling::PriorityClass,
    coordination::Lease,
    node::RuntimeClass,
    discovery::EndpointSlice,
    authentication::TokenRequest,
    authentication::SelfSubjectReview,
    authentication::TokenReview,
    authorization::LocalSubjectAccessReview,
    authorization::SelfSubjectAccessReview,
    authorization::SelfSubjectRulesReview,
    authorization::SubjectAccessReview,
];

/// Every definition of a document flavour, and the definition name of each kind.
pub struct Definitions {
    /// Definition name → schema.
    pub schemas: BTreeMap<String, Value>,
    /// `(apiVersion, kind)` → definition name, for kinds and list kinds.
    kinds: HashMap<(String, String), String>,
    flavor: Flavor,
}

impl Definitions {
    /// Builds every definition for `flavor`.
    pub fn build(flavor: Flavor) -> Definitions {
        let path = match flavor {
            Flavor::V2 => "/definitions",
            Flavor::V3 => "/components/schemas",
        };
        let mut generator = SchemaSettings::draft07()
            .with(|s| {
                s.definitions_path = path.into();
                s.meta_schema = None;
                s.transforms = Vec::new();
            })
            .into_generator();
        let roots = add_roots(&mut generator);
        generator.subschema_for::<meta::DeleteOptions>();
        generator.subschema_for::<meta::Status>();
        generator.subschema_for::<meta::ListMeta>();
        generator.subschema_for::<meta::Patch>();
        generator.subschema_for::<meta::WatchEvent<meta::Status>>();
        let mut schemas: BTreeMap<String, Value> = generator.take_definitions(false).into_iter().collect();

        let mut kinds = HashMap::new();
        for r in &roots {
            kinds.insert((r.api_version.to_string(), r.kind.to_string()), r.name.clone());
        }
        let mut defs = Definitions { schemas: BTreeMap::new(), kinds, flavor };
        defs.add_lists(&mut schemas);
        defs.schemas = schemas;
        defs.add_group_version_kinds();
        defs.add_markers();
        defs.fix_special_types();
        if flavor == Flavor::V3 {
            for schema in defs.schemas.values_mut() {
                wrap_refs_with_siblings(schema);
            }
        }
        defs
    }

    /// The definition name of objects of `kind` in `api_version`.
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<&str> {
        self.kinds.get(&(api_version.to_string(), kind.to_string())).map(String::as_str)
    }

    /// A `<Kind>List` definition for every listable resource.
    fn add_lists(&mut self, schemas: &mut BTreeMap<String, Value>) {
        for r in catalog::all().iter().filter(|r| r.has_verb("list")) {
            let api_version = r.api_version();
            let Some(item) = self.kind(&api_version, r.kind).map(str::to_string) else { continue };
            let name = format!("{item}List");
            let list_kind = format!("{}List", r.kind);
            self.kinds.insert((api_version, list_kind.clone()), name.clone());
            if schemas.contains_key(&name) {
                continue;
            }
            // `apiVersion` and `kind` read as in the item's own schema.
            let type_meta = |field: &str| {
                schemas
                    .get(&item)
                    .and_then(|s| s["properties"].get(field))
                    .cloned()
                    .unwrap_or(json!({"type": "string"}))
            };
            let mut metadata = self.flavor.reference(LIST_META);
            metadata["description"] = json!(
                "Standard list metadata: the resourceVersion of the list and the continue token of the next page."
            );
            let schema = json!({
                "description": format!("{list_kind} is a list of {} objects.", r.kind),
                "type": "object",
                "properties": {
                    "apiVersion": type_meta("apiVersion"),
                    "items": {
                        "description": format!("The {} objects.", r.kind),
                        "type": "array",
                        "items": self.flavor.reference(&item),
                    },
                    "kind": type_meta("kind"),
                    "metadata": metadata,
                },
                "required": ["items"],
            });
            schemas.insert(name, schema);
        }
    }

    /// `x-kubernetes-group-version-kind` on kinds, list kinds, subresource kinds and the meta
    /// types every group version uses.
    fn add_group_version_kinds(&mut self) {
        let mut gvks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut push = |name: &str, group: &str, version: &str, kind: &str| {
            let entry = json!({"group": group, "kind": kind, "version": version});
            let list = gvks.entry(name.to_string()).or_default();
            if !list.contains(&entry) {
                list.push(entry);
            }
        };
        for r in catalog::all() {
            let api_version = r.api_version();
            if let Some(name) = self.kind(&api_version, r.kind) {
                push(name, r.group, r.version, r.kind);
            }
            let list_kind = format!("{}List", r.kind);
            if let Some(name) = self.kind(&api_version, &list_kind) {
                push(name, r.group, r.version, &list_kind);
            }
            for s in r.subresources {
                let sub_api_version =
                    if s.group.is_empty() { s.version.to_string() } else { format!("{}/{}", s.group, s.version) };
                if let Some(name) = self.kind(&sub_api_version, s.kind) {
                    push(name, s.group, s.version, s.kind);
                }
            }
        }
        for (group, version) in served_group_versions() {
            push(DELETE_OPTIONS, group, version, "DeleteOptions");
            push(WATCH_EVENT, group, version, "WatchEvent");
        }
        push(STATUS, "", "v1", "Status");
        for (name, list) in gvks {
            if let Some(Value::Object(schema)) = self.schemas.get_mut(&name) {
                schema.insert("x-kubernetes-group-version-kind".into(), Value::Array(list));
            }
        }
    }

    /// The patch and list markers of every field the schema table knows.
    fn add_markers(&mut self) {
        for (name, schema) in self.schemas.iter_mut() {
            let Value::Object(schema) = schema else { continue };
            if ATOMIC_STRUCTS.contains(&name.as_str()) {
                schema.insert("x-kubernetes-map-type".into(), json!("atomic"));
            }
            let Some(message) = rudder_api::schema::message(name) else { continue };
            let Some(Value::Object(properties)) = schema.get_mut("properties") else { continue };
            for (field_name, field_schema) in properties.iter_mut() {
                let (Some(field), Value::Object(field_schema)) = (message.field(field_name), field_schema) else {
                    continue;
                };
                let mut set = |key: &str, value: &str| {
                    if !value.is_empty() {
                        field_schema.insert(key.into(), json!(value));
                    }
                };
                set("x-kubernetes-patch-strategy", field.patch_strategy);
                set("x-kubernetes-patch-merge-key", field.merge_key);
                set("x-kubernetes-list-type", field.list_type);
                set("x-kubernetes-map-type", field.map_type);
                if !field.map_keys.is_empty() {
                    field_schema.insert("x-kubernetes-list-map-keys".into(), json!(field.map_keys));
                }
            }
        }
    }

    /// Upstream's shapes for the two types that are either a number or a string; and no
    /// required `metadata` (`k8s-openapi` requires it of every kind, upstream of none).
    fn fix_special_types(&mut self) {
        let flavor = self.flavor;
        for schema in self.schemas.values_mut() {
            let Some(Value::Array(required)) = schema.get_mut("required") else { continue };
            required.retain(|f| f != "metadata");
            if required.is_empty() {
                schema.as_object_mut().map(|s| s.remove("required"));
            }
        }
        if let Some(Value::Object(s)) = self.schemas.get_mut(INT_OR_STRING) {
            s.remove("x-kubernetes-int-or-string");
            s.insert("format".into(), json!("int-or-string"));
            match flavor {
                Flavor::V2 => s.insert("type".into(), json!("string")),
                Flavor::V3 => s.insert("oneOf".into(), json!([{"type": "integer"}, {"type": "string"}])),
            };
        }
        if let Some(Value::Object(s)) = self.schemas.get_mut(QUANTITY) {
            s.remove("x-kubernetes-int-or-string");
            match flavor {
                Flavor::V2 => s.insert("type".into(), json!("string")),
                Flavor::V3 => s.insert("oneOf".into(), json!([{"type": "string"}, {"type": "number"}])),
            };
        }
    }

    /// The definitions `roots` needs: the named ones and every one they reference, directly
    /// or not, in name order.
    pub fn closure<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> Map<String, Value> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut pending: Vec<String> = roots.into_iter().map(str::to_string).collect();
        while let Some(name) = pending.pop() {
            if seen.contains(&name) {
                continue;
            }
            let Some(schema) = self.schemas.get(&name) else { continue };
            seen.insert(name);
            collect_refs(schema, self.flavor.ref_prefix(), &mut pending);
        }
        seen.into_iter()
            .map(|name| {
                let schema = self.schemas[&name].clone();
                (name, schema)
            })
            .collect()
    }
}

/// Core `v1` and every served group version, in discovery order.
pub fn served_group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out = vec![("", "v1")];
    for g in catalog::groups() {
        for v in &g.versions {
            out.push((g.name, *v));
        }
    }
    out
}

/// Pushes the definition name of every `$ref` under `value` (with `prefix`) onto `out`.
pub fn collect_refs(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(name) = v.as_str().and_then(|r| r.strip_prefix(prefix)) {
                        out.push(name.to_string());
                    }
                } else {
                    collect_refs(v, prefix, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, prefix, out)),
        _ => {}
    }
}

/// Rewrites every `{"$ref": r, ...siblings}` under `value` as `{"allOf": [{"$ref": r}], ...siblings}`,
/// OpenAPI 3.0's way to describe a reference.
fn wrap_refs_with_siblings(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.len() > 1
                && let Some(reference) = map.remove("$ref")
            {
                map.insert("allOf".into(), json!([{"$ref": reference}]));
            }
            for v in map.values_mut() {
                wrap_refs_with_siblings(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(wrap_refs_with_siblings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_has_a_schema() {
        let defs = Definitions::build(Flavor::V3);
        for r in catalog::all() {
            let api_version = r.api_version();
            let name = defs.kind(&api_version, r.kind).unwrap_or_else(|| panic!("{api_version} {}", r.kind));
            let gvks = &defs.schemas[name]["x-kubernetes-group-version-kind"];
            assert!(
                gvks.as_array().unwrap().contains(&json!({"group": r.group, "kind": r.kind, "version": r.version})),
                "{name}: {gvks}"
            );
            if r.has_verb("list") {
                assert!(defs.kind(&api_version, &format!("{}List", r.kind)).is_some(), "{} list", r.kind);
            }
            for s in r.subresources {
                let sub_api_version =
                    if s.group.is_empty() { s.version.to_string() } else { format!("{}/{}", s.group, s.version) };
                let has_body = matches!(s.name, "status" | "scale" | "eviction" | "token" | "binding" | "approval");
                if has_body {
                    assert!(defs.kind(&sub_api_version, s.kind).is_some(), "{}/{}", r.plural, s.name);
                }
            }
        }
    }

    #[test]
    fn definitions_carry_what_kubectl_needs() {
        let defs = Definitions::build(Flavor::V3);
        let deployment = &defs.schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert!(deployment["description"].as_str().unwrap().contains("declarative updates"));
        assert!(deployment.get("required").is_none(), "metadata is optional");
        // A described reference is wrapped in allOf.
        assert_eq!(
            deployment["properties"]["spec"]["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}])
        );
        assert!(deployment["properties"]["spec"]["description"].is_string());

        let pod_spec = &defs.schemas["io.k8s.api.core.v1.PodSpec"];
        let containers = &pod_spec["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(pod_spec["properties"]["nodeSelector"]["x-kubernetes-map-type"], "atomic");
        assert_eq!(
            defs.schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"],
            "atomic"
        );

        let delete_options =
            defs.schemas[DELETE_OPTIONS]["x-kubernetes-group-version-kind"].as_array().unwrap().clone();
        assert!(delete_options.contains(&json!({"group": "", "kind": "DeleteOptions", "version": "v1"})));
        assert!(delete_options.contains(&json!({"group": "apps", "kind": "DeleteOptions", "version": "v1"})));
        assert_eq!(delete_options.len(), served_group_versions().len());
        let scale = &defs.schemas["io.k8s.api.autoscaling.v1.Scale"];
        assert_eq!(
            scale["x-kubernetes-group-version-kind"],
            json!([{"group": "autoscaling", "kind": "Scale", "version": "v1"}])
        );
        let list = &defs.schemas["io.k8s.api.apps.v1.DeploymentList"];
        assert_eq!(
            list["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "DeploymentList", "version": "v1"}])
        );
        assert_eq!(
            list["properties"]["items"]["items"],
            json!({"$ref": "#/components/schemas/io.k8s.api.apps.v1.Deployment"})
        );
        assert!(defs.schemas[INT_OR_STRING]["oneOf"].is_array());

        // Every reference resolves.
        let mut refs = Vec::new();
        for schema in defs.schemas.values() {
            collect_refs(schema, Flavor::V3.ref_prefix(), &mut refs);
        }
        for r in refs {
            assert!(defs.schemas.contains_key(&r), "dangling reference {r}");
        }
    }

    /// Stored objects went through their `k8s-openapi` type, so they hold only the fields the
    /// type knows; field validation of patches relies on the schema table knowing them all
    /// (`decode::unknown_patched_fields`).
    #[test]
    fn the_schema_table_knows_every_field_of_the_served_types() {
        let defs = Definitions::build(Flavor::V3);
        let roots: Vec<&str> = catalog::all().iter().filter_map(|r| defs.kind(&r.api_version(), r.kind)).collect();
        let (mut unknown, mut checked) = (Vec::new(), 0);
        for (name, schema) in defs.closure(roots) {
            let Some(message) = rudder_api::schema::message(&name).filter(|m| m.special().is_none()) else { continue };
            for field in schema.get("properties").and_then(Value::as_object).into_iter().flatten().map(|(k, _)| k) {
                checked += 1;
                if message.field(field).is_none() && field != "apiVersion" && field != "kind" {
                    unknown.push(format!("{name}.{field}"));
                }
            }
        }
        assert!(unknown.is_empty(), "{unknown:?}");
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn swagger_keeps_described_references() {
        let defs = Definitions::build(Flavor::V2);
        let spec = &defs.schemas["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"];
        assert_eq!(spec["$ref"], "#/definitions/io.k8s.api.apps.v1.DeploymentSpec");
        assert_eq!(defs.schemas[INT_OR_STRING]["type"], "string");
        let closure = defs.closure(["io.k8s.api.apps.v1.Deployment"]);
        assert!(closure.contains_key("io.k8s.api.core.v1.PodSpec"));
        assert!(closure.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(!closure.contains_key("io.k8s.api.batch.v1.Job"));
    }
}
