//! The `dns` scenario: the cluster DNS server (crates/dns) in process, on 127.0.0.1, with a
//! synthetic index of many services; concurrent UDP clients ask for service names and the
//! harness reports queries per second and latency. No API server, no reference side: CoreDNS's
//! own figures (tens of thousands of queries per second per core) are the anchor.
//!
//! The server runs on a tokio runtime of its own with one worker thread (named `dns-server`),
//! so its CPU is measured apart from the clients'.

use crate::control::RunInfo;
use crate::report::{Section, Table, pass};
use crate::stats::{ms, quantile};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rudder_dns::records::{IndexBuilder, PodMode};
use rudder_dns::server::{DnsServer, Forwarder};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Anchor, not a side-by-side run: CoreDNS serves tens of thousands of cached/kubernetes
/// queries per second per core; the target is the low end of that.
const QPS_PER_CORE_TARGET: f64 = 20_000.0;
const NAMESPACES: usize = 10;
const DOMAIN: &str = "cluster.local";

pub struct Outcome {
    pub ctx: RunInfo,
    pub services: usize,
    pub clients: usize,
    pub index_names: usize,
    pub build: Duration,
    pub secs: f64,
    pub answered: u64,
    pub timeouts: u64,
    pub wrong: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// CPU of the server's worker thread and of the whole harness, in cores over the window.
    pub server_cores: f64,
    pub process_cores: f64,
}

impl Outcome {
    pub fn qps(&self) -> f64 {
        self.answered as f64 / self.secs.max(1e-9)
    }

    /// Queries per second per core of server CPU.
    pub fn qps_per_core(&self) -> f64 {
        self.qps() / self.server_cores.max(1e-9)
    }
}

fn service_ip(i: usize) -> Ipv4Addr {
    // Data only: no packet is ever sent to these addresses.
    Ipv4Addr::new(10, 43, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

fn service_name(i: usize) -> (String, String) {
    (format!("svc-{i}"), format!("ns-{}", i % NAMESPACES))
}

fn service(i: usize) -> Service {
    let (name, ns) = service_name(i);
    let ip = service_ip(i).to_string();
    Service {
        metadata: ObjectMeta { name: Some(name), namespace: Some(ns), ..Default::default() },
        spec: Some(ServiceSpec {
            cluster_ip: Some(ip.clone()),
            cluster_ips: Some(vec![ip]),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                protocol: Some("TCP".into()),
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An A query for `name` (no EDNS, recursion desired), as a resolver stub sends it.
fn a_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Whether `answer` answers query `id` with NOERROR, one record, whose last four bytes (the A
/// record's data) are `ip`.
fn is_right(answer: &[u8], id: u16, ip: Ipv4Addr) -> bool {
    answer.len() >= 16
        && answer[..2] == id.to_be_bytes()
        && answer[2] & 0x80 != 0
        && answer[3] & 0x0f == 0
        && answer[6..8] == [0, 1]
        && answer[answer.len() - 4..] == ip.octets()
}

/// Thread IDs of this process's threads named `name`.
fn threads_named(name: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    dir.flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).map(|c| c.trim() == name).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn threads_cpu(tids: &[String]) -> Duration {
    tids.iter().filter_map(|t| crate::procs::cpu_time_of(&format!("/proc/self/task/{t}/stat")).ok()).sum()
}

pub async fn run(services: usize, clients: usize, seconds: f64) -> Result<Outcome> {
    if services == 0 || services > 60_000 || clients == 0 {
        bail!("dns: need 1–60000 services and at least one client");
    }
    let mut ctx = RunInfo { date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(), ..Default::default() };
    ctx.load_before = crate::report::load_average();
    let started = Instant::now();
    let mut b = IndexBuilder::new(DOMAIN, PodMode::Insecure);
    for i in 0..services {
        b.service(&service(i));
    }
    let index = b.build(1);
    let build = started.elapsed();
    let index_names = index.len();

    let guard = RuntimeGuard(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dns-server")
            .enable_all()
            .build()
            .context("server runtime")?,
    ));
    let server_rt = guard.handle();
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(index));
    let server = server_rt
        .spawn(async move {
            DnsServer::start(
                &["127.0.0.1:0".parse().expect("static address")],
                rx,
                Forwarder::new(vec![], Duration::from_secs(1)),
            )
            .await
        })
        .await??;
    let addr = server.local_addrs()[0];
    let tids = threads_named("dns-server");

    // Warm-up, then the measured window.
    let outcome = async {
        let _ = clients_run(addr, services, clients, Duration::from_millis(500)).await?;
        let (cpu0, own0) = (threads_cpu(&tids), crate::procs::own_cpu_time());
        let t0 = Instant::now();
        let window = Duration::from_secs_f64(seconds.max(0.5));
        let stats = clients_run(addr, services, clients, window).await?;
        let secs = t0.elapsed().as_secs_f64();
        let server_cores = (threads_cpu(&tids).saturating_sub(cpu0)).as_secs_f64() / secs;
        let process_cores = crate::procs::own_cpu_time().saturating_sub(own0).as_secs_f64() / secs;
        let mut lat = stats.latencies;
        lat.sort_unstable();
        anyhow::Ok(Outcome {
            ctx: RunInfo::default(),
            services,
            clients,
            index_names,
            build,
            secs,
            answered: lat.len() as u64,
            timeouts: stats.timeouts,
            wrong: stats.wrong,
            p50: quantile(&lat, 0.50).unwrap_or_default(),
            p99: quantile(&lat, 0.99).unwrap_or_default(),
            max: lat.last().copied().unwrap_or_default(),
            server_cores,
            process_cores,
        })
    }
    .await;
    let _ = server_rt.spawn(server.shutdown()).await;
    let mut o = outcome?;
    ctx.load_after = crate::report::load_average();
    o.ctx = ctx;
    Ok(o)
}

/// Owns the server's runtime; shuts it down from a plain thread (a runtime cannot be dropped
/// inside another one's async context).
struct RuntimeGuard(Option<tokio::runtime::Runtime>);

impl RuntimeGuard {
    fn handle(&self) -> tokio::runtime::Handle {
        self.0.as_ref().map(|rt| rt.handle().clone()).unwrap_or_else(tokio::runtime::Handle::current)
    }
}

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            std::thread::spawn(move || rt.shutdown_timeout(Duration::from_secs(2)));
        }
    }
}

#[derive(Default)]
struct ClientStats {
    latencies: Vec<Duration>,
    timeouts: u64,
    wrong: u64,
}

/// `clients` tasks, each with its own socket and one query in flight, for `window`.
async fn clients_run(server: SocketAddr, services: usize, clients: usize, window: Duration) -> Result<ClientStats> {
    let deadline = Instant::now() + window;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let sock = UdpSocket::bind("127.0.0.1:0").await?;
        sock.connect(server).await?;
        tasks.push(tokio::spawn(async move {
            let mut stats = ClientStats::default();
            // xorshift: cheap, deterministic per client.
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1);
            let mut buf = [0u8; 512];
            let mut id: u16 = (c as u16).wrapping_mul(4099);
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % services as u64) as usize;
                let (name, ns) = service_name(i);
                id = id.wrapping_add(1);
                let q = a_query(id, &format!("{name}.{ns}.svc.{DOMAIN}"));
                let t = Instant::now();
                if sock.send(&q).await.is_err() {
                    stats.wrong += 1;
                    continue;
                }
                loop {
                    match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
                        Ok(Ok(n)) if n >= 2 && buf[..2] != id.to_be_bytes() => continue, // a late answer
                        Ok(Ok(n)) => {
                            if is_right(&buf[..n], id, service_ip(i)) {
                                stats.latencies.push(t.elapsed());
                            } else {
                                stats.wrong += 1;
                            }
                        }
                        Ok(Err(_)) => stats.wrong += 1,
                        Err(_) => stats.timeouts += 1,
                    }
                    break;
                }
            }
            stats
        }));
    }
    let mut all = ClientStats::default();
    for t in tasks {
        let s = t.await?;
        all.latencies.extend(s.latencies);
        all.timeouts += s.timeouts;
        all.wrong += s.wrong;
    }
    Ok(all)
}

pub fn section(o: &Outcome) -> (&'static str, RunInfo, Section) {
    let mut t = Table::new(&["target", "measured", "result"]);
    t.row(vec![
        format!("≥ {QPS_PER_CORE_TARGET:.0} queries/s per server core (anchor: CoreDNS, tens of thousands per core)"),
        format!("{:.0} queries/s per core", o.qps_per_core()),
        pass(o.qps_per_core() >= QPS_PER_CORE_TARGET && o.wrong == 0).into(),
    ]);
    let mut d = Table::new(&[
        "services",
        "clients",
        "queries/s",
        "p50 / p99 / max ms",
        "timeouts",
        "wrong answers",
        "server CPU (cores)",
        "harness + server CPU (cores)",
        "index names",
        "index build ms",
    ]);
    d.row(vec![
        o.services.to_string(),
        o.clients.to_string(),
        format!("{:.0}", o.qps()),
        format!("{:.3} / {:.3} / {:.1}", ms(o.p50), ms(o.p99), ms(o.max)),
        o.timeouts.to_string(),
        o.wrong.to_string(),
        format!("{:.2}", o.server_cores),
        format!("{:.2}", o.process_cores),
        o.index_names.to_string(),
        format!("{:.1}", ms(o.build)),
    ]);
    let note = format!(
        "The cluster DNS server (crates/dns: hickory-server listeners, the kubernetes-style index) in the harness process on \
         127.0.0.1, on a tokio runtime of its own with one worker thread; the index is built from {} synthetic ClusterIP \
         Services in {NAMESPACES} namespaces (no API server). {} client tasks on the harness's runtime, each with its own UDP \
         socket and one query in flight, ask A of random `svc-N.ns-M.svc.{DOMAIN}` names for {:.1} s after a 0.5 s \
         warm-up; every answer is checked (ID, NOERROR, one record, the service's address). Latency is send → checked \
         answer. Server CPU = utime + stime of the server's worker thread over the window; queries/s per core = queries/s ÷ \
         that. Clients and server share the machine's {} cores, so the absolute rate is bounded by the clients too.",
        o.services,
        o.clients,
        o.secs,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    );
    ("dns", o.ctx.clone(), Section { title: "9. Cluster DNS".into(), note, tables: vec![t, d] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_answer_checks() {
        let q = a_query(7, "svc-1.ns-1.svc.cluster.local");
        assert_eq!(&q[..2], &[0, 7]);
        assert_eq!(q[12], 5);
        let mut a = q.clone();
        a[2] |= 0x80;
        a[7] = 1;
        a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
        a.extend_from_slice(&service_ip(1).octets());
        assert!(is_right(&a, 7, service_ip(1)));
        assert!(!is_right(&a, 8, service_ip(1)));
        assert!(!is_right(&a, 7, service_ip(2)));
    }
}
