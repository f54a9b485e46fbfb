//! End to end on real containers: `rudder server` with its node agent (a managed containerd,
//! runc, the CNI bridge), the project's own busybox image imported offline, and the real
//! kubectl. Needs root and the packages `scripts/setup-node` installs; runs only with
//! `RUDDER_E2E_CONTAINERS=1` (CI sets it).
//!
//! One server serves every scenario in turn (starting containerd per scenario would cost more
//! than the scenarios); each scenario uses its own namespace and the end removes everything.

use crate::common::{TestServer, containers_enabled};
use crate::kubectl::{kubectl, manifest, must, must_json, text};
use crate::node::{
    CatchUnwind, curl, pod_json, remove_node_leftovers, rudder, unmount_under, wait_for, wait_node_ready, wait_phase,
    wait_ready,
};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A /24 inside 10.42.0.0/16 no other run on this machine is likely to use at the same time.
fn unique_pod_cidr() -> String {
    let n = (std::process::id() % 200) + 40;
    format!("10.42.{n}.0/24")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_run_in_real_containers() {
    if !containers_enabled() {
        eprintln!("skipped: set RUDDER_E2E_CONTAINERS=1 (root, containerd, runc, CNI plugins) to run");
        return;
    }
    let _host = crate::node::exclusive().await;
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let node = format!("it-node-{}", std::process::id());
    let cidr = unique_pod_cidr();
    let cgroup = format!("/rudder-it-{}", std::process::id());
    let image = dir.path().join("busybox.tar");
    let built = rudder(&["image", "build", "busybox", "--output", image.to_str().unwrap()]);
    assert!(built.status.success(), "image build: {}", text(&built.stderr));

    let node_args = [
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
    ];
    let mut server = TestServer::start_with_agent(dir.clone(), &node_args).await;
    wait_node_ready(&server, &node).await;
    let imported = rudder(&["image", "import", "--data-dir", dir.path().to_str().unwrap(), image.to_str().unwrap()]);
    assert!(imported.status.success(), "image import: {}", text(&imported.stderr));
    assert!(text(&imported.stdout).contains("docker.io/library/busybox:latest"), "{}", text(&imported.stdout));

    let mut result = std::panic::AssertUnwindSafe(scenarios(&server, &node)).catch_unwind_boxed().await;
    if result.is_ok() {
        eprintln!("containers: a second node joins with `rudder agent`");
        result = std::panic::AssertUnwindSafe(agent_joins(&server, &image)).catch_unwind_boxed().await;
    }
    if result.is_ok() {
        eprintln!("containers: pods keep running across a restart of the server and its node agent");
        let before = pod_json(&server, "e2e-exec", "sh").await.expect("the exec pod exists");
        let id = before["status"]["containerStatuses"][0]["containerID"].clone();
        let port_of = |n: &Value| n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].clone();
        let old_port = port_of(&must_json(&server, &["get", "node", &node, "-o", "json"]).await);
        server.terminate().await;
        server = TestServer::start_with_agent(dir.clone(), &node_args).await;
        result = std::panic::AssertUnwindSafe(async {
            // The restarted agent listens on a new port (0 picks one) and reports it.
            wait_for("the node to report its new kubelet port", Duration::from_secs(60), || async {
                let n = must_json(&server, &["get", "node", &node, "-o", "json"]).await;
                (port_of(&n) != old_port).then_some(n)
            })
            .await;
            let after = wait_ready(&server, "e2e-exec", "sh").await;
            let c = &after["status"]["containerStatuses"][0];
            assert_eq!(c["containerID"], id, "the same container runs on");
            assert_eq!(c["restartCount"], 0);
            assert_eq!(
                must(&server, &["exec", "sh", "-n", "e2e-exec", "--", "echo", "still here"]).await,
                "still here\n"
            );
        })
        .catch_unwind_boxed()
        .await;
    }

    // Clean up whatever the scenarios left, then the node itself.
    let _ = kubectl(
        &server,
        &[
            "delete",
            "namespace",
            "e2e-agent",
            "e2e-web",
            "e2e-config",
            "e2e-exit",
            "e2e-probe",
            "e2e-exec",
            "e2e-deploy",
            "--wait=false",
        ],
    )
    .await;
    let gone = crate::node::wait_for_no_pods(&server, &["-A"]).await;
    server.terminate().await;
    unmount_under(dir.path());
    remove_node_leftovers(dir.path(), &cgroup);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(gone, "every pod is gone once the namespaces are deleted");
}

/// `rudder agent` joins with the server's token (bootstrap token → CSR → client certificate,
/// then a serving certificate), registers a second node and runs a pod there; the API server
/// reaches its kubelet for logs and exec.
async fn agent_joins(server: &TestServer, image: &Path) {
    let dir = tempfile::tempdir().expect("agent dir");
    let node = format!("it-agent-{}", std::process::id());
    let cidr = format!("10.42.{}.0/24", (std::process::id() % 200) + 41);
    let cgroup = format!("/rudder-it-agent-{}", std::process::id());
    let token_file = server.data_dir().join("agent-token");
    let mut agent = tokio::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["agent", "--server", &format!("https://{}", server.addr), "--token-file", token_file.to_str().unwrap()])
        .args(["--data-dir", dir.path().to_str().unwrap(), "--node-name", &node, "--pod-cidr", &cidr])
        .args(["--kubelet-port", "0", "--cgroup-root", &cgroup, "--node-ip", "127.0.0.1"])
        .env("RUDDER_LOG", "error")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("rudder agent starts");
    let outcome = std::panic::AssertUnwindSafe(async {
        wait_node_ready(server, &node).await;
        let csrs = must(server, &["get", "csr", "-o", "json"]).await;
        let csrs: Value = serde_json::from_str(&csrs).unwrap();
        let signers: Vec<&str> = csrs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"]["certificate"].is_string())
            .filter_map(|c| c["spec"]["signerName"].as_str())
            .collect();
        assert!(signers.contains(&"kubernetes.io/kube-apiserver-client-kubelet"), "{signers:?}");
        assert!(signers.contains(&"kubernetes.io/kubelet-serving"), "{signers:?}");
        let imported =
            rudder(&["image", "import", "--data-dir", dir.path().to_str().unwrap(), image.to_str().unwrap()]);
        assert!(imported.status.success(), "image import on the agent: {}", text(&imported.stderr));
        must(server, &["create", "namespace", "e2e-agent"]).await;
        let overrides = format!(
            r#"{{"spec":{{"nodeSelector":{{"kubernetes.io/hostname":"{node}"}},"terminationGracePeriodSeconds":1}}}}"#
        );
        must(
            server,
            &[
                "run",
                "there",
                "-n",
                "e2e-agent",
                "--image=busybox:latest",
                "--image-pull-policy=IfNotPresent",
                "--overrides",
                &overrides,
                "--",
                "sh",
                "-c",
                "echo running on the agent; sleep 3600",
            ],
        )
        .await;
        let pod = wait_ready(server, "e2e-agent", "there").await;
        assert_eq!(pod["spec"]["nodeName"], node.as_str());
        let ip = pod["status"]["podIP"].as_str().unwrap();
        assert!(ip.starts_with(cidr.trim_end_matches("0/24")), "pod IP {ip} from the agent's CIDR {cidr}");
        let logs = must(server, &["logs", "there", "-n", "e2e-agent"]).await;
        assert_eq!(logs, "running on the agent\n");
        let out = must(server, &["exec", "there", "-n", "e2e-agent", "--", "hostname"]).await;
        assert_eq!(out.trim(), "there");
        must(server, &["delete", "namespace", "e2e-agent", "--wait=false"]).await;
        wait_for("the agent's pod to be gone", Duration::from_secs(60), || async {
            let out = kubectl(server, &["get", "pods", "-n", "e2e-agent", "-o", "name"]).await;
            (out.status.success() && text(&out.stdout).trim().is_empty()).then_some(Value::Null)
        })
        .await;
    })
    .catch_unwind_boxed()
    .await;
    if let Some(pid) = agent.id() {
        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), agent.wait()).await;
    unmount_under(dir.path());
    remove_node_leftovers(dir.path(), &cgroup);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenarios(server: &TestServer, node: &str) {
    let step = |name: &str| eprintln!("containers: {name}");
    step("HTTP server on the pod IP");
    http_server_on_the_pod_ip(server, node).await;
    step("port-forward");
    port_forward_to_the_pod(server).await;
    step("logs -f, --tail, --timestamps");
    logs_follow_tail_and_timestamps(server).await;
    step("env and volumes from ConfigMaps, Secrets and the downward API");
    configuration_from_configmaps_and_secrets(server).await;
    step("exit codes, termination messages, OOMKilled");
    exit_codes_and_phases(server).await;
    step("node-side admission refuses a pod that does not fit");
    admission_refuses_what_does_not_fit(server, node).await;
    step("liveness probe restarts and logs --previous");
    liveness_failure_restarts_the_container(server).await;
    step("exec (WebSocket and SPDY), stdin, exit codes, cp");
    exec_with_stdin_and_exit_codes(server).await;
    step("Deployment of three replicas");
    deployment_of_three_replicas(server).await;
    if crate::python::python_skipped() {
        step("official Python client: skipped (RUDDER_SKIP_PYTHON=1)");
    } else {
        step("official Python client: pod, logs, exec");
        crate::python::run_pytest(server, &["test_node_pods.py"], &[("RUDDER_NODE_TESTS", "1")]).await;
    }
}

async fn http_server_on_the_pod_ip(server: &TestServer, node: &str) {
    must(server, &["create", "namespace", "e2e-web"]).await;
    let file = manifest(
        server,
        "web.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: e2e-web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo hello from rudder > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /index.html, port: 8080}
      periodSeconds: 1
"#,
    );
    must(server, &["apply", "-f", &file]).await;
    let pod = wait_ready(server, "e2e-web", "web").await;
    assert_eq!(pod["spec"]["nodeName"], node);
    let ip = pod["status"]["podIP"].as_str().expect("pod IP").to_string();
    assert!(ip.starts_with("10.42."), "pod IP {ip} from the node's pod CIDR");
    assert_eq!(pod["status"]["hostIP"], "127.0.0.1");
    let c = &pod["status"]["containerStatuses"][0];
    assert_eq!(c["ready"], true);
    assert!(c["containerID"].as_str().unwrap().starts_with("containerd://"));
    assert_eq!(pod["status"]["qosClass"], "BestEffort");
    let (code, body) = curl(&format!("http://{ip}:8080/index.html"));
    assert!(code == Some(0) && body.trim() == "hello from rudder", "curl to the pod IP answered {code:?} {body:?}");
    let logs = must(server, &["logs", "web", "-n", "e2e-web"]).await;
    let _ = logs;
    let events = must(server, &["get", "events", "-n", "e2e-web", "-o", "json"]).await;
    let events: Value = serde_json::from_str(&events).unwrap();
    let reasons: Vec<&str> = events["items"].as_array().unwrap().iter().filter_map(|e| e["reason"].as_str()).collect();
    for r in ["Pulled", "Created", "Started"] {
        assert!(reasons.contains(&r), "event {r} recorded: {reasons:?}");
    }
}

/// Reads lines from a child's stdout until one satisfies `want`.
async fn read_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> String {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if want(&line) {
                return Some(line);
            }
        }
        None
    })
    .await;
    found.ok().flatten().unwrap_or_else(|| panic!("no output line with {what}"))
}

async fn port_forward_to_the_pod(server: &TestServer) {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = crate::kubectl::command(server, &["port-forward", "-n", "e2e-web", "pod/web", ":8080"]);
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl port-forward starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line =
        read_until(&mut lines, "Forwarding from 127.0.0.1", |l| l.starts_with("Forwarding from 127.0.0.1:")).await;
    let port = line
        .trim_start_matches("Forwarding from 127.0.0.1:")
        .split_whitespace()
        .next()
        .expect("local port")
        .to_string();
    for _ in 0..2 {
        let (code, body) = curl(&format!("http://127.0.0.1:{port}/index.html"));
        assert!(code == Some(0) && body.trim() == "hello from rudder", "through port-forward: {code:?} {body:?}");
    }
    let _ = child.kill().await;
}

async fn logs_follow_tail_and_timestamps(server: &TestServer) {
    use tokio::io::AsyncBufReadExt;
    let file = manifest(
        server,
        "ticker.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ticker, namespace: e2e-web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done"]
"#,
    );
    must(server, &["apply", "-f", &file]).await;
    wait_phase(server, "e2e-web", "ticker", "Running").await;
    let mut cmd = crate::kubectl::command(server, &["logs", "-f", "-n", "e2e-web", "ticker"]);
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl logs -f starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // Lines written after the follow began arrive while it runs.
    let first = read_until(&mut lines, "a tick", |l| l.starts_with("tick-")).await;
    let n: u64 = first.trim_start_matches("tick-").parse().unwrap();
    read_until(&mut lines, "a later tick", |l| {
        l.strip_prefix("tick-").and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v >= n + 5)
    })
    .await;
    let _ = child.kill().await;
    let tail = must(server, &["logs", "-n", "e2e-web", "ticker", "--tail=2"]).await;
    assert_eq!(tail.lines().count(), 2, "--tail=2: {tail:?}");
    let stamped = must(server, &["logs", "-n", "e2e-web", "ticker", "--tail=1", "--timestamps"]).await;
    let (stamp, rest) = stamped.trim().split_once(' ').expect("timestamp then line");
    assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && rest.starts_with("tick-"), "{stamped:?}");
}

async fn configuration_from_configmaps_and_secrets(server: &TestServer) {
    must(server, &["create", "namespace", "e2e-config"]).await;
    must(
        server,
        &["create", "configmap", "cfg", "-n", "e2e-config", "--from-literal=color=blue", "--from-literal=size=10"],
    )
    .await;
    must(server, &["create", "secret", "generic", "sec", "-n", "e2e-config", "--from-literal=password=s3cret"]).await;
    let file = manifest(
        server,
        "config.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: show, namespace: e2e-config, labels: {tier: backend}}
spec:
  restartPolicy: Never
  containers:
  - name: show
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo color=$COLOR pw=$PW node=$NODE pod=$POD_NAME cfg_size=$CFG_size; cat /etc/cfg/color; echo; cat /etc/sec/password; echo; cat /etc/info/labels; echo; ls /etc/cfg"]
    env:
    - {name: COLOR, valueFrom: {configMapKeyRef: {name: cfg, key: color}}}
    - {name: PW, valueFrom: {secretKeyRef: {name: sec, key: password}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: cfg}}
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
    - {name: info, mountPath: /etc/info}
  volumes:
  - {name: cfg, configMap: {name: cfg}}
  - {name: sec, secret: {secretName: sec}}
  - name: info
    downwardAPI:
      items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
"#,
    );
    must(server, &["apply", "-f", &file]).await;
    let pod = wait_phase(server, "e2e-config", "show", "Succeeded").await;
    assert_eq!(pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0);
    assert_eq!(pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
    let logs = must(server, &["logs", "show", "-n", "e2e-config"]).await;
    assert!(logs.contains("color=blue pw=s3cret"), "env from ConfigMap and Secret: {logs}");
    assert!(logs.contains("pod=show") && logs.contains("cfg_size=10"), "fieldRef and envFrom: {logs}");
    assert!(logs.contains("\nblue\n") && logs.contains("\ns3cret\n"), "volume contents: {logs}");
    assert!(logs.contains("tier=\"backend\""), "downward API labels: {logs}");

    // A mounted ConfigMap follows updates (whole files, through the `..data` swap).
    let file = manifest(
        server,
        "follow.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: follow, namespace: e2e-config}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    volumeMounts: [{name: cfg, mountPath: /etc/cfg}]
  volumes: [{name: cfg, configMap: {name: cfg}}]
"#,
    );
    must(server, &["apply", "-f", &file]).await;
    wait_ready(server, "e2e-config", "follow").await;
    assert_eq!(must(server, &["exec", "follow", "-n", "e2e-config", "--", "cat", "/etc/cfg/color"]).await, "blue");
    must(server, &["patch", "configmap", "cfg", "-n", "e2e-config", "-p", r#"{"data":{"color":"green"}}"#]).await;
    wait_for("the volume to show the new ConfigMap value", Duration::from_secs(60), || async {
        let out = kubectl(server, &["exec", "follow", "-n", "e2e-config", "--", "cat", "/etc/cfg/color"]).await;
        (text(&out.stdout) == "green").then_some(Value::Null)
    })
    .await;

    // A missing ConfigMap keeps the container waiting with upstream's reason.
    let file = manifest(
        server,
        "missing.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: missing, namespace: e2e-config}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    env: [{name: X, valueFrom: {configMapKeyRef: {name: nope, key: k}}}]
"#,
    );
    must(server, &["apply", "-f", &file]).await;
    let pod = wait_for("CreateContainerConfigError", Duration::from_secs(60), || async {
        pod_json(server, "e2e-config", "missing").await.filter(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
        })
    })
    .await;
    assert_eq!(pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"], "configmap \"nope\" not found");
}

async fn exit_codes_and_phases(server: &TestServer) {
    must(server, &["create", "namespace", "e2e-exit"]).await;
    let file = manifest(
        server,
        "exit.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: fails, namespace: e2e-exit}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo bye > /dev/termination-log; exit 3"]
---
apiVersion: v1
kind: Pod
metadata: {name: oom, namespace: e2e-exit}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=128M count=1"]
    resources: {limits: {memory: 32Mi}}
"#,
    );
    must(server, &["apply", "-f", &file]).await;
    let pod = wait_phase(server, "e2e-exit", "fails", "Failed").await;
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["exitCode"], 3);
    assert_eq!(t["reason"], "Error");
    assert_eq!(t["message"], "bye\n");
    let pod = wait_phase(server, "e2e-exit", "oom", "Failed").await;
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137);
}

async fn admission_refuses_what_does_not_fit(server: &TestServer, node: &str) {
    // Bound straight to the node (no scheduler), asking for more cpu than any machine here has.
    let file = manifest(
        server,
        "greedy.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: greedy, namespace: e2e-exit}}
spec:
  nodeName: {node}
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    resources: {{requests: {{cpu: "5000"}}}}
"#
        ),
    );
    must(server, &["apply", "-f", &file]).await;
    let pod = wait_phase(server, "e2e-exit", "greedy", "Failed").await;
    assert_eq!(pod["status"]["reason"], "OutOfcpu");
    let message = pod["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Pod was rejected: Node didn't have enough resource: cpu, requested: 5000000"),
        "{message}"
    );
}

async fn liveness_failure_restarts_the_container(server: &TestServer) {
    must(server, &["create", "namespace", "e2e-probe"]).await;
    let file = manifest(
        server,
        "probe.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: flaky, namespace: e2e-probe}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo run-started-$(date +%s%N); touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/healthy"]}
      periodSeconds: 1
      failureThreshold: 2
"#,
    );
    must(server, &["apply", "-f", &file]).await;
    let pod = wait_for("a liveness restart", Duration::from_secs(90), || async {
        pod_json(server, "e2e-probe", "flaky")
            .await
            .filter(|p| p["status"]["containerStatuses"][0]["restartCount"].as_u64().unwrap_or(0) >= 1)
    })
    .await;
    assert!(pod["status"]["containerStatuses"][0]["lastState"]["terminated"].is_object(), "{pod}");
    let previous = must(server, &["logs", "flaky", "-n", "e2e-probe", "--previous"]).await;
    assert!(previous.contains("run-started-"), "logs --previous shows the old run: {previous:?}");
    let events = must(server, &["get", "events", "-n", "e2e-probe", "-o", "json"]).await;
    assert!(events.contains("Unhealthy") && events.contains("Liveness probe failed"), "Unhealthy event");
}

async fn exec_with_stdin_and_exit_codes(server: &TestServer) {
    must(server, &["create", "namespace", "e2e-exec"]).await;
    must(
        server,
        &[
            "run",
            "sh",
            "-n",
            "e2e-exec",
            "--image=busybox:latest",
            "--image-pull-policy=IfNotPresent",
            "--overrides",
            r#"{"spec":{"terminationGracePeriodSeconds":1}}"#,
            "--",
            "sleep",
            "3600",
        ],
    )
    .await;
    wait_ready(server, "e2e-exec", "sh").await;
    let hosts = must(server, &["exec", "sh", "-n", "e2e-exec", "--", "cat", "/etc/hosts"]).await;
    let ip = pod_json(server, "e2e-exec", "sh").await.unwrap()["status"]["podIP"].as_str().unwrap().to_string();
    assert!(hosts.starts_with("# Kubernetes-managed hosts file.") && hosts.contains(&format!("{ip}\tsh\n")), "{hosts}");
    let out =
        kubectl(server, &["exec", "sh", "-n", "e2e-exec", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]).await;
    assert_eq!(out.status.code(), Some(7), "exit code of the command: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    assert!(text(&out.stderr).contains("err"));
    let mut cmd = crate::kubectl::command(server, &["exec", "-i", "sh", "-n", "e2e-exec", "--", "tr", "a-z", "A-Z"]);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl exec starts");
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello stdin\n").await.unwrap();
    drop(stdin);
    let out =
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("exec -i ends").unwrap();
    assert_eq!(text(&out.stdout), "HELLO STDIN\n", "stdin reaches the command and EOF ends it");
    // The same over SPDY, the protocol older clients use.
    let mut cmd =
        crate::kubectl::command(server, &["exec", "sh", "-n", "e2e-exec", "--", "sh", "-c", "echo spdy; exit 4"]);
    cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    let out = cmd.output().await.unwrap();
    assert_eq!((out.status.code(), text(&out.stdout).as_str()), (Some(4), "spdy\n"), "{}", text(&out.stderr));
    // kubectl cp packs with tar through exec.
    let local = server.data_dir().join("cp-source.txt");
    std::fs::write(&local, "copied through exec\n").unwrap();
    must(server, &["cp", local.to_str().unwrap(), "e2e-exec/sh:/tmp/copied.txt"]).await;
    let back = must(server, &["exec", "sh", "-n", "e2e-exec", "--", "cat", "/tmp/copied.txt"]).await;
    assert_eq!(back, "copied through exec\n");
}

async fn deployment_of_three_replicas(server: &TestServer) {
    must(server, &["create", "namespace", "e2e-deploy"]).await;
    // Tests never pull: `IfNotPresent` with the imported image (the default policy for
    // `:latest` would be Always).
    let file = manifest(
        server,
        "deploy.yaml",
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: e2e-deploy}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: "busybox:latest", imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}
"#,
    );
    must(server, &["apply", "-f", &file]).await;
    let pods = wait_for("3 running replicas", Duration::from_secs(120), || async {
        let v = must_json(server, &["get", "pods", "-n", "e2e-deploy", "-o", "json"]).await;
        let running = v["items"].as_array()?.iter().filter(|p| p["status"]["phase"] == "Running").count();
        (running == 3).then_some(v)
    })
    .await;
    let mut ips: Vec<&str> =
        pods["items"].as_array().unwrap().iter().filter_map(|p| p["status"]["podIP"].as_str()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "three distinct pod IPs: {ips:?}");
}
