//! `rudder server --simulate-nodes`: simulated nodes register Ready, renew their Leases, run the
//! pods bound to them, complete Job pods, finish deletions, and stop their heartbeat on request.
//!
//! The scheduler and controller manager are off so only the simulated nodes act on pods.

use crate::common::TestServer;
use crate::kubectl::{must, must_json};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn start() -> TestServer {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    TestServer::start_in(
        dir,
        &[
            "--simulate-nodes",
            "3",
            "--simulate-node-heartbeat-seconds",
            "1",
            "--disable-scheduler",
            "--disable-controller-manager",
        ],
    )
    .await
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `limit` with `what`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn renew_time(leases: &Api<Lease>, name: &str) -> Option<String> {
    let lease = leases.get_opt(name).await.expect("lease get")?;
    let t = lease.spec?.renew_time?;
    Some(serde_json::to_value(t).expect("time").as_str()?.to_string())
}

async fn phase(pods: &Api<Pod>, name: &str) -> Option<Pod> {
    pods.get_opt(name).await.expect("pod get")
}

fn pod_on(name: &str, node: &str, extra: serde_json::Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox:1.36"}]},
    });
    merge(&mut v, extra);
    serde_json::from_value(v).expect("a pod")
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

#[tokio::test]
async fn simulated_nodes_register_heartbeat_and_run_pods() {
    let server = start().await;
    let client = server.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // Three nodes appear Ready, with their labels, addresses and pod CIDRs.
    let listed = eventually(Duration::from_secs(15), "3 Ready simulated nodes", || async {
        let list = nodes.list(&Default::default()).await.expect("list nodes").items;
        (list.len() == 3 && list.iter().all(ready)).then_some(list)
    })
    .await;
    for (i, node) in listed.iter().enumerate() {
        let name = format!("sim-{i}");
        assert_eq!(node.metadata.name.as_deref(), Some(name.as_str()));
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("kubernetes.io/hostname"), Some(&name));
        assert_eq!(labels.get("node.kubernetes.io/instance-type").map(String::as_str), Some("simulated"));
        assert!(labels.get("topology.kubernetes.io/zone").is_some_and(|z| z.starts_with("zone-")));
        let spec = node.spec.clone().unwrap_or_default();
        assert_eq!(spec.pod_cidr, Some(format!("10.244.{i}.0/24")));
        let status = node.status.clone().unwrap_or_default();
        let addresses = status.addresses.unwrap_or_default();
        assert!(addresses.iter().any(|a| a.type_ == "InternalIP" && a.address.starts_with("10.200.")));
        assert!(addresses.iter().any(|a| a.type_ == "Hostname" && a.address == name));
        let info = status.node_info.expect("nodeInfo");
        assert_eq!(info.kubelet_version, "v1.32.4");
        assert_eq!(info.container_runtime_version, "rudder-sim://1");
        assert_eq!(status.capacity.unwrap_or_default().get("pods").map(|q| q.0.as_str()), Some("110"));
    }

    // Each node holds its Lease and renews it.
    let first = eventually(Duration::from_secs(5), "a lease for sim-1", || renew_time(&leases, "sim-1")).await;
    let lease = leases.get("sim-1").await.expect("lease");
    let spec = lease.spec.clone().expect("lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("sim-1"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = &lease.metadata.owner_references.expect("owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", "sim-1"));
    for name in ["sim-0", "sim-2"] {
        eventually(Duration::from_secs(5), "the other leases", || renew_time(&leases, name)).await;
    }
    eventually(Duration::from_secs(5), "sim-1's lease renewed", || async {
        renew_time(&leases, "sim-1").await.filter(|t| *t != first)
    })
    .await;

    // kubectl sees them Ready.
    let table = must(&server, &["get", "nodes"]).await;
    for i in 0..3 {
        let row = table.lines().find(|l| l.starts_with(&format!("sim-{i} "))).unwrap_or_else(|| panic!("{table}"));
        assert!(row.split_whitespace().nth(1) == Some("Ready"), "{table}");
    }
    let list =
        must_json(&server, &["get", "nodes", "-l", "node.kubernetes.io/instance-type=simulated", "-o", "json"]).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(3), "{list}");

    // A pod bound to sim-1 runs there with an IP from sim-1's range.
    pods.create(&PostParams::default(), &pod_on("web", "sim-1", json!({}))).await.expect("create pod");
    let running = eventually(Duration::from_secs(5), "the pod Running", || async {
        phase(&pods, "web").await.filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
    let status = running.status.expect("status");
    let ip = status.pod_ip.expect("podIP");
    assert!(ip.starts_with("10.244.1.") && ip != "10.244.1.0" && ip != "10.244.1.1", "{ip}");
    assert_eq!(status.pod_ips.expect("podIPs")[0].ip, ip);
    assert_eq!(status.host_ip.as_deref(), Some("10.200.0.2"));
    assert!(status.start_time.is_some());
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let conditions = status.conditions.expect("conditions");
    for kind in ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"] {
        assert!(conditions.iter().any(|c| c.type_ == kind && c.status == "True"), "{kind}: {conditions:?}");
    }
    let container = &status.container_statuses.expect("containerStatuses")[0];
    assert!(container.ready && container.started == Some(true) && container.restart_count == 0);
    assert!(container.container_id.as_deref().is_some_and(|id| id.starts_with("rudder-sim://")));
    assert!(container.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
    let wide = must(&server, &["get", "pod", "web", "-o", "wide"]).await;
    assert!(wide.contains("Running") && wide.contains(&ip) && wide.contains("sim-1"), "{wide}");

    // A Job's pod runs to completion; so does a pod that asks for it by annotation.
    let job_pod = pod_on(
        "job-pod",
        "sim-2",
        json!({
            "metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "made-up",
                "uid": "00000000-0000-0000-0000-000000000001", "controller": true}]},
            "spec": {"restartPolicy": "Never"},
        }),
    );
    pods.create(&PostParams::default(), &job_pod).await.expect("create job pod");
    let failing = pod_on(
        "failing",
        "sim-0",
        json!({
            "metadata": {"annotations": {"rudder.dev/simulate-run-seconds": "0.2", "rudder.dev/simulate-exit-code": "3"}},
            "spec": {"restartPolicy": "Never"},
        }),
    );
    pods.create(&PostParams::default(), &failing).await.expect("create failing pod");
    let done = eventually(Duration::from_secs(8), "the Job pod Succeeded", || async {
        phase(&pods, "job-pod")
            .await
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
    })
    .await;
    let status = done.status.expect("status");
    let terminated = status.container_statuses.expect("containerStatuses")[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!((terminated.exit_code, terminated.reason.as_deref()), (0, Some("Completed")));
    let ready = status.conditions.expect("conditions").into_iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("False", Some("PodCompleted")));
    let failed = eventually(Duration::from_secs(8), "the failing pod Failed", || async {
        phase(&pods, "failing").await.filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
    })
    .await;
    let code =
        failed.status.and_then(|s| s.container_statuses).and_then(|c| c[0].state.clone()).and_then(|s| s.terminated);
    assert_eq!(code.map(|t| t.exit_code), Some(3));

    // Deleting a running pod (30 s grace period) removes it within the engine's 1 s cap.
    let started = Instant::now();
    pods.delete("web", &DeleteParams::default()).await.expect("delete pod");
    let marked = pods.get_opt("web").await.expect("get");
    assert!(marked.is_none_or(|p| p.metadata.deletion_timestamp.is_some()), "the pod lingers for its grace period");
    eventually(Duration::from_secs(5), "the deleted pod gone", || async {
        phase(&pods, "web").await.is_none().then_some(())
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(500), "the grace period was honoured up to the cap");
    // A terminal pod is removed at once.
    pods.delete("job-pod", &DeleteParams::default()).await.expect("delete job pod");
    eventually(Duration::from_secs(3), "the finished pod gone", || async {
        phase(&pods, "job-pod").await.is_none().then_some(())
    })
    .await;

    // The stop annotation freezes sim-0's Lease while sim-1 keeps renewing; removing it resumes.
    must(&server, &["annotate", "node", "sim-0", "rudder.dev/simulate-heartbeat=stopped"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let frozen = renew_time(&leases, "sim-0").await.expect("sim-0 lease");
    let other = renew_time(&leases, "sim-1").await.expect("sim-1 lease");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(renew_time(&leases, "sim-0").await.as_ref(), Some(&frozen), "a stopped node does not renew");
    assert_ne!(renew_time(&leases, "sim-1").await.as_ref(), Some(&other), "the others still do");
    // Its pods do not move either.
    pods.create(&PostParams::default(), &pod_on("stuck", "sim-0", json!({}))).await.expect("create pod");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stuck = pods.get("stuck").await.expect("pod");
    assert_eq!(stuck.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    must(&server, &["annotate", "node", "sim-0", "rudder.dev/simulate-heartbeat-"]).await;
    eventually(Duration::from_secs(5), "sim-0 renewing again", || async {
        renew_time(&leases, "sim-0").await.filter(|t| *t != frozen)
    })
    .await;
    eventually(Duration::from_secs(5), "the stuck pod Running", || async {
        phase(&pods, "stuck").await.filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
}

#[tokio::test]
async fn simulated_nodes_report_ready_again_when_marked_unknown() {
    let server = start().await;
    let nodes: Api<Node> = Api::all(server.client().await);
    eventually(Duration::from_secs(15), "sim-2 Ready", || async {
        nodes.get_opt("sim-2").await.expect("get").filter(ready)
    })
    .await;
    // What the node lifecycle controller does when a lease expires.
    let patch = json!({"status": {"conditions": [
        {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}
    ]}});
    let marked = nodes.patch_status("sim-2", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("patch");
    assert!(!ready(&marked));
    let back = eventually(Duration::from_secs(5), "sim-2 Ready again", || async {
        nodes.get_opt("sim-2").await.expect("get").filter(ready)
    })
    .await;
    let conditions = back.status.and_then(|s| s.conditions).expect("conditions");
    let ready = conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
    assert_eq!(conditions.iter().filter(|c| c.type_ == "Ready").count(), 1, "{conditions:?}");
}

#[tokio::test]
async fn simulated_nodes_are_taken_over_after_a_restart() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let args = [
        "--simulate-nodes",
        "2",
        "--simulate-node-heartbeat-seconds",
        "1",
        "--disable-scheduler",
        "--disable-controller-manager",
    ];
    let mut server = TestServer::start_in(dir.clone(), &args).await;
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod_on("keep", "sim-0", json!({}))).await.expect("create pod");
    let before = eventually(Duration::from_secs(10), "the pod Running", || async {
        phase(&pods, "keep").await.filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
    let ip = before.status.and_then(|s| s.pod_ip).expect("podIP");
    let uid = eventually(Duration::from_secs(5), "sim-0", || async {
        Api::<Node>::all(client.clone()).get_opt("sim-0").await.expect("get").and_then(|n| n.metadata.uid)
    })
    .await;
    server.terminate().await;

    let server = TestServer::start_in(dir, &args).await;
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod_on("new", "sim-0", json!({}))).await.expect("create pod");
    let after = eventually(Duration::from_secs(10), "the new pod Running", || async {
        phase(&pods, "new").await.filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await;
    let new_ip = after.status.and_then(|s| s.pod_ip).expect("podIP");
    assert_ne!(new_ip, ip, "the running pod keeps its address");
    let node = Api::<Node>::all(client.clone()).get("sim-0").await.expect("sim-0");
    assert_eq!(node.metadata.uid, Some(uid), "the same Node, taken over");
    assert!(ready(&node));
}
