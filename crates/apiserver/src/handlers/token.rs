//! `POST .../serviceaccounts/<name>/token`: a `TokenRequest` (authentication.k8s.io/v1) that
//! comes back with a bound service-account token in `status`; nothing is stored.
//!
//! As upstream's `TokenREST`: the body's name and namespace, when given, must match the URL;
//! the service account must exist (its uid goes into the token); `spec.audiences` defaults to
//! the API server's audiences and `spec.expirationSeconds` to an hour, and must lie between
//! ten minutes and 2^32 seconds; longer ones are not shortened (as upstream without
//! `--service-account-max-token-expiration`). A `spec.boundObjectRef` to a Pod, Secret or Node
//! must exist (and match its uid when one is given); a pod-bound token also names the pod's
//! node, and a pod-bound token for the API server asking for exactly 3607 seconds (what the
//! kubelet asks for projected tokens) is valid for a year but carries `warnafter`.
//!
//! Also here: where the authenticator finds the objects tokens are bound to
//! ([`BoundObjects`] for [`ApiServer`]): the watch cache, or the store while the cache has
//! not yet seen every acknowledged write.

use crate::authn::{self, BoundObjects, KubernetesClaims, ObjectClaim, ObjectState, ServiceAccountClaims};
use crate::handlers::get;
use crate::object::{self, from_kv};
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx, json_response};
use crate::status::{ApiError, ApiResult, GroupResource};
use axum::body::Body;
use http::Response;
use rudder_api::catalog::{self, Resource};
use rudder_api::{FieldError, FieldPath};
use serde::Deserialize;
use serde_json::{Value, json};

const API_VERSION: &str = "authentication.k8s.io/v1";
const GROUP: &str = "authentication.k8s.io";
const KIND: &str = "TokenRequest";

/// `spec.expirationSeconds` when none is asked for.
const DEFAULT_EXPIRATION_SECONDS: i64 = 60 * 60;
/// The shortest lifetime a token may be asked for.
const MIN_EXPIRATION_SECONDS: i64 = 10 * 60;
/// The longest lifetime a token may be asked for.
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The lifetime the kubelet asks for projected tokens; such pod-bound tokens get
/// [`EXTENDED_EXPIRATION_SECONDS`] and a `warnafter` claim instead (upstream's
/// `--service-account-extend-token-expiration`, on by default).
const WARN_ONLY_EXPIRATION_SECONDS: i64 = 60 * 60 + 7;
/// See [`WARN_ONLY_EXPIRATION_SECONDS`].
const EXTENDED_EXPIRATION_SECONDS: i64 = 24 * 365 * 60 * 60;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    audiences: Option<Vec<String>>,
    #[serde(default)]
    expiration_seconds: Option<i64>,
    #[serde(default)]
    bound_object_ref: Option<BoundObjectRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BoundObjectRef {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
}

/// `POST .../serviceaccounts/<name>/token`.
pub async fn create(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let name = req.name.clone().unwrap_or_default();
    let namespace = req.namespace.clone().unwrap_or_default();
    let mut body = ctx.validated_body(API_VERSION, KIND).await?;
    crate::registry::check_type(KIND, API_VERSION, &mut body)?;
    let spec_value = body.get("spec").filter(|s| !s.is_null()).cloned().unwrap_or_else(|| json!({}));
    let spec: Spec = serde_json::from_value(spec_value)
        .map_err(|e| ApiError::bad_request(format!("{KIND} in version \"v1\" cannot be handled as a {KIND}: {e}")))?;

    let meta = object::meta_mut(&mut body);
    for (field, url_value) in [("name", &name), ("namespace", &namespace)] {
        let given = meta.get(field).and_then(Value::as_str).unwrap_or("");
        if !given.is_empty() && given != url_value {
            let path = FieldPath::root("metadata").child(field);
            let detail = format!("must match the service account {field} if specified");
            return Err(ApiError::invalid(GROUP, KIND, &name, &[FieldError::invalid(&path, given, &detail)]));
        }
    }

    let accounts = core_resource("serviceaccounts");
    let account = load(srv, accounts, Some(&namespace), &name).await?;
    let account_uid = object::meta_str(&account, "uid").to_string();

    let audiences = match spec.audiences {
        Some(a) if !a.is_empty() => a,
        _ => authn::API_AUDIENCES.iter().map(|s| s.to_string()).collect(),
    };
    let expiration = spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    let now = chrono::Utc::now();
    meta.insert("name".into(), json!(name));
    meta.insert("namespace".into(), json!(namespace));
    meta.insert("creationTimestamp".into(), json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));

    let field = FieldPath::root("spec").child("expirationSeconds");
    if expiration < MIN_EXPIRATION_SECONDS {
        let e = FieldError::invalid(&field, expiration, "may not specify a duration less than 10 minutes");
        return Err(ApiError::invalid(GROUP, KIND, "", &[e]));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        let e = FieldError::invalid(&field, expiration, "may not specify a duration larger than 2^32 seconds");
        return Err(ApiError::invalid(GROUP, KIND, "", &[e]));
    }

    let mut bound = KubernetesClaims {
        namespace: namespace.clone(),
        serviceaccount: ObjectClaim { name: name.clone(), uid: account_uid },
        ..Default::default()
    };
    if let Some(r) = &spec.bound_object_ref {
        bind(srv, &namespace, &name, r, &mut bound).await?;
    }

    // The kubelet's projected tokens: valid far longer, with a warning time.
    let mut lifetime = expiration;
    if bound.pod.is_some()
        && expiration == WARN_ONLY_EXPIRATION_SECONDS
        && audiences.iter().all(|a| authn::API_AUDIENCES.contains(&a.as_str()))
    {
        bound.warnafter = Some(now.timestamp() + expiration);
        lifetime = EXTENDED_EXPIRATION_SECONDS;
    }

    let issued = now.timestamp();
    let claims = ServiceAccountClaims {
        aud: audiences.clone(),
        exp: issued + lifetime,
        iat: issued,
        iss: authn::ISSUER.into(),
        jti: crate::registry::new_uid(),
        kubernetes: bound,
        nbf: issued,
        sub: authn::service_account_user_name(&namespace, &name),
    };
    let token = srv.authn.issue(&claims).map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;
    let expires = (now + chrono::Duration::seconds(expiration)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    let mut out_spec = json!({"audiences": audiences, "expirationSeconds": expiration});
    if let Some(r) = &spec.bound_object_ref {
        let mut reference = serde_json::Map::new();
        for (k, v) in [("kind", &r.kind), ("apiVersion", &r.api_version), ("name", &r.name), ("uid", &r.uid)] {
            if !v.is_empty() {
                reference.insert(k.into(), json!(v));
            }
        }
        out_spec["boundObjectRef"] = Value::Object(reference);
    }
    body["spec"] = out_spec;
    body["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(json_response(201, &body))
}

/// Resolves `spec.boundObjectRef` into the token's claims.
async fn bind(
    srv: &ApiServer,
    namespace: &str,
    account: &str,
    r: &BoundObjectRef,
    bound: &mut KubernetesClaims,
) -> ApiResult<()> {
    // The group of `apiVersion` (`v1` and none are the core group).
    let (group, version) = match r.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", r.api_version.as_str()),
    };
    let uid = match (group, r.kind.as_str()) {
        ("", "Pod") => {
            let pod = load(srv, core_resource("pods"), Some(namespace), &r.name).await?;
            // A pod created without one runs as `default` (upstream's admission sets it).
            let runs_as = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("");
            let runs_as = if runs_as.is_empty() { "default" } else { runs_as };
            if runs_as != account {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
                )));
            }
            let uid = object::meta_str(&pod, "uid").to_string();
            bound.pod = Some(ObjectClaim { name: r.name.clone(), uid: uid.clone() });
            let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            if !node.is_empty() {
                // A missing node still leaves its name in the token.
                let state = srv.lookup("nodes", None, node).await.unwrap_or_default();
                bound.node = Some(ObjectClaim { name: node.to_string(), uid: state.uid });
            }
            uid
        }
        ("", "Secret") => {
            let secret = load(srv, core_resource("secrets"), Some(namespace), &r.name).await?;
            let uid = object::meta_str(&secret, "uid").to_string();
            bound.secret = Some(ObjectClaim { name: r.name.clone(), uid: uid.clone() });
            uid
        }
        ("", "Node") => {
            let node = load(srv, core_resource("nodes"), None, &r.name).await?;
            let uid = object::meta_str(&node, "uid").to_string();
            bound.node = Some(ObjectClaim { name: r.name.clone(), uid: uid.clone() });
            uid
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={}",
                r.kind
            )));
        }
    };
    if !r.uid.is_empty() && r.uid != uid {
        return Err(ApiError::conflict(
            GroupResource { group, resource: &r.kind },
            &r.name,
            &format!(
                "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
                r.uid
            ),
        ));
    }
    Ok(())
}

fn core_resource(plural: &str) -> &'static Resource {
    catalog::lookup("", "v1", plural).expect("the catalog serves the core resources tokens bind to")
}

/// Reads an object from the store (a consistent read, as upstream's `Get`); 404 when missing.
async fn load(srv: &ApiServer, res: &Resource, namespace: Option<&str>, name: &str) -> ApiResult<Value> {
    if name.is_empty() {
        return Err(ApiError::bad_request("resource name may not be empty"));
    }
    let key = object::key(res, namespace, name);
    from_kv(&get::load_stored(srv, res, &key, name).await?)
}

/// The metadata the authenticator needs, read without decoding the rest of the object.
fn object_state(json: &[u8]) -> Option<ObjectState> {
    #[derive(Deserialize)]
    struct Object {
        metadata: Metadata,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Metadata {
        #[serde(default)]
        uid: String,
        #[serde(default)]
        deletion_timestamp: Option<String>,
    }
    let obj: Object = serde_json::from_slice(json).ok()?;
    let deleted_at = obj
        .metadata
        .deletion_timestamp
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.timestamp());
    Some(ObjectState { uid: obj.metadata.uid, deleted_at })
}

impl BoundObjects for ApiServer {
    async fn lookup(&self, resource: &'static str, namespace: Option<&str>, name: &str) -> Option<ObjectState> {
        let res = catalog::lookup("", "v1", resource)?;
        let key = object::key(res, namespace, name);
        // The cache answers once it has seen every acknowledged write; until then the store
        // does, so a token stops working as soon as the deletion of its account is
        // acknowledged, and works as soon as the account's creation is.
        if self.cache.revision() >= self.store.current_revision() {
            return self.cache.get(&key).and_then(|obj| object_state(&obj.json()));
        }
        let kv = self.store.get(&key).await.ok()??;
        object_state(&kv.value)
    }

    async fn secret(&self, namespace: &str, name: &str) -> Option<Vec<u8>> {
        let res = catalog::lookup("", "v1", "secrets")?;
        let key = object::key(res, Some(namespace), name);
        if self.cache.revision() >= self.store.current_revision()
            && let Some(obj) = self.cache.get(&key)
        {
            return Some(obj.json().to_vec());
        }
        Some(self.store.get(&key).await.ok()??.value.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uid_and_deletion_time() {
        let state = object_state(br#"{"kind":"Pod","metadata":{"name":"p","uid":"u1"},"spec":{}}"#).unwrap();
        assert_eq!(state, ObjectState { uid: "u1".into(), deleted_at: None });
        let deleting = object_state(br#"{"metadata":{"uid":"u2","deletionTimestamp":"2024-01-02T03:04:05Z"}}"#);
        assert_eq!(deleting.unwrap().deleted_at, Some(1_704_164_645));
        assert!(object_state(b"not json").is_none());
    }
}
