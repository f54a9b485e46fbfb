//! The report: a plain-text table for the terminal and a Markdown section for BENCHMARKS.md
//! (written between two marker comments, leaving the rest of the file alone).

use crate::stats::{median, ms};
use crate::{Cli, Mem, Results};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

pub const BEGIN: &str = "<!-- rudder-bench results: begin (written by `rudder-bench all`) -->";
pub const END: &str = "<!-- rudder-bench results: end -->";

/// Targets from the issue.
const CREATE_RATIO_TARGET: f64 = 2.0;
const CREATE_RATIO_CLIENTS: usize = 16;
const WATCH_P99_TARGET: Duration = Duration::from_millis(50);
const START_TARGET: Duration = Duration::from_millis(500);
const RSS_TARGET_MB: f64 = 40.0;
const SCHED_TARGET: f64 = 1500.0;
const ROLLOUT_P99_TARGET: Duration = Duration::from_secs(1);
const NODES_CPU_TARGET: f64 = 0.25;

pub struct Facts {
    pub date: String,
    pub nproc: usize,
    pub kernel: String,
    pub cpu: String,
    pub memory: String,
    pub os: String,
    pub tmp_fs: String,
    pub rudder: String,
    pub etcd: String,
    pub commit: String,
    /// 1-, 5- and 15-minute load averages when the run started and when it ended.
    pub load_before: String,
    pub load_after: String,
    /// 4 KiB write + fdatasync in the temporary dir, at the start and at the end.
    pub fsync_before: String,
    pub fsync_after: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Facts {
    pub fn gather(rudder_bin: &Path, etcd_version: &str, load_before: String, fsync_before: String) -> Facts {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = read("/proc/meminfo");
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
            .unwrap_or_else(|| "unknown".into());
        // The file system type of the temporary directory the data dirs live in.
        let tmp = std::env::temp_dir();
        let tmp_fs = read("/proc/mounts")
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (_, mnt, fstype) = (f.next()?, f.next()?, f.next()?);
                tmp.starts_with(mnt).then(|| (mnt.len(), fstype.to_string()))
            })
            .max()
            .map(|(_, t)| t)
            .unwrap_or_else(|| "unknown".into());
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        Facts {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu,
            memory,
            os,
            tmp_fs,
            rudder: crate::procs::version_of(rudder_bin),
            etcd: etcd_version.replace("etcd Version: ", "etcd "),
            commit,
            load_before,
            load_after: load_average(),
            fsync_before,
            fsync_after: fsync_probe(),
        }
    }
}

/// Median and p99 of 200 × (4 KiB write + fdatasync) in the temporary dir: how fast the disk
/// makes a small write durable right now.
pub fn fsync_probe() -> String {
    use std::os::unix::fs::FileExt;
    let run = || -> std::io::Result<String> {
        let dir = crate::procs::Scratch::new("rudder-bench-disk-").map_err(std::io::Error::other)?;
        let f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(dir.path().join("probe"))?;
        let page = [7u8; 4096];
        let mut times = Vec::with_capacity(200);
        for i in 0..200u64 {
            let t = std::time::Instant::now();
            f.write_all_at(&page, (i % 16) * 4096)?;
            f.sync_data()?;
            times.push(t.elapsed());
        }
        times.sort();
        Ok(format!("median {:.2} ms, p99 {:.2} ms", ms(times[99]), ms(times[197])))
    };
    run().unwrap_or_else(|e| format!("probe failed: {e}"))
}

/// The three load averages from /proc/loadavg.
pub fn load_average() -> String {
    read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo run --release -p rudder-bench -- {}", args.join(" "))
}

/// A table rendered both as aligned text and as Markdown.
pub(crate) struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(head: &[&str]) -> Table {
        Table { head: head.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }
    pub(crate) fn row(&mut self, r: Vec<String>) {
        self.rows.push(r);
    }
    fn text(&self) -> String {
        let cols = self.head.len();
        let mut w = vec![0; cols];
        for r in std::iter::once(&self.head).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(cols) {
                w[i] = w[i].max(c.replace('`', "").chars().count());
            }
        }
        let mut out = String::new();
        let line = |r: &Vec<String>, out: &mut String| {
            let cells: Vec<String> = (0..cols)
                .map(|i| format!("{:<width$}", r.get(i).map(|c| c.replace('`', "")).unwrap_or_default(), width = w[i]))
                .collect();
            let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
        };
        line(&self.head, &mut out);
        let _ = writeln!(out, "  {}", w.iter().map(|n| "-".repeat(*n)).collect::<Vec<_>>().join("  "));
        for r in &self.rows {
            line(r, &mut out);
        }
        out
    }
    fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", self.head.join(" | "));
        let _ = writeln!(out, "|{}", self.head.iter().map(|_| " --- |").collect::<String>());
        for r in &self.rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        out
    }
}

fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

fn mem(m: &Mem) -> String {
    match m {
        Some((rss, hwm)) => format!("{} (peak {})", mb(*rss), mb(*hwm)),
        None => "n/a".into(),
    }
}

fn f0(x: f64) -> String {
    format!("{x:.0}")
}

fn ms1(d: Duration) -> String {
    format!("{:.1}", ms(d))
}

/// One create point over all rounds: medians, and the spread of the rate.
pub struct Agg {
    pub rate: f64,
    pub min: f64,
    pub max: f64,
    pub rounds: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub server_cpu: Option<f64>,
    pub harness_cpu: f64,
    pub other_cpu: f64,
    pub errors: u64,
    pub first_error: Option<String>,
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

pub fn agg(points: &[crate::creates::Point], system: &str, clients: usize) -> Option<Agg> {
    let ps: Vec<&crate::creates::Point> =
        points.iter().filter(|p| p.system == system && p.clients == clients).collect();
    if ps.is_empty() {
        return None;
    }
    let rates: Vec<f64> = ps.iter().map(|p| p.rate()).collect();
    let cpus: Vec<f64> = ps.iter().filter_map(|p| p.server_cpu).collect();
    Some(Agg {
        rate: median_f(rates.clone()),
        min: rates.iter().copied().fold(f64::INFINITY, f64::min),
        max: rates.iter().copied().fold(0.0, f64::max),
        rounds: ps.len(),
        p50: median(ps.iter().map(|p| p.p50).collect()),
        p99: median(ps.iter().map(|p| p.p99).collect()),
        server_cpu: (!cpus.is_empty()).then(|| median_f(cpus)),
        harness_cpu: median_f(ps.iter().map(|p| p.harness_cpu).collect()),
        other_cpu: median_f(ps.iter().map(|p| p.other_cpu).collect()),
        errors: ps.iter().map(|p| p.errors).sum(),
        first_error: ps.iter().find_map(|p| p.first_error.clone()),
    })
}

fn ratio(r: &Results, system: &str, clients: usize) -> Option<f64> {
    let a = agg(&r.creates, system, clients)?;
    let e = agg(&r.creates, "etcd", clients)?;
    (e.rate > 0.0).then(|| a.rate / e.rate)
}

fn rate_cell(a: &Agg) -> String {
    if a.rounds > 1 { format!("{:.0} ({:.0}–{:.0})", a.rate, a.min, a.max) } else { f0(a.rate) }
}

pub(crate) fn pass(ok: bool) -> &'static str {
    if ok { "met" } else { "**MISSED**" }
}

/// A titled part of the report: tables, then a note.
pub(crate) struct Section {
    pub(crate) title: String,
    pub(crate) note: String,
    pub(crate) tables: Vec<Table>,
}

fn sections(cli: &Cli, r: &Results) -> Vec<Section> {
    let mut out = Vec::new();

    // Targets first.
    let mut t = Table::new(&["target", "measured", "result"]);
    if let Some(x) = ratio(r, "rudder HTTP/2", CREATE_RATIO_CLIENTS) {
        t.row(vec![
            format!("creates/s ≥ {CREATE_RATIO_TARGET}× etcd at {CREATE_RATIO_CLIENTS} clients (HTTP/2)"),
            format!("{x:.2}×"),
            pass(x >= CREATE_RATIO_TARGET).into(),
        ]);
    }
    if let Some(x) = ratio(r, "rudder HTTP/1.1", CREATE_RATIO_CLIENTS) {
        t.row(vec![
            format!("creates/s ≥ {CREATE_RATIO_TARGET}× etcd at {CREATE_RATIO_CLIENTS} clients (HTTP/1.1)"),
            format!("{x:.2}×"),
            pass(x >= CREATE_RATIO_TARGET).into(),
        ]);
    }
    if let Some(w) = &r.watch {
        let ok = w.p99 <= WATCH_P99_TARGET && w.missing == 0;
        t.row(vec![
            format!("watch delay p99 ≤ {} ms ({} watchers)", WATCH_P99_TARGET.as_millis(), w.watchers),
            format!("{} ms", ms1(w.p99)),
            pass(ok).into(),
        ]);
    }
    if !r.rudder_starts.is_empty() {
        let m = median(r.rudder_starts.iter().map(|s| s.ready).collect());
        t.row(vec![
            format!("start to /readyz ok ≤ {} ms (median of {})", START_TARGET.as_millis(), r.rudder_starts.len()),
            format!("{} ms", ms1(m)),
            pass(m <= START_TARGET).into(),
        ]);
        let rss = median_kib(r.rudder_starts.iter().map(|s| s.rss_kib).collect());
        let rss_mb = rss as f64 * 1024.0 / 1e6;
        t.row(vec![format!("idle RSS ≤ {RSS_TARGET_MB} MB"), mb(rss), pass(rss_mb <= RSS_TARGET_MB).into()]);
    }
    if !t.rows.is_empty() {
        out.push(Section { title: "Targets".into(), note: String::new(), tables: vec![t] });
    }

    if !r.creates.is_empty() {
        let systems: Vec<String> = {
            let mut s: Vec<String> = Vec::new();
            for p in &r.creates {
                if !s.contains(&p.system) {
                    s.push(p.system.clone());
                }
            }
            s
        };
        let rudder_systems: Vec<&String> = systems.iter().filter(|s| s.as_str() != "etcd").collect();
        let mut head: Vec<String> = vec!["clients".into()];
        for s in &systems {
            head.push(if s == "etcd" { "etcd 3.4 puts/s".into() } else { format!("{s} creates/s") });
        }
        for s in &rudder_systems {
            head.push(format!("ratio {}", s.trim_start_matches("rudder ")));
        }
        let head_refs: Vec<&str> = head.iter().map(String::as_str).collect();
        let mut t = Table::new(&head_refs);
        for &n in &cli.clients {
            let mut row = vec![n.to_string()];
            for s in &systems {
                row.push(agg(&r.creates, s, n).map(|a| rate_cell(&a)).unwrap_or_else(|| "n/a".into()));
            }
            for s in &rudder_systems {
                row.push(ratio(r, s, n).map(|x| format!("{x:.2}×")).unwrap_or_else(|| "n/a".into()));
            }
            t.row(row);
        }
        let mut d = Table::new(&[
            "system",
            "clients",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "server CPU (cores)",
            "harness CPU (cores)",
            "other CPU (cores)",
            "errors",
        ]);
        for &n in &cli.clients {
            for s in &systems {
                let Some(a) = agg(&r.creates, s, n) else { continue };
                d.row(vec![
                    s.clone(),
                    n.to_string(),
                    f0(a.rate),
                    format!("{:.2}", ms(a.p50)),
                    format!("{:.2}", ms(a.p99)),
                    a.server_cpu.map(|c| format!("{c:.2}")).unwrap_or_else(|| "in harness".into()),
                    format!("{:.2}", a.harness_cpu),
                    format!("{:.2}", a.other_cpu),
                    match &a.first_error {
                        Some(e) => format!("{} (first: {})", a.errors, e.chars().take(120).collect::<String>()),
                        None => a.errors.to_string(),
                    },
                ]);
            }
        }
        let note = format!(
            "Creates/s: median of {} rounds (min–max in brackets); the rounds alternate rudder and etcd point by point, so \
             slow phases of the shared disk or CPU hit both sides. Second table: medians over the rounds. Each client has its \
             own connection and one request in flight. API: `POST /api/v1/namespaces/default/configmaps` \
             with a {} byte JSON ConfigMap over HTTPS (bearer token); etcd: `Put` of the same {} bytes through gRPC (plain HTTP/2 \
             on 127.0.0.1, no TLS), default durability. Each point: {:.0} s warm-up, then {:.0} s measured. Memory after this \
             scenario: rudder {}, etcd {}.",
            cli.rounds,
            crate::creates::BODY_SIZE,
            crate::creates::BODY_SIZE,
            cli.warmup,
            cli.duration,
            mem(&r.creates_mem[0]),
            mem(&r.creates_mem[1]),
        );
        out.push(Section { title: "1. Durable creates per second".into(), note, tables: vec![t, d] });
    }

    if !r.store.is_empty() {
        let mut t = Table::new(&[
            "store",
            "clients",
            "creates/s",
            "p50 ms",
            "p99 ms",
            "vs API HTTP/1.1",
            "vs etcd",
            "harness CPU (cores)",
            "other CPU (cores)",
        ]);
        let mut stores: Vec<String> = Vec::new();
        for p in &r.store {
            if !stores.contains(&p.system) {
                stores.push(p.system.clone());
            }
        }
        for &n in &cli.clients {
            for st in &stores {
                let Some(a) = agg(&r.store, st, n) else { continue };
                let api = agg(&r.creates, "rudder HTTP/1.1", n).or_else(|| agg(&r.creates, "rudder HTTP/2", n));
                let etcd = agg(&r.creates, "etcd", n);
                let x = |o: Option<Agg>| {
                    o.filter(|o| o.rate > 0.0)
                        .map(|o| format!("{:.2}×", a.rate / o.rate))
                        .unwrap_or_else(|| "n/a".into())
                };
                t.row(vec![
                    st.clone(),
                    n.to_string(),
                    rate_cell(&a),
                    format!("{:.2}", ms(a.p50)),
                    format!("{:.2}", ms(a.p99)),
                    x(api),
                    x(etcd),
                    format!("{:.2}", a.harness_cpu),
                    format!("{:.2}", a.other_cpu),
                ]);
            }
        }
        let note = "Diagnosis, not a target: the API server's store (`rudder-store`) driven directly in the harness \
                    process with the same 1 KiB values under `/registry/configmaps/default/`, no HTTP, TLS or JSON. \
                    \"embedded\" is the durable backend the server uses (one write-ahead log sync per batch, redb flushed at checkpoints); \"memory\" keeps \
                    nothing on disk. Its ceiling is the API's ceiling for creates."
            .to_string();
        out.push(Section { title: "1b. The store alone (where create time goes)".into(), note, tables: vec![t] });
    }

    if let Some(l) = &r.list {
        let mut t = Table::new(&["list", "median ms", "min–max ms", "size MB", "MB/s"]);
        for row in &l.rows {
            t.row(vec![
                row.what.clone(),
                ms1(row.median),
                format!("{}–{}", ms1(row.min), ms1(row.max)),
                format!("{:.2}", row.bytes as f64 / 1e6),
                f0(row.mb_per_s()),
            ]);
        }
        let note = format!(
            "{} pods (one container each, created with `fieldValidation=Strict` by {} clients in {:.1} s, {:.0} pods/s), median of {} \
             runs after one untimed run, HTTP/2, one connection. The harness only receives the bytes of the API lists; the etcd \
             client also decodes its protobuf reply. etcd holds the API's stored JSON of the same pods under the same keys. \
             Memory with the pods loaded: rudder {}, etcd {}.",
            l.pods,
            l.create_concurrency,
            l.create_time.as_secs_f64(),
            l.pods as f64 / l.create_time.as_secs_f64().max(1e-9),
            l.rows.first().map(|r| r.runs).unwrap_or(0),
            mem(&r.list_mem[0]),
            mem(&r.list_mem[1]),
        );
        out.push(Section { title: format!("2. LIST of {} pods", l.pods), note, tables: vec![t] });
    }

    if let Some(w) = &r.watch {
        let mut t = Table::new(&[
            "watchers",
            "updates",
            "writers",
            "p50 ms",
            "p99 ms",
            "max ms",
            "deliveries",
            "missing",
            "before ack",
        ]);
        t.row(vec![
            w.watchers.to_string(),
            w.updates.to_string(),
            w.writers.to_string(),
            ms1(w.p50),
            ms1(w.p99),
            ms1(w.max),
            w.samples.to_string(),
            w.missing.to_string(),
            w.early.to_string(),
        ]);
        let note = format!(
            "Watchers: `GET /api/v1/namespaces/default/pods?watch=true&resourceVersion=<list RV>`, each on its own HTTP/2 connection. \
             Writers: merge-PATCH of a label on distinct pods, as fast as they are acknowledged. Delay = arrival of the event at a \
             watcher − the writer's receipt of the PATCH response with the same resourceVersion (arrivals before the ack count as 0). \
             Writes took {:.2} s ({:.0} updates/s; PATCH latency p50 {} ms, p99 {} ms); all deliveries done {:.2} s after the first \
             write. Server CPU {:.2} cores, harness CPU {:.2} cores over that time (2 cores in all).",
            w.write_time.as_secs_f64(),
            w.updates as f64 / w.write_time.as_secs_f64().max(1e-9),
            ms1(w.write_p50),
            ms1(w.write_p99),
            w.fanout_time.as_secs_f64(),
            w.server_cpu,
            w.harness_cpu,
        );
        out.push(Section { title: "3. Watch fan-out".into(), note, tables: vec![t] });
    }

    if !r.rudder_starts.is_empty() || !r.etcd_starts.is_empty() {
        let mut t = Table::new(&[
            "server",
            "starts",
            "exec → ready, median ms",
            "all runs ms",
            "idle RSS, median",
            "idle peak RSS, median",
        ]);
        for (name, runs) in [
            ("rudder server --disable-agent (/readyz ok)", &r.rudder_starts),
            ("etcd 3.4 (/health ok), reference", &r.etcd_starts),
        ] {
            if runs.is_empty() {
                continue;
            }
            t.row(vec![
                name.into(),
                runs.len().to_string(),
                ms1(median(runs.iter().map(|s| s.ready).collect())),
                runs.iter().map(|s| format!("{:.0}", ms(s.ready))).collect::<Vec<_>>().join(", "),
                mb(median_kib(runs.iter().map(|s| s.rss_kib).collect())),
                mb(median_kib(runs.iter().map(|s| s.hwm_kib).collect())),
            ]);
        }
        let line = median(r.rudder_starts.iter().filter_map(|s| s.ready_line).collect());
        let reported = median(r.rudder_starts.iter().filter_map(|s| s.reported).collect());
        let note = format!(
            "Fresh data dir each start (so the CA, serving certificate and token are generated every time). `/readyz` is \
             polled every millisecond over TLS. For rudder, the \"ready\" line on stdout came {} ms after exec (median) and the \
             server reported \"started in {} ms\". RSS = VmRSS from /proc/PID/status {} s after ready.",
            ms1(line),
            ms1(reported),
            crate::startup::IDLE_AFTER.as_secs(),
        );
        out.push(Section { title: "4. Start and idle memory".into(), note, tables: vec![t] });
    }
    out
}

fn median_kib(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    if v.is_empty() { 0 } else { v[(v.len() - 1) / 2] }
}

pub fn text(cli: &Cli, f: &Facts, r: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nrudder-bench — {} — {} cores, kernel {}, {}", f.date, f.nproc, f.kernel, f.cpu);
    let _ = writeln!(out, "rudder: {} (commit {}); reference: {}", f.rudder, f.commit, f.etcd);
    let _ = writeln!(out, "load average at start: {}; at end: {}", f.load_before, f.load_after);
    let _ = writeln!(out, "disk (4 KiB write + fdatasync) at start: {}; at end: {}", f.fsync_before, f.fsync_after);
    let _ =
        writeln!(out, "other processes used {:.2} cores on average during the {:.0} s run", r.other_cpu, r.run_secs);
    let control = control_sections(r).into_iter().map(|(_, _, s)| s);
    for s in sections(cli, r).into_iter().chain(control) {
        let _ = writeln!(out, "\n{}", s.title);
        for t in &s.tables {
            let _ = writeln!(out, "{}", t.text());
        }
    }
    for e in &r.failures {
        let _ = writeln!(out, "FAILED: {e}");
    }
    out
}

pub fn markdown(cli: &Cli, f: &Facts, r: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Latest results\n");
    let _ = writeln!(out, "- Date: {}", f.date);
    let _ = writeln!(out, "- Command: `{}`", command_line());
    let _ = writeln!(
        out,
        "- Machine: {} cores (nproc), {}, {} RAM, kernel {}, {}; data dirs on {}",
        f.nproc, f.cpu, f.memory, f.kernel, f.os, f.tmp_fs
    );
    let _ = writeln!(
        out,
        "- Compared: `{}` (release build of the working tree at commit {}) vs {} (Debian's `etcd-server`, one member)",
        f.rudder, f.commit, f.etcd
    );
    let _ = writeln!(
        out,
        "- Client and servers share the same {} cores; the harness's own CPU use is shown where it matters. Load average \
         (1, 5, 15 min) at the start: {}; at the end: {}.",
        f.nproc, f.load_before, f.load_after
    );
    let _ = writeln!(
        out,
        "- The run took {:.0} s; other processes on the machine used {:.2} cores on average meanwhile{}.",
        r.run_secs,
        r.other_cpu,
        if r.other_cpu > 0.25 { " — the machine was not quiet, so treat the numbers with care" } else { "" }
    );
    let _ = writeln!(
        out,
        "- Disk: a 4 KiB write + fdatasync in the temporary dir took {} at the start, {} at the end.",
        f.fsync_before, f.fsync_after
    );
    for s in sections(cli, r) {
        let _ = writeln!(out, "\n### {}\n", s.title);
        for t in &s.tables {
            let _ = writeln!(out, "{}", t.markdown());
        }
        if !s.note.is_empty() {
            let _ = writeln!(out, "{}\n", s.note);
        }
    }
    if !r.failures.is_empty() {
        let _ = writeln!(out, "\n### Failures\n");
        for e in &r.failures {
            let _ = writeln!(out, "- {e}");
        }
    }
    out
}

/// Puts `section` between the markers of `path` (creating the file, or appending the markers,
/// when needed).
pub fn write_markdown(path: &Path, section: &str) -> Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{}\n{END}", section.trim_end());
    let new = match (existing.find(BEGIN), existing.find(END)) {
        (Some(b), Some(e)) if e > b => format!("{}{}{}", &existing[..b], block, &existing[e + END.len()..]),
        _ if existing.trim().is_empty() => format!("# Benchmarks\n\n{block}\n"),
        _ => format!("{}\n\n{block}\n", existing.trim_end()),
    };
    std::fs::write(path, new).with_context(|| format!("cannot write {}", path.display()))
}

fn secs1(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

fn ms0(d: Duration) -> String {
    format!("{:.0}", ms(d))
}

/// Scenarios 5–8, each with the marker key of its own block in BENCHMARKS.md.
fn control_sections(r: &Results) -> Vec<(&'static str, crate::control::RunInfo, Section)> {
    let mut out = Vec::new();
    if let Some(o) = &r.sched {
        let mut t = Table::new(&["target", "measured", "result"]);
        t.row(vec![
            format!("scheduler ≥ {SCHED_TARGET:.0} pods/s ({} nodes, {} pods)", o.nodes, o.pods),
            format!("{:.0} pods/s", o.rate()),
            pass(o.rate() >= SCHED_TARGET && o.bound == o.pods).into(),
        ]);
        let mut d = Table::new(&[
            "nodes",
            "pods",
            "clients",
            "created/s (API alone)",
            "bound/s (first create → last bound)",
            "last bound after last create, s",
            "created → bound p50 / p99 ms",
            "all Running after, s",
            "server CPU (cores)",
            "harness CPU (cores)",
            "other CPU (cores)",
        ]);
        d.row(vec![
            o.nodes.to_string(),
            o.pods.to_string(),
            o.clients.to_string(),
            f0(o.create_rate()),
            f0(o.rate()),
            secs1(o.tail),
            format!("{} / {}", ms0(o.bind_p50), ms0(o.bind_p99)),
            o.running_time.map(secs1).unwrap_or_else(|| "not all".into()),
            format!("{:.2}", o.cpu.server),
            format!("{:.2}", o.cpu.harness),
            format!("{:.2}", o.cpu.other),
        ]);
        let note = format!(
            "`rudder server --simulate-nodes {} --simulate-node-heartbeat-seconds 10` (scheduler, controllers and the node \
             simulation in the server process), fresh data dir; {} nodes Ready {:.1} s after the server was ready. Then {} plain \
             pods (one container, requests cpu 100m, memory 64Mi) are POSTed by {} clients over HTTP/1.1, one connection and \
             one request in flight each (create latency p50 {} ms, p99 {} ms; {} errors{}). One pod watch (from the revision \
             before the first create) notes when each pod is first seen with `spec.nodeName`. Bound/s = {} bound pods ÷ (last \
             pod seen bound − first create sent); created/s = pods ÷ (last create answered − first create sent). Pods landed on \
             {} nodes, {}–{} per node. CPU is averaged from the first create to the last binding seen; the simulated nodes \
             start every bound pod (a status write each) during that time, inside the server process. Memory at the end: {}.",
            o.nodes,
            o.nodes,
            o.nodes_ready.as_secs_f64(),
            o.pods,
            o.clients,
            ms1(o.create_p50),
            ms1(o.create_p99),
            o.create_errors,
            o.create_first_error.as_deref().map(|e| format!(", first: {e}")).unwrap_or_default(),
            o.bound,
            o.spread.0,
            o.spread.1,
            o.spread.2,
            mem(&o.mem),
        );
        out.push((
            "scheduler",
            o.ctx.clone(),
            Section { title: "5. Scheduler throughput".into(), note, tables: vec![t, d] },
        ));
    }
    if let Some(o) = &r.rollout {
        let mut t = Table::new(&["target", "measured", "result"]);
        t.row(vec![
            format!(
                "pod created → Running p99 ≤ {} ms ({} replicas, {} nodes)",
                ROLLOUT_P99_TARGET.as_millis(),
                o.replicas,
                o.nodes
            ),
            format!("{} ms", ms0(o.pod_p99)),
            pass(o.pod_p99 <= ROLLOUT_P99_TARGET && o.running == o.replicas).into(),
        ]);
        let mut d = Table::new(&[
            "nodes",
            "replicas",
            "Running",
            "per pod: created → Running p50 / p99 / max ms",
            "Deployment create → pod Running p50 / p99 s",
            "first / last pod created after, s",
            "all Running after, s",
            "all Running after last pod created, s",
            "server CPU (cores)",
            "harness CPU (cores)",
            "other CPU (cores)",
        ]);
        d.row(vec![
            o.nodes.to_string(),
            o.replicas.to_string(),
            o.running.to_string(),
            format!("{} / {} / {}", ms0(o.pod_p50), ms0(o.pod_p99), ms0(o.pod_max)),
            format!("{:.2} / {:.2}", o.from_deploy_p50.as_secs_f64(), o.from_deploy_p99.as_secs_f64()),
            format!("{:.2} / {:.2}", o.first_pod.as_secs_f64(), o.last_pod.as_secs_f64()),
            format!("{:.2}", o.all_running.as_secs_f64()),
            format!("{:.2}", o.after_last_created.as_secs_f64()),
            format!("{:.2}", o.cpu.server),
            format!("{:.2}", o.cpu.harness),
            format!("{:.2}", o.cpu.other),
        ]);
        let note = format!(
            "`rudder server --simulate-nodes {} --simulate-node-heartbeat-seconds 10`; {} nodes Ready {:.1} s after the server \
             was ready. One POST of an `apps/v1` Deployment with {} replicas (requests cpu 10m, memory 16Mi); the ReplicaSet \
             controller creates the pods, the scheduler binds them, the simulated nodes start them (100 ms start delay). A pod \
             watch (label selector, from the revision before the POST) notes when each pod is first seen and first seen with \
             phase Running. Per-pod latency = Running seen − pod first seen (its creation; `creationTimestamp` has one-second \
             resolution, the watch event the harness's clock); \"Deployment create\" = the POST being sent. Pods landed on {} \
             nodes, {}–{} per node. CPU averaged from the POST to the last pod Running. Memory at the end: {}.",
            o.nodes,
            o.nodes,
            o.nodes_ready.as_secs_f64(),
            o.replicas,
            o.spread.0,
            o.spread.1,
            o.spread.2,
            mem(&o.mem),
        );
        out.push((
            "rollout",
            o.ctx.clone(),
            Section { title: "6. Deployment rollout to Running".into(), note, tables: vec![t, d] },
        ));
    }
    if let Some(o) = &r.nodes {
        let mut t = Table::new(&["target", "measured", "result"]);
        t.row(vec![
            format!("server + simulation CPU < {NODES_CPU_TARGET} cores ({} nodes)", o.nodes),
            format!("{:.3} cores", o.cpu.server),
            pass(o.cpu.server < NODES_CPU_TARGET).into(),
        ]);
        let mut d = Table::new(&[
            "nodes",
            "Lease / status every",
            "all Ready after, s",
            "measured, s",
            "server + simulation CPU (cores)",
            "API writes/s",
            "RSS at Ready",
            "RSS at the end",
            "harness CPU (cores)",
            "other CPU (cores)",
        ]);
        d.row(vec![
            o.nodes.to_string(),
            format!("{} s / 5 min", o.heartbeat_secs),
            format!("{:.1}", o.nodes_ready.as_secs_f64()),
            format!("{:.0}", o.cpu.secs),
            format!("{:.3}", o.cpu.server),
            f0(o.writes_per_s),
            mem(&o.mem_ready),
            mem(&o.mem),
            format!("{:.2}", o.cpu.harness),
            format!("{:.2}", o.cpu.other),
        ]);
        let note = format!(
            "`rudder server --simulate-nodes {} --simulate-node-heartbeat-seconds {}` (upstream intervals: Lease renewed every \
             {} s; status reported on change and otherwise every 5 min, the kubelet's nodeStatusReportFrequency, with the nodes' \
             first refreshes spread over those 5 min as in a fleet whose kubelets started at different times), scheduler and \
             controllers on, no pods. After all nodes are Ready and \
             {} s more for the registration tail, the server's CPU (utime + stime from /proc/PID/stat) is averaged over {:.0} s. \
             The simulated nodes run inside the server process, so the figure is the API server, store, scheduler, controllers \
             and node simulation together; the simulation's share is not separated. API writes/s = store revisions per second \
             over the window (each Lease renewal and status patch is one). RSS = VmRSS (peak = VmHWM).",
            o.nodes,
            o.heartbeat_secs,
            o.heartbeat_secs,
            o.settle.as_secs(),
            o.cpu.secs,
        );
        out.push((
            "nodes",
            o.ctx.clone(),
            Section { title: "7. Many simulated nodes heartbeating".into(), note, tables: vec![t, d] },
        ));
    }
    if let Some(o) = &r.pods {
        out.push(crate::pods::section(o));
    }
    if let Some(o) = &r.dns {
        out.push(crate::dns::section(o));
    }
    if let Some(o) = &r.proxy {
        out.push(crate::proxy::section(o));
    }
    out
}

/// The Markdown of each control-plane scenario that ran, keyed by its marker.
pub fn control_markdown(f: &Facts, r: &Results) -> Vec<(&'static str, String)> {
    control_sections(r)
        .into_iter()
        .map(|(key, info, s)| {
            let mut out = String::new();
            let _ = writeln!(out, "### {}\n", s.title);
            let _ = writeln!(
                out,
                "Run {} with `{}`, rudder commit {}, {} cores; load average (1, 5, 15 min) {} before, {} after.\n",
                info.date,
                command_line(),
                f.commit,
                f.nproc,
                info.load_before,
                info.load_after
            );
            for t in &s.tables {
                let _ = writeln!(out, "{}", t.markdown());
            }
            if !s.note.is_empty() {
                let _ = writeln!(out, "{}", s.note);
            }
            (key, out)
        })
        .collect()
}

/// Puts `section` between the markers of block `key` in `path`; when the file has no such
/// markers, the block goes after the last block of scenarios 5–8 or after the main results.
pub fn write_block(path: &Path, key: &str, section: &str) -> Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let begin = format!("<!-- rudder-bench {key}: begin (written by `rudder-bench {key}` or `all`) -->");
    let end = format!("<!-- rudder-bench {key}: end -->");
    let block = format!("{begin}\n{}\n{end}", section.trim_end());
    let new = match (existing.find(&begin), existing.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{}{}", &existing[..b], block, &existing[e + end.len()..]),
        _ => {
            let after = ["proxy", "dns", "pods", "nodes", "rollout", "scheduler"]
                .iter()
                .filter_map(|k| {
                    let m = format!("<!-- rudder-bench {k}: end -->");
                    existing.find(&m).map(|at| at + m.len())
                })
                .max()
                .or_else(|| existing.find(END).map(|at| at + END.len()));
            match after {
                Some(at) => format!("{}\n\n{block}{}", &existing[..at], &existing[at..]),
                None if existing.trim().is_empty() => format!("# Benchmarks\n\n{block}\n"),
                None => format!("{}\n\n{block}\n", existing.trim_end()),
            }
        }
    };
    std::fs::write(path, new).with_context(|| format!("cannot write {}", path.display()))
}
