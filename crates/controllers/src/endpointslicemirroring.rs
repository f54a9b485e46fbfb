//! The EndpointSlice mirroring controller, as upstream's `pkg/controller/endpointslicemirroring`:
//! the Endpoints of a Service without a selector (written by a user, not by the Endpoints
//! controller) are mirrored into EndpointSlices, so that slice readers (the proxy, DNS) see
//! them.
//!
//! An Endpoints object is mirrored when a Service of the same name exists without a selector,
//! the Endpoints are not labelled `endpointslice.kubernetes.io/skip-mirror: "true"` (the API
//! server's `default/kubernetes` is) and do not hold a leader election record. Otherwise, and
//! when either object goes, the mirrored slices are deleted.
//!
//! As upstream ([`desired`], [`plan`]):
//!
//! - the subsets are repacked first ([`crate::endpoints::repack_subsets`]); every address becomes
//!   an endpoint (`ready` from the list it is in, `hostname`, `nodeName`, `targetRef`; the IP
//!   re-formatted), addresses that are not IPs are skipped (event `InvalidIPAddress`);
//! - at most [`MAX_ENDPOINTS_PER_SUBSET`] addresses of each subset are mirrored (ready ones
//!   first); the rest are skipped with the warning event `TooManyAddressesToMirror`. Mirroring
//!   adds no over-capacity annotation of its own (the Endpoints' annotations are copied);
//! - endpoints are grouped by address type and port set, one slice per group (so up to 1000
//!   endpoints in a slice, a simple 1:1 mapping from subsets to slices); extra slices of a group
//!   are deleted, slices of groups no longer wanted too (reused for new groups when possible);
//! - a slice has the Endpoints' labels plus `kubernetes.io/service-name` and
//!   `endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io`, the
//!   Endpoints' annotations except `endpoints.kubernetes.io/last-change-trigger-time` and
//!   `kubectl.kubernetes.io/last-applied-configuration`, and the Endpoints as controller owner;
//! - a slice is rewritten only when its endpoints, labels or annotations differ.
//!
//! Reconciles are keyed by namespace/name and triggered by Service, Endpoints and mirrored
//! slice events, and by a periodic resync of every Service.

use crate::Shutdown;
use crate::endpoints::{LEADER_ANNOTATION, ServiceKey, informer, key_of, repack_subsets, run_workers, selector};
use crate::endpointslice::{
    EndpointKey, MANAGED_BY_LABEL, Plan, PortsKey, SERVICE_NAME_LABEL, endpoint_key, ports_key, write_plan,
};
use crate::support::{ReconcileError, WorkQueue, stopped};
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointSubset, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{Api, ListParams, ObjectMeta};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The controller's name, the value of [`MANAGED_BY_LABEL`] on mirrored slices.
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// Endpoints labelled with this set to `"true"` are not mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Most addresses mirrored per Endpoints subset (upstream's
/// `--mirroring-max-endpoints-per-subset` default), and so per slice.
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;

const LAST_CHANGE_TRIGGER_TIME: &str = crate::endpoints::LAST_CHANGE_TRIGGER_TIME;
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Upstream's `shouldMirror`: not labelled skip-mirror, no leader election record.
pub fn should_mirror(ep: &Endpoints) -> bool {
    ep.labels().get(SKIP_MIRROR_LABEL).map(String::as_str) != Some("true")
        && !ep.annotations().contains_key(LEADER_ANNOTATION)
}

/// A group of mirrored endpoints: address type and port set.
type GroupKey = (String, PortsKey);

/// What an Endpoints object mirrors to: per group, its ports and endpoints (by identity).
#[derive(Debug, Default)]
pub struct Desired {
    /// The groups, each one slice.
    pub groups: BTreeMap<GroupKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)>,
    /// Addresses that are not IPs.
    pub invalid: usize,
    /// Addresses left out because their subset had more than [`MAX_ENDPOINTS_PER_SUBSET`].
    pub over_capacity: usize,
}

fn address_to_endpoint(a: &EndpointAddress, ready: bool) -> Option<(String, Endpoint)> {
    let ip: IpAddr = a.ip.parse().ok()?;
    let address_type = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    let ep = Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions { ready: Some(ready), ..Default::default() }),
        hostname: Some(a.hostname.clone().unwrap_or_default()).filter(|h| !h.is_empty()),
        node_name: a.node_name.clone(),
        target_ref: a.target_ref.clone(),
        ..Default::default()
    };
    Some((address_type.to_string(), ep))
}

fn mirror_ports(subset: &EndpointSubset) -> Vec<EndpointPort> {
    subset
        .ports
        .iter()
        .flatten()
        .map(|p| EndpointPort {
            name: Some(p.name.clone().unwrap_or_default()),
            port: Some(p.port),
            protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

/// The endpoints `ep` mirrors to.
pub fn desired(ep: &Endpoints) -> Desired {
    let mut out = Desired::default();
    for subset in repack_subsets(ep.subsets.clone().unwrap_or_default()) {
        let ports = mirror_ports(&subset);
        let key = ports_key(&ports);
        let lists = [(subset.addresses.as_deref(), true), (subset.not_ready_addresses.as_deref(), false)];
        let total: usize = lists.iter().map(|(l, _)| l.map_or(0, <[_]>::len)).sum();
        let mut added = 0;
        'lists: for (list, ready) in lists {
            for a in list.into_iter().flatten() {
                if added >= MAX_ENDPOINTS_PER_SUBSET {
                    break 'lists;
                }
                let Some((family, endpoint)) = address_to_endpoint(a, ready) else {
                    out.invalid += 1;
                    continue;
                };
                added += 1;
                let group = out.groups.entry((family, key.clone())).or_insert_with(|| (ports.clone(), BTreeMap::new()));
                group.1.entry(endpoint_key(&endpoint)).or_insert(endpoint);
            }
        }
        out.over_capacity += total.saturating_sub(added);
    }
    out.over_capacity -= out.invalid.min(out.over_capacity);
    out
}

/// The labels of the slices mirroring `ep`.
pub fn slice_labels(ep: &Endpoints) -> BTreeMap<String, String> {
    let mut labels = ep.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), ep.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

/// The annotations of the slices mirroring `ep`: its own but the trigger time and kubectl's
/// last applied configuration.
pub fn slice_annotations(ep: &Endpoints) -> BTreeMap<String, String> {
    let mut annotations = ep.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_CHANGE_TRIGGER_TIME);
    annotations.remove(LAST_APPLIED);
    annotations
}

fn owned_by(slice: &EndpointSlice, ep: &Endpoints) -> bool {
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind == "Endpoints" && Some(&o.uid) == ep.metadata.uid.as_ref())
}

/// What an endpoint is compared by: what mirroring sets.
fn mirrored_fields(e: &Endpoint) -> impl PartialEq + '_ {
    (
        &e.addresses,
        e.conditions.as_ref().and_then(|c| c.ready),
        &e.hostname,
        &e.node_name,
        e.target_ref.as_ref().map(|r| (&r.kind, &r.namespace, &r.name, &r.uid)),
    )
}

/// Works out the writes that turn `existing` (the slices mirrored for `ep`'s name) into the
/// mirror of `desired`.
pub fn plan(ep: &Endpoints, mut desired: Desired, existing: Vec<EndpointSlice>) -> Plan {
    let labels = slice_labels(ep);
    let annotations = slice_annotations(ep);
    let mut out = Plan::default();
    let mut by_group: BTreeMap<GroupKey, Vec<EndpointSlice>> = BTreeMap::new();
    for s in existing {
        if !owned_by(&s, ep) {
            out.delete.push(s);
        } else {
            let key = (s.address_type.clone(), ports_key(s.ports.as_deref().unwrap_or_default()));
            by_group.entry(key).or_default().push(s);
        }
    }
    for slices in by_group.values_mut() {
        slices.sort_by_key(|s| s.metadata.name.clone());
    }
    let empty =
        |v: &BTreeMap<String, String>| -> Option<BTreeMap<String, String>> { (!v.is_empty()).then(|| v.clone()) };
    for (key, (ports, endpoints)) in std::mem::take(&mut desired.groups) {
        let endpoints: Vec<Endpoint> = endpoints.into_values().take(MAX_ENDPOINTS_PER_SUBSET).collect();
        let mut existing = by_group.remove(&key).unwrap_or_default().into_iter();
        let first = existing.next();
        out.delete.extend(existing);
        if let Some(first) = &first {
            let same_endpoints = first.endpoints.len() == endpoints.len()
                && first.endpoints.iter().all(|e| {
                    endpoints
                        .iter()
                        .any(|w| endpoint_key(w) == endpoint_key(e) && mirrored_fields(w) == mirrored_fields(e))
                });
            let same_meta = first.metadata.labels.clone().unwrap_or_default() == labels
                && first.metadata.annotations.clone().unwrap_or_default() == annotations;
            if same_endpoints && same_meta {
                continue;
            }
        }
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: first.as_ref().and_then(|f| f.metadata.name.clone()),
                generate_name: first.is_none().then(|| format!("{}-", ep.name_any())),
                namespace: ep.namespace(),
                labels: Some(labels.clone()),
                annotations: empty(&annotations),
                owner_references: Some(vec![crate::pods::controller_ref("v1", "Endpoints", &ep.metadata)]),
                resource_version: first.as_ref().and_then(|f| f.metadata.resource_version.clone()),
                ..Default::default()
            },
            address_type: key.0.clone(),
            endpoints,
            ports: Some(ports),
        };
        if first.is_some() { out.update.push(slice) } else { out.create.push(slice) }
    }
    out.delete.extend(by_group.into_values().flatten());
    // Slices about to be deleted are reused for new ones (upstream's `recycleSlices`).
    let mut reusable: Vec<EndpointSlice> = Vec::new();
    out.delete.retain(|s| {
        let reuse = owned_by(s, ep) && reusable.len() < out.create.len();
        if reuse {
            reusable.push(s.clone());
        }
        !reuse
    });
    for old in reusable {
        let Some(mut slice) = out.create.pop() else { break };
        slice.metadata.name = old.metadata.name.clone();
        slice.metadata.generate_name = None;
        slice.metadata.resource_version = old.metadata.resource_version.clone();
        out.update.push(slice);
    }
    out
}

struct Ctx {
    client: Client,
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
    recorder: Recorder,
}

fn mirrored_selector(name: &str) -> ListParams {
    ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={CONTROLLER_NAME}"))
}

/// Whether `svc` wants its Endpoints mirrored: it has no selector.
pub fn mirrors(svc: &Service) -> bool {
    selector(svc).is_none()
}

async fn reconcile(ctx: Arc<Ctx>, key: ServiceKey) -> Result<(), ReconcileError> {
    let (ns, name) = (&key.0, &key.1);
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ns);
    let ep = ctx.endpoints.get(&ObjectRef::new(name).within(ns));
    let svc = ctx.services.get(&ObjectRef::new(name).within(ns));
    let mirrored = match (&ep, &svc) {
        (Some(ep), Some(svc)) => should_mirror(ep) && mirrors(svc),
        _ => false,
    };
    let (Some(ep), true) = (ep, mirrored) else {
        // Nothing to mirror: delete what was mirrored (checked in the cache first, so the
        // Endpoints the Endpoints controller writes cost no request).
        let cached = ctx.slices.state().iter().any(|s| {
            s.metadata.namespace.as_deref() == Some(ns.as_str()) && s.labels().get(SERVICE_NAME_LABEL) == Some(name)
        });
        if cached {
            let plan = Plan { delete: api.list(&mirrored_selector(name)).await?.items, ..Plan::default() };
            write_plan(&api, plan, false).await?;
        }
        return Ok(());
    };
    let want = desired(&ep);
    if want.invalid > 0 {
        let note = format!("Skipped {} invalid IP addresses when mirroring to EndpointSlices", want.invalid);
        warn(&ctx, &ep, "InvalidIPAddress", note).await;
    }
    if want.over_capacity > 0 {
        let note = format!(
            "A max of {MAX_ENDPOINTS_PER_SUBSET} addresses can be mirrored to EndpointSlices per Endpoints subset. {} addresses were skipped",
            want.over_capacity
        );
        warn(&ctx, &ep, "TooManyAddressesToMirror", note).await;
    }
    let existing = api.list(&mirrored_selector(name)).await?.items;
    let plan = plan(&ep, want, existing);
    if plan.is_empty() {
        return Ok(());
    }
    // No new slices for Endpoints being deleted.
    write_plan(&api, plan, ep.metadata.deletion_timestamp.is_none()).await
}

async fn warn(ctx: &Ctx, ep: &Endpoints, reason: &str, note: String) {
    let ev = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &ep.object_ref(&())).await {
        tracing::debug!(error = %e, "recording an endpoint slice mirroring event");
    }
}

/// An informer callback queueing the namespace/name of every object seen.
fn queue_key<K: Resource>(q: WorkQueue<ServiceKey>) -> impl FnMut(&watcher::Event<K>) + Send + 'static {
    move |e| {
        if let watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) = e {
            q.add(key_of(o));
        }
    }
}

/// Runs the EndpointSlice mirroring controller until `shutdown` turns true.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let queue: WorkQueue<ServiceKey> = WorkQueue::new();
    let (services, svc_task) =
        informer(Api::<Service>::all(client.clone()), watcher::Config::default(), queue_key(queue.clone()));
    let (endpoints, ep_task) =
        informer(Api::<Endpoints>::all(client.clone()), watcher::Config::default(), queue_key(queue.clone()));
    let q = queue.clone();
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}"));
    let (slices, slice_task) = informer(Api::<EndpointSlice>::all(client.clone()), managed, move |e| {
        if let watcher::Event::Apply(s) | watcher::Event::Delete(s) | watcher::Event::InitApply(s) = e
            && let Some(service) = s.labels().get(SERVICE_NAME_LABEL)
        {
            q.add((s.namespace().unwrap_or_default(), service.clone()));
        }
    });
    let ready = tokio::select! {
        r = async {
            services.wait_until_ready().await?;
            endpoints.wait_until_ready().await?;
            slices.wait_until_ready().await
        } => r.is_ok(),
        _ = stopped(shutdown.clone()) => false,
    };
    if ready {
        let recorder = Recorder::new(
            client.clone(),
            Reporter { controller: "endpointslicemirroring-controller".into(), instance: None },
        );
        let ctx = Arc::new(Ctx { client, services: services.clone(), endpoints, slices, recorder });
        run_workers("endpointslice mirroring controller", queue, services, shutdown, move |key| {
            reconcile(ctx.clone(), key)
        })
        .await;
    }
    for t in [svc_task, ep_task, slice_task] {
        t.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoints(v: serde_json::Value) -> Endpoints {
        let mut base = json!({"metadata": {"name": "ext", "namespace": "ns", "uid": "ep-uid",
            "labels": {"team": "a"},
            "annotations": {"note": "x", LAST_CHANGE_TRIGGER_TIME: "2024-01-01T00:00:00Z", LAST_APPLIED: "{}"}}});
        base["subsets"] = v;
        serde_json::from_value(base).unwrap()
    }

    fn addresses(n: usize, third: usize) -> serde_json::Value {
        json!((0..n).map(|i| json!({"ip": format!("10.1.{}.{}", third + i / 250, i % 250 + 1)})).collect::<Vec<_>>())
    }

    /// Applies a plan as the API server would (names for new slices).
    fn apply(mut slices: Vec<EndpointSlice>, plan: Plan) -> Vec<EndpointSlice> {
        let names = |v: &[EndpointSlice]| v.iter().map(|s| s.name_any()).collect::<Vec<_>>();
        let (gone, updated) = (names(&plan.delete), names(&plan.update));
        slices.retain(|s| !gone.contains(&s.name_any()) && !updated.contains(&s.name_any()));
        slices.extend(plan.update);
        for (i, mut s) in plan.create.into_iter().enumerate() {
            s.metadata.name = Some(format!("ext-{}-{i}", slices.len()));
            slices.push(s);
        }
        slices.sort_by_key(|s| s.name_any());
        slices
    }

    #[test]
    fn subsets_become_slices_with_labels_annotations_and_owner() {
        let ep = endpoints(json!([
            {"addresses": [{"ip": "10.1.0.2", "hostname": "a", "nodeName": "n1"}], "notReadyAddresses": [{"ip": "10.1.0.3"}],
             "ports": [{"name": "http", "port": 8080}]},
            {"addresses": [{"ip": "fd00::1"}, {"ip": "not-an-ip"}], "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
            {"addresses": [{"ip": "10.1.0.9"}], "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
        ]));
        let d = desired(&ep);
        assert_eq!((d.invalid, d.over_capacity), (1, 0));
        let p = plan(&ep, d, Vec::new());
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (3, 0, 0));
        let http: Vec<&EndpointSlice> = p
            .create
            .iter()
            .filter(|s| s.ports.as_ref().unwrap()[0].port == Some(8080) && s.address_type == "IPv4")
            .collect();
        assert_eq!(http.len(), 1);
        let s = http[0];
        let ready: Vec<(&str, bool)> = s
            .endpoints
            .iter()
            .map(|e| (e.addresses[0].as_str(), e.conditions.as_ref().unwrap().ready.unwrap()))
            .collect();
        assert_eq!(ready, [("10.1.0.2", true), ("10.1.0.3", false)]);
        assert_eq!(s.endpoints[0].hostname.as_deref(), Some("a"));
        assert_eq!(s.endpoints[0].node_name.as_deref(), Some("n1"));
        let port = &s.ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.protocol.as_deref()), (Some("http"), Some("TCP")));
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "ext");
        assert_eq!(labels[MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert_eq!(labels["team"], "a");
        let annotations = s.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.keys().collect::<Vec<_>>(), ["note"]);
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Endpoints", "ep-uid", Some(true)));
        assert_eq!(s.metadata.generate_name.as_deref(), Some("ext-"));
        assert!(p.create.iter().any(|s| s.address_type == "IPv6"));
    }

    #[test]
    fn at_most_1000_addresses_per_subset_ready_first() {
        let ep = endpoints(json!([{"addresses": addresses(900, 0), "notReadyAddresses": addresses(300, 10),
            "ports": [{"port": 80}]}]));
        let d = desired(&ep);
        assert_eq!(d.over_capacity, 200);
        let p = plan(&ep, d, Vec::new());
        assert_eq!(p.create.len(), 1);
        let s = &p.create[0];
        assert_eq!(s.endpoints.len(), 1000);
        let not_ready = s.endpoints.iter().filter(|e| e.conditions.as_ref().unwrap().ready == Some(false)).count();
        assert_eq!(not_ready, 100);
    }

    #[test]
    fn changes_rewrite_only_what_differs_and_empty_endpoints_delete_all() {
        let ep = endpoints(json!([{"addresses": addresses(3, 0), "ports": [{"port": 80}]}]));
        let slices = apply(Vec::new(), plan(&ep, desired(&ep), Vec::new()));
        assert_eq!(slices.len(), 1);
        // The same Endpoints: nothing to write.
        assert!(plan(&ep, desired(&ep), slices.clone()).is_empty());
        // The trigger time alone changes nothing.
        let mut touched = ep.clone();
        touched.metadata.annotations.as_mut().unwrap().insert(LAST_CHANGE_TRIGGER_TIME.into(), "later".into());
        assert!(plan(&touched, desired(&touched), slices.clone()).is_empty());
        // A label change rewrites the slice in place.
        let mut relabelled = ep.clone();
        relabelled.metadata.labels.as_mut().unwrap().insert("team".into(), "b".into());
        let p = plan(&relabelled, desired(&relabelled), slices.clone());
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        assert_eq!(p.update[0].name_any(), slices[0].name_any());
        // A new address: the slice is rewritten.
        let more = endpoints(json!([{"addresses": addresses(4, 0), "ports": [{"port": 80}]}]));
        let p = plan(&more, desired(&more), slices.clone());
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        assert_eq!(p.update[0].endpoints.len(), 4);
        // Another port: the old slice is reused for the new group.
        let other = endpoints(json!([{"addresses": addresses(2, 0), "ports": [{"port": 81}]}]));
        let p = plan(&other, desired(&other), slices.clone());
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 1, 0));
        assert_eq!(p.update[0].ports.as_ref().unwrap()[0].port, Some(81));
        // No subsets: every mirrored slice goes.
        let none = endpoints(json!([]));
        let p = plan(&none, desired(&none), slices.clone());
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 0, 1));
        // A duplicate slice of the same group goes; slices of an older Endpoints object too.
        let mut dup = slices[0].clone();
        dup.metadata.name = Some("ext-dup".into());
        let mut foreign = slices[0].clone();
        foreign.metadata.name = Some("ext-old".into());
        foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "older".into();
        let p = plan(&ep, desired(&ep), vec![slices[0].clone(), dup, foreign]);
        assert_eq!((p.create.len(), p.update.len(), p.delete.len()), (0, 0, 2));
    }

    #[test]
    fn skip_mirror_leader_records_and_selectors() {
        let mut ep = endpoints(json!([]));
        assert!(should_mirror(&ep));
        ep.metadata.labels.as_mut().unwrap().insert(SKIP_MIRROR_LABEL.into(), "true".into());
        assert!(!should_mirror(&ep));
        let mut ep = endpoints(json!([]));
        ep.metadata.annotations.as_mut().unwrap().insert(LEADER_ANNOTATION.into(), "{}".into());
        assert!(!should_mirror(&ep));
        let svc = |spec: serde_json::Value| -> Service { serde_json::from_value(json!({"spec": spec})).unwrap() };
        assert!(mirrors(&svc(json!({"ports": [{"port": 80}]}))));
        assert!(mirrors(&svc(json!({"selector": {}}))));
        assert!(!mirrors(&svc(json!({"selector": {"app": "web"}}))));
    }
}
