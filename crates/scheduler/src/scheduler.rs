//! The running scheduler: informers feeding the cache and the queue, the scheduling loop,
//! asynchronous binding, and the failure reporting (pod condition and events).

use crate::SCHEDULER_NAME;
use crate::algorithm::{Framework, NOT_ELIGIBLE_TERMINATING, Preemption, ScheduleError};
use crate::cache::{Cache, is_terminal};
use crate::events::Recorder;
use crate::framework::{PodInfo, pod_key};
use crate::queue::{ClusterEvent, QueueConfig, QueuedPod, SchedulingQueue};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event as KubeEvent, EventType, Reporter};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use parking_lot::Mutex;
use rudder_controllers::informers::Informers;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

/// How often pods whose backoff ended are moved to the active queue.
const BACKOFF_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often parked pods that waited too long are retried (upstream: 30 s).
const UNSCHEDULABLE_FLUSH_INTERVAL: Duration = Duration::from_secs(30);
/// Bindings in flight at once.
const MAX_CONCURRENT_BINDINGS: usize = 64;

/// Whether this scheduler is responsible for a pod that has no node yet.
pub fn is_ours(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let name = spec.and_then(|s| s.scheduler_name.as_deref()).unwrap_or("");
    (name.is_empty() || name == SCHEDULER_NAME) && pod.metadata.deletion_timestamp.is_none() && !is_terminal(pod)
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

/// The scheduler's state, shared by its tasks.
pub struct Scheduler {
    client: Client,
    /// The process's shared pod and node watches.
    shared: Informers,
    cache: Mutex<Cache>,
    queue: SchedulingQueue,
    framework: Framework,
    recorder: Recorder,
    bindings: Arc<Semaphore>,
    /// PriorityClass values by name, and the global default, to resolve `spec.priority`
    /// for pods the API server admitted without it.
    priority_classes: parking_lot::RwLock<PriorityClasses>,
    /// PodDisruptionBudgets, which preemption tries not to violate.
    pdbs: parking_lot::RwLock<HashMap<String, PodDisruptionBudget>>,
}

#[derive(Default)]
struct PriorityClasses {
    values: HashMap<String, i32>,
    global_default: Option<(String, i32)>,
}

/// Built-in classes every cluster has.
const SYSTEM_PRIORITY_CLASSES: [(&str, i32); 2] =
    [("system-cluster-critical", 2_000_000_000), ("system-node-critical", 2_000_001_000)];

impl Scheduler {
    pub fn new(client: Client, shared: Informers) -> Arc<Scheduler> {
        let reporter = Reporter { controller: SCHEDULER_NAME.into(), instance: None };
        Arc::new(Scheduler {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            shared,
            cache: Mutex::new(Cache::new()),
            queue: SchedulingQueue::new(QueueConfig::default()),
            framework: Framework::default(),
            bindings: Arc::new(Semaphore::new(MAX_CONCURRENT_BINDINGS)),
            priority_classes: Default::default(),
            pdbs: Default::default(),
        })
    }

    /// Runs informers, queue flushers and the scheduling loop until `shutdown`.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let (nodes_synced_tx, mut nodes_synced) = watch::channel(false);
        let (pods_synced_tx, mut pods_synced) = watch::channel(false);
        let (classes_synced_tx, classes_synced) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.clone().watch_priority_classes(classes_synced_tx));
        tasks.spawn(self.clone().watch_nodes(nodes_synced_tx));
        tasks.spawn(self.clone().watch_pods(classes_synced, pods_synced_tx));
        tasks.spawn(self.clone().flush_loop());
        tasks.spawn(self.clone().watch_pdbs());
        tasks.spawn(self.clone().watch_namespaces());

        let synced = async {
            let _ = nodes_synced.wait_for(|s| *s).await;
            let _ = pods_synced.wait_for(|s| *s).await;
        };
        tokio::select! {
            _ = synced => tracing::info!("scheduler caches synced"),
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        }
        loop {
            // A pod is decided only once a binding slot is free, so decided pods never pile up
            // as waiting tasks (each with a copy of its pod) when the API is slower than the loop.
            let slot = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                slot = self.bindings.clone().acquire_owned() => slot.expect("the binding semaphore stays open"),
            };
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                next = self.queue.pop() => match next {
                    Some(pod) => self.schedule_one(pod, slot),
                    None => break,
                },
            }
        }
        self.queue.close();
        tasks.abort_all();
        Ok(())
    }

    async fn flush_loop(self: Arc<Self>) {
        let mut backoff = tokio::time::interval(BACKOFF_FLUSH_INTERVAL);
        let mut leftover = tokio::time::interval(UNSCHEDULABLE_FLUSH_INTERVAL);
        loop {
            tokio::select! {
                _ = backoff.tick() => self.queue.flush_backoff_completed(Instant::now()),
                _ = leftover.tick() => self.queue.flush_unschedulable_leftover(Instant::now()),
            }
        }
    }

    /// One scheduling cycle: decide, assume, and hand the binding (with its slot) to a task.
    fn schedule_one(self: &Arc<Self>, queued: QueuedPod, slot: tokio::sync::OwnedSemaphorePermit) {
        if !is_ours(&queued.pod) || node_name(&queued.pod).is_some() {
            self.queue.delete(&queued.key);
            return;
        }
        let info = Arc::new(PodInfo::new(queued.pod.clone()));
        let mut cache = self.cache.lock();
        let decision = self.framework.schedule(&info, &cache, &mut rand::rng());
        match decision {
            Ok(node) => {
                cache.assume(info, &node);
                drop(cache);
                let this = self.clone();
                tokio::spawn(async move { this.bind(queued, node, slot).await });
            }
            Err(mut err) => {
                let preemption = match &mut err {
                    ScheduleError::Unfit(fit) => {
                        if fit.preemption_ineligible.is_none()
                            && cache.nominated_node_has_terminating_victims(&queued.key)
                        {
                            fit.preemption_ineligible = Some(NOT_ELIGIBLE_TERMINATING);
                        }
                        let pdbs: Vec<PodDisruptionBudget> = self.pdbs.read().values().cloned().collect();
                        let found = self.framework.find_preemption(&info, &cache, fit, &pdbs);
                        let displaced = match &found {
                            Some(p) => {
                                let lower = cache.take_lower_nominations(&p.node, info.priority);
                                cache.nominate(info.clone(), &p.node);
                                lower
                            }
                            None => Vec::new(),
                        };
                        fit.nominated_node = found.as_ref().map(|p| p.node.clone());
                        found.map(|p| (p, displaced))
                    }
                    ScheduleError::NoNodes => None,
                };
                drop(cache);
                tracing::debug!(pod = %queued.key, "unschedulable: {}", err.message());
                self.queue.requeue_failed(&queued.key, Some(err.rejected_by()), Instant::now());
                let this = self.clone();
                tokio::spawn(async move {
                    if let Some((p, displaced)) = preemption {
                        this.clear_nominations(&displaced).await;
                        this.preempt(&queued.pod, p).await;
                    }
                    this.report_failure(queued.pod, err).await
                });
            }
        }
    }

    async fn bind(self: Arc<Self>, queued: QueuedPod, node: String, permit: tokio::sync::OwnedSemaphorePermit) {
        let pod = &queued.pod;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api.create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding).await {
            Ok(_) => {
                self.queue.done(&queued.key);
                tracing::debug!(pod = %queued.key, %node, "bound");
                // The event does not hold a binding slot: the next binding need not wait for it.
                drop(permit);
                let note = format!("Successfully assigned {ns}/{name} to {node}");
                self.publish(pod, EventType::Normal, "Scheduled", "Binding", note).await;
            }
            Err(e) => {
                tracing::warn!(pod = %queued.key, %node, "binding failed: {e}");
                self.cache.lock().forget(&queued.key);
                let already_bound = matches!(&e, kube::Error::Api(s) if s.code == 409);
                if already_bound {
                    // Bound elsewhere or being deleted; the watch brings the truth.
                    self.queue.done(&queued.key);
                } else {
                    self.queue.requeue_failed(&queued.key, None, Instant::now());
                    self.publish(
                        pod,
                        EventType::Warning,
                        "FailedScheduling",
                        "Scheduling",
                        format!("Binding rejected: {e}"),
                    )
                    .await;
                }
            }
        }
    }

    /// Clears `status.nominatedNodeName` of lower-priority pods whose node a preemptor took (as
    /// upstream does); they are scheduled again like any pending pod.
    async fn clear_nominations(&self, pods: &[Arc<PodInfo>]) {
        for p in pods {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), p.pod.metadata.namespace.as_deref().unwrap_or(""));
            let patch = json!({"status": {"nominatedNodeName": null}});
            let name = p.pod.metadata.name.as_deref().unwrap_or("");
            if let Err(e) = api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                tracing::debug!(pod = %p.key, "cannot clear nominatedNodeName: {e}");
            }
        }
    }

    /// Nominates the node for the preemptor and deletes the victims (each gets a
    /// `Preempted` event). The preemptor is retried when the victims are gone.
    async fn preempt(&self, pod: &Pod, preemption: Preemption) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let patch = json!({"status": {"nominatedNodeName": preemption.node}});
        if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            tracing::debug!(pod = %pod_key(pod), "cannot set nominatedNodeName: {e}");
        }
        let preemptor_uid = pod.metadata.uid.clone().unwrap_or_default();
        for victim in preemption.victims {
            let v = &victim.pod;
            let vapi: Api<Pod> = Api::namespaced(self.client.clone(), v.metadata.namespace.as_deref().unwrap_or(""));
            let params = DeleteParams {
                preconditions: Some(Preconditions { uid: v.metadata.uid.clone(), resource_version: None }),
                ..Default::default()
            };
            match vapi.delete(v.metadata.name.as_deref().unwrap_or(""), &params).await {
                Ok(_) => {
                    tracing::info!(victim = %victim.key, preemptor = %pod_key(pod), node = %preemption.node, "preempted");
                    let note = format!("Preempted by pod {preemptor_uid} on node {}", preemption.node);
                    self.publish(v, EventType::Normal, "Preempted", "Preempting", note).await;
                }
                Err(e) => tracing::debug!(victim = %victim.key, "cannot preempt: {e}"),
            }
        }
    }

    /// Sets `PodScheduled=False` (when it changed) and records `FailedScheduling`.
    async fn report_failure(self: Arc<Self>, pod: Arc<Pod>, err: ScheduleError) {
        let message = err.message();
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
        let unchanged = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(&message)
        });
        if !unchanged {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }]}});
            if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch)).await {
                tracing::debug!(pod = %pod_key(&pod), "cannot update the PodScheduled condition: {e}");
            }
        }
        self.publish(&pod, EventType::Warning, "FailedScheduling", "Scheduling", message).await;
    }

    async fn publish(&self, pod: &Pod, type_: EventType, reason: &str, action: &str, note: String) {
        let event =
            KubeEvent { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
        if let Err(e) = self.recorder.publish(&event, &pod.object_ref(&())).await {
            tracing::debug!(pod = %pod_key(pod), "cannot record event {reason}: {e}");
        }
    }

    async fn watch_nodes(self: Arc<Self>, synced: watch::Sender<bool>) {
        let mut events = self.shared.nodes.subscribe();
        let mut relisted: Option<HashSet<String>> = None;
        while let Some(event) = events.recv().await {
            match event {
                Event::Init => relisted = Some(HashSet::new()),
                Event::InitApply(node) => {
                    if let Some(seen) = relisted.as_mut() {
                        seen.insert(node.metadata.name.clone().unwrap_or_default());
                    }
                    self.on_node(&node);
                }
                Event::InitDone => {
                    if let Some(seen) = relisted.take() {
                        let mut cache = self.cache.lock();
                        for name in cache.node_names() {
                            if !seen.contains(&name) {
                                cache.remove_node(&name);
                            }
                        }
                    }
                    let _ = synced.send(true);
                }
                Event::Apply(node) => self.on_node(&node),
                Event::Delete(node) => self.cache.lock().remove_node(node.metadata.name.as_deref().unwrap_or("")),
            }
        }
    }

    fn on_node(&self, node: &Node) {
        let (is_new, changed) = {
            let mut cache = self.cache.lock();
            let is_new = cache.node(node.metadata.name.as_deref().unwrap_or("")).is_none();
            (is_new, cache.upsert_node(node.clone()))
        };
        if changed {
            let event = if is_new { ClusterEvent::NodeAdd } else { ClusterEvent::NodeUpdate };
            self.queue.move_on_event(event, Instant::now());
        }
    }

    /// Namespace labels, for affinity terms with a `namespaceSelector`.
    async fn watch_namespaces(self: Arc<Self>) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut relisted: Option<HashSet<String>> = None;
        while let Some(event) = stream.next().await {
            let labels = |ns: &Namespace| ns.metadata.labels.clone().unwrap_or_default();
            match event {
                Ok(Event::Init) => relisted = Some(HashSet::new()),
                Ok(Event::InitApply(ns)) => {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    self.cache.lock().upsert_namespace(&name, labels(&ns));
                    relisted.get_or_insert_default().insert(name);
                }
                Ok(Event::InitDone) => {
                    if let Some(seen) = relisted.take() {
                        let mut cache = self.cache.lock();
                        let gone: Vec<String> =
                            cache.namespaces().keys().filter(|n| !seen.contains(*n)).cloned().collect();
                        gone.iter().for_each(|n| cache.remove_namespace(n));
                    }
                }
                Ok(Event::Apply(ns)) => {
                    self.cache.lock().upsert_namespace(ns.metadata.name.as_deref().unwrap_or(""), labels(&ns))
                }
                Ok(Event::Delete(ns)) => self.cache.lock().remove_namespace(ns.metadata.name.as_deref().unwrap_or("")),
                Err(e) => tracing::warn!("namespace watch: {e}"),
            }
        }
    }

    async fn watch_pdbs(self: Arc<Self>) {
        let api: Api<PodDisruptionBudget> = Api::all(self.client.clone());
        let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut relisted: Option<HashMap<String, PodDisruptionBudget>> = None;
        let key = |b: &PodDisruptionBudget| {
            format!("{}/{}", b.metadata.namespace.as_deref().unwrap_or(""), b.metadata.name.as_deref().unwrap_or(""))
        };
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => relisted = Some(HashMap::new()),
                Ok(Event::InitApply(b)) => {
                    relisted.get_or_insert_default().insert(key(&b), b);
                }
                Ok(Event::InitDone) => *self.pdbs.write() = relisted.take().unwrap_or_default(),
                Ok(Event::Apply(b)) => {
                    self.pdbs.write().insert(key(&b), b);
                }
                Ok(Event::Delete(b)) => {
                    self.pdbs.write().remove(&key(&b));
                }
                Err(e) => tracing::warn!("pod disruption budget watch: {e}"),
            }
        }
    }

    async fn watch_priority_classes(self: Arc<Self>, synced: watch::Sender<bool>) {
        let api: Api<PriorityClass> = Api::all(self.client.clone());
        let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut relisted: Option<PriorityClasses> = None;
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("priority class watch: {e}");
                    continue;
                }
            };
            let record = |classes: &mut PriorityClasses, pc: &PriorityClass| {
                let name = pc.metadata.name.clone().unwrap_or_default();
                classes.values.insert(name.clone(), pc.value);
                if pc.global_default == Some(true) {
                    classes.global_default = Some((name, pc.value));
                } else if classes.global_default.as_ref().is_some_and(|(n, _)| *n == name) {
                    classes.global_default = None;
                }
            };
            match event {
                Event::Init => relisted = Some(PriorityClasses::default()),
                Event::InitApply(pc) => record(relisted.get_or_insert_default(), &pc),
                Event::InitDone => {
                    *self.priority_classes.write() = relisted.take().unwrap_or_default();
                    let _ = synced.send(true);
                }
                Event::Apply(pc) => record(&mut self.priority_classes.write(), &pc),
                Event::Delete(pc) => {
                    let mut classes = self.priority_classes.write();
                    let name = pc.metadata.name.unwrap_or_default();
                    classes.values.remove(&name);
                    if classes.global_default.as_ref().is_some_and(|(n, _)| *n == name) {
                        classes.global_default = None;
                    }
                }
            }
        }
    }

    /// Fills `spec.priority` from the pod's PriorityClass (or the global default) when the
    /// API server left it empty.
    /// The pod is copied only when its priority changes.
    fn resolve_priority(&self, mut pod: Arc<Pod>) -> Arc<Pod> {
        let Some(spec) = pod.spec.as_ref() else { return pod };
        if spec.priority.is_some() {
            return pod;
        }
        let classes = self.priority_classes.read();
        let priority = match spec.priority_class_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => classes
                .values
                .get(name)
                .copied()
                .or_else(|| SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)),
            None => classes.global_default.as_ref().map(|(_, v)| *v),
        };
        drop(classes);
        if priority.is_some()
            && let Some(spec) = Arc::make_mut(&mut pod).spec.as_mut()
        {
            spec.priority = priority;
        }
        pod
    }

    async fn watch_pods(self: Arc<Self>, mut classes_synced: watch::Receiver<bool>, synced: watch::Sender<bool>) {
        let _ = classes_synced.wait_for(|s| *s).await;
        let mut events = self.shared.pods.subscribe();
        let mut relisted: Option<HashSet<String>> = None;
        while let Some(event) = events.recv().await {
            match event {
                Event::Init => relisted = Some(HashSet::new()),
                Event::InitApply(pod) => {
                    if let Some(seen) = relisted.as_mut() {
                        seen.insert(pod_key(&pod));
                    }
                    self.on_pod(pod);
                }
                Event::InitDone => {
                    if let Some(seen) = relisted.take() {
                        self.drop_unseen_pods(&seen);
                    }
                    let _ = synced.send(true);
                }
                Event::Apply(pod) => self.on_pod(pod),
                Event::Delete(pod) => self.on_pod_delete(&pod),
            }
        }
    }

    /// After a relist: pods neither listed nor assumed are gone.
    fn drop_unseen_pods(&self, seen: &HashSet<String>) {
        {
            let mut cache = self.cache.lock();
            for key in cache.pod_keys() {
                if !seen.contains(&key) && !cache.is_assumed(&key) {
                    cache.remove_pod_key(&key);
                }
            }
        }
        for key in self.queue.keys() {
            if !seen.contains(&key) {
                self.queue.delete(&key);
            }
        }
        self.queue.move_on_event(ClusterEvent::AssignedPodDelete, Instant::now());
    }

    /// A pod as the shared informer keeps it (trimmed of what only a kubelet reads); terminal
    /// pods count on no node.
    fn on_pod(&self, pod: Arc<Pod>) {
        let pod = self.resolve_priority(pod);
        let key = pod_key(&pod);
        if node_name(&pod).is_some() {
            self.queue.delete(&key);
            let terminal = is_terminal(&pod);
            let new = self.cache.lock().upsert_bound_pod(pod);
            if terminal {
                self.queue.move_on_event(ClusterEvent::AssignedPodDelete, Instant::now());
            } else if new {
                self.queue.move_on_event(ClusterEvent::AssignedPodAdd, Instant::now());
            }
        } else if is_ours(&pod) {
            self.queue.add_or_update(&key, pod, Instant::now());
        } else {
            self.queue.delete(&key);
            self.cache.lock().clear_nomination(&key);
        }
    }

    fn on_pod_delete(&self, pod: &Pod) {
        let key = pod_key(pod);
        self.queue.delete(&key);
        self.cache.lock().clear_nomination(&key);
        let was_placed = {
            let mut cache = self.cache.lock();
            let placed = node_name(pod).is_some() || cache.is_assumed(&key);
            cache.remove_pod(pod);
            placed
        };
        if was_placed {
            self.queue.move_on_event(ClusterEvent::AssignedPodDelete, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responsibility() {
        let pod = |v: serde_json::Value| serde_json::from_value::<Pod>(v).unwrap();
        assert!(is_ours(&pod(serde_json::json!({"metadata": {"name": "a"}, "spec": {"containers": []}}))));
        assert!(is_ours(&pod(
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"schedulerName": "default-scheduler", "containers": []}})
        )));
        assert!(!is_ours(&pod(
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"schedulerName": "other", "containers": []}})
        )));
        assert!(!is_ours(&pod(
            serde_json::json!({"metadata": {"name": "a", "deletionTimestamp": "2024-01-01T00:00:00Z"}, "spec": {"containers": []}})
        )));
        assert!(!is_ours(&pod(
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"containers": []}, "status": {"phase": "Succeeded"}})
        )));
    }
}
