//! Test doubles for the kubelet: [`FakeRuntime`], an in-memory CRI runtime that records every
//! call and lets a test script what its containers, images and sandboxes do, and [`FakeApi`],
//! an API server behind a `kube::Client` that answers what the pod worker asks and records the
//! requests. Both write into one [`Journal`], so a test can check the order of runtime calls
//! against API requests (e.g. the sandbox is removed before the pod is deleted).
//!
//! Times follow tokio's clock, so scripted exits and grace periods work under
//! `tokio::time::pause()`.

use crate::cri::{Runtime, types as cri};
use anyhow::{Result, anyhow, bail};
use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// One call the fake runtime received (or one request the fake API answered), in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `Version`.
    Version,
    /// `RunPodSandbox` of a pod (by UID) as `attempt`; `id` is empty when it failed.
    RunPodSandbox {
        /// The pod's UID from the sandbox metadata.
        uid: String,
        /// Sandbox attempt.
        attempt: u32,
        /// Assigned id (empty on failure).
        id: String,
    },
    /// `StopPodSandbox`.
    StopPodSandbox(String),
    /// `RemovePodSandbox`.
    RemovePodSandbox(String),
    /// `PodSandboxStatus`.
    PodSandboxStatus(String),
    /// `ListPodSandbox`.
    ListPodSandboxes,
    /// `CreateContainer`; `id` is empty when it failed.
    CreateContainer {
        /// The sandbox it goes into.
        sandbox: String,
        /// Container name from the metadata.
        name: String,
        /// Attempt (restart count).
        attempt: u32,
        /// Assigned id (empty on failure).
        id: String,
    },
    /// `StartContainer`.
    StartContainer(String),
    /// `StopContainer` with the grace it was given.
    StopContainer {
        /// Container id.
        id: String,
        /// Seconds before SIGKILL.
        timeout: i64,
    },
    /// `RemoveContainer`.
    RemoveContainer(String),
    /// `ListContainers`.
    ListContainers,
    /// `ContainerStatus`.
    ContainerStatus(String),
    /// `ExecSync`.
    ExecSync {
        /// Container id.
        id: String,
        /// The command.
        cmd: Vec<String>,
    },
    /// `Exec`, `Attach` or `PortForward` (streaming; the fake hands out no URL).
    Streaming(&'static str),
    /// `ListContainerStats`.
    ListContainerStats,
    /// `ImageStatus`.
    ImageStatus(String),
    /// `PullImage`.
    PullImage(String),
    /// `ListImages`.
    ListImages,
    /// `ImageFsInfo`.
    ImageFsInfo,
    /// Not a runtime call: a request the [`FakeApi`] answered.
    Api {
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
    },
}

impl Call {
    /// Whether the call only reads (versions, lists, statuses): what tests usually leave out.
    pub fn is_query(&self) -> bool {
        matches!(
            self,
            Call::Version
                | Call::PodSandboxStatus(_)
                | Call::ListPodSandboxes
                | Call::ListContainers
                | Call::ContainerStatus(_)
                | Call::ListContainerStats
                | Call::ImageStatus(_)
                | Call::ListImages
                | Call::ImageFsInfo
        )
    }
}

/// The ordered record both fakes write into.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<Call>>>);

impl Journal {
    fn push(&self, call: Call) {
        self.0.lock().push(call);
    }

    /// Everything recorded so far.
    pub fn all(&self) -> Vec<Call> {
        self.0.lock().clone()
    }
}

/// A scripted end of every run of a container: it exits `after` its start.
#[derive(Clone, Debug)]
struct ExitScript {
    after: Duration,
    code: i32,
    reason: String,
}

struct FakeSandbox {
    id: String,
    config: cri::PodSandboxConfig,
    ready: bool,
    created_at: i64,
    ip: String,
}

struct FakeContainer {
    id: String,
    sandbox_id: String,
    config: cri::ContainerConfig,
    state: cri::ContainerState,
    created_at: i64,
    started_at: i64,
    finished_at: i64,
    exit_code: i32,
    reason: String,
    exit_at: Option<(Instant, i32, String)>,
}

impl FakeContainer {
    fn name(&self) -> &str {
        self.config.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or_default()
    }

    fn attempt(&self) -> u32 {
        self.config.metadata.as_ref().map(|m| m.attempt).unwrap_or(0)
    }

    fn exit(&mut self, at: i64, code: i32, reason: &str) {
        self.state = cri::ContainerState::ContainerExited;
        self.finished_at = at;
        self.exit_code = code;
        self.reason = if !reason.is_empty() {
            reason.to_string()
        } else if code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        };
        self.exit_at = None;
    }
}

#[derive(Default)]
struct World {
    sandboxes: Vec<FakeSandbox>,
    containers: Vec<FakeContainer>,
    next_id: u64,
    missing_images: HashSet<String>,
    pull_errors: HashMap<String, String>,
    sandbox_failures: VecDeque<String>,
    exits: HashMap<String, ExitScript>,
    ignore_sigterm: HashSet<String>,
    exec_exit_code: i32,
}

/// An in-memory CRI runtime that records every call (see [`Call`]) and lets a test script its
/// behaviour. Containers run until a scripted exit, [`FakeRuntime::exit_now`], a stop or the
/// end of their sandbox. Every image is present unless marked missing.
pub struct FakeRuntime {
    world: Mutex<World>,
    journal: Journal,
    base_wall: i64,
    base: Instant,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        FakeRuntime::new(Journal::default())
    }
}

/// The image id (`sha256:…`) the fake gives an image reference.
pub fn image_id(image: &str) -> String {
    let digest = image.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("sha256:{digest:016x}")
}

impl FakeRuntime {
    /// A runtime with nothing in it, recording into `journal`.
    pub fn new(journal: Journal) -> Self {
        FakeRuntime {
            world: Mutex::new(World::default()),
            journal,
            base_wall: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
            base: Instant::now(),
        }
    }

    /// The journal this runtime records into.
    pub fn journal(&self) -> Journal {
        self.journal.clone()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.journal.all()
    }

    /// The calls that change something (no lists, statuses or versions), in order.
    pub fn actions(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| !c.is_query()).collect()
    }

    /// Unix nanoseconds on the fake's clock, which advances with tokio's.
    fn wall(&self) -> i64 {
        self.base_wall + Instant::now().saturating_duration_since(self.base).as_nanos() as i64
    }

    /// Applies scripted exits that are due.
    fn settle(&self, world: &mut World) {
        let now = Instant::now();
        for c in world.containers.iter_mut() {
            if let Some((at, code, reason)) = c.exit_at.clone()
                && c.state == cri::ContainerState::ContainerRunning
                && at <= now
            {
                let finished = self.base_wall + at.saturating_duration_since(self.base).as_nanos() as i64;
                c.exit(finished, code, &reason);
            }
        }
    }

    fn next_id(world: &mut World, prefix: &str) -> String {
        world.next_id += 1;
        format!("{prefix}-{}", world.next_id)
    }

    /// From now on, every run of `container` exits `after` its start with `code` (and `reason`,
    /// e.g. `OOMKilled`; empty means `Completed`/`Error` by the code).
    pub fn exit_after(&self, container: &str, after: Duration, code: i32, reason: &str) {
        let script = ExitScript { after, code, reason: reason.to_string() };
        self.world.lock().exits.insert(container.to_string(), script);
    }

    /// Runs of `container` started from now on run until stopped.
    pub fn run_forever(&self, container: &str) {
        self.world.lock().exits.remove(container);
    }

    /// The newest running instance of `container` exits now; false when none runs.
    pub fn exit_now(&self, container: &str, code: i32, reason: &str) -> bool {
        let at = self.wall();
        let mut world = self.world.lock();
        self.settle(&mut world);
        let newest = world
            .containers
            .iter_mut()
            .filter(|c| c.name() == container && c.state == cri::ContainerState::ContainerRunning)
            .max_by_key(|c| (c.attempt(), c.created_at));
        match newest {
            Some(c) => {
                c.exit(at, code, reason);
                true
            }
            None => false,
        }
    }

    /// Makes `image` present or missing locally.
    pub fn set_image_present(&self, image: &str, present: bool) {
        let mut world = self.world.lock();
        if present {
            world.missing_images.remove(image);
        } else {
            world.missing_images.insert(image.to_string());
        }
    }

    /// Pulls of `image` fail with `message` (or succeed again with `None`).
    pub fn fail_pull(&self, image: &str, message: Option<&str>) {
        let mut world = self.world.lock();
        match message {
            Some(m) => world.pull_errors.insert(image.to_string(), m.to_string()),
            None => world.pull_errors.remove(image),
        };
    }

    /// The next `times` calls of `RunPodSandbox` fail with `message`.
    pub fn fail_run_pod_sandbox(&self, times: usize, message: &str) {
        let mut world = self.world.lock();
        world.sandbox_failures.extend(std::iter::repeat_n(message.to_string(), times));
    }

    /// The sandbox dies (its state turns NotReady); its containers keep running, as when the
    /// pause process of a real sandbox is killed. False when there is no such sandbox.
    pub fn kill_sandbox(&self, id: &str) -> bool {
        let mut world = self.world.lock();
        match world.sandboxes.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                s.ready = false;
                true
            }
            None => false,
        }
    }

    /// `container` ignores SIGTERM: a stop kills it only when its grace runs out (exit 137).
    /// Otherwise it exits at once on SIGTERM with 143.
    pub fn ignore_sigterm(&self, container: &str) {
        self.world.lock().ignore_sigterm.insert(container.to_string());
    }

    /// Exit code `ExecSync` reports from now on (0 by default).
    pub fn set_exec_exit_code(&self, code: i32) {
        self.world.lock().exec_exit_code = code;
    }

    /// Ids of the sandboxes that exist, oldest first, with whether each is ready.
    pub fn sandboxes(&self) -> Vec<(String, bool)> {
        self.world.lock().sandboxes.iter().map(|s| (s.id.clone(), s.ready)).collect()
    }

    /// The id of `container`'s instance with restart count `attempt`.
    pub fn container_id(&self, container: &str, attempt: u32) -> Option<String> {
        let world = self.world.lock();
        world.containers.iter().rev().find(|c| c.name() == container && c.attempt() == attempt).map(|c| c.id.clone())
    }

    /// The state of a container by id (exits that are due applied).
    pub fn state_of(&self, id: &str) -> Option<cri::ContainerState> {
        let mut world = self.world.lock();
        self.settle(&mut world);
        world.containers.iter().find(|c| c.id == id).map(|c| c.state)
    }

    /// How many containers (of any state) exist.
    pub fn container_count(&self) -> usize {
        self.world.lock().containers.len()
    }

    fn sandbox_status(s: &FakeSandbox) -> cri::PodSandboxStatus {
        cri::PodSandboxStatus {
            id: s.id.clone(),
            metadata: s.config.metadata.clone(),
            state: if s.ready { cri::PodSandboxState::SandboxReady } else { cri::PodSandboxState::SandboxNotready }
                as i32,
            created_at: s.created_at,
            network: Some(cri::PodSandboxNetworkStatus { ip: s.ip.clone(), additional_ips: Vec::new() }),
            labels: s.config.labels.clone(),
            annotations: s.config.annotations.clone(),
            ..Default::default()
        }
    }

    fn image_of(c: &FakeContainer) -> String {
        c.config.image.as_ref().map(|i| i.image.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<cri::VersionResponse> {
        self.journal.push(Call::Version);
        Ok(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "1.0.0".into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn run_pod_sandbox(&self, config: cri::PodSandboxConfig) -> Result<String> {
        let now = self.wall();
        let meta = config.metadata.clone().unwrap_or_default();
        let mut world = self.world.lock();
        if let Some(message) = world.sandbox_failures.pop_front() {
            self.journal.push(Call::RunPodSandbox { uid: meta.uid, attempt: meta.attempt, id: String::new() });
            bail!("RunPodSandbox: {message} (Unknown)");
        }
        let id = Self::next_id(&mut world, "sandbox");
        let ip = format!("10.42.0.{}", world.sandboxes.len() + 2);
        world.sandboxes.push(FakeSandbox { id: id.clone(), config, ready: true, created_at: now, ip });
        self.journal.push(Call::RunPodSandbox { uid: meta.uid, attempt: meta.attempt, id: id.clone() });
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        self.journal.push(Call::StopPodSandbox(id.into()));
        let now = self.wall();
        let mut world = self.world.lock();
        self.settle(&mut world);
        if let Some(s) = world.sandboxes.iter_mut().find(|s| s.id == id) {
            s.ready = false;
        }
        for c in world.containers.iter_mut().filter(|c| c.sandbox_id == id) {
            if c.state == cri::ContainerState::ContainerRunning {
                c.exit(now, 137, "");
            }
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        self.journal.push(Call::RemovePodSandbox(id.into()));
        let mut world = self.world.lock();
        world.sandboxes.retain(|s| s.id != id);
        world.containers.retain(|c| c.sandbox_id != id);
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<Option<cri::PodSandboxStatus>> {
        self.journal.push(Call::PodSandboxStatus(id.into()));
        let world = self.world.lock();
        Ok(world.sandboxes.iter().find(|s| s.id == id).map(Self::sandbox_status))
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<cri::PodSandbox>> {
        self.journal.push(Call::ListPodSandboxes);
        let world = self.world.lock();
        Ok(world
            .sandboxes
            .iter()
            .map(|s| {
                let st = Self::sandbox_status(s);
                cri::PodSandbox {
                    id: st.id,
                    metadata: st.metadata,
                    state: st.state,
                    created_at: st.created_at,
                    labels: st.labels,
                    annotations: st.annotations,
                    runtime_handler: String::new(),
                }
            })
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        _sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String> {
        let now = self.wall();
        let meta = config.metadata.clone().unwrap_or_default();
        let mut world = self.world.lock();
        let ready = world.sandboxes.iter().find(|s| s.id == sandbox_id).map(|s| s.ready);
        if ready != Some(true) {
            self.journal.push(Call::CreateContainer {
                sandbox: sandbox_id.into(),
                name: meta.name,
                attempt: meta.attempt,
                id: String::new(),
            });
            bail!("CreateContainer: sandbox container \"{sandbox_id}\" is not running (Unknown)");
        }
        let id = Self::next_id(&mut world, "ctr");
        world.containers.push(FakeContainer {
            id: id.clone(),
            sandbox_id: sandbox_id.into(),
            config,
            state: cri::ContainerState::ContainerCreated,
            created_at: now,
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            exit_at: None,
        });
        self.journal.push(Call::CreateContainer {
            sandbox: sandbox_id.into(),
            name: meta.name,
            attempt: meta.attempt,
            id: id.clone(),
        });
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.journal.push(Call::StartContainer(id.into()));
        let now = self.wall();
        let mut world = self.world.lock();
        let exits = world.exits.clone();
        let Some(c) = world.containers.iter_mut().find(|c| c.id == id) else {
            bail!("StartContainer: container \"{id}\" not found (NotFound)");
        };
        if c.state != cri::ContainerState::ContainerCreated {
            bail!("StartContainer: container \"{id}\" is not in created state (Unknown)");
        }
        c.state = cri::ContainerState::ContainerRunning;
        c.started_at = now;
        c.exit_at = exits.get(c.name()).map(|s| (Instant::now() + s.after, s.code, s.reason.clone()));
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<()> {
        self.journal.push(Call::StopContainer { id: id.into(), timeout: timeout_seconds });
        let stubborn = {
            let mut world = self.world.lock();
            self.settle(&mut world);
            let ignores = world.ignore_sigterm.clone();
            let Some(c) = world.containers.iter_mut().find(|c| c.id == id) else { return Ok(()) };
            if c.state != cri::ContainerState::ContainerRunning {
                return Ok(());
            }
            if timeout_seconds <= 0 {
                c.exit(self.wall(), 137, "");
                return Ok(());
            }
            if !ignores.contains(c.name()) {
                c.exit(self.wall(), 143, "");
                return Ok(());
            }
            true
        };
        if stubborn {
            // SIGTERM is ignored: SIGKILL when the grace runs out.
            tokio::time::sleep(Duration::from_secs(timeout_seconds as u64)).await;
            let now = self.wall();
            let mut world = self.world.lock();
            self.settle(&mut world);
            if let Some(c) = world.containers.iter_mut().find(|c| c.id == id)
                && c.state == cri::ContainerState::ContainerRunning
            {
                c.exit(now, 137, "");
            }
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.journal.push(Call::RemoveContainer(id.into()));
        self.world.lock().containers.retain(|c| c.id != id);
        Ok(())
    }

    async fn list_containers(&self) -> Result<Vec<cri::Container>> {
        self.journal.push(Call::ListContainers);
        let mut world = self.world.lock();
        self.settle(&mut world);
        Ok(world
            .containers
            .iter()
            .map(|c| cri::Container {
                id: c.id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: c.config.metadata.clone(),
                image: c.config.image.clone(),
                image_ref: Self::image_of(c),
                state: c.state as i32,
                created_at: c.created_at,
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
                image_id: Self::image_of(c),
            })
            .collect())
    }

    async fn container_status(&self, id: &str) -> Result<Option<cri::ContainerStatus>> {
        self.journal.push(Call::ContainerStatus(id.into()));
        let mut world = self.world.lock();
        self.settle(&mut world);
        Ok(world.containers.iter().find(|c| c.id == id).map(|c| cri::ContainerStatus {
            id: c.id.clone(),
            metadata: c.config.metadata.clone(),
            state: c.state as i32,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            exit_code: c.exit_code,
            image: c.config.image.clone(),
            image_ref: Self::image_of(c),
            reason: c.reason.clone(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            mounts: c.config.mounts.clone(),
            log_path: c.config.log_path.clone(),
            image_id: Self::image_of(c),
            ..Default::default()
        }))
    }

    async fn exec_sync(&self, id: &str, cmd: Vec<String>, _timeout_seconds: i64) -> Result<cri::ExecSyncResponse> {
        self.journal.push(Call::ExecSync { id: id.into(), cmd });
        let mut world = self.world.lock();
        self.settle(&mut world);
        let running = world.containers.iter().any(|c| c.id == id && c.state == cri::ContainerState::ContainerRunning);
        if !running {
            bail!("ExecSync: container \"{id}\" is not running (Unknown)");
        }
        let exit_code = world.exec_exit_code;
        Ok(cri::ExecSyncResponse { stdout: Vec::new(), stderr: Vec::new(), exit_code })
    }

    async fn exec(&self, _request: cri::ExecRequest) -> Result<String> {
        self.journal.push(Call::Streaming("Exec"));
        Err(anyhow!("Exec: not supported by the fake runtime"))
    }

    async fn attach(&self, _request: cri::AttachRequest) -> Result<String> {
        self.journal.push(Call::Streaming("Attach"));
        Err(anyhow!("Attach: not supported by the fake runtime"))
    }

    async fn port_forward(&self, _request: cri::PortForwardRequest) -> Result<String> {
        self.journal.push(Call::Streaming("PortForward"));
        Err(anyhow!("PortForward: not supported by the fake runtime"))
    }

    async fn list_container_stats(&self) -> Result<Vec<cri::ContainerStats>> {
        self.journal.push(Call::ListContainerStats);
        Ok(Vec::new())
    }

    async fn image_status(&self, image: &str) -> Result<Option<cri::Image>> {
        self.journal.push(Call::ImageStatus(image.into()));
        let world = self.world.lock();
        Ok((!world.missing_images.contains(image)).then(|| cri::Image {
            id: image_id(image),
            repo_tags: vec![image.to_string()],
            ..Default::default()
        }))
    }

    async fn pull_image(
        &self,
        image: &str,
        _auth: Option<cri::AuthConfig>,
        _sandbox_config: Option<cri::PodSandboxConfig>,
    ) -> Result<String> {
        self.journal.push(Call::PullImage(image.into()));
        let mut world = self.world.lock();
        if let Some(message) = world.pull_errors.get(image) {
            bail!("PullImage: {message} (Unknown)");
        }
        world.missing_images.remove(image);
        Ok(image_id(image))
    }

    async fn list_images(&self) -> Result<Vec<cri::Image>> {
        self.journal.push(Call::ListImages);
        Ok(Vec::new())
    }

    async fn image_fs_info(&self) -> Result<cri::ImageFsInfoResponse> {
        self.journal.push(Call::ImageFsInfo);
        Ok(cri::ImageFsInfoResponse::default())
    }
}

/// One request the [`FakeApi`] answered.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/api/v1/namespaces/ns/pods/p/status`.
    pub path: String,
    /// Query string (may be empty).
    pub query: String,
    /// The JSON body (`null` when there was none).
    pub body: Value,
}

#[derive(Default)]
struct ApiState {
    requests: Mutex<Vec<ApiRequest>>,
    objects: Mutex<BTreeMap<String, Value>>,
}

/// A fake API server behind a `kube::Client`: GETs answer the objects put in with
/// [`FakeApi::insert`] (404 otherwise), status PATCHes echo a Pod with the patched status, event
/// POSTs are created, pod DELETEs succeed and token requests get a token. Every request is
/// recorded, and noted in the journal as [`Call::Api`].
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<ApiState>,
    journal: Journal,
}

fn not_found() -> (u16, Value) {
    (404, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}))
}

impl FakeApi {
    /// A fake API server noting its requests in `journal`.
    pub fn new(journal: Journal) -> Self {
        FakeApi { state: Arc::default(), journal }
    }

    /// Serves `object` at `path` (e.g. `/api/v1/namespaces/ns/configmaps/cfg`).
    pub fn insert(&self, path: &str, object: Value) {
        self.state.objects.lock().insert(path.to_string(), object);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.state.requests.lock().clone()
    }

    /// The statuses written with PATCH `pods/<name>/status`, in order.
    pub fn statuses(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
            .map(|r| r.body["status"].clone())
            .collect()
    }

    /// The events created, in order.
    pub fn events(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/events"))
            .map(|r| r.body)
            .collect()
    }

    /// The DELETE requests, in order.
    pub fn deletes(&self) -> Vec<ApiRequest> {
        self.requests().into_iter().filter(|r| r.method == "DELETE").collect()
    }

    fn answer(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        match method {
            "GET" => match self.state.objects.lock().get(path) {
                Some(object) => (200, object.clone()),
                None => not_found(),
            },
            "PATCH" if path.contains("/pods/") && path.ends_with("/status") => {
                let name = path.trim_end_matches("/status").rsplit('/').next().unwrap_or_default();
                let namespace = path.split('/').nth(4).unwrap_or("default");
                let pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": namespace},
                    "status": body["status"],
                });
                (200, pod)
            }
            "POST" if path.ends_with("/events") => (201, body.clone()),
            "POST" if path.ends_with("/token") => {
                let mut reply = body.clone();
                reply["status"] = json!({"token": "fake-token", "expirationTimestamp": "2030-01-01T00:00:00Z"});
                (201, reply)
            }
            "DELETE" if path.contains("/pods/") => {
                let name = path.rsplit('/').next().unwrap_or_default();
                (200, json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}))
            }
            _ => not_found(),
        }
    }

    /// A client talking to this fake.
    pub fn client(&self) -> kube::Client {
        let this = self.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let this = this.clone();
            async move {
                use http_body_util::BodyExt;
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                let query = req.uri().query().unwrap_or_default().to_string();
                let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                this.journal.push(Call::Api { method: method.clone(), path: path.clone() });
                let (status, reply) = this.answer(&method, &path, &body);
                this.state.requests.lock().push(ApiRequest { method, path, query, body });
                let reply = kube::client::Body::from(serde_json::to_vec(&reply).unwrap_or_default());
                http::Response::builder().status(status).body(reply).map_err(|e| std::io::Error::other(e.to_string()))
            }
        });
        kube::Client::new(service, "default")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox_config(uid: &str) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "p".into(),
                uid: uid.into(),
                namespace: "ns".into(),
                attempt: 0,
            }),
            ..Default::default()
        }
    }

    fn container_config(name: &str, attempt: u32) -> cri::ContainerConfig {
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: name.into(), attempt }),
            image: Some(crate::cri::image_spec("busybox:1")),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn scripted_exits_stops_and_sandbox_death() {
        let rt = FakeRuntime::default();
        rt.exit_after("c", Duration::from_secs(5), 3, "");
        let sb = rt.run_pod_sandbox(sandbox_config("u")).await.unwrap();
        let id = rt.create_container(&sb, container_config("c", 0), sandbox_config("u")).await.unwrap();
        rt.start_container(&id).await.unwrap();
        assert_eq!(rt.state_of(&id), Some(cri::ContainerState::ContainerRunning));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let st = rt.container_status(&id).await.unwrap().unwrap();
        assert_eq!(
            (st.state, st.exit_code, st.reason.as_str()),
            (cri::ContainerState::ContainerExited as i32, 3, "Error")
        );
        assert_eq!(st.finished_at - st.started_at, 5_000_000_000);

        rt.run_forever("c");
        let id2 = rt.create_container(&sb, container_config("c", 1), sandbox_config("u")).await.unwrap();
        rt.start_container(&id2).await.unwrap();
        assert!(rt.exit_now("c", 137, "OOMKilled"));
        let st = rt.container_status(&id2).await.unwrap().unwrap();
        assert_eq!((st.exit_code, st.reason.as_str()), (137, "OOMKilled"));
        assert!(!rt.exit_now("c", 0, ""));

        // SIGTERM ends a cooperative container at once; a stubborn one is killed after the grace.
        let id3 = rt.create_container(&sb, container_config("c", 2), sandbox_config("u")).await.unwrap();
        rt.start_container(&id3).await.unwrap();
        rt.stop_container(&id3, 30).await.unwrap();
        assert_eq!(rt.container_status(&id3).await.unwrap().unwrap().exit_code, 143);
        rt.ignore_sigterm("c");
        let id4 = rt.create_container(&sb, container_config("c", 3), sandbox_config("u")).await.unwrap();
        rt.start_container(&id4).await.unwrap();
        let before = Instant::now();
        rt.stop_container(&id4, 4).await.unwrap();
        assert_eq!(before.elapsed(), Duration::from_secs(4));
        assert_eq!(rt.container_status(&id4).await.unwrap().unwrap().exit_code, 137);

        assert!(rt.kill_sandbox(&sb));
        let st = rt.pod_sandbox_status(&sb).await.unwrap().unwrap();
        assert_eq!(st.state, cri::PodSandboxState::SandboxNotready as i32);
        assert!(rt.create_container(&sb, container_config("c", 4), sandbox_config("u")).await.is_err());
        rt.remove_pod_sandbox(&sb).await.unwrap();
        assert_eq!(rt.container_count(), 0);
        assert!(matches!(rt.actions()[0], Call::RunPodSandbox { attempt: 0, .. }));
    }

    #[tokio::test]
    async fn images_and_sandbox_failures_follow_the_script() {
        let rt = FakeRuntime::default();
        assert!(rt.image_status("a:1").await.unwrap().is_some());
        rt.set_image_present("a:1", false);
        assert!(rt.image_status("a:1").await.unwrap().is_none());
        rt.fail_pull("a:1", Some("not found"));
        assert!(rt.pull_image("a:1", None, None).await.is_err());
        rt.fail_pull("a:1", None);
        assert_eq!(rt.pull_image("a:1", None, None).await.unwrap(), image_id("a:1"));
        assert!(rt.image_status("a:1").await.unwrap().is_some());
        rt.fail_run_pod_sandbox(1, "no network");
        assert!(rt.run_pod_sandbox(sandbox_config("u")).await.is_err());
        assert!(rt.run_pod_sandbox(sandbox_config("u")).await.is_ok());
        assert_eq!(rt.sandboxes().len(), 1);
    }

    #[tokio::test]
    async fn the_fake_api_answers_and_records() {
        use k8s_openapi::api::core::v1::{ConfigMap, Pod};
        use kube::api::{Api, DeleteParams, Patch, PatchParams};
        let journal = Journal::default();
        let api = FakeApi::new(journal.clone());
        api.insert("/api/v1/namespaces/ns/configmaps/cfg", json!({"metadata": {"name": "cfg"}, "data": {"a": "b"}}));
        let client = api.client();
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ns");
        assert!(cms.get_opt("cfg").await.unwrap().is_some());
        assert!(cms.get_opt("other").await.unwrap().is_none());
        let pods: Api<Pod> = Api::namespaced(client, "ns");
        let patch = Patch::Merge(json!({"status": {"phase": "Running"}}));
        let pod = pods.patch_status("p", &PatchParams::default(), &patch).await.unwrap();
        assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Running"));
        pods.delete("p", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
        assert_eq!(api.statuses(), vec![json!({"phase": "Running"})]);
        assert_eq!(api.deletes()[0].body["gracePeriodSeconds"], 0);
        assert_eq!(journal.all().len(), 4);
    }
}
