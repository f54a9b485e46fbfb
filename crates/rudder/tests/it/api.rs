//! The REST API through kube-rs and raw requests: CRUD and metadata, errors as `Status`
//! objects, patches, subresources, deletion, namespaces, lists, selectors, watches and dry runs.
//!
//! Each test starts its own server and groups related checks so the suite stays quick.

use crate::common::{TestServer, enc, raw, raw_json};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent, WatchParams,
};
use kube::core::response::{Status, StatusSummary};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

type EventStream<K> = futures::stream::BoxStream<'static, kube::Result<WatchEvent<K>>>;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The `Status` of a failed kube-rs call.
#[track_caller]
fn status_of<T: std::fmt::Debug>(result: kube::Result<T>) -> Box<Status> {
    match result {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Checks a raw failure body: a `metav1.Status` with the given code and reason.
#[track_caller]
fn assert_status(body: &Value, code: u16, reason: &str) {
    assert_eq!(body["kind"], "Status", "not a Status: {body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], json!(code), "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "a message is expected: {body}");
}

/// The fields named by `details.causes`, in order.
fn cause_fields(body: &Value) -> Vec<String> {
    body["details"]["causes"]
        .as_array()
        .map(|a| a.iter().map(|c| c["field"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

fn rv_of<K: Resource>(obj: &K) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .expect("resourceVersion is set")
        .parse()
        .expect("resourceVersion is a number")
}

fn json_rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().expect("resourceVersion").parse().expect("numeric resourceVersion")
}

fn names<K: Resource>(items: &[K]) -> BTreeSet<String> {
    items.iter().map(|o| o.meta().name.clone().unwrap_or_default()).collect()
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn json_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    let data: BTreeMap<String, String> = data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).expect("a config map")
}

fn labelled_cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("a config map")
}

fn pod_template(app: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}})
}

fn deployment_json(name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": pod_template(name)},
    })
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(deployment_json(name, replicas)).expect("a deployment")
}

fn pod(name: &str, node: Option<&str>) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("a pod")
}

async fn create_namespace(client: &kube::Client, name: &str) -> Namespace {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns).await.expect("namespace is created")
}

async fn next_event<K>(stream: &mut EventStream<K>) -> WatchEvent<K> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a watch event within 10 s")
        .expect("the watch is still open")
        .expect("the watch event decodes")
}

/// The next event that is not a bookmark, as (type, name, resourceVersion).
async fn next_change<K: Resource>(stream: &mut EventStream<K>) -> (&'static str, String, u64) {
    loop {
        match next_event(stream).await {
            WatchEvent::Added(o) => return ("ADDED", o.meta().name.clone().unwrap(), rv_of(&o)),
            WatchEvent::Modified(o) => return ("MODIFIED", o.meta().name.clone().unwrap(), rv_of(&o)),
            WatchEvent::Deleted(o) => return ("DELETED", o.meta().name.clone().unwrap(), rv_of(&o)),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("unexpected watch error: {e:?}"),
        }
    }
}

/// Asserts that no non-bookmark event arrives within `wait`.
async fn assert_quiet<K: Resource>(stream: &mut EventStream<K>, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return,
            Ok(Some(Ok(WatchEvent::Bookmark(_)))) => continue,
            Ok(Some(Ok(WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o)))) => {
                panic!("no event was expected, got one for {:?}", o.meta().name)
            }
            Ok(other) => panic!("no event was expected, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CRUD, metadata and errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn configmap_crud_and_server_owned_metadata() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    let created = cms.create(&pp, &cm("alpha", &[("k", "v1")])).await.expect("create");
    let meta = &created.metadata;
    assert_eq!(meta.name.as_deref(), Some("alpha"));
    assert_eq!(meta.namespace.as_deref(), Some("default"), "the namespace comes from the URL");
    let uid = meta.uid.clone().expect("uid is set");
    assert_eq!(uid.len(), 36, "uid is a UUID: {uid}");
    assert!(meta.creation_timestamp.is_some(), "creationTimestamp is set");
    assert_eq!(meta.generation, None, "config maps carry no generation");
    let rv1 = rv_of(&created);
    assert!(rv1 > 0);

    let got = cms.get("alpha").await.expect("get");
    assert_eq!(got.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(rv_of(&got), rv1);
    assert_eq!(got.data, created.data);

    // resourceVersion is the global revision: any write moves it for everyone.
    let beta = cms.create(&pp, &cm("beta", &[])).await.expect("create beta");
    assert!(rv_of(&beta) > rv1);

    let mut next = got.clone();
    next.data = Some(BTreeMap::from([("k".to_string(), "v2".to_string())]));
    let replaced = cms.replace("alpha", &pp, &next).await.expect("replace");
    let rv2 = rv_of(&replaced);
    assert!(rv2 > rv_of(&beta), "replace moves resourceVersion: {rv2}");
    assert_eq!(replaced.metadata.uid.as_deref(), Some(uid.as_str()), "uid never changes");
    assert_eq!(replaced.metadata.creation_timestamp, created.metadata.creation_timestamp);
    assert_eq!(replaced.data.as_ref().unwrap()["k"], "v2");

    // A write based on the old resourceVersion is refused.
    let mut stale = got.clone();
    stale.data = Some(BTreeMap::from([("k".to_string(), "v3".to_string())]));
    let s = status_of(cms.replace("alpha", &pp, &stale).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        s.message,
        "Operation cannot be fulfilled on configmaps \"alpha\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let d = s.details.as_ref().expect("details");
    assert_eq!((d.name.as_str(), d.kind.as_str(), d.group.as_str()), ("alpha", "configmaps", ""));
    assert_eq!(cms.get("alpha").await.unwrap().data.unwrap()["k"], "v2", "the stale write changed nothing");

    // Without a resourceVersion the update is unconditional.
    let blind = cms.replace("alpha", &pp, &cm("alpha", &[("k", "v4")])).await.expect("unconditional replace");
    let rv3 = rv_of(&blind);
    assert!(rv3 > rv2);
    assert_eq!(blind.metadata.uid.as_deref(), Some(uid.as_str()));

    // A no-op update does not write.
    let same = cms.replace("alpha", &pp, &blind).await.expect("no-op replace");
    assert_eq!(rv_of(&same), rv3, "an unchanged object keeps its resourceVersion");

    // AlreadyExists and NotFound.
    let s = status_of(cms.create(&pp, &cm("alpha", &[])).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(s.message, "configmaps \"alpha\" already exists");
    let d = s.details.as_ref().expect("details");
    assert_eq!((d.name.as_str(), d.kind.as_str()), ("alpha", "configmaps"));

    let s = status_of(cms.get("x").await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    assert_eq!(s.message, "configmaps \"x\" not found");
    let d = s.details.as_ref().expect("details");
    assert_eq!((d.name.as_str(), d.kind.as_str()), ("x", "configmaps"));
    let s = status_of(cms.replace("ghost", &pp, &cm("ghost", &[])).await);
    assert_eq!((s.code, s.message.as_str()), (404, "configmaps \"ghost\" not found"));
    let s = status_of(cms.delete("ghost", &DeleteParams::default()).await);
    assert_eq!((s.code, s.message.as_str()), (404, "configmaps \"ghost\" not found"));
    let s = status_of(cms.patch("ghost", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": "b"}}))).await);
    assert_eq!((s.code, s.message.as_str()), (404, "configmaps \"ghost\" not found"));

    // generateName.
    let mut g = cm("", &[]);
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let made = cms.create(&pp, &g).await.expect("create with generateName");
    let generated = made.metadata.name.clone().unwrap();
    assert!(generated.starts_with("gen-") && generated.len() == 9, "generated name {generated}");
    assert_eq!(made.metadata.generate_name.as_deref(), Some("gen-"));
    assert_eq!(cms.get(&generated).await.unwrap().metadata.uid, made.metadata.uid);

    // apiVersion, kind and namespace default from the URL when the body leaves them out.
    let (code, body) = raw_json(
        &client,
        "POST",
        "/api/v1/namespaces/kube-public/configmaps",
        Some("application/json"),
        json!({"metadata": {"name": "bare"}, "data": {"a": "b"}}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!((body["apiVersion"].as_str(), body["kind"].as_str()), (Some("v1"), Some("ConfigMap")));
    assert_eq!(body["metadata"]["namespace"], "kube-public");
    let mut bare_deploy = deployment_json("bare", 1);
    bare_deploy.as_object_mut().unwrap().remove("apiVersion");
    bare_deploy.as_object_mut().unwrap().remove("kind");
    let (code, body) = raw_json(
        &client,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        Some("application/json"),
        bare_deploy,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!((body["apiVersion"].as_str(), body["kind"].as_str()), (Some("apps/v1"), Some("Deployment")));
    assert_eq!(body["metadata"]["generation"], 1);

    // Lists.
    let list = cms.list(&ListParams::default()).await.expect("list");
    assert_eq!(names(&list.items), set(&["alpha", "beta", &generated]));
    let list_rv: u64 = list.metadata.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(list_rv >= rv3, "the list is at least as new as the last write");
    let (code, body) = raw_json(&client, "GET", "/api/v1/namespaces/default/configmaps", None, Value::Null).await;
    assert_eq!(code, 200);
    assert_eq!((body["kind"].as_str(), body["apiVersion"].as_str()), (Some("ConfigMapList"), Some("v1")));
    let all: Api<ConfigMap> = Api::all(client.clone());
    let everywhere = names(&all.list(&ListParams::default()).await.unwrap().items);
    assert!(everywhere.contains("bare") && everywhere.contains("alpha"), "{everywhere:?}");

    // Delete answers with a success Status carrying the uid.
    let beta_uid = beta.metadata.uid.clone().unwrap();
    let s =
        cms.delete("beta", &DeleteParams::default()).await.expect("delete").right().expect("a Status, not the object");
    assert!(matches!(s.status, Some(StatusSummary::Success)), "{s:?}");
    let d = s.details.expect("details");
    assert_eq!((d.name.as_str(), d.kind.as_str(), d.uid.as_str()), ("beta", "configmaps", beta_uid.as_str()));
    assert_eq!(status_of(cms.get("beta").await).code, 404);
}

#[tokio::test]
async fn invalid_requests_get_status_errors_with_causes() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let json_ct = Some("application/json");
    let cms = "/api/v1/namespaces/default/configmaps";

    // Name validation: 422 with field paths.
    let (code, body) = raw_json(&client, "POST", cms, json_ct, json!({"metadata": {"name": "Bad_Name"}})).await;
    assert_eq!(code, 422, "{body}");
    assert_status(&body, 422, "Invalid");
    assert!(
        body["message"].as_str().unwrap().starts_with(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of"
        ),
        "{body}"
    );
    assert_eq!(cause_fields(&body), vec!["metadata.name"]);
    assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueInvalid");
    assert_eq!(
        (body["details"]["kind"].as_str(), body["details"]["name"].as_str()),
        (Some("ConfigMap"), Some("Bad_Name"))
    );
    assert_eq!(body["details"]["group"], "");

    let (code, body) = raw_json(&client, "POST", cms, json_ct, json!({"metadata": {}})).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
    assert_eq!(cause_fields(&body), vec!["metadata.name"]);
    assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueRequired");

    let long = "a".repeat(254);
    let (code, body) = raw_json(&client, "POST", cms, json_ct, json!({"metadata": {"name": long}})).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(cause_fields(&body), vec!["metadata.name"]);
    assert!(body["message"].as_str().unwrap().contains("must be no more than 253 characters"), "{body}");

    let (code, body) =
        raw_json(&client, "POST", "/api/v1/namespaces", json_ct, json!({"metadata": {"name": "two.labels"}})).await;
    assert_eq!(code, 422, "a namespace name is a DNS label: {body}");
    assert_eq!(cause_fields(&body), vec!["metadata.name"]);
    assert_eq!(
        body["message"],
        "Namespace \"two.labels\" is invalid: metadata.name: Invalid value: \"two.labels\": must not contain dots"
    );
    let (code, body) =
        raw_json(&client, "POST", "/api/v1/namespaces", json_ct, json!({"metadata": {"name": "Upper"}})).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(cause_fields(&body), vec!["metadata.name"]);
    assert!(body["message"].as_str().unwrap().contains("a lowercase RFC 1123 label must consist of"), "{body}");

    let (code, body) =
        raw_json(&client, "POST", cms, json_ct, json!({"metadata": {"name": "keys"}, "data": {"bad key": "v"}})).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(cause_fields(&body), vec!["data[bad key]"]);

    let (code, body) =
        raw_json(&client, "POST", cms, json_ct, json!({"metadata": {"name": "labels", "labels": {"-bad-": "v"}}}))
            .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(cause_fields(&body), vec!["metadata.labels"]);

    // Several errors at once, each with its path.
    let mut bad = deployment_json("broken", -1);
    bad["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    bad["spec"]["template"]["spec"]["containers"][0].as_object_mut().unwrap().remove("image");
    let (code, body) = raw_json(&client, "POST", "/apis/apps/v1/namespaces/default/deployments", json_ct, bad).await;
    assert_eq!(code, 422, "{body}");
    assert_status(&body, 422, "Invalid");
    assert!(body["message"].as_str().unwrap().starts_with("Deployment.apps \"broken\" is invalid: ["), "{body}");
    assert_eq!(
        cause_fields(&body),
        vec!["spec.replicas", "spec.template.metadata.labels", "spec.template.spec.containers[0].image"]
    );
    assert_eq!(
        (body["details"]["group"].as_str(), body["details"]["kind"].as_str()),
        (Some("apps"), Some("Deployment"))
    );

    // Size limit of config maps (1 MiB of data).
    let (code, body) = raw_json(
        &client,
        "POST",
        cms,
        json_ct,
        json!({"metadata": {"name": "huge"}, "data": {"a": "x".repeat(1_100_000)}}),
    )
    .await;
    assert_eq!(code, 422, "{}", &body.to_string()[..300.min(body.to_string().len())]);
    assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueTooLong");

    // Creating in a namespace that does not exist.
    let (code, body) =
        raw_json(&client, "POST", "/api/v1/namespaces/nope/configmaps", json_ct, json!({"metadata": {"name": "a"}}))
            .await;
    assert_eq!(code, 404, "{body}");
    assert_status(&body, 404, "NotFound");
    assert_eq!(body["message"], "namespaces \"nope\" not found");
    assert_eq!(
        (body["details"]["kind"].as_str(), body["details"]["name"].as_str()),
        (Some("namespaces"), Some("nope"))
    );

    // Bodies of the wrong type or shape.
    let (code, body) = raw_json(
        &client,
        "POST",
        cms,
        json_ct,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_status(&body, 400, "BadRequest");
    assert!(body["message"].as_str().unwrap().contains("cannot be handled as a ConfigMap"), "{body}");
    let (code, body) = raw_json(
        &client,
        "POST",
        cms,
        json_ct,
        json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "s"}}),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_status(&body, 400, "BadRequest");
    let (code, body) =
        raw_json(&client, "POST", cms, json_ct, json!({"metadata": {"name": "elsewhere", "namespace": "kube-system"}}))
            .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body["message"],
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    for bad_body in [&b"{\"metadata\": "[..], b"[1, 2, 3]", b"\"text\"", b""] {
        let (code, out) = raw(&client, "POST", cms, json_ct, bad_body.to_vec()).await;
        let body: Value = serde_json::from_slice(&out).expect("a JSON Status");
        assert_eq!(code, 400, "{:?}: {body}", String::from_utf8_lossy(bad_body));
        assert_status(&body, 400, "BadRequest");
    }
    let (code, out) = raw(&client, "POST", cms, Some("text/plain"), b"{\"metadata\":{\"name\":\"t\"}}".to_vec()).await;
    let body: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(code, 415, "{body}");
    assert_status(&body, 415, "UnsupportedMediaType");

    // PUT whose body names another object.
    let (code, _) = raw_json(&client, "POST", cms, json_ct, json!({"metadata": {"name": "one"}})).await;
    assert_eq!(code, 201);
    let (code, body) =
        raw_json(&client, "PUT", &format!("{cms}/one"), json_ct, json!({"metadata": {"name": "two"}})).await;
    assert_eq!(code, 400, "{body}");
    assert_status(&body, 400, "BadRequest");

    // Paths and methods the server does not serve.
    for path in [
        "/api/v1/namespaces/default/frobs",
        "/apis/nope.example.com/v1/things",
        "/api/v1/namespaces/default/configmaps/one/scale",
    ] {
        let (code, body) = raw_json(&client, "GET", path, None, Value::Null).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert_status(&body, 404, "NotFound");
        assert_eq!(body["message"], "the server could not find the requested resource");
    }
    let (code, body) = raw_json(&client, "POST", "/api/v1/pods", json_ct, json!({"metadata": {"name": "p"}})).await;
    assert_eq!(code, 405, "create needs a namespace: {body}");
    assert_status(&body, 405, "MethodNotAllowed");
    // POST to an object's path (rather than its collection) is not a create.
    let (code, body) =
        raw_json(&client, "POST", &format!("{cms}/one"), json_ct, json!({"metadata": {"name": "sneaky"}})).await;
    assert_eq!(code, 405, "POST on an object path: {body}");
    assert_status(&body, 405, "MethodNotAllowed");
    let (code, body) = raw_json(&client, "PUT", cms, json_ct, json!({"metadata": {"name": "one"}})).await;
    assert_eq!(code, 405, "PUT on a collection: {body}");
    assert_status(&body, 405, "MethodNotAllowed");

    // Bad query values.
    for (query, what) in [
        ("resourceVersion=abc", "resourceVersion"),
        ("limit=abc", "limit"),
        ("labelSelector=env%20in%20prod", "labelSelector"),
        ("fieldSelector=spec.foo%3Dbar", "fieldSelector"),
        ("watch=maybe", "watch"),
        ("timeoutSeconds=-5", "timeoutSeconds"),
    ] {
        let (code, body) = raw_json(&client, "GET", &format!("{cms}?{query}"), None, Value::Null).await;
        assert_eq!(code, 400, "{what}: {body}");
        assert_status(&body, 400, "BadRequest");
    }
    let (code, body) = raw_json(&client, "GET", &format!("{cms}/one?resourceVersion=abc"), None, Value::Null).await;
    assert_eq!(code, 400, "{body}");
    assert_status(&body, 400, "BadRequest");
}

#[tokio::test]
async fn json_patch_and_merge_patch() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let path = "/api/v1/namespaces/default/configmaps/p";
    let jp = Some("application/json-patch+json");
    let mp = Some("application/merge-patch+json");
    let base = cms.create(&PostParams::default(), &cm("p", &[("a", "1"), ("b", "2")])).await.unwrap();

    // Merge patch: set and remove keys.
    let merged = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"c": "3", "a": null}, "metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(merged.data.clone().unwrap(), BTreeMap::from([("b".into(), "2".into()), ("c".into(), "3".into())]));
    assert_eq!(merged.labels().get("x").map(String::as_str), Some("y"));
    assert!(rv_of(&merged) > rv_of(&base));
    assert_eq!(merged.metadata.uid, base.metadata.uid);

    // JSON patch: atomic list of operations.
    let (code, body) = raw_json(
        &client,
        "PATCH",
        path,
        jp,
        json!([
            {"op": "test", "path": "/data/b", "value": "2"},
            {"op": "add", "path": "/data/d", "value": "4"},
            {"op": "replace", "path": "/data/b", "value": "20"},
            {"op": "remove", "path": "/data/c"},
        ]),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"], json!({"b": "20", "d": "4"}));
    let after_patch = json_rv(&body);
    assert!(after_patch > rv_of(&merged));

    // A failing `test` makes the whole patch fail with 422 and changes nothing.
    let (code, body) = raw_json(
        &client,
        "PATCH",
        path,
        jp,
        json!([
            {"op": "add", "path": "/data/e", "value": "5"},
            {"op": "test", "path": "/data/b", "value": "nope"},
        ]),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_status(&body, 422, "Invalid");
    let now = cms.get("p").await.unwrap();
    assert_eq!(rv_of(&now), after_patch, "a failed patch does not write");
    assert!(!now.data.unwrap().contains_key("e"), "operations before the failing test are not applied");

    // Removing a missing path also fails to apply.
    let (code, body) = raw_json(&client, "PATCH", path, jp, json!([{"op": "remove", "path": "/data/missing"}])).await;
    assert_eq!(code, 422, "{body}");
    assert_status(&body, 422, "Invalid");

    // Malformed patches: 400.
    for (ct, bad) in
        [(jp, &b"{\"op\": \"add\"}"[..]), (jp, b"[{\"op\": \"add\", "), (jp, b"not json"), (mp, b"{\"data\": ")]
    {
        let (code, out) = raw(&client, "PATCH", path, ct, bad.to_vec()).await;
        let body: Value = serde_json::from_slice(&out).expect("a JSON Status");
        assert_eq!(code, 400, "{:?}: {body}", String::from_utf8_lossy(bad));
        assert_status(&body, 400, "BadRequest");
    }

    // An unknown patch type: 415.
    let (code, out) = raw(&client, "PATCH", path, Some("application/x-unknown-patch"), b"{}".to_vec()).await;
    let body: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(code, 415, "{body}");
    assert_status(&body, 415, "UnsupportedMediaType");

    // A patch carrying a stale resourceVersion conflicts.
    let (code, body) = raw_json(
        &client,
        "PATCH",
        path,
        mp,
        json!({"metadata": {"resourceVersion": rv_of(&base).to_string()}, "data": {"z": "1"}}),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert_status(&body, 409, "Conflict");
    // ... and a current one is accepted.
    let (code, body) = raw_json(
        &client,
        "PATCH",
        path,
        mp,
        json!({"metadata": {"resourceVersion": after_patch.to_string()}, "data": {"z": "1"}}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["z"], "1");

    // Patches to server-owned metadata do not stick.
    let (code, body) = raw_json(
        &client,
        "PATCH",
        path,
        mp,
        json!({"metadata": {"uid": null, "creationTimestamp": null}, "data": {"y": "1"}}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["metadata"]["uid"].as_str(), base.metadata.uid.as_deref());
    assert!(body["metadata"]["creationTimestamp"].is_string(), "{body}");

    // Deployments: a JSON patch of the spec bumps generation.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys.create(&PostParams::default(), &deployment("web", 1)).await.unwrap();
    let (code, body) = raw_json(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web",
        jp,
        json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!((body["spec"]["replicas"].as_i64(), body["metadata"]["generation"].as_i64()), (Some(4), Some(2)));
    // A patch that makes the object invalid is refused with the field path.
    let (code, body) = raw_json(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web",
        jp,
        json!([{"op": "replace", "path": "/spec/replicas", "value": -3}]),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(cause_fields(&body), vec!["spec.replicas"]);
}

// ---------------------------------------------------------------------------------------------
// Generation and subresources
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn generation_status_and_scale_subresources() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let patch = PatchParams::default();

    let d = deploys.create(&pp, &deployment("web", 1)).await.expect("create");
    assert_eq!(d.metadata.generation, Some(1));
    assert!(d.status.is_none() || d.status == Some(Default::default()), "status starts empty: {:?}", d.status);

    // Metadata changes leave generation alone; spec changes bump it.
    let labelled =
        deploys.patch("web", &patch, &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}}))).await.unwrap();
    assert_eq!(labelled.metadata.generation, Some(1), "a label change is not a spec change");
    assert!(rv_of(&labelled) > rv_of(&d));
    let scaled = deploys.patch("web", &patch, &Patch::Merge(json!({"spec": {"replicas": 3}}))).await.unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    assert_eq!(scaled.spec.as_ref().unwrap().replicas, Some(3));

    // A status write changes only the status.
    let st = deploys
        .patch_status(
            "web",
            &patch,
            &Patch::Merge(json!({
                "spec": {"replicas": 9},
                "metadata": {"labels": {"team": "b"}},
                "status": {"replicas": 3, "readyReplicas": 2, "observedGeneration": 2},
            })),
        )
        .await
        .expect("patch status");
    assert_eq!(st.spec.as_ref().unwrap().replicas, Some(3), "status writes cannot change the spec");
    assert_eq!(st.labels().get("team").map(String::as_str), Some("a"), "status writes cannot change labels");
    let status = st.status.clone().expect("status");
    assert_eq!((status.replicas, status.ready_replicas, status.observed_generation), (Some(3), Some(2), Some(2)));
    assert_eq!(st.metadata.generation, Some(2), "status writes do not bump generation");
    assert!(rv_of(&st) > rv_of(&scaled));

    let mut whole = st.clone();
    whole.spec.as_mut().unwrap().replicas = Some(7);
    whole.status.as_mut().unwrap().available_replicas = Some(1);
    let st2 = deploys.replace_status("web", &pp, &whole).await.expect("replace status");
    assert_eq!(st2.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(st2.status.as_ref().unwrap().available_replicas, Some(1));
    assert_eq!(st2.metadata.generation, Some(2));
    let got = deploys.get_status("web").await.expect("get status");
    assert_eq!(got.status.as_ref().unwrap().available_replicas, Some(1));

    // A spec write cannot change the status.
    let mut spec_write = st2.clone();
    spec_write.status.as_mut().unwrap().replicas = Some(100);
    spec_write.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.28".into());
    let sw = deploys.replace("web", &pp, &spec_write).await.expect("replace");
    assert_eq!(sw.status.as_ref().unwrap().replicas, Some(3), "spec writes cannot change the status");
    assert_eq!(sw.metadata.generation, Some(3));
    let only_status = deploys.patch("web", &patch, &Patch::Merge(json!({"status": {"replicas": 50}}))).await.unwrap();
    assert_eq!(only_status.status.as_ref().unwrap().replicas, Some(3));
    assert_eq!(rv_of(&only_status), rv_of(&sw), "a patch that changes nothing does not write");
    assert_eq!(only_status.metadata.generation, Some(3));

    // Scale.
    let scale = deploys.get_scale("web").await.expect("get scale");
    assert_eq!(scale.metadata.name.as_deref(), Some("web"));
    assert_eq!(scale.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(rv_of(&scale), rv_of(&sw));
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(scale.status.as_ref().unwrap().replicas, 3);
    assert_eq!(scale.status.as_ref().unwrap().selector.as_deref(), Some("app=web"));
    let (code, body) =
        raw_json(&client, "GET", "/apis/apps/v1/namespaces/default/deployments/web/scale", None, Value::Null).await;
    assert_eq!(code, 200);
    assert_eq!((body["kind"].as_str(), body["apiVersion"].as_str()), (Some("Scale"), Some("autoscaling/v1")));

    let s5 =
        deploys.patch_scale("web", &patch, &Patch::Merge(json!({"spec": {"replicas": 5}}))).await.expect("patch scale");
    assert_eq!(s5.spec.as_ref().unwrap().replicas, Some(5));
    let d5 = deploys.get("web").await.unwrap();
    assert_eq!(d5.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(d5.metadata.generation, Some(4), "scaling is a spec change");
    assert_eq!(rv_of(&s5), rv_of(&d5));

    // A Scale with an old resourceVersion conflicts; a fresh one applies.
    let mut old_scale: Scale = scale.clone();
    old_scale.spec.as_mut().unwrap().replicas = Some(1);
    let s = status_of(deploys.replace_scale("web", &pp, &old_scale).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    let mut fresh = s5.clone();
    fresh.spec.as_mut().unwrap().replicas = Some(0);
    let s0 = deploys.replace_scale("web", &pp, &fresh).await.expect("replace scale");
    assert_eq!(s0.spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(deploys.get("web").await.unwrap().spec.unwrap().replicas, Some(0));

    let (code, body) = raw_json(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
        Some("application/merge-patch+json"),
        json!({"spec": {"replicas": -1}}),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_status(&body, 422, "Invalid");
    assert_eq!(cause_fields(&body), vec!["spec.replicas"]);
    let s = status_of(deploys.get_scale("missing").await);
    assert_eq!((s.code, s.message.as_str()), (404, "deployments.apps \"missing\" not found"));

    // The other scalable kinds.
    let t = pod_template;
    let others = [
        (
            "/apis/apps/v1/namespaces/default/replicasets",
            json!({"metadata": {"name": "rs"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "rs"}}, "template": t("rs")}}),
            "app=rs",
        ),
        (
            "/apis/apps/v1/namespaces/default/statefulsets",
            json!({"metadata": {"name": "ss"}, "spec": {"replicas": 1, "serviceName": "ss", "selector": {"matchLabels": {"app": "ss"}}, "template": t("ss")}}),
            "app=ss",
        ),
        (
            "/api/v1/namespaces/default/replicationcontrollers",
            json!({"metadata": {"name": "rc"}, "spec": {"replicas": 1, "selector": {"app": "rc"}, "template": t("rc")}}),
            "app=rc",
        ),
    ];
    for (collection, obj, selector) in others {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let (code, body) = raw_json(&client, "POST", collection, Some("application/json"), obj).await;
        assert_eq!(code, 201, "{collection}: {body}");
        assert_eq!(body["metadata"]["generation"], 1, "{collection}");
        let scale_path = format!("{collection}/{name}/scale");
        let (code, body) = raw_json(&client, "GET", &scale_path, None, Value::Null).await;
        assert_eq!(code, 200, "{scale_path}: {body}");
        assert_eq!(body["kind"], "Scale");
        assert_eq!(body["spec"]["replicas"], 1);
        assert_eq!(body["status"]["selector"], selector, "{scale_path}");
        let (code, body) = raw_json(
            &client,
            "PATCH",
            &scale_path,
            Some("application/merge-patch+json"),
            json!({"spec": {"replicas": 2}}),
        )
        .await;
        assert_eq!(code, 200, "{scale_path}: {body}");
        assert_eq!(body["spec"]["replicas"], 2);
        let (code, body) = raw_json(&client, "GET", &format!("{collection}/{name}"), None, Value::Null).await;
        assert_eq!(code, 200);
        assert_eq!(
            (body["spec"]["replicas"].as_i64(), body["metadata"]["generation"].as_i64()),
            (Some(2), Some(2)),
            "{collection}"
        );
        // Status writes on these kinds leave the spec alone too.
        let (code, body) = raw_json(
            &client,
            "PATCH",
            &format!("{collection}/{name}/status"),
            Some("application/merge-patch+json"),
            json!({"spec": {"replicas": 9}, "status": {"replicas": 2}}),
        )
        .await;
        assert_eq!(code, 200, "{collection}: {body}");
        assert_eq!(
            (body["spec"]["replicas"].as_i64(), body["status"]["replicas"].as_i64()),
            (Some(2), Some(2)),
            "{collection}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Deletion
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deletion_options_preconditions_and_finalizers() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let patch = PatchParams::default();

    // Preconditions.
    let p1 = cms.create(&pp, &cm("p1", &[])).await.unwrap();
    let uid = p1.metadata.uid.clone().unwrap();
    let wrong_uid = DeleteParams {
        preconditions: Some(Preconditions { uid: Some("wrong-uid".into()), resource_version: None }),
        ..Default::default()
    };
    let s = status_of(cms.delete("p1", &wrong_uid).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        s.message,
        format!(
            "Operation cannot be fulfilled on configmaps \"p1\": Precondition failed: UID in precondition: wrong-uid, UID in object meta: {uid}"
        )
    );
    let old_rv = rv_of(&p1);
    let p1b = cms.patch("p1", &patch, &Patch::Merge(json!({"data": {"a": "b"}}))).await.unwrap();
    let stale_rv = DeleteParams {
        preconditions: Some(Preconditions { uid: None, resource_version: Some(old_rv.to_string()) }),
        ..Default::default()
    };
    let s = status_of(cms.delete("p1", &stale_rv).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains(&format!(
            "Precondition failed: ResourceVersion in precondition: {old_rv}, ResourceVersion in object meta: {}",
            rv_of(&p1b)
        )),
        "{}",
        s.message
    );
    assert!(cms.get_opt("p1").await.unwrap().is_some(), "failed preconditions keep the object");
    // The same through a raw DeleteOptions body.
    let (code, body) = raw_json(
        &client,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/p1",
        Some("application/json"),
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "nope"}}),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert_status(&body, 409, "Conflict");
    let matching = DeleteParams {
        preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: Some(rv_of(&p1b).to_string()) }),
        ..Default::default()
    };
    assert!(cms.delete("p1", &matching).await.expect("delete with matching preconditions").is_right());
    assert!(cms.get_opt("p1").await.unwrap().is_none());

    // gracePeriodSeconds=0 removes at once.
    cms.create(&pp, &cm("g0", &[])).await.unwrap();
    let (code, body) =
        raw_json(&client, "DELETE", "/api/v1/namespaces/default/configmaps/g0?gracePeriodSeconds=0", None, Value::Null)
            .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!((body["kind"].as_str(), body["status"].as_str()), (Some("Status"), Some("Success")));
    assert!(cms.get_opt("g0").await.unwrap().is_none());

    // Finalizers hold the object; removing the last one removes it.
    let mut held = cm("held", &[("k", "v")]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    let held = cms.create(&pp, &held).await.unwrap();
    let pending =
        cms.delete("held", &DeleteParams::default()).await.expect("delete").left().expect("the object lingers");
    assert!(pending.metadata.deletion_timestamp.is_some(), "deletionTimestamp is set");
    assert_eq!(pending.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(pending.finalizers(), ["example.com/hold".to_string()]);
    assert!(rv_of(&pending) > rv_of(&held));
    let still = cms.get("held").await.expect("still there while a finalizer remains");
    assert_eq!(still.metadata.deletion_timestamp, pending.metadata.deletion_timestamp);
    // Deleting again changes nothing.
    let again = cms.delete("held", &DeleteParams::default()).await.unwrap().left().expect("the object again");
    assert_eq!(again.metadata.deletion_timestamp, pending.metadata.deletion_timestamp);
    assert_eq!(rv_of(&again), rv_of(&pending));
    // Other changes are still allowed, but no new finalizers.
    let edited =
        cms.patch("held", &patch, &Patch::Merge(json!({"data": {"k": "v2"}}))).await.expect("edit while deleting");
    assert_eq!(edited.data.unwrap()["k"], "v2");
    let s = status_of(
        cms.patch(
            "held",
            &patch,
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}})),
        )
        .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    assert!(s.details.unwrap().causes.iter().any(|c| c.field == "metadata.finalizers"));
    let s = status_of(cms.patch("held", &patch, &Patch::Merge(json!({"metadata": {"deletionTimestamp": null}}))).await);
    assert_eq!(s.code, 422, "deletionTimestamp cannot be cleared: {s:?}");
    let released =
        cms.patch("held", &patch, &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.expect("release");
    assert!(released.metadata.deletion_timestamp.is_some());
    assert!(cms.get_opt("held").await.unwrap().is_none(), "removing the last finalizer removes the object");

    // Two finalizers: removing one keeps the object.
    let mut two = cm("two", &[]);
    two.metadata.finalizers = Some(vec!["example.com/a".into(), "example.com/b".into()]);
    cms.create(&pp, &two).await.unwrap();
    cms.delete("two", &DeleteParams::default()).await.unwrap();
    cms.patch("two", &patch, &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/b"]}}))).await.unwrap();
    assert!(cms.get_opt("two").await.unwrap().is_some());
    cms.patch("two", &patch, &Patch::Merge(json!({"metadata": {"finalizers": []}}))).await.unwrap();
    assert!(cms.get_opt("two").await.unwrap().is_none());

    // Propagation policies become garbage-collector finalizers.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys.create(&pp, &deployment("orphaned", 1)).await.unwrap();
    let o = deploys.delete("orphaned", &DeleteParams::orphan()).await.unwrap().left().expect("lingers");
    assert_eq!(o.finalizers(), ["orphan".to_string()]);
    assert!(o.metadata.deletion_timestamp.is_some());
    deploys.create(&pp, &deployment("fg", 1)).await.unwrap();
    let f = deploys.delete("fg", &DeleteParams::foreground()).await.unwrap().left().expect("lingers");
    assert_eq!(f.finalizers(), ["foregroundDeletion".to_string()]);
    assert!(f.metadata.deletion_timestamp.is_some());
    let (code, body) = raw_json(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/fg",
        Some("application/json-patch+json"),
        json!([{"op": "remove", "path": "/metadata/finalizers"}]),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(deploys.get_opt("fg").await.unwrap().is_none(), "gone once the GC finalizer is removed");
    deploys.create(&pp, &deployment("bg", 1)).await.unwrap();
    assert!(deploys.delete("bg", &DeleteParams::background()).await.unwrap().is_right());
    assert!(deploys.get_opt("bg").await.unwrap().is_none());
    let (code, body) = raw_json(
        &client,
        "DELETE",
        "/apis/apps/v1/namespaces/default/deployments/orphaned?propagationPolicy=Sideways",
        None,
        Value::Null,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_status(&body, 422, "Invalid");
    assert_eq!(cause_fields(&body), vec!["propagationPolicy"]);

    // Pods on a node get a grace period; unscheduled pods go at once.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&pp, &pod("loose", None)).await.unwrap();
    let gone = pods.delete("loose", &DeleteParams::default()).await.unwrap();
    assert!(gone.is_left(), "pod deletion answers with the pod");
    assert!(pods.get_opt("loose").await.unwrap().is_none());
    pods.create(&pp, &pod("bound", Some("node-1"))).await.unwrap();
    let graceful = pods.delete("bound", &DeleteParams::default()).await.unwrap().left().unwrap();
    assert!(graceful.metadata.deletion_timestamp.is_some());
    assert_eq!(graceful.metadata.deletion_grace_period_seconds, Some(30));
    let shorter = pods.delete("bound", &DeleteParams::default().grace_period(5)).await.unwrap().left().unwrap();
    assert_eq!(shorter.metadata.deletion_grace_period_seconds, Some(5));
    pods.delete("bound", &DeleteParams::default().grace_period(0)).await.unwrap();
    assert!(pods.get_opt("bound").await.unwrap().is_none(), "grace period 0 removes a pod at once");

    // deletecollection with a selector.
    for i in 0..5 {
        let batch = if i < 3 { "one" } else { "two" };
        cms.create(&pp, &labelled_cm(&format!("batch-{i}"), &[("batch", batch)])).await.unwrap();
    }
    let deleted = cms
        .delete_collection(&DeleteParams::default(), &ListParams::default().labels("batch=one"))
        .await
        .expect("deletecollection")
        .left()
        .expect("a list of what was deleted");
    assert_eq!(names(&deleted.items), set(&["batch-0", "batch-1", "batch-2"]));
    let left = cms.list(&ListParams::default().labels("batch")).await.unwrap();
    assert_eq!(names(&left.items), set(&["batch-3", "batch-4"]));
}

#[tokio::test]
async fn namespace_lifecycle() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());

    let list = namespaces.list(&ListParams::default()).await.unwrap();
    let listed = names(&list.items);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(listed.contains(ns), "{ns} exists: {listed:?}");
        let n = namespaces.get(ns).await.unwrap();
        assert_eq!(n.labels().get("kubernetes.io/metadata.name").map(String::as_str), Some(ns));
        assert_eq!(n.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Active"));
        assert_eq!(n.spec.as_ref().and_then(|s| s.finalizers.clone()), Some(vec!["kubernetes".to_string()]));
    }

    let team = create_namespace(&client, "team-a").await;
    assert_eq!(team.labels().get("kubernetes.io/metadata.name").map(String::as_str), Some("team-a"));
    assert_eq!(team.spec.as_ref().and_then(|s| s.finalizers.clone()), Some(vec!["kubernetes".to_string()]));
    assert_eq!(team.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Active"));
    assert!(team.metadata.namespace.is_none(), "namespaces are cluster-scoped");
    // The name label cannot be changed away.
    let relabelled = namespaces
        .patch(
            "team-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"kubernetes.io/metadata.name": "other", "x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(relabelled.labels().get("kubernetes.io/metadata.name").map(String::as_str), Some("team-a"));

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team-a");
    cms.create(&PostParams::default(), &cm("inside", &[])).await.expect("create in an active namespace");

    let deleting =
        namespaces.delete("team-a", &DeleteParams::default()).await.unwrap().left().expect("the namespace lingers");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(deleting.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Terminating"));
    let now = namespaces.get("team-a").await.unwrap();
    assert_eq!(now.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Terminating"));

    let s = status_of(cms.create(&PostParams::default(), &cm("late", &[])).await);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        "configmaps \"late\" is forbidden: unable to create new content in namespace team-a because it is being terminated"
    );
    let causes = s.details.clone().unwrap().causes;
    assert_eq!(causes.first().map(|c| c.reason.as_str()), Some("NamespaceTerminating"));
    // Existing content can still be changed and deleted.
    cms.patch("inside", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": "b"}})))
        .await
        .expect("update in a terminating namespace");
    cms.delete("inside", &DeleteParams::default()).await.expect("delete in a terminating namespace");

    // Clearing spec.finalizers through /finalize lets the namespace go.
    let mut fin = serde_json::to_value(&now).unwrap();
    fin["spec"]["finalizers"] = json!([]);
    let (code, body) =
        raw_json(&client, "PUT", "/api/v1/namespaces/team-a/finalize", Some("application/json"), fin).await;
    assert_eq!(code, 200, "{body}");
    if namespaces.get_opt("team-a").await.unwrap().is_some() {
        namespaces.delete("team-a", &DeleteParams::default()).await.unwrap();
    }
    let s = status_of(namespaces.get("team-a").await);
    assert_eq!((s.code, s.message.as_str()), (404, "namespaces \"team-a\" not found"));

    // The system namespaces cannot be deleted.
    for ns in ["default", "kube-system", "kube-public"] {
        let s = status_of(namespaces.delete(ns, &DeleteParams::default()).await);
        assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"), "{ns}");
        assert_eq!(s.message, format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted"));
        let n = namespaces.get(ns).await.unwrap();
        assert!(n.metadata.deletion_timestamp.is_none(), "{ns} is untouched");
    }
}

// ---------------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_paging_and_resource_version_semantics() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    create_namespace(&client, "paging").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "paging");
    let pp = PostParams::default();
    let mut rvs = Vec::new();
    for i in 0..7 {
        rvs.push(rv_of(&cms.create(&pp, &cm(&format!("cm-{i}"), &[("v", "old")])).await.unwrap()));
    }
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "each create gets a higher resourceVersion: {rvs:?}");

    let p1 = cms.list(&ListParams::default().limit(3)).await.unwrap();
    let list_rv: u64 = p1.metadata.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(list_rv >= rvs[6]);
    assert_eq!(p1.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(), ["cm-0", "cm-1", "cm-2"]);
    assert_eq!(p1.metadata.remaining_item_count, Some(4));
    let token1 = p1.metadata.continue_.clone().expect("a continue token");

    // Changes after the first page do not show in the rest of the list.
    cms.create(&pp, &cm("cm-7", &[])).await.unwrap();
    cms.patch("cm-6", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "new"}}))).await.unwrap();
    cms.delete("cm-4", &DeleteParams::default()).await.unwrap();

    let p2 = cms.list(&ListParams::default().limit(3).continue_token(&token1)).await.unwrap();
    assert_eq!(p2.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(), ["cm-3", "cm-4", "cm-5"]);
    assert_eq!(
        p2.metadata.resource_version.as_deref(),
        Some(list_rv.to_string().as_str()),
        "every page is at the first page's revision"
    );
    assert_eq!(p2.metadata.remaining_item_count, Some(1));
    let token2 = p2.metadata.continue_.clone().expect("a second continue token");
    let p3 = cms.list(&ListParams::default().limit(3).continue_token(&token2)).await.unwrap();
    assert_eq!(p3.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(), ["cm-6"]);
    assert_eq!(p3.items[0].data.as_ref().unwrap()["v"], "old", "the page shows the snapshot");
    assert_eq!(p3.metadata.continue_, None);
    assert_eq!(p3.metadata.remaining_item_count, None);
    assert_eq!(p3.metadata.resource_version.as_deref(), Some(list_rv.to_string().as_str()));

    // A fresh list sees the newest state.
    let fresh = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&fresh.items), set(&["cm-0", "cm-1", "cm-2", "cm-3", "cm-5", "cm-6", "cm-7"]));
    let fresh_rv: u64 = fresh.metadata.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(fresh_rv > list_rv);

    // resourceVersion + Exact reads the past.
    let base = "/api/v1/namespaces/paging/configmaps";
    let (code, body) = raw_json(
        &client,
        "GET",
        &format!("{base}?resourceVersion={list_rv}&resourceVersionMatch=Exact"),
        None,
        Value::Null,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_names(&body), ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4", "cm-5", "cm-6"]);
    assert_eq!(body["metadata"]["resourceVersion"], list_rv.to_string());
    assert_eq!(body["items"][6]["data"]["v"], "old");
    let (code, body) = raw_json(
        &client,
        "GET",
        &format!("{base}?resourceVersion={}&resourceVersionMatch=Exact", rvs[2]),
        None,
        Value::Null,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_names(&body), ["cm-0", "cm-1", "cm-2"]);
    // Exact with a limit pages through the past too.
    let (code, body) = raw_json(
        &client,
        "GET",
        &format!("{base}?resourceVersion={list_rv}&resourceVersionMatch=Exact&limit=4"),
        None,
        Value::Null,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_names(&body), ["cm-0", "cm-1", "cm-2", "cm-3"]);
    assert_eq!(body["metadata"]["remainingItemCount"], 3);

    // NotOlderThan (and a plain resourceVersion) answer with something at least that new.
    for query in
        [format!("resourceVersion={list_rv}&resourceVersionMatch=NotOlderThan"), format!("resourceVersion={list_rv}")]
    {
        let (code, body) = raw_json(&client, "GET", &format!("{base}?{query}"), None, Value::Null).await;
        assert_eq!(code, 200, "{query}: {body}");
        assert!(json_rv(&body) >= fresh_rv, "{query}");
        assert!(json_names(&body).contains(&"cm-7".to_string()), "{query}");
    }
    let (code, body) = raw_json(&client, "GET", &format!("{base}?resourceVersion=0"), None, Value::Null).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_names(&body).len(), 7);
    let (code, body) = raw_json(&client, "GET", &format!("{base}/cm-7?resourceVersion=0"), None, Value::Null).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["metadata"]["name"], "cm-7");

    // Option combinations upstream's ValidateListOptions refuses: 422 on ListOptions, with
    // the field in the cause.
    for (query, message) in [
        ("resourceVersionMatch=Exact", "resourceVersionMatch is forbidden unless resourceVersion is provided"),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
        ("resourceVersion=1&resourceVersionMatch=Sometimes", "supported values: \"Exact\", \"NotOlderThan\", \"\""),
        ("sendInitialEvents=true", "sendInitialEvents is forbidden for list"),
    ] {
        let (code, body) = raw_json(&client, "GET", &format!("{base}?{query}"), None, Value::Null).await;
        assert_eq!(code, 422, "{query}: {body}");
        assert_status(&body, 422, "Invalid");
        assert_eq!(body["details"]["kind"], "ListOptions", "{query}");
        assert!(body["message"].as_str().unwrap().contains(message), "{query}: {body}");
    }
    let (code, body) = raw_json(
        &client,
        "GET",
        &format!("{base}?watch=true&resourceVersionMatch=NotOlderThan&resourceVersion=1"),
        None,
        Value::Null,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["details"]["causes"][0]["field"], "resourceVersionMatch");
    // Malformed continue tokens and a resourceVersion beside a continue token: 400.
    for query in [
        format!("limit=2&continue={token1}&resourceVersion={list_rv}"),
        "limit=2&continue=bm90IGEgdG9rZW4".to_string(),
        "limit=2&continue=%%%".to_string(),
    ] {
        let (code, body) = raw_json(&client, "GET", &format!("{base}?{query}"), None, Value::Null).await;
        assert_eq!(code, 400, "{query}: {body}");
        assert_status(&body, 400, "BadRequest");
    }

    // A resourceVersion from the future: the server waits a little, then gives up. (kube-rs
    // would retry a 504 on its own, so this goes through a client that does not.)
    let future = fresh_rv + 1000;
    let started = Instant::now();
    let plain = srv.client_without_retries().await;
    let (code, body) = raw_json(
        &plain,
        "GET",
        &format!("{base}?resourceVersion={future}&resourceVersionMatch=NotOlderThan"),
        None,
        Value::Null,
    )
    .await;
    assert_eq!(code, 504, "{body}");
    assert_status(&body, 504, "Timeout");
    assert!(body["message"].as_str().unwrap().contains("Too large resource version"), "{body}");
    assert_eq!(body["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
    assert!(started.elapsed() < Duration::from_secs(10));

    // limit=0 means no limit; selectors hide remainingItemCount.
    let all = cms.list(&ListParams::default().limit(0)).await.unwrap();
    assert_eq!(all.items.len(), 7);
    assert_eq!(all.metadata.continue_, None);
    let (code, body) =
        raw_json(&client, "GET", &format!("{base}?limit=2&labelSelector=missing%21%3Dx"), None, Value::Null).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_names(&body), ["cm-0", "cm-1"]);
    assert!(body["metadata"]["continue"].is_string());
    assert!(body["metadata"].get("remainingItemCount").is_none(), "no remainingItemCount with selectors: {body}");
}

#[tokio::test]
async fn compacted_revisions_are_gone() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let srv = TestServer::start_in(dir, &["--compaction-interval-seconds", "1", "--disable-controller-manager"]).await;
    let client = srv.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("c-{i}"), &[])).await.unwrap();
    }
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.clone().expect("continue token");
    let list_rv = first.metadata.resource_version.clone().unwrap();
    // Move on so that compaction passes the list's revision.
    cms.create(&PostParams::default(), &cm("later", &[])).await.unwrap();

    let base = "/api/v1/namespaces/default/configmaps";
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (code, body) =
            raw_json(&client, "GET", &format!("{base}?limit=2&continue={}", enc(&token)), None, Value::Null).await;
        if code == 410 {
            break body;
        }
        assert_eq!(code, 200, "{body}");
        assert!(Instant::now() < deadline, "the continue token never expired");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_status(&body, 410, "Expired");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("The provided continue parameter is too old to display a consistent list result."),
        "{body}"
    );
    let inconsistent = body["metadata"]["continue"].as_str().expect("an inconsistent continue token").to_string();
    assert!(!inconsistent.is_empty());
    let (code, body) =
        raw_json(&client, "GET", &format!("{base}?continue={}", enc(&inconsistent)), None, Value::Null).await;
    assert_eq!(code, 200, "the inconsistent token continues: {body}");
    assert_eq!(json_names(&body), ["c-2", "c-3", "c-4", "later"]);

    let (code, body) = raw_json(
        &client,
        "GET",
        &format!("{base}?resourceVersion={list_rv}&resourceVersionMatch=Exact"),
        None,
        Value::Null,
    )
    .await;
    assert_eq!(code, 410, "{body}");
    assert_status(&body, 410, "Expired");
    assert!(body["message"].as_str().unwrap().starts_with(&format!("too old resource version: {list_rv}")), "{body}");
}

#[tokio::test]
async fn label_and_field_selectors() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    create_namespace(&client, "sel").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "sel");
    let pp = PostParams::default();
    for (name, labels) in [
        ("a", vec![("env", "prod"), ("tier", "web")]),
        ("b", vec![("env", "dev"), ("tier", "web")]),
        ("c", vec![("env", "prod")]),
        ("d", vec![]),
        ("e", vec![("env", "qa"), ("tier", "db")]),
    ] {
        cms.create(&pp, &labelled_cm(name, &labels)).await.unwrap();
    }
    let cases: &[(&str, &[&str])] = &[
        ("env=prod", &["a", "c"]),
        ("env==prod", &["a", "c"]),
        ("env!=prod", &["b", "d", "e"]),
        ("env in (prod,qa)", &["a", "c", "e"]),
        ("env notin (prod,qa)", &["b", "d"]),
        ("tier", &["a", "b", "e"]),
        ("!tier", &["c", "d"]),
        ("env=prod,tier=web", &["a"]),
        ("env in (prod),!tier", &["c"]),
        ("tier notin (web),env", &["c", "e"]),
        ("env=nothing", &[]),
        ("", &["a", "b", "c", "d", "e"]),
    ];
    for (selector, want) in cases {
        let got = cms.list(&ListParams::default().labels(selector)).await.unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(names(&got.items), set(want), "labelSelector {selector:?}");
    }
    for bad in ["env in prod", "env in (prod", "=prod", "env=a=b", "-bad-=x"] {
        let (code, body) = raw_json(
            &client,
            "GET",
            &format!("/api/v1/namespaces/sel/configmaps?labelSelector={}", enc(bad)),
            None,
            Value::Null,
        )
        .await;
        assert_eq!(code, 400, "labelSelector {bad:?}: {body}");
        assert_status(&body, 400, "BadRequest");
    }

    // Field selectors on metadata.
    let field_cases: &[(&str, &[&str])] = &[
        ("metadata.name=a", &["a"]),
        ("metadata.name==b", &["b"]),
        ("metadata.name!=a", &["b", "c", "d", "e"]),
        ("metadata.name!=a,metadata.name!=b", &["c", "d", "e"]),
        ("metadata.namespace=sel", &["a", "b", "c", "d", "e"]),
        ("metadata.namespace=other", &[]),
    ];
    for (selector, want) in field_cases {
        let got = cms.list(&ListParams::default().fields(selector)).await.unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(names(&got.items), set(want), "fieldSelector {selector:?}");
    }
    let all: Api<ConfigMap> = Api::all(client.clone());
    let across = all.list(&ListParams::default().fields("metadata.namespace=sel").labels("env=prod")).await.unwrap();
    assert_eq!(names(&across.items), set(&["a", "c"]));
    let (code, body) =
        raw_json(&client, "GET", "/api/v1/namespaces/sel/configmaps?fieldSelector=spec.foo%3Dbar", None, Value::Null)
            .await;
    assert_eq!(code, 400, "{body}");
    assert_status(&body, 400, "BadRequest");
    assert!(body["message"].as_str().unwrap().contains("spec.foo"), "{body}");

    // Pods: spec.nodeName and status.phase.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "sel");
    pods.create(&pp, &pod("p1", Some("n1"))).await.unwrap();
    pods.create(&pp, &pod("p2", Some("n2"))).await.unwrap();
    pods.create(&pp, &pod("p3", None)).await.unwrap();
    let running = pods
        .patch_status("p2", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Running"}})))
        .await
        .unwrap();
    assert_eq!(running.status.unwrap().phase.as_deref(), Some("Running"));
    let pod_cases: &[(&str, &[&str])] = &[
        ("spec.nodeName=n1", &["p1"]),
        ("spec.nodeName=", &["p3"]),
        ("spec.nodeName!=", &["p1", "p2"]),
        ("status.phase=Running", &["p2"]),
        ("status.phase=Pending", &["p1", "p3"]),
        ("status.phase!=Pending,spec.nodeName=n2", &["p2"]),
        ("metadata.name=p3", &["p3"]),
    ];
    for (selector, want) in pod_cases {
        let got =
            pods.list(&ListParams::default().fields(selector)).await.unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(names(&got.items), set(want), "pod fieldSelector {selector:?}");
    }
    let all_pods: Api<Pod> = Api::all(client.clone());
    let on_n1 = all_pods.list(&ListParams::default().fields("spec.nodeName=n1")).await.unwrap();
    assert_eq!(names(&on_n1.items), set(&["p1"]));
    let (code, body) = raw_json(&client, "GET", "/api/v1/pods?fieldSelector=spec.foo%3Dx", None, Value::Null).await;
    assert_eq!(code, 400, "{body}");
    assert_status(&body, 400, "BadRequest");
    assert_eq!(body["message"], "field label not supported: spec.foo");
}

// ---------------------------------------------------------------------------------------------
// Watch
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn watch_events_from_a_resource_version_and_through_selectors() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    create_namespace(&client, "w").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "w");
    let pp = PostParams::default();
    let patch = PatchParams::default();
    cms.create(&pp, &cm("existing", &[])).await.unwrap();

    // From the list's resourceVersion: only what happens afterwards, in order.
    let list = cms.list(&ListParams::default()).await.unwrap();
    let from = list.metadata.resource_version.clone().unwrap();
    let mut stream: EventStream<ConfigMap> =
        cms.watch(&WatchParams::default().timeout(30), &from).await.unwrap().boxed();
    let a = cms.create(&pp, &cm("a", &[])).await.unwrap();
    let a2 = cms.patch("a", &patch, &Patch::Merge(json!({"data": {"k": "v"}}))).await.unwrap();
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let ev1 = next_change(&mut stream).await;
    let ev2 = next_change(&mut stream).await;
    let ev3 = next_change(&mut stream).await;
    assert_eq!((ev1.0, ev1.1.as_str(), ev1.2), ("ADDED", "a", rv_of(&a)));
    assert_eq!((ev2.0, ev2.1.as_str(), ev2.2), ("MODIFIED", "a", rv_of(&a2)));
    assert_eq!((ev3.0, ev3.1.as_str()), ("DELETED", "a"));
    assert!(ev3.2 > ev2.2, "the DELETED event carries the deleting revision");
    drop(stream);

    // Watching from a past revision replays what happened since.
    let mut replay: EventStream<ConfigMap> =
        cms.watch(&WatchParams::default().timeout(30), &from).await.unwrap().boxed();
    assert_eq!(next_change(&mut replay).await, ev1);
    assert_eq!(next_change(&mut replay).await, ev2);
    assert_eq!(next_change(&mut replay).await, ev3);
    drop(replay);

    // RV "0" (and unset) starts with synthetic ADDED events for what exists, in key order.
    for version in ["0", ""] {
        let existing: Vec<String> =
            cms.list(&ListParams::default()).await.unwrap().items.iter().map(|c| c.name_any()).collect();
        let mut s: EventStream<ConfigMap> =
            cms.watch(&WatchParams::default().timeout(30), version).await.unwrap().boxed();
        for name in &existing {
            let ev = next_change(&mut s).await;
            assert_eq!((ev.0, &ev.1), ("ADDED", name), "version {version:?}");
        }
        assert_quiet(&mut s, Duration::from_millis(300)).await;
        cms.create(&pp, &cm(&format!("after-{}", version.len()), &[])).await.unwrap();
        let next = next_change(&mut s).await;
        assert_eq!((next.0, next.1), ("ADDED", format!("after-{}", version.len())));
    }

    // Objects entering and leaving a label selector.
    let now = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut sel: EventStream<ConfigMap> =
        cms.watch(&WatchParams::default().timeout(30).labels("tier=web"), &now).await.unwrap().boxed();
    cms.create(&pp, &cm("mover", &[])).await.unwrap();
    let entered =
        cms.patch("mover", &patch, &Patch::Merge(json!({"metadata": {"labels": {"tier": "web"}}}))).await.unwrap();
    cms.patch("mover", &patch, &Patch::Merge(json!({"data": {"x": "1"}}))).await.unwrap();
    let left =
        cms.patch("mover", &patch, &Patch::Merge(json!({"metadata": {"labels": {"tier": "db"}}}))).await.unwrap();
    cms.create(&pp, &labelled_cm("born-web", &[("tier", "web")])).await.unwrap();
    let e1 = next_change(&mut sel).await;
    assert_eq!((e1.0, e1.1.as_str(), e1.2), ("ADDED", "mover", rv_of(&entered)), "entering the selector is ADDED");
    let e2 = next_change(&mut sel).await;
    assert_eq!((e2.0, e2.1.as_str()), ("MODIFIED", "mover"));
    let e3 = next_change(&mut sel).await;
    assert_eq!((e3.0, e3.1.as_str(), e3.2), ("DELETED", "mover", rv_of(&left)), "leaving the selector is DELETED");
    let e4 = next_change(&mut sel).await;
    assert_eq!((e4.0, e4.1.as_str()), ("ADDED", "born-web"));
    assert_quiet(&mut sel, Duration::from_millis(300)).await;
    drop(sel);

    // Field selectors on watches.
    let mut by_name: EventStream<ConfigMap> =
        cms.watch(&WatchParams::default().timeout(30).fields("metadata.name=target"), "0").await.unwrap().boxed();
    cms.create(&pp, &cm("bystander", &[])).await.unwrap();
    cms.create(&pp, &cm("target", &[])).await.unwrap();
    let t = next_change(&mut by_name).await;
    assert_eq!((t.0, t.1.as_str()), ("ADDED", "target"));
    drop(by_name);

    // A watch on one namespace does not see another.
    let default_cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut elsewhere: EventStream<ConfigMap> =
        default_cms.watch(&WatchParams::default().timeout(30), &now).await.unwrap().boxed();
    cms.create(&pp, &cm("not-yours", &[])).await.unwrap();
    default_cms.create(&pp, &cm("yours", &[])).await.unwrap();
    let y = next_change(&mut elsewhere).await;
    assert_eq!((y.0, y.1.as_str()), ("ADDED", "yours"));
    drop(elsewhere);

    // A revision older than the watch window: an ERROR event with 410.
    let mut old: EventStream<ConfigMap> = cms.watch(&WatchParams::default().timeout(30), "1").await.unwrap().boxed();
    match next_event(&mut old).await {
        WatchEvent::Error(s) => {
            assert_eq!((s.code, s.reason.as_str()), (410, "Expired"), "{s:?}");
            assert!(s.message.contains("too old resource version"), "{}", s.message);
        }
        other => panic!("an ERROR event was expected, got {other:?}"),
    }

    // kube-runtime's watcher (list, then watch) sees existing and new objects.
    let mut w = watcher(cms.clone(), watcher::Config::default().labels("team=x")).boxed();
    cms.create(&pp, &labelled_cm("t1", &[("team", "x")])).await.unwrap();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("t2") {
        assert!(Instant::now() < deadline, "the watcher saw {seen:?}");
        let ev = tokio::time::timeout(Duration::from_secs(10), w.try_next())
            .await
            .expect("watcher event")
            .expect("watcher ok");
        match ev.expect("stream open") {
            watcher::Event::Init | watcher::Event::Delete(_) => {}
            watcher::Event::InitDone => {
                cms.create(&pp, &labelled_cm("t2", &[("team", "x")])).await.unwrap();
            }
            watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                seen.insert(o.name_any());
            }
        }
    }
    assert_eq!(seen, set(&["t1", "t2"]));
}

#[tokio::test]
async fn watch_bookmarks_initial_events_and_timeouts() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    create_namespace(&client, "b").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "b");
    let pp = PostParams::default();
    let mut last = 0;
    for i in 0..3 {
        last = rv_of(&cms.create(&pp, &cm(&format!("i-{i}"), &[])).await.unwrap());
    }

    // sendInitialEvents: ADDED for each object, then a bookmark marking the end.
    let started = Instant::now();
    let mut s: EventStream<ConfigMap> =
        cms.watch(&WatchParams::streaming_lists().timeout(30), "").await.unwrap().boxed();
    let mut initial = Vec::new();
    let bookmark = loop {
        match next_event(&mut s).await {
            WatchEvent::Added(o) => initial.push(o.name_any()),
            WatchEvent::Bookmark(b) => break b,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(initial, ["i-0", "i-1", "i-2"]);
    assert_eq!(bookmark.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str), Some("true"));
    let bookmark_rv: u64 = bookmark.metadata.resource_version.parse().unwrap();
    assert!(bookmark_rv >= last, "the bookmark is at least as new as the objects: {bookmark_rv} < {last}");
    // The end-of-initial-events bookmark comes at once, not as the periodic one (about 2 s
    // before the 30 s timeout); the margin leaves room for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(20));
    let later = cms.create(&pp, &cm("i-3", &[])).await.unwrap();
    let ev = next_change(&mut s).await;
    assert_eq!((ev.0, ev.1.as_str(), ev.2), ("ADDED", "i-3", rv_of(&later)));
    drop(s);

    // The same through kube-runtime's streaming-list watcher.
    let mut w = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut init = BTreeSet::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.try_next())
            .await
            .expect("event")
            .expect("ok")
            .expect("open");
        match ev {
            watcher::Event::Init => {}
            watcher::Event::InitApply(o) => {
                init.insert(o.name_any());
            }
            watcher::Event::InitDone => break,
            other => panic!("unexpected {:?}", std::mem::discriminant(&other)),
        }
    }
    assert_eq!(init, set(&["i-0", "i-1", "i-2", "i-3"]));
    drop(w);

    // sendInitialEvents needs resourceVersionMatch=NotOlderThan and bookmarks.
    let base = "/api/v1/namespaces/b/configmaps?watch=true&timeoutSeconds=1";
    let (code, body) =
        raw_json(&client, "GET", &format!("{base}&sendInitialEvents=true&allowWatchBookmarks=true"), None, Value::Null)
            .await;
    assert_eq!(code, 422, "{body}");
    assert_status(&body, 422, "Invalid");
    assert_eq!(body["details"]["kind"], "ListOptions");
    let (code, body) = raw_json(
        &client,
        "GET",
        &format!("{base}&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"),
        None,
        Value::Null,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_status(&body, 422, "Invalid");

    // With bookmarks allowed, one comes shortly before timeoutSeconds ends the watch.
    let now = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let started = Instant::now();
    let mut s: EventStream<ConfigMap> = cms.watch(&WatchParams::default().timeout(4), &now).await.unwrap().boxed();
    let written = cms.create(&pp, &cm("during", &[])).await.unwrap();
    let ev = next_change(&mut s).await;
    assert_eq!((ev.0, ev.1.as_str()), ("ADDED", "during"));
    let bookmark = match next_event(&mut s).await {
        WatchEvent::Bookmark(b) => b,
        other => panic!("a BOOKMARK was expected, got {other:?}"),
    };
    let at = started.elapsed();
    assert!(at < Duration::from_millis(3900), "the bookmark comes before the timeout: {at:?}");
    assert!(at > Duration::from_millis(500), "the bookmark comes near the end: {at:?}");
    assert!(bookmark.metadata.resource_version.parse::<u64>().unwrap() >= rv_of(&written));
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.next().await {
                None => return,
                Some(Ok(WatchEvent::Bookmark(_))) => continue,
                Some(other) => panic!("nothing else was expected, got {other:?}"),
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the watch ends by itself");
    let total = started.elapsed();
    assert!(
        total >= Duration::from_millis(3500) && total < Duration::from_secs(7),
        "the watch lasts timeoutSeconds: {total:?}"
    );

    // Without bookmarks, none are sent.
    let now = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut quiet: EventStream<ConfigMap> =
        cms.watch(&WatchParams::default().timeout(3).disable_bookmarks(), &now).await.unwrap().boxed();
    let end = tokio::time::timeout(Duration::from_secs(8), quiet.next()).await.expect("the watch ends");
    assert!(end.is_none(), "no events and no bookmarks: {end:?}");

    // The raw stream: one JSON event per line, objects carry kind and apiVersion.
    let (code, out) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/b/configmaps?watch=true&timeoutSeconds=1&resourceVersion=0",
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(code, 200);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("each line is one JSON event")).collect();
    assert_eq!(lines.len(), 5, "{text}");
    for l in &lines {
        assert_eq!(l["type"], "ADDED");
        assert_eq!((l["object"]["kind"].as_str(), l["object"]["apiVersion"].as_str()), (Some("ConfigMap"), Some("v1")));
    }
}

// ---------------------------------------------------------------------------------------------
// Dry run, discovery of every kind, limits, concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dry_run_writes_change_nothing() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let real = cms.create(&PostParams::default(), &cm("real", &[("k", "v")])).await.unwrap();
    let revision = |list: kube::core::ObjectList<ConfigMap>| list.metadata.resource_version.unwrap();
    let before = revision(cms.list(&ListParams::default()).await.unwrap());
    let dry = PostParams { dry_run: true, ..Default::default() };

    let made = cms.create(&dry, &cm("imaginary", &[("a", "b")])).await.expect("dry-run create");
    assert_eq!(made.metadata.name.as_deref(), Some("imaginary"));
    assert_eq!(made.metadata.namespace.as_deref(), Some("default"));
    assert!(
        made.metadata.uid.is_some() && made.metadata.creation_timestamp.is_some(),
        "the answer is what would be stored"
    );
    assert_eq!(status_of(cms.get("imaginary").await).code, 404);
    // A dry run still validates and checks for conflicts.
    assert_eq!(status_of(cms.create(&dry, &cm("Bad_Name", &[])).await).code, 422);
    assert_eq!(status_of(cms.create(&dry, &cm("real", &[])).await).code, 409);

    let mut changed = real.clone();
    changed.data = Some(BTreeMap::from([("k".into(), "dry".into())]));
    let answer = cms.replace("real", &dry, &changed).await.expect("dry-run replace");
    assert_eq!(answer.data.unwrap()["k"], "dry");
    let patched = cms
        .patch("real", &PatchParams::default().dry_run(), &Patch::Merge(json!({"data": {"k": "patched"}})))
        .await
        .expect("dry-run patch");
    assert_eq!(patched.data.unwrap()["k"], "patched");
    let deleted = cms.delete("real", &DeleteParams::default().dry_run()).await.expect("dry-run delete");
    assert!(deleted.is_right());
    cms.delete_collection(&DeleteParams::default().dry_run(), &ListParams::default())
        .await
        .expect("dry-run deletecollection");

    let stored = cms.get("real").await.expect("still there");
    assert_eq!(stored.data.as_ref().unwrap()["k"], "v");
    assert_eq!(rv_of(&stored), rv_of(&real));
    // Controllers may write elsewhere meanwhile, so the store's revision can move; what must
    // not exist is any change to these ConfigMaps since `before`.
    let mut changes =
        Box::pin(cms.watch(&WatchParams::default().timeout(1), &before).await.expect("watch from before"));
    while let Some(event) = changes.try_next().await.expect("watch event") {
        let touched = match &event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o.metadata.name.clone(),
            _ => None,
        };
        assert!(!matches!(touched.as_deref(), Some("real" | "imaginary")), "a dry run wrote to the store: {event:?}");
    }

    let (code, body) = raw_json(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps?dryRun=Sometimes",
        Some("application/json"),
        json!({"metadata": {"name": "x"}}),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_status(&body, 400, "BadRequest");
}

#[tokio::test]
async fn every_discovered_resource_serves_lists_and_common_kinds_round_trip() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let mut group_versions = vec!["/api/v1".to_string()];
    let (code, groups) = raw_json(&client, "GET", "/apis", None, Value::Null).await;
    assert_eq!(code, 200);
    assert_eq!(groups["kind"], "APIGroupList");
    for g in groups["groups"].as_array().expect("groups") {
        for v in g["versions"].as_array().expect("versions") {
            group_versions.push(format!("/apis/{}", v["groupVersion"].as_str().unwrap()));
        }
    }
    assert!(group_versions.iter().any(|g| g == "/apis/apps/v1"), "{group_versions:?}");
    let mut listed = 0;
    for gv in &group_versions {
        let (code, list) = raw_json(&client, "GET", gv, None, Value::Null).await;
        assert_eq!(code, 200, "{gv}: {list}");
        assert_eq!(list["kind"], "APIResourceList", "{gv}");
        for r in list["resources"].as_array().expect("resources") {
            let name = r["name"].as_str().unwrap();
            let verbs: Vec<&str> = r["verbs"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            if name.contains('/') || !verbs.contains(&"list") {
                continue;
            }
            let path = format!("{gv}/{name}");
            let (code, body) = raw_json(&client, "GET", &path, None, Value::Null).await;
            assert_eq!(code, 200, "{path}: {body}");
            assert_eq!(body["kind"], format!("{}List", r["kind"].as_str().unwrap()), "{path}");
            assert!(body["items"].is_array(), "{path}");
            assert!(body["metadata"]["resourceVersion"].as_str().is_some_and(|s| s.parse::<u64>().is_ok()), "{path}");
            listed += 1;
        }
    }
    assert!(listed > 40, "only {listed} resources were listed");

    let objects = [
        (
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "s"}, "data": {"k": "dmFsdWU="}, "type": "Opaque"}),
        ),
        ("/api/v1/namespaces/default/serviceaccounts", json!({"metadata": {"name": "sa"}})),
        (
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
            json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            json!({"metadata": {"name": "cr"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
        ),
    ];
    for (collection, obj) in objects {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let (code, created) = raw_json(&client, "POST", collection, Some("application/json"), obj).await;
        assert_eq!(code, 201, "{collection}: {created}");
        let (code, got) = raw_json(&client, "GET", &format!("{collection}/{name}"), None, Value::Null).await;
        assert_eq!(code, 200, "{collection}: {got}");
        assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"], "{collection}");
        assert_eq!(got["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"], "{collection}");
        let (code, list) = raw_json(&client, "GET", collection, None, Value::Null).await;
        assert_eq!(code, 200);
        assert!(json_names(&list).contains(&name), "{collection}");
        let (code, body) = raw_json(&client, "DELETE", &format!("{collection}/{name}"), None, Value::Null).await;
        assert_eq!(code, 200, "{collection}: {body}");
        let (code, body) = raw_json(&client, "GET", &format!("{collection}/{name}"), None, Value::Null).await;
        assert_eq!(code, 404, "{collection}: {body}");
        assert_status(&body, 404, "NotFound");
    }
}

#[tokio::test]
async fn request_body_limit() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let mut big = b"{\"metadata\":{\"name\":\"big\"},\"data\":{\"a\":\"".to_vec();
    big.resize(big.len() + 4 * 1024 * 1024, b'x');
    big.extend_from_slice(b"\"}}");
    let (code, out) = raw(&client, "POST", path, Some("application/json"), big).await;
    let body: Value = serde_json::from_slice(&out).expect("a JSON Status");
    assert_eq!(code, 413, "{body}");
    assert_status(&body, 413, "RequestEntityTooLarge");
    assert_eq!(body["message"], "Request entity too large: limit is 3145728");
    // Just under the limit is read (and then refused by validation as too much data).
    let mut under = b"{\"metadata\":{\"name\":\"under\"},\"data\":{\"a\":\"".to_vec();
    under.resize(3 * 1024 * 1024 - 100, b'y');
    under.extend_from_slice(b"\"}}");
    let (code, out) = raw(&client, "POST", path, Some("application/json"), under).await;
    assert_eq!(code, 422, "{}", String::from_utf8_lossy(&out[..out.len().min(300)]));
    // Large patches are limited too.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("small", &[])).await.unwrap();
    let mut patch = b"{\"data\":{\"a\":\"".to_vec();
    patch.resize(patch.len() + 3 * 1024 * 1024 + 10, b'z');
    patch.extend_from_slice(b"\"}}");
    let (code, _) = raw(&client, "PATCH", &format!("{path}/small"), Some("application/merge-patch+json"), patch).await;
    assert_eq!(code, 413);
    // The server is fine afterwards.
    assert_eq!(cms.get("small").await.unwrap().name_any(), "small");

    // Large bodies on requests that fail early still get their answer, and the connection
    // stays usable for the next request.
    for round in 0..6 {
        let (code, out) =
            raw(&client, "POST", "/apis/nope.example.com/v1/things", Some("application/json"), vec![b' '; 1_000_000])
                .await;
        assert_eq!(code, 404, "round {round}: {}", String::from_utf8_lossy(&out));
        let (code, out) =
            raw(&client, "POST", &format!("{path}?limit=abc"), Some("application/json"), vec![b' '; 500_000]).await;
        assert_eq!(code, 400, "round {round}: {}", String::from_utf8_lossy(&out));
        let (code, out) = raw(&client, "POST", path, Some("application/json"), vec![b' '; 5_000_000]).await;
        assert_eq!(code, 413, "round {round}: {}", String::from_utf8_lossy(&out));
        let (code, _) = raw(&client, "GET", "/version", None, Vec::new()).await;
        assert_eq!(code, 200, "round {round}");
    }
}

#[tokio::test]
async fn concurrent_writers_conflict_and_revisions_are_unique() {
    let srv = TestServer::start().await;
    let client = srv.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let base = cms.create(&PostParams::default(), &cm("contended", &[("n", "0")])).await.unwrap();

    // Ten updates from the same resourceVersion: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let cms = cms.clone();
        let mut next = base.clone();
        next.data = Some(BTreeMap::from([("n".into(), (i + 1).to_string())]));
        tasks.push(tokio::spawn(async move { cms.replace("contended", &PostParams::default(), &next).await }));
    }
    let mut wins = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "Conflict" => conflicts += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((wins, conflicts), (1, 9));

    // Concurrent creates get distinct resourceVersions, and a list sees all of them.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let cms = cms.clone();
        tasks.push(tokio::spawn(async move { cms.create(&PostParams::default(), &cm(&format!("c-{i}"), &[])).await }));
    }
    let mut rvs = BTreeSet::new();
    for t in tasks {
        rvs.insert(rv_of(&t.await.unwrap().expect("create")));
    }
    assert_eq!(rvs.len(), 24, "every write has its own revision");
    let list = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 25);
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv >= *rvs.last().unwrap());
}
