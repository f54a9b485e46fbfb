//! The engine in-process against a real API server: the `Sim` handle stops and resumes a node's
//! heartbeat, and the engine stops promptly on shutdown.

use crate::{Options, start};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use std::time::{Duration, Instant};

async fn client(kubeconfig: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig loads");
    kube::Client::try_from(config).expect("client builds")
}

async fn renew_time(leases: &Api<Lease>, name: &str) -> Option<String> {
    let t = leases.get_opt(name).await.expect("lease get")?.spec?.renew_time?;
    Some(serde_json::to_value(t).expect("time").as_str()?.to_string())
}

async fn until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_stops_and_resumes_heartbeats() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = rudder_apiserver::Config::new(dir.path().to_path_buf());
    config.https_port = 0;
    let server = rudder_apiserver::start(config).await.expect("the API server starts");
    let client = client(&server.kubeconfig).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let options =
        Options { name_prefix: "t".into(), heartbeat_interval: Duration::from_millis(300), ..Options::new(2) };
    let sim = start(client.clone(), options, stopped).expect("the engine starts");
    assert_eq!(sim.node_names(), ["t-0", "t-1"]);
    assert!(!sim.stop_heartbeat("not-mine"));

    let nodes: Api<Node> = Api::all(client.clone());
    until(Duration::from_secs(10), "both nodes registered", || async {
        let n = nodes.list(&Default::default()).await.expect("list").items.len();
        (n == 2).then_some(())
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let first = until(Duration::from_secs(5), "t-0's lease", || renew_time(&leases, "t-0")).await;
    until(Duration::from_secs(5), "t-0 renewing", || async {
        renew_time(&leases, "t-0").await.filter(|t| *t != first)
    })
    .await;

    assert!(sim.stop_heartbeat("t-0"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let frozen = renew_time(&leases, "t-0").await.expect("lease");
    let other = renew_time(&leases, "t-1").await.expect("lease");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(renew_time(&leases, "t-0").await, Some(frozen.clone()), "stopped");
    assert_ne!(renew_time(&leases, "t-1").await, Some(other), "t-1 is unaffected");

    assert!(sim.resume_heartbeat("t-0"));
    until(Duration::from_secs(3), "t-0 renewing again", || async {
        renew_time(&leases, "t-0").await.filter(|t| *t != frozen)
    })
    .await;

    let asked = Instant::now();
    stop.send(true).expect("the engine listens");
    tokio::time::timeout(Duration::from_secs(2), sim.wait()).await.expect("the engine stops promptly");
    assert!(asked.elapsed() < Duration::from_secs(2));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_run_over_the_servers_in_process_transport() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::watcher;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = rudder_apiserver::Config::new(dir.path().to_path_buf());
    config.https_port = 0;
    let server = rudder_apiserver::start(config).await.expect("the API server starts");
    let local = kube::Client::new(server.local_service(), "default");
    let remote = client(&server.kubeconfig).await;

    // The in-process client is an ordinary API client: errors, writes, reads and watches.
    let maps: Api<ConfigMap> = Api::default_namespaced(local.clone());
    match maps.get("missing").await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound")),
        other => panic!("a missing object is a 404: {other:?}"),
    }
    let watch = watcher::watcher(maps.clone(), watcher::Config::default()).default_backoff().applied_objects();
    let mut watch = Box::pin(watch);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "m"}, "data": {"k": "v"}}))
        .expect("a ConfigMap");
    let created = maps.create(&Default::default(), &cm).await.expect("create in process");
    let seen = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut watch))
        .await
        .expect("the watch delivers")
        .expect("an event")
        .expect("no error");
    assert_eq!(seen.metadata.uid, created.metadata.uid);
    let patch = serde_json::json!({"data": {"k": "w"}});
    let patched = maps
        .patch("m", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("patch in process");
    let over_tls = Api::<ConfigMap>::default_namespaced(remote.clone()).get("m").await.expect("get over TLS");
    assert_eq!(over_tls.metadata.resource_version, patched.metadata.resource_version);
    assert_eq!(over_tls.data.and_then(|d| d.get("k").cloned()).as_deref(), Some("w"));

    // Simulated nodes driven through it register, report Ready and renew their Leases.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let options =
        Options { name_prefix: "l".into(), heartbeat_interval: Duration::from_millis(300), ..Options::new(2) };
    let sim = start(local, options, stopped).expect("the engine starts");
    let nodes: Api<Node> = Api::all(remote.clone());
    until(Duration::from_secs(10), "both nodes Ready", || async {
        let list = nodes.list(&Default::default()).await.expect("list").items;
        let ready = list
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        (ready == 2).then_some(())
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(remote, "kube-node-lease");
    let first = until(Duration::from_secs(5), "l-1's lease", || renew_time(&leases, "l-1")).await;
    until(Duration::from_secs(5), "l-1 renewing", || async {
        renew_time(&leases, "l-1").await.filter(|t| *t != first)
    })
    .await;
    stop.send(true).expect("the engine listens");
    tokio::time::timeout(Duration::from_secs(2), sim.wait()).await.expect("the engine stops promptly");
    server.shutdown().await;
}
