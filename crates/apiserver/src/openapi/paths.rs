//! The REST paths of the OpenAPI documents: for every resource in the catalog, the
//! operations its verbs allow, named and tagged as upstream (`listAppsV1NamespacedDeployment`,
//! `x-kubernetes-action`, `x-kubernetes-group-version-kind`), with their query parameters,
//! bodies and responses, written as Swagger 2.0 or OpenAPI 3.0.
//!
//! kubectl reads two things from here: the GVK of a resource's operations (`explain` finds
//! the schema through it) and whether the GVK's PATCH operation lists a `fieldValidation`
//! query parameter (server-side field validation) and a strategic merge patch body
//! (client-side apply computes such patches from the schemas).

use super::schemas::{DELETE_OPTIONS, Definitions, Flavor, PATCH, STATUS, WATCH_EVENT};
use rudder_api::catalog::{Resource, Subresource};
use serde_json::{Map, Value, json};

/// A parameter's JSON type and what it means.
struct Param {
    name: &'static str,
    kind: &'static str,
    description: &'static str,
}

const fn param(name: &'static str, kind: &'static str, description: &'static str) -> Param {
    Param { name, kind, description }
}

/// Every query parameter an operation may list.
const QUERY_PARAMS: &[Param] = &[
    param(
        "allowWatchBookmarks",
        "boolean",
        "Asks for BOOKMARK events while watching, which carry only a resourceVersion. The server may send them or not; ignored when not watching.",
    ),
    param(
        "continue",
        "string",
        "The continue token of a previous page of this list, to fetch the next page. Tokens expire; an expired one is answered with 410 Gone.",
    ),
    param(
        "dryRun",
        "string",
        "When set to All, the request is checked and processed in full but nothing is persisted. No other value is accepted.",
    ),
    param(
        "fieldManager",
        "string",
        "Names the actor making the change, for field ownership (managedFields). At most 128 printable characters.",
    ),
    param(
        "fieldSelector",
        "string",
        "Restricts the objects to those whose fields match, e.g. metadata.name=x. Defaults to everything.",
    ),
    param(
        "fieldValidation",
        "string",
        "How the server treats fields of the request body that the schema does not know, or that appear twice: Ignore drops them silently, Warn drops them and reports each in a Warning header (the default), Strict rejects the request with a 400 naming them.",
    ),
    param(
        "force",
        "boolean",
        "On an apply patch, takes over the fields other managers own instead of failing with a conflict. Must be unset for other patch types.",
    ),
    param(
        "gracePeriodSeconds",
        "integer",
        "Seconds the object has to shut down before it is deleted; 0 deletes it at once. Unset uses the object's own default.",
    ),
    param("labelSelector", "string", "Restricts the objects to those whose labels match. Defaults to everything."),
    param(
        "limit",
        "integer",
        "The most objects to return in one page. When more remain, the list metadata carries a continue token for the next page.",
    ),
    param(
        "orphanDependents",
        "boolean",
        "Deprecated in favour of propagationPolicy: whether dependents are orphaned. Setting both is an error.",
    ),
    param(
        "propagationPolicy",
        "string",
        "What happens to dependents: Orphan leaves them, Background deletes them after the object, Foreground deletes them before it.",
    ),
    param(
        "resourceVersion",
        "string",
        "Which version of the data a read may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions.",
    ),
    param(
        "resourceVersionMatch",
        "string",
        "How resourceVersion applies to a list: NotOlderThan or Exact. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions.",
    ),
    param(
        "sendInitialEvents",
        "boolean",
        "With watch=true, starts the stream with ADDED events for the current objects followed by a bookmark that marks the end of them.",
    ),
    param("timeoutSeconds", "integer", "Ends the list or watch call after this many seconds, whatever happens."),
    param(
        "watch",
        "boolean",
        "Streams the changes of the described objects (ADDED, MODIFIED, DELETED) instead of listing them. Start from the resourceVersion of a list to miss nothing.",
    ),
    param("container", "string", "The container to use; defaults to the only container, when there is one."),
    param("follow", "boolean", "Keeps streaming the log as it grows."),
    param(
        "insecureSkipTLSVerifyBackend",
        "boolean",
        "Skips verifying the serving certificate of the node agent the log is read from.",
    ),
    param("limitBytes", "integer", "Stops after this many bytes of log."),
    param("previous", "boolean", "Returns the log of the previous, terminated instance of the container."),
    param("sinceSeconds", "integer", "Returns only the lines written in the last this many seconds."),
    param("tailLines", "integer", "Returns only this many lines from the end of the log."),
    param("timestamps", "boolean", "Prefixes every line with its RFC 3339 timestamp."),
    param("command", "string", "The command to run, one argument per occurrence of the parameter."),
    param("stdin", "boolean", "Attaches the standard input of the process."),
    param("stdout", "boolean", "Attaches the standard output of the process."),
    param("stderr", "boolean", "Attaches the standard error of the process."),
    param("tty", "boolean", "Allocates a terminal for the process."),
    param("ports", "integer", "The container ports to forward."),
];

const LIST: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_QUERY: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE: &[&str] = &["dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy"];
const DELETE_COLLECTION: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];
const LOG: &[&str] = &[
    "container",
    "follow",
    "insecureSkipTLSVerifyBackend",
    "limitBytes",
    "previous",
    "sinceSeconds",
    "tailLines",
    "timestamps",
];
const EXEC: &[&str] = &["command", "container", "stderr", "stdin", "stdout", "tty"];
const ATTACH: &[&str] = &["container", "stderr", "stdin", "stdout", "tty"];
const PORT_FORWARD: &[&str] = &["ports"];

/// The patch bodies upstream accepts for built-in kinds.
pub const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
const JSON: &[&str] = &["application/json"];
const JSON_AND_WATCH: &[&str] = &["application/json", "application/json;stream=watch"];
const ANY: &[&str] = &["*/*"];
const TEXT: &[&str] = &["text/plain"];

/// What an operation answers with.
enum Schema {
    /// An object of this definition.
    Def(String),
    /// Text.
    Text,
}

/// One operation of a path.
struct Operation {
    method: &'static str,
    id: String,
    description: String,
    action: &'static str,
    gvk: (&'static str, &'static str, &'static str),
    query: &'static [&'static str],
    /// Content types and definition of the request body.
    body: Option<(&'static [&'static str], String)>,
    responses: Vec<(u16, &'static str)>,
    response: Option<Schema>,
    produces: &'static [&'static str],
}

/// A path and its operations.
struct PathItem {
    path: String,
    /// Path-level parameters: `name`, `namespace`, `path` (`in: path`) and `pretty` (query).
    params: Vec<Value>,
    operations: Vec<Operation>,
}

/// `Apps`, `Core`, `RbacAuthorization`: the group as upstream spells it in operation ids.
fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group.trim_end_matches(".k8s.io").split('.').map(capitalize).collect()
}

/// `core_v1`, `apps_v1`, `rbacAuthorization_v1`: the tag of a group version's operations.
fn tag(group: &str, version: &str) -> String {
    let camel = group_camel(group);
    let mut chars = camel.chars();
    let lower: String = chars.next().map(|c| c.to_ascii_lowercase()).into_iter().chain(chars).collect();
    format!("{lower}_{version}")
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect()
}

fn path_param(name: &str, description: String) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "type": "string"})
}

fn pretty() -> Value {
    json!({"name": "pretty", "in": "query", "description": "If 'true', the output is indented.", "type": "string"})
}

/// The paths of one resource.
fn resource_paths(r: &'static Resource, defs: &Definitions) -> Vec<PathItem> {
    let api_version = r.api_version();
    let prefix =
        if r.group.is_empty() { format!("/api/{}", r.version) } else { format!("/apis/{}/{}", r.group, r.version) };
    let gv = format!("{}{}", group_camel(r.group), capitalize(r.version));
    let gvk = (r.group, r.version, r.kind);
    let kind_def = defs.kind(&api_version, r.kind).map(str::to_string);
    let list_def = defs.kind(&api_version, &format!("{}List", r.kind)).map(str::to_string);
    let scope_segment = if r.namespaced { "namespaces/{namespace}/" } else { "" };
    let namespaced = if r.namespaced { "Namespaced" } else { "" };
    let kind = r.kind;
    let id =
        |verb: &str, infix: &str, sub: &str, suffix: &str| format!("{verb}{gv}{infix}{namespaced}{kind}{sub}{suffix}");
    let namespace_param = || path_param("namespace", "The namespace of the objects.".into());
    let name_param = |what: &str| path_param("name", format!("The name of the {what}."));
    let scope_params = |with_name: bool| {
        let mut params = Vec::new();
        if with_name {
            params.push(name_param(kind));
        }
        if r.namespaced {
            params.push(namespace_param());
        }
        params.push(pretty());
        params
    };
    let mut items = Vec::new();

    // The collection.
    let collection = format!("{prefix}/{scope_segment}{}", r.plural);
    let mut ops = Vec::new();
    if r.has_verb("list")
        && let Some(list_def) = &list_def
    {
        ops.push(Operation {
            method: "get",
            id: id("list", "", "", ""),
            description: format!("list or watch objects of kind {kind}"),
            action: "list",
            gvk,
            query: LIST,
            body: None,
            responses: vec![(200, "OK")],
            response: Some(Schema::Def(list_def.clone())),
            produces: JSON_AND_WATCH,
        });
    }
    if r.has_verb("create")
        && let Some(kind_def) = &kind_def
    {
        ops.push(Operation {
            method: "post",
            id: id("create", "", "", ""),
            description: format!("create a {kind}"),
            action: "post",
            gvk,
            query: WRITE,
            body: Some((ANY, kind_def.clone())),
            responses: vec![(200, "OK"), (201, "Created"), (202, "Accepted")],
            response: Some(Schema::Def(kind_def.clone())),
            produces: JSON,
        });
    }
    if r.has_verb("deletecollection") {
        ops.push(Operation {
            method: "delete",
            id: id("delete", "Collection", "", ""),
            description: format!("delete a collection of {kind} objects"),
            action: "deletecollection",
            gvk,
            query: DELETE_COLLECTION,
            body: Some((ANY, DELETE_OPTIONS.into())),
            responses: vec![(200, "OK")],
            response: Some(Schema::Def(STATUS.into())),
            produces: JSON,
        });
    }
    if !ops.is_empty() {
        items.push(PathItem { path: collection.clone(), params: scope_params(false), operations: ops });
    }

    // One object.
    let item = format!("{collection}/{{name}}");
    let mut ops = Vec::new();
    if let Some(kind_def) = &kind_def {
        if r.has_verb("get") {
            ops.push(Operation {
                method: "get",
                id: id("read", "", "", ""),
                description: format!("read the specified {kind}"),
                action: "get",
                gvk,
                query: &[],
                body: None,
                responses: vec![(200, "OK")],
                response: Some(Schema::Def(kind_def.clone())),
                produces: JSON,
            });
        }
        if r.has_verb("update") {
            ops.push(Operation {
                method: "put",
                id: id("replace", "", "", ""),
                description: format!("replace the specified {kind}"),
                action: "put",
                gvk,
                query: WRITE,
                body: Some((ANY, kind_def.clone())),
                responses: vec![(200, "OK"), (201, "Created")],
                response: Some(Schema::Def(kind_def.clone())),
                produces: JSON,
            });
        }
        if r.has_verb("patch") {
            ops.push(patch_operation(
                id("patch", "", "", ""),
                format!("partially update the specified {kind}"),
                gvk,
                kind_def,
            ));
        }
    }
    if r.has_verb("delete") {
        ops.push(Operation {
            method: "delete",
            id: id("delete", "", "", ""),
            description: format!("delete a {kind}"),
            action: "delete",
            gvk,
            query: DELETE,
            body: Some((ANY, DELETE_OPTIONS.into())),
            responses: vec![(200, "OK"), (202, "Accepted")],
            response: Some(Schema::Def(STATUS.into())),
            produces: JSON,
        });
    }
    if !ops.is_empty() {
        items.push(PathItem { path: item.clone(), params: scope_params(true), operations: ops });
    }

    // Lists across namespaces.
    if r.namespaced
        && r.has_verb("list")
        && let Some(list_def) = &list_def
    {
        items.push(PathItem {
            path: format!("{prefix}/{}", r.plural),
            params: vec![pretty()],
            operations: vec![Operation {
                method: "get",
                id: format!("list{gv}{kind}ForAllNamespaces"),
                description: format!("list or watch objects of kind {kind} in every namespace"),
                action: "list",
                gvk,
                query: LIST,
                body: None,
                responses: vec![(200, "OK")],
                response: Some(Schema::Def(list_def.clone())),
                produces: JSON_AND_WATCH,
            }],
        });
    }

    // The deprecated `/watch/` paths.
    if r.has_verb("watch") {
        let watch = |id: String, description: String, action: &'static str| Operation {
            method: "get",
            id,
            description,
            action,
            gvk,
            query: LIST,
            body: None,
            responses: vec![(200, "OK")],
            response: Some(Schema::Def(WATCH_EVENT.into())),
            produces: JSON_AND_WATCH,
        };
        let deprecated = "Deprecated: use the 'watch' parameter of the list operation instead";
        items.push(PathItem {
            path: format!("{prefix}/watch/{scope_segment}{}", r.plural),
            params: scope_params(false),
            operations: vec![watch(
                id("watch", "", "", "List"),
                format!("watch changes to a list of {kind} objects. {deprecated}."),
                "watchlist",
            )],
        });
        items.push(PathItem {
            path: format!("{prefix}/watch/{scope_segment}{}/{{name}}", r.plural),
            params: scope_params(true),
            operations: vec![watch(
                id("watch", "", "", ""),
                format!(
                    "watch changes to an object of kind {kind}. {deprecated}, with a fieldSelector on metadata.name."
                ),
                "watch",
            )],
        });
        if r.namespaced {
            items.push(PathItem {
                path: format!("{prefix}/watch/{}", r.plural),
                params: vec![pretty()],
                operations: vec![watch(
                    format!("watch{gv}{kind}ListForAllNamespaces"),
                    format!("watch changes to a list of {kind} objects in every namespace. {deprecated}."),
                    "watchlist",
                )],
            });
        }
    }

    for s in r.subresources {
        items.extend(subresource_paths(r, s, defs, &item, &gv, &scope_params(true)));
    }
    items
}

/// The PATCH operation of an object (or subresource) whose definition is `def`.
fn patch_operation(
    id: String,
    description: String,
    gvk: (&'static str, &'static str, &'static str),
    def: &str,
) -> Operation {
    Operation {
        method: "patch",
        id,
        description,
        action: "patch",
        gvk,
        query: PATCH_QUERY,
        body: Some((PATCH_CONTENT_TYPES, PATCH.into())),
        responses: vec![(200, "OK"), (201, "Created")],
        response: Some(Schema::Def(def.to_string())),
        produces: JSON,
    }
}

/// The paths of one subresource: `.../{name}/<subresource>`.
fn subresource_paths(
    r: &'static Resource,
    s: &'static Subresource,
    defs: &Definitions,
    item: &str,
    gv: &str,
    params: &[Value],
) -> Vec<PathItem> {
    let path = format!("{item}/{}", s.name);
    let gvk = (s.group, s.version, s.kind);
    let namespaced = if r.namespaced { "Namespaced" } else { "" };
    let sub = capitalize(s.name);
    let kind = r.kind;
    let id = |verb: &str, infix: &str, suffix: &str| format!("{verb}{gv}{infix}{namespaced}{kind}{sub}{suffix}");
    let sub_api_version = if s.group.is_empty() { s.version.to_string() } else { format!("{}/{}", s.group, s.version) };
    let def = defs.kind(&sub_api_version, s.kind).map(str::to_string);
    let connect_params: Vec<Value> = params.iter().filter(|p| p["name"] != "pretty").cloned().collect();

    let connect =
        |query: &'static [&'static str], method: &'static str, infix: &str, suffix: &str, what: &str| Operation {
            method,
            id: id("connect", infix, suffix),
            description: format!("connect {} requests to {what} of {kind}", method.to_uppercase()),
            action: "connect",
            gvk,
            query,
            body: None,
            responses: vec![(200, "OK")],
            response: Some(Schema::Text),
            produces: ANY,
        };
    match s.name {
        "log" => vec![PathItem {
            path,
            params: params.to_vec(),
            operations: vec![Operation {
                method: "get",
                id: id("read", "", ""),
                description: format!("read the log of the specified {kind}"),
                action: "get",
                gvk,
                query: LOG,
                body: None,
                responses: vec![(200, "OK")],
                response: Some(Schema::Text),
                produces: TEXT,
            }],
        }],
        "exec" | "attach" | "portforward" => {
            let query = match s.name {
                "exec" => EXEC,
                "attach" => ATTACH,
                _ => PORT_FORWARD,
            };
            let mut operations = Vec::new();
            if s.verbs.contains(&"get") {
                operations.push(connect(query, "get", "Get", "", s.name));
            }
            if s.verbs.contains(&"create") {
                operations.push(connect(query, "post", "Post", "", s.name));
            }
            vec![PathItem { path, params: connect_params, operations }]
        }
        "proxy" => {
            let methods: Vec<(&'static str, &'static str)> = [
                ("delete", "delete", "Delete"),
                ("get", "get", "Get"),
                ("patch", "patch", "Patch"),
                ("create", "post", "Post"),
                ("update", "put", "Put"),
            ]
            .into_iter()
            .filter(|(verb, _, _)| s.verbs.contains(verb))
            .map(|(_, method, infix)| (method, infix))
            .collect();
            let with_path: Vec<Value> = connect_params
                .iter()
                .cloned()
                .chain([path_param("path", "The path of the request on the proxied server.".into())])
                .collect();
            vec![
                PathItem {
                    path: path.clone(),
                    params: connect_params.clone(),
                    operations: methods.iter().map(|&(m, infix)| connect(&[], m, infix, "", "the proxy")).collect(),
                },
                PathItem {
                    path: format!("{path}/{{path}}"),
                    params: with_path,
                    operations: methods
                        .iter()
                        .map(|&(m, infix)| connect(&[], m, infix, "WithPath", "the proxy"))
                        .collect(),
                },
            ]
        }
        _ => {
            let Some(def) = def else { return Vec::new() };
            let what = if s.kind == r.kind {
                format!("{} of the specified {kind}", s.name)
            } else {
                format!("{} of the specified {kind}", s.kind)
            };
            let mut operations = Vec::new();
            if s.verbs.contains(&"get") {
                operations.push(Operation {
                    method: "get",
                    id: id("read", "", ""),
                    description: format!("read {what}"),
                    action: "get",
                    gvk,
                    query: &[],
                    body: None,
                    responses: vec![(200, "OK")],
                    response: Some(Schema::Def(def.clone())),
                    produces: JSON,
                });
            }
            if s.verbs.contains(&"create") {
                operations.push(Operation {
                    method: "post",
                    id: id("create", "", ""),
                    description: format!("create {what}"),
                    action: "post",
                    gvk,
                    query: WRITE,
                    body: Some((ANY, def.clone())),
                    responses: vec![(200, "OK"), (201, "Created"), (202, "Accepted")],
                    response: Some(Schema::Def(def.clone())),
                    produces: JSON,
                });
            }
            if s.verbs.contains(&"update") {
                operations.push(Operation {
                    method: "put",
                    id: id("replace", "", ""),
                    description: format!("replace {what}"),
                    action: "put",
                    gvk,
                    query: WRITE,
                    body: Some((ANY, def.clone())),
                    responses: vec![(200, "OK"), (201, "Created")],
                    response: Some(Schema::Def(def.clone())),
                    produces: JSON,
                });
            }
            if s.verbs.contains(&"patch") {
                operations.push(patch_operation(id("patch", "", ""), format!("partially update {what}"), gvk, &def));
            }
            vec![PathItem { path, params: params.to_vec(), operations }]
        }
    }
}

/// Writes a parameter in the flavour's shape (`schema` in 3.0, `type` in 2.0).
fn render_param(mut p: Value, flavor: Flavor) -> Value {
    let kind = p.as_object_mut().and_then(|m| m.remove("type")).unwrap_or(json!("string"));
    match flavor {
        Flavor::V2 => {
            p["type"] = kind;
            p["uniqueItems"] = json!(true);
        }
        Flavor::V3 => p["schema"] = json!({"type": kind, "uniqueItems": true}),
    }
    p
}

fn query_param(name: &str) -> Value {
    let p = QUERY_PARAMS.iter().find(|p| p.name == name).expect("every listed parameter is described");
    json!({"name": p.name, "in": "query", "description": p.description, "type": p.kind})
}

fn response_schema(schema: &Schema, flavor: Flavor) -> Value {
    match schema {
        Schema::Def(name) => flavor.reference(name),
        Schema::Text => json!({"type": "string"}),
    }
}

fn render_operation(op: &Operation, tag: &str, flavor: Flavor) -> Value {
    let mut out = Map::new();
    out.insert("description".into(), json!(op.description));
    out.insert("operationId".into(), json!(op.id));
    let mut params: Vec<Value> = op.query.iter().map(|q| render_param(query_param(q), flavor)).collect();
    let mut responses = Map::new();
    for (code, text) in &op.responses {
        let mut response = json!({"description": text});
        if let Some(schema) = &op.response {
            let schema = response_schema(schema, flavor);
            match flavor {
                Flavor::V2 => response["schema"] = schema,
                Flavor::V3 => {
                    let content: Map<String, Value> =
                        op.produces.iter().map(|ct| (ct.to_string(), json!({"schema": schema.clone()}))).collect();
                    response["content"] = Value::Object(content);
                }
            }
        }
        responses.insert(code.to_string(), response);
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    match flavor {
        Flavor::V2 => {
            if let Some((content_types, def)) = &op.body {
                params.push(json!({"name": "body", "in": "body", "required": true, "schema": flavor.reference(def)}));
                out.insert("consumes".into(), json!(content_types));
            } else {
                out.insert("consumes".into(), json!(["*/*"]));
            }
            out.insert("produces".into(), json!(op.produces));
            out.insert("schemes".into(), json!(["https"]));
        }
        Flavor::V3 => {
            if let Some((content_types, def)) = &op.body {
                let content: Map<String, Value> =
                    content_types.iter().map(|ct| (ct.to_string(), json!({"schema": flavor.reference(def)}))).collect();
                out.insert("requestBody".into(), json!({"content": content, "required": op.method != "delete"}));
            }
        }
    }
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    out.insert("responses".into(), Value::Object(responses));
    out.insert("tags".into(), json!([tag]));
    out.insert("x-kubernetes-action".into(), json!(op.action));
    let (group, version, kind) = op.gvk;
    out.insert("x-kubernetes-group-version-kind".into(), json!({"group": group, "kind": kind, "version": version}));
    Value::Object(out)
}

/// The `paths` object of one group version (or, for Swagger, of any set of resources).
pub fn paths(
    resources: impl IntoIterator<Item = &'static Resource>,
    defs: &Definitions,
    flavor: Flavor,
) -> Map<String, Value> {
    let mut out = Map::new();
    for r in resources {
        let tag = tag(r.group, r.version);
        for item in resource_paths(r, defs) {
            let mut rendered = Map::new();
            for op in &item.operations {
                rendered.insert(op.method.into(), render_operation(op, &tag, flavor));
            }
            if rendered.is_empty() {
                continue;
            }
            let params: Vec<Value> = item.params.into_iter().map(|p| render_param(p, flavor)).collect();
            rendered.insert("parameters".into(), Value::Array(params));
            out.insert(item.path, Value::Object(rendered));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_upstream() {
        assert_eq!(group_camel(""), "Core");
        assert_eq!(group_camel("apps"), "Apps");
        assert_eq!(group_camel("rbac.authorization.k8s.io"), "RbacAuthorization");
        assert_eq!(group_camel("admissionregistration.k8s.io"), "Admissionregistration");
        assert_eq!(tag("rbac.authorization.k8s.io", "v1"), "rbacAuthorization_v1");
        assert_eq!(tag("", "v1"), "core_v1");
    }

    #[test]
    fn every_listed_parameter_is_described() {
        for list in [LIST, WRITE, PATCH_QUERY, DELETE, DELETE_COLLECTION, LOG, EXEC, ATTACH, PORT_FORWARD] {
            for name in list {
                query_param(name);
            }
        }
    }

    #[test]
    fn deployment_operations() {
        let defs = Definitions::build(Flavor::V3);
        let resources: Vec<&'static Resource> = rudder_api::catalog::in_group_version("apps", "v1").collect();
        let p = paths(resources, &defs, Flavor::V3);
        let item = &p["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        let patch = &item["patch"];
        assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        let names: Vec<&str> =
            patch["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["dryRun", "fieldManager", "fieldValidation", "force"]);
        assert_eq!(patch["parameters"][2]["in"], "query");
        let content = patch["requestBody"]["content"].as_object().unwrap();
        assert!(content.contains_key("application/strategic-merge-patch+json"));
        assert!(content.contains_key("application/apply-patch+yaml"));
        assert_eq!(item["put"]["operationId"], "replaceAppsV1NamespacedDeployment");
        assert!(item["put"]["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        let path_params: Vec<&str> =
            item["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(path_params, ["name", "namespace", "pretty"]);

        let collection = &p["/apis/apps/v1/namespaces/{namespace}/deployments"];
        assert_eq!(collection["get"]["operationId"], "listAppsV1NamespacedDeployment");
        assert_eq!(collection["post"]["operationId"], "createAppsV1NamespacedDeployment");
        assert!(collection["post"]["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        assert_eq!(collection["delete"]["operationId"], "deleteAppsV1CollectionNamespacedDeployment");
        assert_eq!(p["/apis/apps/v1/deployments"]["get"]["operationId"], "listAppsV1DeploymentForAllNamespaces");
        assert_eq!(
            p["/apis/apps/v1/watch/namespaces/{namespace}/deployments/{name}"]["get"]["x-kubernetes-action"],
            "watch"
        );

        let scale = &p["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(scale["patch"]["operationId"], "patchAppsV1NamespacedDeploymentScale");
        assert_eq!(
            scale["get"]["x-kubernetes-group-version-kind"],
            json!({"group": "autoscaling", "kind": "Scale", "version": "v1"})
        );
        assert_eq!(
            scale["put"]["requestBody"]["content"]["*/*"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"
        );
        let status = &p["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"];
        assert_eq!(status["get"]["operationId"], "readAppsV1NamespacedDeploymentStatus");
    }

    #[test]
    fn pod_subresources_and_swagger_shape() {
        let defs = Definitions::build(Flavor::V2);
        let resources: Vec<&'static Resource> = rudder_api::catalog::in_group_version("", "v1").collect();
        let p = paths(resources, &defs, Flavor::V2);
        let pods = "/api/v1/namespaces/{namespace}/pods/{name}";
        assert_eq!(p[&format!("{pods}/log")]["get"]["operationId"], "readCoreV1NamespacedPodLog");
        assert_eq!(p[&format!("{pods}/exec")]["post"]["operationId"], "connectCoreV1PostNamespacedPodExec");
        assert_eq!(p[&format!("{pods}/exec")]["get"]["x-kubernetes-action"], "connect");
        assert_eq!(
            p[&format!("{pods}/proxy/{{path}}")]["put"]["operationId"],
            "connectCoreV1PutNamespacedPodProxyWithPath"
        );
        let eviction = &p[&format!("{pods}/eviction")]["post"];
        assert_eq!(eviction["operationId"], "createCoreV1NamespacedPodEviction");
        assert_eq!(
            eviction["x-kubernetes-group-version-kind"],
            json!({"group": "policy", "kind": "Eviction", "version": "v1"})
        );
        let body = eviction["parameters"].as_array().unwrap().iter().find(|p| p["in"] == "body").unwrap();
        assert_eq!(body["schema"]["$ref"], "#/definitions/io.k8s.api.policy.v1.Eviction");
        assert_eq!(
            p["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"]["post"]["operationId"],
            "createCoreV1NamespacedServiceAccountToken"
        );
        assert_eq!(p["/api/v1/namespaces/{name}/finalize"]["put"]["operationId"], "replaceCoreV1NamespaceFinalize");
        assert_eq!(p["/api/v1/nodes/{name}"]["patch"]["operationId"], "patchCoreV1Node");
        assert_eq!(p["/api/v1/watch/nodes"]["get"]["operationId"], "watchCoreV1NodeList");
        let patch = &p[pods]["patch"];
        assert_eq!(patch["consumes"], json!(PATCH_CONTENT_TYPES));
        let validation =
            patch["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "fieldValidation").unwrap();
        assert_eq!((&validation["in"], &validation["type"]), (&json!("query"), &json!("string")));
        // componentstatuses only read.
        assert!(p["/api/v1/componentstatuses/{name}"].get("patch").is_none());
        assert!(p["/api/v1/namespaces/{namespace}/bindings"]["post"].is_object());
    }
}
