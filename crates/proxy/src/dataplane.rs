//! Puts a [`Ruleset`] into the kernel with `nft -f -`, atomically.
//!
//! The first apply (and any apply after a failure) replaces the whole table in one transaction
//! (`add table` + `delete table` + the full table); later applies send only the difference from
//! what was applied last ([`Ruleset::render_update`]), and nothing at all when the ruleset did
//! not change. A rejected partial update is retried at once as a full replacement, so a table
//! changed or removed behind the proxy's back heals on the next sync.
//!
//! No sysctl is touched: NodePorts are served on the node's non-loopback addresses only (so
//! `route_localnet` is not needed), and hairpin and same-bridge traffic work through
//! masquerade whether or not bridged traffic passes netfilter.

use crate::rules::{Ruleset, Update};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::process::{Command, Stdio};
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
    current: Option<Ruleset>,
}

impl Dataplane {
    /// A data plane for table `inet <table>` in this process's network namespace.
    pub fn new(table: impl Into<String>) -> Self {
        Dataplane { table: table.into(), netns: None, current: None }
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

    /// Makes the kernel hold `desired`.
    pub fn apply(&mut self, desired: Ruleset) -> Result<Applied> {
        let start = Instant::now();
        if let Some(current) = &self.current {
            match desired.render_update(current, &self.table) {
                Update::Unchanged => {
                    return Ok(Applied { kind: ApplyKind::Unchanged, bytes: 0, duration: start.elapsed() });
                }
                Update::Script(update) => match self.nft(&update) {
                    Ok(()) => {
                        self.current = Some(desired);
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
        self.current = None;
        let full = desired.render(&self.table);
        self.nft(&full)?;
        self.current = Some(desired);
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
        self.current = None;
    }

    /// Removes the table (if present).
    pub fn delete(&mut self) -> Result<()> {
        self.current = None;
        let t = &self.table;
        self.nft(&format!("add table inet {t}\ndelete table inet {t}\n"))
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

    fn nft(&self, script: &str) -> Result<()> {
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
            let err = String::from_utf8_lossy(&out.stderr);
            let mut lines: Vec<&str> = err.lines().take(6).collect();
            if err.lines().count() > 6 {
                lines.push("…");
            }
            bail!("nft refused the ruleset: {}", lines.join("\n"));
        }
        Ok(())
    }
}
