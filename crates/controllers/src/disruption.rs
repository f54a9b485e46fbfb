//! The disruption controller: keeps every PodDisruptionBudget's `status` current, as upstream's
//! `pkg/controller/disruption`, so that the eviction subresource (which reads and decrements
//! `status.disruptionsAllowed`) can decide whether a pod may go.
//!
//! For a budget, each reconcile reads the pods its selector picks in its namespace (a consistent
//! list from the API server) and works out
//!
//! - `expectedPods`: with `maxUnavailable` or a percentage `minAvailable`, the summed scale
//!   (`spec.replicas`) of the pods' controllers — a ReplicaSet owned by a Deployment counts as
//!   the Deployment, ReplicationControllers and StatefulSets count as themselves, pods without a
//!   controller are left out; with an integer `minAvailable`, the number of pods;
//! - `desiredHealthy`: `minAvailable`, or `expectedPods - maxUnavailable` (never below 0), with
//!   percentages of `expectedPods` rounded up;
//! - `currentHealthy`: Ready pods that are neither terminating nor listed in `disruptedPods`;
//! - `disruptionsAllowed`: `currentHealthy - desiredHealthy`, and 0 when that is negative or
//!   nothing is expected;
//! - `disruptedPods`: the evictions the API server recorded, minus those older than two minutes
//!   (the pod should have been deleted by then) and those whose pod is gone or terminating;
//! - `observedGeneration`, and the condition `DisruptionAllowed` (`SufficientPods` /
//!   `InsufficientPods`; `SyncFailed` with 0 disruptions when the scale cannot be worked out).
//!
//! The status is written with `PUT .../status` guarded by the `resourceVersion` read, so an
//! eviction that took a disruption meanwhile is never overwritten: the conflict makes the
//! reconcile start over from the newer budget.

use crate::Shutdown;
use crate::informers::Informers;
use crate::pods::{self, Error};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How long an eviction recorded in `disruptedPods` keeps its pod out of `currentHealthy`
/// before the controller gives up waiting for the deletion (upstream's `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// How often a settled budget is looked at again anyway (controllers' scale changes are not
/// watched; their pods' changes are).
const RESYNC: Duration = Duration::from_secs(30);

/// The condition type and its reasons, as upstream's `policy/v1` constants.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

struct Ctx {
    client: Client,
}

/// Runs the disruption controller until `shutdown` turns true.
pub async fn run(client: Client, informers: Informers, mut shutdown: Shutdown) -> anyhow::Result<()> {
    let controller = Controller::new(Api::<PodDisruptionBudget>::all(client.clone()), watcher::Config::default());
    let store = controller.store();
    let ctx = Arc::new(Ctx { client: client.clone() });
    controller
        .watches_shared_stream(informers.pods.objects(), move |pod: Arc<Pod>| {
            // Every budget of the pod's namespace whose selector picks it.
            let ns = pod.namespace().unwrap_or_default();
            store
                .state()
                .iter()
                .filter(|b| b.metadata.namespace.as_deref() == Some(ns.as_str()))
                .filter(|b| selects(b, pod.labels()))
                .map(|b| ObjectRef::from_obj(b.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "disruption controller reconcile");
            }
        })
        .await;
    Ok(())
}

fn error_policy(_pdb: Arc<PodDisruptionBudget>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    // A conflict means an eviction (or another writer) got there first: start over soon.
    let conflict = matches!(err, Error::Kube(kube::Error::Api(s)) if s.code == 409);
    tracing::debug!(error = %err, "disruption controller reconcile failed; retrying");
    Action::requeue(if conflict { Duration::from_millis(100) } else { Duration::from_secs(2) })
}

/// Whether the budget's selector picks pods with `labels`. In `policy/v1` an empty selector
/// picks every pod of the namespace; a missing one picks none.
pub fn selects(pdb: &PodDisruptionBudget, labels: &BTreeMap<String, String>) -> bool {
    pdb.spec.as_ref().and_then(|s| s.selector.as_ref()).is_some_and(|sel| pods::selector_matches(sel, labels))
}

/// Upstream's `GetScaledValueFromIntOrPercent`: an integer as is, or `N%` of `total`, rounded
/// up or down.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let Some(number) = s.strip_suffix('%') else {
                return Err(format!("invalid value for IntOrString: invalid type: string is not a percentage: {s:?}"));
            };
            let percent: i64 = number.parse().map_err(|_| format!("invalid value {s:?}: not a percentage"))?;
            let product = percent * i64::from(total);
            let v = if round_up { (product + 99).div_euclid(100) } else { product.div_euclid(100) };
            i32::try_from(v).map_err(|_| format!("invalid value {s:?}: out of range"))
        }
    }
}

/// What the budget's spec asks for, given how many pods are expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desired {
    pub expected: i32,
    pub desired_healthy: i32,
}

/// Whether the budget needs the pods' controllers' scale (everything but an integer
/// `minAvailable`).
pub fn needs_scale(pdb: &PodDisruptionBudget) -> bool {
    let Some(spec) = pdb.spec.as_ref() else { return false };
    spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrString::String(_)))
}

/// `expectedPods` and `desiredHealthy` from the spec, `pod_count` selected pods and (when
/// [`needs_scale`]) the controllers' summed `scale`.
pub fn desired(pdb: &PodDisruptionBudget, pod_count: i32, scale: i32) -> Result<Desired, String> {
    let Some(spec) = pdb.spec.as_ref() else { return Ok(Desired { expected: 0, desired_healthy: 0 }) };
    if let Some(max_unavailable) = &spec.max_unavailable {
        let unavailable = scaled_value(max_unavailable, scale, true)?;
        return Ok(Desired { expected: scale, desired_healthy: (scale - unavailable).max(0) });
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok(Desired { expected: pod_count, desired_healthy: *n }),
        Some(percent) => Ok(Desired { expected: scale, desired_healthy: scaled_value(percent, scale, true)? }),
        None => Ok(Desired { expected: 0, desired_healthy: 0 }),
    }
}

/// The entries of `disruptedPods` still standing at `now` (a selected pod that is not
/// terminating, evicted less than [`DELETION_TIMEOUT`] ago), and when the oldest of them
/// expires.
pub fn live_disruptions(
    pdb: &PodDisruptionBudget,
    selected: &[Pod],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let Some(recorded) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else { return (kept, None) };
    let timeout = i64::try_from(DELETION_TIMEOUT.as_secs()).unwrap_or(120);
    for pod in selected {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = recorded.get(&name) else { continue };
        let expires = at.0.as_second() + timeout;
        if expires < now.as_second() {
            tracing::info!(pod = %name, "an evicted pod was not deleted within 2 minutes; counting it again");
            continue;
        }
        let expires = Timestamp::from_second(expires).unwrap_or(now);
        if recheck.is_none_or(|r| expires < r) {
            recheck = Some(expires);
        }
        kept.insert(name, at.clone());
    }
    (kept, recheck)
}

/// Ready pods that are neither terminating nor recently evicted.
pub fn current_healthy(selected: &[Pod], disrupted: &BTreeMap<String, Time>) -> i32 {
    let n = selected
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .filter(|p| pods::is_ready(p))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Sets `DisruptionAllowed` in `conditions`, keeping its `lastTransitionTime` while its status
/// stays.
fn set_condition(conditions: &mut Vec<Condition>, status: &str, reason: &str, message: &str, generation: i64) {
    let now = Time(Timestamp::now());
    match conditions.iter_mut().find(|c| c.type_ == DISRUPTION_ALLOWED) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now;
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = Some(generation);
        }
        None => conditions.push(Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(generation),
            last_transition_time: now,
        }),
    }
}

/// The status the budget should have: counts as above, `observedGeneration` = `generation`,
/// and the condition.
pub fn next_status(
    pdb: &PodDisruptionBudget,
    desired: Desired,
    healthy: i32,
    disrupted: BTreeMap<String, Time>,
) -> PodDisruptionBudgetStatus {
    let generation = pdb.metadata.generation.unwrap_or(0);
    let mut allowed = healthy - desired.desired_healthy;
    if desired.expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let mut conditions = pdb.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    if allowed > 0 {
        set_condition(&mut conditions, "True", SUFFICIENT_PODS, "", generation);
    } else {
        set_condition(&mut conditions, "False", INSUFFICIENT_PODS, "", generation);
    }
    PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired.desired_healthy,
        expected_pods: desired.expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: Some(generation),
        conditions: Some(conditions),
    }
}

/// The fail-safe status when the expected scale cannot be worked out: no disruption allowed,
/// `SyncFailed` with the reason, the rest kept.
pub fn failed_status(pdb: &PodDisruptionBudget, message: &str) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let generation = pdb.metadata.generation.unwrap_or(0);
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(&mut conditions, "False", SYNC_FAILED, message, generation);
    status.conditions = Some(conditions);
    status
}

/// Whether two statuses differ in anything but condition timestamps.
fn status_changed(old: Option<&PodDisruptionBudgetStatus>, new: &PodDisruptionBudgetStatus) -> bool {
    let Some(old) = old else { return true };
    let strip = |s: &PodDisruptionBudgetStatus| {
        let mut s = s.clone();
        if s.disrupted_pods.as_ref().is_some_and(BTreeMap::is_empty) {
            s.disrupted_pods = None;
        }
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(old) != strip(new)
}

/// The group of an `apiVersion` (`""` for the core group).
fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// The scale of the controller `owner` names, as the controller that counts (a ReplicaSet's
/// own controlling Deployment), keyed by that controller's uid; `None` for kinds without a
/// known scale or a reference whose uid does not match.
async fn controller_scale(client: &Client, ns: &str, owner: &OwnerReference) -> Result<Option<(String, i32)>, Error> {
    let uid_matches =
        |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, uid: &str| meta.uid.as_deref() == Some(uid);
    match (group_of(&owner.api_version), owner.kind.as_str()) {
        ("apps", "ReplicaSet") => {
            let Some(rs) = Api::<ReplicaSet>::namespaced(client.clone(), ns).get_opt(&owner.name).await? else {
                return Ok(None);
            };
            if !uid_matches(&rs.metadata, &owner.uid) {
                return Ok(None);
            }
            if let Some(dref) = pods::controller_of(&rs.metadata)
                && group_of(&dref.api_version) == "apps"
                && dref.kind == "Deployment"
            {
                let deployment = Api::<Deployment>::namespaced(client.clone(), ns).get_opt(&dref.name).await?;
                if let Some(d) = deployment.filter(|d| uid_matches(&d.metadata, &dref.uid)) {
                    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    return Ok(Some((dref.uid.clone(), replicas)));
                }
            }
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            Ok(Some((owner.uid.clone(), replicas)))
        }
        ("apps", "StatefulSet") => {
            let set = Api::<StatefulSet>::namespaced(client.clone(), ns).get_opt(&owner.name).await?;
            Ok(set
                .filter(|s| uid_matches(&s.metadata, &owner.uid))
                .map(|s| (owner.uid.clone(), s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))))
        }
        ("", "ReplicationController") => {
            let rc = Api::<ReplicationController>::namespaced(client.clone(), ns).get_opt(&owner.name).await?;
            Ok(rc
                .filter(|r| uid_matches(&r.metadata, &owner.uid))
                .map(|r| (owner.uid.clone(), r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))))
        }
        _ => Ok(None),
    }
}

/// The summed scale of the selected pods' controllers, each counted once. Pods without a
/// controller are left out; a controller whose scale is unknown fails the sync.
async fn expected_scale(client: &Client, ns: &str, selected: &[Pod]) -> Result<Result<i32, String>, Error> {
    let mut seen_refs = HashSet::new();
    let mut counted = HashSet::new();
    let mut total = 0i32;
    let mut unmanaged = 0usize;
    for pod in selected {
        let Some(owner) = pods::controller_of(&pod.metadata) else {
            unmanaged += 1;
            continue;
        };
        if !seen_refs.insert(owner.uid.clone()) {
            continue;
        }
        match controller_scale(client, ns, owner).await? {
            Some((uid, replicas)) => {
                if counted.insert(uid) {
                    total = total.saturating_add(replicas);
                }
            }
            None => return Ok(Err(format!("found no controllers for pod {:?}", pod.name_any()))),
        }
    }
    if unmanaged > 0 {
        tracing::debug!(namespace = %ns, unmanaged, "pods without a controller are left out of a budget's expected count");
    }
    Ok(Ok(total))
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = pdb.namespace().unwrap_or_default();
    let name = pdb.name_any();
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let all = Api::<Pod>::namespaced(ctx.client.clone(), &ns).list(&ListParams::default()).await?.items;
    let selected: Vec<Pod> = all.into_iter().filter(|p| selects(&pdb, p.labels())).collect();
    let count = i32::try_from(selected.len()).unwrap_or(i32::MAX);
    let scale = if needs_scale(&pdb) { expected_scale(&ctx.client, &ns, &selected).await? } else { Ok(0) };
    let now = Timestamp::now();
    let (status, recheck) = match scale.and_then(|scale| desired(&pdb, count, scale)) {
        Ok(want) => {
            let (disrupted, recheck) = live_disruptions(&pdb, &selected, now);
            let healthy = current_healthy(&selected, &disrupted);
            (next_status(&pdb, want, healthy, disrupted), recheck)
        }
        Err(message) => {
            tracing::warn!(budget = %format!("{ns}/{name}"), "{message}");
            (failed_status(&pdb, &message), None)
        }
    };
    if status_changed(pdb.status.as_ref(), &status) {
        let mut next = (*pdb).clone();
        next.status = Some(status);
        // Guarded by the resourceVersion read: a 409 means an eviction took a disruption.
        api.replace_status(&name, &PostParams::default(), &next).await?;
    }
    let wait = recheck
        .map(|at| Duration::from_secs(u64::try_from(at.as_second() - now.as_second() + 1).unwrap_or(1)))
        .map_or(RESYNC, |d| d.min(RESYNC));
    Ok(Action::requeue(wait))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn budget(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta { name: Some("b".into()), generation: Some(2), ..Default::default() },
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                selector: Some(LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, ready: bool, terminating: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                deletion_timestamp: terminating.then(|| Time(Timestamp::now())),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn percentages_round_as_upstream() {
        let p = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(&IntOrString::Int(2), 10, true), Ok(2));
        assert_eq!(scaled_value(&p("50%"), 3, true), Ok(2));
        assert_eq!(scaled_value(&p("50%"), 3, false), Ok(1));
        assert_eq!(scaled_value(&p("10%"), 1, true), Ok(1));
        assert_eq!(scaled_value(&p("0%"), 7, true), Ok(0));
        assert_eq!(scaled_value(&p("100%"), 7, true), Ok(7));
        assert!(scaled_value(&p("half"), 4, true).is_err());
    }

    #[test]
    fn desired_from_min_available_or_max_unavailable() {
        let int_min = budget(Some(IntOrString::Int(2)), None);
        assert!(!needs_scale(&int_min));
        assert_eq!(desired(&int_min, 4, 0), Ok(Desired { expected: 4, desired_healthy: 2 }));
        let pct_min = budget(Some(IntOrString::String("50%".into())), None);
        assert!(needs_scale(&pct_min));
        assert_eq!(desired(&pct_min, 2, 5), Ok(Desired { expected: 5, desired_healthy: 3 }));
        let max = budget(None, Some(IntOrString::Int(1)));
        assert_eq!(desired(&max, 3, 3), Ok(Desired { expected: 3, desired_healthy: 2 }));
        // 34% of 3 rounds up to 2 unavailable.
        let pct_max = budget(None, Some(IntOrString::String("34%".into())));
        assert_eq!(desired(&pct_max, 3, 3), Ok(Desired { expected: 3, desired_healthy: 1 }));
        // Never below zero.
        let big_max = budget(None, Some(IntOrString::Int(9)));
        assert_eq!(desired(&big_max, 3, 3), Ok(Desired { expected: 3, desired_healthy: 0 }));
    }

    #[test]
    fn healthy_pods_exclude_unready_terminating_and_disrupted() {
        let pods = vec![pod("a", true, false), pod("b", true, false), pod("c", false, false), pod("d", true, true)];
        assert_eq!(current_healthy(&pods, &BTreeMap::new()), 2);
        let disrupted: BTreeMap<String, Time> = [("a".to_string(), Time(Timestamp::now()))].into();
        assert_eq!(current_healthy(&pods, &disrupted), 1);
    }

    #[test]
    fn disrupted_pods_are_pruned_when_old_gone_or_terminating() {
        let mut pdb = budget(Some(IntOrString::Int(1)), None);
        let now = ts(10_000);
        pdb.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some(
                [
                    ("fresh".to_string(), Time(ts(9_990))),
                    ("old".to_string(), Time(ts(10_000 - 121))),
                    ("gone".to_string(), Time(ts(9_995))),
                    ("leaving".to_string(), Time(ts(9_995))),
                ]
                .into(),
            ),
            ..Default::default()
        });
        let pods = vec![pod("fresh", true, false), pod("old", true, false), pod("leaving", true, true)];
        let (kept, recheck) = live_disruptions(&pdb, &pods, now);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["fresh"]);
        assert_eq!(recheck, Some(ts(9_990 + 120)));
        // The old one counts as healthy again.
        assert_eq!(current_healthy(&pods, &kept), 1);
    }

    #[test]
    fn status_allows_disruptions_only_above_desired() {
        let pdb = budget(Some(IntOrString::Int(2)), None);
        let s = next_status(&pdb, Desired { expected: 3, desired_healthy: 2 }, 3, BTreeMap::new());
        assert_eq!(s.disruptions_allowed, 1);
        assert_eq!(s.observed_generation, Some(2));
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            (DISRUPTION_ALLOWED, "True", SUFFICIENT_PODS)
        );
        let s = next_status(&pdb, Desired { expected: 3, desired_healthy: 2 }, 2, BTreeMap::new());
        assert_eq!(s.disruptions_allowed, 0);
        assert_eq!(s.conditions.as_ref().unwrap()[0].reason, INSUFFICIENT_PODS);
        // Nothing expected: nothing allowed, whatever is healthy.
        let s = next_status(&pdb, Desired { expected: 0, desired_healthy: 0 }, 0, BTreeMap::new());
        assert_eq!(s.disruptions_allowed, 0);
        assert!(s.disrupted_pods.is_none());
    }

    #[test]
    fn condition_keeps_its_transition_time_while_status_stays() {
        let mut pdb = budget(Some(IntOrString::Int(1)), None);
        let first = next_status(&pdb, Desired { expected: 3, desired_healthy: 1 }, 3, BTreeMap::new());
        let mut old = first.clone();
        old.conditions.as_mut().unwrap()[0].last_transition_time = Time(ts(5));
        pdb.status = Some(old.clone());
        let again = next_status(&pdb, Desired { expected: 3, desired_healthy: 1 }, 3, BTreeMap::new());
        assert_eq!(again.conditions.as_ref().unwrap()[0].last_transition_time, Time(ts(5)));
        assert!(!status_changed(Some(&old), &again));
        let fewer = next_status(&pdb, Desired { expected: 3, desired_healthy: 1 }, 2, BTreeMap::new());
        assert!(status_changed(Some(&old), &fewer));
        let down = next_status(&pdb, Desired { expected: 3, desired_healthy: 1 }, 1, BTreeMap::new());
        assert_ne!(down.conditions.as_ref().unwrap()[0].last_transition_time, Time(ts(5)));
    }

    #[test]
    fn failed_sync_allows_nothing() {
        let mut pdb = budget(None, Some(IntOrString::Int(1)));
        pdb.status = Some(PodDisruptionBudgetStatus { disruptions_allowed: 2, ..Default::default() });
        let s = failed_status(&pdb, "found no controllers for pod \"x\"");
        assert_eq!(s.disruptions_allowed, 0);
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", SYNC_FAILED));
    }

    #[test]
    fn empty_selector_picks_all_missing_picks_none() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "other".to_string())].into();
        let mut pdb = budget(Some(IntOrString::Int(1)), None);
        assert!(!selects(&pdb, &labels));
        pdb.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
        assert!(selects(&pdb, &labels));
        pdb.spec.as_mut().unwrap().selector = None;
        assert!(!selects(&pdb, &labels));
    }
}
