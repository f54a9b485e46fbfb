//! Shared informers: one watch per resource for the whole process (controller manager,
//! scheduler and simulated nodes), as kube-controller-manager's shared informer factory gives
//! its controllers.
//!
//! Every pod change used to be decoded once per controller that watched pods (seven of them),
//! and each kept its own copy of every pod. A [`SharedInformer`] decodes each event once, keeps
//! one reflector [`Store`] that every controller reads, and hands each subscriber the event with
//! the object behind an `Arc`.
//!
//! A subscriber sees the same sequence a watcher of its own would: `Init`, one `InitApply` per
//! object, `InitDone`, then `Apply`/`Delete`, and again `Init`… after a relist. One that
//! subscribes late is first given the current state as such a listing.
//!
//! Key types: [`Informers`], [`SharedInformer`], [`SharedEvent`].

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, Resource};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, watch};

/// A watch event whose object is shared with the store and the other subscribers.
pub type SharedEvent<K> = watcher::Event<Arc<K>>;

/// The watches the control loops of one process share. They run whether or not this process
/// leads: a component that gains the lease subscribes and is shown the current state at once.
#[derive(Clone)]
pub struct Informers {
    pub pods: Arc<SharedInformer<Pod>>,
    pub nodes: Arc<SharedInformer<Node>>,
    pub services: Arc<SharedInformer<Service>>,
}

impl Informers {
    /// Starts the shared watches (pods, nodes, Services in every namespace). Pods are kept
    /// without what only a kubelet reads ([`drop_kubelet_only_fields`]).
    pub fn start(client: &Client) -> Self {
        Informers {
            pods: Arc::new(SharedInformer::start_with(Api::all(client.clone()), drop_kubelet_only_fields)),
            nodes: Arc::new(SharedInformer::start(Api::all(client.clone()))),
            services: Arc::new(SharedInformer::start(Api::all(client.clone()))),
        }
    }
}

impl Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informers").finish_non_exhaustive()
    }
}

/// Who gets the events, and what a late subscriber must be shown first.
struct Fanout<K> {
    subscribers: Vec<mpsc::UnboundedSender<SharedEvent<K>>>,
    /// The objects of a listing in progress (between `Init` and `InitDone`).
    listing: Option<Vec<Arc<K>>>,
    /// Turns true with the first completed listing. (kube-runtime's `Store::wait_until_ready`
    /// wakes only the last of several tasks waiting at once, and a shared store has several.)
    ready: watch::Sender<bool>,
}

/// One watch of a resource, its store, and the subscribers its events go to.
pub struct SharedInformer<K>
where
    K: Resource<DynamicType = ()> + 'static,
{
    store: Store<K>,
    fanout: Arc<Mutex<Fanout<K>>>,
    /// The highest `resourceVersion` among the objects of the events the store has taken in.
    progress: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> SharedInformer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Starts watching `api` (every object it reaches).
    pub fn start(api: Api<K>) -> Self {
        Self::start_with(api, |_| {})
    }

    /// Starts watching `api`; `trim` drops what no controller reads from each object before
    /// it is kept.
    pub fn start_with(api: Api<K>, trim: fn(&mut K)) -> Self {
        let (store, mut writer) = reflector::store::<K>();
        let fanout =
            Arc::new(Mutex::new(Fanout { subscribers: Vec::new(), listing: None, ready: watch::Sender::new(false) }));
        let (reader, shared) = (store.clone(), fanout.clone());
        let progress = Arc::new(AtomicU64::new(0));
        let seen = progress.clone();
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(e) => e.modify(trim),
                    Err(e) => {
                        tracing::debug!(error = %e, kind = %K::kind(&()), "shared informer watch");
                        continue;
                    }
                };
                publish(&mut shared.lock(), &mut writer, &reader, &seen, event);
            }
        });
        SharedInformer { store, fanout, progress, task }
    }

    /// The highest `resourceVersion` of an object the store has taken in (0 before any). This
    /// server's resource versions are store revisions, so a write whose reply carried revision
    /// `r` is in the store (or already replaced or deleted there) once this is at least `r`.
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Acquire)
    }

    /// The store every event has been applied to.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Turns true once the first listing is in the store; use it rather than the store's
    /// `wait_until_ready`, which several waiters cannot share.
    pub fn listed(&self) -> watch::Receiver<bool> {
        self.fanout.lock().ready.subscribe()
    }

    /// Every event from now on, preceded by the current state as a listing.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<SharedEvent<K>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut fan = self.fanout.lock();
        if let Some(so_far) = &fan.listing {
            // Mid-listing: the rest of it and its InitDone follow.
            let _ = tx.send(watcher::Event::Init);
            for o in so_far {
                let _ = tx.send(watcher::Event::InitApply(o.clone()));
            }
        } else if *fan.ready.borrow() {
            let _ = tx.send(watcher::Event::Init);
            for o in self.store.state() {
                let _ = tx.send(watcher::Event::InitApply(o));
            }
            let _ = tx.send(watcher::Event::InitDone);
        }
        fan.subscribers.push(tx);
        rx
    }

    /// Runs `on_event` for every event, after the store has seen it, in a task of its own.
    pub fn on_events<F>(&self, mut on_event: F) -> tokio::task::JoinHandle<()>
    where
        F: FnMut(&SharedEvent<K>) + Send + 'static,
    {
        let mut rx = self.subscribe();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                on_event(&event);
            }
        })
    }

    /// The objects of every change (applied, listed or deleted), for kube-runtime
    /// `Controller::watches_shared_stream`.
    pub fn objects(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let mut rx = self.subscribe();
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).filter_map(|e| async move {
            match e {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => Some(o),
                watcher::Event::Init | watcher::Event::InitDone => None,
            }
        })
    }
}

impl<K> Drop for SharedInformer<K>
where
    K: Resource<DynamicType = ()> + 'static,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Applies one event to the store and hands it to every subscriber. The caller holds the
/// fan-out's lock, so the store and the subscribers change together: a subscriber arriving in
/// between sees either both or neither.
fn publish<K>(
    fan: &mut Fanout<K>,
    writer: &mut Writer<K>,
    store: &Store<K>,
    progress: &AtomicU64,
    event: watcher::Event<K>,
) where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    writer.apply_watcher_event(&event);
    if let watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) = &event
        && let Some(rv) = o.meta().resource_version.as_deref().and_then(|rv| rv.parse::<u64>().ok())
    {
        progress.fetch_max(rv, Ordering::Release);
    }
    let event = share(event, store);
    match &event {
        watcher::Event::Init => fan.listing = Some(Vec::new()),
        watcher::Event::InitApply(o) => fan.listing.get_or_insert_with(Vec::new).push(o.clone()),
        watcher::Event::InitDone => {
            fan.listing = None;
            fan.ready.send_replace(true);
        }
        watcher::Event::Apply(_) | watcher::Event::Delete(_) => {}
    }
    fan.subscribers.retain(|tx| tx.send(event.clone()).is_ok());
}

/// Drives a shared informer's fan-out by hand, as its watch task does.
#[cfg(test)]
pub(crate) fn feed(inf: &SharedInformer<Pod>, writer: &mut Writer<Pod>, event: watcher::Event<Pod>) {
    publish(&mut inf.fanout.lock(), writer, &inf.store, &inf.progress, event);
}

/// A shared informer without a watch, fed with [`feed`].
#[cfg(test)]
pub(crate) fn offline() -> (SharedInformer<Pod>, Writer<Pod>) {
    let (store, writer) = reflector::store::<Pod>();
    let fanout =
        Arc::new(Mutex::new(Fanout { subscribers: Vec::new(), listing: None, ready: watch::Sender::new(false) }));
    let progress = Arc::new(AtomicU64::new(0));
    (SharedInformer { store, fanout, progress, task: tokio::spawn(async {}) }, writer)
}

/// Drops what only a kubelet acts on from a pod before a control loop keeps it: managed
/// fields, volumes, and the containers' environment, mounts, commands, probes, hooks and
/// security contexts. A decoded pod is several times larger than its JSON, and the controllers,
/// the scheduler and the simulated nodes each keep every pod they follow; none of them reads
/// these parts, and none writes a kept pod back whole.
pub fn drop_kubelet_only_fields(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    if let Some(spec) = pod.spec.as_mut() {
        spec.volumes = None;
        let containers = spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten());
        for c in containers {
            c.env = None;
            c.env_from = None;
            c.volume_mounts = None;
            c.volume_devices = None;
            c.command = None;
            c.args = None;
            c.liveness_probe = None;
            c.readiness_probe = None;
            c.startup_probe = None;
            c.lifecycle = None;
            c.security_context = None;
        }
    }
}

/// The event with its object behind an `Arc`: for an applied object, the store's own.
fn share<K>(event: watcher::Event<K>, store: &Store<K>) -> SharedEvent<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    match event {
        watcher::Event::Apply(o) => {
            let stored = store.get(&ObjectRef::from_obj(&o));
            watcher::Event::Apply(stored.unwrap_or_else(|| Arc::new(o)))
        }
        watcher::Event::Delete(o) => watcher::Event::Delete(Arc::new(o)),
        watcher::Event::InitApply(o) => watcher::Event::InitApply(Arc::new(o)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p
    }

    fn names(events: &[SharedEvent<Pod>]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                watcher::Event::Init => "init".into(),
                watcher::Event::InitApply(p) => format!("list {}", p.metadata.name.as_deref().unwrap_or("")),
                watcher::Event::InitDone => "done".into(),
                watcher::Event::Apply(p) => format!("apply {}", p.metadata.name.as_deref().unwrap_or("")),
                watcher::Event::Delete(p) => format!("delete {}", p.metadata.name.as_deref().unwrap_or("")),
            })
            .collect()
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<SharedEvent<Pod>>) -> Vec<SharedEvent<Pod>> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    /// Drives the fan-out by hand, as the watch task does.

    #[tokio::test]
    async fn late_subscribers_see_a_listing_first() {
        let (inf, mut w) = offline();
        let mut early = inf.subscribe();
        feed(&inf, &mut w, watcher::Event::Init);
        feed(&inf, &mut w, watcher::Event::InitApply(pod("a")));
        // Subscribing in the middle of the listing: it is replayed so far, the rest follows.
        let mut middle = inf.subscribe();
        feed(&inf, &mut w, watcher::Event::InitApply(pod("b")));
        feed(&inf, &mut w, watcher::Event::InitDone);
        feed(&inf, &mut w, watcher::Event::Apply(pod("c")));
        let mut late = inf.subscribe();
        feed(&inf, &mut w, watcher::Event::Delete(pod("a")));

        let want = ["init", "list a", "list b", "done", "apply c", "delete a"];
        assert_eq!(names(&drain(&mut early)), want);
        assert_eq!(names(&drain(&mut middle)), want);
        let mut got = names(&drain(&mut late));
        got[1..4].sort();
        assert_eq!(got, ["init", "list a", "list b", "list c", "done", "delete a"]);
    }

    #[tokio::test]
    async fn applied_objects_are_the_stores_own() {
        let (inf, mut w) = offline();
        let mut rx = inf.subscribe();
        feed(&inf, &mut w, watcher::Event::Init);
        feed(&inf, &mut w, watcher::Event::InitDone);
        feed(&inf, &mut w, watcher::Event::Apply(pod("a")));
        let events = drain(&mut rx);
        let watcher::Event::Apply(p) = &events[2] else { panic!("{:?}", names(&events)) };
        let stored = inf.store.get(&ObjectRef::from_obj(p.as_ref())).expect("stored");
        assert!(Arc::ptr_eq(p, &stored), "one copy of the pod, not two");
    }

    #[test]
    fn kept_pods_lose_only_what_a_kubelet_uses() {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "labels": {"app": "x"}, "managedFields": [{"manager": "m", "operation": "Update"}],
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]},
            "spec": {
                "nodeName": "n1",
                "volumes": [{"name": "v", "emptyDir": {}}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "containers": [{
                    "name": "c", "image": "busybox",
                    "env": [{"name": "A", "value": "1"}], "command": ["sh"],
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                    "readinessProbe": {"exec": {"command": ["true"]}},
                    "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080}],
                    "resources": {"requests": {"cpu": "100m"}}
                }]
            },
            "status": {"phase": "Running", "podIP": "10.42.0.5", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        drop_kubelet_only_fields(&mut p);
        let v = serde_json::to_value(&p).unwrap();
        assert!(v["metadata"].get("managedFields").is_none());
        assert!(v["spec"].get("volumes").is_none());
        let c = &v["spec"]["containers"][0];
        for gone in ["env", "command", "volumeMounts", "readinessProbe"] {
            assert!(c.get(gone).is_none(), "{gone} is dropped: {c}");
        }
        assert_eq!(c["ports"][0]["hostPort"], 8080);
        assert_eq!(c["resources"]["requests"]["cpu"], "100m");
        assert_eq!(c["image"], "busybox");
        assert_eq!(v["metadata"]["labels"]["app"], "x");
        assert_eq!(v["metadata"]["ownerReferences"][0]["name"], "r");
        assert_eq!(v["spec"]["tolerations"][0]["key"], "k");
        assert_eq!(v["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(v["status"]["podIP"], "10.42.0.5");
    }

    #[tokio::test]
    async fn every_waiter_sees_the_first_listing() {
        let (inf, mut w) = offline();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let mut rx = inf.listed();
                tokio::spawn(async move { rx.wait_for(|l| *l).await.is_ok() })
            })
            .collect();
        tokio::task::yield_now().await;
        feed(&inf, &mut w, watcher::Event::Init);
        feed(&inf, &mut w, watcher::Event::InitDone);
        for waiter in waiters {
            let done = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
            assert!(matches!(done, Ok(Ok(true))), "a waiter was not woken");
        }
    }

    #[tokio::test]
    async fn gone_subscribers_are_dropped() {
        let (inf, mut w) = offline();
        drop(inf.subscribe());
        let _kept = inf.subscribe();
        feed(&inf, &mut w, watcher::Event::Init);
        assert_eq!(inf.fanout.lock().subscribers.len(), 1);
    }
}
