//! The garbage collector, namespace, service account and root CA controllers, through the real
//! kubectl against a real `rudder server` (scheduler off; nothing here needs nodes).

use crate::common::TestServer;
use crate::kubectl::{kubectl, manifest, must, must_json};
use serde_json::Value;
use std::future::Future;
use std::time::{Duration, Instant};

async fn server() -> TestServer {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    TestServer::start_in(dir, &["--disable-scheduler"]).await
}

/// Polls `check` every 100 ms until it holds, failing after `limit`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The object as JSON, or `None` when kubectl says it is not there.
async fn get(s: &TestServer, args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = kubectl(s, &all).await;
    if out.status.success() {
        return Some(serde_json::from_slice(&out.stdout).expect("kubectl prints JSON"));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NotFound") || err.contains("not found"), "kubectl {all:?} failed: {err}");
    None
}

fn uid(v: &Value) -> String {
    v["metadata"]["uid"].as_str().expect("objects have a uid").to_string()
}

/// A ConfigMap `name` in `ns` owned by the given ConfigMaps (`(name, uid)`), with
/// `blockOwnerDeletion` as asked, and optional finalizers.
fn dependent(name: &str, ns: &str, owners: &[(&str, &str)], block: bool, finalizers: &[&str]) -> String {
    let mut y = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n");
    if !finalizers.is_empty() {
        y.push_str("  finalizers:\n");
        for f in finalizers {
            y.push_str(&format!("  - {f}\n"));
        }
    }
    y.push_str("  ownerReferences:\n");
    for (owner, uid) in owners {
        y.push_str(&format!(
            "  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}\n    blockOwnerDeletion: {block}\n"
        ));
    }
    y.push_str("data:\n  k: v\n");
    y
}

async fn create_owner(s: &TestServer, ns: &str, name: &str) -> String {
    must(s, &["create", "configmap", name, "-n", ns, "--from-literal=k=v"]).await;
    uid(&must_json(s, &["get", "configmap", name, "-n", ns, "-o", "json"]).await)
}

async fn apply_dependent(s: &TestServer, file: &str, yaml: &str) {
    let path = manifest(s, file, yaml);
    must(s, &["create", "-f", &path]).await;
}

#[tokio::test]
async fn new_namespaces_get_a_default_service_account_and_the_root_ca() {
    let s = server().await;
    must(&s, &["create", "namespace", "x"]).await;
    let limit = Duration::from_secs(10);
    eventually("the default ServiceAccount", limit, || async {
        get(&s, &["serviceaccount", "default", "-n", "x"]).await.is_some()
    })
    .await;
    eventually("kube-root-ca.crt", limit, || async {
        get(&s, &["configmap", "kube-root-ca.crt", "-n", "x"]).await.is_some()
    })
    .await;
    let ca = std::fs::read_to_string(s.data_dir().join("tls").join("ca.crt")).expect("the cluster CA");
    let cm = get(&s, &["configmap", "kube-root-ca.crt", "-n", "x"]).await.unwrap();
    assert_eq!(cm["data"]["ca.crt"].as_str(), Some(ca.as_str()));
    assert!(cm["metadata"]["annotations"]["kubernetes.io/description"].as_str().is_some_and(|d| !d.is_empty()));
    // The existing namespaces have them too.
    eventually("kube-root-ca.crt in default", limit, || async {
        get(&s, &["configmap", "kube-root-ca.crt", "-n", "default"]).await.is_some()
    })
    .await;

    // Deleted: made again. Edited: put back.
    let before = uid(&get(&s, &["serviceaccount", "default", "-n", "x"]).await.unwrap());
    must(&s, &["delete", "serviceaccount", "default", "-n", "x"]).await;
    eventually("the default ServiceAccount again", limit, || async {
        get(&s, &["serviceaccount", "default", "-n", "x"]).await.is_some_and(|sa| uid(&sa) != before)
    })
    .await;
    must(
        &s,
        &[
            "patch",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            "x",
            "--type=merge",
            "-p",
            r#"{"data":{"ca.crt":"bogus","x":"y"}}"#,
        ],
    )
    .await;
    eventually("kube-root-ca.crt restored", limit, || async {
        get(&s, &["configmap", "kube-root-ca.crt", "-n", "x"]).await.is_some_and(|cm| {
            cm["data"]["ca.crt"].as_str() == Some(ca.as_str()) && cm["data"].as_object().is_some_and(|d| d.len() == 1)
        })
    })
    .await;
    must(&s, &["delete", "configmap", "kube-root-ca.crt", "-n", "x"]).await;
    eventually("kube-root-ca.crt recreated", limit, || async {
        get(&s, &["configmap", "kube-root-ca.crt", "-n", "x"]).await.is_some()
    })
    .await;
}

#[tokio::test]
async fn background_deletion_removes_dependents_once_all_owners_are_gone() {
    let s = server().await;
    let a = create_owner(&s, "default", "owner-a").await;
    let b = create_owner(&s, "default", "owner-b").await;
    apply_dependent(&s, "single.yaml", &dependent("single", "default", &[("owner-a", &a)], false, &[])).await;
    apply_dependent(
        &s,
        "shared.yaml",
        &dependent("shared", "default", &[("owner-a", &a), ("owner-b", &b)], false, &[]),
    )
    .await;
    // A dependent of an owner that never existed goes too.
    apply_dependent(
        &s,
        "stray.yaml",
        &dependent("stray", "default", &[("ghost", "00000000-0000-0000-0000-000000000000")], false, &[]),
    )
    .await;

    must(&s, &["delete", "configmap", "owner-a"]).await;
    let limit = Duration::from_secs(15);
    eventually("the single-owner dependent to go", limit, || async {
        get(&s, &["configmap", "single"]).await.is_none()
    })
    .await;
    eventually("the stray dependent to go", limit, || async { get(&s, &["configmap", "stray"]).await.is_none() }).await;
    // The shared one keeps its live owner and loses the reference to the dead one.
    eventually("the shared dependent to lose owner-a", limit, || async {
        get(&s, &["configmap", "shared"]).await.is_some_and(|cm| {
            let refs = cm["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
            refs.len() == 1 && refs[0]["uid"] == b.as_str()
        })
    })
    .await;
    must(&s, &["delete", "configmap", "owner-b"]).await;
    eventually("the shared dependent to go", limit, || async { get(&s, &["configmap", "shared"]).await.is_none() })
        .await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_reference() {
    let s = server().await;
    let o = create_owner(&s, "default", "owner").await;
    let other = create_owner(&s, "default", "other").await;
    apply_dependent(&s, "dep.yaml", &dependent("dep", "default", &[("owner", &o), ("other", &other)], true, &[])).await;
    must(&s, &["delete", "configmap", "owner", "--cascade=orphan"]).await;
    let limit = Duration::from_secs(15);
    eventually("the owner to go", limit, || async { get(&s, &["configmap", "owner"]).await.is_none() }).await;
    let dep = get(&s, &["configmap", "dep"]).await.expect("the dependent stays");
    let refs = dep["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
    assert_eq!(refs.len(), 1, "{dep}");
    assert_eq!(refs[0]["uid"], other.as_str());

    // With its only owner orphaned, the reference list goes altogether.
    must(&s, &["delete", "configmap", "other", "--cascade=orphan"]).await;
    eventually("the other owner to go", limit, || async { get(&s, &["configmap", "other"]).await.is_none() }).await;
    let dep = get(&s, &["configmap", "dep"]).await.expect("the dependent stays");
    assert!(dep["metadata"].get("ownerReferences").is_none_or(Value::is_null), "{dep}");
}

#[tokio::test]
async fn foreground_deletion_removes_the_owner_after_its_dependents() {
    let s = server().await;
    let o = create_owner(&s, "default", "owner").await;
    apply_dependent(&s, "dep.yaml", &dependent("dep", "default", &[("owner", &o)], true, &["example.com/hold"])).await;
    must(&s, &["delete", "configmap", "owner", "--cascade=foreground", "--wait=false"]).await;
    let limit = Duration::from_secs(15);
    eventually("the dependent to be deleted", limit, || async {
        get(&s, &["configmap", "dep"]).await.is_some_and(|d| d["metadata"]["deletionTimestamp"].is_string())
    })
    .await;
    // The dependent is held by its finalizer, and the owner waits for it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let owner = get(&s, &["configmap", "owner"]).await.expect("the owner waits for its dependent");
    assert!(owner["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(owner["metadata"]["finalizers"], serde_json::json!(["foregroundDeletion"]));

    must(&s, &["patch", "configmap", "dep", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]).await;
    eventually("the dependent to go", limit, || async { get(&s, &["configmap", "dep"]).await.is_none() }).await;
    eventually("the owner to go", limit, || async { get(&s, &["configmap", "owner"]).await.is_none() }).await;
}

#[tokio::test]
async fn deleting_a_namespace_empties_it_and_removes_it() {
    let s = server().await;
    must(&s, &["create", "namespace", "x"]).await;
    must(&s, &["create", "configmap", "plain", "-n", "x", "--from-literal=k=v"]).await;
    must(&s, &["create", "secret", "generic", "s", "-n", "x", "--from-literal=k=v"]).await;
    must(&s, &["create", "serviceaccount", "robot", "-n", "x"]).await;
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: x\n  finalizers:\n  - example.com/hold\n";
    apply_dependent(&s, "held.yaml", held).await;
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: x\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
    apply_dependent(&s, "pod.yaml", pod).await;

    must(&s, &["delete", "namespace", "x", "--wait=false"]).await;
    let limit = Duration::from_secs(20);
    // Everything without a finalizer goes; the held ConfigMap keeps the namespace.
    eventually("the namespace to report what remains", limit, || async {
        let Some(ns) = get(&s, &["namespace", "x"]).await else { return false };
        let conditions = ns["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let is = |t: &str, v: &str| conditions.iter().any(|c| c["type"] == t && c["status"] == v);
        is("NamespaceContentRemaining", "True") && is("NamespaceFinalizersRemaining", "True")
    })
    .await;
    for what in [["configmap", "plain"], ["secret", "s"], ["serviceaccount", "robot"], ["pod", "p"]] {
        assert!(get(&s, &[what[0], what[1], "-n", "x"]).await.is_none(), "{what:?} is still there");
    }
    let ns = get(&s, &["namespace", "x"]).await.expect("the namespace waits");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert_eq!(ns["spec"]["finalizers"], serde_json::json!(["kubernetes"]));

    must(&s, &["patch", "configmap", "held", "-n", "x", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#])
        .await;
    eventually("the namespace to go", limit, || async { get(&s, &["namespace", "x"]).await.is_none() }).await;
}
