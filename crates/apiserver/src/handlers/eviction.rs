//! `POST .../pods/<name>/eviction`: deletes a pod unless that would break its
//! PodDisruptionBudget (429 TooManyRequests then, which `kubectl drain` retries).
//!
//! As upstream: a pod that is not running (Pending, Succeeded, Failed) or already being
//! deleted is deleted without looking at budgets; a pod covered by more than one budget cannot
//! be evicted (500); otherwise the budget's `status.disruptionsAllowed` must be positive, and it
//! is decremented (with the pod recorded in `status.disruptedPods`) before the pod is deleted.

use crate::handlers::delete::{self, Outcome};
use crate::handlers::get;
use crate::handlers::update::update_object;
use crate::object;
use crate::request::{ResourceRequest, Verb};
use crate::server::{ApiServer, Ctx, json_response};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use http::Response;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSelector;
use rudder_api::catalog;
use rudder_api::selectors::LabelSelector;
use serde_json::{Value, json};

/// `POST .../pods/<name>/eviction` with a policy/v1 `Eviction` body.
pub async fn evict(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let name = req.name.clone().unwrap_or_default();
    let namespace = req.namespace.clone().unwrap_or_default();
    let mut eviction = ctx.validated_body("policy/v1", "Eviction").await?;
    crate::registry::check_type("Eviction", "policy/v1", &mut eviction)?;
    let named = object::meta_str(&eviction, "name");
    if !named.is_empty() && named != name {
        return Err(ApiError::bad_request(format!("name in URL does not match name in Eviction object: {named}")));
    }
    let opts = delete::options_from(eviction.get("deleteOptions").filter(|v| v.is_object()), ctx)?;
    let pod_req = ResourceRequest {
        verb: Verb::Delete,
        resource: req.resource,
        namespace: req.namespace.clone(),
        name: req.name.clone(),
        subresource: None,
    };
    let pod = get::load(srv, &pod_req).await?;
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
    let deleting = pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
    if !deleting && !matches!(phase, "Pending" | "Succeeded" | "Failed") {
        check_budget(srv, &namespace, &pod, &name, ctx.query.dry_run).await?;
    }
    match delete::delete_one(srv, &pod_req, &name, &opts).await? {
        Outcome::Removed(_) | Outcome::Pending(_) => {}
    }
    Ok(json_response(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// Finds the budget covering `pod` and takes one disruption from it.
async fn check_budget(srv: &ApiServer, namespace: &str, pod: &Value, name: &str, dry_run: bool) -> ApiResult<()> {
    let pdbs = catalog::lookup("policy", "v1", "poddisruptionbudgets").expect("the catalog serves PDBs");
    let filter = crate::cache::Filter { prefix: object::prefix(pdbs, Some(namespace)), labels: None, fields: None };
    let mut covering = Vec::new();
    for item in srv.cache.list(&filter, None, usize::MAX).items {
        let pdb = item.value();
        // policy/v1: a null selector selects no pods, an empty one every pod of the namespace.
        let Some(selector) = pdb.pointer("/spec/selector").filter(|v| !v.is_null()) else { continue };
        let Ok(selector) = serde_json::from_value::<K8sSelector>(selector.clone()) else { continue };
        if LabelSelector::from_k8s(&selector).is_ok_and(|s| s.matches_value(pod)) {
            covering.push(pdb);
        }
    }
    let pdb = match covering.len() {
        0 => return Ok(()),
        1 => covering.remove(0),
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let pdb_name = object::meta_str(&pdb, "name").to_string();
    let pdb_req = ResourceRequest {
        verb: Verb::Update,
        resource: pdbs,
        namespace: Some(namespace.to_string()),
        name: Some(pdb_name.clone()),
        subresource: Some("status".into()),
    };
    let pod_name = name.to_string();
    update_object(srv, &pdb_req, dry_run, |current| {
        let generation = current.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        let observed = current.pointer("/status/observedGeneration").and_then(Value::as_i64).unwrap_or(0);
        if observed < generation {
            return Err(too_many(
                &pdb_name,
                "the disruption budget is still being processed by the server".to_string(),
            ));
        }
        let allowed = current.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0);
        if allowed <= 0 {
            let desired = current.pointer("/status/desiredHealthy").and_then(Value::as_i64).unwrap_or(0);
            let healthy = current.pointer("/status/currentHealthy").and_then(Value::as_i64).unwrap_or(0);
            return Err(too_many(
                &pdb_name,
                format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently"),
            ));
        }
        let mut next = current.clone();
        next["status"]["disruptionsAllowed"] = json!(allowed - 1);
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        if !next["status"]["disruptedPods"].is_object() {
            next["status"]["disruptedPods"] = json!({});
        }
        next["status"]["disruptedPods"][&pod_name] = json!(now);
        Ok(next)
    })
    .await?;
    Ok(())
}

fn too_many(pdb: &str, cause: String) -> ApiError {
    let mut e = ApiError::too_many_requests("Cannot evict pod as it would violate the pod's disruption budget.");
    e.details = Some(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}], "name": pdb}));
    e
}
