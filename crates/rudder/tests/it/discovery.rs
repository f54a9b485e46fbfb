//! Discovery and OpenAPI against a real `rudder server`: aggregated discovery (v2 and
//! v2beta1) and the legacy documents as raw HTTP, kube-rs's aggregated discovery, the OpenAPI
//! v3 index and group-version documents, the Swagger document in JSON and protobuf, and the
//! real kubectl 1.32 (`api-resources`, `api-versions`, `explain`, validating `create`).

use crate::common::{TestServer, kubectl_path};
use http::HeaderMap;
use serde_json::{Value, json};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::process::Command;

const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
/// What client-go and kube-rs send.
const CLIENT_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

/// A GET with the given headers; returns status, response headers and body.
async fn get(client: &kube::Client, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Vec<u8>) {
    let mut b = http::Request::get(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Vec::new()).expect("request builds");
    let resp = client.send(req.map(kube::client::Body::from)).await.expect("request is answered");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes().to_vec();
    (status, headers, bytes)
}

async fn get_json(client: &kube::Client, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Value) {
    let (status, headers, bytes) = get(client, path, headers).await;
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{path} answered {status} with a body that is not JSON ({e})"));
    (status, headers, v)
}

fn find<'a>(items: &'a Value, key: &str, value: &str) -> &'a Value {
    items
        .as_array()
        .and_then(|a| a.iter().find(|x| x[key] == value))
        .unwrap_or_else(|| panic!("no {key}={value} in {items}"))
}

#[tokio::test]
async fn aggregated_discovery_documents() {
    let server = TestServer::start().await;
    let client = server.client().await;

    // /apis, v2: every group in upstream's order, versions preferred first.
    let (status, headers, apis) = get_json(&client, "/apis", &[("accept", CLIENT_ACCEPT)]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], AGGREGATED_V2);
    assert_eq!(headers["vary"], "Accept");
    assert_eq!(
        (&apis["kind"], &apis["apiVersion"]),
        (&json!("APIGroupDiscoveryList"), &json!("apidiscovery.k8s.io/v2"))
    );
    let names: Vec<&str> =
        apis["items"].as_array().unwrap().iter().map(|g| g["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "apps");
    for group in ["batch", "autoscaling", "rbac.authorization.k8s.io", "policy", "discovery.k8s.io"] {
        assert!(names.contains(&group), "{names:?}");
    }
    let apps = apis["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "apps").unwrap();
    let v1 = &apps["versions"][0];
    assert_eq!((&v1["version"], &v1["freshness"]), (&json!("v1"), &json!("Current")));
    let deployments = find(&v1["resources"], "resource", "deployments");
    assert_eq!(deployments["responseKind"]["kind"], "Deployment");
    assert_eq!(deployments["scope"], "Namespaced");
    assert_eq!(deployments["singularResource"], "deployment");
    assert_eq!(deployments["shortNames"], json!(["deploy"]));
    assert_eq!(deployments["categories"], json!(["all"]));
    assert!(deployments["verbs"].as_array().unwrap().contains(&json!("deletecollection")));
    let scale = find(&deployments["subresources"], "subresource", "scale");
    assert_eq!(scale["responseKind"], json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}));
    assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
    assert_eq!(find(&deployments["subresources"], "subresource", "status")["responseKind"]["kind"], "Deployment");
    let autoscaling =
        apis["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "autoscaling").unwrap();
    let versions: Vec<&str> =
        autoscaling["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["v2", "v1"]);

    // The ETag revalidates.
    let etag = headers["etag"].to_str().unwrap().to_string();
    let (status, _, body) = get(&client, "/apis", &[("accept", CLIENT_ACCEPT), ("if-none-match", &etag)]).await;
    assert_eq!((status, body.len()), (304, 0));

    // /api, v2beta1: the core group, without a name.
    let (status, headers, api) = get_json(&client, "/api", &[("accept", AGGREGATED_V2BETA1)]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], AGGREGATED_V2BETA1);
    assert_eq!(api["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    let core = &api["items"][0];
    assert!(core["metadata"].get("name").is_none(), "{core}");
    let resources = &core["versions"][0]["resources"];
    let pods = find(resources, "resource", "pods");
    assert_eq!((&pods["scope"], &pods["shortNames"]), (&json!("Namespaced"), &json!(["po"])));
    let eviction = find(&pods["subresources"], "subresource", "eviction");
    assert_eq!(eviction["responseKind"], json!({"group": "policy", "version": "v1", "kind": "Eviction"}));
    assert_eq!(eviction["verbs"], json!(["create"]));
    assert_eq!(find(&pods["subresources"], "subresource", "exec")["responseKind"]["kind"], "PodExecOptions");
    assert_eq!(find(resources, "resource", "nodes")["scope"], "Cluster");
    let token = find(&find(resources, "resource", "serviceaccounts")["subresources"], "subresource", "token");
    assert_eq!(
        token["responseKind"],
        json!({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"})
    );

    // Plain JSON keeps the legacy documents.
    let (_, headers, api) = get_json(&client, "/api", &[("accept", "application/json")]).await;
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!((&api["kind"], &api["versions"]), (&json!("APIVersions"), &json!(["v1"])));
    assert!(api["serverAddressByClientCIDRs"].is_array());
    let (_, _, apis) = get_json(&client, "/apis", &[]).await;
    assert_eq!(apis["kind"], "APIGroupList");
}

#[tokio::test]
async fn legacy_resource_lists_carry_subresources() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let (status, _, core) = get_json(&client, "/api/v1", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(core["groupVersion"], "v1");
    let resources = &core["resources"];
    let pods = find(resources, "name", "pods");
    assert_eq!(pods["singularName"], "pod");
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    assert_eq!(pods["storageVersionHash"], "xPOwRZ+Yhw8=");
    let eviction = find(resources, "name", "pods/eviction");
    assert_eq!(
        (&eviction["group"], &eviction["version"], &eviction["kind"], &eviction["verbs"]),
        (&json!("policy"), &json!("v1"), &json!("Eviction"), &json!(["create"]))
    );
    assert_eq!(find(resources, "name", "pods/log")["kind"], "Pod");
    assert_eq!(find(resources, "name", "pods/exec")["verbs"], json!(["create", "get"]));
    assert_eq!(find(resources, "name", "pods/status")["verbs"], json!(["get", "patch", "update"]));
    assert_eq!(find(resources, "name", "pods/binding")["kind"], "Binding");
    let token = find(resources, "name", "serviceaccounts/token");
    assert_eq!((&token["group"], &token["kind"]), (&json!("authentication.k8s.io"), &json!("TokenRequest")));

    let (_, _, apps) = get_json(&client, "/apis/apps/v1", &[]).await;
    let scale = find(&apps["resources"], "name", "deployments/scale");
    assert_eq!(
        (&scale["group"], &scale["version"], &scale["kind"], &scale["namespaced"]),
        (&json!("autoscaling"), &json!("v1"), &json!("Scale"), &json!(true))
    );
    assert_eq!(find(&apps["resources"], "name", "deployments")["storageVersionHash"], "8aSe+NMegvE=");
}

#[tokio::test]
async fn kube_rs_aggregated_discovery() {
    let server = TestServer::start().await;
    let discovery = kube::Discovery::new(server.client().await).run_aggregated().await.expect("aggregated discovery");
    let apps = discovery.get("apps").expect("the apps group");
    assert_eq!(apps.preferred_version(), Some("v1"));
    let (deployments, caps) = apps.recommended_kind("Deployment").expect("deployments");
    assert_eq!((deployments.plural.as_str(), deployments.api_version.as_str()), ("deployments", "apps/v1"));
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(caps.supports_operation("patch"));
    let scale = caps.subresources.iter().find(|(r, _)| r.plural == "scale").expect("a scale subresource");
    assert_eq!(scale.0.kind, "Scale");
    assert!(scale.1.supports_operation("update"));

    let gvk = kube::api::GroupVersionKind::gvk("", "v1", "Pod");
    let (pods, caps) = discovery.resolve_gvk(&gvk).expect("pods");
    assert_eq!(pods.plural, "pods");
    assert!(caps.subresources.iter().any(|(r, _)| r.plural == "eviction" && r.kind == "Eviction"));
    let autoscaling = discovery.get("autoscaling").expect("autoscaling");
    assert_eq!(autoscaling.preferred_version(), Some("v2"));
    let nodes = discovery.resolve_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "Node")).expect("nodes");
    assert_eq!(nodes.1.scope, kube::discovery::Scope::Cluster);
}

#[tokio::test]
async fn openapi_documents() {
    let server = TestServer::start().await;
    let client = server.client().await;

    // The index names every served group version with the hash of its document.
    let (status, headers, index) = get_json(&client, "/openapi/v3", &[]).await;
    assert_eq!(status, 200);
    let index_etag = headers["etag"].to_str().unwrap().to_string();
    let paths = index["paths"].as_object().expect("paths");
    for key in ["api/v1", "apis/apps/v1", "apis/batch/v1", "apis/autoscaling/v2", "apis/rbac.authorization.k8s.io/v1"] {
        assert!(paths.contains_key(key), "{key} missing: {index}");
    }
    let url = paths["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap().to_string();
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    let (status, _, _) = get(&client, "/openapi/v3", &[("if-none-match", &index_etag)]).await;
    assert_eq!(status, 304);

    // The apps/v1 document: deployments' PATCH lists fieldValidation and the patch types.
    let (status, headers, doc) = get_json(&client, &url, &[("accept", "application/json")]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "public, immutable");
    assert_eq!(doc["openapi"], "3.0.0");
    let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    let patch = &item["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    assert_eq!(patch["x-kubernetes-action"], "patch");
    assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
    let validation = find(&patch["parameters"], "name", "fieldValidation");
    assert_eq!(validation["in"], "query");
    for name in ["dryRun", "fieldManager", "force"] {
        find(&patch["parameters"], "name", name);
    }
    let content = patch["requestBody"]["content"].as_object().unwrap();
    for ct in [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ] {
        assert!(content.contains_key(ct), "{ct}");
    }
    find(&item["put"]["parameters"], "name", "fieldValidation");
    find(
        &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"]["parameters"],
        "name",
        "fieldValidation",
    );
    let schemas = &doc["components"]["schemas"];
    let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(
        (&containers["x-kubernetes-patch-merge-key"], &containers["x-kubernetes-patch-strategy"]),
        (&json!("name"), &json!("merge"))
    );
    assert!(schemas["io.k8s.api.autoscaling.v1.Scale"].is_object());

    // A stale hash is redirected; an unknown group version is a 404.
    let (status, headers, _) = get(&client, "/openapi/v3/apis/apps/v1?hash=0", &[]).await;
    assert_eq!(status, 301);
    assert_eq!(headers["location"], url.as_str());
    assert_eq!(get(&client, "/openapi/v3/apis/nope/v1", &[]).await.0, 404);

    // Swagger 2.0, as JSON and as gnostic protobuf.
    let (status, _, v2) = get_json(&client, "/openapi/v2", &[("accept", "application/json")]).await;
    assert_eq!(status, 200);
    assert_eq!(v2["swagger"], "2.0");
    assert!(v2["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
    let patch = &v2["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
    find(&patch["parameters"], "name", "fieldValidation");
    let protobuf = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let (status, headers, bytes) = get(&client, "/openapi/v2", &[("accept", protobuf)]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/com.github.proto-openapi.spec.v2.v1.0+protobuf");
    assert!(bytes.starts_with(b"\x0a\x032.0"), "a Document starting with swagger: 2.0");
    assert_eq!(get(&client, "/openapi/v2", &[("accept", "text/html")]).await.0, 406);

    // Only reads, and only for authenticated clients.
    let (status, _) = crate::common::raw(&client, "POST", "/openapi/v3", None, b"{}".to_vec()).await;
    assert_eq!(status, 405);
}

/// kubectl aimed at `server` with a fresh discovery cache.
async fn kubectl(server: &TestServer, cache: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(kubectl_path());
    cmd.env("KUBECONFIG", &server.kubeconfig)
        .env("KUBECACHEDIR", server.data_dir().join(cache))
        .arg("--request-timeout=20s")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} finishes within 60 s"))
        .expect("kubectl starts")
}

async fn must(server: &TestServer, args: &[&str]) -> String {
    let out = kubectl(server, "kubectl-cache", args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn row<'a>(table: &'a str, name: &str, api_version: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&name) && cols.contains(&api_version))
        .unwrap_or_else(|| panic!("api-resources has no row for {name} ({api_version}):\n{table}"))
}

#[tokio::test]
async fn kubectl_discovery_and_explain() {
    let server = TestServer::start().await;

    let table = must(&server, &["api-resources"]).await;
    assert_eq!(row(&table, "pods", "v1"), ["pods", "po", "v1", "true", "Pod"]);
    assert_eq!(row(&table, "deployments", "apps/v1"), ["deployments", "deploy", "apps/v1", "true", "Deployment"]);
    assert_eq!(row(&table, "nodes", "v1"), ["nodes", "no", "v1", "false", "Node"]);
    assert_eq!(row(&table, "events", "events.k8s.io/v1"), ["events", "ev", "events.k8s.io/v1", "true", "Event"]);
    assert!(!table.contains("pods/eviction"), "{table}");
    let wide = must(&server, &["api-resources", "-o", "wide", "--api-group=apps"]).await;
    let deployments = wide.lines().find(|l| l.starts_with("deployments")).expect("a deployments row");
    assert!(
        deployments.contains("create,delete,deletecollection,get,list,patch,update,watch")
            || deployments.contains("[create delete"),
        "{wide}"
    );
    assert!(deployments.contains("all"), "categories: {wide}");

    let versions = must(&server, &["api-versions"]).await;
    let versions: Vec<&str> = versions.lines().collect();
    for gv in ["v1", "apps/v1", "autoscaling/v1", "autoscaling/v2", "policy/v1", "discovery.k8s.io/v1"] {
        assert!(versions.contains(&gv), "{gv} missing: {versions:?}");
    }

    let template = must(&server, &["explain", "deployment.spec.template"]).await;
    for text in [
        "GROUP:      apps",
        "KIND:       Deployment",
        "VERSION:    v1",
        "FIELD: template <PodTemplateSpec>",
        "metadata\t<ObjectMeta>",
        "spec\t<PodSpec>",
        "Specification of the desired behavior of the pod",
    ] {
        assert!(template.contains(text), "{text:?} missing:\n{template}");
    }
    let containers = must(&server, &["explain", "pods.spec.containers"]).await;
    for text in [
        "KIND:       Pod",
        "FIELD: containers <[]Container>",
        "List of containers belonging to the pod",
        "image\t<string>",
        "ports\t<[]ContainerPort>",
        "name\t<string> -required-",
    ] {
        assert!(containers.contains(text), "{text:?} missing:\n{containers}");
    }
    let recursive = must(&server, &["explain", "pods", "--recursive"]).await;
    for text in [
        "DESCRIPTION:",
        "FIELDS:",
        "containers\t<[]Container> -required-",
        "nodeSelector\t<map[string]string>",
        "volumes\t<[]Volume>",
    ] {
        assert!(recursive.contains(text), "{text:?} missing:\n{recursive}");
    }
    let hpa = must(&server, &["explain", "hpa.spec", "--api-version=autoscaling/v1"]).await;
    assert!(hpa.contains("VERSION:    v1") && hpa.contains("targetCPUUtilizationPercentage"), "{hpa}");

    // Server-side validation is found in the OpenAPI v3 documents: `create` runs with the
    // default strict validation and sends `fieldValidation=Strict`.
    let dir = server.data_dir().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let cm = dir.join("cm.yaml");
    std::fs::write(&cm, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: validated\ndata:\n  k: v\n").unwrap();
    let out = kubectl(&server, "kubectl-cache", &["create", "-f", cm.to_str().unwrap(), "-v=6"]).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("configmap/validated created"), "{stdout}\n{stderr}");
    assert!(stderr.contains("GET https://") && stderr.contains("/openapi/v3/api/v1?hash="), "{stderr}");
    assert!(stderr.contains("fieldValidation=Strict"), "{stderr}");
    // A `kind: List` manifest is validated on the client with the Swagger document.
    let list = dir.join("list.yaml");
    std::fs::write(
        &list,
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: in-list}\n  data: {k: v}\n",
    )
    .unwrap();
    let out = must(&server, &["create", "-f", list.to_str().unwrap()]).await;
    assert!(out.contains("configmap/in-list created"), "{out}");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: bad}\n  bogus: 1\n",
    )
    .unwrap();
    let out = kubectl(&server, "kubectl-cache", &["create", "-f", bad.to_str().unwrap()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("unknown field \"bogus\""), "{stderr}");
}
