//! Starting and stopping the real `rudder server` for tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `rudder server` child process with its own data dir.
pub struct TestServer {
    child: Option<Child>,
    /// The data dir (removed when the last owner drops it).
    pub dir: std::sync::Arc<tempfile::TempDir>,
    /// `host:port` of the API.
    pub addr: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
}

impl TestServer {
    /// Starts a server on a fresh data dir, without the controller manager: the API tests see
    /// only what they make (no `kube-root-ca.crt` or `default` ServiceAccount appearing, no
    /// namespace emptied behind their back). Tests of the components use [`TestServer::start_in`].
    pub async fn start() -> TestServer {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_in(dir, &["--disable-controller-manager"]).await
    }

    /// Starts a server on `dir` (which may hold an earlier server's state), without a node agent.
    pub async fn start_in(dir: std::sync::Arc<tempfile::TempDir>, extra: &[&str]) -> TestServer {
        let mut args = vec!["--disable-agent"];
        args.extend_from_slice(extra);
        Self::spawn(dir, &args).await
    }

    /// Starts a server with its node agent (real containers): only for tests behind
    /// [`containers_enabled`].
    pub async fn start_with_agent(dir: std::sync::Arc<tempfile::TempDir>, extra: &[&str]) -> TestServer {
        Self::spawn(dir, extra).await
    }

    async fn spawn(dir: std::sync::Arc<tempfile::TempDir>, extra: &[&str]) -> TestServer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rudder"));
        cmd.arg("server")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--https-port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("the rudder binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read server output") {
                if let Some(rest) = line.strip_prefix("rudder server is ready at https://") {
                    return rest.split_whitespace().next().expect("address after 'ready at'").to_string();
                }
            }
            panic!("rudder server exited before it was ready");
        })
        .await
        .expect("rudder server is ready within 30 s");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let kubeconfig = dir.path().join("admin.kubeconfig");
        TestServer { child: Some(child), dir, addr, kubeconfig }
    }

    /// A kube-rs client authenticated with the admin certificate.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig parses");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig loads");
        kube::Client::try_from(config).expect("client builds")
    }

    /// The admin bearer token from the token file.
    pub fn token(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("token")).expect("token file");
        text.split(',').next().expect("token").trim().to_string()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(|c| c.id()).expect("server is running")
    }

    /// Kills the server with SIGKILL and waits for it.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.expect("kill the server");
        }
    }

    /// Stops the server with SIGTERM and returns its exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("server is running");
        let pid = c.id().expect("pid");
        let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(20), c.wait())
            .await
            .expect("server exits after SIGTERM")
            .expect("wait")
    }

    /// The data dir path.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Whether the tests that run real containers (root, containerd, runc, CNI plugins) are on:
/// `RUDDER_E2E_CONTAINERS=1`, which CI sets after installing them.
pub fn containers_enabled() -> bool {
    std::env::var("RUDDER_E2E_CONTAINERS").is_ok_and(|v| v == "1")
}

/// Sends a raw request with the admin client and returns status and body.
pub async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    let req = b.body(body).expect("request builds");
    let resp = client.send(req.map(kube::client::Body::from)).await.expect("request is answered");
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes().to_vec();
    (status, bytes)
}

/// Like [`raw`] but decodes the body as JSON.
pub async fn raw_json(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let bytes = if body.is_null() { Vec::new() } else { serde_json::to_vec(&body).unwrap() };
    let (status, out) = raw(client, method, path, content_type, bytes).await;
    let v = serde_json::from_slice(&out)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&out).into_owned()));
    (status, v)
}

/// The real kubectl 1.32: `KUBECTL` if set, else `kubectl.1.32` on PATH or in the Google Cloud
/// SDK's bin folder.
pub fn kubectl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return PathBuf::from(p);
    }
    let candidates = [
        PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.32"),
        PathBuf::from("/usr/local/google-cloud-sdk/bin/kubectl.1.32"),
        PathBuf::from("/opt/google-cloud-sdk/bin/kubectl.1.32"),
    ];
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("kubectl.1.32");
            if p.exists() {
                return p;
            }
        }
    }
    candidates.into_iter().find(|p| p.exists()).expect("kubectl 1.32 is installed (set KUBECTL to its path)")
}

impl TestServer {
    /// Like [`TestServer::client`], but without kube-rs's automatic retries of 429, 503 and
    /// 504 answers, so tests see every answer as the server gave it.
    pub async fn client_without_retries(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig parses");
        let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig loads");
        config.default_retry = false;
        kube::Client::try_from(config).expect("client builds")
    }
}

/// Percent-encodes everything outside the unreserved set (for query values in raw requests).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
