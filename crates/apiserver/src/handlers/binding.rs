//! `pods/binding`: assigns a pod to a node, as the scheduler does.

use crate::object::{self, from_kv, gr, to_bytes};
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx, json_response};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use http::Response;
use rudder_store::{Update, UpdateError, guaranteed_update};
use serde_json::{Value, json};

/// `POST .../pods/<name>/binding` with a `Binding` body.
pub async fn bind(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let res = req.resource;
    let name = req.name.clone().unwrap_or_default();
    let mut binding = ctx.validated_body("v1", "Binding").await?;
    crate::registry::check_type("Binding", "v1", &mut binding)?;
    let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or("").to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            &name,
            &[rudder_api::FieldError::required(&rudder_api::FieldPath::root("target").child("name"), "")],
        ));
    }
    let key = object::key(res, req.namespace.as_deref(), &name);
    if ctx.query.dry_run {
        return Ok(json_response(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ));
    }
    // What the last attempt handed the store (an attempt runs again when its write lost).
    let mut written: Option<bytes::Bytes> = None;
    let result = guaranteed_update(&*srv.store, &key, |kv| {
        if let Some(lost) = written.take() {
            srv.cache.unprime(&key, &lost);
        }
        let mut pod = from_kv(kv)?;
        if pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
            return Err(ApiError::conflict(gr(res), &name, "pod is being deleted, cannot be assigned to a host"));
        }
        let current = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
        if !current.is_empty() {
            return Err(ApiError::conflict(gr(res), &name, &format!("pod {name} is already assigned to node {current:?}")));
        }
        pod["spec"]["nodeName"] = json!(node);
        let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conditions: Vec<Value> =
            conditions.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
        conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": object::now()}));
        pod["status"]["conditions"] = json!(conditions);
        let bytes = to_bytes(&pod);
        srv.cache.prime(&key, &bytes, &pod);
        written = Some(bytes.clone());
        Ok(Update::Write(bytes))
    })
    .await;
    if let (Err(_), Some(lost)) = (&result, written) {
        srv.cache.unprime(&key, &lost);
    }
    match result {
        Ok(_) => Ok(json_response(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )),
        Err(UpdateError::Aborted(e)) => Err(e),
        Err(UpdateError::Store(e)) => Err(ApiError::from_store(e, gr(res), &name)),
    }
}
