//! kubectl 1.32 with its defaults (strict validation through OpenAPI, client-side apply with
//! strategic merge patch, protobuf bodies from the generator commands) against a real
//! `rudder server`.

use crate::common::TestServer;
use crate::kubectl::{command, fails, manifest, must, must_json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

fn deployment(replicas: u32, image: &str, extra_label: bool, port: bool) -> String {
    let label = if extra_label { "\n    tier: front" } else { "" };
    let ports = if port { "\n        ports:\n        - containerPort: 8080\n          name: http" } else { "" };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web{label}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        image: {image}{ports}
      - name: sidecar
        image: busybox:1.36
        command: [\"sleep\", \"3600\"]
"
    )
}

#[tokio::test]
async fn kubectl_apply_three_way_with_default_validation() {
    let server = TestServer::start().await;
    let first = manifest(&server, "web.yaml", &deployment(2, "nginx:1.25", true, false));
    let out = must(&server, &["apply", "-f", &first]).await;
    assert_eq!(out.trim(), "deployment.apps/web created");
    let out = must(&server, &["apply", "-f", &first]).await;
    assert_eq!(out.trim(), "deployment.apps/web unchanged");
    let live = must_json(&server, &["get", "deploy", "web", "-o", "json"]).await;
    let applied = live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("apply records the last applied configuration");
    assert!(applied.contains("\"nginx:1.25\""), "{applied}");

    // Someone else sets fields the manifest does not mention.
    must(&server, &["patch", "deploy", "web", "--type", "merge", "-p", r#"{"spec":{"minReadySeconds":7}}"#]).await;
    must(&server, &["annotate", "deploy", "web", "owner=team-a"]).await;

    // The edited manifest: new image, a port added to a container, a label dropped.
    let edited = manifest(&server, "web2.yaml", &deployment(2, "nginx:1.27", false, true));
    let out = must(&server, &["apply", "-f", &edited]).await;
    assert_eq!(out.trim(), "deployment.apps/web configured");
    let live = must_json(&server, &["get", "deploy", "web", "-o", "json"]).await;
    let containers = live["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2, "{containers:?}");
    assert_eq!(containers[0]["name"], "main");
    assert_eq!(containers[0]["image"], "nginx:1.27");
    assert_eq!(containers[0]["ports"][0]["containerPort"], 8080);
    assert_eq!(containers[1]["command"][1], "3600");
    assert_eq!(live["spec"]["minReadySeconds"], 7, "fields set by others survive a three-way apply");
    assert_eq!(live["metadata"]["annotations"]["owner"], "team-a");
    assert!(live["metadata"]["labels"].get("tier").is_none(), "a label removed from the manifest is removed");
    assert_eq!(live["metadata"]["labels"]["app"], "web");

    // create -f and replace -f validate strictly by default.
    let bad = manifest(
        &server,
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  a: b\nbogus: 1\n",
    );
    let err = fails(&server, &["create", "-f", &bad]).await;
    assert!(err.contains(r#"strict decoding error: unknown field "bogus""#), "{err}");
    let good =
        manifest(&server, "good.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\ndata:\n  a: b\n");
    assert_eq!(must(&server, &["create", "-f", &good]).await.trim(), "configmap/good created");
    let replaced =
        manifest(&server, "good2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\ndata:\n  a: c\n");
    assert_eq!(must(&server, &["replace", "-f", &replaced]).await.trim(), "configmap/good replaced");
    assert_eq!(must(&server, &["get", "cm", "good", "-o", "jsonpath={.data.a}"]).await, "c");
    let err = fails(&server, &["replace", "-f", &bad]).await;
    assert!(err.contains("strict decoding error"), "{err}");
}

#[tokio::test]
async fn kubectl_generators_send_protobuf() {
    let server = TestServer::start().await;
    assert_eq!(must(&server, &["create", "namespace", "gen"]).await.trim(), "namespace/gen created");
    must(&server, &["-n", "gen", "create", "configmap", "cm", "--from-literal=a=1", "--from-literal=b=two"]).await;
    let cm = must_json(&server, &["-n", "gen", "get", "cm", "cm", "-o", "json"]).await;
    assert_eq!(cm["data"], serde_json::json!({"a": "1", "b": "two"}));
    must(&server, &["-n", "gen", "create", "secret", "generic", "s", "--from-literal=user=admin"]).await;
    let secret = must_json(&server, &["-n", "gen", "get", "secret", "s", "-o", "json"]).await;
    assert_eq!(secret["data"]["user"], "YWRtaW4=");
    assert_eq!(secret["type"], "Opaque");
    must(&server, &["-n", "gen", "create", "serviceaccount", "robot"]).await;
    must(&server, &["-n", "gen", "get", "sa", "robot"]).await;
    let out = must(&server, &["-n", "gen", "create", "deployment", "d", "--image=nginx:1.27", "--replicas=2"]).await;
    assert_eq!(out.trim(), "deployment.apps/d created");
    let d = must_json(&server, &["-n", "gen", "get", "deploy", "d", "-o", "json"]).await;
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "d");
    must(&server, &["-n", "gen", "create", "job", "j", "--image=busybox:1.36", "--", "true"]).await;
    let j = must_json(&server, &["-n", "gen", "get", "job", "j", "-o", "json"]).await;
    assert_eq!(j["spec"]["template"]["spec"]["containers"][0]["command"][0], "true");
    must(&server, &["-n", "gen", "create", "cronjob", "cj", "--image=busybox:1.36", "--schedule=*/5 * * * *"]).await;
    must(&server, &["-n", "gen", "create", "role", "r", "--verb=get", "--resource=pods"]).await;
    must(&server, &["-n", "gen", "create", "rolebinding", "rb", "--role=r", "--serviceaccount=gen:robot"]).await;
    let rb = must_json(&server, &["-n", "gen", "get", "rolebinding", "rb", "-o", "json"]).await;
    assert_eq!(rb["subjects"][0]["name"], "robot");
    // Services get a cluster IP and node ports; an address in use is refused.
    must(&server, &["-n", "gen", "create", "service", "nodeport", "np", "--tcp=80:8080"]).await;
    let svc = must_json(&server, &["-n", "gen", "get", "svc", "np", "-o", "json"]).await;
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.43."), "{svc}");
    assert_eq!(svc["spec"]["clusterIPs"], serde_json::json!([ip.clone()]));
    assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&node_port), "{svc}");
    let taken = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: taken\n  namespace: gen\nspec:\n  clusterIP: {ip}\n  ports:\n  - port: 80\n"
    );
    let err = fails(&server, &["apply", "-f", &manifest(&server, "taken.yaml", &taken)]).await;
    assert!(err.contains("provided IP is already allocated"), "{err}");
    must(&server, &["-n", "gen", "delete", "svc", "np"]).await;
    must(&server, &["apply", "-f", &manifest(&server, "taken.yaml", &taken)]).await;
    // A re-apply without clusterIP keeps the allocated one.
    let headless =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: gen\nspec:\n  ports:\n  - port: 80\n";
    let file = manifest(&server, "web-svc.yaml", headless);
    must(&server, &["apply", "-f", &file]).await;
    let first = must(&server, &["-n", "gen", "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]).await;
    must(&server, &["replace", "-f", &file]).await;
    assert_eq!(must(&server, &["-n", "gen", "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]).await, first);

    // Reviews are answered, not stored (no authorizer yet: everything is allowed).
    assert_eq!(must(&server, &["auth", "can-i", "create", "deployments", "-n", "gen"]).await.trim(), "yes");
    let me = must_json(&server, &["auth", "whoami", "-o", "json"]).await;
    assert_eq!(me["kind"], "SelfSubjectReview");
    assert!(me["status"]["userInfo"]["groups"].as_array().unwrap().iter().any(|g| g == "system:masters"), "{me}");
    // Typed deletion sends DeleteOptions as protobuf too.
    must(&server, &["-n", "gen", "delete", "cm", "cm"]).await;
    let err = fails(&server, &["-n", "gen", "get", "cm", "cm"]).await;
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
}

#[tokio::test]
async fn kubectl_strategic_patches_rollout_scale_label() {
    let server = TestServer::start().await;
    let file = manifest(&server, "web.yaml", &deployment(1, "nginx:1.25", false, true));
    must(&server, &["apply", "-f", &file]).await;

    // Containers merge by name; ports by containerPort.
    let patch = r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","ports":[{"containerPort":9090}]}]}}}}"#;
    must(&server, &["patch", "deploy", "web", "--type", "strategic", "-p", patch]).await;
    let d = must_json(&server, &["get", "deploy", "web", "-o", "json"]).await;
    let containers = d["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    let ports: Vec<i64> =
        containers[0]["ports"].as_array().unwrap().iter().map(|p| p["containerPort"].as_i64().unwrap()).collect();
    assert_eq!(ports, vec![9090, 8080], "as upstream, a new merge-list element goes before the existing ones");
    assert_eq!(containers[0]["image"], "nginx:1.25");

    // Deleting one container with a directive.
    let patch = r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#;
    must(&server, &["patch", "deploy", "web", "-p", patch]).await;
    let d = must_json(&server, &["get", "deploy", "web", "-o", "json"]).await;
    assert_eq!(d["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 1);

    let generation = d["metadata"]["generation"].as_i64().unwrap();
    must(&server, &["rollout", "restart", "deploy/web"]).await;
    let d = must_json(&server, &["get", "deploy", "web", "-o", "json"]).await;
    assert!(d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string(), "{d}");
    assert_eq!(d["metadata"]["generation"].as_i64().unwrap(), generation + 1);

    assert_eq!(must(&server, &["scale", "deploy", "web", "--replicas=4"]).await.trim(), "deployment.apps/web scaled");
    assert_eq!(must(&server, &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]).await, "4");
    must(&server, &["label", "deploy", "web", "tier=back"]).await;
    assert_eq!(must(&server, &["get", "deploy", "-l", "tier=back", "-o", "name"]).await.trim(), "deployment.apps/web");

    // A node: cordon and taint are strategic patches too.
    let node = manifest(&server, "node.yaml", "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n");
    must(&server, &["apply", "-f", &node]).await;
    assert_eq!(must(&server, &["cordon", "n1"]).await.trim(), "node/n1 cordoned");
    assert_eq!(must(&server, &["get", "node", "n1", "-o", "jsonpath={.spec.unschedulable}"]).await, "true");
    must(&server, &["taint", "nodes", "n1", "dedicated=infra:NoSchedule"]).await;
    must(&server, &["taint", "nodes", "n1", "gpu=yes:NoExecute"]).await;
    let n = must_json(&server, &["get", "node", "n1", "-o", "json"]).await;
    assert_eq!(n["spec"]["taints"].as_array().unwrap().len(), 2, "{n}");
    must(&server, &["taint", "nodes", "n1", "dedicated-"]).await;
    let n = must_json(&server, &["get", "node", "n1", "-o", "json"]).await;
    assert_eq!(n["spec"]["taints"].as_array().unwrap().len(), 1, "{n}");
    assert_eq!(n["spec"]["taints"][0]["key"], "gpu");
    assert_eq!(must(&server, &["uncordon", "n1"]).await.trim(), "node/n1 uncordoned");
}

#[tokio::test]
async fn kubectl_watch_single_object() {
    let server = TestServer::start().await;
    let file =
        manifest(&server, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w\ndata:\n  a: \"1\"\n");
    must(&server, &["apply", "-f", &file]).await;
    let mut child = command(&server, &["get", "cm", "w", "-w", "-o", "jsonpath={.data.a}{\"\\n\"}"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    async fn next(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await.expect("a line in time").unwrap()
    }
    assert_eq!(next(&mut lines).await.as_deref(), Some("1"));
    must(&server, &["patch", "cm", "w", "-p", r#"{"data":{"a":"2"}}"#]).await;
    assert_eq!(next(&mut lines).await.as_deref(), Some("2"));
    // Other objects are not part of the watch.
    must(&server, &["create", "cm", "other", "--from-literal=a=9"]).await;
    must(&server, &["patch", "cm", "w", "-p", r#"{"data":{"a":"3"}}"#]).await;
    assert_eq!(next(&mut lines).await.as_deref(), Some("3"));
    child.kill().await.ok();
}

#[tokio::test]
async fn kubectl_drain_evicts_within_disruption_budgets() {
    let server = TestServer::start().await;
    let node = manifest(&server, "node.yaml", "apiVersion: v1\nkind: Node\nmetadata:\n  name: d1\n");
    must(&server, &["apply", "-f", &node]).await;
    for (pod, app) in [("p1", "a"), ("p2", "b")] {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  labels:\n    app: {app}\nspec:\n  nodeName: d1\n  containers:\n  - name: c\n    image: busybox:1.36\n"
        );
        must(&server, &["apply", "-f", &manifest(&server, &format!("{pod}.yaml"), &yaml)]).await;
        must(
            &server,
            &["patch", "pod", pod, "--subresource=status", "--type=merge", "-p", r#"{"status":{"phase":"Running"}}"#],
        )
        .await;
    }
    let pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: keep-b\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: b\n";
    must(&server, &["apply", "-f", &manifest(&server, "pdb.yaml", pdb)]).await;
    let blocked = r#"{"status":{"observedGeneration":1,"disruptionsAllowed":0,"currentHealthy":1,"desiredHealthy":1,"expectedPods":1}}"#;
    must(&server, &["patch", "pdb", "keep-b", "--subresource=status", "--type=merge", "-p", blocked]).await;

    // p1 has no budget and goes; p2's budget allows no disruption, so drain gives up.
    let err = fails(&server, &["drain", "d1", "--force", "--grace-period=0", "--timeout=4s"]).await;
    assert!(err.contains("disruption budget"), "{err}");
    assert_eq!(must(&server, &["get", "node", "d1", "-o", "jsonpath={.spec.unschedulable}"]).await, "true");
    let pods = must(&server, &["get", "pods", "-o", "name"]).await;
    assert_eq!(pods.trim(), "pod/p2", "{pods}");

    let allowed = r#"{"status":{"disruptionsAllowed":1}}"#;
    must(&server, &["patch", "pdb", "keep-b", "--subresource=status", "--type=merge", "-p", allowed]).await;
    must(&server, &["drain", "d1", "--force", "--grace-period=0", "--timeout=10s"]).await;
    assert_eq!(must(&server, &["get", "pods", "-o", "name"]).await.trim(), "");
    let pdb = must_json(&server, &["get", "pdb", "keep-b", "-o", "json"]).await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0, "{pdb}");
    assert!(pdb["status"]["disruptedPods"]["p2"].is_string(), "{pdb}");
}

/// Sends one request with explicit headers and returns status, headers and body.
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, http::HeaderMap, String) {
    let mut b = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(body.as_bytes().to_vec()).expect("request builds");
    let resp = client.send(req.map(kube::client::Body::from)).await.expect("request is answered");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn yaml_bodies_and_field_validation() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  a: \"1\"\nextra: true\n";

    // Strict: the unknown field is refused with upstream's wording.
    let (status, _, body) =
        send(&client, "POST", &format!("{path}?fieldValidation=Strict"), &[("content-type", "application/yaml")], yaml)
            .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(r#"ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"extra\""#),
        "{body}"
    );

    // Default (Warn): created, the field dropped, a Warning header; YAML answer when asked.
    let (status, headers, body) =
        send(&client, "POST", path, &[("content-type", "application/yaml"), ("accept", "application/yaml")], yaml)
            .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers.get("content-type").unwrap(), "application/yaml");
    assert!(body.starts_with("apiVersion: v1\n"), "{body}");
    assert!(!body.contains("extra"), "{body}");
    let warning = headers.get("warning").expect("a Warning header").to_str().unwrap();
    assert_eq!(warning, r#"299 - "unknown field \"extra\"""#);

    // Duplicate fields in JSON count too; Ignore says nothing.
    let dup = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"d2"}}"#;
    let (status, _, body) =
        send(&client, "POST", &format!("{path}?fieldValidation=Strict"), &[("content-type", "application/json")], dup)
            .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#"duplicate field \"metadata.name\""#), "{body}");
    let (status, headers, _) =
        send(&client, "POST", &format!("{path}?fieldValidation=Ignore"), &[("content-type", "application/json")], dup)
            .await;
    assert_eq!(status, 201);
    assert!(headers.get("warning").is_none());

    // A strategic patch adding an unknown field under Strict.
    let (status, _, body) = send(
        &client,
        "PATCH",
        &format!("{path}/y?fieldValidation=Strict"),
        &[("content-type", "application/strategic-merge-patch+json")],
        r#"{"data":{"b":"2"},"bogus":{"x":1}}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#"unknown field \"bogus\""#), "{body}");
    // Nothing writes when the answer cannot be given.
    let (status, _, body) = send(
        &client,
        "POST",
        path,
        &[("content-type", "application/json"), ("accept", "application/xml")],
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"never"}}"#,
    )
    .await;
    assert_eq!(status, 406, "{body}");
    let (status, _, _) = send(&client, "GET", &format!("{path}/never"), &[], "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn protobuf_bodies_and_protobuf_only_answers() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let cm =
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pb"}, "data": {"k": "v"}});
    let body = rudder_api::protobuf::encode_object(&cm).expect("encodes");
    let mut b = http::Request::builder().method("POST").uri(path);
    b = b.header("content-type", "application/vnd.kubernetes.protobuf").header("accept", "application/json");
    let resp = client.send(b.body(body).unwrap().map(kube::client::Body::from)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);

    // Asked for protobuf only: a k8s\0 envelope holding the object, and the list kind for lists.
    for (uri, kind) in [(format!("{path}/pb"), "ConfigMap"), (path.to_string(), "ConfigMapList")] {
        let req = http::Request::builder()
            .uri(&uri)
            .header("accept", "application/vnd.kubernetes.protobuf")
            .body(Vec::new())
            .unwrap();
        let resp = client.send(req.map(kube::client::Body::from)).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers().get("content-type").unwrap(), "application/vnd.kubernetes.protobuf");
        let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        assert!(bytes.starts_with(b"k8s\0"));
        let obj = rudder_api::protobuf::decode_object(&bytes).expect("decodes");
        assert_eq!(obj["kind"], kind, "{obj}");
        let item = if kind == "ConfigMap" { &obj } else { &obj["items"][0] };
        assert_eq!(item["data"]["k"], "v", "{obj}");
        assert_eq!(item["metadata"]["name"], "pb");
    }
}
