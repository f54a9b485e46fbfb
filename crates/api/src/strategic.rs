//! Strategic merge patch (`application/strategic-merge-patch+json`), applied the way the
//! upstream API server applies it (`k8s.io/apimachinery/pkg/util/strategicpatch`).
//!
//! Key item: [`apply`]. A strategic merge patch is a JSON merge patch (RFC 7386) whose lists
//! follow the patch markers of the schema ([`crate::schema`]) and which may carry directives:
//!
//! - objects merge recursively and `null` removes a key; an object field marked
//!   `patchStrategy: replace` (e.g. a PodDisruptionBudget's `selector`) is replaced whole;
//! - a list marked `patchStrategy: merge` with a `patchMergeKey` (containers by `name`, ports
//!   by `containerPort`) merges element by element: a patch element whose key the list has is
//!   merged into that element, the others are added; a list of scalars marked `merge`
//!   (`metadata.finalizers`) becomes the union of both; every other list is replaced;
//! - order of a merged list: the elements the patch names keep the patch's order and are
//!   interleaved with the elements only the server has, which keep theirs; an element the
//!   server does not know yet therefore comes before the server's own elements, unless a
//!   `$setElementOrder/<field>` list says where it goes;
//! - `$patch: replace` in an object replaces the object with the rest of the patch object; as
//!   an element of a merge list it makes the list exactly the patch's other elements;
//! - `$patch: delete` in an object empties it; as an element of a merge list it removes the
//!   elements with its merge key;
//! - `$patch: merge` is the default and changes nothing;
//! - `$retainKeys: [..]` drops every key of the object that the list does not name (and the
//!   patch itself may only set keys it names);
//! - `$setElementOrder/<field>: [..]` orders the merged list `<field>`;
//! - `$deleteFromPrimitiveList/<field>: [..]` removes those values from the scalar list.
//!
//! No directive is left in the result. Values the object does not have yet are taken from the
//! patch without their `null`s and directives.
//!
//! Without a schema (`None`: a kind without patch markers) every object merges, every list is
//! replaced, and the directives that need no markers still work (`$patch` in objects,
//! `$retainKeys`, `$deleteFromPrimitiveList`, `$setElementOrder` on lists of scalars), as
//! upstream does when it has no metadata for a field. Embedded JSON (`RawExtension`) and the
//! values of maps are merged the same way.
//!
//! Errors carry upstream's messages; [`StrategicError::is_bad_request`] tells the API server
//! which answer upstream gives (400 or 422). Known differences from upstream, all for patches
//! upstream rejects or mangles:
//! - upstream answers errors it does not classify (missing merge key, unknown `$patch`, wrong
//!   directive types) with a 500; here they are 400;
//! - `$patch: merge` is accepted (upstream rejects it at apply time);
//! - a field the schema does not know merges without markers (upstream fails the patch);
//! - a new value holding `$patch: replace` keeps its other keys (upstream drops the value);
//! - elements taken from the patch never keep a directive (upstream keeps some, and its typed
//!   decoding then ignores them).

use crate::schema::{Message, Shape};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::fmt;

type Object = Map<String, Value>;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Which answer the API server gives for a failed strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the patch is malformed (bad directive, missing merge key, wrong types).
    BadRequest,
    /// 422: the patch is well formed but cannot be merged (lists of lists).
    Unprocessable,
}

/// Why a strategic merge patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategicError {
    kind: ErrorKind,
    message: String,
}

impl StrategicError {
    fn bad(message: impl Into<String>) -> Self {
        StrategicError { kind: ErrorKind::BadRequest, message: message.into() }
    }

    fn unprocessable(message: impl Into<String>) -> Self {
        StrategicError { kind: ErrorKind::Unprocessable, message: message.into() }
    }

    /// The class of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the API server answers 400 (otherwise 422).
    pub fn is_bad_request(&self) -> bool {
        self.kind == ErrorKind::BadRequest
    }

    /// The message, worded as upstream's.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn bad_document() -> Self {
        Self::bad("invalid JSON document")
    }

    fn bad_primitive_list() -> Self {
        Self::bad("invalid patch format of primitive list")
    }

    fn bad_retain_keys() -> Self {
        Self::bad("invalid patch format of retainKeys")
    }

    fn bad_set_element_order() -> Self {
        Self::bad("invalid patch format of setElementOrder list")
    }

    fn list_of_lists() -> Self {
        Self::unprocessable("lists of lists are not supported")
    }

    fn no_merge_key(element: &Object, key: &str) -> Self {
        Self::bad(format!("map: {} does not contain declared merge key: {key}", go_object(element)))
    }

    fn unknown_directive(directive: &Value, element: &Object) -> Self {
        Self::bad(format!("unknown patch type: {} in map: {}", go_value(directive), go_object(element)))
    }

    fn wrong_type(expected: &str, got: &Value) -> Self {
        Self::bad(format!("expected a {expected}, but received a {}", go_type(got)))
    }
}

impl fmt::Display for StrategicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StrategicError {}

/// Applies the strategic merge patch `patch` to `original`, both JSON objects, with the patch
/// markers of `schema` (the message of the object's kind, e.g.
/// `schema::for_kind("apps/v1", "Deployment")`); `None` merges without markers (see the
/// module documentation). A `null` original or patch counts as an empty object.
pub fn apply(original: &Value, patch: &Value, schema: Option<&'static Message>) -> Result<Value, StrategicError> {
    match original {
        Value::Object(_) | Value::Null => apply_to(original.clone(), patch, schema),
        _ => Err(StrategicError::bad_document()),
    }
}

/// [`apply`] to an original the caller gives up.
pub fn apply_to(original: Value, patch: &Value, schema: Option<&'static Message>) -> Result<Value, StrategicError> {
    let original = match original {
        Value::Object(m) => m,
        Value::Null => Object::new(),
        _ => return Err(StrategicError::bad_document()),
    };
    let patch = match patch {
        Value::Object(m) => m.clone(),
        Value::Null => Object::new(),
        _ => return Err(StrategicError::bad_document()),
    };
    let node = schema.map(Node::of).unwrap_or(Node::Free);
    merge_object(original, patch, node).map(Value::Object)
}

// ---------------------------------------------------------------------------------------
// Patch metadata.

/// What the schema says about a value.
#[derive(Clone, Copy, Debug)]
enum Node {
    /// Nothing: objects merge, lists are replaced.
    Free,
    /// An object of this message.
    Struct(&'static Message),
    /// A map whose values are of this message (scalars when `None`).
    Values(Option<&'static Message>),
}

impl Node {
    fn of(message: &'static Message) -> Node {
        // Messages with their own JSON form (times, quantities, embedded JSON) carry no
        // markers; when they are objects (RawExtension) they merge freely.
        if message.special().is_some() { Node::Free } else { Node::Struct(message) }
    }

    fn name(self) -> &'static str {
        match self {
            Node::Struct(m) => m.short_name(),
            Node::Free | Node::Values(_) => "object",
        }
    }

    /// The markers of the field `key` of this value (for lists: of their elements).
    fn field(self, key: &str) -> Result<FieldMeta, StrategicError> {
        match self {
            Node::Free => Ok(FieldMeta::FREE),
            Node::Values(value) => Ok(FieldMeta { node: value.map_or(Node::Free, Node::of), ..FieldMeta::FREE }),
            Node::Struct(message) => {
                // Go's JSON decoding matches field names case-insensitively as a fallback.
                let field =
                    message.field(key).or_else(|| message.fields.iter().find(|f| f.json.eq_ignore_ascii_case(key)));
                let Some(field) = field else { return Ok(FieldMeta::FREE) };
                let node = match (field.shape, field.message()) {
                    (Shape::Map, value) => Node::Values(value),
                    (_, Some(m)) => Node::of(m),
                    (_, None) => Node::Free,
                };
                Ok(FieldMeta { node, strategy: strategy(field.patch_strategy)?, merge_key: field.merge_key })
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct FieldMeta {
    node: Node,
    /// The strategy besides `retainKeys` (which needs no marker to apply): `merge`,
    /// `replace` or empty.
    strategy: &'static str,
    merge_key: &'static str,
}

impl FieldMeta {
    const FREE: FieldMeta = FieldMeta { node: Node::Free, strategy: "", merge_key: "" };

    fn merges_lists(&self) -> bool {
        self.strategy == "merge"
    }

    fn replaces_objects(&self) -> bool {
        self.strategy == "replace"
    }
}

/// The strategy of a `patchStrategy` marker once `retainKeys` is set aside.
fn strategy(marker: &'static str) -> Result<&'static str, StrategicError> {
    let parts: Vec<&'static str> = marker.split(',').collect();
    match parts.as_slice() {
        [one] if *one == "retainKeys" => Ok(""),
        [one] => Ok(one),
        [a, b] if *a == "retainKeys" => Ok(b),
        [a, b] if *b == "retainKeys" => Ok(a),
        _ => Err(StrategicError::bad(format!("unexpected patch strategy: [{}]", parts.join(" ")))),
    }
}

// ---------------------------------------------------------------------------------------
// Objects.

/// Merges `patch` into `original`.
fn merge_object(mut original: Object, mut patch: Object, node: Node) -> Result<Object, StrategicError> {
    if let Some(directive) = patch.get(PATCH) {
        match directive.as_str() {
            Some("replace") => {
                patch.remove(PATCH);
                return clean_object(patch);
            }
            Some("delete") => return Ok(Object::new()),
            Some("merge") => {
                patch.remove(PATCH);
            }
            _ => return Err(StrategicError::unknown_directive(directive, &patch)),
        }
    }
    retain_keys(&mut original, &mut patch)?;
    set_element_orders(&mut original, &mut patch, node)?;

    for (key, value) in patch {
        let (key, delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            let field =
                directive_target(&key, DELETE_FROM_PRIMITIVE_LIST).ok_or_else(StrategicError::bad_primitive_list)?;
            (field.to_string(), true)
        } else {
            (key, false)
        };
        if value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(current) = original.get_mut(&key) else {
            if !delete_list && let Some(value) = clean(value, false)? {
                original.insert(key, value);
            }
            continue;
        };
        match (current, value) {
            (Value::Object(current), Value::Object(value)) => {
                let meta = node.field(&key)?;
                let merged = if meta.replaces_objects() {
                    clean_object(value)?
                } else {
                    merge_object(take(current), value, meta.node)?
                };
                *current = merged;
            }
            (Value::Array(current), Value::Array(value)) => {
                let meta = node.field(&key)?;
                *current = merge_list(take(current), value, meta, delete_list)?;
            }
            (_, _) if delete_list => {}
            (current, value) => match clean(value, false)? {
                Some(value) => *current = value,
                None => {
                    original.remove(&key);
                }
            },
        }
    }
    Ok(original)
}

/// `$retainKeys`: keys of `original` the list does not name go; the patch may only set keys
/// the list names.
fn retain_keys(original: &mut Object, patch: &mut Object) -> Result<(), StrategicError> {
    let Some(list) = patch.remove(RETAIN_KEYS) else { return Ok(()) };
    let Value::Array(list) = list else { return Err(StrategicError::bad_retain_keys()) };
    let keep: HashSet<&str> = list.iter().filter_map(Value::as_str).collect();
    let stray = patch.iter().any(|(k, v)| {
        !v.is_null()
            && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            && !k.starts_with(SET_ELEMENT_ORDER)
            && !keep.contains(k.as_str())
    });
    if stray {
        return Err(StrategicError::bad_retain_keys());
    }
    original.retain(|k, _| keep.contains(k.as_str()));
    Ok(())
}

/// `$setElementOrder/<field>`: merges `<field>` of the patch (if any) and orders the result.
/// Both the directive and the list leave the patch.
fn set_element_orders(original: &mut Object, patch: &mut Object, node: Node) -> Result<(), StrategicError> {
    let directives: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for directive in directives {
        let order = patch.remove(&directive).unwrap_or_default();
        let Value::Array(order) = order else { return Err(StrategicError::wrong_type("[]interface {}", &order)) };
        let field =
            directive_target(&directive, SET_ELEMENT_ORDER).ok_or_else(StrategicError::bad_set_element_order)?;
        let current = match original.remove(field) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => return Err(StrategicError::wrong_type("[]interface {}", &other)),
        };
        let changes = match patch.remove(field) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => return Err(StrategicError::wrong_type("[]interface {}", &other)),
        };
        let meta = node.field(field)?;
        let key = meta.merge_key;
        check_order(changes.as_deref().unwrap_or_default(), &order, key)?;

        let empty = Vec::new();
        let kind = element_kind(current.as_deref().unwrap_or(&empty), changes.as_deref().unwrap_or(&empty))?;
        let server_order = match (&current, kind) {
            (Some(list), Some(_)) => identities(list, key)?,
            _ => Vec::new(),
        };
        let merged = match (current, changes) {
            (Some(current), None) => current,
            (None, Some(changes)) => clean_list(changes)?,
            (Some(current), Some(changes)) => merge_list(current, changes, meta, false)?,
            (None, None) => continue,
        };
        let merged = if kind.is_some() {
            let order = identities(&order, key)?;
            arrange(merged, key, &order, &server_order)?
        } else {
            merged
        };
        original.insert(field.to_string(), Value::Array(merged));
    }
    Ok(())
}

/// Checks that the elements the patch list sets appear in the `$setElementOrder` list in the
/// same relative order.
fn check_order(changes: &[Value], order: &[Value], key: &str) -> Result<(), StrategicError> {
    if changes.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut named = Vec::with_capacity(changes.len());
    for change in changes {
        if key.is_empty() {
            named.push(change);
            continue;
        }
        let Value::Object(m) = change else {
            return Err(StrategicError::wrong_type("map[string]interface {}", change));
        };
        if m.get(PATCH).and_then(Value::as_str) != Some("delete") {
            named.push(change);
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < named.len() && j < order.len() {
        if named[i].as_object().is_some_and(|m| m.contains_key(PATCH)) {
            i += 1;
            continue;
        }
        if same_element(named[i], &order[j], key)? {
            i += 1;
        }
        j += 1;
    }
    if i < named.len() {
        return Err(StrategicError::bad(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_list(changes),
            go_list(order)
        )));
    }
    Ok(())
}

fn same_element(a: &Value, b: &Value, key: &str) -> Result<bool, StrategicError> {
    if key.is_empty() {
        return Ok(a == b);
    }
    let a_key = merge_key_of(a, key)?;
    let b_key = merge_key_of(b, key)?;
    Ok(a_key == b_key)
}

// ---------------------------------------------------------------------------------------
// Lists.

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: FieldMeta,
    delete_list: bool,
) -> Result<Vec<Value>, StrategicError> {
    if meta.merges_lists() || delete_list {
        merge_elements(original, patch, meta.node, meta.merge_key, delete_list)
    } else {
        clean_list(patch)
    }
}

/// What the elements of a list are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Scalar(u8),
    Object,
}

/// The kind shared by every element of both lists; `None` when both are empty.
fn element_kind(a: &[Value], b: &[Value]) -> Result<Option<Kind>, StrategicError> {
    let mut kind = None;
    for value in a.iter().chain(b) {
        let this = match value {
            Value::Null => Kind::Scalar(0),
            Value::Bool(_) => Kind::Scalar(1),
            Value::Number(_) => Kind::Scalar(2),
            Value::String(_) => Kind::Scalar(3),
            Value::Object(_) => Kind::Object,
            Value::Array(_) if kind.is_none() => return Err(StrategicError::list_of_lists()),
            Value::Array(_) => Kind::Scalar(u8::MAX),
        };
        match kind {
            None => kind = Some(this),
            Some(k) if k != this => {
                return Err(StrategicError::bad(format!(
                    "list element types are not identical: [{} {}]",
                    go_list(a),
                    go_list(b)
                )));
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// Merges the lists of a `patchStrategy: merge` field (or a `$deleteFromPrimitiveList`).
fn merge_elements(
    original: Vec<Value>,
    patch: Vec<Value>,
    node: Node,
    key: &str,
    delete_list: bool,
) -> Result<Vec<Value>, StrategicError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let Some(kind) = element_kind(&original, &patch)? else { return Ok(original) };
    if kind != Kind::Object {
        if delete_list {
            let gone: HashSet<String> = patch.iter().map(identity).collect();
            return Ok(original.into_iter().filter(|v| !gone.contains(&identity(v))).collect());
        }
        let server_order = identities(&original, "")?;
        let patch_order = identities(&patch, "")?;
        let mut seen = HashSet::new();
        let merged: Vec<Value> = original.into_iter().chain(patch).filter(|v| seen.insert(identity(v))).collect();
        return arrange(merged, "", &patch_order, &server_order);
    }
    if key.is_empty() {
        return Err(StrategicError::bad(format!("cannot merge lists without merge key for {}", node.name())));
    }
    let (original, patch) = apply_list_directives(original, patch, key)?;
    let server_order = identities(&original, key)?;
    let patch_order = identities(&patch, key)?;

    let mut merged = original;
    let mut position: HashMap<String, usize> = HashMap::new();
    for (i, id) in server_order.iter().enumerate() {
        position.entry(id.clone()).or_insert(i);
    }
    for (element, id) in patch.into_iter().zip(&patch_order) {
        let Value::Object(element) = element else { unreachable!("checked by element_kind") };
        match position.get(id) {
            Some(&i) => {
                let Value::Object(current) = take(&mut merged[i]) else { unreachable!("checked by element_kind") };
                merged[i] = Value::Object(merge_object(current, element, node)?);
            }
            None => {
                position.insert(id.clone(), merged.len());
                merged.push(Value::Object(clean_object(element)?));
            }
        }
    }
    arrange(merged, key, &patch_order, &server_order)
}

/// Handles the elements of a merge list that carry `$patch`: `delete` removes the
/// elements with its key from `original`, `replace` makes the other elements the whole
/// list. Returns the list to merge into and the elements left to merge.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for element in patch {
        let Value::Object(mut element) = element else {
            return Err(StrategicError::wrong_type("map[string]interface {}", &element));
        };
        let Some(directive) = element.get(PATCH) else {
            rest.push(Value::Object(element));
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(id) = element.get(key) else { return Err(StrategicError::no_merge_key(&element, key)) };
                original.retain(|v| v.get(key) != Some(id));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                element.remove(PATCH);
                if !element.is_empty() {
                    rest.push(Value::Object(element));
                }
            }
            _ => return Err(StrategicError::unknown_directive(directive, &element)),
        }
    }
    if replace { Ok((clean_list(rest)?, Vec::new())) } else { Ok((original, rest)) }
}

/// Orders a merged list as upstream does: the elements named in `patch_order` in that order,
/// interleaved with the others, which keep their order in `server_order`; an element goes
/// before the next patch element only when the server had it earlier.
fn arrange(
    merged: Vec<Value>,
    key: &str,
    patch_order: &[String],
    server_order: &[String],
) -> Result<Vec<Value>, StrategicError> {
    let first_positions = |ids: &[String]| {
        let mut map: HashMap<String, usize> = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            map.entry(id.clone()).or_insert(i);
        }
        map
    };
    let in_patch = first_positions(patch_order);
    let on_server = first_positions(server_order);

    let ids = identities(&merged, key)?;
    let (mut named, mut server_only): (Vec<_>, Vec<_>) =
        ids.into_iter().zip(merged).partition(|(id, _)| in_patch.contains_key(id));
    named.sort_by_key(|(id, _)| in_patch.get(id).copied().unwrap_or(usize::MAX));
    server_only.sort_by_key(|(id, _)| on_server.get(id).copied().unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let take_server = match (server_only.peek(), named.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((left, _)), Some((right, _))) => {
                matches!((on_server.get(left), on_server.get(right)), (Some(l), Some(r)) if l < r)
            }
        };
        let next = if take_server { server_only.next() } else { named.next() };
        out.extend(next.map(|(_, v)| v));
    }
    Ok(out)
}

/// What identifies each element: its merge key's value, or the element itself when `key`
/// is empty.
fn identities(list: &[Value], key: &str) -> Result<Vec<String>, StrategicError> {
    list.iter().map(|v| if key.is_empty() { Ok(identity(v)) } else { merge_key_of(v, key).map(identity) }).collect()
}

fn merge_key_of<'a>(element: &'a Value, key: &str) -> Result<&'a Value, StrategicError> {
    let Value::Object(m) = element else { return Err(StrategicError::wrong_type("map[string]interface {}", element)) };
    m.get(key).ok_or_else(|| StrategicError::no_merge_key(m, key))
}

/// A canonical text for a value (objects have sorted keys), for hashing.
fn identity(value: &Value) -> String {
    value.to_string()
}

// ---------------------------------------------------------------------------------------
// Values taken from the patch.

/// A patch value as it goes into the result: without `null` fields and directives. Returns
/// `None` for a value that is itself a deletion (`$patch: delete`, or any `$patch` element
/// of a list, which only makes sense against an existing list).
fn clean(value: Value, in_list: bool) -> Result<Option<Value>, StrategicError> {
    match value {
        Value::Object(mut m) => {
            if let Some(directive) = m.get(PATCH) {
                match directive.as_str() {
                    Some("delete") => return Ok(None),
                    Some("replace") if in_list => return Ok(None),
                    Some("replace" | "merge") => {
                        m.remove(PATCH);
                    }
                    _ => return Err(StrategicError::unknown_directive(directive, &m)),
                }
            }
            clean_object(m).map(|m| Some(Value::Object(m)))
        }
        Value::Array(list) => clean_list(list).map(|l| Some(Value::Array(l))),
        other => Ok(Some(other)),
    }
}

fn clean_object(object: Object) -> Result<Object, StrategicError> {
    let mut out = Object::new();
    for (k, v) in object {
        if v.is_null() || is_directive(&k) {
            continue;
        }
        if let Some(v) = clean(v, false)? {
            out.insert(k, v);
        }
    }
    Ok(out)
}

fn clean_list(list: Vec<Value>) -> Result<Vec<Value>, StrategicError> {
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        if let Some(v) = clean(v, true)? {
            out.push(v);
        }
    }
    Ok(out)
}

fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// The field a `<prefix>/<field>` directive names.
fn directive_target<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    key.split_once('/').filter(|(p, _)| *p == prefix).map(|(_, field)| field)
}

fn take<T: Default>(v: &mut T) -> T {
    std::mem::take(v)
}

// ---------------------------------------------------------------------------------------
// Go's `%v` rendering, for messages worded as upstream's.

fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(list) => go_list(list),
        Value::Object(m) => go_object(m),
    }
}

fn go_list(list: &[Value]) -> String {
    let items: Vec<String> = list.iter().map(go_value).collect();
    format!("[{}]", items.join(" "))
}

fn go_object(m: &Object) -> String {
    let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{}", go_value(v))).collect();
    format!("map[{}]", items.join(" "))
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;
    use serde_json::json;

    const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
    const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

    /// One table row: `(name, apiVersion, kind, original, patch, expected)`; an empty kind
    /// applies without a schema.
    type Case = (&'static str, &'static str, &'static str, Value, Value, Value);

    fn schema_of(api_version: &str, kind: &str) -> Option<&'static Message> {
        if kind.is_empty() {
            return None;
        }
        let found = schema::for_kind(api_version, kind);
        assert!(found.is_some(), "no schema for {api_version} {kind}");
        found
    }

    fn assert_no_directives(value: &Value, path: &str) {
        match value {
            Value::Object(m) => {
                for (k, v) in m {
                    assert!(!k.starts_with('$'), "directive {k} left at {path}");
                    assert_no_directives(v, &format!("{path}.{k}"));
                }
            }
            Value::Array(list) => {
                list.iter().enumerate().for_each(|(i, v)| assert_no_directives(v, &format!("{path}[{i}]")))
            }
            _ => {}
        }
    }

    fn run(cases: Vec<Case>) {
        for (name, api_version, kind, original, patch, expected) in cases {
            let got = apply(&original, &patch, schema_of(api_version, kind))
                .unwrap_or_else(|e| panic!("{name}: unexpected error: {e}"));
            assert_eq!(got, expected, "{name}");
            assert_no_directives(&got, name);
        }
    }

    fn deployment(pod_spec: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec},
            },
        })
    }

    fn web() -> Value {
        json!({
            "name": "web",
            "image": "nginx:1.25",
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
        })
    }

    fn sidecar() -> Value {
        json!({"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "infinity", "--verbose"]})
    }

    /// `web` with some fields changed.
    fn web_with(changes: Value) -> Value {
        let mut c = web();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    fn with_containers(containers: Value) -> Value {
        deployment(json!({"containers": containers}))
    }

    fn containers_patch(containers: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": containers}}}})
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    fn node(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": spec})
    }

    fn with_finalizers(finalizers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": finalizers}})
    }

    fn service(ports: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web", "tier": "frontend"}, "ports": ports},
        })
    }

    fn http_ports() -> Value {
        json!([
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
        ])
    }

    #[test]
    fn merge_lists_by_key() {
        run(vec![
            (
                "a container is patched by name, the others stay",
                "apps/v1",
                "Deployment",
                with_containers(json!([web(), sidecar()])),
                containers_patch(json!([{"name": "web", "image": "nginx:1.27"}])),
                with_containers(json!([web_with(json!({"image": "nginx:1.27"})), sidecar()])),
            ),
            (
                "a new container goes before the server's (no $setElementOrder)",
                "apps/v1",
                "Deployment",
                with_containers(json!([web(), sidecar()])),
                containers_patch(
                    json!([{"name": "log", "image": "fluent-bit:3", "env": [{"name": "X", "value": null}]}]),
                ),
                with_containers(json!([
                    {"name": "log", "image": "fluent-bit:3", "env": [{"name": "X"}]},
                    web(),
                    sidecar(),
                ])),
            ),
            (
                "container ports merge by containerPort, in the patch's order",
                "apps/v1",
                "Deployment",
                with_containers(json!([web(), sidecar()])),
                containers_patch(json!([{
                    "name": "web",
                    "ports": [{"containerPort": 8080, "name": "alt"}, {"containerPort": 80, "name": "http"}],
                }])),
                with_containers(json!([
                    web_with(json!({"ports": [
                        {"containerPort": 8080, "name": "alt"},
                        {"containerPort": 80, "name": "http", "protocol": "TCP"},
                        {"containerPort": 443, "protocol": "TCP"},
                    ]})),
                    sidecar(),
                ])),
            ),
            (
                "env by name: merge with a null field, delete, add",
                "apps/v1",
                "Deployment",
                with_containers(json!([web()])),
                containers_patch(json!([{"name": "web", "env": [
                    {"name": "B", "value": "2", "valueFrom": null},
                    {"name": "A", "$patch": "delete"},
                    {"name": "C", "value": "3"},
                ]}])),
                with_containers(json!([web_with(json!({"env": [
                    {"name": "B", "value": "2"},
                    {"name": "C", "value": "3"},
                ]}))])),
            ),
            (
                "$patch: replace as a list element replaces the list",
                "apps/v1",
                "Deployment",
                with_containers(json!([web()])),
                containers_patch(json!([{"name": "web", "env": [{"$patch": "replace"}, {"name": "Z", "value": "9"}]}])),
                with_containers(json!([web_with(json!({"env": [{"name": "Z", "value": "9"}]}))])),
            ),
            (
                "$patch: delete of an element that is not there changes nothing",
                "apps/v1",
                "Deployment",
                with_containers(json!([web(), sidecar()])),
                containers_patch(json!([{"name": "ghost", "$patch": "delete"}])),
                with_containers(json!([web(), sidecar()])),
            ),
            (
                "Service ports merge by port; the selector map merges",
                "v1",
                "Service",
                service(http_ports()),
                json!({"spec": {"selector": {"tier": "backend"}, "ports": [{"port": 443, "targetPort": 9443}]}}),
                json!({
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "web"},
                    "spec": {
                        "selector": {"app": "web", "tier": "backend"},
                        "ports": [
                            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                            {"name": "https", "port": 443, "targetPort": 9443, "protocol": "TCP"},
                        ],
                    },
                }),
            ),
            (
                "ownerReferences merge by uid",
                "v1",
                "ConfigMap",
                json!({"metadata": {"name": "c", "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs1", "uid": "u1", "controller": true},
                ]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "u1", "blockOwnerDeletion": true}]}}),
                json!({"metadata": {"name": "c", "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs1", "uid": "u1",
                    "controller": true, "blockOwnerDeletion": true,
                }]}}),
            ),
            (
                "resource quantities merge as a map",
                "apps/v1",
                "Deployment",
                with_containers(json!([web()])),
                containers_patch(
                    json!([{"name": "web", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}}}]),
                ),
                with_containers(json!([web_with(json!({"resources": {
                    "limits": {"cpu": "1", "memory": "128Mi"},
                    "requests": {"cpu": "100m"},
                }}))])),
            ),
        ]);
    }

    #[test]
    fn retain_keys() {
        let volumes = || {
            json!([
                {"name": "data", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "app-config"}},
            ])
        };
        let with_volumes = |volumes: Value| deployment(json!({"containers": [web()], "volumes": volumes}));
        let volumes_patch = |volumes: Value| json!({"spec": {"template": {"spec": {"volumes": volumes}}}});
        let mut recreate = deployment(json!({"containers": [web()]}));
        recreate["spec"]["strategy"] = json!({"type": "Recreate"});
        run(vec![
            (
                "a volume switches from emptyDir to hostPath with $retainKeys",
                "apps/v1",
                "Deployment",
                with_volumes(volumes()),
                volumes_patch(json!([{
                    "$retainKeys": ["hostPath", "name"],
                    "name": "data",
                    "hostPath": {"path": "/srv/data", "type": "Directory"},
                }])),
                with_volumes(json!([
                    {"name": "data", "hostPath": {"path": "/srv/data", "type": "Directory"}},
                    {"name": "config", "configMap": {"name": "app-config"}},
                ])),
            ),
            (
                "without $retainKeys the old volume source stays",
                "apps/v1",
                "Deployment",
                with_volumes(volumes()),
                volumes_patch(json!([{"name": "data", "hostPath": {"path": "/srv/data"}}])),
                with_volumes(json!([
                    {"name": "data", "emptyDir": {}, "hostPath": {"path": "/srv/data"}},
                    {"name": "config", "configMap": {"name": "app-config"}},
                ])),
            ),
            (
                "deployment strategy: RollingUpdate to Recreate drops rollingUpdate",
                "apps/v1",
                "Deployment",
                deployment(json!({"containers": [web()]})),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
                recreate,
            ),
        ]);
    }

    #[test]
    fn replaced_lists_and_maps() {
        let mut pdb = json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web", "tier": "frontend"}}},
        });
        let pdb_original = pdb.clone();
        pdb["spec"]["selector"] = json!({"matchLabels": {"app": "api"}});
        let mut namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"},
            "spec": {"finalizers": ["kubernetes"]}});
        let namespace_original = namespace.clone();
        namespace["spec"]["finalizers"] = json!(["example.com/cleanup"]);
        run(vec![
            (
                "pod tolerations have no merge key: replaced",
                "v1",
                "Pod",
                pod(json!({"containers": [web()], "tolerations": [
                    {
                        "key": "node.kubernetes.io/not-ready",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 300,
                    },
                ]})),
                json!({"spec": {"tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
                ]}}),
                pod(json!({"containers": [web()], "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
                ]})),
            ),
            (
                "node taints are atomic: replaced",
                "v1",
                "Node",
                node(json!({"podCIDR": "10.0.0.0/24", "taints": [{"key": "a", "effect": "NoSchedule"}]})),
                json!({"spec": {"taints": [{"key": "b", "value": "x", "effect": "NoExecute"}]}}),
                node(json!({"podCIDR": "10.0.0.0/24", "taints": [{"key": "b", "value": "x", "effect": "NoExecute"}]})),
            ),
            (
                "kubectl cordon",
                "v1",
                "Node",
                node(json!({"podCIDR": "10.0.0.0/24", "taints": [{"key": "a", "effect": "NoSchedule"}]})),
                json!({"spec": {"unschedulable": true}}),
                node(json!({
                    "podCIDR": "10.0.0.0/24",
                    "taints": [{"key": "a", "effect": "NoSchedule"}],
                    "unschedulable": true,
                })),
            ),
            (
                "container args have no strategy: replaced",
                "apps/v1",
                "Deployment",
                with_containers(json!([sidecar()])),
                containers_patch(json!([{"name": "sidecar", "args": ["sleep", "60"]}])),
                with_containers(json!([{"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "60"]}])),
            ),
            (
                "namespace spec.finalizers have no strategy: replaced",
                "v1",
                "Namespace",
                namespace_original,
                json!({"spec": {"finalizers": ["example.com/cleanup"]}}),
                namespace,
            ),
            (
                "a PodDisruptionBudget selector is patchStrategy replace",
                "policy/v1",
                "PodDisruptionBudget",
                pdb_original,
                json!({"spec": {"selector": {"matchLabels": {"app": "api"}}}}),
                pdb,
            ),
        ]);
    }

    #[test]
    fn primitive_lists() {
        run(vec![
            (
                "metadata.finalizers merge: a new value goes first",
                "v1",
                "ConfigMap",
                with_finalizers(json!(["example.com/a"])),
                json!({"metadata": {"finalizers": ["example.com/b"]}}),
                with_finalizers(json!(["example.com/b", "example.com/a"])),
            ),
            (
                "metadata.finalizers merge: union without duplicates",
                "v1",
                "ConfigMap",
                with_finalizers(json!(["a", "b"])),
                json!({"metadata": {"finalizers": ["b", "c"]}}),
                with_finalizers(json!(["a", "b", "c"])),
            ),
            (
                "$setElementOrder puts a new finalizer last",
                "v1",
                "ConfigMap",
                with_finalizers(json!(["a"])),
                json!({"metadata": {"$setElementOrder/finalizers": ["a", "b"], "finalizers": ["b"]}}),
                with_finalizers(json!(["a", "b"])),
            ),
            (
                "$deleteFromPrimitiveList removes finalizers",
                "v1",
                "ConfigMap",
                with_finalizers(json!(["a", "b", "c"])),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zzz"]}}),
                with_finalizers(json!(["a", "c"])),
            ),
            (
                "$deleteFromPrimitiveList with $setElementOrder",
                "v1",
                "ConfigMap",
                with_finalizers(json!(["a", "b", "c"])),
                json!({"metadata": {
                    "$setElementOrder/finalizers": ["c", "a"],
                    "$deleteFromPrimitiveList/finalizers": ["b"],
                }}),
                with_finalizers(json!(["c", "a"])),
            ),
            (
                "$deleteFromPrimitiveList of a missing list adds nothing",
                "v1",
                "ConfigMap",
                json!({"metadata": {"name": "c"}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
                json!({"metadata": {"name": "c"}}),
            ),
            (
                "$deleteFromPrimitiveList on a list without strategy (container args)",
                "apps/v1",
                "Deployment",
                with_containers(json!([sidecar()])),
                containers_patch(json!([{"name": "sidecar", "$deleteFromPrimitiveList/args": ["--verbose"]}])),
                with_containers(json!([{"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "infinity"]}])),
            ),
        ]);
    }

    #[test]
    fn maps_and_kubectl_patches() {
        let mut unlabeled = deployment(json!({"containers": [web()]}));
        unlabeled["metadata"]["labels"] = json!({"app": "web", "track": "stable"});
        let mut labeled = deployment(json!({"containers": [web()]}));
        labeled["metadata"]["labels"] = json!({"app": "web", "tier": "frontend"});

        let mut restarted = deployment(json!({"containers": [web()]}));
        restarted["spec"]["template"]["metadata"]["annotations"] = json!({RESTARTED_AT: "2025-03-01T10:00:00Z"});
        let mut restarted_again = restarted.clone();
        restarted_again["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] = json!("2025-03-02T10:00:00Z");

        let mut replaced_labels = labeled.clone();
        replaced_labels["metadata"]["labels"] = json!({"app": "v2"});
        let mut emptied = restarted.clone();
        emptied["spec"]["template"]["metadata"]["annotations"] = json!({});
        let mut merged_labels = labeled.clone();
        merged_labels["metadata"]["labels"]["env"] = json!("prod");

        run(vec![
            (
                "metadata.labels: null deletes a label, others merge",
                "apps/v1",
                "Deployment",
                labeled.clone(),
                json!({"metadata": {"labels": {"tier": null, "track": "stable"}}}),
                unlabeled,
            ),
            (
                "kubectl rollout restart",
                "apps/v1",
                "Deployment",
                deployment(json!({"containers": [web()]})),
                json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2025-03-01T10:00:00Z"}}}}}),
                restarted.clone(),
            ),
            (
                "kubectl rollout restart, again",
                "apps/v1",
                "Deployment",
                restarted.clone(),
                json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2025-03-02T10:00:00Z"}}}}}),
                restarted_again,
            ),
            (
                "$patch: replace in a map",
                "apps/v1",
                "Deployment",
                labeled.clone(),
                json!({"metadata": {"labels": {"$patch": "replace", "app": "v2"}}}),
                replaced_labels,
            ),
            (
                "$patch: delete in a map empties it",
                "apps/v1",
                "Deployment",
                restarted,
                json!({"spec": {"template": {"metadata": {"annotations": {"$patch": "delete"}}}}}),
                emptied,
            ),
            (
                "$patch: merge is the default",
                "apps/v1",
                "Deployment",
                labeled,
                json!({"metadata": {"labels": {"$patch": "merge", "env": "prod"}}}),
                merged_labels,
            ),
            (
                "new values are taken without nulls and directives",
                "v1",
                "Pod",
                pod(json!({"containers": [web()]})),
                json!({"spec": {
                    "nodeSelector": {"$patch": "replace", "disk": "ssd", "zone": null},
                    "affinity": {"$patch": "delete"},
                    "tolerations": [{"$patch": "replace"}, {"key": "a", "operator": "Exists"}],
                    "$setElementOrder/initContainers": [{"name": "init"}],
                    "initContainers": [{"name": "init", "image": "busybox", "env": [{"name": "X", "value": null}]}],
                }}),
                pod(json!({
                    "containers": [web()],
                    "nodeSelector": {"disk": "ssd"},
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "initContainers": [{"name": "init", "image": "busybox", "env": [{"name": "X"}]}],
                })),
            ),
            (
                "autoscaling/v1 Scale",
                "autoscaling/v1",
                "Scale",
                json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": 1}}),
                json!({"spec": {"replicas": 5}}),
                json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": 5}}),
            ),
            (
                "embedded JSON (RawExtension) merges without markers",
                "apps/v1",
                "ControllerRevision",
                json!({"metadata": {"name": "r"}, "revision": 1, "data": {"spec": {"a": 1}, "list": [1, 2]}}),
                json!({"data": {"spec": {"b": 2}, "list": [3]}}),
                json!({"metadata": {"name": "r"}, "revision": 1, "data": {"spec": {"a": 1, "b": 2}, "list": [3]}}),
            ),
        ]);
    }

    #[test]
    fn kubectl_apply_three_way_patches() {
        let mut applied = with_containers(json!([web(), sidecar()]));
        applied["metadata"]["annotations"] = json!({LAST_APPLIED: "{\"old\":true}"});
        let mut expected = with_containers(json!([web_with(json!({"image": "nginx:1.27"}))]));
        expected["metadata"]["annotations"] = json!({LAST_APPLIED: "{\"new\":true}"});
        let istio = json!({"name": "istio-proxy", "image": "istio/proxyv2:1.22"});
        run(vec![
            (
                "kubectl apply: a container removed, an image changed",
                "apps/v1",
                "Deployment",
                applied,
                json!({
                    "metadata": {"annotations": {LAST_APPLIED: "{\"new\":true}"}},
                    "spec": {"template": {"spec": {
                        "$setElementOrder/containers": [{"name": "web"}],
                        "containers": [{"image": "nginx:1.27", "name": "web"}, {"$patch": "delete", "name": "sidecar"}],
                    }}},
                }),
                expected,
            ),
            (
                "kubectl apply: reordered containers, a server-only container stays last",
                "apps/v1",
                "Deployment",
                with_containers(json!([web(), sidecar(), istio.clone()])),
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
                }}}}),
                with_containers(json!([sidecar(), web(), istio.clone()])),
            ),
            (
                "kubectl apply: a container added in the middle",
                "apps/v1",
                "Deployment",
                with_containers(json!([web(), sidecar()])),
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}, {"name": "sidecar"}],
                    "containers": [{"name": "log", "image": "fluent-bit:3"}],
                }}}}),
                with_containers(json!([web(), {"name": "log", "image": "fluent-bit:3"}, sidecar()])),
            ),
        ]);
    }

    #[test]
    fn without_schema() {
        run(vec![
            (
                "objects merge, lists are replaced, directives still apply",
                "",
                "",
                json!({
                    "metadata": {"name": "x", "finalizers": ["f1", "f2"]},
                    "spec": {"a": {"b": 1, "c": 2}, "list": [{"name": "x", "v": 1}], "keep": true},
                }),
                json!({
                    "metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]},
                    "spec": {"a": {"c": null, "d": 3}, "list": [{"$patch": "replace"}, {"name": "y"}], "keep": null},
                }),
                json!({
                    "metadata": {"name": "x", "finalizers": ["f2"]},
                    "spec": {"a": {"b": 1, "d": 3}, "list": [{"name": "y"}]},
                }),
            ),
            (
                "$retainKeys and $patch: replace",
                "",
                "",
                json!({"spec": {"a": 1, "b": 2, "c": {"x": 1}}}),
                json!({"spec": {"$retainKeys": ["a", "c"], "c": {"$patch": "replace", "y": 2}}}),
                json!({"spec": {"a": 1, "c": {"y": 2}}}),
            ),
        ]);
    }

    #[test]
    fn errors() {
        // `(name, apiVersion, kind, original, patch, message contains, 400?)`
        let deploy = || with_containers(json!([web(), sidecar()]));
        let cases: Vec<(&str, &str, &str, Value, Value, &str, bool)> = vec![
            (
                "unknown $patch in a map",
                "apps/v1",
                "Deployment",
                deploy(),
                json!({"spec": {"template": {"metadata": {"$patch": "remove"}}}}),
                "unknown patch type: remove in map: map[$patch:remove]",
                true,
            ),
            (
                "unknown $patch in a list element",
                "apps/v1",
                "Deployment",
                deploy(),
                containers_patch(json!([{"name": "web", "$patch": "upsert"}])),
                "unknown patch type: upsert in map: map[$patch:upsert name:web]",
                true,
            ),
            (
                "unknown $patch in a new value",
                "v1",
                "Pod",
                pod(json!({"containers": [web()]})),
                json!({"spec": {"nodeSelector": {"$patch": "nope"}}}),
                "unknown patch type: nope in map: map[$patch:nope]",
                true,
            ),
            (
                "an element of a merge list without its merge key",
                "apps/v1",
                "Deployment",
                deploy(),
                containers_patch(json!([{"image": "nginx"}])),
                "map: map[image:nginx] does not contain declared merge key: name",
                true,
            ),
            (
                "$patch: delete without the merge key",
                "apps/v1",
                "Deployment",
                deploy(),
                containers_patch(json!([{"name": "web", "env": [{"$patch": "delete", "value": "x"}]}])),
                "map: map[$patch:delete value:x] does not contain declared merge key: name",
                true,
            ),
            (
                "$setElementOrder disagrees with the patch list",
                "apps/v1",
                "Deployment",
                deploy(),
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
                    "containers": [{"name": "web", "image": "a"}, {"name": "sidecar", "image": "b"}],
                }}}}),
                "doesn't match $setElementOrder list",
                true,
            ),
            (
                "$setElementOrder element without the merge key",
                "apps/v1",
                "Deployment",
                deploy(),
                json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"image": "x"}]}}}}),
                "map: map[image:x] does not contain declared merge key: name",
                true,
            ),
            (
                "$setElementOrder that is not a list",
                "apps/v1",
                "Deployment",
                deploy(),
                json!({"spec": {"template": {"spec": {"$setElementOrder/containers": "web"}}}}),
                "expected a []interface {}, but received a string",
                true,
            ),
            (
                "$setElementOrder without a field",
                "apps/v1",
                "Deployment",
                deploy(),
                json!({"spec": {"$setElementOrder": []}}),
                "invalid patch format of setElementOrder list",
                true,
            ),
            (
                "$deleteFromPrimitiveList without a field",
                "v1",
                "ConfigMap",
                with_finalizers(json!(["a"])),
                json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
                "invalid patch format of primitive list",
                true,
            ),
            (
                "$retainKeys that is not a list",
                "apps/v1",
                "Deployment",
                deploy(),
                json!({"spec": {"strategy": {"$retainKeys": "type", "type": "Recreate"}}}),
                "invalid patch format of retainKeys",
                true,
            ),
            (
                "$retainKeys that leaves out a key the patch sets",
                "apps/v1",
                "Deployment",
                deploy(),
                json!({"spec": {"strategy": {
                    "$retainKeys": ["type"],
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1},
                }}}),
                "invalid patch format of retainKeys",
                true,
            ),
            (
                "a list of lists in a merge list",
                "v1",
                "ConfigMap",
                with_finalizers(json!([])),
                json!({"metadata": {"finalizers": [["a"]]}}),
                "lists of lists are not supported",
                false,
            ),
            (
                "mixed element types in a merge list",
                "v1",
                "ConfigMap",
                with_finalizers(json!(["a"])),
                json!({"metadata": {"finalizers": [1]}}),
                "list element types are not identical",
                true,
            ),
            (
                "a patch that is not an object",
                "v1",
                "ConfigMap",
                with_finalizers(json!(["a"])),
                json!([{"op": "add"}]),
                "invalid JSON document",
                true,
            ),
        ];
        for (name, api_version, kind, original, patch, message, bad_request) in cases {
            let err = apply(&original, &patch, schema_of(api_version, kind)).expect_err(name);
            assert!(err.message().contains(message), "{name}: {err}");
            assert_eq!(err.is_bad_request(), bad_request, "{name}: {err}");
        }
    }

    #[test]
    fn go_rendering() {
        let v = json!({"b": [1, "x", null], "a": {"c": true}});
        assert_eq!(go_value(&v), "map[a:map[c:true] b:[1 x <nil>]]");
        assert_eq!(go_type(&json!(1.5)), "float64");
        assert_eq!(go_type(&json!(1)), "int64");
    }
}
