//! Starting the systems under test: `rudder server` and a single-member etcd.

use crate::net::{Conn, Proto, Target, tls_trusting};
use crate::procs::{Proc, Scratch, free_port, watch_stdout};
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const READY_PREFIX: &str = "rudder server is ready at https://";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `rudder server --disable-agent` on a fresh data dir.
pub struct Rudder {
    // Field order matters: the process is killed before its data dir is removed.
    pub proc: Proc,
    _dir: Scratch,
    pub addr: SocketAddr,
    pub token: Arc<str>,
    pub ca_pem: Vec<u8>,
}

impl Rudder {
    /// Starts the server and waits for its "ready" line.
    pub async fn start(bin: &Path) -> Result<Rudder> {
        Rudder::start_with(bin, &["--disable-agent"]).await
    }

    /// Starts the server with extra arguments (e.g. `--simulate-nodes 1000`) and waits for its
    /// "ready" line.
    pub async fn start_with(bin: &Path, extra: &[&str]) -> Result<Rudder> {
        let dir = Scratch::new("rudder-bench-rudder-")?;
        let data = dir.path().join("data");
        let mut cmd = Command::new(bin);
        cmd.arg("server").arg("--data-dir").arg(&data).args(["--https-port", "0"]).args(extra);
        let (proc, stdout) = Proc::spawn("rudder", &mut cmd, &dir.path().join("stderr.log"), true)?;
        let ready = watch_stdout(stdout.expect("stdout is piped"), READY_PREFIX);
        let line = match tokio::time::timeout(START_TIMEOUT, ready).await {
            Ok(Ok((line, _))) => line,
            Ok(Err(_)) => bail!("rudder server exited before it was ready:\n{}", proc.stderr_tail()),
            Err(_) => bail!("rudder server was not ready within {START_TIMEOUT:?}:\n{}", proc.stderr_tail()),
        };
        let addr: SocketAddr = line[READY_PREFIX.len()..]
            .split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("cannot read the address in {line:?}"))?;
        let token_text = std::fs::read_to_string(data.join("token")).context("cannot read the token file")?;
        let token: Arc<str> = token_text.lines().next().and_then(|l| l.split(',').next()).unwrap_or("").trim().into();
        let ca_pem = std::fs::read(data.join("tls").join("ca.crt")).context("cannot read tls/ca.crt")?;
        Ok(Rudder { proc, _dir: dir, addr, token, ca_pem })
    }

    pub fn target(&self, proto: Proto) -> Result<Target> {
        Ok(Target {
            addr: self.addr,
            tls: Some(tls_trusting(&self.ca_pem, proto)?),
            token: Some(self.token.clone()),
            proto,
        })
    }
}

/// A running single-member etcd with default durability settings.
pub struct Etcd {
    pub proc: Proc,
    _dir: Scratch,
    pub endpoint: String,
    /// From exec until `/health` first answered healthy.
    pub ready_after: Duration,
}

impl Etcd {
    pub async fn start(bin: &Path) -> Result<Etcd> {
        let dir = Scratch::new("rudder-bench-etcd-")?;
        let client_port = free_port()?;
        let mut peer_port = free_port()?;
        while peer_port == client_port {
            peer_port = free_port()?;
        }
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new(bin);
        cmd.arg("--name")
            .arg("bench")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("bench={peer_url}"))
            .arg("--initial-cluster-state")
            .arg("new")
            .args(["--logger", "zap", "--log-level", "warn"])
            // A metrics listener would be extra work that the comparison does not need.
            .env_remove("ETCD_LISTEN_METRICS_URLS");
        let started = Instant::now();
        let (proc, _) = Proc::spawn("etcd", &mut cmd, &dir.path().join("stderr.log"), false)?;
        let client_addr: SocketAddr = format!("127.0.0.1:{client_port}").parse()?;
        let target = Target { addr: client_addr, tls: None, token: None, proto: Proto::H1 };
        let deadline = started + START_TIMEOUT;
        loop {
            if let Ok(Ok(true)) = tokio::time::timeout(Duration::from_secs(2), etcd_healthy(&target)).await {
                break;
            }
            if !proc.alive() {
                bail!("etcd exited before it was ready:\n{}", proc.stderr_tail());
            }
            if Instant::now() > deadline {
                bail!("etcd was not healthy within {START_TIMEOUT:?}:\n{}", proc.stderr_tail());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let ready_after = started.elapsed();
        Ok(Etcd { proc, _dir: dir, endpoint: client_url, ready_after })
    }

    /// A new client with its own connection.
    pub async fn client(&self) -> Result<etcd_client::Client> {
        let opts = etcd_client::ConnectOptions::new().with_connect_timeout(Duration::from_secs(5));
        etcd_client::Client::connect([self.endpoint.as_str()], Some(opts)).await.context("cannot connect to etcd")
    }
}

async fn etcd_healthy(target: &Target) -> Result<bool> {
    let mut conn = Conn::open(target).await?;
    let (status, body) = conn.call(http::Method::GET, "/health", None, bytes::Bytes::new()).await?;
    Ok(status.is_success() && String::from_utf8_lossy(&body).contains("\"true\""))
}
