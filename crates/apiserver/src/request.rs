//! Request info: which API, resource, namespace, name, subresource and verb a request is
//! about, read from its method and path as upstream's `RequestInfoFactory` does; and the
//! query parameters handlers understand, checked up front so bad values get a 400.

use crate::status::{ApiError, ApiResult};
use http::Method;
use percent_encoding::percent_decode_str;
use rudder_api::catalog::{self, Resource};

/// What a request does to a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Read one object.
    Get,
    /// Read a collection.
    List,
    /// Stream changes of a collection.
    Watch,
    /// POST a new object.
    Create,
    /// PUT a whole object.
    Update,
    /// PATCH an object.
    Patch,
    /// DELETE one object.
    Delete,
    /// DELETE a collection.
    DeleteCollection,
}

impl Verb {
    /// The verb's name as discovery and authorization spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A request on a resource.
#[derive(Clone, Debug)]
pub struct ResourceRequest {
    /// The verb.
    pub verb: Verb,
    /// The resource, from the catalog.
    pub resource: &'static Resource,
    /// Namespace from the URL (for namespaces themselves: the namespace's name).
    pub namespace: Option<String>,
    /// Object name from the URL.
    pub name: Option<String>,
    /// Subresource, e.g. `status`.
    pub subresource: Option<String>,
}

/// Where a path leads.
#[derive(Debug)]
pub enum Route {
    /// `/healthz`, `/livez`, `/readyz` (and their `/<check>` children).
    Health(String),
    /// `/version`.
    Version,
    /// `/cacerts`: the cluster CA certificate, unauthenticated, so joining agents can check it
    /// against the hash in their join token.
    CaCerts,
    /// `/api`.
    LegacyRoot,
    /// `/apis`.
    GroupsRoot,
    /// `/api/v1` or `/apis/<group>/<version>`.
    GroupVersion(String, String),
    /// `/apis/<group>`.
    Group(String),
    /// Something under a group version.
    Resource(ResourceRequest),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiV3,
    /// `/openapi/v3/<api/v1|apis/<group>/<version>>`: the rest of the path.
    OpenApiV3Document(String),
}

fn decode(seg: &str) -> ApiResult<String> {
    percent_decode_str(seg)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::bad_request(format!("invalid path segment {seg:?}: not UTF-8")))
}

/// Reads the route of a request. `watch` is the value of the `watch` query parameter.
pub fn route(method: &Method, path: &str, watch_param: bool) -> ApiResult<Route> {
    let parts: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(decode).collect::<ApiResult<Vec<_>>>()?;
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    match p.as_slice() {
        [h] | [h, _] if matches!(*h, "healthz" | "livez" | "readyz") => return Ok(Route::Health(p.join("/"))),
        ["version"] => return Ok(Route::Version),
        ["cacerts"] => return Ok(Route::CaCerts),
        ["api"] => return Ok(Route::LegacyRoot),
        ["apis"] => return Ok(Route::GroupsRoot),
        ["api", v] => return Ok(Route::GroupVersion(String::new(), v.to_string())),
        ["apis", g] => return Ok(Route::Group(g.to_string())),
        ["apis", g, v] => return Ok(Route::GroupVersion(g.to_string(), v.to_string())),
        ["openapi", "v2"] => return Ok(Route::OpenApiV2),
        ["openapi", "v3"] => return Ok(Route::OpenApiV3),
        ["openapi", "v3", rest @ ..] => return Ok(Route::OpenApiV3Document(rest.join("/"))),
        _ => {}
    }
    let (group, version, rest) = match p.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    let (mut rest, legacy_watch) = match rest {
        ["watch", r @ ..] => (r, true),
        r => (r, false),
    };
    if legacy_watch && !matches!(*method, Method::GET | Method::HEAD) {
        // The `/watch/` paths only serve reads.
        return Err(ApiError::method_not_allowed());
    }
    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        namespace = Some(rest[1].to_string());
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    let (plural, name, sub) = match rest {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(n.to_string()), None),
        [r, n, s] => (*r, Some(n.to_string()), Some(s.to_string())),
        [r, n, s, ..] if *s == "proxy" => (*r, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::no_route()),
    };
    let resource = catalog::lookup(group, version, plural).ok_or_else(ApiError::no_route)?;
    if plural == "namespaces" {
        // `/api/v1/namespaces/<name>` names the namespace object itself.
        if name.is_none() {
            namespace = None;
        }
    } else if namespace.is_some() && !resource.namespaced {
        return Err(ApiError::no_route());
    }
    if let Some(s) = &sub
        && resource.subresource(s).is_none()
    {
        return Err(ApiError::no_route());
    }
    let verb = match *method {
        Method::GET | Method::HEAD if name.is_some() && !legacy_watch => Verb::Get,
        Method::GET | Method::HEAD => {
            if watch_param || legacy_watch {
                Verb::Watch
            } else {
                Verb::List
            }
        }
        // Creates go to a collection (or to a subresource such as `binding`); replacing and
        // patching need an object. Anything else is not served, as upstream's routes.
        Method::POST if name.is_none() || sub.is_some() => Verb::Create,
        Method::PUT | Method::PATCH if name.is_none() => return Err(ApiError::method_not_allowed()),
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE if name.is_some() => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => return Err(ApiError::method_not_allowed()),
    };
    let ns_for_scope = if plural == "namespaces" { None } else { namespace.as_ref() };
    if resource.namespaced && ns_for_scope.is_none() && !matches!(verb, Verb::List | Verb::Watch) {
        // Only list and watch are served across all namespaces.
        return Err(if name.is_some() { ApiError::no_route() } else { ApiError::method_not_allowed() });
    }
    if legacy_watch && name.is_some() {
        // `/watch/.../name` watches a single object.
        return Ok(Route::Resource(ResourceRequest { verb: Verb::Watch, resource, namespace, name, subresource: sub }));
    }
    Ok(Route::Resource(ResourceRequest { verb, resource, namespace, name, subresource: sub }))
}

/// The query parameters of a request, decoded and checked.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// `watch`.
    pub watch: bool,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
    /// `limit`.
    pub limit: Option<i64>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<i64>,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `fieldValidation`.
    pub field_validation: Option<String>,
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy`.
    pub propagation_policy: Option<String>,
    /// `orphanDependents`.
    pub orphan_dependents: Option<bool>,
    /// `force` (apply).
    pub force: Option<bool>,
    /// `includeObject` (Table responses: `None`, `Object`, `Metadata`); checked where a Table
    /// is built.
    pub include_object: Option<String>,
}

fn parse_bool(name: &str, v: &str) -> ApiResult<bool> {
    match v {
        "true" | "1" | "True" | "TRUE" | "t" | "T" | "" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "f" | "F" => Ok(false),
        _ => Err(ApiError::bad_request(format!("invalid value {v:?} for query parameter {name}: not a boolean"))),
    }
}

fn parse_int(name: &str, v: &str) -> ApiResult<i64> {
    v.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("invalid value {v:?} for query parameter {name}: not an integer")))
}

impl Query {
    /// Decodes a raw query string (with or without a leading `&`).
    pub fn parse(raw: Option<&str>) -> ApiResult<Query> {
        let mut q = Query::default();
        let Some(raw) = raw else { return Ok(q) };
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            let v = v.into_owned();
            match &*k {
                "watch" => q.watch = parse_bool("watch", &v)?,
                "resourceVersion" => q.resource_version = Some(v).filter(|s| !s.is_empty()),
                "resourceVersionMatch" => q.resource_version_match = Some(v).filter(|s| !s.is_empty()),
                "limit" => {
                    let n = parse_int("limit", &v)?;
                    if n < 0 {
                        return Err(ApiError::bad_request(format!(
                            "invalid value {v:?} for query parameter limit: must not be negative"
                        )));
                    }
                    q.limit = Some(n);
                }
                "continue" => q.continue_token = Some(v).filter(|s| !s.is_empty()),
                "labelSelector" => q.label_selector = Some(v).filter(|s| !s.is_empty()),
                "fieldSelector" => q.field_selector = Some(v).filter(|s| !s.is_empty()),
                "timeoutSeconds" => {
                    let n = parse_int("timeoutSeconds", &v)?;
                    if n < 0 {
                        return Err(ApiError::bad_request(format!(
                            "invalid value {v:?} for query parameter timeoutSeconds: must not be negative"
                        )));
                    }
                    q.timeout_seconds = Some(n);
                }
                "allowWatchBookmarks" => q.allow_watch_bookmarks = parse_bool("allowWatchBookmarks", &v)?,
                "sendInitialEvents" => q.send_initial_events = Some(parse_bool("sendInitialEvents", &v)?),
                "dryRun" => match v.as_str() {
                    "All" => q.dry_run = true,
                    "" => {}
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "Invalid dry run value {other:?}: supported values: \"All\""
                        )));
                    }
                },
                "fieldManager" => q.field_manager = Some(v),
                "fieldValidation" => match v.as_str() {
                    "Strict" | "Warn" | "Ignore" | "" => q.field_validation = Some(v).filter(|s| !s.is_empty()),
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "Invalid fieldValidation value {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
                        )));
                    }
                },
                "gracePeriodSeconds" => q.grace_period_seconds = Some(parse_int("gracePeriodSeconds", &v)?),
                "propagationPolicy" => q.propagation_policy = Some(v),
                "orphanDependents" => q.orphan_dependents = Some(parse_bool("orphanDependents", &v)?),
                "force" => q.force = Some(parse_bool("force", &v)?),
                "includeObject" => q.include_object = Some(v).filter(|s| !s.is_empty()),
                _ => {}
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(method: Method, path: &str) -> ResourceRequest {
        match route(&method, path, false).unwrap() {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn reads_paths_as_upstream() {
        let r = res(Method::GET, "/api/v1/namespaces/default/pods/web");
        assert_eq!(
            (r.verb, r.resource.plural, r.namespace.as_deref(), r.name.as_deref()),
            (Verb::Get, "pods", Some("default"), Some("web"))
        );
        let r = res(Method::GET, "/api/v1/pods");
        assert_eq!((r.verb, r.namespace), (Verb::List, None));
        let r = res(Method::PUT, "/api/v1/namespaces/kube-system/status");
        assert_eq!(
            (r.resource.plural, r.name.as_deref(), r.subresource.as_deref()),
            ("namespaces", Some("kube-system"), Some("status"))
        );
        let r = res(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!((r.verb, r.resource.plural, r.name.as_deref()), (Verb::Get, "namespaces", Some("kube-system")));
        let r = res(Method::GET, "/api/v1/namespaces");
        assert_eq!((r.verb, r.resource.plural, r.namespace), (Verb::List, "namespaces", None));
        let r = res(Method::PATCH, "/apis/apps/v1/namespaces/a/deployments/d/scale");
        assert_eq!((r.verb, r.subresource.as_deref()), (Verb::Patch, Some("scale")));
        let r = res(Method::GET, "/api/v1/watch/namespaces/a/configmaps");
        assert_eq!(r.verb, Verb::Watch);
        let r = res(Method::DELETE, "/api/v1/namespaces/a/configmaps");
        assert_eq!(r.verb, Verb::DeleteCollection);
        assert_eq!(route(&Method::GET, "/apis/nope/v1/things", false).unwrap_err().code, 404);
        assert_eq!(route(&Method::GET, "/api/v1/namespaces/a/nodes/x", false).unwrap_err().code, 404);
        assert_eq!(route(&Method::POST, "/api/v1/pods", false).unwrap_err().code, 405);
        assert_eq!(route(&Method::GET, "/api/v1/namespaces/a/pods/x/nonsense", false).unwrap_err().code, 404);
        assert_eq!(route(&Method::POST, "/api/v1/namespaces/a/configmaps/x", false).unwrap_err().code, 405);
        assert_eq!(route(&Method::POST, "/api/v1/namespaces/x", false).unwrap_err().code, 405);
        assert_eq!(route(&Method::PUT, "/api/v1/namespaces/a/configmaps", false).unwrap_err().code, 405);
        assert_eq!(route(&Method::PATCH, "/apis/apps/v1/namespaces/a/deployments", false).unwrap_err().code, 405);
        assert_eq!(res(Method::POST, "/api/v1/namespaces/a/pods/x/binding").verb, Verb::Create);
        assert_eq!(route(&Method::DELETE, "/api/v1/watch/namespaces/a/configmaps/x", false).unwrap_err().code, 405);
        assert_eq!(route(&Method::POST, "/api/v1/watch/namespaces/a/configmaps", false).unwrap_err().code, 405);
        assert!(matches!(route(&Method::GET, "/openapi/v2", false), Ok(Route::OpenApiV2)));
        assert!(matches!(route(&Method::GET, "/openapi/v3/", false), Ok(Route::OpenApiV3)));
        match route(&Method::GET, "/openapi/v3/apis/apps/v1", false) {
            Ok(Route::OpenApiV3Document(key)) => assert_eq!(key, "apis/apps/v1"),
            other => panic!("{other:?}"),
        }
        assert_eq!(route(&Method::GET, "/openapi/v4", false).unwrap_err().code, 404);
    }

    #[test]
    fn checks_query_values() {
        let q = Query::parse(Some("&limit=5&watch=1&labelSelector=a%3Db&dryRun=All")).unwrap();
        assert_eq!(q.limit, Some(5));
        assert!(q.watch && q.dry_run);
        assert_eq!(q.label_selector.as_deref(), Some("a=b"));
        for bad in ["limit=-1", "limit=x", "timeoutSeconds=abc", "watch=maybe", "dryRun=Some", "fieldValidation=Loose"]
        {
            assert_eq!(Query::parse(Some(bad)).unwrap_err().code, 400, "{bad}");
        }
    }
}
