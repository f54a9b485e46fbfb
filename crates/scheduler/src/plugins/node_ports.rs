//! NodePorts: a pod's host ports must be free on the node (same port and protocol clash
//! when the host IPs are equal or either is 0.0.0.0).

use crate::cache::NodeInfo;
use crate::framework::{CycleState, FilterPlugin, PodInfo, PreFilter, Status};

pub const NAME: &str = "NodePorts";
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

impl FilterPlugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, pod: &PodInfo, _nodes: &[&NodeInfo], _state: &mut CycleState) -> PreFilter {
        if pod.host_ports.is_empty() { PreFilter::Skip } else { PreFilter::Run }
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
        let clash = pod.host_ports.iter().any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if clash { Err(Status::unschedulable(NAME, REASON)) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod};
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn ports(list: Value) -> Value {
        json!({"containers": [{"name": "c", "ports": list}]})
    }

    #[test]
    fn table() {
        let mut n = node("n", json!({}));
        n.add_pod(Arc::new(pod(ports(json!([
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"},
        ])))));
        let cases = [
            ("no host ports", ports(json!([{"containerPort": 80}])), true),
            ("same port and protocol", ports(json!([{"containerPort": 81, "hostPort": 8080}])), false),
            (
                "same port, other protocol",
                ports(json!([{"containerPort": 81, "hostPort": 8080, "protocol": "UDP"}])),
                true,
            ),
            (
                "specific IP against wildcard",
                ports(json!([{"containerPort": 81, "hostPort": 8080, "hostIP": "10.0.0.2"}])),
                false,
            ),
            (
                "other IP",
                ports(json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.2"}])),
                true,
            ),
            (
                "same IP",
                ports(json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}])),
                false,
            ),
            (
                "wildcard against specific IP",
                ports(json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}])),
                false,
            ),
            ("other port", ports(json!([{"containerPort": 80, "hostPort": 9090}])), true),
        ];
        for (name, p, ok) in cases {
            assert_eq!(NodePorts.filter(&CycleState::default(), &pod(p), &n).is_ok(), ok, "{name}");
        }
    }
}
