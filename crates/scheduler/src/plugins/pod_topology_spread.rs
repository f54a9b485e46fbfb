//! PodTopologySpread (`whenUnsatisfiable: DoNotSchedule` constraints): placing the pod must
//! not make any domain exceed the global minimum of matching pods by more than `maxSkew`.
//! Scoring (`ScheduleAnyway` constraints) favours nodes in domains with fewer matching pods.
//!
//! A pod without constraints that a ReplicaSet, ReplicationController or StatefulSet owns is
//! scored with upstream's system defaults (`maxSkew: 3` over `kubernetes.io/hostname`,
//! `maxSkew: 5` over `topology.kubernetes.io/zone`, both `ScheduleAnyway`), so replicas spread
//! on their own; nodes lacking a key are then scored on the other constraint rather than zeroed.
//! Upstream selects the siblings with the selectors of the owner and of the Services selecting
//! the pod; here the siblings are the pods carrying all of the pod's labels, which is what those
//! selectors pick for controller-made replicas.

use crate::cache::NodeInfo;
use crate::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, PodInfo, PreFilter, ScorePlugin, Status};
use crate::plugins::{node_affinity::NodeAffinity, taint_toleration::TaintToleration};
use crate::selectors::selector_matches;
use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, HashMap};

pub const NAME: &str = "PodTopologySpread";
pub const REASON_SKEW: &str = "node(s) didn't match pod topology spread constraints";
pub const REASON_MISSING_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

pub struct PodTopologySpread;

struct Constraint {
    max_skew: i64,
    key: String,
    selector: Option<LabelSelector>,
    /// Matching pods per domain value of `key` (eligible nodes only).
    counts: HashMap<String, i64>,
    /// The smallest count over domains (0 when fewer than `minDomains` domains exist).
    min: i64,
    self_match: i64,
}

struct PreFilterState {
    constraints: Vec<Constraint>,
}

fn hard_constraints(pod: &PodInfo) -> Vec<&TopologySpreadConstraint> {
    let spec = pod.pod.spec.as_ref();
    spec.and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
        .collect()
}

/// The constraint's selector with `matchLabelKeys` folded in from the pod's own labels.
fn effective_selector(c: &TopologySpreadConstraint, pod_labels: &BTreeMap<String, String>) -> Option<LabelSelector> {
    let mut selector = c.label_selector.clone()?;
    for key in c.match_label_keys.iter().flatten() {
        if let Some(v) = pod_labels.get(key) {
            selector.match_labels.get_or_insert_default().insert(key.clone(), v.clone());
        }
    }
    Some(selector)
}

/// Upstream's default constraints (`defaultingType: System`) for a pod that has none, when a
/// controller owns it and it has labels to find its siblings by.
fn system_defaults(pod: &PodInfo) -> Vec<TopologySpreadConstraint> {
    let meta = &pod.pod.metadata;
    let has_own =
        pod.pod.spec.as_ref().and_then(|s| s.topology_spread_constraints.as_ref()).is_some_and(|c| !c.is_empty());
    let owned = meta.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true) && matches!(o.kind.as_str(), "ReplicaSet" | "ReplicationController" | "StatefulSet")
    });
    let Some(labels) = meta.labels.as_ref().filter(|l| !l.is_empty()) else { return Vec::new() };
    if has_own || !owned {
        return Vec::new();
    }
    let selector = LabelSelector { match_labels: Some(labels.clone()), ..Default::default() };
    [(HOSTNAME, 3), (ZONE, 5)]
        .into_iter()
        .map(|(key, skew)| TopologySpreadConstraint {
            max_skew: skew,
            topology_key: key.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(selector.clone()),
            ..Default::default()
        })
        .collect()
}

impl FilterPlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, pod: &PodInfo, nodes: &[&NodeInfo], state: &mut CycleState) -> PreFilter {
        let hard = hard_constraints(pod);
        if hard.is_empty() {
            return PreFilter::Skip;
        }
        let empty = BTreeMap::new();
        let own_labels = pod.pod.metadata.labels.as_ref().unwrap_or(&empty);
        let ns = pod.pod.metadata.namespace.as_deref().unwrap_or("");
        let scratch = CycleState::new();
        let mut constraints: Vec<Constraint> = hard
            .iter()
            .map(|c| {
                let selector = effective_selector(c, own_labels);
                let self_match = i64::from(selector.as_ref().is_some_and(|s| selector_matches(s, own_labels)));
                Constraint {
                    max_skew: i64::from(c.max_skew),
                    key: c.topology_key.clone(),
                    selector,
                    counts: HashMap::new(),
                    min: 0,
                    self_match,
                }
            })
            .collect();
        for node in nodes {
            if hard.iter().any(|c| node.label(&c.topology_key).is_none()) {
                continue;
            }
            for (c, spec) in constraints.iter_mut().zip(&hard) {
                let honour_affinity = spec.node_affinity_policy.as_deref().unwrap_or("Honor") == "Honor";
                let honour_taints = spec.node_taints_policy.as_deref().unwrap_or("Ignore") == "Honor";
                if (honour_affinity && NodeAffinity.filter(&scratch, pod, node).is_err())
                    || (honour_taints && TaintToleration.filter(&scratch, pod, node).is_err())
                {
                    continue;
                }
                let matching = count_matching(node, c.selector.as_ref(), ns);
                let value = node.label(&c.key).unwrap_or_default().to_string();
                *c.counts.entry(value).or_default() += matching;
            }
        }
        for (c, spec) in constraints.iter_mut().zip(&hard) {
            let min_domains = spec.min_domains.unwrap_or(1).max(1) as usize;
            c.min = if c.counts.len() < min_domains { 0 } else { c.counts.values().copied().min().unwrap_or(0) };
        }
        state.insert(NAME, Box::new(PreFilterState { constraints }));
        PreFilter::Run
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
        let Some(s) = state.read::<PreFilterState>(NAME) else { return Ok(()) };
        for c in &s.constraints {
            let Some(value) = node.label(&c.key) else {
                return Err(Status::unresolvable(NAME, REASON_MISSING_LABEL));
            };
            let count = c.counts.get(value).copied().unwrap_or(0);
            if count + c.self_match - c.min > c.max_skew {
                return Err(Status::unschedulable(NAME, REASON_SKEW));
            }
        }
        Ok(())
    }
}

/// Pods on `node` in namespace `ns`, not terminating, that `selector` selects.
fn count_matching(node: &NodeInfo, selector: Option<&LabelSelector>, ns: &str) -> i64 {
    let Some(sel) = selector else { return 0 };
    let empty = BTreeMap::new();
    node.pods
        .values()
        .filter(|p| p.pod.metadata.namespace.as_deref().unwrap_or("") == ns)
        .filter(|p| p.pod.metadata.deletion_timestamp.is_none())
        .filter(|p| selector_matches(sel, p.pod.metadata.labels.as_ref().unwrap_or(&empty)))
        .count() as i64
}

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

/// What scoring needs for one `ScheduleAnyway` constraint.
struct SoftConstraint {
    max_skew: i64,
    key: String,
    selector: Option<LabelSelector>,
    /// Matching pods per domain value of `key`, only for domains of scored nodes (per-node
    /// counts for the hostname key are taken at score time).
    counts: HashMap<String, i64>,
    /// `ln(domains + 2)`: spreads over more domains weigh counts more.
    weight: f64,
}

struct PreScoreState {
    constraints: Vec<SoftConstraint>,
    ns: String,
    /// The constraints are the system defaults: a node lacking a key skips that constraint.
    system_defaulted: bool,
}

/// A raw score meaning "node lacks a constraint's topology key": such nodes get 0.
const IGNORED: i64 = -1;

/// Scoring (`whenUnsatisfiable: ScheduleAnyway`): a node's raw score grows with the number
/// of matching pods already in its domains (weighted by `ln(domains + 2)`, plus `maxSkew - 1`
/// per constraint); normalisation inverts it so the emptiest domains score 100. Nodes lacking
/// a topology key score 0.
impl ScorePlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(
        &self,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        all_nodes: &[&NodeInfo],
        state: &mut CycleState,
    ) -> Option<i64> {
        let spec = pod.pod.spec.as_ref();
        let defaults = system_defaults(pod);
        let system_defaulted = !defaults.is_empty();
        let soft: Vec<&TopologySpreadConstraint> = if system_defaulted {
            defaults.iter().collect()
        } else {
            spec.and_then(|s| s.topology_spread_constraints.as_deref())
                .unwrap_or_default()
                .iter()
                .filter(|c| c.when_unsatisfiable == "ScheduleAnyway")
                .collect()
        };
        if soft.is_empty() {
            return Some(IGNORED);
        }
        let empty = BTreeMap::new();
        let own_labels = pod.pod.metadata.labels.as_ref().unwrap_or(&empty);
        let has_all_keys = |n: &NodeInfo| system_defaulted || soft.iter().all(|c| n.label(&c.topology_key).is_some());
        let scored: Vec<&NodeInfo> = nodes.iter().copied().filter(|n| has_all_keys(n)).collect();
        let mut constraints: Vec<SoftConstraint> = soft
            .iter()
            .map(|c| {
                let mut counts = HashMap::new();
                if c.topology_key != HOSTNAME {
                    for n in &scored {
                        if let Some(value) = n.label(&c.topology_key) {
                            counts.insert(value.to_string(), 0);
                        }
                    }
                }
                let domains = if c.topology_key == HOSTNAME { scored.len() } else { counts.len() };
                SoftConstraint {
                    max_skew: i64::from(c.max_skew),
                    key: c.topology_key.clone(),
                    selector: effective_selector(c, own_labels),
                    counts,
                    weight: ((domains + 2) as f64).ln(),
                }
            })
            .collect();
        let ns = pod.pod.metadata.namespace.as_deref().unwrap_or("").to_string();
        let scratch = CycleState::new();
        for node in all_nodes {
            if !has_all_keys(node) {
                continue;
            }
            for (c, spec) in constraints.iter_mut().zip(&soft) {
                if c.key == HOSTNAME {
                    continue;
                }
                let Some(slot) = node.label(&c.key).and_then(|v| c.counts.get_mut(v)) else { continue };
                let honour_affinity = spec.node_affinity_policy.as_deref().unwrap_or("Honor") == "Honor";
                let honour_taints = spec.node_taints_policy.as_deref().unwrap_or("Ignore") == "Honor";
                if (honour_affinity && NodeAffinity.filter(&scratch, pod, node).is_err())
                    || (honour_taints && TaintToleration.filter(&scratch, pod, node).is_err())
                {
                    continue;
                }
                *slot += count_matching(node, c.selector.as_ref(), &ns);
            }
        }
        state.insert(NAME, Box::new(PreScoreState { constraints, ns, system_defaulted }));
        None
    }

    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>(NAME) else { return IGNORED };
        let mut score = 0.0;
        for c in &s.constraints {
            let Some(value) = node.label(&c.key) else {
                if s.system_defaulted {
                    continue;
                }
                return IGNORED;
            };
            let count = if c.key == HOSTNAME {
                count_matching(node, c.selector.as_ref(), &s.ns)
            } else {
                c.counts.get(value).copied().unwrap_or(0)
            };
            score += count as f64 * c.weight + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    fn normalize(&self, scores: &mut [i64]) {
        let kept = scores.iter().copied().filter(|s| *s != IGNORED);
        let (min, max) = kept.fold((i64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
        for s in scores.iter_mut() {
            *s = if *s == IGNORED {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::node;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn pod(name: &str, spec_extra: Value) -> PodInfo {
        let mut spec = json!({"containers": [{"name": "c"}]});
        if let Some(m) = spec_extra.as_object() {
            spec.as_object_mut().unwrap().extend(m.clone());
        }
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": spec,
        }))
        .unwrap();
        PodInfo::new(Arc::new(p))
    }

    fn spread(max_skew: i32, extra: Value) -> Value {
        let mut c = json!({"maxSkew": max_skew, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}});
        c.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        json!({"topologySpreadConstraints": [c]})
    }

    /// Zone a: n1 with `in_a` web pods; zone b: n2 with `in_b`; n3 has no zone label.
    fn cluster(in_a: usize, in_b: usize) -> Vec<NodeInfo> {
        let mut n1 = node("n1", json!({"metadata": {"labels": {"zone": "a"}}}));
        let mut n2 = node("n2", json!({"metadata": {"labels": {"zone": "b"}}}));
        for i in 0..in_a {
            n1.add_pod(Arc::new(pod(&format!("a{i}"), json!({}))));
        }
        for i in 0..in_b {
            n2.add_pod(Arc::new(pod(&format!("b{i}"), json!({}))));
        }
        vec![n1, n2, node("n3", json!({}))]
    }

    fn run(incoming: &PodInfo, nodes: &[NodeInfo]) -> Vec<Option<String>> {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut state = CycleState::new();
        let _ = PodTopologySpread.pre_filter(incoming, &refs, &mut state);
        nodes
            .iter()
            .map(|n| PodTopologySpread.filter(&state, incoming, n).err().map(|s| s.reasons[0].clone()))
            .collect()
    }

    #[test]
    fn table() {
        let skew = Some(REASON_SKEW.to_string());
        let missing = Some(REASON_MISSING_LABEL.to_string());
        let cases = [
            ("no constraint", pod("p", json!({})), (1, 0), vec![None, None, None]),
            ("balanced: both zones fit", pod("p", spread(1, json!({}))), (1, 1), vec![None, None, missing.clone()]),
            ("zone a is ahead", pod("p", spread(1, json!({}))), (1, 0), vec![skew.clone(), None, missing.clone()]),
            ("larger skew allowed", pod("p", spread(2, json!({}))), (1, 0), vec![None, None, missing.clone()]),
            (
                "ScheduleAnyway is not a filter",
                pod(
                    "p",
                    json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}]}),
                ),
                (5, 0),
                vec![None, None, None],
            ),
            (
                "minDomains above the domain count makes the minimum 0",
                pod("p", spread(1, json!({"minDomains": 3}))),
                (1, 1),
                vec![skew.clone(), skew.clone(), missing.clone()],
            ),
        ];
        for (name, incoming, (a, b), want) in cases {
            assert_eq!(run(&incoming, &cluster(a, b)), want, "{name}");
        }
    }

    fn soft(max_skew: i32) -> Value {
        json!({"topologySpreadConstraints": [{"maxSkew": max_skew, "topologyKey": "zone",
            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}]})
    }

    fn scores(incoming: &PodInfo, nodes: &[NodeInfo]) -> Vec<i64> {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut state = CycleState::new();
        let _ = ScorePlugin::pre_score(&PodTopologySpread, incoming, &refs, &refs, &mut state);
        let mut s: Vec<i64> =
            nodes.iter().map(|n| ScorePlugin::score(&PodTopologySpread, &state, incoming, n)).collect();
        ScorePlugin::normalize(&PodTopologySpread, &mut s);
        s
    }

    #[test]
    fn score_table() {
        // n1 zone a, n2 zone b, n3 no zone (always 0 with a constraint).
        let cases = [
            ("no soft constraint: nothing to say", pod("p", json!({})), (3, 0), vec![0, 0, 0]),
            ("DoNotSchedule is not scored", pod("p", spread(1, json!({}))), (3, 0), vec![0, 0, 0]),
            ("empty cluster: both zones 100", pod("p", soft(1)), (0, 0), vec![100, 100, 0]),
            ("balanced: both zones 100", pod("p", soft(1)), (2, 2), vec![100, 100, 0]),
            // ln(4) ≈ 1.386: zone a raw 4, zone b raw 0 → a = 100 * (4 + 0 - 4) / 4 = 0.
            ("zone a ahead: zone b wins", pod("p", soft(1)), (3, 0), vec![0, 100, 0]),
            // raw: a = round(1.386 + 1) = 2, b = round(2 * 1.386 + 1) = 4 → a = 100 * (4+2-2)/4.
            ("larger maxSkew softens the gap", pod("p", soft(2)), (1, 2), vec![100, 50, 0]),
        ];
        for (name, incoming, (a, b), want) in cases {
            assert_eq!(scores(&incoming, &cluster(a, b)), want, "{name}");
        }
    }

    #[test]
    fn replicas_spread_by_system_defaults() {
        let owned = |name: &str, extra: Value| {
            let mut v = json!({"metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs", "controller": true}]},
                "spec": {"containers": [{"name": "c"}]}});
            if let Some(spec) = extra.as_object() {
                v["spec"].as_object_mut().unwrap().extend(spec.clone());
            }
            PodInfo::new(Arc::new(serde_json::from_value(v).unwrap()))
        };
        // Two hosts without zones: the one already running a sibling scores lower.
        let nodes: Vec<NodeInfo> = ["h1", "h2"]
            .iter()
            .map(|n| {
                NodeInfo::new(
                    serde_json::from_value(json!({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
                        "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}))
                    .unwrap(),
                )
            })
            .collect();
        let mut nodes = nodes;
        nodes[0].add_pod(Arc::new(owned("w0", json!({}))));
        let s = scores(&owned("w1", json!({})), &nodes);
        assert!(s[1] > s[0], "the empty host wins: {s:?}");
        // A pod with constraints of its own, or no controller, gets no defaults.
        assert_eq!(scores(&owned("w2", soft(1)), &nodes), vec![0, 0], "own constraints: zone key missing");
        assert_eq!(scores(&pod("loose", json!({})), &nodes), vec![0, 0]);
    }

    #[test]
    fn schedule_anyway_places_the_next_pod_in_the_emptier_zone() {
        use crate::algorithm::Framework;
        use crate::cache::Cache;
        use rand::SeedableRng;
        let mut cache = Cache::new();
        for (n, zone) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b")] {
            cache.upsert_node(
                serde_json::from_value(json!({"metadata": {"name": n, "labels": {"zone": zone}},
                    "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}))
                .unwrap(),
            );
        }
        cache.assume(Arc::new(pod("w0", json!({}))), "a1");
        cache.assume(Arc::new(pod("w1", json!({}))), "a2");
        let f = Framework::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..10 {
            let chosen = f.schedule(&pod("p", soft(1)), &cache, &mut rng).unwrap();
            assert!(chosen.starts_with('b'), "{chosen}");
        }
    }
}
