//! The running engine: one node watch, one pod watch (the process's shared informers, or its
//! own) and one timer loop shared by every node, with API writes bounded by a semaphore.

use crate::Options;
use crate::net::{IpAllocator, PodCidr};
use crate::node::{self, Identity, LEASE_NAMESPACE};
use crate::pod::{self, Decision, KILLED_EXIT_CODE, Seen};
use crate::timers::{Timers, advance, backoff, spread};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeStatus, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::Event;
use kube::{Client, Resource};
use parking_lot::Mutex;
use rudder_controllers::informers::{SharedInformer, drop_kubelet_only_fields};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

/// Work the timer loop hands out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Register(usize),
    Lease(usize),
    Status(usize),
    Pod(String),
}

/// One simulated node.
pub(crate) struct SimNode {
    pub(crate) id: Identity,
    /// What this node reports, apart from heartbeat and transition times.
    reported: node::Essence,
    pub(crate) stopped_by_api: AtomicBool,
    state: Mutex<NodeState>,
}

struct NodeState {
    registered: bool,
    /// Deleted from the API after registration: no more heartbeats until it reappears.
    gone: bool,
    uid: Option<String>,
    stopped_by_annotation: bool,
    /// The node's status as last seen from the API.
    observed_status: Option<NodeStatus>,
    /// Whether that status already says what this node reports (heartbeat and transition
    /// times aside), so the periodic check needs no write until the report is due.
    status_matches: bool,
    /// When the status is written again even if unchanged; `None` until the first report.
    report_by: Option<Instant>,
    lease_due: Instant,
    status_due: Instant,
    failures: HashMap<&'static str, u32>,
    alloc: IpAllocator,
}

struct PodEntry {
    pod: Arc<Pod>,
    node: usize,
    seen: Seen,
    /// The resourceVersion a write was last based on: no further write until the pod changes.
    acted_on: Option<String>,
    failures: u32,
}

pub(crate) struct Engine {
    client: Client,
    options: Options,
    pod_watch: Arc<SharedInformer<Pod>>,
    node_watch: Arc<SharedInformer<Node>>,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) by_name: HashMap<String, usize>,
    pods: Mutex<HashMap<String, PodEntry>>,
    pods_synced: AtomicBool,
    timers: Mutex<Timers<Key>>,
    busy: Mutex<(HashSet<Key>, HashSet<Key>)>,
    wake: Notify,
    writes: Semaphore,
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl Engine {
    pub(crate) fn new(client: Client, options: Options) -> Engine {
        let start = Instant::now();
        let boot_id = node::random_boot_id();
        let zones = if options.zones.is_empty() { vec!["zone-a".to_string()] } else { options.zones.clone() };
        let nodes: Vec<SimNode> = (0..options.count)
            .map(|i| {
                let cidr = crate::net::pod_cidr(i).unwrap_or(PodCidr { network: std::net::Ipv4Addr::UNSPECIFIED });
                let id = Identity {
                    name: format!("{}-{i}", options.name_prefix),
                    index: i,
                    zone: zones[i % zones.len()].clone(),
                    ip: crate::net::node_ip(i),
                    cidr,
                    boot_id: boot_id.clone(),
                };
                let phase = spread(i, options.count, options.heartbeat_interval);
                SimNode {
                    reported: node::Essence::reported(&id, &options.capacity),
                    id,
                    stopped_by_api: AtomicBool::new(false),
                    state: Mutex::new(NodeState {
                        registered: false,
                        gone: false,
                        uid: None,
                        stopped_by_annotation: false,
                        observed_status: None,
                        status_matches: false,
                        report_by: None,
                        lease_due: start + phase,
                        status_due: start + phase,
                        failures: HashMap::new(),
                        alloc: IpAllocator::new(cidr),
                    }),
                }
            })
            .collect();
        let by_name = nodes.iter().map(|n| (n.id.name.clone(), n.id.index)).collect();
        let writes = Semaphore::new(options.max_concurrent_writes.max(1));
        let (pod_watch, node_watch) = match &options.shared {
            Some(shared) => (shared.pods.clone(), shared.nodes.clone()),
            None => (
                Arc::new(SharedInformer::start_with(Api::all(client.clone()), drop_kubelet_only_fields)),
                Arc::new(SharedInformer::start(Api::all(client.clone()))),
            ),
        };
        Engine {
            client,
            options,
            pod_watch,
            node_watch,
            nodes,
            by_name,
            pods: Mutex::new(HashMap::new()),
            pods_synced: AtomicBool::new(false),
            timers: Mutex::new(Timers::default()),
            busy: Mutex::new((HashSet::new(), HashSet::new())),
            wake: Notify::new(),
            writes,
        }
    }

    fn schedule(&self, key: Key, at: Instant) {
        if self.timers.lock().schedule(key, at) {
            self.wake.notify_one();
        }
    }

    fn now_key(&self, key: Key) {
        self.schedule(key, Instant::now());
    }

    fn stopped(&self, i: usize) -> bool {
        self.nodes[i].stopped_by_api.load(Ordering::Relaxed) || self.nodes[i].state.lock().stopped_by_annotation
    }

    /// Called when a node's heartbeat resumes (API or annotation): renew and report now, and
    /// move its pods along again.
    pub(crate) fn resumed(&self, i: usize) {
        self.now_key(Key::Lease(i));
        self.now_key(Key::Status(i));
        self.reschedule_pods_of(Some(i));
    }

    fn reschedule_pods_of(&self, node: Option<usize>) {
        let uids: Vec<String> = self
            .pods
            .lock()
            .iter()
            .filter(|(_, e)| node.is_none_or(|n| e.node == n))
            .map(|(uid, _)| uid.clone())
            .collect();
        let now = Instant::now();
        let mut timers = self.timers.lock();
        for uid in uids {
            timers.schedule(Key::Pod(uid), now);
        }
        drop(timers);
        self.wake.notify_one();
    }

    fn failed(&self, i: usize, what: &'static str, key: Key, cap: Duration) {
        let n = {
            let mut st = self.nodes[i].state.lock();
            let f = st.failures.entry(what).or_insert(0);
            *f = f.saturating_add(1);
            *f
        };
        self.schedule(key, Instant::now() + backoff(n - 1, cap));
    }

    fn succeeded(&self, i: usize, what: &'static str) {
        self.nodes[i].state.lock().failures.remove(what);
    }

    /// Runs the engine until `shutdown` turns true.
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if *shutdown.borrow() {
            return;
        }
        let start = Instant::now();
        for i in 0..self.nodes.len() {
            // Registrations are spread a little too, so a big start does not stampede the API.
            let at = start + spread(i, self.nodes.len(), Duration::from_millis(self.nodes.len().min(2000) as u64));
            self.timers.lock().schedule(Key::Register(i), at);
        }
        let mut watchers = JoinSet::new();
        watchers.spawn(self.clone().watch_nodes());
        watchers.spawn(self.clone().watch_pods());
        let mut work: JoinSet<()> = JoinSet::new();
        loop {
            let next = self.timers.lock().next_due();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
                _ = self.wake.notified() => {}
                _ = sleep => {}
                Some(_) = work.join_next(), if !work.is_empty() => {}
            }
            while work.try_join_next().is_some() {}
            // A little slack batches keys due within a few milliseconds into one wake-up.
            let due = self.timers.lock().pop_due(Instant::now() + Duration::from_millis(5), 4096);
            for key in due {
                {
                    let mut busy = self.busy.lock();
                    if busy.0.contains(&key) {
                        busy.1.insert(key);
                        continue;
                    }
                    busy.0.insert(key.clone());
                }
                let engine = self.clone();
                work.spawn(async move {
                    engine.work(key.clone()).await;
                    let again = {
                        let mut busy = engine.busy.lock();
                        busy.0.remove(&key);
                        busy.1.remove(&key)
                    };
                    if again {
                        engine.now_key(key);
                    }
                });
            }
        }
        work.abort_all();
        watchers.abort_all();
        while work.join_next().await.is_some() {}
        while watchers.join_next().await.is_some() {}
    }

    async fn work(&self, key: Key) {
        match key {
            Key::Register(i) => self.register(i).await,
            Key::Lease(i) => self.renew_lease(i).await,
            Key::Status(i) => self.report_status(i).await,
            Key::Pod(uid) => self.sync_pod(&uid).await,
        }
    }

    fn nodes_api(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn capacity(&self) -> &node::Capacity {
        &self.options.capacity
    }

    /// Registers node `i`, or takes over the Node of that name if it exists.
    async fn register(&self, i: usize) {
        let _permit = self.writes.acquire().await;
        let id = &self.nodes[i].id;
        let api = self.nodes_api();
        let cap = Duration::from_secs(7);
        let result: Result<Node, kube::Error> = async {
            match api.get_opt(&id.name).await? {
                None => {
                    let obj = node::node_object(id, self.capacity(), chrono::Utc::now());
                    let node: Node = serde_json::from_value(obj).map_err(kube::Error::SerdeError)?;
                    match api.create(&PostParams::default(), &node).await {
                        Err(e) if status_code(&e) == Some(409) => api.get(&id.name).await,
                        other => other,
                    }
                }
                Some(existing) => {
                    let value = serde_json::to_value(&existing).map_err(kube::Error::SerdeError)?;
                    let patch = node::takeover_patch(id, &value);
                    let node = api.patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                    tracing::info!(node = %id.name, "taking over an existing node");
                    Ok(node)
                }
            }
        }
        .await;
        match result {
            Ok(node) => {
                self.succeeded(i, "register");
                self.observe_node(i, &node, true);
                tracing::debug!(node = %id.name, "registered");
                self.now_key(Key::Lease(i));
                self.now_key(Key::Status(i));
                self.reschedule_pods_of(Some(i));
            }
            Err(e) => {
                tracing::warn!(node = %id.name, "cannot register the node: {e}");
                self.failed(i, "register", Key::Register(i), cap);
            }
        }
    }

    /// Takes in the API's view of node `i`.
    fn observe_node(&self, i: usize, node: &Node, registering: bool) {
        let stopped = node::heartbeat_stopped_in(node.metadata.annotations.as_ref());
        let mut resumed = false;
        {
            let mut st = self.nodes[i].state.lock();
            if !st.registered && !registering {
                return;
            }
            st.registered = true;
            let was_gone = std::mem::replace(&mut st.gone, false);
            st.uid = node.metadata.uid.clone();
            if let Some(cidr) = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).and_then(PodCidr::parse)
                && cidr != st.alloc.cidr()
                && st.alloc.in_use() == 0
            {
                st.alloc = IpAllocator::new(cidr);
            }
            st.status_matches = node.status.as_ref().is_some_and(|s| node::Essence::of(s) == self.nodes[i].reported);
            st.observed_status = node.status.clone();
            let was_stopped = std::mem::replace(&mut st.stopped_by_annotation, stopped);
            if (was_stopped && !stopped) || was_gone {
                resumed = !self.nodes[i].stopped_by_api.load(Ordering::Relaxed);
            }
            if !was_stopped && stopped {
                tracing::info!(node = %self.nodes[i].id.name, "heartbeat stopped by annotation");
            }
        }
        if resumed && !registering {
            tracing::info!(node = %self.nodes[i].id.name, "heartbeat resumed");
            self.resumed(i);
        }
    }

    async fn renew_lease(&self, i: usize) {
        let interval = self.options.heartbeat_interval;
        let (uid, due) = {
            let mut st = self.nodes[i].state.lock();
            if !st.registered || st.gone {
                return;
            }
            let now = Instant::now();
            let due = advance(st.lease_due, interval, now);
            st.lease_due = due;
            (st.uid.clone(), due)
        };
        if self.stopped(i) {
            self.schedule(Key::Lease(i), due);
            return;
        }
        let _permit = self.writes.acquire().await;
        let name = &self.nodes[i].id.name;
        let api: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let duration = self.options.lease_duration_seconds;
        let now = chrono::Utc::now();
        let patch = node::lease_renewal(name, uid.as_deref(), duration, now);
        let result = match self.renew(name, &patch).await {
            Err(e) if status_code(&e) == Some(404) => {
                let lease = node::lease_object(name, uid.as_deref(), duration, now);
                match serde_json::from_value::<Lease>(lease) {
                    Ok(lease) => api.create(&PostParams::default(), &lease).await.map(|_| ()),
                    Err(e) => Err(kube::Error::SerdeError(e)),
                }
            }
            other => other,
        };
        match result {
            Ok(()) => {
                self.succeeded(i, "lease");
                self.schedule(Key::Lease(i), due);
            }
            Err(e) => {
                tracing::warn!(node = %name, "cannot renew the node lease: {e}");
                self.failed(i, "lease", Key::Lease(i), interval.max(Duration::from_millis(200)));
            }
        }
    }

    async fn report_status(&self, i: usize) {
        let interval = self.options.heartbeat_interval;
        let (matches, report_by, due) = {
            let mut st = self.nodes[i].state.lock();
            if !st.registered || st.gone {
                return;
            }
            let due = advance(st.status_due, interval, Instant::now());
            st.status_due = due;
            (st.status_matches, st.report_by, due)
        };
        if self.stopped(i) {
            self.schedule(Key::Status(i), due);
            return;
        }
        let stale = report_by.is_none_or(|t| Instant::now() >= t);
        if !stale && matches {
            self.schedule(Key::Status(i), due);
            return;
        }
        let id = &self.nodes[i].id;
        let observed = {
            let st = self.nodes[i].state.lock();
            st.observed_status.as_ref().and_then(|s| serde_json::to_value(s).ok())
        };
        let desired = node::desired_status(id, self.capacity(), observed.as_ref(), chrono::Utc::now());
        let _permit = self.writes.acquire().await;
        let patch = serde_json::json!({"status": desired});
        match self.nodes_api().patch_status(&id.name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
            Ok(node) => {
                self.succeeded(i, "status");
                {
                    let mut st = self.nodes[i].state.lock();
                    st.report_by = Some(Instant::now() + self.report_period(i, st.report_by.is_none()));
                }
                self.observe_node(i, &node, false);
                self.schedule(Key::Status(i), due);
            }
            Err(e) if status_code(&e) == Some(404) => {
                tracing::warn!(node = %id.name, "the node was deleted; its heartbeat stops until it is back");
                self.nodes[i].state.lock().gone = true;
            }
            Err(e) => {
                tracing::warn!(node = %id.name, "cannot update the node status: {e}");
                self.failed(i, "status", Key::Status(i), interval.max(Duration::from_millis(200)));
            }
        }
    }

    /// How long until node `i` writes its unchanged status again. After the first report the
    /// wait is cut to a per-node share of the interval, so that a fleet registered at once
    /// refreshes its statuses steadily over the interval, as kubelets started at different times
    /// do, rather than all together one interval later.
    fn report_period(&self, i: usize, first: bool) -> Duration {
        let interval = self.options.status_report_interval;
        if first { interval - spread(i, self.nodes.len(), interval) } else { interval }
    }

    async fn watch_nodes(self: Arc<Self>) {
        // All nodes, not a label selection: a label edit must not look like a deletion.
        let mut events = self.node_watch.subscribe();
        while let Some(event) = events.recv().await {
            match event {
                Event::Apply(n) | Event::InitApply(n) => {
                    if let Some(&i) = n.metadata.name.as_ref().and_then(|name| self.by_name.get(name)) {
                        self.observe_node(i, &n, false);
                    }
                }
                Event::Delete(n) => {
                    if let Some(&i) = n.metadata.name.as_ref().and_then(|name| self.by_name.get(name)) {
                        let mut st = self.nodes[i].state.lock();
                        if st.registered && st.uid == n.metadata.uid {
                            tracing::warn!(node = %self.nodes[i].id.name, "the node was deleted; its heartbeat stops until it is back");
                            st.gone = true;
                        }
                    }
                }
                Event::Init | Event::InitDone => {}
            }
        }
    }

    async fn watch_pods(self: Arc<Self>) {
        // Unbound pods are passed over; bound ones arrive as they are bound.
        let mut events = self.pod_watch.subscribe();
        let mut listed: Option<HashSet<String>> = None;
        while let Some(event) = events.recv().await {
            match event {
                Event::Init => listed = Some(HashSet::new()),
                Event::InitApply(p) => {
                    if let (Some(uid), Some(seen)) = (self.observe_pod(p), listed.as_mut()) {
                        seen.insert(uid);
                    }
                }
                Event::InitDone => {
                    if let Some(seen) = listed.take() {
                        let gone: Vec<String> =
                            self.pods.lock().keys().filter(|uid| !seen.contains(*uid)).cloned().collect();
                        for uid in gone {
                            self.forget_pod(&uid);
                        }
                    }
                    if !self.pods_synced.swap(true, Ordering::SeqCst) {
                        tracing::debug!("pods listed; simulated nodes start moving pods along");
                    }
                    self.reschedule_pods_of(None);
                }
                Event::Apply(p) => {
                    self.observe_pod(p);
                }
                Event::Delete(p) => {
                    if let Some(uid) = p.metadata.uid.as_deref() {
                        self.forget_pod(uid);
                    }
                }
            }
        }
    }

    /// Records a pod bound to one of our nodes (as the shared informer keeps it, without what
    /// only a real kubelet acts on); returns its uid if it is ours.
    fn observe_pod(&self, p: Arc<Pod>) -> Option<String> {
        let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).and_then(|n| self.by_name.get(n)).copied()?;
        let uid = p.metadata.uid.clone()?;
        let now = Instant::now();
        let deleting = p.metadata.deletion_timestamp.is_some();
        let terminal = pod::is_terminal(&p);
        let ip = p.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse().ok());
        let host_network = p.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
        {
            let mut st = self.nodes[node].state.lock();
            if terminal {
                st.alloc.release(&uid);
            } else if let Some(ip) = ip
                && !host_network
                && !st.alloc.reserve(&uid, ip)
            {
                tracing::debug!(pod = %uid, %ip, "pod IP outside the node's range or taken; left as is");
            }
        }
        {
            let mut pods = self.pods.lock();
            let entry = pods.entry(uid.clone()).or_insert_with(|| PodEntry {
                pod: Arc::default(),
                node,
                seen: Seen { first: now, deletion: None },
                acted_on: None,
                failures: 0,
            });
            if deleting && entry.seen.deletion.is_none() {
                entry.seen.deletion = Some(now);
            }
            entry.pod = p;
        }
        self.now_key(Key::Pod(uid.clone()));
        Some(uid)
    }

    /// Merge-patches a node's Lease without decoding the Lease sent back: nothing here reads it.
    async fn renew(&self, name: &str, patch: &serde_json::Value) -> kube::Result<()> {
        let request = kube::core::Request::new(Lease::url_path(&(), Some(LEASE_NAMESPACE)))
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .map_err(kube::Error::BuildRequest)?;
        self.client.request_text(request).await.map(|_| ())
    }

    /// Strategic-merge patches a pod's status. The pod sent back is not decoded: the watch
    /// brings it anyway.
    async fn patch_pod_status(&self, ns: &str, name: &str, patch: &serde_json::Value) -> kube::Result<()> {
        let request = kube::core::Request::new(Pod::url_path(&(), Some(ns)))
            .patch_subresource("status", name, &PatchParams::default(), &Patch::Strategic(patch))
            .map_err(kube::Error::BuildRequest)?;
        self.client.request_text(request).await.map(|_| ())
    }

    fn forget_pod(&self, uid: &str) {
        let entry = self.pods.lock().remove(uid);
        if let Some(e) = entry {
            self.nodes[e.node].state.lock().alloc.release(uid);
        }
        self.timers.lock().cancel(&Key::Pod(uid.to_string()));
    }

    fn timing(&self) -> pod::Timing {
        pod::Timing {
            start_delay: self.options.pod_start_delay,
            run_duration: self.options.pod_run_duration,
            deletion_cap: self.options.deletion_grace_cap,
        }
    }

    async fn sync_pod(&self, uid: &str) {
        if !self.pods_synced.load(Ordering::SeqCst) {
            return;
        }
        let (pod, node, decision) = {
            let pods = self.pods.lock();
            let Some(e) = pods.get(uid) else { return };
            if e.acted_on.is_some() && e.acted_on == e.pod.metadata.resource_version {
                return;
            }
            let decision = pod::decide(&e.pod, e.seen, &self.timing(), Instant::now(), chrono::Utc::now());
            (e.pod.clone(), e.node, decision)
        };
        {
            let st = self.nodes[node].state.lock();
            if !st.registered || st.gone {
                return;
            }
        }
        if self.stopped(node) {
            return;
        }
        let write = match decision {
            Decision::Idle => return,
            Decision::At(at) => {
                self.schedule(Key::Pod(uid.to_string()), at);
                return;
            }
            other => other,
        };
        let _permit = self.writes.acquire().await;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let now = chrono::Utc::now();
        let result = match write {
            Decision::Start => {
                let host_ip = self.nodes[node].id.ip.to_string();
                let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
                let ip = if host_network { Some(host_ip.clone()) } else { self.allocate(node, uid) };
                let Some(ip) = ip else {
                    tracing::warn!(pod = %format!("{ns}/{name}"), node = %self.nodes[node].id.name, "no pod IP left on the node");
                    self.pod_failed(uid);
                    return;
                };
                self.patch_pod_status(&ns, &name, &pod::running_patch(&pod, &host_ip, &ip, now)).await
            }
            Decision::Complete(code) => {
                self.patch_pod_status(&ns, &name, &pod::terminated_patch(&pod, code, false, now)).await
            }
            Decision::Kill => {
                self.patch_pod_status(&ns, &name, &pod::terminated_patch(&pod, KILLED_EXIT_CODE, true, now)).await
            }
            _ => {
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
                    ..DeleteParams::default()
                };
                api.delete(&name, &params).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => {
                if let Some(e) = self.pods.lock().get_mut(uid) {
                    e.acted_on = pod.metadata.resource_version.clone();
                    e.failures = 0;
                }
                if matches!(write, Decision::Complete(_) | Decision::Kill) {
                    self.nodes[node].state.lock().alloc.release(uid);
                }
            }
            // Gone, or replaced by another pod of that name: its watch event will clean up.
            Err(e) if matches!(status_code(&e), Some(404)) => {}
            // A uid precondition failed: the same.
            Err(e) if matches!(status_code(&e), Some(409)) => {
                tracing::debug!(pod = %format!("{ns}/{name}"), "conflict: {e}");
            }
            Err(e) => {
                tracing::warn!(pod = %format!("{ns}/{name}"), "cannot update the pod ({write:?}): {e}");
                self.pod_failed(uid);
            }
        }
    }

    fn allocate(&self, node: usize, uid: &str) -> Option<String> {
        self.nodes[node].state.lock().alloc.allocate(uid).map(|ip| ip.to_string())
    }

    fn pod_failed(&self, uid: &str) {
        let n = {
            let mut pods = self.pods.lock();
            let Some(e) = pods.get_mut(uid) else { return };
            e.failures = e.failures.saturating_add(1);
            e.failures
        };
        self.schedule(Key::Pod(uid.to_string()), Instant::now() + backoff(n - 1, Duration::from_secs(10)));
    }
}
