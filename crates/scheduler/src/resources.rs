//! Resource arithmetic: node allocatable, pod requests (containers summed, init containers as
//! a maximum, sidecars, overhead) and the "non-zero" requests used for scoring.

use crate::quantity::{milli_value, value};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// CPU assumed for a container without a cpu request when scoring (upstream's 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container without a memory request when scoring (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler tracks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Only meaningful for node allocatable (`pods`).
    pub allowed_pods: i64,
    /// Extended resources (`example.com/gpu`), hugepages and the like, in whole units.
    pub scalar: BTreeMap<String, i64>,
}

/// Whether a resource name is tracked as a scalar (extended, hugepages, attachable volumes).
pub fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/") && !name.contains(".kubernetes.io/"))
}

impl Resource {
    /// Reads a `ResourceList` (requests, limits, allocatable).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resource {
        let mut r = Resource::default();
        for (name, q) in list {
            match name.as_str() {
                "cpu" => r.milli_cpu = milli_value(q),
                "memory" => r.memory = value(q),
                "ephemeral-storage" => r.ephemeral_storage = value(q),
                "pods" => r.allowed_pods = value(q),
                other if is_scalar_resource(other) => {
                    r.scalar.insert(other.to_string(), value(q));
                }
                _ => {}
            }
        }
        r
    }

    /// Adds `other` to this amount.
    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(other.ephemeral_storage);
        self.allowed_pods = self.allowed_pods.saturating_add(other.allowed_pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = e.saturating_add(*v);
        }
    }

    /// Subtracts `other` from this amount.
    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(other.ephemeral_storage);
        self.allowed_pods = self.allowed_pods.saturating_sub(other.allowed_pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = e.saturating_sub(*v);
        }
    }

    /// Raises each resource to at least `other`'s amount.
    pub fn set_max(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.allowed_pods = self.allowed_pods.max(other.allowed_pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

/// A container's requests; a resource with a limit but no request counts its limit, as the
/// API server's defaulting would have set it.
fn container_requests(c: &Container) -> Resource {
    let Some(res) = &c.resources else { return Resource::default() };
    let mut list = res.limits.clone().unwrap_or_default();
    if let Some(requests) = &res.requests {
        for (k, v) in requests {
            list.insert(k.clone(), v.clone());
        }
    }
    Resource::from_list(&list)
}

/// Like [`container_requests`] but with upstream's defaults for missing cpu and memory, as
/// the scoring plugins see a container.
fn container_non_zero_requests(c: &Container) -> Resource {
    let mut r = container_requests(c);
    let has = |name: &str| {
        c.resources.as_ref().is_some_and(|res| {
            res.requests.as_ref().is_some_and(|m| m.contains_key(name))
                || res.limits.as_ref().is_some_and(|m| m.contains_key(name))
        })
    };
    if !has("cpu") {
        r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
    }
    if !has("memory") {
        r.memory = DEFAULT_MEMORY_REQUEST;
    }
    r
}

fn aggregate(pod: &Pod, per_container: impl Fn(&Container) -> Resource) -> Resource {
    let Some(spec) = &pod.spec else { return Resource::default() };
    let mut total = Resource::default();
    for c in &spec.containers {
        total.add(&per_container(c));
    }
    // Init containers run one after another, so only the largest counts; restartable init
    // containers (sidecars) keep running and add to everything after them.
    let mut sidecars = Resource::default();
    let mut init_peak = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let r = per_container(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            init_peak.set_max(&sidecars);
        } else {
            let mut during = r;
            during.add(&sidecars);
            init_peak.set_max(&during);
        }
    }
    total.add(&sidecars);
    total.set_max(&init_peak);
    if let Some(overhead) = &spec.overhead {
        total.add(&Resource::from_list(overhead));
    }
    total
}

/// What a pod requests from its node.
pub fn pod_requests(pod: &Pod) -> Resource {
    aggregate(pod, container_requests)
}

/// A pod's requests with defaults for containers that request no cpu or memory (scoring).
pub fn pod_non_zero_requests(pod: &Pod) -> Resource {
    aggregate(pod, container_non_zero_requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn sums_containers_and_takes_init_maximum() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m", "example.com/gpu": "1"}}},
            ],
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "100Mi"}}},
                {"name": "i2", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}},
            ],
            "overhead": {"cpu": "10m"},
        }));
        let r = pod_requests(&p);
        assert_eq!(r.milli_cpu, 2010);
        assert_eq!(r.memory, 2 << 30);
        assert_eq!(r.scalar.get("example.com/gpu"), Some(&1));
    }

    #[test]
    fn sidecars_add_to_the_sum() {
        let p = pod(json!({
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "init", "resources": {"requests": {"cpu": "1"}}},
            ],
        }));
        // During init: sidecar 0.5 + init 1 = 1.5; afterwards 1 + 0.5 = 1.5.
        assert_eq!(pod_requests(&p).milli_cpu, 1500);
    }

    #[test]
    fn limits_stand_in_for_missing_requests_and_non_zero_defaults_apply() {
        let p = pod(json!({"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "b"},
        ]}));
        let r = pod_requests(&p);
        assert_eq!((r.milli_cpu, r.memory), (1000, 1 << 30));
        let nz = pod_non_zero_requests(&p);
        assert_eq!((nz.milli_cpu, nz.memory), (1100, (1 << 30) + DEFAULT_MEMORY_REQUEST));
    }
}
