//! API errors and their `metav1.Status` bodies, with upstream's reasons, codes and messages.
//!
//! Every handler returns [`ApiError`] on failure; [`ApiError::into_response`] renders it.
//! Storage errors are mapped in one place, [`ApiError::from_store`].

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use rudder_api::FieldError;
use serde_json::{Value, json};

/// The group and resource an error is about, as upstream prints them (`deployments.apps`).
#[derive(Clone, Copy, Debug)]
pub struct GroupResource<'a> {
    /// API group; empty for core.
    pub group: &'a str,
    /// Plural resource name.
    pub resource: &'a str,
}

impl std::fmt::Display for GroupResource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() { f.write_str(self.resource) } else { write!(f, "{}.{}", self.resource, self.group) }
    }
}

/// A failed request, rendered as a `Status` object.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Upstream's machine-readable reason, e.g. `NotFound`.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details`, when upstream gives them.
    pub details: Option<Value>,
    /// `metadata` of the Status (e.g. an inconsistent continue token).
    pub metadata: Option<Value>,
}

/// Result alias for request handling.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None, metadata: None }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 429 `TooManyRequests` (e.g. an eviction a disruption budget does not allow).
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message)
    }

    /// 404 for a named object: `configmaps "x" not found`.
    pub fn not_found(gr: GroupResource<'_>, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{gr} \"{name}\" not found"))
            .with_details(json!({"name": name, "group": gr.group, "kind": gr.resource}))
    }

    /// 404 for a path the server does not serve.
    pub fn no_route() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource").with_details(json!({}))
    }

    /// 409 `AlreadyExists`.
    pub fn already_exists(gr: GroupResource<'_>, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{gr} \"{name}\" already exists"))
            .with_details(json!({"name": name, "group": gr.group, "kind": gr.resource}))
    }

    /// 409 `Conflict` for a stale write.
    pub fn conflict(gr: GroupResource<'_>, name: &str, why: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {gr} \"{name}\": {why}"))
            .with_details(json!({"name": name, "group": gr.group, "kind": gr.resource}))
    }

    /// 409 `Conflict` because the object changed since the client read it.
    pub fn stale(gr: GroupResource<'_>, name: &str) -> Self {
        Self::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 `Invalid` with one cause per field error.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let joined = if list.len() == 1 { list[0].clone() } else { format!("[{}]", list.join(", ")) };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.error_type.reason(), "message": e.body(), "field": e.field}))
            .collect();
        let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        Self::new(422, "Invalid", format!("{qualified} \"{name}\" is invalid: {joined}"))
            .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 `Forbidden` about one object.
    pub fn forbidden(gr: GroupResource<'_>, name: &str, why: &str) -> Self {
        let subject = if name.is_empty() { format!("{gr}") } else { format!("{gr} \"{name}\"") };
        Self::new(403, "Forbidden", format!("{subject} is forbidden: {why}"))
            .with_details(json!({"name": name, "group": gr.group, "kind": gr.resource}))
    }

    /// 403 because the namespace is terminating (upstream's NamespaceLifecycle admission).
    pub fn namespace_terminating(gr: GroupResource<'_>, name: &str, namespace: &str) -> Self {
        let why = format!("unable to create new content in namespace {namespace} because it is being terminated");
        let mut e = Self::forbidden(gr, name, &why);
        e.details = Some(json!({
            "name": name, "group": gr.group, "kind": gr.resource,
            "causes": [{"reason": "NamespaceTerminating", "message": why, "field": "metadata.namespace"}]
        }));
        e
    }

    /// 405 `MethodNotAllowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            .with_details(json!({}))
    }

    /// 406 `NotAcceptable`.
    pub fn not_acceptable(accept: &str) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            format!("the server was unable to respond with a content type that the client supports (accept: {accept})"),
        )
    }

    /// 406 `NotAcceptable` when no media type of the `Accept` header can be served: upstream's
    /// "only the following media types are accepted: ..." with the types it can produce.
    pub fn not_acceptable_types(accepted: &[&str]) -> Self {
        Self::new(406, "NotAcceptable", format!("only the following media types are accepted: {}", accepted.join(", ")))
    }

    /// 406 `NotAcceptable` with a message of its own (a conversion the object does not allow).
    pub fn not_acceptable_because(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 410 `Expired` (a watch or list from a compacted revision).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 `RequestEntityTooLarge`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {limit}"))
    }

    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {} (got {content_type:?})",
                accepted.join(", ")
            ),
        )
    }

    /// 422 from a patch that applied but failed (e.g. a failing JSON-patch `test`).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 500 `InternalError`.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(500, "InternalError", format!("Internal error occurred: {message}"))
            .with_details(json!({"causes": [{"message": message}]}))
    }

    /// 503 `ServiceUnavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// 504 `Timeout`.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// Maps a storage error for the object `name` of `gr`.
    pub fn from_store(err: rudder_store::Error, gr: GroupResource<'_>, name: &str) -> Self {
        use rudder_store::Error as E;
        match err {
            E::NotFound(_) => Self::not_found(gr, name),
            E::AlreadyExists(_) => Self::already_exists(gr, name),
            E::Conflict { .. } => Self::stale(gr, name),
            E::Compacted { requested, compacted } => {
                Self::expired(format!("too old resource version: {requested} ({compacted})"))
            }
            E::FutureRevision { requested, current } => Self::timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            ))
            .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})),
            E::Closed => Self::unavailable("storage is shutting down"),
            E::WatcherLagged => Self::internal("watcher fell behind"),
            E::Backend(msg) => Self::internal(msg),
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": self.metadata.clone().unwrap_or_else(|| json!({})),
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut resp = Response::new(axum::body::Body::from(body));
        *resp.status_mut() = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

/// A successful `Status` (what upstream answers for some deletions).
pub fn success_status(gr: GroupResource<'_>, kind_plural: &str, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": gr.group, "kind": kind_plural, "uid": uid}
    })
}
