//! Scenario 8, `pods`: the node agent with real containers (needs root, containerd, runc and
//! the CNI plugins). One `rudder server` with its node agent (a managed containerd, runc, the CNI
//! bridge) on a fresh data dir, the project's own busybox image imported offline, and:
//!
//! 1. pod start latency: N pods (busybox `sleep 3600`) POSTed at once, once with an exec
//!    readiness probe and once without; a pod watch notes when each is first seen Running and
//!    Ready, per pod from its POST being sent;
//! 2. resident memory of the idle node with a few running pods: the server process (API server,
//!    store, controllers, scheduler and kubelet are one process), the managed containerd and
//!    its shims;
//! 3. cold start to the first pod Running: on the fresh data dir (exec → API → node Ready →
//!    image import → pod Running, in parts), then restarts of the same data dir with the images
//!    already in containerd (exec → pod Running, the pod POSTed as soon as the API answers).
//!
//! Every run ends by deleting its pods, stopping the server with SIGTERM and removing what
//! outlives it (mounts under the data dir, the node's CNI bridge, the pods' cgroups); anything
//! else found then (processes, network namespaces, the egress guard's nft table) is removed by
//! PID or by name and reported. [`emergency_cleanup`] does the same from a signal or panic.

use crate::control::RunInfo;
use crate::net::{Conn, Proto, Target, first_resource_version, tls_trusting};
use crate::procs::{Proc, Scratch, machine_busy, watch_stdout, which};
use crate::report::{Section, Table, pass};
use crate::stats::{ms, quantile};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upstream's pod startup SLO: p99 of creation → Running (image pulls excluded) ≤ 5 s.
pub const START_P99_TARGET: Duration = Duration::from_secs(5);
/// The target for a cold start to the first pod Running.
pub const COLD_TARGET: Duration = Duration::from_secs(3);
/// How long the node sits with its pods Running before memory is read.
pub const SETTLE: Duration = Duration::from_secs(10);

const READY_PREFIX: &str = "rudder server is ready at https://";
const PODS_PATH: &str = "/api/v1/namespaces/default/pods";
/// The label every pod of this scenario carries (`app=rudder-bench-pods`).
const APP_LABEL: &str = "rudder-bench-pods";
/// Where the CNI plugins may be, as the node agent looks for them.
const CNI_BIN_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"];

/// How many pods each part uses and how often the restart is measured.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Pods of each start-latency batch.
    pub pods: usize,
    /// Pods running while memory is read.
    pub mem_pods: usize,
    /// Restarts measured for the cold start with images present.
    pub starts: usize,
}

/// One batch of pods created at once.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub label: String,
    pub pods: usize,
    pub create_errors: usize,
    pub running: usize,
    pub ready: usize,
    /// Per pod: POST sent → first seen Running, sorted.
    pub to_running: Vec<Duration>,
    /// Per pod: POST sent → first seen with condition Ready=True, sorted.
    pub to_ready: Vec<Duration>,
    /// Per pod, sorted: POST sent → seen bound; seen bound → seen Running (the kubelet's part:
    /// sandbox, network, container start, status write).
    pub to_bound: Vec<Duration>,
    pub bound_to_running: Vec<Duration>,
    /// First POST sent → last POST answered.
    pub posted: Duration,
    /// First POST sent → last pod Running / Ready.
    pub all_running: Duration,
    pub all_ready: Duration,
    /// Where the CPU went from the first POST to the last Ready.
    pub cpu: CpuSplit,
}

/// CPU use over a window, in cores, split by who used it.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuSplit {
    pub secs: f64,
    /// The whole machine (every process).
    pub machine: f64,
    /// `rudder server` (API server, store, controllers, scheduler, kubelet).
    pub server: f64,
    /// containerd with the children it waited for (CNI plugins, `containerd-shim-runc-v2 start`).
    pub containerd: f64,
    /// The shims with the children they waited for (runc create / start / exec).
    pub shims: f64,
    /// The pods' processes (their cgroup's `cpuacct.usage`; exec probes run there too).
    pub pods: f64,
    /// Everything else: other processes on the machine and this harness.
    pub rest: f64,
}

/// CPU counters at one instant.
#[derive(Clone, Copy, Debug)]
struct CpuProbe {
    at: Instant,
    machine: Duration,
    server: Duration,
    containerd: Duration,
    shims: Duration,
    pods: Duration,
}

/// utime + stime + cutime + cstime of a process (itself and its waited-for children).
fn cpu_with_children(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    // Fields 14..=17 of stat are rest[11..=14].
    let ticks: u64 = f.get(11..15).map(|s| s.iter().sum()).unwrap_or(0);
    Duration::from_micros(ticks * 1_000_000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// CPU used by the processes in the cgroup tree `root` since it was made.
fn cgroup_cpu(root: &str) -> Duration {
    let rel = root.trim_start_matches('/');
    let v1 = Path::new("/sys/fs/cgroup/cpuacct").join(rel).join("cpuacct.usage");
    if let Some(ns) = std::fs::read_to_string(v1).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
        return Duration::from_nanos(ns);
    }
    let v2 = Path::new("/sys/fs/cgroup").join(rel).join("cpu.stat");
    std::fs::read_to_string(v2)
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse::<u64>().ok()))
        .map(Duration::from_micros)
        .unwrap_or_default()
}

impl CpuSplit {
    fn between(a: &CpuProbe, b: &CpuProbe) -> CpuSplit {
        let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let per = |x: Duration, y: Duration| y.saturating_sub(x).as_secs_f64() / secs;
        let machine = per(a.machine, b.machine);
        let (server, containerd, shims, pods) =
            (per(a.server, b.server), per(a.containerd, b.containerd), per(a.shims, b.shims), per(a.pods, b.pods));
        CpuSplit {
            secs,
            machine,
            server,
            containerd,
            shims,
            pods,
            rest: (machine - server - containerd - shims - pods).max(0.0),
        }
    }
}

/// Memory of one process (KiB): VmRSS, VmHWM and Pss.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcMem {
    pub rss: u64,
    pub hwm: u64,
    pub pss: u64,
}

/// Memory of the node with `pods` pods Running, [`SETTLE`] after they were.
#[derive(Clone, Debug, Default)]
pub struct MemSample {
    pub pods: usize,
    pub server: ProcMem,
    pub containerd: Option<ProcMem>,
    pub shims: usize,
    /// Sums over the shims.
    pub shims_mem: ProcMem,
    /// Sum over the processes inside the pods' cgroups (pause and `sleep`), for context.
    pub pod_procs: usize,
    pub pod_procs_mem: ProcMem,
}

/// The first start on a fresh data dir, in parts (each from the exec of `rudder server`).
#[derive(Clone, Debug, Default)]
pub struct FreshStart {
    pub api: Duration,
    pub node_ready: Duration,
    /// How long `rudder image import` of the busybox tarball took (started at node Ready).
    pub import: Duration,
    /// exec → the pod (POSTed right after the import) seen Running.
    pub pod_running: Duration,
    /// POST → Running of that pod.
    pub pod_alone: Duration,
}

/// A restart of the same data dir with the images already imported.
#[derive(Clone, Debug, Default)]
pub struct Restart {
    /// exec → the "ready" line (the API answers).
    pub api: Duration,
    /// exec → the pod, POSTed right then, seen Running.
    pub running: Duration,
}

/// Everything the scenario measured; parts that failed are absent.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub ctx: RunInfo,
    pub machine: String,
    pub pod_cidr: String,
    pub fresh: Option<FreshStart>,
    pub batches: Vec<Batch>,
    pub mem: Option<MemSample>,
    pub restarts: Vec<Restart>,
    /// SIGTERM → exit of the server, each time it was stopped with no pods left.
    pub stops: Vec<Duration>,
    /// What was still there after the server stopped and what the harness removed.
    pub leftovers: Vec<String>,
    /// Errors of parts that did not complete.
    pub errors: Vec<String>,
    /// Busy cores of other processes over one second before the node started and after it
    /// was gone (nothing of the scenario's runs then).
    pub others_before: f64,
    pub others_after: f64,
}

// ---------------------------------------------------------------------------------------------
// prerequisites and machine facts

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Why this machine cannot run the scenario, if it cannot.
pub fn missing_prerequisites() -> Option<String> {
    if !is_root() {
        return Some("needs root (containerd, cgroups, network namespaces, nftables)".into());
    }
    let missing: Vec<&str> = ["containerd", "runc", "containerd-shim-runc-v2", "nft", "ip", "umount"]
        .into_iter()
        .filter(|p| which(p).is_none())
        .collect();
    if !missing.is_empty() {
        return Some(format!("not on PATH: {} (scripts/setup-node installs them)", missing.join(", ")));
    }
    if !CNI_BIN_DIRS.iter().any(|d| Path::new(d).join("bridge").is_file()) {
        return Some(format!("no CNI bridge plugin in {}", CNI_BIN_DIRS.join(", ")));
    }
    None
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn machine_facts() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| format!("{:.1} GiB RAM", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let cgroups = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { "cgroup v2" } else { "cgroup v1" };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let containerd = first_line("containerd", &["--version"]);
    let containerd = containerd.split_whitespace().nth(2).unwrap_or(&containerd).to_string();
    let runc = first_line("runc", &["--version"]);
    format!("{cores} cores, {cpu}, {mem}, kernel {kernel}, {cgroups}; containerd {containerd}, {runc}")
}

/// A /24 in 10.42.200.0–10.42.254.0 (inside the node agent's guarded 10.42.0.0/16) that no
/// address or route in `ip_text` (output of `ip -o -4 addr` and `ip -4 route`) uses yet.
fn pick_pod_cidr(ip_text: &str, seed: u32) -> Option<String> {
    (0..55u32)
        .map(|i| 200 + (seed + i) % 55)
        .find(|x| !ip_text.contains(&format!("10.42.{x}.")))
        .map(|x| format!("10.42.{x}.0/24"))
}

/// The suffix the node agent derives its bridge and nft table names from: 32-bit FNV-1a of the
/// agent's directory, first six hex digits (as `rudder_kubelet::network::short_hash`; the run
/// checks that the bridge of that name exists).
fn short_hash(seed: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in seed.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")[..6].to_string()
}

// ---------------------------------------------------------------------------------------------
// /proc

fn proc_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
        })
        .unwrap_or_default()
}

/// (parent PID, state) from /proc/PID/stat.
fn ppid_state(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    Some((f.next()?.parse().ok()?, state))
}

/// Whether a process exists and has not exited (a zombie counts as exited).
fn running(pid: u32) -> bool {
    matches!(ppid_state(pid), Some((_, s)) if s != 'Z' && s != 'X')
}

/// Whether `args` is a containerd shim serving the containerd at `socket`.
fn is_shim_of(args: &[String], socket: &str) -> bool {
    args.first().is_some_and(|a| a.ends_with("containerd-shim-runc-v2") || a.ends_with("containerd-shim"))
        && args.windows(2).any(|w| w[0] == "-address" && w[1] == socket)
}

/// PIDs of the shims of the containerd at `socket`.
fn shims_of(socket: &str) -> Vec<u32> {
    proc_pids().into_iter().filter(|&p| running(p) && is_shim_of(&cmdline(p), socket)).collect()
}

/// The managed containerd: a running `containerd` whose arguments name a file under `dir`.
fn containerd_under(dir: &str) -> Option<u32> {
    proc_pids().into_iter().find(|&p| {
        let args = cmdline(p);
        running(p)
            && args.first().is_some_and(|a| a.ends_with("/containerd") || a == "containerd")
            && args.iter().any(|a| a.starts_with(dir))
    })
}

fn status_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn proc_mem(pid: u32) -> Option<ProcMem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Some(ProcMem {
        rss: status_kib(&status, "VmRSS:"),
        hwm: status_kib(&status, "VmHWM:"),
        pss: status_kib(&rollup, "Pss:"),
    })
}

fn sum_mem(pids: &[u32]) -> ProcMem {
    pids.iter().filter_map(|&p| proc_mem(p)).fold(ProcMem::default(), |a, m| ProcMem {
        rss: a.rss + m.rss,
        hwm: a.hwm + m.hwm,
        pss: a.pss + m.pss,
    })
}

/// The directory of `root` (a cgroupfs path like `/rudder-bench-1`) in every mounted
/// controller hierarchy (v1) or in the unified one (v2).
fn cgroup_dirs(root: &str) -> Vec<PathBuf> {
    let rel = root.trim_start_matches('/');
    let base = Path::new("/sys/fs/cgroup");
    let mut out = Vec::new();
    if base.join("cgroup.controllers").exists() {
        out.push(base.join(rel));
    } else if let Ok(dir) = std::fs::read_dir(base) {
        for c in dir.flatten() {
            // Skip the symlinks (cpu → cpu,cpuacct): the real directory is listed too.
            if c.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(c.path().join(rel));
            }
        }
    }
    out.into_iter().filter(|d| d.is_dir()).collect()
}

/// Every process in the cgroup tree `root`, over all hierarchies.
fn cgroup_pids(root: &str) -> Vec<u32> {
    fn walk(dir: &Path, out: &mut HashSet<u32>) {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
    }
    let mut set = HashSet::new();
    for d in cgroup_dirs(root) {
        walk(&d, &mut set);
    }
    let mut v: Vec<u32> = set.into_iter().collect();
    v.sort_unstable();
    v
}

/// Thaws every frozen cgroup of the tree `root` (runc freezes a container's cgroup while it
/// signals it; a shim killed meanwhile leaves it frozen, and frozen tasks cannot die).
/// Returns how many were frozen.
fn thaw(root: &str) -> usize {
    fn walk(dir: &Path, file: &str, frozen: &str, thawed: &str, n: &mut usize) {
        let f = dir.join(file);
        if std::fs::read_to_string(&f).is_ok_and(|s| s.trim() == frozen) && std::fs::write(&f, thawed).is_ok() {
            *n += 1;
        }
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), file, frozen, thawed, n);
                }
            }
        }
    }
    let mut n = 0;
    for d in cgroup_dirs(root) {
        // v1: the freezer hierarchy's freezer.state; v2: cgroup.freeze in the unified one.
        walk(&d, "freezer.state", "FROZEN", "THAWED", &mut n);
        walk(&d, "cgroup.freeze", "1", "0", &mut n);
    }
    n
}

/// Mount points under `dir` in a mountinfo text, deepest first.
fn mounts_under(mountinfo: &str, dir: &str) -> Vec<String> {
    let prefix = format!("{}/", dir.trim_end_matches('/'));
    let mut m: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| p.starts_with(&prefix) || *p == dir)
        .map(str::to_string)
        .collect();
    m.sort_by_key(|p| std::cmp::Reverse(p.len()));
    m.dedup();
    m
}

fn kill(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(|p| p.to_string()))
        .stderr(Stdio::null())
        .status();
}

fn wait_gone(pids: &[u32], limit: Duration) {
    let deadline = Instant::now() + limit;
    while pids.iter().any(|&p| running(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// what a run leaves behind, and removing it

/// Everything that identifies one node of this scenario on the machine.
#[derive(Clone, Debug)]
struct Footprint {
    data: PathBuf,
    cgroup_root: String,
    server_pid: Option<u32>,
}

impl Footprint {
    fn agent_dir(&self) -> PathBuf {
        self.data.join("agent")
    }
    fn socket(&self) -> String {
        self.agent_dir().join("containerd").join("containerd.sock").display().to_string()
    }
    fn suffix(&self) -> String {
        short_hash(&self.agent_dir().display().to_string())
    }
    fn bridge(&self) -> String {
        format!("rudder-{}", self.suffix())
    }
    fn nft_table(&self) -> String {
        format!("rudder_guard_{}", self.suffix())
    }

    /// Removes whatever of this node is left once its server is gone; returns what was found.
    /// The bridge and the cgroup directories outlive a stopped node agent by design (as with a
    /// stopped kubelet); anything else is reported as unexpected.
    fn sweep(&self) -> Vec<String> {
        let mut found = Vec::new();
        let agent = self.agent_dir().display().to_string();
        // Processes: the pods' (by cgroup), the shims (by containerd address), containerd.
        let pod_pids = cgroup_pids(&self.cgroup_root);
        let netns: HashSet<(u64, u64)> = pod_pids
            .iter()
            .filter_map(|p| std::fs::metadata(format!("/proc/{p}/ns/net")).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        let shims = shims_of(&self.socket());
        let containerd: Vec<u32> = containerd_under(&agent).into_iter().collect();
        let frozen = thaw(&self.cgroup_root);
        if frozen > 0 {
            found.push(format!("unexpected: {frozen} frozen cgroup(s), thawed"));
        }
        for (what, pids) in [("containerd", &containerd), ("shim", &shims), ("pod process", &pod_pids)] {
            if !pids.is_empty() {
                found.push(format!("unexpected: {} {what}(es) still running, killed (SIGKILL by PID)", pids.len()));
                kill("KILL", pids);
            }
        }
        let all: Vec<u32> = containerd.iter().chain(&shims).chain(&pod_pids).copied().collect();
        wait_gone(&all, Duration::from_secs(5));
        // Network namespaces of those pods that the CRI plugin had bind-mounted.
        for dir in ["/var/run/netns", "/run/netns"] {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for e in entries.flatten() {
                let path = e.path();
                if std::fs::metadata(&path).is_ok_and(|m| netns.contains(&(m.dev(), m.ino()))) {
                    found.push(format!("unexpected: network namespace {} left, removed", path.display()));
                    let _ = Command::new("umount").arg(&path).stderr(Stdio::null()).status();
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        // Mounts under the data dir (rootfs overlays, sandbox shm).
        let mounts = mounts_under(
            &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
            &self.data.display().to_string(),
        );
        if !mounts.is_empty() {
            found.push(format!("unexpected: {} mount(s) under the data dir, unmounted (umount -l)", mounts.len()));
            for m in &mounts {
                let _ = Command::new("umount").args(["-l", m]).stderr(Stdio::null()).status();
            }
        }
        let bridge = self.bridge();
        if Path::new("/sys/class/net").join(&bridge).exists() {
            found.push(format!("bridge {bridge} (left by design), deleted"));
            let _ = Command::new("ip").args(["link", "del", &bridge]).stderr(Stdio::null()).status();
        }
        let cgroups = cgroup_dirs(&self.cgroup_root).len();
        // A cgroup can be removed once its last task is gone, which takes a moment after a kill.
        for _ in 0..20 {
            for root in cgroup_dirs(&self.cgroup_root) {
                let _ = Command::new("find")
                    .arg(&root)
                    .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                    .stderr(Stdio::null())
                    .status();
            }
            if cgroup_dirs(&self.cgroup_root).is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if cgroups > 0 {
            found.push(format!("cgroup {} in {cgroups} hierarchies (left by design), removed", self.cgroup_root));
        }
        let still = cgroup_dirs(&self.cgroup_root);
        if !still.is_empty() {
            found.push(format!("unexpected: could not remove the cgroup in {} hierarchies", still.len()));
        }
        let table = self.nft_table();
        if nft_has_table(&table) {
            found.push(format!("unexpected: nft table inet {table} left, deleted"));
            let _ = Command::new("nft").args(["delete", "table", "inet", &table]).stderr(Stdio::null()).status();
        }
        found
    }
}

fn nft_has_table(table: &str) -> bool {
    Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == format!("table inet {table}")))
        .unwrap_or(false)
}

/// Nodes of runs in progress, for [`emergency_cleanup`].
static ACTIVE: Mutex<Vec<Footprint>> = Mutex::new(Vec::new());

fn active() -> std::sync::MutexGuard<'static, Vec<Footprint>> {
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// From a signal handler or panic hook, before the harness kills its children and removes its
/// temporary dirs: stops each running node's server with SIGTERM (up to 10 s) and removes what
/// it leaves (pods' processes, shims, mounts, bridge, cgroups, nft table).
pub fn emergency_cleanup() {
    let nodes = match ACTIVE.try_lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(std::sync::TryLockError::Poisoned(e)) => std::mem::take(&mut *e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => Vec::new(),
    };
    for n in nodes {
        if let Some(pid) = n.server_pid.filter(|&p| running(p)) {
            kill("TERM", &[pid]);
            wait_gone(&[pid], Duration::from_secs(10));
        }
        for line in n.sweep() {
            eprintln!("pods cleanup: {line}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the node: one data dir, the server started and stopped on it

struct Node {
    rudder: PathBuf,
    // Field order: the server goes before the scratch dir is removed.
    server: Option<Proc>,
    target: Option<Target>,
    dir: Scratch,
    fp: Footprint,
    name: String,
    cidr: String,
    spawns: usize,
}

impl Node {
    fn new(rudder: &Path, cidr: String) -> Result<Node> {
        let dir = Scratch::new("rudder-bench-pods-")?;
        let pid = std::process::id();
        let fp =
            Footprint { data: dir.path().join("data"), cgroup_root: format!("/rudder-bench-{pid}"), server_pid: None };
        active().push(fp.clone());
        Ok(Node {
            rudder: rudder.to_path_buf(),
            server: None,
            target: None,
            dir,
            fp,
            name: format!("bench-node-{pid}"),
            cidr,
            spawns: 0,
        })
    }

    fn set_server_pid(&mut self, pid: Option<u32>) {
        self.fp.server_pid = pid;
        for f in active().iter_mut().filter(|f| f.data == self.fp.data) {
            f.server_pid = pid;
        }
    }

    /// Execs `rudder server` with its node agent; returns the exec instant and the instant the
    /// "ready" line (the API listens) was read.
    async fn start(&mut self) -> Result<(Instant, Instant)> {
        self.spawns += 1;
        let mut cmd = Command::new(&self.rudder);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(&self.fp.data)
            .args(["--https-port", "0", "--kubelet-port", "0", "--node-ip", "127.0.0.1"])
            .args(["--node-name", &self.name, "--pod-cidr", &self.cidr, "--cgroup-root", &self.fp.cgroup_root]);
        let log = self.dir.path().join(format!("server-{}.log", self.spawns));
        let spawned = Instant::now();
        let (proc, stdout) = Proc::spawn("rudder", &mut cmd, &log, true)?;
        self.set_server_pid(Some(proc.pid()));
        let ready = watch_stdout(stdout.context("stdout is piped")?, READY_PREFIX);
        let (line, at) = match tokio::time::timeout(Duration::from_secs(60), ready).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => bail!("rudder server exited before it was ready:\n{}", proc.stderr_tail()),
            Err(_) => bail!("rudder server was not ready within 60 s:\n{}", proc.stderr_tail()),
        };
        let addr = line[READY_PREFIX.len()..]
            .split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("cannot read the address in {line:?}"))?;
        let token = std::fs::read_to_string(self.fp.data.join("token")).context("cannot read the token file")?;
        let token: Arc<str> = token.lines().next().and_then(|l| l.split(',').next()).unwrap_or("").trim().into();
        let ca = std::fs::read(self.fp.data.join("tls").join("ca.crt")).context("cannot read tls/ca.crt")?;
        self.target =
            Some(Target { addr, tls: Some(tls_trusting(&ca, Proto::H1)?), token: Some(token), proto: Proto::H1 });
        self.server = Some(proc);
        Ok((spawned, at))
    }

    fn target(&self) -> Result<&Target> {
        self.target.as_ref().context("the server is not running")
    }

    fn check_alive(&self) -> Result<()> {
        match &self.server {
            Some(p) if p.alive() => Ok(()),
            Some(p) => bail!("rudder server exited:\n{}", p.stderr_tail()),
            None => bail!("the server is not running"),
        }
    }

    /// The CPU counters of this node's processes and of the machine. The shims of a batch
    /// start after the first probe (the previous batch's are gone by then), so they count from 0.
    fn cpu_probe(&self) -> CpuProbe {
        let agent = self.fp.agent_dir().display().to_string();
        CpuProbe {
            at: Instant::now(),
            machine: machine_busy(),
            server: self.server.as_ref().and_then(|p| p.cpu_time().ok()).unwrap_or_default(),
            containerd: containerd_under(&agent).map(cpu_with_children).unwrap_or_default(),
            shims: shims_of(&self.fp.socket()).into_iter().map(cpu_with_children).sum(),
            pods: cgroup_cpu(&self.fp.cgroup_root),
        }
    }

    /// Polls the Node until its Ready condition is True.
    async fn wait_node_ready(&self, limit: Duration) -> Result<Instant> {
        let mut conn = Conn::open(self.target()?).await?;
        let path = format!("/api/v1/nodes/{}", self.name);
        let deadline = Instant::now() + limit;
        loop {
            let (status, body) = conn.call(Method::GET, &path, None, Bytes::new()).await?;
            let now = Instant::now();
            if status == StatusCode::OK {
                let node: Value = serde_json::from_slice(&body).context("the node is not JSON")?;
                if has_true_condition(&node, "Ready") {
                    return Ok(now);
                }
            }
            self.check_alive()?;
            if now > deadline {
                bail!("node {} was not Ready within {limit:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `rudder image import` of `tar` into this node's containerd.
    fn import(&self, tar: &Path) -> Result<()> {
        let out = Command::new(&self.rudder)
            .args(["image", "import", "--data-dir"])
            .arg(&self.fp.data)
            .arg(tar)
            .output()
            .context("cannot run rudder image import")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !text.contains("busybox:latest") {
            bail!("rudder image import failed: {}{}", text.trim(), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// Deletes every pod of this scenario, waits until the API has none left and no shim of
    /// this node's containerd runs any more.
    async fn delete_pods(&self) -> Result<()> {
        let mut conn = Conn::open(self.target()?).await?;
        let list_path = format!("{PODS_PATH}?labelSelector=app%3D{APP_LABEL}");
        let body = conn.get_ok(&list_path).await?;
        let list: Value = serde_json::from_slice(&body).context("the pod list is not JSON")?;
        for p in list["items"].as_array().map(Vec::as_slice).unwrap_or_default() {
            if let Some(name) = p["metadata"]["name"].as_str() {
                let (status, body) =
                    conn.call(Method::DELETE, &format!("{PODS_PATH}/{name}"), None, Bytes::new()).await?;
                if !status.is_success() && status != StatusCode::NOT_FOUND {
                    bail!("DELETE pod {name}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let body = conn.get_ok(&list_path).await?;
            let list: Value = serde_json::from_slice(&body).context("the pod list is not JSON")?;
            let left = list["items"].as_array().map_or(0, Vec::len);
            if left == 0 {
                break;
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!("{left} pods were still there 90 s after their deletion");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The API forgets a pod once its containers are stopped; the sandbox goes right after.
        let socket = self.fp.socket();
        let deadline = Instant::now() + Duration::from_secs(45);
        while !shims_of(&socket).is_empty() {
            if Instant::now() > deadline {
                bail!("{} shims still ran 45 s after the pods were gone", shims_of(&socket).len());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// SIGTERM to the server and the wait for it to exit; SIGKILL after 30 s.
    async fn stop(&mut self) -> Result<Duration> {
        let Some(proc) = self.server.take() else { return Ok(Duration::ZERO) };
        self.target = None;
        let started = Instant::now();
        kill("TERM", &[proc.pid()]);
        while proc.alive() {
            if started.elapsed() > Duration::from_secs(30) {
                let pid = proc.pid();
                drop(proc);
                self.set_server_pid(None);
                bail!("rudder server (pid {pid}) did not exit within 30 s of SIGTERM; killed");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        drop(proc);
        self.set_server_pid(None);
        Ok(took)
    }

    /// The end of every run: pods deleted, server stopped, leftovers removed and reported.
    async fn finish(mut self, out: &mut Outcome) {
        if self.server.as_ref().is_some_and(Proc::alive)
            && let Err(e) = self.delete_pods().await
        {
            out.errors.push(format!("cleanup: {e:#}"));
        }
        if self.server.is_some() {
            match self.stop().await {
                Ok(d) => out.stops.push(d),
                Err(e) => out.errors.push(format!("cleanup: {e:#}")),
            }
        }
        out.leftovers.extend(self.fp.sweep());
        active().retain(|f| f.data != self.fp.data);
    }
}

fn has_true_condition(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|l| l.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

// ---------------------------------------------------------------------------------------------
// pods and the pod watch

fn pod_body(name: &str, batch: &str, probe: bool) -> Bytes {
    let probe = if probe { r#","readinessProbe":{"exec":{"command":["true"]},"periodSeconds":1}"# } else { "" };
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"{APP_LABEL}","batch":"{batch}"}}}},"spec":{{"terminationGracePeriodSeconds":1,"containers":[{{"name":"c","image":"busybox:latest","imagePullPolicy":"IfNotPresent","command":["sleep","3600"]{probe}}}]}}}}"#
    ))
}

/// When the watch first saw a pod bound to the node, Running, Ready.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    bound: Option<Instant>,
    running: Option<Instant>,
    ready: Option<Instant>,
}

/// What one watch event shows of a pod's progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Shown {
    name: String,
    /// `spec.nodeName` is set.
    bound: bool,
    /// `status.phase` is Running.
    running: bool,
    /// Condition `Ready` is True.
    ready: bool,
}

impl Seen {
    fn note(&mut self, s: &Shown, now: Instant) {
        for (flag, at) in [(s.bound, &mut self.bound), (s.running, &mut self.running), (s.ready, &mut self.ready)] {
            if flag {
                at.get_or_insert(now);
            }
        }
    }
}

/// What one watch event shows, `None` for events that are not about a live pod (deletions,
/// bookmarks).
fn read_event(line: &[u8]) -> Result<Option<Shown>> {
    let ev: Value = serde_json::from_slice(line).context("cannot read a pod watch event")?;
    match ev["type"].as_str() {
        Some("ERROR") => bail!("the pod watch sent an error: {}", ev["object"]),
        Some("ADDED" | "MODIFIED") => {}
        _ => return Ok(None),
    }
    let pod = &ev["object"];
    let Some(name) = pod["metadata"]["name"].as_str() else { return Ok(None) };
    Ok(Some(Shown {
        name: name.to_string(),
        bound: pod["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()),
        running: pod["status"]["phase"] == "Running",
        ready: has_true_condition(pod, "Ready"),
    }))
}

/// A watch of this scenario's pods of one batch, noting arrival times.
struct PodWatch {
    task: tokio::task::JoinHandle<Result<HashMap<String, Seen>>>,
    /// (Running, Ready) counts so far.
    progress: tokio::sync::watch::Receiver<(usize, usize)>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl PodWatch {
    /// Watches pods with `batch=<batch>` from revision `rv` (or the current one when `None`).
    async fn open(target: &Target, batch: &str, rv: Option<u64>) -> Result<PodWatch> {
        let mut conn = Conn::open(target).await?;
        let selector = format!("labelSelector=app%3D{APP_LABEL}%2Cbatch%3D{batch}");
        let rv = match rv {
            Some(rv) => rv,
            None => {
                let list = conn.get_ok(&format!("{PODS_PATH}?limit=1&{selector}")).await?;
                first_resource_version(&list).context("no resourceVersion in the pod list")?
            }
        };
        let path = format!("{PODS_PATH}?watch=true&resourceVersion={rv}&{selector}");
        let resp = conn.send(Method::GET, &path, None, Bytes::new()).await?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            bail!("watch {path}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        let mut body = resp.into_body();
        let (tx, progress) = tokio::sync::watch::channel((0, 0));
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let _conn = conn;
            let mut pods: HashMap<String, Seen> = HashMap::new();
            let mut buf: Vec<u8> = Vec::new();
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
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let Some(shown) = read_event(line)? else { continue };
                    pods.entry(shown.name.clone()).or_default().note(&shown, now);
                }
                buf.drain(..start);
                let counts = (
                    pods.values().filter(|s| s.running.is_some()).count(),
                    pods.values().filter(|s| s.ready.is_some()).count(),
                );
                tx.send_replace(counts);
            }
            Ok(pods)
        });
        Ok(PodWatch { task, progress, stop })
    }

    /// Waits until `n` pods were seen Running and Ready, or `limit`.
    async fn wait(&mut self, n: usize, limit: Duration, what: &str) -> Result<()> {
        let deadline = Instant::now() + limit;
        let mut told = Instant::now();
        loop {
            let (running, ready) = *self.progress.borrow_and_update();
            if running >= n && ready >= n {
                return Ok(());
            }
            if self.task.is_finished() {
                bail!("the pod watch ended early ({running} Running, {ready} Ready of {n})");
            }
            if Instant::now() > deadline {
                bail!("{what}: only {running} Running and {ready} Ready of {n} after {limit:?}");
            }
            if told.elapsed() > Duration::from_secs(10) {
                eprintln!("  waiting for {what}: {running} Running, {ready} Ready of {n}");
                told = Instant::now();
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), self.progress.changed()).await;
        }
    }

    async fn finish(self) -> Result<HashMap<String, Seen>> {
        let _ = self.stop.send(true);
        self.task.await.context("the pod watch task failed")?
    }
}

/// POSTs one pod; returns (sent, answered, resourceVersion of the new pod).
async fn post_pod(conn: &mut Conn, body: Bytes) -> Result<(Instant, Instant, Option<u64>)> {
    let sent = Instant::now();
    let (status, resp) = conn.call(Method::POST, PODS_PATH, Some("application/json"), body).await?;
    let answered = Instant::now();
    if status != StatusCode::CREATED {
        bail!("POST pod: {status}: {}", String::from_utf8_lossy(&resp[..resp.len().min(300)]));
    }
    Ok((sent, answered, first_resource_version(&resp)))
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort_unstable();
    v
}

/// `n` pods POSTed at once (one connection each, opened beforehand), then watched until all
/// are Running and Ready.
async fn batch(node: &Node, tag: &str, label: &str, n: usize, probe: bool) -> Result<Batch> {
    let target = node.target()?.clone();
    let mut watch = PodWatch::open(&target, tag, None).await?;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::open(&target).await?);
    }
    let cpu0 = node.cpu_probe();
    let posts = conns.into_iter().enumerate().map(|(i, mut conn)| {
        let name = format!("{tag}-{i:03}");
        async move {
            let r = post_pod(&mut conn, pod_body(&name, tag, probe)).await;
            (name, r)
        }
    });
    let results = futures::future::join_all(posts).await;
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let (mut errors, mut first_error, mut last_answer) = (0, None, None::<Instant>);
    for (name, r) in results {
        match r {
            Ok((s, a, _)) => {
                sent.insert(name, s);
                last_answer = Some(last_answer.map_or(a, |l| l.max(a)));
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    if sent.is_empty() {
        bail!("no pod could be created: {}", first_error.unwrap_or_default());
    }
    let waited = watch.wait(sent.len(), Duration::from_secs(150), label).await;
    let cpu1 = node.cpu_probe();
    let seen = watch.finish().await?;
    waited?;
    let first = sent.values().min().copied().unwrap_or(cpu0.at);
    let since = |pick: fn(&Seen) -> Option<Instant>| -> Vec<Duration> {
        sorted(sent.iter().filter_map(|(name, s)| Some(pick(seen.get(name)?)?.saturating_duration_since(*s))).collect())
    };
    let to_running = since(|s| s.running);
    let to_ready = since(|s| s.ready);
    let between = |a: fn(&Seen) -> Option<Instant>, b: fn(&Seen) -> Option<Instant>| -> Vec<Duration> {
        sorted(seen.values().filter_map(|s| Some(b(s)?.saturating_duration_since(a(s)?))).collect())
    };
    let last = |pick: fn(&Seen) -> Option<Instant>| {
        seen.values().filter_map(pick).max().map(|t| t.saturating_duration_since(first)).unwrap_or_default()
    };
    Ok(Batch {
        label: label.to_string(),
        pods: n,
        create_errors: errors,
        running: to_running.len(),
        ready: to_ready.len(),
        posted: last_answer.map(|a| a.saturating_duration_since(first)).unwrap_or_default(),
        all_running: last(|s| s.running),
        all_ready: last(|s| s.ready),
        to_bound: since(|s| s.bound),
        bound_to_running: between(|s| s.bound, |s| s.running),
        to_running,
        to_ready,
        cpu: CpuSplit::between(&cpu0, &cpu1),
    })
}

/// One pod POSTed now; returns (sent, seen Running).
async fn one_pod(target: &Target, name: &str) -> Result<(Instant, Instant)> {
    let mut conn = Conn::open(target).await?;
    let (sent, _, rv) = post_pod(&mut conn, pod_body(name, name, false)).await?;
    let mut watch = PodWatch::open(target, name, rv).await?;
    let waited = watch.wait(1, Duration::from_secs(60), name).await;
    let seen = watch.finish().await?;
    waited?;
    let running = seen.get(name).and_then(|s| s.running).context("the pod was not seen Running")?;
    Ok((sent, running))
}

// ---------------------------------------------------------------------------------------------
// the scenario

/// Runs the scenario; `Ok(None)` when this machine cannot run it (the reason is printed).
pub async fn run(rudder: &Path, params: Params) -> Result<Option<Outcome>> {
    if let Some(why) = missing_prerequisites() {
        eprintln!("pods: skipped: {why}");
        return Ok(None);
    }
    let mut out = Outcome {
        ctx: RunInfo {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            load_before: crate::report::load_average(),
            load_after: String::new(),
        },
        machine: machine_facts(),
        ..Outcome::default()
    };
    let ip_text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&Command::new("ip").args(["-o", "-4", "addr"]).output()?.stdout),
        String::from_utf8_lossy(&Command::new("ip").args(["-4", "route"]).output()?.stdout)
    );
    out.pod_cidr = pick_pod_cidr(&ip_text, std::process::id()).context("no free /24 in 10.42.200.0–10.42.254.0")?;
    out.others_before = crate::procs::wait_quiet(Duration::ZERO, 0.0).await;
    let mut node = Node::new(rudder, out.pod_cidr.clone())?;
    eprintln!("pods: node {} with pod CIDR {}, data dir {}", node.name, out.pod_cidr, node.fp.data.display());
    let parts = tokio::time::timeout(Duration::from_secs(420), parts(&mut node, params, &mut out)).await;
    match parts {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.errors.push(format!("{e:#}")),
        Err(_) => out.errors.push("timed out after 420 s".into()),
    }
    node.finish(&mut out).await;
    out.others_after = crate::procs::wait_quiet(Duration::ZERO, 0.0).await;
    out.ctx.load_after = crate::report::load_average();
    for l in &out.leftovers {
        eprintln!("  after shutdown: {l}");
    }
    Ok(Some(out))
}

async fn parts(node: &mut Node, params: Params, out: &mut Outcome) -> Result<()> {
    let image = node.dir.path().join("busybox.tar");
    let built = Command::new(&node.rudder)
        .args(["image", "build", "busybox", "--output"])
        .arg(&image)
        .output()
        .context("cannot run rudder image build")?;
    if !built.status.success() {
        bail!("rudder image build busybox: {}", String::from_utf8_lossy(&built.stderr).trim());
    }

    // 3a. Fresh data dir: exec → API → node Ready → import → one pod Running.
    eprintln!("pods: cold start on a fresh data dir ...");
    let (t0, api) = node.start().await?;
    let node_ready = node.wait_node_ready(Duration::from_secs(90)).await?;
    let import_started = Instant::now();
    node.import(&image)?;
    let imported = Instant::now();
    let (sent, running) = one_pod(node.target()?, "bench-first").await?;
    if !Path::new("/sys/class/net").join(node.fp.bridge()).exists() {
        out.errors.push(format!(
            "bridge {} not found: the node agent's naming changed, so the cleanup may miss it",
            node.fp.bridge()
        ));
    }
    let fresh = FreshStart {
        api: api - t0,
        node_ready: node_ready - t0,
        import: imported - import_started,
        pod_running: running - t0,
        pod_alone: running - sent,
    };
    eprintln!(
        "  API {:.2} s, node Ready {:.2} s, import {:.2} s, pod Running {:.2} s after exec ({:.2} s after its POST)",
        fresh.api.as_secs_f64(),
        fresh.node_ready.as_secs_f64(),
        fresh.import.as_secs_f64(),
        fresh.pod_running.as_secs_f64(),
        fresh.pod_alone.as_secs_f64()
    );
    out.fresh = Some(fresh);
    node.delete_pods().await?;

    // 1. Start latency, with and without a readiness probe.
    for (tag, label, probe) in
        [("bench-probe", "readiness probe (exec `true`, every 1 s)", true), ("bench-plain", "no probe", false)]
    {
        tokio::time::sleep(Duration::from_secs(2)).await;
        eprintln!("pods: {} pods at once, {label} ...", params.pods);
        let b = batch(node, tag, label, params.pods, probe).await?;
        eprintln!(
            "  created → Running p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; → Ready p99 {:.0} ms",
            ms(quantile(&b.to_running, 0.5).unwrap_or_default()),
            ms(quantile(&b.to_running, 0.99).unwrap_or_default()),
            ms(b.to_running.last().copied().unwrap_or_default()),
            ms(quantile(&b.to_ready, 0.99).unwrap_or_default()),
        );
        out.batches.push(b);
        node.delete_pods().await?;
    }

    // 2. Memory with a few idle pods.
    eprintln!("pods: memory with {} pods Running ...", params.mem_pods);
    batch(node, "bench-idle", "idle", params.mem_pods, false).await?;
    tokio::time::sleep(SETTLE).await;
    node.check_alive()?;
    let server_pid = node.server.as_ref().map(Proc::pid).context("the server is not running")?;
    let shims = shims_of(&node.fp.socket());
    let pod_pids = cgroup_pids(&node.fp.cgroup_root);
    let sample = MemSample {
        pods: params.mem_pods,
        server: proc_mem(server_pid).context("cannot read the server's memory")?,
        containerd: containerd_under(&node.fp.agent_dir().display().to_string()).and_then(proc_mem),
        shims: shims.len(),
        shims_mem: sum_mem(&shims),
        pod_procs: pod_pids.len(),
        pod_procs_mem: sum_mem(&pod_pids),
    };
    eprintln!(
        "  server {:.1} MB, containerd {:.1} MB, {} shims {:.1} MB (RSS)",
        sample.server.rss as f64 / 1024.0,
        sample.containerd.map_or(0.0, |m| m.rss as f64 / 1024.0),
        sample.shims,
        sample.shims_mem.rss as f64 / 1024.0
    );
    out.mem = Some(sample);
    node.delete_pods().await?;
    out.stops.push(node.stop().await?);

    // 3b. Restarts with the images already imported: exec → pod Running.
    for i in 0..params.starts {
        eprintln!("pods: restart {}/{} with the images present ...", i + 1, params.starts);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (t0, api) = node.start().await?;
        let (_, running) = one_pod(node.target()?, &format!("bench-cold-{i}")).await?;
        let r = Restart { api: api - t0, running: running - t0 };
        eprintln!("  API {:.2} s, pod Running {:.2} s after exec", r.api.as_secs_f64(), r.running.as_secs_f64());
        out.restarts.push(r);
        node.delete_pods().await?;
        out.stops.push(node.stop().await?);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// report

fn q_ms(v: &[Duration], p: f64) -> String {
    quantile(v, p).map_or_else(|| "n/a".into(), |d| format!("{:.0}", ms(d)))
}

fn mb(kib: u64) -> String {
    format!("{:.1}", kib as f64 * 1024.0 / 1e6)
}

fn s2(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort_unstable();
    (!v.is_empty()).then(|| v[(v.len() - 1) / 2])
}

/// The section of BENCHMARKS.md (marker key `pods`).
pub fn section(o: &Outcome) -> (&'static str, RunInfo, Section) {
    let mut t = Table::new(&["target", "measured", "result"]);
    if let Some(b) = o.batches.first() {
        let p99 = quantile(&b.to_running, 0.99).unwrap_or_default();
        t.row(vec![
            format!(
                "pod created → Running p99 ≤ {} s ({} pods at once, {})",
                START_P99_TARGET.as_secs(),
                b.pods,
                b.label
            ),
            format!("{} ms", q_ms(&b.to_running, 0.99)),
            pass(p99 <= START_P99_TARGET && b.running == b.pods).into(),
        ]);
    }
    let restart = median(&o.restarts.iter().map(|r| r.running).collect::<Vec<_>>());
    if let Some(m) = restart {
        t.row(vec![
            format!(
                "exec → first pod Running ≤ {} s (images present; median of {})",
                COLD_TARGET.as_secs(),
                o.restarts.len()
            ),
            format!("{} s", s2(m)),
            pass(m <= COLD_TARGET).into(),
        ]);
    }
    if let Some(f) = &o.fresh {
        t.row(vec![
            format!(
                "exec → first pod Running ≤ {} s (fresh data dir, image imported after node Ready)",
                COLD_TARGET.as_secs()
            ),
            format!("{} s", s2(f.pod_running)),
            pass(f.pod_running <= COLD_TARGET).into(),
        ]);
    }
    if let Some(m) = &o.mem {
        let total = m.server.rss + m.containerd.map_or(0, |c| c.rss) + m.shims_mem.rss;
        t.row(vec![
            format!("memory of the node with {} pods (anchor: k3s agent ~256 MB; no target)", m.pods),
            format!("{} MB RSS (server + containerd + shims)", mb(total)),
            "—".into(),
        ]);
    }
    let mut tables = vec![t];

    if !o.batches.is_empty() {
        let mut d = Table::new(&[
            "pods at once",
            "readiness",
            "Running / Ready",
            "POST → Running p50 / p99 / max ms",
            "POST → Ready p50 / p99 / max ms",
            "last POST answered after, s",
            "all Running / Ready after, s",
        ]);
        for b in &o.batches {
            d.row(vec![
                format!(
                    "{}{}",
                    b.pods,
                    if b.create_errors > 0 { format!(" ({} errors)", b.create_errors) } else { String::new() }
                ),
                b.label.clone(),
                format!("{} / {}", b.running, b.ready),
                format!(
                    "{} / {} / {}",
                    q_ms(&b.to_running, 0.5),
                    q_ms(&b.to_running, 0.99),
                    b.to_running.last().map_or("n/a".into(), |d| format!("{:.0}", ms(*d)))
                ),
                format!(
                    "{} / {} / {}",
                    q_ms(&b.to_ready, 0.5),
                    q_ms(&b.to_ready, 0.99),
                    b.to_ready.last().map_or("n/a".into(), |d| format!("{:.0}", ms(*d)))
                ),
                s2(b.posted),
                format!("{} / {}", s2(b.all_running), s2(b.all_ready)),
            ]);
        }
        tables.push(d);
        let mut d = Table::new(&[
            "readiness",
            "POST → bound p50 / p99 ms",
            "bound → Running p50 / p99 ms",
            "CPU over the batch, s",
            "machine (cores)",
            "server",
            "containerd + CNI",
            "shims + runc",
            "pods",
            "rest (other processes)",
        ]);
        for b in &o.batches {
            let pair = |v: &[Duration]| format!("{} / {}", q_ms(v, 0.5), q_ms(v, 0.99));
            let c = &b.cpu;
            d.row(vec![
                b.label.clone(),
                pair(&b.to_bound),
                pair(&b.bound_to_running),
                format!("{:.1}", c.secs),
                format!("{:.2}", c.machine),
                format!("{:.2}", c.server),
                format!("{:.2}", c.containerd),
                format!("{:.2}", c.shims),
                format!("{:.2}", c.pods),
                format!("{:.2}", c.rest),
            ]);
        }
        tables.push(d);
    }
    if let Some(m) = &o.mem {
        let mut d = Table::new(&["process", "count", "RSS, MB", "peak RSS, MB", "PSS, MB"]);
        let row = |what: &str, n: usize, p: &ProcMem| vec![what.into(), n.to_string(), mb(p.rss), mb(p.hwm), mb(p.pss)];
        d.row(row("`rudder server` (API server, store, controllers, scheduler, kubelet)", 1, &m.server));
        match &m.containerd {
            Some(c) => d.row(row("managed containerd", 1, c)),
            None => d.row(vec!["managed containerd".into(), "0".into(), "n/a".into(), "n/a".into(), "n/a".into()]),
        }
        d.row(row("containerd-shim-runc-v2 (sum)", m.shims, &m.shims_mem));
        let total = ProcMem {
            rss: m.server.rss + m.containerd.map_or(0, |c| c.rss) + m.shims_mem.rss,
            hwm: m.server.hwm + m.containerd.map_or(0, |c| c.hwm) + m.shims_mem.hwm,
            pss: m.server.pss + m.containerd.map_or(0, |c| c.pss) + m.shims_mem.pss,
        };
        d.row(row("node total (the three above)", 1 + usize::from(m.containerd.is_some()) + m.shims, &total));
        d.row(row(
            "pods' own processes (pause = `sh` + `sleep`, and `sleep 3600`; for context)",
            m.pod_procs,
            &m.pod_procs_mem,
        ));
        tables.push(d);
    }
    if o.fresh.is_some() || !o.restarts.is_empty() {
        let mut d = Table::new(&[
            "start",
            "exec → API answers, s",
            "exec → node Ready, s",
            "image import, s",
            "exec → pod Running, s",
            "pod POST → Running, s",
        ]);
        if let Some(f) = &o.fresh {
            d.row(vec![
                "fresh data dir".into(),
                s2(f.api),
                s2(f.node_ready),
                s2(f.import),
                s2(f.pod_running),
                s2(f.pod_alone),
            ]);
        }
        for (i, r) in o.restarts.iter().enumerate() {
            d.row(vec![
                format!("restart {} (images present)", i + 1),
                s2(r.api),
                "—".into(),
                "—".into(),
                s2(r.running),
                s2(r.running.saturating_sub(r.api)),
            ]);
        }
        tables.push(d);
    }

    let batch_pods = o.batches.first().map_or(0, |b| b.pods);
    let mem_pods = o.mem.as_ref().map_or(0, |m| m.pods);
    let mut note = format!(
        "Machine: {}. One `rudder server` with its node agent on a fresh data dir (`--node-name bench-node-PID --pod-cidr {} \
         --kubelet-port 0 --cgroup-root /rudder-bench-PID --node-ip 127.0.0.1 --https-port 0`): a managed containerd with \
         runc, the cgroupfs driver and the CNI bridge; the project's busybox image (`rudder image build busybox`) imported \
         offline with `rudder image import`; every pod is busybox `sleep 3600` with `imagePullPolicy: IfNotPresent` (nothing \
         is pulled) and `terminationGracePeriodSeconds: 1`, in the default namespace.\n\n\
         **Start latency**: {batch_pods} pods are POSTed at once (one TLS connection each, opened beforehand), once with an \
         exec readiness probe (`true`, every second) and once without. One pod watch (from the revision before the first \
         POST) notes the arrival of the first event showing each pod with phase Running and with condition Ready=True; the \
         per-pod figure is from that pod's POST being sent to that arrival, so it includes the API, the scheduler, the \
         kubelet's sandbox (CNI) and container starts, its status write and the watch. Upstream's SLO counts from \
         `creationTimestamp` (one-second resolution) to all containers started, observed via watch, image pulls excluded. \
         The stages come from the same watch: bound = first seen with `spec.nodeName`; each stage's quantiles are taken \
         on their own, so they do not add up to the total's. The kubelet writes the pod's first status (with \
         `PodReadyToStartContainers`) only once its containers run, so the sandbox cannot be told apart from the container \
         start here. CPU is averaged from the first POST to the last pod Ready, in cores: the machine's busy time \
         (/proc/stat), the server's and containerd's (/proc/PID/stat, containerd's with the CNI plugins and shim \
         launchers it waited for), the shims' (with the runc calls they waited for), the pods' (`cpuacct.usage` of the \
         cgroup root, which includes the exec probes), and the rest = machine − those (other processes on the machine, \
         this harness).\n\n\
         **Memory**: {mem_pods} pods Running, then {} s of rest, then VmRSS / VmHWM from /proc/PID/status and Pss from \
         /proc/PID/smaps_rollup. Rudder has no separate agent process yet: the API server, store, controllers, scheduler \
         and kubelet are one process, so its figure is an upper bound for the agent alone. The shims share their binary's \
         pages, so their summed RSS overstates what they cost; PSS splits shared pages between the processes. The k3s \
         agent's ~256 MB is an anchor from its documentation, not measured here.\n\n\
         **Cold start**: on the fresh data dir, the exec of `rudder server` → the \"ready\" line (the API listens) → the \
         Node's Ready condition (the kubelet started containerd, imported the pause image and registered) → `rudder image \
         import` of busybox (started at node Ready) → one pod POSTed and seen Running. Then the server is stopped (pods \
         deleted first) and restarted on the same data dir, the images now in containerd: exec → \"ready\" line → one pod \
         POSTed at once → seen Running. The restarted server still holds the Node from before, so the scheduler binds the \
         pod while the kubelet is starting. k3s's anchor is about 50 s to all system pods Ready on its own hardware (not \
         measured here; Rudder starts no system pods).",
        o.machine,
        o.pod_cidr,
        SETTLE.as_secs(),
    );
    note.push_str(&format!(
        "\n\nOther processes kept {:.2} cores busy in the second before the node started and {:.2} in the second after it \
         was gone.",
        o.others_before, o.others_after
    ));
    if !o.stops.is_empty() {
        let stops: Vec<String> = o.stops.iter().map(|d| s2(*d)).collect();
        note.push_str(&format!(
            "\n\nSIGTERM → exit of the server (no pods left): {} s. After the last stop the harness checked for and removed: {}.",
            stops.join(", "),
            if o.leftovers.is_empty() { "nothing".into() } else { o.leftovers.join("; ") }
        ));
    }
    if !o.errors.is_empty() {
        note.push_str(&format!("\n\nParts that did not complete: {}.", o.errors.join("; ")));
    }
    ("pods", o.ctx.clone(), Section { title: "8. Pods in real containers (node agent)".into(), note, tables })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hash_matches_the_node_agents() {
        // Values of rudder_kubelet::network::short_hash (32-bit FNV-1a, six hex digits).
        assert_eq!(short_hash("/var/lib/rudder/agent"), "812e68");
        assert_eq!(short_hash(""), "811c9d");
    }

    #[test]
    fn pod_cidr_avoids_ranges_in_use() {
        let ip = "3: rudder-x    inet 10.42.210.1/24 brd 10.42.210.255 scope global rudder-x\n\
                  10.42.211.0/24 dev rudder-y proto kernel scope link src 10.42.211.1\n";
        assert_eq!(pick_pod_cidr(ip, 10).as_deref(), Some("10.42.212.0/24"));
        assert_eq!(pick_pod_cidr("", 0).as_deref(), Some("10.42.200.0/24"));
        let all: String = (200..255).map(|x| format!("10.42.{x}.1\n")).collect();
        assert_eq!(pick_pod_cidr(&all, 3), None);
    }

    #[test]
    fn shims_are_matched_by_their_containerd_address() {
        let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let mine = "/tmp/x/data/agent/containerd/containerd.sock";
        assert!(is_shim_of(
            &args(&format!("/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id ab -address {mine}")),
            mine
        ));
        assert!(!is_shim_of(
            &args("/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id ab -address /run/containerd/containerd.sock"),
            mine
        ));
        assert!(!is_shim_of(&args(&format!("/bin/sh -address {mine}")), mine));
        assert!(!is_shim_of(&[], mine));
    }

    #[test]
    fn mounts_under_a_dir_come_deepest_first() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    30 22 0:40 / /tmp/d/data/a rw - overlay overlay rw\n\
                    31 30 0:41 / /tmp/d/data/a/rootfs rw - overlay overlay rw\n\
                    32 22 0:42 / /tmp/d/database rw - tmpfs tmpfs rw\n";
        assert_eq!(mounts_under(info, "/tmp/d/data"), vec!["/tmp/d/data/a/rootfs", "/tmp/d/data/a"]);
        assert!(mounts_under(info, "/tmp/e").is_empty());
    }

    #[test]
    fn watch_events_give_phase_and_readiness() {
        let running = br#"{"type":"MODIFIED","object":{"metadata":{"name":"p"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"False"}]}}}"#;
        let shown = |bound, running, ready| Some(Shown { name: "p".into(), bound, running, ready });
        assert_eq!(read_event(running).unwrap(), shown(false, true, false));
        let ready = br#"{"type":"MODIFIED","object":{"metadata":{"name":"p"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}}"#;
        assert_eq!(read_event(ready).unwrap(), shown(false, true, true));
        let pending = br#"{"type":"ADDED","object":{"metadata":{"name":"p"},"status":{"phase":"Pending"}}}"#;
        assert_eq!(read_event(pending).unwrap(), shown(false, false, false));
        let bound = br#"{"type":"MODIFIED","object":{"metadata":{"name":"p"},"spec":{"nodeName":"n"},"status":{"phase":"Pending"}}}"#;
        assert_eq!(read_event(bound).unwrap(), shown(true, false, false));
        let mut seen = Seen::default();
        let (t0, t1) = (Instant::now(), Instant::now() + Duration::from_secs(1));
        seen.note(&Shown { bound: true, ..Shown::default() }, t0);
        seen.note(&Shown { bound: true, running: true, ..Shown::default() }, t1);
        assert_eq!((seen.bound, seen.running, seen.ready), (Some(t0), Some(t1), None), "first sighting counts");
        assert_eq!(read_event(br#"{"type":"DELETED","object":{"metadata":{"name":"p"}}}"#).unwrap(), None);
        assert_eq!(read_event(br#"{"type":"BOOKMARK","object":{"metadata":{}}}"#).unwrap(), None);
        assert!(read_event(br#"{"type":"ERROR","object":{"code":410}}"#).is_err());
        assert!(read_event(b"not json").is_err());
    }

    #[test]
    fn pod_bodies_are_valid_pods() {
        let p: Value = serde_json::from_slice(&pod_body("a-001", "a", true)).unwrap();
        assert_eq!(p["metadata"]["labels"]["app"], APP_LABEL);
        assert_eq!(p["metadata"]["labels"]["batch"], "a");
        let c = &p["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["readinessProbe"]["exec"]["command"][0], "true");
        let p: Value = serde_json::from_slice(&pod_body("b", "b", false)).unwrap();
        assert!(p["spec"]["containers"][0].get("readinessProbe").is_none());
    }

    #[test]
    fn cpu_split_leaves_the_rest_to_others() {
        let at = Instant::now();
        let s = Duration::from_secs;
        let a = CpuProbe { at, machine: s(100), server: s(10), containerd: s(5), shims: s(0), pods: s(1) };
        let b = CpuProbe { at: at + s(2), machine: s(104), server: s(11), containerd: s(6), shims: s(1), pods: s(1) };
        let c = CpuSplit::between(&a, &b);
        assert_eq!((c.secs, c.machine, c.server, c.containerd, c.shims, c.pods), (2.0, 2.0, 0.5, 0.5, 0.5, 0.0));
        assert!((c.rest - 0.5).abs() < 1e-9);
        // Counters sampled a little apart can exceed the machine's; the rest never goes negative.
        let b2 = CpuProbe { machine: s(101), ..b };
        assert_eq!(CpuSplit::between(&a, &b2).rest, 0.0);
        assert_eq!(cpu_with_children(u32::MAX), Duration::ZERO, "a process that does not exist");
    }

    #[test]
    fn proc_status_fields_are_read_in_kib() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), 1024);
        assert_eq!(status_kib(status, "VmHWM:"), 2048);
        assert_eq!(status_kib(status, "Pss:"), 0);
        let me = proc_mem(std::process::id()).unwrap();
        assert!(me.rss > 0 && me.hwm >= me.rss);
    }
}
