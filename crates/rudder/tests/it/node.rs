//! Helpers of the tests that run a real node (containerd, CNI, nftables): waiting, curl from the
//! host, the `rudder` CLI, and removing what a node leaves behind by design. The tests that use
//! them take [`exclusive`] first: nodes on one host share its nftables hooks, the cluster DNS
//! address and the `kubernetes` Service address, so they run one at a time.

use crate::common::TestServer;
use crate::kubectl::kubectl;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

static NODES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The host held by one real-node test: within this test binary and, through a lock file,
/// against node tests of other runs on the same machine.
pub struct HostLock {
    _here: tokio::sync::MutexGuard<'static, ()>,
    _machine: std::fs::File,
}

/// Holds the host for one real-node test at a time.
pub async fn exclusive() -> HostLock {
    let here = NODES.lock().await;
    let machine = tokio::task::spawn_blocking(|| {
        let path = std::env::temp_dir().join("rudder-node-tests.lock");
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .expect("the lock task runs")
    .expect("the machine-wide lock of node tests");
    HostLock { _here: here, _machine: machine }
}

/// Polls `check` every 250 ms until it returns something; panics after `timeout`.
pub async fn wait_for<F, Fut, T>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The JSON kubectl prints for `args`, when it succeeds.
pub async fn get_json(server: &TestServer, args: &[&str]) -> Option<Value> {
    let out = kubectl(server, args).await;
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
}

/// A pod as JSON, when it exists.
pub async fn pod_json(server: &TestServer, ns: &str, name: &str) -> Option<Value> {
    get_json(server, &["get", "pod", name, "-n", ns, "-o", "json"]).await
}

/// Waits until the pod's phase is `phase`.
pub async fn wait_phase(server: &TestServer, ns: &str, name: &str, phase: &str) -> Value {
    wait_for(&format!("pod {ns}/{name} to be {phase}"), Duration::from_secs(90), || async {
        pod_json(server, ns, name).await.filter(|p| p["status"]["phase"] == phase)
    })
    .await
}

/// Waits until the pod is Ready.
pub async fn wait_ready(server: &TestServer, ns: &str, name: &str) -> Value {
    wait_for(&format!("pod {ns}/{name} to be Ready"), Duration::from_secs(90), || async {
        pod_json(server, ns, name).await.filter(|p| {
            p["status"]["conditions"]
                .as_array()
                .is_some_and(|l| l.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
    })
    .await
}

/// Waits until the node reports Ready.
pub async fn wait_node_ready(server: &TestServer, node: &str) -> Value {
    wait_for(&format!("node {node} to be Ready"), Duration::from_secs(60), || async {
        let n = get_json(server, &["get", "node", node, "-o", "json"]).await?;
        n["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True").then_some(n)
    })
    .await
}

/// Waits up to a minute until `kubectl get pods <scope>` lists none; whether it got there.
pub async fn wait_for_no_pods(server: &TestServer, scope: &[&str]) -> bool {
    let start = Instant::now();
    let mut args = vec!["get", "pods", "-o", "name"];
    args.extend_from_slice(scope);
    while start.elapsed() < Duration::from_secs(60) {
        let out = kubectl(server, &args).await;
        if out.status.success() && out.stdout.iter().all(u8::is_ascii_whitespace) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Runs the `rudder` binary.
pub fn rudder(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rudder")).args(args).output().expect("rudder runs")
}

/// HTTP GET from the host with curl (only to the node's own pod and Service ranges, behind the
/// node agent's egress guard): (exit code, body).
pub fn curl(url: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new("curl").args(["-sS", "--max-time", "5", url]).output().expect("curl runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Unmounts whatever containerd left mounted under `dir` (deepest first).
pub fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let prefix = dir.display().to_string();
    let mut mounts: Vec<&str> =
        info.lines().filter_map(|l| l.split_whitespace().nth(4)).filter(|m| m.starts_with(&prefix)).collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = std::process::Command::new("umount").args(["-l", m]).status();
    }
}

/// Removes what outlives the server by design (as with a stopped kubelet): containers still
/// running under the test's own cgroup root and their shims (after a failed test), the node's
/// CNI bridge, and the pods' cgroups.
pub fn remove_node_leftovers(dir: &Path, cgroup_root: &str) {
    kill_leftover_processes(dir, cgroup_root);
    let bridge = format!("rudder-{}", rudder_kubelet::network::short_hash(&dir.join("agent").display().to_string()));
    let _ =
        std::process::Command::new("ip").args(["link", "del", &bridge]).stderr(std::process::Stdio::null()).status();
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else { return };
    for c in controllers.flatten() {
        let root = c.path().join(cgroup_root.trim_start_matches('/'));
        if root.is_dir() {
            let _ = std::process::Command::new("find")
                .arg(&root)
                .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// `catch_unwind` on a future, so a test can clean up its node before failing.
pub trait CatchUnwind: std::future::Future + Sized {
    /// The future, catching a panic as an `Err`.
    fn catch_unwind_boxed(self) -> futures::future::CatchUnwind<Self>
    where
        Self: std::panic::UnwindSafe,
    {
        futures::FutureExt::catch_unwind(self)
    }
}
impl<F: std::future::Future> CatchUnwind for F {}

/// Kills (SIGKILL) the processes in cgroups under `cgroup_root` and the containerd shims
/// serving the node in `dir`: only what this test's node started.
fn kill_leftover_processes(dir: &Path, cgroup_root: &str) {
    let mut pids = std::collections::BTreeSet::new();
    let mut stack: Vec<std::path::PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|c| c.path().join(cgroup_root.trim_start_matches('/')))
        .filter(|p| p.is_dir())
        .collect();
    while let Some(d) = stack.pop() {
        if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        stack.extend(std::fs::read_dir(&d).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    let socket = dir.display().to_string();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.starts_with("/usr/bin/containerd-shim") && cmdline.contains(&socket) {
            pids.insert(pid);
        }
    }
    if pids.is_empty() {
        return;
    }
    eprintln!("removing {} leftover process(es) of the node in {}", pids.len(), dir.display());
    for pid in &pids {
        let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
}
