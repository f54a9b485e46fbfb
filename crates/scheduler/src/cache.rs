//! The scheduler's view of the cluster: nodes, and the pods that count on them (bound pods
//! from the API, plus pods assumed by this scheduler whose binding has not come back yet).

use crate::framework::{HostPort, PodInfo};
use crate::plugins::image_locality::normalized_image_name;
use crate::resources::Resource;
use k8s_openapi::api::core::v1::{Node, Pod};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One node with the pods on it and what they request.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    /// `None` while pods are known on a node that is not (or no longer) in the cache.
    pub node: Option<Arc<Node>>,
    pub allocatable: Resource,
    pub requested: Resource,
    /// Requests with scoring defaults for containers that request nothing.
    pub non_zero_requested: Resource,
    pub pods: BTreeMap<String, Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    /// How many of the pods have required anti-affinity terms.
    pub pods_with_required_anti_affinity: usize,
    /// How many of the pods have any pod affinity or anti-affinity terms.
    pub pods_with_affinity_terms: usize,
    /// Images the node reports (normalised name → size in bytes).
    pub images: HashMap<String, i64>,
}

impl NodeInfo {
    /// A node with no pods, for tests and new nodes.
    pub fn new(node: Node) -> NodeInfo {
        let mut info = NodeInfo::default();
        info.set_node(Arc::new(node));
        info
    }

    pub fn name(&self) -> &str {
        self.node.as_ref().and_then(|n| n.metadata.name.as_deref()).unwrap_or("")
    }

    /// The node's value of a label (topology domains).
    pub fn label(&self, key: &str) -> Option<&str> {
        self.node.as_ref().and_then(|n| n.metadata.labels.as_ref()).and_then(|l| l.get(key)).map(String::as_str)
    }

    fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable =
            node.status.as_ref().and_then(|s| s.allocatable.as_ref()).map(Resource::from_list).unwrap_or_default();
        self.images.clear();
        let images = node.status.as_ref().and_then(|s| s.images.as_ref());
        for image in images.into_iter().flatten() {
            for name in image.names.iter().flatten() {
                self.images.insert(normalized_image_name(name), image.size_bytes.unwrap_or(0));
            }
        }
        self.node = Some(node);
    }

    /// Counts a pod on this node.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero_requests);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        self.pods_with_required_anti_affinity += usize::from(pod.has_required_anti_affinity);
        self.pods_with_affinity_terms += usize::from(pod.has_pod_affinity_terms);
        self.pods.insert(pod.key.clone(), pod);
    }

    /// Stops counting a pod; false when it was not here.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(pod) = self.pods.remove(key) else { return false };
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero_requests);
        self.pods_with_required_anti_affinity -= usize::from(pod.has_required_anti_affinity);
        self.pods_with_affinity_terms -= usize::from(pod.has_pod_affinity_terms);
        for port in &pod.host_ports {
            if let Some(i) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(i);
            }
        }
        true
    }
}

#[derive(Debug)]
struct PodState {
    node: String,
    uid: String,
    assumed: bool,
}

/// Nodes and pods, keyed by name.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: BTreeMap<String, NodeInfo>,
    pods: HashMap<String, PodState>,
    /// Pods that preempted others, by key: the node they wait for, and the pod. Filters see
    /// them on that node (for pods of lower or equal priority) so the freed room is kept.
    nominated: HashMap<String, (String, Arc<PodInfo>)>,
    /// Namespace labels, for affinity terms with a `namespaceSelector`.
    namespaces: Arc<crate::selectors::NamespaceLabels>,
}

/// Whether a pod has finished and no longer holds resources.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

impl Cache {
    pub fn new() -> Cache {
        Cache::default()
    }

    /// Records a namespace's labels.
    pub fn upsert_namespace(&mut self, name: &str, labels: std::collections::BTreeMap<String, String>) {
        if self.namespaces.get(name) != Some(&labels) {
            Arc::make_mut(&mut self.namespaces).insert(name.to_string(), labels);
        }
    }

    /// Forgets a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        if self.namespaces.contains_key(name) {
            Arc::make_mut(&mut self.namespaces).remove(name);
        }
    }

    /// Every namespace's labels.
    pub fn namespaces(&self) -> Arc<crate::selectors::NamespaceLabels> {
        self.namespaces.clone()
    }

    /// Adds or replaces a node; true when its scheduling-relevant properties changed (or it is new).
    pub fn upsert_node(&mut self, node: Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let entry = self.nodes.entry(name).or_default();
        let changed = entry.node.as_deref().is_none_or(|old| scheduling_properties_changed(old, &node));
        entry.set_node(Arc::new(node));
        changed
    }

    /// Removes a node; its pods stay accounted until they go.
    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            if info.pods.is_empty() {
                self.nodes.remove(name);
            } else {
                info.node = None;
                info.allocatable = Resource::default();
            }
        }
    }

    /// Node names currently known with their Node object.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().filter(|(_, n)| n.node.is_some()).map(|(k, _)| k.clone()).collect()
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name).filter(|n| n.node.is_some())
    }

    /// All nodes that have a Node object, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values().filter(|n| n.node.is_some())
    }

    pub fn node_count(&self) -> usize {
        self.nodes.values().filter(|n| n.node.is_some()).count()
    }

    fn place(&mut self, node: &str, info: Arc<PodInfo>, assumed: bool) {
        let key = info.key.clone();
        let uid = info.uid.clone();
        self.nodes.entry(node.to_string()).or_default().add_pod(info);
        self.pods.insert(key, PodState { node: node.to_string(), uid, assumed });
    }

    fn unplace(&mut self, key: &str) -> Option<PodState> {
        let state = self.pods.remove(key)?;
        if let Some(n) = self.nodes.get_mut(&state.node) {
            n.remove_pod(key);
            if n.node.is_none() && n.pods.is_empty() {
                self.nodes.remove(&state.node);
            }
        }
        Some(state)
    }

    /// Counts a pod on `node` before its binding is confirmed.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.nominated.remove(&pod.key);
        self.unplace(&pod.key);
        self.place(node, pod, true);
    }

    /// Undoes [`Cache::assume`] after a failed binding (no-op if the API already confirmed a
    /// binding for the pod).
    pub fn forget(&mut self, key: &str) {
        if self.pods.get(key).is_some_and(|s| s.assumed) {
            self.unplace(key);
        }
    }

    /// Whether the pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|s| s.assumed)
    }

    /// A pod seen with `spec.nodeName` set (add or update). Terminal pods are removed.
    /// True when the pod was not counted anywhere before (neither bound nor assumed).
    pub fn upsert_bound_pod(&mut self, pod: Arc<Pod>) -> bool {
        let key = crate::framework::pod_key(&pod);
        if is_terminal(&pod) {
            self.unplace(&key);
            return false;
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        self.nominated.remove(&key);
        let known = self.unplace(&key).is_some();
        self.place(&node, Arc::new(PodInfo::new(pod)), false);
        !known
    }

    /// A pod deleted from the API (or a pod whose uid changed).
    pub fn remove_pod(&mut self, pod: &Pod) {
        let key = crate::framework::pod_key(pod);
        self.nominated.remove(&key);
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        if self.pods.get(&key).is_some_and(|s| uid.is_empty() || s.uid.is_empty() || s.uid == uid) {
            self.unplace(&key);
        }
    }

    /// Keys of all bound or assumed pods.
    pub fn pod_keys(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    /// Reserves room on `node` for a pod that preempted others there.
    pub fn nominate(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.nominated.insert(pod.key.clone(), (node.to_string(), pod));
    }

    /// Drops a nomination (the pod left the queue).
    pub fn clear_nomination(&mut self, key: &str) {
        self.nominated.remove(key);
    }

    /// Nominated pods on `node` that a pod of `priority` must leave room for (its own
    /// nomination excluded).
    pub fn nominated_on(&self, node: &str, priority: i32, except: &str) -> Vec<Arc<PodInfo>> {
        if self.nominated.is_empty() {
            return Vec::new();
        }
        self.nominated
            .iter()
            .filter(|(k, (n, p))| n == node && p.priority >= priority && k.as_str() != except)
            .map(|(_, (_, p))| p.clone())
            .collect()
    }

    /// Whether the pod's nominated node still has lower-priority pods terminating (its
    /// earlier victims), in which case it must not preempt again.
    pub fn nominated_node_has_terminating_victims(&self, key: &str) -> bool {
        let Some((node, pod)) = self.nominated.get(key) else { return false };
        self.nodes.get(node).is_some_and(|n| {
            n.pods.values().any(|p| p.priority < pod.priority && p.pod.metadata.deletion_timestamp.is_some())
        })
    }

    /// Removes a pod by key (used after a relist).
    pub fn remove_pod_key(&mut self, key: &str) {
        self.unplace(key);
    }
}

/// Whether an update to a node may make unschedulable pods fit (upstream looks at the same
/// fields and ignores heartbeats).
fn scheduling_properties_changed(old: &Node, new: &Node) -> bool {
    let spec = |n: &Node| n.spec.as_ref().map(|s| (s.unschedulable, s.taints.clone()));
    let status = |n: &Node| {
        n.status.as_ref().map(|s| {
            let ready = s.conditions.iter().flatten().map(|c| (c.type_.clone(), c.status.clone())).collect::<Vec<_>>();
            (s.allocatable.clone(), ready)
        })
    };
    old.metadata.labels != new.metadata.labels || spec(old) != spec(new) || status(old) != status(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}))
            .unwrap()
    }

    fn pod(name: &str, node: Option<&str>, cpu: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn assumed_pods_count_until_forgotten_or_confirmed() {
        let mut cache = Cache::new();
        cache.upsert_node(node("n1"));
        let p = Arc::new(PodInfo::new(pod("a", None, "500m")));
        cache.assume(p.clone(), "n1");
        assert_eq!(cache.node("n1").unwrap().requested.milli_cpu, 500);
        assert!(cache.is_assumed("default/a"));
        cache.forget("default/a");
        assert_eq!(cache.node("n1").unwrap().requested.milli_cpu, 0);

        cache.assume(p, "n1");
        cache.upsert_bound_pod(pod("a", Some("n1"), "500m"));
        assert!(!cache.is_assumed("default/a"));
        cache.forget("default/a"); // confirmed: forgetting does nothing
        assert_eq!(cache.node("n1").unwrap().requested.milli_cpu, 500);
        assert_eq!(cache.node("n1").unwrap().pods.len(), 1);
        cache.remove_pod(&pod("a", Some("n1"), "500m"));
        assert_eq!(cache.node("n1").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn pods_on_unknown_nodes_are_kept_but_not_listed() {
        let mut cache = Cache::new();
        cache.upsert_bound_pod(pod("a", Some("ghost"), "1"));
        assert_eq!(cache.node_count(), 0);
        assert!(cache.upsert_node(node("ghost")));
        assert_eq!(cache.node("ghost").unwrap().requested.milli_cpu, 1000);
        assert!(!cache.upsert_node(node("ghost")), "an identical update changes nothing");
    }

    #[test]
    fn nominations_wait_for_terminating_victims() {
        let mut cache = Cache::new();
        cache.upsert_node(node("n1"));
        let mut victim: Pod = (*pod("victim", Some("n1"), "1")).clone();
        cache.upsert_bound_pod(Arc::new(victim.clone()));
        let mut preemptor: Pod = (*pod("preemptor", None, "1")).clone();
        preemptor.spec.as_mut().unwrap().priority = Some(100);
        let preemptor = Arc::new(PodInfo::new(Arc::new(preemptor)));
        cache.nominate(preemptor.clone(), "n1");
        assert!(!cache.nominated_node_has_terminating_victims("default/preemptor"));
        victim.metadata.deletion_timestamp = Some(serde_json::from_value(json!("2024-01-01T00:00:00Z")).unwrap());
        cache.upsert_bound_pod(Arc::new(victim.clone()));
        assert!(cache.nominated_node_has_terminating_victims("default/preemptor"));
        assert_eq!(cache.nominated_on("n1", 0, "default/other").len(), 1);
        cache.remove_pod(&victim);
        assert!(!cache.nominated_node_has_terminating_victims("default/preemptor"));
        cache.assume(preemptor, "n1");
        assert!(cache.nominated_on("n1", 0, "default/other").is_empty(), "assuming ends the nomination");
    }
}
