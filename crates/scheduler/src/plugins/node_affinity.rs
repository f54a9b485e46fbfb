//! NodeAffinity: `spec.nodeSelector` and required node affinity filter nodes; preferred node
//! affinity terms add their weights to a node's score.

use crate::cache::NodeInfo;
use crate::framework::{CycleState, FilterPlugin, PodInfo, PreFilter, ScorePlugin, Status, default_normalize};
use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PreferredSchedulingTerm};
use std::collections::BTreeMap;

pub const NAME: &str = "NodeAffinity";
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeAffinity;

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let [bound] = values else { return false };
            let (Some(v), Ok(bound)) = (value.and_then(|v| v.parse::<i64>().ok()), bound.parse::<i64>()) else {
                return false;
            };
            if op == "Gt" { v > bound } else { v < bound }
        }
        _ => false,
    }
}

/// Whether a node selector term matches a node with these labels and this name. A term
/// with no requirements matches nothing, as upstream.
pub fn term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, Some(node_name))
        })
}

fn required(pod: &PodInfo) -> Option<&NodeSelector> {
    let spec = pod.pod.spec.as_ref()?;
    spec.affinity.as_ref()?.node_affinity.as_ref()?.required_during_scheduling_ignored_during_execution.as_ref()
}

fn preferred(pod: &PodInfo) -> &[PreferredSchedulingTerm] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

fn labels(node: &NodeInfo) -> Option<&BTreeMap<String, String>> {
    node.node.as_ref().and_then(|n| n.metadata.labels.as_ref())
}

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, pod: &PodInfo, _nodes: &[&NodeInfo], _state: &mut CycleState) -> PreFilter {
        let selector = pod.pod.spec.as_ref().and_then(|s| s.node_selector.as_ref());
        if selector.is_none_or(|s| s.is_empty()) && required(pod).is_none() { PreFilter::Skip } else { PreFilter::Run }
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
        let Some(spec) = pod.pod.spec.as_ref() else { return Ok(()) };
        let empty = BTreeMap::new();
        let node_labels = labels(node).unwrap_or(&empty);
        if let Some(selector) = &spec.node_selector
            && !selector.iter().all(|(k, v)| node_labels.get(k) == Some(v))
        {
            return Err(Status::unresolvable(NAME, REASON));
        }
        if let Some(required) = required(pod)
            && !required.node_selector_terms.iter().any(|t| term_matches(t, node_labels, node.name()))
        {
            return Err(Status::unresolvable(NAME, REASON));
        }
        Ok(())
    }
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(
        &self,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        _all_nodes: &[&NodeInfo],
        _state: &mut CycleState,
    ) -> Option<i64> {
        preferred(pod).is_empty().then_some(0)
    }

    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let preferred = preferred(pod);
        if preferred.is_empty() {
            return 0;
        }
        let empty = BTreeMap::new();
        let node_labels = labels(node).unwrap_or(&empty);
        preferred
            .iter()
            .filter(|p| p.weight != 0 && term_matches(&p.preference, node_labels, node.name()))
            .map(|p| i64::from(p.weight))
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod};
    use serde_json::{Value, json};

    fn required(exprs: Value) -> Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": exprs}]}}}})
    }

    #[test]
    fn filter_table() {
        let n = || node("n1", json!({"metadata": {"labels": {"zone": "a", "gen": "5", "disk": "ssd"}}}));
        let cases = [
            ("no constraints", json!({}), true),
            ("nodeSelector matches", json!({"nodeSelector": {"zone": "a"}}), true),
            ("nodeSelector differs", json!({"nodeSelector": {"zone": "b"}}), false),
            ("nodeSelector missing label", json!({"nodeSelector": {"gpu": "yes"}}), false),
            ("In", required(json!([{"key": "zone", "operator": "In", "values": ["a", "b"]}])), true),
            ("In misses", required(json!([{"key": "zone", "operator": "In", "values": ["b"]}])), false),
            ("NotIn", required(json!([{"key": "zone", "operator": "NotIn", "values": ["b"]}])), true),
            ("NotIn on absent label", required(json!([{"key": "x", "operator": "NotIn", "values": ["b"]}])), true),
            ("NotIn misses", required(json!([{"key": "zone", "operator": "NotIn", "values": ["a"]}])), false),
            ("Exists", required(json!([{"key": "disk", "operator": "Exists"}])), true),
            ("Exists misses", required(json!([{"key": "gpu", "operator": "Exists"}])), false),
            ("DoesNotExist", required(json!([{"key": "gpu", "operator": "DoesNotExist"}])), true),
            ("DoesNotExist misses", required(json!([{"key": "disk", "operator": "DoesNotExist"}])), false),
            ("Gt", required(json!([{"key": "gen", "operator": "Gt", "values": ["4"]}])), true),
            ("Gt equal", required(json!([{"key": "gen", "operator": "Gt", "values": ["5"]}])), false),
            ("Lt", required(json!([{"key": "gen", "operator": "Lt", "values": ["6"]}])), true),
            ("Lt on non-number", required(json!([{"key": "zone", "operator": "Lt", "values": ["6"]}])), false),
            (
                "expressions are ANDed",
                required(
                    json!([{"key": "zone", "operator": "In", "values": ["a"]}, {"key": "gpu", "operator": "Exists"}]),
                ),
                false,
            ),
            (
                "terms are ORed",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                ]}}}}),
                true,
            ),
            (
                "empty term matches nothing",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}}),
                false,
            ),
            (
                "matchFields on the name",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}}),
                true,
            ),
            (
                "matchFields on another name",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}}),
                false,
            ),
            (
                "nodeSelector and affinity must both match",
                {
                    let mut v = required(json!([{"key": "zone", "operator": "In", "values": ["a"]}]));
                    v["nodeSelector"] = json!({"disk": "hdd"});
                    v
                },
                false,
            ),
        ];
        for (name, p, ok) in cases {
            let got = NodeAffinity.filter(&CycleState::default(), &pod(p), &n());
            assert_eq!(got.is_ok(), ok, "{name}");
            if let Err(s) = got {
                assert_eq!(s.reasons, [REASON]);
            }
        }
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let p = pod(json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 30, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}},
        ]}}}));
        let nodes = [
            node("a", json!({"metadata": {"labels": {"zone": "a"}}})),
            node("b", json!({"metadata": {"labels": {"zone": "a", "disk": "ssd"}}})),
            node("c", json!({})),
        ];
        let mut scores: Vec<i64> = nodes.iter().map(|n| NodeAffinity.score(&CycleState::default(), &p, n)).collect();
        assert_eq!(scores, [10, 40, 0]);
        NodeAffinity.normalize(&mut scores);
        assert_eq!(scores, [25, 100, 0]);
    }
}
