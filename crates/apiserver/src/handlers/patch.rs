//! PATCH with `application/json-patch+json` (RFC 6902, atomic),
//! `application/merge-patch+json` (RFC 7386) and `application/strategic-merge-patch+json`
//! (upstream's strategic merge patch, [`rudder_api::strategic`], with the patch markers of
//! the kind the URL addresses). Server-side apply (`application/apply-patch+yaml`) is not
//! served: 415, as upstream answers with the feature off.

use crate::decode::FieldValidation;
use crate::handlers::update::update_object_encoded;
use crate::request::ResourceRequest;
use crate::server::{ApiServer, Ctx};
use crate::status::{ApiError, ApiResult};
use axum::body::Body;
use http::Response;
use rudder_api::schema::{self, Message};
use rudder_api::strategic::{self, StrategicError};
use serde_json::Value;

/// A parsed patch document.
pub enum Patch {
    /// RFC 6902 operations.
    Json(json_patch::Patch),
    /// RFC 7386 merge patch.
    Merge(Value),
    /// Strategic merge patch (a JSON object).
    Strategic(Value),
}

/// Media types accepted for PATCH, in upstream's order.
pub const PATCH_TYPES: &[&str] =
    &["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"];

impl Patch {
    /// Parses a patch body of the given media type.
    pub fn parse(content_type: &str, body: &[u8]) -> ApiResult<Patch> {
        match content_type {
            "application/json-patch+json" => {
                let ops: json_patch::Patch = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("the patch is not a valid JSON patch: {e}")))?;
                Ok(Patch::Json(ops))
            }
            "application/merge-patch+json" => {
                let v: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
                if !v.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                Ok(Patch::Merge(v))
            }
            "application/strategic-merge-patch+json" => {
                let v: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
                // Upstream decodes the patch into a map: `null` is an empty patch, anything
                // else that is not an object is refused.
                let kind = match &v {
                    Value::Object(_) => return Ok(Patch::Strategic(v)),
                    Value::Null => return Ok(Patch::Strategic(Value::Object(Default::default()))),
                    Value::Array(_) => "array",
                    Value::String(_) => "string",
                    Value::Number(_) => "number",
                    Value::Bool(_) => "bool",
                };
                Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
                )))
            }
            other => Err(ApiError::unsupported_media_type(other, PATCH_TYPES)),
        }
    }

    /// Applies the patch to a copy of `original`. `schema` is the message of the object's
    /// kind ([`schema_for`]); only strategic merge patches use it.
    pub fn apply(&self, original: &Value, schema: Option<&'static Message>) -> ApiResult<Value> {
        let doc = match self {
            Patch::Json(ops) => {
                let mut doc = original.clone();
                json_patch::patch(&mut doc, ops).map_err(|e| ApiError::unprocessable(e.to_string()))?;
                doc
            }
            Patch::Merge(p) => {
                let mut doc = original.clone();
                json_patch::merge(&mut doc, p);
                doc
            }
            Patch::Strategic(p) => strategic::apply(original, p, schema).map_err(strategic_error)?,
        };
        if !doc.is_object() {
            return Err(ApiError::unprocessable("the patched document is not an object"));
        }
        Ok(doc)
    }

    /// [`Patch::apply`] for a write that reads only `apiVersion`, `kind`, `metadata` and
    /// `status` of the patched object (a `status` subresource write): a merge or strategic
    /// merge patch whose top level has no directives merges each top-level field on its own,
    /// so the fields it does not name are left out of the result rather than copied. Those
    /// four and every field the patch names come out as [`Patch::apply`] makes them, errors
    /// included.
    pub fn apply_for_status(&self, original: &Value, schema: Option<&'static Message>) -> ApiResult<Value> {
        let (Some(Value::Object(top)), Value::Object(fields)) = (self.document(), original) else {
            return self.apply(original, schema);
        };
        if top.keys().any(|k| k.starts_with('$')) {
            return self.apply(original, schema);
        }
        let mut sparse = serde_json::Map::new();
        for key in ["apiVersion", "kind", "metadata", "status"].into_iter().chain(top.keys().map(String::as_str)) {
            if !sparse.contains_key(key)
                && let Some(v) = fields.get(key)
            {
                sparse.insert(key.to_string(), v.clone());
            }
        }
        let mut doc = Value::Object(sparse);
        match self {
            Patch::Strategic(p) => doc = strategic::apply_to(doc, p, schema).map_err(strategic_error)?,
            Patch::Merge(p) => json_patch::merge(&mut doc, p),
            Patch::Json(_) => return self.apply(original, schema),
        }
        Ok(doc)
    }

    /// The patch document of a merge or strategic merge patch.
    fn document(&self) -> Option<&Value> {
        match self {
            Patch::Json(_) => None,
            Patch::Merge(p) | Patch::Strategic(p) => Some(p),
        }
    }

    /// Unknown fields of `patched`, the result of this patch: a merge or strategic merge patch
    /// can only have brought them where it reaches ([`crate::decode::unknown_patched_fields`]).
    pub fn unknown_fields(&self, patched: &Value, msg: &'static Message) -> Vec<String> {
        match self.document() {
            Some(p) => crate::decode::unknown_patched_fields(patched, p, msg),
            None => crate::decode::unknown_fields(patched, msg),
        }
    }

    /// Reads the patch of a request: its media type must be a supported patch type (415
    /// otherwise, before the body is read).
    pub async fn from_request(ctx: &mut Ctx) -> ApiResult<Patch> {
        let ct = ctx.content_type();
        if !PATCH_TYPES.contains(&ct.as_str()) {
            return Err(ApiError::unsupported_media_type(&ct, PATCH_TYPES));
        }
        let body = ctx.body_bytes().await?;
        Patch::parse(&ct, &body)
    }
}

/// The schema a patch of this request applies with: the subresource's kind when it has its
/// own (`scale` speaks autoscaling/v1 `Scale`; `status` is the parent's kind), else the
/// resource's.
pub fn schema_for(req: &ResourceRequest) -> Option<&'static Message> {
    let res = req.resource;
    match req.subresource.as_deref().and_then(|name| res.subresource(name)) {
        Some(sub) if sub.group.is_empty() => schema::for_kind(sub.version, sub.kind),
        Some(sub) => schema::for_kind(&format!("{}/{}", sub.group, sub.version), sub.kind),
        None => schema::for_kind(&res.api_version(), res.kind),
    }
}

/// Upstream answers 400 for malformed patches and 422 for patches it cannot merge.
fn strategic_error(e: StrategicError) -> ApiError {
    if e.is_bad_request() { ApiError::bad_request(e.message()) } else { ApiError::unprocessable(e.message()) }
}

/// `PATCH .../<resource>/<name>[/status]`.
pub async fn patch(srv: &ApiServer, req: &ResourceRequest, ctx: &mut Ctx) -> ApiResult<Response<Body>> {
    let out = crate::negotiate::for_request(ctx, crate::negotiate::Endpoint::WRITE)?;
    let patch = Patch::from_request(ctx).await?;
    let schema = schema_for(req);
    let validation = FieldValidation::from_query(ctx.query.field_validation.as_deref());
    let mut unknown = Vec::new();
    let status_only = req.subresource.as_deref() == Some("status");
    let updated = update_object_encoded(srv, req, ctx.query.dry_run, |old| {
        let patched = if status_only { patch.apply_for_status(old, schema)? } else { patch.apply(old, schema)? };
        // Fields the schema does not know can only have come from the patch.
        if let Some(msg) = schema.filter(|_| validation != FieldValidation::Ignore) {
            unknown = patch.unknown_fields(&patched, msg);
            if validation == FieldValidation::Strict && !unknown.is_empty() {
                let list: Vec<String> = unknown.iter().map(|p| format!("unknown field {p:?}")).collect();
                return Err(ApiError::bad_request(format!("strict decoding error: {}", list.join(", "))));
            }
        }
        Ok(patched)
    })
    .await?;
    ctx.warnings.extend(unknown.iter().map(|p| format!("unknown field {p:?}")));
    crate::negotiate::respond_encoded(&out, 200, &updated.object, updated.json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ApiServer;
    use serde_json::json;

    #[test]
    fn strategic_patches_parse_and_apply() {
        let deployment = schema::for_kind("apps/v1", "Deployment");
        let original = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.25"},
            {"name": "sidecar", "image": "busybox"},
        ]}}}});
        let body = br#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}}}"#;
        let patch = Patch::parse("application/strategic-merge-patch+json", body).unwrap();
        let patched = patch.apply(&original, deployment).unwrap();
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox"}])
        );
        // A merge patch of the same body replaces the list.
        let merge = Patch::parse("application/merge-patch+json", body).unwrap();
        let merged = merge.apply(&original, deployment).unwrap();
        assert_eq!(merged["spec"]["template"]["spec"]["containers"], json!([{"name": "web", "image": "nginx:1.27"}]));

        let empty = Patch::parse("application/strategic-merge-patch+json", b"null").unwrap();
        assert_eq!(empty.apply(&original, deployment).unwrap(), original);
    }

    #[test]
    fn strategic_patch_errors() {
        let deployment = schema::for_kind("apps/v1", "Deployment");
        let ct = "application/strategic-merge-patch+json";
        assert_eq!(Patch::parse(ct, b"[1]").err().unwrap().code, 400);
        assert_eq!(Patch::parse(ct, b"{").err().unwrap().code, 400);

        let original = json!({"spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}});
        let missing_key =
            Patch::parse(ct, br#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#).unwrap();
        let err = missing_key.apply(&original, deployment).unwrap_err();
        assert_eq!((err.code, err.reason), (400, "BadRequest"));
        assert_eq!(err.message, "map: map[image:x] does not contain declared merge key: name");

        let with_finalizers = json!({"metadata": {"finalizers": []}});
        let lists = Patch::parse(ct, br#"{"metadata":{"finalizers":[["a"]]}}"#).unwrap();
        assert_eq!(lists.apply(&with_finalizers, deployment).unwrap_err().code, 422);
    }

    #[test]
    fn status_patches_merge_what_a_status_write_reads_as_a_full_apply_does() {
        let pod = schema::for_kind("v1", "Pod");
        let original = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": "n1"},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
        });
        let strategic = "application/strategic-merge-patch+json";
        let merge = "application/merge-patch+json";
        let cases: [(&str, &[u8]); 8] = [
            (strategic, br#"{"metadata":{"uid":"u"},"status":{"phase":"Running","podIP":"10.0.0.1","conditions":[{"type":"Ready","status":"True"}]}}"#),
            (strategic, br#"{"spec":{"containers":[{"name":"c","image":"j"}]},"status":{"phase":"Running"}}"#),
            (strategic, br#"{"status":{"$setElementOrder/conditions":[{"type":"Ready"}],"conditions":[{"type":"Ready","status":"False"}]}}"#),
            (strategic, br#"{"$patch":"replace","metadata":{"name":"p"},"status":{"phase":"Failed"}}"#),
            (strategic, br#"{"status":null,"kind":"Pod"}"#),
            (merge, br#"{"status":{"conditions":null,"phase":"Running"},"spec":{"nodeName":null}}"#),
            (merge, br#"{"metadata":{"labels":{"a":null}}}"#),
            ("application/json-patch+json", br#"[{"op":"move","from":"/spec/nodeName","path":"/status/nominatedNodeName"}]"#),
        ];
        for (ct, body) in cases {
            let patch = Patch::parse(ct, body).unwrap();
            let full = patch.apply(&original, pod).unwrap();
            let sparse = patch.apply_for_status(&original, pod).unwrap();
            for field in ["apiVersion", "kind", "metadata", "status"] {
                assert_eq!(full.get(field), sparse.get(field), "{field} of {}", String::from_utf8_lossy(body));
            }
        }
        // Errors anywhere in the patch are still found.
        for body in [
            &br#"{"spec":{"containers":[{"image":"x"}]},"status":{"phase":"Running"}}"#[..],
            br#"{"status":{"conditions":[{"status":"True"}]}}"#,
            br#"{"spec":{"containers":[["a"]]},"status":{"phase":"Running"}}"#,
            br#"{"metadata":{"$patch":"bogus"}}"#,
        ] {
            let patch = Patch::parse(strategic, body).unwrap();
            let full = patch.apply(&original, pod).unwrap_err();
            let sparse = patch.apply_for_status(&original, pod).unwrap_err();
            assert_eq!((full.code, full.message), (sparse.code, sparse.message));
        }
    }

    #[test]
    fn unknown_fields_of_a_patch_are_found_where_it_reaches() {
        let pod = schema::for_kind("v1", "Pod").unwrap();
        let original = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}, {"name": "d", "image": "i"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "c", "ready": false}]},
        });
        for (ct, body) in [
            ("application/strategic-merge-patch+json", &br#"{"spec":{"containers":[{"name":"d","imagePullPolcy":"x"}],"bogus":1},"status":{"phaze":"Running","containerStatuses":[{"name":"e","redy":true}]},"top":{"x":1}}"#[..]),
            ("application/strategic-merge-patch+json", br#"{"metadata":{"labels":{"x":"y"},"lables":{}},"status":{"conditions":[{"type":"Ready","status":"True","extra":1}]}}"#),
            ("application/merge-patch+json", br#"{"status":{"hostIPs":[{"ip":"10.0.0.1","mask":8}]},"spec":{"containers":[{"name":"c","imag":"j"}]}}"#),
            ("application/merge-patch+json", br#"{"status":{"phase":"Running"}}"#),
        ] {
            let patch = Patch::parse(ct, body).unwrap();
            let patched = patch.apply(&original, Some(pod)).unwrap();
            let expected = crate::decode::unknown_fields(&patched, pod);
            assert_eq!(patch.unknown_fields(&patched, pod), expected, "{}", String::from_utf8_lossy(body));
            let sparse = patch.apply_for_status(&original, Some(pod)).unwrap();
            assert_eq!(patch.unknown_fields(&sparse, pod), expected, "{}", String::from_utf8_lossy(body));
        }
        let patch = Patch::parse(
            "application/strategic-merge-patch+json",
            br#"{"spec":{"containers":[{"name":"c","imagePullPolcy":"x"}]},"status":{"phaze":"Running"}}"#,
        )
        .unwrap();
        let patched = patch.apply(&original, Some(pod)).unwrap();
        assert_eq!(patch.unknown_fields(&patched, pod), ["spec.containers[0].imagePullPolcy", "status.phaze"]);
    }

    /// An in-memory server and the admin's requests to it.
    struct Server {
        api: std::sync::Arc<ApiServer>,
        _shutdown: tokio::sync::watch::Sender<bool>,
    }

    struct Reply {
        code: u16,
        warnings: Vec<String>,
        body: Value,
    }

    impl Server {
        async fn start() -> Server {
            let store = rudder_store::memory();
            crate::bootstrap_namespaces(&*store).await.unwrap();
            let cache = crate::cache::WatchCache::start(store.clone()).await.unwrap();
            let (tx, rx) = tokio::sync::watch::channel(false);
            let api = ApiServer {
                store,
                cache,
                authn: Default::default(),
                shutdown: rx,
                ready: true.into(),
                advertise: "127.0.0.1:6443".into(),
                kubelet_tls: None,
                ca_cert_pem: String::new(),
            };
            Server { api: std::sync::Arc::new(api), _shutdown: tx }
        }

        async fn call(&self, method: &str, path: &str, content_type: &str, body: Value) -> Reply {
            use http_body_util::BodyExt;
            let admin = crate::authn::User {
                name: "admin".into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
                ..Default::default()
            };
            let conn = std::sync::Arc::new(crate::serve::ConnInfo { cert_user: Some(admin) });
            let req = http::Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::CONTENT_TYPE, content_type)
                .body(Body::from(if body.is_null() { Vec::new() } else { serde_json::to_vec(&body).unwrap() }))
                .unwrap();
            let resp = self.api.clone().handle(req, conn).await;
            let code = resp.status().as_u16();
            let warnings =
                resp.headers().get_all(http::header::WARNING).iter().map(|v| v.to_str().unwrap().to_string()).collect();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            // Bodies are what `serde_json` writes for them, however they were made.
            assert_eq!(std::str::from_utf8(&bytes).unwrap(), serde_json::to_string(&body).unwrap());
            Reply { code, warnings, body }
        }

        async fn status_patch(&self, name: &str, patch: Value) -> Reply {
            let path = format!("/api/v1/namespaces/default/pods/{name}/status");
            self.call("PATCH", &path, "application/strategic-merge-patch+json", patch).await
        }

        async fn get(&self, name: &str) -> Value {
            self.call("GET", &format!("/api/v1/namespaces/default/pods/{name}"), "application/json", Value::Null)
                .await
                .body
        }

        /// Writes a pod straight into the store, as an older server may have left it.
        async fn store_pod(&self, pod: Value) {
            let key = format!("/registry/pods/default/{}", pod["metadata"]["name"].as_str().unwrap());
            self.api.store.create(&key, crate::object::to_bytes(&pod)).await.unwrap();
        }
    }

    fn pod(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeName": "node-1"}})
    }

    fn running(uid: &Value) -> Value {
        json!({"metadata": {"uid": uid}, "status": {
            "phase": "Running", "hostIP": "192.168.0.1", "hostIPs": [{"ip": "192.168.0.1"}],
            "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}], "startTime": "2024-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2024-01-01T00:00:01Z"}],
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "nginx", "imageID": "",
                "state": {"running": {"startedAt": "2024-01-01T00:00:01Z"}}}],
        }})
    }

    #[tokio::test]
    async fn status_patches_change_the_status_only() {
        let srv = Server::start().await;
        let created = srv.call("POST", "/api/v1/namespaces/default/pods", "application/json", pod("p")).await;
        assert_eq!(created.code, 201, "{}", created.body);
        let created = created.body;

        let mut patch = running(&created["metadata"]["uid"]);
        patch["spec"] = json!({"nodeName": "node-2", "containers": [{"name": "c", "image": "evil"}]});
        patch["metadata"]["labels"] = json!({"app": "other"});
        let patched = srv.status_patch("p", patch).await;
        assert_eq!(patched.code, 200, "{}", patched.body);
        assert!(patched.warnings.is_empty(), "{:?}", patched.warnings);
        let patched = patched.body;
        assert_eq!(patched["spec"], created["spec"]);
        assert_eq!(patched["metadata"]["labels"], created["metadata"]["labels"]);
        assert_eq!(patched["status"]["phase"], "Running");
        assert_eq!(patched["status"]["podIPs"], json!([{"ip": "10.0.0.7"}]));
        assert_eq!(
            patched["status"]["conditions"],
            json!([
                {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:01Z"},
            ])
        );
        assert_eq!(patched["status"]["qosClass"], created["status"]["qosClass"], "the patch merges into the status");
        let rv = |o: &Value| o["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap();
        assert!(rv(&patched) > rv(&created));
        assert_eq!(srv.get("p").await, patched);
        let cache = &srv.api.cache;
        assert!(cache.wait_for(srv.api.store.current_revision(), std::time::Duration::from_secs(5)).await);
        assert_eq!(cache.primed_count(), 0, "the cache indexed the writes from their objects");
        let cached = cache.get("/registry/pods/default/p").unwrap();
        assert!(cached.fields.contains(&("status.podIP".into(), "10.0.0.7".into())), "{:?}", cached.fields);
        assert_eq!(cached.labels, [("app".to_string(), "web".to_string())].into());
        let stored = srv.api.store.get("/registry/pods/default/p").await.unwrap().unwrap().value;
        let mut expected = patched.clone();
        expected["metadata"].as_object_mut().unwrap().remove("resourceVersion");
        assert_eq!(stored, crate::object::to_bytes(&expected), "stored as encoded whole");

        // The same patch again changes nothing and writes nothing.
        let again = srv.status_patch("p", running(&created["metadata"]["uid"])).await;
        assert_eq!((again.code, &again.body), (200, &patched));

        // Singular IPs mirror the lists, as on any pod write.
        let single = srv.status_patch("p", json!({"status": {"podIP": "10.0.0.8", "podIPs": null}})).await;
        assert_eq!(single.body["status"]["podIPs"], json!([{"ip": "10.0.0.8"}]));
        let list = srv.status_patch("p", json!({"status": {"hostIPs": [{"ip": "192.168.0.2"}]}})).await;
        assert_eq!(list.body["status"]["hostIP"], "192.168.0.2");

        // A merge patch removing the status leaves none.
        let cleared = srv
            .call(
                "PATCH",
                "/api/v1/namespaces/default/pods/p/status",
                "application/merge-patch+json",
                json!({"status": null}),
            )
            .await;
        assert_eq!(cleared.code, 200, "{}", cleared.body);
        assert!(cleared.body.get("status").is_none(), "{}", cleared.body);
        assert_eq!(cleared.body["spec"], created["spec"]);
    }

    #[tokio::test]
    async fn status_patch_errors() {
        let srv = Server::start().await;
        let created = srv.call("POST", "/api/v1/namespaces/default/pods", "application/json", pod("p")).await.body;
        let uid = &created["metadata"]["uid"];

        let mistyped = srv.status_patch("p", json!({"status": {"phase": 5}})).await;
        assert_eq!((mistyped.code, mistyped.body["reason"].as_str()), (400, Some("BadRequest")));
        assert_eq!(
            mistyped.body["message"],
            "Pod in version \"v1\" cannot be handled as a Pod: invalid type: integer `5`, expected a string"
        );

        let other_uid =
            srv.status_patch("p", json!({"metadata": {"uid": "other"}, "status": {"phase": "Running"}})).await;
        assert_eq!((other_uid.code, other_uid.body["reason"].as_str()), (409, Some("Conflict")));
        assert!(
            other_uid.body["message"].as_str().unwrap().contains("UID in precondition: other"),
            "{}",
            other_uid.body
        );

        let stale =
            srv.status_patch("p", json!({"metadata": {"resourceVersion": "1"}, "status": {"phase": "Running"}})).await;
        assert_eq!((stale.code, stale.body["reason"].as_str()), (409, Some("Conflict")));

        assert_eq!(srv.status_patch("p", running(uid)).await.code, 200);
        let bad_merge = srv.status_patch("p", json!({"status": {"conditions": [{"status": "True"}]}})).await;
        assert_eq!(bad_merge.code, 400);
        assert_eq!(bad_merge.body["message"], "map: map[status:True] does not contain declared merge key: type");

        // Unknown fields are found in every part of the patch: warned about, or refused with
        // fieldValidation=Strict.
        let patch = json!({"metadata": {"uid": uid}, "spec": {"bogus": 1}, "status": {"phaze": "Running",
            "containerStatuses": [{"name": "c", "redy": true}]}});
        let warned = srv.status_patch("p", patch.clone()).await;
        assert_eq!(warned.code, 200, "{}", warned.body);
        assert_eq!(
            warned.warnings,
            [
                r#"299 - "unknown field \"spec.bogus\"""#,
                r#"299 - "unknown field \"status.containerStatuses[0].redy\"""#,
                r#"299 - "unknown field \"status.phaze\"""#,
            ]
        );
        assert!(warned.body["status"].get("phaze").is_none());
        let path = "/api/v1/namespaces/default/pods/p/status?fieldValidation=Strict";
        let strict = srv.call("PATCH", path, "application/strategic-merge-patch+json", patch).await;
        assert_eq!(strict.code, 400);
        assert_eq!(
            strict.body["message"],
            r#"strict decoding error: unknown field "spec.bogus", unknown field "status.containerStatuses[0].redy", unknown field "status.phaze""#
        );

        let missing = srv.status_patch("q", json!({"status": {"phase": "Running"}})).await;
        assert_eq!((missing.code, missing.body["reason"].as_str()), (404, Some("NotFound")));
    }

    #[tokio::test]
    async fn status_writes_keep_the_stored_spec_unchecked_and_the_metadata_checked() {
        let srv = Server::start().await;
        // A spec today's rules refuse (an unknown pull policy, a bad restart policy).
        let mut legacy = pod("legacy");
        legacy["metadata"]["uid"] = json!("u-1");
        legacy["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
        legacy["metadata"]["namespace"] = json!("default");
        legacy["spec"]["containers"][0]["imagePullPolicy"] = json!("Sometimes");
        legacy["spec"]["restartPolicy"] = json!("Sometimes");
        srv.store_pod(legacy.clone()).await;

        let patched = srv.status_patch("legacy", json!({"status": {"phase": "Running"}})).await;
        assert_eq!(patched.code, 200, "{}", patched.body);
        assert_eq!(patched.body["spec"], legacy["spec"], "not defaulted either");
        assert_eq!(patched.body["status"], json!({"phase": "Running"}));
        let put = {
            let mut p = patched.body.clone();
            p["status"]["phase"] = json!("Succeeded");
            srv.call("PUT", "/api/v1/namespaces/default/pods/legacy/status", "application/json", p).await
        };
        assert_eq!(put.code, 200, "{}", put.body);
        assert_eq!(put.body["status"], json!({"phase": "Succeeded"}));

        // The pod itself still gets the whole of validation.
        let relabel = srv
            .call(
                "PATCH",
                "/api/v1/namespaces/default/pods/legacy",
                "application/strategic-merge-patch+json",
                json!({"metadata": {"labels": {"app": "other"}}}),
            )
            .await;
        assert_eq!((relabel.code, relabel.body["reason"].as_str()), (422, Some("Invalid")), "{}", relabel.body);

        // Metadata is still validated on a status write.
        let mut bad_meta = pod("bad-meta");
        bad_meta["metadata"]["uid"] = json!("u-2");
        bad_meta["metadata"]["namespace"] = json!("default");
        bad_meta["metadata"]["labels"] = json!({"app": "-web-"});
        srv.store_pod(bad_meta).await;
        let refused = srv.status_patch("bad-meta", json!({"status": {"phase": "Running"}})).await;
        assert_eq!((refused.code, refused.body["reason"].as_str()), (422, Some("Invalid")), "{}", refused.body);
        assert_eq!(refused.body["details"]["causes"][0]["field"], "metadata.labels");
    }

    /// Where a kubelet's status patch spends its time, next to what a whole-object write of
    /// the same patch costs (`cargo test --release -p rudder-apiserver status_patch_costs --
    /// --ignored --nocapture`). Prints times; asserts nothing about them.
    #[tokio::test]
    #[ignore]
    async fn status_patch_costs() {
        const N: u32 = 10_000;
        let srv = Server::start().await;
        let mut web = pod("web");
        web["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "web-5d4f", "uid": "8d3c7d9e-1111-2222-3333-444455556666", "controller": true}]);
        web["metadata"]["labels"] = json!({"app": "web", "pod-template-hash": "5d4f"});
        web["spec"]["containers"][0] = json!({"name": "c", "image": "nginx:1.27",
            "ports": [{"containerPort": 80, "name": "http"}],
            "env": [{"name": "A", "value": "1"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "readinessProbe": {"httpGet": {"path": "/", "port": 80}}});
        let created = srv.call("POST", "/api/v1/namespaces/default/pods", "application/json", web).await.body;
        let uid = created["metadata"]["uid"].clone();
        let patch_of = |i: u32| {
            let mut p = running(&uid);
            p["status"]["containerStatuses"][0]["restartCount"] = json!(i);
            p
        };
        srv.status_patch("web", patch_of(0)).await;
        let kv = srv.api.store.get("/registry/pods/default/web").await.unwrap().unwrap();
        println!("stored pod: {} bytes", kv.value.len());
        let time = |name: &str, f: &mut dyn FnMut()| {
            let start = std::time::Instant::now();
            for _ in 0..N {
                f();
            }
            println!("{name:>14}: {:>7.2} µs", start.elapsed().as_secs_f64() * 1e6 / f64::from(N));
        };
        let res = rudder_api::catalog::lookup("", "v1", "pods").unwrap();
        let schema = schema::for_kind("v1", "Pod");
        let patch =
            Patch::parse("application/strategic-merge-patch+json", &serde_json::to_vec(&patch_of(1)).unwrap()).unwrap();
        let old = crate::object::from_kv(&kv).unwrap();
        let patched = patch.apply_for_status(&old, schema).unwrap();
        let full = patch.apply(&old, schema).unwrap();
        let prepared =
            crate::registry::prepare_update(res, "Pod", Some("status"), old.clone(), patched.clone()).unwrap();
        let status = serde_json::to_vec(&prepared.object["status"]).unwrap();
        time("decode", &mut || drop(std::hint::black_box(crate::object::from_kv(&kv))));
        time("apply", &mut || drop(std::hint::black_box(patch.apply_for_status(&old, schema))));
        time("whole apply", &mut || drop(std::hint::black_box(patch.apply(&old, schema))));
        time("unknown", &mut || drop(std::hint::black_box(patch.unknown_fields(&patched, schema.unwrap()))));
        time("whole unknown", &mut || {
            drop(std::hint::black_box(crate::decode::unknown_fields(&full, schema.unwrap())))
        });
        time("copies", &mut || drop(std::hint::black_box((old.clone(), patched.clone()))));
        time("copies+prepare", &mut || {
            let (old, new) = (old.clone(), patched.clone());
            drop(std::hint::black_box(crate::registry::prepare_update(res, "Pod", Some("status"), old, new)))
        });
        time("copy+typed", &mut || {
            let new = full.clone();
            drop(std::hint::black_box((res.ops.prepare)(new, Some(&old), rudder_api::kinds::Mode::Full)))
        });
        time("splice", &mut || {
            drop(std::hint::black_box(crate::object::with_member(&kv.value, "status", Some(&status))))
        });
        time("encode", &mut || drop(std::hint::black_box(crate::object::to_bytes(&prepared.object))));
        let start = std::time::Instant::now();
        for i in 0..N {
            let reply = srv.status_patch("web", patch_of(i + 2)).await;
            let rv = reply.body["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
            assert!(srv.api.cache.wait_for(rv, std::time::Duration::from_secs(5)).await);
        }
        println!("{:>14}: {:>7.2} µs", "request", start.elapsed().as_secs_f64() * 1e6 / f64::from(N));
    }

    #[test]
    fn server_side_apply_is_unsupported() {
        let err = Patch::parse("application/apply-patch+yaml", b"{}").err().unwrap();
        assert_eq!(err.code, 415);
        assert!(err.message.contains("application/strategic-merge-patch+json"), "{}", err.message);
    }
}
