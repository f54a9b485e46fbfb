//! InterPodAffinity (required terms only): the pod's affinity terms need a matching pod in
//! the node's topology domain, its anti-affinity terms need none there, and existing pods'
//! anti-affinity terms keep it out of their domains.

use crate::cache::NodeInfo;
use crate::framework::{CycleState, FilterPlugin, PodInfo, Status};
use crate::selectors::term_selects;
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};
use std::collections::HashMap;

pub const NAME: &str = "InterPodAffinity";
pub const REASON_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";

pub struct InterPodAffinity;

/// (topology key, value) → number of pods.
type TopologyCounts = HashMap<(String, String), usize>;

#[derive(Default)]
struct PreFilterState {
    /// Domains that existing pods' anti-affinity rules close to the incoming pod.
    existing_anti: TopologyCounts,
    /// Domains holding pods that match all of the incoming pod's affinity terms.
    affinity: TopologyCounts,
    /// Domains holding pods that match one of the incoming pod's anti-affinity terms.
    anti: TopologyCounts,
}

fn required_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

fn required_anti_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("")
}

fn bump(counts: &mut TopologyCounts, node: &NodeInfo, key: &str) {
    if let Some(value) = node.label(key) {
        *counts.entry((key.to_string(), value.to_string())).or_default() += 1;
    }
}

fn has(counts: &TopologyCounts, node: &NodeInfo, key: &str) -> bool {
    node.label(key).is_some_and(|v| counts.get(&(key.to_string(), v.to_string())).is_some_and(|n| *n > 0))
}

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, pod: &PodInfo, nodes: &[&NodeInfo], state: &mut CycleState) {
        let affinity = required_affinity(&pod.pod);
        let anti = required_anti_affinity(&pod.pod);
        let own_ns = namespace(&pod.pod);
        let mut s = PreFilterState::default();
        for node in nodes {
            if affinity.is_empty() && anti.is_empty() && node.pods_with_required_anti_affinity == 0 {
                continue;
            }
            for existing in node.pods.values() {
                if existing.has_required_anti_affinity {
                    let ens = namespace(&existing.pod);
                    for term in required_anti_affinity(&existing.pod) {
                        if term_selects(term, ens, &pod.pod) {
                            bump(&mut s.existing_anti, node, &term.topology_key);
                        }
                    }
                }
                if !affinity.is_empty() && affinity.iter().all(|t| term_selects(t, own_ns, &existing.pod)) {
                    for term in affinity {
                        bump(&mut s.affinity, node, &term.topology_key);
                    }
                }
                for term in anti {
                    if term_selects(term, own_ns, &existing.pod) {
                        bump(&mut s.anti, node, &term.topology_key);
                    }
                }
            }
        }
        state.insert(NAME, Box::new(s));
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
        let Some(s) = state.get(NAME).and_then(|b| b.downcast_ref::<PreFilterState>()) else { return Ok(()) };
        if s.existing_anti.keys().any(|(k, v)| node.label(k) == Some(v.as_str())) {
            return Err(Status::unschedulable(NAME, REASON_EXISTING_ANTI_AFFINITY));
        }
        let affinity = required_affinity(&pod.pod);
        if !affinity.is_empty() && !affinity.iter().all(|t| has(&s.affinity, node, &t.topology_key)) {
            // The first pod of a group that selects itself may go anywhere the keys exist.
            let own_ns = namespace(&pod.pod);
            let first_of_group = s.affinity.is_empty()
                && affinity.iter().all(|t| term_selects(t, own_ns, &pod.pod) && node.label(&t.topology_key).is_some());
            if !first_of_group {
                return Err(Status::unresolvable(NAME, REASON_AFFINITY));
            }
        }
        if required_anti_affinity(&pod.pod).iter().any(|t| has(&s.anti, node, &t.topology_key)) {
            return Err(Status::unschedulable(NAME, REASON_ANTI_AFFINITY));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::node;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn pod(name: &str, labels: Value, affinity: Value) -> PodInfo {
        PodInfo::new(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "labels": labels},
                "spec": {"containers": [{"name": "c"}], "affinity": affinity},
            }))
            .unwrap(),
        ))
    }

    fn term(app: &str) -> Value {
        json!([{"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "zone"}])
    }

    /// Two zones: a (n1 with a "db" pod, n2) and b (n3); n4 has no zone label.
    fn cluster(existing: PodInfo) -> Vec<NodeInfo> {
        let mut n1 = node("n1", json!({"metadata": {"labels": {"zone": "a"}}}));
        n1.add_pod(Arc::new(existing));
        vec![
            n1,
            node("n2", json!({"metadata": {"labels": {"zone": "a"}}})),
            node("n3", json!({"metadata": {"labels": {"zone": "b"}}})),
            node("n4", json!({})),
        ]
    }

    fn run(incoming: &PodInfo, nodes: &[NodeInfo]) -> Vec<Option<&'static str>> {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut state = CycleState::new();
        InterPodAffinity.pre_filter(incoming, &refs, &mut state);
        nodes
            .iter()
            .map(|n| {
                InterPodAffinity.filter(&state, incoming, n).err().map(|s| match s.reasons[0].as_str() {
                    REASON_EXISTING_ANTI_AFFINITY => "existing",
                    REASON_AFFINITY => "affinity",
                    REASON_ANTI_AFFINITY => "anti",
                    _ => "other",
                })
            })
            .collect()
    }

    #[test]
    fn table() {
        let db = || pod("db", json!({"app": "db"}), json!(null));
        let cases = [
            ("no terms", db(), pod("p", json!({}), json!(null)), vec![None, None, None, None]),
            (
                "affinity to db: zone a only",
                db(),
                pod(
                    "p",
                    json!({}),
                    json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("db")}}),
                ),
                vec![None, None, Some("affinity"), Some("affinity")],
            ),
            (
                "anti-affinity to db: not zone a",
                db(),
                pod(
                    "p",
                    json!({}),
                    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("db")}}),
                ),
                vec![Some("anti"), Some("anti"), None, None],
            ),
            (
                "existing pod repels web pods",
                pod(
                    "db",
                    json!({"app": "db"}),
                    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("web")}}),
                ),
                pod("p", json!({"app": "web"}), json!(null)),
                vec![Some("existing"), Some("existing"), None, None],
            ),
            (
                "first pod of a self-affine group goes where the key exists",
                db(),
                pod(
                    "p",
                    json!({"app": "cache"}),
                    json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("cache")}}),
                ),
                vec![None, None, None, Some("affinity")],
            ),
        ];
        for (name, existing, incoming, want) in cases {
            assert_eq!(run(&incoming, &cluster(existing)), want, "{name}");
        }
    }

    #[test]
    fn other_namespaces_are_not_matched_by_default() {
        let mut other = node("n1", json!({"metadata": {"labels": {"zone": "a"}}}));
        let db: Pod =
            serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "other", "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c"}]}}))
            .unwrap();
        other.add_pod(Arc::new(PodInfo::new(Arc::new(db))));
        let p = pod(
            "p",
            json!({}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("db")}}),
        );
        assert_eq!(run(&p, &[other]), vec![None]);
    }
}
