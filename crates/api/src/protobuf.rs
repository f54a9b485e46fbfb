//! Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`), converted to and from
//! the JSON objects the rest of the server works with.
//!
//! # Format
//!
//! A body is the 4-byte prefix [`MAGIC`] (`k8s\0`) followed by a `runtime.Unknown` message:
//!
//! ```text
//! Unknown  { TypeMeta typeMeta = 1; bytes raw = 2; string contentEncoding = 3; string contentType = 4 }
//! TypeMeta { string apiVersion = 1; string kind = 2 }
//! ```
//!
//! `raw` holds the object itself, encoded as the proto2 message that the [schema
//! table](crate::schema) describes for its `apiVersion` and `kind` (`apiVersion` and `kind`
//! travel only in the envelope). The JSON form of a message is an object whose keys are the
//! fields' JSON names, with these rules:
//!
//! - presence: a field on the wire appears in JSON even when it holds a zero value
//!   (`replicas: 0`); an absent field is omitted, and so is an empty list or map. Encoding
//!   treats JSON `null` as absent and ignores keys the message does not define. Go clients
//!   write every field that is not a pointer, so their bodies carry `""`, `0` and `false` for
//!   fields the user never set (`spec.strategy.type: ""`); the wire cannot tell these apart
//!   from values that were set.
//! - `bytes` are base64 strings; maps are repeated `{key = 1, value = 2}` entries; repeated
//!   numbers are read packed or unpacked and written unpacked, as upstream does.
//! - messages with their own JSON form: `Time` (RFC 3339, seconds), `MicroTime` (RFC 3339,
//!   microseconds), `Duration` (Go duration string such as `1h2m3s`), `Quantity` (its string),
//!   `IntOrString` (a number or a string), `RawExtension`, `FieldsV1` and apiextensions' `JSON`
//!   (the embedded JSON value; a `RawExtension` may also embed a prefixed protobuf object),
//!   `ExtraValue` and `Verbs` (a list of strings), and the apiextensions
//!   `JSONSchemaPropsOr{Array,Bool,StringArray}` unions.
//! - fields that Go embeds with `json:",inline"` (`Volume.volumeSource`, `Probe.handler`,
//!   `ConfigMapKeySelector.localObjectReference`, ...) are separate messages on the wire but
//!   their fields sit in the parent's JSON object.
//!
//! Watch streams (`;stream=watch`) carry each event as a bare `WatchEvent` message (no prefix,
//! no envelope) framed by a 4-byte big-endian length; its object is a prefixed body of its own
//! ([`encode_watch_event`]).
//!
//! Nothing here panics on malformed input: truncated data, lengths beyond the buffer, invalid
//! UTF-8, wrong wire types and nesting deeper than 100 messages are errors.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Number, Value};

use crate::schema::{self, Field, MESSAGES, Message, Shape, Special, Value as Ty};

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// How deeply messages may nest (each embedded message is one level).
const MAX_DEPTH: usize = 100;

/// `time.Time{}` as Unix seconds: upstream's zero time, which is `null` in JSON.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Why a protobuf body could not be decoded, or an object could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("the body does not start with the protobuf prefix \"k8s\\x00\"")]
    MissingMagic,
    #[error("content encoding {0:?} is not supported")]
    ContentEncoding(String),
    #[error("the object has no kind")]
    MissingKind,
    #[error("no protobuf message is known for apiVersion {api_version:?}, kind {kind:?}")]
    UnknownKind { api_version: String, kind: String },
    /// Malformed wire data; `path` is the JSON path of the field (`spec.containers[0].name`).
    #[error("{}", located(.path, .reason))]
    Decode { path: String, reason: String },
    /// A JSON value that the message cannot represent.
    #[error("{}", located(.path, .reason))]
    Encode { path: String, reason: String },
}

fn located(path: &str, reason: &str) -> String {
    if path.is_empty() { reason.to_string() } else { format!("{path}: {reason}") }
}

type Result<T, E = ProtobufError> = std::result::Result<T, E>;

impl ProtobufError {
    fn decode(reason: impl Into<String>) -> Self {
        ProtobufError::Decode { path: String::new(), reason: reason.into() }
    }

    fn encode(reason: impl Into<String>) -> Self {
        ProtobufError::Encode { path: String::new(), reason: reason.into() }
    }

    /// Places the error inside field `name`.
    fn in_field(self, name: &str) -> Self {
        self.prefixed(name)
    }

    /// Places the error inside element `index` of a list.
    fn in_item(self, index: usize) -> Self {
        self.prefixed(&format!("[{index}]"))
    }

    /// Places the error inside the map entry `key`.
    fn in_entry(self, key: &str) -> Self {
        self.prefixed(&format!("[{key}]"))
    }

    fn prefixed(mut self, segment: &str) -> Self {
        if let ProtobufError::Decode { path, .. } | ProtobufError::Encode { path, .. } = &mut self {
            let sep = if path.is_empty() || path.starts_with('[') { "" } else { "." };
            *path = format!("{segment}{sep}{path}");
        }
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// Decodes a prefixed protobuf body into a JSON object with `apiVersion` and `kind` taken from
/// the envelope (each when non-empty).
pub fn decode_object(body: &[u8]) -> Result<Value, ProtobufError> {
    decode_object_at(body, 0)
}

/// The JSON form of one message (`bytes` without prefix or envelope). `Value::Null` when that
/// form is null (an empty `Time`, an empty `RawExtension`).
pub fn decode_message(msg: &'static Message, bytes: &[u8]) -> Result<Value, ProtobufError> {
    Ok(decode_value(msg, bytes, 0)?.unwrap_or(Value::Null))
}

/// Encodes a JSON object as a prefixed protobuf body; the message is chosen by its `kind` and
/// `apiVersion`, which go into the envelope.
pub fn encode_object(obj: &Value) -> Result<Vec<u8>, ProtobufError> {
    let Value::Object(map) = obj else {
        return Err(ProtobufError::encode("expected a JSON object"));
    };
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind.is_empty() {
        return Err(ProtobufError::MissingKind);
    }
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let msg = schema::for_kind(api_version, kind)
        .ok_or_else(|| ProtobufError::UnknownKind { api_version: api_version.to_string(), kind: kind.to_string() })?;
    if form(msg) != Form::Object {
        return Err(ProtobufError::encode(format!("{} is not an object", msg.name)));
    }
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(MAGIC);
    nested(&mut buf, 1, |b| {
        put_bytes(b, 1, api_version.as_bytes());
        put_bytes(b, 2, kind.as_bytes());
        Ok(())
    })?;
    nested(&mut buf, 2, |b| encode_value(msg, obj, 1, b))?;
    // contentEncoding and contentType, empty (upstream writes them too).
    put_bytes(&mut buf, 3, b"");
    put_bytes(&mut buf, 4, b"");
    Ok(buf)
}

/// Encodes the JSON form of one message (no prefix, no envelope). `null` is the empty message.
pub fn encode_message(msg: &'static Message, value: &Value) -> Result<Vec<u8>, ProtobufError> {
    let mut buf = Vec::with_capacity(128);
    if !value.is_null() {
        encode_value(msg, value, 0, &mut buf)?;
    }
    Ok(buf)
}

/// One event of a protobuf watch stream: a bare `WatchEvent` message whose object is the
/// prefixed body of `object`. The stream writes each event after its length as a 4-byte
/// big-endian integer.
pub fn encode_watch_event(event_type: &str, object: &Value) -> Result<Vec<u8>, ProtobufError> {
    let raw = encode_object(object)?;
    let mut buf = Vec::with_capacity(raw.len() + event_type.len() + 16);
    put_bytes(&mut buf, 1, event_type.as_bytes());
    nested(&mut buf, 2, |b| {
        put_bytes(b, 1, &raw);
        Ok(())
    })?;
    Ok(buf)
}

// ---------------------------------------------------------------------------------------------
// JSON forms
// ---------------------------------------------------------------------------------------------

/// How a message looks in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// An object of its fields.
    Object,
    Time,
    MicroTime,
    Duration,
    Quantity,
    IntOrString,
    /// Embedded JSON in `bytes raw = 1`; `objects`: a prefixed protobuf object may stand
    /// there instead (`RawExtension`).
    Json {
        objects: bool,
    },
    /// `repeated string items = 1` shown as a plain list (`ExtraValue`, `Verbs`).
    Strings,
    /// A schema object or a list of schemas (`schema = 1`, `JSONSchemas = 2`).
    SchemaOrArray,
    /// `true`/`false` or a schema object (`allows = 1`, `schema = 2`).
    SchemaOrBool,
    /// A schema object or a list of strings (`schema = 1`, `property = 2`).
    SchemaOrStringArray,
}

const APIEXTENSIONS: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.";

fn short_name(msg: &Message) -> &'static str {
    msg.name.rsplit('.').next().unwrap_or(msg.name)
}

fn form(msg: &Message) -> Form {
    match msg.special() {
        Some(Special::Time) => return Form::Time,
        Some(Special::MicroTime) => return Form::MicroTime,
        Some(Special::Duration) => return Form::Duration,
        Some(Special::Quantity) => return Form::Quantity,
        Some(Special::IntOrString) => return Form::IntOrString,
        Some(Special::RawExtension) => return Form::Json { objects: true },
        Some(Special::FieldsV1) => return Form::Json { objects: false },
        None => {}
    }
    let short = short_name(msg);
    if short == "ExtraValue" || msg.name == "io.k8s.apimachinery.pkg.apis.meta.v1.Verbs" {
        return Form::Strings;
    }
    if msg.name.starts_with(APIEXTENSIONS) {
        // The table spells these both `JSON...` and `Json...`.
        let is = |name: &str| short.eq_ignore_ascii_case(name);
        if is("JSON") {
            return Form::Json { objects: false };
        } else if is("JSONSchemaPropsOrArray") {
            return Form::SchemaOrArray;
        } else if is("JSONSchemaPropsOrBool") {
            return Form::SchemaOrBool;
        } else if is("JSONSchemaPropsOrStringArray") {
            return Form::SchemaOrStringArray;
        }
    }
    Form::Object
}

/// The embedded message when `field` is inlined into its parent's JSON object.
fn inlined(field: &Field) -> Option<&'static Message> {
    let child = field.message()?;
    let inline = field.inline && field.shape == Shape::Single && form(child) == Form::Object;
    inline.then_some(child)
}

/// The field with number `tag` (for the fixed layouts of the special forms).
fn field_by_tag(msg: &'static Message, tag: u32) -> Result<&'static Field, String> {
    msg.fields.iter().find(|f| f.tag == tag).ok_or_else(|| format!("{} has no field {tag} in the schema", msg.name))
}

// ---------------------------------------------------------------------------------------------
// Wire reading
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32,
    Group,
}

impl Wire<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64(_) => "64-bit",
            Wire::Len(_) => "length-delimited",
            Wire::Fixed32 => "32-bit",
            Wire::Group => "group",
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(ProtobufError::decode("truncated varint"));
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(ProtobufError::decode("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(ProtobufError::decode("varint overflows 64 bits"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let remaining = self.buf.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= remaining => {
                let out = &self.buf[self.pos..self.pos + n];
                self.pos += n;
                Ok(out)
            }
            _ => Err(ProtobufError::decode(format!("length {n} exceeds the remaining {remaining} bytes"))),
        }
    }

    fn fixed64(&mut self) -> Result<u64> {
        let bytes = self.take(8)?;
        let mut arr = [0u8; 8];
        arr.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(arr))
    }

    /// The next field number and value; `None` at the end of the buffer.
    fn field(&mut self) -> Result<Option<(u32, Wire<'a>)>> {
        if self.at_end() {
            return Ok(None);
        }
        let (tag, wire_type) = self.key()?;
        let wire = match wire_type {
            VARINT => Wire::Varint(self.varint()?),
            FIXED64 => Wire::Fixed64(self.fixed64()?),
            LEN => {
                let n = self.varint()?;
                Wire::Len(self.take(n)?)
            }
            START_GROUP => {
                self.skip_group(tag)?;
                Wire::Group
            }
            FIXED32 => {
                self.take(4)?;
                Wire::Fixed32
            }
            END_GROUP => return Err(ProtobufError::decode(format!("unexpected end of group {tag}"))),
            other => return Err(ProtobufError::decode(format!("invalid wire type {other}"))),
        };
        Ok(Some((tag, wire)))
    }

    fn key(&mut self) -> Result<(u32, u8)> {
        let key = self.varint()?;
        let tag = key >> 3;
        if tag == 0 || tag > (1 << 29) - 1 {
            return Err(ProtobufError::decode(format!("invalid field number {tag}")));
        }
        Ok((tag as u32, (key & 7) as u8))
    }

    /// Skips the contents of group `tag` up to and including its end marker.
    fn skip_group(&mut self, tag: u32) -> Result<()> {
        let mut open = vec![tag];
        while let Some(&current) = open.last() {
            if self.at_end() {
                return Err(ProtobufError::decode(format!("group {current} is not closed")));
            }
            let (t, wire_type) = self.key()?;
            match wire_type {
                VARINT => {
                    self.varint()?;
                }
                FIXED64 => {
                    self.take(8)?;
                }
                LEN => {
                    let n = self.varint()?;
                    self.take(n)?;
                }
                START_GROUP => open.push(t),
                END_GROUP if t == current => {
                    open.pop();
                }
                END_GROUP => {
                    return Err(ProtobufError::decode(format!("group {current} closed by the end of group {t}")));
                }
                FIXED32 => {
                    self.take(4)?;
                }
                other => return Err(ProtobufError::decode(format!("invalid wire type {other}"))),
            }
        }
        Ok(())
    }
}

/// Calls `f` with every field of `bytes`, in wire order.
fn for_each_field<'a>(bytes: &'a [u8], mut f: impl FnMut(u32, Wire<'a>) -> Result<()>) -> Result<()> {
    let mut reader = Reader::new(bytes);
    while let Some((tag, wire)) = reader.field()? {
        f(tag, wire)?;
    }
    Ok(())
}

fn wrong_wire(expected: &str, wire: Wire<'_>) -> ProtobufError {
    ProtobufError::decode(format!("expected a {expected} value, found {}", wire.describe()))
}

fn expect_varint(wire: Wire<'_>) -> Result<u64> {
    match wire {
        Wire::Varint(v) => Ok(v),
        other => Err(wrong_wire("varint", other)),
    }
}

fn expect_len(wire: Wire<'_>) -> Result<&[u8]> {
    match wire {
        Wire::Len(b) => Ok(b),
        other => Err(wrong_wire("length-delimited", other)),
    }
}

fn utf8(bytes: &[u8]) -> Result<String> {
    std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| ProtobufError::decode("string is not valid UTF-8"))
}

/// Concatenates the occurrences of a message field: protobuf merges them.
fn joined<'a>(parts: &[&'a [u8]]) -> Cow<'a, [u8]> {
    match parts {
        [] => Cow::Borrowed(&[]),
        [one] => Cow::Borrowed(one),
        many => Cow::Owned(many.concat()),
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

fn decode_object_at(body: &[u8], depth: usize) -> Result<Value> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::MissingMagic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut content_encoding = String::new();
    for_each_field(rest, |tag, wire| {
        match tag {
            1 => for_each_field(expect_len(wire)?, |tag, wire| {
                match tag {
                    1 => api_version = utf8(expect_len(wire)?)?,
                    2 => kind = utf8(expect_len(wire)?)?,
                    _ => {}
                }
                Ok(())
            })
            .map_err(|e| e.in_field("typeMeta"))?,
            2 => raw = expect_len(wire).map_err(|e| e.in_field("raw"))?,
            3 => content_encoding = utf8(expect_len(wire)?).map_err(|e| e.in_field("contentEncoding"))?,
            _ => {}
        }
        Ok(())
    })
    .map_err(|e| match e {
        ProtobufError::Decode { path, reason } => ProtobufError::Decode {
            path: String::new(),
            reason: format!("invalid envelope{}: {reason}", if path.is_empty() { path } else { format!(" {path}") }),
        },
        other => other,
    })?;
    if !content_encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(content_encoding));
    }
    if kind.is_empty() {
        return Err(ProtobufError::MissingKind);
    }
    let msg = schema::for_kind(&api_version, &kind)
        .ok_or_else(|| ProtobufError::UnknownKind { api_version: api_version.clone(), kind: kind.clone() })?;
    if form(msg) != Form::Object {
        return Err(ProtobufError::decode(format!("{} is not an object", msg.name)));
    }
    if depth >= MAX_DEPTH {
        return Err(too_deep());
    }
    let mut fields = Map::new();
    decode_fields(msg, raw, depth + 1, &mut fields)?;
    let mut out = Map::new();
    if !api_version.is_empty() {
        out.insert("apiVersion".to_string(), Value::String(api_version));
    }
    out.insert("kind".to_string(), Value::String(kind));
    for (k, v) in fields {
        if !out.contains_key(&k) {
            out.insert(k, v);
        }
    }
    Ok(Value::Object(out))
}

fn too_deep() -> ProtobufError {
    ProtobufError::decode(format!("messages nest deeper than {MAX_DEPTH} levels"))
}

/// The JSON form of `msg` in `bytes`; `None` when that form is null.
fn decode_value(msg: &'static Message, bytes: &[u8], depth: usize) -> Result<Option<Value>> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    match form(msg) {
        Form::Object => {
            let mut out = Map::new();
            decode_fields(msg, bytes, depth, &mut out)?;
            Ok(Some(Value::Object(out)))
        }
        special => decode_special(msg, special, bytes, depth),
    }
}

/// The messages with their own JSON form. Kept apart from [`decode_value`] so that the frames
/// of the object recursion stay small.
#[inline(never)]
fn decode_special(msg: &'static Message, form: Form, bytes: &[u8], depth: usize) -> Result<Option<Value>> {
    match form {
        Form::Object => Err(ProtobufError::decode(format!("{} is an object", msg.name))),
        Form::Time => Ok(match read_timestamp(bytes)? {
            None | Some((GO_ZERO_TIME_SECONDS, _)) => None,
            // Upstream keeps only the seconds of a Time.
            Some((seconds, _)) => Some(Value::String(format_time(seconds, None)?)),
        }),
        Form::MicroTime => Ok(match read_timestamp(bytes)? {
            None | Some((GO_ZERO_TIME_SECONDS, 0)) => None,
            Some((seconds, nanos)) => {
                let total = i128::from(seconds) * i128::from(NANOS_PER_SECOND) + i128::from(nanos);
                let seconds = i64::try_from(total.div_euclid(i128::from(NANOS_PER_SECOND)))
                    .map_err(|_| ProtobufError::decode("timestamp out of range"))?;
                let nanos = total.rem_euclid(i128::from(NANOS_PER_SECOND)) as u32;
                Some(Value::String(format_time(seconds, Some(nanos / 1000))?))
            }
        }),
        Form::Duration => {
            let mut nanos = 0i64;
            for_each_field(bytes, |tag, wire| {
                if tag == 1 {
                    nanos = expect_varint(wire).map_err(|e| e.in_field("duration"))? as i64;
                }
                Ok(())
            })?;
            Ok(Some(Value::String(format_go_duration(nanos))))
        }
        Form::Quantity => {
            let mut text = None;
            for_each_field(bytes, |tag, wire| {
                if tag == 1 {
                    text = Some(utf8(expect_len(wire)?).map_err(|e| e.in_field("string"))?);
                }
                Ok(())
            })?;
            Ok(Some(Value::String(text.unwrap_or_else(|| "0".to_string()))))
        }
        Form::IntOrString => {
            let (mut kind, mut int_val, mut str_val) = (0i64, 0i32, String::new());
            for_each_field(bytes, |tag, wire| {
                match tag {
                    1 => kind = expect_varint(wire).map_err(|e| e.in_field("type"))? as i64,
                    2 => int_val = expect_varint(wire).map_err(|e| e.in_field("intVal"))? as i32,
                    3 => str_val = utf8(expect_len(wire)?).map_err(|e| e.in_field("strVal"))?,
                    _ => {}
                }
                Ok(())
            })?;
            match kind {
                0 => Ok(Some(Value::from(int_val))),
                1 => Ok(Some(Value::String(str_val))),
                other => Err(ProtobufError::decode(format!("invalid IntOrString type {other}"))),
            }
        }
        Form::Json { objects } => {
            let mut raw: &[u8] = &[];
            for_each_field(bytes, |tag, wire| {
                if tag == 1 {
                    raw = expect_len(wire).map_err(|e| e.in_field("raw"))?;
                }
                Ok(())
            })?;
            if raw.is_empty() {
                Ok(None)
            } else if objects && raw.starts_with(MAGIC) {
                decode_object_at(raw, depth + 1).map(Some)
            } else {
                serde_json::from_slice(raw)
                    .map(Some)
                    .map_err(|e| ProtobufError::decode(format!("the embedded JSON is invalid: {e}")))
            }
        }
        Form::Strings => {
            let mut items = Vec::new();
            for_each_field(bytes, |tag, wire| {
                if tag == 1 {
                    let s = expect_len(wire).and_then(utf8).map_err(|e| e.in_item(items.len()))?;
                    items.push(Value::String(s));
                }
                Ok(())
            })?;
            Ok(Some(Value::Array(items)))
        }
        Form::SchemaOrArray | Form::SchemaOrBool | Form::SchemaOrStringArray => {
            let mut fields = Map::new();
            decode_fields(msg, bytes, depth, &mut fields)?;
            let first = field_by_tag(msg, 1).map_err(ProtobufError::decode)?.json;
            let second = field_by_tag(msg, 2).map_err(ProtobufError::decode)?.json;
            Ok(match form {
                Form::SchemaOrBool => Some(
                    fields
                        .remove(second)
                        .unwrap_or_else(|| Value::Bool(fields.get(first).and_then(Value::as_bool).unwrap_or(false))),
                ),
                // A non-empty list wins over the schema (decode_fields omits empty lists).
                _ => fields.remove(second).or_else(|| fields.remove(first)),
            })
        }
    }
}

/// `seconds` (1) and `nanos` (2) of a Time or MicroTime; `None` when neither is present.
fn read_timestamp(bytes: &[u8]) -> Result<Option<(i64, i32)>> {
    let (mut seconds, mut nanos, mut seen) = (0i64, 0i32, false);
    for_each_field(bytes, |tag, wire| {
        match tag {
            1 => seconds = expect_varint(wire).map_err(|e| e.in_field("seconds"))? as i64,
            2 => nanos = expect_varint(wire).map_err(|e| e.in_field("nanos"))? as i32,
            _ => return Ok(()),
        }
        seen = true;
        Ok(())
    })?;
    Ok(seen.then_some((seconds, nanos)))
}

/// RFC 3339 in UTC, with `micros` as six fractional digits when given.
fn format_time(seconds: i64, micros: Option<u32>) -> Result<String> {
    let time = DateTime::<Utc>::from_timestamp(seconds, 0)
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| ProtobufError::decode(format!("timestamp {seconds} is out of range")))?;
    let base = time.format("%Y-%m-%dT%H:%M:%S");
    Ok(match micros {
        Some(micros) => format!("{base}.{micros:06}Z"),
        None => format!("{base}Z"),
    })
}

/// One field's value as it accumulates over the wire.
enum Slot<'a> {
    Empty,
    One(Value),
    Parts(Vec<&'a [u8]>),
    List(Vec<Value>),
    Entries(Map<String, Value>),
}

/// Decodes the fields of an object-form message into `out`.
fn decode_fields(msg: &'static Message, bytes: &[u8], depth: usize, out: &mut Map<String, Value>) -> Result<()> {
    let mut slots: Vec<Slot<'_>> = msg.fields.iter().map(|_| Slot::Empty).collect();
    for_each_field(bytes, |tag, wire| {
        let Some(i) = msg.fields.iter().position(|f| f.tag == tag) else {
            return Ok(());
        };
        let field = &msg.fields[i];
        read_field(field, wire, depth, &mut slots[i]).map_err(|e| in_json_field(e, field))
    })?;
    for (field, slot) in msg.fields.iter().zip(slots) {
        let value = match slot {
            Slot::Empty => continue,
            // Go writes every non-pointer field, zero or not; its JSON leaves out the zero
            // values of `omitempty` fields, and so does this decoder.
            Slot::One(v) if field.omit_empty && !field.pointer && is_zero(&v) => continue,
            Slot::One(v) => v,
            Slot::Parts(parts) => {
                let Some(child) = field.message() else { continue };
                let bytes = joined(&parts);
                if let Some(child) = inlined(field) {
                    if depth >= MAX_DEPTH {
                        return Err(too_deep());
                    }
                    let mut inner = Map::new();
                    decode_fields(child, &bytes, depth + 1, &mut inner)?;
                    for (k, v) in inner {
                        // Go's rule for embedded structs: the outer field wins.
                        out.entry(k).or_insert(v);
                    }
                    continue;
                }
                match decode_value(child, &bytes, depth + 1).map_err(|e| e.in_field(field.json))? {
                    Some(v) => v,
                    None => continue,
                }
            }
            Slot::List(items) if items.is_empty() => continue,
            Slot::List(items) => Value::Array(items),
            Slot::Entries(entries) if entries.is_empty() => continue,
            Slot::Entries(entries) => Value::Object(entries),
        };
        out.insert(field.json.to_string(), value);
    }
    Ok(())
}

/// A Go zero value as JSON: `""`, `0`, `false`.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Null => true,
        _ => false,
    }
}

fn in_json_field(e: ProtobufError, field: &Field) -> ProtobufError {
    if inlined(field).is_some() { e } else { e.in_field(field.json) }
}

fn read_field<'a>(field: &'static Field, wire: Wire<'a>, depth: usize, slot: &mut Slot<'a>) -> Result<()> {
    match field.shape {
        Shape::Single => match field.value {
            Ty::Message(_) => {
                let bytes = expect_len(wire)?;
                match slot {
                    Slot::Parts(parts) => parts.push(bytes),
                    _ => *slot = Slot::Parts(vec![bytes]),
                }
            }
            ty => *slot = Slot::One(scalar(ty, wire)?),
        },
        Shape::Repeated => {
            if !matches!(slot, Slot::List(_)) {
                *slot = Slot::List(Vec::new());
            }
            let Slot::List(items) = slot else { return Ok(()) };
            match (field.value, wire) {
                (Ty::Message(_), wire) => {
                    let index = items.len();
                    let bytes = expect_len(wire).map_err(|e| e.in_item(index))?;
                    let child = field.message().ok_or_else(|| ProtobufError::decode("unknown message"))?;
                    let value = decode_value(child, bytes, depth + 1).map_err(|e| e.in_item(index))?;
                    items.push(value.unwrap_or(Value::Null));
                }
                (ty @ (Ty::Bool | Ty::Int32 | Ty::Int64 | Ty::Double), Wire::Len(packed)) => {
                    let mut reader = Reader::new(packed);
                    while !reader.at_end() {
                        let wire = match ty {
                            Ty::Double => Wire::Fixed64(reader.fixed64()?),
                            _ => Wire::Varint(reader.varint()?),
                        };
                        items.push(scalar(ty, wire)?);
                    }
                }
                (ty, wire) => {
                    let index = items.len();
                    items.push(scalar(ty, wire).map_err(|e| e.in_item(index))?);
                }
            }
        }
        Shape::Map => {
            let (key, value) = read_entry(field, expect_len(wire)?, depth)?;
            if !matches!(slot, Slot::Entries(_)) {
                *slot = Slot::Entries(Map::new());
            }
            if let Slot::Entries(entries) = slot {
                entries.insert(key, value);
            }
        }
    }
    Ok(())
}

/// A map entry: `key = 1` (string) and `value = 2`.
fn read_entry(field: &'static Field, bytes: &[u8], depth: usize) -> Result<(String, Value)> {
    let mut key = String::new();
    let mut value = None;
    let mut parts = Vec::new();
    for_each_field(bytes, |tag, wire| {
        match (tag, field.value) {
            (1, _) => key = utf8(expect_len(wire)?)?,
            (2, Ty::Message(_)) => parts.push(expect_len(wire)?),
            (2, ty) => value = Some(scalar(ty, wire)?),
            _ => {}
        }
        Ok(())
    })?;
    let value = match field.message() {
        Some(child) => {
            decode_value(child, &joined(&parts), depth + 1).map_err(|e| e.in_entry(&key))?.unwrap_or(Value::Null)
        }
        None => match value {
            Some(v) => v,
            None => zero(field.value),
        },
    };
    Ok((key, value))
}

/// The JSON of a scalar's zero value.
fn zero(ty: Ty) -> Value {
    match ty {
        Ty::String | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::Int32 | Ty::Int64 => Value::from(0),
        Ty::Double => Value::from(0.0),
        Ty::Message(_) => Value::Null,
    }
}

fn scalar(ty: Ty, wire: Wire<'_>) -> Result<Value> {
    match (ty, wire) {
        (Ty::String, Wire::Len(b)) => Ok(Value::String(utf8(b)?)),
        (Ty::Bytes, Wire::Len(b)) => Ok(Value::String(BASE64.encode(b))),
        (Ty::Bool, Wire::Varint(v)) => Ok(Value::Bool(v != 0)),
        // Like every protobuf implementation, an int32 keeps the low 32 bits.
        (Ty::Int32, Wire::Varint(v)) => Ok(Value::from(v as i32)),
        (Ty::Int64, Wire::Varint(v)) => Ok(Value::from(v as i64)),
        (Ty::Double, Wire::Fixed64(bits)) => Number::from_f64(f64::from_bits(bits))
            .map(Value::Number)
            .ok_or_else(|| ProtobufError::decode("a double is not a finite number")),
        (Ty::String | Ty::Bytes | Ty::Message(_), other) => Err(wrong_wire("length-delimited", other)),
        (Ty::Bool | Ty::Int32 | Ty::Int64, other) => Err(wrong_wire("varint", other)),
        (Ty::Double, other) => Err(wrong_wire("64-bit", other)),
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_key(buf: &mut Vec<u8>, tag: u32, wire_type: u8) {
    put_varint(buf, (u64::from(tag) << 3) | u64::from(wire_type));
}

fn put_bytes(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    put_key(buf, tag, LEN);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_uint(buf: &mut Vec<u8>, tag: u32, v: u64) {
    put_key(buf, tag, VARINT);
    put_varint(buf, v);
}

/// Writes field `tag` holding the message that `body` writes, with its length in front.
fn nested(buf: &mut Vec<u8>, tag: u32, body: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<()> {
    put_key(buf, tag, LEN);
    // One byte is reserved for the length, enough for most messages; longer ones shift.
    let at = buf.len();
    buf.push(0);
    body(buf)?;
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        put_varint(&mut prefix, len as u64);
        buf.splice(at..at + 1, prefix);
    }
    Ok(())
}

/// Writes the body of message `msg` from its JSON form `value` (not null).
fn encode_value(msg: &'static Message, value: &Value, depth: usize, buf: &mut Vec<u8>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::encode(format!("objects nest deeper than {MAX_DEPTH} levels")));
    }
    match (form(msg), value) {
        (Form::Object, Value::Object(obj)) => encode_fields(msg, obj, depth, buf),
        (Form::Object, other) => Err(expected("an object", other)),
        (special, _) => encode_special(msg, special, value, depth, buf),
    }
}

/// The messages with their own JSON form (see [`decode_special`]).
#[inline(never)]
fn encode_special(msg: &'static Message, form: Form, value: &Value, depth: usize, buf: &mut Vec<u8>) -> Result<()> {
    match form {
        Form::Object => Err(ProtobufError::encode(format!("{} is an object", msg.name))),
        Form::Time | Form::MicroTime => {
            let text = value.as_str().ok_or_else(|| expected("an RFC 3339 time string", value))?;
            let time = DateTime::parse_from_rfc3339(text)
                .map_err(|e| ProtobufError::encode(format!("invalid RFC 3339 time {text:?}: {e}")))?;
            // chrono counts a leap second in the nanoseconds; protobuf timestamps cannot.
            let nanos = time.timestamp_subsec_nanos().min(999_999_999);
            put_uint(buf, 1, time.timestamp() as u64);
            put_uint(buf, 2, u64::from(nanos));
            Ok(())
        }
        Form::Duration => {
            let text = value.as_str().ok_or_else(|| expected("a duration string", value))?;
            let nanos = parse_go_duration(text).map_err(ProtobufError::encode)?;
            put_uint(buf, 1, nanos as u64);
            Ok(())
        }
        Form::Quantity => {
            let text = match value {
                Value::String(s) => Cow::Borrowed(s.as_str()),
                Value::Number(n) => Cow::Owned(n.to_string()),
                other => return Err(expected("a quantity string", other)),
            };
            put_bytes(buf, 1, text.as_bytes());
            Ok(())
        }
        Form::IntOrString => {
            match value {
                Value::String(s) => {
                    put_uint(buf, 1, 1);
                    put_uint(buf, 2, 0);
                    put_bytes(buf, 3, s.as_bytes());
                }
                Value::Number(_) => {
                    let n = json_int(value)
                        .and_then(|n| i32::try_from(n).ok())
                        .ok_or_else(|| ProtobufError::encode(format!("{value} is not a 32-bit integer")))?;
                    put_uint(buf, 1, 0);
                    put_uint(buf, 2, n as i64 as u64);
                    put_bytes(buf, 3, b"");
                }
                other => return Err(expected("an integer or a string", other)),
            }
            Ok(())
        }
        Form::Json { .. } => {
            let raw = serde_json::to_vec(value).map_err(|e| ProtobufError::encode(e.to_string()))?;
            put_bytes(buf, 1, &raw);
            Ok(())
        }
        Form::Strings => {
            let Value::Array(items) = value else {
                return Err(expected("a list of strings", value));
            };
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => put_bytes(buf, 1, s.as_bytes()),
                    Value::Null => put_bytes(buf, 1, b""),
                    other => return Err(expected("a string", other).in_item(i)),
                }
            }
            Ok(())
        }
        Form::SchemaOrArray | Form::SchemaOrStringArray => {
            let tag = match value {
                Value::Object(_) => 1,
                Value::Array(_) => 2,
                other => return Err(expected("an object or a list", other)),
            };
            let field = field_by_tag(msg, tag).map_err(ProtobufError::encode)?;
            encode_field(field, value, depth, buf)
        }
        Form::SchemaOrBool => match value {
            Value::Bool(b) => {
                put_uint(buf, 1, u64::from(*b));
                Ok(())
            }
            Value::Object(_) => {
                put_uint(buf, 1, 1);
                let field = field_by_tag(msg, 2).map_err(ProtobufError::encode)?;
                encode_field(field, value, depth, buf)
            }
            other => Err(expected("a boolean or an object", other)),
        },
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn expected(what: &str, found: &Value) -> ProtobufError {
    ProtobufError::encode(format!("expected {what}, found {}", type_of(found)))
}

/// An integral JSON number as i64 (`3.0` counts; `2^63` and `1.5` do not).
fn json_int(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None;
    }
    let f = n.as_f64()?;
    // i64::MIN is exactly -2^63; 2^63 itself is out of range.
    let limit = -(i64::MIN as f64);
    (f.fract() == 0.0 && (-limit..limit).contains(&f)).then_some(f as i64)
}

/// Writes the fields of an object-form message in field-number order.
fn encode_fields(msg: &'static Message, obj: &Map<String, Value>, depth: usize, buf: &mut Vec<u8>) -> Result<()> {
    let write = |field: &'static Field| -> Result<()> {
        if let Some(child) = inlined(field) {
            // Go embeds these structs by value, so upstream always writes them.
            return nested(buf, field.tag, |b| encode_fields(child, obj, depth + 1, b));
        }
        match obj.get(field.json) {
            None | Some(Value::Null) => Ok(()),
            Some(value) => encode_field(field, value, depth, buf).map_err(|e| e.in_field(field.json)),
        }
    };
    if msg.fields.is_sorted_by_key(|f| f.tag) {
        msg.fields.iter().try_for_each(write)
    } else {
        let mut ordered: Vec<&'static Field> = msg.fields.iter().collect();
        ordered.sort_by_key(|f| f.tag);
        ordered.into_iter().try_for_each(write)
    }
}

/// Writes one field of any shape from a non-null JSON value.
fn encode_field(field: &'static Field, value: &Value, depth: usize, buf: &mut Vec<u8>) -> Result<()> {
    match field.shape {
        Shape::Single => encode_single(field.tag, field.value, value, depth, buf),
        Shape::Repeated => {
            let Value::Array(items) = value else {
                return Err(expected("a list", value));
            };
            for (i, item) in items.iter().enumerate() {
                encode_single(field.tag, field.value, item, depth, buf).map_err(|e| e.in_item(i))?;
            }
            Ok(())
        }
        Shape::Map => {
            let Value::Object(entries) = value else {
                return Err(expected("an object", value));
            };
            // Upstream writes map entries sorted by key.
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort_unstable();
            for key in keys {
                nested(buf, field.tag, |b| {
                    put_bytes(b, 1, key.as_bytes());
                    encode_single(2, field.value, &entries[key], depth, b)
                })
                .map_err(|e| e.in_entry(key))?;
            }
            Ok(())
        }
    }
}

/// Writes field `tag` of type `ty`; `null` (in a list or map) writes the zero value.
fn encode_single(tag: u32, ty: Ty, value: &Value, depth: usize, buf: &mut Vec<u8>) -> Result<()> {
    match ty {
        Ty::String => match value {
            Value::String(s) => put_bytes(buf, tag, s.as_bytes()),
            Value::Null => put_bytes(buf, tag, b""),
            other => return Err(expected("a string", other)),
        },
        Ty::Bytes => match value {
            Value::String(s) => {
                let bytes =
                    BASE64.decode(s.as_bytes()).map_err(|e| ProtobufError::encode(format!("invalid base64: {e}")))?;
                put_bytes(buf, tag, &bytes);
            }
            Value::Null => put_bytes(buf, tag, b""),
            other => return Err(expected("a base64 string", other)),
        },
        Ty::Bool => match value {
            Value::Bool(b) => put_uint(buf, tag, u64::from(*b)),
            Value::Null => put_uint(buf, tag, 0),
            other => return Err(expected("a boolean", other)),
        },
        Ty::Int32 | Ty::Int64 => {
            let n = match value {
                Value::Null => 0,
                Value::Number(_) => {
                    let n =
                        json_int(value).ok_or_else(|| ProtobufError::encode(format!("{value} is not an integer")))?;
                    if ty == Ty::Int32 && i32::try_from(n).is_err() {
                        return Err(ProtobufError::encode(format!("{value} is not a 32-bit integer")));
                    }
                    n
                }
                other => return Err(expected("an integer", other)),
            };
            put_uint(buf, tag, n as u64);
        }
        Ty::Double => {
            let f = match value {
                Value::Null => 0.0,
                Value::Number(n) => n.as_f64().ok_or_else(|| ProtobufError::encode("not a number"))?,
                other => return Err(expected("a number", other)),
            };
            put_key(buf, tag, FIXED64);
            buf.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Ty::Message(i) => {
            let child = MESSAGES.get(usize::from(i)).ok_or_else(|| ProtobufError::encode("unknown message"))?;
            nested(buf, tag, |b| if value.is_null() { Ok(()) } else { encode_value(child, value, depth + 1, b) })?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Go durations
// ---------------------------------------------------------------------------------------------

/// A duration as Go's `time.Duration.String` writes it: `1h2m3.5s`, `1.5ms`, `0s`.
fn format_go_duration(nanos: i64) -> String {
    /// `value` divided by 10^digits, followed by the remainder's digits without trailing zeros.
    fn with_fraction(out: &mut String, value: u64, digits: u32) {
        let scale = 10u64.pow(digits);
        out.push_str(&(value / scale).to_string());
        let frac = value % scale;
        if frac != 0 {
            let text = format!("{frac:0width$}", width = digits as usize);
            out.push('.');
            out.push_str(text.trim_end_matches('0'));
        }
    }

    if nanos == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    if nanos < 0 {
        out.push('-');
    }
    let u = nanos.unsigned_abs();
    const SECOND: u64 = 1_000_000_000;
    if u < 1_000 {
        out.push_str(&format!("{u}ns"));
    } else if u < 1_000_000 {
        with_fraction(&mut out, u, 3);
        out.push_str("\u{b5}s");
    } else if u < SECOND {
        with_fraction(&mut out, u, 6);
        out.push_str("ms");
    } else {
        let seconds = u / SECOND;
        let (hours, minutes, secs) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
        if hours > 0 {
            out.push_str(&format!("{hours}h{minutes}m"));
        } else if minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        with_fraction(&mut out, secs * SECOND + u % SECOND, 9);
        out.push('s');
    }
    out
}

/// Parses a duration as Go's `time.ParseDuration` does (`1h30m`, `-1.5s`, `300ms`, `0`).
fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after) = rest.split_at(int_len);
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(frac) => frac.split_at(frac.bytes().take_while(u8::is_ascii_digit).count()),
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {text:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {text:?}")),
        };
        let mut whole: u128 = 0;
        for d in int_digits.bytes() {
            whole = whole * 10 + u128::from(d - b'0');
            if whole > LIMIT {
                return Err(invalid());
            }
        }
        // Digits beyond what a u128 fraction can use do not change the nanoseconds.
        let (mut frac, mut denom) = (0u128, 1u128);
        for d in frac_digits.bytes().take(24) {
            frac = frac * 10 + u128::from(d - b'0');
            denom *= 10;
        }
        total += whole * scale + frac * scale / denom;
        if total > LIMIT {
            return Err(invalid());
        }
        rest = after;
    }
    if negative { Ok((-(total as i128)) as i64) } else { i64::try_from(total).map_err(|_| invalid()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // --- wire building helpers ---------------------------------------------------------------

    fn varint(v: u64) -> Vec<u8> {
        let mut b = Vec::new();
        put_varint(&mut b, v);
        b
    }

    fn key(tag: u32, wire_type: u8) -> Vec<u8> {
        varint((u64::from(tag) << 3) | u64::from(wire_type))
    }

    /// A length-delimited field.
    fn blob(tag: u32, data: &[u8]) -> Vec<u8> {
        [key(tag, LEN), varint(data.len() as u64), data.to_vec()].concat()
    }

    fn st(tag: u32, s: &str) -> Vec<u8> {
        blob(tag, s.as_bytes())
    }

    fn int(tag: u32, v: i64) -> Vec<u8> {
        [key(tag, VARINT), varint(v as u64)].concat()
    }

    fn msg(tag: u32, parts: &[Vec<u8>]) -> Vec<u8> {
        blob(tag, &parts.concat())
    }

    fn entry(tag: u32, k: &str, value: Vec<u8>) -> Vec<u8> {
        msg(tag, &[st(1, k), value])
    }

    fn envelope(api_version: &str, kind: &str, raw: &[Vec<u8>]) -> Vec<u8> {
        [MAGIC.to_vec(), msg(1, &[st(1, api_version), st(2, kind)]), msg(2, raw), st(3, ""), st(4, "")].concat()
    }

    fn message(name: &str) -> &'static Message {
        schema::message(name).unwrap_or_else(|| panic!("{name} is not in the schema table"))
    }

    /// ObjectMeta as gogo-generated Go code writes it: every non-pointer field, even when empty.
    fn go_object_meta(name: &str, namespace: &str) -> Vec<u8> {
        msg(
            1,
            &[
                st(1, name),
                st(2, ""),
                st(3, namespace),
                st(4, ""),
                st(5, ""),
                st(6, ""),
                int(7, 0),
                msg(8, &[]), // zero creationTimestamp: an empty message
            ],
        )
    }

    fn meta_json(name: &str, namespace: &str) -> Value {
        // Go writes the empty strings and zero generation; they are not part of the JSON.
        json!({"name": name, "namespace": namespace})
    }

    // --- hand-built bodies -------------------------------------------------------------------

    #[test]
    fn config_map_as_kubectl_sends_it() {
        let body = envelope(
            "v1",
            "ConfigMap",
            &[
                go_object_meta("cm", "default"),
                entry(2, "a", st(2, "1")),
                entry(2, "b", st(2, "two words")),
                entry(3, "bin", blob(2, &[0, 1, 2, 255])),
                int(4, 0),
            ],
        );
        assert_eq!(
            decode_object(&body).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": meta_json("cm", "default"),
                "data": {"a": "1", "b": "two words"},
                "binaryData": {"bin": "AAEC/w=="},
                "immutable": false,
            })
        );
    }

    fn from_hex(hex: &str) -> Vec<u8> {
        let digits: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
    }

    /// Bodies captured from kubectl 1.32 (`create configmap`, `create deployment`, `auth can-i`).
    /// Go writes every non-pointer field, so fields the user never set arrive as "", 0 or false.
    #[test]
    fn bodies_captured_from_kubectl() {
        let config_map = from_hex(
            "6b3873000a0f0a0276311209436f6e6669674d6170122e0a1a0a03636d3112001a0764656661756c7422002a00320038
             00420012060a016112013112080a0162120374776f1a002200",
        );
        // Go writes every non-pointer field; empty `omitempty` ones are not part of the JSON.
        let meta = |name: &str, namespace: &str| {
            let mut m = serde_json::Map::new();
            for (k, v) in [("name", name), ("namespace", namespace)] {
                if !v.is_empty() {
                    m.insert(k.into(), json!(v));
                }
            }
            Value::Object(m)
        };
        assert_eq!(
            decode_object(&config_map).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cm1", "default"),
                   "data": {"a": "1", "b": "two"}})
        );

        let deployment = from_hex(
            "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412c4010a260a0377656212001a0764656661756c74
             22002a003200380042005a0a0a036170701203776562128b010800120c0a0a0a0361707012037765621a710a1c0a0012
             001a0022002a003200380042005a0a0a036170701203776562125112330a056e67696e78120a6e67696e783a312e3237
             2a00320a0a001000185022002a0042006a007200800100880100900100a201001a00320042004a005200580060006800
             8201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200",
        );
        let mut labelled = meta("web", "default");
        labelled["labels"] = json!({"app": "web"});
        let mut template_meta = meta("", "");
        template_meta["labels"] = json!({"app": "web"});
        assert_eq!(
            decode_object(&deployment).unwrap(),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": labelled,
                // Only the values Go's JSON would carry: pointers (replicas) and non-omitempty
                // fields (containerPort) keep their zeros.
                "spec": {
                    "replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": template_meta, "spec": {
                        "containers": [{
                            "name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}], "resources": {},
                        }],
                    }},
                    "strategy": {},
                },
                "status": {},
            })
        );

        let review = from_hex(
            "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a65637441636365
             7373526576696577123d0a100a0012001a0022002a00320038004200121f0a1d0a0764656661756c7412046c6973741a
             0022002a04706f647332003a001a08080012001a0020001a002200",
        );
        assert_eq!(
            decode_object(&review).unwrap(),
            json!({
                "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": meta("", ""),
                "spec": {"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}},
                "status": {"allowed": false},
            })
        );
    }

    #[test]
    fn secret() {
        let body = envelope(
            "v1",
            "Secret",
            &[
                msg(1, &[st(1, "s"), msg(11, &[st(1, "app"), st(2, "web")])]),
                entry(2, "password", blob(2, b"hunter2")),
                entry(2, "empty", vec![]),
                st(3, "Opaque"),
                entry(4, "plain", st(2, "text")),
            ],
        );
        assert_eq!(
            decode_object(&body).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "labels": {"app": "web"}},
                "data": {"password": "aHVudGVyMg==", "empty": ""},
                "type": "Opaque",
                "stringData": {"plain": "text"},
            })
        );
    }

    #[test]
    fn deployment() {
        let container = msg(
            2,
            &[
                st(1, "nginx"),
                st(2, "nginx:1.27"),
                msg(6, &[int(3, 80), st(4, "TCP")]),
                msg(8, &[entry(1, "cpu", msg(2, &[st(1, "100m")])), entry(2, "memory", msg(2, &[st(1, "64Mi")]))]),
                // livenessProbe: the inlined ProbeHandler carries httpGet with an IntOrString port.
                msg(10, &[msg(1, &[msg(2, &[st(1, "/healthz"), msg(2, &[int(1, 1), int(2, 0), st(3, "http")])])])]),
            ],
        );
        let body = envelope(
            "apps/v1",
            "Deployment",
            &[
                msg(1, &[st(1, "web"), st(3, "prod")]),
                msg(
                    2,
                    &[
                        int(1, 0),
                        msg(2, &[entry(1, "app", st(2, "web"))]),
                        msg(3, &[msg(1, &[entry(11, "app", st(2, "web"))]), msg(2, &[container])]),
                        msg(
                            4,
                            &[
                                st(1, "RollingUpdate"),
                                msg(
                                    2,
                                    &[msg(1, &[int(1, 0), int(2, 1), st(3, "")]), msg(2, &[int(1, 1), st(3, "25%")])],
                                ),
                            ],
                        ),
                        int(9, 600),
                    ],
                ),
            ],
        );
        assert_eq!(
            decode_object(&body).unwrap(),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "prod"},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{
                            "name": "nginx", "image": "nginx:1.27",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {"limits": {"cpu": "100m"}, "requests": {"memory": "64Mi"}},
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                        }]},
                    },
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
                    "progressDeadlineSeconds": 600,
                },
            })
        );
    }

    #[test]
    fn eviction_and_delete_options() {
        let body = envelope(
            "policy/v1",
            "Eviction",
            &[
                msg(1, &[st(1, "pod-1"), st(3, "default")]),
                msg(2, &[int(1, 0), msg(2, &[st(1, "uid-1")]), st(5, "All")]),
            ],
        );
        assert_eq!(
            decode_object(&body).unwrap(),
            json!({
                "apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": "pod-1", "namespace": "default"},
                "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "uid-1"}, "dryRun": ["All"]},
            })
        );
        // DeleteOptions travels with the apiVersion of the resource's group.
        let body = envelope("apps/v1", "DeleteOptions", &[int(1, 30), int(3, 0), st(4, "Foreground")]);
        assert_eq!(
            decode_object(&body).unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "DeleteOptions",
                   "gracePeriodSeconds": 30, "orphanDependents": false, "propagationPolicy": "Foreground"})
        );
    }

    #[test]
    fn self_subject_access_review_and_token_request() {
        let body = envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &[
                msg(1, &[]),
                msg(2, &[msg(1, &[st(1, "ns"), st(2, "list"), st(3, ""), st(5, "pods")])]),
                msg(3, &[int(1, 0)]),
            ],
        );
        assert_eq!(
            decode_object(&body).unwrap(),
            json!({
                "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "metadata": {},
                "spec": {"resourceAttributes": {"namespace": "ns", "verb": "list", "resource": "pods"}},
                "status": {"allowed": false},
            })
        );
        let body = envelope(
            "authentication.k8s.io/v1",
            "TokenRequest",
            &[
                msg(1, &[st(1, "default"), st(3, "kube-system")]),
                msg(2, &[st(1, "https://kubernetes.default.svc"), st(1, "api"), int(4, 3600)]),
            ],
        );
        assert_eq!(
            decode_object(&body).unwrap(),
            json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "metadata": {"name": "default", "namespace": "kube-system"},
                "spec": {"audiences": ["https://kubernetes.default.svc", "api"], "expirationSeconds": 3600},
            })
        );
    }

    #[test]
    fn times_durations_and_embedded_json() {
        let meta = message("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        let bytes = [
            msg(8, &[int(1, 1_704_164_705), int(2, 999_000_000)]),
            msg(9, &[int(1, GO_ZERO_TIME_SECONDS)]),
            msg(17, &[st(1, "kubectl"), st(3, "v1"), msg(4, &[int(1, 0)]), msg(7, &[blob(1, br#"{"f:data":{}}"#)])]),
        ]
        .concat();
        assert_eq!(
            decode_message(meta, &bytes).unwrap(),
            json!({
                "creationTimestamp": "2024-01-02T03:05:05Z",
                "managedFields": [{"manager": "kubectl", "time": "1970-01-01T00:00:00Z", "apiVersion": "v1",
                                   "fieldsV1": {"f:data": {}}}],
            })
        );
        let event = message("io.k8s.api.events.v1.Event");
        let bytes = msg(2, &[int(1, 1_704_164_705), int(2, 123_456_789)]);
        assert_eq!(decode_message(event, &bytes).unwrap(), json!({"eventTime": "2024-01-02T03:05:05.123456Z"}));
        // An empty Time is upstream's zero time, null in JSON.
        let running = message("io.k8s.api.core.v1.ContainerStateRunning");
        assert_eq!(decode_message(running, &msg(1, &[])).unwrap(), json!({}));

        let duration = message("io.k8s.apimachinery.pkg.apis.meta.v1.Duration");
        for (nanos, text) in
            [(3_723_000_000_000, "1h2m3s"), (1_500_000_000, "1.5s"), (0, "0s"), (-1_500, "-1.5\u{b5}s")]
        {
            assert_eq!(decode_message(duration, &int(1, nanos)).unwrap(), json!(text));
            assert_eq!(encode_message(duration, &json!(text)).unwrap(), int(1, nanos));
        }

        // A RawExtension holds JSON, or a prefixed protobuf object.
        let revision = message("io.k8s.api.apps.v1.ControllerRevision");
        let bytes = [msg(2, &[blob(1, br#"{"spec":{"replicas":3}}"#)]), int(3, 7)].concat();
        assert_eq!(
            decode_message(revision, &bytes).unwrap(),
            json!({"data": {"spec": {"replicas": 3}}, "revision": 7})
        );
        let inner = envelope("v1", "ConfigMap", &[msg(1, &[st(1, "x")])]);
        let list = message("io.k8s.apimachinery.pkg.apis.meta.v1.List");
        assert_eq!(
            decode_message(list, &msg(2, &[blob(1, &inner)])).unwrap(),
            json!({"items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}]})
        );
    }

    #[test]
    fn inline_string_lists_and_schema_unions() {
        let pod_spec = message("io.k8s.api.core.v1.PodSpec");
        let value = json!({"volumes": [
            {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}},
            {"name": "tmp", "emptyDir": {}},
        ]});
        let bytes = encode_message(pod_spec, &value).unwrap();
        // Volume { name = 1, volumeSource = 2 { configMap = 19 { localObjectReference = 1 { name = 1 } } } }
        let expected = [
            msg(1, &[st(1, "cfg"), msg(2, &[msg(19, &[msg(1, &[st(1, "settings")]), int(3, 420)])])]),
            msg(1, &[st(1, "tmp"), msg(2, &[msg(2, &[])])]),
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(decode_message(pod_spec, &bytes).unwrap(), value);

        let review = message("io.k8s.api.authorization.v1.SubjectAccessReviewSpec");
        let value = json!({"user": "u", "extra": {"scopes": ["a", "b"], "none": []}});
        let bytes = encode_message(review, &value).unwrap();
        assert_eq!(decode_message(review, &bytes).unwrap(), value);

        let props = message("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps");
        let value = json!({
            "type": "object",
            "default": {"a": [1, 2]},
            "enum": ["x", 3],
            "items": [{"type": "string"}, {"type": "integer"}],
            "additionalProperties": false,
            "dependencies": {"a": ["b", "c"], "d": {"required": ["e"]}},
            "properties": {"spec": {"type": "object", "additionalProperties": {"type": "string"}}},
            "maximum": 2.5,
        });
        let bytes = encode_message(props, &value).unwrap();
        assert_eq!(decode_message(props, &bytes).unwrap(), value);
    }

    #[test]
    fn presence_packed_merge_and_unknown_fields() {
        let spec = message("io.k8s.api.apps.v1.DeploymentSpec");
        let template_a = msg(3, &[msg(1, &[st(1, "a")])]);
        let template_b = msg(3, &[msg(1, &[st(3, "ns")])]);
        let bytes = [
            int(1, 3),
            // Unknown fields of every wire type are skipped, groups included.
            int(100, 5),
            [key(101, FIXED64), vec![0; 8]].concat(),
            st(102, "x"),
            [key(103, FIXED32), vec![0; 4]].concat(),
            [key(104, START_GROUP), int(1, 1), key(105, START_GROUP), key(105, END_GROUP), key(104, END_GROUP)]
                .concat(),
            template_a,
            template_b,
            int(1, 0), // the last occurrence of a scalar wins
            int(7, 1),
        ]
        .concat();
        assert_eq!(
            decode_message(spec, &bytes).unwrap(),
            json!({"replicas": 0, "template": {"metadata": {"name": "a", "namespace": "ns"}}, "paused": true})
        );
        // Repeated numbers: packed and unpacked, in any mix.
        let ctx = message("io.k8s.api.core.v1.PodSecurityContext");
        let groups = ctx.field("supplementalGroups").unwrap().tag;
        let bytes = [blob(groups, &[varint(1), varint(2)].concat()), int(groups, -3)].concat();
        assert_eq!(decode_message(ctx, &bytes).unwrap(), json!({"supplementalGroups": [1, 2, -3]}));
        assert_eq!(encode_message(ctx, &json!({"supplementalGroups": [1, 2, -3]})).unwrap(), {
            [int(groups, 1), int(groups, 2), int(groups, -3)].concat()
        });
        // Empty lists and maps are omitted; null is absent.
        let bytes = encode_message(spec, &json!({"replicas": null, "selector": {"matchLabels": {}}})).unwrap();
        assert_eq!(bytes, msg(2, &[]));
        assert_eq!(decode_message(spec, &bytes).unwrap(), json!({"selector": {}}));
    }

    #[test]
    fn encoded_objects_use_the_envelope_and_tag_order() {
        let obj = json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"b": "2", "a": "1"},
                         "immutable": true, "metadata": {"name": "cm"}, "unknownField": 1});
        let body = encode_object(&obj).unwrap();
        let expected = envelope(
            "v1",
            "ConfigMap",
            &[msg(1, &[st(1, "cm")]), entry(2, "a", st(2, "1")), entry(2, "b", st(2, "2")), int(4, 1)],
        );
        assert_eq!(body, expected);
        let mut back = obj.clone();
        back.as_object_mut().unwrap().remove("unknownField");
        assert_eq!(decode_object(&body).unwrap(), back);

        // Long messages get multi-byte lengths.
        let long = "x".repeat(300);
        let body =
            encode_object(&json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": long}})).unwrap();
        assert_eq!(decode_object(&body).unwrap()["metadata"]["name"], json!(long));

        let event = encode_watch_event("ADDED", &obj).unwrap();
        let watch = message("io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent");
        assert_eq!(decode_message(watch, &event).unwrap(), json!({"type": "ADDED", "object": back}));
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        assert_eq!(decode_object(b"{}"), Err(ProtobufError::MissingMagic));
        assert_eq!(decode_object(b"k8s"), Err(ProtobufError::MissingMagic));
        let body = [MAGIC.to_vec(), msg(1, &[st(1, "v1"), st(2, "ConfigMap")]), st(3, "gzip")].concat();
        assert_eq!(decode_object(&body), Err(ProtobufError::ContentEncoding("gzip".into())));
        let err = decode_object(&envelope("example.com/v1", "Widget", &[])).unwrap_err();
        assert_eq!(err.to_string(), r#"no protobuf message is known for apiVersion "example.com/v1", kind "Widget""#);
        assert_eq!(decode_object(&envelope("v1", "", &[])), Err(ProtobufError::MissingKind));

        let err = decode_object(&envelope("v1", "ConfigMap", &[msg(1, &[blob(1, &[0xff, 0xfe])])])).unwrap_err();
        assert_eq!(err.to_string(), "metadata.name: string is not valid UTF-8");
        let err = decode_object(&envelope("apps/v1", "Deployment", &[msg(2, &[st(1, "three")])])).unwrap_err();
        assert_eq!(err.to_string(), "spec.replicas: expected a varint value, found length-delimited");
        let pod = [msg(2, &[msg(2, &[st(1, "ok")]), msg(2, &[int(1, 5)])])];
        let err = decode_object(&envelope("v1", "Pod", &pod)).unwrap_err();
        assert_eq!(err.to_string(), "spec.containers[1].name: expected a length-delimited value, found varint");
        let err = decode_object(&envelope("v1", "ConfigMap", &[entry(2, "k", blob(2, &[0xc3]))])).unwrap_err();
        assert_eq!(err.to_string(), "data: string is not valid UTF-8");
        assert!(decode_object(&[MAGIC, &[0x0a, 0x05, 0x0a]].concat()).unwrap_err().to_string().contains("envelope"));

        // Every truncation of a valid body, and many corruptions, fail cleanly.
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "b"}},
                         "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
                                  "strategy": {"rollingUpdate": {"maxSurge": "25%"}}}});
        let body = encode_object(&obj).unwrap();
        for len in 0..body.len() {
            let _ = decode_object(&body[..len]);
        }
        let mut rng = Rng(7);
        for _ in 0..3000 {
            let mut corrupt = body.clone();
            for _ in 0..=rng.below(3) {
                let i = rng.below(corrupt.len() as u64) as usize;
                corrupt[i] = rng.next() as u8;
            }
            let _ = decode_object(&corrupt);
        }
        // Overlong varints and lengths beyond the buffer.
        let meta = message("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        assert!(decode_message(meta, &[0x38, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(decode_message(meta, &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a']).is_err());
        assert!(decode_message(meta, &[0x0b]).is_err()); // a group that never ends
        assert!(decode_message(meta, &[0x0c]).is_err()); // an end of group without a start
        assert!(decode_message(meta, &[0x00]).is_err()); // field number 0

        // Deep nesting is refused in both directions.
        let props = message("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps");
        let not = props.field("not").unwrap().tag;
        let mut deep = Vec::new();
        for _ in 0..150 {
            deep = blob(not, &deep);
        }
        assert!(decode_message(props, &deep).unwrap_err().to_string().contains("deeper"));
        let mut deep = json!({});
        for _ in 0..150 {
            deep = json!({"not": deep});
        }
        assert!(encode_message(props, &deep).unwrap_err().to_string().contains("deeper"));

        // JSON the message cannot hold.
        let spec = message("io.k8s.api.apps.v1.DeploymentSpec");
        let err = encode_message(spec, &json!({"replicas": 1.5})).unwrap_err();
        assert_eq!(err.to_string(), "replicas: 1.5 is not an integer");
        let err = encode_message(spec, &json!({"replicas": 1u64 << 40})).unwrap_err();
        assert_eq!(err.to_string(), "replicas: 1099511627776 is not a 32-bit integer");
        let err = encode_message(spec, &json!({"template": {"spec": {"containers": [{"name": 1}]}}})).unwrap_err();
        assert_eq!(err.to_string(), "template.spec.containers[0].name: expected a string, found a number");
        let err = encode_message(spec, &json!({"selector": {"matchLabels": {"a": ["b"]}}})).unwrap_err();
        assert_eq!(err.to_string(), "selector.matchLabels[a]: expected a string, found a list");
        let meta_err = encode_message(meta, &json!({"creationTimestamp": "yesterday"})).unwrap_err();
        assert!(meta_err.to_string().starts_with("creationTimestamp: invalid RFC 3339 time"));
        assert_eq!(encode_object(&json!({"apiVersion": "v1"})), Err(ProtobufError::MissingKind));
    }

    #[test]
    fn nesting_up_to_the_limit_fits_a_small_stack() {
        // Server threads have 2 MiB stacks; the deepest accepted message fits a quarter of that,
        // even in a debug build.
        let run = std::thread::Builder::new().stack_size(1 << 19).spawn(|| {
            let props = message("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps");
            let not = props.field("not").unwrap().tag;
            let mut wire = st(5, "object");
            let mut value = json!({"type": "object"});
            for _ in 0..MAX_DEPTH {
                wire = blob(not, &wire);
                value = json!({"not": value});
            }
            assert_eq!(decode_message(props, &wire).unwrap(), value);
            assert_eq!(encode_message(props, &value).unwrap(), wire);
            let deeper = blob(not, &wire);
            assert!(decode_message(props, &deeper).is_err());
            assert!(encode_message(props, &json!({"not": value})).is_err());
        });
        run.unwrap().join().unwrap();
    }

    #[test]
    fn go_durations() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1\u{b5}s"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (240_000_000_000, "4m0s"),
            (4_500_000_000_000, "1h15m0s"),
            (-1, "-1ns"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(format_go_duration(nanos), text);
            assert_eq!(parse_go_duration(text), Ok(nanos), "{text}");
        }
        for (text, nanos) in [("1h30m", 5_400_000_000_000), ("+.5s", 500_000_000), ("1.s", 1_000_000_000), ("0", 0)] {
            assert_eq!(parse_go_duration(text), Ok(nanos), "{text}");
        }
        assert_eq!(parse_go_duration("3\u{3bc}s"), Ok(3_000));
        assert_eq!(parse_go_duration("3us"), Ok(3_000));
        for bad in ["", "-", "1", "s", ".s", "1x", "9223372036854775808ns", "2562048h", "1.5.5s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_go_duration("-9223372036854775808ns"), Ok(i64::MIN));
    }

    // --- oracle round trips ------------------------------------------------------------------

    /// xorshift64*: deterministic and dependency-free.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }
    }

    /// Builds a JSON value for every field of a message, down to `max_depth` levels.
    struct Generator {
        rng: Rng,
        max_depth: usize,
    }

    impl Generator {
        fn new(seed: u64, max_depth: usize) -> Self {
            Generator { rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1), max_depth }
        }

        /// `None` when the message cannot be generated within the depth limit.
        fn message(&mut self, msg: &'static Message, depth: usize) -> Option<Value> {
            let leaf = !matches!(
                form(msg),
                Form::Object | Form::SchemaOrArray | Form::SchemaOrBool | Form::SchemaOrStringArray
            );
            if depth > self.max_depth && !leaf {
                return None;
            }
            let deeper = depth < self.max_depth;
            Some(match form(msg) {
                Form::Object => Value::Object(self.fields(msg, depth)),
                Form::Time => json!(self.time(false)),
                Form::MicroTime => json!(self.time(true)),
                Form::Duration => {
                    let nanos = match self.rng.below(3) {
                        0 => self.rng.next() as i64,
                        1 => self.rng.below(10_000_000_000) as i64,
                        _ => -(self.rng.below(1_000_000) as i64),
                    };
                    json!(format_go_duration(nanos))
                }
                Form::Quantity => json!(self.rng.pick(&["1", "100m", "1.5Gi", "0", "12e3", "500M"])),
                Form::IntOrString => match self.rng.below(2) {
                    0 => json!(self.rng.next() as i32),
                    _ => json!(self.string(false)),
                },
                Form::Json { .. } => {
                    json!({"k": self.rng.below(100), "list": [true, null, self.string(false)], "nested": {"x": 1.5}})
                }
                Form::Strings => Value::Array((0..=self.rng.below(2)).map(|_| json!(self.string(true))).collect()),
                Form::SchemaOrArray => {
                    let schema = field_by_tag(msg, 1).unwrap().message().unwrap();
                    if self.rng.below(2) == 0 {
                        self.message(schema, depth + 1)?
                    } else {
                        let items: Vec<Value> =
                            (0..=self.rng.below(2)).filter_map(|_| self.message(schema, depth + 1)).collect();
                        if items.is_empty() {
                            return None;
                        }
                        Value::Array(items)
                    }
                }
                Form::SchemaOrBool => {
                    let schema = field_by_tag(msg, 2).unwrap().message().unwrap();
                    match self.rng.below(2) {
                        0 if deeper => self.message(schema, depth + 1)?,
                        _ => json!(self.rng.below(2) == 0),
                    }
                }
                Form::SchemaOrStringArray => {
                    let schema = field_by_tag(msg, 1).unwrap().message().unwrap();
                    match self.rng.below(2) {
                        0 if deeper => self.message(schema, depth + 1)?,
                        _ => json!([self.string(true), self.string(true)]),
                    }
                }
            })
        }

        fn fields(&mut self, msg: &'static Message, depth: usize) -> Map<String, Value> {
            let mut out = Map::new();
            let mut inline = Vec::new();
            for field in msg.fields {
                if let Some(child) = inlined(field) {
                    if depth < self.max_depth {
                        inline.push(self.fields(child, depth + 1));
                    }
                    continue;
                }
                if let Some(v) = self.field(field, depth) {
                    out.insert(field.json.to_string(), v);
                }
            }
            for fields in inline {
                for (k, v) in fields {
                    out.entry(k).or_insert(v);
                }
            }
            out
        }

        /// A field's value; lists and maps get one or two items.
        fn field(&mut self, field: &'static Field, depth: usize) -> Option<Value> {
            match field.shape {
                // Zero values of non-pointer `omitempty` fields are left out by the decoder.
                Shape::Single => self.value(field.value, depth, field.omit_empty && !field.pointer),
                Shape::Repeated => {
                    let items: Vec<Value> =
                        (0..=self.rng.below(2)).filter_map(|_| self.value(field.value, depth, false)).collect();
                    (!items.is_empty()).then_some(Value::Array(items))
                }
                Shape::Map => {
                    let mut entries = Map::new();
                    for i in 0..=self.rng.below(2) {
                        if let Some(v) = self.value(field.value, depth, true) {
                            entries.insert(format!("key-{i}.{}", self.string(true)), v);
                        }
                    }
                    (!entries.is_empty()).then_some(Value::Object(entries))
                }
            }
        }

        /// `in_map`: avoid zero values (prost leaves them out of map entries; the decoder leaves
        /// them out for non-pointer `omitempty` fields).
        fn value(&mut self, ty: Ty, depth: usize, in_map: bool) -> Option<Value> {
            let rng = &mut self.rng;
            Some(match ty {
                Ty::String => json!(self.string(in_map)),
                Ty::Bool => json!(in_map || rng.below(2) == 0),
                Ty::Int32 => json!(match rng.below(4) {
                    0 if !in_map => 0,
                    1 => i32::MIN,
                    _ => (rng.next() as i32) | 1,
                }),
                Ty::Int64 => json!(match rng.below(4) {
                    0 if !in_map => 0,
                    1 => i64::MAX,
                    _ => (rng.next() as i64) | 1,
                }),
                Ty::Double => json!((rng.next() as i32) as f64 / 64.0 + 0.5),
                Ty::Bytes => {
                    let len = rng.below(6) + u64::from(in_map);
                    let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    json!(BASE64.encode(data))
                }
                Ty::Message(i) => return self.message(&MESSAGES[usize::from(i)], depth + 1),
            })
        }

        fn string(&mut self, non_empty: bool) -> String {
            match self.rng.below(5) {
                0 if !non_empty => String::new(),
                1 => "ünïcødé ✓ \"quoted\" \\ \u{1F600}".to_string(),
                _ => {
                    let len = 1 + self.rng.below(12);
                    (0..len).map(|_| (b'a' + self.rng.below(26) as u8) as char).collect()
                }
            }
        }

        fn time(&mut self, micros: bool) -> String {
            let seconds = self.rng.below(253_402_300_800) as i64;
            format_time(seconds, micros.then(|| self.rng.below(1_000_000) as u32)).unwrap()
        }
    }

    #[test]
    fn every_message_round_trips() {
        let (mut values, mut objects) = (0, 0);
        for (i, msg) in MESSAGES.iter().enumerate() {
            for seed in 0..2 {
                let mut generator = Generator::new(((i as u64) << 8) | seed, 3);
                let value = generator.message(msg, 0).unwrap_or_else(|| panic!("{}: nothing generated", msg.name));
                values += 1;
                let bytes = encode_message(msg, &value).unwrap_or_else(|e| panic!("{}: {e}\n{value}", msg.name));
                let back = decode_message(msg, &bytes).unwrap_or_else(|e| panic!("{}: {e}", msg.name));
                assert_eq!(back, value, "{}", msg.name);

                // Top-level kinds also round-trip as prefixed bodies.
                let is_kind = !msg.group_version.is_empty()
                    && form(msg) == Form::Object
                    && schema::for_kind(msg.group_version, short_name(msg)).is_some_and(|m| std::ptr::eq(m, msg));
                if let (true, Value::Object(mut obj)) = (is_kind && seed == 0, value) {
                    obj.insert("apiVersion".into(), json!(msg.group_version));
                    obj.insert("kind".into(), json!(short_name(msg)));
                    let obj = Value::Object(obj);
                    let body = encode_object(&obj).unwrap_or_else(|e| panic!("{}: {e}", msg.name));
                    assert_eq!(decode_object(&body).unwrap(), obj, "{}", msg.name);
                    objects += 1;
                }
            }
        }
        assert_eq!(values, 2 * MESSAGES.len());
        assert!(objects > 400, "only {objects} kinds were checked as objects");
    }

    /// Encodes generated objects of `name`, decodes them with prost's generated type `T`,
    /// re-encodes them with prost, and checks that both encodings agree.
    fn agree_with_prost<T: prost::Message + Default>(name: &str) {
        let msg = message(name);
        for seed in 0..3 {
            let mut generator = Generator::new(seed * 7919 + name.len() as u64, 5);
            let value = generator.message(msg, 0).unwrap();
            let mine = encode_message(msg, &value).unwrap();
            let parsed = T::decode(mine.as_slice()).unwrap_or_else(|e| panic!("prost rejects {name}: {e}"));
            let theirs = parsed.encode_to_vec();
            assert_eq!(decode_message(msg, &theirs).unwrap(), value, "{name}, seed {seed}");
            assert!(mine == theirs, "{name}, seed {seed}: prost writes different bytes");
        }
    }

    #[test]
    fn wire_format_agrees_with_prost() {
        use k8s_pb::api;
        use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;

        agree_with_prost::<api::core::v1::Pod>("io.k8s.api.core.v1.Pod");
        agree_with_prost::<api::apps::v1::Deployment>("io.k8s.api.apps.v1.Deployment");
        agree_with_prost::<api::core::v1::Service>("io.k8s.api.core.v1.Service");
        agree_with_prost::<api::core::v1::ConfigMap>("io.k8s.api.core.v1.ConfigMap");
        agree_with_prost::<api::core::v1::Secret>("io.k8s.api.core.v1.Secret");
        agree_with_prost::<api::core::v1::Node>("io.k8s.api.core.v1.Node");
        agree_with_prost::<api::core::v1::Namespace>("io.k8s.api.core.v1.Namespace");
        agree_with_prost::<api::core::v1::Event>("io.k8s.api.core.v1.Event");
        agree_with_prost::<api::core::v1::PersistentVolume>("io.k8s.api.core.v1.PersistentVolume");
        agree_with_prost::<api::events::v1::Event>("io.k8s.api.events.v1.Event");
        agree_with_prost::<api::batch::v1::Job>("io.k8s.api.batch.v1.Job");
        agree_with_prost::<api::batch::v1::CronJob>("io.k8s.api.batch.v1.CronJob");
        agree_with_prost::<api::apps::v1::StatefulSet>("io.k8s.api.apps.v1.StatefulSet");
        agree_with_prost::<api::apps::v1::DaemonSet>("io.k8s.api.apps.v1.DaemonSet");
        agree_with_prost::<api::apps::v1::ControllerRevision>("io.k8s.api.apps.v1.ControllerRevision");
        agree_with_prost::<api::networking::v1::Ingress>("io.k8s.api.networking.v1.Ingress");
        agree_with_prost::<api::rbac::v1::Role>("io.k8s.api.rbac.v1.Role");
        agree_with_prost::<api::rbac::v1::RoleBinding>("io.k8s.api.rbac.v1.RoleBinding");
        agree_with_prost::<api::coordination::v1::Lease>("io.k8s.api.coordination.v1.Lease");
        agree_with_prost::<api::policy::v1::PodDisruptionBudget>("io.k8s.api.policy.v1.PodDisruptionBudget");
        agree_with_prost::<api::policy::v1::Eviction>("io.k8s.api.policy.v1.Eviction");
        agree_with_prost::<api::autoscaling::v2::HorizontalPodAutoscaler>(
            "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
        );
        agree_with_prost::<api::autoscaling::v1::Scale>("io.k8s.api.autoscaling.v1.Scale");
        agree_with_prost::<api::authentication::v1::TokenRequest>("io.k8s.api.authentication.v1.TokenRequest");
        agree_with_prost::<api::authorization::v1::SelfSubjectAccessReview>(
            "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
        );
        agree_with_prost::<api::authorization::v1::SubjectAccessReview>(
            "io.k8s.api.authorization.v1.SubjectAccessReview",
        );
        agree_with_prost::<api::certificates::v1::CertificateSigningRequest>(
            "io.k8s.api.certificates.v1.CertificateSigningRequest",
        );
        agree_with_prost::<api::admissionregistration::v1::ValidatingWebhookConfiguration>(
            "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration",
        );
        agree_with_prost::<api::resource::v1::ResourceClaim>("io.k8s.api.resource.v1.ResourceClaim");
        agree_with_prost::<apiextensions::CustomResourceDefinition>(
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
        );
        agree_with_prost::<meta::DeleteOptions>("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions");
        agree_with_prost::<meta::APIResourceList>("io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList");
        agree_with_prost::<meta::Status>("io.k8s.apimachinery.pkg.apis.meta.v1.Status");
    }

    #[test]
    fn schema_layouts_the_codec_relies_on() {
        let layout =
            |name: &str| -> Vec<(u32, &'static str)> { message(name).fields.iter().map(|f| (f.tag, f.json)).collect() };
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.";
        assert_eq!(layout(&format!("{meta}Time")), [(1, "seconds"), (2, "nanos")]);
        assert_eq!(layout(&format!("{meta}MicroTime")), [(1, "seconds"), (2, "nanos")]);
        assert_eq!(layout(&format!("{meta}Duration")), [(1, "duration")]);
        assert_eq!(layout(&format!("{meta}FieldsV1")), [(1, "raw")]);
        assert_eq!(layout("io.k8s.apimachinery.pkg.runtime.RawExtension"), [(1, "raw")]);
        assert_eq!(layout("io.k8s.apimachinery.pkg.api.resource.Quantity"), [(1, "string")]);
        assert_eq!(
            layout("io.k8s.apimachinery.pkg.util.intstr.IntOrString"),
            [(1, "type"), (2, "intVal"), (3, "strVal")]
        );
        assert_eq!(layout("io.k8s.apimachinery.pkg.runtime.Unknown").len(), 4);
        // The inlined fields the codec relies on are marked in the table.
        let volume = crate::schema::message("io.k8s.api.core.v1.Volume").unwrap();
        assert!(volume.fields.iter().any(|f| inlined(f).is_some_and(|c| short_name(c) == "VolumeSource")));
        let forms = |f: Form| MESSAGES.iter().filter(|m| form(m) == f).count();
        assert!(forms(Form::Strings) >= 5 && forms(Form::SchemaOrBool) >= 1);
    }
}
