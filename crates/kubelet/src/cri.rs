//! The container runtime as the kubelet sees it: the CRI v1 calls it makes, behind a trait so
//! the pod state machine can be tested against a recording fake, and the real implementation
//! over gRPC on containerd's unix socket.

use anyhow::{Context, Result};
use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as types;

/// The CRI calls the kubelet uses. Errors carry the runtime's message.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Runtime name and version, e.g. `containerd`, `1.6.20`.
    async fn version(&self) -> Result<api::VersionResponse>;
    /// Creates and starts a pod sandbox (network namespace set up by CNI); returns its id.
    async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String>;
    /// Stops a sandbox and everything in it; idempotent.
    async fn stop_pod_sandbox(&self, id: &str) -> Result<()>;
    /// Removes a stopped sandbox; idempotent.
    async fn remove_pod_sandbox(&self, id: &str) -> Result<()>;
    /// A sandbox's status, `None` when it does not exist.
    async fn pod_sandbox_status(&self, id: &str) -> Result<Option<api::PodSandboxStatus>>;
    /// Every sandbox the runtime knows.
    async fn list_pod_sandboxes(&self) -> Result<Vec<api::PodSandbox>>;
    /// Creates a container in a sandbox; returns its id.
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String>;
    /// Starts a created container.
    async fn start_container(&self, id: &str) -> Result<()>;
    /// Stops a container: SIGTERM (or the image's stop signal), SIGKILL after `timeout_seconds`.
    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<()>;
    /// Removes a container; idempotent.
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// Every container the runtime knows (all states).
    async fn list_containers(&self) -> Result<Vec<api::Container>>;
    /// A container's status, `None` when it does not exist.
    async fn container_status(&self, id: &str) -> Result<Option<api::ContainerStatus>>;
    /// Runs a command in a container and waits for it.
    async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout_seconds: i64) -> Result<api::ExecSyncResponse>;
    /// URL of the runtime's streaming server for an interactive exec.
    async fn exec(&self, request: api::ExecRequest) -> Result<String>;
    /// URL of the runtime's streaming server for an attach.
    async fn attach(&self, request: api::AttachRequest) -> Result<String>;
    /// URL of the runtime's streaming server for port forwarding into a sandbox.
    async fn port_forward(&self, request: api::PortForwardRequest) -> Result<String>;
    /// Usage figures of every container.
    async fn list_container_stats(&self) -> Result<Vec<api::ContainerStats>>;
    /// The image if present locally.
    async fn image_status(&self, image: &str) -> Result<Option<api::Image>>;
    /// Pulls an image; returns its reference (id).
    async fn pull_image(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String>;
    /// Every image present locally.
    async fn list_images(&self) -> Result<Vec<api::Image>>;
    /// Capacity of the image filesystem.
    async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse>;
}

/// CRI over gRPC on a unix socket.
#[derive(Clone)]
pub struct CriRuntime {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

/// Opens a gRPC channel to a unix socket (the URI is only a placeholder for tonic).
pub async fn unix_channel(socket: &Path) -> Result<Channel> {
    let path: PathBuf = socket.to_path_buf();
    Endpoint::try_from("http://[::1]:50051")
        .expect("static endpoint parses")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .with_context(|| format!("cannot connect to the container runtime at {}", socket.display()))
}

fn not_found(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::NotFound
        || (status.code() == tonic::Code::Unknown && status.message().contains("not found"))
}

fn rpc(what: &str, status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what}: {} ({:?})", status.message(), status.code())
}

impl CriRuntime {
    /// Connects to the CRI socket.
    pub async fn connect(socket: &Path) -> Result<Self> {
        let channel = unix_channel(socket).await?;
        Ok(CriRuntime {
            runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20),
            images: ImageServiceClient::new(channel).max_decoding_message_size(64 << 20),
        })
    }
}

#[async_trait]
impl Runtime for CriRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        let r = self.runtime.clone().version(api::VersionRequest { version: "v1".into() }).await;
        Ok(r.map_err(|s| rpc("Version", s))?.into_inner())
    }

    async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String> {
        let request = api::RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
        let r = self.runtime.clone().run_pod_sandbox(request).await;
        Ok(r.map_err(|s| rpc("RunPodSandbox", s))?.into_inner().pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        match self.runtime.clone().stop_pod_sandbox(api::StopPodSandboxRequest { pod_sandbox_id: id.into() }).await {
            Ok(_) => Ok(()),
            Err(s) if not_found(&s) => Ok(()),
            Err(s) => Err(rpc("StopPodSandbox", s)),
        }
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        match self.runtime.clone().remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: id.into() }).await
        {
            Ok(_) => Ok(()),
            Err(s) if not_found(&s) => Ok(()),
            Err(s) => Err(rpc("RemovePodSandbox", s)),
        }
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<Option<api::PodSandboxStatus>> {
        let request = api::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: false };
        match self.runtime.clone().pod_sandbox_status(request).await {
            Ok(r) => Ok(r.into_inner().status),
            Err(s) if not_found(&s) => Ok(None),
            Err(s) => Err(rpc("PodSandboxStatus", s)),
        }
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<api::PodSandbox>> {
        let r = self.runtime.clone().list_pod_sandbox(api::ListPodSandboxRequest { filter: None }).await;
        Ok(r.map_err(|s| rpc("ListPodSandbox", s))?.into_inner().items)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        let request = api::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let r = self.runtime.clone().create_container(request).await;
        Ok(r.map_err(|s| rpc("CreateContainer", s))?.into_inner().container_id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let r = self.runtime.clone().start_container(api::StartContainerRequest { container_id: id.into() }).await;
        r.map_err(|s| rpc("StartContainer", s))?;
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<()> {
        let request = api::StopContainerRequest { container_id: id.into(), timeout: timeout_seconds };
        match self.runtime.clone().stop_container(request).await {
            Ok(_) => Ok(()),
            Err(s) if not_found(&s) => Ok(()),
            Err(s) => Err(rpc("StopContainer", s)),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        match self.runtime.clone().remove_container(api::RemoveContainerRequest { container_id: id.into() }).await {
            Ok(_) => Ok(()),
            Err(s) if not_found(&s) => Ok(()),
            Err(s) => Err(rpc("RemoveContainer", s)),
        }
    }

    async fn list_containers(&self) -> Result<Vec<api::Container>> {
        let r = self.runtime.clone().list_containers(api::ListContainersRequest { filter: None }).await;
        Ok(r.map_err(|s| rpc("ListContainers", s))?.into_inner().containers)
    }

    async fn container_status(&self, id: &str) -> Result<Option<api::ContainerStatus>> {
        let request = api::ContainerStatusRequest { container_id: id.into(), verbose: false };
        match self.runtime.clone().container_status(request).await {
            Ok(r) => Ok(r.into_inner().status),
            Err(s) if not_found(&s) => Ok(None),
            Err(s) => Err(rpc("ContainerStatus", s)),
        }
    }

    async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout_seconds: i64) -> Result<api::ExecSyncResponse> {
        let request = api::ExecSyncRequest { container_id: id.into(), cmd, timeout: timeout_seconds };
        let r = self.runtime.clone().exec_sync(request).await;
        Ok(r.map_err(|s| rpc("ExecSync", s))?.into_inner())
    }

    async fn exec(&self, request: api::ExecRequest) -> Result<String> {
        let r = self.runtime.clone().exec(request).await;
        Ok(r.map_err(|s| rpc("Exec", s))?.into_inner().url)
    }

    async fn attach(&self, request: api::AttachRequest) -> Result<String> {
        let r = self.runtime.clone().attach(request).await;
        Ok(r.map_err(|s| rpc("Attach", s))?.into_inner().url)
    }

    async fn port_forward(&self, request: api::PortForwardRequest) -> Result<String> {
        let r = self.runtime.clone().port_forward(request).await;
        Ok(r.map_err(|s| rpc("PortForward", s))?.into_inner().url)
    }

    async fn list_container_stats(&self) -> Result<Vec<api::ContainerStats>> {
        let r = self.runtime.clone().list_container_stats(api::ListContainerStatsRequest { filter: None }).await;
        Ok(r.map_err(|s| rpc("ListContainerStats", s))?.into_inner().stats)
    }

    async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        let request = api::ImageStatusRequest { image: Some(image_spec(image)), verbose: false };
        let r = self.images.clone().image_status(request).await;
        Ok(r.map_err(|s| rpc("ImageStatus", s))?.into_inner().image)
    }

    async fn pull_image(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String> {
        let request = api::PullImageRequest { image: Some(image_spec(image)), auth, sandbox_config };
        let r = self.images.clone().pull_image(request).await;
        Ok(r.map_err(|s| rpc("PullImage", s))?.into_inner().image_ref)
    }

    async fn list_images(&self) -> Result<Vec<api::Image>> {
        let r = self.images.clone().list_images(api::ListImagesRequest { filter: None }).await;
        Ok(r.map_err(|s| rpc("ListImages", s))?.into_inner().images)
    }

    async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse> {
        let r = self.images.clone().image_fs_info(api::ImageFsInfoRequest {}).await;
        Ok(r.map_err(|s| rpc("ImageFsInfo", s))?.into_inner())
    }
}

/// An image spec naming `image`.
pub fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec { image: image.into(), ..Default::default() }
}

/// A runtime in front of another that answers the kubelet's frequent reads from one shared
/// relist, as upstream's PLEG does: the container and sandbox lists are fetched at most once
/// per `max_age` for all pod workers together, and a status is fetched again only when the
/// list shows its state changed. Any change made through it drops the lists, so the next read
/// sees it.
pub struct CachedRuntime {
    inner: std::sync::Arc<dyn Runtime>,
    max_age: Duration,
    containers: tokio::sync::Mutex<Relisted<api::Container, api::ContainerStatus>>,
    sandboxes: tokio::sync::Mutex<Relisted<api::PodSandbox, api::PodSandboxStatus>>,
}

struct Relisted<T, S> {
    taken: Option<tokio::time::Instant>,
    list: Vec<T>,
    /// Status by id, with the list state it was fetched at.
    statuses: std::collections::HashMap<String, (i32, S)>,
}

impl<T, S> Default for Relisted<T, S> {
    fn default() -> Self {
        Relisted { taken: None, list: Vec::new(), statuses: Default::default() }
    }
}

/// What the relist knows of an object: its id and state.
trait Listed {
    fn id(&self) -> &str;
    fn state(&self) -> i32;
}

impl Listed for api::Container {
    fn id(&self) -> &str {
        &self.id
    }
    fn state(&self) -> i32 {
        self.state
    }
}

impl Listed for api::PodSandbox {
    fn id(&self) -> &str {
        &self.id
    }
    fn state(&self) -> i32 {
        self.state
    }
}

impl<T: Listed, S: Clone> Relisted<T, S> {
    fn fresh(&self, max_age: Duration) -> bool {
        self.taken.is_some_and(|t| t.elapsed() < max_age)
    }

    /// The cached status of `id` while the list is fresh and shows the state it was taken at.
    fn hit(&self, id: &str, max_age: Duration) -> Option<S> {
        if !self.fresh(max_age) {
            return None;
        }
        let listed = self.list.iter().find(|t| t.id() == id)?;
        let (state, status) = self.statuses.get(id)?;
        (*state == listed.state()).then(|| status.clone())
    }

    /// A new list; statuses of objects no longer listed are dropped.
    fn refill(&mut self, list: Vec<T>) {
        let ids: std::collections::HashSet<&str> = list.iter().map(Listed::id).collect();
        self.statuses.retain(|id, _| ids.contains(id.as_str()));
        self.list = list;
        self.taken = Some(tokio::time::Instant::now());
    }
}

impl CachedRuntime {
    /// Caches reads of `inner` for up to `max_age`.
    pub fn new(inner: std::sync::Arc<dyn Runtime>, max_age: Duration) -> CachedRuntime {
        CachedRuntime { inner, max_age, containers: Default::default(), sandboxes: Default::default() }
    }

    async fn forget_containers(&self) {
        self.containers.lock().await.taken = None;
    }

    async fn forget_sandboxes(&self) {
        self.sandboxes.lock().await.taken = None;
    }
}

#[async_trait]
impl Runtime for CachedRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        self.inner.version().await
    }

    async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String> {
        let r = self.inner.run_pod_sandbox(config).await;
        self.forget_sandboxes().await;
        r
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let r = self.inner.stop_pod_sandbox(id).await;
        self.forget_sandboxes().await;
        self.forget_containers().await;
        r
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let r = self.inner.remove_pod_sandbox(id).await;
        self.forget_sandboxes().await;
        self.forget_containers().await;
        r
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<Option<api::PodSandboxStatus>> {
        let mut cache = self.sandboxes.lock().await;
        if let Some(hit) = cache.hit(id, self.max_age) {
            return Ok(Some(hit));
        }
        let status = self.inner.pod_sandbox_status(id).await?;
        if let Some(s) = &status {
            cache.statuses.insert(id.to_string(), (s.state, s.clone()));
        }
        Ok(status)
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<api::PodSandbox>> {
        let mut cache = self.sandboxes.lock().await;
        if !cache.fresh(self.max_age) {
            let list = self.inner.list_pod_sandboxes().await?;
            cache.refill(list);
        }
        Ok(cache.list.clone())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        let r = self.inner.create_container(sandbox_id, config, sandbox_config).await;
        self.forget_containers().await;
        r
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let r = self.inner.start_container(id).await;
        self.forget_containers().await;
        r
    }

    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<()> {
        let r = self.inner.stop_container(id, timeout_seconds).await;
        self.forget_containers().await;
        r
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let r = self.inner.remove_container(id).await;
        self.forget_containers().await;
        r
    }

    async fn list_containers(&self) -> Result<Vec<api::Container>> {
        let mut cache = self.containers.lock().await;
        if !cache.fresh(self.max_age) {
            let list = self.inner.list_containers().await?;
            cache.refill(list);
        }
        Ok(cache.list.clone())
    }

    async fn container_status(&self, id: &str) -> Result<Option<api::ContainerStatus>> {
        let mut cache = self.containers.lock().await;
        if let Some(hit) = cache.hit(id, self.max_age) {
            return Ok(Some(hit));
        }
        let status = self.inner.container_status(id).await?;
        if let Some(s) = &status {
            cache.statuses.insert(id.to_string(), (s.state, s.clone()));
        }
        Ok(status)
    }

    async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout_seconds: i64) -> Result<api::ExecSyncResponse> {
        self.inner.exec_sync(id, cmd, timeout_seconds).await
    }

    async fn exec(&self, request: api::ExecRequest) -> Result<String> {
        self.inner.exec(request).await
    }

    async fn attach(&self, request: api::AttachRequest) -> Result<String> {
        self.inner.attach(request).await
    }

    async fn port_forward(&self, request: api::PortForwardRequest) -> Result<String> {
        self.inner.port_forward(request).await
    }

    async fn list_container_stats(&self) -> Result<Vec<api::ContainerStats>> {
        self.inner.list_container_stats().await
    }

    async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        self.inner.image_status(image).await
    }

    async fn pull_image(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String> {
        self.inner.pull_image(image, auth, sandbox_config).await
    }

    async fn list_images(&self) -> Result<Vec<api::Image>> {
        self.inner.list_images().await
    }

    async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse> {
        self.inner.image_fs_info().await
    }
}
