//! The service proxy of a node (kube-proxy's nftables mode) and the built-in LoadBalancer
//! provider.
//!
//! [`run`] watches Services, EndpointSlices (`discovery.k8s.io/v1`) and Nodes with kube-runtime
//! reflectors, and after each burst of changes (at most once per
//! [`Options::min_sync_interval`]) brings the node's ruleset up to date, recomputing only the
//! Services whose object or slices changed ([`rules::Assembly`], the same table as
//! [`rules::desired`]), and applies the difference ([`dataplane::Dataplane`]). On shutdown the table is removed.
//!
//! It serves the health check node ports of `externalTrafficPolicy: Local` LoadBalancers
//! ([`healthcheck`]) on [`Options::health_check_address`].
//!
//! With [`Options::load_balancer`] it also plays the cloud's part for `type: LoadBalancer`
//! Services, like k3s's servicelb: their `status.loadBalancer.ingress` lists the nodes'
//! addresses, and the ruleset serves their ports there.

pub mod dataplane;
pub mod healthcheck;
pub mod rules;

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use rules::{Cidr, NodeView};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub use dataplane::{Applied, ApplyKind, Dataplane};

/// The node label naming its zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// How the proxy of one node runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// This node's name (endpoints on it are local).
    pub node_name: String,
    /// This node's addresses: the LoadBalancer provider's fallback when no Node lists any.
    pub node_ips: Vec<IpAddr>,
    /// The cluster's pod range.
    pub cluster_cidr: Cidr,
    /// The Service range (unclaimed addresses in it are dropped, never routed out).
    pub service_cidr: Option<Cidr>,
    /// The nftables table (`inet` family) the proxy owns.
    pub table: String,
    /// The shortest time between two syncs (changes in between are batched).
    pub min_sync_interval: Duration,
    /// Whether this process is the LoadBalancer provider (run it on one node only).
    pub load_balancer: bool,
    /// Where the health check node ports are served ([`healthcheck`]); `None` serves none.
    pub health_check_address: Option<IpAddr>,
}

impl Options {
    /// Defaults for `node_name`: cluster range 10.42.0.0/16, Service range 10.43.0.0/16,
    /// table `rudder_proxy_<hash of the node name>`, syncs at most every 200 ms, no
    /// LoadBalancer provider, health check node ports on every address (as upstream).
    pub fn new(node_name: impl Into<String>, node_ips: Vec<IpAddr>) -> Self {
        let node_name = node_name.into();
        Options {
            table: format!("rudder_proxy_{}", short_hash(&node_name)),
            node_name,
            node_ips,
            cluster_cidr: Cidr { addr: std::net::Ipv4Addr::new(10, 42, 0, 0), prefix: 16 },
            service_cidr: Some(Cidr { addr: std::net::Ipv4Addr::new(10, 43, 0, 0), prefix: 16 }),
            min_sync_interval: Duration::from_millis(200),
            load_balancer: false,
            health_check_address: Some(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        }
    }
}

/// A short stable hex suffix for names derived from `seed`.
pub fn short_hash(seed: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in seed.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")[..6].to_string()
}

/// Figures of one sync.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncStats {
    /// Time to compute the desired ruleset.
    pub compute: Duration,
    /// Time to render and apply it (including running `nft`).
    pub apply: Duration,
    /// What was applied.
    pub kind: ApplyKind,
    /// Bytes of `nft` input.
    pub bytes: usize,
    /// Service ports in the ruleset.
    pub service_ports: usize,
    /// Endpoints in the ruleset (once per policy chain using them).
    pub endpoints: usize,
}

static LAST_SYNC: parking_lot::Mutex<Option<SyncStats>> = parking_lot::Mutex::new(None);

/// The figures of the last sync of any proxy in this process.
pub fn sync_stats() -> Option<SyncStats> {
    *LAST_SYNC.lock()
}

/// Computes and applies rulesets for one node.
pub struct Proxier {
    /// What the rules need to know about the node.
    pub view: NodeView,
    dataplane: Dataplane,
    assembly: rules::Assembly,
}

impl Proxier {
    /// A proxier for `view` applying through `dataplane`.
    pub fn new(view: NodeView, dataplane: Dataplane) -> Self {
        Proxier { view, dataplane, assembly: rules::Assembly::default() }
    }

    /// One resync from all `services` and `slices`: Services whose object and slices kept
    /// their resourceVersions are not recomputed, and only the difference is applied
    /// ([`rules::Assembly`]).
    pub fn sync<'a>(
        &mut self,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Result<SyncStats> {
        let start = Instant::now();
        let changes = self.assembly.update(services, slices, &self.view, self.dataplane.synced());
        let compute = start.elapsed();
        let desired = self.assembly.table();
        let (service_ports, endpoints) = (desired.service_ports, desired.endpoints);
        let applied = self.dataplane.apply(desired, Some(&changes))?;
        let stats = SyncStats {
            compute,
            apply: applied.duration,
            kind: applied.kind,
            bytes: applied.bytes,
            service_ports,
            endpoints,
        };
        *LAST_SYNC.lock() = Some(stats);
        Ok(stats)
    }

    /// Removes the table.
    pub fn delete(&mut self) -> Result<()> {
        self.dataplane.delete()
    }
}

/// Whether bridged IPv4 traffic passes netfilter here (`bridge-nf-call-iptables`).
fn bridge_netfilter() -> bool {
    std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables").is_ok_and(|v| v.trim() == "1")
}

/// Starts a reflector for `api`; every change wakes `notify`.
pub(crate) fn reflect<K>(api: Api<K>, notify: Arc<Notify>) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => notify.notify_one(),
                Err(e) => tracing::debug!("proxy watch: {e}"),
            }
        }
    });
    (reader, task)
}

/// Runs the proxy until `shutdown` turns true, then removes its table.
pub async fn run(
    client: kube::Client,
    options: Options,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let notify = Arc::new(Notify::new());
    let (services, t1) = reflect(Api::<Service>::all(client.clone()), notify.clone());
    let (slices, t2) = reflect(Api::<EndpointSlice>::all(client.clone()), notify.clone());
    let (nodes, t3) = reflect(Api::<Node>::all(client.clone()), notify.clone());
    let tasks = [t1, t2, t3];

    let lb_notify = Arc::new(Notify::new());
    let lb_task = options.load_balancer.then(|| {
        let (client, services, nodes, options, wake, stop) =
            (client.clone(), services.clone(), nodes.clone(), options.clone(), lb_notify.clone(), shutdown.clone());
        tokio::spawn(load_balancer_loop(client, services, nodes, options, wake, stop))
    });

    let result = async {
        tokio::select! {
            r = async { tokio::try_join!(services.wait_until_ready(), slices.wait_until_ready(), nodes.wait_until_ready()) } => {
                r.context("the proxy's watches did not start")?;
            }
            _ = stopped(&mut shutdown) => return Ok(()),
        }
        let view = NodeView {
            node_name: options.node_name.clone(),
            cluster_cidr: Some(options.cluster_cidr),
            service_cidr: options.service_cidr,
            masquerade_local_pods: None,
            zone: None,
        };
        let mut proxier = Some(Proxier::new(view, Dataplane::new(options.table.clone())));
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut health = options.health_check_address.map(|a| healthcheck::HealthServer::new(a, healthy.clone()));
        let mut last = Instant::now() - options.min_sync_interval;
        let mut failures = 0u32;
        loop {
            let wait = last + options.min_sync_interval;
            tokio::select! {
                _ = tokio::time::sleep_until(wait.into()) => {}
                _ = stopped(&mut shutdown) => break,
            }
            let mut p = proxier.take().context("proxier")?;
            p.view.masquerade_local_pods = if bridge_netfilter() { None } else { own_pod_cidr(&nodes, &options.node_name) };
            p.view.zone = own_zone(&nodes, &options.node_name);
            let (svcs, eps) = (services.state(), slices.state());
            let checks = health.as_ref().map(|_| {
                healthcheck::checks(svcs.iter().map(AsRef::as_ref), eps.iter().map(AsRef::as_ref), &options.node_name)
            });
            let (p, outcome) = tokio::task::spawn_blocking(move || {
                let r = p.sync(svcs.iter().map(|s| s.as_ref()), eps.iter().map(|s| s.as_ref()));
                (p, r)
            })
            .await
            .context("the proxy's sync task failed")?;
            proxier = Some(p);
            last = Instant::now();
            lb_notify.notify_one();
            healthy.store(outcome.is_ok(), std::sync::atomic::Ordering::Relaxed);
            if let (Some(h), Some(c)) = (health.as_mut(), checks) {
                h.sync(c);
            }
            match outcome {
                Ok(s) => {
                    failures = 0;
                    if s.kind != ApplyKind::Unchanged {
                        tracing::debug!(
                            "proxy synced ({:?}): {} service ports, {} endpoints, compute {:?}, apply {:?}, {} bytes",
                            s.kind, s.service_ports, s.endpoints, s.compute, s.apply, s.bytes
                        );
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!("proxy sync failed (attempt {failures}): {e:#}");
                    let backoff = Duration::from_millis(500u64 << failures.min(6));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => continue,
                        _ = stopped(&mut shutdown) => break,
                    }
                }
            }
            tokio::select! {
                _ = notify.notified() => {}
                // A periodic resync heals a table changed behind the proxy's back.
                _ = tokio::time::sleep(Duration::from_secs(60)) => {
                    if let Some(p) = proxier.as_mut()
                        && !p.dataplane.present()
                    {
                        tracing::warn!("the proxy table {} disappeared; recreating it", options.table);
                        p.dataplane.invalidate();
                    }
                }
                _ = stopped(&mut shutdown) => break,
            }
        }
        if let Some(mut p) = proxier {
            tokio::task::spawn_blocking(move || p.delete()).await.context("removing the proxy table")??;
        }
        Ok(())
    }
    .await;
    for t in tasks {
        t.abort();
    }
    if let Some(t) = lb_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    if result.is_err() {
        // Never leave a stale table capturing Service traffic behind.
        let mut d = Dataplane::new(options.table.clone());
        let _ = tokio::task::spawn_blocking(move || d.delete()).await;
    }
    result
}

/// Resolves once `shutdown` is true or its sender is gone.
pub(crate) async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// This node's `spec.podCIDR`, if it is IPv4.
fn own_pod_cidr(nodes: &Store<Node>, name: &str) -> Option<Cidr> {
    let node = nodes.get(&reflector::ObjectRef::new(name))?;
    node.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok()
}

/// This node's zone: its `topology.kubernetes.io/zone` label.
fn own_zone(nodes: &Store<Node>, name: &str) -> Option<String> {
    let node = nodes.get(&reflector::ObjectRef::new(name))?;
    node.metadata.labels.as_ref()?.get(ZONE_LABEL).filter(|z| !z.is_empty()).cloned()
}

/// The addresses LoadBalancer Services get: each Ready node's ExternalIP, else its InternalIP
/// (IPv4), sorted; `fallback` when no node has one.
pub fn load_balancer_ips(nodes: &[Arc<Node>], fallback: &[IpAddr]) -> Vec<String> {
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|n| {
            let addrs = n.status.as_ref()?.addresses.as_ref()?;
            let pick = |t: &str| {
                addrs
                    .iter()
                    .find(|a| a.type_ == t && a.address.parse::<std::net::Ipv4Addr>().is_ok())
                    .map(|a| a.address.clone())
            };
            pick("ExternalIP").or_else(|| pick("InternalIP"))
        })
        .collect();
    if ips.is_empty() {
        ips = fallback.iter().filter(|ip| ip.is_ipv4()).map(|ip| ip.to_string()).collect();
    }
    ips.sort();
    ips.dedup();
    ips
}

/// The `status.loadBalancer.ingress` a Service should have: the node addresses for a
/// `type: LoadBalancer` Service without a `loadBalancerClass` (another provider's), empty for
/// any other type, `None` when the provider leaves it alone.
fn wanted_ingress(svc: &Service, ips: &[String]) -> Option<Vec<String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("LoadBalancer") {
        return spec.load_balancer_class.is_none().then(|| ips.to_vec());
    }
    Some(Vec::new())
}

async fn load_balancer_loop(
    client: kube::Client,
    services: Store<Service>,
    nodes: Store<Node>,
    options: Options,
    wake: Arc<Notify>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = stopped(&mut shutdown) => return,
        }
        let ips = load_balancer_ips(&nodes.state(), &options.node_ips);
        for svc in services.state() {
            let Some(want) = wanted_ingress(&svc, &ips) else { continue };
            let have: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect())
                .unwrap_or_default();
            let has_other = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .is_some_and(|i| i.iter().any(|i| i.ip.is_none()));
            if have == want && !has_other {
                continue;
            }
            if want.is_empty() && have.is_empty() {
                continue;
            }
            let (Some(ns), Some(name)) = (svc.metadata.namespace.as_deref(), svc.metadata.name.as_deref()) else {
                continue;
            };
            let ingress: Vec<serde_json::Value> =
                want.iter().map(|ip| serde_json::json!({ "ip": ip, "ipMode": "VIP" })).collect();
            let patch = serde_json::json!({ "status": { "loadBalancer": { "ingress": ingress } } });
            let api: Api<Service> = Api::namespaced(client.clone(), ns);
            if let Err(e) = api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                tracing::warn!("cannot set the load balancer status of {ns}/{name}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, addrs: &[(&str, &str)]) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "status": {
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                    "addresses": addrs.iter().map(|(t, a)| serde_json::json!({"type": t, "address": a})).collect::<Vec<_>>(),
                }
            }))
            .unwrap(),
        )
    }

    #[test]
    fn load_balancer_ips_prefer_external_then_internal_of_ready_nodes() {
        let nodes = vec![
            node("b", true, &[("InternalIP", "192.0.2.2"), ("ExternalIP", "198.51.100.2")]),
            node("a", true, &[("InternalIP", "192.0.2.1"), ("Hostname", "a")]),
            node("c", false, &[("InternalIP", "192.0.2.3")]),
            node("d", true, &[("InternalIP", "fd00::1")]),
        ];
        assert_eq!(load_balancer_ips(&nodes, &[]), vec!["192.0.2.1", "198.51.100.2"]);
        assert_eq!(load_balancer_ips(&[], &["127.0.0.1".parse().unwrap()]), vec!["127.0.0.1"]);
    }

    #[test]
    fn only_class_less_load_balancers_get_ingress() {
        let svc = |t: &str, class: Option<&str>| -> Service {
            serde_json::from_value(serde_json::json!({"spec": {"type": t, "loadBalancerClass": class}})).unwrap()
        };
        let ips = vec!["192.0.2.1".to_string()];
        assert_eq!(wanted_ingress(&svc("LoadBalancer", None), &ips), Some(ips.clone()));
        assert_eq!(wanted_ingress(&svc("LoadBalancer", Some("example.com/lb")), &ips), None);
        assert_eq!(wanted_ingress(&svc("ClusterIP", None), &ips), Some(vec![]));
    }

    #[test]
    fn options_name_the_table_after_the_node() {
        let o = Options::new("node-a", vec![]);
        assert_eq!(o.table, format!("rudder_proxy_{}", short_hash("node-a")));
        assert_ne!(o.table, Options::new("node-b", vec![]).table);
        assert_eq!(o.cluster_cidr.to_string(), "10.42.0.0/16");
    }
}
