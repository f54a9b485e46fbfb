//! The EndpointSlice controller, as upstream's `pkg/controller/endpointslice`: every Service
//! with a selector has EndpointSlices listing the pods it selects.
//!
//! The slices of a Service are labelled `kubernetes.io/service-name: <service>` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io` (plus the
//! Service's own labels, and `service.kubernetes.io/headless` for headless Services), owned
//! by the Service (controller reference), named `<service>-<random>`, of address type IPv4.
//!
//! Each pod that is not finished and has an IP (terminating pods included) is an endpoint
//! ([`pod_to_endpoint`]): its address, conditions `ready` (ready and not terminating, or the
//! Service publishes not-ready addresses), `serving` (ready) and `terminating`, `nodeName`,
//! `zone` (the node's `topology.kubernetes.io/zone` label), `hostname` when the pod's
//! subdomain is the Service, and `targetRef`. Pods are grouped by the ports they serve
//! (named target ports resolve per pod), and every group has its own slices of at most
//! [`MAX_ENDPOINTS_PER_SLICE`] endpoints.
//!
//! [`plan`] keeps churn low as upstream's reconciler does: endpoints stay in the slice they
//! are in and slices are rewritten only when one of their endpoints (or their labels) changed;
//! new endpoints go first into slices being rewritten anyway, then into one untouched slice
//! that can take them all, then into new slices (reusing slices that would be deleted); empty
//! slices are deleted, except that a Service without endpoints keeps one placeholder slice
//! without ports or endpoints. Slices that belong to another Service object of that name (not
//! owned by this one's uid) are deleted. Written slices carry the
//! `endpoints.kubernetes.io/last-change-trigger-time` annotation.
//!
//! Topology aware routing ([`set_hints`]): with `spec.trafficDistribution: PreferClose` each
//! ready endpoint gets `hints.forZones` naming its own zone; with the annotation
//! `service.kubernetes.io/topology-mode: Auto` ready endpoints are spread over the zones in
//! proportion to the allocatable CPU of their Ready nodes, with upstream's safeguards (no
//! hints at all when one fails). The annotation wins over `trafficDistribution`. Node changes
//! that move a zone or its CPU queue the Services with hints.
//!
//! Services without a selector (and `ExternalName` ones) are left alone; when a Service goes,
//! its slices are deleted (the garbage collector would too, through the owner reference).
//! Reconciles are triggered by Service and pod events (as in [`crate::endpoints`]) and by
//! changes to managed slices.

use crate::Shutdown;
use crate::endpoints::{
    HEADLESS_LABEL, LAST_CHANGE_TRIGGER_TIME, ServiceKey, ServiceWatches, TriggerTimes, find_port, format_time,
    hostname_for, informer, is_headless, is_pod_ready, pod_ipv4, pod_reference, run_workers,
    should_pod_be_in_endpoints, wants_endpoints,
};
use crate::informers::Informers;
use crate::support::{ReconcileError, WorkQueue, is_conflict, is_namespace_gone, is_not_found};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, ForZone,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The controller's name, the value of [`MANAGED_BY_LABEL`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Label naming who manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The node label giving an endpoint's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Most endpoints in one slice (upstream's `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The only address type the service range has.
pub const ADDRESS_TYPE: &str = "IPv4";

/// A set of ports, sorted, identifying a group of endpoints.
pub(crate) type PortsKey = Vec<(String, i32, String, String)>;
/// An endpoint's identity: its addresses and its pod's uid.
pub(crate) type EndpointKey = (Vec<String>, String);

pub(crate) fn ports_key(ports: &[EndpointPort]) -> PortsKey {
    let mut k: PortsKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    k.sort();
    k
}

pub(crate) fn endpoint_key(e: &Endpoint) -> EndpointKey {
    let mut addresses = e.addresses.clone();
    addresses.sort();
    (addresses, e.target_ref.as_ref().and_then(|r| r.uid.clone()).unwrap_or_default())
}

/// Upstream's `getEndpointPorts`: the Service's ports as the pod serves them; ports a pod
/// cannot resolve are left out; a headless Service without ports has none.
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    ports
        .iter()
        .filter_map(|sp| {
            let port = find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// Upstream's `podToEndpoint`. `zone` is the zone label of the pod's node.
pub fn pod_to_endpoint(pod: &Pod, svc: &Service, ip: String, zone: Option<String>) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let ready = publish || (serving && !terminating);
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname_for(pod, svc),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
        target_ref: Some(pod_reference(pod)),
        zone: zone.filter(|z| !z.is_empty()),
        ..Default::default()
    }
}

/// The desired endpoints of a Service, by the ports they serve: ports (in Service order) and
/// endpoints by identity.
pub type Desired = BTreeMap<PortsKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)>;

/// The endpoints the Service's pods make, grouped by port set. `zone_of` gives a node's zone.
pub fn desired_endpoints(svc: &Service, pods: &[&Pod], zone_of: impl Fn(&str) -> Option<String>) -> Desired {
    let mut out: Desired = BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = pod_ipv4(pod) else { continue };
        let ports = endpoint_ports(svc, pod);
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("");
        let ep = pod_to_endpoint(pod, svc, ip, if node.is_empty() { None } else { zone_of(node) });
        let group = out.entry(ports_key(&ports)).or_insert_with(|| (ports, BTreeMap::new()));
        group.1.insert(endpoint_key(&ep), ep);
    }
    out
}

/// Service annotation turning on topology aware routing when `Auto` (upstream's
/// `service.kubernetes.io/topology-mode`).
pub const TOPOLOGY_MODE_ANNOTATION: &str = "service.kubernetes.io/topology-mode";
/// Its deprecated predecessor; when present it is the one read, as upstream.
pub const TOPOLOGY_AWARE_HINTS_ANNOTATION: &str = "service.kubernetes.io/topology-aware-hints";
/// The `spec.trafficDistribution` value asking for endpoints close to the client.
pub const PREFER_CLOSE: &str = "PreferClose";
/// How far over its share of the endpoints a zone may be expected to serve (upstream's
/// `overloadThreshold`).
const OVERLOAD_THRESHOLD: f64 = 0.2;
/// Nodes with one of these labels do not count in the zones' CPU (upstream's
/// `hasExcludedLabels`: control-plane nodes).
const EXCLUDED_NODE_LABELS: [&str; 2] = ["node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"];

/// How a Service wants its endpoints hinted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HintMode {
    /// No hints.
    None,
    /// `trafficDistribution: PreferClose`: every ready endpoint for its own zone.
    PreferClose,
    /// `topology-mode: Auto`: ready endpoints spread over the zones in proportion to their
    /// allocatable CPU.
    Auto,
}

/// Upstream's choice: the `Auto` annotation wins over `trafficDistribution`.
pub fn hint_mode(svc: &Service) -> HintMode {
    let annotations = svc.metadata.annotations.as_ref();
    let mode =
        annotations.and_then(|a| a.get(TOPOLOGY_AWARE_HINTS_ANNOTATION).or_else(|| a.get(TOPOLOGY_MODE_ANNOTATION)));
    if mode.is_some_and(|m| m == "Auto" || m == "auto") {
        return HintMode::Auto;
    }
    match svc.spec.as_ref().and_then(|s| s.traffic_distribution.as_deref()) {
        Some(PREFER_CLOSE) => HintMode::PreferClose,
        _ => HintMode::None,
    }
}

/// What a node adds to its zone's share: (zone, allocatable CPU in millicores), `None` when it
/// does not count (not Ready, or a control-plane node). A counted node without a zone or CPU
/// gives `Some((None, _))` or a zero.
fn node_share(node: &Node) -> Option<(Option<String>, u64)> {
    let labels = node.metadata.labels.as_ref();
    if labels.is_some_and(|l| EXCLUDED_NODE_LABELS.iter().any(|x| l.contains_key(*x))) {
        return None;
    }
    let status = node.status.as_ref()?;
    let ready = status.conditions.iter().flatten().find(|c| c.type_ == "Ready").is_some_and(|c| c.status == "True");
    if !ready {
        return None;
    }
    let zone = labels.and_then(|l| l.get(ZONE_LABEL)).filter(|z| !z.is_empty()).cloned();
    let cpu = status.allocatable.as_ref().and_then(|a| a.get("cpu")).and_then(|q| millicores(&q.0)).unwrap_or(0);
    Some((zone, cpu))
}

/// A CPU quantity in millicores (`2`, `1.5`, `3800m`); `None` when it cannot be read.
fn millicores(q: &str) -> Option<u64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse().ok();
    }
    let v: f64 = q.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * 1000.0).round() as u64)
}

/// Each zone's share of the allocatable CPU of the Ready nodes (upstream's
/// `TopologyCache.SetNodes`); `None` when a counted node has no zone or no CPU, or fewer than
/// two zones have nodes: then no hints are given.
pub fn zone_cpu_ratios<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> Option<BTreeMap<String, f64>> {
    let mut by_zone: BTreeMap<String, u64> = BTreeMap::new();
    for node in nodes {
        let Some((zone, cpu)) = node_share(node) else { continue };
        let zone = zone.filter(|_| cpu > 0)?;
        *by_zone.entry(zone).or_default() += cpu;
    }
    let total: u64 = by_zone.values().sum();
    if by_zone.len() < 2 || total == 0 {
        return None;
    }
    Some(by_zone.into_iter().map(|(z, cpu)| (z, cpu as f64 / total as f64)).collect())
}

fn is_ready(ep: &Endpoint) -> bool {
    ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false)
}

fn zone_hint(zone: &str) -> Option<EndpointHints> {
    Some(EndpointHints { for_zones: Some(vec![ForZone { name: zone.to_string() }]), ..Default::default() })
}

/// Sets the endpoints' `hints.forZones` for `mode` (and clears them otherwise). `ratios` are
/// the zones' CPU shares ([`zone_cpu_ratios`]), needed by [`HintMode::Auto`].
///
/// `PreferClose`: each ready endpoint with a zone is hinted for that zone.
///
/// `Auto`, after upstream's topology cache: with N ready endpoints, a zone with CPU share r
/// should get r·N of them and must get at least ⌈r·N / 1.2⌉. No hints at all when the node
/// information is insufficient (see [`zone_cpu_ratios`]), when there are more zones than
/// ready endpoints, when those minimums add up to more than N, or when a ready endpoint has no
/// zone. Otherwise every ready endpoint starts hinted for its own zone, and zones holding more
/// than their share hand endpoints over (re-hinted for the receiving zone) to zones holding
/// less, one at a time from the zone with the most to give to the one with the most to
/// receive, while both have at least half an endpoint of difference and one of them a whole
/// one. Unlike upstream, which keeps the hints of slices it is not rewriting anyway when they
/// are still within bounds, the hints are recomputed from scratch each time (endpoints in
/// name order, zones in name order on ties), so they are a function of the endpoints and nodes
/// alone; a rewrite may therefore move a hint that upstream would have left alone.
pub fn set_hints(desired: &mut Desired, mode: HintMode, ratios: Option<&BTreeMap<String, f64>>) {
    let mut eps: Vec<&mut Endpoint> = desired.values_mut().flat_map(|(_, eps)| eps.values_mut()).collect();
    for ep in eps.iter_mut() {
        ep.hints = None;
    }
    match mode {
        HintMode::None => {}
        HintMode::PreferClose => {
            for ep in eps.into_iter().filter(|e| is_ready(e)) {
                ep.hints = ep.zone.as_deref().and_then(zone_hint);
            }
        }
        HintMode::Auto => {
            let mut ready: Vec<&mut Endpoint> = eps.into_iter().filter(|e| is_ready(e)).collect();
            let Some(ratios) = ratios else { return };
            let Some(want) = allocations(ratios, ready.len()) else { return };
            if ready.iter().any(|e| e.zone.as_deref().is_none_or(str::is_empty)) {
                return;
            }
            let mut held: BTreeMap<String, f64> = BTreeMap::new();
            for ep in &ready {
                *held.entry(ep.zone.clone().unwrap_or_default()).or_default() += 1.0;
            }
            let (mut giving, mut receiving) = transfers(&want, &held);
            for ep in ready.iter_mut() {
                let own = ep.zone.clone().unwrap_or_default();
                let mut hint = own.clone();
                if let Some(n) = giving.get_mut(&own).filter(|n| **n > 0)
                    && let Some((to, m)) = receiving.iter_mut().find(|(_, m)| **m > 0)
                {
                    *n -= 1;
                    *m -= 1;
                    hint = to.clone();
                }
                ep.hints = zone_hint(&hint);
            }
        }
    }
}

/// The endpoints each zone should serve (`desired`, at least its minimum), or `None` when the
/// zones cannot all get their minimum.
fn allocations(ratios: &BTreeMap<String, f64>, n: usize) -> Option<BTreeMap<String, f64>> {
    if ratios.len() < 2 || ratios.len() > n {
        return None;
    }
    let mut minimums = 0usize;
    let mut out = BTreeMap::new();
    for (zone, ratio) in ratios {
        let desired = ratio * n as f64;
        let minimum = (desired / (1.0 + OVERLOAD_THRESHOLD)).ceil() as usize;
        minimums += minimum;
        out.insert(zone.clone(), desired.max(minimum as f64));
    }
    (minimums <= n).then_some(out)
}

/// How many endpoints each zone gives away and receives, given what each should serve and
/// what it holds (upstream's `getGivingAndReceivingZones`).
fn transfers(
    want: &BTreeMap<String, f64>,
    held: &BTreeMap<String, f64>,
) -> (BTreeMap<String, u32>, BTreeMap<String, u32>) {
    let mut give: BTreeMap<&str, f64> = BTreeMap::new();
    let mut take: BTreeMap<&str, f64> = BTreeMap::new();
    for (zone, target) in want {
        let have = held.get(zone).copied().unwrap_or(0.0);
        if have > *target {
            give.insert(zone, have - target);
        } else if have < *target {
            take.insert(zone, target - have);
        }
    }
    // The zone with the most left, the first by name on ties.
    let most = |m: &BTreeMap<&str, f64>| -> Option<(String, f64)> {
        m.iter().fold(None, |best: Option<(String, f64)>, (z, n)| match best {
            Some((_, b)) if b >= *n => best,
            _ if *n > 0.0 => Some((z.to_string(), *n)),
            _ => best,
        })
    };
    let (mut giving, mut receiving) = (BTreeMap::new(), BTreeMap::new());
    while let (Some((g, ng)), Some((r, nr))) = (most(&give), most(&take)) {
        if (ng < 1.0 && nr < 1.0) || ng < 0.5 || nr < 0.5 {
            break;
        }
        *giving.entry(g.clone()).or_insert(0) += 1;
        *receiving.entry(r.clone()).or_insert(0) += 1;
        *give.get_mut(g.as_str()).expect("present") -= 1.0;
        *take.get_mut(r.as_str()).expect("present") -= 1.0;
    }
    (giving, receiving)
}

/// Upstream's `setEndpointSliceLabels`: the Service's labels (without the reserved ones),
/// the headless label for headless Services, the Service name and the managed-by label.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind == "Service" && Some(&o.uid) == svc.metadata.uid.as_ref())
}

/// A new slice of the Service (the API server names it).
fn new_slice(svc: &Service, ports: &[EndpointPort], endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.namespace(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![crate::pods::controller_ref("v1", "Service", &svc.metadata)]),
            ..Default::default()
        },
        address_type: ADDRESS_TYPE.into(),
        endpoints,
        ports: Some(ports.to_vec()),
    }
}

/// What to write for a Service.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices.
    pub create: Vec<EndpointSlice>,
    /// Existing slices with new content.
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
}

impl Plan {
    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Works out the writes that turn `existing` (the Service's managed slices) into `desired`,
/// with as little churn as upstream's reconciler.
pub fn plan(svc: &Service, mut desired: Desired, existing: Vec<EndpointSlice>) -> Plan {
    let labels = slice_labels(svc);
    let mut out = Plan::default();
    let mut by_group: BTreeMap<PortsKey, Vec<EndpointSlice>> = BTreeMap::new();
    for s in existing {
        if !owned_by(&s, svc) || s.address_type != ADDRESS_TYPE {
            out.delete.push(s);
        } else {
            by_group.entry(ports_key(s.ports.as_deref().unwrap_or_default())).or_default().push(s);
        }
    }
    let mut kept_any = false;
    let mut groups: Vec<PortsKey> = desired.keys().cloned().collect();
    groups.extend(by_group.keys().filter(|k| !desired.contains_key(*k)).cloned());
    for group in groups {
        let (ports, mut want) = desired.remove(&group).unwrap_or_default();
        let mut to_update: Vec<EndpointSlice> = Vec::new();
        let mut unchanged: Vec<EndpointSlice> = Vec::new();
        let mut to_delete: Vec<EndpointSlice> = Vec::new();
        for mut slice in by_group.remove(&group).unwrap_or_default() {
            let mut changed = slice.metadata.labels.as_ref() != Some(&labels);
            let mut endpoints = Vec::with_capacity(slice.endpoints.len());
            for ep in std::mem::take(&mut slice.endpoints) {
                match want.remove(&endpoint_key(&ep)) {
                    Some(w) => {
                        changed |= w != ep;
                        endpoints.push(w);
                    }
                    None => changed = true,
                }
            }
            slice.endpoints = endpoints;
            if slice.endpoints.is_empty() {
                to_delete.push(slice);
            } else if changed {
                slice.metadata.labels = Some(labels.clone());
                to_update.push(slice);
            } else {
                unchanged.push(slice);
            }
        }
        let mut rest: Vec<Endpoint> = want.into_values().collect();
        // New endpoints go first into slices rewritten anyway…
        for slice in &mut to_update {
            let room = MAX_ENDPOINTS_PER_SLICE.saturating_sub(slice.endpoints.len()).min(rest.len());
            slice.endpoints.extend(rest.drain(..room));
        }
        // …then into one untouched slice that can take them all…
        if !rest.is_empty()
            && let Some(i) = unchanged.iter().position(|s| s.endpoints.len() + rest.len() <= MAX_ENDPOINTS_PER_SLICE)
        {
            let mut slice = unchanged.remove(i);
            slice.endpoints.append(&mut rest);
            to_update.push(slice);
        }
        // …then into new slices, reusing slices that would be deleted.
        while !rest.is_empty() {
            let n = rest.len().min(MAX_ENDPOINTS_PER_SLICE);
            let chunk: Vec<Endpoint> = rest.drain(..n).collect();
            match to_delete.pop() {
                Some(mut slice) => {
                    slice.endpoints = chunk;
                    slice.metadata.labels = Some(labels.clone());
                    to_update.push(slice);
                }
                None => out.create.push(new_slice(svc, &ports, chunk)),
            }
        }
        kept_any |= !to_update.is_empty() || !unchanged.is_empty();
        out.update.extend(to_update);
        out.delete.extend(to_delete);
    }
    if !kept_any && out.create.is_empty() {
        // No endpoints at all: one placeholder slice stays (or is made).
        let placeholder = |s: &EndpointSlice| {
            owned_by(s, svc)
                && s.endpoints.is_empty()
                && s.ports.as_ref().is_none_or(Vec::is_empty)
                && s.address_type == ADDRESS_TYPE
                && s.metadata.labels.as_ref() == Some(&labels)
        };
        if let Some(i) = out.delete.iter().position(placeholder) {
            out.delete.remove(i);
        } else {
            out.create.push(new_slice(svc, &[], Vec::new()));
        }
    }
    out
}

/// Stamps the trigger time on a slice about to be written (or clears it).
fn stamp(slice: &mut EndpointSlice, trigger: Option<Timestamp>) {
    let annotations = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match trigger {
        Some(t) => annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_time(t)),
        None => annotations.remove(LAST_CHANGE_TRIGGER_TIME),
    };
    if annotations.is_empty() {
        slice.metadata.annotations = None;
    }
}

struct Ctx {
    client: Client,
    watches: ServiceWatches,
    nodes: Store<Node>,
    triggers: TriggerTimes,
}

fn managed_selector(service: &str) -> ListParams {
    ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}={service},{MANAGED_BY_LABEL}={CONTROLLER_NAME}"))
}

async fn reconcile(ctx: Arc<Ctx>, key: ServiceKey) -> Result<(), ReconcileError> {
    let (ns, name) = (&key.0, &key.1);
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    let Some(svc) = ctx.watches.service(&key) else {
        ctx.triggers.forget(&key);
        for s in api.list(&managed_selector(name)).await?.items {
            match api.delete(&s.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
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
    let zone_of = |node: &str| ctx.nodes.get(&ObjectRef::new(node)).and_then(|n| n.labels().get(ZONE_LABEL).cloned());
    let mut desired = desired_endpoints(&svc, &pod_refs, zone_of);
    let mode = hint_mode(&svc);
    let ratios = match mode {
        HintMode::Auto => zone_cpu_ratios(ctx.nodes.state().iter().map(AsRef::as_ref)),
        _ => None,
    };
    set_hints(&mut desired, mode, ratios.as_ref());
    let trigger = ctx.triggers.compute(&svc, &pod_refs);
    let existing = api.list(&managed_selector(name)).await?.items;
    let plan = plan(&svc, desired, existing);
    if plan.is_empty() {
        return Ok(());
    }
    let mut plan = plan;
    for slice in plan.update.iter_mut().chain(plan.create.iter_mut()) {
        stamp(slice, trigger);
    }
    write_plan(&api, plan, true).await
}

/// Writes a plan: updates (a conflict means the slice changed meanwhile: retried later), creates
/// (unless `create` is false; a namespace going away ends the work) and deletes.
pub(crate) async fn write_plan(api: &Api<EndpointSlice>, plan: Plan, create: bool) -> Result<(), ReconcileError> {
    for slice in plan.update {
        match api.replace(&slice.name_any(), &PostParams::default(), &slice).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) || is_not_found(&e) => {
                return Err(ReconcileError(anyhow::anyhow!("slice changed meanwhile: {e}")));
            }
            Err(e) => return Err(e.into()),
        }
    }
    for slice in plan.create.into_iter().filter(|_| create) {
        match api.create(&PostParams::default(), &slice).await {
            Ok(_) => {}
            Err(e) if is_namespace_gone(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    for slice in plan.delete {
        match api.delete(&slice.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Runs the EndpointSlice controller until `shutdown` turns true.
pub async fn run(client: Client, informers: Informers, shutdown: Shutdown) -> anyhow::Result<()> {
    let queue: WorkQueue<ServiceKey> = WorkQueue::new();
    let watches = ServiceWatches::start(&informers, &queue);
    // Nodes give endpoints their zone and zones their CPU share: when a node's part in that
    // changes, the Services with hints are reconciled again.
    let (q, services) = (queue.clone(), watches.services.clone());
    let mut shares: HashMap<String, Option<(Option<String>, u64)>> = HashMap::new();
    let nodes = informers.nodes.store();
    let node_task = informers.nodes.on_events(move |e| {
        let changed = match e {
            watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                let share = node_share(n);
                shares.insert(n.name_any(), share.clone()) != Some(share)
            }
            watcher::Event::Delete(n) => shares.remove(&n.name_any()).is_some(),
            _ => false,
        };
        if changed {
            for svc in services.state().iter().filter(|s| hint_mode(s) != HintMode::None) {
                q.add((svc.namespace().unwrap_or_default(), svc.name_any()));
            }
        }
    });
    // Changes to managed slices (by anyone) queue their Service.
    let q = queue.clone();
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}"));
    let (_slices, slice_task) = informer(Api::<EndpointSlice>::all(client.clone()), managed, move |e| {
        if let watcher::Event::Apply(s) | watcher::Event::Delete(s) = e
            && let Some(service) = s.labels().get(SERVICE_NAME_LABEL)
        {
            q.add((s.namespace().unwrap_or_default(), service.clone()));
        }
    });
    if watches.ready(&shutdown).await {
        let ctx = Arc::new(Ctx { client, watches, nodes, triggers: TriggerTimes::default() });
        let c = ctx.clone();
        run_workers("endpointslice controller", queue, ctx.watches.services.clone(), shutdown, move |key| {
            reconcile(c.clone(), key)
        })
        .await;
    }
    node_task.abort();
    slice_task.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]},
        }))
        .unwrap()
    }

    fn pod(i: usize, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p{i}"), "namespace": "ns", "uid": format!("uid-{i}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": format!("10.42.{}.{}", i / 200, i % 200 + 2),
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    fn zone(_: &str) -> Option<String> {
        Some("zone-a".into())
    }

    fn desired(svc: &Service, pods: &[Pod]) -> Desired {
        let refs: Vec<&Pod> = pods.iter().collect();
        desired_endpoints(svc, &refs, zone)
    }

    /// Applies a plan to a set of slices, as the API server would (names for new ones).
    fn apply(mut slices: Vec<EndpointSlice>, plan: Plan) -> Vec<EndpointSlice> {
        let names = |v: &[EndpointSlice]| v.iter().map(|s| s.name_any()).collect::<Vec<_>>();
        let gone = names(&plan.delete);
        let updated = names(&plan.update);
        slices.retain(|s| !gone.contains(&s.name_any()) && !updated.contains(&s.name_any()));
        slices.extend(plan.update);
        for (i, mut s) in plan.create.into_iter().enumerate() {
            s.metadata.name = Some(format!("web-{}-{i}", slices.len()));
            slices.push(s);
        }
        slices
    }

    #[test]
    fn endpoints_carry_conditions_zone_and_reference() {
        let svc = service();
        let mut terminating = pod(2, true);
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
        let d = desired(&svc, &[pod(0, true), pod(1, false), terminating]);
        assert_eq!(d.len(), 1);
        let (ports, eps) = d.values().next().unwrap();
        assert_eq!(ports[0].port, Some(8080));
        assert_eq!(ports[0].name.as_deref(), Some("http"));
        let conds: Vec<(bool, bool, bool)> = eps
            .values()
            .map(|e| {
                let c = e.conditions.as_ref().unwrap();
                (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
            })
            .collect();
        assert_eq!(conds, [(true, true, false), (false, false, false), (false, true, true)]);
        let e = eps.values().next().unwrap();
        assert_eq!(e.zone.as_deref(), Some("zone-a"));
        assert_eq!(e.node_name.as_deref(), Some("node-1"));
        assert_eq!(e.target_ref.as_ref().unwrap().name.as_deref(), Some("p0"));
    }

    #[test]
    fn slices_hold_at_most_100_and_follow_with_little_churn() {
        let svc = service();
        let pods: Vec<Pod> = (0..250).map(|i| pod(i, true)).collect();
        let p = plan(&svc, desired(&svc, &pods), Vec::new());
        assert_eq!(p.create.len(), 3);
        assert_eq!(p.create.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>(), [100, 100, 50]);
        let s = &p.create[0];
        assert_eq!(s.address_type, "IPv4");
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert_eq!(labels["team"], "a");
        assert_eq!(s.metadata.owner_references.as_ref().unwrap()[0].uid, "svc-uid");
        let slices = apply(Vec::new(), p);

        // Same pods: nothing to write.
        assert!(plan(&svc, desired(&svc, &pods), slices.clone()).is_empty());

        // One pod turns not ready: only its slice is rewritten.
        let mut changed = pods.clone();
        changed[3] = pod(3, false);
        let p = plan(&svc, desired(&svc, &changed), slices.clone());
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        assert_eq!(p.update[0].endpoints.len(), 100);

        // A new pod fits into the slice that has room, untouched otherwise.
        let mut more = pods.clone();
        more.push(pod(300, true));
        let p = plan(&svc, desired(&svc, &more), slices.clone());
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        assert_eq!(p.update[0].endpoints.len(), 51);

        // Scale down to one pod: one slice keeps it, the others go.
        let p = plan(&svc, desired(&svc, &pods[..1]), slices.clone());
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 2));
        let slices = apply(slices, p);
        assert_eq!(slices.len(), 1);

        // No pods: a placeholder without ports or endpoints replaces the last slice.
        let p = plan(&svc, Desired::new(), slices.clone());
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (1, 0, 1));
        assert!(p.create[0].endpoints.is_empty());
        assert_eq!(p.create[0].ports.as_deref(), Some(&[][..]));
        let slices = apply(slices, p);
        // …and the placeholder is kept while there are none.
        assert!(plan(&svc, Desired::new(), slices.clone()).is_empty());
        // Pods again: a slice with their ports replaces the placeholder.
        let p = plan(&svc, desired(&svc, &pods[..2]), slices);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (1, 0, 1));
    }

    #[test]
    fn slices_of_another_service_object_are_replaced() {
        let svc = service();
        let pods = vec![pod(0, true)];
        let mut old = apply(Vec::new(), plan(&svc, desired(&svc, &pods), Vec::new()));
        old[0].metadata.owner_references.as_mut().unwrap()[0].uid = "older-uid".into();
        let p = plan(&svc, desired(&svc, &pods), old);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (1, 0, 1));
    }

    #[test]
    fn headless_label_and_ports_per_pod() {
        let mut svc = service();
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        assert_eq!(slice_labels(&svc).get(HEADLESS_LABEL).map(String::as_str), Some(""));
        // A pod without the named port gets a group (and slice) without that port.
        let mut odd = pod(1, true);
        odd.spec.as_mut().unwrap().containers[0].ports = None;
        let d = desired(&svc, &[pod(0, true), odd]);
        assert_eq!(d.len(), 2);
        let p = plan(&svc, d, Vec::new());
        assert_eq!(p.create.len(), 2);
    }

    /// A ready pod `i` on `node`, where node `n-<zone>-<k>` is in `<zone>`.
    fn pod_on(i: usize, node: &str, ready: bool) -> Pod {
        let mut p = pod(i, ready);
        p.spec.as_mut().unwrap().node_name = Some(node.into());
        p
    }

    fn zone_of_node(node: &str) -> Option<String> {
        node.split('-').nth(1).filter(|z| *z != "none").map(String::from)
    }

    fn node(name: &str, zone: Option<&str>, cpu: &str, ready: bool, labels: &[&str]) -> Node {
        let mut l: BTreeMap<String, String> = labels.iter().map(|k| (k.to_string(), String::new())).collect();
        if let Some(z) = zone {
            l.insert(ZONE_LABEL.into(), z.into());
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": l},
            "status": {"allocatable": {"cpu": cpu},
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    /// (pod name, hinted zones) of every endpoint.
    fn hints_of(d: &Desired) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = d
            .values()
            .flat_map(|(_, eps)| eps.values())
            .map(|e| {
                let zones = e.hints.as_ref().and_then(|h| h.for_zones.clone()).unwrap_or_default();
                (e.target_ref.as_ref().unwrap().name.clone().unwrap(), zones.into_iter().map(|z| z.name).collect())
            })
            .collect();
        out.sort();
        out
    }

    fn hinted(svc: &Service, pods: &[Pod], ratios: Option<&BTreeMap<String, f64>>) -> Vec<(String, Vec<String>)> {
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut d = desired_endpoints(svc, &refs, zone_of_node);
        set_hints(&mut d, hint_mode(svc), ratios);
        hints_of(&d)
    }

    fn with(svc: Service, patch: serde_json::Value) -> Service {
        let mut v = serde_json::to_value(svc).unwrap();
        for (k, val) in patch.as_object().unwrap() {
            for (k2, val2) in val.as_object().unwrap() {
                v[k][k2] = val2.clone();
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn zones(list: &[&str]) -> Vec<String> {
        list.iter().map(|z| z.to_string()).collect()
    }

    #[test]
    fn the_mode_comes_from_the_annotation_first_then_traffic_distribution() {
        let svc = service();
        assert_eq!(hint_mode(&svc), HintMode::None);
        let close = with(service(), json!({"spec": {"trafficDistribution": "PreferClose"}}));
        assert_eq!(hint_mode(&close), HintMode::PreferClose);
        let auto = with(close.clone(), json!({"metadata": {"annotations": {TOPOLOGY_MODE_ANNOTATION: "Auto"}}}));
        assert_eq!(hint_mode(&auto), HintMode::Auto);
        // The deprecated annotation, when present, is the one read.
        let both = with(
            auto,
            json!({"metadata": {"annotations": {TOPOLOGY_MODE_ANNOTATION: "Auto", TOPOLOGY_AWARE_HINTS_ANNOTATION: "Disabled"}}}),
        );
        assert_eq!(hint_mode(&both), HintMode::PreferClose);
        let lower = with(service(), json!({"metadata": {"annotations": {TOPOLOGY_AWARE_HINTS_ANNOTATION: "auto"}}}));
        assert_eq!(hint_mode(&lower), HintMode::Auto);
    }

    #[test]
    fn prefer_close_hints_each_ready_endpoint_for_its_own_zone() {
        let svc = with(service(), json!({"spec": {"trafficDistribution": "PreferClose"}}));
        let pods = [
            pod_on(0, "n-a-1", true),
            pod_on(1, "n-b-1", true),
            pod_on(2, "n-b-2", false),
            pod_on(3, "n-none-1", true),
        ];
        assert_eq!(
            hinted(&svc, &pods, None),
            [("p0".into(), zones(&["a"])), ("p1".into(), zones(&["b"])), ("p2".into(), vec![]), ("p3".into(), vec![])]
        );
        // Without the mode, hints are cleared.
        assert!(hinted(&service(), &pods, None).iter().all(|(_, z)| z.is_empty()));
    }

    #[test]
    fn zone_cpu_ratios_follow_ready_worker_nodes_and_need_two_zones() {
        let ratios = zone_cpu_ratios(&[
            node("n-a-1", Some("a"), "4", true, &[]),
            node("n-b-1", Some("b"), "1500m", true, &[]),
            node("n-b-2", Some("b"), "500m", true, &[]),
            node("n-c-1", Some("c"), "8", false, &[]),
            node("cp", None, "8", true, &["node-role.kubernetes.io/control-plane"]),
        ])
        .unwrap();
        assert_eq!(ratios.len(), 2);
        assert!((ratios["a"] - 4.0 / 6.0).abs() < 1e-9 && (ratios["b"] - 2.0 / 6.0).abs() < 1e-9);
        // A counted node without a zone or CPU, or a single zone: no information.
        assert_eq!(zone_cpu_ratios(&[node("x", Some("a"), "1", true, &[]), node("y", None, "1", true, &[])]), None);
        assert_eq!(
            zone_cpu_ratios(&[node("x", Some("a"), "1", true, &[]), node("y", Some("b"), "0", true, &[])]),
            None
        );
        assert_eq!(
            zone_cpu_ratios(&[node("x", Some("a"), "1", true, &[]), node("y", Some("a"), "1", true, &[])]),
            None
        );
    }

    #[test]
    fn auto_spreads_endpoints_in_proportion_to_cpu() {
        let svc = with(service(), json!({"metadata": {"annotations": {TOPOLOGY_MODE_ANNOTATION: "Auto"}}}));
        let equal: BTreeMap<String, f64> = [("a", 1.0 / 3.0), ("b", 1.0 / 3.0), ("c", 1.0 / 3.0)]
            .into_iter()
            .map(|(z, r)| (z.to_string(), r))
            .collect();
        // Balanced: everyone keeps to their own zone.
        let pods: Vec<Pod> = (0..6).map(|i| pod_on(i, ["n-a-1", "n-b-1", "n-c-1"][i % 3], true)).collect();
        let got = hinted(&svc, &pods, Some(&equal));
        assert_eq!(got.iter().map(|(_, z)| z[0].as_str()).collect::<String>(), "abcabc");
        // Four in a, one each in b and c: two of a's serve b and c.
        let pods: Vec<Pod> =
            (0..6).map(|i| pod_on(i, ["n-a-1", "n-a-2", "n-a-1", "n-a-2", "n-b-1", "n-c-1"][i], true)).collect();
        let got = hinted(&svc, &pods, Some(&equal));
        assert_eq!(got.iter().map(|(_, z)| z[0].as_str()).collect::<String>(), "bcaabc");
        // Zone a has twice zone b's CPU: of three and three, b hands one to a.
        let two_to_one: BTreeMap<String, f64> =
            [("a", 2.0 / 3.0), ("b", 1.0 / 3.0)].into_iter().map(|(z, r)| (z.to_string(), r)).collect();
        let pods: Vec<Pod> = (0..6).map(|i| pod_on(i, if i < 3 { "n-a-1" } else { "n-b-1" }, true)).collect();
        let got = hinted(&svc, &pods, Some(&two_to_one));
        assert_eq!(got.iter().map(|(_, z)| z[0].as_str()).collect::<String>(), "aaaabb");
        // Not-ready endpoints get no hints and do not count.
        let mut pods = pods;
        pods.push(pod_on(9, "n-b-1", false));
        assert_eq!(hinted(&svc, &pods, Some(&two_to_one)).last().unwrap(), &("p9".to_string(), vec![]));
    }

    #[test]
    fn auto_gives_no_hints_when_a_safeguard_fails() {
        let svc = with(service(), json!({"metadata": {"annotations": {TOPOLOGY_MODE_ANNOTATION: "Auto"}}}));
        let equal: BTreeMap<String, f64> = [("a", 1.0 / 3.0), ("b", 1.0 / 3.0), ("c", 1.0 / 3.0)]
            .into_iter()
            .map(|(z, r)| (z.to_string(), r))
            .collect();
        let none = |got: Vec<(String, Vec<String>)>| got.iter().all(|(_, z)| z.is_empty());
        // Fewer ready endpoints than zones.
        let pods: Vec<Pod> = (0..2).map(|i| pod_on(i, ["n-a-1", "n-b-1"][i], true)).collect();
        assert!(none(hinted(&svc, &pods, Some(&equal))));
        // The zones' minimums (⌈1.33 / 1.2⌉ = 2 each) add up to more than the 4 endpoints.
        let pods: Vec<Pod> = (0..4).map(|i| pod_on(i, ["n-a-1", "n-b-1", "n-c-1", "n-a-2"][i], true)).collect();
        assert!(none(hinted(&svc, &pods, Some(&equal))));
        // A ready endpoint without a zone.
        let pods: Vec<Pod> = (0..6).map(|i| pod_on(i, ["n-a-1", "n-b-1", "n-none-1"][i % 3], true)).collect();
        assert!(none(hinted(&svc, &pods, Some(&equal))));
        // No usable node information.
        let pods: Vec<Pod> = (0..6).map(|i| pod_on(i, ["n-a-1", "n-b-1", "n-c-1"][i % 3], true)).collect();
        assert!(none(hinted(&svc, &pods, None)));
        assert!(!none(hinted(&svc, &pods, Some(&equal))));
    }

    #[test]
    fn changed_hints_rewrite_the_slice() {
        let close = with(service(), json!({"spec": {"trafficDistribution": "PreferClose"}}));
        let pods = [pod_on(0, "n-a-1", true)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let slices =
            apply(Vec::new(), plan(&service(), desired_endpoints(&service(), &refs, zone_of_node), Vec::new()));
        let mut d = desired_endpoints(&close, &refs, zone_of_node);
        set_hints(&mut d, hint_mode(&close), None);
        let p = plan(&close, d, slices);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        assert_eq!(p.update[0].endpoints[0].hints.as_ref().unwrap().for_zones.as_ref().unwrap()[0].name, "a");
    }
}
