//! The Endpoints controller, as upstream's `pkg/controller/endpoint`: every Service with a
//! selector has an Endpoints object of the same name listing the pods it selects.
//!
//! For a Service (not `ExternalName`, with a non-empty selector) each reconcile takes the
//! selected pods from a watch cache and
//!
//! - leaves out terminal pods, pods without an IP and (unless `publishNotReadyAddresses`)
//!   terminating pods ([`should_pod_be_in_endpoints`]);
//! - gives every remaining pod an address (`ip`, `nodeName`, `targetRef`, and `hostname` when
//!   the pod's subdomain is the Service), under `addresses` when it is ready (or the Service
//!   publishes not-ready addresses), else under `notReadyAddresses`;
//! - resolves every Service port per pod ([`find_port`]: a named `targetPort` is looked up in
//!   the pod's container ports; a pod without it is left out of that port); a headless Service
//!   without ports lists its pods without ports;
//! - packs the result as upstream's `RepackSubsets` does ([`repack_subsets`]): one subset per
//!   set of addresses sharing the same ports, sorted, and truncates to 1000 addresses
//!   (annotation `endpoints.kubernetes.io/over-capacity: truncated`);
//! - writes the Endpoints (labels: the Service's, plus `service.kubernetes.io/headless` for
//!   headless Services and `endpoints.kubernetes.io/managed-by: endpoint-controller`;
//!   annotation `endpoints.kubernetes.io/last-change-trigger-time` from [`TriggerTimes`]) only
//!   when its subsets or labels differ.
//!
//! Services without a selector are left alone (their Endpoints are written by users). When a
//! Service goes, its Endpoints go too; at start every Endpoints object is checked once, so
//! those left behind by a Service deleted while the controller was down go as well (except
//! leader election records).
//!
//! Reconciles are triggered by Service events, by pod events (every Service of the pod's
//! namespace that selects it now or did before) and by deleted Endpoints.

use crate::Shutdown;
use crate::informers::Informers;
use crate::support::{
    ReconcileError, WorkQueue, is_already_exists, is_conflict, is_namespace_gone, is_not_found, stopped,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The controller's name, the value of [`MANAGED_BY_LABEL`].
pub const CONTROLLER_NAME: &str = "endpoint-controller";
/// Label naming who manages an Endpoints object.
pub const MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
/// Annotation: when the change that led to this Endpoints (or EndpointSlice) content happened.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Annotation set to `truncated` when more than [`MAX_CAPACITY`] addresses were cut.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Label of objects belonging to a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Annotation of leader election records kept in Endpoints objects (left alone).
pub const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// Most addresses an Endpoints object holds.
pub const MAX_CAPACITY: usize = 1000;

/// How often every Service is looked at again anyway.
const RESYNC: Duration = Duration::from_secs(300);
/// Reconciles running at once (upstream's `ConcurrentEndpointSyncs` default is 5).
const WORKERS: usize = 2;

/// A Service's namespace and name.
pub type ServiceKey = (String, String);

// ---------------------------------------------------------------------------------------------
// Pure computations, shared with the EndpointSlice controller
// ---------------------------------------------------------------------------------------------

/// The Service's selector, when it has a non-empty one.
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether the Service is headless (`clusterIP: None`).
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Whether a controller fills in endpoints for the Service: it has a selector and is not
/// `ExternalName`.
pub fn wants_endpoints(svc: &Service) -> bool {
    let external = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
    !external && selector(svc).is_some()
}

/// Whether the Service selects the pod (same namespace, selector labels present).
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(sel) = selector(svc) else { return false };
    svc.metadata.namespace == pod.metadata.namespace
        && sel.iter().all(|(k, v)| pod.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
}

/// Whether the pod finished (Succeeded or Failed).
fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Upstream's `ShouldPodBeInEndpoints`: not terminal, has an IP, and (unless
/// `include_terminating`) not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if is_terminal(pod) || pod_ipv4(pod).is_none() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// The pod's IPv4 address (the only family the service range has).
pub fn pod_ipv4(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
    listed
        .chain(status.pod_ip.as_deref())
        .find(|ip| ip.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4()))
        .map(str::to_string)
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    crate::pods::is_ready(pod)
}

/// Upstream's `ShouldSetHostname`: the pod names a hostname and its subdomain is the Service.
pub fn hostname_for(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref() && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| hostname.to_string())
}

/// Upstream's `podutil.FindPort`: the container port a Service port leads to in `pod`. A
/// named `targetPort` is looked up among the pod's container ports of the same protocol; a
/// number is used as is; no target port means the Service port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        Some(IntOrString::String(name)) if name.parse::<i32>().is_err() => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
            containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                .map(|p| p.container_port)
        }
        Some(IntOrString::String(n)) => n.parse().ok(),
        Some(IntOrString::Int(0)) | None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
    }
}

/// A reference to the pod, as endpoints carry it.
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

fn address_for(pod: &Pod, svc: &Service, ip: String) -> EndpointAddress {
    EndpointAddress {
        ip,
        hostname: hostname_for(pod, svc),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
        target_ref: Some(pod_reference(pod)),
    }
}

fn address_key(a: &EndpointAddress) -> (String, String) {
    (a.ip.clone(), a.target_ref.as_ref().and_then(|r| r.uid.clone()).unwrap_or_default())
}

/// A port's identity: name, number, protocol, application protocol.
type PortKey = (String, i32, String, String);
/// What [`repack_subsets`] knows of an address: itself, whether it is ready, its ports.
type AddressPorts = (EndpointAddress, bool, BTreeSet<PortKey>);

fn port_key(p: &EndpointPort) -> PortKey {
    (
        p.name.clone().unwrap_or_default(),
        p.port,
        p.protocol.clone().unwrap_or_default(),
        p.app_protocol.clone().unwrap_or_default(),
    )
}

/// Upstream's `RepackSubsets`: groups addresses (ready or not) by the exact set of ports they
/// serve, one subset per group; addresses sorted by IP (then pod uid), ports by name and
/// number, subsets by their first address. An address both ready and not ready counts as
/// ready.
pub fn repack_subsets(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    // Address → (address, ready, ports it serves). A port-less subset counts as the sentinel
    // "no port", as upstream's.
    let mut addrs: BTreeMap<(String, String), AddressPorts> = BTreeMap::new();
    let mut ports_by_key: HashMap<PortKey, EndpointPort> = HashMap::new();
    for ss in subsets {
        let ports: Vec<EndpointPort> = ss.ports.unwrap_or_default();
        let lists = [(ss.addresses.unwrap_or_default(), true), (ss.not_ready_addresses.unwrap_or_default(), false)];
        for (list, ready) in lists {
            for a in list {
                let entry = addrs.entry(address_key(&a)).or_insert_with(|| (a.clone(), ready, BTreeSet::new()));
                entry.1 |= ready;
                for p in &ports {
                    ports_by_key.insert(port_key(p), p.clone());
                    entry.2.insert(port_key(p));
                }
            }
        }
    }
    type Ready = Vec<EndpointAddress>;
    type NotReady = Vec<EndpointAddress>;
    let mut groups: BTreeMap<BTreeSet<PortKey>, (Ready, NotReady)> = BTreeMap::new();
    for (_, (a, ready, ports)) in addrs {
        let g = groups.entry(ports).or_default();
        if ready { g.0.push(a) } else { g.1.push(a) }
    }
    let mut out: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| ports.iter().filter_map(|k| ports_by_key.get(k).cloned()).collect()),
        })
        .collect();
    let first = |ss: &EndpointSubset| {
        ss.addresses.iter().chain(ss.not_ready_addresses.iter()).flatten().map(address_key).min().unwrap_or_default()
    };
    out.sort_by_key(first);
    out
}

/// The subsets of the Service's Endpoints from the pods it selects.
pub fn compute_subsets(svc: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let tolerate_unready = spec.publish_not_ready_addresses.unwrap_or(false);
    let service_ports = spec.ports.unwrap_or_default();
    let mut subsets = Vec::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let Some(ip) = pod_ipv4(pod) else { continue };
        let address = address_for(pod, svc, ip);
        let ready = tolerate_unready || is_pod_ready(pod);
        let subset = |ports: Option<Vec<EndpointPort>>| {
            if ready {
                EndpointSubset { addresses: Some(vec![address.clone()]), ports, ..Default::default() }
            } else {
                EndpointSubset { not_ready_addresses: Some(vec![address.clone()]), ports, ..Default::default() }
            }
        };
        if service_ports.is_empty() {
            if is_headless(svc) {
                subsets.push(subset(None));
            }
            continue;
        }
        for sp in &service_ports {
            let Some(port) = find_port(pod, sp) else { continue };
            let ep = EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            };
            subsets.push(subset(Some(vec![ep])));
        }
    }
    repack_subsets(subsets)
}

/// Upstream's `truncateEndpoints`: cuts to [`MAX_CAPACITY`] addresses, each subset keeping
/// its proportion (rounded up); not-ready addresses go first, ready ones only when they alone
/// are too many. Returns whether anything was cut.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready { (MAX_CAPACITY, ready) } else { (MAX_CAPACITY - ready, not_ready) };
    let mut room = max;
    for ss in subsets.iter_mut() {
        let here = if truncate_ready { count(&ss.addresses) } else { count(&ss.not_ready_addresses) };
        let share = (here * max).div_ceil(total.max(1)).min(room);
        if truncate_ready {
            if let Some(a) = ss.addresses.as_mut() {
                a.truncate(share);
            }
            ss.not_ready_addresses = None;
            room -= count(&ss.addresses);
        } else {
            if let Some(a) = ss.not_ready_addresses.as_mut() {
                a.truncate(share);
            }
            room -= count(&ss.not_ready_addresses);
        }
    }
    true
}

/// The labels of the Service's Endpoints: the Service's own, the headless label for headless
/// Services, and the managed-by label.
pub fn endpoints_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

/// The time of the pod change that (re)computes endpoints: its `Ready` condition's transition.
fn pod_trigger_time(pod: &Pod) -> Option<Timestamp> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == "Ready")?.last_transition_time.as_ref().map(|t| t.0)
}

#[derive(Default)]
struct TriggerState {
    pods: HashMap<String, Timestamp>,
    service: Option<Timestamp>,
}

/// Upstream's `TriggerTimeTracker`: the last-change trigger time of a Service's endpoints is
/// the earliest change (a pod's Ready transition, or the Service's creation) not yet reflected
/// in them; for a Service seen for the first time, its creation.
#[derive(Default)]
pub struct TriggerTimes {
    states: Mutex<HashMap<ServiceKey, TriggerState>>,
}

impl TriggerTimes {
    /// Computes the trigger time for `svc` over its `pods` and remembers what it saw.
    pub fn compute(&self, svc: &Service, pods: &[&Pod]) -> Option<Timestamp> {
        let key = (svc.namespace().unwrap_or_default(), svc.name_any());
        let mut states = self.states.lock();
        let known = states.contains_key(&key);
        let state = states.entry(key).or_default();
        let mut earliest: Option<Timestamp> = None;
        let mut seen = HashMap::new();
        for pod in pods {
            let Some(t) = pod_trigger_time(pod) else { continue };
            let name = pod.name_any();
            if state.pods.get(&name).is_none_or(|last| t > *last) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
            seen.insert(name, t);
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(c) = created
            && state.service.is_none_or(|last| c > last)
        {
            earliest = Some(earliest.map_or(c, |e| e.min(c)));
        }
        state.pods = seen;
        state.service = created;
        if !known { created } else { earliest }
    }

    /// Forgets a Service that is gone.
    pub fn forget(&self, key: &ServiceKey) {
        self.states.lock().remove(key);
    }
}

/// Formats a trigger time as upstream does (`RFC3339Nano`, UTC).
pub fn format_time(t: Timestamp) -> String {
    t.to_string()
}

// ---------------------------------------------------------------------------------------------
// Watches and the work queue, shared with the EndpointSlice controller
// ---------------------------------------------------------------------------------------------

/// Starts a reflector over `api` whose events (after the store saw them) go to `on_event`.
pub(crate) fn informer<K, F>(
    api: Api<K>,
    config: watcher::Config,
    mut on_event: F,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: FnMut(&watcher::Event<K>) + Send + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(e) => on_event(&e),
                Err(e) => tracing::debug!(error = %e, "endpoints informer watch"),
            }
        }
    });
    (store, task)
}

pub(crate) fn key_of<K: Resource>(o: &K) -> ServiceKey {
    (o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default())
}

/// The Service and pod watches both controllers run on: Service events queue that Service
/// (a relist also queues those that disappeared meanwhile), pod events queue every Service
/// that selects the pod now or did at its previous event.
pub(crate) struct ServiceWatches {
    pub services: Store<Service>,
    pub pods: Store<Pod>,
    /// Turn true once each shared watch has listed.
    listed: [tokio::sync::watch::Receiver<bool>; 2],
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ServiceWatches {
    pub fn start(informers: &Informers, queue: &WorkQueue<ServiceKey>) -> Self {
        let q = queue.clone();
        let mut known: HashSet<ServiceKey> = HashSet::new();
        let mut relisted: HashSet<ServiceKey> = HashSet::new();
        let services = informers.services.store();
        let svc_task = informers.services.on_events(move |e| match e {
            watcher::Event::Apply(s) | watcher::Event::Delete(s) => {
                let k = key_of(s.as_ref());
                if matches!(e, watcher::Event::Apply(_)) {
                    known.insert(k.clone());
                } else {
                    known.remove(&k);
                }
                q.add(k);
            }
            watcher::Event::Init => relisted.clear(),
            watcher::Event::InitApply(s) => {
                relisted.insert(key_of(s.as_ref()));
                q.add(key_of(s.as_ref()));
            }
            watcher::Event::InitDone => {
                for gone in known.difference(&relisted) {
                    q.add(gone.clone());
                }
                known = std::mem::take(&mut relisted);
            }
        });
        let q = queue.clone();
        let svc_store = services.clone();
        let mut matched: HashMap<ServiceKey, Vec<ServiceKey>> = HashMap::new();
        let pods = informers.pods.store();
        let pod_task = informers.pods.on_events(move |e| {
            let (pod, deleted) = match e {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (p, false),
                watcher::Event::Delete(p) => (p, true),
                _ => return,
            };
            let pk = key_of(pod.as_ref());
            let now: Vec<ServiceKey> = if deleted {
                Vec::new()
            } else {
                svc_store.state().iter().filter(|s| selects(s, pod)).map(|s| key_of(s.as_ref())).collect()
            };
            let before = if deleted { matched.remove(&pk) } else { matched.insert(pk, now.clone()) };
            for k in before.into_iter().flatten().chain(now) {
                q.add(k);
            }
        });
        let listed = [informers.services.listed(), informers.pods.listed()];
        ServiceWatches { services, pods, listed, tasks: vec![svc_task, pod_task] }
    }

    /// Waits for the first lists; false when shutdown came first.
    pub async fn ready(&self, shutdown: &Shutdown) -> bool {
        tokio::select! {
            r = async {
                let [mut services, mut pods] = self.listed.clone();
                services.wait_for(|l| *l).await?;
                pods.wait_for(|l| *l).await.map(|_| ())
            } => r.is_ok(),
            _ = stopped(shutdown.clone()) => false,
        }
    }

    /// The Service of `key`, if it exists.
    pub fn service(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(&key.1).within(&key.0))
    }

    /// The pods the Service selects.
    pub fn selected_pods(&self, svc: &Service) -> Vec<Arc<Pod>> {
        self.pods.state().into_iter().filter(|p| selects(svc, p)).collect()
    }
}

impl Drop for ServiceWatches {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs `workers` workers over `queue` with `reconcile` until `shutdown`, queueing every
/// Service of `services` again every [`RESYNC`].
pub(crate) async fn run_workers<F, Fut>(
    name: &'static str,
    queue: WorkQueue<ServiceKey>,
    services: Store<Service>,
    shutdown: Shutdown,
    reconcile: F,
) where
    F: Fn(ServiceKey) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), ReconcileError>> + Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (queue, reconcile) = (queue.clone(), reconcile.clone());
        tasks.spawn(async move {
            while let Some(key) = queue.next().await {
                match reconcile(key.clone()).await {
                    Ok(()) => queue.forget(&key),
                    Err(e) => {
                        tracing::debug!(service = %format!("{}/{}", key.0, key.1), "{name}: {e}");
                        queue.retry(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    let resync = {
        let queue = queue.clone();
        async move {
            loop {
                tokio::time::sleep(RESYNC).await;
                for s in services.state() {
                    queue.add(key_of(s.as_ref()));
                }
            }
        }
    };
    tokio::select! {
        _ = resync => {}
        _ = stopped(shutdown) => {}
    }
    queue.close();
    while tasks.join_next().await.is_some() {}
}

// ---------------------------------------------------------------------------------------------
// The controller
// ---------------------------------------------------------------------------------------------

struct Ctx {
    client: Client,
    watches: ServiceWatches,
    triggers: TriggerTimes,
}

fn labels_without_ours(labels: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    let mut l = labels.cloned().unwrap_or_default();
    l.remove(HEADLESS_LABEL);
    l.remove(MANAGED_BY_LABEL);
    l
}

async fn reconcile(ctx: Arc<Ctx>, key: ServiceKey) -> Result<(), ReconcileError> {
    let (ns, name) = (&key.0, &key.1);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
    let Some(svc) = ctx.watches.service(&key) else {
        // The Service is gone: so are its Endpoints (unless they hold a leader election).
        ctx.triggers.forget(&key);
        if let Some(ep) = api.get_opt(name).await?
            && !ep.annotations().contains_key(LEADER_ANNOTATION)
        {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::debug!(endpoints = %format!("{ns}/{name}"), "deleted the endpoints of a deleted service")
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(());
    };
    if !wants_endpoints(&svc) {
        return Ok(());
    }
    let pods = ctx.watches.selected_pods(&svc);
    let pod_refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
    let mut subsets = compute_subsets(&svc, &pod_refs);
    let trigger = ctx.triggers.compute(&svc, &pod_refs);
    let current = api.get_opt(name).await?;
    let truncated = truncate(&mut subsets);
    if let Some(cur) = &current {
        let same_subsets = cur.subsets.clone().unwrap_or_default() == subsets;
        let same_labels =
            labels_without_ours(cur.metadata.labels.as_ref()) == labels_without_ours(svc.metadata.labels.as_ref());
        let same_capacity = cur.annotations().contains_key(OVER_CAPACITY) == truncated;
        if same_subsets && same_labels && same_capacity {
            return Ok(());
        }
    }
    let mut annotations = current.as_ref().and_then(|c| c.metadata.annotations.clone()).unwrap_or_default();
    match trigger {
        Some(t) => annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_time(t)),
        None => annotations.remove(LAST_CHANGE_TRIGGER_TIME),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(ns.clone()),
        labels: Some(endpoints_labels(&svc)),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..current.as_ref().map(|c| c.metadata.clone()).unwrap_or_default()
    };
    let desired = Endpoints { metadata: meta, subsets: (!subsets.is_empty()).then_some(subsets) };
    let result = match &current {
        None => api.create(&PostParams::default(), &desired).await,
        Some(_) => api.replace(name, &PostParams::default(), &desired).await,
    };
    match result {
        Ok(_) => Ok(()),
        // The namespace is going away: nothing to keep up to date.
        Err(e) if current.is_none() && is_namespace_gone(&e) && !is_already_exists(&e) => Ok(()),
        Err(e) if is_conflict(&e) || is_already_exists(&e) => {
            Err(ReconcileError(anyhow::anyhow!("endpoints changed meanwhile: {e}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs the Endpoints controller until `shutdown` turns true.
pub async fn run(client: Client, informers: Informers, shutdown: Shutdown) -> anyhow::Result<()> {
    let queue: WorkQueue<ServiceKey> = WorkQueue::new();
    let watches = ServiceWatches::start(&informers, &queue);
    // Deleted Endpoints are made again; at start, every Endpoints is checked once (those of
    // Services that are gone are removed).
    let q = queue.clone();
    let mut first_list = true;
    let (_endpoints, ep_task) =
        informer(Api::<Endpoints>::all(client.clone()), watcher::Config::default(), move |e| match e {
            watcher::Event::Delete(ep) => q.add(key_of(ep)),
            watcher::Event::InitApply(ep) if first_list => q.add(key_of(ep)),
            watcher::Event::InitDone => first_list = false,
            _ => {}
        });
    if !watches.ready(&shutdown).await {
        ep_task.abort();
        return Ok(());
    }
    let ctx = Arc::new(Ctx { client, watches, triggers: TriggerTimes::default() });
    let c = ctx.clone();
    run_workers("endpoints controller", queue, ctx.watches.services.clone(), shutdown, move |key| {
        reconcile(c.clone(), key)
    })
    .await;
    ep_task.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(v: serde_json::Value) -> Service {
        let mut base = json!({"metadata": {"name": "web", "namespace": "ns", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}});
        merge(&mut base, v);
        serde_json::from_value(base).unwrap()
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn pod(name: &str, ip: &str, ready: bool, port_name: Option<&str>) -> Pod {
        let ports = match port_name {
            Some(n) => json!([{"name": n, "containerPort": 8080, "protocol": "TCP"}]),
            None => json!([]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                    "lastTransitionTime": "2024-01-01T00:01:00Z"}]},
        }))
        .unwrap()
    }

    #[test]
    fn ready_and_not_ready_addresses_with_named_ports() {
        let svc = service(json!({}));
        let a = pod("a", "10.42.0.5", true, Some("http"));
        let b = pod("b", "10.42.0.4", true, Some("http"));
        let c = pod("c", "10.42.1.2", false, Some("http"));
        // No container port named `http`: left out of that port's subset (and so of all here).
        let d = pod("d", "10.42.1.3", true, Some("other"));
        let subsets = compute_subsets(&svc, &[&a, &b, &c, &d]);
        assert_eq!(subsets.len(), 1);
        let ss = &subsets[0];
        let ips: Vec<&str> = ss.addresses.iter().flatten().map(|a| a.ip.as_str()).collect();
        assert_eq!(ips, ["10.42.0.4", "10.42.0.5"]);
        let not_ready: Vec<&str> = ss.not_ready_addresses.iter().flatten().map(|a| a.ip.as_str()).collect();
        assert_eq!(not_ready, ["10.42.1.2"]);
        let ports = ss.ports.as_ref().unwrap();
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].port, ports[0].protocol.as_deref()),
            (Some("http"), 8080, Some("TCP"))
        );
        let first = &ss.addresses.as_ref().unwrap()[0];
        assert_eq!(first.node_name.as_deref(), Some("node-1"));
        let target = first.target_ref.as_ref().unwrap();
        assert_eq!(
            (target.kind.as_deref(), target.name.as_deref(), target.uid.as_deref()),
            (Some("Pod"), Some("b"), Some("uid-b"))
        );
    }

    #[test]
    fn publish_not_ready_and_terminating_pods() {
        let svc = service(json!({"spec": {"publishNotReadyAddresses": true}}));
        let a = pod("a", "10.42.0.5", false, Some("http"));
        let mut gone = pod("g", "10.42.0.6", true, Some("http"));
        gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
        let subsets = compute_subsets(&svc, &[&a, &gone]);
        // publishNotReadyAddresses: every pod is an address, even one terminating.
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 2);
        let svc = service(json!({}));
        let subsets = compute_subsets(&svc, &[&a, &gone]);
        assert_eq!(subsets[0].addresses, None);
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 1);
        // Finished pods and pods without an IP are never listed.
        let mut done = pod("d", "10.42.0.7", true, Some("http"));
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut no_ip = pod("n", "10.42.0.8", true, Some("http"));
        no_ip.status.as_mut().unwrap().pod_ip = None;
        no_ip.status.as_mut().unwrap().pod_ips = None;
        assert!(compute_subsets(&svc, &[&done, &no_ip]).is_empty());
    }

    #[test]
    fn ports_group_addresses_and_headless_without_ports() {
        let svc = service(json!({"spec": {"ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
            {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}]}}));
        let a = pod("a", "10.42.0.5", true, Some("http"));
        let b = pod("b", "10.42.0.6", true, None);
        let subsets = compute_subsets(&svc, &[&a, &b]);
        // a serves both ports, b only the numeric one: two subsets.
        assert_eq!(subsets.len(), 2);
        assert_eq!(subsets[0].addresses.as_ref().unwrap()[0].ip, "10.42.0.5");
        assert_eq!(subsets[0].ports.as_ref().unwrap().len(), 2);
        assert_eq!(subsets[1].ports.as_ref().unwrap().len(), 1);
        assert_eq!(subsets[1].ports.as_ref().unwrap()[0].port, 9090);

        let headless = service(json!({"spec": {"clusterIP": "None", "ports": []}}));
        let subsets = compute_subsets(&headless, &[&a]);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].ports, None);
        assert_eq!(endpoints_labels(&headless).get(HEADLESS_LABEL).map(String::as_str), Some(""));
        assert_eq!(endpoints_labels(&svc).get(MANAGED_BY_LABEL).map(String::as_str), Some(CONTROLLER_NAME));
        // A non-headless Service without ports gets no addresses.
        let portless = service(json!({"spec": {"ports": []}}));
        assert!(compute_subsets(&portless, &[&a]).is_empty());
    }

    #[test]
    fn find_port_resolution() {
        let p = pod("a", "10.42.0.5", true, Some("http"));
        let port = |t: Option<IntOrString>| ServicePort { port: 80, target_port: t, ..Default::default() };
        assert_eq!(find_port(&p, &port(None)), Some(80));
        assert_eq!(find_port(&p, &port(Some(IntOrString::Int(8443)))), Some(8443));
        assert_eq!(find_port(&p, &port(Some(IntOrString::String("http".into())))), Some(8080));
        assert_eq!(find_port(&p, &port(Some(IntOrString::String("nope".into())))), None);
        let udp = ServicePort { protocol: Some("UDP".into()), ..port(Some(IntOrString::String("http".into()))) };
        assert_eq!(find_port(&p, &udp), None);
    }

    #[test]
    fn selectors_and_hostnames() {
        let svc = service(json!({}));
        let mut p = pod("a", "10.42.0.5", true, None);
        assert!(selects(&svc, &p));
        assert!(wants_endpoints(&svc));
        let mut empty = service(json!({}));
        empty.spec.as_mut().unwrap().selector = Some(BTreeMap::new());
        assert!(!wants_endpoints(&empty));
        assert!(!wants_endpoints(&service(json!({"spec": {"type": "ExternalName"}}))));
        p.metadata.namespace = Some("other".into());
        assert!(!selects(&svc, &p));
        let mut p = pod("a", "10.42.0.5", true, None);
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = Some("h".into());
        spec.subdomain = Some("web".into());
        assert_eq!(hostname_for(&p, &svc).as_deref(), Some("h"));
    }

    #[test]
    fn truncation_keeps_proportions() {
        let addr = |i: usize| EndpointAddress { ip: format!("10.42.{}.{}", i / 256, i % 256), ..Default::default() };
        let mut subsets = vec![
            EndpointSubset {
                addresses: Some((0..600).map(addr).collect()),
                not_ready_addresses: Some((600..900).map(addr).collect()),
                ports: None,
            },
            EndpointSubset {
                addresses: Some((900..1100).map(addr).collect()),
                not_ready_addresses: Some((1100..1200).map(addr).collect()),
                ports: None,
            },
        ];
        assert!(truncate(&mut subsets));
        let total: usize = subsets
            .iter()
            .map(|s| s.addresses.as_ref().map_or(0, Vec::len) + s.not_ready_addresses.as_ref().map_or(0, Vec::len))
            .sum();
        assert_eq!(total, MAX_CAPACITY);
        // Ready addresses all kept (800 ≤ 1000); the 200 not-ready places split 3:1.
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 600);
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 150);
        assert_eq!(subsets[1].not_ready_addresses.as_ref().unwrap().len(), 50);
        let mut small = vec![EndpointSubset { addresses: Some((0..3).map(addr).collect()), ..Default::default() }];
        assert!(!truncate(&mut small));
    }

    #[test]
    fn trigger_times_follow_changes() {
        let tracker = TriggerTimes::default();
        let svc = service(json!({}));
        let a = pod("a", "10.42.0.5", true, None);
        // First sight: the Service's creation.
        assert_eq!(tracker.compute(&svc, &[&a]).map(format_time).as_deref(), Some("2024-01-01T00:00:00Z"));
        // Nothing changed since: no trigger time.
        assert_eq!(tracker.compute(&svc, &[&a]), None);
        // A pod turned ready later: its transition.
        let mut b = pod("b", "10.42.0.6", true, None);
        b.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2024-01-01T00:05:00.5Z".parse().unwrap()));
        assert_eq!(tracker.compute(&svc, &[&a, &b]).map(format_time).as_deref(), Some("2024-01-01T00:05:00.5Z"));
    }
}
