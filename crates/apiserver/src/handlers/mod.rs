//! REST handlers, one verb per file, generic over every resource in the catalog.
//!
//! `handle` checks that the verb is served for the resource (or subresource) and hands the
//! request to the verb's handler. Subresources with their own shape (`scale`, `binding`,
//! `eviction`, `token`) have their own files; `proxy` relays `log`, `exec`, `attach` and
//! `portforward` of pods to the kubelet of the pod's node.

pub mod binding;
pub mod create;
pub mod delete;
pub mod discovery;
pub mod eviction;
pub mod get;
pub mod list;
pub mod patch;
pub mod proxy;
pub mod review;
pub mod scale;
pub mod token;
pub mod update;
pub mod watch;

use crate::request::{ResourceRequest, Verb};
use crate::server::{ApiServer, Ctx};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use http::Response;

/// Sends a resource request to its verb's handler.
pub async fn handle(srv: &ApiServer, req: ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let res = req.resource;
    match req.subresource.as_deref() {
        None => {
            if !res.has_verb(req.verb.as_str()) {
                return Err(ApiError::method_not_allowed());
            }
            match req.verb {
                Verb::Get => get::get(srv, &req, ctx).await,
                Verb::List => list::list(srv, &req, ctx).await,
                Verb::Watch => watch::watch(srv, &req, ctx).await,
                Verb::Create if review::REVIEWS.contains(&res.plural) => review::create(srv, &req, ctx).await,
                Verb::Create => create::create(srv, &req, ctx).await,
                Verb::Update => update::update(srv, &req, ctx).await,
                Verb::Patch => patch::patch(srv, &req, ctx).await,
                Verb::Delete => delete::delete(srv, &req, ctx).await,
                Verb::DeleteCollection => delete::delete_collection(srv, &req, ctx).await,
            }
        }
        Some(sub @ ("status" | "finalize" | "approval")) if res.subresource(sub).is_some() => match req.verb {
            Verb::Get if sub != "finalize" => get::get(srv, &req, ctx).await,
            Verb::Update => update::update(srv, &req, ctx).await,
            Verb::Patch if sub != "finalize" => patch::patch(srv, &req, ctx).await,
            _ => Err(ApiError::method_not_allowed()),
        },
        Some("scale") => match req.verb {
            Verb::Get => scale::get(srv, &req).await,
            Verb::Update => scale::update(srv, &req, ctx).await,
            Verb::Patch => scale::patch(srv, &req, ctx).await,
            _ => Err(ApiError::method_not_allowed()),
        },
        Some("binding") => match req.verb {
            Verb::Create => binding::bind(srv, &req, ctx).await,
            _ => Err(ApiError::method_not_allowed()),
        },
        Some("token") if res.plural == "serviceaccounts" => match req.verb {
            Verb::Create => token::create(srv, &req, ctx).await,
            _ => Err(ApiError::method_not_allowed()),
        },
        Some("eviction") if res.plural == "pods" => match req.verb {
            Verb::Create => eviction::evict(srv, &req, ctx).await,
            _ => Err(ApiError::method_not_allowed()),
        },
        Some(sub @ ("log" | "exec" | "attach" | "portforward")) if res.plural == "pods" => {
            proxy::handle(srv, &req, ctx, sub).await
        }
        Some("proxy") if res.plural == "pods" => {
            let pod = get::load(srv, &req).await?;
            let node = pod.pointer("/spec/nodeName").and_then(|v| v.as_str()).unwrap_or("");
            let name = req.name.as_deref().unwrap_or_default();
            if node.is_empty() {
                Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")))
            } else {
                Err(ApiError::unavailable(format!("proxying to pod {name} is not supported yet")))
            }
        }
        Some(_) => Err(ApiError::method_not_allowed()),
    }
}
