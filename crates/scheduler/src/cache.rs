//! The scheduler's view of the cluster: nodes, and the pods that count on them (bound pods
//! from the API, plus pods assumed by this scheduler whose binding has not come back yet).

use crate::framework::{AffinityCounts, HostPort, ImageNodes, PodInfo};
use crate::plugins::image_locality::normalized_image_name;
use crate::resources::Resource;
use k8s_openapi::api::core::v1::{ContainerImage, Node, NodeStatus, Pod, Taint};
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
    /// `spec.unschedulable` of the node.
    unschedulable: bool,
    /// The node has a `NoSchedule` or `NoExecute` taint.
    hard_taints: bool,
    /// The node has a `PreferNoSchedule` taint.
    soft_taints: bool,
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

    /// Whether the node is cordoned (`spec.unschedulable`).
    pub fn unschedulable(&self) -> bool {
        self.unschedulable
    }

    /// Whether the node has a `NoSchedule` or `NoExecute` taint.
    pub fn has_hard_taints(&self) -> bool {
        self.hard_taints
    }

    /// Whether the node has a `PreferNoSchedule` taint.
    pub fn has_soft_taints(&self) -> bool {
        self.soft_taints
    }

    /// Sets the Node object and what is derived from it. Image names are normalised only when
    /// the reported images changed; then the images held before are returned.
    fn set_node(&mut self, node: Arc<Node>) -> Option<HashMap<String, i64>> {
        self.allocatable =
            node.status.as_ref().and_then(|s| s.allocatable.as_ref()).map(Resource::from_list).unwrap_or_default();
        fn images(n: &Node) -> Option<&Vec<ContainerImage>> {
            n.status.as_ref().and_then(|s| s.images.as_ref())
        }
        let mut replaced = None;
        if self.node.as_deref().is_none_or(|old| images(old) != images(&node)) {
            let mut fresh = HashMap::new();
            for image in images(&node).into_iter().flatten() {
                for name in image.names.iter().flatten() {
                    fresh.insert(normalized_image_name(name), image.size_bytes.unwrap_or(0));
                }
            }
            replaced = Some(std::mem::replace(&mut self.images, fresh));
        }
        let spec = node.spec.as_ref();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        let taints = spec.and_then(|s| s.taints.as_deref()).unwrap_or_default();
        self.hard_taints = taints.iter().any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute");
        self.soft_taints = taints.iter().any(|t| t.effect == "PreferNoSchedule");
        self.node = Some(node);
        replaced
    }

    /// Forgets the Node object (its pods stay counted).
    fn clear_node(&mut self) {
        self.node = None;
        self.allocatable = Resource::default();
        self.images.clear();
        self.unschedulable = false;
        self.hard_taints = false;
        self.soft_taints = false;
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
    /// Nodes with a Node object.
    nodes: BTreeMap<String, NodeInfo>,
    /// Nodes without a Node object (not seen yet, or deleted) that pods are still counted on.
    ghosts: BTreeMap<String, NodeInfo>,
    pods: HashMap<String, PodState>,
    /// Pods that preempted others, by key: the node they wait for, and the pod. Filters see
    /// them on that node (for pods of lower or equal priority) so the freed room is kept.
    nominated: HashMap<String, (String, Arc<PodInfo>)>,
    /// Namespace labels, for affinity terms with a `namespaceSelector`.
    namespaces: Arc<crate::selectors::NamespaceLabels>,
    /// Bound and assumed pods with pod (anti-)affinity terms, over all nodes.
    affinity: AffinityCounts,
    /// How many nodes (with a Node object) report each normalised image.
    image_nodes: Arc<ImageNodes>,
}

/// Counts `images` in (`up`) or out of the per-image node counts.
fn count_images(counts: &mut Arc<ImageNodes>, images: &HashMap<String, i64>, up: bool) {
    if images.is_empty() {
        return;
    }
    let counts = Arc::make_mut(counts);
    for name in images.keys() {
        if up {
            match counts.get_mut(name) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(name.clone(), 1);
                }
            }
        } else if let Some(n) = counts.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                counts.remove(name);
            }
        }
    }
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
        let entry = match self.nodes.get_mut(node.metadata.name.as_deref().unwrap_or("")) {
            Some(entry) => entry,
            None => {
                let name = node.metadata.name.clone().unwrap_or_default();
                let info = self.ghosts.remove(&name).unwrap_or_default();
                self.nodes.entry(name).or_insert(info)
            }
        };
        let changed = entry.node.as_deref().is_none_or(|old| scheduling_properties_changed(old, &node));
        if let Some(old_images) = entry.set_node(Arc::new(node)) {
            count_images(&mut self.image_nodes, &old_images, false);
            count_images(&mut self.image_nodes, &entry.images, true);
        }
        changed
    }

    /// Removes a node; its pods stay accounted until they go.
    pub fn remove_node(&mut self, name: &str) {
        if let Some((name, mut info)) = self.nodes.remove_entry(name) {
            count_images(&mut self.image_nodes, &info.images, false);
            if !info.pods.is_empty() {
                info.clear_node();
                self.ghosts.insert(name, info);
            }
        }
    }

    /// Node names currently known with their Node object.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    /// All nodes that have a Node object, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// How many nodes (with a Node object) report each normalised image.
    pub fn image_nodes(&self) -> Arc<ImageNodes> {
        self.image_nodes.clone()
    }

    /// How many bound or assumed pods have pod (anti-)affinity terms.
    pub fn affinity_counts(&self) -> AffinityCounts {
        self.affinity
    }

    /// Whether any pod is nominated to a node.
    pub fn has_nominations(&self) -> bool {
        !self.nominated.is_empty()
    }

    fn place(&mut self, node: &str, info: Arc<PodInfo>, assumed: bool) {
        let key = info.key.clone();
        let uid = info.uid.clone();
        self.affinity.required_anti_affinity += usize::from(info.has_required_anti_affinity);
        self.affinity.affinity_terms += usize::from(info.has_pod_affinity_terms);
        match self.nodes.get_mut(node) {
            Some(n) => n.add_pod(info),
            None => self.ghosts.entry(node.to_string()).or_default().add_pod(info),
        }
        self.pods.insert(key, PodState { node: node.to_string(), uid, assumed });
    }

    fn unplace(&mut self, key: &str) -> Option<PodState> {
        let state = self.pods.remove(key)?;
        let ghost = !self.nodes.contains_key(&state.node);
        let map = if ghost { &mut self.ghosts } else { &mut self.nodes };
        if let Some(n) = map.get_mut(&state.node) {
            if let Some(pod) = n.pods.get(key) {
                self.affinity.required_anti_affinity -= usize::from(pod.has_required_anti_affinity);
                self.affinity.affinity_terms -= usize::from(pod.has_pod_affinity_terms);
            }
            n.remove_pod(key);
            if ghost && n.pods.is_empty() {
                map.remove(&state.node);
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

    /// Ends the nominations to `node` of pods below `priority` (a preemptor of that priority
    /// takes the room they were promised) and returns those pods.
    pub fn take_lower_nominations(&mut self, node: &str, priority: i32) -> Vec<Arc<PodInfo>> {
        let lower: Vec<String> = self
            .nominated
            .iter()
            .filter(|(_, (n, p))| n == node && p.priority < priority)
            .map(|(k, _)| k.clone())
            .collect();
        lower.iter().filter_map(|k| self.nominated.remove(k)).map(|(_, p)| p).collect()
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
        self.nodes.get(node).or_else(|| self.ghosts.get(node)).is_some_and(|n| {
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
    fn spec(n: &Node) -> Option<(Option<bool>, Option<&Vec<Taint>>)> {
        n.spec.as_ref().map(|s| (s.unschedulable, s.taints.as_ref()))
    }
    fn conditions(s: &NodeStatus) -> impl Iterator<Item = (&String, &String)> {
        s.conditions.iter().flatten().map(|c| (&c.type_, &c.status))
    }
    let status_changed = match (old.status.as_ref(), new.status.as_ref()) {
        (None, None) => false,
        (Some(a), Some(b)) => a.allocatable != b.allocatable || !conditions(a).eq(conditions(b)),
        _ => true,
    };
    old.metadata.labels != new.metadata.labels || spec(old) != spec(new) || status_changed
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

    #[test]
    fn a_preemptor_displaces_lower_nominations_on_its_node_only() {
        let mut cache = Cache::new();
        cache.upsert_node(node("n1"));
        cache.upsert_node(node("n2"));
        let nominee = |name: &str, priority: i32| {
            let mut p: Pod = (*pod(name, None, "1")).clone();
            p.spec.as_mut().unwrap().priority = Some(priority);
            Arc::new(PodInfo::new(Arc::new(p)))
        };
        cache.nominate(nominee("low", 10), "n1");
        cache.nominate(nominee("equal", 50), "n1");
        cache.nominate(nominee("elsewhere", 10), "n2");
        let displaced = cache.take_lower_nominations("n1", 50);
        assert_eq!(displaced.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["default/low"]);
        assert_eq!(cache.nominated_on("n1", 0, "").len(), 1, "the equal-priority nomination stays");
        assert_eq!(cache.nominated_on("n2", 0, "").len(), 1, "other nodes keep theirs");
    }

    fn with_affinity(name: &str, node: Option<&str>, affinity: serde_json::Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"nodeName": node, "containers": [{"name": "c"}], "affinity": affinity},
            }))
            .unwrap(),
        )
    }

    fn counts(cache: &Cache) -> (usize, usize) {
        let c = cache.affinity_counts();
        (c.required_anti_affinity, c.affinity_terms)
    }

    #[test]
    fn affinity_counts_follow_pods() {
        let term = json!([{"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "zone"}]);
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}});
        let soft = json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "podAffinityTerm": {"labelSelector": {}, "topologyKey": "zone"}}]}});
        let mut cache = Cache::new();
        cache.upsert_node(node("n1"));
        assert_eq!(counts(&cache), (0, 0));

        cache.upsert_bound_pod(with_affinity("a", Some("n1"), anti.clone()));
        assert_eq!(counts(&cache), (1, 1));
        cache.upsert_bound_pod(with_affinity("b", Some("n1"), soft.clone()));
        assert_eq!(counts(&cache), (1, 2));
        cache.upsert_bound_pod(pod("plain", Some("n1"), "1m"));
        assert_eq!(counts(&cache), (1, 2));

        // An update that drops the terms, then one that brings them back.
        cache.upsert_bound_pod(with_affinity("a", Some("n1"), json!(null)));
        assert_eq!(counts(&cache), (0, 1));
        cache.upsert_bound_pod(with_affinity("a", Some("n1"), anti.clone()));
        assert_eq!(counts(&cache), (1, 2));

        // Assumed pods count until forgotten; pods on unknown nodes count too.
        let assumed = Arc::new(PodInfo::new(with_affinity("c", None, anti.clone())));
        cache.assume(assumed, "n1");
        assert_eq!(counts(&cache), (2, 3));
        cache.forget("default/c");
        assert_eq!(counts(&cache), (1, 2));
        cache.upsert_bound_pod(with_affinity("g", Some("ghost"), anti.clone()));
        assert_eq!(counts(&cache), (2, 3));
        cache.remove_pod(&with_affinity("g", Some("ghost"), anti.clone()));
        assert_eq!(counts(&cache), (1, 2));

        // A deleted node keeps its pods counted until they go.
        cache.remove_node("n1");
        assert_eq!(counts(&cache), (1, 2));
        cache.remove_pod(&with_affinity("a", Some("n1"), anti));
        cache.remove_pod(&with_affinity("b", Some("n1"), soft));
        assert_eq!(counts(&cache), (0, 0));
        // Terminal pods are dropped.
        let mut done: Pod = (*with_affinity("d", Some("n1"), json!({"podAffinity": {}}))).clone();
        cache.upsert_bound_pod(Arc::new(done.clone()));
        assert_eq!(counts(&cache), (0, 1));
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        cache.upsert_bound_pod(Arc::new(done));
        assert_eq!(counts(&cache), (0, 0));
    }

    fn node_with(name: &str, extra: serde_json::Value) -> Node {
        let mut v = json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": "2", "pods": "110"}}});
        for (k, e) in extra.as_object().unwrap() {
            for (f, x) in e.as_object().unwrap() {
                v[k][f] = x.clone();
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn images(list: serde_json::Value) -> serde_json::Value {
        json!({"status": {"images": list}})
    }

    fn image_count(cache: &Cache, image: &str) -> usize {
        cache.image_nodes().get(image).copied().unwrap_or(0)
    }

    #[test]
    fn node_images_are_normalised_and_counted() {
        let mut cache = Cache::new();
        let pause =
            json!([{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 700}, {"names": ["nginx"], "sizeBytes": 9}]);
        cache.upsert_node(node_with("n1", images(pause.clone())));
        cache.upsert_node(node_with("n2", images(json!([{"names": ["nginx", "nginx@sha256:ab"], "sizeBytes": 9}]))));
        let n1 = cache.node("n1").unwrap();
        assert_eq!(n1.images.get("nginx:latest"), Some(&9));
        assert_eq!(n1.images.get("registry.k8s.io/pause:3.10"), Some(&700));
        assert_eq!(cache.node("n2").unwrap().images.get("nginx@sha256:ab"), Some(&9));
        assert_eq!((image_count(&cache, "nginx:latest"), image_count(&cache, "registry.k8s.io/pause:3.10")), (2, 1));

        // Same images again: nothing changes; other images replace the old ones.
        cache.upsert_node(node_with("n1", images(pause.clone())));
        assert_eq!(image_count(&cache, "nginx:latest"), 2);
        cache.upsert_node(node_with("n1", images(json!([{"names": ["busybox:1"], "sizeBytes": 1}]))));
        assert_eq!(cache.node("n1").unwrap().images.keys().collect::<Vec<_>>(), ["busybox:1"]);
        assert_eq!((image_count(&cache, "nginx:latest"), image_count(&cache, "registry.k8s.io/pause:3.10")), (1, 0));
        assert_eq!(image_count(&cache, "busybox:1"), 1);

        // A deleted node's images stop counting, with or without pods left on it, and count
        // again when it comes back.
        cache.upsert_bound_pod(pod("a", Some("n1"), "1m"));
        cache.remove_node("n1");
        assert_eq!(image_count(&cache, "busybox:1"), 0);
        assert!(cache.node("n1").is_none());
        cache.upsert_node(node_with("n1", images(pause)));
        assert_eq!((image_count(&cache, "nginx:latest"), image_count(&cache, "registry.k8s.io/pause:3.10")), (2, 1));
        assert_eq!(cache.node("n1").unwrap().pods.len(), 1);
        cache.remove_node("n2");
        cache.remove_node("n1");
        assert!(cache.image_nodes().is_empty());
    }

    #[test]
    fn node_flags_follow_updates() {
        let mut cache = Cache::new();
        cache.upsert_node(node_with("n1", json!({})));
        let flags = |c: &Cache| {
            let n = c.node("n1").unwrap();
            (n.unschedulable(), n.has_hard_taints(), n.has_soft_taints())
        };
        assert_eq!(flags(&cache), (false, false, false));
        let taints = json!({"spec": {"unschedulable": true, "taints": [
            {"key": "a", "effect": "NoExecute"}, {"key": "b", "effect": "PreferNoSchedule"}]}});
        assert!(cache.upsert_node(node_with("n1", taints)));
        assert_eq!(flags(&cache), (true, true, true));
        assert!(
            cache.upsert_node(node_with("n1", json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}})))
        );
        assert_eq!(flags(&cache), (false, true, false));
        assert!(
            !cache.upsert_node(node_with("n1", json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}})))
        );
        cache.upsert_bound_pod(pod("a", Some("n1"), "1m"));
        cache.remove_node("n1");
        assert!(cache.upsert_node(node_with("n1", json!({}))), "a node coming back is new");
        assert_eq!(flags(&cache), (false, false, false));
    }

    #[test]
    fn heartbeats_are_not_scheduling_changes() {
        let mut cache = Cache::new();
        let status = |ready: &str, beat: &str| json!({"status": {"conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": beat}]}});
        assert!(cache.upsert_node(node_with("n1", status("True", "2024-01-01T00:00:00Z"))));
        assert!(!cache.upsert_node(node_with("n1", status("True", "2024-01-01T00:00:10Z"))));
        assert!(cache.upsert_node(node_with("n1", status("False", "2024-01-01T00:00:20Z"))));
        assert!(cache.upsert_node(node_with("n1", json!({"status": {"allocatable": {"cpu": "3"}}}))));
        assert!(cache.upsert_node(node_with("n1", json!({"metadata": {"labels": {"zone": "a"}}}))));
    }
}
