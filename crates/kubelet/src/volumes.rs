//! A pod's volumes on the host and the CRI mounts that put them into its containers.
//!
//! Each volume of a pod lives at `<root>/<uid>/volumes/<plugin>/<name>` (plugin as upstream
//! names it, e.g. `kubernetes.io~configmap`); hostPath volumes are the host path itself.
//! ConfigMap, Secret, downward API and projected volumes are written like upstream's
//! AtomicWriter: the files go into a fresh `..<timestamp>` directory, the `..data` symlink is
//! swapped to it with a rename, and every user-visible name is a symlink through `..data`, so a
//! container sees an update whole or not at all. Memory-backed emptyDirs are tmpfs mounts.

use crate::cri::types::{Mount, MountPropagation};
use crate::env::{
    ConfigError, NodeFacts, Sources, container_resource, namespace, pod_field, resource_of_named_container,
};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath, Pod, Secret,
    ServiceAccount, ServiceAccountTokenProjection, Volume,
};
use kube::Api;
use kube::api::PostParams;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Plugin directory of emptyDir volumes.
pub const PLUGIN_EMPTY_DIR: &str = "kubernetes.io~empty-dir";
/// Plugin directory of configMap volumes.
pub const PLUGIN_CONFIGMAP: &str = "kubernetes.io~configmap";
/// Plugin directory of secret volumes.
pub const PLUGIN_SECRET: &str = "kubernetes.io~secret";
/// Plugin directory of downwardAPI volumes.
pub const PLUGIN_DOWNWARD_API: &str = "kubernetes.io~downward-api";
/// Plugin directory of projected volumes.
pub const PLUGIN_PROJECTED: &str = "kubernetes.io~projected";
/// File mode of projected files when the volume gives none.
pub const DEFAULT_MODE: u32 = 0o644;
/// The symlink that points at the current timestamped payload directory.
const DATA_LINK: &str = "..data";
/// Where a container's termination message goes when its spec names no path.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Token lifetime asked for when a projection gives none.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// One file of an atomically written volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    /// The file's contents.
    pub data: Vec<u8>,
    /// The file's permission bits.
    pub mode: u32,
}

/// A service account token handed out for a projected volume, reused until 80% of its
/// lifetime has passed (upstream's token manager refreshes at that point too).
struct CachedToken {
    token: String,
    refresh_at: Instant,
    request: (String, Option<i64>),
}

/// The pods' volume directories under one root (e.g. `<data>/kubelet/pods`).
pub struct Volumes {
    root: PathBuf,
    tokens: Mutex<HashMap<(String, String, String), CachedToken>>,
}

impl Volumes {
    /// Volumes under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Volumes { root: root.into(), tokens: Mutex::new(HashMap::new()) }
    }

    /// The directory holding every pod's volumes.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A pod's directory: `<root>/<uid>`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join(uid)
    }

    /// A volume's directory: `<root>/<uid>/volumes/<plugin>/<name>`.
    pub fn volume_dir(&self, uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.pod_dir(uid).join("volumes").join(plugin).join(name)
    }

    /// The host file mounted at a container's `terminationMessagePath`:
    /// `<root>/<uid>/containers/<container>/termination-log`, created (or emptied) on the way.
    pub fn termination_log(&self, uid: &str, container: &str) -> PathBuf {
        let path = self.pod_dir(uid).join("containers").join(container).join("termination-log");
        let created = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
            std::fs::write(&path, b"")?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        });
        if let Err(e) = created {
            tracing::warn!("cannot create termination log {}: {e}", path.display());
        }
        path
    }

    /// Sets up every volume of `pod` and returns the host directory (or file) of each by
    /// volume name. A failure names the volume in upstream's words:
    /// `MountVolume.SetUp failed for volume "cfg" : configmap "cfg" not found`.
    pub async fn prepare(
        &self,
        pod: &Pod,
        sources: &Sources,
        client: &kube::Client,
        node: &NodeFacts,
    ) -> Result<BTreeMap<String, PathBuf>, ConfigError> {
        let uid = pod_uid(pod)?;
        let mut dirs = BTreeMap::new();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let result = if let Some(source) = &volume.empty_dir {
                self.setup_empty_dir(uid, &volume.name, source).await
            } else if let Some(source) = &volume.host_path {
                let source = source.clone();
                blocking(move || check_host_path(&source)).await
            } else {
                match self.payload(pod, volume, sources, client, node).await {
                    Ok(Some((plugin, payload))) => {
                        let dir = self.volume_dir(uid, plugin, &volume.name);
                        let target = dir.clone();
                        blocking(move || write_atomic(&target, &payload).map_err(|e| e.to_string())).await.map(|_| dir)
                    }
                    Ok(None) => Err("volume type is not supported by this kubelet".to_string()),
                    Err(message) => Err(message),
                }
            };
            match result {
                Ok(path) => {
                    dirs.insert(volume.name.clone(), path);
                }
                Err(message) => return Err(setup_failed(&volume.name, &message)),
            }
        }
        Ok(dirs)
    }

    /// Rewrites the contents of the pod's configMap, secret, downwardAPI and projected volumes
    /// where their sources changed (and service account tokens near expiry). Every volume is
    /// tried; the first failure is returned.
    pub async fn refresh(
        &self,
        pod: &Pod,
        sources: &Sources,
        client: &kube::Client,
        node: &NodeFacts,
    ) -> Result<(), ConfigError> {
        let uid = pod_uid(pod)?;
        let mut first_error = None;
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let result = match self.payload(pod, volume, sources, client, node).await {
                Ok(Some((plugin, payload))) => {
                    let dir = self.volume_dir(uid, plugin, &volume.name);
                    blocking(move || write_atomic(&dir, &payload).map_err(|e| e.to_string())).await.map(|_| ())
                }
                Ok(None) => Ok(()),
                Err(message) => Err(message),
            };
            if let Err(message) = result {
                first_error.get_or_insert_with(|| setup_failed(&volume.name, &message));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The CRI mounts of `container`'s volumeMounts (see [`Volumes::try_mounts`]); a mount
    /// that cannot be made is left out and logged. Prefer `try_mounts`, which reports it.
    pub fn mounts(_pod: &Pod, container: &Container, dirs: &BTreeMap<String, PathBuf>) -> Vec<Mount> {
        let mut mounts = Vec::new();
        for volume_mount in container.volume_mounts.iter().flatten() {
            match mount_of(container, volume_mount, dirs, &[]) {
                Ok(mount) => mounts.push(mount),
                Err(e) => tracing::warn!("container {}: {e}", container.name),
            }
        }
        mounts
    }

    /// The CRI mounts of `container`'s volumeMounts: `readOnly`, `subPath` (created when
    /// missing; absolute paths, `..` and paths leaving the volume are refused), `subPathExpr`
    /// (expanded with the container's environment `env`), `mountPropagation`. The
    /// termination-message file is not included (see [`Volumes::termination_log`]).
    pub fn try_mounts(
        container: &Container,
        dirs: &BTreeMap<String, PathBuf>,
        env: &[(String, String)],
    ) -> Result<Vec<Mount>, ConfigError> {
        container.volume_mounts.iter().flatten().map(|m| mount_of(container, m, dirs, env)).collect()
    }

    /// Unmounts whatever is mounted under the pod's directory (tmpfs emptyDirs) and removes
    /// the directory. When something stays mounted the directory is kept.
    pub async fn cleanup(&self, uid: &str) {
        self.tokens.lock().retain(|(pod, _, _), _| pod != uid);
        if uid.is_empty() {
            return;
        }
        let dir = self.pod_dir(uid);
        let result = blocking(move || {
            if !dir.exists() {
                return Ok(());
            }
            let base = std::fs::canonicalize(&dir).map_err(|e| e.to_string())?;
            let mut points: Vec<PathBuf> = mount_points()?.into_iter().filter(|p| p.starts_with(&base)).collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for point in &points {
                run("umount", &[point.as_os_str()])?;
            }
            std::fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))
        })
        .await;
        if let Err(e) = result {
            tracing::warn!("cleaning up volumes of pod {uid}: {e}");
        }
    }

    /// Creates an emptyDir: a world-writable directory, tmpfs-backed for `medium: Memory`.
    async fn setup_empty_dir(&self, uid: &str, name: &str, source: &EmptyDirVolumeSource) -> Result<PathBuf, String> {
        let dir = self.volume_dir(uid, PLUGIN_EMPTY_DIR, name);
        let medium = source.medium.clone().unwrap_or_default();
        let size = match &source.size_limit {
            Some(q) => Some(
                rudder_scheduler::quantity::parse_milli(&q.0)
                    .map(|m| (m + 999) / 1000)
                    .filter(|b| *b > 0)
                    .ok_or_else(|| format!("invalid sizeLimit {:?}", q.0))?,
            ),
            None => None,
        };
        let target = dir.clone();
        blocking(move || {
            std::fs::create_dir_all(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
            match medium.as_str() {
                "" => {}
                "Memory" => {
                    if !is_mount_point(&target)? {
                        let mut args: Vec<std::ffi::OsString> = vec!["-t".into(), "tmpfs".into()];
                        if let Some(bytes) = size {
                            args.extend(["-o".into(), format!("size={bytes}").into()]);
                        }
                        args.extend(["tmpfs".into(), target.clone().into_os_string()]);
                        run("mount", &args)?;
                    }
                }
                other => return Err(format!("unsupported emptyDir medium {other:?}")),
            }
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| format!("chmod {}: {e}", target.display()))?;
            Ok(target)
        })
        .await?;
        Ok(dir)
    }

    /// The plugin and files of a content volume (configMap, secret, downwardAPI, projected);
    /// `None` for other volume types.
    async fn payload(
        &self,
        pod: &Pod,
        volume: &Volume,
        sources: &Sources,
        client: &kube::Client,
        node: &NodeFacts,
    ) -> Result<Option<(&'static str, BTreeMap<String, FileProjection>)>, String> {
        if let Some(source) = &volume.config_map {
            let mode = default_mode(source.default_mode);
            let optional = source.optional == Some(true);
            let payload = match sources.configmap(&source.name) {
                Some(cm) => configmap_payload(cm, source.items.as_deref(), mode, optional)?,
                None if optional => BTreeMap::new(),
                None => return Err(ConfigError::configmap_not_found(&source.name).0),
            };
            return Ok(Some((PLUGIN_CONFIGMAP, payload)));
        }
        if let Some(source) = &volume.secret {
            let name = source.secret_name.as_deref().unwrap_or("");
            let mode = default_mode(source.default_mode);
            let optional = source.optional == Some(true);
            let payload = match sources.secret(name) {
                Some(secret) => secret_payload(secret, source.items.as_deref(), mode, optional)?,
                None if optional => BTreeMap::new(),
                None => return Err(ConfigError::secret_not_found(name).0),
            };
            return Ok(Some((PLUGIN_SECRET, payload)));
        }
        if let Some(source) = &volume.downward_api {
            let mode = default_mode(source.default_mode);
            let payload = downward_payload(pod, source.items.as_deref().unwrap_or_default(), mode, node)?;
            return Ok(Some((PLUGIN_DOWNWARD_API, payload)));
        }
        if let Some(source) = &volume.projected {
            let mode = default_mode(source.default_mode);
            let mut payload = BTreeMap::new();
            for projection in source.sources.iter().flatten() {
                if let Some(cm) = &projection.config_map {
                    let optional = cm.optional == Some(true);
                    match sources.configmap(&cm.name) {
                        Some(object) => payload.extend(configmap_payload(object, cm.items.as_deref(), mode, optional)?),
                        None if optional => {}
                        None => return Err(ConfigError::configmap_not_found(&cm.name).0),
                    }
                } else if let Some(secret) = &projection.secret {
                    let optional = secret.optional == Some(true);
                    match sources.secret(&secret.name) {
                        Some(object) => {
                            payload.extend(secret_payload(object, secret.items.as_deref(), mode, optional)?)
                        }
                        None if optional => {}
                        None => return Err(ConfigError::secret_not_found(&secret.name).0),
                    }
                } else if let Some(downward) = &projection.downward_api {
                    payload.extend(downward_payload(pod, downward.items.as_deref().unwrap_or_default(), mode, node)?);
                } else if let Some(token) = &projection.service_account_token {
                    let data = self.service_account_token(pod, client, &volume.name, token).await?;
                    payload.insert(token.path.clone(), FileProjection { data: data.into_bytes(), mode });
                } else {
                    return Err("unsupported projected volume source".into());
                }
            }
            return Ok(Some((PLUGIN_PROJECTED, payload)));
        }
        Ok(None)
    }

    /// A token of the pod's service account through the TokenRequest API, bound to the pod;
    /// cached until 80% of its lifetime has passed.
    async fn service_account_token(
        &self,
        pod: &Pod,
        client: &kube::Client,
        volume: &str,
        projection: &ServiceAccountTokenProjection,
    ) -> Result<String, String> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = (uid.clone(), volume.to_string(), projection.path.clone());
        let audience = projection.audience.clone().unwrap_or_default();
        let request_shape = (audience.clone(), projection.expiration_seconds);
        if let Some(cached) = self.tokens.lock().get(&key)
            && cached.request == request_shape
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let seconds = projection.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS).max(1);
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if audience.is_empty() { Vec::new() } else { vec![audience] },
                expiration_seconds: Some(seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: Some(uid),
                }),
            },
            ..Default::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace(pod));
        let issued = Instant::now();
        let response = api
            .create_token_request(&account, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("failed to fetch token: {e}"))?;
        let token =
            response.status.map(|s| s.token).filter(|t| !t.is_empty()).ok_or("failed to fetch token: empty token")?;
        let lifetime = Duration::from_secs(seconds as u64);
        self.tokens.lock().insert(
            key,
            CachedToken { token: token.clone(), refresh_at: issued + lifetime.mul_f64(0.8), request: request_shape },
        );
        Ok(token)
    }
}

/// The pod's UID, required to place its volumes.
fn pod_uid(pod: &Pod) -> Result<&str, ConfigError> {
    pod.metadata.uid.as_deref().filter(|u| !u.is_empty()).ok_or_else(|| ConfigError::new("pod has no uid"))
}

fn setup_failed(volume: &str, message: &str) -> ConfigError {
    ConfigError(format!("MountVolume.SetUp failed for volume {volume:?} : {message}"))
}

fn default_mode(mode: Option<i32>) -> u32 {
    mode.map_or(DEFAULT_MODE, |m| (m as u32) & 0o7777)
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(format!("volume task failed: {e}")))
}

/// Runs a command to completion; the error carries its output.
fn run<S: AsRef<std::ffi::OsStr>>(program: &str, args: &[S]) -> Result<(), String> {
    let output = std::process::Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let printable: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    Err(format!(
        "{program} {} failed ({}): {}",
        printable.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// Mount points of this mount namespace, from `/proc/self/mountinfo`.
fn mount_points() -> Result<Vec<PathBuf>, String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("reading mountinfo: {e}"))?;
    Ok(text.lines().filter_map(|line| line.split(' ').nth(4)).map(|p| PathBuf::from(unescape_mountinfo(p))).collect())
}

/// Undoes mountinfo's octal escapes (`\040` for space and so on).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(digits) = bytes.get(i + 1..i + 4)
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(value as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `path` is itself a mount point.
fn is_mount_point(path: &Path) -> Result<bool, String> {
    let path = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(mount_points()?.contains(&path))
}

/// Checks a hostPath volume against its `type` (creating it for the `OrCreate` types) and
/// returns the path; errors are upstream's.
fn check_host_path(source: &HostPathVolumeSource) -> Result<PathBuf, String> {
    let path = PathBuf::from(&source.path);
    let kind = source.type_.as_deref().unwrap_or("");
    let metadata = std::fs::metadata(&path).ok();
    let file_type = metadata.as_ref().map(|m| m.file_type());
    let shown = &source.path;
    match kind {
        "" => {}
        "DirectoryOrCreate" | "Directory" => {
            if kind == "DirectoryOrCreate" && metadata.is_none() {
                std::fs::create_dir_all(&path).map_err(|e| format!("mkdir {shown}: {e}"))?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| format!("chmod {shown}: {e}"))?;
            } else if !file_type.is_some_and(|t| t.is_dir()) {
                return Err(format!("hostPath type check failed: {shown} is not a directory"));
            }
        }
        "FileOrCreate" | "File" => {
            if kind == "FileOrCreate" && metadata.is_none() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|_| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)))
                    .map_err(|e| format!("open {shown}: {e}"))?;
            } else if !file_type.is_some_and(|t| t.is_file()) {
                return Err(format!("hostPath type check failed: {shown} is not a file"));
            }
        }
        "Socket" => {
            if !file_type.is_some_and(|t| t.is_socket()) {
                return Err(format!("hostPath type check failed: {shown} is not a socket file"));
            }
        }
        "CharDevice" => {
            if !file_type.is_some_and(|t| t.is_char_device()) {
                return Err(format!("hostPath type check failed: {shown} is not a character device"));
            }
        }
        "BlockDevice" => {
            if !file_type.is_some_and(|t| t.is_block_device()) {
                return Err(format!("hostPath type check failed: {shown} is not a block device"));
            }
        }
        other => return Err(format!("{other} is an invalid volume type")),
    }
    Ok(path)
}

/// Files of a configMap volume or projection: every key (data and binaryData), or the listed
/// items; a listed key that is missing fails unless the source is optional.
fn configmap_payload(
    cm: &ConfigMap,
    items: Option<&[KeyToPath]>,
    mode: u32,
    optional: bool,
) -> Result<BTreeMap<String, FileProjection>, String> {
    let lookup = |key: &str| -> Option<Vec<u8>> {
        cm.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.clone().into_bytes())
            .or_else(|| cm.binary_data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.clone()))
    };
    let all_keys = cm.data.iter().flat_map(|d| d.keys()).chain(cm.binary_data.iter().flat_map(|d| d.keys()));
    project(all_keys.cloned().collect(), lookup, items, mode, optional, "configmap references non-existent config key")
}

/// Files of a secret volume or projection (see [`configmap_payload`]).
fn secret_payload(
    secret: &Secret,
    items: Option<&[KeyToPath]>,
    mode: u32,
    optional: bool,
) -> Result<BTreeMap<String, FileProjection>, String> {
    let lookup = |key: &str| secret.data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.clone());
    let keys = secret.data.iter().flat_map(|d| d.keys()).cloned().collect();
    project(keys, lookup, items, mode, optional, "references non-existent secret key")
}

fn project(
    keys: Vec<String>,
    lookup: impl Fn(&str) -> Option<Vec<u8>>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    optional: bool,
    missing: &str,
) -> Result<BTreeMap<String, FileProjection>, String> {
    let mut payload = BTreeMap::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for key in keys {
                if let Some(data) = lookup(&key) {
                    payload.insert(key, FileProjection { data, mode });
                }
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = lookup(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("{missing}: {}", item.key));
                };
                let mode = item.mode.map_or(mode, |m| (m as u32) & 0o7777);
                payload.insert(item.path.clone(), FileProjection { data, mode });
            }
        }
    }
    Ok(payload)
}

/// Files of a downwardAPI volume or projection.
fn downward_payload(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    mode: u32,
    node: &NodeFacts,
) -> Result<BTreeMap<String, FileProjection>, String> {
    let mut payload = BTreeMap::new();
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            pod_field(pod, &field.field_path, node)
        } else if let Some(selector) = &item.resource_field_ref {
            match selector.container_name.as_deref().filter(|c| !c.is_empty()) {
                Some(name) => resource_of_named_container(pod, name, selector, node),
                None => match pod.spec.as_ref().and_then(|s| s.containers.first()) {
                    Some(c) => container_resource(c, selector, node),
                    None => Err(ConfigError::new("pod has no containers")),
                },
            }
        } else {
            Ok(String::new())
        };
        let value = value.map_err(|e| e.0)?;
        let mode = item.mode.map_or(mode, |m| (m as u32) & 0o7777);
        payload.insert(item.path.clone(), FileProjection { data: value.into_bytes(), mode });
    }
    Ok(payload)
}

/// Checks a payload path the way upstream's AtomicWriter does.
fn validate_payload_path(path: &str) -> io::Result<()> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid path: {why}: {path}"));
    if path.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if path.len() > 4096 {
        return Err(invalid("must be less than or equal to 4096 characters"));
    }
    if Path::new(path).is_absolute() {
        return Err(invalid("must not be absolute path"));
    }
    if Path::new(path).components().any(|c| c == Component::ParentDir) {
        return Err(invalid("must not contain '..'"));
    }
    if path.starts_with("..") {
        return Err(invalid("must not start with '..'"));
    }
    Ok(())
}

/// The first component of a payload path: the user-visible name in the volume's top level.
fn top_level(path: &str) -> &str {
    path.trim_start_matches("./").split('/').find(|c| !c.is_empty() && *c != ".").unwrap_or(path)
}

/// Every regular file under `dir`, relative to it.
fn list_files(dir: &Path, prefix: &Path, out: &mut BTreeMap<PathBuf, std::fs::Metadata>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        let relative = prefix.join(entry.file_name());
        if metadata.is_dir() {
            list_files(&entry.path(), &relative, out)?;
        } else {
            out.insert(relative, metadata);
        }
    }
    Ok(())
}

/// Whether the payload directory `dir` holds exactly `payload` (contents and modes).
fn payload_matches(dir: &Path, payload: &BTreeMap<String, FileProjection>) -> io::Result<bool> {
    let mut present = BTreeMap::new();
    list_files(dir, Path::new(""), &mut present)?;
    let wanted: BTreeMap<PathBuf, &FileProjection> =
        payload.iter().map(|(p, f)| (Path::new(p).components().collect::<PathBuf>(), f)).collect();
    if present.len() != wanted.len() {
        return Ok(false);
    }
    for (path, file) in wanted {
        let Some(metadata) = present.get(&path) else { return Ok(false) };
        if metadata.permissions().mode() & 0o7777 != file.mode || metadata.len() != file.data.len() as u64 {
            return Ok(false);
        }
        if std::fs::read(dir.join(&path))? != file.data {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes `payload` into `dir` atomically, like upstream's AtomicWriter: the files go into a
/// new `..<timestamp>` directory, `..data` is re-pointed to it by renaming a fresh symlink over
/// it, each top-level name is a symlink through `..data`, and names and directories of the old
/// payload are removed afterwards. Nothing is written when the payload is unchanged; returns
/// whether anything was.
pub fn write_atomic(dir: &Path, payload: &BTreeMap<String, FileProjection>) -> io::Result<bool> {
    for path in payload.keys() {
        validate_payload_path(path)?;
    }
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join(DATA_LINK);
    let old = std::fs::read_link(&data_link).ok().filter(|old| dir.join(old).is_dir());
    let new_names: BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
    if let Some(old) = &old
        && payload_matches(&dir.join(old), payload)?
    {
        ensure_user_links(dir, &new_names)?;
        return Ok(false);
    }

    let stamp = chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S");
    let name = format!("..{stamp}.{:08x}", rand::random::<u32>());
    let staged = dir.join(&name);
    std::fs::create_dir(&staged)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))?;
    let written = (|| {
        for (path, file) in payload {
            let target = staged.join(path);
            if let Some(parent) = target.parent()
                && parent != staged
            {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&target, &file.data)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
        }
        let tmp_link = dir.join("..data_tmp");
        match std::fs::remove_file(&tmp_link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        symlink(&name, &tmp_link)?;
        std::fs::rename(&tmp_link, &data_link)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e);
    }
    ensure_user_links(dir, &new_names)?;
    if let Some(old) = old {
        let old_dir = dir.join(&old);
        for entry in std::fs::read_dir(&old_dir)? {
            let file_name = entry?.file_name();
            let Some(shown) = file_name.to_str() else { continue };
            if new_names.contains(shown) {
                continue;
            }
            let link = dir.join(shown);
            if std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
                std::fs::remove_file(&link)?;
            }
        }
        std::fs::remove_dir_all(&old_dir)?;
    }
    Ok(true)
}

/// Creates the `name -> ..data/name` symlinks that are missing.
fn ensure_user_links(dir: &Path, names: &BTreeSet<&str>) -> io::Result<()> {
    for name in names {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_LINK).join(name), &link)?;
        }
    }
    Ok(())
}

/// One CRI mount for a volumeMount.
fn mount_of(
    container: &Container,
    volume_mount: &k8s_openapi::api::core::v1::VolumeMount,
    dirs: &BTreeMap<String, PathBuf>,
    env: &[(String, String)],
) -> Result<Mount, ConfigError> {
    let volume_dir = dirs.get(&volume_mount.name).ok_or_else(|| {
        ConfigError(format!("cannot find volume {:?} to mount into container {:?}", volume_mount.name, container.name))
    })?;
    let mut sub_path = volume_mount.sub_path.clone().unwrap_or_default();
    if let Some(expr) = volume_mount.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
        let known: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let missing = std::cell::RefCell::new(BTreeSet::new());
        let expanded = crate::env::expand_with(expr, |name| match known.get(name).filter(|v| !v.is_empty()) {
            Some(v) => Some(v),
            None => {
                missing.borrow_mut().insert(name.to_string());
                Some("")
            }
        });
        let missing = missing.into_inner();
        if !missing.is_empty() {
            return Err(ConfigError(format!(
                "missing value for {}",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        sub_path = expanded;
    }
    let host_path = if sub_path.is_empty() { volume_dir.clone() } else { sub_path_on_host(volume_dir, &sub_path)? };
    let privileged = container.security_context.as_ref().and_then(|s| s.privileged).unwrap_or(false);
    let propagation = match volume_mount.mount_propagation.as_deref().unwrap_or("None") {
        "HostToContainer" => MountPropagation::PropagationHostToContainer,
        "Bidirectional" if privileged => MountPropagation::PropagationBidirectional,
        "Bidirectional" => {
            return Err(ConfigError::new("Bidirectional mount propagation is available only to privileged containers"));
        }
        _ => MountPropagation::PropagationPrivate,
    };
    let readonly = volume_mount.read_only.unwrap_or(false);
    Ok(Mount {
        container_path: volume_mount.mount_path.clone(),
        host_path: host_path.to_string_lossy().into_owned(),
        readonly,
        recursive_read_only: readonly && volume_mount.recursive_read_only.as_deref() == Some("Enabled"),
        propagation: propagation as i32,
        ..Default::default()
    })
}

/// The host path of a subPath inside a volume, created as a directory when missing; refused
/// when absolute, containing `..`, or resolving (through symlinks) outside the volume.
fn sub_path_on_host(volume_dir: &Path, sub_path: &str) -> Result<PathBuf, ConfigError> {
    if Path::new(sub_path).is_absolute() {
        return Err(ConfigError(format!("error SubPath `{sub_path}` must not be an absolute path")));
    }
    if Path::new(sub_path).components().any(|c| c == Component::ParentDir) {
        return Err(ConfigError(format!("unable to provision SubPath `{sub_path}`: must not contain '..'")));
    }
    let base = std::fs::canonicalize(volume_dir)
        .map_err(|e| ConfigError(format!("error resolving volume path {}: {e}", volume_dir.display())))?;
    let joined = volume_dir.join(sub_path);
    if std::fs::symlink_metadata(&joined).is_err() {
        let mode = std::fs::metadata(volume_dir).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o755);
        create_dirs_within(&base, Path::new(sub_path), mode)
            .map_err(|e| ConfigError(format!("failed to create subPath directory for volumeMount: {e}")))?;
    }
    let resolved = std::fs::canonicalize(&joined)
        .map_err(|e| ConfigError(format!("error resolving subPath {sub_path:?}: {e}")))?;
    if !resolved.starts_with(&base) {
        return Err(ConfigError(format!(
            "subpath {:?} not within volume path {:?}",
            resolved.display(),
            base.display()
        )));
    }
    Ok(resolved)
}

/// Creates `relative` under `base` one component at a time, refusing to step through a
/// symlink that leaves `base`.
fn create_dirs_within(base: &Path, relative: &Path, mode: u32) -> io::Result<()> {
    let mut current = base.to_path_buf();
    for component in relative.components() {
        let Component::Normal(name) = component else { continue };
        current.push(name);
        match std::fs::symlink_metadata(&current) {
            Ok(_) => {
                let resolved = std::fs::canonicalize(&current)?;
                if !resolved.starts_with(base) {
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, "path leaves the volume"));
                }
                current = resolved;
            }
            Err(_) => {
                std::fs::create_dir(&current)?;
                std::fs::set_permissions(&current, std::fs::Permissions::from_mode(mode))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(volumes: serde_json::Value, mounts: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "uid-1", "labels": {"app": "web"}},
            "spec": {"serviceAccountName": "robot", "volumes": volumes,
                     "containers": [{"name": "c", "image": "x", "volumeMounts": mounts,
                                     "resources": {"limits": {"memory": "32Mi"}}}]}
        }))
        .unwrap()
    }

    fn sources() -> Sources {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "cfg"}, "data": {"a.conf": "A", "b.conf": "B"}, "binaryData": {"bin": "AAEC"}
        }))
        .unwrap();
        let ca: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "CA PEM"}}))
                .unwrap();
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"token": "c2VjcmV0"}})).unwrap();
        Sources {
            configmaps: [("cfg".into(), Some(cm)), ("kube-root-ca.crt".into(), Some(ca))].into(),
            secrets: [("s".into(), Some(secret))].into(),
            services: Vec::new(),
        }
    }

    /// A client whose API answers token requests (recording their bodies) and 404s the rest.
    fn fake_client(requests: Arc<Mutex<Vec<serde_json::Value>>>) -> kube::Client {
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let requests = requests.clone();
            async move {
                use http_body_util::BodyExt;
                let path = req.uri().path().to_string();
                let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let (status, reply) = if path == "/api/v1/namespaces/ns/serviceaccounts/robot/token" {
                    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let n = {
                        let mut seen = requests.lock();
                        seen.push(request.clone());
                        seen.len()
                    };
                    let mut reply = request;
                    reply["status"] =
                        json!({"token": format!("token-{n}"), "expirationTimestamp": "2030-01-01T00:00:00Z"});
                    (200, reply)
                } else {
                    (
                        404,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
                    )
                };
                let body = kube::client::Body::from(serde_json::to_vec(&reply).unwrap());
                Ok::<_, std::convert::Infallible>(http::Response::builder().status(status).body(body).unwrap())
            }
        });
        kube::Client::new(service, "default")
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn files(entries: &[(&str, &str, u32)]) -> BTreeMap<String, FileProjection> {
        entries
            .iter()
            .map(|(p, d, m)| (p.to_string(), FileProjection { data: d.as_bytes().to_vec(), mode: *m }))
            .collect()
    }

    #[test]
    fn atomic_writer_swaps_whole_payloads() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        assert!(write_atomic(&dir, &files(&[("a", "1", 0o644), ("sub/b", "2", 0o600)])).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert_eq!(mode(&dir.join("a")), 0o644);
        assert_eq!(mode(&dir.join("sub/b")), 0o600);
        assert_eq!(std::fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(std::fs::read_link(dir.join("sub")).unwrap(), Path::new("..data/sub"));
        let first = std::fs::read_link(dir.join(DATA_LINK)).unwrap();
        assert!(first.to_string_lossy().starts_with(".."), "{first:?}");

        // Same payload: nothing rewritten.
        assert!(!write_atomic(&dir, &files(&[("a", "1", 0o644), ("sub/b", "2", 0o600)])).unwrap());
        assert_eq!(std::fs::read_link(dir.join(DATA_LINK)).unwrap(), first);

        // A new payload replaces the old one whole; dropped names disappear.
        assert!(write_atomic(&dir, &files(&[("a", "one", 0o400), ("c", "3", 0o644)])).unwrap());
        let second = std::fs::read_link(dir.join(DATA_LINK)).unwrap();
        assert_ne!(second, first);
        assert!(!dir.join(&first).exists());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "one");
        assert_eq!(mode(&dir.join("a")), 0o400);
        assert_eq!(std::fs::read_to_string(dir.join("c")).unwrap(), "3");
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err());
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, vec![second.to_string_lossy().into_owned(), DATA_LINK.to_string(), "a".into(), "c".into()]);

        // A mode change alone is an update too.
        assert!(write_atomic(&dir, &files(&[("a", "one", 0o440), ("c", "3", 0o644)])).unwrap());
        assert_eq!(mode(&dir.join("a")), 0o440);

        for bad in ["../x", "/abs", "..hidden", "a/../b", ""] {
            assert!(write_atomic(&dir, &files(&[(bad, "x", 0o644)])).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn prepares_content_volumes() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let client = fake_client(requests.clone());
        let p = pod(
            json!([
                {"name": "all", "configMap": {"name": "cfg"}},
                {"name": "some", "configMap": {"name": "cfg", "defaultMode": 0o600,
                    "items": [{"key": "a.conf", "path": "conf/a"}, {"key": "bin", "path": "b", "mode": 0o400}]}},
                {"name": "opt", "configMap": {"name": "nope", "optional": true}},
                {"name": "sec", "secret": {"secretName": "s"}},
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}},
                {"name": "kube-api-access", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607, "audience": "api"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
                {"name": "scratch", "emptyDir": {}}
            ]),
            json!([]),
        );
        let node = NodeFacts::default();
        let dirs = volumes.prepare(&p, &sources(), &client, &node).await.unwrap();
        let read = |v: &str, f: &str| std::fs::read(dirs[v].join(f)).unwrap();
        assert_eq!(dirs["all"], tmp.path().join("uid-1/volumes/kubernetes.io~configmap/all"));
        assert_eq!(read("all", "a.conf"), b"A");
        assert_eq!(read("all", "bin"), [0, 1, 2]);
        assert_eq!(mode(&dirs["all"].join("a.conf")), 0o644);
        assert_eq!(read("some", "conf/a"), b"A");
        assert_eq!(mode(&dirs["some"].join("conf/a")), 0o600);
        assert_eq!(mode(&dirs["some"].join("b")), 0o400);
        assert!(!dirs["some"].join("b.conf").exists());
        assert_eq!(std::fs::read_dir(&dirs["opt"]).unwrap().count(), 2, "only ..data and its target");
        assert_eq!(read("sec", "token"), b"secret");
        assert_eq!(read("info", "labels"), b"app=\"web\"");
        assert_eq!(read("info", "mem"), b"32");
        assert_eq!(read("kube-api-access", "token"), b"token-1");
        assert_eq!(read("kube-api-access", "ca.crt"), b"CA PEM");
        assert_eq!(read("kube-api-access", "namespace"), b"ns");
        assert_eq!(dirs["scratch"], tmp.path().join("uid-1/volumes/kubernetes.io~empty-dir/scratch"));
        assert_eq!(mode(&dirs["scratch"]), 0o777);
        let request = requests.lock()[0].clone();
        assert_eq!(request["spec"]["audiences"], json!(["api"]));
        assert_eq!(request["spec"]["expirationSeconds"], json!(3607));
        assert_eq!(
            request["spec"]["boundObjectRef"],
            json!({"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-1"})
        );

        // Refresh picks up changed sources; the cached token is reused.
        let mut changed = sources();
        let cm = changed.configmaps.get_mut("cfg").unwrap().as_mut().unwrap();
        cm.data.as_mut().unwrap().insert("a.conf".into(), "A2".into());
        volumes.refresh(&p, &changed, &client, &node).await.unwrap();
        assert_eq!(read("all", "a.conf"), b"A2");
        assert_eq!(read("some", "conf/a"), b"A2");
        assert_eq!(read("kube-api-access", "token"), b"token-1");
        assert_eq!(requests.lock().len(), 1);

        volumes.cleanup("uid-1").await;
        assert!(!tmp.path().join("uid-1").exists());
    }

    #[tokio::test]
    async fn missing_sources_fail_with_upstream_messages() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path());
        let client = fake_client(Arc::default());
        let cases = [
            (json!({"name": "v", "configMap": {"name": "gone"}}), r#"configmap "gone" not found"#),
            (json!({"name": "v", "secret": {"secretName": "gone"}}), r#"secret "gone" not found"#),
            (
                json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}}),
                "configmap references non-existent config key: zz",
            ),
            (
                json!({"name": "v", "secret": {"secretName": "s", "items": [{"key": "zz", "path": "z"}]}}),
                "references non-existent secret key: zz",
            ),
            (
                json!({"name": "v", "projected": {"sources": [{"secret": {"name": "gone"}}]}}),
                r#"secret "gone" not found"#,
            ),
            (
                json!({"name": "v", "hostPath": {"path": "/nonexistent-rudder-test", "type": "Directory"}}),
                "hostPath type check failed: /nonexistent-rudder-test is not a directory",
            ),
            (
                json!({"name": "v", "hostPath": {"path": "/", "type": "File"}}),
                "hostPath type check failed: / is not a file",
            ),
            (
                json!({"name": "v", "hostPath": {"path": "/", "type": "Socket"}}),
                "hostPath type check failed: / is not a socket file",
            ),
            (
                json!({"name": "v", "hostPath": {"path": "/", "type": "CharDevice"}}),
                "hostPath type check failed: / is not a character device",
            ),
            (
                json!({"name": "v", "hostPath": {"path": "/dev/null", "type": "BlockDevice"}}),
                "hostPath type check failed: /dev/null is not a block device",
            ),
        ];
        for (volume, message) in cases {
            let p = pod(json!([volume]), json!([]));
            let err = volumes.prepare(&p, &sources(), &client, &NodeFacts::default()).await.unwrap_err();
            assert_eq!(err.to_string(), format!("MountVolume.SetUp failed for volume \"v\" : {message}"));
        }
    }

    #[tokio::test]
    async fn host_paths_are_checked_and_created() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path().join("pods"));
        let client = fake_client(Arc::default());
        let made_dir = tmp.path().join("made/dir");
        let made_file = tmp.path().join("file");
        let p = pod(
            json!([
                {"name": "d", "hostPath": {"path": made_dir, "type": "DirectoryOrCreate"}},
                {"name": "f", "hostPath": {"path": made_file, "type": "FileOrCreate"}},
                {"name": "null", "hostPath": {"path": "/dev/null", "type": "CharDevice"}},
                {"name": "any", "hostPath": {"path": "/nonexistent-anything"}}
            ]),
            json!([]),
        );
        let dirs = volumes.prepare(&p, &sources(), &client, &NodeFacts::default()).await.unwrap();
        assert!(made_dir.is_dir());
        assert_eq!(mode(&made_dir), 0o755);
        assert!(made_file.is_file());
        assert_eq!(dirs["null"], Path::new("/dev/null"));
        assert_eq!(dirs["any"], Path::new("/nonexistent-anything"));
    }

    #[tokio::test]
    async fn memory_empty_dir_is_tmpfs_and_cleaned_up() {
        if !rustix_is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path());
        let client = fake_client(Arc::default());
        let p = pod(json!([{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]), json!([]));
        let dirs = volumes.prepare(&p, &sources(), &client, &NodeFacts::default()).await.unwrap();
        assert!(is_mount_point(&dirs["mem"]).unwrap());
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info.lines().find(|l| l.contains(&*dirs["mem"].to_string_lossy())).unwrap();
        assert!(line.contains("tmpfs") && line.contains("size=1024k"), "{line}");
        // Preparing again does not stack a second mount.
        volumes.prepare(&p, &sources(), &client, &NodeFacts::default()).await.unwrap();
        let count = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&*dirs["mem"].to_string_lossy()))
            .count();
        assert_eq!(count, 1);
        volumes.cleanup("uid-1").await;
        assert!(!is_mount_point_quiet(&dirs["mem"]));
        assert!(!tmp.path().join("uid-1").exists());
    }

    fn rustix_is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false)
    }

    fn is_mount_point_quiet(path: &Path) -> bool {
        mount_points().unwrap().iter().any(|p| p == path)
    }

    #[test]
    fn mounts_of_volume_mounts() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::symlink("/etc", vol.join("escape")).unwrap();
        let dirs: BTreeMap<String, PathBuf> = [("data".to_string(), vol.clone())].into();
        let p = pod(
            json!([]),
            json!([
                {"name": "data", "mountPath": "/data", "readOnly": true, "recursiveReadOnly": "Enabled"},
                {"name": "data", "mountPath": "/sub", "subPath": "x/y", "mountPropagation": "HostToContainer"},
                {"name": "data", "mountPath": "/expr", "subPathExpr": "$(POD)"}
            ]),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = vec![("POD".to_string(), "web".to_string())];
        let mounts = Volumes::try_mounts(c, &dirs, &env).unwrap();
        let base = std::fs::canonicalize(&vol).unwrap();
        assert_eq!(mounts.len(), 3);
        assert_eq!((mounts[0].container_path.as_str(), mounts[0].readonly), ("/data", true));
        assert!(mounts[0].recursive_read_only);
        assert_eq!(mounts[0].host_path, vol.to_string_lossy());
        assert_eq!(mounts[0].propagation, MountPropagation::PropagationPrivate as i32);
        assert_eq!(mounts[1].host_path, base.join("x/y").to_string_lossy());
        assert!(vol.join("x/y").is_dir());
        assert_eq!(mode(&vol.join("x/y")), 0o750);
        assert!(!mounts[1].readonly);
        assert_eq!(mounts[1].propagation, MountPropagation::PropagationHostToContainer as i32);
        assert_eq!(mounts[2].host_path, base.join("web").to_string_lossy());

        let err = |mount: serde_json::Value, env: &[(String, String)]| {
            let p = pod(json!([]), json!([mount]));
            let c = &p.spec.as_ref().unwrap().containers[0];
            Volumes::try_mounts(c, &dirs, env).unwrap_err().to_string()
        };
        assert_eq!(
            err(json!({"name": "data", "mountPath": "/a", "subPath": "../etc"}), &env),
            "unable to provision SubPath `../etc`: must not contain '..'"
        );
        assert_eq!(
            err(json!({"name": "data", "mountPath": "/a", "subPath": "/etc"}), &env),
            "error SubPath `/etc` must not be an absolute path"
        );
        assert!(
            err(json!({"name": "data", "mountPath": "/a", "subPath": "escape"}), &env)
                .contains("not within volume path")
        );
        assert!(
            err(json!({"name": "data", "mountPath": "/a", "subPath": "escape/new"}), &env)
                .starts_with("failed to create subPath directory")
        );
        assert!(!Path::new("/etc/new").exists());
        assert_eq!(
            err(json!({"name": "data", "mountPath": "/a", "subPathExpr": "$(NOPE)"}), &env),
            "missing value for NOPE"
        );
        assert_eq!(
            err(json!({"name": "other", "mountPath": "/a"}), &env),
            "cannot find volume \"other\" to mount into container \"c\""
        );
        assert_eq!(
            err(json!({"name": "data", "mountPath": "/a", "mountPropagation": "Bidirectional"}), &env),
            "Bidirectional mount propagation is available only to privileged containers"
        );
        // The infallible form leaves the bad mount out.
        let p = pod(json!([]), json!([{"name": "other", "mountPath": "/a"}, {"name": "data", "mountPath": "/b"}]));
        let mounts = Volumes::mounts(&p, &p.spec.as_ref().unwrap().containers[0], &dirs);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].container_path, "/b");
    }

    #[test]
    fn termination_log_is_created_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path());
        let path = volumes.termination_log("uid-1", "app");
        assert_eq!(path, tmp.path().join("uid-1/containers/app/termination-log"));
        std::fs::write(&path, "old message").unwrap();
        assert_eq!(volumes.termination_log("uid-1", "app"), path);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), "/a b\\c");
        assert_eq!(unescape_mountinfo(r"/plain\0"), r"/plain\0");
    }
}
