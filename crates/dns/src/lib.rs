//! Cluster DNS for Rudder: an in-process DNS server like CoreDNS with its `kubernetes` plugin.
//!
//! - [`records`]: the pure index of Services, EndpointSlices, Namespaces and Pods and how each
//!   query is answered (A/AAAA, SRV, PTR, CNAME, pod names, NXDOMAIN vs NODATA, SOA).
//! - [`server`]: UDP and TCP listeners answering from the index and forwarding other names to
//!   the upstream resolvers.
//! - [`link`]: the node-local address (the cluster DNS IP on a dummy link) to listen on.
//! - [`run`]: all of it fed by kube-runtime reflectors, the index rebuilt and swapped on change.

pub mod link;
pub mod records;
pub mod server;

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use records::{Index, IndexBuilder, PodMode};
use serde::de::DeserializeOwned;
use server::{DnsServer, Forwarder};
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

pub use records::TTL;

/// The conventional cluster DNS service IP (the service CIDR's tenth address).
pub const CLUSTER_DNS_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 43, 0, 10);
/// How long [`run`] waits for the first lists before serving anyway (CoreDNS waits 5 s).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(5);
/// Changes arriving within this window are folded into one rebuild.
pub const REBUILD_DEBOUNCE: Duration = Duration::from_millis(50);

/// How to run the cluster DNS server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Addresses to serve UDP and TCP on (e.g. `10.43.0.10:53`; tests: `127.0.0.1:0`).
    pub listen: Vec<SocketAddr>,
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
    /// Resolvers for names outside the domain, tried in order (see [`server::host_upstreams`]).
    pub upstreams: Vec<SocketAddr>,
    /// Time budget of one forwarded query over all upstreams.
    pub forward_timeout: Duration,
    /// How pod names (`a-b-c-d.<ns>.pod.<domain>`) are answered; [`PodMode::Verified`] also
    /// watches every pod.
    pub pods: PodMode,
}

impl Default for Options {
    /// `10.43.0.10:53`, `cluster.local`, the host's resolvers, 2 s, `pods insecure`.
    fn default() -> Options {
        Options {
            listen: vec![SocketAddr::new(CLUSTER_DNS_IP.into(), 53)],
            domain: "cluster.local".into(),
            upstreams: server::host_upstreams(),
            forward_timeout: server::DEFAULT_FORWARD_TIMEOUT,
            pods: PodMode::Insecure,
        }
    }
}

/// A reflector store fed by a watch, poking `changed` on every event after the first list.
struct Informer<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn start(api: Api<K>, changed: Arc<Notify>) -> Informer<K> {
        let (store, writer) = reflector::store();
        let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
        let task = tokio::spawn(async move {
            stream
                .for_each(|event| {
                    match event {
                        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                        Ok(_) => changed.notify_one(),
                        Err(e) => tracing::debug!(error = %e, "cluster DNS watch"),
                    }
                    futures::future::ready(())
                })
                .await;
        });
        Informer { store, task }
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Drop for Informer<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the index is built from.
struct Sources {
    services: Informer<Service>,
    slices: Informer<EndpointSlice>,
    namespaces: Informer<Namespace>,
    pods: Option<Informer<Pod>>,
}

impl Sources {
    async fn wait_synced(&self) -> bool {
        let all = async {
            let _ = self.services.store.wait_until_ready().await;
            let _ = self.slices.store.wait_until_ready().await;
            let _ = self.namespaces.store.wait_until_ready().await;
            if let Some(p) = &self.pods {
                let _ = p.store.wait_until_ready().await;
            }
        };
        tokio::time::timeout(SYNC_TIMEOUT, all).await.is_ok()
    }

    fn build(&self, domain: &str, mode: PodMode) -> Index {
        let mut b = IndexBuilder::new(domain, mode);
        for ns in self.namespaces.store.state() {
            if let Some(name) = ns.metadata.name.as_deref() {
                b.namespace(name);
            }
        }
        for svc in self.services.store.state() {
            b.service(&svc);
        }
        for slice in self.slices.store.state() {
            b.endpoint_slice(&slice);
        }
        for pod in self.pods.iter().flat_map(|p| p.store.state()) {
            b.pod(&pod);
        }
        // CoreDNS's serial: the time of the last change, in seconds.
        let serial =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
        b.build(serial)
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone); holds no borrow across an
/// await, so the future stays `Send`.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    loop {
        let stop = *shutdown.borrow_and_update();
        if stop || shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Serves cluster DNS until `shutdown` turns true: binds the listeners first (an error when an
/// address cannot be bound), waits up to [`SYNC_TIMEOUT`] for the first lists of Services,
/// EndpointSlices and Namespaces (and Pods with [`PodMode::Verified`]), then answers, rebuilding
/// the index whenever they change.
pub async fn run(client: Client, options: Options, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    let changed = Arc::new(Notify::new());
    let sources = Sources {
        services: Informer::start(Api::all(client.clone()), changed.clone()),
        slices: Informer::start(Api::all(client.clone()), changed.clone()),
        namespaces: Informer::start(Api::all(client.clone()), changed.clone()),
        pods: (options.pods == PodMode::Verified).then(|| Informer::start(Api::all(client.clone()), changed.clone())),
    };
    let (tx, rx) = watch::channel(Arc::new(Index::empty(&options.domain, options.pods)));
    let forwarder = Forwarder::new(options.upstreams.clone(), options.forward_timeout);
    // Queries wait in the sockets' buffers while the lists load.
    let server = DnsServer::start(&options.listen, rx, forwarder).await?;
    tracing::info!(listen = ?server.local_addrs(), domain = %options.domain, upstreams = ?options.upstreams, "cluster DNS starting");
    tokio::select! {
        synced = sources.wait_synced() => {
            if !synced {
                tracing::warn!("cluster DNS: starting with unsynced Kubernetes API");
            }
        }
        _ = stopped(&mut shutdown) => {
            return server.shutdown().await;
        }
    }
    let _ = tx.send(Arc::new(sources.build(&options.domain, options.pods)));
    loop {
        tokio::select! {
            _ = changed.notified() => {
                tokio::time::sleep(REBUILD_DEBOUNCE).await;
                let index = sources.build(&options.domain, options.pods);
                tracing::debug!(names = index.len(), "cluster DNS index rebuilt");
                let _ = tx.send(Arc::new(index));
            }
            _ = stopped(&mut shutdown) => break,
        }
    }
    server.shutdown().await
}
