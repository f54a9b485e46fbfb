//! The `scale` subresource (autoscaling/v1 `Scale`) of deployments, replicasets,
//! statefulsets and replicationcontrollers.

use crate::handlers::get;
use crate::handlers::patch::{Patch, schema_for};
use crate::handlers::update::update_object;
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx, json_response};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use http::Response;
use rudder_api::selectors::LabelSelector;
use rudder_api::{FieldError, FieldPath};
use serde_json::{Value, json};

fn selector_string(obj: &Value) -> String {
    let Some(sel) = obj.pointer("/spec/selector") else { return String::new() };
    if sel.get("matchLabels").is_some() || sel.get("matchExpressions").is_some() {
        serde_json::from_value(sel.clone())
            .ok()
            .and_then(|s| LabelSelector::from_k8s(&s).ok())
            .map(|s| s.to_string())
            .unwrap_or_default()
    } else if let Some(m) = sel.as_object() {
        // ReplicationControllers select with a plain map.
        let mut parts: Vec<String> = m.iter().filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}"))).collect();
        parts.sort();
        parts.join(",")
    } else {
        String::new()
    }
}

/// The `Scale` view of a scalable object.
pub fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(obj),
        },
    })
}

/// `GET .../scale`.
pub async fn get(srv: &ApiServer, req: &ResourceRequest) -> ApiResult<Response<Body>> {
    Ok(json_response(200, &scale_of(&get::load(srv, req).await?)))
}

fn apply_scale(req: &ResourceRequest, old: &Value, scale: &Value) -> ApiResult<Value> {
    let name = req.name.as_deref().unwrap_or_default();
    if let Some(k) = scale.get("kind").and_then(Value::as_str)
        && k != "Scale"
    {
        return Err(ApiError::bad_request(format!("Scale in version \"v1\" cannot be handled as a {k}")));
    }
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    let n = replicas.as_i64().filter(|n| *n >= 0 && *n <= i64::from(i32::MAX)).ok_or_else(|| {
        ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            &[FieldError::invalid(
                &FieldPath::root("spec").child("replicas"),
                replicas.clone(),
                "must be greater than or equal to 0",
            )],
        )
    })?;
    let mut new = old.clone();
    if !new.get("spec").is_some_and(Value::is_object) {
        new["spec"] = json!({});
    }
    new["spec"]["replicas"] = json!(n);
    let rv = scale.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
    crate::object::meta_mut(&mut new).insert("resourceVersion".into(), rv);
    Ok(new)
}

/// `PUT .../scale`.
pub async fn update(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let scale = ctx.json_body().await?;
    let obj = update_object(srv, req, ctx.query.dry_run, |old| apply_scale(req, old, &scale)).await?;
    Ok(json_response(200, &scale_of(&obj)))
}

/// `PATCH .../scale`: the patch applies to the `Scale`, whose replicas then go to the object.
pub async fn patch(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let patch = Patch::from_request(ctx).await?;
    let schema = schema_for(req);
    let obj = update_object(srv, req, ctx.query.dry_run, |old| {
        let patched = patch.apply(&scale_of(old), schema)?;
        apply_scale(req, old, &patched)
    })
    .await?;
    Ok(json_response(200, &scale_of(&obj)))
}
