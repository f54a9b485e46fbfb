//! The real kubectl 1.32 against a real `rudder server`: discovery, create/apply/get in every
//! output format, watch, label/annotate/patch/replace/scale, selectors, dry runs, deletion and
//! namespace lifecycle.
//!
//! kubectl runs with its defaults (strict validation through OpenAPI). Generators, three-way
//! apply and strategic patches are in `clients.rs`; discovery and explain in `discovery.rs`.

use crate::common::{TestServer, kubectl_path};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A kubectl command aimed at `server`, with a kubectl cache private to that server.
pub(crate) fn command(server: &TestServer, args: &[&str]) -> Command {
    let mut cmd = Command::new(kubectl_path());
    cmd.env("KUBECONFIG", &server.kubeconfig)
        .env("KUBECACHEDIR", server.data_dir().join("kubectl-cache"))
        .arg("--request-timeout=20s")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs kubectl and returns whatever it produced.
pub(crate) async fn kubectl(server: &TestServer, args: &[&str]) -> Output {
    let run = command(server, args).stdout(Stdio::piped()).stderr(Stdio::piped()).output();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} finishes within 30 s"))
        .expect("kubectl starts")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs kubectl, requires success and returns its stdout.
pub(crate) async fn must(server: &TestServer, args: &[&str]) -> String {
    let out = kubectl(server, args).await;
    assert!(
        out.status.success(),
        "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs kubectl, requires failure and returns its stderr.
pub(crate) async fn fails(server: &TestServer, args: &[&str]) -> String {
    let out = kubectl(server, args).await;
    assert!(!out.status.success(), "kubectl {args:?} should fail but printed:\n{}", text(&out.stdout));
    text(&out.stderr)
}

/// Like [`must`] but parses stdout as JSON.
pub(crate) async fn must_json(server: &TestServer, args: &[&str]) -> Value {
    let out = must(server, args).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {args:?} printed invalid JSON ({e}):\n{out}"))
}

/// Writes a manifest into a scratch folder of the server's temp dir and returns its path.
pub(crate) fn manifest(server: &TestServer, file: &str, yaml: &str) -> String {
    let dir = server.data_dir().join("manifests");
    std::fs::create_dir_all(&dir).expect("manifest folder");
    let path: PathBuf = dir.join(file);
    std::fs::write(&path, yaml).expect("write the manifest");
    path.to_str().expect("temp paths are UTF-8").to_string()
}

fn configmap(name: &str, labels: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\ndata:\n  key: \"{value}\"\n"
    )
}

fn pod(name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {app}}}\nspec:\n  containers:\n  - name: main\n    image: busybox:1.36\n"
    )
}

/// The non-empty lines of `out`, trimmed.
fn lines(out: &str) -> Vec<&str> {
    out.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

/// One `kubectl api-resources` row split into columns (SHORTNAMES may be empty, so rows are
/// matched by their first column and the rest compared as words).
fn api_resource_row<'a>(table: &'a str, name: &str, api_version: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&name) && cols.contains(&api_version))
        .unwrap_or_else(|| panic!("api-resources has no row for {name} ({api_version}):\n{table}"))
}

#[tokio::test]
async fn kubectl_discovery_and_raw_paths() {
    let server = TestServer::start().await;

    // `version` talks to /version and prints both sides.
    let plain = must(&server, &["version"]).await;
    let server_line = plain.lines().find(|l| l.starts_with("Server Version:")).expect("a Server Version line");
    assert!(server_line.contains("v1.32"), "{plain}");
    let version = must_json(&server, &["version", "-o", "json"]).await;
    let sv = &version["serverVersion"];
    assert_eq!(sv["major"], "1", "{version}");
    assert_eq!(sv["minor"], "32", "{version}");
    assert!(sv["gitVersion"].as_str().is_some_and(|v| v.starts_with("v1.32.")), "{version}");
    assert!(sv["platform"].as_str().is_some_and(|p| p.contains('/')), "{version}");

    // `api-resources` from aggregated discovery.
    let table = must(&server, &["api-resources"]).await;
    let header = lines(&table)[0].split_whitespace().collect::<Vec<_>>();
    assert_eq!(header, ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]);
    assert_eq!(api_resource_row(&table, "pods", "v1"), ["pods", "po", "v1", "true", "Pod"]);
    assert_eq!(api_resource_row(&table, "namespaces", "v1"), ["namespaces", "ns", "v1", "false", "Namespace"]);
    assert_eq!(api_resource_row(&table, "configmaps", "v1"), ["configmaps", "cm", "v1", "true", "ConfigMap"]);
    assert_eq!(api_resource_row(&table, "secrets", "v1"), ["secrets", "v1", "true", "Secret"]);
    assert_eq!(
        api_resource_row(&table, "deployments", "apps/v1"),
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    assert_eq!(api_resource_row(&table, "jobs", "batch/v1"), ["jobs", "batch/v1", "true", "Job"]);
    assert_eq!(
        api_resource_row(&table, "horizontalpodautoscalers", "autoscaling/v2"),
        ["horizontalpodautoscalers", "hpa", "autoscaling/v2", "true", "HorizontalPodAutoscaler"]
    );
    assert_eq!(
        api_resource_row(&table, "clusterroles", "rbac.authorization.k8s.io/v1"),
        ["clusterroles", "rbac.authorization.k8s.io/v1", "false", "ClusterRole"]
    );
    // Subresources are not resources of their own.
    assert!(!table.contains("pods/status") && !table.contains("deployments/scale"), "{table}");
    let namespaced = must(&server, &["api-resources", "--namespaced=false", "-o", "name"]).await;
    let namespaced = lines(&namespaced);
    assert!(namespaced.contains(&"namespaces") && namespaced.contains(&"nodes"), "{namespaced:?}");
    assert!(!namespaced.contains(&"pods"), "{namespaced:?}");
    let apps = must(&server, &["api-resources", "--api-group=apps", "-o", "name"]).await;
    assert!(lines(&apps).contains(&"deployments.apps"), "{apps}");

    // `api-versions`: every served group version, one per line.
    let versions = must(&server, &["api-versions"]).await;
    let versions = lines(&versions);
    for gv in [
        "v1",
        "apps/v1",
        "batch/v1",
        "autoscaling/v1",
        "autoscaling/v2",
        "rbac.authorization.k8s.io/v1",
        "coordination.k8s.io/v1",
    ] {
        assert!(versions.contains(&gv), "api-versions lacks {gv}: {versions:?}");
    }

    // The built-in namespaces.
    let ns = must(&server, &["get", "ns", "-o", "name"]).await;
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(lines(&ns).contains(&format!("namespace/{name}").as_str()), "{ns}");
    }
    let table = must(&server, &["get", "namespaces"]).await;
    assert!(lines(&table)[0].starts_with("NAME"), "{table}");
    assert!(table.contains("kube-node-lease"), "{table}");
    let phase = must(&server, &["get", "ns", "default", "-o", "jsonpath={.status.phase}"]).await;
    assert_eq!(phase, "Active");

    // Raw paths.
    assert_eq!(must(&server, &["get", "--raw", "/healthz"]).await.trim(), "ok");
    assert_eq!(must(&server, &["get", "--raw", "/livez"]).await.trim(), "ok");
    assert_eq!(must(&server, &["get", "--raw", "/readyz"]).await.trim(), "ok");
    let raw: Value =
        serde_json::from_str(&must(&server, &["get", "--raw", "/version"]).await).expect("/version is JSON");
    assert_eq!(raw["gitVersion"], sv["gitVersion"]);
    let list: Value =
        serde_json::from_str(&must(&server, &["get", "--raw", "/api/v1/namespaces"]).await).expect("a list as JSON");
    assert_eq!(list["kind"], "NamespaceList");
    assert!(list["metadata"]["resourceVersion"].as_str().is_some_and(|rv| rv.parse::<u64>().is_ok()), "{list}");
    let err = fails(&server, &["get", "--raw", "/api/v1/namespaces/default/configmaps/absent"]).await;
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
}

const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels: {app: web}
data:
  greeting: hello
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
";

#[tokio::test]
async fn kubectl_create_apply_get_and_scale() {
    let server = TestServer::start().await;

    // `create -f` with three documents in one file.
    let file = manifest(&server, "web.yaml", WEB);
    let out = must(&server, &["create", "-f", &file]).await;
    assert_eq!(lines(&out), ["deployment.apps/web created", "configmap/web-config created", "service/web created"]);
    // A second create of the same objects: AlreadyExists for each.
    let err = fails(&server, &["create", "-f", &file]).await;
    assert!(err.contains("AlreadyExists") && err.contains("deployments.apps \"web\" already exists"), "{err}");
    assert!(err.contains("configmaps \"web-config\" already exists"), "{err}");

    // `-o name` over several kinds.
    let names = must(&server, &["get", "deploy,cm,svc", "-o", "name"]).await;
    assert_eq!(lines(&names), ["deployment.apps/web", "configmap/web-config", "service/kubernetes", "service/web"]);
    let table = must(&server, &["get", "deployments"]).await;
    assert!(lines(&table)[0].starts_with("NAME") && table.contains("web"), "{table}");

    // `-o json`: the stored object with server-set metadata and defaults.
    let deploy = must_json(&server, &["get", "deployment", "web", "-o", "json"]).await;
    assert_eq!(deploy["apiVersion"], "apps/v1");
    assert_eq!(deploy["kind"], "Deployment");
    assert_eq!(deploy["metadata"]["name"], "web");
    assert_eq!(deploy["metadata"]["namespace"], "default");
    assert_eq!(deploy["metadata"]["generation"], 1);
    let uid = deploy["metadata"]["uid"].as_str().expect("a uid").to_string();
    assert_eq!(uid.len(), 36, "{uid}");
    let rv: u64 = deploy["metadata"]["resourceVersion"].as_str().expect("a resourceVersion").parse().expect("numeric");
    assert!(rv > 0);
    assert!(deploy["metadata"]["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{deploy}");
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(deploy["spec"]["strategy"]["type"], "RollingUpdate", "defaults are applied");
    assert_eq!(deploy["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
    let cm = must_json(&server, &["get", "configmap", "web-config", "-o", "json"]).await;
    assert_eq!(cm["data"]["greeting"], "hello");
    assert_ne!(cm["metadata"]["uid"], deploy["metadata"]["uid"]);

    // A list as JSON.
    let list = must_json(&server, &["get", "cm", "-o", "json"]).await;
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["items"][0]["kind"], "ConfigMap");

    // `-o yaml`.
    let yaml = must(&server, &["get", "configmap", "web-config", "-o", "yaml"]).await;
    for needle in
        ["apiVersion: v1", "kind: ConfigMap", "  name: web-config", "  namespace: default", "  greeting: hello"]
    {
        assert!(yaml.lines().any(|l| l.trim_end() == needle || l.starts_with(needle)), "no {needle:?} in:\n{yaml}");
    }
    assert!(yaml.contains(&format!("uid: {}", cm["metadata"]["uid"].as_str().unwrap())), "{yaml}");

    // `-o jsonpath`.
    let jp = must(&server, &["get", "deploy", "web", "-o", "jsonpath={.metadata.uid}"]).await;
    assert_eq!(jp, uid);
    let jp =
        must(&server, &["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].port}/{.spec.ports[0].targetPort}"]).await;
    assert_eq!(jp, "80/8080");
    let jp =
        must(&server, &["get", "deploy,cm", "-o", "jsonpath={range .items[*]}{.kind}:{.metadata.name}{\"\\n\"}{end}"])
            .await;
    assert_eq!(lines(&jp), ["Deployment:web", "ConfigMap:web-config"]);

    // `apply -f` of an object that does not exist yet creates it and records what was applied.
    let file = manifest(&server, "applied.yaml", &configmap("applied", "tier: back", "one"));
    let out = must(&server, &["apply", "-f", &file]).await;
    assert_eq!(out.trim(), "configmap/applied created");
    let applied = must_json(&server, &["get", "cm", "applied", "-o", "json"]).await;
    assert_eq!(applied["data"]["key"], "one");
    assert_eq!(applied["metadata"]["labels"]["tier"], "back");
    let last = applied["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("apply records the last applied configuration");
    let last: Value = serde_json::from_str(last).expect("the annotation is JSON");
    assert_eq!(last["metadata"]["name"], "applied");
    assert_eq!(last["data"]["key"], "one");

    // `--dry-run=server` on create: the server answers with the object but stores nothing.
    let file = manifest(&server, "dry.yaml", &configmap("dry", "", "x"));
    let out = must(&server, &["create", "-f", &file, "--dry-run=server"]).await;
    assert_eq!(out.trim(), "configmap/dry created (server dry run)");
    let dry = must_json(&server, &["create", "-f", &file, "--dry-run=server", "-o", "json"]).await;
    assert_eq!(dry["metadata"]["name"], "dry");
    assert_eq!(dry["data"]["key"], "x");
    let err = fails(&server, &["get", "cm", "dry"]).await;
    assert!(err.contains("configmaps \"dry\" not found"), "{err}");

    // `scale` goes through the scale subresource; the spec changes, so the generation moves.
    let out = must(&server, &["scale", "deployment", "web", "--replicas=3"]).await;
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    let scaled = must_json(&server, &["get", "deploy", "web", "-o", "json"]).await;
    assert_eq!(scaled["spec"]["replicas"], 3);
    assert_eq!(scaled["metadata"]["generation"], 2);
    assert_eq!(scaled["metadata"]["uid"], uid.as_str());
    let scale: Value = serde_json::from_str(
        &must(&server, &["get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web/scale"]).await,
    )
    .expect("Scale is JSON");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=web");
    // A precondition on the current size that does not hold.
    let err = fails(&server, &["scale", "deployment", "web", "--replicas=5", "--current-replicas=2"]).await;
    assert!(err.contains("Expected replicas to be 2, was 3"), "{err}");
    assert_eq!(must(&server, &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]).await, "3");
}

#[tokio::test]
async fn kubectl_label_annotate_patch_replace() {
    let server = TestServer::start().await;
    let file = manifest(
        &server,
        "cms.yaml",
        &format!("{}---\n{}", configmap("one", "app: a", "1"), configmap("two", "app: b", "2")),
    );
    must(&server, &["create", "-f", &file]).await;

    // label / annotate, then select by the new label.
    assert_eq!(must(&server, &["label", "cm", "one", "tier=front"]).await.trim(), "configmap/one labeled");
    assert_eq!(must(&server, &["annotate", "cm", "one", "note=hello world"]).await.trim(), "configmap/one annotated");
    assert_eq!(must(&server, &["get", "cm", "-l", "tier=front", "-o", "name"]).await.trim(), "configmap/one");
    assert_eq!(
        must(&server, &["get", "cm", "one", "-o", "jsonpath={.metadata.annotations.note}"]).await,
        "hello world"
    );
    // An existing label is kept unless --overwrite is given.
    let err = fails(&server, &["label", "cm", "one", "tier=back"]).await;
    assert!(err.contains("--overwrite is false"), "{err}");
    must(&server, &["label", "cm", "one", "tier=back", "--overwrite"]).await;
    assert_eq!(must(&server, &["get", "cm", "-l", "tier=back", "-o", "name"]).await.trim(), "configmap/one");
    let out = kubectl(&server, &["get", "cm", "-l", "tier=front", "-o", "name"]).await;
    assert!(out.status.success() && out.stdout.is_empty(), "{}", text(&out.stderr));
    // Label and annotation removal.
    assert_eq!(must(&server, &["label", "cm", "one", "tier-"]).await.trim(), "configmap/one unlabeled");
    assert_eq!(must(&server, &["annotate", "cm", "one", "note-"]).await.trim(), "configmap/one annotated");
    let one = must_json(&server, &["get", "cm", "one", "-o", "json"]).await;
    assert_eq!(one["metadata"]["labels"], serde_json::json!({"app": "a"}), "{one}");
    assert!(one["metadata"]["annotations"].get("note").is_none(), "{one}");
    // Labelling several objects by selector.
    let out = must(&server, &["label", "cm", "-l", "app", "group=all"]).await;
    assert_eq!(lines(&out), ["configmap/one labeled", "configmap/two labeled"]);

    // patch --type merge.
    let out =
        must(&server, &["patch", "cm", "one", "--type", "merge", "-p", r#"{"data":{"extra":"yes","key":null}}"#]).await;
    assert_eq!(out.trim(), "configmap/one patched");
    assert_eq!(must(&server, &["get", "cm", "one", "-o", "jsonpath={.data}"]).await, r#"{"extra":"yes"}"#);
    // patch --type json.
    let ops =
        r#"[{"op":"add","path":"/data/added","value":"v"},{"op":"replace","path":"/data/extra","value":"changed"}]"#;
    must(&server, &["patch", "cm", "one", "--type", "json", "-p", ops]).await;
    let one = must_json(&server, &["get", "cm", "one", "-o", "json"]).await;
    assert_eq!(one["data"], serde_json::json!({"added": "v", "extra": "changed"}));
    // A json patch whose `test` fails changes nothing and exits non-zero with a reason.
    let rv_before = one["metadata"]["resourceVersion"].clone();
    let ops =
        r#"[{"op":"test","path":"/data/extra","value":"other"},{"op":"replace","path":"/data/extra","value":"lost"}]"#;
    let err = fails(&server, &["patch", "cm", "one", "--type", "json", "-p", ops]).await;
    assert!(err.contains("The request is invalid"), "{err}");
    assert!(err.contains("/data/extra"), "the error names the failing path: {err}");
    let one = must_json(&server, &["get", "cm", "one", "-o", "json"]).await;
    assert_eq!(one["data"]["extra"], "changed");
    assert_eq!(one["metadata"]["resourceVersion"], rv_before);
    // A patch on a missing object.
    let err = fails(&server, &["patch", "cm", "absent", "--type", "merge", "-p", "{}"]).await;
    assert!(err.contains("configmaps \"absent\" not found"), "{err}");
    // Dry-run patch: the answer shows the change, the stored object does not.
    let out = must(
        &server,
        &[
            "patch",
            "cm",
            "one",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"dry":"run"}}"#,
            "--dry-run=server",
            "-o",
            "jsonpath={.data.dry}",
        ],
    )
    .await;
    assert_eq!(out, "run");
    assert_eq!(must(&server, &["get", "cm", "one", "-o", "jsonpath={.data.dry}"]).await, "");

    // replace -f with a modified copy of the current object.
    let current = must_json(&server, &["get", "cm", "two", "-o", "json"]).await;
    let mut changed = current.clone();
    changed["data"] = serde_json::json!({"key": "replaced"});
    changed["metadata"]["labels"]["replaced"] = "true".into();
    let path = manifest(&server, "two.json", &changed.to_string());
    assert_eq!(must(&server, &["replace", "-f", &path]).await.trim(), "configmap/two replaced");
    let two = must_json(&server, &["get", "cm", "two", "-o", "json"]).await;
    assert_eq!(two["data"], serde_json::json!({"key": "replaced"}));
    assert_eq!(two["metadata"]["labels"]["replaced"], "true");
    assert_eq!(two["metadata"]["uid"], current["metadata"]["uid"]);
    assert_ne!(two["metadata"]["resourceVersion"], current["metadata"]["resourceVersion"]);
    // The same file again carries the old resourceVersion: Conflict.
    let err = fails(&server, &["replace", "-f", &path]).await;
    assert!(err.contains("Conflict"), "{err}");
    assert!(err.contains("Operation cannot be fulfilled on configmaps \"two\""), "{err}");
    assert!(err.contains("the object has been modified"), "{err}");
    // Without a resourceVersion the replace is unconditional.
    let file = manifest(&server, "two.yaml", &configmap("two", "app: b", "unconditional"));
    must(&server, &["replace", "-f", &file]).await;
    assert_eq!(must(&server, &["get", "cm", "two", "-o", "jsonpath={.data.key}"]).await, "unconditional");
    // Replacing something that does not exist.
    let file = manifest(&server, "ghost.yaml", &configmap("ghost", "", "x"));
    let err = fails(&server, &["replace", "-f", &file]).await;
    assert!(err.contains("configmaps \"ghost\" not found"), "{err}");
}

#[tokio::test]
async fn kubectl_selectors_and_delete() {
    let server = TestServer::start().await;
    let pods = [pod("pa", "a"), pod("pb", "b"), pod("pc", "c")].join("---\n");
    let file = manifest(&server, "pods.yaml", &pods);
    let out = must(&server, &["create", "-f", &file]).await;
    assert_eq!(lines(&out), ["pod/pa created", "pod/pb created", "pod/pc created"]);

    // Field selectors.
    let out = must(&server, &["get", "pods", "--field-selector=status.phase=Pending", "-o", "name"]).await;
    assert_eq!(lines(&out), ["pod/pa", "pod/pb", "pod/pc"]);
    let out = kubectl(&server, &["get", "pods", "--field-selector=status.phase=Running", "-o", "name"]).await;
    assert!(out.status.success() && out.stdout.is_empty(), "{}", text(&out.stdout));
    let out = must(&server, &["get", "pods", "--field-selector=metadata.name=pb", "-o", "name"]).await;
    assert_eq!(out.trim(), "pod/pb");
    let out =
        must(&server, &["get", "pods", "--field-selector=metadata.name!=pb,status.phase=Pending", "-o", "name"]).await;
    assert_eq!(lines(&out), ["pod/pa", "pod/pc"]);
    let out = must(&server, &["get", "pods", "-A", "--field-selector=metadata.namespace=default", "-o", "name"]).await;
    assert_eq!(lines(&out).len(), 3, "{out}");
    let err = fails(&server, &["get", "pods", "--field-selector=spec.bogus=x"]).await;
    assert!(err.contains("field label not supported"), "{err}");
    assert!(err.contains("spec.bogus"), "{err}");

    // Label selectors, equality and set based.
    let out = must(&server, &["get", "pods", "-l", "app in (a,b)", "-o", "name"]).await;
    assert_eq!(lines(&out), ["pod/pa", "pod/pb"]);
    let out = must(&server, &["get", "pods", "-l", "app notin (a,b)", "-o", "name"]).await;
    assert_eq!(lines(&out), ["pod/pc"]);
    let out = must(&server, &["get", "pods", "-l", "app!=a", "-o", "name"]).await;
    assert_eq!(lines(&out), ["pod/pb", "pod/pc"]);
    let out = must(&server, &["get", "pods", "-l", "app", "-o", "name"]).await;
    assert_eq!(lines(&out).len(), 3);
    let out = kubectl(&server, &["get", "pods", "-l", "!app", "-o", "name"]).await;
    assert!(out.status.success() && out.stdout.is_empty(), "{}", text(&out.stdout));
    let out =
        must(&server, &["get", "pods", "-l", "app in (a,b,c)", "--field-selector=metadata.name!=pa", "-o", "name"])
            .await;
    assert_eq!(lines(&out), ["pod/pb", "pod/pc"]);
    let err = fails(&server, &["get", "pods", "-l", "app in (a"]).await;
    assert!(!err.is_empty());

    // `--dry-run=server` on delete keeps the object.
    let out = must(&server, &["delete", "pod", "pa", "--dry-run=server"]).await;
    assert_eq!(out.trim(), "pod \"pa\" deleted (server dry run)");
    assert_eq!(must(&server, &["get", "pod", "pa", "-o", "name"]).await.trim(), "pod/pa");
    let out = must(&server, &["delete", "pods", "-l", "app", "--dry-run=server"]).await;
    assert_eq!(lines(&out).len(), 3, "{out}");
    assert_eq!(lines(&must(&server, &["get", "pods", "-o", "name"]).await).len(), 3);

    // Delete by name.
    assert_eq!(must(&server, &["delete", "pod", "pa"]).await.trim(), "pod \"pa\" deleted");
    let err = fails(&server, &["get", "pod", "pa"]).await;
    assert!(err.contains("NotFound") && err.contains("pods \"pa\" not found"), "{err}");
    let err = fails(&server, &["delete", "pod", "pa"]).await;
    assert!(err.contains("pods \"pa\" not found"), "{err}");
    let out = must(&server, &["delete", "pod", "pa", "--ignore-not-found"]).await;
    assert!(out.trim().is_empty(), "{out}");

    // Delete by selector.
    let out = must(&server, &["delete", "pods", "-l", "app in (b,c)"]).await;
    assert_eq!(lines(&out), ["pod \"pb\" deleted", "pod \"pc\" deleted"]);
    for name in ["pb", "pc"] {
        let err = fails(&server, &["get", "pod", name]).await;
        assert!(err.contains(&format!("pods \"{name}\" not found")), "{err}");
    }
    let out = kubectl(&server, &["get", "pods"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("No resources found in default namespace."), "{}", text(&out.stderr));

    // Delete -f removes what a manifest created.
    let file = manifest(&server, "web.yaml", WEB);
    must(&server, &["create", "-f", &file]).await;
    let out = must(&server, &["delete", "-f", &file]).await;
    assert_eq!(
        lines(&out),
        ["deployment.apps \"web\" deleted", "configmap \"web-config\" deleted", "service \"web\" deleted"]
    );
    let err = fails(&server, &["get", "deploy", "web"]).await;
    assert!(err.contains("deployments.apps \"web\" not found"), "{err}");
}

/// Reads JSON documents from a kubectl child's stdout, one or more lines each.
async fn next_json(out: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let mut buf = String::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(15), out.next_line())
            .await
            .unwrap_or_else(|_| panic!("a watch event within 15 s (so far: {buf:?})"))
            .expect("read kubectl output")
            .unwrap_or_else(|| panic!("kubectl ended its output early (so far: {buf:?})"));
        buf.push_str(&line);
        buf.push('\n');
        if let Ok(v) = serde_json::from_str::<Value>(&buf) {
            return v;
        }
    }
}

async fn next_line(out: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(15), out.next_line())
        .await
        .expect("a watch line within 15 s")
        .expect("read kubectl output")
        .expect("kubectl is still printing")
}

fn spawn_watch(server: &TestServer, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child =
        command(server, args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("kubectl starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    (child, BufReader::new(stdout).lines())
}

/// Ends a watching kubectl by its PID and reaps it.
async fn stop(mut child: Child) {
    let pid = child.id().expect("the watcher is still running");
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill -TERM {pid}");
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("kubectl exits after SIGTERM")
        .expect("wait");
}

#[tokio::test]
async fn kubectl_get_watch() {
    let server = TestServer::start().await;
    let file = manifest(&server, "before.yaml", &configmap("before", "", "0"));
    must(&server, &["create", "-f", &file]).await;

    // Names only. The watch continues from the list's resourceVersion, so once the existing
    // object has been printed every later change reaches the watcher.
    let (names, mut name_lines) = spawn_watch(&server, &["get", "cm", "-w", "-o", "name"]);
    // Events with their type.
    let (events, mut event_lines) = spawn_watch(&server, &["get", "cm", "-w", "--output-watch-events", "-o", "json"]);
    assert_eq!(next_line(&mut name_lines).await.trim(), "configmap/before");
    let first = next_json(&mut event_lines).await;
    assert_eq!(first["type"], "ADDED", "{first}");
    assert_eq!(first["object"]["metadata"]["name"], "before");

    let file = manifest(&server, "watched.yaml", &configmap("watched", "", "1"));
    must(&server, &["create", "-f", &file]).await;
    must(&server, &["label", "cm", "watched", "seen=yes"]).await;
    must(&server, &["patch", "cm", "watched", "--type", "merge", "-p", r#"{"data":{"key":"2"}}"#]).await;
    must(&server, &["delete", "cm", "watched"]).await;

    for _ in 0..4 {
        assert_eq!(next_line(&mut name_lines).await.trim(), "configmap/watched");
    }
    let mut seen = Vec::new();
    let mut last_rv = 0u64;
    for _ in 0..4 {
        let ev = next_json(&mut event_lines).await;
        assert_eq!(ev["object"]["kind"], "ConfigMap", "{ev}");
        assert_eq!(ev["object"]["metadata"]["name"], "watched", "{ev}");
        let rv: u64 = ev["object"]["metadata"]["resourceVersion"].as_str().expect("rv").parse().expect("numeric rv");
        assert!(rv > last_rv, "resource versions grow: {rv} after {last_rv}");
        last_rv = rv;
        seen.push((ev["type"].as_str().unwrap_or("").to_string(), ev["object"].clone()));
    }
    let types: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]);
    assert_eq!(seen[0].1["data"]["key"], "1");
    assert_eq!(seen[1].1["metadata"]["labels"]["seen"], "yes");
    assert_eq!(seen[2].1["data"]["key"], "2");
    assert_eq!(seen[3].1["data"]["key"], "2");

    stop(names).await;
    stop(events).await;

    // Watching a single object by name.
    let (one, mut one_lines) =
        spawn_watch(&server, &["get", "cm", "before", "-w", "-o", "jsonpath={.data.key}{\"\\n\"}"]);
    assert_eq!(next_line(&mut one_lines).await.trim(), "0");
    must(&server, &["patch", "cm", "before", "--type", "merge", "-p", r#"{"data":{"key":"9"}}"#]).await;
    assert_eq!(next_line(&mut one_lines).await.trim(), "9");
    stop(one).await;
}

#[tokio::test]
async fn kubectl_namespace_lifecycle() {
    let server = TestServer::start().await;

    // Creating into a namespace that does not exist.
    let file = manifest(&server, "cm.yaml", &configmap("settings", "", "v"));
    let err = fails(&server, &["create", "-f", &file, "-n", "x"]).await;
    assert!(err.contains("namespaces \"x\" not found"), "{err}");
    let err = fails(&server, &["apply", "-f", &file, "-n", "x"]).await;
    assert!(err.contains("namespaces \"x\" not found"), "{err}");

    // A namespace of our own, with something in it.
    let ns = manifest(&server, "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: doomed\n");
    assert_eq!(must(&server, &["create", "-f", &ns]).await.trim(), "namespace/doomed created");
    let created = must_json(&server, &["get", "ns", "doomed", "-o", "json"]).await;
    assert_eq!(created["status"]["phase"], "Active");
    assert_eq!(created["metadata"]["labels"]["kubernetes.io/metadata.name"], "doomed");
    assert_eq!(created["spec"]["finalizers"], serde_json::json!(["kubernetes"]));
    must(&server, &["create", "-f", &file, "-n", "doomed"]).await;
    assert_eq!(must(&server, &["get", "cm", "-n", "doomed", "-o", "name"]).await.trim(), "configmap/settings");
    let all = must(
        &server,
        &["get", "cm", "-A", "-o", "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}"],
    )
    .await;
    assert!(lines(&all).contains(&"doomed/settings"), "{all}");

    // A dry-run delete changes nothing.
    must(&server, &["delete", "ns", "doomed", "--dry-run=server"]).await;
    assert_eq!(must(&server, &["get", "ns", "doomed", "-o", "jsonpath={.status.phase}"]).await, "Active");

    // Deleting it: the finalizer keeps it, in phase Terminating.
    let out = must(&server, &["delete", "ns", "doomed", "--wait=false"]).await;
    assert_eq!(out.trim(), "namespace \"doomed\" deleted");
    let doomed = must_json(&server, &["get", "ns", "doomed", "-o", "json"]).await;
    assert_eq!(doomed["status"]["phase"], "Terminating", "{doomed}");
    assert!(doomed["metadata"]["deletionTimestamp"].is_string(), "{doomed}");
    // Deleting it again while its content is being removed is a conflict, as upstream.
    let err = fails(&server, &["delete", "ns", "doomed", "--wait=false"]).await;
    assert!(err.contains("Conflict"), "{err}");
    assert!(err.contains("The system is ensuring all content is removed from this namespace"), "{err}");

    // New content is refused while it terminates.
    let other = manifest(&server, "other.yaml", &configmap("other", "", "v"));
    let err = fails(&server, &["create", "-f", &other, "-n", "doomed"]).await;
    assert!(err.contains("Forbidden") && err.contains("forbidden"), "{err}");
    assert!(err.contains("unable to create new content in namespace doomed because it is being terminated"), "{err}");
    let err = fails(&server, &["apply", "-f", &other, "-n", "doomed"]).await;
    assert!(err.contains("being terminated"), "{err}");
    // Creating the namespace again while it is still there.
    let err = fails(&server, &["create", "-f", &ns]).await;
    assert!(err.contains("AlreadyExists") || err.contains("already exists"), "{err}");

    // The built-in namespaces stay.
    let out = must(&server, &["get", "ns", "-o", "name"]).await;
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(lines(&out).contains(&format!("namespace/{name}").as_str()), "{out}");
    }
}
