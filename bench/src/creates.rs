//! Scenario 1: durable creates per second with N concurrent clients, each on its own
//! connection with one request in flight: ConfigMaps of 1 KiB through the API, against the
//! same 1 KiB values put into etcd through its gRPC API.

use crate::net::{Conn, Target};
use crate::procs::{Proc, machine_busy, own_cpu_time};
use crate::servers::Etcd;
use crate::stats::quantile;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Every create body is exactly this long.
pub const BODY_SIZE: usize = 1024;

/// One measured point.
#[derive(Clone, Debug)]
pub struct Point {
    pub system: String,
    pub clients: usize,
    pub ops: u64,
    pub secs: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub p50: Duration,
    pub p99: Duration,
    /// Cores' worth of CPU the server used during the window (none when in-process).
    pub server_cpu: Option<f64>,
    /// Cores' worth of CPU this harness used during the window.
    pub harness_cpu: f64,
    /// Cores' worth of CPU everything else on the machine used during the window.
    pub other_cpu: f64,
}

impl Point {
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 { self.ops as f64 / self.secs } else { 0.0 }
    }
}

/// A ConfigMap of exactly [`BODY_SIZE`] bytes of JSON.
pub fn configmap_body(name: &str) -> Bytes {
    let head = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"default","labels":{{"bench":"creates"}}}},"data":{{"payload":""#
    );
    let tail = r#""}}"#;
    let fill = BODY_SIZE.saturating_sub(head.len() + tail.len());
    let mut s = String::with_capacity(BODY_SIZE);
    s.push_str(&head);
    s.extend((0..fill).map(|i| (b'a' + (i % 26) as u8) as char));
    s.push_str(tail);
    Bytes::from(s)
}

pub enum Source<'a> {
    Api(Target),
    Etcd(&'a Etcd),
    /// The API server's store on its own, in this process (no HTTP, no JSON handling).
    Store(Arc<dyn rudder_store::Storage>),
}

enum Worker {
    Api(Conn),
    Etcd(Box<etcd_client::KvClient>),
    Store(Arc<dyn rudder_store::Storage>),
}

impl Worker {
    async fn open(src: &Source<'_>) -> Result<Worker> {
        Ok(match src {
            Source::Api(t) => Worker::Api(Conn::open(t).await?),
            Source::Etcd(e) => Worker::Etcd(Box::new(e.client().await?.kv_client())),
            Source::Store(s) => Worker::Store(s.clone()),
        })
    }

    async fn create(&mut self, name: &str) -> Result<()> {
        let body = configmap_body(name);
        match self {
            Worker::Api(c) => {
                let (status, resp) = c
                    .call(Method::POST, "/api/v1/namespaces/default/configmaps", Some("application/json"), body)
                    .await?;
                if status != StatusCode::CREATED {
                    bail!("POST configmap: {status}: {}", String::from_utf8_lossy(&resp[..resp.len().min(300)]));
                }
            }
            Worker::Etcd(kv) => {
                kv.put(format!("/registry/configmaps/default/{name}"), body.to_vec(), None)
                    .await
                    .context("etcd put")?;
            }
            Worker::Store(s) => {
                s.create(&format!("/registry/configmaps/default/{name}"), body).await.context("store create")?;
            }
        }
        Ok(())
    }
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

struct Shared {
    phase: AtomicU8,
    completed: AtomicU64,
    errors: AtomicU64,
    first_error: slot::Slot,
}

mod slot {
    /// Keeps the first error message.
    #[derive(Default)]
    pub struct Slot(std::sync::Mutex<Option<String>>);
    impl Slot {
        pub fn set(&self, msg: String) {
            let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            g.get_or_insert(msg);
        }
        pub fn take(&self) -> Option<String> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
        }
    }
}

/// Runs `clients` closed-loop clients for `warmup` + `duration`; counts what completes in the
/// measured window.
pub async fn run_point(
    system: &str,
    tag: &str,
    src: Source<'_>,
    server: Option<&Proc>,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Point> {
    let mut workers = Vec::with_capacity(clients);
    for _ in 0..clients {
        workers.push(
            tokio::time::timeout(Duration::from_secs(10), Worker::open(&src))
                .await
                .context("connecting timed out")??,
        );
    }
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(WARMUP),
        completed: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Default::default(),
    });
    let mut tasks = Vec::with_capacity(clients);
    for (w, mut worker) in workers.into_iter().enumerate() {
        let shared = shared.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(16 * 1024);
            let mut seq = 0u64;
            loop {
                let phase = shared.phase.load(Ordering::Relaxed);
                if phase == STOP {
                    break;
                }
                let name = format!("cm-{tag}-{w:02}-{seq:07}");
                seq += 1;
                let t = Instant::now();
                match tokio::time::timeout(Duration::from_secs(30), worker.create(&name)).await {
                    Ok(Ok(())) => {
                        shared.completed.fetch_add(1, Ordering::Relaxed);
                        if phase == MEASURE && shared.phase.load(Ordering::Relaxed) == MEASURE {
                            lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                    }
                    Ok(Err(e)) => {
                        shared.first_error.set(format!("{e:#}"));
                        if shared.errors.fetch_add(1, Ordering::Relaxed) > 1000 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(_) => {
                        shared.first_error.set("a create took longer than 30 s".into());
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            lat
        }));
    }
    tokio::time::sleep(warmup).await;
    let m1 = machine_busy();
    let (c1, t1, s1, h1) = (
        shared.completed.load(Ordering::Relaxed),
        Instant::now(),
        server.map(Proc::cpu_time).transpose()?,
        own_cpu_time(),
    );
    shared.phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(duration).await;
    shared.phase.store(STOP, Ordering::Relaxed);
    let m2 = machine_busy();
    let (c2, t2, s2, h2) = (
        shared.completed.load(Ordering::Relaxed),
        Instant::now(),
        server.map(Proc::cpu_time).transpose()?,
        own_cpu_time(),
    );
    let mut lat = Vec::new();
    for t in tasks {
        let mut l = tokio::time::timeout(Duration::from_secs(40), t).await.context("a client did not stop")??;
        lat.append(&mut l);
    }
    lat.sort_unstable();
    let secs = (t2 - t1).as_secs_f64();
    let us = |v: Option<u32>| Duration::from_micros(v.unwrap_or(0) as u64);
    Ok(Point {
        system: system.to_string(),
        clients,
        ops: c2 - c1,
        secs,
        errors: shared.errors.load(Ordering::Relaxed),
        first_error: shared.first_error.take(),
        p50: us(quantile(&lat, 0.50)),
        p99: us(quantile(&lat, 0.99)),
        server_cpu: s1.zip(s2).map(|(a, b)| b.saturating_sub(a).as_secs_f64() / secs),
        harness_cpu: (h2.saturating_sub(h1)).as_secs_f64() / secs,
        other_cpu: {
            let ours = h2.saturating_sub(h1) + s1.zip(s2).map(|(a, b)| b.saturating_sub(a)).unwrap_or_default();
            (m2.saturating_sub(m1)).saturating_sub(ours).as_secs_f64() / secs
        },
    })
}
