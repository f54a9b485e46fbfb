//! Filter and score plugins, one per file, each with its upstream `NAME`.

pub mod balanced_allocation;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

use crate::framework::{FilterPlugin, ScorePlugin};

/// The default filters, cheapest and most decisive first (upstream's order).
pub fn default_filters() -> Vec<Box<dyn FilterPlugin>> {
    vec![
        Box::new(node_unschedulable::NodeUnschedulable),
        Box::new(node_name::NodeName),
        Box::new(taint_toleration::TaintToleration),
        Box::new(node_affinity::NodeAffinity),
        Box::new(node_ports::NodePorts),
        Box::new(node_resources_fit::NodeResourcesFit),
        Box::new(pod_topology_spread::PodTopologySpread),
        Box::new(inter_pod_affinity::InterPodAffinity),
    ]
}

/// The default scorers with upstream's default weights.
pub fn default_scorers() -> Vec<(Box<dyn ScorePlugin>, i64)> {
    vec![
        (Box::new(taint_toleration::TaintToleration) as Box<dyn ScorePlugin>, 3),
        (Box::new(node_affinity::NodeAffinity), 2),
        (Box::new(node_resources_fit::NodeResourcesFit), 1),
        (Box::new(balanced_allocation::BalancedAllocation), 1),
        (Box::new(image_locality::ImageLocality), 1),
        (Box::new(inter_pod_affinity::InterPodAffinity), 2),
        (Box::new(pod_topology_spread::PodTopologySpread), 2),
    ]
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::cache::NodeInfo;
    use crate::framework::PodInfo;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{Value, json};
    use std::sync::Arc;

    /// A node from JSON `metadata`/`spec`/`status` fragments, with 2 cpu / 4Gi / 110 pods
    /// allocatable unless `status` says otherwise.
    pub fn node(name: &str, extra: Value) -> NodeInfo {
        let mut v = json!({
            "metadata": {"name": name},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}},
        });
        merge(&mut v, extra);
        NodeInfo::new(serde_json::from_value::<Node>(v).unwrap())
    }

    /// A pod from a JSON `spec` fragment (a container `c` is added if none is given).
    pub fn pod(spec: Value) -> PodInfo {
        let mut v = json!({"metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": {"containers": [{"name": "c"}]}});
        merge(&mut v["spec"], spec);
        PodInfo::new(Arc::new(serde_json::from_value::<Pod>(v).unwrap()))
    }

    /// A pod named `name` requesting `cpu` and `memory`.
    pub fn pod_requesting(name: &str, cpu: &str, memory: &str) -> PodInfo {
        let v = json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        });
        PodInfo::new(Arc::new(serde_json::from_value::<Pod>(v).unwrap()))
    }

    fn merge(base: &mut Value, extra: Value) {
        match (base, extra) {
            (Value::Object(b), Value::Object(e)) => {
                for (k, v) in e {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, e) => *b = e,
        }
    }
}
