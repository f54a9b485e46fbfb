//! The server as a process: durability across `kill -9`, restarts that keep the CA and the
//! data, clean exit on SIGTERM with a watch open, and which endpoints need credentials.

use crate::common::TestServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"payload": name}})).expect("a config map")
}

fn rv_of<K: Resource>(obj: &K) -> u64 {
    obj.meta().resource_version.as_deref().expect("resourceVersion").parse().expect("numeric resourceVersion")
}

/// A client that trusts the cluster CA but presents no credentials, with extra headers.
async fn anonymous_client(srv: &TestServer, headers: &[(&str, &str)]) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&srv.kubeconfig).expect("kubeconfig parses");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig loads");
    config.auth_info = Default::default();
    config.default_retry = false;
    for (k, v) in headers {
        config
            .headers
            .push((http::HeaderName::from_bytes(k.as_bytes()).unwrap(), http::HeaderValue::from_str(v).unwrap()));
    }
    kube::Client::try_from(config).expect("client builds")
}

/// GET `path` and return the status and body text.
async fn get_text(client: &kube::Client, path: &str) -> (u16, String) {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    let resp = client.send(req.map(kube::client::Body::from)).await.expect("the request is answered");
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
    (code, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn acknowledged_creates_survive_kill_9() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut srv = TestServer::start_in(dir.clone(), &[]).await;
    let client = srv.client_without_retries().await;
    let killed = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let killed = killed.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked: Vec<(String, u64)> = Vec::new();
            for i in 0.. {
                let name = format!("crash-{t}-{i}");
                match cms.create(&PostParams::default(), &cm(&name)).await {
                    Ok(created) => acked.push((name, rv_of(&created))),
                    Err(e) => {
                        // Only the kill may interrupt the writers.
                        assert!(killed.load(Ordering::SeqCst), "create {name} failed before the kill: {e}");
                        break;
                    }
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    killed.store(true, Ordering::SeqCst);
    srv.kill9().await;

    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        let done = tokio::time::timeout(Duration::from_secs(30), t).await.expect("writers stop after the kill");
        acked.extend(done.expect("writer task"));
    }
    println!("{} creates were acknowledged before kill -9", acked.len());
    assert!(acked.len() >= 16, "the writers made progress: {}", acked.len());

    let srv = TestServer::start_in(dir.clone(), &[]).await;
    let client = srv.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let list = cms.list(&ListParams::default()).await.expect("list after restart");
    let stored: BTreeMap<String, ConfigMap> =
        list.items.into_iter().filter(|c| c.name_any().starts_with("crash-")).map(|c| (c.name_any(), c)).collect();
    let missing: Vec<&String> = acked.keys().filter(|n| !stored.contains_key(*n)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged creates were lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(stored.len() >= acked.len(), "{} stored < {} acknowledged", stored.len(), acked.len());
    for (name, rv) in &acked {
        let obj = &stored[name];
        assert_eq!(rv_of(obj), *rv, "{name} keeps its resourceVersion");
        assert_eq!(obj.data.as_ref().unwrap()["payload"], *name, "{name} keeps its data");
    }
    // Revisions go on from where they were.
    let newest = *acked.values().max().unwrap();
    let after = cms.create(&PostParams::default(), &cm("after-restart")).await.expect("create after restart");
    assert!(rv_of(&after) > newest, "{} <= {newest}", rv_of(&after));
}

#[tokio::test]
async fn restart_keeps_ca_credentials_data_and_revisions() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut srv = TestServer::start_in(dir.clone(), &[]).await;
    let ca = std::fs::read(srv.data_dir().join("tls").join("ca.crt")).expect("tls/ca.crt exists");
    let token = srv.token();
    let client = srv.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "persist"}})).unwrap();
    let ns = namespaces.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "persist");
    let kept = cms.create(&PostParams::default(), &cm("kept")).await.unwrap();
    let status = srv.terminate().await;
    assert!(status.success(), "SIGTERM exits with success: {status:?}");

    let mut srv = TestServer::start_in(dir.clone(), &[]).await;
    assert_eq!(std::fs::read(srv.data_dir().join("tls").join("ca.crt")).unwrap(), ca, "the CA is kept");
    assert_eq!(srv.token(), token, "the admin token is kept");
    // The new kubeconfig trusts the same CA, so a fresh client connects.
    let client = srv.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let again = namespaces.get("persist").await.expect("the namespace survives");
    assert_eq!(again.metadata.uid, ns.metadata.uid);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "persist");
    let got = cms.get("kept").await.expect("the config map survives");
    assert_eq!(got.metadata.uid, kept.metadata.uid);
    assert_eq!(rv_of(&got), rv_of(&kept));
    assert_eq!(got.data, kept.data);
    let defaults = names_of(&namespaces.list(&ListParams::default()).await.unwrap().items);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease", "persist"] {
        assert!(defaults.contains(n), "{n}: {defaults:?}");
    }
    let next = cms.create(&PostParams::default(), &cm("next")).await.unwrap();
    assert!(rv_of(&next) > rv_of(&kept), "resourceVersions keep increasing across restarts");
    // The old token still authenticates.
    let by_token = anonymous_client(&srv, &[("authorization", &format!("Bearer {token}"))]).await;
    let (code, _) = get_text(&by_token, "/api/v1/namespaces/persist/configmaps/kept").await;
    assert_eq!(code, 200);

    // And once more after kill -9: same CA, same data.
    srv.kill9().await;
    let srv = TestServer::start_in(dir.clone(), &[]).await;
    assert_eq!(std::fs::read(srv.data_dir().join("tls").join("ca.crt")).unwrap(), ca);
    let cms: Api<ConfigMap> = Api::namespaced(srv.client().await, "persist");
    assert_eq!(rv_of(&cms.get("next").await.unwrap()), rv_of(&next));
}

fn names_of<K: Resource>(items: &[K]) -> BTreeSet<String> {
    items.iter().map(|o| o.meta().name.clone().unwrap_or_default()).collect()
}

#[tokio::test]
async fn sigterm_with_an_open_watch_exits_cleanly() {
    let mut srv = TestServer::start().await;
    let client = srv.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut stream = namespaces.watch(&WatchParams::default().timeout(290), "0").await.expect("watch starts").boxed();
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(WatchEvent::Added(ns)))) => assert!(!ns.name_any().is_empty()),
        other => panic!("the watch should start with ADDED events, got {other:?}"),
    }
    // A second, idle watch from "now".
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let now = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut idle = cms.watch(&WatchParams::default().timeout(290), &now).await.expect("watch starts").boxed();

    let started = Instant::now();
    let status = srv.terminate().await;
    let took = started.elapsed();
    assert!(status.success(), "SIGTERM exits with success: {status:?}");
    assert!(took < Duration::from_secs(10), "the server stops within its drain period: {took:?}");
    // The watches end rather than hang.
    assert!(ends(&mut stream).await, "the namespace watch ends when the server stops");
    assert!(ends(&mut idle).await, "the idle watch ends when the server stops");
}

/// Whether a watch stream ends (or fails) within five seconds.
async fn ends<K>(s: &mut futures::stream::BoxStream<'static, kube::Result<WatchEvent<K>>>) -> bool {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.next().await {
                Some(Ok(WatchEvent::Added(_) | WatchEvent::Bookmark(_))) => continue,
                _ => return,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn health_and_version_are_public_everything_else_needs_credentials() {
    let srv = TestServer::start().await;
    let anonymous = anonymous_client(&srv, &[]).await;

    let (code, body) = get_text(&anonymous, "/version").await;
    assert_eq!(code, 200, "{body}");
    let version: Value = serde_json::from_str(&body).expect("version JSON");
    assert_eq!(version["major"], "1");
    assert!(version["minor"].as_str().is_some_and(|m| m.parse::<u32>().is_ok()), "{version}");
    assert!(version["gitVersion"].as_str().is_some_and(|v| v.starts_with("v1.")), "{version}");
    assert!(version["platform"].is_string());

    for path in ["/healthz", "/livez", "/readyz", "/healthz/ping", "/livez/ping", "/readyz/ping"] {
        let (code, body) = get_text(&anonymous, path).await;
        assert_eq!((code, body.as_str()), (200, "ok"), "{path}");
    }
    for (path, last) in [
        ("/readyz?verbose", "readyz check passed"),
        ("/livez?verbose", "livez check passed"),
        ("/healthz?verbose", "healthz check passed"),
    ] {
        let (code, body) = get_text(&anonymous, path).await;
        assert_eq!(code, 200, "{path}: {body}");
        assert!(body.contains("[+]ping ok"), "{path}: {body}");
        assert_eq!(body.lines().last(), Some(last), "{path}: {body}");
    }
    let (code, body) = get_text(&anonymous, "/readyz?verbose").await;
    assert!(body.contains("[+]shutdown ok"), "{code}: {body}");
    let (code, _) = get_text(&anonymous, "/readyz/no-such-check").await;
    assert_eq!(code, 404);

    // Everything else: 401 with a Status.
    for path in ["/api", "/apis", "/api/v1", "/api/v1/namespaces", "/apis/apps/v1/namespaces/default/deployments"] {
        let (code, body) = get_text(&anonymous, path).await;
        assert_eq!(code, 401, "{path}: {body}");
        let status: Value = serde_json::from_str(&body).expect("a JSON Status");
        assert_eq!(status["kind"], "Status");
        assert_eq!((status["code"].as_u64(), status["reason"].as_str()), (Some(401), Some("Unauthorized")), "{path}");
        assert_eq!(status["message"], "Unauthorized");
    }
    let wrong = anonymous_client(&srv, &[("authorization", "Bearer not-the-token")]).await;
    let (code, _) = get_text(&wrong, "/api/v1/namespaces").await;
    assert_eq!(code, 401, "an unknown token is refused");
    let cms: Api<ConfigMap> = Api::namespaced(anonymous.clone(), "default");
    match cms.create(&PostParams::default(), &cm("anon")).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (401, "Unauthorized")),
        other => panic!("an anonymous create must fail with 401, got {other:?}"),
    }

    // The bearer token from the token file works.
    let by_token = anonymous_client(&srv, &[("authorization", &format!("Bearer {}", srv.token()))]).await;
    let (code, body) = get_text(&by_token, "/api/v1/namespaces").await;
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "NamespaceList");
    let cms: Api<ConfigMap> = Api::namespaced(by_token.clone(), "default");
    let made = cms.create(&PostParams::default(), &cm("by-token")).await.expect("create with the token");
    assert_eq!(made.name_any(), "by-token");
    let (code, body) = get_text(&by_token, "/api").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["kind"], "APIVersions");

    // And so does the admin client certificate.
    let admin = srv.client().await;
    let (code, _) = get_text(&admin, "/apis").await;
    assert_eq!(code, 200);
    let cms: Api<ConfigMap> = Api::namespaced(admin, "default");
    assert_eq!(cms.get("by-token").await.unwrap().metadata.uid, made.metadata.uid);
}
