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
use crate::support::{ReconcileError, WorkQueue, is_conflict, is_namespace_gone, is_not_found};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
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
    let desired = desired_endpoints(&svc, &pod_refs, zone_of);
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
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let queue: WorkQueue<ServiceKey> = WorkQueue::new();
    let watches = ServiceWatches::start(&client, &queue);
    let (nodes, node_task) = informer(Api::<Node>::all(client.clone()), watcher::Config::default(), |_| {});
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
}
