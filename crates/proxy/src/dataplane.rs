//! Puts a [`Ruleset`] into the kernel with `nft`, one transaction per apply.
//!
//! The first apply (and any apply after a failure) replaces the whole table in one transaction
//! (`add table` + `delete table` + the full table); later applies send only the difference
//! ([`Changes::render`]), and nothing at all when the ruleset did not change. A rejected partial
//! update is retried at once as a full replacement, so a table changed or removed behind the
//! proxy's back heals on the next sync.
//!
//! Transactions go to one long-lived `nft -i` process ([`Session`]): the script is written to
//! a file of the proxy's own and the process is told to `include` it, which nft parses and
//! commits as one batch, then answers a fixed `describe` command so the proxy knows the
//! transaction is done (its errors come first on the same pipe). Two costs of a fresh `nft -f`
//! per transaction go away that way: starting the process, and above all its exit after a
//! transaction that removed anything (a flushed rule, a deleted element): closing its netlink
//! socket waits for the kernel to free the removed objects after an RCU grace period, 10–20 ms
//! here, longer than the rest of a small update. What remains per transaction is nft's cache
//! of the chains and sets of the namespace, fetched again after every commit. When the session
//! cannot start or breaks, `nft -f -` is used as before.
//!
//! No sysctl is touched: NodePorts are served on the node's non-loopback addresses only (so
//! `route_localnet` is not needed), and hairpin and same-bridge traffic work through
//! masquerade whether or not bridged traffic passes netfilter.

use crate::rules::{Changes, Ruleset, Update};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How one apply went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApplyKind {
    /// Nothing changed; `nft` was not run.
    #[default]
    Unchanged,
    /// Only the difference was sent.
    Partial,
    /// The whole table was replaced.
    Full,
}

/// The outcome of [`Dataplane::apply`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Applied {
    /// What was sent.
    pub kind: ApplyKind,
    /// Bytes of `nft` input.
    pub bytes: usize,
    /// Wall time of rendering and running `nft`.
    pub duration: Duration,
}

/// One nftables table owned by the proxy.
pub struct Dataplane {
    table: String,
    netns: Option<String>,
    /// Whether the kernel holds the table as the last apply left it, so a difference can follow.
    synced: bool,
    session: Option<Session>,
    /// Sessions that failed to start or broke; none is tried after [`MAX_SESSION_FAILURES`].
    session_failures: u32,
}

/// After this many broken sessions the data plane keeps to `nft -f -`.
const MAX_SESSION_FAILURES: u32 = 3;

impl Dataplane {
    /// A data plane for table `inet <table>` in this process's network namespace.
    pub fn new(table: impl Into<String>) -> Self {
        Dataplane { table: table.into(), netns: None, synced: false, session: None, session_failures: 0 }
    }

    /// Runs `nft` inside the named network namespace (`ip netns exec`), e.g. for benchmarks.
    pub fn in_netns(mut self, netns: impl Into<String>) -> Self {
        self.netns = Some(netns.into());
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether the kernel holds what the last apply sent (a difference can be applied next).
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Makes the kernel hold `desired`: only `changes` when the table is in place and they
    /// render to a difference, else the whole table.
    pub fn apply(&mut self, desired: &Ruleset, changes: Option<&Changes>) -> Result<Applied> {
        let start = Instant::now();
        if self.synced
            && let Some(changes) = changes
        {
            match changes.render(&self.table) {
                Update::Unchanged => {
                    return Ok(Applied { kind: ApplyKind::Unchanged, bytes: 0, duration: start.elapsed() });
                }
                Update::Script(update) => match self.run(&update) {
                    Ok(()) => {
                        return Ok(Applied {
                            kind: ApplyKind::Partial,
                            bytes: update.len(),
                            duration: start.elapsed(),
                        });
                    }
                    Err(e) => tracing::warn!("partial nftables update refused, replacing the table: {e:#}"),
                },
                Update::Replace => {}
            }
        }
        self.synced = false;
        let full = desired.render(&self.table);
        self.run(&full)?;
        self.synced = true;
        Ok(Applied { kind: ApplyKind::Full, bytes: full.len(), duration: start.elapsed() })
    }

    /// Whether the table is present in the kernel (a cheap probe: one small chain is listed).
    pub fn present(&self) -> bool {
        let mut cmd = self.command();
        cmd.args(["list", "chain", "inet", &self.table, "nat-prerouting"]).stdout(Stdio::null()).stderr(Stdio::null());
        cmd.status().is_ok_and(|s| s.success())
    }

    /// Forgets what was applied, so the next apply replaces the whole table.
    pub fn invalidate(&mut self) {
        self.synced = false;
    }

    /// Removes the table (if present) and ends the `nft` session.
    pub fn delete(&mut self) -> Result<()> {
        self.synced = false;
        let t = &self.table;
        let script = format!("add table inet {t}\ndelete table inet {t}\n");
        let r = self.run(&script);
        self.session = None;
        r
    }

    fn command(&self) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "nft"]);
                c
            }
            None => Command::new("nft"),
        }
    }

    /// Runs one transaction: through the session when there is one, else `nft -f -`.
    fn run(&mut self, script: &str) -> Result<()> {
        if self.session.as_ref().is_some_and(|s| s.transactions >= SESSION_TRANSACTIONS) {
            self.session = None;
        }
        if self.session.is_none() && self.session_failures < MAX_SESSION_FAILURES {
            match Session::start(self.command(), &self.table) {
                Ok(s) => self.session = Some(s),
                Err(e) => {
                    self.session_failures += 1;
                    tracing::debug!("no nft session ({e:#}); running nft -f per transaction");
                }
            }
        }
        if let Some(session) = self.session.as_mut() {
            match session.run(script) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(refusal)) => bail!("nft refused the ruleset: {refusal}"),
                Err(e) => {
                    // The transaction may or may not have been committed. Running it again
                    // below either succeeds or is refused, and a refused difference is followed
                    // by a full replacement, which puts the table right either way.
                    tracing::warn!("the nft session broke: {e:#}");
                    self.session = None;
                    self.session_failures += 1;
                }
            }
        }
        self.nft_file(script)
    }

    fn nft_file(&self, script: &str) -> Result<()> {
        let mut child = self
            .command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run nft (apt-get install -y nftables)")?;
        let mut stdin = child.stdin.take().context("nft stdin")?;
        let written = stdin.write_all(script.as_bytes());
        drop(stdin);
        let out = child.wait_with_output()?;
        written.context("cannot write the ruleset to nft")?;
        if !out.status.success() {
            bail!("nft refused the ruleset: {}", first_lines(&String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }
}

/// The first lines of nft's complaint.
fn first_lines(err: &str) -> String {
    let mut lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).take(6).collect();
    if err.lines().filter(|l| !l.trim().is_empty()).count() > 6 {
        lines.push("…");
    }
    lines.join("\n")
}

/// The command whose fixed answer marks the end of a transaction's output.
const MARKER: &str = "describe ip saddr";
/// How long one transaction may take before the session is given up.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Transactions after which the session is started afresh (bounds whatever nft keeps per line).
const SESSION_TRANSACTIONS: u32 = 10_000;

/// A long-lived `nft -i` process, its output (stdout and stderr on one pipe, in order) read by
/// a thread, and a private directory for the scripts it includes.
struct Session {
    child: Child,
    stdin: ChildStdin,
    output: mpsc::Receiver<Vec<u8>>,
    dir: PathBuf,
    script: PathBuf,
    marker: Vec<u8>,
    transactions: u32,
}

impl Session {
    fn start(mut command: Command, table: &str) -> Result<Session> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rudder-nft-{}-{n}-{table}", std::process::id()));
        let script = dir.join("transaction.nft");
        if script.to_str().is_none_or(|p| p.contains(['"', '\n'])) {
            bail!("unusable temporary directory {}", dir.display());
        }
        remove_stale(&std::env::temp_dir());
        let _ = std::fs::remove_dir_all(&dir);
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let (mut reader, writer) = std::io::pipe().context("pipe")?;
        // HOME: nft -i keeps its line history there on exit; let it land in the private directory.
        command
            .arg("-i")
            .env("HOME", &dir)
            .stdin(Stdio::piped())
            .stdout(writer.try_clone().context("pipe")?)
            .stderr(writer);
        let spawned = command.spawn();
        drop(command); // closes this process's copies of the pipe's writing end
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e).context("cannot run nft -i");
            }
        };
        let stdin = child.stdin.take().context("nft stdin")?;
        let (tx, output) = mpsc::channel();
        std::thread::Builder::new()
            .name("nft-session".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            })
            .context("starting the nft output reader")?;
        let mut session = Session { child, stdin, output, dir, script, marker: Vec::new(), transactions: 0 };
        // Learn the marker's answer (nft's wording may differ between versions).
        session.stdin.write_all(format!("{MARKER}\n").as_bytes()).context("writing to nft -i")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while !got.ends_with(b"\n") {
            let left = deadline.saturating_duration_since(Instant::now());
            got.extend(session.output.recv_timeout(left).context("nft -i did not answer")?);
        }
        if String::from_utf8_lossy(&got).contains("Error") {
            bail!("nft -i: {}", first_lines(&String::from_utf8_lossy(&got)));
        }
        session.marker = got;
        Ok(session)
    }

    /// One transaction: `Ok(Err(message))` when nft refused it (nothing was committed), `Err`
    /// when the session itself failed.
    fn run(&mut self, script: &str) -> Result<Result<(), String>> {
        self.transactions += 1;
        std::fs::write(&self.script, script).with_context(|| format!("writing {}", self.script.display()))?;
        let line = format!("include \"{}\"\n{MARKER}\n", self.script.display());
        self.stdin.write_all(line.as_bytes()).context("writing to nft -i")?;
        let deadline = Instant::now() + TRANSACTION_TIMEOUT;
        let mut got = Vec::new();
        while !got.ends_with(&self.marker) {
            let left = deadline.saturating_duration_since(Instant::now());
            got.extend(self.output.recv_timeout(left).context("nft -i did not finish the transaction")?);
        }
        let text = String::from_utf8_lossy(&got[..got.len() - self.marker.len()]).into_owned();
        if text.contains("Error") {
            return Ok(Err(first_lines(&text)));
        }
        if !text.trim().is_empty() {
            tracing::debug!("nft: {}", text.trim());
        }
        Ok(Ok(()))
    }
}

/// Removes the script directories of processes that are gone (killed before they could).
fn remove_stale(parent: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("rudder-nft-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Assembly, NodeView};
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    fn root_with_nft() -> bool {
        let root = std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")));
        root && Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success())
    }

    /// A network namespace of the test's own, deleted on drop.
    struct Netns(String);

    impl Netns {
        fn new(tag: &str) -> Netns {
            let name = format!("rudder-proxy-test-{tag}-{}", std::process::id());
            let ok = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
            assert!(ok, "ip netns add {name}");
            Netns(name)
        }

        fn list(&self, table: &str) -> String {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.0, "nft", "list", "table", "inet", table])
                .output()
                .expect("nft list");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            // nft lists objects in the order they were made: compare them sorted.
            let text = String::from_utf8_lossy(&out.stdout).replace(&format!("table inet {table} {{"), "");
            let mut blocks: Vec<&str> = text.split("\n\n").map(|b| b.trim_matches(['\n', '}'])).collect();
            blocks.sort_unstable();
            blocks.join("\n\n")
        }

        fn nft(&self, script: &str) {
            let ok = Command::new("ip").args(["netns", "exec", &self.0, "nft", script]).status();
            assert!(ok.is_ok_and(|s| s.success()), "nft {script}");
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "delete", &self.0]).status();
        }
    }

    fn objects(endpoints: &[&[&str]], rv: u64) -> (Vec<Service>, Vec<EndpointSlice>) {
        let mut services = Vec::new();
        let mut slices = Vec::new();
        for (i, eps) in endpoints.iter().enumerate() {
            let ip = format!("10.43.0.{}", 10 + i);
            services.push(
                serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{i}"), "namespace": "ns", "resourceVersion": "1"},
                    "spec": {"clusterIP": ip, "sessionAffinity": if i == 1 { "ClientIP" } else { "None" },
                             "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
                }))
                .unwrap(),
            );
            let eps: Vec<_> = eps
                .iter()
                .map(|ip| json!({"addresses": [ip], "nodeName": "node-a", "conditions": {"ready": true}}))
                .collect();
            slices.push(
                serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{i}-x"), "namespace": "ns", "resourceVersion": rv.to_string(),
                                 "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                    "endpoints": eps,
                }))
                .unwrap(),
            );
        }
        (services, slices)
    }

    /// Differences applied through the session leave the same table as loading the whole
    /// table at once; a difference nft refuses (the table was changed behind the proxy's
    /// back) is followed by a full replacement. Needs root and nftables.
    #[test]
    fn differences_through_the_session_match_a_full_load() {
        if !root_with_nft() {
            eprintln!("skipped: needs root and nft");
            return;
        }
        let ns = Netns::new("dp");
        let node = NodeView { node_name: "node-a".into(), ..NodeView::default() };
        let mut dataplane = Dataplane::new("incremental").in_netns(&ns.0);
        let mut reference = Dataplane::new("reference").in_netns(&ns.0);
        let mut assembly = Assembly::default();
        let steps: &[&[&[&str]]] = &[
            &[&["10.42.0.5", "10.42.0.6"], &["10.42.0.7"], &[]],
            &[&["10.42.0.5", "10.42.0.8"], &["10.42.0.7", "10.42.0.6"], &["10.42.0.9"]],
            &[&["10.42.0.5"], &[], &["10.42.0.9", "10.42.0.5"]],
            &[&[], &["10.42.0.7"]],
        ];
        for (i, step) in steps.iter().enumerate() {
            let (services, slices) = objects(step, i as u64 + 1);
            let changes = assembly.update(&services, &slices, &node, dataplane.synced());
            let applied = dataplane.apply(assembly.table(), Some(&changes)).unwrap();
            assert_eq!(applied.kind, if i == 0 { ApplyKind::Full } else { ApplyKind::Partial }, "step {i}");
            reference.apply(assembly.table(), None).unwrap();
            assert_eq!(ns.list("incremental"), ns.list("reference"), "step {i}");
        }
        assert!(dataplane.session.is_some(), "the transactions went through nft -i");
        // An element removed behind the proxy's back: the difference deleting it is refused,
        // and the table is replaced.
        let (services, slices) = objects(&[&["10.42.0.5", "10.42.0.9"], &["10.42.0.7"]], 10);
        let changes = assembly.update(&services, &slices, &node, dataplane.synced());
        assert_eq!(dataplane.apply(assembly.table(), Some(&changes)).unwrap().kind, ApplyKind::Partial);
        ns.nft("delete element inet incremental hairpin-endpoints { 10.42.0.9 . 10.42.0.9 }");
        let (services, slices) = objects(&[&["10.42.0.5"], &["10.42.0.7"]], 11);
        let changes = assembly.update(&services, &slices, &node, dataplane.synced());
        let applied = dataplane.apply(assembly.table(), Some(&changes)).unwrap();
        assert_eq!(applied.kind, ApplyKind::Full, "a refused difference is followed by a full replacement");
        reference.apply(assembly.table(), None).unwrap();
        assert_eq!(ns.list("incremental"), ns.list("reference"));
        dataplane.delete().unwrap();
        reference.delete().unwrap();
    }
}
