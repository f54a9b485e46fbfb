//! Printers of the core group: pods, services, nodes, namespaces, config and storage objects,
//! events.

use super::format::{
    access_modes, age, at, containers, count, int, labels, list, load_balancer_points, map, name, scalar_text, since,
    text, text_or, time,
};
use super::{AGE, CONTAINERS, Column, IMAGES, NAME, Printer, Row};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The printer of a core kind (and of `events.k8s.io` events, which are stored, and printed,
/// as core events).
pub fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    if group == "events.k8s.io" && kind == "Event" {
        return Some(&EVENT);
    }
    if !group.is_empty() {
        return None;
    }
    Some(match kind {
        "Pod" => &POD,
        "PodTemplate" => &POD_TEMPLATE,
        "ReplicationController" => &REPLICATION_CONTROLLER,
        "Service" => &SERVICE,
        "Endpoints" => &ENDPOINTS,
        "Node" => &NODE,
        "Event" => &EVENT,
        "Namespace" => &NAMESPACE,
        "Secret" => &SECRET,
        "ConfigMap" => &CONFIG_MAP,
        "ServiceAccount" => &SERVICE_ACCOUNT,
        "PersistentVolume" => &PERSISTENT_VOLUME,
        "PersistentVolumeClaim" => &PERSISTENT_VOLUME_CLAIM,
        "ResourceQuota" => &RESOURCE_QUOTA,
        "ComponentStatus" => &COMPONENT_STATUS,
        _ => return None,
    })
}

fn none_if_empty(s: &str) -> String {
    if s.is_empty() { "<none>".to_string() } else { s.to_string() }
}

// ---------------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------------

/// Pod columns.
pub static POD: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Ready", "string", "Ready containers out of all containers of the pod."),
        Column::new("Status", "string", "A one-word summary of the pod's state, from its phase and its containers."),
        Column::new("Restarts", "string", "Container restarts so far, and how long ago the last one was."),
        AGE,
        Column::wide("IP", "string", "The pod's first IP address."),
        Column::wide("Node", "string", "The node the pod is bound to."),
        Column::wide("Nominated Node", "string", "The node the scheduler nominated while preempting for the pod."),
        Column::wide("Readiness Gates", "string", "Readiness gates that are met, out of all the pod declares."),
    ],
    row: pod,
};

fn condition_true(conditions: &[Value], kind: &str) -> bool {
    conditions.iter().any(|c| text(c, "/type") == kind && text(c, "/status") == "True")
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn finished_at(status: &Value) -> Option<DateTime<Utc>> {
    time(at(status, "/lastState/terminated/finishedAt"))
}

/// A terminated container's summary when it gives no reason: the signal, else the exit code.
fn exit_text(terminated: &Value) -> String {
    match int(terminated, "/signal") {
        0 => format!("ExitCode:{}", int(terminated, "/exitCode")),
        sig => format!("Signal:{sig}"),
    }
}

/// Upstream's `printPod`: the STATUS summary walks init containers first (the first one not
/// done decides), then regular containers from the last to the first; deletion turns it into
/// `Terminating`.
fn pod(p: &Value, now: DateTime<Utc>) -> Row {
    let init_specs = list(p, "/spec/initContainers");
    let is_sidecar =
        |name: &str| init_specs.iter().any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always");
    let mut total = list(p, "/spec/containers").len();
    total += init_specs.iter().filter(|c| text(c, "/restartPolicy") == "Always").count();
    let phase = text(p, "/status/phase");
    let mut reason = text_or(p, "/status/reason", phase).to_string();
    let conditions = list(p, "/status/conditions");
    if conditions.iter().any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated") {
        reason = "SchedulingGated".to_string();
    }

    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;
    let mut initializing = false;
    for (i, c) in list(p, "/status/initContainerStatuses").iter().enumerate() {
        let count = int(c, "/restartCount");
        restarts += count;
        last_restart = later(last_restart, finished_at(c));
        let sidecar = is_sidecar(text(c, "/name"));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, finished_at(c));
        }
        let terminated = at(c, "/state/terminated");
        let waiting_reason = text(c, "/state/waiting/reason");
        if terminated.is_object() && int(terminated, "/exitCode") == 0 {
            continue;
        }
        if sidecar && at(c, "/started").as_bool() == Some(true) {
            if at(c, "/ready").as_bool() == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if terminated.is_object() {
            match text(terminated, "/reason") {
                "" => format!("Init:{}", exit_text(terminated)),
                r => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in list(p, "/status/containerStatuses").iter().rev() {
            restarts += int(c, "/restartCount");
            last_restart = later(last_restart, finished_at(c));
            let terminated = at(c, "/state/terminated");
            let waiting_reason = text(c, "/state/waiting/reason");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if terminated.is_object() {
                reason = match text(terminated, "/reason") {
                    "" => exit_text(terminated),
                    r => r.to_string(),
                };
            } else if at(c, "/ready").as_bool() == Some(true) && at(c, "/state/running").is_object() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose other containers finished but one still runs is not "Completed".
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") { "Running" } else { "NotReady" }.to_string();
        }
    }

    let deleting = !at(p, "/metadata/deletionTimestamp").is_null();
    if deleting && text(p, "/status/reason") == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    let ip = list(p, "/status/podIPs").first().map(|a| text(a, "/ip")).unwrap_or("");
    let gates = list(p, "/spec/readinessGates");
    let gates_text = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| {
                let kind = text(g, "/conditionType");
                conditions.iter().find(|c| text(c, "/type") == kind).is_some_and(|c| text(c, "/status") == "True")
            })
            .count();
        format!("{met}/{}", gates.len())
    };
    let completed = match phase {
        "Succeeded" => Some(json!([{
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }])),
        "Failed" => {
            Some(json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]))
        }
        _ => None,
    };
    Row {
        cells: vec![
            name(p),
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts_text),
            json!(age(p, now)),
            json!(none_if_empty(ip)),
            json!(none_if_empty(text(p, "/spec/nodeName"))),
            json!(none_if_empty(text(p, "/status/nominatedNodeName"))),
            json!(gates_text),
        ],
        conditions: completed,
    }
}

/// Pod template columns (upstream shows no age here).
pub static POD_TEMPLATE: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Containers", "string", "Names of the containers in the template."),
        Column::new("Images", "string", "Images the containers of the template run."),
        Column::new("Pod Labels", "string", "Labels the template gives its pods."),
    ],
    row: |t, _| {
        let (names, images) = containers(list(t, "/template/spec/containers"));
        Row::cells(vec![name(t), json!(names), json!(images), json!(labels(map(t, "/template/metadata/labels")))])
    },
};

/// Replication controller columns.
pub static REPLICATION_CONTROLLER: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Desired", "integer", "Pods the controller should run."),
        Column::new("Current", "integer", "Pods the controller runs now."),
        Column::new("Ready", "integer", "Pods of the controller that are ready."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::wide("Selector", "string", "Labels that select the controller's pods."),
    ],
    row: |rc, now| super::workloads::replicas_row(rc, now, labels(map(rc, "/spec/selector"))),
};

// ---------------------------------------------------------------------------------------
// Services and endpoints
// ---------------------------------------------------------------------------------------

/// Service columns.
pub static SERVICE: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Type", "string", "How the service is exposed: ClusterIP, NodePort, LoadBalancer, ExternalName."),
        Column::new("Cluster-IP", "string", "The service's virtual IP inside the cluster."),
        Column::new("External-IP", "string", "Addresses the service is reachable at from outside the cluster."),
        Column::new("Port(s)", "string", "Ports the service exposes (port[:nodePort]/protocol)."),
        AGE,
        Column::wide("Selector", "string", "Labels that select the pods behind the service."),
    ],
    row: service,
};

fn service(s: &Value, now: DateTime<Utc>) -> Row {
    let kind = text(s, "/spec/type");
    let cluster_ip = list(s, "/spec/clusterIPs").first().and_then(Value::as_str).unwrap_or("<none>");
    let external: Vec<&str> = list(s, "/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    let external_ip = match kind {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            let lb = load_balancer_points(list(s, "/status/loadBalancer/ingress"));
            let mut all: Vec<&str> = lb.split(',').filter(|x| !x.is_empty()).collect();
            all.extend(&external);
            if all.is_empty() { "<pending>".to_string() } else { all.join(",") }
        }
        "ExternalName" => text(s, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = list(s, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = text(p, "/protocol");
            match int(p, "/nodePort") {
                n if n > 0 => format!("{}:{n}/{protocol}", int(p, "/port")),
                _ => format!("{}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    Row::cells(vec![
        name(s),
        json!(kind),
        json!(cluster_ip),
        json!(external_ip),
        json!(none_if_empty(&ports.join(","))),
        json!(age(s, now)),
        json!(labels(map(s, "/spec/selector"))),
    ])
}

/// Endpoints columns.
pub static ENDPOINTS: Printer = Printer {
    columns: &[NAME, Column::new("Endpoints", "string", "Up to three ready addresses (ip:port), then a count."), AGE],
    row: |e, now| Row::cells(vec![name(e), json!(endpoints_text(e)), json!(age(e, now))]),
};

/// Upstream's `formatEndpoints` over all ports: `ip:port` for every address and port, at most
/// three shown.
fn endpoints_text(e: &Value) -> String {
    const MAX: usize = 3;
    let subsets = list(e, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut shown: Vec<String> = Vec::new();
    let mut total = 0usize;
    for ss in subsets {
        let addresses = list(ss, "/addresses");
        let ports = list(ss, "/ports");
        if ports.is_empty() {
            total += addresses.len();
            shown.extend(addresses.iter().map(|a| text(a, "/ip").to_string()).take(MAX.saturating_sub(shown.len())));
            continue;
        }
        for port in ports {
            total += addresses.len();
            for a in addresses {
                if shown.len() == MAX {
                    break;
                }
                let ip = text(a, "/ip");
                let p = int(port, "/port");
                shown.push(if ip.contains(':') { format!("[{ip}]:{p}") } else { format!("{ip}:{p}") });
            }
        }
    }
    let joined = shown.join(",");
    if total > shown.len() && shown.len() == MAX { format!("{joined} + {} more...", total - MAX) } else { joined }
}

// ---------------------------------------------------------------------------------------
// Nodes and namespaces
// ---------------------------------------------------------------------------------------

/// Node columns.
pub static NODE: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Status", "string", "Whether the node is Ready, and SchedulingDisabled when cordoned."),
        Column::new("Roles", "string", "Roles from the node's node-role.kubernetes.io/<role> labels."),
        AGE,
        Column::new("Version", "string", "Version of the node's kubelet."),
        Column::wide("Internal-IP", "string", "The node's first internal address."),
        Column::wide("External-IP", "string", "The node's first external address."),
        Column::wide("OS-Image", "string", "Operating system the node reports."),
        Column::wide("Kernel-Version", "string", "Kernel version the node reports."),
        Column::wide("Container-Runtime", "string", "Container runtime and version the node reports."),
    ],
    row: node,
};

fn node(n: &Value, now: DateTime<Utc>) -> Row {
    let mut status: Vec<String> = Vec::new();
    // Upstream keeps the last condition of each type and looks only at Ready.
    if let Some(c) = list(n, "/status/conditions").iter().rev().find(|c| text(c, "/type") == "Ready") {
        status.push(if text(c, "/status") == "True" { "Ready".into() } else { "NotReady".into() });
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if at(n, "/spec/unschedulable").as_bool() == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<&str> = map(n, "/metadata/labels")
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None if k == "kubernetes.io/role" => v.as_str().filter(|s| !s.is_empty()),
            None => None,
        })
        .collect();
    roles.sort_unstable();
    roles.dedup();
    let address = |kind: &str| {
        list(n, "/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == kind)
            .map(|a| text(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let info = |field: &str| text_or(n, &format!("/status/nodeInfo/{field}"), "<unknown>").to_string();
    Row::cells(vec![
        name(n),
        json!(status.join(",")),
        json!(none_if_empty(&roles.join(","))),
        json!(age(n, now)),
        json!(text(n, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ])
}

/// Namespace columns.
pub static NAMESPACE: Printer = Printer {
    columns: &[NAME, Column::new("Status", "string", "The namespace's phase: Active or Terminating."), AGE],
    row: |ns, now| Row::cells(vec![name(ns), json!(text(ns, "/status/phase")), json!(age(ns, now))]),
};

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

/// Event columns (upstream puts the name last, in the wide view).
pub static EVENT: Printer = Printer {
    columns: &[
        Column::new("Last Seen", "string", "Time since the event was last observed."),
        Column::new("Type", "string", "Normal or Warning."),
        Column::new("Reason", "string", "Short machine-readable cause of the event."),
        Column::new("Object", "string", "The object the event is about (kind/name)."),
        Column::wide("Subobject", "string", "The part of the object the event is about, e.g. a container."),
        Column::wide("Source", "string", "The component (and host) that reported the event."),
        Column::new("Message", "string", "What happened, for humans."),
        Column::wide("First Seen", "string", "Time since the event was first observed."),
        Column::wide("Count", "string", "How many times the event was observed."),
        Column { priority: 1, ..NAME },
    ],
    row: event,
};

fn event(e: &Value, now: DateTime<Utc>) -> Row {
    let first = match time(at(e, "/firstTimestamp")) {
        Some(t) => since(Some(t), now),
        None => since(time(at(e, "/eventTime")), now),
    };
    let mut last = match time(at(e, "/lastTimestamp")) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int(e, "/count");
    if at(e, "/series").is_object() {
        last = since(time(at(e, "/series/lastObservedTime")), now);
        count = int(e, "/series/count");
    } else if count == 0 {
        // Events of the newer API that happened once carry no count.
        count = 1;
    }
    let kind = text(e, "/involvedObject/kind").to_lowercase();
    let target = match text(e, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = text_or(e, "/source/component", text(e, "/reportingComponent"));
    let host = text_or(e, "/source/host", text(e, "/reportingInstance"));
    let source = if host.is_empty() { component.to_string() } else { format!("{component}, {host}") };
    Row::cells(vec![
        json!(last),
        json!(text(e, "/type")),
        json!(text(e, "/reason")),
        json!(target),
        json!(text(e, "/involvedObject/fieldPath")),
        json!(source),
        json!(text(e, "/message").trim()),
        json!(first),
        json!(count),
        name(e),
    ])
}

// ---------------------------------------------------------------------------------------
// Configuration and accounts
// ---------------------------------------------------------------------------------------

/// Secret columns.
pub static SECRET: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Type", "string", "The secret's type, e.g. Opaque or kubernetes.io/tls."),
        Column::new("Data", "string", "Number of entries in the secret."),
        AGE,
    ],
    row: |s, now| {
        Row::cells(vec![name(s), json!(text(s, "/type")), json!(count(s, "/data") as i64), json!(age(s, now))])
    },
};

/// ConfigMap columns.
pub static CONFIG_MAP: Printer = Printer {
    columns: &[NAME, Column::new("Data", "string", "Number of entries (text and binary) in the config map."), AGE],
    row: |cm, now| {
        let entries = count(cm, "/data") + count(cm, "/binaryData");
        Row::cells(vec![name(cm), json!(entries as i64), json!(age(cm, now))])
    },
};

/// ServiceAccount columns.
pub static SERVICE_ACCOUNT: Printer = Printer {
    columns: &[NAME, Column::new("Secrets", "string", "Number of secrets the service account lists."), AGE],
    row: |sa, now| Row::cells(vec![name(sa), json!(count(sa, "/secrets") as i64), json!(age(sa, now))]),
};

/// ResourceQuota columns.
pub static RESOURCE_QUOTA: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Request", "string", "Used and hard amounts of every limited resource except limits.*."),
        Column::new("Limit", "string", "Used and hard amounts of the limits.* resources."),
        AGE,
    ],
    row: |q, now| {
        let hard = map(q, "/status/hard");
        let mut names: Vec<&String> = hard.into_iter().flat_map(|m| m.keys()).collect();
        names.sort();
        let (mut requests, mut limits) = (Vec::new(), Vec::new());
        for n in names {
            let used = scalar_text(at(q, &format!("/status/used/{}", n.replace('~', "~0").replace('/', "~1"))))
                .unwrap_or_else(|| "0".into());
            let max = hard.and_then(|m| m.get(n)).and_then(scalar_text).unwrap_or_default();
            let entry = format!("{n}: {used}/{max}");
            if n.split('.').next() == Some("limits") && n.contains('.') {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
        Row::cells(vec![name(q), json!(requests.join(", ")), json!(limits.join(", ")), json!(age(q, now))])
    },
};

/// ComponentStatus columns.
pub static COMPONENT_STATUS: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Status", "string", "Healthy or Unhealthy, from the Healthy condition."),
        Column::new("Message", "string", "Message of the Healthy condition."),
        Column::new("Error", "string", "Error of the Healthy condition."),
    ],
    row: |cs, _| {
        let healthy = list(cs, "/conditions").iter().find(|c| text(c, "/type") == "Healthy");
        let (status, message, error) = match healthy {
            Some(c) => (
                if text(c, "/status") == "True" { "Healthy" } else { "Unhealthy" },
                text(c, "/message"),
                text(c, "/error"),
            ),
            None => ("Unknown", "", ""),
        };
        Row::cells(vec![name(cs), json!(status), json!(message), json!(error)])
    },
};

// ---------------------------------------------------------------------------------------
// Persistent volumes
// ---------------------------------------------------------------------------------------

/// PersistentVolume columns.
pub static PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Capacity", "string", "Storage the volume provides."),
        Column::new("Access Modes", "string", "How the volume can be mounted (RWO, ROX, RWX, RWOP)."),
        Column::new("Reclaim Policy", "string", "What happens to the volume when its claim is released."),
        Column::new("Status", "string", "The volume's phase, or Terminating."),
        Column::new("Claim", "string", "The claim bound to the volume (namespace/name)."),
        Column::new("StorageClass", "string", "Storage class of the volume."),
        Column::new("VolumeAttributesClass", "string", "Volume attributes class of the volume."),
        Column::new("Reason", "string", "Why the volume is in its phase, when it says."),
        AGE,
        Column::wide("VolumeMode", "string", "Filesystem or Block."),
    ],
    row: |pv, now| {
        let claim = match at(pv, "/spec/claimRef") {
            r if r.is_object() => format!("{}/{}", text(r, "/namespace"), text(r, "/name")),
            _ => String::new(),
        };
        let phase =
            if at(pv, "/metadata/deletionTimestamp").is_null() { text(pv, "/status/phase") } else { "Terminating" };
        let class = match text(pv, "/metadata/annotations/volume.beta.kubernetes.io~1storage-class") {
            "" => text(pv, "/spec/storageClassName"),
            c => c,
        };
        Row::cells(vec![
            name(pv),
            json!(scalar_text(at(pv, "/spec/capacity/storage")).unwrap_or_else(|| "0".into())),
            json!(access_modes(list(pv, "/spec/accessModes"))),
            json!(text(pv, "/spec/persistentVolumeReclaimPolicy")),
            json!(phase),
            json!(claim),
            json!(class),
            json!(text_or(pv, "/spec/volumeAttributesClassName", "<unset>")),
            json!(text(pv, "/status/reason")),
            json!(age(pv, now)),
            json!(text_or(pv, "/spec/volumeMode", "<unset>")),
        ])
    },
};

/// PersistentVolumeClaim columns.
pub static PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Status", "string", "The claim's phase, or Terminating."),
        Column::new("Volume", "string", "The volume bound to the claim."),
        Column::new("Capacity", "string", "Storage of the bound volume."),
        Column::new("Access Modes", "string", "How the bound volume can be mounted."),
        Column::new("StorageClass", "string", "Storage class of the claim."),
        Column::new("VolumeAttributesClass", "string", "Volume attributes class of the claim."),
        AGE,
        Column::wide("VolumeMode", "string", "Filesystem or Block."),
    ],
    row: |pvc, now| {
        let phase =
            if at(pvc, "/metadata/deletionTimestamp").is_null() { text(pvc, "/status/phase") } else { "Terminating" };
        let volume = text(pvc, "/spec/volumeName");
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                scalar_text(at(pvc, "/status/capacity/storage")).unwrap_or_else(|| "0".into()),
                access_modes(list(pvc, "/status/accessModes")),
            )
        };
        let class = match text(pvc, "/metadata/annotations/volume.beta.kubernetes.io~1storage-class") {
            "" => text(pvc, "/spec/storageClassName"),
            c => c,
        };
        Row::cells(vec![
            name(pvc),
            json!(phase),
            json!(volume),
            json!(capacity),
            json!(modes),
            json!(class),
            json!(text_or(pvc, "/spec/volumeAttributesClassName", "<unset>")),
            json!(age(pvc, now)),
            json!(text_or(pvc, "/spec/volumeMode", "<unset>")),
        ])
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn cells(p: &Printer, obj: Value) -> Vec<Value> {
        (p.row)(&obj, now()).cells
    }

    fn pod_with(status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:55:00Z"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "n1"},
            "status": status,
        })
    }

    #[test]
    fn running_pod() {
        let p = pod_with(json!({
            "phase": "Running",
            "podIPs": [{"ip": "10.0.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2024-05-01T11:55:10Z"}}}],
        }));
        assert_eq!(
            cells(&POD, p),
            json!(["web", "1/1", "Running", "0", "5m", "10.0.0.5", "n1", "<none>", "<none>"])
                .as_array()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn pending_pod_without_node() {
        let mut p = pod_with(json!({"phase": "Pending"}));
        p["spec"].as_object_mut().unwrap().remove("nodeName");
        assert_eq!(
            cells(&POD, p),
            json!(["web", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"])
                .as_array()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn crash_looping_pod_shows_the_waiting_reason_and_last_restart() {
        let p = pod_with(json!({
            "phase": "Running",
            "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2024-05-01T11:59:30Z"}},
            }],
        }));
        let c = cells(&POD, p);
        assert_eq!(c[1], "0/1");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "4 (30s ago)");
    }

    #[test]
    fn deleted_pod_is_terminating_unless_finished() {
        let mut p = pod_with(json!({
            "phase": "Running",
            "containerStatuses": [{"name": "app", "ready": true, "state": {"running": {}}}],
        }));
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        assert_eq!(cells(&POD, p.clone())[2], "Terminating");
        p["status"]["phase"] = json!("Succeeded");
        assert_ne!(cells(&POD, p.clone())[2], "Terminating");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells(&POD, p)[2], "Unknown");
    }

    #[test]
    fn completed_pod_has_a_completed_row_condition() {
        let p = pod_with(json!({
            "phase": "Succeeded",
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
        }));
        let row = (POD.row)(&p, now());
        assert_eq!(row.cells[1], "0/1");
        assert_eq!(row.cells[2], "Completed");
        assert_eq!(row.conditions.unwrap()[0]["reason"], "Succeeded");
        let p = pod_with(json!({
            "phase": "Failed",
            "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 137, "signal": 9}}}],
        }));
        assert_eq!(cells(&POD, p)[2], "Signal:9");
    }

    #[test]
    fn initializing_pods() {
        let mut p = pod_with(json!({
            "phase": "Pending",
            "initContainerStatuses": [{"name": "setup", "ready": false, "restartCount": 0, "state": {"running": {}}}],
            "containerStatuses": [{"name": "app", "ready": false, "state": {"waiting": {"reason": "PodInitializing"}}}],
        }));
        p["spec"]["initContainers"] = json!([{"name": "setup", "image": "busybox"}]);
        assert_eq!(cells(&POD, p.clone())[2], "Init:0/1");
        p["status"]["initContainerStatuses"][0]["state"] = json!({"waiting": {"reason": "ImagePullBackOff"}});
        assert_eq!(cells(&POD, p.clone())[2], "Init:ImagePullBackOff");
        p["status"]["initContainerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 2}});
        assert_eq!(cells(&POD, p.clone())[2], "Init:ExitCode:2");
        // A sidecar (restartable init container) that started counts as a container.
        p["spec"]["initContainers"][0]["restartPolicy"] = json!("Always");
        p["status"]["initContainerStatuses"][0] =
            json!({"name": "setup", "ready": true, "started": true, "restartCount": 1, "state": {"running": {}}});
        p["status"]["containerStatuses"][0] = json!({"name": "app", "ready": true, "state": {"running": {}}});
        p["status"]["phase"] = json!("Running");
        let c = cells(&POD, p);
        assert_eq!((c[1].clone(), c[2].clone(), c[3].clone()), (json!("2/2"), json!("Running"), json!("1")));
    }

    #[test]
    fn services() {
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.10"], "selector": {"app": "web"},
                     "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
        });
        assert_eq!(
            cells(&SERVICE, svc),
            json!(["web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,53/UDP", "120m", "app=web"])
                .as_array()
                .unwrap()
                .clone()
        );
        let lb = json!({
            "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 443, "nodePort": 30443, "protocol": "TCP"}]},
            "status": {"loadBalancer": {}},
        });
        let c = cells(&SERVICE, lb.clone());
        assert_eq!(
            (c[3].clone(), c[4].clone(), c[6].clone()),
            (json!("<pending>"), json!("443:30443/TCP"), json!("<none>"))
        );
        let mut lb = lb;
        lb["status"]["loadBalancer"] = json!({"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example"}]});
        assert_eq!(cells(&SERVICE, lb)[3], "203.0.113.9,lb.example");
        let ext = json!({"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "db.example"}});
        assert_eq!(cells(&SERVICE, ext)[2..5], [json!("<none>"), json!("db.example"), json!("<none>")]);
    }

    #[test]
    fn nodes() {
        let n = json!({
            "metadata": {"name": "n1", "creationTimestamp": "2024-04-29T09:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "true"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.4"}],
                "nodeInfo": {"kubeletVersion": "v1.32.4", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.1"},
            },
        });
        assert_eq!(
            cells(&NODE, n),
            json!([
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,etcd",
                "2d3h",
                "v1.32.4",
                "192.168.1.4",
                "<none>",
                "Debian GNU/Linux 12",
                "6.1.0",
                "containerd://1.7.1"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        let bare =
            json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(
            cells(&NODE, bare),
            json!([
                "n2",
                "NotReady",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
    }

    #[test]
    fn events_endpoints_and_quotas() {
        let ev = json!({
            "metadata": {"name": "web.17a"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled", "type": "Normal", "message": " pulled \n",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2024-05-01T11:50:00Z", "lastTimestamp": "2024-05-01T11:58:00Z", "count": 3,
        });
        assert_eq!(
            cells(&EVENT, ev),
            json!([
                "2m",
                "Normal",
                "Pulled",
                "pod/web",
                "spec.containers{app}",
                "kubelet, n1",
                "pulled",
                "10m",
                3,
                "web.17a"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        let ep = json!({"metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 8080}]
        }]});
        assert_eq!(cells(&ENDPOINTS, ep)[1], "10.0.0.1:80,10.0.0.2:80,10.0.0.1:8080 + 1 more...");
        assert_eq!(cells(&ENDPOINTS, json!({"metadata": {"name": "e"}}))[1], "<none>");
        let q = json!({"metadata": {"name": "q"}, "status": {
            "hard": {"pods": "10", "limits.cpu": "2", "requests.memory": "1Gi"},
            "used": {"pods": "3", "limits.cpu": "500m", "requests.memory": "0"},
        }});
        let c = cells(&RESOURCE_QUOTA, q);
        assert_eq!(c[1], "pods: 3/10, requests.memory: 0/1Gi");
        assert_eq!(c[2], "limits.cpu: 500m/2");
    }
}
