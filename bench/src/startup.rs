//! Scenario 4: cold start of `rudder server --disable-agent` on a fresh data dir (time from
//! exec until `/readyz` answers `ok`) and its idle resident memory; etcd's for reference.

use crate::net::{Conn, Proto, Target, tls_any_cert};
use crate::procs::{Proc, Scratch, free_port, watch_stdout};
use crate::servers::Etcd;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long after readiness the idle memory is read.
pub const IDLE_AFTER: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct Start {
    /// exec → first `200 ok` from `/readyz`.
    pub ready: Duration,
    /// exec → the "ready" line on stdout (rudder only).
    pub ready_line: Option<Duration>,
    /// The server's own "started in N ms" (rudder only).
    pub reported: Option<Duration>,
    /// VmRSS and VmHWM in KiB, [`IDLE_AFTER`] after ready.
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

async fn probe_readyz(target: &Target) -> Result<bool> {
    let mut conn = Conn::open(target).await?;
    let (status, body) = conn.call(http::Method::GET, "/readyz", None, bytes::Bytes::new()).await?;
    Ok(status == http::StatusCode::OK && body.as_ref() == b"ok")
}

pub async fn rudder_once(bin: &Path) -> Result<Start> {
    let dir = Scratch::new("rudder-bench-start-")?;
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.arg("server").arg("--data-dir").arg(dir.path().join("data")).args([
        "--https-port",
        &port.to_string(),
        "--disable-agent",
    ]);
    let target = Target {
        addr: format!("127.0.0.1:{port}").parse()?,
        tls: Some(tls_any_cert(Proto::H1)?),
        token: None,
        proto: Proto::H1,
    };
    let started = Instant::now();
    let (proc, stdout) = Proc::spawn("rudder", &mut cmd, &dir.path().join("stderr.log"), true)?;
    let line = watch_stdout(stdout.expect("stdout is piped"), "rudder server is ready at ");
    let deadline = started + Duration::from_secs(30);
    loop {
        if let Ok(Ok(true)) = tokio::time::timeout(Duration::from_secs(1), probe_readyz(&target)).await {
            break;
        }
        if !proc.alive() {
            bail!("rudder server exited before it was ready:\n{}", proc.stderr_tail());
        }
        if Instant::now() > deadline {
            bail!("rudder server's /readyz was not ok within 30 s:\n{}", proc.stderr_tail());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready = started.elapsed();
    let (ready_line, reported) = match tokio::time::timeout(Duration::from_secs(5), line).await {
        Ok(Ok((text, at))) => {
            let reported = text
                .split("started in ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .map(Duration::from_millis);
            (Some(at - started), reported)
        }
        _ => (None, None),
    };
    tokio::time::sleep_until((started + ready + IDLE_AFTER).into()).await;
    let (rss_kib, hwm_kib) = proc.rss_kib()?;
    drop(proc);
    drop(dir);
    Ok(Start { ready, ready_line, reported, rss_kib, hwm_kib })
}

pub async fn etcd_once(bin: &Path) -> Result<Start> {
    let etcd = Etcd::start(bin).await.context("starting etcd")?;
    tokio::time::sleep(IDLE_AFTER).await;
    let (rss_kib, hwm_kib) = etcd.proc.rss_kib()?;
    Ok(Start { ready: etcd.ready_after, ready_line: None, reported: None, rss_kib, hwm_kib })
}
