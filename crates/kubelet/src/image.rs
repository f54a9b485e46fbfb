//! Container images without a registry: the node builds its own images from the host's
//! statically linked busybox (a test image with a shell and the usual tools, and the sandbox
//! "pause" image) as OCI image-layout tarballs, and imports image tarballs (OCI layout, or the
//! `docker save` format) into containerd's content and image stores over its gRPC API, so the
//! CRI plugin can run them. containerd's CRI plugin unpacks an image's layers into snapshots
//! itself the first time a container is created from it.

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::Bytes;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{
    CreateImageRequest, GetImageRequest, Image as ImageRecord, Info, InfoRequest, UpdateImageRequest, UpdateRequest,
    WriteAction, WriteContentRequest,
};
use containerd_client::types::Descriptor;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

/// The image the CRI plugin runs as every pod's sandbox (built here, never pulled).
pub const PAUSE_IMAGE: &str = "docker.io/rudder/pause:1";
/// The test image: busybox with its applets (`sh`, `sleep`, `httpd`, `wget`, `nc`, ...).
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:latest";
/// Where the host's statically linked busybox is (Debian's `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";
/// The containerd namespace the CRI plugin keeps its images and containers in.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// OCI image index media type.
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed OCI layer media type.
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// gzip-compressed OCI layer media type.
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// zstd-compressed OCI layer media type.
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 manifest media type.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list media type.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Annotation of an OCI index entry with the image's full name (what containerd writes/reads).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI annotation of an index entry with the image's reference (here: its tag).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Modification time of every file in built images, so their digests never change.
const EPOCH: u64 = 0;
/// How `created` reads in built images' configs.
const EPOCH_RFC3339: &str = "1970-01-01T00:00:00Z";
/// Size of one content-write message (containerd accepts up to 16 MiB).
const CHUNK: usize = 1 << 20;
/// Largest JSON document (index, manifest, config) read from a tarball.
const MAX_JSON: u64 = 16 << 20;
/// The `PATH` of built images.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The runtime part of an image's config (`config` in the OCI image config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint`; empty for none.
    pub entrypoint: Vec<String>,
    /// `Cmd`; empty for none.
    pub cmd: Vec<String>,
    /// `Env`, `KEY=value` each.
    pub env: Vec<String>,
    /// `WorkingDir`; empty for `/`.
    pub working_dir: String,
    /// `StopSignal`, e.g. `SIGTERM`.
    pub stop_signal: Option<String>,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: vec![DEFAULT_PATH.to_string()],
            working_dir: "/".into(),
            stop_signal: None,
        }
    }
}

impl ImageConfig {
    /// The busybox test image's config: runs `sh` unless told otherwise, like the upstream image.
    pub fn busybox() -> Self {
        ImageConfig { cmd: vec!["sh".into()], ..Default::default() }
    }

    /// The sandbox image's config: a shell that sleeps forever, reaps its children and exits 0
    /// on SIGTERM or SIGINT (as PID 1 it would otherwise ignore them).
    pub fn pause() -> Self {
        ImageConfig {
            entrypoint: vec![
                "/bin/sh".into(),
                "-c".into(),
                "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done".into(),
            ],
            stop_signal: Some("SIGTERM".into()),
            ..Default::default()
        }
    }
}

/// The OCI architecture name of this machine (GOARCH spelling).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Normalises an image reference the way Docker and the CRI do: `busybox` becomes
/// `docker.io/library/busybox:latest`, `foo/bar:1` becomes `docker.io/foo/bar:1`, a registry
/// host (with a dot, a port or `localhost`) is kept. Rejects what is not a valid reference.
pub fn normalize_name(name: &str) -> Result<String> {
    let original = name;
    ensure!(!name.is_empty(), "empty image reference");
    ensure!(name.len() <= 4096, "image reference too long");
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (name, None),
    };
    let last_slash = rest.rfind('/');
    let (repo, tag) = match rest.rfind(':') {
        Some(i) if last_slash.is_none_or(|s| i > s) => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let (domain, path) = match repo.split_once('/') {
        Some((first, remainder)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (first, remainder)
        }
        _ => ("docker.io", repo),
    };
    let domain = if domain == "index.docker.io" { "docker.io" } else { domain };
    let valid_domain = !domain.is_empty()
        && domain.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ensure!(valid_domain, "invalid registry host in image reference {original:?}");
    let valid_path = !path.is_empty()
        && path.split('/').all(|component| {
            !component.is_empty()
                && component
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
                && component.starts_with(|c: char| c.is_ascii_alphanumeric())
                && component.ends_with(|c: char| c.is_ascii_alphanumeric())
        });
    ensure!(valid_path, "invalid repository name in image reference {original:?} (must be lowercase)");
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        ensure!(valid, "invalid tag in image reference {original:?}");
    }
    if let Some(digest) = digest {
        let valid = digest
            .split_once(':')
            .is_some_and(|(alg, hex)| !alg.is_empty() && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit()));
        ensure!(valid, "invalid digest in image reference {original:?}");
    }
    let path = if domain == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path.to_string() };
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(tag), _) => out.push_str(&format!(":{tag}")),
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(digest) = digest {
        out.push_str(&format!("@{digest}"));
    }
    Ok(out)
}

/// The tag of a normalised reference, `None` for a digest-only one.
fn tag_of(full: &str) -> Option<&str> {
    let rest = full.split('@').next().unwrap_or(full);
    let slash = rest.rfind('/').unwrap_or(0);
    rest.rfind(':').filter(|&i| i > slash).map(|i| &rest[i + 1..])
}

/// A deterministic tar being written: root-owned entries with a fixed mtime.
struct TarWriter {
    builder: tar::Builder<Vec<u8>>,
}

impl TarWriter {
    fn new() -> Self {
        TarWriter { builder: tar::Builder::new(Vec::new()) }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(EPOCH);
        h.set_size(size);
        h
    }

    fn dir(&mut self, path: &str, mode: u32) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        let path = format!("{}/", path.trim_end_matches('/'));
        self.builder.append_data(&mut h, path, std::io::empty())?;
        Ok(())
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.builder.append_data(&mut h, path, data)?;
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut h, path, target)?;
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>> {
        Ok(self.builder.into_inner()?)
    }
}

/// Where busybox installs its applets, relative to `/` (`bin/sh`, `usr/bin/wget`, ...), from
/// `busybox --list-full` (or `--list`, all in `bin/`, for builds without it). Sorted.
pub fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let run = |arg: &str| -> Result<Option<String>> {
        let out = std::process::Command::new(busybox)
            .arg(arg)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot run {} (apt-get install -y busybox-static)", busybox.display()))?;
        Ok(out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
    };
    let mut applets: Vec<String> = if let Some(full) = run("--list-full")? {
        full.lines().map(str::trim).map(|l| l.trim_start_matches('/').to_string()).collect()
    } else if let Some(short) = run("--list")? {
        short.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| format!("bin/{l}")).collect()
    } else {
        bail!("{} lists no applets (is it busybox?)", busybox.display());
    };
    applets.retain(|a| {
        !a.is_empty()
            && a != "bin/busybox"
            && !a.ends_with('/')
            && a.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
    });
    applets.sort();
    applets.dedup();
    ensure!(!applets.is_empty(), "{} lists no applets", busybox.display());
    Ok(applets)
}

/// The single layer of a busybox image: `bin/busybox`, one symlink per applet, a minimal
/// `etc/passwd` and `etc/group` (root, nobody), `root/` and a world-writable sticky `tmp/`.
fn busybox_layer(busybox: &[u8], applets: &[String]) -> Result<Vec<u8>> {
    let mut dirs: Vec<String> =
        ["bin", "dev", "etc", "proc", "root", "sys", "tmp", "usr", "var"].iter().map(|d| d.to_string()).collect();
    for applet in applets {
        let mut parent = Path::new(applet).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.push(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    let mut tar = TarWriter::new();
    for dir in &dirs {
        let mode = match dir.as_str() {
            "tmp" => 0o1777,
            "root" => 0o700,
            _ => 0o755,
        };
        tar.dir(dir, mode)?;
    }
    tar.file("bin/busybox", 0o755, busybox)?;
    for applet in applets {
        tar.symlink(applet, "/bin/busybox")?;
    }
    tar.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")?;
    tar.file("etc/group", 0o644, b"root:x:0:\nnobody:x:65534:\n")?;
    tar.finish()
}

/// The OCI image config document.
fn config_json(config: &ImageConfig, diff_id: &str) -> Value {
    let mut c = Map::new();
    let strings = |v: &[String]| Value::from(v.to_vec());
    if !config.entrypoint.is_empty() {
        c.insert("Entrypoint".into(), strings(&config.entrypoint));
    }
    if !config.cmd.is_empty() {
        c.insert("Cmd".into(), strings(&config.cmd));
    }
    if !config.env.is_empty() {
        c.insert("Env".into(), strings(&config.env));
    }
    let wd = if config.working_dir.is_empty() { "/" } else { config.working_dir.as_str() };
    c.insert("WorkingDir".into(), wd.into());
    if let Some(signal) = &config.stop_signal {
        c.insert("StopSignal".into(), signal.as_str().into());
    }
    json!({
        "created": EPOCH_RFC3339,
        "architecture": host_architecture(),
        "os": "linux",
        "config": c,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": EPOCH_RFC3339, "created_by": "rudder: busybox-static image" }],
    })
}

/// Builds an image from a statically linked busybox as an OCI image-layout tarball (in memory):
/// one gzip layer (`bin/busybox`, a symlink per applet, `etc/passwd`, `etc/group`, `root/`,
/// a sticky world-writable `tmp/`), its config, manifest, `index.json` naming it `name`
/// (normalised; `io.containerd.image.name` and `org.opencontainers.image.ref.name`) and
/// `oci-layout`. Every timestamp is fixed, so the same busybox gives the same digests.
pub fn build_busybox_image(busybox: &Path, name: &str, config: ImageConfig) -> Result<Vec<u8>> {
    let full = normalize_name(name)?;
    let tag = tag_of(&full).with_context(|| format!("cannot build {full}: a built image needs a tag, not a digest"))?;
    let binary = std::fs::read(busybox).with_context(|| format!("cannot read {}", busybox.display()))?;
    let applets = busybox_applets(busybox)?;

    let layer = busybox_layer(&binary, &applets)?;
    let diff_id = sha256_digest(&layer);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&layer)?;
    let layer_gz = gz.finish()?;
    let layer_digest = sha256_digest(&layer_gz);

    let config_blob = serde_json::to_vec(&config_json(&config, &diff_id))?;
    let config_digest = sha256_digest(&config_blob);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "config": { "mediaType": MEDIA_OCI_CONFIG, "digest": config_digest, "size": config_blob.len() },
        "layers": [{ "mediaType": MEDIA_OCI_LAYER_GZIP, "digest": layer_digest, "size": layer_gz.len() }],
    });
    let manifest_blob = serde_json::to_vec(&manifest)?;
    let manifest_digest = sha256_digest(&manifest_blob);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_INDEX,
        "manifests": [{
            "mediaType": MEDIA_OCI_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_blob.len(),
            "annotations": { ANNOTATION_IMAGE_NAME: full, ANNOTATION_REF_NAME: tag },
        }],
    });

    let mut tar = TarWriter::new();
    tar.file("oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    tar.file("index.json", 0o644, &serde_json::to_vec(&index)?)?;
    tar.dir("blobs", 0o755)?;
    tar.dir("blobs/sha256", 0o755)?;
    for (digest, blob) in
        [(&config_digest, &config_blob), (&layer_digest, &layer_gz), (&manifest_digest, &manifest_blob)]
    {
        tar.file(&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")), 0o644, blob)?;
    }
    tar.finish()
}

/// The busybox test image ([`BUSYBOX_IMAGE`]) from the host's busybox.
pub fn busybox_image() -> Result<Vec<u8>> {
    build_busybox_image(Path::new(HOST_BUSYBOX), BUSYBOX_IMAGE, ImageConfig::busybox())
}

/// The sandbox image ([`PAUSE_IMAGE`]) from the host's busybox.
pub fn pause_image() -> Result<Vec<u8>> {
    build_busybox_image(Path::new(HOST_BUSYBOX), PAUSE_IMAGE, ImageConfig::pause())
}

// ---------------------------------------------------------------------------------------------
// Reading image tarballs.

/// Where an image tarball's bytes are.
#[derive(Clone)]
enum Backing {
    Memory(Bytes),
    File(Arc<File>),
}

/// A byte range of an image tarball: one blob.
#[derive(Clone)]
struct Blob {
    backing: Backing,
    offset: u64,
    len: u64,
}

impl Blob {
    fn memory(data: Vec<u8>) -> Blob {
        let len = data.len() as u64;
        Blob { backing: Backing::Memory(Bytes::from(data)), offset: 0, len }
    }

    /// `len` bytes at `at` (relative to the blob).
    fn read_at(&self, at: u64, len: usize) -> Result<Vec<u8>> {
        ensure!(at + len as u64 <= self.len, "read past the end of a blob");
        match &self.backing {
            Backing::Memory(b) => {
                let start = (self.offset + at) as usize;
                Ok(b[start..start + len].to_vec())
            }
            Backing::File(f) => {
                let mut buf = vec![0; len];
                f.read_exact_at(&mut buf, self.offset + at).context("cannot read the image tarball")?;
                Ok(buf)
            }
        }
    }

    fn read_all(&self, limit: u64) -> Result<Vec<u8>> {
        ensure!(self.len <= limit, "a {} byte document is too large", self.len);
        self.read_at(0, self.len as usize)
    }

    fn sha256(&self) -> Result<String> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut at = 0;
        while at < self.len {
            let n = (self.len - at).min(CHUNK as u64) as usize;
            ctx.update(&self.read_at(at, n)?);
            at += n as u64;
        }
        Ok(format!("sha256:{}", hex(ctx.finish().as_ref())))
    }

    /// Media type of a layer from its first bytes.
    fn layer_media_type(&self) -> Result<&'static str> {
        let head = self.read_at(0, self.len.min(4) as usize)?;
        Ok(if head.starts_with(&[0x1f, 0x8b]) {
            MEDIA_OCI_LAYER_GZIP
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            MEDIA_OCI_LAYER_ZSTD
        } else {
            MEDIA_OCI_LAYER
        })
    }
}

enum Entry {
    Data { offset: u64, len: u64 },
    Link(String),
}

/// An image tarball's table of contents.
struct Archive {
    backing: Backing,
    entries: HashMap<String, Entry>,
}

/// A path inside a tarball made canonical: no `./`, no leading `/`, `..` resolved.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl Archive {
    fn open(path: &Path) -> Result<Archive> {
        let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut magic = [0u8; 2];
        let n = file.read(&mut magic)?;
        file.rewind()?;
        if n == 2 && magic == [0x1f, 0x8b] {
            let mut data = Vec::new();
            GzDecoder::new(file).read_to_end(&mut data).context("cannot decompress the image tarball")?;
            return Archive::from_bytes(Bytes::from(data));
        }
        let entries = Self::scan(&file)?;
        Ok(Archive { backing: Backing::File(Arc::new(file)), entries })
    }

    fn from_bytes(data: Bytes) -> Result<Archive> {
        if data.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            GzDecoder::new(&data[..]).read_to_end(&mut out).context("cannot decompress the image tarball")?;
            return Archive::from_bytes(Bytes::from(out));
        }
        let entries = Self::scan(std::io::Cursor::new(&data[..]))?;
        Ok(Archive { backing: Backing::Memory(data), entries })
    }

    fn scan<R: Read + Seek>(reader: R) -> Result<HashMap<String, Entry>> {
        let mut archive = tar::Archive::new(reader);
        let mut entries = HashMap::new();
        for entry in archive.entries_with_seek().context("not a tar archive")? {
            let entry = entry.context("corrupt image tarball")?;
            let path = entry.path().context("bad path in the image tarball")?;
            let path = clean_path(&path.to_string_lossy());
            let kind = entry.header().entry_type();
            if kind.is_file() {
                entries.insert(path, Entry::Data { offset: entry.raw_file_position(), len: entry.size() });
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry.link_name()?.context("link without a target")?.to_string_lossy().into_owned();
                let target = if kind.is_symlink() && !target.starts_with('/') {
                    let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                    clean_path(&format!("{parent}/{target}"))
                } else {
                    clean_path(&target)
                };
                entries.insert(path, Entry::Link(target));
            }
        }
        Ok(entries)
    }

    fn blob(&self, path: &str) -> Option<Blob> {
        let mut path = clean_path(path);
        for _ in 0..16 {
            match self.entries.get(&path)? {
                Entry::Data { offset, len } => {
                    return Some(Blob { backing: self.backing.clone(), offset: *offset, len: *len });
                }
                Entry::Link(target) => path = target.clone(),
            }
        }
        None
    }

    fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let blob = self.blob(path).with_context(|| format!("the image tarball has no {path}"))?;
        serde_json::from_slice(&blob.read_all(MAX_JSON)?).with_context(|| format!("{path} is not valid"))
    }

    fn content_blob(&self, digest: &str) -> Option<Blob> {
        let (alg, hex) = digest.split_once(':')?;
        self.blob(&format!("blobs/{alg}/{hex}"))
    }
}

/// One blob to write into containerd's content store.
struct PlannedBlob {
    digest: String,
    blob: Blob,
    labels: BTreeMap<String, String>,
}

/// What an import writes: blobs (children before their parents) and image records.
#[derive(Default)]
struct Plan {
    blobs: Vec<PlannedBlob>,
    images: Vec<(String, Descriptor)>,
}

impl Plan {
    fn add(&mut self, digest: &str, blob: Blob, labels: BTreeMap<String, String>) {
        if let Some(existing) = self.blobs.iter_mut().find(|b| b.digest == digest) {
            existing.labels.extend(labels);
        } else {
            self.blobs.push(PlannedBlob { digest: digest.to_string(), blob, labels });
        }
    }
}

#[derive(Deserialize)]
struct OciDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<OciDescriptor>,
}

#[derive(Deserialize)]
struct OciManifest {
    config: OciDescriptor,
    #[serde(default)]
    layers: Vec<OciDescriptor>,
}

#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn descriptor(media_type: &str, digest: &str, size: i64) -> Descriptor {
    Descriptor { media_type: media_type.into(), digest: digest.into(), size, annotations: HashMap::new() }
}

/// The name an OCI index entry gives its image, if any.
fn oci_entry_name(d: &OciDescriptor) -> Option<Result<String>> {
    if let Some(name) = d.annotations.get(ANNOTATION_IMAGE_NAME) {
        return Some(normalize_name(name));
    }
    // A bare tag ("latest") names nothing by itself; a full reference does.
    let r = d.annotations.get(ANNOTATION_REF_NAME)?;
    r.contains(['/', ':', '@']).then(|| normalize_name(r))
}

/// Adds a blob reachable from an OCI index (and everything below it) to the plan.
fn plan_oci_blob(archive: &Archive, plan: &mut Plan, d: &OciDescriptor, seen: &mut HashSet<String>) -> Result<()> {
    let blob =
        archive.content_blob(&d.digest).with_context(|| format!("the image tarball has no blob {}", d.digest))?;
    ensure!(
        d.size < 0 || blob.len == d.size as u64,
        "blob {} is {} bytes, its descriptor says {}",
        d.digest,
        blob.len,
        d.size
    );
    if !seen.insert(d.digest.clone()) {
        return Ok(());
    }
    let mut labels = BTreeMap::new();
    match d.media_type.as_str() {
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => {
            let index: OciIndex = serde_json::from_slice(&blob.read_all(MAX_JSON)?)
                .with_context(|| format!("index {} is not valid", d.digest))?;
            for (i, child) in index.manifests.iter().enumerate() {
                // Manifests for other platforms are often left out of a tarball.
                if archive.content_blob(&child.digest).is_some() {
                    plan_oci_blob(archive, plan, child, seen)?;
                    labels.insert(format!("containerd.io/gc.ref.content.m.{i}"), child.digest.clone());
                }
            }
        }
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => {
            let manifest: OciManifest = serde_json::from_slice(&blob.read_all(MAX_JSON)?)
                .with_context(|| format!("manifest {} is not valid", d.digest))?;
            plan_oci_blob(archive, plan, &manifest.config, seen)?;
            labels.insert("containerd.io/gc.ref.content.config".into(), manifest.config.digest.clone());
            for (i, layer) in manifest.layers.iter().enumerate() {
                plan_oci_blob(archive, plan, layer, seen)?;
                labels.insert(format!("containerd.io/gc.ref.content.l.{i}"), layer.digest.clone());
            }
        }
        _ => {}
    }
    plan.add(&d.digest, blob, labels);
    Ok(())
}

/// The plan for an OCI image layout: every named entry of `index.json`.
fn plan_oci(archive: &Archive) -> Result<Plan> {
    let index: OciIndex = archive.json("index.json")?;
    let mut plan = Plan::default();
    let mut seen = HashSet::new();
    for entry in &index.manifests {
        let Some(name) = oci_entry_name(entry) else { continue };
        let name = name?;
        ensure!(
            matches!(
                entry.media_type.as_str(),
                MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST | MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST
            ),
            "{name} has unsupported media type {:?}",
            entry.media_type
        );
        plan_oci_blob(archive, &mut plan, entry, &mut seen)?;
        plan.images.push((name, descriptor(&entry.media_type, &entry.digest, entry.size)));
    }
    ensure!(!plan.images.is_empty(), "index.json names no image (no {ANNOTATION_IMAGE_NAME} annotation)");
    Ok(plan)
}

/// The digest of a blob at `blobs/<alg>/<hex>`, taken from its path; computed otherwise.
fn digest_of(path: &str, blob: &Blob) -> Result<String> {
    let clean = clean_path(path);
    if let Some(hex) = clean.strip_prefix("blobs/sha256/")
        && hex.len() == 64
        && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Ok(format!("sha256:{hex}"));
    }
    blob.sha256()
}

/// The plan for a `docker save` tarball: an OCI manifest is made for each image.
fn plan_docker(archive: &Archive) -> Result<Plan> {
    let entries: Vec<DockerEntry> = archive.json("manifest.json")?;
    let mut plan = Plan::default();
    for entry in &entries {
        let names = entry.repo_tags.clone().unwrap_or_default();
        if names.is_empty() {
            tracing::warn!(config = %entry.config, "skipping an untagged image in the docker archive");
            continue;
        }
        let config =
            archive.blob(&entry.config).with_context(|| format!("the image tarball has no {}", entry.config))?;
        let config_digest = digest_of(&entry.config, &config)?;
        let config_len = config.len as i64;
        plan.add(&config_digest, config, BTreeMap::new());
        let mut labels = BTreeMap::new();
        labels.insert("containerd.io/gc.ref.content.config".to_string(), config_digest.clone());
        let mut layers = Vec::new();
        for (i, path) in entry.layers.iter().enumerate() {
            let layer = archive.blob(path).with_context(|| format!("the image tarball has no {path}"))?;
            let digest = digest_of(path, &layer)?;
            layers.push(json!({ "mediaType": layer.layer_media_type()?, "digest": digest, "size": layer.len }));
            labels.insert(format!("containerd.io/gc.ref.content.l.{i}"), digest.clone());
            plan.add(&digest, layer, BTreeMap::new());
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": { "mediaType": MEDIA_OCI_CONFIG, "digest": config_digest, "size": config_len },
            "layers": layers,
        }))?;
        let manifest_digest = sha256_digest(&manifest);
        let manifest_len = manifest.len() as i64;
        plan.add(&manifest_digest, Blob::memory(manifest), labels);
        for name in names {
            let name = normalize_name(&name)?;
            plan.images.push((name, descriptor(MEDIA_OCI_MANIFEST, &manifest_digest, manifest_len)));
        }
    }
    ensure!(!plan.images.is_empty(), "manifest.json names no image (no RepoTags)");
    Ok(plan)
}

/// What to import from a tarball: its OCI index when that names images, else its docker
/// `manifest.json`.
fn plan(archive: &Archive) -> Result<Plan> {
    let has_index = archive.blob("index.json").is_some();
    let has_docker = archive.blob("manifest.json").is_some();
    match (has_index, has_docker) {
        (true, false) => plan_oci(archive),
        (true, true) => plan_oci(archive)
            .or_else(|oci| plan_docker(archive).map_err(|docker| anyhow!("{oci:#}; as a docker archive: {docker:#}"))),
        (false, true) => plan_docker(archive),
        (false, false) => bail!("neither an OCI image layout (index.json) nor a docker archive (manifest.json)"),
    }
}

// ---------------------------------------------------------------------------------------------
// containerd.

/// containerd's image and content stores in one namespace, over its gRPC socket.
#[derive(Clone)]
pub struct ImageStore {
    channel: Channel,
    namespace: AsciiMetadataValue,
}

fn rpc(what: &str, status: tonic::Status) -> anyhow::Error {
    anyhow!("containerd {what}: {} ({:?})", status.message(), status.code())
}

impl ImageStore {
    /// Connects to containerd's socket; `namespace` is usually [`CRI_NAMESPACE`].
    pub async fn connect(socket: &Path, namespace: &str) -> Result<ImageStore> {
        let valid = !namespace.is_empty()
            && namespace.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        ensure!(valid, "invalid containerd namespace {namespace:?}");
        let channel = crate::cri::unix_channel(socket).await?;
        Ok(ImageStore { channel, namespace: AsciiMetadataValue::try_from(namespace)? })
    }

    fn request<T>(&self, message: T, lease: Option<&AsciiMetadataValue>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("containerd-namespace", self.namespace.clone());
        if let Some(lease) = lease {
            request.metadata_mut().insert("containerd-lease", lease.clone());
        }
        request
    }

    /// The image record named `name` (normalised), `None` when there is none.
    pub async fn get(&self, name: &str) -> Result<Option<Descriptor>> {
        let name = normalize_name(name)?;
        let mut images = ImagesClient::new(self.channel.clone());
        match images.get(self.request(GetImageRequest { name }, None)).await {
            Ok(r) => Ok(r.into_inner().image.and_then(|i| i.target)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(rpc("Images.Get", s)),
        }
    }

    /// Imports an image tarball file (OCI layout or `docker save`, optionally gzipped);
    /// returns the names of the images it created or updated.
    pub async fn import_file(&self, tarball: &Path) -> Result<Vec<String>> {
        let path = tarball.to_path_buf();
        let plan = tokio::task::spawn_blocking(move || Archive::open(&path).and_then(|a| plan(&a)))
            .await?
            .with_context(|| format!("cannot import {}", tarball.display()))?;
        self.apply(plan).await
    }

    /// Imports an image tarball held in memory; see [`ImageStore::import_file`].
    pub async fn import_bytes(&self, tarball: Vec<u8>) -> Result<Vec<String>> {
        let plan =
            tokio::task::spawn_blocking(move || Archive::from_bytes(Bytes::from(tarball)).and_then(|a| plan(&a)))
                .await?
                .context("cannot import the image tarball")?;
        self.apply(plan).await
    }

    /// Imports the image `name` from the tarball `build` makes unless containerd has it;
    /// says whether it imported.
    pub async fn ensure<F>(&self, name: &str, build: F) -> Result<bool>
    where
        F: FnOnce() -> Result<Vec<u8>> + Send + 'static,
    {
        let full = normalize_name(name)?;
        if self.get(&full).await?.is_some() {
            return Ok(false);
        }
        let tarball = tokio::task::spawn_blocking(build).await?.with_context(|| format!("cannot build {full}"))?;
        let names = self.import_bytes(tarball).await?;
        ensure!(names.contains(&full), "the tarball built for {full} holds {names:?} instead");
        tracing::info!(image = %full, "imported image");
        Ok(true)
    }

    /// Writes the plan's blobs under a lease (so nothing is collected half-way), then creates
    /// or updates the image records.
    async fn apply(&self, plan: Plan) -> Result<Vec<String>> {
        let lease_id = format!("rudder-import-{:016x}", rand::random::<u64>());
        let mut leases = LeasesClient::new(self.channel.clone());
        let expire =
            (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let create = containerd_client::services::v1::CreateRequest {
            id: lease_id.clone(),
            labels: HashMap::from([("containerd.io/gc.expire".to_string(), expire)]),
        };
        leases.create(self.request(create, None)).await.map_err(|s| rpc("Leases.Create", s))?;
        let lease = AsciiMetadataValue::try_from(lease_id.as_str())?;
        let result = self.apply_leased(&plan, &lease).await;
        let delete = containerd_client::services::v1::DeleteRequest { id: lease_id, sync: false };
        if let Err(s) = leases.delete(self.request(delete, None)).await {
            tracing::warn!("cannot delete import lease: {}", s.message());
        }
        result
    }

    async fn apply_leased(&self, plan: &Plan, lease: &AsciiMetadataValue) -> Result<Vec<String>> {
        for blob in &plan.blobs {
            self.write_blob(blob, lease).await.with_context(|| format!("cannot store blob {}", blob.digest))?;
        }
        let mut images = ImagesClient::new(self.channel.clone());
        let mut names = Vec::new();
        for (name, target) in &plan.images {
            let record = ImageRecord {
                name: name.clone(),
                labels: HashMap::new(),
                target: Some(target.clone()),
                created_at: None,
                updated_at: None,
            };
            let create = CreateImageRequest { image: Some(record.clone()), source_date_epoch: None };
            match images.create(self.request(create, Some(lease))).await {
                Ok(_) => {}
                Err(s) if s.code() == tonic::Code::AlreadyExists => {
                    let update = UpdateImageRequest { image: Some(record), update_mask: None, source_date_epoch: None };
                    images.update(self.request(update, Some(lease))).await.map_err(|s| rpc("Images.Update", s))?;
                }
                Err(s) => return Err(rpc("Images.Create", s)),
            }
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        Ok(names)
    }

    /// Writes one blob (with its labels) unless present; labels a present one.
    async fn write_blob(&self, planned: &PlannedBlob, lease: &AsciiMetadataValue) -> Result<()> {
        let mut content = ContentClient::new(self.channel.clone());
        let info = content.info(self.request(InfoRequest { digest: planned.digest.clone() }, Some(lease))).await;
        match info {
            Ok(_) => return self.label_blob(planned, lease).await,
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => return Err(rpc("Content.Info", s)),
        }
        let blob = planned.blob.clone();
        let total = blob.len as i64;
        let reference = format!("rudder-import-{}", planned.digest);
        let labels: HashMap<String, String> = planned.labels.clone().into_iter().collect();
        let expected = planned.digest.clone();
        // One message per chunk; the last one commits (an empty blob is a lone commit).
        let requests = futures::stream::unfold(Some(0u64), move |state| {
            let blob = blob.clone();
            let (reference, expected, labels) = (reference.clone(), expected.clone(), labels.clone());
            async move {
                let offset = state?;
                let n = (blob.len - offset).min(CHUNK as u64) as usize;
                let data = match tokio::task::spawn_blocking(move || blob.read_at(offset, n)).await {
                    Ok(Ok(data)) => data,
                    Ok(Err(e)) => {
                        tracing::warn!("cannot read blob {expected}: {e:#}");
                        return None;
                    }
                    Err(_) => return None,
                };
                let next = offset + n as u64;
                let last = next >= total as u64;
                let request = WriteContentRequest {
                    action: if last { WriteAction::Commit } else { WriteAction::Write } as i32,
                    r#ref: reference,
                    total,
                    expected,
                    offset: offset as i64,
                    data,
                    labels: if last { labels } else { HashMap::new() },
                };
                Some((request, (!last).then_some(next)))
            }
        });
        let mut responses = match content.write(self.request(requests, Some(lease))).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::AlreadyExists => return self.label_blob(planned, lease).await,
            Err(s) => return Err(rpc("Content.Write", s)),
        };
        let mut committed = false;
        loop {
            match responses.message().await {
                Ok(Some(r)) => committed |= r.action == WriteAction::Commit as i32,
                Ok(None) => break,
                Err(s) if s.code() == tonic::Code::AlreadyExists => return self.label_blob(planned, lease).await,
                Err(s) => return Err(rpc("Content.Write", s)),
            }
        }
        ensure!(committed, "the write of {} ended before its commit", planned.digest);
        Ok(())
    }

    /// Adds the planned labels to a blob already in the content store.
    async fn label_blob(&self, planned: &PlannedBlob, lease: &AsciiMetadataValue) -> Result<()> {
        if planned.labels.is_empty() {
            return Ok(());
        }
        let info = Info {
            digest: planned.digest.clone(),
            labels: planned.labels.clone().into_iter().collect(),
            ..Default::default()
        };
        let paths = planned.labels.keys().map(|k| format!("labels.{k}")).collect();
        let update = UpdateRequest { info: Some(info), update_mask: Some(prost_types::FieldMask { paths }) };
        let mut content = ContentClient::new(self.channel.clone());
        content.update(self.request(update, Some(lease))).await.map_err(|s| rpc("Content.Update", s))?;
        Ok(())
    }
}

/// Imports an image tarball (OCI layout or `docker save` format) into containerd at `socket`,
/// in `namespace`; returns the normalised names of the images.
pub async fn import(socket: &Path, namespace: &str, tarball: &Path) -> Result<Vec<String>> {
    ImageStore::connect(socket, namespace).await?.import_file(tarball).await
}

/// Imports image `name` from the tarball `build` makes unless containerd already has it;
/// says whether it imported. For the sandbox image at start:
/// `ensure_image(socket, CRI_NAMESPACE, PAUSE_IMAGE, pause_image)`.
pub async fn ensure_image<F>(socket: &Path, namespace: &str, name: &str, build: F) -> Result<bool>
where
    F: FnOnce() -> Result<Vec<u8>> + Send + 'static,
{
    ImageStore::connect(socket, namespace).await?.ensure(name, build).await
}

#[cfg(test)]
mod tests;
