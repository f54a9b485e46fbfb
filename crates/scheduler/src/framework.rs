//! The plugin interfaces and the per-pod facts every plugin reads.

use crate::cache::NodeInfo;
use crate::resources::{Resource, pod_non_zero_requests, pod_requests};
use k8s_openapi::api::core::v1::Pod;
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

/// The highest score a plugin gives a node after normalisation.
pub const MAX_NODE_SCORE: i64 = 100;

/// Why a node cannot take a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Might fit if other pods were removed (preemption could help).
    Unschedulable,
    /// Removing pods would not help.
    UnschedulableAndUnresolvable,
}

/// A filter plugin's verdict against one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
    pub plugin: &'static str,
}

impl Status {
    pub fn unschedulable(plugin: &'static str, reason: impl Into<String>) -> Status {
        Status { code: Code::Unschedulable, reasons: vec![reason.into()], plugin }
    }

    pub fn unresolvable(plugin: &'static str, reason: impl Into<String>) -> Status {
        Status { code: Code::UnschedulableAndUnresolvable, reasons: vec![reason.into()], plugin }
    }
}

/// A host port a container asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports cannot both be bound on one node.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod with the facts the plugins need, computed once.
#[derive(Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    pub uid: String,
    pub requests: Resource,
    pub non_zero_requests: Resource,
    pub host_ports: Vec<HostPort>,
    pub priority: i32,
    /// The pod has required pod anti-affinity terms (other pods must stay away from it).
    pub has_required_anti_affinity: bool,
    /// The pod has any pod affinity or anti-affinity terms (required or preferred).
    pub has_pod_affinity_terms: bool,
}

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or(""))
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let mut host_ports = Vec::new();
        if let Some(spec) = &pod.spec {
            for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
                for p in c.ports.iter().flatten() {
                    if let Some(port) = p.host_port.filter(|p| *p > 0) {
                        host_ports.push(HostPort {
                            ip: p.host_ip.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "0.0.0.0".into()),
                            protocol: p.protocol.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "TCP".into()),
                            port,
                        });
                    }
                }
            }
        }
        PodInfo {
            key: pod_key(&pod),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            requests: pod_requests(&pod),
            non_zero_requests: pod_non_zero_requests(&pod),
            priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
            host_ports,
            has_required_anti_affinity: pod
                .spec
                .as_ref()
                .and_then(|s| s.affinity.as_ref())
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
                .is_some_and(|t| !t.is_empty()),
            has_pod_affinity_terms: pod
                .spec
                .as_ref()
                .and_then(|s| s.affinity.as_ref())
                .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some()),
            pod,
        }
    }
}

/// Per-cycle data plugins compute once before filtering or scoring (upstream's CycleState),
/// keyed by plugin name. A cycle holds a handful of entries, so lookups scan a short list.
#[derive(Default)]
pub struct CycleState {
    entries: Vec<(&'static str, Box<dyn Any + Send + Sync>)>,
}

impl CycleState {
    pub fn new() -> CycleState {
        CycleState::default()
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn insert(&mut self, key: &'static str, value: Box<dyn Any + Send + Sync>) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&(dyn Any + Send + Sync)> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_ref())
    }

    /// The value stored under `key`, if it is a `T`.
    pub fn read<T: Any>(&self, key: &str) -> Option<&T> {
        self.get(key).and_then(|v| v.downcast_ref::<T>())
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// What a pre-filter tells the framework about its filter for this cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreFilter {
    /// Run the filter on each node.
    Run,
    /// The filter accepts every node this cycle (upstream's `Skip`): the framework need not
    /// call it.
    Skip,
}

/// Decides whether a node can run a pod.
pub trait FilterPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// Computes what the filter needs across all nodes (e.g. counts of matching pods).
    fn pre_filter(&self, _pod: &PodInfo, _nodes: &[&NodeInfo], _state: &mut CycleState) -> PreFilter {
        PreFilter::Run
    }
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status>;
}

/// Cycle state key of the namespaces' labels (an `Arc<NamespaceLabels>`), set by the framework.
pub const NAMESPACE_LABELS: &str = "framework/NamespaceLabels";

/// The namespaces' labels of this cycle (none known when the framework set none).
pub fn namespace_labels(state: &CycleState) -> Arc<crate::selectors::NamespaceLabels> {
    state.read::<Arc<crate::selectors::NamespaceLabels>>(NAMESPACE_LABELS).cloned().unwrap_or_default()
}

/// Cycle state key of the cache's [`AffinityCounts`], set by the framework.
pub const AFFINITY_COUNTS: &str = "framework/AffinityCounts";

/// How many pods in the cache (on any node) have pod (anti-)affinity terms. The counts cover
/// at least the pods on the nodes the plugins are given, so zero means none of those has any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AffinityCounts {
    /// Pods with required anti-affinity terms.
    pub required_anti_affinity: usize,
    /// Pods with any pod affinity or anti-affinity terms.
    pub affinity_terms: usize,
}

/// The cache's affinity counts of this cycle, when the framework set them.
pub fn affinity_counts(state: &CycleState) -> Option<AffinityCounts> {
    state.read::<AffinityCounts>(AFFINITY_COUNTS).copied()
}

/// Cycle state key of how many nodes report each image (an `Arc<ImageNodes>`), set by the
/// framework from the cache.
pub const IMAGE_NODES: &str = "framework/ImageNodes";

/// Normalised image name → number of nodes with a Node object that report the image.
pub type ImageNodes = HashMap<String, usize>;

/// Ranks the nodes that passed the filters.
pub trait ScorePlugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// Computes what scoring needs, given the feasible `nodes` and all nodes of the cluster.
    /// Returns `Some(raw)` when `score` would give every feasible node `raw`: the framework
    /// then does not call `score` this cycle.
    fn pre_score(
        &self,
        _pod: &PodInfo,
        _nodes: &[&NodeInfo],
        _all_nodes: &[&NodeInfo],
        _state: &mut CycleState,
    ) -> Option<i64> {
        None
    }
    /// A raw score for one node.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64;
    /// Brings the raw scores of all feasible nodes into 0..=100 (default: already there).
    /// Scores that are all equal must normalise to what a lone node with that score gets: the
    /// framework normalises a raw score every node shares (see `pre_score`) as one node.
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// Scales scores so the highest becomes 100; `reverse` then turns high into low. With all
/// scores zero, `reverse` gives every node 100.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let scaled = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - scaled } else { scaled };
    }
}
