//! `rudder-bench`: measures `rudder server` side by side with etcd 3.4 in one run and reports
//! ratios. Scenarios: durable creates at several concurrencies, LIST of many pods, watch
//! fan-out latency, and cold start with idle memory; then, on simulated nodes, scheduler
//! throughput, Deployment rollout latency and the cost of many heartbeating nodes; and, with
//! the node agent, pods in real containers (start latency, memory, cold start). See
//! BENCHMARKS.md at the repo root.

mod control;
mod creates;
mod dns;
mod list;
mod net;
mod pods;
mod procs;
mod proxy;
mod report;
mod servers;
mod startup;
mod stats;
mod watch;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use net::Proto;
use servers::{Etcd, Rudder};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Clone, Debug)]
#[command(name = "rudder-bench", about = "Benchmarks rudder server against etcd 3.4, side by side")]
pub struct Cli {
    #[command(subcommand)]
    what: What,
    /// Seconds each create point is measured for (after the warm-up).
    #[arg(long, global = true, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of warm-up before each create point.
    #[arg(long, global = true, default_value_t = 1.0)]
    warmup: f64,
    /// Rounds of the create sweep (rudder and etcd alternate point by point; the median counts).
    #[arg(long, global = true, default_value_t = 3)]
    rounds: usize,
    /// Concurrent clients of the create points.
    #[arg(long, global = true, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Which HTTP version(s) the API clients of the create scenario use.
    #[arg(long, global = true, value_enum, default_value_t = ProtoChoice::Both)]
    create_http: ProtoChoice,
    /// Pods created for the LIST and watch scenarios.
    #[arg(long, global = true, default_value_t = 10_000)]
    pods: usize,
    /// Timed runs of each list (the median is reported).
    #[arg(long, global = true, default_value_t = 7)]
    list_runs: usize,
    /// Watchers in the fan-out scenario.
    #[arg(long, global = true, default_value_t = 100)]
    watchers: usize,
    /// Pod updates written while the watchers watch.
    #[arg(long, global = true, default_value_t = 1000)]
    updates: usize,
    /// Concurrent writers of those updates.
    #[arg(long, global = true, default_value_t = 8)]
    writers: usize,
    /// Before each scenario and each round, wait up to this many seconds for other processes on
    /// the machine to go quiet (below 0.25 cores busy); 0 disables the wait.
    #[arg(long, global = true, default_value_t = 300)]
    quiet_wait: u64,
    /// Cold starts measured (the median is reported).
    #[arg(long, global = true, default_value_t = 5)]
    starts: usize,
    /// The rudder binary [default: `rudder` next to this harness, i.e. target/release/rudder].
    #[arg(long, global = true)]
    rudder: Option<PathBuf>,
    /// The etcd binary [default: `etcd` on PATH].
    #[arg(long, global = true)]
    etcd: Option<PathBuf>,
    /// Where to write the results section [default: BENCHMARKS.md at the repo root for `all`;
    /// other commands write only when this is given].
    #[arg(long, global = true)]
    output: Option<PathBuf>,
    /// Do not write any file.
    #[arg(long, global = true)]
    no_write: bool,
    /// Simulated nodes in the scheduler scenario.
    #[arg(long, global = true, default_value_t = 1000)]
    sched_nodes: usize,
    /// Pods created in the scheduler scenario.
    #[arg(long, global = true, default_value_t = 10_000)]
    sched_pods: usize,
    /// Concurrent clients creating the pods of the scheduler scenario.
    #[arg(long, global = true, default_value_t = 32)]
    sched_clients: usize,
    /// Replicas of the Deployment in the rollout scenario.
    #[arg(long, global = true, default_value_t = 1000)]
    rollout_replicas: usize,
    /// Simulated nodes in the rollout scenario.
    #[arg(long, global = true, default_value_t = 100)]
    rollout_nodes: usize,
    /// Simulated nodes in the nodes scenario (at most 7168, the node simulation's limit).
    #[arg(long, global = true, default_value_t = 5000)]
    sim_nodes: usize,
    /// Seconds the nodes scenario measures CPU for, once all nodes are Ready.
    #[arg(long, global = true, default_value_t = 60.0)]
    nodes_seconds: f64,
    /// Pods created at once in each start-latency batch of the pods scenario.
    #[arg(long, global = true, default_value_t = 50)]
    node_pods: usize,
    /// Pods running while the pods scenario reads the node's memory.
    #[arg(long, global = true, default_value_t = 10)]
    mem_pods: usize,
    /// Restarts (images present) the pods scenario measures to the first pod Running.
    #[arg(long, global = true, default_value_t = 3)]
    node_starts: usize,
    /// Services in the synthetic index of the dns scenario.
    #[arg(long, global = true, default_value_t = 1000)]
    dns_services: usize,
    /// Concurrent UDP clients of the dns scenario.
    #[arg(long, global = true, default_value_t = 16)]
    dns_clients: usize,
    /// Seconds the dns scenario measures for.
    #[arg(long, global = true, default_value_t = 10.0)]
    dns_seconds: f64,
    /// Services in the proxy scenario.
    #[arg(long, global = true, default_value_t = 1000)]
    proxy_services: usize,
    /// Ready endpoints per Service in the proxy scenario.
    #[arg(long, global = true, default_value_t = 10)]
    proxy_endpoints: usize,
    /// Full syncs of each kind the proxy scenario measures (the median counts).
    #[arg(long, global = true, default_value_t = 5)]
    proxy_full_runs: usize,
    /// One-endpoint changes the proxy scenario measures.
    #[arg(long, global = true, default_value_t = 50)]
    proxy_changes: usize,
}

#[derive(Subcommand, Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    /// Every scenario, then the report (written into BENCHMARKS.md).
    All,
    /// Scenario 1: durable creates per second.
    Creates,
    /// The API server's store alone, in process (where create time goes).
    Store,
    /// Scenario 2: LIST of many pods.
    List,
    /// Scenario 3: watch fan-out latency.
    Watch,
    /// Scenario 4: cold start and idle memory.
    Startup,
    /// Scenario 5: scheduler throughput on simulated nodes.
    Scheduler,
    /// Scenario 6: Deployment rollout, pod creation to Running, on simulated nodes.
    Rollout,
    /// Scenario 7: server CPU and memory with many simulated nodes heartbeating.
    Nodes,
    /// Scenario 8: pods in real containers through the node agent (root, containerd, runc, CNI).
    Pods,
    /// Scenario 9: the cluster DNS server in process, queries/s and latency (no API server).
    Dns,
    /// Scenario 10: the service proxy's full and one-endpoint syncs into nftables (root, nft).
    Proxy,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ProtoChoice {
    H2,
    H1,
    Both,
}

impl ProtoChoice {
    fn protos(self) -> Vec<Proto> {
        match self {
            ProtoChoice::H2 => vec![Proto::H2],
            ProtoChoice::H1 => vec![Proto::H1],
            ProtoChoice::Both => vec![Proto::H2, Proto::H1],
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn default_rudder() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let p = dir.join("rudder");
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("release").join("rudder")
}

/// Memory of a server after a scenario: (VmRSS, VmHWM) in KiB.
pub type Mem = Option<(u64, u64)>;

#[derive(Default)]
pub struct Results {
    pub creates: Vec<creates::Point>,
    pub creates_mem: [Mem; 2],
    pub store: Vec<creates::Point>,
    pub list: Option<list::Outcome>,
    pub list_mem: [Mem; 2],
    pub watch: Option<watch::Outcome>,
    pub rudder_starts: Vec<startup::Start>,
    pub etcd_starts: Vec<startup::Start>,
    pub sched: Option<control::SchedOutcome>,
    pub rollout: Option<control::RolloutOutcome>,
    pub nodes: Option<control::NodesOutcome>,
    pub pods: Option<pods::Outcome>,
    pub dns: Option<dns::Outcome>,
    pub proxy: Option<proxy::Outcome>,
    pub failures: Vec<String>,
    /// Wall time of the whole run, and the cores' worth of CPU that other processes used meanwhile.
    pub run_secs: f64,
    pub other_cpu: f64,
}

impl Results {
    /// Whether any of scenarios 1–4 ran.
    fn has_data_plane(&self) -> bool {
        !self.creates.is_empty()
            || !self.store.is_empty()
            || self.list.is_some()
            || self.watch.is_some()
            || !self.rudder_starts.is_empty()
            || !self.etcd_starts.is_empty()
    }
}

async fn quiet(cli: &Cli) {
    if cli.quiet_wait > 0 {
        procs::wait_quiet(Duration::from_secs(cli.quiet_wait), 0.25).await;
    }
}

async fn scenario_creates(
    cli: &Cli,
    rudder_bin: &std::path::Path,
    etcd_bin: &std::path::Path,
    out: &mut Results,
) -> Result<()> {
    let rudder = Rudder::start(rudder_bin).await.context("starting rudder")?;
    let etcd = Etcd::start(etcd_bin).await.context("starting etcd")?;
    eprintln!("creates: rudder pid {}, etcd pid {}", rudder.proc.pid(), etcd.proc.pid());
    let (warmup, duration) = (secs(cli.warmup), secs(cli.duration));
    for round in 0..cli.rounds.max(1) {
        quiet(cli).await;
        for &n in &cli.clients {
            for proto in cli.create_http.protos() {
                let tag = format!("r{round}{}c{n}", if proto == Proto::H2 { "h2" } else { "h1" });
                let system = format!("rudder {}", proto.label());
                eprintln!("creates, round {}: {system}, {n} clients ...", round + 1);
                let p = creates::run_point(
                    &system,
                    &tag,
                    creates::Source::Api(rudder.target(proto)?),
                    Some(&rudder.proc),
                    n,
                    warmup,
                    duration,
                )
                .await?;
                eprintln!("  {:.0}/s", p.rate());
                out.creates.push(p);
            }
            eprintln!("creates, round {}: etcd, {n} clients ...", round + 1);
            let p = creates::run_point(
                "etcd",
                &format!("r{round}c{n}"),
                creates::Source::Etcd(&etcd),
                Some(&etcd.proc),
                n,
                warmup,
                duration,
            )
            .await?;
            eprintln!("  {:.0}/s", p.rate());
            out.creates.push(p);
        }
    }
    out.creates_mem = [rudder.proc.rss_kib().ok(), etcd.proc.rss_kib().ok()];
    Ok(())
}

/// The API server's store alone, in this process, with the same creates: how much of the API's
/// create cost is the store's.
async fn scenario_store(cli: &Cli, out: &mut Results) -> Result<()> {
    let (warmup, duration) = (secs(cli.warmup), secs(cli.duration));
    let dir = procs::Scratch::new("rudder-bench-store-")?;
    let embedded = rudder_store::open_embedded(&dir.path().join("state.db"), rudder_store::EngineConfig::default())
        .context("cannot open the embedded store")?;
    let memory = rudder_store::memory();
    for round in 0..cli.rounds.max(1) {
        quiet(cli).await;
        for &n in &cli.clients {
            for (label, store) in [("store, embedded (durable)", &embedded), ("store, memory", &memory)] {
                eprintln!("store, round {}: {label}, {n} clients ...", round + 1);
                let p = creates::run_point(
                    label,
                    &format!("r{round}s{n}"),
                    creates::Source::Store(store.clone()),
                    None,
                    n,
                    warmup,
                    duration,
                )
                .await?;
                eprintln!("  {:.0}/s", p.rate());
                out.store.push(p);
            }
        }
    }
    Ok(())
}

async fn scenario_list_watch(
    cli: &Cli,
    rudder_bin: &std::path::Path,
    etcd_bin: &std::path::Path,
    what: What,
    out: &mut Results,
) -> Result<()> {
    let rudder = Rudder::start(rudder_bin).await.context("starting rudder")?;
    let target = rudder.target(Proto::H2)?;
    eprintln!("list/watch: rudder pid {}", rudder.proc.pid());
    if what == What::Watch {
        eprintln!("watch: creating {} pods ...", cli.pods);
        list::create_pods(&target, cli.pods, 16).await?;
    } else {
        let etcd = Etcd::start(etcd_bin).await.context("starting etcd")?;
        eprintln!("list: creating {} pods, copying them to etcd, timing lists ...", cli.pods);
        let o = list::run(&target, &etcd, cli.pods, cli.list_runs, 16).await?;
        for r in &o.rows {
            eprintln!("  {}: {:.1} ms", r.what, stats::ms(r.median));
        }
        out.list = Some(o);
        out.list_mem = [rudder.proc.rss_kib().ok(), etcd.proc.rss_kib().ok()];
    }
    if what == What::List {
        return Ok(());
    }
    eprintln!("watch: {} watchers, {} updates by {} writers ...", cli.watchers, cli.updates, cli.writers);
    let w = watch::run(&target, &rudder.proc, cli.watchers, cli.updates, cli.writers, cli.pods).await;
    match w {
        Ok(w) => {
            eprintln!(
                "  p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                stats::ms(w.p50),
                stats::ms(w.p99),
                stats::ms(w.max)
            );
            out.watch = Some(w);
        }
        Err(e) => out.failures.push(format!("watch fan-out: {e:#}")),
    }
    Ok(())
}

async fn scenario_startup(
    cli: &Cli,
    rudder_bin: &std::path::Path,
    etcd_bin: &std::path::Path,
    out: &mut Results,
) -> Result<()> {
    quiet(cli).await;
    for i in 0..cli.starts {
        eprintln!("startup: rudder {}/{} ...", i + 1, cli.starts);
        out.rudder_starts.push(startup::rudder_once(rudder_bin).await?);
    }
    for i in 0..cli.starts {
        eprintln!("startup: etcd {}/{} ...", i + 1, cli.starts);
        out.etcd_starts.push(startup::etcd_once(etcd_bin).await?);
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<bool> {
    let rudder_bin = cli.rudder.clone().unwrap_or_else(default_rudder);
    // The dns scenario runs in process: it needs neither rudder nor etcd.
    if !matches!(cli.what, What::Dns | What::Proxy) {
        procs::require_file(
            &rudder_bin,
            "build it with `cargo build --release -p rudder-bench -p rudder` (or pass --rudder)",
        )?;
    }
    // The pods scenario alone has no etcd side.
    let etcd_bin = match (&cli.etcd, cli.what) {
        (Some(p), _) => p.clone(),
        (None, What::Pods | What::Dns | What::Proxy) => procs::which("etcd").unwrap_or_else(|| PathBuf::from("etcd")),
        (None, _) => procs::which("etcd")
            .context("etcd not found on PATH; install Debian's etcd-server (bench/run does) or pass --etcd")?,
    };
    if !matches!(cli.what, What::Pods | What::Dns | What::Proxy) {
        procs::require_file(&etcd_bin, "pass --etcd")?;
    }
    let etcd_version = procs::version_of(&etcd_bin);
    if !matches!(cli.what, What::Pods | What::Dns | What::Proxy) && !etcd_version.contains("3.4") {
        eprintln!("warning: the reference is meant to be etcd 3.4; found {etcd_version:?}");
    }

    let (run_start, busy_start, own_start) =
        (std::time::Instant::now(), procs::machine_busy(), procs::own_and_reaped_children_cpu_time());
    let load_before = report::load_average();
    let fsync_before = report::fsync_probe();
    let mut out = Results::default();
    let what = cli.what;
    let limit = Duration::from_secs(30 * 60);
    let all = what == What::All;
    if all || what == What::Creates {
        match tokio::time::timeout(limit, scenario_creates(&cli, &rudder_bin, &etcd_bin, &mut out)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => out.failures.push(format!("creates: {e:#}")),
            Err(_) => out.failures.push("creates: timed out".into()),
        }
    }
    if all || what == What::Store {
        match tokio::time::timeout(limit, scenario_store(&cli, &mut out)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => out.failures.push(format!("store: {e:#}")),
            Err(_) => out.failures.push("store: timed out".into()),
        }
    }
    if all || what == What::List || what == What::Watch {
        let w = if all { What::All } else { what };
        match tokio::time::timeout(limit, scenario_list_watch(&cli, &rudder_bin, &etcd_bin, w, &mut out)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => out.failures.push(format!("list/watch: {e:#}")),
            Err(_) => out.failures.push("list/watch: timed out".into()),
        }
    }
    if all || what == What::Startup {
        match tokio::time::timeout(limit, scenario_startup(&cli, &rudder_bin, &etcd_bin, &mut out)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => out.failures.push(format!("startup: {e:#}")),
            Err(_) => out.failures.push("startup: timed out".into()),
        }
    }

    if all || what == What::Scheduler {
        quiet(&cli).await;
        let f = control::scheduler(&rudder_bin, cli.sched_nodes, cli.sched_pods, cli.sched_clients);
        match tokio::time::timeout(limit, f).await {
            Ok(Ok(o)) => {
                eprintln!("  {:.0} pods/s bound, {:.0} pods/s created", o.rate(), o.create_rate());
                out.sched = Some(o);
            }
            Ok(Err(e)) => out.failures.push(format!("scheduler: {e:#}")),
            Err(_) => out.failures.push("scheduler: timed out".into()),
        }
    }
    if all || what == What::Rollout {
        quiet(&cli).await;
        let f = control::rollout(&rudder_bin, cli.rollout_nodes, cli.rollout_replicas);
        match tokio::time::timeout(limit, f).await {
            Ok(Ok(o)) => {
                eprintln!("  per pod p50 {:.0} ms, p99 {:.0} ms", stats::ms(o.pod_p50), stats::ms(o.pod_p99));
                out.rollout = Some(o);
            }
            Ok(Err(e)) => out.failures.push(format!("rollout: {e:#}")),
            Err(_) => out.failures.push("rollout: timed out".into()),
        }
    }
    if all || what == What::Nodes {
        quiet(&cli).await;
        if cli.sim_nodes > 7168 {
            eprintln!("warning: the node simulation takes at most 7168 nodes; asked for {}", cli.sim_nodes);
        }
        match tokio::time::timeout(limit, control::nodes(&rudder_bin, cli.sim_nodes, cli.nodes_seconds)).await {
            Ok(Ok(o)) => {
                eprintln!("  server + simulation {:.3} cores", o.cpu.server);
                out.nodes = Some(o);
            }
            Ok(Err(e)) => out.failures.push(format!("nodes: {e:#}")),
            Err(_) => out.failures.push("nodes: timed out".into()),
        }
    }
    if all || what == What::Pods {
        quiet(&cli).await;
        let params = pods::Params { pods: cli.node_pods, mem_pods: cli.mem_pods, starts: cli.node_starts };
        // The scenario bounds its own parts and always cleans up after them.
        match pods::run(&rudder_bin, params).await {
            Ok(Some(o)) => {
                out.failures.extend(o.errors.iter().map(|e| format!("pods: {e}")));
                out.pods = Some(o);
            }
            // Skipped on a machine without root or containerd: a failure only when asked for.
            Ok(None) if what == What::Pods => out.failures.push("pods: skipped (see above)".into()),
            Ok(None) => {}
            Err(e) => out.failures.push(format!("pods: {e:#}")),
        }
    }

    if all || what == What::Dns {
        quiet(&cli).await;
        eprintln!("dns: {} services, {} UDP clients, {} s ...", cli.dns_services, cli.dns_clients, cli.dns_seconds);
        match tokio::time::timeout(limit, dns::run(cli.dns_services, cli.dns_clients, cli.dns_seconds)).await {
            Ok(Ok(o)) => {
                let (qps, p99) = (o.qps(), stats::ms(o.p99));
                eprintln!("  {qps:.0} queries/s, p99 {p99:.3} ms, server {:.2} cores", o.server_cores);
                out.dns = Some(o);
            }
            Ok(Err(e)) => out.failures.push(format!("dns: {e:#}")),
            Err(_) => out.failures.push("dns: timed out".into()),
        }
    }
    if all || what == What::Proxy {
        quiet(&cli).await;
        let params = proxy::Params {
            services: cli.proxy_services,
            endpoints: cli.proxy_endpoints,
            full_runs: cli.proxy_full_runs,
            changes: cli.proxy_changes,
        };
        match tokio::task::spawn_blocking(move || proxy::run(params)).await {
            Ok(Ok(Some(o))) => out.proxy = Some(o),
            Ok(Ok(None)) if what == What::Proxy => out.failures.push("proxy: skipped (see above)".into()),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => out.failures.push(format!("proxy: {e:#}")),
            Err(e) => out.failures.push(format!("proxy: {e}")),
        }
    }

    out.run_secs = run_start.elapsed().as_secs_f64();
    let ours = procs::own_and_reaped_children_cpu_time().saturating_sub(own_start);
    out.other_cpu =
        procs::machine_busy().saturating_sub(busy_start).saturating_sub(ours).as_secs_f64() / out.run_secs.max(1e-9);
    let facts = report::Facts::gather(&rudder_bin, &etcd_version, load_before, fsync_before);
    println!("{}", report::text(&cli, &facts, &out));
    let target = match (&cli.output, all, cli.no_write) {
        (_, _, true) => None,
        (Some(p), _, _) => Some(p.clone()),
        (None, true, _) => Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("BENCHMARKS.md")),
        (None, false, _) => None,
    };
    if let Some(path) = target {
        // The first results section holds scenarios 1–4; each control-plane scenario has its own
        // pair of markers, so running one of them rewrites only its own part.
        if out.has_data_plane() {
            report::write_markdown(&path, &report::markdown(&cli, &facts, &out))?;
        }
        for (key, section) in report::control_markdown(&facts, &out) {
            report::write_block(&path, key, &section)?;
        }
        eprintln!("results written to {}", path.display());
    }
    for f in &out.failures {
        eprintln!("FAILED: {f}");
    }
    Ok(out.failures.is_empty())
}

fn main() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        pods::emergency_cleanup();
        proxy::emergency_cleanup();
        procs::cleanup_all();
        std::process::exit(101);
    }));
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler installs");
        tokio::spawn(async move {
            tokio::select! {
                _ = hup.recv() => {},
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            eprintln!("interrupted: stopping the servers and removing temporary files");
            pods::emergency_cleanup();
            proxy::emergency_cleanup();
            procs::cleanup_all();
            std::process::exit(130);
        });
        match run(cli).await {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("error: {e:#}");
                2
            }
        }
    });
    drop(runtime);
    procs::cleanup_all();
    if code != 0 {
        std::process::exit(code);
    }
}
