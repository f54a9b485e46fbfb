//! Response content negotiation against the real server: server-side Tables (lists, single
//! objects, wide columns, `includeObject`, watches), `PartialObjectMetadata`, YAML, 406 for
//! media types the server cannot produce, and the real kubectl printing upstream's columns.

use crate::common::{TestServer, kubectl_path, raw_json};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// What kubectl sends for human-readable `get`.
const KUBECTL_TABLE: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// A GET with an `Accept` header: status, `Content-Type`, body.
async fn get_as(client: &kube::Client, path: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let req = http::Request::get(path).header("accept", accept).body(Vec::new()).expect("request builds");
    let resp = client.send(req.map(kube::client::Body::from)).await.expect("request is answered");
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, ct, body)
}

/// Like [`get_as`], with the body as JSON (which it must be).
async fn get_json(client: &kube::Client, path: &str, accept: &str) -> (u16, Value) {
    let (status, ct, body) = get_as(client, path, accept).await;
    assert!(ct.starts_with("application/json"), "{path} answered {ct}: {}", String::from_utf8_lossy(&body));
    let v = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e})"));
    (status, v)
}

/// The cells of a Table row.
fn cells_of(row: &Value) -> &[Value] {
    row["cells"].as_array().expect("cells")
}

fn column_names(table: &Value) -> Vec<&str> {
    table["columnDefinitions"]
        .as_array()
        .expect("columnDefinitions")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

/// Newline-delimited watch events read from a streaming response.
struct Events {
    body: kube::client::Body,
    buf: Vec<u8>,
}

impl Events {
    async fn open(client: &kube::Client, path: &str, accept: &str) -> Events {
        let req = http::Request::get(path).header("accept", accept).body(Vec::new()).expect("request builds");
        let resp = client.send(req.map(kube::client::Body::from)).await.expect("watch is answered");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert_eq!(ct, "application/json", "{path}");
        Events { body: resp.into_body(), buf: Vec::new() }
    }

    async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(at) = self.buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=at).collect();
                    return serde_json::from_slice(&line).expect("each event is JSON");
                }
                let frame = self.body.frame().await.expect("the watch stays open").expect("the stream reads");
                if let Ok(data) = frame.into_data() {
                    self.buf.extend_from_slice(&data);
                }
            }
        })
        .await
        .expect("an event within 10 s")
    }
}

async fn create(client: &kube::Client, path: &str, obj: Value) -> Value {
    let (code, body) = raw_json(client, "POST", path, Some("application/json"), obj).await;
    assert_eq!(code, 201, "POST {path}: {body}");
    body
}

fn configmap(name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "demo"}},
        "data": data,
    })
}

#[tokio::test]
async fn tables_metadata_and_yaml_responses() {
    let server = TestServer::start().await;
    let client = server.client().await;
    create(&client, "/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}}))
        .await;
    let cms = "/api/v1/namespaces/t/configmaps";
    let a = create(&client, cms, configmap("a", json!({"k1": "v1", "k2": "v2"}))).await;
    create(&client, cms, configmap("b", json!({}))).await;

    // A list as a Table, as kubectl asks for it.
    let (code, t) = get_json(&client, cms, KUBECTL_TABLE).await;
    assert_eq!(code, 200, "{t}");
    assert_eq!((t["kind"].as_str(), t["apiVersion"].as_str()), (Some("Table"), Some("meta.k8s.io/v1")), "{t}");
    assert!(t["metadata"]["resourceVersion"].as_str().is_some_and(|rv| rv.parse::<u64>().is_ok()), "{t}");
    assert_eq!(column_names(&t), ["Name", "Data", "Age"]);
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    let rows = t["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{t}");
    assert_eq!(cells_of(&rows[0])[0..2], [json!("a"), json!(2)]);
    assert!(rows[0]["cells"][2].as_str().is_some_and(|age| age.ends_with('s')), "{t}");
    assert_eq!(cells_of(&rows[1])[0..2], [json!("b"), json!(0)]);
    // By default each row carries the object's metadata only.
    let object = &rows[0]["object"];
    assert_eq!(object["kind"], "PartialObjectMetadata");
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(object["metadata"]["namespace"], "t");
    assert_eq!(object["metadata"]["labels"]["app"], "demo");
    assert!(object.get("data").is_none());

    // meta.k8s.io/v1beta1 when only that is accepted.
    let (_, t) = get_json(&client, cms, "application/json;as=Table;v=v1beta1;g=meta.k8s.io").await;
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(t["rows"][0]["object"]["apiVersion"], "meta.k8s.io/v1beta1");

    // A single object; the Table's resourceVersion is the object's.
    let (code, t) = get_json(&client, &format!("{cms}/a"), KUBECTL_TABLE).await;
    assert_eq!(code, 200, "{t}");
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    assert_eq!(t["metadata"]["resourceVersion"], a["metadata"]["resourceVersion"]);
    assert_eq!(t["rows"][0]["cells"][0], "a");

    // includeObject: the whole object, or nothing; anything else is a 400.
    let (_, t) = get_json(&client, &format!("{cms}?includeObject=Object"), KUBECTL_TABLE).await;
    assert_eq!(t["rows"][0]["object"]["kind"], "ConfigMap");
    assert_eq!(t["rows"][0]["object"]["data"]["k1"], "v1");
    let (_, t) = get_json(&client, &format!("{cms}/a?includeObject=None"), KUBECTL_TABLE).await;
    assert!(t["rows"][0]["object"].is_null(), "{t}");
    let (code, s) = get_json(&client, &format!("{cms}?includeObject=All"), KUBECTL_TABLE).await;
    assert_eq!((code, s["reason"].as_str()), (400, Some("BadRequest")), "{s}");
    // includeObject means nothing without a Table.
    let (code, _) = get_json(&client, &format!("{cms}?includeObject=All"), "application/json").await;
    assert_eq!(code, 200);

    // Wide columns come with priority 1, and every row carries their cells.
    let pods = "/api/v1/namespaces/t/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                     "spec": {"containers": [{"name": "app", "image": "nginx"}]}});
    create(&client, pods, pod).await;
    let (_, t) = get_json(&client, pods, KUBECTL_TABLE).await;
    assert_eq!(
        column_names(&t),
        ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
    );
    let priorities: Vec<i64> =
        t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["priority"].as_i64().unwrap()).collect();
    assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
    let cells = cells_of(&t["rows"][0]);
    assert_eq!(cells.len(), 9, "{t}");
    assert_eq!(cells[0..4], [json!("web"), json!("0/1"), json!("Pending"), json!("0")]);
    assert_eq!(cells[5..9], [json!("<none>"), json!("<none>"), json!("<none>"), json!("<none>")]);

    // Kinds without a printer get the default table.
    let (_, t) = get_json(&client, "/apis/rbac.authorization.k8s.io/v1/namespaces/t/roles", KUBECTL_TABLE).await;
    assert_eq!(column_names(&t), ["Name", "Created At"]);

    // PartialObjectMetadataList for lists, PartialObjectMetadata for objects; not the other
    // way round.
    let pom_list = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
    let pom = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
    let (code, l) = get_json(&client, &format!("{cms}?limit=1"), pom_list).await;
    assert_eq!(code, 200, "{l}");
    assert_eq!(
        (l["kind"].as_str(), l["apiVersion"].as_str()),
        (Some("PartialObjectMetadataList"), Some("meta.k8s.io/v1"))
    );
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    assert!(l["metadata"]["continue"].as_str().is_some_and(|c| !c.is_empty()), "{l}");
    assert_eq!(l["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(l["items"][0]["metadata"]["name"], "a");
    assert!(l["items"][0].get("data").is_none());
    let (code, o) = get_json(&client, &format!("{cms}/b"), pom).await;
    assert_eq!(code, 200, "{o}");
    assert_eq!((o["kind"].as_str(), o["metadata"]["name"].as_str()), (Some("PartialObjectMetadata"), Some("b")));
    let (code, s) = get_json(&client, cms, pom).await;
    assert_eq!((code, s["reason"].as_str()), (406, Some("NotAcceptable")), "{s}");
    let (code, _) = get_json(&client, &format!("{cms}/b"), pom_list).await;
    assert_eq!(code, 406);

    // YAML.
    let (code, ct, body) = get_as(&client, &format!("{cms}/a"), "application/yaml").await;
    let text = String::from_utf8(body).unwrap();
    assert_eq!((code, ct.as_str()), (200, "application/yaml"), "{text}");
    assert!(text.contains("kind: ConfigMap") && text.contains("name: a") && text.contains("k1: v1"), "{text}");
    let (code, ct, body) = get_as(&client, cms, "application/yaml").await;
    let text = String::from_utf8(body).unwrap();
    assert_eq!((code, ct.as_str()), (200, "application/yaml"), "{text}");
    assert!(text.contains("kind: ConfigMapList") && text.contains("resourceVersion:"), "{text}");

    // What the server cannot produce is a 406; protobuf is passed over for JSON.
    for path in [cms.to_string(), format!("{cms}/a")] {
        let (code, s) = get_json(&client, &path, "application/xml").await;
        assert_eq!((code, s["reason"].as_str()), (406, Some("NotAcceptable")), "{s}");
        assert_eq!(
            s["message"],
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
    }
    let (code, o) =
        get_json(&client, &format!("{cms}/a"), "application/vnd.kubernetes.protobuf,application/json").await;
    assert_eq!((code, o["kind"].as_str()), (200, Some("ConfigMap")));
    let (code, _) = get_json(&client, &format!("{cms}?watch=true"), "application/yaml").await;
    assert_eq!(code, 406);
}

#[tokio::test]
async fn table_and_metadata_watches() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    create(&client, cms, configmap("first", json!({"k": "v"}))).await;

    // Synthetic ADDED events first: the first Table carries the column definitions, later ones
    // do not.
    let mut events = Events::open(&client, &format!("{cms}?watch=true&timeoutSeconds=20"), KUBECTL_TABLE).await;
    let ev = events.next().await;
    assert_eq!(ev["type"], "ADDED", "{ev}");
    let t = &ev["object"];
    assert_eq!((t["kind"].as_str(), t["apiVersion"].as_str()), (Some("Table"), Some("meta.k8s.io/v1")), "{t}");
    assert_eq!(column_names(t), ["Name", "Data", "Age"]);
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    assert_eq!(cells_of(&t["rows"][0])[0..2], [json!("first"), json!(1)]);
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let rv = t["metadata"]["resourceVersion"].as_str().expect("a resourceVersion").to_string();
    assert_eq!(t["rows"][0]["object"]["metadata"]["resourceVersion"], rv.as_str());

    let second = create(&client, cms, configmap("second", json!({}))).await;
    let ev = events.next().await;
    assert_eq!(ev["type"], "ADDED", "{ev}");
    assert!(ev["object"]["columnDefinitions"].as_array().is_none_or(Vec::is_empty), "{ev}");
    assert_eq!(ev["object"]["rows"][0]["cells"][0], "second");
    assert_eq!(ev["object"]["metadata"]["resourceVersion"], second["metadata"]["resourceVersion"]);

    let (code, _) = raw_json(&client, "DELETE", &format!("{cms}/second"), None, Value::Null).await;
    assert_eq!(code, 200);
    let ev = events.next().await;
    assert_eq!((ev["type"].as_str(), ev["object"]["kind"].as_str()), (Some("DELETED"), Some("Table")), "{ev}");
    assert_eq!(ev["object"]["rows"][0]["cells"][0], "second");

    // Metadata-only watches.
    let (_, list) = raw_json(&client, "GET", cms, None, Value::Null).await;
    let rv = list["metadata"]["resourceVersion"].as_str().expect("a list resourceVersion").to_string();
    let pom = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
    let mut events =
        Events::open(&client, &format!("{cms}?watch=true&timeoutSeconds=20&resourceVersion={rv}"), pom).await;
    create(&client, cms, configmap("third", json!({"x": "y"}))).await;
    let ev = events.next().await;
    assert_eq!(ev["type"], "ADDED", "{ev}");
    assert_eq!(ev["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(ev["object"]["metadata"]["name"], "third");
    assert!(ev["object"].get("data").is_none(), "{ev}");
}

/// Runs kubectl against `server` and returns its stdout (it must succeed).
async fn kubectl(server: &TestServer, args: &[&str]) -> String {
    let mut cmd = Command::new(kubectl_path());
    cmd.env("KUBECONFIG", &server.kubeconfig)
        .env("KUBECACHEDIR", server.data_dir().join("kubectl-cache"))
        .arg("--request-timeout=20s")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} finishes within 30 s"))
        .expect("kubectl starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "kubectl {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The words of the line that starts with `first`.
fn row<'a>(out: &'a str, first: &str) -> Vec<&'a str> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row starting with {first}:\n{out}"))
}

/// The header words of a kubectl table.
fn header(out: &str) -> Vec<&str> {
    out.lines().next().unwrap_or("").split_whitespace().collect()
}

/// Objects for the kubectl test: a namespace, a pod, a deployment, config maps in two
/// namespaces and a cluster role.
const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  containers: [{name: app, image: nginx}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers: [{name: app, image: "nginx:1.27"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: one, namespace: default}
data: {a: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: two, namespace: other}
data: {a: "1", b: "2"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules: []
"#;

#[tokio::test]
async fn kubectl_prints_upstream_columns() {
    let server = TestServer::start().await;
    let dir = server.data_dir().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("objects.yaml");
    std::fs::write(&file, MANIFEST).unwrap();
    kubectl(&server, &["create", "--validate=false", "-f", file.to_str().unwrap()]).await;

    let out = kubectl(&server, &["get", "pods", "-o", "wide"]).await;
    assert_eq!(
        header(&out),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"],
        "{out}"
    );
    let r = row(&out, "web");
    assert_eq!((r[1], r[2], r[3]), ("0/1", "Pending", "0"), "{out}");
    assert_eq!(r[5..], ["<none>", "<none>", "<none>", "<none>"], "{out}");
    // Without -o wide the priority-1 columns are hidden.
    let out = kubectl(&server, &["get", "pods"]).await;
    assert_eq!(header(&out), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], "{out}");

    let out = kubectl(&server, &["get", "deploy"]).await;
    assert_eq!(header(&out), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], "{out}");
    assert_eq!(row(&out, "shop")[1..4], ["0/2", "0", "0"], "{out}");
    let out = kubectl(&server, &["get", "deploy", "-o", "wide"]).await;
    assert_eq!(row(&out, "shop")[5..], ["app", "nginx:1.27", "app=shop"], "{out}");

    let out = kubectl(&server, &["get", "cm", "-A"]).await;
    assert_eq!(header(&out), ["NAMESPACE", "NAME", "DATA", "AGE"], "{out}");
    assert_eq!(row(&out, "default")[1..3], ["one", "1"], "{out}");
    assert_eq!(row(&out, "other")[1..3], ["two", "2"], "{out}");

    let out = kubectl(&server, &["get", "ns", "-L", "kubernetes.io/metadata.name"]).await;
    assert_eq!(header(&out), ["NAME", "STATUS", "AGE", "METADATA.NAME"], "{out}");
    let r = row(&out, "kube-system");
    assert_eq!((r[1], r[3]), ("Active", "kube-system"), "{out}");
    assert_eq!(row(&out, "other")[3], "other", "{out}");

    // A single object, and a kind without a printer.
    let out = kubectl(&server, &["get", "cm", "one"]).await;
    assert_eq!(header(&out), ["NAME", "DATA", "AGE"], "{out}");
    let out = kubectl(&server, &["get", "clusterroles"]).await;
    assert_eq!(header(&out), ["NAME", "CREATED", "AT"], "{out}");
    assert!(row(&out, "reader")[1].ends_with('Z'), "{out}");
}
