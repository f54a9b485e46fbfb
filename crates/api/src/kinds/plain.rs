//! Kinds with no defaulting or validation beyond the generic metadata checks.
//! A kind moves out of this list into its own file once it gets rules of its own.

use super::ApiKind;
use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration, apps::v1 as apps, authentication::v1 as authn,
    authorization::v1 as authz, autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2,
    certificates::v1 as certificates, core::v1 as core, discovery::v1 as discovery, events::v1 as events,
    networking::v1 as networking, node::v1 as node, policy::v1 as policy, rbac::v1 as rbac,
    scheduling::v1 as scheduling, storage::v1 as storage,
};

macro_rules! plain {
    ($($t:ty),* $(,)?) => { $(impl ApiKind for $t {})* };
}

plain!(
    core::Binding,
    core::ComponentStatus,
    core::Endpoints,
    core::LimitRange,
    core::PersistentVolume,
    core::PersistentVolumeClaim,
    core::ResourceQuota,
    apps::ControllerRevision,
    autoscaling_v1::HorizontalPodAutoscaler,
    autoscaling_v1::Scale,
    autoscaling_v2::HorizontalPodAutoscaler,
    policy::PodDisruptionBudget,
    policy::Eviction,
    networking::Ingress,
    networking::IngressClass,
    networking::NetworkPolicy,
    discovery::EndpointSlice,
    rbac::ClusterRole,
    rbac::ClusterRoleBinding,
    rbac::Role,
    rbac::RoleBinding,
    storage::CSIDriver,
    storage::CSINode,
    storage::CSIStorageCapacity,
    storage::StorageClass,
    storage::VolumeAttachment,
    scheduling::PriorityClass,
    events::Event,
    node::RuntimeClass,
    certificates::CertificateSigningRequest,
    admissionregistration::MutatingWebhookConfiguration,
    admissionregistration::ValidatingWebhookConfiguration,
    admissionregistration::ValidatingAdmissionPolicy,
    admissionregistration::ValidatingAdmissionPolicyBinding,
    authn::SelfSubjectReview,
    authn::TokenReview,
    authz::LocalSubjectAccessReview,
    authz::SelfSubjectAccessReview,
    authz::SelfSubjectRulesReview,
    authz::SubjectAccessReview,
);
