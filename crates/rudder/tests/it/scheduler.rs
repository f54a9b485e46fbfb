//! The scheduler inside `rudder server`: hand-made nodes, pods bound through `pods/binding`,
//! unschedulable pods reported as upstream does, taints, and retries when a node appears.

use crate::common::TestServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// Registers a Ready node with the given cpu (memory 4Gi, 110 pods).
async fn add_node(client: &Client, name: &str, cpu: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.expect("node is created");
    let status = json!({"status": {
        "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready",
            "lastHeartbeatTime": "2024-01-01T00:00:00Z", "lastTransitionTime": "2024-01-01T00:00:00Z"}],
    }});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status is set");
}

async fn create_pod(pods: &Api<Pod>, name: &str, cpu: &str, extra_spec: Value) {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(e.clone());
    }
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    pods.create(&PostParams::default(), &pod).await.expect("pod is created");
}

/// Polls the pod until `check` accepts it.
async fn wait_pod(pods: &Api<Pod>, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = Instant::now() + WAIT;
    loop {
        let pod = pods.get(name).await.expect("pod exists");
        if check(&pod) {
            return pod;
        }
        assert!(Instant::now() < deadline, "pod {name}: {what} within {WAIT:?}; last seen {:?}", pod.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

fn scheduled_condition(pod: &Pod) -> Option<(String, String, String)> {
    let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled")?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

async fn wait_bound(pods: &Api<Pod>, name: &str) -> String {
    let pod = wait_pod(pods, name, "is bound", |p| node_of(p).is_some()).await;
    node_of(&pod).unwrap().to_string()
}

/// Waits for an event about `pod` with `reason`, returning its note.
async fn wait_event(events: &Api<Event>, pod: &str, reason: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = events.list(&ListParams::default()).await.expect("events list");
        let found = list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some(reason) && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod)
        });
        if let Some(e) = found {
            assert_eq!(e.reporting_controller.as_deref(), Some("default-scheduler"));
            return e.note.unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "no {reason} event for {pod}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn schedules_pods_onto_hand_made_nodes() {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &["--disable-controller-manager"]).await;
    let client = server.client().await;
    for name in ["node-1", "node-2", "node-3"] {
        add_node(&client, name, "2").await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");

    // Pods for another scheduler are left alone.
    create_pod(&pods, "not-ours", "100m", json!({"schedulerName": "other-scheduler"})).await;

    // A pod that fits is bound, with a Scheduled event.
    create_pod(&pods, "fits", "500m", json!({})).await;
    let node = wait_bound(&pods, "fits").await;
    assert!(node.starts_with("node-"), "{node}");
    let pod = pods.get("fits").await.unwrap();
    assert_eq!(scheduled_condition(&pod).map(|c| c.0).as_deref(), Some("True"));
    let note = wait_event(&events, "fits", "Scheduled").await;
    assert_eq!(note, format!("Successfully assigned default/fits to {node}"));
    // The same event through core/v1, as `kubectl describe pod` reads it.
    let core_events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let listed = core_events.list(&ListParams::default()).await.expect("core events list");
    let scheduled = listed
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Scheduled") && e.involved_object.name.as_deref() == Some("fits"))
        .expect("a core/v1 Scheduled event for fits");
    assert_eq!(scheduled.type_.as_deref(), Some("Normal"));
    assert_eq!(scheduled.message.as_deref(), Some(note.as_str()));

    // nodeSelector picks the node.
    create_pod(&pods, "selected", "100m", json!({"nodeSelector": {"kubernetes.io/hostname": "node-2"}})).await;
    assert_eq!(wait_bound(&pods, "selected").await, "node-2");

    // Too big for every node: stays Pending with upstream's message.
    create_pod(&pods, "big", "3", json!({})).await;
    let expected = "0/3 nodes are available: 3 Insufficient cpu. \
                    preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    let pod = wait_pod(&pods, "big", "is reported unschedulable", |p| scheduled_condition(p).is_some()).await;
    assert_eq!(
        scheduled_condition(&pod),
        Some(("False".to_string(), "Unschedulable".to_string(), expected.to_string()))
    );
    assert_eq!(node_of(&pod), None);
    assert_eq!(wait_event(&events, "big", "FailedScheduling").await, expected);

    // A NoSchedule taint keeps pods away unless they tolerate it.
    let nodes: Api<Node> = Api::all(client.clone());
    let taint = json!({"spec": {"taints": [{"key": "dedicated", "value": "test", "effect": "NoSchedule"}]}});
    nodes.patch("node-3", &PatchParams::default(), &Patch::Merge(&taint)).await.expect("taint node-3");
    create_pod(&pods, "pinned", "100m", json!({"nodeSelector": {"kubernetes.io/hostname": "node-3"}})).await;
    let pod = wait_pod(&pods, "pinned", "is rejected by the taint", |p| {
        scheduled_condition(p).is_some_and(|c| c.2.contains("untolerated taint"))
    })
    .await;
    assert_eq!(
        scheduled_condition(&pod).unwrap().2,
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: test}, \
         2 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    for i in 0..6 {
        create_pod(&pods, &format!("plain-{i}"), "100m", json!({})).await;
    }
    for i in 0..6 {
        let node = wait_bound(&pods, &format!("plain-{i}")).await;
        assert_ne!(node, "node-3", "plain-{i} avoids the tainted node");
    }
    let toleration = json!({
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "test", "effect": "NoSchedule"}],
        "nodeSelector": {"kubernetes.io/hostname": "node-3"},
    });
    create_pod(&pods, "tolerating", "100m", toleration).await;
    assert_eq!(wait_bound(&pods, "tolerating").await, "node-3");

    // A bigger node makes the pending pod schedulable (the queue moves it on node add).
    add_node(&client, "node-big", "4").await;
    assert_eq!(wait_bound(&pods, "big").await, "node-big");
    let note = wait_event(&events, "big", "Scheduled").await;
    assert_eq!(note, "Successfully assigned default/big to node-big");

    let pod = pods.get("not-ours").await.unwrap();
    assert_eq!((node_of(&pod), scheduled_condition(&pod)), (None, None), "another scheduler's pod is untouched");
}

/// A higher-priority pod (through its PriorityClass) preempts a lower-priority one.
#[tokio::test]
async fn preempts_lower_priority_pods() {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &["--disable-controller-manager"]).await;
    let client = server.client().await;
    add_node(&client, "solo", "2").await;
    let classes: Api<PriorityClass> = Api::all(client.clone());
    let class: PriorityClass = serde_json::from_value(
        json!({"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "PreemptLowerPriority"}),
    )
    .unwrap();
    classes.create(&PostParams::default(), &class).await.expect("priority class is created");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");

    create_pod(&pods, "low", "1500m", json!({})).await;
    assert_eq!(wait_bound(&pods, "low").await, "solo");
    create_pod(&pods, "high", "1", json!({"priorityClassName": "high"})).await;

    let pod = wait_pod(&pods, "high", "is nominated", |p| {
        p.status.as_ref().and_then(|s| s.nominated_node_name.as_deref()) == Some("solo")
    })
    .await;
    assert_eq!(node_of(&pod), None);
    let pod = wait_pod(&pods, "high", "is reported", |p| scheduled_condition(p).is_some()).await;
    assert_eq!(scheduled_condition(&pod).unwrap().2, "0/1 nodes are available: 1 Insufficient cpu.");
    let note = wait_event(&events, "low", "Preempted").await;
    assert!(note.starts_with("Preempted by pod ") && note.ends_with(" on node solo"), "{note}");

    // No kubelet runs here, so finish the victim's deletion by hand; the preemptor then fits.
    let low = pods.get_opt("low").await.expect("get low");
    if let Some(low) = low {
        assert!(low.metadata.deletion_timestamp.is_some(), "the victim is being deleted");
        let _ = pods.delete("low", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await;
    }
    assert_eq!(wait_bound(&pods, "high").await, "solo");
}

/// Preemption avoids a victim whose PodDisruptionBudget allows no disruption when another node
/// offers one that no budget protects.
#[tokio::test]
async fn preemption_respects_disruption_budgets() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &["--disable-controller-manager"]).await;
    let client = server.client().await;
    add_node(&client, "guarded", "2").await;
    add_node(&client, "free", "2").await;
    let classes: Api<PriorityClass> = Api::all(client.clone());
    for (name, value) in [("one", 1), ("five", 5), ("top", 1000)] {
        let class: PriorityClass = serde_json::from_value(json!({"metadata": {"name": name}, "value": value})).unwrap();
        classes.create(&PostParams::default(), &class).await.expect("priority class is created");
    }
    // No budget controller runs here: a budget without status allows no disruption.
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let budget: PodDisruptionBudget = serde_json::from_value(
        json!({"metadata": {"name": "db"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}}),
    )
    .unwrap();
    budgets.create(&PostParams::default(), &budget).await.expect("budget is created");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, class, node) in [("db", "one", "guarded"), ("web", "five", "free")] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeName": node, "priorityClassName": class, "containers": [
                {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1500m"}}}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.expect("pod is created");
    }
    // Without the budget the lower-priority `db` would be the victim.
    create_pod(&pods, "urgent", "1", json!({"priorityClassName": "top"})).await;
    let pod = wait_pod(&pods, "urgent", "is nominated", |p| {
        p.status.as_ref().and_then(|s| s.nominated_node_name.as_deref()).is_some()
    })
    .await;
    assert_eq!(pod.status.unwrap().nominated_node_name.as_deref(), Some("free"));
    let db = pods.get("db").await.expect("db stays");
    assert!(db.metadata.deletion_timestamp.is_none(), "the guarded pod is not preempted");
}

/// Pod affinity across namespaces picked by their labels (`namespaceSelector`).
#[tokio::test]
async fn affinity_reaches_namespaces_by_label() {
    use k8s_openapi::api::core::v1::Namespace;
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &["--disable-controller-manager"]).await;
    let client = server.client().await;
    add_node(&client, "n1", "2").await;
    add_node(&client, "n2", "2").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "prod", "labels": {"env": "prod"}}})).unwrap();
    namespaces.create(&PostParams::default(), &ns).await.expect("namespace is created");
    let prod: Api<Pod> = Api::namespaced(client.clone(), "prod");
    let anchor: Pod = serde_json::from_value(json!({
        "metadata": {"name": "db", "labels": {"app": "db"}},
        "spec": {"nodeName": "n2", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    prod.create(&PostParams::default(), &anchor).await.expect("anchor pod is created");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let affinity = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": {"app": "db"}},
        "namespaceSelector": {"matchLabels": {"env": "prod"}},
        "topologyKey": "kubernetes.io/hostname"}]}}});
    create_pod(&pods, "near-db", "100m", affinity).await;
    assert_eq!(wait_bound(&pods, "near-db").await, "n2");
}

/// Rough end-to-end throughput: 1000 pods over 100 nodes (`--ignored` to run; prints pods/s).
#[tokio::test]
#[ignore = "measurement, not a check"]
async fn scheduler_throughput() {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &["--disable-controller-manager"]).await;
    let client = server.client().await;
    // RUDDER_SCHEDULER_BENCH_NODES overrides the node count.
    let nodes: usize = std::env::var("RUDDER_SCHEDULER_BENCH_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    for i in 0..nodes {
        add_node(&client, &format!("node-{i:04}"), "64").await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let n = 1000;
    let started = Instant::now();
    let creates = futures::stream::iter(0..n)
        .map(|i| {
            let pods = pods.clone();
            async move { create_pod(&pods, &format!("load-{i:04}"), "10m", json!({})).await }
        })
        .buffer_unordered(32);
    creates.collect::<Vec<_>>().await;
    let created = started.elapsed();
    loop {
        let list = pods.list(&ListParams::default()).await.expect("list pods");
        let bound = list.items.iter().filter(|p| node_of(p).is_some()).count();
        if bound == n {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "only {bound}/{n} bound");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    eprintln!(
        "{nodes} nodes: created {n} pods in {created:?}; all bound after {took:?} ({:.0} pods/s end to end)",
        n as f64 / took.as_secs_f64()
    );
}
