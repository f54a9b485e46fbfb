//! NodeResourcesFit: the pod's requests must fit in what the node has left (cpu, memory,
//! ephemeral storage, extended resources, pod count). Scores with the LeastAllocated
//! strategy: nodes with more cpu and memory left score higher.

use crate::cache::NodeInfo;
use crate::framework::{Code, CycleState, FilterPlugin, MAX_NODE_SCORE, PodInfo, ScorePlugin, Status};

pub const NAME: &str = "NodeResourcesFit";

pub struct NodeResourcesFit;

/// A resource the pod needs more of than the node has left.
#[derive(Debug, PartialEq, Eq)]
pub struct Insufficient {
    pub reason: String,
    /// The node could not fit the pod even empty.
    pub unresolvable: bool,
}

/// Every resource the node lacks for the pod, in upstream's order.
pub fn insufficient_resources(pod: &PodInfo, node: &NodeInfo) -> Vec<Insufficient> {
    let mut out = Vec::new();
    if node.pods.len() as i64 + 1 > node.allocatable.allowed_pods {
        out.push(Insufficient { reason: "Too many pods".into(), unresolvable: false });
    }
    let (req, alloc, used) = (&pod.requests, &node.allocatable, &node.requested);
    let mut check = |name: &str, want: i64, have: i64, taken: i64| {
        if want > 0 && want > have.saturating_sub(taken) {
            out.push(Insufficient { reason: format!("Insufficient {name}"), unresolvable: want > have });
        }
    };
    check("cpu", req.milli_cpu, alloc.milli_cpu, used.milli_cpu);
    check("memory", req.memory, alloc.memory, used.memory);
    check("ephemeral-storage", req.ephemeral_storage, alloc.ephemeral_storage, used.ephemeral_storage);
    for (name, want) in &req.scalar {
        let have = alloc.scalar.get(name).copied().unwrap_or(0);
        let taken = used.scalar.get(name).copied().unwrap_or(0);
        check(name, *want, have, taken);
    }
    out
}

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
        let missing = insufficient_resources(pod, node);
        if missing.is_empty() {
            return Ok(());
        }
        let code = if missing.iter().any(|m| m.unresolvable) {
            Code::UnschedulableAndUnresolvable
        } else {
            Code::Unschedulable
        };
        Err(Status { code, reasons: missing.into_iter().map(|m| m.reason).collect(), plugin: NAME })
    }
}

/// The LeastAllocated share of one resource: the free fraction after placing the pod.
fn least_allocated(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

impl ScorePlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        // cpu and memory, weight 1 each; requests with scoring defaults.
        let cpu = least_allocated(
            node.non_zero_requested.milli_cpu + pod.non_zero_requests.milli_cpu,
            node.allocatable.milli_cpu,
        );
        let memory =
            least_allocated(node.non_zero_requested.memory + pod.non_zero_requests.memory, node.allocatable.memory);
        (cpu + memory) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod, pod_requesting};
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn filter_table() {
        let busy = || {
            let mut n = node(
                "n",
                json!({"status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "2", "example.com/gpu": "2", "ephemeral-storage": "10Gi"}}}),
            );
            n.add_pod(Arc::new(pod_requesting("existing", "1500m", "1Gi")));
            n
        };
        type Case = (&'static str, serde_json::Value, Option<(Vec<&'static str>, Code)>);
        let cases: Vec<Case> = vec![
            (
                "fits",
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}),
                None,
            ),
            ("no requests", json!({}), None),
            (
                "too much cpu",
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "501m"}}}]}),
                Some((vec!["Insufficient cpu"], Code::Unschedulable)),
            ),
            (
                "more cpu than the node has",
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3"}}}]}),
                Some((vec!["Insufficient cpu"], Code::UnschedulableAndUnresolvable)),
            ),
            (
                "cpu and memory",
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "3.5Gi"}}}]}),
                Some((vec!["Insufficient cpu", "Insufficient memory"], Code::Unschedulable)),
            ),
            (
                "init containers count as a maximum",
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "250m"}}}],
                       "initContainers": [{"name": "i1", "resources": {"requests": {"cpu": "500m"}}}, {"name": "i2", "resources": {"requests": {"cpu": "500m"}}}]}),
                None,
            ),
            (
                "overhead counts",
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}], "overhead": {"cpu": "1m"}}),
                Some((vec!["Insufficient cpu"], Code::Unschedulable)),
            ),
            (
                "extended resource fits",
                json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "2"}, "limits": {"example.com/gpu": "2"}}}]}),
                None,
            ),
            (
                "extended resource missing",
                json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/fpga": "1"}, "limits": {"example.com/fpga": "1"}}}]}),
                Some((vec!["Insufficient example.com/fpga"], Code::UnschedulableAndUnresolvable)),
            ),
            (
                "ephemeral storage",
                json!({"containers": [{"name": "c", "resources": {"requests": {"ephemeral-storage": "11Gi"}}}]}),
                Some((vec!["Insufficient ephemeral-storage"], Code::UnschedulableAndUnresolvable)),
            ),
        ];
        for (name, p, want) in cases {
            let got =
                NodeResourcesFit.filter(&CycleState::default(), &pod(p), &busy()).err().map(|s| (s.reasons, s.code));
            let want = want.map(|(r, c)| (r.into_iter().map(String::from).collect::<Vec<_>>(), c));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn pod_count_is_limited() {
        let mut n = node("n", json!({"status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "1"}}}));
        assert!(NodeResourcesFit.filter(&CycleState::default(), &pod(json!({})), &n).is_ok());
        n.add_pod(Arc::new(pod_requesting("a", "0", "0")));
        let s = NodeResourcesFit.filter(&CycleState::default(), &pod(json!({})), &n).unwrap_err();
        assert_eq!((s.reasons, s.code), (vec!["Too many pods".to_string()], Code::Unschedulable));
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes() {
        let empty = node("a", json!({}));
        let mut half = node("b", json!({}));
        half.add_pod(Arc::new(pod_requesting("x", "1", "2Gi")));
        let p = pod_requesting("p", "500m", "1Gi");
        // empty: cpu (2000-500)/2000 = 75, memory (4-1)/4 = 75.
        assert_eq!(NodeResourcesFit.score(&CycleState::default(), &p, &empty), 75);
        // half: cpu (2000-1500)/2000 = 25, memory (4-3)/4 = 25.
        assert_eq!(NodeResourcesFit.score(&CycleState::default(), &p, &half), 25);
        // Best-effort pods count 100m / 200Mi.
        let be = pod(json!({}));
        assert_eq!(NodeResourcesFit.score(&CycleState::default(), &be, &empty), (95 + 95) / 2);
    }
}
