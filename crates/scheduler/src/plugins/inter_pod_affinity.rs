//! InterPodAffinity. Filter (required terms): the pod's affinity terms need a matching pod in
//! the node's topology domain, its anti-affinity terms need none there, and existing pods'
//! anti-affinity terms keep it out of their domains. Score (preferred terms, both ways):
//! see the `ScorePlugin` impl.

use crate::cache::NodeInfo;
use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, PodInfo, PreFilter, ScorePlugin, Status, affinity_counts,
    namespace_labels,
};
use crate::selectors::term_selects;
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use std::collections::HashMap;

pub const NAME: &str = "InterPodAffinity";
pub const REASON_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";

pub struct InterPodAffinity;

/// Topology key → value → number of pods (only values counted at least once).
type TopologyCounts = HashMap<String, HashMap<String, usize>>;

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

/// Adds `amount` to the entry of the node's domain of `key`, if the node has the key.
fn add<T: Default + std::ops::AddAssign>(
    counts: &mut HashMap<String, HashMap<String, T>>,
    node: &NodeInfo,
    key: &str,
    amount: T,
) {
    let Some(value) = node.label(key) else { return };
    let values = match counts.get_mut(key) {
        Some(values) => values,
        None => counts.entry(key.to_string()).or_default(),
    };
    match values.get_mut(value) {
        Some(n) => *n += amount,
        None => {
            values.insert(value.to_string(), amount);
        }
    }
}

fn bump(counts: &mut TopologyCounts, node: &NodeInfo, key: &str) {
    add(counts, node, key, 1);
}

fn has(counts: &TopologyCounts, node: &NodeInfo, key: &str) -> bool {
    node.label(key).is_some_and(|v| counts.get(key).and_then(|values| values.get(v)).is_some_and(|n| *n > 0))
}

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, pod: &PodInfo, nodes: &[&NodeInfo], state: &mut CycleState) -> PreFilter {
        let affinity = required_affinity(&pod.pod);
        let anti = required_anti_affinity(&pod.pod);
        if affinity.is_empty() && anti.is_empty() {
            let repelling = match affinity_counts(state) {
                Some(c) => c.required_anti_affinity > 0,
                None => nodes.iter().any(|n| n.pods_with_required_anti_affinity > 0),
            };
            if !repelling {
                return PreFilter::Skip;
            }
        }
        let namespaces = namespace_labels(state);
        let ns_labels = namespaces.as_ref();
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
                        if term_selects(term, ens, &pod.pod, ns_labels) {
                            bump(&mut s.existing_anti, node, &term.topology_key);
                        }
                    }
                }
                if !affinity.is_empty() && affinity.iter().all(|t| term_selects(t, own_ns, &existing.pod, ns_labels)) {
                    for term in affinity {
                        bump(&mut s.affinity, node, &term.topology_key);
                    }
                }
                for term in anti {
                    if term_selects(term, own_ns, &existing.pod, ns_labels) {
                        bump(&mut s.anti, node, &term.topology_key);
                    }
                }
            }
        }
        let accepts_all = affinity.is_empty() && s.existing_anti.is_empty() && s.anti.is_empty();
        state.insert(NAME, Box::new(s));
        if accepts_all { PreFilter::Skip } else { PreFilter::Run }
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
        let Some(s) = state.read::<PreFilterState>(NAME) else { return Ok(()) };
        if s.existing_anti.iter().any(|(k, values)| node.label(k).is_some_and(|v| values.contains_key(v))) {
            return Err(Status::unschedulable(NAME, REASON_EXISTING_ANTI_AFFINITY));
        }
        let affinity = required_affinity(&pod.pod);
        if !affinity.is_empty() && !affinity.iter().all(|t| has(&s.affinity, node, &t.topology_key)) {
            // The first pod of a group that selects itself may go anywhere the keys exist.
            let own_ns = namespace(&pod.pod);
            let namespaces = namespace_labels(state);
            let ns_labels = namespaces.as_ref();
            let first_of_group = s.affinity.is_empty()
                && affinity
                    .iter()
                    .all(|t| term_selects(t, own_ns, &pod.pod, ns_labels) && node.label(&t.topology_key).is_some());
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

/// Upstream's weight for an existing pod's *required* affinity term that selects the
/// incoming pod, when scoring.
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

fn preferred_affinity(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

fn preferred_anti_affinity(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

/// Topology key → value → summed term weight, for scoring.
#[derive(Default)]
struct PreScoreState {
    domains: HashMap<String, HashMap<String, i64>>,
}

fn add_weight(domains: &mut HashMap<String, HashMap<String, i64>>, node: &NodeInfo, key: &str, weight: i64) {
    if weight != 0 {
        add(domains, node, key, weight);
    }
}

/// Scoring: every existing pod adds to the domains (of each term's topology key) of the node
/// it runs on — the incoming pod's preferred affinity terms that select it add their weight,
/// its preferred anti-affinity terms subtract theirs; the existing pod's own required
/// affinity terms that select the incoming pod add `HARD_POD_AFFINITY_WEIGHT`, its preferred
/// affinity terms add and its preferred anti-affinity terms subtract their weight. A node
/// scores the sum over the domains it belongs to; scores are then scaled min..max → 0..100.
impl ScorePlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(
        &self,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        all_nodes: &[&NodeInfo],
        state: &mut CycleState,
    ) -> Option<i64> {
        let affinity = preferred_affinity(&pod.pod);
        let anti = preferred_anti_affinity(&pod.pod);
        let own_terms = !affinity.is_empty() || !anti.is_empty();
        if !own_terms {
            let attracting = match affinity_counts(state) {
                Some(c) => c.affinity_terms > 0,
                None => all_nodes.iter().any(|n| n.pods_with_affinity_terms > 0),
            };
            if !attracting {
                return Some(0);
            }
        }
        let namespaces = namespace_labels(state);
        let ns_labels = namespaces.as_ref();
        let own_ns = namespace(&pod.pod);
        let mut s = PreScoreState::default();
        for node in all_nodes {
            if !own_terms && node.pods_with_affinity_terms == 0 {
                continue;
            }
            for existing in node.pods.values() {
                for w in affinity {
                    if term_selects(&w.pod_affinity_term, own_ns, &existing.pod, ns_labels) {
                        add_weight(&mut s.domains, node, &w.pod_affinity_term.topology_key, i64::from(w.weight));
                    }
                }
                for w in anti {
                    if term_selects(&w.pod_affinity_term, own_ns, &existing.pod, ns_labels) {
                        add_weight(&mut s.domains, node, &w.pod_affinity_term.topology_key, -i64::from(w.weight));
                    }
                }
                if !existing.has_pod_affinity_terms {
                    continue;
                }
                let ens = namespace(&existing.pod);
                for term in required_affinity(&existing.pod) {
                    if term_selects(term, ens, &pod.pod, ns_labels) {
                        add_weight(&mut s.domains, node, &term.topology_key, HARD_POD_AFFINITY_WEIGHT);
                    }
                }
                for w in preferred_affinity(&existing.pod) {
                    if term_selects(&w.pod_affinity_term, ens, &pod.pod, ns_labels) {
                        add_weight(&mut s.domains, node, &w.pod_affinity_term.topology_key, i64::from(w.weight));
                    }
                }
                for w in preferred_anti_affinity(&existing.pod) {
                    if term_selects(&w.pod_affinity_term, ens, &pod.pod, ns_labels) {
                        add_weight(&mut s.domains, node, &w.pod_affinity_term.topology_key, -i64::from(w.weight));
                    }
                }
            }
        }
        if s.domains.is_empty() {
            return Some(0);
        }
        state.insert(NAME, Box::new(s));
        None
    }

    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>(NAME) else { return 0 };
        s.domains.iter().filter_map(|(k, values)| values.get(node.label(k)?)).sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        min_max_normalize(scores);
    }
}

/// Scales scores linearly so the lowest becomes 0 and the highest 100 (all 0 when equal).
pub(crate) fn min_max_normalize(scores: &mut [i64]) {
    let (Some(min), Some(max)) = (scores.iter().copied().min(), scores.iter().copied().max()) else { return };
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 { MAX_NODE_SCORE * (*s - min) / diff } else { 0 };
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
        let _ = InterPodAffinity.pre_filter(incoming, &refs, &mut state);
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

    fn weighted(app: &str, weight: i32) -> Value {
        json!([{"weight": weight, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "zone"}}])
    }

    fn scores(incoming: &PodInfo, nodes: &[NodeInfo]) -> Vec<i64> {
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut state = CycleState::new();
        let _ = ScorePlugin::pre_score(&InterPodAffinity, incoming, &refs, &refs, &mut state);
        let mut s: Vec<i64> =
            nodes.iter().map(|n| ScorePlugin::score(&InterPodAffinity, &state, incoming, n)).collect();
        ScorePlugin::normalize(&InterPodAffinity, &mut s);
        s
    }

    #[test]
    fn score_table() {
        let db = || pod("db", json!({"app": "db"}), json!(null));
        // Nodes: n1 (zone a, holds the existing pod), n2 (zone a), n3 (zone b), n4 (no zone).
        let cases = [
            ("no terms: all equal", db(), pod("p", json!({}), json!(null)), vec![0, 0, 0, 0]),
            (
                "preferring db pods: zone a wins",
                db(),
                pod(
                    "p",
                    json!({}),
                    json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted("db", 10)}}),
                ),
                vec![100, 100, 0, 0],
            ),
            (
                "avoiding db pods: zone a loses",
                db(),
                pod(
                    "p",
                    json!({}),
                    json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted("db", 10)}}),
                ),
                vec![0, 0, 100, 100],
            ),
            (
                "existing pod requires web pods near it: hard weight 1 pulls toward zone a",
                pod(
                    "db",
                    json!({"app": "db"}),
                    json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("web")}}),
                ),
                pod("p", json!({"app": "web"}), json!(null)),
                vec![100, 100, 0, 0],
            ),
            (
                "existing pod prefers web pods away",
                pod(
                    "db",
                    json!({"app": "db"}),
                    json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted("web", 5)}}),
                ),
                pod("p", json!({"app": "web"}), json!(null)),
                vec![0, 0, 100, 100],
            ),
            (
                "terms selecting nothing: all equal",
                db(),
                pod(
                    "p",
                    json!({}),
                    json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted("x", 10)}}),
                ),
                vec![0, 0, 0, 0],
            ),
        ];
        for (name, existing, incoming, want) in cases {
            assert_eq!(scores(&incoming, &cluster(existing)), want, "{name}");
        }
    }

    #[test]
    fn preferring_zone_a_pods_lands_in_zone_a() {
        use crate::algorithm::Framework;
        use crate::cache::Cache;
        use rand::SeedableRng;
        let mut cache = Cache::new();
        for (n, zone) in [("n1", "a"), ("n2", "b"), ("n3", "b"), ("n4", "b")] {
            cache.upsert_node(
                serde_json::from_value(json!({"metadata": {"name": n, "labels": {"zone": zone}},
                    "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}))
                .unwrap(),
            );
        }
        cache.assume(Arc::new(pod("db", json!({"app": "db"}), json!(null))), "n1");
        let f = Framework::default();
        let p = pod(
            "p",
            json!({}),
            json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted("db", 100)}}),
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..10 {
            assert_eq!(f.schedule(&p, &cache, &mut rng).unwrap(), "n1");
        }
    }
}
