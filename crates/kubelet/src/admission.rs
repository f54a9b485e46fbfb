//! Admission on the node: before a pod's worker starts, the kubelet checks again that the pod
//! fits next to the pods it already runs (cpu, memory, ephemeral storage, extended resources,
//! pod count), as upstream's kubelet does, since the scheduler's view may be stale. A pod that
//! does not fit is failed with upstream's reason (`OutOfcpu`, `OutOfmemory`, `OutOfpods`, ...)
//! and message.

use k8s_openapi::api::core::v1::Pod;
use rudder_scheduler::resources::{Resource, pod_requests};

/// Why a pod was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// `OutOf<resource>`.
    pub reason: String,
    /// `Pod was rejected: Node didn't have enough resource: cpu, requested: 3000, used: 500, capacity: 2000`.
    pub message: String,
}

fn reject(name: &str, requested: i64, used: i64, capacity: i64) -> Rejection {
    Rejection {
        reason: format!("OutOf{name}"),
        message: format!(
            "Pod was rejected: Node didn't have enough resource: {name}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    }
}

/// Whether `pod` fits on a node with `allocatable` that already runs `admitted`.
pub fn admit<'a>(
    pod: &Pod,
    admitted: impl IntoIterator<Item = &'a Pod>,
    allocatable: &Resource,
) -> Result<(), Rejection> {
    let mut used = Resource::default();
    let mut count = 0i64;
    for p in admitted {
        used.add(&pod_requests(p));
        count += 1;
    }
    if allocatable.allowed_pods > 0 && count + 1 > allocatable.allowed_pods {
        return Err(reject("pods", 1, count, allocatable.allowed_pods));
    }
    let want = pod_requests(pod);
    let check = |name: &str, want: i64, used: i64, cap: i64| {
        if want > 0 && want + used > cap { Err(reject(name, want, used, cap)) } else { Ok(()) }
    };
    check("cpu", want.milli_cpu, used.milli_cpu, allocatable.milli_cpu)?;
    check("memory", want.memory, used.memory, allocatable.memory)?;
    check("ephemeral-storage", want.ephemeral_storage, used.ephemeral_storage, allocatable.ephemeral_storage)?;
    for (name, amount) in &want.scalar {
        let cap = allocatable.scalar.get(name).copied().unwrap_or(0);
        check(name, *amount, used.scalar.get(name).copied().unwrap_or(0), cap)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(cpu: &str, memory: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
        }))
        .unwrap()
    }

    fn node() -> Resource {
        Resource {
            milli_cpu: 2000,
            memory: 1 << 30,
            ephemeral_storage: 10 << 30,
            allowed_pods: 3,
            ..Default::default()
        }
    }

    #[test]
    fn pods_that_fit_are_admitted() {
        let a = pod("500m", "100Mi");
        assert!(admit(&pod("1", "200Mi"), [&a], &node()).is_ok());
    }

    #[test]
    fn too_much_cpu_is_refused_with_upstreams_message() {
        let a = pod("1500m", "100Mi");
        let err = admit(&pod("1", "1Mi"), [&a], &node()).unwrap_err();
        assert_eq!(err.reason, "OutOfcpu");
        assert_eq!(
            err.message,
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000"
        );
        let err = admit(&pod("1m", "2Gi"), [], &node()).unwrap_err();
        assert_eq!(err.reason, "OutOfmemory");
    }

    #[test]
    fn the_pod_count_is_capped() {
        let a = pod("1m", "1Mi");
        let err = admit(&pod("1m", "1Mi"), [&a, &a, &a], &node()).unwrap_err();
        assert_eq!(err.reason, "OutOfpods");
    }
}
