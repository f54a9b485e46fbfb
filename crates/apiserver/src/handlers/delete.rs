//! DELETE of one object and of a collection.
//!
//! As upstream's generic registry: preconditions (uid, resourceVersion) are checked first;
//! `propagationPolicy` adds the `orphan` or `foregroundDeletion` finalizer for the garbage
//! collector; an object with finalizers (or a namespace, or a pod on a node with a grace
//! period) only gets `deletionTimestamp` and stays until its finalizers are gone; anything
//! else is removed at once.

use crate::handlers::list;
use crate::object::{self, from_kv, from_storage, gr, now};
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx, bytes_response};
use crate::status::{ApiError, ApiResult, success_status};
use axum::body::Body;
use bytes::Bytes;
use http::Response;
use rudder_store::{Update, UpdateError, guaranteed_update};
use serde_json::{Value, json};

/// DeleteOptions from the body and the query.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    grace_period: Option<i64>,
    uid: Option<String>,
    resource_version: Option<String>,
    propagation: Option<String>,
    dry_run: bool,
}

fn parse_options(body: &[u8], ctx: &Ctx) -> ApiResult<DeleteOptions> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return options_from(None, ctx);
    }
    // Typed clients send DeleteOptions as protobuf, others as JSON.
    let v = crate::decode::decode_body(&ctx.content_type(), body)
        .map_err(|e| ApiError::bad_request(format!("the DeleteOptions body cannot be decoded: {}", e.message)))?
        .value;
    options_from(Some(&v), ctx)
}

/// DeleteOptions from a decoded body (if any) and the query.
pub fn options_from(body: Option<&Value>, ctx: &Ctx) -> ApiResult<DeleteOptions> {
    let mut o = DeleteOptions {
        grace_period: ctx.query.grace_period_seconds,
        propagation: ctx.query.propagation_policy.clone(),
        dry_run: ctx.query.dry_run,
        ..Default::default()
    };
    if ctx.query.orphan_dependents == Some(true) && o.propagation.is_none() {
        o.propagation = Some("Orphan".into());
    }
    if let Some(v) = body {
        let Some(m) = v.as_object() else { return Err(ApiError::bad_request("DeleteOptions must be a JSON object")) };
        if let Some(k) = m.get("kind").and_then(Value::as_str)
            && k != "DeleteOptions"
        {
            return Err(ApiError::bad_request(format!("DeleteOptions in version \"v1\" cannot be handled as a {k}")));
        }
        if let Some(g) = m.get("gracePeriodSeconds") {
            o.grace_period =
                Some(g.as_i64().ok_or_else(|| ApiError::bad_request("gracePeriodSeconds must be an integer"))?);
        }
        if let Some(p) = m.get("preconditions").and_then(Value::as_object) {
            o.uid = p.get("uid").and_then(Value::as_str).map(str::to_string);
            o.resource_version = p.get("resourceVersion").and_then(Value::as_str).map(str::to_string);
        }
        if let Some(p) = m.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation = Some(p.to_string());
        }
        if m.get("orphanDependents").and_then(Value::as_bool) == Some(true) && o.propagation.is_none() {
            o.propagation = Some("Orphan".into());
        }
        if let Some(d) = m.get("dryRun").and_then(Value::as_array) {
            for x in d {
                match x.as_str() {
                    Some("All") => o.dry_run = true,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "Invalid dry run value {other:?}: supported values: \"All\""
                        )));
                    }
                }
            }
        }
    }
    if let Some(p) = &o.propagation
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            &[rudder_api::FieldError::not_supported(
                &rudder_api::FieldPath::root("propagationPolicy"),
                p.as_str(),
                &["Foreground", "Background", "Orphan", "nil"],
            )],
        ));
    }
    if o.grace_period.is_some_and(|g| g < 0) {
        o.grace_period = Some(0);
    }
    Ok(o)
}

fn is_service(res: &rudder_api::catalog::Resource) -> bool {
    res.group.is_empty() && res.plural == "services"
}

/// Resources whose DELETE answers with the object rather than a `Status` (upstream's
/// `ReturnDeletedObject`).
fn returns_object(plural: &str) -> bool {
    matches!(plural, "pods" | "serviceaccounts" | "storageclasses")
}

pub enum Outcome {
    /// Removed from the store; the last state.
    Removed(Value),
    /// Still there, marked for deletion.
    Pending(Value),
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

pub async fn delete_one(
    srv: &ApiServer,
    req: &ResourceRequest,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<Outcome> {
    let res = req.resource;
    let key = object::key(res, req.namespace.as_deref(), name);
    loop {
        let kv = crate::handlers::get::load_stored(srv, res, &key, name).await?;
        let obj = from_kv(&kv)?;
        let uid = object::meta_str(&obj, "uid");
        if let Some(want) = opts.uid.as_deref().filter(|u| !u.is_empty())
            && want != uid
        {
            return Err(ApiError::conflict(
                gr(res),
                name,
                &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
            ));
        }
        if let Some(want) = opts.resource_version.as_deref().filter(|r| !r.is_empty())
            && want != kv.mod_revision.to_string()
        {
            return Err(ApiError::conflict(
                gr(res),
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                    kv.mod_revision
                ),
            ));
        }
        // Work out the finalizers and whether the object must linger.
        let mut new = obj.clone();
        let mut fins = finalizers(&obj);
        match opts.propagation.as_deref() {
            Some("Orphan") => {
                fins.retain(|f| f != "foregroundDeletion");
                if !fins.iter().any(|f| f == "orphan") {
                    fins.push("orphan".into());
                }
            }
            Some("Foreground") => {
                fins.retain(|f| f != "orphan");
                if !fins.iter().any(|f| f == "foregroundDeletion") {
                    fins.push("foregroundDeletion".into());
                }
            }
            Some("Background") => fins.retain(|f| f != "orphan" && f != "foregroundDeletion"),
            _ => {}
        }
        let already_deleting = obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
        let is_namespace = res.group.is_empty() && res.plural == "namespaces";
        let ns_finalizers = obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        if is_namespace && already_deleting && ns_finalizers {
            // Upstream's namespace REST: a repeated delete of a namespace that is still being
            // emptied is refused until its spec finalizers are gone.
            return Err(ApiError::conflict(
                gr(res),
                name,
                "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
            ));
        }
        let pod_grace = if res.group.is_empty() && res.plural == "pods" {
            let on_node = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
            let terminal = matches!(obj.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
            let default = obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
            let grace = opts.grace_period.unwrap_or(default);
            if on_node && !terminal && grace > 0 { Some(grace) } else { None }
        } else {
            None
        };
        let linger = !fins.is_empty() || (is_namespace && ns_finalizers) || pod_grace.is_some();
        if !linger {
            if opts.dry_run {
                return Ok(Outcome::Removed(from_storage(res, obj)?));
            }
            match srv.store.delete(&key, Some(kv.mod_revision)).await {
                Ok(deleted) => {
                    let gone = from_storage(res, from_kv(&deleted)?)?;
                    if is_service(res) {
                        crate::services::release(srv, &gone).await;
                    }
                    return Ok(Outcome::Removed(gone));
                }
                Err(rudder_store::Error::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, gr(res), name)),
            }
        }
        {
            let meta = object::meta_mut(&mut new);
            if !already_deleting {
                meta.insert("deletionTimestamp".into(), json!(now()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(pod_grace.unwrap_or(0)));
            } else if let Some(g) = pod_grace {
                // A shorter grace period may replace a longer one.
                let current = meta.get("deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(g);
                meta.insert("deletionGracePeriodSeconds".into(), json!(current.min(g)));
            }
            if fins.is_empty() {
                meta.remove("finalizers");
            } else {
                meta.insert("finalizers".into(), json!(fins));
            }
        }
        if is_namespace {
            new["status"] = json!({"phase": "Terminating"});
        }
        if new == obj {
            return Ok(Outcome::Pending(from_storage(res, obj)?));
        }
        if opts.dry_run {
            return Ok(Outcome::Pending(from_storage(res, new)?));
        }
        let bytes = object::to_bytes(&new);
        srv.cache.prime(&key, &bytes, &new);
        let result = guaranteed_update::<ApiError, _>(&*srv.store, &key, |current| {
            if current.mod_revision != kv.mod_revision {
                return Err(ApiError::stale(gr(res), name));
            }
            Ok(Update::Write(Bytes::clone(&bytes)))
        })
        .await;
        if result.is_err() {
            srv.cache.unprime(&key, &bytes);
        }
        match result {
            Ok(kv) => return Ok(Outcome::Pending(from_storage(res, from_kv(&kv)?)?)),
            Err(UpdateError::Aborted(_)) => continue,
            Err(UpdateError::Store(e)) => return Err(ApiError::from_store(e, gr(res), name)),
        }
    }
}

/// Namespaces that can never be deleted.
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// `DELETE .../<resource>/<name>`.
pub async fn delete(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let res = req.resource;
    let name = req.name.clone().unwrap_or_default();
    let out = crate::negotiate::for_request(ctx, crate::negotiate::Endpoint::WRITE)?;
    let body = ctx.body_bytes().await?;
    let opts = parse_options(&body, ctx)?;
    if res.group.is_empty() && res.plural == "namespaces" && IMMORTAL_NAMESPACES.contains(&name.as_str()) {
        // Upstream's NamespaceLifecycle admission keeps the system namespaces.
        return Err(ApiError::forbidden(gr(res), &name, "this namespace may not be deleted"));
    }
    match delete_one(srv, req, &name, &opts).await? {
        Outcome::Pending(obj) => crate::negotiate::respond_negotiated(&out, 200, &obj),
        Outcome::Removed(obj) if returns_object(res.plural) => crate::negotiate::respond_negotiated(&out, 200, &obj),
        Outcome::Removed(obj) => {
            let uid = object::meta_str(&obj, "uid").to_string();
            crate::negotiate::respond_negotiated(&out, 200, &success_status(gr(res), res.plural, &name, &uid))
        }
    }
}

/// `DELETE .../<resource>` with selectors: deletes each matching object; answers with the list
/// of what was deleted or marked for deletion.
pub async fn delete_collection(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let res = req.resource;
    let body = ctx.body_bytes().await?;
    let opts = parse_options(&body, ctx)?;
    let targets = list::all_matching(srv, req, ctx).await?;
    let mut items = Vec::new();
    for obj in targets {
        let v = obj.value();
        let name = object::meta_str(&v, "name").to_string();
        let ns = object::meta_str(&v, "namespace").to_string();
        let one = ResourceRequest {
            verb: req.verb,
            resource: res,
            namespace: if res.namespaced { Some(ns) } else { None },
            name: Some(name.clone()),
            subresource: None,
        };
        match delete_one(srv, &one, &name, &opts).await {
            Ok(Outcome::Removed(o)) | Ok(Outcome::Pending(o)) => {
                items.push(list::Item::Encoded(Bytes::from(serde_json::to_vec(&o).expect("JSON values encode"))))
            }
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let page = list::Page { items, revision: srv.store.current_revision(), continue_token: None, remaining: None };
    Ok(bytes_response(200, list::encode_list(res, &page)))
}
