//! The Deployment controller, after upstream's `pkg/controller/deployment`: it manages replica
//! sets, one per distinct pod template, and rolls pods from the old ones to the new one.
//!
//! Each reconcile lists the namespace's replica sets from the API server (a consistent read, so
//! it sees its own earlier writes), claims them (adopts matching orphans, releases owned ones
//! that no longer match), then:
//!
//! - finds the *new* replica set: the one whose template equals the deployment's, ignoring the
//!   `pod-template-hash` label. If none exists it creates `<deployment>-<hash>` whose selector,
//!   template labels and own labels carry `pod-template-hash: <hash>`;
//! - keeps revisions: the new replica set gets `deployment.kubernetes.io/revision` = the highest
//!   old revision + 1 (so rolling back to an old template reuses that replica set and bumps its
//!   revision), and the deployment carries the same annotation;
//! - paused deployments, and scaling events (an active replica set whose
//!   `desired-replicas` annotation differs from `spec.replicas`), are only scaled, with
//!   upstream's proportional scaling across the active replica sets;
//! - `RollingUpdate` scales the new replica set up within `replicas + maxSurge` and old ones
//!   down while keeping `replicas - maxUnavailable` available (unhealthy old pods go first);
//!   `Recreate` scales all old replica sets to zero, waits until none of their pods runs
//!   (terminating ones included; polled every second), then scales up the new one;
//! - once complete, deletes old replica sets at zero beyond `revisionHistoryLimit`;
//! - writes status and the `Available` and `Progressing` conditions that `kubectl rollout
//!   status` reads, and requeues at the progress deadline.
//!
//! The template hash is FNV-32a over the template's JSON (labels without `pod-template-hash`,
//! maps in key order), then the collision count as 4 little-endian bytes when set, and the
//! decimal digits of the sum mapped through upstream's "safe" alphabet. Upstream hashes Go's
//! printed form of the struct instead, so the values differ from upstream's but are just as
//! stable: they depend only on the template.

use crate::Shutdown;
use crate::pods::{self, Error};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The revision annotation on deployments and their replica sets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// `spec.replicas` of the deployment when the replica set was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` of the deployment when the replica set was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label that tells replica sets of one deployment apart.
pub const HASH_LABEL: &str = "pod-template-hash";

/// Annotations of the deployment that are not copied to its replica sets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

struct Ctx {
    client: Client,
    recorder: Recorder,
}

/// Runs the controller until `shutdown` turns true.
pub async fn run(client: Client, mut shutdown: Shutdown) -> anyhow::Result<()> {
    let controller = Controller::new(Api::<Deployment>::all(client.clone()), watcher::Config::default());
    let store = controller.store();
    let recorder =
        Recorder::new(client.clone(), Reporter { controller: "deployment-controller".into(), instance: None });
    let ctx = Arc::new(Ctx { client: client.clone(), recorder });
    controller
        .watches(Api::<ReplicaSet>::all(client), watcher::Config::default(), move |rs: ReplicaSet| {
            let ns = rs.namespace().unwrap_or_default();
            if let Some(owner) = pods::controller_of(&rs.metadata) {
                if owner.kind == "Deployment" && owner.api_version.starts_with("apps/") {
                    return vec![ObjectRef::new(&owner.name).within(&ns)];
                }
                return Vec::new();
            }
            let labels = rs.labels();
            store
                .state()
                .iter()
                .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
                .filter(|d| {
                    d.spec.as_ref().is_some_and(|s| {
                        !pods::selector_is_empty(&s.selector) && pods::selector_matches(&s.selector, labels)
                    })
                })
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect()
        })
        .graceful_shutdown_on(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "deployment reconcile");
            }
        })
        .await;
    Ok(())
}

fn error_policy(_d: Arc<Deployment>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(error = %err, "deployment reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

// ---------------------------------------------------------------------------------------------
// Pure helpers: hashing, templates, revisions, surge and unavailability arithmetic.

/// FNV-32a of `bytes` continuing from `hash`.
fn fnv32a(mut hash: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Upstream's `rand.SafeEncodeString`: each character mapped into an alphabet without vowels
/// or look-alike characters, so the result never spells words.
fn safe_encode(s: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes().map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char).collect()
}

/// The template without the `pod-template-hash` label, as JSON (an emptied label map dropped).
fn template_json(template: &PodTemplateSpec) -> serde_json::Value {
    let mut t = template.clone();
    if let Some(meta) = t.metadata.as_mut()
        && let Some(labels) = meta.labels.as_mut()
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            meta.labels = None;
        }
    }
    let mut v = serde_json::to_value(&t).unwrap_or_default();
    prune_empty(&mut v);
    v
}

/// Drops empty objects, empty arrays and nulls, recursively. Go's semantic equality (which
/// upstream compares templates with) treats nil and empty slices and maps alike, and a struct
/// field has no "absent" state, so `resources: {}` from one client and no `resources` from
/// another describe the same template.
fn prune_empty(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !prune_empty(x));
            m.is_empty()
        }
        serde_json::Value::Array(a) => {
            for x in a.iter_mut() {
                prune_empty(x);
            }
            a.is_empty()
        }
        serde_json::Value::Null => true,
        _ => false,
    }
}

/// The `pod-template-hash` of a template (see the module docs).
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(&template_json(template)).unwrap_or_default();
    let mut h = fnv32a(0x811c_9dc5, &json);
    if let Some(c) = collision_count {
        h = fnv32a(h, &c.to_le_bytes());
    }
    safe_encode(&h.to_string())
}

/// Whether two templates are equal, ignoring the `pod-template-hash` label.
pub fn templates_equal(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_json(a) == template_json(b)
}

/// The revision annotation of an object (0 when missing or not a number).
pub fn revision(meta: &ObjectMeta) -> i64 {
    meta.annotations.as_ref().and_then(|a| a.get(REVISION)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// An int-or-percent against `total`; percentages round up or down as asked.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, Error> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| Error::Other(format!("invalid int or percentage: {s:?}")))?;
            let num = pct * i64::from(total);
            let out = if round_up { (num + 99).div_euclid(100) } else { num.div_euclid(100) };
            Ok(i32::try_from(out).unwrap_or(i32::MAX))
        }
    }
}

fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn is_rolling(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) != Some("Recreate")
}

/// `(maxSurge, maxUnavailable)` in pods: surge rounds up, unavailable down, and both zero
/// becomes an unavailability of 1 so a rollout can proceed (upstream's `ResolveFenceposts`).
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let desired = replicas(d);
    let ru = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let pct25 = IntOrString::String("25%".into());
    let surge = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&pct25);
    let unavail = ru.and_then(|r| r.max_unavailable.as_ref()).unwrap_or(&pct25);
    let surge = scaled_value(surge, desired, true).unwrap_or(0).max(0);
    let unavail = scaled_value(unavail, desired, false).unwrap_or(0).max(0);
    if surge == 0 && unavail == 0 { (0, 1) } else { (surge, unavail) }
}

/// The surge allowed (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if is_rolling(d) { fenceposts(d).0 } else { 0 }
}

/// The unavailability allowed (0 for Recreate or no replicas; never more than the replicas).
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

fn created(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first (ties by name).
fn by_age(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    created(a).cmp(&created(b)).then_with(|| a.name_any().cmp(&b.name_any()))
}

/// The replica count the new replica set should have now (upstream's `NewRSNewReplicas`);
/// `all` holds every replica set including `new` (if it exists yet).
pub fn new_rs_replicas(d: &Deployment, all: &[ReplicaSet], new: Option<&ReplicaSet>) -> i32 {
    let desired = replicas(d);
    if !is_rolling(d) {
        return desired;
    }
    let current_new = new.map_or(0, spec_replicas);
    let current: i32 = all.iter().map(spec_replicas).sum();
    let max_total = desired + max_surge(d);
    if current >= max_total {
        return current_new;
    }
    let up = (max_total - current).min((desired - current_new).max(0));
    current_new + up
}

/// How far old replica sets may go down now during a rolling update: `(index into old, new
/// replicas)` steps. Unhealthy old pods go first (oldest replica set first), then healthy ones
/// as long as `replicas - maxUnavailable` stay available.
pub fn old_scale_down_plan(d: &Deployment, old: &[ReplicaSet], new: Option<&ReplicaSet>) -> Vec<(usize, i32)> {
    let old_total: i32 = old.iter().map(spec_replicas).sum();
    if old_total == 0 {
        return Vec::new();
    }
    let all_total = old_total + new.map_or(0, spec_replicas);
    let min_available = replicas(d) - max_unavailable(d);
    let new_unavailable = new.map_or(0, |n| spec_replicas(n) - available(n)).max(0);
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..old.len()).collect();
    order.sort_by(|a, b| by_age(&old[*a], &old[*b]));
    let mut sizes: Vec<i32> = old.iter().map(spec_replicas).collect();
    let mut plan = BTreeMap::new();
    // Unhealthy pods first.
    let mut scaled = 0;
    for &i in &order {
        if scaled >= max_scaled_down {
            break;
        }
        let unhealthy = sizes[i] - available(&old[i]);
        if sizes[i] == 0 || unhealthy <= 0 {
            continue;
        }
        let down = unhealthy.min(max_scaled_down - scaled);
        sizes[i] -= down;
        scaled += down;
        plan.insert(i, sizes[i]);
    }
    // Then healthy ones, keeping the minimum available.
    let available_total: i32 = old.iter().map(available).sum::<i32>() + new.map_or(0, available);
    if available_total > min_available {
        let total = available_total - min_available;
        let mut done = 0;
        for &i in &order {
            if done >= total {
                break;
            }
            if sizes[i] == 0 {
                continue;
            }
            let down = sizes[i].min(total - done);
            sizes[i] -= down;
            done += down;
            plan.insert(i, sizes[i]);
        }
    }
    plan.into_iter().collect()
}

/// Upstream's proportional scaling: when `spec.replicas` changes while several replica sets
/// are active, spreads the difference in proportion to their sizes (using the `max-replicas`
/// annotation each was last scaled with), larger ones first, leftovers to the first.
/// `active` must hold only replica sets with replicas > 0. Returns the new size of each.
pub fn proportional_sizes(d: &Deployment, active: &[ReplicaSet]) -> Vec<i32> {
    let desired = replicas(d);
    let allowed = if desired > 0 { desired + max_surge(d) } else { 0 };
    let current: i32 = active.iter().map(spec_replicas).sum();
    let to_add = allowed - current;
    let mut sizes: Vec<i32> = active.iter().map(spec_replicas).collect();
    if to_add == 0 || active.is_empty() {
        return sizes;
    }
    let mut order: Vec<usize> = (0..active.len()).collect();
    order.sort_by(|&a, &b| {
        let size = spec_replicas(&active[b]).cmp(&spec_replicas(&active[a]));
        let age = by_age(&active[a], &active[b]);
        // Scaling up: larger first, newer first; scaling down: larger first, older first.
        size.then(if to_add > 0 { age.reverse() } else { age })
    });
    let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let mut added = 0;
    for &i in &order {
        let rs = &active[i];
        let cur = spec_replicas(rs);
        if cur == 0 || to_add == added {
            continue;
        }
        let fraction = if desired == 0 {
            -cur
        } else {
            let annotated = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(MAX_REPLICAS))
                .and_then(|v| v.parse::<i32>().ok())
                .unwrap_or(status_replicas);
            if annotated <= 0 {
                0
            } else {
                let size = (f64::from(cur) * f64::from(allowed) / f64::from(annotated)).round() as i32;
                size - cur
            }
        };
        let left = to_add - added;
        let p = if left > 0 { fraction.min(left) } else { fraction.max(left) };
        sizes[i] = cur + p;
        added += p;
    }
    if let Some(&first) = order.first() {
        sizes[first] = (sizes[first] + to_add - added).max(0);
    }
    sizes
}

/// Whether the deployment's rollout is complete (upstream's `DeploymentComplete`).
pub fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = replicas(d);
    s.updated_replicas == Some(want)
        && s.replicas == Some(want)
        && s.available_replicas == Some(want)
        && s.observed_generation >= d.metadata.generation
}

/// Whether `new` shows progress over the deployment's recorded status.
fn is_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let get = |v: Option<i32>| v.unwrap_or(0);
    let old_old = get(old.replicas) - get(old.updated_replicas);
    let new_old = get(new.replicas) - get(new.updated_replicas);
    get(new.updated_replicas) > get(old.updated_replicas)
        || new_old < old_old
        || get(new.ready_replicas) > get(old.ready_replicas)
        || get(new.available_replicas) > get(old.available_replicas)
}

fn progress_deadline(d: &Deployment) -> Option<i64> {
    let s = d.spec.as_ref()?.progress_deadline_seconds.unwrap_or(600);
    (s != i32::MAX).then_some(i64::from(s))
}

fn condition<'a>(conds: &'a [DeploymentCondition], type_: &str) -> Option<&'a DeploymentCondition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Sets a condition as upstream's `SetDeploymentCondition`: nothing changes when status and
/// reason are the same; the transition time is kept when only the reason changes.
fn set_condition(
    conds: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    msg: String,
    now: Timestamp,
) {
    let current = condition(conds, type_).cloned();
    if let Some(c) = &current
        && c.status == status
        && c.reason.as_deref() == Some(reason)
    {
        return;
    }
    let transition = match &current {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    conds.retain(|c| c.type_ != type_);
    conds.push(DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(msg),
        last_update_time: Some(Time(now)),
        last_transition_time: transition,
    });
}

/// The deployment status from its replica sets (upstream's `calculateStatus`), with the
/// `Available` condition and any replica set's `ReplicaFailure`; `conds` are the conditions so
/// far.
pub fn compute_status(
    d: &Deployment,
    all: &[ReplicaSet],
    new: Option<&ReplicaSet>,
    mut conds: Vec<DeploymentCondition>,
    now: Timestamp,
) -> DeploymentStatus {
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let status_replicas: i32 = all.iter().map(|r| st(r).replicas).sum();
    let ready: i32 = all.iter().map(|r| st(r).ready_replicas.unwrap_or(0)).sum();
    let avail: i32 = all.iter().map(available).sum();
    let total: i32 = all.iter().map(spec_replicas).sum();
    let updated = new.map_or(0, |n| st(n).replicas);
    if avail >= replicas(d) - max_unavailable(d) {
        let msg = "Deployment has minimum availability.".to_string();
        set_condition(&mut conds, "Available", "True", "MinimumReplicasAvailable", msg, now);
    } else {
        let msg = "Deployment does not have minimum availability.".to_string();
        set_condition(&mut conds, "Available", "False", "MinimumReplicasUnavailable", msg, now);
    }
    // A replica set that cannot create or delete pods shows through to the deployment.
    let failure = all
        .iter()
        .filter_map(|r| r.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "ReplicaFailure").cloned())
        .find(|c| c.status == "True");
    match failure {
        Some(f) => {
            let reason = f.reason.clone().unwrap_or_default();
            set_condition(&mut conds, "ReplicaFailure", "True", &reason, f.message.unwrap_or_default(), now);
        }
        None => conds.retain(|c| c.type_ != "ReplicaFailure"),
    }
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(status_replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(avail),
        unavailable_replicas: Some((total - avail).max(0)),
        collision_count: d.status.as_ref().and_then(|s| s.collision_count),
        conditions: (!conds.is_empty()).then_some(conds),
        terminating_replicas: None,
    }
}

/// Upstream's `syncRolloutStatus` on top of [`compute_status`]: the `Progressing` condition
/// (complete, progressing, or past the deadline). Returns the status and, while the rollout is
/// under way, how long until its deadline.
pub fn rollout_status(
    d: &Deployment,
    all: &[ReplicaSet],
    new: Option<&ReplicaSet>,
    conds: Vec<DeploymentCondition>,
    now: Timestamp,
) -> (DeploymentStatus, Option<i64>) {
    let mut s = compute_status(d, all, new, conds, now);
    let mut conds = s.conditions.take().unwrap_or_default();
    let Some(deadline) = progress_deadline(d) else {
        s.conditions = (!conds.is_empty()).then_some(conds);
        return (s, None);
    };
    let current = condition(&conds, "Progressing").cloned();
    let done = s.replicas == s.updated_replicas
        && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
    let new_name = new.map(|n| n.name_any()).unwrap_or_default();
    let mut wait = None;
    if !done {
        if is_complete(d, &s) {
            let msg = format!("ReplicaSet \"{new_name}\" has successfully progressed.");
            set_condition(&mut conds, "Progressing", "True", "NewReplicaSetAvailable", msg, now);
        } else if is_progressing(d, &s) {
            // Progress moves the deadline: always a fresh update time.
            let transition =
                current.as_ref().filter(|c| c.status == "True").and_then(|c| c.last_transition_time.clone());
            conds.retain(|c| c.type_ != "Progressing");
            conds.push(DeploymentCondition {
                type_: "Progressing".into(),
                status: "True".into(),
                reason: Some("ReplicaSetUpdated".into()),
                message: Some(format!("ReplicaSet \"{new_name}\" is progressing.")),
                last_update_time: Some(Time(now)),
                last_transition_time: transition.or(Some(Time(now))),
            });
            wait = Some(deadline);
        } else if let Some(c) = &current {
            let timed_out = c.reason.as_deref() == Some("ProgressDeadlineExceeded");
            let since = c.last_update_time.as_ref().map_or(now.as_second(), |t| t.0.as_second());
            let left = since + deadline - now.as_second();
            if !timed_out && left < 0 {
                let msg = format!("ReplicaSet \"{new_name}\" has timed out progressing.");
                set_condition(&mut conds, "Progressing", "False", "ProgressDeadlineExceeded", msg, now);
            } else if !timed_out {
                wait = Some(left.max(1));
            }
        }
    }
    s.conditions = (!conds.is_empty()).then_some(conds);
    (s, wait)
}

/// Old replica sets beyond `revisionHistoryLimit` that may be deleted: at zero, not being
/// deleted, lowest revision first.
pub fn history_to_delete<'a>(d: &Deployment, old: &'a [ReplicaSet]) -> Vec<&'a ReplicaSet> {
    let limit =
        usize::try_from(d.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10).max(0)).unwrap_or(0);
    let alive: Vec<&ReplicaSet> = old.iter().filter(|r| r.metadata.deletion_timestamp.is_none()).collect();
    if alive.len() <= limit {
        return Vec::new();
    }
    let mut cleanable: Vec<&ReplicaSet> = alive
        .iter()
        .copied()
        .filter(|r| {
            spec_replicas(r) == 0
                && r.status.as_ref().is_none_or(|s| s.replicas == 0)
                && r.status.as_ref().and_then(|s| s.observed_generation) >= r.metadata.generation
        })
        .collect();
    cleanable.sort_by(|a, b| revision(&a.metadata).cmp(&revision(&b.metadata)).then_with(|| by_age(a, b)));
    cleanable.truncate(alive.len() - limit);
    cleanable
}

// ---------------------------------------------------------------------------------------------
// The reconcile.

/// One reconcile's view: the deployment, its replica sets, which one is new, and the
/// conditions being built.
struct Sync {
    ctx: Arc<Ctx>,
    d: Deployment,
    api: Api<ReplicaSet>,
    all: Vec<ReplicaSet>,
    new: Option<usize>,
    conds: Vec<DeploymentCondition>,
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let d = (*d).clone();
    let ns = d.namespace().unwrap_or_default();
    let Some(spec) = d.spec.clone() else { return Ok(Action::await_change()) };
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    if pods::selector_is_empty(&spec.selector) {
        let ev = Event {
            type_: EventType::Warning,
            reason: "SelectingAll".into(),
            note: Some("This deployment is selecting all pods. A non-empty selector is required.".into()),
            action: "Select".into(),
            secondary: None,
        };
        let _ = ctx.recorder.publish(&ev, &d.object_ref(&())).await;
        return Ok(Action::await_change());
    }
    let all = claim(&d, &api).await?;
    let conds = d.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut s = Sync { ctx, d, api, all, new: None, conds };
    s.new = s.find_new();
    let now = pods::now();

    if s.d.metadata.deletion_timestamp.is_some() {
        s.write_status(false, now).await?;
        return Ok(Action::await_change());
    }
    let paused = spec.paused == Some(true);
    if progress_deadline(&s.d).is_some() {
        let reason = condition(&s.conds, "Progressing").and_then(|c| c.reason.clone());
        if paused && reason.as_deref() != Some("DeploymentPaused") {
            set_condition(
                &mut s.conds,
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                now,
            );
        } else if !paused && reason.as_deref() == Some("DeploymentPaused") {
            set_condition(
                &mut s.conds,
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
                now,
            );
        }
    }
    if paused || s.is_scaling_event() {
        s.sync_new(false).await?;
        s.scale().await?;
        if paused {
            s.cleanup().await;
        }
        s.write_status(false, now).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    if is_rolling(&s.d) { s.rolling(now).await } else { s.recreate(now).await }
}

/// Lists the namespace's replica sets and returns those the deployment controls after adopting
/// matching orphans and releasing owned ones that no longer match.
async fn claim(d: &Deployment, api: &Api<ReplicaSet>) -> Result<Vec<ReplicaSet>, Error> {
    let selector = &d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let mut out = Vec::new();
    for rs in api.list(&ListParams::default()).await?.items {
        let matches = pods::selector_matches(selector, rs.labels());
        match pods::controller_of(&rs.metadata) {
            Some(o) if o.uid == uid => {
                if matches {
                    out.push(rs);
                } else {
                    let patch = serde_json::json!({
                        "metadata": {"ownerReferences": [{"$patch": "delete", "uid": uid}], "uid": rs.metadata.uid}
                    });
                    if let Err(e) = api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
                        tracing::debug!(error = %e, "releasing a replica set");
                    }
                }
            }
            Some(_) => {}
            None if matches && d.metadata.deletion_timestamp.is_none() && rs.metadata.deletion_timestamp.is_none() => {
                let oref = pods::controller_ref("apps/v1", "Deployment", &d.metadata);
                let patch = serde_json::json!({"metadata": {"ownerReferences": [oref], "uid": rs.metadata.uid}});
                match api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
                    Ok(rs) => out.push(rs),
                    Err(e) => tracing::debug!(error = %e, "adopting a replica set"),
                }
            }
            None => {}
        }
    }
    Ok(out)
}

impl Sync {
    fn template(&self) -> PodTemplateSpec {
        self.d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
    }

    /// The oldest replica set whose template equals the deployment's.
    fn find_new(&self) -> Option<usize> {
        let t = self.template();
        let mut matching: Vec<usize> = (0..self.all.len())
            .filter(|&i| {
                self.all[i].spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|rt| templates_equal(rt, &t))
            })
            .collect();
        matching.sort_by(|&a, &b| by_age(&self.all[a], &self.all[b]));
        matching.first().copied()
    }

    fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new.map(|i| &self.all[i])
    }

    fn old(&self) -> Vec<usize> {
        (0..self.all.len()).filter(|&i| Some(i) != self.new).collect()
    }

    fn is_scaling_event(&self) -> bool {
        let want = replicas(&self.d).to_string();
        self.all
            .iter()
            .filter(|r| spec_replicas(r) > 0)
            .any(|r| r.metadata.annotations.as_ref().and_then(|a| a.get(DESIRED_REPLICAS)).is_some_and(|v| *v != want))
    }

    async fn event(&self, type_: EventType, reason: &str, note: String) {
        let ev = Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        if let Err(e) = self.ctx.recorder.publish(&ev, &self.d.object_ref(&())).await {
            tracing::debug!(error = %e, "recording a deployment event");
        }
    }

    fn copied_annotations(&self) -> BTreeMap<String, String> {
        let mut out = self.d.metadata.annotations.clone().unwrap_or_default();
        out.retain(|k, _| !NOT_COPIED.contains(&k.as_str()));
        out
    }

    /// Finds (and with `create`, creates) the new replica set and keeps revisions in step:
    /// the new replica set's revision is above every old one's, and the deployment shows it.
    async fn sync_new(&mut self, create: bool) -> Result<(), Error> {
        let max_old = self.old().iter().map(|&i| revision(&self.all[i].metadata)).max().unwrap_or(0);
        let next = max_old + 1;
        let now = pods::now();
        let has_deadline = progress_deadline(&self.d).is_some();
        if let Some(i) = self.new {
            let rs = &self.all[i];
            let mut annotations = self.copied_annotations();
            let current = rs.metadata.annotations.clone().unwrap_or_default();
            annotations.retain(|k, v| current.get(k) != Some(v));
            if revision(&rs.metadata) < next {
                annotations.insert(REVISION.into(), next.to_string());
            }
            if !annotations.is_empty() {
                let patch = serde_json::json!({"metadata": {"annotations": annotations}});
                self.all[i] = self.api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
            }
            if has_deadline && condition(&self.conds, "Progressing").is_none() {
                let msg = format!("Found new replica set \"{}\"", self.all[i].name_any());
                set_condition(&mut self.conds, "Progressing", "True", "FoundNewReplicaSet", msg, now);
            }
        } else if create {
            let created = self.create_new(next).await?;
            self.all.push(created);
            self.new = Some(self.all.len() - 1);
            if has_deadline {
                let msg = format!("Created new replica set \"{}\"", self.all[self.all.len() - 1].name_any());
                set_condition(&mut self.conds, "Progressing", "True", "NewReplicaSetCreated", msg, now);
            }
        }
        // The deployment carries its new replica set's revision.
        if let Some(rs) = self.new_rs() {
            let rev = revision(&rs.metadata);
            if rev > 0 && revision(&self.d.metadata) != rev {
                let patch = serde_json::json!({"metadata": {"annotations": {REVISION: rev.to_string()}}});
                let api: Api<Deployment> =
                    Api::namespaced(self.ctx.client.clone(), &self.d.namespace().unwrap_or_default());
                let updated = api.patch(&self.d.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
                self.d.metadata = updated.metadata;
            }
        }
        Ok(())
    }

    async fn create_new(&mut self, rev: i64) -> Result<ReplicaSet, Error> {
        let d = &self.d;
        let spec = d.spec.clone().unwrap_or_default();
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collision);
        let mut template = spec.template.clone();
        let tmeta = template.metadata.get_or_insert_with(Default::default);
        tmeta.labels.get_or_insert_with(Default::default).insert(HASH_LABEL.into(), hash.clone());
        let mut selector: LabelSelector = spec.selector.clone();
        selector.match_labels.get_or_insert_with(Default::default).insert(HASH_LABEL.into(), hash.clone());
        let want = new_rs_replicas(d, &self.all, None);
        let mut annotations = self.copied_annotations();
        annotations.insert(REVISION.into(), rev.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), replicas(d).to_string());
        annotations.insert(MAX_REPLICAS.into(), (replicas(d) + max_surge(d)).to_string());
        let name = format!("{}-{hash}", d.name_any());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.namespace(),
                labels: tmeta.labels.clone(),
                annotations: Some(annotations),
                owner_references: Some(vec![pods::controller_ref("apps/v1", "Deployment", &d.metadata)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(want),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        match self.api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                if want > 0 {
                    self.event(
                        EventType::Normal,
                        "ScalingReplicaSet",
                        format!("Scaled up replica set {name} from 0 to {want}"),
                    )
                    .await;
                }
                Ok(created)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // A replica set of that name exists: ours with the same template (a stale
                // list) is fine; otherwise it is a hash collision, which bumps the count.
                let existing = self.api.get(&name).await?;
                let ours =
                    pods::controller_of(&existing.metadata).is_some_and(|o| Some(&o.uid) == d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| templates_equal(t, &spec.template));
                if ours && same {
                    return Ok(existing);
                }
                let count = collision.unwrap_or(0).wrapping_add(1);
                let api: Api<Deployment> = Api::namespaced(self.ctx.client.clone(), &d.namespace().unwrap_or_default());
                let patch = serde_json::json!({"status": {"collisionCount": count}});
                api.patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
                Err(Error::Other(format!(
                    "replica set {name} exists with another template; collision count now {count}"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Scales replica set `i` to `to`, refreshing its desired/max annotations.
    async fn scale_to(&mut self, i: usize, to: i32) -> Result<bool, Error> {
        let rs = &self.all[i];
        let from = spec_replicas(rs);
        let desired = replicas(&self.d).to_string();
        let max = (replicas(&self.d) + max_surge(&self.d)).to_string();
        let ann = rs.metadata.annotations.clone().unwrap_or_default();
        let annotations_ok = ann.get(DESIRED_REPLICAS) == Some(&desired) && ann.get(MAX_REPLICAS) == Some(&max);
        if from == to && annotations_ok {
            return Ok(false);
        }
        let name = rs.name_any();
        let patch = serde_json::json!({
            "metadata": {"annotations": {DESIRED_REPLICAS: desired, MAX_REPLICAS: max}},
            "spec": {"replicas": to},
        });
        self.all[i] = self.api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
        if from != to {
            let dir = if to > from { "up" } else { "down" };
            self.event(
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {dir} replica set {name} from {from} to {to}"),
            )
            .await;
        }
        Ok(from != to)
    }

    /// Scaling without a rollout (paused deployments and scaling events).
    async fn scale(&mut self) -> Result<(), Error> {
        let want = replicas(&self.d);
        let active: Vec<usize> = (0..self.all.len()).filter(|&i| spec_replicas(&self.all[i]) > 0).collect();
        let single = match active.len() {
            0 => self.new.or_else(|| (0..self.all.len()).max_by(|&a, &b| by_age(&self.all[a], &self.all[b]))),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(i) = single {
            self.scale_to(i, want).await?;
            return Ok(());
        }
        let saturated = self.new_rs().is_some_and(|n| {
            spec_replicas(n) == want
                && n.metadata.annotations.as_ref().and_then(|a| a.get(DESIRED_REPLICAS)) == Some(&want.to_string())
                && available(n) == want
        });
        if saturated {
            for i in self.old() {
                if spec_replicas(&self.all[i]) > 0 {
                    self.scale_to(i, 0).await?;
                }
            }
            return Ok(());
        }
        if is_rolling(&self.d) {
            let list: Vec<ReplicaSet> = active.iter().map(|&i| self.all[i].clone()).collect();
            let sizes = proportional_sizes(&self.d, &list);
            for (k, &i) in active.iter().enumerate() {
                self.scale_to(i, sizes[k]).await?;
            }
        }
        Ok(())
    }

    async fn rolling(&mut self, now: Timestamp) -> Result<Action, Error> {
        self.sync_new(true).await?;
        let want = replicas(&self.d);
        if let Some(i) = self.new {
            let cur = spec_replicas(&self.all[i]);
            let target = if cur > want { want } else { new_rs_replicas(&self.d, &self.all, Some(&self.all[i])) };
            if target != cur {
                self.scale_to(i, target).await?;
                if target > cur {
                    return self.write_status(true, now).await;
                }
            }
        }
        let old_idx = self.old();
        let old: Vec<ReplicaSet> = old_idx.iter().map(|&i| self.all[i].clone()).collect();
        let plan = old_scale_down_plan(&self.d, &old, self.new_rs());
        let mut scaled = false;
        for (k, to) in plan {
            scaled |= self.scale_to(old_idx[k], to).await?;
        }
        if scaled {
            return self.write_status(true, now).await;
        }
        let (status, _) = rollout_status(&self.d, &self.all, self.new_rs(), self.conds.clone(), now);
        if is_complete(&self.d, &status) {
            self.cleanup().await;
        }
        self.write_status(true, now).await
    }

    async fn recreate(&mut self, now: Timestamp) -> Result<Action, Error> {
        self.sync_new(false).await?;
        let mut scaled = false;
        for i in self.old() {
            if spec_replicas(&self.all[i]) > 0 {
                scaled |= self.scale_to(i, 0).await?;
            }
        }
        if scaled {
            return self.write_status(true, now).await;
        }
        // Wait for every old pod to go (terminating ones included) before starting new ones.
        // Pods are not watched here, so look again shortly.
        if self.old_pods_running().await? {
            self.write_status(true, now).await?;
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        if self.new.is_none() {
            self.sync_new(true).await?;
        }
        if let Some(i) = self.new {
            self.scale_to(i, replicas(&self.d)).await?;
        }
        let (status, _) = rollout_status(&self.d, &self.all, self.new_rs(), self.conds.clone(), now);
        if is_complete(&self.d, &status) {
            self.cleanup().await;
        }
        self.write_status(true, now).await
    }

    /// Whether any pod of an old replica set may still run: not `Succeeded` or `Failed`,
    /// terminating or not (upstream's `oldPodsRunning` for Recreate).
    async fn old_pods_running(&self) -> Result<bool, Error> {
        let old_uids: Vec<String> = self.old().iter().filter_map(|&i| self.all[i].metadata.uid.clone()).collect();
        if self.old().iter().any(|&i| self.all[i].status.as_ref().is_some_and(|s| s.replicas > 0)) {
            return Ok(true);
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.d.namespace().unwrap_or_default());
        let running = api.list(&ListParams::default()).await?.items.iter().any(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            pods::controller_of(&p.metadata).is_some_and(|o| old_uids.contains(&o.uid))
                && !matches!(phase, Some("Succeeded") | Some("Failed"))
        });
        Ok(running)
    }

    /// Deletes old replica sets beyond the history limit.
    async fn cleanup(&mut self) {
        let old: Vec<ReplicaSet> = self.old().iter().map(|&i| self.all[i].clone()).collect();
        for rs in history_to_delete(&self.d, &old) {
            let name = rs.name_any();
            let dp = DeleteParams::background();
            if let Err(e) = self.api.delete(&name, &dp).await {
                tracing::debug!(error = %e, rs = %name, "deleting an old replica set");
            }
        }
    }

    /// Writes the status (with the progress estimate when `rollout`) if it changed, and says
    /// when to come back.
    async fn write_status(&mut self, rollout: bool, now: Timestamp) -> Result<Action, Error> {
        let (status, wait) = if rollout {
            rollout_status(&self.d, &self.all, self.new_rs(), self.conds.clone(), now)
        } else {
            (compute_status(&self.d, &self.all, self.new_rs(), self.conds.clone(), now), None)
        };
        if self.d.status.as_ref() != Some(&status) {
            let mut body = serde_json::json!({ "status": status });
            if status.conditions.is_none() {
                body["status"]["conditions"] = serde_json::Value::Null;
            }
            let api: Api<Deployment> =
                Api::namespaced(self.ctx.client.clone(), &self.d.namespace().unwrap_or_default());
            match api.patch_status(&self.d.name_any(), &PatchParams::default(), &Patch::Merge(body)).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(match wait {
            Some(secs) => Action::requeue(Duration::from_secs(u64::try_from(secs).unwrap_or(1).max(1))),
            None => Action::requeue(Duration::from_secs(300)),
        })
    }
}

#[cfg(test)]
mod tests;
