//! Names the kubelet shares with the runtime and with its own HTTP server: the labels it puts on
//! sandboxes and containers (upstream's, so tools that read them keep working) and where
//! container logs live.

use std::path::{Path, PathBuf};

/// Label on sandboxes and containers: the pod's name.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// Label on sandboxes and containers: the pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Label on sandboxes and containers: the pod's UID.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// Label on containers: the container's name in the pod spec.
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Annotation on containers: how many times this container had been restarted when created.
pub const ANNOTATION_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";

/// Directory of one pod's container logs: `<logs>/<namespace>_<name>_<uid>`.
pub fn pod_log_dir(logs_root: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    logs_root.join(format!("{namespace}_{name}_{uid}"))
}

/// A container's log file relative to its pod's log dir: `<container>/<restartCount>.log`.
pub fn container_log_path(container: &str, restart_count: u32) -> String {
    format!("{container}/{restart_count}.log")
}
