//! From a pod spec to the CRI configs of its sandbox and containers: metadata and labels,
//! namespaces, host ports, the cgroup parent of its QoS class, and container resources as
//! upstream's kubelet maps them (cpu shares from requests, CFS quota from limits, memory limit).

use crate::cri::types as cri;
use crate::layout;
use k8s_openapi::api::core::v1::{Container, Pod};
use rudder_scheduler::quantity;
use std::collections::HashMap;
use std::path::Path;

/// CFS period the kubelet uses (100 ms).
pub const CPU_PERIOD: i64 = 100_000;
/// Fewest cpu shares the kernel accepts.
const MIN_SHARES: i64 = 2;

fn meta(pod: &Pod) -> (&str, &str, &str) {
    let m = &pod.metadata;
    (
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or("default"),
        m.uid.as_deref().unwrap_or_default(),
    )
}

/// The pod's QoS class as the API server stored it (computed at creation).
pub fn qos_class(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.qos_class.as_deref()).unwrap_or("BestEffort")
}

/// The pod's cgroup parent under `root`, per QoS class as upstream lays it out:
/// `<root>/pod<uid>` for Guaranteed, `<root>/burstable/pod<uid>`, `<root>/besteffort/pod<uid>`.
pub fn cgroup_parent(root: &str, pod: &Pod) -> String {
    let (_, _, uid) = meta(pod);
    let root = root.trim_end_matches('/');
    match qos_class(pod) {
        "Guaranteed" => format!("{root}/pod{uid}"),
        "Burstable" => format!("{root}/burstable/pod{uid}"),
        _ => format!("{root}/besteffort/pod{uid}"),
    }
}

fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

fn namespace_options(pod: &Pod) -> cri::NamespaceOption {
    let spec = pod.spec.as_ref();
    let node_or = |flag: Option<bool>, otherwise: cri::NamespaceMode| {
        if flag.unwrap_or(false) { cri::NamespaceMode::Node as i32 } else { otherwise as i32 }
    };
    let shared = spec.and_then(|s| s.share_process_namespace).unwrap_or(false);
    cri::NamespaceOption {
        network: node_or(spec.and_then(|s| s.host_network), cri::NamespaceMode::Pod),
        pid: node_or(
            spec.and_then(|s| s.host_pid),
            if shared { cri::NamespaceMode::Pod } else { cri::NamespaceMode::Container },
        ),
        ipc: node_or(spec.and_then(|s| s.host_ipc), cri::NamespaceMode::Pod),
        ..Default::default()
    }
}

/// Labels the kubelet puts on the sandbox: the pod's own plus the identifying ones.
fn sandbox_labels(pod: &Pod) -> HashMap<String, String> {
    let (name, ns, uid) = meta(pod);
    let mut labels: HashMap<String, String> = pod.metadata.labels.clone().unwrap_or_default().into_iter().collect();
    labels.insert(layout::LABEL_POD_NAME.into(), name.into());
    labels.insert(layout::LABEL_POD_NAMESPACE.into(), ns.into());
    labels.insert(layout::LABEL_POD_UID.into(), uid.into());
    labels
}

/// The sandbox config for a pod.
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    log_dir: &Path,
    cgroup_root: &str,
    dns: Option<cri::DnsConfig>,
) -> cri::PodSandboxConfig {
    let (name, ns, uid) = meta(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    // A host-network sandbox must not get a UTS namespace of its own, so no hostname.
    let hostname = if host_network(pod) {
        String::new()
    } else {
        let base = spec.hostname.clone().unwrap_or_else(|| name.to_string());
        base.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string()
    };
    let mut port_mappings = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.filter(|h| *h > 0) else { continue };
            let protocol = match p.protocol.as_deref() {
                Some("UDP") => cri::Protocol::Udp,
                Some("SCTP") => cri::Protocol::Sctp,
                _ => cri::Protocol::Tcp,
            };
            port_mappings.push(cri::PortMapping {
                protocol: protocol as i32,
                container_port: p.container_port,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let sysctls = spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.as_ref())
        .map(|l| l.iter().map(|s| (s.name.clone(), s.value.clone())).collect())
        .unwrap_or_default();
    let psc = spec.security_context.as_ref();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata { name: name.into(), uid: uid.into(), namespace: ns.into(), attempt }),
        hostname,
        log_directory: log_dir.display().to_string(),
        dns_config: dns,
        port_mappings,
        labels: sandbox_labels(pod),
        annotations: pod.metadata.annotations.clone().unwrap_or_default().into_iter().collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(cgroup_root, pod),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: psc.and_then(|s| s.run_as_user).map(|value| cri::Int64Value { value }),
                run_as_group: psc.and_then(|s| s.run_as_group).map(|value| cri::Int64Value { value }),
                supplemental_groups: psc.and_then(|s| s.supplemental_groups.clone()).unwrap_or_default(),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        windows: None,
    }
}

/// Linux resources of a container: shares from the cpu request (or limit when no request),
/// quota from the cpu limit, memory limit from the memory limit.
pub fn resources(container: &Container) -> cri::LinuxContainerResources {
    let res = container.resources.as_ref();
    let get = |which: fn(
        &k8s_openapi::api::core::v1::ResourceRequirements,
    ) -> Option<
        &std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               name: &str| { res.and_then(which).and_then(|m| m.get(name)) };
    let cpu_limit = get(|r| r.limits.as_ref(), "cpu").map(quantity::milli_value);
    let cpu_request = get(|r| r.requests.as_ref(), "cpu").map(quantity::milli_value).or(cpu_limit);
    let memory_limit = get(|r| r.limits.as_ref(), "memory").map(quantity::value);
    let shares = cpu_request.map(|m| (m * 1024 / 1000).max(MIN_SHARES)).unwrap_or(MIN_SHARES);
    let mut out = cri::LinuxContainerResources { cpu_shares: shares, ..Default::default() };
    if let Some(limit) = cpu_limit.filter(|m| *m > 0) {
        out.cpu_period = CPU_PERIOD;
        // At least 1 ms of every period, as the kernel requires.
        out.cpu_quota = (limit * CPU_PERIOD / 1000).max(1000);
    }
    if let Some(bytes) = memory_limit.filter(|b| *b > 0) {
        out.memory_limit_in_bytes = bytes;
    }
    out
}

fn security_context(pod: &Pod, container: &Container) -> cri::LinuxContainerSecurityContext {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let run_as_user = sc.and_then(|s| s.run_as_user).or(psc.and_then(|s| s.run_as_user));
    let run_as_group = sc.and_then(|s| s.run_as_group).or(psc.and_then(|s| s.run_as_group));
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    cri::LinuxContainerSecurityContext {
        capabilities: caps.map(|c| cri::Capability {
            add_capabilities: c.add.clone().unwrap_or_default(),
            drop_capabilities: c.drop.clone().unwrap_or_default(),
            add_ambient_capabilities: Vec::new(),
        }),
        privileged,
        namespace_options: Some(namespace_options(pod)),
        run_as_user: run_as_user.map(|value| cri::Int64Value { value }),
        run_as_group: run_as_group.map(|value| cri::Int64Value { value }),
        readonly_rootfs: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        supplemental_groups: psc.and_then(|s| s.supplemental_groups.clone()).unwrap_or_default(),
        no_new_privs: sc.and_then(|s| s.allow_privilege_escalation).map(|a| !a).unwrap_or(false),
        // The runtime's defaults apply (masked /proc paths etc.) unless privileged.
        ..Default::default()
    }
}

/// What a container is started with, beyond the spec itself.
pub struct ContainerInputs {
    /// Resolved environment.
    pub env: Vec<(String, String)>,
    /// Mounts of its volumes (and the termination log).
    pub mounts: Vec<cri::Mount>,
    /// Restart count this instance starts as (the CRI attempt).
    pub attempt: u32,
    /// Log path relative to the sandbox's log directory.
    pub log_path: String,
    /// The image reference to run (as pulled).
    pub image: String,
}

/// The container config for one container of a pod.
pub fn container_config(pod: &Pod, container: &Container, inputs: ContainerInputs) -> cri::ContainerConfig {
    let (name, ns, uid) = meta(pod);
    let expand = |v: &Vec<String>| v.iter().map(|s| crate::env::expand(s, &inputs.env)).collect::<Vec<_>>();
    let mut labels = HashMap::new();
    labels.insert(layout::LABEL_POD_NAME.to_string(), name.to_string());
    labels.insert(layout::LABEL_POD_NAMESPACE.to_string(), ns.to_string());
    labels.insert(layout::LABEL_POD_UID.to_string(), uid.to_string());
    labels.insert(layout::LABEL_CONTAINER_NAME.to_string(), container.name.clone());
    let mut annotations = HashMap::new();
    annotations.insert(layout::ANNOTATION_RESTART_COUNT.to_string(), inputs.attempt.to_string());
    annotations.insert(
        "io.kubernetes.container.terminationMessagePath".to_string(),
        container.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".into()),
    );
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: container.name.clone(), attempt: inputs.attempt }),
        image: Some(crate::cri::image_spec(&inputs.image)),
        command: container.command.as_ref().map(expand).unwrap_or_default(),
        args: container.args.as_ref().map(expand).unwrap_or_default(),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: inputs.env.iter().map(|(k, v)| cri::KeyValue { key: k.clone(), value: v.clone() }).collect(),
        mounts: inputs.mounts,
        devices: Vec::new(),
        labels,
        annotations,
        log_path: inputs.log_path,
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(resources(container)),
            security_context: Some(security_context(pod, container)),
        }),
        windows: None,
        cdi_devices: Vec::new(),
    }
}

/// The kubelet-managed `/etc/hosts` of a pod (not for host-network pods, which see the
/// node's): localhost entries, the pod's own name (and FQDN with a subdomain) on its IP, then
/// `hostAliases`.
pub fn hosts_file(pod: &Pod, pod_ip: &str, cluster_domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let (name, ns, _) = meta(pod);
    let hostname = spec.hostname.clone().unwrap_or_else(|| name.to_string());
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        Some(sub) => out.push_str(&format!("{pod_ip}\t{hostname}.{sub}.{ns}.svc.{cluster_domain}\t{hostname}\n")),
        None => out.push_str(&format!("{pod_ip}\t{hostname}\n")),
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.unwrap_or_default();
            if !names.is_empty() {
                out.push_str(&format!("{}\t{}\n", a.ip, names.join("\t")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hosts_files_name_the_pod_and_its_aliases() {
        let p = pod(json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {"containers": [],
            "hostAliases": [{"ip": "192.0.2.9", "hostnames": ["a.example", "b"]}]}}));
        let h = hosts_file(&p, "10.42.0.7", "cluster.local");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.42.0.7\tweb\n"));
        assert!(h.contains("# Entries added by HostAliases.\n192.0.2.9\ta.example\tb\n"));
        let p = pod(json!({"metadata": {"name": "db-0", "namespace": "ns"}, "spec": {"containers": [],
            "hostname": "db-0", "subdomain": "db"}}));
        assert!(
            hosts_file(&p, "10.42.0.8", "cluster.local").contains("10.42.0.8\tdb-0.db.ns.svc.cluster.local\tdb-0\n")
        );
    }

    #[test]
    fn cgroup_parent_follows_the_qos_class() {
        let p = pod(json!({"metadata": {"name": "a", "uid": "u1"}, "status": {"qosClass": "Burstable"}}));
        assert_eq!(cgroup_parent("/kubepods", &p), "/kubepods/burstable/podu1");
        let p = pod(json!({"metadata": {"name": "a", "uid": "u1"}, "status": {"qosClass": "Guaranteed"}}));
        assert_eq!(cgroup_parent("/kubepods/", &p), "/kubepods/podu1");
    }

    #[test]
    fn resources_map_like_upstream() {
        let c: Container = serde_json::from_value(json!({
            "name": "c",
            "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}
        }))
        .unwrap();
        let r = resources(&c);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        let none: Container = serde_json::from_value(json!({"name": "c"})).unwrap();
        let r = resources(&none);
        assert_eq!((r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes), (2, 0, 0));
    }

    #[test]
    fn sandbox_gets_host_ports_and_no_hostname_on_the_host_network() {
        let p = pod(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u", "labels": {"app": "w"}},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]}]}
        }));
        let s = sandbox_config(&p, 0, Path::new("/logs/ns_web_u"), "/kubepods", None);
        assert_eq!(s.hostname, "web");
        assert_eq!(s.port_mappings.len(), 1);
        assert_eq!(s.port_mappings[0].host_port, 8080);
        assert_eq!(s.labels["app"], "w");
        assert_eq!(s.labels[layout::LABEL_POD_UID], "u");
        let p = pod(json!({"metadata": {"name": "h", "uid": "u"}, "spec": {"hostNetwork": true, "containers": []}}));
        let s = sandbox_config(&p, 0, Path::new("/l"), "/kubepods", None);
        assert_eq!(s.hostname, "");
        let ns = s.linux.unwrap().security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Node as i32);
    }
}
