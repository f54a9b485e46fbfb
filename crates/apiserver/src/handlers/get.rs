//! GET of one object (and of its `status` subresource).

use crate::negotiate::{self, Endpoint};
use crate::object::{self, from_kv, from_storage, gr};
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx, json_response};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use http::Response;
use rudder_api::catalog::Resource;
use rudder_store::KeyValue;
use serde_json::Value;

/// Reads the object a request names, in the served version, from the store.
pub async fn load(srv: &ApiServer, req: &ResourceRequest) -> ApiResult<Value> {
    Ok(load_kv(srv, req).await?.0)
}

/// Reads the object a request names, returning it (served version) and its store revision.
pub async fn load_kv(srv: &ApiServer, req: &ResourceRequest) -> ApiResult<(Value, u64)> {
    let res = req.resource;
    let name = req.name.as_deref().unwrap_or_default();
    let key = object::key(res, req.namespace.as_deref(), name);
    let kv = load_stored(srv, res, &key, name).await?;
    Ok((from_storage(res, from_kv(&kv)?)?, kv.mod_revision))
}

/// Reads a key from the store as stored; 404 for `name` of `res` when it is missing.
pub async fn load_stored(srv: &ApiServer, res: &Resource, key: &str, name: &str) -> ApiResult<KeyValue> {
    srv.store
        .get(key)
        .await
        .map_err(|e| ApiError::from_store(e, gr(res), name))?
        .ok_or_else(|| ApiError::not_found(gr(res), name))
}

/// `GET .../<resource>/<name>`: the object as JSON (the fast path), or as the `Accept` header
/// asks: YAML, a `Table`, a `PartialObjectMetadata` (see `negotiate`).
pub async fn get(srv: &ApiServer, req: &ResourceRequest, ctx: &Ctx) -> ApiResult<Response<Body>> {
    let res = req.resource;
    let name = req.name.as_deref().unwrap_or_default();
    // As upstream, an unservable Accept header fails before the object is read.
    let media = negotiate::for_request(ctx, Endpoint::READ)?;
    let obj = if ctx.query.resource_version.as_deref() == Some("0") {
        // Any version will do: answer from the watch cache.
        let key = object::key(res, req.namespace.as_deref(), name);
        let obj = srv.cache.get(&key).ok_or_else(|| ApiError::not_found(gr(res), name))?;
        if res.api_version() == res.storage_version {
            if media.is_plain_json() {
                return Ok(crate::server::bytes_response(200, obj.json()));
            }
            obj.value()
        } else {
            from_storage(res, obj.value())?
        }
    } else {
        if let Some(rv) = &ctx.query.resource_version {
            object::parse_rv(rv)?;
        }
        load(srv, req).await?
    };
    if media.is_plain_json() {
        return Ok(json_response(200, &obj));
    }
    let table = negotiate::table_options(ctx, &media, true)?;
    let body = negotiate::convert_object(&media, res, obj, table)?;
    negotiate::encode(media.encoding, 200, &body)
}
