//! PATCH with `application/json-patch+json` (RFC 6902, atomic),
//! `application/merge-patch+json` (RFC 7386) and `application/strategic-merge-patch+json`
//! (upstream's strategic merge patch, [`rudder_api::strategic`], with the patch markers of
//! the kind the URL addresses). Server-side apply (`application/apply-patch+yaml`) is not
//! served: 415, as upstream answers with the feature off.

use crate::decode::FieldValidation;
use crate::handlers::update::update_object;
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use http::Response;
use rudder_api::schema::{self, Message};
use rudder_api::strategic::{self, StrategicError};
use serde_json::Value;

/// A parsed patch document.
pub enum Patch {
    /// RFC 6902 operations.
    Json(json_patch::Patch),
    /// RFC 7386 merge patch.
    Merge(Value),
    /// Strategic merge patch (a JSON object).
    Strategic(Value),
}

/// Media types accepted for PATCH, in upstream's order.
pub const PATCH_TYPES: &[&str] =
    &["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"];

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
            "application/strategic-merge-patch+json" => {
                let v: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
                // Upstream decodes the patch into a map: `null` is an empty patch, anything
                // else that is not an object is refused.
                let kind = match &v {
                    Value::Object(_) => return Ok(Patch::Strategic(v)),
                    Value::Null => return Ok(Patch::Strategic(Value::Object(Default::default()))),
                    Value::Array(_) => "array",
                    Value::String(_) => "string",
                    Value::Number(_) => "number",
                    Value::Bool(_) => "bool",
                };
                Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
                )))
            }
            other => Err(ApiError::unsupported_media_type(other, PATCH_TYPES)),
        }
    }

    /// Applies the patch to a copy of `original`. `schema` is the message of the object's
    /// kind ([`schema_for`]); only strategic merge patches use it.
    pub fn apply(&self, original: &Value, schema: Option<&'static Message>) -> ApiResult<Value> {
        let doc = match self {
            Patch::Json(ops) => {
                let mut doc = original.clone();
                json_patch::patch(&mut doc, ops).map_err(|e| ApiError::unprocessable(e.to_string()))?;
                doc
            }
            Patch::Merge(p) => {
                let mut doc = original.clone();
                json_patch::merge(&mut doc, p);
                doc
            }
            Patch::Strategic(p) => strategic::apply(original, p, schema).map_err(strategic_error)?,
        };
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

/// The schema a patch of this request applies with: the subresource's kind when it has its
/// own (`scale` speaks autoscaling/v1 `Scale`; `status` is the parent's kind), else the
/// resource's.
pub fn schema_for(req: &ResourceRequest) -> Option<&'static Message> {
    let res = req.resource;
    match req.subresource.as_deref().and_then(|name| res.subresource(name)) {
        Some(sub) if sub.group.is_empty() => schema::for_kind(sub.version, sub.kind),
        Some(sub) => schema::for_kind(&format!("{}/{}", sub.group, sub.version), sub.kind),
        None => schema::for_kind(&res.api_version(), res.kind),
    }
}

/// Upstream answers 400 for malformed patches and 422 for patches it cannot merge.
fn strategic_error(e: StrategicError) -> ApiError {
    if e.is_bad_request() { ApiError::bad_request(e.message()) } else { ApiError::unprocessable(e.message()) }
}

/// `PATCH .../<resource>/<name>[/status]`.
pub async fn patch(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let out = crate::negotiate::for_request(ctx, crate::negotiate::Endpoint::WRITE)?;
    let patch = Patch::from_request(ctx).await?;
    let schema = schema_for(req);
    let validation = FieldValidation::from_query(ctx.query.field_validation.as_deref());
    let mut unknown = Vec::new();
    let obj = update_object(srv, req, ctx.query.dry_run, |old| {
        let patched = patch.apply(old, schema)?;
        // Fields the schema does not know can only have come from the patch.
        if let Some(msg) = schema.filter(|_| validation != FieldValidation::Ignore) {
            unknown = crate::decode::unknown_fields(&patched, msg);
            if validation == FieldValidation::Strict && !unknown.is_empty() {
                let list: Vec<String> = unknown.iter().map(|p| format!("unknown field {p:?}")).collect();
                return Err(ApiError::bad_request(format!("strict decoding error: {}", list.join(", "))));
            }
        }
        Ok(patched)
    })
    .await?;
    ctx.warnings.extend(unknown.iter().map(|p| format!("unknown field {p:?}")));
    crate::negotiate::respond_negotiated(&out, 200, &obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_patches_parse_and_apply() {
        let deployment = schema::for_kind("apps/v1", "Deployment");
        let original = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.25"},
            {"name": "sidecar", "image": "busybox"},
        ]}}}});
        let body = br#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}}}"#;
        let patch = Patch::parse("application/strategic-merge-patch+json", body).unwrap();
        let patched = patch.apply(&original, deployment).unwrap();
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox"}])
        );
        // A merge patch of the same body replaces the list.
        let merge = Patch::parse("application/merge-patch+json", body).unwrap();
        let merged = merge.apply(&original, deployment).unwrap();
        assert_eq!(merged["spec"]["template"]["spec"]["containers"], json!([{"name": "web", "image": "nginx:1.27"}]));

        let empty = Patch::parse("application/strategic-merge-patch+json", b"null").unwrap();
        assert_eq!(empty.apply(&original, deployment).unwrap(), original);
    }

    #[test]
    fn strategic_patch_errors() {
        let deployment = schema::for_kind("apps/v1", "Deployment");
        let ct = "application/strategic-merge-patch+json";
        assert_eq!(Patch::parse(ct, b"[1]").err().unwrap().code, 400);
        assert_eq!(Patch::parse(ct, b"{").err().unwrap().code, 400);

        let original = json!({"spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}});
        let missing_key =
            Patch::parse(ct, br#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#).unwrap();
        let err = missing_key.apply(&original, deployment).unwrap_err();
        assert_eq!((err.code, err.reason), (400, "BadRequest"));
        assert_eq!(err.message, "map: map[image:x] does not contain declared merge key: name");

        let with_finalizers = json!({"metadata": {"finalizers": []}});
        let lists = Patch::parse(ct, br#"{"metadata":{"finalizers":[["a"]]}}"#).unwrap();
        assert_eq!(lists.apply(&with_finalizers, deployment).unwrap_err().code, 422);
    }

    #[test]
    fn server_side_apply_is_unsupported() {
        let err = Patch::parse("application/apply-patch+yaml", b"{}").err().unwrap();
        assert_eq!(err.code, 415);
        assert!(err.message.contains("application/strategic-merge-patch+json"), "{}", err.message);
    }
}
