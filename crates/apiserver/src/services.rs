//! Service allocations: cluster IPs from the service range, node ports and health check node
//! ports (`type: LoadBalancer` with `externalTrafficPolicy: Local`) from 30000-32767, as
//! upstream's Service REST storage does before validation.
//!
//! Each allocated address or port is a key of its own in the store (outside `/registry/`, so
//! the watch cache does not see it): creating the key is the reservation, and a conflict means
//! someone else holds it. The keys are released when the service is removed, when a create
//! fails after the reservation, and on update when the new object no longer holds them.
//!
//! Updates follow upstream's REST storage: values the server allocated are patched back in
//! when a client leaves them out ([`carry_over`]), `clusterIP` and `clusterIPs` are kept in step
//! ([`normalize_cluster_ips`]), fields the new type does not use are dropped when the client
//! left them unchanged ([`drop_type_dependent_fields`]), and then [`allocate_update`] reserves
//! what the new object needs (a cluster IP when leaving `ExternalName`, node ports when
//! becoming `NodePort` or `LoadBalancer`, a health check node port when becoming a
//! `LoadBalancer` with `externalTrafficPolicy: Local`). What the old object held and the new one does not
//! is given back by [`release_unheld`] once the update is stored.

use crate::server::ApiServer;
use crate::status::{ApiError, ApiResult};
use rand::Rng;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Upstream's default service range for k3s-like single-binary clusters.
pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 43, 0, 0), 16);
/// The node port range.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

const IP_PREFIX: &str = "/rudder/allocations/serviceips/";
const PORT_PREFIX: &str = "/rudder/allocations/nodeports/";

fn in_range(ip: Ipv4Addr) -> bool {
    let (base, bits) = SERVICE_CIDR;
    let mask = u32::MAX << (32 - bits);
    u32::from(ip) & mask == u32::from(base)
}

/// The first address of the service range (`10.43.0.1`): the `kubernetes` Service's cluster IP.
pub fn first_service_ip() -> Ipv4Addr {
    Ipv4Addr::from(u32::from(SERVICE_CIDR.0) + 1)
}

/// The allocation key of a cluster IP.
pub fn ip_key(ip: Ipv4Addr) -> String {
    format!("{IP_PREFIX}{ip}")
}

fn port_key(port: u64) -> String {
    format!("{PORT_PREFIX}{port}")
}

/// The keys a service holds.
fn held_keys(obj: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    let spec = obj.get("spec");
    for ip in spec.and_then(|s| s.get("clusterIPs")).and_then(Value::as_array).into_iter().flatten() {
        if let Some(ip) = ip.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) {
            keys.push(ip_key(ip));
        }
    }
    for p in spec.and_then(|s| s.get("ports")).and_then(Value::as_array).into_iter().flatten() {
        if let Some(n) = p.get("nodePort").and_then(Value::as_u64).filter(|n| *n > 0) {
            keys.push(port_key(n));
        }
    }
    if let Some(n) = spec.and_then(|s| s.get("healthCheckNodePort")).and_then(Value::as_u64).filter(|n| *n > 0) {
        keys.push(port_key(n));
    }
    keys
}

/// Reserves `key` for `owner`; false when it is taken. A dry run (`owner` is `None`) only
/// checks that the key is free and writes nothing.
pub(crate) async fn reserve(srv: &ApiServer, key: &str, owner: Option<&str>) -> ApiResult<bool> {
    let Some(owner) = owner else {
        return match srv.store.get(key).await {
            Ok(found) => Ok(found.is_none()),
            Err(e) => Err(ApiError::internal(format!("cannot check {key}: {e}"))),
        };
    };
    match srv.store.create(key, bytes::Bytes::from(owner.to_string())).await {
        Ok(_) => Ok(true),
        Err(rudder_store::Error::AlreadyExists(_)) => Ok(false),
        Err(e) => Err(ApiError::internal(format!("cannot reserve {key}: {e}"))),
    }
}

/// Releases whatever the service holds.
pub async fn release(srv: &ApiServer, obj: &Value) {
    for key in held_keys(obj) {
        let _ = srv.store.delete(&key, None).await;
    }
}

/// Releases the keys `old` held that `new` does not (after an update is stored).
pub async fn release_unheld(srv: &ApiServer, old: &Value, new: &Value) {
    let kept: HashSet<String> = held_keys(new).into_iter().collect();
    for key in held_keys(old) {
        if !kept.contains(&key) {
            let _ = srv.store.delete(&key, None).await;
        }
    }
}

/// Releases keys reserved for a write that did not happen.
pub async fn release_keys(srv: &ApiServer, keys: &[String]) {
    for key in keys {
        let _ = srv.store.delete(key, None).await;
    }
}

fn field_error(field: &str, value: &Value, detail: &str, name: &str) -> ApiError {
    let message = format!("Service {name:?} is invalid: {field}: Invalid value: {value}: {detail}");
    let mut e = ApiError::unprocessable(message);
    e.details = Some(json!({"name": name, "kind": "Service", "causes": [
        {"reason": "FieldValueInvalid", "message": format!("Invalid value: {value}: {detail}"), "field": field}
    ]}));
    e
}

fn type_of(spec: &Map<String, Value>) -> &str {
    spec.get("type").and_then(Value::as_str).filter(|t| !t.is_empty()).unwrap_or("ClusterIP")
}

/// Upstream's `needsClusterIP`: every type but `ExternalName` (headless `None` counts).
fn needs_cluster_ip(spec: &Map<String, Value>) -> bool {
    type_of(spec) != "ExternalName"
}

/// Upstream's `needsNodePort`: `NodePort`, and `LoadBalancer` unless
/// `allocateLoadBalancerNodePorts` is false.
fn needs_node_ports(spec: &Map<String, Value>) -> bool {
    match type_of(spec) {
        "NodePort" => true,
        "LoadBalancer" => spec.get("allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false),
        _ => false,
    }
}

/// Whether the type has node ports at all (requested ones are honoured even when a load
/// balancer does not want them allocated).
fn has_node_ports(spec: &Map<String, Value>) -> bool {
    matches!(type_of(spec), "NodePort" | "LoadBalancer")
}

/// Upstream's `NeedsHealthCheck`: a `LoadBalancer` with `externalTrafficPolicy: Local` gets a
/// health check node port, served by the proxy of every node.
fn needs_health_check(spec: &Map<String, Value>) -> bool {
    type_of(spec) == "LoadBalancer" && spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
}

fn spec_of(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("spec").and_then(Value::as_object)
}

/// Allocates what a new service needs (cluster IP, IP family fields, node ports) in its
/// raw JSON, before defaulting and validation. On error nothing stays reserved.
pub async fn allocate(srv: &ApiServer, obj: &mut Value, owner: &str) -> ApiResult<()> {
    let mut reserved: Vec<String> = Vec::new();
    let result = allocate_inner(srv, obj, owner, &mut reserved).await;
    if result.is_err() {
        release_keys(srv, &reserved).await;
    }
    result
}

async fn allocate_inner(srv: &ApiServer, obj: &mut Value, owner: &str, reserved: &mut Vec<String>) -> ApiResult<()> {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    if !needs_cluster_ip(spec) {
        return Ok(());
    }
    allocate_cluster_ip(srv, spec, &name, Some(owner), reserved).await?;
    allocate_node_ports(srv, spec, &name, Some(owner), reserved, &HashSet::new()).await?;
    if needs_health_check(spec) {
        allocate_health_check_port(srv, spec, Some(owner), reserved).await?;
    }
    Ok(())
}

/// Upstream's `allocHealthCheckNodePort`: the requested `healthCheckNodePort` is reserved
/// (from the node port range, shared with node ports), or a free one allocated. As upstream,
/// a port that cannot be had is an internal error (allocation runs before validation).
async fn allocate_health_check_port(
    srv: &ApiServer,
    spec: &mut Map<String, Value>,
    owner: Option<&str>,
    reserved: &mut Vec<String>,
) -> ApiResult<()> {
    let asked = spec.get("healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0);
    if asked != 0 {
        let in_range = u16::try_from(asked).is_ok_and(|n| NODE_PORTS.contains(&n));
        let detail = if !in_range {
            Some(format!(
                "provided port is not in the valid range. The range of valid ports is {}-{}",
                NODE_PORTS.start(),
                NODE_PORTS.end()
            ))
        } else if !reserve(srv, &port_key(asked as u64), owner).await? {
            Some("provided port is already allocated".to_string())
        } else {
            None
        };
        if let Some(detail) = detail {
            return Err(ApiError::internal(format!(
                "failed to allocate requested HealthCheck NodePort {asked}: {detail}"
            )));
        }
        reserved.extend(owner.map(|_| port_key(asked as u64)));
        return Ok(());
    }
    for _ in 0..64 {
        let n = u64::from(rand::rng().random_range(NODE_PORTS));
        let key = port_key(n);
        if reserve(srv, &key, owner).await? {
            reserved.extend(owner.map(|_| key));
            spec.insert("healthCheckNodePort".into(), json!(n));
            return Ok(());
        }
    }
    Err(ApiError::internal("failed to allocate a HealthCheck NodePort: range is full".to_string()))
}

/// Gives `spec` its cluster IP: the requested one (which must be in the range and free), a
/// random free one, or `None` for a headless service; fills the IP family fields.
async fn allocate_cluster_ip(
    srv: &ApiServer,
    spec: &mut Map<String, Value>,
    name: &str,
    owner: Option<&str>,
    reserved: &mut Vec<String>,
) -> ApiResult<()> {
    let requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| spec.get("clusterIPs").and_then(|v| v.get(0)).and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    if requested == "None" {
        spec.insert("clusterIP".into(), json!("None"));
        spec.insert("clusterIPs".into(), json!(["None"]));
    } else {
        let ip = if requested.is_empty() {
            let (base, bits) = SERVICE_CIDR;
            let size = 1u32 << (32 - bits);
            let mut found = None;
            // Random probing, as upstream's allocator; .0, .1 (the API service) and the
            // broadcast address are never handed out.
            for _ in 0..64 {
                let offset = rand::rng().random_range(2..size - 1);
                let ip = Ipv4Addr::from(u32::from(base) + offset);
                let key = ip_key(ip);
                if reserve(srv, &key, owner).await? {
                    reserved.extend(owner.map(|_| key));
                    found = Some(ip);
                    break;
                }
            }
            found.ok_or_else(|| {
                ApiError::internal("failed to allocate a serviceIP: range is full or nearly full".to_string())
            })?
        } else {
            let Ok(ip) = requested.parse::<Ipv4Addr>() else {
                return Err(field_error(
                    "spec.clusterIPs[0]",
                    &json!(requested),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    name,
                ));
            };
            if !in_range(ip) {
                let (base, bits) = SERVICE_CIDR;
                return Err(field_error(
                    "spec.clusterIPs",
                    &json!([requested]),
                    &format!(
                        "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {base}/{bits}"
                    ),
                    name,
                ));
            }
            let key = ip_key(ip);
            if !reserve(srv, &key, owner).await? {
                return Err(field_error(
                    "spec.clusterIPs",
                    &json!([requested]),
                    &format!("failed to allocate IP {ip}: provided IP is already allocated"),
                    name,
                ));
            }
            reserved.extend(owner.map(|_| key));
            ip
        };
        spec.insert("clusterIP".into(), json!(ip.to_string()));
        spec.insert("clusterIPs".into(), json!([ip.to_string()]));
    }
    spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
    spec.entry("ipFamilyPolicy").or_insert_with(|| json!("SingleStack"));
    Ok(())
}

/// Upstream's `updateNodePorts` (also used on create): requested node ports not already held
/// (`held`) are reserved, missing ones allocated when the type wants them.
async fn allocate_node_ports(
    srv: &ApiServer,
    spec: &mut Map<String, Value>,
    name: &str,
    owner: Option<&str>,
    reserved: &mut Vec<String>,
    held: &HashSet<u64>,
) -> ApiResult<()> {
    if !has_node_ports(spec) {
        return Ok(());
    }
    let allocate_missing = needs_node_ports(spec);
    let mut taken_here: HashSet<u64> = HashSet::new();
    let ports = spec.get_mut("ports").and_then(Value::as_array_mut);
    for (i, port) in ports.into_iter().flatten().enumerate() {
        let Some(port) = port.as_object_mut() else { continue };
        let asked = port.get("nodePort").and_then(Value::as_u64).unwrap_or(0);
        if asked == 0 && !allocate_missing {
            continue;
        }
        let n = if asked == 0 {
            let mut found = None;
            for _ in 0..64 {
                let n = u64::from(rand::rng().random_range(NODE_PORTS));
                let key = port_key(n);
                if reserve(srv, &key, owner).await? {
                    reserved.extend(owner.map(|_| key));
                    found = Some(n);
                    break;
                }
            }
            found.ok_or_else(|| ApiError::internal("failed to allocate a nodePort: range is full".to_string()))?
        } else {
            if held.contains(&asked) || taken_here.contains(&asked) {
                // Held by this service already, or another port of this update (validation
                // reports duplicates by protocol).
                continue;
            }
            let in_range = u16::try_from(asked).is_ok_and(|n| NODE_PORTS.contains(&n));
            if !in_range {
                return Err(field_error(
                    &format!("spec.ports[{i}].nodePort"),
                    &json!(asked),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                    name,
                ));
            }
            let key = port_key(asked);
            if !reserve(srv, &key, owner).await? {
                return Err(field_error(
                    &format!("spec.ports[{i}].nodePort"),
                    &json!(asked),
                    "provided port is already allocated",
                    name,
                ));
            }
            reserved.extend(owner.map(|_| key));
            asked
        };
        taken_here.insert(n);
        port.insert("nodePort".into(), json!(n));
    }
    Ok(())
}

/// Reserves what an updated service newly needs, after [`carry_over`],
/// [`normalize_cluster_ips`] and [`drop_type_dependent_fields`] (applied here to `new`):
/// a cluster IP when it had none (leaving `ExternalName`), and node ports the old object did
/// not hold. Returns the keys reserved; on error nothing stays reserved. A dry run
/// (`owner` is `None`) checks that what it needs is free and reserves nothing.
pub async fn allocate_update(
    srv: &ApiServer,
    old: &Value,
    new: &mut Value,
    owner: Option<&str>,
) -> ApiResult<Vec<String>> {
    carry_over(old, new);
    normalize_cluster_ips(old, new);
    drop_type_dependent_fields(old, new);
    let mut reserved = Vec::new();
    let result = allocate_update_inner(srv, old, new, owner, &mut reserved).await;
    if let Err(e) = result {
        release_keys(srv, &reserved).await;
        return Err(e);
    }
    Ok(reserved)
}

async fn allocate_update_inner(
    srv: &ApiServer,
    old: &Value,
    new: &mut Value,
    owner: Option<&str>,
    reserved: &mut Vec<String>,
) -> ApiResult<()> {
    let name = new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let old_spec = spec_of(old).cloned().unwrap_or_default();
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    if !needs_cluster_ip(spec) {
        return Ok(());
    }
    let old_has_ip = needs_cluster_ip(&old_spec)
        && old_spec.get("clusterIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if !old_has_ip {
        // Leaving ExternalName: allocated as on create. (A change of an existing cluster IP is
        // left to validation, which refuses it.)
        allocate_cluster_ip(srv, spec, &name, owner, reserved).await?;
    }
    let held: HashSet<u64> = old_spec
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .filter(|n| *n > 0)
        .collect();
    allocate_node_ports(srv, spec, &name, owner, reserved, &held).await?;
    // Upstream's `updateHealthCheckNodePort`: a port when the service starts needing one (while
    // it keeps needing it, validation refuses a change; when it stops, the old port is released
    // once the update is stored).
    if needs_health_check(spec) && !needs_health_check(&old_spec) {
        allocate_health_check_port(srv, spec, owner, reserved).await?;
    }
    Ok(())
}

/// On update, values the server allocated are kept when the new object leaves them out (a
/// PUT of a manifest without `clusterIP`, as upstream's `patchAllocatedValues` does): the
/// cluster IPs when both types have one, node ports (matched by port and protocol) when both
/// types use them, the health check node port while both need one.
pub fn carry_over(old: &Value, new: &mut Value) {
    let Some(old_spec) = spec_of(old) else { return };
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else { return };
    if !needs_cluster_ip(old_spec) || !needs_cluster_ip(spec) {
        return;
    }
    let unset = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
    if unset(spec.get("clusterIP")) && spec.get("clusterIPs").is_none_or(|v| v.as_array().is_none_or(Vec::is_empty)) {
        for f in ["clusterIP", "clusterIPs"] {
            if let Some(v) = old_spec.get(f) {
                spec.insert(f.into(), v.clone());
            }
        }
    }
    for f in ["ipFamilies", "ipFamilyPolicy"] {
        if unset(spec.get(f))
            && let Some(v) = old_spec.get(f)
        {
            spec.insert(f.into(), v.clone());
        }
    }
    if needs_health_check(old_spec)
        && needs_health_check(spec)
        && spec.get("healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0) == 0
        && let Some(v) = old_spec.get("healthCheckNodePort")
    {
        spec.insert("healthCheckNodePort".into(), v.clone());
    }
    if !(needs_node_ports(old_spec) && needs_node_ports(spec)) {
        return;
    }
    let key = |p: &Value| {
        (p.get("port").and_then(Value::as_u64), p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string())
    };
    // Node ports the new object uses already cannot be patched into another port.
    let used: HashSet<u64> = spec
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .filter(|n| *n > 0)
        .collect();
    let old_ports: Vec<&Value> = old_spec.get("ports").and_then(Value::as_array).into_iter().flatten().collect();
    for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        if port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) != 0 {
            continue;
        }
        if let Some(n) = old_ports.iter().find(|o| key(o) == key(port)).and_then(|o| o.get("nodePort"))
            && !n.as_u64().is_some_and(|n| used.contains(&n))
            && let Some(p) = port.as_object_mut()
        {
            p.insert("nodePort".into(), n.clone());
        }
    }
}

fn str_list(spec: &Map<String, Value>, field: &str) -> Vec<String> {
    spec.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn str_field<'a>(spec: &'a Map<String, Value>, field: &str) -> &'a str {
    spec.get(field).and_then(Value::as_str).unwrap_or("")
}

/// Upstream's `normalizeClusterIPs` for updates: a client that changed only `clusterIP` (an
/// old client) gets `clusterIPs` to match, and one that cleared `clusterIP` while leaving
/// `clusterIPs` as it was gets both cleared; validation then judges the result.
pub fn normalize_cluster_ips(old: &Value, new: &mut Value) {
    let Some(old_spec) = spec_of(old) else { return };
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let old_ips = str_list(old_spec, "clusterIPs");
    let new_ips = str_list(spec, "clusterIPs");
    let (old_ip, new_ip) = (str_field(old_spec, "clusterIP").to_string(), str_field(spec, "clusterIP").to_string());
    if !old_ips.is_empty() && new_ips.is_empty() && old_ip == new_ip {
        spec.insert("clusterIPs".into(), json!(old_ips));
    }
    if old_ip != new_ip {
        let same = str_list(spec, "clusterIPs") == old_ips;
        if !old_ip.is_empty() && new_ip.is_empty() {
            if same {
                spec.remove("clusterIPs");
            }
        } else if same {
            spec.insert("clusterIPs".into(), json!([new_ip]));
        }
    }
}

/// Upstream's `dropTypeDependentFields`: on a type change, fields the new type does not use
/// are dropped when the client left them as they were (they will be released): cluster IPs
/// and IP families when becoming `ExternalName`, node ports when leaving `NodePort` /
/// `LoadBalancer`, the health check node port, `allocateLoadBalancerNodePorts`,
/// `loadBalancerClass`, `externalTrafficPolicy`, and the load balancer status.
pub fn drop_type_dependent_fields(old: &Value, new: &mut Value) {
    let Some(old_spec) = spec_of(old).cloned() else { return };
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let same = |spec: &Map<String, Value>, f: &str| spec.get(f) == old_spec.get(f);
    if needs_cluster_ip(&old_spec) && !needs_cluster_ip(spec) {
        if same(spec, "clusterIP") && same(spec, "clusterIPs") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        for f in ["ipFamilies", "ipFamilyPolicy"] {
            if same(spec, f) {
                spec.remove(f);
            }
        }
    }
    if needs_node_ports(&old_spec) && !needs_node_ports(spec) {
        let node_ports = |s: &Map<String, Value>| -> Vec<u64> {
            s.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| p.get("nodePort").and_then(Value::as_u64).unwrap_or(0))
                .collect()
        };
        if node_ports(spec) == node_ports(&old_spec) {
            for p in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(p) = p.as_object_mut() {
                    p.remove("nodePort");
                }
            }
        }
    }
    if needs_health_check(&old_spec) && !needs_health_check(spec) && same(spec, "healthCheckNodePort") {
        spec.remove("healthCheckNodePort");
    }
    let old_type = type_of(&old_spec).to_string();
    let new_type = type_of(spec).to_string();
    if old_type == "LoadBalancer" && new_type != "LoadBalancer" {
        if same(spec, "allocateLoadBalancerNodePorts") {
            spec.remove("allocateLoadBalancerNodePorts");
        }
        if same(spec, "loadBalancerClass") {
            spec.remove("loadBalancerClass");
        }
    }
    let external = |s: &Map<String, Value>| {
        matches!(type_of(s), "NodePort" | "LoadBalancer")
            || s.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
    };
    if external(&old_spec) && !external(spec) && same(spec, "externalTrafficPolicy") {
        spec.remove("externalTrafficPolicy");
    }
    if new_type != "LoadBalancer"
        && let Some(status) = new.get_mut("status").and_then(Value::as_object_mut)
    {
        status.insert("loadBalancer".into(), json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_and_held_keys() {
        assert!(in_range("10.43.2.3".parse().unwrap()));
        assert!(!in_range("10.44.0.1".parse().unwrap()));
        assert_eq!(first_service_ip(), Ipv4Addr::new(10, 43, 0, 1));
        let svc =
            json!({"spec": {"clusterIPs": ["10.43.0.9"], "ports": [{"port": 80, "nodePort": 30001}, {"port": 81}]}});
        assert_eq!(held_keys(&svc), vec![format!("{IP_PREFIX}10.43.0.9"), format!("{PORT_PREFIX}30001")]);
    }

    #[test]
    fn updates_keep_allocations() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30001}]}});
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 90}]}});
        carry_over(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.43.0.9");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.9"]));
        assert_eq!(new["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30001);
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());
    }

    #[test]
    fn node_ports_are_not_carried_into_a_cluster_ip_service() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30001}]}});
        let mut new = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        carry_over(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.43.0.9");
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        // A node port the new object already uses is not patched into a second port.
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 81, "nodePort": 30001}, {"port": 80}]}});
        carry_over(&old, &mut new);
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());
    }

    #[test]
    fn type_changes_drop_what_the_new_type_does_not_use() {
        // NodePort → ClusterIP by a patch of the type only: the node ports go.
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"],
            "externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "nodePort": 30001}]}});
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        drop_type_dependent_fields(&old, &mut new);
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        assert!(new["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(new["spec"]["clusterIP"], "10.43.0.9");
        // A node port the client changed stays, for validation to refuse.
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        new["spec"]["ports"][0]["nodePort"] = json!(30002);
        drop_type_dependent_fields(&old, &mut new);
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30002);
        // → ExternalName: the cluster IPs and families go.
        let old = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}, "status": {"loadBalancer": {}}});
        let mut new = old.clone();
        new["spec"]["type"] = json!("ExternalName");
        new["spec"]["externalName"] = json!("example.com");
        drop_type_dependent_fields(&old, &mut new);
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            assert!(new["spec"].get(f).is_none(), "{f} dropped");
        }
    }

    #[test]
    fn health_check_node_ports_follow_the_traffic_policy() {
        let lb = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"], "healthCheckNodePort": 31000,
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30001}]}});
        assert!(needs_health_check(spec_of(&lb).unwrap()));
        assert!(held_keys(&lb).contains(&format!("{PORT_PREFIX}31000")));
        // A PUT without it keeps the allocated one while the service needs it.
        let mut new =
            json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}});
        carry_over(&lb, &mut new);
        assert_eq!(new["spec"]["healthCheckNodePort"], 31000);
        // externalTrafficPolicy: Cluster: dropped (and released once stored).
        let mut new = lb.clone();
        new["spec"]["externalTrafficPolicy"] = json!("Cluster");
        carry_over(&lb, &mut new);
        drop_type_dependent_fields(&lb, &mut new);
        assert!(new["spec"].get("healthCheckNodePort").is_none());
        assert!(!held_keys(&new).contains(&format!("{PORT_PREFIX}31000")));
        // A NodePort service never needs one.
        let np = json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Local"}});
        assert!(!needs_health_check(spec_of(&np).unwrap()));
    }

    #[test]
    fn cluster_ip_normalization_on_update() {
        let old = json!({"spec": {"clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"]}});
        // Only the singular field changed: the plural follows (and validation refuses the change).
        let mut new = json!({"spec": {"clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.9"]}});
        normalize_cluster_ips(&old, &mut new);
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.10"]));
        // An old client that sent no plural keeps the old one.
        let mut new = json!({"spec": {"clusterIP": "10.43.0.9"}});
        normalize_cluster_ips(&old, &mut new);
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.9"]));
        // Clearing the singular with the plural unchanged clears both.
        let mut new = json!({"spec": {"clusterIP": "", "clusterIPs": ["10.43.0.9"]}});
        normalize_cluster_ips(&old, &mut new);
        assert!(new["spec"].get("clusterIPs").is_none());
    }
}
