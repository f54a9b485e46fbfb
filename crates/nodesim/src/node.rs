//! What a simulated node looks like: its Node object, the status a kubelet would report, and its
//! Lease. Pure functions over JSON, no I/O.

use crate::net::PodCidr;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Node annotation that stops a node's heartbeat when set to `stopped`.
pub const HEARTBEAT_ANNOTATION: &str = "rudder.dev/simulate-heartbeat";
/// Label every simulated node carries (and the node watch selects on).
pub const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";
/// Its value.
pub const INSTANCE_TYPE: &str = "simulated";
/// Reported kubelet version.
pub const KUBELET_VERSION: &str = "v1.32.4";
/// Reported container runtime; also the scheme of container IDs.
pub const RUNTIME_VERSION: &str = "rudder-sim://1";
/// The kubelet port reported in `daemonEndpoints` (nothing listens there).
pub const KUBELET_PORT: u16 = 10250;

/// Capacity of each simulated node (allocatable is the same: nothing is reserved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// CPU, e.g. `4`.
    pub cpu: String,
    /// Memory, e.g. `16Gi`.
    pub memory: String,
    /// Maximum pods, e.g. `110`.
    pub pods: String,
    /// Ephemeral storage, e.g. `100Gi`.
    pub ephemeral_storage: String,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity { cpu: "4".into(), memory: "16Gi".into(), pods: "110".into(), ephemeral_storage: "100Gi".into() }
    }
}

/// Who a simulated node is: fixed for the life of the engine.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Node name, `<prefix>-<index>`.
    pub name: String,
    /// Position among the engine's nodes.
    pub index: usize,
    /// Zone label value.
    pub zone: String,
    /// InternalIP.
    pub ip: Ipv4Addr,
    /// Pod CIDR this engine would assign (an existing node's own CIDR wins on take-over).
    pub cidr: PodCidr,
    /// Boot ID of this run (changes on every engine start, as on a reboot).
    pub boot_id: String,
}

/// RFC 3339 with seconds (`metav1.Time`).
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 3339 with microseconds (`metav1.MicroTime`).
pub fn micro_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// FNV-1a over `parts`, seeded, for stable made-up identifiers.
fn fnv(seed: u64, parts: &[&str]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// `words * 16` lowercase hex digits derived from `parts` (stable across runs).
pub fn stable_hex(parts: &[&str], words: u64) -> String {
    (0..words).map(|i| format!("{:016x}", fnv(i + 1, parts))).collect()
}

/// A UUID-shaped identifier from 32 hex digits.
fn uuid_shape(hex: &str) -> String {
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// A fresh random boot ID.
pub fn random_boot_id() -> String {
    let a: u64 = rand::random();
    let b: u64 = rand::random();
    uuid_shape(&format!("{a:016x}{b:016x}"))
}

/// Whether the node's annotations ask for its heartbeat to stop.
pub fn heartbeat_stopped(node: &Value) -> bool {
    node.pointer("/metadata/annotations")
        .and_then(|a| a.get(HEARTBEAT_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("stopped"))
}

/// The labels a kubelet sets on its node, plus the simulated instance type and the zone.
pub fn labels(id: &Identity) -> Value {
    json!({
        "kubernetes.io/hostname": id.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        INSTANCE_TYPE_LABEL: INSTANCE_TYPE,
        "topology.kubernetes.io/zone": id.zone,
    })
}

fn condition_defaults(kind: &str) -> (&'static str, &'static str, &'static str) {
    match kind {
        "MemoryPressure" => ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        "DiskPressure" => ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        "PIDPressure" => ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        _ => ("True", "KubeletReady", "kubelet is posting ready status"),
    }
}

/// The condition types a kubelet owns, in its order.
pub const CONDITION_TYPES: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];

/// The status the node reports at `now`. `observed` is the node's current status (if known):
/// a condition whose status is unchanged keeps its `lastTransitionTime`.
pub fn desired_status(id: &Identity, capacity: &Capacity, observed: Option<&Value>, now: DateTime<Utc>) -> Value {
    let now_text = time(now);
    let conditions: Vec<Value> = CONDITION_TYPES
        .iter()
        .map(|kind| {
            let (status, reason, message) = condition_defaults(kind);
            let previous = observed
                .and_then(|s| s.get("conditions"))
                .and_then(Value::as_array)
                .and_then(|list| list.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(kind)));
            let transition = previous
                .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
                .and_then(|c| c.get("lastTransitionTime"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| now_text.clone());
            json!({
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now_text,
                "lastTransitionTime": transition,
            })
        })
        .collect();
    let resources = json!({
        "cpu": capacity.cpu,
        "memory": capacity.memory,
        "pods": capacity.pods,
        "ephemeral-storage": capacity.ephemeral_storage,
    });
    let machine = stable_hex(&["machine", &id.name], 2);
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": id.ip.to_string()},
            {"type": "Hostname", "address": id.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {
            "machineID": machine,
            "systemUUID": uuid_shape(&stable_hex(&["system", &id.name], 2)),
            "bootID": id.boot_id,
            "kernelVersion": "6.1.0-rudder-sim",
            "osImage": "Rudder simulated node",
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    })
}

/// The parts of a node status that count as a change (heartbeat and transition times do not).
fn essence(status: &Value) -> Value {
    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter(|c| c.get("type").and_then(Value::as_str).is_some_and(|t| CONDITION_TYPES.contains(&t)))
                .map(|c| json!({"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason")}))
                .collect()
        })
        .unwrap_or_default();
    conditions.sort_by(|a, b| a["type"].as_str().cmp(&b["type"].as_str()));
    json!({
        "conditions": conditions,
        "capacity": status.get("capacity"),
        "allocatable": status.get("allocatable"),
        "addresses": status.get("addresses"),
        "nodeInfo": status.get("nodeInfo"),
    })
}

/// Whether `desired` differs from `observed` in anything but heartbeat and transition times.
pub fn status_changed(observed: Option<&Value>, desired: &Value) -> bool {
    match observed {
        None => true,
        Some(o) => essence(o) != essence(desired),
    }
}

/// The parts of a node status that count as a change ([`status_changed`]), typed: what a node
/// reports is computed once, and each status the API shows is compared with it without
/// building the node's status anew.
#[derive(Clone, Debug, PartialEq)]
pub struct Essence {
    /// `(type, status, reason)` of the kubelet's conditions, sorted by type.
    conditions: Vec<(String, String, Option<String>)>,
    capacity: Option<BTreeMap<String, Quantity>>,
    allocatable: Option<BTreeMap<String, Quantity>>,
    addresses: Option<Vec<NodeAddress>>,
    node_info: Option<NodeSystemInfo>,
}

impl Essence {
    /// The essence of `status`.
    pub fn of(status: &NodeStatus) -> Essence {
        let mut conditions: Vec<(String, String, Option<String>)> = status
            .conditions
            .iter()
            .flatten()
            .filter(|c| CONDITION_TYPES.contains(&c.type_.as_str()))
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect();
        conditions.sort_by(|a, b| a.0.cmp(&b.0));
        Essence {
            conditions,
            capacity: status.capacity.clone(),
            allocatable: status.allocatable.clone(),
            addresses: status.addresses.clone(),
            node_info: status.node_info.clone(),
        }
    }

    /// The essence of what node `id` reports ([`desired_status`] at any time).
    pub fn reported(id: &Identity, capacity: &Capacity) -> Essence {
        let status = desired_status(id, capacity, None, DateTime::<Utc>::UNIX_EPOCH);
        let status: NodeStatus = serde_json::from_value(status).expect("the reported status is a NodeStatus");
        Essence::of(&status)
    }
}

/// Whether the node's annotations ask for its heartbeat to stop (typed [`heartbeat_stopped`]).
pub fn heartbeat_stopped_in(annotations: Option<&BTreeMap<String, String>>) -> bool {
    annotations.and_then(|a| a.get(HEARTBEAT_ANNOTATION)).is_some_and(|v| v.eq_ignore_ascii_case("stopped"))
}

/// A new Node object.
pub fn node_object(id: &Identity, capacity: &Capacity, now: DateTime<Utc>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": id.name,
            "labels": labels(id),
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {"podCIDR": id.cidr.to_string(), "podCIDRs": [id.cidr.to_string()]},
        "status": desired_status(id, capacity, None, now),
    })
}

/// The merge patch that takes over an existing node: our labels, and our pod CIDR if it has none.
pub fn takeover_patch(id: &Identity, existing: &Value) -> Value {
    let mut patch = json!({"metadata": {"labels": labels(id)}});
    let has_cidr = existing.pointer("/spec/podCIDR").and_then(Value::as_str).is_some_and(|c| !c.is_empty());
    if !has_cidr {
        patch["spec"] = json!({"podCIDR": id.cidr.to_string(), "podCIDRs": [id.cidr.to_string()]});
    }
    patch
}

/// The node's Lease, held by the node, owned by the Node object (when its uid is known).
pub fn lease_object(name: &str, node_uid: Option<&str>, duration_seconds: i32, now: DateTime<Utc>) -> Value {
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration_seconds, "renewTime": micro_time(now)},
    });
    if let Some(uid) = node_uid {
        lease["metadata"]["ownerReferences"] = owner(name, uid);
    }
    lease
}

/// The merge patch that renews the Lease.
pub fn lease_renewal(name: &str, node_uid: Option<&str>, duration_seconds: i32, now: DateTime<Utc>) -> Value {
    let mut patch = json!({
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration_seconds, "renewTime": micro_time(now)},
    });
    if let Some(uid) = node_uid {
        patch["metadata"] = json!({"ownerReferences": owner(name, uid)});
    }
    patch
}

fn owner(name: &str, uid: &str) -> Value {
    json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            name: "sim-2".into(),
            index: 2,
            zone: "zone-c".into(),
            ip: crate::net::node_ip(2),
            cidr: crate::net::pod_cidr(2).unwrap(),
            boot_id: "b".into(),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn new_node_is_ready_and_complete() {
        let n = node_object(&id(), &Capacity::default(), at("2026-01-02T03:04:05Z"));
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "sim-2");
        assert_eq!(n["metadata"]["labels"]["topology.kubernetes.io/zone"], "zone-c");
        assert_eq!(n["metadata"]["labels"][INSTANCE_TYPE_LABEL], "simulated");
        assert_eq!(n["spec"]["podCIDR"], "10.244.2.0/24");
        assert_eq!(n["spec"]["podCIDRs"][0], "10.244.2.0/24");
        let s = &n["status"];
        assert_eq!(s["capacity"]["cpu"], "4");
        assert_eq!(s["allocatable"]["memory"], "16Gi");
        assert_eq!(s["capacity"]["pods"], "110");
        assert_eq!(s["addresses"][0], json!({"type": "InternalIP", "address": "10.200.0.3"}));
        assert_eq!(s["addresses"][1], json!({"type": "Hostname", "address": "sim-2"}));
        assert_eq!(s["nodeInfo"]["kubeletVersion"], "v1.32.4");
        assert_eq!(s["nodeInfo"]["containerRuntimeVersion"], "rudder-sim://1");
        assert_eq!(s["nodeInfo"]["machineID"].as_str().unwrap().len(), 32);
        assert_eq!(s["nodeInfo"]["systemUUID"].as_str().unwrap().len(), 36);
        let ready = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
        assert_eq!(ready["lastHeartbeatTime"], "2026-01-02T03:04:05Z");
        for kind in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            let c = s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap();
            assert_eq!(c["status"], "False", "{kind}");
        }
    }

    #[test]
    fn heartbeats_keep_transition_times_and_are_not_changes() {
        let first = desired_status(&id(), &Capacity::default(), None, at("2026-01-02T03:04:05Z"));
        let later = desired_status(&id(), &Capacity::default(), Some(&first), at("2026-01-02T03:05:05Z"));
        assert_eq!(later["conditions"][3]["lastTransitionTime"], "2026-01-02T03:04:05Z");
        assert_eq!(later["conditions"][3]["lastHeartbeatTime"], "2026-01-02T03:05:05Z");
        assert!(!status_changed(Some(&first), &later));
        assert!(status_changed(None, &later));
    }

    #[test]
    fn the_typed_essence_agrees_with_status_changed() {
        let reported = Essence::reported(&id(), &Capacity::default());
        let first = desired_status(&id(), &Capacity::default(), None, at("2026-01-02T03:04:05Z"));
        let typed = |v: &Value| Essence::of(&serde_json::from_value::<NodeStatus>(v.clone()).unwrap());
        assert_eq!(typed(&first), reported, "heartbeat and transition times do not count");
        let mut unknown = first.clone();
        unknown["conditions"][3]["status"] = json!("Unknown");
        assert!(status_changed(Some(&unknown), &first));
        assert_ne!(typed(&unknown), reported);
        let mut reordered = first.clone();
        reordered["conditions"].as_array_mut().unwrap().reverse();
        assert!(!status_changed(Some(&reordered), &first));
        assert_eq!(typed(&reordered), reported);
        let mut other_capacity = first.clone();
        other_capacity["capacity"]["cpu"] = json!("8");
        assert!(status_changed(Some(&other_capacity), &first));
        assert_ne!(typed(&other_capacity), reported);
        let mut extra = first.clone();
        extra["conditions"].as_array_mut().unwrap().push(json!({"type": "Ready", "status": "True"}));
        assert!(status_changed(Some(&extra), &first));
        assert_ne!(typed(&extra), reported);
        let mut foreign = first.clone();
        foreign["conditions"].as_array_mut().unwrap().push(json!({"type": "NetworkUnavailable", "status": "False"}));
        assert!(!status_changed(Some(&foreign), &first));
        assert_eq!(typed(&foreign), reported);
        let mut other_boot = first;
        other_boot["nodeInfo"]["bootID"] = json!("another");
        assert_ne!(typed(&other_boot), reported);
        assert!(heartbeat_stopped_in(Some(&BTreeMap::from([(HEARTBEAT_ANNOTATION.into(), "Stopped".into())]))));
        assert!(!heartbeat_stopped_in(None));
    }

    #[test]
    fn a_controller_marking_the_node_unknown_is_a_change() {
        let mut observed = desired_status(&id(), &Capacity::default(), None, at("2026-01-02T03:04:05Z"));
        observed["conditions"][3]["status"] = json!("Unknown");
        observed["conditions"][3]["reason"] = json!("NodeStatusUnknown");
        let desired = desired_status(&id(), &Capacity::default(), Some(&observed), at("2026-01-02T03:09:05Z"));
        assert!(status_changed(Some(&observed), &desired));
        assert_eq!(desired["conditions"][3]["status"], "True");
        assert_eq!(desired["conditions"][3]["lastTransitionTime"], "2026-01-02T03:09:05Z", "a new transition");
    }

    #[test]
    fn takeover_keeps_an_existing_cidr() {
        let existing = json!({"spec": {"podCIDR": "10.99.0.0/24"}});
        let p = takeover_patch(&id(), &existing);
        assert!(p.get("spec").is_none());
        assert_eq!(p["metadata"]["labels"]["kubernetes.io/os"], "linux");
        let p = takeover_patch(&id(), &json!({"spec": {}}));
        assert_eq!(p["spec"]["podCIDR"], "10.244.2.0/24");
    }

    #[test]
    fn leases_are_held_and_owned_by_the_node() {
        let l = lease_object("sim-2", Some("u-1"), 40, at("2026-01-02T03:04:05.25Z"));
        assert_eq!(l["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(l["spec"]["holderIdentity"], "sim-2");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(l["spec"]["renewTime"], "2026-01-02T03:04:05.250000Z");
        assert_eq!(l["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(l["metadata"]["ownerReferences"][0]["uid"], "u-1");
        let r = lease_renewal("sim-2", None, 40, at("2026-01-02T03:04:05Z"));
        assert!(r.get("metadata").is_none());
        assert_eq!(r["spec"]["renewTime"], "2026-01-02T03:04:05.000000Z");
    }

    #[test]
    fn the_stop_annotation_is_read() {
        assert!(heartbeat_stopped(&json!({"metadata": {"annotations": {HEARTBEAT_ANNOTATION: "stopped"}}})));
        assert!(!heartbeat_stopped(&json!({"metadata": {"annotations": {HEARTBEAT_ANNOTATION: "running"}}})));
        assert!(!heartbeat_stopped(&json!({"metadata": {}})));
    }

    #[test]
    fn stable_ids_are_stable_and_distinct() {
        assert_eq!(stable_hex(&["a", "b"], 4), stable_hex(&["a", "b"], 4));
        assert_ne!(stable_hex(&["a", "b"], 4), stable_hex(&["ab"], 4));
        assert_eq!(stable_hex(&["x"], 4).len(), 64);
        assert_eq!(random_boot_id().len(), 36);
    }
}
