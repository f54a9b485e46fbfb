//! PUT: replace an object (or its `status`, or a namespace's `finalize` list).

use crate::handlers::create;
use crate::object::{self, from_kv, from_storage, gr, meta_str, to_bytes, to_storage};
use crate::registry;
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use bytes::Bytes;
use http::Response;
use rudder_store::{Update, UpdateError, guaranteed_update};
use serde_json::Value;

/// Resources whose PUT creates a missing object (upstream's `AllowCreateOnUpdate`).
fn create_on_update(plural: &str) -> bool {
    matches!(plural, "endpoints" | "limitranges" | "events")
}

/// Replaces an object through a compare-and-swap loop. `make_new` computes the client's new
/// object from the current one (served version); it runs again whenever another writer got
/// in first. Returns the stored object (or, for `dry_run`, what would be stored).
pub async fn update_object<F>(srv: &ApiServer, req: &ResourceRequest, dry_run: bool, make_new: F) -> ApiResult<Value>
where
    F: FnMut(&Value) -> ApiResult<Value> + Send,
{
    update_object_encoded(srv, req, dry_run, make_new).await.map(|u| u.object)
}

/// An object [`update_object_encoded`] stored.
pub struct Updated {
    /// The object (served version).
    pub object: Value,
    /// Its JSON as `serde_json` writes it, when known without encoding the object again.
    pub json: Option<Bytes>,
}

/// [`update_object`], with the JSON of the result when the write already made it.
pub async fn update_object_encoded<F>(
    srv: &ApiServer,
    req: &ResourceRequest,
    dry_run: bool,
    mut make_new: F,
) -> ApiResult<Updated>
where
    F: FnMut(&Value) -> ApiResult<Value> + Send,
{
    let res = req.resource;
    if res.group.is_empty() && res.plural == "services" && req.subresource.is_none() {
        let object = update_service(srv, req, dry_run, make_new).await?;
        return Ok(Updated { object, json: None });
    }
    update_prepared(srv, req, dry_run, &mut make_new, None)
        .await?
        .ok_or_else(|| ApiError::internal("an update without a plan went stale"))
}

/// A service update computed (and its allocations reserved) before the compare-and-swap: it
/// applies only to the revision it was computed from.
struct Planned {
    revision: u64,
    new: Value,
}

/// Updates a service: the new object is computed from the current one, what it newly needs
/// is reserved ([`crate::services::allocate_update`]), and the write applies only if nothing
/// changed meanwhile (else everything starts over). Once stored, what the old object held and
/// the new one does not is released; a failed write releases the reservations (a dry run
/// only checks that what it would reserve is free).
async fn update_service<F>(srv: &ApiServer, req: &ResourceRequest, dry_run: bool, mut make_new: F) -> ApiResult<Value>
where
    F: FnMut(&Value) -> ApiResult<Value> + Send,
{
    let res = req.resource;
    let name = req.name.as_deref().unwrap_or_default();
    let key = object::key(res, req.namespace.as_deref(), name);
    let owner = format!("{}/{name}", req.namespace.as_deref().unwrap_or(""));
    loop {
        let Some(kv) = srv.store.get(&key).await.map_err(|e| ApiError::from_store(e, gr(res), name))? else {
            return Err(ApiError::not_found(gr(res), name));
        };
        let old = from_storage(res, from_kv(&kv)?)?;
        let mut new = make_new(&old)?;
        let reserving = (!dry_run).then_some(owner.as_str());
        let reserved = crate::services::allocate_update(srv, &old, &mut new, reserving).await?;
        let plan = Planned { revision: kv.mod_revision, new };
        let result = update_prepared(srv, req, dry_run, &mut make_new, Some(&plan)).await.map(|u| u.map(|u| u.object));
        match result {
            Ok(Some(stored)) if !dry_run => {
                crate::services::release_unheld(srv, &old, &stored).await;
                if registry::ready_to_remove(&stored) {
                    // The last finalizer went: the service is gone.
                    crate::services::release(srv, &stored).await;
                }
                return Ok(stored);
            }
            Ok(Some(stored)) => {
                crate::services::release_keys(srv, &reserved).await;
                return Ok(stored);
            }
            // Another writer got in first: start over from its object.
            Ok(None) => crate::services::release_keys(srv, &reserved).await,
            Err(e) => {
                crate::services::release_keys(srv, &reserved).await;
                return Err(e);
            }
        }
    }
}

/// Runs the compare-and-swap loop of an update; `None` when `plan` went stale.
async fn update_prepared<F>(
    srv: &ApiServer,
    req: &ResourceRequest,
    dry_run: bool,
    make_new: &mut F,
    plan: Option<&Planned>,
) -> ApiResult<Option<Updated>>
where
    F: FnMut(&Value) -> ApiResult<Value> + Send,
{
    let res = req.resource;
    let name = req.name.as_deref().unwrap_or_default();
    let key = object::key(res, req.namespace.as_deref(), name);
    let sub = req.subresource.as_deref();
    let api_version = res.api_version();
    let same_version = api_version == res.storage_version;
    let mut outcome: Option<Value> = None;
    let mut stale = false;
    // What the last attempt handed the store (an attempt runs again when its write lost).
    let mut written: Option<Bytes> = None;
    let result = guaranteed_update(&*srv.store, &key, |kv| {
        if let Some(lost) = written.take() {
            srv.cache.unprime(&key, &lost);
        }
        let old = from_storage(res, from_kv(kv)?)?;
        let mut new = match plan {
            Some(p) if p.revision != kv.mod_revision => {
                stale = true;
                return Err(ApiError::conflict(gr(res), name, "the object has been modified meanwhile"));
            }
            Some(p) => p.new.clone(),
            None => make_new(&old)?,
        };
        registry::check_type(res.kind, &api_version, &mut new)?;
        registry::set_namespace(res, req.namespace.as_deref().filter(|_| res.namespaced), &mut new)?;
        let body_name = meta_str(&new, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        object::meta_mut(&mut new).insert("name".into(), Value::String(name.to_string()));
        let body_rv = meta_str(&new, "resourceVersion");
        if !body_rv.is_empty() && body_rv != kv.mod_revision.to_string() {
            return Err(ApiError::stale(gr(res), name));
        }
        let registry::PreparedUpdate { object: prepared, unchanged, status_only } =
            registry::prepare_update(res, res.kind, sub, old, new)?;
        if unchanged {
            outcome = Some(prepared);
            return Ok(Update::Unchanged);
        }
        let stored = if same_version { None } else { Some(to_storage(res, prepared.clone())?) };
        let bytes = (!dry_run).then(|| {
            let stored = stored.as_ref().unwrap_or(&prepared);
            // A status write leaves the rest of the stored encoding as it is.
            let spliced = (status_only && same_version).then(|| {
                let status = stored.get("status").map(|s| serde_json::to_vec(s).expect("JSON values encode"));
                object::with_member(&kv.value, "status", status.as_deref())
            });
            let bytes = spliced.flatten().unwrap_or_else(|| to_bytes(stored));
            srv.cache.prime(&key, &bytes, stored);
            written = Some(bytes.clone());
            bytes
        });
        outcome = Some(prepared);
        Ok(bytes.map_or(Update::Unchanged, Update::Write))
    })
    .await;
    if let (Err(_), Some(lost)) = (&result, written) {
        srv.cache.unprime(&key, &lost);
    }
    let kv = match result {
        Ok(kv) => kv,
        Err(UpdateError::Aborted(_)) if stale => return Ok(None),
        Err(UpdateError::Aborted(e)) => return Err(e),
        Err(UpdateError::Store(e)) => return Err(ApiError::from_store(e, gr(res), name)),
    };
    if dry_run {
        let object = match outcome {
            Some(v) => v,
            None => from_storage(res, from_kv(&kv)?)?,
        };
        return Ok(Some(Updated { object, json: None }));
    }
    let (current, json) = match outcome {
        // What the store holds now is the object the last attempt prepared (written, or equal
        // to what was there): it needs no decoding back from the store, only its revision
        // (and none of the fields storage drops), and its stored encoding with that revision
        // is its JSON.
        Some(mut prepared) if same_version => {
            let meta = object::meta_mut(&mut prepared);
            meta.remove("selfLink");
            meta.insert("resourceVersion".into(), Value::String(kv.mod_revision.to_string()));
            (prepared, object::with_resource_version_in_order(&kv.value, kv.mod_revision))
        }
        _ => (from_storage(res, from_kv(&kv)?)?, None),
    };
    if registry::ready_to_remove(&current) {
        // The last finalizer is gone from an object being deleted: remove it now.
        return match srv.store.delete(&key, Some(kv.mod_revision)).await {
            Ok(deleted) => Ok(Some(Updated { object: from_storage(res, from_kv(&deleted)?)?, json: None })),
            Err(rudder_store::Error::NotFound(_)) | Err(rudder_store::Error::Conflict { .. }) => {
                Ok(Some(Updated { object: current, json }))
            }
            Err(e) => Err(ApiError::from_store(e, gr(res), name)),
        };
    }
    Ok(Some(Updated { object: current, json }))
}

/// `PUT .../<resource>/<name>[/status|/finalize]`.
pub async fn update(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let res = req.resource;
    let out = crate::negotiate::for_request(ctx, crate::negotiate::Endpoint::WRITE)?;
    let mut body = ctx.validated_body(&res.api_version(), res.kind).await?;
    registry::check_type(res.kind, &res.api_version(), &mut body)?;
    let dry_run = ctx.query.dry_run;
    match update_object_encoded(srv, req, dry_run, |_| Ok(body.clone())).await {
        Ok(updated) => crate::negotiate::respond_encoded(&out, 200, &updated.object, updated.json),
        Err(e) if e.code == 404 && req.subresource.is_none() && create_on_update(res.plural) => {
            let name = req.name.clone().unwrap_or_default();
            object::meta_mut(&mut body).insert("name".into(), Value::String(name));
            if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            let created = create::create_object(srv, req, body, dry_run).await?;
            crate::negotiate::respond_negotiated(&out, 201, &created)
        }
        Err(e) => Err(e),
    }
}
