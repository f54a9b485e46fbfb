//! Child processes and scratch directories, with cleanup that also runs on panic and on
//! Ctrl-C: every child is registered by PID and killed, every scratch dir is removed.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static CHILDREN: Mutex<BTreeMap<u32, Child>> = Mutex::new(BTreeMap::new());
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills every registered child (by its PID) and removes every registered scratch dir.
/// Safe to call from a panic hook or a signal handler.
pub fn cleanup_all() {
    let children = match CHILDREN.try_lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(std::sync::TryLockError::Poisoned(e)) => std::mem::take(&mut *e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => BTreeMap::new(),
    };
    for (_, mut child) in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let dirs = match DIRS.try_lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(std::sync::TryLockError::Poisoned(e)) => std::mem::take(&mut *e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => Vec::new(),
    };
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A temporary directory removed on drop (and by [`cleanup_all`]).
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
}

impl Scratch {
    pub fn new(prefix: &str) -> Result<Scratch> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().context("cannot create a temporary directory")?;
        lock(&DIRS).push(dir.path().to_path_buf());
        Ok(Scratch { dir: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("scratch dir is present until drop").path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let p = dir.path().to_path_buf();
            lock(&DIRS).retain(|d| d != &p);
            let _ = dir.close();
        }
    }
}

/// A running child process, killed (SIGKILL, by PID) when dropped.
pub struct Proc {
    pid: u32,
    name: String,
    stderr_log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stderr sent to `stderr_log`; returns the child's
    /// stdout when `pipe_stdout`.
    pub fn spawn(
        name: &str,
        cmd: &mut Command,
        stderr_log: &Path,
        pipe_stdout: bool,
    ) -> Result<(Proc, Option<std::process::ChildStdout>)> {
        let log =
            std::fs::File::create(stderr_log).with_context(|| format!("cannot create {}", stderr_log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(if pipe_stdout { Stdio::piped() } else { Stdio::null() })
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        let stdout = child.stdout.take();
        let pid = child.id();
        lock(&CHILDREN).insert(pid, child);
        Ok((Proc { pid, name: name.to_string(), stderr_log: stderr_log.to_path_buf() }, stdout))
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the child is still running (not exited).
    pub fn alive(&self) -> bool {
        match lock(&CHILDREN).get_mut(&self.pid) {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last lines the child wrote to stderr (for error messages).
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(15);
        lines[start..].join("\n")
    }

    /// Resident memory from /proc/PID/status: (VmRSS, VmHWM) in KiB.
    pub fn rss_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("cannot read the status of {} (pid {})", self.name, self.pid))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("no {name} in /proc/{}/status", self.pid))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu_time(&self) -> Result<Duration> {
        cpu_time_of(&format!("/proc/{}/stat", self.pid))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let child = lock(&CHILDREN).remove(&self.pid);
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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

/// utime + stime from a /proc/.../stat file.
pub fn cpu_time_of(stat_path: &str) -> Result<Duration> {
    let stat = std::fs::read_to_string(stat_path).with_context(|| format!("cannot read {stat_path}"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).context("no utime")?;
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).context("no stime")?;
    let ticks = clock_ticks();
    Ok(Duration::from_micros((utime + stime) * 1_000_000 / ticks))
}

/// CPU time used by this harness process.
pub fn own_cpu_time() -> Duration {
    cpu_time_of("/proc/self/stat").unwrap_or_default()
}

/// CPU time used by this harness plus its children that have been waited for.
pub fn own_and_reaped_children_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    // utime, stime, cutime, cstime are fields 14..=17, i.e. rest[11..=14].
    let ticks: u64 = f.get(11..15).map(|s| s.iter().sum()).unwrap_or(0);
    Duration::from_micros(ticks * 1_000_000 / clock_ticks())
}

/// Busy CPU time of the whole machine so far (all cores; everything but idle and iowait).
pub fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else { return Duration::ZERO };
    let f: Vec<u64> = cpu.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0usize, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    Duration::from_micros(busy * 1_000_000 / clock_ticks())
}

/// Waits (up to `limit`) until the machine is quiet: less than `max_cores` busy over one second
/// while this harness runs nothing. Returns the last load seen, in cores.
pub async fn wait_quiet(limit: Duration, max_cores: f64) -> f64 {
    let deadline = Instant::now() + limit;
    let mut told = false;
    loop {
        let (m1, o1, t1) = (machine_busy(), own_cpu_time(), Instant::now());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (m2, o2) = (machine_busy(), own_cpu_time());
        let other =
            (m2.saturating_sub(m1)).saturating_sub(o2.saturating_sub(o1)).as_secs_f64() / t1.elapsed().as_secs_f64();
        if other < max_cores || Instant::now() >= deadline {
            if told {
                eprintln!("  (machine load now {other:.2} cores)");
            }
            return other;
        }
        if !told {
            eprintln!("waiting for other processes to quieten ({other:.2} cores busy) ...");
            told = true;
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; a small race is accepted).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// Reads `stdout` on a thread; the first line starting with `prefix` is sent back (with the
/// instant it was read), the rest is drained so the child never blocks.
pub fn watch_stdout(
    stdout: std::process::ChildStdout,
    prefix: &'static str,
) -> tokio::sync::oneshot::Receiver<(String, Instant)> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(prefix)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send((line, Instant::now()));
            }
        }
    });
    rx
}

/// The first line of `PROGRAM --version`.
pub fn version_of(program: &Path) -> String {
    match Command::new(program).arg("--version").output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string(),
        Err(_) => "unknown".into(),
    }
}

/// Finds a program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Fails unless `path` is an existing file.
pub fn require_file(path: &Path, hint: &str) -> Result<()> {
    if !path.is_file() {
        bail!("{} not found; {hint}", path.display());
    }
    Ok(())
}
