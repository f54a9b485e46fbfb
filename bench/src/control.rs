//! Control-plane scenarios, on simulated nodes (`rudder server --simulate-nodes N`, which runs
//! the node simulation inside the server process):
//!
//! - `scheduler`: pods/s from the first create to the last pod bound, and the create rate alone;
//! - `rollout`: a Deployment's pods from creation to Running;
//! - `nodes`: CPU and memory of the server while many simulated nodes heartbeat.

use crate::Mem;
use crate::net::{Conn, Proto, Target, first_resource_version};
use crate::procs::{Proc, machine_busy, own_cpu_time};
use crate::servers::Rudder;
use crate::stats::quantile;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// CPU use over a window, in cores.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub secs: f64,
    pub server: f64,
    pub harness: f64,
    pub other: f64,
}

#[derive(Clone, Copy)]
struct Probe {
    at: Instant,
    server: Duration,
    own: Duration,
    machine: Duration,
}

fn probe(server: &Proc) -> Probe {
    Probe {
        at: Instant::now(),
        server: server.cpu_time().unwrap_or_default(),
        own: own_cpu_time(),
        machine: machine_busy(),
    }
}

fn window(a: Probe, b: Probe) -> Window {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let server = b.server.saturating_sub(a.server);
    let own = b.own.saturating_sub(a.own);
    let other = b.machine.saturating_sub(a.machine).saturating_sub(server).saturating_sub(own);
    Window {
        secs,
        server: server.as_secs_f64() / secs,
        harness: own.as_secs_f64() / secs,
        other: other.as_secs_f64() / secs,
    }
}

/// When a scenario ran and how busy the machine was around it.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub date: String,
    pub load_before: String,
    pub load_after: String,
}

impl RunInfo {
    fn begin() -> RunInfo {
        RunInfo {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            load_before: crate::report::load_average(),
            load_after: String::new(),
        }
    }
    fn end(&mut self) {
        self.load_after = crate::report::load_average();
    }
}

#[derive(Deserialize)]
struct NodeList {
    #[serde(default)]
    items: Vec<NodeItem>,
}

#[derive(Deserialize)]
struct NodeItem {
    #[serde(default)]
    status: NodeStatus,
}

#[derive(Deserialize, Default)]
struct NodeStatus {
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

/// Polls the node list (from the watch cache) until `n` nodes are Ready; returns how long it took.
async fn wait_nodes_ready(target: &Target, n: usize, limit: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut conn = Conn::open(target).await?;
    let period = if n > 2000 { Duration::from_secs(2) } else { Duration::from_millis(500) };
    let mut last = 0;
    loop {
        let body = conn.get_ok("/api/v1/nodes?resourceVersion=0").await?;
        let list: NodeList = serde_json::from_slice(&body).context("the node list is not JSON")?;
        let ready = list
            .items
            .iter()
            .filter(|i| i.status.conditions.iter().any(|c| c.kind == "Ready" && c.status == "True"))
            .count();
        if ready >= n {
            return Ok(started.elapsed());
        }
        if ready / 500 != last / 500 {
            eprintln!("  {ready}/{n} nodes Ready after {:.1} s", started.elapsed().as_secs_f64());
        }
        last = ready;
        if started.elapsed() > limit {
            bail!("only {ready} of {n} nodes were Ready after {limit:?}");
        }
        tokio::time::sleep(period).await;
    }
}

/// The store's current revision, read from a one-item list.
async fn revision(conn: &mut Conn) -> Result<u64> {
    let body = conn.get_ok("/api/v1/namespaces/default/configmaps?limit=1").await?;
    first_resource_version(&body).context("no resourceVersion in a list")
}

/// When the harness saw a pod appear, get a node and run.
#[derive(Clone, Debug, Default)]
pub struct PodTimes {
    pub added: Option<Instant>,
    pub bound: Option<Instant>,
    pub running: Option<Instant>,
    pub node: Option<String>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    object: PodObj,
}

#[derive(Deserialize, Default)]
struct PodObj {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: PodSpec,
    #[serde(default)]
    status: PodStatus,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize, Default)]
struct PodSpec {
    #[serde(rename = "nodeName", default)]
    node_name: Option<String>,
}

#[derive(Deserialize, Default)]
struct PodStatus {
    #[serde(default)]
    phase: Option<String>,
}

/// Counts seen by a pod watch: (pods seen, bound, Running).
type Progress = (usize, usize, usize);

struct Tracker {
    task: tokio::task::JoinHandle<Result<HashMap<String, PodTimes>>>,
    progress: tokio::sync::watch::Receiver<Progress>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// Watches pods from the current revision (`query` narrows the watch, e.g. a label selector)
/// and records when each one was first seen, first seen bound and first seen Running.
async fn track_pods(target: &Target, query: &str) -> Result<Tracker> {
    let mut conn = Conn::open(target).await?;
    let list = conn.get_ok(&format!("/api/v1/namespaces/default/pods?limit=1{query}")).await?;
    let rv = first_resource_version(&list).context("no resourceVersion in the pod list")?;
    let path = format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}{query}");
    let resp = conn.send(Method::GET, &path, None, Bytes::new()).await?;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        bail!("watch {path}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
    }
    let mut body = resp.into_body();
    let (progress_tx, progress) = tokio::sync::watch::channel((0, 0, 0));
    let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let _conn = conn;
        let mut pods: HashMap<String, PodTimes> = HashMap::new();
        let (mut bound, mut running) = (0, 0);
        let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
        loop {
            let frame = tokio::select! {
                f = body.frame() => match f {
                    None => break,
                    Some(f) => f.context("reading the pod watch")?,
                },
                _ = stop_rx.wait_for(|s| *s) => break,
            };
            let now = Instant::now();
            let Ok(data) = frame.into_data() else { continue };
            buf.extend_from_slice(&data);
            let mut start = 0;
            while let Some(nl) = buf[start..].iter().position(|&c| c == b'\n') {
                let line = &buf[start..start + nl];
                start += nl + 1;
                if line.starts_with(br#"{"type":"ERROR""#) {
                    bail!("the pod watch sent an error: {}", String::from_utf8_lossy(line));
                }
                if line.starts_with(br#"{"type":"BOOKMARK""#) {
                    continue;
                }
                let ev: Event = match serde_json::from_slice(line) {
                    Ok(ev) => ev,
                    Err(e) => bail!("cannot read a pod watch event: {e}"),
                };
                if ev.kind == "DELETED" {
                    continue;
                }
                let p = pods.entry(ev.object.metadata.name).or_default();
                p.added.get_or_insert(now);
                if p.bound.is_none()
                    && let Some(node) = ev.object.spec.node_name.filter(|n| !n.is_empty())
                {
                    p.bound = Some(now);
                    p.node = Some(node);
                    bound += 1;
                }
                if p.running.is_none() && ev.object.status.phase.as_deref() == Some("Running") {
                    p.running = Some(now);
                    running += 1;
                }
            }
            buf.drain(..start);
            let seen = pods.len();
            progress_tx.send_replace((seen, bound, running));
        }
        Ok(pods)
    });
    Ok(Tracker { task, progress, stop })
}

impl Tracker {
    /// Waits until `done(progress)` or `limit`; returns whether it got there.
    async fn wait(&mut self, limit: Duration, what: &str, done: impl Fn(Progress) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut told = Instant::now();
        loop {
            let p = *self.progress.borrow_and_update();
            if done(p) {
                return true;
            }
            if Instant::now() >= deadline || self.task.is_finished() {
                eprintln!("  gave up waiting for {what}: seen {}, bound {}, running {}", p.0, p.1, p.2);
                return false;
            }
            if told.elapsed() > Duration::from_secs(5) {
                eprintln!("  waiting for {what}: seen {}, bound {}, running {}", p.0, p.1, p.2);
                told = Instant::now();
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), self.progress.changed()).await;
        }
    }

    async fn finish(self) -> Result<HashMap<String, PodTimes>> {
        let _ = self.stop.send(true);
        self.task.await.context("the pod watch task failed")?
    }
}

/// Creates `n` objects with `clients` concurrent connections, each with one request in flight.
/// Returns (first request sent, last response received, per-request latencies sorted, errors
/// with the first message).
async fn create_many(
    target: &Target,
    path: &'static str,
    n: usize,
    clients: usize,
    body: impl Fn(usize) -> Bytes + Send + Sync + 'static,
) -> Result<(Instant, Instant, Vec<Duration>, usize, Option<String>)> {
    let body = Arc::new(body);
    let next = Arc::new(AtomicUsize::new(0));
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Conn::open(target).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for mut conn in conns {
        let (next, body) = (next.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut errors, mut first_error, mut last) = (0usize, None, Instant::now());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>((lat, errors, first_error, last));
                }
                let sent = Instant::now();
                let (status, resp) = conn.call(Method::POST, path, Some("application/json"), body(i)).await?;
                last = Instant::now();
                if status == StatusCode::CREATED {
                    lat.push(last - sent);
                } else {
                    errors += 1;
                    first_error.get_or_insert_with(|| {
                        format!("{status}: {}", String::from_utf8_lossy(&resp[..resp.len().min(200)]))
                    });
                }
            }
        }));
    }
    let (mut lat, mut errors, mut first_error, mut last) = (Vec::with_capacity(n), 0, None, started);
    for t in tasks {
        let (l, e, f, at) = t.await??;
        lat.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
        last = last.max(at);
    }
    lat.sort_unstable();
    Ok((started, last, lat, errors, first_error))
}

fn sorted_since(times: impl Iterator<Item = Duration>) -> Vec<Duration> {
    let mut v: Vec<Duration> = times.collect();
    v.sort_unstable();
    v
}

fn q(v: &[Duration], p: f64) -> Duration {
    quantile(v, p).unwrap_or_default()
}

/// Pods per node: (nodes used, fewest, most).
fn spread(pods: &HashMap<String, PodTimes>) -> (usize, usize, usize) {
    let mut per: HashMap<&str, usize> = HashMap::new();
    for p in pods.values() {
        if let Some(n) = &p.node {
            *per.entry(n.as_str()).or_default() += 1;
        }
    }
    (per.len(), per.values().copied().min().unwrap_or(0), per.values().copied().max().unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// scheduler

#[derive(Clone, Debug, Default)]
pub struct SchedOutcome {
    pub ctx: RunInfo,
    pub nodes: usize,
    pub pods: usize,
    pub clients: usize,
    pub nodes_ready: Duration,
    /// First create sent → last create acknowledged.
    pub create_time: Duration,
    pub create_p50: Duration,
    pub create_p99: Duration,
    pub create_errors: usize,
    pub create_first_error: Option<String>,
    /// First create sent → last pod seen bound.
    pub bind_time: Duration,
    pub bound: usize,
    /// Per pod: seen created → seen bound.
    pub bind_p50: Duration,
    pub bind_p99: Duration,
    /// Last create acknowledged → last pod seen bound.
    pub tail: Duration,
    /// First create sent → every pod seen Running (None if not within the wait).
    pub running_time: Option<Duration>,
    pub spread: (usize, usize, usize),
    pub cpu: Window,
    pub mem: Mem,
}

impl SchedOutcome {
    pub fn rate(&self) -> f64 {
        self.bound as f64 / self.bind_time.as_secs_f64().max(1e-9)
    }
    pub fn create_rate(&self) -> f64 {
        (self.pods - self.create_errors) as f64 / self.create_time.as_secs_f64().max(1e-9)
    }
}

fn sched_pod(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"sched-{i:05}","namespace":"default","labels":{{"app":"sched"}}}},"spec":{{"containers":[{{"name":"app","image":"registry.k8s.io/pause:3.10","resources":{{"requests":{{"cpu":"100m","memory":"64Mi"}}}}}}]}}}}"#
    ))
}

pub async fn scheduler(bin: &Path, nodes: usize, pods: usize, clients: usize) -> Result<SchedOutcome> {
    let mut ctx = RunInfo::begin();
    let n = nodes.to_string();
    let rudder = Rudder::start_with(
        bin,
        &["--disable-agent", "--simulate-nodes", &n, "--simulate-node-heartbeat-seconds", "10"],
    )
    .await?;
    eprintln!("scheduler: rudder pid {}, waiting for {nodes} nodes ...", rudder.proc.pid());
    let target = rudder.target(Proto::H1)?;
    let nodes_ready = wait_nodes_ready(&target, nodes, Duration::from_secs(600)).await?;
    eprintln!(
        "  {nodes} nodes Ready after {:.1} s; creating {pods} pods with {clients} clients ...",
        nodes_ready.as_secs_f64()
    );
    // Let the registration tail (first status reports) pass.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut tracker = track_pods(&target, "").await?;
    let p0 = probe(&rudder.proc);
    let (first, last, lat, create_errors, create_first_error) =
        create_many(&target, "/api/v1/namespaces/default/pods", pods, clients, sched_pod).await?;
    let created = pods - create_errors;
    eprintln!("  created {created} pods in {:.2} s", (last - first).as_secs_f64());
    tracker.wait(Duration::from_secs(300), "pods bound", |p| p.1 >= created).await;
    let p1 = probe(&rudder.proc);
    let all_running = tracker.wait(Duration::from_secs(120), "pods Running", |p| p.2 >= created).await;
    let mem = rudder.proc.rss_kib().ok();
    let map = tracker.finish().await?;
    ctx.end();
    let bound: Vec<&PodTimes> = map.values().filter(|p| p.bound.is_some()).collect();
    let last_bound = bound.iter().filter_map(|p| p.bound).max().unwrap_or(first);
    let bind_lat = sorted_since(bound.iter().filter_map(|p| Some(p.bound?.saturating_duration_since(p.added?))));
    let last_running = map.values().filter_map(|p| p.running).max();
    Ok(SchedOutcome {
        ctx,
        nodes,
        pods,
        clients,
        nodes_ready,
        create_time: last - first,
        create_p50: q(&lat, 0.5),
        create_p99: q(&lat, 0.99),
        create_errors,
        create_first_error,
        bind_time: last_bound.saturating_duration_since(first),
        bound: bound.len(),
        bind_p50: q(&bind_lat, 0.5),
        bind_p99: q(&bind_lat, 0.99),
        tail: last_bound.saturating_duration_since(last),
        running_time: if all_running { last_running.map(|t| t.saturating_duration_since(first)) } else { None },
        spread: spread(&map),
        cpu: window(p0, p1),
        mem,
    })
}

// ---------------------------------------------------------------------------------------------
// rollout

#[derive(Clone, Debug, Default)]
pub struct RolloutOutcome {
    pub ctx: RunInfo,
    pub nodes: usize,
    pub replicas: usize,
    pub nodes_ready: Duration,
    pub running: usize,
    /// Per pod: seen created → seen Running.
    pub pod_p50: Duration,
    pub pod_p99: Duration,
    pub pod_max: Duration,
    /// Per pod: Deployment create sent → pod seen Running.
    pub from_deploy_p50: Duration,
    pub from_deploy_p99: Duration,
    /// Deployment create sent → first pod seen, last pod seen.
    pub first_pod: Duration,
    pub last_pod: Duration,
    /// Deployment create sent → last pod seen Running.
    pub all_running: Duration,
    /// Last pod seen → last pod seen Running.
    pub after_last_created: Duration,
    pub spread: (usize, usize, usize),
    pub cpu: Window,
    pub mem: Mem,
}

fn deployment(replicas: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"rollout","namespace":"default","labels":{{"app":"rollout"}}}},"spec":{{"replicas":{replicas},"selector":{{"matchLabels":{{"app":"rollout"}}}},"template":{{"metadata":{{"labels":{{"app":"rollout"}}}},"spec":{{"containers":[{{"name":"app","image":"registry.k8s.io/pause:3.10","resources":{{"requests":{{"cpu":"10m","memory":"16Mi"}}}}}}]}}}}}}}}"#
    ))
}

pub async fn rollout(bin: &Path, nodes: usize, replicas: usize) -> Result<RolloutOutcome> {
    let mut ctx = RunInfo::begin();
    let n = nodes.to_string();
    let rudder = Rudder::start_with(
        bin,
        &["--disable-agent", "--simulate-nodes", &n, "--simulate-node-heartbeat-seconds", "10"],
    )
    .await?;
    eprintln!("rollout: rudder pid {}, waiting for {nodes} nodes ...", rudder.proc.pid());
    let target = rudder.target(Proto::H1)?;
    let nodes_ready = wait_nodes_ready(&target, nodes, Duration::from_secs(600)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut tracker = track_pods(&target, "&labelSelector=app%3Drollout").await?;
    let mut conn = Conn::open(&target).await?;
    eprintln!("  creating a Deployment of {replicas} replicas on {nodes} nodes ...");
    let p0 = probe(&rudder.proc);
    let t0 = Instant::now();
    let (status, body) = conn
        .call(
            Method::POST,
            "/apis/apps/v1/namespaces/default/deployments",
            Some("application/json"),
            deployment(replicas),
        )
        .await?;
    if status != StatusCode::CREATED {
        bail!("POST deployment: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
    }
    tracker.wait(Duration::from_secs(300), "pods Running", |p| p.2 >= replicas).await;
    let p1 = probe(&rudder.proc);
    let mem = rudder.proc.rss_kib().ok();
    let map = tracker.finish().await?;
    ctx.end();
    let running: Vec<&PodTimes> = map.values().filter(|p| p.running.is_some()).collect();
    if running.is_empty() {
        bail!("no pod of the Deployment was seen Running ({} seen)", map.len());
    }
    let per_pod = sorted_since(running.iter().filter_map(|p| Some(p.running?.saturating_duration_since(p.added?))));
    let from_deploy = sorted_since(running.iter().filter_map(|p| Some(p.running?.saturating_duration_since(t0))));
    let added: Vec<Instant> = map.values().filter_map(|p| p.added).collect();
    let first_added = added.iter().min().copied().unwrap_or(t0);
    let last_added = added.iter().max().copied().unwrap_or(t0);
    let last_running = running.iter().filter_map(|p| p.running).max().unwrap_or(t0);
    Ok(RolloutOutcome {
        ctx,
        nodes,
        replicas,
        nodes_ready,
        running: running.len(),
        pod_p50: q(&per_pod, 0.5),
        pod_p99: q(&per_pod, 0.99),
        pod_max: per_pod.last().copied().unwrap_or_default(),
        from_deploy_p50: q(&from_deploy, 0.5),
        from_deploy_p99: q(&from_deploy, 0.99),
        first_pod: first_added.saturating_duration_since(t0),
        last_pod: last_added.saturating_duration_since(t0),
        all_running: last_running.saturating_duration_since(t0),
        after_last_created: last_running.saturating_duration_since(last_added),
        spread: spread(&map),
        cpu: window(p0, p1),
        mem,
    })
}

// ---------------------------------------------------------------------------------------------
// nodes

#[derive(Clone, Debug, Default)]
pub struct NodesOutcome {
    pub ctx: RunInfo,
    pub nodes: usize,
    pub heartbeat_secs: u64,
    pub nodes_ready: Duration,
    pub settle: Duration,
    pub cpu: Window,
    /// Store revisions per second during the window (every write is one revision).
    pub writes_per_s: f64,
    pub mem_ready: Mem,
    pub mem: Mem,
}

pub async fn nodes(bin: &Path, nodes: usize, seconds: f64) -> Result<NodesOutcome> {
    let mut ctx = RunInfo::begin();
    let n = nodes.to_string();
    let heartbeat_secs = 10;
    let hb = heartbeat_secs.to_string();
    let rudder =
        Rudder::start_with(bin, &["--disable-agent", "--simulate-nodes", &n, "--simulate-node-heartbeat-seconds", &hb])
            .await?;
    eprintln!("nodes: rudder pid {}, waiting for {nodes} nodes ...", rudder.proc.pid());
    let target = rudder.target(Proto::H1)?;
    let nodes_ready = wait_nodes_ready(&target, nodes, Duration::from_secs(900)).await?;
    let mem_ready = rudder.proc.rss_kib().ok();
    // One heartbeat interval for the registration tail (first Lease creates, status reports).
    let settle = Duration::from_secs(heartbeat_secs);
    eprintln!(
        "  {nodes} nodes Ready after {:.1} s; settling {} s, then measuring {seconds:.0} s ...",
        nodes_ready.as_secs_f64(),
        settle.as_secs()
    );
    tokio::time::sleep(settle).await;
    let mut conn = Conn::open(&target).await?;
    let rv0 = revision(&mut conn).await?;
    let p0 = probe(&rudder.proc);
    tokio::time::sleep(crate::secs(seconds)).await;
    let p1 = probe(&rudder.proc);
    let rv1 = revision(&mut conn).await?;
    let mem = rudder.proc.rss_kib().ok();
    ctx.end();
    let cpu = window(p0, p1);
    Ok(NodesOutcome {
        ctx,
        nodes,
        heartbeat_secs,
        nodes_ready,
        settle,
        cpu,
        writes_per_s: rv1.saturating_sub(rv0) as f64 / cpu.secs,
        mem_ready,
        mem,
    })
}
