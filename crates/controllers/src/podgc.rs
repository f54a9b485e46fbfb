//! Pod garbage collection, after upstream's `pkg/controller/podgc` (behaviour only).
//!
//! Every check period (20 s upstream) it force-deletes (grace period 0):
//!
//! - **orphans**: pods bound to a node that does not exist. A missing node is first quarantined
//!   (40 s upstream) in case it is only late to appear, then confirmed gone with a live GET; its
//!   pods get phase `Failed` and the `DisruptionTarget` condition (`DeletionByPodGC`, "PodGC: node
//!   no longer exists") before they go;
//! - **terminating pods on out-of-service nodes**: pods with a `deletionTimestamp` on a node that
//!   is not ready and carries the `node.kubernetes.io/out-of-service` taint (marked `Failed`
//!   first);
//! - **unscheduled terminating pods**: a `deletionTimestamp` and no node;
//! - **terminated pods beyond the threshold**: when more than `terminated_threshold` pods
//!   (upstream's `--terminated-pod-gc-threshold`, 12500; 0 turns this off) are `Succeeded` or
//!   `Failed`, the surplus goes, evicted ones first, then oldest first.

use crate::Shutdown;
use crate::informers::Informers;
use crate::nodelifecycle::{Informer, TAINT_OUT_OF_SERVICE, ready_status};
use crate::support;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upstream's `--terminated-pod-gc-threshold` default.
pub const DEFAULT_TERMINATED_THRESHOLD: usize = 12_500;
/// Upstream's check period.
pub const DEFAULT_CHECK_PERIOD: Duration = Duration::from_secs(20);
/// Upstream's quarantine for nodes missing from the informer.
pub const DEFAULT_QUARANTINE: Duration = Duration::from_secs(40);

/// Pod GC settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Terminated pods kept at most; 0 keeps them all.
    pub terminated_threshold: usize,
    /// How often the collector runs.
    pub check_period: Duration,
    /// How long a node must be missing before its pods count as orphans.
    pub quarantine: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            terminated_threshold: DEFAULT_TERMINATED_THRESHOLD,
            check_period: DEFAULT_CHECK_PERIOD,
            quarantine: DEFAULT_QUARANTINE,
        }
    }
}

impl Config {
    /// Upstream's settings, with the quarantine no longer than the node monitor grace period
    /// (and checks twice per quarantine), so a cluster tuned for quick node failure handling (a
    /// test) also collects orphans quickly.
    pub fn for_grace_period(grace: Duration) -> Self {
        let quarantine = DEFAULT_QUARANTINE.min(grace).max(Duration::from_secs(1));
        Config {
            quarantine,
            check_period: DEFAULT_CHECK_PERIOD.min(quarantine / 2).max(Duration::from_millis(500)),
            ..Config::default()
        }
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default()
}

fn node_of(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default()
}

/// Whether the pod has finished (`Succeeded` or `Failed`).
pub fn is_terminated(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn is_evicted(pod: &Pod) -> bool {
    is_terminated(pod) && pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// The terminated pods to delete so that at most `threshold` remain: evicted ones first, then
/// the oldest, names breaking ties. Nothing when `threshold` is 0.
pub fn terminated_surplus<'a>(pods: &[&'a Pod], threshold: usize) -> Vec<&'a Pod> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut done: Vec<&Pod> = pods.iter().copied().filter(|p| is_terminated(p)).collect();
    if done.len() <= threshold {
        return Vec::new();
    }
    let surplus = done.len() - threshold;
    done.sort_by(|a, b| {
        is_evicted(b)
            .cmp(&is_evicted(a))
            .then_with(|| created(a).cmp(&created(b)))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    done.truncate(surplus);
    done
}

/// Whether a terminating pod on `node` is to be force-deleted: the node is not ready and is
/// tainted out of service.
pub fn out_of_service(node: &Node) -> bool {
    ready_status(node) != Some("True")
        && node.spec.iter().flat_map(|s| s.taints.iter().flatten()).any(|t| t.key == TAINT_OUT_OF_SERVICE)
}

/// Runs the pod garbage collector until `shutdown` turns true.
pub async fn run(client: Client, informers: Informers, config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let nodes = Informer::shared(&informers.nodes);
    let pods = Informer::shared(&informers.pods);
    if !(nodes.ready(&shutdown).await && pods.ready(&shutdown).await) {
        return Ok(());
    }
    let mut gc = Collector { client, config: config.clone(), missing: HashMap::new() };
    let mut tick = tokio::time::interval(config.check_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = support::stopped(shutdown);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tick.tick() => gc.pass(&nodes.store, &pods.store).await,
        }
    }
}

struct Collector {
    client: Client,
    config: Config,
    /// Nodes that pods name but the informer lacks, with when that was first noticed.
    missing: HashMap<String, Instant>,
}

impl Collector {
    async fn pass(&mut self, nodes: &Store<Node>, pods: &Store<Pod>) {
        let nodes: HashMap<String, Arc<Node>> = nodes.state().into_iter().map(|n| (n.name_any(), n)).collect();
        let pods = pods.state();
        let all: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();

        for pod in terminated_surplus(&all, self.config.terminated_threshold) {
            self.force_delete(pod, None, "terminated pods above the threshold").await;
        }
        for pod in &all {
            if pod.metadata.deletion_timestamp.is_none() {
                continue;
            }
            match node_of(pod) {
                "" => self.force_delete(pod, None, "unscheduled and terminating").await,
                n if nodes.get(n).is_some_and(|n| out_of_service(n)) => {
                    self.force_delete(pod, None, "terminating on an out-of-service node").await
                }
                _ => {}
            }
        }

        // Orphans: quarantine nodes the informer lacks, then confirm with the API.
        let named: HashSet<&str> = all.iter().map(|p| node_of(p)).filter(|n| !n.is_empty()).collect();
        self.missing.retain(|n, _| named.contains(n.as_str()) && !nodes.contains_key(n));
        let now = Instant::now();
        for n in &named {
            if !nodes.contains_key(*n) {
                self.missing.entry(n.to_string()).or_insert(now);
            }
        }
        let due: Vec<String> = self
            .missing
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= self.config.quarantine)
            .map(|(n, _)| n.clone())
            .collect();
        let api: Api<Node> = Api::all(self.client.clone());
        let mut gone = HashSet::new();
        for n in due {
            match api.get_opt(&n).await {
                Ok(None) => {
                    gone.insert(n);
                }
                Ok(Some(_)) => {
                    self.missing.remove(&n);
                }
                Err(e) => tracing::debug!(node = %n, error = %e, "checking a missing node"),
            }
        }
        if gone.is_empty() {
            return;
        }
        let condition = json!({
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists",
            "lastTransitionTime": Time(Timestamp::now()),
        });
        for pod in all.iter().filter(|p| gone.contains(node_of(p))) {
            self.force_delete(pod, Some(&condition), "its node no longer exists").await;
        }
    }

    /// Marks a pod that has not finished `Failed` (with `condition`), then deletes it with grace
    /// period 0.
    async fn force_delete(&self, pod: &Pod, condition: Option<&serde_json::Value>, why: &str) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if !is_terminated(pod) {
            let mut status = json!({"phase": "Failed"});
            if let Some(c) = condition {
                status["conditions"] = json!([c]);
            }
            let patch = json!({"metadata": {"uid": pod.metadata.uid}, "status": status});
            match api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch)).await {
                Ok(_) => {}
                Err(e) if support::is_not_found(&e) || support::is_conflict(&e) => return,
                Err(e) => {
                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "pod GC: marking the pod Failed");
                    return;
                }
            }
        }
        match api.delete(&name, &DeleteParams::default().grace_period(0)).await {
            Ok(_) => tracing::info!(pod = %format!("{ns}/{name}"), "pod GC force-deleted the pod: {why}"),
            Err(e) if support::is_not_found(&e) => {}
            Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "pod GC: deleting the pod"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, PodStatus, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, phase: &str, created: i64, reason: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::from_second(1_700_000_000 + created).unwrap())),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                reason: reason.map(String::from),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn surplus_terminated_pods_go_evicted_then_oldest_first() {
        let pods = [
            pod("running", "Running", 0, None),
            pod("old", "Succeeded", 1, None),
            pod("new", "Failed", 5, None),
            pod("evicted", "Failed", 9, Some("Evicted")),
            pod("mid-b", "Succeeded", 3, None),
            pod("mid-a", "Succeeded", 3, None),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let names = |v: Vec<&Pod>| v.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        assert_eq!(names(terminated_surplus(&refs, 2)), ["evicted", "old", "mid-a"]);
        assert!(terminated_surplus(&refs, 5).is_empty());
        assert!(terminated_surplus(&refs, 0).is_empty(), "threshold 0 turns it off");
    }

    #[test]
    fn out_of_service_needs_taint_and_unready_node() {
        let mut node = Node {
            metadata: ObjectMeta { name: Some("n".into()), ..Default::default() },
            spec: Some(NodeSpec {
                taints: Some(vec![Taint {
                    key: TAINT_OUT_OF_SERVICE.into(),
                    value: Some("nodeshutdown".into()),
                    effect: "NoExecute".into(),
                    time_added: None,
                }]),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "Unknown".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        assert!(out_of_service(&node));
        node.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "True".into();
        assert!(!out_of_service(&node));
        node.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        node.spec.as_mut().unwrap().taints = None;
        assert!(!out_of_service(&node));
    }

    #[test]
    fn quick_grace_periods_shorten_the_quarantine() {
        let c = Config::for_grace_period(Duration::from_secs(4));
        assert_eq!(c.quarantine, Duration::from_secs(4));
        assert_eq!(c.check_period, Duration::from_secs(2));
        let c = Config::for_grace_period(Duration::from_secs(50));
        assert_eq!(c.quarantine, DEFAULT_QUARANTINE);
        assert_eq!(c.check_period, DEFAULT_CHECK_PERIOD);
        assert_eq!(c.terminated_threshold, DEFAULT_TERMINATED_THRESHOLD);
    }
}
