//! Node lifecycle and taint-based eviction, after upstream's `pkg/controller/nodelifecycle` and
//! `pkg/controller/tainteviction` (behaviour only; the code is our own).
//!
//! **Node health.** Every node's liveness is judged from two heartbeats: its Lease in
//! `kube-node-lease` (`spec.renewTime`) and its `Ready` condition's `lastHeartbeatTime`. As
//! upstream, the controller does not compare those timestamps with its own clock: it remembers
//! when it last *saw either change* (the probe time). A node whose probe time is older than the
//! grace period (`--node-monitor-grace-period-seconds`, upstream 50 s since 1.32; 60 s for a node
//! that never posted a `Ready` condition) gets `Ready`, `MemoryPressure`, `DiskPressure` and
//! `PIDPressure` set to `Unknown` (reason `NodeStatusUnknown`, message "Kubelet stopped posting
//! node status.") through `nodes/status`. When it turns not ready, its pods get `Ready=False` and
//! a `NodeNotReady` event (upstream's `MarkPodsNotReady`).
//!
//! **Taints.** From the conditions (upstream's TaintNodesByCondition): `not-ready:NoSchedule` for
//! `Ready=False`, `unreachable:NoSchedule` for `Ready=Unknown`, the pressure and
//! network-unavailable taints, and `unschedulable:NoSchedule` for a cordoned node. For eviction:
//! `not-ready:NoExecute` or `unreachable:NoExecute` (mutually exclusive, with `timeAdded`),
//! removed as soon as the node is ready again. New `NoExecute` taints are rate limited per zone
//! (0.1 nodes/s), stopped in a small zone in partial disruption (≥ 55 % of more than two nodes
//! not ready), and withheld everywhere — existing ones removed — when every zone is entirely
//! not ready (the control plane is probably the one cut off).
//!
//! **Taint eviction.** A pod on a node with `NoExecute` taints it does not tolerate is deleted at
//! once; one that tolerates them all with `tolerationSeconds` is deleted that many seconds (the
//! smallest) after it became exposed to them: the earliest `timeAdded` of the node's `NoExecute`
//! taints, or when the pod was scheduled if later. Upstream counts from when its own process
//! first saw the taint; counting from `timeAdded` gives the same result and survives a restart of
//! the controller manager. Deletion adds the `DisruptionTarget` condition first
//! (`DeletionByTaintManager`) and records `TaintManagerEviction` events; a scheduled deletion that
//! no longer applies records "Cancelling deletion of Pod …".
//!
//! A pod deleted on an unreachable node keeps its `deletionTimestamp` until its kubelet confirms
//! or the Node goes away (pod GC, `podgc.rs`), as upstream; its controller replaces it meanwhile,
//! since terminating pods do not count as replicas.

use crate::Shutdown;
use crate::informers::{Informers, SharedInformer};
use crate::support::{self, api_status};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeCondition, ObjectReference, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Upstream's `--node-monitor-grace-period` default (50 s since Kubernetes 1.32).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(50);
/// Upstream's `--node-startup-grace-period`: the grace for a node that never posted `Ready`.
pub const STARTUP_GRACE_PERIOD: Duration = Duration::from_secs(60);
/// Namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
/// Set by an administrator on a node that is shut down for good (see `podgc.rs`).
pub const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

const NO_SCHEDULE: &str = "NoSchedule";
const NO_EXECUTE: &str = "NoExecute";

/// The conditions a kubelet owns and the controller sets to `Unknown` when it goes silent.
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// How fast nodes of a zone get a new `NoExecute` taint, and when a zone counts as disrupted:
/// upstream's `--node-eviction-rate`, `--secondary-node-eviction-rate`,
/// `--large-cluster-size-threshold` and `--unhealthy-zone-threshold`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvictionRates {
    /// Nodes per second and zone while the zone is healthy (or entirely down): 0.1.
    pub rate: f64,
    /// The same for a large zone in partial disruption: 0.01.
    pub secondary_rate: f64,
    /// Zones of at most this many nodes stop tainting in partial disruption: 50.
    pub large_cluster_threshold: usize,
    /// Share of not-ready nodes (of more than two) that puts a zone in partial disruption: 0.55.
    pub unhealthy_zone_threshold: f64,
}

impl Default for EvictionRates {
    fn default() -> Self {
        EvictionRates { rate: 0.1, secondary_rate: 0.01, large_cluster_threshold: 50, unhealthy_zone_threshold: 0.55 }
    }
}

impl EvictionRates {
    /// Refuses values upstream would not work with: negative rates, a threshold outside (0, 1].
    pub fn check(&self) -> Result<(), String> {
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            return Err(format!("the node eviction rate must be a number of nodes per second ≥ 0, not {}", self.rate));
        }
        if !(self.secondary_rate.is_finite() && self.secondary_rate >= 0.0) {
            return Err(format!(
                "the secondary node eviction rate must be a number of nodes per second ≥ 0, not {}",
                self.secondary_rate
            ));
        }
        if !(self.unhealthy_zone_threshold > 0.0 && self.unhealthy_zone_threshold <= 1.0) {
            return Err(format!(
                "the unhealthy zone threshold is a share of a zone's nodes, above 0 and at most 1, not {}",
                self.unhealthy_zone_threshold
            ));
        }
        Ok(())
    }

    /// A zone's health, as upstream's `ComputeZoneState`.
    pub fn zone_state(&self, ready: usize, not_ready: usize) -> ZoneState {
        if ready == 0 && not_ready > 0 {
            ZoneState::FullDisruption
        } else if not_ready > 2 && not_ready as f64 / (ready + not_ready) as f64 >= self.unhealthy_zone_threshold {
            ZoneState::PartialDisruption
        } else {
            ZoneState::Normal
        }
    }

    /// How many nodes per second may get a new `NoExecute` taint in a zone of `size` nodes.
    pub fn zone_qps(&self, state: ZoneState, size: usize) -> f64 {
        match state {
            ZoneState::Normal | ZoneState::FullDisruption => self.rate,
            ZoneState::PartialDisruption if size > self.large_cluster_threshold => self.secondary_rate,
            ZoneState::PartialDisruption => 0.0,
        }
    }
}

/// Timings of the node lifecycle controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a node may stay silent before it is marked `Unknown`.
    pub grace_period: Duration,
    /// The same for a node that never posted a `Ready` condition.
    pub startup_grace_period: Duration,
    /// How often node health is checked (upstream's `--node-monitor-period`, 5 s).
    pub monitor_period: Duration,
    /// How often pods on `NoExecute`-tainted nodes are looked at.
    pub eviction_period: Duration,
    /// Taint rates and zone thresholds.
    pub rates: EvictionRates,
}

impl Config {
    /// Upstream's timings around `grace_period`; the monitor period shrinks with a short grace
    /// period (tests) so that a silent node is noticed within about an eighth of it.
    pub fn new(grace_period: Duration) -> Self {
        let grace_period = grace_period.max(Duration::from_secs(1));
        Config {
            grace_period,
            startup_grace_period: STARTUP_GRACE_PERIOD.max(grace_period),
            monitor_period: (grace_period / 8).clamp(Duration::from_millis(250), Duration::from_secs(5)),
            eviction_period: Duration::from_millis(500),
            rates: EvictionRates::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new(DEFAULT_GRACE_PERIOD)
    }
}

// ---------------------------------------------------------------------------------------------
// Decisions (pure)
// ---------------------------------------------------------------------------------------------

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn plus_secs(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(secs)).unwrap_or(Timestamp::MAX)
}

/// The node's condition of type `kind`.
pub fn condition<'a>(node: &'a Node, kind: &str) -> Option<&'a NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind)
}

/// The status of the node's `Ready` condition (`None` when it has none).
pub fn ready_status(node: &Node) -> Option<&str> {
    condition(node, "Ready").map(|c| c.status.as_str())
}

fn is_ready(node: &Node) -> bool {
    ready_status(node) == Some("True")
}

/// What the controller remembers about a node between passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The last time the node was seen alive (a new heartbeat), by this process's clock.
    pub probe: Timestamp,
    /// The `Ready` condition's `lastHeartbeatTime` when last seen.
    pub heartbeat: Option<Timestamp>,
    /// Whether the node had a `Ready` condition when last seen.
    pub had_ready: bool,
    /// The Lease's newest `renewTime` seen.
    pub lease_renew: Option<Timestamp>,
    /// The `Ready` status when last seen (after this controller's own update).
    pub ready: Option<String>,
}

/// Folds one observation of a node into its record: the probe time moves to `now` when the node
/// is first seen with a `Ready` condition, when that condition's heartbeat changes, and when its
/// Lease is renewed. A node first seen without `Ready` counts from its creation.
pub fn observe(
    prev: Option<&Health>,
    ready: Option<&NodeCondition>,
    lease_renew: Option<Timestamp>,
    created: Option<Timestamp>,
    now: Timestamp,
) -> Health {
    let heartbeat = ready.and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0);
    let mut h = match prev {
        None => Health {
            probe: if ready.is_some() { now } else { created.unwrap_or(now) },
            heartbeat,
            had_ready: ready.is_some(),
            lease_renew: None,
            ready: None,
        },
        Some(p) => {
            let mut h = p.clone();
            if ready.is_some() != p.had_ready || heartbeat != p.heartbeat {
                h.probe = now;
            }
            h.heartbeat = heartbeat;
            h.had_ready = ready.is_some();
            h
        }
    };
    if let Some(renew) = lease_renew
        && h.lease_renew.is_none_or(|seen| seen < renew)
    {
        h.lease_renew = Some(renew);
        h.probe = now;
    }
    h
}

/// Whether the node has been silent for longer than its grace period.
pub fn is_stale(h: &Health, config: &Config, now: Timestamp) -> bool {
    let grace = if h.had_ready { config.grace_period } else { config.startup_grace_period };
    now > plus(h.probe, grace)
}

/// The conditions of a silent node: the kubelet's four set to `Unknown` (missing ones added as
/// never updated), others kept. `None` when nothing changes.
pub fn unknown_conditions(
    conditions: &[NodeCondition],
    created: Option<&Time>,
    now: Timestamp,
) -> Option<Vec<NodeCondition>> {
    let mut out = conditions.to_vec();
    let mut changed = false;
    for kind in KUBELET_CONDITIONS {
        match out.iter_mut().find(|c| c.type_ == kind) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                out.push(NodeCondition {
                    type_: kind.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: created.cloned(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// The `NoSchedule` taint keys the node's conditions and `spec.unschedulable` call for.
pub fn condition_taint_keys(node: &Node) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let status = |kind: &str| condition(node, kind).map(|c| c.status.as_str());
    match status("Ready") {
        Some("False") => keys.push(TAINT_NOT_READY),
        Some("Unknown") => keys.push(TAINT_UNREACHABLE),
        _ => {}
    }
    for (kind, key) in [
        ("MemoryPressure", TAINT_MEMORY_PRESSURE),
        ("DiskPressure", TAINT_DISK_PRESSURE),
        ("NetworkUnavailable", TAINT_NETWORK_UNAVAILABLE),
        ("PIDPressure", TAINT_PID_PRESSURE),
    ] {
        if status(kind) == Some("True") {
            keys.push(key);
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        keys.push(TAINT_UNSCHEDULABLE);
    }
    keys
}

fn is_condition_taint_key(key: &str) -> bool {
    matches!(
        key,
        TAINT_NOT_READY
            | TAINT_UNREACHABLE
            | TAINT_MEMORY_PRESSURE
            | TAINT_DISK_PRESSURE
            | TAINT_NETWORK_UNAVAILABLE
            | TAINT_PID_PRESSURE
            | TAINT_UNSCHEDULABLE
    )
}

/// What may happen to a node's `NoExecute` readiness taints in this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoExecute {
    /// Add, swap and remove as the `Ready` condition says.
    Allow,
    /// Swap and remove, but add none (rate limited, or the zone is in partial disruption).
    Hold,
    /// Remove them (every zone is entirely not ready).
    Clear,
}

/// A change to a node's taints.
#[derive(Clone, Debug, PartialEq)]
pub struct TaintPlan {
    /// The node's taints after the change.
    pub taints: Vec<Taint>,
    /// Whether a `NoExecute` readiness taint was added where the node had none.
    pub added_no_execute: bool,
}

fn taint(key: &str, effect: &str, now: Timestamp) -> Taint {
    Taint { key: key.into(), effect: effect.into(), value: None, time_added: Some(Time(now)) }
}

fn has_taint(taints: &[Taint], key: &str, effect: &str) -> bool {
    taints.iter().any(|t| t.key == key && t.effect == effect)
}

/// The node's taints as its conditions want them; `None` when they are right already. Taints
/// this controller does not manage are kept, in order; added ones carry `timeAdded: now`.
pub fn plan_taints(node: &Node, no_execute: NoExecute, now: Timestamp) -> Option<TaintPlan> {
    let current: &[Taint] = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let wanted = condition_taint_keys(node);
    if current.is_empty()
        && wanted.is_empty()
        && (no_execute == NoExecute::Clear
            || ready_status(node) != Some("False") && ready_status(node) != Some("Unknown"))
    {
        // An untainted node that wants no taint: the common case, decided without copying.
        return None;
    }
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| t.effect != NO_SCHEDULE || !is_condition_taint_key(&t.key) || wanted.contains(&t.key.as_str()))
        .cloned()
        .collect();
    for key in &wanted {
        if !has_taint(&out, key, NO_SCHEDULE) {
            out.push(taint(key, NO_SCHEDULE, now));
        }
    }
    let want_exec = match (no_execute, ready_status(node)) {
        (NoExecute::Clear, _) | (_, Some("True")) => Some(None),
        (_, Some("False")) => Some(Some(TAINT_NOT_READY)),
        (_, Some("Unknown")) => Some(Some(TAINT_UNREACHABLE)),
        // No Ready condition yet (or an odd value): leave the NoExecute taints alone.
        _ => None,
    };
    let mut added_no_execute = false;
    if let Some(want) = want_exec {
        let had_any = [TAINT_NOT_READY, TAINT_UNREACHABLE].iter().any(|k| has_taint(&out, k, NO_EXECUTE));
        let may_add = had_any || no_execute == NoExecute::Allow;
        match want {
            Some(key) if may_add => {
                out.retain(|t| {
                    t.effect != NO_EXECUTE || !(t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE) || t.key == key
                });
                if !has_taint(&out, key, NO_EXECUTE) {
                    out.push(taint(key, NO_EXECUTE, now));
                    added_no_execute = !had_any;
                }
            }
            Some(_) => {}
            None => out.retain(|t| t.effect != NO_EXECUTE || (t.key != TAINT_NOT_READY && t.key != TAINT_UNREACHABLE)),
        }
    }
    (out.as_slice() != current).then_some(TaintPlan { taints: out, added_no_execute })
}

/// A zone's health, as upstream's `ComputeZoneState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneState {
    Normal,
    /// More than two nodes not ready, and at least the unhealthy zone threshold of the zone
    /// (55 % by default).
    PartialDisruption,
    /// No node ready (and at least one not ready).
    FullDisruption,
}

/// The node's zone key: region and zone labels (current or beta), as upstream's `GetZoneKey`.
pub fn zone_key(node: &Node) -> String {
    let labels = node.labels();
    let get = |a: &str, b: &str| labels.get(a).or_else(|| labels.get(b)).map_or("", String::as_str);
    let region = get("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region");
    let zone = get("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone");
    if region.is_empty() && zone.is_empty() { String::new() } else { format!("{region}:\0:{zone}") }
}

/// Token buckets (burst 1) per zone for new `NoExecute` taints.
#[derive(Default)]
struct ZoneLimiter {
    next: HashMap<String, Instant>,
}

impl ZoneLimiter {
    fn try_take(&mut self, zone: &str, qps: f64, now: Instant) -> bool {
        if qps <= 0.0 {
            return false;
        }
        if self.next.get(zone).is_some_and(|t| now < *t) {
            return false;
        }
        self.next.insert(zone.to_string(), now + Duration::from_secs_f64(1.0 / qps));
        true
    }

    /// Returns the token taken last for `zone` (the write it allowed failed).
    fn give_back(&mut self, zone: &str) {
        self.next.remove(zone);
    }
}

/// Whether `toleration` tolerates `taint`, as upstream's `ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
        _ => false,
    }
}

/// When a pod on a node with `NoExecute` taints is to be deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Never: no taints, or every taint tolerated without a time limit.
    Never,
    /// At once: a taint is not tolerated (or only for zero seconds).
    Now,
    /// At this time.
    At(Timestamp),
}

/// The pod's eviction time for the node's `NoExecute` `taints`, counted from `since` (when the
/// pod became exposed to them). As upstream, each taint is matched by the pod's first toleration
/// that tolerates it, and the smallest `tolerationSeconds` among those wins.
pub fn eviction_time(taints: &[&Taint], tolerations: &[Toleration], since: Timestamp) -> Eviction {
    if taints.is_empty() {
        return Eviction::Never;
    }
    let mut least: Option<i64> = None;
    for taint in taints {
        let Some(t) = tolerations.iter().find(|t| tolerates(t, taint)) else { return Eviction::Now };
        if let Some(secs) = t.toleration_seconds {
            least = Some(least.map_or(secs, |l| l.min(secs)));
        }
    }
    match least {
        None => Eviction::Never,
        Some(secs) if secs <= 0 => Eviction::Now,
        Some(secs) => Eviction::At(plus_secs(since, secs)),
    }
}

/// The node's `NoExecute` taints.
pub fn no_execute_taints(node: &Node) -> Vec<&Taint> {
    node.spec.iter().flat_map(|s| s.taints.iter().flatten()).filter(|t| t.effect == NO_EXECUTE).collect()
}

/// When the pod became exposed to `taints`: the earliest `timeAdded` (taints without one count
/// from `first_seen`), but not before the pod was scheduled there.
pub fn exposed_since(taints: &[&Taint], pod: &Pod, first_seen: impl Fn(&Taint) -> Timestamp) -> Timestamp {
    let tainted = taints.iter().map(|t| t.time_added.as_ref().map_or_else(|| first_seen(t), |a| a.0)).min();
    let scheduled = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled" && c.status == "True"))
        .and_then(|c| c.last_transition_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0);
    match (tainted, scheduled) {
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) => a,
        (None, b) => b.unwrap_or_else(Timestamp::now),
    }
}

/// Whether the pod's `Ready` condition is `True`.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

/// A reflector store fed by a watch, with the task that feeds it.
pub(crate) struct Informer<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    pub store: Store<K>,
    /// The watch feeding the store, when it is this informer's own.
    task: Option<tokio::task::JoinHandle<()>>,
    /// A shared informer's first listing (several tasks wait for it at once).
    listed: Option<tokio::sync::watch::Receiver<bool>>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    pub fn start(api: Api<K>, config: watcher::Config) -> Self {
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
        let task = tokio::spawn(async move {
            stream
                .for_each(|r| async move {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "informer watch");
                    }
                })
                .await;
        });
        Informer { store, task: Some(task), listed: None }
    }

    /// A view of a shared informer's store.
    pub fn shared(informer: &SharedInformer<K>) -> Self {
        Informer { store: informer.store(), task: None, listed: Some(informer.listed()) }
    }

    /// Waits for the first list; `false` when shutdown came first.
    pub async fn ready(&self, shutdown: &Shutdown) -> bool {
        let listed = async {
            match self.listed.clone() {
                Some(mut listed) => listed.wait_for(|l| *l).await.is_ok(),
                None => self.store.wait_until_ready().await.is_ok(),
            }
        };
        tokio::select! {
            r = listed => r,
            _ = support::stopped(shutdown.clone()) => false,
        }
    }
}

impl<K: Resource + 'static> Drop for Informer<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn node_ref(node: &Node) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: node.metadata.name.clone(),
        uid: node.metadata.uid.clone(),
        ..Default::default()
    }
}

fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        ..Default::default()
    }
}

async fn publish(recorder: &Recorder, reference: &ObjectReference, type_: EventType, reason: &str, note: String) {
    let ev = Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
    if let Err(e) = recorder.publish(&ev, reference).await {
        tracing::debug!(error = %e, "recording a node lifecycle event");
    }
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

/// What the controller reads of a node Lease: its name and `spec.renewTime`. Every renewal comes
/// through the watch, and decoding only these skips the rest of the object (holder, owner
/// references, managed fields).
#[derive(Clone, Debug)]
pub(crate) struct NodeLease {
    metadata: ObjectMeta,
    renew: Option<Timestamp>,
}

impl<'de> Deserialize<'de> for NodeLease {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: Meta,
            #[serde(default)]
            spec: Option<Spec>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Meta {
            name: Option<String>,
            namespace: Option<String>,
            resource_version: Option<String>,
            uid: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Spec {
            renew_time: Option<MicroTime>,
        }
        let w = Wire::deserialize(d)?;
        let metadata = ObjectMeta {
            name: w.metadata.name,
            namespace: w.metadata.namespace,
            resource_version: w.metadata.resource_version,
            uid: w.metadata.uid,
            ..Default::default()
        };
        Ok(NodeLease { metadata, renew: w.spec.and_then(|s| s.renew_time).map(|t| t.0) })
    }
}

impl Resource for NodeLease {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Lease".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "coordination.k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "leases".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Runs the node lifecycle and taint eviction controllers until `shutdown` turns true.
pub async fn run(client: Client, informers: Informers, config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let nodes = Informer::shared(&informers.nodes);
    let leases =
        Informer::start(Api::<NodeLease>::namespaced(client.clone(), LEASE_NAMESPACE), watcher::Config::default());
    let pods = Informer::shared(&informers.pods);
    if !(nodes.ready(&shutdown).await && leases.ready(&shutdown).await && pods.ready(&shutdown).await) {
        return Ok(());
    }
    let mut monitor = Monitor {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), Reporter { controller: "node-controller".into(), instance: None }),
        config: config.clone(),
        health: HashMap::new(),
        limiter: ZoneLimiter::default(),
    };
    let mut evictor = Evictor {
        client: client.clone(),
        recorder: Recorder::new(client, Reporter { controller: "taint-eviction-controller".into(), instance: None }),
        scheduled: HashMap::new(),
        first_seen: HashMap::new(),
    };
    let mut monitor_tick = tokio::time::interval(config.monitor_period);
    let mut eviction_tick = tokio::time::interval(config.eviction_period);
    monitor_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    eviction_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = support::stopped(shutdown.clone());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = monitor_tick.tick() => monitor.pass(&nodes.store, &leases.store, &pods.store).await,
            _ = eviction_tick.tick() => evictor.pass(&nodes.store, &pods.store).await,
        }
    }
}

struct Monitor {
    client: Client,
    recorder: Recorder,
    config: Config,
    health: HashMap<String, Health>,
    limiter: ZoneLimiter,
}

impl Monitor {
    async fn pass(&mut self, nodes: &Store<Node>, leases: &Store<NodeLease>, pods: &Store<Pod>) {
        let now = Timestamp::now();
        let leases = leases.state();
        let renewals: HashMap<&str, Timestamp> =
            leases.iter().filter_map(|l| Some((l.metadata.name.as_deref()?, l.renew?))).collect();
        // The informer's nodes as they are; a node is copied only when its status is rewritten.
        let listed = nodes.state();
        let mut current: Vec<std::sync::Arc<Node>> = Vec::with_capacity(listed.len());
        let names: HashSet<&str> = listed.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
        self.health.retain(|name, _| names.contains(name.as_str()));
        drop(names);
        for node in listed {
            let name = node.name_any();
            let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let renewed = renewals.get(name.as_str()).copied();
            let h = observe(self.health.get(&name), condition(&node, "Ready"), renewed, created, now);
            let mut node = node;
            if is_stale(&h, &self.config, now) {
                let conditions = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
                if let Some(updated) = unknown_conditions(&conditions, node.metadata.creation_timestamp.as_ref(), now) {
                    tracing::info!(node = %name, "node stopped posting status; marking its conditions Unknown");
                    let mut marked = (*node).clone();
                    marked.status.get_or_insert_with(Default::default).conditions = Some(updated);
                    match self.write_status(&marked).await {
                        Ok(n) => node = std::sync::Arc::new(n),
                        Err(e) => {
                            tracing::debug!(node = %name, error = %e, "marking node Unknown");
                            self.health.insert(name, h);
                            continue;
                        }
                    }
                }
            }
            let was = h.ready.clone();
            let mut h = h;
            h.ready = ready_status(&node).map(str::to_string);
            if was.as_deref() == Some("True") && h.ready.as_deref() != Some("True") {
                publish(
                    &self.recorder,
                    &node_ref(&node),
                    EventType::Normal,
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                )
                .await;
            }
            self.health.insert(name, h);
            current.push(node);
        }
        self.mark_pods_not_ready(&current, pods).await;
        self.taint_pass(&current).await;
    }

    async fn write_status(&self, node: &Node) -> Result<Node, kube::Error> {
        let api: Api<Node> = Api::all(self.client.clone());
        api.replace_status(&node.name_any(), &PostParams::default(), node).await
    }

    /// Upstream's `MarkPodsNotReady`, level-triggered: every pod on a node that is not ready
    /// whose `Ready` condition is still `True` gets `Ready=False` and a `NodeNotReady` event.
    async fn mark_pods_not_ready(&self, nodes: &[std::sync::Arc<Node>], pods: &Store<Pod>) {
        let unready: HashSet<String> = nodes.iter().filter(|n| !is_ready(n)).map(|n| n.name_any()).collect();
        if unready.is_empty() {
            return;
        }
        let now = Time(Timestamp::now());
        for pod in pods.state() {
            if !node_of(&pod).is_some_and(|n| unready.contains(n)) || !pod_is_ready(&pod) {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            let patch = json!({
                "metadata": {"uid": pod.metadata.uid},
                "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}]},
            });
            match api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
                Ok(_) => {
                    tracing::info!(pod = %pod_key(&pod), "marking pod not ready: its node is not ready");
                    publish(
                        &self.recorder,
                        &pod_ref(&pod),
                        EventType::Warning,
                        "NodeNotReady",
                        "Node is not ready".into(),
                    )
                    .await;
                }
                Err(e) if support::is_not_found(&e) => {}
                Err(e) => tracing::debug!(pod = %pod_key(&pod), error = %e, "marking pod not ready"),
            }
        }
    }

    async fn taint_pass(&mut self, nodes: &[std::sync::Arc<Node>]) {
        // Zone states from the nodes' Ready conditions.
        let keys: Vec<String> = nodes.iter().map(|n| zone_key(n)).collect();
        let mut zones: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (node, key) in nodes.iter().zip(&keys) {
            let e = zones.entry(key.as_str()).or_default();
            if is_ready(node) { e.0 += 1 } else { e.1 += 1 }
        }
        let rates = self.config.rates;
        let all_full =
            !zones.is_empty() && zones.values().all(|(r, n)| rates.zone_state(*r, *n) == ZoneState::FullDisruption);
        let now = Timestamp::now();
        let instant = Instant::now();
        let api: Api<Node> = Api::all(self.client.clone());
        for (node, zone) in nodes.iter().zip(&keys) {
            let policy = if all_full { NoExecute::Clear } else { NoExecute::Allow };
            let Some(mut plan) = plan_taints(node, policy, now) else { continue };
            if plan.added_no_execute {
                let (r, n) = zones.get(zone.as_str()).copied().unwrap_or_default();
                let qps = rates.zone_qps(rates.zone_state(r, n), r + n);
                if !self.limiter.try_take(zone, qps, instant) {
                    match plan_taints(node, NoExecute::Hold, now) {
                        Some(p) => plan = p,
                        None => continue,
                    }
                }
            }
            let taints = if plan.taints.is_empty() { Value::Null } else { json!(plan.taints) };
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": taints},
            });
            let name = node.name_any();
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
                Ok(_) => tracing::info!(node = %name, taints = ?summary(&plan.taints), "updated node taints"),
                Err(e) => {
                    if plan.added_no_execute {
                        // Nothing was tainted: the zone's token is not spent.
                        self.limiter.give_back(zone);
                    }
                    if !(support::is_conflict(&e) || support::is_not_found(&e)) {
                        tracing::warn!(node = %name, error = %e, "updating node taints");
                    }
                }
            }
        }
    }
}

fn summary(taints: &[Taint]) -> Vec<String> {
    taints.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect()
}

struct Evictor {
    client: Client,
    recorder: Recorder,
    /// Pods with a deletion scheduled: uid → (namespace/name, when).
    scheduled: HashMap<String, (String, Timestamp)>,
    /// When a `NoExecute` taint without `timeAdded` was first seen: (node, key, value) → time.
    first_seen: HashMap<(String, String, String), Timestamp>,
}

impl Evictor {
    async fn pass(&mut self, nodes: &Store<Node>, pods: &Store<Pod>) {
        let now = Timestamp::now();
        let tainted: HashMap<String, std::sync::Arc<Node>> =
            nodes.state().into_iter().filter(|n| !no_execute_taints(n).is_empty()).map(|n| (n.name_any(), n)).collect();
        self.first_seen.retain(|(node, _, _), _| tainted.contains_key(node));
        if tainted.is_empty() && self.scheduled.is_empty() {
            return;
        }
        let mut still: HashSet<String> = HashSet::new();
        for pod in pods.state() {
            let Some(node) = node_of(&pod).and_then(|n| tainted.get(n)) else { continue };
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let taints = no_execute_taints(node);
            let node_name = node.name_any();
            for t in taints.iter().filter(|t| t.time_added.is_none()) {
                let key = (node_name.clone(), t.key.clone(), t.value.clone().unwrap_or_default());
                self.first_seen.entry(key).or_insert(now);
            }
            let since = exposed_since(&taints, &pod, |t| {
                let key = (node_name.clone(), t.key.clone(), t.value.clone().unwrap_or_default());
                self.first_seen.get(&key).copied().unwrap_or(now)
            });
            let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
            let due = match eviction_time(&taints, &tolerations, since) {
                Eviction::Never => continue,
                Eviction::Now => now,
                // An earlier deadline already scheduled stands, as upstream.
                Eviction::At(t) => self.scheduled.get(&uid).map_or(t, |(_, s)| t.min(*s)),
            };
            if due <= now {
                self.scheduled.remove(&uid);
                self.evict(&pod).await;
            } else {
                still.insert(uid.clone());
                self.scheduled.insert(uid, (pod_key(&pod), due));
            }
        }
        // Scheduled deletions that no longer apply (taints gone, tolerations forever, pod gone).
        let cancelled: Vec<(String, String)> = self
            .scheduled
            .iter()
            .filter(|(uid, _)| !still.contains(*uid))
            .map(|(uid, (key, _))| (uid.clone(), key.clone()))
            .collect();
        for (uid, key) in cancelled {
            self.scheduled.remove(&uid);
            let (ns, name) = key.split_once('/').unwrap_or_default();
            let live = pods.state().into_iter().find(|p| p.metadata.uid.as_deref() == Some(uid.as_str()));
            if let Some(pod) = live.filter(|p| p.metadata.deletion_timestamp.is_none()) {
                tracing::info!(pod = %key, "cancelling the scheduled taint eviction");
                publish(
                    &self.recorder,
                    &pod_ref(&pod),
                    EventType::Normal,
                    "TaintManagerEviction",
                    format!("Cancelling deletion of Pod {ns}/{name}"),
                )
                .await;
            }
        }
    }

    /// Adds the `DisruptionTarget` condition and deletes the pod (its own grace period).
    async fn evict(&self, pod: &Pod) {
        let key = pod_key(pod);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let uid = pod.metadata.uid.clone();
        publish(
            &self.recorder,
            &pod_ref(pod),
            EventType::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {key}"),
        )
        .await;
        let patch = json!({
            "metadata": {"uid": uid},
            "status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastTransitionTime": Time(Timestamp::now()),
            }]},
        });
        if let Err(e) = api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await {
            if support::is_not_found(&e) || support::is_conflict(&e) {
                return;
            }
            tracing::debug!(pod = %key, error = %e, "adding the DisruptionTarget condition");
        }
        let dp =
            DeleteParams { preconditions: Some(Preconditions { uid, resource_version: None }), ..Default::default() };
        match api.delete(&pod.name_any(), &dp).await {
            Ok(_) => tracing::info!(pod = %key, "deleted the pod for its node's NoExecute taints"),
            Err(e) if matches!(api_status(&e), Some(404 | 409)) => {}
            Err(e) => tracing::warn!(pod = %key, error = %e, "taint eviction"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn cond(kind: &str, status: &str, heartbeat: i64) -> NodeCondition {
        NodeCondition {
            type_: kind.into(),
            status: status.into(),
            reason: Some("KubeletReady".into()),
            message: Some("kubelet is posting ready status".into()),
            last_heartbeat_time: Some(Time(ts(heartbeat))),
            last_transition_time: Some(Time(ts(0))),
        }
    }

    fn node(ready: Option<&str>, taints: Vec<Taint>) -> Node {
        let mut conditions = vec![cond("MemoryPressure", "False", 0)];
        if let Some(r) = ready {
            conditions.push(cond("Ready", r, 0));
        }
        Node {
            metadata: ObjectMeta { name: Some("n1".into()), ..Default::default() },
            spec: Some(NodeSpec { taints: (!taints.is_empty()).then_some(taints), ..Default::default() }),
            status: Some(NodeStatus { conditions: Some(conditions), ..Default::default() }),
        }
    }

    fn keys(plan: &TaintPlan) -> Vec<String> {
        summary(&plan.taints)
    }

    fn toleration(key: &str, effect: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.to_string()),
            operator: Some("Exists".into()),
            effect: (!effect.is_empty()).then(|| effect.to_string()),
            toleration_seconds: seconds,
            value: None,
        }
    }

    #[test]
    fn probe_moves_with_lease_renewals_and_heartbeats_only() {
        let config = Config::new(Duration::from_secs(40));
        let ready = cond("Ready", "True", 5);
        let h = observe(None, Some(&ready), Some(ts(5)), Some(ts(0)), ts(10));
        assert_eq!(h.probe, ts(10));
        // Nothing new: the probe stays, and the node goes stale after the grace period.
        let h = observe(Some(&h), Some(&ready), Some(ts(5)), Some(ts(0)), ts(30));
        assert_eq!(h.probe, ts(10));
        assert!(!is_stale(&h, &config, ts(50)));
        assert!(is_stale(&h, &config, ts(51)));
        // A renewed lease counts as a heartbeat, whatever its own timestamp says.
        let h2 = observe(Some(&h), Some(&ready), Some(ts(6)), Some(ts(0)), ts(60));
        assert_eq!(h2.probe, ts(60));
        assert!(!is_stale(&h2, &config, ts(61)));
        // So does a new Ready heartbeat.
        let h3 = observe(Some(&h), Some(&cond("Ready", "True", 6)), Some(ts(5)), Some(ts(0)), ts(70));
        assert_eq!(h3.probe, ts(70));
        // A node that never posted Ready counts from its creation, with the startup grace.
        let h = observe(None, None, None, Some(ts(0)), ts(30));
        assert_eq!(h.probe, ts(0));
        assert!(!is_stale(&h, &config, ts(55)));
        assert!(is_stale(&h, &config, ts(61)));
    }

    #[test]
    fn silent_nodes_get_unknown_conditions() {
        let conditions = vec![cond("Ready", "True", 5), cond("MemoryPressure", "False", 5), cond("Custom", "True", 5)];
        let created = Time(ts(0));
        let out = unknown_conditions(&conditions, Some(&created), ts(100)).unwrap();
        let ready = out.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
        assert_eq!(ready.last_transition_time, Some(Time(ts(100))));
        assert_eq!(ready.last_heartbeat_time, Some(Time(ts(5))), "the last heartbeat is kept");
        let disk = out.iter().find(|c| c.type_ == "DiskPressure").unwrap();
        assert_eq!(disk.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(out.iter().find(|c| c.type_ == "Custom").unwrap().status, "True");
        assert_eq!(out.len(), 5);
        // Already Unknown everywhere: nothing to write.
        assert_eq!(unknown_conditions(&out, Some(&created), ts(200)), None);
    }

    #[test]
    fn taints_follow_the_ready_condition() {
        let now = ts(100);
        assert_eq!(plan_taints(&node(Some("True"), vec![]), NoExecute::Allow, now), None);
        let plan = plan_taints(&node(Some("Unknown"), vec![]), NoExecute::Allow, now).unwrap();
        assert_eq!(keys(&plan), [format!("{TAINT_UNREACHABLE}:NoSchedule"), format!("{TAINT_UNREACHABLE}:NoExecute")]);
        assert!(plan.added_no_execute);
        assert!(plan.taints.iter().all(|t| t.time_added == Some(Time(now))));
        // Rate limited: the NoSchedule taint only.
        let plan = plan_taints(&node(Some("False"), vec![]), NoExecute::Hold, now).unwrap();
        assert_eq!(keys(&plan), [format!("{TAINT_NOT_READY}:NoSchedule")]);
        assert!(!plan.added_no_execute);
        // Unknown → False swaps the NoExecute taint even when adding is held back.
        let before = vec![
            taint(TAINT_UNREACHABLE, NO_SCHEDULE, ts(0)),
            Taint { key: "dedicated".into(), value: Some("gpu".into()), effect: NO_SCHEDULE.into(), time_added: None },
            taint(TAINT_UNREACHABLE, NO_EXECUTE, ts(0)),
        ];
        let plan = plan_taints(&node(Some("False"), before.clone()), NoExecute::Hold, now).unwrap();
        assert_eq!(
            keys(&plan),
            [
                "dedicated:NoSchedule".to_string(),
                format!("{TAINT_NOT_READY}:NoSchedule"),
                format!("{TAINT_NOT_READY}:NoExecute")
            ]
        );
        assert!(!plan.added_no_execute);
        // Ready again: ours go, the others stay.
        let plan = plan_taints(&node(Some("True"), before.clone()), NoExecute::Allow, now).unwrap();
        assert_eq!(keys(&plan), ["dedicated:NoSchedule"]);
        // Every zone down: NoExecute taints are withdrawn, NoSchedule ones stay.
        let plan = plan_taints(&node(Some("Unknown"), before.clone()), NoExecute::Clear, now).unwrap();
        assert_eq!(keys(&plan), [format!("{TAINT_UNREACHABLE}:NoSchedule"), "dedicated:NoSchedule".to_string()]);
        // Unchanged taints keep their timeAdded: no write.
        assert_eq!(plan_taints(&node(Some("Unknown"), before), NoExecute::Allow, now), None);
        // No Ready condition yet: no readiness taints at all.
        assert_eq!(plan_taints(&node(None, vec![]), NoExecute::Allow, now), None);
    }

    #[test]
    fn pressure_and_cordon_taints() {
        let mut n = node(Some("True"), vec![]);
        n.status.as_mut().unwrap().conditions.as_mut().unwrap().push(cond("DiskPressure", "True", 0));
        n.spec.as_mut().unwrap().unschedulable = Some(true);
        let plan = plan_taints(&n, NoExecute::Allow, ts(0)).unwrap();
        assert_eq!(
            keys(&plan),
            [format!("{TAINT_DISK_PRESSURE}:NoSchedule"), format!("{TAINT_UNSCHEDULABLE}:NoSchedule")]
        );
    }

    #[test]
    fn zone_states_and_rates() {
        let r = EvictionRates::default();
        assert_eq!(r.zone_state(3, 0), ZoneState::Normal);
        assert_eq!(r.zone_state(0, 1), ZoneState::FullDisruption);
        assert_eq!(r.zone_state(1, 2), ZoneState::Normal);
        assert_eq!(r.zone_state(2, 3), ZoneState::PartialDisruption);
        assert_eq!(r.zone_qps(ZoneState::PartialDisruption, 10), 0.0);
        assert_eq!(r.zone_qps(ZoneState::PartialDisruption, 100), 0.01);
        assert_eq!(r.zone_qps(ZoneState::FullDisruption, 1), 0.1);
        // Other settings move the same decisions.
        let r =
            EvictionRates { rate: 2.0, secondary_rate: 0.5, large_cluster_threshold: 5, unhealthy_zone_threshold: 0.3 };
        assert_eq!(r.zone_state(6, 3), ZoneState::PartialDisruption);
        assert_eq!(r.zone_state(8, 3), ZoneState::Normal);
        assert_eq!(r.zone_qps(ZoneState::PartialDisruption, 9), 0.5);
        assert_eq!(r.zone_qps(ZoneState::PartialDisruption, 5), 0.0);
        assert_eq!(r.zone_qps(ZoneState::Normal, 9), 2.0);
        assert!(r.check().is_ok());
        assert!(EvictionRates { rate: -1.0, ..r }.check().is_err());
        assert!(EvictionRates { secondary_rate: f64::NAN, ..r }.check().is_err());
        assert!(EvictionRates { unhealthy_zone_threshold: 0.0, ..r }.check().is_err());
        assert!(EvictionRates { unhealthy_zone_threshold: 1.5, ..r }.check().is_err());
        let mut limiter = ZoneLimiter::default();
        let t0 = Instant::now();
        assert!(limiter.try_take("a", 0.1, t0));
        assert!(!limiter.try_take("a", 0.1, t0 + Duration::from_secs(5)));
        assert!(limiter.try_take("b", 0.1, t0));
        assert!(limiter.try_take("a", 0.1, t0 + Duration::from_secs(10)));
        assert!(!limiter.try_take("c", 0.0, t0));
        limiter.give_back("a");
        assert!(limiter.try_take("a", 0.1, t0 + Duration::from_secs(11)));
    }

    #[test]
    fn eviction_time_from_tolerations() {
        let unreachable = taint(TAINT_UNREACHABLE, NO_EXECUTE, ts(0));
        let other =
            Taint { key: "maintenance".into(), value: Some("now".into()), effect: NO_EXECUTE.into(), time_added: None };
        let since = ts(10);
        assert_eq!(eviction_time(&[], &[], since), Eviction::Never);
        assert_eq!(eviction_time(&[&unreachable], &[], since), Eviction::Now);
        let t300 = toleration(TAINT_UNREACHABLE, NO_EXECUTE, Some(300));
        assert_eq!(eviction_time(&[&unreachable], std::slice::from_ref(&t300), since), Eviction::At(ts(310)));
        // Without tolerationSeconds: tolerated forever.
        let forever = toleration(TAINT_UNREACHABLE, "", None);
        assert_eq!(eviction_time(&[&unreachable], std::slice::from_ref(&forever), since), Eviction::Never);
        // The first matching toleration per taint counts; the smallest time wins across taints.
        assert_eq!(eviction_time(&[&unreachable], &[forever.clone(), t300.clone()], since), Eviction::Never);
        let all = toleration("", "", Some(60));
        assert_eq!(eviction_time(&[&unreachable, &other], &[t300.clone(), all], since), Eviction::At(ts(70)));
        // One taint untolerated: now.
        assert_eq!(eviction_time(&[&unreachable, &other], &[t300], since), Eviction::Now);
        assert_eq!(eviction_time(&[&unreachable], &[toleration(TAINT_UNREACHABLE, "", Some(0))], since), Eviction::Now);
        // Equal operator compares values.
        let mut eq = toleration("maintenance", NO_EXECUTE, None);
        eq.operator = Some("Equal".into());
        eq.value = Some("later".into());
        assert!(!tolerates(&eq, &other));
        eq.value = Some("now".into());
        assert!(tolerates(&eq, &other));
        assert!(!tolerates(&toleration("maintenance", NO_SCHEDULE, None), &other));
    }

    #[test]
    fn exposure_counts_from_taint_or_scheduling() {
        let tainted = taint(TAINT_UNREACHABLE, NO_EXECUTE, ts(100));
        let mut pod = Pod {
            metadata: ObjectMeta { creation_timestamp: Some(Time(ts(50))), ..Default::default() },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus::default()),
        };
        assert_eq!(exposed_since(&[&tainted], &pod, |_| ts(0)), ts(100));
        pod.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(150))),
            ..Default::default()
        }]);
        assert_eq!(exposed_since(&[&tainted], &pod, |_| ts(0)), ts(150));
        let untimed = Taint { time_added: None, ..tainted.clone() };
        assert_eq!(exposed_since(&[&untimed], &pod, |_| ts(200)), ts(200));
    }

    #[test]
    fn zone_keys_use_region_and_zone() {
        let mut n = node(Some("True"), vec![]);
        assert_eq!(zone_key(&n), "");
        n.metadata.labels = Some([("topology.kubernetes.io/zone".to_string(), "zone-a".to_string())].into());
        assert_eq!(zone_key(&n), ":\0:zone-a");
    }
}
