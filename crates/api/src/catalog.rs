//! The built-in resource catalog: every group/version/resource the server serves, with the
//! facts discovery reports (kind, scope, verbs, short names, categories, subresources) and
//! the typed operations bound to its kind.
//!
//! Key items: [`Resource`], [`Subresource`], [`all`], [`lookup`], [`by_kind`],
//! [`in_group_version`], [`groups`] / [`GroupInfo`].
//! The REST handlers in `rudder-apiserver` look resources up here; storage keys are
//! `/registry/<storage_resource>/[<namespace>/]<name>`.

use crate::kinds::{KindOps, ops};
use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration, apps::v1 as apps, authentication::v1 as authn,
    authorization::v1 as authz, autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2,
    batch::v1 as batch, certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, networking::v1 as networking, node::v1 as node,
    policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};

/// Which rule a resource's object names must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain: lowercase alphanumerics, '-' and '.', at most 253 characters.
    Subdomain,
    /// DNS-1123 label: lowercase alphanumerics and '-', at most 63 characters.
    Label,
    /// DNS-1035 label: a DNS-1123 label that starts with a letter (service names).
    Dns1035Label,
    /// Any name that can be a URL path segment (not `.`/`..`, no `/` or `%`).
    PathSegment,
}

/// A subresource such as `pods/status` or `deployments/scale`.
#[derive(Clone, Copy, Debug)]
pub struct Subresource {
    /// The subresource name after the slash: `status`, `scale`, `log`, ...
    pub name: &'static str,
    /// The group of the object this subresource takes and returns (e.g. `autoscaling` for scale).
    pub group: &'static str,
    /// Its version.
    pub version: &'static str,
    /// Its kind (e.g. `Scale`, `Eviction`, or the parent's kind for `status`).
    pub kind: &'static str,
    /// The verbs upstream's discovery lists for it.
    pub verbs: &'static [&'static str],
}

/// One served group/version/resource.
#[derive(Clone, Copy, Debug)]
pub struct Resource {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group, e.g. `v1`.
    pub version: &'static str,
    /// Kind of its objects, e.g. `Deployment`.
    pub kind: &'static str,
    /// Plural resource name used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// Singular name, lowercase, e.g. `deployment`.
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Verbs as discovery lists them (`create`, `delete`, `deletecollection`, `get`, `list`,
    /// `patch`, `update`, `watch`).
    pub verbs: &'static [&'static str],
    /// Short names, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// Subresources served under this resource.
    pub subresources: &'static [Subresource],
    /// Name rule for `metadata.name`.
    pub name_rule: NameRule,
    /// Storage key segment: resources that share storage across versions or groups use the
    /// same one (e.g. `events` for core/v1 and events.k8s.io/v1 events).
    pub storage_resource: &'static str,
    /// `group/version` (or `v1` for core) of the schema objects are stored in.
    pub storage_version: &'static str,
    /// Typed defaulting and validation for the kind.
    pub ops: KindOps,
}

impl Resource {
    /// `group/version`, or just `version` for the core group (the `apiVersion` of objects).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The subresource with this name, if served.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether the verb is served on the main resource.
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }
}

// ---------------------------------------------------------------------------------------
// Building blocks for the table.
// ---------------------------------------------------------------------------------------

const NAMESPACED: bool = true;
const CLUSTER: bool = false;

/// The full set most resources serve.
const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
/// Namespaces: everything but `deletecollection`.
const NAMESPACE_VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
const GET_LIST: &[&str] = &["get", "list"];
const CREATE: &[&str] = &["create"];
const GET: &[&str] = &["get"];
const UPDATE: &[&str] = &["update"];
/// Subresources that read and replace part of an object (`status`, `scale`, ...).
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
/// Streaming connections (`exec`, `attach`, `portforward`).
const CONNECT: &[&str] = &["create", "get"];
/// Proxies pass every method through.
const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];

const CATEGORY_ALL: &[&str] = &["all"];
const CATEGORY_API_EXTENSIONS: &[&str] = &["api-extensions"];

/// One group/version and the schema its objects are stored in.
struct GroupVersion {
    group: &'static str,
    version: &'static str,
    stored_as: &'static str,
}

const CORE_V1: GroupVersion = GroupVersion { group: "", version: "v1", stored_as: "v1" };
const APPS_V1: GroupVersion = GroupVersion { group: "apps", version: "v1", stored_as: "apps/v1" };
const EVENTS_V1: GroupVersion = GroupVersion { group: "events.k8s.io", version: "v1", stored_as: "v1" };
const AUTHENTICATION_V1: GroupVersion =
    GroupVersion { group: "authentication.k8s.io", version: "v1", stored_as: "authentication.k8s.io/v1" };
const AUTHORIZATION_V1: GroupVersion =
    GroupVersion { group: "authorization.k8s.io", version: "v1", stored_as: "authorization.k8s.io/v1" };
const AUTOSCALING_V2: GroupVersion = GroupVersion { group: "autoscaling", version: "v2", stored_as: "autoscaling/v2" };
const AUTOSCALING_V1: GroupVersion = GroupVersion { group: "autoscaling", version: "v1", stored_as: "autoscaling/v2" };
const BATCH_V1: GroupVersion = GroupVersion { group: "batch", version: "v1", stored_as: "batch/v1" };
const CERTIFICATES_V1: GroupVersion =
    GroupVersion { group: "certificates.k8s.io", version: "v1", stored_as: "certificates.k8s.io/v1" };
const NETWORKING_V1: GroupVersion =
    GroupVersion { group: "networking.k8s.io", version: "v1", stored_as: "networking.k8s.io/v1" };
const POLICY_V1: GroupVersion = GroupVersion { group: "policy", version: "v1", stored_as: "policy/v1" };
const RBAC_V1: GroupVersion =
    GroupVersion { group: "rbac.authorization.k8s.io", version: "v1", stored_as: "rbac.authorization.k8s.io/v1" };
const STORAGE_V1: GroupVersion =
    GroupVersion { group: "storage.k8s.io", version: "v1", stored_as: "storage.k8s.io/v1" };
const ADMISSIONREGISTRATION_V1: GroupVersion =
    GroupVersion { group: "admissionregistration.k8s.io", version: "v1", stored_as: "admissionregistration.k8s.io/v1" };
const SCHEDULING_V1: GroupVersion =
    GroupVersion { group: "scheduling.k8s.io", version: "v1", stored_as: "scheduling.k8s.io/v1" };
const COORDINATION_V1: GroupVersion =
    GroupVersion { group: "coordination.k8s.io", version: "v1", stored_as: "coordination.k8s.io/v1" };
const NODE_V1: GroupVersion = GroupVersion { group: "node.k8s.io", version: "v1", stored_as: "node.k8s.io/v1" };
const DISCOVERY_V1: GroupVersion =
    GroupVersion { group: "discovery.k8s.io", version: "v1", stored_as: "discovery.k8s.io/v1" };

impl GroupVersion {
    /// A resource of this group/version with no short names, categories or subresources,
    /// DNS-subdomain names and storage under its own plural.
    const fn resource(
        &self,
        kind: &'static str,
        plural: &'static str,
        singular: &'static str,
        namespaced: bool,
        verbs: &'static [&'static str],
        ops: KindOps,
    ) -> Resource {
        Resource {
            group: self.group,
            version: self.version,
            kind,
            plural,
            singular,
            namespaced,
            verbs,
            short_names: &[],
            categories: &[],
            subresources: &[],
            name_rule: NameRule::Subdomain,
            storage_resource: plural,
            storage_version: self.stored_as,
            ops,
        }
    }

    /// A subresource whose object has this group/version.
    const fn sub(&self, name: &'static str, kind: &'static str, verbs: &'static [&'static str]) -> Subresource {
        Subresource { name, group: self.group, version: self.version, kind, verbs }
    }

    /// `status` of a resource of this group/version: the parent's own kind.
    const fn status(&self, kind: &'static str) -> Subresource {
        self.sub("status", kind, GET_PATCH_UPDATE)
    }
}

/// `scale` always speaks autoscaling/v1 `Scale`.
const SCALE: Subresource =
    Subresource { name: "scale", group: "autoscaling", version: "v1", kind: "Scale", verbs: GET_PATCH_UPDATE };

impl Resource {
    const fn short_names(self, short_names: &'static [&'static str]) -> Self {
        Resource { short_names, ..self }
    }

    const fn categories(self, categories: &'static [&'static str]) -> Self {
        Resource { categories, ..self }
    }

    const fn subresources(self, subresources: &'static [Subresource]) -> Self {
        Resource { subresources, ..self }
    }

    const fn names(self, name_rule: NameRule) -> Self {
        Resource { name_rule, ..self }
    }
}

// ---------------------------------------------------------------------------------------
// The table. Groups follow upstream's /apis order (core first); versions within a group
// follow the group's version list; resources within a group/version are sorted by plural,
// as discovery lists them.
// ---------------------------------------------------------------------------------------

static RESOURCES: &[Resource] = &[
    // core/v1
    CORE_V1.resource("Binding", "bindings", "binding", NAMESPACED, CREATE, ops::<core::Binding>()),
    CORE_V1
        .resource(
            "ComponentStatus",
            "componentstatuses",
            "componentstatus",
            CLUSTER,
            GET_LIST,
            ops::<core::ComponentStatus>(),
        )
        .short_names(&["cs"]),
    CORE_V1
        .resource("ConfigMap", "configmaps", "configmap", NAMESPACED, ALL_VERBS, ops::<core::ConfigMap>())
        .short_names(&["cm"]),
    CORE_V1
        .resource("Endpoints", "endpoints", "endpoints", NAMESPACED, ALL_VERBS, ops::<core::Endpoints>())
        .short_names(&["ep"]),
    // Upstream runs no metadata validation for core/v1 events beyond the path-segment rule
    // every stored name obeys.
    CORE_V1
        .resource("Event", "events", "event", NAMESPACED, ALL_VERBS, ops::<core::Event>())
        .short_names(&["ev"])
        .names(NameRule::PathSegment),
    CORE_V1
        .resource("LimitRange", "limitranges", "limitrange", NAMESPACED, ALL_VERBS, ops::<core::LimitRange>())
        .short_names(&["limits"]),
    CORE_V1
        .resource("Namespace", "namespaces", "namespace", CLUSTER, NAMESPACE_VERBS, ops::<core::Namespace>())
        .short_names(&["ns"])
        .subresources(&[CORE_V1.sub("finalize", "Namespace", UPDATE), CORE_V1.status("Namespace")])
        .names(NameRule::Label),
    CORE_V1
        .resource("Node", "nodes", "node", CLUSTER, ALL_VERBS, ops::<core::Node>())
        .short_names(&["no"])
        .subresources(&[CORE_V1.sub("proxy", "NodeProxyOptions", PROXY), CORE_V1.status("Node")]),
    CORE_V1
        .resource(
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            NAMESPACED,
            ALL_VERBS,
            ops::<core::PersistentVolumeClaim>(),
        )
        .short_names(&["pvc"])
        .subresources(&[CORE_V1.status("PersistentVolumeClaim")]),
    CORE_V1
        .resource(
            "PersistentVolume",
            "persistentvolumes",
            "persistentvolume",
            CLUSTER,
            ALL_VERBS,
            ops::<core::PersistentVolume>(),
        )
        .short_names(&["pv"])
        .subresources(&[CORE_V1.status("PersistentVolume")]),
    CORE_V1
        .resource("Pod", "pods", "pod", NAMESPACED, ALL_VERBS, ops::<core::Pod>())
        .short_names(&["po"])
        .categories(CATEGORY_ALL)
        .subresources(&[
            CORE_V1.sub("attach", "PodAttachOptions", CONNECT),
            CORE_V1.sub("binding", "Binding", CREATE),
            CORE_V1.sub("ephemeralcontainers", "Pod", GET_PATCH_UPDATE),
            POLICY_V1.sub("eviction", "Eviction", CREATE),
            CORE_V1.sub("exec", "PodExecOptions", CONNECT),
            CORE_V1.sub("log", "Pod", GET),
            CORE_V1.sub("portforward", "PodPortForwardOptions", CONNECT),
            CORE_V1.sub("proxy", "PodProxyOptions", PROXY),
            CORE_V1.sub("resize", "Pod", GET_PATCH_UPDATE),
            CORE_V1.status("Pod"),
        ]),
    CORE_V1.resource("PodTemplate", "podtemplates", "podtemplate", NAMESPACED, ALL_VERBS, ops::<core::PodTemplate>()),
    CORE_V1
        .resource(
            "ReplicationController",
            "replicationcontrollers",
            "replicationcontroller",
            NAMESPACED,
            ALL_VERBS,
            ops::<core::ReplicationController>(),
        )
        .short_names(&["rc"])
        .categories(CATEGORY_ALL)
        .subresources(&[SCALE, CORE_V1.status("ReplicationController")]),
    CORE_V1
        .resource(
            "ResourceQuota",
            "resourcequotas",
            "resourcequota",
            NAMESPACED,
            ALL_VERBS,
            ops::<core::ResourceQuota>(),
        )
        .short_names(&["quota"])
        .subresources(&[CORE_V1.status("ResourceQuota")]),
    CORE_V1.resource("Secret", "secrets", "secret", NAMESPACED, ALL_VERBS, ops::<core::Secret>()),
    CORE_V1
        .resource(
            "ServiceAccount",
            "serviceaccounts",
            "serviceaccount",
            NAMESPACED,
            ALL_VERBS,
            ops::<core::ServiceAccount>(),
        )
        .short_names(&["sa"])
        .subresources(&[Subresource {
            name: "token",
            group: "authentication.k8s.io",
            version: "v1",
            kind: "TokenRequest",
            verbs: CREATE,
        }]),
    CORE_V1
        .resource("Service", "services", "service", NAMESPACED, ALL_VERBS, ops::<core::Service>())
        .short_names(&["svc"])
        .categories(CATEGORY_ALL)
        .subresources(&[CORE_V1.sub("proxy", "ServiceProxyOptions", PROXY), CORE_V1.status("Service")])
        .names(NameRule::Dns1035Label),
    // apps/v1
    APPS_V1.resource(
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        NAMESPACED,
        ALL_VERBS,
        ops::<apps::ControllerRevision>(),
    ),
    APPS_V1
        .resource("DaemonSet", "daemonsets", "daemonset", NAMESPACED, ALL_VERBS, ops::<apps::DaemonSet>())
        .short_names(&["ds"])
        .categories(CATEGORY_ALL)
        .subresources(&[APPS_V1.status("DaemonSet")]),
    APPS_V1
        .resource("Deployment", "deployments", "deployment", NAMESPACED, ALL_VERBS, ops::<apps::Deployment>())
        .short_names(&["deploy"])
        .categories(CATEGORY_ALL)
        .subresources(&[SCALE, APPS_V1.status("Deployment")]),
    APPS_V1
        .resource("ReplicaSet", "replicasets", "replicaset", NAMESPACED, ALL_VERBS, ops::<apps::ReplicaSet>())
        .short_names(&["rs"])
        .categories(CATEGORY_ALL)
        .subresources(&[SCALE, APPS_V1.status("ReplicaSet")]),
    // StatefulSet names end up in pod host names, so upstream holds them to DNS labels.
    APPS_V1
        .resource("StatefulSet", "statefulsets", "statefulset", NAMESPACED, ALL_VERBS, ops::<apps::StatefulSet>())
        .short_names(&["sts"])
        .categories(CATEGORY_ALL)
        .subresources(&[SCALE, APPS_V1.status("StatefulSet")])
        .names(NameRule::Label),
    // events.k8s.io/v1: the same objects as core/v1 events, stored once.
    EVENTS_V1.resource("Event", "events", "event", NAMESPACED, ALL_VERBS, ops::<events::Event>()).short_names(&["ev"]),
    // authentication.k8s.io/v1 and authorization.k8s.io/v1: reviews, answered and never stored.
    AUTHENTICATION_V1.resource(
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        CLUSTER,
        CREATE,
        ops::<authn::SelfSubjectReview>(),
    ),
    AUTHENTICATION_V1.resource(
        "TokenReview",
        "tokenreviews",
        "tokenreview",
        CLUSTER,
        CREATE,
        ops::<authn::TokenReview>(),
    ),
    AUTHORIZATION_V1.resource(
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        NAMESPACED,
        CREATE,
        ops::<authz::LocalSubjectAccessReview>(),
    ),
    AUTHORIZATION_V1.resource(
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        CLUSTER,
        CREATE,
        ops::<authz::SelfSubjectAccessReview>(),
    ),
    AUTHORIZATION_V1.resource(
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        CLUSTER,
        CREATE,
        ops::<authz::SelfSubjectRulesReview>(),
    ),
    AUTHORIZATION_V1.resource(
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview",
        CLUSTER,
        CREATE,
        ops::<authz::SubjectAccessReview>(),
    ),
    // autoscaling/v2, then autoscaling/v1, both stored as v2.
    AUTOSCALING_V2
        .resource(
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            NAMESPACED,
            ALL_VERBS,
            ops::<autoscaling_v2::HorizontalPodAutoscaler>(),
        )
        .short_names(&["hpa"])
        .categories(CATEGORY_ALL)
        .subresources(&[AUTOSCALING_V2.status("HorizontalPodAutoscaler")]),
    AUTOSCALING_V1
        .resource(
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            NAMESPACED,
            ALL_VERBS,
            ops::<autoscaling_v1::HorizontalPodAutoscaler>(),
        )
        .short_names(&["hpa"])
        .categories(CATEGORY_ALL)
        .subresources(&[AUTOSCALING_V1.status("HorizontalPodAutoscaler")]),
    // batch/v1
    BATCH_V1
        .resource("CronJob", "cronjobs", "cronjob", NAMESPACED, ALL_VERBS, ops::<batch::CronJob>())
        .short_names(&["cj"])
        .categories(CATEGORY_ALL)
        .subresources(&[BATCH_V1.status("CronJob")]),
    BATCH_V1
        .resource("Job", "jobs", "job", NAMESPACED, ALL_VERBS, ops::<batch::Job>())
        .categories(CATEGORY_ALL)
        .subresources(&[BATCH_V1.status("Job")]),
    // certificates.k8s.io/v1: upstream puts no rule of its own on CSR names.
    CERTIFICATES_V1
        .resource(
            "CertificateSigningRequest",
            "certificatesigningrequests",
            "certificatesigningrequest",
            CLUSTER,
            ALL_VERBS,
            ops::<certificates::CertificateSigningRequest>(),
        )
        .short_names(&["csr"])
        .subresources(&[
            CERTIFICATES_V1.sub("approval", "CertificateSigningRequest", GET_PATCH_UPDATE),
            CERTIFICATES_V1.status("CertificateSigningRequest"),
        ])
        .names(NameRule::PathSegment),
    // networking.k8s.io/v1
    NETWORKING_V1.resource(
        "IngressClass",
        "ingressclasses",
        "ingressclass",
        CLUSTER,
        ALL_VERBS,
        ops::<networking::IngressClass>(),
    ),
    NETWORKING_V1
        .resource("Ingress", "ingresses", "ingress", NAMESPACED, ALL_VERBS, ops::<networking::Ingress>())
        .short_names(&["ing"])
        .subresources(&[NETWORKING_V1.status("Ingress")]),
    NETWORKING_V1
        .resource(
            "NetworkPolicy",
            "networkpolicies",
            "networkpolicy",
            NAMESPACED,
            ALL_VERBS,
            ops::<networking::NetworkPolicy>(),
        )
        .short_names(&["netpol"]),
    // policy/v1
    POLICY_V1
        .resource(
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            "poddisruptionbudget",
            NAMESPACED,
            ALL_VERBS,
            ops::<policy::PodDisruptionBudget>(),
        )
        .short_names(&["pdb"])
        .subresources(&[POLICY_V1.status("PodDisruptionBudget")]),
    // rbac.authorization.k8s.io/v1: names only need to be path segments (e.g. `system:node`).
    RBAC_V1
        .resource(
            "ClusterRoleBinding",
            "clusterrolebindings",
            "clusterrolebinding",
            CLUSTER,
            ALL_VERBS,
            ops::<rbac::ClusterRoleBinding>(),
        )
        .names(NameRule::PathSegment),
    RBAC_V1
        .resource("ClusterRole", "clusterroles", "clusterrole", CLUSTER, ALL_VERBS, ops::<rbac::ClusterRole>())
        .names(NameRule::PathSegment),
    RBAC_V1
        .resource("RoleBinding", "rolebindings", "rolebinding", NAMESPACED, ALL_VERBS, ops::<rbac::RoleBinding>())
        .names(NameRule::PathSegment),
    RBAC_V1.resource("Role", "roles", "role", NAMESPACED, ALL_VERBS, ops::<rbac::Role>()).names(NameRule::PathSegment),
    // storage.k8s.io/v1
    STORAGE_V1.resource("CSIDriver", "csidrivers", "csidriver", CLUSTER, ALL_VERBS, ops::<storage::CSIDriver>()),
    STORAGE_V1.resource("CSINode", "csinodes", "csinode", CLUSTER, ALL_VERBS, ops::<storage::CSINode>()),
    STORAGE_V1.resource(
        "CSIStorageCapacity",
        "csistoragecapacities",
        "csistoragecapacity",
        NAMESPACED,
        ALL_VERBS,
        ops::<storage::CSIStorageCapacity>(),
    ),
    STORAGE_V1
        .resource("StorageClass", "storageclasses", "storageclass", CLUSTER, ALL_VERBS, ops::<storage::StorageClass>())
        .short_names(&["sc"]),
    STORAGE_V1
        .resource(
            "VolumeAttachment",
            "volumeattachments",
            "volumeattachment",
            CLUSTER,
            ALL_VERBS,
            ops::<storage::VolumeAttachment>(),
        )
        .subresources(&[STORAGE_V1.status("VolumeAttachment")]),
    // admissionregistration.k8s.io/v1
    ADMISSIONREGISTRATION_V1
        .resource(
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            "mutatingwebhookconfiguration",
            CLUSTER,
            ALL_VERBS,
            ops::<admissionregistration::MutatingWebhookConfiguration>(),
        )
        .categories(CATEGORY_API_EXTENSIONS),
    ADMISSIONREGISTRATION_V1
        .resource(
            "ValidatingAdmissionPolicy",
            "validatingadmissionpolicies",
            "validatingadmissionpolicy",
            CLUSTER,
            ALL_VERBS,
            ops::<admissionregistration::ValidatingAdmissionPolicy>(),
        )
        .categories(CATEGORY_API_EXTENSIONS)
        .subresources(&[ADMISSIONREGISTRATION_V1.status("ValidatingAdmissionPolicy")]),
    ADMISSIONREGISTRATION_V1
        .resource(
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
            "validatingadmissionpolicybinding",
            CLUSTER,
            ALL_VERBS,
            ops::<admissionregistration::ValidatingAdmissionPolicyBinding>(),
        )
        .categories(CATEGORY_API_EXTENSIONS),
    ADMISSIONREGISTRATION_V1
        .resource(
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            "validatingwebhookconfiguration",
            CLUSTER,
            ALL_VERBS,
            ops::<admissionregistration::ValidatingWebhookConfiguration>(),
        )
        .categories(CATEGORY_API_EXTENSIONS),
    // scheduling.k8s.io/v1
    SCHEDULING_V1
        .resource(
            "PriorityClass",
            "priorityclasses",
            "priorityclass",
            CLUSTER,
            ALL_VERBS,
            ops::<scheduling::PriorityClass>(),
        )
        .short_names(&["pc"]),
    // coordination.k8s.io/v1
    COORDINATION_V1.resource("Lease", "leases", "lease", NAMESPACED, ALL_VERBS, ops::<coordination::Lease>()),
    // node.k8s.io/v1
    NODE_V1.resource("RuntimeClass", "runtimeclasses", "runtimeclass", CLUSTER, ALL_VERBS, ops::<node::RuntimeClass>()),
    // discovery.k8s.io/v1
    DISCOVERY_V1.resource(
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        NAMESPACED,
        ALL_VERBS,
        ops::<discovery::EndpointSlice>(),
    ),
];

/// The non-core groups in upstream's /apis order, each with its versions, preferred first.
const GROUP_ORDER: &[(&str, &[&str])] = &[
    ("apps", &["v1"]),
    ("events.k8s.io", &["v1"]),
    ("authentication.k8s.io", &["v1"]),
    ("authorization.k8s.io", &["v1"]),
    ("autoscaling", &["v2", "v1"]),
    ("batch", &["v1"]),
    ("certificates.k8s.io", &["v1"]),
    ("networking.k8s.io", &["v1"]),
    ("policy", &["v1"]),
    ("rbac.authorization.k8s.io", &["v1"]),
    ("storage.k8s.io", &["v1"]),
    ("admissionregistration.k8s.io", &["v1"]),
    ("scheduling.k8s.io", &["v1"]),
    ("coordination.k8s.io", &["v1"]),
    ("node.k8s.io", &["v1"]),
    ("discovery.k8s.io", &["v1"]),
];

/// A non-core API group as `/apis` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group name, e.g. `apps`.
    pub name: &'static str,
    /// Served versions, in the order discovery lists them (preferred first).
    pub versions: Vec<&'static str>,
    /// The preferred version.
    pub preferred: &'static str,
}

/// Every served resource: core first, then the groups in [`groups`] order.
pub fn all() -> &'static [Resource] {
    RESOURCES
}

/// The resource served at `group`/`version`/`plural` (empty group for core).
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource whose objects have this group, version and kind.
pub fn by_kind(group: &str, version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The resources of one group/version, in discovery order.
pub fn in_group_version<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES.iter().filter(move |r| r.group == group && r.version == version)
}

/// The non-core groups in upstream's /apis order.
pub fn groups() -> Vec<GroupInfo> {
    GROUP_ORDER
        .iter()
        .map(|(name, versions)| GroupInfo { name, versions: versions.to_vec(), preferred: versions[0] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Mode;
    use serde_json::json;
    use std::collections::HashSet;

    #[test]
    fn lookups() {
        let pods = lookup("", "v1", "pods").expect("pods");
        assert_eq!((pods.kind, pods.api_version().as_str()), ("Pod", "v1"));
        assert!(pods.namespaced);
        let deployments = lookup("apps", "v1", "deployments").expect("deployments");
        assert_eq!(deployments.api_version(), "apps/v1");
        assert!(lookup("apps", "v2", "deployments").is_none());
        assert!(lookup("", "v1", "deployments").is_none());
        assert!(lookup("", "v1", "po").is_none());

        let hpa_v1 = by_kind("autoscaling", "v1", "HorizontalPodAutoscaler").expect("hpa v1");
        let hpa_v2 = by_kind("autoscaling", "v2", "HorizontalPodAutoscaler").expect("hpa v2");
        assert_eq!(hpa_v1.plural, "horizontalpodautoscalers");
        assert_eq!((hpa_v1.storage_resource, hpa_v1.storage_version), ("horizontalpodautoscalers", "autoscaling/v2"));
        assert_eq!((hpa_v2.storage_resource, hpa_v2.storage_version), ("horizontalpodautoscalers", "autoscaling/v2"));

        let core_events = by_kind("", "v1", "Event").expect("core events");
        let new_events = by_kind("events.k8s.io", "v1", "Event").expect("events.k8s.io events");
        assert_eq!(core_events.storage_resource, new_events.storage_resource);
        assert_eq!((new_events.storage_resource, new_events.storage_version), ("events", "v1"));
        assert!(by_kind("apps", "v1", "Pod").is_none());

        let apps: Vec<&str> = in_group_version("apps", "v1").map(|r| r.plural).collect();
        assert_eq!(apps, ["controllerrevisions", "daemonsets", "deployments", "replicasets", "statefulsets"]);
    }

    #[test]
    fn every_kind_decodes_a_minimal_object() {
        for r in all() {
            let obj = json!({"apiVersion": r.api_version(), "kind": r.kind, "metadata": {"name": "x"}});
            let prepared = (r.ops.prepare)(obj, None, Mode::DecodeOnly)
                .unwrap_or_else(|e| panic!("{}/{} {}: {e}", r.api_version(), r.plural, r.kind));
            assert_eq!(prepared.object["apiVersion"], r.api_version().as_str(), "{}", r.plural);
            assert_eq!(prepared.object["kind"], r.kind, "{}", r.plural);
            assert_eq!(prepared.object["metadata"]["name"], "x", "{}", r.plural);
            assert!(prepared.errors.is_empty());
            // A kind from another group/version must not decode as this one.
            let wrong = json!({"apiVersion": "example.com/v9", "kind": r.kind, "metadata": {"name": "x"}});
            assert!((r.ops.prepare)(wrong, None, Mode::DecodeOnly).is_err(), "{}", r.plural);
        }
    }

    #[test]
    fn names_are_unique_within_a_group_version() {
        let mut plurals = HashSet::new();
        let mut kinds = HashSet::new();
        let mut singulars = HashSet::new();
        let mut shorts = HashSet::new();
        for r in all() {
            assert!(plurals.insert((r.group, r.version, r.plural)), "plural {}", r.plural);
            assert!(kinds.insert((r.group, r.version, r.kind)), "kind {}", r.kind);
            assert!(singulars.insert((r.group, r.version, r.singular)), "singular {}", r.singular);
            for s in r.short_names {
                assert!(shorts.insert((r.group, r.version, *s)), "short name {s}");
                assert!(!plurals.contains(&(r.group, r.version, *s)), "short name {s} shadows a plural");
            }
            let mut subs = HashSet::new();
            for s in r.subresources {
                assert!(subs.insert(s.name), "{}/{}", r.plural, s.name);
            }
        }
    }

    #[test]
    fn discovery_order_and_shape() {
        // Core first, then groups and versions exactly in `groups()` order.
        let mut expected: Vec<(&str, &str)> = vec![("", "v1")];
        for g in groups() {
            for v in &g.versions {
                expected.push((g.name, v));
            }
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for r in all() {
            if seen.last() != Some(&(r.group, r.version)) {
                seen.push((r.group, r.version));
            }
        }
        assert_eq!(seen, expected);
        for (group, version) in expected {
            let plurals: Vec<&str> = in_group_version(group, version).map(|r| r.plural).collect();
            let mut sorted = plurals.clone();
            sorted.sort();
            assert_eq!(plurals, sorted, "{group}/{version}");
        }
        for r in all() {
            assert!(is_sorted(r.verbs), "{} verbs", r.plural);
            let names: Vec<&str> = r.subresources.iter().map(|s| s.name).collect();
            assert!(is_sorted(&names), "{} subresources", r.plural);
            for s in r.subresources {
                assert!(is_sorted(s.verbs), "{}/{} verbs", r.plural, s.name);
                if s.name == "status" {
                    assert_eq!((s.group, s.version, s.kind), (r.group, r.version, r.kind), "{}/status", r.plural);
                }
            }
            let expected_storage = if r.group.is_empty() { "v1".to_string() } else { r.api_version() };
            if r.plural != "horizontalpodautoscalers" && r.group != "events.k8s.io" {
                assert_eq!(r.storage_resource, r.plural);
                assert_eq!(r.storage_version, expected_storage, "{}", r.plural);
            }
        }
    }

    fn is_sorted(items: &[&str]) -> bool {
        items.windows(2).all(|w| w[0] < w[1])
    }

    #[test]
    fn groups_as_discovery_lists_them() {
        let gs = groups();
        assert_eq!(gs.len(), 16);
        assert_eq!(gs[0], GroupInfo { name: "apps", versions: vec!["v1"], preferred: "v1" });
        assert_eq!(gs[1].name, "events.k8s.io");
        let autoscaling = gs.iter().find(|g| g.name == "autoscaling").expect("autoscaling");
        assert_eq!((autoscaling.versions.clone(), autoscaling.preferred), (vec!["v2", "v1"], "v2"));
        assert_eq!(gs.last().map(|g| g.name), Some("discovery.k8s.io"));
        for g in &gs {
            for v in &g.versions {
                assert!(in_group_version(g.name, v).next().is_some(), "{}/{v} serves nothing", g.name);
            }
        }
    }

    #[test]
    fn spot_checks() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(pods.short_names, ["po"]);
        assert_eq!(pods.categories, ["all"]);
        assert!(pods.has_verb("deletecollection"));
        let eviction = pods.subresource("eviction").unwrap();
        assert_eq!(
            (eviction.group, eviction.version, eviction.kind, eviction.verbs),
            ("policy", "v1", "Eviction", CREATE)
        );
        assert_eq!(pods.subresource("log").unwrap().kind, "Pod");
        assert_eq!(pods.subresource("exec").unwrap().verbs, ["create", "get"]);
        assert_eq!(pods.subresource("proxy").unwrap().verbs, ["create", "delete", "get", "patch", "update"]);
        assert_eq!(pods.subresource("binding").unwrap().kind, "Binding");
        assert!(pods.subresource("scale").is_none());

        let scale = lookup("apps", "v1", "deployments").unwrap().subresource("scale").unwrap();
        assert_eq!((scale.group, scale.version, scale.kind), ("autoscaling", "v1", "Scale"));
        assert_eq!(scale.verbs, ["get", "patch", "update"]);
        assert_eq!(lookup("", "v1", "replicationcontrollers").unwrap().subresource("scale").unwrap().kind, "Scale");

        let cs = lookup("", "v1", "componentstatuses").unwrap();
        assert_eq!((cs.verbs, cs.namespaced, cs.short_names), (GET_LIST, false, &["cs"][..]));
        assert_eq!(lookup("", "v1", "bindings").unwrap().verbs, ["create"]);
        let ns = lookup("", "v1", "namespaces").unwrap();
        assert!(!ns.has_verb("deletecollection") && ns.has_verb("delete"));
        assert_eq!(ns.subresource("finalize").unwrap().verbs, ["update"]);
        assert_eq!(ns.name_rule, NameRule::Label);
        assert_eq!(lookup("", "v1", "services").unwrap().name_rule, NameRule::Dns1035Label);
        assert_eq!(lookup("rbac.authorization.k8s.io", "v1", "clusterroles").unwrap().name_rule, NameRule::PathSegment);
        assert_eq!(lookup("", "v1", "configmaps").unwrap().name_rule, NameRule::Subdomain);
        let token = lookup("", "v1", "serviceaccounts").unwrap().subresource("token").unwrap();
        assert_eq!((token.group, token.kind), ("authentication.k8s.io", "TokenRequest"));
        let csr = lookup("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap();
        assert_eq!(csr.short_names, ["csr"]);
        assert!(csr.subresource("approval").is_some() && csr.subresource("status").is_some());
        let vwc = lookup("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations").unwrap();
        assert_eq!(vwc.categories, ["api-extensions"]);

        let with_all: Vec<&str> = all().iter().filter(|r| r.categories.contains(&"all")).map(|r| r.plural).collect();
        assert_eq!(
            with_all,
            [
                "pods",
                "replicationcontrollers",
                "services",
                "daemonsets",
                "deployments",
                "replicasets",
                "statefulsets",
                "horizontalpodautoscalers",
                "horizontalpodautoscalers",
                "cronjobs",
                "jobs",
            ]
        );
        let shorts: HashSet<&str> = all().iter().flat_map(|r| r.short_names.iter().copied()).collect();
        for s in [
            "po", "svc", "deploy", "rs", "sts", "ds", "cm", "ns", "no", "pv", "pvc", "sa", "ev", "ep", "rc", "quota",
            "limits", "cs", "hpa", "pdb", "ing", "netpol", "csr", "pc", "sc", "cj",
        ] {
            assert!(shorts.contains(s), "short name {s}");
        }
        assert_eq!(shorts.len(), 26);
        assert_eq!(all().len(), 55);
    }
}
