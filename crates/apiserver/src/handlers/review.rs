//! Review resources: objects that are created to ask a question and come back with the answer
//! in `status`; nothing is stored (authentication.k8s.io `tokenreviews`, `selfsubjectreviews`;
//! authorization.k8s.io `subjectaccessreviews`, `localsubjectaccessreviews`,
//! `selfsubjectaccessreviews`, `selfsubjectrulesreviews`).
//!
//! Token reviews go through the request authenticator (`authn`): static and service-account
//! tokens, for `spec.audiences` (default: the API server's); `status.audiences` are the
//! requested ones the token is valid for.
//!
//! Rudder has no authorizer yet: every authenticated user may do everything, so access
//! reviews answer `allowed: true` and say so in `reason`.

use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx, json_response};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use http::Response;
use serde_json::{Value, json};

/// The plurals handled here.
pub const REVIEWS: &[&str] = &[
    "tokenreviews",
    "selfsubjectreviews",
    "subjectaccessreviews",
    "localsubjectaccessreviews",
    "selfsubjectaccessreviews",
    "selfsubjectrulesreviews",
];

const ALLOWED_REASON: &str = "no authorizer is configured: every authenticated user is allowed";

/// `POST` of a review: answers it without storing anything.
pub async fn create(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let res = req.resource;
    let api_version = res.api_version();
    let mut obj = ctx.validated_body(&api_version, res.kind).await?;
    crate::registry::check_type(res.kind, &api_version, &mut obj)?;
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match res.plural {
        "tokenreviews" => {
            let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
            if token.is_empty() {
                return Err(invalid(res.group, res.kind, "spec.token", "Required value"));
            }
            // The audiences the caller wants the token to be for (default: the API server's).
            let wanted: Option<Vec<String>> = spec
                .get("audiences")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .filter(|a: &Vec<String>| !a.is_empty());
            let wanted = wanted.unwrap_or_else(|| crate::authn::API_AUDIENCES.iter().map(|s| s.to_string()).collect());
            match srv.authn.authenticate_token(token, Some(&wanted), srv).await {
                Ok(done) => json!({"authenticated": true, "user": done.user.user_info(), "audiences": done.audiences}),
                Err(why) => json!({"authenticated": false, "user": {}, "error": why}),
            }
        }
        "selfsubjectreviews" => json!({"userInfo": ctx.user.user_info()}),
        "selfsubjectrulesreviews" => {
            if spec.get("namespace").and_then(Value::as_str).unwrap_or("").is_empty() {
                return Err(invalid(res.group, res.kind, "spec.namespace", "Required value"));
            }
            json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            })
        }
        _ => {
            let has_resource = spec.get("resourceAttributes").is_some_and(Value::is_object);
            let has_non_resource = spec.get("nonResourceAttributes").is_some_and(Value::is_object);
            if has_resource == has_non_resource {
                return Err(invalid(
                    res.group,
                    res.kind,
                    "spec.resourceAttributes",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
            if res.plural == "subjectaccessreviews"
                && spec.get("user").and_then(Value::as_str).unwrap_or("").is_empty()
                && spec.get("groups").and_then(Value::as_array).is_none_or(|g| g.is_empty())
            {
                return Err(invalid(
                    res.group,
                    res.kind,
                    "spec.user",
                    "at least one of user or group must be specified",
                ));
            }
            if res.plural == "localsubjectaccessreviews" {
                let ns = spec.pointer("/resourceAttributes/namespace").and_then(Value::as_str).unwrap_or("");
                if ns != req.namespace.as_deref().unwrap_or("") {
                    return Err(invalid(
                        res.group,
                        res.kind,
                        "spec.resourceAttributes.namespace",
                        "must match metadata.namespace",
                    ));
                }
            }
            json!({"allowed": true, "reason": ALLOWED_REASON})
        }
    };
    obj["status"] = status;
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, _| k == "name" || k == "namespace" || k == "labels" || k == "annotations");
        if meta.is_empty() {
            obj["metadata"] = json!({"creationTimestamp": null});
        }
    } else {
        obj["metadata"] = json!({"creationTimestamp": null});
    }
    Ok(json_response(201, &obj))
}

fn invalid(group: &str, kind: &str, field: &str, detail: &str) -> ApiError {
    let mut e = ApiError::unprocessable(format!("{kind}.{group} \"\" is invalid: {field}: {detail}"));
    e.details =
        Some(json!({"kind": kind, "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}]}));
    e
}
