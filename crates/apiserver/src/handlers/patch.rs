//! PATCH with `application/json-patch+json` (RFC 6902, atomic) and
//! `application/merge-patch+json` (RFC 7386).

use crate::handlers::update::update_object;
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx, json_response};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use http::Response;
use serde_json::Value;

/// A parsed patch document.
pub enum Patch {
    /// RFC 6902 operations.
    Json(json_patch::Patch),
    /// RFC 7386 merge patch.
    Merge(Value),
}

/// Media types accepted for PATCH.
pub const PATCH_TYPES: &[&str] = &["application/json-patch+json", "application/merge-patch+json"];

impl Patch {
    /// Parses a patch body of the given media type.
    pub fn parse(content_type: &str, body: &[u8]) -> ApiResult<Patch> {
        match content_type {
            "application/json-patch+json" => {
                let ops: json_patch::Patch = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("the patch is not a valid JSON patch: {e}")))?;
                Ok(Patch::Json(ops))
            }
            "application/merge-patch+json" => {
                let v: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
                if !v.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                Ok(Patch::Merge(v))
            }
            other => Err(ApiError::unsupported_media_type(other, PATCH_TYPES)),
        }
    }

    /// Applies the patch to a copy of `original`.
    pub fn apply(&self, original: &Value) -> ApiResult<Value> {
        let mut doc = original.clone();
        match self {
            Patch::Json(ops) => {
                json_patch::patch(&mut doc, ops).map_err(|e| ApiError::unprocessable(e.to_string()))?;
            }
            Patch::Merge(p) => json_patch::merge(&mut doc, p),
        }
        if !doc.is_object() {
            return Err(ApiError::unprocessable("the patched document is not an object"));
        }
        Ok(doc)
    }

    /// Reads the patch of a request: its media type must be a supported patch type (415
    /// otherwise, before the body is read).
    pub async fn from_request(ctx: &mut Ctx) -> ApiResult<Patch> {
        let ct = ctx.content_type();
        if !PATCH_TYPES.contains(&ct.as_str()) {
            return Err(ApiError::unsupported_media_type(&ct, PATCH_TYPES));
        }
        let body = ctx.body_bytes().await?;
        Patch::parse(&ct, &body)
    }
}

/// `PATCH .../<resource>/<name>[/status]`.
pub async fn patch(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let patch = Patch::from_request(ctx).await?;
    let obj = update_object(srv, req, ctx.query.dry_run, |old| patch.apply(old)).await?;
    Ok(json_response(200, &obj))
}
