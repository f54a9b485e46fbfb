//! Service allocations: cluster IPs from the service range and node ports from 30000-32767,
//! as upstream's Service REST storage does before validation.
//!
//! Each allocated address or port is a key of its own in the store (outside `/registry/`, so
//! the watch cache does not see it): creating the key is the reservation, and a conflict means
//! someone else holds it. The keys are released when the service is removed, or when a
//! create fails after the reservation.

use crate::server::ApiServer;
use crate::status::{ApiError, ApiResult};
use rand::Rng;
use serde_json::{Value, json};
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

/// The keys a service holds.
fn held_keys(obj: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    let spec = obj.get("spec");
    for ip in spec.and_then(|s| s.get("clusterIPs")).and_then(Value::as_array).into_iter().flatten() {
        if let Some(ip) = ip.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) {
            keys.push(format!("{IP_PREFIX}{ip}"));
        }
    }
    for p in spec.and_then(|s| s.get("ports")).and_then(Value::as_array).into_iter().flatten() {
        if let Some(n) = p.get("nodePort").and_then(Value::as_u64).filter(|n| *n > 0) {
            keys.push(format!("{PORT_PREFIX}{n}"));
        }
    }
    if let Some(n) = spec.and_then(|s| s.get("healthCheckNodePort")).and_then(Value::as_u64).filter(|n| *n > 0) {
        keys.push(format!("{PORT_PREFIX}{n}"));
    }
    keys
}

/// Reserves `key` for `owner`; false when it is taken.
async fn reserve(srv: &ApiServer, key: &str, owner: &str) -> ApiResult<bool> {
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

fn field_error(field: &str, value: &Value, detail: &str, name: &str) -> ApiError {
    let message = format!("Service {name:?} is invalid: {field}: Invalid value: {value}: {detail}");
    let mut e = ApiError::unprocessable(message);
    e.details = Some(json!({"name": name, "kind": "Service", "causes": [
        {"reason": "FieldValueInvalid", "message": format!("Invalid value: {value}: {detail}"), "field": field}
    ]}));
    e
}

/// Allocates what a new service needs (cluster IP, IP family fields, node ports) in its
/// raw JSON, before defaulting and validation. On error nothing stays reserved.
pub async fn allocate(srv: &ApiServer, obj: &mut Value, owner: &str) -> ApiResult<()> {
    let mut reserved: Vec<String> = Vec::new();
    let result = allocate_inner(srv, obj, owner, &mut reserved).await;
    if result.is_err() {
        for key in reserved {
            let _ = srv.store.delete(&key, None).await;
        }
    }
    result
}

async fn allocate_inner(srv: &ApiServer, obj: &mut Value, owner: &str, reserved: &mut Vec<String>) -> ApiResult<()> {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    if ty == "ExternalName" {
        return Ok(());
    }
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
                let key = format!("{IP_PREFIX}{ip}");
                if reserve(srv, &key, owner).await? {
                    reserved.push(key);
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
                    &name,
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
                    &name,
                ));
            }
            let key = format!("{IP_PREFIX}{ip}");
            if !reserve(srv, &key, owner).await? {
                return Err(field_error(
                    "spec.clusterIPs",
                    &json!([requested]),
                    &format!("failed to allocate IP {ip}: provided IP is already allocated"),
                    &name,
                ));
            }
            reserved.push(key);
            ip
        };
        spec.insert("clusterIP".into(), json!(ip.to_string()));
        spec.insert("clusterIPs".into(), json!([ip.to_string()]));
    }
    spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
    spec.entry("ipFamilyPolicy").or_insert_with(|| json!("SingleStack"));
    let wants_node_ports = ty == "NodePort"
        || (ty == "LoadBalancer" && spec.get("allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false));
    if wants_node_ports {
        let ports = spec.get_mut("ports").and_then(Value::as_array_mut);
        for (i, port) in ports.into_iter().flatten().enumerate() {
            let Some(port) = port.as_object_mut() else { continue };
            let asked = port.get("nodePort").and_then(Value::as_u64).unwrap_or(0);
            let n = if asked == 0 {
                let mut found = None;
                for _ in 0..64 {
                    let n = rand::rng().random_range(NODE_PORTS);
                    let key = format!("{PORT_PREFIX}{n}");
                    if reserve(srv, &key, owner).await? {
                        reserved.push(key);
                        found = Some(n);
                        break;
                    }
                }
                found.ok_or_else(|| ApiError::internal("failed to allocate a nodePort: range is full".to_string()))?
            } else {
                let in_range = u16::try_from(asked).is_ok_and(|n| NODE_PORTS.contains(&n));
                if !in_range {
                    return Err(field_error(
                        &format!("spec.ports[{i}].nodePort"),
                        &json!(asked),
                        "provided port is not in the valid range. The range of valid ports is 30000-32767",
                        &name,
                    ));
                }
                let key = format!("{PORT_PREFIX}{asked}");
                if !reserve(srv, &key, owner).await? {
                    return Err(field_error(
                        &format!("spec.ports[{i}].nodePort"),
                        &json!(asked),
                        "provided port is already allocated",
                        &name,
                    ));
                }
                reserved.push(key);
                asked as u16
            };
            port.insert("nodePort".into(), json!(n));
        }
    }
    Ok(())
}

/// On update, values the server allocated are kept when the new object leaves them out (a
/// PUT of a manifest without `clusterIP`, as upstream's REST layer does).
pub fn carry_over(old: &Value, new: &mut Value) {
    let Some(old_spec) = old.get("spec").and_then(Value::as_object) else { return };
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let old_type = old_spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    let new_type = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    if new_type == "ExternalName" || old_type == "ExternalName" {
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
    // Node ports by (port, protocol).
    let old_ports: Vec<&Value> = old_spec.get("ports").and_then(Value::as_array).into_iter().flatten().collect();
    for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        if port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) != 0 {
            continue;
        }
        let key = |p: &Value| {
            (
                p.get("port").and_then(Value::as_u64),
                p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string(),
            )
        };
        if let Some(n) = old_ports.iter().find(|o| key(o) == key(port)).and_then(|o| o.get("nodePort"))
            && let Some(p) = port.as_object_mut()
        {
            p.insert("nodePort".into(), n.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_and_held_keys() {
        assert!(in_range("10.43.2.3".parse().unwrap()));
        assert!(!in_range("10.44.0.1".parse().unwrap()));
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
}
