//! OpenAPI documents, as kube-apiserver serves them (kube-openapi's `handler` and `handler3`):
//!
//! - `GET /openapi/v3`: the index, `{"paths": {"api/v1": {"serverRelativeURL":
//!   "/openapi/v3/api/v1?hash=<HASH>"}, "apis/apps/v1": ...}}`;
//! - `GET /openapi/v3/<api/v1|apis/<group>/<version>>`: one OpenAPI 3.0 document per group
//!   version, with the paths of its resources and the schemas they use. `hash` is the
//!   uppercase hex SHA-512 of the document; a request naming the current hash is answered
//!   with long-lived cache headers, one naming an old hash is redirected to the current one;
//! - `GET /openapi/v2`: one Swagger 2.0 document for everything, in JSON or, for client-go's
//!   `OpenAPISchema`, in gnostic's protobuf form (`protobuf.rs`).
//!
//! Every document carries an `ETag`; a matching `If-None-Match` is answered with 304. The
//! documents depend on nothing but the binary, so each set is built once, on first use, off
//! the async workers, and then served from its encoded bytes. The schema definitions are
//! dropped after encoding; Swagger is built only if someone asks for it.

mod paths;
mod protobuf;
mod schemas;

use crate::handlers::discovery::{Cached, media_ranges, version};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use rudder_api::catalog::{self, Resource};
use schemas::{Definitions, Flavor};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

/// The OpenAPI 3 documents and their index.
struct V3Documents {
    /// `api/v1`, `apis/apps/v1`, ... → document.
    documents: BTreeMap<String, Cached>,
    /// `/openapi/v3`.
    index: Cached,
}

static V3: OnceLock<V3Documents> = OnceLock::new();
static V2: OnceLock<Cached> = OnceLock::new();
static V2_PROTOBUF: OnceLock<Cached> = OnceLock::new();

/// The media types a client may ask the protobuf Swagger document by (client-go asks for the
/// first, deprecated one); the answer always carries the second, which Go's MIME parser
/// accepts.
const PROTOBUF_V2: &[&str] = &[
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

/// The index key of a group version: `api/v1` or `apis/<group>/<version>`.
fn key(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

fn server_relative_url(key: &str, hash: &str) -> String {
    format!("/openapi/v3/{key}?hash={hash}")
}

fn security_scheme() -> Value {
    json!({"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header", "description": "Bearer Token authentication"}})
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": version()["gitVersion"]})
}

/// The OpenAPI 3 document of one group version.
fn v3_document(group: &str, version: &str, defs: &Definitions) -> Value {
    let resources: Vec<&'static Resource> = catalog::in_group_version(group, version).collect();
    let paths = paths::paths(resources, defs, Flavor::V3);
    let mut roots = Vec::new();
    for item in paths.values() {
        schemas::collect_refs(item, Flavor::V3.ref_prefix(), &mut roots);
    }
    let schemas = defs.closure(roots.iter().map(String::as_str));
    json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": security_scheme()},
        "security": [{"BearerToken": []}],
    })
}

fn build_v3() -> V3Documents {
    let started = Instant::now();
    let defs = Definitions::build(Flavor::V3);
    let mut documents = BTreeMap::new();
    for (group, version) in schemas::served_group_versions() {
        documents.insert(key(group, version), Cached::new(&v3_document(group, version, &defs)));
    }
    let index_paths: Map<String, Value> = documents
        .iter()
        .map(|(k, doc)| (k.clone(), json!({"serverRelativeURL": server_relative_url(k, &doc.etag)})))
        .collect();
    let index = Cached::new(&json!({"paths": index_paths}));
    let bytes: usize = documents.values().map(|d| d.body.len()).sum();
    tracing::info!(
        documents = documents.len(),
        bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "built the OpenAPI v3 documents"
    );
    V3Documents { documents, index }
}

fn v2_document() -> Value {
    let defs = Definitions::build(Flavor::V2);
    let paths = paths::paths(catalog::all().iter(), &defs, Flavor::V2);
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths,
        "definitions": defs.schemas,
        "securityDefinitions": security_scheme(),
        "security": [{"BearerToken": []}],
    })
}

fn build_v2() -> Cached {
    let started = Instant::now();
    let cached = Cached::new(&v2_document());
    tracing::info!(
        bytes = cached.body.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "built the OpenAPI v2 document"
    );
    cached
}

fn build_v2_protobuf() -> Cached {
    let started = Instant::now();
    let cached = Cached::from_bytes(protobuf::encode_document(&v2_document()).into());
    tracing::info!(
        bytes = cached.body.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "built the OpenAPI v2 protobuf document"
    );
    cached
}

/// Initialises `cell` with `build` on a blocking thread, so the first request does not hold
/// up an async worker while the documents are built.
async fn built<T: Send + Sync>(cell: &'static OnceLock<T>, build: fn() -> T) -> &'static T {
    if let Some(value) = cell.get() {
        return value;
    }
    // A panic while building surfaces below, when the same build runs again.
    let _ = tokio::task::spawn_blocking(move || {
        cell.get_or_init(build);
    })
    .await;
    cell.get_or_init(build)
}

/// Whether the client accepts JSON (the only encoding served here).
fn accepts_json(headers: &HeaderMap) -> ApiResult<()> {
    if media_ranges(headers).iter().any(|r| r.matches("application/json")) {
        return Ok(());
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    Err(ApiError::not_acceptable(accept))
}

/// A document with its `ETag`, or a 304 when the client has it already.
fn respond(doc: &Cached, headers: &HeaderMap) -> Response<Body> {
    respond_as(doc, headers, "application/json")
}

fn respond_as(doc: &Cached, headers: &HeaderMap, content_type: &'static str) -> Response<Body> {
    let not_modified = doc.matches(headers);
    let mut resp = Response::new(if not_modified { Body::empty() } else { Body::from(doc.body.clone()) });
    *resp.status_mut() = if not_modified { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    let h = resp.headers_mut();
    if !not_modified {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    h.insert(header::ETAG, HeaderValue::from_str(&format!("\"{}\"", doc.etag)).expect("hex is a valid header"));
    resp
}

/// `GET /openapi/v2`: JSON, or protobuf when that is what the client prefers.
pub async fn v2(headers: &HeaderMap) -> ApiResult<Response<Body>> {
    let mut resp = None;
    for range in media_ranges(headers) {
        if range.matches("application/json") {
            resp = Some(respond(built(&V2, build_v2).await, headers));
            break;
        }
        if PROTOBUF_V2.contains(&range.essence.as_str()) {
            resp = Some(respond_as(built(&V2_PROTOBUF, build_v2_protobuf).await, headers, PROTOBUF_V2[1]));
            break;
        }
    }
    let Some(mut resp) = resp else {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        return Err(ApiError::not_acceptable(accept));
    };
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    Ok(resp)
}

/// `GET /openapi/v3`.
pub async fn v3_index(headers: &HeaderMap) -> ApiResult<Response<Body>> {
    let docs = built(&V3, build_v3).await;
    Ok(respond(&docs.index, headers))
}

/// `GET /openapi/v3/<key>` with the request's raw query string.
pub async fn v3_group_version(key: &str, query: Option<&str>, headers: &HeaderMap) -> ApiResult<Response<Body>> {
    let docs = built(&V3, build_v3).await;
    let doc = docs.documents.get(key.trim_matches('/')).ok_or_else(ApiError::no_route)?;
    accepts_json(headers)?;
    let hash = query.and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "hash").map(|(_, v)| v));
    let mut resp = match hash.as_deref() {
        Some(hash) if hash != doc.etag => {
            // An outdated link: send the client to the current document.
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
            let location = server_relative_url(key.trim_matches('/'), &doc.etag);
            resp.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("a valid path"));
            return Ok(resp);
        }
        Some(_) => {
            let mut resp = respond(doc, headers);
            let expires = (chrono::Utc::now() + chrono::Duration::days(365)).format("%a, %d %b %Y %H:%M:%S GMT");
            let h = resp.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
            h.insert(header::EXPIRES, HeaderValue::from_str(&expires.to_string()).expect("a valid date"));
            resp
        }
        None => respond(doc, headers),
    };
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(resp: Response<Body>) -> Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[tokio::test]
    async fn v3_index_and_documents() {
        let index = v3_index(&HeaderMap::new()).await.unwrap();
        assert_eq!(index.status(), StatusCode::OK);
        let etag = index.headers()[header::ETAG].to_str().unwrap().to_string();
        let index = body(index).await;
        let paths = index["paths"].as_object().unwrap();
        assert_eq!(paths.len(), schemas::served_group_versions().len());
        let apps = paths["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap().to_string();
        assert!(apps.starts_with("/openapi/v3/apis/apps/v1?hash="), "{apps}");
        assert!(paths["api/v1"]["serverRelativeURL"].as_str().unwrap().starts_with("/openapi/v3/api/v1?hash="));
        assert_eq!(v3_index(&with(header::IF_NONE_MATCH, &etag)).await.unwrap().status(), StatusCode::NOT_MODIFIED);

        let (path, query) = apps.split_once('?').unwrap();
        let key = path.trim_start_matches("/openapi/v3/");
        let resp = v3_group_version(key, Some(query), &with(header::ACCEPT, "application/json")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "public, immutable");
        assert!(resp.headers().contains_key(header::EXPIRES));
        let doc = body(resp).await;
        assert_eq!(doc["openapi"], "3.0.0");
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("io.k8s.api.apps.v1.Deployment"));
        assert!(schemas.contains_key("io.k8s.api.core.v1.PodSpec"));
        assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
        assert!(!schemas.contains_key("io.k8s.api.batch.v1.Job"));
        // Every reference in the document resolves inside it.
        let mut refs = Vec::new();
        schemas::collect_refs(&doc, Flavor::V3.ref_prefix(), &mut refs);
        for r in refs {
            assert!(schemas.contains_key(&r), "dangling {r}");
        }

        // Without a hash: no long-lived caching. With an old hash: a redirect.
        let plain = v3_group_version("apis/apps/v1", None, &HeaderMap::new()).await.unwrap();
        assert!(plain.headers().get(header::CACHE_CONTROL).is_none());
        let moved = v3_group_version("apis/apps/v1", Some("hash=0000"), &HeaderMap::new()).await.unwrap();
        assert_eq!(moved.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(moved.headers()[header::LOCATION], apps.as_str());
        let proto = with(header::ACCEPT, "application/com.github.proto-openapi.spec.v3.v1.0+protobuf");
        assert_eq!(v3_group_version("apis/apps/v1", None, &proto).await.unwrap_err().code, 406);
        assert_eq!(v3_group_version("apis/nope/v1", None, &HeaderMap::new()).await.unwrap_err().code, 404);
    }

    #[tokio::test]
    async fn v2_documents() {
        let proto = with(header::ACCEPT, "application/com.github.proto-openapi.spec.v2@v1.0+protobuf");
        let resp = v2(&proto).await.unwrap();
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/com.github.proto-openapi.spec.v2.v1.0+protobuf");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(bytes.len() > 100_000 && bytes.starts_with(b"\x0a\x032.0"), "{}", bytes.len());
        assert_eq!(v2(&with(header::ACCEPT, "text/html")).await.unwrap_err().code, 406);
        let resp = v2(&with(header::ACCEPT, "application/json")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let doc = body(resp).await;
        assert_eq!(doc["swagger"], "2.0");
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert!(doc["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
        assert!(doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"].is_object());
    }
}
