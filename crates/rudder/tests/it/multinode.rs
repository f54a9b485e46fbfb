//! Several nodes on one machine: each node is a network namespace on a bridge the test makes,
//! running `rudder agent` (its own containerd, CNI bridge, proxy, DNS and routes); the server
//! runs in the host namespace on the bridge's address. Pods get their node's block of the
//! cluster CIDR from the node IPAM controller, reach pods and Services on the other node through
//! host-gw routes, and a node that loses its link drops out of the Service's endpoints.
//!
//! The node namespaces have no default route, so nothing they send can leave the machine; the
//! only addresses used are the bridge's subnet and the cluster ranges inside the namespaces.
//! Runs only with `RUDDER_E2E_CONTAINERS=1`.

use crate::common::{TestServer, containers_enabled};
use crate::kubectl::{kubectl, manifest, must, text};
use crate::node::{
    CatchUnwind, get_json, remove_node_leftovers, rudder, unmount_under, wait_for, wait_node_ready, wait_ready,
};
use crate::services::get_in;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("command runs");
    assert!(out.status.success(), "{}: {}", args.join(" "), text(&out.stderr));
}

/// A bridge in the host namespace and one network namespace per node, attached with a veth
/// pair, and an egress guard in the host namespace for the cluster ranges; removed on drop.
struct TestNet {
    bridge: String,
    prefix: String,
    nodes: Vec<(String, String)>,
    guard: String,
}

impl TestNet {
    /// `count` nodes at `<prefix>.2`, `<prefix>.3`…; the bridge holds `<prefix>.1`.
    fn create(count: usize) -> TestNet {
        let id = std::process::id() % 100_000;
        let prefix = format!("192.168.{}", 100 + id % 100);
        let guard = format!("rudder_it_guard_{id}");
        let ruleset = rudder_kubelet::network::guard_ruleset(
            &guard,
            &rudder_kubelet::network::uplinks(),
            &["10.42.0.0/16".parse().unwrap(), "10.43.0.0/16".parse().unwrap()],
            None,
        );
        rudder_kubelet::network::nft_apply(&ruleset).expect("the host's egress guard");
        let mut net = TestNet { bridge: format!("rdmb{id}"), prefix, nodes: Vec::new(), guard };
        sh(&["ip", "link", "add", &net.bridge, "type", "bridge"]);
        sh(&["ip", "addr", "add", &format!("{}.1/24", net.prefix), "dev", &net.bridge]);
        sh(&["ip", "link", "set", &net.bridge, "up"]);
        for i in 0..count {
            let ns = format!("rudder-it-{id}-{i}");
            let veth = format!("rdm{id}n{i}");
            sh(&["ip", "netns", "add", &ns]);
            net.nodes.push((ns.clone(), veth.clone()));
            sh(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            sh(&["ip", "link", "set", &veth, "master", &net.bridge, "up"]);
            let ip = net.node_ip(i);
            sh(&["ip", "netns", "exec", &ns, "ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", "eth0", "up"]);
            sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        }
        net
    }

    fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    fn node_ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, i + 2)
    }

    /// Cuts (or restores) node `i`'s link to the others.
    fn set_link(&self, i: usize, up: bool) {
        sh(&["ip", "link", "set", &self.nodes[i].1, if up { "up" } else { "down" }]);
    }

    /// `ip route` inside node `i`'s namespace.
    fn routes(&self, i: usize) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.nodes[i].0, "ip", "-4", "route"]).output();
        out.map(|o| text(&o.stdout)).unwrap_or_default()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for (ns, veth) in &self.nodes {
            let _ = Command::new("ip").args(["link", "del", veth]).stderr(std::process::Stdio::null()).status();
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).status();
        rudder_kubelet::network::nft_delete_table(&self.guard);
    }
}

/// One `rudder agent` inside a node namespace.
struct Agent {
    child: tokio::process::Child,
    name: String,
    dir: tempfile::TempDir,
    cgroup: String,
}

impl Agent {
    fn start(server: &TestServer, net: &TestNet, i: usize) -> Agent {
        let dir = tempfile::tempdir().expect("agent dir");
        let name = format!("it-mn-{}-{i}", std::process::id());
        let cgroup = format!("/rudder-it-mn-{}-{i}", std::process::id());
        let token = server.data_dir().join("agent-token");
        // nsenter moves only the network namespace: the agent keeps the host's /sys (cgroups).
        let child = tokio::process::Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", net.nodes[i].0))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_rudder"))
            .args(["agent", "--server", &format!("https://{}", server.addr)])
            .args(["--token-file", token.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap()])
            .args(["--node-name", &name, "--node-ip", &net.node_ip(i), "--kubelet-port", "0"])
            .args(["--cgroup-root", &cgroup])
            .env("RUDDER_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("rudder agent starts");
        Agent { child, name, dir, cgroup }
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        unmount_under(self.dir.path());
        remove_node_leftovers(self.dir.path(), &self.cgroup);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_talk_across_nodes() {
    if !containers_enabled() {
        eprintln!("skipped: set RUDDER_E2E_CONTAINERS=1 (root, containerd, runc, CNI plugins) to run");
        return;
    }
    let _host = crate::node::exclusive().await;
    let net = TestNet::create(2);
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let image = dir.path().join("busybox.tar");
    let built = rudder(&["image", "build", "busybox", "--output", image.to_str().unwrap()]);
    assert!(built.status.success(), "image build: {}", text(&built.stderr));
    let mut server = TestServer::start_in(
        dir.clone(),
        &["--bind-address", &net.gateway(), "--node-monitor-grace-period-seconds", "20"],
    )
    .await;
    let agents = vec![Agent::start(&server, &net, 0), Agent::start(&server, &net, 1)];

    let outcome = std::panic::AssertUnwindSafe(scenario(&server, &net, &agents, &image)).catch_unwind_boxed().await;

    net.set_link(1, true);
    let _ = kubectl(&server, &["delete", "namespace", "e2e-mn", "--wait=false"]).await;
    let gone = crate::node::wait_for_no_pods(&server, &["-n", "e2e-mn"]).await;
    for agent in agents {
        agent.stop().await;
    }
    server.terminate().await;
    drop(net);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(gone, "the nodes remove their pods once the namespace is deleted");
}

async fn scenario(server: &TestServer, net: &TestNet, agents: &[Agent], image: &std::path::Path) {
    let (a, b) = (&agents[0].name, &agents[1].name);
    let mut cidrs = Vec::new();
    for agent in agents {
        let node = wait_node_ready(server, &agent.name).await;
        let cidr = node["spec"]["podCIDR"].as_str().expect("the node IPAM controller gave a pod CIDR").to_string();
        assert!(cidr.starts_with("10.42.") && cidr.ends_with(".0/24"), "{cidr}");
        assert_eq!(node["spec"]["podCIDRs"][0], cidr.as_str());
        cidrs.push(cidr);
        let agent_dir = agent.dir.path().to_str().unwrap();
        let imported = rudder(&["image", "import", "--data-dir", agent_dir, image.to_str().unwrap()]);
        assert!(imported.status.success(), "image import: {}", text(&imported.stderr));
    }
    assert_ne!(cidrs[0], cidrs[1], "each node has its own block");
    eprintln!("multinode: nodes {a} ({}) and {b} ({}) are Ready", cidrs[0], cidrs[1]);
    let via = format!("{} via {}", cidrs[1], net.node_ip(1));
    wait_for("a host-gw route to the other node's pods", Duration::from_secs(30), || async {
        net.routes(0).contains(&via).then_some(())
    })
    .await;

    must(server, &["create", "namespace", "e2e-mn"]).await;
    let service = |name: &str| {
        format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: e2e-mn}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
"#
        )
    };
    let pod = |name: &str, node: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: e2e-mn, labels: {{app: {name}}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo hello from {name} > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      httpGet: {{path: /index.html, port: 8080}}
      periodSeconds: 1
---
"#
        )
    };
    let node_port = r#"
apiVersion: v1
kind: Service
metadata: {name: web-b-np, namespace: e2e-mn}
spec:
  type: NodePort
  selector: {app: web-b}
  ports: [{port: 80, targetPort: 8080}]
---
"#;
    let yaml = service("web-a") + &service("web-b") + node_port + &pod("web-a", a) + &pod("web-b", b);
    let file = manifest(server, "multinode.yaml", &yaml);
    must(server, &["apply", "-f", &file]).await;
    let pa = wait_ready(server, "e2e-mn", "web-a").await;
    let pb = wait_ready(server, "e2e-mn", "web-b").await;
    let ip_a = pa["status"]["podIP"].as_str().expect("pod IP").to_string();
    let ip_b = pb["status"]["podIP"].as_str().expect("pod IP").to_string();
    assert!(ip_b.starts_with(cidrs[1].trim_end_matches("0/24")), "{ip_b} from {}", cidrs[1]);
    assert_eq!(pb["status"]["hostIP"], net.node_ip(1).as_str());

    eprintln!("multinode: pod to pod across nodes, both ways");
    for (from, to, body) in [("web-a", &ip_b, "hello from web-b"), ("web-b", &ip_a, "hello from web-a")] {
        let answer = answer_within(server, from, to, 8080).await;
        assert_eq!(answer.trim(), body, "{from} → {to}");
    }

    eprintln!("multinode: a Service whose pod is on the other node, by name and by its full name");
    for name in ["web-b", "web-b.e2e-mn.svc.cluster.local"] {
        let answer = answer_within(server, "web-a", name, 80).await;
        assert_eq!(answer.trim(), "hello from web-b", "{name} from web-a");
    }
    let answer = answer_within(server, "web-b", "web-a", 80).await;
    assert_eq!(answer.trim(), "hello from web-a");

    eprintln!("multinode: a NodePort on {a} reaches the pod on {b}");
    let np = get_json(server, &["get", "service", "web-b-np", "-n", "e2e-mn", "-o", "json"]).await.expect("service");
    let port = np["spec"]["ports"][0]["nodePort"].as_u64().expect("node port");
    let url = format!("http://{}:{port}/", net.node_ip(0));
    let body = wait_for(&format!("{url} to answer"), Duration::from_secs(30), || async {
        let (code, body) = crate::node::curl(&url);
        (code == Some(0)).then_some(body)
    })
    .await;
    assert_eq!(body.trim(), "hello from web-b", "{url}");

    eprintln!("multinode: in-cluster API access: Service variables, the token volume, the kubernetes Service");
    in_cluster_api(server, &pa).await;

    eprintln!("multinode: node {b} loses its link; its endpoints leave the Service");
    net.set_link(1, false);
    wait_for("web-b's address to leave the ready endpoints", Duration::from_secs(90), || async {
        let ep = get_json(server, &["get", "endpoints", "web-b", "-n", "e2e-mn", "-o", "json"]).await?;
        let ready = ep["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["addresses"].as_array().into_iter().flatten())
            .any(|addr| addr["ip"] == ip_b.as_str());
        (!ready).then_some(())
    })
    .await;
    let node = get_json(server, &["get", "node", b, "-o", "json"]).await.expect("node");
    let ready = node["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").cloned();
    assert_eq!(ready.unwrap_or(Value::Null)["status"], "Unknown", "the lost node is Unknown");
    let slices = get_json(
        server,
        &["get", "endpointslices", "-n", "e2e-mn", "-l", "kubernetes.io/service-name=web-b", "-o", "json"],
    )
    .await
    .expect("slices");
    let endpoints: Vec<&Value> = slices["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .collect();
    assert!(
        endpoints.iter().all(|e| e["conditions"]["ready"] != true),
        "no ready endpoint on the lost node: {endpoints:?}"
    );
    let out = kubectl(server, &["exec", "-n", "e2e-mn", "web-a", "--", "nc", "-w", "3", "web-b", "80"]).await;
    assert!(!out.status.success(), "the Service has no ready endpoint left: {}", text(&out.stdout));

    eprintln!("multinode: node {b} comes back; its pod is Ready and serves again");
    net.set_link(1, true);
    wait_node_ready(server, b).await;
    wait_ready(server, "e2e-mn", "web-b").await;
    let answer = answer_within(server, "web-a", "web-b", 80).await;
    assert_eq!(answer.trim(), "hello from web-b");
}

/// The body of `GET /` from inside `pod`, retried for a while (routes, rules and DNS settle).
async fn answer_within(server: &TestServer, pod: &str, host: &str, port: u64) -> String {
    wait_for(&format!("{pod} to reach {host}:{port}"), Duration::from_secs(60), || async {
        let (ok, body, err, _) = get_in(server, "e2e-mn", pod, host, port).await;
        if !ok {
            eprintln!("  {pod} → {host}:{port} not yet: {}", err.trim());
        }
        ok.then_some(body)
    })
    .await
}

/// The node IPAM controller without containers: blocks in order around the ones nodes already
/// hold, `CIDRNotAvailable` when the cluster CIDR is full, a deleted node's block handed on.
#[tokio::test]
async fn nodes_get_blocks_of_the_cluster_cidr() {
    use k8s_openapi::api::core::v1::{Event, Node};
    use kube::api::{Api, DeleteParams, ListParams, PostParams};
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir, &["--disable-scheduler", "--cluster-cidr", "10.42.0.0/23"]).await;
    let client = server.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node = |name: &str, cidr: Option<&str>| -> Node {
        let spec = cidr.map(|c| serde_json::json!({ "podCIDR": c })).unwrap_or(serde_json::json!({}));
        serde_json::from_value(serde_json::json!({ "metadata": { "name": name }, "spec": spec })).unwrap()
    };
    let cidr_of = |name: &'static str| {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get(name).await.ok()?;
            n.spec?.pod_cidr.filter(|c| !c.is_empty())
        }
    };
    nodes.create(&PostParams::default(), &node("ipam-held", Some("10.42.0.0/24"))).await.unwrap();
    nodes.create(&PostParams::default(), &node("ipam-one", None)).await.unwrap();
    let one = wait_for("ipam-one's block", Duration::from_secs(20), || cidr_of("ipam-one")).await;
    assert_eq!(one, "10.42.1.0/24", "the held block is skipped");
    let n = nodes.get("ipam-one").await.unwrap();
    assert_eq!(n.spec.unwrap().pod_cidrs.unwrap(), ["10.42.1.0/24"]);

    nodes.create(&PostParams::default(), &node("ipam-two", None)).await.unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event = wait_for("a CIDRNotAvailable event", Duration::from_secs(20), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("CIDRNotAvailable") && e.involved_object.name.as_deref() == Some("ipam-two")
        })
    })
    .await;
    assert_eq!(event.message.as_deref(), Some("Node ipam-two status is now: CIDRNotAvailable"));
    assert_eq!(cidr_of("ipam-two").await, None);

    nodes.delete("ipam-one", &DeleteParams::default()).await.unwrap();
    let two = wait_for("ipam-two's block once ipam-one is gone", Duration::from_secs(20), || cidr_of("ipam-two")).await;
    assert_eq!(two, "10.42.1.0/24");

    let bad = rudder(&["server", "--cluster-cidr", "10.42.0.0", "--data-dir", server.data_dir().to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("--cluster-cidr"), "{}", text(&bad.stderr));
}

/// A pod finds the API as in-cluster clients do: `KUBERNETES_SERVICE_HOST`/`_PORT`, the token,
/// CA and namespace under `/var/run/secrets/kubernetes.io/serviceaccount`, and a TLS request
/// from the pod's network to the `kubernetes` Service (curl run in the pod's network namespace,
/// verifying the server against the mounted CA, authenticated by the mounted token).
async fn in_cluster_api(server: &TestServer, pod: &Value) {
    let name = pod["metadata"]["name"].as_str().unwrap();
    let exec = |cmd: &'static str| {
        let name = name.to_string();
        async move { must(server, &["exec", "-n", "e2e-mn", &name, "--", "sh", "-c", cmd]).await }
    };
    let vars = exec("echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT $WEB_B_SERVICE_HOST").await;
    let web_b = get_json(server, &["get", "service", "web-b", "-n", "e2e-mn", "-o", "json"]).await.expect("service");
    assert_eq!(vars.trim(), format!("10.43.0.1:443 {}", web_b["spec"]["clusterIP"].as_str().unwrap()));
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert_eq!(exec("cat /var/run/secrets/kubernetes.io/serviceaccount/namespace").await, "e2e-mn");
    let ca = exec("cat /var/run/secrets/kubernetes.io/serviceaccount/ca.crt").await;
    let server_ca = std::fs::read_to_string(server.data_dir().join("tls").join("ca.crt")).expect("server CA");
    assert_eq!(ca.trim(), server_ca.trim(), "the pod holds the cluster CA");
    let token = exec("cat /var/run/secrets/kubernetes.io/serviceaccount/token").await;
    assert!(token.split('.').count() == 3, "a JWT in {dir}/token");

    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let pid = wait_for("a process of the pod", Duration::from_secs(10), || async { process_in_pod(uid) }).await;
    let ca_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(ca_file.path(), &ca).unwrap();
    let url = format!("https://kubernetes.default.svc/api/v1/namespaces/e2e-mn/pods/{name}");
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["curl", "-sS", "--max-time", "5", "--resolve", "kubernetes.default.svc:443:10.43.0.1"])
        .args(["--cacert", ca_file.path().to_str().unwrap(), "-H", &format!("Authorization: Bearer {}", token.trim())])
        .arg(&url)
        .output()
        .expect("nsenter runs curl");
    let answer: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("JSON from {url}: {} {}", text(&out.stdout), text(&out.stderr)));
    assert_eq!(answer["kind"], "Pod", "{answer}");
    assert_eq!(answer["metadata"]["name"], name);
}

/// A process running in the pod with `uid` (its cgroup path names the pod).
fn process_in_pod(uid: &str) -> Option<u32> {
    let needle = format!("pod{uid}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cgroups = std::fs::read_to_string(entry.path().join("cgroup")).ok()?;
        cgroups.contains(&needle).then_some(pid)
    })
}
