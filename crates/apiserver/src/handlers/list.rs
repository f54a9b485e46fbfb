//! LIST with upstream's `resourceVersion` / `resourceVersionMatch` semantics, paging with
//! `limit`/`continue`, and label and field selectors.
//!
//! - no `resourceVersion`: a consistent read, served from the watch cache once it has caught
//!   up with the store's newest revision;
//! - `resourceVersion=0`: whatever the cache has (no paging, as upstream);
//! - `resourceVersion=N` with `NotOlderThan` (or legacy, without `limit`): the cache once it
//!   has seen N;
//! - `Exact`, legacy with `limit`, and every `continue` page: the store at that revision.

use crate::cache::{CachedObject, Filter};
use crate::negotiate::{self, Endpoint};
use crate::object::{self, from_kv, from_storage, gr};
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx, bytes_response};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use http::Response;
use rudder_api::catalog::Resource;
use rudder_api::selectors::{self, FieldSelector, LabelSelector};
use rudder_store::ListOptions;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long a read waits for the cache to reach a revision before giving up.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// Builds the filter of a list or watch from its path and selectors.
pub fn build_filter(req: &ResourceRequest, ctx: &Ctx) -> ApiResult<Filter> {
    let res = req.resource;
    let mut prefix = object::prefix(res, req.namespace.as_deref().filter(|_| res.plural != "namespaces"));
    let labels = match &ctx.query.label_selector {
        Some(s) => Some(
            LabelSelector::parse(s).map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        ),
        None => None,
    };
    let fields = match &ctx.query.field_selector {
        Some(s) => {
            let sel = FieldSelector::parse(s).map_err(ApiError::bad_request)?;
            selectors::check_field_labels(res.group, res.plural, &sel).map_err(ApiError::bad_request)?;
            Some(sel)
        }
        None => None,
    };
    // A name selector on a single object narrows the scan to that key.
    if let Some(name) = &req.name {
        prefix = object::key(res, req.namespace.as_deref().filter(|_| res.plural != "namespaces"), name);
    }
    Ok(Filter { prefix, labels, fields })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    start: String,
}

fn encode_continue(rv: u64, start_rel: &str) -> String {
    let t = ContinueToken { v: "meta.k8s.io/v1".into(), rv, start: start_rel.to_string() };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&t).expect("tokens encode"))
}

fn decode_continue(token: &str) -> ApiResult<ContinueToken> {
    let bad = || ApiError::bad_request("continue key is not valid: the token cannot be decoded");
    let raw =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if t.v != "meta.k8s.io/v1" || t.start.contains("..") || t.start.starts_with('/') {
        return Err(bad());
    }
    Ok(t)
}

/// One page of a list, ready to encode.
pub struct Page {
    /// Objects (served version), in key order.
    pub items: Vec<Item>,
    /// The list's revision.
    pub revision: u64,
    /// The continue token, if more follow.
    pub continue_token: Option<String>,
    /// How many follow, when known.
    pub remaining: Option<u64>,
}

/// One item of a list page.
pub enum Item {
    /// Already encoded.
    Encoded(Bytes),
    /// From the watch cache, in the storage version, encoded as it is written out.
    Cached(Arc<CachedObject>),
}

fn item_json(res: &Resource, obj: &Arc<CachedObject>) -> ApiResult<Item> {
    if res.api_version() == res.storage_version {
        Ok(Item::Cached(obj.clone()))
    } else {
        let v = from_storage(res, obj.value())?;
        Ok(Item::Encoded(Bytes::from(serde_json::to_vec(&v).expect("JSON values encode"))))
    }
}

fn page_from_cache(srv: &ApiServer, res: &Resource, filter: &Filter, limit: usize) -> ApiResult<Page> {
    let list = srv.cache.list(filter, None, limit);
    let items = list.items.iter().map(|o| item_json(res, o)).collect::<ApiResult<Vec<_>>>()?;
    let continue_token = if list.more {
        let last = list.items.last().map(|o| o.key.to_string()).unwrap_or_default();
        let rel = last.strip_prefix(&filter.prefix).unwrap_or(&last);
        Some(encode_continue(list.revision, &format!("{rel}\u{0}")))
    } else {
        None
    };
    let remaining = (list.more && !filter.has_selectors()).then_some(list.remaining);
    Ok(Page { items, revision: list.revision, continue_token, remaining })
}

async fn page_from_store(
    srv: &ApiServer,
    res: &Resource,
    filter: &Filter,
    start_rel: Option<String>,
    revision: Option<u64>,
    limit: usize,
) -> ApiResult<Page> {
    let mut items = Vec::new();
    let mut start = start_rel.map(|s| format!("{}{}", filter.prefix, s));
    let mut at = revision;
    let mut more;
    let mut remaining;
    let mut last_key = String::new();
    loop {
        let want = if limit == 0 { 0 } else { (limit - items.len()).max(1) };
        let page = srv
            .store
            .list(&filter.prefix, ListOptions { start_key: start.clone(), limit: want, revision: at })
            .await
            .map_err(|e| match e {
                rudder_store::Error::Compacted { .. } => continue_expired(filter, res),
                other => ApiError::from_store(other, gr(res), ""),
            })?;
        at = Some(page.revision);
        more = page.more;
        remaining = page.remaining;
        for kv in &page.items {
            last_key = kv.key.to_string();
            let obj = from_kv(kv)?;
            let labels = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
                .unwrap_or_default();
            if filter.labels.as_ref().is_some_and(|l| !l.matches(&labels)) {
                continue;
            }
            if let Some(f) = &filter.fields
                && !f.matches(&selectors::field_set(res.group, res.plural, &obj))
            {
                continue;
            }
            let obj = from_storage(res, obj)?;
            items.push(Item::Encoded(Bytes::from(serde_json::to_vec(&obj).expect("JSON values encode"))));
        }
        if !more || (limit > 0 && items.len() >= limit) {
            break;
        }
        start = Some(format!("{last_key}\u{0}"));
    }
    let revision = at.unwrap_or_else(|| srv.store.current_revision());
    let continue_token = more.then(|| {
        let rel = last_key.strip_prefix(&filter.prefix).unwrap_or(&last_key).to_string();
        encode_continue(revision, &format!("{rel}\u{0}"))
    });
    let remaining = (more && !filter.has_selectors()).then_some(remaining);
    Ok(Page { items, revision, continue_token, remaining })
}

fn continue_expired(_filter: &Filter, _res: &Resource) -> ApiError {
    let mut e = ApiError::expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    );
    e.metadata = Some(json!({}));
    e
}

/// Upstream's `ValidateListOptions`: the combinations of `resourceVersion`,
/// `resourceVersionMatch`, `continue`, `sendInitialEvents` and `allowWatchBookmarks` that make
/// sense for a list or a watch; anything else is a 422 `Invalid` on `ListOptions`.
pub fn validate_list_options(q: &crate::request::Query, watch: bool) -> ApiResult<()> {
    use rudder_api::{FieldError, FieldPath};
    let rvm = FieldPath::root("resourceVersionMatch");
    let mut errs = Vec::new();
    let matching = q.resource_version_match.as_deref();
    if watch {
        match q.send_initial_events {
            Some(send) => {
                if matching != Some("NotOlderThan") {
                    errs.push(FieldError::not_supported(&rvm, matching.unwrap_or(""), &["NotOlderThan"]));
                }
                if send && !q.allow_watch_bookmarks {
                    errs.push(FieldError::forbidden(
                        &FieldPath::root("allowWatchBookmarks"),
                        "allowWatchBookmarks must be set to true when sendInitialEvents is true",
                    ));
                }
                if q.continue_token.is_some() {
                    errs.push(FieldError::forbidden(
                        &rvm,
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
            }
            None if matching.is_some() => errs.push(FieldError::forbidden(
                &rvm,
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )),
            None => {}
        }
    } else {
        if q.send_initial_events.is_some() {
            errs.push(FieldError::forbidden(
                &FieldPath::root("sendInitialEvents"),
                "sendInitialEvents is forbidden for list",
            ));
        }
        if let Some(m) = matching {
            if q.resource_version.is_none() {
                errs.push(FieldError::forbidden(
                    &rvm,
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if q.continue_token.is_some() {
                errs.push(FieldError::forbidden(&rvm, "resourceVersionMatch is forbidden when continue is provided"));
            }
            if m != "Exact" && m != "NotOlderThan" {
                errs.push(FieldError::not_supported(&rvm, m, &["Exact", "NotOlderThan", ""]));
            }
            if m == "Exact" && q.resource_version.as_deref() == Some("0") {
                errs.push(FieldError::forbidden(
                    &rvm,
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", &errs)) }
}

/// Serves one page as the request asks.
pub async fn read_page(srv: &ApiServer, req: &ResourceRequest, ctx: &Ctx, filter: &Filter) -> ApiResult<Page> {
    let res = req.resource;
    let q = &ctx.query;
    let limit = q.limit.unwrap_or(0).max(0) as usize;
    let rv_match = q.resource_version_match.as_deref();
    validate_list_options(q, false)?;
    if let Some(token) = &q.continue_token {
        if q.resource_version.as_deref().is_some_and(|rv| !rv.is_empty() && rv != "0") {
            return Err(ApiError::bad_request("specifying resource version is not allowed when using continue"));
        }
        let t = decode_continue(token)?;
        let at = if t.rv == 0 { None } else { Some(t.rv) };
        let mut page = page_from_store(srv, res, filter, Some(t.start.clone()), at, limit).await.map_err(|mut e| {
            if e.code == 410 {
                e.metadata = Some(json!({"continue": encode_continue(0, &t.start)}));
            }
            e
        })?;
        if t.rv == 0 {
            // An inconsistent continuation reads the newest state from there on.
            page.revision = srv.store.current_revision();
        }
        return Ok(page);
    }
    let rv = match q.resource_version.as_deref() {
        None => None,
        Some(s) => Some(object::parse_rv(s)?),
    };
    match (rv, rv_match) {
        (Some(n), Some("Exact")) => page_from_store(srv, res, filter, None, Some(n), limit).await.map_err(|e| {
            if e.code == 410 {
                ApiError::expired(format!("too old resource version: {n} ({})", srv.store.compacted_revision()))
            } else {
                e
            }
        }),
        (Some(n), None) if n > 0 && limit > 0 => page_from_store(srv, res, filter, None, Some(n), limit).await,
        (Some(0), _) => page_from_cache(srv, res, filter, 0),
        (Some(n), _) => {
            if !srv.cache.wait_for(n, FRESHNESS_WAIT).await {
                return Err(ApiError::from_store(
                    rudder_store::Error::FutureRevision { requested: n, current: srv.cache.revision() },
                    gr(res),
                    "",
                ));
            }
            page_from_cache(srv, res, filter, limit)
        }
        (None, _) => {
            let newest = srv.store.current_revision();
            if srv.cache.wait_for(newest, FRESHNESS_WAIT).await {
                page_from_cache(srv, res, filter, limit)
            } else {
                page_from_store(srv, res, filter, None, None, limit).await
            }
        }
    }
}

/// The `metadata` of a list page: `resourceVersion`, `continue`, `remainingItemCount`.
pub fn list_meta(page: &Page) -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), json!(page.revision.to_string()));
    if let Some(c) = &page.continue_token {
        meta.insert("continue".into(), json!(c));
    }
    if let Some(n) = page.remaining {
        meta.insert("remainingItemCount".into(), json!(n));
    }
    meta
}

/// One item of a page, decoded (served version).
fn item_value(item: &Item) -> ApiResult<Value> {
    match item {
        Item::Encoded(b) => {
            serde_json::from_slice(b).map_err(|e| ApiError::internal(format!("a listed object cannot be decoded: {e}")))
        }
        Item::Cached(o) => Ok(o.value()),
    }
}

/// Encodes a page as a `<Kind>List`.
pub fn encode_list(res: &Resource, page: &Page) -> Bytes {
    let head =
        json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": list_meta(page)});
    let head = serde_json::to_vec(&head).expect("JSON values encode");
    let size: usize = page
        .items
        .iter()
        .map(|i| match i {
            Item::Encoded(b) => b.len() + 1,
            Item::Cached(o) => o.json_len_hint() + 1,
        })
        .sum();
    let mut out = BytesMut::with_capacity(head.len() + size + 16);
    out.put_slice(&head[..head.len() - 1]);
    out.put_slice(b",\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        match item {
            Item::Encoded(b) => out.put_slice(b),
            Item::Cached(o) => o.write_json(&mut out),
        }
    }
    out.put_slice(b"]}");
    out.freeze()
}

/// `GET` of a collection: the list as JSON assembled from the objects' encoded bytes (the fast
/// path), or as the `Accept` header asks: YAML, a `Table`, a `PartialObjectMetadataList`.
pub async fn list(srv: &ApiServer, req: &ResourceRequest, ctx: &Ctx) -> ApiResult<Response<Body>> {
    let media = negotiate::for_request(ctx, Endpoint::READ)?;
    let filter = build_filter(req, ctx)?;
    let page = read_page(srv, req, ctx, &filter).await?;
    if media.is_plain_json() {
        return Ok(bytes_response(200, encode_list(req.resource, &page)));
    }
    let table = negotiate::table_options(ctx, &media, true)?;
    let items = page.items.iter().map(item_value).collect::<ApiResult<Vec<_>>>()?;
    let body = negotiate::convert_list(&media, req.resource, list_meta(&page), items, table)?;
    negotiate::encode(media.encoding, 200, &body)
}

/// Every object a collection request names, across all pages (for deletecollection).
pub async fn all_matching(srv: &ApiServer, req: &ResourceRequest, ctx: &Ctx) -> ApiResult<Vec<Arc<CachedObject>>> {
    let filter = build_filter(req, ctx)?;
    let newest = srv.store.current_revision();
    srv.cache.wait_for(newest, FRESHNESS_WAIT).await;
    Ok(srv.cache.list(&filter, None, 0).items)
}
