//! Tests of image building and tarball reading, and (with `RUDDER_E2E_CONTAINERS=1`, as root)
//! an end-to-end run of the built images in a containerd of our own.

use super::*;

/// A stand-in for busybox: a script that lists a few applets, so the build tests need no
/// busybox and stay fast.
fn fake_busybox(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("busybox");
    std::fs::write(
        &path,
        "#!/bin/sh\n[ \"$1\" = --list-full ] || exit 1\necho bin/sh; echo usr/bin/wget; echo bin/busybox; echo sbin/ip; echo linuxrc\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The entries of a tar: path -> (type, mode, data or link target).
fn tar_entries(data: &[u8]) -> BTreeMap<String, (tar::EntryType, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(data);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap();
        let body = if kind.is_symlink() {
            entry.link_name().unwrap().unwrap().to_string_lossy().as_bytes().to_vec()
        } else {
            let mut v = Vec::new();
            entry.read_to_end(&mut v).unwrap();
            v
        };
        out.insert(path, (kind, mode, body));
    }
    out
}

#[test]
fn names_are_normalised_like_docker() {
    let cases = [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("rudder/pause:1", "docker.io/rudder/pause:1"),
        ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
        ("localhost/x:1", "localhost/x:1"),
        (
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(normalize_name(input).unwrap(), want, "{input}");
    }
    for bad in ["", "Busybox", "busybox:", "a//b", "busybox:-x", "busybox@sha256:zz", "-x/y", "x:y:z"] {
        assert!(normalize_name(bad).is_err(), "{bad:?} should be rejected");
    }
    assert_eq!(tag_of("docker.io/library/busybox:latest"), Some("latest"));
    assert_eq!(tag_of("localhost:5000/a/b:2"), Some("2"));
    assert_eq!(tag_of("docker.io/library/busybox@sha256:00"), None);
}

#[test]
fn tar_paths_are_cleaned() {
    assert_eq!(clean_path("./blobs/sha256/ab"), "blobs/sha256/ab");
    assert_eq!(clean_path("/abc/../def/layer.tar"), "def/layer.tar");
    assert_eq!(clean_path("a//b/./c/"), "a/b/c");
}

#[test]
fn pause_config_traps_sigterm() {
    let c = ImageConfig::pause();
    assert_eq!(c.entrypoint[..2], ["/bin/sh".to_string(), "-c".to_string()]);
    assert!(c.entrypoint[2].contains("trap 'exit 0' TERM INT"));
    assert_eq!(ImageConfig::busybox().cmd, ["sh"]);
}

#[test]
fn built_image_is_a_valid_deterministic_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = fake_busybox(dir.path());
    let config = ImageConfig { stop_signal: Some("SIGINT".into()), ..ImageConfig::pause() };
    let image = build_busybox_image(&busybox, "rudder/pause:1", config.clone()).unwrap();
    assert_eq!(image, build_busybox_image(&busybox, "rudder/pause:1", config).unwrap(), "not deterministic");

    let outer = tar_entries(&image);
    assert_eq!(outer["oci-layout"].2, br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: Value = serde_json::from_slice(&outer["index.json"].2).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(entry["annotations"][ANNOTATION_IMAGE_NAME], "docker.io/rudder/pause:1");
    assert_eq!(entry["annotations"][ANNOTATION_REF_NAME], "1");
    assert_eq!(entry["mediaType"], MEDIA_OCI_MANIFEST);
    // Every blob is stored under its own digest.
    let blob = |digest: &str| -> Vec<u8> {
        let data = outer[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))].2.clone();
        assert_eq!(sha256_digest(&data), digest);
        data
    };
    let manifest: Value = serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
    assert_eq!(entry["size"], blob(entry["digest"].as_str().unwrap()).len());
    let config: Value = serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(config["architecture"], host_architecture());
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Entrypoint"][0], "/bin/sh");
    assert_eq!(config["config"]["StopSignal"], "SIGINT");
    assert_eq!(config["config"]["Env"][0], DEFAULT_PATH);
    assert!(config["config"].get("Cmd").is_none());
    assert_eq!(manifest["layers"][0]["mediaType"], MEDIA_OCI_LAYER_GZIP);

    // The layer: diff_id is the digest of the uncompressed tar.
    let gz = blob(manifest["layers"][0]["digest"].as_str().unwrap());
    let mut layer = Vec::new();
    GzDecoder::new(&gz[..]).read_to_end(&mut layer).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], sha256_digest(&layer));
    let files = tar_entries(&layer);
    assert_eq!(files["bin/busybox"].1, 0o755);
    assert_eq!(files["bin/busybox"].2, std::fs::read(&busybox).unwrap());
    assert_eq!(files["bin/sh"].0, tar::EntryType::Symlink);
    assert_eq!(files["bin/sh"].2, b"/bin/busybox");
    assert_eq!(files["usr/bin/wget"].2, b"/bin/busybox");
    assert_eq!(files["linuxrc"].2, b"/bin/busybox");
    assert!(files.contains_key("usr/bin/") && files.contains_key("sbin/"));
    assert_eq!(files["tmp/"].1, 0o1777);
    assert_eq!(files["root/"].1, 0o700);
    assert!(String::from_utf8_lossy(&files["etc/passwd"].2).starts_with("root:x:0:0:"));
    assert!(String::from_utf8_lossy(&files["etc/group"].2).contains("nobody:x:65534:"));
}

#[test]
fn the_real_busybox_lists_its_applets() {
    let busybox = Path::new(HOST_BUSYBOX);
    if !busybox.exists() {
        eprintln!("skipped: no {HOST_BUSYBOX}");
        return;
    }
    let applets = busybox_applets(busybox).unwrap();
    for want in ["bin/sh", "bin/sleep", "bin/echo"] {
        assert!(applets.iter().any(|a| a == want), "{want} missing from {applets:?}");
    }
    assert!(!applets.iter().any(|a| a == "bin/busybox"));
}

#[test]
fn built_image_plans_blobs_children_first_with_gc_labels() {
    let dir = tempfile::tempdir().unwrap();
    let image = build_busybox_image(&fake_busybox(dir.path()), "busybox", ImageConfig::busybox()).unwrap();
    let plan = plan(&Archive::from_bytes(Bytes::from(image.clone())).unwrap()).unwrap();
    assert_eq!(plan.images.len(), 1);
    let (name, target) = &plan.images[0];
    assert_eq!(name, BUSYBOX_IMAGE);
    assert_eq!(target.media_type, MEDIA_OCI_MANIFEST);
    assert_eq!(plan.blobs.len(), 3);
    let manifest = plan.blobs.last().unwrap();
    assert_eq!(manifest.digest, target.digest);
    assert_eq!(manifest.labels["containerd.io/gc.ref.content.config"], plan.blobs[0].digest);
    assert_eq!(manifest.labels["containerd.io/gc.ref.content.l.0"], plan.blobs[1].digest);
    for b in &plan.blobs {
        assert_eq!(b.blob.sha256().unwrap(), b.digest);
    }

    // The same from a (gzipped) file.
    let path = dir.path().join("busybox.tar.gz");
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&image).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let again = plan_file(&path);
    assert_eq!(again.images[0].1.digest, target.digest);
    let path = dir.path().join("busybox.tar");
    std::fs::write(&path, &image).unwrap();
    let again = plan_file(&path);
    assert_eq!(again.images[0].1.digest, target.digest);
    assert!(matches!(again.blobs[1].blob.backing, Backing::File(_)));
    assert_eq!(again.blobs[1].blob.sha256().unwrap(), again.blobs[1].digest);
}

fn plan_file(path: &Path) -> Plan {
    plan(&Archive::open(path).unwrap()).unwrap()
}

/// A `docker save` style archive: two images, the second's layer a symlink to the first's.
fn docker_archive() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut layer = TarWriter::new();
    layer.file("hello.txt", 0o644, b"hello\n").unwrap();
    let layer = layer.finish().unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": { "Cmd": ["cat", "/hello.txt"] },
        "rootfs": { "type": "layers", "diff_ids": [sha256_digest(&layer)] },
    }))
    .unwrap();
    let config_name = format!("{}.json", sha256_digest(&config).trim_start_matches("sha256:"));
    let manifest = json!([
        { "Config": config_name, "RepoTags": ["hello:1", "example.com/team/hello:1"], "Layers": ["aaa/layer.tar"] },
        { "Config": config_name, "RepoTags": ["hello:2"], "Layers": ["bbb/layer.tar"] },
        { "Config": config_name, "RepoTags": null, "Layers": ["aaa/layer.tar"] },
    ]);
    let mut tar = TarWriter::new();
    tar.file("manifest.json", 0o644, &serde_json::to_vec(&manifest).unwrap()).unwrap();
    tar.file(&config_name, 0o644, &config).unwrap();
    tar.dir("aaa", 0o755).unwrap();
    tar.file("aaa/layer.tar", 0o644, &layer).unwrap();
    tar.dir("bbb", 0o755).unwrap();
    tar.symlink("bbb/layer.tar", "../aaa/layer.tar").unwrap();
    (tar.finish().unwrap(), config, layer)
}

#[test]
fn docker_archives_get_an_oci_manifest() {
    let (archive, config, layer) = docker_archive();
    let plan = plan(&Archive::from_bytes(Bytes::from(archive)).unwrap()).unwrap();
    let names: Vec<&str> = plan.images.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["docker.io/library/hello:1", "example.com/team/hello:1", "docker.io/library/hello:2"]);
    // Config and layer once, one manifest shared by both images (same content).
    assert_eq!(plan.blobs.len(), 3);
    assert_eq!(plan.blobs[0].digest, sha256_digest(&config));
    assert_eq!(plan.blobs[1].digest, sha256_digest(&layer));
    let manifest_blob = &plan.blobs[2];
    assert!(plan.images.iter().all(|(_, d)| d.digest == manifest_blob.digest));
    let manifest: Value = serde_json::from_slice(&manifest_blob.blob.read_all(MAX_JSON).unwrap()).unwrap();
    assert_eq!(sha256_digest(&manifest_blob.blob.read_all(MAX_JSON).unwrap()), manifest_blob.digest);
    assert_eq!(manifest["mediaType"], MEDIA_OCI_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], MEDIA_OCI_CONFIG);
    assert_eq!(manifest["config"]["size"], config.len());
    assert_eq!(manifest["layers"][0]["mediaType"], MEDIA_OCI_LAYER);
    assert_eq!(manifest["layers"][0]["digest"], sha256_digest(&layer));
    assert_eq!(manifest_blob.labels["containerd.io/gc.ref.content.l.0"], sha256_digest(&layer));
    assert_eq!(plan.images[0].1.size, manifest_blob.blob.len as i64);
}

/// The `docker save` form of a built OCI image, under `name`, with an uncompressed layer.
fn as_docker_archive(oci: &[u8], name: &str) -> Vec<u8> {
    let outer = tar_entries(oci);
    let blob = |digest: &Value| {
        outer[&format!("blobs/sha256/{}", digest.as_str().unwrap().trim_start_matches("sha256:"))].2.clone()
    };
    let index: Value = serde_json::from_slice(&outer["index.json"].2).unwrap();
    let manifest: Value = serde_json::from_slice(&blob(&index["manifests"][0]["digest"])).unwrap();
    let config = blob(&manifest["config"]["digest"]);
    let mut layer = Vec::new();
    GzDecoder::new(&blob(&manifest["layers"][0]["digest"])[..]).read_to_end(&mut layer).unwrap();
    let config_name = format!("{}.json", sha256_digest(&config).trim_start_matches("sha256:"));
    let layer_dir = sha256_digest(&layer).trim_start_matches("sha256:").to_string();
    let docker = json!([{ "Config": config_name, "RepoTags": [name], "Layers": [format!("{layer_dir}/layer.tar")] }]);
    let mut tar = TarWriter::new();
    tar.file("manifest.json", 0o644, &serde_json::to_vec(&docker).unwrap()).unwrap();
    tar.file(&config_name, 0o644, &config).unwrap();
    tar.file(&format!("{layer_dir}/layer.tar"), 0o644, &layer).unwrap();
    tar.finish().unwrap()
}

#[test]
fn unusable_tarballs_are_refused() {
    let refused = |tar: Vec<u8>| plan(&Archive::from_bytes(Bytes::from(tar)).unwrap()).map(|_| ()).unwrap_err();
    let mut empty = TarWriter::new();
    empty.file("hello", 0o644, b"x").unwrap();
    assert!(refused(empty.finish().unwrap()).to_string().contains("neither"));

    // An index without names.
    let mut t = TarWriter::new();
    t.file("index.json", 0o644, br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:00","size":2,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}"#).unwrap();
    assert!(refused(t.finish().unwrap()).to_string().contains("names no image"));

    // A named manifest whose blob is missing.
    let mut t = TarWriter::new();
    t.file("index.json", 0o644, br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:00","size":2,"annotations":{"io.containerd.image.name":"x:1"}}]}"#).unwrap();
    assert!(format!("{:#}", refused(t.finish().unwrap())).contains("no blob sha256:00"));

    // A blob whose size disagrees with its descriptor.
    let dir = tempfile::tempdir().unwrap();
    let image = build_busybox_image(&fake_busybox(dir.path()), "x:1", ImageConfig::busybox()).unwrap();
    let mut entries = tar_entries(&image);
    let index = String::from_utf8(entries["index.json"].2.clone()).unwrap();
    let size = serde_json::from_str::<Value>(&index).unwrap()["manifests"][0]["size"].as_u64().unwrap();
    entries.get_mut("index.json").unwrap().2 =
        index.replace(&format!("\"size\":{size}"), &format!("\"size\":{}", size + 1)).into_bytes();
    let mut t = TarWriter::new();
    for (path, (_, mode, data)) in &entries {
        if !path.ends_with('/') {
            t.file(path, *mode, data).unwrap();
        }
    }
    assert!(format!("{:#}", refused(t.finish().unwrap())).contains("descriptor says"));

    assert!(Archive::from_bytes(Bytes::from_static(&[0x1f, 0x8b, 0, 0])).is_err());
}

mod e2e {
    //! The real thing: our own containerd, both built images imported, a pod sandbox on the
    //! pause image and a busybox container that echoes. Needs root, containerd, runc and the
    //! CNI plugins; runs only with `RUDDER_E2E_CONTAINERS=1`.

    use super::*;
    use crate::containerd::{Containerd, Settings};
    use crate::cri::{CriRuntime, Runtime, types as cri};
    use std::time::{Duration, Instant};

    struct Env {
        dir: tempfile::TempDir,
        bridge: String,
    }

    impl Env {
        /// Mount points under our directory, deepest first.
        fn mounts(&self) -> Vec<String> {
            let root = self.dir.path().to_string_lossy().into_owned();
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let mut out: Vec<String> = info
                .lines()
                .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
                .filter(|m| m.starts_with(&root))
                .collect();
            out.sort_by_key(|m| std::cmp::Reverse(m.len()));
            out
        }

        fn cleanup(&self) {
            for m in self.mounts() {
                let _ = std::process::Command::new("umount").args(["-l", &m]).status();
            }
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &self.bridge])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }

    async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = probe().await? {
                return Ok(v);
            }
            ensure!(start.elapsed() < timeout, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn container_state(rt: &CriRuntime, id: &str) -> Result<cri::ContainerStatus> {
        rt.container_status(id).await?.with_context(|| format!("container {id} vanished"))
    }

    async fn wait_exited(rt: &CriRuntime, id: &str) -> Result<cri::ContainerStatus> {
        wait_for("the container to exit", Duration::from_secs(30), || async {
            let s = container_state(rt, id).await?;
            Ok((s.state == cri::ContainerState::ContainerExited as i32).then_some(s))
        })
        .await
    }

    async fn scenario(env: &Env, socket: &Path, rt: &CriRuntime) -> Result<()> {
        let dir = env.dir.path();
        // Import: the pause image from a file (OCI layout), busybox from memory, twice (update).
        let pause_tar = dir.join("pause.tar");
        std::fs::write(&pause_tar, pause_image()?)?;
        let names = import(socket, CRI_NAMESPACE, &pause_tar).await?;
        ensure!(names == [PAUSE_IMAGE], "pause import gave {names:?}");
        let store = ImageStore::connect(socket, CRI_NAMESPACE).await?;
        ensure!(store.ensure(BUSYBOX_IMAGE, busybox_image).await?, "busybox was not imported");
        ensure!(store.import_bytes(busybox_image()?).await? == [BUSYBOX_IMAGE], "re-import failed");
        ensure!(!ensure_image(socket, CRI_NAMESPACE, PAUSE_IMAGE, pause_image).await?, "pause imported twice");
        // A docker archive (uncompressed layer) of the same busybox under another name.
        let docker_tar = dir.join("dockerbox.tar");
        std::fs::write(&docker_tar, as_docker_archive(&busybox_image()?, "dockerbox:1"))?;
        let names = import(socket, CRI_NAMESPACE, &docker_tar).await?;
        ensure!(names == ["docker.io/library/dockerbox:1"], "docker import gave {names:?}");

        // Nothing imported is garbage once the import leases are gone: collect synchronously
        // (by deleting a lease with sync) before anything is unpacked.
        let mut leases = LeasesClient::new(store.channel.clone());
        let create =
            containerd_client::services::v1::CreateRequest { id: "rudder-e2e-gc".into(), labels: HashMap::new() };
        leases.create(store.request(create, None)).await?;
        let delete = containerd_client::services::v1::DeleteRequest { id: "rudder-e2e-gc".into(), sync: true };
        leases.delete(store.request(delete, None)).await?;
        for name in [PAUSE_IMAGE, BUSYBOX_IMAGE, "dockerbox:1"] {
            ensure!(store.get(name).await?.is_some(), "{name} is gone");
        }

        // The CRI plugin sees the images (it learns of them through containerd's events).
        let image = wait_for("busybox in the CRI image store", Duration::from_secs(10), || async {
            rt.image_status("busybox:latest").await
        })
        .await?;
        ensure!(image.repo_tags.contains(&BUSYBOX_IMAGE.to_string()), "busybox tags: {:?}", image.repo_tags);
        ensure!(rt.image_status(PAUSE_IMAGE).await?.is_some(), "the CRI plugin does not see the pause image");

        // A sandbox (runs the pause image) and a busybox container in it.
        let uid = format!("e2e-{:08x}", rand::random::<u32>());
        let logs = dir.join("pods");
        let log_dir = crate::layout::pod_log_dir(&logs, "default", "images-e2e", &uid);
        std::fs::create_dir_all(log_dir.join("hello"))?;
        std::fs::create_dir_all(log_dir.join("pause"))?;
        std::fs::create_dir_all(log_dir.join("docker"))?;
        let sandbox_config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: "images-e2e".into(),
                uid: uid.clone(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: "images-e2e".into(),
            log_directory: log_dir.to_string_lossy().into_owned(),
            labels: HashMap::from([
                (crate::layout::LABEL_POD_NAME.to_string(), "images-e2e".to_string()),
                (crate::layout::LABEL_POD_NAMESPACE.to_string(), "default".to_string()),
                (crate::layout::LABEL_POD_UID.to_string(), uid.clone()),
            ]),
            linux: Some(cri::LinuxPodSandboxConfig::default()),
            ..Default::default()
        };
        let sandbox = rt.run_pod_sandbox(sandbox_config.clone()).await?;
        let container = |name: &str, image: &str, command: Vec<&str>| cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
            command: command.into_iter().map(String::from).collect(),
            log_path: crate::layout::container_log_path(name, 0),
            labels: HashMap::from([(crate::layout::LABEL_CONTAINER_NAME.to_string(), name.to_string())]),
            linux: Some(cri::LinuxContainerConfig::default()),
            ..Default::default()
        };
        let script = "echo hello; stat -c tmp=%a /tmp; id -un; wget --help 2>&1 | head -n 1";
        let hello = rt
            .create_container(
                &sandbox,
                container("hello", "busybox:latest", vec!["sh", "-c", script]),
                sandbox_config.clone(),
            )
            .await?;
        rt.start_container(&hello).await?;
        let status = wait_exited(rt, &hello).await?;
        let log = std::fs::read_to_string(log_dir.join("hello/0.log"))?;
        ensure!(status.exit_code == 0, "hello exited {} ({}); log: {log}", status.exit_code, status.reason);
        for want in ["stdout F hello", "stdout F tmp=1777", "stdout F root", "BusyBox"] {
            ensure!(log.contains(want), "{want:?} missing from the log:\n{log}");
        }

        // The image imported from the docker archive runs too.
        let docker = rt
            .create_container(
                &sandbox,
                container("docker", "dockerbox:1", vec!["echo", "from-docker"]),
                sandbox_config.clone(),
            )
            .await?;
        rt.start_container(&docker).await?;
        let status = wait_exited(rt, &docker).await?;
        let log = std::fs::read_to_string(log_dir.join("docker/0.log"))?;
        ensure!(status.exit_code == 0 && log.contains("stdout F from-docker"), "docker image: {status:?}; log: {log}");

        // The pause image stops quickly and cleanly on SIGTERM.
        let pause = rt.create_container(&sandbox, container("pause", PAUSE_IMAGE, vec![]), sandbox_config).await?;
        rt.start_container(&pause).await?;
        wait_for("pause to run", Duration::from_secs(10), || async {
            let s = container_state(rt, &pause).await?;
            Ok((s.state == cri::ContainerState::ContainerRunning as i32).then_some(()))
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = Instant::now();
        rt.stop_container(&pause, 20).await?;
        let took = start.elapsed();
        let status = wait_exited(rt, &pause).await?;
        ensure!(took < Duration::from_secs(5), "pause took {took:?} to stop on SIGTERM");
        ensure!(status.exit_code == 0, "pause exited {} on SIGTERM", status.exit_code);
        eprintln!("pause stopped on SIGTERM in {took:?}, exit code 0");

        rt.stop_pod_sandbox(&sandbox).await?;
        rt.remove_pod_sandbox(&sandbox).await?;
        ensure!(rt.list_containers().await?.is_empty(), "containers left after removing the sandbox");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn built_images_run_in_containerd() {
        if std::env::var("RUDDER_E2E_CONTAINERS").as_deref() != Ok("1") {
            return;
        }
        let env = Env {
            dir: tempfile::Builder::new().prefix("rud-img-").tempdir_in("/tmp").unwrap(),
            bridge: format!("rudimg{:06x}", rand::random::<u32>() & 0xff_ffff),
        };
        let dir = env.dir.path().to_path_buf();
        let cidr: crate::network::Cidr = format!("10.244.{}.0/24", 100 + rand::random::<u8>() % 100).parse().unwrap();
        let settings = Settings {
            dir: dir.join("containerd"),
            sandbox_image: PAUSE_IMAGE.into(),
            cni_bin_dir: crate::containerd::find_cni_bin_dir().expect("CNI plugins installed"),
            cni_conf_dir: dir.join("net.d"),
        };
        let conflist = crate::network::conflist(&env.bridge, &env.bridge, cidr, &dir.join("ipam"));
        crate::network::write_conflist(&settings.cni_conf_dir, &conflist).unwrap();
        let socket = settings.socket();
        let (mut containerd, rt) = match Containerd::start(settings).await {
            Ok(c) => c,
            Err(e) => {
                env.cleanup();
                panic!("{e:#}");
            }
        };
        let result = scenario(&env, &socket, &rt).await;
        // Whatever happened: remove every sandbox, stop containerd, unmount, drop the bridge.
        if let Ok(sandboxes) = rt.list_pod_sandboxes().await {
            for s in sandboxes {
                let _ = rt.stop_pod_sandbox(&s.id).await;
                let _ = rt.remove_pod_sandbox(&s.id).await;
            }
        }
        containerd.stop().await;
        env.cleanup();
        let log = std::fs::read_to_string(dir.join("containerd/containerd.log")).unwrap_or_default();
        if let Err(e) = result {
            let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("{e:#}\ncontainerd log (tail):\n{}", tail.join("\n"));
        }
        assert!(env.mounts().is_empty(), "mounts left: {:?}", env.mounts());
    }
}
