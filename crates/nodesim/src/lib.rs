//! Simulated nodes: register nodes, renew their Leases and status like kubelets do, and move
//! the pods bound to them through the pod lifecycle, without containers.
//!
//! [`start`] (or [`run`]) registers `count` nodes named `<prefix>-0` … `<prefix>-{count-1}`
//! (`sim-0`, `sim-1`, … by default), or takes over Nodes of those names that already exist. Each
//! node has 4 CPUs, 16Gi of memory, 110 pods and 100Gi of ephemeral storage (see
//! [`Options::capacity`]), the labels a kubelet sets plus `node.kubernetes.io/instance-type:
//! simulated` and a `topology.kubernetes.io/zone` spread over [`Options::zones`], an InternalIP
//! in 10.200.0.0/16 (nothing is routed there) and a /24 pod CIDR (`10.244.<i>.0/24` for the first
//! 256 nodes).
//!
//! Like a kubelet, each node
//! - renews its Lease `kube-node-lease/<node>` every [`Options::heartbeat_interval`] (10 s), with
//!   the renewals of all nodes spread evenly over the interval;
//! - checks its status as often, and patches it (`nodes/status`) when it differs from what the
//!   node reports (say a controller marked it `Ready=Unknown`) or every
//!   [`Options::status_report_interval`] (5 min, the kubelet's `nodeStatusReportFrequency`) to
//!   refresh the heartbeat times, the first of these refreshes spread over the interval;
//! - moves its pods along: Pending → Running after [`Options::pod_start_delay`], with a pod IP
//!   from the node's CIDR and every Ready condition True; pods that complete (restartPolicy
//!   `Never`/`OnFailure`, and owned by a Job or annotated `rudder.dev/simulate-run-seconds`) exit
//!   after their run time with code 0 (or `rudder.dev/simulate-exit-code` for `Never` pods) and
//!   end Succeeded or Failed; a pod marked for deletion has its containers killed after its grace
//!   period, capped at [`Options::deletion_grace_cap`], and is then removed with a DELETE with
//!   `gracePeriodSeconds=0` and its uid as precondition; terminal pods being deleted are removed
//!   at once.
//!
//! # Node loss
//!
//! A node stops its heartbeat — no Lease renewals, no status updates, and its pods stay as they
//! are (deleted ones stay Terminating) — while either
//! - its Node carries the annotation `rudder.dev/simulate-heartbeat: stopped` (works from outside
//!   the process, e.g. `kubectl annotate node sim-1 rudder.dev/simulate-heartbeat=stopped`;
//!   remove it to resume), or
//! - [`Sim::stop_heartbeat`] was called for it (until [`Sim::resume_heartbeat`]).
//!
//! A Node deleted from the API is not registered again until the engine restarts, as with a
//! kubelet.
//!
//! # Scale
//!
//! One node watch, one pod watch (of bound pods) and one timer loop serve every node; API writes
//! go through a semaphore of [`Options::max_concurrent_writes`]. Failed writes are retried with
//! exponential backoff. Up to [`MAX_NODES`] nodes.

mod engine;
pub mod net;
pub mod node;
pub mod pod;
pub mod timers;

use kube::Client;
use rudder_controllers::informers::Informers;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

pub use net::MAX_NODES;
pub use node::{Capacity, HEARTBEAT_ANNOTATION};
pub use pod::{EXIT_CODE_ANNOTATION, RUN_SECONDS_ANNOTATION};

/// How many nodes to simulate, how they are named and how they behave.
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of nodes.
    pub count: usize,
    /// Node names are `<name_prefix>-<index>`.
    pub name_prefix: String,
    /// Zones the nodes are spread over, round-robin.
    pub zones: Vec<String>,
    /// Resources of every node.
    pub capacity: Capacity,
    /// Lease renewal and status check period (kubelet: 10 s).
    pub heartbeat_interval: Duration,
    /// `leaseDurationSeconds` of the node Leases (kubelet: 40).
    pub lease_duration_seconds: i32,
    /// Status is patched at least this often even when unchanged.
    pub status_report_interval: Duration,
    /// Delay before a pod bound to a node is reported Running.
    pub pod_start_delay: Duration,
    /// How long completing pods run when they do not say.
    pub pod_run_duration: Duration,
    /// Cap on the wait for a deleted pod's grace period.
    pub deletion_grace_cap: Duration,
    /// API writes in flight at once, over all nodes.
    pub max_concurrent_writes: usize,
    /// The process's shared pod and node watches; without them the engine starts its own.
    pub shared: Option<Informers>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            count: 0,
            name_prefix: "sim".into(),
            zones: vec!["zone-a".into(), "zone-b".into(), "zone-c".into()],
            capacity: Capacity::default(),
            heartbeat_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            status_report_interval: Duration::from_secs(300),
            pod_start_delay: Duration::from_millis(100),
            pod_run_duration: Duration::from_secs(1),
            deletion_grace_cap: Duration::from_secs(1),
            max_concurrent_writes: 32,
            shared: None,
        }
    }
}

impl Options {
    /// Upstream-like defaults for `count` nodes.
    pub fn new(count: usize) -> Options {
        Options { count, ..Options::default() }
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.count <= MAX_NODES, "at most {MAX_NODES} simulated nodes (asked for {})", self.count);
        anyhow::ensure!(!self.name_prefix.is_empty(), "the node name prefix is empty");
        anyhow::ensure!(!self.heartbeat_interval.is_zero(), "the heartbeat interval must be positive");
        anyhow::ensure!(self.lease_duration_seconds > 0, "the lease duration must be positive");
        Ok(())
    }
}

/// A handle on running simulated nodes. Clones share the engine.
#[derive(Clone)]
pub struct Sim {
    engine: Arc<engine::Engine>,
    done: watch::Receiver<bool>,
}

impl Sim {
    /// Names of the simulated nodes, in index order.
    pub fn node_names(&self) -> Vec<String> {
        self.engine.nodes.iter().map(|n| n.id.name.clone()).collect()
    }

    /// Stops the heartbeat of node `name`: no Lease renewals, no status updates, no pod progress.
    /// Returns false for a node this engine does not run.
    pub fn stop_heartbeat(&self, name: &str) -> bool {
        let Some(&i) = self.engine.by_name.get(name) else { return false };
        if !self.engine.nodes[i].stopped_by_api.swap(true, Ordering::SeqCst) {
            tracing::info!(node = %name, "heartbeat stopped");
        }
        true
    }

    /// Resumes the heartbeat of node `name` (unless its stop annotation is still set). Returns
    /// false for a node this engine does not run.
    pub fn resume_heartbeat(&self, name: &str) -> bool {
        let Some(&i) = self.engine.by_name.get(name) else { return false };
        if self.engine.nodes[i].stopped_by_api.swap(false, Ordering::SeqCst) {
            tracing::info!(node = %name, "heartbeat resumed");
            self.engine.resumed(i);
        }
        true
    }

    /// Waits until the engine has stopped (after `shutdown` turned true).
    pub async fn wait(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }
}

/// Starts the simulated nodes on the current Tokio runtime; they run until `shutdown` turns true.
pub fn start(client: Client, options: Options, shutdown: watch::Receiver<bool>) -> anyhow::Result<Sim> {
    options.check()?;
    let engine = Arc::new(engine::Engine::new(client, options));
    let (finished, done) = watch::channel(false);
    let running = engine.clone();
    tokio::spawn(async move {
        running.run(shutdown).await;
        let _ = finished.send(true);
    });
    Ok(Sim { engine, done })
}

/// Runs the simulated nodes until `shutdown` turns true.
pub async fn run(client: Client, options: Options, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    if options.count == 0 {
        return Ok(());
    }
    let sim = start(client, options, shutdown)?;
    sim.wait().await;
    Ok(())
}

#[cfg(test)]
mod inprocess_tests;
