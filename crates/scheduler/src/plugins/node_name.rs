//! NodeName: a pod that names a node in `spec.nodeName` fits only that node. (Pods the
//! scheduler sees have no node name, but the filter keeps upstream's semantics.)

use crate::cache::NodeInfo;
use crate::framework::{CycleState, FilterPlugin, PodInfo, PreFilter, Status};

pub const NAME: &str = "NodeName";
pub const REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

fn wanted_node(pod: &PodInfo) -> Option<&str> {
    pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

impl FilterPlugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, pod: &PodInfo, _nodes: &[&NodeInfo], _state: &mut CycleState) -> PreFilter {
        match wanted_node(pod) {
            Some(_) => PreFilter::Run,
            None => PreFilter::Skip,
        }
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
        match wanted_node(pod) {
            Some(wanted) if wanted != node.name() => Err(Status::unresolvable(NAME, REASON)),
            _ => Ok(()),
        }
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
            ("no node name", json!({}), true),
            ("empty node name", json!({"nodeName": ""}), true),
            ("matching", json!({"nodeName": "n1"}), true),
            ("other node", json!({"nodeName": "n2"}), false),
        ];
        for (name, p, ok) in cases {
            assert_eq!(NodeName.filter(&CycleState::default(), &pod(p), &node("n1", json!({}))).is_ok(), ok, "{name}");
        }
    }
}
