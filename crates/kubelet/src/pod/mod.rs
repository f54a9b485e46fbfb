//! One worker per pod: it brings the runtime to what the pod spec asks (sandbox, volumes, init
//! containers in order, app containers with their restart policy and back-off, probes), reports
//! the status the runtime shows, and on deletion stops everything gracefully (preStop hooks,
//! SIGTERM, the grace period, SIGKILL) before the API object is removed.

pub mod spec;
pub mod status;
#[cfg(test)]
mod worker_tests;

use crate::cri::{Runtime, types as cri};
use crate::env::{NodeFacts, Sources};
use crate::events::{Recorder, container_path};
use crate::layout;
use crate::probes::{self, ProbeOutcome, ProbeState, ProbeTarget};
use crate::volumes::Volumes;
use anyhow::Result;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, Probe};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use status::{Instance, Observed, State, Waiting};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
// The tokio clock (the same as std's outside tests) so back-offs and grace periods follow paused
// time in tests.
use tokio::time::Instant;

/// First restart back-off; it doubles up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// Longest restart back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long without trouble starts over at the initial back-off.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How often a worker looks at its pod when nothing happens.
const RESYNC: Duration = Duration::from_secs(1);
/// How often volume contents are refreshed from their ConfigMaps and Secrets.
const VOLUME_REFRESH: Duration = Duration::from_secs(10);
/// Termination messages are cut to this many bytes, as upstream.
const MAX_TERMINATION_MESSAGE: usize = 4096;
/// Container annotation naming where its termination message is written inside it.
const ANNOTATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";

/// A termination message file, cut to the upstream limit.
fn read_message(path: &str) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(MAX_TERMINATION_MESSAGE)]).into_owned())
        .unwrap_or_default()
}

/// What every worker of a node shares.
pub struct Shared {
    /// API client.
    pub client: Client,
    /// The container runtime.
    pub runtime: Arc<dyn Runtime>,
    /// Volume manager.
    pub volumes: Volumes,
    /// Node facts for the downward API and env.
    pub node: NodeFacts,
    /// Root of pod log directories.
    pub logs_root: PathBuf,
    /// Cgroup root of pods (`/kubepods`).
    pub cgroup_root: String,
    /// Cluster DNS settings.
    pub dns: crate::dns::ClusterDns,
    /// The host's resolv.conf contents.
    pub host_resolv: String,
    /// Event recorder.
    pub events: Recorder,
}

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    fn name(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

struct ProbeResult {
    container: String,
    container_id: String,
    kind: ProbeKind,
    outcome: ProbeOutcome,
}

#[derive(Default)]
struct Backoff {
    delay: Duration,
    until: Option<Instant>,
    /// The exited instance `until` was computed for: each new exit opens a new window.
    exited: Option<String>,
}

/// Worker state that lives as long as the pod on this node.
struct Worker {
    shared: Arc<Shared>,
    uid: String,
    sandbox: Option<(String, cri::PodSandboxConfig)>,
    sandbox_attempt: u32,
    pod_ip: Option<String>,
    volume_dirs: Option<BTreeMap<String, PathBuf>>,
    volumes_refreshed: Instant,
    waiting: HashMap<String, Waiting>,
    backoff: HashMap<String, Backoff>,
    probes: HashMap<(String, ProbeKind), (String, ProbeState)>,
    probing: HashSet<(String, ProbeKind)>,
    ready: HashMap<String, bool>,
    started: HashMap<String, bool>,
    probe_tx: mpsc::Sender<ProbeResult>,
    start_time: Option<DateTime<Utc>>,
    last_status: Option<Value>,
    failed: Option<Waiting>,
    terminal_cleaned: bool,
    /// Every container was stopped for the pod's deletion.
    killed: bool,
}

fn name_of(pod: &Pod) -> (String, String) {
    (pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()), pod.metadata.name.clone().unwrap_or_default())
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

fn grace_seconds(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0)
}

/// Runs the worker of one pod until it is gone from the API and from the runtime. `pods` carries
/// the pod's newest version; `None` means the API object was deleted.
pub async fn run(shared: Arc<Shared>, uid: String, mut pods: watch::Receiver<Option<Arc<Pod>>>) {
    let (probe_tx, mut probe_rx) = mpsc::channel(64);
    let mut w = Worker {
        shared,
        uid,
        sandbox: None,
        sandbox_attempt: 0,
        pod_ip: None,
        volume_dirs: None,
        volumes_refreshed: Instant::now(),
        waiting: HashMap::new(),
        backoff: HashMap::new(),
        probes: HashMap::new(),
        probing: HashSet::new(),
        ready: HashMap::new(),
        started: HashMap::new(),
        probe_tx,
        start_time: None,
        last_status: None,
        failed: None,
        terminal_cleaned: false,
        killed: false,
    };
    let mut last: Option<Arc<Pod>> = None;
    loop {
        let current = pods.borrow_and_update().clone();
        match current {
            None => {
                // Gone from the API: stop whatever still runs, at once.
                if let Some(pod) = &last {
                    w.kill_pod(pod, 0).await;
                }
                w.cleanup().await;
                return;
            }
            Some(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    w.kill_pod(&pod, grace_seconds(&pod)).await;
                    w.report(&pod).await;
                    w.cleanup().await;
                    let (ns, name) = name_of(&pod);
                    let api: Api<Pod> = Api::namespaced(w.shared.client.clone(), &ns);
                    let dp = DeleteParams {
                        grace_period_seconds: Some(0),
                        preconditions: Some(Preconditions { uid: Some(w.uid.clone()), resource_version: None }),
                        ..Default::default()
                    };
                    match api.delete(&name, &dp).await {
                        Ok(_) => return,
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return,
                        Err(e) => tracing::warn!("cannot remove pod {ns}/{name}: {e}"),
                    }
                } else if let Err(e) = w.sync(&pod).await {
                    tracing::warn!("pod {}/{}: {e:#}", name_of(&pod).0, name_of(&pod).1);
                }
                if pod.metadata.deletion_timestamp.is_none() {
                    w.report(&pod).await;
                }
                last = Some(pod);
            }
        }
        tokio::select! {
            changed = pods.changed() => {
                if changed.is_err() {
                    // The kubelet is shutting down: containers keep running, as with upstream.
                    return;
                }
            }
            Some(result) = probe_rx.recv() => w.record_probe(last.as_deref(), result),
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

impl Worker {
    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    /// Instances of this pod's containers, by container name, newest first.
    async fn observe(&self) -> Result<HashMap<String, Vec<Instance>>> {
        let all = self.shared.runtime.list_containers().await?;
        let mut out: HashMap<String, Vec<Instance>> = HashMap::new();
        for c in all {
            if c.labels.get(layout::LABEL_POD_UID) != Some(&self.uid) {
                continue;
            }
            let Some(name) = c.labels.get(layout::LABEL_CONTAINER_NAME).cloned() else { continue };
            let Some(st) = self.shared.runtime.container_status(&c.id).await? else { continue };
            let message_path = st.annotations.get(ANNOTATION_MESSAGE_PATH).cloned().unwrap_or_default();
            let message_file = st.mounts.iter().find(|m| m.container_path == message_path).map(|m| m.host_path.clone());
            let state = match cri::ContainerState::try_from(st.state) {
                Ok(cri::ContainerState::ContainerCreated) => State::Created,
                Ok(cri::ContainerState::ContainerRunning) => State::Running,
                Ok(cri::ContainerState::ContainerExited) => State::Exited,
                _ => State::Unknown,
            };
            out.entry(name).or_default().push(Instance {
                id: st.id.clone(),
                attempt: st.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
                state,
                created_at: st.created_at,
                started_at: st.started_at,
                finished_at: st.finished_at,
                exit_code: st.exit_code,
                reason: st.reason.clone(),
                message: match (&message_file, state) {
                    (Some(file), State::Exited) => read_message(file),
                    _ => String::new(),
                },
                image_ref: st.image_ref.clone(),
            });
        }
        for list in out.values_mut() {
            list.sort_by(|a, b| b.attempt.cmp(&a.attempt).then(b.created_at.cmp(&a.created_at)));
        }
        Ok(out)
    }

    async fn ensure_sandbox(&mut self, pod: &Pod) -> Result<bool> {
        if let Some((id, _)) = self.sandbox.clone() {
            match self.shared.runtime.pod_sandbox_status(&id).await? {
                Some(s) if s.state == cri::PodSandboxState::SandboxReady as i32 => return Ok(true),
                _ => {
                    // The sandbox died: its containers go with it and everything starts over.
                    self.shared.events.normal(
                        pod,
                        None,
                        "SandboxChanged",
                        "Pod sandbox changed, it will be killed and re-created.".into(),
                    );
                    self.kill_containers(pod, 0).await;
                    let _ = self.shared.runtime.stop_pod_sandbox(&id).await;
                    self.sandbox = None;
                    self.sandbox_attempt += 1;
                }
            }
        }
        // Adopt a ready sandbox left by an earlier run of the kubelet.
        for s in self.shared.runtime.list_pod_sandboxes().await? {
            if s.labels.get(layout::LABEL_POD_UID) == Some(&self.uid)
                && s.state == cri::PodSandboxState::SandboxReady as i32
                && let Some(status) = self.shared.runtime.pod_sandbox_status(&s.id).await?
            {
                self.sandbox_attempt = s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
                let config = self.sandbox_config(pod);
                self.pod_ip = status.network.map(|n| n.ip).filter(|ip| !ip.is_empty());
                self.sandbox = Some((s.id, config));
                return Ok(true);
            }
        }
        if restart_policy(pod) == "Never" && self.sandbox_attempt > 0 && !self.observe().await?.is_empty() {
            // As upstream: a pod that never restarts gets no new sandbox once its containers
            // ran; it ends with how they ended.
            return Ok(false);
        }
        let config = self.sandbox_config(pod);
        std::fs::create_dir_all(&config.log_directory)?;
        match self.shared.runtime.run_pod_sandbox(config.clone()).await {
            Ok(id) => {
                let status = self.shared.runtime.pod_sandbox_status(&id).await?;
                let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
                self.pod_ip = if host_network {
                    Some(self.shared.node.host_ip.clone())
                } else {
                    status.and_then(|s| s.network).map(|n| n.ip).filter(|ip| !ip.is_empty())
                };
                self.sandbox = Some((id, config));
                Ok(true)
            }
            Err(e) => {
                self.shared.events.warning(
                    pod,
                    None,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {e:#}"),
                );
                Ok(false)
            }
        }
    }

    fn sandbox_config(&self, pod: &Pod) -> cri::PodSandboxConfig {
        let (ns, name) = name_of(pod);
        let log_dir = layout::pod_log_dir(&self.shared.logs_root, &ns, &name, &self.uid);
        let dns = crate::dns::dns_config(pod, &self.shared.dns, &self.shared.host_resolv);
        spec::sandbox_config(pod, self.sandbox_attempt, &log_dir, &self.shared.cgroup_root, dns)
    }

    fn node_facts(&self) -> NodeFacts {
        self.shared.node.clone()
    }

    async fn ensure_volumes(&mut self, pod: &Pod) -> Result<bool> {
        let due = self.volumes_refreshed.elapsed() >= VOLUME_REFRESH;
        if self.volume_dirs.is_some() && !due {
            return Ok(true);
        }
        let sources = match Sources::fetch(&self.shared.client, pod).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("cannot read the pod's config sources: {e:#}");
                return Ok(self.volume_dirs.is_some());
            }
        };
        let node = self.node_facts();
        if self.volume_dirs.is_some() {
            self.volumes_refreshed = Instant::now();
            if let Err(e) = self.shared.volumes.refresh(pod, &sources, &self.shared.client, &node).await {
                tracing::debug!("volume refresh: {e}");
            }
            return Ok(true);
        }
        match self.shared.volumes.prepare(pod, &sources, &self.shared.client, &node).await {
            Ok(dirs) => {
                self.volume_dirs = Some(dirs);
                self.volumes_refreshed = Instant::now();
                Ok(true)
            }
            Err(e) => {
                self.shared.events.warning(pod, None, "FailedMount", e.to_string());
                Ok(false)
            }
        }
    }

    /// One pass: sandbox, volumes, init containers, app containers, probes.
    async fn sync(&mut self, pod: &Pod) -> Result<()> {
        if self.start_time.is_none() {
            self.start_time = Some(
                pod.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .and_then(|t| DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32))
                    .unwrap_or_else(Self::now),
            );
        }
        if self.failed.is_some() {
            return Ok(());
        }
        let phase = self.last_status.as_ref().and_then(|s| s["phase"].as_str()).unwrap_or("");
        if phase == "Succeeded" || phase == "Failed" {
            // Terminal: nothing restarts; the sandbox is stopped once.
            if !self.terminal_cleaned {
                self.kill_containers(pod, grace_seconds(pod)).await;
                if let Some((id, _)) = &self.sandbox {
                    let _ = self.shared.runtime.stop_pod_sandbox(id).await;
                }
                self.terminal_cleaned = true;
            }
            return Ok(());
        }
        if !self.ensure_sandbox(pod).await? {
            return Ok(());
        }
        if !self.ensure_volumes(pod).await? {
            return Ok(());
        }
        let instances = self.observe().await?;
        self.prune_dead(&instances).await;
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = restart_policy(pod).to_string();

        // Init containers, one after another.
        for c in spec.init_containers.iter().flatten() {
            let newest = instances.get(&c.name).and_then(|l| l.first());
            match newest {
                Some(i) if i.state == State::Exited && i.exit_code == 0 => continue,
                Some(i) if i.state == State::Running => return Ok(()),
                Some(i) if i.state == State::Exited => {
                    if policy == "Never" {
                        return Ok(());
                    }
                    self.restart_with_backoff(pod, c, true, i).await;
                    return Ok(());
                }
                Some(i) => {
                    let id = i.id.clone();
                    let _ = self.shared.runtime.remove_container(&id).await;
                    self.start_container(pod, c, true, i.attempt).await;
                    return Ok(());
                }
                None => {
                    self.start_container(pod, c, true, 0).await;
                    return Ok(());
                }
            }
        }

        for c in &spec.containers {
            let newest = instances.get(&c.name).and_then(|l| l.first()).cloned();
            match newest {
                None => self.start_container(pod, c, false, 0).await,
                Some(i) if i.state == State::Running => {
                    self.waiting.remove(&c.name);
                    if let Some(b) = self.backoff.get_mut(&c.name)
                        && i.started_at > 0
                        && Utc::now().timestamp_nanos_opt().unwrap_or(0) - i.started_at
                            > BACKOFF_RESET.as_nanos() as i64
                    {
                        *b = Backoff::default();
                    }
                    self.run_probes(pod, c, &i);
                }
                Some(i) if i.state == State::Exited => {
                    let restart = match policy.as_str() {
                        "Never" => false,
                        "OnFailure" => i.exit_code != 0,
                        _ => true,
                    };
                    self.forget_probes(&c.name);
                    if restart {
                        self.restart_with_backoff(pod, c, false, &i).await;
                    } else {
                        self.waiting.remove(&c.name);
                    }
                }
                Some(i) => {
                    // Created but never started (a start that failed): replace it.
                    let _ = self.shared.runtime.remove_container(&i.id).await;
                    self.start_container(pod, c, false, i.attempt).await;
                }
            }
        }
        Ok(())
    }

    /// Restarts an exited container unless it is still backing off.
    async fn restart_with_backoff(&mut self, pod: &Pod, c: &Container, init: bool, last: &Instance) {
        let (ns, name) = name_of(pod);
        let b = self.backoff.entry(c.name.clone()).or_default();
        let now = Instant::now();
        if b.exited.as_deref() != Some(last.id.as_str()) {
            // As upstream, the back-off runs from when the last run finished, not from when it
            // was started: a run that lasted longer than the delay still waits the delay.
            b.exited = Some(last.id.clone());
            let since_exit = Utc::now().timestamp_nanos_opt().unwrap_or(0).saturating_sub(last.finished_at);
            let since_exit = Duration::from_nanos(since_exit.clamp(0, b.delay.as_nanos() as i64) as u64);
            b.until = (!b.delay.is_zero()).then(|| now.checked_sub(since_exit).unwrap_or(now) + b.delay);
        }
        if let Some(until) = b.until
            && now < until
        {
            let message = format!(
                "back-off {} restarting failed container={} pod={}_{}({})",
                human(b.delay),
                c.name,
                name,
                ns,
                self.uid
            );
            let first = self.waiting.get(&c.name).map(|w| w.reason.as_str()) != Some("CrashLoopBackOff");
            if first {
                self.shared.events.warning(
                    pod,
                    container_path(init, &c.name),
                    "BackOff",
                    format!("Back-off restarting failed container {} in pod {}_{}({})", c.name, name, ns, self.uid),
                );
            }
            self.waiting.insert(c.name.clone(), Waiting { reason: "CrashLoopBackOff".into(), message });
            return;
        }
        b.delay = if b.delay.is_zero() { INITIAL_BACKOFF } else { (b.delay * 2).min(MAX_BACKOFF) };
        b.until = Some(now + b.delay);
        self.start_container(pod, c, init, last.attempt + 1).await;
    }

    /// Removes exited instances beyond the newest two of each container.
    async fn prune_dead(&self, instances: &HashMap<String, Vec<Instance>>) {
        for list in instances.values() {
            for old in list.iter().skip(2).filter(|i| i.state == State::Exited) {
                let _ = self.shared.runtime.remove_container(&old.id).await;
            }
        }
    }

    async fn ensure_image(&mut self, pod: &Pod, c: &Container, init: bool) -> Option<String> {
        let image = c.image.clone().unwrap_or_default();
        let path = container_path(init, &c.name);
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            if image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or("").contains(':') {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        });
        let present = self.shared.runtime.image_status(&image).await.ok().flatten();
        if policy != "Always"
            && let Some(img) = &present
        {
            if self.waiting.get(&c.name).is_some_and(|w| w.reason.contains("Image")) {
                self.waiting.remove(&c.name);
            }
            self.shared.events.normal(
                pod,
                path,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            return Some(img.id.clone());
        }
        if policy == "Never" {
            let message = format!("Container image \"{image}\" is not present with pull policy of Never");
            self.shared.events.warning(pod, path, "ErrImageNeverPull", message.clone());
            self.waiting.insert(c.name.clone(), Waiting { reason: "ErrImageNeverPull".into(), message });
            return None;
        }
        // Pull back-off: after a failure, wait before the next attempt.
        let key = format!("image:{}", c.name);
        if let Some(b) = self.backoff.get(&key)
            && b.until.is_some_and(|u| Instant::now() < u)
        {
            let message = format!("Back-off pulling image \"{image}\"");
            self.waiting.insert(c.name.clone(), Waiting { reason: "ImagePullBackOff".into(), message });
            return None;
        }
        self.shared.events.normal(pod, path.clone(), "Pulling", format!("Pulling image \"{image}\""));
        let auth = crate::pull::auth_for(&self.shared.client, pod, &image).await;
        let started = Instant::now();
        match self.shared.runtime.pull_image(&image, auth, self.sandbox.as_ref().map(|s| s.1.clone())).await {
            Ok(reference) => {
                self.backoff.remove(&key);
                self.shared.events.normal(
                    pod,
                    path,
                    "Pulled",
                    format!("Successfully pulled image \"{image}\" in {:.3}s", started.elapsed().as_secs_f64()),
                );
                Some(reference)
            }
            Err(e) => {
                if let Some(img) = present {
                    // `Always` with the image already here: a failed refresh still runs it.
                    return Some(img.id);
                }
                let b = self.backoff.entry(key).or_default();
                b.delay = if b.delay.is_zero() { INITIAL_BACKOFF } else { (b.delay * 2).min(MAX_BACKOFF) };
                b.until = Some(Instant::now() + b.delay);
                let message = format!("Failed to pull image \"{image}\": {e:#}");
                self.shared.events.warning(pod, path, "Failed", message.clone());
                self.waiting.insert(c.name.clone(), Waiting { reason: "ErrImagePull".into(), message });
                None
            }
        }
    }

    /// Creates and starts one container instance.
    async fn start_container(&mut self, pod: &Pod, c: &Container, init: bool, attempt: u32) {
        let Some((sandbox_id, sandbox_config)) = self.sandbox.clone() else { return };
        let path = container_path(init, &c.name);
        let Some(image) = self.ensure_image(pod, c, init).await else { return };
        let sources = match Sources::fetch(&self.shared.client, pod).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("cannot read the pod's config sources: {e:#}");
                return;
            }
        };
        let mut node = self.node_facts();
        node.pod_ips = self.pod_ip.iter().cloned().collect();
        let env = match crate::env::container_env(pod, c, &sources, &node) {
            Ok(env) => env,
            Err(e) => {
                let message = e.to_string();
                self.shared.events.warning(pod, path, "Failed", format!("Error: {message}"));
                self.waiting.insert(c.name.clone(), Waiting { reason: "CreateContainerConfigError".into(), message });
                return;
            }
        };
        let dirs = self.volume_dirs.clone().unwrap_or_default();
        let mut mounts = match Volumes::try_mounts(c, &dirs, &env) {
            Ok(m) => m,
            Err(e) => {
                let message = e.to_string();
                self.shared.events.warning(pod, path, "Failed", format!("Error: {message}"));
                self.waiting.insert(c.name.clone(), Waiting { reason: "CreateContainerConfigError".into(), message });
                return;
            }
        };
        let term_log = self.shared.volumes.termination_log(&self.uid, &format!("{}-{attempt}", c.name));
        if let Some(parent) = term_log.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&term_log, b"");
        mounts.push(cri::Mount {
            container_path: c.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".into()),
            host_path: term_log.display().to_string(),
            ..Default::default()
        });
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
        if !host_network
            && let Some(ip) = &self.pod_ip
            && !mounts.iter().any(|m| m.container_path == "/etc/hosts")
        {
            let dir = self.shared.volumes.pod_dir(&self.uid);
            let _ = std::fs::create_dir_all(&dir);
            let hosts = dir.join("etc-hosts");
            let text = spec::hosts_file(pod, ip, &self.shared.dns.domain);
            if std::fs::write(&hosts, text).is_ok() {
                mounts.push(cri::Mount {
                    container_path: "/etc/hosts".into(),
                    host_path: hosts.display().to_string(),
                    ..Default::default()
                });
            }
        }
        let log_path = layout::container_log_path(&c.name, attempt);
        let _ = std::fs::create_dir_all(PathBuf::from(&sandbox_config.log_directory).join(&c.name));
        let _ = std::fs::remove_file(PathBuf::from(&sandbox_config.log_directory).join(&log_path));
        let config = spec::container_config(
            pod,
            c,
            spec::ContainerInputs { env, mounts, attempt, log_path, image: image.clone() },
        );
        let id = match self.shared.runtime.create_container(&sandbox_id, config, sandbox_config.clone()).await {
            Ok(id) => id,
            Err(e) => {
                let message = format!("{e:#}");
                self.shared.events.warning(pod, path, "Failed", format!("Error: {message}"));
                self.waiting.insert(c.name.clone(), Waiting { reason: "CreateContainerError".into(), message });
                return;
            }
        };
        self.shared.events.normal(pod, path.clone(), "Created", format!("Created container {}", c.name));
        if let Err(e) = self.shared.runtime.start_container(&id).await {
            let message = format!("{e:#}");
            self.shared.events.warning(pod, path, "Failed", format!("Error: {message}"));
            self.waiting.insert(c.name.clone(), Waiting { reason: "RunContainerError".into(), message });
            return;
        }
        self.waiting.remove(&c.name);
        self.shared.events.normal(pod, path.clone(), "Started", format!("Started container {}", c.name));
        if let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref())
            && let Err(message) = self.run_hook(handler, c, &id, 30).await
        {
            self.shared.events.warning(pod, path, "FailedPostStartHook", format!("PostStartHook failed: {message}"));
            let _ = self.shared.runtime.stop_container(&id, grace_seconds(pod)).await;
        }
    }

    /// Runs a lifecycle hook; the error is the hook's output or failure.
    async fn run_hook(&self, handler: &LifecycleHandler, c: &Container, id: &str, timeout: i64) -> Result<(), String> {
        let probe = Probe {
            exec: handler.exec.clone(),
            http_get: handler.http_get.clone(),
            tcp_socket: handler.tcp_socket.clone(),
            timeout_seconds: Some(timeout.clamp(1, i32::MAX as i64) as i32),
            ..Default::default()
        };
        if let Some(sleep) = &handler.sleep {
            tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
            return Ok(());
        }
        let target = ProbeTarget {
            pod_ip: self.pod_ip.as_deref(),
            container: c,
            container_id: id,
            runtime: self.shared.runtime.as_ref(),
        };
        match probes::probe(&probe, &target).await {
            ProbeOutcome::Success => Ok(()),
            ProbeOutcome::Failure(m) => Err(m),
        }
    }

    fn probe_of(c: &Container, kind: ProbeKind) -> Option<&Probe> {
        match kind {
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
            ProbeKind::Startup => c.startup_probe.as_ref(),
        }
    }

    fn forget_probes(&mut self, container: &str) {
        self.probes.retain(|(name, _), _| name != container);
        self.ready.remove(container);
        self.started.remove(container);
    }

    /// Launches the probes of a running container that are due.
    fn run_probes(&mut self, pod: &Pod, c: &Container, instance: &Instance) {
        let started = c.startup_probe.is_none() || self.started.get(&c.name).copied().unwrap_or(false);
        for kind in [ProbeKind::Startup, ProbeKind::Liveness, ProbeKind::Readiness] {
            let Some(probe) = Self::probe_of(c, kind) else { continue };
            if kind == ProbeKind::Startup && started {
                continue;
            }
            if kind != ProbeKind::Startup && !started {
                continue;
            }
            let key = (c.name.clone(), kind);
            // The probe clock starts when the container did.
            let ran_for = Utc::now().timestamp_nanos_opt().unwrap_or(0).saturating_sub(instance.started_at).max(0);
            let now = std::time::Instant::now();
            let started_at = now.checked_sub(Duration::from_nanos(ran_for as u64)).unwrap_or(now);
            let initial = kind == ProbeKind::Liveness;
            let entry = self
                .probes
                .entry(key.clone())
                .or_insert_with(|| (instance.id.clone(), ProbeState::new(probe, started_at, initial)));
            if entry.0 != instance.id {
                *entry = (instance.id.clone(), ProbeState::new(probe, started_at, initial));
            }
            if self.probing.contains(&key) || !entry.1.due(std::time::Instant::now()) {
                continue;
            }
            self.probing.insert(key);
            let (runtime, tx) = (self.shared.runtime.clone(), self.probe_tx.clone());
            let (probe, container, id, pod_ip) = (probe.clone(), c.clone(), instance.id.clone(), self.pod_ip.clone());
            let _ = pod;
            tokio::spawn(async move {
                let target = ProbeTarget {
                    pod_ip: pod_ip.as_deref(),
                    container: &container,
                    container_id: &id,
                    runtime: runtime.as_ref(),
                };
                let outcome = probes::probe(&probe, &target).await;
                let _ =
                    tx.send(ProbeResult { container: container.name.clone(), container_id: id, kind, outcome }).await;
            });
        }
    }

    fn record_probe(&mut self, pod: Option<&Pod>, r: ProbeResult) {
        let key = (r.container.clone(), r.kind);
        self.probing.remove(&key);
        let Some((id, state)) = self.probes.get_mut(&key) else { return };
        if *id != r.container_id {
            return;
        }
        if let (ProbeOutcome::Failure(message), Some(pod)) = (&r.outcome, pod) {
            let init = false;
            self.shared.events.warning(
                pod,
                container_path(init, &r.container),
                "Unhealthy",
                format!("{} probe failed: {message}", r.kind.name()),
            );
        }
        let Some(now_ok) = state.record(&r.outcome) else { return };
        match r.kind {
            ProbeKind::Readiness => {
                self.ready.insert(r.container, now_ok);
            }
            ProbeKind::Startup => {
                if now_ok {
                    self.started.insert(r.container, true);
                } else {
                    self.kill_for_probe(pod, &r.container, &r.container_id, "startup");
                }
            }
            ProbeKind::Liveness => {
                if !now_ok {
                    self.kill_for_probe(pod, &r.container, &r.container_id, "liveness");
                }
            }
        }
    }

    /// A failed liveness or startup probe: the container is stopped and restarted by policy.
    fn kill_for_probe(&mut self, pod: Option<&Pod>, container: &str, id: &str, which: &str) {
        let Some(pod) = pod else { return };
        self.shared.events.normal(
            pod,
            container_path(false, container),
            "Killing",
            format!("Container {container} failed {which} probe, will be restarted"),
        );
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == container))
            .and_then(|c| c.liveness_probe.as_ref())
            .and_then(|p| p.termination_grace_period_seconds)
            .unwrap_or_else(|| grace_seconds(pod));
        let runtime = self.shared.runtime.clone();
        let id = id.to_string();
        self.forget_probes(container);
        tokio::spawn(async move {
            let _ = runtime.stop_container(&id, grace).await;
        });
    }

    /// Stops every running container: preStop hooks, then stop with what is left of the grace.
    async fn kill_containers(&mut self, pod: &Pod, grace: i64) {
        let Ok(instances) = self.observe().await else { return };
        let spec = pod.spec.clone().unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(grace as u64);
        let mut stops = Vec::new();
        for (name, list) in &instances {
            for i in list.iter().filter(|i| i.state == State::Running || i.state == State::Created) {
                let c = spec.containers.iter().chain(spec.init_containers.iter().flatten()).find(|c| &c.name == name);
                let init = spec.init_containers.iter().flatten().any(|c| &c.name == name);
                self.shared.events.normal(
                    pod,
                    container_path(init, name),
                    "Killing",
                    format!("Stopping container {name}"),
                );
                let pre_stop = c.and_then(|c| c.lifecycle.as_ref()).and_then(|l| l.pre_stop.clone());
                let (id, c) = (i.id.clone(), c.cloned());
                let this = &*self;
                stops.push(async move {
                    if let (Some(handler), Some(c)) = (pre_stop, c.as_ref())
                        && grace > 0
                    {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(grace as u64),
                            this.run_hook(&handler, c, &id, grace),
                        )
                        .await;
                    }
                    let left = deadline.saturating_duration_since(Instant::now()).as_secs() as i64;
                    let _ = this.shared.runtime.stop_container(&id, left.max(if grace > 0 { 1 } else { 0 })).await;
                });
            }
        }
        futures::future::join_all(stops).await;
    }

    /// Stops the whole pod (containers, then the sandbox).
    async fn kill_pod(&mut self, pod: &Pod, grace: i64) {
        self.kill_containers(pod, grace).await;
        if let Some((id, _)) = &self.sandbox {
            let _ = self.shared.runtime.stop_pod_sandbox(id).await;
        }
        self.ready.clear();
        self.killed = true;
    }

    /// Removes the pod's containers, sandboxes and volumes from the node.
    async fn cleanup(&mut self) {
        if let Ok(all) = self.shared.runtime.list_containers().await {
            for c in all.iter().filter(|c| c.labels.get(layout::LABEL_POD_UID) == Some(&self.uid)) {
                let _ = self.shared.runtime.stop_container(&c.id, 0).await;
                let _ = self.shared.runtime.remove_container(&c.id).await;
            }
        }
        if let Ok(all) = self.shared.runtime.list_pod_sandboxes().await {
            for s in all.iter().filter(|s| s.labels.get(layout::LABEL_POD_UID) == Some(&self.uid)) {
                let _ = self.shared.runtime.stop_pod_sandbox(&s.id).await;
                let _ = self.shared.runtime.remove_pod_sandbox(&s.id).await;
            }
        }
        self.sandbox = None;
        self.shared.volumes.cleanup(&self.uid).await;
    }

    /// The tail of a failed container's log as its message, when its policy asks for that.
    fn fallback_message(&self, c: &Container, i: &Instance, log_dir: &std::path::Path) -> String {
        if i.exit_code == 0 || c.termination_message_policy.as_deref() != Some("FallbackToLogsOnError") {
            return String::new();
        }
        let log = log_dir.join(layout::container_log_path(&c.name, i.attempt));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail: Vec<&str> =
            lines.iter().skip(lines.len().saturating_sub(80)).map(|l| l.splitn(4, ' ').nth(3).unwrap_or("")).collect();
        let joined = tail.join("\n");
        let mut cut = joined.len().saturating_sub(2048);
        while !joined.is_char_boundary(cut) {
            cut += 1;
        }
        joined[cut..].to_string()
    }

    /// Computes the status and writes it when it changed.
    async fn report(&mut self, pod: &Pod) {
        let Ok(mut instances) = self.observe().await else { return };
        let (ns, name) = name_of(pod);
        let log_dir = layout::pod_log_dir(&self.shared.logs_root, &ns, &name, &self.uid);
        let spec = pod.spec.clone().unwrap_or_default();
        for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
            if let Some(first) = instances.get_mut(&c.name).and_then(|l| l.first_mut())
                && first.state == State::Exited
                && first.message.is_empty()
            {
                first.message = self.fallback_message(c, first, &log_dir);
            }
        }
        let sandbox_ready = match &self.sandbox {
            Some((id, _)) => matches!(
                self.shared.runtime.pod_sandbox_status(id).await,
                Ok(Some(s)) if s.state == cri::PodSandboxState::SandboxReady as i32
            ),
            None => false,
        };
        let obs = Observed {
            sandbox_ready,
            pod_ip: self.pod_ip.clone(),
            host_ip: self.shared.node.host_ip.clone(),
            instances,
            waiting: self.waiting.clone(),
            ready: self.ready.clone(),
            started: self.started.clone(),
            start_time: self.start_time,
            failed: self.failed.clone(),
            terminated: pod.metadata.deletion_timestamp.is_some() && self.killed,
        };
        let mut new = status::pod_status(pod, &obs, Self::now());
        let current = pod.status.as_ref().map(|s| serde_json::to_value(s).unwrap_or_default());
        if let Some(cur) = &current
            && same_status(cur, &new)
        {
            self.last_status = Some(new);
            return;
        }
        if self.last_status.as_ref().is_some_and(|l| same_status(l, &new)) && current.is_none() {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
        // Fields the kubelet does not set stay as they are; a merge patch replaces the lists.
        if let Some(obj) = new.as_object_mut() {
            obj.retain(|_, v| !v.is_null());
        }
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({ "status": new.clone() }))).await {
            Ok(_) => self.last_status = Some(new),
            Err(e) => tracing::debug!("status of pod {ns}/{name} not written: {e}"),
        }
    }
}

/// Two statuses are the same when they differ at most in heartbeat-like times.
fn same_status(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(conds) = v.get_mut("conditions").and_then(Value::as_array_mut) {
            for c in conds.iter_mut() {
                if let Some(o) = c.as_object_mut() {
                    o.remove("lastProbeTime");
                    if o.get("message").is_some_and(|m| m.as_str() == Some("")) {
                        o.remove("message");
                    }
                }
            }
            conds.sort_by(|x, y| x["type"].as_str().cmp(&y["type"].as_str()));
        }
        if let Some(o) = v.as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
        v
    };
    strip(a) == strip(b)
}

/// `10s`, `1m20s`, `5m0s`: Go's duration format for whole seconds.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{}s", s / 60, s % 60) } else { format!("{s}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_durations_print_like_go() {
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_secs(80)), "1m20s");
        assert_eq!(human(Duration::from_secs(300)), "5m0s");
    }

    #[test]
    fn statuses_differing_only_in_probe_times_are_the_same() {
        let a = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null}]});
        let b = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "x": null});
        assert!(same_status(&a, &b));
        let c = json!({"phase": "Pending", "conditions": [{"type": "Ready", "status": "True"}]});
        assert!(!same_status(&a, &c));
    }
}
