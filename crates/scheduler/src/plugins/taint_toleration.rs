//! TaintToleration: filters out nodes with an untolerated `NoSchedule`/`NoExecute` taint and
//! prefers nodes with fewer untolerated `PreferNoSchedule` taints.

use crate::cache::NodeInfo;
use crate::framework::{CycleState, FilterPlugin, PodInfo, ScorePlugin, Status, default_normalize};
use k8s_openapi::api::core::v1::{Taint, Toleration};

pub const NAME: &str = "TaintToleration";

pub struct TaintToleration;

/// Whether `toleration` tolerates `taint` (upstream's matching: effect, key, operator).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    tolerates_parts(toleration, &taint.key, taint.value.as_deref().unwrap_or(""), &taint.effect)
}

/// [`tolerates`] for a taint given by its key, value and effect.
pub fn tolerates_parts(toleration: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    if let Some(e) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && e != effect
    {
        return false;
    }
    if let Some(k) = toleration.key.as_deref().filter(|k| !k.is_empty())
        && k != key
    {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => toleration.value.as_deref().unwrap_or("") == value,
        _ => false,
    }
}

fn node_taints(node: &NodeInfo) -> &[Taint] {
    node.node.as_ref().and_then(|n| n.spec.as_ref()).and_then(|s| s.taints.as_deref()).unwrap_or_default()
}

fn pod_tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default()
}

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
        if !node.has_hard_taints() {
            return Ok(());
        }
        let tolerations = pod_tolerations(pod);
        let untolerated = node_taints(node)
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)));
        match untolerated {
            None => Ok(()),
            Some(t) => Err(Status::unresolvable(
                NAME,
                format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value.as_deref().unwrap_or("")),
            )),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(
        &self,
        _pod: &PodInfo,
        nodes: &[&NodeInfo],
        _all_nodes: &[&NodeInfo],
        _state: &mut CycleState,
    ) -> Option<i64> {
        (!nodes.iter().any(|n| n.has_soft_taints())).then_some(0)
    }

    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        if !node.has_soft_taints() {
            return 0;
        }
        let tolerations = pod_tolerations(pod)
            .iter()
            .filter(|t| matches!(t.effect.as_deref(), None | Some("") | Some("PreferNoSchedule")));
        node_taints(node)
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|t| !tolerations.clone().any(|tol| tolerates(tol, t)))
            .count() as i64
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn filter_table() {
        let taint =
            |effect: &str| json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": effect}]}});
        let cases = [
            ("no taints", json!({}), json!({}), None),
            (
                "NoSchedule untolerated",
                taint("NoSchedule"),
                json!({}),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                "NoExecute untolerated",
                taint("NoExecute"),
                json!({}),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            ("PreferNoSchedule is not filtered", taint("PreferNoSchedule"), json!({}), None),
            (
                "tolerated by Equal",
                taint("NoSchedule"),
                json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
                None,
            ),
            (
                "Equal with another value",
                taint("NoSchedule"),
                json!({"tolerations": [{"key": "dedicated", "value": "cpu"}]}),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                "tolerated by Exists on the key",
                taint("NoExecute"),
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
                None,
            ),
            (
                "tolerated by Exists on everything",
                taint("NoSchedule"),
                json!({"tolerations": [{"operator": "Exists"}]}),
                None,
            ),
            (
                "toleration for another effect",
                taint("NoSchedule"),
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]}),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                "taint without value",
                json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
                json!({}),
                Some("node(s) had untolerated taint {k: }"),
            ),
        ];
        for (name, n, p, want) in cases {
            let got = TaintToleration.filter(&CycleState::default(), &pod(p), &node("n", n));
            assert_eq!(got.err().map(|s| s.reasons[0].clone()).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn scores_prefer_fewer_untolerated_soft_taints() {
        let soft = |keys: &[&str]| {
            let taints: Vec<_> = keys.iter().map(|k| json!({"key": k, "effect": "PreferNoSchedule"})).collect();
            node("n", json!({"spec": {"taints": taints}}))
        };
        let p = pod(json!({"tolerations": [{"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"}]}));
        let nodes = [soft(&[]), soft(&["a"]), soft(&["b"]), soft(&["b", "c"])];
        let mut scores: Vec<i64> = nodes.iter().map(|n| TaintToleration.score(&CycleState::default(), &p, n)).collect();
        assert_eq!(scores, [0, 0, 1, 2]);
        TaintToleration.normalize(&mut scores);
        assert_eq!(scores, [100, 100, 50, 0]);
    }
}
