//! Helpers shared by the workload controllers: label selector matching, pod state predicates
//! (active, ready, available), the ranking that picks which pods to delete first, controller
//! owner references and the reconcile error type.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// What a reconcile can fail with; the controller retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Anything else (an object that cannot be handled yet).
    #[error("{0}")]
    Other(String),
}

/// Whether `labels` satisfy `selector`. An empty selector matches everything, as upstream's
/// `LabelSelectorAsSelector` does; an unknown operator matches nothing.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &selector.match_labels
        && ml.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a selector selects nothing at all (`{}` selects everything for lists, but a
/// controller with an empty selector must not adopt every pod: upstream refuses it).
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector.match_expressions.as_ref().is_none_or(|m| m.is_empty())
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.iter().flatten().find(|r| r.controller == Some(true))
}

/// A controller owner reference to the object (`controller` and `blockOwnerDeletion` true).
pub fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether the pod counts towards a controller's replicas: not being deleted and not finished.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded") | Some("Failed"))
}

/// When the pod's `Ready` condition turned true, if it is true.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let cond = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| cond.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod is ready.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether the pod has been ready for at least `min_ready_seconds` at `now`. A ready condition
/// without a transition time counts as available only when `min_ready_seconds` is 0.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since.as_second() + i64::from(min_ready_seconds) <= now.as_second(),
    }
}

/// Seconds until a ready but not yet available pod becomes available, if any.
pub fn seconds_until_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<i64> {
    if min_ready_seconds <= 0 {
        return None;
    }
    let since = ready_since(pod)??;
    let left = since.as_second() + i64::from(min_ready_seconds) - now.as_second();
    (left > 0).then_some(left)
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Running") => 2,
        _ => 1, // Unknown
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t: &Time| t.0)
}

/// Orders pods so that the ones to delete first come first: a simplified version of upstream's
/// `ActivePods` ranking (without pod-deletion-cost and without the same-node co-location rank):
/// unscheduled before scheduled; Pending before Unknown before Running; not ready before ready;
/// ready for a shorter time before longer; more container restarts first; newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| {
            // Both ready (or both not): the one ready more recently goes first.
            let ra = ready_since(a).flatten();
            let rb = ready_since(b).flatten();
            match (ra, rb) {
                (Some(x), Some(y)) => y.cmp(&x),
                _ => Ordering::Equal,
            }
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| match (created(a), created(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
}

/// The pods to delete to go down by `count`: the first `count` in [`deletion_order`].
pub fn pods_to_delete<P: std::borrow::Borrow<Pod>>(pods: &[P], count: usize) -> Vec<&Pod> {
    let mut sorted: Vec<&Pod> = pods.iter().map(|p| p.borrow()).collect();
    sorted.sort_by(|a, b| deletion_order(a, b));
    sorted.truncate(count);
    sorted
}

/// Upstream's slow start: batch sizes 1, 2, 4, … (never more than what is left) whose sum is
/// `total`.
pub fn slow_start_batches(total: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut left, mut size) = (total, 1usize);
    while left > 0 {
        let n = size.min(left);
        out.push(n);
        left -= n;
        size *= 2;
    }
    out
}

/// The current time.
pub fn now() -> Timestamp {
    Timestamp::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn pod(name: &str, node: Option<&str>, phase: &str, ready_at: Option<i64>, created: i64) -> Pod {
        let conditions = ready_at.map(|t| {
            vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(ts(t))),
                ..Default::default()
            }]
        });
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(ts(created))),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: node.map(String::from), ..Default::default() }),
            status: Some(PodStatus { phase: Some(phase.into()), conditions, ..Default::default() }),
        }
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let mut sel = LabelSelector { match_labels: Some(labels.clone()), ..Default::default() };
        assert!(selector_matches(&sel, &labels));
        sel.match_expressions =
            Some(vec![LabelSelectorRequirement { key: "tier".into(), operator: "DoesNotExist".into(), values: None }]);
        assert!(selector_matches(&sel, &labels));
        sel.match_expressions.as_mut().unwrap()[0].operator = "Exists".into();
        assert!(!selector_matches(&sel, &labels));
        let sel = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "In".into(),
                values: Some(vec!["api".into(), "web".into()]),
            }]),
            ..Default::default()
        };
        assert!(selector_matches(&sel, &labels));
        assert!(!selector_matches(&sel, &BTreeMap::new()));
        assert!(selector_is_empty(&LabelSelector::default()));
    }

    #[test]
    fn deletion_prefers_unscheduled_then_pending_then_unready_then_newer() {
        let pods = vec![
            pod("ready-old", Some("n1"), "Running", Some(100), 10),
            pod("ready-new", Some("n1"), "Running", Some(200), 20),
            pod("running-unready", Some("n1"), "Running", None, 5),
            pod("pending", Some("n1"), "Pending", None, 1),
            pod("unscheduled", None, "Pending", None, 0),
        ];
        let order: Vec<_> = pods_to_delete(&pods, 5).iter().map(|p| p.metadata.name.clone().unwrap()).collect();
        assert_eq!(order, ["unscheduled", "pending", "running-unready", "ready-new", "ready-old"]);
        assert_eq!(pods_to_delete(&pods, 2).len(), 2);
        // Equal in every rank but age: the newer pod goes first.
        let twins = vec![pod("old", None, "Pending", None, 1), pod("new", None, "Pending", None, 2)];
        assert_eq!(pods_to_delete(&twins, 1)[0].metadata.name.as_deref(), Some("new"));
    }

    #[test]
    fn availability_follows_min_ready_seconds() {
        let p = pod("p", Some("n"), "Running", Some(100), 0);
        assert!(is_available(&p, 0, ts(100)));
        assert!(!is_available(&p, 10, ts(105)));
        assert_eq!(seconds_until_available(&p, 10, ts(105)), Some(5));
        assert!(is_available(&p, 10, ts(110)));
        assert!(!is_available(&pod("q", None, "Pending", None, 0), 0, ts(0)));
        let mut done = pod("d", None, "Succeeded", None, 0);
        assert!(!is_active(&done));
        done.status = None;
        assert!(is_active(&done));
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), [1]);
        assert_eq!(slow_start_batches(10), [1, 2, 4, 3]);
        assert_eq!(slow_start_batches(15), [1, 2, 4, 8]);
    }
}
