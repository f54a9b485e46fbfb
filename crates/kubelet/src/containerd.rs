//! containerd as a managed child process: the kubelet writes its config (CRI plugin with runc
//! and the cgroupfs driver, `restrict_oom_score_adj`, the CNI directories, the sandbox image,
//! every path under the node's own directory so several nodes can share a machine), starts it,
//! waits for its CRI socket and stops it on shutdown.

use crate::cri::{CriRuntime, Runtime};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Where the CNI plugin binaries are looked for, first match wins.
pub const CNI_BIN_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"];

/// What a managed containerd needs to know.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Directory holding everything of this containerd (root, state, socket, config, logs).
    pub dir: PathBuf,
    /// Image the CRI plugin runs as each pod's sandbox.
    pub sandbox_image: String,
    /// Directory of CNI plugin binaries.
    pub cni_bin_dir: PathBuf,
    /// Directory the CRI plugin reads CNI network configs from.
    pub cni_conf_dir: PathBuf,
}

impl Settings {
    /// The gRPC socket containerd serves CRI on.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// containerd's `config.toml` for these settings.
    pub fn config_toml(&self) -> String {
        let d = |p: &Path| toml_string(&p.display().to_string());
        let dir = &self.dir;
        format!(
            r#"version = 2
root = {root}
state = {state}
oom_score = 0

[grpc]
  address = {socket}

[ttrpc]
  address = {ttrpc}

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox}
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
    max_conf_num = 1
"#,
            root = d(&dir.join("root")),
            state = d(&dir.join("state")),
            socket = d(&self.socket()),
            ttrpc = d(&dir.join("containerd.sock.ttrpc")),
            opt = d(&dir.join("opt")),
            sandbox = toml_string(&self.sandbox_image),
            cni_bin = d(&self.cni_bin_dir),
            cni_conf = d(&self.cni_conf_dir),
        )
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The first directory of [`CNI_BIN_DIRS`] that holds the bridge plugin.
pub fn find_cni_bin_dir() -> Option<PathBuf> {
    CNI_BIN_DIRS.iter().map(PathBuf::from).find(|d| d.join("bridge").is_file())
}

/// Looks for `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Checks that everything a node needs is installed and says what to install when not.
pub fn check_prerequisites() -> Result<PathBuf> {
    let mut missing = Vec::new();
    if which("containerd").is_none() {
        missing.push("containerd");
    }
    if which("containerd-shim-runc-v2").is_none() && which("containerd").is_some() {
        missing.push("containerd (containerd-shim-runc-v2)");
    }
    if which("runc").is_none() {
        missing.push("runc");
    }
    let cni = find_cni_bin_dir();
    if cni.is_none() {
        missing.push("containernetworking-plugins");
    }
    if which("iptables").is_none() {
        missing.push("iptables (used by the CNI portmap plugin)");
    }
    if !missing.is_empty() {
        bail!(
            "the node agent needs {} installed; on Debian or Ubuntu run: \
             apt-get install -y containerd runc containernetworking-plugins iptables nftables \
             (or start the server with --disable-agent to run the control plane only)",
            missing.join(", ")
        );
    }
    Ok(cni.expect("checked above"))
}

/// A running containerd this process started.
pub struct Containerd {
    settings: Settings,
    child: tokio::process::Child,
}

impl Containerd {
    /// Writes the config and starts containerd; returns once its CRI answers.
    pub async fn start(settings: Settings) -> Result<(Containerd, CriRuntime)> {
        std::fs::create_dir_all(&settings.dir).with_context(|| format!("cannot create {}", settings.dir.display()))?;
        std::fs::create_dir_all(&settings.cni_conf_dir)?;
        let config = settings.dir.join("config.toml");
        std::fs::write(&config, settings.config_toml())?;
        let socket = settings.socket();
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::File::create(settings.dir.join("containerd.log"))?;
        let child = tokio::process::Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start containerd (apt-get install -y containerd runc)")?;
        let mut me = Containerd { settings, child };
        let started = Instant::now();
        loop {
            if let Some(status) = me.child.try_wait()? {
                bail!(
                    "containerd exited at start ({status}); see {}",
                    me.settings.dir.join("containerd.log").display()
                );
            }
            if socket.exists()
                && let Ok(runtime) = CriRuntime::connect(&socket).await
                && runtime.version().await.is_ok()
            {
                return Ok((me, runtime));
            }
            if started.elapsed() > Duration::from_secs(30) {
                me.stop().await;
                bail!(
                    "containerd did not answer on {} within 30 s; see {}",
                    socket.display(),
                    me.settings.dir.join("containerd.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Stops containerd: SIGTERM, then SIGKILL after 5 s. Containers keep running in their
    /// shims, as with a restart of a system containerd.
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_every_path_under_the_node_dir() {
        let s = Settings {
            dir: PathBuf::from("/var/lib/rudder/agent/containerd"),
            sandbox_image: "docker.io/rudder/pause:1".into(),
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            cni_conf_dir: PathBuf::from("/var/lib/rudder/agent/cni/net.d"),
        };
        let toml = s.config_toml();
        assert!(toml.contains(r#"address = "/var/lib/rudder/agent/containerd/containerd.sock""#));
        assert!(toml.contains(r#"root = "/var/lib/rudder/agent/containerd/root""#));
        assert!(toml.contains("restrict_oom_score_adj = true"));
        assert!(toml.contains("SystemdCgroup = false"));
        assert!(toml.contains(r#"sandbox_image = "docker.io/rudder/pause:1""#));
        assert!(toml.contains(r#"conf_dir = "/var/lib/rudder/agent/cni/net.d""#));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
