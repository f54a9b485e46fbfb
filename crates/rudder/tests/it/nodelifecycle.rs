//! Node lifecycle, taint eviction and pod GC with the real binary: a simulated node whose
//! heartbeat stops is marked `Unknown` and tainted, its pods are evicted and replaced on the
//! healthy nodes, and all of it is undone when the heartbeat resumes; pods bound to a deleted
//! node are garbage collected; pods get the default `NoExecute` tolerations at admission.

use crate::common::TestServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// Polls `check` every 100 ms until it returns `Some`, or panics after `limit` with `what`.
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition<'a>(node: &'a Node, kind: &str) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind)
}

fn ready_status(node: &Node) -> Option<String> {
    condition(node, "Ready").map(|c| c.status.clone())
}

fn taints(node: &Node) -> Vec<(String, String, bool)> {
    node.spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .map(|t| (t.key.clone(), t.effect.clone(), t.time_added.is_some()))
        .collect()
}

fn node_of(pod: &Pod) -> String {
    pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default()
}

fn pod_condition(pod: &Pod, kind: &str) -> Option<(String, Option<String>)> {
    let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind)?;
    Some((c.status.clone(), c.reason.clone()))
}

fn running_and_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && pod_condition(pod, "Ready").is_some_and(|(s, _)| s == "True")
}

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "main", "image": "nginx:1"}],
                    "tolerations": [
                        {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
                        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
                    ],
                },
            },
        },
    }))
    .expect("a deployment")
}

#[tokio::test]
async fn lost_node_is_tainted_its_pods_replaced_and_recovers() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(
        dir,
        &[
            "--simulate-nodes",
            "3",
            "--simulate-node-heartbeat-seconds",
            "1",
            "--node-monitor-grace-period-seconds",
            "4",
        ],
    )
    .await;
    let client = server.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");

    eventually(Duration::from_secs(30), "3 Ready nodes", || async {
        let list = nodes.list(&ListParams::default()).await.ok()?.items;
        (list.len() == 3 && list.iter().all(|n| ready_status(n).as_deref() == Some("True"))).then_some(())
    })
    .await;
    // Healthy nodes carry none of the node lifecycle taints.
    for n in nodes.list(&ListParams::default()).await.unwrap() {
        assert!(taints(&n).is_empty(), "{} has taints {:?}", n.name_any(), taints(&n));
    }

    deploys.create(&PostParams::default(), &deployment()).await.unwrap();
    eventually(Duration::from_secs(60), "the deployment available", || async {
        let s = deploys.get("web").await.ok()?.status?;
        (s.available_replicas == Some(3)).then_some(())
    })
    .await;
    let before = pods.list(&ListParams::default().labels("app=web")).await.unwrap().items;
    let victim = node_of(&before[0]);
    let doomed: BTreeSet<String> = before.iter().filter(|p| node_of(p) == victim).map(|p| p.name_any()).collect();
    // The template's own tolerations were kept (no 300 s defaults added for those keys).
    let tolerations = before[0].spec.as_ref().unwrap().tolerations.clone().unwrap();
    assert_eq!(tolerations.len(), 2, "{tolerations:?}");
    assert!(tolerations.iter().all(|t| t.toleration_seconds == Some(2)));

    // The node goes silent.
    let stopped = json!({"metadata": {"annotations": {"rudder.dev/simulate-heartbeat": "stopped"}}});
    nodes.patch(&victim, &PatchParams::default(), &Patch::Merge(stopped)).await.unwrap();
    let lost = eventually(Duration::from_secs(15), "the silent node Unknown and tainted", || async {
        let n = nodes.get(&victim).await.ok()?;
        let t = taints(&n);
        (ready_status(&n).as_deref() == Some("Unknown")
            && t.contains(&(UNREACHABLE.into(), "NoExecute".into(), true))
            && t.contains(&(UNREACHABLE.into(), "NoSchedule".into(), true)))
        .then_some(n)
    })
    .await;
    let ready = condition(&lost, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
    for kind in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(condition(&lost, kind).map(|c| c.status.as_str()), Some("Unknown"), "{kind}");
    }
    assert!(!taints(&lost).iter().any(|(k, _, _)| k == NOT_READY), "{:?}", taints(&lost));
    // The other nodes are untouched.
    for n in nodes.list(&ListParams::default()).await.unwrap() {
        if n.name_any() != victim {
            assert_eq!(ready_status(&n).as_deref(), Some("True"));
            assert!(taints(&n).is_empty(), "{} has taints {:?}", n.name_any(), taints(&n));
        }
    }

    // Its pods are evicted after their 2 s toleration. The node is frozen, so nothing confirms
    // the deletion: they stay terminating, as on upstream with an unreachable kubelet.
    eventually(Duration::from_secs(15), "the lost node's pods deleted", || async {
        let all = pods.list(&ListParams::default().labels("app=web")).await.ok()?.items;
        doomed
            .iter()
            .all(|name| {
                all.iter().find(|p| &p.name_any() == name).is_none_or(|p| p.metadata.deletion_timestamp.is_some())
            })
            .then_some(())
    })
    .await;
    for name in &doomed {
        let p = pods.get(name).await.expect("a terminating pod stays while its node is unreachable");
        assert!(p.metadata.deletion_timestamp.is_some());
        assert_eq!(pod_condition(&p, "Ready").map(|c| c.0), Some("False".into()), "{name} marked not ready");
        assert_eq!(
            pod_condition(&p, "DisruptionTarget"),
            Some(("True".into(), Some("DeletionByTaintManager".into()))),
            "{name}"
        );
    }
    eventually(Duration::from_secs(10), "TaintManagerEviction events", || async {
        let list = events.list(&ListParams::default()).await.ok()?.items;
        doomed
            .iter()
            .all(|name| {
                list.iter().any(|e| {
                    e.reason.as_deref() == Some("TaintManagerEviction")
                        && e.involved_object.name.as_deref() == Some(name.as_str())
                        && e.message.as_deref() == Some(&format!("Marking for deletion Pod default/{name}"))
                })
            })
            .then_some(())
    })
    .await;

    // Replacements run on the two healthy nodes and the deployment is whole again.
    eventually(Duration::from_secs(30), "3 replacements running elsewhere", || async {
        let all = pods.list(&ListParams::default().labels("app=web")).await.ok()?.items;
        let live: Vec<&Pod> = all.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        (live.len() == 3 && live.iter().all(|p| running_and_ready(p) && node_of(p) != victim)).then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), "the deployment available again", || async {
        let s = deploys.get("web").await.ok()?.status?;
        (s.available_replicas == Some(3) && s.ready_replicas == Some(3)).then_some(())
    })
    .await;

    // The heartbeat resumes: conditions and taints clear, and the node finishes the deletions.
    let resumed = json!({"metadata": {"annotations": {"rudder.dev/simulate-heartbeat": null}}});
    nodes.patch(&victim, &PatchParams::default(), &Patch::Merge(resumed)).await.unwrap();
    eventually(Duration::from_secs(15), "the node Ready and untainted", || async {
        let n = nodes.get(&victim).await.ok()?;
        (ready_status(&n).as_deref() == Some("True") && taints(&n).is_empty()).then_some(())
    })
    .await;
    eventually(Duration::from_secs(15), "the evicted pods gone", || async {
        let all = pods.list(&ListParams::default().labels("app=web")).await.ok()?.items;
        (all.len() == 3 && doomed.iter().all(|d| all.iter().all(|p| &p.name_any() != d))).then_some(())
    })
    .await;
}

#[tokio::test]
async fn pods_of_deleted_nodes_are_collected_and_pods_get_default_tolerations() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &["--disable-scheduler", "--node-monitor-grace-period-seconds", "4"]).await;
    let client = server.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let node: Node = serde_json::from_value(json!({"metadata": {"name": "ghost"}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let mk = |name: &str, node: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nginx:1"}]},
        }))
        .unwrap()
    };
    let created = pods.create(&PostParams::default(), &mk("on-ghost", "ghost")).await.unwrap();
    pods.create(&PostParams::default(), &mk("on-nowhere", "nowhere")).await.unwrap();
    pods.create(&PostParams::default(), &mk("unbound", "")).await.unwrap();

    // DefaultTolerationSeconds at admission.
    let tolerations = serde_json::to_value(created.spec.unwrap().tolerations).unwrap();
    assert_eq!(
        tolerations,
        json!([
            {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ])
    );

    // A pod bound to a node that never existed goes after the quarantine.
    eventually(Duration::from_secs(30), "the pod on a missing node collected", || async {
        pods.get_opt("on-nowhere").await.ok()?.is_none().then_some(())
    })
    .await;
    // The pod on an existing node stays; once the node is deleted it goes too.
    assert!(pods.get_opt("on-ghost").await.unwrap().is_some());
    nodes.delete("ghost", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(30), "the pod of the deleted node collected", || async {
        pods.get_opt("on-ghost").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(pods.get_opt("unbound").await.unwrap().is_some(), "unbound pods are not orphans");
}

/// `--terminated-pod-gc-threshold`: the pod garbage collector keeps at most that many finished
/// pods.
#[tokio::test]
async fn terminated_pods_over_the_threshold_are_collected() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(
        dir,
        &["--disable-scheduler", "--terminated-pod-gc-threshold", "2", "--node-monitor-grace-period-seconds", "2"],
    )
    .await;
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..4 {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("done-{i}")},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.expect("pod is created");
        let status = json!({"status": {"phase": "Succeeded"}});
        pods.patch_status(&format!("done-{i}"), &PatchParams::default(), &Patch::Merge(status))
            .await
            .expect("finished");
    }
    let left = eventually(Duration::from_secs(30), "two finished pods left", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        (list.items.len() == 2).then_some(list.items)
    })
    .await;
    assert!(left.iter().all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(pods.list(&ListParams::default()).await.unwrap().items.len(), 2, "the threshold's pods stay");
}

/// The node lifecycle settings are checked before anything starts, with the flags named.
#[test]
fn bad_eviction_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for flag in ["--unhealthy-zone-threshold=1.5", "--node-eviction-rate=-1"] {
        let out = crate::node::rudder(&["server", "--data-dir", data, "--https-port", "0", "--disable-agent", flag]);
        let err = crate::kubectl::text(&out.stderr);
        assert!(!out.status.success(), "{flag} was taken: {err}");
        assert!(err.contains("--unhealthy-zone-threshold") && err.contains("--node-eviction-rate"), "{err}");
    }
}
