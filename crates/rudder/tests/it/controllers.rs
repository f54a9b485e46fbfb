//! The ReplicaSet and Deployment controllers against a real `rudder server` without a
//! scheduler: the tests play the kubelet by marking pods Running and Ready through the status
//! subresource, and drive rollouts with the real kubectl (`rollout status|history|undo`).

use crate::common::TestServer;
use crate::kubectl::{manifest, must};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::future::Future;
use std::time::Duration;

/// Polls `check` until it returns `Some`, failing after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Marks every live pod of the namespace Running and Ready, as a kubelet would.
async fn mark_all_ready(client: &Client, ns: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let Ok(list) = api.list(&ListParams::default()).await else { return };
    for p in list.items {
        if p.metadata.deletion_timestamp.is_some() || is_ready(&p) {
            continue;
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        }});
        let _ = api.patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(status)).await;
    }
}

/// A background "kubelet" that keeps marking pods ready until dropped.
struct Kubelet(tokio::task::JoinHandle<()>);

impl Kubelet {
    fn start(client: Client, ns: &str) -> Kubelet {
        let ns = ns.to_string();
        Kubelet(tokio::spawn(async move {
            loop {
                mark_all_ready(&client, &ns).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn active(pods: Vec<Pod>) -> Vec<Pod> {
    pods.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect()
}

fn owned_by<'a>(pods: &'a [Pod], uid: &str) -> Vec<&'a Pod> {
    pods.iter().filter(|p| p.owner_references().iter().any(|o| o.controller == Some(true) && o.uid == uid)).collect()
}

async fn start() -> TestServer {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    TestServer::start_in(dir, &["--disable-scheduler"]).await
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn deployment_creates_scales_and_replaces_pods() {
    let server = start().await;
    let client = server.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let d = deploys.create(&PostParams::default(), &deployment("web", 3, "nginx:1")).await.unwrap();
    let duid = d.uid().unwrap();

    // One replica set owned by the deployment, with the template hash in its name and selector.
    let rs = eventually("one replica set with 3 replicas", Duration::from_secs(20), || async {
        let list = rss.list(&ListParams::default()).await.ok()?.items;
        (list.len() == 1 && list[0].spec.as_ref()?.replicas == Some(3)).then(|| list[0].clone())
    })
    .await;
    let owner = &rs.owner_references()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Deployment", duid.as_str(), Some(true)));
    let hash = rs.labels().get("pod-template-hash").cloned().expect("pod-template-hash label");
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    let selector = rs.spec.as_ref().unwrap().selector.match_labels.clone().unwrap();
    assert_eq!(selector.get("pod-template-hash"), Some(&hash));
    assert_eq!(rs.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("1"));
    assert_eq!(rs.annotations().get("deployment.kubernetes.io/desired-replicas").map(String::as_str), Some("3"));
    assert_eq!(rs.annotations().get("deployment.kubernetes.io/max-replicas").map(String::as_str), Some("4"));
    let rs_uid = rs.uid().unwrap();

    // Three pods owned by it, named after it, labelled from the template.
    let count_pods = |n: usize| {
        let pods = pods.clone();
        let rs_uid = rs_uid.clone();
        async move {
            let all = active(pods.list(&ListParams::default()).await.ok()?.items);
            (owned_by(&all, &rs_uid).len() == n && all.len() == n).then_some(all)
        }
    };
    let three = eventually("3 pods", Duration::from_secs(20), || count_pods(3)).await;
    for p in &three {
        assert!(p.name_any().starts_with(&format!("web-{hash}-")), "{}", p.name_any());
        assert_eq!(p.labels().get("app").map(String::as_str), Some("web"));
        assert_eq!(p.labels().get("pod-template-hash"), Some(&hash));
        let o = &p.owner_references()[0];
        assert_eq!((o.kind.as_str(), o.controller, o.block_owner_deletion), ("ReplicaSet", Some(true), Some(true)));
    }

    // Ready pods make the replica set and the deployment available.
    mark_all_ready(&client, "default").await;
    eventually("deployment available", Duration::from_secs(20), || async {
        let d = deploys.get("web").await.ok()?;
        let s = d.status?;
        let avail = s.conditions?.into_iter().find(|c| c.type_ == "Available")?;
        (s.available_replicas == Some(3)
            && s.ready_replicas == Some(3)
            && s.updated_replicas == Some(3)
            && s.observed_generation == d.metadata.generation
            && avail.status == "True")
            .then_some(())
    })
    .await;
    // Settled: neither controller keeps rewriting its objects.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = (
        deploys.get("web").await.unwrap().resource_version(),
        rss.get(&rs.name_any()).await.unwrap().resource_version(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = (
        deploys.get("web").await.unwrap().resource_version(),
        rss.get(&rs.name_any()).await.unwrap().resource_version(),
    );
    assert_eq!(before, after, "no writes once settled");
    let rs_now = rss.get(&rs.name_any()).await.unwrap();
    let st = rs_now.status.unwrap();
    assert_eq!((st.replicas, st.fully_labeled_replicas, st.ready_replicas), (3, Some(3), Some(3)));
    assert_eq!(st.observed_generation, rs_now.metadata.generation);

    // Scale to 5 and back to 1.
    let scale = |n: i32| json!({"spec": {"replicas": n}});
    deploys.patch("web", &PatchParams::default(), &Patch::Merge(scale(5))).await.unwrap();
    eventually("5 pods", Duration::from_secs(20), || count_pods(5)).await;
    deploys.patch("web", &PatchParams::default(), &Patch::Merge(scale(1))).await.unwrap();
    let one = eventually("1 pod", Duration::from_secs(20), || count_pods(1)).await;
    assert_eq!(rss.list(&ListParams::default()).await.unwrap().items.len(), 1, "scaling reuses the replica set");

    // A deleted pod is replaced.
    let victim = one[0].name_any();
    pods.delete(&victim, &DeleteParams::default()).await.unwrap();
    let replaced = eventually("a replacement pod", Duration::from_secs(20), || async {
        let all = count_pods(1).await?;
        (all[0].name_any() != victim).then_some(all)
    })
    .await;
    assert_ne!(replaced[0].name_any(), victim);

    // Scale to zero and back.
    deploys.patch("web", &PatchParams::default(), &Patch::Merge(scale(0))).await.unwrap();
    eventually("no pods", Duration::from_secs(20), || count_pods(0)).await;
    deploys.patch("web", &PatchParams::default(), &Patch::Merge(scale(2))).await.unwrap();
    eventually("2 pods again", Duration::from_secs(20), || count_pods(2)).await;

    // Events from both controllers.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    let reasons = eventually("controller events", Duration::from_secs(10), || async {
        let list = events.list(&ListParams::default()).await.ok()?.items;
        let reasons: Vec<(String, String)> =
            list.iter().map(|e| (e.reason.clone().unwrap_or_default(), e.note.clone().unwrap_or_default())).collect();
        let has = |r: &str| reasons.iter().any(|(x, _)| x == r);
        (has("SuccessfulCreate") && has("SuccessfulDelete") && has("ScalingReplicaSet")).then_some(reasons)
    })
    .await;
    let expected = format!("Scaled up replica set web-{hash} from 0 to 3");
    assert!(reasons.iter().any(|(_, n)| *n == expected), "{reasons:?}");
}

#[tokio::test]
async fn replica_set_adopts_releases_and_reports_status() {
    let server = start().await;
    let client = server.client().await;
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // An orphan that matches is adopted rather than duplicated.
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "cache"}},
        "spec": {"containers": [{"name": "main", "image": "redis"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "cache"},
        "spec": {
            "replicas": 2,
            "minReadySeconds": 1,
            "selector": {"matchLabels": {"app": "cache"}},
            "template": {
                "metadata": {"labels": {"app": "cache", "tier": "backend"}},
                "spec": {"containers": [{"name": "main", "image": "redis"}]},
            },
        },
    }))
    .unwrap();
    let rs = rss.create(&PostParams::default(), &rs).await.unwrap();
    let uid = rs.uid().unwrap();
    eventually("orphan adopted and one pod created", Duration::from_secs(20), || async {
        let all = active(pods.list(&ListParams::default()).await.ok()?.items);
        (all.len() == 2 && owned_by(&all, &uid).len() == 2).then_some(())
    })
    .await;

    // Status: the adopted pod lacks the template's `tier` label.
    mark_all_ready(&client, "default").await;
    let st = eventually("status with availability after minReadySeconds", Duration::from_secs(20), || async {
        let s = rss.get("cache").await.ok()?.status?;
        (s.available_replicas == Some(2)).then_some(s)
    })
    .await;
    assert_eq!((st.replicas, st.fully_labeled_replicas, st.ready_replicas), (2, Some(1), Some(2)));

    // A pod relabelled out of the selector is released and replaced.
    let patch = json!({"metadata": {"labels": {"app": "other"}}});
    pods.patch("orphan", &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    eventually("released and replaced", Duration::from_secs(20), || async {
        let released = pods.get("orphan").await.ok()?;
        let all = active(pods.list(&ListParams::default()).await.ok()?.items);
        (released.owner_references().is_empty() && owned_by(&all, &uid).len() == 2 && all.len() == 3).then_some(())
    })
    .await;

    // Scaling down deletes the pods that are not ready first.
    let ready_before: Vec<String> = active(pods.list(&ListParams::default()).await.unwrap().items)
        .iter()
        .filter(|p| is_ready(p))
        .map(|p| p.name_any())
        .collect();
    let patch = json!({"spec": {"replicas": 1}});
    rss.patch("cache", &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    let left = eventually("scaled to 1", Duration::from_secs(20), || async {
        let all = active(pods.list(&ListParams::default()).await.ok()?.items);
        let mine: Vec<String> = owned_by(&all, &uid).iter().map(|p| p.name_any()).collect();
        (mine.len() == 1).then_some(mine)
    })
    .await;
    assert!(ready_before.contains(&left[0]), "the ready pod stays: {left:?} of {ready_before:?}");
}

#[tokio::test]
async fn kubectl_rollout_status_history_and_undo() {
    let server = start().await;
    let client = server.client().await;
    let _kubelet = Kubelet::start(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  replicas: 3\n  \
                selector:\n    matchLabels: {app: app}\n  template:\n    metadata:\n      labels: {app: app}\n    \
                spec:\n      containers:\n      - name: main\n        image: nginx:1\n";
    let file = manifest(&server, "app.yaml", yaml);
    must(&server, &["apply", "-f", &file]).await;
    let out = must(&server, &["rollout", "status", "deployment/app", "--timeout=60s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");

    // A new image: a second replica set takes over.
    must(&server, &["set", "image", "deployment/app", "main=nginx:2"]).await;
    let out = must(&server, &["rollout", "status", "deployment/app", "--timeout=60s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let images = |want: &'static str| {
        let pods = pods.clone();
        async move {
            let all = active(pods.list(&ListParams::default()).await.ok()?.items);
            let ok = all.len() == 3
                && all.iter().all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(want));
            ok.then_some(())
        }
    };
    eventually("3 pods on nginx:2", Duration::from_secs(30), || images("nginx:2")).await;
    let list = rss.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 2);
    let mut by_rev: Vec<(String, i32)> = list
        .iter()
        .map(|r| {
            (r.annotations()["deployment.kubernetes.io/revision"].clone(), r.spec.as_ref().unwrap().replicas.unwrap())
        })
        .collect();
    by_rev.sort();
    assert_eq!(by_rev, [("1".to_string(), 0), ("2".to_string(), 3)]);

    let history = must(&server, &["rollout", "history", "deployment/app"]).await;
    let revs: Vec<&str> =
        history.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u32>().is_ok()).collect();
    assert_eq!(revs, ["1", "2"], "{history}");

    // Undo goes back to the first template, reusing its replica set as revision 3.
    must(&server, &["rollout", "undo", "deployment/app"]).await;
    let out = must(&server, &["rollout", "status", "deployment/app", "--timeout=60s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    eventually("3 pods on nginx:1", Duration::from_secs(30), || images("nginx:1")).await;
    let list = rss.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 2, "undo reuses the old replica set");
    let back = list.iter().find(|r| r.spec.as_ref().unwrap().replicas == Some(3)).unwrap();
    assert_eq!(back.annotations()["deployment.kubernetes.io/revision"], "3");
    let d = must(
        &server,
        &["get", "deployment/app", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"],
    )
    .await;
    assert_eq!(d.trim(), "3");
    let history = must(&server, &["rollout", "history", "deployment/app"]).await;
    let revs: Vec<&str> =
        history.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u32>().is_ok()).collect();
    assert_eq!(revs, ["2", "3"], "{history}");
}

fn progressing_reason(d: &Deployment) -> Option<String> {
    let conds = d.status.as_ref()?.conditions.as_ref()?;
    conds.iter().find(|c| c.type_ == "Progressing")?.reason.clone()
}

#[tokio::test]
async fn recreate_and_paused_deployments() {
    let server = start().await;
    let client = server.client().await;
    let _kubelet = Kubelet::start(client.clone(), "default");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("db", 2, "postgres:15");
    d.spec.as_mut().unwrap().strategy = Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
    deploys.create(&PostParams::default(), &d).await.unwrap();
    must(&server, &["rollout", "status", "deployment/db", "--timeout=60s"]).await;

    // Recreate: the old replica set goes to zero and the new one takes all replicas.
    must(&server, &["set", "image", "deployment/db", "main=postgres:16"]).await;
    let out = must(&server, &["rollout", "status", "deployment/db", "--timeout=60s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let mut sizes: Vec<(String, i32)> = rss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| {
            (r.annotations()["deployment.kubernetes.io/revision"].clone(), r.spec.as_ref().unwrap().replicas.unwrap())
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes, [("1".to_string(), 0), ("2".to_string(), 2)]);

    // Paused: a template change does not roll, scaling still works, resuming rolls.
    must(&server, &["rollout", "pause", "deployment/db"]).await;
    must(&server, &["set", "image", "deployment/db", "main=postgres:17"]).await;
    must(&server, &["scale", "deployment/db", "--replicas=3"]).await;
    eventually("paused deployment scaled", Duration::from_secs(20), || async {
        let d = deploys.get("db").await.ok()?;
        let ok = progressing_reason(&d).as_deref() == Some("DeploymentPaused")
            && d.status.as_ref()?.available_replicas == Some(3)
            && d.status.as_ref()?.observed_generation == d.metadata.generation;
        ok.then_some(())
    })
    .await;
    assert_eq!(rss.list(&ListParams::default()).await.unwrap().items.len(), 2, "no new replica set while paused");
    must(&server, &["rollout", "resume", "deployment/db"]).await;
    let out = must(&server, &["rollout", "status", "deployment/db", "--timeout=60s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let list = rss.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 3);
    let newest = list.iter().find(|r| r.annotations()["deployment.kubernetes.io/revision"] == "3").unwrap();
    assert_eq!(newest.spec.as_ref().unwrap().replicas, Some(3));
}

/// The whole flow with the scheduler and simulated nodes: no status patching by the test.
#[tokio::test]
async fn deployment_becomes_available_on_simulated_nodes() {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &["--simulate-nodes", "3"]).await;
    let client = server.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys.create(&PostParams::default(), &deployment("e2e", 3, "nginx:1")).await.unwrap();
    let out = must(&server, &["rollout", "status", "deployment/e2e", "--timeout=90s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let d = deploys.get("e2e").await.unwrap();
    let s = d.status.unwrap();
    assert_eq!((s.available_replicas, s.ready_replicas, s.updated_replicas), (Some(3), Some(3), Some(3)));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for p in active(pods.list(&ListParams::default()).await.unwrap().items) {
        assert!(p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some(), "{} is bound", p.name_any());
    }
}

#[tokio::test]
async fn replication_controller_keeps_its_pods() {
    let server = start().await;
    let client = server.client().await;
    let rcs: Api<k8s_openapi::api::core::v1::ReplicationController> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rc = serde_json::from_value(json!({
        "metadata": {"name": "legacy"},
        "spec": {
            "replicas": 2,
            "selector": {"app": "legacy"},
            "template": {
                "metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "main", "image": "nginx"}]},
            },
        },
    }))
    .unwrap();
    let rc = rcs.create(&PostParams::default(), &rc).await.unwrap();
    let uid = rc.uid().unwrap();
    let all = eventually("2 pods owned by the replication controller", Duration::from_secs(20), || async {
        let all = active(pods.list(&ListParams::default()).await.ok()?.items);
        (all.len() == 2 && owned_by(&all, &uid).len() == 2).then_some(all)
    })
    .await;
    let o = &all[0].owner_references()[0];
    assert_eq!((o.api_version.as_str(), o.kind.as_str()), ("v1", "ReplicationController"));
    mark_all_ready(&client, "default").await;
    eventually("replication controller status", Duration::from_secs(20), || async {
        let s = rcs.get("legacy").await.ok()?.status?;
        (s.replicas == 2 && s.ready_replicas == Some(2) && s.available_replicas == Some(2)).then_some(())
    })
    .await;
}

/// Scaling in the middle of a rollout spreads the new replicas over both replica sets in
/// proportion to their sizes.
#[tokio::test]
async fn scaling_during_a_rollout_is_proportional() {
    let server = start().await;
    let client = server.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("big", 10, "nginx:1");
    d.spec.as_mut().unwrap().strategy = Some(
        serde_json::from_value(json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}))
            .unwrap(),
    );
    deploys.create(&PostParams::default(), &d).await.unwrap();
    eventually("10 ready pods", Duration::from_secs(30), || async {
        mark_all_ready(&client, "default").await;
        let s = deploys.get("big").await.ok()?.status?;
        (s.available_replicas == Some(10)).then_some(())
    })
    .await;

    // New pods never become ready: the rollout stops at 8 old + 5 new.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}});
    deploys.patch("big", &PatchParams::default(), &Patch::Strategic(patch)).await.unwrap();
    let sizes = || async {
        let mut v: Vec<(String, i32)> = rss
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .iter()
            .map(|r| (r.annotations()["deployment.kubernetes.io/revision"].clone(), r.spec.as_ref()?.replicas?).into())
            .collect::<Option<Vec<_>>>()?;
        v.sort();
        Some(v)
    };
    eventually("rollout stuck at 8 + 5", Duration::from_secs(30), || async {
        (sizes().await? == [("1".to_string(), 8), ("2".to_string(), 5)]).then_some(())
    })
    .await;

    // Scale to 20: up to 23 with the surge, so 10 more, spread by size against the 13 each was
    // last scaled for: old 8 * 23 / 13 ≈ 14, new 5 * 23 / 13 ≈ 9.
    deploys.patch("big", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 20}}))).await.unwrap();
    eventually("proportional 14 + 9", Duration::from_secs(30), || async {
        (sizes().await? == [("1".to_string(), 14), ("2".to_string(), 9)]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let server = start().await;
    let client = server.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("stuck", 2, "nginx:1");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    deploys.create(&PostParams::default(), &d).await.unwrap();
    // Nobody marks the pods ready.
    eventually("ProgressDeadlineExceeded", Duration::from_secs(20), || async {
        let d = deploys.get("stuck").await.ok()?;
        (progressing_reason(&d).as_deref() == Some("ProgressDeadlineExceeded")).then_some(())
    })
    .await;
    let err = crate::kubectl::fails(&server, &["rollout", "status", "deployment/stuck", "--timeout=20s"]).await;
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    // Readiness brings it back to complete. `rollout status` gives up at once while the
    // condition still says the deadline passed, so it is asked once the controller has seen
    // the pods ready.
    let _kubelet = Kubelet::start(client.clone(), "default");
    eventually("NewReplicaSetAvailable", Duration::from_secs(30), || async {
        let d = deploys.get("stuck").await.ok()?;
        (progressing_reason(&d).as_deref() == Some("NewReplicaSetAvailable")).then_some(())
    })
    .await;
    let out = must(&server, &["rollout", "status", "deployment/stuck", "--timeout=60s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");
}
