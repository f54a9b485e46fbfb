//! Scenario 2: LIST of many pods, from the watch cache (`resourceVersion=0`), as a consistent
//! read (no `resourceVersion`), in kubectl-sized pages, and the same objects as one etcd range.

use crate::net::{Conn, Target, continue_token};
use crate::servers::Etcd;
use crate::stats::median;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One timed list.
#[derive(Clone, Debug)]
pub struct Row {
    pub what: String,
    pub runs: usize,
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
    /// Bytes of one response (all pages for a paged list; keys + values for etcd).
    pub bytes: usize,
}

impl Row {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.median.as_secs_f64().max(1e-9)
    }
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub pods: usize,
    /// Time to create all pods through the API (`concurrency` clients).
    pub create_time: Duration,
    pub create_concurrency: usize,
    pub rows: Vec<Row>,
}

pub fn pod_name(i: usize) -> String {
    format!("pod-{i:05}")
}

/// A minimal valid Pod with one container, as `kubectl create` would send it.
pub fn pod_body(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{}","namespace":"default","labels":{{"app":"bench"}}}},"spec":{{"containers":[{{"name":"app","image":"registry.k8s.io/pause:3.10"}}]}}}}"#,
        pod_name(i)
    ))
}

/// Creates pods 0..n through the API with strict field validation.
pub async fn create_pods(target: &Target, n: usize, concurrency: usize) -> Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let mut conn = Conn::open(target).await?;
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let (status, body) = conn
                    .call(
                        Method::POST,
                        "/api/v1/namespaces/default/pods?fieldValidation=Strict",
                        Some("application/json"),
                        pod_body(i),
                    )
                    .await?;
                if status != StatusCode::CREATED {
                    bail!(
                        "POST pod {}: {status}: {}",
                        pod_name(i),
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

/// Puts the API's stored pods into etcd under the same keys, so both hold the same bytes.
async fn copy_to_etcd(list_json: &[u8], etcd: &Etcd, concurrency: usize) -> Result<usize> {
    let list: serde_json::Value = serde_json::from_slice(list_json).context("the pod list is not JSON")?;
    let items = list["items"].as_array().context("no items in the pod list")?;
    let kvs: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        items
            .iter()
            .map(|p| {
                let ns = p["metadata"]["namespace"].as_str().unwrap_or("default");
                let name = p["metadata"]["name"].as_str().unwrap_or("");
                (format!("/registry/pods/{ns}/{name}"), serde_json::to_vec(p).expect("JSON values encode"))
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let mut kv = etcd.client().await?.kv_client();
        let (kvs, next) = (kvs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((k, v)) = kvs.get(i) else { return Ok::<_, anyhow::Error>(()) };
                kv.put(k.as_str(), v.as_slice(), None).await.context("etcd put")?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(kvs.len())
}

fn count_items(list_json: &[u8]) -> Result<usize> {
    let list: serde_json::Value = serde_json::from_slice(list_json).context("the list is not JSON")?;
    Ok(list["items"].as_array().map(Vec::len).unwrap_or(0))
}

#[derive(Clone, Copy)]
enum Kind {
    Cached,
    Consistent,
    Paged,
    Etcd,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Cached => "rudder `GET /api/v1/pods?resourceVersion=0` (watch cache)",
            Kind::Consistent => "rudder `GET /api/v1/pods` (consistent read)",
            Kind::Paged => "rudder `GET /api/v1/pods?limit=500` + continue, all pages",
            Kind::Etcd => "etcd range get of `/registry/pods/` (reference)",
        }
    }
}

struct Clients {
    conn: Conn,
    kv: etcd_client::KvClient,
    n: usize,
}

/// One list; returns the bytes received.
async fn once(kind: Kind, c: &mut Clients) -> Result<usize> {
    match kind {
        Kind::Cached => Ok(c.conn.get_ok("/api/v1/pods?resourceVersion=0").await?.len()),
        Kind::Consistent => Ok(c.conn.get_ok("/api/v1/pods").await?.len()),
        Kind::Paged => {
            let mut total = 0;
            let mut path = "/api/v1/pods?limit=500".to_string();
            loop {
                let page = c.conn.get_ok(&path).await?;
                total += page.len();
                match continue_token(&page) {
                    Some(token) => path = format!("/api/v1/pods?limit=500&continue={token}"),
                    None => return Ok(total),
                }
            }
        }
        Kind::Etcd => {
            let resp =
                c.kv.get("/registry/pods/", Some(etcd_client::GetOptions::new().with_prefix()))
                    .await
                    .context("etcd range")?;
            if resp.kvs().len() != c.n {
                bail!("etcd returned {} pods, expected {}", resp.kvs().len(), c.n);
            }
            Ok(resp.kvs().iter().map(|kv| kv.key().len() + kv.value().len()).sum())
        }
    }
}

async fn time_runs(kind: Kind, c: &mut Clients, runs: usize) -> Result<Row> {
    let what = kind.label();
    // One untimed run first: connections, caches and allocator warm.
    let bytes = tokio::time::timeout(Duration::from_secs(60), once(kind, c)).await.context("list timed out")??;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let b = tokio::time::timeout(Duration::from_secs(60), once(kind, c)).await.context("list timed out")??;
        times.push(t.elapsed());
        if b != bytes {
            bail!("{what}: response size changed between runs ({bytes} then {b} bytes)");
        }
    }
    let min = *times.iter().min().expect("at least one run");
    let max = *times.iter().max().expect("at least one run");
    Ok(Row { what: what.to_string(), runs, median: median(times), min, max, bytes })
}

/// Creates `n` pods, copies them into etcd, then times the lists.
pub async fn run(target: &Target, etcd: &Etcd, n: usize, runs: usize, concurrency: usize) -> Result<Outcome> {
    let create_time = create_pods(target, n, concurrency).await?;
    let mut conn = Conn::open(target).await?;

    // Check both reads see every pod, and fill etcd with the same objects.
    let consistent = conn.get_ok("/api/v1/pods").await?;
    let have = count_items(&consistent)?;
    if have != n {
        bail!("the consistent list has {have} pods, expected {n}");
    }
    let cached = conn.get_ok("/api/v1/pods?resourceVersion=0").await?;
    if count_items(&cached)? != n {
        bail!("the watch-cache list does not have all {n} pods");
    }
    let copied = copy_to_etcd(&consistent, etcd, concurrency).await?;
    if copied != n {
        bail!("copied {copied} pods to etcd, expected {n}");
    }

    let kv = etcd.client().await?.kv_client().max_decoding_message_size(512 << 20);
    let mut clients = Clients { conn, kv, n };
    let mut rows = Vec::new();
    for kind in [Kind::Cached, Kind::Consistent, Kind::Paged, Kind::Etcd] {
        rows.push(time_runs(kind, &mut clients, runs).await?);
    }
    Ok(Outcome { pods: n, create_time, create_concurrency: concurrency, rows })
}
