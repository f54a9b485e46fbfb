//! `rudder`: a Kubernetes-compatible container orchestrator in one binary.
//!
//! `rudder server` runs the control plane (today: the API server over the embedded store).

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// mimalloc instead of the system allocator: the API server's request and watch paths make
/// many short-lived allocations from many threads, where glibc's malloc spent a fifth of the
/// server's CPU and kept freed memory fragmented across per-thread arenas. It is built without
/// asking for transparent huge pages (`no_thp`): memory it returns and takes back is then
/// zeroed by the kernel 4 KiB at a time rather than 2 MiB, which cost a tenth of the server's
/// CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "rudder", version, about = "A Kubernetes-compatible container orchestrator in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the control plane (the Kubernetes API over durable storage, scheduler, controller
    /// manager) and, unless --disable-agent, a node agent running pods in real containers.
    Server(ServerArgs),
    /// Runs a node agent that joins an existing server: registers this machine as a node and
    /// runs its pods in real containers.
    Agent(AgentArgs),
    /// Images on this node: build the project's own busybox and pause images, import tarballs.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Loads an OCI-layout or docker-archive tarball into the node's containerd (offline).
    Import {
        /// The tarball(s) to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Data dir of the server whose node gets the images [default: as for `server`].
        #[arg(long, env = "RUDDER_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// CRI/containerd socket to import into instead of the node's managed containerd.
        #[arg(long)]
        address: Option<PathBuf>,
    },
    /// Writes an image built from this machine's busybox-static as an OCI-layout tarball:
    /// `busybox` (docker.io/library/busybox:latest) or `pause` (the sandbox image).
    Build {
        /// `busybox` or `pause`.
        which: String,
        /// Where to write the tarball.
        #[arg(long, short)]
        output: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Directory for state, certificates and the admin kubeconfig
    /// [default: /var/lib/rudder as root, else $XDG_DATA_HOME/rudder]
    #[arg(long, env = "RUDDER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to serve the API on (0.0.0.0: every address of the machine, so pods and other
    /// machines reach it).
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// Address pods and agents reach the API at (the `kubernetes` Service's endpoint)
    /// [default: the bind address, or the node address when listening everywhere].
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// HTTPS port of the API; 0 picks a free port.
    #[arg(long, default_value_t = 6443)]
    https_port: u16,
    /// Runs the control plane only, without a node agent on this machine.
    #[arg(long)]
    disable_agent: bool,
    /// External datastore (etcd endpoints); the embedded store is used when absent.
    #[arg(long)]
    datastore_endpoint: Option<String>,
    /// Seconds between compactions of old revisions in the store.
    #[arg(long, default_value_t = 60)]
    compaction_interval_seconds: u64,
    /// Runs without the scheduler.
    #[arg(long)]
    disable_scheduler: bool,
    /// Runs without the controller manager.
    #[arg(long)]
    disable_controller_manager: bool,
    /// Registers this many simulated nodes, which run pods without containers.
    #[arg(long, default_value_t = 0)]
    simulate_nodes: usize,
    /// Seconds between a simulated node's Lease renewals and status checks.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    simulate_node_heartbeat_seconds: u64,
    /// Seconds a node may go without a Lease renewal or status heartbeat before it is marked
    /// Unknown and tainted unreachable (upstream's --node-monitor-grace-period, 50 s since 1.32).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    node_monitor_grace_period_seconds: u64,
    /// Nodes per second and zone that may get a NoExecute taint (and so have their pods evicted)
    /// when they stop being ready (upstream's --node-eviction-rate).
    #[arg(long, default_value_t = 0.1)]
    node_eviction_rate: f64,
    /// The same rate for a zone in partial disruption larger than --large-cluster-size-threshold
    /// (upstream's --secondary-node-eviction-rate).
    #[arg(long, default_value_t = 0.01)]
    secondary_node_eviction_rate: f64,
    /// Zones of at most this many nodes stop tainting while in partial disruption.
    #[arg(long, default_value_t = 50)]
    large_cluster_size_threshold: usize,
    /// Share of a zone's nodes (of more than two) not ready that puts it in partial disruption.
    #[arg(long, default_value_t = 0.55)]
    unhealthy_zone_threshold: f64,
    /// Terminated pods (Succeeded or Failed) kept before the oldest are deleted; 0 keeps them all
    /// (upstream's --terminated-pod-gc-threshold).
    #[arg(long, default_value_t = 12500)]
    terminated_pod_gc_threshold: usize,
    /// The cluster's pod network; each node gets a /24 of it for its pods.
    #[arg(long, default_value = rudder_controllers::nodeipam::DEFAULT_CLUSTER_CIDR)]
    cluster_cidr: String,
    #[command(flatten)]
    node: NodeArgs,
}

/// How this machine's node agent runs (`rudder server` unless --disable-agent, `rudder agent`).
#[derive(clap::Args, Clone)]
struct NodeArgs {
    /// Name of this machine's node [default: the hostname].
    #[arg(long)]
    node_name: Option<String>,
    /// Address of this machine's node (InternalIP) [default: the address of the default route's
    /// interface].
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Pod CIDR of this machine's node [default: a block of the cluster CIDR that the server's
    /// node IPAM controller gives the node].
    #[arg(long)]
    pod_cidr: Option<String>,
    /// Port of the node agent's HTTPS API (logs, exec, port-forward); 0 picks a free port.
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// CRI socket of a container runtime to use instead of the containerd Rudder manages.
    #[arg(long)]
    container_runtime_endpoint: Option<PathBuf>,
    /// Cgroup (cgroupfs path) under which pods' cgroups are created.
    #[arg(long, default_value = "/kubepods")]
    cgroup_root: String,
    /// Extra labels of the node, `key=value` (repeatable).
    #[arg(long = "node-label")]
    node_labels: Vec<String>,
}

#[derive(clap::Args)]
struct AgentArgs {
    /// URL of the API server to join, e.g. https://192.0.2.10:6443.
    #[arg(long, env = "RUDDER_SERVER")]
    server: String,
    /// Join token: the contents of the server's `<data-dir>/agent-token`.
    #[arg(long, env = "RUDDER_TOKEN", conflicts_with = "token_file")]
    token: Option<String>,
    /// File holding the join token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Directory for the agent's state (credentials, containerd, pods, logs)
    /// [default: /var/lib/rudder as root, else $XDG_DATA_HOME/rudder].
    #[arg(long, env = "RUDDER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
}

/// A client of this server for its own components, authenticated with the admin kubeconfig.
async fn local_client(kubeconfig: &std::path::Path) -> Result<kube::Client> {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).context("cannot read the admin kubeconfig")?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .context("cannot use the admin kubeconfig")?;
    kube::Client::try_from(config).context("cannot build the API client")
}

/// Starts the scheduler, controller manager and simulated nodes as asked; each runs until
/// `shutdown` turns true. They are API clients of this server through its in-process transport
/// (the same request path, without TLS and sockets); the node agent, proxy and DNS use the
/// admin kubeconfig over HTTPS, as on any other node.
async fn start_components(
    args: &ServerArgs,
    running: &rudder_apiserver::Running,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let kubeconfig = running.kubeconfig.as_path();
    let client = kube::Client::new(running.local_service(), "default");
    let report = |name: &'static str| {
        move |r: anyhow::Result<()>| {
            if let Err(e) = r {
                tracing::error!("{name} stopped: {e:#}");
            }
        }
    };
    // One pod, node and Service watch for the controllers, the scheduler and the simulated
    // nodes together, kept whether or not this server leads.
    let control_loops = !args.disable_controller_manager || !args.disable_scheduler || args.simulate_nodes > 0;
    let shared = control_loops.then(|| rudder_controllers::informers::Informers::start(&client));
    if !args.disable_controller_manager {
        let (c, s) = (client.clone(), shutdown.clone());
        // The kubeconfig sits in the data dir, beside `tls/` with the cluster CA.
        let ca = kubeconfig.parent().map(|dir| dir.join("tls").join("ca.crt"));
        let tls = kubeconfig.parent().map(|dir| dir.join("tls"));
        let signing_ca = tls.and_then(|t| {
            Some((std::fs::read_to_string(t.join("ca.crt")).ok()?, std::fs::read_to_string(t.join("ca.key")).ok()?))
        });
        let options = rudder_controllers::Options {
            signing_ca,
            root_ca_pem: ca.and_then(|p| std::fs::read_to_string(p).ok()),
            node_monitor_grace_period: Some(Duration::from_secs(args.node_monitor_grace_period_seconds)),
            cluster_cidr: Some(args.cluster_cidr.clone()),
            terminated_pod_gc_threshold: Some(args.terminated_pod_gc_threshold),
            eviction: eviction_rates(args),
        };
        let informers = shared.clone().expect("started for the controller manager");
        tasks.push(tokio::spawn(async move {
            report("controller manager")(rudder_controllers::run(c, options, informers, s).await)
        }));
    }
    if !args.disable_scheduler {
        let (c, s) = (client.clone(), shutdown.clone());
        let informers = shared.clone().expect("started for the scheduler");
        tasks.push(tokio::spawn(async move { report("scheduler")(rudder_scheduler::run(c, informers, s).await) }));
    }
    if args.simulate_nodes > 0 {
        let (c, s) = (client.clone(), shutdown.clone());
        let options = rudder_nodesim::Options {
            heartbeat_interval: Duration::from_secs(args.simulate_node_heartbeat_seconds),
            shared: shared.clone(),
            ..rudder_nodesim::Options::new(args.simulate_nodes)
        };
        tasks.push(tokio::spawn(async move { report("simulated nodes")(rudder_nodesim::run(c, options, s).await) }));
    }
    if !args.disable_agent {
        let client = local_client(kubeconfig).await?;
        let data_dir = kubeconfig.parent().map(PathBuf::from).unwrap_or_default();
        let options = agent_options(args, &data_dir)?;
        tasks.extend(node_network(&client, &options.node_name, options.node_ip, true, shutdown));
        let (c, s) = (client.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move { report("node agent")(rudder_kubelet::agent::run(c, options, s).await) }));
    }
    Ok(tasks)
}

/// Node name and address as given or found on this machine.
fn eviction_rates(args: &ServerArgs) -> rudder_controllers::nodelifecycle::EvictionRates {
    rudder_controllers::nodelifecycle::EvictionRates {
        rate: args.node_eviction_rate,
        secondary_rate: args.secondary_node_eviction_rate,
        large_cluster_threshold: args.large_cluster_size_threshold,
        unhealthy_zone_threshold: args.unhealthy_zone_threshold,
    }
}

fn node_identity(args: &NodeArgs) -> (String, IpAddr) {
    let name = args.node_name.clone().unwrap_or_else(rudder_kubelet::node::hostname);
    let ip =
        args.node_ip.or_else(rudder_kubelet::node::default_ip).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    (name, ip)
}

/// Kubelet options from the node flags; TLS is filled in by the caller.
fn node_options(args: &NodeArgs, data_dir: &std::path::Path) -> Result<rudder_kubelet::agent::Options> {
    let (name, ip) = node_identity(args);
    let mut options = rudder_kubelet::agent::Options::new(name, ip, data_dir.join("agent"));
    options.pod_cidr = args.pod_cidr.as_deref().map(str::parse).transpose().context("--pod-cidr")?;
    options.listen = std::net::SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), args.kubelet_port);
    options.runtime_endpoint = args.container_runtime_endpoint.clone();
    options.cgroup_root = args.cgroup_root.clone();
    for label in &args.node_labels {
        let (k, v) = label.split_once('=').with_context(|| format!("--node-label {label:?} is not key=value"))?;
        options.labels.push((k.to_string(), v.to_string()));
    }
    Ok(options)
}

/// The serving certificate's names and addresses.
fn serving_hosts(name: &str, ip: IpAddr) -> Vec<String> {
    let mut hosts = vec![name.to_string(), "localhost".to_string(), ip.to_string(), "127.0.0.1".to_string()];
    hosts.dedup();
    hosts
}

/// The node agent of `rudder server` for this machine: its serving certificate comes straight
/// from the cluster CA in the data dir.
fn agent_options(args: &ServerArgs, data_dir: &std::path::Path) -> Result<rudder_kubelet::agent::Options> {
    let mut options = node_options(&args.node, data_dir)?;
    if args.disable_controller_manager && options.pod_cidr.is_none() {
        // Nobody hands out blocks: the node takes the cluster CIDR's first one.
        let mut pool = rudder_controllers::nodeipam::Allocator::new(
            &args.cluster_cidr,
            rudder_controllers::nodeipam::DEFAULT_NODE_MASK_SIZE,
        )
        .context("--cluster-cidr")?;
        options.pod_cidr = pool.allocate().map(|c| c.parse()).transpose()?;
    }
    let hosts = serving_hosts(&options.node_name, options.node_ip);
    let serving = rudder_apiserver::pki::kubelet_serving_cert(data_dir, &options.node_name, &hosts)
        .context("cannot issue the node agent's serving certificate")?;
    options.server_tls = Some(rudder_kubelet::server::ServerTls {
        cert_pem: serving.cert_pem,
        key_pem: serving.key_pem,
        client_ca_pem: serving.ca_pem,
    });
    Ok(options)
}

/// Makes sure the join token's bootstrap Secret exists (agents authenticate with it).
async fn publish_join_token(client: &kube::Client, token: &rudder_apiserver::pki::JoinToken) -> Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), "kube-system");
    let name = format!("bootstrap-token-{}", token.id);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "namespace": "kube-system" },
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {
            "token-id": token.id,
            "token-secret": token.secret,
            "description": "Join token of rudder agents (the server's agent-token file).",
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:rudder:default-node-token",
        },
    }))?;
    match secrets.create(&kube::api::PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            secrets.replace(&name, &kube::api::PostParams::default(), &secret).await.map(|_| ()).or_else(
                |e| match e {
                    kube::Error::Api(s) if s.code == 409 => Ok(()),
                    e => Err(e),
                },
            )?;
            Ok(())
        }
        Err(e) => Err(e).context("cannot publish the join token"),
    }
}

/// `rudder agent`: joins the server and runs the node agent until SIGTERM/SIGINT.
async fn agent(args: AgentArgs) -> Result<()> {
    let mut signals = Signals::install();
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
        (None, None) => anyhow::bail!(
            "give the join token with --token or --token-file (it is in the server's <data-dir>/agent-token)"
        ),
    };
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let mut options = node_options(&args.node, &data_dir)?;
    let hosts = serving_hosts(&options.node_name, options.node_ip);
    println!("rudder agent: joining {} as node {}", args.server, options.node_name);
    let joined = rudder_kubelet::bootstrap::join(&args.server, &token, &options.dir, &options.node_name, &hosts)
        .await
        .context("cannot join the cluster")?;
    options.server_tls = Some(joined.tls);
    println!("rudder agent: joined; node credentials in {}", joined.kubeconfig.display());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let network = node_network(&joined.client, &options.node_name, options.node_ip, false, &stopped);
    let mut task = tokio::spawn(rudder_kubelet::agent::run(joined.client, options, stopped));
    let outcome = tokio::select! {
        _ = signals.wait() => {
            println!("rudder agent is shutting down");
            let _ = stop.send(true);
            match tokio::time::timeout(Duration::from_secs(10), &mut task).await {
                Ok(Ok(r)) => r,
                _ => Ok(()),
            }
        }
        result = &mut task => {
            let _ = stop.send(true);
            result.context("the node agent stopped").and_then(|r| r)
        }
    };
    for t in network {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    outcome?;
    println!("rudder agent stopped");
    Ok(())
}

/// The service proxy and the cluster DNS of a node. DNS answers on the cluster DNS address,
/// put on a local link of the node (one server per host: a second node on the same host finds
/// the address taken and leaves DNS to the first).
fn node_network(
    client: &kube::Client,
    node: &str,
    node_ip: IpAddr,
    load_balancer: bool,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let mut proxy = rudder_proxy::Options::new(node.to_string(), vec![node_ip]);
    proxy.load_balancer = load_balancer;
    let (c, s) = (client.clone(), shutdown.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = rudder_proxy::run(c, proxy, s).await {
            tracing::error!("service proxy stopped: {e:#}");
        }
    }));
    let (c, mut s) = (client.clone(), shutdown.clone());
    let link = rudder_dns::link::link_name_for(node);
    tasks.push(tokio::spawn(async move {
        let ip = IpAddr::V4(rudder_dns::CLUSTER_DNS_IP);
        if let Err(e) = rudder_dns::link::ensure_local_address(&link, ip) {
            tracing::error!("cluster DNS not served on this node: cannot add {ip} to {link}: {e:#}");
            return;
        }
        match rudder_dns::run(c, rudder_dns::Options::default(), s.clone()).await {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!("cluster DNS not served by this node ({e:#}); another node on this host may serve it");
                loop {
                    let stopping = *s.borrow();
                    if stopping || s.changed().await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = rudder_dns::link::remove_local_address(&link, ip);
    }));
    tasks
}

/// The `kube-dns` Service: the cluster DNS address for clients that look it up. The node-local
/// DNS serves it on every node, so the service proxy leaves it alone (upstream's
/// `service-proxy-name` label says another proxy handles it).
async fn publish_dns_service(client: &kube::Client) -> Result<()> {
    use k8s_openapi::api::core::v1::Service;
    let services: kube::Api<Service> = kube::Api::namespaced(client.clone(), "kube-system");
    let service: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kube-dns",
            "namespace": "kube-system",
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/name": "Rudder-DNS",
                "service.kubernetes.io/service-proxy-name": "rudder-node-local-dns",
            },
        },
        "spec": {
            "clusterIP": rudder_dns::CLUSTER_DNS_IP.to_string(),
            "ports": [
                { "name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53 },
                { "name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53 },
            ],
        },
    }))?;
    // On a restart the Service is already there; creating it again would fail on its address
    // (allocation comes before the name check, as upstream) rather than on its name.
    if services.get_opt("kube-dns").await.context("cannot read the kube-dns Service")?.is_some() {
        return Ok(());
    }
    match services.create(&kube::api::PostParams::default(), &service).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e).context("cannot create the kube-dns Service"),
    }
}

/// `rudder image ...`
async fn image(command: ImageCommand) -> Result<()> {
    match command {
        ImageCommand::Build { which, output } => {
            let bytes = match which.as_str() {
                "busybox" => rudder_kubelet::image::busybox_image()?,
                "pause" => rudder_kubelet::image::pause_image()?,
                other => anyhow::bail!("unknown image {other:?}: choose busybox or pause"),
            };
            std::fs::write(&output, bytes).with_context(|| format!("cannot write {}", output.display()))?;
            println!("wrote {}", output.display());
            Ok(())
        }
        ImageCommand::Import { files, data_dir, address } => {
            let socket = address.unwrap_or_else(|| {
                data_dir.unwrap_or_else(default_data_dir).join("agent").join("containerd").join("containerd.sock")
            });
            if !socket.exists() {
                anyhow::bail!(
                    "no containerd socket at {}: start `rudder server` first (its node agent runs containerd), \
                     or pass --address with a containerd socket",
                    socket.display()
                );
            }
            for file in files {
                let names = rudder_kubelet::image::import(&socket, "k8s.io", &file)
                    .await
                    .with_context(|| format!("cannot import {}", file.display()))?;
                for n in names {
                    println!("imported {n}");
                }
            }
            Ok(())
        }
    }
}

fn default_data_dir() -> PathBuf {
    // Only root gets the system-wide directory; others get their own.
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/rudder");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("rudder");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local").join("share").join("rudder")
}

/// SIGTERM and SIGINT, caught from the moment this is made (a signal that arrives before
/// anyone waits is kept, not fatal).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            term: signal(SignalKind::terminate()).expect("SIGTERM handler installs"),
            int: signal(SignalKind::interrupt()).expect("SIGINT handler installs"),
        }
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}

async fn server(args: ServerArgs) -> Result<()> {
    let started = std::time::Instant::now();
    // Caught before "ready" is printed: whoever reads that line may stop the server at once.
    let mut signals = Signals::install();
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    rudder_controllers::nodeipam::Allocator::new(
        &args.cluster_cidr,
        rudder_controllers::nodeipam::DEFAULT_NODE_MASK_SIZE,
    )
    .context("--cluster-cidr")?;
    eviction_rates(&args)
        .check()
        .map_err(anyhow::Error::msg)
        .context("check --node-eviction-rate, --secondary-node-eviction-rate and --unhealthy-zone-threshold")?;
    let mut config = rudder_apiserver::Config::new(data_dir.clone());
    config.bind_address = args.bind_address;
    config.advertise_address = Some(args.advertise_address.unwrap_or_else(|| {
        if args.bind_address.is_unspecified() { node_identity(&args.node).1 } else { args.bind_address }
    }));
    config.https_port = args.https_port;
    config.datastore_endpoint = args.datastore_endpoint.clone();
    config.compaction_interval = Duration::from_secs(args.compaction_interval_seconds.max(1));
    let running = rudder_apiserver::start(config).await.context("rudder server could not start")?;
    let took = started.elapsed();
    // The join token's Secret and the kube-dns Service exist before the server says it is
    // ready, so nothing writes behind a client that starts then.
    let join = rudder_apiserver::pki::join_token(&data_dir).context("cannot make the agents' join token")?;
    let published = match local_client(&running.kubeconfig).await {
        Ok(client) => match publish_join_token(&client, &join).await {
            Ok(()) => publish_dns_service(&client).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if let Err(e) = published {
        tracing::error!("agents cannot join and pods have no kube-dns Service: {e:#}");
    }
    let kubeconfig = running.kubeconfig.display().to_string();
    println!("rudder server is ready at https://{} (started in {} ms)", running.local, took.as_millis());
    println!("  data dir:   {}", data_dir.display());
    println!("  kubeconfig: {kubeconfig}");
    println!("  try:        KUBECONFIG={kubeconfig} kubectl get namespaces");
    if args.simulate_nodes > 0 {
        println!("  nodes:      {} simulated", args.simulate_nodes);
    } else if !args.disable_agent {
        println!("  node agent: starting (containerd, pods); see `kubectl get nodes`");
    }
    println!(
        "  join:       rudder agent --server https://{} --token-file {}",
        running.advertise,
        data_dir.join(rudder_apiserver::pki::JOIN_TOKEN_FILE).display()
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let components = start_components(&args, &running, &stopped).await?;
    signals.wait().await;
    println!("rudder server is shutting down");
    let _ = stop.send(true);
    for task in components {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    running.shutdown().await;
    println!("rudder server stopped");
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RUDDER_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server(args)),
        Command::Image(command) => runtime.block_on(image(command)),
        Command::Agent(args) => runtime.block_on(agent(args)),
    }
}
