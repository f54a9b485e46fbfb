//! Services on real containers through the service proxy (`rudder-proxy`, nftables): a
//! Deployment behind a ClusterIP/NodePort Service answers on the cluster IP from a pod and from
//! the host, on the NodePort at the node's bridge address, a Service without endpoints is
//! refused at once, a pod reaches itself through its own Service (hairpin), scaling down moves
//! traffic to the remaining pod, a LoadBalancer Service gets the node's address, and the
//! proxy's table is gone after the server stops.
//!
//! Runs only with `RUDDER_E2E_CONTAINERS=1` (root, containerd, runc, CNI plugins, nftables).
//! Health check node ports (allocation by the API server, the proxy's HTTP answers on
//! loopback) are tested without containers.
//! Traffic goes only to the node's own pod range and Service range; the node agent's egress
//! guard (installed before any pod exists) keeps either from ever leaving through the uplink.

use crate::common::{TestServer, containers_enabled};
use crate::kubectl::{kubectl, manifest, must, text};
use crate::node::{
    CatchUnwind, curl, get_json, remove_node_leftovers, rudder, unmount_under, wait_for, wait_node_ready, wait_ready,
};
use serde_json::Value;
use std::time::{Duration, Instant};

/// `GET /` over HTTP/1.0 with busybox `nc` inside a pod (busybox `wget` crashes in these
/// static images): (a 200 answer, its body, nc's stderr, how long it took).
pub(crate) async fn get_in(
    server: &TestServer,
    ns: &str,
    pod: &str,
    host: &str,
    port: u64,
) -> (bool, String, String, Duration) {
    let start = Instant::now();
    let script = format!(r#"printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 {host} {port}"#);
    let out = kubectl(server, &["exec", "-n", ns, pod, "--", "sh", "-c", &script]).await;
    let took = start.elapsed();
    let answer = text(&out.stdout);
    let ok = out.status.success() && answer.starts_with("HTTP/1.1 200");
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (ok, body, text(&out.stderr), took)
}

fn nft_tables() -> String {
    let out = std::process::Command::new("nft").args(["list", "tables"]).output().expect("nft runs");
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_reach_pods_through_the_proxy() {
    if !containers_enabled() {
        eprintln!("skipped: set RUDDER_E2E_CONTAINERS=1 (root, containerd, runc, CNI plugins) to run");
        return;
    }
    let _host = crate::node::exclusive().await;
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let node = format!("it-svc-{}", std::process::id());
    // containers.rs takes n and n + 1 for its nodes in the same test binary.
    let n = (std::process::id() % 200) + 42;
    let cidr = format!("10.42.{n}.0/24");
    let gateway = format!("10.42.{n}.1");
    let cgroup = format!("/rudder-it-svc-{}", std::process::id());
    let image = dir.path().join("busybox.tar");
    let built = rudder(&["image", "build", "busybox", "--output", image.to_str().unwrap()]);
    assert!(built.status.success(), "image build: {}", text(&built.stderr));

    let mut server = TestServer::start_with_agent(
        dir.clone(),
        &[
            "--node-name",
            &node,
            "--pod-cidr",
            &cidr,
            "--kubelet-port",
            "0",
            "--cgroup-root",
            &cgroup,
            "--node-ip",
            "127.0.0.1",
        ],
    )
    .await;
    let table = rudder_proxy::Options::new(node.clone(), vec![]).table;
    let outcome = std::panic::AssertUnwindSafe(async {
        wait_node_ready(&server, &node).await;
        let imported =
            rudder(&["image", "import", "--data-dir", dir.path().to_str().unwrap(), image.to_str().unwrap()]);
        assert!(imported.status.success(), "image import: {}", text(&imported.stderr));
        wait_for("the proxy's table", Duration::from_secs(30), || async {
            nft_tables().contains(&format!("table inet {table}\n")).then_some(())
        })
        .await;
        scenario(&server, &gateway).await;
    })
    .catch_unwind_boxed()
    .await;

    let _ = kubectl(&server, &["delete", "namespace", "e2e-svc", "--wait=false"]).await;
    crate::node::wait_for_no_pods(&server, &["-n", "e2e-svc"]).await;
    server.terminate().await;
    let left = nft_tables();
    unmount_under(dir.path());
    remove_node_leftovers(dir.path(), &cgroup);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(!left.contains(&format!("table inet {table}\n")), "the proxy removes its table on shutdown: {left}");
}

async fn scenario(server: &TestServer, gateway: &str) {
    must(server, &["create", "namespace", "e2e-svc"]).await;
    let file = manifest(
        server,
        "services.yaml",
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: e2e-svc}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:latest
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /index.html, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: e2e-svc}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: web, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: e2e-svc}
spec:
  selector: {app: nobody}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: e2e-svc, labels: {app: solo}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo hello from solo > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      httpGet: {path: /index.html, port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: solo, namespace: e2e-svc}
spec:
  selector: {app: solo}
  ports: [{port: 8000, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: e2e-svc}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox:latest, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}
"#,
    );
    must(server, &["apply", "-f", &file]).await;
    let svc = get_json(server, &["get", "service", "web", "-n", "e2e-svc", "-o", "json"]).await.expect("service web");
    let ip = svc["spec"]["clusterIP"].as_str().expect("cluster IP").to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().expect("node port");
    assert!(ip.starts_with("10.43."), "{ip}");
    let empty = get_json(server, &["get", "service", "empty", "-n", "e2e-svc", "-o", "json"]).await.expect("service");
    let empty_ip = empty["spec"]["clusterIP"].as_str().expect("cluster IP").to_string();
    let solo = get_json(server, &["get", "service", "solo", "-n", "e2e-svc", "-o", "json"]).await.expect("service");
    let solo_ip = solo["spec"]["clusterIP"].as_str().expect("cluster IP").to_string();
    wait_ready(server, "e2e-svc", "client").await;
    wait_ready(server, "e2e-svc", "solo").await;

    eprintln!("services: ClusterIP from a pod reaches both replicas");
    let url = format!("http://{ip}/");
    let mut seen = std::collections::BTreeSet::new();
    let start = Instant::now();
    while seen.len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(90), "both replicas answer on {url}; seen {seen:?}");
        let (ok, body, err, _) = get_in(server, "e2e-svc", "client", &ip, 80).await;
        if ok {
            assert!(body.starts_with("hello from web-"), "body through the Service: {body:?}");
            seen.insert(body.trim().to_string());
        } else {
            eprintln!("  not yet: {}", err.trim());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    eprintln!("services: cluster DNS names the Service (full name, search path, kube-dns)");
    let out =
        must(server, &["exec", "-n", "e2e-svc", "client", "--", "nslookup", "web.e2e-svc.svc.cluster.local"]).await;
    assert!(out.contains(&ip), "nslookup answers the cluster IP {ip}: {out}");
    let resolv = must(server, &["exec", "-n", "e2e-svc", "client", "--", "cat", "/etc/resolv.conf"]).await;
    assert!(
        resolv.contains("nameserver 10.43.0.10") && resolv.contains("search e2e-svc.svc.cluster.local"),
        "{resolv}"
    );
    assert!(resolv.contains("ndots:5"), "{resolv}");
    for name in ["web", "web.e2e-svc.svc.cluster.local"] {
        let (ok, body, err, _) = get_in(server, "e2e-svc", "client", name, 80).await;
        assert!(ok && body.starts_with("hello from web-"), "http://{name}/ through DNS and the proxy: {body:?} {err}");
    }
    let dns =
        get_json(server, &["get", "service", "kube-dns", "-n", "kube-system", "-o", "json"]).await.expect("kube-dns");
    assert_eq!(dns["spec"]["clusterIP"], "10.43.0.10");

    eprintln!("services: ClusterIP from the host");
    let (code, body) = curl(&url);
    assert!(code == Some(0) && body.starts_with("hello from web-"), "host → cluster IP: {code:?} {body:?}");

    eprintln!("services: NodePort on the node's bridge address, from a pod and from the host");
    let np_url = format!("http://{gateway}:{node_port}/");
    let (ok, body, err, _) = get_in(server, "e2e-svc", "client", gateway, node_port).await;
    assert!(ok && body.starts_with("hello from web-"), "pod → node port: {body:?} {err}");
    let (code, body) = curl(&np_url);
    assert!(code == Some(0) && body.starts_with("hello from web-"), "host → node port: {code:?} {body:?}");

    eprintln!("services: no endpoints is refused at once");
    let (ok, body, err, took) = get_in(server, "e2e-svc", "client", &empty_ip, 80).await;
    assert!(!ok && body.is_empty(), "a Service without endpoints answered: {body:?}");
    assert!(err.contains("Connection refused"), "refused, not timed out: {err:?} after {took:?}");
    let started = Instant::now();
    let (code, body) = curl(&format!("http://{empty_ip}/"));
    assert_eq!((code, body.as_str()), (Some(7), ""), "curl: connection refused");
    assert!(started.elapsed() < Duration::from_secs(2), "refused fast, took {:?}", started.elapsed());
    // A port the Service does not have is refused too, not routed anywhere.
    let (code, _) = curl(&format!("http://{ip}:81/"));
    assert_eq!(code, Some(7), "an unserved port of a cluster IP is refused");

    eprintln!("services: hairpin (a pod through its own Service)");
    let (ok, body, err, _) = get_in(server, "e2e-svc", "solo", &solo_ip, 8000).await;
    assert!(ok && body.trim() == "hello from solo", "hairpin: {body:?} {err}");

    eprintln!("services: scaling down moves all traffic to the remaining replica");
    must(server, &["scale", "deployment", "web", "-n", "e2e-svc", "--replicas=1"]).await;
    let left = wait_for("one replica left", Duration::from_secs(60), || async {
        let pods = get_json(server, &["get", "pods", "-n", "e2e-svc", "-l", "app=web", "-o", "json"]).await?;
        let items = pods["items"].as_array()?;
        let live: Vec<&Value> = items.iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect();
        (items.len() == 1 && live.len() == 1)
            .then(|| live[0]["metadata"]["name"].as_str().unwrap_or_default().to_string())
    })
    .await;
    wait_for("every answer from the remaining replica", Duration::from_secs(30), || async {
        for _ in 0..6 {
            let (ok, body, _, _) = get_in(server, "e2e-svc", "client", &ip, 80).await;
            if !ok || body.trim() != format!("hello from {left}") {
                return None;
            }
        }
        Some(())
    })
    .await;

    eprintln!("services: LoadBalancer gets the node address");
    must(server, &["patch", "service", "web", "-n", "e2e-svc", "-p", r#"{"spec":{"type":"LoadBalancer"}}"#]).await;
    let ingress = wait_for("a load balancer ingress", Duration::from_secs(30), || async {
        let s = get_json(server, &["get", "service", "web", "-n", "e2e-svc", "-o", "json"]).await?;
        let ingress = s["status"]["loadBalancer"]["ingress"].as_array()?.clone();
        (!ingress.is_empty()).then_some(ingress)
    })
    .await;
    assert_eq!(ingress, vec![serde_json::json!({"ip": "127.0.0.1", "ipMode": "VIP"})]);
    let (code, body) = curl(&np_url);
    assert!(code == Some(0) && body.starts_with("hello from web-"), "node port of the LoadBalancer: {code:?} {body:?}");
}

/// `GET /` on 127.0.0.1:`port`: (status code, body).
async fn health_check(port: u16) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\n\r\n").await.ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// A `LoadBalancer` with `externalTrafficPolicy: Local` gets a health check node port from
/// the node port range (a requested one is honoured once, released on a policy change and on
/// delete), and the proxy's health server answers on it: 200 with the node's ready endpoints,
/// 503 without, in upstream's JSON shape. The Service has no selector: its Endpoints (naming
/// the node) reach the slices through the mirroring controller. Only loopback is used.
#[tokio::test]
async fn health_check_node_ports_are_allocated_and_served() {
    use crate::common::raw_json;
    use k8s_openapi::api::core::v1::{Endpoints, Service};
    use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
    use serde_json::json;

    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &[]).await;
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let lb = |name: &str, extra: Value| -> Value {
        let mut spec =
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"name": "http", "port": 80}]});
        for (k, v) in extra.as_object().expect("object") {
            spec[k] = v.clone();
        }
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
    };
    let created: Service =
        services.create(&pp, &serde_json::from_value(lb("hc", json!({}))).expect("svc")).await.expect("create");
    let port = created.spec.as_ref().and_then(|s| s.health_check_node_port).expect("a health check node port");
    assert!((30000..=32767).contains(&port), "{port}");
    let shown = must(&server, &["get", "service", "hc", "-o", "jsonpath={.spec.healthCheckNodePort}"]).await;
    assert_eq!(shown.trim(), port.to_string());

    // Asking for a port that is taken: upstream's internal error.
    let path = "/api/v1/namespaces/default/services";
    let (status, body) =
        raw_json(&client, "POST", path, Some("application/json"), lb("other", json!({"healthCheckNodePort": port})))
            .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body["message"],
        format!(
            "Internal error occurred: failed to allocate requested HealthCheck NodePort {port}: provided port is already allocated"
        )
    );
    // Only LoadBalancers with the Local policy may have one.
    let (status, body) = raw_json(
        &client,
        "POST",
        path,
        Some("application/json"),
        lb("cluster", json!({"externalTrafficPolicy": "Cluster", "healthCheckNodePort": 31999})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("spec.healthCheckNodePort"), "{body}");

    // It cannot change while needed.
    let (status, body) = raw_json(
        &client,
        "PATCH",
        &format!("{path}/hc"),
        Some("application/merge-patch+json"),
        json!({"spec": {"healthCheckNodePort": if port == 32767 { 32766 } else { port + 1 }}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("field is immutable"), "{body}");

    // The proxy's health server on loopback for node `n1`.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let health = tokio::spawn(rudder_proxy::healthcheck::run(
        client.clone(),
        "n1".into(),
        "127.0.0.1".parse().expect("ip"),
        stopped,
    ));
    let port = u16::try_from(port).expect("port");
    let (code, body) = wait_for("a 503 without endpoints", Duration::from_secs(30), || health_check(port)).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(
        body,
        "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"hc\"\n\t},\n\t\"localEndpoints\": 0,\n\t\"serviceProxyHealthy\": true\n}"
    );
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let ep = json!({"metadata": {"name": "hc"}, "subsets": [{
        "addresses": [{"ip": "192.0.2.7", "nodeName": "n1"}, {"ip": "192.0.2.8", "nodeName": "n2"}],
        "notReadyAddresses": [{"ip": "192.0.2.9", "nodeName": "n1"}],
        "ports": [{"name": "http", "port": 8080}]}]});
    endpoints.create(&pp, &serde_json::from_value(ep).expect("endpoints")).await.expect("create endpoints");
    let body = wait_for("a 200 with one local endpoint", Duration::from_secs(30), || async {
        let (code, body) = health_check(port).await?;
        (code == 200).then_some(body)
    })
    .await;
    let parsed: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(parsed["localEndpoints"], 1, "{body}");
    assert_eq!(parsed["service"], json!({"namespace": "default", "name": "hc"}));

    // externalTrafficPolicy: Cluster: the port is dropped, released and no longer served.
    let patch = json!({"spec": {"externalTrafficPolicy": "Cluster"}});
    let svc = services.patch("hc", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    assert_eq!(svc.spec.and_then(|s| s.health_check_node_port), None);
    wait_for("the port closes", Duration::from_secs(30), || async { health_check(port).await.is_none().then_some(()) })
        .await;
    let other: Service = services
        .create(&pp, &serde_json::from_value(lb("other", json!({"healthCheckNodePort": port}))).expect("svc"))
        .await
        .expect("the released port can be had");
    assert_eq!(other.spec.and_then(|s| s.health_check_node_port), Some(i32::from(port)));
    // Delete releases it too.
    services.delete("other", &DeleteParams::default()).await.expect("delete");
    services
        .create(&pp, &serde_json::from_value(lb("third", json!({"healthCheckNodePort": port}))).expect("svc"))
        .await
        .expect("free after delete");
    let _ = stop.send(true);
    let _ = health.await;
}
