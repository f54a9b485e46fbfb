//! The request path: panic recovery → route → authentication → verb handler → response.
//!
//! Key type: [`ApiServer`], the state every handler shares. Handlers live in `handlers/`, one
//! verb per file; the write pipeline they share is in `registry.rs`.

use crate::authn::{Authenticator, User};
use crate::cache::WatchCache;
use crate::handlers;
use crate::request::{Query, Route, route};
use crate::serve::ConnInfo;
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use bytes::Bytes;
use futures::FutureExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use rudder_store::Storage;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// The largest request body accepted (upstream's 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// State shared by every request.
pub struct ApiServer {
    /// The store; only the API server touches it.
    pub store: Arc<dyn Storage>,
    /// The watch cache.
    pub cache: Arc<WatchCache>,
    /// Token authentication.
    pub authn: Authenticator,
    /// Turns true when the server starts shutting down; long requests end then.
    pub shutdown: watch::Receiver<bool>,
    /// Whether `/readyz` passes.
    pub ready: AtomicBool,
    /// `host:port` clients should use, for discovery's `serverAddressByClientCIDRs`.
    pub advertise: String,
    /// TLS towards kubelets (client certificate, cluster CA), for logs, exec, attach and
    /// port-forward.
    pub kubelet_tls: Option<Arc<rustls::ClientConfig>>,
    /// The cluster CA certificate (PEM), served at `/cacerts`.
    pub ca_cert_pem: String,
}

/// A request after routing and authentication.
pub struct Ctx {
    /// The query parameters.
    pub query: Query,
    /// Who is asking.
    pub user: User,
    /// Request headers.
    pub headers: http::HeaderMap,
    /// The body, not yet read (a connection's, or an in-process client's). In a mutex only so
    /// that a `Ctx` can be shared across awaits (bodies are `Send`, not `Sync`).
    pub body: Option<std::sync::Mutex<Body>>,
    /// Warnings for the client, sent as `Warning` headers with the response.
    pub warnings: Vec<String>,
    /// The raw query string (for options the generic [`Query`] does not read).
    pub raw_query: Option<String>,
    /// The connection's upgrade, for requests that switch protocols (exec, attach, port-forward).
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Ctx {
    /// Reads the whole body, refusing more than [`MAX_BODY`] (what is left of a refused body
    /// stays for [`drain`]).
    pub async fn body_bytes(&mut self) -> ApiResult<Bytes> {
        let Some(body) = self.body.take() else { return Ok(Bytes::new()) };
        let mut body = body.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > MAX_BODY {
                    self.body = Some(std::sync::Mutex::new(body));
                    return Err(ApiError::too_large(MAX_BODY));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    }

    /// The media type of the body, without parameters (`application/json` when absent).
    pub fn content_type(&self) -> String {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "application/json".into())
    }

    /// Reads an object body in any supported encoding (JSON, YAML, protobuf): 415 for other
    /// media types, before the body is read.
    pub async fn object_body(&mut self) -> ApiResult<crate::decode::Decoded> {
        let ct = self.content_type();
        if !crate::decode::BODY_TYPES.contains(&ct.as_str()) && ct != "*/*" {
            return Err(ApiError::unsupported_media_type(&ct, crate::decode::BODY_TYPES));
        }
        let bytes = self.body_bytes().await?;
        crate::decode::decode_body(&ct, &bytes)
    }

    /// Reads an object body and applies field validation for objects of `api_version`/`kind`
    /// (`fieldValidation`: unknown and duplicate fields refused or reported as warnings).
    /// A strict failure reads as upstream's decoder error for the kind.
    pub async fn validated_body(&mut self, api_version: &str, kind: &str) -> ApiResult<Value> {
        let decoded = self.object_body().await?;
        let validation = crate::decode::FieldValidation::from_query(self.query.field_validation.as_deref());
        crate::decode::check_fields(validation, &decoded, api_version, kind, &mut self.warnings).map_err(|mut e| {
            let version = api_version.rsplit('/').next().unwrap_or(api_version);
            e.message = format!("{kind} in version {version:?} cannot be handled as a {kind}: {}", e.message);
            e
        })?;
        Ok(decoded.value)
    }

    /// Reads the body as a JSON object (the content type must be JSON).
    pub async fn json_body(&mut self) -> ApiResult<Value> {
        let ct = self.content_type();
        if ct != "application/json" && ct != "*/*" {
            return Err(ApiError::unsupported_media_type(&ct, &["application/json"]));
        }
        let bytes = self.body_bytes().await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request("the request body is empty; an object was expected"));
        }
        decode_json(&bytes)
    }
}

/// How much of an unread request body is read and discarded before answering; beyond it the
/// connection is simply closed.
const DRAIN_LIMIT: usize = 4 * MAX_BODY;
/// How long reading an unread request body may take before answering anyway.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and discards what a handler left of a request body (an early error, a refused
/// oversized body), within [`DRAIN_LIMIT`] and [`DRAIN_TIME`]. Closing a connection with
/// unread data makes the kernel reset it, and the client would lose the answer; a drained
/// HTTP/1.1 connection also stays usable for the next request.
async fn drain(mut body: Body) {
    let mut seen = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}

/// Parses JSON, reporting errors as upstream's decoder does (400).
pub fn decode_json(bytes: &[u8]) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    Ok(v)
}

/// A JSON response.
pub fn json_response(code: u16, body: &Value) -> Response<Body> {
    bytes_response(code, Bytes::from(serde_json::to_vec(body).expect("JSON values always encode")))
}

/// A response whose body is already JSON.
pub fn bytes_response(code: u16, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text_response(code: u16, text: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    resp
}

impl ApiServer {
    /// Handles one request; never panics outward (a panic becomes a 500 Status).
    pub async fn handle(self: Arc<Self>, req: Request<Body>, conn: Arc<ConnInfo>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let fut = std::panic::AssertUnwindSafe(self.clone().dispatch(req, conn)).catch_unwind();
        let mut resp = match fut.await {
            Ok(Ok(resp)) => resp,
            Ok(Err(err)) => axum::response::IntoResponse::into_response(err),
            Err(_) => {
                tracing::error!(%method, %path, "request handler panicked");
                axum::response::IntoResponse::into_response(ApiError::internal("the server hit an unexpected error"))
            }
        };
        if method == http::Method::HEAD {
            *resp.body_mut() = Body::empty();
        }
        tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
        resp
    }

    /// The user of a request: its bearer token (static or service-account, see `authn`),
    /// else its client certificate. Service-account tokens are checked against the watch
    /// cache (`handlers::token` implements `authn::BoundObjects` for the server).
    async fn authenticate(&self, headers: &http::HeaderMap, conn: &ConnInfo) -> Option<User> {
        if let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        {
            return match self.authn.authenticate_token(token.trim(), None, self).await {
                Ok(done) => Some(done.user),
                Err(why) => {
                    tracing::debug!(%why, "bearer token refused");
                    None
                }
            };
        }
        conn.cert_user.clone()
    }

    async fn dispatch(self: Arc<Self>, req: Request<Body>, conn: Arc<ConnInfo>) -> ApiResult<Response<Body>> {
        let (parts, body) = req.into_parts();
        let mut unread = Some(body);
        let result = self.serve_request(parts, &mut unread, &conn).await;
        if let Some(body) = unread {
            drain(body).await;
        }
        result
    }

    /// Routes, authenticates and serves one request. A body the handler leaves unread stays
    /// in `body` for [`drain`].
    async fn serve_request(
        &self,
        mut parts: http::request::Parts,
        body: &mut Option<Body>,
        conn: &ConnInfo,
    ) -> ApiResult<Response<Body>> {
        let query = Query::parse(parts.uri.query())?;
        let route = route(&parts.method, parts.uri.path(), query.watch);
        let verbose =
            parts.uri.query().is_some_and(|q| q.split('&').any(|p| p == "verbose" || p.starts_with("verbose=")));
        match &route {
            Ok(Route::Health(which)) => return Ok(self.health(which, verbose)),
            Ok(Route::CaCerts) => return Ok(text_response(200, self.ca_cert_pem.clone())),
            Ok(Route::Version) if !matches!(parts.method, http::Method::GET | http::Method::HEAD) => {
                return Err(ApiError::method_not_allowed());
            }
            Ok(Route::Version) => {
                // Upstream indents this one document.
                let body = serde_json::to_vec_pretty(&handlers::discovery::version()).expect("JSON values encode");
                return Ok(bytes_response(200, Bytes::from(body)));
            }
            _ => {}
        }
        let Some(user) = self.authenticate(&parts.headers, conn).await else {
            return Err(ApiError::unauthorized());
        };
        let route = route?;
        // Discovery documents are only read.
        let read_only = matches!(parts.method, http::Method::GET | http::Method::HEAD);
        let document = |doc: ApiResult<Value>| match doc {
            Ok(v) if read_only => Ok(json_response(200, &v)),
            Ok(_) => Err(ApiError::method_not_allowed()),
            Err(e) => Err(e),
        };
        let raw_query = parts.uri.query().map(str::to_string);
        let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let mut ctx = Ctx {
            query,
            user,
            headers: parts.headers,
            body: body.take().map(std::sync::Mutex::new),
            warnings: Vec::new(),
            raw_query,
            upgrade,
        };
        let result = match route {
            Route::Health(_) | Route::Version | Route::CaCerts => unreachable!("answered before authentication"),
            Route::LegacyRoot | Route::GroupsRoot if !read_only => Err(ApiError::method_not_allowed()),
            Route::LegacyRoot => Ok(handlers::discovery::root(true, &ctx.headers, &self.advertise)),
            Route::GroupsRoot => Ok(handlers::discovery::root(false, &ctx.headers, &self.advertise)),
            Route::OpenApiV2 | Route::OpenApiV3 | Route::OpenApiV3Document(_) if !read_only => {
                Err(ApiError::method_not_allowed())
            }
            Route::OpenApiV2 => crate::openapi::v2(&ctx.headers).await,
            Route::OpenApiV3 => crate::openapi::v3_index(&ctx.headers).await,
            Route::OpenApiV3Document(key) => {
                crate::openapi::v3_group_version(&key, parts.uri.query(), &ctx.headers).await
            }
            Route::Group(g) => document(handlers::discovery::group(&g, &self.advertise)),
            Route::GroupVersion(g, v) => document(handlers::discovery::group_version(&g, &v)),
            Route::Resource(r) => handlers::handle(self, r, &mut ctx).await,
        };
        *body = ctx.body.take().map(|b| b.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()));
        result.map(|mut resp| {
            for w in &ctx.warnings {
                if let Ok(v) = HeaderValue::from_str(&crate::decode::warning_header(w)) {
                    resp.headers_mut().append(header::WARNING, v);
                }
            }
            resp
        })
    }

    fn health(&self, which: &str, verbose: bool) -> Response<Body> {
        let top = which.split('/').next().unwrap_or("healthz");
        let shutting_down = *self.shutdown.borrow();
        let ready = self.ready.load(Ordering::Acquire) && !shutting_down;
        let mut checks: Vec<(&str, bool)> = vec![("ping", true), ("log", true), ("etcd", true)];
        if top == "readyz" {
            checks.push(("informer-sync", self.ready.load(Ordering::Acquire)));
            checks.push(("shutdown", !shutting_down));
        }
        if let Some(single) = which.split('/').nth(1) {
            return match checks.iter().find(|(n, _)| *n == single) {
                Some((_, true)) => text_response(200, "ok".into()),
                Some((_, false)) => text_response(500, format!("internal server error: {single} check failed")),
                None => text_response(404, "404 page not found".into()),
            };
        }
        let ok = checks.iter().all(|(_, ok)| *ok) && (top != "readyz" || ready);
        if !verbose {
            return if ok {
                text_response(200, "ok".into())
            } else {
                text_response(500, format!("{top} check failed"))
            };
        }
        let mut out = String::new();
        for (name, pass) in &checks {
            out.push_str(&format!(
                "[{}]{} {}\n",
                if *pass { "+" } else { "-" },
                name,
                if *pass { "ok" } else { "failed" }
            ));
        }
        if ok {
            out.push_str(&format!("{top} check passed\n"));
            text_response(200, out)
        } else {
            out.push_str(&format!("{top} check failed\n"));
            text_response(500, out)
        }
    }
}
