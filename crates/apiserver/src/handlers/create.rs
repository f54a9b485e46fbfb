//! POST: create an object.

use crate::object::{self, from_kv, from_storage, gr, meta_str, to_bytes, to_storage};
use crate::registry;
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use http::Response;
use rudder_api::catalog::Resource;
use serde_json::Value;

/// Upstream's NamespaceLifecycle admission: the namespace must exist and not be terminating.
pub async fn check_namespace(srv: &ApiServer, res: &Resource, namespace: &str, name: &str) -> ApiResult<()> {
    if !res.namespaced {
        return Ok(());
    }
    let key = format!("/registry/namespaces/{namespace}");
    let phase = match srv.cache.get(&key) {
        // A namespace's only `phase` is its status phase, and an unescaped `"phase":"…"` pair
        // cannot occur inside a string value: a byte search answers without decoding.
        Some(obj) => obj.raw_contains(br#""phase":"Terminating""#).then(|| "Terminating".to_string()),
        None => match srv.store.get(&key).await.map_err(|e| ApiError::from_store(e, gr(res), name))? {
            Some(kv) => from_kv(&kv)?.pointer("/status/phase").and_then(Value::as_str).map(str::to_string),
            None => {
                return Err(ApiError::not_found(
                    crate::status::GroupResource { group: "", resource: "namespaces" },
                    namespace,
                ));
            }
        },
    };
    if phase.as_deref() == Some("Terminating") {
        return Err(ApiError::namespace_terminating(gr(res), name, namespace));
    }
    Ok(())
}

/// Creates `obj` (served version, type-checked) and answers with the stored object.
pub async fn create_object(srv: &ApiServer, req: &ResourceRequest, obj: Value, dry_run: bool) -> ApiResult<Value> {
    let res = req.resource;
    let namespace = req.namespace.as_deref();
    let mut obj = obj;
    if res.group.is_empty() && res.plural == "pods" {
        crate::admission::pod_service_account(srv, namespace.unwrap_or("default"), &mut obj).await;
    }
    if res.group.is_empty() && res.plural == "services" && !dry_run {
        // Services get their cluster IP and node ports before defaulting and validation; a
        // failed create gives them back.
        let owner = format!("{}/{}", namespace.unwrap_or(""), meta_str(&obj, "name"));
        crate::services::allocate(srv, &mut obj, &owner).await?;
        let held = obj.clone();
        let created = create_prepared(srv, req, obj, dry_run).await;
        if created.is_err() {
            crate::services::release(srv, &held).await;
        }
        return created;
    }
    create_prepared(srv, req, obj, dry_run).await
}

/// Prepares (defaults, validates) and stores a new object.
async fn create_prepared(srv: &ApiServer, req: &ResourceRequest, obj: Value, dry_run: bool) -> ApiResult<Value> {
    let res = req.resource;
    let namespace = req.namespace.as_deref();
    let obj = registry::prepare_create(res, res.kind, namespace, obj)?;
    let name = meta_str(&obj, "name").to_string();
    if let Some(ns) = namespace {
        check_namespace(srv, res, ns, &name).await?;
    }
    let key = object::key(res, namespace, &name);
    if dry_run {
        // A dry run goes as far as the store would: an existing object still conflicts.
        if srv.store.get(&key).await.map_err(|e| ApiError::from_store(e, gr(res), &name))?.is_some() {
            return Err(ApiError::already_exists(gr(res), &name));
        }
        return Ok(obj);
    }
    let stored = to_storage(res, obj)?;
    let bytes = to_bytes(&stored);
    srv.cache.prime(&key, &bytes, &stored);
    let kv = match srv.store.create(&key, bytes.clone()).await {
        Ok(kv) => kv,
        Err(e) => {
            srv.cache.unprime(&key, &bytes);
            return Err(ApiError::from_store(e, gr(res), &name));
        }
    };
    // The stored bytes are exactly `stored`; only the revision is new.
    let mut created = stored;
    object::meta_mut(&mut created).insert("resourceVersion".into(), Value::String(kv.mod_revision.to_string()));
    from_storage(res, created)
}

/// A CertificateSigningRequest names who asked for it, as upstream's strategy does: the
/// authenticated user's name, uid, groups and extra replace whatever the body said, and a new
/// request has no status.
fn record_requester(obj: &mut Value, user: &crate::authn::User) {
    if !obj["spec"].is_object() {
        obj["spec"] = serde_json::json!({});
    }
    let spec = &mut obj["spec"];
    spec["username"] = Value::String(user.name.clone());
    spec["groups"] = serde_json::json!(user.groups);
    if user.uid.is_empty() {
        spec.as_object_mut().map(|o| o.remove("uid"));
    } else {
        spec["uid"] = Value::String(user.uid.clone());
    }
    if user.extra.is_empty() {
        spec.as_object_mut().map(|o| o.remove("extra"));
    } else {
        spec["extra"] = serde_json::json!(user.extra);
    }
    obj.as_object_mut().map(|o| o.remove("status"));
}

/// `POST .../<resource>`.
pub async fn create(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let res = req.resource;
    let out = crate::negotiate::for_request(ctx, crate::negotiate::Endpoint::WRITE)?;
    let mut obj = ctx.validated_body(&res.api_version(), res.kind).await?;
    registry::check_type(res.kind, &res.api_version(), &mut obj)?;
    if res.group == "certificates.k8s.io" && res.plural == "certificatesigningrequests" {
        record_requester(&mut obj, &ctx.user);
    }
    let created = create_object(srv, req, obj, ctx.query.dry_run).await?;
    crate::negotiate::respond_negotiated(&out, 201, &created)
}
