//! Randomized robustness: many odd requests (methods, paths, query strings, bodies, content
//! types) against one server. Every answer must be a proper HTTP answer below 500 (the 5xx
//! allowed are upstream's 504 for a resourceVersion from the future and, with no node agent,
//! 503 for a pod's log/exec/attach/portforward/proxy), every JSON failure must be a
//! `metav1.Status` whose `code` matches, and the server must stay healthy.
//!
//! The run is seeded; the seed is printed, and `RUDDER_FUZZ_SEED=<seed>` replays it.

use crate::common::{TestServer, enc};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::time::Duration;

/// How many random requests one run sends.
const REQUESTS: usize = 1500;
/// How many are in flight at once.
const CONCURRENCY: usize = 8;
/// The server's body limit.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// One generated request.
#[derive(Clone)]
struct FuzzRequest {
    method: String,
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl std::fmt::Debug for FuzzRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = String::from_utf8_lossy(&self.body[..self.body.len().min(160)]).into_owned();
        let path: String = self.path.chars().take(300).collect();
        write!(
            f,
            "{} {} (content-type {:?}, {} body bytes: {shown:?})",
            self.method,
            path,
            self.content_type,
            self.body.len()
        )
    }
}

/// A resource the server serves, from discovery.
#[derive(Clone, Debug)]
struct Served {
    /// `/api/v1` or `/apis/<group>/<version>`.
    prefix: String,
    /// `<group>/<version>` or `v1`.
    group_version: String,
    plural: String,
    kind: String,
    namespaced: bool,
    subresources: Vec<String>,
}

async fn discover(client: &kube::Client) -> Vec<Served> {
    let get = |path: String| async move {
        let req = http::Request::get(path.as_str()).body(Vec::new()).unwrap();
        let resp = client.send(req.map(kube::client::Body::from)).await.expect("discovery answers");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        serde_json::from_slice::<Value>(&bytes).expect("discovery JSON")
    };
    let mut prefixes = vec![("/api/v1".to_string(), "v1".to_string())];
    let groups = get("/apis".into()).await;
    for g in groups["groups"].as_array().unwrap() {
        for v in g["versions"].as_array().unwrap() {
            let gv = v["groupVersion"].as_str().unwrap().to_string();
            prefixes.push((format!("/apis/{gv}"), gv));
        }
    }
    let mut out = Vec::new();
    for (prefix, gv) in prefixes {
        let list = get(prefix.clone()).await;
        let resources = list["resources"].as_array().unwrap();
        for r in resources {
            let name = r["name"].as_str().unwrap();
            if name.contains('/') {
                continue;
            }
            let subresources = resources
                .iter()
                .filter_map(|s| s["name"].as_str()?.strip_prefix(&format!("{name}/")).map(str::to_string))
                .collect();
            out.push(Served {
                prefix: prefix.clone(),
                group_version: gv.clone(),
                plural: name.to_string(),
                kind: r["kind"].as_str().unwrap().to_string(),
                namespaced: r["namespaced"].as_bool().unwrap(),
                subresources,
            });
        }
    }
    out
}

const NAMES: &[&str] = &["fz-0", "fz-1", "fz-2", "default", "kube-system", "node-1", "web"];
const NAMESPACES: &[&str] = &["default", "default", "fuzz", "fuzz", "kube-system", "missing-ns"];

fn random_string(rng: &mut StdRng, alphabet: &[u8], max: usize) -> String {
    let n = rng.random_range(0..=max);
    (0..n).map(|_| *alphabet.choose(rng).unwrap() as char).collect()
}

/// Decodes percent-encoding (bytes that do not decode stay as they are).
fn dec(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn name(rng: &mut StdRng) -> String {
    match rng.random_range(0..12) {
        0..=5 => NAMES.choose(rng).unwrap().to_string(),
        6 => format!("n-{}", rng.random_range(0..1000)),
        7 => "a".repeat(rng.random_range(250..300)),
        8 => "x".repeat(rng.random_range(1000..8000)),
        9 => random_string(rng, b"abcXYZ09-._~:@!$&'()*+,;= ", 20),
        10 => ["..", ".", "%2F", "%00", "%FF%FE", "%E2%98%83", "%20", "a%2Fb", "%25"].choose(rng).unwrap().to_string(),
        _ => String::new(),
    }
}

/// A path segment for a name, percent-encoded unless it is already an escape sequence.
fn segment(rng: &mut StdRng) -> String {
    let n = name(rng);
    if n.contains('%') { n } else { enc(&n) }
}

fn random_path(rng: &mut StdRng, r: &Served) -> String {
    let ns = NAMESPACES.choose(rng).unwrap();
    let scope = if r.namespaced && rng.random_bool(0.85) { format!("/namespaces/{ns}") } else { String::new() };
    let watch = if rng.random_bool(0.04) { "/watch" } else { "" };
    match rng.random_range(0..20) {
        0..=6 => format!("{}{watch}{scope}/{}", r.prefix, r.plural),
        7..=12 => format!("{}{watch}{scope}/{}/{}", r.prefix, r.plural, segment(rng)),
        13..=14 => {
            let sub = r.subresources.choose(rng).cloned().unwrap_or_else(|| "status".into());
            format!("{}{scope}/{}/{}/{sub}", r.prefix, r.plural, segment(rng))
        }
        15 => format!("/apis/{}.example.com/v{}/{}", random_string(rng, b"abc", 6), rng.random_range(0..3), r.plural),
        16 => [
            "/",
            "/api",
            "/apis",
            "/api/v2",
            "/api/v1/namespaces",
            "/version",
            "/healthz",
            "/readyz/nope",
            "/livez/ping",
            "/openapi/v2",
            "/metrics",
            "/api/v1/namespaces/default/pods/x/log",
            "/api/v1/namespaces/default/pods/x/exec",
            "/api/v1/namespaces/fz-0/finalize",
            "/api/v1/namespaces/default/status",
        ]
        .choose(rng)
        .unwrap()
        .to_string(),
        17 => {
            // Odd segments and encodings.
            let mut p = r.prefix.clone();
            for _ in 0..rng.random_range(1..6) {
                p.push('/');
                p.push_str(
                    [
                        "..",
                        ".",
                        "",
                        "%2e%2e",
                        "%2F",
                        "namespaces",
                        "watch",
                        "%C0%AF",
                        "%FF",
                        "%E2%82%AC",
                        r.plural.as_str(),
                        "status",
                        "scale",
                        "proxy",
                    ]
                    .choose(rng)
                    .unwrap(),
                );
            }
            p
        }
        18 => format!("{}{scope}/{}/{}/{}", r.prefix, r.plural, segment(rng), segment(rng)),
        _ => format!("{}/namespaces/{}/{}", r.prefix, segment(rng), r.plural),
    }
}

fn query_value(rng: &mut StdRng, key: &str) -> String {
    let numbers =
        ["0", "1", "-1", "5", "500", "abc", "", "1e3", "99999999999999999999", "9223372036854775807", "0x10", " 3"];
    let v = match key {
        "limit" | "timeoutSeconds" | "gracePeriodSeconds" => numbers.choose(rng).unwrap().to_string(),
        "resourceVersion" => {
            // A resourceVersion from the future makes lists wait three seconds: keep them rare.
            if rng.random_bool(0.05) {
                "99999999".to_string()
            } else {
                ["0", "1", "2", "", "-1", "abc", "18446744073709551616", "3.5"].choose(rng).unwrap().to_string()
            }
        }
        "resourceVersionMatch" => ["Exact", "NotOlderThan", "exact", "", "Sometimes"].choose(rng).unwrap().to_string(),
        "labelSelector" => match rng.random_range(0..6) {
            0 => ["a=b", "a==b,c!=d", "x in (a,b)", "x notin (a)", "!x", "x", "a in (", "==", ",", "a=b=c"]
                .choose(rng)
                .unwrap()
                .to_string(),
            1 => random_string(rng, b"abc=!,() in notx-_./", 40),
            2 => "k".repeat(rng.random_range(60..2000)) + "=v",
            3 => format!("{}=x", "a/".repeat(rng.random_range(1..5))),
            4 => "env in (".to_string() + &"v,".repeat(rng.random_range(1..500)) + "v)",
            _ => String::new(),
        },
        "fieldSelector" => match rng.random_range(0..4) {
            0 => [
                "metadata.name=fz-0",
                "metadata.namespace!=default",
                "spec.nodeName=",
                "status.phase=Running",
                "spec.foo=bar",
                "=",
                ",",
                "metadata.name",
                "a=b=c",
                "involvedObject.name=x",
                "type=Opaque",
            ]
            .choose(rng)
            .unwrap()
            .to_string(),
            1 => random_string(rng, b"metadatn.=!,x", 40),
            2 => "metadata.name=".to_string() + &"y".repeat(rng.random_range(100..3000)),
            _ => String::new(),
        },
        "continue" => match rng.random_range(0..4) {
            0 => random_string(rng, b"ABCabc0123456789-_=", 80),
            1 => "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiIuLi8ifQ".to_string(),
            2 => "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6OTk5OTk5LCJzdGFydCI6ImEifQ".to_string(),
            _ => String::new(),
        },
        "watch" | "allowWatchBookmarks" | "sendInitialEvents" | "orphanDependents" | "force" => {
            ["true", "false", "1", "0", "", "maybe", "TRUE"].choose(rng).unwrap().to_string()
        }
        "dryRun" => ["All", "", "None", "all", "All,All"].choose(rng).unwrap().to_string(),
        "propagationPolicy" => ["Orphan", "Foreground", "Background", "", "Sideways"].choose(rng).unwrap().to_string(),
        "fieldValidation" => ["Strict", "Warn", "Ignore", "Loose", ""].choose(rng).unwrap().to_string(),
        _ => random_string(rng, b"abc123%&=+?#", 30),
    };
    enc(&v)
}

fn random_query(rng: &mut StdRng) -> String {
    const KEYS: &[&str] = &[
        "limit",
        "continue",
        "resourceVersion",
        "resourceVersionMatch",
        "labelSelector",
        "fieldSelector",
        "timeoutSeconds",
        "watch",
        "allowWatchBookmarks",
        "sendInitialEvents",
        "dryRun",
        "fieldManager",
        "fieldValidation",
        "gracePeriodSeconds",
        "propagationPolicy",
        "orphanDependents",
        "force",
        "pretty",
        "verbose",
        "junk",
    ];
    if rng.random_bool(0.35) {
        return String::new();
    }
    let mut parts = Vec::new();
    for _ in 0..rng.random_range(1..6) {
        let key = *KEYS.choose(rng).unwrap();
        match rng.random_range(0..10) {
            0 => parts.push(key.to_string()),
            1 => parts.push(format!("{key}=")),
            _ => parts.push(format!("{key}={}", query_value(rng, key))),
        }
    }
    if rng.random_bool(0.05) {
        parts.push(["&&", "=", "%", "%zz=1", "a=%ZZ", "=x"].choose(rng).unwrap().to_string());
    }
    parts.join("&")
}

fn random_json(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..if depth == 0 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random_range(-1_000_000i64..1_000_000)),
        3 => json!(random_string(rng, b"abcXYZ019 -_./:\\\"\n\t\x7f", 24)),
        4 => json!(rng.random::<f64>() * 1e12),
        5 => Value::Array((0..rng.random_range(0..4)).map(|_| random_json(rng, depth - 1)).collect()),
        _ => {
            let keys = [
                "name",
                "replicas",
                "containers",
                "image",
                "labels",
                "spec",
                "status",
                "data",
                "selector",
                "ports",
                "a",
            ];
            let mut m = serde_json::Map::new();
            for _ in 0..rng.random_range(0..5) {
                m.insert(keys.choose(rng).unwrap().to_string(), random_json(rng, depth - 1));
            }
            Value::Object(m)
        }
    }
}

/// An object of (roughly) the right kind with a random twist.
fn object_body(rng: &mut StdRng, r: &Served) -> Value {
    let mut obj = json!({
        "apiVersion": r.group_version,
        "kind": r.kind,
        "metadata": {"name": name(rng), "labels": {"fuzz": "yes"}},
    });
    match rng.random_range(0..10) {
        0 => obj["spec"] = random_json(rng, 3),
        1 => obj["data"] = json!({"k": random_string(rng, b"xyz", 50)}),
        2 => obj["metadata"] = random_json(rng, 2),
        3 => obj["kind"] = json!(["Pod", "ConfigMap", "Status", "", "List"].choose(rng).unwrap()),
        4 => obj["apiVersion"] = json!(["v1", "apps/v1", "v2", "nope/v1", ""].choose(rng).unwrap()),
        5 => {
            obj.as_object_mut().unwrap().remove("kind");
            obj.as_object_mut().unwrap().remove("apiVersion");
        }
        6 => obj["metadata"]["resourceVersion"] = json!(["1", "abc", "99999"].choose(rng).unwrap()),
        7 => obj["metadata"]["finalizers"] = json!(["example.com/f", "orphan", "bad finalizer"]),
        8 => obj["status"] = random_json(rng, 3),
        _ => {
            obj["spec"] = json!({"replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}})
        }
    }
    obj
}

fn random_body(rng: &mut StdRng, r: &Served) -> Vec<u8> {
    match rng.random_range(0..20) {
        0..=2 => Vec::new(),
        3..=7 => serde_json::to_vec(&object_body(rng, r)).unwrap(),
        8 => {
            let mut b = serde_json::to_vec(&object_body(rng, r)).unwrap();
            let cut = rng.random_range(0..b.len());
            b.truncate(cut);
            b
        }
        9 => [&b"42"[..], b"\"text\"", b"null", b"true", b"[]", b"[1,2]", b"{}", b"{} {}", b"{\"a\":1,}"]
            .choose(rng)
            .unwrap()
            .to_vec(),
        10 => {
            let depth = rng.random_range(100..20_000);
            let mut b = "[".repeat(depth).into_bytes();
            b.extend("]".repeat(depth).into_bytes());
            b
        }
        11 => {
            let depth = rng.random_range(50..5_000);
            let mut s = String::new();
            for _ in 0..depth {
                s.push_str("{\"spec\":");
            }
            s.push('1');
            s.push_str(&"}".repeat(depth));
            s.into_bytes()
        }
        12 => {
            let mut obj = object_body(rng, r);
            if !obj["metadata"].is_object() {
                obj["metadata"] = json!({"name": "annotated"});
            }
            obj["metadata"]["annotations"] = json!({"big": "b".repeat(rng.random_range(100_000..1_500_000))});
            serde_json::to_vec(&obj).unwrap()
        }
        13 => (0..rng.random_range(1..2000)).map(|_| rng.random::<u8>()).collect(),
        14 => {
            // JSON patch operations.
            let ops = ["add", "remove", "replace", "move", "copy", "test", "frob"];
            let paths = [
                "/metadata/labels/x",
                "/spec/replicas",
                "/data/k",
                "/",
                "",
                "/metadata",
                "/status/phase",
                "/a/b/c/0",
                "/metadata/name",
            ];
            let list: Vec<Value> = (0..rng.random_range(0..5))
                .map(|_| json!({"op": ops.choose(rng).unwrap(), "path": paths.choose(rng).unwrap(), "from": paths.choose(rng).unwrap(), "value": random_json(rng, 2)}))
                .collect();
            serde_json::to_vec(&list).unwrap()
        }
        15 => {
            let policy = *["Orphan", "Foreground", "Background", "x"].choose(rng).unwrap();
            let grace = random_json(rng, 0);
            let uid = random_json(rng, 0);
            let rv = random_json(rng, 0);
            let dry = random_json(rng, 1);
            serde_json::to_vec(&json!({
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": grace,
                "propagationPolicy": policy,
                "preconditions": {"uid": uid, "resourceVersion": rv},
                "dryRun": dry,
            }))
            .unwrap()
        }
        16 => serde_json::to_vec(
            &json!({"spec": {"replicas": random_json(rng, 0)}, "metadata": {"labels": random_json(rng, 1)}}),
        )
        .unwrap(),
        17 => {
            // Over the limit now and then.
            if rng.random_bool(0.25) {
                let mut b = b"{\"metadata\":{\"name\":\"huge\"},\"data\":{\"k\":\"".to_vec();
                b.resize(MAX_BODY + rng.random_range(1..100_000), b'h');
                b.extend_from_slice(b"\"}}");
                b
            } else {
                serde_json::to_vec(&random_json(rng, 4)).unwrap()
            }
        }
        18 => format!("apiVersion: {}\nkind: {}\nmetadata:\n  name: fz-yaml\n", r.group_version, r.kind).into_bytes(),
        _ => serde_json::to_vec(&random_json(rng, 4)).unwrap(),
    }
}

/// A plausible write: the right path, kind and content type, with random content, so the
/// requests reach defaulting and validation of every kind.
fn plausible_write(rng: &mut StdRng, served: &[Served]) -> FuzzRequest {
    let r = served.choose(rng).unwrap();
    let ns = if rng.random_bool(0.7) { "default" } else { "fuzz" };
    let scope = if r.namespaced { format!("/namespaces/{ns}") } else { String::new() };
    let name = NAMES[..3].choose(rng).unwrap().to_string();
    let mut obj = json!({"apiVersion": r.group_version, "kind": r.kind, "metadata": {"name": name}});
    for field in ["spec", "data", "status", "rules", "subsets", "webhooks", "roleRef", "subjects", "type", "value"] {
        if rng.random_bool(0.3) {
            obj[field] = random_json(rng, 3);
        }
    }
    let (method, path, content_type, body) = match rng.random_range(0..5) {
        0 | 1 => {
            ("POST", format!("{}{scope}/{}", r.prefix, r.plural), "application/json", serde_json::to_vec(&obj).unwrap())
        }
        2 => (
            "PUT",
            format!("{}{scope}/{}/{name}", r.prefix, r.plural),
            "application/json",
            serde_json::to_vec(&obj).unwrap(),
        ),
        3 => {
            obj.as_object_mut().unwrap().remove("metadata");
            (
                "PATCH",
                format!("{}{scope}/{}/{name}", r.prefix, r.plural),
                "application/merge-patch+json",
                serde_json::to_vec(&obj).unwrap(),
            )
        }
        _ => {
            let sub = r.subresources.choose(rng).cloned().unwrap_or_else(|| "status".into());
            let patch = json!({"spec": random_json(rng, 2), "status": random_json(rng, 2)});
            (
                "PATCH",
                format!("{}{scope}/{}/{name}/{sub}", r.prefix, r.plural),
                "application/merge-patch+json",
                serde_json::to_vec(&patch).unwrap(),
            )
        }
    };
    let dry = if rng.random_bool(0.2) { "?dryRun=All" } else { "" };
    FuzzRequest { method: method.into(), path: format!("{path}{dry}"), content_type: Some(content_type.into()), body }
}

fn random_request(rng: &mut StdRng, served: &[Served]) -> FuzzRequest {
    if rng.random_bool(0.25) {
        return plausible_write(rng, served);
    }
    let method = [
        "GET", "GET", "GET", "POST", "POST", "PUT", "PATCH", "PATCH", "DELETE", "DELETE", "HEAD", "OPTIONS",
        "PROPFIND", "TRACE",
    ]
    .choose(rng)
    .unwrap()
    .to_string();
    // Mostly a body meant for the resource on the path, so requests get past the type checks.
    let r = served.choose(rng).unwrap().clone();
    let body_for = if rng.random_bool(0.8) { r.clone() } else { served.choose(rng).unwrap().clone() };
    let mut path = random_path(rng, &r);
    let query = random_query(rng);
    let r = body_for;
    let body = if method == "GET" && rng.random_bool(0.8) { Vec::new() } else { random_body(rng, &r) };
    let content_type = match rng.random_range(0..14) {
        0..=4 => Some("application/json"),
        5 => Some("application/json; charset=utf-8"),
        6 => Some("application/merge-patch+json"),
        7 => Some("application/json-patch+json"),
        8 => Some("application/strategic-merge-patch+json"),
        9 => Some("application/apply-patch+yaml"),
        10 => Some(
            *["application/yaml", "text/plain", "application/vnd.kubernetes.protobuf", "a/b/c;;;", "*/*", ""]
                .choose(rng)
                .unwrap(),
        ),
        11 => None,
        _ => match method.as_str() {
            "PATCH" => {
                Some(if rng.random_bool(0.5) { "application/merge-patch+json" } else { "application/json-patch+json" })
            }
            _ => Some("application/json"),
        },
    }
    .map(str::to_string);
    if !query.is_empty() {
        path = format!("{path}?{query}");
    }
    // A watch streams until its timeout: make sure every watch ends within a second.
    let decoded = dec(&path);
    let (p, q) = decoded.split_once('?').unwrap_or((&decoded, ""));
    let asks_watch = p.split('/').any(|s| s == "watch") || q.split('&').any(|kv| kv.split('=').next() == Some("watch"));
    if asks_watch && matches!(method.as_str(), "GET" | "HEAD") {
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str("timeoutSeconds=1");
    }
    FuzzRequest { method, path, content_type, body }
}

/// What one request brought back.
enum Outcome {
    Answer {
        code: u16,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// The request could not be built (an invalid URI) and was skipped.
    Skipped,
    /// The connection failed.
    Transport(String),
}

async fn send(client: &kube::Client, r: &FuzzRequest) -> Outcome {
    let Ok(method) = http::Method::from_bytes(r.method.as_bytes()) else { return Outcome::Skipped };
    let Ok(uri) = http::Uri::try_from(r.path.as_str()) else { return Outcome::Skipped };
    let mut b = http::Request::builder().method(method).uri(uri);
    if let Some(ct) = &r.content_type {
        b = b.header("content-type", ct.as_str());
    }
    let Ok(req) = b.body(r.body.clone()) else { return Outcome::Skipped };
    let resp = match client.send(req.map(kube::client::Body::from)).await {
        Ok(resp) => resp,
        Err(e) => return Outcome::Transport(e.to_string()),
    };
    let code = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    match http_body_util::BodyExt::collect(resp.into_body()).await {
        Ok(c) => Outcome::Answer { code, content_type, body: c.to_bytes().to_vec() },
        Err(e) => Outcome::Transport(format!("reading the body: {e}")),
    }
}

/// Checks one answer; returns a complaint if it breaks the rules.
fn judge(r: &FuzzRequest, code: u16, content_type: Option<&str>, body: &[u8]) -> Option<String> {
    let path_only = r.path.split('?').next().unwrap_or("");
    let health =
        ["/healthz", "/livez", "/readyz"].iter().any(|h| path_only == *h || path_only.starts_with(&format!("{h}/")));
    let json_body: Option<Value> = serde_json::from_slice(body).ok();
    if code >= 500 {
        // The 5xx answers upstream gives to requests like these: 504 for a resourceVersion the
        // server has not reached yet, and (without a node agent) 503 for the node-proxy
        // subresources of a scheduled pod. Both as a Status; a HEAD answer has no body.
        let node_proxy = path_only.contains("/pods/")
            && ["/log", "/exec", "/attach", "/portforward", "/proxy"].iter().any(|s| path_only.contains(s));
        let shown = || String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
        if !(code == 504 || code == 503 && node_proxy) {
            return Some(format!("{code} answer: {}", shown()));
        }
        if r.method == "HEAD" {
            return None;
        }
        let Some(s) = json_body.as_ref() else {
            return Some(format!("{code} answer that is not JSON: {:?}", shown()));
        };
        let expected = s["kind"] == "Status"
            && s["code"] == json!(code)
            && if code == 504 {
                s["reason"] == "Timeout" && s["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
            } else {
                s["reason"] == "ServiceUnavailable"
            };
        return if expected { None } else { Some(format!("{code} answer: {}", shown())) };
    }
    if (200..300).contains(&code) || r.method == "HEAD" {
        return None;
    }
    if health && code == 404 {
        return None;
    }
    let Some(s) = json_body else {
        return Some(format!(
            "{code} answer is not JSON (content-type {content_type:?}): {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    };
    let ok = s["kind"] == "Status"
        && s["apiVersion"] == "v1"
        && s["status"] == "Failure"
        && s["code"] == json!(code)
        && s["reason"].as_str().is_some_and(|x| !x.is_empty())
        && s["message"].is_string();
    if !ok {
        return Some(format!("{code} answer is not a matching Status: {s}"));
    }
    if content_type.is_none_or(|ct| !ct.starts_with("application/json")) {
        return Some(format!("{code} Status with content-type {content_type:?}"));
    }
    None
}

#[tokio::test]
async fn random_requests_get_proper_answers_and_the_server_stays_healthy() {
    let seed: u64 = std::env::var("RUDDER_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("fuzz seed: {seed} (replay with RUDDER_FUZZ_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let srv = TestServer::start().await;
    let client = srv.client_without_retries().await;
    let served = discover(&client).await;
    assert!(served.len() > 40, "discovery lists the built-in resources: {}", served.len());

    // Some objects for the requests to find.
    let seed_objects = [
        ("/api/v1/namespaces", json!({"metadata": {"name": "fuzz"}})),
        ("/api/v1/namespaces/default/configmaps", json!({"metadata": {"name": "fz-0"}, "data": {"k": "v"}})),
        ("/api/v1/namespaces/fuzz/configmaps", json!({"metadata": {"name": "fz-1"}})),
        ("/api/v1/namespaces/default/secrets", json!({"metadata": {"name": "fz-2"}, "stringData": {"k": "v"}})),
        (
            "/apis/apps/v1/namespaces/default/deployments",
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        ),
        (
            "/api/v1/namespaces/default/pods",
            json!({"metadata": {"name": "fz-0"}, "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]}}),
        ),
        ("/api/v1/nodes", json!({"metadata": {"name": "node-1"}})),
    ];
    for (path, obj) in seed_objects {
        let r = FuzzRequest {
            method: "POST".into(),
            path: path.into(),
            content_type: Some("application/json".into()),
            body: serde_json::to_vec(&obj).unwrap(),
        };
        match send(&client, &r).await {
            Outcome::Answer { code: 201, .. } => {}
            Outcome::Answer { code, body, .. } => panic!("{path}: {code} {}", String::from_utf8_lossy(&body)),
            _ => panic!("{path}: no answer"),
        }
    }

    let requests: Vec<FuzzRequest> = (0..REQUESTS).map(|_| random_request(&mut rng, &served)).collect();
    let started = std::time::Instant::now();
    let results: Vec<(FuzzRequest, Result<Outcome, tokio::time::error::Elapsed>)> = futures::stream::iter(requests)
        .map(|r| {
            let client = client.clone();
            async move {
                let out = tokio::time::timeout(Duration::from_secs(20), send(&client, &r)).await;
                (r, out)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let took = started.elapsed();

    let mut problems = Vec::new();
    let mut by_code: std::collections::BTreeMap<u16, usize> = Default::default();
    let mut skipped = 0;
    for (r, out) in &results {
        match out {
            Err(_) => problems.push(format!("no answer within 20 s: {r:?}")),
            Ok(Outcome::Skipped) => skipped += 1,
            Ok(Outcome::Transport(e)) => problems.push(format!("transport error {e}: {r:?}")),
            Ok(Outcome::Answer { code, content_type, body }) => {
                *by_code.entry(*code).or_default() += 1;
                if let Some(why) = judge(r, *code, content_type.as_deref(), body) {
                    problems.push(format!("{why}\n    request: {r:?}"));
                }
                let reads_body =
                    matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") && r.path.starts_with("/api");
                if reads_body && r.body.len() > MAX_BODY && (200..300).contains(code) {
                    problems.push(format!("an over-limit body got {code}: {r:?}"));
                }
            }
        }
    }
    println!("fuzz: {} requests in {took:?}; answers by code {by_code:?}; {skipped} skipped", results.len());
    assert!(skipped < REQUESTS / 10, "too many requests could not be built: {skipped}");
    if !problems.is_empty() {
        for p in problems.iter().take(40) {
            println!("PROBLEM: {p}");
        }
        panic!("{} of {} answers broke the rules (seed {seed})", problems.len(), results.len());
    }

    // The server is still healthy and still works.
    let health = FuzzRequest { method: "GET".into(), path: "/readyz".into(), content_type: None, body: Vec::new() };
    match send(&client, &health).await {
        Outcome::Answer { code: 200, body, .. } => assert_eq!(body, b"ok"),
        _ => panic!("/readyz is not ok after the fuzzing"),
    }
    let create = FuzzRequest {
        method: "POST".into(),
        path: "/api/v1/namespaces/default/configmaps".into(),
        content_type: Some("application/json".into()),
        body: br#"{"metadata":{"name":"after-fuzz"},"data":{"k":"v"}}"#.to_vec(),
    };
    assert!(
        matches!(send(&client, &create).await, Outcome::Answer { code: 201, .. }),
        "a create works after the fuzzing"
    );
    let get = FuzzRequest {
        method: "GET".into(),
        path: "/api/v1/namespaces/default/configmaps/after-fuzz".into(),
        content_type: None,
        body: Vec::new(),
    };
    match send(&client, &get).await {
        Outcome::Answer { code: 200, body, .. } => {
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["data"]["k"], "v");
        }
        _ => panic!("a get does not work after the fuzzing"),
    }
    // Whatever the fuzzing stored can still be listed, in every resource.
    for r in &served {
        let list = FuzzRequest {
            method: "GET".into(),
            path: format!("{}/{}", r.prefix, r.plural),
            content_type: None,
            body: Vec::new(),
        };
        match send(&client, &list).await {
            Outcome::Answer { code: 200, .. } => {}
            Outcome::Answer { code: 405, .. } => {}
            Outcome::Answer { code, body, .. } => {
                panic!(
                    "listing {} after the fuzzing: {code} {}",
                    r.plural,
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                )
            }
            _ => panic!("listing {} after the fuzzing failed", r.plural),
        }
    }
}
