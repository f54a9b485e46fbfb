//! A container's environment as upstream's kubelet computes it: `envFrom` sources first, then
//! `env` entries with `$(VAR)` expansion, ConfigMap/Secret key references, and the downward API
//! (`fieldRef`, `resourceFieldRef`), then the Services' variables (`KUBERNETES_SERVICE_HOST`,
//! `<NAME>_SERVICE_PORT`, the Docker-link style `<NAME>_PORT_<port>_<PROTO>…`) that the container
//! did not set itself. Also the ConfigMaps, Secrets and Services a pod needs, fetched once per
//! container start, and the downward-API helpers shared with the volume code.
//!
//! Failures carry upstream's messages (e.g. `configmap "cfg" not found`); the pod worker shows
//! them as the waiting reason `CreateContainerConfigError`.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, ResourceFieldSelector, Secret, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use rudder_scheduler::quantity::parse_milli;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A pod's configuration could not be turned into what the runtime needs; the message is
/// upstream's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }

    /// Upstream's message for a ConfigMap that does not exist.
    pub fn configmap_not_found(name: &str) -> Self {
        ConfigError(format!("configmap {name:?} not found"))
    }

    /// Upstream's message for a Secret that does not exist.
    pub fn secret_not_found(name: &str) -> Self {
        ConfigError(format!("secret {name:?} not found"))
    }
}

/// What the kubelet knows about its node and the pod's sandbox that the downward API exposes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// The node's name.
    pub node_name: String,
    /// The node's primary IP (`status.hostIP`, `status.hostIPs`).
    pub host_ip: String,
    /// The pod's IPs from its sandbox (`status.podIP` is the first); when empty, the pod's own
    /// `status.podIPs`/`status.podIP` are used.
    pub pod_ips: Vec<String>,
    /// Allocatable CPU in millicores: the value of `limits.cpu` when the container sets none.
    pub allocatable_cpu_millis: i64,
    /// Allocatable memory in bytes: the value of `limits.memory` when the container sets none.
    pub allocatable_memory_bytes: i64,
    /// Allocatable ephemeral storage in bytes: `limits.ephemeral-storage` when unset.
    pub allocatable_ephemeral_storage_bytes: i64,
}

/// The ConfigMaps and Secrets a pod refers to, by name, in the pod's namespace. `None` records
/// that the object does not exist; a name missing from the map is treated the same way.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// ConfigMaps by name.
    pub configmaps: BTreeMap<String, Option<ConfigMap>>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Option<Secret>>,
    /// The Services whose variables the pod's containers get: those of the pod's namespace
    /// (unless `enableServiceLinks: false`) and `default/kubernetes`.
    pub services: Vec<Service>,
}

impl Sources {
    /// Reads every ConfigMap and Secret `pod` refers to (in env, envFrom, configMap/secret
    /// volumes and projected volumes) from its namespace. A 404 is recorded as absent; other
    /// API errors fail the whole fetch.
    pub async fn fetch(client: &kube::Client, pod: &Pod) -> Result<Sources> {
        let namespace = namespace(pod);
        let (configmap_names, secret_names) = references(pod);
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let configmaps = futures::future::try_join_all(configmap_names.into_iter().map(|name| {
            let api = &configmaps;
            async move {
                let object =
                    api.get_opt(&name).await.with_context(|| format!("reading configmap {namespace}/{name}"))?;
                Ok::<_, anyhow::Error>((name, object))
            }
        }))
        .await?;
        let secrets = futures::future::try_join_all(secret_names.into_iter().map(|name| {
            let api = &secrets;
            async move {
                let object = api.get_opt(&name).await.with_context(|| format!("reading secret {namespace}/{name}"))?;
                Ok::<_, anyhow::Error>((name, object))
            }
        }))
        .await?;
        let mut services = Vec::new();
        if pod.spec.as_ref().and_then(|s| s.enable_service_links) != Some(false) {
            let api: Api<Service> = Api::namespaced(client.clone(), namespace);
            match api.list(&Default::default()).await {
                Ok(list) => services.extend(list.items),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e).with_context(|| format!("listing services of {namespace}")),
            }
        }
        if namespace != "default" || services.is_empty() {
            let api: Api<Service> = Api::namespaced(client.clone(), "default");
            services.extend(api.get_opt("kubernetes").await.context("reading service default/kubernetes")?);
        }
        Ok(Sources { configmaps: configmaps.into_iter().collect(), secrets: secrets.into_iter().collect(), services })
    }

    /// The ConfigMap called `name`, if it exists.
    pub fn configmap(&self, name: &str) -> Option<&ConfigMap> {
        self.configmaps.get(name).and_then(Option::as_ref)
    }

    /// The Secret called `name`, if it exists.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name).and_then(Option::as_ref)
    }
}

/// The pod's namespace (`default` when unset).
pub(crate) fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// Names of the ConfigMaps and Secrets `pod` refers to.
pub fn references(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut configmaps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let Some(spec) = &pod.spec else { return (configmaps, secrets) };
    let containers = spec.init_containers.iter().flatten().chain(&spec.containers);
    for container in containers {
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                configmaps.insert(r.name.clone());
            }
            if let Some(r) = &from.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
        for var in container.env.iter().flatten() {
            let Some(source) = &var.value_from else { continue };
            if let Some(r) = &source.config_map_key_ref {
                configmaps.insert(r.name.clone());
            }
            if let Some(r) = &source.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(cm) = &volume.config_map {
            configmaps.insert(cm.name.clone());
        }
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(name);
        }
        for source in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                configmaps.insert(cm.name.clone());
            }
            if let Some(s) = &source.secret {
                secrets.insert(s.name.clone());
            }
        }
    }
    configmaps.retain(|n| !n.is_empty());
    secrets.retain(|n| !n.is_empty());
    (configmaps, secrets)
}

/// An ordered environment where a later assignment of a name replaces the earlier value in
/// place.
#[derive(Default)]
struct EnvBuilder {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
    /// Values `$(VAR)` sees for names the container does not set (the Services' variables).
    fallback: HashMap<String, String>,
}

impl EnvBuilder {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        match self.index.get(name) {
            Some(&i) => Some(self.vars[i].1.as_str()),
            None => self.fallback.get(name).map(String::as_str),
        }
    }
}

/// The variables a container gets for the Services in `services` (upstream's service links):
/// for each Service with a cluster IP, `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT` (the first
/// port), `<NAME>_SERVICE_PORT_<PORTNAME>` per named port, and the Docker-link variables
/// `<NAME>_PORT` and `<NAME>_PORT_<port>_<PROTO>{,_PROTO,_PORT,_ADDR}`. A Service of the pod's
/// own namespace wins over `default/kubernetes` of the same name.
pub fn service_env(services: &[Service], namespace: &str) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services {
        let name = svc.metadata.name.as_deref().unwrap_or("");
        let ns = svc.metadata.namespace.as_deref().unwrap_or("");
        if ns == namespace || (ns == "default" && name == "kubernetes" && !chosen.contains_key(name)) {
            chosen.insert(name, svc);
        }
    }
    let upper = |s: &str| s.to_ascii_uppercase().replace('-', "_");
    let mut out = Vec::new();
    for (name, svc) in chosen {
        let Some(spec) = svc.spec.as_ref() else { continue };
        let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None") else { continue };
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let prefix = upper(name);
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for p in ports {
            if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{prefix}_SERVICE_PORT_{}", upper(port_name)), p.port.to_string()));
            }
        }
        let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
        let url = |p: &k8s_openapi::api::core::v1::ServicePort| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            format!("{}://{host}:{}", proto.to_ascii_lowercase(), p.port)
        };
        out.push((format!("{prefix}_PORT"), url(first)));
        for p in ports {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let base = format!("{prefix}_PORT_{}_{}", p.port, proto.to_ascii_uppercase());
            out.push((base.clone(), url(p)));
            out.push((format!("{base}_PROTO"), proto.to_ascii_lowercase()));
            out.push((format!("{base}_PORT"), p.port.to_string()));
            out.push((format!("{base}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// Whether `name` is a valid environment variable name (`[-._a-zA-Z][-._a-zA-Z0-9]*`).
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else { return false };
    (first.is_ascii_alphabetic() || matches!(first, '-' | '.' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// The environment of `container` in `pod`, in order: `envFrom` sources (keys prefixed, keys
/// that are not valid variable names skipped), then `env` entries. A name set twice keeps its
/// first position and its last value.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
    node: &NodeFacts,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = namespace(pod);
    let services = service_env(&sources.services, namespace);
    let mut env = EnvBuilder { fallback: services.iter().cloned().collect(), ..Default::default() };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        if let Some(r) = &from.config_map_ref {
            let Some(cm) = sources.configmap(&r.name) else {
                if r.optional == Some(true) {
                    continue;
                }
                return Err(ConfigError::configmap_not_found(&r.name));
            };
            for (key, value) in cm.data.iter().flatten() {
                let name = format!("{prefix}{key}");
                if is_env_var_name(&name) {
                    env.set(name, value.clone());
                }
            }
        }
        if let Some(r) = &from.secret_ref {
            let Some(secret) = sources.secret(&r.name) else {
                if r.optional == Some(true) {
                    continue;
                }
                return Err(ConfigError::secret_not_found(&r.name));
            };
            for (key, value) in secret.data.iter().flatten() {
                let name = format!("{prefix}{key}");
                if is_env_var_name(&name) {
                    env.set(name, String::from_utf8_lossy(&value.0).into_owned());
                }
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(value) = var.value.as_deref().filter(|v| !v.is_empty()) {
            expand_with(value, |name| env.get(name))
        } else if let Some(source) = &var.value_from {
            if let Some(r) = &source.config_map_key_ref {
                let optional = r.optional == Some(true);
                let Some(cm) = sources.configmap(&r.name) else {
                    if optional {
                        continue;
                    }
                    return Err(ConfigError::configmap_not_found(&r.name));
                };
                match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                    Some(v) => v.clone(),
                    None if optional => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in ConfigMap {namespace}/{}",
                            r.key, r.name
                        )));
                    }
                }
            } else if let Some(r) = &source.secret_key_ref {
                let optional = r.optional == Some(true);
                let Some(secret) = sources.secret(&r.name) else {
                    if optional {
                        continue;
                    }
                    return Err(ConfigError::secret_not_found(&r.name));
                };
                match secret.data.as_ref().and_then(|d| d.get(&r.key)) {
                    Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                    None if optional => continue,
                    None => {
                        return Err(ConfigError(format!(
                            "couldn't find key {} in Secret {namespace}/{}",
                            r.key, r.name
                        )));
                    }
                }
            } else if let Some(field) = &source.field_ref {
                pod_field(pod, &field.field_path, node)?
            } else if let Some(selector) = &source.resource_field_ref {
                match selector.container_name.as_deref().filter(|c| !c.is_empty()) {
                    Some(name) => resource_of_named_container(pod, name, selector, node)?,
                    None => container_resource(container, selector, node)?,
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        env.set(var.name.clone(), value);
    }
    for (name, value) in services {
        if !env.index.contains_key(&name) {
            env.set(name, value);
        }
    }
    Ok(env.vars)
}

/// Expands `$(VAR)` references in `s` against `env` (the last entry of a name wins), as
/// upstream does for command and args: `$$` is a literal `$`, and references to unknown
/// variables or unterminated ones are left as written.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    expand_with(s, |name| map.get(name).copied())
}

/// Expansion with a lookup function; unknown names expand to `$(NAME)`.
pub(crate) fn expand_with<'a>(s: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let Some(next) = after.chars().next() else {
            // A trailing `$` is kept as is.
            out.push('$');
            rest = after;
            break;
        };
        match next {
            '$' => {
                out.push('$');
                rest = &after[1..];
            }
            '(' => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            other => {
                out.push('$');
                out.push(other);
                rest = &after[other.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The value of a downward-API `fieldRef` path for `pod`, with upstream's formatting
/// (`metadata.labels`/`metadata.annotations` as sorted `key="value"` lines, IP lists joined
/// with commas).
pub fn pod_field(pod: &Pod, path: &str, node: &NodeFacts) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    if let Some((map, key)) = subscripted(path) {
        let source = match map {
            "metadata.labels" => &meta.labels,
            "metadata.annotations" => &meta.annotations,
            _ => return Err(ConfigError(format!("unsupported fieldPath: {path}"))),
        };
        return Ok(source.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let pod_ips = || -> Vec<String> {
        if !node.pod_ips.is_empty() {
            return node.pod_ips.clone();
        }
        let status = pod.status.as_ref();
        let listed: Vec<String> =
            status.and_then(|s| s.pod_ips.as_ref()).into_iter().flatten().map(|ip| ip.ip.clone()).collect();
        if !listed.is_empty() {
            return listed;
        }
        status.and_then(|s| s.pod_ip.clone()).into_iter().collect()
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => namespace(pod).to_string(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => {
            spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| node.node_name.clone())
        }
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => node.host_ip.clone(),
        "status.podIP" => pod_ips().into_iter().next().unwrap_or_default(),
        "status.podIPs" => pod_ips().join(","),
        _ => return Err(ConfigError(format!("unsupported fieldPath: {path}"))),
    })
}

/// Splits `metadata.labels['key']` into (`metadata.labels`, `key`).
fn subscripted(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (map, key) = inner.split_once("['")?;
    Some((map, key))
}

/// `key="value"` lines sorted by key, values quoted like Go's `%q`, no trailing newline.
pub(crate) fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={}", go_quote(v))).collect::<Vec<_>>().join("\n")
}

/// A string quoted like Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a `resourceFieldRef` naming another container of the pod (`containerName`).
pub fn resource_of_named_container(
    pod: &Pod,
    name: &str,
    selector: &ResourceFieldSelector,
    node: &NodeFacts,
) -> Result<String, ConfigError> {
    let spec = pod.spec.as_ref();
    let container = spec
        .into_iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
        .find(|c| c.name == name)
        .ok_or_else(|| ConfigError(format!("container {name} not found")))?;
    container_resource(container, selector, node)
}

/// The value of a `resourceFieldRef` for `container`: limits default to the node's
/// allocatable amounts and requests to the limits (as API defaulting would), CPU is rounded up
/// to whole divisors (`1m` divisor gives millicores), other resources likewise.
pub fn container_resource(
    container: &Container,
    selector: &ResourceFieldSelector,
    node: &NodeFacts,
) -> Result<String, ConfigError> {
    let resource = selector.resource.as_str();
    let resources = container.resources.as_ref();
    let limits = resources.and_then(|r| r.limits.as_ref());
    let requests = resources.and_then(|r| r.requests.as_ref());
    let milli = |q: Option<&Quantity>| q.and_then(|q| parse_milli(&q.0));
    let allocatable = |name: &str| -> Option<i128> {
        match name {
            "cpu" => Some(i128::from(node.allocatable_cpu_millis)),
            "memory" => Some(i128::from(node.allocatable_memory_bytes) * 1000),
            "ephemeral-storage" => Some(i128::from(node.allocatable_ephemeral_storage_bytes) * 1000),
            _ => None,
        }
    };
    let (kind, name) = resource
        .split_once('.')
        .filter(|(kind, name)| {
            matches!(*kind, "limits" | "requests")
                && (matches!(*name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-"))
        })
        .ok_or_else(|| ConfigError(format!("unsupported container resource : {resource}")))?;
    let limit = milli(limits.and_then(|l| l.get(name))).or_else(|| allocatable(name)).unwrap_or(0);
    let value = if kind == "limits" {
        limit
    } else {
        milli(requests.and_then(|r| r.get(name))).or_else(|| milli(limits.and_then(|l| l.get(name)))).unwrap_or(0)
    };
    let divisor = milli(selector.divisor.as_ref()).filter(|d| *d > 0).unwrap_or(1000);
    let result = if name == "cpu" {
        ceil_div(value, divisor)
    } else {
        // Whole units, as upstream's Value(): both rounded up before dividing.
        ceil_div(ceil_div(value, 1000), ceil_div(divisor, 1000).max(1))
    };
    Ok(result.to_string())
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && (a > 0) == (b > 0) { q + 1 } else { q }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn base_pod(env: serde_json::Value, env_from: serde_json::Value) -> Pod {
        pod(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-1",
                         "labels": {"app": "web", "tier": "a\"b"}, "annotations": {"note": "x"}},
            "spec": {"nodeName": "node-a", "serviceAccountName": "sa",
                     "containers": [{"name": "c", "image": "busybox", "env": env, "envFrom": env_from,
                                     "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}},
                                    {"name": "other", "image": "busybox",
                                     "resources": {"limits": {"cpu": "1500m"}}}]}
        }))
    }

    fn facts() -> NodeFacts {
        NodeFacts {
            node_name: "node-a".into(),
            host_ip: "192.168.1.5".into(),
            pod_ips: vec!["10.42.0.5".into(), "fd00::5".into()],
            allocatable_cpu_millis: 2000,
            allocatable_memory_bytes: 4 << 30,
            allocatable_ephemeral_storage_bytes: 10 << 30,
        }
    }

    fn sources() -> Sources {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "cfg", "namespace": "ns"},
            "data": {"A": "1", "B": "two", "bad key": "x", "1X": "y"}
        }))
        .unwrap();
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "s", "namespace": "ns"},
            "data": {"PASSWORD": "aHVudGVyMg=="}
        }))
        .unwrap();
        Sources {
            configmaps: [("cfg".to_string(), Some(cm)), ("gone".to_string(), None)].into(),
            secrets: [("s".to_string(), Some(secret))].into(),
            services: Vec::new(),
        }
    }

    fn service(ns: &str, name: &str, ip: &str, ports: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .unwrap()
    }

    #[test]
    fn services_give_their_variables_and_declared_ones_win() {
        let services = vec![
            service("default", "kubernetes", "10.43.0.1", json!([{"name": "https", "port": 443, "protocol": "TCP"}])),
            service(
                "ns",
                "my-web",
                "10.43.0.20",
                json!([{"name": "http", "port": 80}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]),
            ),
            service("ns", "headless", "None", json!([{"port": 80}])),
            service("other", "elsewhere", "10.43.0.30", json!([{"port": 80}])),
        ];
        let env: BTreeMap<String, String> = service_env(&services, "ns").into_iter().collect();
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.43.0.1");
        assert_eq!(env["KUBERNETES_SERVICE_PORT"], "443");
        assert_eq!(env["KUBERNETES_SERVICE_PORT_HTTPS"], "443");
        assert_eq!(env["KUBERNETES_PORT"], "tcp://10.43.0.1:443");
        assert_eq!(env["KUBERNETES_PORT_443_TCP_ADDR"], "10.43.0.1");
        assert_eq!(env["MY_WEB_SERVICE_HOST"], "10.43.0.20");
        assert_eq!(env["MY_WEB_SERVICE_PORT"], "80");
        assert_eq!(env["MY_WEB_SERVICE_PORT_DNS_UDP"], "53");
        assert_eq!(env["MY_WEB_PORT_53_UDP"], "udp://10.43.0.20:53");
        assert_eq!(env["MY_WEB_PORT_53_UDP_PROTO"], "udp");
        assert_eq!(env["MY_WEB_PORT_80_TCP_PORT"], "80");
        assert!(!env.keys().any(|k| k.starts_with("HEADLESS") || k.starts_with("ELSEWHERE")), "{env:?}");

        let mut sources = sources();
        sources.services = services;
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "env": [
                {"name": "MY_WEB_SERVICE_PORT", "value": "8080"},
                {"name": "URL", "value": "http://$(MY_WEB_SERVICE_HOST):$(MY_WEB_SERVICE_PORT)"},
            ]}]},
        }))
        .unwrap();
        let env = container_env(&pod, &pod.spec.as_ref().unwrap().containers[0], &sources, &facts()).unwrap();
        assert_eq!(env[0], ("MY_WEB_SERVICE_PORT".to_string(), "8080".to_string()), "declared first, and it wins");
        assert_eq!(env[1], ("URL".to_string(), "http://10.43.0.20:8080".to_string()), "expansion sees services");
        assert_eq!(env.iter().filter(|(k, _)| k == "MY_WEB_SERVICE_PORT").count(), 1);
        assert!(env.iter().any(|(k, v)| k == "KUBERNETES_SERVICE_HOST" && v == "10.43.0.1"));
    }

    fn env_of(p: &Pod) -> Result<Vec<(String, String)>, ConfigError> {
        container_env(p, &p.spec.as_ref().unwrap().containers[0], &sources(), &facts())
    }

    #[test]
    fn env_from_then_env_with_expansion() {
        let p = base_pod(
            json!([
                {"name": "B", "value": "over-$(A)"},
                {"name": "C", "value": "$(B)/$(MISSING)/$$(A)/$"},
                {"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "PASSWORD"}}},
                {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "B"}}},
                {"name": "E"}
            ]),
            json!([{"configMapRef": {"name": "cfg"}}, {"prefix": "S_", "secretRef": {"name": "s"}}]),
        );
        let env = env_of(&p).unwrap();
        let expected: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "over-1"),
            ("S_PASSWORD", "hunter2"),
            ("C", "over-1/$(MISSING)/$(A)/$"),
            ("P", "hunter2"),
            ("K", "two"),
            ("E", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn missing_sources_and_keys() {
        let p =
            base_pod(json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]), json!([]));
        assert_eq!(env_of(&p).unwrap_err().to_string(), r#"configmap "gone" not found"#);
        let p =
            base_pod(json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]), json!([]));
        assert_eq!(env_of(&p).unwrap_err().to_string(), "couldn't find key k in ConfigMap ns/cfg");
        let p = base_pod(json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]), json!([]));
        assert_eq!(env_of(&p).unwrap_err().to_string(), "couldn't find key k in Secret ns/s");
        let p =
            base_pod(json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]), json!([]));
        assert_eq!(env_of(&p).unwrap_err().to_string(), r#"secret "nope" not found"#);
        let p = base_pod(json!([]), json!([{"secretRef": {"name": "nope"}}]));
        assert_eq!(env_of(&p).unwrap_err().to_string(), r#"secret "nope" not found"#);
        // Optional references are skipped silently.
        let p = base_pod(
            json!([
                {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}},
                {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": true}}},
                {"name": "Z", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}}
            ]),
            json!([{"configMapRef": {"name": "gone", "optional": true}}]),
        );
        assert_eq!(env_of(&p).unwrap(), vec![]);
    }

    #[test]
    fn field_refs() {
        let refs = [
            ("metadata.name", "web"),
            ("metadata.namespace", "ns"),
            ("metadata.uid", "u-1"),
            ("metadata.labels['app']", "web"),
            ("metadata.labels['none']", ""),
            ("metadata.annotations['note']", "x"),
            ("metadata.labels", "app=\"web\"\ntier=\"a\\\"b\""),
            ("spec.nodeName", "node-a"),
            ("spec.serviceAccountName", "sa"),
            ("status.hostIP", "192.168.1.5"),
            ("status.hostIPs", "192.168.1.5"),
            ("status.podIP", "10.42.0.5"),
            ("status.podIPs", "10.42.0.5,fd00::5"),
        ];
        let env: Vec<_> = refs
            .iter()
            .enumerate()
            .map(|(i, (path, _))| json!({"name": format!("V{i}"), "valueFrom": {"fieldRef": {"fieldPath": path}}}))
            .collect();
        let p = base_pod(json!(env), json!([]));
        let got = env_of(&p).unwrap();
        for (i, (path, want)) in refs.iter().enumerate() {
            assert_eq!(got[i].1, *want, "{path}");
        }
        let p = base_pod(json!([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]), json!([]));
        assert_eq!(env_of(&p).unwrap_err().to_string(), "unsupported fieldPath: spec.bogus");
    }

    #[test]
    fn pod_ip_falls_back_to_status() {
        let mut p =
            base_pod(json!([{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]), json!([]));
        p.status = Some(serde_json::from_value(json!({"podIP": "10.1.1.1"})).unwrap());
        let node = NodeFacts { pod_ips: vec![], ..facts() };
        let env = container_env(&p, &p.spec.as_ref().unwrap().containers[0], &sources(), &node).unwrap();
        assert_eq!(env[0].1, "10.1.1.1");
    }

    #[test]
    fn resource_refs() {
        let cases = [
            (json!({"resource": "limits.cpu"}), "2"),
            (json!({"resource": "limits.cpu", "divisor": "1m"}), "2000"),
            (json!({"resource": "requests.cpu"}), "1"),
            (json!({"resource": "requests.cpu", "divisor": "1m"}), "250"),
            (json!({"resource": "requests.cpu", "divisor": "100m"}), "3"),
            (json!({"resource": "limits.memory"}), "67108864"),
            (json!({"resource": "limits.memory", "divisor": "1Mi"}), "64"),
            (json!({"resource": "requests.memory", "divisor": "1Mi"}), "64"),
            (json!({"resource": "limits.memory", "divisor": "1G"}), "1"),
            (json!({"resource": "limits.ephemeral-storage", "divisor": "1Gi"}), "10"),
            (json!({"resource": "limits.cpu", "containerName": "other"}), "2"),
            (json!({"resource": "limits.cpu", "containerName": "other", "divisor": "1m"}), "1500"),
        ];
        let env: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(i, (sel, _))| json!({"name": format!("R{i}"), "valueFrom": {"resourceFieldRef": sel}}))
            .collect();
        let p = base_pod(json!(env), json!([]));
        let got = env_of(&p).unwrap();
        for (i, (sel, want)) in cases.iter().enumerate() {
            assert_eq!(got[i].1, *want, "{sel}");
        }
        let p =
            base_pod(json!([{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]), json!([]));
        assert_eq!(env_of(&p).unwrap_err().to_string(), "unsupported container resource : limits.gpu");
        let p = base_pod(
            json!([{"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "x"}}}]),
            json!([]),
        );
        assert_eq!(env_of(&p).unwrap_err().to_string(), "container x not found");
    }

    #[test]
    fn expansion_rules() {
        let env = vec![("A".to_string(), "a".to_string()), ("A".to_string(), "b".to_string())];
        assert_eq!(expand("$(A)", &env), "b");
        assert_eq!(expand("$$(A) $$$(A) $(A", &env), "$(A) $b $(A");
        assert_eq!(expand("x$yz$", &env), "x$yz$");
        assert_eq!(expand("$é$(B)$()", &env), "$é$(B)$()");
        assert_eq!(expand("", &env), "");
    }

    #[test]
    fn env_names() {
        assert!(is_env_var_name("A_b.c-1"));
        assert!(is_env_var_name("_x"));
        assert!(!is_env_var_name("1X"));
        assert!(!is_env_var_name("a b"));
        assert!(!is_env_var_name(""));
    }

    #[test]
    fn references_cover_all_places() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s-init"}}]}],
                "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "k"}}}]}],
                "volumes": [
                    {"name": "a", "configMap": {"name": "cm-vol"}},
                    {"name": "b", "secret": {"secretName": "s-vol"}},
                    {"name": "c", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}, {"secret": {"name": "s-proj"}}]}}
                ]
            }
        }));
        let (cms, secrets) = references(&p);
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), ["cm-env", "cm-vol", "kube-root-ca.crt"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), ["s-init", "s-proj", "s-vol"]);
    }

    #[tokio::test]
    async fn fetch_records_404_as_absent() {
        use http::{Request, Response, StatusCode};
        let service = tower::service_fn(|req: Request<kube::client::Body>| async move {
            let path = req.uri().path().to_string();
            let (status, body) = match path.as_str() {
                "/api/v1/namespaces/ns/configmaps/cfg" => (
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}}),
                ),
                _ => (
                    StatusCode::NOT_FOUND,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
                ),
            };
            let body = kube::client::Body::from(serde_json::to_vec(&body).unwrap());
            Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(body).unwrap())
        });
        let client = kube::Client::new(service, "default");
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "s"}}]}]}
        }));
        let sources = Sources::fetch(&client, &p).await.unwrap();
        assert_eq!(sources.configmap("cfg").unwrap().data.as_ref().unwrap()["a"], "b");
        assert_eq!(sources.secrets.get("s"), Some(&None));
    }
}
