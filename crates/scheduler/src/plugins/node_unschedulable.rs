//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods that tolerate
//! `node.kubernetes.io/unschedulable:NoSchedule`.

use crate::cache::NodeInfo;
use crate::framework::{CycleState, FilterPlugin, PodInfo, Status};
use crate::plugins::taint_toleration::tolerates_parts;

pub const NAME: &str = "NodeUnschedulable";
pub const REASON: &str = "node(s) were unschedulable";
const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
        if !node.unschedulable() {
            return Ok(());
        }
        let tolerations = pod.pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
        if tolerations.iter().any(|t| tolerates_parts(t, TAINT_KEY, "", "NoSchedule")) {
            return Ok(());
        }
        Err(Status::unresolvable(NAME, REASON))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn table() {
        let cases = [
            ("schedulable node", json!({}), json!({}), true),
            ("cordoned node", json!({"spec": {"unschedulable": true}}), json!({}), false),
            ("explicitly schedulable", json!({"spec": {"unschedulable": false}}), json!({}), true),
            (
                "tolerated",
                json!({"spec": {"unschedulable": true}}),
                json!({"tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]}),
                true,
            ),
            (
                "tolerates everything",
                json!({"spec": {"unschedulable": true}}),
                json!({"tolerations": [{"operator": "Exists"}]}),
                true,
            ),
            (
                "wrong effect",
                json!({"spec": {"unschedulable": true}}),
                json!({"tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoExecute"}]}),
                false,
            ),
        ];
        for (name, n, p, ok) in cases {
            let got = NodeUnschedulable.filter(&CycleState::default(), &pod(p), &node("n", n));
            assert_eq!(got.is_ok(), ok, "{name}");
            if let Err(s) = got {
                assert_eq!(s.reasons, [REASON]);
            }
        }
    }
}
