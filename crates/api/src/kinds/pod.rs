//! Pod specs: the defaults and checks shared by every kind that carries a pod template
//! (Pod, PodTemplate, ReplicationController, Deployment, ReplicaSet, StatefulSet, DaemonSet,
//! Job, CronJob), plus the small format checks (DNS labels, qualified names, label values,
//! quantities, selectors) the other kind files reuse.
//!
//! Defaulting follows upstream's `SetDefaults_PodSpec`, `SetDefaults_Container`,
//! `SetDefaults_Volume`, `SetDefaults_Probe` and friends; [`default_pod`] adds the rules upstream
//! applies to Pod objects only (requests copied from limits, `enableServiceLinks`, host ports
//! under `hostNetwork`). Validation follows `ValidatePodSpec` / `ValidatePodTemplateSpec` and
//! `ValidatePodUpdate`, with the same field paths and messages.

use crate::validation::{FieldError, FieldErrors, FieldPath, names};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, EnvVar, HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler,
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, Pod, PodAffinityTerm, PodSpec,
    PodStatus, PodTemplateSpec, Probe, ResourceFieldSelector, ResourceRequirements, SecurityContext, Toleration,
    Volume, VolumeDevice, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// The text of an optional string, empty when unset (upstream treats both alike).
pub(super) fn st(o: &Option<String>) -> &str {
    o.as_deref().unwrap_or("")
}

/// Sets an optional string to `v` when it is unset or empty.
pub(super) fn set_if_empty(o: &mut Option<String>, v: &str) {
    if st(o).is_empty() {
        *o = Some(v.to_string());
    }
}

/// The JSON form of a value, for error messages and deep comparisons.
pub(super) fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// One `Invalid value` error per message, all on the same path and value.
pub(super) fn invalid_each(path: &FieldPath, value: impl Into<Value>, msgs: Vec<String>) -> FieldErrors {
    let value = value.into();
    msgs.iter().map(|m| FieldError::invalid(path, value.clone(), m)).collect()
}

/// Upstream's `IsNegativeErrorMsg`.
pub(super) const NEGATIVE_MSG: &str = "must be greater than or equal to 0";

/// `ValidateNonnegativeField`.
pub(super) fn nonnegative(value: i64, path: &FieldPath) -> FieldErrors {
    if value < 0 { vec![FieldError::invalid(path, value, NEGATIVE_MSG)] } else { Vec::new() }
}

/// `ValidateImmutableField`: `Invalid value: <new>: field is immutable` when the JSON forms differ.
pub(super) fn immutable<T: serde::Serialize>(new: &T, old: &T, path: &FieldPath) -> FieldErrors {
    let (n, o) = (to_value(new), to_value(old));
    if n == o { Vec::new() } else { vec![FieldError::immutable(path, n)] }
}

/// Upstream's `InclusiveRangeError`.
pub(super) fn range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// Upstream's `MaxLenError`.
pub(super) fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Upstream's `RegexError`, including its exact punctuation.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push('\'');
        s.push_str(e);
        s.push_str("', ");
    }
    s.push_str("regex used for validation is '");
    s.push_str(fmt);
    s.push_str("')");
    s
}

// ---------------------------------------------------------------------------------------------
// Name and value formats
// ---------------------------------------------------------------------------------------------

/// `IsDNS1123Label`: the problems with `v` as an RFC 1123 label (empty when valid).
pub(super) fn dns1123_label(v: &str) -> Vec<String> {
    names::is_dns1123_label(v)
}

/// `IsDNS1123Subdomain`.
pub(super) fn dns1123_subdomain(v: &str) -> Vec<String> {
    names::is_dns1123_subdomain(v)
}

/// `ValidateDNS1123Label` as field errors.
pub(super) fn validate_dns_label(v: &str, path: &FieldPath) -> FieldErrors {
    invalid_each(path, v, dns1123_label(v))
}

/// `ValidateDNS1123Subdomain` as field errors.
pub(super) fn validate_dns_subdomain(v: &str, path: &FieldPath) -> FieldErrors {
    invalid_each(path, v, dns1123_subdomain(v))
}

/// `IsQualifiedName`: an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters.
pub(super) fn qualified_name(v: &str) -> Vec<String> {
    names::is_qualified_name(v)
}

/// `ValidateQualifiedName` as field errors.
pub(super) fn validate_qualified_name(v: &str, path: &FieldPath) -> FieldErrors {
    invalid_each(path, v, qualified_name(v))
}

/// `IsValidLabelValue`.
pub(super) fn label_value(v: &str) -> Vec<String> {
    names::is_valid_label_value(v)
}

/// `ValidateLabels`: every key a qualified name, every value a label value. Errors are
/// reported on `path` itself, as upstream does.
pub(super) fn validate_labels(labels: Option<&BTreeMap<String, String>>, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        errs.extend(validate_qualified_name(k, path));
        errs.extend(invalid_each(path, v.as_str(), label_value(v)));
    }
    errs
}

/// `ValidateAnnotations`: keys are qualified names (checked lower-cased) and the total size is
/// at most 256 KiB.
pub(super) fn validate_annotations(annotations: Option<&BTreeMap<String, String>>, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations.into_iter().flatten() {
        errs.extend(invalid_each(path, k.as_str(), qualified_name(&k.to_lowercase())));
        total += k.len() + v.len();
    }
    if total > 256 * 1024 {
        errs.push(FieldError::too_long(path, 256 * 1024));
    }
    errs
}

/// `IsConfigMapKey`: the message in the brief, `must consist of alphanumeric characters, '-',
/// '_' or '.'`, comes from here.
pub(super) fn config_map_key(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 253 {
        errs.push(max_len_error(253));
    }
    let ok = !v.is_empty() && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.');
    if !ok {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if v == "." {
        errs.push("must not be '.'".to_string());
    } else if v == ".." {
        errs.push("must not be '..'".to_string());
    } else if v.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// `IsValidPortName` (IANA service names).
pub(super) fn port_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 15 {
        errs.push(max_len_error(15));
    }
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !v.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if v.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if v.starts_with('-') || v.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// `IsValidPortNum`: 1 to 65535.
pub(super) fn port_num(v: i64) -> Vec<String> {
    if (1..=65535).contains(&v) { Vec::new() } else { vec![range_error(1, 65535)] }
}

/// `ValidatePortNumOrName`.
pub(super) fn validate_port_num_or_name(port: &IntOrString, path: &FieldPath) -> FieldErrors {
    match port {
        IntOrString::Int(n) => invalid_each(path, *n, port_num(i64::from(*n))),
        IntOrString::String(s) => invalid_each(path, s.as_str(), port_name(s)),
    }
}

/// `IsRelaxedEnvVarName`, the rule in force since relaxed environment variable names became
/// the default: any printable ASCII except `=`.
fn relaxed_env_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.is_empty() {
        errs.push("environment variable name must be non-empty".to_string());
    }
    if v.chars().any(|c| !c.is_ascii() || c.is_ascii_control() || c == '=') {
        errs.push(
            "a valid environment variable name must consist only of printable ASCII characters other than '='"
                .to_string(),
        );
    }
    errs
}

/// `IsValidPercent`.
pub(super) fn percent(v: &str) -> Vec<String> {
    let ok = v.len() > 1 && v.ends_with('%') && v[..v.len() - 1].bytes().all(|c| c.is_ascii_digit());
    if ok {
        Vec::new()
    } else {
        vec![regex_error(
            "a valid percent string must be a numeric string followed by an ending '%'",
            "[0-9]+%",
            &["1%", "93%"],
        )]
    }
}

fn http_header_name(v: &str) -> Vec<String> {
    if !v.is_empty() && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        Vec::new()
    } else {
        vec![regex_error(
            "a valid HTTP header must consist of alphanumeric characters or '-'",
            "[-A-Za-z0-9]+",
            &["X-Header-Name"],
        )]
    }
}

/// Parses an IP address the way upstream's lenient parser does (IPv4 parts may carry leading
/// zeros).
pub(super) fn parse_ip(v: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = v.parse::<std::net::IpAddr>() {
        return Some(ip);
    }
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        octets[i] = p.parse().ok()?;
    }
    Some(std::net::IpAddr::from(octets))
}

/// `IsValidIP` as field errors.
pub(super) fn validate_ip(v: &str, path: &FieldPath) -> FieldErrors {
    if parse_ip(v).is_some() {
        Vec::new()
    } else {
        vec![FieldError::invalid(path, v, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    }
}

/// Whether `v` is a CIDR such as `10.0.0.0/8`; returns whether it is IPv6.
pub(super) fn parse_cidr(v: &str) -> Option<bool> {
    let (ip, bits) = v.split_once('/')?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    if bits.is_empty() || !bits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let bits: u32 = bits.parse().ok()?;
    let max = if ip.is_ipv6() { 128 } else { 32 };
    (bits <= max).then_some(ip.is_ipv6())
}

/// `IsValidCIDR` as field errors.
pub(super) fn validate_cidr(v: &str, path: &FieldPath) -> FieldErrors {
    if parse_cidr(v).is_some() {
        Vec::new()
    } else {
        vec![FieldError::invalid(path, v, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]
    }
}

// ---------------------------------------------------------------------------------------------
// Quantities
// ---------------------------------------------------------------------------------------------

/// Parses a resource quantity (`500m`, `1Gi`, `2e3`, `0.5`) into billionths of a unit, rounded
/// up and saturated at the `i128` range, which is plenty to compare requests with limits.
/// Returns `None` when the text is not a quantity.
pub(super) fn parse_quantity(s: &str) -> Option<i128> {
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_len = rest.bytes().take_while(|c| c.is_ascii_digit() || *c == b'.').count();
    let (num, suffix) = rest.split_at(num_len);
    if num.bytes().filter(|c| *c == b'.').count() > 1 || !num.bytes().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let (base2, exp): (bool, i32) = match suffix {
        "" => (false, 0),
        "n" => (false, -9),
        "u" => (false, -6),
        "m" => (false, -3),
        "k" => (false, 3),
        "M" => (false, 6),
        "G" => (false, 9),
        "T" => (false, 12),
        "P" => (false, 15),
        "E" => (false, 18),
        "Ki" => (true, 10),
        "Mi" => (true, 20),
        "Gi" => (true, 30),
        "Ti" => (true, 40),
        "Pi" => (true, 50),
        "Ei" => (true, 60),
        other if other.len() > 1 && (other.starts_with('e') || other.starts_with('E')) => {
            let e = &other[1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (false, e.parse().ok()?)
        }
        _ => return None,
    };
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let mut digits: String = format!("{int_part}{frac_part}");
    let mut frac_len = frac_part.len() as i32;
    // Keep the mantissa within range; dropped digits only affect far-below-nano precision.
    while digits.len() > 30 && frac_len > 0 {
        digits.pop();
        frac_len -= 1;
    }
    let saturated = if neg { i128::MIN } else { i128::MAX };
    let mut v: i128 = match digits.trim_start_matches('0') {
        "" => 0,
        d if d.len() > 36 => return Some(saturated),
        d => d.parse().ok()?,
    };
    if base2 {
        v = match v.checked_mul(1i128 << exp) {
            Some(x) => x,
            None => return Some(saturated),
        };
    }
    let e10 = if base2 { 9 - frac_len } else { exp + 9 - frac_len };
    if e10 >= 0 {
        v = match 10i128.checked_pow(e10 as u32).and_then(|p| v.checked_mul(p)) {
            Some(x) => x,
            None => return Some(saturated),
        };
    } else {
        match 10i128.checked_pow((-e10) as u32) {
            Some(d) => v = (v + d - 1) / d,
            None => v = i128::from(v != 0),
        }
    }
    Some(if neg { -v } else { v })
}

const NANO: i128 = 1_000_000_000;

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// `ValidateLabelSelector` (strict label values).
pub(super) fn validate_label_selector(sel: Option<&LabelSelector>, path: &FieldPath) -> FieldErrors {
    validate_label_selector_opts(sel, path, false)
}

fn validate_label_selector_opts(
    sel: Option<&LabelSelector>,
    path: &FieldPath,
    allow_invalid_values: bool,
) -> FieldErrors {
    let Some(sel) = sel else { return Vec::new() };
    let mut errs = validate_labels(sel.match_labels.as_ref(), &path.child("matchLabels"));
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(&p.child("operator"), other, "not a valid selector operator")),
        }
        errs.extend(validate_qualified_name(&req.key, &p.child("key")));
        if !allow_invalid_values {
            for (j, v) in values.iter().enumerate() {
                errs.extend(invalid_each(&p.child("values").index(j), v.as_str(), label_value(v)));
            }
        }
    }
    errs
}

/// Whether the selector has no requirement at all (upstream: selects everything).
pub(super) fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// Whether `labels` satisfy the selector (`LabelSelectorAsSelector(sel).Matches(labels)`).
pub(super) fn selector_matches(sel: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    for (k, v) in sel.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for req in sel.match_expressions.iter().flatten() {
        let values = req.values.as_deref().unwrap_or_default();
        let have = labels.get(&req.key);
        let ok = match req.operator.as_str() {
            "In" => have.is_some_and(|h| values.contains(h)),
            "NotIn" => have.is_none_or(|h| !values.contains(h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `labels` carry every pair of a map selector (ReplicationController, Service).
pub(super) fn selector_matches_map(sel: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    sel.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

// ---------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------

/// Mode 0644, the default for secret, config map, downward API and projected volumes.
const DEFAULT_FILE_MODE: i32 = 0o644;

fn zero_to(o: &mut Option<i32>, v: i32) {
    if o.unwrap_or(0) == 0 {
        *o = Some(v);
    }
}

/// The tag of an image reference, as upstream's `ParseImageName` reports it: `latest` when
/// neither a tag nor a digest is given, empty when the reference does not parse.
fn image_tag(image: &str) -> String {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return String::new();
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    // The registry host may hold upper case; the repository path may not.
    let path = match repo.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => repo,
    };
    if repo.is_empty() || path.chars().any(|c| c.is_ascii_uppercase()) {
        return String::new();
    }
    match (tag, digest) {
        (Some(t), _) if !t.is_empty() => t.to_string(),
        (Some(_), _) => String::new(),
        (None, Some(_)) => String::new(),
        (None, None) => "latest".to_string(),
    }
}

fn default_http_get(h: &mut HTTPGetAction) {
    set_if_empty(&mut h.path, "/");
    set_if_empty(&mut h.scheme, "HTTP");
}

fn default_probe(p: &mut Probe) {
    zero_to(&mut p.timeout_seconds, 1);
    zero_to(&mut p.period_seconds, 10);
    zero_to(&mut p.success_threshold, 1);
    zero_to(&mut p.failure_threshold, 3);
    if let Some(h) = &mut p.http_get {
        default_http_get(h);
    }
    if let Some(g) = &mut p.grpc {
        g.service.get_or_insert_with(String::new);
    }
}

fn default_lifecycle_handler(h: &mut LifecycleHandler) {
    if let Some(g) = &mut h.http_get {
        default_http_get(g);
    }
}

fn default_field_ref(f: &mut Option<ObjectFieldSelector>) {
    if let Some(f) = f {
        set_if_empty(&mut f.api_version, "v1");
    }
}

fn default_env(env: &mut Option<Vec<EnvVar>>) {
    for e in env.iter_mut().flatten() {
        if let Some(src) = &mut e.value_from {
            default_field_ref(&mut src.field_ref);
        }
    }
}

fn default_ports(ports: &mut Option<Vec<ContainerPort>>) {
    for p in ports.iter_mut().flatten() {
        set_if_empty(&mut p.protocol, "TCP");
    }
}

fn default_lifecycle(l: &mut Option<Lifecycle>) {
    if let Some(l) = l {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            default_lifecycle_handler(h);
        }
    }
}

/// `SetDefaults_Container` plus the nested defaults the generated defaulter applies; works on
/// `Container` and `EphemeralContainer`, which share these field names.
macro_rules! default_container_fields {
    ($c:expr) => {{
        let c = $c;
        if st(&c.image_pull_policy).is_empty() {
            let policy = if image_tag(st(&c.image)) == "latest" { "Always" } else { "IfNotPresent" };
            c.image_pull_policy = Some(policy.to_string());
        }
        set_if_empty(&mut c.termination_message_path, "/dev/termination-log");
        set_if_empty(&mut c.termination_message_policy, "File");
        default_ports(&mut c.ports);
        default_env(&mut c.env);
        for p in [&mut c.liveness_probe, &mut c.readiness_probe, &mut c.startup_probe].into_iter().flatten() {
            default_probe(p);
        }
        default_lifecycle(&mut c.lifecycle);
    }};
}

fn default_container(c: &mut Container) {
    default_container_fields!(c);
}

fn default_volume(v: &mut Volume) {
    let only_name = match to_value(&*v) {
        Value::Object(m) => m.keys().all(|k| k == "name"),
        _ => false,
    };
    if only_name {
        v.empty_dir = Some(Default::default());
    }
    if let Some(h) = &mut v.host_path {
        h.type_.get_or_insert_with(String::new);
    }
    if let Some(s) = &mut v.secret {
        s.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(c) = &mut v.config_map {
        c.default_mode.get_or_insert(DEFAULT_FILE_MODE);
    }
    if let Some(d) = &mut v.downward_api {
        d.default_mode.get_or_insert(DEFAULT_FILE_MODE);
        for item in d.items.iter_mut().flatten() {
            default_field_ref(&mut item.field_ref);
        }
    }
    if let Some(p) = &mut v.projected {
        p.default_mode.get_or_insert(DEFAULT_FILE_MODE);
        for src in p.sources.iter_mut().flatten() {
            if let Some(d) = &mut src.downward_api {
                for item in d.items.iter_mut().flatten() {
                    default_field_ref(&mut item.field_ref);
                }
            }
            if let Some(t) = &mut src.service_account_token {
                t.expiration_seconds.get_or_insert(3600);
            }
        }
    }
    if let Some(i) = &mut v.iscsi {
        set_if_empty(&mut i.iscsi_interface, "default");
    }
    if let Some(r) = &mut v.rbd {
        set_if_empty(&mut r.pool, "rbd");
        set_if_empty(&mut r.user, "admin");
        set_if_empty(&mut r.keyring, "/etc/ceph/keyring");
    }
    if let Some(a) = &mut v.azure_disk {
        set_if_empty(&mut a.caching_mode, "ReadWrite");
        set_if_empty(&mut a.fs_type, "ext4");
        a.read_only.get_or_insert(false);
        set_if_empty(&mut a.kind, "Shared");
    }
    if let Some(s) = &mut v.scale_io {
        set_if_empty(&mut s.storage_mode, "ThinProvisioned");
        set_if_empty(&mut s.fs_type, "xfs");
    }
    if let Some(t) = v.ephemeral.as_mut().and_then(|e| e.volume_claim_template.as_mut()) {
        set_if_empty(&mut t.spec.volume_mode, "Filesystem");
    }
}

/// `SetDefaults_PodSpec` and the nested container, volume and probe defaults. Applies to every
/// pod spec, including templates.
pub(super) fn default_pod_spec(spec: &mut PodSpec) {
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    set_if_empty(&mut spec.restart_policy, "Always");
    spec.security_context.get_or_insert_with(Default::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    set_if_empty(&mut spec.scheduler_name, "default-scheduler");
    // The deprecated `serviceAccount` mirrors `serviceAccountName` (upstream's conversion keeps
    // the two in step: the old field fills the new one when only it is set).
    if st(&spec.service_account_name).is_empty() && !st(&spec.service_account).is_empty() {
        spec.service_account_name = spec.service_account.clone();
    }
    if !st(&spec.service_account_name).is_empty() {
        spec.service_account = spec.service_account_name.clone();
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c);
    }
    for c in spec.containers.iter_mut() {
        default_container(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        default_container_fields!(c);
    }
}

/// Defaults for a pod template: the template always carries a spec, and the spec gets
/// [`default_pod_spec`].
pub(super) fn default_pod_template(tpl: &mut PodTemplateSpec) {
    default_pod_spec(tpl.spec.get_or_insert_with(Default::default));
}

fn requests_from_limits(resources: &mut Option<ResourceRequirements>) {
    let Some(r) = resources else { return };
    let Some(limits) = &r.limits else { return };
    let requests = r.requests.get_or_insert_with(BTreeMap::new);
    for (k, v) in limits {
        requests.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// Upstream's `DefaultTolerationSeconds` admission plugin (pods only, on create and update of the
/// pod itself): a pod that does not tolerate `node.kubernetes.io/not-ready:NoExecute` or
/// `node.kubernetes.io/unreachable:NoExecute` gets a toleration of it for
/// [`DEFAULT_TOLERATION_SECONDS`], so its node's loss evicts it after five minutes rather than at
/// once. A toleration with that key (or no key) and that effect (or none) counts, whatever its
/// seconds; pod templates are left alone.
pub(super) fn add_default_toleration_seconds(spec: &mut PodSpec) {
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let tolerated = spec.tolerations.iter().flatten().any(|t| {
            t.key.as_deref().is_none_or(|k| k.is_empty() || k == key)
                && matches!(t.effect.as_deref(), None | Some("") | Some("NoExecute"))
        });
        if !tolerated {
            spec.tolerations.get_or_insert_with(Vec::new).push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(DEFAULT_TOLERATION_SECONDS),
                value: None,
            });
        }
    }
}

/// `--default-not-ready-toleration-seconds` and `--default-unreachable-toleration-seconds`.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// `SetDefaults_Pod` (the rules for Pod objects only) followed by [`default_pod_spec`], and the
/// default tolerations of [`add_default_toleration_seconds`].
pub(super) fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        requests_from_limits(&mut c.resources);
    }
    spec.enable_service_links.get_or_insert(true);
    if spec.host_network == Some(true) {
        for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
            for p in c.ports.iter_mut().flatten() {
                if p.host_port.unwrap_or(0) == 0 {
                    p.host_port = Some(p.container_port);
                }
            }
        }
    }
    default_pod_spec(spec);
    add_default_toleration_seconds(spec);
    if let Some(status) = &mut pod.status {
        default_pod_status(status);
    }
}

/// The singular status IPs mirror the first entry of the plural lists (upstream's conversion).
pub(super) fn default_pod_status(status: &mut PodStatus) {
    if status.pod_ips.as_ref().is_none_or(|v| v.is_empty()) && !st(&status.pod_ip).is_empty() {
        status.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP { ip: st(&status.pod_ip).to_string() }]);
    }
    if let Some(first) = status.pod_ips.as_ref().and_then(|v| v.first()) {
        status.pod_ip = Some(first.ip.clone());
    }
    if status.host_ips.as_ref().is_none_or(|v| v.is_empty()) && !st(&status.host_ip).is_empty() {
        status.host_ips = Some(vec![k8s_openapi::api::core::v1::HostIP { ip: st(&status.host_ip).to_string() }]);
    }
    if let Some(first) = status.host_ips.as_ref().and_then(|v| v.first()) {
        status.host_ip = Some(first.ip.clone());
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// What a pod spec's containers are checked against.
struct SpecCtx<'a> {
    /// Volumes that passed validation, by name.
    volumes: BTreeMap<&'a str, &'a Volume>,
    /// Names in `spec.resourceClaims`.
    claim_names: BTreeSet<&'a str>,
    /// `spec.restartPolicy`.
    restart_policy: &'a str,
    /// Whether the pod shares the host's user namespace.
    host_users: bool,
}

fn validate_file_mode(mode: Option<i32>, path: &FieldPath) -> FieldErrors {
    match mode {
        Some(m) if !(0..=0o777).contains(&m) => vec![FieldError::invalid(path, m, FILE_MODE_MSG)],
        _ => Vec::new(),
    }
}

/// `validateLocalDescendingPath`: relative, without `..` elements.
fn validate_local_descending_path(p: &str, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    if p.starts_with('/') {
        errs.push(FieldError::invalid(path, p, "must be a relative path"));
    }
    errs.extend(validate_no_backsteps(p, path));
    errs
}

fn validate_no_backsteps(p: &str, path: &FieldPath) -> FieldErrors {
    if p.split('/').any(|part| part == "..") {
        vec![FieldError::invalid(path, p, "must not contain '..'")]
    } else {
        Vec::new()
    }
}

/// `ValidateLocalNonReservedPath`.
fn validate_local_non_reserved_path(p: &str, path: &FieldPath) -> FieldErrors {
    let mut errs = validate_local_descending_path(p, path);
    if p.starts_with("..") && !p.starts_with("../") {
        errs.push(FieldError::invalid(path, p, "must not start with '..'"));
    }
    errs
}

fn validate_key_to_path(kp: &KeyToPath, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    if kp.key.is_empty() {
        errs.push(FieldError::required(&path.child("key"), ""));
    }
    if kp.path.is_empty() {
        errs.push(FieldError::required(&path.child("path"), ""));
    }
    errs.extend(validate_local_non_reserved_path(&kp.path, &path.child("path")));
    errs.extend(validate_file_mode(kp.mode, &path.child("mode")));
    errs
}

const VOLUME_FIELD_PATHS: &[(&str, &str)] = &[
    // (JSON field, path upstream reports for "more than 1 volume type")
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

fn validate_downward_file(
    path_text: &str,
    field_ref: Option<&ObjectFieldSelector>,
    resource_ref: Option<&ResourceFieldSelector>,
    mode: Option<i32>,
    path: &FieldPath,
) -> FieldErrors {
    let mut errs = Vec::new();
    if path_text.is_empty() {
        errs.push(FieldError::required(&path.child("path"), ""));
    }
    errs.extend(validate_local_non_reserved_path(path_text, &path.child("path")));
    if let Some(f) = field_ref {
        errs.extend(validate_object_field_selector(f, VOLUME_FIELD_EXPRESSIONS, &path.child("fieldRef")));
        if resource_ref.is_some() {
            errs.push(FieldError::invalid(
                path,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ));
        }
    } else if let Some(r) = resource_ref {
        errs.extend(validate_resource_field_selector(r, &path.child("resourceFieldRef"), true));
    } else {
        errs.push(FieldError::required(path, "one of fieldRef and resourceFieldRef is required"));
    }
    errs.extend(validate_file_mode(mode, &path.child("mode")));
    errs
}

/// The per-source checks for the common volume kinds; the many legacy in-tree sources are
/// only counted towards the one-source rule.
fn validate_volume_source(v: &Volume, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let present: Vec<&str> = match to_value(v) {
        Value::Object(m) => VOLUME_FIELD_PATHS
            .iter()
            .filter(|(json, _)| m.get(*json).is_some_and(|x| !x.is_null()))
            .map(|(json, _)| *json)
            .collect(),
        _ => Vec::new(),
    };
    for (i, json) in present.iter().enumerate() {
        if i > 0 {
            let shown = VOLUME_FIELD_PATHS.iter().find(|(j, _)| j == json).map(|(_, p)| *p).unwrap_or(json);
            errs.push(FieldError::forbidden(&path.child(shown), "may not specify more than 1 volume type"));
        }
    }
    if present.is_empty() {
        errs.push(FieldError::required(path, "must specify a volume type"));
        return errs;
    }
    // Only the first source is validated further, as upstream does.
    match present[0] {
        "emptyDir" => {
            if let Some(q) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref())
                && parse_quantity(&q.0).is_some_and(|n| n < 0)
            {
                errs.push(FieldError::forbidden(
                    &path.child("emptyDir").child("sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                ));
            }
        }
        "hostPath" => {
            let h = v.host_path.as_ref().expect("present");
            let p = path.child("hostPath");
            if h.path.is_empty() {
                errs.push(FieldError::required(&p.child("path"), ""));
            } else {
                errs.extend(validate_no_backsteps(&h.path, &p.child("path")));
                let t = st(&h.type_);
                const TYPES: &[&str] = &[
                    "",
                    "BlockDevice",
                    "CharDevice",
                    "Directory",
                    "DirectoryOrCreate",
                    "File",
                    "FileOrCreate",
                    "Socket",
                ];
                if !TYPES.contains(&t) {
                    errs.push(FieldError::not_supported(&p.child("type"), t, TYPES));
                }
            }
        }
        "secret" => {
            let s = v.secret.as_ref().expect("present");
            let p = path.child("secret");
            if st(&s.secret_name).is_empty() {
                errs.push(FieldError::required(&p.child("secretName"), ""));
            }
            errs.extend(validate_file_mode(s.default_mode, &p.child("defaultMode")));
            for (i, kp) in s.items.iter().flatten().enumerate() {
                errs.extend(validate_key_to_path(kp, &p.child("items").index(i)));
            }
        }
        "configMap" => {
            let c = v.config_map.as_ref().expect("present");
            let p = path.child("configMap");
            if c.name.is_empty() {
                errs.push(FieldError::required(&p.child("name"), ""));
            }
            errs.extend(validate_file_mode(c.default_mode, &p.child("defaultMode")));
            for (i, kp) in c.items.iter().flatten().enumerate() {
                errs.extend(validate_key_to_path(kp, &p.child("items").index(i)));
            }
        }
        "persistentVolumeClaim" if v.persistent_volume_claim.as_ref().is_some_and(|c| c.claim_name.is_empty()) => {
            errs.push(FieldError::required(&path.child("persistentVolumeClaim").child("claimName"), ""));
        }
        "nfs" => {
            let n = v.nfs.as_ref().expect("present");
            let p = path.child("nfs");
            if n.server.is_empty() {
                errs.push(FieldError::required(&p.child("server"), ""));
            }
            if n.path.is_empty() {
                errs.push(FieldError::required(&p.child("path"), ""));
            }
            if !n.path.starts_with('/') {
                errs.push(FieldError::invalid(&p.child("path"), n.path.as_str(), "must be an absolute path"));
            }
        }
        "downwardAPI" => {
            let d = v.downward_api.as_ref().expect("present");
            let p = path.child("downwardAPI");
            errs.extend(validate_file_mode(d.default_mode, &p.child("defaultMode")));
            for item in d.items.iter().flatten() {
                errs.extend(validate_downward_file(
                    &item.path,
                    item.field_ref.as_ref(),
                    item.resource_field_ref.as_ref(),
                    item.mode,
                    &p,
                ));
            }
        }
        "projected" => errs.extend(validate_projected(v, &path.child("projected"))),
        "csi" if v.csi.as_ref().is_some_and(|c| c.driver.is_empty()) => {
            errs.push(FieldError::required(&path.child("csi").child("driver"), ""));
        }
        "ephemeral" if v.ephemeral.as_ref().is_some_and(|e| e.volume_claim_template.is_none()) => {
            errs.push(FieldError::required(&path.child("ephemeral").child("volumeClaimTemplate"), ""));
        }
        "gitRepo" => {
            let g = v.git_repo.as_ref().expect("present");
            let p = path.child("gitRepo");
            if g.repository.is_empty() {
                errs.push(FieldError::required(&p.child("repository"), ""));
            }
            errs.extend(validate_local_descending_path(st(&g.directory), &p.child("directory")));
        }
        _ => {}
    }
    errs
}

fn validate_projected(v: &Volume, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let Some(p) = &v.projected else { return errs };
    errs.extend(validate_file_mode(p.default_mode, &path.child("defaultMode")));
    let mut all_paths = BTreeSet::new();
    for (i, src) in p.sources.iter().flatten().enumerate() {
        let sp = path.child("sources").index(i);
        let mut count = 0;
        let mut check_items = |name: &str, items: Option<&Vec<KeyToPath>>, ip: FieldPath, errs: &mut FieldErrors| {
            if name.is_empty() {
                errs.push(FieldError::required(&ip.child("name"), ""));
            }
            for (j, kp) in items.into_iter().flatten().enumerate() {
                errs.extend(validate_key_to_path(kp, &ip.child("items").index(j)));
                if !kp.path.is_empty() && !all_paths.insert(kp.path.clone()) {
                    errs.push(FieldError::invalid(path, name, "conflicting duplicate paths"));
                }
            }
        };
        if let Some(s) = &src.secret {
            count += 1;
            check_items(&s.name, s.items.as_ref(), sp.child("secret"), &mut errs);
        }
        if let Some(c) = &src.config_map {
            count += 1;
            check_items(&c.name, c.items.as_ref(), sp.child("configMap"), &mut errs);
        }
        if let Some(d) = &src.downward_api {
            count += 1;
            let dp = sp.child("downwardAPI");
            for item in d.items.iter().flatten() {
                errs.extend(validate_downward_file(
                    &item.path,
                    item.field_ref.as_ref(),
                    item.resource_field_ref.as_ref(),
                    item.mode,
                    &dp,
                ));
                if !all_paths.insert(item.path.clone()) {
                    errs.push(FieldError::invalid(path, item.path.as_str(), "conflicting duplicate paths"));
                }
            }
        }
        if let Some(t) = &src.service_account_token {
            count += 1;
            let tp = sp.child("serviceAccountToken");
            if let Some(exp) = t.expiration_seconds {
                if exp < 10 * 60 {
                    errs.push(FieldError::invalid(
                        &tp.child("expirationSeconds"),
                        exp,
                        "may not specify a duration less than 10 minutes",
                    ));
                }
                if exp > 1 << 32 {
                    errs.push(FieldError::invalid(
                        &tp.child("expirationSeconds"),
                        exp,
                        "may not specify a duration larger than 2^32 seconds",
                    ));
                }
            }
            if t.path.is_empty() {
                errs.push(FieldError::required(&tp.child("path"), ""));
            }
        }
        if let Some(b) = &src.cluster_trust_bundle {
            count += 1;
            if b.path.is_empty() {
                errs.push(FieldError::required(&sp.child("clusterTrustBundle").child("path"), ""));
            }
        }
        if count > 1 {
            errs.push(FieldError::forbidden(&sp, "may not specify more than 1 volume type per source"));
        }
    }
    errs
}

/// `ValidateVolumes`: returns the volumes that passed, by name, and the errors.
fn validate_volumes<'a>(volumes: &'a [Volume], path: &FieldPath) -> (BTreeMap<&'a str, &'a Volume>, FieldErrors) {
    let mut good = BTreeMap::new();
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        let np = p.child("name");
        let mut el = validate_volume_source(v, &p);
        if v.name.is_empty() {
            el.push(FieldError::required(&np, ""));
        } else {
            el.extend(validate_dns_label(&v.name, &np));
        }
        if names.contains(v.name.as_str()) {
            el.push(FieldError::duplicate(&np, v.name.as_str()));
        }
        if el.is_empty() {
            names.insert(v.name.as_str());
            good.insert(v.name.as_str(), v);
        } else {
            errs.extend(el);
        }
    }
    (good, errs)
}

const ENV_FIELD_EXPRESSIONS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

const VOLUME_FIELD_EXPRESSIONS: &[&str] =
    &["metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"];

/// Field paths the v1 downward API knows at all (anything else fails conversion first).
const DOWNWARD_CONVERTIBLE: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Splits `metadata.labels['key']` into the path and its subscript.
fn split_subscript(p: &str) -> Option<(&str, &str)> {
    let open = p.find("['")?;
    let inner = p[open + 2..].strip_suffix("']")?;
    Some((&p[..open], inner))
}

fn validate_object_field_selector(fs: &ObjectFieldSelector, expressions: &[&str], path: &FieldPath) -> FieldErrors {
    if st(&fs.api_version).is_empty() {
        return vec![FieldError::required(&path.child("apiVersion"), "")];
    }
    if fs.field_path.is_empty() {
        return vec![FieldError::required(&path.child("fieldPath"), "")];
    }
    if let Some((base, key)) = split_subscript(&fs.field_path) {
        return match base {
            "metadata.annotations" => invalid_each(path, key.to_lowercase(), qualified_name(&key.to_lowercase())),
            "metadata.labels" => invalid_each(path, key, qualified_name(key)),
            _ if DOWNWARD_CONVERTIBLE.contains(&base) => {
                vec![FieldError::invalid(path, base, "does not support subscript")]
            }
            _ => vec![FieldError::invalid(
                &path.child("fieldPath"),
                fs.field_path.as_str(),
                &format!("error converting fieldPath: field label not supported: {}", fs.field_path),
            )],
        };
    }
    if !DOWNWARD_CONVERTIBLE.contains(&fs.field_path.as_str()) {
        return vec![FieldError::invalid(
            &path.child("fieldPath"),
            fs.field_path.as_str(),
            &format!("error converting fieldPath: field label not supported: {}", fs.field_path),
        )];
    }
    if !expressions.contains(&fs.field_path.as_str()) {
        let mut sorted: Vec<&str> = expressions.to_vec();
        sorted.sort_unstable();
        return vec![FieldError::not_supported(&path.child("fieldPath"), fs.field_path.as_str(), &sorted)];
    }
    Vec::new()
}

const RESOURCE_FIELD_EXPRESSIONS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn validate_resource_field_selector(fs: &ResourceFieldSelector, path: &FieldPath, volume: bool) -> FieldErrors {
    if volume && st(&fs.container_name).is_empty() {
        return vec![FieldError::required(&path.child("containerName"), "")];
    }
    if fs.resource.is_empty() {
        return vec![FieldError::required(&path.child("resource"), "")];
    }
    let hugepages = fs.resource.starts_with("requests.hugepages-") || fs.resource.starts_with("limits.hugepages-");
    if !RESOURCE_FIELD_EXPRESSIONS.contains(&fs.resource.as_str()) && !hugepages {
        return vec![FieldError::not_supported(
            &path.child("resource"),
            fs.resource.as_str(),
            RESOURCE_FIELD_EXPRESSIONS,
        )];
    }
    Vec::new()
}

fn validate_env(env: &[EnvVar], path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    for (i, e) in env.iter().enumerate() {
        let p = path.index(i);
        if e.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            errs.extend(invalid_each(&p.child("name"), e.name.as_str(), relaxed_env_name(&e.name)));
        }
        let Some(src) = &e.value_from else { continue };
        let vp = p.child("valueFrom");
        let mut n = 0;
        if let Some(f) = &src.field_ref {
            n += 1;
            errs.extend(validate_object_field_selector(f, ENV_FIELD_EXPRESSIONS, &vp.child("fieldRef")));
        }
        if let Some(r) = &src.resource_field_ref {
            n += 1;
            errs.extend(validate_resource_field_selector(r, &vp.child("resourceFieldRef"), false));
        }
        for (name, key, kp) in [
            src.config_map_key_ref.as_ref().map(|s| (&s.name, &s.key, vp.child("configMapKeyRef"))),
            src.secret_key_ref.as_ref().map(|s| (&s.name, &s.key, vp.child("secretKeyRef"))),
        ]
        .into_iter()
        .flatten()
        {
            n += 1;
            errs.extend(invalid_each(&kp.child("name"), name.as_str(), dns1123_subdomain(name)));
            if key.is_empty() {
                errs.push(FieldError::required(&kp.child("key"), ""));
            } else {
                errs.extend(invalid_each(&kp.child("key"), key.as_str(), config_map_key(key)));
            }
        }
        if n == 0 {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !st(&e.value).is_empty() {
            errs.push(FieldError::invalid(&vp, "", "may not be specified when `value` is not empty"));
        } else if n > 1 {
            errs.push(FieldError::invalid(&vp, "", "may not have more than one field specified at a time"));
        }
    }
    errs
}

fn validate_env_from(env_from: &[EnvFromSource], path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    for (i, e) in env_from.iter().enumerate() {
        let p = path.index(i);
        let prefix = st(&e.prefix);
        if !prefix.is_empty() {
            errs.extend(invalid_each(&p.child("prefix"), prefix, relaxed_env_name(prefix)));
        }
        let mut n = 0;
        for (name, np) in [
            e.config_map_ref.as_ref().map(|c| (&c.name, p.child("configMapRef"))),
            e.secret_ref.as_ref().map(|s| (&s.name, p.child("secretRef"))),
        ]
        .into_iter()
        .flatten()
        {
            n += 1;
            if name.is_empty() {
                errs.push(FieldError::required(&np.child("name"), ""));
            } else {
                // Checked as a prefix: a trailing dash is allowed.
                let masked = name.strip_suffix('-').map(|s| format!("{s}a")).unwrap_or_else(|| name.clone());
                errs.extend(invalid_each(&np.child("name"), name.as_str(), dns1123_subdomain(&masked)));
            }
        }
        if n == 0 {
            errs.push(FieldError::invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"));
        } else if n > 1 {
            errs.push(FieldError::invalid(path, "", "may not have more than one field specified at a time"));
        }
    }
    errs
}

fn validate_ports(ports: &[ContainerPort], path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = st(&port.name);
        if !name.is_empty() {
            let msgs = port_name(name);
            if !msgs.is_empty() {
                errs.extend(invalid_each(&p.child("name"), name, msgs));
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(&p.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(&p.child("containerPort"), ""));
        } else {
            errs.extend(invalid_each(
                &p.child("containerPort"),
                port.container_port,
                port_num(i64::from(port.container_port)),
            ));
        }
        if let Some(hp) = port.host_port.filter(|hp| *hp != 0) {
            errs.extend(invalid_each(&p.child("hostPort"), hp, port_num(i64::from(hp))));
        }
        match st(&port.protocol) {
            "" => errs.push(FieldError::required(&p.child("protocol"), "")),
            "TCP" | "UDP" | "SCTP" => {}
            other => errs.push(FieldError::not_supported(&p.child("protocol"), other, &["SCTP", "TCP", "UDP"])),
        }
    }
    errs
}

fn validate_volume_mounts(
    mounts: &[VolumeMount],
    devices: &[VolumeDevice],
    ctx: &SpecCtx,
    path: &FieldPath,
) -> FieldErrors {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = path.index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        if !ctx.volumes.contains_key(m.name.as_str()) {
            errs.push(FieldError::not_found(&p.child("name"), m.name.as_str()));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&p.child("mountPath"), ""));
        }
        if !seen.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(&p.child("mountPath"), m.mount_path.as_str(), "must be unique"));
        }
        if devices.iter().any(|d| d.name == m.name) {
            errs.push(FieldError::invalid(
                &p.child("name"),
                m.name.as_str(),
                "must not already exist in volumeDevices",
            ));
        }
        if devices.iter().any(|d| d.device_path == m.mount_path) {
            errs.push(FieldError::invalid(
                &p.child("mountPath"),
                m.mount_path.as_str(),
                "must not already exist as a path in volumeDevices",
            ));
        }
        let sub = st(&m.sub_path);
        let sub_expr = st(&m.sub_path_expr);
        if ctx.volumes.get(m.name.as_str()).is_some_and(|v| v.image.is_some()) {
            if !sub.is_empty() {
                errs.push(FieldError::invalid(&p.child("subPath"), sub, "not allowed in image volume sources"));
            }
            if !sub_expr.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child("subPathExpr"),
                    sub_expr,
                    "not allowed in image volume sources",
                ));
            }
        }
        if !sub.is_empty() {
            errs.extend(validate_local_descending_path(sub, &path.child("subPath")));
        }
        if !sub_expr.is_empty() {
            if !sub.is_empty() {
                errs.push(FieldError::invalid(
                    &p.child("subPathExpr"),
                    sub_expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(validate_local_descending_path(sub_expr, &path.child("subPathExpr")));
        }
        if let Some(prop) = m.mount_propagation.as_deref() {
            const MODES: &[&str] = &["Bidirectional", "HostToContainer", "None"];
            if !MODES.contains(&prop) {
                errs.push(FieldError::not_supported(&path.child("mountPropagation"), prop, MODES));
            }
        }
        if let Some(rro) = m.recursive_read_only.as_deref() {
            let rp = path.child("recursiveReadOnly");
            match rro {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if m.read_only != Some(true) {
                        errs.push(FieldError::forbidden(&rp, "may only be specified when readOnly is true"));
                    }
                    if m.mount_propagation.as_deref().is_some_and(|mp| mp != "None") {
                        errs.push(FieldError::forbidden(
                            &rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                other => errs.push(FieldError::not_supported(&rp, other, &["Disabled", "Enabled", "IfPossible"])),
            }
        }
    }
    errs
}

fn validate_volume_devices(
    devices: &[VolumeDevice],
    mounts: &[VolumeMount],
    ctx: &SpecCtx,
    path: &FieldPath,
) -> FieldErrors {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for (i, d) in devices.iter().enumerate() {
        let p = path.index(i);
        if d.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        if names.contains(d.name.as_str()) {
            errs.push(FieldError::invalid(&p.child("name"), d.name.as_str(), "must be unique"));
        }
        match ctx.volumes.get(d.name.as_str()) {
            Some(v) if v.persistent_volume_claim.is_none() && v.ephemeral.is_none() => errs.push(FieldError::invalid(
                &p.child("name"),
                d.name.as_str(),
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            )),
            Some(_) => {}
            None => errs.push(FieldError::not_found(&p.child("name"), d.name.as_str())),
        }
        if d.device_path.is_empty() {
            errs.push(FieldError::required(&p.child("devicePath"), ""));
        }
        if paths.contains(d.device_path.as_str()) {
            errs.push(FieldError::invalid(&p.child("devicePath"), d.device_path.as_str(), "must be unique"));
        }
        if !d.device_path.is_empty() && d.device_path.split('/').any(|x| x == "..") {
            errs.push(FieldError::invalid(
                &p.child("devicePath"),
                d.device_path.as_str(),
                "can not contain backsteps ('..')",
            ));
        } else {
            paths.insert(d.device_path.as_str());
        }
        if mounts.iter().any(|m| m.name == d.name) {
            errs.push(FieldError::invalid(&p.child("name"), d.name.as_str(), "must not already exist in volumeMounts"));
        }
        if mounts.iter().any(|m| m.mount_path == d.device_path) {
            errs.push(FieldError::invalid(
                &p.child("devicePath"),
                d.device_path.as_str(),
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !d.name.is_empty() {
            names.insert(d.name.as_str());
        }
    }
    errs
}

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_extended_resource(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && qualified_name(&format!("requests.{name}")).is_empty()
}

fn overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_hugepages(name)
}

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

/// `validateContainerResourceName`.
fn validate_container_resource_name(name: &str, path: &FieldPath) -> FieldErrors {
    let errs = validate_qualified_name(name, path);
    if !errs.is_empty() {
        return errs;
    }
    let mut errs = Vec::new();
    if !name.contains('/') {
        let standard =
            STANDARD_RESOURCES.contains(&name) || is_hugepages(name) || name.starts_with("requests.hugepages-");
        if !standard {
            errs.push(FieldError::invalid(path, name, "must be a standard resource type or fully qualified"));
        }
        if !(["cpu", "memory", "ephemeral-storage"].contains(&name) || is_hugepages(name)) {
            errs.push(FieldError::invalid(path, name, "must be a standard resource for containers"));
        }
    } else if !is_native_resource(name) && !is_extended_resource(name) {
        errs.push(FieldError::invalid(path, name, "doesn't follow extended resource name standard"));
    }
    errs
}

/// `ValidateResourceQuantityValue`.
pub(super) fn validate_quantity_value(name: &str, q: &Quantity, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let Some(v) = parse_quantity(&q.0) else {
        return vec![FieldError::invalid(path, q.0.as_str(), "must be a valid resource quantity")];
    };
    if v < 0 {
        errs.push(FieldError::invalid(path, q.0.as_str(), NEGATIVE_MSG));
    }
    if (INTEGER_RESOURCES.contains(&name) || is_extended_resource(name)) && v % NANO != 0 {
        errs.push(FieldError::invalid(path, q.0.as_str(), "must be an integer"));
    }
    errs
}

/// `ValidateContainerResourceRequirements`.
fn validate_resources(r: &ResourceRequirements, claim_names: &BTreeSet<&str>, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let requests = r.requests.as_ref().unwrap_or(&empty);
    let (mut lim_cpu_mem, mut req_cpu_mem, mut huge) = (false, false, false);
    for (name, q) in limits {
        let p = lim_path.key(name);
        errs.extend(validate_container_resource_name(name, &p));
        errs.extend(validate_quantity_value(name, q, &p));
        huge |= is_hugepages(name);
        lim_cpu_mem |= name == "cpu" || name == "memory";
    }
    for (name, q) in requests {
        let p = req_path.key(name);
        errs.extend(validate_container_resource_name(name, &p));
        errs.extend(validate_quantity_value(name, q, &p));
        match limits.get(name) {
            Some(limit) => {
                if let (Some(rv), Some(lv)) = (parse_quantity(&q.0), parse_quantity(&limit.0)) {
                    if rv != lv && !overcommit_allowed(name) {
                        errs.push(FieldError::invalid(
                            &req_path,
                            q.0.as_str(),
                            &format!("must be equal to {name} limit of {}", limit.0),
                        ));
                    } else if rv > lv {
                        errs.push(FieldError::invalid(
                            &req_path,
                            q.0.as_str(),
                            &format!("must be less than or equal to {name} limit of {}", limit.0),
                        ));
                    }
                }
            }
            None if !overcommit_allowed(name) => {
                errs.push(FieldError::required(&lim_path, "Limit must be set for non overcommitable resources"));
            }
            None => {}
        }
        huge |= is_hugepages(name);
        req_cpu_mem |= name == "cpu" || name == "memory";
    }
    if huge && !lim_cpu_mem && !req_cpu_mem {
        errs.push(FieldError::forbidden(path, "HugePages require cpu or memory"));
    }
    let mut seen = BTreeSet::new();
    for (i, c) in r.claims.iter().flatten().enumerate() {
        let p = path.child("claims").index(i);
        if c.name.is_empty() {
            errs.push(FieldError::required(&p, ""));
            continue;
        }
        let key = match st(&c.request) {
            "" => c.name.clone(),
            req => {
                errs.extend(validate_dns_label(req, &p.child("request")));
                format!("{}/{req}", c.name)
            }
        };
        if !seen.insert(key.clone()) {
            errs.push(FieldError::duplicate(&p, key));
        }
        if !claim_names.contains(c.name.as_str()) {
            let mut e = FieldError::not_found(&p, c.name.as_str());
            e.detail = if claim_names.is_empty() {
                "must be one of the names in pod.spec.resourceClaims which is empty".to_string()
            } else {
                format!(
                    "must be one of the names in pod.spec.resourceClaims: {}",
                    claim_names.iter().copied().collect::<Vec<_>>().join(", ")
                )
            };
            errs.push(e);
        }
    }
    errs
}

fn validate_handler(h: &Handler, grace: Option<i64>, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let mut n = 0;
    if let Some(e) = h.exec {
        n += 1;
        if e.command.as_ref().is_none_or(|c| c.is_empty()) {
            errs.push(FieldError::required(&path.child("exec").child("command"), ""));
        }
    }
    if let Some(g) = h.http_get {
        let p = path.child("httpGet");
        if n > 0 {
            errs.push(FieldError::forbidden(&p, "may not specify more than 1 handler type"));
        } else {
            n += 1;
            if st(&g.path).is_empty() {
                errs.push(FieldError::required(&p.child("path"), ""));
            }
            errs.extend(validate_port_num_or_name(&g.port, &p.child("port")));
            let scheme = st(&g.scheme);
            if scheme != "HTTP" && scheme != "HTTPS" {
                errs.push(FieldError::not_supported(&p.child("scheme"), scheme, &["HTTP", "HTTPS"]));
            }
            for header in g.http_headers.iter().flatten() {
                errs.extend(invalid_each(
                    &p.child("httpHeaders"),
                    header.name.as_str(),
                    http_header_name(&header.name),
                ));
            }
        }
    }
    if let Some(t) = h.tcp_socket {
        let p = path.child("tcpSocket");
        if n > 0 {
            errs.push(FieldError::forbidden(&p, "may not specify more than 1 handler type"));
        } else {
            n += 1;
            errs.extend(validate_port_num_or_name(&t.port, &p.child("port")));
        }
    }
    if let Some(g) = h.grpc {
        let p = path.child("grpc");
        if n > 0 {
            errs.push(FieldError::forbidden(&p, "may not specify more than 1 handler type"));
        } else {
            n += 1;
            errs.extend(invalid_each(&p.child("port"), g.port, port_num(i64::from(g.port))));
        }
    }
    if let Some(s) = h.sleep {
        let p = path.child("sleep");
        if n > 0 {
            errs.push(FieldError::forbidden(&p, "may not specify more than 1 handler type"));
        } else {
            n += 1;
            if let Some(g) = grace
                && (s.seconds < 0 || s.seconds > g)
            {
                errs.push(FieldError::invalid(
                    &p,
                    s.seconds,
                    &format!("must be non-negative and less than terminationGracePeriodSeconds ({g})"),
                ));
            }
        }
    }
    if n == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    errs
}

/// The handler fields probes and lifecycle hooks share.
struct Handler<'a> {
    exec: Option<&'a k8s_openapi::api::core::v1::ExecAction>,
    http_get: Option<&'a HTTPGetAction>,
    tcp_socket: Option<&'a k8s_openapi::api::core::v1::TCPSocketAction>,
    grpc: Option<&'a k8s_openapi::api::core::v1::GRPCAction>,
    sleep: Option<&'a k8s_openapi::api::core::v1::SleepAction>,
}

fn validate_probe(probe: &Probe, grace: Option<i64>, path: &FieldPath) -> FieldErrors {
    let h = Handler {
        exec: probe.exec.as_ref(),
        http_get: probe.http_get.as_ref(),
        tcp_socket: probe.tcp_socket.as_ref(),
        grpc: probe.grpc.as_ref(),
        sleep: None,
    };
    let mut errs = validate_handler(&h, grace, path);
    for (v, name) in [
        (probe.initial_delay_seconds, "initialDelaySeconds"),
        (probe.timeout_seconds, "timeoutSeconds"),
        (probe.period_seconds, "periodSeconds"),
        (probe.success_threshold, "successThreshold"),
        (probe.failure_threshold, "failureThreshold"),
    ] {
        errs.extend(nonnegative(i64::from(v.unwrap_or(0)), &path.child(name)));
    }
    if let Some(t) = probe.termination_grace_period_seconds.filter(|t| *t <= 0) {
        errs.push(FieldError::invalid(&path.child("terminationGracePeriodSeconds"), t, "must be greater than 0"));
    }
    errs
}

fn validate_probes(c: &Container, grace: Option<i64>, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    if let Some(p) = &c.liveness_probe {
        let lp = path.child("livenessProbe");
        errs.extend(validate_probe(p, grace, &lp));
        if p.success_threshold.unwrap_or(0) != 1 {
            errs.push(FieldError::invalid(
                &lp.child("successThreshold"),
                p.success_threshold.unwrap_or(0),
                "must be 1",
            ));
        }
    }
    if let Some(p) = &c.readiness_probe {
        let rp = path.child("readinessProbe");
        errs.extend(validate_probe(p, grace, &rp));
        if let Some(t) = p.termination_grace_period_seconds {
            errs.push(FieldError::invalid(
                &rp.child("terminationGracePeriodSeconds"),
                t,
                "must not be set for readinessProbes",
            ));
        }
    }
    if let Some(p) = &c.startup_probe {
        let sp = path.child("startupProbe");
        errs.extend(validate_probe(p, grace, &sp));
        if p.success_threshold.unwrap_or(0) != 1 {
            errs.push(FieldError::invalid(
                &sp.child("successThreshold"),
                p.success_threshold.unwrap_or(0),
                "must be 1",
            ));
        }
    }
    errs
}

fn validate_lifecycle(l: &Lifecycle, grace: Option<i64>, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    for (h, name) in [(&l.post_start, "postStart"), (&l.pre_stop, "preStop")] {
        if let Some(h) = h {
            let handler = Handler {
                exec: h.exec.as_ref(),
                http_get: h.http_get.as_ref(),
                tcp_socket: h.tcp_socket.as_ref(),
                grpc: None,
                sleep: h.sleep.as_ref(),
            };
            errs.extend(validate_handler(&handler, grace, &path.child(name)));
        }
    }
    errs
}

fn validate_id(v: Option<i64>, path: &FieldPath) -> FieldErrors {
    match v {
        Some(id) if !(0..=0xffff_ffff).contains(&id) => {
            vec![FieldError::invalid(path, id, &range_error(0, 0xffff_ffff))]
        }
        _ => Vec::new(),
    }
}

fn validate_seccomp(sp: Option<&k8s_openapi::api::core::v1::SeccompProfile>, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let Some(sp) = sp else { return errs };
    match sp.type_.as_str() {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errs.push(FieldError::required(&path.child("type"), "type is required when seccompProfile is set")),
        other => errs.push(FieldError::not_supported(
            &path.child("type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    if sp.type_ == "Localhost" {
        match &sp.localhost_profile {
            None => errs.push(FieldError::required(
                &path.child("localhostProfile"),
                "must be set when seccomp type is Localhost",
            )),
            Some(p) => errs.extend(validate_local_descending_path(p, &path.child("localhostProfile"))),
        }
    } else if sp.localhost_profile.is_some() {
        errs.push(FieldError::invalid(
            &path.child("localhostProfile"),
            to_value(sp),
            "can only be set when seccomp type is Localhost",
        ));
    }
    errs
}

/// `ValidateSecurityContext` (container level).
fn validate_security_context(sc: &SecurityContext, host_users: bool, path: &FieldPath) -> FieldErrors {
    let mut errs = validate_id(sc.run_as_user, &path.child("runAsUser"));
    errs.extend(validate_id(sc.run_as_group, &path.child("runAsGroup")));
    if let Some(pm) = sc.proc_mount.as_deref() {
        if pm != "Default" && pm != "Unmasked" {
            errs.push(FieldError::not_supported(&path.child("procMount"), pm, &["Default", "Unmasked"]));
        }
        if host_users && pm == "Unmasked" {
            errs.push(FieldError::invalid(&path.child("procMount"), pm, "`hostUsers` must be false to use `Unmasked`"));
        }
    }
    errs.extend(validate_seccomp(sc.seccomp_profile.as_ref(), &path.child("seccompProfile")));
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            errs.push(FieldError::invalid(
                path,
                to_value(sc),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if sc.capabilities.as_ref().and_then(|c| c.add.as_ref()).is_some_and(|a| a.iter().any(|c| c == "CAP_SYS_ADMIN"))
        {
            errs.push(FieldError::invalid(
                path,
                to_value(sc),
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
    errs
}

/// `validateContainerCommon`: the checks every container kind gets.
fn validate_container_common(c: &Container, ctx: &SpecCtx, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let np = path.child("name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&np, ""));
    } else {
        errs.extend(validate_dns_label(&c.name, &np));
    }
    if st(&c.image).is_empty() {
        errs.push(FieldError::required(&path.child("image"), ""));
    }
    match st(&c.termination_message_policy) {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(&path.child("terminationMessagePolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &path.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let devices = c.volume_devices.as_deref().unwrap_or_default();
    errs.extend(validate_ports(c.ports.as_deref().unwrap_or_default(), &path.child("ports")));
    errs.extend(validate_env(c.env.as_deref().unwrap_or_default(), &path.child("env")));
    errs.extend(validate_env_from(c.env_from.as_deref().unwrap_or_default(), &path.child("envFrom")));
    errs.extend(validate_volume_mounts(mounts, devices, ctx, &path.child("volumeMounts")));
    errs.extend(validate_volume_devices(devices, mounts, ctx, &path.child("volumeDevices")));
    match st(&c.image_pull_policy) {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(&path.child("imagePullPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &path.child("imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    if let Some(r) = &c.resources {
        errs.extend(validate_resources(r, &ctx.claim_names, &path.child("resources")));
    }
    let rp = path.child("resizePolicy");
    let mut resize_seen = BTreeSet::new();
    for (i, p) in c.resize_policy.iter().flatten().enumerate() {
        if !resize_seen.insert(p.resource_name.as_str()) {
            errs.push(FieldError::duplicate(&rp.index(i), p.resource_name.as_str()));
        }
        match p.resource_name.as_str() {
            "cpu" | "memory" => {}
            "" => errs.push(FieldError::required(&rp, "")),
            other => errs.push(FieldError::not_supported(&rp, other, &["cpu", "memory"])),
        }
        match p.restart_policy.as_str() {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(FieldError::required(&rp, "")),
            other => errs.push(FieldError::not_supported(&rp, other, &["NotRequired", "RestartContainer"])),
        }
        if ctx.restart_policy == "Never" && p.restart_policy != "NotRequired" {
            errs.push(FieldError::invalid(
                &rp,
                p.restart_policy.as_str(),
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
    if let Some(sc) = &c.security_context {
        errs.extend(validate_security_context(sc, ctx.host_users, &path.child("securityContext")));
    }
    errs
}

/// `AccumulateUniqueHostPorts` for one group of containers.
fn check_host_port_conflicts<'a>(
    containers: impl Iterator<Item = (usize, &'a Container)>,
    path: &FieldPath,
) -> FieldErrors {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (ci, c) in containers {
        for (pi, port) in c.ports.iter().flatten().enumerate() {
            let hp = port.host_port.unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{}", st(&port.protocol), st(&port.host_ip), hp);
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(&path.index(ci).child("ports").index(pi).child("hostPort"), key));
            }
        }
    }
    errs
}

fn validate_taint_effect(effect: &str, allow_empty: bool, path: &FieldPath) -> FieldErrors {
    if !allow_empty && effect.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    match effect {
        "NoSchedule" | "PreferNoSchedule" | "NoExecute" => Vec::new(),
        other => vec![FieldError::not_supported(path, other, &["NoSchedule", "PreferNoSchedule", "NoExecute"])],
    }
}

/// `validateTaintEffect` with a required effect, for node taints.
pub(super) fn validate_node_taint_effect(effect: &str, path: &FieldPath) -> FieldErrors {
    validate_taint_effect(effect, false, path)
}

/// `ValidateTolerations`.
pub(super) fn validate_tolerations(tolerations: &[Toleration], path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let key = st(&t.key);
        let op = st(&t.operator);
        let effect = st(&t.effect);
        if !key.is_empty() {
            errs.extend(validate_qualified_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                &p.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = label_value(st(&t.value));
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(&p.child("operator"), st(&t.value), &msgs.join(";")));
                }
            }
            "Exists" => {
                if !st(&t.value).is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        st(&t.value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(&p.child("operator"), other, &["Equal", "Exists"])),
        }
        if !effect.is_empty() {
            errs.extend(validate_taint_effect(effect, true, &p.child("effect")));
        }
    }
    errs
}

fn validate_node_selector_requirement(
    rq: &NodeSelectorRequirement,
    allow_invalid_values: bool,
    path: &FieldPath,
) -> FieldErrors {
    let mut errs = Vec::new();
    let n = rq.values.as_ref().map_or(0, Vec::len);
    match rq.operator.as_str() {
        "In" | "NotIn" => {
            if n == 0 {
                errs.push(FieldError::required(
                    &path.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if n > 0 {
                errs.push(FieldError::forbidden(
                    &path.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        "Gt" | "Lt" => {
            if n != 1 {
                errs.push(FieldError::required(
                    &path.child("values"),
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            }
        }
        other => errs.push(FieldError::invalid(&path.child("operator"), other, "not a valid selector operator")),
    }
    errs.extend(validate_qualified_name(&rq.key, &path.child("key")));
    if !allow_invalid_values {
        for (i, v) in rq.values.iter().flatten().enumerate() {
            errs.extend(invalid_each(&path.child("values").index(i), v.as_str(), label_value(v)));
        }
    }
    errs
}

fn validate_node_selector_term(term: &NodeSelectorTerm, allow_invalid_values: bool, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    for (j, rq) in term.match_expressions.iter().flatten().enumerate() {
        errs.extend(validate_node_selector_requirement(
            rq,
            allow_invalid_values,
            &path.child("matchExpressions").index(j),
        ));
    }
    for (j, rq) in term.match_fields.iter().flatten().enumerate() {
        let p = path.child("matchFields").index(j);
        match rq.operator.as_str() {
            "In" | "NotIn" => {
                if rq.values.as_ref().map_or(0, Vec::len) != 1 {
                    errs.push(FieldError::required(
                        &p.child("values"),
                        "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(&p.child("operator"), other, "not a valid selector operator")),
        }
        if rq.key != "metadata.name" {
            errs.push(FieldError::invalid(&p.child("key"), rq.key.as_str(), "not a valid field selector key"));
        } else {
            for (i, v) in rq.values.iter().flatten().enumerate() {
                errs.extend(invalid_each(&p.child("values").index(i), v.as_str(), dns1123_subdomain(v)));
            }
        }
    }
    errs
}

fn validate_node_selector(ns: &NodeSelector, path: &FieldPath) -> FieldErrors {
    let tp = path.child("nodeSelectorTerms");
    if ns.node_selector_terms.is_empty() {
        return vec![FieldError::required(&tp, "must have at least one node selector term")];
    }
    ns.node_selector_terms
        .iter()
        .enumerate()
        .flat_map(|(i, t)| validate_node_selector_term(t, false, &tp.index(i)))
        .collect()
}

fn validate_pod_affinity_term(term: &PodAffinityTerm, path: &FieldPath) -> FieldErrors {
    let mut errs = validate_label_selector(term.label_selector.as_ref(), &path.child("labelSelector"));
    errs.extend(validate_label_selector(term.namespace_selector.as_ref(), &path.child("namespaceSelector")));
    for name in term.namespaces.iter().flatten() {
        errs.extend(invalid_each(&path.child("namespace"), name.as_str(), dns1123_label(name)));
    }
    for (field, keys) in [("matchLabelKeys", &term.match_label_keys), ("mismatchLabelKeys", &term.mismatch_label_keys)]
    {
        let keys = keys.as_deref().unwrap_or_default();
        if keys.is_empty() {
            continue;
        }
        let kp = path.child(field);
        if term.label_selector.is_none() {
            errs.push(FieldError::forbidden(&kp, "must not be specified when labelSelector is not set"));
            continue;
        }
        for (i, k) in keys.iter().enumerate() {
            errs.extend(validate_qualified_name(k, &kp.index(i)));
        }
    }
    if term.topology_key.is_empty() {
        errs.push(FieldError::required(&path.child("topologyKey"), "can not be empty"));
    }
    errs.extend(validate_qualified_name(&term.topology_key, &path.child("topologyKey")));
    errs
}

fn validate_affinity(a: &k8s_openapi::api::core::v1::Affinity, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    if let Some(na) = &a.node_affinity {
        let p = path.child("nodeAffinity");
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            errs.extend(validate_node_selector(req, &p.child("requiredDuringSchedulingIgnoredDuringExecution")));
        }
        let pp = p.child("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, term) in na.preferred_during_scheduling_ignored_during_execution.iter().flatten().enumerate() {
            if term.weight <= 0 || term.weight > 100 {
                errs.push(FieldError::invalid(&pp.index(i).child("weight"), term.weight, "must be in the range 1-100"));
            }
            errs.extend(validate_node_selector_term(&term.preference, true, &pp.index(i).child("preference")));
        }
    }
    let groups = [
        a.pod_affinity.as_ref().map(|x| {
            (
                "podAffinity",
                &x.required_during_scheduling_ignored_during_execution,
                &x.preferred_during_scheduling_ignored_during_execution,
            )
        }),
        a.pod_anti_affinity.as_ref().map(|x| {
            (
                "podAntiAffinity",
                &x.required_during_scheduling_ignored_during_execution,
                &x.preferred_during_scheduling_ignored_during_execution,
            )
        }),
    ];
    for (name, required, preferred) in groups.into_iter().flatten() {
        let p = path.child(name);
        for (i, t) in required.iter().flatten().enumerate() {
            errs.extend(validate_pod_affinity_term(
                t,
                &p.child("requiredDuringSchedulingIgnoredDuringExecution").index(i),
            ));
        }
        for (i, w) in preferred.iter().flatten().enumerate() {
            let wp = p.child("preferredDuringSchedulingIgnoredDuringExecution").index(i);
            if w.weight <= 0 || w.weight > 100 {
                errs.push(FieldError::invalid(&wp.child("weight"), w.weight, "must be in the range 1-100"));
            }
            errs.extend(validate_pod_affinity_term(&w.pod_affinity_term, &wp.child("podAffinityTerm")));
        }
    }
    errs
}

fn validate_pod_security_context(spec: &PodSpec, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let Some(sc) = &spec.security_context else { return errs };
    errs.extend(validate_id(sc.fs_group, &path.child("fsGroup")));
    errs.extend(validate_id(sc.run_as_user, &path.child("runAsUser")));
    errs.extend(validate_id(sc.run_as_group, &path.child("runAsGroup")));
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        errs.extend(validate_id(Some(*g), &path.child("supplementalGroups").index(i)));
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        errs.push(FieldError::invalid(
            &path.child("shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    for (i, s) in sc.sysctls.iter().flatten().enumerate() {
        let p = path.child("sysctls").index(i);
        if s.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
    }
    if let Some(p) = sc.fs_group_change_policy.as_deref()
        && p != "Always"
        && p != "OnRootMismatch"
    {
        errs.push(FieldError::not_supported(&path.child("fsGroupChangePolicy"), p, &["Always", "OnRootMismatch"]));
    }
    errs.extend(validate_seccomp(sc.seccomp_profile.as_ref(), &path.child("seccompProfile")));
    if let Some(p) = sc.supplemental_groups_policy.as_deref()
        && p != "Merge"
        && p != "Strict"
    {
        errs.push(FieldError::not_supported(&path.child("supplementalGroupsPolicy"), p, &["Merge", "Strict"]));
    }
    if let Some(p) = sc.se_linux_change_policy.as_deref()
        && p != "MountOption"
        && p != "Recursive"
    {
        errs.push(FieldError::not_supported(&path.child("seLinuxChangePolicy"), p, &["MountOption", "Recursive"]));
    }
    errs
}

fn validate_dns_config(spec: &PodSpec, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let dns = spec.dns_config.as_ref();
    if st(&spec.dns_policy) == "None" {
        match dns {
            None => return vec![FieldError::required(path, "must provide `dnsConfig` when `dnsPolicy` is None")],
            Some(d) if d.nameservers.as_ref().is_none_or(|n| n.is_empty()) => {
                return vec![FieldError::required(
                    &path.child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )];
            }
            _ => {}
        }
    }
    let Some(d) = dns else { return errs };
    let servers = d.nameservers.as_deref().unwrap_or_default();
    if servers.len() > 3 {
        errs.push(FieldError::invalid(
            &path.child("nameservers"),
            to_value(&servers),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in servers.iter().enumerate() {
        errs.extend(validate_ip(ns, &path.child("nameservers").index(i)));
    }
    let searches = d.searches.as_deref().unwrap_or_default();
    if searches.len() > 32 {
        errs.push(FieldError::invalid(
            &path.child("searches"),
            to_value(&searches),
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        errs.push(FieldError::invalid(
            &path.child("searches"),
            to_value(&searches),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        if s == "." {
            continue;
        }
        let s = s.strip_suffix('.').unwrap_or(s);
        // Relaxed search validation (the default) also admits underscores.
        let relaxed = s.replace('_', "a");
        let msgs = dns1123_subdomain(&relaxed);
        if !msgs.is_empty() {
            let fmt = "_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*";
            let msg = regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character",
                fmt,
                &["example.com"],
            );
            let mut out: Vec<String> = msgs.into_iter().filter(|m| m.starts_with("must be no more")).collect();
            out.push(msg);
            errs.extend(invalid_each(&path.child("searches").index(i), s, out));
        }
    }
    for (i, o) in d.options.iter().flatten().enumerate() {
        if st(&o.name).is_empty() {
            errs.push(FieldError::required(&path.child("options").index(i), "must not be empty"));
        }
    }
    errs
}

fn validate_topology_spread(spec: &PodSpec, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let constraints = spec.topology_spread_constraints.as_deref().unwrap_or_default();
    for (i, c) in constraints.iter().enumerate() {
        let p = path.index(i);
        if c.max_skew <= 0 {
            errs.push(FieldError::invalid(&p.child("maxSkew"), c.max_skew, "must be greater than zero"));
        }
        if c.topology_key.is_empty() {
            errs.push(FieldError::required(&p.child("topologyKey"), "can not be empty"));
        }
        if c.when_unsatisfiable != "DoNotSchedule" && c.when_unsatisfiable != "ScheduleAnyway" {
            errs.push(FieldError::not_supported(
                &p.child("whenUnsatisfiable"),
                c.when_unsatisfiable.as_str(),
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if constraints[i + 1..]
            .iter()
            .any(|o| o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable)
        {
            errs.push(FieldError::duplicate(
                &p.child("{topologyKey, whenUnsatisfiable}"),
                format!("{{{}, {}}}", c.topology_key, c.when_unsatisfiable),
            ));
        }
        if let Some(m) = c.min_domains {
            if m <= 0 {
                errs.push(FieldError::invalid(&p.child("minDomains"), m, "must be greater than zero"));
            }
            if c.when_unsatisfiable != "DoNotSchedule" {
                errs.push(FieldError::invalid(
                    &p.child("minDomains"),
                    m,
                    &format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {}",
                        c.when_unsatisfiable
                    ),
                ));
            }
        }
        for (field, v) in [("nodeAffinityPolicy", &c.node_affinity_policy), ("nodeTaintsPolicy", &c.node_taints_policy)]
        {
            if let Some(v) = v.as_deref()
                && v != "Honor"
                && v != "Ignore"
            {
                errs.push(FieldError::not_supported(&p.child(field), v, &["Honor", "Ignore"]));
            }
        }
        let keys = c.match_label_keys.as_deref().unwrap_or_default();
        if !keys.is_empty() {
            let kp = p.child("matchLabelKeys");
            match &c.label_selector {
                None => errs.push(FieldError::forbidden(&kp, "must not be specified when labelSelector is not set")),
                Some(sel) => {
                    for (j, k) in keys.iter().enumerate() {
                        errs.extend(validate_qualified_name(k, &kp.index(j)));
                        let in_selector = sel.match_labels.as_ref().is_some_and(|m| m.contains_key(k))
                            || sel.match_expressions.iter().flatten().any(|e| &e.key == k);
                        if in_selector {
                            errs.push(FieldError::invalid(
                                &kp.index(j),
                                k.as_str(),
                                "exists in both matchLabelKeys and labelSelector",
                            ));
                        }
                    }
                }
            }
        }
        errs.extend(validate_label_selector(c.label_selector.as_ref(), &p.child("labelSelector")));
    }
    errs
}

/// Whether the spec is checked as part of a Pod object (more rules) or as a template.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum SpecOf {
    /// A Pod's own spec.
    Pod,
    /// The spec inside a pod template.
    Template,
}

/// `ValidatePodSpec`.
pub(super) fn validate_pod_spec(spec: &PodSpec, path: &FieldPath, of: SpecOf) -> FieldErrors {
    let mut errs = Vec::new();
    if spec.termination_grace_period_seconds.is_none() {
        errs.push(FieldError::required(&path.child("terminationGracePeriodSeconds"), ""));
    }
    let grace = spec.termination_grace_period_seconds;
    let host_users = spec.host_users.unwrap_or(true);
    let (volumes, verrs) = validate_volumes(spec.volumes.as_deref().unwrap_or_default(), &path.child("volumes"));
    errs.extend(verrs);

    // Resource claims.
    let mut claim_names = BTreeSet::new();
    for c in spec.resource_claims.iter().flatten() {
        if !c.name.is_empty() {
            claim_names.insert(c.name.as_str());
        }
    }
    let mut seen_claims = BTreeSet::new();
    for (i, c) in spec.resource_claims.iter().flatten().enumerate() {
        let p = path.child("resourceClaims").index(i);
        if c.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else if !seen_claims.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), c.name.as_str()));
        } else {
            errs.extend(validate_dns_label(&c.name, &p.child("name")));
        }
        match (&c.resource_claim_name, &c.resource_claim_template_name) {
            (Some(_), Some(_)) => errs.push(FieldError::invalid(
                &p,
                to_value(c),
                "at most one of `resourceClaimName` or `resourceClaimTemplateName` may be specified",
            )),
            (None, None) => errs.push(FieldError::invalid(
                &p,
                to_value(c),
                "must specify one of: `resourceClaimName`, `resourceClaimTemplateName`",
            )),
            _ => {}
        }
        if let Some(n) = &c.resource_claim_name {
            errs.extend(validate_dns_subdomain(n, &p.child("resourceClaimName")));
        }
        if let Some(n) = &c.resource_claim_template_name {
            errs.extend(validate_dns_subdomain(n, &p.child("resourceClaimTemplateName")));
        }
    }

    let ctx = SpecCtx { volumes, claim_names, restart_policy: st(&spec.restart_policy), host_users };

    // Regular containers.
    let cp = path.child("containers");
    if spec.containers.is_empty() {
        errs.push(FieldError::required(&cp, ""));
    } else {
        let mut names = BTreeSet::new();
        for (i, c) in spec.containers.iter().enumerate() {
            let p = cp.index(i);
            errs.extend(validate_container_common(c, &ctx, &p));
            if !names.insert(c.name.as_str()) {
                errs.push(FieldError::duplicate(&p.child("name"), c.name.as_str()));
            }
            if let Some(l) = &c.lifecycle {
                errs.extend(validate_lifecycle(l, grace, &p.child("lifecycle")));
            }
            errs.extend(validate_probes(c, grace, &p));
            if c.restart_policy.is_some() {
                errs.push(FieldError::forbidden(&p.child("restartPolicy"), "may not be set for non-init containers"));
            }
        }
        errs.extend(check_host_port_conflicts(spec.containers.iter().enumerate(), &cp));
    }

    // Init containers.
    let ip = path.child("initContainers");
    let mut all_names: BTreeSet<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let p = ip.index(i);
        errs.extend(validate_container_common(c, &ctx, &p));
        let mut restart_always = false;
        if let Some(rp) = c.restart_policy.as_deref() {
            if rp == "Always" {
                restart_always = true;
            } else {
                errs.push(FieldError::not_supported(&p.child("restartPolicy"), rp, &["Always"]));
            }
        }
        if all_names.contains(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), c.name.as_str()));
        } else if !c.name.is_empty() {
            all_names.insert(c.name.as_str());
        }
        errs.extend(check_host_port_conflicts(std::iter::once((0, c)), &ip));
        if restart_always {
            if let Some(l) = &c.lifecycle {
                errs.extend(validate_lifecycle(l, grace, &p.child("lifecycle")));
            }
            errs.extend(validate_probes(c, grace, &p));
        } else {
            for (set, name) in [
                (c.lifecycle.is_some(), "lifecycle"),
                (c.liveness_probe.is_some(), "livenessProbe"),
                (c.readiness_probe.is_some(), "readinessProbe"),
                (c.startup_probe.is_some(), "startupProbe"),
            ] {
                if set {
                    errs.push(FieldError::forbidden(
                        &p.child(name),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }

    // Ephemeral containers: only the name rules here; templates may not carry them at all.
    let ep = path.child("ephemeralContainers");
    for (i, ec) in spec.ephemeral_containers.iter().flatten().enumerate() {
        let p = ep.index(i);
        if ec.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            errs.extend(validate_dns_label(&ec.name, &p.child("name")));
        }
        if st(&ec.image).is_empty() {
            errs.push(FieldError::required(&p.child("image"), ""));
        }
        if all_names.contains(ec.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), ec.name.as_str()));
        } else {
            all_names.insert(ec.name.as_str());
        }
        let target = st(&ec.target_container_name);
        let is_other = spec.containers.iter().chain(spec.init_containers.iter().flatten()).any(|c| c.name == target);
        if !target.is_empty() && !is_other {
            errs.push(FieldError::not_found(&p.child("targetContainerName"), target));
        }
    }

    // Host network: host ports must match container ports.
    if spec.host_network == Some(true) {
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, port) in c.ports.iter().flatten().enumerate() {
                let hp = port.host_port.unwrap_or(0);
                if (of == SpecOf::Pod || hp != 0) && hp != port.container_port {
                    errs.push(FieldError::invalid(
                        &cp.index(i).child("ports").index(j).child("hostPort"),
                        hp,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }

    match st(&spec.restart_policy) {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(&path.child("restartPolicy"), "")),
        other => {
            errs.push(FieldError::not_supported(&path.child("restartPolicy"), other, &["Always", "OnFailure", "Never"]))
        }
    }
    match st(&spec.dns_policy) {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(&path.child("dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            &path.child("dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    errs.extend(validate_labels(spec.node_selector.as_ref(), &path.child("nodeSelector")));
    errs.extend(validate_pod_security_context(spec, &path.child("securityContext")));
    if let Some(a) = &spec.affinity {
        errs.extend(validate_affinity(a, &path.child("affinity")));
    }
    errs.extend(validate_dns_config(spec, &path.child("dnsConfig")));
    for (i, g) in spec.readiness_gates.iter().flatten().enumerate() {
        errs.extend(validate_qualified_name(
            &g.condition_type,
            &path.child("readinessGates").index(i).child("conditionType"),
        ));
    }
    let mut gates = BTreeSet::new();
    for (i, g) in spec.scheduling_gates.iter().flatten().enumerate() {
        let p = path.child("schedulingGates").index(i);
        errs.extend(validate_qualified_name(&g.name, &p));
        if !gates.insert(g.name.as_str()) {
            errs.push(FieldError::duplicate(&p, g.name.as_str()));
        }
    }
    errs.extend(validate_topology_spread(spec, &path.child("topologySpreadConstraints")));
    if spec.host_users == Some(false) {
        for (on, name) in [(spec.host_network, "hostNetwork"), (spec.host_pid, "HostPID"), (spec.host_ipc, "HostIPC")] {
            if on == Some(true) {
                errs.push(FieldError::forbidden(&path.child(name), "when `pod.Spec.HostUsers` is false"));
            }
        }
    }
    for (v, name) in [
        (&spec.service_account_name, "serviceAccountName"),
        (&spec.node_name, "nodeName"),
        (&spec.priority_class_name, "priorityClassName"),
    ] {
        if !st(v).is_empty() {
            errs.extend(validate_dns_subdomain(st(v), &path.child(name)));
        }
    }
    if let Some(ads) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(FieldError::invalid(&path.child("activeDeadlineSeconds"), ads, &range_error(1, i64::from(i32::MAX))));
    }
    for (v, name) in [(&spec.hostname, "hostname"), (&spec.subdomain, "subdomain")] {
        if !st(v).is_empty() {
            errs.extend(validate_dns_label(st(v), &path.child(name)));
        }
    }
    errs.extend(validate_tolerations(spec.tolerations.as_deref().unwrap_or_default(), &path.child("tolerations")));
    for (i, ha) in spec.host_aliases.iter().flatten().enumerate() {
        let p = path.child("hostAliases").index(i);
        errs.extend(validate_ip(&ha.ip, &p.child("ip")));
        for (j, h) in ha.hostnames.iter().flatten().enumerate() {
            errs.extend(validate_dns_subdomain(h, &p.child("hostnames").index(j)));
        }
    }
    if let Some(rc) = &spec.runtime_class_name {
        errs.extend(validate_dns_subdomain(rc, &path.child("runtimeClassName")));
    }
    if let Some(pp) = spec.preemption_policy.as_deref() {
        match pp {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(FieldError::required(&path.child("preemptionPolicy"), "")),
            other => errs.push(FieldError::not_supported(
                &path.child("preemptionPolicy"),
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(overhead) = &spec.overhead {
        let r = ResourceRequirements { limits: Some(overhead.clone()), ..Default::default() };
        errs.extend(validate_resources(&r, &BTreeSet::new(), &path.child("overhead")));
    }
    if let Some(os) = &spec.os {
        let op = path.child("os");
        if os.name.is_empty() {
            errs.push(FieldError::required(&op.child("name"), "cannot be empty"));
        } else if os.name != "linux" && os.name != "windows" {
            errs.push(FieldError::not_supported(&op, os.name.as_str(), &["linux", "windows"]));
        } else if os.name == "windows" {
            errs.extend(validate_windows(spec, path));
        } else {
            errs.extend(validate_linux(spec, path));
        }
    }
    if of == SpecOf::Pod {
        // Pod-only (not template) checks: no stray whitespace around images.
        for (list, name) in
            [(&spec.containers, "containers"), (spec.init_containers.as_ref().unwrap_or(&Vec::new()), "initContainers")]
        {
            for (i, c) in list.iter().enumerate() {
                let image = st(&c.image);
                if image.len() != image.trim().len() {
                    errs.push(FieldError::invalid(
                        &path.child(name).index(i).child("image"),
                        image,
                        "must not have leading or trailing whitespace",
                    ));
                }
            }
        }
    }
    errs
}

fn all_containers(spec: &PodSpec, path: &FieldPath) -> Vec<(FieldPath, Option<SecurityContext>)> {
    let mut out = Vec::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        out.push((path.child("initContainers").index(i), c.security_context.clone()));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        out.push((path.child("containers").index(i), c.security_context.clone()));
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        out.push((path.child("ephemeralContainers").index(i), c.security_context.clone()));
    }
    out
}

fn validate_linux(spec: &PodSpec, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    const MSG: &str = "windows options cannot be set for a linux pod";
    if spec.security_context.as_ref().is_some_and(|s| s.windows_options.is_some()) {
        errs.push(FieldError::forbidden(&path.child("securityContext").child("windowsOptions"), MSG));
    }
    for (p, sc) in all_containers(spec, path) {
        if sc.is_some_and(|s| s.windows_options.is_some()) {
            errs.push(FieldError::forbidden(&p.child("securityContext").child("windowsOptions"), MSG));
        }
    }
    errs
}

fn validate_windows(spec: &PodSpec, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    const MSG: &str = "cannot be set for a windows pod";
    let sp = path.child("securityContext");
    if let Some(sc) = &spec.security_context {
        for (set, p) in [
            (sc.app_armor_profile.is_some(), sp.child("appArmorProfile")),
            (sc.se_linux_options.is_some(), sp.child("seLinuxOptions")),
            (spec.host_users.is_some(), path.child("hostUsers")),
            (spec.host_pid == Some(true), path.child("hostPID")),
            (spec.host_ipc == Some(true), path.child("hostIPC")),
            (sc.seccomp_profile.is_some(), sp.child("seccompProfile")),
            (sc.fs_group.is_some(), sp.child("fsGroup")),
            (sc.fs_group_change_policy.is_some(), sp.child("fsGroupChangePolicy")),
            (sc.sysctls.as_ref().is_some_and(|s| !s.is_empty()), sp.child("sysctls")),
            (spec.share_process_namespace.is_some(), path.child("shareProcessNamespace")),
            (sc.run_as_user.is_some(), sp.child("runAsUser")),
            (sc.run_as_group.is_some(), sp.child("runAsGroup")),
            (sc.supplemental_groups.is_some(), sp.child("supplementalGroups")),
            (sc.supplemental_groups_policy.is_some(), sp.child("supplementalGroupsPolicy")),
            (sc.se_linux_change_policy.is_some(), sp.child("seLinuxChangePolicy")),
        ] {
            if set {
                errs.push(FieldError::forbidden(&p, MSG));
            }
        }
    }
    for (p, sc) in all_containers(spec, path) {
        let Some(sc) = sc else { continue };
        let cp = p.child("securityContext");
        for (set, name) in [
            (sc.app_armor_profile.is_some(), "appArmorProfile"),
            (sc.se_linux_options.is_some(), "seLinuxOptions"),
            (sc.seccomp_profile.is_some(), "seccompProfile"),
            (sc.capabilities.is_some(), "capabilities"),
            (sc.read_only_root_filesystem.is_some(), "readOnlyRootFilesystem"),
            (sc.privileged.is_some(), "privileged"),
            (sc.allow_privilege_escalation.is_some(), "allowPrivilegeEscalation"),
            (sc.proc_mount.is_some(), "procMount"),
            (sc.run_as_user.is_some(), "runAsUser"),
            (sc.run_as_group.is_some(), "runAsGroup"),
        ] {
            if set {
                errs.push(FieldError::forbidden(&cp.child(name), MSG));
            }
        }
    }
    errs
}

/// `ValidatePodTemplateSpec`: template labels and annotations, then the pod spec; ephemeral
/// containers are not allowed in templates.
pub(super) fn validate_pod_template_spec(tpl: &PodTemplateSpec, path: &FieldPath) -> FieldErrors {
    let meta = tpl.metadata.as_ref();
    let mut errs = validate_labels(meta.and_then(|m| m.labels.as_ref()), &path.child("labels"));
    errs.extend(validate_annotations(meta.and_then(|m| m.annotations.as_ref()), &path.child("annotations")));
    let empty = PodSpec::default();
    let spec = tpl.spec.as_ref().unwrap_or(&empty);
    errs.extend(validate_pod_spec(spec, &path.child("spec"), SpecOf::Template));
    if spec.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty()) {
        errs.push(FieldError::forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// The labels of a pod template (empty when it has none).
pub(super) fn template_labels(tpl: &PodTemplateSpec) -> Option<&BTreeMap<String, String>> {
    tpl.metadata.as_ref().and_then(|m| m.labels.as_ref())
}

/// The template's restart policy, as defaults left it.
pub(super) fn template_restart_policy(tpl: &PodTemplateSpec) -> &str {
    tpl.spec.as_ref().map(|s| st(&s.restart_policy)).unwrap_or("")
}

/// `ValidatePodTemplateSpecForReplicaSet` (also used by Deployments, DaemonSets and, with the
/// selector as a map, ReplicationControllers): the selector must match the template labels,
/// the template must be valid, restart policy must be `Always` and no active deadline.
/// `matches` is whether the selector matches the template labels, `None` when the selector
/// selects everything (then there is nothing to check).
pub(super) fn validate_template_for_controller(
    tpl: &PodTemplateSpec,
    matches: Option<bool>,
    kind: &str,
    path: &FieldPath,
) -> FieldErrors {
    let mut errs = Vec::new();
    if matches == Some(false) {
        errs.push(FieldError::invalid(
            &path.child("metadata").child("labels"),
            to_value(&template_labels(tpl)),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(validate_pod_template_spec(tpl, path));
    errs.extend(restart_always_and_no_deadline(tpl, kind, path));
    errs
}

/// The restart policy must be `Always` and `activeDeadlineSeconds` unset (controllers whose
/// pods run forever).
pub(super) fn restart_always_and_no_deadline(tpl: &PodTemplateSpec, kind: &str, path: &FieldPath) -> FieldErrors {
    let mut errs = Vec::new();
    let rp = template_restart_policy(tpl);
    if rp != "Always" {
        errs.push(FieldError::not_supported(&path.child("spec").child("restartPolicy"), rp, &["Always"]));
    }
    if tpl.spec.as_ref().is_some_and(|s| s.active_deadline_seconds.is_some()) {
        errs.push(FieldError::forbidden(
            &path.child("spec").child("activeDeadlineSeconds"),
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Pod updates
// ---------------------------------------------------------------------------------------------

const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn container_updates(new: &[Container], old: &[Container], path: &FieldPath) -> (FieldErrors, bool) {
    if new.len() != old.len() {
        return (vec![FieldError::forbidden(path, "pod updates may not add or remove containers")], true);
    }
    let mut errs = Vec::new();
    for (i, c) in new.iter().enumerate() {
        let image = st(&c.image);
        if image.is_empty() {
            errs.push(FieldError::required(&path.index(i).child("image"), ""));
        }
        if image.trim().len() != image.len() {
            errs.push(FieldError::invalid(
                &path.index(i).child("image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
    }
    (errs, false)
}

fn tolerations_only_added(new: &[Toleration], old: &[Toleration], path: &FieldPath) -> FieldErrors {
    for o in old {
        let found = new.iter().any(|n| {
            let mut o = o.clone();
            o.toleration_seconds = n.toleration_seconds;
            &o == n
        });
        if !found {
            return vec![FieldError::forbidden(
                path,
                "existing toleration can not be modified except its tolerationSeconds",
            )];
        }
    }
    validate_tolerations(new, path)
}

/// A short account of which top-level spec fields differ, in place of upstream's struct diff.
fn spec_diff(old: &Value, new: &Value) -> String {
    let empty = serde_json::Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let mut lines = Vec::new();
    for k in keys {
        let (a, b) = (o.get(k).unwrap_or(&Value::Null), n.get(k).unwrap_or(&Value::Null));
        if a != b {
            lines.push(format!("  spec.{k}: {a} -> {b}"));
        }
    }
    lines.join("\n")
}

/// `ValidatePodUpdate` for the spec: only images, `activeDeadlineSeconds` (set or lowered),
/// added tolerations, removed scheduling gates, additions to `nodeSelector` of a gated pod,
/// and `terminationGracePeriodSeconds` from negative to 1 may change.
pub(super) fn validate_pod_spec_update(new: &PodSpec, old: &PodSpec) -> FieldErrors {
    let sp = FieldPath::root("spec");
    let mut errs = Vec::new();
    let (e, stop) = container_updates(&new.containers, &old.containers, &sp.child("containers"));
    errs.extend(e);
    if stop {
        return errs;
    }
    let empty = Vec::new();
    let (new_init, old_init) =
        (new.init_containers.as_ref().unwrap_or(&empty), old.init_containers.as_ref().unwrap_or(&empty));
    let (e, stop) = container_updates(new_init, old_init, &sp.child("initContainers"));
    errs.extend(e);
    if stop {
        return errs;
    }
    let ap = sp.child("activeDeadlineSeconds");
    match (new.active_deadline_seconds, old.active_deadline_seconds) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid(&ap, n, &range_error(0, i64::from(i32::MAX))));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(&ap, n, "must be less than or equal to previous value"));
            return errs;
        }
        (None, Some(_)) => {
            errs.push(FieldError::invalid(&ap, Value::Null, "must not update from a positive integer to nil value"))
        }
        _ => {}
    }
    errs.extend(tolerations_only_added(
        new.tolerations.as_deref().unwrap_or_default(),
        old.tolerations.as_deref().unwrap_or_default(),
        &sp.child("tolerations"),
    ));
    let old_gates: BTreeSet<&str> = old.scheduling_gates.iter().flatten().map(|g| g.name.as_str()).collect();
    for (i, g) in new.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(g.name.as_str()) {
            errs.push(FieldError::forbidden(
                &sp.child("schedulingGates").index(i).child("name"),
                &format!("only deletion is allowed, but found new scheduling gate '{}'", g.name),
            ));
        }
    }

    // Put back every field allowed to change, then compare.
    let mut munged = new.clone();
    for (c, o) in munged.containers.iter_mut().zip(&old.containers) {
        c.image = o.image.clone();
    }
    if let Some(inits) = &mut munged.init_containers {
        for (c, o) in inits.iter_mut().zip(old_init) {
            c.image = o.image.clone();
        }
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    munged.scheduling_gates = old.scheduling_gates.clone();
    munged.tolerations = old.tolerations.clone();
    if old.termination_grace_period_seconds.is_some_and(|g| g < 0) && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    if old.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty()) {
        // A gated pod may gain node selector entries (never lose or change them) ...
        if munged.node_selector != old.node_selector {
            let np = sp.child("nodeSelector");
            let new_sel = munged.node_selector.clone().unwrap_or_default();
            let changed = old.node_selector.iter().flatten().any(|(k, v)| new_sel.get(k) != Some(v));
            if changed {
                errs.push(FieldError::invalid(
                    &np,
                    to_value(&munged.node_selector),
                    "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                ));
            }
            munged.node_selector = old.node_selector.clone();
        }
        // ... and node affinity may gain requirements.
        let old_na = old.affinity.as_ref().and_then(|a| a.node_affinity.clone());
        let new_na = munged.affinity.as_ref().and_then(|a| a.node_affinity.clone());
        if old_na != new_na {
            errs.extend(node_affinity_only_added(
                new_na.as_ref(),
                old_na.as_ref(),
                &sp.child("affinity").child("nodeAffinity"),
            ));
            match (&mut munged.affinity, &old.affinity) {
                (None, _) => {
                    munged.affinity = old_na.map(|na| k8s_openapi::api::core::v1::Affinity {
                        node_affinity: Some(na),
                        ..Default::default()
                    })
                }
                (Some(a), None) if a.pod_affinity.is_none() && a.pod_anti_affinity.is_none() => munged.affinity = None,
                (Some(a), _) => a.node_affinity = old_na,
            }
        }
    }
    let (mv, ov) = (to_value(&munged), to_value(old));
    if mv != ov {
        errs.push(FieldError::forbidden(
            &sp,
            &format!("pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n{}", spec_diff(&ov, &mv)),
        ));
    }
    errs
}

fn node_affinity_only_added(
    new: Option<&k8s_openapi::api::core::v1::NodeAffinity>,
    old: Option<&k8s_openapi::api::core::v1::NodeAffinity>,
    path: &FieldPath,
) -> FieldErrors {
    let Some(old_req) = old.and_then(|o| o.required_during_scheduling_ignored_during_execution.as_ref()) else {
        return Vec::new();
    };
    let old_terms = &old_req.node_selector_terms;
    let new_terms: Vec<NodeSelectorTerm> = new
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref())
        .map(|r| r.node_selector_terms.clone())
        .unwrap_or_default();
    let tp = path.child("requiredDuringSchedulingIgnoredDuringExecution").child("nodeSelectorTerms");
    if !old_terms.is_empty() && old_terms.len() != new_terms.len() {
        return vec![FieldError::invalid(
            &tp,
            to_value(&new_terms),
            "no additions/deletions to non-empty NodeSelectorTerms list are allowed",
        )];
    }
    let mut errs = Vec::new();
    for (i, (o, n)) in old_terms.iter().zip(&new_terms).enumerate() {
        let prefix_ok = |old: &Option<Vec<NodeSelectorRequirement>>, new: &Option<Vec<NodeSelectorRequirement>>| {
            let (o, n) = (old.as_deref().unwrap_or_default(), new.as_deref().unwrap_or_default());
            n.len() >= o.len() && n[..o.len()] == *o
        };
        let was_empty = o.match_expressions.as_ref().is_none_or(|v| v.is_empty())
            && o.match_fields.as_ref().is_none_or(|v| v.is_empty());
        let now_empty = n.match_expressions.as_ref().is_none_or(|v| v.is_empty())
            && n.match_fields.as_ref().is_none_or(|v| v.is_empty());
        let ok = if was_empty {
            now_empty
        } else {
            prefix_ok(&o.match_expressions, &n.match_expressions) && prefix_ok(&o.match_fields, &n.match_fields)
        };
        if !ok {
            errs.push(FieldError::invalid(
                &tp.index(i),
                to_value(n),
                "only additions are allowed (no mutations or deletions)",
            ));
        }
    }
    errs
}

/// Whether an error list contains an error of the given type at the given path (for tests).
#[cfg(test)]
pub(super) fn has(errs: &FieldErrors, ty: crate::validation::ErrorType, field: &str) -> bool {
    errs.iter().any(|e| e.error_type == ty && e.field == field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::ErrorType;
    use serde_json::json;

    fn pod(v: Value) -> Pod {
        let mut p: Pod = serde_json::from_value(v).unwrap();
        default_pod(&mut p);
        p
    }

    fn basic() -> Value {
        json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    fn errs_of(p: &Pod) -> FieldErrors {
        validate_pod_spec(p.spec.as_ref().unwrap(), &FieldPath::root("spec"), SpecOf::Pod)
    }

    #[test]
    fn pods_get_default_toleration_seconds() {
        let tolerations = |p: &Pod| serde_json::to_value(&p.spec.as_ref().unwrap().tolerations).unwrap();
        let p = pod(basic());
        assert_eq!(
            tolerations(&p),
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        // Defaulting again (an update) adds nothing.
        let mut again = p.clone();
        default_pod(&mut again);
        assert_eq!(again, p);
        // A pod's own toleration of a key wins, whatever its seconds; the other key is added.
        let mut v = basic();
        v["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]);
        let p = pod(v);
        let t = tolerations(&p);
        assert_eq!(t.as_array().unwrap().len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 2);
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");
        // Tolerating everything (no key, no effect) needs nothing more.
        let mut v = basic();
        v["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        assert_eq!(tolerations(&pod(v)), json!([{"operator": "Exists"}]));
        // A NoSchedule toleration of the key does not count.
        let mut v = basic();
        v["spec"]["tolerations"] =
            json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]);
        assert_eq!(tolerations(&pod(v)).as_array().unwrap().len(), 3);
        // Templates are not pods: no tolerations added.
        let mut tpl: PodTemplateSpec = serde_json::from_value(json!({"spec": basic()["spec"]})).unwrap();
        default_pod_template(&mut tpl);
        assert!(tpl.spec.unwrap().tolerations.is_none());
    }

    #[test]
    fn formats_read_as_upstream() {
        assert!(dns1123_label("my-name").is_empty());
        assert_eq!(dns1123_label("a.b"), vec!["must not contain dots".to_string()]);
        assert_eq!(
            dns1123_label("Bad_"),
            vec!["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()]
        );
        assert!(qualified_name("example.com/MyName").is_empty());
        assert_eq!(qualified_name("/x"), vec!["prefix part must be non-empty".to_string()]);
        assert_eq!(qualified_name("a/b/c").len(), 1);
        assert!(label_value("").is_empty());
        assert_eq!(label_value("-x").len(), 1);
        assert!(config_map_key("key.name").is_empty());
        assert!(
            config_map_key("a b")[0]
                .starts_with("a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
        );
        assert_eq!(config_map_key(".."), vec![config_map_key("..")[0].clone()]);
        assert!(port_name("http").is_empty());
        assert_eq!(port_name("1234"), vec!["must contain at least one letter (a-z)".to_string()]);
        assert!(percent("25%").is_empty());
        assert_eq!(percent("x%").len(), 1);
        assert!(parse_cidr("10.0.0.0/8").is_some());
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_ip("010.1.1.1").is_some());
    }

    #[test]
    fn quantities_compare() {
        let cases = [
            ("500m", 500_000_000i128),
            ("0.5", 500_000_000),
            ("1Ki", 1024 * NANO),
            ("2e3", 2000 * NANO),
            ("1E", 10i128.pow(27)),
            ("-1", -NANO),
            ("1n", 1),
        ];
        for (s, want) in cases {
            assert_eq!(parse_quantity(s), Some(want), "{s}");
        }
        for bad in ["", "abc", "1.2.3", "1Q", "m"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn image_tags() {
        for (image, tag) in [
            ("nginx", "latest"),
            ("nginx:1.25", "1.25"),
            ("nginx:latest", "latest"),
            ("reg:5000/app", "latest"),
            ("reg:5000/app:v1", "v1"),
            ("app@sha256:abc", ""),
            ("", ""),
            ("Nginx", ""),
        ] {
            assert_eq!(image_tag(image), tag, "{image}");
        }
    }

    #[test]
    fn pod_defaults_filled() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "nginx:1.25",
                "ports": [{"containerPort": 80}],
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"limits": {"cpu": "1"}},
                "livenessProbe": {"httpGet": {"port": 80}},
                "readinessProbe": {"grpc": {"port": 9000}}}],
            "initContainers": [{"name": "i", "image": "busybox"}],
            "volumes": [{"name": "a"}, {"name": "s", "secret": {"secretName": "x"}}, {"name": "m", "configMap": {"name": "x"}}, {"name": "h", "hostPath": {"path": "/x"}}]
        }}));
        let v = to_value(&p);
        let spec = &v["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(c["resources"]["requests"]["cpu"], "1");
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["readinessProbe"]["grpc"]["service"], "");
        assert_eq!(spec["initContainers"][0]["imagePullPolicy"], "Always");
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["secret"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][2]["configMap"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][3]["hostPath"]["type"], "");
        assert!(errs_of(&p).is_empty(), "{:?}", errs_of(&p));
    }

    #[test]
    fn template_defaults_skip_pod_only_rules() {
        let mut tpl: PodTemplateSpec = serde_json::from_value(
            json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1"}}}]}}),
        )
        .unwrap();
        default_pod_template(&mut tpl);
        let v = to_value(&tpl);
        assert_eq!(v["spec"]["restartPolicy"], "Always");
        assert!(v["spec"].get("enableServiceLinks").is_none());
        assert!(v["spec"]["containers"][0]["resources"].get("requests").is_none());
    }

    #[test]
    fn host_network_ports_default_for_pods() {
        let p = pod(
            json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}}),
        );
        assert_eq!(to_value(&p)["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
    }

    #[test]
    fn pod_validation_paths() {
        type Case = (&'static str, Value, ErrorType, &'static str, Option<&'static str>);
        let cases: Vec<Case> = vec![
            (
                "no containers",
                json!({"spec": {"containers": []}}),
                ErrorType::Required,
                "spec.containers",
                Some("spec.containers: Required value"),
            ),
            (
                "no image",
                json!({"spec": {"containers": [{"name": "c"}]}}),
                ErrorType::Required,
                "spec.containers[0].image",
                Some("spec.containers[0].image: Required value"),
            ),
            (
                "no name",
                json!({"spec": {"containers": [{"image": "x"}]}}),
                ErrorType::Required,
                "spec.containers[0].name",
                None,
            ),
            (
                "bad name",
                json!({"spec": {"containers": [{"name": "C", "image": "x"}]}}),
                ErrorType::Invalid,
                "spec.containers[0].name",
                None,
            ),
            (
                "dup name",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "c", "image": "x"}]}}),
                ErrorType::Duplicate,
                "spec.containers[1].name",
                Some("spec.containers[1].name: Duplicate value: \"c\""),
            ),
            (
                "init dup",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "initContainers": [{"name": "c", "image": "x"}]}}),
                ErrorType::Duplicate,
                "spec.initContainers[0].name",
                None,
            ),
            (
                "restart policy",
                json!({"spec": {"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "x"}]}}),
                ErrorType::NotSupported,
                "spec.restartPolicy",
                Some(
                    "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                ),
            ),
            (
                "dns policy",
                json!({"spec": {"dnsPolicy": "Nope", "containers": [{"name": "c", "image": "x"}]}}),
                ErrorType::NotSupported,
                "spec.dnsPolicy",
                None,
            ),
            (
                "port range",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 70000}]}]}}),
                ErrorType::Invalid,
                "spec.containers[0].ports[0].containerPort",
                Some(
                    "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                ),
            ),
            (
                "port missing",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "ports": [{"name": "http"}]}]}}),
                ErrorType::Required,
                "spec.containers[0].ports[0].containerPort",
                None,
            ),
            (
                "protocol",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 1, "protocol": "ICMP"}]}]}}),
                ErrorType::NotSupported,
                "spec.containers[0].ports[0].protocol",
                Some(
                    "spec.containers[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                ),
            ),
            (
                "host port",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 1, "hostPort": -1}]}]}}),
                ErrorType::Invalid,
                "spec.containers[0].ports[0].hostPort",
                None,
            ),
            (
                "host port clash",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 1, "hostPort": 80}]}, {"name": "d", "image": "x", "ports": [{"containerPort": 2, "hostPort": 80}]}]}}),
                ErrorType::Duplicate,
                "spec.containers[1].ports[0].hostPort",
                Some("spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//80\""),
            ),
            (
                "dup volume",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "volumes": [{"name": "v"}, {"name": "v"}]}}),
                ErrorType::Duplicate,
                "spec.volumes[1].name",
                None,
            ),
            (
                "bad volume name",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "volumes": [{"name": "V_"}]}}),
                ErrorType::Invalid,
                "spec.volumes[0].name",
                None,
            ),
            (
                "two sources",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "volumes": [{"name": "v", "emptyDir": {}, "secret": {"secretName": "s"}}]}}),
                ErrorType::Forbidden,
                "spec.volumes[0].secret",
                None,
            ),
            (
                "mount not found",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}]}}),
                ErrorType::NotFound,
                "spec.containers[0].volumeMounts[0].name",
                Some("spec.containers[0].volumeMounts[0].name: Not found: \"x\""),
            ),
            (
                "mount path",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "v", "mountPath": ""}]}], "volumes": [{"name": "v"}]}}),
                ErrorType::Required,
                "spec.containers[0].volumeMounts[0].mountPath",
                None,
            ),
            (
                "requests over limits",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}}),
                ErrorType::Invalid,
                "spec.containers[0].resources.requests",
                Some(
                    "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                ),
            ),
            (
                "negative quantity",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"memory": "-1"}}}]}}),
                ErrorType::Invalid,
                "spec.containers[0].resources.requests[memory]",
                None,
            ),
            (
                "resource name",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"gpu": "1"}}}]}}),
                ErrorType::Invalid,
                "spec.containers[0].resources.requests[gpu]",
                None,
            ),
            (
                "extended needs limit",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"example.com/gpu": "1"}}}]}}),
                ErrorType::Required,
                "spec.containers[0].resources.limits",
                None,
            ),
            (
                "env name",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "A=B"}]}]}}),
                ErrorType::Invalid,
                "spec.containers[0].env[0].name",
                None,
            ),
            (
                "env required",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": ""}]}]}}),
                ErrorType::Required,
                "spec.containers[0].env[0].name",
                None,
            ),
            (
                "env field path",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.restartPolicy"}}}]}]}}),
                ErrorType::NotSupported,
                "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
                None,
            ),
            (
                "env two sources",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}),
                ErrorType::Invalid,
                "spec.containers[0].env[0].valueFrom",
                None,
            ),
            (
                "deadline",
                json!({"spec": {"activeDeadlineSeconds": 0, "containers": [{"name": "c", "image": "x"}]}}),
                ErrorType::Invalid,
                "spec.activeDeadlineSeconds",
                Some("spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"),
            ),
            (
                "pull policy",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "imagePullPolicy": "Sometimes"}]}}),
                ErrorType::NotSupported,
                "spec.containers[0].imagePullPolicy",
                None,
            ),
            (
                "probe handler",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "livenessProbe": {}}]}}),
                ErrorType::Required,
                "spec.containers[0].livenessProbe",
                None,
            ),
            (
                "liveness success",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "livenessProbe": {"exec": {"command": ["x"]}, "successThreshold": 2}}]}}),
                ErrorType::Invalid,
                "spec.containers[0].livenessProbe.successThreshold",
                None,
            ),
            (
                "init probe",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "initContainers": [{"name": "i", "image": "x", "readinessProbe": {"exec": {"command": ["x"]}}}]}}),
                ErrorType::Forbidden,
                "spec.initContainers[0].readinessProbe",
                None,
            ),
            (
                "restart on regular",
                json!({"spec": {"containers": [{"name": "c", "image": "x", "restartPolicy": "Always"}]}}),
                ErrorType::Forbidden,
                "spec.containers[0].restartPolicy",
                None,
            ),
            (
                "toleration",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "tolerations": [{"operator": "Equal", "value": "x"}]}}),
                ErrorType::Invalid,
                "spec.tolerations[0].operator",
                None,
            ),
            (
                "toleration effect",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "tolerations": [{"key": "k", "effect": "Sometimes"}]}}),
                ErrorType::NotSupported,
                "spec.tolerations[0].effect",
                None,
            ),
            (
                "node selector",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "nodeSelector": {"a": "-"}}}),
                ErrorType::Invalid,
                "spec.nodeSelector",
                None,
            ),
            (
                "dns none",
                json!({"spec": {"dnsPolicy": "None", "containers": [{"name": "c", "image": "x"}]}}),
                ErrorType::Required,
                "spec.dnsConfig",
                None,
            ),
            (
                "hostname",
                json!({"spec": {"hostname": "A", "containers": [{"name": "c", "image": "x"}]}}),
                ErrorType::Invalid,
                "spec.hostname",
                None,
            ),
            (
                "image spaces",
                json!({"spec": {"containers": [{"name": "c", "image": " x"}]}}),
                ErrorType::Invalid,
                "spec.containers[0].image",
                None,
            ),
            (
                "affinity",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}}}),
                ErrorType::Required,
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
                None,
            ),
            (
                "spread",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "topologySpreadConstraints": [{"maxSkew": 0, "topologyKey": "z", "whenUnsatisfiable": "DoNotSchedule"}]}}),
                ErrorType::Invalid,
                "spec.topologySpreadConstraints[0].maxSkew",
                None,
            ),
            (
                "host network port",
                json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 81}]}]}}),
                ErrorType::Invalid,
                "spec.containers[0].ports[0].hostPort",
                None,
            ),
            (
                "key to path",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "volumes": [{"name": "v", "secret": {"secretName": "s", "items": [{"key": "k", "path": "../x"}]}}]}}),
                ErrorType::Invalid,
                "spec.volumes[0].secret.items[0].path",
                None,
            ),
            (
                "mode",
                json!({"spec": {"containers": [{"name": "c", "image": "x"}], "volumes": [{"name": "v", "configMap": {"name": "s", "defaultMode": 1000}}]}}),
                ErrorType::Invalid,
                "spec.volumes[0].configMap.defaultMode",
                None,
            ),
        ];
        for (name, v, ty, field, text) in cases {
            let p = pod(v);
            let errs = errs_of(&p);
            assert!(has(&errs, ty, field), "{name}: wanted {ty:?} at {field}, got {errs:?}");
            if let Some(text) = text {
                assert!(
                    errs.iter().any(|e| e.to_string() == text),
                    "{name}: wanted {text:?}, got {:?}",
                    errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
                );
            }
        }
        assert!(errs_of(&pod(basic())).is_empty());
    }

    #[test]
    fn pod_updates() {
        let old = pod(json!({"spec": {"containers": [{"name": "c", "image": "a"}], "activeDeadlineSeconds": 100,
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}}));
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = to_value(&old);
            f(&mut v);
            let p: Pod = serde_json::from_value(v).unwrap();
            validate_pod_spec_update(p.spec.as_ref().unwrap(), old.spec.as_ref().unwrap())
        };
        // Allowed changes.
        assert!(with(&|v| v["spec"]["containers"][0]["image"] = json!("b")).is_empty());
        assert!(with(&|v| v["spec"]["activeDeadlineSeconds"] = json!(50)).is_empty());
        assert!(with(&|v| v["spec"]["tolerations"][0]["tolerationSeconds"] = json!(10)).is_empty());
        assert!(
            with(&|v| v["spec"]["tolerations"].as_array_mut().unwrap().push(json!({"key": "x", "operator": "Exists"})))
                .is_empty()
        );
        // Forbidden changes.
        let e = with(&|v| v["spec"]["restartPolicy"] = json!("Never"));
        assert!(has(&e, ErrorType::Forbidden, "spec"), "{e:?}");
        assert!(e[0].detail.starts_with("pod updates may not change fields other than `spec.containers[*].image`,"));
        let e = with(&|v| v["spec"]["activeDeadlineSeconds"] = json!(200));
        assert!(has(&e, ErrorType::Invalid, "spec.activeDeadlineSeconds"));
        let e = with(&|v| v["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "d", "image": "x"})));
        assert_eq!(e[0].to_string(), "spec.containers: Forbidden: pod updates may not add or remove containers");
        let e = with(&|v| v["spec"]["tolerations"] = json!([]));
        assert!(has(&e, ErrorType::Forbidden, "spec.tolerations"));
        let e = with(&|v| v["spec"]["schedulingGates"] = json!([{"name": "g"}]));
        assert!(has(&e, ErrorType::Forbidden, "spec.schedulingGates[0].name"));
    }

    #[test]
    fn selectors() {
        let sel: LabelSelector = serde_json::from_value(
            json!({"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "c", "operator": "In", "values": ["d"]}]}),
        )
        .unwrap();
        let labels: BTreeMap<String, String> =
            [("a", "b"), ("c", "d")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(selector_matches(&sel, Some(&labels)));
        assert!(!selector_matches(&sel, None));
        let bad: LabelSelector = serde_json::from_value(
            json!({"matchExpressions": [{"key": "c", "operator": "In"}, {"key": "d", "operator": "Is"}]}),
        )
        .unwrap();
        let errs = validate_label_selector(Some(&bad), &FieldPath::root("spec").child("selector"));
        assert!(has(&errs, ErrorType::Required, "spec.selector.matchExpressions[0].values"));
        assert!(has(&errs, ErrorType::Invalid, "spec.selector.matchExpressions[1].operator"));
    }
}
