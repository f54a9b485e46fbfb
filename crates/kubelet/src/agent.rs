//! The kubelet as a whole: starts (or connects to) containerd, writes the node's CNI config,
//! installs the egress guard, registers the Node, keeps its Lease and status fresh, runs one
//! worker per pod bound to it, and collects sandboxes and containers of pods that are gone.

use crate::containerd::{self, Containerd};
use crate::cri::{CriRuntime, Runtime};
use crate::env::NodeFacts;
use crate::events::Recorder;
use crate::network::{self, Cidr};
use crate::node::{self, Identity, LEASE_NAMESPACE, Machine};
use crate::pod::{self, Shared};
use crate::volumes::Volumes;
use anyhow::{Context, Result};
use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The image every sandbox runs (built from busybox by the project, imported at start).
pub const PAUSE_IMAGE: &str = "docker.io/rudder/pause:1";
/// Cluster ranges the egress guard covers by default: pods and Services.
pub const DEFAULT_GUARDED: &[&str] = &["10.42.0.0/16", "10.43.0.0/16"];

/// How a kubelet runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Node name.
    pub node_name: String,
    /// The node's address (InternalIP, hostIP of pods).
    pub node_ip: IpAddr,
    /// Directory for the node's state (containerd, pods, logs, CNI).
    pub dir: PathBuf,
    /// Pod CIDR of this node; `None` waits for the node IPAM controller to give the node one.
    pub pod_cidr: Option<Cidr>,
    /// Cluster DNS service IP written into pods' resolv.conf (`ClusterFirst`).
    pub cluster_dns: Option<IpAddr>,
    /// Cluster domain.
    pub cluster_domain: String,
    /// Address and port of the kubelet's HTTPS server (port 0 picks one).
    pub listen: std::net::SocketAddr,
    /// TLS of the kubelet's HTTPS server; none disables the server.
    pub server_tls: Option<crate::server::ServerTls>,
    /// CRI socket of a runtime to use instead of a managed containerd.
    pub runtime_endpoint: Option<PathBuf>,
    /// Cgroup under which pods' cgroups are created.
    pub cgroup_root: String,
    /// Extra node labels.
    pub labels: Vec<(String, String)>,
    /// Ranges the egress guard keeps from leaving through the uplinks.
    pub guarded: Vec<Cidr>,
    /// Seconds between Lease renewals and status reports.
    pub heartbeat: Duration,
}

impl Options {
    /// Defaults for a node named `node_name` keeping its state in `dir`.
    pub fn new(node_name: String, node_ip: IpAddr, dir: PathBuf) -> Options {
        Options {
            node_name,
            node_ip,
            dir,
            pod_cidr: None,
            cluster_dns: Some("10.43.0.10".parse().expect("static IP")),
            cluster_domain: "cluster.local".into(),
            listen: "0.0.0.0:10250".parse().expect("static address"),
            server_tls: None,
            runtime_endpoint: None,
            cgroup_root: "/kubepods".into(),
            labels: Vec::new(),
            guarded: DEFAULT_GUARDED.iter().map(|c| c.parse().expect("static CIDR")).collect(),
            heartbeat: Duration::from_secs(10),
        }
    }

    fn guard_table(&self) -> String {
        format!("rudder_guard_{}", network::short_hash(&self.dir.display().to_string()))
    }
}

/// Runs the kubelet until `shutdown` turns true. Containers keep running across a restart of
/// the kubelet; the managed containerd is stopped with it.
pub async fn run(client: Client, options: Options, mut shutdown: watch::Receiver<bool>) -> Result<()> {
    std::fs::create_dir_all(&options.dir).with_context(|| format!("cannot create {}", options.dir.display()))?;
    // The guard goes in before any pod can send a packet.
    let guard = options.guard_table();
    network::nft_apply(&network::guard_ruleset(&guard, &network::uplinks(), &options.guarded, options.pod_cidr))
        .context("cannot install the egress guard for the cluster ranges")?;

    let mut managed = None;
    let mut pod_network = None;
    let runtime: Arc<dyn Runtime> = match &options.runtime_endpoint {
        Some(socket) => Arc::new(CriRuntime::connect(socket).await?),
        None => {
            let cni_bin_dir = containerd::check_prerequisites()?;
            let cni = PodNetwork::new(&options.dir);
            std::fs::create_dir_all(&cni.conf_dir)
                .with_context(|| format!("cannot create {}", cni.conf_dir.display()))?;
            // Without a pod CIDR yet the network config comes once the node has one; the CRI
            // plugin picks it up from the directory.
            if let Some(cidr) = options.pod_cidr {
                cni.write(cidr)?;
            }
            let settings = containerd::Settings {
                dir: options.dir.join("containerd"),
                sandbox_image: PAUSE_IMAGE.into(),
                cni_bin_dir,
                cni_conf_dir: cni.conf_dir.clone(),
            };
            let (process, cri) = Containerd::start(settings).await?;
            managed = Some(process);
            pod_network = Some(cni);
            Arc::new(cri)
        }
    };
    let socket = managed.as_ref().map(|m| m.settings().socket());
    let result = run_with(client, options.clone(), runtime, socket, pod_network, &mut shutdown).await;
    if let Some(mut m) = managed {
        m.stop().await;
    }
    network::nft_delete_table(&guard);
    result
}

/// The CNI network config the managed containerd uses.
struct PodNetwork {
    conf_dir: PathBuf,
    name: String,
    ipam_dir: PathBuf,
}

impl PodNetwork {
    fn new(dir: &std::path::Path) -> PodNetwork {
        let suffix = network::short_hash(&dir.display().to_string());
        PodNetwork {
            conf_dir: dir.join("cni").join("net.d"),
            name: format!("rudder-{suffix}"),
            ipam_dir: dir.join("cni").join("ipam"),
        }
    }

    fn write(&self, pod_cidr: Cidr) -> Result<()> {
        network::write_conflist(&self.conf_dir, &network::conflist(&self.name, &self.name, pod_cidr, &self.ipam_dir))
    }
}

/// Waits until the node IPAM controller has written the node's pod CIDR.
async fn wait_for_pod_cidr(client: &Client, node: &str, shutdown: &mut watch::Receiver<bool>) -> Result<Cidr> {
    let nodes: Api<Node> = Api::all(client.clone());
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        match nodes.get_opt(node).await {
            Ok(Some(n)) => {
                let cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.clone()).filter(|c| !c.is_empty());
                if let Some(cidr) = cidr {
                    return cidr.parse().with_context(|| format!("node {node} has pod CIDR {cidr:?}"));
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("reading node {node} for its pod CIDR: {e}"),
        }
        if !told && started.elapsed() > Duration::from_secs(10) {
            tracing::warn!(
                "node {node} still has no pod CIDR: the server's controller manager gives one (is it running?), \
                 or start the node with --pod-cidr"
            );
            told = true;
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => anyhow::bail!("stopped while waiting for a pod CIDR"),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

async fn run_with(
    client: Client,
    options: Options,
    runtime: Arc<dyn Runtime>,
    containerd_socket: Option<PathBuf>,
    pod_network: Option<PodNetwork>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<()> {
    if let Some(socket) = &containerd_socket {
        crate::image::ensure_image(socket, "k8s.io", PAUSE_IMAGE, crate::image::pause_image)
            .await
            .context("cannot provide the sandbox (pause) image")?;
    }
    let version = runtime.version().await?;
    let runtime_version = format!("{}://{}", version.runtime_name, version.runtime_version);
    let machine = Machine::probe(&options.dir);

    // The kubelet's HTTPS server: logs, exec, attach, port-forward, stats.
    let mut port = options.listen.port();
    if let Some(tls) = options.server_tls.clone() {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {} for the kubelet API", options.listen))?;
        port = listener.local_addr()?.port();
        let (rt, logs, stop) = (runtime.clone(), options.dir.join("logs"), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::server::serve(listener, tls, rt, logs, stop).await {
                tracing::error!("kubelet API server stopped: {e:#}");
            }
        });
    }
    let mut id = Identity {
        name: options.node_name.clone(),
        ip: options.node_ip,
        kubelet_port: port,
        labels: options.labels.clone(),
        pod_cidr: options.pod_cidr.map(|c| c.to_string()),
    };
    let node_uid = register(&client, &id, &machine).await?;
    if options.pod_cidr.is_none() {
        let cidr = wait_for_pod_cidr(&client, &options.node_name, shutdown).await?;
        tracing::info!("node {} has pod CIDR {cidr}", options.node_name);
        if let Some(cni) = &pod_network {
            cni.write(cidr)?;
        }
        // A node registered again after a deletion asks for the block it uses.
        id.pod_cidr = Some(cidr.to_string());
        let ruleset = network::guard_ruleset(&options.guard_table(), &network::uplinks(), &options.guarded, Some(cidr));
        network::nft_apply(&ruleset).context("cannot update the egress guard for the node's pod CIDR")?;
    }
    let routes = tokio::spawn(crate::routes::run(
        client.clone(),
        options.node_name.clone(),
        options.guard_table(),
        options.dir.join("routes.json"),
        options.guarded.clone(),
        shutdown.clone(),
    ));

    let node_facts = NodeFacts {
        node_name: options.node_name.clone(),
        host_ip: options.node_ip.to_string(),
        pod_ips: Vec::new(),
        allocatable_cpu_millis: i64::from(machine.cpus) * 1000,
        allocatable_memory_bytes: machine.memory_bytes as i64,
        allocatable_ephemeral_storage_bytes: machine.ephemeral_storage_bytes as i64,
    };
    // Pod workers read through one shared relist (upstream's PLEG relists once a second).
    let cached: Arc<dyn Runtime> =
        Arc::new(crate::cri::CachedRuntime::new(runtime.clone(), Duration::from_millis(500)));
    let shared = Arc::new(Shared {
        client: client.clone(),
        runtime: cached,
        volumes: Volumes::new(options.dir.join("pods")),
        node: node_facts,
        logs_root: options.dir.join("logs"),
        cgroup_root: options.cgroup_root.clone(),
        dns: crate::dns::ClusterDns { ip: options.cluster_dns, domain: options.cluster_domain.clone() },
        host_resolv: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        events: Recorder::new(client.clone(), options.node_name.clone()),
    });

    let heartbeat = tokio::spawn(heartbeats(
        client.clone(),
        id.clone(),
        machine.clone(),
        runtime.clone(),
        runtime_version,
        node_uid,
        options.heartbeat,
        shutdown.clone(),
    ));

    let pods: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", options.node_name));
    let mut stream = watcher::watcher(pods, config).boxed();
    let mut workers: HashMap<String, watch::Sender<Option<Arc<Pod>>>> = HashMap::new();
    let allocatable = rudder_scheduler::resources::Resource::from_list(
        &serde_json::from_value(machine.capacity()).unwrap_or_default(),
    );
    let mut listing: HashSet<String> = HashSet::new();
    let mut synced = false;
    let mut gc = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = gc.tick(), if synced => {
                collect_orphans(runtime.as_ref(), &workers).await;
                workers.retain(|_, tx| !tx.is_closed());
            }
            event = stream.next() => {
                let Some(event) = event else { break };
                match event {
                    Ok(Event::Init) => listing.clear(),
                    Ok(Event::InitApply(pod)) => {
                        if let Some(uid) = pod.metadata.uid.clone() {
                            listing.insert(uid);
                        }
                        dispatch(&shared, &mut workers, pod, &allocatable);
                    }
                    Ok(Event::InitDone) => {
                        // Pods that disappeared while the watch was down.
                        for (uid, tx) in workers.iter() {
                            if !listing.contains(uid) {
                                let _ = tx.send(None);
                            }
                        }
                        synced = true;
                    }
                    Ok(Event::Apply(pod)) => dispatch(&shared, &mut workers, pod, &allocatable),
                    Ok(Event::Delete(pod)) => {
                        if let Some(tx) = pod.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                            let _ = tx.send(None);
                        }
                    }
                    Err(e) => {
                        tracing::debug!("pod watch: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }
    heartbeat.abort();
    routes.abort();
    Ok(())
}

/// Hands a pod to its worker, starting one for a new pod that passes admission.
fn dispatch(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, watch::Sender<Option<Arc<Pod>>>>,
    pod: Pod,
    allocatable: &rudder_scheduler::resources::Resource,
) {
    let Some(uid) = pod.metadata.uid.clone() else { return };
    let pod = Arc::new(pod);
    if let Some(tx) = workers.get(&uid)
        && !tx.is_closed()
    {
        let _ = tx.send(Some(pod));
        return;
    }
    // A terminal pod seen for the first time (after a restart of the kubelet) needs no worker
    // unless it is being deleted.
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    if (phase == "Succeeded" || phase == "Failed") && pod.metadata.deletion_timestamp.is_none() {
        let (tx, rx) = watch::channel(Some(pod));
        workers.insert(uid.clone(), tx);
        drop(rx);
        return;
    }
    if pod.metadata.deletion_timestamp.is_none() && phase != "Running" {
        let admitted: Vec<Arc<Pod>> = workers
            .values()
            .filter(|tx| !tx.is_closed())
            .filter_map(|tx| tx.borrow().clone())
            .filter(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
                phase != "Succeeded" && phase != "Failed"
            })
            .collect();
        if let Err(rejection) = crate::admission::admit(&pod, admitted.iter().map(|p| p.as_ref()), allocatable) {
            reject(shared, &pod, rejection);
            let (tx, rx) = watch::channel(Some(pod));
            workers.insert(uid, tx);
            drop(rx);
            return;
        }
    }
    let (tx, rx) = watch::channel(Some(pod));
    workers.insert(uid.clone(), tx);
    tokio::spawn(pod::run(shared.clone(), uid, rx));
}

/// Fails a pod the node cannot run, as upstream's kubelet does: phase Failed with the reason.
fn reject(shared: &Arc<Shared>, pod: &Pod, rejection: crate::admission::Rejection) {
    shared.events.warning(pod, None, &rejection.reason, rejection.message.clone());
    let (client, pod) = (shared.client.clone(), pod.clone());
    tokio::spawn(async move {
        let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client, &ns);
        let status = json!({ "status": {
            "phase": "Failed", "reason": rejection.reason, "message": rejection.message,
            "startTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }});
        if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status)).await {
            tracing::warn!("cannot fail rejected pod {ns}/{name}: {e}");
        }
    });
}

/// Stops and removes sandboxes and containers of pods this kubelet has no worker for.
async fn collect_orphans(runtime: &dyn Runtime, workers: &HashMap<String, watch::Sender<Option<Arc<Pod>>>>) {
    let known = |labels: &HashMap<String, String>| {
        labels.get(crate::layout::LABEL_POD_UID).is_some_and(|uid| workers.get(uid).is_some_and(|tx| !tx.is_closed()))
    };
    if let Ok(containers) = runtime.list_containers().await {
        for c in containers.iter().filter(|c| !known(&c.labels)) {
            let _ = runtime.stop_container(&c.id, 0).await;
            let _ = runtime.remove_container(&c.id).await;
        }
    }
    if let Ok(sandboxes) = runtime.list_pod_sandboxes().await {
        for s in sandboxes.iter().filter(|s| !known(&s.labels)) {
            let _ = runtime.stop_pod_sandbox(&s.id).await;
            let _ = runtime.remove_pod_sandbox(&s.id).await;
        }
    }
}

/// Creates the Node, or takes over an existing one of the same name; returns its UID.
async fn register(client: &Client, id: &Identity, machine: &Machine) -> Result<Option<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let object: Node = serde_json::from_value(node::registration(id, machine))?;
    let created = match nodes.create(&PostParams::default(), &object).await {
        Ok(n) => n,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            // Re-registration: labels and the pod CIDR are brought up to date.
            let patch = json!({ "metadata": { "labels": object.metadata.labels } });
            nodes.patch(&id.name, &PatchParams::default(), &Patch::Merge(patch)).await?
        }
        Err(e) => return Err(e).context("cannot register the node"),
    };
    Ok(created.metadata.uid)
}

#[allow(clippy::too_many_arguments)]
async fn heartbeats(
    client: Client,
    id: Identity,
    machine: Machine,
    runtime: Arc<dyn Runtime>,
    runtime_version: String,
    node_uid: Option<String>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let mut previous: Option<serde_json::Value> = None;
    loop {
        let now = Utc::now();
        let ready = runtime.version().await.map(|_| ()).map_err(|e| e.to_string());
        let images = runtime.list_images().await.map(|l| node::images(&l)).unwrap_or_else(|_| json!([]));
        let status = node::status(&id, &machine, &runtime_version, images, previous.as_ref(), now, ready);
        match nodes
            .patch_status(&id.name, &PatchParams::default(), &Patch::Merge(json!({ "status": status.clone() })))
            .await
        {
            Ok(_) => previous = Some(status),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let machine = machine.clone();
                if let Err(e) = register(&client, &id, &machine).await {
                    tracing::warn!("cannot re-register node {}: {e:#}", id.name);
                }
            }
            Err(e) => tracing::warn!("node status not written: {e}"),
        }
        let lease: Lease = match serde_json::from_value(node::lease(&id.name, node_uid.as_deref(), now, 40)) {
            Ok(l) => l,
            Err(_) => continue,
        };
        let renewed =
            leases.patch(&id.name, &PatchParams::default(), &Patch::Merge(json!({ "spec": lease.spec }))).await;
        if let Err(kube::Error::Api(s)) = &renewed
            && s.code == 404
        {
            let _ = leases.create(&PostParams::default(), &lease).await;
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
