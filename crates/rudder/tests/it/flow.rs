//! The whole control plane with the real kubectl: `rudder server --simulate-nodes 3` with the
//! scheduler and the controller manager, nothing played by the test. Deployments roll out,
//! scale, update, roll back and heal; cascading and namespace deletion; a NoSchedule taint; a
//! cordon and drain under a PodDisruptionBudget. Three tests with a server each, so they run in
//! parallel.

use crate::common::TestServer;
use crate::kubectl::{manifest, must, must_json};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{EvictParams, ListParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it returns `Some`, failing after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start() -> TestServer {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    TestServer::start_in(dir, &["--simulate-nodes", "3", "--simulate-node-heartbeat-seconds", "1"]).await
}

fn deployment_yaml(name: &str, namespace: &str, replicas: i32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: {image}
"
    )
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

fn image_of(p: &Pod) -> String {
    p.spec.as_ref().map(|s| s.containers[0].image.clone().unwrap_or_default()).unwrap_or_default()
}

/// The pods labelled `app=<app>` in `ns` that are not being deleted.
async fn live_pods(client: &Client, ns: &str, app: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default().labels(&format!("app={app}"))).await.expect("list pods");
    list.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect()
}

/// Waits until exactly `n` pods of `app` are left (terminating ones gone too), each Running and
/// Ready on a simulated node, and returns them.
async fn running(client: &Client, ns: &str, app: &str, n: usize) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let what = format!("{n} Running pods of {app}");
    eventually(&what, Duration::from_secs(30), || async {
        let all = api.list(&ListParams::default().labels(&format!("app={app}"))).await.ok()?.items;
        let ok = all.len() == n
            && all.iter().all(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && is_ready(p)
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    && node_of(p).is_some_and(|n| n.starts_with("sim-"))
            });
        ok.then_some(all)
    })
    .await
}

async fn rollout_status(server: &TestServer, ns: &str, name: &str) {
    let out = must(server, &["-n", ns, "rollout", "status", &format!("deployment/{name}"), "--timeout=30s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");
}

/// Apply, rollout status, scale up and down, a rolling update, history and undo, a deleted pod
/// replaced, then a background cascade.
#[tokio::test]
async fn deployment_rolls_out_scales_updates_and_heals() {
    let server = start().await;
    let client = server.client().await;
    let file = manifest(&server, "web.yaml", &deployment_yaml("web", "default", 3, "nginx:1.25"));
    must(&server, &["apply", "-f", &file]).await;
    rollout_status(&server, "default", "web").await;
    let pods = running(&client, "default", "web", 3).await;
    assert!(pods.iter().all(|p| image_of(p) == "nginx:1.25"));

    must(&server, &["scale", "deployment/web", "--replicas=5"]).await;
    running(&client, "default", "web", 5).await;
    rollout_status(&server, "default", "web").await;
    must(&server, &["scale", "deployment/web", "--replicas=1"]).await;
    running(&client, "default", "web", 1).await;

    // A rolling update, its history, and an undo back to the first image.
    must(&server, &["set", "image", "deployment/web", "main=nginx:1.26"]).await;
    rollout_status(&server, "default", "web").await;
    let pods = running(&client, "default", "web", 1).await;
    assert_eq!(image_of(&pods[0]), "nginx:1.26");
    let history = must(&server, &["rollout", "history", "deployment/web"]).await;
    let revisions: Vec<&str> =
        history.lines().map(str::trim).filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit())).collect();
    assert_eq!(revisions.len(), 2, "two revisions:\n{history}");
    must(&server, &["rollout", "undo", "deployment/web"]).await;
    rollout_status(&server, "default", "web").await;
    let pods = running(&client, "default", "web", 1).await;
    assert_eq!(image_of(&pods[0]), "nginx:1.25", "undo restores the first image");
    let d: Deployment =
        serde_json::from_value(must_json(&server, &["get", "deploy", "web", "-o", "json"]).await).unwrap();
    assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("3"));

    // A deleted pod gets replaced.
    let victim = pods[0].name_any();
    must(&server, &["delete", "pod", &victim]).await;
    let pods = running(&client, "default", "web", 1).await;
    assert_ne!(pods[0].name_any(), victim);

    // Background cascade: the deployment goes at once, its replica sets and pods after it.
    must(&server, &["delete", "deploy", "web"]).await;
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    eventually("replica sets and pods of web gone", Duration::from_secs(20), || async {
        let left_rs = rss.list(&ListParams::default().labels("app=web")).await.ok()?.items.len();
        let left_pods = Api::<Pod>::namespaced(client.clone(), "default")
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .len();
        (left_rs == 0 && left_pods == 0).then_some(())
    })
    .await;
}

/// `--cascade=orphan` keeps the dependents, `--cascade=foreground` removes them before the
/// deployment, and deleting a namespace removes everything in it.
#[tokio::test]
async fn cascades_and_namespace_deletion() {
    let server = start().await;
    let client = server.client().await;
    must(&server, &["create", "namespace", "flow"]).await;
    let mut yaml = deployment_yaml("keep", "flow", 2, "nginx:1.25");
    yaml.push_str("---\n");
    yaml.push_str(&deployment_yaml("fg", "flow", 2, "nginx:1.25"));
    must(&server, &["apply", "-f", &manifest(&server, "two.yaml", &yaml)]).await;
    rollout_status(&server, "flow", "keep").await;
    rollout_status(&server, "flow", "fg").await;
    let kept = running(&client, "flow", "keep", 2).await;

    // Orphan: the deployment goes, its replica set and pods stay, without owner references.
    must(&server, &["-n", "flow", "delete", "deploy", "keep", "--cascade=orphan"]).await;
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "flow");
    eventually("the orphaned replica set released", Duration::from_secs(15), || async {
        let list = rss.list(&ListParams::default().labels("app=keep")).await.ok()?.items;
        (list.len() == 1 && list[0].owner_references().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = live_pods(&client, "flow", "keep").await;
    let mut before_names: Vec<String> = kept.iter().map(|p| p.name_any()).collect();
    let mut after_names: Vec<String> = after.iter().map(|p| p.name_any()).collect();
    before_names.sort();
    after_names.sort();
    assert_eq!(before_names, after_names, "orphaned pods stay");

    // Foreground: kubectl waits for the deployment, which goes only after its pods.
    must(&server, &["-n", "flow", "delete", "deploy", "fg", "--cascade=foreground", "--timeout=30s"]).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "flow");
    let left = pods.list(&ListParams::default().labels("app=fg")).await.unwrap().items;
    assert!(left.is_empty(), "pods remain after the foreground deletion: {:?}", left.iter().map(|p| p.name_any()));
    assert!(rss.list(&ListParams::default().labels("app=fg")).await.unwrap().items.is_empty());

    // The namespace with the orphans in it.
    must(&server, &["delete", "namespace", "flow", "--timeout=40s"]).await;
    let out = must(&server, &["get", "namespaces", "-o", "name"]).await;
    assert!(!out.lines().any(|l| l == "namespace/flow"), "{out}");
    let left = Api::<Pod>::all(client.clone()).list(&ListParams::default()).await.unwrap().items;
    assert!(left.iter().all(|p| p.namespace().as_deref() != Some("flow")), "no pod of flow is left");
}

/// A NoSchedule taint on every node keeps a pod Pending with upstream's message until it
/// tolerates the taint; then a cordon and drain moves a deployment's pods under a budget the
/// disruption controller keeps current.
#[tokio::test]
async fn taints_cordon_and_drain_under_a_budget() {
    let server = start().await;
    let client = server.client().await;
    eventually("3 Ready nodes", Duration::from_secs(15), || async {
        let nodes = must_json(&server, &["get", "nodes", "-o", "json"]).await;
        let ready = nodes["items"].as_array()?.iter().filter(|n| {
            n["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        });
        (ready.count() == 3).then_some(())
    })
    .await;
    must(&server, &["taint", "nodes", "--all", "dedicated=infra:NoSchedule"]).await;
    must(&server, &["run", "lonely", "--image=nginx:1.25", "--labels=app=lonely"]).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let expected = "0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: infra}. \
                    preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    let message = eventually("PodScheduled=False", Duration::from_secs(15), || async {
        let p = pods.get("lonely").await.ok()?;
        let c = p.status?.conditions?.into_iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
        assert_eq!(c.reason.as_deref(), Some("Unschedulable"));
        c.message
    })
    .await;
    assert_eq!(message, expected);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(node_of(&pods.get("lonely").await.unwrap()).is_none(), "still Pending while untolerated");

    // Tolerations may only be added to a pod: append one for the taint.
    let current = pods.get("lonely").await.unwrap();
    let mut tolerations: Vec<Value> = current
        .spec
        .and_then(|s| s.tolerations)
        .unwrap_or_default()
        .into_iter()
        .map(|t| serde_json::to_value(t).unwrap())
        .collect();
    tolerations
        .push(serde_json::json!({"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}));
    let patch = serde_json::json!({"spec": {"tolerations": tolerations}}).to_string();
    must(&server, &["patch", "pod", "lonely", "--type=merge", "-p", &patch]).await;
    running(&client, "default", "lonely", 1).await;
    must(&server, &["taint", "nodes", "--all", "dedicated=infra:NoSchedule-"]).await;
    // A bare pod would stop `kubectl drain` without --force.
    must(&server, &["delete", "pod", "lonely"]).await;

    // A deployment of 3 under a budget of minAvailable 2.
    let mut yaml = deployment_yaml("drainme", "default", 3, "nginx:1.25");
    yaml.push_str(
        "---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: drainme
spec:
  minAvailable: 2
  selector:
    matchLabels: {app: drainme}
",
    );
    must(&server, &["apply", "-f", &manifest(&server, "drainme.yaml", &yaml)]).await;
    rollout_status(&server, "default", "drainme").await;
    let before = running(&client, "default", "drainme", 3).await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    eventually("the budget's status", Duration::from_secs(15), || async {
        let b = pdbs.get("drainme").await.ok()?;
        let s = b.status?;
        let c = s.conditions.as_ref()?.iter().find(|c| c.type_ == "DisruptionAllowed")?.clone();
        (s.observed_generation == b.metadata.generation
            && (s.expected_pods, s.current_healthy, s.desired_healthy, s.disruptions_allowed) == (3, 3, 2, 1)
            && c.status == "True"
            && c.reason == "SufficientPods")
            .then_some(())
    })
    .await;

    // Cordon and drain the node of the first pod: its pods move elsewhere.
    let node = node_of(&before[0]).unwrap().to_string();
    must(&server, &["cordon", &node]).await;
    let n = must_json(&server, &["get", "node", &node, "-o", "json"]).await;
    assert_eq!(n["spec"]["unschedulable"], true);
    let out = must(
        &server,
        &["drain", &node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=45s", "--grace-period=1"],
    )
    .await;
    assert!(out.contains("drained"), "{out}");
    let after = running(&client, "default", "drainme", 3).await;
    assert!(after.iter().all(|p| node_of(p) != Some(node.as_str())), "no pod is left on the drained node");
    eventually("the budget healthy again, evictions pruned", Duration::from_secs(15), || async {
        let s = pdbs.get("drainme").await.ok()?.status?;
        (s.current_healthy == 3 && s.disruptions_allowed == 1 && s.disrupted_pods.is_none_or(|d| d.is_empty()))
            .then_some(())
    })
    .await;

    // A budget that allows nothing refuses evictions with 429.
    must(&server, &["patch", "pdb", "drainme", "--type=merge", "-p", r#"{"spec":{"minAvailable":3}}"#]).await;
    eventually("no disruption allowed", Duration::from_secs(15), || async {
        let b = pdbs.get("drainme").await.ok()?;
        let s = b.status?;
        let c = s.conditions.as_ref()?.iter().find(|c| c.type_ == "DisruptionAllowed")?.clone();
        (s.observed_generation == b.metadata.generation
            && s.disruptions_allowed == 0
            && c.status == "False"
            && c.reason == "InsufficientPods")
            .then_some(())
    })
    .await;
    let strict: Api<Pod> = Api::namespaced(server.client_without_retries().await, "default");
    match strict.evict(&after[0].name_any(), &EvictParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 429, "{s:?}"),
        other => panic!("eviction should be refused: {other:?}"),
    }
    must(&server, &["uncordon", &node]).await;
}
