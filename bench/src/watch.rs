//! Scenario 3: watch fan-out. Many watchers from one list revision, while concurrent writers
//! PATCH pods; each event's delay runs from the acknowledgement of the write that made it
//! (matched by resourceVersion) to its arrival at each watcher.

use crate::net::{Conn, Target, first_resource_version};
use crate::procs::{Proc, own_cpu_time};
use crate::stats::quantile;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Outcome {
    pub watchers: usize,
    pub updates: usize,
    pub writers: usize,
    /// Deliveries matched to an acknowledged write.
    pub samples: usize,
    /// Expected deliveries that never came.
    pub missing: usize,
    /// Deliveries that arrived before the writer had read its acknowledgement (counted as 0).
    pub early: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// From the first write sent to the last acknowledgement.
    pub write_time: Duration,
    pub write_p50: Duration,
    pub write_p99: Duration,
    /// From the first write sent until every watcher had every event.
    pub fanout_time: Duration,
    pub server_cpu: f64,
    pub harness_cpu: f64,
}

/// Opens a watch and reads it on a task: returns each event's resourceVersion with the instant
/// its bytes arrived, until `expect` events came or `deadline` passed.
async fn open_watcher(
    target: &Target,
    path: &str,
    expect: usize,
    deadline: Instant,
    mut give_up: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<Result<Vec<(u64, Instant)>>>> {
    let mut conn = Conn::open(target).await?;
    let resp = conn.send(Method::GET, path, None, Bytes::new()).await?;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        bail!("watch {path}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
    }
    let mut body = resp.into_body();
    Ok(tokio::spawn(async move {
        let _conn = conn;
        let mut seen = Vec::with_capacity(expect);
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        while seen.len() < expect {
            let frame = tokio::select! {
                f = body.frame() => match f {
                    None => break,
                    Some(f) => f.context("reading the watch stream")?,
                },
                _ = tokio::time::sleep_until(deadline.into()) => break,
                _ = give_up.wait_for(|g| *g) => break,
            };
            let now = Instant::now();
            let Ok(data) = frame.into_data() else { continue };
            buf.extend_from_slice(&data);
            let mut start = 0;
            while let Some(nl) = buf[start..].iter().position(|&c| c == b'\n') {
                let line = &buf[start..start + nl];
                start += nl + 1;
                if line.starts_with(br#"{"type":"ERROR""#) {
                    bail!("the watch sent an error: {}", String::from_utf8_lossy(line));
                }
                if line.starts_with(br#"{"type":"BOOKMARK""#) {
                    continue;
                }
                if let Some(rv) = first_resource_version(line) {
                    seen.push((rv, now));
                }
            }
            buf.drain(..start);
        }
        Ok(seen)
    }))
}

pub async fn run(
    target: &Target,
    server: &Proc,
    watchers: usize,
    updates: usize,
    writers: usize,
    pods: usize,
) -> Result<Outcome> {
    if pods == 0 {
        bail!("the watch scenario needs pods to update");
    }
    let mut conn = Conn::open(target).await?;
    let list = conn.get_ok("/api/v1/namespaces/default/pods?limit=1").await?;
    let list_rv = first_resource_version(&list).context("no resourceVersion in the pod list")?;
    let path = format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={list_rv}");

    let deadline = Instant::now() + Duration::from_secs(180);
    let (give_up_tx, give_up) = tokio::sync::watch::channel(false);
    let mut readers = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        readers.push(
            tokio::time::timeout(
                Duration::from_secs(10),
                open_watcher(target, &path, updates, deadline, give_up.clone()),
            )
            .await
            .context("opening a watch timed out")??,
        );
    }

    let (s1, h1) = (server.cpu_time()?, own_cpu_time());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for _ in 0..writers {
        let mut conn = Conn::open(target).await?;
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= updates {
                    return Ok::<_, anyhow::Error>(acks);
                }
                let name = crate::list::pod_name(i % pods);
                let patch = Bytes::from(format!(r#"{{"metadata":{{"labels":{{"bench-update":"u{i}"}}}}}}"#));
                let sent = Instant::now();
                let (status, body) = conn
                    .call(
                        Method::PATCH,
                        &format!("/api/v1/namespaces/default/pods/{name}"),
                        Some("application/merge-patch+json"),
                        patch,
                    )
                    .await?;
                let ack = Instant::now();
                if status != StatusCode::OK {
                    bail!("PATCH pod {name}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
                }
                let rv = first_resource_version(&body).context("no resourceVersion in the PATCH response")?;
                acks.push((rv, sent, ack));
            }
        }));
    }
    let mut acks: Vec<(u64, Instant, Instant)> = Vec::with_capacity(updates);
    for t in tasks {
        acks.append(&mut tokio::time::timeout(Duration::from_secs(120), t).await.context("writers timed out")???);
    }
    let write_time = acks.iter().map(|a| a.2).max().unwrap_or(started) - started;

    // Stragglers get 30 s after the last write; what has not come by then counts as missing.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let _ = give_up_tx.send(true);
    });
    let mut deliveries = Vec::with_capacity(watchers);
    for r in readers {
        deliveries.push(r.await??);
    }
    let (s2, h2) = (server.cpu_time()?, own_cpu_time());
    let fanout_end = deliveries.iter().flat_map(|d| d.iter().map(|x| x.1)).max().unwrap_or(started);
    let fanout_time = fanout_end.saturating_duration_since(started);
    let wall = fanout_time.max(write_time).as_secs_f64().max(1e-9);

    let by_rv: HashMap<u64, Instant> = acks.iter().map(|&(rv, _, ack)| (rv, ack)).collect();
    let mut delays = Vec::with_capacity(watchers * updates);
    let mut early = 0;
    for d in &deliveries {
        for &(rv, at) in d {
            if let Some(&ack) = by_rv.get(&rv) {
                if at < ack {
                    early += 1;
                }
                delays.push(at.saturating_duration_since(ack));
            }
        }
    }
    delays.sort_unstable();
    let mut write_lat: Vec<Duration> = acks.iter().map(|&(_, sent, ack)| ack - sent).collect();
    write_lat.sort_unstable();
    let samples = delays.len();
    Ok(Outcome {
        watchers,
        updates,
        writers,
        samples,
        missing: (watchers * updates).saturating_sub(samples),
        early,
        p50: quantile(&delays, 0.50).unwrap_or_default(),
        p99: quantile(&delays, 0.99).unwrap_or_default(),
        max: delays.last().copied().unwrap_or_default(),
        write_time,
        write_p50: quantile(&write_lat, 0.50).unwrap_or_default(),
        write_p99: quantile(&write_lat, 0.99).unwrap_or_default(),
        fanout_time,
        server_cpu: s2.saturating_sub(s1).as_secs_f64() / wall,
        harness_cpu: h2.saturating_sub(h1).as_secs_f64() / wall,
    })
}
