//! NodeResourcesBalancedAllocation: prefers nodes where cpu and memory would be used in
//! similar proportions after placing the pod.

use crate::cache::NodeInfo;
use crate::framework::{CycleState, MAX_NODE_SCORE, PodInfo, ScorePlugin};

pub const NAME: &str = "NodeResourcesBalancedAllocation";

pub struct BalancedAllocation;

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let fraction =
            |requested: i64, capacity: i64| (capacity > 0).then(|| (requested as f64 / capacity as f64).min(1.0));
        let cpu = fraction(node.requested.milli_cpu + pod.requests.milli_cpu, node.allocatable.milli_cpu);
        let memory = fraction(node.requested.memory + pod.requests.memory, node.allocatable.memory);
        // The standard deviation of two fractions; none or one deviates by nothing.
        let std_dev = match (cpu, memory) {
            (Some(a), Some(b)) => (a - b).abs() / 2.0,
            _ => 0.0,
        };
        ((1.0 - std_dev) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod_requesting};
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn table() {
        let cases = [
            // 1 of 2 cpu and 2 of 4Gi: perfectly balanced.
            ("balanced", "1", "2Gi", None, 100),
            // 2 of 2 cpu, 0 memory: fractions 1 and 0.
            ("cpu only", "2", "0", None, 50),
            // 1 of 2 cpu and 1 of 4Gi: 0.5 and 0.25.
            ("skewed", "1", "1Gi", None, 87),
            // existing pod 1 cpu; new pod 0 cpu 2Gi: 0.5 and 0.5.
            ("with existing pod", "0", "2Gi", Some(("1", "0")), 100),
        ];
        for (name, cpu, mem, existing, want) in cases {
            let mut n = node("n", json!({}));
            if let Some((c, m)) = existing {
                n.add_pod(Arc::new(pod_requesting("e", c, m)));
            }
            assert_eq!(
                BalancedAllocation.score(&CycleState::default(), &pod_requesting("p", cpu, mem), &n),
                want,
                "{name}"
            );
        }
    }
}
