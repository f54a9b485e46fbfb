//! The kubelet's own Node: what the machine offers (capacity, addresses, system info), the
//! object it registers, the status it reports every heartbeat and its Lease in
//! `kube-node-lease`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::Path;

/// Namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Reported kubelet version (the API version this node agent implements).
pub const KUBELET_VERSION: &str = "v1.32.4";
/// Maximum pods per node, as upstream's default.
pub const MAX_PODS: u32 = 110;

/// Facts about the machine, read once at start.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: u32,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// Size of the filesystem holding the node's data, in bytes.
    pub ephemeral_storage_bytes: u64,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// PRETTY_NAME of `/etc/os-release`.
    pub os_image: String,
    /// GOARCH-style architecture (`amd64`, `arm64`).
    pub architecture: String,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// GOARCH name of the architecture this binary runs on.
pub fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

impl Machine {
    /// Reads the machine's facts; `data_dir` is measured for ephemeral storage.
    pub fn probe(data_dir: &Path) -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let os_image = os_release
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        let ephemeral_storage_bytes =
            rustix::fs::statvfs(data_dir).map(|s| s.f_blocks.saturating_mul(s.f_frsize)).unwrap_or(0);
        Machine {
            cpus: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
            memory_bytes: memory_kib * 1024,
            ephemeral_storage_bytes,
            machine_id: read_trim("/etc/machine-id"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            os_image,
            architecture: goarch().to_string(),
        }
    }

    /// `capacity` of the Node; allocatable is the same (nothing is reserved for the system).
    pub fn capacity(&self) -> Value {
        json!({
            "cpu": self.cpus.to_string(),
            "memory": format!("{}Ki", self.memory_bytes / 1024),
            "pods": MAX_PODS.to_string(),
            "ephemeral-storage": format!("{}Ki", self.ephemeral_storage_bytes / 1024),
        })
    }
}

/// Who this node is and where its kubelet can be reached.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Node name (the hostname by default).
    pub name: String,
    /// The address reported as InternalIP.
    pub ip: IpAddr,
    /// The port of the kubelet's HTTPS server.
    pub kubelet_port: u16,
    /// Extra labels given on the command line.
    pub labels: Vec<(String, String)>,
    /// Pod CIDR this node uses; `None` until the node IPAM controller gives one.
    pub pod_cidr: Option<String>,
}

/// RFC 3339 with seconds (`metav1.Time`).
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 3339 with microseconds (`metav1.MicroTime`).
pub fn micro_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The Node object registered at start.
pub fn registration(id: &Identity, machine: &Machine) -> Value {
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("kubernetes.io/hostname", id.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", machine.architecture.as_str()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", machine.architecture.as_str()),
    ] {
        labels.insert(k.into(), json!(v));
    }
    for (k, v) in &id.labels {
        labels.insert(k.clone(), json!(v));
    }
    let spec = match &id.pod_cidr {
        Some(cidr) => json!({ "podCIDR": cidr, "podCIDRs": [cidr] }),
        None => json!({}),
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": id.name,
            "labels": labels,
            "annotations": { "node.alpha.kubernetes.io/ttl": "0" },
        },
        "spec": spec,
    })
}

/// Images for the node status: names and sizes, at most 50 as upstream.
pub fn images(list: &[crate::cri::types::Image]) -> Value {
    let mut out: Vec<&crate::cri::types::Image> = list.iter().filter(|i| !i.repo_tags.is_empty()).collect();
    out.sort_by_key(|i| std::cmp::Reverse(i.size));
    Value::Array(
        out.into_iter()
            .take(50)
            .map(|i| {
                let mut names: Vec<String> = i.repo_digests.clone();
                names.extend(i.repo_tags.iter().cloned());
                json!({ "names": names, "sizeBytes": i.size })
            })
            .collect(),
    )
}

/// The node's status: conditions (keeping transition times that did not change), addresses,
/// capacity, system info, endpoints and images.
pub fn status(
    id: &Identity,
    machine: &Machine,
    runtime_version: &str,
    images: Value,
    previous: Option<&Value>,
    now: DateTime<Utc>,
    runtime_ready: Result<(), String>,
) -> Value {
    let old = |t: &str| -> Option<&Value> {
        previous?.get("conditions")?.as_array()?.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(t))
    };
    let condition = |t: &str, status: &str, reason: &str, message: &str| {
        let since = old(t)
            .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(time(now)));
        json!({
            "type": t, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": time(now), "lastTransitionTime": since,
        })
    };
    let ready = match &runtime_ready {
        Ok(()) => condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        Err(why) => condition("Ready", "False", "KubeletNotReady", &format!("container runtime is down: {why}")),
    };
    json!({
        "capacity": machine.capacity(),
        "allocatable": machine.capacity(),
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ready,
        ],
        "addresses": [
            { "type": "InternalIP", "address": id.ip.to_string() },
            { "type": "Hostname", "address": id.name },
        ],
        "daemonEndpoints": { "kubeletEndpoint": { "Port": id.kubelet_port } },
        "nodeInfo": {
            "machineID": machine.machine_id,
            "systemUUID": machine.machine_id,
            "bootID": machine.boot_id,
            "kernelVersion": machine.kernel_version,
            "osImage": machine.os_image,
            "containerRuntimeVersion": runtime_version,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": machine.architecture,
        },
        "images": images,
    })
}

/// The node's Lease, renewed every heartbeat.
pub fn lease(name: &str, node_uid: Option<&str>, now: DateTime<Utc>, duration_seconds: i64) -> Value {
    let mut metadata = json!({ "name": name, "namespace": LEASE_NAMESPACE });
    if let Some(uid) = node_uid {
        metadata["ownerReferences"] = json!([{
            "apiVersion": "v1", "kind": "Node", "name": name, "uid": uid,
        }]);
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": micro_time(now),
        },
    })
}

/// The first non-loopback IPv4 address of the interface carrying the default route.
pub fn default_ip() -> Option<IpAddr> {
    // The first IPv4 address of the interface that carries the default route.
    let uplink = crate::network::uplinks().into_iter().next()?;
    let out = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "dev", &uplink]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
}

/// The machine's hostname, lowercased (node names are DNS subdomains).
pub fn hostname() -> String {
    read_trim("/proc/sys/kernel/hostname").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            memory_bytes: 4 << 30,
            ephemeral_storage_bytes: 100 << 30,
            machine_id: "m".into(),
            boot_id: "b".into(),
            kernel_version: "6.1".into(),
            os_image: "Debian".into(),
            architecture: "amd64".into(),
        }
    }

    fn id() -> Identity {
        Identity {
            name: "n1".into(),
            ip: "192.0.2.5".parse().unwrap(),
            kubelet_port: 10250,
            labels: vec![("role".into(), "x".into())],
            pod_cidr: Some("10.42.0.0/24".into()),
        }
    }

    #[test]
    fn registration_has_the_well_known_labels() {
        let n = registration(&id(), &machine());
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
        assert_eq!(n["metadata"]["labels"]["role"], "x");
        assert_eq!(n["spec"]["podCIDR"], "10.42.0.0/24");
    }

    #[test]
    fn status_keeps_transition_times_while_unchanged() {
        let t0 = "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let t1 = t0 + chrono::Duration::seconds(10);
        let s0 = status(&id(), &machine(), "containerd://1.6.20", json!([]), None, t0, Ok(()));
        assert_eq!(s0["capacity"]["memory"], "4194304Ki");
        assert_eq!(s0["capacity"]["pods"], "110");
        assert_eq!(s0["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        let s1 = status(&id(), &machine(), "containerd://1.6.20", json!([]), Some(&s0), t1, Ok(()));
        let ready = s1["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["lastTransitionTime"], "2026-01-01T00:00:00Z");
        assert_eq!(ready["lastHeartbeatTime"], "2026-01-01T00:00:10Z");
        let s2 = status(&id(), &machine(), "containerd://1.6.20", json!([]), Some(&s1), t1, Err("down".into()));
        let ready = s2["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["lastTransitionTime"], "2026-01-01T00:00:10Z");
    }
}
