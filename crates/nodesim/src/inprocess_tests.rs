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
