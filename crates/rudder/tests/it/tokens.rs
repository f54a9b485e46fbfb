//! Service-account tokens: `kubectl create token`, requests authenticated by the token it
//! prints, `kubectl auth whoami` with only that token, token reviews, and the ways a token
//! stops working (its account or bound object deleted, tampering, another audience).

use crate::common::{TestServer, raw_json};
use crate::kubectl::{command, fails, must};
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::Arc;

/// A client that trusts the cluster CA and authenticates with `token` only.
async fn bearer_client(server: &TestServer, token: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig parses");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig loads");
    config.auth_info = Default::default();
    config.default_retry = false;
    config.headers.push((http::header::AUTHORIZATION, format!("Bearer {token}").parse().expect("a header value")));
    kube::Client::try_from(config).expect("client builds")
}

/// The status code of a GET with `token`.
async fn get_status(server: &TestServer, token: &str, path: &str) -> u16 {
    let client = bearer_client(server, token).await;
    raw_json(&client, "GET", path, None, Value::Null).await.0
}

/// A kubeconfig with the server and its CA but no user credentials.
fn credentialless_kubeconfig(server: &TestServer) -> String {
    let path = server.data_dir().join("no-user.kubeconfig");
    let ca = server.data_dir().join("tls").join("ca.crt");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: rudder\n  cluster:\n    server: https://{}\n    certificate-authority: {}\ncontexts:\n- name: rudder\n  context: {{cluster: rudder, user: nobody}}\ncurrent-context: rudder\nusers:\n- name: nobody\n  user: {{}}\n",
        server.addr,
        ca.display()
    );
    std::fs::write(&path, text).expect("write the kubeconfig");
    path.to_str().expect("temp paths are UTF-8").to_string()
}

/// `kubectl auth whoami -o json` as the holder of `token`: the review, or kubectl's stderr.
async fn whoami(server: &TestServer, token: &str) -> Result<Value, String> {
    let kubeconfig = credentialless_kubeconfig(server);
    let args = ["--kubeconfig", &kubeconfig, "--token", token, "auth", "whoami", "-o", "json"];
    let out = command(server, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).output().await.expect("kubectl");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("whoami prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `token` with one character of its signature changed.
fn tampered(token: &str) -> String {
    let (signed, sig) = token.rsplit_once('.').expect("a JWT");
    let mut sig: Vec<char> = sig.chars().collect();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == 'A' { 'B' } else { 'A' };
    format!("{signed}.{}", sig.into_iter().collect::<String>())
}

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn kubectl_create_token_authenticates_as_the_service_account() {
    let server = TestServer::start().await;
    must(&server, &["create", "serviceaccount", "robot"]).await;
    let uid = must(&server, &["get", "serviceaccount", "robot", "-o", "jsonpath={.metadata.uid}"]).await;
    let token = must(&server, &["create", "token", "robot"]).await.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    // No authorizer yet: any authenticated user may read.
    assert_eq!(get_status(&server, &token, CONFIGMAPS).await, 200);
    let me = whoami(&server, &token).await.expect("whoami with the token");
    let info = &me["status"]["userInfo"];
    assert_eq!(info["username"], "system:serviceaccount:default:robot", "{me}");
    assert_eq!(info["uid"], uid.as_str(), "{me}");
    assert_eq!(
        info["groups"],
        json!(["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]),
        "{me}"
    );
    let credential = info["extra"]["authentication.kubernetes.io/credential-id"][0].as_str().unwrap_or("");
    assert!(credential.starts_with("JTI="), "{me}");

    // A changed signature is refused.
    let bad = tampered(&token);
    assert_eq!(get_status(&server, &bad, CONFIGMAPS).await, 401);
    let err = whoami(&server, &bad).await.expect_err("a tampered token is refused");
    assert!(err.contains("Unauthorized"), "{err}");
    // Static tokens keep working beside service-account tokens.
    assert_eq!(get_status(&server, &server.token(), CONFIGMAPS).await, 200);

    // Below ten minutes (kubectl itself only refuses negative durations).
    let err = fails(&server, &["create", "token", "robot", "--duration=5m"]).await;
    assert!(
        err.contains("spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes")
    );
    let long = must(&server, &["create", "token", "robot", "--duration=48h"]).await;
    assert_eq!(get_status(&server, long.trim(), CONFIGMAPS).await, 200);
    let err = fails(&server, &["create", "token", "nobody"]).await;
    assert!(err.contains(r#"serviceaccounts "nobody" not found"#), "{err}");

    // Deleting the account ends its tokens, and a new account of the same name does not
    // bring them back (another uid).
    must(&server, &["delete", "serviceaccount", "robot"]).await;
    assert_eq!(get_status(&server, &token, CONFIGMAPS).await, 401);
    assert!(whoami(&server, &token).await.is_err());
    must(&server, &["create", "serviceaccount", "robot"]).await;
    assert_eq!(get_status(&server, &token, CONFIGMAPS).await, 401);
    let fresh = must(&server, &["create", "token", "robot"]).await;
    assert_eq!(get_status(&server, fresh.trim(), CONFIGMAPS).await, 200);
}

#[tokio::test]
async fn token_requests_bound_objects_and_reviews() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut server = TestServer::start_in(dir.clone(), &[]).await;
    let admin = server.client().await;
    let sa_path = "/api/v1/namespaces/default/serviceaccounts";
    let (code, account) = raw_json(&admin, "POST", sa_path, None, json!({"metadata": {"name": "robot"}})).await;
    assert_eq!(code, 201);
    let (code, secret) =
        raw_json(&admin, "POST", "/api/v1/namespaces/default/secrets", None, json!({"metadata": {"name": "s1"}})).await;
    assert_eq!(code, 201);
    let token_path = format!("{sa_path}/robot/token");

    // A token for another audience, bound to a secret.
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": ["vault"],
            "expirationSeconds": 700,
            "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s1"},
        },
    });
    let (code, issued) = raw_json(&admin, "POST", &token_path, None, request.clone()).await;
    assert_eq!(code, 201, "{issued}");
    assert_eq!(issued["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(issued["kind"], "TokenRequest");
    assert_eq!(issued["metadata"]["name"], "robot");
    assert_eq!(issued["metadata"]["namespace"], "default");
    assert!(issued["metadata"]["creationTimestamp"].is_string(), "{issued}");
    assert_eq!(issued["spec"]["audiences"], json!(["vault"]));
    assert_eq!(issued["spec"]["expirationSeconds"], 700);
    assert_eq!(issued["spec"]["boundObjectRef"], json!({"kind": "Secret", "apiVersion": "v1", "name": "s1"}));
    assert!(issued["status"]["expirationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{issued}");
    let token = issued["status"]["token"].as_str().expect("a token").to_string();

    // Not for the API server.
    assert_eq!(get_status(&server, &token, CONFIGMAPS).await, 401);
    let review = |token: &str, audiences: Value| {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
               "spec": {"token": token, "audiences": audiences}})
    };
    let reviews = "/apis/authentication.k8s.io/v1/tokenreviews";
    let (code, r) = raw_json(&admin, "POST", reviews, None, review(&token, json!(["vault"]))).await;
    assert_eq!(code, 201, "{r}");
    assert_eq!(r["status"]["authenticated"], true, "{r}");
    assert_eq!(r["status"]["audiences"], json!(["vault"]));
    assert_eq!(r["status"]["user"]["username"], "system:serviceaccount:default:robot");
    let (_, r) = raw_json(&admin, "POST", reviews, None, review(&token, Value::Null)).await;
    assert_eq!(r["status"]["authenticated"], false, "{r}");
    assert!(r["status"]["error"].as_str().is_some_and(|e| e.contains("audiences")), "{r}");

    // The default token is for the API server; a review of it says so.
    let (_, plain) = raw_json(&admin, "POST", &token_path, None, json!({"spec": {}})).await;
    assert_eq!(plain["spec"]["expirationSeconds"], 3600, "{plain}");
    assert_eq!(plain["spec"]["audiences"], json!(["https://kubernetes.default.svc.cluster.local"]));
    let plain = plain["status"]["token"].as_str().expect("a token").to_string();
    let (_, r) = raw_json(&admin, "POST", reviews, None, review(&plain, Value::Null)).await;
    assert_eq!(r["status"]["audiences"], json!(["https://kubernetes.default.svc.cluster.local"]), "{r}");
    assert_eq!(r["status"]["user"]["uid"], account["metadata"]["uid"], "{r}");

    // Errors as upstream's.
    let mut wrong_name = request.clone();
    wrong_name["metadata"] = json!({"name": "other"});
    let (code, e) = raw_json(&admin, "POST", &token_path, None, wrong_name).await;
    assert_eq!(code, 422, "{e}");
    assert!(e["message"].as_str().unwrap().contains("must match the service account name if specified"), "{e}");
    let (code, e) =
        raw_json(&admin, "POST", &token_path, None, json!({"spec": {"expirationSeconds": 4_294_967_297_i64}})).await;
    assert_eq!(code, 422, "{e}");
    assert!(e["message"].as_str().unwrap().contains("may not specify a duration larger than 2^32 seconds"), "{e}");
    let bind_to = |kind: &str, name: &str, uid: &str| json!({"spec": {"boundObjectRef": {"kind": kind, "apiVersion": "v1", "name": name, "uid": uid}}});
    let (code, e) = raw_json(&admin, "POST", &token_path, None, bind_to("ConfigMap", "x", "")).await;
    assert_eq!(
        (code, e["message"].as_str().unwrap()),
        (400, "cannot bind token to object of type /v1, Kind=ConfigMap")
    );
    let (code, e) = raw_json(&admin, "POST", &token_path, None, bind_to("Pod", "missing", "")).await;
    assert_eq!((code, e["message"].as_str().unwrap()), (404, r#"pods "missing" not found"#));
    let (code, e) = raw_json(&admin, "POST", &token_path, None, bind_to("Secret", "s1", "not-its-uid")).await;
    assert_eq!(code, 409, "{e}");
    let secret_uid = secret["metadata"]["uid"].as_str().unwrap();
    let (code, _) = raw_json(&admin, "POST", &token_path, None, bind_to("Secret", "s1", secret_uid)).await;
    assert_eq!(code, 201);
    let (code, _) = raw_json(&admin, "GET", &token_path, None, Value::Null).await;
    assert_eq!(code, 405, "only POST is served");

    // A restart keeps the signing key: tokens stay valid.
    server.terminate().await;
    let server = TestServer::start_in(dir, &[]).await;
    let admin = server.client().await;
    assert_eq!(get_status(&server, &plain, CONFIGMAPS).await, 200);
    let (_, r) = raw_json(&admin, "POST", reviews, None, review(&token, json!(["vault"]))).await;
    assert_eq!(r["status"]["authenticated"], true, "{r}");

    // Deleting the bound secret ends the token.
    let (code, _) = raw_json(&admin, "DELETE", "/api/v1/namespaces/default/secrets/s1", None, Value::Null).await;
    assert_eq!(code, 200);
    let (_, r) = raw_json(&admin, "POST", reviews, None, review(&token, json!(["vault"]))).await;
    assert_eq!(r["status"]["authenticated"], false, "{r}");
    assert_eq!(r["status"]["error"], "service account token has been invalidated", "{r}");
}

#[tokio::test]
async fn pod_bound_tokens_name_the_pod_and_its_node() {
    let server = TestServer::start().await;
    must(&server, &["create", "serviceaccount", "robot"]).await;
    let overrides = r#"{"spec":{"serviceAccountName":"robot","nodeName":"node-1"}}"#;
    must(&server, &["run", "web", "--image=busybox:1.36", "--overrides", overrides]).await;
    let pod_uid = must(&server, &["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"]).await;
    let token =
        must(&server, &["create", "token", "robot", "--bound-object-kind=Pod", "--bound-object-name=web"]).await;
    let token = token.trim();
    let me = whoami(&server, token).await.expect("whoami with a pod-bound token");
    let extra = &me["status"]["userInfo"]["extra"];
    assert_eq!(extra["authentication.kubernetes.io/pod-name"], json!(["web"]), "{me}");
    assert_eq!(extra["authentication.kubernetes.io/pod-uid"], json!([pod_uid]), "{me}");
    assert_eq!(extra["authentication.kubernetes.io/node-name"], json!(["node-1"]), "{me}");

    // The pod runs as another account.
    must(&server, &["create", "serviceaccount", "other"]).await;
    let err = fails(&server, &["create", "token", "other", "--bound-object-kind=Pod", "--bound-object-name=web"]).await;
    assert!(err.contains("to pod running with different serviceaccount name"), "{err}");

    // The token ends with the pod (a pod on a node waits for its kubelet: delete at once).
    must(&server, &["delete", "pod", "web", "--grace-period=0", "--force"]).await;
    assert_eq!(get_status(&server, token, CONFIGMAPS).await, 401);
}
